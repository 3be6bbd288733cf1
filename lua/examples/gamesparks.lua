-- The GameSparks Real-Time tutorial cases, in moonrt Lua.

local OP_PING = 100          -- intercepted; answered on 101
local OP_PONG = 101
local OP_STATE = 102         -- payload starts with the client's send time (ms); stale ones dropped
local OP_CHAT = 104          -- chat; packets from muted peers are cancelled
local OP_CLOCK = 105         -- clock sync request: payload is the client's time in ms
local OP_CLOCK_REPLY = 106   -- "client_time,server_time"
local OP_COUNTDOWN = 107     -- broadcast ten times by an interval that stops itself
local OP_GONE = 108          -- a disconnected player did not come back in time

local STALE_MS = 1000        -- state packets older than this are cancelled
local RECONNECT_MS = 5000    -- how long a disconnected player has to come back

local muted = {}             -- peer id -> true

-- RTSession.onPacket(100, ...): intercept and reply.
rt.on_packet(OP_PING, function(packet)
  rt.send(packet.sender, OP_PONG, "pong " .. packet.payload)
  return false
end)

-- Cancel stale packets: the payload starts with the client's timestamp in ms.
rt.on_packet(OP_STATE, function(packet)
  local sent = tonumber(string.match(packet.payload, "^(%d+)"))
  return sent ~= nil and rt.time() - sent <= STALE_MS
end)

-- Cancel packets from a given peer.
rt.on_packet(OP_CHAT, function(packet)
  if packet.payload == "/mute me" then
    muted[packet.sender] = true
    return false
  end
  return not muted[packet.sender]
end)

-- Clock sync: answer with the client's time and the server's.
rt.on_packet(OP_CLOCK, function(packet)
  rt.send(packet.sender, OP_CLOCK_REPLY, packet.payload .. "," .. string.format("%.0f", rt.time()))
  return false
end)

local M = {}

-- An interval that stops itself after ten runs.
function M.on_session_start()
  rt.session.data.count = 0
end

function M.on_player_join(player)
  if #rt.players() == 2 and not rt.session.data.countdown then
    local id
    id = rt.set_interval(function()
      rt.session.data.count = rt.session.data.count + 1
      rt.send("all", OP_COUNTDOWN, tostring(rt.session.data.count))
      if rt.session.data.count == 10 then rt.clear_interval(id) end
    end, 10)
    rt.session.data.countdown = id
  end
  -- A player who comes back cancels its "gone" timer.
  local pending = rt.session.data.gone and rt.session.data.gone[player.id]
  if pending then
    rt.clear_timeout(pending)
    rt.session.data.gone[player.id] = nil
  end
end

-- A timeout on disconnect: if the player is not back in time, tell the others.
function M.on_player_leave(player, reason)
  if reason == "client_left" or player.id == "" then return end
  rt.session.data.gone = rt.session.data.gone or {}
  rt.session.data.gone[player.id] = rt.set_timeout(function()
    rt.session.data.gone[player.id] = nil
    rt.send("all", OP_GONE, player.name)
  end, RECONNECT_MS)
end

return M
