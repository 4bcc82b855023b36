//! ICMPv6 (RFC 4443), read far enough to key echo flows and check sums.

use std::net::Ipv6Addr;

use crate::be;
use crate::checksum;
use crate::error::{Error, Layer, Result};
use crate::ipv4::protocol;

/// Message types.
pub mod msg {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PKT_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const MLD_REPORT: u8 = 131;
    pub const MLD_DONE: u8 = 132;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    pub const MLDV2_REPORT: u8 = 143;
}

/// Type, code, checksum and the 4 bytes every message defines after them
/// (echo identifier and sequence, an MTU, a pointer, or reserved).
pub const HEADER_LEN: usize = 8;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
}

/// A view of an ICMPv6 message; the checksum covers the whole buffer and an
/// IPv6 pseudo header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Icmpv6, HEADER_LEN, len));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Meaningful for echo request and reply only.
    pub fn echo_ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Meaningful for echo request and reply only.
    pub fn echo_seq_no(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    pub fn is_echo(&self) -> bool {
        matches!(self.msg_type(), msg::ECHO_REQUEST | msg::ECHO_REPLY)
    }

    /// Everything after the 8-byte header (for neighbor discovery, the
    /// target address and options).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    fn sum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
        let b = self.buffer.as_ref();
        checksum::pseudo_header_v6(src, dst, protocol::ICMPV6, b.len()) + checksum::sum(b)
    }

    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::fold(self.sum(src, dst)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum(src, dst));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_SOLICIT};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn deconstruct_echo_request() {
        let p = Icmpv6Packet::new_checked(&ICMPV6_ECHO_REQUEST[54..]).unwrap();
        assert_eq!(p.msg_type(), msg::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.echo_ident(), 3756);
        assert_eq!(p.echo_seq_no(), 1);
        assert!(p.is_echo());
        assert_eq!(p.data().len(), 56);
        assert!(p.verify_checksum(a("fd00::2"), a("fd00::3")));
        assert!(!p.verify_checksum(a("fd00::2"), a("fd00::4")));
    }

    #[test]
    fn neighbor_solicitation() {
        let p = Icmpv6Packet::new_checked(&ICMPV6_NEIGHBOR_SOLICIT[54..]).unwrap();
        assert_eq!(p.msg_type(), msg::NEIGHBOR_SOLICIT);
        assert!(!p.is_echo());
        assert_eq!(&p.data()[..16], &a("fd00::3").octets());
        assert!(p.verify_checksum(a("fd00::2"), a("ff02::1:ff00:3")));
    }

    #[test]
    fn fill_reproduces_the_wire_checksum() {
        let mut b = ICMPV6_ECHO_REQUEST[54..].to_vec();
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        let wire = p.checksum();
        p.set_msg_type(msg::ECHO_REPLY);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.set_code(0);
        p.fill_checksum(a("fd00::3"), a("fd00::2"));
        assert!(p.verify_checksum(a("fd00::3"), a("fd00::2")));
        p.set_msg_type(msg::ECHO_REQUEST);
        p.set_echo_ident(3756);
        p.set_echo_seq_no(1);
        p.fill_checksum(a("fd00::2"), a("fd00::3"));
        assert_eq!(p.checksum(), wire);
        assert_eq!(
            Icmpv6Packet::new_checked(&b[..7]).unwrap_err(),
            Error::truncated(Layer::Icmpv6, 8, 7)
        );
    }
}
