//! Builders for the frames tests push through the switch. They use the
//! packet crate's representations, so what they build is what the switch
//! itself would build.

use std::net::{Ipv4Addr, Ipv6Addr};

use packet::arp::{ArpOp, ArpRepr};
use packet::ethernet::{ethertype, EthernetRepr, HEADER_LEN};
use packet::icmpv4::Icmpv4Repr;
use packet::icmpv6::Icmpv6Packet;
use packet::ipv4::{protocol, Ipv4Repr};
use packet::ipv6::Ipv6Repr;
use packet::tcp::{TcpFlags, TcpRepr};
use packet::udp::UdpPacket;
use packet::{MacAddr, VlanId};
use vswitch::dhcp::message::Op;
use vswitch::dhcp::{DhcpRepr, MessageType};

pub fn mac(s: &str) -> MacAddr {
    s.parse().expect("test MAC")
}

pub fn ether(dst: MacAddr, src: MacAddr, ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; HEADER_LEN + payload.len()];
    EthernetRepr {
        dst,
        src,
        ethertype: ty,
    }
    .emit(&mut f[..HEADER_LEN]);
    f[HEADER_LEN..].copy_from_slice(payload);
    f
}

/// `frame` with an 802.1Q tag for `vid` inserted.
pub fn tagged(mut frame: Vec<u8>, vid: u16) -> Vec<u8> {
    packet::vlan::push_tag(&mut frame, VlanId::try_new(vid).expect("test VLAN"), 0);
    frame
}

pub fn arp_request(src: MacAddr, src_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    arp(
        MacAddr::BROADCAST,
        ArpRepr {
            op: ArpOp::Request,
            sender_mac: src,
            sender_ip: src_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        },
    )
}

/// `src`'s answer to `dst`'s question: "`src`'s address is at its MAC".
pub fn arp_reply(src: (MacAddr, Ipv4Addr), dst: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    arp(
        dst.0,
        ArpRepr {
            op: ArpOp::Reply,
            sender_mac: src.0,
            sender_ip: src.1,
            target_mac: dst.0,
            target_ip: dst.1,
        },
    )
}

/// `repr` in a frame to `dst` from its sender's MAC.
pub fn arp(dst: MacAddr, repr: ArpRepr) -> Vec<u8> {
    let mut a = [0u8; 28];
    repr.emit(&mut a);
    ether(dst, repr.sender_mac, ethertype::ARP, &a)
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; Ipv4Repr::HEADER_LEN + payload.len()];
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        ttl,
        payload_len: payload.len(),
        ident: 1,
        dont_frag: true,
        dscp_ecn: 0,
    }
    .emit(&mut p[..Ipv4Repr::HEADER_LEN]);
    p[Ipv4Repr::HEADER_LEN..].copy_from_slice(payload);
    p
}

/// An Ethernet frame carrying an ICMP echo request.
pub fn ping(
    src: (MacAddr, Ipv4Addr),
    dst: (MacAddr, Ipv4Addr),
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    let mut i = vec![0u8; icmp.buffer_len()];
    icmp.emit(&mut i);
    let ip = ipv4(src.1, dst.1, protocol::ICMP, 64, &i);
    ether(dst.0, src.0, ethertype::IPV4, &ip)
}

/// An Ethernet frame carrying a UDP datagram with a correct checksum.
pub fn udp(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&src.2.to_be_bytes());
    u[2..4].copy_from_slice(&dst.2.to_be_bytes());
    let len = u.len() as u16;
    u[4..6].copy_from_slice(&len.to_be_bytes());
    u[8..].copy_from_slice(payload);
    let mut view = UdpPacket::new_checked(&mut u[..]).expect("valid UDP");
    view.fill_checksum_v4(src.1, dst.1);
    let ip = ipv4(src.1, dst.1, protocol::UDP, 64, &u);
    ether(dst.0, src.0, ethertype::IPV4, &ip)
}

/// A TCP segment's fields, for `tcp`.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
}

impl Seg {
    pub fn syn(seq: u32) -> Seg {
        Seg {
            flags: TcpFlags::SYN,
            seq,
            ack: 0,
        }
    }

    pub fn syn_ack(seq: u32, ack: u32) -> Seg {
        Seg {
            flags: TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
            seq,
            ack,
        }
    }

    pub fn ack(seq: u32, ack: u32) -> Seg {
        Seg {
            flags: TcpFlags::ACK,
            seq,
            ack,
        }
    }
}

/// An Ethernet frame carrying a TCP segment with a correct checksum.
pub fn tcp(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    seg: Seg,
    payload: &[u8],
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: src.2,
        dst_port: dst.2,
        seq_number: seg.seq,
        ack_number: seg.ack,
        flags: seg.flags,
        window: 64240,
        payload,
    };
    let mut t = vec![0u8; repr.buffer_len()];
    repr.emit_v4(&mut t, src.1, dst.1);
    let ip = ipv4(src.1, dst.1, protocol::TCP, 64, &t);
    ether(dst.0, src.0, ethertype::IPV4, &ip)
}

/// A DHCP client's broadcast of message `ty`; `requested` also names
/// `server` as the server chosen, as a REQUEST does.
pub fn dhcp(
    client: MacAddr,
    ty: MessageType,
    requested: Option<Ipv4Addr>,
    server: Ipv4Addr,
) -> Vec<u8> {
    let mut m = DhcpRepr::new(Op::BootRequest, ty, 0x1234_5678, client);
    m.requested_ip = requested;
    m.server_id = requested.map(|_| server);
    let mut b = vec![0; m.buffer_len()];
    m.emit(&mut b);
    udp(
        (client, Ipv4Addr::UNSPECIFIED, 68),
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST, 67),
        &b,
    )
}

/// An Ethernet frame carrying IPv6 (hop limit 255) with `payload` after the
/// fixed header.
pub fn ipv6(
    src: (MacAddr, Ipv6Addr),
    dst: (MacAddr, Ipv6Addr),
    next_header: u8,
    payload: &[u8],
) -> Vec<u8> {
    let repr = Ipv6Repr {
        src: src.1,
        dst: dst.1,
        next_header,
        hop_limit: 255,
        payload_len: payload.len(),
    };
    let mut ip = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ip);
    ip[Ipv6Repr::HEADER_LEN..].copy_from_slice(payload);
    ether(dst.0, src.0, ethertype::IPV6, &ip)
}

/// A Neighbor Solicitation (135) or Advertisement (136) for `target` with
/// link-layer address options `(type, mac)`, sent from `src` to all nodes,
/// with a correct checksum.
pub fn neighbor(
    src: (MacAddr, Ipv6Addr),
    msg_type: u8,
    target: Ipv6Addr,
    options: &[(u8, MacAddr)],
) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut m = vec![msg_type, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    for (ty, mac) in options {
        m.extend_from_slice(&[*ty, 1]);
        m.extend_from_slice(&mac.0);
    }
    let mut view = Icmpv6Packet::new_checked(&mut m[..]).expect("valid ICMPv6");
    view.fill_checksum(src.1, all_nodes);
    let dst = (mac("33:33:00:00:00:01"), all_nodes);
    ipv6(src, dst, protocol::ICMPV6, &m)
}
