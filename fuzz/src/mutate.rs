//! Mutations for the stable runner, in the manner of libFuzzer's without
//! its coverage feedback: bit flips, interesting values, inserted and
//! removed ranges, crossover with another corpus input, dictionary tokens.

/// xorshift64*: fast, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            n => (self.next_u64() % n as u64) as usize,
        }
    }
}

const BYTES: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x45, 0x4f, 0x60, 0x0f];
const WORDS: [u16; 14] = [
    0, 1, 0xffff, 0x7fff, 0x8000, 0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x2000, 0x1fff, 14, 20,
];

/// The longest input the runner makes: more than a GSO super-frame.
pub const MAX_LEN: usize = 70_000;

/// Applies one to eight mutations to `data`.
pub fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], dict: &[&str]) {
    for _ in 0..1 + rng.below(8) {
        one(data, rng, other, dict);
    }
    data.truncate(MAX_LEN);
}

fn one(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], dict: &[&str]) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(10) {
        0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => data[at.min(len - 1)] = BYTES[rng.below(BYTES.len())],
        2 if len > 1 => {
            let w = WORDS[rng.below(WORDS.len())];
            let w = match rng.below(3) {
                0 => w,
                1 => (len as u16)
                    .wrapping_add(rng.below(9) as u16)
                    .wrapping_sub(4),
                _ => w.swap_bytes(),
            };
            let i = at.min(len - 2);
            data[i..i + 2].copy_from_slice(&w.to_be_bytes());
        }
        3 => {
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let end = (at + 1 + rng.below(32)).min(len);
            data.drain(at.min(len - 1)..end);
        }
        5 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let copy = data[start..end].to_vec();
            data.splice(at..at, copy);
        }
        6 => data.truncate(at),
        7 if !other.is_empty() => {
            let start = rng.below(other.len());
            let end = (start + 1 + rng.below(256)).min(other.len());
            data.splice(at..at, other[start..end].iter().copied());
        }
        8 if !dict.is_empty() => {
            let token = dict[rng.below(dict.len())].as_bytes();
            data.splice(at..at, token.iter().copied());
        }
        _ if len > 0 => {
            let i = at.min(len - 1);
            data[i] = rng.next_u64() as u8;
        }
        _ => data.push(rng.next_u64() as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_bounded_and_change_something() {
        let mut rng = Rng::new(7);
        let seed = vec![0x45u8; 100];
        let mut changed = 0;
        for _ in 0..10_000 {
            let mut d = seed.clone();
            mutate(&mut d, &mut rng, b"other input", &["TOKEN"]);
            assert!(d.len() <= MAX_LEN);
            changed += usize::from(d != seed);
        }
        assert!(changed > 9_000, "{changed}");
    }
}
