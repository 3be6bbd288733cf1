-- The GameLift Realtime Servers example script, re-expressed for moonrt.
-- Its callbacks map one to one (see SCRIPTING.md, "From GameLift, GameSparks and MGOBE"):
-- a tick loop ends an empty session after a minimum time, op codes 111-114, red and blue
-- groups, and a send-to-player filter that rejects payloads containing "Reject".

local TICK_MS = 1000            -- time between ticks of the example tick loop
local MINIMUM_ELAPSED_S = 120   -- seconds before the loop may end an empty session

-- Example custom op codes; they must match the client code.
local OP_CODE_CUSTOM_OP1 = 111
local OP_CODE_CUSTOM_OP1_REPLY = 112
local OP_CODE_PLAYER_ACCEPTED = 113
local OP_CODE_DISCONNECT_NOTIFICATION = 114

-- Example groups; they must match the client code. 0 is reserved.
local RED_TEAM_GROUP = 1
local BLUE_TEAM_GROUP = 2

local start_time            -- when the session started, in seconds
local active_players = 0

local M = {}

-- Process bootstrapping (GameLift onProcessStarted): runs once, in the process-wide state.
function M.on_process_start(args)
  rt.log.info("Starting process with args: " .. table.concat(args, " "))
  rt.log.info("Ready to host games...")
end

-- Process termination (GameLift onProcessTerminate): clean up here.
function M.on_process_terminate() end

-- GameLift onHealthCheck.
function M.on_health_check()
  return true
end

local function time_in_s()
  return math.floor(rt.time() / 1000 + 0.5)
end

-- A simple tick loop: once the minimum time has passed, end the session when nobody is left.
local function tick_loop()
  local elapsed = time_in_s() - start_time
  rt.log.info("Tick... " .. elapsed .. " activePlayers: " .. active_players)
  if active_players == 0 and elapsed > MINIMUM_ELAPSED_S then
    rt.log.info("All players disconnected. Ending game")
    rt.end_session("All players disconnected")   -- GameLift processEnding()
  else
    rt.set_timeout(tick_loop, TICK_MS)
  end
end

-- GameLift onStartGameSession.
function M.on_session_start(session)
  start_time = time_in_s()
  tick_loop()
end

-- GameLift onPlayerConnect: validate the connect payload here.
function M.on_player_connect(player, payload)
  return true
end

-- GameLift onPlayerAccepted: tell the player it is in.
function M.on_player_join(player)
  rt.send(player.peer, OP_CODE_PLAYER_ACCEPTED, "Peer " .. player.peer .. " accepted")
  active_players = active_players + 1
end

-- GameLift onPlayerDisconnect: tell every remaining player.
function M.on_player_leave(player, reason)
  for _, other in ipairs(rt.players()) do
    if other.peer ~= player.peer then
      rt.send(other.peer, OP_CODE_DISCONNECT_NOTIFICATION, "Peer " .. player.peer .. " disconnected")
    end
  end
  active_players = active_players - 1
end

-- GameLift onMessage: a message to the server.
function M.on_message(packet)
  if packet.opcode == OP_CODE_CUSTOM_OP1 then
    -- Operation 1: forward the payload to the red team.
    rt.send({ group = RED_TEAM_GROUP }, OP_CODE_CUSTOM_OP1_REPLY, packet.payload)
  end
end

-- GameLift onSendToPlayer: this example rejects any payload containing "Reject".
function M.on_send_to_player(packet)
  return not string.find(packet.payload, "Reject", 1, true)
end

-- GameLift onSendToGroup.
function M.on_send_to_group(packet)
  return true
end

-- GameLift onPlayerJoinGroup / onPlayerLeaveGroup.
function M.on_group_join(player, group)
  return group == RED_TEAM_GROUP or group == BLUE_TEAM_GROUP
end

function M.on_group_leave(player, group)
  return true
end

return M
