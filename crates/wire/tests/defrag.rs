//! IPv4 / IPv6 fragment reassembly.

mod common;

use common::*;
use wire::{DecodeAnomaly as A, Decoded, Decoder, DecoderConfig, LinkType, Timestamp};

const T0: Timestamp = Timestamp(5_000_000_000);
const SEC: u64 = 1_000_000_000;

fn body() -> Vec<u8> {
    (0..100u8).collect()
}

/// A 120-byte TCP segment: 20-byte header + 100 bytes `body()`.
fn segment() -> Vec<u8> {
    tcp_with(SPORT, DPORT, SEQ, ACK, FLAGS_PA, &[], &body())
}

/// The segment cut into [0,48) [48,96) [96,120).
fn thirds(id: u16) -> [Vec<u8>; 3] {
    let s = segment();
    [
        frag4(id, 0, true, &s[..48]),
        frag4(id, 48, true, &s[48..96]),
        frag4(id, 96, false, &s[96..]),
    ]
}

fn dec_with(f: impl FnOnce(&mut DecoderConfig)) -> Decoder {
    let mut c = DecoderConfig::default();
    f(&mut c);
    Decoder::new(c)
}

#[track_caller]
fn held(d: &mut Decoder, frame: &[u8]) {
    let out = d.decode(LinkType::RawIp, T0, frame);
    assert!(
        matches!(out, Decoded::FragmentHeld),
        "expected FragmentHeld, got {out:?}"
    );
}

#[track_caller]
fn held_at(d: &mut Decoder, ts: Timestamp, frame: &[u8]) {
    let out = d.decode(LinkType::RawIp, ts, frame);
    assert!(
        matches!(out, Decoded::FragmentHeld),
        "expected FragmentHeld, got {out:?}"
    );
}

#[track_caller]
fn completes(d: &mut Decoder, frame: &[u8]) -> Vec<u8> {
    let seg = expect_tcp(d.decode(LinkType::RawIp, T0, frame));
    assert_eq!(seg.src, src4());
    assert_eq!(seg.dst, dst4());
    assert_eq!(
        (seg.src_port, seg.dst_port, seg.seq, seg.ack),
        (SPORT, DPORT, SEQ, ACK)
    );
    assert_eq!(seg.missing_payload, 0);
    // The payload lives in the decoder's buffer, not in the last fragment.
    let range = frame.as_ptr_range();
    assert!(!range.contains(&seg.payload.as_ptr()));
    seg.payload.to_vec()
}

