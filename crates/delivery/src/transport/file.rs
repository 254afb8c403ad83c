//! `file`: JSON lines (or any format, one alert a line) appended to a file, rotated by size
//! and age, rotated files gzip-compressed and the oldest removed; `stdout`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::{all_delivered, classify_io, ItemResult, SendError};
use crate::config::OutputConfig;
use crate::spool::{Fsync, Record};
use crate::DeliveryError;

/// Default size at which a file is rotated.
pub const ROTATE_BYTES: u64 = 100 << 20;
/// Default number of rotated files kept.
pub const ROTATE_KEEP: usize = 5;

pub struct FileOut {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    opened: Instant,
    rotate_bytes: u64,
    rotate_secs: u64,
    keep: usize,
    compress: bool,
    sync: bool,
    seq: u64,
    buf: Vec<u8>,
}

impl FileOut {
    pub fn open(cfg: &OutputConfig) -> Result<FileOut, DeliveryError> {
        let path = PathBuf::from(cfg.path.clone().unwrap_or_default());
        let truncate = cfg.truncate.unwrap_or(false);
        let file = open(&path, truncate).map_err(|e| DeliveryError::Open(path.clone(), e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(FileOut {
            path,
            file: Some(file),
            size,
            opened: Instant::now(),
            rotate_bytes: cfg.rotate_bytes.unwrap_or(ROTATE_BYTES),
            rotate_secs: cfg.rotate_secs.unwrap_or(0),
            keep: cfg.rotate_keep.unwrap_or(ROTATE_KEEP).max(1),
            compress: cfg.compress.unwrap_or(true),
            sync: cfg.fsync == Fsync::Always,
            seq: 0,
            buf: Vec::new(),
        })
    }

    pub fn reopen(&mut self) {
        match open(&self.path, false) {
            Ok(f) => {
                self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.file = Some(f);
                self.opened = Instant::now();
            }
            Err(e) => tracing::error!("{}: cannot reopen: {e}", self.path.display()),
        }
    }

    pub fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        let due = (self.rotate_bytes > 0 && self.size >= self.rotate_bytes)
            || (self.rotate_secs > 0 && self.opened.elapsed().as_secs() >= self.rotate_secs);
        if due && self.size > 0 {
            self.rotate();
        }
        if self.file.is_none() {
            self.reopen();
        }
        let Some(f) = self.file.as_mut() else {
            return Err(SendError::Retriable(format!(
                "{}: cannot open",
                self.path.display()
            )));
        };
        self.buf.clear();
        for r in batch {
            self.buf.extend_from_slice(&r.payload);
            self.buf.push(b'\n');
        }
        let what = self.path.display().to_string();
        f.write_all(&self.buf).map_err(|e| classify_io(&what, &e))?;
        if self.sync {
            f.sync_data().map_err(|e| classify_io(&what, &e))?;
        }
        self.size += self.buf.len() as u64;
        Ok(all_delivered(batch.len()))
    }

    /// Renames the file aside, compresses it, prunes old ones, starts a new file.
    fn rotate(&mut self) {
        self.file = None;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.seq += 1;
        let aside = PathBuf::from(format!("{}.{secs}.{:06}", self.path.display(), self.seq));
        if let Err(e) = fs::rename(&self.path, &aside) {
            tracing::error!("{}: cannot rotate: {e}", self.path.display());
            self.reopen();
            return;
        }
        if self.compress {
            if let Err(e) = gzip(&aside) {
                tracing::error!("{}: cannot compress: {e}", aside.display());
            }
        }
        prune(&self.path, self.keep);
        match open(&self.path, true) {
            Ok(f) => self.file = Some(f),
            Err(e) => tracing::error!("{}: cannot open after rotation: {e}", self.path.display()),
        }
        self.size = 0;
        self.opened = Instant::now();
    }
}

fn open(path: &Path, truncate: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path)
}

