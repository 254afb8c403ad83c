//! Reading capture files: classic pcap (micro- and nanosecond, both byte orders), pcapng
//! (both byte orders, any number of sections and interfaces) and gzip-compressed versions
//! of either.
//!
//! The reader is the first stage of the sensor and must be much faster than the rest: it
//! reads the file in large chunks into one reusable buffer and hands out each record as a
//! [`RawPacket`] borrowing that buffer (no allocation or copy per packet).
//!
//! It must never panic and never stop on malformed content: bad records are counted by kind
//! in [`ReaderStats`], the reader resynchronises where it can and otherwise ends the file
//! as if it were complete. Only a failure of the underlying file itself is an error. Output
//! depends only on the input bytes.
//!
//! Live capture from an interface (libpcap) is in [`live`]: [`LiveSource`] hands out the same
//! [`RawPacket`]s.

mod input;
pub mod live;
mod pcap;
mod pcapng;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use input::{CountingReader, Fill, Input, SourceState};
pub use live::{Fanout, FanoutMode, LiveConfig, LiveSource, LiveStats};
use wire::Timestamp;

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    pub ts: Timestamp,
    /// The pcap LINKTYPE_ number of the interface the frame was captured on.
    pub linktype: u32,
    /// The captured bytes, with any frame check sequence already removed.
    pub data: &'a [u8],
    /// Length of the frame on the wire (without FCS); always `>= data.len()`.
    pub orig_len: u32,
}

/// Why a capture could not be opened or read. Malformed records are not errors; they are
/// counted in [`ReaderStats`].
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    // The I/O error is part of the message and deliberately not the error's `source`, so a
    // caller printing the chain does not print it twice.
    #[error("{}: cannot open: {cause}; check the path and that the file is readable", path.display())]
    Open { path: PathBuf, cause: io::Error },
    #[error("{}: the file is empty; give a capture file written by tcpdump, tshark or dumpcap", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a pcap or pcapng file ({detail}); give a capture file written by tcpdump, tshark or dumpcap", path.display())]
    NotACapture { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    BadHeader { path: PathBuf, detail: String },
    #[error("{}: read failed after {offset} bytes: {cause}; check the disk or the file system", path.display())]
    Io {
        path: PathBuf,
        offset: u64,
        cause: io::Error,
    },
    /// A live capture could not be opened, filtered or read; `detail` says what failed
    /// (libpcap's words) and how to fix it.
    #[error("{interface}: {detail}")]
    Live { interface: String, detail: String },
}

/// What the reader has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Packets returned.
    pub packets: u64,
    /// Captured bytes returned (sum of `data.len()`).
    pub bytes: u64,
    /// The file ended in the middle of a record (0 or 1).
    pub truncated_records: u64,
    /// Records or blocks with impossible lengths, unknown interfaces or similar.
    pub corrupt_records: u64,
    /// Times the reader found its way back to valid records after a corrupt one.
    pub resyncs: u64,
    /// pcapng blocks that carry no packets and were skipped (NRB, ISB, DSB, custom…).
    pub skipped_blocks: u64,
    /// The compressed stream was damaged or cut off; reading stopped there.
    pub decompress_errors: u64,
}

/// The container format of an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Pcap { nanos: bool, big_endian: bool },
    Pcapng,
}

enum Format {
    Pcap(pcap::Pcap),
    Pcapng(pcapng::Pcapng),
}

/// A packet found by a parser: its bytes are `buf[start..start + len]` of the input.
pub(crate) struct Found {
    pub(crate) ts: Timestamp,
    pub(crate) linktype: u32,
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) orig_len: u32,
}

/// Sequential reader of one capture file.
pub struct FileReader {
    path: PathBuf,
    input: Input,
    format: Format,
    file_format: FileFormat,
    gzip: bool,
    stats: ReaderStats,
    source: Arc<SourceState>,
    file_len: Option<u64>,
    decompress_error: Option<io::Error>,
}

