//! Neighbor Discovery (RFC 4861) solicitations and advertisements, read far
//! enough to see whom they speak for: the target address and the link-layer
//! address options. Also the link-local address a host derives from its MAC
//! (modified EUI-64, RFC 4291 appendix A), which is how Linux addresses an
//! interface unless told otherwise.

use std::net::Ipv6Addr;

use crate::error::{Error, ErrorKind, Layer, Result};
use crate::icmpv6;
use crate::MacAddr;

/// Option types.
pub mod option {
    pub const SOURCE_LINK_ADDR: u8 = 1;
    pub const TARGET_LINK_ADDR: u8 = 2;
}

mod field {
    use core::ops::Range;
    pub const TARGET: Range<usize> = 8..24;
}

/// The ICMPv6 header, 4 reserved or flag bytes, and the target address.
pub const HEADER_LEN: usize = field::TARGET.end;

/// A view of a Neighbor Solicitation or Advertisement from its ICMPv6 header
/// on; the buffer ends where the IPv6 payload does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborMessage<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborMessage<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        NeighborMessage { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let m = Self::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Icmpv6, HEADER_LEN, len));
        }
        Ok(())
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn is_advert(&self) -> bool {
        self.msg_type() == icmpv6::msg::NEIGHBOR_ADVERT
    }

    pub fn target(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::TARGET]);
        Ipv6Addr::from(a)
    }

    /// The options as `(type, body)`, the body being what follows the type
    /// and length bytes. An option of length 0 or running past the end
    /// yields one error and ends the iteration (RFC 4861 4.6: such a
    /// message is to be discarded).
    pub fn options(&self) -> Options<'_> {
        Options {
            bytes: &self.buffer.as_ref()[HEADER_LEN..],
            offset: 0,
        }
    }
}

pub struct Options<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.offset..).filter(|r| !r.is_empty())?;
        let len = rest.get(1).map_or(0, |&l| usize::from(l) * 8);
        if len == 0 || len > rest.len() {
            let at = HEADER_LEN + self.offset;
            self.offset = self.bytes.len();
            let what = ErrorKind::Malformed("neighbor discovery option length");
            return Some(Err(Error::new(Layer::Icmpv6, what).with_offset(at)));
        }
        self.offset += len;
        Some(Ok((rest[0], &rest[2..len])))
    }
}

/// fe80::/64 with the modified EUI-64 interface identifier of `mac`.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The MAC whose modified EUI-64 link-local address `addr` is, if it is one.
pub fn link_local_mac(addr: Ipv6Addr) -> Option<MacAddr> {
    let a = addr.octets();
    let mac = MacAddr([a[8] ^ 0x02, a[9], a[10], a[13], a[14], a[15]]);
    (link_local(mac) == addr).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ICMPV6_NEIGHBOR_SOLICIT;

    #[test]
    fn solicitation_target_and_source_link_address() {
        let m = NeighborMessage::new_checked(&ICMPV6_NEIGHBOR_SOLICIT[54..]).unwrap();
        assert!(!m.is_advert());
        assert_eq!(m.target(), "fd00::3".parse::<Ipv6Addr>().unwrap());
        let opts: Vec<_> = m.options().collect();
        assert_eq!(
            opts,
            [Ok((
                option::SOURCE_LINK_ADDR,
                &[0x02, 0x42, 0x0a, 0, 0, 2][..]
            ))]
        );
        assert_eq!(
            MacAddr::from_slice(opts[0].unwrap().1),
            Some(MacAddr([0x02, 0x42, 0x0a, 0, 0, 2]))
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = &ICMPV6_NEIGHBOR_SOLICIT[54..];
        for len in 0..full.len() {
            let Ok(m) = NeighborMessage::new_checked(&full[..len]) else {
                assert!(len < HEADER_LEN);
                continue;
            };
            let opts: Vec<_> = m.options().collect();
            match len {
                HEADER_LEN => assert!(opts.is_empty()),
                _ => assert!(matches!(opts[..], [Err(_)]), "{len}: {opts:?}"),
            }
        }
    }

    #[test]
    fn zero_length_option_ends_the_walk_with_an_error() {
        let mut b = ICMPV6_NEIGHBOR_SOLICIT[54..].to_vec();
        b[HEADER_LEN + 1] = 0;
        let m = NeighborMessage::new_checked(&b[..]).unwrap();
        let opts: Vec<_> = m.options().collect();
        assert_eq!(opts.len(), 1);
        assert_eq!(
            opts[0].unwrap_err(),
            Error::new(
                Layer::Icmpv6,
                ErrorKind::Malformed("neighbor discovery option length")
            )
            .with_offset(HEADER_LEN)
        );
    }

    #[test]
    fn eui64_link_local_round_trip() {
        let mac = MacAddr([0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02]);
        let ll = link_local(mac);
        assert_eq!(ll, "fe80::42:aff:fe0a:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(link_local_mac(ll), Some(mac));
        assert_eq!(link_local_mac("fe80::1".parse().unwrap()), None);
        assert_eq!(link_local_mac("fd00::42:aff:fe0a:2".parse().unwrap()), None);
    }
}
