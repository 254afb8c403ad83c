use super::*;
use std::net::{IpAddr, Ipv4Addr};
use wire::TcpFlags;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Open(u64),
    Data(u64, Direction, Vec<u8>),
    Gap(u64, Direction, u64),
    Fin(u64, Direction),
    Anomaly(u64, Direction, FlowAnomaly),
    Close(u64, CloseReason),
}

#[derive(Default)]
struct Rec {
    events: Vec<Ev>,
}

impl Rec {
    fn stream(&self, serial: u64, dir: Direction) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            match e {
                Ev::Data(s, d, b) if *s == serial && *d == dir => out.extend_from_slice(b),
                Ev::Gap(s, d, n) if *s == serial && *d == dir => {
                    out.extend(std::iter::repeat_n(b'?', *n as usize))
                }
                _ => {}
            }
        }
        out
    }
}

impl StreamSink for Rec {
    type State = u64;
    fn open(&mut self, meta: &FlowMeta) -> u64 {
        self.events.push(Ev::Open(meta.serial));
        meta.serial
    }
    fn data(&mut self, st: &mut u64, _: &FlowMeta, dir: Direction, _: Timestamp, data: &[u8]) {
        self.events.push(Ev::Data(*st, dir, data.to_vec()));
    }
    fn gap(&mut self, st: &mut u64, _: &FlowMeta, dir: Direction, _: Timestamp, len: u64) {
        self.events.push(Ev::Gap(*st, dir, len));
    }
    fn fin(&mut self, st: &mut u64, _: &FlowMeta, dir: Direction, _: Timestamp) {
        self.events.push(Ev::Fin(*st, dir));
    }
    fn anomaly(&mut self, st: &mut u64, _: &FlowMeta, dir: Direction, a: FlowAnomaly) {
        self.events.push(Ev::Anomaly(*st, dir, a));
    }
    fn close(&mut self, st: u64, _: &FlowMeta, _: Timestamp, reason: CloseReason) {
        self.events.push(Ev::Close(st, reason));
    }
}

const C: (u8, u16) = (1, 40000);
const S: (u8, u16) = (2, 80);

fn seg<'a>(
    from: (u8, u16),
    to: (u8, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &'a [u8],
) -> TcpSegment<'a> {
    TcpSegment {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, from.0)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, to.0)),
        src_port: from.1,
        dst_port: to.1,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 65535,
        vlan: None,
        payload,
        missing_payload: 0,
    }
}

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;

fn ts(ms: u64) -> Timestamp {
    Timestamp(1_700_000_000_000_000_000 + ms * 1_000_000)
}

fn handshake(t: &mut FlowTable<u64>, r: &mut Rec, cisn: u32, sisn: u32) {
    t.process(ts(0), &seg(C, S, cisn, 0, SYN, b""), r);
    t.process(
        ts(1),
        &seg(S, C, sisn, cisn.wrapping_add(1), SYN | ACK, b""),
        r,
    );
    t.process(
        ts(2),
        &seg(C, S, cisn.wrapping_add(1), sisn.wrapping_add(1), ACK, b""),
        r,
    );
}

#[test]
fn both_directions_meet_in_one_flow_and_close_on_fins() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 100, 5000);
    t.process(
        ts(3),
        &seg(C, S, 101, 5001, ACK, b"GET / HTTP/1.1\r\n\r\n"),
        &mut r,
    );
    t.process(
        ts(4),
        &seg(S, C, 5001, 119, ACK, b"HTTP/1.1 200 OK\r\n\r\n"),
        &mut r,
    );
    t.process(ts(5), &seg(C, S, 119, 5020, FIN, b""), &mut r);
    t.process(ts(6), &seg(S, C, 5020, 120, FIN, b""), &mut r);
    assert_eq!(t.stats().flows_created, 1);
    assert_eq!(r.stream(0, Direction::Orig), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.stream(0, Direction::Resp), b"HTTP/1.1 200 OK\r\n\r\n");
    assert!(r.events.contains(&Ev::Fin(0, Direction::Orig)));
    assert_eq!(r.events.last(), Some(&Ev::Close(0, CloseReason::Fin)));
    // The final ACK is absorbed by the closed flow, not a new flow, and is not noteworthy;
    // a late retransmitted FIN is.
    t.process(ts(7), &seg(C, S, 120, 5021, ACK, b""), &mut r);
    assert_eq!(t.stats().flows_created, 1);
    assert_eq!(t.stats().packets_after_close, 0);
    t.process(ts(8), &seg(S, C, 5020, 120, FIN, b""), &mut r);
    assert_eq!(t.stats().packets_after_close, 1);
}

#[test]
fn syn_ack_seen_first_makes_its_receiver_the_originator() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    t.process(ts(1), &seg(S, C, 5000, 101, SYN | ACK, b""), &mut r);
    t.process(ts(2), &seg(C, S, 101, 5001, ACK, b"req"), &mut r);
    assert_eq!(r.stream(0, Direction::Orig), b"req");
}

