//! The analysis core of one worker: frames in, HTTP transactions out.
//!
//! Decodes each frame, feeds its TCP segment to the flow table, and lets the HTTP parser of
//! each flow turn the reassembled streams into transactions tagged with their flow's
//! identity. Deterministic: packet time only, no I/O, no wall clock; the same frames give the
//! same transactions in the same order.

mod ids;

use std::net::SocketAddr;
use std::sync::Arc;

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
    scratch: &'a mut Vec<Transaction>,
}

impl HttpSink<'_> {
    fn drain(&mut self, st: &mut FlowState, meta: &FlowMeta) {
        if self.scratch.is_empty() {
            return;
        }
        let client_is_orig = self.scratch[0].client_is_orig;
        let ids = st
            .ids
            .get_or_insert_with(|| {
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
            })
            .clone();
        for tx in self.scratch.drain(..) {
            self.out.push(TxRecord {
                flow: ids.clone(),
                tx,
            });
        }
    }
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
        st.conn
            .data(self.cfg, dir, ts, data, self.stats, self.scratch);
        self.drain(st, meta);
    }

    fn gap(
        &mut self,
        st: &mut FlowState,
        meta: &FlowMeta,
        dir: Direction,
        _ts: Timestamp,
        len: u64,
    ) {
        st.conn.gap(self.cfg, dir, len, self.stats, self.scratch);
        self.drain(st, meta);
    }

    fn fin(&mut self, st: &mut FlowState, meta: &FlowMeta, dir: Direction, ts: Timestamp) {
        st.conn.fin(self.cfg, dir, ts, self.stats, self.scratch);
        self.drain(st, meta);
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
        st.conn.close(self.cfg, ts, self.stats, self.scratch);
        self.drain(&mut st, meta);
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
    scratch: Vec<Transaction>,
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
            scratch: Vec::new(),
            now: Timestamp::ZERO,
            next_expire: Timestamp::ZERO,
        }
    }

    /// Processes one captured frame; finished transactions are appended to `out`.
    pub fn packet(&mut self, link: LinkType, ts: Timestamp, frame: &[u8], out: &mut Vec<TxRecord>) {
        if ts > self.now {
            self.now = ts;
        }
        if self.now >= self.next_expire {
            self.expire(out);
        }
        let decoded = self.decoder.decode(link, ts, frame);
        if let Decoded::Tcp(seg) = decoded {
            let mut sink = HttpSink {
                cfg: &self.http_cfg,
                stats: &mut self.http_stats,
                out,
                scratch: &mut self.scratch,
            };
            self.flows.process(ts, &seg, &mut sink);
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
            scratch: &mut self.scratch,
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
            scratch: &mut self.scratch,
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
