//! The virtio-net header (`struct virtio_net_hdr`, 10 bytes) that TAPs opened
//! with IFF_VNET_HDR and AF_PACKET sockets with PACKET_VNET_HDR put in front
//! of each frame: the frame's checksum and segmentation offload state.
//!
//! A frame with `NEEDS_CSUM` carries a partial L4 checksum: the field at
//! `csum_start + csum_offset` holds the pseudo-header sum, and whoever sends
//! it on without offload must sum from `csum_start` to the end and write the
//! result (`complete_checksum`). A GSO frame (`gso_type` not `NONE`) is a
//! TCP or UDP super-frame of up to 64 KB to be cut into `gso_size`-byte
//! payloads (`segment`).
//!
//! Rewrites in the pipeline keep a partial checksum valid as long as they
//! stay out of the pseudo header: TTL, TOS and MACs do (the IPv4 header
//! checksum is always complete and updated as usual). NAT will not: an
//! address change on a `NEEDS_CSUM` frame must update the field as the
//! uncomplemented sum it holds (Linux's `inet_proto_csum_replace4` with
//! `pseudohdr`), while a port change leaves it alone; so NAT needs the
//! frame's header, which the I/O layer keeps today.
//!
//! Fields are little-endian as in virtio 1.0; Linux writes them in the
//! host's order for legacy headers, which is the same on the little-endian
//! hosts the I/O layer enables them on. The values come from outside: every
//! function here checks them against the frame and returns an error rather
//! than indexing out of bounds.

use core::ops::Range;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::be;
use crate::checksum;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ipv4::protocol;
use crate::ipv6;
use crate::parse::{Parsed, L3, L4};

pub const HEADER_LEN: usize = 10;

mod field {
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: usize = 2;
    pub const GSO_SIZE: usize = 4;
    pub const CSUM_START: usize = 6;
    pub const CSUM_OFFSET: usize = 8;
}

/// `flags` bits.
pub mod flags {
    /// The L4 checksum is partial (see the module documentation).
    pub const NEEDS_CSUM: u8 = 1;
    /// The checksum was verified (kernel to user only).
    pub const DATA_VALID: u8 = 2;
}

/// `gso_type` values.
pub mod gso {
    pub const NONE: u8 = 0;
    pub const TCPV4: u8 = 1;
    /// UFO, fragmentation of UDP; Linux no longer produces it.
    pub const UDP: u8 = 3;
    pub const TCPV6: u8 = 4;
    /// UDP segmentation (USO), Linux 6.2 and later.
    pub const UDP_L4: u8 = 5;
    /// Or-ed into a TCP type: the segments carry CWR as the first one does.
    pub const ECN: u8 = 0x80;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (Ethernet to L4), a hint.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// From the start of the frame.
    pub csum_start: u16,
    /// From `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// No offload: a complete frame with complete checksums.
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: gso::NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    pub fn parse(bytes: &[u8]) -> Result<VnetHdr> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::truncated(Layer::Vnet, HEADER_LEN, bytes.len()))?;
        let le = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        Ok(VnetHdr {
            flags: b[field::FLAGS],
            gso_type: b[field::GSO_TYPE],
            hdr_len: le(field::HDR_LEN),
            gso_size: le(field::GSO_SIZE),
            csum_start: le(field::CSUM_START),
            csum_offset: le(field::CSUM_OFFSET),
        })
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[field::FLAGS] = self.flags;
        b[field::GSO_TYPE] = self.gso_type;
        let mut put = |at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        put(field::HDR_LEN, self.hdr_len);
        put(field::GSO_SIZE, self.gso_size);
        put(field::CSUM_START, self.csum_start);
        put(field::CSUM_OFFSET, self.csum_offset);
        b
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & flags::NEEDS_CSUM != 0
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type != gso::NONE
    }

    /// Whether a receiver without offloads needs the frame finished first.
    pub fn offloads(&self) -> bool {
        self.needs_csum() || self.is_gso()
    }

    /// The header for the same frame after `delta` bytes were inserted
    /// (positive) or removed (negative) in front of the L3 header, as an
    /// 802.1Q tag push (+4) or pop (-4) does. `None` when the offsets would
    /// leave the range a header can express: the frame's offload state is
    /// then unusable.
    pub fn shifted(&self, delta: i32) -> Option<VnetHdr> {
        if delta == 0 || !self.offloads() {
            return Some(*self);
        }
        let shift = |v: u16| u16::try_from(i32::from(v) + delta).ok();
        Some(VnetHdr {
            csum_start: if self.needs_csum() {
                shift(self.csum_start)?
            } else {
                self.csum_start
            },
            hdr_len: if self.hdr_len == 0 {
                0
            } else {
                shift(self.hdr_len)?
            },
            ..*self
        })
    }

    /// Where the partial checksum field is in a frame of `frame_len`
    /// bytes, if the header's offsets fit.
    fn csum_field(&self, frame_len: usize) -> Result<Range<usize>> {
        let at = usize::from(self.csum_start) + usize::from(self.csum_offset);
        if at + 2 > frame_len {
            return Err(Error::new(
                Layer::Vnet,
                ErrorKind::Malformed("checksum offset past the frame"),
            ));
        }
        Ok(at..at + 2)
    }
}

