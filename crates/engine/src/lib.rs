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
}

struct HttpSink<'a> {
    cfg: &'a HttpConfig,
    stats: &'a mut HttpStats,
    out: &'a mut Vec<TxRecord>,
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
    f: impl FnOnce(&mut Connection, &mut dyn http::Emit) -> R,
) -> R {
    let ids = &mut st.ids;
    let mut emit = |tx: Transaction| {
        let flow = ids
            .get_or_insert_with(|| flow_ids(meta, tx.client_is_orig))
            .clone();
        out.push(TxRecord { flow, tx });
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
        FlowState { conn, ids: None }
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
        with_emit(st, meta, self.out, |c, e| {
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
        with_emit(st, meta, self.out, |c, e| c.gap(cfg, dir, len, stats, e));
    }

    fn fin(&mut self, st: &mut FlowState, meta: &FlowMeta, dir: Direction, ts: Timestamp) {
        let (cfg, stats) = (self.cfg, &mut *self.stats);
        with_emit(st, meta, self.out, |c, e| c.fin(cfg, dir, ts, stats, e));
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
        with_emit(&mut st, meta, self.out, |c, e| c.close(cfg, ts, stats, e));
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
        }
    }

    /// Processes one captured frame (decode, then [`Engine::segment`]); finished
    /// transactions are appended to `out`.
    pub fn packet(&mut self, link: LinkType, ts: Timestamp, frame: &[u8], out: &mut Vec<TxRecord>) {
        self.advance(ts, out);
        let decoded = self.decoder.decode(link, ts, frame);
        if let Decoded::Tcp(seg) = decoded {
            let mut sink = HttpSink {
                cfg: &self.http_cfg,
                stats: &mut self.http_stats,
                out,
            };
            self.flows.process(ts, &seg, &mut sink);
        }
    }

    /// Processes one TCP segment decoded elsewhere (a capture thread).
    pub fn segment(&mut self, ts: Timestamp, seg: &wire::TcpSegment<'_>, out: &mut Vec<TxRecord>) {
        self.advance(ts, out);
        let mut sink = HttpSink {
            cfg: &self.http_cfg,
            stats: &mut self.http_stats,
            out,
        };
        self.flows.process(ts, seg, &mut sink);
    }

    /// Every segment of a batch, then the batch's time (which may be newer: non-TCP packets).
    pub fn batch(&mut self, batch: &SegmentBatch, out: &mut Vec<TxRecord>) {
        for (ts, seg) in batch.iter() {
            self.segment(ts, &seg, out);
        }
        self.advance(batch.last_ts, out);
    }

    /// Moves packet time forward (never back) and runs the timeouts that are due.
    pub fn advance(&mut self, ts: Timestamp, out: &mut Vec<TxRecord>) {
        if ts > self.now {
            self.now = ts;
        }
        if self.now >= self.next_expire {
            self.expire(out);
        }
    }

    fn expire(&mut self, out: &mut Vec<TxRecord>) {
        let now = self.now;
        self.next_expire = now.plus_nanos(EXPIRE_EVERY_NS);
        self.decoder.expire(now);
        let mut sink = HttpSink {
            cfg: &self.http_cfg,
            stats: &mut self.http_stats,
            out,
        };
        self.flows.expire(now, &mut sink);
    }

    /// Ends every flow (end of input or shutdown) and emits what they still held.
    pub fn finish(&mut self, out: &mut Vec<TxRecord>) {
        let now = self.now;
        let mut sink = HttpSink {
            cfg: &self.http_cfg,
            stats: &mut self.http_stats,
            out,
        };
        self.flows.flush_all(now, &mut sink);
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            decode: self.decoder.stats().clone(),
            flow: self.flows.stats().clone(),
            http: self.http_stats.clone(),
        }
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Packet time of the newest packet seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}
