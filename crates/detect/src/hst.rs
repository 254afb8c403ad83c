//! Streaming Half-Space Trees: Tan, Ting and Liu, "Fast Anomaly Detection for Streaming
//! Data", IJCAI 2011.
//!
//! An ensemble of random trees of fixed depth, built before any data from random split
//! dimensions and random work ranges over the unit cube. Each node counts the instances that
//! reach it in the reference window (`r`) and in the latest window (`l`); when a window of `ψ`
//! instances ends, the latest counts become the reference (so the model follows drift) and the
//! latest restart from zero. The score of an instance is its mass: Σ over trees of `r · 2^depth`
//! at the deepest node it reaches with enough mass; low mass means anomalous. Constant time and
//! memory per instance (trees × depth). The caller decides what is learnt: alerted instances are
//! not, so an attack cannot teach the model that it is normal.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HstParams {
    pub trees: usize,
    pub depth: u32,
    /// Instances per window (ψ).
    pub window: u32,
    pub seed: u64,
}

impl Default for HstParams {
    fn default() -> Self {
        HstParams {
            trees: 20,
            depth: 8,
            window: 4096,
            seed: 0x6d69_7261_646f_7231,
        }
    }
}

/// Trees walked together, scoring and learning (the width of the scoring walk's bit mask).
const GROUP: usize = 64;

/// Reference mass below which a node's density is read rather than its children's.
const SIZE_LIMIT: u32 = 4;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Node {
    dim: u16,
    split: f32,
    r: u32,
    l: u32,
}

/// A deterministic small generator (SplitMix64) for building the trees.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HalfSpaceTrees {
    params: HstParams,
    dims: usize,
    /// Trees one after another, each a complete binary tree in heap order.
    nodes: Vec<Node>,
    seen_in_window: u32,
    /// Windows completed; the model scores once one has.
    windows: u64,
    /// What scoring reads of each node, in the nodes' order: the reference counts change only
    /// when a window ends, so where walks stop is worked out then (and after a restore), not
    /// per instance.
    #[serde(skip)]
    walk: Vec<WalkNode>,
}

/// A node as scoring sees it, compact so the trees stay in cache.
#[derive(Clone, Copy, Debug, PartialEq)]
struct WalkNode {
    /// The surprise of a walk that stops here, or [`WALK_ON`] where it goes deeper.
    stop: f64,
    split: f32,
    dim: u32,
}

/// In [`WalkNode::stop`]: the node has the mass to send the walk to a child.
const WALK_ON: f64 = -1.0;

impl HalfSpaceTrees {
    pub fn new(dims: usize, params: HstParams) -> Self {
        let per_tree = (1usize << (params.depth + 1)) - 1;
        let mut rng = SplitMix(params.seed);
        let mut nodes = Vec::with_capacity(per_tree * params.trees);
        for _ in 0..params.trees {
            // Work ranges: around a random point s, [s − 2·max(s, 1−s), s + 2·max(s, 1−s)].
            let mut lo = vec![0.0f64; dims];
            let mut hi = vec![0.0f64; dims];
            for d in 0..dims {
                let s = rng.unit();
                let w = 2.0 * s.max(1.0 - s);
                lo[d] = s - w;
                hi[d] = s + w;
            }
            let start = nodes.len();
            nodes.resize(
                start + per_tree,
                Node {
                    dim: 0,
                    split: 0.0,
                    r: 0,
                    l: 0,
                },
            );
            build(&mut nodes[start..], 0, &mut lo, &mut hi, &mut rng, dims);
        }
        HalfSpaceTrees {
            params,
            dims,
            nodes,
            seen_in_window: 0,
            windows: 0,
            walk: Vec::new(),
        }
    }

