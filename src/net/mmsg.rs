//! Batched UDP syscalls: one `sendmmsg` for up to [`SEND_BATCH`] datagrams to any mix of
//! addresses, one `recvmmsg` for up to [`RECV_BATCH`] datagrams, on Linux; one `send_to` or
//! `recv_from` per datagram elsewhere. The seam is the two functions [`send`] and [`recv`]; the
//! loop (`udp.rs`) neither knows nor cares which one runs.
//!
//! Nothing here allocates per call: the send batch lives on the caller's stack, the receive
//! buffers in a [`RecvBatch`] made once per loop.

use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;

/// Datagrams handed to one `sendmmsg`.
pub(super) const SEND_BATCH: usize = 64;
/// Datagrams taken by one `recvmmsg`.
pub(super) const RECV_BATCH: usize = 32;
/// Room for one received datagram: the UDP maximum, so every datagram is read whole
/// (PROTOCOL.md section 5). Pages a datagram does not reach are never touched, so the memory
/// actually used is about one page per slot for game-sized datagrams.
const SLOT: usize = 65_536;

/// Sends `batch` in order; returns how many datagrams left the process before the socket
/// refused one with `WouldBlock` (`batch.len()` if none did), and the syscalls it took. A
/// datagram refused for any other reason (an unreachable address, say) is lost like one lost
/// in flight and counts as gone.
pub(super) fn send(socket: &UdpSocket, batch: &[(SocketAddr, &[u8])]) -> (usize, u64) {
    let mut done = 0;
    let mut calls = 0;
    while done < batch.len() {
        calls += 1;
        match send_some(socket, &batch[done..]) {
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

#[cfg(target_os = "linux")]
fn send_some(socket: &UdpSocket, batch: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = batch.len().min(SEND_BATCH);
    // Filled completely before `msgs` points into them, and not moved until the call returns.
    let mut addrs: [Option<socket2::SockAddr>; SEND_BATCH] = [const { None }; SEND_BATCH];
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; SEND_BATCH];
    for (k, (addr, datagram)) in batch[..n].iter().enumerate() {
        addrs[k] = Some(socket2::SockAddr::from(*addr));
        iovs[k] = libc::iovec {
            iov_base: datagram.as_ptr() as *mut libc::c_void,
            iov_len: datagram.len(),
        };
    }
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no iov, no control).
    let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for k in 0..n {
        let addr = addrs[k].as_ref().expect("filled above");
        msgs[k].msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
        msgs[k].msg_hdr.msg_namelen = addr.len();
        msgs[k].msg_hdr.msg_iov = &mut iovs[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..n]` point into `addrs` and `iovs` (alive and unmoved until the call
    // returns) and into the caller's datagrams, which the kernel only reads.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
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
fn send_some(socket: &UdpSocket, batch: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    let (addr, datagram) = batch[0];
    socket.send_to(datagram, addr).map(|_| 1)
}

/// Receive buffers for [`recv`], made once per loop.
pub(super) struct RecvBatch {
    /// [`RECV_BATCH`] slots of [`SLOT`] bytes.
    bufs: Vec<u8>,
    lens: [usize; RECV_BATCH],
    froms: [SocketAddr; RECV_BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            // Zeroed by the allocator's fresh pages: untouched slots cost no memory.
            bufs: vec![0; RECV_BATCH * SLOT],
            lens: [0; RECV_BATCH],
            froms: [SocketAddr::from(([0, 0, 0, 0], 0)); RECV_BATCH],
        }
    }
}

impl RecvBatch {
    /// Datagram `k` of the last [`recv`]: where it came from, and its bytes.
    pub(super) fn get(&self, k: usize) -> (SocketAddr, &[u8]) {
        let start = k * SLOT;
        (self.froms[k], &self.bufs[start..start + self.lens[k]])
    }
}

/// Receives up to [`RECV_BATCH`] datagrams; `Err(WouldBlock)` when none is waiting.
#[cfg(target_os = "linux")]
pub(super) fn recv(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut names: [libc::sockaddr_storage; RECV_BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; RECV_BATCH];
    for (k, chunk) in batch.bufs.chunks_exact_mut(SLOT).enumerate() {
        iovs[k] = libc::iovec {
            iov_base: chunk.as_mut_ptr() as *mut libc::c_void,
            iov_len: SLOT,
        };
    }
    // SAFETY: as in `send_some`.
    let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
    for k in 0..RECV_BATCH {
        msgs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_storage).cast();
        msgs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        msgs[k].msg_hdr.msg_iov = &mut iovs[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every pointer in `msgs` points into `names`, `iovs` or `batch.bufs`, all alive
    // and unmoved until the call returns; each iov's length is its slot's.
    let got = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            RECV_BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    let mut kept = 0;
    for k in 0..got {
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is this platform's own type, and the kernel wrote a socket
        // address of `msg_namelen` bytes into `names[k]`.
        let from = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = names[k];
            socket2::SockAddr::new(storage, msgs[k].msg_hdr.msg_namelen)
        };
        let Some(from) = from.as_socket() else {
            continue;
        };
        // Datagrams are moved down over any skipped one so slots 0..kept are the kept ones.
        if kept != k {
            batch
                .bufs
                .copy_within(k * SLOT..k * SLOT + msgs[k].msg_len as usize, kept * SLOT);
        }
        batch.lens[kept] = msgs[k].msg_len as usize;
        batch.froms[kept] = from;
        kept += 1;
    }
    Ok(kept)
}

/// Receives one datagram; `Err(WouldBlock)` when none is waiting.
#[cfg(not(target_os = "linux"))]
pub(super) fn recv(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    let (n, from) = socket.recv_from(&mut batch.bufs[..SLOT])?;
    batch.lens[0] = n;
    batch.froms[0] = from;
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
        let (sent, calls) = send(&server, &batch);
        assert_eq!(sent, 151, "more than one batch's worth leaves");
        assert_eq!(calls, 3, "64 datagrams per syscall");
        wait_readable();
        let mut got = RecvBatch::default();
        let mut at_a = Vec::new();
        while let Ok(n) = recv(&a, &mut got) {
            for k in 0..n {
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
        while let Ok(n) = recv(&b, &mut got) {
            at_b += n;
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
        assert_eq!(send(&server, &batch).0, 3);
        wait_readable();
        let mut got = RecvBatch::default();
        let n = recv(&a, &mut got).unwrap();
        let received: Vec<&[u8]> = (0..n).map(|k| got.get(k).1).collect();
        assert_eq!(received, [&b"one"[..], &b"two"[..]]);
        assert_eq!(
            recv(&a, &mut got).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
