//! pcapng: sections (SHB) with their own byte order, interfaces (IDB) with link type,
//! snaplen, timestamp resolution and offset, FCS length; packets in EPB, SPB and the
//! obsolete PB. Every other block type is skipped and counted.

use crate::input::{Fill, Input};
use crate::{rd16, rd32, Found, ReaderStats};
use wire::Timestamp;

pub(crate) const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
pub(crate) const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Largest block accepted: a 16 MiB packet plus room for options.
const MAX_BLOCK: u32 = crate::pcap::MAX_RECORD + (64 << 10);

/// Byte order of the section starting at the front of `b` (an SHB), if its magic is valid.
/// Returns `Some(big_endian)`.
pub(crate) fn section_order(b: &[u8]) -> Option<bool> {
    match rd32(b, 8, false) {
        BYTE_ORDER_MAGIC => Some(false),
        x if x.swap_bytes() == BYTE_ORDER_MAGIC => Some(true),
        _ => None,
    }
}

/// Timestamp units of an interface.
#[derive(Clone, Copy, Debug)]
enum Resolution {
    /// Units of 10^-k seconds.
    Pow10(u32),
    /// Units of 2^-k seconds.
    Pow2(u32),
}

#[derive(Clone, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    resolution: Resolution,
    /// Seconds added to every timestamp (if_tsoffset).
    offset_secs: i64,
    fcs_len: u32,
}

impl Interface {
    fn timestamp(&self, units: u64) -> Timestamp {
        let u = units as u128;
        let nanos: u128 = match self.resolution {
            Resolution::Pow10(k) if k <= 9 => u * 10u128.pow(9 - k),
            Resolution::Pow10(k) if k <= 38 => u / 10u128.pow(k - 9),
            Resolution::Pow10(_) => 0,
            Resolution::Pow2(k) if k < 128 => (u * 1_000_000_000) >> k,
            Resolution::Pow2(_) => 0,
        };
        let total = nanos as i128 + self.offset_secs as i128 * 1_000_000_000;
        Timestamp(total.clamp(0, u64::MAX as i128) as u64)
    }
}

pub(crate) struct Pcapng {
    be: bool,
    ifaces: Vec<Interface>,
    last_ts: Timestamp,
    done: bool,
}

/// What a well-framed block turned out to be.
enum Block {
    Packet(Found),
    /// Consumed without a packet (SHB, IDB, skipped or corrupt contents).
    Nothing,
}

