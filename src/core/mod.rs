//! The sans-IO core: codec, connections, sessions, groups, routing and timers.
//!
//! Nothing in here opens a socket or reads a clock. Inputs are method calls stamped with `now`;
//! outputs are events, pending bytes and the next deadline (see [`Server`] for the order to drain
//! them in). That makes every behaviour testable with a fake clock and no sleeps.

mod admission;
pub mod auth;
pub mod codec;
pub mod codes;
mod commands;
pub(crate) mod conn;
mod frames;
pub mod hooks;
pub mod ids;
pub(crate) mod js_json;
mod outbuf;
mod placement;
mod props;
mod report;
mod router;
mod server;
mod session;
pub mod stats;
pub(crate) mod text;
mod timer;
mod udp;

#[cfg(test)]
mod tests;

pub use admission::{Refusal, Seat, SeatRequest};
pub use codes::Code;
pub use conn::Transport;
pub use frames::Frame;
pub use hooks::{
    Command, Ctx, Hooks, LogicStatus, NoScript, Outbox, PlayerInfo, PropsScope, SendTarget,
    SessionLogic, SessionStart, Verdict,
};
pub use ids::{ConnId, Entropy, GroupId, PeerId, SessionId};
pub use placement::{NewSession, SessionFilter};
pub use server::{Event, Server, WallClock};
pub use session::ALL_PLAYERS_GROUP;
pub use stats::Stats;
pub use text::TextSender;
