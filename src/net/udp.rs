//! UDP: receiving datagrams (within a budget per turn) and sending every connection's packed
//! ones, both in batches (`mmsg.rs`: one `recvmmsg` or `sendmmsg` for many datagrams).

use super::NetServer;
use super::mmsg::{self, RecvBatch, SEND_BATCH, SendHeaders};
use crate::core::{ConnId, Hooks};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// Datagrams read in one turn before connections get their go.
const UDP_BUDGET: usize = 2048;

/// One flushing connection's datagrams in this turn's batches: sent so far, and queued in all.
pub(super) struct Tally {
    id: ConnId,
    sent: usize,
    queued: usize,
}

impl<H: Hooks> NetServer<H> {
    /// Receives datagrams until the socket has no more or the budget is spent; returns true if
    /// some may remain. A batch short of [`mmsg::RECV_BATCH`] emptied the socket, so no call is
    /// spent to hear `WouldBlock` (a datagram arriving later raises a new readable event).
    pub(super) fn read_udp(&mut self, now: Instant, batch: &mut RecvBatch) -> bool {
        let mut read = 0;
        while read < UDP_BUDGET {
            let Some(socket) = self.udp.as_ref() else {
                return false;
            };
            match mmsg::recv(socket, batch) {
                Ok(taken) => {
                    self.core.count_udp_calls(0, 1);
                    for k in 0..batch.len() {
                        let (from, datagram) = batch.get(k);
                        self.core.handle_udp_datagram(now, from, datagram);
                    }
                    if mmsg::BATCHED && taken < mmsg::RECV_BATCH {
                        return false;
                    }
                    read += taken;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    log::debug!("udp recv: {e}");
                    read += 1;
                }
            }
        }
        true
    }

    /// Sends the waiting datagrams of every connection in `dirty`, [`SEND_BATCH`] per syscall
    /// whatever their receivers; once the socket is full, the rest wait for the next turn.
    pub(super) fn flush_udp(
        &mut self,
        dirty: &[ConnId],
        tally: &mut Vec<Tally>,
        headers: &mut SendHeaders,
    ) {
        tally.clear();
        let Some(socket) = self.udp.as_ref().filter(|_| !dirty.is_empty()) else {
            return;
        };
        let unset: SocketAddr = ([0, 0, 0, 0], 0).into();
        let mut batch: [(SocketAddr, &[u8]); SEND_BATCH] = [(unset, &[]); SEND_BATCH];
        // Which tally entry each datagram in `batch` belongs to.
        let mut owner = [0usize; SEND_BATCH];
        let mut n = 0;
        let mut blocked = false;
        let mut calls = 0;
        for &id in dirty {
            let Some((addr, datagrams)) = self.core.udp_pending(id) else {
                continue;
            };
            let t = tally.len();
            tally.push(Tally {
                id,
                sent: 0,
                queued: 0,
            });
            for datagram in datagrams {
                tally[t].queued += 1;
                if blocked {
                    continue;
                }
                batch[n] = (addr, datagram);
                owner[n] = t;
                n += 1;
                if n == SEND_BATCH {
                    blocked = send_counted(socket, headers, &batch, &owner, tally, &mut calls) < n;
                    n = 0;
                }
            }
        }
        if n > 0 && !blocked {
            send_counted(socket, headers, &batch[..n], &owner, tally, &mut calls);
        }
        self.core.count_udp_calls(calls, 0);
        for t in tally.iter() {
            // Once the socket is full, what is left waits (the connection is listed again).
            self.core.udp_sent(t.id, t.sent, t.sent == t.queued);
        }
    }
}

/// Sends `batch`, credits each datagram that left to its connection's tally and counts the
/// syscalls into `calls`.
fn send_counted(
    socket: &mio::net::UdpSocket,
    headers: &mut SendHeaders,
    batch: &[(SocketAddr, &[u8])],
    owner: &[usize],
    tally: &mut [Tally],
    calls: &mut u64,
) -> usize {
    let (sent, made) = mmsg::send(socket, headers, batch);
    *calls += made;
    for &t in &owner[..sent] {
        tally[t].sent += 1;
    }
    sent
}
