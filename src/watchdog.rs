//! The loop watchdog: a thread outside the loop that assumes every other limit has a hole.
//!
//! The loop marks the start and end of each turn, and the script host marks which session and
//! callback is running; both are a few atomic stores or an uncontended lock. The watchdog thread
//! samples them every [`TICK`]:
//! - a turn running past `stall_log_ms` is logged once, with the session, the callback and, when
//!   the Lua VM is still executing instructions, the script file and line (the instruction hook
//!   records it when asked);
//! - a turn running past `stall_exit_ms` ends the process with [`EXIT_STALLED`], for the service
//!   manager to restart it;
//! - after SIGTERM or SIGINT, a process that has not exited within the shutdown grace time plus
//!   one second (its loop is stuck) ends with [`EXIT_FORCED_STOP`].
//!
//! One process runs one loop, so this state is process-wide. It is only *acted on* when the
//! binary starts the thread ([`spawn`]); servers embedded in tests record but are not watched.

use crate::config::WatchdogConfig;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Exit status when a loop turn never came back.
pub const EXIT_STALLED: i32 = 70;
/// Exit status when a stop signal was not obeyed in time because the loop was stuck.
pub const EXIT_FORCED_STOP: i32 = 71;
/// How often the watchdog looks.
const TICK: Duration = Duration::from_millis(50);

/// Milliseconds since [`epoch`] when the running turn started; 0 between turns.
static TURN_STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// Counts turns, so a stall is logged once.
static TURN_SEQ: AtomicU64 = AtomicU64::new(0);
/// Set by the watchdog: the next instruction hook records where the script is.
static LOCATION_WANTED: AtomicBool = AtomicBool::new(false);
/// What runs now, written by the loop thread on every callback and read by the watchdog: a
/// seqlock (odd `ACTIVITY_SEQ` while writing), so the hot path pays a few plain stores rather
/// than a lock. The name is a `&'static str` split into pointer and length, only rebuilt from a
/// consistent read.
static ACTIVITY_SEQ: AtomicU64 = AtomicU64::new(0);
static ACTIVITY_SESSION: AtomicU64 = AtomicU64::new(0);
static ACTIVITY_NAME_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static ACTIVITY_NAME_LEN: AtomicUsize = AtomicUsize::new(0);
/// Where the instruction hook last found the script, when asked.
static LOCATION: Mutex<Option<String>> = Mutex::new(None);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ms_since_epoch(at: Instant) -> u64 {
    // +1: 0 means "between turns".
    at.saturating_duration_since(epoch()).as_millis() as u64 + 1
}

/// The loop started a turn at `now` (right after its poll returned).
pub fn turn_start(now: Instant) {
    TURN_SEQ.fetch_add(1, Ordering::Relaxed);
    TURN_STARTED_MS.store(ms_since_epoch(now), Ordering::Relaxed);
}

/// The loop finished its turn and is about to sleep in poll.
pub fn turn_end() {
    TURN_STARTED_MS.store(0, Ordering::Relaxed);
}

fn write_activity(session: u64, name: &'static str) {
    let seq = ACTIVITY_SEQ.load(Ordering::Relaxed);
    ACTIVITY_SEQ.store(seq + 1, Ordering::Relaxed);
    std::sync::atomic::fence(Ordering::Release);
    ACTIVITY_SESSION.store(session, Ordering::Relaxed);
    ACTIVITY_NAME_PTR.store(name.as_ptr().cast_mut(), Ordering::Relaxed);
    ACTIVITY_NAME_LEN.store(name.len(), Ordering::Relaxed);
    ACTIVITY_SEQ.store(seq + 2, Ordering::Release);
}

/// The running (session, callback), if a consistent read succeeds.
fn read_activity() -> Option<(u64, &'static str)> {
    for _ in 0..100 {
        let before = ACTIVITY_SEQ.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let session = ACTIVITY_SESSION.load(Ordering::Relaxed);
        let ptr = ACTIVITY_NAME_PTR.load(Ordering::Relaxed);
        let len = ACTIVITY_NAME_LEN.load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        if ACTIVITY_SEQ.load(Ordering::Relaxed) != before {
            continue;
        }
        if ptr.is_null() || len == 0 {
            return None; // between callbacks
        }
        // SAFETY: ptr and len were written together from one `&'static str` (the sequence
        // number did not change while they were read), so they describe valid, immutable,
        // 'static UTF-8 bytes.
        let name = unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) };
        return Some((session, name));
    }
    None
}

