//! Behaviour of one entity (client IP, identity, endpoint, client network) at several time
//! scales, and a bounded table of entities.
//!
//! Counts are damped exponentially in packet time and read as rates; distinct endpoints and
//! objects come from a small windowed HyperLogLog ([`Distinct`]). An [`EntityState`] is 720
//! bytes; an [`EntityTable`] holds at most its capacity of them and evicts the least recently
//! seen. Time that goes backwards (packets of different flows slightly out of order) counts as
//! no time passing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Index, IndexMut};

const NS_PER_SEC: u64 = 1_000_000_000;

/// What an entity table is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    ClientIp,
    Identity,
    Endpoint,
    ClientNetwork,
}

impl EntityKind {
    pub const ALL: [EntityKind; 4] = [
        EntityKind::ClientIp,
        EntityKind::Identity,
        EntityKind::Endpoint,
        EntityKind::ClientNetwork,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::ClientIp => "client_ip",
            EntityKind::Identity => "identity",
            EntityKind::Endpoint => "endpoint",
            EntityKind::ClientNetwork => "client_network",
        }
    }
}

/// Time scales: the half-life of a damped count, and the window of a [`Distinct`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scale {
    S10,
    M1,
    M10,
    H1,
}

/// `f` of every scale, in [`Scale::ALL`] order. Written out: `ALL.map` goes through a
/// draining iterator that the hot entity update did not see through.
#[inline]
fn per_scale(f: impl Fn(Scale) -> f64) -> [f64; 4] {
    [f(Scale::S10), f(Scale::M1), f(Scale::M10), f(Scale::H1)]
}

impl Scale {
    /// Every scale, shortest first; `scale as usize` is its index here.
    pub const ALL: [Scale; 4] = [Scale::S10, Scale::M1, Scale::M10, Scale::H1];

    pub fn half_life_ns(self) -> u64 {
        NS_PER_SEC
            * match self {
                Scale::S10 => 10,
                Scale::M1 => 60,
                Scale::M10 => 600,
                Scale::H1 => 3600,
            }
    }

    /// 1 / [`Scale::half_life_ns`].
    fn per_half_life_ns(self) -> f64 {
        const PER: [f64; 4] = [
            1.0 / (10.0 * NS_PER_SEC as f64),
            1.0 / (60.0 * NS_PER_SEC as f64),
            1.0 / (600.0 * NS_PER_SEC as f64),
            1.0 / (3600.0 * NS_PER_SEC as f64),
        ];
        PER[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scale::S10 => "10s",
            Scale::M1 => "1m",
            Scale::M10 => "10m",
            Scale::H1 => "1h",
        }
    }
}

/// 2^(−elapsed / half-life).
fn decay(elapsed_ns: u64, half_life_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        return 1.0;
    }
    decay_by(elapsed_ns as f64 / half_life_ns.max(1) as f64)
}

/// 2^-x, for x = elapsed / half-life.
fn decay_by(x: f64) -> f64 {
    if x < 0.01 {
        // Busy entities see each other moments apart: four terms suffice (error < 3e-11).
        let a = x * std::f64::consts::LN_2;
        return 1.0 - a * (1.0 - a * (0.5 - a * (1.0 / 6.0)));
    }
    exp2_neg(x)
}

/// 2^-x for x ≥ 0, to about 1e-14 relative, in plain IEEE arithmetic: the same bits on every
/// platform (a libm `exp` is not bound to), and a few multiplies instead of a call.
fn exp2_neg(x: f64) -> f64 {
    if x.is_nan() || x > 1000.0 {
        return 0.0;
    }
    // x = whole + k/64 + r/64 with r in [0, 1): 2^-whole through the exponent bits, 2^(-k/64)
    // from a table, and 2^(-r/64) = e^-a, a = r·ln 2/64 < 0.011, by five Taylor terms (the
    // sixth is below 3e-15).
    let sixty_fourths = x.max(0.0) * 64.0;
    let steps = sixty_fourths.floor();
    let a = (sixty_fourths - steps) * (std::f64::consts::LN_2 / 64.0);
    let steps = steps as u64;
    let near = 1.0 - a * (1.0 - a * (0.5 - a * (1.0 / 6.0 - a * (1.0 / 24.0 - a * (1.0 / 120.0)))));
    let scale = f64::from_bits((1023 - (steps >> 6)) << 52);
    near * EXP2_SIXTY_FOURTHS[(steps & 63) as usize] * scale
}

/// 2^(-k/64) for k in 0..64, by the Taylor series of e^-a (a = k/64·ln 2) to 20 terms, past an
/// f64's resolution, evaluated when compiling.
const EXP2_SIXTY_FOURTHS: [f64; 64] = {
    let mut table = [0.0; 64];
    let mut k = 0;
    while k < 64 {
        let a = k as f64 / 64.0 * std::f64::consts::LN_2;
        // Σ (-a)^n / n!, n ≤ 20: far past f64 resolution for a < ln 2.
        let (mut sum, mut term, mut n) = (1.0, 1.0, 1);
        while n <= 20 {
            term = -term * a / n as f64;
            sum += term;
            n += 1;
        }
        table[k] = sum;
        k += 1;
    }
    table
};

/// An exponentially damped count: its value halves every half-life of packet time. The caller
/// passes the same half-life to every call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Damped {
    value: f64,
    at_ns: u64,
}

impl Damped {
    pub fn add(&mut self, now_ns: u64, amount: f64, half_life_ns: u64) {
        if now_ns > self.at_ns {
            self.value *= decay(now_ns - self.at_ns, half_life_ns);
            self.at_ns = now_ns;
        }
        self.value += amount;
    }

    pub fn value_at(&self, now_ns: u64, half_life_ns: u64) -> f64 {
        self.value * decay(now_ns.saturating_sub(self.at_ns), half_life_ns)
    }
}

/// Registers of a [`Distinct`] window: 2^7, for a standard error of 1.04/√128 ≈ 9 %.
const REGISTER_BITS: u32 = 7;
const REGISTERS: usize = 1 << REGISTER_BITS;
/// Ranks are kept in 4 bits; a register saturates only past ~2^15 values per register.
const MAX_RANK: u32 = 15;
/// Σ 2^(−rank) is kept scaled by 2^MAX_RANK, as an integer: exact under updates.
const EMPTY_SUM: u32 = (REGISTERS as u32) << MAX_RANK;

