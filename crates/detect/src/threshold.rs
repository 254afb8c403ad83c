//! Thresholds from a target false-alarm rate, and persistence.
//!
//! [`AdaptiveThreshold`] keeps a decayed histogram of the scores of traffic taken as normal and
//! sets the alarm threshold at the score that normal traffic exceeds with probability `α`
//! (the target false-alarm rate). Where the tail is too thin for an empirical quantile, it fits a
//! generalised Pareto distribution to the excesses over a high initial quantile — peaks over
//! threshold, as in Siffer et al., "Anomaly Detection in Streams with Extreme Value Theory"
//! (KDD 2017, SPOT) — with the method of moments. [`Persistence`] is k-of-n: an entity alerts
//! when k of its last n scores crossed the threshold.

use serde::{Deserialize, Serialize};

/// Histogram buckets: scores are bucketed by 16·log2(1 + s), up to s ≈ 2^16.
const BUCKETS: usize = 256;
const PER_OCTAVE: f64 = 16.0;
/// Excesses kept for the tail fit.
const TAIL: usize = 512;

fn bucket(score: f64) -> usize {
    ((PER_OCTAVE * score.max(0.0).ln_1p() / std::f64::consts::LN_2) as usize).min(BUCKETS - 1)
}

fn bucket_floor(b: usize) -> f64 {
    (b as f64 / PER_OCTAVE).exp2() - 1.0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdaptiveThreshold {
    /// Target false-alarm rate among normal scores.
    pub alpha: f64,
    /// Never below this.
    pub floor: f64,
    counts: Vec<f64>,
    total: f64,
    /// Decay applied every `decay_every` samples, so old traffic fades.
    decay_every: u64,
    since_decay: u64,
    /// Excesses over the initial threshold, a ring.
    excesses: Vec<f64>,
    next_excess: usize,
    /// Count of samples above the initial threshold since start (decayed like `total`).
    above: f64,
    #[serde(with = "infinite_as_null")]
    initial: f64,
    #[serde(with = "infinite_as_null")]
    current: f64,
    samples: u64,
}

/// JSON has no infinity: an unset threshold is written as `null`.
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        v.is_finite().then_some(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

impl AdaptiveThreshold {
    pub fn new(alpha: f64, floor: f64) -> Self {
        AdaptiveThreshold {
            alpha: alpha.clamp(1e-6, 0.5),
            floor,
            counts: vec![0.0; BUCKETS],
            total: 0.0,
            decay_every: 50_000,
            since_decay: 0,
            excesses: Vec::new(),
            next_excess: 0,
            above: 0.0,
            initial: f64::INFINITY,
            current: f64::INFINITY,
            samples: 0,
        }
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The alarm threshold (infinite until enough samples).
    pub fn value(&self) -> f64 {
        self.current
    }

    /// Learns one normal score.
    pub fn observe(&mut self, score: f64) {
        if !score.is_finite() {
            return;
        }
        self.samples += 1;
        self.counts[bucket(score)] += 1.0;
        self.total += 1.0;
        if score > self.initial {
            self.above += 1.0;
            let excess = score - self.initial;
            if self.excesses.len() < TAIL {
                self.excesses.push(excess);
            } else {
                self.excesses[self.next_excess] = excess;
                self.next_excess = (self.next_excess + 1) % TAIL;
            }
        }
        self.since_decay += 1;
        if self.since_decay >= self.decay_every {
            self.since_decay = 0;
            for c in &mut self.counts {
                *c *= 0.5;
            }
            self.total *= 0.5;
            self.above *= 0.5;
        }
        // Refitting is O(buckets + tail): do it on a schedule, not per sample.
        if self.samples == 200 || self.samples % 1024 == 0 {
            self.refit();
        }
    }

    /// The score exceeded by a share `p` of the histogram (upper bucket bound).
    fn quantile_above(&self, p: f64) -> f64 {
        let mut above = 0.0;
        for b in (0..BUCKETS).rev() {
            above += self.counts[b];
            if above > p * self.total {
                return bucket_floor(b + 1);
            }
        }
        0.0
    }

    pub fn refit(&mut self) {
        if self.samples < 200 {
            return;
        }
        // The initial threshold t: the 98th percentile; excesses over it feed the tail fit.
        let t = self.quantile_above(0.02);
        if (t - self.initial).abs() > 1e-9 {
            if self.initial.is_finite() {
                // Excesses over the old t are still excesses over the new one, shifted.
                let shift = self.initial - t;
                self.excesses.retain_mut(|e| {
                    *e += shift;
                    *e > 0.0
                });
                self.next_excess = 0;
            }
            self.initial = t;
            self.above = self.total * 0.02;
        }
        let empirical = self.quantile_above(self.alpha);
        let n = self.excesses.len();
        let z = if n >= 30 && self.alpha < 0.02 {
            let mean = self.excesses.iter().sum::<f64>() / n as f64;
            let var = self
                .excesses
                .iter()
                .map(|e| (e - mean) * (e - mean))
                .sum::<f64>()
                / (n - 1) as f64;
            if var > 0.0 && mean > 0.0 {
                // Method of moments for the GPD: γ = ½(1 − m²/v), σ = ½·m·(1 + m²/v).
                let r = mean * mean / var;
                let gamma = 0.5 * (1.0 - r);
                let sigma = 0.5 * mean * (1.0 + r);
                let q = self.alpha * self.total / self.above.max(1.0);
                let tail = if gamma.abs() < 1e-6 {
                    -sigma * q.ln()
                } else {
                    sigma / gamma * (q.powf(-gamma) - 1.0)
                };
                self.initial + tail.max(0.0)
            } else {
                empirical
            }
        } else {
            empirical
        };
        self.current = z.max(self.floor);
    }
}

/// k-of-n persistence over one entity's recent scores: a bit per score.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Persistence {
    bits: u64,
}

impl Persistence {
    /// Adds whether the latest score crossed; true when at least `k` of the last `n` did.
    pub fn push(&mut self, crossed: bool, k: u32, n: u32) -> bool {
        let n = n.clamp(1, 64);
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        self.bits = ((self.bits << 1) | u64::from(crossed)) & mask;
        self.bits.count_ones() >= k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of normal scores: an exponential tail.
    fn scores(n: usize) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| {
            let u =
                ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
            -(1.0 - u).ln()
        })
    }

    #[test]
    fn the_threshold_meets_the_false_alarm_target() {
        for alpha in [0.01, 0.001] {
            let mut t = AdaptiveThreshold::new(alpha, 0.0);
            for s in scores(100_000) {
                t.observe(s);
            }
            t.refit();
            // For Exp(1), the (1 − α) quantile is −ln α.
            let want = -alpha.ln();
            let got = t.value();
            assert!(
                (got - want).abs() / want < 0.2,
                "α {alpha}: {got} vs {want}"
            );
            let over = scores(100_000).filter(|&s| s > got).count() as f64 / 100_000.0;
            assert!(over < alpha * 2.0, "α {alpha}: {over}");
        }
    }

    #[test]
    fn no_threshold_before_enough_samples_and_the_floor_holds() {
        let mut t = AdaptiveThreshold::new(0.01, 5.0);
        for s in scores(100) {
            t.observe(s);
        }
        assert!(t.value().is_infinite());
        for s in scores(5000) {
            t.observe(s * 0.01);
        }
        t.refit();
        assert_eq!(t.value(), 5.0);
    }

    #[test]
    fn k_of_n() {
        let mut p = Persistence::default();
        assert!(!p.push(true, 2, 4));
        assert!(!p.push(false, 2, 4));
        assert!(p.push(true, 2, 4));
        for _ in 0..4 {
            p.push(false, 2, 4);
        }
        assert!(!p.push(true, 2, 4));
    }
}
