//! The seam where session logic (the Lua layer) takes part in a session.
//!
//! The core calls a [`Hooks`] implementation at fixed points: a session starts or ends, a player
//! asks to connect, joins, leaves or binds UDP, a group changes, a packet arrives, a timer fires.
//! Logic never touches core state directly: what it wants done (send, kick, end the session, edit
//! a group, arm a timer) goes into the [`Outbox`] in its [`Ctx`], and the core applies it after the
//! call returns. So a hook cannot re-enter the core or leave it half-updated.
//! [`NoScript`] is the plain relay: every packet forwarded, messages to the server counted only.

use super::codec::{Data, Intent};
use super::codes::Code;
use super::ids::{PeerId, SessionId};
use std::time::Instant;

/// What to do with a packet offered to [`Hooks::on_packet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Route it as the sender asked.
    Forward,
    /// Drop it silently.
    Drop,
    /// Route it with a new payload and/or new receivers.
    Rewrite {
        /// Replacement payload, if changed.
        payload: Option<Vec<u8>>,
        /// Replacement receivers, if changed ([`SendTarget::All`] still skips the sender).
        to: Option<SendTarget>,
    },
}

/// Receivers of a message sent or retargeted by session logic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// Every player in the session (for a player's packet: every other player).
    All,
    /// These peers (0 = the server, for a player's packet).
    Peers(Vec<u16>),
    /// Every member of this group (for a player's packet: except the sender).
    Group(u16),
}

/// Something session logic asked the core to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a message from the server (peer 0) or on behalf of a player.
    Send {
        /// Session to send in.
        session: SessionId,
        /// Sender shown to receivers: 0 for the server, or a player's peer id.
        from: PeerId,
        /// Receivers.
        to: SendTarget,
        /// Opcode (non-zero).
        opcode: u32,
        /// Intent.
        intent: Intent,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Remove a player: it gets CLOSE with code 24 and this reason.
    Kick {
        /// Session.
        session: SessionId,
        /// Player.
        peer: PeerId,
        /// Shown to the player.
        reason: String,
    },
    /// End the session: every player gets CLOSE with `code` and this reason.
    EndSession {
        /// Session.
        session: SessionId,
        /// Code sent to the players (23 when a script ends it, 29 when the script failed).
        code: Code,
        /// Shown to the players.
        reason: String,
    },
    /// Put a player in a group.
    GroupAdd {
        /// Session.
        session: SessionId,
        /// Group (not 0).
        group: u16,
        /// Player.
        peer: PeerId,
    },
    /// Take a player out of a group.
    GroupRemove {
        /// Session.
        session: SessionId,
        /// Group.
        group: u16,
        /// Player.
        peer: PeerId,
    },
    /// Set a player's (`peer` non-zero) or the session's (`peer` 0) custom properties; everyone
    /// in the session is told.
    SetProps {
        /// Session.
        session: SessionId,
        /// The player, or 0 for the session's properties.
        peer: PeerId,
        /// The new properties.
        props: Vec<u8>,
    },
    /// Change the session's settings (each `None` stays), within the server-wide limits.
    Configure {
        /// Session.
        session: SessionId,
        /// Players it holds at most.
        max_players: Option<usize>,
        /// How long it stays once empty, ms.
        linger_ms: Option<u64>,
        /// Whether it takes new players.
        open: Option<bool>,
        /// Its send interval (coalesced sending), ms.
        send_interval_ms: Option<u64>,
    },
    /// Start (`on`, at `rate` frames per second) or stop frame sync.
    FrameSync {
        /// Session.
        session: SessionId,
        /// Start or stop.
        on: bool,
        /// Frames per second (1-60).
        rate: u8,
    },
    /// Send a group's membership (GROUP_MEMBERS) to these receivers (GameLift's
    /// `broadcastGroupMembershipUpdate`).
    SendGroupMembers {
        /// Session.
        session: SessionId,
        /// The group whose members are sent.
        group: u16,
        /// Who gets it.
        to: SendTarget,
    },
    /// Call [`Hooks::on_timer`] with `timer` at `at`.
    SetTimer {
        /// Session.
        session: SessionId,
        /// Logic's own timer id.
        timer: u64,
        /// When.
        at: Instant,
    },
}

/// Commands recorded during a hook call, applied by the core when it returns.
#[derive(Debug, Default)]
pub struct Outbox {
    pub(crate) commands: Vec<Command>,
}

impl Outbox {
    /// Records a command.
    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }
}

/// Whose custom properties a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropsScope {
    /// The player's own (MGOBE custom player status).
    Player,
    /// The session's (MGOBE room properties).
    Session,
}

/// What every hook call is given: which session, the time, and where to put commands.
pub struct Ctx<'a> {
    /// The session the call is about.
    pub session: SessionId,
    /// The core's `now`.
    pub now: Instant,
    /// Server wall clock at `now`, microseconds since the Unix epoch.
    pub wall_us: u64,
    /// Where commands go.
    pub out: &'a mut Outbox,
}

/// A player as session logic sees it.
#[derive(Debug, Clone, Copy)]
pub struct PlayerInfo<'a> {
    /// Peer id in the session.
    pub peer: PeerId,
    /// The game's id for the player.
    pub player_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// The claims of the join ticket that admitted the player (a JSON object), if any.
    pub claims: Option<&'a serde_json::Value>,
}

/// A new session, as session logic first sees it.
#[derive(Debug, Clone, Copy)]
pub struct SessionStart<'a> {
    /// Its name ("" if unnamed).
    pub name: &'a str,
    /// The creating ticket's `params` claim, if any.
    pub params: Option<&'a serde_json::Value>,
    /// Players it holds at most.
    pub max_players: usize,
    /// How long it stays once empty, ms.
    pub linger_ms: u64,
    /// Its send interval (coalesced sending), ms; 0 sends every loop turn.
    pub send_interval_ms: u64,
    /// The server-wide limits settings may not pass: `sessions.max_players` and
    /// `sessions.empty_session_linger_ms`.
    pub limits: (usize, u64),
}