fn scaled_inverse_power(rank: u8) -> u32 {
    1 << (MAX_RANK - u32::from(rank))
}

/// Estimated count of distinct hashes seen over the last window of one [`Scale`] (the caller
/// passes the same scale to every call).
///
/// Two HyperLogLog sketches of 128 4-bit registers: the current window, aligned to multiples
/// of the scale in packet time, and the one before. The estimate counts the current window
/// plus the values only the previous one saw, weighted by how much of the previous window the
/// sliding window still covers (which assumes they were spread evenly over it). Standard error
/// about 9 % above a few hundred values; within one or two below ~50. Register sums are kept
/// up to date on insert so that an estimate is O(1). 160 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Distinct {
    last_ns: u64,
    /// End of the current window: inserts before it skip the window arithmetic (divisions).
    window_end_ns: u64,
    /// Two registers per byte, low nibble first.
    current: [u8; REGISTERS / 2],
    previous: [u8; REGISTERS / 2],
    current_sum: u32,
    /// Over max(current, previous) register by register: the union of both windows.
    union_sum: u32,
    current_zeros: u8,
    union_zeros: u8,
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct {
            last_ns: 0,
            window_end_ns: 0,
            current: [0; REGISTERS / 2],
            previous: [0; REGISTERS / 2],
            current_sum: EMPTY_SUM,
            union_sum: EMPTY_SUM,
            current_zeros: REGISTERS as u8,
            union_zeros: REGISTERS as u8,
        }
    }
}

impl Distinct {
    pub fn insert(&mut self, now_ns: u64, hash: u64, scale: Scale) {
        // Caller hashes need not be uniform in every bit; the register index and rank need it.
        self.insert_mixed(now_ns, finalize(hash), scale);
    }

    /// [`Distinct::insert`] of a hash already through `finalize` (one mix for several sets).
    fn insert_mixed(&mut self, now_ns: u64, h: u64, scale: Scale) {
        let now_ns = now_ns.max(self.last_ns);
        if now_ns >= self.window_end_ns {
            let window = scale.half_life_ns();
            match now_ns / window - self.last_ns / window {
                0 => {}
                1 => {
                    self.previous = self.current;
                    self.union_sum = self.current_sum;
                    self.union_zeros = self.current_zeros;
                    self.current = [0; REGISTERS / 2];
                    self.current_sum = EMPTY_SUM;
                    self.current_zeros = REGISTERS as u8;
                }
                _ => *self = Distinct::default(),
            }
            self.window_end_ns = (now_ns / window + 1).saturating_mul(window);
        }
        self.last_ns = now_ns;

        let register = (h >> (64 - REGISTER_BITS)) as usize;
        let rank = ((h << REGISTER_BITS).leading_zeros() + 1).min(MAX_RANK) as u8;
        let shift = (register % 2) * 4;
        let old = (self.current[register / 2] >> shift) & 0xf;
        if rank <= old {
            return;
        }
        let byte = &mut self.current[register / 2];
        *byte = (*byte & !(0xf << shift)) | (rank << shift);
        self.current_sum -= scaled_inverse_power(old) - scaled_inverse_power(rank);
        self.current_zeros -= u8::from(old == 0);
        let previous = (self.previous[register / 2] >> shift) & 0xf;
        let union_old = old.max(previous);
        if rank > union_old {
            self.union_sum -= scaled_inverse_power(union_old) - scaled_inverse_power(rank);
            self.union_zeros -= u8::from(union_old == 0);
        }
    }

    pub fn estimate(&self, now_ns: u64, scale: Scale) -> f64 {
        let window = scale.half_life_ns();
        let now_ns = now_ns.max(self.last_ns);
        let (recent, union) = match now_ns / window - self.last_ns / window {
            0 => (
                hyperloglog(self.current_sum, self.current_zeros),
                hyperloglog(self.union_sum, self.union_zeros),
            ),
            // The current window has become the previous one.
            1 => (0.0, hyperloglog(self.current_sum, self.current_zeros)),
            _ => return 0.0,
        };
        let previous_still_covered = 1.0 - (now_ns % window) as f64 / window as f64;
        recent + (union - recent).max(0.0) * previous_still_covered
    }
}

fn hyperloglog(scaled_sum: u32, zero_registers: u8) -> f64 {
    let sum = f64::from(scaled_sum) / f64::from(1u32 << MAX_RANK);
    hyperloglog_estimate(REGISTERS, sum, usize::from(zero_registers))
}

/// The HyperLogLog estimate of `registers` registers whose Σ 2^(−rank) is `sum`, `zeros` of
/// them still empty (Flajolet et al. 2007).
pub fn hyperloglog_estimate(registers: usize, sum: f64, zeros: usize) -> f64 {
    let m = registers as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let raw = alpha * m * m / sum;
    // Linear counting is the better estimator while registers are still empty.
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

/// What one transaction contributes to an entity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub now_ns: u64,
    /// Hash of the route (template); 0 for none (not counted among distinct endpoints).
    pub endpoint: u64,
    /// Hash of the object id in the path, if any.
    pub object: Option<u64>,
    /// Status ≥ 400.
    pub error: bool,
    /// Status 401 or 403.
    pub auth_failure: bool,
    /// Response body bytes.
    pub bytes_out: u64,
}

/// The per-entity feature schema; `feature as usize` indexes [`EntityFeatures`].
///
/// Rates are per second. At a scale longer than the entity's age they are its mean rate so far
/// (at least over 1 s), not a value still warming up from zero, so a new entity's first burst
/// reads as its own baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EntityFeature {
    /// Requests per second, damped with a half-life of 10 s.
    Rate10s,
    Rate1m,
    Rate10m,
    Rate1h,
    /// Errors over requests, damped alike (0 to 1); keeps its value while the entity is idle.
    ErrorRatio1m,
    ErrorRatio1h,
    /// 401 and 403 responses per second.
    AuthFailures1m,
    /// Distinct endpoints over the last minute.
    DistinctEndpoints1m,
    DistinctEndpoints1h,
    /// Distinct object ids over the last minute.
    DistinctObjects1m,
    DistinctObjects1h,
    /// Response body bytes per second.
    BytesOut1m,
    /// `Rate10s` over `Rate1h`: a burst against the entity's own baseline (≈ 1 when steady).
    RateRatio,
}

