//! Message bodies: framing (Content-Length, chunked as an explicit state machine, until close),
//! gap handling, and content decoding into a bounded buffer.

use std::io::Write;

use crate::types::{Anomalies, Body, Coding, HttpAnomaly};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits; `digits` counts significant ones (overflow past 16).
    Size {
        value: u64,
        digits: u32,
        ext: bool,
        any: bool,
    },
    Data(u64),
    /// After a chunk's data: expecting CRLF.
    DataEnd {
        cr: bool,
    },
    /// Trailer section: `line` bytes seen on the current line.
    Trailer {
        line: u32,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// All input consumed, body not finished.
    More,
    /// Body finished after `n` bytes of this input.
    Done(usize),
    /// Framing broken after `n` bytes: the body ends here and the stream must resync.
    Broken(usize),
}

/// Bounded output of a content decoder: keeps the first `keep` bytes, counts the rest, and
/// refuses to go past `limit` (a decompression bomb costs a counter, not memory).
struct Sink {
    kept: Vec<u8>,
    keep: usize,
    total: u64,
    limit: u64,
    over: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.total + buf.len() as u64 > self.limit {
            self.over = true;
            return Err(std::io::Error::other("decompressed size limit"));
        }
        self.total += buf.len() as u64;
        let room = self.keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..room.min(buf.len())]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    /// Deflate whose wrapper (zlib or raw) is not known until two bytes arrive.
    DeflatePending(Vec<u8>),
    Gzip(Box<flate2::write::GzDecoder<Sink>>),
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    RawDeflate(Box<flate2::write::DeflateDecoder<Sink>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
    /// zstd is decoded at the end from the compressed bytes (bounded by `limit`).
    Zstd(Vec<u8>),
    Stopped,
}

pub(crate) struct BodyReader {
    framing: Framing,
    remaining: u64,
    chunk: Chunk,
    decoder: Option<Decoder>,
    limit: u64,
    keep: usize,
    pub body: Body,
}

pub(crate) struct BodyLimits {
    pub keep: usize,
    pub max_decompressed: u64,
    pub decode: bool,
}

