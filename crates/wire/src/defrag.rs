//! Bounded IPv4/IPv6 fragment reassembly.
//!
//! Each datagram under reassembly keeps its received bytes in one buffer plus a sorted list
//! of non-overlapping pieces. Overlapping data is compared with what is already held: the
//! first data wins and a difference is reported. Memory is bounded by the number of sets
//! and by the total payload bytes held (oldest set evicted first); time is packet time.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::anomaly::{DecodeAnomaly, DecodeStats};
use crate::types::Timestamp;

/// A datagram is dropped when it needs more pieces than this (legitimate datagrams have
/// at most a few dozen fragments).
pub(crate) const MAX_PIECES_PER_SET: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    /// IPv4 protocol; 0 for IPv6 (the next header is taken from the offset-zero fragment).
    pub proto: u8,
}

#[derive(Clone, Copy, Debug)]
struct Piece {
    off: usize,
    len: usize,
    /// Position in `FragSet::buf`.
    pos: usize,
}

#[derive(Debug)]
struct FragSet {
    created: Timestamp,
    order: u64,
    buf: Vec<u8>,
    /// Sorted by `off`, non-overlapping.
    pieces: Vec<Piece>,
    /// Datagram end, known once the last fragment (MF=0) arrived.
    end: Option<usize>,
    /// Largest end of any piece.
    max_end: usize,
    /// Next protocol, from the offset-zero fragment.
    proto: Option<u8>,
}

/// Parameters the reassembler needs from the decoder configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_sets: usize,
    pub max_bytes: usize,
    pub max_datagram: usize,
    pub timeout_ns: u64,
}

/// One fragment to insert.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fragment<'p> {
    pub key: FragKey,
    /// Byte offset of `data` in the datagram payload.
    pub off: usize,
    pub more: bool,
    /// Protocol / next header carried by this fragment's header.
    pub proto: u8,
    pub data: &'p [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// Buffered (or a duplicate); nothing to deliver.
    Held { mismatch: bool },
    /// The datagram is complete and was written into the output buffer.
    Complete { mismatch: bool, proto: u8 },
    /// The fragment was refused.
    Rejected(DecodeAnomaly),
}

#[derive(Debug, Default)]
pub(crate) struct Defrag {
    sets: HashMap<FragKey, FragSet>,
    /// Creation order → key; the first entry is the oldest set.
    order: BTreeMap<u64, FragKey>,
    next_order: u64,
    held: usize,
    /// Scratch: ranges of the incoming fragment not yet held.
    novel: Vec<(usize, usize)>,
}

impl Defrag {
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    fn remove(&mut self, key: &FragKey) -> bool {
        match self.sets.remove(key) {
            Some(set) => {
                self.order.remove(&set.order);
                self.held -= set.buf.len();
                true
            }
            None => false,
        }
    }

    /// Drop the oldest set; returns its key.
    fn evict_oldest(&mut self, stats: &mut DecodeStats) -> Option<FragKey> {
        let (_, key) = self.order.pop_first()?;
        if let Some(set) = self.sets.remove(&key) {
            self.held -= set.buf.len();
        }
        stats.fragment_evictions += 1;
        stats.count_anomaly(DecodeAnomaly::FragmentEvicted);
        Some(key)
    }

    fn time_out(&mut self, key: &FragKey, stats: &mut DecodeStats) {
        if self.remove(key) {
            stats.fragment_timeouts += 1;
            stats.count_anomaly(DecodeAnomaly::FragmentTimeout);
        }
    }