impl EntityFeature {
    /// Every feature in discriminant order.
    pub const ALL: [EntityFeature; 13] = [
        EntityFeature::Rate10s,
        EntityFeature::Rate1m,
        EntityFeature::Rate10m,
        EntityFeature::Rate1h,
        EntityFeature::ErrorRatio1m,
        EntityFeature::ErrorRatio1h,
        EntityFeature::AuthFailures1m,
        EntityFeature::DistinctEndpoints1m,
        EntityFeature::DistinctEndpoints1h,
        EntityFeature::DistinctObjects1m,
        EntityFeature::DistinctObjects1h,
        EntityFeature::BytesOut1m,
        EntityFeature::RateRatio,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name, for output and model schemas.
    pub fn name(self) -> &'static str {
        match self {
            EntityFeature::Rate10s => "rate_10s",
            EntityFeature::Rate1m => "rate_1m",
            EntityFeature::Rate10m => "rate_10m",
            EntityFeature::Rate1h => "rate_1h",
            EntityFeature::ErrorRatio1m => "error_ratio_1m",
            EntityFeature::ErrorRatio1h => "error_ratio_1h",
            EntityFeature::AuthFailures1m => "auth_failures_1m",
            EntityFeature::DistinctEndpoints1m => "distinct_endpoints_1m",
            EntityFeature::DistinctEndpoints1h => "distinct_endpoints_1h",
            EntityFeature::DistinctObjects1m => "distinct_objects_1m",
            EntityFeature::DistinctObjects1h => "distinct_objects_1h",
            EntityFeature::BytesOut1m => "bytes_out_1m",
            EntityFeature::RateRatio => "rate_ratio",
        }
    }
}

/// Feature values indexed by [`EntityFeature`]; every value is finite and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntityFeatures(pub [f64; EntityFeature::COUNT]);

impl EntityFeatures {
    pub fn get(&self, feature: EntityFeature) -> f64 {
        self.0[feature as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (EntityFeature, f64)> + '_ {
        EntityFeature::ALL.iter().map(|&f| (f, self.get(f)))
    }
}

impl Index<EntityFeature> for EntityFeatures {
    type Output = f64;

    fn index(&self, feature: EntityFeature) -> &f64 {
        &self.0[feature as usize]
    }
}

impl IndexMut<EntityFeature> for EntityFeatures {
    fn index_mut(&mut self, feature: EntityFeature) -> &mut f64 {
        &mut self.0[feature as usize]
    }
}

/// What is known of one entity. The damped counts share `last_seen` as their time, so an update
/// decays each scale once. 720 bytes, 640 of them the four distinct sketches.
#[derive(Clone, Debug)]
pub struct EntityState {
    first_seen: u64,
    last_seen: u64,
    /// By [`Scale`].
    requests: [f64; 4],
    errors_1m: f64,
    errors_1h: f64,
    auth_failures_1m: f64,
    bytes_out_1m: f64,
    endpoints_1m: Distinct,
    endpoints_1h: Distinct,
    objects_1m: Distinct,
    objects_1h: Distinct,
}

impl EntityState {
    pub fn new(first_seen_ns: u64) -> Self {
        EntityState {
            first_seen: first_seen_ns,
            last_seen: first_seen_ns,
            requests: [0.0; 4],
            errors_1m: 0.0,
            errors_1h: 0.0,
            auth_failures_1m: 0.0,
            bytes_out_1m: 0.0,
            endpoints_1m: Distinct::default(),
            endpoints_1h: Distinct::default(),
            objects_1m: Distinct::default(),
            objects_1h: Distinct::default(),
        }
    }

    pub fn first_seen(&self) -> u64 {
        self.first_seen
    }

    pub fn last_seen(&self) -> u64 {
        self.last_seen
    }

    pub fn observe(&mut self, e: &Event) {
        self.observe_with(e, &mut Decays::default());
    }

    /// [`EntityState::observe`], reusing the decays `memo` holds when this entity was last seen
    /// as long ago as the entity it was computed for.
    pub fn observe_with(&mut self, e: &Event, memo: &mut Decays) {
        let now = e.now_ns.max(self.last_seen);
        let decays = memo.of(now - self.last_seen);
        for (count, d) in self.requests.iter_mut().zip(decays) {
            *count = *count * d + 1.0;
        }
        let (m1, h1) = (decays[Scale::M1 as usize], decays[Scale::H1 as usize]);
        let error = if e.error { 1.0 } else { 0.0 };
        self.errors_1m = self.errors_1m * m1 + error;
        self.errors_1h = self.errors_1h * h1 + error;
        self.auth_failures_1m = self.auth_failures_1m * m1 + if e.auth_failure { 1.0 } else { 0.0 };
        self.bytes_out_1m = self.bytes_out_1m * m1 + e.bytes_out as f64;
        self.last_seen = now;

        if e.endpoint != 0 {
            let mixed = finalize(e.endpoint);
            self.endpoints_1m.insert_mixed(now, mixed, Scale::M1);
            self.endpoints_1h.insert_mixed(now, mixed, Scale::H1);
        }
        if let Some(object) = e.object {
            let mixed = finalize(object);
            self.objects_1m.insert_mixed(now, mixed, Scale::M1);
            self.objects_1h.insert_mixed(now, mixed, Scale::H1);
        }
    }

    pub fn features(&self, now_ns: u64) -> EntityFeatures {
        let now = now_ns.max(self.last_seen);
        let decays = Decays::default().of(now - self.last_seen);
        let age_ns = (now - self.first_seen).max(NS_PER_SEC);
        let seconds = per_scale(|s| weighted_seconds(age_ns, s));
        let per_second = |count: f64, s: Scale| count * decays[s as usize] / seconds[s as usize];
        let rates = per_scale(|s| per_second(self.requests[s as usize], s));
        let ratio = |part: f64, whole: f64| {
            if whole > 0.0 {
                (part / whole).min(1.0)
            } else {
                0.0
            }
        };

        use EntityFeature as F;
        let mut f = EntityFeatures([0.0; EntityFeature::COUNT]);
        let [s10, m1, m10, h1] = rates;
        f[F::Rate10s] = s10;
        f[F::Rate1m] = m1;
        f[F::Rate10m] = m10;
        f[F::Rate1h] = h1;
        f[F::ErrorRatio1m] = ratio(self.errors_1m, self.requests[Scale::M1 as usize]);
        f[F::ErrorRatio1h] = ratio(self.errors_1h, self.requests[Scale::H1 as usize]);
        f[F::AuthFailures1m] = per_second(self.auth_failures_1m, Scale::M1);
        f[F::DistinctEndpoints1m] = self.endpoints_1m.estimate(now, Scale::M1);
        f[F::DistinctEndpoints1h] = self.endpoints_1h.estimate(now, Scale::H1);
        f[F::DistinctObjects1m] = self.objects_1m.estimate(now, Scale::M1);
        f[F::DistinctObjects1h] = self.objects_1h.estimate(now, Scale::H1);
        f[F::BytesOut1m] = per_second(self.bytes_out_1m, Scale::M1);
        f[F::RateRatio] = if h1 > 0.0 { s10 / h1 } else { 0.0 };
        f
    }
}

/// The per-scale decay of one elapsed time, remembered for the next entity updated by the same
/// transaction: a request's client address, client network and credential were most often last
/// seen together, by the same earlier request, and so decay alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decays {
    /// 0 when nothing is held (no time passing needs no computing).
    elapsed_ns: u64,
    decays: [f64; 4],
}

