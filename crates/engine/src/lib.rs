//! The analysis core of one worker: frames in, HTTP transactions out.
//!
//! Decodes each frame, feeds its TCP segment to the flow table, and lets the HTTP parser of
//! each flow turn the reassembled streams into transactions tagged with their flow's
//! identity. Deterministic: packet time only, no I/O, no wall clock; the same frames give the
//! same transactions in the same order.

mod batch;
mod ids;

use std::net::SocketAddr;
use std::sync::Arc;

pub use batch::SegmentBatch;
use flow::{
    CloseReason, Direction, FlowAnomaly, FlowConfig, FlowMeta, FlowStats, FlowTable, StreamSink,
};
use http::{Connection, HttpAnomaly, HttpConfig, HttpStats, Transaction};
pub use ids::{community_id, flow_uid};
use wire::{DecodeStats, Decoded, Decoder, DecoderConfig, LinkType, Timestamp};

/// Everything the core needs to know, validated by the binary's config layer.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    pub decoder: DecoderConfig,
    pub flow: FlowConfig,
    pub http: HttpConfig,
}

/// Identity of the flow a transaction came from; shared by all its transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowIds {
    /// Stable within a run and across runs over the same input.
    pub uid: String,
    /// Community ID v1 of the 5-tuple.
    pub community_id: String,
    /// The side that sent the request.
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub vlan: Option<u16>,
    /// Room for the output edge to keep this flow's encoded fields, so encoders that write
    /// many records per flow encode the flow part once. The core never reads or writes it.
    pub encoded: std::sync::OnceLock<Box<[u8]>>,
}

/// One transaction and where it was seen.
#[derive(Debug, Clone)]
pub struct TxRecord {
    pub flow: Arc<FlowIds>,
    pub tx: Transaction,
    /// Where the record falls in the order one worker would emit it; records of several
    /// workers merged by this key come out as from one worker (see [`Order`]).
    pub order: Order,
    /// Which worker made it (set by the pipeline), so it can be freed there.
    pub origin: u16,
    /// What the analysis stage learnt of it (route, identity, sensitive data), when it ran.
    pub notes: Option<Notes>,
    /// What the flow worker worked out for the analysis stage, when the inventory runs.
    pub prepared: Option<Prepared>,
}

/// The part of the analysis of one transaction that needs none of the analysis stage's tables,
/// done by the flow worker that parsed it: workers run in parallel, the analysis stage in one
/// order, so what can move to the workers should.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prepared {
    /// Every transaction feature but the three of the endpoint's history
    /// (`features::tx::TxFeatures::with_history`).
    pub features: features::tx::TxFeatures,
    /// The inventory's route-cache hash of the request's host, method and path.
    pub route_hash: u64,
    /// Where the request's credentials are, when a look at its headers could tell.
    pub auth: Option<features::auth::AuthHint>,
    /// Where the inventory's split of the request target put its parts, when they all lie in
    /// the target (not for a stand-in path).
    pub target: Option<TargetCuts>,
}

/// Byte ranges `[start, end)` of a request target's authority, path and raw query within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCuts {
    pub authority: Option<[u32; 2]>,
    pub path: [u32; 2],
    pub query: [u32; 2],
}

/// The analysis stage's findings on one transaction, written into its record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notes {
    /// `METHOD /template` (`mirador.route`); `None` for requests to no known route.
    pub route: Option<Label>,
    /// Credentials seen, as keyed hashes (`mirador.identity`).
    pub identity: smallvec::SmallVec<[IdentityNote; 1]>,
    /// Kinds of sensitive data found in the transaction (`mirador.sensitive`).
    pub sensitive: Vec<&'static str>,
    /// The request target with credential values (API keys, tokens in the query) replaced,
    /// written as `url.original` / `url.query` instead of the target as sent.
    pub redacted_target: Option<Box<str>>,
    /// The anomaly model's score and whether the transaction contributed to an alert
    /// (`mirador.anomaly.score`, `mirador.anomaly.alerted`), when detection ran.
    pub anomaly: Option<AnomalyNote>,
}

/// The detection stage's word on one transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyNote {
    /// Higher is more anomalous; finite and ≥ 0.
    pub score: f64,
    pub alerted: bool,
}

/// Routes and credential names on records are interned labels: copied between threads as a
/// pointer, with no allocation and no reference count per record.
pub use label::Label;

/// One credential as it may leave the sensor: its scheme, where it was, and keyed hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityNote {
    pub scheme: &'static str,
    pub location: &'static str,
    pub name: Label,
    /// Keyed hash of the secret itself (written as hex).
    pub credential: [u8; 16],
    /// Keyed hash of who it names (JWT issuer and subject, Basic user), surviving rotation.
    pub subject: Option<[u8; 16]>,
}

/// Emission order independent of how flows are spread over workers: the global sequence
/// number of the packet that completed the transaction; for transactions ended by a timeout
/// at a batch boundary, that boundary, then the flow's first packet; at the end of input,
/// the flow's first packet. `sub` counts records emitted at the same point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Order {
    pub at: u64,
    pub flow: u64,
    pub sub: u32,
}

