//! Ethernet II frames.

use crate::be;
use crate::error::{Error, Layer, Result};
use crate::MacAddr;

/// EtherType values the switch looks at.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag.
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

pub const HEADER_LEN: usize = 14;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: RangeFrom<usize> = super::HEADER_LEN..;
}

/// A view of an Ethernet II frame. The payload is everything after the
/// header, including any padding a short frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Ethernet, HEADER_LEN, len));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        MacAddr(m)
    }

    pub fn src(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        MacAddr(m)
    }

    pub fn ethertype(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ETHERTYPE)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        be::put_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// An Ethernet II header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

impl EthernetRepr {
    pub fn parse(bytes: &[u8]) -> Result<EthernetRepr> {
        let f = EthernetFrame::new_checked(bytes)?;
        Ok(EthernetRepr {
            dst: f.dst(),
            src: f.src(),
            ethertype: f.ethertype(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 14-byte header at the start of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than `HEADER_LEN`.
    pub fn emit(&self, buf: &mut [u8]) {
        let mut f = EthernetFrame::new_unchecked(&mut buf[..HEADER_LEN]);
        f.set_dst(self.dst);
        f.set_src(self.src);
        f.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ARP_REQUEST, TCP_SYN};

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(&TCP_SYN[..]).unwrap();
        assert_eq!(f.dst().to_string(), "02:42:0a:00:00:03");
        assert_eq!(f.src().to_string(), "02:42:0a:00:00:02");
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.payload().len(), TCP_SYN.len() - HEADER_LEN);

        let f = EthernetFrame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.ethertype(), ethertype::ARP);
    }

    #[test]
    fn construct_round_trips() {
        let repr = EthernetRepr::parse(&ARP_REQUEST).unwrap();
        let mut buf = ARP_REQUEST;
        buf[..HEADER_LEN].fill(0);
        repr.emit(&mut buf);
        assert_eq!(buf, ARP_REQUEST);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
    }

    #[test]
    fn setters() {
        let mut buf = TCP_SYN;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(MacAddr::BROADCAST);
        f.set_src(MacAddr::ZERO);
        f.set_ethertype(ethertype::IPV6);
        f.payload_mut()[0] = 0x60;
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr::ZERO);
        assert_eq!(f.ethertype(), ethertype::IPV6);
        assert_eq!(f.into_inner()[HEADER_LEN], 0x60);
    }

    #[test]
    fn short_buffer() {
        let e = EthernetFrame::new_checked(&ARP_REQUEST[..13]).unwrap_err();
        assert_eq!(e, Error::truncated(Layer::Ethernet, 14, 13));
    }
}
