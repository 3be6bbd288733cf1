//! TCP: accepting, reading until `WouldBlock` (within a budget), writing, closing.

use super::event_loop::{READ_BUDGET, Scratch};
use super::{FIRST_CONN, NetConn, NetServer};
use crate::core::{ConnId, Hooks};
use mio::{Interest, Token};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

impl<H: Hooks> NetServer<H> {
    /// Accepts every pending connection.
    pub(super) fn accept_all(&mut self, now: Instant) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (mut stream, addr) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the kernel keeps the connection queued; try next turn.
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            // Games send small messages that must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let id = self.core.handle_accept(now, addr);
            let token = Token(FIRST_CONN + id.0 as usize);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("{id}: cannot register socket: {e}");
                self.core.handle_disconnect(now, id);
                self.core.handle_closed(id);
                continue;
            }
            let slot = id.0 as usize;
            if self.conns.len() <= slot {
                self.conns.resize_with(slot + 1, || None);
            }
            self.conns[slot] = Some(NetConn {
                stream,
                closing_since: None,
            });
        }
    }

    /// Reads a connection until `WouldBlock`, EOF, the core closing it, or the turn's budget.
    pub(super) fn read_conn(&mut self, now: Instant, id: ConnId, s: &mut Scratch) {
        let mut total = 0;
        loop {
            if self.core.is_closing(id) {
                return;
            }
            let Some(conn) = self.conn_mut(id) else {
                return;
            };
            match conn.stream.read(&mut s.read) {
                Ok(0) => {
                    self.core.handle_disconnect(now, id);
                    return;
                }
                Ok(n) => {
                    self.core.handle_tcp_bytes(now, id, &s.read[..n]);
                    total += n;
                    if total >= READ_BUDGET {
                        s.carry.push(id);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: read error: {e}");
                    self.core.handle_disconnect(now, id);
                    return;
                }
            }
        }
    }

    /// Writes a connection's pending bytes: one write, plus one more after a partial write so
    /// that the socket reports `WouldBlock` and will wake the loop when it drains.
    pub(super) fn flush_tcp(&mut self, id: ConnId) {
        for _ in 0..2 {
            let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                return;
            };
            let pending = self.core.tcp_pending(id);
            if pending.is_empty() {
                return;
            }
            let len = pending.len();
            match conn.stream.write(pending) {
                Ok(n) => {
                    self.core.tcp_written(id, n);
                    if n == len {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.core.tcp_written(id, 0);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: write error: {e}");
                    self.core.tcp_written(id, len);
                    self.core.handle_disconnect(std::time::Instant::now(), id);
                    return;
                }
            }
        }
    }

    /// Closes a connection's socket: FIN after the flushed bytes, unread input discarded first so
    /// the kernel does not answer with a reset that could destroy our final CLOSE in flight.
    pub(super) fn drop_conn(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.get_mut(id.0 as usize).and_then(Option::take) else {
            return;
        };
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match conn.stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let _ = conn.stream.shutdown(Shutdown::Write);
        let _ = self.poll.registry().deregister(&mut conn.stream);
    }
}