impl Order {
    pub const END: u64 = u64::MAX;
}

/// Counters of every stage of one engine.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    pub decode: DecodeStats,
    pub flow: FlowStats,
    pub http: HttpStats,
}

impl EngineStats {
    pub fn merge(&mut self, o: &EngineStats) {
        self.decode.merge(&o.decode);
        self.flow.merge(&o.flow);
        self.http.merge(&o.http);
    }
}

/// Per-flow state of the HTTP sink.
pub struct FlowState {
    conn: Connection,
    ids: Option<Arc<FlowIds>>,
    /// Global sequence number of the flow's first packet (orders its late emissions).
    first_seq: u64,
}

struct HttpSink<'a> {
    cfg: &'a HttpConfig,
    stats: &'a mut HttpStats,
    out: &'a mut Vec<TxRecord>,
    /// Order of the next record: the current packet, a boundary, or the end.
    order: &'a mut Order,
    /// Sequence number of the packet being processed (for flows it opens).
    seq: u64,
    /// Records emitted outside packet processing are keyed by their flow's first packet.
    by_flow: bool,
}

/// Ids of a flow, made once, when its first transaction leaves (the client is known then).
fn flow_ids(meta: &FlowMeta, client_is_orig: bool) -> Arc<FlowIds> {
    let orig = SocketAddr::new(meta.orig_ip, meta.orig_port);
    let resp = SocketAddr::new(meta.resp_ip, meta.resp_port);
    let (client, server) = if client_is_orig {
        (orig, resp)
    } else {
        (resp, orig)
    };
    Arc::new(FlowIds {
        uid: flow_uid(meta),
        community_id: community_id(client, server, 6, 0),
        client,
        server,
        vlan: meta.vlan,
        encoded: std::sync::OnceLock::new(),
    })
}

/// Runs `f` on the flow's connection with an emitter that turns each finished transaction
/// straight into a record in `out`.
fn with_emit<R>(
    st: &mut FlowState,
    meta: &FlowMeta,
    out: &mut Vec<TxRecord>,
    order: &mut Order,
    by_flow: bool,
    f: impl FnOnce(&mut Connection, &mut dyn http::Emit) -> R,
) -> R {
    let ids = &mut st.ids;
    if by_flow {
        *order = Order {
            at: order.at,
            flow: st.first_seq + 1,
            sub: 0,
        };
    }
    let mut emit = |tx: Transaction| {
        let flow = ids
            .get_or_insert_with(|| flow_ids(meta, tx.client_is_orig))
            .clone();
        out.push(TxRecord {
            notes: None,
            prepared: None,
            flow,
            tx,
            order: *order,
            origin: 0,
        });
        order.sub = order.sub.saturating_add(1);
    };
    f(&mut st.conn, &mut emit)
}

impl StreamSink for HttpSink<'_> {
    type State = FlowState;

    fn open(&mut self, meta: &FlowMeta) -> FlowState {
        // Without the handshake the first bytes may be the middle of a message.
        let conn = if meta.handshake_seen {
            Connection::new()
        } else {
            Connection::midstream()
        };
        FlowState {
            conn,
            ids: None,
            first_seq: self.seq,
        }
    }

    fn data(
        &mut self,
        st: &mut FlowState,
        meta: &FlowMeta,
        dir: Direction,
        ts: Timestamp,
        data: &[u8],
    ) {
        let (cfg, stats) = (self.cfg, &mut *self.stats);
        with_emit(st, meta, self.out, self.order, self.by_flow, |c, e| {
            c.data(cfg, dir, ts, data, stats, e)
        });
    }

    fn gap(
        &mut self,
        st: &mut FlowState,
        meta: &FlowMeta,
        dir: Direction,
        _ts: Timestamp,
        len: u64,
    ) {
        let (cfg, stats) = (self.cfg, &mut *self.stats);
        with_emit(st, meta, self.out, self.order, self.by_flow, |c, e| {
            c.gap(cfg, dir, len, stats, e)
        });
    }

    fn fin(&mut self, st: &mut FlowState, meta: &FlowMeta, dir: Direction, ts: Timestamp) {
        let (cfg, stats) = (self.cfg, &mut *self.stats);
        with_emit(st, meta, self.out, self.order, self.by_flow, |c, e| {
            c.fin(cfg, dir, ts, stats, e)
        });
    }

    fn anomaly(
        &mut self,
        st: &mut FlowState,
        _meta: &FlowMeta,
        dir: Direction,
        anomaly: FlowAnomaly,
    ) {
        let a = match anomaly {
            FlowAnomaly::OverlapMismatch => HttpAnomaly::OverlapMismatch,
            FlowAnomaly::ReassemblyOverflow => HttpAnomaly::ReassemblyOverflow,
            FlowAnomaly::AckedUnseen => HttpAnomaly::Gap,
        };
        st.conn.anomaly(dir, a);
    }

    fn close(&mut self, mut st: FlowState, meta: &FlowMeta, ts: Timestamp, _reason: CloseReason) {
        let (cfg, stats) = (self.cfg, &mut *self.stats);
        with_emit(&mut st, meta, self.out, self.order, self.by_flow, |c, e| {
            c.close(cfg, ts, stats, e)
        });
    }
}