impl BodyReader {
    pub fn new(framing: Framing, coding: Coding, limits: &BodyLimits) -> BodyReader {
        let sink = || Sink {
            kept: Vec::new(),
            keep: limits.keep,
            total: 0,
            limit: limits.max_decompressed,
            over: false,
        };
        let decoder = if !limits.decode {
            None
        } else {
            match coding {
                Coding::Identity | Coding::Unknown => None,
                Coding::Gzip => Some(Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(
                    sink(),
                )))),
                Coding::Deflate => Some(Decoder::DeflatePending(Vec::new())),
                Coding::Brotli => Some(Decoder::Brotli(Box::new(
                    brotli_decompressor::DecompressorWriter::new(sink(), 4096),
                ))),
                Coding::Zstd => Some(Decoder::Zstd(Vec::new())),
            }
        };
        BodyReader {
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunk: Chunk::Size {
                value: 0,
                digits: 0,
                ext: false,
                any: false,
            },
            decoder,
            limit: limits.max_decompressed,
            keep: limits.keep,
            body: Body {
                coding,
                ..Body::default()
            },
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    fn entity(&mut self, data: &[u8], anomalies: &mut Anomalies) {
        self.body.len += data.len() as u64;
        match self.decoder.as_mut() {
            None => {
                let room = self.keep.saturating_sub(self.body.kept.len());
                self.body
                    .kept
                    .extend_from_slice(&data[..room.min(data.len())]);
            }
            Some(d) => {
                let ok = match d {
                    Decoder::DeflatePending(buf) => {
                        buf.extend_from_slice(data);
                        if buf.len() >= 2 {
                            let pending = std::mem::take(buf);
                            let sink = Sink {
                                kept: Vec::new(),
                                keep: self.keep,
                                total: 0,
                                limit: self.limit,
                                over: false,
                            };
                            // RFC 9110 "deflate" is zlib-wrapped; many servers send raw deflate.
                            let zlib = pending[0] & 0x0f == 8
                                && (u16::from(pending[0]) << 8 | u16::from(pending[1])) % 31 == 0;
                            *d = if zlib {
                                Decoder::Zlib(Box::new(flate2::write::ZlibDecoder::new(sink)))
                            } else {
                                Decoder::RawDeflate(Box::new(flate2::write::DeflateDecoder::new(
                                    sink,
                                )))
                            };
                            write_to(d, &pending)
                        } else {
                            Ok(())
                        }
                    }
                    other => write_to(other, data),
                };
                if let Err(over) = ok {
                    anomalies.insert(if over {
                        HttpAnomaly::DecompressionLimit
                    } else {
                        HttpAnomaly::DecompressionError
                    });
                    self.stop_decoder();
                }
            }
        }
    }

    fn stop_decoder(&mut self) {
        if let Some(d) = self.decoder.take() {
            if let Some(s) = into_sink(d) {
                self.body.decoded_len = s.total;
                self.body.kept = s.kept;
            }
            self.body.kept_truncated = true;
            self.decoder = Some(Decoder::Stopped);
        }
    }

    /// Consumes body bytes from `data`.
    pub fn feed(&mut self, data: &[u8], anomalies: &mut Anomalies) -> Progress {
        match self.framing {
            Framing::Length(_) => {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.entity(&data[..n], anomalies);
                self.body.wire_len += n as u64;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    Progress::Done(n)
                } else {
                    Progress::More
                }
            }
            Framing::UntilClose => {
                self.entity(data, anomalies);
                self.body.wire_len += data.len() as u64;
                Progress::More
            }
            Framing::Chunked => self.feed_chunked(data, anomalies),
        }
    }

    fn feed_chunked(&mut self, data: &[u8], anomalies: &mut Anomalies) -> Progress {
        let mut i = 0;
        while i < data.len() {
            match self.chunk {
                Chunk::Size {
                    value,
                    digits,
                    ext,
                    any,
                } => {
                    let b = data[i];
                    i += 1;
                    if b == b'\n' {
                        if i < 2 || data[i - 2] != b'\r' {
                            // A CR may have ended the previous call; only flag a LF with none.
                            if !(i == 1 && self.body.wire_len > 0) {
                                anomalies.insert(HttpAnomaly::BareLf);
                            }
                        }
                        if !any {
                            anomalies.insert(HttpAnomaly::BadChunk);
                            self.body.wire_len += i as u64;
                            return Progress::Broken(i);
                        }
                        self.chunk = if value == 0 {
                            Chunk::Trailer { line: 0 }
                        } else {
                            Chunk::Data(value)
                        };
                    } else if ext || b == b'\r' {
                        // chunk extensions and the CR are skipped
                    } else if b == b';' || ((b == b' ' || b == b'\t') && any) {
                        self.chunk = Chunk::Size {
                            value,
                            digits,
                            ext: true,
                            any,
                        };
                    } else if b == b' ' || b == b'\t' {
                        // leading whitespace, tolerated
                    } else if let Some(d) = (b as char).to_digit(16) {
                        let digits = if value == 0 && d == 0 {
                            digits
                        } else {
                            digits + 1
                        };
                        if digits > 16 {
                            anomalies.insert(HttpAnomaly::BadChunk);
                            self.body.wire_len += i as u64;
                            return Progress::Broken(i);
                        }
                        self.chunk = Chunk::Size {
                            value: value << 4 | d as u64,
                            digits,
                            ext,
                            any: true,
                        };
                    } else {
                        anomalies.insert(HttpAnomaly::BadChunk);
                        self.body.wire_len += i as u64;
                        return Progress::Broken(i - 1);
                    }
                }
                Chunk::Data(left) => {
                    let n = left.min((data.len() - i) as u64) as usize;
                    self.entity(&data[i..i + n], anomalies);
                    i += n;
                    self.chunk = if left == n as u64 {
                        Chunk::DataEnd { cr: false }
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                }
                Chunk::DataEnd { cr } => match data[i] {
                    b'\r' if !cr => {
                        i += 1;
                        self.chunk = Chunk::DataEnd { cr: true };
                    }
                    b'\n' => {
                        if !cr {
                            anomalies.insert(HttpAnomaly::BareLf);
                        }
                        i += 1;
                        self.chunk = Chunk::Size {
                            value: 0,
                            digits: 0,
                            ext: false,
                            any: false,
                        };
                    }
                    _ => {
                        // Data longer than its size line said: framing is lost.
                        anomalies.insert(HttpAnomaly::BadChunk);
                        self.body.wire_len += i as u64;
                        return Progress::Broken(i);
                    }
                },
                Chunk::Trailer { line } => {
                    let b = data[i];
                    i += 1;
                    if b == b'\n' {
                        if line == 0 {
                            self.body.wire_len += i as u64;
                            return Progress::Done(i);
                        }
                        self.chunk = Chunk::Trailer { line: 0 };
                    } else if b != b'\r' || line > 0 {
                        self.chunk = Chunk::Trailer {
                            line: line.saturating_add(1),
                        };
                    }
                }
            }
        }
        self.body.wire_len += data.len() as u64;
        Progress::More
    }

    /// `len` bytes of the body were lost. Returns how many of them belonged to this body
    /// (`None` when the framing is lost and the stream must resync).
    pub fn gap(&mut self, len: u64, anomalies: &mut Anomalies) -> Option<u64> {
        anomalies.insert(HttpAnomaly::Gap);
        // The decoder cannot continue past missing bytes.
        if matches!(self.decoder, Some(ref d) if !matches!(d, Decoder::Stopped)) {
            self.stop_decoder();
        }
        match self.framing {
            Framing::Length(_) => {
                let n = self.remaining.min(len);
                self.remaining -= n;
                self.body.len += n;
                self.body.wire_len += n;
                Some(n)
            }
            Framing::UntilClose => {
                self.body.len += len;
                self.body.wire_len += len;
                Some(len)
            }
            Framing::Chunked => match self.chunk {
                Chunk::Data(left) if left > len => {
                    self.chunk = Chunk::Data(left - len);
                    self.body.len += len;
                    self.body.wire_len += len;
                    Some(len)
                }
                _ => None,
            },
        }
    }

    pub fn is_complete(&self) -> bool {
        match self.framing {
            Framing::Length(_) => self.remaining == 0,
            _ => false,
        }
    }

    /// Ends the body (message complete, or connection closed) and returns what was seen.
    pub fn finish(mut self, anomalies: &mut Anomalies) -> Body {
        match self.decoder.take() {
            None => self.body.decoded_len = self.body.len,
            Some(Decoder::Stopped) => {}
            Some(Decoder::Zstd(compressed)) => {
                let mut sink = Sink {
                    kept: Vec::new(),
                    keep: self.keep,
                    total: 0,
                    limit: self.limit,
                    over: false,
                };
                match ruzstd::decoding::StreamingDecoder::new(compressed.as_slice()) {
                    Ok(mut dec) => {
                        if std::io::copy(&mut dec, &mut sink).is_err() {
                            anomalies.insert(if sink.over {
                                HttpAnomaly::DecompressionLimit
                            } else {
                                HttpAnomaly::DecompressionError
                            });
                        }
                    }
                    Err(_) => anomalies.insert(HttpAnomaly::DecompressionError),
                }
                self.body.decoded_len = sink.total;
                self.body.kept_truncated = sink.total > sink.kept.len() as u64;
                self.body.kept = sink.kept;
            }
            Some(d) => {
                let (sink, err) = finish_decoder(d);
                if let Some(over) = err {
                    anomalies.insert(if over {
                        HttpAnomaly::DecompressionLimit
                    } else {
                        HttpAnomaly::DecompressionError
                    });
                }
                if let Some(s) = sink {
                    self.body.decoded_len = s.total;
                    self.body.kept_truncated = s.total > s.kept.len() as u64;
                    self.body.kept = s.kept;
                }
            }
        }
        if self.body.decoded_len > self.body.kept.len() as u64 {
            self.body.kept_truncated = true;
        }
        self.body
    }
}

