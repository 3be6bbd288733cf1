//! moonrt: a single-binary realtime multiplayer game server with Lua session logic.
//!
//! Clients connect over TCP (reliable, ordered) and bind a UDP channel (fast, unreliable); the
//! server relays their messages inside a session (a room) to everyone, to listed peers, to a group,
//! or to the server itself. The wire protocol is documented byte by byte in `PROTOCOL.md`.
//!
//! # Layout
//!
//! - [`config`]: `config.toml` structs, defaults and validation (no IO).
//! - [`core`]: the sans-IO server. [`core::codec`] is the wire format; `core::server` handles
//!   connections, handshakes, sessions and timers; `core::router` routes DATA, groups and pings;
//!   `core::udp` authenticates datagrams; `core::conn` and `core::outbuf` hold per-connection
//!   output (one stream buffer and one packed datagram queue each); [`core::hooks`] is the seam
//!   where session logic sees packets before they are routed.
//! - [`net`]: the mio shell: one thread, one poll, TCP listener, UDP socket, waker and signals;
//!   reads until `WouldBlock`, feeds the core, and flushes each connection once per loop turn.
//! - [`client`]: a small Rust client used by tests, examples and the load generator.
//! - `main.rs`: the `moonrt` binary (CLI, logging, config loading).

pub mod client;
pub mod config;
pub mod core;
pub mod net;
