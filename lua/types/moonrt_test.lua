---@meta
-- Editor stubs for `moonrt test` files (*_test.lua; SCRIPTING.md, "Testing scripts").

---@class moonrt.TestEvent
---@field type "delivery"|"joined"|"left"|"away"|"back"|"members"|"player_props"|"session_props"|"error"|"closed"|"frame_sync"|"frame"
---@field opcode integer|nil
---@field sender integer|nil
---@field payload string|nil
---@field seq integer|nil
---@field intent string|nil
---@field peer integer|nil
---@field reason integer|nil
---@field code integer|nil
---@field message string|nil
---@field detail integer|nil
---@field group integer|nil
---@field members integer[]|nil
---@field props string|nil
---@field number integer|nil   A frame's number.
---@field seed integer|nil
---@field inputs {peer: integer, payload: string}[]|nil
---@field on boolean|nil
---@field rate integer|nil

---@class moonrt.TestPlayer
---@field peer integer
---@field closed boolean
local TestPlayer = {}
---@param to "all"|"server"|integer|integer[]|{group: integer}
---@param opcode integer
---@param payload string|nil
---@param intent "reliable"|"unreliable"|"sequenced"|nil
function TestPlayer:send(to, opcode, payload, intent) end
---@param group integer
function TestPlayer:join_group(group) end
---@param group integer
function TestPlayer:leave_group(group) end
---@param props string
function TestPlayer:set_props(props) end
---Sends this player's input for the current frame (frame sync).
---@param input string
function TestPlayer:frame_input(input) end
---Asks to start (at `rate`, default 15) or stop frame sync.
---@param on boolean
---@param rate integer|nil
function TestPlayer:frame_sync(on, rate) end
function TestPlayer:leave() end
function TestPlayer:drop() end
---@return moonrt.TestEvent[]
function TestPlayer:received() end

---@class moonrt.TestSession
local TestSession = {}
---@param name string
---@param opts { room: string|nil, id: string|nil, payload: string|nil }|nil
---@return moonrt.TestPlayer|nil, integer|nil, string|nil
function TestSession:join(name, opts) end
---Creates the session before any player joins (as a backend does with POST /api/sessions):
---on_session_start runs now and its linger counts from now. Players joining room `name` join it.
---@param opts { name: string|nil, params: table|nil, max_players: integer|nil, linger_ms: integer|nil, send_interval_ms: integer|nil, listed: boolean|nil }|nil
---@return integer|nil id, integer|nil code, string|nil message
function TestSession:create(opts) end
---@param ms number
function TestSession:advance(ms) end
---@return table|nil
function TestSession:data() end
---@return boolean
function TestSession:ended() end

---@param name string
---@param fn fun()
function test(name, fn) end

---@param opts { script: string, max_players: integer|nil, linger_ms: integer|nil, reconnect_grace_ms: integer|nil }
---@return moonrt.TestSession
function session(opts) end

---@param ok any
---@param message string|nil
function expect(ok, message) end

---@param actual any
---@param expected any
---@param message string|nil
function expect_eq(actual, expected, message) end

---@param events moonrt.TestEvent[]
---@param opcode integer|nil
---@return moonrt.TestEvent[]
function deliveries(events, opcode) end
