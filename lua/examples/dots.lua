-- Dots: the session script behind the TypeScript client's demo (clients/typescript/demo).
-- Each player is a dot. Clients send their position as RTData {1 = x, 2 = y} on opcode 1 to
-- everyone; the script is authoritative about the field: positions outside it are clamped
-- before anyone sees them, anything else on opcode 1 is dropped. Each player gets a colour as
-- its player properties, which every client (and later joiners) receives.

-- Floats, so clamped positions stay doubles in RTData (an integer would be sent as a long).
local WIDTH, HEIGHT = 800.0, 500.0
local COLOURS = { "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45" }

local M = {}

function M.on_player_join(player)
  rt.set_player_props(player.peer, COLOURS[(player.peer - 1) % #COLOURS + 1])
end

function M.on_packet(packet)
  if packet.opcode ~= 1 then
    return
  end
  local ok, position = pcall(rt.data.decode, packet.payload)
  if not ok or type(position[1]) ~= "number" or type(position[2]) ~= "number" then
    return false
  end
  position[1] = math.max(0.0, math.min(WIDTH, position[1]))
  position[2] = math.max(0.0, math.min(HEIGHT, position[2]))
  packet.payload = rt.data.encode(position)
end

return M
