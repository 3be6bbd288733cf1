//! Per-connection output buffers: a byte stream for TCP and a queue of packed datagrams for UDP.
//!
//! Both keep their capacity between loop turns, so steady-state relaying allocates nothing.

/// Capacity kept after a buffer drains; anything above is given back after a burst.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Bytes waiting to be written to a TCP connection, in order.
#[derive(Debug, Default)]
pub(crate) struct StreamOut {
    buf: Vec<u8>,
    /// Bytes at the start of `buf` that finish a frame whose beginning was already written (after
    /// a partial write); what follows starts at a frame boundary.
    cut: usize,
}

impl StreamOut {
    /// Bytes not yet written.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer to append frames to.
    pub(crate) fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Forgets the first `n` bytes (they were written).
    pub(crate) fn consume(&mut self, n: usize) {
        if n >= self.buf.len() {
            self.buf.clear();
            self.cut = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        } else if n > 0 {
            // A partial write (a slow reader): find the first frame boundary at or after `n`
            // by walking the length prefixes from the last known boundary.
            let mut boundary = self.cut;
            while boundary < n {
                let Some(len) = self.buf.get(boundary..boundary + 4) else {
                    boundary = self.buf.len();
                    break;
                };
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                boundary += 4 + len;
            }
            self.cut = boundary.min(self.buf.len()) - n;
            self.buf.drain(..n);
        }
    }

    /// Takes the pending bytes from the first whole frame on (for a replay on another
    /// connection); the buffer is left empty.
    pub(crate) fn take_whole_frames(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        out.drain(..self.cut.min(out.len()));
        self.cut = 0;
        out
    }

    /// Pending byte count.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Datagrams waiting to be sent to one UDP address. Frames are packed into the open (last)
/// datagram until the next one would pass the MTU budget; a frame bigger than the budget travels
/// alone.
#[derive(Debug, Default)]
pub(crate) struct DatagramQueue {
    bytes: Vec<u8>,
    /// End offsets of closed datagrams; the open one is `bytes[last end..]`.
    ends: Vec<usize>,
}

impl DatagramQueue {
    /// Appends one frame made of `head` then `body`. Returns false (and queues nothing) when the
    /// queue already holds `cap` bytes: unreliable traffic is dropped, never buffered without bound.
    pub(crate) fn push(&mut self, head: &[u8], body: &[u8], mtu: usize, cap: usize) -> bool {
        if self.bytes.len() + head.len() + body.len() > cap {
            return false;
        }
        self.push_with(mtu, |buf| {
            buf.extend_from_slice(head);
            buf.extend_from_slice(body);
        });
        true
    }

    /// Appends one complete frame written by `encode` straight into the queue.
    pub(crate) fn push_with(&mut self, mtu: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        let before = self.bytes.len();
        let open_len = before - self.ends.last().copied().unwrap_or(0);
        encode(&mut self.bytes);
        let len = self.bytes.len() - before;
        if open_len > 0 && open_len + len > mtu {
            // Boundaries are offsets, so the frame can close the open datagram after the fact.
            self.ends.push(before);
        }
    }

    /// Whether anything waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes waiting, all datagrams together.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The waiting datagrams, oldest first.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        let open_end = if self.bytes.is_empty() {
            None
        } else {
            Some(self.bytes.len())
        };
        self.ends
            .iter()
            .copied()
            .chain(open_end)
            .map(move |end| {
                let d = &self.bytes[start..end];
                start = end;
                d
            })
            .filter(|d| !d.is_empty())
    }

    /// Forgets the first `count` datagrams (they were sent).
    pub(crate) fn consume(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        if count > self.ends.len() {
            self.bytes.clear();
            self.ends.clear();
            if self.bytes.capacity() > KEEP_CAPACITY {
                self.bytes.shrink_to(KEEP_CAPACITY);
            }
            return;
        }
        let cut = self.ends[count - 1];
        self.bytes.drain(..cut);
        self.ends.drain(..count);
        for end in &mut self.ends {
            *end -= cut;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_pack_into_one_datagram_up_to_the_mtu() {
        let mut q = DatagramQueue::default();
        for _ in 0..10 {
            assert!(q.push(&[0; 16], &[1; 84], 1200, usize::MAX));
        }
        let sizes: Vec<usize> = q.datagrams().map(|d| d.len()).collect();
        assert_eq!(sizes, vec![1000]);
        for _ in 0..5 {
            q.push(&[0; 16], &[1; 84], 1200, usize::MAX);
        }
        let sizes: Vec<usize> = q.datagrams().map(|d| d.len()).collect();
        assert_eq!(sizes, vec![1200, 300]);
    }

    #[test]
    fn frame_over_the_mtu_travels_alone() {
        let mut q = DatagramQueue::default();
        q.push(&[0; 16], &[1; 10], 100, usize::MAX);
        q.push(&[0; 16], &[1; 500], 100, usize::MAX);
        q.push(&[0; 16], &[1; 10], 100, usize::MAX);
        let sizes: Vec<usize> = q.datagrams().map(|d| d.len()).collect();
        assert_eq!(sizes, vec![26, 516, 26]);
    }

    #[test]
    fn consuming_some_datagrams_keeps_the_rest_intact() {
        let mut q = DatagramQueue::default();
        q.push(b"aa", b"", 2, usize::MAX);
        q.push(b"bb", b"", 2, usize::MAX);
        q.push(b"cc", b"", 2, usize::MAX);
        q.consume(1);
        let left: Vec<&[u8]> = q.datagrams().collect();
        assert_eq!(left, vec![&b"bb"[..], &b"cc"[..]]);
        q.consume(2);
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_drops_instead_of_growing() {
        let mut q = DatagramQueue::default();
        assert!(q.push(&[0; 8], &[], 1200, 10));
        assert!(!q.push(&[0; 8], &[], 1200, 10));
        assert_eq!(q.datagrams().map(|d| d.len()).sum::<usize>(), 8);
    }

    #[test]
    fn stream_consume_keeps_unwritten_tail() {
        let mut s = StreamOut::default();
        s.buf_mut().extend_from_slice(b"hello world");
        s.consume(6);
        assert_eq!(s.pending(), b"world");
        s.consume(5);
        assert_eq!(s.len(), 0);
    }
}
