//! Time the analysis stage alone: parse a capture into transactions once, prepare them as the
//! flow workers do (timed apart: that work is the workers'), then feed them to a fresh analyzer
//! (inventory and features) several times and print nanoseconds per transaction (best of the
//! runs).
//!
//! `cargo run --release -p inventory --example observe_cost -- FILE.pcap [RUNS]`

use std::time::Instant;

// The binary's allocator, so allocations cost here what they cost in the pipeline.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per batch: about what a worker hands on per batch of 256 packets (the default) on
/// keep-alive API traffic, where a transaction is about three packets.
const BATCH: usize = 96;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: observe_cost FILE.pcap [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut reader = capture::FileReader::open(std::path::Path::new(&path)).expect("open");
    let mut engine = engine::Engine::new(engine::EngineConfig::default());
    let mut records = Vec::new();
    while let Ok(Some(p)) = reader.next_packet() {
        engine.packet(
            wire::LinkType::from_pcap(p.linktype),
            p.ts,
            p.data,
            &mut records,
        );
    }
    engine.finish(&mut records);
    let cfg = http::HttpConfig::default();
    let mut decoders = http::Decoders::default();
    for r in records.iter_mut() {
        r.tx.decode_bodies_with(&cfg, &mut decoders);
    }
    let mut best = f64::MAX;
    let mut best_prepare = f64::MAX;
    for _ in 0..runs {
        for r in records.iter_mut() {
            r.notes = None;
        }
        let mut inv = inventory::Analyzer::new(
            inventory::InventoryConfig::default(),
            inventory::profile::ProfileLimits::default(),
        );
        // What the flow workers do for this analyzer, timed apart.
        let started = Instant::now();
        let mut preparer = inv.preparer();
        for r in records.iter_mut() {
            r.prepared = preparer.prepare(&r.flow, &r.tx);
        }
        best_prepare =
            best_prepare.min(started.elapsed().as_nanos() as f64 / records.len().max(1) as f64);
        let started = Instant::now();
        let mut notes = 0usize;
        // In the batches the pipeline hands the analysis stage.
        for batch in records.chunks_mut(BATCH) {
            let mut written = Vec::with_capacity(batch.len());
            inv.observe_batch(batch, |i, _, a, _features, _profiler| {
                written.push((i, a.notes()));
            });
            for (i, n) in written {
                notes += usize::from(n.route.is_some());
                batch[i].notes = Some(n);
            }
        }
        let ns = started.elapsed().as_nanos() as f64 / records.len().max(1) as f64;
        best = best.min(ns);
        eprintln!(
            "{} transactions, {notes} routed, {ns:.0} ns each",
            records.len()
        );
    }
    println!(
        "best {best:.0} ns per transaction in the analysis stage, after {best_prepare:.0} ns \
         each in a flow worker"
    );
}
