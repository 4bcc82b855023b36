//! The switch's own address on each network: it answers ARP for the gateway
//! address, ICMP echo to it and its UDP and TCP services, as the Linux bridge device
//! and the host behind it do for Docker. Builders only; the pipeline
//! decides when they run.

use std::net::Ipv4Addr;

use packet::arp::{ArpOp, ArpRepr};
use packet::ethernet::{self, ethertype, EthernetRepr};
use packet::icmpv4::Icmpv4Repr;
use packet::ipv4::{self, Ipv4Repr};
use packet::tcp::TcpRepr;
use packet::udp::UdpRepr;
use packet::MacAddr;

use crate::fdb::Domain;

/// TTL of packets the switch originates, as Linux's default.
pub const DEFAULT_TTL: u8 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gateway {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// The L2 domain the gateway sits in: its network's own VLAN.
    pub domain: Domain,
}

impl Gateway {
    /// A locally administered MAC derived from the gateway address, so
    /// restarts keep neighbours' ARP caches valid.
    pub fn mac_for(ip: Ipv4Addr) -> MacAddr {
        MacAddr::from_ipv4(ip)
    }

    /// Whether `req` is an ARP request this gateway answers.
    pub fn answers_arp(&self, req: &ArpRepr) -> bool {
        req.op == ArpOp::Request && req.target_ip == self.ip
    }
}

pub const ARP_REPLY_LEN: usize = ethernet::HEADER_LEN + 28;

/// Writes the ARP reply to `req` into `buf` (`ARP_REPLY_LEN` bytes).
pub fn emit_arp_reply(buf: &mut [u8], gw: &Gateway, req: &ArpRepr) {
    let (eth, arp) = buf.split_at_mut(ethernet::HEADER_LEN);
    EthernetRepr {
        dst: req.sender_mac,
        src: gw.mac,
        ethertype: ethertype::ARP,
    }
    .emit(eth);
    ArpRepr {
        op: ArpOp::Reply,
        sender_mac: gw.mac,
        sender_ip: gw.ip,
        target_mac: req.sender_mac,
        target_ip: req.sender_ip,
    }
    .emit(arp);
}

/// An IPv4 packet the gateway sends, with the Ethernet header around it.
pub struct Reply<'a> {
    pub dst_mac: MacAddr,
    pub dst_ip: Ipv4Addr,
    pub body: Body<'a>,
}

/// What the packet carries.
pub enum Body<'a> {
    Icmp(Icmpv4Repr<'a>),
    Udp(UdpRepr<'a>),
    Tcp(TcpRepr<'a>),
}

impl Body<'_> {
    fn len(&self) -> usize {
        match self {
            Body::Icmp(icmp) => icmp.buffer_len(),
            Body::Udp(udp) => udp.buffer_len(),
            Body::Tcp(tcp) => tcp.buffer_len(),
        }
    }
}

impl Reply<'_> {
    pub fn frame_len(&self) -> usize {
        ethernet::HEADER_LEN + Ipv4Repr::HEADER_LEN + self.body.len()
    }

    pub fn emit(&self, buf: &mut [u8], gw: &Gateway) {
        let (eth, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        let (ip, l4) = rest.split_at_mut(Ipv4Repr::HEADER_LEN);
        EthernetRepr {
            dst: self.dst_mac,
            src: gw.mac,
            ethertype: ethertype::IPV4,
        }
        .emit(eth);
        let protocol = match self.body {
            Body::Icmp(_) => ipv4::protocol::ICMP,
            Body::Udp(_) => ipv4::protocol::UDP,
            Body::Tcp(_) => ipv4::protocol::TCP,
        };
        Ipv4Repr {
            src: gw.ip,
            dst: self.dst_ip,
            protocol,
            ttl: DEFAULT_TTL,
            payload_len: self.body.len(),
            ident: 0,
            dont_frag: false,
            dscp_ecn: 0,
        }
        .emit(ip);
        match &self.body {
            Body::Icmp(icmp) => icmp.emit(l4),
            Body::Udp(udp) => udp.emit_v4(l4, gw.ip, self.dst_ip),
            Body::Tcp(tcp) => tcp.emit_v4(l4, gw.ip, self.dst_ip),
        }
    }
}
