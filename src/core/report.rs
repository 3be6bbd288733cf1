//! What the admin listener shows: sessions and players as JSON, connection counts, the logic's
//! status. Read-only views of core state, built between loop turns on request; `crate::ops`
//! formats them (the Prometheus text is `ops::server_metrics`).

use super::conn::{Phase, Transport};
use super::hooks::Hooks;
use super::ids::SessionId;
use super::server::Server;
use super::session::Session;
use serde_json::{Value, json};
use std::time::Instant;

impl<H: Hooks> Server<H> {
    /// Every live session, as `GET /api/sessions` lists them (players included).
    pub fn sessions_json(&self, now: Instant) -> Value {
        let mut ids: Vec<&SessionId> = self.sessions.keys().collect();
        ids.sort();
        Value::Array(
            ids.into_iter()
                .filter_map(|sid| self.session_json(now, *sid))
                .collect(),
        )
    }

    /// One session, as `GET /api/sessions/{id}` shows it; `None` if there is none.
    pub fn session_json(&self, now: Instant, sid: SessionId) -> Option<Value> {
        let session = self.sessions.get(&sid)?;
        let logic = self.hooks.session_status(sid);
        let players: Vec<Value> = session
            .members()
            .iter()
            .map(|m| {
                let conn = self.conns.get(m.conn);
                json!({
                    "peer": m.peer.0,
                    "id": m.player_id,
                    "name": m.name,
                    "transport": conn.map_or("gone", |c| transport_name(c.transport, c.json)),
                    "profile": conn.map_or("native", |c| c.profile().unwrap_or(if c.json { "sessionserver" } else { "native" })),
                    "udp_bound": conn.is_some_and(|c| c.udp_addr.is_some()),
                    "connected": conn.is_some_and(|c| matches!(c.phase, Phase::Joined { .. })),
                    "address": conn.map(|c| c.addr.to_string()),
                })
            })
            .collect();
        let groups: serde_json::Map<String, Value> = session
            .groups()
            .map(|(g, members)| {
                (
                    g.to_string(),
                    Value::Array(members.iter().map(|(p, _)| json!(p.0)).collect()),
                )
            })
            .collect();
        Some(json!({
            "id": sid.0,
            "name": session.name,
            "kind": if session.text { "sessionserver" } else { "native" },
            "age_seconds": session
                .created
                .map_or(0.0, |c| now.saturating_duration_since(c).as_secs_f64().floor()),
            "players": players,
            "groups": groups,
            "max_players": session.max_players,
            "free_seats": session.free_seats(),
            "open": session.open,
            "listed": session.listed,
            "params": session.params.clone().unwrap_or_else(|| json!({})),
            "linger_ms": session.linger.as_millis() as u64,
            "messages": session.messages.get(),
            "deliveries": session.deliveries.get(),
            "script_generation": logic.as_ref().map(|l| l.generation),
            "lua_memory_bytes": logic.as_ref().map(|l| l.memory_bytes),
        }))
    }

    /// Players in sessions.
    pub fn player_count(&self) -> usize {
        self.sessions.values().map(Session::len).sum()
    }

    /// Ends a session from the admin API: its players get CLOSE 23 with a reason saying so.
    pub fn end_session_by_admin(&mut self, now: Instant, sid: SessionId) -> bool {
        if !self.sessions.contains_key(&sid) {
            return false;
        }
        self.end_session_with(
            now,
            sid,
            super::codes::Code::SessionEnded,
            "ended by the server's operator",
        );
        self.after_input(now);
        true
    }

    /// Open connections (not closing), by transport name (`ws-json`: sessionserver JSON over
    /// WebSocket).
    pub fn connections_by_transport(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut by_transport = std::collections::BTreeMap::new();
        for conn in self.conns.iter() {
            if conn.phase != Phase::Closing {
                *by_transport
                    .entry(transport_name(conn.transport, conn.json))
                    .or_insert(0u64) += 1;
            }
        }
        by_transport
    }

    /// The session logic's counters (script generation, errors, memory).
    pub fn logic_status(&self) -> super::hooks::LogicStatus {
        self.hooks.status()
    }
}

fn transport_name(transport: Transport, json: bool) -> &'static str {
    match (transport, json) {
        (Transport::Ws, true) => "ws-json",
        (Transport::Wss, true) => "wss-json",
        (t, _) => t.name(),
    }
}
