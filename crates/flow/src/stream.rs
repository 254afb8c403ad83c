//! One direction of a TCP connection: puts segments back in sequence order, buffers what
//! arrives early (bounded), drops what was already delivered, and turns lost data into
//! explicit gaps. It never holds delivered bytes: in-order data is handed on zero-copy.

/// What the reassembler asks its owner to do with a segment, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Bytes in stream order: either borrowed from the segment or from the out-of-order buffer.
    Data(&'a [u8]),
    /// This many bytes were never seen and never will be.
    Gap(u64),
}

/// Fingerprint of a recently delivered segment, used to spot a retransmission that carries
/// different bytes than the original (an evasion and desync signal) without keeping the bytes.
#[derive(Clone, Copy, Default)]
struct Fingerprint {
    offset: u64,
    len: u32,
    hash: u64,
}

const FINGERPRINTS: usize = 4;

#[derive(Default)]
pub(crate) struct HalfStream {
    /// A base sequence number is known (from SYN, or the first segment seen).
    pub started: bool,
    /// Sequence number of the next byte to deliver.
    pub next_seq: u32,
    /// Stream offset of `next_seq` (bytes delivered plus gaps).
    pub offset: u64,
    /// Sequence number the FIN occupies, once seen.
    pub fin_seq: Option<u32>,
    pub fin_delivered: bool,
    /// Highest acknowledgement the peer sent for this direction.
    pub peer_ack: Option<u32>,
    /// Early segments, sorted by offset, never overlapping each other.
    ooo: Vec<(u64, Vec<u8>)>,
    pub ooo_bytes: usize,
    fingerprints: [Fingerprint; FINGERPRINTS],
    fingerprint_next: usize,
}

/// Counters a half-stream reports back per segment.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentOutcome {
    pub retransmitted_bytes: u64,
    pub out_of_order: bool,
    pub overlap_mismatch: bool,
    /// Data beyond the per-direction buffer bound was not buffered.
    pub overflow: bool,
}

/// Wrap-aware signed distance from `b` to `a` in sequence space.
pub(crate) fn seq_diff(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

/// 8-byte words of a segment that go into its fingerprint, spread evenly from first to last.
const FINGERPRINT_WORDS: usize = 4;

fn mix(h: u64, v: u64) -> u64 {
    let m = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    m ^ (m >> 29)
}

/// A fingerprint of a segment that costs O(1) per segment, not O(length): the length and 4
/// words spread over it, both ends included. A retransmission that changes only unsampled
/// bytes goes unflagged, which costs only the anomaly flag: reassembly keeps the first copy
/// whatever the fingerprint says. No per-process seed, so it is deterministic across runs.
fn fingerprint_hash(data: &[u8]) -> u64 {
    let mut h = mix(0x6d69_7261_646f_7200, data.len() as u64);
    if data.len() < 8 {
        let mut w = [0u8; 8];
        w[..data.len()].copy_from_slice(data);
        return mix(h, u64::from_le_bytes(w));
    }
    let last = data.len() - 8;
    for i in 0..FINGERPRINT_WORDS {
        let at = last * i / (FINGERPRINT_WORDS - 1);
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[at..at + 8]);
        h = mix(h, u64::from_le_bytes(w));
    }
    h
}

impl HalfStream {
    /// Establishes the base sequence: `seq` is the number of the first data byte.
    pub fn start_at(&mut self, seq: u32) {
        self.started = true;
        self.next_seq = seq;
    }

    pub fn buffered(&self) -> usize {
        self.ooo_bytes
    }

    fn remember(&mut self, offset: u64, data: &[u8]) {
        let fp = Fingerprint {
            offset,
            len: data.len() as u32,
            hash: fingerprint_hash(data),
        };
        self.fingerprints[self.fingerprint_next] = fp;
        self.fingerprint_next = (self.fingerprint_next + 1) % FINGERPRINTS;
    }

    /// A segment that lies entirely in already-delivered space: was it a faithful retransmission?
    fn check_retransmission(&self, offset: u64, data: &[u8]) -> bool {
        for fp in &self.fingerprints {
            if fp.len > 0 && fp.offset == offset && fp.len as usize == data.len() {
                return fp.hash != fingerprint_hash(data);
            }
        }
        false
    }

