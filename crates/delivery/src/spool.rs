//! The buffer between intake and transport: segments of length-prefixed, CRC32-checked
//! records, on disk under a spool directory or in memory when there is none. A record is
//! removed only when [`Spool::ack`] says the receiver took it; on disk, what was not
//! acknowledged is read again after a restart. Bounded in bytes, with a when-full policy.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::DeliveryError;

/// Length of a record header: body length and CRC32 of the body, both little-endian u32.
const HEADER: usize = 8;
/// Largest body accepted; a larger length in a header means the segment is damaged there.
pub const MAX_RECORD: usize = 1 << 20;
const ACK_FILE: &str = "ack";
const SEG_EXT: &str = "seg";
/// How often `fsync = "batch"` syncs.
const BATCH_SYNC: Duration = Duration::from_secs(1);

/// When records reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// After every write burst, before the records are handed to the transport.
    Always,
    /// At most once a second.
    #[default]
    Batch,
    /// Left to the operating system.
    Never,
}

/// What a full spool does with a new record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The new record is dropped.
    #[default]
    DropNewest,
    /// The oldest segment the sender has not started reading is dropped to make room (the
    /// batch in flight is kept: an alert is delivered or counted as dropped, never both).
    DropOldest,
}

/// One alert as spooled: what the transport sends and what it needs beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Wall time of the submit, nanoseconds since the Unix epoch (for delivery latency).
    pub enqueued_ns: u64,
    /// The alert's packet time, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub alert_id: String,
    pub dedup_key: String,
    /// The encoded alert, without a line terminator.
    pub payload: Vec<u8>,
}

impl Record {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.enqueued_ns.to_le_bytes());
        out.extend_from_slice(&self.time_ns.to_le_bytes());
        push_str(out, &self.alert_id);
        push_str(out, &self.dedup_key);
        out.extend_from_slice(&self.payload);
    }

    fn decode(b: &[u8]) -> Option<Record> {
        let enqueued_ns = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let time_ns = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
        let (alert_id, rest) = take_str(b.get(16..)?)?;
        let (dedup_key, rest) = take_str(rest)?;
        Some(Record {
            enqueued_ns,
            time_ns,
            alert_id,
            dedup_key,
            payload: rest.to_vec(),
        })
    }

    /// Bytes this record takes in a segment (at most: overlong ids are cut).
    pub fn spooled_len(&self) -> usize {
        HEADER + 16 + 4 + self.alert_id.len() + self.dedup_key.len() + self.payload.len()
    }
}

/// A u16 length and the string, cut at a character boundary to fit.
fn push_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    let b = &s.as_bytes()[..n];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn take_str(b: &[u8]) -> Option<(String, &[u8])> {
    let n = usize::from(u16::from_le_bytes(b.get(..2)?.try_into().ok()?));
    let s = std::str::from_utf8(b.get(2..2 + n)?).ok()?.to_string();
    Some((s, b.get(2 + n..)?))
}

/// A place in the spool: segment id and byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub seg: u64,
    pub off: u64,
}

/// Records read for sending; acknowledge them with [`Spool::ack`]. Never spans segments.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Where the batch's records end.
    pub end: Cursor,
}

struct Segment {
    id: u64,
    /// Committed (readable) length in bytes.
    len: u64,
    /// Records in it, and of those, acknowledged (or skipped as corrupt).
    records: u64,
    done: u64,
    /// Bytes from its start that are acknowledged (no longer counted as held).
    acked_off: u64,
    /// Memory mode: the bytes.
    mem: Option<Vec<u8>>,
    /// Disk mode: the file, opened for reading (and for writing when active).
    file: Option<File>,
}

/// What [`Spool::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// The spool was full: the new record was dropped.
    DroppedNewest,
    /// The spool was full: this many older records were dropped, the new one stored.
    DroppedOldest(u64),
    /// The record is larger than [`MAX_RECORD`] or than the whole spool.
    TooLarge,
}

/// Settings of one spool.
#[derive(Clone, Debug)]
pub struct SpoolOptions {
    /// `None`: memory only.
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
    pub when_full: WhenFull,
    pub fsync: Fsync,
}

/// Counters a spool keeps; the output's metrics read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolCounts {
    /// Records skipped because their checksum or framing was wrong.
    pub corrupt: u64,
    /// Records in segments found at open (not yet acknowledged by the previous run).
    pub recovered: u64,
}