/// Writes the full L4 checksum of a `NEEDS_CSUM` frame in place, as Linux's
/// `skb_checksum_help` does. The frame is then good for a receiver without
/// offloads. Does nothing for a frame without a partial checksum.
pub fn complete_checksum(frame: &mut [u8], hdr: &VnetHdr) -> Result<()> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let field = hdr.csum_field(frame.len())?;
    // The field holds the pseudo-header sum, so summing it with the rest
    // of the covered bytes gives the whole sum.
    let sum = checksum::sum(&frame[usize::from(hdr.csum_start)..]);
    // 0 would mean "no checksum" to UDP; ones' complement has two zeroes.
    let c = match checksum::finish(sum) {
        0 => 0xffff,
        c => c,
    };
    frame[field].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The addresses a segment's pseudo header sums.
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// The layout of a GSO frame, checked against the frame once.
struct Layout {
    l3: usize,
    l4: usize,
    addrs: Addrs,
    tcp: bool,
    /// Where the payload to cut starts and ends (IP padding excluded).
    payload: Range<usize>,
    mss: usize,
}

fn malformed(what: &'static str) -> Error {
    Error::new(Layer::Vnet, ErrorKind::Malformed(what))
}

fn layout(frame: &[u8], hdr: &VnetHdr) -> Result<Layout> {
    let parsed = Parsed::parse(frame)?;
    let (addrs, l3_end) = match parsed.l3 {
        L3::Ipv4 {
            src,
            dst,
            total_len,
            fragment: false,
            ..
        } => (Addrs::V4(src, dst), parsed.l3_offset + total_len),
        L3::Ipv6 {
            src,
            dst,
            payload_len,
            ..
        } => (
            Addrs::V6(src, dst),
            parsed.l3_offset + ipv6::HEADER_LEN + payload_len,
        ),
        _ => return Err(malformed("GSO frame is not an unfragmented IP packet")),
    };
    let v4 = matches!(addrs, Addrs::V4(..));
    let tcp = match (hdr.gso_type & !gso::ECN, v4, parsed.l4) {
        (gso::TCPV4, true, L4::Tcp { .. }) | (gso::TCPV6, false, L4::Tcp { .. }) => true,
        (gso::UDP_L4, _, L4::Udp { .. }) => false,
        _ => return Err(malformed("GSO type does not match the packet")),
    };
    let l4 = parsed.l4_offset;
    let l4_len = if tcp {
        // Parsed checked the data offset against the packet.
        usize::from(frame[l4 + 12] >> 4) * 4
    } else {
        crate::udp::HEADER_LEN
    };
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(malformed("GSO size 0"));
    }
    Ok(Layout {
        l3: parsed.l3_offset,
        l4,
        addrs,
        tcp,
        payload: l4 + l4_len..l3_end,
        mss,
    })
}

