//! Bounded quantile sketches of non-negative values (sizes in bytes, latencies in nanoseconds).
//!
//! A [`Sketch`] is a DDSketch: a value `v > 0` counts in bucket `⌈log_γ v⌉`, with
//! `γ = (1 + α) / (1 − α)`, so the bucket's representative value is within relative error `α`
//! of every value in it; zeros have their own count. Buckets are a dense run of at most
//! `max_buckets` indices. A value that would stretch the run further collapses the lowest
//! buckets into one, so high quantiles (the ones that matter for sizes and latencies) stay
//! accurate and only the lowest lose accuracy ([`Sketch::collapsed`]).
//!
//! [`Sketch::quantile`] estimates the value of 0-based rank `⌊q·(n − 1)⌋` in sorted order.

const DEFAULT_ALPHA: f64 = 0.01;
const DEFAULT_MAX_BUCKETS: usize = 512;
/// Below this, bucket indices of the largest doubles would overflow `i32`.
const MIN_ALPHA: f64 = 1e-6;
/// Above this, one bucket spans orders of magnitude and the estimate says little.
const MAX_ALPHA: f64 = 0.5;
/// Keeps index arithmetic far from overflow; 128 MiB of counts is more than anyone wants.
const MAX_MAX_BUCKETS: usize = 1 << 24;

/// Relative-error quantile sketch with bounded memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Sketch {
    alpha: f64,
    gamma: f64,
    ln_gamma: f64,
    /// 1 / log₂ γ: a bucket index is ⌈log₂ v · this⌉.
    per_log2_gamma: f64,
    max_buckets: usize,
    /// Bucket index of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
    zeros: u64,
    count: u64,
    rejected: u64,
    sum: f64,
    min: f64,
    max: f64,
    collapsed: bool,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new()
    }
}

impl Sketch {
    /// Relative accuracy 1 %, at most 512 buckets (4 KiB of counts).
    pub fn new() -> Self {
        Sketch::with_accuracy(DEFAULT_ALPHA, DEFAULT_MAX_BUCKETS)
    }

    /// `alpha` is clamped to [1e-6, 0.5] (NaN means the default 0.01), `max_buckets` to
    /// [1, 2^24].
    pub fn with_accuracy(alpha: f64, max_buckets: usize) -> Self {
        let alpha = if alpha.is_nan() {
            DEFAULT_ALPHA
        } else {
            alpha.clamp(MIN_ALPHA, MAX_ALPHA)
        };
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Sketch {
            alpha,
            gamma,
            ln_gamma: gamma.ln(),
            per_log2_gamma: 1.0 / gamma.log2(),
            max_buckets: max_buckets.clamp(1, MAX_MAX_BUCKETS),
            offset: 0,
            counts: Vec::new(),
            zeros: 0,
            count: 0,
            rejected: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            collapsed: false,
        }
    }

    /// Counts `v`; negative, NaN and infinite values are only counted in [`Sketch::rejected`].
    pub fn add(&mut self, v: f64) {
        if !(v >= 0.0 && v.is_finite()) {
            self.rejected = self.rejected.saturating_add(1);
            return;
        }
        self.count = self.count.saturating_add(1);
        self.sum += v;
        // v is neither NaN nor infinite: plain comparisons, not `f64::min`'s NaN handling.
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        if v == 0.0 {
            self.zeros = self.zeros.saturating_add(1);
            return;
        }
        let index = self.index(v);
        // Most values land inside the run of buckets already there.
        let slot = i64::from(index) - i64::from(self.offset);
        match usize::try_from(slot)
            .ok()
            .and_then(|s| self.counts.get_mut(s))
        {
            Some(c) => *c = c.saturating_add(1),
            None => self.add_at(i64::from(index), 1),
        }
    }

