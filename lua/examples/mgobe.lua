-- The MGOBE realtime-server pattern: room game data initialised on first use, and client
-- messages to the server answered with sendData to a list of players.

local OP_MOVE = 200          -- client -> server: JSON {x = .., y = ..}
local OP_STATE = 201         -- server -> players: JSON of the whole game data

-- MGOBE onInitGameData: the room's game data, created the first time it is needed.
local function game_data()
  local data = rt.session.data
  if not data.game then
    data.game = { moves = 0, positions = {} }
  end
  return data.game
end

local M = {}

-- MGOBE onRecvFromClient: update the game data, then SDK.sendData({playerIdList, data}).
function M.on_message(packet)
  if packet.opcode ~= OP_MOVE then return end
  local move = rt.json.decode(packet.payload)
  local game = game_data()
  game.moves = game.moves + 1
  game.positions[packet.player.name] = { x = move.x, y = move.y }
  local player_id_list = {}
  for _, p in ipairs(rt.players()) do
    player_id_list[#player_id_list + 1] = p.peer
  end
  rt.send(player_id_list, OP_STATE, rt.json.encode(game))
end

-- MGOBE onLeaveRoom: the player's position goes with it.
function M.on_player_leave(player)
  game_data().positions[player.name] = nil
end

return M
