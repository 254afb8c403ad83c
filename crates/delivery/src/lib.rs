//! Alert delivery, outside the deterministic core (it reads the wall clock and does I/O).
//!
//! [`Outputs::submit`] only filters and pushes each alert into every output's bounded intake
//! queue; it never waits (a full queue drops the alert, counted and logged). Per output, an
//! intake thread masks secrets, encodes the alert in the output's format and appends it to the
//! [`spool`] (on disk when `spool_dir` is set, else in memory); a sender thread with its own
//! tokio runtime reads batches from the spool, hands them to the [`transport`], retries
//! retriable failures with capped exponential backoff and jitter, dead-letters permanent
//! rejects, and acknowledges the batch in the spool only after that. So delivery is at least
//! once: a restart resends what was not acknowledged, with the same alert ids.

pub mod config;
pub mod metrics;
pub mod redact;
pub mod spool;
pub mod synthetic;
pub mod transport;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use sinks::alert::Alert;
use sinks::siem::{AlertFormat, EncodeContext};

pub use config::{OutputConfig, OutputType};
pub use metrics::{OutputMetrics, Snapshot};
pub use spool::{Fsync, WhenFull};

use spool::{Pushed, Record, Spool, SpoolOptions};
use transport::{ItemResult, SendError, Transport};

/// Failures of the sensor's own side: configuration, spool or output files, TLS material.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Config(String),
    #[error("spool {0}: {1}")]
    Spool(PathBuf, std::io::Error),
    #[error("{0}: {1}; check the directory exists and is writable")]
    Open(PathBuf, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot start a delivery thread: {0}")]
    Thread(std::io::Error),
}

/// Alerts read from the spool per burst of the intake thread.
const BURST: usize = 1024;
/// Largest payload bytes per batch handed to a transport.
const BATCH_BYTES: usize = 8 << 20;
/// Least time between two log lines about the same kind of loss or failure.
const LOG_EVERY: Duration = Duration::from_secs(10);

struct Item {
    alert: Arc<Alert>,
    enqueued_ns: u64,
}

struct Shared {
    name: String,
    spool: Mutex<Spool>,
    cv: Condvar,
    metrics: Arc<OutputMetrics>,
    intake_done: AtomicBool,
    stop: AtomicBool,
    /// The last attempt failed and the sender is waiting to retry.
    failing: AtomicBool,
    sender_done: AtomicBool,
    reopen: AtomicBool,
    /// Wall seconds of the last "dropped" log line (rate limit).
    last_drop_log: AtomicU64,
}

impl Shared {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gauges(&self, s: &Spool) {
        self.metrics
            .spooled_bytes
            .store(s.bytes(), Ordering::Relaxed);
        self.metrics.pending.store(s.pending(), Ordering::Relaxed);
        self.metrics
            .corrupt
            .store(s.counts().corrupt, Ordering::Relaxed);
    }

    /// Counts drops and says so at error level, at most once per [`LOG_EVERY`].
    fn dropped(&self, n: u64, why: &str) {
        let total = self.metrics.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let now = wall_ns() / 1_000_000_000;
        let last = self.last_drop_log.load(Ordering::Relaxed);
        if now >= last + LOG_EVERY.as_secs()
            && self
                .last_drop_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                output = %self.name,
                dropped_total = total,
                "ALERTS DROPPED: {why}"
            );
        }
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

struct Output {
    cfg: OutputConfig,
    tx: Option<Sender<Item>>,
    shared: Arc<Shared>,
    intake: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
}

/// What an output still held when [`Outputs::finish`] returned.
#[derive(Clone, Debug)]
pub struct Left {
    pub name: String,
    /// Alerts not acknowledged by the receiver.
    pub pending: u64,
    /// Whether those are in an on-disk spool (sent on the next start) or lost.
    pub on_disk: bool,
    pub metrics: Snapshot,
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.metrics;
        write!(
            f,
            "output {}: {} acknowledged, {} retried, {} dropped, {} dead-lettered",
            self.name, m.acked, m.retried, m.dropped, m.dead_lettered
        )?;
        if self.pending > 0 {
            if self.on_disk {
                write!(f, ", {} left in the spool for the next start", self.pending)?;
            } else {
                write!(f, ", {} NOT DELIVERED (no spool)", self.pending)?;
            }
        }
        Ok(())
    }
}

