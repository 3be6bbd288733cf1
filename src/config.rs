//! `config.toml`: serde structs, defaults, and validation with errors that name the key. No IO.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening addresses, connection limits and timeouts.
    pub server: ServerConfig,
    /// Per-connection limits.
    pub limits: LimitsConfig,
    /// Session rules.
    pub sessions: SessionsConfig,
    /// The Lua session script and its limits.
    pub script: ScriptConfig,
    /// The loop watchdog: stalls logged, and a loop that never comes back ends the process.
    pub watchdog: WatchdogConfig,
    /// Who may join: open, a shared token, or signed join tickets.
    pub auth: AuthConfig,
    /// TLS listeners (`tls://` for native clients, `wss://` for browsers).
    pub tls: TlsConfig,
    /// The admin HTTP listener: health, metrics, sessions API, drain, dashboard.
    pub admin: AdminConfig,
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin HTTP listener; empty: off.
    pub listen: String,
    /// If not empty, every admin request but `/healthz`, `/readyz` and the dashboard's page
    /// must carry it (`Authorization: Bearer`). Required when `listen` is not a loopback address.
    pub token: String,
    /// Host names the listener answers to besides IP addresses and `localhost` (a reverse
    /// proxy's public name); any other `Host` is refused, so a rebound DNS name reads nothing.
    pub allowed_hosts: Vec<String>,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Who may join.
    pub mode: AuthMode,
    /// The shared token for `mode = "token"`.
    pub token: String,
    /// How tickets are signed.
    pub ticket_algorithm: TicketAlgorithm,
    /// HS256: the shared secret. EdDSA: the backend's Ed25519 public key (PEM).
    pub ticket_key: String,
    /// A file holding `ticket_key` (read once at start; trailing newlines of a secret ignored).
    pub ticket_key_file: String,
    /// If not empty, a ticket's `iss` must be exactly this.
    pub ticket_issuer: String,
    /// If not empty, a ticket's `aud` must be (or contain) this.
    pub ticket_audience: String,
    /// Clock difference tolerated between the backend that signs and this server.
    pub ticket_clock_skew_ms: u64,
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone may join as whoever it claims to be (development).
    Open,
    /// Every connection carries `auth.token`.
    Token,
    /// Every connection carries a join ticket signed by the game's backend.
    Ticket,
}

/// `auth.ticket_algorithm`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum TicketAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    HS256,
    /// Ed25519 signatures: moonrt holds only the public key.
    EdDSA,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Open,
            token: String::new(),
            ticket_algorithm: TicketAlgorithm::HS256,
            ticket_key: String::new(),
            ticket_key_file: String::new(),
            ticket_issuer: String::new(),
            ticket_audience: String::new(),
            ticket_clock_skew_ms: 30_000,
        }
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// TLS address for native clients (the TCP protocol inside TLS); empty: off.
    pub listen: String,
    /// TLS address for WebSocket clients (`wss://`); empty: off.
    pub ws_listen: String,
    /// The certificate chain (PEM, leaf first), e.g. Let's Encrypt's `fullchain.pem`.
    pub cert_file: String,
    /// The private key (PEM), e.g. Let's Encrypt's `privkey.pem`.
    pub key_file: String,
}

/// `[watchdog]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// A loop turn running this long is logged with the session, callback and script location.
    pub stall_log_ms: u64,
    /// A loop turn running this long ends the process with exit status 70, for the service
    /// manager to restart it; 0 never ends it.
    pub stall_exit_ms: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            stall_log_ms: 1_000,
            stall_exit_ms: 10_000,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// TCP listen address.
    pub listen: SocketAddr,
    /// UDP listen address; empty means the TCP address and port.
    pub udp_listen: String,
    /// Whether the UDP socket is opened at all.
    pub udp_enabled: bool,
    /// WebSocket listen address for browsers; empty turns WebSocket off.
    pub ws_listen: String,
    /// Connections held at once; more are refused with SERVER_FULL.
    pub max_connections: usize,
    /// Sessions alive at once; creating more is refused with TOO_MANY_SESSIONS.
    pub max_sessions: usize,
    /// Time a new connection has to send its HELLO.
    pub handshake_timeout_ms: u64,
    /// Time without any message from a client before it is closed.
    pub idle_timeout_ms: u64,
    /// Longest time a graceful stop waits for clients to be sent their CLOSE.
    pub shutdown_grace_ms: u64,
    /// Kept for old config files: a non-empty value means `[auth] mode = "token"` with it.
    pub access_token: String,
    /// This server's name as scripts see it (`rt.server_id`); empty means `moonrt-<pid>`.
    pub id: String,
    /// The host name or address clients reach this server at, as the admin API's session
    /// creation answers it; empty: the listen address, or the admin request's host if that is
    /// a wildcard.
    pub public_host: String,
}

