//! One pass over a frame for what the switch decides on: MACs, VLAN tags,
//! L3 addresses and the L4 ports or ICMP identifier, with the offset of each
//! layer so later stages can rewrite in place. Nothing is copied or
//! allocated; checksums are not verified (the switch forwards, it does not
//! terminate, so a bad checksum is the receiver's to judge).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::arp::ArpRepr;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ethernet::{self, ethertype, EthernetFrame};
use crate::flow::FlowKey;
use crate::icmpv4::{self, Icmpv4Packet};
use crate::icmpv6::{self, Icmpv6Packet};
use crate::ipv4::{protocol, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet};
use crate::tcp::{TcpFlags, TcpPacket};
use crate::udp::{self, UdpPacket};
use crate::vlan::{self, VlanTag};
use crate::MacAddr;

/// The fields of one frame the switch needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Parsed {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// Outer first: the raw VID of each 802.1ad/802.1Q tag (0 is a priority
    /// tag).
    pub tags: [Option<u16>; vlan::MAX_TAGS],
    pub tag_count: u8,
    /// The innermost EtherType.
    pub ethertype: u16,
    /// From the start of the frame.
    pub l3_offset: usize,
    pub l3: L3,
    /// From the start of the frame; 0 when no L4 header was parsed.
    pub l4_offset: usize,
    pub l4: L4,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum L3 {
    Arp(ArpRepr),
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        ttl: u8,
        header_len: usize,
        total_len: usize,
        /// MF set or a nonzero offset.
        fragment: bool,
        /// Offset 0: the fragment (or whole datagram) holding the L4 header.
        first_fragment: bool,
    },
    Ipv6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        /// The upper-layer protocol after any extension headers; 44 for a
        /// fragment other than the first.
        protocol: u8,
        hop_limit: u8,
        payload_len: usize,
    },
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum L4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        window: u16,
        /// Segment data in this packet (of this fragment, if fragmented).
        payload_len: usize,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Icmp {
        msg_type: u8,
        code: u8,
        /// Echo identifier; 0 for other messages.
        ident: u16,
    },
    Icmpv6 {
        msg_type: u8,
        code: u8,
        /// Echo identifier; 0 for other messages.
        ident: u16,
    },
    None,
}

fn at(offset: usize) -> impl Fn(Error) -> Error {
    move |e| e.with_offset(offset)
}

impl Parsed {
    /// Parses `frame` from its Ethernet header on. An error names the first
    /// layer that failed and where it starts; a protocol this does not know
    /// is not an error (`L3::Other`, `L4::None`).
    pub fn parse(frame: &[u8]) -> Result<Parsed> {
        let eth = EthernetFrame::new_checked(frame)?;
        let mut ethertype = eth.ethertype();
        let mut off = ethernet::HEADER_LEN;
        let mut tags = [None; vlan::MAX_TAGS];
        let mut tag_count = 0;
        while vlan::is_tpid(ethertype) {
            if tag_count == vlan::MAX_TAGS {
                return Err(Error::new(Layer::Vlan, ErrorKind::TooManyTags).with_offset(off));
            }
            let tag = VlanTag::new_checked(&frame[off..]).map_err(at(off))?;
            tags[tag_count] = Some(tag.vid());
            tag_count += 1;
            ethertype = tag.ethertype();
            off += vlan::TAG_LEN;
        }

        let l3_bytes = &frame[off..];
        let (l3, l4_offset, l4) = match ethertype {
            ethertype::ARP => (
                L3::Arp(ArpRepr::parse(l3_bytes).map_err(at(off))?),
                0,
                L4::None,
            ),
            ethertype::IPV4 => parse_ipv4(l3_bytes, off)?,
            ethertype::IPV6 => parse_ipv6(l3_bytes, off)?,
            _ => (L3::Other, 0, L4::None),
        };

        Ok(Parsed {
            dst: eth.dst(),
            src: eth.src(),
            tags,
            tag_count: tag_count as u8,
            ethertype,
            l3_offset: off,
            l3,
            l4_offset,
            l4,
        })
    }

    /// The outermost VLAN tag's VID.
    pub fn vlan(&self) -> Option<u16> {
        self.tags[0]
    }

