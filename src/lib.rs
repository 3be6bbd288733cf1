//! moonrt: a single-binary realtime multiplayer game server with Lua session logic.
//!
//! Clients connect over TCP (reliable, ordered) and bind a UDP channel (fast, unreliable); the
//! server relays their messages inside a session (a room) to everyone, to listed peers, to a group,
//! or to the server itself. The wire protocol is documented byte by byte in `PROTOCOL.md`.
//!
//! # Layout
//!
//! Every file under `src/` is named here (`tests/crate_layout.rs` keeps it so).
//!
//! - [`config`]: `config.toml` structs, defaults and validation (no IO).
//! - [`core`]: the sans-IO server; no sockets, no clock reads, no randomness of its own (the
//!   shell passes a [`core::Entropy`]), and nothing imported from the modules above it.
//!   - [`core::codec`]: wire protocol v1, every message both ways; [`core::codes`]: reason codes.
//!   - `core::server`: connections, handshakes, sessions, timers, closing (the `handle_*` inputs
//!     and the pending-output getters); `core::router`: DATA routing, groups, pings,
//!     server-originated sends; `core::udp`: datagram authentication and binding.
//!   - `core::admission`: the one door into a session (`Server::seat`) every wire seats its
//!     players through, and the native HELLO's path to it; [`core::auth`]: who may join (open,
//!     shared token, or JWT join tickets).
//!   - `core::conn`: per-connection state and the delivery hot path; `core::outbuf`: the TCP
//!     stream buffer and the packed UDP datagram queue; `core::session`: members and groups;
//!     `core::timer`: the deadline heap, fired in passes; [`core::ids`]: ids and the entropy;
//!     [`core::stats`].
//!   - [`core::hooks`]: the seam where session logic sees packets before they are routed;
//!     `core::commands`: what session logic asks for; `core::props`: custom properties;
//!     `core::frames`: frame sync (lockstep).
//!   - `core::placement`: sessions created before their players (the admin API), the seat
//!     search, and HELLO join mode 5; `core::report`: what the admin API and metrics read.
//!   - `core::text`: connections whose profile speaks text messages (their output queue, the
//!     events the core leaves for that profile, and all a text profile may ask of the core);
//!     `core::js_json`: JSON parsed and written the way JavaScript does.
//!   - `core::tests`: the core driven with a fake clock and no sockets.
//! - [`profiles`]: the wire formats other than native, each translating to and from the core and
//!   owning nothing else: [`profiles::gamesparks`] and [`profiles::gamelift`] (vendor clients'
//!   protobuf packets, translated to native frames between the WebSocket and the core, which
//!   sees native clients only; `profiles::login` turns a vendor login token into a HELLO;
//!   `profiles::pb` is their length-delimited framing), and [`profiles::sessionserver`] (the npm
//!   sessionserver JSON commands, working through the core's API and keeping the package's
//!   session data). No profile reads or writes the core's tables (they are private to `core`),
//!   and the core never calls into a profile.
//!
//!   A packet's way, e.g. from a GameLift client: `net::ws` reads the WebSocket message →
//!   `profiles::Adapter::take_client_message` makes native DATA → `core::server` checks and
//!   `core::router` routes it, offering it to the session's script (`script::host`) → each
//!   receiver's output is native frames, which `net::ws` passes back through its profile's
//!   `Adapter::write_for_client` (or writes as they are, for native clients).
//! - [`net`]: the mio shell: one thread, one poll, TCP and WebSocket listeners, UDP socket, waker
//!   and signals; `net::event_loop` is one turn (reads until `WouldBlock`, feeds the core,
//!   fires timers, flushes each connection once); `net::tcp` and `net::udp` read and write
//!   their sockets (UDP datagrams of every player in one `sendmmsg`, `net::mmsg`); `net::ws`
//!   runs tungstenite on the loop's non-blocking streams; `net::linger` keeps a closed
//!   connection's socket until its client closes too, so its last CLOSE is never lost to a
//!   reset; `net::admin` answers the admin listener's requests between turns.
//! - [`ops`]: the admin HTTP listener on its own thread: [`ops::guard`] (Host, cross-site and
//!   token checks), [`ops::journal`] (recent script errors, reloads, drains), [`ops::metrics`]
//!   (histograms and the exposition format), [`ops::server_metrics`] (the `/metrics` text from
//!   what the core reports) and `dashboard.html`.
//! - [`script`]: the Lua host (one sandboxed state per session): `script::sandbox`,
//!   `script::guards`, `script::lazy_libs`, `script::members`, `script::pattern`, `script::api`
//!   (the `rt` table: a registry of members filled by one file per concern, `script::api::sending`,
//!   `script::api::players`, `script::api::settings`, `script::api::timers`, `script::api::json`,
//!   `script::api::http`, `script::api::log`), `script::data` (`rt.data`), `script::http` (the
//!   pool behind `rt.http`),
//!   `script::callbacks`, `script::session`, `script::host`, `script::source`,
//!   `script::watcher`, and [`script::testing`] (`moonrt test`'s simulated server); its module
//!   docs say what each does.
//! - [`rtdata`]: typed payloads (GameSparks' RTData), shared by scripts and clients.
//! - [`tls`]: rustls streams for the TLS listeners and the client, and the certificate store
//!   reloaded in place when its files change.
//! - [`watchdog`]: the thread outside the loop that logs stalled turns (session, callback,
//!   script line) and ends a process whose loop never comes back, or ignores a stop signal.
//! - [`client`]: a small Rust client used by tests, examples and the load generator.
//! - `main.rs`: the `moonrt` binary (CLI, logging, config loading).
//! - `src/bin/moonrt-bench/`: the load generator and benchmark scenarios (BENCHMARKS.md):
//!   `moonrt-bench/main.rs` (the CLI), `moonrt-bench/scenarios.rs`, `moonrt-bench/load.rs`
//!   (the players), `moonrt-bench/ws.rs` (WebSocket players), `moonrt-bench/floor.rs` (the floor
//!   reflector they compare against), `moonrt-bench/containment.rs` (hostile scripts),
//!   `moonrt-bench/procstat.rs` (CPU and memory from /proc), `moonrt-bench/report.rs` (tables and
//!   JSON).
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
