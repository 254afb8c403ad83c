//! Public value types shared by every stage: packet time, TCP segment views, typed anomalies.

use std::fmt;
use std::net::IpAddr;

/// Packet time in nanoseconds since the Unix epoch. The analysis core never reads the wall
/// clock: every timeout and window is measured in this time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as u64),
        )
    }
    pub fn from_secs(secs: u64) -> Self {
        Self::from_secs_nanos(secs, 0)
    }
    pub fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    pub fn subsec_nanos(self) -> u32 {
        (self.0 % 1_000_000_000) as u32
    }
    /// Nanoseconds from `earlier` to `self`, zero when `earlier` is later (capture clocks step back).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
    pub fn plus_nanos(self, nanos: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos))
    }
}

/// TCP header flags.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::SYN, 'S'),
            (Self::ACK, 'A'),
            (Self::FIN, 'F'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::URG, 'U'),
        ];
        for (bit, c) in names {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One decoded TCP segment. `payload` borrows either the packet or the decoder's
/// reassembly buffer (for a reassembled IP fragment set).
#[derive(Clone, Debug)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Outermost 802.1Q VLAN id, if any.
    pub vlan: Option<u16>,
    /// TCP payload, already cut to the IP total length (Ethernet padding removed) and to
    /// what was captured.
    pub payload: &'a [u8],
    /// Payload bytes the IP header claims but the capture did not contain (snaplen cut).
    pub missing_payload: u32,
}