pub struct Spool {
    opts: SpoolOptions,
    segment_bytes: u64,
    segs: VecDeque<Segment>,
    next_id: u64,
    read: Cursor,
    ack: Cursor,
    /// Encoded records not yet written to the active segment.
    staged: Vec<u8>,
    staged_records: u64,
    /// Bytes held (written and staged, not yet retired).
    bytes: u64,
    /// Records held and not acknowledged.
    pending: u64,
    /// Records not yet handed out by [`Spool::next_batch`].
    unread: u64,
    counts: SpoolCounts,
    last_sync: Instant,
    unsynced: bool,
    ack_dirty: bool,
}

impl Spool {
    /// Opens (creating) the spool; on disk, finds the segments and the acknowledged offset of
    /// a previous run and counts what is left.
    pub fn open(opts: SpoolOptions) -> Result<Spool, DeliveryError> {
        let segment_bytes = (opts.max_bytes / 8).clamp(64 << 10, 16 << 20);
        let mut s = Spool {
            opts,
            segment_bytes,
            segs: VecDeque::new(),
            next_id: 1,
            read: Cursor::default(),
            ack: Cursor::default(),
            staged: Vec::new(),
            staged_records: 0,
            bytes: 0,
            pending: 0,
            unread: 0,
            counts: SpoolCounts::default(),
            last_sync: Instant::now(),
            unsynced: false,
            ack_dirty: false,
        };
        if let Some(dir) = s.opts.dir.clone() {
            s.recover(&dir)?;
        }
        Ok(s)
    }

    fn recover(&mut self, dir: &Path) -> Result<(), DeliveryError> {
        let io = |e: std::io::Error| DeliveryError::Spool(dir.to_path_buf(), e);
        fs::create_dir_all(dir).map_err(io)?;
        let ack = read_ack(&dir.join(ACK_FILE));
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            if let Ok(id) = stem.parse::<u64>() {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        for id in ids {
            let path = seg_path(dir, id);
            if id < ack.seg {
                let _ = fs::remove_file(&path);
                continue;
            }
            let file = OpenOptions::new().read(true).open(&path).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let start = if id == ack.seg { ack.off.min(len) } else { 0 };
            let mut seg = Segment {
                id,
                len,
                records: 0,
                done: 0,
                acked_off: start,
                mem: None,
                file: Some(file),
            };
            // Count the records left (sealed segment: a torn tail counts as one corrupt).
            let n = count_records(&seg, start);
            seg.records = n;
            self.bytes += len - start;
            self.pending += n;
            self.unread += n;
            self.counts.recovered += n;
            self.next_id = id + 1;
            self.segs.push_back(seg);
        }
        if !self.segs.is_empty() {
            // Never append to a segment of a previous run (its tail may be torn).
            self.segs.push_back(Segment {
                id: self.next_id,
                len: 0,
                records: 0,
                done: 0,
                acked_off: 0,
                mem: None,
                file: None,
            });
            self.next_id += 1;
        }
        self.read = match self.segs.front() {
            Some(f) if f.id == ack.seg => ack,
            Some(f) => Cursor { seg: f.id, off: 0 },
            None => Cursor {
                seg: self.next_id,
                off: 0,
            },
        };
        self.ack = self.read;
        Ok(())
    }

    pub fn counts(&self) -> SpoolCounts {
        self.counts
    }

    /// Bytes held, acknowledged ones excluded.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Records written and not yet handed out.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    pub fn on_disk(&self) -> bool {
        self.opts.dir.is_some()
    }

    /// Stages one record; [`Spool::commit`] writes what was staged.
    pub fn push(&mut self, rec: &Record) -> Pushed {
        let mut body = Vec::with_capacity(rec.spooled_len());
        rec.encode(&mut body);
        let need = (HEADER + body.len()) as u64;
        if need > MAX_RECORD as u64 || need > self.opts.max_bytes {
            return Pushed::TooLarge;
        }
        let mut dropped = 0;
        while self.bytes + need > self.opts.max_bytes {
            match self.opts.when_full {
                WhenFull::DropNewest => return Pushed::DroppedNewest,
                WhenFull::DropOldest => match self.drop_oldest() {
                    Some(n) => dropped += n,
                    None => return Pushed::DroppedNewest,
                },
            }
        }
        self.staged
            .extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.staged
            .extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        self.staged.extend_from_slice(&body);
        self.staged_records += 1;
        self.bytes += need;
        self.pending += 1;
        if dropped > 0 {
            Pushed::DroppedOldest(dropped)
        } else {
            Pushed::Stored
        }
    }