/// Writes compressed bytes; `Err(true)` = limit passed, `Err(false)` = corrupt data.
fn write_to(d: &mut Decoder, data: &[u8]) -> Result<(), bool> {
    let (res, over) = match d {
        Decoder::Gzip(w) => (w.write_all(data), w.get_ref().over),
        Decoder::Zlib(w) => (w.write_all(data), w.get_ref().over),
        Decoder::RawDeflate(w) => (w.write_all(data), w.get_ref().over),
        Decoder::Brotli(w) => {
            let r = w.write_all(data);
            (r, w.get_ref().over)
        }
        Decoder::Zstd(buf) => {
            buf.extend_from_slice(data);
            return Ok(());
        }
        Decoder::DeflatePending(_) | Decoder::Stopped => return Ok(()),
    };
    match res {
        Ok(()) => Ok(()),
        Err(_) => Err(over),
    }
}

fn into_sink(d: Decoder) -> Option<Sink> {
    match d {
        Decoder::Gzip(w) => w.finish().ok(),
        Decoder::Zlib(w) => w.finish().ok(),
        Decoder::RawDeflate(w) => w.finish().ok(),
        Decoder::Brotli(w) => w.into_inner().ok(),
        _ => None,
    }
}

fn finish_decoder(d: Decoder) -> (Option<Sink>, Option<bool>) {
    match d {
        Decoder::Gzip(mut w) => {
            let r = w.try_finish();
            let over = w.get_ref().over;
            let err = r.err().map(|_| over);
            (w.finish().ok().or(None), err)
        }
        Decoder::Zlib(mut w) => {
            let r = w.try_finish();
            let over = w.get_ref().over;
            (w.finish().ok(), r.err().map(|_| over))
        }
        Decoder::RawDeflate(mut w) => {
            let r = w.try_finish();
            let over = w.get_ref().over;
            (w.finish().ok(), r.err().map(|_| over))
        }
        Decoder::Brotli(mut w) => {
            let r = w.flush();
            let over = w.get_ref().over;
            let err = r.err().map(|_| over);
            (w.into_inner().ok(), err)
        }
        Decoder::DeflatePending(buf) => (None, (!buf.is_empty()).then_some(false)),
        Decoder::Zstd(_) | Decoder::Stopped => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            keep: 1 << 20,
            max_decompressed: 1 << 20,
            decode: true,
        }
    }

    fn feed_all(r: &mut BodyReader, parts: &[&[u8]], a: &mut Anomalies) -> Vec<Progress> {
        parts.iter().map(|p| r.feed(p, a)).collect()
    }

    #[test]
    fn chunked_with_extensions_and_trailers_split_anywhere() {
        let wire: &[u8] = b"4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut a = Anomalies::default();
            let mut r = BodyReader::new(Framing::Chunked, Coding::Identity, &limits());
            let p1 = r.feed(&wire[..split], &mut a);
            let consumed = match p1 {
                Progress::Done(n) => n,
                Progress::More => {
                    let Progress::Done(n) = r.feed(&wire[split..], &mut a) else {
                        panic!("not done at split {split}")
                    };
                    split + n
                }
                Progress::Broken(_) => panic!("broken at split {split}"),
            };
            assert_eq!(&wire[consumed..], b"NEXT", "split {split}");
            let body = r.finish(&mut a);
            assert_eq!(body.kept, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(body.len, 23);
            assert!(a.is_empty(), "split {split}: {a:?}");
        }
    }

    #[test]
    fn chunk_size_overflow_and_garbage_are_bad_chunks() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Chunked, Coding::Identity, &limits());
        assert!(matches!(
            r.feed(b"10000000000000000\r\n", &mut a),
            Progress::Broken(_)
        ));
        assert!(a.contains(HttpAnomaly::BadChunk));
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Chunked, Coding::Identity, &limits());
        assert!(matches!(r.feed(b"zz\r\n", &mut a), Progress::Broken(0)));
    }

    #[test]
    fn length_body_stops_at_length() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(5), Coding::Identity, &limits());
        assert_eq!(
            feed_all(&mut r, &[b"abc", b"defg"], &mut a),
            vec![Progress::More, Progress::Done(2)]
        );
        assert_eq!(r.finish(&mut a).kept, b"abcde");
    }

    #[test]
    fn gzip_body_is_decoded_and_bounded() {
        use flate2::write::GzEncoder;
        let plain = vec![b'a'; 100_000];
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&plain).expect("gzip");
        let gz = enc.finish().expect("gzip");
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(gz.len() as u64), Coding::Gzip, &limits());
        for c in gz.chunks(7) {
            r.feed(c, &mut a);
        }
        let b = r.finish(&mut a);
        assert_eq!(b.len, gz.len() as u64);
        assert_eq!(b.decoded_len, 100_000);
        assert_eq!(b.kept, plain);
        assert!(a.is_empty());
        // A bomb: the limit stops it and says so.
        let small = BodyLimits {
            keep: 64,
            max_decompressed: 10_000,
            decode: true,
        };
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(gz.len() as u64), Coding::Gzip, &small);
        r.feed(&gz, &mut a);
        let b = r.finish(&mut a);
        assert!(a.contains(HttpAnomaly::DecompressionLimit));
        assert!(b.kept.len() <= 64);
    }

    #[test]
    fn raw_and_zlib_deflate_both_decode() {
        for zlib in [true, false] {
            let data = b"hello hello hello hello".repeat(10);
            let comp = if zlib {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&data).expect("z");
                e.finish().expect("z")
            } else {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&data).expect("d");
                e.finish().expect("d")
            };
            let mut a = Anomalies::default();
            let mut r = BodyReader::new(
                Framing::Length(comp.len() as u64),
                Coding::Deflate,
                &limits(),
            );
            for b in &comp {
                r.feed(std::slice::from_ref(b), &mut a);
            }
            let b = r.finish(&mut a);
            assert_eq!(b.kept, data, "zlib={zlib}");
            assert!(a.is_empty());
        }
    }

    #[test]
    fn corrupt_gzip_is_an_anomaly_not_a_failure() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(20), Coding::Gzip, &limits());
        r.feed(b"\x1f\x8b\x08\x00garbage-garbage!", &mut a);
        let b = r.finish(&mut a);
        assert!(a.contains(HttpAnomaly::DecompressionError));
        assert_eq!(b.len, 20);
    }

    #[test]
    fn gap_inside_length_body_keeps_framing() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(10), Coding::Identity, &limits());
        r.feed(b"abc", &mut a);
        assert_eq!(r.gap(4, &mut a), Some(4));
        assert_eq!(r.feed(b"xyzNEXT", &mut a), Progress::Done(3));
        assert!(a.contains(HttpAnomaly::Gap));
    }
}
