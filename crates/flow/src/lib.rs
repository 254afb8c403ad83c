//! Flow table and TCP stream reassembly.
//!
//! Both directions of a connection meet in one [`Flow`]; each direction is put back in
//! sequence order and handed to a [`StreamSink`] as in-order bytes, explicit gaps, FINs and a
//! close. Everything is bounded (flows, early bytes per direction and in total) and every
//! eviction is counted. Time is packet time; this crate does no I/O and never panics on input.

mod lru;
mod stream;

use std::net::IpAddr;

use lru::{ListId, Lru};
use stream::{seq_diff, HalfStream, Piece};
pub use wire::{TcpFlags, TcpSegment, Timestamp};

/// Which side of the connection sent the bytes. `Orig` opened the connection (sent the SYN),
/// or, without a handshake, sent the first packet seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Orig,
    Resp,
}

impl Direction {
    pub fn index(self) -> usize {
        match self {
            Direction::Orig => 0,
            Direction::Resp => 1,
        }
    }
    pub fn other(self) -> Direction {
        match self {
            Direction::Orig => Direction::Resp,
            Direction::Resp => Direction::Orig,
        }
    }
}

/// Limits of the flow table. Defaults are sized for a 10 Gbit/s SPAN port on a small box:
/// ~250 k concurrent connections at about 1 KiB of sensor state each is 256 MiB worst case.
#[derive(Clone, Debug)]
pub struct FlowConfig {
    /// Concurrent flows; at the bound the stalest flow is evicted (closing ones first).
    pub max_flows: usize,
    /// Early (out-of-order) bytes buffered per direction before the hole is declared a gap.
    pub max_buffered_bytes_per_direction: usize,
    /// Early bytes buffered across all flows.
    pub max_buffered_bytes_total: usize,
    /// An established flow with no packet for this long is closed.
    pub idle_timeout_ns: u64,
    /// A flow that never carried data (SYN scan, SYN flood) is dropped after this long.
    pub embryonic_timeout_ns: u64,
    /// After FIN/RST, packets for this long are absorbed by the closed flow rather than
    /// starting a new mid-stream one.
    pub closed_timeout_ns: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 262_144,
            max_buffered_bytes_per_direction: 256 * 1024,
            max_buffered_bytes_total: 64 * 1024 * 1024,
            idle_timeout_ns: 300 * 1_000_000_000,
            embryonic_timeout_ns: 30 * 1_000_000_000,
            closed_timeout_ns: 10 * 1_000_000_000,
        }
    }
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloseReason {
    /// Both FINs delivered.
    Fin,
    Rst,
    IdleTimeout,
    /// Evicted to stay within `max_flows`.
    Evicted,
    /// A new SYN with a new ISN reused the 4-tuple.
    Reused,
    /// End of the capture (replay) or shutdown.
    Shutdown,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::Rst => "rst",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::Reused => "port_reused",
            CloseReason::Shutdown => "shutdown",
        }
    }
    pub const ALL: [CloseReason; 6] = [
        CloseReason::Fin,
        CloseReason::Rst,
        CloseReason::IdleTimeout,
        CloseReason::Evicted,
        CloseReason::Reused,
        CloseReason::Shutdown,
    ];
}

/// Typed reassembly anomalies, reported to the sink on the flow where they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowAnomaly {
    /// Two copies of the same sequence range carried different bytes (first kept).
    OverlapMismatch,
    /// Early data passed the buffer bound; the hole became a gap.
    ReassemblyOverflow,
    /// The peer acknowledged data that the capture never had.
    AckedUnseen,
}

impl FlowAnomaly {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowAnomaly::OverlapMismatch => "overlap_mismatch",
            FlowAnomaly::ReassemblyOverflow => "reassembly_overflow",
            FlowAnomaly::AckedUnseen => "acked_unseen",
        }
    }
}

/// Identity and counters of a flow, given to the sink with every event.
#[derive(Clone, Debug)]
pub struct FlowMeta {
    /// Position in creation order within this table: stable across runs over the same input.
    pub serial: u64,
    pub orig_ip: IpAddr,
    pub orig_port: u16,
    pub resp_ip: IpAddr,
    pub resp_port: u16,
    pub vlan: Option<u16>,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    /// A SYN or SYN-ACK was seen, so `Orig` is known to be the connecting side.
    pub handshake_seen: bool,
    pub packets: [u64; 2],
    pub payload_bytes: [u64; 2],
}

