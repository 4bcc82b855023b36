//! IP address management for one network, as Docker's default IPAM does it.
//!
//! Key: the IPv4 address. The table holds only the addresses in use (a
//! `BTreeSet`), so a /8 costs memory in proportion to its endpoints, not its
//! size. The network address, the broadcast address and the gateway are
//! never handed out. `allocate` returns the lowest free host address.
//!
//! No aging here: whoever owns a lease (the DHCP server at run time) decides
//! when it ends and calls `release`. The config stage fills one `Ipam` per
//! network at load time; at run time it belongs to the thread serving DHCP,
//! so it needs no locking.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::config::Ipv4Net;

/// The addresses of one network that are in use.
#[derive(Debug, Clone)]
pub struct Ipam {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    taken: BTreeSet<u32>,
}

/// An address that can never be given to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    Network,
    Broadcast,
    Gateway,
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reserved::Network => "the network address",
            Reserved::Broadcast => "the broadcast address",
            Reserved::Gateway => "the gateway",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpamError {
    OutsideSubnet { ip: Ipv4Addr, subnet: Ipv4Net },
    Reserved { ip: Ipv4Addr, what: Reserved },
    Taken { ip: Ipv4Addr },
    Exhausted { subnet: Ipv4Net },
}

impl fmt::Display for IpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpamError::OutsideSubnet { ip, subnet } => write!(f, "{ip} is outside {subnet}"),
            IpamError::Reserved { ip, what } => write!(f, "{ip} is {what}"),
            IpamError::Taken { ip } => write!(f, "{ip} is already allocated"),
            IpamError::Exhausted { subnet } => write!(f, "no free address left in {subnet}"),
        }
    }
}

impl std::error::Error for IpamError {}

impl Ipam {
    /// An empty pool for `subnet`. A gateway outside the subnet reserves nothing.
    pub fn new(subnet: Ipv4Net, gateway: Ipv4Addr) -> Ipam {
        Ipam {
            subnet,
            gateway,
            taken: BTreeSet::new(),
        }
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Why `ip` may not be allocated at all, if it may not.
    fn check(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        if !self.subnet.contains(ip) {
            return Err(IpamError::OutsideSubnet {
                ip,
                subnet: self.subnet,
            });
        }
        let what = if ip == self.gateway {
            Reserved::Gateway
        } else if !self.subnet.is_network_or_broadcast(ip) {
            return Ok(());
        } else if ip == self.subnet.network() {
            Reserved::Network
        } else {
            Reserved::Broadcast
        };
        Err(IpamError::Reserved { ip, what })
    }

    /// Marks a static address as in use.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        self.check(ip)?;
        if self.taken.insert(u32::from(ip)) {
            Ok(())
        } else {
            Err(IpamError::Taken { ip })
        }
    }