    /// Values counted (rejected ones excluded).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Values refused by [`Sketch::add`]: negative, NaN or infinite.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Whether low buckets were collapsed to keep the bound: quantiles that fall in the lowest
    /// bucket may then be off by more than alpha (never below the minimum).
    pub fn collapsed(&self) -> bool {
        self.collapsed
    }

    /// Relative accuracy in effect (after clamping).
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The value of rank `⌊q·(n − 1)⌋` within relative error alpha, clamped to [min, max]
    /// (exact for ranks 0 and n − 1). `None` when empty or when `q` is not in [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        // The extremes are known exactly, even when the lowest buckets were collapsed.
        if rank == 0 {
            return Some(self.min);
        }
        if rank >= self.count - 1 {
            return Some(self.max);
        }
        let clamp = |v: f64| v.max(self.min).min(self.max);
        if rank < self.zeros {
            return Some(clamp(0.0));
        }
        let mut below = self.zeros;
        for (i, &c) in self.counts.iter().enumerate() {
            below = below.saturating_add(c);
            if below > rank {
                return Some(clamp(self.value(i64::from(self.offset) + i as i64)));
            }
        }
        Some(self.max)
    }

    /// Adds `other`'s values, as if they had been added here. Sketches of another alpha are
    /// re-bucketed by their representative values (within both alphas).
    pub fn merge(&mut self, other: &Sketch) {
        self.count = self.count.saturating_add(other.count);
        self.rejected = self.rejected.saturating_add(other.rejected);
        self.zeros = self.zeros.saturating_add(other.zeros);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.collapsed |= other.collapsed;
        let same_buckets = self.ln_gamma == other.ln_gamma;
        for (i, &c) in other.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let index = i64::from(other.offset) + i as i64;
            let index = if same_buckets {
                index
            } else {
                i64::from(self.index(other.value(index)))
            };
            self.add_at(index, c);
        }
    }

    fn index(&self, v: f64) -> i32 {
        // ⌈x⌉ by truncation and one comparison: `f64::ceil` is a libm call on baseline x86-64.
        // |x| stays far inside i64 (log₂ of any f64 is within ±1075, and the alpha clamp bounds
        // 1/log₂ γ); the cast to i32 saturates, as before.
        let x = log2(v) * self.per_log2_gamma;
        let truncated = x as i64;
        (truncated + i64::from(x > truncated as f64))
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// The point of bucket `(γ^(i−1), γ^i]` with equal relative distance to both ends.
    fn value(&self, index: i64) -> f64 {
        2.0 * (index as f64 * self.ln_gamma).exp() / (self.gamma + 1.0)
    }

    fn add_at(&mut self, index: i64, n: u64) {
        let max = self.max_buckets as i64;
        if self.counts.is_empty() {
            self.offset = index as i32;
            self.counts.push(n);
            return;
        }
        let lo = i64::from(self.offset);
        let hi = lo + self.counts.len() as i64 - 1;
        let slot = if index < lo {
            let new_lo = index.max(hi - max + 1);
            if new_lo < lo {
                let grow = (lo - new_lo) as usize;
                self.counts.splice(0..0, std::iter::repeat_n(0, grow));
                self.offset = new_lo as i32;
            }
            if new_lo > index {
                self.collapsed = true;
            }
            (new_lo - i64::from(self.offset)) as usize
        } else if index > hi {
            let new_lo = lo.max(index - max + 1);
            if new_lo > lo {
                self.collapsed = true;
                let gone = ((new_lo - lo) as usize).min(self.counts.len());
                let folded = self.counts.drain(..gone).fold(0u64, u64::saturating_add);
                if self.counts.is_empty() {
                    self.counts.push(0);
                }
                self.counts[0] = self.counts[0].saturating_add(folded);
                self.offset = new_lo as i32;
            }
            let slot = (index - i64::from(self.offset)) as usize;
            self.counts.resize(slot + 1, 0);
            slot
        } else {
            (index - lo) as usize
        };
        self.counts[slot] = self.counts[slot].saturating_add(n);
    }
}