impl Decays {
    /// 2^(−elapsed / half-life) by [`Scale`].
    fn of(&mut self, elapsed_ns: u64) -> [f64; 4] {
        if elapsed_ns == 0 {
            return [1.0; 4];
        }
        if elapsed_ns != self.elapsed_ns {
            // By reciprocals: four divisions were a chain of slow instructions on every update.
            let elapsed = elapsed_ns as f64;
            self.decays = per_scale(|s| decay_by(elapsed * s.per_half_life_ns()));
            self.elapsed_ns = elapsed_ns;
        }
        self.decays
    }
}

/// Seconds of a steady 1/s stream that a damped count at `scale` holds after `age_ns`:
/// ∫₀ᵃ 2^(−t/h) dt = h/ln 2 · (1 − 2^(−a/h)). Dividing by it turns a count into a rate that is
/// right from the start instead of converging over several half-lives.
fn weighted_seconds(age_ns: u64, scale: Scale) -> f64 {
    let half_life = scale.half_life_ns() as f64;
    let mean_life_seconds = half_life / NS_PER_SEC as f64 / std::f64::consts::LN_2;
    let x = age_ns as f64 / half_life * std::f64::consts::LN_2;
    // Past e^-40 the term is below an f64's resolution next to 1: skip the call. A young
    // entity on a long scale has a tiny x: 1 − e^−x by its series (four terms, relative error
    // below 1e-10), as `decay` does.
    if x > 40.0 {
        return mean_life_seconds;
    }
    if x < 0.01 {
        return mean_life_seconds * x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x * (1.0 / 24.0))));
    }
    mean_life_seconds * -(-x).exp_m1()
}

/// Counts of an [`EntityTable`] since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub entities: usize,
    pub inserted: u64,
    pub evicted: u64,
}

const NIL: u32 = u32::MAX;

/// A slot's key and its neighbours in the recency list, apart from its state: moving an entity
/// to the front rewrites its neighbours' links, and these sit 16 bytes each in one dense array
/// (most of it in cache) rather than in two far-apart 700-byte states.
#[derive(Clone, Copy, Debug)]
struct Link {
    key: u64,
    newer: u32,
    older: u32,
}

/// Entity states keyed by a u64 (the caller hashes IPs, identities, routes, networks), at most
/// `capacity` of them. Least recently seen first out: a map from key to slot and a doubly
/// linked list through the slots keep every operation O(1). The list alone decides what goes,
/// and the map's hasher is fixed, so a replay behaves the same every run. A slot is 720 bytes
/// of state and 16 of links, ~750 per entity with the map.
#[derive(Clone, Debug)]
pub struct EntityTable {
    kind: EntityKind,
    capacity: usize,
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    /// By slot.
    links: Vec<Link>,
    /// By slot; grown in chunks: a doubling vector of 700-byte states spends its warm-up
    /// copying them.
    states: crate::chunked::Chunked<EntityState>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    inserted: u64,
    evicted: u64,
}

