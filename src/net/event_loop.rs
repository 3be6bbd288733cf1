//! One loop turn: poll until the next deadline, read what is ready, fire timers, flush each
//! connection once, then close what the core asked to close. Like Redis's `ae`: the flush is the
//! "before sleep" step, so everything a turn produced for a connection leaves in one write.

use super::linger::LINGER_TOKENS;
use super::{
    Door, FIRST_CONN, LISTENER, NetServer, SIGNALS, TLS_LISTENER, UDP, WAKER, WS_LISTENER,
    WSS_LISTENER,
};
use crate::core::{ConnId, Event, Hooks, Stats};
use mio::Events;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a closing connection may take to flush its last bytes.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Bytes read from one connection in one turn before others get their go. It also bounds the
/// output one turn can queue for a receiver (one budget per sender in its session, about 1 MiB
/// for 16 players), which must stay under twice `max_output_buffer_bytes`, where a receiver is
/// dropped before its write.
pub(super) const READ_BUDGET: usize = 64 * 1024;

/// A loop turn this long is a stall: clients are not charged for what piled up meanwhile.
const STALL: Duration = Duration::from_millis(100);

/// Reusable buffers for the loop.
pub(super) struct Scratch {
    pub(super) read: Vec<u8>,
    pub(super) dirty: Vec<ConnId>,
    /// Connections with unread input left when their read budget ran out.
    pub(super) carry: Vec<ConnId>,
    /// Connections told to close, still flushing.
    pub(super) closing: Vec<ConnId>,
    /// Whether the UDP socket may still hold datagrams.
    pub(super) udp_carry: bool,
    /// A vendor client's message translated into native frames (`crate::profiles`).
    pub(super) translated: Vec<u8>,
    /// Receive buffers for batched UDP reads.
    pub(super) recv: super::mmsg::RecvBatch,
    /// Per connection, its datagrams in this turn's batched UDP sends.
    pub(super) udp_tally: Vec<super::udp::Tally>,
    /// The kernel's headers for batched UDP sends.
    pub(super) send_headers: super::mmsg::SendHeaders,
}

