//! One HTTP connection: two incremental half-parsers (requests one way, responses the other)
//! and the queue that pairs them into transactions, in order, with pipelining.

use std::collections::VecDeque;

use flow::Direction;
use wire::Timestamp;

use crate::body::{BodyReader, Framing, Progress};
use crate::head::{self, HeadScan};
use crate::types::{Anomalies, Body, Head, HttpAnomaly, Request, Response, Transaction, Version};

/// Limits and switches of the HTTP parser. Defaults follow common server limits (nginx,
/// Apache allow 8–64 KiB of head and ~100 headers).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Longest message head (start line + headers); longer ones are cut and resynchronised.
    pub max_head_bytes: usize,
    /// Headers kept per message; the rest are ignored and flagged.
    pub max_headers: usize,
    /// Body bytes kept per message for later stages, both as received and once decoded
    /// (0 keeps none).
    pub body_keep_bytes: usize,
    /// Decompressed bytes per body before decoding stops (bomb guard).
    pub max_decompressed_bytes: u64,
    /// Whether the stage after the flow worker undoes the gzip/deflate/br/zstd coding of
    /// request bodies ([`Transaction::decode_bodies`]); the parser itself never decodes.
    pub decode_requests: bool,
    /// The same for response bodies. Off unless a stage reads response content (schemas,
    /// data exposure): responses are most of the compressed bytes on an API, and decoding
    /// them only to throw the result away costs more than all the rest of the analysis.
    pub decode_responses: bool,
    /// Requests waiting for responses on one connection (pipelining depth).
    pub max_pending: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_head_bytes: 64 * 1024,
            max_headers: 128,
            body_keep_bytes: 64 * 1024,
            max_decompressed_bytes: 8 * 1024 * 1024,
            decode_requests: true,
            decode_responses: false,
            max_pending: 64,
        }
    }
}

/// Where finished transactions go. A `Vec<Transaction>` collects them; a closure can turn
/// each into the caller's own record in place (transactions are large: moving them through
/// an intermediate vector costs more than parsing their heads).
pub trait Emit {
    fn emit(&mut self, tx: Transaction);
}

impl Emit for Vec<Transaction> {
    fn emit(&mut self, tx: Transaction) {
        self.push(tx);
    }
}

impl<F: FnMut(Transaction)> Emit for F {
    fn emit(&mut self, tx: Transaction) {
        self(tx)
    }
}

/// Counters over all connections of one parser owner.
#[derive(Clone, Debug, Default)]
pub struct HttpStats {
    pub transactions: u64,
    pub requests: u64,
    pub responses: u64,
    pub anomalies: [u64; 32],
    /// Directions that turned out not to carry HTTP.
    pub not_http: u64,
    pub tunnels: u64,
}

