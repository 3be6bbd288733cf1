//! The mio shell around the sans-IO core: sockets, tokens, the loop, signals.
//!
//! One thread and one `mio::Poll` serve everything. Fixed tokens name the TCP listener, the UDP
//! socket, the waker and the signal pipe; connection `ConnId(n)` is token `FIRST_CONN + n`.
//!
//! Files: `event_loop.rs` is one loop turn (poll, read, timers, flush, close); `tcp.rs` accepts,
//! reads and writes connections; `ws.rs` does the same for WebSocket connections (tungstenite
//! over the same non-blocking stream; the core cannot tell them apart); `udp.rs` receives and
//! sends datagrams, many per syscall through `mmsg.rs` (`sendmmsg`/`recvmmsg`); `linger.rs`
//! keeps a closed connection's socket until its client closes too, so a reset never destroys
//! the CLOSE frame that says why. Each listener (TCP, WebSocket, TLS, `wss://`) hands its
//! connections a [`crate::tls::Stream`], plain or TLS, so everything past the accept is the
//! same code.

mod admin;
mod event_loop;
mod linger;
mod mmsg;
mod tcp;
mod udp;
mod ws;

use crate::config::Config;
use crate::core::{ConnId, Hooks, Server, WallClock};
use crate::tls::{CertStore, Stream};
use mio::net::{TcpListener, UdpSocket};
use mio::{Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const LISTENER: Token = Token(0);
const UDP: Token = Token(1);
const WAKER: Token = Token(2);
const SIGNALS: Token = Token(3);
const WS_LISTENER: Token = Token(4);
const TLS_LISTENER: Token = Token(5);
const WSS_LISTENER: Token = Token(6);
const FIRST_CONN: usize = 16;

/// Closed connections' sockets that may still be open at once (see `linger.rs`), on top of
/// `server.max_connections`.
pub use linger::MAX_LINGERING;

/// A connection's transport.
enum Link {
    /// Native frames on a TCP stream (plain or TLS).
    Tcp(Stream),
    /// A WebSocket upgrade in progress (resumed on each readable event). Boxed: it holds the
    /// request buffer, and most connections never need it.
    WsHandshake(Option<Box<ws::Upgrade>>),
    /// Native frames or sessionserver JSON in WebSocket messages (over plain TCP or TLS).
    Ws(Box<tungstenite::WebSocket<Stream>>),
}

/// Which listener a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// Native protocol over plain TCP.
    Tcp,
    /// WebSocket over plain TCP.
    Ws,
    /// Native protocol over TLS.
    Tls,
    /// WebSocket over TLS (`wss://`).
    Wss,
}

impl Door {
    fn websocket(self) -> bool {
        matches!(self, Door::Ws | Door::Wss)
    }

    fn tls(self) -> bool {
        matches!(self, Door::Tls | Door::Wss)
    }
}

/// A connection's transport, and when it started closing.
struct NetConn {
    link: Link,
    closing_since: Option<Instant>,
    /// A WebSocket's protocol, known from its first binary message.
    profile: WsProfile,
}

/// What a WebSocket connection's binary messages carry.
#[derive(Debug, Default)]
enum WsProfile {
    /// No binary message yet.
    #[default]
    Unknown,
    /// Native frames.
    Native,
    /// A vendor client's packets, translated (`crate::profiles`).
    Vendor(Box<crate::profiles::Adapter>),
}

/// Stops a running [`NetServer`] from another thread.
#[derive(Clone)]
pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ServerHandle {
    /// Wakes the loop, which then calls the session logic's [`Hooks::woken`].
    pub fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("could not wake the event loop: {e}");
        }
    }

    /// Starts a graceful stop: clients get CLOSE(SHUTTING_DOWN), output is flushed, `run` returns.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::error!("could not wake the event loop: {e}");
        }
    }
}

/// A bound server, ready to [`NetServer::run`].
pub struct NetServer<H: Hooks> {
    poll: Poll,
    listener: Option<TcpListener>,
    ws_listener: Option<TcpListener>,
    tls_listener: Option<TcpListener>,
    wss_listener: Option<TcpListener>,
    /// The certificate (reloaded in place) and the rustls configuration using it.
    tls: Option<(Arc<CertStore>, Arc<rustls::ServerConfig>)>,
    ws_config: tungstenite::protocol::WebSocketConfig,
    udp: Option<UdpSocket>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    core: Server<H>,
    conns: Vec<Option<NetConn>>,
    tcp_addr: SocketAddr,
    udp_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    grace_ms: u64,
    /// The admin listener's channel, if `[admin] listen` is set.
    admin: Option<crate::ops::Admin>,
    /// `rt.server_id`'s value, shown by the dashboard.
    server_id: String,
    /// The sessionserver JSON profile's state (`crate::profiles::sessionserver`).
    sessionserver: crate::profiles::sessionserver::SessionServer,
    /// Closed connections' sockets, waiting for their clients to close (`linger.rs`).
    lingering: linger::Lingering,
}

/// Binds an optional listener from a config address (empty: off) and registers it.
fn bind_listener(
    poll: &Poll,
    addr: &str,
    key: &str,
    what: &str,
    token: Token,
) -> io::Result<(Option<TcpListener>, Option<SocketAddr>)> {
    if addr.is_empty() {
        return Ok((None, None));
    }
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{key} {addr:?}: {e}")))?;
    let mut listener = TcpListener::bind(parsed).map_err(|e| {
        io::Error::new(e.kind(), format!("binding {what} on {parsed} ({key}): {e}"))
    })?;
    let bound = listener.local_addr()?;
    poll.registry()
        .register(&mut listener, token, Interest::READABLE)?;
    Ok((Some(listener), Some(bound)))
}