    /// Drops the oldest segment the sender has not started reading (sealing the active one
    /// first when it is that one): what the sender holds in flight is never dropped, so an
    /// alert is either delivered or counted as dropped, not both. The records dropped; `None`
    /// when there is nothing to drop.
    fn drop_oldest(&mut self) -> Option<u64> {
        let read = self.read;
        let untouched =
            |s: &Segment| s.id > read.seg || (s.id == read.seg && read.off == 0 && s.done == 0);
        let mut idx = self.segs.iter().position(untouched);
        if idx.is_some_and(|i| i + 1 == self.segs.len()) {
            if self.segs.back().is_some_and(|s| s.len > 0) {
                self.seal_active();
            } else {
                idx = None;
            }
        }
        let Some(i) = idx else {
            // Nothing written is droppable: the records staged in this burst go.
            if self.staged_records == 0 {
                return None;
            }
            let n = self.staged_records;
            self.bytes = self.bytes.saturating_sub(self.staged.len() as u64);
            self.pending = self.pending.saturating_sub(n);
            self.staged.clear();
            self.staged_records = 0;
            return Some(n);
        };
        let seg = self.segs.remove(i)?;
        self.bytes = self
            .bytes
            .saturating_sub(seg.len.saturating_sub(seg.acked_off));
        let n = seg.records.saturating_sub(seg.done);
        self.pending = self.pending.saturating_sub(n);
        self.unread = self.unread.saturating_sub(n);
        if let Some(dir) = &self.opts.dir {
            let _ = fs::remove_file(seg_path(dir, seg.id));
        }
        // The read cursor goes on with the next segment by itself (it looks for the first
        // segment at or after its own).
        Some(n)
    }

    /// Seals the active segment: later records go to a new one.
    fn seal_active(&mut self) {
        if let Some(last) = self.segs.back() {
            if last.len > 0 {
                self.segs.push_back(Segment {
                    id: self.next_id,
                    len: 0,
                    records: 0,
                    done: 0,
                    acked_off: 0,
                    mem: None,
                    file: None,
                });
                self.next_id += 1;
            }
        }
    }

