//! IPv6 headers (RFC 8200) and the walk over extension headers to the
//! upper-layer protocol.

use std::net::Ipv6Addr;

use crate::be;
use crate::error::{Error, ErrorKind, Layer, Result};

pub use crate::ipv4::protocol;

pub const HEADER_LEN: usize = 40;

/// Extension headers `upper_layer` walks before giving up. Real traffic uses
/// two or three; a long chain is a way to make every packet expensive.
pub const MAX_EXTENSIONS: usize = 8;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// A view of an IPv6 packet. After `check_len`, the fixed header and the
/// `payload_len` bytes it claims lie within the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Jumbograms (payload length 0 with a Jumbo option) are not supported:
    /// their payload is taken to be empty.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Ipv6, HEADER_LEN, len));
        }
        if self.version() != 6 {
            return Err(Error::new(
                Layer::Ipv6,
                ErrorKind::BadVersion(self.version()),
            ));
        }
        let claimed = HEADER_LEN + self.payload_len();
        if claimed > len {
            return Err(Error::new(
                Layer::Ipv6,
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

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (be::u16_at(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    pub fn flow_label(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Length after the fixed header, extension headers included.
    pub fn payload_len(&self) -> usize {
        usize::from(be::u16_at(self.buffer.as_ref(), field::PAYLOAD_LEN))
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }

    /// The `payload_len` bytes after the fixed header; trailing padding is
    /// excluded.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// Where the extension header chain of `pkt` ends: the upper-layer protocol
/// and its offset from the start of the IPv6 header.
///
/// Walks hop-by-hop (0), routing (43), fragment (44), destination options
/// (60) and AH (51). ESP (50) and No Next Header (59) stop the walk, since
/// nothing after them is readable. A fragment header with a nonzero offset
/// also stops it and returns protocol 44 with the fragment header's offset:
/// such a fragment carries no upper-layer header. Every length is checked
/// against `payload_len`, and more than `MAX_EXTENSIONS` headers is an error.
///
/// Like an accessor, it may panic on a view whose `check_len` has not passed.
pub fn upper_layer<T: AsRef<[u8]>>(pkt: &Ipv6Packet<T>) -> Result<(u8, usize)> {
    walk(pkt).map(|u| (u.protocol, u.offset))
}

/// What `walk` found at the end of the chain.
pub(crate) struct UpperLayer {
    pub protocol: u8,
    pub offset: usize,
    /// A fragment header was passed: the upper layer is only the start of
    /// the datagram, so its length fields cover more than this packet.
    pub fragmented: bool,
}

pub(crate) fn walk<T: AsRef<[u8]>>(pkt: &Ipv6Packet<T>) -> Result<UpperLayer> {
    let b = pkt.buffer.as_ref();
    let end = HEADER_LEN + pkt.payload_len();
    let mut nh = pkt.next_header();
    let mut off = HEADER_LEN;
    let mut fragmented = false;
    for _ in 0..=MAX_EXTENSIONS {
        let len = match nh {
            protocol::HOPOPT | protocol::IPV6_ROUTE | protocol::IPV6_OPTS => {
                if off + 2 > end {
                    return Err(trunc(off + 2, end));
                }
                (usize::from(b[off + 1]) + 1) * 8
            }
            protocol::AH => {
                // AH counts its length in 4-byte units, minus 2 (RFC 4302).
                if off + 2 > end {
                    return Err(trunc(off + 2, end));
                }
                (usize::from(b[off + 1]) + 2) * 4
            }
            protocol::IPV6_FRAG => 8,
            _ => {
                return Ok(UpperLayer {
                    protocol: nh,
                    offset: off,
                    fragmented,
                })
            }
        };
        if off + len > end {
            return Err(trunc(off + len, end));
        }
        if nh == protocol::IPV6_FRAG {
            fragmented = true;
            let frag_offset = be::u16_at(b, off + 2) >> 3;
            if frag_offset != 0 {
                return Ok(UpperLayer {
                    protocol: protocol::IPV6_FRAG,
                    offset: off,
                    fragmented,
                });
            }
        }
        nh = b[off];
        off += len;
    }
    Err(Error::new(Layer::Ipv6, ErrorKind::TooManyExtensions))
}

fn trunc(needed: usize, got: usize) -> Error {
    Error::truncated(Layer::Ipv6, needed, got)
}

/// A fixed IPv6 header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub payload_len: usize,
}

impl Ipv6Repr {
    pub const HEADER_LEN: usize = HEADER_LEN;

    pub fn parse(bytes: &[u8]) -> Result<Ipv6Repr> {
        let p = Ipv6Packet::new_checked(bytes)?;
        Ok(Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
            payload_len: p.payload_len(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte header with traffic class and flow label 0. A
    /// `payload_len` above 65535 is written as 65535.
    ///
    /// # Panics
    /// If `buf` is shorter than `HEADER_LEN`.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        be::put_u32(b, field::VER_TC_FLOW, 6 << 28);
        be::put_u16(
            b,
            field::PAYLOAD_LEN,
            u16::try_from(self.payload_len).unwrap_or(u16::MAX),
        );
        let mut p = Ipv6Packet::new_unchecked(b);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_SOLICIT, IPV6_HOPOPT_TCP_SYN};

    fn ip(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn deconstruct_hop_by_hop_tcp() {
        let p = Ipv6Packet::new_checked(ip(&IPV6_HOPOPT_TCP_SYN)).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x089c1);
        assert_eq!(p.payload_len(), 48);
        assert_eq!(p.next_header(), protocol::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), a("fd00::2"));
        assert_eq!(p.dst_addr(), a("fd00::3"));
        assert_eq!(p.payload().len(), 48);
        assert_eq!(upper_layer(&p), Ok((protocol::TCP, 48)));
    }

    #[test]
    fn no_extensions() {
        let p = Ipv6Packet::new_checked(ip(&ICMPV6_ECHO_REQUEST)).unwrap();
        assert_eq!(upper_layer(&p), Ok((protocol::ICMPV6, 40)));
    }

    #[test]
    fn construct_round_trips() {
        let repr = Ipv6Repr::parse(ip(&ICMPV6_NEIGHBOR_SOLICIT)).unwrap();
        assert_eq!(
            repr,
            Ipv6Repr {
                src: a("fd00::2"),
                dst: a("ff02::1:ff00:3"),
                next_header: protocol::ICMPV6,
                hop_limit: 255,
                payload_len: 32,
            }
        );
        assert_eq!(repr.buffer_len(), 72);
        let mut buf = [0u8; 40];
        repr.emit(&mut buf);
        // The captured solicitation has no flow label either.
        assert_eq!(&buf[..], &ip(&ICMPV6_NEIGHBOR_SOLICIT)[..40]);
    }

    /// An IPv6 header followed by `ext` and 20 bytes of zeros as payload.
    fn with_chain(first: u8, ext: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        Ipv6Repr {
            src: a("fd00::2"),
            dst: a("fd00::3"),
            next_header: first,
            hop_limit: 64,
            payload_len: ext.len() + 20,
        }
        .emit(&mut b);
        b.extend_from_slice(ext);
        b.extend_from_slice(&[0; 20]);
        b
    }

    #[test]
    fn walks_each_extension_kind() {
        #[rustfmt::skip]
        let ext = [
            protocol::IPV6_ROUTE, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop, 8 bytes
            protocol::IPV6_FRAG, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // routing, 16 bytes
            protocol::AH, 0, 0, 1, 0, 0, 0, 1, // fragment, offset 0, M set
            protocol::IPV6_OPTS, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // AH, 12 bytes
            protocol::UDP, 0, 1, 4, 0, 0, 0, 0, // destination options
        ];
        let b = with_chain(protocol::HOPOPT, &ext);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Ok((protocol::UDP, 40 + 52)));
        assert!(walk(&p).unwrap().fragmented);
    }

    #[test]
    fn later_fragment_has_no_upper_layer() {
        let ext = [protocol::TCP, 0, 0x05, 0xa8, 0, 0, 0, 1];
        let b = with_chain(protocol::IPV6_FRAG, &ext);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Ok((protocol::IPV6_FRAG, 40)));
    }

    #[test]
    fn esp_and_no_next_header_stop() {
        for stop in [protocol::ESP, protocol::IPV6_NONXT] {
            let b = with_chain(protocol::HOPOPT, &[stop, 0, 1, 4, 0, 0, 0, 0]);
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            assert_eq!(upper_layer(&p), Ok((stop, 48)));
        }
    }

    #[test]
    fn chain_limits() {
        let mut ext = Vec::new();
        for _ in 0..MAX_EXTENSIONS {
            ext.extend_from_slice(&[protocol::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let mut too_many = ext.clone();
        let last = ext.len() - 8;
        ext[last] = protocol::TCP;
        let b = with_chain(protocol::IPV6_OPTS, &ext);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            upper_layer(&p),
            Ok((protocol::TCP, 40 + 8 * MAX_EXTENSIONS))
        );

        too_many.extend_from_slice(&[protocol::TCP, 0, 1, 4, 0, 0, 0, 0]);
        let b = with_chain(protocol::IPV6_OPTS, &too_many);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            upper_layer(&p).unwrap_err().kind,
            ErrorKind::TooManyExtensions
        );
    }

    #[test]
    fn extension_lengths_are_checked() {
        // Hdr Ext Len 200 claims 1608 bytes; the payload has 28.
        let b = with_chain(protocol::HOPOPT, &[protocol::TCP, 200, 1, 4, 0, 0, 0, 0]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            upper_layer(&p),
            Err(Error::truncated(Layer::Ipv6, 40 + 1608, 68))
        );
        // A chain that runs into the end of the payload.
        let mut b = with_chain(protocol::HOPOPT, &[]);
        b.truncate(41);
        b[4..6].copy_from_slice(&1u16.to_be_bytes());
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(upper_layer(&p), Err(Error::truncated(Layer::Ipv6, 42, 41)));
    }

    #[test]
    fn lying_lengths() {
        let mut b = ip(&ICMPV6_ECHO_REQUEST).to_vec();
        b[4..6].copy_from_slice(&65u16.to_be_bytes());
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadTotalLen {
                claimed: 105,
                available: 104
            }
        );
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err().kind,
            ErrorKind::BadVersion(4)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Error::truncated(Layer::Ipv6, 40, 39)
        );
    }
}
