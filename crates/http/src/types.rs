//! The transaction model handed to later stages, and the typed anomalies a parse can raise.

use std::ops::Range;

use wire::Timestamp;

/// HTTP version as on the start line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// A request line without a version: no headers, the response is raw bytes until close.
    Http09,
    Http10,
    Http11,
    /// Any other `HTTP/x.y` the peer sent (x, y single digits).
    Other(u8, u8),
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http09 => "0.9",
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
            Version::Other(2, 0) => "2.0",
            Version::Other(2, _) => "2",
            Version::Other(3, _) => "3",
            Version::Other(0, _) => "0.9",
            Version::Other(1, _) => "1.1",
            Version::Other(..) => "other",
        }
    }

    pub(crate) fn parse(v: &[u8]) -> Option<Version> {
        let v = v.strip_prefix(b"HTTP/").or_else(|| {
            if v.len() >= 5 && v[..5].eq_ignore_ascii_case(b"HTTP/") {
                Some(&v[5..])
            } else {
                None
            }
        })?;
        match v {
            b"1.1" => Some(Version::Http11),
            b"1.0" => Some(Version::Http10),
            b"0.9" => Some(Version::Http09),
            [a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Some(Version::Other(a - b'0', b - b'0'))
            }
            [a] if a.is_ascii_digit() => Some(Version::Other(a - b'0', 0)),
            _ => None,
        }
    }

    /// Whether connections default to keep-alive.
    pub fn persistent_by_default(self) -> bool {
        !matches!(self, Version::Http09 | Version::Http10)
    }
}

macro_rules! anomalies {
    ($( $(#[$doc:meta])* $name:ident = $text:literal, )*) => {
        /// Typed, counted signals of malformed, ambiguous or hostile traffic. Never an error:
        /// they ride on the transaction (`mirador.anomalies`) and in the summary counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum HttpAnomaly { $( $(#[$doc])* $name, )* }

        impl HttpAnomaly {
            pub const ALL: &'static [HttpAnomaly] = &[ $( HttpAnomaly::$name, )* ];
            pub fn as_str(self) -> &'static str {
                match self { $( HttpAnomaly::$name => $text, )* }
            }
        }
    };
}

anomalies! {
    /// Bytes of the message were never captured (TCP gap).
    Gap = "gap",
    /// A retransmission carried different bytes than the original (first copy kept).
    OverlapMismatch = "overlap_mismatch",
    /// Out-of-order data passed the reassembly bound and a hole was skipped.
    ReassemblyOverflow = "reassembly_overflow",
    /// Content-Length given twice with the same value.
    DuplicateContentLength = "duplicate_content_length",
    /// Content-Length given more than once with different values.
    ConflictingContentLength = "conflicting_content_length",
    /// Content-Length not a decimal number, negative, or too large.
    BadContentLength = "bad_content_length",
    /// Transfer-Encoding and Content-Length together (request smuggling vector).
    TeClConflict = "te_cl_conflict",
    /// A Transfer-Encoding other than chunked last, or an unknown coding.
    BadTransferEncoding = "bad_transfer_encoding",
    /// A chunk size line that is not hex, overflows, or framing that is broken.
    BadChunk = "bad_chunk",
    /// A header continued on the next line (obs-fold).
    ObsFold = "obs_fold",
    /// A line ended by LF without CR.
    BareLf = "bare_lf",
    /// A header line without a colon, or with whitespace before the colon.
    InvalidHeader = "invalid_header",
    /// More headers than the configured limit; the rest were ignored.
    HeaderLimit = "header_limit",
    /// The head passed the configured size limit.
    HeadTooLong = "head_too_long",
    /// A request line or status line that does not parse.
    InvalidStartLine = "invalid_start_line",
    /// A request never answered before the connection ended.
    MissingResponse = "missing_response",
    /// A response with no request waiting for it (request lost, or desync).
    UnsolicitedResponse = "unsolicited_response",
    /// The message ended (connection closed) before its declared length.
    TruncatedBody = "truncated_body",
    /// Decoding a compressed body passed the configured limit.
    DecompressionLimit = "decompression_limit",
    /// A compressed body that does not decode.
    DecompressionError = "decompression_error",
    /// Bytes between messages that are not HTTP (skipped until the next message).
    Junk = "junk",
    /// More requests queued unanswered than the pipeline bound; the oldest was emitted early.
    PipelineOverflow = "pipeline_overflow",
    /// The message head arrived after the transaction had already ended.
    LateData = "late_data",
    /// Host header given more than once.
    DuplicateHost = "duplicate_host",
}

/// A small set of anomalies (a bit per kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Anomalies(u32);

impl Anomalies {
    pub fn insert(&mut self, a: HttpAnomaly) {
        self.0 |= 1 << (a as u8);
    }
    pub fn contains(self, a: HttpAnomaly) -> bool {
        self.0 & (1 << (a as u8)) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(&mut self, o: Anomalies) {
        self.0 |= o.0;
    }
    pub fn iter(self) -> impl Iterator<Item = HttpAnomaly> {
        HttpAnomaly::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }
}

/// One header: ranges into [`Head::raw`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<u32>,
    pub value: Range<u32>,
}

/// A message head kept as one copy of its bytes plus ranges: one allocation for the bytes,
/// one for the index, whatever the header count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub raw: Vec<u8>,
    pub fields: Vec<Field>,
}

