//! pcap and pcapng writers (little-endian, as tcpdump and dumpcap write on x86).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use wire::Timestamp;

/// Classic pcap writer, micro- or nanosecond timestamps.
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. `snaplen` 0 means "no limit" (262144 is written).
    pub fn new(mut w: W, linktype: u32, snaplen: u32, nanos: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let snaplen = if snaplen == 0 { 262_144 } else { snaplen };
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&magic.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w, snaplen, nanos })
    }

    fn record(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let frac = if self.nanos {
            ts.subsec_nanos()
        } else {
            ts.subsec_nanos() / 1000
        };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(ts.secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// One frame, cut to the snaplen (the record keeps the full original length).
    pub fn write(&mut self, ts: Timestamp, frame: &[u8]) -> io::Result<()> {
        let cap = frame.len().min(self.snaplen as usize);
        self.record(ts, &frame[..cap], frame.len() as u32)
    }

    /// A record with exactly `frame` as captured bytes and the given original length (which
    /// may even be smaller than the frame, to make a corrupt record).
    pub fn write_truncated(
        &mut self,
        ts: Timestamp,
        frame: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        self.record(ts, frame, orig_len)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

struct Iface {
    snaplen: u32,
    nanos: bool,
}

/// pcapng writer: one section, any number of interfaces, enhanced packet blocks.
pub struct PcapngWriter<W: Write> {
    w: W,
    ifaces: Vec<Iface>,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header block.
    pub fn new(w: W) -> io::Result<Self> {
        let mut me = PcapngWriter {
            w,
            ifaces: Vec::new(),
        };
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        me.block(0x0A0D_0D0A, &body)?;
        Ok(me)
    }

    /// Write any block: type, body (padded here), lengths.
    pub fn block(&mut self, btype: u32, body: &[u8]) -> io::Result<()> {
        let total = (12 + pad4(body.len())) as u32;
        self.w.write_all(&btype.to_le_bytes())?;
        self.w.write_all(&total.to_le_bytes())?;
        self.w.write_all(body)?;
        self.w.write_all(&[0; 3][..pad4(body.len()) - body.len()])?;
        self.w.write_all(&total.to_le_bytes())
    }

    /// Add an interface (IDB) and return its id. With `tsresol_nanos` timestamps are in
    /// nanoseconds (if_tsresol 9), otherwise the default microseconds.
    pub fn add_interface(
        &mut self,
        linktype: u32,
        snaplen: u32,
        tsresol_nanos: bool,
    ) -> io::Result<u32> {
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&(linktype as u16).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        if tsresol_nanos {
            body.extend_from_slice(&9u16.to_le_bytes());
            body.extend_from_slice(&1u16.to_le_bytes());
            body.extend_from_slice(&[9, 0, 0, 0]);
            body.extend_from_slice(&[0; 4]); // opt_endofopt
        }
        self.block(1, &body)?;
        self.ifaces.push(Iface {
            snaplen,
            nanos: tsresol_nanos,
        });
        Ok((self.ifaces.len() - 1) as u32)
    }

    /// One frame on interface `iface` (an enhanced packet block), cut to its snaplen.
    pub fn write(&mut self, iface: u32, ts: Timestamp, frame: &[u8]) -> io::Result<()> {
        let Some(i) = self.ifaces.get(iface as usize) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcapng interface {iface} was not added"),
            ));
        };
        let units = if i.nanos {
            ts.as_nanos()
        } else {
            ts.as_nanos() / 1000
        };
        let cap = if i.snaplen == 0 {
            frame.len()
        } else {
            frame.len().min(i.snaplen as usize)
        };
        let mut body = Vec::with_capacity(20 + cap);
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(units as u32).to_le_bytes());
        body.extend_from_slice(&(cap as u32).to_le_bytes());
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        body.extend_from_slice(&frame[..cap]);
        self.block(6, &body)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Write `frames` as a classic pcap (µs timestamps, snaplen 262144) at `path`.
pub fn write_pcap(path: &Path, frames: &[(Timestamp, Vec<u8>)], linktype: u32) -> io::Result<()> {
    let mut w = PcapWriter::new(
        BufWriter::new(File::create(path)?),
        linktype,
        262_144,
        false,
    )?;
    for (ts, f) in frames {
        w.write(*ts, f)?;
    }
    w.into_inner().flush()
}
