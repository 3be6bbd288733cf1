//! Who may join: nobody checked (open), a shared token, or a join ticket signed by the game's
//! backend (a JWT, verified with `jsonwebtoken`; PROTOCOL.md section 14).
//!
//! Pure: the caller passes the wall-clock time, so expiry is tested without sleeping.

use super::codes::Code;
use crate::config::{AuthMode, Config, TicketAlgorithm};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Which session a ticket admits its player to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketSession {
    /// Any session (`"session": "*"`).
    Any,
    /// The session with this name (created with it if the ticket's HELLO creates it).
    Name(String),
    /// The session with this id.
    Id(u64),
}

/// Per-session settings a ticket that creates the session may give (`settings` claim), within
/// the server-wide limits (checked by the core).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSettings {
    /// Players the session holds at most.
    pub max_players: Option<usize>,
    /// How long it stays once empty, ms.
    pub linger_ms: Option<u64>,
    /// Its send interval (coalesced sending), ms; 0 sends every loop turn.
    pub send_interval_ms: Option<u64>,
}

/// A verified join ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// `sub`: the player's verified id.
    pub player_id: String,
    /// `session` or `session_id`.
    pub session: TicketSession,
    /// `name`: the display name, if the ticket sets one (it wins over HELLO's).
    pub name: Option<String>,
    /// `params`: the session's creation parameters, used if this ticket creates the session.
    pub params: Option<Value>,
    /// `settings`: the session's settings, used if this ticket creates the session.
    pub settings: Option<SessionSettings>,
    /// `exp`: when it expires, seconds since the Unix epoch (with the tolerated clock skew).
    pub expires: u64,
    /// Every claim of the ticket, for the script (`player.claims`).
    pub claims: Value,
}

impl Ticket {
    /// Whether the ticket admits its player to a session with this id and name.
    pub fn admits(&self, id: u64, name: &str) -> bool {
        match &self.session {
            TicketSession::Any => true,
            TicketSession::Name(n) => n == name,
            TicketSession::Id(i) => *i == id,
        }
    }

    /// The refusal for a session the ticket does not name.
    pub fn wrong_session(&self) -> (Code, String) {
        let named = match &self.session {
            TicketSession::Any => "any session".to_owned(),
            TicketSession::Name(n) => format!("session {n:?}"),
            TicketSession::Id(i) => format!("session id {i}"),
        };
        (
            Code::TicketWrongSession,
            format!("the ticket is for {named}"),
        )
    }
}

/// What a connection's credential proved.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    /// Open mode, or the right shared token: the client's own claims are believed.
    Trusted,
    /// A valid ticket: it decides who the player is and where it may go.
    Ticket(Box<Ticket>),
}

/// The configured check.
pub enum Auth {
    /// The configured key could not be used (the server refuses to start with it; a core built
    /// without that check refuses every player rather than admit anyone).
    Broken(String),
    /// Anyone.
    Open,
    /// The shared token.
    Token(String),
    /// Tickets verified with this key.
    Ticket(Box<TicketCheck>),
}

/// How tickets are verified.
pub struct TicketCheck {
    /// The verification key.
    key: DecodingKey,
    /// Signature, algorithm, `iss` and `aud` rules (expiry is checked here, with our clock).
    validation: Validation,
    /// Tolerated clock difference, seconds.
    skew_s: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Broken(_) => "Auth::Broken",
            Auth::Open => "Auth::Open",
            Auth::Token(_) => "Auth::Token",
            Auth::Ticket(_) => "Auth::Ticket",
        })
    }
}

