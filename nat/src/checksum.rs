//! Sums of field changes, applied to the checksums that cover the fields
//! (RFC 1624). Summing the changes first lets one edit feed several
//! checksums: an address feeds the IP header checksum, the transport
//! pseudo header and, inside an ICMP error's quote, the ICMP checksum.

use packet::checksum::fold;

/// The ones'-complement sum of `new - old` over the changed 16-bit words.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Delta(u32);

impl Delta {
    /// Records a 16-bit word changing. An unchanged word adds nothing, so
    /// an edit that changes nothing leaves every checksum byte for byte.
    pub(crate) fn add16(&mut self, old: u16, new: u16) {
        if old != new {
            self.0 = u32::from(fold(self.0 + u32::from(!old) + u32::from(new)));
        }
    }

    pub(crate) fn add32(&mut self, old: u32, new: u32) {
        self.add16((old >> 16) as u16, (new >> 16) as u16);
        self.add16(old as u16, new as u16);
    }

    pub(crate) fn add(&mut self, other: Delta) {
        self.0 = u32::from(fold(self.0 + other.0));
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The checksum field after the changes: HC' = ~(~HC + sum(~m + m')).
    pub(crate) fn apply(self, checksum: u16) -> u16 {
        if self.is_empty() {
            return checksum;
        }
        !fold(u32::from(!checksum) + self.0)
    }

    /// The same for a field holding a partial checksum (CHECKSUM_PARTIAL):
    /// the uncomplemented sum of the pseudo header, which the NIC or the
    /// kernel completes later (Linux `inet_proto_csum_replace4` with
    /// `pseudohdr`).
    pub(crate) fn apply_partial(self, partial: u16) -> u16 {
        if self.is_empty() {
            return partial;
        }
        fold(u32::from(partial) + self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::checksum::{update16, update32};

    #[test]
    fn matches_packet_updates() {
        for (c, old, new) in [
            (0x1234u16, 0xffffu16, 0u16),
            (0, 1, 2),
            (0xfffe, 0x8000, 0x7fff),
        ] {
            let mut d = Delta::default();
            d.add16(old, new);
            assert_eq!(d.apply(c), update16(c, old, new));
        }
        let mut d = Delta::default();
        d.add32(0x0a00_0002, 0xc000_0201);
        assert_eq!(d.apply(0xbeef), update32(0xbeef, 0x0a00_0002, 0xc000_0201));
    }

    #[test]
    fn unchanged_words_change_nothing() {
        let mut d = Delta::default();
        d.add16(7, 7);
        d.add32(9, 9);
        assert!(d.is_empty());
        assert_eq!(d.apply(0xffff), 0xffff);
        assert_eq!(d.apply_partial(0xffff), 0xffff);
    }

    #[test]
    fn partial_moves_opposite_to_full() {
        // A full checksum is the complement of the sum; a partial one is
        // the sum itself, so the same change moves them in step, inverted.
        let mut d = Delta::default();
        d.add32(0x0a00_0002, 0xc000_0201);
        let sum = 0x4321u16;
        assert_eq!(d.apply_partial(sum), !d.apply(!sum));
    }
}