/// Cuts a GSO super-frame into frames of at most `gso_size` payload bytes
/// each with complete headers and checksums, as Linux's software GSO does
/// (TCP: sequence numbers advance, FIN and PSH only on the last segment, CWR
/// only on the first; IPv4: the identification increments). Each segment is
/// built in `scratch` and handed to `each`. Returns the number of segments.
pub fn segment(
    frame: &[u8],
    hdr: &VnetHdr,
    scratch: &mut [u8],
    mut each: impl FnMut(&[u8]),
) -> Result<usize> {
    let l = layout(frame, hdr)?;
    let hlen = l.payload.start;
    if scratch.len() < hlen + l.mss {
        return Err(Error::truncated(Layer::Vnet, hlen + l.mss, scratch.len()));
    }
    let (l3, l4) = (l.l3, l.l4);
    let payload = &frame[l.payload.clone()];
    let count = payload.len().div_ceil(l.mss).max(1);
    let seq0 = be::u32_at(frame, l4 + 4);
    for i in 0..count {
        let chunk = payload
            .get(i * l.mss..((i + 1) * l.mss).min(payload.len()))
            .unwrap_or_default();
        let len = hlen + chunk.len();
        let seg = &mut scratch[..len];
        seg[..hlen].copy_from_slice(&frame[..hlen]);
        seg[hlen..].copy_from_slice(chunk);
        let l4_len = len - l4;
        let pseudo = match l.addrs {
            Addrs::V4(src, dst) => {
                be::put_u16(seg, l3 + 2, (len - l3) as u16);
                let ident = be::u16_at(frame, l3 + 4).wrapping_add(i as u16);
                be::put_u16(seg, l3 + 4, ident);
                be::put_u16(seg, l3 + 10, 0);
                let ihl = usize::from(seg[l3] & 0x0f) * 4;
                let c = checksum::finish(checksum::sum(&seg[l3..l3 + ihl]));
                be::put_u16(seg, l3 + 10, c);
                checksum::pseudo_header_v4(src, dst, l4_protocol(l.tcp), l4_len)
            }
            Addrs::V6(src, dst) => {
                be::put_u16(seg, l3 + 4, (len - l3 - ipv6::HEADER_LEN) as u16);
                checksum::pseudo_header_v6(src, dst, l4_protocol(l.tcp), l4_len)
            }
        };
        let csum_at = if l.tcp {
            be::put_u32(seg, l4 + 4, seq0.wrapping_add((i * l.mss) as u32));
            let mut f = seg[l4 + 13];
            if i + 1 < count {
                f &= !(0x01 | 0x08); // FIN, PSH
            }
            if i > 0 && hdr.gso_type & gso::ECN == 0 {
                f &= !0x80; // CWR
            }
            seg[l4 + 13] = f;
            l4 + 16
        } else {
            be::put_u16(seg, l4 + 4, l4_len as u16);
            l4 + 6
        };
        be::put_u16(seg, csum_at, 0);
        let c = match checksum::finish(pseudo + checksum::sum(&seg[l4..])) {
            0 if !l.tcp => 0xffff,
            c => c,
        };
        be::put_u16(seg, csum_at, c);
        each(seg);
    }
    Ok(count)
}

