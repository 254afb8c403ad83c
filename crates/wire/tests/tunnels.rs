//! Tunnel decapsulation: the inner TCP segment is delivered.

mod common;

use common::*;
use wire::{DecodeAnomaly as A, Decoded, Decoder, DecoderConfig, LinkType, Timestamp};

const T0: Timestamp = Timestamp(1);
const OUT_SRC: [u8; 4] = [192, 0, 2, 1];
const OUT_DST: [u8; 4] = [192, 0, 2, 2];

fn outer_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4_addrs(OUT_SRC, OUT_DST, 17, &udp(sport, dport, payload)),
    )
}

fn outer_ip(proto: u8, payload: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4_addrs(OUT_SRC, OUT_DST, proto, payload))
}

fn inner4() -> Vec<u8> {
    ipv4(6, &tcp_http())
}

fn inner6() -> Vec<u8> {
    ipv6(6, &tcp_http())
}

/// Decodes with default config and checks the inner segment and the tunnel counter.
#[track_caller]
fn inner_http(frame: &[u8], v6: bool) -> Option<u16> {
    let mut d = Decoder::default();
    let seg = expect_tcp(d.decode(LinkType::Ethernet, T0, frame));
    if v6 {
        assert_http(&seg, src6(), dst6());
    } else {
        assert_http(&seg, src4(), dst4());
    }
    let vlan = seg.vlan;
    assert_eq!(d.stats().tunnelled, 1);
    vlan
}

#[track_caller]
fn result(frame: &[u8]) -> Decoded<'static> {
    let mut d = Decoder::default();
    let out = match d.decode(LinkType::Ethernet, T0, frame) {
        Decoded::Tcp(_) => panic!("unexpected Tcp"),
        Decoded::NotTcp => Decoded::NotTcp,
        Decoded::FragmentHeld => Decoded::FragmentHeld,
        Decoded::Malformed(a) => Decoded::Malformed(a),
    };
    assert_stats_consistent(d.stats());
    out
}

#[track_caller]
fn is_anomaly(frame: &[u8], want: A) {
    let got = result(frame);
    assert_eq!(got.anomaly(), Some(want), "{got:?}");
}

#[track_caller]
fn is_not_tcp(frame: &[u8]) {
    let got = result(frame);
    assert!(matches!(got, Decoded::NotTcp), "{got:?}");
}

fn vxlan_hdr(flags: u8) -> Vec<u8> {
    vec![flags, 0, 0, 0, 0x12, 0x34, 0x56, 0]
}

#[test]
fn vxlan() {
    let mut vx = vxlan_hdr(0x08);
    vx.extend_from_slice(&eth(0x8100, &vlan(300, 0x0800, &inner4())));
    inner_http(&outer_udp(55_000, 4789, &vx), false);
    // Linux legacy port; the outer VLAN is kept over the inner one.
    let outer = eth(
        0x8100,
        &vlan(
            5,
            0x0800,
            &ipv4_addrs(OUT_SRC, OUT_DST, 17, &udp(1, 8472, &vx)),
        ),
    );
    assert_eq!(inner_http(&outer, false), Some(5));
    // Without an outer VLAN the inner one is the outermost seen.
    assert_eq!(inner_http(&outer_udp(55_000, 4789, &vx), false), Some(300));

    let mut no_i = vxlan_hdr(0x00);
    no_i.extend_from_slice(&eth(0x0800, &inner4()));
    is_anomaly(&outer_udp(1, 4789, &no_i), A::BadTunnelHeader);
    is_anomaly(&outer_udp(1, 4789, &[0x08, 0, 0]), A::TruncatedTunnel);
}

#[test]
fn geneve_with_options() {
    let mut g = vec![0x02, 0x00, 0x65, 0x58, 0, 0, 9, 0];
    g.extend_from_slice(&[0x01, 0x02, 0x80, 0x01, 0xaa, 0xbb, 0xcc, 0xdd]); // 8 option bytes
    g.extend_from_slice(&eth(0x86dd, &inner6()));
    inner_http(&outer_udp(3333, 6081, &g), true);

    let mut g = vec![0x00, 0x00, 0x08, 0x00, 0, 0, 9, 0];
    g.extend_from_slice(&inner4());
    inner_http(&outer_udp(3333, 6081, &g), false);

    is_anomaly(
        &outer_udp(3333, 6081, &[0x40, 0, 0x65, 0x58, 0, 0, 0, 0]),
        A::BadTunnelHeader,
    );
    is_anomaly(
        &outer_udp(3333, 6081, &[0x04, 0, 0x65, 0x58, 0, 0, 0, 0, 1, 2]),
        A::TruncatedTunnel,
    );
}

