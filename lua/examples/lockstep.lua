-- Lockstep (MGOBE's frame sync): once two players are in, the session switches frame sync on at
-- 10 frames a second. Every player then gets the same numbered frames with everyone's inputs;
-- every fifth frame the script adds its own input (peer 0), here a "stamp" clients can use as
-- a shared timer. Clients send inputs with FRAME_INPUT and replay frames to simulate the game.

local FRAMES_PER_SECOND = 10
local STAMP_EVERY = 5

local M = {}

function M.on_player_join(player)
  if #rt.players() == 2 then
    rt.frame_sync.start(FRAMES_PER_SECOND)
  end
end

function M.on_frame(frame)
  if frame.number % STAMP_EVERY == 0 then
    table.insert(frame.inputs, { peer = 0, payload = "stamp" })
  end
end

return M