#[track_caller]
fn malformed(d: &mut Decoder, frame: &[u8]) -> A {
    match d.decode(LinkType::RawIp, T0, frame) {
        Decoded::Malformed(a) => a,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn ipv4_in_order() {
    let mut d = Decoder::default();
    let [a, b, c] = thirds(1);
    held(&mut d, &a);
    assert_eq!(d.stats().fragment_bytes_held, 48);
    held(&mut d, &b);
    assert_eq!(d.stats().fragment_bytes_held, 96);
    assert_eq!(completes(&mut d, &c), body());
    let s = d.stats();
    assert_eq!(
        (s.fragments, s.reassembled, s.fragments_held, s.tcp),
        (3, 1, 2, 1)
    );
    assert_eq!(s.fragment_bytes_held, 0);
    assert_eq!(d.fragment_sets(), 0);
    assert_eq!(s.total_anomalies(), 0);
    assert_stats_consistent(s);
}

#[test]
fn ipv4_reversed_and_shuffled() {
    let mut d = Decoder::default();
    let [a, b, c] = thirds(2);
    held(&mut d, &c);
    held(&mut d, &b);
    assert_eq!(completes(&mut d, &a), body());
    let [a, b, c] = thirds(3);
    held(&mut d, &b);
    held(&mut d, &c);
    assert_eq!(completes(&mut d, &a), body());
    assert_eq!(d.stats().reassembled, 2);
}

#[test]
fn ipv4_behind_ethernet_with_padding_and_vlan() {
    let mut d = Decoder::default();
    let [a, b, c] = thirds(4);
    let wrap = |ip: &[u8]| {
        let mut f = eth(0x8100, &vlan(9, 0x0800, ip));
        f.resize(f.len().max(60) + 4, 0xee); // padding beyond the IP total length
        f
    };
    for f in [&a, &b] {
        assert!(matches!(
            d.decode(LinkType::Ethernet, T0, &wrap(f)),
            Decoded::FragmentHeld
        ));
    }
    let last = wrap(&c);
    let seg = expect_tcp(d.decode(LinkType::Ethernet, T0, &last));
    assert_eq!(seg.payload, body().as_slice());
    assert_eq!(seg.vlan, Some(9));
}

#[test]
fn overlap_with_same_data_is_fine() {
    let mut d = Decoder::default();
    let s = segment();
    held(&mut d, &frag4(5, 0, true, &s[..48]));
    held(&mut d, &frag4(5, 40, true, &s[40..96]));
    assert_eq!(d.stats().fragment_bytes_held, 96);
    assert_eq!(completes(&mut d, &frag4(5, 96, false, &s[96..])), body());
    assert_eq!(d.stats().total_anomalies(), 0);
}

#[test]
fn overlap_with_different_data_first_wins() {
    let mut d = Decoder::default();
    let s = segment();
    held(&mut d, &frag4(6, 0, true, &s[..48]));
    let mut evil = s[40..96].to_vec();
    evil[..8].copy_from_slice(b"XXXXXXXX");
    assert_eq!(
        malformed(&mut d, &frag4(6, 40, true, &evil)),
        A::FragmentOverlapMismatch
    );
    // The new part of the mismatching fragment was still kept.
    assert_eq!(d.stats().fragment_bytes_held, 96);
    assert_eq!(completes(&mut d, &frag4(6, 96, false, &s[96..])), body());
    assert_eq!(d.stats().anomaly(A::FragmentOverlapMismatch), 1);
    assert_stats_consistent(d.stats());
}

#[test]
fn overlap_mismatch_on_completing_fragment_still_delivers() {
    let mut d = Decoder::default();
    let s = segment();
    held(&mut d, &frag4(7, 0, true, &s[..48]));
    held(&mut d, &frag4(7, 96, false, &s[96..]));
    let mut evil = s[40..104].to_vec();
    evil[0] ^= 0xff;
    evil[63] ^= 0xff;
    assert_eq!(completes(&mut d, &frag4(7, 40, true, &evil)), body());
    assert_eq!(d.stats().anomaly(A::FragmentOverlapMismatch), 1);
    assert_eq!(d.stats().malformed, 0);
    assert_stats_consistent(d.stats());
}

#[test]
fn duplicates_are_ignored() {
    let mut d = Decoder::default();
    let [a, b, c] = thirds(8);
    held(&mut d, &a);
    held(&mut d, &a);
    assert_eq!(d.stats().fragment_bytes_held, 48);
    held(&mut d, &b);
    held(&mut d, &b);
    assert_eq!(completes(&mut d, &c), body());
    // A late duplicate starts a new (never completed) set.
    held(&mut d, &c);
    assert_eq!(d.fragment_sets(), 1);
    assert_eq!(d.stats().fragment_bytes_held, 24);
    assert_eq!(d.stats().reassembled, 1);
}

#[test]
fn last_fragment_fully_covered_by_earlier_overlap_completes() {
    let mut d = Decoder::default();
    let s = segment();
    held(&mut d, &frag4(9, 0, true, &s[..64]));
    held(&mut d, &frag4(9, 56, true, &s[56..112]));
    // The final fragment brings 8 new bytes and the end.
    assert_eq!(completes(&mut d, &frag4(9, 104, false, &s[104..])), body());
}

#[test]
fn timeout_by_expire_and_by_packet_time() {
    let mut d = Decoder::default();
    let [a, b, c] = thirds(10);
    held_at(&mut d, T0, &a);
    d.expire(T0.plus_nanos(30 * SEC));
    assert_eq!(d.fragment_sets(), 1, "not yet older than the timeout");
    d.expire(T0.plus_nanos(30 * SEC + 1));
    assert_eq!(d.fragment_sets(), 0);
    assert_eq!(d.stats().fragment_timeouts, 1);
    assert_eq!(d.stats().anomaly(A::FragmentTimeout), 1);
    assert_eq!(d.stats().fragment_bytes_held, 0);
    // The rest cannot complete the dropped datagram.
    let later = T0.plus_nanos(31 * SEC);
    held_at(&mut d, later, &b);
    held_at(&mut d, later, &c);
    assert_eq!(d.stats().reassembled, 0);

    // Expiry also happens on the next packet, whatever it is.
    let mut d = Decoder::default();
    held_at(&mut d, T0, &a);
    let frame = eth_tcp4();
    let out = d.decode(LinkType::Ethernet, T0.plus_nanos(40 * SEC), &frame);
    assert!(matches!(out, Decoded::Tcp(_)));
    assert_eq!(d.fragment_sets(), 0);
    assert_eq!(d.stats().fragment_timeouts, 1);

    // A fragment for an expired set replaces it.
    let mut d = Decoder::default();
    held_at(&mut d, T0, &a);
    held_at(&mut d, T0.plus_nanos(10 * SEC), &b);
    let out = d.decode(LinkType::RawIp, T0.plus_nanos(31 * SEC), &c);
    assert!(matches!(out, Decoded::FragmentHeld), "{out:?}");
    assert_eq!(d.stats().fragment_timeouts, 1);
    assert_eq!(d.stats().fragment_bytes_held, 24);
    assert_stats_consistent(d.stats());
}

#[test]
fn eviction_by_set_count() {
    let mut d = dec_with(|c| c.max_fragment_sets = 2);
    let [a1, b1, c1] = thirds(1);
    let [a2, b2, c2] = thirds(2);
    let [a3, ..] = thirds(3);
    held(&mut d, &a1);
    held(&mut d, &a2);
    held(&mut d, &a3); // evicts id 1 (oldest)
    assert_eq!(d.fragment_sets(), 2);
    assert_eq!(d.stats().fragment_evictions, 1);
    assert_eq!(d.stats().anomaly(A::FragmentEvicted), 1);
    held(&mut d, &b2);
    assert_eq!(completes(&mut d, &c2), body());
    // id 1 lost its first fragment: b1 + c1 (which re-create the set) never complete.
    held(&mut d, &b1);
    held(&mut d, &c1);
    assert_eq!(d.stats().reassembled, 1);
    assert_stats_consistent(d.stats());
}

#[test]
fn eviction_by_byte_budget() {
    let mut d = dec_with(|c| c.max_fragment_bytes = 100);
    let [a1, ..] = thirds(1);
    let [a2, b2, c2] = thirds(2);
    let [a3, ..] = thirds(3);
    held(&mut d, &a1);
    held(&mut d, &a2);
    assert_eq!(d.stats().fragment_bytes_held, 96);
    held(&mut d, &a3); // 96 + 48 > 100: id 1 goes
    assert_eq!(d.stats().fragment_bytes_held, 96);
    assert_eq!(d.stats().fragment_evictions, 1);
    // id 2 is now the oldest; completing it needs 72 more bytes → id 2 itself is evicted
    // first (it is the oldest), then b2 starts afresh.
    held(&mut d, &b2);
    assert!(d.stats().fragment_bytes_held <= 100);
    assert_eq!(d.stats().fragment_evictions, 2);
    held(&mut d, &c2);
    assert!(d.stats().fragment_bytes_held <= 100);
    assert_eq!(d.stats().reassembled, 0);
    assert_stats_consistent(d.stats());
}

#[test]
fn too_large_bad_length_end_conflict_truncated() {
    let mut d = dec_with(|c| c.max_datagram_bytes = 1000);
    let s = segment();
    assert_eq!(
        malformed(&mut d, &frag4(1, 992, false, &[0; 16])),
        A::FragmentTooLarge
    );
    // A fragment bigger than the whole byte budget.
    let mut small = dec_with(|c| c.max_fragment_bytes = 40);
    assert_eq!(
        malformed(&mut small, &frag4(1, 0, true, &s[..48])),
        A::FragmentTooLarge
    );
    // Non-final fragment not a multiple of 8.
    assert_eq!(
        malformed(&mut d, &frag4(2, 0, true, &s[..20])),
        A::FragmentBadLength
    );
    // Two different ends.
    held(&mut d, &frag4(3, 96, false, &s[96..]));
    assert_eq!(
        malformed(&mut d, &frag4(3, 48, false, &s[48..96])),
        A::FragmentEndConflict
    );
    // A middle fragment beyond the known end.
    assert_eq!(
        malformed(&mut d, &frag4(3, 120, true, &[0; 8])),
        A::FragmentEndConflict
    );
    // Snaplen-cut fragment.
    let mut cut = frag4(4, 0, true, &s[..48]);
    cut.truncate(cut.len() - 4);
    assert_eq!(malformed(&mut d, &cut), A::FragmentTruncated);
    assert_eq!(d.stats().malformed, 5);
    assert_stats_consistent(d.stats());
}

#[test]
fn too_many_pieces() {
    let mut d = Decoder::default();
    let mut last = None;
    for i in 0..600usize {
        match d.decode(LinkType::RawIp, T0, &frag4(77, i * 16, true, &[1; 8])) {
            Decoded::FragmentHeld => {}
            Decoded::Malformed(a) => {
                last = Some((i, a));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(last, Some((512, A::FragmentTooMany)));
    assert_eq!(d.fragment_sets(), 0);
    assert_eq!(d.stats().fragment_bytes_held, 0);
}

#[test]
fn keys_separate_datagrams() {
    let mut d = Decoder::default();
    let s = segment();
    // Same id, different protocol: not mixed.
    held(&mut d, &frag4_proto(11, 17, 0, true, &s[..48]));
    let [a, b, c] = thirds(11);
    held(&mut d, &a);
    held(&mut d, &b);
    assert_eq!(completes(&mut d, &c), body());
    // Same id, different source.
    let other = ipv4_full([9, 9, 9, 9], DST4, 6, 12, 0x2000, &[], &s[..48]);
    held(&mut d, &other);
    let [_, b, c] = thirds(12);
    held(&mut d, &b);
    held(&mut d, &c);
    assert_eq!(d.stats().reassembled, 1);
}

#[test]
fn reassembled_non_tcp() {
    let mut d = Decoder::default();
    let u = udp(53, 53, &[7; 40]);
    held(&mut d, &frag4_proto(13, 17, 0, true, &u[..24]));
    let last = frag4_proto(13, 17, 24, false, &u[24..]);
    let out = d.decode(LinkType::RawIp, T0, &last);
    assert!(matches!(out, Decoded::NotTcp), "{out:?}");
    assert_eq!(d.stats().reassembled, 1);
}

#[test]
fn ipv6_fragments() {
    let mut d = Decoder::default();
    let s = segment();
    let f1 = frag6(0xdead_beef, 0, true, 6, &s[..64]);
    let f2 = frag6(0xdead_beef, 64, false, 6, &s[64..]);
    let run = |d: &mut Decoder, first: &[u8], second: &[u8]| {
        assert!(matches!(
            d.decode(LinkType::Ipv6, T0, first),
            Decoded::FragmentHeld
        ));
        let seg = expect_tcp(d.decode(LinkType::Ipv6, T0, second));
        assert_eq!(seg.src, src6());
        assert_eq!(seg.dst, dst6());
        assert_eq!((seg.src_port, seg.seq), (SPORT, SEQ));
        assert_eq!(seg.payload, body().as_slice());
    };
    run(&mut d, &f1, &f2);
    run(&mut d, &f2, &f1);

    // Non-first fragments may carry another next header: the offset-zero one counts.
    let g1 = frag6(5, 0, true, 6, &s[..64]);
    let g2 = frag6(5, 64, false, 17, &s[64..]);
    run(&mut d, &g2, &g1);

    // Unfragmentable part (hop-by-hop) before, destination options after the fragment
    // header (inside the reassembled payload).
    let mut fragmentable = ext6(6, 0);
    fragmentable.extend_from_slice(&s);
    let mut p1 = ext6(44, 0);
    p1.extend_from_slice(&frag6_payload(6, 0, true, 60, &fragmentable[..64]));
    let mut p2 = ext6(44, 0);
    p2.extend_from_slice(&frag6_payload(6, 64, false, 60, &fragmentable[64..]));
    run(&mut d, &ipv6(0, &p1), &ipv6(0, &p2));
    assert_eq!(d.stats().reassembled, 4);
    assert_eq!(d.stats().fragment_bytes_held, 0);

    // An IPv4 and an IPv6 datagram with the same id do not mix.
    held(&mut d, &frag4(6, 0, true, &s[..48]));
    assert!(matches!(
        d.decode(LinkType::Ipv6, T0, &frag6(6, 48, false, 6, &s[48..])),
        Decoded::FragmentHeld
    ));
    assert_eq!(d.fragment_sets(), 2);
}

#[test]
fn ipv6_nested_fragment_header() {
    let mut d = Decoder::default();
    let inner = frag6_payload(99, 8, false, 6, &[0; 16]);
    held(&mut d, &frag6(1, 0, true, 44, &inner[..16]));
    let last = frag6(1, 16, false, 44, &inner[16..]);
    let out = d.decode(LinkType::Ipv6, T0, &last);
    assert_eq!(out.anomaly(), Some(A::NestedFragment));
}

#[test]
fn fragments_inside_a_tunnel() {
    // VXLAN carrying Ethernet/IPv4 fragments of the inner TCP segment.
    let mut d = Decoder::default();
    let [a, b, c] = thirds(21);
    let wrap = |ip: &[u8]| {
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
        vx.extend_from_slice(&eth(0x0800, ip));
        eth(
            0x0800,
            &ipv4_addrs([192, 0, 2, 1], [192, 0, 2, 2], 17, &udp(999, 4789, &vx)),
        )
    };
    assert!(matches!(
        d.decode(LinkType::Ethernet, T0, &wrap(&a)),
        Decoded::FragmentHeld
    ));
    assert!(matches!(
        d.decode(LinkType::Ethernet, T0, &wrap(&c)),
        Decoded::FragmentHeld
    ));
    let last = wrap(&b);
    let seg = expect_tcp(d.decode(LinkType::Ethernet, T0, &last));
    assert_eq!(seg.src, src4());
    assert_eq!(seg.payload, body().as_slice());
    assert_eq!(d.stats().tunnelled, 3);

    // A fragmented outer GRE packet carrying an unfragmented inner one, then again
    // (the reassembly buffer is reused).
    let inner = ipv4(6, &tcp_http());
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner);
    for id in [30u16, 31] {
        let o1 = ipv4_full(
            [192, 0, 2, 1],
            [192, 0, 2, 2],
            47,
            id,
            0x2000,
            &[],
            &gre[..32],
        );
        let o2 = ipv4_full([192, 0, 2, 1], [192, 0, 2, 2], 47, id, 4, &[], &gre[32..]);
        held(&mut d, &o1);
        let seg = expect_tcp(d.decode(LinkType::RawIp, T0, &o2));
        assert_http(&seg, src4(), dst4());
    }
}
