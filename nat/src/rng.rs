//! The only source of randomness NAT uses, owned and seeded by the caller
//! so that a run replays exactly (tests, `vswitch trace`).

/// splitmix64: small, fast and good enough to spread port offsets; not
/// cryptographic, so an observer who sees many chosen ports could predict
/// the next (seed it from the OS at startup to keep that hard).
#[derive(Clone, Debug)]
pub struct NatRng {
    state: u64,
    /// Keys the `--random` hash, so offsets differ between switches.
    secret: u64,
}

impl NatRng {
    pub fn new(seed: u64) -> NatRng {
        let mut rng = NatRng {
            state: seed,
            secret: 0,
        };
        rng.secret = rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    pub(crate) fn next_u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    /// A hash of `words` under this generator's secret, stable for its life.
    pub(crate) fn keyed(&self, words: &[u32]) -> u32 {
        (hash(self.secret, words) >> 32) as u32
    }
}

/// An unkeyed hash, for choices that must not change across restarts
/// (which address of a range a client gets, as Linux's jhash with no
/// secret).
pub(crate) fn hash(seed: u64, words: &[u32]) -> u64 {
    words
        .iter()
        .fold(mix(seed), |acc, &w| mix(acc ^ u64::from(w)))
}

/// The splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (NatRng::new(7), NatRng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(NatRng::new(7).next_u64(), NatRng::new(8).next_u64());
    }

    #[test]
    fn keyed_hash_depends_on_seed_and_input() {
        let (a, b) = (NatRng::new(1), NatRng::new(2));
        assert_eq!(a.keyed(&[1, 2]), a.keyed(&[1, 2]));
        assert_ne!(a.keyed(&[1, 2]), a.keyed(&[2, 1]));
        assert_ne!(a.keyed(&[1, 2]), b.keyed(&[1, 2]));
    }
}
