//! `mirador replay`: capture files through the engine, transactions to the writer, a summary
//! at the end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use capture::{FileReader, ReaderStats};
use clap::Args;
use engine::{Engine, SegmentBatch};
use wire::{Decoded, LinkType};

use crate::config::Config;
use crate::output::TxWriter;
use crate::summary::Summary;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Configuration file (defaults apply when omitted).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write transaction records (ECS JSON lines) to PATH, or to stdout with "-".
    #[arg(long, value_name = "PATH")]
    pub transactions: Option<PathBuf>,
    /// Never show a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Capture files, processed in the order given as one continuous capture.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Transactions handed to the writer at a time.
const BATCH: usize = 256;

pub fn run(args: ReplayArgs) -> Result<()> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    // Open every file first: a bad path fails before any output is written.
    let mut readers = Vec::with_capacity(args.files.len());
    for f in &args.files {
        readers.push(FileReader::open(f)?);
    }
    let out_path = args
        .transactions
        .clone()
        .or_else(|| cfg.transactions_path());
    let decode = (cfg.http.decode_requests || cfg.http.decode_responses).then(|| cfg.engine().http);
    let writer = out_path
        .as_deref()
        .map(|p| TxWriter::start(p, decode.clone()))
        .transpose()?;
    let total_len: u64 = readers.iter().filter_map(|r| r.file_len()).sum();
    let progress = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total_len);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });

    let started = Instant::now();
    let engine_cfg = cfg.engine();
    let mut engine = Engine::new(engine_cfg.clone());
    let read_bytes = Arc::new(AtomicU64::new(0));
    // Capture → worker: bounded and blocking, because replay must not lose packets; the
    // emptied batches come back for reuse.
    let (seg_tx, seg_rx) = crossbeam_channel::bounded::<SegmentBatch>(CAPTURE_QUEUE);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<SegmentBatch>(CAPTURE_QUEUE + 2);
    let capture = {
        let read_bytes = read_bytes.clone();
        let decoder_cfg = engine_cfg.decoder.clone();
        std::thread::Builder::new()
            .name("mirador-capture".into())
            .spawn(move || capture_files(readers, decoder_cfg, seg_tx, back_rx, &read_bytes))?
    };

    let mut batch = writer.as_ref().map_or_else(Vec::new, |w| w.batch());
    let mut writer_gone = false;
    for segments in seg_rx {
        engine.batch(&segments, &mut batch);
        if batch.len() >= BATCH {
            flush(&writer, &mut batch, &mut writer_gone);
        }
        let _ = back_tx.try_send(segments);
        if let Some(bar) = &progress {
            bar.set_position(read_bytes.load(Ordering::Relaxed));
        }
    }
    let captured = capture
        .join()
        .map_err(|_| anyhow::anyhow!("the capture thread panicked"))??;
    engine.finish(&mut batch);
    flush(&writer, &mut batch, &mut writer_gone);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    for w in &captured.warnings {
        eprintln!("mirador: warning: {w}");
    }
    let output = match writer {
        Some(w) => Some(w.finish()?),
        None => None,
    };
    let elapsed = started.elapsed();
    let mut stats = engine.stats();
    stats.decode = captured.decode;
    if let Some(o) = &output {
        for (a, n) in &o.anomalies {
            stats.http.anomalies[*a as usize] += n;
        }
    }
    Summary {
        engine: stats,
        reader: captured.reader,
        elapsed,
        written: output.map(|o| o.written),
    }
    .print(&mut std::io::stderr());
    Ok(())
}

/// Segments per batch handed from the capture thread to the worker, and batches in flight.
const SEGMENTS_PER_BATCH: usize = 256;
const BATCH_PAYLOAD_BYTES: usize = 256 << 10;
const CAPTURE_QUEUE: usize = 4;

struct Captured {
    reader: ReaderStats,
    decode: wire::DecodeStats,
    warnings: Vec<String>,
}

/// The capture side of replay: reads the files in order, decodes frames, and sends batches of
/// TCP segments to the worker. Its errors are the sensor's own (a file that stops reading).
fn capture_files(
    readers: Vec<FileReader>,
    decoder_cfg: wire::DecoderConfig,
    to_worker: crossbeam_channel::Sender<SegmentBatch>,
    recycled: crossbeam_channel::Receiver<SegmentBatch>,
    read_bytes: &AtomicU64,
) -> Result<Captured> {
    let mut decoder = wire::Decoder::new(decoder_cfg);
    let new_batch =
        || SegmentBatch::with_capacity(SEGMENTS_PER_BATCH, BATCH_PAYLOAD_BYTES + 65_536);
    let mut batch = new_batch();
    let mut stats = ReaderStats::default();
    let mut warnings = Vec::new();
    let mut done_bytes = 0u64;
    let mut next_expire = wire::Timestamp::ZERO;
    for mut reader in readers {
        while let Some(pkt) = reader.next_packet()? {
            let ts = pkt.ts;
            match decoder.decode(LinkType::from_pcap(pkt.linktype), ts, pkt.data) {
                Decoded::Tcp(seg) => batch.push(ts, &seg),
                _ => batch.last_ts = batch.last_ts.max(ts),
            }
            if batch.len() >= SEGMENTS_PER_BATCH || batch.payload_bytes() >= BATCH_PAYLOAD_BYTES {
                if ts >= next_expire {
                    decoder.expire(ts);
                    next_expire = ts.plus_nanos(1_000_000_000);
                }
                read_bytes.store(
                    done_bytes + reader.compressed_bytes_read(),
                    Ordering::Relaxed,
                );
                let next = match recycled.try_recv() {
                    Ok(mut b) => {
                        b.clear();
                        b
                    }
                    Err(_) => new_batch(),
                };
                if to_worker.send(std::mem::replace(&mut batch, next)).is_err() {
                    // The worker is gone (it failed); it reports why.
                    return Ok(Captured {
                        reader: stats,
                        decode: decoder.stats().clone(),
                        warnings,
                    });
                }
            }
        }
        done_bytes += reader.file_len().unwrap_or(0);
        merge_reader_stats(&mut stats, reader.stats());
        if let Some(e) = reader.decompress_error() {
            warnings.push(format!(
                "{}: gzip stream is damaged ({e}); the packets before the damage were processed",
                reader.path().display()
            ));
        }
    }
    if !batch.is_empty() || batch.last_ts > wire::Timestamp::ZERO {
        let _ = to_worker.send(batch);
    }
    Ok(Captured {
        reader: stats,
        decode: decoder.stats().clone(),
        warnings,
    })
}

fn flush(writer: &Option<TxWriter>, batch: &mut Vec<engine::TxRecord>, gone: &mut bool) {
    match writer {
        Some(w) if !*gone => {
            let next = w.batch();
            let full = std::mem::replace(batch, next);
            if !w.send(full) {
                // The writer failed; its error is reported at the end. Keep analysing.
                *gone = true;
            }
        }
        _ => batch.clear(),
    }
}

fn merge_reader_stats(total: &mut ReaderStats, s: &ReaderStats) {
    total.packets += s.packets;
    total.bytes += s.bytes;
    total.truncated_records += s.truncated_records;
    total.corrupt_records += s.corrupt_records;
    total.resyncs += s.resyncs;
    total.skipped_blocks += s.skipped_blocks;
    total.decompress_errors += s.decompress_errors;
}
