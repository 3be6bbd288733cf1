-- Tests for lua/examples/gamelift.lua. The virtual clock runs its two-minute rule in no time.

test("players are accepted, op 111 goes to the red team, Reject payloads are filtered", function()
  local sim = session{ script = "lua/examples/gamelift.lua", linger_ms = 600000 }
  local red = sim:join("red")
  expect_eq(deliveries(red:received(), 113)[1].payload, "Peer 1 accepted")
  local blue = sim:join("blue")
  red:join_group(1)
  blue:join_group(2)
  blue:join_group(7)
  local refused = false
  for _, e in ipairs(blue:received()) do
    if e.type == "error" and e.code == 33 then refused = true end
  end
  expect(refused, "only groups 1 and 2 exist")
  red:received()
  blue:send("server", 111, "attack")
  expect_eq(deliveries(red:received(), 112)[1].payload, "attack")
  blue:send(red.peer, 5, "Reject this")
  blue:send(red.peer, 5, "hello")
  local got = deliveries(red:received(), 5)
  expect_eq(#got, 1)
  expect_eq(got[1].payload, "hello")
end)

test("an empty session ends after the minimum time, not before", function()
  local sim = session{ script = "lua/examples/gamelift.lua", linger_ms = 600000 }
  local red = sim:join("red")
  red:leave()
  sim:advance(60 * 1000)
  expect(not sim:ended(), "still within the first two minutes")
  sim:advance(70 * 1000)
  expect(sim:ended(), "ended by the tick loop after 120 s")
end)

test("a session the backend created that nobody joins ends after the minimum time", function()
  local sim = session{ script = "lua/examples/gamelift.lua", linger_ms = 600000 }
  -- CreateGameSession: on_session_start starts the tick loop before any player connects.
  local id = sim:create{ params = { map = "dunes" } }
  expect(id ~= nil, "created")
  sim:advance(110 * 1000)
  expect(not sim:ended(), "waits the minimum two minutes for players")
  sim:advance(20 * 1000)
  expect(sim:ended(), "ended by the tick loop: nobody came")
end)
