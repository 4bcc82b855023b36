//! IPv4 headers (RFC 791).
//!
//! Lengths and offsets in bytes are `usize`; other fields keep their wire
//! width.

use std::net::Ipv4Addr;

use crate::be;
use crate::checksum;
use crate::error::{Error, ErrorKind, Layer, Result};

/// IP protocol numbers, shared by the IPv4 protocol field and the IPv6 next
/// header.
pub mod protocol {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;

    /// Lowercase name for traces, `None` for numbers without one here.
    pub fn name(p: u8) -> Option<&'static str> {
        Some(match p {
            ICMP => "icmp",
            IGMP => "igmp",
            TCP => "tcp",
            UDP => "udp",
            GRE => "gre",
            ESP => "esp",
            AH => "ah",
            ICMPV6 => "icmpv6",
            SCTP => "sctp",
            _ => return None,
        })
    }
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// The largest datagram the total length field can describe.
pub const MAX_DATAGRAM: usize = 65_535;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. After `check_len`, the header (with options)
/// and the `total_len` bytes it claims lie within the buffer; bytes past
/// `total_len`, such as Ethernet padding, are outside `payload()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Ipv4, HEADER_LEN, len));
        }
        if self.version() != 4 {
            return Err(Error::new(
                Layer::Ipv4,
                ErrorKind::BadVersion(self.version()),
            ));
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::new(Layer::Ipv4, ErrorKind::BadHeaderLen(header_len)));
        }
        let total_len = self.total_len();
        if total_len < header_len || total_len > len {
            return Err(Error::new(
                Layer::Ipv4,
                ErrorKind::BadTotalLen {
                    claimed: total_len,
                    available: len,
                },
            ));
        }
        // A fragment that would end past the largest datagram (the "ping
        // of death") reassembles into nothing valid anywhere.
        let end = self.frag_offset() + total_len;
        if end > MAX_DATAGRAM {
            return Err(Error::new(
                Layer::Ipv4,
                ErrorKind::BadTotalLen {
                    claimed: end,
                    available: MAX_DATAGRAM,
                },
            ));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Length of header and payload in bytes.
    pub fn total_len(&self) -> usize {
        usize::from(be::u16_at(self.buffer.as_ref(), field::LENGTH))
    }

    pub fn ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        be::u16_at(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(be::u16_at(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) * 8
    }

    /// Part of a fragmented datagram: MF set or a nonzero offset.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }

    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The bytes between the header and `total_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header())) == 0xffff
    }
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TTL alone; the checksum is left for the caller.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    pub fn set_checksum(&mut self, c: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_ident(&mut self, ident: u16) {
        be::put_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    pub fn set_protocol(&mut self, p: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = p;
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.header()));
        self.set_checksum(c);
    }

    /// Decrements the TTL and patches the checksum for the one changed word
    /// (RFC 1624) instead of summing the header again. Returns the new TTL; a
    /// TTL already at 0 is left alone, since the packet is expired either way.
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        // TTL shares its 16-bit checksum word with the protocol byte.
        let proto = u16::from(self.protocol());
        let old = u16::from(ttl) << 8 | proto;
        let new = u16::from(ttl - 1) << 8 | proto;
        let c = checksum::update16(self.checksum(), old, new);
        self.set_ttl(ttl - 1);
        self.set_checksum(c);
        ttl - 1
    }

    /// Rewrites the source address and patches the header checksum (NAT).
    pub fn set_src_addr_update_checksum(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum(), self.src_addr().into(), a.into());
        self.set_src_addr(a);
        self.set_checksum(c);
    }

    /// Sets the TTL and patches the checksum (the TTL target).
    pub fn set_ttl_update_checksum(&mut self, ttl: u8) {
        let proto = u16::from(self.protocol());
        let old = u16::from(self.ttl()) << 8 | proto;
        let new = u16::from(ttl) << 8 | proto;
        let c = checksum::update16(self.checksum(), old, new);
        self.set_ttl(ttl);
        self.set_checksum(c);
    }

    /// Sets the DSCP/ECN byte and patches the checksum (TOS and DSCP targets).
    pub fn set_dscp_ecn_update_checksum(&mut self, v: u8) {
        let b = self.buffer.as_ref();
        let version_ihl = u16::from(b[0]);
        let old = version_ihl << 8 | u16::from(b[field::DSCP_ECN]);
        let new = version_ihl << 8 | u16::from(v);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_dscp_ecn(v);
        self.set_checksum(c);
    }

    /// Rewrites the destination address and patches the header checksum (NAT).
    pub fn set_dst_addr_update_checksum(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum(), self.dst_addr().into(), a.into());
        self.set_dst_addr(a);
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..self.total_len();
        &mut self.buffer.as_mut()[range]
    }
}

/// An IPv4 header without options.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub payload_len: usize,
    pub ident: u16,
    pub dont_frag: bool,
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Reads the header at the start of `bytes`. Options are skipped and the
    /// checksum is not verified; `payload_len` comes from `total_len`.
    pub fn parse(bytes: &[u8]) -> Result<Ipv4Repr> {
        let p = Ipv4Packet::new_checked(bytes)?;
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            payload_len: p.total_len() - p.header_len(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            dscp_ecn: p.dscp_ecn(),
        })
    }

    /// Header and payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 20-byte header, checksum included, at the start of `buf`.
    /// A `payload_len` above 65515 does not fit the length field and is
    /// written as 65535.
    ///
    /// # Panics
    /// If `buf` is shorter than `HEADER_LEN`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::DSCP_ECN] = self.dscp_ecn;
        let total = u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(u16::MAX);
        be::put_u16(b, field::LENGTH, total);
        be::put_u16(b, field::IDENT, self.ident);
        be::put_u16(b, field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        let mut p = Ipv4Packet::new_unchecked(b);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        // fill_checksum reads header_len from the IHL written above.
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        ICMPV4_ECHO_REQUEST, IPV4_FIRST_FRAGMENT, IPV4_LAST_FRAGMENT, TCP_SYN, UDP_DNS_QUERY,
    };

    fn ip(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    #[test]
    fn deconstruct_echo_request() {
        let p = Ipv4Packet::new_checked(ip(&ICMPV4_ECHO_REQUEST)).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 84);
        assert_eq!(p.ident(), 30608);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::ICMP);
        assert_eq!(p.checksum(), 0xaf14);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 3));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 64);
        assert!(p.verify_checksum());
    }

    #[test]
    fn every_ipv4_fixture_has_a_good_checksum() {
        for f in [
            &ICMPV4_ECHO_REQUEST[..],
            &TCP_SYN,
            &UDP_DNS_QUERY,
            &IPV4_FIRST_FRAGMENT,
            &IPV4_LAST_FRAGMENT,
        ] {
            assert!(Ipv4Packet::new_checked(ip(f)).unwrap().verify_checksum());
        }
    }

    #[test]
    fn fragments() {
        let first = Ipv4Packet::new_checked(ip(&IPV4_FIRST_FRAGMENT)).unwrap();
        assert!(first.more_frags() && first.frag_offset() == 0 && first.is_fragment());
        let last = Ipv4Packet::new_checked(ip(&IPV4_LAST_FRAGMENT)).unwrap();
        assert!(!last.more_frags() && last.frag_offset() == 48 && last.is_fragment());
        assert_eq!(first.ident(), last.ident());
        assert_eq!(last.payload().len(), 20);
    }

    #[test]
    fn a_fragment_ending_past_the_largest_datagram_is_refused() {
        let mut f = ip(&IPV4_LAST_FRAGMENT).to_vec();
        // 20 bytes of header and 20 of payload at offset 65488 end at
        // 65528, which fits; 8 bytes further they would not.
        f[6..8].copy_from_slice(&(65_488u16 / 8).to_be_bytes());
        assert!(Ipv4Packet::new_checked(&f[..]).is_ok());
        f[6..8].copy_from_slice(&(65_496u16 / 8).to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&f[..]).unwrap_err().kind,
            ErrorKind::BadTotalLen {
                claimed: 65_536,
                available: MAX_DATAGRAM
            }
        );
    }

    #[test]
    fn construct_round_trips() {
        let repr = Ipv4Repr::parse(ip(&UDP_DNS_QUERY)).unwrap();
        assert_eq!(
            repr,
            Ipv4Repr {
                src: Ipv4Addr::new(10, 0, 0, 2),
                dst: Ipv4Addr::new(10, 0, 0, 3),
                protocol: protocol::UDP,
                ttl: 64,
                payload_len: 37,
                ident: 12493,
                dont_frag: true,
                dscp_ecn: 0,
            }
        );
        assert_eq!(repr.buffer_len(), 57);
        let mut buf = [0u8; 20];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &ip(&UDP_DNS_QUERY)[..20]);
    }

    #[test]
    fn payload_excludes_ethernet_padding() {
        let mut b = ip(&IPV4_LAST_FRAGMENT).to_vec();
        b.extend_from_slice(&[0; 6]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &ip(&IPV4_LAST_FRAGMENT)[20..]);
    }

    #[test]
    fn decrement_ttl_patches_the_checksum() {
        let mut b = ip(&TCP_SYN).to_vec();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        for expect in (0..64).rev() {
            assert_eq!(p.decrement_ttl(), expect);
            assert!(p.verify_checksum(), "ttl {expect}");
            let incremental = p.checksum();
            p.fill_checksum();
            assert_eq!(p.checksum(), incremental);
        }
        assert_eq!(p.decrement_ttl(), 0);
        assert_eq!(p.ttl(), 0);
        assert!(p.verify_checksum());
    }

    #[test]
    fn ttl_and_tos_setters_patch_the_checksum() {
        let mut b = ip(&TCP_SYN).to_vec();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        for v in [0u8, 1, 0x2e << 2, 0xb8, 0xff] {
            p.set_ttl_update_checksum(v);
            p.set_dscp_ecn_update_checksum(v);
            assert_eq!((p.ttl(), p.dscp_ecn()), (v, v));
            let incremental = p.checksum();
            p.fill_checksum();
            assert_eq!(p.checksum(), incremental, "value {v:#x}");
        }
    }

    #[test]
    fn nat_setters_patch_the_checksum() {
        let mut b = ip(&TCP_SYN).to_vec();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_addr_update_checksum(Ipv4Addr::new(192, 0, 2, 1));
        p.set_dst_addr_update_checksum(Ipv4Addr::new(198, 51, 100, 7));
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        p.set_ttl(1);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
    }

    #[test]
    fn lying_lengths() {
        let good = ip(&ICMPV4_ECHO_REQUEST);
        let mut b = good.to_vec();
        b[0] = 0x4f; // IHL 15: a 60-byte header, more than this 24-byte buffer.
        assert_eq!(
            Ipv4Packet::new_checked(&b[..24]).unwrap_err().kind,
            ErrorKind::BadHeaderLen(60)
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadHeaderLen(16)
        );
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadVersion(6)
        );
        let mut b = good.to_vec();
        b[2..4].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadTotalLen {
                claimed: 1500,
                available: 84
            }
        );
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadTotalLen { claimed: 19, .. }
        ));
        assert_eq!(
            Ipv4Packet::new_checked(&good[..12]).unwrap_err(),
            Error::truncated(Layer::Ipv4, 20, 12)
        );
    }
}