/// log₂ v for finite v > 0, to about 3e-8 absolute, without a libm call (three a
/// transaction, from the sizes and latency of every call): the exponent, plus log₂ of the
/// mantissa's top eight bits from a table, plus log₂(1 + r) of the rest (r < 1/256) by three
/// Taylor terms. At a bucket index's scale (1/log₂ γ ≈ 35 for 1 %) the error is under 1e-6 of
/// a bucket, so only a value that close to a bucket's edge may land in its neighbour, still
/// within the sketch's relative accuracy.
fn log2(v: f64) -> f64 {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64;
    if exponent == 0 || exponent == 0x7ff {
        // Subnormal, infinite or NaN: rare, and libm knows them.
        return v.log2();
    }
    let mantissa = bits & ((1 << 52) - 1);
    let (log2_step, per_step) = LOG2_STEPS[(mantissa >> 44) as usize];
    let r = f64::from_bits(mantissa | (1023 << 52)) * per_step - 1.0;
    let log2_1p = r * std::f64::consts::LOG2_E * (1.0 - r * (0.5 - r * (1.0 / 3.0)));
    (exponent - 1023) as f64 + log2_step + log2_1p
}

/// For k in 0..256: log₂(1 + k/256) and 1 / (1 + k/256), evaluated when compiling (ln by its
/// series around 1, in atanh form, far past an f64's resolution).
static LOG2_STEPS: [(f64, f64); 256] = log2_steps();

