//! WebSocket connections: tungstenite over the loop's non-blocking stream, no extra thread.
//!
//! The upgrade resumes on each readable event until it completes. After it, the first message
//! picks the protocol:
//! - binary messages carry native frames (PROTOCOL.md section 12): their bytes go to the core
//!   exactly as TCP bytes do, and each loop turn's pending output leaves as one binary message;
//! - or, if the first binary message is a GameSparks or GameLift login (sections 16-17), vendor
//!   packets: each message goes through the connection's `crate::profiles::Adapter` to become
//!   native frames, and the core's output goes back through it (one message per packet for
//!   GameLift); the adapter's output is written whole, so a slow reader fills tungstenite's
//!   buffer, capped at `max_output_buffer_bytes` (then CLOSE 21);
//! - text messages are sessionserver JSON commands (section 13), handed to the core whole; each
//!   JSON message the core queues leaves as one text message.
//!
//! Ping/pong and close frames are handled by tungstenite; an oversized message closes the
//! connection.

use super::event_loop::{READ_BUDGET, Scratch};

/// What a WebSocket message costs of a connection's read budget at least, however small: a
/// flood of empty messages or pings still yields the loop to the other connections.
const MIN_MESSAGE_COST: usize = 64;
use super::{Link, NetServer, WsProfile};
use crate::config::Config;
use crate::core::{Code, ConnId, Hooks};
use crate::profiles::FirstMessage;
use crate::tls::Stream;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Instant;
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, HandshakeError, Message};

/// Where the upgrade request's credential is put when the request arrives.
type CredentialSlot = Rc<RefCell<Option<String>>>;

/// An upgrade waiting for more bytes, and where its request's credential will be.
pub(super) struct Upgrade {
    mid: tungstenite::handshake::MidHandshake<ServerHandshake<Stream, TakeCredential>>,
    credential: CredentialSlot,
}

/// Reads the token or ticket off the upgrade request: the `token` (or `ticket`) query
/// parameter, which browsers can set, or an `Authorization: Bearer` header.
pub(super) struct TakeCredential(CredentialSlot);

impl Callback for TakeCredential {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        *self.0.borrow_mut() = credential_of(request);
        Ok(response)
    }
}

fn credential_of(request: &Request) -> Option<String> {
    let from_query = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token" || k == "ticket")
            .map(|(_, v)| v.into_owned())
    });
    from_query.or_else(|| {
        let header = request.headers().get("authorization")?.to_str().ok()?;
        let (scheme, value) = header.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| value.trim().to_owned())
    })
}

/// Starts the WebSocket upgrade on an accepted stream.
pub(super) fn accept(stream: Stream, config: WebSocketConfig) -> Option<(Link, CredentialSlot)> {
    let slot = CredentialSlot::default();
    let result =
        tungstenite::accept_hdr_with_config(stream, TakeCredential(slot.clone()), Some(config));
    upgrade(result, slot.clone()).map(|link| (link, slot))
}

