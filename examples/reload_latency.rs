//! Time from writing an edited script to new sessions running it, over 20 edits. Not a test:
//! it measures. Each edit is followed by fresh sessions every 2 ms until one shows the new
//! version, so the figure is what a developer waiting to reconnect would see: the watcher's
//! debounce (150 ms of quiet), the reload's validation, and one connect.
//!
//! Run: `cargo run --release --example reload_latency`

use moonrt::client::{Client, Connect, Event};
use moonrt::config::Config;
use moonrt::net::NetServer;
use moonrt::script::{LuaHooks, ScriptSource};
use std::time::{Duration, Instant};

fn script(tag: usize) -> String {
    format!("return {{ on_player_join = function(p) rt.send(p.peer, 1, \"v{tag}\") end }}\n")
}

fn main() {
    let dir = std::env::temp_dir().join(format!("moonrt-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("main.lua");
    std::fs::write(&path, script(0)).unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.ws_listen = "127.0.0.1:0".into();
    config.sessions.empty_session_linger_ms = 0;
    let (tx, rx) = std::sync::mpsc::channel();
    let source = ScriptSource::read(&path).unwrap();
    let thread = std::thread::spawn(move || {
        let hooks = LuaHooks::new(source, &config).unwrap();
        let mut server = NetServer::bind(config, hooks).unwrap();
        let handle = server.handle();
        server.hooks_mut().watch(move || handle.wake()).unwrap();
        tx.send((server.local_addr(), server.handle())).unwrap();
        server.run().unwrap();
    });
    let (addr, handle) = rx.recv().unwrap();
    let version = |room: usize| -> String {
        let mut c = Client::connect(addr, Connect::join_or_create(&format!("r{room}"))).unwrap();
        match c.wait_for(Duration::from_secs(5), |e| matches!(e, Event::Delivery(_))) {
            Ok(Event::Delivery(d)) => String::from_utf8(d.payload).unwrap(),
            other => panic!("no greeting: {other:?}"),
        }
    };
    let mut room = 0;
    let mut times = Vec::new();
    for edit in 1..=20 {
        std::thread::sleep(Duration::from_millis(300)); // let the previous burst settle
        let want = format!("v{edit}");
        let written = Instant::now();
        std::fs::write(&path, script(edit)).unwrap();
        loop {
            room += 1;
            if version(room) == want {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(10),
                "edit {edit} never became current"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        times.push(written.elapsed());
    }
    handle.shutdown();
    thread.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "write -> current for new sessions, 20 edits: median {:.0} ms, best {:.0} ms, worst {:.0} ms \
         (includes the watcher's 150 ms quiet period and one connect)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}
