//! Operations: the admin HTTP listener (health, readiness, Prometheus metrics, the sessions API,
//! drain, and the live dashboard), the journal of recent events, and the metric primitives.
//!
//! The listener runs on its own thread (`tiny_http`, a maintained HTTP/1.1 server) and never
//! touches server state: for anything but the static dashboard it sends an [`AdminRequest`] to
//! the event loop, wakes it, and waits for the answer. The loop answers between two turns, so a
//! slow or hostile HTTP client costs the game path nothing; a loop that does not answer within
//! [`LOOP_ANSWER_TIMEOUT`] is reported unhealthy.
//!
//! Before routing, every request passes `guard.rs`: its `Host` must be a name the listener
//! answers to (DNS rebinding), a POST must be one that another site's page cannot send, and
//! the token is compared in constant time. The token is read from the `Authorization` header
//! only, never from the URL, where it would stay in browser history and proxy logs.
//!
//! Files: `guard.rs` (those checks), `journal.rs` (recent script errors, reloads, drains),
//! `metrics.rs` (histograms and the exposition text), `server_metrics.rs` (the server's
//! `/metrics` text from what the core reports), `dashboard.html` (the page, no build
//! step).

pub mod guard;
pub mod journal;
pub mod metrics;
pub mod server_metrics;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

/// How long the listener waits for the loop before answering 503.
pub const LOOP_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests waiting for the loop at most; more are answered 503 at once.
const QUEUE: usize = 64;

const DASHBOARD: &str = include_str!("dashboard.html");

/// What the admin listener asks the loop for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCall {
    /// `GET /healthz`.
    Health,
    /// `GET /readyz`.
    Ready,
    /// `GET /metrics`.
    Metrics,
    /// `GET /api/sessions`, with an optional filter (`?free_seats=1&param.mode=duel`).
    Sessions(crate::core::SessionFilter),
    /// `POST /api/sessions`: create a session before its players arrive. `host` is the host
    /// the request was sent to (from its `Host` header), for the answer's connect address.
    CreateSession {
        /// The session to create.
        new: crate::core::NewSession,
        /// The request's `Host`, without the port.
        host: Option<String>,
    },
    /// `GET /api/sessions/{id}`.
    Session(u64),
    /// `POST /api/sessions/{id}/end`.
    EndSession(u64),
    /// `POST /api/reload`.
    Reload,
    /// `POST /api/drain`.
    Drain,
    /// `GET /api/overview`: counters, sessions and recent events, for the dashboard.
    Overview,
}

/// An answer: HTTP status, content type, body.
#[derive(Debug, Clone)]
pub struct AdminReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl AdminReply {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> AdminReply {
        AdminReply {
            status,
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    /// A JSON `{"error": ...}` answer.
    pub fn error(status: u16, message: &str) -> AdminReply {
        AdminReply::json(status, &serde_json::json!({ "error": message }))
    }
}

/// One request for the loop to answer.
pub struct AdminRequest {
    /// What is asked.
    pub call: AdminCall,
    reply: mpsc::SyncSender<AdminReply>,
}

impl AdminRequest {
    /// Sends the answer (the listener may have given up waiting: then nobody reads it).
    pub fn answer(self, reply: AdminReply) {
        let _ = self.reply.send(reply);
    }
}

/// The running listener's address and the loop's end of its channel.
pub struct Admin {
    /// The address actually bound.
    pub addr: SocketAddr,
    /// Requests for the loop.
    pub requests: mpsc::Receiver<AdminRequest>,
}

/// Who may use the admin listener: its token and the host names it answers to.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `[admin] token`; empty: no token (loopback only, which the config enforces).
    pub token: String,
    /// `[admin] allowed_hosts`: names besides IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
}

/// Binds the admin listener and starts its thread. `wake` wakes the event loop.
pub fn start(
    addr: SocketAddr,
    access: Access,
    wake: impl Fn() + Send + 'static,
) -> io::Result<Admin> {
    let server = tiny_http::Server::http(addr).map_err(|e| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("binding admin listener on {addr} (admin.listen): {e}"),
        )
    })?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("admin listener has no IP address"))?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("moonrt-admin".into())
        .spawn(move || {
            let refused = guard::Refused::default();
            for mut request in server.incoming_requests() {
                let reply = route(&mut request, &access, &refused, &tx, &wake);
                respond(request, reply);
            }
        })?;
    Ok(Admin {
        addr: bound,
        requests: rx,
    })
}

fn respond(request: tiny_http::Request, reply: AdminReply) {
    let header =
        tiny_http::Header::from_bytes("Content-Type", reply.content_type).expect("a valid header");
    let response = tiny_http::Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header)
        .with_header(
            tiny_http::Header::from_bytes("Cache-Control", "no-store").expect("a valid header"),
        );
    let _ = request.respond(response);
}

