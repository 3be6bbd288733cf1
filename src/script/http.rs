//! `rt.http.request`: calls to the game's backend from session scripts, made off the loop.
//!
//! Requests go to a small pool of worker threads (`ureq`, a maintained blocking HTTP client,
//! with rustls on the same ring provider as the server); the loop never waits. Each answer goes
//! back over a channel and wakes the loop, which calls the script's callback in its session
//! like any other callback (budget, time limit, memory limit). Only hosts on the config's
//! allow-list are reached, redirects are not followed (they could lead elsewhere), and time,
//! size and concurrency are bounded.

use crate::config::ScriptConfig;
use crate::core::SessionId;
use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Wakes the event loop (set once the server is bound).
pub(crate) type Wake = Arc<Mutex<Option<Arc<dyn Fn() + Send + Sync>>>>;

/// One request, as the script asked for it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// An answer: status, headers (lowercase names), body; or why there is none.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A finished request, for its session.
pub(crate) struct Outcome {
    pub session: SessionId,
    pub id: u64,
    pub result: Result<Response, String>,
}

struct Job {
    session: SessionId,
    id: u64,
    request: Request,
}

/// The worker pool and its rules.
pub(crate) struct Pool {
    allow: Vec<String>,
    max_timeout: Duration,
    max_body: usize,
    /// Requests one session may have in flight.
    pub per_session: usize,
    jobs: Mutex<Option<Sender<Job>>>,
    workers: usize,
    results_tx: Sender<Outcome>,
    wake: Wake,
}

impl Pool {
    /// A pool for `config`, its answers sent to the returned receiver. Workers start with the
    /// first request.
    pub(crate) fn new(config: &ScriptConfig, wake: Wake) -> (Arc<Pool>, Receiver<Outcome>) {
        let (results_tx, results_rx) = mpsc::channel();
        let pool = Pool {
            allow: config
                .http_allow
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_timeout: Duration::from_millis(config.http_timeout_ms),
            max_body: config.http_max_body_bytes,
            per_session: config.http_max_concurrent,
            jobs: Mutex::new(None),
            workers: config.http_max_concurrent,
            results_tx,
            wake,
        };
        (Arc::new(pool), results_rx)
    }

    /// Checks a request against the rules; `Err` says why it is refused.
    pub(crate) fn check(&self, request: &Request) -> Result<(), String> {
        if self.allow.is_empty() {
            return Err(
                "rt.http is off: list the backend's hosts in [script] http_allow".to_owned(),
            );
        }
        let uri: ureq::http::Uri = request
            .url
            .parse()
            .map_err(|e| format!("{:?} is not a URL: {e}", request.url))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            return Err(format!("{:?}: only http and https URLs", request.url));
        }
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let with_port = format!("{host}:{port}");
        if !self.allow.iter().any(|a| *a == host || *a == with_port) {
            return Err(format!(
                "{host}:{port} is not in [script] http_allow ({})",
                self.allow.join(", ")
            ));
        }
        if request.body.len() > self.max_body {
            return Err(format!(
                "the request body is {} bytes; the limit is {} ([script] http_max_body_bytes)",
                request.body.len(),
                self.max_body
            ));
        }
        Ok(())
    }

    /// Queues a checked request; its outcome comes back as `(session, id)`.
    pub(crate) fn submit(self: &Arc<Self>, session: SessionId, id: u64, mut request: Request) {
        request.timeout = request.timeout.min(self.max_timeout);
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let sender = jobs.get_or_insert_with(|| self.start_workers());
        let _ = sender.send(Job {
            session,
            id,
            request,
        });
    }

    fn start_workers(self: &Arc<Self>) -> Sender<Job> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..self.workers.max(1) {
            let rx = rx.clone();
            let pool = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("moonrt-http-{n}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        let result = pool.run(&job.request);
                        let _ = pool.results_tx.send(Outcome {
                            session: job.session,
                            id: job.id,
                            result,
                        });
                        if let Some(wake) =
                            pool.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
                        {
                            wake();
                        }
                    }
                });
            if let Err(e) = spawned {
                log::error!("cannot start an rt.http worker: {e}");
            }
        }
        tx
    }

    fn run(&self, request: &Request) -> Result<Response, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(request.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let built = builder
            .body(request.body.clone())
            .map_err(|e| format!("bad request: {e}"))?;
        let mut response = agent.run(built).map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_body as u64)
            .read_to_vec()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}
