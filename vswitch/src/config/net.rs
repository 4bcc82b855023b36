//! IPv4 networks in CIDR notation.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: `addr` is the network address (host bits zero), `prefix` 0..=32.
///
/// Build one with `new`, `containing` or `parse` to get that guarantee; the
/// methods stay panic-free even on a hand-built value with a prefix over 32
/// (treated as 32).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// Why a string or an (address, prefix) pair is not a network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ipv4NetError {
    /// Not `a.b.c.d/len`.
    Syntax,
    /// Length over 32.
    Prefix,
    /// Host bits set; `network` is what the user probably meant.
    HostBits { network: Ipv4Net },
}

impl fmt::Display for Ipv4NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ipv4NetError::Syntax => f.write_str("expected a.b.c.d/len, like 10.0.0.0/24"),
            Ipv4NetError::Prefix => f.write_str("the prefix length must be 0 to 32"),
            Ipv4NetError::HostBits { network } => {
                write!(f, "host bits are set; the network address is {network}")
            }
        }
    }
}

impl std::error::Error for Ipv4NetError {}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl Ipv4Net {
    /// The network `addr/prefix`, refusing an address with host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, Ipv4NetError> {
        let net = Ipv4Net::containing(addr, prefix)?;
        if net.addr == addr {
            Ok(net)
        } else {
            Err(Ipv4NetError::HostBits { network: net })
        }
    }

    /// The network of length `prefix` that `addr` belongs to.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, Ipv4NetError> {
        if prefix > 32 {
            return Err(Ipv4NetError::Prefix);
        }
        Ok(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// Parses an interface address such as `192.0.2.10/24` into the address
    /// and its network.
    pub fn parse_host(s: &str) -> Result<(Ipv4Addr, Ipv4Net), Ipv4NetError> {
        let (addr, prefix) = split_cidr(s)?;
        Ok((addr, Ipv4Net::containing(addr, prefix)?))
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    fn first(&self) -> u32 {
        u32::from(self.addr) & mask(self.prefix)
    }

    fn last(&self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    /// The network address (the lowest address).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first())
    }

    /// The broadcast address (the highest address).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first()..=self.last()).contains(&u32::from(ip))
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// Whether `ip` is this network's network or broadcast address, which no
    /// host may use. /31 (RFC 3021) and /32 have no such addresses.
    pub fn is_network_or_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.prefix < 31 && (ip == self.network() || ip == self.broadcast())
    }

    /// First and last usable host address, as integers.
    pub(crate) fn host_range(&self) -> (u32, u32) {
        if self.prefix < 31 {
            (self.first() + 1, self.last() - 1)
        } else {
            (self.first(), self.last())
        }
    }

    /// The usable host addresses in ascending order, computed lazily.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (lo, hi) = self.host_range();
        (lo..=hi).map(Ipv4Addr::from)
    }
}

fn split_cidr(s: &str) -> Result<(Ipv4Addr, u8), Ipv4NetError> {
    let (addr, len) = s.split_once('/').ok_or(Ipv4NetError::Syntax)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| Ipv4NetError::Syntax)?;
    // u8's parser accepts a leading '+'; a prefix length is digits only.
    if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Ipv4NetError::Syntax);
    }
    let prefix: u8 = len.parse().map_err(|_| Ipv4NetError::Syntax)?;
    if prefix > 32 {
        return Err(Ipv4NetError::Prefix);
    }
    Ok((addr, prefix))
}

impl FromStr for Ipv4Net {
    type Err = Ipv4NetError;

    /// Strict: `10.0.0.5/24` is an error naming `10.0.0.0/24`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = split_cidr(s)?;
        Ipv4Net::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        let n = net("10.10.0.0/24");
        assert_eq!(n.addr, Ipv4Addr::new(10, 10, 0, 0));
        assert_eq!(n.prefix, 24);
        assert_eq!(n.to_string(), "10.10.0.0/24");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(net("192.0.2.7/32").to_string(), "192.0.2.7/32");
    }

    #[test]
    fn parse_errors() {
        assert_eq!("10.0.0.0".parse::<Ipv4Net>(), Err(Ipv4NetError::Syntax));
        assert_eq!("10.0.0/24".parse::<Ipv4Net>(), Err(Ipv4NetError::Syntax));
        assert_eq!("10.0.0.0/".parse::<Ipv4Net>(), Err(Ipv4NetError::Syntax));
        assert_eq!("10.0.0.0/+8".parse::<Ipv4Net>(), Err(Ipv4NetError::Syntax));
        assert_eq!("10.0.0.0/33".parse::<Ipv4Net>(), Err(Ipv4NetError::Prefix));
        assert_eq!(
            "10.0.0.5/24".parse::<Ipv4Net>(),
            Err(Ipv4NetError::HostBits {
                network: net("10.0.0.0/24")
            })
        );
    }

    #[test]
    fn masks_and_membership() {
        let n = net("10.10.0.0/24");
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 10, 0, 255));
        assert!(n.contains(Ipv4Addr::new(10, 10, 0, 0)));
        assert!(n.contains(Ipv4Addr::new(10, 10, 0, 255)));
        assert!(!n.contains(Ipv4Addr::new(10, 10, 1, 0)));
        assert!(n.is_network_or_broadcast(Ipv4Addr::new(10, 10, 0, 255)));
        assert_eq!(net("0.0.0.0/0").netmask(), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(net("0.0.0.0/0").broadcast(), Ipv4Addr::BROADCAST);
        assert!(net("10.0.0.0/8").overlaps(&net("10.10.0.0/24")));
        assert!(!net("10.10.0.0/24").overlaps(&net("10.10.1.0/24")));
    }

    #[test]
    fn hosts() {
        let h: Vec<_> = net("10.0.0.0/30").hosts().collect();
        assert_eq!(h, [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(net("10.0.0.0/31").hosts().count(), 2);
        assert_eq!(net("10.0.0.9/32").hosts().count(), 1);
        assert_eq!(net("10.0.0.0/8").hosts().count(), (1 << 24) - 2);
    }

    #[test]
    fn interface_address() {
        let (ip, n) = Ipv4Net::parse_host("192.0.2.10/24").unwrap();
        assert_eq!(ip, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(n, net("192.0.2.0/24"));
        assert_eq!(Ipv4Net::parse_host("192.0.2.10"), Err(Ipv4NetError::Syntax));
    }
}
