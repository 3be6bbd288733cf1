//! moonrt: a single-binary realtime multiplayer game server with Lua session logic.
//!
//! Clients connect over TCP (reliable, ordered) and bind a UDP channel (fast, unreliable); the
//! server relays their messages inside a session (a room) to everyone, to listed peers, to a group,
//! or to the server itself. The wire protocol is documented byte by byte in `PROTOCOL.md`.
//!
//! # Layout
//!
//! - [`config`]: `config.toml` structs, defaults and validation (no IO).
//! - [`core`]: the sans-IO server; no sockets, no clock reads.
//!   - [`core::codec`]: wire protocol v1, every message both ways; [`core::codes`]: reason codes.
//!   - `core::server`: connections, handshakes, sessions, timers, closing (the `handle_*` inputs
//!     and the pending-output getters); `core::router`: DATA routing, groups, pings,
//!     server-originated sends; `core::udp`: datagram authentication and binding.
//!   - `core::conn`: per-connection state and the delivery hot path; `core::outbuf`: the TCP
//!     stream buffer and the packed UDP datagram queue; `core::session`: members and groups;
//!     `core::timer`: the deadline heap; [`core::ids`], [`core::stats`].
//!   - [`core::hooks`]: the seam where session logic sees packets before they are routed;
//!     `core::commands`: what session logic asks for; `core::props`: custom properties.
//!   - `core::placement`: sessions created before their players (the admin API), the seat
//!     search, and HELLO join mode 5; `core::report`: what the admin API shows.
//!   - `core::text`: connections whose profile speaks text messages (their output queue, and
//!     the events the core leaves for that profile); `core::js_json`: JSON parsed and written
//!     the way JavaScript does.
//! - [`profiles`]: the wire formats other than native, each translating to and from the core and
//!   owning nothing else: [`profiles::gamesparks`] and [`profiles::gamelift`] (vendor clients'
//!   protobuf packets, translated to native frames between the WebSocket and the core, which
//!   sees native clients only; `profiles::login` turns a vendor login token into a HELLO), and
//!   [`profiles::sessionserver`] (the npm sessionserver JSON commands, working through the
//!   core's session API and keeping the package's session data). The core never calls into a
//!   profile: profiles depend on the core, not the other way round.
//!
//!   A packet's way, e.g. from a GameLift client: `net::ws` reads the WebSocket message →
//!   `profiles::Adapter::take_client_message` makes native DATA → `core::server` checks and
//!   `core::router` routes it, offering it to the session's script (`script::host`) → each
//!   receiver's output is native frames, which `net::ws` passes back through its profile's
//!   `Adapter::write_for_client` (or writes as they are, for native clients).
//! - [`net`]: the mio shell: one thread, one poll, TCP and WebSocket listeners, UDP socket, waker
//!   and signals; reads until `WouldBlock`, feeds the core, and flushes each connection once per
//!   loop turn (UDP datagrams of every player in one `sendmmsg`, `net::mmsg`). `net::ws` runs
//!   tungstenite on the loop's non-blocking streams; `net::linger` keeps a closed connection's
//!   socket until its client closes too, so its last CLOSE is never lost to a reset.
//! - [`script`]: the Lua host (one sandboxed state per session; see its module docs).
//! - [`rtdata`]: typed payloads (GameSparks' RTData), shared by scripts and clients.
//! - [`tls`]: rustls streams for the TLS listeners and the client, and the certificate store
//!   reloaded in place when its files change.
//! - [`core::auth`]: who may join (open, shared token, or JWT join tickets).
//! - [`watchdog`]: the thread outside the loop that logs stalled turns (session, callback,
//!   script line) and ends a process whose loop never comes back, or ignores a stop signal.
//! - [`client`]: a small Rust client used by tests, examples and the load generator.
//! - `main.rs`: the `moonrt` binary (CLI, logging, config loading).
//! - `src/bin/moonrt-bench/`: the load generator and benchmark scenarios (BENCHMARKS.md), with
//!   the floor reflector they compare against.
//! - `examples/loopback_relay.rs`: quick in-process figures, including the core alone (no
//!   sockets) with and without Lua.

pub mod client;
pub mod config;
pub mod core;
pub mod net;
pub mod ops;
pub mod profiles;
pub mod rtdata;
pub mod script;
pub mod tls;
pub mod watchdog;
