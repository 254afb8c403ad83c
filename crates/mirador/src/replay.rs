//! `mirador replay`: capture files through the engine, transactions to the writer, a summary
//! at the end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use capture::{FileReader, ReaderStats};
use clap::Args;
use engine::Engine;
use wire::LinkType;

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
    let decode = cfg.http.decode_content.then(|| cfg.engine().http);
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
    let mut engine = Engine::new(cfg.engine());
    let mut batch = writer.as_ref().map_or_else(Vec::new, |w| w.batch());
    let mut reader_stats = ReaderStats::default();
    let mut done_bytes = 0u64;
    let mut packets_since_tick = 0u32;
    let mut writer_gone = false;
    for mut reader in readers {
        while let Some(pkt) = reader.next_packet()? {
            engine.packet(
                LinkType::from_pcap(pkt.linktype),
                pkt.ts,
                pkt.data,
                &mut batch,
            );
            if batch.len() >= BATCH {
                flush(&writer, &mut batch, &mut writer_gone);
            }
            packets_since_tick += 1;
            if packets_since_tick >= 65_536 {
                packets_since_tick = 0;
                if let Some(bar) = &progress {
                    bar.set_position(done_bytes + reader.compressed_bytes_read());
                    bar.set_message(format!("{} flows", engine.flows()));
                }
            }
        }
        done_bytes += reader.file_len().unwrap_or(0);
        merge_reader_stats(&mut reader_stats, reader.stats());
        if let Some(e) = reader.decompress_error() {
            eprintln!("mirador: warning: {}: gzip stream is damaged ({e}); the packets before the damage were processed", reader.path().display());
        }
    }
    engine.finish(&mut batch);
    flush(&writer, &mut batch, &mut writer_gone);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let output = match writer {
        Some(w) => Some(w.finish()?),
        None => None,
    };
    let elapsed = started.elapsed();
    let mut stats = engine.stats();
    if let Some(o) = &output {
        for (a, n) in &o.anomalies {
            stats.http.anomalies[*a as usize] += n;
        }
    }
    Summary {
        engine: stats,
        reader: reader_stats,
        elapsed,
        written: output.map(|o| o.written),
    }
    .print(&mut std::io::stderr());
    Ok(())
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