/// Every configured output, running.
pub struct Outputs {
    outputs: Vec<Output>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.outputs.iter().map(|o| &o.shared.name))
            .finish()
    }
}

impl Outputs {
    /// Validates the outputs, opens their spools (recovering what a previous run left) and
    /// files, and starts their threads.
    pub fn start(cfgs: &[OutputConfig], ctx: &EncodeContext) -> Result<Outputs, DeliveryError> {
        let problems = config::validate(cfgs);
        if !problems.is_empty() {
            return Err(DeliveryError::Config(problems.join("; ")));
        }
        let mut outputs = Vec::with_capacity(cfgs.len());
        for (i, cfg) in cfgs.iter().enumerate() {
            outputs.push(start_one(i, cfg, ctx)?);
        }
        Ok(Outputs { outputs })
    }

    /// No outputs at all.
    pub fn none() -> Outputs {
        Outputs {
            outputs: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Hands alerts to every output that wants them. Never blocks: an output whose intake
    /// queue is full drops the alert (counted, logged).
    pub fn submit(&self, alerts: &[Alert]) {
        if self.outputs.is_empty() {
            return;
        }
        let now = wall_ns();
        for a in alerts {
            let mut shared: Option<Arc<Alert>> = None;
            for o in &self.outputs {
                if !o.cfg.wants(a) {
                    continue;
                }
                let Some(tx) = &o.tx else { continue };
                let alert = shared.get_or_insert_with(|| Arc::new(a.clone())).clone();
                match tx.try_send(Item {
                    alert,
                    enqueued_ns: now,
                }) {
                    Ok(()) => {
                        o.shared.metrics.enqueued.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(_)) => o.shared.dropped(1, "intake queue full"),
                    Err(TrySendError::Disconnected(_)) => o.shared.dropped(1, "output stopped"),
                }
            }
        }
    }

    /// Counters of every output, by name.
    pub fn metrics(&self) -> Vec<(String, Snapshot)> {
        self.outputs
            .iter()
            .map(|o| (o.shared.name.clone(), o.shared.metrics.snapshot()))
            .collect()
    }

    /// Shared counters of every output, by name (for a metrics endpoint).
    pub fn metric_handles(&self) -> Vec<(String, Arc<OutputMetrics>)> {
        self.outputs
            .iter()
            .map(|o| (o.shared.name.clone(), o.shared.metrics.clone()))
            .collect()
    }

    /// File outputs reopen their files before the next write (log rotation by another tool).
    pub fn reopen(&self) {
        for o in &self.outputs {
            o.shared.reopen.store(true, Ordering::Relaxed);
            o.shared.cv.notify_all();
        }
    }

    /// Stops intake and lets every output deliver what it holds, until `deadline` at most
    /// (`None`: each output's `drain_timeout_secs`). An output with an on-disk spool whose
    /// receiver is failing stops early: its spool holds the rest for the next start.
    pub fn finish(mut self, deadline: Option<Instant>) -> Vec<Left> {
        let start = Instant::now();
        for o in &mut self.outputs {
            drop(o.tx.take());
        }
        for o in &mut self.outputs {
            if let Some(t) = o.intake.take() {
                let _ = t.join();
            }
        }
        let deadline_of =
            |o: &Output| deadline.unwrap_or(start + Duration::from_secs(o.cfg.drain_timeout_secs));
        loop {
            let now = Instant::now();
            let busy = self.outputs.iter().any(|o| {
                let s = &o.shared;
                let done = s.sender_done.load(Ordering::Acquire)
                    || (s.spool().on_disk() && s.failing.load(Ordering::Relaxed))
                    || now >= deadline_of(o);
                !done
            });
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for o in &self.outputs {
            o.shared.stop.store(true, Ordering::Release);
            o.shared.cv.notify_all();
        }
        let grace = Instant::now() + Duration::from_secs(2);
        for o in &mut self.outputs {
            while !o.shared.sender_done.load(Ordering::Acquire) && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(5));
            }
            if o.shared.sender_done.load(Ordering::Acquire) {
                if let Some(t) = o.sender.take() {
                    let _ = t.join();
                }
            }
        }
        self.outputs
            .iter()
            .map(|o| {
                let sp = o.shared.spool();
                o.shared.gauges(&sp);
                Left {
                    name: o.shared.name.clone(),
                    pending: sp.pending(),
                    on_disk: sp.on_disk(),
                    metrics: o.shared.metrics.snapshot(),
                }
            })
            .collect()
    }
}

fn start_one(i: usize, cfg: &OutputConfig, ctx: &EncodeContext) -> Result<Output, DeliveryError> {
    let name = cfg.name_or(i);
    let spool = Spool::open(SpoolOptions {
        dir: cfg.spool_dir(),
        max_bytes: cfg.spool_max_bytes,
        when_full: cfg.when_full,
        fsync: cfg.fsync,
    })?;
    let recovered = spool.counts().recovered;
    if recovered > 0 {
        tracing::info!(output = %name, "{recovered} alerts from the spool of a previous run will be sent");
    }
    let transport = Transport::build(cfg)?;
    let metrics = Arc::new(OutputMetrics::default());
    let shared = Arc::new(Shared {
        name: name.clone(),
        spool: Mutex::new(spool),
        cv: Condvar::new(),
        metrics,
        intake_done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        failing: AtomicBool::new(false),
        sender_done: AtomicBool::new(false),
        reopen: AtomicBool::new(false),
        last_drop_log: AtomicU64::new(0),
    });
    shared.gauges(&shared.spool());
    let (tx, rx) = crossbeam_channel::bounded::<Item>(cfg.queue_capacity);
    let intake = {
        let shared = shared.clone();
        let cfg = cfg.clone();
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name(format!("out-in-{name}"))
            .spawn(move || intake_loop(&shared, &cfg, &ctx, &rx))
            .map_err(DeliveryError::Thread)?
    };
    let sender = {
        let shared = shared.clone();
        let cfg = cfg.clone();
        std::thread::Builder::new()
            .name(format!("out-{name}"))
            .spawn(move || sender_loop(&shared, &cfg, transport))
            .map_err(DeliveryError::Thread)?
    };
    Ok(Output {
        cfg: cfg.clone(),
        tx: Some(tx),
        shared,
        intake: Some(intake),
        sender: Some(sender),
    })
}

/// The encoded record of an alert for one output: secrets masked, in the output's format.
fn record(item: &Item, cfg: &OutputConfig, format: AlertFormat, ctx: &EncodeContext) -> Record {
    let mut payload = Vec::with_capacity(1024);
    let mut a = Alert::clone(&item.alert);
    redact::redact(&mut a, cfg.redact_pii);
    sinks::siem::encode_frame(&a, format, ctx, &mut payload);
    Record {
        enqueued_ns: item.enqueued_ns,
        time_ns: a.time,
        alert_id: a.alert_id,
        dedup_key: a.dedup_key,
        payload,
    }
}

fn intake_loop(shared: &Shared, cfg: &OutputConfig, ctx: &EncodeContext, rx: &Receiver<Item>) {
    let format = cfg.format();
    let mut burst: Vec<Record> = Vec::with_capacity(BURST);
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(x) => x,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                // Lets `fsync = "batch"` sync what the last burst wrote.
                let mut sp = shared.spool();
                if let Err(e) = sp.commit() {
                    tracing::error!(output = %shared.name, "{e}");
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        burst.push(record(&first, cfg, format, ctx));
        while burst.len() < BURST {
            match rx.try_recv() {
                Ok(x) => burst.push(record(&x, cfg, format, ctx)),
                Err(_) => break,
            }
        }
        let mut sp = shared.spool();
        let mut dropped_new = 0;
        let mut dropped_old = 0;
        let mut too_large = 0;
        for r in burst.drain(..) {
            match sp.push(&r) {
                Pushed::Stored => {}
                Pushed::DroppedNewest => dropped_new += 1,
                Pushed::DroppedOldest(n) => dropped_old += n,
                Pushed::TooLarge => too_large += 1,
            }
        }
        if let Err(e) = sp.commit() {
            tracing::error!(output = %shared.name, "writing the spool: {e}");
        }
        shared.gauges(&sp);
        drop(sp);
        shared.cv.notify_all();
        if dropped_new > 0 {
            shared.dropped(
                dropped_new,
                "spool full (when_full = drop_newest): new alerts dropped",
            );
        }
        if dropped_old > 0 {
            shared.dropped(
                dropped_old,
                "spool full (when_full = drop_oldest): oldest alerts dropped",
            );
        }
        if too_large > 0 {
            shared.dropped(too_large, "alert larger than the spool's record limit");
        }
    }
    let mut sp = shared.spool();
    if let Err(e) = sp.commit() {
        tracing::error!(output = %shared.name, "writing the spool: {e}");
    }
    sp.sync();
    shared.gauges(&sp);
    drop(sp);
    shared.intake_done.store(true, Ordering::Release);
    shared.cv.notify_all();
}

/// Capped exponential backoff with jitter: attempt `n` waits a random time between half and
/// all of `min(max, initial × 2ⁿ)`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.min(20));
    let cap = exp.min(max);
    let half = cap / 2;
    half + Duration::from_nanos(fastrand::u64(
        0..=half.as_nanos().min(u64::MAX as u128) as u64,
    ))
}