    /// Works out where walks stop and what they score there, from the reference counts.
    /// Called when a window ends; a restored model calls it once.
    pub fn refresh(&mut self) {
        let per_tree = self.per_tree();
        let log2_window = f64::from(self.params.window).log2();
        let depth = self.params.depth;
        self.walk.clear();
        self.walk.reserve(self.nodes.len());
        for (n, node) in self.nodes.iter().enumerate() {
            // Heap order: the node at index i of its tree is at depth ⌊log₂(i + 1)⌋.
            let k = usize::BITS - 1 - (n % per_tree + 1).leading_zeros();
            let stop = if k == depth || node.r < SIZE_LIMIT {
                // Density relative to uniform at depth k: r · 2^k / ψ (≈ 1 when uniform).
                // −log₂((r + ½)·2^k/ψ) = log₂ψ − k − log₂(r + ½).
                let s = log2_window - f64::from(k) - log2_half_plus(node.r);
                s.clamp(0.0, f64::from(depth))
            } else {
                WALK_ON
            };
            self.walk.push(WalkNode {
                stop,
                split: node.split,
                dim: u32::from(node.dim),
            });
        }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// A reference window exists: scores mean something.
    pub fn ready(&self) -> bool {
        self.windows > 0
    }

    fn per_tree(&self) -> usize {
        (1usize << (self.params.depth + 1)) - 1
    }

    /// Anomaly in [0, 1]: 0 for the densest regions, 1 where the reference window had nothing.
    /// In each tree, the first node on the path with fewer than [`SIZE_LIMIT`] reference
    /// instances (or the leaf) gives the mass, turned into −log₂ of its density relative to
    /// uniform.
    pub fn score(&self, x: &[f64]) -> f64 {
        if !self.ready() {
            return 0.0;
        }
        if self.walk.len() != self.nodes.len() {
            return self.score_walking(x);
        }
        let per_tree = self.per_tree();
        let depth = self.params.depth;
        let mut total = 0.0;
        // The trees are walked a level at a time, a group at a time: one walk is a chain of
        // dependent loads, and interleaving independent walks lets their cache misses
        // overlap. Sums stay in tree order.
        for group in self.walk.chunks(per_tree * GROUP) {
            let trees = group.len() / per_tree;
            let mut at = [0usize; GROUP];
            let mut surprise = [0.0f64; GROUP];
            let mut walking = u64::MAX >> (GROUP - trees);
            while walking != 0 {
                let mut left = walking;
                while left != 0 {
                    let t = left.trailing_zeros() as usize;
                    left &= left - 1;
                    let node = group[t * per_tree + at[t]];
                    if node.stop != WALK_ON {
                        surprise[t] = node.stop;
                        walking &= !(1u64 << t);
                    } else {
                        let right = x.get(node.dim as usize).copied().unwrap_or(0.0)
                            >= f64::from(node.split);
                        at[t] = 2 * at[t] + 1 + usize::from(right);
                    }
                }
            }
            for s in &surprise[..trees] {
                total += s;
            }
        }
        (total / self.params.trees as f64 / f64::from(depth)).clamp(0.0, 1.0)
    }

    /// [`score`](Self::score) without the stop table (a model restored but not refreshed).
    fn score_walking(&self, x: &[f64]) -> f64 {
        let per_tree = self.per_tree();
        let log2_window = f64::from(self.params.window).log2();
        let depth = self.params.depth;
        let mut total = 0.0;
        for tree in self.nodes.chunks(per_tree) {
            let (mut i, mut k) = (0usize, 0u32);
            loop {
                let node = &tree[i];
                if k == depth || node.r < SIZE_LIMIT {
                    let s = log2_window - f64::from(k) - log2_half_plus(node.r);
                    total += s.clamp(0.0, f64::from(depth));
                    break;
                }
                i = 2 * i + 1 + usize::from(value(x, node.dim) >= f64::from(node.split));
                k += 1;
            }
        }
        (total / self.params.trees as f64 / f64::from(depth)).clamp(0.0, 1.0)
    }

    /// Learns one instance; ends the window after ψ of them.
    pub fn learn(&mut self, x: &[f64]) {
        let per_tree = self.per_tree();
        // Level by level over a group of trees, as in `score`.
        for group in self.nodes.chunks_mut(per_tree * GROUP) {
            let trees = group.len() / per_tree;
            let mut at = [0usize; GROUP];
            while at[0] < per_tree {
                for (t, i) in at.iter_mut().enumerate().take(trees) {
                    let node = &mut group[t * per_tree + *i];
                    node.l += 1;
                    *i = 2 * *i + 1 + usize::from(value(x, node.dim) >= f64::from(node.split));
                }
            }
        }
        self.seen_in_window += 1;
        if self.seen_in_window >= self.params.window {
            for n in &mut self.nodes {
                n.r = n.l;
                n.l = 0;
            }
            self.seen_in_window = 0;
            self.windows += 1;
            self.refresh();
        }
    }

    /// The dimensions that made `x` stand out in the trees, as shares summing to 1: where a
    /// tree stopped, the split dimensions on the path weigh in by how rare each step made it.
    pub fn attribution(&self, x: &[f64]) -> Vec<f64> {
        let mut share = vec![0.0; self.dims];
        if !self.ready() {
            return share;
        }
        let per_tree = self.per_tree();
        for tree in self.nodes.chunks(per_tree) {
            let mut i = 0usize;
            while 2 * i + 2 < tree.len() {
                let node = &tree[i];
                let child = 2 * i + 1 + usize::from(value(x, node.dim) >= f64::from(node.split));
                let sibling = if child % 2 == 1 { child + 1 } else { child - 1 };
                let (went, other) = (f64::from(tree[child].r), f64::from(tree[sibling].r));
                // A step into the emptier half is evidence against x in that dimension.
                if went < other {
                    share[usize::from(node.dim)] += (other + 1.0).log2() - (went + 1.0).log2();
                }
                if tree[child].r < SIZE_LIMIT {
                    break;
                }
                i = child;
            }
        }
        let sum: f64 = share.iter().sum();
        if sum > 0.0 {
            for s in &mut share {
                *s /= sum;
            }
        }
        share
    }
}

/// log₂(r + ½), from a table for the counts most paths stop at (built once, from the same
/// `log2` the fallback uses, so results do not depend on which path computed them).
fn log2_half_plus(r: u32) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..4096u32).map(|r| (f64::from(r) + 0.5).log2()).collect());
    match table.get(r as usize) {
        Some(v) => *v,
        None => (f64::from(r) + 0.5).log2(),
    }
}

