---@meta
-- Editor type stubs for moonrt session scripts (Lua language server / sumneko).
-- Add this folder to your workspace library, e.g. in .luarc.json:
--   { "workspace.library": ["lua/types"], "runtime.version": "Lua 5.4" }
-- The authoritative reference is SCRIPTING.md.

---A player in the session.
---@class rt.Player
---@field peer integer      Peer id in the session (1-65535).
---@field id string         The player's id: the join ticket's verified `sub`, or what HELLO claimed (may be empty).
---@field name string       Display name (the ticket's `name`, else HELLO's).
---@field claims table      Every claim of the join ticket that admitted the player ({} without tickets).
---@field connected boolean Whether its connection is up (false while its seat is held after a drop).
---@field udp boolean       Whether the player's UDP channel is bound.
---@field props string      Custom properties as clients see them (SET_PLAYER_PROPS).
---@field data table        Per-player data, yours to fill; lives as long as the player.

---A packet offered to `on_packet`, `rt.on_packet` handlers and `on_message`.
---@class rt.Packet
---@field sender integer         Sender's peer id.
---@field player rt.Player|nil   Sender's player table.
---@field opcode integer         The sender's opcode.
---@field intent rt.Intent       How it travels.
---@field payload string         Payload bytes; assign a new string to rewrite it (on_packet).
---@field to rt.Target|"server"  Receivers; assign a new target to retarget it (on_packet).

---@alias rt.Intent "reliable"|"unreliable"|"sequenced"

---Receivers: "all", one peer id, a list of peer ids, or a group.
---@alias rt.Target "all"|integer|integer[]|{group: integer}

---Options for the table form of `rt.send`.
---@class rt.SendOptions
---@field to rt.Target
---@field opcode integer
---@field payload string|nil
---@field intent rt.Intent|nil   Default "reliable".
---@field from integer|nil       Sender shown to receivers: 0 (default) is the server, or a player's peer id.

---The session this state belongs to.
---@class rt.Session
---@field id integer    Session id (what clients join by).
---@field name string   Session name ("" if unnamed).
---@field params table  Creation parameters: from the admin API's POST /api/sessions, the creating ticket's `params` claim, or join mode 5's key=value pairs ({} if none).
---@field max_players integer  Players it holds at most (rt.configure_session changes it).
---@field linger_ms integer    How long it stays once empty (rt.configure_session changes it).
---@field open boolean         Whether it takes new players (rt.configure_session{open = false} closes it).
---@field send_interval_ms integer  Coalesced sending: messages leave together once per this many ms (0: every loop turn).
---@field data table    Session data shared by all callbacks; yours to fill.
---@field props string  Session properties as clients see them (SET_SESSION_PROPS).

---The callbacks a script returns. Every one is optional.
---@class rt.Callbacks
---@field on_session_start fun(session: rt.Session)|nil
---@field on_session_end fun()|nil
---@field on_player_connect (fun(player: rt.Player, payload: string): boolean, string?)|nil
---@field on_player_join fun(player: rt.Player)|nil
---@field on_player_leave fun(player: rt.Player, reason: string)|nil
---@field on_network_change fun(player: rt.Player, state: "udp_bound")|nil
---@field on_player_disconnect fun(player: rt.Player)|nil   Its connection dropped; the seat is held.
---@field on_player_reconnect fun(player: rt.Player)|nil    It took its seat back.
---@field on_frame_sync (fun(player: rt.Player, on: boolean, rate: integer): boolean?)|nil  false refuses.
---@field on_frame fun(frame: rt.Frame)|nil   Change frame.inputs to change what every player gets.
---@field on_group_join (fun(player: rt.Player, group: integer): boolean?)|nil
---@field on_group_leave (fun(player: rt.Player, group: integer): boolean?)|nil
---@field on_player_props (fun(player: rt.Player, props: string): boolean?)|nil
---@field on_session_props (fun(player: rt.Player, props: string): boolean?)|nil
---@field on_group_change fun(group: integer, members: integer[])|nil
---@field on_packet (fun(packet: rt.Packet): boolean?)|nil
---@field on_send_to_player (fun(packet: rt.Packet): boolean?)|nil
---@field on_send_to_group (fun(packet: rt.Packet): boolean?)|nil
---@field on_message fun(packet: rt.Packet)|nil
---@field on_tick fun(dt_ms: number)|nil
---@field on_process_start (fun(args: string[]): any)|nil   Process-wide only; returns rt.process (false: not ready).
---@field on_process_terminate fun()|nil             Process-wide state only.
---@field on_health_check (fun(): boolean?)|nil      Process-wide state only.

---@class rt.Log
local Log = {}
---@param ... any
function Log.debug(...) end
---@param ... any
function Log.info(...) end
---@param ... any
function Log.warn(...) end
---@param ... any
function Log.error(...) end

---@class rt.FrameInput
---@field peer integer     0 for the script's own.
---@field payload string

---@class rt.Frame
---@field number integer
---@field seed integer
---@field inputs rt.FrameInput[]

---@class rt.FrameSync
local Frame_sync = {}

---Starts frame sync (lockstep) at `rate` frames per second (1-60).
---@param rate integer
function Frame_sync.start(rate) end

---Stops frame sync.
function Frame_sync.stop() end

---@class rt.Http
local Http = {}

