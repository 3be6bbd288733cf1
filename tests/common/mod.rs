//! Shared helpers: a real server on 127.0.0.1:0 in a thread, stopped when dropped.
#![allow(dead_code)]

pub mod vendor;

use moonrt::client::{Client, Connect, Event};
use moonrt::config::Config;
use moonrt::core::codec::{Data, Intent};
use moonrt::core::{Code, Command, Ctx, Hooks, NoScript, PeerId, SendTarget, Stats};
use moonrt::net::{NetServer, ServerHandle};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a test waits for anything that should arrive; never reached when things work.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub udp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// The TLS listener for native clients, if `tls.listen` is set.
    pub tls: Option<SocketAddr>,
    /// The `wss://` listener, if `tls.ws_listen` is set.
    pub wss: Option<SocketAddr>,
    handle: ServerHandle,
    thread: Option<JoinHandle<Stats>>,
}

/// A config for tests: loopback, ephemeral port, sessions end when empty.
pub fn config() -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.ws_listen = "127.0.0.1:0".into();
    c.sessions.empty_session_linger_ms = 0;
    c
}

impl TestServer {
    pub fn start(config: Config) -> TestServer {
        TestServer::start_with(config, NoScript)
    }

    pub fn start_with<H: Hooks + Send + 'static>(config: Config, hooks: H) -> TestServer {
        TestServer::start_built(config, move || hooks)
    }

    /// Starts a server whose hooks are built on its own thread (Lua states stay on one thread).
    pub fn start_built<H: Hooks + 'static>(
        config: Config,
        build: impl FnOnce() -> H + Send + 'static,
    ) -> TestServer {
        TestServer::start_prepared(config, build, |_| {})
    }

    /// Like [`TestServer::start_built`], with `prepare` run on the bound server before it runs.
    pub fn start_prepared<H: Hooks + 'static>(
        config: Config,
        build: impl FnOnce() -> H + Send + 'static,
        prepare: impl FnOnce(&mut NetServer<H>) + Send + 'static,
    ) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut server = NetServer::bind(config, build()).expect("bind on loopback");
            prepare(&mut server);
            tx.send((
                server.local_addr(),
                server.udp_addr(),
                server.ws_addr(),
                (server.tls_addr(), server.wss_addr()),
                server.handle(),
            ))
            .unwrap();
            server.run().expect("event loop")
        });
        let (addr, udp, ws, (tls, wss), handle) = rx.recv().expect("server started");
        TestServer {
            addr,
            udp,
            ws,
            tls,
            wss,
            handle,
            thread: Some(thread),
        }
    }

    /// Waits for the server to stop by itself (after a drain, say); its final counters, or
    /// `None` if it is still running after `wait`.
    pub fn join_within(mut self, wait: Duration) -> Option<Stats> {
        let deadline = std::time::Instant::now() + wait;
        while !self.thread.as_ref()?.is_finished() {
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.thread.take()?.join().ok()
    }

    /// Stops gracefully and returns the server's final counters.
    pub fn stop(mut self) -> Stats {
        self.handle.shutdown();
        self.thread.take().unwrap().join().expect("server thread")
    }

    pub fn connect(&self, room: &str, name: &str) -> Client {
        Client::connect(self.addr, Connect::join_or_create(room).name(name)).expect("connect")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = thread.join();
        }
    }
}

/// Waits for the next delivery, skipping other events.
pub fn next_delivery(client: &mut Client) -> moonrt::client::Delivery {
    match client
        .wait_for(WAIT, |e| matches!(e, Event::Delivery(_)))
        .expect("a delivery")
    {
        Event::Delivery(d) => d,
        _ => unreachable!(),
    }
}

/// Waits for the connection to be closed; returns the close code.
pub fn closed_code(client: &mut Client) -> u16 {
    match client
        .wait_for(WAIT, |e| matches!(e, Event::Closed { .. }))
        .expect("a close")
    {
        Event::Closed { code, .. } => code,
        _ => unreachable!(),
    }
}

/// Waits for the next PLAYER_LEFT and asserts who left and why.
pub fn assert_player_left(client: &mut Client, peer: u16, reason: Code) {
    let left = client
        .wait_for(WAIT, |e| matches!(e, Event::PlayerLeft { .. }))
        .expect("a PLAYER_LEFT");
    assert_eq!(
        left,
        Event::PlayerLeft {
            peer,
            reason: reason.as_u16()
        }
    );
}