impl Head {
    pub fn slice(&self, r: &Range<u32>) -> &[u8] {
        self.raw
            .get(r.start as usize..r.end as usize)
            .unwrap_or(&[])
    }
    /// First value of a header, name matched case-insensitively.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .find(|f| f.name.len() == name.len() && self.slice(&f.name).eq_ignore_ascii_case(name))
            .map(|f| self.slice(&f.value))
    }
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|f| (self.slice(&f.name), self.slice(&f.value)))
    }
}

/// The content coding a body was decoded from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Coding {
    #[default]
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
    /// A coding this sensor does not decode (kept raw).
    Unknown,
}

/// What was seen of a message body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// Entity length after de-chunking, before content decoding.
    pub len: u64,
    /// Head plus body bytes as they were on the wire (chunk framing included).
    pub wire_len: u64,
    pub coding: Coding,
    /// The entity bytes as received (de-chunked, still content-coded), up to `body_keep_bytes`.
    pub raw: Vec<u8>,
    /// `raw` holds less than the whole entity (keep limit, or a gap).
    pub raw_truncated: bool,
    /// The decoded content, once [`Transaction::decode_bodies`] ran on a coded body (boxed:
    /// rare, and transactions are moved often).
    pub decoded: Option<Box<Decoded>>,
}

impl Body {
    /// Undoes the content coding into a new buffer, bounded like [`Transaction::decode_bodies`],
    /// without touching the body or its transaction (for stages that look at a sample).
    /// `None` when there is no coding to undo or it failed.
    pub fn decode_copy(
        &self,
        keep_bytes: usize,
        max_decompressed_bytes: u64,
        decoders: &mut crate::Decoders,
    ) -> Option<Decoded> {
        if self.decoded.is_some() {
            return None;
        }
        crate::decode::decode(self, keep_bytes, max_decompressed_bytes, decoders).0
    }

    /// The content as the application sees it: decoded when a coding was undone, else raw.
    pub fn content(&self) -> &[u8] {
        match &self.decoded {
            Some(d) => &d.bytes,
            None => &self.raw,
        }
    }
}

/// A body's content after undoing its content coding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Up to `body_keep_bytes` of decoded content.
    pub bytes: Vec<u8>,
    /// Decoded length, counted up to `max_decompressed_bytes`.
    pub len: u64,
    /// `bytes` is not the whole content (keep limit, decompression limit, or raw input cut).
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub head: Head,
    pub method: Range<u32>,
    pub target: Range<u32>,
    pub version: Version,
    pub body: Body,
    /// Packet time of the first byte.
    pub start: Timestamp,
    /// Packet time of the last byte.
    pub end: Timestamp,
}

impl Request {
    pub fn method(&self) -> &[u8] {
        self.head.slice(&self.method)
    }
    pub fn target(&self) -> &[u8] {
        self.head.slice(&self.target)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Empty for an HTTP/0.9 response, which has no status line.
    pub head: Head,
    pub version: Version,
    /// 0 when there was no status line (HTTP/0.9).
    pub status: u16,
    pub reason: Range<u32>,
    pub body: Body,
    /// Interim (1xx other than 101) statuses that came before this final one.
    pub interim: Vec<u16>,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// One request and its response, as far as they were seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// 0-based position on the connection.
    pub index: u32,
    /// The client (request sender) is the flow's originator.
    pub client_is_orig: bool,
    pub request: Option<Request>,
    pub response: Option<Response>,
    pub anomalies: Anomalies,
}

impl Transaction {
    /// Undoes the content coding of the bodies `cfg` asks for (`decode_requests`,
    /// `decode_responses`; bounded by its limits), recording
    /// `decompression_limit` / `decompression_error`. Idempotent. Meant for the stage that
    /// inspects bodies; the flow worker never calls it.
    pub fn decode_bodies(&mut self, cfg: &crate::HttpConfig) {
        self.decode_bodies_with(cfg, &mut crate::Decoders::default());
    }

    /// [`Transaction::decode_bodies`] reusing a caller's decoder state (one per thread).
    pub fn decode_bodies_with(&mut self, cfg: &crate::HttpConfig, decoders: &mut crate::Decoders) {
        let bodies = [
            self.request
                .as_mut()
                .filter(|_| cfg.decode_requests)
                .map(|r| &mut r.body),
            self.response
                .as_mut()
                .filter(|_| cfg.decode_responses)
                .map(|r| &mut r.body),
        ];
        for body in bodies.into_iter().flatten() {
            if body.decoded.is_some() {
                continue;
            }
            let (decoded, anomaly) = crate::decode::decode(
                body,
                cfg.body_keep_bytes,
                cfg.max_decompressed_bytes,
                decoders,
            );
            body.decoded = decoded.map(Box::new);
            if let Some(a) = anomaly {
                self.anomalies.insert(a);
            }
        }
    }

    pub fn start(&self) -> Timestamp {
        self.request
            .as_ref()
            .map(|r| r.start)
            .or(self.response.as_ref().map(|r| r.start))
            .unwrap_or_default()
    }
    pub fn end(&self) -> Timestamp {
        self.response
            .as_ref()
            .map(|r| r.end)
            .or(self.request.as_ref().map(|r| r.end))
            .unwrap_or_default()
    }
}