struct DeadLetter {
    path: Option<PathBuf>,
    file: Option<File>,
    /// Bytes in the current file.
    bytes: u64,
    max_bytes: u64,
}

impl DeadLetter {
    fn write(&mut self, output: &str, r: &Record, reason: &str) {
        let line = serde_json::json!({
            "output": output,
            "unix_ns": wall_ns(),
            "alert_id": r.alert_id,
            "dedup_key": r.dedup_key,
            "reason": reason,
            "payload": String::from_utf8_lossy(&r.payload),
        });
        // Cloned: `open` needs the writer mutably (rejects are rare).
        let Some(path) = self.path.clone() else {
            tracing::error!(output, alert_id = %r.alert_id, "alert rejected for good: {reason}");
            return;
        };
        let path = path.as_path();
        let mut b = line.to_string().into_bytes();
        b.push(b'\n');
        if self.file.is_none() && !self.open(output, path) {
            return;
        }
        if self.bytes > 0 && self.bytes + b.len() as u64 > self.max_bytes {
            // Bounded: the full file becomes `.1`, dropping the one before it.
            let mut old = path.as_os_str().to_owned();
            old.push(".1");
            self.file = None;
            match std::fs::rename(path, &old) {
                Ok(()) => tracing::warn!(
                    output,
                    "dead-letter file {} reached {} bytes: kept as {}, the one before it removed",
                    path.display(),
                    self.bytes,
                    std::path::Path::new(&old).display()
                ),
                Err(e) => tracing::error!(output, "dead-letter file {}: {e}", path.display()),
            }
            if !self.open(output, path) {
                return;
            }
        }
        if let Some(f) = self.file.as_mut() {
            match f.write_all(&b) {
                Ok(()) => self.bytes += b.len() as u64,
                Err(e) => {
                    tracing::error!(output, "dead-letter file {}: {e}", path.display());
                    self.file = None;
                }
            }
        }
    }

