//! Record output off the packet path: a writer thread takes batches of transactions over a
//! bounded channel, encodes them and writes them out, so encoding and I/O overlap with
//! packet processing and a slow disk shows up as back-pressure, never as lost order.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use engine::TxRecord;

pub type Batch = Vec<TxRecord>;

/// Record batches in flight to the output thread: enough to ride out a slow write, few enough
/// that the records held (each owns its heads and kept bodies) stay a few MiB.
const OUTPUT_QUEUE: usize = 8;

/// What the output stage did.
#[derive(Debug, Default, Clone)]
pub struct OutputStats {
    pub written: u64,
    /// Anomalies found by this stage (content decoding), by kind.
    pub anomalies: Vec<(http::HttpAnomaly, u64)>,
}

pub struct TxWriter {
    tx: Option<Sender<Batch>>,
    handle: Option<JoinHandle<io::Result<OutputStats>>>,
    /// Emptied batches come back for reuse, so steady state allocates no batch vectors.
    recycled: Receiver<Batch>,
}

fn open_sink(path: &Path) -> Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdout()));
    }
    let f = File::create(path).with_context(|| {
        format!(
            "{}: cannot create the transactions file; check the directory exists and is writable",
            path.display()
        )
    })?;
    Ok(Box::new(f))
}

impl TxWriter {
    /// `decode`: undo bodies' content codings (bounded by the config) before writing, as the
    /// stage that inspects bodies would; the decompression anomalies land on the records.
    pub fn start(path: &Path, decode: Option<http::HttpConfig>) -> Result<TxWriter> {
        let sink = open_sink(path)?;
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(OUTPUT_QUEUE);
        let (back_tx, back_rx) = crossbeam_channel::bounded::<Batch>(OUTPUT_QUEUE + 2);
        let handle = std::thread::Builder::new()
            .name("mirador-output".into())
            .spawn(move || -> io::Result<OutputStats> {
                // Records are encoded straight into one buffer that is written when full: no
                // second copy through a BufWriter.
                let mut w = sink;
                let mut buf = Vec::with_capacity(1 << 17);
                let mut decoders = http::Decoders::default();
                let mut n = 0u64;
                let mut found = [0u64; 2];
                for mut batch in rx {
                    for rec in batch.iter_mut() {
                        if let Some(cfg) = &decode {
                            rec.tx.decode_bodies_with(cfg, &mut decoders);
                            for (i, a) in [
                                http::HttpAnomaly::DecompressionLimit,
                                http::HttpAnomaly::DecompressionError,
                            ]
                            .into_iter()
                            .enumerate()
                            {
                                found[i] += u64::from(rec.tx.anomalies.contains(a));
                            }
                        }
                        sinks::ecs::transaction(&mut buf, rec);
                        n += 1;
                        if buf.len() >= 1 << 16 {
                            w.write_all(&buf)?;
                            buf.clear();
                        }
                    }
                    // The records go back with the batch: the packet thread allocated them, so it
                    // frees them too (a free on another thread is costly for the allocator).
                    let _ = back_tx.try_send(batch);
                }
                w.write_all(&buf)?;
                w.flush()?;
                let anomalies = [
                    http::HttpAnomaly::DecompressionLimit,
                    http::HttpAnomaly::DecompressionError,
                ]
                .into_iter()
                .zip(found)
                .filter(|(_, n)| *n > 0)
                .collect();
                Ok(OutputStats {
                    written: n,
                    anomalies,
                })
            })
            .context("cannot start the output thread")?;
        Ok(TxWriter {
            tx: Some(tx),
            handle: Some(handle),
            recycled: back_rx,
        })
    }

    /// An empty batch vector, reused when one has come back (its old records are dropped
    /// here, on the thread that allocated them).
    pub fn batch(&self) -> Batch {
        match self.recycled.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(256),
        }
    }

    /// Hands a batch to the writer. Fails only if the writer stopped (its error is reported
    /// by `finish`).
    pub fn send(&self, batch: Batch) -> bool {
        match &self.tx {
            Some(tx) => tx.send(batch).is_ok(),
            None => false,
        }
    }

    /// Flushes and returns what the stage did.
    pub fn finish(mut self) -> Result<OutputStats> {
        drop(self.tx.take());
        let handle = self
            .handle
            .take()
            .context("output thread already finished")?;
        let n = handle
            .join()
            .map_err(|_| anyhow::anyhow!("output thread panicked"))?
            .context("writing transactions")?;
        Ok(n)
    }
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