impl EntityTable {
    /// `capacity` is at least 1. Memory grows with use up to it.
    pub fn new(kind: EntityKind, capacity: usize) -> Self {
        EntityTable {
            kind,
            capacity: capacity.clamp(1, NIL as usize - 1),
            index: HashMap::default(),
            links: Vec::new(),
            states: Default::default(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            inserted: 0,
            evicted: 0,
        }
    }

    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Updates the entity (creating it if needed, evicting the least recently seen when full)
    /// and returns its features after the update.
    pub fn observe(&mut self, key: u64, e: &Event) -> EntityFeatures {
        self.update(key, e);
        self.features(key, e.now_ns)
            .unwrap_or(EntityFeatures([0.0; EntityFeature::COUNT]))
    }

    /// The features of an entity at `now_ns`, if it is in the table.
    pub fn features(&self, key: u64, now_ns: u64) -> Option<EntityFeatures> {
        self.get(key).map(|s| s.features(now_ns))
    }

    /// Updates the entity like [`EntityTable::observe`] without computing its features (for
    /// callers that read them only for some transactions).
    pub fn update(&mut self, key: u64, e: &Event) {
        self.update_with(key, e, &mut Decays::default());
    }

    /// [`EntityTable::update`] with a [`Decays`] memo shared by the tables a transaction updates.
    pub fn update_with(&mut self, key: u64, e: &Event, memo: &mut Decays) {
        let slot = match self.index.get(&key) {
            // A busy entity is often the one seen last: already in place.
            Some(&slot) if slot == self.newest => {
                self.states[slot as usize].observe_with(e, memo);
                return;
            }
            Some(&slot) => {
                self.unlink(slot);
                slot
            }
            None => {
                let slot = self.vacant_slot(key, e.now_ns);
                self.index.insert(key, slot);
                self.inserted += 1;
                slot
            }
        };
        self.link_newest(slot);
        self.states[slot as usize].observe_with(e, memo);
    }

    pub fn get(&self, key: u64) -> Option<&EntityState> {
        self.index
            .get(&key)
            .map(|&slot| &self.states[slot as usize])
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            entities: self.len(),
            inserted: self.inserted,
            evicted: self.evicted,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Drops entities idle for longer than `idle_ns` at `now_ns` (counted as evicted) and returns
    /// how many. Walks from the least recently seen and stops at the first that is not idle, so
    /// the cost is what it drops; an entity whose packet time lags the order it was seen in (by
    /// the few ms of out-of-order flows) may wait for the next call.
    pub fn expire(&mut self, now_ns: u64, idle_ns: u64) -> usize {
        let mut dropped = 0;
        while self.oldest != NIL {
            let slot = self.oldest;
            if now_ns.saturating_sub(self.states[slot as usize].last_seen) <= idle_ns {
                break;
            }
            let key = self.links[slot as usize].key;
            self.unlink(slot);
            self.index.remove(&key);
            self.free.push(slot);
            dropped += 1;
        }
        self.evicted += dropped as u64;
        dropped
    }

    /// A slot for a new key, unlinked, with a fresh state.
    fn vacant_slot(&mut self, key: u64, now_ns: u64) -> u32 {
        let state = EntityState::new(now_ns);
        if self.index.len() >= self.capacity {
            let slot = self.oldest;
            self.unlink(slot);
            let link = &mut self.links[slot as usize];
            self.index.remove(&link.key);
            link.key = key;
            self.states[slot as usize] = state;
            self.evicted += 1;
            return slot;
        }
        if let Some(slot) = self.free.pop() {
            self.links[slot as usize].key = key;
            self.states[slot as usize] = state;
            return slot;
        }
        self.links.push(Link {
            key,
            newer: NIL,
            older: NIL,
        });
        self.states.push(state);
        (self.states.len() - 1) as u32
    }

    fn unlink(&mut self, slot: u32) {
        let Link { newer, older, .. } = self.links[slot as usize];
        match newer {
            NIL => self.newest = older,
            n => self.links[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.links[o as usize].newer = newer,
        }
        let link = &mut self.links[slot as usize];
        link.newer = NIL;
        link.older = NIL;
    }

    fn link_newest(&mut self, slot: u32) {
        let previous_newest = self.newest;
        {
            let link = &mut self.links[slot as usize];
            link.newer = NIL;
            link.older = previous_newest;
        }
        match previous_newest {
            NIL => self.oldest = slot,
            p => self.links[p as usize].newer = slot,
        }
        self.newest = slot;
    }
}

/// Hasher of the table's u64 keys: fixed, so that runs replay identically.
#[derive(Clone, Copy, Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = finalize(self.0 ^ key_hash(bytes));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = finalize(self.0 ^ n);
    }
}

/// The network a client address belongs to: its /24 for IPv4, its /64 for IPv6. An
/// IPv4-mapped IPv6 address is taken as the IPv4 address it maps.
pub fn client_network(ip: IpAddr) -> IpAddr {
    let v4_network = |v4: Ipv4Addr| Ipv4Addr::from(u32::from(v4) & 0xffff_ff00);
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4_network(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4_network(v4)),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        },
    }
}

/// The entity key of an address (its octets through [`key_hash`]).
pub fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => key_hash(&v4.octets()),
        IpAddr::V6(v6) => key_hash(&v6.octets()),
    }
}

/// A fast 64-bit hash of key bytes, the same on every run and platform (little-endian words, a
/// multiply-xorshift round each, a SplitMix64 finish). Not keyed: not meant to resist inputs
/// crafted to collide.
pub fn key_hash(bytes: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    let round = |h: u64, word: u64| {
        let x = (h ^ word).wrapping_mul(MULTIPLIER);
        x ^ (x >> 29)
    };
    // The length keeps `ab` and `ab\0` (the same zero-padded last word) apart.
    let mut h = (bytes.len() as u64).wrapping_mul(MULTIPLIER) ^ 0x5851_f42d_4c95_7f2d;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = round(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = round(h, u64::from_le_bytes(word));
    }
    finalize(h)
}

