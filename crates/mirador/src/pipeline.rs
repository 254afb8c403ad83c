//! The pipeline `replay` and `run` share: capture → workers sharded by a symmetric flow hash
//! → analysis (ordered merge for replay) → output. Bounded queues between every stage;
//! capture never blocks in live mode (a full worker queue drops the batch and counts it),
//! and blocks in replay (a file can wait). Batches and records go back to the thread that
//! allocated them, so the steady state allocates little and frees locally. With the inventory
//! on, the workers also prepare each transaction's table-free analysis (`inventory::Preparer`)
//! so that the one analysis stage does only what needs its tables.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Result};
use capture::{RawPacket, ReaderStats};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use engine::{Engine, EngineConfig, EngineStats, Order, SegmentBatch, TxRecord};
use wire::{Decoded, LinkType, TcpSegment, Timestamp};

use crate::metrics::Metrics;

/// What a source's read produced.
pub enum ReadStatus {
    /// Some packets (possibly zero on a quiet link: check the stop flag and come back).
    Packets,
    /// No more packets will come (end of the files).
    End,
}

/// A packet source the capture thread drives: capture files or a live interface.
pub trait Source: Send {
    /// Reads up to `max` packets, handing each to `f` (borrowed for the call).
    fn read(&mut self, max: usize, f: &mut dyn FnMut(RawPacket<'_>)) -> Result<ReadStatus>;
    /// Reader statistics (files) so far.
    fn reader_stats(&self) -> ReaderStats {
        ReaderStats::default()
    }
    /// Warnings to report at the end (damaged files).
    fn warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Kernel drop counters (live), to publish as metrics: (received, dropped).
    fn kernel_stats(&mut self) -> Option<(u64, u64)> {
        None
    }
}

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub workers: usize,
    /// Batches in flight per worker queue.
    pub queue_batches: usize,
    /// Replay: block when a queue is full (nothing is lost); live: drop and count.
    pub lossless: bool,
    /// Segments per capture → worker hand-off (all workers get a batch at each boundary).
    pub batch_segments: usize,
    pub engine: EngineConfig,
    /// Undo content codings in the analysis stage with these limits.
    pub decode: Option<http::HttpConfig>,
    /// The API inventory every analysis shard feeds (and annotates records from), if on.
    pub inventory: Option<Arc<Mutex<inventory::Analyzer>>>,
    /// Detection after the inventory (needs it), if on.
    pub detect: Option<Arc<Mutex<detect::Detect>>>,
    /// Analysis shards keyed by client address (live only: replay merges into one order).
    pub analysis_shards: usize,
}

/// Worker → analysis messages in flight, per worker, live (drops when full) and in replay
/// (blocks when full: a short queue keeps the records in flight, and the memory, small).
const ANALYSIS_QUEUE: usize = 1024;
const REPLAY_ANALYSIS_QUEUE: usize = 4;

/// Records leaving the pipeline, in order (replay) or as they come (live).
pub type RecordBatch = Vec<TxRecord>;

/// What the pipeline hands back at the end.
pub struct Finished {
    pub engine: EngineStats,
    pub reader: ReaderStats,
    pub warnings: Vec<String>,
    /// CPU time each stage's threads used, in seconds: which stage bounds the rate.
    pub stage_cpu: StageCpu,
}

/// CPU seconds by pipeline stage (summed over the stage's threads).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageCpu {
    pub capture: f64,
    pub workers: f64,
    pub analysis: f64,
}

/// CPU time the calling thread has used so far, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

