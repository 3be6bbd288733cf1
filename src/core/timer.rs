//! Deadlines the core must act on, in one min-heap; stale entries are skipped when they fire.

use super::ids::{ConnId, SessionId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for. Each carries what proves it is still current when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// The connection (with this serial) must have sent HELLO by now.
    Handshake(ConnId, u64),
    /// Check whether the connection (with this serial) has been silent too long.
    Idle(ConnId, u64),
    /// A frame of the session's frame sync (run with this epoch) is due.
    Frame(SessionId, u64),
    /// Give up a held seat if the connection (with this serial) is still away.
    Away(ConnId, u64),
    /// End the session if it is still empty since the given empty epoch.
    Linger(SessionId, u64),
    /// A timer armed by the session's logic, with the logic's own id.
    Script(SessionId, u64),
    /// Send the output held for the session's players (coalesced sending), if its send
    /// interval is still the one set with this epoch.
    Flush(SessionId, u64),
}

/// A min-heap of deadlines. One live entry per connection or session at a time keeps it small:
/// the idle check reschedules itself instead of being pushed on every message.
///
/// Deadlines are fired in passes (`begin_pass`, `pop_due` until `None`, `end_pass`). A deadline
/// scheduled during a pass joins the heap only when the pass ends, so it fires in the next pass
/// at the earliest, whatever its time (Redis's `ae.c` has the same rule): a timer that re-arms
/// itself with no delay runs once per loop turn, and sockets are served between turns.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// Deadlines scheduled during the current pass (or put back by it), for the next one.
    deferred: Vec<(Instant, TimerKey)>,
    firing: bool,
}

impl Timers {
    /// Adds a deadline.
    pub(crate) fn schedule(&mut self, at: Instant, key: TimerKey) {
        if self.firing {
            self.deferred.push((at, key));
        } else {
            self.heap.push(Reverse((at, key)));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let deferred = self.deferred.iter().map(|(at, _)| *at).min();
        let queued = self.heap.peek().map(|Reverse((at, _))| *at);
        match (queued, deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts a pass: from now until `end_pass`, new deadlines wait for the next pass.
    pub(crate) fn begin_pass(&mut self) {
        self.firing = true;
    }

    /// Ends a pass: what was scheduled during it joins the heap.
    pub(crate) fn end_pass(&mut self) {
        self.firing = false;
        for (at, key) in self.deferred.drain(..) {
            self.heap.push(Reverse((at, key)));
        }
    }

    /// Removes and returns one deadline that is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, k))| k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_fire_in_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.schedule(t0 + Duration::from_secs(2), TimerKey::Idle(ConnId(1), 1));
        t.schedule(
            t0 + Duration::from_secs(1),
            TimerKey::Handshake(ConnId(2), 2),
        );
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(5)),
            Some(TimerKey::Handshake(ConnId(2), 2))
        );
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(5)),
            Some(TimerKey::Idle(ConnId(1), 1))
        );
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_deadline_scheduled_during_a_pass_fires_in_the_next_pass_only() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.schedule(t0, TimerKey::Script(SessionId(1), 1));
        t.begin_pass();
        assert_eq!(t.pop_due(t0), Some(TimerKey::Script(SessionId(1), 1)));
        // Re-armed with no delay, and one already late: neither fires in this pass.
        t.schedule(t0, TimerKey::Script(SessionId(1), 1));
        t.schedule(
            t0 - Duration::from_millis(5),
            TimerKey::Script(SessionId(1), 2),
        );
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.next_deadline(), Some(t0 - Duration::from_millis(5)));
        t.end_pass();
        t.begin_pass();
        assert_eq!(t.pop_due(t0), Some(TimerKey::Script(SessionId(1), 2)));
        assert_eq!(t.pop_due(t0), Some(TimerKey::Script(SessionId(1), 1)));
        assert_eq!(t.pop_due(t0), None);
        t.end_pass();
    }
}
