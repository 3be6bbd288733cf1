//! Frame sync (lockstep, MGOBE's frame synchronisation): while it runs, a session collects the
//! players' FRAME_INPUTs and, `rate` times a second, sends every player the same FRAME (its
//! number, the session's random seed, and the inputs in arrival order) after session logic has
//! seen and possibly amended it. Recent frames are kept so a player can ask for missed ones.

use super::codec::{FrameInputs, ServerMsg};
use super::codes::Code;
use super::hooks::Hooks;
use super::ids::{ConnId, PeerId, SessionId};
use super::server::Server;
use super::timer::TimerKey;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Frames kept for FRAME_REQUEST at most, and their bytes at most.
const HISTORY_FRAMES: usize = 3_000;
const HISTORY_BYTES: usize = 1 << 20;
/// Input bytes one frame collects at most (more inputs wait for the next frame).
const FRAME_INPUT_BYTES: usize = 60_000;
/// Input bytes one player may put in one frame, so no player can fill a frame for the others.
const PLAYER_INPUT_BYTES: usize = 8_192;
/// Each input's header in a FRAME: peer and length.
const INPUT_HEADER: usize = 4;

/// A session's running frame sync.
#[derive(Debug)]
pub(crate) struct FrameSync {
    rate: u8,
    seed: u32,
    next: u32,
    due: Instant,
    inputs: Vec<(u16, Vec<u8>)>,
    /// Wire bytes of this frame's inputs (each counts its 4-byte header too, so empty inputs
    /// cannot pile up past the u16 input count), in all and per player.
    input_bytes: usize,
    player_bytes: HashMap<u16, usize>,
    history: VecDeque<(u32, Vec<u8>)>,
    history_bytes: usize,
    /// Tells this run's timers from an earlier run's.
    pub(crate) epoch: u64,
}

/// A frame as session logic sees it before it goes out; it may change the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its number, from 1.
    pub number: u32,
    /// The seed of this frame sync.
    pub seed: u32,
    /// The inputs, in arrival order: (peer, bytes); peer 0 is the server's.
    pub inputs: Vec<(u16, Vec<u8>)>,
}

impl<H: Hooks> Server<H> {
    /// Starts (at `rate` frames per second, 1-60) or stops frame sync in a session; everyone is
    /// sent FRAME_SYNC_STATE.
    pub(crate) fn set_frame_sync(&mut self, now: Instant, sid: SessionId, on: bool, rate: u8) {
        let epoch = self.next_frame_epoch();
        let seed = self.random_secret() as u32;
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if on {
            let rate = rate.clamp(1, 60);
            let period = Duration::from_secs_f64(1.0 / f64::from(rate));
            let sync = FrameSync {
                rate,
                seed,
                next: 1,
                due: now + period,
                inputs: Vec::new(),
                input_bytes: 0,
                player_bytes: HashMap::new(),
                history: VecDeque::new(),
                history_bytes: 0,
                epoch,
            };
            log::info!("{sid}: frame sync on at {rate} frames/s");
            self.timers.schedule(sync.due, TimerKey::Frame(sid, epoch));
            session.frame_sync = Some(Box::new(sync));
        } else if session.frame_sync.take().is_some() {
            log::info!("{sid}: frame sync off");
        }
        let state = frame_state(session.frame_sync.as_deref());
        let conns: Vec<ConnId> = session.members().iter().map(|m| m.conn).collect();
        for conn in conns {
            self.conns.send_tcp(conn, |buf| state.encode(buf));
        }
    }

    /// FRAME_SYNC_STATE for a player who joins while frame sync runs.
    pub(crate) fn send_frame_state(&mut self, sid: SessionId, id: ConnId) {
        if let Some(sync) = self
            .sessions
            .get(&sid)
            .and_then(|s| s.frame_sync.as_deref())
        {
            let state = frame_state(Some(sync));
            self.conns.send_tcp(id, |buf| state.encode(buf));
        }
    }

    /// A player's FRAME_SYNC: session logic may refuse it (ERROR 37).
    pub(crate) fn frame_sync_request(
        &mut self,
        now: Instant,
        id: ConnId,
        sid: SessionId,
        peer: PeerId,
        on: bool,
        rate: u8,
    ) {
        if on && !(1..=60).contains(&rate) {
            self.send_error(
                id,
                Code::FrameSyncRefused,
                u32::from(rate),
                "rate must be 1-60",
            );
            return;
        }
        let allowed = self.call_hook(now, sid, |h, ctx| h.frame_sync_request(ctx, peer, on, rate));
        if !allowed {
            self.send_error(
                id,
                Code::FrameSyncRefused,
                0,
                "the session's script refused the frame sync change",
            );
            return;
        }
        self.set_frame_sync(now, sid, on, rate);
    }

