//! VXLAN (RFC 7348): an Ethernet frame carried in UDP, behind an 8-byte
//! header whose I flag says the 24-bit VNI is valid.
//!
//! ```text
//!  0               1               2               3
//! +-+-+-+-+-+-+-+-+---------------+---------------+---------------+
//! |R|R|R|R|I|R|R|R|                   Reserved                    |
//! +---------------+---------------+---------------+---------------+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +---------------+---------------+---------------+---------------+
//! ```
//!
//! Also the outer IPv4 and UDP headers a VTEP puts in front, and the
//! outer source port chosen from the inner flow so that routers hashing
//! the outer 5-tuple (ECMP) spread flows as they would spread the inner ones.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::be;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ipv4::{protocol, Ipv4Repr};
use crate::parse::Parsed;
use crate::udp;

pub const HEADER_LEN: usize = 8;
/// The outer IPv4 (no options) and UDP headers.
pub const OUTER_LEN: usize = Ipv4Repr::HEADER_LEN + udp::HEADER_LEN;
/// What encapsulation adds around an inner frame: outer IPv4, UDP, VXLAN.
/// The inner Ethernet header comes on top, so an underlay MTU of 1500
/// carries inner IP packets of 1500 - 36 - 14 = 1450 bytes.
pub const OVERHEAD: usize = OUTER_LEN + HEADER_LEN;
/// RFC 7348 section 5: outer source ports come from the dynamic range.
pub const SOURCE_PORTS: (u16, u16) = (49152, 65535);

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
}

/// The I flag: the VNI is valid. Every other flag bit is reserved.
pub const FLAG_I: u8 = 0x08;

/// A VXLAN Network Identifier: 24 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Vni(u32);

impl Vni {
    pub const MAX: u32 = (1 << 24) - 1;

    pub fn try_new(v: u32) -> Option<Vni> {
        (v <= Self::MAX).then_some(Vni(v))
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A view of a VXLAN header and the frame behind it. After `check_len`
/// the 8 header bytes are there; nothing else is promised about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Vxlan, HEADER_LEN, len));
        }
        Ok(())
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The 24-bit VNI, whatever the I flag says.
    pub fn vni(&self) -> Vni {
        Vni(be::u32_at(self.buffer.as_ref(), field::VNI) >> 8)
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// A VXLAN header as the switch reads and writes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VxlanRepr {
    pub vni: Vni,
}

impl VxlanRepr {
    /// Reads the header at the start of `bytes`; a clear I flag is an error
    /// (the VNI means nothing then), reserved bits are ignored as RFC 7348
    /// says receivers must.
    pub fn parse(bytes: &[u8]) -> Result<VxlanRepr> {
        let p = VxlanPacket::new_checked(bytes)?;
        if p.flags() & FLAG_I == 0 {
            return Err(Error::new(
                Layer::Vxlan,
                ErrorKind::Malformed("I flag clear"),
            ));
        }
        Ok(VxlanRepr { vni: p.vni() })
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[field::FLAGS] = FLAG_I;
        be::put_u32(&mut b, field::VNI, self.vni.get() << 8);
        b
    }
}

/// The outer IPv4 and UDP headers of one encapsulated frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OuterRepr {
    /// `0.0.0.0` lets the kernel of a raw socket fill in the source address.
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// VXLAN header and what follows it.
    pub payload_len: usize,
}

impl OuterRepr {
    /// Writes the outer headers into `buf`: IPv4 without DF (the underlay
    /// may fragment, as Linux's vxlan does by default) and TTL 64, UDP with
    /// a zero checksum, which RFC 7348 allows over IPv4 and Linux accepts.
    ///
    /// # Panics
    /// If `buf` is shorter than `OUTER_LEN`.
    pub fn emit(&self, buf: &mut [u8]) {
        let (ip, udp) = buf[..OUTER_LEN].split_at_mut(Ipv4Repr::HEADER_LEN);
        let udp_len = udp::HEADER_LEN + self.payload_len;
        Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: protocol::UDP,
            ttl: 64,
            payload_len: udp_len,
            ident: 0,
            dont_frag: false,
            dscp_ecn: 0,
        }
        .emit(ip);
        be::put_u16(udp, 0, self.src_port);
        be::put_u16(udp, 2, self.dst_port);
        be::put_u16(udp, 4, u16::try_from(udp_len).unwrap_or(u16::MAX));
        be::put_u16(udp, 6, 0);
    }
}