const fn log2_steps() -> [(f64, f64); 256] {
    let mut table = [(0.0, 1.0); 256];
    let mut k = 0;
    while k < 256 {
        let at = 1.0 + k as f64 / 256.0;
        // ln a = 2·atanh((a − 1)/(a + 1)) = 2·Σ t^(2n+1)/(2n+1), t ≤ 1/3 here.
        let t = (at - 1.0) / (at + 1.0);
        let (mut term, mut sum, mut n) = (t, 0.0, 0);
        while n < 40 {
            sum += term / (2 * n + 1) as f64;
            term *= t * t;
            n += 1;
        }
        table[k] = (2.0 * sum * std::f64::consts::LOG2_E, 1.0 / at);
        k += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of rank `⌊q·(n − 1)⌋`, the definition the sketch estimates.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn log2_follows_libm() {
        let mut v = 1e-300;
        while v < 1e300 {
            for x in [v, v * 1.00390625, v * 1.5, v * 1.9999999] {
                assert!(
                    (log2(x) - x.log2()).abs() <= 3e-8,
                    "log2 {x}: {} vs {}",
                    log2(x),
                    x.log2()
                );
            }
            v *= 1.37;
        }
        assert_eq!(log2(1.0), 0.0);
        assert_eq!(log2(1024.0), 10.0);
        assert_eq!(
            log2(f64::MIN_POSITIVE / 4.0),
            (f64::MIN_POSITIVE / 4.0).log2()
        );
        assert_eq!(log2(f64::INFINITY), f64::INFINITY);
        for (k, &(step, per)) in LOG2_STEPS.iter().enumerate() {
            let at = 1.0 + k as f64 / 256.0;
            assert!((step - at.log2()).abs() <= 1e-15, "{k}");
            assert_eq!(per, 1.0 / at);
        }
    }

    #[test]
    fn bucket_index_is_the_ceiling_of_the_log() {
        let s = Sketch::new();
        let mut v = 1e-300;
        while v < 1e300 {
            for x in [v, v * 1.0078125, v * 1.5, v * 1.9999999] {
                let exact: f64 = f64::ln(x) / s.ln_gamma;
                // Within 1e-6 of a bucket's edge, either side is within the accuracy.
                if (exact - exact.round()).abs() > 1e-6 {
                    assert_eq!(s.index(x), exact.ceil() as i32, "{x}");
                }
            }
            v *= 1.37;
        }
        // Values next to a power of γ land in one of the two buckets it bounds.
        for i in [-5i32, -1, 1, 7] {
            let x = (f64::from(i) * s.ln_gamma).exp();
            assert!((i..=i + 1).contains(&s.index(x)), "{x}: {}", s.index(x));
        }
    }

    fn sketch_of(values: &[f64]) -> Sketch {
        let mut s = Sketch::new();
        values.iter().for_each(|&v| s.add(v));
        s
    }

    fn within(estimate: f64, truth: f64, alpha: f64) -> bool {
        // Float rounding of ln/exp at bucket edges may add a few ulps to the bound.
        (estimate - truth).abs() <= alpha * truth * (1.0 + 1e-9)
    }

    fn assert_accurate(values: &[f64], qs: &[f64]) {
        let s = sketch_of(values);
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for &q in qs {
            let (estimate, truth) = (s.quantile(q).unwrap(), exact(&sorted, q));
            assert!(
                within(estimate, truth, 0.01),
                "q={q}: {estimate} vs {truth}"
            );
        }
    }

    const QS: [f64; 6] = [0.0, 0.5, 0.9, 0.99, 0.999, 1.0];

    #[test]
    fn uniform_values_are_within_alpha() {
        let values: Vec<f64> = (1..=10_000).map(f64::from).collect();
        assert_accurate(&values, &QS);
        let s = sketch_of(&values);
        assert_eq!(s.count(), 10_000);
        assert_eq!(s.min(), Some(1.0));
        assert_eq!(s.max(), Some(10_000.0));
        assert_eq!(s.sum(), 50_005_000.0);
        assert!(!s.collapsed());
    }

    #[test]
    fn exponential_latencies_are_within_alpha() {
        let n = 20_000;
        let values: Vec<f64> = (0..n)
            .map(|i| 50_000.0 - (1.0 - (f64::from(i) + 0.5) / f64::from(n)).ln() * 250_000.0)
            .collect();
        assert_accurate(&values, &QS);
    }

    #[test]
    fn a_constant_is_exact() {
        let s = sketch_of(&[42.0; 1000]);
        for q in QS {
            assert_eq!(s.quantile(q), Some(42.0));
        }
    }

    #[test]
    fn zeros_are_counted_apart() {
        let mut values = vec![0.0; 300];
        values.extend((1..=700).map(|i| f64::from(i) * 3.5));
        assert_accurate(&values, &QS);
        let s = sketch_of(&values);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(0.29), Some(0.0));
        assert!(s.quantile(0.31).unwrap() > 0.0);
        assert_eq!(sketch_of(&[0.0, 0.0]).quantile(1.0), Some(0.0));
    }

    #[test]
    fn bad_values_and_quantiles_are_refused() {
        let mut s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!((s.min(), s.max()), (None, None));
        for v in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e-300] {
            s.add(v);
        }
        assert_eq!((s.count(), s.rejected()), (0, 5));
        assert_eq!(s.quantile(0.5), None);
        s.add(7.0);
        assert_eq!(s.quantile(0.5), Some(7.0));
        for q in [-0.1, 1.1, f64::NAN] {
            assert_eq!(s.quantile(q), None);
        }
    }

    #[test]
    fn extreme_values_and_settings_do_not_panic() {
        for (alpha, buckets) in [(f64::NAN, 0), (0.0, 1), (1.0, 3), (-5.0, usize::MAX)] {
            let mut s = Sketch::with_accuracy(alpha, buckets);
            for v in [f64::MIN_POSITIVE, 5e-324, f64::MAX, 1.0, 0.0, 1e-300, 1e300] {
                s.add(v);
            }
            for q in QS {
                let v = s.quantile(q).unwrap();
                assert!((0.0..=f64::MAX).contains(&v));
            }
            assert!(s.counts.len() <= s.max_buckets);
        }
    }

    #[test]
    fn buckets_stay_bounded_and_high_quantiles_accurate() {
        // Log-uniform over 1e-3..1e15 needs ~2,100 buckets at 1 %.
        let n = 100_000;
        let values: Vec<f64> = (0..n)
            .map(|i| 10f64.powf(-3.0 + 18.0 * f64::from(i) / f64::from(n)))
            .collect();
        let s = sketch_of(&values);
        assert!(s.collapsed());
        assert_eq!(s.counts.len(), 512);
        assert_eq!(s.count(), 100_000);
        assert_accurate(&values, &[0.9, 0.99, 0.999, 1.0]);
        assert_eq!(s.quantile(0.0), Some(1e-3), "the minimum is exact");
        assert!(s.quantile(0.5).unwrap() >= 1e-3);

        let mut tiny = Sketch::with_accuracy(0.01, 8);
        values.iter().rev().for_each(|&v| tiny.add(v));
        assert!(tiny.counts.len() <= 8);
        assert!(within(
            tiny.quantile(1.0).unwrap(),
            1e15 * 10f64.powf(-18e-5),
            0.01
        ));
    }

    #[test]
    fn merge_equals_the_sketch_of_both() {
        let a: Vec<f64> = (0..5000).map(|i| f64::from(i % 97) * 1.7).collect();
        let b: Vec<f64> = (0..3000).map(|i| 1e9 / f64::from(i + 1)).collect();
        let mut merged = sketch_of(&a);
        merged.merge(&sketch_of(&b));
        let whole = sketch_of(&[a, b].concat());
        assert_same(merged, &whole);
    }

    #[test]
    fn merging_another_alpha_rebuckets() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let mut merged = Sketch::new();
        merged.merge(&{
            let mut s = Sketch::with_accuracy(0.001, 4096);
            values.iter().for_each(|&v| s.add(v));
            s
        });
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in QS {
            let estimate = merged.quantile(q).unwrap();
            assert!(within(estimate, exact(&sorted, q), 0.0111), "q={q}");
        }
    }

    /// Equal but for the sum, whose rounding depends on the order of additions.
    fn assert_same(mut merged: Sketch, whole: &Sketch) {
        let tolerance = 1e-9 * whole.sum.abs().max(1.0);
        assert!((merged.sum - whole.sum).abs() <= tolerance);
        merged.sum = whole.sum;
        assert_eq!(&merged, whole);
    }

    fn value() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            Just(0.0),
            0.0..1e12f64,
            0.0..1e3f64,
            (0.0..1.0f64).prop_map(|u| 1e12f64.powf(u) - 1.0),
        ]
    }

    proptest::proptest! {
        #[test]
        fn quantiles_are_within_alpha_unless_collapsed(
            values in proptest::collection::vec(value(), 1..300),
            q in 0.0..=1.0f64,
        ) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for s in [sketch_of(&values), {
                let mut wide = Sketch::with_accuracy(0.01, 1 << 14);
                values.iter().for_each(|&v| wide.add(v));
                wide
            }] {
                proptest::prop_assert!(s.counts.len() <= s.max_buckets);
                if s.collapsed() {
                    continue;
                }
                for q in [q, 0.0, 0.5, 0.9, 0.99, 1.0] {
                    let (estimate, truth) = (s.quantile(q).unwrap(), exact(&sorted, q));
                    proptest::prop_assert!(within(estimate, truth, 0.01), "q={} {} vs {}", q, estimate, truth);
                }
            }
        }

        #[test]
        fn merge_is_the_sketch_of_the_concatenation(
            values in proptest::collection::vec(value(), 0..300),
            split in 0.0..=1.0f64,
            buckets in 1usize..600,
        ) {
            let at = (split * values.len() as f64) as usize;
            let build = |part: &[f64]| {
                let mut s = Sketch::with_accuracy(0.01, buckets);
                part.iter().for_each(|&v| s.add(v));
                s
            };
            let mut merged = build(&values[..at]);
            merged.merge(&build(&values[at..]));
            assert_same(merged, &build(&values));
        }
    }
}