/// The value of header `name`, if the request has one.
fn header<'r>(request: &'r tiny_http::Request, name: &'static str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Whether the request carries the admin token as `Authorization: Bearer <token>`.
fn authorized(request: &tiny_http::Request, token: &str) -> bool {
    if token.is_empty() {
        return true;
    }
    let given = header(request, "Authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    guard::token_matches(given, token)
}

/// Largest `POST /api/sessions` body read.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// `POST /api/sessions`'s body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    params: Option<serde_json::Value>,
    #[serde(default)]
    settings: CreateSettings,
    #[serde(default)]
    listed: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateSettings {
    max_players: Option<usize>,
    linger_ms: Option<u64>,
    send_interval_ms: Option<u64>,
}

/// Reads and checks a `POST /api/sessions` body (empty: an unnamed session with defaults).
fn create_call(request: &mut tiny_http::Request) -> Result<AdminCall, AdminReply> {
    use std::io::Read;
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| AdminReply::error(400, &format!("reading the body: {e}")))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(AdminReply::error(
            413,
            &format!("the body is over {MAX_BODY_BYTES} bytes"),
        ));
    }
    let parsed: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_str("{}").expect("an empty object")
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AdminReply::error(
                400,
                &format!(
                    "the body is not a session: {e} (fields: name, params, settings \
                     {{max_players, linger_ms, send_interval_ms}}, listed)"
                ),
            )
        })?
    };
    if parsed
        .params
        .as_ref()
        .is_some_and(|p| !p.is_object() && !p.is_null())
    {
        return Err(AdminReply::error(400, "params must be a JSON object"));
    }
    let host = header(request, "Host").map(|h| guard::host_without_port(h).to_owned());
    Ok(AdminCall::CreateSession {
        new: crate::core::NewSession {
            name: parsed.name,
            params: parsed.params.filter(|p| !p.is_null()),
            settings: crate::core::auth::SessionSettings {
                max_players: parsed.settings.max_players,
                linger_ms: parsed.settings.linger_ms,
                send_interval_ms: parsed.settings.send_interval_ms,
            },
            listed: parsed.listed,
        },
        host,
    })
}

/// Maps a request to its answer: the dashboard here, everything else from the loop.
fn route(
    request: &mut tiny_http::Request,
    access: &Access,
    refused: &guard::Refused,
    loop_tx: &mpsc::SyncSender<AdminRequest>,
    wake: &impl Fn(),
) -> AdminReply {
    use tiny_http::Method::{Get, Head, Post};
    let path = request.url().split('?').next().unwrap_or("/");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method();
    let get = matches!(method, Get | Head);
    let post = matches!(method, Post);
    let headers = guard::RequestHeaders {
        host: header(request, "Host"),
        origin: header(request, "Origin"),
        content_type: header(request, "Content-Type"),
        authorization: header(request, "Authorization"),
    };
    let checked = guard::check_host(&headers, &access.allowed_hosts).and_then(|()| {
        // Anything but a read is a write: POST now, and whatever method comes later.
        if get {
            Ok(())
        } else {
            guard::check_not_cross_site(&headers)
        }
    });
    if let Err(refusal) = checked {
        refused.count(&refusal);
        return AdminReply::error(refusal.status, &refusal.message);
    }
    let token = access.token.as_str();
    // Probes need no token: they say only "up" or "down". Nor does the dashboard's page,
    // which holds no data: it asks for the token and sends it with each of its requests.
    let call = match (segments.as_slice(), get, post) {
        (["healthz"], true, _) => AdminCall::Health,
        (["readyz"], true, _) => AdminCall::Ready,
        ([""], true, _) => {
            return AdminReply {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: DASHBOARD.to_owned(),
            };
        }
        _ if !authorized(request, token) => {
            let refusal = guard::Refusal {
                check: guard::Check::Token,
                status: 401,
                message: "missing or wrong admin token (send it as Authorization: Bearer \
                          <token>; a token in the URL is not accepted)"
                    .into(),
            };
            refused.count(&refusal);
            return AdminReply::error(refusal.status, &refusal.message);
        }
        (["metrics"], true, _) => AdminCall::Metrics,
        (["api", "overview"], true, _) => AdminCall::Overview,
        (["api", "sessions"], true, _) => {
            let query = request.url().split_once('?').map_or("", |(_, q)| q);
            match crate::core::SessionFilter::from_query(query) {
                Ok(filter) => AdminCall::Sessions(filter),
                Err(why) => return AdminReply::error(400, &why),
            }
        }
        (["api", "sessions"], _, true) => match create_call(request) {
            Ok(call) => call,
            Err(reply) => return reply,
        },
        (["api", "sessions", id], true, _) => match id.parse() {
            Ok(id) => AdminCall::Session(id),
            Err(_) => return AdminReply::error(404, "no such session"),
        },
        (["api", "sessions", id, "end"], _, true) => match id.parse() {
            Ok(id) => AdminCall::EndSession(id),
            Err(_) => return AdminReply::error(404, "no such session"),
        },
        (["api", "reload"], _, true) => AdminCall::Reload,
        (["api", "drain"], _, true) => AdminCall::Drain,
        (["api", "sessions", _, "end"] | ["api", "reload"] | ["api", "drain"], _, false) => {
            return AdminReply::error(405, "use POST");
        }
        _ => return AdminReply::error(404, "not found"),
    };
    let metrics = call == AdminCall::Metrics;
    let mut reply = ask_loop(call, loop_tx, wake);
    if metrics && reply.status == 200 {
        reply.body.push_str(&refused.metrics_text());
    }
    reply
}

fn ask_loop(
    call: AdminCall,
    loop_tx: &mpsc::SyncSender<AdminRequest>,
    wake: &impl Fn(),
) -> AdminReply {
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let health = call == AdminCall::Health;
    let request = AdminRequest {
        call,
        reply: reply_tx,
    };
    if loop_tx.try_send(request).is_err() {
        return AdminReply::error(503, "the event loop has too many admin requests waiting");
    }
    wake();
    match reply_rx.recv_timeout(LOOP_ANSWER_TIMEOUT) {
        Ok(reply) => reply,
        Err(_) if health => AdminReply::json(
            503,
            &serde_json::json!({"status": "unhealthy", "reason": "the event loop did not answer within 2 s"}),
        ),
        Err(_) => AdminReply::error(503, "the event loop did not answer within 2 s"),
    }
}
