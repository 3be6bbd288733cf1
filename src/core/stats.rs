//! Counters the core keeps, for logs, tests and the admin listener's `/metrics`.

use std::collections::BTreeMap;

/// Monotonic counters since the server started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received from clients (TCP and WebSocket streams after TLS, UDP datagrams).
    pub bytes_in: u64,
    /// Bytes sent to clients (written to streams before TLS, UDP datagrams).
    pub bytes_out: u64,
    /// REJECTs sent, by code.
    pub rejects: BTreeMap<u16, u64>,
    /// Connections closed after WELCOME, by code (CLOSE sent, or the connection lost: 26).
    pub closes: BTreeMap<u16, u64>,
    /// TCP connections accepted by the transport.
    pub connections_accepted: u64,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: u64,
    /// HELLOs answered with WELCOME.
    pub handshakes_ok: u64,
    /// HELLOs answered with REJECT.
    pub handshakes_rejected: u64,
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// DATA messages received from players (TCP and UDP).
    pub messages_in: u64,
    /// DELIVERY frames queued to receivers.
    pub deliveries: u64,
    /// Unreliable deliveries dropped because the receiver was backed up.
    pub deliveries_dropped: u64,
    /// DATA messages addressed to the server.
    pub to_server: u64,
    /// DATA messages addressed to the server that no logic handled.
    pub to_server_unhandled: u64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: u64,
    /// Connections closed because their output passed the cap.
    pub output_overflows: u64,
    /// Messages refused by the rate limit.
    pub rate_limited: u64,
    /// UDP datagrams received.
    pub udp_in: u64,
    /// UDP datagrams sent (several small messages to one player may share one).
    pub udp_out: u64,
    /// Syscalls that sent UDP datagrams (one `sendmmsg` sends many, to many players).
    pub udp_send_calls: u64,
    /// Syscalls that received UDP datagrams (one `recvmmsg` takes many).
    pub udp_recv_calls: u64,
    /// UDP datagrams dropped: too short or undecodable.
    pub udp_dropped_malformed: u64,
    /// UDP datagrams dropped: unknown connection or wrong secret.
    pub udp_dropped_auth: u64,
    /// UDP datagrams dropped: from an address that is not the bound one.
    pub udp_dropped_unbound: u64,
    /// UDP frames dropped: not allowed over UDP (reliable DATA, HELLO, ...).
    pub udp_dropped_invalid: u64,
}
