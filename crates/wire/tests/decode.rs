//! Link layers, IP, TCP and anomalies, one frame at a time.

mod common;

use common::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use wire::{DecodeAnomaly as A, Decoded, Decoder, DecoderConfig, LinkType, Timestamp};

fn dec() -> Decoder {
    Decoder::new(DecoderConfig::default())
}

const T0: Timestamp = Timestamp(1_000_000_000);

/// (src, dst, payload, vlan, missing_payload) of a delivered segment.
type Got = (IpAddr, IpAddr, Vec<u8>, Option<u16>, u32);

#[track_caller]
fn one(link: LinkType, frame: &[u8]) -> Result<Got, String> {
    let mut d = dec();
    let r = match d.decode(link, T0, frame) {
        Decoded::Tcp(s) => Ok((s.src, s.dst, s.payload.to_vec(), s.vlan, s.missing_payload)),
        other => Err(format!("{other:?}")),
    };
    assert_stats_consistent(d.stats());
    r
}

#[track_caller]
fn http4(link: LinkType, frame: &[u8]) -> Option<u16> {
    let mut d = dec();
    let seg = expect_tcp(d.decode(link, T0, frame));
    assert_http(&seg, src4(), dst4());
    seg.vlan
}

#[track_caller]
fn http6(link: LinkType, frame: &[u8]) {
    let mut d = dec();
    let seg = expect_tcp(d.decode(link, T0, frame));
    assert_http(&seg, src6(), dst6());
}

#[track_caller]
fn anomaly(link: LinkType, frame: &[u8]) -> A {
    let mut d = dec();
    let out = d.decode(link, T0, frame);
    let a = match out {
        Decoded::Malformed(a) => a,
        other => panic!("expected Malformed, got {other:?}"),
    };
    assert_eq!(d.stats().malformed, 1);
    assert_eq!(d.stats().anomaly(a), 1);
    assert_eq!(d.stats().anomaly_counts().collect::<Vec<_>>(), vec![(a, 1)]);
    a
}

#[track_caller]
fn not_tcp(link: LinkType, frame: &[u8]) {
    let mut d = dec();
    let out = d.decode(link, T0, frame);
    assert!(
        matches!(out, Decoded::NotTcp),
        "expected NotTcp, got {out:?}"
    );
    assert_eq!(d.stats().not_tcp, 1);
    assert_eq!(d.stats().total_anomalies(), 0);
}

// ---------------------------------------------------------------------------------------
// API surface

#[test]
fn link_type_pcap_mapping() {
    let pairs = [
        (0, LinkType::Null),
        (1, LinkType::Ethernet),
        (101, LinkType::RawIp),
        (113, LinkType::LinuxSll),
        (276, LinkType::LinuxSll2),
        (108, LinkType::Loop),
        (228, LinkType::Ipv4),
        (229, LinkType::Ipv6),
        (239, LinkType::Nflog),
        (147, LinkType::Unknown(147)),
    ];
    for (v, lt) in pairs {
        assert_eq!(LinkType::from_pcap(v), lt);
        assert_eq!(lt.to_pcap(), v);
    }
    assert_eq!(LinkType::from_pcap(12), LinkType::RawIp);
    assert_eq!(LinkType::from_pcap(14), LinkType::RawIp);
}

#[test]
fn anomaly_names_are_stable_unique_snake_case() {
    assert_eq!(A::ALL.len(), A::COUNT);
    let mut seen = HashSet::new();
    for (i, &a) in A::ALL.iter().enumerate() {
        assert_eq!(a.index(), i);
        let s = a.as_str();
        assert!(seen.insert(s), "duplicate {s}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{s}"
        );
        assert_eq!(A::from_name(s), Some(a));
        assert_eq!(a.to_string(), s);
    }
    assert_eq!(A::TruncatedTcp.as_str(), "truncated_tcp");
    assert_eq!(
        A::FragmentOverlapMismatch.as_str(),
        "fragment_overlap_mismatch"
    );
    assert_eq!(A::from_name("nope"), None);
    let mut sorted = A::ALL.to_vec();
    sorted.sort();
    assert_eq!(sorted, A::ALL);
}

#[test]
fn config_defaults() {
    let c = DecoderConfig::default();
    assert_eq!(c.max_fragment_sets, 4096);
    assert_eq!(c.max_fragment_bytes, 16 << 20);
    assert!(c.max_datagram_bytes >= 65_535);
    assert_eq!(c.fragment_timeout_ns, 30_000_000_000);
    assert!(c.decode_tunnels);
    assert_eq!(c.max_tunnel_depth, 3);
}

