//! The hash index from a tuple to where it is held: a 4-byte value (slot
//! << 1 | direction) that the table resolves to its slab entry.
//!
//! **Layout.** Open addressing over buckets of one cache line, each with
//! ten values and sixteen bits of each value's hash beside it. A probe
//! reads one line per bucket and goes to the slab only when those bits
//! agree (a stray agreement costs one slab read in about 6,500 probes of a
//! full bucket), so a lookup that misses reads one line, and one that hits
//! reads two: its bucket and its entry. A general-purpose table keeps its
//! tags and its values in two arrays, and reads both.
//!
//! **Collisions.** A value goes in the first bucket, from its home on,
//! with a free place. Every bucket counts the values that passed it to
//! get there (F14's overflow counts), so a lookup stops at the first
//! bucket that no value passed, and removing a value leaves no tombstone:
//! it takes its count back from the buckets it passed.
//!
//! **Size.** At most five eighths of the places are used; beyond that the
//! bucket count doubles and every value is placed again from its hash,
//! which the caller recomputes from the entry (values store no hash). The
//! counts are why the limit is low: under churn (entries evicted and new
//! ones confirmed) they outlive the crowding that set them. A lookup that
//! misses read 1.2 buckets on average at five eighths, 1.5 at seven
//! tenths and 5.5 at eight tenths in a simulation of that churn.

/// Values in one bucket: ten with their tags fill a cache line.
const WIDTH: usize = 10;
/// A free place's value; no slot index packs to it (`MAX_SLOTS`).
const EMPTY: u32 = u32::MAX;
/// Buckets in the first allocation.
const MIN_BUCKETS: usize = 4;

#[derive(Clone)]
#[repr(C, align(64))]
struct Bucket {
    /// The top sixteen bits of each value's hash.
    tags: [u16; WIDTH],
    /// Values placed beyond this bucket whose home is at or before it.
    /// Saturates, and then stays: lookups only probe further for it.
    passed: u16,
    vals: [u32; WIDTH],
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

const FREE: Bucket = Bucket {
    tags: [0; WIDTH],
    passed: 0,
    vals: [EMPTY; WIDTH],
};

impl Bucket {
    /// Places whose tag is `tag`, as bits.
    fn matching(&self, tag: u16) -> u16 {
        let mut m = 0;
        for (i, &t) in self.tags.iter().enumerate() {
            m |= u16::from(t == tag) << i;
        }
        m
    }

    fn place_of(&self, v: u32) -> Option<usize> {
        self.vals.iter().position(|&x| x == v)
    }
}

fn tag(hash: u64) -> u16 {
    (hash >> 48) as u16
}

/// The buckets, of `n`, probed for `hash`: from its home on, wrapping,
/// each once at most.
fn probe(n: usize, hash: u64) -> impl Iterator<Item = usize> {
    let home = hash as usize & n.wrapping_sub(1);
    (0..n).map(move |i| (home + i) & (n - 1))
}

#[derive(Clone)]
pub(crate) struct Index {
    /// A power of two of them, or none before the first insert.
    buckets: Vec<Bucket>,
    len: usize,
}

impl Index {
    pub fn new() -> Index {
        Index {
            buckets: Vec::new(),
            len: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The value stored under `hash` for which `eq` holds.
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag(hash);
        for b in probe(self.buckets.len(), hash) {
            let bucket = &self.buckets[b];
            let mut m = bucket.matching(tag);
            while m != 0 {
                let v = bucket.vals[m.trailing_zeros() as usize];
                if v != EMPTY && eq(v) {
                    return Some(v);
                }
                m &= m - 1;
            }
            if bucket.passed == 0 {
                return None;
            }
        }
        None
    }

    /// Stores `v` under `hash`; the caller knows it is not there yet.
    /// `rehash` gives a stored value's hash when the index grows.
    pub fn insert_unique(&mut self, hash: u64, v: u32, rehash: impl Fn(u32) -> u64) {
        if self.len >= self.buckets.len() * WIDTH / 8 * 5 {
            self.grow(rehash);
        }
        self.place(hash, v);
        self.len += 1;
    }

    /// Puts `v` in the first free place from its home, counting it in the
    /// buckets it passes. The load limit leaves a free place to find.
    fn place(&mut self, hash: u64, v: u32) {
        let n = self.buckets.len();
        let mut b = hash as usize & (n - 1);
        loop {
            let bucket = &mut self.buckets[b];
            if let Some(i) = bucket.place_of(EMPTY) {
                bucket.tags[i] = tag(hash);
                bucket.vals[i] = v;
                return;
            }
            bucket.passed = bucket.passed.saturating_add(1);
            b = (b + 1) & (n - 1);
        }
    }

    fn grow(&mut self, rehash: impl Fn(u32) -> u64) {
        let n = (self.buckets.len() * 2).max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, vec![FREE; n]);
        for v in old.iter().flat_map(|b| b.vals).filter(|&v| v != EMPTY) {
            self.place(rehash(v), v);
        }
    }

