//! Message bodies: framing (Content-Length, chunked as an explicit state machine, until close)
//! and gap handling. The entity bytes are kept, bounded, for the stages that decode and
//! inspect them (see `decode`).

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

pub(crate) struct BodyReader {
    framing: Framing,
    remaining: u64,
    chunk: Chunk,
    keep: usize,
    pub body: Body,
}

impl BodyReader {
    /// `keep`: entity bytes retained for later stages (decoding, inspection).
    pub fn new(framing: Framing, coding: Coding, keep: usize) -> BodyReader {
        let mut body = Body {
            coding,
            ..Body::default()
        };
        if let Framing::Length(n) = framing {
            // One allocation of the right size instead of a doubling series.
            body.raw = Vec::with_capacity((n as usize).min(keep));
        }
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
            keep,
            body,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    fn entity(&mut self, data: &[u8]) {
        self.body.len += data.len() as u64;
        let room = self.keep.saturating_sub(self.body.raw.len());
        if room < data.len() {
            self.body.raw_truncated = true;
        }
        self.body
            .raw
            .extend_from_slice(&data[..room.min(data.len())]);
    }

    /// Consumes body bytes from `data`.
    pub fn feed(&mut self, data: &[u8], anomalies: &mut Anomalies) -> Progress {
        match self.framing {
            Framing::Length(_) => {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.entity(&data[..n]);
                self.body.wire_len += n as u64;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    Progress::Done(n)
                } else {
                    Progress::More
                }
            }
            Framing::UntilClose => {
                self.entity(data);
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
                    self.entity(&data[i..i + n]);
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
        // Kept bytes after a hole would not be the entity's bytes: stop keeping.
        self.body.raw_truncated = true;
        self.keep = self.body.raw.len();
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
    pub fn finish(self) -> Body {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: usize = 1 << 20;

    fn feed_all(r: &mut BodyReader, parts: &[&[u8]], a: &mut Anomalies) -> Vec<Progress> {
        parts.iter().map(|p| r.feed(p, a)).collect()
    }

    #[test]
    fn chunked_with_extensions_and_trailers_split_anywhere() {
        let wire: &[u8] = b"4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut a = Anomalies::default();
            let mut r = BodyReader::new(Framing::Chunked, Coding::Identity, KEEP);
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
            let body = r.finish();
            assert_eq!(body.raw, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(body.len, 23);
            assert_eq!(body.wire_len as usize, consumed);
            assert!(a.is_empty(), "split {split}: {a:?}");
        }
    }

    #[test]
    fn chunk_size_overflow_and_garbage_are_bad_chunks() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Chunked, Coding::Identity, KEEP);
        assert!(matches!(
            r.feed(b"10000000000000000\r\n", &mut a),
            Progress::Broken(_)
        ));
        assert!(a.contains(HttpAnomaly::BadChunk));
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Chunked, Coding::Identity, KEEP);
        assert!(matches!(r.feed(b"zz\r\n", &mut a), Progress::Broken(0)));
    }

    #[test]
    fn length_body_stops_at_length_and_keep_is_bounded() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(5), Coding::Identity, KEEP);
        assert_eq!(
            feed_all(&mut r, &[b"abc", b"defg"], &mut a),
            vec![Progress::More, Progress::Done(2)]
        );
        assert_eq!(r.finish().raw, b"abcde");
        let mut r = BodyReader::new(Framing::Length(10), Coding::Identity, 4);
        r.feed(b"0123456789", &mut a);
        let b = r.finish();
        assert_eq!(
            (b.raw.as_slice(), b.len, b.raw_truncated),
            (&b"0123"[..], 10, true)
        );
    }

    #[test]
    fn gap_inside_length_body_keeps_framing() {
        let mut a = Anomalies::default();
        let mut r = BodyReader::new(Framing::Length(10), Coding::Identity, KEEP);
        r.feed(b"abc", &mut a);
        assert_eq!(r.gap(4, &mut a), Some(4));
        assert_eq!(r.feed(b"xyzNEXT", &mut a), Progress::Done(3));
        assert!(a.contains(HttpAnomaly::Gap));
        let b = r.finish();
        assert_eq!((b.raw.as_slice(), b.raw_truncated), (&b"abc"[..], true));
    }
}
