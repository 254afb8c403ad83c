//! The per-frame decoding state machine: link layer → IP → transport → (tunnel → …).
//!
//! Every step consumes at least one byte of the current buffer or switches to a
//! reassembled buffer (at most one per IP layer), so decoding always terminates. All
//! indexing happens after an explicit length check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::slice::IterMut;

use crate::anomaly::{DecodeAnomaly as A, DecodeStats};
use crate::defrag::{Defrag, FragKey, Fragment, Insert, Limits};
use crate::types::{TcpFlags, TcpSegment, Timestamp};
use crate::{Decoded, DecoderConfig, LinkType, IPV6_MAX_EXTENSION_HEADERS};

pub(crate) struct Ctx<'a, 'c> {
    pub cfg: &'c DecoderConfig,
    pub limits: &'c Limits,
    pub defrag: &'c mut Defrag,
    pub stats: &'c mut DecodeStats,
    /// Reassembly output buffers not yet used by this packet.
    pub bufs: IterMut<'a, Vec<u8>>,
    pub ts: Timestamp,
    pub vlan: Option<u16>,
    pub depth: u8,
    pub tunnelled: bool,
}

enum Next<'a> {
    Ether(&'a [u8]),
    EtherType(u16, &'a [u8]),
    Llc(&'a [u8]),
    Mpls(&'a [u8]),
    Ip(&'a [u8]),
    Ipv4(&'a [u8]),
    Ipv6(&'a [u8]),
    Done(Decoded<'a>),
}

const NOT_TCP: Next<'static> = Next::Done(Decoded::NotTcp);

#[inline]
fn bad<'a>(a: A) -> Next<'a> {
    Next::Done(Decoded::Malformed(a))
}

/// Callers check `i + 2 <= d.len()` first.
#[inline]
fn be16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

/// Callers check `i + 4 <= d.len()` first.
#[inline]
fn be32(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]])
}

/// `d` cut to `len` when it holds at least that much.
#[inline]
fn cut(d: &[u8], len: usize) -> &[u8] {
    d.get(..len).unwrap_or(d)
}

pub(crate) fn run<'a>(ctx: &mut Ctx<'a, '_>, link: LinkType, frame: &'a [u8]) -> Decoded<'a> {
    let mut next = link_layer(link, frame);
    loop {
        next = match next {
            Next::Done(d) => return d,
            Next::Ether(d) => ethernet(d),
            Next::EtherType(t, d) => ethertype(ctx, t, d),
            Next::Llc(d) => llc(d),
            Next::Mpls(d) => mpls(d),
            Next::Ip(d) => ip_by_version(d),
            Next::Ipv4(d) => ipv4(ctx, d),
            Next::Ipv6(d) => ipv6(ctx, d),
        };
    }
}

// ---------------------------------------------------------------------------------------
// Link layers

fn link_layer(link: LinkType, frame: &[u8]) -> Next<'_> {
    match link {
        LinkType::Ethernet => Next::Ether(frame),
        LinkType::RawIp => Next::Ip(frame),
        LinkType::Ipv4 => Next::Ipv4(frame),
        LinkType::Ipv6 => Next::Ipv6(frame),
        LinkType::Null | LinkType::Loop => null_family(frame),
        LinkType::LinuxSll => sll(frame),
        LinkType::LinuxSll2 => sll2(frame),
        LinkType::Nflog => nflog(frame),
        LinkType::Unknown(_) => bad(A::UnknownLinkType),
    }
}

/// BSD null / OpenBSD loop: a 4-byte address family, accepted in either byte order.
fn null_family(frame: &[u8]) -> Next<'_> {
    if frame.len() < 4 {
        return bad(A::TruncatedLink);
    }
    let b = [frame[0], frame[1], frame[2], frame[3]];
    let rest = &frame[4..];
    for family in [u32::from_be_bytes(b), u32::from_le_bytes(b)] {
        match family {
            2 => return Next::Ipv4(rest),
            24 | 28 | 30 => return Next::Ipv6(rest),
            _ => {}
        }
    }
    NOT_TCP
}

