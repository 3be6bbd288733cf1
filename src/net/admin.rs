//! The loop's side of the admin listener (`crate::ops`): answers its requests between turns.

use super::NetServer;
use crate::core::{Hooks, SessionId};
use crate::ops::{AdminCall, AdminReply};
use serde_json::json;
use std::time::Instant;

impl<H: Hooks> NetServer<H> {
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
                body: core.metrics_text(),
            },
            AdminCall::Sessions => AdminReply::json(200, &core.sessions_json(now)),
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
                core.begin_drain();
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
