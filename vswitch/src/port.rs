//! Ports as the pipeline sees them: identity, L2 membership and counters.
//! How a port moves bytes (TAP, AF_PACKET) is the I/O layer's business.

use core::fmt;
use std::net::Ipv4Addr;

use packet::MacAddr;

use crate::config::PortKind;
use crate::port_security::Identity;
use crate::stats::PortStats;
use crate::storm::TokenBucket;
use crate::vxlan::Tunnel;

/// Index of a port in the switch, stable for the switch's lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct PortId(pub u16);

impl PortId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The VLANs a port carries. VLAN 0 is the untagged domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanMembership {
    /// Frames arriving untagged (or priority-tagged) belong to this VLAN and
    /// leave this port untagged.
    pub access: u16,
    /// VLANs carried tagged, as a 4096-bit set.
    trunk: Box<[u64; 64]>,
}

/// `access` of a port that takes no untagged frames: above every VID.
const NO_ACCESS: u16 = u16::MAX;

/// How a frame of a given VLAN leaves a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    Untagged,
    Tagged(u16),
}

impl VlanMembership {
    pub fn new(access: u16, trunk: impl IntoIterator<Item = u16>) -> VlanMembership {
        let mut set = Box::new([0u64; 64]);
        for v in trunk {
            let v = usize::from(v & 0x0fff);
            set[v / 64] |= 1 << (v % 64);
        }
        VlanMembership { access, trunk: set }
    }

    /// A trunk that carries `trunk` tagged and refuses untagged frames: a
    /// macvlan/ipvlan parent such as `eth1.20`.
    pub fn tagged_only(trunk: impl IntoIterator<Item = u16>) -> VlanMembership {
        VlanMembership::new(NO_ACCESS, trunk)
    }

    /// The VLAN untagged frames belong to, if the port takes them.
    pub fn untagged(&self) -> Option<u16> {
        (self.access != NO_ACCESS).then_some(self.access)
    }

    pub fn carries_tagged(&self, vlan: u16) -> bool {
        let v = usize::from(vlan & 0x0fff);
        self.trunk[v / 64] & (1 << (v % 64)) != 0
    }

    /// The VLAN a frame belongs to given its outermost tag, or `None` when
    /// the port does not accept that VLAN.
    pub fn ingress(&self, tag: Option<u16>) -> Option<u16> {
        match tag {
            None | Some(0) => self.untagged(),
            Some(v) if self.carries_tagged(v) => Some(v),
            Some(_) => None,
        }
    }

    /// How a frame in `vlan` leaves this port, or `None` when it may not.
    pub fn egress(&self, vlan: u16) -> Option<Egress> {
        if vlan == self.access {
            Some(Egress::Untagged)
        } else if self.carries_tagged(vlan) {
            Some(Egress::Tagged(vlan))
        } else {
            None
        }
    }
}

/// A port's identity and state inside the pipeline.
#[derive(Clone)]
pub struct Port {
    pub name: String,
    pub network: u16,
    pub vlans: VlanMembership,
    /// The endpoint's configured address, when it has one.
    pub mac: MacAddr,
    pub ip: Option<Ipv4Addr>,
    pub kind: PortKind,
    /// Who may speak on this port; `None` when port security is off (and
    /// always for afpacket, vxlan and the uplink, which carry many hosts).
    pub security: Option<Identity>,
    /// Storm control for the broadcast and multicast it sends; `None`: no limit.
    pub storm: Option<TokenBucket>,
    pub stats: PortStats,
    /// A vxlan port's VTEP.
    pub tunnel: Option<Tunnel>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_and_trunk() {
        let m = VlanMembership::new(10, [20, 30]);
        assert_eq!(m.ingress(None), Some(10));
        assert_eq!(m.ingress(Some(0)), Some(10));
        assert_eq!(m.ingress(Some(20)), Some(20));
        assert_eq!(m.ingress(Some(10)), None);
        assert_eq!(m.ingress(Some(40)), None);
        assert_eq!(m.egress(10), Some(Egress::Untagged));
        assert_eq!(m.egress(30), Some(Egress::Tagged(30)));
        assert_eq!(m.egress(40), None);
    }

    #[test]
    fn tagged_only_refuses_untagged_frames() {
        let m = VlanMembership::tagged_only([20]);
        assert_eq!(m.ingress(None), None);
        assert_eq!(m.ingress(Some(0)), None);
        assert_eq!(m.ingress(Some(20)), Some(20));
        assert_eq!(m.egress(20), Some(Egress::Tagged(20)));
        assert_eq!(m.egress(0), None);
        assert_eq!(m.untagged(), None);
    }
}