/// How often (packet time) idle flows and stale fragments are looked for.
const EXPIRE_EVERY_NS: u64 = 1_000_000_000;

/// One worker's analysis core.
pub struct Engine {
    decoder: Decoder,
    flows: FlowTable<FlowState>,
    http_cfg: HttpConfig,
    http_stats: HttpStats,
    now: Timestamp,
    next_expire: Timestamp,
    /// Sequence number of the packet being processed (own count in `packet` mode).
    seq: u64,
    order: Order,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            decoder: Decoder::new(cfg.decoder),
            flows: FlowTable::new(cfg.flow),
            http_cfg: cfg.http,
            http_stats: HttpStats::default(),
            now: Timestamp::ZERO,
            next_expire: Timestamp::ZERO,
            seq: 0,
            order: Order::default(),
        }
    }

    fn sink<'a>(
        &'a mut self,
        out: &'a mut Vec<TxRecord>,
        by_flow: bool,
    ) -> (&'a mut FlowTable<FlowState>, HttpSink<'a>) {
        let sink = HttpSink {
            cfg: &self.http_cfg,
            stats: &mut self.http_stats,
            out,
            order: &mut self.order,
            seq: self.seq,
            by_flow,
        };
        (&mut self.flows, sink)
    }

    /// Processes one captured frame (decode, timeouts, reassembly, HTTP); finished
    /// transactions are appended to `out`. For a single thread that does everything.
    pub fn packet(&mut self, link: LinkType, ts: Timestamp, frame: &[u8], out: &mut Vec<TxRecord>) {
        self.seq += 1;
        if ts > self.now {
            self.now = ts;
        }
        if self.now >= self.next_expire {
            self.expire(self.seq, out);
        }
        let decoded = self.decoder.decode(link, ts, frame);
        if let Decoded::Tcp(seg) = decoded {
            self.order = Order {
                at: self.seq,
                flow: 0,
                sub: 0,
            };
            // Field by field: the segment borrows the decoder.
            let mut sink = HttpSink {
                cfg: &self.http_cfg,
                stats: &mut self.http_stats,
                out,
                order: &mut self.order,
                seq: self.seq,
                by_flow: false,
            };
            self.flows.process(ts, &seg, &mut sink);
        }
    }

    /// Every segment of a batch a capture thread decoded, then timeouts at the batch's
    /// boundary. Timeouts run only at boundaries, which the capture side places the same way
    /// whatever the number of workers, so the records do not depend on it.
    pub fn batch(&mut self, batch: &SegmentBatch, out: &mut Vec<TxRecord>) {
        for (ts, seq, seg) in batch.iter() {
            self.seq = seq;
            if ts > self.now {
                self.now = ts;
            }
            self.order = Order {
                at: seq,
                flow: 0,
                sub: 0,
            };
            let (flows, mut sink) = self.sink(out, false);
            flows.process(ts, &seg, &mut sink);
        }
        if batch.last_ts > self.now {
            self.now = batch.last_ts;
        }
        if self.now >= self.next_expire {
            let from = out.len();
            self.expire(batch.last_seq, out);
            // Flows time out in least-recently-used order; records leave in flow order.
            out[from..].sort_by_key(|r| r.order);
        }
    }

    fn expire(&mut self, at: u64, out: &mut Vec<TxRecord>) {
        let now = self.now;
        self.next_expire = now.plus_nanos(EXPIRE_EVERY_NS);
        self.decoder.expire(now);
        self.order = Order {
            at,
            flow: 0,
            sub: 0,
        };
        let (flows, mut sink) = self.sink(out, true);
        flows.expire(now, &mut sink);
    }

    /// Ends every flow (end of input or shutdown) and emits what they still held, in the
    /// order the flows began.
    pub fn finish(&mut self, out: &mut Vec<TxRecord>) {
        let now = self.now;
        self.order = Order {
            at: Order::END,
            flow: 0,
            sub: 0,
        };
        let (flows, mut sink) = self.sink(out, true);
        flows.flush_all(now, &mut sink);
    }

    /// Flow-table counters, without copying the rest (for live metrics).
    pub fn flow_stats(&self) -> &flow::FlowStats {
        self.flows.stats()
    }

    /// HTTP counters, without copying the rest (for live metrics).
    pub fn http_stats(&self) -> &HttpStats {
        &self.http_stats
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            decode: self.decoder.stats().clone(),
            flow: self.flows.stats().clone(),
            http: self.http_stats.clone(),
        }
    }

    /// Live flows in the table.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Packet time of the newest packet seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// New limits for flows and HTTP (config reload); flows in progress keep their state.
    pub fn reconfigure(&mut self, cfg: &EngineConfig) {
        self.flows.set_config(cfg.flow.clone());
        self.http_cfg = cfg.http.clone();
    }
}
