//! The streaming anomaly model: a score on every transaction, from
//!
//! - the per-endpoint, per-parameter value models of [`crate::params`] (Kruegel and Vigna),
//! - Half-Space Trees ([`crate::hst`], Tan, Ting and Liu) over the transaction's numeric
//!   features and its client's behaviour,
//! - the injection scanners and the parser's evasion anomalies, as hard evidence,
//!
//! summed into one score (≈ −ln of how likely normal traffic is to look like this), with the
//! share of each part kept for the explanation. The alarm threshold comes from
//! [`crate::threshold`]. Learning is the caller's decision per transaction.

use features::entity::{EntityFeature, EntityFeatures};
use features::tx::{TxFeature, TxFeatures};
use serde::{Deserialize, Serialize};

use crate::hst::{HalfSpaceTrees, HstParams};
use crate::params::{ParamLimits, ParamModels, RequestScore};
use crate::request::Param;
use crate::threshold::AdaptiveThreshold;

/// One dimension of the trees' input: a feature and the scale `k` of its squashing
/// `x / (x + k)` into [0, 1).
#[derive(Clone, Copy, Debug)]
pub enum Dim {
    Tx(TxFeature, f64),
    Client(EntityFeature, f64),
}

impl Dim {
    pub fn name(self) -> String {
        match self {
            Dim::Tx(f, _) => f.name().to_string(),
            Dim::Client(f, _) => format!("client.{}", f.name()),
        }
    }
}

/// The trees' input, with scales of typical API traffic (a value equal to its scale maps to ½).
pub const DIMS: [Dim; 20] = [
    Dim::Tx(TxFeature::PathLen, 40.0),
    Dim::Tx(TxFeature::QueryLen, 60.0),
    Dim::Tx(TxFeature::QueryParams, 3.0),
    Dim::Tx(TxFeature::RequestHeaders, 10.0),
    Dim::Tx(TxFeature::RequestHeadBytes, 400.0),
    Dim::Tx(TxFeature::RequestBodyLen, 200.0),
    Dim::Tx(TxFeature::ResponseBodyLen, 2000.0),
    Dim::Tx(TxFeature::Special, 0.05),
    Dim::Tx(TxFeature::NonAscii, 0.05),
    Dim::Tx(TxFeature::Digits, 0.2),
    Dim::Tx(TxFeature::Entropy, 4.0),
    Dim::Tx(TxFeature::PercentEncoded, 0.1),
    Dim::Tx(TxFeature::StatusClass, 3.0),
    Dim::Tx(TxFeature::LatencyMs, 50.0),
    Dim::Tx(TxFeature::UnseenParams, 1.0),
    Dim::Client(EntityFeature::Rate1m, 1.0),
    Dim::Client(EntityFeature::ErrorRatio1m, 0.2),
    Dim::Client(EntityFeature::DistinctEndpoints1m, 5.0),
    Dim::Client(EntityFeature::DistinctObjects1m, 20.0),
    Dim::Client(EntityFeature::RateRatio, 2.0),
];

/// The raw values of [`DIMS`] for one transaction.
pub fn raw_vector(tx: &TxFeatures, client: Option<&EntityFeatures>) -> [f64; DIMS.len()] {
    let mut out = [0.0; DIMS.len()];
    for (o, d) in out.iter_mut().zip(DIMS) {
        *o = match d {
            Dim::Tx(f, _) => tx[f],
            Dim::Client(f, _) => client.map_or(0.0, |c| c[f]),
        };
    }
    out
}

/// [`raw_vector`] squashed into the unit cube.
pub fn squash(raw: &[f64; DIMS.len()]) -> [f64; DIMS.len()] {
    let mut out = [0.0; DIMS.len()];
    for ((o, x), d) in out.iter_mut().zip(raw).zip(DIMS) {
        let k = match d {
            Dim::Tx(_, k) | Dim::Client(_, k) => k,
        };
        let x = x.max(0.0);
        *o = x / (x + k);
    }
    out
}

/// Weight of the trees' [0, 1] anomaly in the score.
const HST_WEIGHT: f64 = 8.0;
/// Score of each injection class found.
const INJECTION: f64 = 12.0;
/// Score of a request-smuggling or desync anomaly.
const EVASION: f64 = 8.0;

/// What the model makes of one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelScore {
    pub request: RequestScore,
    /// The trees' anomaly in [0, 1], and its attribution over [`DIMS`].
    pub hst: f64,
    pub injection: f64,
    pub evasion: f64,
    /// Points for a client behaving like none of the peer groups ([`peer_points`]).
    pub peer: f64,
}

/// Points for a peer-group rarity: nothing within three spreads of a group, then up to 3.
pub fn peer_points(rarity: f64) -> f64 {
    ((rarity - 3.0) / 2.0).clamp(0.0, 3.0)
}

impl ModelScore {
    pub fn total(&self) -> f64 {
        self.request.total() + HST_WEIGHT * self.hst + self.injection + self.evasion + self.peer
    }

