//! Classic libpcap files: 24-byte file header, 16-byte record headers (24 in the
//! Kuznetzov "modified pcap" variant), either byte order, micro- or nanosecond timestamps.

use crate::input::{Fill, Input};
use crate::{rd16, rd32, Found, ReaderStats};
use wire::Timestamp;

/// Largest record accepted whatever the header's snaplen says.
pub(crate) const MAX_RECORD: u32 = 16 << 20;
/// libpcap's default maximum snapshot length; records up to this size are accepted even if
/// the file header declares a smaller snaplen (some writers lie).
const DEFAULT_SNAPLEN: u32 = 262_144;
/// Resynchronisation accepts a candidate header only if its time is this close to the last
/// good record's.
const RESYNC_WINDOW_SECS: u32 = 86_400;

pub(crate) const FILE_HEADER_LEN: usize = 24;

/// How the file's magic number was written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Magic {
    pub(crate) big_endian: bool,
    pub(crate) nanos: bool,
    /// Kuznetzov's patched libpcap: 8 extra bytes per record header.
    pub(crate) modified: bool,
}

impl Magic {
    /// Recognise the first four bytes of a classic pcap file.
    pub(crate) fn detect(b: &[u8]) -> Option<Magic> {
        let m = match b.get(..4)? {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true, false),
            [0x34, 0xcd, 0xb2, 0xa1] => (false, false, true),
            [0xa1, 0xb2, 0xcd, 0x34] => (true, false, true),
            _ => return None,
        };
        Some(Magic {
            big_endian: m.0,
            nanos: m.1,
            modified: m.2,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct RecordHeader {
    secs: u32,
    frac: u32,
    incl: u32,
    orig: u32,
}

pub(crate) struct Pcap {
    be: bool,
    nanos: bool,
    hdr_len: usize,
    linktype: u32,
    /// Bytes of frame check sequence at the end of every frame (from the linktype's FCS bits).
    fcs_len: u32,
    max_incl: u32,
    prev_secs: Option<u32>,
    done: bool,
}

impl Pcap {
    /// `header` holds the 24-byte file header.
    pub(crate) fn new(magic: Magic, header: &[u8]) -> Pcap {
        let be = magic.big_endian;
        let _version = (rd16(header, 4, be), rd16(header, 6, be));
        let snaplen = rd32(header, 16, be);
        let raw_link = rd32(header, 20, be);
        // Upper bits of the linktype field: FCS length in 16-bit words, valid if bit 26 set.
        let fcs_len = if raw_link & 0x0400_0000 != 0 {
            ((raw_link >> 28) & 0xF) * 2
        } else {
            0
        };
        Pcap {
            be,
            nanos: magic.nanos,
            hdr_len: if magic.modified { 24 } else { 16 },
            linktype: raw_link & 0x03FF_FFFF,
            fcs_len,
            max_incl: snaplen.clamp(DEFAULT_SNAPLEN, MAX_RECORD),
            prev_secs: None,
            done: false,
        }
    }

    #[inline]
    fn header_at(&self, b: &[u8], off: usize) -> RecordHeader {
        RecordHeader {
            secs: rd32(b, off, self.be),
            frac: rd32(b, off + 4, self.be),
            incl: rd32(b, off + 8, self.be),
            orig: rd32(b, off + 12, self.be),
        }
    }

    /// A header good enough to resynchronise on.
    fn plausible(&self, h: &RecordHeader, near_secs: Option<u32>) -> bool {
        let frac_limit = if self.nanos { 1_000_000_000 } else { 1_000_000 };
        h.frac < frac_limit
            && h.orig > 0
            && h.incl <= h.orig
            && h.incl <= self.max_incl
            && h.orig <= MAX_RECORD
            && near_secs.is_none_or(|s| h.secs.abs_diff(s) <= RESYNC_WINDOW_SECS)
    }

    pub(crate) fn next(
        &mut self,
        input: &mut Input,
        stats: &mut ReaderStats,
    ) -> Result<Option<Found>, Fill> {
        loop {
            if self.done {
                return Ok(None);
            }
            let hl = self.hdr_len;
            if !input.ensure(hl)? {
                if input.avail() > 0 {
                    stats.truncated_records += 1;
                    input.consume_all();
                }
                self.done = true;
                return Ok(None);
            }
            let h = self.header_at(input.data(), 0);
            if h.incl > self.max_incl || (h.incl > h.orig && h.orig != 0) {
                stats.corrupt_records += 1;
                if self.resync(input)? {
                    stats.resyncs += 1;
                    continue;
                }
                self.done = true;
                return Ok(None);
            }
            let incl = h.incl as usize;
            if !input.ensure(hl + incl)? {
                stats.truncated_records += 1;
                input.consume_all();
                self.done = true;
                return Ok(None);
            }
            let ts = if self.nanos {
                Timestamp::from_secs_nanos(h.secs as u64, 0).plus_nanos(h.frac as u64)
            } else {
                Timestamp::from_secs_nanos(h.secs as u64, 0).plus_nanos(h.frac as u64 * 1000)
            };
            self.prev_secs = Some(h.secs);
            let start = input.pos + hl;
            let mut len = incl;
            let mut orig = h.orig.max(h.incl);
            if self.fcs_len > 0 {
                // The FCS occupies the last fcs_len bytes of the original frame; cut whatever
                // part of it was captured.
                let fcs_start = orig.saturating_sub(self.fcs_len);
                len = len.min(fcs_start as usize);
                orig = fcs_start;
            }
            input.consume(hl + incl);
            return Ok(Some(Found {
                ts,
                linktype: self.linktype,
                start,
                len,
                orig_len: orig,
            }));
        }
    }

    /// Scan forward one byte at a time from the corrupt header at `input.pos` for a
    /// plausible header followed by another plausible header (or by the exact end of the
    /// file). On success `input.pos` is at the found header.
    fn resync(&mut self, input: &mut Input) -> Result<bool, Fill> {
        let hl = self.hdr_len;
        loop {
            input.consume(1);
            if !input.ensure(hl)? {
                input.consume_all();
                return Ok(false);
            }
            let h = self.header_at(input.data(), 0);
            if !self.plausible(&h, self.prev_secs) {
                continue;
            }
            let rec = hl + h.incl as usize;
            if input.ensure(rec + hl)? {
                let next = self.header_at(input.data(), rec);
                if self.plausible(&next, Some(h.secs)) {
                    return Ok(true);
                }
            } else if input.avail() == rec {
                return Ok(true);
            }
        }
    }
}
