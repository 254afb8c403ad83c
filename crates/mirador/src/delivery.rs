//! Record delivery for `run`, on a tokio runtime of its own. The packet side offers batches
//! and never waits: when the delivery queue is full the batch is dropped and counted. Writes
//! are asynchronous, so an output that stalls (a pipe nobody reads, a slow disk) costs
//! records, counted, and never capture throughput or the sensor's responsiveness.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::pipeline::RecordBatch;

enum Msg {
    Batch(RecordBatch),
    /// Open this output instead (reload; log rotation renames the file then sends SIGHUP).
    Reopen(String),
}

/// Batches waiting for the writer.
const QUEUE: usize = 32;

type Output = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// `-` is stdout; a path is opened for appending (created if missing).
fn open(path: &str) -> Result<Option<std::fs::File>> {
    if path.is_empty() || path == "-" {
        return Ok(None);
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{path}: cannot open the transactions file; check the directory exists and is writable"))?;
    Ok(Some(f))
}

fn to_async(path: &str, file: Option<std::fs::File>) -> Option<Output> {
    match (path, file) {
        ("", _) => None,
        (_, Some(f)) => Some(Box::pin(tokio::fs::File::from_std(f))),
        (_, None) => Some(Box::pin(tokio::io::stdout())),
    }
}

pub struct Delivery {
    /// Batches the writer is done with, to give back to the pipeline.
    pub recycled: crossbeam_channel::Receiver<RecordBatch>,
    tx: Option<mpsc::Sender<Msg>>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Delivery {
    /// Opens `path` now (so a bad path fails at start, before privileges are dropped) and
    /// starts the writer.
    pub fn start(path: &str, metrics: Arc<Metrics>) -> Result<Delivery> {
        let first = open(path)?;
        let (recycle, recycled) = crossbeam_channel::bounded::<RecordBatch>(QUEUE);
        let path = path.to_string();
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel();
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("mirador-delivery".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("record delivery cannot start: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut out = to_async(&path, first);
                    let mut buf = Vec::with_capacity(1 << 17);
                    while let Some(msg) = rx.recv().await {
                        match msg {
                            Msg::Batch(batch) => {
                                if let Some(o) = out.as_mut() {
                                    for (i, rec) in batch.iter().enumerate() {
                                        crate::output::prefetch_ahead(&batch, i);
                                        sinks::ecs::transaction(&mut buf, rec);
                                    }
                                    match o.write_all(&buf).await {
                                        Ok(()) => {
                                            m.records_written
                                                .fetch_add(batch.len() as u64, Ordering::Relaxed);
                                        }
                                        Err(e) => {
                                            m.output_dropped
                                                .fetch_add(batch.len() as u64, Ordering::Relaxed);
                                            tracing::error!("writing transactions: {e}");
                                        }
                                    }
                                    buf.clear();
                                    if rx.is_empty() {
                                        let _ = o.flush().await;
                                    }
                                }
                                m.output_backlog.store(rx.len() as u64, Ordering::Relaxed);
                                let _ = recycle.try_send(batch);
                            }
                            Msg::Reopen(p) => {
                                if let Some(o) = out.as_mut() {
                                    let _ = o.flush().await;
                                }
                                match open(&p) {
                                    Ok(f) => out = to_async(&p, f),
                                    Err(e) => tracing::error!(
                                        "reload: keeping the old transactions output: {e:#}"
                                    ),
                                }
                            }
                        }
                    }
                    if let Some(o) = out.as_mut() {
                        let _ = o.flush().await;
                    }
                });
                let _ = done_tx.send(());
            })?;
        Ok(Delivery {
            recycled,
            tx: Some(tx),
            done,
            thread: Some(thread),
            metrics,
        })
    }

    /// Hands a batch over without waiting; a full queue drops it (counted) and gives it back
    /// for recycling.
    pub fn offer(&self, batch: RecordBatch) -> Option<RecordBatch> {
        let Some(tx) = &self.tx else {
            return Some(batch);
        };
        match tx.try_send(Msg::Batch(batch)) {
            Ok(()) => None,
            Err(
                mpsc::error::TrySendError::Full(Msg::Batch(b))
                | mpsc::error::TrySendError::Closed(Msg::Batch(b)),
            ) => {
                self.metrics
                    .output_dropped
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                Some(b)
            }
            Err(_) => None,
        }
    }

    pub fn reopen(&self, path: &str) {
        if let Some(tx) = &self.tx {
            if tx.try_send(Msg::Reopen(path.to_string())).is_err() {
                tracing::error!(
                    "reload: the output is busy; the transactions file is not reopened"
                );
            }
        }
    }

    /// Lets the writer finish what it holds, waiting until `deadline` at most. Returns
    /// whether it finished.
    pub fn finish(mut self, deadline: Instant) -> bool {
        drop(self.tx.take());
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let finished = self.done.recv_timeout(left).is_ok();
        if finished {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        finished
    }
}
