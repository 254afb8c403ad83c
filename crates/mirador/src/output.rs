//! Writing records: transactions encoded as ECS JSON lines into one buffer that is written
//! when full (no second copy through a BufWriter).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use engine::TxRecord;

pub struct RecordWriter {
    sink: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl RecordWriter {
    /// `-` is stdout; anything else a file created (truncated) at that path.
    pub fn open(path: &Path) -> Result<RecordWriter> {
        let sink: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path).with_context(|| {
                format!(
                    "{}: cannot create the output file; check the directory exists and is writable",
                    path.display()
                )
            })?)
        };
        Ok(RecordWriter {
            sink,
            buf: Vec::with_capacity(1 << 17),
        })
    }

    /// Encodes and writes a batch; returns the records written.
    pub fn write(&mut self, batch: &[TxRecord]) -> Result<u64> {
        for (i, rec) in batch.iter().enumerate() {
            prefetch_ahead(batch, i);
            sinks::ecs::transaction(&mut self.buf, rec);
            if self.buf.len() >= 1 << 16 {
                self.sink
                    .write_all(&self.buf)
                    .context("writing transactions")?;
                self.buf.clear();
            }
        }
        Ok(batch.len() as u64)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.sink
            .write_all(&self.buf)
            .context("writing transactions")?;
        self.buf.clear();
        self.sink.flush().context("writing transactions")?;
        Ok(())
    }
}

/// Starts loading the heads of the record two after `batch[i]`, for a loop that encodes
/// `batch[i]` now: see [`prefetch_heads`].
pub(crate) fn prefetch_ahead(batch: &[TxRecord], i: usize) {
    if let Some(ahead) = batch.get(i + 2) {
        prefetch_heads(&ahead.tx);
    }
}

/// Starts loading both heads of `tx`, which the record reads first (header values) and which
/// were written on another core: a record or two ahead, their cache misses overlap.
fn prefetch_heads(tx: &http::Transaction) {
    use features::prefetch::read_slice;
    let heads = [
        tx.request.as_ref().map(|r| &r.head),
        tx.response.as_ref().map(|r| &r.head),
    ];
    for head in heads.into_iter().flatten() {
        read_slice(&head.raw, 512);
        read_slice(&head.fields, 256);
    }
}

/// What alert encoders say of this sensor: the host name (syslog HOSTNAME, CEF dvchost).
pub fn encode_context() -> sinks::siem::EncodeContext {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mirador".to_string());
    sinks::siem::EncodeContext::new(host.clone(), host)
}

/// The `--alert-format` values, as RECORDS.md §4 spells them.
pub fn alert_format_parser(
) -> impl clap::builder::TypedValueParser<Value = sinks::siem::AlertFormat> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(sinks::siem::AlertFormat::ALL.map(|f| f.as_str()))
        .try_map(|s: String| s.parse::<sinks::siem::AlertFormat>())
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
