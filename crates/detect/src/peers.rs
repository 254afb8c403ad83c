//! Peer groups of client behaviour, fitted with linfa's k-means off the per-transaction path.
//!
//! A bounded, deterministic sample of client behaviour vectors (log-scaled rates, error ratio,
//! distinct endpoints and objects, bytes out, auth failures) is kept; once an hour of packet
//! time it is clustered (k-means, `linfa-clustering`, a fixed seed) into a few peer groups —
//! browsers, apps, integrations, batch jobs — and each group's typical spread is measured. A
//! client's *rarity* is its distance to the nearest group over that group's spread: a client
//! that behaves like no group is unusual even when no single feature is. The fit costs a few
//! milliseconds an hour; scoring a vector costs k distances.

use features::entity::{EntityFeature, EntityFeatures};
use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// The behaviour features, each log1p-scaled.
pub const FEATURES: [EntityFeature; 7] = [
    EntityFeature::Rate1m,
    EntityFeature::Rate1h,
    EntityFeature::ErrorRatio1h,
    EntityFeature::DistinctEndpoints1h,
    EntityFeature::DistinctObjects1h,
    EntityFeature::BytesOut1m,
    EntityFeature::AuthFailures1m,
];
const D: usize = FEATURES.len();
/// Behaviour vectors kept for the next fit.
const SAMPLE: usize = 2048;
/// Fewer samples than this and there is nothing to cluster yet.
const MIN_FIT: usize = 64;
const NS: u64 = 1_000_000_000;