impl Auth {
    /// The check `config` asks for; an unusable ticket key is an error naming the key.
    pub fn from_config(config: &Config) -> Result<Auth, String> {
        let a = &config.auth;
        Ok(match config.auth_mode() {
            AuthMode::Open => Auth::Open,
            AuthMode::Token => Auth::Token(config.auth_token().to_owned()),
            AuthMode::Ticket => {
                let (key, algorithm) = match a.ticket_algorithm {
                    // An empty secret would accept tickets anyone can sign: refuse to run.
                    TicketAlgorithm::HS256 if a.ticket_key.len() < 32 => {
                        return Err(format!(
                            "auth.ticket_key: an HS256 secret must be at least 32 bytes (it is \
                             {}{})",
                            a.ticket_key.len(),
                            if a.ticket_key_file.is_empty() {
                                ""
                            } else {
                                "; auth.ticket_key_file is read by the moonrt binary at start"
                            }
                        ));
                    }
                    TicketAlgorithm::HS256 => (
                        DecodingKey::from_secret(a.ticket_key.as_bytes()),
                        Algorithm::HS256,
                    ),
                    TicketAlgorithm::EdDSA => (
                        DecodingKey::from_ed_pem(a.ticket_key.as_bytes()).map_err(|e| {
                            format!(
                                "auth.ticket_key: not an Ed25519 public key in PEM \
                                 (-----BEGIN PUBLIC KEY-----): {e}"
                            )
                        })?,
                        Algorithm::EdDSA,
                    ),
                };
                let mut validation = Validation::new(algorithm);
                // Expiry is checked by `verify` against the core's clock.
                validation.validate_exp = false;
                validation.required_spec_claims = ["exp", "sub"].map(String::from).into();
                validation.validate_aud = !a.ticket_audience.is_empty();
                if validation.validate_aud {
                    validation.set_audience(&[&a.ticket_audience]);
                    validation.required_spec_claims.insert("aud".into());
                }
                if !a.ticket_issuer.is_empty() {
                    validation.set_issuer(&[&a.ticket_issuer]);
                    validation.required_spec_claims.insert("iss".into());
                }
                Auth::Ticket(Box::new(TicketCheck {
                    key,
                    validation,
                    skew_s: a.ticket_clock_skew_ms.div_ceil(1000),
                }))
            }
        })
    }

    /// Checks a connection's credential (HELLO's `token`, or the sessionserver upgrade's) at
    /// `now_s` seconds since the Unix epoch.
    pub fn check(&self, credential: &str, now_s: u64) -> Result<Grant, (Code, String)> {
        match self {
            Auth::Broken(why) => Err((Code::InvalidTicket, format!("server misconfigured: {why}"))),
            Auth::Open => Ok(Grant::Trusted),
            Auth::Token(token) => {
                if constant_time_eq(credential.as_bytes(), token.as_bytes()) {
                    Ok(Grant::Trusted)
                } else if credential.is_empty() {
                    Err((
                        Code::InvalidToken,
                        "this server needs an access token".into(),
                    ))
                } else {
                    Err((Code::InvalidToken, "access token does not match".into()))
                }
            }
            Auth::Ticket(check) => verify(
                credential,
                &check.key,
                &check.validation,
                check.skew_s,
                now_s,
            )
            .map(|t| Grant::Ticket(Box::new(t))),
        }
    }
}