/// The longest send interval a session may have (`sessions.send_interval_ms`, per-session
/// settings), ms.
pub const MAX_SEND_INTERVAL_MS: u64 = 1000;

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame (type byte + body) accepted from a client.
    pub max_frame_bytes: usize,
    /// Pending output per connection beyond which a slow reader is disconnected.
    pub max_output_buffer_bytes: usize,
    /// Budget for one UDP datagram the server sends; small messages are packed up to it.
    pub udp_mtu: usize,
    /// Messages a client may send per second (averaged; bursts up to this many).
    pub max_messages_per_sec: u32,
}

/// `[sessions]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Players a session holds at most.
    pub max_players: usize,
    /// How long an empty session stays before it ends (GameSparks used five minutes).
    pub empty_session_linger_ms: u64,
    /// Number sessions 1, 2, 3... instead of with random ids that cannot be guessed.
    pub sequential_ids: bool,
    /// How long a player whose connection dropped keeps its seat (peer id, groups, props, the
    /// reliable messages sent meanwhile) for a reconnect; 0: a drop is a leave.
    pub reconnect_grace_ms: u64,
    /// Hold each player's deliveries and send them together once per this many ms (0: send at
    /// the end of every loop turn); sessions may set their own.
    pub send_interval_ms: u64,
}

/// `[script]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptConfig {
    /// The main script, relative to the working directory; empty runs a plain relay.
    pub path: String,
    /// Memory one session's Lua state may use.
    pub memory_limit_bytes: usize,
    /// Lua VM instructions one callback may run before it is stopped.
    pub instruction_budget: u64,
    /// Wall-clock time one callback may run before it is stopped.
    pub callback_time_limit_ms: u64,
    /// Script log lines a session may write per second (bursts up to this many); the rest are
    /// counted and reported in one line.
    pub log_lines_per_sec: u32,
    /// What a Lua error in a callback does: "log" (the session goes on) or "end_session".
    pub on_error: OnError,
    /// Arguments passed to the script's `on_process_start(args)`.
    pub args: Vec<String>,
    /// Watch the script folder and make a saved edit current for new sessions.
    pub watch: bool,
    /// Hosts (`name` or `name:port`) `rt.http.request` may reach; empty turns it off.
    pub http_allow: Vec<String>,
    /// Longest time one backend request may take.
    pub http_timeout_ms: u64,
    /// Largest request or response body.
    pub http_max_body_bytes: usize,
    /// Requests in flight at once (worker threads), and per session.
    pub http_max_concurrent: usize,
}

