//! Lingering close: once a connection's last bytes and FIN are sent, its socket is kept a short
//! while, reading and discarding what the client still sends, until the client closes too.
//!
//! Closing a socket that has unread input makes the kernel answer with a reset, and a reset
//! throws away whatever of our last bytes the client has not read yet: the CLOSE frame (or
//! WebSocket close status) that says why it was closed. A client busy sending (a flood, a burst
//! the server refused) would see "connection reset" instead of the reason. Web servers solve it
//! the same way (nginx's `lingering_close`, Apache's `lingering_close()`).
//!
//! Lingering is bounded three ways: in time ([`LINGER_FOR`]), in bytes discarded per socket
//! ([`MAX_DISCARD`]) and in sockets ([`MAX_LINGERING`]; past it a socket closes at once, as it
//! did before lingering existed). Lingering sockets have their own token range, so a connection
//! id reused meanwhile never sees their events.

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Token of lingering socket `n`: `LINGER_TOKENS + n`, far above every connection's token.
pub(super) const LINGER_TOKENS: usize = 1 << 30;
/// How long a closed connection's socket waits for the client to close its side.
const LINGER_FOR: Duration = Duration::from_secs(2);
/// Bytes a lingering socket may discard before it is closed anyway.
const MAX_DISCARD: usize = 256 * 1024;
/// Sockets lingering at once; past it a closed connection's socket closes at once. They hold
/// file descriptors beyond `max_connections`, which the open-file limit must allow for
/// (`main.rs` asks for them), or a client getting itself closed again and again could use up
/// the descriptors honest accepts need.
pub const MAX_LINGERING: usize = 1024;

/// Closed connections' sockets, waiting for their clients to close.
pub(super) struct Lingering {
    sockets: Slab<Socket>,
    /// At most this many sockets linger ([`MAX_LINGERING`]).
    cap: usize,
    /// When each socket stops waiting, oldest first (every socket waits [`LINGER_FOR`]).
    deadlines: VecDeque<(Instant, usize)>,
}

struct Socket {
    socket: TcpStream,
    until: Instant,
    discarded: usize,
}

impl Default for Lingering {
    fn default() -> Self {
        Lingering {
            sockets: Slab::new(),
            cap: MAX_LINGERING,
            deadlines: VecDeque::new(),
        }
    }
}

impl Lingering {
    /// Keeps `socket`, already shut down for writing, until its client closes or
    /// [`LINGER_FOR`] passes; closes it at once when too many sockets linger.
    pub(super) fn keep(&mut self, registry: &Registry, mut socket: TcpStream, now: Instant) {
        if self.sockets.len() >= self.cap {
            let _ = registry.deregister(&mut socket);
            return;
        }
        let entry = self.sockets.vacant_entry();
        let token = Token(LINGER_TOKENS + entry.key());
        if registry
            .reregister(&mut socket, token, Interest::READABLE)
            .is_err()
        {
            let _ = registry.deregister(&mut socket);
            return;
        }
        let until = now + LINGER_FOR;
        self.deadlines.push_back((until, entry.key()));
        entry.insert(Socket {
            socket,
            until,
            discarded: 0,
        });
    }

    /// A lingering socket is readable: discards its input, and closes it at the client's FIN,
    /// an error, or past [`MAX_DISCARD`].
    pub(super) fn readable(&mut self, registry: &Registry, token: Token, buf: &mut [u8]) {
        let key = token.0 - LINGER_TOKENS;
        let Some(entry) = self.sockets.get_mut(key) else {
            return;
        };
        loop {
            match entry.socket.read(buf) {
                Ok(n) if n > 0 && entry.discarded + n <= MAX_DISCARD => entry.discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        let mut closed = self.sockets.remove(key);
        let _ = registry.deregister(&mut closed.socket);
    }

    /// Closes the sockets whose time is up.
    pub(super) fn expire(&mut self, registry: &Registry, now: Instant) {
        while let Some(&(until, key)) = self.deadlines.front() {
            if until > now {
                return;
            }
            self.deadlines.pop_front();
            // The slot may have closed early and been reused: its own deadline is later.
            if self.sockets.get(key).is_some_and(|s| s.until == until) {
                let mut closed = self.sockets.remove(key);
                let _ = registry.deregister(&mut closed.socket);
            }
        }
    }

    /// When the next socket stops waiting, if any lingers.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        if self.sockets.is_empty() {
            return None;
        }
        self.deadlines.front().map(|&(until, _)| until)
    }

    /// Sockets lingering now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sockets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pair(poll: &mio::Poll) -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut server = TcpStream::from_std(server);
        poll.registry()
            .register(&mut server, Token(99), Interest::READABLE)
            .unwrap();
        (server, client)
    }

    #[test]
    fn a_lingering_socket_closes_when_its_client_closes() {
        let poll = mio::Poll::new().unwrap();
        let (server, client) = pair(&poll);
        let now = Instant::now();
        let mut lingering = Lingering::default();
        lingering.keep(poll.registry(), server, now);
        assert_eq!(lingering.len(), 1);
        assert_eq!(lingering.next_deadline(), Some(now + LINGER_FOR));
        drop(client);
        std::thread::sleep(Duration::from_millis(20));
        lingering.readable(poll.registry(), Token(LINGER_TOKENS), &mut [0; 64]);
        assert_eq!(lingering.len(), 0, "the client's FIN ends the wait");
        assert_eq!(lingering.next_deadline(), None);
    }

    #[test]
    fn a_lingering_socket_discards_input_until_its_time_or_byte_budget_runs_out() {
        let poll = mio::Poll::new().unwrap();
        let mut lingering = Lingering::default();
        let now = Instant::now();
        let (server, mut chatty) = pair(&poll);
        lingering.keep(poll.registry(), server, now);
        chatty.write_all(&[7; 1000]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        lingering.readable(poll.registry(), Token(LINGER_TOKENS), &mut [0; 64]);
        assert_eq!(lingering.len(), 1, "input is discarded, the wait goes on");
        lingering.expire(poll.registry(), now + LINGER_FOR / 2);
        assert_eq!(lingering.len(), 1);
        lingering.expire(poll.registry(), now + LINGER_FOR);
        assert_eq!(lingering.len(), 0, "the wait is bounded in time");

        let (server, mut flooder) = pair(&poll);
        lingering.keep(poll.registry(), server, now);
        flooder.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while sent <= MAX_DISCARD {
            match flooder.write(&[7; 65536]) {
                Ok(n) => sent += n,
                Err(_) => {
                    lingering.readable(poll.registry(), Token(LINGER_TOKENS), &mut [0; 65536])
                }
            }
            lingering.readable(poll.registry(), Token(LINGER_TOKENS), &mut [0; 65536]);
            if lingering.len() == 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        lingering.readable(poll.registry(), Token(LINGER_TOKENS), &mut [0; 65536]);
        assert_eq!(lingering.len(), 0, "the wait is bounded in bytes");
    }

    #[test]
    fn past_the_cap_a_closed_socket_does_not_linger() {
        let poll = mio::Poll::new().unwrap();
        let mut lingering = Lingering {
            cap: 4,
            ..Lingering::default()
        };
        let now = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..7 {
            let (server, client) = pair(&poll);
            lingering.keep(poll.registry(), server, now);
            clients.push(client);
        }
        assert_eq!(lingering.len(), 4);
        // The ones past the cap were closed: their clients read end-of-stream.
        let mut last = clients.pop().unwrap();
        last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(last.read(&mut [0; 8]).unwrap(), 0);
    }
}