impl<H: Hooks> NetServer<H> {
    /// Runs until a graceful stop completes; returns the final counters.
    pub fn run(mut self) -> io::Result<Stats> {
        let mut events = Events::with_capacity(1024);
        let mut s = Scratch {
            read: vec![0u8; 64 * 1024],
            dirty: Vec::new(),
            carry: Vec::new(),
            closing: Vec::new(),
            udp_carry: false,
            translated: Vec::new(),
            recv: Default::default(),
            udp_tally: Vec::new(),
            send_headers: Default::default(),
        };
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let timeout = self.poll_timeout(&s, stop_deadline);
            crate::watchdog::turn_end();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            crate::watchdog::turn_start(now);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(now, Door::Tcp),
                    WS_LISTENER => self.accept_all(now, Door::Ws),
                    TLS_LISTENER => self.accept_all(now, Door::Tls),
                    WSS_LISTENER => self.accept_all(now, Door::Wss),
                    UDP => {
                        if event.is_readable() {
                            s.udp_carry = true;
                        }
                    }
                    WAKER => {
                        self.core.handle_wake(now);
                        self.answer_admin(now);
                    }
                    SIGNALS => self.read_signals(),
                    token if token.0 >= LINGER_TOKENS => {
                        self.lingering
                            .readable(self.poll.registry(), token, &mut s.read);
                    }
                    token => {
                        let id = ConnId((token.0 - FIRST_CONN) as u32);
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read_conn(now, id, &mut s);
                        }
                        if event.is_writable() {
                            self.writable(id);
                        }
                    }
                }
            }
            let carried = std::mem::take(&mut s.carry);
            for id in carried {
                self.read_conn(now, id, &mut s);
            }
            if s.udp_carry {
                s.udp_carry = self.read_udp(now, &mut s.recv);
            }
            if self.core.is_draining()
                && self.core.session_count() == 0
                && !self.stop.load(Ordering::SeqCst)
            {
                log::info!("drained: the last session ended; stopping");
                self.stop.store(true, Ordering::SeqCst);
            }
            if self.stop.load(Ordering::SeqCst) && stop_deadline.is_none() {
                log::info!(
                    "stopping: closing {} connections",
                    self.core.connection_count()
                );
                stop_deadline = Some(now + Duration::from_millis(self.grace_ms));
                for mut listener in [
                    self.listener.take(),
                    self.ws_listener.take(),
                    self.tls_listener.take(),
                    self.wss_listener.take(),
                ]
                .into_iter()
                .flatten()
                {
                    let _ = self.poll.registry().deregister(&mut listener);
                }
                self.core.begin_shutdown(now);
            }
            self.core.handle_timeout(now);
            // The sessionserver profile tells its clients what the turn did to their sessions.
            self.sessionserver.take_events(&mut self.core, now);
            self.flush(&mut s);
            while let Some(Event::Close(id)) = self.core.poll_event() {
                if let Some(conn) = self.conn_mut(id) {
                    conn.closing_since.get_or_insert(now);
                    s.closing.push(id);
                } else {
                    self.sessionserver.forget(id);
                    self.core.handle_closed(id);
                }
            }
            self.finish_closing(now, &mut s, stop_deadline);
            self.lingering.expire(self.poll.registry(), now);
            let took = now.elapsed();
            crate::ops::metrics::LOOP_TURN.record(took);
            if took >= STALL {
                // Nothing was read meanwhile: what clients sent arrives next turn in a burst.
                self.core.handle_loop_stall(took);
            }
            if let Some(deadline) = stop_deadline
                && (self.core.connection_count() == 0 || now >= deadline)
            {
                log::info!("stopped");
                return Ok(self.core.stats().clone());
            }
        }
    }

    /// Time to sleep: until the next core, closing, lingering or stop deadline; zero when
    /// input was left unread; forever when nothing is scheduled.
    fn poll_timeout(&self, s: &Scratch, stop_deadline: Option<Instant>) -> Option<Duration> {
        if !s.carry.is_empty() || s.udp_carry {
            return Some(Duration::ZERO);
        }
        let closing = s
            .closing
            .first()
            .map(|_| Instant::now() + Duration::from_millis(50));
        let next = [
            self.core.next_timeout(),
            closing,
            stop_deadline,
            self.lingering.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up so a timer is never woken a hair early and polled again with a zero timeout.
        Some(next.saturating_duration_since(Instant::now()) + Duration::from_micros(500))
    }

    fn read_signals(&mut self) {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        for signal in signals.pending() {
            match signal {
                SIGINT | SIGTERM => {
                    log::info!("received signal {signal}: stopping gracefully");
                    self.stop.store(true, Ordering::SeqCst);
                }
                SIGUSR2 => {
                    log::info!("received SIGUSR2: draining");
                    self.drain();
                }
                SIGHUP => {
                    log::info!("received SIGHUP: reloading the script and TLS certificate");
                    self.core.hooks_mut().reload();
                    if let Some((store, _)) = &self.tls {
                        store.request_reload();
                    }
                }
                _ => {}
            }
        }
    }

    /// Writes each connection's pending output: one write per TCP connection (a second only to
    /// see `WouldBlock` after a partial write), then every connection's packed datagrams, many
    /// per syscall.
    fn flush(&mut self, s: &mut Scratch) {
        self.core.take_dirty(&mut s.dirty);
        for i in 0..s.dirty.len() {
            let id = s.dirty[i];
            self.flush_tcp(id);
        }
        self.flush_udp(&s.dirty, &mut s.udp_tally, &mut s.send_headers);
    }

    /// Closes connections that finished flushing or ran out of time.
    fn finish_closing(&mut self, now: Instant, s: &mut Scratch, stop: Option<Instant>) {
        let mut i = 0;
        while i < s.closing.len() {
            let id = s.closing[i];
            let since = self
                .conn_mut(id)
                .and_then(|c| c.closing_since)
                .unwrap_or(now);
            // A WebSocket that never upgraded can be told nothing (no frame can reach it): it
            // is closed at once, at its deadline, not after the linger.
            let unupgraded = self
                .conn_mut(id)
                .is_some_and(|c| matches!(c.link, super::Link::WsHandshake(_)));
            let drained = unupgraded
                || (self.core.tcp_pending(id).is_empty()
                    && self.core.json_pending(id).next().is_none());
            let expired = now >= since + CLOSE_LINGER || stop.is_some_and(|d| now >= d);
            if drained || expired {
                s.closing.swap_remove(i);
                self.drop_conn(id);
                self.sessionserver.forget(id);
                self.core.handle_closed(id);
            } else {
                i += 1;
            }
        }
    }
}