/// Read-ahead below the gzip decoder.
const GZIP_INPUT_BUF: usize = 256 << 10;

impl FileReader {
    /// Open a file, detecting pcap, pcapng and gzip from its first bytes.
    pub fn open(path: &Path) -> Result<FileReader, CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            cause: source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::other("it is a directory")));
        }
        let state = Arc::new(SourceState::default());
        let src = CountingReader {
            inner: file,
            state: state.clone(),
        };
        Self::start(Box::new(src), state, path.to_path_buf(), Some(meta.len()))
    }

    /// Read a capture from any byte stream; `name` is used in messages.
    pub fn from_reader(r: Box<dyn Read + Send>, name: &str) -> Result<FileReader, CaptureError> {
        let state = Arc::new(SourceState::default());
        let src = CountingReader {
            inner: r,
            state: state.clone(),
        };
        Self::start(Box::new(src), state, PathBuf::from(name), None)
    }

    fn start(
        mut src: Box<dyn Read + Send>,
        state: Arc<SourceState>,
        path: PathBuf,
        file_len: Option<u64>,
    ) -> Result<FileReader, CaptureError> {
        let mut prefix = [0u8; 2];
        let got = read_full(&mut src, &mut prefix).map_err(|source| CaptureError::Io {
            path: path.clone(),
            offset: 0,
            cause: source,
        })?;
        if got == 0 {
            return Err(CaptureError::Empty { path });
        }
        let gzip = prefix[..got] == [0x1f, 0x8b];
        let chained = Cursor::new(prefix[..got].to_vec()).chain(src);
        let stream: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(
                BufReader::with_capacity(GZIP_INPUT_BUF, chained),
            ))
        } else {
            Box::new(chained)
        };
        let mut input = Input::new(stream, state.clone());
        match input.ensure(pcap::FILE_HEADER_LEN) {
            Ok(_) => {}
            Err(Fill::Source(source)) => {
                return Err(CaptureError::Io {
                    path,
                    offset: state.bytes.load(Ordering::Relaxed),
                    cause: source,
                })
            }
        }
        let damaged = input.take_decompress_error();
        let head = input.data();
        let compressed = if gzip { "gzip-compressed; " } else { "" };
        let (format, file_format) = if let Some(magic) = pcap::Magic::detect(head) {
            if head.len() < pcap::FILE_HEADER_LEN {
                return Err(CaptureError::BadHeader {
                    path,
                    detail: format!(
                        "{compressed}pcap file header is cut short ({} of 24 bytes); the file \
                         was truncated while being written, capture again",
                        head.len()
                    ),
                });
            }
            let p = pcap::Pcap::new(magic, head);
            input.consume(pcap::FILE_HEADER_LEN);
            (
                Format::Pcap(p),
                FileFormat::Pcap {
                    nanos: magic.nanos,
                    big_endian: magic.big_endian,
                },
            )
        } else if head.len() >= 4 && rd32(head, 0, false) == pcapng::SHB {
            let Some(be) = pcapng::section_order(head).filter(|_| head.len() >= 12) else {
                return Err(CaptureError::BadHeader {
                    path,
                    detail: format!(
                        "{compressed}starts like pcapng but the section header is cut short or \
                         has no valid byte-order magic (bytes {}); the file is damaged, capture \
                         again or repair it with `pcapfix`",
                        hex(head.get(8..12).unwrap_or(&head[4..]))
                    ),
                });
            };
            (Format::Pcapng(pcapng::Pcapng::new(be)), FileFormat::Pcapng)
        } else if head.is_empty() {
            if let Some(e) = damaged {
                return Err(CaptureError::NotACapture {
                    path,
                    detail: format!("gzip-compressed, but the compressed data is damaged: {e}"),
                });
            }
            return Err(CaptureError::Empty { path });
        } else {
            let mut detail = String::new();
            if gzip {
                detail.push_str("gzip-compressed; decompressed data ");
            }
            let _ = write!(detail, "first bytes {}", hex(&head[..head.len().min(4)]));
            if let Some(hint) = hint(head) {
                let _ = write!(detail, "; {hint}");
            }
            if let (true, Some(e)) = (gzip, damaged) {
                let _ = write!(detail, "; the compressed data is damaged: {e}");
            }
            return Err(CaptureError::NotACapture { path, detail });
        };
        Ok(FileReader {
            path,
            input,
            format,
            file_format,
            gzip,
            stats: ReaderStats::default(),
            source: state,
            file_len,
            decompress_error: damaged,
        })
    }

    /// The next packet, or `None` at the end of the capture. Malformed content never causes
    /// an error: it is counted in [`FileReader::stats`] and skipped or ends the capture.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        let res = match &mut self.format {
            Format::Pcap(p) => p.next(&mut self.input, &mut self.stats),
            Format::Pcapng(p) => p.next(&mut self.input, &mut self.stats),
        };
        if let Some(e) = self.input.take_decompress_error() {
            self.stats.decompress_errors += 1;
            self.decompress_error = Some(e);
        }
        let found = match res {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(Fill::Source(source)) => {
                return Err(CaptureError::Io {
                    path: self.path.clone(),
                    offset: self.compressed_bytes_read(),
                    cause: source,
                })
            }
        };
        let data = self
            .input
            .buf()
            .get(found.start..found.start + found.len)
            .unwrap_or(&[]);
        self.stats.packets += 1;
        self.stats.bytes += data.len() as u64;
        Ok(Some(RawPacket {
            ts: found.ts,
            linktype: found.linktype,
            data,
            orig_len: found.orig_len.max(data.len() as u32),
        }))
    }

    pub fn stats(&self) -> &ReaderStats {
        &self.stats
    }

    /// Bytes read from the underlying file so far (compressed bytes for gzip), for progress.
    pub fn compressed_bytes_read(&self) -> u64 {
        self.source.bytes.load(Ordering::Relaxed)
    }

    /// Size of the file, when opened by path.
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> FileFormat {
        self.file_format
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The decompressor's complaint, if the compressed data was damaged or cut off.
    pub fn decompress_error(&self) -> Option<&io::Error> {
        self.decompress_error.as_ref()
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// A hint for files that are recognisably something else.
fn hint(head: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| head.starts_with(m);
    Some(if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "this is zstd-compressed: decompress it first (zstd -d)"
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "this is xz-compressed: decompress it first (xz -d)"
    } else if starts(b"BZh") {
        "this is bzip2-compressed: decompress it first (bzip2 -d)"
    } else if starts(b"PK\x03\x04") {
        "this is a zip archive: extract the capture first"
    } else if starts(b"snoop\0\0\0") {
        "this is a Solaris snoop file: convert it with `editcap -F pcap`"
    } else if head.len() >= 4
        && head
            .iter()
            .take(64)
            .all(|&c| c.is_ascii_graphic() || c.is_ascii_whitespace())
    {
        "it looks like text"
    } else {
        return None;
    })
}

#[inline]
pub(crate) fn rd32(b: &[u8], off: usize, be: bool) -> u32 {
    match b.get(off..off.saturating_add(4)) {
        Some(&[a, b1, c, d]) => {
            if be {
                u32::from_be_bytes([a, b1, c, d])
            } else {
                u32::from_le_bytes([a, b1, c, d])
            }
        }
        _ => 0,
    }
}

#[inline]
pub(crate) fn rd16(b: &[u8], off: usize, be: bool) -> u16 {
    match b.get(off..off.saturating_add(2)) {
        Some(&[a, b1]) => {
            if be {
                u16::from_be_bytes([a, b1])
            } else {
                u16::from_le_bytes([a, b1])
            }
        }
        _ => 0,
    }
}
