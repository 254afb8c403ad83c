//! The read buffer under both parsers: large reads into one reusable buffer, records are
//! handed out as slices of it. No allocation per packet; the buffer only grows when a single
//! record (or a resync look-ahead) is larger than it.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Size the buffer grows to once a file turns out to be larger than a few records: small
/// enough to stay in the capture core's L2 cache between the kernel's copy into it and the
/// parse of it (at 2 MiB the copy streamed through the shared cache and the flow worker ran
/// 5 % slower on the keepalive capture), large enough that a read costs little per packet.
pub(crate) const TARGET_BUF: usize = 256 << 10;
/// First allocation: small, so that tiny inputs (tests, fuzzing) stay cheap.
const INITIAL_BUF: usize = 64 << 10;

/// Shared between the counting reader at the bottom of the stack and [`Input`] at the top,
/// so the reader can tell the underlying file's failures from the decompressor's complaints.
#[derive(Debug, Default)]
pub(crate) struct SourceState {
    pub(crate) bytes: AtomicU64,
    pub(crate) failed: AtomicBool,
}

/// Wraps the real source: counts bytes (for progress) and records whether a read error came
/// from the source itself.
pub(crate) struct CountingReader<R> {
    pub(crate) inner: R,
    pub(crate) state: Arc<SourceState>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.state.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.state.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// Why the input could not deliver the requested bytes.
#[derive(Debug)]
pub(crate) enum Fill {
    /// The underlying file failed: a real I/O error.
    Source(io::Error),
}

pub(crate) struct Input {
    src: Box<dyn Read + Send>,
    state: Arc<SourceState>,
    buf: Vec<u8>,
    /// Start of unconsumed data.
    pub(crate) pos: usize,
    /// End of valid data.
    end: usize,
    eof: bool,
    /// Set when the decompressor (not the file) reported an error; the stream is treated as
    /// ended at that point.
    decompress_error: Option<io::Error>,
}

impl Input {
    pub(crate) fn new(src: Box<dyn Read + Send>, state: Arc<SourceState>) -> Input {
        Input {
            src,
            state,
            buf: vec![0; INITIAL_BUF],
            pos: 0,
            end: 0,
            eof: false,
            decompress_error: None,
        }
    }

    /// Unconsumed bytes in the buffer.
    #[inline]
    pub(crate) fn avail(&self) -> usize {
        self.end - self.pos
    }

    /// The unconsumed bytes.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    #[inline]
    pub(crate) fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// Consume `n` bytes (clamped to what is available).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n.min(self.avail());
    }

    pub(crate) fn consume_all(&mut self) {
        self.pos = self.end;
    }

    pub(crate) fn take_decompress_error(&mut self) -> Option<io::Error> {
        self.decompress_error.take()
    }

    /// Make at least `n` bytes available from `pos`. Returns `Ok(false)` when the stream
    /// ends first (what there is stays available). `n` must be bounded by the caller (the
    /// parsers never ask for more than their maximum record size plus a header).
    #[inline]
    pub(crate) fn ensure(&mut self, n: usize) -> Result<bool, Fill> {
        if self.avail() >= n {
            return Ok(true);
        }
        self.fill(n)
    }

    #[cold]
    fn fill(&mut self, n: usize) -> Result<bool, Fill> {
        if self.eof {
            return Ok(false);
        }
        if self.pos + n > self.buf.len() {
            // Not enough room after `pos`: move the tail to the front, growing if needed.
            let mut want = if self.buf.len() < TARGET_BUF {
                (self.buf.len() * 2).min(TARGET_BUF)
            } else {
                self.buf.len()
            };
            if n > want / 2 {
                // Room for two requests of this size, so that a resync scan asking for a
                // large look-ahead at every step compacts once per `n` bytes, not per step.
                want = want.max((2 * n).next_multiple_of(64 << 10));
            }
            let live = self.avail();
            if want > self.buf.len() {
                let mut bigger = vec![0; want];
                bigger[..live].copy_from_slice(&self.buf[self.pos..self.end]);
                self.buf = bigger;
            } else {
                self.buf.copy_within(self.pos..self.end, 0);
            }
            self.pos = 0;
            self.end = live;
        }
        while self.avail() < n {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(k) => self.end += k.min(self.buf.len() - self.end),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.eof = true;
                    if self.state.failed.load(Ordering::Relaxed) {
                        return Err(Fill::Source(e));
                    }
                    // The decompressor complained about the content: damaged or cut-off
                    // compressed data. Treated like the end of the file.
                    self.decompress_error = Some(e);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}