const ARPHRD_NETLINK: u16 = 824;

fn sll(frame: &[u8]) -> Next<'_> {
    if frame.len() < 16 {
        return bad(A::TruncatedLink);
    }
    sll_protocol(be16(frame, 2), be16(frame, 14), &frame[16..])
}

fn sll2(frame: &[u8]) -> Next<'_> {
    if frame.len() < 20 {
        return bad(A::TruncatedLink);
    }
    sll_protocol(be16(frame, 8), be16(frame, 0), &frame[20..])
}

fn sll_protocol(hatype: u16, proto: u16, rest: &[u8]) -> Next<'_> {
    if hatype == ARPHRD_NETLINK {
        return NOT_TCP;
    }
    match proto {
        0x0004 => Next::Llc(rest), // ETH_P_802_2
        p if p >= 0x0600 => Next::EtherType(p, rest),
        _ => NOT_TCP,
    }
}

const NFULA_PAYLOAD: u16 = 9;

/// NFLOG: 4-byte header then TLVs (host-order, taken as little-endian, padded to 4).
fn nflog(frame: &[u8]) -> Next<'_> {
    if frame.len() < 4 {
        return bad(A::TruncatedLink);
    }
    let mut d = &frame[4..];
    while d.len() >= 4 {
        let len = u16::from_le_bytes([d[0], d[1]]) as usize;
        let typ = u16::from_le_bytes([d[2], d[3]]) & 0x3fff;
        if len < 4 {
            return bad(A::BadNflogAttribute);
        }
        if typ == NFULA_PAYLOAD {
            // A snaplen cut may shorten the attribute: deliver what was captured.
            return Next::Ip(&d[4..len.min(d.len())]);
        }
        if len > d.len() {
            return bad(A::TruncatedLink);
        }
        let step = (len + 3) & !3;
        d = d.get(step..).unwrap_or(&[]);
    }
    NOT_TCP
}

fn ethernet(d: &[u8]) -> Next<'_> {
    if d.len() < 14 {
        return bad(A::TruncatedLink);
    }
    let t = be16(d, 12);
    let rest = &d[14..];
    if t >= 0x0600 {
        Next::EtherType(t, rest)
    } else if t <= 1500 {
        // 802.3: `t` is the length of the LLC frame.
        Next::Llc(cut(rest, t as usize))
    } else {
        NOT_TCP
    }
}

/// 802.2 LLC, with SNAP carrying an ethertype.
fn llc(d: &[u8]) -> Next<'_> {
    if d.len() < 3 {
        return bad(A::TruncatedLink);
    }
    match (d[0], d[1], d[2]) {
        (0xaa, 0xaa, 0x03) => {
            if d.len() < 8 {
                return bad(A::TruncatedLink);
            }
            // RFC 1042 (OUI 0) and 802.1H (OUI 00-00-f8) carry an ethertype.
            if d[3] == 0 && d[4] == 0 && (d[5] == 0 || d[5] == 0xf8) {
                Next::EtherType(be16(d, 6), &d[8..])
            } else {
                NOT_TCP
            }
        }
        (0x06, 0x06, 0x03) => Next::Ipv4(&d[3..]),
        _ => NOT_TCP,
    }
}

fn ethertype<'a>(ctx: &mut Ctx<'a, '_>, t: u16, d: &'a [u8]) -> Next<'a> {
    match t {
        0x0800 => Next::Ipv4(d),
        0x86dd => Next::Ipv6(d),
        0x8100 | 0x88a8 | 0x9100 | 0x9200 | 0x9300 => {
            if d.len() < 4 {
                return bad(A::TruncatedLink);
            }
            let vid = be16(d, 0) & 0x0fff;
            // VLAN id 0 is a priority tag, not a VLAN.
            if ctx.vlan.is_none() && vid != 0 {
                ctx.vlan = Some(vid);
            }
            let inner = be16(d, 2);
            let rest = &d[4..];
            if inner >= 0x0600 {
                Next::EtherType(inner, rest)
            } else if inner <= 1500 {
                Next::Llc(cut(rest, inner as usize))
            } else {
                NOT_TCP
            }
        }
        0x8847 | 0x8848 => Next::Mpls(d),
        0x8864 => pppoe(d),
        0x6558 => Next::Ether(d),
        _ => NOT_TCP,
    }
}