fn verify(
    ticket: &str,
    key: &DecodingKey,
    validation: &Validation,
    skew_s: u64,
    now_s: u64,
) -> Result<Ticket, (Code, String)> {
    let invalid = |why: String| (Code::InvalidTicket, why);
    if ticket.is_empty() {
        return Err(invalid(
            "this server needs a join ticket in the token field".into(),
        ));
    }
    let data = jsonwebtoken::decode::<Value>(ticket, key, validation).map_err(|e| {
        invalid(match e.kind() {
            ErrorKind::InvalidSignature => "the ticket's signature does not verify (forged or \
                                            tampered with, or signed with another key)"
                .into(),
            ErrorKind::InvalidAlgorithm => format!(
                "the ticket is signed with another algorithm than {:?}",
                validation.algorithms[0]
            ),
            ErrorKind::MissingRequiredClaim(claim) => format!("the ticket has no {claim:?} claim"),
            ErrorKind::InvalidIssuer => "the ticket's iss is not auth.ticket_issuer".into(),
            ErrorKind::InvalidAudience => "the ticket's aud is not auth.ticket_audience".into(),
            _ => format!("the ticket is not a valid JWT: {e}"),
        })
    })?;
    let claims = data.claims;
    let Value::Object(map) = &claims else {
        return Err(invalid("the ticket's claims are not a JSON object".into()));
    };
    let number = |name: &str| -> Result<Option<u64>, (Code, String)> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .map(Some)
                .ok_or_else(|| invalid(format!("the ticket's {name:?} is not a number"))),
        }
    };
    let exp = number("exp")?.unwrap_or(0);
    if exp.saturating_add(skew_s) < now_s {
        return Err((
            Code::TicketExpired,
            format!(
                "the ticket expired {} s ago",
                now_s.saturating_sub(exp).max(1)
            ),
        ));
    }
    if let Some(nbf) = number("nbf")?
        && nbf > now_s.saturating_add(skew_s)
    {
        return Err((
            Code::TicketExpired,
            format!("the ticket is not valid for another {} s", nbf - now_s),
        ));
    }
    let text = |name: &str| -> Result<Option<String>, (Code, String)> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("the ticket's {name:?} is not a string"))),
        }
    };
    let player_id = text("sub")?.unwrap_or_default();
    if player_id.is_empty() || player_id.len() > super::codec::MAX_NAME_BYTES {
        return Err(invalid(format!(
            "the ticket's \"sub\" (the player id) must be 1 to {} bytes",
            super::codec::MAX_NAME_BYTES
        )));
    }
    let name = text("name")?;
    if name
        .as_ref()
        .is_some_and(|n| n.len() > super::codec::MAX_NAME_BYTES)
    {
        return Err(invalid(format!(
            "the ticket's \"name\" is over {} bytes",
            super::codec::MAX_NAME_BYTES
        )));
    }
    let session = match (text("session")?, number("session_id")?) {
        (Some(s), None) if s.is_empty() => {
            return Err(invalid(
                "the ticket's \"session\" is empty: give a name, or \"*\" for any".into(),
            ));
        }
        (Some(s), None) if s == "*" => TicketSession::Any,
        (Some(s), None) => TicketSession::Name(s),
        (None, Some(id)) => TicketSession::Id(id),
        (None, None) => {
            return Err(invalid(
                "the ticket names no session: give \"session\" (a name, or \"*\" for any) or \
                 \"session_id\""
                    .into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "the ticket gives both \"session\" and \"session_id\"; give one".into(),
            ));
        }
    };
    let params = match map.get("params") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(invalid("the ticket's \"params\" is not an object".into())),
    };
    let settings = match map.get("settings") {
        None | Some(Value::Null) => None,
        Some(Value::Object(s)) => {
            let field = |name: &str| match s.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    invalid(format!(
                        "the ticket's settings.{name} is not a whole number"
                    ))
                }),
            };
            if let Some(unknown) = s
                .keys()
                .find(|k| !["max_players", "linger_ms", "send_interval_ms"].contains(&k.as_str()))
            {
                return Err(invalid(format!(
                    "the ticket's settings.{unknown} is not a setting (max_players, linger_ms, \
                     send_interval_ms)"
                )));
            }
            Some(SessionSettings {
                max_players: field("max_players")?.map(|n| n as usize),
                linger_ms: field("linger_ms")?,
                send_interval_ms: field("send_interval_ms")?,
            })
        }
        Some(_) => return Err(invalid("the ticket's \"settings\" is not an object".into())),
    };
    Ok(Ticket {
        player_id,
        session,
        name,
        params,
        settings,
        expires: exp.saturating_add(skew_s),
        claims,
    })
}