#[test]
fn gre_variants() {
    // Plain GRE, IPv4 inside.
    let mut g = vec![0, 0, 0x08, 0x00];
    g.extend_from_slice(&inner4());
    inner_http(&outer_ip(47, &g), false);
    // The same GRE packet inside UDP (RFC 8086, port 4754).
    inner_http(&outer_udp(50_000, 4754, &g), false);

    // Checksum + key + sequence, IPv6 inside.
    let mut g = vec![0xb0, 0x00, 0x86, 0xdd];
    g.extend_from_slice(&[0xff; 12]);
    g.extend_from_slice(&inner6());
    inner_http(&outer_ip(47, &g), true);

    // Transparent Ethernet bridging with a key.
    let mut g = vec![0x20, 0x00, 0x65, 0x58, 0, 0, 0, 1];
    g.extend_from_slice(&eth(0x0800, &inner4()));
    inner_http(&outer_ip(47, &g), false);

    // MPLS over GRE.
    let mut g = vec![0, 0, 0x88, 0x47];
    g.extend_from_slice(&mpls_label(1000, true));
    g.extend_from_slice(&inner4());
    inner_http(&outer_ip(47, &g), false);

    // RFC 1701 routing present: one SRE then the null SRE.
    let mut g = vec![0x40, 0x00, 0x08, 0x00, 0, 0, 0, 0];
    g.extend_from_slice(&[0x08, 0x00, 0, 4, 1, 2, 3, 4]);
    g.extend_from_slice(&[0, 0, 0, 0]);
    g.extend_from_slice(&inner4());
    inner_http(&outer_ip(47, &g), false);

    // GRE over IPv6.
    let mut g = vec![0, 0, 0x08, 0x00];
    g.extend_from_slice(&inner4());
    let frame = eth(0x86dd, &ipv6_addrs([0xfe; 16], [0xfd; 16], 47, &g));
    inner_http(&frame, false);

    // Enhanced GRE (PPTP) is not decoded; other versions are broken.
    is_not_tcp(&outer_ip(
        47,
        &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0],
    ));
    is_anomaly(&outer_ip(47, &[0x00, 0x02, 0x08, 0x00]), A::BadTunnelHeader);
    is_anomaly(&outer_ip(47, &[0x00, 0x00, 0x08]), A::TruncatedTunnel);
    is_anomaly(
        &outer_ip(47, &[0xb0, 0x00, 0x08, 0x00, 0, 0]),
        A::TruncatedTunnel,
    );
    is_not_tcp(&outer_ip(47, &[0, 0, 0x12, 0x34, 1, 2, 3, 4]));
}

#[test]
fn erspan_types() {
    let inner_eth = eth(0x8100, &vlan(77, 0x0800, &inner4()));
    // Type I: no sequence number, no ERSPAN header.
    let mut g = vec![0x00, 0x00, 0x88, 0xbe];
    g.extend_from_slice(&inner_eth);
    assert_eq!(inner_http(&outer_ip(47, &g), false), Some(77));

    // Type II.
    let mut g = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
    g.extend_from_slice(&[0x10, 0x64, 0x00, 0x05, 0, 0, 0, 0]);
    g.extend_from_slice(&inner_eth);
    inner_http(&outer_ip(47, &g), false);
    let mut bad = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
    bad.extend_from_slice(&[0x20, 0x64, 0x00, 0x05, 0, 0, 0, 0]);
    bad.extend_from_slice(&inner_eth);
    is_anomaly(&outer_ip(47, &bad), A::BadTunnelHeader);

    // Type III, without and with the platform-specific subheader.
    let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
    g.extend_from_slice(&[0x20, 0x64, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0x00, 0x00]);
    g.extend_from_slice(&inner_eth);
    inner_http(&outer_ip(47, &g), false);
    let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
    g.extend_from_slice(&[0x20, 0x64, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0x00, 0x01]);
    g.extend_from_slice(&[9; 8]);
    g.extend_from_slice(&inner_eth);
    inner_http(&outer_ip(47, &g), false);
    // Type III, frame type 2 (IP).
    let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
    g.extend_from_slice(&[0x20, 0x64, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0x08, 0x00]);
    g.extend_from_slice(&inner6());
    inner_http(&outer_ip(47, &g), true);
    let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
    g.extend_from_slice(&[0x20, 0x64, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0x00, 0x01]);
    is_anomaly(&outer_ip(47, &g), A::TruncatedTunnel);
}

