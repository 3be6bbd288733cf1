//! UDP datagrams from clients: authentication by connection id + secret, binding, then frames.
//!
//! A datagram that fails any check is dropped and counted, never answered: a forged source
//! address gets nothing back, so the server cannot be used to reflect traffic.

use super::codec::{self, ClientMsg, ServerMsg, UDP_HEADER};
use super::conn::Phase;
use super::hooks::Hooks;
use super::ids::ConnId;
use super::server::{Server, Via};
use std::net::SocketAddr;
use std::time::Instant;

impl<H: Hooks> Server<H> {
    /// A UDP datagram arrived from `from`.
    pub fn handle_udp_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.udp_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        if datagram.len() <= UDP_HEADER {
            self.stats.udp_dropped_malformed += 1;
            return;
        }
        let conn_id = ConnId(u32::from_le_bytes(
            datagram[0..4].try_into().expect("4 bytes"),
        ));
        let secret = u64::from_le_bytes(datagram[4..12].try_into().expect("8 bytes"));
        let Some(conn) = self.conns.get_mut(conn_id) else {
            self.stats.udp_dropped_auth += 1;
            return;
        };
        if conn.udp_secret != secret || !matches!(conn.phase, Phase::Joined { .. }) {
            self.stats.udp_dropped_auth += 1;
            return;
        }
        let max = self.config.limits.max_frame_bytes;
        let mut rest = &datagram[UDP_HEADER..];
        while !rest.is_empty() {
            let (body, used) = match codec::split_frame(rest, max) {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => {
                    // A datagram cannot continue in the next one: a cut frame is malformed.
                    self.stats.udp_dropped_malformed += 1;
                    break;
                }
            };
            rest = &rest[used..];
            let Some(conn) = self.conns.get_mut(conn_id) else {
                return;
            };
            if conn.phase == Phase::Closing {
                return;
            }
            if body.first() == Some(&codec::msg_type::UDP_BIND) {
                let first_bind = conn.udp_addr.is_none();
                if conn.udp_addr != Some(from) {
                    log::debug!("{conn_id}: UDP bound to {from}");
                }
                conn.udp_addr = Some(from);
                conn.last_rx = now;
                let phase = conn.phase;
                self.conns
                    .send_udp(conn_id, |buf| ServerMsg::UdpBound.encode(buf));
                if first_bind && let Phase::Joined { session, peer } = phase {
                    self.call_hook(now, session, |h, ctx| h.udp_bound(ctx, peer));
                }
                continue;
            }
            if conn.udp_addr != Some(from) {
                self.stats.udp_dropped_unbound += 1;
                continue;
            }
            conn.last_rx = now;
            match ClientMsg::decode(body) {
                Ok(ClientMsg::Data(_) | ClientMsg::Ping { .. }) => {
                    self.handle_frame(now, conn_id, body, Via::Udp(from));
                }
                Ok(_) => self.stats.udp_dropped_invalid += 1,
                Err(_) => {
                    // Whoever built this datagram got the framing wrong: nothing after this frame
                    // can be trusted either.
                    self.stats.udp_dropped_malformed += 1;
                    break;
                }
            }
        }
        self.after_input(now);
    }
}