    /// Writes the staged records to the active segment (a new one when it is full) and syncs
    /// by the fsync policy. Records become readable only here.
    pub fn commit(&mut self) -> Result<(), DeliveryError> {
        if self.staged.is_empty() {
            self.maybe_sync();
            return Ok(());
        }
        let need_new = match self.segs.back() {
            None => true,
            Some(s) => s.len >= self.segment_bytes,
        };
        if need_new {
            self.segs.push_back(Segment {
                id: self.next_id,
                len: 0,
                records: 0,
                done: 0,
                acked_off: 0,
                mem: None,
                file: None,
            });
            self.next_id += 1;
        }
        let dir = self.opts.dir.clone();
        let Some(seg) = self.segs.back_mut() else {
            return Ok(());
        };
        match &dir {
            None => seg
                .mem
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&self.staged),
            Some(dir) => {
                if seg.file.is_none() {
                    let path = seg_path(dir, seg.id);
                    let f = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .read(true)
                        .open(&path)
                        .map_err(|e| DeliveryError::Spool(path.clone(), e))?;
                    seg.file = Some(f);
                }
                if let Some(f) = seg.file.as_mut() {
                    f.write_all(&self.staged)
                        .map_err(|e| DeliveryError::Spool(dir.clone(), e))?;
                }
                self.unsynced = true;
            }
        }
        seg.len += self.staged.len() as u64;
        seg.records += self.staged_records;
        self.unread += self.staged_records;
        self.staged.clear();
        self.staged_records = 0;
        if self.opts.fsync == Fsync::Always {
            self.sync();
        } else {
            self.maybe_sync();
        }
        Ok(())
    }

    fn maybe_sync(&mut self) {
        if self.opts.fsync == Fsync::Batch && self.last_sync.elapsed() >= BATCH_SYNC {
            self.sync();
        }
    }

    /// Syncs the active segment and the acknowledged offset (a no-op in memory).
    pub fn sync(&mut self) {
        if self.unsynced {
            if let Some(f) = self.segs.back().and_then(|s| s.file.as_ref()) {
                if let Err(e) = f.sync_data() {
                    tracing::warn!("spool fsync: {e}");
                }
            }
            self.unsynced = false;
        }
        self.persist_ack(true);
        self.last_sync = Instant::now();
    }

    /// Up to `max_records` records from the read cursor, all from one segment; an empty batch
    /// when nothing is unread. Corrupt records are skipped and counted.
    pub fn next_batch(&mut self, max_records: usize, max_bytes: usize) -> Batch {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while let Some(idx) = self.segs.iter().position(|s| s.id >= self.read.seg) {
            let is_active = idx + 1 == self.segs.len();
            let seg = &self.segs[idx];
            if seg.id > self.read.seg {
                self.read = Cursor {
                    seg: seg.id,
                    off: 0,
                };
            }
            if self.read.off >= seg.len {
                if is_active || !records.is_empty() {
                    break;
                }
                // A sealed segment read to its end: go on with the next.
                self.read = Cursor {
                    seg: seg.id + 1,
                    off: 0,
                };
                self.retire();
                continue;
            }
            match read_record(seg, self.read.off) {
                Ok(Some((body, next))) => {
                    self.read.off = next;
                    self.unread = self.unread.saturating_sub(1);
                    match Record::decode(&body) {
                        Some(r) => {
                            bytes += r.payload.len();
                            records.push(r);
                        }
                        None => self.corrupt_at(idx, true),
                    }
                }
                Ok(None) => {
                    // Bad checksum: skip this record.
                    if let Some(next) = record_end(seg, self.read.off) {
                        self.read.off = next;
                    } else {
                        self.read.off = seg.len;
                    }
                    self.unread = self.unread.saturating_sub(1);
                    self.corrupt_at(idx, true);
                }
                Err(_) => {
                    // Framing broken: the rest of the segment is lost.
                    self.read.off = seg.len;
                    self.corrupt_at(idx, false);
                }
            }
            if records.len() >= max_records || bytes >= max_bytes {
                break;
            }
        }
        Batch {
            records,
            end: self.read,
        }
    }

    /// A skipped record: counted, and settled as if acknowledged (`counted`: it was framed
    /// well enough to be among the segment's records).
    fn corrupt_at(&mut self, idx: usize, counted: bool) {
        self.counts.corrupt += 1;
        if let Some(seg) = self.segs.get_mut(idx) {
            if counted && seg.done < seg.records {
                seg.done += 1;
                self.pending = self.pending.saturating_sub(1);
            }
        }
    }

    /// The receiver has every record of a batch: they are settled, and segments wholly
    /// settled are removed. `n` is the batch's record count.
    pub fn ack(&mut self, end: Cursor, n: u64) {
        if end <= self.ack {
            // Dropped meanwhile (drop_oldest): nothing left to settle.
            return;
        }
        if let Some(seg) = self.segs.iter_mut().find(|s| s.id == end.seg) {
            if end.off > seg.acked_off {
                self.bytes = self.bytes.saturating_sub(end.off - seg.acked_off);
                seg.acked_off = end.off;
            }
            let n = n.min(seg.records.saturating_sub(seg.done));
            seg.done += n;
            self.pending = self.pending.saturating_sub(n);
        }
        self.ack = end;
        self.retire();
        self.ack_dirty = true;
        self.persist_ack(self.opts.fsync == Fsync::Always);
    }

    /// Removes the sealed segments at the front whose records are all settled and read.
    fn retire(&mut self) {
        while let Some(front) = self.segs.front() {
            let sealed = self.segs.len() > 1;
            let finished = front.id < self.ack.seg
                || (sealed && front.done >= front.records && self.read.seg > front.id);
            if !finished {
                break;
            }
            let Some(seg) = self.segs.pop_front() else {
                break;
            };
            self.bytes = self
                .bytes
                .saturating_sub(seg.len.saturating_sub(seg.acked_off));
            if let Some(dir) = &self.opts.dir {
                let _ = fs::remove_file(seg_path(dir, seg.id));
            }
            let next = self.segs.front().map_or(self.next_id, |s| s.id);
            self.ack = self.ack.max(Cursor { seg: next, off: 0 });
            self.ack_dirty = true;
        }
    }

    /// Writes the acknowledged offset (atomically: a temporary file renamed over it).
    fn persist_ack(&mut self, sync: bool) {
        let Some(dir) = &self.opts.dir else { return };
        if !self.ack_dirty || self.opts.fsync == Fsync::Never && !sync {
            return;
        }
        if self.opts.fsync == Fsync::Batch && !sync {
            return;
        }
        let tmp = dir.join("ack.tmp");
        let text = format!("{} {}\n", self.ack.seg, self.ack.off);
        let r = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            if self.opts.fsync != Fsync::Never {
                f.sync_data()?;
            }
            fs::rename(&tmp, dir.join(ACK_FILE))
        })();
        match r {
            Ok(()) => self.ack_dirty = false,
            Err(e) => tracing::warn!("spool {}: writing the ack offset: {e}", dir.display()),
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.on_disk() {
            let _ = self.commit();
            self.sync();
        }
    }
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{SEG_EXT}"))
}