    /// Takes one data segment. `emit` receives the pieces that become deliverable, in order.
    /// Early data is copied into the buffer unless that would pass `max_buffer`.
    pub fn segment(
        &mut self,
        seq: u32,
        data: &[u8],
        max_buffer: usize,
        emit: &mut dyn FnMut(Piece<'_>),
    ) -> SegmentOutcome {
        let mut out = SegmentOutcome::default();
        if data.is_empty() {
            return out;
        }
        let rel = seq_diff(seq, self.next_seq);
        let seg_offset = self.offset as i64 + rel;
        let mut data = data;
        let mut start = seg_offset;
        if rel < 0 {
            // Starts in delivered space: a retransmission, maybe carrying new bytes at its end.
            let old = (-rel) as u64;
            if old >= data.len() as u64 {
                out.retransmitted_bytes = data.len() as u64;
                if start >= 0 && self.check_retransmission(start as u64, data) {
                    out.overlap_mismatch = true;
                }
                return out;
            }
            out.retransmitted_bytes = old;
            data = &data[old as usize..];
            start = self.offset as i64;
        }
        let start = start as u64;
        if start == self.offset {
            // In order. Where it overlaps early data, the early (first-seen) bytes win.
            let end = start + data.len() as u64;
            let deliver_len = match self.ooo.first() {
                Some(&(ooo_start, _)) if ooo_start < end => (ooo_start - start) as usize,
                _ => data.len(),
            };
            if deliver_len > 0 {
                self.remember(start, &data[..deliver_len]);
                emit(Piece::Data(&data[..deliver_len]));
                self.advance(deliver_len as u64);
            }
            if deliver_len < data.len() {
                let rest_start = start + deliver_len as u64;
                if self.insert(rest_start, &data[deliver_len..], usize::MAX) {
                    out.overlap_mismatch = true;
                }
            }
            self.drain_contiguous(emit);
        } else {
            out.out_of_order = true;
            if self.ooo_bytes + data.len() > max_buffer {
                out.overflow = true;
                return out;
            }
            if self.insert(start, data, max_buffer) {
                out.overlap_mismatch = true;
            }
        }
        out
    }

    fn advance(&mut self, n: u64) {
        self.offset += n;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
    }

    /// Inserts early bytes, keeping what was buffered first. Returns true when an overlap
    /// carried different bytes.
    fn insert(&mut self, start: u64, data: &[u8], max_buffer: usize) -> bool {
        let mut mismatch = false;
        let mut cursor = start;
        let end = start + data.len() as u64;
        // Walk existing segments, filling the holes between them.
        let mut i = self
            .ooo
            .partition_point(|(s, d)| s + d.len() as u64 <= start);
        while cursor < end {
            let (next_start, next_end) = match self.ooo.get(i) {
                Some((s, d)) => (*s, *s + d.len() as u64),
                None => (end, end),
            };
            if cursor < next_start {
                let hole_end = next_start.min(end);
                let piece = &data[(cursor - start) as usize..(hole_end - start) as usize];
                if self.ooo_bytes + piece.len() > max_buffer {
                    break;
                }
                self.ooo_bytes += piece.len();
                self.ooo.insert(i, (cursor, piece.to_vec()));
                i += 1;
                cursor = hole_end;
                continue;
            }
            // Overlap with an existing segment: compare, keep the old bytes.
            let ov_end = next_end.min(end);
            let (s, d) = &self.ooo[i];
            let old = &d[(cursor - s) as usize..(ov_end - s) as usize];
            let new = &data[(cursor - start) as usize..(ov_end - start) as usize];
            if old != new {
                mismatch = true;
            }
            cursor = ov_end;
            i += 1;
        }
        mismatch
    }

    /// Delivers buffered segments that have become contiguous with the delivered stream.
    fn drain_contiguous(&mut self, emit: &mut dyn FnMut(Piece<'_>)) {
        while let Some((s, _)) = self.ooo.first() {
            if *s > self.offset {
                break;
            }
            let (s, d) = self.ooo.remove(0);
            self.ooo_bytes -= d.len();
            let skip = (self.offset - s) as usize;
            if skip < d.len() {
                self.remember(self.offset, &d[skip..]);
                emit(Piece::Data(&d[skip..]));
                self.advance((d.len() - skip) as u64);
            }
        }
    }

    /// Gives up on the hole in front of the buffer: emits a gap up to the first early
    /// segment (or up to `upto_seq` when nothing is buffered) and delivers what follows.
    /// Returns the gap length.
    pub fn skip_hole(&mut self, upto_seq: Option<u32>, emit: &mut dyn FnMut(Piece<'_>)) -> u64 {
        let target = match (self.ooo.first(), upto_seq) {
            (Some((s, _)), _) => *s,
            (None, Some(seq)) => {
                let d = seq_diff(seq, self.next_seq);
                if d <= 0 {
                    return 0;
                }
                self.offset + d as u64
            }
            (None, None) => return 0,
        };
        if target <= self.offset {
            return 0;
        }
        let gap = target - self.offset;
        emit(Piece::Gap(gap));
        self.advance(gap);
        self.drain_contiguous(emit);
        gap
    }

    /// Flushes everything buffered, turning every hole into a gap (used at close).
    pub fn flush(&mut self, emit: &mut dyn FnMut(Piece<'_>)) -> u64 {
        let mut gaps = 0;
        while !self.ooo.is_empty() {
            gaps += self.skip_hole(None, emit);
        }
        gaps
    }

    /// Whether the FIN is now next in sequence (all data before it delivered).
    pub fn fin_reached(&self) -> bool {
        matches!(self.fin_seq, Some(f) if !self.fin_delivered && seq_diff(f, self.next_seq) <= 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        h: &mut HalfStream,
        seq: u32,
        data: &[u8],
        out: &mut Vec<u8>,
        gaps: &mut u64,
    ) -> SegmentOutcome {
        h.segment(seq, data, 1 << 20, &mut |p| match p {
            Piece::Data(d) => out.extend_from_slice(d),
            Piece::Gap(n) => *gaps += n,
        })
    }

    #[test]
    fn in_order_and_reordered_segments_come_out_in_order() {
        let mut h = HalfStream::default();
        h.start_at(1000);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut h, 1000, b"abc", &mut out, &mut gaps);
        let o = run(&mut h, 1006, b"ghi", &mut out, &mut gaps);
        assert!(o.out_of_order);
        assert_eq!(out, b"abc");
        run(&mut h, 1003, b"def", &mut out, &mut gaps);
        assert_eq!(out, b"abcdefghi");
        assert_eq!(h.buffered(), 0);
        assert_eq!(gaps, 0);
    }

    #[test]
    fn sequence_wrap_is_seamless() {
        let mut h = HalfStream::default();
        h.start_at(u32::MAX - 1);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut h, 2, b"world", &mut out, &mut gaps);
        run(&mut h, u32::MAX - 1, b"hell", &mut out, &mut gaps);
        assert_eq!(out, b"hellworld");
    }

    #[test]
    fn retransmission_with_different_bytes_is_flagged() {
        let mut h = HalfStream::default();
        h.start_at(1);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut h, 1, b"GET / HTTP/1.1\r\n", &mut out, &mut gaps);
        let same = run(&mut h, 1, b"GET / HTTP/1.1\r\n", &mut out, &mut gaps);
        assert_eq!(same.retransmitted_bytes, 16);
        assert!(!same.overlap_mismatch);
        let evil = run(&mut h, 1, b"GET /admin HTTP/", &mut out, &mut gaps);
        assert!(evil.overlap_mismatch);
        assert_eq!(out, b"GET / HTTP/1.1\r\n");
        // A one-byte change at either end of a long segment is caught too.
        let long: Vec<u8> = (0..1400u32).map(|i| (i % 251) as u8).collect();
        run(&mut h, 17, &long, &mut out, &mut gaps);
        for at in [0, 1399] {
            let mut changed = long.clone();
            changed[at] ^= 1;
            assert!(
                run(&mut h, 17, &changed, &mut out, &mut gaps).overlap_mismatch,
                "byte {at}"
            );
        }
        assert!(!run(&mut h, 17, &long, &mut out, &mut gaps).overlap_mismatch);
    }

    #[test]
    fn overlapping_early_segments_keep_first_data_and_flag_mismatch() {
        let mut h = HalfStream::default();
        h.start_at(0);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut h, 10, b"XXXXX", &mut out, &mut gaps);
        let o = run(&mut h, 8, b"abYYYYYcd", &mut out, &mut gaps);
        assert!(o.overlap_mismatch);
        run(&mut h, 0, b"01234567", &mut out, &mut gaps);
        assert_eq!(out, b"01234567abXXXXXcd");
    }

    #[test]
    fn in_order_segment_overlapping_buffer_prefers_buffered_bytes() {
        let mut h = HalfStream::default();
        h.start_at(0);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut h, 4, b"EFGH", &mut out, &mut gaps);
        let o = run(&mut h, 0, b"abcdefgh", &mut out, &mut gaps);
        assert!(o.overlap_mismatch);
        assert_eq!(out, b"abcdEFGH");
    }

    #[test]
    fn skip_hole_emits_gap_then_buffered_data() {
        let mut h = HalfStream::default();
        h.start_at(0);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut h, 0, b"ab", &mut out, &mut gaps);
        run(&mut h, 5, b"fg", &mut out, &mut gaps);
        let g = h.skip_hole(None, &mut |p| match p {
            Piece::Data(d) => out.extend_from_slice(d),
            Piece::Gap(n) => gaps += n,
        });
        assert_eq!(g, 3);
        assert_eq!(gaps, 3);
        assert_eq!(out, b"abfg");
        assert_eq!(h.offset, 7);
    }

    #[test]
    fn buffer_bound_refuses_excess() {
        let mut h = HalfStream::default();
        h.start_at(0);
        let o = h.segment(100, &[1u8; 64], 32, &mut |_| {});
        assert!(o.overflow);
        assert_eq!(h.buffered(), 0);
    }
}
