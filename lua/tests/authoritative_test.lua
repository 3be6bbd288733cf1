-- Tests for lua/examples/authoritative.lua.

test("the tick loop moves players and blocks direct messages", function()
  local sim = session{ script = "lua/examples/authoritative.lua" }
  local a = sim:join("a")
  local b = sim:join("b")
  a:send("server", 1, "1,-1")
  sim:advance(1000)
  local snapshots = deliveries(b:received(), 2)
  expect(#snapshots >= 2, "snapshots every tick")
  local last = rt.json.decode(snapshots[#snapshots].payload)
  local me = last.players[tostring(a.peer)]
  expect(me.x >= 10, "moved")
  expect_eq(me.y, -me.x, "along (1, -1)")
  a:send("all", 9, "cheat")
  expect_eq(#deliveries(b:received(), 9), 0, "no direct messages")
end)
