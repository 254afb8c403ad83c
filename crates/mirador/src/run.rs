//! `mirador run`: live capture through the same pipeline as replay, until SIGTERM or SIGINT
//! (drain, flush, exit 0 within the deadline). SIGHUP reloads the configuration, or refuses
//! with the reason and keeps the running one. Captures are opened first, then privileges are
//! dropped; metrics and health are served on a small tokio runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use capture::{LiveConfig, LiveSource, RawPacket};
use clap::Args;
use tracing::{error, info, warn};

use crate::config::{Config, FanoutMode, LogFormat, RunSection};
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::pipeline::{FileSource, Pipeline, PipelineConfig, ReadStatus, Source};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file (defaults apply when omitted; MIRADOR_<SECTION>__<KEY> variables
    /// override it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to capture on (repeatable; adds to capture.interfaces).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Read capture files instead of interfaces (in order, at full speed, through the live
    /// path: queues drop when full); the sensor then runs until SIGTERM like a live one.
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        conflicts_with = "interfaces"
    )]
    pub files: Vec<PathBuf>,
    /// Write transaction records to PATH, or to stdout with "-" (overrides output.transactions).
    #[arg(long, value_name = "PATH")]
    pub transactions: Option<PathBuf>,
    /// Write alert records to PATH, or to stdout with "-" (overrides output.alerts).
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,
    /// Encoding of the alert records.
    #[arg(long, value_name = "FORMAT", default_value = "canonical", value_parser = crate::output::alert_format_parser())]
    pub alert_format: sinks::siem::AlertFormat,
}

