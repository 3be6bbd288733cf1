//! What the admin listener checks before it routes a request: that it was sent to a name the
//! listener answers to (DNS rebinding), that a state-changing request cannot have come from
//! another site's page (cross-site request forgery), and the token, compared in constant time.
//!
//! The rules, and why each is enough:
//! - **Host.** A browser always sends the name it resolved. An attacker's page can make its own
//!   name resolve to 127.0.0.1 (DNS rebinding), but it cannot make the browser send a `Host` it
//!   does not own. So a request is answered only when its `Host` is an IP literal (no DNS lookup
//!   is involved, so nothing can be rebound), `localhost`, or a name the operator listed in
//!   `[admin] allowed_hosts` (a reverse proxy's public name). This holds for the probes too.
//! - **Cross-site writes.** A page on another site may send a "simple" request (a form, or
//!   `fetch` with `mode: "no-cors"`) without asking first; it cannot set `Content-Type:
//!   application/json` or an `Authorization` header without a CORS preflight, which this
//!   listener never approves (it answers no `OPTIONS` and sends no CORS headers). So every POST
//!   must carry one of those, and if it carries an `Origin` (browsers send one on every POST),
//!   that origin's host and port must be the `Host` the request was sent to.

use std::sync::atomic::{AtomicU64, Ordering};

/// Which check refused a request (the `reason` label of `moonrt_admin_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The `Host` is not a name the listener answers to.
    Host,
    /// A write that another site's page could have sent.
    CrossSite,
    /// The token is missing or wrong.
    Token,
}

impl Check {
    /// Every check, in the order they run.
    pub const ALL: [Check; 3] = [Check::Host, Check::CrossSite, Check::Token];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Check::Host => "host",
            Check::CrossSite => "cross_site",
            Check::Token => "token",
        }
    }
}

/// Why a request was refused before routing: its HTTP status and the message the caller reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The check that refused it.
    pub check: Check,
    /// HTTP status (400, 401, 403).
    pub status: u16,
    /// What was wrong, and what to do about it.
    pub message: String,
}

fn refuse(check: Check, status: u16, message: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        check,
        status,
        message: message.into(),
    })
}

/// Requests refused by each check, for `/metrics`; the first of each kind is also logged as a
/// warning (the rest at debug level, so a hostile page cannot flood the log).
#[derive(Debug, Default)]
pub struct Refused([AtomicU64; 3]);

impl Refused {
    /// Counts a refusal, and logs it.
    pub fn count(&self, refusal: &Refusal) {
        let before = self.0[refusal.check as usize].fetch_add(1, Ordering::Relaxed);
        let level = if before == 0 {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "admin request refused ({}): {}",
            refusal.status,
            refusal.message
        );
    }

    /// Refusals by `check` so far.
    pub fn get(&self, check: Check) -> u64 {
        self.0[check as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus lines for `moonrt_admin_refused_total`.
    pub fn metrics_text(&self) -> String {
        let mut out = String::from(
            "# HELP moonrt_admin_refused_total Admin requests refused before routing, by the \
             check that refused them.\n# TYPE moonrt_admin_refused_total counter\n",
        );
        for check in Check::ALL {
            out.push_str(&format!(
                "moonrt_admin_refused_total{{reason=\"{}\"}} {}\n",
                check.label(),
                self.get(check)
            ));
        }
        out
    }
}

/// The headers of a request that the checks read, by value so the checks are testable alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestHeaders<'a> {
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
}

/// `example.com:9090` → `example.com`; `[::1]:9090` → `[::1]`; `example.com` → itself.
pub fn host_without_port(host: &str) -> &str {
    let host = host.trim();
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    }
}

/// Whether `name` (a `Host` without its port) is one the listener answers to: an IP literal,
/// `localhost`, or one of `allowed` (compared without case; an entry may carry a port, which is
/// ignored).
pub fn host_allowed(name: &str, allowed: &[String]) -> bool {
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return false;
    }
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if unbracketed.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    allowed.iter().any(|a| {
        host_without_port(a)
            .trim_end_matches('.')
            .eq_ignore_ascii_case(name)
    })
}

/// Checks the `Host` a request was sent to (every endpoint, probes included).
pub fn check_host(headers: &RequestHeaders, allowed: &[String]) -> Result<(), Refusal> {
    let Some(host) = headers.host else {
        return refuse(Check::Host, 400, "the request has no Host header");
    };
    let name = host_without_port(host);
    if host_allowed(name, allowed) {
        return Ok(());
    }
    refuse(
        Check::Host,
        403,
        format!(
            "the admin listener does not answer to the name {name:?} (a page may have rebound \
             that name to this address); use an IP address or localhost, or add the name to \
             [admin] allowed_hosts"
        ),
    )
}