/// SplitMix64's finalizer: every input bit moves every output bit.
fn finalize(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NS_PER_SEC;
    /// A packet time far from zero, as real ones are.
    const T0: u64 = 1_700_000_000 * SEC;

    fn request(now_ns: u64) -> Event {
        Event {
            now_ns,
            endpoint: 1,
            ..Event::default()
        }
    }

    fn relative_error(estimate: f64, truth: f64) -> f64 {
        (estimate - truth).abs() / truth
    }

    #[test]
    fn exp2_neg_matches_libm() {
        for i in 0..20_000 {
            let x = i as f64 * 0.0137;
            let want = (-x).exp2();
            let got = exp2_neg(x);
            assert!(
                (got - want).abs() <= 1e-13 * want.max(1e-300),
                "2^-{x}: {got} vs {want}"
            );
        }
        assert_eq!(exp2_neg(0.0), 1.0);
        assert_eq!(exp2_neg(5000.0), 0.0);
        assert_eq!(exp2_neg(f64::NAN), 0.0);
    }

    #[test]
    fn weighted_seconds_follows_its_closed_form_on_every_branch() {
        for scale in Scale::ALL {
            let h = scale.half_life_ns() as f64;
            for x in [1e-9, 1e-4, 0.0099, 0.0101, 0.5, 3.0, 39.0, 41.0, 500.0] {
                let age = (x / std::f64::consts::LN_2 * h) as u64;
                let exact = h / 1e9 / std::f64::consts::LN_2
                    * -(-(age as f64) / h * std::f64::consts::LN_2).exp_m1();
                let got = weighted_seconds(age, scale);
                assert!(
                    (got - exact).abs() <= exact * 1e-10,
                    "{scale:?} {x}: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn names_are_unique_and_all_is_in_discriminant_order() {
        assert_eq!(per_scale(|s| s as usize as f64), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(Scale::ALL.map(|s| s as usize), [0, 1, 2, 3]);
        let mut names = std::collections::HashSet::new();
        for (i, f) in EntityFeature::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
            assert!(names.insert(f.name()), "duplicate {}", f.name());
            assert!(f
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
        assert_eq!(EntityFeature::COUNT, EntityFeature::RateRatio as usize + 1);
        for (i, s) in Scale::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        let scales: Vec<_> = Scale::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(scales, ["10s", "1m", "10m", "1h"]);
        let kinds: Vec<_> = EntityKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["client_ip", "identity", "endpoint", "client_network"]
        );
    }

    #[test]
    fn damped_count_halves_every_half_life_and_matches_the_closed_form() {
        let h = Scale::M1.half_life_ns();
        let mut d = Damped::default();
        d.add(T0, 8.0, h);
        assert_eq!(d.value_at(T0, h), 8.0);
        assert!((d.value_at(T0 + h, h) - 4.0).abs() < 1e-12);
        assert!((d.value_at(T0 + 3 * h, h) - 1.0).abs() < 1e-12);

        let adds = [(0, 1.0), (7 * SEC, 2.5), (61 * SEC, 0.5), (200 * SEC, 3.0)];
        let mut d = Damped::default();
        for (t, amount) in adds {
            d.add(T0 + t, amount, h);
        }
        let now = T0 + 250 * SEC;
        let closed: f64 = adds
            .iter()
            .map(|&(t, a)| a * 0.5f64.powf((250 * SEC - t) as f64 / h as f64))
            .sum();
        assert!((d.value_at(now, h) - closed).abs() < 1e-12 * closed.max(1.0));
    }

    #[test]
    fn damped_count_reads_time_going_backwards_as_no_time() {
        let h = Scale::S10.half_life_ns();
        let mut d = Damped::default();
        d.add(T0, 1.0, h);
        d.add(T0 - 5_000_000, 1.0, h);
        assert_eq!(d.value_at(T0 - 10_000_000, h), 2.0);
        assert!((d.value_at(T0 + h, h) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn steady_rate_reads_ten_per_second_at_every_scale() {
        let mut state = EntityState::new(T0);
        let mut damped = [Damped::default(); 4];
        let step = SEC / 10;
        for i in 0..(3 * 3600 * 10) {
            let now = T0 + i * step;
            state.observe(&request(now));
            for (d, s) in damped.iter_mut().zip(Scale::ALL) {
                d.add(now, 1.0, s.half_life_ns());
            }
            if [600, 36_000, 3 * 36_000].contains(&(i + 1)) {
                let f = state.features(now);
                for rate in [
                    EntityFeature::Rate10s,
                    EntityFeature::Rate1m,
                    EntityFeature::Rate10m,
                    EntityFeature::Rate1h,
                ] {
                    assert!(
                        relative_error(f[rate], 10.0) < 0.02,
                        "{rate:?} after {i}: {f:?}"
                    );
                }
                assert!((f[EntityFeature::RateRatio] - 1.0).abs() < 0.02);
                // The shared-clock counts agree with independent damped counters.
                for (s, d) in Scale::ALL.iter().zip(&damped) {
                    let own = state.requests[*s as usize];
                    assert!(relative_error(own, d.value_at(now, s.half_life_ns())) < 1e-9);
                }
            }
        }
        // An hour of silence: the short scales forget; the hour's count halves while the
        // entity's age, over which it is a rate, grows from 3 h to 4 h.
        let end = T0 + (3 * 36_000 - 1) * step;
        let later = end + 3600 * SEC;
        let f = state.features(later);
        assert!(f[EntityFeature::Rate10s] < 1e-6);
        let hour = Scale::H1;
        let expected =
            state.features(end)[EntityFeature::Rate1h] * 0.5 * weighted_seconds(end - T0, hour)
                / weighted_seconds(later - T0, hour);
        assert!(relative_error(f[EntityFeature::Rate1h], expected) < 1e-9);
        assert!((4.0..5.0).contains(&expected), "{expected}");
    }

    #[test]
    fn rate_ratio_jumps_on_a_burst() {
        let mut state = EntityState::new(T0);
        let first = state.clone();
        state.observe(&request(T0));
        let fresh = state.features(T0)[EntityFeature::RateRatio];
        assert!((0.8..1.25).contains(&fresh), "{fresh}");
        assert_eq!(first.features(T0)[EntityFeature::RateRatio], 0.0);

        let mut now = T0;
        for _ in 0..7200 {
            now += SEC;
            state.observe(&request(now));
        }
        let steady = state.features(now)[EntityFeature::RateRatio];
        assert!((0.8..1.25).contains(&steady), "{steady}");
        for _ in 0..500 {
            now += SEC / 50;
            state.observe(&request(now));
        }
        let f = state.features(now);
        assert!(f[EntityFeature::RateRatio] > 10.0, "{f:?}");
        assert!(f[EntityFeature::Rate10s] > 20.0, "{f:?}");
        assert!(f[EntityFeature::Rate1h] < 1.5, "{f:?}");
    }

    #[test]
    fn distinct_is_within_fifteen_percent_for_a_thousand_values() {
        let mut sketch = Distinct::default();
        for i in 0..1000u64 {
            sketch.insert(T0, key_hash(&i.to_le_bytes()), Scale::M1);
        }
        let estimate = sketch.estimate(T0, Scale::M1);
        assert!(relative_error(estimate, 1000.0) < 0.15, "{estimate}");

        // Across independent sets the error averages about 0.8 standard errors (9 %).
        let trials = 40;
        let mut total_error = 0.0;
        for trial in 0..trials {
            let mut sketch = Distinct::default();
            for i in 0..1000u64 {
                sketch.insert(
                    T0,
                    key_hash(&[trial, i].map(u64::to_le_bytes).concat()),
                    Scale::H1,
                );
            }
            total_error += relative_error(sketch.estimate(T0, Scale::H1), 1000.0);
        }
        let mean_error = total_error / trials as f64;
        assert!(mean_error < 0.1, "{mean_error}");
    }

    /// The sums and zero counts kept on insert, recomputed from the registers.
    fn recomputed(sketch: &Distinct) -> (u32, u32, u8, u8) {
        let (mut sums, mut zeros) = ((0, 0), (0, 0));
        for (&c, &p) in sketch.current.iter().zip(&sketch.previous) {
            for shift in [0, 4] {
                let (current, previous) = ((c >> shift) & 0xf, (p >> shift) & 0xf);
                let union = current.max(previous);
                sums.0 += scaled_inverse_power(current);
                sums.1 += scaled_inverse_power(union);
                zeros.0 += u8::from(current == 0);
                zeros.1 += u8::from(union == 0);
            }
        }
        (sums.0, sums.1, zeros.0, zeros.1)
    }

    #[test]
    fn distinct_keeps_its_sums_exact_through_inserts_and_rotations() {
        let mut sketch = Distinct::default();
        let mut now = T0;
        for i in 0..5000u64 {
            // Windows of 10 s: steps of 0 to 12 s rotate by one, sometimes by two.
            now +=
                (key_hash(&i.to_be_bytes()) % 13) * SEC / 10 * (1 + u64::from(i % 97 == 0) * 100);
            sketch.insert(now, key_hash(&(i % 700).to_le_bytes()), Scale::S10);
            let kept = (
                sketch.current_sum,
                sketch.union_sum,
                sketch.current_zeros,
                sketch.union_zeros,
            );
            assert_eq!(kept, recomputed(&sketch), "after {i}");
        }
    }

    #[test]
    fn distinct_ignores_repeats_and_is_near_exact_when_small() {
        let mut sketch = Distinct::default();
        for _ in 0..100 {
            for i in 0..10u64 {
                sketch.insert(T0, i, Scale::M1);
            }
        }
        assert!((sketch.estimate(T0, Scale::M1) - 10.0).abs() < 1.0);
        assert_eq!(Distinct::default().estimate(T0, Scale::M1), 0.0);
    }

    #[test]
    fn distinct_slides_and_forgets() {
        let window = Scale::M1.half_life_ns();
        let start = (T0 / window) * window;
        let mut sketch = Distinct::default();
        for i in 0..200u64 {
            sketch.insert(
                start + i * (window / 200),
                key_hash(&i.to_le_bytes()),
                Scale::M1,
            );
        }
        let full = sketch.estimate(start + window - 1, Scale::M1);
        assert!(relative_error(full, 200.0) < 0.15, "{full}");
        // Halfway through the next window, half of the previous one is still covered.
        let half = sketch.estimate(start + window + window / 2, Scale::M1);
        assert!(relative_error(half, full / 2.0) < 0.01, "{half} {full}");
        assert_eq!(sketch.estimate(start + 2 * window, Scale::M1), 0.0);
        // The hour scale of the same values still has them.
        let mut hour = Distinct::default();
        for i in 0..200u64 {
            hour.insert(start + i * SEC, key_hash(&i.to_le_bytes()), Scale::H1);
        }
        assert!(hour.estimate(start + 10 * window, Scale::H1) > 100.0);
        assert_eq!(hour.estimate(start + 200 * window, Scale::H1), 0.0);
    }

    #[test]
    fn entity_counts_distinct_endpoints_and_objects_and_forgets_them() {
        let mut state = EntityState::new(T0);
        for i in 0..300u64 {
            state.observe(&Event {
                now_ns: T0 + i * SEC / 10,
                endpoint: i % 5,
                object: (i % 3 == 0).then_some(i),
                ..Event::default()
            });
        }
        let now = T0 + 30 * SEC;
        let f = state.features(now);
        assert!(
            (f[EntityFeature::DistinctEndpoints1h] - 5.0).abs() < 1.0,
            "{f:?}"
        );
        assert!(
            relative_error(f[EntityFeature::DistinctObjects1h], 100.0) < 0.15,
            "{f:?}"
        );
        let later = state.features(now + 10 * 60 * SEC);
        assert_eq!(later[EntityFeature::DistinctEndpoints1m], 0.0);
        assert_eq!(later[EntityFeature::DistinctObjects1m], 0.0);
        assert!(later[EntityFeature::DistinctObjects1h] > 50.0);
    }

    #[test]
    fn error_ratio_auth_failures_and_bytes() {
        let mut state = EntityState::new(T0);
        let mut now = T0;
        for i in 0..(30 * 60 * 10) {
            now = T0 + i * SEC / 10;
            state.observe(&Event {
                now_ns: now,
                error: i % 4 == 0,
                auth_failure: i % 10 == 0,
                bytes_out: 1000,
                ..Event::default()
            });
        }
        let f = state.features(now);
        assert!(
            (f[EntityFeature::ErrorRatio1m] - 0.25).abs() < 0.01,
            "{f:?}"
        );
        assert!(
            (f[EntityFeature::ErrorRatio1h] - 0.25).abs() < 0.01,
            "{f:?}"
        );
        assert!(
            relative_error(f[EntityFeature::AuthFailures1m], 1.0) < 0.02,
            "{f:?}"
        );
        assert!(
            relative_error(f[EntityFeature::BytesOut1m], 10_000.0) < 0.02,
            "{f:?}"
        );

        for _ in 0..(5 * 60 * 10) {
            now += SEC / 10;
            state.observe(&Event {
                now_ns: now,
                error: true,
                ..Event::default()
            });
        }
        let f = state.features(now);
        assert!(f[EntityFeature::ErrorRatio1m] > 0.95, "{f:?}");
        let hour = f[EntityFeature::ErrorRatio1h];
        assert!(hour > 0.3 && hour < 0.6, "{f:?}");
        assert!(f[EntityFeature::AuthFailures1m] < 0.05, "{f:?}");
    }

    #[test]
    fn a_shared_decay_memo_changes_nothing() {
        // Three tables updated by the same requests, one memo per request, against the same
        // tables updated without one: identical features, bit for bit.
        let mut shared: Vec<EntityTable> = (0..3)
            .map(|_| EntityTable::new(EntityKind::ClientIp, 8))
            .collect();
        let mut alone = shared.clone();
        let mut now = T0;
        for i in 0..2000u64 {
            now += (i * 7919) % 5_000_000_000;
            let e = Event {
                now_ns: now,
                endpoint: i % 3 + 1,
                error: i % 5 == 0,
                bytes_out: i,
                ..Event::default()
            };
            let mut memo = Decays::default();
            // Keys chosen so the tables' entities are sometimes last seen together, sometimes not.
            for (t, (a, b)) in shared.iter_mut().zip(alone.iter_mut()).enumerate() {
                let key = i % (t as u64 + 2);
                a.update_with(key, &e, &mut memo);
                b.update(key, &e);
                assert_eq!(a.features(key, now), b.features(key, now));
            }
        }
    }

    #[test]
    fn time_going_backwards_is_no_time() {
        let mut state = EntityState::new(T0);
        state.observe(&request(T0 + SEC));
        state.observe(&request(T0 + SEC - 3_000_000));
        assert_eq!(state.last_seen(), T0 + SEC);
        assert_eq!(state.first_seen(), T0);
        assert_eq!(state.requests[Scale::S10 as usize], 2.0);
        let f = state.features(T0);
        assert_eq!(f, state.features(T0 + SEC));
        assert!(f.iter().all(|(_, v)| v.is_finite() && v >= 0.0));
    }

    #[test]
    fn entity_state_size_is_as_documented() {
        assert_eq!(std::mem::size_of::<Distinct>(), 160);
        assert_eq!(std::mem::size_of::<EntityState>(), 720);
        assert_eq!(std::mem::size_of::<Link>(), 16);
    }

    #[test]
    fn table_is_bounded_and_counts_evictions_exactly() {
        let mut table = EntityTable::new(EntityKind::ClientIp, 100);
        for key in 0..1000u64 {
            table.observe(key, &request(T0 + key));
            assert!(table.len() <= 100);
        }
        assert_eq!(
            table.stats(),
            TableStats {
                entities: 100,
                inserted: 1000,
                evicted: 900
            }
        );
        assert!((900..1000).all(|key| table.get(key).is_some()));
        assert!((0..900).all(|key| table.get(key).is_none()));
        assert_eq!(table.kind(), EntityKind::ClientIp);
    }

    #[test]
    fn least_recently_seen_goes_first() {
        let mut table = EntityTable::new(EntityKind::Identity, 3);
        for key in [1, 2, 3] {
            table.observe(key, &request(T0 + key));
        }
        table.observe(1, &request(T0 + 10));
        table.observe(4, &request(T0 + 11));
        assert!(table.get(2).is_none());
        assert!([1, 3, 4].iter().all(|&k| table.get(k).is_some()));
        table.observe(3, &request(T0 + 12));
        table.observe(5, &request(T0 + 13));
        assert!(table.get(1).is_none());
        assert!([3, 4, 5].iter().all(|&k| table.get(k).is_some()));
        assert_eq!(table.stats().evicted, 2);
        let f = table.observe(3, &request(T0 + 14));
        assert_eq!(table.get(3).map(|s| s.requests[0].round()), Some(3.0));
        assert!(f[EntityFeature::Rate10s] > 0.0);
    }

    #[test]
    fn expire_drops_idle_entities_and_counts_them() {
        let mut table = EntityTable::new(EntityKind::Endpoint, 10);
        for key in 0..6u64 {
            table.observe(key, &request(T0 + key * 60 * SEC));
        }
        table.observe(0, &request(T0 + 6 * 60 * SEC));
        // Idle more than 3 min at minute 7: keys 1, 2, 3 (last seen at minutes 1..3).
        assert_eq!(table.expire(T0 + 7 * 60 * SEC, 3 * 60 * SEC), 3);
        assert_eq!(table.len(), 3);
        assert!([0, 4, 5].iter().all(|&k| table.get(k).is_some()));
        assert_eq!(table.stats().evicted, 3);
        assert_eq!(table.expire(T0 + 7 * 60 * SEC, 3 * 60 * SEC), 0);
        // Freed slots are reused.
        for key in 10..17u64 {
            table.observe(key, &request(T0 + 8 * 60 * SEC));
        }
        assert_eq!(table.len(), 10);
        assert_eq!(table.states.len(), 10);
        assert_eq!(table.links.len(), 10);
        assert_eq!(table.expire(T0 + 100 * 60 * SEC, 0), 10);
        assert!(table.is_empty());
        assert_eq!(table.stats().evicted, 13);
    }

    #[test]
    fn client_network_is_the_slash_24_or_slash_64() {
        let net = |s: &str| client_network(s.parse().unwrap()).to_string();
        assert_eq!(net("192.168.1.77"), "192.168.1.0");
        assert_eq!(net("10.0.0.255"), "10.0.0.0");
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(net("2001:db8:1:2::"), "2001:db8:1:2::");
        assert_eq!(net("::ffff:10.1.2.3"), "10.1.2.0");
    }

    #[test]
    fn key_hash_is_fixed_and_spreads() {
        // Pinned (and checked against an independent implementation): the hash must not change
        // with the platform or the run.
        assert_eq!(key_hash(b""), 13_441_156_890_354_882_375);
        assert_eq!(key_hash(b"10.0.0.1"), 7_914_226_687_797_975_783);
        assert_ne!(key_hash(b"ab"), key_hash(b"ab\0"));
        let hashes: std::collections::HashSet<_> = (0..10_000u32)
            .map(|i| key_hash(i.to_string().as_bytes()))
            .collect();
        assert_eq!(hashes.len(), 10_000);
    }

    fn arbitrary_events() -> impl proptest::strategy::Strategy<Value = Vec<Event>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            (
                -20_000_000i64..4_000_000_000_000,
                0u64..8,
                proptest::option::of(0u64..50),
                any::<bool>(),
                any::<bool>(),
                any::<u64>(),
            ),
            1..200,
        )
        .prop_map(|steps| {
            let mut now = T0;
            steps
                .into_iter()
                .map(|(step, endpoint, object, error, auth_failure, bytes_out)| {
                    // Mostly small steps, some backwards, a few of up to an hour.
                    let step = if step > 100_000_000 && step % 7 != 0 {
                        step % 100_000_000
                    } else {
                        step
                    };
                    now = now.saturating_add_signed(step);
                    Event {
                        now_ns: now,
                        endpoint,
                        object,
                        error,
                        auth_failure,
                        bytes_out,
                    }
                })
                .collect()
        })
    }

    proptest::proptest! {
        #[test]
        fn entity_features_are_finite_for_any_events(events in arbitrary_events()) {
            let mut state = EntityState::new(events[0].now_ns);
            for e in &events {
                state.observe(e);
                for now in [e.now_ns, e.now_ns.saturating_sub(5_000_000), e.now_ns + 3600 * SEC] {
                    let f = state.features(now);
                    for (feature, value) in f.iter() {
                        proptest::prop_assert!(value.is_finite() && value >= 0.0, "{:?} = {}", feature, value);
                    }
                    proptest::prop_assert!(f[EntityFeature::ErrorRatio1m] <= 1.0);
                    proptest::prop_assert!(f[EntityFeature::ErrorRatio1h] <= 1.0);
                }
            }
        }

        #[test]
        fn table_stays_bounded_and_consistent(
            events in arbitrary_events(),
            keys in proptest::collection::vec(0u64..20, 200),
            capacity in 1usize..8,
        ) {
            let mut table = EntityTable::new(EntityKind::ClientNetwork, capacity);
            for (e, &key) in events.iter().zip(&keys) {
                let f = table.observe(key, e);
                proptest::prop_assert!(f.iter().all(|(_, v)| v.is_finite() && v >= 0.0));
                proptest::prop_assert!(table.get(key).is_some());
                if key % 5 == 0 {
                    table.expire(e.now_ns, 50_000_000);
                }
                let stats = table.stats();
                proptest::prop_assert!(stats.entities <= capacity);
                proptest::prop_assert_eq!(stats.inserted - stats.evicted, stats.entities as u64);
            }
        }
    }
}
