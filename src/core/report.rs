//! What the admin listener shows: sessions and players as JSON, and the Prometheus metrics
//! text. Read-only views of core state, built between loop turns on request.

use super::conn::{Phase, Transport};
use super::hooks::Hooks;
use super::ids::SessionId;
use super::server::Server;
use super::session::Session;
use crate::ops::metrics::{Exposition, label};
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

    /// `GET /metrics`: Prometheus text exposition of the counters, gauges and histograms.
    pub fn metrics_text(&self) -> String {
        let s = &self.stats;
        let logic = self.hooks.status();
        let mut m = Exposition::default();
        let mut by_transport = std::collections::BTreeMap::new();
        for conn in self.conns.iter() {
            if conn.phase != Phase::Closing {
                *by_transport
                    .entry(transport_name(conn.transport, conn.json))
                    .or_insert(0u64) += 1;
            }
        }
        m.family(
            "moonrt_connections",
            "gauge",
            "Open client connections, by transport (ws-json: sessionserver JSON over WebSocket).",
            ["tcp", "tls", "ws", "wss", "ws-json", "wss-json"].map(|t| {
                (
                    format!("transport=\"{t}\""),
                    by_transport.get(t).copied().unwrap_or(0).to_string(),
                )
            }),
        );
        m.single(
            "moonrt_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            s.connections_accepted,
        );
        m.single(
            "moonrt_sessions",
            "gauge",
            "Live sessions.",
            self.sessions.len(),
        );
        m.single(
            "moonrt_sessions_created_total",
            "counter",
            "Sessions created.",
            s.sessions_created,
        );
        m.single(
            "moonrt_players",
            "gauge",
            "Players in sessions.",
            self.player_count(),
        );
        m.single(
            "moonrt_messages_received_total",
            "counter",
            "DATA messages received from players.",
            s.messages_in,
        );
        m.single(
            "moonrt_deliveries_total",
            "counter",
            "Messages queued to receivers (each receiver counts once).",
            s.deliveries,
        );
        m.family(
            "moonrt_dropped_total",
            "counter",
            "Messages or datagrams dropped, by reason.",
            [
                ("slow_receiver", s.deliveries_dropped),
                ("rate_limited", s.rate_limited),
                ("udp_malformed", s.udp_dropped_malformed),
                ("udp_auth", s.udp_dropped_auth),
                ("udp_unbound", s.udp_dropped_unbound),
                ("udp_invalid", s.udp_dropped_invalid),
                ("to_server_unhandled", s.to_server_unhandled),
            ]
            .map(|(reason, n)| (format!("reason=\"{reason}\""), n.to_string())),
        );
        m.single(
            "moonrt_received_bytes_total",
            "counter",
            "Bytes received from clients (after TLS; UDP datagrams whole).",
            s.bytes_in,
        );
        m.single(
            "moonrt_sent_bytes_total",
            "counter",
            "Bytes sent to clients (before TLS; UDP datagrams whole).",
            s.bytes_out,
        );
        m.single(
            "moonrt_udp_datagrams_received_total",
            "counter",
            "UDP datagrams received.",
            s.udp_in,
        );
        let coded = |counts: &std::collections::BTreeMap<u16, u64>| {
            counts
                .iter()
                .map(|(code, n)| {
                    let name = super::codes::Code::from_u16(*code).map_or("unknown", |c| c.name());
                    (
                        format!("code=\"{code}\",reason=\"{}\"", label(name)),
                        n.to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        m.family(
            "moonrt_rejects_total",
            "counter",
            "Connections refused before WELCOME (REJECT), by code.",
            coded(&s.rejects),
        );
        m.family(
            "moonrt_closes_total",
            "counter",
            "Players' connections closed after WELCOME, by code (26: lost).",
            coded(&s.closes),
        );
        m.single(
            "moonrt_rate_limited_total",
            "counter",
            "Client messages refused by max_messages_per_sec.",
            s.rate_limited,
        );
        m.single(
            "moonrt_slow_reader_disconnects_total",
            "counter",
            "Clients disconnected for reading too slowly (code 21).",
            s.output_overflows,
        );
        m.single(
            "moonrt_protocol_errors_total",
            "counter",
            "Connections closed for breaking the protocol.",
            s.protocol_errors,
        );
        m.single(
            "moonrt_script_errors_total",
            "counter",
            "Lua errors raised in session callbacks.",
            logic.errors,
        );
        m.single(
            "moonrt_script_memory_bytes",
            "gauge",
            "Bytes used by every session's Lua state together.",
            logic.memory_bytes,
        );
        m.single(
            "moonrt_script_generation",
            "gauge",
            "The script generation new sessions start with (0: no script).",
            logic.generation,
        );
        m.single(
            "moonrt_script_last_reload_success",
            "gauge",
            "1 if the last reload that found a change made it current, 0 if it was refused, -1 \
             before any.",
            logic.last_reload_ok.map_or(-1, i32::from),
        );
        m.single(
            "moonrt_draining",
            "gauge",
            "1 while the server drains (no new sessions).",
            u8::from(self.is_draining()),
        );
        m.histograms();
        m.finish()
    }
}

fn transport_name(transport: Transport, json: bool) -> &'static str {
    match (transport, json) {
        (Transport::Ws, true) => "ws-json",
        (Transport::Wss, true) => "wss-json",
        (t, _) => t.name(),
    }
}