pub fn vector(f: &EntityFeatures) -> [f64; D] {
    let mut v = [0.0; D];
    for (x, feature) in v.iter_mut().zip(FEATURES) {
        // Bytes are large: scale them to kilobytes first so each dimension spans a few units.
        let raw = if feature == EntityFeature::BytesOut1m {
            f[feature] / 1000.0
        } else {
            f[feature]
        };
        *x = raw.max(0.0).ln_1p();
    }
    v
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerGroups {
    sample: Vec<[f64; D]>,
    /// Observations offered to the sample (for reservoir replacement).
    offered: u64,
    centroids: Vec<[f64; D]>,
    /// Mean distance of a group's members to its centroid.
    spread: Vec<f64>,
    /// Members of each group at the last fit.
    members: Vec<u64>,
    next_fit_ns: u64,
    pub fits: u64,
    refit_ns: u64,
}

impl PeerGroups {
    pub fn new(refit_secs: u64) -> Self {
        PeerGroups {
            sample: Vec::new(),
            offered: 0,
            centroids: Vec::new(),
            spread: Vec::new(),
            members: Vec::new(),
            next_fit_ns: 0,
            fits: 0,
            refit_ns: refit_secs.max(60) * NS,
        }
    }

    pub fn groups(&self) -> usize {
        self.centroids.len()
    }

    /// Offers one client's behaviour to the sample (`mix` is a hash of the client and time, so
    /// replacement is deterministic), and refits when an hour of packet time has passed.
    pub fn observe(&mut self, v: [f64; D], mix: u64, now_ns: u64) {
        self.offered += 1;
        if self.sample.len() < SAMPLE {
            self.sample.push(v);
        } else {
            // Reservoir sampling, with the hash in place of a random draw.
            let slot = mix % self.offered;
            if (slot as usize) < SAMPLE {
                self.sample[slot as usize] = v;
            }
        }
        if self.next_fit_ns == 0 {
            self.next_fit_ns = now_ns + self.refit_ns;
        } else if now_ns >= self.next_fit_ns {
            self.next_fit_ns = now_ns + self.refit_ns;
            self.fit();
        }
    }

    /// Clusters the sample with k-means (k grows with the sample, at most 6).
    pub fn fit(&mut self) {
        let n = self.sample.len();
        if n < MIN_FIT {
            return;
        }
        let k = (n / 64).clamp(2, 6);
        let data = Array2::from_shape_fn((n, D), |(i, j)| self.sample[i][j]);
        let dataset = DatasetBase::from(data);
        let Ok(model) = KMeans::params(k)
            .n_runs(2)
            .max_n_iterations(50)
            .tolerance(1e-4)
            .fit(&dataset)
        else {
            return;
        };
        let c = model.centroids();
        self.centroids = (0..c.nrows())
            .map(|i| {
                let mut row = [0.0; D];
                for (j, x) in row.iter_mut().enumerate() {
                    *x = c[[i, j]];
                }
                row
            })
            .collect();
        let mut sum = vec![0.0; self.centroids.len()];
        let mut count = vec![0u64; self.centroids.len()];
        for v in &self.sample {
            let (g, d) = self.nearest(v);
            sum[g] += d;
            count[g] += 1;
        }
        self.spread = sum
            .iter()
            .zip(&count)
            .map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
            .collect();
        self.members = count;
        self.fits += 1;
    }

    fn nearest(&self, v: &[f64; D]) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for (i, c) in self.centroids.iter().enumerate() {
            let d = v
                .iter()
                .zip(c)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            if d < best.1 {
                best = (i, d);
            }
        }
        best
    }

    /// How unlike every peer group the behaviour is: the distance to the nearest group in
    /// units of its spread, 0 while nothing is fitted. Groups of a handful of clients do not
    /// count as peers.
    pub fn rarity(&self, v: &[f64; D]) -> f64 {
        if self.centroids.is_empty() {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        for (i, c) in self.centroids.iter().enumerate() {
            if self.members.get(i).copied().unwrap_or(0) < 8 {
                continue;
            }
            let d = v
                .iter()
                .zip(c)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            let spread = self.spread.get(i).copied().unwrap_or(0.0).max(0.05);
            best = best.min(d / spread);
        }
        if best.is_finite() {
            best
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour(rate: f64, endpoints: f64, errors: f64) -> [f64; D] {
        let mut f = EntityFeatures([0.0; EntityFeature::COUNT]);
        f[EntityFeature::Rate1m] = rate;
        f[EntityFeature::Rate1h] = rate;
        f[EntityFeature::DistinctEndpoints1h] = endpoints;
        f[EntityFeature::ErrorRatio1h] = errors;
        vector(&f)
    }

    #[test]
    fn a_client_unlike_every_group_is_rare_and_a_member_is_not() {
        let mut p = PeerGroups::new(3600);
        for i in 0..600u64 {
            let jitter = (i % 7) as f64 * 0.01;
            // Browsers: slow, many endpoints; integrations: fast, one endpoint.
            let v = if i % 2 == 0 {
                behaviour(0.05 + jitter, 8.0, 0.01)
            } else {
                behaviour(2.0 + jitter, 1.0, 0.0)
            };
            p.observe(v, i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i * NS);
        }
        p.fit();
        assert!(p.groups() >= 2);
        let member = p.rarity(&behaviour(0.06, 8.0, 0.01));
        let stranger = p.rarity(&behaviour(50.0, 40.0, 0.9));
        assert!(stranger > 5.0 * member.max(0.5), "{stranger} vs {member}");
    }

    #[test]
    fn fitting_is_deterministic_and_waits_for_an_hour() {
        let run = || {
            let mut p = PeerGroups::new(3600);
            for i in 0..400u64 {
                let v = behaviour((i % 13) as f64 * 0.3, (i % 5) as f64, 0.0);
                p.observe(v, i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i * NS);
            }
            assert_eq!(p.fits, 0, "no hour has passed");
            p.observe(behaviour(1.0, 1.0, 0.0), 1, 3601 * NS);
            assert_eq!(p.fits, 1, "an hour after the first observation");
            p.observe(behaviour(1.0, 1.0, 0.0), 2, 3700 * NS);
            assert_eq!(p.fits, 1, "not again within the hour");
            serde_json::to_string(&p).expect("serializes")
        };
        assert_eq!(run(), run());
    }
}
