//! Batched UDP syscalls: one `sendmmsg` for up to [`SEND_BATCH`] datagrams to any mix of
//! addresses, one `recvmmsg` for up to [`RECV_BATCH`] datagrams, on Linux; one `send_to` or
//! `recv_from` per datagram elsewhere. The seam is the two functions [`send`] and [`recv`]; the
//! loop (`udp.rs`) neither knows nor cares which one runs.
//!
//! Nothing here allocates or clears memory per call: the kernel's headers live in a
//! [`SendHeaders`] and a [`RecvBatch`] made once per loop.

use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;

/// Datagrams handed to one `sendmmsg`.
pub(super) const SEND_BATCH: usize = 64;
/// Datagrams taken by one `recvmmsg`.
pub(super) const RECV_BATCH: usize = 32;
/// Whether [`recv`] takes a batch (Linux); elsewhere it takes one datagram per call, so a
/// short batch says nothing about what is left on the socket.
pub(super) const BATCHED: bool = cfg!(target_os = "linux");
/// Room for one received datagram: the UDP maximum, so every datagram is read whole
/// (PROTOCOL.md section 5). Pages a datagram does not reach are never touched, so the memory
/// actually used is about one page per slot for game-sized datagrams.
const SLOT: usize = 65_536;

/// Sends `batch` in order; returns how many datagrams left the process before the socket
/// refused one with `WouldBlock` (`batch.len()` if none did), and the syscalls it took. A
/// datagram refused for any other reason (an unreachable address, say) is lost like one lost
/// in flight and counts as gone.
pub(super) fn send(
    socket: &UdpSocket,
    headers: &mut SendHeaders,
    batch: &[(SocketAddr, &[u8])],
) -> (usize, u64) {
    let mut done = 0;
    let mut calls = 0;
    while done < batch.len() {
        calls += 1;
        match send_some(socket, headers, &batch[done..]) {
            // Nothing taken and no error: treat it as a full socket rather than spin.
            Ok(0) => return (done, calls),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (done, calls),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("udp send to {}: {e}", batch[done].0);
                done += 1;
            }
        }
    }
    (done, calls)
}

/// The kernel's view of a send batch, made once per loop: heap arrays, so their addresses hold
/// however the owner moves, and nothing is cleared per call (each call sets what it uses).
pub(super) struct SendHeaders {
    #[cfg(target_os = "linux")]
    names: Box<[socket2::SockAddr]>,
    #[cfg(target_os = "linux")]
    iovs: Box<[libc::iovec]>,
    #[cfg(target_os = "linux")]
    msgs: Box<[libc::mmsghdr]>,
}