/// What session logic reports about itself (for `/metrics` and the admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogicStatus {
    /// The script generation new sessions start with (0: no script).
    pub generation: u64,
    /// Whether the last reload made a new generation current (`None`: no reload yet, or it
    /// found nothing changed).
    pub last_reload_ok: Option<bool>,
    /// Errors raised in callbacks since start.
    pub errors: u64,
    /// Bytes used by every session's Lua state together.
    pub memory_bytes: u64,
}

/// What session logic reports about one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLogic {
    /// The script generation the session runs.
    pub generation: u64,
    /// Bytes its Lua state uses.
    pub memory_bytes: u64,
}

/// Session logic called by the core. Every method has a do-nothing default.
pub trait Hooks {
    /// A session was created (before its first player joins), with the creation parameters of
    /// the ticket that created it, if any. An error refuses the player that created it (REJECT
    /// code 29) and removes the session.
    fn session_started(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _start: &SessionStart<'_>,
    ) -> Result<(), String> {
        Ok(())
    }

    /// A session ended; its logic's state can go.
    fn session_ended(&mut self, _ctx: &mut Ctx<'_>) {}

    /// A player asks to join (`payload` is the HELLO's connect payload). An error refuses it with
    /// REJECT code 15 and the error as message.
    fn player_connecting(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _player: PlayerInfo<'_>,
        _payload: &[u8],
    ) -> Result<(), String> {
        Ok(())
    }

    /// A player joined (after WELCOME and PLAYER_JOINED went out).
    fn player_joined(&mut self, _ctx: &mut Ctx<'_>, _player: PlayerInfo<'_>) {}

    /// A player's connection dropped and its seat is held (`sessions.reconnect_grace_ms`).
    fn player_disconnected(&mut self, _ctx: &mut Ctx<'_>, _peer: PeerId) {}

    /// A player whose seat was held is back on a new connection, with the same peer id.
    fn player_reconnected(&mut self, _ctx: &mut Ctx<'_>, _peer: PeerId) {}

    /// A player asks to start (`on`) or stop frame sync. `false` refuses it (ERROR 37).
    fn frame_sync_request(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _peer: PeerId,
        _on: bool,
        _rate: u8,
    ) -> bool {
        true
    }

    /// A frame is about to go out; the logic may change its inputs.
    fn on_frame(&mut self, _ctx: &mut Ctx<'_>, _frame: &mut super::frames::Frame) {}

    /// A player left, with the reason its peers were told.
    fn player_left(&mut self, _ctx: &mut Ctx<'_>, _peer: PeerId, _reason: Code) {}

    /// A player's UDP channel was bound (the only network change v1 reports).
    fn udp_bound(&mut self, _ctx: &mut Ctx<'_>, _peer: PeerId) {}

    /// A player asks to join (`joining`) or leave a group. `false` refuses it: the player gets
    /// ERROR code 33 and the membership stays as it was.
    fn group_request(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _peer: PeerId,
        _group: u16,
        _joining: bool,
    ) -> bool {
        true
    }

    /// A player asks to change its own or the session's custom properties. `false` refuses it:
    /// the player gets ERROR code 34 and nothing changes.
    fn props_request(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _peer: PeerId,
        _scope: PropsScope,
        _props: &[u8],
    ) -> bool {
        true
    }

    /// A group's membership changed; `members` is the new list.
    fn group_changed(&mut self, _ctx: &mut Ctx<'_>, _group: u16, _members: &[PeerId]) {}

    /// Offered every DATA message from a player before it is routed.
    fn on_packet(&mut self, _ctx: &mut Ctx<'_>, _sender: PeerId, _data: &Data<'_>) -> Verdict {
        Verdict::Forward
    }

    /// A DATA message addressed to the server (peer 0). Returns whether anything handled it.
    fn on_server_message(&mut self, _ctx: &mut Ctx<'_>, _sender: PeerId, _data: &Data<'_>) -> bool {
        false
    }

    /// A timer armed with [`Command::SetTimer`] is due.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _timer: u64) {}

    /// The server is stopping (before its sessions end).
    fn server_stopping(&mut self) {}

    /// Reload the logic now (SIGHUP). New sessions get the new logic; running ones keep theirs.
    fn reload(&mut self) {}

    /// The event loop was woken from another thread (a watcher saw files change, say).
    fn woken(&mut self) {}

    /// Sessions whose logic has work from another thread (an answer to `rt.http`): the core
    /// calls [`Hooks::session_woken`] for each, with a context.
    fn woken_sessions(&mut self) -> Vec<SessionId> {
        Vec::new()
    }

    /// Work for this session arrived from another thread.
    fn session_woken(&mut self, _ctx: &mut Ctx<'_>) {}

    /// How to wake the event loop from another thread (given when the server is bound).
    fn set_waker(&mut self, _wake: std::sync::Arc<dyn Fn() + Send + Sync>) {}

    /// Whether the logic considers the process healthy (for health checks).
    fn healthy(&mut self) -> bool {
        true
    }

    /// The logic's state as a whole, for metrics.
    fn status(&self) -> LogicStatus {
        LogicStatus::default()
    }

    /// One session's logic, for the admin API.
    fn session_status(&self, _session: SessionId) -> Option<SessionLogic> {
        None
    }
}

/// No session logic: a plain relay.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoScript;

impl Hooks for NoScript {}