#[test]
fn unknown_link_type() {
    assert_eq!(
        anomaly(LinkType::Unknown(147), &eth_tcp4()),
        A::UnknownLinkType
    );
}

#[test]
fn stats_merge_adds_everything() {
    let mut a = dec();
    let mut b = dec();
    a.decode(LinkType::Ethernet, T0, &eth_tcp4());
    a.decode(LinkType::Ethernet, T0, &[1, 2, 3]);
    b.decode(LinkType::Ethernet, T0, &eth(0x0806, &[0; 28]));
    b.decode(
        LinkType::Ethernet,
        T0,
        &eth(0x0800, &frag4(9, 0, true, &[0; 16])),
    );
    let mut m = a.stats().clone();
    m.merge(b.stats());
    assert_eq!(m.packets, 4);
    assert_eq!(m.tcp, 1);
    assert_eq!(m.not_tcp, 1);
    assert_eq!(m.malformed, 1);
    assert_eq!(m.fragments_held, 1);
    assert_eq!(m.fragments, 1);
    assert_eq!(m.fragment_bytes_held, 16);
    assert_eq!(m.anomaly(A::TruncatedLink), 1);
    assert_stats_consistent(&m);
}

// ---------------------------------------------------------------------------------------
// Link layers

#[test]
fn ethernet_ipv4_tcp_hand_built() {
    assert_eq!(http4(LinkType::Ethernet, &eth_tcp4()), None);
}

#[test]
fn ethernet_tcp_built_by_etherparse() {
    use etherparse::PacketBuilder;
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 20)
        .tcp(1234, 443, 77, 9000)
        .ack(88)
        .psh();
    let mut frame = Vec::new();
    b.write(&mut frame, b"hello").unwrap();
    let mut d = dec();
    let seg = expect_tcp(d.decode(LinkType::Ethernet, T0, &frame));
    assert_eq!(seg.src, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)));
    assert_eq!(seg.dst, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
    assert_eq!((seg.src_port, seg.dst_port), (1234, 443));
    assert_eq!((seg.seq, seg.ack, seg.window), (77, 88, 9000));
    assert!(seg.flags.ack() && !seg.flags.syn());
    assert_eq!(seg.flags.0 & 0x08, 0x08);
    assert_eq!(seg.payload, b"hello");

    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(0x123.try_into().unwrap(), 0x234.try_into().unwrap())
        .ipv6(SRC6, DST6, 20)
        .tcp(5, 6, 7, 8)
        .syn();
    let mut frame = Vec::new();
    b.write(&mut frame, &[]).unwrap();
    let seg = expect_tcp(d.decode(LinkType::Ethernet, T0, &frame));
    assert_eq!(seg.vlan, Some(0x123));
    assert_eq!(seg.src, src6());
    assert!(seg.flags.syn());
    assert!(seg.payload.is_empty());
}

#[test]
fn ethernet_ipv6_tcp() {
    http6(LinkType::Ethernet, &eth_tcp6());
}

#[test]
fn tcp_options_skipped() {
    let opts = [2, 4, 0x05, 0xb4, 1, 1, 4, 2]; // MSS, NOP, NOP, SACK-permitted
    let seg = tcp_with(SPORT, DPORT, SEQ, ACK, FLAGS_PA, &opts, HTTP);
    http4(LinkType::Ethernet, &eth(0x0800, &ipv4(6, &seg)));
}

#[test]
fn ipv4_options_skipped() {
    let ip = ipv4_full(SRC4, DST4, 6, 1, 0, &[1, 1, 1, 0], &tcp_http());
    http4(LinkType::Ethernet, &eth(0x0800, &ip));
}

#[test]
fn checksums_are_not_verified() {
    // The builders write bogus IP and TCP checksums; decoding must not care.
    let frame = eth_tcp4();
    assert_eq!(&frame[14 + 10..14 + 12], &[0x12, 0x34]);
    http4(LinkType::Ethernet, &frame);
}

