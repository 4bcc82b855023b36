//! Port security: a container speaks only as itself.
//!
//! On a tap port with `port_security` (the default) every frame must carry
//! the port's MAC as its Ethernet source; IPv4 must come from the port's
//! address (for `ip = "dhcp"` ports the address IPAM gives them, which is
//! what the DHCP server leases), except a DHCP DISCOVER or REQUEST from
//! 0.0.0.0 while a DHCP port has no address yet; ARP must name the port's
//! MAC and address as sender (or 0.0.0.0 in a probe, RFC 5227), so neither
//! a forged reply nor a gratuitous ARP can claim another endpoint. IPv6 and
//! other EtherTypes are held to the MAC alone: the switch assigns no IPv6
//! addresses to check against.
//!
//! Sans-IO and stateless: the pipeline asks before it learns anything from
//! the frame, so a spoofed frame leaves no trace in the FDB, the neighbour
//! table or conntrack.

use core::fmt;
use std::net::Ipv4Addr;

use packet::arp::ArpOp;
use packet::{MacAddr, Parsed, L3, L4};

use crate::dhcp::message::{option, DhcpPacket};
use crate::dhcp::MessageType;
use crate::services::{DHCP_CLIENT_PORT, DHCP_SERVER_PORT};

/// Who a port's endpoint is, as the configuration says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub mac: MacAddr,
    /// `None` when the port has no address: then only a DHCP port's
    /// unaddressed DHCP may pass.
    pub ip: Option<Ipv4Addr>,
    /// `ip = "dhcp"`: may ask for its address from 0.0.0.0.
    pub dhcp: bool,
}

/// What a frame claimed that was not the port's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoof {
    SourceMac(MacAddr),
    SourceIp(Ipv4Addr),
    ArpSenderMac(MacAddr),
    ArpSenderIp(Ipv4Addr),
}

impl fmt::Display for Spoof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spoof::SourceMac(m) => write!(f, "source MAC {m} is not the port's"),
            Spoof::SourceIp(ip) => write!(f, "source address {ip} is not the port's"),
            Spoof::ArpSenderMac(m) => write!(f, "ARP sender MAC {m} is not the port's"),
            Spoof::ArpSenderIp(ip) => write!(f, "ARP sender address {ip} is not the port's"),
        }
    }
}

impl Identity {
    /// Whether the frame `parsed` (of `frame`) may come from this endpoint.
    pub fn check(&self, parsed: &Parsed, frame: &[u8]) -> Result<(), Spoof> {
        if parsed.src != self.mac {
            return Err(Spoof::SourceMac(parsed.src));
        }
        match parsed.l3 {
            L3::Arp(arp) => {
                if arp.sender_mac != self.mac {
                    return Err(Spoof::ArpSenderMac(arp.sender_mac));
                }
                let probe = arp.op == ArpOp::Request && arp.sender_ip.is_unspecified();
                if !probe && Some(arp.sender_ip) != self.ip {
                    return Err(Spoof::ArpSenderIp(arp.sender_ip));
                }
                Ok(())
            }
            L3::Ipv4 { src, .. } if Some(src) == self.ip => Ok(()),
            L3::Ipv4 { src, .. } if src.is_unspecified() && self.dhcp => {
                match asks_for_address(parsed, frame) {
                    true => Ok(()),
                    false => Err(Spoof::SourceIp(src)),
                }
            }
            L3::Ipv4 { src, .. } => Err(Spoof::SourceIp(src)),
            L3::Ipv6 { .. } | L3::Other => Ok(()),
        }
    }
}

/// A client's DHCP DISCOVER or REQUEST to the servers' port: what a host
/// without an address may send.
fn asks_for_address(parsed: &Parsed, frame: &[u8]) -> bool {
    let (
        L3::Ipv4 {
            total_len,
            first_fragment: true,
            fragment: false,
            ..
        },
        L4::Udp {
            src_port: DHCP_CLIENT_PORT,
            dst_port: DHCP_SERVER_PORT,
        },
    ) = (parsed.l3, parsed.l4)
    else {
        return false;
    };
    let end = (parsed.l3_offset + total_len).min(frame.len());
    let Some(payload) = frame.get(parsed.l4_offset + 8..end) else {
        return false;
    };
    let Ok(dhcp) = DhcpPacket::new_checked(payload) else {
        return false;
    };
    let kind = dhcp.options().find_map(|o| match o {
        Ok((option::MESSAGE_TYPE, [t])) => MessageType::try_from(*t).ok(),
        _ => None,
    });
    matches!(kind, Some(MessageType::Discover | MessageType::Request))
}
