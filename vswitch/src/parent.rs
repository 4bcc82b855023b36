//! The parent of a macvlan or ipvlan network: the host interface its
//! endpoints appear on, attached as one more port of the network. This
//! module holds what the pipeline does differently at that port; the
//! rest is the bridge (macvlan, ipvlan L2) or the router (ipvlan L3).
//!
//! - macvlan: endpoints keep their own MACs, so the parent is a bridge
//!   port, except that a unicast frame from the segment must be for an
//!   endpoint's MAC (a promiscuous socket sees everyone's traffic; Linux's
//!   macvlan takes only its own).
//! - ipvlan L2: the segment sees every endpoint with the parent's MAC. On
//!   the way out the source MAC, and the sender hardware address of ARP,
//!   become the parent's; on the way in a frame for the parent's MAC goes
//!   to the endpoint holding its destination IPv4 address (or the ARP
//!   target address), with its destination MAC (and ARP target hardware
//!   address) rewritten to that endpoint's own. Broadcast and multicast
//!   reach every endpoint.
//! - ipvlan L3: the switch routes. Endpoints have a device default route
//!   and the switch answers their ARP for any address with its own MAC
//!   (so everything they send is routed); on the segment it answers ARP
//!   for endpoint addresses with the parent's MAC. No broadcast or
//!   multicast crosses in either direction.
//!
//! IPv4 only: an IPv6 unicast for the parent's MAC has no endpoint here.

use std::net::Ipv4Addr;

use packet::arp::{ArpOp, ArpPacket, ArpRepr};
use packet::ethernet::{self, ethertype, EthernetFrame};
use packet::{vlan, MacAddr, Parsed, L3};

use crate::config::{Driver, Ipv4Net, IpvlanMode};
use crate::output::{Output, Payload};
use crate::port::PortId;
use crate::stats::DropReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Macvlan,
    IpvlanL2,
    IpvlanL3,
}