/// MPLS label stack; after bottom-of-stack the first nibble tells IPv4 / IPv6 / pseudowire
/// control word (then Ethernet).
fn mpls(mut d: &[u8]) -> Next<'_> {
    loop {
        if d.len() < 4 {
            return bad(A::TruncatedLink);
        }
        let bottom = d[2] & 1 != 0;
        d = &d[4..];
        if bottom {
            break;
        }
    }
    if d.is_empty() {
        return bad(A::TruncatedLink);
    }
    match d[0] >> 4 {
        4 => Next::Ipv4(d),
        6 => Next::Ipv6(d),
        0 => {
            if d.len() < 4 {
                return bad(A::TruncatedLink);
            }
            Next::Ether(&d[4..])
        }
        _ => NOT_TCP,
    }
}

/// PPPoE session stage.
fn pppoe(d: &[u8]) -> Next<'_> {
    if d.len() < 6 {
        return bad(A::TruncatedLink);
    }
    if d[0] != 0x11 || d[1] != 0x00 {
        return NOT_TCP;
    }
    let len = be16(d, 4) as usize;
    ppp(cut(&d[6..], len))
}

fn ppp(d: &[u8]) -> Next<'_> {
    if d.is_empty() {
        return bad(A::TruncatedLink);
    }
    // Protocol-field compression: an odd first byte is a 1-byte protocol.
    let (proto, rest) = if d[0] & 1 == 1 {
        (d[0] as u16, &d[1..])
    } else {
        if d.len() < 2 {
            return bad(A::TruncatedLink);
        }
        (be16(d, 0), &d[2..])
    };
    match proto {
        0x0021 => Next::Ipv4(rest),
        0x0057 => Next::Ipv6(rest),
        0x0281 | 0x0283 => Next::Mpls(rest),
        _ => NOT_TCP,
    }
}

// ---------------------------------------------------------------------------------------
// IP

fn ip_by_version(d: &[u8]) -> Next<'_> {
    match d.first().map(|b| b >> 4) {
        None => bad(A::TruncatedIp),
        Some(4) => Next::Ipv4(d),
        Some(6) => Next::Ipv6(d),
        Some(_) => bad(A::BadIpVersion),
    }
}

/// (end of the IP datagram within the captured bytes, bytes declared but not captured)
#[inline]
fn clamp_len(declared: usize, captured: usize) -> (usize, usize) {
    if declared <= captured {
        (declared, 0)
    } else {
        (captured, declared - captured)
    }
}