fn gzip(path: &Path) -> io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let mut input = File::open(path)?;
    let out = File::create(&gz)?;
    let mut enc = GzEncoder::new(out, Compression::default());
    io::copy(&mut input, &mut enc)?;
    enc.finish()?.sync_all()?;
    fs::remove_file(path)
}

/// Keeps the `keep` newest rotated files of `path` (`path.<secs>.<seq>[.gz]`).
fn prune(path: &Path, keep: usize) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{name}.");
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut rotated: Vec<((u64, u64), PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix(&prefix)?;
            let rest = rest.strip_suffix(".gz").unwrap_or(rest);
            let (secs, seq) = rest.split_once('.')?;
            Some(((secs.parse().ok()?, seq.parse().ok()?), e.path()))
        })
        .collect();
    rotated.sort();
    let extra = rotated.len().saturating_sub(keep);
    for (_, p) in rotated.into_iter().take(extra) {
        let _ = fs::remove_file(p);
    }
}

/// `stdout`: one alert a line.
#[derive(Default)]
pub struct StdoutOut {
    buf: Vec<u8>,
}

impl StdoutOut {
    pub fn send(&mut self, batch: &[&Record]) -> Result<Vec<ItemResult>, SendError> {
        self.buf.clear();
        for r in batch {
            self.buf.extend_from_slice(&r.payload);
            self.buf.push(b'\n');
        }
        let mut out = io::stdout().lock();
        let r = out.write_all(&self.buf).and_then(|()| out.flush());
        match r {
            Ok(()) => Ok(all_delivered(batch.len())),
            // Nobody reads any more: retrying would never end.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                Err(SendError::Permanent(format!("stdout: {e}")))
            }
            Err(e) => Err(classify_io("stdout", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputType;
    use std::io::Read;

    fn rec(i: usize) -> Record {
        Record {
            enqueued_ns: 0,
            time_ns: 0,
            alert_id: format!("{i}"),
            dedup_key: String::new(),
            payload: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(100)).into_bytes(),
        }
    }

    #[test]
    fn rotates_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut cfg = OutputConfig::new(OutputType::File);
        cfg.path = Some(path.display().to_string());
        cfg.rotate_secs = Some(1);
        cfg.compress = Some(false);
        let mut f = FileOut::open(&cfg).unwrap();
        let (a, b) = (rec(1), rec(2));
        f.send(&[&a]).unwrap();
        f.send(&[&a]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        f.send(&[&b]).unwrap();
        let rotated: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| *p != path)
            .collect();
        assert_eq!(rotated.len(), 1, "{rotated:?}");
        assert_eq!(fs::read_to_string(&rotated[0]).unwrap().lines().count(), 2);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn rotates_by_size_compresses_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut cfg = OutputConfig::new(OutputType::File);
        cfg.path = Some(path.display().to_string());
        cfg.rotate_bytes = Some(1000);
        cfg.rotate_keep = Some(3);
        let mut f = FileOut::open(&cfg).unwrap();
        let recs: Vec<Record> = (0..100).map(rec).collect();
        for chunk in recs.chunks(5) {
            let refs: Vec<&Record> = chunk.iter().collect();
            assert_eq!(f.send(&refs).unwrap().len(), chunk.len());
        }
        let mut gz: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "gz"))
            .collect();
        gz.sort();
        assert_eq!(gz.len(), 3, "{gz:?}");
        // The newest rotated file holds the lines just before the live file's.
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(gz.last().unwrap()).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let live = fs::read_to_string(&path).unwrap();
        let first_live: serde_json::Value =
            serde_json::from_str(live.lines().next().unwrap()).unwrap();
        let last_rotated: serde_json::Value =
            serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(
            last_rotated["n"].as_u64().unwrap() + 1,
            first_live["n"].as_u64().unwrap()
        );
        assert_eq!(
            live.lines().last().unwrap(),
            std::str::from_utf8(&recs[99].payload).unwrap()
        );
    }
}