#[test]
fn midstream_pickup_uses_peer_ack_to_recover_reordered_first_segment() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    // The server's ACK says the client's stream is at 1000; then the client's second segment
    // arrives before its first.
    t.process(ts(1), &seg(S, C, 9000, 1000, ACK, b""), &mut r);
    t.process(ts(2), &seg(C, S, 1004, 9000, ACK, b"5678"), &mut r);
    t.process(ts(3), &seg(C, S, 1000, 9000, ACK, b"1234"), &mut r);
    assert_eq!(r.stream(0, Direction::Resp), b"12345678");
}

#[test]
fn acknowledged_hole_becomes_a_gap() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 0, 0);
    t.process(ts(3), &seg(C, S, 1, 1, ACK, b"aaaa"), &mut r);
    // bytes 5..9 lost
    t.process(ts(4), &seg(C, S, 9, 1, ACK, b"cccc"), &mut r);
    assert_eq!(r.stream(0, Direction::Orig), b"aaaa");
    t.process(ts(5), &seg(S, C, 1, 13, ACK, b""), &mut r);
    assert_eq!(r.stream(0, Direction::Orig), b"aaaa????cccc");
    assert!(r
        .events
        .contains(&Ev::Anomaly(0, Direction::Orig, FlowAnomaly::AckedUnseen)));
    assert_eq!(t.stats().gap_bytes, 4);
}

#[test]
fn lost_data_before_an_acknowledged_fin_becomes_a_gap() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 0, 0);
    t.process(ts(3), &seg(S, C, 1, 1, ACK, b"head"), &mut r);
    // bytes 5..9 lost, then the FIN at 9, acknowledged by the client
    t.process(ts(4), &seg(S, C, 9, 1, FIN, b""), &mut r);
    assert_eq!(r.stream(0, Direction::Resp), b"head");
    t.process(ts(5), &seg(C, S, 1, 10, ACK, b""), &mut r);
    assert_eq!(r.stream(0, Direction::Resp), b"head????");
    assert!(r.events.contains(&Ev::Fin(0, Direction::Resp)));
}

#[test]
fn lost_data_before_an_unacknowledged_fin_is_a_gap_at_close() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 0, 0);
    t.process(ts(3), &seg(S, C, 1, 1, ACK, b"head"), &mut r);
    t.process(ts(4), &seg(S, C, 9, 1, FIN, b""), &mut r);
    t.flush_all(ts(5), &mut r);
    assert_eq!(r.stream(0, Direction::Resp), b"head????");
    let fin = r
        .events
        .iter()
        .position(|e| *e == Ev::Fin(0, Direction::Resp))
        .expect("fin delivered");
    let close = r
        .events
        .iter()
        .position(|e| matches!(e, Ev::Close(0, _)))
        .expect("closed");
    assert!(fin < close);
}

#[test]
fn new_syn_with_new_isn_on_used_tuple_starts_a_new_flow() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 100, 5000);
    t.process(ts(3), &seg(C, S, 101, 5001, ACK, b"one"), &mut r);
    // The client reuses the port without a FIN seen (e.g. FIN lost).
    t.process(ts(10), &seg(C, S, 7777, 0, SYN, b""), &mut r);
    t.process(ts(11), &seg(S, C, 3333, 7778, SYN | ACK, b""), &mut r);
    t.process(ts(12), &seg(C, S, 7778, 3334, ACK, b"two"), &mut r);
    assert!(r.events.contains(&Ev::Close(0, CloseReason::Reused)));
    assert_eq!(r.stream(1, Direction::Orig), b"two");
    // A retransmitted SYN (same ISN) does not split the flow.
    t.process(ts(13), &seg(C, S, 7777, 0, SYN, b""), &mut r);
    assert_eq!(t.stats().flows_created, 2);
}

#[test]
fn rst_closes_and_flushes_buffered_data() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 0, 0);
    t.process(ts(3), &seg(C, S, 5, 1, ACK, b"late"), &mut r);
    t.process(ts(4), &seg(S, C, 1, 1, RST | ACK, b""), &mut r);
    assert_eq!(r.stream(0, Direction::Orig), b"????late");
    assert!(r.events.contains(&Ev::Close(0, CloseReason::Rst)));
    assert_eq!(t.stats().buffered_bytes, 0);
}

#[test]
fn idle_flows_expire_in_packet_time() {
    let cfg = FlowConfig {
        idle_timeout_ns: 1_000_000_000,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg);
    let mut r = Rec::default();
    handshake(&mut t, &mut r, 0, 0);
    t.process(ts(3), &seg(C, S, 1, 1, ACK, b"x"), &mut r);
    t.expire(ts(500), &mut r);
    assert_eq!(t.len(), 1);
    t.expire(ts(1500), &mut r);
    assert_eq!(t.len(), 0);
    assert!(r.events.contains(&Ev::Close(0, CloseReason::IdleTimeout)));
}

