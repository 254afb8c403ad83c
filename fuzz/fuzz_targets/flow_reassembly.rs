//! Arbitrary TCP segments (flags, sequence numbers, lengths) on a few 4-tuples through the
//! flow table, with tight bounds that must hold.
#![no_main]
use flow::{CloseReason, Direction, FlowAnomaly, FlowConfig, FlowMeta, FlowTable, StreamSink};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use wire::{TcpFlags, TcpSegment, Timestamp};

struct Count(u64);
impl StreamSink for Count {
    type State = ();
    fn open(&mut self, _: &FlowMeta) {}
    fn data(&mut self, _: &mut (), _: &FlowMeta, _: Direction, _: Timestamp, d: &[u8]) {
        self.0 += d.len() as u64;
    }
    fn gap(&mut self, _: &mut (), _: &FlowMeta, _: Direction, _: Timestamp, _: u64) {}
    fn fin(&mut self, _: &mut (), _: &FlowMeta, _: Direction, _: Timestamp) {}
    fn anomaly(&mut self, _: &mut (), _: &FlowMeta, _: Direction, _: FlowAnomaly) {}
    fn close(&mut self, _: (), _: &FlowMeta, _: Timestamp, _: CloseReason) {}
}

fuzz_target!(|data: &[u8]| {
    let cfg = FlowConfig { max_flows: 3, max_buffered_bytes_per_direction: 300, max_buffered_bytes_total: 700, ..FlowConfig::default() };
    let mut table = FlowTable::new(cfg);
    let mut sink = Count(0);
    let payload = [0x41u8; 256];
    for (i, rec) in data.chunks_exact(11).enumerate() {
        let port = 1000 + (rec[0] % 5) as u16;
        let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let to_server = rec[0] & 0x80 == 0;
        let seg = TcpSegment {
            src: if to_server { a } else { b },
            dst: if to_server { b } else { a },
            src_port: if to_server { port } else { 80 },
            dst_port: if to_server { 80 } else { port },
            seq: u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]),
            ack: u32::from_le_bytes([rec[5], rec[6], rec[7], rec[8]]),
            flags: TcpFlags(rec[9]),
            window: 0,
            vlan: None,
            payload: &payload[..rec[10] as usize],
            missing_payload: 0,
        };
        table.process(Timestamp(i as u64 * 1_000_000), &seg, &mut sink);
        assert!(table.len() <= 3);
        assert!(table.stats().buffered_bytes <= 700);
    }
    table.flush_all(Timestamp(u64::MAX / 2), &mut sink);
    assert_eq!(table.stats().buffered_bytes, 0);
});