/// The consumer of reassembled streams (the HTTP layer). One `State` per flow.
pub trait StreamSink {
    type State;
    fn open(&mut self, meta: &FlowMeta) -> Self::State;
    fn data(
        &mut self,
        state: &mut Self::State,
        meta: &FlowMeta,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
    );
    fn gap(
        &mut self,
        state: &mut Self::State,
        meta: &FlowMeta,
        dir: Direction,
        ts: Timestamp,
        len: u64,
    );
    /// All data of `dir` has been delivered and the sender closed its side.
    fn fin(&mut self, state: &mut Self::State, meta: &FlowMeta, dir: Direction, ts: Timestamp);
    fn anomaly(
        &mut self,
        state: &mut Self::State,
        meta: &FlowMeta,
        dir: Direction,
        anomaly: FlowAnomaly,
    );
    fn close(&mut self, state: Self::State, meta: &FlowMeta, ts: Timestamp, reason: CloseReason);
}

/// Counters of the flow table; gauges are marked.
#[derive(Clone, Debug, Default)]
pub struct FlowStats {
    pub packets: u64,
    pub flows_created: u64,
    /// Gauge: flows in the table, closed ones waiting out `closed_timeout` included.
    pub flows_active: u64,
    pub closed: [u64; 6],
    pub evicted_embryonic: u64,
    pub evicted_closed: u64,
    pub evicted_established: u64,
    pub packets_after_close: u64,
    pub retransmitted_bytes: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub overlap_mismatches: u64,
    pub overflow_flushes: u64,
    /// Gauge: early bytes currently buffered across all flows.
    pub buffered_bytes: u64,
    pub buffered_bytes_peak: u64,
    pub flows_peak: u64,
}

impl FlowStats {
    pub fn closed_by(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize]
    }
    pub fn merge(&mut self, o: &FlowStats) {
        self.packets += o.packets;
        self.flows_created += o.flows_created;
        self.flows_active += o.flows_active;
        for (a, b) in self.closed.iter_mut().zip(o.closed) {
            *a += b;
        }
        self.evicted_embryonic += o.evicted_embryonic;
        self.evicted_closed += o.evicted_closed;
        self.evicted_established += o.evicted_established;
        self.packets_after_close += o.packets_after_close;
        self.retransmitted_bytes += o.retransmitted_bytes;
        self.out_of_order_segments += o.out_of_order_segments;
        self.gaps += o.gaps;
        self.gap_bytes += o.gap_bytes;
        self.overlap_mismatches += o.overlap_mismatches;
        self.overflow_flushes += o.overflow_flushes;
        self.buffered_bytes += o.buffered_bytes;
        self.buffered_bytes_peak += o.buffered_bytes_peak;
        self.flows_peak += o.flows_peak;
    }
}

/// Direction-free key: the lower endpoint first, so both directions hash alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
}

impl FlowKey {
    fn of(seg: &TcpSegment<'_>) -> FlowKey {
        let a = (seg.src, seg.src_port);
        let b = (seg.dst, seg.dst_port);
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }
}

struct Flow<S> {
    key: FlowKey,
    meta: FlowMeta,
    /// `None` once the sink has been told the flow closed (the entry then only absorbs strays).
    state: Option<S>,
    halves: [HalfStream; 2],
    orig_isn: Option<u32>,
    carried_data: bool,
}

/// Symmetric flow table with bounded reassembly. Generic over the sink's per-flow state.
pub struct FlowTable<S> {
    cfg: FlowConfig,
    index: ahash::HashMap<FlowKey, u32>,
    slots: Vec<Option<Flow<S>>>,
    free: Vec<u32>,
    lru: Lru,
    serial: u64,
    stats: FlowStats,
}

fn list_for<S>(f: &Flow<S>) -> ListId {
    if f.state.is_none() {
        ListId::Closed
    } else if f.carried_data {
        ListId::Established
    } else {
        ListId::Embryonic
    }
}

