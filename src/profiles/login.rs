//! A vendor client's login token (GameSparks' connect token, GameLift's player session id) as a
//! native HELLO: which session, which player, which credential.
//!
//! The token is one of:
//! - a join ticket (a JWT, README "Security"): the session comes from its `session_id` (join by
//!   id), `session` (a name: join-or-create; `"*"`: join any listed session, HELLO mode 5) claim;
//!   the core verifies it as for any client;
//! - `key=value` pairs joined by `&` (form-urlencoded): `session` (a name, join-or-create) or
//!   `session_id` (join by id), `player` (the player id), `name` (display name), `token` (the
//!   shared `[auth] token`);
//! - anything else: a session name to join or create, for an anonymous player.

use super::ProfileError;
use crate::core::Code;
use crate::core::codec::{ClientMsg, Hello, JoinMode, MAX_TOKEN_BYTES, PROTOCOL_VERSION};

/// What a login asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    mode: Mode,
    credential: String,
    player_id: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Id(u64),
    Name(String),
    Any,
}

impl Login {
    /// Reads a login token.
    pub(crate) fn parse(token: &str) -> Result<Login, ProfileError> {
        let bad = |why: String| ProfileError::new(Code::BadHello, why);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad(format!(
                "the login token is {} bytes; the limit is {MAX_TOKEN_BYTES}",
                token.len()
            )));
        }
        if token.is_empty() {
            return Err(bad("the login token is empty: give a join ticket, \
                            session=NAME&player=ID, or a session name"
                .into()));
        }
        if looks_like_jwt(token) {
            let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
                .map_err(|e| {
                    ProfileError::new(
                        Code::InvalidTicket,
                        format!("the login token looks like a join ticket but is not one: {e}"),
                    )
                })?;
            // Only to pick the session; the core verifies the ticket before anything happens.
            let mode = match (claims.get("session_id"), claims.get("session")) {
                (Some(id), _) => Mode::Id(id.as_u64().ok_or_else(|| {
                    ProfileError::new(
                        Code::InvalidTicket,
                        "the ticket's session_id is not a number",
                    )
                })?),
                (None, Some(serde_json::Value::String(s))) if s == "*" => Mode::Any,
                (None, Some(serde_json::Value::String(s))) => Mode::Name(s.clone()),
                _ => {
                    return Err(ProfileError::new(
                        Code::InvalidTicket,
                        "the ticket names no session (session or session_id)",
                    ));
                }
            };
            return Ok(Login {
                mode,
                credential: token.to_owned(),
                player_id: String::new(),
                name: String::new(),
            });
        }
        if !token.contains('=') {
            return Ok(Login {
                mode: Mode::Name(token.to_owned()),
                credential: String::new(),
                player_id: String::new(),
                name: String::new(),
            });
        }
        let mut login = Login {
            mode: Mode::Any,
            credential: String::new(),
            player_id: String::new(),
            name: String::new(),
        };
        let mut named = false;
        for (key, value) in form_urlencoded::parse(token.as_bytes()) {
            match key.as_ref() {
                "session" => {
                    login.mode = Mode::Name(value.into_owned());
                    named = true;
                }
                "session_id" => {
                    let id = value
                        .parse()
                        .map_err(|_| bad(format!("session_id={value:?} is not a session id")))?;
                    login.mode = Mode::Id(id);
                    named = true;
                }
                "player" => login.player_id = value.into_owned(),
                "name" => login.name = value.into_owned(),
                "token" => login.credential = value.into_owned(),
                other => {
                    return Err(bad(format!(
                        "the login token's {other:?} is not a key (session, session_id, player, \
                         name, token)"
                    )));
                }
            }
        }
        if !named {
            return Err(bad("the login token names no session (session=NAME or \
                            session_id=ID)"
                .into()));
        }
        Ok(login)
    }

    /// The native HELLO frame for it, with `payload` for the script's `on_player_connect`.
    pub(crate) fn hello(&self, payload: &[u8], out: &mut Vec<u8>) {
        let mode = match &self.mode {
            Mode::Id(id) => JoinMode::JoinId(*id),
            Mode::Name(name) => JoinMode::JoinOrCreate(name),
            Mode::Any => JoinMode::JoinAny(""),
        };
        ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            mode,
            token: &self.credential,
            player_id: &self.player_id,
            player_name: &self.name,
            payload,
            stray_field: None,
        })
        .encode(out);
    }
}

/// Three dot-separated base64url parts, the first a JSON header (`eyJ`).
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ")
        && token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_token_is_a_session_name_and_pairs_name_everything() {
        let l = Login::parse("match-7").unwrap();
        assert_eq!(l.mode, Mode::Name("match-7".into()));
        let l = Login::parse("session_id=42&player=ann&name=Ann%20B&token=s").unwrap();
        assert_eq!(
            (l.mode, l.player_id, l.name, l.credential),
            (Mode::Id(42), "ann".into(), "Ann B".into(), "s".into())
        );
        assert_eq!(Login::parse("player=ann").unwrap_err().code, Code::BadHello);
        assert_eq!(
            Login::parse("session=a&colour=red").unwrap_err().code,
            Code::BadHello
        );
        assert_eq!(Login::parse("").unwrap_err().code, Code::BadHello);
        let huge = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(Login::parse(&huge).unwrap_err().code, Code::BadHello);
    }

    #[test]
    fn a_ticket_picks_its_session_from_its_claims() {
        let ticket = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(b"k"),
            )
            .unwrap()
        };
        let l = Login::parse(&ticket(serde_json::json!({"sub": "a", "session_id": 9}))).unwrap();
        assert_eq!(l.mode, Mode::Id(9));
        let l = Login::parse(&ticket(serde_json::json!({"sub": "a", "session": "*"}))).unwrap();
        assert_eq!(l.mode, Mode::Any);
        let l = Login::parse(&ticket(serde_json::json!({"sub": "a", "session": "r"}))).unwrap();
        assert_eq!(l.mode, Mode::Name("r".into()));
        let e = Login::parse(&ticket(serde_json::json!({"sub": "a"}))).unwrap_err();
        assert_eq!(e.code, Code::InvalidTicket);
    }
}