impl Pcapng {
    pub(crate) fn new(big_endian: bool) -> Pcapng {
        Pcapng {
            be: big_endian,
            ifaces: Vec::new(),
            last_ts: Timestamp::ZERO,
            done: false,
        }
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
            if !input.ensure(12)? {
                if input.avail() > 0 {
                    stats.truncated_records += 1;
                    input.consume_all();
                }
                self.done = true;
                return Ok(None);
            }
            let Some((btype, be, len)) = self.frame_header(input.data()) else {
                stats.corrupt_records += 1;
                self.resync_or_stop(input, stats)?;
                continue;
            };
            let n = len as usize;
            if !input.ensure(n)? {
                stats.truncated_records += 1;
                input.consume_all();
                self.done = true;
                return Ok(None);
            }
            if rd32(input.data(), n - 4, be) != len {
                stats.corrupt_records += 1;
                self.resync_or_stop(input, stats)?;
                continue;
            }
            let start = input.pos;
            let block = self.block(input.buf(), start, btype, be, n, stats);
            input.consume(n);
            if let Block::Packet(found) = block {
                return Ok(Some(found));
            }
        }
    }

    /// Type, byte order and total length of the block at the front of `b` (≥ 12 bytes), or
    /// `None` if its framing is invalid.
    fn frame_header(&self, b: &[u8]) -> Option<(u32, bool, u32)> {
        let btype = rd32(b, 0, self.be);
        let be = if btype == SHB {
            section_order(b)?
        } else {
            self.be
        };
        let len = rd32(b, 4, be);
        let min = if btype == SHB { 28 } else { 12 };
        if len < min || len % 4 != 0 || len > MAX_BLOCK {
            return None;
        }
        Some((btype, be, len))
    }

    fn resync_or_stop(&mut self, input: &mut Input, stats: &mut ReaderStats) -> Result<(), Fill> {
        if self.resync(input)? {
            stats.resyncs += 1;
        } else {
            self.done = true;
        }
        Ok(())
    }

    /// Scan forward in 4-byte steps (blocks are 32-bit aligned) for a block of a known type
    /// whose length is valid and matches its trailer.
    fn resync(&mut self, input: &mut Input) -> Result<bool, Fill> {
        loop {
            input.consume(4);
            if !input.ensure(12)? {
                input.consume_all();
                return Ok(false);
            }
            let Some((btype, be, len)) = self.frame_header(input.data()) else {
                continue;
            };
            let known = matches!(btype, SHB | 1..=10 | 0x0000_0BAD | 0x4000_0BAD);
            if !known {
                continue;
            }
            let n = len as usize;
            if input.ensure(n)? && rd32(input.data(), n - 4, be) == len {
                return Ok(true);
            }
        }
    }

    /// Interpret one framed block occupying `buf[start..start + n]`.
    fn block(
        &mut self,
        buf: &[u8],
        start: usize,
        btype: u32,
        be: bool,
        n: usize,
        stats: &mut ReaderStats,
    ) -> Block {
        let Some(b) = buf.get(start..start + n) else {
            return Block::Nothing;
        };
        // Body without the 8-byte header and 4-byte trailer, as offsets into `b`.
        let body_end = n - 4;
        match btype {
            SHB => {
                self.be = be;
                self.ifaces.clear();
                Block::Nothing
            }
            IDB => {
                if n < 20 {
                    stats.corrupt_records += 1;
                    return Block::Nothing;
                }
                let mut iface = Interface {
                    linktype: rd16(b, 8, be) as u32,
                    snaplen: rd32(b, 12, be),
                    resolution: Resolution::Pow10(6),
                    offset_secs: 0,
                    fcs_len: 0,
                };
                for (code, val) in Options::new(b, 16, body_end, be) {
                    match (code, val) {
                        (9, [v, ..]) => {
                            iface.resolution = if v & 0x80 != 0 {
                                Resolution::Pow2((v & 0x7F) as u32)
                            } else {
                                Resolution::Pow10(*v as u32)
                            }
                        }
                        (13, [v, ..]) => iface.fcs_len = fcs_option_bytes(*v),
                        (14, [_, _, _, _, _, _, _, _, ..]) => {
                            let w0 = rd32(val, 0, be) as u64;
                            let w1 = rd32(val, 4, be) as u64;
                            // A 64-bit value in the section's byte order.
                            iface.offset_secs = if be {
                                (w0 << 32 | w1) as i64
                            } else {
                                (w1 << 32 | w0) as i64
                            };
                        }
                        _ => {}
                    }
                }
                self.ifaces.push(iface);
                Block::Nothing
            }
            EPB | PB => {
                if n < 32 {
                    stats.corrupt_records += 1;
                    return Block::Nothing;
                }
                let id = if btype == EPB {
                    rd32(b, 8, be) as usize
                } else {
                    rd16(b, 8, be) as usize
                };
                let Some(iface) = self.ifaces.get(id) else {
                    stats.corrupt_records += 1;
                    return Block::Nothing;
                };
                let units = (rd32(b, 12, be) as u64) << 32 | rd32(b, 16, be) as u64;
                let caplen = rd32(b, 20, be) as usize;
                let orig = rd32(b, 24, be);
                if caplen > body_end - 28 {
                    stats.corrupt_records += 1;
                    return Block::Nothing;
                }
                let mut fcs_len = iface.fcs_len;
                let opts_start = 28 + pad4(caplen);
                if btype == EPB && opts_start < body_end {
                    for (code, val) in Options::new(b, opts_start, body_end, be) {
                        if code == 2 && val.len() >= 4 {
                            // epb_flags bits 5-8: FCS length in octets, if known.
                            let f = (rd32(val, 0, be) >> 5) & 0xF;
                            if f != 0 {
                                fcs_len = f;
                            }
                        }
                    }
                }
                let ts = iface.timestamp(units);
                self.last_ts = ts;
                Block::Packet(packet(
                    start + 28,
                    caplen,
                    orig,
                    fcs_len,
                    ts,
                    iface.linktype,
                ))
            }
            SPB => {
                if n < 16 {
                    stats.corrupt_records += 1;
                    return Block::Nothing;
                }
                let Some(iface) = self.ifaces.first() else {
                    stats.corrupt_records += 1;
                    return Block::Nothing;
                };
                let orig = rd32(b, 8, be);
                let mut caplen = (orig as usize).min(body_end - 12);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                Block::Packet(packet(
                    start + 12,
                    caplen,
                    orig,
                    iface.fcs_len,
                    self.last_ts,
                    iface.linktype,
                ))
            }
            _ => {
                stats.skipped_blocks += 1;
                Block::Nothing
            }
        }
    }
}

/// Build the record, trimming a captured FCS and keeping `orig_len >= data length`.
fn packet(start: usize, caplen: usize, orig: u32, fcs_len: u32, ts: Timestamp, lt: u32) -> Found {
    let mut len = caplen;
    let mut orig = orig.max(caplen.min(u32::MAX as usize) as u32);
    if fcs_len > 0 {
        let fcs_start = orig.saturating_sub(fcs_len);
        len = len.min(fcs_start as usize);
        orig = fcs_start;
    }
    Found {
        ts,
        linktype: lt,
        start,
        len,
        orig_len: orig,
    }
}

/// if_fcslen is specified in bits, but writers have used bytes; accept both.
fn fcs_option_bytes(v: u8) -> u32 {
    if v >= 8 && v % 8 == 0 {
        v as u32 / 8
    } else {
        v as u32
    }
}

#[inline]
fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Iterator over (code, value) of an options list in `b[start..end]`; stops at opt_endofopt
/// or at the first option that does not fit.
struct Options<'a> {
    b: &'a [u8],
    off: usize,
    end: usize,
    be: bool,
}

impl<'a> Options<'a> {
    fn new(b: &'a [u8], start: usize, end: usize, be: bool) -> Self {
        Options {
            b,
            off: start,
            end: end.min(b.len()),
            be,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.off + 4 > self.end {
            return None;
        }
        let code = rd16(self.b, self.off, self.be);
        let len = rd16(self.b, self.off + 2, self.be) as usize;
        let vstart = self.off + 4;
        if code == 0 || vstart + len > self.end {
            self.off = self.end;
            return None;
        }
        self.off = vstart + pad4(len);
        Some((code, &self.b[vstart..vstart + len]))
    }
}