/// The symmetric flow hash that picks a segment's worker: both directions of a connection
/// land on the same worker. Keyed with fixed seeds: the placement must not vary between runs.
fn worker_of(seg: &TcpSegment<'_>, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let a = (seg.src, seg.src_port);
    let b = (seg.dst, seg.dst_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = ahash::RandomState::with_seeds(7, 11, 13, 17).build_hasher();
    for (ip, port) in [lo, hi] {
        match ip {
            IpAddr::V4(v) => h.write(&v.octets()),
            IpAddr::V6(v) => h.write(&v.octets()),
        }
        h.write_u16(port);
    }
    (h.finish() % workers as u64) as usize
}

/// What the capture thread reports when it ends: reader and decoder counters, warnings.
type CaptureEnd = (ReaderStats, wire::DecodeStats, Vec<String>);

/// The analysis shard of a transaction: by client address, so a client's transactions meet.
fn shard_of(rec: &TxRecord, shards: usize) -> usize {
    let mut h = ahash::RandomState::with_seeds(3, 5, 7, 9).build_hasher();
    match rec.flow.client.ip() {
        IpAddr::V4(v) => h.write(&v.octets()),
        IpAddr::V6(v) => h.write(&v.octets()),
    }
    (h.finish() % shards as u64) as usize
}

/// A segment batch and when capture handed it over (queue latency).
type Stamped = (Instant, SegmentBatch);

struct WorkerOut {
    sent: Instant,
    origin: u16,
    records: RecordBatch,
    /// Everything this worker will ever emit has an order at or after this.
    watermark: Order,
}

/// A running pipeline.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    /// Each thread hands back its CPU seconds with its result.
    capture: Option<JoinHandle<(Result<CaptureEnd>, f64)>>,
    workers: Vec<JoinHandle<(EngineStats, f64)>>,
    analysis: Vec<JoinHandle<f64>>,
    /// Record batches for the output stage.
    pub records: Receiver<RecordBatch>,
    /// Emptied record batches go back here (the records in them are dropped by their worker).
    recycle: Sender<RecordBatch>,
}

