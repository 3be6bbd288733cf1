//! The `moonrt` binary: parse the CLI, set up logging, load config.toml, run the server.

use clap::Parser;
use moonrt::config::Config;
use moonrt::core::{Hooks, NoScript};
use moonrt::net::NetServer;
use moonrt::script::{LuaHooks, ScriptSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// jemalloc: its size classes keep no header per object, which suits the many small objects
/// of a session's Lua state (an idle session is about 2.3 KiB smaller than with glibc's malloc;
/// BENCHMARKS.md, "Idle memory"). Same relay and Lua CPU per delivery, measured side by side.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: freed pages go back to the system at once instead of
/// after jemalloc's default 10 s, so the resident size follows the sessions and players the
/// server holds. `_RJEM_MALLOC_CONF` in the environment overrides it.
#[cfg(target_os = "linux")]
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: Option<&u8> = Some(&b"dirty_decay_ms:0,muzzy_decay_ms:0\0"[0]);

/// Longest `moonrt check` may take before it gives up with an error.
const CHECK_TIME_LIMIT: Duration = Duration::from_secs(20);

/// A realtime multiplayer game server with Lua session logic.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
    /// Development mode: empty sessions end at once (so an edited script reaches the next
    /// connect) and every script swap is logged prominently.
    #[arg(long)]
    dev: bool,
    /// Path to the configuration file.
    #[arg(short, long, default_value = "config.toml")]
    config: PathBuf,
    /// TCP listen address; overrides `server.listen`.
    #[arg(short, long)]
    listen: Option<SocketAddr>,
    /// Log lines as text for people, or as one JSON object per line for log collectors
    /// (`ts`, `level`, `target`, `msg`, and `session`/`peer` when the line is about one).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Load and validate a script exactly as the server would; print errors with file:line and
    /// exit non-zero if it would be refused. PATH defaults to the config's `script.path`.
    Check {
        /// The main script.
        path: Option<PathBuf>,
        /// Treat warnings (keys of the returned table that are not moonrt callbacks, such as
        /// a vendor's `onMessage`) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Run Lua test files (`*_test.lua`, SCRIPTING.md "Testing scripts") against session
    /// scripts with simulated players and a virtual clock; exit 1 if any test fails.
    Test {
        /// Test files or folders (default: lua/tests).
        paths: Vec<PathBuf>,
    },
    /// Print a signed join ticket (a JWT) for development and tests, signed with the config's
    /// [auth] key. A game's backend mints its own with any JWT library (see README, Security).
    Ticket(TicketArgs),
}

#[derive(clap::Args, Debug)]
struct TicketArgs {
    /// The player's id (`sub`).
    #[arg(long)]
    player: String,
    /// The session it admits to, by name; "*" for any session.
    #[arg(long, conflicts_with = "session_id")]
    session: Option<String>,
    /// The session it admits to, by id.
    #[arg(long)]
    session_id: Option<u64>,
    /// Display name (`name`).
    #[arg(long)]
    name: Option<String>,
    /// Seconds until it expires.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// A custom claim, KEY=VALUE (repeatable); VALUE is JSON if it parses, else a string.
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    claims: Vec<String>,
    /// The session's creation parameters, a JSON object (`params`).
    #[arg(long)]
    params: Option<String>,
    /// EdDSA only: the Ed25519 private key (PEM) to sign with.
    #[arg(long)]
    private_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `moonrt test` prints its own report; the simulated sessions' log lines stay out of it
    // unless RUST_LOG asks for them.
    let default_level = if matches!(cli.command, Some(Command::Test { .. })) {
        "warn"
    } else {
        "info"
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level));
    if cli.log_format == LogFormat::Json {
        logger.format(|buf, record| {
            use std::io::Write;
            let msg = record.args().to_string();
            let target = record.target();
            let mut line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": target,
                "msg": msg,
            });
            // Lines about a session or a player name them as `session#N` / `peer#N`.
            for (key, tag) in [("session", "session#"), ("peer", "peer#")] {
                if let Some(n) = number_after(target, tag).or_else(|| number_after(&msg, tag)) {
                    line[key] = n.into();
                }
            }
            writeln!(buf, "{line}")
        });
    }
    logger.init();
    match run(cli) {
        Ok(Done::Success) => ExitCode::SUCCESS,
        // The command said why on stdout or stderr, in plain text for a studio's CI log.
        Ok(Done::Failed) => ExitCode::FAILURE,
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// How a command that ran to its end went.
enum Done {
    Success,
    /// It failed and has already said why (a failing script test, a script that does not load).
    Failed,
}

/// Runs the command line's subcommand, or the server when there is none.
fn run(cli: Cli) -> Result<Done, String> {
    let Cli {
        config: config_path,
        listen,
        dev,
        command,
        ..
    } = cli;
    let mut config = if config_path.exists() || command.is_none() {
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("{}: {e}", config_path.display()))?
    } else {
        Config::default()
    };
    load_ticket_key(&mut config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    match command {
        Some(Command::Test { paths }) => Ok(test_scripts(&config, paths)),
        Some(Command::Ticket(args)) => {
            println!("{}", mint_ticket(&config, args)?);
            Ok(Done::Success)
        }
        Some(Command::Check { path, strict }) => Ok(check_script(&config, path, strict)),
        None => {
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            start_server(config, dev).map(|()| Done::Success)
        }
    }
}

/// `moonrt test`: runs the script tests in `paths` (default `lua/tests`).
fn test_scripts(config: &Config, paths: Vec<PathBuf>) -> Done {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("lua/tests")]
    } else {
        paths
    };
    let report = match moonrt::script::testing::run(&paths, config, &mut std::io::stdout()) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return Done::Failed;
        }
    };
    println!("{} test(s), {} failed", report.ran, report.failures.len());
    for f in &report.failures {
        eprintln!("FAIL {}", f.test);
    }
    if report.failures.is_empty() {
        Done::Success
    } else {
        Done::Failed
    }
}

