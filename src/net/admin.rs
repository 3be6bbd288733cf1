//! The loop's side of the admin listener (`crate::ops`): answers its requests between turns.

use super::NetServer;
use crate::core::{Code, Hooks, SessionId};
use crate::ops::{AdminCall, AdminReply};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Instant;

impl<H: Hooks> NetServer<H> {
    /// Where players connect, for a session created through the admin API: the host
    /// (`server.public_host`, else the listen address, else the admin request's host) and each
    /// listener that is on.
    fn connect_json(&self, request_host: Option<&str>) -> serde_json::Value {
        let configured = &self.core.config().server.public_host;
        let host = if !configured.is_empty() {
            configured.clone()
        } else if !self.tcp_addr.ip().is_unspecified() {
            match self.tcp_addr {
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
                SocketAddr::V4(a) => a.ip().to_string(),
            }
        } else {
            request_host.unwrap_or("127.0.0.1").to_owned()
        };
        let port = |a: Option<SocketAddr>| a.map(|a| a.port());
        json!({
            "host": host,
            "tcp": self.tcp_addr.port(),
            "udp": port(self.udp_addr),
            "ws": self.ws_addr.map(|a| format!("ws://{host}:{}/", a.port())),
            "tls": port(self.tls_addr),
            "wss": self.wss_addr.map(|a| format!("wss://{host}:{}/", a.port())),
        })
    }

    /// Answers every admin request waiting.
    pub(super) fn answer_admin(&mut self, now: Instant) {
        while let Some(request) = self.admin.as_ref().and_then(|a| a.requests.try_recv().ok()) {
            let reply = self.admin_reply(now, &request.call);
            request.answer(reply);
        }
    }

    fn admin_reply(&mut self, now: Instant, call: &AdminCall) -> AdminReply {
        let core = &mut self.core;
        match call {
            AdminCall::Health => {
                // The loop answering is the first half; the script's own check the second.
                if core.health_check() {
                    AdminReply::json(200, &json!({"status": "ok"}))
                } else {
                    AdminReply::json(
                        503,
                        &json!({"status": "unhealthy", "reason": "the script's on_health_check returned false or failed"}),
                    )
                }
            }
            AdminCall::Ready => {
                let why = if core.is_shutting_down() {
                    Some("shutting down")
                } else if core.is_draining() {
                    Some("draining: no new sessions")
                } else {
                    None
                };
                match why {
                    None => AdminReply::json(200, &json!({"ready": true})),
                    Some(why) => AdminReply::json(503, &json!({"ready": false, "reason": why})),
                }
            }
            AdminCall::Metrics => AdminReply {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: crate::ops::server_metrics::server_text(core),
            },
            AdminCall::Sessions(filter) => {
                let found: Vec<_> = core
                    .find_sessions(filter)
                    .into_iter()
                    .filter_map(|sid| core.session_json(now, sid))
                    .collect();
                AdminReply::json(200, &serde_json::Value::Array(found))
            }
            AdminCall::CreateSession { new, host } => match core
                .create_session_ahead(now, new)
                .map_err(|refusal| with_script_error(refusal, core.last_ended_session()))
            {
                Ok(sid) => {
                    let mut answer = core.session_json(now, sid).unwrap_or_else(|| json!({}));
                    answer["connect"] = self.connect_json(host.as_deref());
                    answer["join"] = json!({"mode": 2, "session_id": sid.0});
                    AdminReply::json(201, &answer)
                }
                Err((code, why)) => {
                    let status = match code {
                        Code::SessionNameTaken => 409,
                        Code::TooManySessions | Code::ShuttingDown => 503,
                        Code::ScriptFailed => 500,
                        // The script ended it in on_session_start (it refused the parameters).
                        Code::SessionEnded => 422,
                        _ => 400,
                    };
                    AdminReply::json(status, &json!({"error": why, "code": code.as_u16()}))
                }
            },
            AdminCall::Session(id) => match core.session_json(now, SessionId(*id)) {
                Some(session) => AdminReply::json(200, &session),
                None => AdminReply::error(404, "no such session"),
            },
            AdminCall::EndSession(id) => {
                if core.end_session_by_admin(now, SessionId(*id)) {
                    AdminReply::json(200, &json!({"ended": id}))
                } else {
                    AdminReply::error(404, "no such session")
                }
            }
            AdminCall::Reload => {
                core.hooks_mut().reload();
                let status = core.hooks_mut().status();
                AdminReply::json(
                    202,
                    &json!({
                        "requested": true,
                        "generation": status.generation,
                        "note": "the script is read off the loop; GET /metrics or /api/overview shows the outcome",
                    }),
                )
            }
            AdminCall::Drain => {
                self.drain();
                let core = &mut self.core;
                AdminReply::json(
                    202,
                    &json!({"draining": true, "sessions": core.session_count()}),
                )
            }
            AdminCall::Overview => {
                let logic = core.hooks_mut().status();
                let stats = core.stats();
                AdminReply::json(
                    200,
                    &json!({
                        "server_id": self.server_id,
                        "draining": core.is_draining(),
                        "connections": core.connection_count(),
                        "sessions_live": core.session_count(),
                        "players": core.player_count(),
                        "messages_received": stats.messages_in,
                        "deliveries": stats.deliveries,
                        "bytes_in": stats.bytes_in,
                        "bytes_out": stats.bytes_out,
                        "script_generation": logic.generation,
                        "script_errors": logic.errors,
                        "script_memory_bytes": logic.memory_bytes,
                        "sessions": core.sessions_json(now),
                        "events": crate::ops::journal::recent(),
                    }),
                )
            }
        }
    }
}

/// A refusal with code 29 (the script failed while the session started) completed with what the
/// script said, from the journal: the caller is the operator or the backend, not a player.
fn with_script_error(refusal: (Code, String), ended: Option<SessionId>) -> (Code, String) {
    use crate::ops::journal;
    let (code, mut why) = refusal;
    if code == Code::ScriptFailed
        && let Some(sid) = ended
        && let Some(error) = journal::recent()
            .into_iter()
            .rev()
            .find(|e| e.session == Some(sid.0) && e.kind == journal::Kind::ScriptError)
    {
        why.push_str(": ");
        why.push_str(&error.text);
    }
    (code, why)
}