---Calls a backend on a worker thread; `callback(response, err)` runs later in this session.
---Only hosts in [script] http_allow; redirects are not followed. Returns the request id.
---@param options rt.HttpRequest
---@param callback fun(response: rt.HttpResponse|nil, err: string|nil)
---@return integer
function Http.request(options, callback) end

---@class rt.Json
local Json = {}
---Encodes a Lua value (tables, strings, numbers, booleans) as JSON text, numbers written as
---JavaScript's JSON.stringify writes them (4.0 is 4; NaN and infinities are null).
---@param value any
---@return string
function Json.encode(value) end
---Decodes JSON text into Lua values; errors on invalid JSON.
---@param text string
---@return any
function Json.decode(text) end

---A vector from rt.data.vector or rt.data.decode.
---@class rt.Vector
---@field x number
---@field y number|nil
---@field z number|nil
---@field w number|nil

---@class rt.Data
local Data = {}
---Encodes a table indexed 1-255 as an RTData payload (PROTOCOL.md section 11).
---@param t table<integer, integer|number|string|table|rt.Vector>
---@return string
function Data.encode(t) end
---Decodes an RTData payload; errors on invalid data.
---@param payload string
---@return table<integer, integer|number|string|table|rt.Vector>
function Data.decode(payload) end
---Marks a number to be encoded as a 32-bit float.
---@param x number
---@return table
function Data.float(x) end
---A vector of 1 to 4 floats.
---@param x number
---@param y number|nil
---@param z number|nil
---@param w number|nil
---@return rt.Vector
function Data.vector(x, y, z, w) end

---@class rt
---@field server_id string   This server's name ([server] id, or "moonrt-<pid>"); the server's peer id is 0.
---@field process any        What on_process_start returned, shared read-only by every session (nil if nothing).
---@field session rt.Session
---@field log rt.Log
---@field json rt.Json
---@field http rt.Http
---@field frame_sync rt.FrameSync
---@field data rt.Data
rt = {}

---Sends a message. Positional form: `rt.send(to, opcode, payload, intent)`;
---table form: `rt.send{to=..., opcode=..., payload=..., intent=..., from=...}`.
---@overload fun(options: rt.SendOptions)
---@param to rt.Target
---@param opcode integer
---@param payload string|nil
---@param intent rt.Intent|nil
function rt.send(to, opcode, payload, intent) end

---Handles one opcode before routing (takes precedence over `on_packet`); nil removes it.
---@param opcode integer
---@param handler (fun(packet: rt.Packet): boolean?)|nil
function rt.on_packet(opcode, handler) end

---Every player, ordered by peer id.
---@return rt.Player[]
function rt.players() end

---The player with this peer id, or nil.
---@param peer integer
---@return rt.Player|nil
function rt.player(peer) end

---Removes a player: it gets CLOSE code 24 with the reason.
---@param peer integer
---@param reason string|nil
function rt.kick(peer, reason) end

---Ends the session: every player gets CLOSE code 23 with the reason.
---@param reason string|nil
function rt.end_session(reason) end

---Sets a player's custom properties; every player gets PLAYER_PROPS.
---@param peer integer
---@param props string
function rt.set_player_props(peer, props) end

---Sets the session's custom properties; every player gets SESSION_PROPS (by = 0).
---@param props string
function rt.set_session_props(props) end

---Puts a player in a group (members get GROUP_MEMBERS).
---@param group integer
---@param peer integer
function rt.group_add(group, peer) end

---Takes a player out of a group.
---@param group integer
---@param peer integer
function rt.group_remove(group, peer) end

---A group's members as the core last reported them (changes made in the running callback
---show after it returns). `rt.ALL_PLAYERS` gives every player.
---@param group integer
---@return integer[]
function rt.group_members(group) end

---@class rt.HttpResponse
---@field status integer
---@field headers table<string, string>   Names in lower case.
---@field body string

---@class rt.HttpRequest
---@field url string
---@field method string|nil     Default "GET".
---@field headers table<string, string>|nil
---@field body string|nil
---@field timeout_ms integer|nil At most [script] http_timeout_ms.


---The group id of every player in the session (65535): a target and a query, never joined.
rt.ALL_PLAYERS = 65535

---Sends a group's membership (GROUP_MEMBERS) to `to` (a target as for rt.send).
---@param group integer
---@param to rt.Target
function rt.send_group_members(group, to) end

---Changes the session's player limit, empty-session linger and whether it takes new players,
---within the server's limits.
---@param settings { max_players: integer|nil, linger_ms: integer|nil, open: boolean|nil, send_interval_ms: integer|nil }
function rt.configure_session(settings) end

---A number as JavaScript's String(n) writes it: 4.0 is "4", -0.0 is "0", 1e21 is "1e+21".
---@param n number
---@return string
function rt.format_number(n) end

---Calls `fn` once after `ms` milliseconds; returns its id.
---@param fn fun()
---@param ms number
---@return integer
function rt.set_timeout(fn, ms) end

---Calls `fn` every `ms` milliseconds until cleared; returns its id.
---@param fn fun()
---@param ms number
---@return integer
function rt.set_interval(fn, ms) end

---Cancels a timeout (or an interval).
---@param id integer|nil
function rt.clear_timeout(id) end

---Cancels an interval (or a timeout).
---@param id integer|nil
function rt.clear_interval(id) end

---Calls the `on_tick(dt_ms)` callback `hz` times a second; 0 stops it.
---@param hz number
function rt.set_tick_rate(hz) end

---Server wall clock in milliseconds since the Unix epoch (with a fractional part).
---@return number
function rt.time() end