/// Checks that a state-changing request (POST) cannot have come from another site's page.
pub fn check_not_cross_site(headers: &RequestHeaders) -> Result<(), Refusal> {
    if let Some(origin) = headers.origin {
        // `scheme://host[:port]`; "null" (a sandboxed frame, a file) has no authority.
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        let same = match (authority, headers.host) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.trim()),
            _ => false,
        };
        if !same {
            return refuse(
                Check::CrossSite,
                403,
                format!(
                    "cross-origin request refused: Origin {origin:?} is not this admin \
                     listener's own origin"
                ),
            );
        }
    }
    let json = headers.content_type.is_some_and(|t| {
        let essence = t.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
            || essence.rsplit_once('+').is_some_and(|(kind, suffix)| {
                kind.to_ascii_lowercase().starts_with("application/")
                    && suffix.eq_ignore_ascii_case("json")
            })
    });
    if json || headers.authorization.is_some() {
        return Ok(());
    }
    refuse(
        Check::CrossSite,
        403,
        "a POST to the admin listener must carry Content-Type: application/json (curl: -H \
         'Content-Type: application/json') or an Authorization header, which a page on another \
         site cannot send",
    )
}

/// Whether `given` equals `token`, in time that depends on their lengths only.
pub fn token_matches(given: &str, token: &str) -> bool {
    let (given, token) = (given.as_bytes(), token.as_bytes());
    let mut differ = given.len() ^ token.len();
    for (i, &t) in token.iter().enumerate() {
        // Every byte of the token is read whatever `given` holds.
        let g = given.get(i).copied().unwrap_or(!t);
        differ |= usize::from(g ^ t);
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(
        host: &'a str,
        origin: Option<&'a str>,
        ct: Option<&'a str>,
    ) -> RequestHeaders<'a> {
        RequestHeaders {
            host: Some(host),
            origin,
            content_type: ct,
            authorization: None,
        }
    }

    #[test]
    fn ip_literals_and_localhost_are_answered_and_other_names_are_not() {
        let none: &[String] = &[];
        for host in [
            "127.0.0.1:9090",
            "10.0.0.5",
            "[::1]:9090",
            "LOCALHOST:9090",
            "localhost.",
        ] {
            assert_eq!(
                check_host(&headers(host, None, None), none),
                Ok(()),
                "{host}"
            );
        }
        for host in [
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "localhost.evil",
            ":9090",
        ] {
            let refusal = check_host(&headers(host, None, None), none).unwrap_err();
            assert_eq!(refusal.status, 403, "{host}");
            assert!(
                refusal.message.contains("allowed_hosts"),
                "{}",
                refusal.message
            );
        }
        let missing = check_host(&RequestHeaders::default(), none).unwrap_err();
        assert_eq!(missing.status, 400);
    }

    #[test]
    fn a_name_in_allowed_hosts_is_answered_whatever_its_case_or_port() {
        let allowed = vec![
            "Admin.Example.com".to_string(),
            "ops.internal:8443".to_string(),
        ];
        assert!(check_host(&headers("admin.example.com:443", None, None), &allowed).is_ok());
        assert!(check_host(&headers("ops.internal", None, None), &allowed).is_ok());
        assert!(check_host(&headers("example.com", None, None), &allowed).is_err());
    }

    #[test]
    fn a_post_needs_json_or_authorization_and_its_own_origin() {
        let json = Some("application/json; charset=utf-8");
        let host = "127.0.0.1:9090";
        assert!(check_not_cross_site(&headers(host, None, json)).is_ok());
        assert!(
            check_not_cross_site(&headers(host, None, Some("application/problem+json"))).is_ok()
        );
        assert!(check_not_cross_site(&headers(host, Some("http://127.0.0.1:9090"), json)).is_ok());
        // The content types a page may send without a preflight, and none at all.
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("text/json"),
        ] {
            let refusal = check_not_cross_site(&headers(host, None, ct)).unwrap_err();
            assert_eq!(refusal.status, 403, "{ct:?}");
            assert!(refusal.message.contains("Content-Type: application/json"));
        }
        let mut with_token = headers(host, None, None);
        with_token.authorization = Some("Bearer x");
        assert!(check_not_cross_site(&with_token).is_ok());
        // Another site, another port on the same host, and a sandboxed frame.
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8000",
            "null",
            "http://127.0.0.1",
        ] {
            let refusal = check_not_cross_site(&headers(host, Some(origin), json)).unwrap_err();
            assert_eq!(refusal.status, 403, "{origin}");
            assert!(
                refusal.message.contains("cross-origin"),
                "{}",
                refusal.message
            );
        }
    }

    #[test]
    fn the_token_is_compared_whole() {
        assert!(token_matches("ops-secret", "ops-secret"));
        assert!(!token_matches("ops-secre", "ops-secret"));
        assert!(!token_matches("ops-secretX", "ops-secret"));
        assert!(!token_matches("", "ops-secret"));
        assert!(!token_matches("ops-secreT", "ops-secret"));
    }
}
