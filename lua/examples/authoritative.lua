-- An authoritative game: the server owns the state and runs it in a fixed tick loop. Players
-- send inputs to the server; the server moves everyone and broadcasts snapshots. Players never
-- message each other directly.

local OP_INPUT = 1           -- client -> server: "dx,dy" (each -1, 0 or 1)
local OP_SNAPSHOT = 2        -- server -> all: JSON {tick = n, players = {peer = {x, y}}}
local TICK_HZ = 20
local SPEED = 5              -- units per tick

local state = { tick = 0, players = {} }
local inputs = {}            -- peer -> {dx, dy}, the latest input

local M = {}

function M.on_session_start()
  rt.set_tick_rate(TICK_HZ)
end

function M.on_player_join(player)
  state.players[tostring(player.peer)] = { x = 0, y = 0 }
end

function M.on_player_leave(player)
  state.players[tostring(player.peer)] = nil
  inputs[player.peer] = nil
end

-- Only the server may move players: packets between players are dropped.
function M.on_packet(packet)
  return packet.to == "server"
end

function M.on_message(packet)
  if packet.opcode ~= OP_INPUT then return end
  local dx, dy = string.match(packet.payload, "^(-?%d),(-?%d)$")
  dx, dy = tonumber(dx), tonumber(dy)
  if dx and dy and math.abs(dx) <= 1 and math.abs(dy) <= 1 then
    inputs[packet.sender] = { dx, dy }
  end
end

function M.on_tick(dt_ms)
  state.tick = state.tick + 1
  for peer, input in pairs(inputs) do
    local p = state.players[tostring(peer)]
    if p then
      p.x = p.x + input[1] * SPEED
      p.y = p.y + input[2] * SPEED
    end
  end
  rt.send("all", OP_SNAPSHOT, rt.json.encode(state), "sequenced")
end

return M
