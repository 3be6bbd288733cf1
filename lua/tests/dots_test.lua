-- Tests for lua/examples/dots.lua (run: moonrt test lua/tests).

test("each player gets a colour everyone sees", function()
  local sim = session{ script = "lua/examples/dots.lua" }
  local a = sim:join("a")
  local b = sim:join("b")
  local seen = {}
  for _, e in ipairs(b:received()) do
    if e.type == "player_props" then seen[e.peer] = e.props end
  end
  expect_eq(seen, { [a.peer] = "#e6194b", [b.peer] = "#3cb44b" })
end)

test("positions off the field reach the others clamped", function()
  local sim = session{ script = "lua/examples/dots.lua" }
  local a = sim:join("a")
  local b = sim:join("b")
  b:received()
  a:send("all", 1, rt.data.encode{ 5000.0, -3.5 }, "sequenced")
  local got = deliveries(b:received(), 1)
  expect_eq(#got, 1)
  expect_eq(rt.data.decode(got[1].payload), { 800.0, 0.0 })
end)

test("anything but a position on opcode 1 is dropped", function()
  local sim = session{ script = "lua/examples/dots.lua" }
  local a = sim:join("a")
  local b = sim:join("b")
  b:received()
  a:send("all", 1, "garbage")
  expect_eq(#deliveries(b:received()), 0)
end)