/// Signs a ticket with the configured algorithm: HS256 with `auth.ticket_key`, EdDSA with the
/// Ed25519 private key in `private_key_pem`. For `moonrt ticket` and tests; a game's backend
/// uses its own language's JWT library.
pub fn mint(
    config: &Config,
    private_key_pem: Option<&[u8]>,
    claims: &Value,
) -> Result<String, String> {
    use jsonwebtoken::{EncodingKey, Header};
    let (key, algorithm) = match config.auth.ticket_algorithm {
        TicketAlgorithm::HS256 => {
            if config.auth.ticket_key.is_empty() {
                return Err("auth.ticket_key (the HS256 secret) is not set".into());
            }
            (
                EncodingKey::from_secret(config.auth.ticket_key.as_bytes()),
                Algorithm::HS256,
            )
        }
        TicketAlgorithm::EdDSA => {
            let pem = private_key_pem
                .ok_or("EdDSA tickets are signed with the private key: pass --private-key")?;
            (
                EncodingKey::from_ed_pem(pem)
                    .map_err(|e| format!("not an Ed25519 private key in PEM: {e}"))?,
                Algorithm::EdDSA,
            )
        }
    };
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).map_err(|e| e.to_string())
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    /// Unpadded URL-safe base64, as JWTs use it (for building hostile tickets).
    fn encode(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn auth() -> Auth {
        let mut c = Config::default();
        c.auth.mode = AuthMode::Ticket;
        c.auth.ticket_key = SECRET.into();
        Auth::from_config(&c).unwrap()
    }

    fn mint(claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn ticket(grant: Grant) -> Ticket {
        match grant {
            Grant::Ticket(t) => *t,
            Grant::Trusted => panic!("expected a ticket"),
        }
    }

    #[test]
    fn a_valid_ticket_gives_its_player_session_name_and_claims() {
        let t = mint(
            json!({"sub": "p1", "exp": NOW + 60, "session": "lobby", "name": "Ann",
                            "team": "red", "params": {"map": "dust"}}),
        );
        let t = ticket(auth().check(&t, NOW).unwrap());
        assert_eq!(t.player_id, "p1");
        assert_eq!(t.session, TicketSession::Name("lobby".into()));
        assert_eq!(t.name.as_deref(), Some("Ann"));
        assert_eq!(t.params, Some(json!({"map": "dust"})));
        assert_eq!(t.claims["team"], "red");
        assert!(t.admits(7, "lobby") && !t.admits(7, "other"));
    }

    #[test]
    fn an_expired_ticket_is_refused_with_code_18_after_the_skew() {
        let t = mint(json!({"sub": "p1", "exp": NOW - 40, "session": "*"}));
        let (code, why) = auth().check(&t, NOW).unwrap_err();
        assert_eq!(code, Code::TicketExpired);
        assert_eq!(why, "the ticket expired 40 s ago");
        // Within the 30 s skew it is still good.
        let t = mint(json!({"sub": "p1", "exp": NOW - 20, "session": "*"}));
        assert!(auth().check(&t, NOW).is_ok());
    }

    #[test]
    fn a_tampered_ticket_is_refused_with_code_17() {
        let t = mint(json!({"sub": "p1", "exp": NOW + 60, "session": "a"}));
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        parts[1] = encode(br#"{"sub":"p2","exp":1800000060,"session":"a"}"#);
        let forged = parts.join(".");
        let (code, why) = auth().check(&forged, NOW).unwrap_err();
        assert_eq!(code, Code::InvalidTicket);
        assert!(why.contains("signature"), "{why}");
    }

    #[test]
    fn a_ticket_signed_with_another_key_or_none_is_refused() {
        let other = jsonwebtoken::encode(
            &Header::default(),
            &json!({"sub": "p1", "exp": NOW + 60, "session": "*"}),
            &EncodingKey::from_secret(b"another secret of thirty-two bytes!!"),
        )
        .unwrap();
        assert_eq!(
            auth().check(&other, NOW).unwrap_err().0,
            Code::InvalidTicket
        );
        // alg "none": header {"alg":"none"}, no signature.
        let none = format!(
            "{}.{}.",
            encode(br#"{"alg":"none","typ":"JWT"}"#),
            encode(br#"{"sub":"p1","exp":1800000060,"session":"*"}"#)
        );
        assert_eq!(auth().check(&none, NOW).unwrap_err().0, Code::InvalidTicket);
        assert_eq!(auth().check("", NOW).unwrap_err().0, Code::InvalidTicket);
        assert_eq!(
            auth().check("garbage", NOW).unwrap_err().0,
            Code::InvalidTicket
        );
    }

    #[test]
    fn a_ticket_must_name_a_player_and_a_session() {
        for claims in [
            json!({"exp": NOW + 60, "session": "*"}),
            json!({"sub": "", "exp": NOW + 60, "session": "*"}),
            json!({"sub": "p1", "exp": NOW + 60}),
            json!({"sub": "p1", "session": "*"}),
            json!({"sub": "p1", "exp": NOW + 60, "session": "a", "session_id": 3}),
            json!({"sub": "p1", "exp": NOW + 60, "session": ""}),
            json!({"sub": 5, "exp": NOW + 60, "session": "*"}),
        ] {
            let err = auth().check(&mint(claims.clone()), NOW).unwrap_err();
            assert_eq!(err.0, Code::InvalidTicket, "{claims}: {}", err.1);
        }
    }

    #[test]
    fn a_short_or_missing_hs256_secret_is_refused_at_start() {
        let mut c = Config::default();
        c.auth.mode = AuthMode::Ticket;
        c.auth.ticket_key_file = "/run/secrets/ticket".into();
        let err = Auth::from_config(&c).unwrap_err();
        assert!(err.contains("at least 32 bytes"), "{err}");
        c.auth.ticket_key = "short".into();
        assert!(Auth::from_config(&c).is_err());
    }

    #[test]
    fn the_shared_token_is_compared_whole() {
        let a = Auth::Token("s3cret".into());
        assert_eq!(a.check("s3cret", NOW), Ok(Grant::Trusted));
        assert_eq!(a.check("s3cre", NOW).unwrap_err().0, Code::InvalidToken);
        assert_eq!(a.check("", NOW).unwrap_err().0, Code::InvalidToken);
    }
}