#[test]
fn teredo() {
    inner_http(&outer_udp(3544, 40_000, &inner6()), true);
    // Origin indication.
    let mut t = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
    t.extend_from_slice(&inner6());
    inner_http(&outer_udp(40_000, 3544, &t), true);
    // Authentication (id len 2, auth len 3) then origin indication.
    let mut t = vec![0, 1, 2, 3, 0xa, 0xb, 1, 2, 3];
    t.extend_from_slice(&[7; 8]); // nonce
    t.push(0); // confirmation
    t.extend_from_slice(&[0, 0, 0x12, 0x34, 1, 2, 3, 4]);
    t.extend_from_slice(&inner6());
    inner_http(&outer_udp(3544, 40_000, &t), true);
    // After qualification Teredo runs between arbitrary ports: a bare IPv6 packet is enough.
    inner_http(&outer_udp(3797, 32_900, &inner6()), true);
    // ...but only an exact one: a length that does not match is plain UDP.
    let mut longer = inner6();
    longer.push(0);
    is_not_tcp(&outer_udp(3797, 32_900, &longer));
    // Not IPv6 on the Teredo port: just UDP.
    is_not_tcp(&outer_udp(3544, 40_000, &[0x45; 60]));
    is_not_tcp(&outer_udp(3544, 40_000, &[0, 1, 200, 200, 0, 0]));
}

#[test]
fn ayiya() {
    // id len 2^4 = 16, signature 5*4 = 20, opcode forward, next header IPv6.
    let mut a = vec![0x42, 0x52, 0x21, 41, 0, 0, 0, 1];
    a.extend_from_slice(&[1; 16]);
    a.extend_from_slice(&[2; 20]);
    a.extend_from_slice(&inner6());
    inner_http(&outer_udp(5072, 5072, &a), true);
    let mut a4 = vec![0x00, 0x00, 0x01, 4, 0, 0, 0, 1, 0xee];
    a4.extend_from_slice(&inner4());
    inner_http(&outer_udp(5072, 9000, &a4), false);
    // Heartbeat (opcode 0) carries nothing.
    is_not_tcp(&outer_udp(5072, 5072, &[0x42, 0x52, 0x20, 59, 0, 0, 0, 1]));
    is_anomaly(
        &outer_udp(5072, 5072, &[0x42, 0x52, 0x21, 41, 0, 0, 0, 1, 5]),
        A::TruncatedTunnel,
    );
}

fn gtp(flags: u8, msg: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, msg];
    v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 42]);
    v.extend_from_slice(rest);
    v
}

#[test]
fn gtp_u() {
    inner_http(&outer_udp(2152, 2152, &gtp(0x30, 0xff, &inner4())), false);
    // Sequence number present.
    let mut r = vec![0, 7, 0, 0];
    r.extend_from_slice(&inner6());
    inner_http(&outer_udp(2152, 2152, &gtp(0x32, 0xff, &r)), true);
    // PDU session container extension header (type 0x85), then none.
    let mut r = vec![0, 0, 0, 0x85, 1, 0x10, 0x05, 0x00];
    r.extend_from_slice(&inner4());
    inner_http(&outer_udp(2152, 2152, &gtp(0x34, 0xff, &r)), false);
    // Trailing bytes beyond the GTP length are cut.
    let mut g = gtp(0x30, 0xff, &inner4());
    g.extend_from_slice(&[0xaa; 5]);
    inner_http(&outer_udp(2152, 2152, &g), false);

    is_not_tcp(&outer_udp(2152, 2152, &gtp(0x32, 0x01, &[0, 1, 0, 0]))); // echo request
    is_not_tcp(&outer_udp(2152, 2152, &gtp(0x48, 0xff, &inner4()))); // GTPv2
    let mut r = vec![0, 0, 0, 0x85, 0, 0, 0, 0];
    r.extend_from_slice(&inner4());
    is_anomaly(
        &outer_udp(2152, 2152, &gtp(0x34, 0xff, &r)),
        A::BadTunnelHeader,
    );
    is_anomaly(
        &outer_udp(2152, 2152, &gtp(0x34, 0xff, &[0, 0, 0, 0x85, 3, 0])),
        A::TruncatedTunnel,
    );
}

