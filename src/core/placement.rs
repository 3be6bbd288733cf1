//! Placing players: sessions created before their players arrive (the admin API's
//! `POST /api/sessions`, `moonrt test`), the search for open seats (`GET /api/sessions` with a
//! filter), and HELLO join mode 5, "join any listed session with a free seat whose parameters
//! match, else create one" (PROTOCOL.md section 4), for games with no backend.
//!
//! A session's parameters are a JSON object (from the admin API, the creating ticket's `params`
//! claim, or mode 5's `key=value` pairs). Searches compare each wanted `key=value` with the
//! parameter as text: strings as they are, numbers as JavaScript writes them, booleans as
//! `true`/`false`.

use super::auth::{SessionSettings, Ticket};
use super::codec::MAX_NAME_BYTES;
use super::codes::Code;
use super::hooks::Hooks;
use super::ids::SessionId;
use super::server::Server;
use super::session::Session;
use serde_json::Value;
use std::time::Instant;

/// A session to create before its players arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewSession {
    /// A unique name, or empty.
    pub name: String,
    /// Its parameters (a JSON object): `rt.session.params`, and what searches match on.
    pub params: Option<Value>,
    /// Per-session settings, within the server-wide limits.
    pub settings: SessionSettings,
    /// Whether HELLO join mode 5 may place players in it.
    pub listed: bool,
}

/// Which sessions a search returns; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// At least this many free seats (an open session's `max_players` minus its players).
    pub free_seats: Option<usize>,
    /// The name starts with this.
    pub name_prefix: Option<String>,
    /// Each parameter, as text, equals the value.
    pub params: Vec<(String, String)>,
    /// Listed for join mode 5, or not.
    pub listed: Option<bool>,
}

impl SessionFilter {
    /// Parses a query string: `free_seats=N`, `name_prefix=S`, `listed=true|false`, and any
    /// number of `param.KEY=VALUE`. Unknown keys are errors, so a typo does not silently
    /// widen a search.
    pub fn from_query(query: &str) -> Result<SessionFilter, String> {
        let mut filter = SessionFilter::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "free_seats" => {
                    let n = value.parse().map_err(|_| {
                        format!("free_seats={value:?} is not a whole number of seats")
                    })?;
                    filter.free_seats = Some(n);
                }
                "name_prefix" => filter.name_prefix = Some(value.into_owned()),
                "listed" => {
                    filter.listed = Some(match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("listed={value:?} is not true or false")),
                    })
                }
                "token" => {} // older links carried the admin token here (no longer accepted there)
                k => match k.strip_prefix("param.") {
                    Some(name) if !name.is_empty() => {
                        filter.params.push((name.to_owned(), value.into_owned()))
                    }
                    _ => {
                        return Err(format!(
                            "{k:?} is not a filter (free_seats, name_prefix, listed, param.KEY)"
                        ));
                    }
                },
            }
        }
        Ok(filter)
    }

    /// Whether a search with this filter asks for seats (its results then come in placement
    /// order: the fullest first).
    pub fn wants_seats(&self) -> bool {
        self.free_seats.is_some()
    }

    fn admits(&self, session: &Session) -> bool {
        self.free_seats.is_none_or(|n| session.free_seats() >= n)
            && self
                .name_prefix
                .as_ref()
                .is_none_or(|p| session.name.starts_with(p.as_str()))
            && self.listed.is_none_or(|l| session.listed == l)
            && params_match(session.params.as_ref(), &self.params)
    }
}

/// A parameter as searches compare it: strings as they are, numbers as JavaScript writes them,
/// booleans as `true`/`false`; `None` for null, arrays and objects (they never match).
fn param_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            let mut out = String::new();
            super::js_json::number(n.as_f64().unwrap_or(f64::NAN), &mut out);
            Some(out)
        }
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether every wanted `key=value` is one of the parameters.
fn params_match(params: Option<&Value>, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(key, want)| {
        params
            .and_then(|p| p.get(key))
            .and_then(param_text)
            .is_some_and(|have| have == *want)
    })
}