impl Pipeline {
    pub fn start(
        cfg: PipelineConfig,
        mut source: Box<dyn Source>,
        metrics: Arc<Metrics>,
    ) -> Result<Pipeline> {
        let n = cfg.workers.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let (seg_back_tx, seg_back_rx) = bounded::<SegmentBatch>(n * (cfg.queue_batches + 2));
        let mut to_workers = Vec::with_capacity(n);
        let mut worker_rx = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = bounded::<Stamped>(cfg.queue_batches);
            to_workers.push(tx);
            worker_rx.push(rx);
        }
        // Messages in flight to analysis: live boundaries are small and frequent (one per read),
        // so the queue is deep in messages; what it holds is bounded by the records per boundary.
        let depth = if cfg.lossless {
            REPLAY_ANALYSIS_QUEUE
        } else {
            ANALYSIS_QUEUE
        };
        let shards = if cfg.lossless {
            1
        } else {
            cfg.analysis_shards.max(1)
        };
        let mut to_shards = Vec::with_capacity(shards);
        let mut shard_rx = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, rx) = bounded::<WorkerOut>(n * depth);
            to_shards.push(tx);
            shard_rx.push(rx);
        }
        let (records_tx, records_rx) = bounded::<RecordBatch>(8 * shards);
        let (recycle_tx, recycle_rx) = bounded::<RecordBatch>(16);
        // Per-worker queues of records to drop where they were allocated.
        let mut worker_free_tx = Vec::with_capacity(n);
        let mut worker_free_rx = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = bounded::<RecordBatch>(8);
            worker_free_tx.push(tx);
            worker_free_rx.push(rx);
        }

        // Capture.
        let capture = {
            let stop = stop.clone();
            let metrics = metrics.clone();
            let decoder_cfg = cfg.engine.decoder.clone();
            let lossless = cfg.lossless;
            let batch_segments = cfg.batch_segments.max(1);
            std::thread::Builder::new()
                .name("mirador-capture".into())
                .spawn(move || {
                    let end = capture_loop(
                        &mut *source,
                        decoder_cfg,
                        to_workers,
                        seg_back_rx,
                        batch_segments,
                        lossless,
                        &stop,
                        &metrics,
                    );
                    (end, thread_cpu_seconds())
                })?
        };

        // Workers.
        let mut workers = Vec::with_capacity(n);
        for (id, (rx, free_rx)) in worker_rx.into_iter().zip(worker_free_rx).enumerate() {
            let engine_cfg = cfg.engine.clone();
            let to_analysis = to_shards.clone();
            let seg_back = seg_back_tx.clone();
            let metrics = metrics.clone();
            let lossless = cfg.lossless;
            let preparer = cfg
                .inventory
                .as_ref()
                .map(|a| a.lock().unwrap_or_else(|e| e.into_inner()).preparer());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("mirador-worker-{id}"))
                    .spawn(move || {
                        let stats = worker_loop(
                            id as u16,
                            engine_cfg,
                            rx,
                            seg_back,
                            to_analysis,
                            free_rx,
                            lossless,
                            preparer,
                            &metrics,
                        );
                        (stats, thread_cpu_seconds())
                    })?,
            );
        }
        drop(to_shards);

        // Analysis: in replay one stage merges the workers' streams back into one order; live,
        // shards each take the transactions of their share of clients. Both undo content
        // codings. Emptied record batches come back to whichever shard is free, which sorts
        // the records back to the workers that made them.
        let ordered = cfg.lossless;
        let mut analysis = Vec::with_capacity(shards);
        for (i, rx) in shard_rx.into_iter().enumerate() {
            let stage = Stage {
                decode: cfg.decode.clone(),
                inventory: cfg.inventory.clone(),
                detect: cfg.detect.clone(),
            };
            let metrics = metrics.clone();
            let (out, recycle, free) = (
                records_tx.clone(),
                recycle_rx.clone(),
                worker_free_tx.clone(),
            );
            analysis.push(
                std::thread::Builder::new()
                    .name(format!("mirador-analysis-{i}"))
                    .spawn(move || {
                        analysis_loop(n, ordered, rx, out, recycle, free, stage, &metrics);
                        thread_cpu_seconds()
                    })?,
            );
        }
        drop(records_tx);

        Ok(Pipeline {
            stop,
            capture: Some(capture),
            workers,
            analysis,
            records: records_rx,
            recycle: recycle_tx,
        })
    }

    /// Asks the capture side to stop reading; the rest drains.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Gives an emptied record batch back (its records are freed by the worker that made them).
    pub fn recycle(&self, batch: RecordBatch) {
        let _ = self.recycle.try_send(batch);
    }

    /// Waits for every stage to end (after the source ended or `stop` was set and the output
    /// side drained `records`).
    pub fn join(mut self) -> Result<Finished> {
        let (end, capture_cpu) = self
            .capture
            .take()
            .ok_or_else(|| anyhow!("pipeline already joined"))?
            .join()
            .map_err(|_| anyhow!("the capture thread panicked"))?;
        let (reader, decode, warnings) = end?;
        let mut stage_cpu = StageCpu {
            capture: capture_cpu,
            ..StageCpu::default()
        };
        let mut engine = EngineStats::default();
        for w in self.workers.drain(..) {
            let (stats, cpu) = w.join().map_err(|_| anyhow!("a worker thread panicked"))?;
            engine.merge(&stats);
            stage_cpu.workers += cpu;
        }
        engine.decode = decode;
        for a in self.analysis.drain(..) {
            stage_cpu.analysis += a
                .join()
                .map_err(|_| anyhow!("an analysis thread panicked"))?;
        }
        Ok(Finished {
            engine,
            reader,
            warnings,
            stage_cpu,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn capture_loop(
    source: &mut dyn Source,
    decoder_cfg: wire::DecoderConfig,
    to_workers: Vec<Sender<Stamped>>,
    recycled: Receiver<SegmentBatch>,
    batch_segments: usize,
    lossless: bool,
    stop: &AtomicBool,
    metrics: &Metrics,
) -> Result<CaptureEnd> {
    let n = to_workers.len();
    let mut decoder = wire::Decoder::new(decoder_cfg);
    let new_batch = || SegmentBatch::with_capacity(batch_segments, batch_segments * 600);
    let mut batches: Vec<SegmentBatch> = (0..n).map(|_| new_batch()).collect();
    let mut pending = 0usize;
    let mut seq = 0u64;
    let mut last_ts = Timestamp::ZERO;
    let mut next_expire = Timestamp::ZERO;
    let mut bytes = 0u64;
    // Closes the boundary: every worker gets its batch (maybe empty: it carries time).
    let flush = |batches: &mut Vec<SegmentBatch>, seq: u64, last_ts: Timestamp| -> bool {
        for (w, slot) in batches.iter_mut().enumerate() {
            let next = match recycled.try_recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                Err(_) => new_batch(),
            };
            let mut full = std::mem::replace(slot, next);
            full.last_seq = seq;
            full.last_ts = full.last_ts.max(last_ts);
            let segments = full.len() as u64;
            if lossless {
                if to_workers[w].send((Instant::now(), full)).is_err() {
                    return false;
                }
            } else {
                match to_workers[w].try_send((Instant::now(), full)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        metrics
                            .queue_dropped_batches
                            .fetch_add(1, Ordering::Relaxed);
                        metrics
                            .queue_dropped_segments
                            .fetch_add(segments, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
        }
        true
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let status = source.read(batch_segments, &mut |pkt| {
            seq += 1;
            bytes += pkt.data.len() as u64;
            last_ts = last_ts.max(pkt.ts);
            if let Decoded::Tcp(seg) =
                decoder.decode(LinkType::from_pcap(pkt.linktype), pkt.ts, pkt.data)
            {
                batches[worker_of(&seg, n)].push(pkt.ts, seq, &seg);
                pending += 1;
            }
        })?;
        metrics.packets.store(seq, Ordering::Relaxed);
        metrics.bytes.store(bytes, Ordering::Relaxed);
        let end = matches!(status, ReadStatus::End);
        // A boundary every `batch_segments` segments, and whenever the source pauses (a
        // quiet link must not hold packets back).
        if pending >= batch_segments || end || pending > 0 && !lossless {
            if last_ts >= next_expire {
                decoder.expire(last_ts);
                next_expire = last_ts.plus_nanos(1_000_000_000);
            }
            if !flush(&mut batches, seq, last_ts) {
                break;
            }
            pending = 0;
        }
        if let Some((_, dropped)) = source.kernel_stats() {
            metrics.kernel_dropped.store(dropped, Ordering::Relaxed);
        }
        if end {
            break;
        }
    }
    if pending > 0 {
        flush(&mut batches, seq, last_ts);
    }
    let decode_stats = decoder.stats().clone();
    metrics
        .decode_anomalies
        .store(decode_stats.total_anomalies(), Ordering::Relaxed);
    Ok((source.reader_stats(), decode_stats, source.warnings()))
}

/// The inventory's work on new records that needs none of its tables, done in the flow worker:
/// workers run in parallel, the analysis stage in one order (and on two cores, the worker's
/// core has the room the analysis stage's lacks).
fn prepare_records(records: &mut [TxRecord], preparer: &mut inventory::Preparer) {
    for rec in records {
        rec.prepared = preparer.prepare(&rec.flow, &rec.tx);
    }
}

#[allow(clippy::too_many_arguments)]
fn worker_loop(
    id: u16,
    cfg: EngineConfig,
    rx: Receiver<Stamped>,
    seg_back: Sender<SegmentBatch>,
    to_analysis: Vec<Sender<WorkerOut>>,
    free_rx: Receiver<RecordBatch>,
    lossless: bool,
    mut preparer: Option<inventory::Preparer>,
    metrics: &Metrics,
) -> EngineStats {
    let mut engine = Engine::new(cfg);
    let mut out: RecordBatch = Vec::with_capacity(512);
    let shards = to_analysis.len();
    let offer = |msg: WorkerOut, shard: usize| {
        if lossless {
            let _ = to_analysis[shard].send(msg);
        } else if let Err(TrySendError::Full(m)) = to_analysis[shard].try_send(msg) {
            metrics
                .analysis_dropped
                .fetch_add(m.records.len() as u64, Ordering::Relaxed);
        }
    };
    let send = |out: &mut RecordBatch, watermark: Order| {
        for r in out.iter_mut() {
            r.origin = id;
        }
        let message = |records| WorkerOut {
            sent: Instant::now(),
            origin: id,
            records,
            watermark,
        };
        if shards == 1 {
            offer(message(std::mem::take(out)), 0);
            return;
        }
        // Each client's transactions go to one shard, whichever worker parsed them.
        let mut per: Vec<RecordBatch> = (0..shards).map(|_| Vec::new()).collect();
        for r in out.drain(..) {
            per[shard_of(&r, shards)].push(r);
        }
        for (shard, records) in per.into_iter().enumerate() {
            if !records.is_empty() {
                offer(message(records), shard);
            }
        }
    };
    let mut last_flows = 0u64;
    let (mut last_evicted, mut last_anomalies) = (0u64, 0u64);
    for (sent, batch) in rx {
        metrics.capture_queue.record(sent.elapsed());
        // Records this worker made, back from the output side: freed here.
        while let Ok(mut old) = free_rx.try_recv() {
            old.clear();
            if out.capacity() == 0 {
                out = old;
            }
        }
        let started = Instant::now();
        let before = out.len();
        engine.batch(&batch, &mut out);
        if let Some(p) = preparer.as_mut() {
            prepare_records(&mut out[before..], p);
        }
        metrics.worker.record(started.elapsed());
        let boundary = Order {
            at: batch.last_seq,
            flow: u64::MAX,
            sub: u32::MAX,
        };
        let _ = seg_back.try_send(batch);
        metrics
            .transactions
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        send(&mut out, boundary);
        let flows = engine.flows() as u64;
        metrics
            .flows_active
            .fetch_add(flows.wrapping_sub(last_flows), Ordering::Relaxed);
        last_flows = flows;
        let f = engine.flow_stats();
        let evicted = f.evicted_closed + f.evicted_embryonic + f.evicted_established;
        let anomalies: u64 =
            engine.http_stats().anomalies.iter().sum::<u64>() + f.overlap_mismatches;
        metrics
            .flows_evicted
            .fetch_add(evicted - last_evicted, Ordering::Relaxed);
        metrics
            .http_anomalies
            .fetch_add(anomalies - last_anomalies, Ordering::Relaxed);
        (last_evicted, last_anomalies) = (evicted, anomalies);
    }
    let before = out.len();
    engine.finish(&mut out);
    if let Some(p) = preparer.as_mut() {
        prepare_records(&mut out[before..], p);
    }
    metrics
        .transactions
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    send(
        &mut out,
        Order {
            at: Order::END,
            flow: u64::MAX,
            sub: u32::MAX,
        },
    );
    metrics
        .flows_active
        .fetch_sub(last_flows, Ordering::Relaxed);
    engine.stats()
}

/// Merges the workers' record streams by [`Order`] (each stream is already in order), so the
/// output is the same whatever the number of workers; decodes bodies; hands batches to output.
#[allow(clippy::too_many_arguments)]
fn analysis_loop(
    workers: usize,
    ordered: bool,
    rx: Receiver<WorkerOut>,
    out: Sender<RecordBatch>,
    recycle: Receiver<RecordBatch>,
    free: Vec<Sender<RecordBatch>>,
    stage: Stage,
    metrics: &Metrics,
) {
    let decode = stage.decode;
    let inventory = stage.inventory;
    let detect = stage.detect;
    let mut queues: Vec<std::collections::VecDeque<TxRecord>> =
        (0..workers).map(|_| Default::default()).collect();
    let mut marks = vec![Order::default(); workers];
    let mut decoders = http::Decoders::default();
    let mut batch: RecordBatch = Vec::with_capacity(256);
    let mut written = Vec::new();
    let free = Mutex::new(free);
    let give_back = |recycle: &Receiver<RecordBatch>| {
        // Emptied batches from output: sort their records back to the workers that made them.
        while let Ok(mut done) = recycle.try_recv() {
            let free = free.lock().unwrap_or_else(|e| e.into_inner());
            if let [only] = &free[..] {
                // One worker made them all: the batch goes back whole, no record moved.
                let _ = only.try_send(done);
                continue;
            }
            let mut per: Vec<RecordBatch> = (0..free.len())
                .map(|_| Vec::with_capacity(done.len() / free.len() + 16))
                .collect();
            for r in done.drain(..) {
                if let Some(v) = per.get_mut(r.origin as usize) {
                    v.push(r);
                }
            }
            for (w, v) in per.into_iter().enumerate() {
                if !v.is_empty() {
                    let _ = free[w].try_send(v);
                }
            }
        }
    };
    for mut msg in rx {
        metrics.analysis_queue.record(msg.sent.elapsed());
        if workers == 1 || !ordered {
            // One stream is already in order, and live output needs none: pass batches through.
            if msg.records.is_empty() {
                continue;
            }
            if let Some(cfg) = &decode {
                for rec in msg.records.iter_mut() {
                    rec.tx.decode_bodies_with(cfg, &mut decoders);
                }
            }
            if let Some(inv) = &inventory {
                annotate(&mut msg.records, inv, detect.as_deref(), &mut written);
            }
            metrics
                .output_backlog
                .store(out.len() as u64, Ordering::Relaxed);
            if out.send(msg.records).is_err() {
                return;
            }
            give_back(&recycle);
            continue;
        }
        let w = msg.origin as usize;
        queues[w].extend(msg.records);
        marks[w] = marks[w].max(msg.watermark);
        let safe = marks.iter().copied().min().unwrap_or_default();
        // Emit, smallest first, every record no worker can still precede.
        loop {
            let mut best: Option<usize> = None;
            for (i, q) in queues.iter().enumerate() {
                if let Some(r) = q.front() {
                    if r.order <= safe && best.is_none_or(|b| r.order < queues[b][0].order) {
                        best = Some(i);
                    }
                }
            }
            let Some(i) = best else { break };
            let Some(mut rec) = queues[i].pop_front() else {
                break;
            };
            if let Some(cfg) = &decode {
                rec.tx.decode_bodies_with(cfg, &mut decoders);
            }
            batch.push(rec);
            if batch.len() >= 256 {
                if let Some(inv) = &inventory {
                    annotate(&mut batch, inv, detect.as_deref(), &mut written);
                }
                metrics
                    .output_backlog
                    .store(out.len() as u64, Ordering::Relaxed);
                if out
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(256)))
                    .is_err()
                {
                    return;
                }
                give_back(&recycle);
            }
        }
    }
    // Every worker is done: whatever is left is in order per worker; merge it out.
    let mut rest: Vec<TxRecord> = queues.into_iter().flatten().collect();
    rest.sort_by_key(|r| r.order);
    for mut rec in rest {
        if let Some(cfg) = &decode {
            rec.tx.decode_bodies_with(cfg, &mut decoders);
        }
        batch.push(rec);
    }
    if !batch.is_empty() {
        if let Some(inv) = &inventory {
            annotate(&mut batch, inv, detect.as_deref(), &mut written);
        }
        let _ = out.send(batch);
    }
    give_back(&recycle);
}

/// What the analysis stage does to each record besides ordering it.
struct Stage {
    decode: Option<http::HttpConfig>,
    inventory: Option<Arc<Mutex<inventory::Analyzer>>>,
    detect: Option<Arc<Mutex<detect::Detect>>>,
}

/// Feeds a batch to the analyzer and the detectors (one lock each per batch) and notes what
/// they found on each record.
fn annotate(
    batch: &mut [TxRecord],
    analyzer: &Mutex<inventory::Analyzer>,
    detect: Option<&Mutex<detect::Detect>>,
    written: &mut Vec<(usize, engine::Notes)>,
) {
    let mut analyzer = analyzer.lock().unwrap_or_else(|e| e.into_inner());
    let mut detect = detect.map(|d| d.lock().unwrap_or_else(|e| e.into_inner()));
    let analyzer = &mut *analyzer;
    // The batch is read while it is analysed (what was parsed ahead borrows from it); notes
    // are written once every record has been seen, through a buffer kept from batch to batch
    // (allocated anew, it was fresh pages to fault in).
    written.clear();
    analyzer.observe_batch(batch, |i, rec, notes, profile, profiler| {
        let mut out = notes.notes();
        if let Some(d) = detect.as_mut() {
            out.anomaly = d
                .observe(&rec.flow, &rec.tx, notes, Some(profile), profiler)
                .map(|v| engine::AnomalyNote {
                    score: v.score,
                    alerted: v.alerted,
                });
        }
        written.push((i, out));
    });
    for (i, notes) in written.drain(..) {
        batch[i].notes = Some(notes);
    }
}

/// Capture files read in order as one source.
pub struct FileSource {
    readers: std::collections::VecDeque<capture::FileReader>,
    stats: ReaderStats,
    warnings: Vec<String>,
    read_bytes: Arc<AtomicU64>,
    done_bytes: u64,
}

impl FileSource {
    pub fn new(readers: Vec<capture::FileReader>, read_bytes: Arc<AtomicU64>) -> FileSource {
        FileSource {
            readers: readers.into(),
            stats: ReaderStats::default(),
            warnings: Vec::new(),
            read_bytes,
            done_bytes: 0,
        }
    }
}

impl Source for FileSource {
    fn read(&mut self, max: usize, f: &mut dyn FnMut(RawPacket<'_>)) -> Result<ReadStatus> {
        let mut n = 0;
        while n < max {
            let Some(reader) = self.readers.front_mut() else {
                return Ok(ReadStatus::End);
            };
            match reader.next_packet()? {
                Some(pkt) => {
                    f(pkt);
                    n += 1;
                }
                None => {
                    if let Some(r) = self.readers.pop_front() {
                        self.done_bytes += r.file_len().unwrap_or(0);
                        merge_reader_stats(&mut self.stats, r.stats());
                        if let Some(e) = r.decompress_error() {
                            self.warnings.push(format!(
                                "{}: gzip stream is damaged ({e}); the packets before the damage were processed",
                                r.path().display()
                            ));
                        }
                    }
                }
            }
        }
        if let Some(r) = self.readers.front() {
            self.read_bytes.store(
                self.done_bytes + r.compressed_bytes_read(),
                Ordering::Relaxed,
            );
        }
        Ok(ReadStatus::Packets)
    }

    fn reader_stats(&self) -> ReaderStats {
        self.stats.clone()
    }

    fn warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

pub fn merge_reader_stats(total: &mut ReaderStats, s: &ReaderStats) {
    total.packets += s.packets;
    total.bytes += s.bytes;
    total.truncated_records += s.truncated_records;
    total.corrupt_records += s.corrupt_records;
    total.resyncs += s.resyncs;
    total.skipped_blocks += s.skipped_blocks;
    total.decompress_errors += s.decompress_errors;
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::TcpFlags;

    fn seg(a: &str, ap: u16, b: &str, bp: u16) -> TcpSegment<'static> {
        TcpSegment {
            src: a.parse().expect("ip"),
            dst: b.parse().expect("ip"),
            src_port: ap,
            dst_port: bp,
            seq: 0,
            ack: 0,
            flags: TcpFlags(0),
            window: 0,
            vlan: None,
            payload: b"",
            missing_payload: 0,
        }
    }

    #[test]
    fn a_client_always_lands_on_one_shard_and_clients_spread() {
        let rec = |ip: &str, port: u16| {
            let tx = http::Transaction {
                index: 0,
                client_is_orig: true,
                request: None,
                response: None,
                anomalies: Default::default(),
            };
            let flow = std::sync::Arc::new(engine::FlowIds {
                uid: String::new(),
                community_id: String::new(),
                client: std::net::SocketAddr::new(ip.parse().expect("ip"), port),
                server: "10.9.9.9:80".parse().expect("addr"),
                vlan: None,
                encoded: Default::default(),
            });
            TxRecord {
                flow,
                tx,
                order: Order::default(),
                origin: 0,
                notes: None,
                prepared: None,
            }
        };
        let mut used = std::collections::HashSet::new();
        for i in 0..64u8 {
            let ip = format!("10.1.2.{i}");
            let first = shard_of(&rec(&ip, 1000), 4);
            // Another connection (port) of the same client: same shard.
            assert_eq!(shard_of(&rec(&ip, 2000 + i as u16), 4), first);
            used.insert(first);
        }
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn both_directions_go_to_one_worker_and_flows_spread() {
        let mut used = std::collections::HashSet::new();
        for p in 1000..1100u16 {
            let there = worker_of(&seg("10.0.0.1", p, "10.0.0.2", 80), 4);
            let back = worker_of(&seg("10.0.0.2", 80, "10.0.0.1", p), 4);
            assert_eq!(there, back);
            used.insert(there);
        }
        assert_eq!(used.len(), 4, "100 flows use every worker");
        assert_eq!(worker_of(&seg("::1", 1, "::2", 2), 1), 0);
    }
}