/// `moonrt check`: loads the script as a session would, with every limit, and reports.
fn check_script(config: &Config, path: Option<PathBuf>, strict: bool) -> Done {
    let path = path.unwrap_or_else(|| PathBuf::from(&config.script.path));
    // Every script limit applies here too; this is the backstop a studio's CI relies on.
    let shown = path.display().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(CHECK_TIME_LIMIT);
        eprintln!(
            "error: {shown}: checking took longer than {} s; the script never finished \
             loading",
            CHECK_TIME_LIMIT.as_secs()
        );
        std::process::exit(1);
    });
    let checked = ScriptSource::read(&path).and_then(|source| {
        moonrt::script::check(&source, &config.script).map(|warnings| (source, warnings))
    });
    let (source, warnings) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return Done::Failed;
        }
    };
    let kind = if strict { "error" } else { "warning" };
    for w in &warnings {
        eprintln!("{kind}: {}: {w}", path.display());
    }
    if strict && !warnings.is_empty() {
        eprintln!(
            "error: {}: {} warning(s), refused by --strict",
            path.display(),
            warnings.len()
        );
        return Done::Failed;
    }
    println!(
        "{}: ok ({} .lua files in {})",
        path.display(),
        source.files().count(),
        source.folder().display()
    );
    Done::Success
}

/// Runs the server on `config` until it stops.
fn start_server(mut config: Config, dev: bool) -> Result<(), String> {
    if dev {
        config.sessions.empty_session_linger_ms = 0;
        log::warn!("development mode: empty sessions end at once; script swaps are logged loudly");
    }
    if std::env::var("MOONRT_TEST_HOOKS").as_deref() == Ok("1") {
        if cfg!(debug_assertions) {
            log::warn!("MOONRT_TEST_HOOKS=1: scripts get rt.test_stall_ms, for tests only");
        } else {
            log::warn!("MOONRT_TEST_HOOKS is ignored: release builds have no test hooks");
        }
    }
    raise_open_file_limit(config.server.max_connections);
    // Set by SIGTERM/SIGINT beside the loop's own handling: the watchdog forces the exit if the
    // loop is too stuck to stop.
    let stop_requested = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop_requested.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }
    moonrt::watchdog::spawn(
        config.watchdog.clone(),
        Duration::from_millis(config.server.shutdown_grace_ms),
        stop_requested,
    );
    if config.script.path.is_empty() {
        log::info!("no script configured: plain relay");
        let server = NetServer::bind(config, NoScript).map_err(|e| format!("cannot start: {e}"))?;
        return serve(server);
    }
    let path = PathBuf::from(&config.script.path);
    let source = ScriptSource::read(&path)?;
    let mut hooks = LuaHooks::new(source, &config)
        .map_err(|e| format!("script {} does not load: {e}", path.display()))?;
    hooks.set_dev(dev);
    let watch = config.script.watch;
    let mut server = NetServer::bind(config, hooks).map_err(|e| format!("cannot start: {e}"))?;
    let handle = server.handle();
    if watch {
        server.hooks_mut().watch(move || handle.wake())?;
    } else {
        server.hooks_mut().read_off_loop(move || handle.wake())?;
    }
    serve(server)
}

