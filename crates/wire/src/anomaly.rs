//! Typed reasons a frame could not be turned into a TCP segment, and the decoder counters.

use std::fmt;

macro_rules! anomalies {
    ($( $(#[$doc:meta])* $name:ident => $s:literal, )*) => {
        /// Why a frame was not delivered (or something that went wrong on the way).
        ///
        /// `as_str` names are stable: they appear in output records.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DecodeAnomaly {
            $( $(#[$doc])* $name, )*
        }

        impl DecodeAnomaly {
            /// Every anomaly, in declaration (and `Ord`) order.
            pub const ALL: &'static [DecodeAnomaly] = &[ $( DecodeAnomaly::$name, )* ];
            /// Number of anomaly kinds (`ALL.len()`).
            pub const COUNT: usize = [ $( $s, )* ].len();

            /// Stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( DecodeAnomaly::$name => $s, )*
                }
            }

            /// Inverse of [`DecodeAnomaly::as_str`].
            pub fn from_name(name: &str) -> Option<DecodeAnomaly> {
                match name {
                    $( $s => Some(DecodeAnomaly::$name), )*
                    _ => None,
                }
            }

            /// Dense index in `0..COUNT` (position in `ALL`).
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

anomalies! {
    /// The link-layer header (Ethernet, VLAN tag, MPLS label, PPPoE, LLC, SLL, NFLOG, null
    /// family…) is cut short.
    TruncatedLink => "truncated_link",
    /// The capture's link type is not one this crate decodes.
    UnknownLinkType => "unknown_link_type",
    /// An NFLOG attribute has a length below the 4-byte TLV header.
    BadNflogAttribute => "bad_nflog_attribute",
    /// Fewer bytes than the fixed IP header (or than the IPv4 IHL) were present.
    TruncatedIp => "truncated_ip",
    /// The IP version nibble is not what the layer below announced (or neither 4 nor 6).
    BadIpVersion => "bad_ip_version",
    /// IPv4 IHL below 5.
    BadIpHeaderLength => "bad_ip_header_length",
    /// IPv4 total length smaller than the header.
    BadIpTotalLength => "bad_ip_total_length",
    /// An IPv6 extension header runs past the end of the packet.
    TruncatedIpv6Extension => "truncated_ipv6_extension",
    /// More IPv6 extension headers than [`crate::IPV6_MAX_EXTENSION_HEADERS`].
    Ipv6ExtensionChainTooLong => "ipv6_extension_chain_too_long",
    /// The TCP header is cut short (by the IP length or the capture snaplen).
    TruncatedTcp => "truncated_tcp",
    /// TCP data offset below 5, or pointing past the segment the IP header declares.
    BadTcpHeaderLength => "bad_tcp_header_length",
    /// The UDP header (looked at for tunnels only) is cut short.
    TruncatedUdp => "truncated_udp",
    /// UDP length field below 8.
    BadUdpLength => "bad_udp_length",
    /// A fragment overlaps buffered data with different bytes (the first data is kept).
    FragmentOverlapMismatch => "fragment_overlap_mismatch",
    /// A fragment reaches beyond `max_datagram_bytes` or is larger than the whole fragment
    /// budget; its datagram is dropped.
    FragmentTooLarge => "fragment_too_large",
    /// A non-final fragment whose length is zero or not a multiple of 8.
    FragmentBadLength => "fragment_bad_length",
    /// Fragments disagree on where the datagram ends.
    FragmentEndConflict => "fragment_end_conflict",
    /// A datagram split into more pieces than the reassembler accepts; dropped.
    FragmentTooMany => "fragment_too_many",
    /// A fragment cut by the capture snaplen; it cannot be reassembled.
    FragmentTruncated => "fragment_truncated",
    /// A second fragment header inside an already reassembled IPv6 datagram.
    NestedFragment => "nested_fragment",
    /// A datagram under reassembly was dropped to respect `max_fragment_sets` or
    /// `max_fragment_bytes` (counted as a side effect; also in `fragment_evictions`).
    FragmentEvicted => "fragment_evicted",
    /// A datagram under reassembly was dropped after `fragment_timeout_ns` of packet time
    /// (counted as a side effect; also in `fragment_timeouts`).
    FragmentTimeout => "fragment_timeout",
    /// More nested tunnels than `max_tunnel_depth`.
    TunnelTooDeep => "tunnel_too_deep",
    /// A tunnel header (GRE, VXLAN, Geneve, GTP-U, ERSPAN) with invalid fields.
    BadTunnelHeader => "bad_tunnel_header",
    /// A tunnel header cut short.
    TruncatedTunnel => "truncated_tunnel",
}

impl fmt::Display for DecodeAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decoder counters. All are monotonic except `fragment_bytes_held` (current value).
///
/// Every packet passed to [`crate::Decoder::decode`] is counted in `packets` and in exactly
/// one of `tcp`, `not_tcp`, `fragments_held`, `malformed`. Every `Malformed(a)` result is
/// counted in `anomalies[a]`; some anomalies are also counted without being the returned
/// result (evictions and timeouts happen to other datagrams; an overlap mismatch on the
/// fragment that completes a datagram still delivers the datagram).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeStats {
    pub packets: u64,
    /// `Decoded::Tcp` results.
    pub tcp: u64,
    /// `Decoded::NotTcp` results.
    pub not_tcp: u64,
    /// `Decoded::FragmentHeld` results.
    pub fragments_held: u64,
    /// `Decoded::Malformed` results.
    pub malformed: u64,
    /// IP fragments seen (atomic IPv6 fragments excluded).
    pub fragments: u64,
    /// Datagrams completed by reassembly.
    pub reassembled: u64,
    /// Packets where at least one tunnel was decapsulated.
    pub tunnelled: u64,
    /// Indexed by [`DecodeAnomaly::index`]; see [`DecodeStats::anomaly_counts`].
    pub anomalies: [u64; DecodeAnomaly::COUNT],
    pub fragment_evictions: u64,
    pub fragment_timeouts: u64,
    /// Fragment payload bytes currently buffered (summed by `merge`).
    pub fragment_bytes_held: u64,
}

impl Default for DecodeStats {
    fn default() -> Self {
        DecodeStats {
            packets: 0,
            tcp: 0,
            not_tcp: 0,
            fragments_held: 0,
            malformed: 0,
            fragments: 0,
            reassembled: 0,
            tunnelled: 0,
            anomalies: [0; DecodeAnomaly::COUNT],
            fragment_evictions: 0,
            fragment_timeouts: 0,
            fragment_bytes_held: 0,
        }
    }
}

impl DecodeStats {
    /// Count of one anomaly.
    pub fn anomaly(&self, a: DecodeAnomaly) -> u64 {
        self.anomalies[a.index()]
    }

    /// Nonzero anomaly counts, in `DecodeAnomaly::ALL` order.
    pub fn anomaly_counts(&self) -> impl Iterator<Item = (DecodeAnomaly, u64)> + '_ {
        DecodeAnomaly::ALL
            .iter()
            .map(move |&a| (a, self.anomalies[a.index()]))
            .filter(|&(_, n)| n != 0)
    }

    /// Sum of all anomaly counters.
    pub fn total_anomalies(&self) -> u64 {
        self.anomalies.iter().sum()
    }

    pub(crate) fn count_anomaly(&mut self, a: DecodeAnomaly) {
        self.anomalies[a.index()] += 1;
    }

    /// Add another decoder's counters into this one (multi-worker summaries).
    pub fn merge(&mut self, other: &DecodeStats) {
        self.packets += other.packets;
        self.tcp += other.tcp;
        self.not_tcp += other.not_tcp;
        self.fragments_held += other.fragments_held;
        self.malformed += other.malformed;
        self.fragments += other.fragments;
        self.reassembled += other.reassembled;
        self.tunnelled += other.tunnelled;
        for (a, b) in self.anomalies.iter_mut().zip(other.anomalies.iter()) {
            *a += *b;
        }
        self.fragment_evictions += other.fragment_evictions;
        self.fragment_timeouts += other.fragment_timeouts;
        self.fragment_bytes_held += other.fragment_bytes_held;
    }
}
