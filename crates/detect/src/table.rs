//! A bounded map from a 64-bit key to per-entity state, evicting by CLOCK (second chance) in
//! O(1) amortised: the table never holds more than its capacity, and counts what it evicted.
//! Deterministic: eviction order depends only on the sequence of calls.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use features::chunked::Chunked;
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
/// last passed it. Entries live in chunks, found through a key → position index, so growing
/// the table never moves them (entries are hundreds of bytes; a map holding them inline copies
/// them all at each doubling).
#[derive(Clone, Debug)]
pub struct Table<V> {
    capacity: usize,
    index: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    entries: Chunked<(u64, Slot<V>)>,
    clock: VecDeque<u64>,
    evicted: u64,
}

impl<V> Table<V> {
    pub fn new(capacity: usize) -> Self {
        Table {
            capacity: capacity.clamp(1, u32::MAX as usize),
            index: HashMap::default(),
            entries: Chunked::default(),
            clock: VecDeque::new(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.index
            .get(&key)
            .map(|&i| &self.entries[i as usize].1.value)
    }

    /// The entry of `key`, made with `make` (evicting another when full).
    /// A new entry starts unreferenced, so one-off keys go before ones used again. One hash
    /// lookup when the key is there or the table has room.
    pub fn entry(&mut self, key: u64, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.index.get(&key) {
            Some(&i) => {
                let slot = &mut self.entries[i as usize].1;
                slot.referenced = true;
                return &mut slot.value;
            }
            None => {
                if self.index.len() >= self.capacity {
                    self.evict_one();
                }
                self.entries.push((
                    key,
                    Slot {
                        value: make(),
                        referenced: false,
                    },
                ));
                self.entries.len() - 1
            }
        };
        self.index.insert(key, at as u32);
        self.clock.push_back(key);
        &mut self.entries[at].1.value
    }

    /// Removes the entry at position `i`, moving the last one into its place.
    fn remove_at(&mut self, i: usize) {
        if let Some((key, _)) = self.entries.swap_remove(i) {
            self.index.remove(&key);
            if i < self.entries.len() {
                let moved = self.entries[i].0;
                self.index.insert(moved, i as u32);
            }
        }
    }

    /// Removes entries for which `keep` is false (an idle sweep); O(len).
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            if keep(&self.entries[i].1.value) {
                i += 1;
            } else {
                self.remove_at(i);
            }
        }
        let index = &self.index;
        self.clock.retain(|k| index.contains_key(k));
    }

    /// Changes every entry in place (no reordering, no eviction).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut V)) {
        for (_, slot) in self.entries.iter_mut() {
            f(&mut slot.value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.clock.iter().filter_map(|k| {
            self.index
                .get(k)
                .map(|&i| (*k, &self.entries[i as usize].1.value))
        })
    }

    fn evict_one(&mut self) {
        // Every entry gets one second chance: at most two turns of the clock.
        for _ in 0..self.clock.len() * 2 + 1 {
            let Some(key) = self.clock.pop_front() else {
                return;
            };
            match self.index.get(&key) {
                Some(&i) if self.entries[i as usize].1.referenced => {
                    self.entries[i as usize].1.referenced = false;
                    self.clock.push_back(key);
                }
                Some(&i) => {
                    self.remove_at(i as usize);
                    self.evicted += 1;
                    return;
                }
                None => {}
            }
        }
    }
}

/// What a table was written as before its entries moved into chunks (snapshots stay readable
/// both ways): the map from key to entry, the clock, the counts.
#[derive(Serialize)]
#[serde(rename = "Table")]
struct WrittenRef<'a, V> {
    capacity: usize,
    map: MapRef<'a, V>,
    clock: &'a VecDeque<u64>,
    evicted: u64,
}

struct MapRef<'a, V>(&'a Table<V>);

impl<V: Serialize> Serialize for MapRef<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.entries.iter().map(|(k, slot)| (k, slot)))
    }
}

#[derive(Deserialize)]
#[serde(rename = "Table")]
struct Written<V> {
    capacity: usize,
    map: Map<V>,
    clock: VecDeque<u64>,
    evicted: u64,
}

impl<V: Serialize> Serialize for Table<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WrittenRef {
            capacity: self.capacity,
            map: MapRef(self),
            clock: &self.clock,
            evicted: self.evicted,
        }
        .serialize(s)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Table<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Written::<V>::deserialize(d)?;
        let mut t = Table::new(w.capacity);
        t.evicted = w.evicted;
        // Entries in clock order (the order they were made in, give or take second chances),
        // then any the clock lost track of.
        let mut map = w.map;
        for key in w.clock {
            if let Some(slot) = map.remove(&key) {
                t.index.insert(key, t.entries.len() as u32);
                t.entries.push((key, slot));
                t.clock.push_back(key);
            }
        }
        let mut rest: Vec<_> = map.into_iter().collect();
        rest.sort_unstable_by_key(|(k, _)| *k);
        for (key, slot) in rest {
            t.index.insert(key, t.entries.len() as u32);
            t.entries.push((key, slot));
            t.clock.push_back(key);
        }
        Ok(t)
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
    fn written_as_a_map_and_read_back_it_evicts_as_before() {
        let mut t = Table::new(6);
        for k in 0..9u64 {
            *t.entry(k, || 0u32) += k as u32;
        }
        *t.entry(5, || 0) += 100;
        t.retain(|&v| v != 4);
        let text = serde_json::to_string(&t).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let map = v["map"].as_object().unwrap();
        assert_eq!(map.len(), t.len());
        assert_eq!(
            map["5"],
            serde_json::json!({"value": 105, "referenced": true})
        );
        assert_eq!(v["capacity"], 6);
        assert_eq!(v["evicted"], t.evicted());
        let mut back: Table<u32> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            t.iter().collect::<Vec<_>>()
        );
        for k in 100..104u64 {
            t.entry(k, || 1);
            back.entry(k, || 1);
            assert_eq!(
                back.iter().collect::<Vec<_>>(),
                t.iter().collect::<Vec<_>>()
            );
        }
        assert_eq!(back.evicted(), t.evicted());
        assert_eq!(
            back.get(5),
            Some(&105),
            "the referenced entry had its second chance"
        );
    }

    #[test]
    fn retain_and_for_each_keep_the_index_true() {
        let mut t = Table::new(2000);
        for k in 0..1500u64 {
            t.entry(k, || k);
        }
        t.retain(|&v| v % 3 == 0);
        assert_eq!(t.len(), 500);
        t.for_each_mut(|v| *v += 1);
        for k in 0..1500u64 {
            assert_eq!(t.get(k).copied(), (k % 3 == 0).then_some(k + 1), "{k}");
        }
        assert_eq!(t.iter().count(), 500);
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