/// HELLO mode 5's `session_name`: `key=value` pairs, form-urlencoded. Keys are non-empty and
/// distinct.
pub(crate) fn parse_join_params(query: &str) -> Result<Vec<(String, String)>, (Code, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key.is_empty() {
            return Err((
                Code::BadHello,
                format!("join mode 5's parameters {query:?} have an empty key"),
            ));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err((
                Code::BadHello,
                format!("join mode 5's parameters {query:?} repeat the key {key:?}"),
            ));
        }
        pairs.push((key.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// The parameters object a session created by join mode 5 gets: every value a string.
pub(crate) fn params_object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

impl<H: Hooks> Server<H> {
    /// Creates a session with no players: `on_session_start` runs now with its parameters,
    /// and its empty linger time (`settings.linger_ms`, else `sessions.empty_session_linger_ms`)
    /// counts from now, so a session nobody joins ends by itself.
    pub fn create_session_ahead(
        &mut self,
        now: Instant,
        new: &NewSession,
    ) -> Result<SessionId, (Code, String)> {
        let result = self.create_ahead(now, new);
        self.after_input(now);
        result
    }

    /// The session that ended most recently, if any: a caller refused with code 29 can look up
    /// what its script said.
    pub fn last_ended_session(&self) -> Option<SessionId> {
        self.last_end.as_ref().map(|(sid, ..)| *sid)
    }

    fn create_ahead(
        &mut self,
        now: Instant,
        new: &NewSession,
    ) -> Result<SessionId, (Code, String)> {
        if new.name.len() > MAX_NAME_BYTES {
            return Err((
                Code::BadHello,
                format!(
                    "the name is {} bytes; the limit is {MAX_NAME_BYTES}",
                    new.name.len()
                ),
            ));
        }
        if !new.name.is_empty() && self.session_by_name(&new.name).is_some() {
            return Err((
                Code::SessionNameTaken,
                format!("a session named {:?} exists", new.name),
            ));
        }
        if new.params.as_ref().is_some_and(|p| !p.is_object()) {
            return Err((Code::BadHello, "params must be a JSON object".into()));
        }
        self.check_settings(&new.settings)?;
        let linger = new
            .settings
            .linger_ms
            .unwrap_or(self.config.sessions.empty_session_linger_ms);
        if linger == 0 {
            return Err((
                Code::BadHello,
                "the session's linger time is 0, so it would end before anyone joins: give \
                 settings.linger_ms (how long it waits for players)"
                    .into(),
            ));
        }
        let sid = self.create_session(
            now,
            &new.name,
            new.params.as_ref(),
            Some(&new.settings),
            new.listed,
        )?;
        self.start_linger(now, sid);
        Ok(sid)
    }

    /// The ids of the sessions `filter` admits: in placement order (the most players first,
    /// then the oldest) if it asks for seats, else by id.
    pub fn find_sessions(&self, filter: &SessionFilter) -> Vec<SessionId> {
        let mut found: Vec<(&SessionId, &Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.ending && !s.text && filter.admits(s))
            .collect();
        if filter.wants_seats() {
            found.sort_by_key(|(sid, s)| placement_rank(**sid, s));
        } else {
            found.sort_by_key(|(sid, _)| **sid);
        }
        found.into_iter().map(|(sid, _)| *sid).collect()
    }

    /// Join mode 5's choice: the listed, open session with a free seat whose parameters match
    /// (and that the player's ticket admits, if it has one), the fullest first (so rooms fill
    /// and start), then the oldest.
    pub(crate) fn best_listed_session(
        &self,
        wanted: &[(String, String)],
        ticket: Option<&Ticket>,
    ) -> Option<SessionId> {
        self.sessions
            .iter()
            .filter(|(sid, s)| {
                s.listed
                    && s.free_seats() > 0
                    && params_match(s.params.as_ref(), wanted)
                    && ticket.is_none_or(|t| t.admits(sid.0, &s.name))
            })
            .min_by_key(|(sid, s)| placement_rank(**sid, s))
            .map(|(sid, _)| *sid)
    }
}

/// Sort key for placement: more players first, then earlier creation, then lower id.
fn placement_rank(sid: SessionId, s: &Session) -> (std::cmp::Reverse<usize>, Option<Instant>, u64) {
    (std::cmp::Reverse(s.len()), s.created, sid.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_match_as_text_numbers_as_javascript_writes_them() {
        let params = json!({"mode": "duel", "map": 4.0, "ranked": true, "tags": ["a"]});
        assert!(params_match(Some(&params), &pairs(&[("mode", "duel")])));
        assert!(params_match(Some(&params), &pairs(&[("map", "4")])));
        assert!(!params_match(Some(&params), &pairs(&[("map", "4.0")])));
        assert!(params_match(Some(&params), &pairs(&[("ranked", "true")])));
        assert!(!params_match(Some(&params), &pairs(&[("tags", "a")])));
        assert!(!params_match(Some(&params), &pairs(&[("missing", "")])));
        assert!(!params_match(None, &pairs(&[("mode", "duel")])));
        assert!(params_match(None, &[]));
    }

    #[test]
    fn join_parameters_are_form_urlencoded_with_distinct_non_empty_keys() {
        assert_eq!(
            parse_join_params("mode=duel&map=sea%20side").unwrap(),
            pairs(&[("mode", "duel"), ("map", "sea side")])
        );
        assert_eq!(parse_join_params("").unwrap(), vec![]);
        assert_eq!(parse_join_params("=x").unwrap_err().0, Code::BadHello);
        assert_eq!(parse_join_params("a=1&a=2").unwrap_err().0, Code::BadHello);
    }

    #[test]
    fn a_filter_with_an_unknown_key_is_an_error_not_a_wider_search() {
        let f = SessionFilter::from_query("free_seats=2&name_prefix=race-&param.map=4&listed=1")
            .unwrap();
        assert_eq!(f.free_seats, Some(2));
        assert_eq!(f.name_prefix.as_deref(), Some("race-"));
        assert_eq!(f.params, pairs(&[("map", "4")]));
        assert_eq!(f.listed, Some(true));
        assert!(SessionFilter::from_query("freeseats=2").is_err());
        assert!(SessionFilter::from_query("free_seats=-1").is_err());
        assert!(SessionFilter::from_query("param.=x").is_err());
    }
}