fn load(args: &RunArgs) -> Result<Config> {
    let mut cfg = Config::load_with_env(args.config.as_deref(), std::env::vars())?;
    for i in &args.interfaces {
        if !cfg.capture.interfaces.contains(i) {
            cfg.capture.interfaces.push(i.clone());
        }
    }
    if !args.files.is_empty() {
        // Files replace the interfaces: nothing to check on this host's links.
        cfg.capture.interfaces.clear();
    } else if cfg.capture.interfaces.is_empty() {
        bail!("no interface to capture on: give -i IFACE or set capture.interfaces in the config (or -r FILE to read captures)");
    }
    if let Some(t) = &args.transactions {
        cfg.output.transactions = t.display().to_string();
    }
    if let Some(a) = &args.alerts {
        cfg.output.alerts = a.display().to_string();
    }
    match &args.config {
        Some(p) => cfg
            .validate_for_run()
            .with_context(|| format!("{}: invalid configuration", p.display()))?,
        None => cfg.validate_for_run()?,
    }
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs read by journald, files or tools stay plain.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `index`: the interface's position; each interface gets its own fanout group (the kernel
/// refuses sockets of different interfaces in one group).
fn live_config(cfg: &Config, interface: &str, index: usize) -> LiveConfig {
    LiveConfig {
        interface: interface.to_string(),
        snaplen: cfg.capture.snaplen,
        promiscuous: cfg.capture.promiscuous,
        buffer_bytes: cfg.capture.buffer_bytes,
        filter: cfg.capture.filter.clone(),
        fanout: match cfg.capture.fanout {
            FanoutMode::None => None,
            FanoutMode::Hash => Some(capture::Fanout {
                group: if cfg.capture.fanout_group == 0 {
                    (std::process::id() & 0xffff) as u16
                } else {
                    cfg.capture.fanout_group
                }
                .wrapping_add(index as u16),
                mode: capture::FanoutMode::Hash,
            }),
        },
        timeout_ms: cfg.capture.timeout_ms,
    }
}

/// Several live interfaces read in turn by one capture thread; a new BPF filter (reload) is
/// picked up between reads.
struct LiveSources {
    sources: Vec<LiveSource>,
    next_filter: Arc<Mutex<Option<String>>>,
}

impl Source for LiveSources {
    fn read(&mut self, max: usize, f: &mut dyn FnMut(RawPacket<'_>)) -> Result<ReadStatus> {
        if let Ok(mut slot) = self.next_filter.try_lock() {
            if let Some(filter) = slot.take() {
                for s in &mut self.sources {
                    if let Err(e) = s.set_filter(&filter) {
                        error!(interface = s.interface(), "new capture filter refused: {e}");
                    }
                }
            }
        }
        let share = (max / self.sources.len().max(1)).max(1);
        for s in &mut self.sources {
            s.read_batch(share, f)?;
        }
        Ok(ReadStatus::Packets)
    }

    fn kernel_stats(&mut self) -> Option<(u64, u64)> {
        let mut received = 0;
        let mut dropped = 0;
        for s in &mut self.sources {
            let st = s.stats();
            received += st.received;
            dropped += st.kernel_dropped + st.interface_dropped;
        }
        Some((received, dropped))
    }
}

/// Capture files read through the live path; at their end the source idles (quiet link)
/// rather than ending, so `run` keeps serving until it is told to stop.
struct FilesThenIdle(FileSource);

impl Source for FilesThenIdle {
    fn read(&mut self, max: usize, f: &mut dyn FnMut(RawPacket<'_>)) -> Result<ReadStatus> {
        match self.0.read(max, f)? {
            ReadStatus::End => {
                std::thread::sleep(Duration::from_millis(50));
                Ok(ReadStatus::Packets)
            }
            more => Ok(more),
        }
    }
}

/// Gives up root after the captures are open: switches to `run.user`, keeping only
/// CAP_NET_RAW and CAP_NET_ADMIN. Refuses to keep root unless `run.allow_root` says so.
fn drop_privileges(run: &RunSection) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    if run.user.is_empty() {
        if run.allow_root {
            warn!("running as root (run.allow_root = true)");
            return Ok(());
        }
        bail!("refusing to keep running as root: set run.user to an unprivileged user or run.allow_root = true");
    }
    let user = nix::unistd::User::from_name(&run.user)
        .context("looking up run.user")?
        .ok_or_else(|| {
            anyhow!(
                "run.user: there is no user {:?} on this host; create it (see deploy/systemd/mirador.sysusers), \
                 set run.user to another unprivileged user, or set run.allow_root = true",
                run.user
            )
        })?;
    nix::sys::prctl::set_keepcaps(true).context("keeping capabilities across the user switch")?;
    nix::unistd::setgroups(&[user.gid]).context("dropping supplementary groups")?;
    nix::unistd::setgid(user.gid).context("switching group")?;
    nix::unistd::setuid(user.uid).context("switching user")?;
    let keep: caps::CapsHashSet = [
        caps::Capability::CAP_NET_RAW,
        caps::Capability::CAP_NET_ADMIN,
    ]
    .into_iter()
    .collect();
    for set in [caps::CapSet::Permitted, caps::CapSet::Effective] {
        caps::set(None, set, &keep).map_err(|e| anyhow!("setting capabilities: {e}"))?;
    }
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        bail!("privilege drop failed: the process could become root again");
    }
    info!(
        user = run.user,
        uid = user.uid.as_raw(),
        "dropped privileges; kept CAP_NET_RAW, CAP_NET_ADMIN"
    );
    Ok(())
}

/// Serves `/metrics` (Prometheus text) and `/healthz` on `addr` from its own thread.
/// The inventory served at `/inventory`, with the reference spec it is compared with.
type ServedInventory = (
    Arc<Mutex<inventory::Analyzer>>,
    Option<Arc<inventory::spec::Spec>>,
);

fn start_metrics(
    addr: &str,
    metrics: Arc<Metrics>,
    healthy: Arc<AtomicBool>,
    served: Option<ServedInventory>,
) -> Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("metrics.listen: cannot listen on {addr}; pick a free address or set it to \"\"")
    })?;
    let bound = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("mirador-metrics".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
            Ok(rt) => rt,
            Err(e) => {
                error!("metrics server cannot start: {e}");
                return;
            }
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                error!("metrics server cannot use its socket");
                return;
            };
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { continue };
                let metrics = metrics.clone();
                let healthy = healthy.clone();
                let served = served.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    // Read until the request head is complete (it may come in pieces), within a
                    // size and time bound.
                    let mut buf = vec![0u8; 8192];
                    let mut n = 0;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && !buf[..n].windows(2).any(|w| w == b"\n\n") {
                        match tokio::time::timeout_at(deadline, conn.read(&mut buf[n..])).await {
                            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                            Ok(Ok(k)) => n += k,
                        }
                    }
                    let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
                    let path = line.split(|&b| b == b' ').nth(1).unwrap_or(b"/");
                    const TEXT: &str = "text/plain; charset=utf-8";
                    let (status, body, content_type) = match path {
                        b"/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                        b"/inventory" => match &served {
                            Some((inv, spec)) => {
                                let doc = {
                                    let mut analyzer = inv.lock().unwrap_or_else(|e| e.into_inner());
                                    inventory::openapi::render(&mut analyzer.inventory, spec.as_deref())
                                };
                                ("200 OK", serde_json::to_string_pretty(&doc).unwrap_or_default(), "application/json")
                            }
                            None => ("404 Not Found", "the inventory is off (inventory.enabled = false)\n".to_string(), TEXT),
                        },
                        b"/healthz" if healthy.load(Ordering::Relaxed) => ("200 OK", "ok\n".to_string(), TEXT),
                        b"/healthz" => ("503 Service Unavailable", "stopping\n".to_string(), TEXT),
                        _ => ("404 Not Found", "try /metrics, /healthz or /inventory\n".to_string(), TEXT),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                });
            }
        });
    })?;
    Ok(bound)
}

