//! Frame building by hand: TCP with correct checksums, IPv4/IPv6 with optional
//! fragmentation, and the link layers the sensor reads.

use std::net::{IpAddr, SocketAddr};

use crate::{Dir, Seg};

/// How segments become frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkOpts {
    /// VLAN ids, outermost first: none, one (802.1Q) or two (QinQ: 802.1ad outer tag, 802.1Q
    /// inner). Only for Ethernet, SLL and SLL2.
    pub vlan: Vec<u16>,
    /// If set, an IP datagram whose payload (TCP header + data) exceeds this many bytes is
    /// fragmented, each fragment carrying at most this many payload bytes (rounded down to a
    /// multiple of 8, at least 8).
    pub mtu_payload: Option<usize>,
    /// pcap link type: 1 Ethernet (default), 101 (or 12, 14) raw IP, 113 Linux SLL, 276
    /// Linux SLL2, 0 BSD null (little-endian family), 108 OpenBSD loop.
    pub linktype: u32,
    /// Pad Ethernet frames shorter than 60 bytes with zeros, as received frames are, so the
    /// decoder must use the IP length.
    pub eth_pad: bool,
}

impl Default for LinkOpts {
    fn default() -> Self {
        LinkOpts {
            vlan: Vec::new(),
            mtu_payload: None,
            linktype: 1,
            eth_pad: false,
        }
    }
}

impl LinkOpts {
    pub fn ethernet() -> Self {
        Self::default()
    }

    pub fn with_linktype(linktype: u32) -> Self {
        LinkOpts {
            linktype,
            ..Self::default()
        }
    }

    pub fn vlan(mut self, tags: &[u16]) -> Self {
        self.vlan = tags.to_vec();
        self
    }

    pub fn fragment(mut self, mtu_payload: usize) -> Self {
        self.mtu_payload = Some(mtu_payload);
        self
    }
}

pub(crate) const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub(crate) const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// TCP header (+ MSS option when given) and payload, checksummed for `src` → `dst`.
pub(crate) fn tcp_segment(
    src: SocketAddr,
    dst: SocketAddr,
    seg: &Seg,
    mss: Option<u16>,
) -> Vec<u8> {
    let hlen = if mss.is_some() { 24 } else { 20 };
    let mut t = Vec::with_capacity(hlen + seg.payload.len());
    t.extend_from_slice(&src.port().to_be_bytes());
    t.extend_from_slice(&dst.port().to_be_bytes());
    t.extend_from_slice(&seg.seq.to_be_bytes());
    t.extend_from_slice(&seg.ack.to_be_bytes());
    t.push(((hlen / 4) as u8) << 4);
    t.push(seg.flags);
    t.extend_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    if let Some(m) = mss {
        t.extend_from_slice(&[2, 4]);
        t.extend_from_slice(&m.to_be_bytes());
    }
    t.extend_from_slice(&seg.payload);
    let (s, d) = (ip_bytes(src.ip()), ip_bytes(dst.ip()));
    let mut acc = sum16(sum16(0, &s), &d);
    acc += 6;
    acc += t.len() as u32 & 0xFFFF;
    acc += (t.len() as u32) >> 16;
    acc = sum16(acc, &t);
    let ck = fold(acc);
    t[16..18].copy_from_slice(&ck.to_be_bytes());
    t
}

fn ipv4_header(src: &[u8], dst: &[u8], payload_len: usize, id: u16, frag: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.extend_from_slice(&[0x45, 0]);
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, 6, 0, 0]);
    h.extend_from_slice(src);
    h.extend_from_slice(dst);
    let ck = fold(sum16(0, &h));
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h
}

fn ipv6_header(src: &[u8], dst: &[u8], payload_len: usize, next: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(40);
    h.extend_from_slice(&[0x60, 0, 0, 0]);
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(src);
    h.extend_from_slice(dst);
    h
}

