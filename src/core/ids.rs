//! Newtype ids, so a peer id is never passed where a connection id is expected.

use std::fmt;

/// A connection slot inside one server process (also the UDP `conn_id` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// A player's id inside one session: small, unique in the session, never reused while the session
/// lives (until the u16 space wraps); 0 is the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u16);

impl PeerId {
    /// Peer 0: the server (and its script).
    pub const SERVER: PeerId = PeerId(0);
}

/// A session's id, unique among the live sessions of the process (random by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// A group inside a session; 0 is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u16);

/// Where the core's session ids and secrets (UDP binding, reconnection, frame sync seeds) come
/// from. The core reads no randomness of its own: the shell passes the OS's random source, a
/// simulation or test a seeded generator, so a run of the core is repeatable.
pub struct Entropy(Box<dyn FnMut() -> u64 + Send>);

impl Entropy {
    /// Numbers from `next`, e.g. the OS's random source.
    pub fn from_fn(next: impl FnMut() -> u64 + Send + 'static) -> Entropy {
        Entropy(Box::new(next))
    }

    /// A repeatable sequence from `seed` (splitmix64): for tests and simulations only, since
    /// its numbers can be guessed.
    pub fn seeded(seed: u64) -> Entropy {
        let mut state = seed;
        Entropy::from_fn(move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy")
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session#{}", self.0)
    }
}