    /// A player's FRAME_INPUT, kept for the current frame (ERROR 38 without frame sync).
    pub(crate) fn frame_input(&mut self, id: ConnId, sid: SessionId, peer: PeerId, input: &[u8]) {
        let Some(sync) = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.frame_sync.as_deref_mut())
        else {
            self.send_error(id, Code::NotInFrameSync, 0, "frame sync is not running");
            return;
        };
        let cost = input.len() + INPUT_HEADER;
        let mine = sync.player_bytes.entry(peer.0).or_default();
        if *mine + cost > PLAYER_INPUT_BYTES || sync.input_bytes + cost > FRAME_INPUT_BYTES {
            self.send_error(
                id,
                Code::NotInFrameSync,
                input.len() as u32,
                "this frame's inputs are full; send it again next frame",
            );
            return;
        }
        *mine += cost;
        sync.input_bytes += cost;
        sync.inputs.push((peer.0, input.to_vec()));
    }

    /// A player's FRAME_REQUEST: the frames still held, from `from`, to it alone.
    pub(crate) fn frame_request(&mut self, id: ConnId, sid: SessionId, from: u32, count: u16) {
        let Some(sync) = self
            .sessions
            .get(&sid)
            .and_then(|s| s.frame_sync.as_deref())
        else {
            self.send_error(id, Code::NotInFrameSync, 0, "frame sync is not running");
            return;
        };
        let until = from.saturating_add(u32::from(count));
        let frames: Vec<&Vec<u8>> = sync
            .history
            .iter()
            .filter(|(n, _)| *n >= from && *n < until)
            .map(|(_, f)| f)
            .collect();
        for frame in frames {
            self.conns.send_tcp(id, |buf| buf.extend_from_slice(frame));
        }
    }

    /// A frame is due: session logic sees it, then every player gets it.
    pub(crate) fn frame_due(&mut self, now: Instant, sid: SessionId, epoch: u64) {
        let Some(sync) = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.frame_sync.as_deref_mut())
            .filter(|f| f.epoch == epoch)
        else {
            return;
        };
        let mut frame = Frame {
            number: sync.next,
            seed: sync.seed,
            inputs: std::mem::take(&mut sync.inputs),
        };
        sync.input_bytes = 0;
        sync.player_bytes.clear();
        sync.next = sync.next.wrapping_add(1);
        let period = Duration::from_secs_f64(1.0 / f64::from(sync.rate));
        // Drift-free: the next frame is due one period after this one was, unless the loop fell
        // behind by more than a period (then it resumes from now, without a burst).
        sync.due = (sync.due + period).max(now);
        let due = sync.due;
        self.timers.schedule(due, TimerKey::Frame(sid, epoch));
        self.call_hook(now, sid, |h, ctx| h.on_frame(ctx, &mut frame));
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let wire = FrameInputs::encode(&frame.inputs);
        let msg = ServerMsg::Frame {
            number: frame.number,
            seed: frame.seed,
            inputs: FrameInputs(&wire),
        };
        let mut encoded = Vec::new();
        msg.encode(&mut encoded);
        for m in session.members() {
            self.conns
                .send_tcp(m.conn, |buf| buf.extend_from_slice(&encoded));
        }
        if let Some(sync) = session.frame_sync.as_deref_mut() {
            sync.history_bytes += encoded.len();
            sync.history.push_back((frame.number, encoded));
            while sync.history.len() > HISTORY_FRAMES || sync.history_bytes > HISTORY_BYTES {
                match sync.history.pop_front() {
                    Some((_, old)) => sync.history_bytes -= old.len(),
                    None => break,
                }
            }
        }
    }

    fn next_frame_epoch(&mut self) -> u64 {
        self.frame_epoch += 1;
        self.frame_epoch
    }
}

fn frame_state(sync: Option<&FrameSync>) -> ServerMsg<'static> {
    match sync {
        Some(s) => ServerMsg::FrameSyncState {
            on: true,
            rate: s.rate,
            seed: s.seed,
            next_frame: s.next,
        },
        None => ServerMsg::FrameSyncState {
            on: false,
            rate: 0,
            seed: 0,
            next_frame: 0,
        },
    }
}