fn ipv4<'a>(ctx: &mut Ctx<'a, '_>, d: &'a [u8]) -> Next<'a> {
    if d.len() < 20 {
        return bad(A::TruncatedIp);
    }
    if d[0] >> 4 != 4 {
        return bad(A::BadIpVersion);
    }
    let ihl = (d[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return bad(A::BadIpHeaderLength);
    }
    if d.len() < ihl {
        return bad(A::TruncatedIp);
    }
    let total = match be16(d, 2) as usize {
        // Segmentation offload: the length is filled in by the NIC; use what was captured.
        0 => d.len(),
        n => n,
    };
    if total < ihl {
        return bad(A::BadIpTotalLength);
    }
    let (end, missing) = clamp_len(total, d.len());
    let payload = &d[ihl..end];
    let proto = d[9];
    let src = IpAddr::V4(Ipv4Addr::new(d[12], d[13], d[14], d[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(d[16], d[17], d[18], d[19]));
    let frag = be16(d, 6);
    let more = frag & 0x2000 != 0;
    let off = (frag & 0x1fff) as usize * 8;
    if more || off != 0 {
        let key = FragKey {
            src,
            dst,
            id: be16(d, 4) as u32,
            proto,
        };
        return match reassemble(ctx, key, off, more, proto, payload, missing) {
            Ok((proto, data)) => transport(ctx, proto, src, dst, data, 0),
            Err(done) => Next::Done(done),
        };
    }
    transport(ctx, proto, src, dst, payload, missing)
}

fn ipv6<'a>(ctx: &mut Ctx<'a, '_>, d: &'a [u8]) -> Next<'a> {
    if d.len() < 40 {
        return bad(A::TruncatedIp);
    }
    if d[0] >> 4 != 6 {
        return bad(A::BadIpVersion);
    }
    let captured = d.len() - 40;
    let plen = match be16(d, 4) as usize {
        // Jumbogram or segmentation offload: use what was captured.
        0 => captured,
        n => n,
    };
    let (plen, mut missing) = clamp_len(plen, captured);
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[8..24]);
    let src = IpAddr::V6(Ipv6Addr::from(a));
    a.copy_from_slice(&d[24..40]);
    let dst = IpAddr::V6(Ipv6Addr::from(a));
    let mut next = d[6];
    let mut p = &d[40..40 + plen];
    let mut exts = 0usize;
    let mut reassembled = false;
    loop {
        match next {
            // Hop-by-hop, routing, destination options, AH.
            0 | 43 | 60 | 51 => {
                exts += 1;
                if exts > IPV6_MAX_EXTENSION_HEADERS {
                    return bad(A::Ipv6ExtensionChainTooLong);
                }
                if p.len() < 2 {
                    return bad(A::TruncatedIpv6Extension);
                }
                let hl = if next == 51 {
                    (p[1] as usize + 2) * 4
                } else {
                    (p[1] as usize + 1) * 8
                };
                if p.len() < hl {
                    return bad(A::TruncatedIpv6Extension);
                }
                next = p[0];
                p = &p[hl..];
            }
            // Fragment.
            44 => {
                exts += 1;
                if exts > IPV6_MAX_EXTENSION_HEADERS {
                    return bad(A::Ipv6ExtensionChainTooLong);
                }
                if p.len() < 8 {
                    return bad(A::TruncatedIpv6Extension);
                }
                let frag_next = p[0];
                let fo = be16(p, 2);
                let off = (fo & 0xfff8) as usize;
                let more = fo & 1 != 0;
                let id = be32(p, 4);
                let rest = &p[8..];
                if off == 0 && !more {
                    // Atomic fragment (RFC 6946): not part of any reassembly.
                    next = frag_next;
                    p = rest;
                    continue;
                }
                if reassembled {
                    return bad(A::NestedFragment);
                }
                let key = FragKey {
                    src,
                    dst,
                    id,
                    proto: 0,
                };
                match reassemble(ctx, key, off, more, frag_next, rest, missing) {
                    Ok((proto, data)) => {
                        next = proto;
                        p = data;
                        missing = 0;
                        reassembled = true;
                    }
                    Err(done) => return Next::Done(done),
                }
            }
            // ESP, no next header.
            50 | 59 => return NOT_TCP,
            _ => return transport(ctx, next, src, dst, p, missing),
        }
    }
}

