//! `mirador replay`: capture files through the pipeline, transactions to the output, a
//! summary at the end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use capture::FileReader;
use clap::Args;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::output::RecordWriter;
use crate::pipeline::{FileSource, Pipeline, PipelineConfig};
use crate::summary::Summary;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Configuration file (defaults apply when omitted).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write transaction records (ECS JSON lines) to PATH, or to stdout with "-".
    #[arg(long, value_name = "PATH")]
    pub transactions: Option<PathBuf>,
    /// Flow workers (default: pipeline.workers from the config). The output does not depend
    /// on it: records are merged back into one order.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Write alert records (canonical JSON lines) to PATH, or to stdout with "-". Shadow
    /// endpoints are alerted when inventory.spec names a reference spec.
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,
    /// Encoding of the alert records.
    #[arg(long, value_name = "FORMAT", default_value = "canonical", value_parser = crate::output::alert_format_parser())]
    pub alert_format: sinks::siem::AlertFormat,
    /// Learn baselines and the anomaly model, raise no alerts (use with --model-out).
    #[arg(long, conflicts_with = "no_learn")]
    pub learn_only: bool,
    /// Score with what was learnt (from --model-in) without updating it.
    #[arg(long)]
    pub no_learn: bool,
    /// Start detection from this model snapshot (written by --model-out or the daemon).
    #[arg(long, value_name = "PATH")]
    pub model_in: Option<PathBuf>,
    /// Save what detection learnt to PATH at the end (atomically).
    #[arg(long, value_name = "PATH")]
    pub model_out: Option<PathBuf>,
    /// Never show a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Capture files, processed in the order given as one continuous capture.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Segments per capture → worker hand-off.
const BATCH_SEGMENTS: usize = 256;
/// Hand-offs in flight per worker.
const QUEUE_BATCHES: usize = 4;

pub fn run(args: ReplayArgs) -> Result<()> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    // Open every file first: a bad path fails before any output is written.
    let readers = open_all(&args.files)?;
    let out_path = args
        .transactions
        .clone()
        .or_else(|| cfg.transactions_path());
    let writer = out_path.as_deref().map(RecordWriter::open).transpose()?;
    // Alert outputs: `--alerts` (or output.alerts) and the config's [[outputs]].
    let alerts = crate::alert_outputs::start(
        &cfg,
        args.alerts.clone().or_else(|| cfg.alerts_path()).as_deref(),
        args.alert_format,
    )?;
    let spec = (!cfg.inventory.spec.is_empty())
        .then(|| crate::inventory_cmd::load_spec(std::path::Path::new(&cfg.inventory.spec)))
        .transpose()?;
    let mut opened = crate::detection::open(
        &cfg,
        crate::detection::Mode {
            learn: !args.no_learn,
            alert: !args.learn_only,
        },
        args.model_in.as_deref(),
        args.model_out.as_deref(),
    )?;
    let inventory = if cfg.inventory.enabled {
        let a = crate::detection::analyzer(&cfg, opened.as_mut(), !args.no_learn)?;
        Some(Arc::new(Mutex::new(a)))
    } else {
        None
    };
    let detect = opened.map(|mut o| {
        // Detection raises shadow endpoints on their first call.
        o.detect.set_spec(spec.clone().map(Arc::new));
        Arc::new(Mutex::new(o.detect))
    });
    let done = process(
        &cfg,
        readers,
        args.workers,
        args.no_progress,
        writer,
        Analysis {
            inventory,
            detect,
            model_out: args.model_out.as_deref(),
        },
        (!alerts.is_empty()).then_some((spec.as_ref(), &alerts)),
    );
    // Every output drains, or its spool keeps the rest for the next start (said on stderr).
    crate::alert_outputs::finish(alerts, None);
    done
}

/// Opens every capture file, so a bad path fails before any output is written.
pub fn open_all(files: &[PathBuf]) -> Result<Vec<FileReader>> {
    files.iter().map(|f| Ok(FileReader::open(f)?)).collect()
}

/// The analysis stage of a replay: the inventory, detection (which needs it) and where the
/// model is saved at the end.
#[derive(Default)]
pub struct Analysis<'a> {
    pub inventory: Option<Arc<Mutex<inventory::Analyzer>>>,
    pub detect: Option<Arc<Mutex<detect::Detect>>>,
    pub model_out: Option<&'a std::path::Path>,
}

