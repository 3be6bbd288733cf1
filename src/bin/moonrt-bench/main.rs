//! `moonrt-bench`: the load generator and benchmark suite (BENCHMARKS.md).
//!
//! Every scenario runs the real `moonrt` binary as a child process on loopback and, in the same
//! run, the same load against the floor reflector (`floor.rs`), so each figure comes with a
//! ratio to what this machine can do at all. Server CPU and memory come from /proc.
//!
//! # Layout
//! - `main.rs`: the command line and the scenarios;
//! - `load.rs`: players, workers, the measurement (latency histogram, loss, reordering);
//! - `floor.rs`: the floor reflector and its client;
//! - `ws.rs`: WebSocket players (moonrt's native frames, the npm sessionserver JSON protocol);
//! - `procstat.rs`: /proc readings and the child processes (moonrt, the reflector, and the npm
//!   `sessionserver` package, installed with npm into a temp folder for `relay-ws`);
//! - `report.rs`: tables and JSON.

mod containment;
mod floor;
mod load;
mod procstat;
mod report;
mod scenarios;
mod ws;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "moonrt-bench",
    about = "Load generator and benchmarks for moonrt, side by side with a floor reflector"
)]
struct Cli {
    /// The moonrt binary to measure (default: `moonrt` next to this binary).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Where JSON results go.
    #[arg(long, global = true, default_value = "target/bench")]
    out: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// 8-player sessions, 20 Hz, 64-byte unreliable broadcasts, ramped until p99 > 10 ms or
    /// loss > 1%: the most players held, for moonrt and the floor.
    RelayUdp,
    /// The same with reliable (TCP) messages.
    RelayTcp,
    /// relay-udp with a Lua `on_packet` on every packet (returning true) vs without.
    LuaIntercept,
    /// relay-udp with coalesced sending (50 ms, the load's tick) vs every-turn sending and the
    /// batched floor; a step holds with p99 up to 10 ms plus the interval.
    RelayCoalesced,
    /// 8-player sessions, 20 Hz, 64-byte broadcasts over WebSocket: moonrt's native frames
    /// (coalesced at 50 ms and every turn), moonrt's sessionserver profile, the npm
    /// `sessionserver` package and Colyseus 0.16 (both installed by the bench into a temp folder).
    RelayWs,
    /// 10,000 idle connections in 1,250 sessions: resident bytes per connection and session.
    IdleMemory,
    /// 1,000 sessions each with a 50 ms `rt.set_interval`: timer lateness.
    Timers,
    /// 20 script edits under relay-udp load: edit-to-current time, failed joins, loss.
    Reload,
    /// The hostile-script suite against the binary: the longest stall each case causes for
    /// another session.
    Containment,
    /// Every scenario above, in order.
    All,
    /// Every scenario at a tiny scale, for CI: proves they run; asserts no timing.
    Smoke,
    /// One load run with your own numbers.
    Run(scenarios::RunArgs),
    /// The floor reflector (started by the scenarios).
    Reflector {
        #[arg(long)]
        port: u16,
        /// Batch like moonrt (one write per connection per turn, packed datagrams).
        #[arg(long)]
        batched: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    procstat::raise_fd_limit();
    if let Cmd::Reflector { port, batched } = cli.command {
        if let Err(e) = floor::run_reflector(port, batched) {
            eprintln!("reflector: {e}");
            std::process::exit(1);
        }
        return;
    }
    let bench = scenarios::Bench::new(procstat::server_binary(cli.server_bin.as_deref()), cli.out);
    // CI runs the documented bench commands as printed, at the smoke scale.
    let full = if std::env::var("MOONRT_BENCH_SCALE").as_deref() == Ok("smoke") {
        scenarios::Scale::smoke()
    } else {
        scenarios::Scale::full()
    };
    let ok = match cli.command {
        Cmd::RelayUdp => bench.relay(&full, false),
        Cmd::RelayTcp => bench.relay(&full, true),
        Cmd::LuaIntercept => bench.lua_intercept(&full),
        Cmd::RelayCoalesced => bench.relay_coalesced(&full),
        Cmd::RelayWs => bench.relay_ws(&full),
        Cmd::IdleMemory => bench.idle_memory(&full),
        Cmd::Timers => bench.timers(&full),
        Cmd::Reload => bench.reload(&full),
        Cmd::Containment => bench.containment(),
        Cmd::All => bench.all(&full),
        Cmd::Smoke => bench.all(&scenarios::Scale::smoke()),
        Cmd::Run(args) => bench.run(&args),
        Cmd::Reflector { .. } => unreachable!("handled above"),
    };
    if !ok {
        std::process::exit(1);
    }
}