    /// Cheap per-packet expiry: drop oldest sets while they are expired.
    pub fn expire_oldest(&mut self, now: Timestamp, timeout_ns: u64, stats: &mut DecodeStats) {
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            let expired = self
                .sets
                .get(&key)
                .is_none_or(|s| now.since(s.created) > timeout_ns);
            if !expired {
                break;
            }
            self.time_out(&key, stats);
        }
    }

    /// Full expiry scan: drop every set older than the timeout.
    pub fn expire_all(&mut self, now: Timestamp, timeout_ns: u64, stats: &mut DecodeStats) {
        let expired: Vec<FragKey> = self
            .sets
            .iter()
            .filter(|(_, s)| now.since(s.created) > timeout_ns)
            .map(|(k, _)| *k)
            .collect();
        for key in &expired {
            self.time_out(key, stats);
        }
    }

    /// Insert one fragment. On completion the reassembled payload is written to `out`
    /// (cleared first) and the set is released.
    pub fn insert(
        &mut self,
        lim: &Limits,
        stats: &mut DecodeStats,
        now: Timestamp,
        frag: Fragment<'_>,
        out: &mut Vec<u8>,
    ) -> Insert {
        let key = frag.key;
        let off = frag.off;
        let len = frag.data.len();
        let end = off.saturating_add(len);

        if let Some(set) = self.sets.get(&key) {
            if now.since(set.created) > lim.timeout_ns {
                self.time_out(&key, stats);
            }
        }
        if end > lim.max_datagram || len > lim.max_bytes {
            self.remove(&key);
            return Insert::Rejected(DecodeAnomaly::FragmentTooLarge);
        }
        if frag.more && (len == 0 || len & 7 != 0) {
            return Insert::Rejected(DecodeAnomaly::FragmentBadLength);
        }

        // Consistency with what is held, and the bytes this fragment adds.
        let mut mismatch = false;
        self.novel.clear();
        match self.sets.get(&key) {
            None => self.novel.push((off, end)),
            Some(set) => {
                let conflict = if frag.more {
                    set.end.is_some_and(|e| end > e)
                } else {
                    set.end.is_some_and(|e| e != end) || set.max_end > end
                };
                if conflict {
                    return Insert::Rejected(DecodeAnomaly::FragmentEndConflict);
                }
                let first = set.pieces.partition_point(|p| p.off + p.len <= off);
                let mut cursor = off;
                for p in &set.pieces[first..] {
                    if p.off >= end {
                        break;
                    }
                    if p.off > cursor {
                        self.novel.push((cursor, p.off));
                    }
                    let s = p.off.max(off);
                    let e = (p.off + p.len).min(end);
                    if s < e {
                        let held = &set.buf[p.pos + (s - p.off)..p.pos + (e - p.off)];
                        let new = &frag.data[s - off..e - off];
                        if held != new {
                            mismatch = true;
                        }
                    }
                    cursor = cursor.max(p.off + p.len);
                }
                if cursor < end {
                    self.novel.push((cursor, end));
                }
                if set.pieces.len() + self.novel.len() > MAX_PIECES_PER_SET {
                    self.remove(&key);
                    return Insert::Rejected(DecodeAnomaly::FragmentTooMany);
                }
            }
        }
        let mut need: usize = self.novel.iter().map(|(s, e)| e - s).sum();

        // Byte budget: evict oldest sets (possibly this one, which then starts afresh).
        while self.held + need > lim.max_bytes {
            match self.evict_oldest(stats) {
                Some(k) if k == key => {
                    mismatch = false;
                    self.novel.clear();
                    self.novel.push((off, end));
                    need = len;
                }
                Some(_) => {}
                None => break,
            }
        }
        // Set-count budget.
        if !self.sets.contains_key(&key) {
            while self.sets.len() >= lim.max_sets.max(1) {
                if self.evict_oldest(stats).is_none() {
                    break;
                }
            }
            let order = self.next_order;
            self.next_order += 1;
            self.order.insert(order, key);
            self.sets.insert(
                key,
                FragSet {
                    created: now,
                    order,
                    buf: Vec::new(),
                    pieces: Vec::new(),
                    end: None,
                    max_end: 0,
                    proto: None,
                },
            );
        }
        let Some(set) = self.sets.get_mut(&key) else {
            // Unreachable: inserted just above.
            return Insert::Rejected(DecodeAnomaly::FragmentEvicted);
        };

        for &(s, e) in &self.novel {
            let pos = set.buf.len();
            set.buf.extend_from_slice(&frag.data[s - off..e - off]);
            let idx = set.pieces.partition_point(|p| p.off < s);
            set.pieces.insert(
                idx,
                Piece {
                    off: s,
                    len: e - s,
                    pos,
                },
            );
        }
        self.held += need;
        if !frag.more {
            set.end = Some(end);
        }
        set.max_end = set.max_end.max(end);
        if off == 0 {
            set.proto = Some(frag.proto);
        }

        let complete = set.end.is_some_and(|e| e == set.buf.len());
        if !complete {
            return Insert::Held { mismatch };
        }
        out.clear();
        out.reserve(set.buf.len());
        for p in &set.pieces {
            out.extend_from_slice(&set.buf[p.pos..p.pos + p.len]);
        }
        // Every byte in [0, end) is held, so the offset-zero fragment arrived.
        let proto = set.proto.unwrap_or(frag.proto);
        self.remove(&key);
        stats.reassembled += 1;
        Insert::Complete { mismatch, proto }
    }
}