/// Runs capture files through the pipeline: records to `writer`, transactions into the
/// analysis, alerts to the outputs, the summary on stderr.
pub fn process(
    cfg: &Config,
    readers: Vec<FileReader>,
    workers: Option<usize>,
    no_progress: bool,
    mut writer: Option<RecordWriter>,
    analysis: Analysis<'_>,
    alerts: Option<(Option<&inventory::spec::Spec>, &::delivery::Outputs)>,
) -> Result<()> {
    let Analysis {
        inventory,
        detect,
        model_out,
    } = analysis;
    let total_len: u64 = readers.iter().filter_map(|r| r.file_len()).sum();
    let progress = (!no_progress && std::io::stderr().is_terminal()).then(|| {
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
    // This thread writes the records and alerts: its CPU from here on is the output stage's.
    let output_cpu_before = crate::pipeline::thread_cpu_seconds();
    let read_bytes = Arc::new(AtomicU64::new(0));
    let metrics = Arc::new(Metrics::default());
    let engine = cfg.engine();
    let decode =
        (engine.http.decode_requests || engine.http.decode_responses).then(|| engine.http.clone());
    let pipeline = Pipeline::start(
        PipelineConfig {
            workers: workers.unwrap_or_else(|| cfg.worker_count()).max(1),
            queue_batches: QUEUE_BATCHES,
            lossless: true,
            batch_segments: BATCH_SEGMENTS,
            engine,
            decode,
            inventory: inventory.clone(),
            detect: detect.clone(),
            analysis_shards: 1,
        },
        Box::new(FileSource::new(readers, read_bytes.clone())),
        metrics.clone(),
    )?;

    let mut written = 0u64;
    let mut decompression = [0u64; 2];
    let mut failed = None;
    let mut alerts = alerts;
    // Alerts leave as they are raised, between record batches (handed to the outputs, never
    // waited for). Shadow endpoints are alerted as soon as the inventory has a new endpoint,
    // so an alert's time is close to the endpoint's first call.
    let mut shadow = inventory::alerts::ShadowAlerts::default();
    let mut known_endpoints = 0u64;
    let mut drain_alerts =
        |alerts: &mut Option<(Option<&inventory::spec::Spec>, &::delivery::Outputs)>,
         last: bool| {
            let Some((spec, out)) = alerts.as_mut() else {
                return anyhow::Ok(());
            };
            if let Some(d) = &detect {
                let raised = d.lock().unwrap_or_else(|e| e.into_inner()).take_alerts();
                if !raised.is_empty() {
                    out.submit(&raised);
                }
            }
            // Without detection, the inventory's own check finds shadow endpoints.
            if let (Some(spec), Some(inv), None) = (spec, &inventory, &detect) {
                let mut a = inv.lock().unwrap_or_else(|e| e.into_inner());
                let endpoints = a.inventory.stats().endpoints_made;
                if last || endpoints != known_endpoints {
                    known_endpoints = endpoints;
                    let raised = shadow.poll(&mut a.inventory, spec);
                    if !raised.is_empty() {
                        out.submit(&raised);
                    }
                }
            }
            anyhow::Ok(())
        };
    for batch in pipeline.records.iter() {
        for rec in &batch {
            for (i, a) in [
                http::HttpAnomaly::DecompressionLimit,
                http::HttpAnomaly::DecompressionError,
            ]
            .into_iter()
            .enumerate()
            {
                decompression[i] += u64::from(rec.tx.anomalies.contains(a));
            }
        }
        if let Some(w) = writer.as_mut() {
            if failed.is_none() {
                match w.write(&batch) {
                    Ok(n) => written += n,
                    // Keep draining so the pipeline ends; the error is reported after.
                    Err(e) => failed = Some(e),
                }
            }
        }
        pipeline.recycle(batch);
        if failed.is_none() {
            if let Err(e) = drain_alerts(&mut alerts, false) {
                failed = Some(e);
            }
        }
        if let Some(bar) = &progress {
            bar.set_position(read_bytes.load(Ordering::Relaxed));
        }
    }
    let finished = pipeline.join()?;
    if let Some(d) = &detect {
        // The capture is over: every open episode ends.
        d.lock().unwrap_or_else(|e| e.into_inner()).finish();
    }
    drain_alerts(&mut alerts, true)?;
    let detection_summary = detect.as_ref().map(|d| {
        let d = d.lock().unwrap_or_else(|e| e.into_inner());
        crate::summary::DetectionSummary {
            stats: d.stats(),
            threshold: d.threshold(),
        }
    });
    if let (Some(d), Some(path)) = (&detect, model_out) {
        let bytes = crate::detection::snapshot(d, inventory.as_deref());
        crate::detection::save_snapshot(path, &bytes)?;
    }
    let analysis_summary = inventory.as_ref().map(|a| {
        let a = a.lock().unwrap_or_else(|e| e.into_inner());
        anyhow::Ok(crate::summary::AnalysisSummary::of(&a))
    });
    let analysis_summary = analysis_summary.transpose()?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(w) = writer.as_mut() {
        w.flush()?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    for w in &finished.warnings {
        eprintln!("mirador: warning: {w}");
    }
    let mut stats = finished.engine;
    stats.http.anomalies[http::HttpAnomaly::DecompressionLimit as usize] += decompression[0];
    stats.http.anomalies[http::HttpAnomaly::DecompressionError as usize] += decompression[1];
    Summary {
        engine: stats,
        reader: finished.reader,
        elapsed: started.elapsed(),
        written: writer.map(|_| written),
        analysis: analysis_summary,
        detection: detection_summary,
        cpu: Some((
            finished.stage_cpu,
            crate::pipeline::thread_cpu_seconds() - output_cpu_before,
        )),
    }
    .print(&mut std::io::stderr());
    Ok(())
}
