-- Tests for lua/examples/gamesparks.lua. The five-second reconnect window runs in no time.

local function texts(events, opcode)
  local out = {}
  for _, d in ipairs(deliveries(events, opcode)) do out[#out + 1] = d.payload end
  return out
end

test("an interval counts to ten and stops itself", function()
  local sim = session{ script = "lua/examples/gamesparks.lua" }
  local a = sim:join("ann", { id = "ann-1" })
  sim:join("bo", { id = "bo-1" })
  sim:advance(1000)
  expect_eq(texts(a:received(), 107), { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10" })
  expect_eq(sim:data().count, 10)
end)

test("a ping is intercepted and answered; muted players are cancelled", function()
  local sim = session{ script = "lua/examples/gamesparks.lua" }
  local a = sim:join("ann", { id = "ann-1" })
  local b = sim:join("bo", { id = "bo-1" })
  a:received()
  a:send("all", 100, "7")
  expect_eq(texts(a:received(), 101), { "pong 7" })
  expect_eq(#deliveries(b:received(), 100), 0, "the ping never reached bo")
  a:send("all", 104, "/mute me")
  a:send("all", 104, "can you hear me")
  expect_eq(texts(b:received(), 104), {})
end)

test("a player who drops and is not back within five seconds is announced as gone", function()
  local sim = session{ script = "lua/examples/gamesparks.lua", linger_ms = 60000 }
  local a = sim:join("ann", { id = "ann-1" })
  local b = sim:join("bo", { id = "bo-1" })
  b:drop()
  sim:advance(4900)
  a:received()
  sim:advance(200)
  expect_eq(texts(a:received(), 108), { "bo" })
end)
