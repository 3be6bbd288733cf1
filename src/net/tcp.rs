//! TCP: accepting, reading until `WouldBlock` (within a budget), writing, closing.

use super::event_loop::{READ_BUDGET, Scratch};
use super::{Door, FIRST_CONN, Link, NetConn, NetServer};
use crate::core::{ConnId, Hooks};
use crate::tls::Stream;
use mio::{Interest, Token};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Instant;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

impl<H: Hooks> NetServer<H> {
    /// Accepts every pending connection on one listener.
    pub(super) fn accept_all(&mut self, now: Instant, door: Door) {
        let ws = door.websocket();
        loop {
            let listener = match door {
                Door::Tcp => self.listener.as_ref(),
                Door::Ws => self.ws_listener.as_ref(),
                Door::Tls => self.tls_listener.as_ref(),
                Door::Wss => self.wss_listener.as_ref(),
            };
            let Some(listener) = listener else {
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
            let id = if ws {
                self.core.handle_ws_accept(now, addr)
            } else {
                self.core.handle_accept(now, addr)
            };
            self.core.set_transport(
                id,
                match door {
                    Door::Tcp => crate::core::Transport::Tcp,
                    Door::Ws => crate::core::Transport::Ws,
                    Door::Tls => crate::core::Transport::Tls,
                    Door::Wss => crate::core::Transport::Wss,
                },
            );
            let token = Token(FIRST_CONN + id.0 as usize);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("{id}: cannot register socket: {e}");
                // The slot is freed when the loop drains this close event, like any other:
                // freeing it here would let a connection accepted later in this turn take it
                // and then be closed by the stale event.
                self.core.handle_disconnect(now, id);
                continue;
            }
            let stream = match &self.tls {
                Some((_, config)) if door.tls() => match Stream::server(stream, config.clone()) {
                    Ok(stream) => stream,
                    Err(e) => {
                        log::warn!("{id}: cannot start TLS: {e}");
                        self.core.handle_disconnect(now, id);
                        continue;
                    }
                },
                _ => Stream::Plain(stream),
            };
            let link = if ws {
                match super::ws::accept(stream, self.ws_config) {
                    Some((link, credential)) => {
                        if matches!(link, Link::Ws(_)) {
                            // The request came with the connection: the upgrade is done.
                            self.core.handle_ws_open(id, credential.take());
                            self.sessionserver.on_ws_open(&self.core, id);
                        }
                        link
                    }
                    None => {
                        // Freed when the loop drains the close event (see above).
                        self.core.handle_disconnect(now, id);
                        continue;
                    }
                }
            } else {
                Link::Tcp(stream)
            };
            let slot = id.0 as usize;
            if self.conns.len() <= slot {
                self.conns.resize_with(slot + 1, || None);
            }
            self.conns[slot] = Some(NetConn {
                link,
                closing_since: None,
                profile: Default::default(),
            });
        }
    }

    /// Reads a connection until `WouldBlock`, EOF, the core closing it, or the turn's budget.
    pub(super) fn read_conn(&mut self, now: Instant, id: ConnId, s: &mut Scratch) {
        match self.conn_mut(id).map(|c| &c.link) {
            Some(Link::Tcp(_)) => self.read_tcp(now, id, s),
            Some(Link::WsHandshake(_)) => self.resume_upgrade(now, id, s),
            Some(Link::Ws(_)) => self.read_ws(now, id, s),
            None => {}
        }
    }

    fn read_tcp(&mut self, now: Instant, id: ConnId, s: &mut Scratch) {
        let mut total = 0;
        loop {
            if self.core.is_closing(id) {
                return;
            }
            let Some(NetConn {
                link: Link::Tcp(stream),
                ..
            }) = self.conn_mut(id)
            else {
                return;
            };
            match stream.read(&mut s.read) {
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
            let stream = match &mut conn.link {
                Link::Tcp(stream) => stream,
                Link::Ws(_) => return self.flush_ws(id),
                Link::WsHandshake(_) => return,
            };
            let pending = self.core.tcp_pending(id);
            if pending.is_empty() {
                return;
            }
            let len = pending.len();
            let written = stream.write(pending);
            if stream.has_unsent() {
                // TLS holds records the socket did not take: they leave on the writable event.
                let _ = stream.flush();
            }
            match written {
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

    /// Closes a connection's socket: FIN after the flushed bytes, then the socket lingers
    /// (`linger.rs`), discarding input until the client closes, so the kernel does not answer a
    /// client still sending with a reset that would destroy our final CLOSE in flight.
    pub(super) fn drop_conn(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::take) else {
            return;
        };
        let mut stream = match conn.link {
            Link::Tcp(mut stream) => {
                let _ = stream.flush();
                stream.close_notify();
                stream
            }
            Link::Ws(mut ws) => {
                // The reason rides the WebSocket close frame as 4000 + the moonrt code
                // (PROTOCOL.md sections 12 and 13): a sessionserver client has no CLOSE frame to
                // read, and a browser's onclose sees it without parsing frames.
                let frame = self.core.close_note(id).map(|(code, why)| CloseFrame {
                    code: CloseCode::from(4000 + code.as_u16()),
                    reason: why.into(),
                });
                let _ = ws.close(frame);
                let _ = ws.flush();
                let mut stream = ws.into_inner();
                stream.close_notify();
                stream
            }
            // Closing the socket ends the upgrade; there is nothing to say on it.
            Link::WsHandshake(_) => return,
        };
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let _ = stream.socket().shutdown(Shutdown::Write);
        self.lingering
            .keep(self.poll.registry(), stream.into_socket(), Instant::now());
    }
}