    /// The parts of the score as (name, points), largest first, for the explanation.
    pub fn parts(&self, attribution: &[f64]) -> Vec<(String, f64)> {
        let mut parts = Vec::new();
        if self.request.novel_endpoint > 0.0 {
            parts.push(("endpoint.novelty".to_string(), self.request.novel_endpoint));
        }
        for p in &self.request.params {
            let s = &p.score;
            if p.unseen {
                parts.push((
                    format!("param.{}.unseen", p.name),
                    crate::params::UNSEEN_PARAM,
                ));
            }
            for (what, v) in [
                ("length", s.length),
                ("characters", s.characters),
                ("alphabet", s.alphabet),
                ("enumeration", s.enumeration),
            ] {
                if v > 0.0 {
                    parts.push((format!("param.{}.{what}", p.name), v));
                }
            }
        }
        let hst = HST_WEIGHT * self.hst;
        for (d, share) in DIMS.iter().zip(attribution) {
            if *share > 0.0 {
                parts.push((d.name(), hst * share));
            }
        }
        if self.injection > 0.0 {
            parts.push(("injection".to_string(), self.injection));
        }
        if self.evasion > 0.0 {
            parts.push(("evasion".to_string(), self.evasion));
        }
        if self.peer > 0.0 {
            parts.push(("client.peer_group_rarity".to_string(), self.peer));
        }
        parts.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        parts
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelConfig {
    pub hst: HstParams,
    pub params: ParamLimitsSer,
    /// Target false-alarm rate of the threshold.
    pub false_alarm_rate: f64,
    pub score_floor: f64,
    /// Transactions learnt before the model scores against a threshold.
    pub learning_transactions: u64,
}

/// [`ParamLimits`] as stored in a snapshot.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ParamLimitsSer {
    pub max_endpoints: usize,
    pub max_params: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let p = ParamLimits::default();
        ModelConfig {
            hst: HstParams::default(),
            params: ParamLimitsSer {
                max_endpoints: p.max_endpoints,
                max_params: p.max_params,
            },
            false_alarm_rate: 0.005,
            score_floor: 6.0,
            learning_transactions: 2000,
        }
    }
}

/// Everything the model has learnt; what a snapshot saves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    pub params: ParamModels,
    pub hst: HalfSpaceTrees,
    pub threshold: AdaptiveThreshold,
    /// Exponentially weighted mean of each raw dimension: the "expected" of an explanation.
    pub means: Vec<f64>,
    /// Peer groups of client behaviour (k-means, refitted hourly).
    pub peers: crate::peers::PeerGroups,
    pub learnt: u64,
    pub learning_transactions: u64,
}

impl Model {
    pub fn new(cfg: &ModelConfig) -> Self {
        Model {
            params: ParamModels::new(ParamLimits {
                max_endpoints: cfg.params.max_endpoints,
                max_params: cfg.params.max_params,
            }),
            hst: HalfSpaceTrees::new(DIMS.len(), cfg.hst),
            threshold: AdaptiveThreshold::new(cfg.false_alarm_rate, cfg.score_floor),
            means: vec![0.0; DIMS.len()],
            peers: crate::peers::PeerGroups::new(3600),
            learnt: 0,
            learning_transactions: cfg.learning_transactions,
        }
    }

    /// Past the learning period: scores are compared with the threshold.
    pub fn ready(&self) -> bool {
        self.learnt >= self.learning_transactions
            && self.hst.ready()
            && self.threshold.value().is_finite()
    }

    pub fn score(
        &self,
        endpoint: u64,
        params: &[Param],
        unit: &[f64],
        injections: usize,
        evasion: bool,
    ) -> ModelScore {
        let pairs = params
            .iter()
            .map(|p| (p.name.as_str(), p.decoded.as_slice(), Some(&p.icd)));
        ModelScore {
            request: self.params.score_iter(endpoint, pairs),
            hst: self.hst.score(unit),
            injection: INJECTION * injections.min(2) as f64,
            evasion: if evasion { EVASION } else { 0.0 },
            peer: 0.0,
        }
    }

    /// Learns one transaction taken as normal, with its score for the threshold.
    pub fn learn(
        &mut self,
        endpoint: u64,
        params: &[Param],
        raw: &[f64],
        unit: &[f64],
        score: f64,
    ) {
        let pairs = params
            .iter()
            .map(|p| (p.name.as_str(), p.decoded.as_slice(), Some(&p.icd)));
        self.params.learn_iter(endpoint, pairs);
        self.hst.learn(unit);
        let w = 1.0 / (self.learnt as f64 + 1.0).min(10_000.0);
        for (m, x) in self.means.iter_mut().zip(raw) {
            *m += w * (x - *m);
        }
        self.learnt += 1;
        if self.learnt > self.learning_transactions {
            self.threshold.observe(score);
        }
    }
}