impl HttpStats {
    pub fn anomaly_counts(&self) -> impl Iterator<Item = (HttpAnomaly, u64)> + '_ {
        HttpAnomaly::ALL
            .iter()
            .map(|a| (*a, self.anomalies[*a as usize]))
            .filter(|(_, n)| *n > 0)
    }
    pub fn merge(&mut self, o: &HttpStats) {
        self.transactions += o.transactions;
        self.requests += o.requests;
        self.responses += o.responses;
        for (a, b) in self.anomalies.iter_mut().zip(o.anomalies) {
            *a += b;
        }
        self.not_http += o.not_http;
        self.tunnels += o.tunnels;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

enum State {
    /// Between messages.
    Idle,
    Head {
        buf: Vec<u8>,
        scan: HeadScan,
        start: Timestamp,
    },
    Body {
        reader: BodyReader,
        tx: u32,
    },
    /// Looking for the start of the next message after junk or a gap.
    Resync,
    /// Past CONNECT or an upgrade: the bytes are another protocol.
    Tunnel,
    NotHttp,
}

/// A head ready for the request or response path.
enum HeadDone {
    /// Its bytes, to be parsed (lenient forms, heads that arrived in pieces).
    Bytes {
        bytes: Vec<u8>,
        start: Timestamp,
        bare_lf: bool,
    },
    /// Parsed in place.
    Parsed {
        head: ParsedHead,
        len: u64,
        start: Timestamp,
        bare_lf: bool,
    },
}

enum ParsedHead {
    Request(head::RequestHead),
    Response(head::ResponseHead),
}

struct Half {
    state: State,
    /// Messages parsed in this direction.
    messages: u32,
    /// Anomalies seen before the message they belong to exists (gaps, junk, flow anomalies).
    carry: Anomalies,
    fin: bool,
    /// The transaction of the last message parsed in this direction.
    last_tx: Option<u32>,
    /// Bytes skipped looking for a first message on a flow picked up mid-stream.
    hunted: u64,
}

impl Half {
    fn new() -> Half {
        Half {
            state: State::Idle,
            messages: 0,
            carry: Anomalies::default(),
            fin: false,
            last_tx: None,
            hunted: 0,
        }
    }
}

struct Tx {
    index: u32,
    request: Option<Request>,
    request_done: bool,
    response: Option<Response>,
    response_done: bool,
    interim: Vec<u16>,
    anomalies: Anomalies,
    /// The response started a tunnel (CONNECT 2xx, 101).
    tunnel: bool,
}

/// Per-flow HTTP state. Feed it reassembled bytes per direction; it appends finished
/// transactions to `out` in request order.
pub struct Connection {
    /// The flow was picked up without its start: the first bytes may be the middle of a
    /// message, so a direction is searched for a message start instead of being given up.
    midstream: bool,
    client: Option<Direction>,
    halves: [Half; 2],
    pending: VecDeque<Tx>,
    next_index: u32,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

/// How far into a mid-stream flow a message start is looked for before the direction is
/// declared not HTTP. Scanning is a newline search, so a large bound costs little.
const MIDSTREAM_HUNT_BYTES: u64 = 8 << 20;

fn skip_blank(data: &[u8]) -> usize {
    data.iter()
        .take_while(|&&b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .count()
}

impl Connection {
    pub fn new() -> Connection {
        Connection {
            midstream: false,
            client: None,
            halves: [Half::new(), Half::new()],
            pending: VecDeque::new(),
            next_index: 0,
        }
    }

    /// A connection whose flow was picked up mid-stream (no handshake seen).
    pub fn midstream() -> Connection {
        Connection {
            midstream: true,
            ..Connection::new()
        }
    }

    /// Whether nothing more can be learned from this connection's bytes (both directions are
    /// tunnels or not HTTP), so reassembly may stop feeding it.
    pub fn is_done(&self) -> bool {
        self.halves
            .iter()
            .all(|h| matches!(h.state, State::Tunnel | State::NotHttp))
            && self.pending.is_empty()
    }

    /// The flow direction that sends requests, once known.
    pub fn client_direction(&self) -> Option<Direction> {
        self.client
    }

    fn role(&mut self, dir: Direction, data: &[u8]) -> Option<Role> {
        if let Some(c) = self.client {
            return Some(if c == dir { Role::Client } else { Role::Server });
        }
        let d = &data[skip_blank(data)..];
        if d.is_empty() {
            return None;
        }
        if self.midstream {
            // The first bytes may be anywhere in a message: only a whole start line counts.
            let (at, role) = next_message_start(d, None)?;
            if at != 0 {
                return None;
            }
            self.client = Some(if role == Role::Client {
                dir
            } else {
                dir.other()
            });
            return Some(role);
        }
        let client = match (
            head::looks_like_response_start(d),
            head::looks_like_request_start(d),
        ) {
            (Some(true), _) => dir.other(),
            (_, Some(true)) => dir,
            (Some(false), Some(false)) => return None,
            // Too few bytes to tell: the originator is the client unless shown otherwise.
            _ => Direction::Orig,
        };
        self.client = Some(client);
        Some(if client == dir {
            Role::Client
        } else {
            Role::Server
        })
    }

    /// Notes a reassembly anomaly on the message it hit in `dir`: the one in progress, else
    /// the last one parsed (the anomaly is reported after the bytes were delivered), else
    /// the next one. Never on a transaction that already left.
    pub fn anomaly(&mut self, dir: Direction, a: HttpAnomaly) {
        let h = &mut self.halves[dir.index()];
        let target = match h.state {
            State::Body { tx, .. } => Some(tx),
            State::Head { ref buf, .. } if !buf.is_empty() => None,
            _ => h.last_tx,
        };
        if let Some(tx) = target {
            if let Some(t) = self.pending.iter_mut().find(|t| t.index == tx) {
                t.anomalies.insert(a);
                return;
            }
            if !matches!(h.state, State::Body { .. }) {
                // That transaction already left; the anomaly stays counted by the flow layer.
                return;
            }
        }
        h.carry.insert(a);
    }

    pub fn data(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let mut data = data;
        while !data.is_empty() {
            let h = &self.halves[dir.index()];
            if matches!(h.state, State::Tunnel | State::NotHttp) {
                return;
            }
            let role = match self.role(dir, data) {
                Some(r) => r,
                None => {
                    if skip_blank(data) == data.len() {
                        return;
                    }
                    if self.midstream {
                        // Picked up inside a message: look for one that starts on a line.
                        match next_message_start(data, None) {
                            Some((p, role)) => {
                                self.client = Some(if role == Role::Client {
                                    dir
                                } else {
                                    dir.other()
                                });
                                data = &data[p..];
                                continue;
                            }
                            None => {
                                self.hunt(dir, data.len(), stats);
                                return;
                            }
                        }
                    }
                    self.halves[dir.index()].state = State::NotHttp;
                    stats.not_http += 1;
                    return;
                }
            };
            let used = match role {
                Role::Client => self.client_step(cfg, dir, ts, data, stats, out),
                Role::Server => self.server_step(cfg, dir, ts, data, stats, out),
            };
            data = &data[used.min(data.len())..];
        }
    }

    /// Handles the start of a message in `Idle`/`Resync`; returns bytes consumed.
    fn start_step(
        &mut self,
        role: Role,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        stats: &mut HttpStats,
    ) -> usize {
        let h = &mut self.halves[dir.index()];
        let resync = matches!(h.state, State::Resync);
        let blank = skip_blank(data);
        if blank > 0 {
            return blank;
        }
        let looks = if self.midstream && h.messages == 0 {
            // Nothing parsed yet on a flow picked up mid-stream: demand a whole start line.
            Some(matches!(next_message_start(data, Some(role)), Some((0, _))))
        } else {
            match role {
                Role::Client => head::looks_like_request_start(data),
                Role::Server => head::looks_like_response_start(data),
            }
        };
        if looks == Some(false) {
            if h.messages == 0 && !resync && !self.midstream {
                h.state = State::NotHttp;
                stats.not_http += 1;
                return data.len();
            } else if h.messages == 0 {
                // Mid-stream pickup: these are the tail of a message we never saw the start of.
                h.state = State::Resync;
                return 0;
            } else {
                // Junk: skip to the next line that could start a message.
                h.carry.insert(HttpAnomaly::Junk);
                h.state = State::Resync;
                return next_message_start(data, Some(role))
                    .map_or(data.len(), |(p, _)| p)
                    .max(1);
            }
        }
        let h = &mut self.halves[dir.index()];
        h.state = State::Head {
            buf: Vec::new(),
            scan: HeadScan::default(),
            start: ts,
        };
        0
    }

    /// Skips to the next line that starts a message; returns bytes consumed.
    fn resync_step(
        &mut self,
        role: Role,
        dir: Direction,
        data: &[u8],
        stats: &mut HttpStats,
    ) -> usize {
        match next_message_start(data, Some(role)) {
            Some((p, _)) => {
                self.halves[dir.index()].state = State::Idle;
                if p > 0 && self.halves[dir.index()].messages == 0 {
                    self.hunt(dir, p, stats);
                }
                p
            }
            None => {
                if self.halves[dir.index()].messages == 0 {
                    self.hunt(dir, data.len(), stats);
                }
                data.len()
            }
        }
    }

    /// Counts bytes skipped before the first message of a mid-stream flow; past the bound the
    /// direction is taken for what it looks like: not HTTP.
    fn hunt(&mut self, dir: Direction, skipped: usize, stats: &mut HttpStats) {
        let h = &mut self.halves[dir.index()];
        h.hunted += skipped as u64;
        if h.hunted > MIDSTREAM_HUNT_BYTES {
            h.state = State::NotHttp;
            stats.not_http += 1;
        }
    }

    /// A version-less request line may be followed by headers (and then a blank line) or by
    /// nothing at all (a true HTTP/0.9 client). Once the server answers, it is complete.
    fn complete_simple_request(
        &mut self,
        cfg: &HttpConfig,
        client: Direction,
        ts: Timestamp,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let h = &mut self.halves[client.index()];
        let State::Head { buf, scan, start } = &mut h.state else {
            return;
        };
        if !scan.simple || scan.first_line_end.is_none() {
            return;
        }
        let mut bytes = std::mem::take(buf);
        let start = *start;
        bytes.extend_from_slice(b"\r\n\r\n");
        h.state = State::Idle;
        self.on_request_head(cfg, client, bytes, start, ts, false, false, stats, out);
    }

    fn waiting_http09(&self) -> bool {
        self.pending
            .iter()
            .find(|t| !t.response_done && t.response.is_none())
            .and_then(|t| t.request.as_ref())
            .is_some_and(|r| r.version == Version::Http09)
    }

    /// Accumulates a head; returns the bytes consumed and, once complete, the head.
    fn head_step(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        role: Role,
        data: &[u8],
        stats: &mut HttpStats,
    ) -> (usize, Option<HeadDone>) {
        let h = &mut self.halves[dir.index()];
        let State::Head { buf, scan, start } = &mut h.state else {
            return (0, None);
        };
        let start = *start;
        if buf.is_empty() {
            // Fast path: the whole head is in this delivery and httparse takes it as it is,
            // so it is parsed in place and copied once.
            let in_place = match role {
                Role::Client => match head::request_in_place(data, cfg.max_headers) {
                    head::InPlace::Complete { head, len, bare_lf } => {
                        Some(Some((ParsedHead::Request(head), len, bare_lf)))
                    }
                    head::InPlace::Incomplete => Some(None),
                    head::InPlace::Other => None,
                },
                Role::Server => match head::response_in_place(data, cfg.max_headers) {
                    head::InPlace::Complete { head, len, bare_lf } => {
                        Some(Some((ParsedHead::Response(head), len, bare_lf)))
                    }
                    head::InPlace::Incomplete => Some(None),
                    head::InPlace::Other => None,
                },
            };
            match in_place {
                Some(Some((head, len, bare_lf))) => {
                    return (
                        len,
                        Some(HeadDone::Parsed {
                            head,
                            len: len as u64,
                            start,
                            bare_lf,
                        }),
                    );
                }
                // Not all here yet: buffer it below (the scan then finds the end).
                Some(None) => {}
                // Not a head httparse takes: the scanning path decides.
                None => {
                    if let Some(end) = scan.find_end(data) {
                        let bare_lf = scan.bare_lf;
                        return (
                            end,
                            Some(HeadDone::Bytes {
                                bytes: data[..end].to_vec(),
                                start,
                                bare_lf,
                            }),
                        );
                    }
                }
            }
            *scan = HeadScan::default();
        }
        let before = buf.len();
        let room = cfg.max_head_bytes.saturating_sub(before);
        let take = data.len().min(room.max(1));
        buf.extend_from_slice(&data[..take]);
        match scan.find_end(buf) {
            Some(end) => {
                let used = end - before;
                buf.truncate(end);
                let bare_lf = scan.bare_lf;
                let bytes = std::mem::take(buf);
                (
                    used,
                    Some(HeadDone::Bytes {
                        bytes,
                        start,
                        bare_lf,
                    }),
                )
            }
            None => {
                if buf.len() >= cfg.max_head_bytes {
                    h.carry.insert(HttpAnomaly::HeadTooLong);
                    h.state = State::Resync;
                    stats.anomalies[HttpAnomaly::HeadTooLong as usize] += 1;
                }
                (take, None)
            }
        }
    }

    /// Hands a finished head to the request or response path.
    #[allow(clippy::too_many_arguments)]
    fn head_done(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        role: Role,
        done: HeadDone,
        ts: Timestamp,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        match done {
            HeadDone::Bytes {
                bytes,
                start,
                bare_lf,
            } => match role {
                Role::Client => {
                    self.on_request_head(cfg, dir, bytes, start, ts, bare_lf, false, stats, out)
                }
                Role::Server => {
                    self.on_response_head(cfg, dir, bytes, start, ts, bare_lf, false, stats, out)
                }
            },
            HeadDone::Parsed {
                head,
                len,
                start,
                bare_lf,
            } => {
                let anomalies = self.take_carry(dir, bare_lf);
                match head {
                    ParsedHead::Request(h) => self.on_request_parsed(
                        cfg,
                        dir,
                        Some(h),
                        anomalies,
                        len,
                        start,
                        ts,
                        false,
                        stats,
                        out,
                    ),
                    ParsedHead::Response(h) => self.on_response_parsed(
                        cfg,
                        dir,
                        Some(h),
                        anomalies,
                        len,
                        start,
                        ts,
                        false,
                        stats,
                        out,
                    ),
                }
            }
        }
    }

    fn client_step(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) -> usize {
        let hi = dir.index();
        match &mut self.halves[hi].state {
            State::Idle => self.start_step(Role::Client, dir, ts, data, stats),
            State::Resync => self.resync_step(Role::Client, dir, data, stats),
            State::Head { .. } => {
                let (used, done) = self.head_step(cfg, dir, Role::Client, data, stats);
                if let Some(done) = done {
                    self.head_done(cfg, dir, Role::Client, done, ts, stats, out);
                }
                used
            }
            State::Body { .. } => self.body_step(cfg, dir, ts, data, Role::Client, stats, out),
            State::Tunnel | State::NotHttp => data.len(),
        }
    }

    fn server_step(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) -> usize {
        self.complete_simple_request(cfg, dir.other(), ts, stats, out);
        let hi = dir.index();
        match &mut self.halves[hi].state {
            State::Idle => {
                // A simple (HTTP/0.9) request is answered by raw bytes until close, even when
                // they happen to begin like a status line.
                if self.waiting_http09() {
                    self.start_http09_response(cfg, dir, ts, stats);
                    return 0;
                }
                self.start_step(Role::Server, dir, ts, data, stats)
            }
            State::Resync => self.resync_step(Role::Server, dir, data, stats),
            State::Head { .. } => {
                let (used, done) = self.head_step(cfg, dir, Role::Server, data, stats);
                if let Some(done) = done {
                    self.head_done(cfg, dir, Role::Server, done, ts, stats, out);
                }
                used
            }
            State::Body { .. } => self.body_step(cfg, dir, ts, data, Role::Server, stats, out),
            State::Tunnel | State::NotHttp => data.len(),
        }
    }

    /// The anomalies carried for the next message of `dir` (gaps, junk, reassembly), with
    /// the bare-LF flag of its head.
    fn take_carry(&mut self, dir: Direction, bare_lf: bool) -> Anomalies {
        let mut a = std::mem::take(&mut self.halves[dir.index()].carry);
        if bare_lf {
            a.insert(HttpAnomaly::BareLf);
        }
        a
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request_head(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        bytes: Vec<u8>,
        start: Timestamp,
        ts: Timestamp,
        bare_lf: bool,
        partial: bool,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let mut anomalies = self.take_carry(dir, bare_lf);
        let head_len = bytes.len() as u64;
        let parsed = head::parse_request(bytes, cfg.max_headers, &mut anomalies);
        self.on_request_parsed(
            cfg, dir, parsed, anomalies, head_len, start, ts, partial, stats, out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request_parsed(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        parsed: Option<head::RequestHead>,
        mut anomalies: Anomalies,
        head_len: u64,
        start: Timestamp,
        ts: Timestamp,
        partial: bool,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let hi = dir.index();
        let Some(parsed) = parsed else {
            let h = &mut self.halves[hi];
            if h.messages == 0 {
                // The first thing this side said is not a request: not HTTP.
                h.state = State::NotHttp;
                stats.not_http += 1;
                return;
            }
            anomalies.insert(HttpAnomaly::Junk);
            stats.anomalies[HttpAnomaly::Junk as usize] += 1;
            h.carry = anomalies;
            h.state = State::Resync;
            return;
        };
        let mut parsed = parsed;
        if partial && parsed.version == Version::Http09 {
            // The version was in the part that never arrived, not absent.
            parsed.version = Version::Http11;
        }
        let framing = head::framing(&parsed.head, &mut anomalies);
        let body_framing = if parsed.version == Version::Http09 || partial {
            // A cut head's framing headers may be the ones missing: no body is assumed.
            None
        } else if framing.chunked {
            Some(Framing::Chunked)
        } else {
            match framing.content_length {
                Some(0) | None => None,
                Some(n) => Some(Framing::Length(n)),
            }
        };
        stats.requests += 1;
        self.halves[hi].messages += 1;
        let index = self.next_index;
        self.next_index += 1;
        self.halves[hi].last_tx = Some(index);
        let mut reader = BodyReader::new(
            body_framing.unwrap_or(Framing::Length(0)),
            framing.coding,
            cfg.body_keep_bytes,
        );
        reader.body.wire_len = head_len;
        let request = Request {
            head: parsed.head,
            method: parsed.method,
            target: parsed.target,
            version: parsed.version,
            body: Body::default(),
            start,
            end: ts,
        };
        self.pending.push_back(Tx {
            index,
            request: Some(request),
            request_done: false,
            response: None,
            response_done: false,
            interim: Vec::new(),
            anomalies,
            tunnel: false,
        });
        if body_framing.is_some() {
            self.halves[hi].state = State::Body { reader, tx: index };
        } else {
            self.halves[hi].state = State::Idle;
            let body = reader.finish();
            if let Some(t) = self.pending.back_mut() {
                if let Some(r) = t.request.as_mut() {
                    r.body = body;
                }
                t.request_done = true;
            }
        }
        self.bound_pending(cfg, out, stats);
        self.emit_ready(out, stats);
    }

    fn start_http09_response(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        stats: &mut HttpStats,
    ) {
        let Some(t) = self
            .pending
            .iter_mut()
            .find(|t| !t.response_done && t.response.is_none())
        else {
            return;
        };
        stats.responses += 1;
        t.response = Some(Response {
            head: Head::default(),
            version: Version::Http09,
            status: 0,
            reason: 0..0,
            body: Body::default(),
            interim: Vec::new(),
            start: ts,
            end: ts,
        });
        let reader = BodyReader::new(
            Framing::UntilClose,
            crate::types::Coding::Identity,
            cfg.body_keep_bytes,
        );
        let idx = t.index;
        let h = &mut self.halves[dir.index()];
        h.last_tx = Some(idx);
        h.messages += 1;
        h.state = State::Body { reader, tx: idx };
    }

    #[allow(clippy::too_many_arguments)]
    fn on_response_head(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        bytes: Vec<u8>,
        start: Timestamp,
        ts: Timestamp,
        bare_lf: bool,
        partial: bool,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let mut anomalies = self.take_carry(dir, bare_lf);
        let head_len = bytes.len() as u64;
        let parsed = head::parse_response(bytes, cfg.max_headers, &mut anomalies);
        self.on_response_parsed(
            cfg, dir, parsed, anomalies, head_len, start, ts, partial, stats, out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_response_parsed(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        parsed: Option<head::ResponseHead>,
        mut anomalies: Anomalies,
        head_len: u64,
        start: Timestamp,
        ts: Timestamp,
        partial: bool,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let hi = dir.index();
        let Some(parsed) = parsed else {
            anomalies.insert(HttpAnomaly::Junk);
            self.halves[hi].carry = anomalies;
            self.halves[hi].state = State::Resync;
            return;
        };
        self.halves[hi].messages += 1;
        let status = parsed.status;
        let interim = (100..200).contains(&status) && status != 101;
        // Pair with the oldest request still waiting for a final response.
        let pos = match self
            .pending
            .iter()
            .position(|t| t.response.is_none() && !t.response_done && t.request.is_some())
        {
            Some(p) => p,
            None => {
                anomalies.insert(HttpAnomaly::UnsolicitedResponse);
                let index = self.next_index;
                self.next_index += 1;
                self.pending.push_back(Tx {
                    index,
                    request: None,
                    request_done: true,
                    response: None,
                    response_done: false,
                    interim: Vec::new(),
                    anomalies: Anomalies::default(),
                    tunnel: false,
                });
                self.pending.len() - 1
            }
        };
        let tx = &mut self.pending[pos];
        self.halves[hi].last_tx = Some(tx.index);
        if interim {
            tx.interim.push(status);
            tx.anomalies.union(anomalies);
            self.halves[hi].state = State::Idle;
            return;
        }
        stats.responses += 1;
        let framing = head::framing(&parsed.head, &mut anomalies);
        let method: &[u8] = tx.request.as_ref().map_or(b"", |r| r.method());
        let connect_ok = method.eq_ignore_ascii_case(b"CONNECT") && (200..300).contains(&status);
        let no_body = method == b"HEAD"
            || (100..200).contains(&status)
            || status == 204
            || status == 304
            || connect_ok;
        tx.tunnel = (connect_ok || status == 101) && !partial;
        let body_framing = if no_body || partial {
            // A cut head's framing headers may be the ones missing: no body is assumed.
            None
        } else if framing.chunked {
            Some(Framing::Chunked)
        } else {
            match framing.content_length {
                Some(0) => None,
                Some(n) => Some(Framing::Length(n)),
                None => Some(Framing::UntilClose),
            }
        };
        tx.anomalies.union(anomalies);
        let index = tx.index;
        let mut reader = BodyReader::new(
            body_framing.unwrap_or(Framing::Length(0)),
            framing.coding,
            cfg.body_keep_bytes,
        );
        reader.body.wire_len = head_len;
        tx.response = Some(Response {
            head: parsed.head,
            version: parsed.version,
            status,
            reason: parsed.reason,
            body: Body::default(),
            interim: std::mem::take(&mut tx.interim),
            start,
            end: ts,
        });
        if body_framing.is_some() {
            self.halves[hi].state = State::Body { reader, tx: index };
        } else {
            let body = reader.finish();
            if let Some(r) = tx.response.as_mut() {
                r.body = body;
            }
            tx.response_done = true;
            let tunnel = tx.tunnel;
            self.halves[hi].state = State::Idle;
            if tunnel {
                self.enter_tunnel(stats);
            }
            self.emit_ready(out, stats);
        }
    }

    fn enter_tunnel(&mut self, stats: &mut HttpStats) {
        stats.tunnels += 1;
        for h in &mut self.halves {
            if let State::Body { .. } = h.state {
                continue;
            }
            h.state = State::Tunnel;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn body_step(
        &mut self,
        _cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
        role: Role,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) -> usize {
        let hi = dir.index();
        let State::Body { reader, tx } = &mut self.halves[hi].state else {
            return 0;
        };
        let tx = *tx;
        let Some(t) = self.pending.iter_mut().find(|t| t.index == tx) else {
            // The transaction was emitted early (pipeline bound): keep framing, drop the bytes.
            let mut a = Anomalies::default();
            return match reader.feed(data, &mut a) {
                Progress::More => data.len(),
                Progress::Done(n) | Progress::Broken(n) => {
                    self.halves[hi].state = State::Idle;
                    n
                }
            };
        };
        let progress = reader.feed(data, &mut t.anomalies);
        match role {
            Role::Client => {
                if let Some(r) = t.request.as_mut() {
                    r.end = ts;
                }
            }
            Role::Server => {
                if let Some(r) = t.response.as_mut() {
                    r.end = ts;
                }
            }
        }
        match progress {
            Progress::More => data.len(),
            Progress::Done(n) => {
                self.finish_body(dir, role, false, stats);
                self.emit_ready(out, stats);
                n
            }
            Progress::Broken(n) => {
                self.finish_body(dir, role, true, stats);
                self.emit_ready(out, stats);
                n
            }
        }
    }

    /// Closes the body in progress in `dir` and moves the half to Idle (or Resync when broken).
    fn finish_body(&mut self, dir: Direction, role: Role, broken: bool, stats: &mut HttpStats) {
        let hi = dir.index();
        let state = std::mem::replace(
            &mut self.halves[hi].state,
            if broken { State::Resync } else { State::Idle },
        );
        let State::Body { reader, tx } = state else {
            self.halves[hi].state = state;
            return;
        };
        let Some(t) = self.pending.iter_mut().find(|t| t.index == tx) else {
            return;
        };
        let body = reader.finish();
        match role {
            Role::Client => {
                if let Some(r) = t.request.as_mut() {
                    r.body = body;
                }
                t.request_done = true;
            }
            Role::Server => {
                if let Some(r) = t.response.as_mut() {
                    r.body = body;
                }
                t.response_done = true;
                if t.tunnel {
                    self.enter_tunnel(stats);
                }
            }
        }
    }

    /// `len` bytes were lost in `dir`.
    pub fn gap(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        len: u64,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let hi = dir.index();
        let role = match self.client {
            Some(c) if c == dir => Role::Client,
            Some(_) => Role::Server,
            None => {
                self.halves[hi].carry.insert(HttpAnomaly::Gap);
                return;
            }
        };
        match &mut self.halves[hi].state {
            State::Body { reader, tx } => {
                let tx = *tx;
                let mut a = Anomalies::default();
                let absorbed = reader.gap(len, &mut a);
                if let Some(t) = self.pending.iter_mut().find(|t| t.index == tx) {
                    t.anomalies.union(a);
                }
                match absorbed {
                    Some(n) if n == len && !reader.is_complete() => {}
                    Some(n) => {
                        self.finish_body(dir, role, false, stats);
                        if n < len {
                            self.halves[hi].state = State::Resync;
                            self.halves[hi].carry.insert(HttpAnomaly::Gap);
                        }
                    }
                    None => self.finish_body(dir, role, true, stats),
                }
                self.emit_ready(out, stats);
            }
            State::Tunnel | State::NotHttp => {}
            State::Head { buf, start, .. } if !buf.is_empty() => {
                // The start of a message arrived and the rest was lost: keep what there is as
                // that message, flagged, rather than blaming the next one.
                let mut bytes = std::mem::take(buf);
                let start = *start;
                bytes.extend_from_slice(b"\r\n\r\n");
                let h = &mut self.halves[hi];
                h.state = State::Idle;
                h.carry.insert(HttpAnomaly::Gap);
                let ts = start;
                match role {
                    Role::Client => {
                        self.on_request_head(cfg, dir, bytes, start, ts, false, true, stats, out)
                    }
                    Role::Server => {
                        self.on_response_head(cfg, dir, bytes, start, ts, false, true, stats, out)
                    }
                }
                let h = &mut self.halves[hi];
                if !matches!(h.state, State::NotHttp) {
                    h.state = State::Resync;
                }
            }
            _ => {
                let h = &mut self.halves[hi];
                h.state = State::Resync;
                h.carry.insert(HttpAnomaly::Gap);
            }
        }
    }

    /// The sender of `dir` closed its side: a read-until-close body ends here.
    pub fn fin(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        self.halves[dir.index()].fin = true;
        self.end_of_stream(cfg, dir, ts, stats, out);
        self.emit_ready(out, stats);
    }

    fn end_of_stream(
        &mut self,
        cfg: &HttpConfig,
        dir: Direction,
        ts: Timestamp,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        let hi = dir.index();
        let role = match self.client {
            Some(c) if c == dir => Role::Client,
            Some(_) => Role::Server,
            None => return,
        };
        match &self.halves[hi].state {
            State::Body { reader, tx } => {
                let truncated = reader.framing() != Framing::UntilClose;
                let tx = *tx;
                if truncated {
                    if let Some(t) = self.pending.iter_mut().find(|t| t.index == tx) {
                        t.anomalies.insert(HttpAnomaly::TruncatedBody);
                    }
                }
                self.finish_body(dir, role, false, stats);
            }
            State::Head { buf, start, scan } if !buf.is_empty() => {
                // A head cut short by the close: parse what there is. A complete version-less
                // first line is a real simple request; anything else is a cut head.
                let simple = scan.simple && scan.first_line_end.is_some();
                let mut bytes = buf.clone();
                let start = *start;
                bytes.extend_from_slice(b"\r\n\r\n");
                self.halves[hi].state = State::Idle;
                match role {
                    Role::Client => {
                        self.on_request_head(cfg, dir, bytes, start, ts, false, !simple, stats, out)
                    }
                    Role::Server => {
                        self.on_response_head(cfg, dir, bytes, start, ts, false, true, stats, out)
                    }
                }
                if let Some(t) = self.pending.back_mut() {
                    t.anomalies.insert(HttpAnomaly::TruncatedBody);
                }
                // Whatever body it announced will not come.
                if let State::Body { .. } = self.halves[hi].state {
                    self.finish_body(dir, role, false, stats);
                }
            }
            _ => {}
        }
    }

    /// The connection is over: everything still open is finished and emitted.
    pub fn close(
        &mut self,
        cfg: &HttpConfig,
        ts: Timestamp,
        stats: &mut HttpStats,
        out: &mut dyn Emit,
    ) {
        for dir in [Direction::Orig, Direction::Resp] {
            if !self.halves[dir.index()].fin {
                self.end_of_stream(cfg, dir, ts, stats, out);
            }
        }
        self.emit_ready(out, stats);
        while let Some(t) = self.pending.pop_front() {
            self.emit(t, out, stats);
        }
    }

    fn bound_pending(&mut self, cfg: &HttpConfig, out: &mut dyn Emit, stats: &mut HttpStats) {
        while self.pending.len() > cfg.max_pending.max(1) {
            if let Some(mut t) = self.pending.pop_front() {
                t.anomalies.insert(HttpAnomaly::PipelineOverflow);
                self.emit(t, out, stats);
            }
        }
    }

    fn emit_ready(&mut self, out: &mut dyn Emit, stats: &mut HttpStats) {
        while let Some(t) = self.pending.front() {
            if !(t.request_done && t.response_done) {
                break;
            }
            if let Some(t) = self.pending.pop_front() {
                self.emit(t, out, stats);
            }
        }
    }

    fn emit(&mut self, mut t: Tx, out: &mut dyn Emit, stats: &mut HttpStats) {
        if t.request.is_some() && t.response.is_none() {
            t.anomalies.insert(HttpAnomaly::MissingResponse);
        }
        // Requests whose body never completed still carry what was seen of them.
        stats.transactions += 1;
        for a in t.anomalies.iter() {
            stats.anomalies[a as usize] += 1;
        }
        out.emit(Transaction {
            index: t.index,
            client_is_orig: self.client != Some(Direction::Resp),
            request: t.request,
            response: t.response,
            anomalies: t.anomalies,
        });
    }
}

/// The next line start in `data` where a message for `role` (either, when `None`) begins,
/// and whose message it is. A complete line must be a whole request line with an `HTTP/1.x`
/// version or a status line (`HTTP/1.x NNN`); a line cut by the end of `data` only has to
/// begin like one (its head parse decides).
fn next_message_start(data: &[u8], role: Option<Role>) -> Option<(usize, Role)> {
    let check = |d: &[u8]| -> Option<Role> {
        let line_end = memchr::memchr(b'\n', d);
        let line = &d[..line_end.unwrap_or(d.len())];
        let complete = line_end.is_some();
        let want = |r: Role| role.is_none_or(|x| x == r);
        if want(Role::Server) {
            let ok = if complete {
                head::is_status_line(line)
            } else {
                head::looks_like_response_start(line) == Some(true)
            };
            if ok {
                return Some(Role::Server);
            }
        }
        if want(Role::Client) {
            let ok = if complete {
                head::is_request_line(line)
            } else {
                head::looks_like_request_start(line) == Some(true)
            };
            if ok {
                return Some(Role::Client);
            }
        }
        None
    };
    if let Some(r) = check(data) {
        return Some((0, r));
    }
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'\n', &data[from..]) {
        let s = from + p + 1;
        if s >= data.len() {
            return None;
        }
        if let Some(r) = check(&data[s..]) {
            return Some((s, r));
        }
        from = s;
    }
    None
}