#[test]
fn vlan_single_qinq_and_outermost() {
    let ip = ipv4(6, &tcp_http());
    assert_eq!(
        http4(LinkType::Ethernet, &eth(0x8100, &vlan(100, 0x0800, &ip))),
        Some(100)
    );
    // 802.1ad outer, 802.1Q inner: outermost wins.
    let inner = vlan(200, 0x0800, &ip);
    let qinq = eth(0x88a8, &vlan(100, 0x8100, &inner));
    assert_eq!(http4(LinkType::Ethernet, &qinq), Some(100));
    // Legacy 0x9100 outer.
    let q = eth(0x9100, &vlan(7, 0x8100, &inner));
    assert_eq!(http4(LinkType::Ethernet, &q), Some(7));
    // Stacked 0x8100 twice.
    let q = eth(0x8100, &vlan(4094, 0x8100, &inner));
    assert_eq!(http4(LinkType::Ethernet, &q), Some(4094));
    // Priority tag (VID 0) is not a VLAN: the next tag is recorded.
    let q = eth(0x8100, &vlan(0, 0x8100, &inner));
    assert_eq!(http4(LinkType::Ethernet, &q), Some(200));
    // Truncated tag.
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(0x8100, &[0, 1])),
        A::TruncatedLink
    );
}

#[test]
fn ieee_802_3_llc_snap() {
    let ip = ipv4(6, &tcp_http());
    let mut llc = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
    llc.extend_from_slice(&ip);
    let len = llc.len() as u16;
    let mut frame = eth(len, &llc);
    frame.extend_from_slice(&[0xee; 6]); // trailing junk beyond the 802.3 length
    http4(LinkType::Ethernet, &frame);
    // STP (DSAP 0x42) is not IP.
    not_tcp(LinkType::Ethernet, &eth(38, &[0x42, 0x42, 0x03, 0, 0, 0]));
    // SNAP with a non-ethertype OUI (Cisco CDP).
    not_tcp(
        LinkType::Ethernet,
        &eth(8, &[0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0x00]),
    );
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(5, &[0xaa, 0xaa, 0x03, 0, 0])),
        A::TruncatedLink
    );
}

#[test]
fn mpls_stacks() {
    let ip4 = ipv4(6, &tcp_http());
    let mut m = Vec::new();
    m.extend_from_slice(&mpls_label(100, false));
    m.extend_from_slice(&mpls_label(200, true));
    m.extend_from_slice(&ip4);
    http4(LinkType::Ethernet, &eth(0x8847, &m));
    http4(LinkType::Ethernet, &eth(0x8848, &m));

    let mut m6 = mpls_label(3, true).to_vec();
    m6.extend_from_slice(&ipv6(6, &tcp_http()));
    http6(LinkType::Ethernet, &eth(0x8847, &m6));

    // Pseudowire: control word, then a whole Ethernet frame (with its own VLAN).
    let mut pw = mpls_label(16, true).to_vec();
    pw.extend_from_slice(&[0, 0, 0, 1]);
    pw.extend_from_slice(&eth(0x8100, &vlan(42, 0x0800, &ip4)));
    assert_eq!(http4(LinkType::Ethernet, &eth(0x8847, &pw)), Some(42));

    // Stack without bottom-of-stack bit.
    let mut bad = mpls_label(1, false).to_vec();
    bad.extend_from_slice(&mpls_label(2, false));
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(0x8847, &bad)),
        A::TruncatedLink
    );
    // Unknown payload nibble.
    let mut other = mpls_label(1, true).to_vec();
    other.extend_from_slice(&[0x95; 20]);
    not_tcp(LinkType::Ethernet, &eth(0x8847, &other));
}

