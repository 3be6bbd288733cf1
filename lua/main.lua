-- moonrt default session script: a plain relay that shows every callback.
--
-- One copy of this script runs per session, in its own Lua state, from the moment the session is
-- created until it ends. Globals and upvalues live exactly as long as the session.
-- The API is the global `rt` table; SCRIPTING.md documents every function and callback, and
-- lua/types/rt.lua gives your editor completion for them.
--
-- The script returns a table of callbacks. Every callback is optional: delete the ones you don't
-- need. Changes a callback asks for (sends, kicks, group edits) happen when it returns.

local session = {}

-- The session was created, before its first player joins. rt.session.data is yours.
function session.on_session_start(s)
  rt.log.info("session", s.id, "started", s.name ~= "" and ("as " .. s.name) or "")
end

-- A player asks to join. `payload` is the connect payload from its HELLO (a byte string).
-- Return false and a reason to refuse it; it receives REJECT code 15 with your reason.
function session.on_player_connect(player, payload)
  return true
end

-- The player is in: it has its WELCOME and the others have been told.
function session.on_player_join(player)
  rt.log.debug(player.name, "joined as peer", player.peer)
end

-- The player left. `reason` is a code name such as "client_left" or "connection_lost".
function session.on_player_leave(player, reason)
  rt.log.debug(player.name, "left:", reason)
end

-- Every packet a player sends passes here before it is routed (rt.on_packet(opcode, fn) handles
-- one opcode instead). Return false to drop it; change packet.payload or packet.to to rewrite it.
-- Leave this out entirely when you don't need it: packets then skip Lua altogether.
-- function session.on_packet(packet)
--   return true
-- end

-- A packet addressed to the server (peer 0).
function session.on_message(packet)
  rt.log.debug("peer", packet.sender, "sent opcode", packet.opcode, "to the server")
end

-- The session is ending (its last player left and it lingered, or rt.end_session was called).
function session.on_session_end()
  rt.log.info("session", rt.session.id, "ended")
end

return session