    /// Removes `v`, stored under `hash`; false if it is not there.
    pub fn remove(&mut self, hash: u64, v: u32) -> bool {
        let Some((b, i)) = self.locate(hash, v) else {
            return false;
        };
        self.buckets[b].vals[i] = EMPTY;
        self.buckets[b].tags[i] = 0;
        // Give back the counts it took on its way from home.
        for p in probe(self.buckets.len(), hash).take_while(|&p| p != b) {
            let c = &mut self.buckets[p].passed;
            if *c != u16::MAX {
                *c -= 1;
            }
        }
        self.len -= 1;
        true
    }

    /// The bucket and place of `v`, stored under `hash`.
    fn locate(&self, hash: u64, v: u32) -> Option<(usize, usize)> {
        for b in probe(self.buckets.len(), hash) {
            let bucket = &self.buckets[b];
            if let Some(i) = bucket.place_of(v) {
                return Some((b, i));
            }
            if bucket.passed == 0 {
                return None;
            }
        }
        None
    }

    /// Forgets every value, keeping the buckets.
    pub fn clear(&mut self) {
        self.buckets.fill(FREE);
        self.len = 0;
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    /// Checks every count against the values' hashes (from `hash_of`).
    #[cfg(test)]
    pub(crate) fn check(&self, hash_of: impl Fn(u32) -> u64) {
        let n = self.buckets.len();
        let mut passed = vec![0u32; n];
        let mut len = 0;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (&v, &t) in bucket.vals.iter().zip(&bucket.tags) {
                if v == EMPTY {
                    continue;
                }
                len += 1;
                let hash = hash_of(v);
                assert_eq!(t, tag(hash), "value {v}'s tag");
                for p in probe(n, hash).take_while(|&p| p != b) {
                    passed[p] += 1;
                }
            }
        }
        assert_eq!(len, self.len);
        for (bucket, want) in self.buckets.iter().zip(passed) {
            assert_eq!(u32::from(bucket.passed), want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Find(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few values, so that removals and finds hit often.
        prop_oneof![
            (0u32..200).prop_map(Op::Insert),
            (0u32..200).prop_map(Op::Remove),
            (0u32..200).prop_map(Op::Find),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The index agrees with a map under any order of operations,
        /// with hashes crowded into few homes and tags (`spread` bits of
        /// each) so that values pass full buckets and tags collide.
        #[test]
        fn agrees_with_a_map(
            ops in proptest::collection::vec(op(), 1..400),
            seed: u64,
            spread in 1u32..8,
        ) {
            let mask = (1u64 << spread) - 1;
            let hash_of = |v: u32| {
                let h = (u64::from(v) ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                (h & mask) | ((h >> 32 & mask) << 48)
            };
            let mut index = Index::new();
            let mut model: HashMap<u32, ()> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(v) if !model.contains_key(&v) => {
                        index.insert_unique(hash_of(v), v, hash_of);
                        model.insert(v, ());
                    }
                    Op::Insert(_) => {}
                    Op::Remove(v) => {
                        prop_assert_eq!(index.remove(hash_of(v), v), model.remove(&v).is_some());
                    }
                    Op::Find(v) => {
                        let found = index.find(hash_of(v), |x| x == v);
                        prop_assert_eq!(found, model.contains_key(&v).then_some(v));
                    }
                }
                index.check(hash_of);
            }
            for &v in model.keys() {
                prop_assert_eq!(index.find(hash_of(v), |x| x == v), Some(v));
            }
            index.clear();
            prop_assert_eq!(index.len(), 0);
            prop_assert_eq!(index.find(hash_of(1), |_| true), None);
        }
    }

    #[test]
    fn an_empty_index_finds_and_removes_nothing() {
        let mut index = Index::new();
        assert_eq!(index.find(7, |_| true), None);
        assert!(!index.remove(7, 1));
        assert_eq!(index.heap_bytes(), 0);
    }

    #[test]
    fn grows_past_five_eighths_of_its_places() {
        let mut index = Index::new();
        let hash_of = |v: u32| u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for v in 0..25 {
            index.insert_unique(hash_of(v), v, hash_of);
        }
        // Four buckets, forty places: twenty-five is the most they take.
        assert_eq!(index.heap_bytes(), 4 * 64);
        index.insert_unique(hash_of(25), 25, hash_of);
        assert_eq!(index.heap_bytes(), 8 * 64);
        index.check(hash_of);
        for v in 0..26 {
            assert_eq!(index.find(hash_of(v), |x| x == v), Some(v));
        }
    }
}
