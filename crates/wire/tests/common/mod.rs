//! Hand-rolled frame builders for the wire tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wire::{Decoded, TcpSegment};

pub const SRC4: [u8; 4] = [10, 0, 0, 1];
pub const DST4: [u8; 4] = [10, 0, 0, 2];
pub const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

pub const SPORT: u16 = 40_000;
pub const DPORT: u16 = 80;
pub const SEQ: u32 = 0x0102_0304;
pub const ACK: u32 = 0x0a0b_0c0d;
pub const WINDOW: u16 = 512;
pub const FLAGS_PA: u8 = 0x18;
pub const HTTP: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

pub fn src4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(SRC4))
}
pub fn dst4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(DST4))
}
pub fn src6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(SRC6))
}
pub fn dst6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(DST6))
}

/// TCP header (+ options, length a multiple of 4) + payload.
pub fn tcp_with(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let doff = (20 + opts.len()) / 4;
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.push((doff as u8) << 4);
    v.push(flags);
    v.extend_from_slice(&WINDOW.to_be_bytes());
    v.extend_from_slice(&[0xde, 0xad]); // checksum (never verified)
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(opts);
    v.extend_from_slice(payload);
    v
}

/// The standard test segment carrying `HTTP`.
pub fn tcp_http() -> Vec<u8> {
    tcp_with(SPORT, DPORT, SEQ, ACK, FLAGS_PA, &[], HTTP)
}

pub fn ipv4_full(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    frag: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let ihl = 20 + opts.len();
    let total = (ihl + payload.len()) as u16;
    let mut v = vec![0x40 | (ihl / 4) as u8, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.push(64);
    v.push(proto);
    v.extend_from_slice(&[0x12, 0x34]); // bogus checksum: must not matter
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(opts);
    v.extend_from_slice(payload);
    v
}

pub fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(SRC4, DST4, proto, 1, 0x4000, &[], payload)
}

pub fn ipv4_addrs(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, 1, 0, &[], payload)
}

/// IPv4 fragment of a TCP datagram: `off` in bytes (multiple of 8).
pub fn frag4(id: u16, off: usize, more: bool, data: &[u8]) -> Vec<u8> {
    frag4_proto(id, 6, off, more, data)
}

pub fn frag4_proto(id: u16, proto: u8, off: usize, more: bool, data: &[u8]) -> Vec<u8> {
    assert_eq!(off % 8, 0);
    let field = (off / 8) as u16 | if more { 0x2000 } else { 0 };
    ipv4_full(SRC4, DST4, proto, id, field, &[], data)
}

pub fn ipv6_addrs(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.push(next);
    v.push(64);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

pub fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_addrs(SRC6, DST6, next, payload)
}

/// Generic IPv6 extension header (hop-by-hop / routing / destination options), 8*(1+units)
/// bytes long.
pub fn ext6(next: u8, units: u8) -> Vec<u8> {
    let mut v = vec![next, units];
    v.resize(8 * (units as usize + 1), 0);
    if v.len() >= 4 {
        v[2] = 1; // PadN option
        v[3] = (v.len() - 4) as u8;
    }
    v
}

/// IPv6 fragment header + data.
pub fn frag6_payload(id: u32, off: usize, more: bool, next: u8, data: &[u8]) -> Vec<u8> {
    assert_eq!(off % 8, 0);
    let fo = off as u16 | more as u16;
    let mut v = vec![next, 0];
    v.extend_from_slice(&fo.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(data);
    v
}

pub fn frag6(id: u32, off: usize, more: bool, next: u8, data: &[u8]) -> Vec<u8> {
    ipv6(44, &frag6_payload(id, off, more, next, data))
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&MAC_B);
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// VLAN tag body: TCI + inner ethertype + payload (to follow a 0x8100/0x88a8 ethertype).
pub fn vlan(vid: u16, inner: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x2000 | vid).to_be_bytes()); // PCP 1
    v.extend_from_slice(&inner.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn mpls_label(label: u32, bottom: bool) -> [u8; 4] {
    let w = (label << 12) | if bottom { 0x100 } else { 0 } | 64;
    w.to_be_bytes()
}

/// Ethernet/IPv4/TCP carrying `HTTP`.
pub fn eth_tcp4() -> Vec<u8> {
    eth(0x0800, &ipv4(6, &tcp_http()))
}

pub fn eth_tcp6() -> Vec<u8> {
    eth(0x86dd, &ipv6(6, &tcp_http()))
}

#[track_caller]
pub fn expect_tcp<'a>(d: Decoded<'a>) -> TcpSegment<'a> {
    match d {
        Decoded::Tcp(seg) => seg,
        other => panic!("expected Tcp, got {other:?}"),
    }
}

/// Checks every field of the standard `tcp_http()` segment.
#[track_caller]
pub fn assert_http(seg: &TcpSegment<'_>, src: IpAddr, dst: IpAddr) {
    assert_eq!(seg.src, src);
    assert_eq!(seg.dst, dst);
    assert_eq!(seg.src_port, SPORT);
    assert_eq!(seg.dst_port, DPORT);
    assert_eq!(seg.seq, SEQ);
    assert_eq!(seg.ack, ACK);
    assert_eq!(seg.flags.0, FLAGS_PA);
    assert_eq!(seg.window, WINDOW);
    assert_eq!(seg.payload, HTTP);
    assert_eq!(seg.missing_payload, 0);
}

/// Every packet lands in exactly one outcome counter.
#[track_caller]
pub fn assert_stats_consistent(s: &wire::DecodeStats) {
    assert_eq!(
        s.packets,
        s.tcp + s.not_tcp + s.fragments_held + s.malformed
    );
    assert!(s.total_anomalies() >= s.malformed);
    assert_eq!(
        s.fragment_evictions,
        s.anomaly(wire::DecodeAnomaly::FragmentEvicted)
    );
    assert_eq!(
        s.fragment_timeouts,
        s.anomaly(wire::DecodeAnomaly::FragmentTimeout)
    );
}