fn l4_protocol(tcp: bool) -> u8 {
    if tcp {
        protocol::TCP
    } else {
        protocol::UDP
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::{ethertype, EthernetRepr};
    use crate::ipv4::{Ipv4Packet, Ipv4Repr};
    use crate::ipv6::Ipv6Repr;
    use crate::tcp::{TcpFlags, TcpPacket, TcpRepr};
    use crate::udp::{UdpPacket, UdpRepr};
    use crate::MacAddr;
    use proptest::prelude::*;

    const SRC4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DST4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    // A header as Linux's tun wrote it for a TSO frame of a tagless
    // IPv4/TCP packet with 1448-byte segments.
    static TSO_HDR: [u8; 10] = [0x01, 0x01, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00];

    fn tso_hdr() -> VnetHdr {
        VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        }
    }

    fn eth(ty: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        EthernetRepr {
            dst: MacAddr([2, 0, 0, 0, 0, 3]),
            src: MacAddr([2, 0, 0, 0, 0, 2]),
            ethertype: ty,
        }
        .emit(&mut f);
        f.extend_from_slice(l3);
        f
    }

    /// An IPv4/TCP frame with a full checksum.
    fn tcp4(flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
        let t = TcpRepr {
            src_port: 40000,
            dst_port: 5001,
            seq_number: 0xffff_ff00,
            ack_number: 7,
            flags,
            window: 500,
            payload,
        };
        let mut ip = vec![0u8; 20 + t.buffer_len()];
        Ipv4Repr {
            src: SRC4,
            dst: DST4,
            protocol: protocol::TCP,
            ttl: 64,
            payload_len: t.buffer_len(),
            ident: 0xfffe,
            dont_frag: true,
            dscp_ecn: 0,
        }
        .emit(&mut ip);
        t.emit_v4(&mut ip[20..], SRC4, DST4);
        eth(ethertype::IPV4, &ip)
    }

    /// Replaces the full checksum at `at` with the pseudo-header sum a
    /// sender with checksum offload leaves there.
    fn make_partial(frame: &mut [u8], at: usize, pseudo: u32) {
        frame[at..at + 2].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn parse_and_emit_round_trip() {
        assert_eq!(VnetHdr::parse(&TSO_HDR), Ok(tso_hdr()));
        assert_eq!(tso_hdr().to_bytes(), TSO_HDR);
        assert_eq!(VnetHdr::parse(&[0; 10]), Ok(VnetHdr::NONE));
        assert!(!VnetHdr::NONE.offloads());
        assert!(VnetHdr::parse(&TSO_HDR[..9]).is_err());
    }

    #[test]
    fn tag_push_and_pop_move_the_offsets() {
        let h = tso_hdr();
        let pushed = h.shifted(4).unwrap();
        assert_eq!((pushed.csum_start, pushed.hdr_len), (38, 70));
        assert_eq!((pushed.csum_offset, pushed.gso_size), (16, 1448));
        assert_eq!(pushed.shifted(-4), Some(h));
        // Garbage that a pop would take below zero is refused, not wrapped.
        let bad = VnetHdr { csum_start: 2, ..h };
        assert_eq!(bad.shifted(-4), None);
        // Without offloads the offsets mean nothing and stay.
        assert_eq!(VnetHdr::NONE.shifted(-4), Some(VnetHdr::NONE));
    }

    #[test]
    fn completes_a_partial_tcp_checksum() {
        let full = tcp4(TcpFlags::ACK | TcpFlags::PSH, &payload(999));
        let mut f = full.clone();
        let l4_len = f.len() - 34;
        make_partial(
            &mut f,
            50,
            checksum::pseudo_header_v4(SRC4, DST4, 6, l4_len),
        );
        assert_ne!(f, full);
        complete_checksum(&mut f, &tso_hdr()).unwrap();
        assert_eq!(f, full);
        // Offsets past the frame are an error, not a panic.
        let bad = VnetHdr {
            csum_offset: 0xfff0,
            ..tso_hdr()
        };
        assert!(complete_checksum(&mut f, &bad).is_err());
        // Nothing to do without NEEDS_CSUM.
        complete_checksum(&mut f, &VnetHdr::NONE).unwrap();
        assert_eq!(f, full);
    }

    #[test]
    fn segments_a_tcp_v4_super_frame() {
        let data = payload(3000);
        let flags = TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN | TcpFlags::CWR;
        let mut f = tcp4(flags, &data);
        let l4_len = f.len() - 34;
        make_partial(
            &mut f,
            50,
            checksum::pseudo_header_v4(SRC4, DST4, 6, l4_len),
        );
        let hdr = VnetHdr {
            gso_size: 1000,
            ..tso_hdr()
        };
        let mut scratch = vec![0u8; 2048];
        let mut segs = Vec::new();
        let n = segment(&f, &hdr, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&s[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.total_len(), 20 + 20 + 1000);
            assert_eq!(ip.ident(), 0xfffe_u16.wrapping_add(i as u16));
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.verify_checksum_v4(SRC4, DST4));
            assert_eq!(
                tcp.seq_number(),
                0xffff_ff00_u32.wrapping_add(i as u32 * 1000)
            );
            let last = i == 2;
            assert_eq!(tcp.flags().contains(TcpFlags::FIN), last);
            assert_eq!(tcp.flags().contains(TcpFlags::PSH), last);
            assert_eq!(tcp.flags().contains(TcpFlags::CWR), i == 0);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn segments_a_udp_v6_super_frame_with_a_short_tail() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("fd00::2".parse().unwrap(), "fd00::3".parse().unwrap());
        let data = payload(2500);
        let u = UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload: &data,
        };
        let mut ip = vec![0u8; 40 + u.buffer_len()];
        Ipv6Repr {
            src,
            dst,
            next_header: protocol::UDP,
            hop_limit: 64,
            payload_len: u.buffer_len(),
        }
        .emit(&mut ip);
        u.emit_v6(&mut ip[40..], src, dst);
        let f = eth(ethertype::IPV6, &ip);
        let hdr = VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::UDP_L4,
            hdr_len: 62,
            gso_size: 1200,
            csum_start: 54,
            csum_offset: 6,
        };
        let mut scratch = vec![0u8; 1500];
        let mut lens = Vec::new();
        let n = segment(&f, &hdr, &mut scratch, |s| {
            let udp = UdpPacket::new_checked(&s[54..]).unwrap();
            assert!(udp.verify_checksum_v6(src, dst));
            assert_eq!(u16::from_be_bytes([s[18], s[19]]) as usize, s.len() - 54);
            lens.push(udp.payload().len());
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(lens, vec![1200, 1200, 100]);
    }

    #[test]
    fn refuses_what_does_not_match() {
        let f = tcp4(TcpFlags::ACK, &payload(100));
        let mut scratch = vec![0u8; 2048];
        let mut calls = 0;
        let udp = VnetHdr {
            gso_type: gso::UDP_L4,
            ..tso_hdr()
        };
        let zero = VnetHdr {
            gso_size: 0,
            ..tso_hdr()
        };
        for h in [udp, zero] {
            assert!(segment(&f, &h, &mut scratch, |_| calls += 1).is_err());
        }
        // A scratch buffer smaller than one segment is an error too.
        assert!(segment(&f, &tso_hdr(), &mut scratch[..100], |_| calls += 1).is_err());
        assert_eq!(calls, 0);
    }

    proptest! {
        #[test]
        fn garbage_headers_never_panic(
            hdr in proptest::array::uniform10(any::<u8>()),
            cut in 0usize..200,
            mss in 1u16..3000,
        ) {
            let mut f = tcp4(TcpFlags::ACK, &payload(3000));
            f.truncate(f.len() - cut);
            let mut h = VnetHdr::parse(&hdr).unwrap();
            let _ = complete_checksum(&mut f, &h);
            let _ = h.shifted(-4);
            let mut scratch = vec![0u8; 1600];
            let _ = segment(&f, &h, &mut scratch, |_| {});
            h.gso_type = gso::TCPV4;
            h.gso_size = mss;
            let _ = segment(&f, &h, &mut scratch, |_| {});
        }
    }
}