#[test]
fn pppoe_session() {
    let ip4 = ipv4(6, &tcp_http());
    let mut s = vec![0x11, 0x00, 0x12, 0x34];
    s.extend_from_slice(&((ip4.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(&[0x00, 0x21]);
    s.extend_from_slice(&ip4);
    let mut frame = eth(0x8864, &s);
    frame.extend_from_slice(&[0; 4]); // padding after the PPPoE length
    http4(LinkType::Ethernet, &frame);

    let ip6 = ipv6(6, &tcp_http());
    let mut s = vec![0x11, 0x00, 0x12, 0x34];
    s.extend_from_slice(&((ip6.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(&[0x00, 0x57]);
    s.extend_from_slice(&ip6);
    http6(LinkType::Ethernet, &eth(0x8864, &s));

    // LCP is not IP; discovery stage ethertype is not handled.
    not_tcp(
        LinkType::Ethernet,
        &eth(0x8864, &[0x11, 0, 0, 1, 0, 6, 0xc0, 0x21, 1, 1, 0, 4]),
    );
    not_tcp(LinkType::Ethernet, &eth(0x8863, &[0x11, 0x09, 0, 0, 0, 0]));
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(0x8864, &[0x11, 0])),
        A::TruncatedLink
    );
}

#[test]
fn ethernet_other_ethertypes_and_truncation() {
    not_tcp(LinkType::Ethernet, &eth(0x0806, &[0; 28])); // ARP
    not_tcp(LinkType::Ethernet, &eth(0x88cc, &[0; 20])); // LLDP
    assert_eq!(anomaly(LinkType::Ethernet, &[0; 13]), A::TruncatedLink);
}

#[test]
fn linux_sll_v1_etherparse_and_hand_built() {
    use etherparse::{LinuxSllPacketType, PacketBuilder};
    let b = PacketBuilder::linux_sll(LinuxSllPacketType::OTHERHOST, 6, [1, 2, 3, 4, 5, 6, 0, 0])
        .ipv4(SRC4, DST4, 20)
        .tcp(SPORT, DPORT, SEQ, WINDOW)
        .ack(ACK)
        .psh();
    let mut frame = Vec::new();
    b.write(&mut frame, HTTP).unwrap();
    assert_eq!(frame.len(), 16 + 20 + 20 + HTTP.len());
    http4(LinkType::LinuxSll, &frame);

    // Cooked capture keeps the VLAN tag as protocol 0x8100 + tag.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x81, 0x00];
    sll.extend_from_slice(&vlan(33, 0x86dd, &ipv6(6, &tcp_http())));
    let mut d = dec();
    let seg = expect_tcp(d.decode(LinkType::LinuxSll, T0, &sll));
    assert_eq!(seg.vlan, Some(33));
    assert_http(&seg, src6(), dst6());

    // Netlink monitor device is never IP.
    let mut nl = vec![0, 4, 0x03, 0x38, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    nl.extend_from_slice(&[0; 20]);
    not_tcp(LinkType::LinuxSll, &nl);
    assert_eq!(anomaly(LinkType::LinuxSll, &[0; 15]), A::TruncatedLink);
}

#[test]
fn linux_sll_v2() {
    let mut f = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
    f.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
    assert_eq!(f.len(), 20);
    f.extend_from_slice(&ipv4(6, &tcp_http()));
    http4(LinkType::LinuxSll2, &f);
    let mut f6 = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    f6.extend_from_slice(&ipv6(6, &tcp_http()));
    http6(LinkType::LinuxSll2, &f6);
    assert_eq!(anomaly(LinkType::LinuxSll2, &[0; 19]), A::TruncatedLink);
}

#[test]
fn null_and_loop_families_both_byte_orders() {
    let ip4 = ipv4(6, &tcp_http());
    let ip6 = ipv6(6, &tcp_http());
    for link in [LinkType::Null, LinkType::Loop] {
        let mut le = 2u32.to_le_bytes().to_vec();
        le.extend_from_slice(&ip4);
        http4(link, &le);
        let mut be = 2u32.to_be_bytes().to_vec();
        be.extend_from_slice(&ip4);
        http4(link, &be);
        for fam in [24u32, 28, 30] {
            let mut f = fam.to_le_bytes().to_vec();
            f.extend_from_slice(&ip6);
            http6(link, &f);
            let mut f = fam.to_be_bytes().to_vec();
            f.extend_from_slice(&ip6);
            http6(link, &f);
        }
        let mut ipx = 23u32.to_le_bytes().to_vec();
        ipx.extend_from_slice(&[0; 30]);
        not_tcp(link, &ipx);
        assert_eq!(anomaly(link, &[2, 0, 0]), A::TruncatedLink);
    }
}

#[test]
fn raw_ip_link_types() {
    let ip4 = ipv4(6, &tcp_http());
    let ip6 = ipv6(6, &tcp_http());
    http4(LinkType::RawIp, &ip4);
    http6(LinkType::RawIp, &ip6);
    http4(LinkType::Ipv4, &ip4);
    http6(LinkType::Ipv6, &ip6);
    assert_eq!(anomaly(LinkType::Ipv4, &ip6), A::BadIpVersion);
    assert_eq!(anomaly(LinkType::Ipv6, &ip4), A::BadIpVersion);
    let mut v5 = ip4.clone();
    v5[0] = 0x55;
    assert_eq!(anomaly(LinkType::RawIp, &v5), A::BadIpVersion);
    assert_eq!(anomaly(LinkType::RawIp, &[]), A::TruncatedIp);
}

fn nflog_tlv(typ: u16, value: &[u8]) -> Vec<u8> {
    let len = (4 + value.len()) as u16;
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(&typ.to_le_bytes());
    v.extend_from_slice(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

#[test]
fn nflog_tlv_walk() {
    let ip4 = ipv4(6, &tcp_http());
    let mut f = vec![2, 0, 0, 1];
    f.extend_from_slice(&nflog_tlv(1, &[0x08, 0x00, 3, 0])); // packet header
    f.extend_from_slice(&nflog_tlv(10, b"prefix\0")); // odd length → padded
    f.extend_from_slice(&nflog_tlv(9, &ip4));
    f.extend_from_slice(&nflog_tlv(11, &[0, 0, 0, 0]));
    http4(LinkType::Nflog, &f);

    let mut f6 = vec![10, 0, 0, 1];
    f6.extend_from_slice(&nflog_tlv(9, &ipv6(6, &tcp_http())));
    http6(LinkType::Nflog, &f6);

    // No payload attribute.
    let mut none = vec![2, 0, 0, 1];
    none.extend_from_slice(&nflog_tlv(10, b"abc"));
    not_tcp(LinkType::Nflog, &none);
    // Attribute length below the TLV header.
    let mut broken = vec![2, 0, 0, 1];
    broken.extend_from_slice(&[2, 0, 9, 0, 0, 0]);
    assert_eq!(anomaly(LinkType::Nflog, &broken), A::BadNflogAttribute);
    // Snaplen cut inside the payload attribute: delivered with missing bytes.
    let mut cut = vec![2, 0, 0, 1];
    cut.extend_from_slice(&nflog_tlv(9, &ip4));
    cut.truncate(4 + 4 + ip4.len() - 5); // drop the padding and 5 payload bytes
    let (_, _, payload, _, missing) = one(LinkType::Nflog, &cut).unwrap();
    assert_eq!(missing, 5);
    assert_eq!(payload, &HTTP[..HTTP.len() - 5]);
}

// ---------------------------------------------------------------------------------------
// IPv4 / IPv6 / TCP details

#[test]
fn ethernet_padding_is_trimmed() {
    let syn = tcp_with(SPORT, DPORT, SEQ, 0, 0x02, &[], &[]);
    let mut frame = eth(0x0800, &ipv4(6, &syn));
    assert_eq!(frame.len(), 54);
    frame.resize(60, 0xaa);
    let (_, _, payload, _, missing) = one(LinkType::Ethernet, &frame).unwrap();
    assert!(payload.is_empty());
    assert_eq!(missing, 0);

    let mut frame = eth(0x0800, &ipv4(6, &tcp_with(1, 2, 3, 4, 0x18, &[], b"ab")));
    frame.resize(64, 0xaa);
    let (_, _, payload, _, _) = one(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(payload, b"ab");

    let mut frame = eth_tcp6();
    frame.extend_from_slice(&[0xaa; 7]);
    let (_, _, payload, _, _) = one(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(payload, HTTP);
}

#[test]
fn snaplen_truncated_payload_sets_missing() {
    let mut frame = eth_tcp4();
    frame.truncate(frame.len() - 10);
    let (_, _, payload, _, missing) = one(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(payload, &HTTP[..HTTP.len() - 10]);
    assert_eq!(missing, 10);

    let mut frame = eth_tcp6();
    frame.truncate(frame.len() - HTTP.len());
    let (_, _, payload, _, missing) = one(LinkType::Ethernet, &frame).unwrap();
    assert!(payload.is_empty());
    assert_eq!(missing as usize, HTTP.len());

    // Cut inside the TCP header.
    let mut frame = eth_tcp4();
    frame.truncate(14 + 20 + 12);
    assert_eq!(anomaly(LinkType::Ethernet, &frame), A::TruncatedTcp);
    // Cut inside TCP options.
    let seg = tcp_with(1, 2, 3, 4, 0x10, &[1, 1, 1, 1, 1, 1, 1, 1], b"xyz");
    let mut frame = eth(0x0800, &ipv4(6, &seg));
    frame.truncate(14 + 20 + 24);
    assert_eq!(anomaly(LinkType::Ethernet, &frame), A::TruncatedTcp);
}

#[test]
fn offload_zero_total_length_uses_captured_length() {
    let mut ip = ipv4(6, &tcp_http());
    ip[2] = 0;
    ip[3] = 0;
    http4(LinkType::RawIp, &ip);
}

#[test]
fn bad_tcp_offsets() {
    let mut seg = tcp_http();
    seg[12] = 4 << 4;
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(0x0800, &ipv4(6, &seg))),
        A::BadTcpHeaderLength
    );
    let mut seg = tcp_with(1, 2, 3, 4, 0x10, &[], &[0; 8]);
    seg[12] = 15 << 4; // 60 bytes, but the segment is 28
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(0x0800, &ipv4(6, &seg))),
        A::BadTcpHeaderLength
    );
    assert_eq!(
        anomaly(LinkType::Ethernet, &eth(0x0800, &ipv4(6, &[0; 19]))),
        A::TruncatedTcp
    );
}

#[test]
fn ipv4_header_anomalies() {
    let good = ipv4(6, &tcp_http());
    let mut ihl4 = good.clone();
    ihl4[0] = 0x44;
    assert_eq!(anomaly(LinkType::RawIp, &ihl4), A::BadIpHeaderLength);
    let mut short_total = good.clone();
    short_total[2] = 0;
    short_total[3] = 19;
    assert_eq!(anomaly(LinkType::RawIp, &short_total), A::BadIpTotalLength);
    assert_eq!(anomaly(LinkType::RawIp, &good[..19]), A::TruncatedIp);
    let mut ihl15 = good[..40].to_vec();
    ihl15[0] = 0x4f;
    assert_eq!(anomaly(LinkType::RawIp, &ihl15), A::TruncatedIp);
    // ICMP is well-formed, not TCP.
    not_tcp(LinkType::RawIp, &ipv4(1, &[8, 0, 0, 0, 0, 0, 0, 0]));
    // Plain UDP (not a tunnel port).
    not_tcp(LinkType::RawIp, &ipv4(17, &udp(53, 53, &[0; 12])));
}

#[test]
fn ipv6_extension_headers() {
    let tcp = tcp_http();
    // HBH → routing → destination options → TCP.
    let mut p = ext6(43, 0);
    p.extend_from_slice(&ext6(60, 2));
    p.extend_from_slice(&ext6(6, 1));
    p.extend_from_slice(&tcp);
    http6(LinkType::RawIp, &ipv6(0, &p));

    // AH (length in 4-byte units minus 2): 24-byte header.
    let mut ah = vec![6, 4, 0, 0];
    ah.resize(24, 0x5a);
    ah.extend_from_slice(&tcp);
    http6(LinkType::RawIp, &ipv6(51, &ah));

    // Atomic fragment (offset 0, M=0) is passed through.
    http6(LinkType::RawIp, &frag6(7, 0, false, 6, &tcp));

    not_tcp(LinkType::RawIp, &ipv6(50, &[0; 40])); // ESP
    not_tcp(LinkType::RawIp, &ipv6(59, &[])); // no next header
    let mut to_nnh = ext6(59, 0);
    to_nnh.extend_from_slice(&[0; 8]);
    not_tcp(LinkType::RawIp, &ipv6(60, &to_nnh));
    not_tcp(LinkType::RawIp, &ipv6(58, &[128, 0, 0, 0])); // ICMPv6

    // Truncated extension header.
    assert_eq!(
        anomaly(LinkType::RawIp, &ipv6(0, &[6, 1, 0, 0, 0, 0, 0, 0])),
        A::TruncatedIpv6Extension
    );
    assert_eq!(
        anomaly(LinkType::RawIp, &ipv6(44, &[6, 0, 0])),
        A::TruncatedIpv6Extension
    );

    // Chain too long: 9 destination-options headers.
    let mut chain = Vec::new();
    for i in 0..9 {
        chain.extend_from_slice(&ext6(if i == 8 { 6 } else { 60 }, 0));
    }
    chain.extend_from_slice(&tcp);
    assert_eq!(
        anomaly(LinkType::RawIp, &ipv6(60, &chain)),
        A::Ipv6ExtensionChainTooLong
    );
    // 8 is still fine.
    let mut chain = Vec::new();
    for i in 0..8 {
        chain.extend_from_slice(&ext6(if i == 7 { 6 } else { 60 }, 0));
    }
    chain.extend_from_slice(&tcp);
    http6(LinkType::RawIp, &ipv6(60, &chain));
}

#[test]
fn ipv6_header_anomalies() {
    let good = ipv6(6, &tcp_http());
    assert_eq!(anomaly(LinkType::Ipv6, &good[..39]), A::TruncatedIp);
    let mut short = good.clone();
    short.truncate(good.len() - 3);
    let (_, _, payload, _, missing) = one(LinkType::Ipv6, &short).unwrap();
    assert_eq!(missing, 3);
    assert_eq!(payload.len(), HTTP.len() - 3);
}
