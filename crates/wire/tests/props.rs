//! Property tests: no input panics, bounds hold, reassembly is exact.

mod common;

use common::*;
use proptest::prelude::*;
use wire::{Decoded, Decoder, DecoderConfig, LinkType, Timestamp};

const LINKS: [LinkType; 10] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Loop,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Nflog,
    LinkType::Unknown(147),
];

/// Valid frames of many shapes, to be mutated: reaches deep decoding paths that random
/// bytes rarely do.
fn templates() -> Vec<(LinkType, Vec<u8>)> {
    let ip4 = ipv4(6, &tcp_http());
    let ip6 = ipv6(6, &tcp_http());
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    vx.extend_from_slice(&eth(0x0800, &ip4));
    let mut gre = vec![0xb0, 0, 0x88, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    gre.extend_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0]);
    gre.extend_from_slice(&eth(0x86dd, &ip6));
    let mut gtp = vec![0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 0, 0];
    gtp.extend_from_slice(&ip4);
    let mut geneve = vec![0x01, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 0];
    geneve.extend_from_slice(&eth(0x0800, &ip4));
    let mut ext = ext6(60, 1);
    ext.extend_from_slice(&ext6(44, 0));
    ext.extend_from_slice(&frag6_payload(3, 0, true, 6, &tcp_http()[..40]));
    let mut mpls = mpls_label(5, false).to_vec();
    mpls.extend_from_slice(&mpls_label(6, true));
    mpls.extend_from_slice(&[0, 0, 0, 0]);
    mpls.extend_from_slice(&eth(0x8100, &vlan(3, 0x0800, &ip4)));
    let mut nflog = vec![2, 0, 0, 0, 8, 0, 1, 0, 8, 0, 3, 0];
    nflog.extend_from_slice(&((ip4.len() + 4) as u16).to_le_bytes());
    nflog.extend_from_slice(&[9, 0]);
    nflog.extend_from_slice(&ip4);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x88, 0x64];
    sll.extend_from_slice(&[0x11, 0, 0, 1]);
    sll.extend_from_slice(&((ip6.len() + 2) as u16).to_be_bytes());
    sll.extend_from_slice(&[0, 0x57]);
    sll.extend_from_slice(&ip6);
    let mut teredo = vec![
        0, 1, 1, 1, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    teredo.extend_from_slice(&ip6);
    vec![
        (LinkType::Ethernet, eth_tcp4()),
        (LinkType::Ethernet, eth_tcp6()),
        (
            LinkType::Ethernet,
            eth(0x0800, &ipv4(17, &udp(1, 4789, &vx))),
        ),
        (LinkType::Ethernet, eth(0x0800, &ipv4(47, &gre))),
        (LinkType::RawIp, ipv4(17, &udp(2152, 2152, &gtp))),
        (LinkType::RawIp, ipv6(17, &udp(9, 6081, &geneve))),
        (LinkType::RawIp, ipv6(17, &udp(9, 3544, &teredo))),
        (LinkType::Ipv6, ipv6(0, &ext)),
        (LinkType::Ethernet, eth(0x8847, &mpls)),
        (LinkType::Nflog, nflog),
        (LinkType::LinuxSll, sll),
        (LinkType::Ipv4, ipv4(4, &ip4)),
        (LinkType::RawIp, frag4(1, 0, true, &tcp_http()[..32])),
    ]
}