    /// The flow this packet belongs to: TCP and UDP by ports, ICMP and ICMPv6
    /// echo by identifier. `None` for everything else, including fragments
    /// without the L4 header and ICMP errors (whose flow is the quoted one).
    pub fn flow_key(&self) -> Option<FlowKey> {
        let (src, dst, protocol) = match self.l3 {
            L3::Ipv4 {
                src, dst, protocol, ..
            } => (src.into(), dst.into(), protocol),
            L3::Ipv6 {
                src, dst, protocol, ..
            } => (src.into(), dst.into(), protocol),
            L3::Arp(_) | L3::Other => return None,
        };
        let (src_port, dst_port) = match self.l4 {
            L4::Tcp {
                src_port, dst_port, ..
            }
            | L4::Udp { src_port, dst_port } => (src_port, dst_port),
            L4::Icmp {
                msg_type: icmpv4::msg::ECHO_REQUEST | icmpv4::msg::ECHO_REPLY,
                ident,
                ..
            }
            | L4::Icmpv6 {
                msg_type: icmpv6::msg::ECHO_REQUEST | icmpv6::msg::ECHO_REPLY,
                ident,
                ..
            } => (ident, 0),
            _ => return None,
        };
        Some(FlowKey {
            src,
            dst,
            protocol,
            src_port,
            dst_port,
        })
    }
}

type Layers = (L3, usize, L4);

fn parse_ipv4(bytes: &[u8], off: usize) -> Result<Layers> {
    let p = Ipv4Packet::new_checked(bytes).map_err(at(off))?;
    let first_fragment = p.frag_offset() == 0;
    let l3 = L3::Ipv4 {
        src: p.src_addr(),
        dst: p.dst_addr(),
        protocol: p.protocol(),
        ttl: p.ttl(),
        header_len: p.header_len(),
        total_len: p.total_len(),
        fragment: p.is_fragment(),
        first_fragment,
    };
    if !first_fragment {
        return Ok((l3, 0, L4::None));
    }
    let l4_off = off + p.header_len();
    let (l4_offset, l4) = parse_l4(p.protocol(), false, p.payload(), l4_off, p.is_fragment())?;
    Ok((l3, l4_offset, l4))
}

fn parse_ipv6(bytes: &[u8], off: usize) -> Result<Layers> {
    let p = Ipv6Packet::new_checked(bytes).map_err(at(off))?;
    let upper = ipv6::walk(&p).map_err(at(off))?;
    let l3 = L3::Ipv6 {
        src: p.src_addr(),
        dst: p.dst_addr(),
        protocol: upper.protocol,
        hop_limit: p.hop_limit(),
        payload_len: p.payload_len(),
    };
    if upper.protocol == protocol::IPV6_FRAG {
        return Ok((l3, 0, L4::None));
    }
    // walk() kept upper.offset within the payload.
    let l4_bytes = &bytes[upper.offset..ipv6::HEADER_LEN + p.payload_len()];
    let (l4_offset, l4) = parse_l4(
        upper.protocol,
        true,
        l4_bytes,
        off + upper.offset,
        upper.fragmented,
    )?;
    Ok((l3, l4_offset, l4))
}