pub fn run(args: RunArgs) -> Result<()> {
    let mut cfg = load(&args)?;
    init_logging(&cfg);
    // Signals before anything slow, so one sent during startup is not lost.
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone()).context("installing the signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing the signal handlers")?;

    let next_filter = Arc::new(Mutex::new(None));
    let source: Box<dyn Source> = if args.files.is_empty() {
        let mut sources = Vec::new();
        for (i, iface) in cfg.capture.interfaces.iter().enumerate() {
            sources.push(LiveSource::open(&live_config(&cfg, iface, i))?);
            info!(interface = iface.as_str(), "capturing");
        }
        Box::new(LiveSources {
            sources,
            next_filter: next_filter.clone(),
        })
    } else {
        let mut readers = Vec::new();
        for f in &args.files {
            readers.push(capture::FileReader::open(f)?);
            info!(file = %f.display(), "reading");
        }
        Box::new(FilesThenIdle(FileSource::new(
            readers,
            Arc::new(std::sync::atomic::AtomicU64::new(0)),
        )))
    };
    // Everything that may need privileges is opened before they are dropped: the captures,
    // the output files, and the metrics socket (which may be a low port).
    let metrics = Arc::new(Metrics::default());
    let healthy = Arc::new(AtomicBool::new(true));
    // The model carries on from its last snapshot, and is saved there periodically.
    let model_path =
        (!cfg.detect.model_path.is_empty()).then(|| PathBuf::from(&cfg.detect.model_path));
    let mut opened = crate::detection::open(
        &cfg,
        crate::detection::Mode {
            learn: true,
            alert: true,
        },
        model_path.as_deref().filter(|p| p.is_file()),
        model_path.as_deref(),
    )?;
    if let (Some(o), Some(path)) = (&opened, &model_path) {
        if o.catalogue.is_some() {
            info!(path = %path.display(), learnt = o.detect.learnt(), "model restored");
        }
    }
    let inventory = if cfg.inventory.enabled {
        let a = crate::detection::analyzer(&cfg, opened.as_mut(), true)?;
        Some(Arc::new(Mutex::new(a)))
    } else {
        None
    };
    let spec = (!cfg.inventory.spec.is_empty())
        .then(|| crate::inventory_cmd::load_spec(Path::new(&cfg.inventory.spec)))
        .transpose()?
        .map(Arc::new);
    let detect = opened.map(|mut o| {
        // Detection raises shadow endpoints on their first call.
        o.detect.set_spec(spec.clone());
        Arc::new(Mutex::new(o.detect))
    });

    if !cfg.metrics.listen.is_empty() {
        let served = inventory.clone().map(|i| (i, spec.clone()));
        let addr = start_metrics(
            &cfg.metrics.listen,
            metrics.clone(),
            healthy.clone(),
            served,
        )?;
        info!(%addr, "serving /metrics, /healthz and /inventory");
    }
    let delivery = Delivery::start(&cfg.output.transactions, metrics.clone())?;
    // Alert outputs (`--alerts`/output.alerts and [[outputs]]); opened now so a wrong path
    // fails at start, before privileges are dropped.
    let alerts =
        crate::alert_outputs::start(&cfg, cfg.alerts_path().as_deref(), args.alert_format)?;
    if let Ok(mut slot) = metrics.alert_outputs.lock() {
        *slot = alerts.metric_handles();
    }
    crate::alert_outputs::give_spools_to_run_user(&cfg)?;
    drop_privileges(&cfg.run)?;

    let engine = cfg.engine();
    let decode =
        (engine.http.decode_requests || engine.http.decode_responses).then(|| engine.http.clone());
    let mut shadow = inventory::alerts::ShadowAlerts::default();
    let export_every = Duration::from_secs(cfg.inventory.export_interval_secs);
    let mut next_export = Instant::now() + export_every;
    // Writes the inventory file and any new shadow alerts; wall-clock paced, outside the core.
    let mut export = |cfg: &Config, alerts: &::delivery::Outputs| {
        let Some(inv) = &inventory else { return };
        let mut analyzer = inv.lock().unwrap_or_else(|e| e.into_inner());
        let inv = &mut analyzer.inventory;
        // With detection on, it raises shadow endpoints itself, as they are first called.
        if let (Some(spec), false, false) = (&spec, alerts.is_empty(), detect.is_some()) {
            let raised = shadow.poll(inv, spec);
            if !raised.is_empty() {
                info!(alerts = raised.len(), "shadow endpoints");
                alerts.submit(&raised);
            }
        }
        if !cfg.inventory.export_path.is_empty() {
            let doc = inventory::openapi::render(inv, spec.as_deref());
            drop(analyzer);
            let written =
                crate::inventory_cmd::encode(&doc, cfg.inventory.export_format).and_then(|b| {
                    crate::inventory_cmd::write_atomically(
                        Path::new(&cfg.inventory.export_path),
                        &b,
                    )
                });
            if let Err(e) = written {
                error!("writing the inventory: {e:#}");
            }
        }
    };
    let pipeline = Pipeline::start(
        PipelineConfig {
            workers: cfg.worker_count(),
            queue_batches: cfg.pipeline.queue_batches,
            lossless: false,
            batch_segments: cfg.capture.batch_packets,
            engine,
            decode,
            inventory: inventory.clone(),
            detect: detect.clone(),
            analysis_shards: cfg.pipeline.analysis_shards,
        },
        source,
        metrics.clone(),
    )?;
    let stop = pipeline.stop_handle();
    info!(workers = cfg.worker_count(), "running");

    // Detection's alerts, as they are raised; its model, now and then and at the end.
    let snapshot_every = Duration::from_secs(cfg.detect.snapshot_interval_secs);
    let mut next_snapshot = Instant::now() + snapshot_every;
    let deliver_alerts = |alerts: &::delivery::Outputs| {
        let Some(d) = &detect else { return };
        let raised = d.lock().unwrap_or_else(|e| e.into_inner()).take_alerts();
        if raised.is_empty() {
            return;
        }
        metrics
            .alerts
            .fetch_add(raised.len() as u64, Ordering::Relaxed);
        // Never waits: a full output queue drops and counts.
        alerts.submit(&raised);
    };
    let save_model = || {
        if let (Some(d), Some(path)) = (&detect, &model_path) {
            let bytes = crate::detection::snapshot(d, inventory.as_deref());
            match crate::detection::save_snapshot(path, &bytes) {
                Ok(()) => info!(path = %path.display(), bytes = bytes.len(), "model saved"),
                Err(e) => error!("saving the model: {e:#}"),
            }
        }
    };

    // This thread only moves batches from the pipeline to delivery (never waiting on it),
    // and handles signals.
    let mut deadline: Option<Instant> = None;
    loop {
        match pipeline.records.recv_timeout(Duration::from_millis(100)) {
            Ok(batch) => {
                if let Some(back) = delivery.offer(batch) {
                    pipeline.recycle(back);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(done) = delivery.recycled.try_recv() {
            pipeline.recycle(done);
        }
        if term.load(Ordering::Relaxed) && deadline.is_none() {
            info!("stopping: draining flows and records");
            healthy.store(false, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            deadline = Some(Instant::now() + Duration::from_secs(cfg.run.shutdown_deadline_secs));
        }
        deliver_alerts(&alerts);
        if Instant::now() >= next_export {
            export(&cfg, &alerts);
            next_export = Instant::now() + export_every;
        }
        if Instant::now() >= next_snapshot {
            save_model();
            next_snapshot = Instant::now() + snapshot_every;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            warn!("shutdown deadline passed before every record was written; exiting anyway");
            return Ok(());
        }
        if hup.swap(false, Ordering::Relaxed) {
            match load(&args) {
                Ok(new) => {
                    if new.capture.filter != cfg.capture.filter {
                        if let Ok(mut slot) = next_filter.lock() {
                            *slot = Some(new.capture.filter.clone());
                        }
                    }
                    // Reopened even when the path is the same: log rotation renames the file
                    // and sends SIGHUP.
                    delivery.reopen(&new.output.transactions);
                    alerts.reopen();
                    let restart = [
                        (
                            new.capture.interfaces != cfg.capture.interfaces,
                            "capture.interfaces",
                        ),
                        (
                            new.pipeline.workers != cfg.pipeline.workers,
                            "pipeline.workers",
                        ),
                        (new.metrics.listen != cfg.metrics.listen, "metrics.listen"),
                        (
                            new.outputs != cfg.outputs || new.output.alerts != cfg.output.alerts,
                            "outputs and output.alerts",
                        ),
                        (
                            format!("{:?}", new.engine()) != format!("{:?}", cfg.engine()),
                            "decode/flow/http limits",
                        ),
                    ];
                    for (changed, what) in restart {
                        if changed {
                            warn!("reload: {what} changed; it takes effect at the next restart");
                        }
                    }
                    if let Some(d) = &detect {
                        // New thresholds, rules and false-positive marks; what was learnt stays.
                        match crate::detection::false_positives(&new) {
                            Ok(fp) => d
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .reconfigure(new.detect.to_config(fp)),
                            Err(e) => error!("reload: keeping the detection settings: {e:#}"),
                        }
                    }
                    metrics.reloads.fetch_add(1, Ordering::Relaxed);
                    info!("configuration reloaded");
                    cfg = new;
                }
                Err(e) => {
                    metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
                    error!("reload refused, keeping the running configuration: {e:#}");
                }
            }
        }
    }
    let finished = pipeline.join()?;
    if let Some(d) = &detect {
        d.lock().unwrap_or_else(|e| e.into_inner()).finish();
    }
    deliver_alerts(&alerts);
    save_model();
    // Everything seen is in the inventory now: write it once more, with its last alerts.
    export(&cfg, &alerts);
    let deadline = deadline
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(cfg.run.shutdown_deadline_secs));
    if !delivery.finish(deadline) {
        warn!("shutdown deadline passed before the output took every record; exiting anyway");
    }
    // Alerts not acknowledged by then stay in the outputs' spools for the next start.
    crate::alert_outputs::finish(alerts, Some(deadline));
    info!(
        transactions = finished.engine.http.transactions,
        flows = finished.engine.flow.flows_created,
        dropped_batches = metrics.queue_dropped_batches.load(Ordering::Relaxed),
        capture_cpu_seconds = finished.stage_cpu.capture,
        worker_cpu_seconds = finished.stage_cpu.workers,
        analysis_cpu_seconds = finished.stage_cpu.analysis,
        "stopped"
    );
    Ok(())
}