fn serve<H: Hooks>(mut server: NetServer<H>) -> Result<(), String> {
    server
        .handle_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let stats = server
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    log::info!(
        "served {} connections, {} sessions, {} deliveries",
        stats.connections_accepted,
        stats.sessions_created,
        stats.deliveries
    );
    Ok(())
}

/// The number right after the first `tag` in `text` (`session#42` → 42).
fn number_after(text: &str, tag: &str) -> Option<u64> {
    let rest = &text[text.find(tag)? + tag.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Reads `auth.ticket_key_file` into `auth.ticket_key` (a secret's trailing newline dropped).
fn load_ticket_key(config: &mut Config) -> Result<(), String> {
    let path = std::mem::take(&mut config.auth.ticket_key_file);
    if path.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("auth.ticket_key_file: cannot read {path}: {e}"))?;
    config.auth.ticket_key = text.trim_end_matches(['\n', '\r']).to_owned();
    config
        .validate()
        .map_err(|e| format!("{e} (read from {path})"))
}

fn mint_ticket(config: &Config, args: TicketArgs) -> Result<String, String> {
    use serde_json::{Map, Value};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut claims = Map::new();
    for pair in &args.claims {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--claim {pair:?}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        claims.insert(key.to_owned(), value);
    }
    claims.insert("sub".into(), args.player.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + args.ttl).into());
    match (args.session, args.session_id) {
        (Some(name), _) => claims.insert("session".into(), name.into()),
        (None, Some(id)) => claims.insert("session_id".into(), id.into()),
        (None, None) => return Err("give --session NAME (\"*\" for any) or --session-id ID".into()),
    };
    if let Some(name) = args.name {
        claims.insert("name".into(), name.into());
    }
    if let Some(params) = args.params {
        let params: Value =
            serde_json::from_str(&params).map_err(|e| format!("--params: not JSON: {e}"))?;
        if !params.is_object() {
            return Err("--params must be a JSON object".into());
        }
        claims.insert("params".into(), params);
    }
    if !config.auth.ticket_issuer.is_empty() {
        claims.insert("iss".into(), config.auth.ticket_issuer.clone().into());
    }
    if !config.auth.ticket_audience.is_empty() {
        claims.insert("aud".into(), config.auth.ticket_audience.clone().into());
    }
    let private_key = match &args.private_key {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| format!("--private-key {}: {e}", path.display()))?,
        ),
        None => None,
    };
    moonrt::core::auth::mint(config, private_key.as_deref(), &Value::Object(claims))
}

/// Lifts the soft open-file limit toward the hard one so `max_connections` sockets can be held,
/// plus the closed ones still lingering (`moonrt::net::MAX_LINGERING`).
fn raise_open_file_limit(max_connections: usize) {
    let sockets = max_connections + moonrt::net::MAX_LINGERING;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = (sockets as libc::rlim_t + 64).min(limit.rlim_max);
        if wanted > limit.rlim_cur {
            limit.rlim_cur = wanted;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        if (limit.rlim_cur as usize) < max_connections + 64 {
            log::warn!(
                "open file limit {} is below server.max_connections {}; accepts will fail past it",
                limit.rlim_cur,
                max_connections
            );
        }
    }
}