/// A script callback starts in `session`.
pub fn enter_callback(session: u64, callback: &'static str) {
    write_activity(session, callback);
}

/// The running script callback returned.
pub fn leave_callback() {
    write_activity(0, "");
}

/// Whether the watchdog asked for the script's location (checked by the instruction hook).
#[inline]
pub fn location_wanted() -> bool {
    LOCATION_WANTED.load(Ordering::Relaxed)
}

/// The instruction hook's answer: `file:line` of the running script code.
pub fn report_location(place: String) {
    LOCATION_WANTED.store(false, Ordering::Relaxed);
    if let Ok(mut l) = LOCATION.lock() {
        *l = Some(place);
    }
}

/// One line saying what the stalled turn is doing.
fn describe_activity() -> String {
    let activity = read_activity();
    let location = LOCATION.lock().ok().and_then(|mut l| l.take());
    match (activity, location) {
        (Some((session, callback)), Some(at)) => {
            format!("session#{session} is in {callback} at {at}")
        }
        (Some((session, callback)), None) => format!(
            "session#{session} is in {callback}, inside a library function or the host \
             (no Lua instruction has run since the stall was noticed)"
        ),
        (None, _) => "no script callback is running (the server's own code)".into(),
    }
}

/// Starts the watchdog thread. `stop_requested` is set by the SIGTERM/SIGINT handler; `grace`
/// is the graceful stop's time.
pub fn spawn(config: WatchdogConfig, grace: Duration, stop_requested: Arc<AtomicBool>) {
    let _ = epoch();
    let log_after = Duration::from_millis(config.stall_log_ms);
    let exit_after =
        (config.stall_exit_ms > 0).then(|| Duration::from_millis(config.stall_exit_ms));
    let spawned = std::thread::Builder::new()
        .name("moonrt-watchdog".into())
        .spawn(move || {
            let mut logged_turn = 0;
            let mut stop_seen: Option<Instant> = None;
            loop {
                std::thread::sleep(TICK);
                let now = Instant::now();
                if stop_requested.load(Ordering::Relaxed) {
                    let since = *stop_seen.get_or_insert(now);
                    if now.duration_since(since) > grace + Duration::from_secs(1) {
                        log::error!(
                            "stop requested {} ms ago but the loop has not finished: exiting now \
                             (status {EXIT_FORCED_STOP}); {}",
                            now.duration_since(since).as_millis(),
                            describe_activity()
                        );
                        exit_now(EXIT_FORCED_STOP);
                    }
                }
                let started = TURN_STARTED_MS.load(Ordering::Relaxed);
                if started == 0 {
                    continue;
                }
                let running = Duration::from_millis(ms_since_epoch(now).saturating_sub(started));
                let turn = TURN_SEQ.load(Ordering::Relaxed);
                if running >= log_after && logged_turn != turn {
                    logged_turn = turn;
                    LOCATION_WANTED.store(true, Ordering::Relaxed);
                    // Give a running VM a moment to reach its next hook and say where it is.
                    std::thread::sleep(TICK);
                    log::warn!(
                        "event loop stalled: this turn has run for {} ms; {}",
                        running.as_millis() + TICK.as_millis(),
                        describe_activity()
                    );
                }
                if let Some(limit) = exit_after
                    && running >= limit
                {
                    LOCATION_WANTED.store(true, Ordering::Relaxed);
                    std::thread::sleep(TICK);
                    log::error!(
                        "event loop stalled for {} ms (watchdog.stall_exit_ms = {}): exiting \
                         with status {EXIT_STALLED} for the service manager to restart; {}",
                        running.as_millis(),
                        limit.as_millis(),
                        describe_activity()
                    );
                    exit_now(EXIT_STALLED);
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the watchdog thread: {e}");
    }
}

/// Ends the process at once: the loop thread may hold locks `exit` would wait for.
fn exit_now(status: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process without running atexit handlers or unwinding; nothing
    // here depends on them (the log line above is already written to unbuffered stderr).
    unsafe { libc::_exit(status) }
}