impl<S> FlowTable<S> {
    pub fn new(cfg: FlowConfig) -> Self {
        let cap = cfg.max_flows.min(65_536);
        FlowTable {
            cfg,
            index: ahash::HashMap::with_capacity_and_hasher(cap, ahash::RandomState::new()),
            slots: Vec::with_capacity(cap),
            free: Vec::new(),
            lru: Lru::default(),
            serial: 0,
            stats: FlowStats::default(),
        }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Replaces the limits; existing flows keep their state (used by config reload).
    pub fn set_config(&mut self, cfg: FlowConfig) {
        self.cfg = cfg;
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Feeds one TCP segment.
    pub fn process<K: StreamSink<State = S>>(
        &mut self,
        ts: Timestamp,
        seg: &TcpSegment<'_>,
        sink: &mut K,
    ) {
        self.stats.packets += 1;
        let key = FlowKey::of(seg);
        let slot = match self.index.get(&key) {
            Some(&slot) => {
                if self.is_reuse(slot, seg) {
                    self.close_slot(slot, ts, CloseReason::Reused, sink);
                    self.remove_slot(slot);
                    self.create(key, ts, seg, sink)
                } else {
                    slot
                }
            }
            None => self.create(key, ts, seg, sink),
        };
        self.on_segment(slot, ts, seg, sink);
    }

    /// A SYN (without ACK) from the originator with a different ISN, or any SYN on a closed
    /// flow, starts a new connection on the same 4-tuple.
    fn is_reuse(&self, slot: u32, seg: &TcpSegment<'_>) -> bool {
        if !seg.flags.syn() || seg.flags.ack() {
            return false;
        }
        let Some(f) = self.slots[slot as usize].as_ref() else {
            return false;
        };
        if f.state.is_none() {
            return f.orig_isn != Some(seg.seq);
        }
        match f.orig_isn {
            Some(isn) => isn != seg.seq,
            None => f.carried_data,
        }
    }

    fn create<K: StreamSink<State = S>>(
        &mut self,
        key: FlowKey,
        ts: Timestamp,
        seg: &TcpSegment<'_>,
        sink: &mut K,
    ) -> u32 {
        if self.index.len() >= self.cfg.max_flows.max(1) {
            self.evict_one(ts, sink);
        }
        // A SYN-ACK seen first means the sender is the responder.
        let sender_is_resp = seg.flags.syn() && seg.flags.ack();
        let (orig, resp) = if sender_is_resp {
            ((seg.dst, seg.dst_port), (seg.src, seg.src_port))
        } else {
            ((seg.src, seg.src_port), (seg.dst, seg.dst_port))
        };
        let meta = FlowMeta {
            serial: self.serial,
            orig_ip: orig.0,
            orig_port: orig.1,
            resp_ip: resp.0,
            resp_port: resp.1,
            vlan: seg.vlan,
            first_ts: ts,
            last_ts: ts,
            handshake_seen: seg.flags.syn(),
            packets: [0; 2],
            payload_bytes: [0; 2],
        };
        self.serial += 1;
        self.stats.flows_created += 1;
        let state = sink.open(&meta);
        let flow = Flow {
            key,
            meta,
            state: Some(state),
            halves: [HalfStream::default(), HalfStream::default()],
            orig_isn: None,
            carried_data: false,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(flow);
                s
            }
            None => {
                self.slots.push(Some(flow));
                (self.slots.len() - 1) as u32
            }
        };
        self.lru.ensure(slot);
        self.lru.push_back(ListId::Embryonic, slot);
        self.index.insert(key, slot);
        self.stats.flows_active = self.index.len() as u64;
        self.stats.flows_peak = self.stats.flows_peak.max(self.stats.flows_active);
        slot
    }

    fn evict_one<K: StreamSink<State = S>>(&mut self, ts: Timestamp, sink: &mut K) {
        let victim = if let Some(s) = self.lru.front(ListId::Closed) {
            self.stats.evicted_closed += 1;
            s
        } else if let Some(s) = self.lru.front(ListId::Embryonic) {
            self.stats.evicted_embryonic += 1;
            s
        } else if let Some(s) = self.lru.front(ListId::Established) {
            self.stats.evicted_established += 1;
            s
        } else {
            return;
        };
        self.close_slot(victim, ts, CloseReason::Evicted, sink);
        self.remove_slot(victim);
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(f) = self.slots[slot as usize].take() {
            self.lru.unlink(slot);
            self.index.remove(&f.key);
            let held = (f.halves[0].buffered() + f.halves[1].buffered()) as u64;
            self.stats.buffered_bytes -= held;
            self.free.push(slot);
            self.stats.flows_active = self.index.len() as u64;
        }
    }

    /// Tells the sink the flow is over (flushing buffered data as gaps + data) unless it
    /// already was. The entry stays until removed.
    fn close_slot<K: StreamSink<State = S>>(
        &mut self,
        slot: u32,
        ts: Timestamp,
        reason: CloseReason,
        sink: &mut K,
    ) {
        let stats = &mut self.stats;
        let Some(f) = self.slots[slot as usize].as_mut() else {
            return;
        };
        let Some(mut state) = f.state.take() else {
            return;
        };
        for dir in [Direction::Orig, Direction::Resp] {
            let h = &mut f.halves[dir.index()];
            let before = h.buffered();
            let meta = &f.meta;
            h.flush(&mut |p| deliver(sink, &mut state, meta, dir, ts, p, stats));
            // Data missing in front of a FIN never came: a gap, then the end of the stream.
            if let Some(f) = h.fin_seq {
                if h.started && !h.fin_delivered && seq_diff(f, h.next_seq) > 0 {
                    h.skip_hole(Some(f), &mut |p| {
                        deliver(sink, &mut state, meta, dir, ts, p, stats)
                    });
                }
            }
            stats.buffered_bytes -= (before - h.buffered()) as u64;
            if h.fin_reached() {
                h.fin_delivered = true;
                sink.fin(&mut state, &f.meta, dir, ts);
            }
        }
        self.stats.closed[reason as usize] += 1;
        sink.close(state, &f.meta, ts, reason);
    }

    fn on_segment<K: StreamSink<State = S>>(
        &mut self,
        slot: u32,
        ts: Timestamp,
        seg: &TcpSegment<'_>,
        sink: &mut K,
    ) {
        let max_dir = self.cfg.max_buffered_bytes_per_direction;
        let total_room = self
            .cfg
            .max_buffered_bytes_total
            .saturating_sub(self.stats.buffered_bytes as usize);
        let stats = &mut self.stats;
        let Some(f) = self.slots[slot as usize].as_mut() else {
            return;
        };
        let dir = if (seg.src, seg.src_port) == (f.meta.orig_ip, f.meta.orig_port) {
            Direction::Orig
        } else {
            Direction::Resp
        };
        f.meta.last_ts = ts;
        f.meta.packets[dir.index()] += 1;
        if f.meta.vlan.is_none() {
            f.meta.vlan = seg.vlan;
        }
        let Some(state) = f.state.as_mut() else {
            // The last ACK of a clean close is expected; anything else arriving late is noted.
            if !seg.payload.is_empty()
                || seg.flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) != 0
            {
                stats.packets_after_close += 1;
            }
            self.lru.touch(slot, ListId::Closed);
            return;
        };
        let meta = &mut f.meta;
        let [h_orig, h_resp] = &mut f.halves;
        let (me, peer) = match dir {
            Direction::Orig => (h_orig, h_resp),
            Direction::Resp => (h_resp, h_orig),
        };

        if seg.flags.syn() {
            meta.handshake_seen = true;
            if !me.started || me.offset == 0 {
                me.start_at(seg.seq.wrapping_add(1));
            }
            if dir == Direction::Orig && !seg.flags.ack() {
                f.orig_isn = Some(seg.seq);
            }
        } else if !me.started && (!seg.payload.is_empty() || seg.flags.fin()) {
            // Mid-stream pickup: if the peer already acknowledged bytes of this direction,
            // start there, so a segment reordered ahead of its predecessor is not lost.
            let start = match me.peer_ack {
                Some(a) if seq_diff(seg.seq, a) > 0 && seq_diff(seg.seq, a) < 65_536 => a,
                _ => seg.seq,
            };
            me.start_at(start);
        }

        if seg.flags.ack() {
            let ack = seg.ack;
            peer.peer_ack = match peer.peer_ack {
                Some(old) if seq_diff(ack, old) <= 0 => Some(old),
                _ => Some(ack),
            };
        }

        let data_seq = if seg.flags.syn() {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if !seg.payload.is_empty() && me.started {
            meta.payload_bytes[dir.index()] += seg.payload.len() as u64;
            if !f.carried_data {
                f.carried_data = true;
            }
            let before = me.buffered();
            let room = max_dir.min(before + total_room);
            let outcome = me.segment(data_seq, seg.payload, room, &mut |p| {
                deliver(sink, state, meta, dir, ts, p, stats)
            });
            stats.retransmitted_bytes += outcome.retransmitted_bytes;
            if outcome.out_of_order {
                stats.out_of_order_segments += 1;
            }
            if outcome.overlap_mismatch {
                stats.overlap_mismatches += 1;
                sink.anomaly(state, meta, dir, FlowAnomaly::OverlapMismatch);
            }
            if outcome.overflow {
                // The bound is reached: give up on the oldest hole rather than grow.
                stats.overflow_flushes += 1;
                sink.anomaly(state, meta, dir, FlowAnomaly::ReassemblyOverflow);
                me.skip_hole(None, &mut |p| deliver(sink, state, meta, dir, ts, p, stats));
                let room = max_dir.min(me.buffered() + total_room);
                me.segment(data_seq, seg.payload, room, &mut |p| {
                    deliver(sink, state, meta, dir, ts, p, stats)
                });
            }
            let after = me.buffered();
            stats.buffered_bytes =
                (stats.buffered_bytes + after as u64).saturating_sub(before as u64);
            stats.buffered_bytes_peak = stats.buffered_bytes_peak.max(stats.buffered_bytes);
            if seg.missing_payload > 0 && me.buffered() == 0 {
                // The capture cut this segment short (snaplen): its tail is a gap.
                let end = data_seq.wrapping_add(seg.payload.len() as u32);
                if me.next_seq == end {
                    let missing = seg.missing_payload;
                    me.skip_hole(Some(end.wrapping_add(missing)), &mut |p| {
                        deliver(sink, state, meta, dir, ts, p, stats)
                    });
                }
            }
        }

        // The peer acknowledged data we never saw: in front of buffered data, or in front of
        // a FIN it also acknowledged (cumulative ACKs prove the receiver had every byte before
        // them). The hole is lost for good.
        let hole_before_fin = |h: &HalfStream| {
            h.buffered() == 0
                && h.fin_seq.is_some_and(|f| {
                    seq_diff(f, h.next_seq) > 0 && h.peer_ack.is_some_and(|a| seq_diff(a, f) > 0)
                })
        };
        if seg.flags.ack() && peer.started && (peer.buffered() > 0 || hole_before_fin(peer)) {
            if let Some(ack) = peer.peer_ack {
                if seq_diff(ack, peer.next_seq) > 0 {
                    let before = peer.buffered();
                    sink.anomaly(state, meta, dir.other(), FlowAnomaly::AckedUnseen);
                    let od = dir.other();
                    let upto = if before > 0 { None } else { peer.fin_seq };
                    peer.skip_hole(upto, &mut |p| deliver(sink, state, meta, od, ts, p, stats));
                    stats.buffered_bytes -= (before - peer.buffered()) as u64;
                    if peer.fin_reached() {
                        peer.fin_delivered = true;
                        sink.fin(state, meta, od, ts);
                    }
                }
            }
        }

        if seg.flags.fin() && me.started && me.fin_seq.is_none() {
            me.fin_seq = Some(data_seq.wrapping_add(seg.payload.len() as u32));
        }
        if me.fin_reached() {
            me.fin_delivered = true;
            sink.fin(state, meta, dir, ts);
        }

        let both_fin = f.halves[0].fin_delivered && f.halves[1].fin_delivered;
        if seg.flags.rst() || both_fin {
            let reason = if seg.flags.rst() {
                CloseReason::Rst
            } else {
                CloseReason::Fin
            };
            self.close_slot(slot, ts, reason, sink);
            self.lru.touch(slot, ListId::Closed);
            return;
        }
        let list = list_for(self.slots[slot as usize].as_ref().expect("slot is live"));
        self.lru.touch(slot, list);
    }

    /// Closes and forgets flows whose timeout has passed at packet time `now`.
    pub fn expire<K: StreamSink<State = S>>(&mut self, now: Timestamp, sink: &mut K) {
        for (list, timeout) in [
            (ListId::Closed, self.cfg.closed_timeout_ns),
            (ListId::Embryonic, self.cfg.embryonic_timeout_ns),
            (ListId::Established, self.cfg.idle_timeout_ns),
        ] {
            while let Some(slot) = self.lru.front(list) {
                let last = self.slots[slot as usize]
                    .as_ref()
                    .map_or(now, |f| f.meta.last_ts);
                if now.since(last) <= timeout {
                    break;
                }
                self.close_slot(slot, now, CloseReason::IdleTimeout, sink);
                self.remove_slot(slot);
            }
        }
    }

    /// Closes every flow in creation order (end of capture, shutdown).
    pub fn flush_all<K: StreamSink<State = S>>(&mut self, now: Timestamp, sink: &mut K) {
        let mut live: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (f.meta.serial, i as u32)))
            .collect();
        live.sort_unstable();
        for (_, slot) in live {
            let ts = self.slots[slot as usize]
                .as_ref()
                .map_or(now, |f| f.meta.last_ts.max(now));
            self.close_slot(slot, ts, CloseReason::Shutdown, sink);
            self.remove_slot(slot);
        }
    }
}

fn deliver<K: StreamSink>(
    sink: &mut K,
    state: &mut K::State,
    meta: &FlowMeta,
    dir: Direction,
    ts: Timestamp,
    piece: Piece<'_>,
    stats: &mut FlowStats,
) {
    match piece {
        Piece::Data(d) => sink.data(state, meta, dir, ts, d),
        Piece::Gap(n) => {
            stats.gaps += 1;
            stats.gap_bytes += n;
            sink.gap(state, meta, dir, ts, n)
        }
    }
}

#[cfg(test)]
mod tests;
