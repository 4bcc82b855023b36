//! Port security: a container speaks only as itself.
//!
//! On a tap port with `port_security` (the default) every frame must carry
//! the port's MAC as its Ethernet source; IPv4 must come from the port's
//! address (for `ip = "dhcp"` ports the address IPAM gives them, which is
//! what the DHCP server leases), except a DHCP DISCOVER or REQUEST from
//! 0.0.0.0 while a DHCP port has no address yet; ARP must name the port's
//! MAC and address as sender (or 0.0.0.0 in a probe, RFC 5227), so neither
//! a forged reply nor a gratuitous ARP can claim another endpoint.
//!
//! IPv6: the configuration gives ports no IPv6 addresses, so a port may
//! speak from `::` (duplicate address detection) or a link-local fe80::/10
//! address, except the one another endpoint derives from its MAC (modified
//! EUI-64, as Linux does by default). Neighbor Discovery is held to the
//! same: a solicitation's or advertisement's link-layer address options
//! must name the port's MAC, and an advertisement may only claim an address
//! the port may speak from. An ND message whose options cannot be read is
//! malformed. Other EtherTypes are held to the MAC alone.
//!
//! Sans-IO and stateless: the pipeline asks before it learns anything from
//! the frame, so a spoofed frame leaves no trace in the FDB, the neighbour
//! table or conntrack.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use packet::arp::ArpOp;
use packet::icmpv6::msg;
use packet::ndp::{self, NeighborMessage};
use packet::{MacAddr, Parsed, L3, L4};

use crate::dhcp::message::{option, DhcpPacket};
use crate::dhcp::MessageType;
use crate::services::{DHCP_CLIENT_PORT, DHCP_SERVER_PORT};
use crate::stats::DropReason;

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
    SourceIpv6(Ipv6Addr),
    /// A Neighbor Discovery link-layer address option.
    NdLinkAddr(MacAddr),
    /// A Neighbor Advertisement's target.
    NdTarget(Ipv6Addr),
    /// A Neighbor Discovery message too short or with an unreadable option.
    NdMalformed,
}

impl Spoof {
    /// What the drop is counted as.
    pub fn reason(&self) -> DropReason {
        match self {
            Spoof::NdMalformed => DropReason::Malformed,
            _ => DropReason::Spoofed,
        }
    }
}

impl fmt::Display for Spoof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spoof::SourceMac(m) => write!(f, "source MAC {m} is not the port's"),
            Spoof::SourceIp(ip) => write!(f, "source address {ip} is not the port's"),
            Spoof::ArpSenderMac(m) => write!(f, "ARP sender MAC {m} is not the port's"),
            Spoof::ArpSenderIp(ip) => write!(f, "ARP sender address {ip} is not the port's"),
            Spoof::SourceIpv6(ip) => write!(f, "source address {ip} is not the port's"),
            Spoof::NdLinkAddr(m) => write!(f, "ND link-layer address {m} is not the port's"),
            Spoof::NdTarget(ip) => write!(f, "ND advertisement target {ip} is not the port's"),
            Spoof::NdMalformed => write!(f, "ND message malformed"),
        }
    }
}

