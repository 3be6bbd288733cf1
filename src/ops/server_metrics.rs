//! The server's Prometheus text (`GET /metrics`): the core's counters, gauges and the loop's
//! histograms, formatted here from what the core reports (`Server::stats`,
//! `Server::connections_by_transport`, `Server::logic_status`); the core itself formats nothing.

use super::metrics::{Exposition, label};
use crate::core::{Code, Hooks, Server};

/// `GET /metrics`: Prometheus text exposition of the counters, gauges and histograms.
pub fn server_text<H: Hooks>(core: &Server<H>) -> String {
    let s = core.stats();
    let logic = core.logic_status();
    let mut m = Exposition::default();
    let by_transport = core.connections_by_transport();
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
        core.session_count(),
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
        core.player_count(),
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
                let name = Code::from_u16(*code).map_or("unknown", |c| c.name());
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
        u8::from(core.is_draining()),
    );
    m.histograms();
    m.finish()
}
