//! The tuple hash: a folded multiply over the tuple's words, keyed by a
//! per-table random seed so that hosts cannot aim their flows at one
//! bucket chain without knowing it (Linux keys its hash the same way).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::Tuple;

const K: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xa076_1d64_78bd_642f;

#[derive(Clone, Copy)]
pub(crate) struct TupleHasher {
    seed: u64,
}

fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

fn addr_words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(v4) => (u64::from(u32::from(v4)), 0),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            ((x >> 64) as u64, x as u64)
        }
    }
}

impl TupleHasher {
    pub fn new() -> TupleHasher {
        TupleHasher {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }

    pub fn hash(&self, t: &Tuple) -> u64 {
        let (s0, s1) = addr_words(t.src);
        let (d0, d1) = addr_words(t.dst);
        let family = u64::from(t.src.is_ipv6()) << 40 | u64::from(t.dst.is_ipv6()) << 41;
        let ports = u64::from(t.protocol) << 32
            | u64::from(t.src_port) << 16
            | u64::from(t.dst_port)
            | family;
        let mut h = fold(self.seed ^ s0, K ^ d0);
        h = fold(h ^ s1, K2 ^ d1);
        h = fold(h ^ ports, K);
        // Final mix so both the low bits (bucket) and the top 16 bits
        // (the index's tag) depend on every input bit.
        fold(h, K2) ^ (h >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn distinct_ports_spread() {
        let h = TupleHasher::new();
        let mut low = HashSet::new();
        let mut top = HashSet::new();
        for p in 0..4096u16 {
            let t = Tuple {
                src: Ipv4Addr::new(10, 0, 0, 2).into(),
                dst: Ipv4Addr::new(10, 0, 0, 3).into(),
                protocol: 6,
                src_port: p,
                dst_port: 80,
            };
            let x = h.hash(&t);
            low.insert(x & 0xfff);
            top.insert(x >> 48);
        }
        // 4096 values into 4096 buckets: a fair hash fills about 63%.
        assert!(low.len() > 2300, "{}", low.len());
        // And into 65,536 tags: about 3,970 distinct.
        assert!(top.len() > 3900, "{}", top.len());
    }
}
