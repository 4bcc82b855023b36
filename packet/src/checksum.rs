//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Partial sums are `u32` values already folded to at most 0xffff, so callers
//! can add a pseudo header and a few slices without overflow, then `finish`.
//! Sums of slices only add up correctly when every slice but the last has an
//! even length.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones'-complement sum of `data` as big-endian 16-bit words; an odd last byte
/// is padded with a zero byte. The result is folded to at most 0xffff.
pub fn sum(data: &[u8]) -> u32 {
    // 32-bit words into a u64 halve the loop count; 2^16 = 1 (mod 0xffff), so
    // folding afterwards gives the same sum as adding 16-bit words.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut rest = words.remainder();
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds the carries of a sum into 16 bits. Not complemented.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum field value for a sum: its folded ones' complement.
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// Sum of the IPv4 pseudo header (RFC 793, RFC 768); `len` is the length of
/// the upper-layer header and data.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let acc = u64::from(sum(&src.octets()))
        + u64::from(sum(&dst.octets()))
        + u64::from(protocol)
        + len as u64;
    fold64(acc)
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1); `len` is the
/// upper-layer packet length and `next_header` the upper-layer protocol.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let acc = u64::from(sum(&src.octets()))
        + u64::from(sum(&dst.octets()))
        + u64::from(next_header)
        + len as u64;
    fold64(acc)
}

/// The checksum after one 16-bit word of the covered data changes from `old`
/// to `new`, without reading the rest (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!checksum) + u32::from(!old) + u32::from(new))
}

/// As `update16` for an aligned 32-bit field such as an IPv4 address.
pub fn update32(checksum: u16, old: u32, new: u32) -> u16 {
    let (oh, ol) = ((old >> 16) as u16, old as u16);
    let (nh, nl) = ((new >> 16) as u16, new as u16);
    !fold(u32::from(!checksum) + u32::from(!oh) + u32::from(!ol) + u32::from(nh) + u32::from(nl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn large_input_does_not_overflow() {
        let data = vec![0xff; 1 << 20];
        assert_eq!(fold(sum(&data)), 0xffff);
    }

    #[test]
    fn pseudo_headers_match_a_manual_layout() {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
        let mut b = Vec::new();
        b.extend_from_slice(&s.octets());
        b.extend_from_slice(&d.octets());
        b.extend_from_slice(&[0, 6, 0, 40]);
        assert_eq!(fold(pseudo_header_v4(s, d, 6, 40)), fold(sum(&b)));

        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap());
        let mut b = Vec::new();
        b.extend_from_slice(&s.octets());
        b.extend_from_slice(&d.octets());
        b.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 58]);
        assert_eq!(fold(pseudo_header_v6(s, d, 58, 0x1_0004)), fold(sum(&b)));
    }

    /// A packet of `words` 16-bit words whose word 0 is nonzero, as every real
    /// header's is (an all-zero packet is the one case where RFC 1624 eqn. 3
    /// yields 0x0000 and a full computation 0xffff), with the checksum at word
    /// `ck` filled in.
    fn packet() -> impl Strategy<Value = (Vec<u8>, usize)> {
        (4usize..64)
            .prop_flat_map(|words| (proptest::collection::vec(any::<u8>(), words * 2), 1..words))
            .prop_map(|(mut data, ck)| {
                data[0] |= 0x40;
                data[ck * 2..ck * 2 + 2].fill(0);
                let c = finish(sum(&data));
                data[ck * 2..ck * 2 + 2].copy_from_slice(&c.to_be_bytes());
                (data, ck)
            })
    }

    fn recompute(data: &mut [u8], ck: usize) -> u16 {
        data[ck * 2..ck * 2 + 2].fill(0);
        finish(sum(data))
    }

    proptest! {
        #[test]
        fn update16_equals_recomputation((mut data, ck) in packet(), at in any::<prop::sample::Index>(), new in any::<u16>()) {
            let words = data.len() / 2;
            let w = at.index(words);
            prop_assume!(w != 0 && w != ck);
            let old_ck = u16::from_be_bytes([data[ck * 2], data[ck * 2 + 1]]);
            let old = u16::from_be_bytes([data[w * 2], data[w * 2 + 1]]);
            data[w * 2..w * 2 + 2].copy_from_slice(&new.to_be_bytes());
            let incremental = update16(old_ck, old, new);
            prop_assert_eq!(incremental, recompute(&mut data, ck));
        }

        #[test]
        fn update32_equals_recomputation((mut data, ck) in packet(), at in any::<prop::sample::Index>(), new in any::<u32>()) {
            let words = data.len() / 2;
            let w = at.index(words - 1);
            prop_assume!(w != 0 && w != ck && w + 1 != ck);
            let old_ck = u16::from_be_bytes([data[ck * 2], data[ck * 2 + 1]]);
            let old = u32::from_be_bytes([data[w * 2], data[w * 2 + 1], data[w * 2 + 2], data[w * 2 + 3]]);
            data[w * 2..w * 2 + 4].copy_from_slice(&new.to_be_bytes());
            let incremental = update32(old_ck, old, new);
            prop_assert_eq!(incremental, recompute(&mut data, ck));
        }

        #[test]
        fn verification_sums_to_ffff((data, _ck) in packet()) {
            prop_assert_eq!(fold(sum(&data)), 0xffff);
        }
    }
}