impl<H: Hooks> NetServer<H> {
    /// Starts a drain (SIGUSR2, `POST /api/drain`) and records it for the dashboard.
    pub(crate) fn drain(&mut self) {
        if self.core.begin_drain() {
            crate::ops::journal::push(
                crate::ops::journal::Kind::Drain,
                None,
                &format!(
                    "drain started with {} session(s) running",
                    self.core.session_count()
                ),
            );
        }
    }

    /// Binds the TCP listener and (unless disabled) the UDP socket, on the same port by default.
    pub fn bind(config: Config, hooks: H) -> io::Result<NetServer<H>> {
        let poll = Poll::new()?;
        let listen = config.server.listen;
        let mut listener = TcpListener::bind(listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("binding TCP listener on {listen} (server.listen): {e}"),
            )
        })?;
        let tcp_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (udp, udp_addr) = if config.server.udp_enabled {
            let addr = config.udp_addr(tcp_addr);
            let mut socket = UdpSocket::bind(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("binding UDP socket on {addr} (server.udp_listen): {e}"),
                )
            })?;
            let bound = socket.local_addr()?;
            poll.registry()
                .register(&mut socket, UDP, Interest::READABLE | Interest::WRITABLE)?;
            (Some(socket), Some(bound))
        } else {
            (None, None)
        };
        // A ticket key that cannot be used stops the start, before anything listens.
        crate::core::auth::Auth::from_config(&config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (ws_listener, ws_addr) = bind_listener(
            &poll,
            &config.server.ws_listen,
            "server.ws_listen",
            "WebSocket listener",
            WS_LISTENER,
        )?;
        let tls = if config.tls_enabled() {
            let store = CertStore::load(&config.tls.cert_file, &config.tls.key_file)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            store.watch()?;
            let server_config = store.server_config();
            Some((store, server_config))
        } else {
            None
        };
        let (tls_listener, tls_addr) = bind_listener(
            &poll,
            &config.tls.listen,
            "tls.listen",
            "TLS listener",
            TLS_LISTENER,
        )?;
        let (wss_listener, wss_addr) = bind_listener(
            &poll,
            &config.tls.ws_listen,
            "tls.ws_listen",
            "wss:// listener",
            WSS_LISTENER,
        )?;
        let ws_config = ws::config(&config);
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let admin = if config.admin.listen.is_empty() {
            None
        } else {
            let addr: SocketAddr = config.admin.listen.parse().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("admin.listen {:?}: {e}", config.admin.listen),
                )
            })?;
            let waker = waker.clone();
            Some(crate::ops::start(
                addr,
                crate::ops::Access {
                    token: config.admin.token.clone(),
                    allowed_hosts: config.admin.allowed_hosts.clone(),
                },
                move || {
                    let _ = waker.wake();
                },
            )?)
        };
        let server_id = config.server_id();
        let mut hooks = hooks;
        {
            let waker = waker.clone();
            hooks.set_waker(Arc::new(move || {
                let _ = waker.wake();
            }));
        }
        let clock = WallClock {
            at: Instant::now(),
            unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
        };
        let grace_ms = config.server.shutdown_grace_ms;
        let udp_port = udp_addr.map(|a| a.port()).unwrap_or(0);
        let show = |a: Option<SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
        log::info!(
            "listening tcp={tcp_addr} udp={} ws={} tls={} wss={} admin={}",
            show(udp_addr),
            show(ws_addr),
            show(tls_addr),
            show(wss_addr),
            show(admin.as_ref().map(|a| a.addr))
        );
        let game_listeners = [Some(tcp_addr), udp_addr, ws_addr, tls_addr, wss_addr];
        if let Some(public) = crate::config::open_to_the_network(&config, &game_listeners) {
            log::warn!(
                "[auth] mode is \"open\" and {public} is reachable beyond this machine: anyone \
                 can join any session as whoever they claim to be. Set [auth] mode = \"ticket\" \
                 (or \"token\") before players connect from the network, or listen on 127.0.0.1"
            );
        }
        Ok(NetServer {
            poll,
            listener: Some(listener),
            ws_listener,
            tls_listener,
            wss_listener,
            tls,
            ws_config,
            udp,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            signals: None,
            core: Server::new(config, udp_port, hooks, clock, os_entropy()),
            conns: Vec::new(),
            tcp_addr,
            udp_addr,
            ws_addr,
            tls_addr,
            wss_addr,
            grace_ms,
            admin,
            server_id,
            sessionserver: Default::default(),
            lingering: Default::default(),
        })
    }

    /// Stops gracefully on SIGINT or SIGTERM, reloads on SIGHUP, drains on SIGUSR2 (for the
    /// binary; tests use [`NetServer::handle`]).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR2])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// The TCP address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The UDP address actually bound, if UDP is on.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The WebSocket address actually bound, if WebSocket is on.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The TLS address for native clients actually bound, if on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The `wss://` address actually bound, if on.
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.wss_addr
    }

    /// The admin listener's address actually bound, if on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// A handle to stop the server from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            stop: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// The core, for inspection.
    pub fn core(&self) -> &Server<H> {
        &self.core
    }

    /// The session logic (to start its watcher with [`NetServer::handle`]'s waker, say).
    pub fn hooks_mut(&mut self) -> &mut H {
        self.core.hooks_mut()
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut NetConn> {
        self.conns.get_mut(id.0 as usize).and_then(Option::as_mut)
    }
}

/// The OS's random source, as the core's entropy (session ids, UDP and reconnect secrets).
pub fn os_entropy() -> crate::core::Entropy {
    // getrandom fails only where the OS has no random source at all; refusing to run there is
    // right.
    crate::core::Entropy::from_fn(|| getrandom::u64().expect("the OS random source is available"))
}