    /// Takes the lowest free host address.
    ///
    /// Walks the taken set from the bottom, so it costs O(taken addresses),
    /// never O(subnet size).
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let exhausted = IpamError::Exhausted {
            subnet: self.subnet,
        };
        let (lo, hi) = self.subnet.host_range();
        let gateway = u32::from(self.gateway);
        let mut taken = self.taken.range(lo..=hi).peekable();
        let mut candidate = lo;
        loop {
            let busy = candidate == gateway || taken.next_if_eq(&&candidate).is_some();
            if !busy {
                break;
            }
            if candidate == hi {
                return Err(exhausted);
            }
            candidate += 1;
        }
        self.taken.insert(candidate);
        Ok(Ipv4Addr::from(candidate))
    }

    /// Returns `ip` to the pool; false when it was not allocated.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.taken.remove(&u32::from(ip))
    }

    pub fn is_allocated(&self, ip: Ipv4Addr) -> bool {
        self.taken.contains(&u32::from(ip))
    }

    /// Number of allocated addresses (the gateway not counted).
    pub fn len(&self) -> usize {
        self.taken.len()
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn pool(subnet: &str, gateway: &str) -> Ipam {
        Ipam::new(subnet.parse().unwrap(), ip(gateway))
    }

    #[test]
    fn allocates_lowest_free_in_order() {
        let mut p = pool("10.10.0.0/24", "10.10.0.1");
        assert_eq!(p.allocate(), Ok(ip("10.10.0.2")));
        assert_eq!(p.allocate(), Ok(ip("10.10.0.3")));
        assert_eq!(p.allocate(), Ok(ip("10.10.0.4")));
        assert!(p.is_allocated(ip("10.10.0.3")));
        assert!(!p.is_allocated(ip("10.10.0.1")));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn gateway_in_the_middle_is_skipped() {
        let mut p = pool("10.0.0.0/29", "10.0.0.2");
        assert_eq!(p.allocate(), Ok(ip("10.0.0.1")));
        assert_eq!(p.allocate(), Ok(ip("10.0.0.3")));
    }

    #[test]
    fn reserve_then_allocate_skips_statics() {
        let mut p = pool("10.10.0.0/24", "10.10.0.1");
        p.reserve(ip("10.10.0.2")).unwrap();
        p.reserve(ip("10.10.0.4")).unwrap();
        assert_eq!(p.allocate(), Ok(ip("10.10.0.3")));
        assert_eq!(p.allocate(), Ok(ip("10.10.0.5")));
    }

    #[test]
    fn reserve_errors() {
        let mut p = pool("10.10.0.0/24", "10.10.0.1");
        let subnet = p.subnet();
        assert_eq!(
            p.reserve(ip("10.10.1.2")),
            Err(IpamError::OutsideSubnet {
                ip: ip("10.10.1.2"),
                subnet
            })
        );
        for (addr, what) in [
            ("10.10.0.0", Reserved::Network),
            ("10.10.0.255", Reserved::Broadcast),
            ("10.10.0.1", Reserved::Gateway),
        ] {
            assert_eq!(
                p.reserve(ip(addr)),
                Err(IpamError::Reserved { ip: ip(addr), what })
            );
        }
        p.reserve(ip("10.10.0.9")).unwrap();
        assert_eq!(
            p.reserve(ip("10.10.0.9")),
            Err(IpamError::Taken {
                ip: ip("10.10.0.9")
            })
        );
        assert_eq!(
            p.reserve(ip("10.10.0.1")).unwrap_err().to_string(),
            "10.10.0.1 is the gateway"
        );
    }

    #[test]
    fn slash_30_exhausts_after_one() {
        // .0 network, .1 gateway, .2 the only host left, .3 broadcast.
        let mut p = pool("10.0.0.0/30", "10.0.0.1");
        assert_eq!(p.allocate(), Ok(ip("10.0.0.2")));
        let subnet = p.subnet();
        assert_eq!(p.allocate(), Err(IpamError::Exhausted { subnet }));
        assert_eq!(
            p.allocate().unwrap_err().to_string(),
            "no free address left in 10.0.0.0/30"
        );
    }

    #[test]
    fn release_and_reuse() {
        let mut p = pool("10.0.0.0/29", "10.0.0.1");
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert!(p.release(a));
        assert!(!p.release(a));
        assert!(!p.is_allocated(a));
        assert_eq!(p.allocate(), Ok(a));
        assert!(p.release(b));
        p.reserve(b).unwrap();
        assert_eq!(p.allocate(), Ok(ip("10.0.0.4")));
    }

    #[test]
    fn large_subnet_is_cheap() {
        let mut p = pool("10.0.0.0/8", "10.0.0.1");
        for _ in 0..1000 {
            p.allocate().unwrap();
        }
        assert_eq!(p.allocate(), Ok(ip("10.0.3.234")));
        assert_eq!(p.len(), 1001);
    }

    #[test]
    fn top_of_the_address_space() {
        let mut p = pool("255.255.255.255/32", "0.0.0.0");
        assert_eq!(p.allocate(), Ok(Ipv4Addr::BROADCAST));
        assert!(matches!(p.allocate(), Err(IpamError::Exhausted { .. })));
    }
}