/// What a Lua error in a callback does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Log it with file:line and traceback; the session goes on.
    Log,
    /// Log it and end the session with code 29.
    EndSession,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        ScriptConfig {
            path: "lua/main.lua".into(),
            memory_limit_bytes: 16 << 20,
            instruction_budget: 10_000_000,
            callback_time_limit_ms: 250,
            log_lines_per_sec: 50,
            on_error: OnError::Log,
            args: Vec::new(),
            watch: true,
            http_allow: Vec::new(),
            http_timeout_ms: 5_000,
            http_max_body_bytes: 1 << 20,
            http_max_concurrent: 8,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:7777".parse().expect("literal address"),
            udp_listen: String::new(),
            udp_enabled: true,
            ws_listen: "0.0.0.0:7778".into(),
            max_connections: 10_000,
            max_sessions: 2_000,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            shutdown_grace_ms: 2_000,
            access_token: String::new(),
            id: String::new(),
            public_host: String::new(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame_bytes: 65_536,
            max_output_buffer_bytes: 1 << 20,
            udp_mtu: 1_200,
            max_messages_per_sec: 1_000,
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_players: 16,
            empty_session_linger_ms: 300_000,
            sequential_ids: false,
            reconnect_grace_ms: 0,
            send_interval_ms: 0,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or has an unknown key or a wrong type (the message names it).
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A key has a value outside its allowed range.
    #[error("{key}: {problem}")]
    Invalid {
        /// The dotted key, e.g. `limits.udp_mtu`.
        key: &'static str,
        /// What is wrong, with the value seen.
        problem: String,
    },
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        let l = &self.limits;
        let sc = &self.script;
        let w = &self.watchdog;
        between("server.max_connections", s.max_connections, 1, 1_000_000)?;
        at_least("server.max_sessions", s.max_sessions, 1)?;
        at_least("server.handshake_timeout_ms", s.handshake_timeout_ms, 100)?;
        between(
            "server.idle_timeout_ms",
            s.idle_timeout_ms,
            1_000,
            u64::from(u32::MAX),
        )?;
        for (key, value, example) in [
            ("server.ws_listen", &s.ws_listen, "0.0.0.0:7778, or empty"),
            ("server.udp_listen", &s.udp_listen, "0.0.0.0:7777"),
        ] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!("must be an address like {example} (got {value:?})"),
                });
            }
        }
        between("limits.max_frame_bytes", l.max_frame_bytes, 64, 16 << 20)?;
        if l.max_output_buffer_bytes < 2 * l.max_frame_bytes {
            return Err(ConfigError::Invalid {
                key: "limits.max_output_buffer_bytes",
                problem: format!(
                    "must be at least twice limits.max_frame_bytes ({}), got {}",
                    2 * l.max_frame_bytes,
                    l.max_output_buffer_bytes
                ),
            });
        }
        between("limits.udp_mtu", l.udp_mtu, 512, 65_507)?;
        at_least("limits.max_messages_per_sec", l.max_messages_per_sec, 1)?;
        at_least(
            "script.memory_limit_bytes",
            sc.memory_limit_bytes,
            256 * 1024,
        )?;
        at_least("script.instruction_budget", sc.instruction_budget, 10_000)?;
        at_least(
            "script.callback_time_limit_ms",
            sc.callback_time_limit_ms,
            10,
        )?;
        at_least("script.log_lines_per_sec", sc.log_lines_per_sec, 1)?;
        between("script.http_max_concurrent", sc.http_max_concurrent, 1, 64)?;
        between("script.http_timeout_ms", sc.http_timeout_ms, 100, 60_000)?;
        at_least("watchdog.stall_log_ms", w.stall_log_ms, 10)?;
        if w.stall_exit_ms != 0 && w.stall_exit_ms < 1_000.max(w.stall_log_ms) {
            return Err(ConfigError::Invalid {
                key: "watchdog.stall_exit_ms",
                problem: format!(
                    "must be 0 (never) or at least 1000 and at least watchdog.stall_log_ms \
                     (got {})",
                    w.stall_exit_ms
                ),
            });
        }
        at_most(
            "sessions.reconnect_grace_ms",
            self.sessions.reconnect_grace_ms,
            3_600_000,
        )?;
        at_most(
            "sessions.send_interval_ms",
            self.sessions.send_interval_ms,
            MAX_SEND_INTERVAL_MS,
        )?;
        self.validate_auth()?;
        self.validate_tls()?;
        self.validate_admin()?;
        between(
            "sessions.max_players",
            self.sessions.max_players,
            1,
            usize::from(u16::MAX) - 1,
        )
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        if !self.server.access_token.is_empty() && a.mode != AuthMode::Open {
            return invalid(
                "server.access_token",
                "is the old spelling of [auth] token; with [auth] mode set, use [auth] token",
            );
        }
        if a.mode == AuthMode::Token && a.token.is_empty() {
            return invalid("auth.token", "must be set when auth.mode is \"token\"");
        }
        if !a.ticket_key.is_empty() && !a.ticket_key_file.is_empty() {
            return invalid(
                "auth.ticket_key_file",
                "give the key either inline (auth.ticket_key) or in a file, not both",
            );
        }
        if a.mode == AuthMode::Ticket && a.ticket_key.is_empty() && a.ticket_key_file.is_empty() {
            return invalid(
                "auth.ticket_key",
                "must be set (or auth.ticket_key_file) when auth.mode is \"ticket\"",
            );
        }
        if a.mode == AuthMode::Ticket
            && a.ticket_algorithm == TicketAlgorithm::HS256
            && !a.ticket_key.is_empty()
            && a.ticket_key.len() < 32
        {
            return invalid(
                "auth.ticket_key",
                "an HS256 secret must be at least 32 bytes (e.g. `openssl rand -hex 32`)",
            );
        }
        Ok(())
    }

    fn validate_admin(&self) -> Result<(), ConfigError> {
        let listen = &self.admin.listen;
        if listen.is_empty() {
            return Ok(());
        }
        let Ok(addr) = listen.parse::<SocketAddr>() else {
            return Err(ConfigError::Invalid {
                key: "admin.listen",
                problem: format!(
                    "must be an address like 127.0.0.1:9090, or empty (got {listen:?})"
                ),
            });
        };
        if !addr.ip().is_loopback() && self.admin.token.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "admin.token",
                problem: format!(
                    "must be set when admin.listen ({listen}) is reachable from the network: \
                     anyone who reaches it could end sessions and drain the server. Set \
                     [admin] token (e.g. `openssl rand -hex 32`), or listen on 127.0.0.1"
                ),
            });
        }
        if let Some(bad) = self
            .admin
            .allowed_hosts
            .iter()
            .find(|h| h.trim().is_empty() || h.contains(['/', ' ', '*']))
        {
            return Err(ConfigError::Invalid {
                key: "admin.allowed_hosts",
                problem: format!(
                    "holds host names like \"admin.example.com\" (no scheme, path or \
                     wildcard; got {bad:?})"
                ),
            });
        }
        let game = [
            Some(self.server.listen),
            self.server.ws_listen.parse().ok(),
            self.tls.listen.parse().ok(),
            self.tls.ws_listen.parse().ok(),
        ];
        if addr.port() != 0
            && game
                .iter()
                .flatten()
                .any(|g: &SocketAddr| g.port() == addr.port())
        {
            return Err(ConfigError::Invalid {
                key: "admin.listen",
                problem: format!("must not share a port with a game listener (got {listen:?})"),
            });
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        for (key, value) in [("tls.listen", &t.listen), ("tls.ws_listen", &t.ws_listen)] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!(
                        "must be an address like 0.0.0.0:7779, or empty (got {value:?})"
                    ),
                });
            }
        }
        let on = !t.listen.is_empty() || !t.ws_listen.is_empty();
        for (key, value) in [
            ("tls.cert_file", &t.cert_file),
            ("tls.key_file", &t.key_file),
        ] {
            if on && value.is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    problem: "must be set when a TLS listener is on".into(),
                });
            }
        }
        Ok(())
    }

    /// The auth mode in force: `[auth] mode`, or "token" when only the old
    /// `server.access_token` is set.
    pub fn auth_mode(&self) -> AuthMode {
        if self.auth.mode == AuthMode::Open && !self.server.access_token.is_empty() {
            AuthMode::Token
        } else {
            self.auth.mode
        }
    }

    /// The shared token in force (`auth.token`, or the old `server.access_token`).
    pub fn auth_token(&self) -> &str {
        if self.auth.token.is_empty() {
            &self.server.access_token
        } else {
            &self.auth.token
        }
    }

    /// Whether any TLS listener is on.
    pub fn tls_enabled(&self) -> bool {
        !self.tls.listen.is_empty() || !self.tls.ws_listen.is_empty()
    }

    /// The UDP address to bind, given the TCP address actually bound (port 0 resolves there).
    pub fn udp_addr(&self, tcp_bound: SocketAddr) -> SocketAddr {
        self.server.udp_listen.parse().unwrap_or(tcp_bound)
    }

    /// `server.id`, or `moonrt-<pid>` when it is empty.
    pub fn server_id(&self) -> String {
        if self.server.id.is_empty() {
            format!("moonrt-{}", std::process::id())
        } else {
            self.server.id.clone()
        }
    }

    /// `server.handshake_timeout_ms` as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.server.handshake_timeout_ms)
    }

    /// `server.idle_timeout_ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.server.idle_timeout_ms)
    }

    /// `sessions.empty_session_linger_ms` as a duration.
    pub fn empty_session_linger(&self) -> Duration {
        Duration::from_millis(self.sessions.empty_session_linger_ms)
    }
}

