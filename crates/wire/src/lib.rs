//! `wire`: turns one captured frame into a TCP segment view, or says why not.
//!
//! It handles the link layers found in pcap files (Ethernet with VLAN/QinQ/MPLS/PPPoE/LLC,
//! Linux SLL/SLL2, BSD null/loop, raw IP, NFLOG), IPv4 and IPv6 (extension headers),
//! bounded IP fragment reassembly, and common tunnels (VXLAN, Geneve, GRE/ERSPAN, Teredo,
//! AYIYA, GTP-U, IP-in-IP), and yields the innermost TCP segment.
//!
//! It is part of the deterministic analysis core and must never: do I/O, read the wall
//! clock (time is the packet [`Timestamp`]), panic on any input bytes, return `Err` for
//! malformed input (that is data: a typed [`DecodeAnomaly`], counted in [`DecodeStats`]),
//! verify checksums (offloaded checksums are invalid in host captures), or allocate per
//! packet in the steady state (only fragment reassembly allocates, within the configured
//! bounds).
//!
//! ```
//! use wire::{DecodeAnomaly, Decoded, Decoder, DecoderConfig, LinkType, Timestamp};
//!
//! let mut decoder = Decoder::new(DecoderConfig::default());
//! let link = LinkType::from_pcap(1);
//! match decoder.decode(link, Timestamp::from_secs(1), &[0u8; 10]) {
//!     Decoded::Tcp(seg) => println!("{}:{} -> {}:{}", seg.src, seg.src_port, seg.dst, seg.dst_port),
//!     Decoded::Malformed(a) => assert_eq!(a, DecodeAnomaly::TruncatedLink),
//!     Decoded::NotTcp | Decoded::FragmentHeld => {}
//! }
//! assert_eq!(decoder.stats().anomaly(DecodeAnomaly::TruncatedLink), 1);
//! ```

pub mod types;
pub use types::*;

mod anomaly;
mod decode;
mod defrag;

pub use anomaly::{DecodeAnomaly, DecodeStats};

use defrag::{Defrag, Limits};

/// Longest IPv6 extension-header chain followed before giving up with
/// [`DecodeAnomaly::Ipv6ExtensionChainTooLong`].
pub const IPV6_MAX_EXTENSION_HEADERS: usize = 8;

/// Link-layer header type of a capture (pcap `LINKTYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback (`LINKTYPE_NULL`, 0): 4-byte address family in host byte order.
    Null,
    /// Ethernet (1).
    Ethernet,
    /// Raw IP (`DLT_RAW` 12/14, `LINKTYPE_RAW` 101): the version nibble decides.
    RawIp,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// OpenBSD loopback (108): 4-byte address family in network byte order.
    Loop,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Linux NFLOG (239).
    Nflog,
    /// Anything else; decoding reports [`DecodeAnomaly::UnknownLinkType`].
    Unknown(u32),
}

impl LinkType {
    pub fn from_pcap(linktype: u32) -> LinkType {
        match linktype {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            108 => LinkType::Loop,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            other => LinkType::Unknown(other),
        }
    }

    /// The pcap `LINKTYPE_*` value (`RawIp` maps to 101).
    pub fn to_pcap(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Loop => 108,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Nflog => 239,
            LinkType::Unknown(v) => v,
        }
    }
}

/// Decoder bounds and switches.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    /// Concurrent IP datagrams under reassembly (oldest evicted beyond this; 0 acts as 1).
    pub max_fragment_sets: usize,
    /// Total fragment payload bytes buffered across all datagrams (oldest evicted beyond this).
    pub max_fragment_bytes: usize,
    /// Largest reassembled datagram payload (bytes after the IP header).
    pub max_datagram_bytes: usize,
    /// Packet time after which an incomplete datagram is dropped, measured from its first
    /// fragment.
    pub fragment_timeout_ns: u64,
    /// Decapsulate tunnels (otherwise tunnel packets are `NotTcp`).
    pub decode_tunnels: bool,
    /// Nested tunnels allowed; one more is [`DecodeAnomaly::TunnelTooDeep`].
    pub max_tunnel_depth: u8,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_fragment_sets: 4096,
            max_fragment_bytes: 16 << 20,
            max_datagram_bytes: 65_535 + 1_024,
            fragment_timeout_ns: 30_000_000_000,
            decode_tunnels: true,
            max_tunnel_depth: 3,
        }
    }
}

