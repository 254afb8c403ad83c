//! Content decoding (gzip, x-gzip, deflate with or without its zlib wrapper, br, zstd) of the
//! entity bytes a message kept. Bounded twice: decoding stops at `max_decompressed` bytes
//! (a bomb costs a counter, not memory or time) and only `keep` decoded bytes are retained.
//! It runs in the stage that inspects bodies, not in the flow worker, and only when asked.
//! gzip and deflate share one reusable inflate state per [`Decoders`]; gzip's CRC-32 and
//! length trailer are checked as the output is produced (a flipped bit often still inflates).

use std::io::Write;

use crate::types::{Body, Coding, Decoded, HttpAnomaly};

/// Bounded output of a decoder: keeps the first `keep` bytes, counts the rest, and refuses to
/// go past `limit`.
struct Sink {
    kept: Vec<u8>,
    keep: usize,
    total: u64,
    limit: u64,
    over: bool,
    /// Running CRC-32 of the output, for formats that carry one (gzip).
    crc: Option<flate2::Crc>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.total + buf.len() as u64 > self.limit {
            self.over = true;
            return Err(std::io::Error::other("decompressed size limit"));
        }
        self.total += buf.len() as u64;
        if let Some(c) = self.crc.as_mut() {
            c.update(buf);
        }
        let room = self.keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..room.min(buf.len())]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// RFC 9110 "deflate" is zlib-wrapped, but many servers send raw deflate: look at the header.
fn is_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Writes `raw` through decoder `w`, then finishes it; returns whether the stream decoded
/// cleanly. What was decoded before a failure stays in the sink.
fn push<W: Write>(mut w: W, raw: &[u8], finish: impl FnOnce(&mut W) -> bool) -> bool {
    w.write_all(raw).is_ok() && finish(&mut w)
}

/// Decoder state reused across bodies, so a body does not pay for allocating and clearing a
/// 32 KiB inflate window.
pub struct Decoders {
    inflate: flate2::Decompress,
    scratch: Vec<u8>,
}

impl Default for Decoders {
    fn default() -> Self {
        Decoders {
            inflate: flate2::Decompress::new(false),
            scratch: vec![0; 32 * 1024],
        }
    }
}

impl std::fmt::Debug for Decoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoders")
    }
}

