//! Numeric codes shared by REJECT, CLOSE, ERROR and PLAYER_LEFT messages.
//!
//! One code space for every "why" the server can give, so a client needs one table. The values are
//! part of the wire protocol (see PROTOCOL.md, "Codes"): never renumber, only add.

/// Why a connection was refused or closed, why a player left, or what a non-fatal error was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Code {
    /// A frame could not be decoded (bad length, truncated field, invalid UTF-8, bad enum value).
    Malformed = 1,
    /// A frame's declared length is over the server's `limits.max_frame_bytes`.
    FrameTooLarge = 2,
    /// A message type the server does not know.
    UnknownMessageType = 3,
    /// The HELLO asked for a protocol version the server does not speak.
    UnsupportedVersion = 4,
    /// The connection did not complete its handshake within `server.handshake_timeout_ms`.
    HandshakeTimeout = 5,
    /// A message arrived that is not allowed in the connection's current state (e.g. DATA before HELLO).
    UnexpectedMessage = 6,
    /// A HELLO field is out of range (empty name for join-or-create, string too long, ...).
    BadHello = 7,
    /// A reconnect (HELLO mode 4) found no seat held for that peer with that secret.
    ReconnectRefused = 8,
    /// The session's script closed it to new players (`rt.configure_session{open = false}`).
    SessionClosed = 9,
    /// The server already holds `server.max_connections` connections.
    ServerFull = 10,
    /// Creating a session would pass `server.max_sessions`.
    TooManySessions = 11,
    /// The session already holds `sessions.max_players` players.
    SessionFull = 12,
    /// No session has the requested id.
    SessionNotFound = 13,
    /// A session with the requested name already exists (create mode only).
    SessionNameTaken = 14,
    /// Session logic refused the player (the message is the script's reason).
    RejectedByScript = 15,
    /// The access token did not match `auth.token`.
    InvalidToken = 16,
    /// The join ticket is missing, malformed, not signed by the configured key (forged or
    /// tampered with), or names another player than HELLO's `player_id`.
    InvalidTicket = 17,
    /// The join ticket has expired (or is not valid yet).
    TicketExpired = 18,
    /// The join ticket is for another session.
    TicketWrongSession = 19,
    /// Nothing was received from the client for `server.idle_timeout_ms`.
    IdleTimeout = 20,
    /// The client read too slowly: its pending output passed `limits.max_output_buffer_bytes`.
    OutputOverflow = 21,
    /// The server is shutting down.
    ShuttingDown = 22,
    /// The session ended.
    SessionEnded = 23,
    /// The player was removed by the server.
    Kicked = 24,
    /// The client said LEAVE.
    ClientLeft = 25,
    /// The connection was lost without a LEAVE (reset, EOF, error).
    ConnectionLost = 26,
    /// The same player id connected again; the older connection is closed.
    Replaced = 27,
    /// The client sent more than `limits.max_messages_per_sec` messages over TCP.
    RateLimited = 28,
    /// The session's script failed (over its instruction budget or memory cap); the session ended.
    ScriptFailed = 29,
    /// Non-fatal: a DATA message had opcode 0, which is reserved; the message was dropped.
    InvalidOpcode = 30,
    /// Non-fatal: a DATA message named a peer id that is not in the session; others still got it.
    UnknownPeer = 31,
    /// Non-fatal: group id 0 is reserved; the group request was ignored.
    InvalidGroup = 32,
    /// Non-fatal: the session's script refused a group join or leave.
    GroupRefused = 33,
    /// Non-fatal: the session's script refused a properties change.
    PropsRefused = 34,
    /// Non-fatal: properties over 4096 bytes; nothing changed.
    PropsTooLarge = 35,
    /// Non-fatal: DATA to a list of 0 peers reaches nobody; the message was dropped.
    NoTargets = 36,
    /// Non-fatal: a FRAME_SYNC was refused (by the session's script, or a rate outside 1-60).
    FrameSyncRefused = 37,
    /// Non-fatal: FRAME_INPUT or FRAME_REQUEST without frame sync running, or a frame's inputs
    /// full; dropped.
    NotInFrameSync = 38,
}

impl Code {
    /// Every code, for documentation tests and clients that print tables.
    pub const ALL: [Code; 38] = [
        Code::Malformed,
        Code::FrameTooLarge,
        Code::UnknownMessageType,
        Code::UnsupportedVersion,
        Code::HandshakeTimeout,
        Code::UnexpectedMessage,
        Code::BadHello,
        Code::ReconnectRefused,
        Code::SessionClosed,
        Code::ServerFull,
        Code::TooManySessions,
        Code::SessionFull,
        Code::SessionNotFound,
        Code::SessionNameTaken,
        Code::RejectedByScript,
        Code::InvalidToken,
        Code::InvalidTicket,
        Code::TicketExpired,
        Code::TicketWrongSession,
        Code::IdleTimeout,
        Code::OutputOverflow,
        Code::ShuttingDown,
        Code::SessionEnded,
        Code::Kicked,
        Code::ClientLeft,
        Code::ConnectionLost,
        Code::Replaced,
        Code::RateLimited,
        Code::ScriptFailed,
        Code::InvalidOpcode,
        Code::UnknownPeer,
        Code::InvalidGroup,
        Code::GroupRefused,
        Code::PropsRefused,
        Code::PropsTooLarge,
        Code::NoTargets,
        Code::FrameSyncRefused,
        Code::NotInFrameSync,
    ];

    /// The code's value on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code's name in snake_case, as scripts see it (`"client_left"`, `"idle_timeout"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Code::Malformed => "malformed",
            Code::FrameTooLarge => "frame_too_large",
            Code::UnknownMessageType => "unknown_message_type",
            Code::UnsupportedVersion => "unsupported_version",
            Code::HandshakeTimeout => "handshake_timeout",
            Code::UnexpectedMessage => "unexpected_message",
            Code::BadHello => "bad_hello",
            Code::ReconnectRefused => "reconnect_refused",
            Code::SessionClosed => "session_closed",
            Code::ServerFull => "server_full",
            Code::TooManySessions => "too_many_sessions",
            Code::SessionFull => "session_full",
            Code::SessionNotFound => "session_not_found",
            Code::SessionNameTaken => "session_name_taken",
            Code::RejectedByScript => "rejected_by_script",
            Code::InvalidToken => "invalid_token",
            Code::InvalidTicket => "invalid_ticket",
            Code::TicketExpired => "ticket_expired",
            Code::TicketWrongSession => "ticket_wrong_session",
            Code::IdleTimeout => "idle_timeout",
            Code::OutputOverflow => "output_overflow",
            Code::ShuttingDown => "shutting_down",
            Code::SessionEnded => "session_ended",
            Code::Kicked => "kicked",
            Code::ClientLeft => "client_left",
            Code::ConnectionLost => "connection_lost",
            Code::Replaced => "replaced",
            Code::RateLimited => "rate_limited",
            Code::ScriptFailed => "script_failed",
            Code::InvalidOpcode => "invalid_opcode",
            Code::UnknownPeer => "unknown_peer",
            Code::InvalidGroup => "invalid_group",
            Code::GroupRefused => "group_refused",
            Code::PropsRefused => "props_refused",
            Code::PropsTooLarge => "props_too_large",
            Code::NoTargets => "no_targets",
            Code::FrameSyncRefused => "frame_sync_refused",
            Code::NotInFrameSync => "not_in_frame_sync",
        }
    }

    /// The code for a wire value, if it is one this version knows.
    pub fn from_u16(value: u16) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_u16() == value)
    }
}