impl Identity {
    /// Whether the frame `parsed` (of `frame`) may come from this endpoint;
    /// `endpoint` says whether a MAC is another port's endpoint.
    pub fn check(
        &self,
        parsed: &Parsed,
        frame: &[u8],
        endpoint: impl Fn(MacAddr) -> bool,
    ) -> Result<(), Spoof> {
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
            L3::Ipv6 { src, .. } => {
                if !src.is_unspecified() && !self.may_claim(src, &endpoint) {
                    return Err(Spoof::SourceIpv6(src));
                }
                match parsed.l4 {
                    L4::Icmpv6 {
                        msg_type: msg::NEIGHBOR_SOLICIT | msg::NEIGHBOR_ADVERT,
                        ..
                    } => self.check_neighbor(parsed, frame, &endpoint),
                    _ => Ok(()),
                }
            }
            L3::Other => Ok(()),
        }
    }

    /// An IPv6 address this endpoint may use: link-local and not the one
    /// derived from another endpoint's MAC.
    fn may_claim(&self, addr: Ipv6Addr, endpoint: &impl Fn(MacAddr) -> bool) -> bool {
        addr.segments()[0] & 0xffc0 == 0xfe80
            && ndp::link_local_mac(addr).is_none_or(|m| m == self.mac || !endpoint(m))
    }

    fn check_neighbor(
        &self,
        parsed: &Parsed,
        frame: &[u8],
        endpoint: &impl Fn(MacAddr) -> bool,
    ) -> Result<(), Spoof> {
        let L3::Ipv6 { payload_len, .. } = parsed.l3 else {
            return Ok(());
        };
        // Parsed::parse found the payload within the frame.
        let end = parsed.l3_offset + packet::ipv6::HEADER_LEN + payload_len;
        let body = frame.get(parsed.l4_offset..end).ok_or(Spoof::NdMalformed)?;
        let nd = NeighborMessage::new_checked(body).map_err(|_| Spoof::NdMalformed)?;
        for opt in nd.options() {
            let (ty, body) = opt.map_err(|_| Spoof::NdMalformed)?;
            if matches!(
                ty,
                ndp::option::SOURCE_LINK_ADDR | ndp::option::TARGET_LINK_ADDR
            ) {
                let mac = MacAddr::from_slice(body).ok_or(Spoof::NdMalformed)?;
                if mac != self.mac {
                    return Err(Spoof::NdLinkAddr(mac));
                }
            }
        }
        if nd.is_advert() && !self.may_claim(nd.target(), endpoint) {
            return Err(Spoof::NdTarget(nd.target()));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: MacAddr = MacAddr([0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02]);
    const DB: MacAddr = MacAddr([0x02, 0x42, 0x0a, 0x0a, 0x00, 0x03]);

    fn web() -> Identity {
        Identity {
            mac: WEB,
            ip: Some(Ipv4Addr::new(10, 10, 0, 2)),
            dhcp: false,
        }
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// An Ethernet frame from `src_mac` carrying IPv6 from `src` to ff02::1.
    fn v6(src_mac: MacAddr, src: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
        f.extend_from_slice(&src_mac.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&a("ff02::1").octets());
        f.extend_from_slice(payload);
        f
    }

    /// A solicitation (135) or advertisement (136) for `target` with
    /// link-layer address options `(type, mac)`.
    fn nd(ty: u8, target: Ipv6Addr, opts: &[(u8, MacAddr)]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0, 0x60, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        for (t, mac) in opts {
            m.extend_from_slice(&[*t, 1]);
            m.extend_from_slice(&mac.0);
        }
        m
    }

    fn check(frame: &[u8]) -> Result<(), Spoof> {
        let parsed = Parsed::parse(frame).unwrap();
        web().check(&parsed, frame, |m| m == DB)
    }

    const UDP: [u8; 8] = [0x0f, 0xa0, 0x0f, 0xa1, 0, 8, 0, 0];

    #[test]
    fn ipv6_sources_unspecified_and_link_local_only() {
        let own_ll = ndp::link_local(WEB);
        for src in [a("::"), own_ll, a("fe80::1234"), a("febf::1")] {
            assert_eq!(check(&v6(WEB, src, 17, &UDP)), Ok(()), "{src}");
        }
        let db_ll = ndp::link_local(DB);
        for src in [
            a("fd00::2"),
            a("2001:db8::2"),
            a("ff02::1"),
            a("::1"),
            db_ll,
        ] {
            assert_eq!(
                check(&v6(WEB, src, 17, &UDP)),
                Err(Spoof::SourceIpv6(src)),
                "{src}"
            );
        }
        // A link-local derived from a MAC that is no endpoint's is the port's to use.
        let stranger = ndp::link_local(MacAddr([0x02, 0, 0, 0, 0, 9]));
        assert_eq!(check(&v6(WEB, stranger, 17, &UDP)), Ok(()));
        // The MAC check comes first.
        assert_eq!(
            check(&v6(DB, ndp::link_local(WEB), 17, &UDP)),
            Err(Spoof::SourceMac(DB))
        );
    }

    #[test]
    fn neighbor_discovery_names_only_the_ports_mac_and_addresses() {
        let own_ll = ndp::link_local(WEB);
        let db_ll = ndp::link_local(DB);
        let (ns, na) = (msg::NEIGHBOR_SOLICIT, msg::NEIGHBOR_ADVERT);
        let (sll, tll) = (ndp::option::SOURCE_LINK_ADDR, ndp::option::TARGET_LINK_ADDR);
        let ok = [
            v6(WEB, own_ll, 58, &nd(ns, db_ll, &[(sll, WEB)])),
            // DAD: from ::, asking about its own tentative address.
            v6(WEB, a("::"), 58, &nd(ns, own_ll, &[])),
            v6(WEB, own_ll, 58, &nd(na, own_ll, &[(tll, WEB)])),
            // Unknown option types are skipped.
            v6(WEB, own_ll, 58, &nd(na, own_ll, &[(14, DB), (tll, WEB)])),
        ];
        for f in &ok {
            assert_eq!(check(f), Ok(()), "{f:02x?}");
        }
        let spoofs = [
            (
                v6(WEB, own_ll, 58, &nd(ns, db_ll, &[(sll, DB)])),
                Spoof::NdLinkAddr(DB),
            ),
            (
                v6(WEB, own_ll, 58, &nd(na, own_ll, &[(tll, DB)])),
                Spoof::NdLinkAddr(DB),
            ),
            (
                v6(WEB, a("::"), 58, &nd(na, own_ll, &[(sll, WEB), (tll, DB)])),
                Spoof::NdLinkAddr(DB),
            ),
            (
                v6(WEB, own_ll, 58, &nd(na, db_ll, &[(tll, WEB)])),
                Spoof::NdTarget(db_ll),
            ),
            (
                v6(WEB, own_ll, 58, &nd(na, a("fd00::3"), &[])),
                Spoof::NdTarget(a("fd00::3")),
            ),
        ];
        for (f, spoof) in &spoofs {
            assert_eq!(check(f), Err(*spoof), "{f:02x?}");
            assert_eq!(spoof.reason(), DropReason::Spoofed);
        }
    }

    #[test]
    fn unreadable_neighbor_discovery_is_malformed() {
        let own_ll = ndp::link_local(WEB);
        let good = nd(msg::NEIGHBOR_ADVERT, own_ll, &[(2, WEB)]);
        let mut zero_len = good.clone();
        zero_len[25] = 0;
        let mut past_end = good.clone();
        past_end[25] = 2;
        let bad = [good[..20].to_vec(), good[..25].to_vec(), zero_len, past_end];
        for m in &bad {
            let f = v6(WEB, own_ll, 58, m);
            assert_eq!(check(&f), Err(Spoof::NdMalformed), "{m:02x?}");
        }
        assert_eq!(Spoof::NdMalformed.reason(), DropReason::Malformed);
        // Every truncation of a genuine advertisement: the parser refuses
        // less than an ICMPv6 header; a message cut before the target or
        // inside an option is malformed; cut between the two, it has none.
        for len in 0..good.len() {
            let f = v6(WEB, own_ll, 58, &good[..len]);
            let Ok(parsed) = Parsed::parse(&f) else {
                assert!(len < 8, "{len}");
                continue;
            };
            let want = match len {
                ndp::HEADER_LEN => Ok(()),
                _ => Err(Spoof::NdMalformed),
            };
            assert_eq!(web().check(&parsed, &f, |m| m == DB), want, "{len}");
        }
    }
}
