//! UDP headers (RFC 768).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::be;
use crate::checksum;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ipv4::protocol;

pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view of a UDP datagram. After `check_len`, the length field is at
/// least 8 and within the buffer; `payload()` and the checksum stop there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Udp, HEADER_LEN, len));
        }
        let claimed = self.len();
        if claimed < HEADER_LEN {
            return Err(Error::new(
                Layer::Udp,
                ErrorKind::Malformed("length field below 8"),
            ));
        }
        if claimed > len {
            return Err(Error::new(
                Layer::Udp,
                ErrorKind::BadTotalLen {
                    claimed,
                    available: len,
                },
            ));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header and payload in bytes. A view is never
    /// empty, so there is no `is_empty` to go with it.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        usize::from(be::u16_at(self.buffer.as_ref(), field::LENGTH))
    }

    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }

    fn sum(&self, pseudo: u32) -> u32 {
        pseudo + checksum::sum(&self.buffer.as_ref()[..self.len()])
    }

    /// Over IPv4 a zero checksum means the sender computed none, which
    /// passes.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let pseudo = checksum::pseudo_header_v4(src, dst, protocol::UDP, self.len());
        checksum::fold(self.sum(pseudo)) == 0xffff
    }

    /// Over IPv6 the checksum is mandatory (RFC 8200 8.1): zero fails, even
    /// though it sums like 0xffff.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let pseudo = checksum::pseudo_header_v6(src, dst, protocol::UDP, self.len());
        checksum::fold(self.sum(pseudo)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// A computed 0 is sent as 0xffff, since 0 on the wire means "none".
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let pseudo = checksum::pseudo_header_v4(src, dst, protocol::UDP, self.len());
        let c = nonzero(checksum::finish(self.sum(pseudo)));
        self.set_checksum(c);
    }

    /// A computed 0 is sent as 0xffff, since 0 is not allowed over IPv6.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let pseudo = checksum::pseudo_header_v6(src, dst, protocol::UDP, self.len());
        let c = nonzero(checksum::finish(self.sum(pseudo)));
        self.set_checksum(c);
    }
}

fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// A UDP datagram, as the switch builds them (DHCP, DNS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct UdpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Reads a datagram; the checksum is not verified.
    pub fn parse(bytes: &'a [u8]) -> Result<UdpRepr<'a>> {
        let p = UdpPacket::new_checked(bytes)?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload: &bytes[HEADER_LEN..p.len()],
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes header and payload with checksum 0 ("none" over IPv4). A
    /// length above 65535 is written as 65535.
    ///
    /// # Panics
    /// If `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN + self.payload.len()];
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        be::put_u16(b, field::LENGTH, len);
        b[HEADER_LEN..].copy_from_slice(self.payload);
        let mut p = UdpPacket::new_unchecked(b);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_checksum(0);
    }

    /// `emit` and the checksum for an IPv4 pseudo header.
    pub fn emit_v4(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        self.emit(buf);
        UdpPacket::new_unchecked(&mut buf[..self.buffer_len()]).fill_checksum_v4(src, dst);
    }

    /// `emit` and the checksum for an IPv6 pseudo header.
    pub fn emit_v6(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        self.emit(buf);
        UdpPacket::new_unchecked(&mut buf[..self.buffer_len()]).fill_checksum_v6(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::UDP_DNS_QUERY;

    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    fn udp() -> &'static [u8] {
        &UDP_DNS_QUERY[34..]
    }

    #[test]
    fn deconstruct_dns_query() {
        let p = UdpPacket::new_checked(udp()).unwrap();
        assert_eq!(p.src_port(), 41234);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.payload().len(), 29);
        // DNS id 0x1a2b, RD set, one question for example.com.
        assert_eq!(&p.payload()[..4], &[0x1a, 0x2b, 0x01, 0x00]);
        assert_eq!(&p.payload()[12..20], b"\x07example");
        assert!(p.verify_checksum_v4(C, S));
        assert!(!p.verify_checksum_v4(S, Ipv4Addr::new(10, 0, 0, 9)));
    }

    #[test]
    fn construct_round_trips() {
        let repr = UdpRepr::parse(udp()).unwrap();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit_v4(&mut buf, C, S);
        assert_eq!(&buf[..], udp());
    }

    #[test]
    fn zero_checksum() {
        let mut b = udp().to_vec();
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.set_checksum(0);
        assert!(p.verify_checksum_v4(C, S));
        let (c6, s6) = ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap());
        assert!(!p.verify_checksum_v6(c6, s6));
        p.fill_checksum_v6(c6, s6);
        assert!(p.verify_checksum_v6(c6, s6));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload so the datagram sums to 0xffff before the
        // checksum is complemented.
        let mut b = vec![0u8; 10];
        UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload: &[0, 0],
        }
        .emit(&mut b);
        let partial =
            checksum::fold(checksum::pseudo_header_v4(C, S, protocol::UDP, 10) + checksum::sum(&b));
        b[8..10].copy_from_slice(&(0xffff - partial).to_be_bytes());
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v4(C, S);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(C, S));
    }

    #[test]
    fn payload_is_bounded_by_len() {
        let mut b = udp().to_vec();
        b.extend_from_slice(&[0xee; 5]);
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        assert_eq!(p.payload_mut().len(), 29);
        assert!(p.verify_checksum_v4(C, S));
    }

    #[test]
    fn lying_lengths() {
        let mut b = udp().to_vec();
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::Malformed("length field below 8")
        );
        b[4..6].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadTotalLen {
                claimed: 38,
                available: 37
            }
        );
        assert_eq!(
            UdpPacket::new_checked(&b[..7]).unwrap_err(),
            Error::truncated(Layer::Udp, 8, 7)
        );
    }
}