impl Decoders {
    /// Inflates `input` (zlib-wrapped or raw) into `sink`; `Some(bytes consumed)` when the
    /// stream ended cleanly.
    fn inflate(&mut self, zlib: bool, mut input: &[u8], sink: &mut Sink) -> Option<usize> {
        self.inflate.reset(zlib);
        loop {
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status =
                self.inflate
                    .decompress(input, &mut self.scratch, flate2::FlushDecompress::None);
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            input = &input[used.min(input.len())..];
            if sink.write(&self.scratch[..made]).is_err() {
                return None;
            }
            match status {
                Ok(flate2::Status::StreamEnd) => return Some(self.inflate.total_in() as usize),
                Ok(_) if used == 0 && made == 0 => return None,
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Where the deflate stream of a gzip member starts (RFC 1952 header fields skipped).
fn gzip_payload(b: &[u8]) -> Option<&[u8]> {
    if b.len() < 10 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
        return None;
    }
    let flags = b[3];
    let mut at = 10;
    if flags & 0x04 != 0 {
        let xlen = u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]) as usize;
        at += 2 + xlen;
    }
    for bit in [0x08, 0x10] {
        if flags & bit != 0 {
            at += memchr::memchr(0, b.get(at..)?)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        at += 2;
    }
    b.get(at..)
}

/// Decodes `body.raw` per `body.coding`. Returns the decoded content and the anomaly to
/// record, if any. Bytes cut by the keep limit (`raw_truncated`) are a prefix: running out
/// of input there is not an error.
pub(crate) fn decode(
    body: &Body,
    keep: usize,
    limit: u64,
    dec: &mut Decoders,
) -> (Option<Decoded>, Option<HttpAnomaly>) {
    let mut sink = Sink {
        kept: Vec::new(),
        keep,
        total: 0,
        limit,
        over: false,
        crc: None,
    };
    let raw = body.raw.as_slice();
    let clean = match body.coding {
        Coding::Identity | Coding::Unknown => return (None, None),
        Coding::Gzip => match gzip_payload(raw) {
            Some(deflate) => {
                sink.crc = Some(flate2::Crc::new());
                match dec.inflate(false, deflate, &mut sink) {
                    // The trailer: CRC-32 and length (mod 2^32) of the decoded data.
                    Some(used) => match deflate.get(used..used + 8) {
                        Some(t) => {
                            let crc = sink.crc.as_ref().map_or(0, |c| c.sum());
                            t[..4] == crc.to_le_bytes()
                                && t[4..] == (sink.total as u32).to_le_bytes()
                        }
                        None => false,
                    },
                    None => false,
                }
            }
            None => false,
        },
        Coding::Deflate => dec.inflate(is_zlib(raw), raw, &mut sink).is_some(),
        Coding::Brotli => push(
            brotli_decompressor::DecompressorWriter::new(&mut sink, 4096),
            raw,
            |w| w.close().is_ok(),
        ),
        Coding::Zstd => match ruzstd::decoding::StreamingDecoder::new(raw) {
            Ok(mut d) => std::io::copy(&mut d, &mut sink).is_ok(),
            Err(_) => false,
        },
    };
    let anomaly = if sink.over {
        Some(HttpAnomaly::DecompressionLimit)
    } else if !clean && !body.raw_truncated {
        Some(HttpAnomaly::DecompressionError)
    } else {
        None
    };
    let truncated = sink.over || body.raw_truncated || sink.total > sink.kept.len() as u64;
    (
        Some(Decoded {
            len: sink.total,
            truncated,
            bytes: sink.kept,
        }),
        anomaly,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(coding: Coding, raw: Vec<u8>) -> Body {
        Body {
            len: raw.len() as u64,
            coding,
            raw,
            ..Body::default()
        }
    }

    fn decode_one(b: &Body, keep: usize, limit: u64) -> (Option<Decoded>, Option<HttpAnomaly>) {
        decode(b, keep, limit, &mut Decoders::default())
    }

    #[test]
    fn one_decoder_state_serves_many_bodies_of_different_kinds() {
        let mut dec = Decoders::default();
        let a = b"first body".repeat(50);
        let b = b"second, different".repeat(70);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&b).expect("z");
        let zb = z.finish().expect("z");
        for _ in 0..3 {
            let (d, x) = decode(&body(Coding::Gzip, gzip(&a)), 1 << 20, 1 << 20, &mut dec);
            assert_eq!((d.expect("a").bytes, x), (a.clone(), None));
            let (d, x) = decode(
                &body(Coding::Deflate, zb.clone()),
                1 << 20,
                1 << 20,
                &mut dec,
            );
            assert_eq!((d.expect("b").bytes, x), (b.clone(), None));
        }
        // gzip with FNAME and FEXTRA header fields
        let mut e = flate2::GzBuilder::new()
            .filename("x.json")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(&a).expect("gz");
        let (d, x) = decode(
            &body(Coding::Gzip, e.finish().expect("gz")),
            1 << 20,
            1 << 20,
            &mut dec,
        );
        assert_eq!((d.expect("named").bytes, x), (a, None));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn gzip_decodes_and_a_bomb_stops_at_the_limit() {
        let plain = vec![b'a'; 100_000];
        let (d, a) = decode_one(&body(Coding::Gzip, gzip(&plain)), 1 << 20, 1 << 20);
        let d = d.expect("decoded");
        assert_eq!(
            (d.bytes.len(), d.len, d.truncated, a),
            (100_000, 100_000, false, None)
        );
        let (d, a) = decode_one(&body(Coding::Gzip, gzip(&plain)), 64, 10_000);
        assert_eq!(a, Some(HttpAnomaly::DecompressionLimit));
        let d = d.expect("partial");
        assert!(d.bytes.len() <= 64 && d.truncated);
    }

    #[test]
    fn zlib_and_raw_deflate_both_decode() {
        let data = b"hello hello hello hello".repeat(10);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).expect("z");
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        r.write_all(&data).expect("d");
        for comp in [z.finish().expect("z"), r.finish().expect("d")] {
            let (d, a) = decode_one(&body(Coding::Deflate, comp), 1 << 20, 1 << 20);
            assert_eq!(d.expect("decoded").bytes, data);
            assert_eq!(a, None);
        }
    }

    #[test]
    fn brotli_and_zstd_decode() {
        let data = b"{\"users\":[{\"id\":1,\"email\":\"a@example.com\"}]}".repeat(20);
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&data).expect("br");
        }
        let (d, a) = decode_one(&body(Coding::Brotli, br), 1 << 20, 1 << 20);
        assert_eq!((d.expect("br").bytes, a), (data.clone(), None));
        let zs = ruzstd::encoding::compress_to_vec(
            data.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let (d, a) = decode_one(&body(Coding::Zstd, zs), 1 << 20, 1 << 20);
        assert_eq!((d.expect("zstd").bytes, a), (data, None));
    }

    #[test]
    fn a_flipped_byte_that_still_inflates_fails_the_crc() {
        let mut gz = gzip(b"{\"a\":1}");
        let n = gz.len();
        gz[n / 2] ^= 0xff;
        let (_, a) = decode_one(&body(Coding::Gzip, gz), 1 << 20, 1 << 20);
        assert_eq!(a, Some(HttpAnomaly::DecompressionError));
        let mut gz = gzip(b"{\"a\":1}");
        gz[n - 2] ^= 1; // the length trailer
        let (_, a) = decode_one(&body(Coding::Gzip, gz), 1 << 20, 1 << 20);
        assert_eq!(a, Some(HttpAnomaly::DecompressionError));
    }

    #[test]
    fn corrupt_data_is_an_anomaly_but_a_cut_prefix_is_not() {
        let (_, a) = decode_one(
            &body(Coding::Gzip, b"\x1f\x8b\x08\x00garbage-garbage!".to_vec()),
            1 << 20,
            1 << 20,
        );
        assert_eq!(a, Some(HttpAnomaly::DecompressionError));
        let full = gzip(&b"0123456789".repeat(1000));
        let mut cut = body(Coding::Gzip, full[..full.len() / 2].to_vec());
        cut.raw_truncated = true;
        let (d, a) = decode_one(&cut, 1 << 20, 1 << 20);
        assert_eq!(a, None);
        assert!(d.expect("prefix").truncated);
    }
}