/// The outer UDP source port for an inner frame: a hash of its flow (the
/// 5-tuple when it has one, else its MACs and EtherType) spread over
/// `SOURCE_PORTS` as Linux's `udp_flow_src_port` spreads its hash, so
/// every packet of a flow takes the same underlay path.
pub fn source_port(inner: &Parsed) -> u16 {
    let mut h = Fnv::new();
    match inner.flow_key() {
        Some(k) => {
            for ip in [k.src, k.dst] {
                match ip {
                    IpAddr::V4(a) => h.write(&a.octets()),
                    IpAddr::V6(a) => h.write(&a.octets()),
                }
            }
            h.write(&[k.protocol]);
            h.write(&k.src_port.to_be_bytes());
            h.write(&k.dst_port.to_be_bytes());
        }
        None => {
            h.write(&inner.src.0);
            h.write(&inner.dst.0);
            h.write(&inner.ethertype.to_be_bytes());
        }
    }
    let (min, max) = SOURCE_PORTS;
    let span = u64::from(max - min) + 1;
    min + ((u64::from(h.finish()) * span) >> 32) as u16
}

/// 32-bit FNV-1a: small, no allocation, well spread for a few fields.
struct Fnv(u32);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn finish(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::Ipv4Packet;
    use crate::udp::UdpPacket;

    /// A VXLAN header for VNI 42, as Linux's vxlan driver sends it.
    static VNI_42: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 0x2a, 0];

    #[test]
    fn header_bytes_both_ways() {
        let vni = Vni::try_new(42).expect("vni");
        assert_eq!(VxlanRepr { vni }.to_bytes(), VNI_42);
        assert_eq!(VxlanRepr::parse(&VNI_42), Ok(VxlanRepr { vni }));
        let max = Vni::try_new(Vni::MAX).expect("vni");
        let b = VxlanRepr { vni: max }.to_bytes();
        assert_eq!(b, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
        assert_eq!(VxlanRepr::parse(&b).map(|r| r.vni), Ok(max));
        assert!(Vni::try_new(1 << 24).is_none());
    }

    #[test]
    fn reserved_bits_are_ignored_and_a_clear_i_flag_refused() {
        let mut b = VNI_42;
        b[0] |= 0x80;
        b[3] = 0xff;
        b[7] = 0xff;
        assert_eq!(VxlanRepr::parse(&b).map(|r| r.vni.get()), Ok(42));
        b[0] = 0;
        assert_eq!(
            VxlanRepr::parse(&b).map_err(|e| e.kind),
            Err(ErrorKind::Malformed("I flag clear"))
        );
    }

    #[test]
    fn every_truncated_length_is_an_error() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                VxlanRepr::parse(&VNI_42[..n]),
                Err(Error::truncated(Layer::Vxlan, HEADER_LEN, n))
            );
        }
    }

    #[test]
    fn outer_headers() {
        let mut b = [0xeeu8; OUTER_LEN];
        OuterRepr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            src_port: 50000,
            dst_port: 4789,
            payload_len: 8 + 60,
        }
        .emit(&mut b);
        let ip = Ipv4Packet::new_unchecked(&b[..]);
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), OUTER_LEN + 68);
        assert_eq!(ip.protocol(), protocol::UDP);
        assert!(!ip.dont_frag());
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 18, 0, 2));
        let udp = UdpPacket::new_unchecked(&b[20..]);
        assert_eq!((udp.src_port(), udp.dst_port()), (50000, 4789));
        assert_eq!(udp.len(), 8 + 68);
        assert_eq!(udp.checksum(), 0);
    }

    #[test]
    fn source_port_follows_the_flow_and_stays_in_range() {
        use crate::fixtures::{TCP_SYN, UDP_DNS_QUERY};
        let a = Parsed::parse(&TCP_SYN).expect("tcp");
        let b = Parsed::parse(&UDP_DNS_QUERY).expect("udp");
        let pa = source_port(&a);
        assert_eq!(pa, source_port(&a), "one flow, one port");
        assert_ne!(pa, source_port(&b), "these two flows differ");
        // Another source port of the same flow moves it.
        let mut c = a;
        if let crate::L4::Tcp { src_port, .. } = &mut c.l4 {
            *src_port += 1;
        }
        assert_ne!(pa, source_port(&c));
        let mut ports = std::collections::HashSet::new();
        for p in 0..2000u16 {
            if let crate::L4::Tcp { src_port, .. } = &mut c.l4 {
                *src_port = p;
            }
            let port = source_port(&c);
            assert!(port >= SOURCE_PORTS.0);
            ports.insert(port);
        }
        assert!(ports.len() > 1500, "spread: {} distinct", ports.len());
    }
}