/// Feed one fragment to the pool. `Ok` carries the protocol and payload of a completed
/// datagram (borrowing one of the decoder's buffers); `Err` is the result to return.
fn reassemble<'a>(
    ctx: &mut Ctx<'a, '_>,
    key: FragKey,
    off: usize,
    more: bool,
    proto: u8,
    data: &[u8],
    missing: usize,
) -> Result<(u8, &'a [u8]), Decoded<'a>> {
    ctx.stats.fragments += 1;
    if missing > 0 {
        return Err(Decoded::Malformed(A::FragmentTruncated));
    }
    // One buffer per IP layer is allocated; running out cannot happen within the
    // tunnel depth limit.
    let Some(out) = ctx.bufs.next() else {
        return Err(Decoded::Malformed(A::TunnelTooDeep));
    };
    let frag = Fragment {
        key,
        off,
        more,
        proto,
        data,
    };
    match ctx.defrag.insert(ctx.limits, ctx.stats, ctx.ts, frag, out) {
        Insert::Held { mismatch: false } => Err(Decoded::FragmentHeld),
        Insert::Held { mismatch: true } => Err(Decoded::Malformed(A::FragmentOverlapMismatch)),
        Insert::Rejected(a) => Err(Decoded::Malformed(a)),
        Insert::Complete { mismatch, proto } => {
            if mismatch {
                ctx.stats.count_anomaly(A::FragmentOverlapMismatch);
            }
            let out: &'a Vec<u8> = out;
            Ok((proto, out.as_slice()))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Transport and tunnels

fn transport<'a>(
    ctx: &mut Ctx<'a, '_>,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    p: &'a [u8],
    missing: usize,
) -> Next<'a> {
    match proto {
        6 => Next::Done(tcp(ctx.vlan, src, dst, p, missing)),
        17 => udp(ctx, p),
        47 => gre(ctx, p),
        4 if ctx.cfg.decode_tunnels => enter_tunnel(ctx, Next::Ipv4(p)),
        41 if ctx.cfg.decode_tunnels => enter_tunnel(ctx, Next::Ipv6(p)),
        _ => NOT_TCP,
    }
}

fn tcp(vlan: Option<u16>, src: IpAddr, dst: IpAddr, p: &[u8], missing: usize) -> Decoded<'_> {
    if p.len() < 20 {
        return Decoded::Malformed(A::TruncatedTcp);
    }
    let doff = (p[12] >> 4) as usize * 4;
    if doff < 20 {
        return Decoded::Malformed(A::BadTcpHeaderLength);
    }
    if doff > p.len() {
        // Past what was captured of a longer segment: a snaplen cut; otherwise the
        // offset points beyond the segment itself.
        return Decoded::Malformed(if missing > 0 {
            A::TruncatedTcp
        } else {
            A::BadTcpHeaderLength
        });
    }
    Decoded::Tcp(TcpSegment {
        src,
        dst,
        src_port: be16(p, 0),
        dst_port: be16(p, 2),
        seq: be32(p, 4),
        ack: be32(p, 8),
        flags: TcpFlags(p[13]),
        window: be16(p, 14),
        vlan,
        payload: &p[doff..],
        missing_payload: u32::try_from(missing).unwrap_or(u32::MAX),
    })
}

/// Account for one more level of encapsulation, then continue with `inner`.
fn enter_tunnel<'a>(ctx: &mut Ctx<'a, '_>, inner: Next<'a>) -> Next<'a> {
    if let Next::Done(_) = inner {
        return inner;
    }
    if ctx.depth >= ctx.cfg.max_tunnel_depth {
        return bad(A::TunnelTooDeep);
    }
    ctx.depth += 1;
    ctx.tunnelled = true;
    inner
}

const PORT_VXLAN: u16 = 4789;
const PORT_VXLAN_LINUX: u16 = 8472;
const PORT_GENEVE: u16 = 6081;
const PORT_GTPU: u16 = 2152;
const PORT_TEREDO: u16 = 3544;
const PORT_AYIYA: u16 = 5072;
/// GRE-in-UDP (RFC 8086).
const PORT_GRE_UDP: u16 = 4754;

/// UDP is only looked into for tunnels.
fn udp<'a>(ctx: &mut Ctx<'a, '_>, p: &'a [u8]) -> Next<'a> {
    if !ctx.cfg.decode_tunnels {
        return NOT_TCP;
    }
    if p.len() < 8 {
        return bad(A::TruncatedUdp);
    }
    let sport = be16(p, 0);
    let dport = be16(p, 2);
    let body = match be16(p, 4) as usize {
        // Zero length (jumbogram / offload): use what was captured.
        0 => &p[8..],
        n if n < 8 => return bad(A::BadUdpLength),
        n => cut(&p[8..], n - 8),
    };
    let inner = if dport == PORT_VXLAN || dport == PORT_VXLAN_LINUX {
        vxlan(body)
    } else if dport == PORT_GENEVE {
        geneve(body)
    } else if sport == PORT_GTPU || dport == PORT_GTPU {
        gtpu(body)
    } else if sport == PORT_TEREDO || dport == PORT_TEREDO {
        teredo(body)
    } else if sport == PORT_AYIYA || dport == PORT_AYIYA {
        ayiya(body)
    } else if dport == PORT_GRE_UDP {
        gre_inner(body)
    } else if looks_like_bare_ipv6(body) {
        // Teredo after the qualification exchange runs between arbitrary ports (client and
        // relay); a UDP payload that is exactly one well-formed IPv6 packet is taken as Teredo.
        Next::Ipv6(body)
    } else {
        return NOT_TCP;
    };
    enter_tunnel(ctx, inner)
}