impl Kind {
    pub fn new(driver: Driver, mode: IpvlanMode) -> Option<Kind> {
        match (driver, mode) {
            (Driver::Bridge, _) => None,
            (Driver::Macvlan, _) => Some(Kind::Macvlan),
            (Driver::Ipvlan, IpvlanMode::L2) => Some(Kind::IpvlanL2),
            (Driver::Ipvlan, IpvlanMode::L3) => Some(Kind::IpvlanL3),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    pub port: PortId,
    pub kind: Kind,
    /// The interface's own MAC: what ipvlan endpoints appear with.
    pub mac: MacAddr,
    /// The network's endpoints: (address, own MAC).
    pub endpoints: Vec<(Option<Ipv4Addr>, MacAddr)>,
}

/// The MAC a parent answers with until the I/O layer reads the
/// interface's own (`Switch::set_parent_mac`): offline, traces use it.
pub fn placeholder_mac(subnet: Ipv4Net) -> MacAddr {
    MacAddr::from_ipv4(subnet.network())
}

impl Parent {
    /// Whether the switch routes for this network's endpoints (ipvlan L3)
    /// rather than bridging them onto the segment.
    pub fn routes(&self) -> bool {
        self.kind == Kind::IpvlanL3
    }

    fn endpoint_mac(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.endpoints.iter().find(|e| e.0 == Some(ip)).map(|e| e.1)
    }

    /// Takes a frame that came in by the parent: `Ok(true)` when it was
    /// rewritten (parse it again), `Ok(false)` to go on as it is. On L3,
    /// a unicast for the parent's MAC is readdressed to `router`, the
    /// switch's MAC towards the endpoints, so the routing path takes it.
    pub fn ingress(
        &self,
        parsed: &Parsed,
        frame: &mut [u8],
        router: MacAddr,
    ) -> Result<bool, DropReason> {
        let dst = parsed.dst;
        if dst.is_multicast() {
            let arp_request = matches!(parsed.l3, L3::Arp(_));
            return match self.kind {
                Kind::IpvlanL3 if !arp_request => Err(DropReason::NotRouted),
                _ => Ok(false),
            };
        }
        match self.kind {
            Kind::Macvlan if self.endpoints.iter().any(|e| e.1 == dst) => Ok(false),
            Kind::IpvlanL2 if dst == self.mac => {
                let to = match parsed.l3 {
                    L3::Ipv4 { dst, .. } => dst,
                    L3::Arp(arp) => arp.target_ip,
                    _ => return Err(DropReason::NotAnEndpoint),
                };
                let mac = self.endpoint_mac(to).ok_or(DropReason::NotAnEndpoint)?;
                readdress(parsed, frame, self.mac, mac);
                Ok(true)
            }
            Kind::IpvlanL3 if dst == self.mac => {
                readdress(parsed, frame, self.mac, router);
                Ok(true)
            }
            _ => Err(DropReason::NotAnEndpoint),
        }
    }

    /// ipvlan L3: whether the switch answers `arp`, which came in by
    /// `ingress`. Endpoints get an answer for any address but their own,
    /// so the switch is every next hop; the segment gets one for
    /// endpoint addresses.
    pub fn answers_arp(&self, ingress: PortId, arp: &ArpRepr) -> bool {
        if self.kind != Kind::IpvlanL3 || arp.op != ArpOp::Request {
            return false;
        }
        if ingress == self.port {
            return self.endpoint_mac(arp.target_ip).is_some();
        }
        arp.target_ip != arp.sender_ip && !arp.target_ip.is_unspecified()
    }

    /// ipvlan: what leaves by the parent carries the parent's MAC as its
    /// source, and so does ARP inside. Ethernet sources are rewritten in
    /// the shared ingress frame (other endpoints may see it: a Linux
    /// ipvlan endpoint sees its siblings with the parent's MAC too); ARP
    /// and frames the switch built get a copy of their own.
    pub fn egress(&self, out: &mut Output, frame: &mut [u8]) {
        if self.kind == Kind::Macvlan {
            return;
        }
        for i in 0..out.emits().len() {
            let e = &out.emits()[i];
            if e.port != self.port {
                continue;
            }
            let own = matches!(e.payload, Payload::Built(_)) || is_arp(frame);
            let bytes = match own {
                true => out.detach(i, frame),
                false => Some(&mut *frame),
            };
            if let Some(bytes) = bytes {
                set_source(bytes, self.mac);
            }
        }
    }
}

/// The offset of the L3 header after any VLAN tags, and its EtherType.
fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    let mut off = ethernet::HEADER_LEN - 2;
    loop {
        let ty = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
        if !vlan::is_tpid(ty) {
            return Some((off + 2, ty));
        }
        off += vlan::TAG_LEN;
    }
}

fn is_arp(frame: &[u8]) -> bool {
    l3(frame).is_some_and(|(_, ty)| ty == ethertype::ARP)
}

/// Writes `mac` as the Ethernet source and, in ARP, the sender hardware address.
pub fn set_source(frame: &mut [u8], mac: MacAddr) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else {
        return;
    };
    eth.set_src(mac);
    if let Some((off, ethertype::ARP)) = l3(frame) {
        if let Ok(mut arp) = ArpPacket::new_checked(&mut frame[off..]) {
            arp.set_sender_hw_addr(mac);
        }
    }
}

/// Writes `to` as the Ethernet destination and, in ARP, as the target
/// hardware address where that was `from`.
fn readdress(parsed: &Parsed, frame: &mut [u8], from: MacAddr, to: MacAddr) {
    if let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) {
        eth.set_dst(to);
    }
    if let L3::Arp(arp) = parsed.l3 {
        if arp.target_mac != from {
            return;
        }
        if let Ok(mut view) = ArpPacket::new_checked(&mut frame[parsed.l3_offset..]) {
            view.set_target_hw_addr(to);
        }
    }
}

#[cfg(test)]
mod tests;