    /// Opens (appending) the dead-letter file; false, logged, when it cannot be.
    fn open(&mut self, output: &str, path: &std::path::Path) -> bool {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => {
                self.bytes = f.metadata().map_or(0, |m| m.len());
                self.file = Some(f);
                true
            }
            Err(e) => {
                tracing::error!(output, "dead-letter file {}: {e}", path.display());
                false
            }
        }
    }
}

fn sender_loop(shared: &Shared, cfg: &OutputConfig, mut transport: Transport) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(output = %shared.name, "cannot start: {e}");
            shared.sender_done.store(true, Ordering::Release);
            return;
        }
    };
    let mut dead = DeadLetter {
        path: cfg.dead_letter_path(),
        file: None,
        bytes: 0,
        max_bytes: cfg.dead_letter_max_bytes,
    };
    let initial = Duration::from_millis(cfg.retry_initial_ms.max(1));
    let max = Duration::from_millis(cfg.retry_max_ms.max(1));
    // A whole attempt may not outlast a few of the transport's own timeouts (HEC ack polling).
    let attempt_limit = Duration::from_secs(cfg.timeout_secs.max(1) * 5);
    let mut last_fail_log: Option<Instant> = None;
    'outer: loop {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        if shared.reopen.swap(false, Ordering::Relaxed) {
            transport.reopen();
        }
        let batch = {
            let mut sp = shared.spool();
            let intake_done = shared.intake_done.load(Ordering::Acquire);
            let b = sp.next_batch(cfg.batch_max, BATCH_BYTES);
            shared.gauges(&sp);
            if b.records.is_empty() {
                if intake_done {
                    break;
                }
                let _ = shared
                    .cv
                    .wait_timeout(sp, Duration::from_millis(200))
                    .map_err(|_| ());
                continue;
            }
            b
        };
        let n = batch.records.len();
        let mut todo: Vec<usize> = (0..n).collect();
        let mut attempt = 0u32;
        let mut rejected = 0u64;
        // Records per request: halved each time the receiver says the request is too large.
        let mut per_request = n.max(1);
        loop {
            let part = per_request.min(todo.len());
            let refs: Vec<&Record> = todo[..part].iter().map(|&i| &batch.records[i]).collect();
            shared
                .metrics
                .sent
                .fetch_add(refs.len() as u64, Ordering::Relaxed);
            let res = rt.block_on(async {
                tokio::time::timeout(attempt_limit, transport.send(&refs)).await
            });
            let res = match res {
                Ok(r) => r,
                Err(_) => {
                    transport.reset();
                    Err(SendError::Retriable(format!(
                        "no result within {attempt_limit:?}"
                    )))
                }
            };
            let mut again = Vec::new();
            let mut reason = String::new();
            // A part refused as too large and split: go on at once, no backoff.
            let mut split = false;
            match res {
                Ok(items) if items.len() == refs.len() => {
                    for (k, it) in items.into_iter().enumerate() {
                        match it {
                            ItemResult::Delivered => {}
                            ItemResult::Retry(r) => {
                                again.push(todo[k]);
                                reason = r;
                            }
                            ItemResult::Reject(r) => {
                                dead.write(&shared.name, refs[k], &r);
                                rejected += 1;
                            }
                        }
                    }
                }
                Ok(items) => {
                    reason = format!("{} results for {} alerts", items.len(), refs.len());
                    again.extend_from_slice(&todo[..part]);
                }
                Err(SendError::Retriable(r)) => {
                    reason = r;
                    again.extend_from_slice(&todo[..part]);
                }
                Err(SendError::TooLarge(r)) if part > 1 => {
                    tracing::info!(
                        output = %shared.name,
                        alerts = part,
                        "{r}: sending the batch again in halves"
                    );
                    per_request = part.div_ceil(2);
                    again.extend_from_slice(&todo[..part]);
                    split = true;
                }
                Err(SendError::Permanent(r) | SendError::TooLarge(r)) => {
                    for rec in &refs {
                        dead.write(&shared.name, rec, &r);
                    }
                    rejected += refs.len() as u64;
                }
            }
            // Whatever the request did not carry is still to send.
            let failed = again.len();
            again.extend_from_slice(&todo[part..]);
            todo = again;
            if todo.is_empty() {
                shared.failing.store(false, Ordering::Relaxed);
                if last_fail_log.take().is_some() {
                    tracing::info!(output = %shared.name, "delivering again");
                }
                break;
            }
            if split || failed == 0 {
                // Progress: the rest of the batch goes out now.
                continue;
            }
            shared.failing.store(true, Ordering::Relaxed);
            shared
                .metrics
                .retried
                .fetch_add(todo.len() as u64, Ordering::Relaxed);
            let wait = backoff(initial, max, attempt);
            attempt = attempt.saturating_add(1);
            if last_fail_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    output = %shared.name,
                    alerts = todo.len(),
                    "delivery failed: {reason}; retrying in {wait:?}"
                );
                last_fail_log = Some(Instant::now());
            }
            let sp = shared.spool();
            let _ = shared
                .cv
                .wait_timeout_while(sp, wait, |_| !shared.stop.load(Ordering::Acquire));
            if shared.stop.load(Ordering::Acquire) {
                // Not acknowledged: the spool keeps the batch.
                break 'outer;
            }
        }
        let now = wall_ns();
        for r in &batch.records {
            shared
                .metrics
                .record_latency(now.saturating_sub(r.enqueued_ns) / 1000, 1);
        }
        shared
            .metrics
            .acked
            .fetch_add(n as u64 - rejected, Ordering::Relaxed);
        shared
            .metrics
            .dead_lettered
            .fetch_add(rejected, Ordering::Relaxed);
        let mut sp = shared.spool();
        sp.ack(batch.end, n as u64);
        shared.gauges(&sp);
    }
    shared.sender_done.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        for a in 0..30 {
            let d = backoff(i, m, a);
            let cap = (i * 2u32.pow(a.min(20))).min(m);
            assert!(d >= cap / 2 && d <= cap, "{a}: {d:?}");
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| backoff(i, m, 3)).collect();
        assert!(spread.len() > 1);
    }
}
