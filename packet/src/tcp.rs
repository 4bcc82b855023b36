//! TCP headers (RFC 9293).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::be;
use crate::checksum;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ipv4::protocol;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// The eight flag bits of byte 13. The NS bit (RFC 3540, now historic) is
/// not included.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    const NAMES: [(TcpFlags, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// All bits of `other` are set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Some bit of `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

/// Names joined by commas in bit order ("SYN,ACK"); "none" when empty.
impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// A view of a TCP segment. The checksum covers the whole buffer, so give
/// it exactly the segment (the IP payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Tcp, HEADER_LEN, len));
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::new(Layer::Tcp, ErrorKind::BadHeaderLen(header_len)));
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

    pub fn seq_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::SEQ_NUM)
    }

    pub fn ack_number(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes, from the data offset.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    pub fn window(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::URGENT)
    }

    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    fn sum(&self, pseudo: u32) -> u32 {
        pseudo + checksum::sum(self.buffer.as_ref())
    }

    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.buffer.as_ref().len();
        checksum::fold(self.sum(checksum::pseudo_header_v4(src, dst, protocol::TCP, len))) == 0xffff
    }

    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let len = self.buffer.as_ref().len();
        checksum::fold(self.sum(checksum::pseudo_header_v6(src, dst, protocol::TCP, len))) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    pub fn set_seq_number(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::SEQ_NUM, v);
    }

    pub fn set_ack_number(&mut self, v: u32) {
        be::put_u32(self.buffer.as_mut(), field::ACK_NUM, v);
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    pub fn set_window(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::WINDOW, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn set_urgent(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::URGENT, v);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.buffer.as_ref().len();
        let c =
            checksum::finish(self.sum(checksum::pseudo_header_v4(src, dst, protocol::TCP, len)));
        self.set_checksum(c);
    }

    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let len = self.buffer.as_ref().len();
        let c =
            checksum::finish(self.sum(checksum::pseudo_header_v6(src, dst, protocol::TCP, len)));
        self.set_checksum(c);
    }
}

/// A TCP segment without options, as the switch builds them (resets).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Reads a segment; options are skipped and the checksum is not verified.
    pub fn parse(bytes: &'a [u8]) -> Result<TcpRepr<'a>> {
        let p = TcpPacket::new_checked(bytes)?;
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
            payload: &bytes[p.header_len()..],
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes header and payload; the checksum is left 0 for `emit_v4`,
    /// `emit_v6` or the view's `fill_checksum_*`.
    ///
    /// # Panics
    /// If `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN + self.payload.len()];
        b[field::DATA_OFF] = ((HEADER_LEN / 4) as u8) << 4;
        b[HEADER_LEN..].copy_from_slice(self.payload);
        let mut p = TcpPacket::new_unchecked(b);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_flags(self.flags);
        p.set_window(self.window);
        p.set_checksum(0);
        p.set_urgent(0);
    }

    /// `emit` and the checksum for an IPv4 pseudo header.
    pub fn emit_v4(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        self.emit(buf);
        TcpPacket::new_unchecked(&mut buf[..self.buffer_len()]).fill_checksum_v4(src, dst);
    }

    /// `emit` and the checksum for an IPv6 pseudo header.
    pub fn emit_v6(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        self.emit(buf);
        TcpPacket::new_unchecked(&mut buf[..self.buffer_len()]).fill_checksum_v6(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{IPV6_HOPOPT_TCP_SYN, TCP_PSH_ACK, TCP_SYN};

    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    #[test]
    fn deconstruct_syn_with_options() {
        let p = TcpPacket::new_checked(&TCP_SYN[34..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 2283063338);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0xc9d4);
        assert_eq!(p.urgent(), 0);
        // MSS 1460, SACK permitted, then timestamps.
        assert_eq!(&p.options()[..6], &[2, 4, 0x05, 0xb4, 4, 2]);
        assert_eq!(p.options()[6], 8);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum_v4(C, S));
        assert!(!p.verify_checksum_v4(C, Ipv4Addr::new(10, 0, 0, 4)));
    }

    #[test]
    fn deconstruct_data_segment() {
        let p = TcpPacket::new_checked(&TCP_PSH_ACK[34..]).unwrap();
        assert_eq!(p.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.payload(), b"GET / HTTP/1.0\r\n\r\n");
        assert!(p.verify_checksum_v4(C, S));
    }

    #[test]
    fn ipv6_checksum() {
        // Behind the 8-byte hop-by-hop header.
        let p = TcpPacket::new_checked(&IPV6_HOPOPT_TCP_SYN[62..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40001, 8080));
        assert!(p.verify_checksum_v6("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap()));
    }

    #[test]
    fn construct_round_trips_without_options() {
        let repr = TcpRepr::parse(&TCP_PSH_ACK[34..]).unwrap();
        assert_eq!(repr.payload, b"GET / HTTP/1.0\r\n\r\n");
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit_v4(&mut buf, C, S);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum_v4(C, S));
        assert_eq!(TcpRepr::parse(&buf), Ok(repr));
        let (c6, s6) = ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap());
        repr.emit_v6(&mut buf, c6, s6);
        assert!(TcpPacket::new_checked(&buf[..])
            .unwrap()
            .verify_checksum_v6(c6, s6));
    }

    #[test]
    fn setters_then_fill() {
        let mut b = TCP_SYN[34..].to_vec();
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(TcpFlags::RST | TcpFlags::ACK);
        p.set_window(0);
        assert!(!p.verify_checksum_v4(C, S));
        p.fill_checksum_v4(C, S);
        assert!(p.verify_checksum_v4(C, S));
        assert_eq!(
            (
                p.src_port(),
                p.dst_port(),
                p.seq_number(),
                p.ack_number(),
                p.window()
            ),
            (1, 2, 3, 4, 0)
        );
        assert_eq!(p.flags().to_string(), "RST,ACK");
    }

    #[test]
    fn flags() {
        let f = TcpFlags::SYN | TcpFlags::ACK;
        assert_eq!(f.to_string(), "SYN,ACK");
        assert_eq!(format!("{f:?}"), "TcpFlags(SYN,ACK)");
        assert!(f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(f.intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert_eq!(TcpFlags::empty().to_string(), "none");
        assert_eq!(
            TcpFlags(0xff).to_string(),
            "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR"
        );
        assert_eq!((f & TcpFlags::ACK), TcpFlags::ACK);
    }

    #[test]
    fn lying_data_offset() {
        let mut b = TCP_SYN[34..].to_vec();
        b[12] = 0xf0; // data offset 15: a 60-byte header in 40 bytes
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadHeaderLen(60)
        );
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadHeaderLen(16)
        );
        assert_eq!(
            TcpPacket::new_checked(&b[..19]).unwrap_err(),
            Error::truncated(Layer::Tcp, 20, 19)
        );
    }
}