fn value(x: &[f64], dim: u16) -> f64 {
    x.get(usize::from(dim)).copied().unwrap_or(0.0)
}

fn build(
    tree: &mut [Node],
    i: usize,
    lo: &mut [f64],
    hi: &mut [f64],
    rng: &mut SplitMix,
    dims: usize,
) {
    if i >= tree.len() || dims == 0 {
        return;
    }
    let dim = (rng.next() % dims as u64) as usize;
    let split = (lo[dim] + hi[dim]) / 2.0;
    tree[i].dim = dim as u16;
    tree[i].split = split as f32;
    let saved = hi[dim];
    hi[dim] = split;
    build(tree, 2 * i + 1, lo, hi, rng, dims);
    hi[dim] = saved;
    let saved = lo[dim];
    lo[dim] = split;
    build(tree, 2 * i + 2, lo, hi, rng, dims);
    lo[dim] = saved;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(rng: &mut SplitMix, centre: f64) -> Vec<f64> {
        (0..4).map(|_| centre + 0.05 * (rng.unit() - 0.5)).collect()
    }

    #[test]
    fn an_outlier_scores_above_the_cluster_it_learnt() {
        let params = HstParams {
            window: 256,
            ..Default::default()
        };
        let mut h = HalfSpaceTrees::new(4, params);
        let mut rng = SplitMix(7);
        assert_eq!(h.score(&point(&mut rng, 0.3)), 0.0, "not ready yet");
        for _ in 0..600 {
            let p = point(&mut rng, 0.3);
            h.learn(&p);
        }
        assert!(h.ready());
        let inside = h.score(&point(&mut rng, 0.3));
        let outside = h.score(&[0.9, 0.9, 0.1, 0.9]);
        assert!(outside > inside + 0.3, "{outside} vs {inside}");
        let share = h.attribution(&[0.3, 0.3, 0.3, 0.95]);
        let top = share
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        assert_eq!(top, Some(3), "{share:?}");
    }

    #[test]
    fn the_model_follows_drift() {
        let params = HstParams {
            window: 256,
            ..Default::default()
        };
        let mut h = HalfSpaceTrees::new(4, params);
        let mut rng = SplitMix(9);
        for _ in 0..600 {
            let p = point(&mut rng, 0.2);
            h.learn(&p);
        }
        let before = h.score(&point(&mut rng, 0.8));
        for _ in 0..600 {
            let p = point(&mut rng, 0.8);
            h.learn(&p);
        }
        let after = h.score(&point(&mut rng, 0.8));
        assert!(after < before, "{after} vs {before}");
    }

    #[test]
    fn the_stop_table_scores_as_walking_does() {
        for trees in [1, 20, 64, 70] {
            let params = HstParams {
                window: 128,
                trees,
                ..Default::default()
            };
            let mut h = HalfSpaceTrees::new(3, params);
            let mut rng = SplitMix(11);
            for _ in 0..300 {
                let p = point(&mut rng, 0.4);
                h.learn(&p[..3]);
            }
            let masses: u64 = h.nodes.iter().map(|n| u64::from(n.l)).sum();
            // 300 − 256 learnt into the current window, one count per level per tree.
            assert_eq!(masses, 44 * trees as u64 * u64::from(h.params.depth + 1));
            for _ in 0..50 {
                let x = [rng.unit(), rng.unit(), rng.unit()];
                assert_eq!(h.score(&x), h.score_walking(&x), "{trees} trees");
            }
            // A restored model has no table until refreshed, and scores the same either way.
            let mut restored: HalfSpaceTrees =
                serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
            let x = [0.41, 0.39, 0.4];
            assert_eq!(restored.score(&x), h.score(&x));
            restored.refresh();
            assert_eq!(restored.walk, h.walk);
        }
    }

    #[test]
    fn same_seed_same_trees() {
        let a = HalfSpaceTrees::new(5, HstParams::default());
        let b = HalfSpaceTrees::new(5, HstParams::default());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }
}