#[test]
fn ip_in_ip() {
    inner_http(&outer_ip(4, &inner4()), false);
    inner_http(&outer_ip(41, &inner6()), true);
    let frame = eth(0x86dd, &ipv6_addrs([0xfe; 16], [0xfd; 16], 4, &inner4()));
    inner_http(&frame, false);
    let frame = eth(0x86dd, &ipv6_addrs([0xfe; 16], [0xfd; 16], 41, &inner6()));
    inner_http(&frame, true);
    // Broken inner header.
    is_anomaly(&outer_ip(4, &inner4()[..10]), A::TruncatedIp);
}

#[test]
fn tunnels_disabled() {
    let mut d = Decoder::new(DecoderConfig {
        decode_tunnels: false,
        ..DecoderConfig::default()
    });
    let mut vx = vxlan_hdr(0x08);
    vx.extend_from_slice(&eth(0x0800, &inner4()));
    let mut g = vec![0, 0, 0x08, 0x00];
    g.extend_from_slice(&inner4());
    for f in [
        outer_udp(1, 4789, &vx),
        outer_ip(47, &g),
        outer_ip(4, &inner4()),
        outer_ip(41, &inner6()),
        outer_udp(1, 4789, &[1]), // not even looked at
    ] {
        let out = d.decode(LinkType::Ethernet, T0, &f);
        assert!(matches!(out, Decoded::NotTcp), "{out:?}");
    }
    assert_eq!(d.stats().tunnelled, 0);
    assert_eq!(d.stats().not_tcp, 5);
}

fn nest_ipip(levels: usize) -> Vec<u8> {
    let mut p = inner4();
    for _ in 0..levels {
        p = ipv4_addrs(OUT_SRC, OUT_DST, 4, &p);
    }
    p
}

#[test]
fn depth_limit() {
    let mut d = Decoder::default();
    // Outer IP + 3 tunnels: allowed with the default depth 3.
    let ok = nest_ipip(3);
    assert_http(
        &expect_tcp(d.decode(LinkType::RawIp, T0, &ok)),
        src4(),
        dst4(),
    );
    let deep = nest_ipip(4);
    assert_eq!(
        d.decode(LinkType::RawIp, T0, &deep).anomaly(),
        Some(A::TunnelTooDeep)
    );
    assert_eq!(d.stats().tunnelled, 2, "counted once per packet");

    let mut d0 = Decoder::new(DecoderConfig {
        max_tunnel_depth: 0,
        ..DecoderConfig::default()
    });
    assert_eq!(
        d0.decode(LinkType::RawIp, T0, &nest_ipip(1)).anomaly(),
        Some(A::TunnelTooDeep)
    );
    let plain = inner4();
    assert!(d0.decode(LinkType::RawIp, T0, &plain).tcp().is_some());
}

#[test]
fn mixed_nesting() {
    // IPv6 / GRE / Ethernet / IPv4 / UDP / VXLAN / Ethernet / IPv4 / TCP
    let mut vx = vxlan_hdr(0x08);
    vx.extend_from_slice(&eth(0x0800, &inner4()));
    let mid = eth(
        0x0800,
        &ipv4_addrs(OUT_SRC, OUT_DST, 17, &udp(7, 4789, &vx)),
    );
    let mut g = vec![0, 0, 0x65, 0x58];
    g.extend_from_slice(&mid);
    let frame = eth(0x86dd, &ipv6_addrs([0xfe; 16], [0xfd; 16], 47, &g));
    inner_http(&frame, false);
}

#[test]
fn udp_anomalies() {
    let mut bad_len = udp(1, 4789, &[0; 16]);
    bad_len[4] = 0;
    bad_len[5] = 7;
    is_anomaly(&outer_ip(17, &bad_len), A::BadUdpLength);
    is_anomaly(&outer_ip(17, &[0, 1, 0x12]), A::TruncatedUdp);
    // Bytes after the UDP length (inside the IP length) do not disturb the tunnel.
    let mut vx = vxlan_hdr(0x08);
    vx.extend_from_slice(&eth(0x0800, &inner4()));
    let mut u = udp(1, 4789, &vx);
    u.extend_from_slice(&[0xaa; 9]);
    inner_http(&outer_ip(17, &u), false);
}
