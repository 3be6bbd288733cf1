//! UDP: receiving datagrams (within a budget per turn) and sending each connection's packed ones.

use super::NetServer;
use crate::core::{ConnId, Hooks};
use std::io;
use std::time::Instant;

/// Datagrams read in one turn before connections get their go.
const UDP_BUDGET: usize = 2048;

impl<H: Hooks> NetServer<H> {
    /// Receives datagrams until `WouldBlock` or the budget; returns true if some may remain.
    pub(super) fn read_udp(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        let Some(socket) = self.udp.as_ref() else {
            return false;
        };
        for _ in 0..UDP_BUDGET {
            match socket.recv_from(buf) {
                Ok((n, from)) => self.core.handle_udp_datagram(now, from, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    log::debug!("udp recv: {e}");
                }
            }
        }
        true
    }

    /// Sends a connection's waiting datagrams; on `WouldBlock` the rest waits for writability.
    pub(super) fn flush_udp(&mut self, id: ConnId) {
        let Some(socket) = self.udp.as_ref() else {
            return;
        };
        let Some((addr, datagrams)) = self.core.udp_pending(id) else {
            return;
        };
        let mut sent = 0;
        let mut blocked = false;
        for datagram in datagrams {
            match socket.send_to(datagram, addr) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) => {
                    // Unreliable: a datagram the kernel refuses is lost, like one lost in flight.
                    log::debug!("{id}: udp send to {addr}: {e}");
                    sent += 1;
                }
            }
        }
        self.core.udp_sent(id, sent, !blocked);
    }
}