/// Asserts nothing but the listed kinds of event arrive for `wait`.
pub fn assert_no_delivery(client: &mut Client, wait: Duration) {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match client.next_event(left).expect("connection stays open") {
            None => return,
            Some(Event::Delivery(d)) => panic!("unexpected delivery {d:?}"),
            Some(_) => {}
        }
    }
}

/// Session logic that answers every message to the server with its payload reversed, from peer 0.
pub struct Reverser;

impl Hooks for Reverser {
    fn on_server_message(&mut self, ctx: &mut Ctx<'_>, sender: PeerId, data: &Data<'_>) -> bool {
        ctx.out.push(Command::Send {
            session: ctx.session,
            from: PeerId::SERVER,
            to: SendTarget::Peers(vec![sender.0]),
            opcode: data.opcode,
            intent: Intent::Reliable,
            payload: data.payload.iter().rev().copied().collect(),
        });
        true
    }
}

/// A folder under the system temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("moonrt-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server running `script` (written to a real file as main.lua in a temp folder).
pub fn start_script(config: Config, script: &str) -> (TestServer, TempDir) {
    let dir = TempDir::new("script");
    let path = dir.write("main.lua", script);
    (start_script_file(config, &path), dir)
}

/// A server running the script at `path`.
pub fn start_script_file(config: Config, path: &std::path::Path) -> TestServer {
    let source = moonrt::script::ScriptSource::read(path).unwrap();
    let for_hooks = config.clone();
    TestServer::start_built(config, move || {
        moonrt::script::LuaHooks::new(source, &for_hooks).expect("script loads")
    })
}

/// Waits for a delivery with this opcode, skipping others; returns its payload as text.
pub fn text_on(client: &mut Client, opcode: u32) -> String {
    match client
        .wait_for(
            WAIT,
            |e| matches!(e, Event::Delivery(d) if d.opcode == opcode),
        )
        .unwrap_or_else(|e| panic!("no delivery with opcode {opcode}: {e}"))
    {
        Event::Delivery(d) => String::from_utf8(d.payload).unwrap(),
        _ => unreachable!(),
    }
}

/// A server running the script at `path` with the folder watcher on, as the binary runs it.
pub fn start_watching(config: Config, path: &std::path::Path) -> TestServer {
    let source = moonrt::script::ScriptSource::read(path).unwrap();
    let for_hooks = config.clone();
    TestServer::start_prepared(
        config,
        move || moonrt::script::LuaHooks::new(source, &for_hooks).expect("script loads"),
        |server| {
            let handle = server.handle();
            server
                .hooks_mut()
                .watch(move || handle.wake())
                .expect("watch the folder");
        },
    )
}

/// The real `moonrt` binary running `--config <config>`, its TCP address from its log, and a
/// thread collecting the rest of the log (so the pipe never fills).
pub fn spawn_binary(
    config: &std::path::Path,
) -> (
    std::process::Child,
    String,
    std::thread::JoinHandle<Vec<String>>,
) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moonrt"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server logs before exiting").unwrap();
        if let Some(rest) = line.split("listening tcp=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    (child, addr, drain)
}

/// Runs the real `moonrt` binary with `args` in `dir` to completion (`check`, say).
pub fn run_moonrt(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_moonrt"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The headless Chromium to drive, or `None` (then the test is skipped, unless CI requires
/// every tool with `MOONRT_REQUIRE_TOOLS`, which fails it).
pub fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var_os("MOONRT_REQUIRE_TOOLS").is_none(),
            "MOONRT_REQUIRE_TOOLS is set but no chromium is installed"
        );
        eprintln!("skipped: no chromium (.ci/run installs it)");
    }
    found
}

/// A server with the admin listener on and a script; its admin address.
pub fn start_script_with_admin(config: Config, script: &str) -> (TestServer, TempDir, SocketAddr) {
    let dir = TempDir::new("admin");
    let path = dir.write("main.lua", script);
    let source = moonrt::script::ScriptSource::read(&path).unwrap();
    let for_hooks = config.clone();
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start_prepared(
        config,
        move || moonrt::script::LuaHooks::new(source, &for_hooks).expect("script loads"),
        move |server| tx.send(server.admin_addr().unwrap()).unwrap(),
    );
    let admin = rx.recv().unwrap();
    (server, dir, admin)
}

/// A join ticket as a game's backend signs it with its own JWT library (HS256): `claims` plus
/// `sub` = `player` and an expiry a minute from now.
pub fn sign_ticket(secret: &str, player: &str, mut claims: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["sub"] = player.into();
    claims["exp"] = (now + 60).into();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An HTTP client for the admin listener: statuses are answers, not errors; 5 s at most.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}
