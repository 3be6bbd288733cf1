//! CPU time and resident memory of processes, from /proc; and the child processes under test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// CPU seconds a process has used, all threads, from the scheduler's nanosecond counters
/// (`/proc/<pid>/task/*/schedstat`; `/proc/<pid>/stat` only counts in 10 ms ticks).
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// The most resident memory a process has had, in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM:")
}

fn status_bytes(pid: u32, field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds this process (the generator) has used, finished threads included.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Raises the open-file limit to its hard maximum (the generator holds many sockets).
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A free loopback port (for a TCP listener and a UDP socket on the same number).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback is available");
        let port = tcp.local_addr().expect("bound").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A process under measurement; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Process {
    child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid())
    }

    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the moonrt binary is: `--server-bin`, else next to this one.
pub fn server_binary(given: Option<&Path>) -> PathBuf {
    if let Some(path) = given {
        return path.to_owned();
    }
    let me = std::env::current_exe().expect("the running binary has a path");
    me.with_file_name("moonrt")
}

/// Starts the moonrt server on `port` (TCP and UDP) with a config file body; waits until it
/// accepts connections.
pub fn spawn_server(binary: &Path, config_dir: &Path, config: &str, port: u16) -> Process {
    let path = config_dir.join("bench-config.toml");
    std::fs::write(&path, config).expect("temp dir is writable");
    let child = Command::new(binary)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); build it first: cargo build --release",
                binary.display()
            )
        });
    let mut process = Process {
        child,
        name: "moonrt".into(),
    };
    wait_listening(&mut process, port);
    process
}

/// Starts the floor reflector (this binary's `reflector` subcommand) on `port`.
pub fn spawn_reflector(port: u16, batched: bool) -> Process {
    let me = std::env::current_exe().expect("the running binary has a path");
    let mut child = Command::new(me)
        .arg("reflector")
        .arg("--port")
        .arg(port.to_string())
        .args(batched.then_some("--batched"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bench binary can start itself");
    // It prints one line once its sockets are bound.
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let mut process = Process {
        child,
        name: if batched {
            "floor (batched)".into()
        } else {
            "floor (naive)".into()
        },
    };
    wait_listening(&mut process, port);
    process
}

/// Runs `program args` in `dir` to completion; its error output says why it failed.
fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Starts `node dir/serve.js args...` with `env` set, and waits until it listens on `port`.
fn spawn_node(
    dir: &Path,
    args: &[&std::ffi::OsStr],
    env: (&str, &std::ffi::OsStr),
    port: u16,
    name: &str,
) -> Process {
    let child = Command::new("node")
        .arg(dir.join("serve.js"))
        .args(args)
        .env(env.0, env.1)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("node starts {name} (npm installed it): {e}"));
    let mut process = Process {
        child,
        name: name.into(),
    };
    wait_listening(&mut process, port);
    process
}

/// The npm package `sessionserver` 0.2.5, fetched into `dir` the way
/// `tests/fixtures/sessionserver/record_reference.sh` does: its own dependency list names an
/// `http` package that no longer resolves, and it needs only `ws`. Returns the file to
/// `require`, or why it could not be installed (no node, npm or network).
pub fn install_sessionserver(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    run_in(dir, "npm", &["pack", "--silent", "sessionserver@0.2.5"])?;
    run_in(dir, "tar", &["xzf", "sessionserver-0.2.5.tgz"])?;
    run_in(dir, "npm", &["init", "-y"])?;
    run_in(
        dir,
        "npm",
        &["install", "--silent", "--no-audit", "--no-fund", "ws@7.4.2"],
    )?;
    std::fs::write(
        dir.join("serve.js"),
        "// Quiet: the package logs every message it sends, which would be most of its CPU.\n\
         for (const n of ['log', 'error', 'warn', 'group', 'groupEnd']) console[n] = () => {};\n\
         const { SessionServer } = require(process.argv[2]);\n\
         SessionServer.Create(Number(process.argv[3]));\n",
    )
    .map_err(|e| e.to_string())?;
    Ok(dir.join("package/build/SessionServer.js"))
}

/// Starts the installed `sessionserver` package on `port` with node.
pub fn spawn_sessionserver(dir: &Path, module: &Path, port: u16) -> Process {
    let port_arg = port.to_string();
    spawn_node(
        dir,
        &[module.as_os_str(), port_arg.as_ref()],
        ("NODE_PATH", dir.join("node_modules").as_os_str()),
        port,
        "npm sessionserver",
    )
}

/// Colyseus 0.16 (`@colyseus/core` and `@colyseus/ws-transport`), fetched into `dir`, and a
/// server with one room type, `relay`: up to 8 clients, filtered by the client's `session`
/// option, relaying every raw-bytes message of type 7 to the other clients unchanged.
pub fn install_colyseus(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    run_in(
        dir,
        "npm",
        &[
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "@colyseus/core@0.16",
            "@colyseus/ws-transport@0.16",
        ],
    )?;
    std::fs::write(
        dir.join("serve.js"),
        "for (const n of ['log', 'info', 'warn', 'error']) console[n] = () => {};\n\
         const { Server, Room } = require('@colyseus/core');\n\
         const { WebSocketTransport } = require('@colyseus/ws-transport');\n\
         class Relay extends Room {\n\
           onCreate() {\n\
             this.maxClients = 8;\n\
             this.onMessage(7, (client, bytes) => this.broadcast(7, bytes, { except: client }));\n\
           }\n\
         }\n\
         const server = new Server({ transport: new WebSocketTransport(), greet: false });\n\
         server.define('relay', Relay).filterBy(['session']);\n\
         server.listen(Number(process.argv[2]));\n",
    )
    .map_err(|e| e.to_string())
}

/// Starts the installed Colyseus relay server on `port` with node (production mode).
pub fn spawn_colyseus(dir: &Path, port: u16) -> Process {
    let port_arg = port.to_string();
    spawn_node(
        dir,
        &[port_arg.as_ref()],
        ("NODE_ENV", "production".as_ref()),
        port,
        "Colyseus 0.16",
    )
}

fn wait_listening(process: &mut Process, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(process.alive(), "{} exited at start", process.name);
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} did not listen on port {port} within 10 s", process.name);
}

/// A temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("moonrt-bench-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir is writable");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