/// A key's allowed values are written once, as the bounds given here: the check and the message
/// both come from them ("must be between 512 and 65507 (got 70000)").
fn bounded<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), ConfigError> {
    if min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m) {
        return Ok(());
    }
    let rule = match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => unreachable!("an unbounded value always passes"),
    };
    Err(ConfigError::Invalid {
        key,
        problem: format!("must be {rule} (got {value})"),
    })
}

fn at_least<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
) -> Result<(), ConfigError> {
    bounded(key, value, Some(min), None)
}

fn at_most<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    max: T,
) -> Result<(), ConfigError> {
    bounded(key, value, None, Some(max))
}

fn between<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    bounded(key, value, Some(min), Some(max))
}

/// The first of `listeners` beyond loopback when `[auth] mode` is "open" (anyone may join as
/// anyone), for the warning at start; `None` when joins are authenticated or all is loopback.
pub fn open_to_the_network(
    config: &Config,
    listeners: &[Option<SocketAddr>],
) -> Option<SocketAddr> {
    if config.auth_mode() != AuthMode::Open {
        return None;
    }
    listeners
        .iter()
        .flatten()
        .copied()
        .find(|a| !a.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_toml_parses_to_the_defaults_but_turns_on_the_local_admin_listener() {
        let shipped = include_str!("../config.toml");
        let mut expected = Config::default();
        assert_eq!(expected.admin.listen, "", "off unless configured");
        expected.admin.listen = "127.0.0.1:9090".into();
        assert_eq!(Config::from_toml(shipped).unwrap(), expected);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.limits.udp_mtu, 1200);
        assert_eq!(c.sessions.empty_session_linger_ms, 300_000);
    }

    #[test]
    fn out_of_range_value_names_its_key() {
        let err = Config::from_toml("[limits]\nudp_mtu = 70000\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "limits.udp_mtu: must be between 512 and 65507 (got 70000)"
        );
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let err = Config::from_toml("[server]\nmax_conections = 5\n").unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn a_network_admin_listener_without_a_token_is_refused_and_the_error_names_the_fix() {
        for listen in ["0.0.0.0:9091", "[::]:9091", "10.0.0.5:9090"] {
            let toml = format!("[admin]\nlisten = \"{listen}\"\n");
            let err = Config::from_toml(&toml).unwrap_err().to_string();
            assert!(err.starts_with("admin.token: must be set"), "{err}");
            assert!(err.contains("listen on 127.0.0.1"), "{err}");
            let with_token = format!("{toml}token = \"ops-secret\"\n");
            assert_eq!(Config::from_toml(&with_token).unwrap().admin.listen, listen);
        }
        for listen in ["127.0.0.1:9090", "[::1]:9090", "127.0.0.2:0"] {
            let toml = format!("[admin]\nlisten = \"{listen}\"\n");
            assert_eq!(
                Config::from_toml(&toml).unwrap().admin.token,
                "",
                "{listen}"
            );
        }
    }

    #[test]
    fn open_joins_on_a_public_game_port_are_reported_and_loopback_or_tickets_are_not() {
        let public: SocketAddr = "0.0.0.0:7777".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7777".parse().unwrap();
        let open = Config::default();
        assert_eq!(
            open_to_the_network(&open, &[Some(local), Some(public)]),
            Some(public)
        );
        assert_eq!(open_to_the_network(&open, &[Some(local), None]), None);
        let mut token = Config::default();
        token.server.access_token = "s3cret".into();
        assert_eq!(open_to_the_network(&token, &[Some(public)]), None);
    }
}
