//! ARP for IPv4 over Ethernet (RFC 826), the only kind a switch answers.

use std::net::Ipv4Addr;

use crate::be;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ethernet::ethertype;
use crate::MacAddr;

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
    pub const LEN: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::LEN;

const HTYPE_ETHERNET: u16 = 1;

/// The ARP operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ArpOp {
    Request,
    Reply,
    Other(u16),
}

impl From<u16> for ArpOp {
    fn from(v: u16) -> ArpOp {
        match v {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            v => ArpOp::Other(v),
        }
    }
}

impl From<ArpOp> for u16 {
    fn from(op: ArpOp) -> u16 {
        match op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Other(v) => v,
        }
    }
}

/// A view of an ARP packet. `check_len` also insists on Ethernet/IPv4
/// address types and sizes, because the field offsets below assume them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::LEN {
            return Err(Error::truncated(Layer::Arp, field::LEN, len));
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != ethertype::IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::new(
                Layer::Arp,
                ErrorKind::Malformed("not Ethernet/IPv4 ARP"),
            ));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::PTYPE)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> ArpOp {
        be::u16_at(self.buffer.as_ref(), field::OPER).into()
    }

    pub fn sender_hw_addr(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::SHA])
    }

    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::SPA])
    }

    pub fn target_hw_addr(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::THA])
    }

    pub fn target_proto_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::TPA])
    }
}

fn mac(b: &[u8]) -> MacAddr {
    let mut m = [0; 6];
    m.copy_from_slice(b);
    MacAddr(m)
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_operation(&mut self, op: ArpOp) {
        be::put_u16(self.buffer.as_mut(), field::OPER, op.into());
    }

    pub fn set_sender_hw_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m.0);
    }

    pub fn set_sender_proto_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    pub fn set_target_hw_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m.0);
    }

    pub fn set_target_proto_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses the ARP packet at the start of `bytes`; trailing Ethernet
    /// padding is ignored.
    pub fn parse(bytes: &[u8]) -> Result<ArpRepr> {
        let p = ArpPacket::new_checked(bytes)?;
        Ok(ArpRepr {
            op: p.operation(),
            sender_mac: p.sender_hw_addr(),
            sender_ip: p.sender_proto_addr(),
            target_mac: p.target_hw_addr(),
            target_ip: p.target_proto_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the 28-byte packet at the start of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..PACKET_LEN];
        be::put_u16(b, field::HTYPE, HTYPE_ETHERNET);
        be::put_u16(b, field::PTYPE, ethertype::IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        let mut p = ArpPacket::new_unchecked(b);
        p.set_operation(self.op);
        p.set_sender_hw_addr(self.sender_mac);
        p.set_sender_proto_addr(self.sender_ip);
        p.set_target_hw_addr(self.target_mac);
        p.set_target_proto_addr(self.target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ARP_REPLY, ARP_REQUEST};

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deconstruct_request() {
        let p = ArpPacket::new_checked(&ARP_REQUEST[14..]).unwrap();
        assert_eq!(p.operation(), ArpOp::Request);
        assert_eq!(p.sender_hw_addr(), mac("02:42:0a:00:00:02"));
        assert_eq!(p.sender_proto_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.target_hw_addr(), MacAddr::ZERO);
        assert_eq!(p.target_proto_addr(), Ipv4Addr::new(10, 0, 0, 3));
    }

    #[test]
    fn construct_reply_round_trips() {
        let repr = ArpRepr::parse(&ARP_REPLY[14..]).unwrap();
        assert_eq!(
            repr,
            ArpRepr {
                op: ArpOp::Reply,
                sender_mac: mac("02:42:0a:00:00:03"),
                sender_ip: Ipv4Addr::new(10, 0, 0, 3),
                target_mac: mac("02:42:0a:00:00:02"),
                target_ip: Ipv4Addr::new(10, 0, 0, 2),
            }
        );
        let mut buf = [0u8; 28];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], &ARP_REPLY[14..]);
        assert_eq!(repr.buffer_len(), 28);
    }

    #[test]
    fn padding_is_ignored() {
        let mut padded = ARP_REQUEST[14..].to_vec();
        padded.resize(46, 0);
        assert_eq!(ArpRepr::parse(&padded), ArpRepr::parse(&ARP_REQUEST[14..]));
    }

    #[test]
    fn rejects_other_address_types() {
        let mut b = ARP_REQUEST;
        b[14 + field::PLEN] = 16;
        let e = ArpRepr::parse(&b[14..]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed("not Ethernet/IPv4 ARP"));
        let e = ArpRepr::parse(&ARP_REQUEST[14..41]).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Arp, 28, 27));
    }

    #[test]
    fn other_ops_survive() {
        assert_eq!(ArpOp::from(8), ArpOp::Other(8));
        assert_eq!(u16::from(ArpOp::Other(8)), 8);
        assert_eq!(u16::from(ArpOp::from(2)), 2);
    }
}
