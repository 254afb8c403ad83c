//! Owned batches of decoded TCP segments: how a capture thread hands packets to a flow worker.
//! One allocation per batch (headers and one byte arena), reused after the worker is done.

use std::net::IpAddr;
use std::ops::Range;

use wire::{TcpFlags, TcpSegment, Timestamp};

#[derive(Clone, Debug)]
struct Header {
    ts: Timestamp,
    /// Global sequence number of the packet.
    pkt: u64,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    vlan: Option<u16>,
    missing_payload: u32,
    payload: Range<u32>,
}

/// Segments in capture order, with their payloads copied into one arena.
#[derive(Debug, Default)]
pub struct SegmentBatch {
    headers: Vec<Header>,
    bytes: Vec<u8>,
    /// Packet time of the newest packet the capture side saw for this batch, TCP or not, so
    /// timeouts advance even when the traffic is not TCP.
    pub last_ts: Timestamp,
    /// Global sequence number of the last packet read before this batch was closed: the
    /// boundary at which its worker runs timeouts.
    pub last_seq: u64,
}

impl SegmentBatch {
    pub fn with_capacity(segments: usize, bytes: usize) -> SegmentBatch {
        SegmentBatch {
            headers: Vec::with_capacity(segments),
            bytes: Vec::with_capacity(bytes),
            last_ts: Timestamp::ZERO,
            last_seq: 0,
        }
    }

    /// Adds a segment; `seq` is the global sequence number of its packet.
    pub fn push(&mut self, ts: Timestamp, seq: u64, seg: &TcpSegment<'_>) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(seg.payload);
        self.headers.push(Header {
            ts,
            pkt: seq,
            src: seg.src,
            dst: seg.dst,
            src_port: seg.src_port,
            dst_port: seg.dst_port,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            vlan: seg.vlan,
            missing_payload: seg.missing_payload,
            payload: start..self.bytes.len() as u32,
        });
        self.last_ts = self.last_ts.max(ts);
        self.last_seq = self.last_seq.max(seq);
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    pub fn payload_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn clear(&mut self) {
        self.headers.clear();
        self.bytes.clear();
        self.last_ts = Timestamp::ZERO;
        self.last_seq = 0;
    }

    /// The segments with their packet time and sequence number.
    pub fn iter(&self) -> impl Iterator<Item = (Timestamp, u64, TcpSegment<'_>)> + '_ {
        self.headers.iter().map(move |h| {
            let seg = TcpSegment {
                src: h.src,
                dst: h.dst,
                src_port: h.src_port,
                dst_port: h.dst_port,
                seq: h.seq,
                ack: h.ack,
                flags: h.flags,
                window: h.window,
                vlan: h.vlan,
                payload: &self.bytes[h.payload.start as usize..h.payload.end as usize],
                missing_payload: h.missing_payload,
            };
            (h.ts, h.pkt, seg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_come_back_as_pushed() {
        let mut b = SegmentBatch::with_capacity(4, 64);
        let a = "10.0.0.1".parse().expect("ip");
        let z = "2001:db8::2".parse().expect("ip");
        for (i, p) in [&b"first"[..], b"", b"third!"].into_iter().enumerate() {
            let seg = TcpSegment {
                src: a,
                dst: z,
                src_port: 1000 + i as u16,
                dst_port: 80,
                seq: i as u32 * 7,
                ack: 9,
                flags: TcpFlags(TcpFlags::ACK),
                window: 512,
                vlan: Some(3),
                payload: p,
                missing_payload: i as u32,
            };
            b.push(Timestamp::from_secs(10 + i as u64), 100 + i as u64, &seg);
        }
        let got: Vec<(u64, u16, Vec<u8>, u32)> = b
            .iter()
            .map(|(ts, _, s)| (ts.secs(), s.src_port, s.payload.to_vec(), s.missing_payload))
            .collect();
        assert_eq!(
            got,
            vec![
                (10, 1000, b"first".to_vec(), 0),
                (11, 1001, vec![], 1),
                (12, 1002, b"third!".to_vec(), 2)
            ]
        );
        assert_eq!(b.last_ts, Timestamp::from_secs(12));
        assert_eq!(
            b.iter().map(|(_, q, _)| q).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );
        assert_eq!(b.last_seq, 102);
        b.clear();
        assert!(b.is_empty() && b.payload_bytes() == 0);
    }
}