/// Buffer sizes and limits for WebSocket connections, from the config.
pub(super) fn config(config: &Config) -> WebSocketConfig {
    let max_message = config.limits.max_frame_bytes + crate::core::codec::LEN_PREFIX;
    WebSocketConfig::default()
        // Small eager read buffer: idle browser connections should cost little.
        .read_buffer_size(4 * 1024)
        // A turn's messages are framed into this buffer and leave with one flush.
        .write_buffer_size((config.limits.max_output_buffer_bytes / 2).min(64 * 1024))
        .max_write_buffer_size(config.limits.max_output_buffer_bytes)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// What an upgrade step produced.
fn upgrade(
    result: Result<
        tungstenite::WebSocket<Stream>,
        HandshakeError<ServerHandshake<Stream, TakeCredential>>,
    >,
    credential: CredentialSlot,
) -> Option<Link> {
    match result {
        Ok(ws) => Some(Link::Ws(Box::new(ws))),
        Err(HandshakeError::Interrupted(mid)) => Some(Link::WsHandshake(Some(Box::new(Upgrade {
            mid,
            credential,
        })))),
        Err(HandshakeError::Failure(e)) => {
            log::debug!("WebSocket upgrade failed: {e}");
            None
        }
    }
}

impl<H: Hooks> NetServer<H> {
    /// Resumes an upgrade; a failed one is a lost connection.
    pub(super) fn resume_upgrade(&mut self, now: Instant, id: ConnId, s: &mut Scratch) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Link::WsHandshake(mid) = &mut conn.link else {
            return;
        };
        let Some(up) = mid.take() else {
            return;
        };
        let Upgrade { mid, credential } = *up;
        match upgrade(mid.handshake(), credential.clone()) {
            Some(link) => {
                let open = matches!(link, Link::Ws(_));
                conn.link = link;
                if open {
                    self.core.handle_ws_open(id, credential.take());
                    self.sessionserver.on_ws_open(&self.core, id);
                    // Frames may have arrived with the upgrade request.
                    self.read_ws(now, id, s);
                }
            }
            None => self.core.handle_disconnect(now, id),
        }
    }

    /// Reads messages until `WouldBlock`, the core closing the connection, or the budget.
    pub(super) fn read_ws(&mut self, now: Instant, id: ConnId, s: &mut Scratch) {
        let mut total = 0;
        loop {
            if self.core.is_closing(id) {
                return;
            }
            let Some(conn) = self.conn_mut(id) else {
                return;
            };
            let Link::Ws(ws) = &mut conn.link else {
                return;
            };
            match ws.read() {
                Ok(Message::Binary(bytes)) => {
                    if let WsProfile::Unknown = conn.profile {
                        let profile = match crate::profiles::Adapter::detect(&bytes) {
                            FirstMessage::Native => WsProfile::Native,
                            FirstMessage::Vendor(adapter) => {
                                self.core.set_profile(id, adapter.name());
                                WsProfile::Vendor(adapter)
                            }
                        };
                        if let Some(conn) = self.conn_mut(id) {
                            conn.profile = profile;
                        }
                    }
                    let Some(conn) = self.conn_mut(id) else {
                        return;
                    };
                    match &mut conn.profile {
                        WsProfile::Vendor(adapter) => {
                            s.translated.clear();
                            match adapter.take_client_message(&bytes, &mut s.translated) {
                                Ok(ignored) => {
                                    if ignored > 0 {
                                        self.core.handle_ignored(now, id, ignored);
                                    }
                                    if !s.translated.is_empty() {
                                        self.core.handle_tcp_bytes(now, id, &s.translated);
                                    }
                                }
                                Err(e) => {
                                    self.core.handle_protocol_error(now, id, e.code, &e.message);
                                    return;
                                }
                            }
                        }
                        _ => self.core.handle_tcp_bytes(now, id, &bytes),
                    }
                    if bytes.is_empty() {
                        // Carries nothing, but it is a message: it counts against the rate.
                        self.core.handle_ignored(now, id, 1);
                    }
                    total += bytes.len().max(MIN_MESSAGE_COST);
                }
                Ok(Message::Text(text)) => {
                    self.sessionserver
                        .handle_text(&mut self.core, now, id, text.as_str());
                    total += text.len().max(MIN_MESSAGE_COST);
                }
                // tungstenite queues the pong and writes it on its next read or flush; the
                // connection is listed for this turn's flush in case the socket was full. Pings
                // and pongs are messages too: a flood of them is rate-limited (CLOSE 28).
                Ok(Message::Ping(_)) => {
                    self.core.handle_ws_ping(now, id);
                    self.core.handle_ignored(now, id, 1);
                    total += MIN_MESSAGE_COST;
                }
                Ok(Message::Pong(_)) => {
                    self.core.handle_ws_pong(now, id);
                    self.core.handle_ignored(now, id, 1);
                    total += MIN_MESSAGE_COST;
                }
                Ok(_) => total += MIN_MESSAGE_COST,
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(Error::Capacity(e)) => {
                    self.core
                        .handle_protocol_error(now, id, Code::FrameTooLarge, &e.to_string());
                    return;
                }
                Err(e) => {
                    log::debug!("{id}: WebSocket closed: {e}");
                    self.core.handle_disconnect(now, id);
                    return;
                }
            }
            if total >= READ_BUDGET {
                s.carry.push(id);
                return;
            }
        }
    }

    /// Sends the connection's pending output: its sessionserver messages (one text message each)
    /// and its native frames (one binary message), framed into tungstenite's buffer and written
    /// with one flush, so one write per loop turn. What the socket does not take stays queued in
    /// tungstenite and leaves when it drains.
    pub(super) fn flush_ws(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Link::Ws(ws) = &mut conn.link else {
            return;
        };
        let mut failed = None;
        if self.core.take_ws_ping(id)
            && let Err(e) = queued(ws.write(Message::Ping(Default::default())))
        {
            failed = Some(e);
        }
        for text in self.core.json_pending(id) {
            if let Err(e) = queued(ws.write(Message::text(text))) {
                failed = Some(e);
                break;
            }
        }
        self.core.json_sent(id);
        let pending = self.core.tcp_pending(id);
        let len = pending.len();
        let mut consumed = false;
        if let WsProfile::Vendor(adapter) = &mut conn.profile {
            // Vendor packets: translated, then one WebSocket message per packet (GameLift) or
            // all of them in one (GameSparks).
            let mut out = Vec::new();
            let mut ends = Vec::new();
            adapter.write_for_client(pending, &mut out, &mut ends);
            self.core.tcp_written(id, len);
            consumed = true;
            if adapter.one_packet_per_message() {
                let mut start = 0;
                for end in ends {
                    if failed.is_none()
                        && let Err(e) = queued(ws.write(Message::Binary(
                            tungstenite::Bytes::copy_from_slice(&out[start..end]),
                        )))
                    {
                        failed = Some(e);
                    }
                    start = end;
                }
            } else if !out.is_empty()
                && failed.is_none()
                && let Err(e) = queued(ws.write(Message::Binary(out.into())))
            {
                failed = Some(e);
            }
        } else if failed.is_none() && len > 0 {
            match queued(
                ws.write(Message::Binary(tungstenite::Bytes::copy_from_slice(
                    pending,
                ))),
            ) {
                Ok(()) => self.core.tcp_written(id, len),
                // The client reads too slowly; the core's own cap decides when to disconnect.
                Err(Error::WriteBufferFull(_)) => self.core.tcp_written(id, 0),
                Err(e) => failed = Some(e),
            }
        }
        let failed = match failed {
            None => queued(ws.flush()).err(),
            some => some,
        };
        let Some(e) = failed else {
            return;
        };
        log::debug!("{id}: WebSocket write: {e}");
        let now = Instant::now();
        match e {
            Error::WriteBufferFull(_) => self.core.handle_protocol_error(
                now,
                id,
                Code::OutputOverflow,
                "client read too slowly",
            ),
            _ => {
                if !consumed {
                    self.core.tcp_written(id, len);
                }
                self.core.handle_disconnect(now, id);
            }
        }
    }

    /// The socket drained: send what tungstenite (or TLS) queued.
    pub(super) fn writable(&mut self, id: ConnId) {
        match self.conn_mut(id).map(|c| &mut c.link) {
            Some(Link::Ws(ws)) => {
                let _ = ws.flush();
            }
            Some(Link::Tcp(stream)) => {
                let _ = stream.flush();
            }
            _ => {}
        }
    }
}

/// A write or flush that hit a full socket still queued its message in tungstenite, which sends
/// it when the socket drains: that is success here.
fn queued(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}