fn check_output(d: &Decoded<'_>) {
    if let Decoded::Tcp(seg) = d {
        assert!(seg.payload.len() + seg.missing_payload as usize <= 1 << 17);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(link in 0usize..LINKS.len(), frame in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut d = Decoder::default();
        let out = d.decode(LINKS[link], Timestamp(1), &frame);
        check_output(&out);
        assert_stats_consistent(d.stats());
        prop_assert_eq!(d.stats().packets, 1);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in 0usize..13,
        muts in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        do_cut in any::<bool>(),
    ) {
        let t = templates();
        let (link, mut frame) = t[which % t.len()].clone();
        for (i, v) in muts {
            let n = frame.len();
            frame[i % n] = v;
        }
        if do_cut {
            frame.truncate(cut % (frame.len() + 1));
        }
        let mut d = Decoder::new(DecoderConfig { max_tunnel_depth: 2, ..DecoderConfig::default() });
        for ts in 0..3u64 {
            let out = d.decode(link, Timestamp(ts), &frame);
            check_output(&out);
        }
        assert_stats_consistent(d.stats());
    }
}

proptest! {
    #[test]
    fn padding_never_changes_the_payload(pad in prop::collection::vec(any::<u8>(), 0..64), v6 in any::<bool>()) {
        let mut frame = if v6 { eth_tcp6() } else { eth_tcp4() };
        frame.extend_from_slice(&pad);
        let mut d = Decoder::default();
        let seg = expect_tcp(d.decode(LinkType::Ethernet, Timestamp(1), &frame));
        prop_assert_eq!(seg.payload, HTTP);
        prop_assert_eq!(seg.missing_payload, 0);
    }

    #[test]
    fn snaplen_cut_reports_missing_bytes(cut in 0usize..=HTTP.len()) {
        let full = eth_tcp4();
        let frame = &full[..full.len() - cut];
        let mut d = Decoder::default();
        let seg = expect_tcp(d.decode(LinkType::Ethernet, Timestamp(1), frame));
        prop_assert_eq!(seg.payload, &HTTP[..HTTP.len() - cut]);
        prop_assert_eq!(seg.missing_payload as usize, cut);
    }

    /// Arbitrary fragment streams (several ids, overlaps, conflicting ends, both IP
    /// versions, time jumps) never exceed the configured bounds.
    #[test]
    fn fragment_bounds_hold(
        frags in prop::collection::vec(
            (0u16..6, 0usize..64, 0usize..24, any::<bool>(), any::<bool>(), 0u64..3, any::<u8>()),
            1..120,
        ),
        max_sets in 1usize..6,
        max_bytes in 0usize..700,
    ) {
        let mut d = Decoder::new(DecoderConfig {
            max_fragment_sets: max_sets,
            max_fragment_bytes: max_bytes,
            max_datagram_bytes: 400,
            fragment_timeout_ns: 5,
            ..DecoderConfig::default()
        });
        let mut ts = 0u64;
        for (id, off8, len8, more, v6, step, fill) in frags {
            ts += step;
            let data = vec![fill; len8 * 8];
            let frame = if v6 {
                frag6(id as u32, off8 * 8, more, 6, &data)
            } else {
                frag4(id, off8 * 8, more, &data)
            };
            let out = d.decode(LinkType::RawIp, Timestamp(ts), &frame);
            check_output(&out);
            let s = d.stats();
            prop_assert!(s.fragment_bytes_held as usize <= max_bytes, "{} > {}", s.fragment_bytes_held, max_bytes);
            prop_assert!(d.fragment_sets() <= max_sets);
        }
        d.expire(Timestamp(ts + 6));
        prop_assert_eq!(d.fragment_sets(), 0);
        prop_assert_eq!(d.stats().fragment_bytes_held, 0);
        assert_stats_consistent(d.stats());
    }

    /// Any split of a segment into fragments, in any order, with duplicates, reassembles
    /// to exactly the original payload, once.
    #[test]
    fn reassembly_is_exact(
        (payload, order) in (0usize..1500, 1usize..40).prop_flat_map(|(len, units)| {
            let n = (20 + len).div_ceil(units * 8);
            (
                prop::collection::vec(any::<u8>(), len),
                Just((0..n).map(|i| (i, units * 8)).collect::<Vec<_>>()).prop_shuffle(),
            )
        }),
        dups in prop::collection::vec(any::<usize>(), 0..4),
        v6 in any::<bool>(),
    ) {
        // A single piece is not a fragment at all.
        prop_assume!(order.len() >= 2);
        let seg = tcp_with(SPORT, DPORT, SEQ, ACK, FLAGS_PA, &[], &payload);
        let mut order = order;
        for p in dups {
            let at = p % order.len();
            let item = order[at];
            order.insert(at + 1, item);
        }
        let mut d = Decoder::default();
        let mut delivered = 0;
        for (i, chunk) in order {
            let off = i * chunk;
            let end = (off + chunk).min(seg.len());
            let more = end < seg.len();
            let frame = if v6 {
                frag6(0x1234_5678, off, more, 6, &seg[off..end])
            } else {
                frag4(0x4321, off, more, &seg[off..end])
            };
            match d.decode(LinkType::RawIp, Timestamp(1), &frame) {
                Decoded::Tcp(s) => {
                    delivered += 1;
                    prop_assert_eq!(s.payload, payload.as_slice());
                    prop_assert_eq!(s.seq, SEQ);
                }
                Decoded::FragmentHeld => {}
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(delivered, 1);
        prop_assert_eq!(d.stats().reassembled, 1);
        prop_assert_eq!(d.stats().total_anomalies(), 0);
    }
}
