//! The 5-tuple that names a connection for conntrack and the flow cache.

use core::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::ipv4::protocol;

/// Addresses, protocol and ports of one direction of a flow. For ICMP and
/// ICMPv6 echo, `src_port` holds the echo identifier and `dst_port` is 0, so
/// a request and its reply share the identifier in the same place.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl FlowKey {
    fn is_icmp(&self) -> bool {
        self.protocol == protocol::ICMP || self.protocol == protocol::ICMPV6
    }

    /// The key of the other direction: what a reply carries. Addresses and
    /// ports swap, except for ICMP echo, where the reply keeps the identifier
    /// in `src_port` and only the addresses swap.
    pub fn reverse(&self) -> FlowKey {
        let (src_port, dst_port) = if self.is_icmp() {
            (self.src_port, self.dst_port)
        } else {
            (self.dst_port, self.src_port)
        };
        FlowKey {
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            src_port,
            dst_port,
        }
    }
}

/// `tcp 10.0.0.2:40000 -> 10.0.0.3:80`, `udp [fd00::2]:5353 -> [fd00::3]:53`,
/// `icmp 10.0.0.2 -> 10.0.0.3 id 3755`.
impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match protocol::name(self.protocol) {
            Some(name) => write!(f, "{name} ")?,
            None => write!(f, "proto {} ", self.protocol)?,
        }
        if self.is_icmp() {
            write!(f, "{} -> {} id {}", self.src, self.dst, self.src_port)
        } else {
            write!(
                f,
                "{} -> {}",
                SocketAddr::new(self.src, self.src_port),
                SocketAddr::new(self.dst, self.dst_port)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn tcp() -> FlowKey {
        FlowKey {
            src: Ipv4Addr::new(10, 0, 0, 2).into(),
            dst: Ipv4Addr::new(10, 0, 0, 3).into(),
            protocol: protocol::TCP,
            src_port: 40000,
            dst_port: 80,
        }
    }

    #[test]
    fn display() {
        assert_eq!(tcp().to_string(), "tcp 10.0.0.2:40000 -> 10.0.0.3:80");
        let v6 = FlowKey {
            src: "fd00::2".parse::<Ipv6Addr>().unwrap().into(),
            dst: "fd00::3".parse::<Ipv6Addr>().unwrap().into(),
            protocol: protocol::UDP,
            src_port: 5353,
            dst_port: 53,
        };
        assert_eq!(v6.to_string(), "udp [fd00::2]:5353 -> [fd00::3]:53");
        let icmp = FlowKey {
            protocol: protocol::ICMP,
            src_port: 3755,
            dst_port: 0,
            ..tcp()
        };
        assert_eq!(icmp.to_string(), "icmp 10.0.0.2 -> 10.0.0.3 id 3755");
        let gre = FlowKey {
            protocol: 253,
            ..tcp()
        };
        assert_eq!(gre.to_string(), "proto 253 10.0.0.2:40000 -> 10.0.0.3:80");
    }

    #[test]
    fn reverse() {
        let r = tcp().reverse();
        assert_eq!(r.to_string(), "tcp 10.0.0.3:80 -> 10.0.0.2:40000");
        assert_eq!(r.reverse(), tcp());
        let icmp = FlowKey {
            protocol: protocol::ICMP,
            src_port: 3755,
            dst_port: 0,
            ..tcp()
        };
        assert_eq!(
            icmp.reverse().to_string(),
            "icmp 10.0.0.3 -> 10.0.0.2 id 3755"
        );
        assert_eq!(icmp.reverse().reverse(), icmp);
    }
}