fn vxlan(b: &[u8]) -> Next<'_> {
    if b.len() < 8 {
        return bad(A::TruncatedTunnel);
    }
    if b[0] & 0x08 == 0 {
        return bad(A::BadTunnelHeader);
    }
    Next::Ether(&b[8..])
}

fn geneve(b: &[u8]) -> Next<'_> {
    if b.len() < 8 {
        return bad(A::TruncatedTunnel);
    }
    if b[0] >> 6 != 0 {
        return bad(A::BadTunnelHeader);
    }
    let hl = 8 + (b[0] & 0x3f) as usize * 4;
    if b.len() < hl {
        return bad(A::TruncatedTunnel);
    }
    match be16(b, 2) {
        0x6558 => Next::Ether(&b[hl..]),
        0x0800 => Next::Ipv4(&b[hl..]),
        0x86dd => Next::Ipv6(&b[hl..]),
        _ => NOT_TCP,
    }
}

/// GTPv1-U G-PDU carrying IP.
fn gtpu(b: &[u8]) -> Next<'_> {
    if b.len() < 8 {
        return bad(A::TruncatedTunnel);
    }
    let flags = b[0];
    // Version 1, protocol type GTP, message type G-PDU; anything else is signalling.
    if flags >> 5 != 1 || flags & 0x10 == 0 || b[1] != 0xff {
        return NOT_TCP;
    }
    let b = cut(b, 8 + be16(b, 2) as usize);
    let mut off = 8;
    if flags & 0x07 != 0 {
        if b.len() < 12 {
            return bad(A::TruncatedTunnel);
        }
        let mut next_ext = b[11];
        off = 12;
        while next_ext != 0 {
            let Some(&units) = b.get(off) else {
                return bad(A::TruncatedTunnel);
            };
            let len = units as usize * 4;
            if len == 0 {
                return bad(A::BadTunnelHeader);
            }
            if off + len > b.len() {
                return bad(A::TruncatedTunnel);
            }
            next_ext = b[off + len - 1];
            off += len;
        }
    }
    let inner = &b[off..];
    match inner.first().map(|v| v >> 4) {
        Some(4) => Next::Ipv4(inner),
        Some(6) => Next::Ipv6(inner),
        _ => NOT_TCP,
    }
}

/// Teredo: optional authentication and origin-indication headers, then IPv6. Port 3544 is
/// only a hint, so anything that does not look like IPv6 is `NotTcp`.
fn teredo(mut b: &[u8]) -> Next<'_> {
    if b.len() >= 4 && b[0] == 0 && b[1] == 1 {
        // Authentication: id len, auth len, id, auth value, nonce (8), confirmation (1).
        let hl = 4 + b[2] as usize + b[3] as usize + 9;
        let Some(rest) = b.get(hl..) else {
            return NOT_TCP;
        };
        b = rest;
    }
    if b.len() >= 8 && b[0] == 0 && b[1] == 0 {
        // Origin indication: port (2), address (4).
        b = &b[8..];
    }
    if b.len() < 40 || b[0] >> 4 != 6 {
        return NOT_TCP;
    }
    Next::Ipv6(b)
}