/// Reads the L4 header in `bytes`, which start at `off` in the frame. In a
/// first fragment the UDP length covers the whole datagram, more than
/// `bytes` holds, so only the ports are read.
fn parse_l4(
    proto: u8,
    v6: bool,
    bytes: &[u8],
    off: usize,
    fragmented: bool,
) -> Result<(usize, L4)> {
    let l4 = match proto {
        protocol::TCP => {
            let p = TcpPacket::new_checked(bytes).map_err(at(off))?;
            L4::Tcp {
                src_port: p.src_port(),
                dst_port: p.dst_port(),
                flags: p.flags(),
                seq: p.seq_number(),
                ack: p.ack_number(),
                window: p.window(),
                payload_len: p.payload().len(),
            }
        }
        protocol::UDP => {
            let p = if fragmented {
                if bytes.len() < udp::HEADER_LEN {
                    return Err(
                        Error::truncated(Layer::Udp, udp::HEADER_LEN, bytes.len()).with_offset(off)
                    );
                }
                UdpPacket::new_unchecked(bytes)
            } else {
                UdpPacket::new_checked(bytes).map_err(at(off))?
            };
            L4::Udp {
                src_port: p.src_port(),
                dst_port: p.dst_port(),
            }
        }
        protocol::ICMP if !v6 => {
            let p = Icmpv4Packet::new_checked(bytes).map_err(at(off))?;
            L4::Icmp {
                msg_type: p.msg_type(),
                code: p.code(),
                ident: if p.is_echo() { p.echo_ident() } else { 0 },
            }
        }
        protocol::ICMPV6 if v6 => {
            let p = Icmpv6Packet::new_checked(bytes).map_err(at(off))?;
            L4::Icmpv6 {
                msg_type: p.msg_type(),
                code: p.code(),
                ident: if p.is_echo() { p.echo_ident() } else { 0 },
            }
        }
        _ => return Ok((0, L4::None)),
    };
    Ok((off, l4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arp::ArpOp;
    use crate::fixtures::*;

    fn parse(f: &[u8]) -> Parsed {
        Parsed::parse(f).unwrap()
    }

    fn key(f: &[u8]) -> Option<String> {
        parse(f).flow_key().map(|k| k.to_string())
    }

    #[test]
    fn arp_request() {
        let p = parse(&ARP_REQUEST);
        assert!(p.dst.is_broadcast());
        assert_eq!(p.src.to_string(), "02:42:0a:00:00:02");
        assert_eq!((p.tag_count, p.tags, p.vlan()), (0, [None, None], None));
        assert_eq!(
            (p.ethertype, p.l3_offset, p.l4_offset),
            (ethertype::ARP, 14, 0)
        );
        let L3::Arp(arp) = p.l3 else { panic!("{p:?}") };
        assert_eq!(arp.op, ArpOp::Request);
        assert_eq!(arp.target_ip, Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(p.l4, L4::None);
        assert_eq!(p.flow_key(), None);
    }

    #[test]
    fn tcp_syn() {
        let p = parse(&TCP_SYN);
        assert_eq!(
            p.l3,
            L3::Ipv4 {
                src: Ipv4Addr::new(10, 0, 0, 2),
                dst: Ipv4Addr::new(10, 0, 0, 3),
                protocol: protocol::TCP,
                ttl: 64,
                header_len: 20,
                total_len: 60,
                fragment: false,
                first_fragment: true,
            }
        );
        assert_eq!(p.l4_offset, 34);
        assert_eq!(
            p.l4,
            L4::Tcp {
                src_port: 40000,
                dst_port: 80,
                flags: TcpFlags::SYN,
                seq: 2283063338,
                ack: 0,
                window: 64240,
                payload_len: 0,
            }
        );
        assert_eq!(key(&TCP_SYN).unwrap(), "tcp 10.0.0.2:40000 -> 10.0.0.3:80");
        let L4::Tcp { payload_len, .. } = parse(&TCP_PSH_ACK).l4 else {
            panic!()
        };
        assert_eq!(payload_len, 18);
    }

    #[test]
    fn udp_and_icmp() {
        let p = parse(&UDP_DNS_QUERY);
        assert_eq!(
            p.l4,
            L4::Udp {
                src_port: 41234,
                dst_port: 53
            }
        );
        assert_eq!(
            key(&UDP_DNS_QUERY).unwrap(),
            "udp 10.0.0.2:41234 -> 10.0.0.3:53"
        );

        let p = parse(&ICMPV4_ECHO_REQUEST);
        assert_eq!(
            p.l4,
            L4::Icmp {
                msg_type: 8,
                code: 0,
                ident: 3755
            }
        );
        assert_eq!(
            key(&ICMPV4_ECHO_REQUEST).unwrap(),
            "icmp 10.0.0.2 -> 10.0.0.3 id 3755"
        );

        let p = parse(&ICMPV4_PORT_UNREACHABLE);
        assert_eq!(
            p.l4,
            L4::Icmp {
                msg_type: 3,
                code: 3,
                ident: 0
            }
        );
        assert_eq!(p.flow_key(), None);
    }

    #[test]
    fn ipv6() {
        let p = parse(&IPV6_HOPOPT_TCP_SYN);
        let L3::Ipv6 {
            protocol,
            hop_limit,
            payload_len,
            ..
        } = p.l3
        else {
            panic!("{p:?}")
        };
        assert_eq!((protocol, hop_limit, payload_len), (protocol::TCP, 64, 48));
        assert_eq!((p.l3_offset, p.l4_offset), (14, 62));
        assert_eq!(
            key(&IPV6_HOPOPT_TCP_SYN).unwrap(),
            "tcp [fd00::2]:40001 -> [fd00::3]:8080"
        );

        let p = parse(&ICMPV6_ECHO_REQUEST);
        assert_eq!(
            p.l4,
            L4::Icmpv6 {
                msg_type: 128,
                code: 0,
                ident: 3756
            }
        );
        assert_eq!(
            key(&ICMPV6_ECHO_REQUEST).unwrap(),
            "icmpv6 fd00::2 -> fd00::3 id 3756"
        );

        let p = parse(&ICMPV6_NEIGHBOR_SOLICIT);
        assert_eq!(
            p.l4,
            L4::Icmpv6 {
                msg_type: 135,
                code: 0,
                ident: 0
            }
        );
        assert_eq!(p.flow_key(), None);
    }

    #[test]
    fn ipv4_fragments() {
        let p = parse(&IPV4_FIRST_FRAGMENT);
        let L3::Ipv4 {
            fragment,
            first_fragment,
            ..
        } = p.l3
        else {
            panic!()
        };
        assert!(fragment && first_fragment);
        assert_eq!(
            p.l4,
            L4::Icmp {
                msg_type: 8,
                code: 0,
                ident: 3928
            }
        );

        let p = parse(&IPV4_LAST_FRAGMENT);
        let L3::Ipv4 {
            fragment,
            first_fragment,
            ..
        } = p.l3
        else {
            panic!()
        };
        assert!(fragment && !first_fragment);
        assert_eq!((p.l4_offset, p.l4), (0, L4::None));
        assert_eq!(p.flow_key(), None);
    }

    #[test]
    fn udp_first_fragment_reads_ports_only() {
        // The DNS query cut after 16 bytes of UDP, MF set: its length field
        // (37) covers more than this fragment holds.
        let mut f = UDP_DNS_QUERY[..14 + 20 + 16].to_vec();
        f[16..18].copy_from_slice(&36u16.to_be_bytes());
        f[20] |= 0x20;
        let p = parse(&f);
        assert_eq!(
            p.l4,
            L4::Udp {
                src_port: 41234,
                dst_port: 53
            }
        );
        // The same bytes unfragmented are a lying UDP length.
        f[20] &= !0x20;
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!((e.layer, e.offset), (Layer::Udp, 34));
        // A first fragment too short for the ports.
        let mut f = UDP_DNS_QUERY[..14 + 20 + 6].to_vec();
        f[16..18].copy_from_slice(&26u16.to_be_bytes());
        f[20] |= 0x20;
        assert_eq!(
            Parsed::parse(&f),
            Err(Error::truncated(Layer::Udp, 8, 6).with_offset(34))
        );
    }

    #[test]
    fn vlan_tags() {
        let p = parse(&VLAN100_ICMPV4_ECHO_REQUEST);
        assert_eq!(
            (p.tags, p.tag_count, p.vlan()),
            ([Some(100), None], 1, Some(100))
        );
        assert_eq!(
            (p.ethertype, p.l3_offset, p.l4_offset),
            (ethertype::IPV4, 18, 38)
        );
        assert_eq!(p.flow_key(), parse(&ICMPV4_ECHO_REQUEST).flow_key());

        let p = parse(&QINQ_ARP_REQUEST);
        assert_eq!(
            (p.tags, p.tag_count, p.vlan()),
            ([Some(200), Some(100)], 2, Some(200))
        );
        assert_eq!((p.ethertype, p.l3_offset), (ethertype::ARP, 22));

        // A priority tag: VID 0 with PCP 5.
        let mut f = ARP_REQUEST.to_vec();
        f.splice(12..12, [0x81, 0x00, 0xa0, 0x00]);
        assert_eq!(parse(&f).tags, [Some(0), None]);
    }

    #[test]
    fn triple_tag_is_rejected() {
        let mut f = QINQ_ARP_REQUEST.to_vec();
        f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!(
            e,
            Error::new(Layer::Vlan, ErrorKind::TooManyTags).with_offset(22)
        );
        assert_eq!(e.to_string(), "vlan at offset 22: more than 2 VLAN tags");
    }

    #[test]
    fn padding_is_not_payload() {
        let mut f = ARP_REQUEST.to_vec();
        f.resize(60, 0);
        assert_eq!(parse(&f).l3, parse(&ARP_REQUEST).l3);
        let mut f = TCP_SYN.to_vec();
        f.resize(TCP_SYN.len() + 10, 0xee);
        assert_eq!(parse(&f), parse(&TCP_SYN));
    }

    #[test]
    fn unknown_protocols_are_not_errors() {
        let mut f = TCP_SYN.to_vec();
        f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
        let p = parse(&f);
        assert_eq!(
            (p.ethertype, p.l3, p.l4, p.l4_offset),
            (0x88cc, L3::Other, L4::None, 0)
        );
        let mut f = TCP_SYN.to_vec();
        f[23] = protocol::GRE;
        let p = parse(&f);
        assert_eq!((p.l4, p.l4_offset, p.flow_key()), (L4::None, 0, None));
        // ICMPv6 over IPv4 is not read as ICMPv6.
        f[23] = protocol::ICMPV6;
        assert_eq!(parse(&f).l4, L4::None);
    }

    /// The layer an error must name when `f` (which parses) is cut to `n`
    /// bytes, and where that layer starts. `None` when the prefix still
    /// holds every byte the headers claim.
    fn expected_failure(full: &Parsed, n: usize) -> Option<(Layer, usize)> {
        if n < ethernet::HEADER_LEN {
            return Some((Layer::Ethernet, 0));
        }
        for i in 0..usize::from(full.tag_count) {
            let tci = ethernet::HEADER_LEN + i * vlan::TAG_LEN;
            if n < tci + vlan::TAG_LEN {
                return Some((Layer::Vlan, tci));
            }
        }
        let l3 = full.l3_offset;
        // The IP length fields cover the L4 header, so a cut anywhere in
        // the datagram fails at L3 before L4 is read.
        let (layer, end) = match full.l3 {
            L3::Arp(_) => (Layer::Arp, l3 + 28),
            L3::Ipv4 { total_len, .. } => (Layer::Ipv4, l3 + total_len),
            L3::Ipv6 { payload_len, .. } => (Layer::Ipv6, l3 + 40 + payload_len),
            L3::Other => return None,
        };
        (n < end).then_some((layer, l3))
    }

    #[test]
    fn every_prefix_of_every_fixture() {
        for (name, f) in ALL {
            let full = Parsed::parse(f).unwrap_or_else(|e| panic!("{name}: {e}"));
            for n in 0..f.len() {
                let got = Parsed::parse(&f[..n]);
                match (expected_failure(&full, n), got) {
                    (None, Ok(_)) => {}
                    (Some((layer, offset)), Err(e)) => {
                        assert_eq!(
                            (e.layer, e.offset),
                            (layer, offset),
                            "{name} cut to {n}: {e}"
                        )
                    }
                    (want, got) => panic!("{name} cut to {n}: expected {want:?}, got {got:?}"),
                }
            }
        }
    }

    /// Sets the IPv4 total length of an untagged frame and cuts the frame to
    /// match, so only the L4 header is short.
    fn shorten_datagram(frame: &[u8], total_len: usize) -> Vec<u8> {
        let mut f = frame[..14 + total_len].to_vec();
        f[16..18].copy_from_slice(&(total_len as u16).to_be_bytes());
        Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        f
    }

    #[test]
    fn truncated_l4_headers_name_their_layer() {
        let f = shorten_datagram(&TCP_SYN, 30);
        assert_eq!(
            Parsed::parse(&f),
            Err(Error::truncated(Layer::Tcp, 20, 10).with_offset(34))
        );
        let f = shorten_datagram(&UDP_DNS_QUERY, 26);
        assert_eq!(
            Parsed::parse(&f),
            Err(Error::truncated(Layer::Udp, 8, 6).with_offset(34))
        );
        let f = shorten_datagram(&ICMPV4_ECHO_REQUEST, 24);
        assert_eq!(
            Parsed::parse(&f),
            Err(Error::truncated(Layer::Icmpv4, 8, 4).with_offset(34))
        );
        let mut f = ICMPV6_ECHO_REQUEST[..14 + 40 + 4].to_vec();
        f[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            Parsed::parse(&f),
            Err(Error::truncated(Layer::Icmpv6, 8, 4).with_offset(54))
        );
    }

    #[test]
    fn lying_lengths() {
        // IHL 15 on a packet whose buffer holds 40 bytes of IP.
        let mut f = TCP_SYN[..54].to_vec();
        f[14] = 0x4f;
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!(
            e,
            Error::new(Layer::Ipv4, ErrorKind::BadHeaderLen(60)).with_offset(14)
        );

        // Total length past the buffer.
        let mut f = TCP_SYN.to_vec();
        f[16..18].copy_from_slice(&1500u16.to_be_bytes());
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::BadTotalLen {
                claimed: 1500,
                available: 60
            }
        );

        // UDP length below its own header.
        let mut f = UDP_DNS_QUERY.to_vec();
        f[38..40].copy_from_slice(&4u16.to_be_bytes());
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!((e.layer, e.offset), (Layer::Udp, 34));

        // TCP data offset 15 in a 40-byte segment.
        let mut f = TCP_SYN.to_vec();
        f[46] = 0xf0;
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!(
            e,
            Error::new(Layer::Tcp, ErrorKind::BadHeaderLen(60)).with_offset(34)
        );

        // An IPv6 hop-by-hop header longer than the payload.
        let mut f = IPV6_HOPOPT_TCP_SYN.to_vec();
        f[55] = 9;
        let e = Parsed::parse(&f).unwrap_err();
        assert_eq!(
            e,
            Error::truncated(Layer::Ipv6, 40 + 80, 88).with_offset(14)
        );
    }
}
