//! Feeds arbitrary bytes to both directions of an HTTP connection in arbitrary splits, with gaps.
#![no_main]
use flow::Direction;
use http::{Connection, HttpConfig, HttpStats};
use libfuzzer_sys::fuzz_target;
use wire::Timestamp;

fuzz_target!(|data: &[u8]| {
    let cfg = HttpConfig { max_head_bytes: 2048, max_headers: 16, max_pending: 4, body_keep_bytes: 256, max_decompressed_bytes: 4096, ..HttpConfig::default() };
    let mut conn = Connection::new();
    let mut stats = HttpStats::default();
    let mut out = Vec::new();
    // Each chunk: a control byte (direction, length, gap/fin) then that many bytes.
    let mut rest = data;
    let mut t = 0u64;
    while let Some((&ctl, tail)) = rest.split_first() {
        let dir = if ctl & 1 == 0 { Direction::Orig } else { Direction::Resp };
        let len = ((ctl >> 2) as usize).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        t += 1;
        match ctl & 2 {
            0 => conn.data(&cfg, dir, Timestamp(t), chunk, &mut stats, &mut out),
            _ if chunk.is_empty() => conn.fin(&cfg, dir, Timestamp(t), &mut stats, &mut out),
            _ => conn.gap(&cfg, dir, chunk.len() as u64, &mut stats, &mut out),
        }
        rest = next;
    }
    conn.close(&cfg, Timestamp(t + 1), &mut stats, &mut out);
    assert!(out.len() as u64 <= stats.transactions);
});