/// A UDP payload that is exactly one IPv6 packet: version 6, payload length matching to the
/// byte, and a next header that starts a real packet. Random UDP data passes this by chance
/// about once in 2^20 packets, and then only costs a failed TCP decode.
fn looks_like_bare_ipv6(b: &[u8]) -> bool {
    b.len() >= 40
        && b[0] >> 4 == 6
        && be16(b, 4) as usize + 40 == b.len()
        && matches!(b[6], 0 | 6 | 17 | 43 | 44 | 58 | 59 | 60)
}

/// AYIYA (anything in anything): forward operations carrying IPv4/IPv6.
fn ayiya(b: &[u8]) -> Next<'_> {
    if b.len() < 8 {
        return NOT_TCP;
    }
    let id_len = 1usize << (b[0] >> 4);
    let sig_len = (b[1] >> 4) as usize * 4;
    let opcode = b[2] & 0x0f;
    let next = b[3];
    if opcode != 1 || (next != 4 && next != 41) {
        return NOT_TCP;
    }
    let Some(inner) = b.get(8 + id_len + sig_len..) else {
        return bad(A::TruncatedTunnel);
    };
    if next == 4 {
        Next::Ipv4(inner)
    } else {
        Next::Ipv6(inner)
    }
}

fn gre<'a>(ctx: &mut Ctx<'a, '_>, p: &'a [u8]) -> Next<'a> {
    if !ctx.cfg.decode_tunnels {
        return NOT_TCP;
    }
    let inner = gre_inner(p);
    enter_tunnel(ctx, inner)
}

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;

fn gre_inner(p: &[u8]) -> Next<'_> {
    if p.len() < 4 {
        return bad(A::TruncatedTunnel);
    }
    let flags = be16(p, 0);
    let proto = be16(p, 2);
    match flags & 0x7 {
        0 => {}
        1 => return NOT_TCP, // enhanced GRE (PPTP)
        _ => return bad(A::BadTunnelHeader),
    }
    let mut off = 4;
    if flags & (GRE_C | GRE_R) != 0 {
        off += 4; // checksum + offset
    }
    if flags & GRE_K != 0 {
        off += 4;
    }
    let seq = flags & GRE_S != 0;
    if seq {
        off += 4;
    }
    if flags & GRE_R != 0 {
        // RFC 1701 source route entries, ended by a null entry.
        loop {
            if off + 4 > p.len() {
                return bad(A::TruncatedTunnel);
            }
            let family = be16(p, off);
            let len = p[off + 3] as usize;
            off += 4 + len;
            if family == 0 && len == 0 {
                break;
            }
        }
    }
    let Some(inner) = p.get(off..) else {
        return bad(A::TruncatedTunnel);
    };
    match proto {
        0x0800 => Next::Ipv4(inner),
        0x86dd => Next::Ipv6(inner),
        0x6558 => Next::Ether(inner),
        0x8847 | 0x8848 => Next::Mpls(inner),
        // ERSPAN type I has no sequence number and no ERSPAN header.
        0x88be if !seq => Next::Ether(inner),
        0x88be => erspan2(inner),
        0x22eb => erspan3(inner),
        _ => NOT_TCP,
    }
}

fn erspan2(b: &[u8]) -> Next<'_> {
    if b.len() < 8 {
        return bad(A::TruncatedTunnel);
    }
    if b[0] >> 4 != 1 {
        return bad(A::BadTunnelHeader);
    }
    Next::Ether(&b[8..])
}

fn erspan3(b: &[u8]) -> Next<'_> {
    if b.len() < 12 {
        return bad(A::TruncatedTunnel);
    }
    if b[0] >> 4 != 2 {
        return bad(A::BadTunnelHeader);
    }
    let w = be16(b, 10);
    let frame_type = (w >> 10) & 0x1f;
    // O bit: an 8-byte platform-specific subheader follows.
    let hl = if w & 1 != 0 { 20 } else { 12 };
    let Some(inner) = b.get(hl..) else {
        return bad(A::TruncatedTunnel);
    };
    match frame_type {
        0 => Next::Ether(inner),
        2 => Next::Ip(inner),
        _ => NOT_TCP,
    }
}
