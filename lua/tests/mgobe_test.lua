-- Tests for lua/examples/mgobe.lua.

test("moves update the game data every player receives", function()
  local sim = session{ script = "lua/examples/mgobe.lua" }
  local a = sim:join("ann")
  local b = sim:join("bo")
  a:send("server", 200, '{"x": 3, "y": 4}')
  for _, p in ipairs{ a, b } do
    local state = rt.json.decode(deliveries(p:received(), 201)[1].payload)
    expect_eq(state.moves, 1)
    expect_eq(state.positions.ann, { x = 3, y = 4 })
  end
  b:send("server", 200, '{"x": 1, "y": 1}')
  expect_eq(rt.json.decode(deliveries(a:received(), 201)[1].payload).moves, 2)
end)
