//! A bounded map from a 64-bit key to per-entity state, evicting by CLOCK (second chance) in
//! O(1) amortised: the table never holds more than its capacity, and counts what it evicted.
//! Deterministic: eviction order depends only on the sequence of calls.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

/// Keys are already hashes: pass them through.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Keys come from keyed or SipHash-quality hashes; mix once more so low bits spread.
        self.0 = (n ^ (n >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
}

type Map<V> = HashMap<u64, Slot<V>, BuildHasherDefault<KeyHasher>>;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Slot<V> {
    value: V,
    referenced: bool,
}

/// At most `capacity` entries; a full table evicts an entry not touched since the clock hand
/// last passed it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Table<V> {
    capacity: usize,
    map: Map<V>,
    clock: VecDeque<u64>,
    evicted: u64,
}

impl<V> Table<V> {
    pub fn new(capacity: usize) -> Self {
        Table {
            capacity: capacity.max(1),
            map: Map::default(),
            clock: VecDeque::new(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.map.get(&key).map(|s| &s.value)
    }

    /// The entry of `key`, made with `make` (evicting another when full).
    /// A new entry starts unreferenced, so one-off keys go before ones used again. One hash
    /// lookup when the key is there or the table has room.
    pub fn entry(&mut self, key: u64, make: impl FnOnce() -> V) -> &mut V {
        use std::collections::hash_map::Entry;
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.evict_one();
        }
        match self.map.entry(key) {
            Entry::Occupied(o) => {
                let slot = o.into_mut();
                slot.referenced = true;
                &mut slot.value
            }
            Entry::Vacant(v) => {
                self.clock.push_back(key);
                &mut v
                    .insert(Slot {
                        value: make(),
                        referenced: false,
                    })
                    .value
            }
        }
    }

    /// Removes entries for which `keep` is false (an idle sweep); O(len).
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.map.retain(|_, s| keep(&s.value));
        let map = &self.map;
        self.clock.retain(|k| map.contains_key(k));
    }

    /// Changes every entry in place (no reordering, no eviction).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut V)) {
        for slot in self.map.values_mut() {
            f(&mut slot.value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.clock
            .iter()
            .filter_map(|k| self.map.get(k).map(|s| (*k, &s.value)))
    }

    fn evict_one(&mut self) {
        // Every entry gets one second chance: at most two turns of the clock.
        for _ in 0..self.clock.len() * 2 + 1 {
            let Some(key) = self.clock.pop_front() else {
                return;
            };
            match self.map.get_mut(&key) {
                Some(slot) if slot.referenced => {
                    slot.referenced = false;
                    self.clock.push_back(key);
                }
                Some(_) => {
                    self.map.remove(&key);
                    self.evicted += 1;
                    return;
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_capacity_and_counts_evictions() {
        let mut t = Table::new(8);
        for k in 0..100u64 {
            *t.entry(k, || 0u32) += 1;
            assert!(t.len() <= 8);
        }
        assert_eq!(t.len(), 8);
        assert_eq!(t.evicted(), 92);
    }

    #[test]
    fn a_busy_key_survives_a_scan_of_one_off_keys() {
        let mut t = Table::new(4);
        for k in 100..1000u64 {
            *t.entry(1, || 0u32) += 1;
            t.entry(k, || 0);
        }
        assert_eq!(t.get(1).copied(), Some(900));
    }
}