#[test]
fn syn_flood_stays_within_flow_bound() {
    let cfg = FlowConfig {
        max_flows: 1000,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg);
    let mut r = Rec::default();
    // One real connection with data, then a flood of SYNs.
    handshake(&mut t, &mut r, 0, 0);
    t.process(ts(3), &seg(C, S, 1, 1, ACK, b"keep me"), &mut r);
    for i in 0..20_000u32 {
        let src = (10u8.wrapping_add((i % 200) as u8), 1024 + (i / 200) as u16);
        t.process(ts(4), &seg(src, S, i, 0, SYN, b""), &mut r);
        assert!(t.len() <= 1000);
    }
    assert_eq!(
        t.stats().evicted_established,
        0,
        "floods evict embryonic flows first"
    );
    assert!(t.stats().evicted_embryonic >= 19_000);
    t.process(ts(5), &seg(C, S, 8, 1, ACK, b"!"), &mut r);
    assert_eq!(r.stream(0, Direction::Orig), b"keep me!");
}

#[test]
fn total_buffer_bound_is_never_exceeded() {
    let cfg = FlowConfig {
        max_buffered_bytes_per_direction: 1000,
        max_buffered_bytes_total: 3000,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg);
    let mut r = Rec::default();
    let chunk = [7u8; 300];
    for c in 0..10u16 {
        let client = (1, 40000 + c);
        t.process(ts(0), &seg(client, S, 0, 0, SYN, b""), &mut r);
        for k in 0..10u32 {
            // Always leave a hole at the start so everything is early data.
            t.process(
                ts(1),
                &seg(client, S, 100 + k * 300, 0, ACK, &chunk),
                &mut r,
            );
            assert!(
                t.stats().buffered_bytes <= 3000,
                "{}",
                t.stats().buffered_bytes
            );
        }
    }
    assert!(t.stats().overflow_flushes > 0);
    t.flush_all(ts(2), &mut r);
    assert_eq!(t.stats().buffered_bytes, 0);
}

#[test]
fn flush_all_closes_in_creation_order() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut r = Rec::default();
    for p in [5000u16, 4000, 6000] {
        t.process(ts(0), &seg((1, p), S, 0, 0, SYN, b""), &mut r);
    }
    t.flush_all(ts(1), &mut r);
    let closes: Vec<u64> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::Close(s, _) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(closes, vec![0, 1, 2]);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever order, duplication and overlap the segments of one stream arrive in, the
        /// delivered bytes (gaps as '?') are a prefix-consistent copy of the original: every
        /// delivered byte is the original byte at that position.
        #[test]
        fn reassembly_never_corrupts_the_stream(
            cuts in proptest::collection::vec(1usize..50, 1..20),
            order in proptest::collection::vec(0usize..100, 0..40),
            isn in any::<u32>(),
        ) {
            let data: Vec<u8> = (0..cuts.iter().sum::<usize>()).map(|i| b'a' + (i % 26) as u8).collect();
            let mut segs = Vec::new();
            let mut off = 0;
            for c in &cuts { segs.push((off, *c)); off += c; }
            let mut t = FlowTable::new(FlowConfig::default());
            let mut r = Rec::default();
            t.process(ts(0), &seg(C, S, isn, 0, SYN, b""), &mut r);
            let mut sent: Vec<(usize, usize)> = order.iter().map(|i| segs[i % segs.len()]).collect();
            sent.extend(segs.iter().copied());
            for (o, l) in sent {
                let s = isn.wrapping_add(1).wrapping_add(o as u32);
                t.process(ts(1), &seg(C, S, s, 0, ACK, &data[o..o + l]), &mut r);
            }
            t.flush_all(ts(2), &mut r);
            let got = r.stream(0, Direction::Orig);
            prop_assert_eq!(got, data);
        }

        #[test]
        fn arbitrary_segments_never_panic_and_respect_bounds(
            pkts in proptest::collection::vec((any::<bool>(), any::<u32>(), any::<u32>(), any::<u8>(), 0usize..200), 1..200)
        ) {
            let cfg = FlowConfig { max_flows: 4, max_buffered_bytes_per_direction: 500, max_buffered_bytes_total: 1200, ..FlowConfig::default() };
            let mut t = FlowTable::new(cfg);
            let mut r = Rec::default();
            let payload = [0x41u8; 200];
            for (i, (dir, s, a, fl, len)) in pkts.into_iter().enumerate() {
                let client = (1, 1000 + (i % 6) as u16);
                let sg = if dir { seg(client, S, s, a, fl, &payload[..len]) } else { seg(S, client, s, a, fl, &payload[..len]) };
                t.process(ts(i as u64), &sg, &mut r);
                prop_assert!(t.len() <= 4);
                prop_assert!(t.stats().buffered_bytes <= 1200);
            }
            t.flush_all(ts(10_000), &mut r);
            prop_assert_eq!(t.stats().buffered_bytes, 0);
        }
    }
}