impl Default for SendHeaders {
    #[cfg(target_os = "linux")]
    fn default() -> Self {
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        SendHeaders {
            names: (0..SEND_BATCH).map(|_| unset.into()).collect(),
            iovs: (0..SEND_BATCH).map(|_| empty_iov()).collect(),
            // SAFETY: mmsghdr is plain data; all-zero is valid (no name, no iov, no control).
            msgs: (0..SEND_BATCH)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn default() -> Self {
        SendHeaders {}
    }
}

#[cfg(target_os = "linux")]
fn empty_iov() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

#[cfg(target_os = "linux")]
fn send_some(
    socket: &UdpSocket,
    h: &mut SendHeaders,
    batch: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = batch.len().min(SEND_BATCH);
    for (k, (addr, datagram)) in batch[..n].iter().enumerate() {
        h.names[k] = socket2::SockAddr::from(*addr);
        h.iovs[k] = libc::iovec {
            iov_base: datagram.as_ptr() as *mut libc::c_void,
            iov_len: datagram.len(),
        };
        let msg = &mut h.msgs[k].msg_hdr;
        msg.msg_name = h.names[k].as_ptr() as *mut libc::c_void;
        msg.msg_namelen = h.names[k].len();
        msg.msg_iov = &mut h.iovs[k];
        msg.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..n]` point into `names` and `iovs` (heap arrays, alive until the call
    // returns) and into the caller's datagrams, which the kernel only reads.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            h.msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(not(target_os = "linux"))]
fn send_some(
    socket: &UdpSocket,
    _: &mut SendHeaders,
    batch: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    let (addr, datagram) = batch[0];
    socket.send_to(datagram, addr).map(|_| 1)
}

/// Receive buffers and headers for [`recv`], made once per loop (heap arrays, as in
/// [`SendHeaders`]).
pub(super) struct RecvBatch {
    /// [`RECV_BATCH`] slots of [`SLOT`] bytes.
    bufs: Vec<u8>,
    /// Datagrams of the last [`recv`] kept (from an IP address).
    kept: usize,
    lens: [usize; RECV_BATCH],
    froms: [SocketAddr; RECV_BATCH],
    #[cfg(target_os = "linux")]
    names: Box<[libc::sockaddr_storage]>,
    #[cfg(target_os = "linux")]
    iovs: Box<[libc::iovec]>,
    #[cfg(target_os = "linux")]
    msgs: Box<[libc::mmsghdr]>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            // Zeroed by the allocator's fresh pages: untouched slots cost no memory.
            bufs: vec![0; RECV_BATCH * SLOT],
            kept: 0,
            lens: [0; RECV_BATCH],
            froms: [SocketAddr::from(([0, 0, 0, 0], 0)); RECV_BATCH],
            // SAFETY (both): plain data; all-zero is valid.
            #[cfg(target_os = "linux")]
            names: (0..RECV_BATCH)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            #[cfg(target_os = "linux")]
            iovs: (0..RECV_BATCH).map(|_| empty_iov()).collect(),
            #[cfg(target_os = "linux")]
            msgs: (0..RECV_BATCH)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
        }
    }
}

impl RecvBatch {
    /// Datagrams of the last [`recv`].
    pub(super) fn len(&self) -> usize {
        self.kept
    }

    /// Datagram `k` of the last [`recv`]: where it came from, and its bytes.
    pub(super) fn get(&self, k: usize) -> (SocketAddr, &[u8]) {
        let start = k * SLOT;
        (self.froms[k], &self.bufs[start..start + self.lens[k]])
    }
}

/// Takes up to [`RECV_BATCH`] datagrams off the socket and returns how many (fewer than
/// [`RECV_BATCH`]: the socket had no more at that moment); `Err(WouldBlock)` when none is
/// waiting. [`RecvBatch::len`] and [`RecvBatch::get`] give the ones from an IP address.
#[cfg(target_os = "linux")]
pub(super) fn recv(socket: &UdpSocket, b: &mut RecvBatch) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let base = b.bufs.as_mut_ptr();
    for k in 0..RECV_BATCH {
        b.iovs[k] = libc::iovec {
            // SAFETY: slot k lies inside `bufs` (RECV_BATCH * SLOT bytes).
            iov_base: unsafe { base.add(k * SLOT) }.cast(),
            iov_len: SLOT,
        };
        let msg = &mut b.msgs[k].msg_hdr;
        msg.msg_name = (&mut b.names[k] as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        msg.msg_iov = &mut b.iovs[k];
        msg.msg_iovlen = 1;
        msg.msg_flags = 0;
    }
    // SAFETY: every pointer in `msgs` points into `names`, `iovs` or `bufs`, heap memory alive
    // until the call returns; each iov's length is its slot's.
    let got = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            b.msgs.as_mut_ptr(),
            RECV_BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut kept = 0;
    for k in 0..got as usize {
        let len = b.msgs[k].msg_len as usize;
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is this platform's own type, and the kernel wrote a socket
        // address of `msg_namelen` bytes into `names[k]`.
        let from = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = b.names[k];
            socket2::SockAddr::new(storage, b.msgs[k].msg_hdr.msg_namelen)
        };
        let Some(from) = from.as_socket() else {
            continue;
        };
        // Datagrams are moved down over any skipped one so slots 0..kept are the kept ones.
        if kept != k {
            b.bufs.copy_within(k * SLOT..k * SLOT + len, kept * SLOT);
        }
        b.lens[kept] = len;
        b.froms[kept] = from;
        kept += 1;
    }
    b.kept = kept;
    Ok(got as usize)
}

/// Receives one datagram; `Err(WouldBlock)` when none is waiting.
#[cfg(not(target_os = "linux"))]
pub(super) fn recv(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    let (n, from) = socket.recv_from(&mut batch.bufs[..SLOT])?;
    batch.lens[0] = n;
    batch.froms[0] = from;
    batch.kept = 1;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> (UdpSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    fn wait_readable() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    #[test]
    fn a_batch_to_several_addresses_arrives_in_order_with_each_datagram_whole() {
        let (server, server_addr) = bound();
        let (a, a_addr) = bound();
        let (b, b_addr) = bound();
        let big = vec![7u8; 60_000];
        const DIGITS: [u8; 5] = [0, 1, 2, 3, 4];
        let mut batch: Vec<(SocketAddr, &[u8])> = Vec::new();
        for k in 0..150usize {
            let to = if k % 3 == 0 { b_addr } else { a_addr };
            batch.push((to, &DIGITS[k % 5..k % 5 + 1]));
        }
        batch.push((a_addr, &big));
        let (sent, calls) = send(&server, &mut SendHeaders::default(), &batch);
        assert_eq!(sent, 151, "more than one batch's worth leaves");
        assert_eq!(calls, 3, "64 datagrams per syscall");
        wait_readable();
        let mut got = RecvBatch::default();
        let mut at_a = Vec::new();
        while recv(&a, &mut got).is_ok() {
            for k in 0..got.len() {
                let (from, bytes) = got.get(k);
                assert_eq!(from, server_addr);
                at_a.push(bytes.to_vec());
            }
        }
        let expected: Vec<Vec<u8>> = (0..150u8)
            .filter(|k| k % 3 != 0)
            .map(|k| vec![k % 5])
            .chain([big.clone()])
            .collect();
        assert_eq!(at_a, expected, "order kept, the 60 KB datagram read whole");
        let mut at_b = 0;
        while recv(&b, &mut got).is_ok() {
            at_b += got.len();
        }
        assert_eq!(at_b, 50);
    }

    #[test]
    fn a_datagram_the_kernel_refuses_costs_only_itself() {
        let (server, _) = bound();
        let (a, a_addr) = bound();
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let batch = [
            (a_addr, &b"one"[..]),
            (v6, &b"lost"[..]),
            (a_addr, &b"two"[..]),
        ];
        assert_eq!(send(&server, &mut SendHeaders::default(), &batch).0, 3);
        wait_readable();
        let mut got = RecvBatch::default();
        recv(&a, &mut got).unwrap();
        let received: Vec<&[u8]> = (0..got.len()).map(|k| got.get(k).1).collect();
        assert_eq!(received, [&b"one"[..], &b"two"[..]]);
        assert_eq!(
            recv(&a, &mut got).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