fn read_ack(path: &Path) -> Cursor {
    let Ok(text) = fs::read_to_string(path) else {
        return Cursor::default();
    };
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(seg)), Some(Ok(off))) => Cursor { seg, off },
        _ => Cursor::default(),
    }
}

/// Records from `off` to the end of a segment, bad checksums included, up to a framing error.
fn count_records(seg: &Segment, mut off: u64) -> u64 {
    let mut n = 0;
    while let Some(next) = record_end(seg, off) {
        n += 1;
        off = next;
    }
    n
}

fn read_at(seg: &Segment, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    if let Some(m) = &seg.mem {
        let start = usize::try_from(off).unwrap_or(usize::MAX);
        return m
            .get(start..start.saturating_add(len))
            .map(|s| s.to_vec())
            .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into());
    }
    let Some(f) = &seg.file else {
        return Err(std::io::ErrorKind::NotFound.into());
    };
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

/// The offset after the record at `off`, if its header is sane.
fn record_end(seg: &Segment, off: u64) -> Option<u64> {
    if off + HEADER as u64 > seg.len {
        return None;
    }
    let h = read_at(seg, off, HEADER).ok()?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let end = off + HEADER as u64 + len;
    (len as usize <= MAX_RECORD && end <= seg.len).then_some(end)
}