/// What one frame turned into.
#[derive(Clone, Debug)]
pub enum Decoded<'a> {
    /// The innermost TCP segment.
    Tcp(TcpSegment<'a>),
    /// Well-formed but not TCP (UDP that is not a tunnel, ICMP, ARP, other ethertypes…).
    NotTcp,
    /// An IP fragment was buffered; nothing to deliver yet.
    FragmentHeld,
    /// Broken input; counted in [`DecodeStats::anomalies`].
    Malformed(DecodeAnomaly),
}

impl<'a> Decoded<'a> {
    pub fn tcp(&self) -> Option<&TcpSegment<'a>> {
        match self {
            Decoded::Tcp(seg) => Some(seg),
            _ => None,
        }
    }

    pub fn into_tcp(self) -> Option<TcpSegment<'a>> {
        match self {
            Decoded::Tcp(seg) => Some(seg),
            _ => None,
        }
    }

    pub fn anomaly(&self) -> Option<DecodeAnomaly> {
        match self {
            Decoded::Malformed(a) => Some(*a),
            _ => None,
        }
    }
}

/// Frame decoder with its fragment pool, counters and reassembly buffers.
pub struct Decoder {
    cfg: DecoderConfig,
    limits: Limits,
    defrag: Defrag,
    stats: DecodeStats,
    /// One reassembly output buffer per possible IP layer (outer + each tunnel).
    bufs: Vec<Vec<u8>>,
}

impl Decoder {
    pub fn new(cfg: DecoderConfig) -> Self {
        let limits = Limits {
            max_sets: cfg.max_fragment_sets,
            max_bytes: cfg.max_fragment_bytes,
            max_datagram: cfg.max_datagram_bytes,
            timeout_ns: cfg.fragment_timeout_ns,
        };
        let bufs = (0..=cfg.max_tunnel_depth).map(|_| Vec::new()).collect();
        Decoder {
            cfg,
            limits,
            defrag: Defrag::default(),
            stats: DecodeStats::default(),
            bufs,
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Decode one frame captured with link type `link` at packet time `ts`.
    ///
    /// The returned segment borrows `frame`, or this decoder's reassembly buffer when the
    /// segment came out of fragment reassembly (that buffer is reused on the next call).
    pub fn decode<'a>(&'a mut self, link: LinkType, ts: Timestamp, frame: &'a [u8]) -> Decoded<'a> {
        let Decoder {
            cfg,
            limits,
            defrag,
            stats,
            bufs,
        } = self;
        stats.packets += 1;
        if !defrag.is_empty() {
            defrag.expire_oldest(ts, limits.timeout_ns, stats);
        }
        let mut ctx = decode::Ctx {
            cfg,
            limits,
            defrag,
            stats,
            bufs: bufs.iter_mut(),
            ts,
            vlan: None,
            depth: 0,
            tunnelled: false,
        };
        let out = decode::run(&mut ctx, link, frame);
        if ctx.tunnelled {
            stats.tunnelled += 1;
        }
        match &out {
            Decoded::Tcp(_) => stats.tcp += 1,
            Decoded::NotTcp => stats.not_tcp += 1,
            Decoded::FragmentHeld => stats.fragments_held += 1,
            Decoded::Malformed(a) => {
                stats.malformed += 1;
                stats.count_anomaly(*a);
            }
        }
        stats.fragment_bytes_held = defrag.held_bytes() as u64;
        out
    }

    /// Drop fragment sets whose first fragment is older than the timeout at `now`
    /// (counted in `fragment_timeouts` and the `fragment_timeout` anomaly).
    pub fn expire(&mut self, now: Timestamp) {
        self.defrag
            .expire_all(now, self.limits.timeout_ns, &mut self.stats);
        self.stats.fragment_bytes_held = self.defrag.held_bytes() as u64;
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Datagrams currently under reassembly.
    pub fn fragment_sets(&self) -> usize {
        self.defrag.set_count()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DecoderConfig::default())
    }
}