/// IP packets carrying `tcp`, fragmented per `mtu_payload`.
fn ip_packets(
    src: IpAddr,
    dst: IpAddr,
    tcp: &[u8],
    id: u32,
    mtu_payload: Option<usize>,
) -> Vec<Vec<u8>> {
    let (s, d) = (ip_bytes(src), ip_bytes(dst));
    let piece = match mtu_payload {
        Some(m) if tcp.len() > m => (m / 8 * 8).max(8),
        _ => {
            let mut p = if src.is_ipv4() {
                ipv4_header(&s, &d, tcp.len(), id as u16, 0)
            } else {
                ipv6_header(&s, &d, tcp.len(), 6)
            };
            p.extend_from_slice(tcp);
            return vec![p];
        }
    };
    let n = tcp.len().div_ceil(piece);
    let mut out = Vec::with_capacity(n);
    for (k, chunk) in tcp.chunks(piece).enumerate() {
        let offset = k * piece;
        let more = k + 1 < n;
        let mut p = if src.is_ipv4() {
            let frag = ((more as u16) << 13) | (offset / 8) as u16;
            ipv4_header(&s, &d, chunk.len(), id as u16, frag)
        } else {
            let mut p = ipv6_header(&s, &d, 8 + chunk.len(), 44);
            p.extend_from_slice(&[6, 0]);
            p.extend_from_slice(&((((offset / 8) as u16) << 3) | more as u16).to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p
        };
        p.extend_from_slice(chunk);
        out.push(p);
    }
    out
}

fn ethertype(ip: IpAddr) -> u16 {
    if ip.is_ipv4() {
        0x0800
    } else {
        0x86DD
    }
}

/// Protocol field followed by the VLAN tags (each tag: TCI then the next type).
fn tagged_ethertype(out: &mut Vec<u8>, vlan: &[u16], inner: u16) {
    match vlan {
        [] => {}
        [v] => {
            out.extend_from_slice(&0x8100u16.to_be_bytes());
            out.extend_from_slice(&(v & 0x0FFF).to_be_bytes());
        }
        [outer, inner_tag] => {
            out.extend_from_slice(&0x88A8u16.to_be_bytes());
            out.extend_from_slice(&(outer & 0x0FFF).to_be_bytes());
            out.extend_from_slice(&0x8100u16.to_be_bytes());
            out.extend_from_slice(&(inner_tag & 0x0FFF).to_be_bytes());
        }
        _ => panic!("testkit: at most two VLAN tags"),
    }
    out.extend_from_slice(&inner.to_be_bytes());
}

/// The frames (one, or one per fragment) for a TCP segment.
pub(crate) fn frames(
    src: SocketAddr,
    dst: SocketAddr,
    dir: Dir,
    tcp: &[u8],
    id: u32,
    link: &LinkOpts,
) -> Vec<Vec<u8>> {
    let (src_mac, dst_mac) = match dir {
        Dir::ToServer => (CLIENT_MAC, SERVER_MAC),
        Dir::ToClient => (SERVER_MAC, CLIENT_MAC),
    };
    let et = ethertype(src.ip());
    let v6 = src.is_ipv6();
    if !link.vlan.is_empty() {
        assert!(
            matches!(link.linktype, 1 | 113 | 276),
            "testkit: VLAN tags need linktype 1, 113 or 276"
        );
    }
    ip_packets(src.ip(), dst.ip(), tcp, id, link.mtu_payload)
        .into_iter()
        .map(|ip| {
            let mut f = Vec::with_capacity(ip.len() + 32);
            match link.linktype {
                1 => {
                    f.extend_from_slice(&dst_mac);
                    f.extend_from_slice(&src_mac);
                    tagged_ethertype(&mut f, &link.vlan, et);
                    f.extend_from_slice(&ip);
                    if link.eth_pad && f.len() < 60 {
                        f.resize(60, 0);
                    }
                }
                12 | 14 | 101 | 228 | 229 => f.extend_from_slice(&ip),
                113 => {
                    // Captured on the server: packets to it are "to us" (0), its own "outgoing" (4).
                    let pkttype: u16 = if dir == Dir::ToServer { 0 } else { 4 };
                    f.extend_from_slice(&pkttype.to_be_bytes());
                    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                    f.extend_from_slice(&6u16.to_be_bytes());
                    f.extend_from_slice(&src_mac);
                    f.extend_from_slice(&[0, 0]);
                    tagged_ethertype(&mut f, &link.vlan, et);
                    f.extend_from_slice(&ip);
                }
                276 => {
                    // The protocol field holds the first type of the tag chain; the rest
                    // of the chain follows the header.
                    let mut chain = Vec::with_capacity(10);
                    tagged_ethertype(&mut chain, &link.vlan, et);
                    f.extend_from_slice(&chain[..2]);
                    f.extend_from_slice(&[0, 0]);
                    f.extend_from_slice(&1u32.to_be_bytes()); // interface index
                    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                    f.push(if dir == Dir::ToServer { 0 } else { 4 });
                    f.push(6);
                    f.extend_from_slice(&src_mac);
                    f.extend_from_slice(&[0, 0]);
                    f.extend_from_slice(&chain[2..]);
                    f.extend_from_slice(&ip);
                }
                0 => {
                    // BSD null: address family in host (here little-endian) byte order;
                    // AF_INET6 as on Darwin.
                    let af: u32 = if v6 { 30 } else { 2 };
                    f.extend_from_slice(&af.to_le_bytes());
                    f.extend_from_slice(&ip);
                }
                108 => {
                    // OpenBSD loop: network byte order; AF_INET6 is 24 there.
                    let af: u32 = if v6 { 24 } else { 2 };
                    f.extend_from_slice(&af.to_be_bytes());
                    f.extend_from_slice(&ip);
                }
                other => panic!("testkit: cannot render link type {other}"),
            }
            f
        })
        .collect()
}