/// The body of the record at `off` and where the next starts: `Ok(None)` when its checksum
/// is wrong, `Err` when its framing is (length out of bounds, short segment, I/O).
fn read_record(seg: &Segment, off: u64) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    let end = record_end(seg, off).ok_or(std::io::ErrorKind::InvalidData)?;
    let buf = read_at(seg, off, (end - off) as usize)?;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = &buf[HEADER..];
    if crc32fast::hash(body) != crc {
        return Ok(None);
    }
    Ok(Some((body.to_vec(), end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> Record {
        Record {
            enqueued_ns: i,
            time_ns: i,
            alert_id: format!("id{i}"),
            dedup_key: format!("key{i}"),
            payload: format!("payload {i}").into_bytes(),
        }
    }

    fn opts(dir: Option<&Path>, max: u64, when_full: WhenFull) -> SpoolOptions {
        SpoolOptions {
            dir: dir.map(Path::to_path_buf),
            max_bytes: max,
            when_full,
            fsync: Fsync::Always,
        }
    }

    fn drain(s: &mut Spool) -> Vec<u64> {
        let mut got = Vec::new();
        loop {
            let b = s.next_batch(7, 1 << 20);
            if b.records.is_empty() {
                break;
            }
            let n = b.records.len() as u64;
            got.extend(b.records.iter().map(|r| r.enqueued_ns));
            s.ack(b.end, n);
        }
        got
    }

    #[test]
    fn overlong_keys_are_cut_at_a_character_boundary_and_still_read_back() {
        let mut s = Spool::open(opts(None, 1 << 20, WhenFull::DropNewest)).unwrap();
        let mut r = rec(1);
        r.dedup_key = "é".repeat(40_000);
        assert_eq!(s.push(&r), Pushed::Stored);
        s.commit().unwrap();
        let b = s.next_batch(10, 1 << 20);
        assert_eq!(b.records.len(), 1);
        assert!(b.records[0].dedup_key.len() <= u16::MAX as usize);
        assert!(r.dedup_key.starts_with(&b.records[0].dedup_key));
        assert_eq!(s.counts().corrupt, 0);
        s.ack(b.end, 1);
        assert_eq!(s.bytes(), 0, "what was counted in is counted out");
    }

    #[test]
    fn memory_spool_hands_out_in_order_and_forgets_acked() {
        let mut s = Spool::open(opts(None, 1 << 20, WhenFull::DropNewest)).unwrap();
        for i in 0..100 {
            assert_eq!(s.push(&rec(i)), Pushed::Stored);
        }
        s.commit().unwrap();
        assert_eq!(s.pending(), 100);
        assert_eq!(drain(&mut s), (0..100).collect::<Vec<_>>());
        assert_eq!(s.pending(), 0);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn unacked_records_come_back_after_reopen_and_acked_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(opts(Some(dir.path()), 1 << 20, WhenFull::DropNewest)).unwrap();
            for i in 0..50 {
                s.push(&rec(i));
            }
            s.commit().unwrap();
            let b = s.next_batch(20, 1 << 20);
            assert_eq!(b.records.len(), 20);
            s.ack(b.end, 20);
            // Read but not acknowledged: must come back.
            let b = s.next_batch(10, 1 << 20);
            assert_eq!(b.records.len(), 10);
        }
        let mut s = Spool::open(opts(Some(dir.path()), 1 << 20, WhenFull::DropNewest)).unwrap();
        assert_eq!(s.counts().recovered, 30);
        assert_eq!(s.pending(), 30);
        s.push(&rec(50));
        s.commit().unwrap();
        assert_eq!(drain(&mut s), (20..51).collect::<Vec<_>>());
        let s = Spool::open(opts(Some(dir.path()), 1 << 20, WhenFull::DropNewest)).unwrap();
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn corrupt_records_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(opts(Some(dir.path()), 1 << 20, WhenFull::DropNewest)).unwrap();
            for i in 0..10 {
                s.push(&rec(i));
            }
            s.commit().unwrap();
        }
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        let one = rec(0).spooled_len();
        // Flip a payload byte of the third record, and cut the last one in half.
        bytes[2 * one + HEADER + 20] ^= 0xff;
        bytes.truncate(bytes.len() - one / 2);
        fs::write(&seg, &bytes).unwrap();
        let mut s = Spool::open(opts(Some(dir.path()), 1 << 20, WhenFull::DropNewest)).unwrap();
        let got = drain(&mut s);
        assert_eq!(got, vec![0, 1, 3, 4, 5, 6, 7, 8]);
        assert_eq!(s.counts().corrupt, 2);
    }

    #[test]
    fn garbage_segments_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed = 7u64;
        for n in 0..40 {
            let mut junk = Vec::new();
            for _ in 0..(n * 37 % 500) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                junk.push((seed >> 33) as u8);
            }
            if n % 3 == 0 && junk.len() > 8 {
                // A plausible header: small length.
                junk[0..4].copy_from_slice(&(n as u32).to_le_bytes());
            }
            fs::write(seg_path(dir.path(), n + 1), &junk).unwrap();
        }
        let mut s = Spool::open(opts(Some(dir.path()), 1 << 20, WhenFull::DropNewest)).unwrap();
        let _ = drain(&mut s);
        s.push(&rec(99));
        s.commit().unwrap();
        assert_eq!(drain(&mut s), vec![99]);
    }

    #[test]
    fn full_spool_drop_newest_refuses_new_records() {
        let one = rec(0).spooled_len() as u64;
        let mut s = Spool::open(opts(None, one * 10, WhenFull::DropNewest)).unwrap();
        let mut dropped = 0;
        for i in 0..15 {
            if s.push(&rec(i)) == Pushed::DroppedNewest {
                dropped += 1;
            }
        }
        s.commit().unwrap();
        assert_eq!(dropped, 5);
        assert_eq!(drain(&mut s), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn full_spool_drop_oldest_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let one = rec(0).spooled_len() as u64;
        let mut s = Spool::open(SpoolOptions {
            dir: Some(dir.path().to_path_buf()),
            max_bytes: one * 10,
            when_full: WhenFull::DropOldest,
            fsync: Fsync::Never,
        })
        .unwrap();
        let mut dropped = 0;
        for i in 0..30 {
            if let Pushed::DroppedOldest(n) = s.push(&rec(i)) {
                dropped += n;
            }
            s.commit().unwrap();
        }
        let got = drain(&mut s);
        assert_eq!(got.len() as u64 + dropped, 30);
        assert_eq!(*got.last().unwrap(), 29);
        assert!(got.len() <= 10, "{got:?}");
        assert!(s.bytes() <= one * 10);
    }
}
