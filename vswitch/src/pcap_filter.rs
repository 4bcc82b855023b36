//! The filter `vswitch capture` takes: a subset of tcpdump's (pcap-filter(7))
//! expressions, compiled once and evaluated on the switch's own parse of a
//! frame.
//!
//! Primitives: `ip`, `ip6`, `arp`, `tcp`, `udp`, `icmp`, `vlan [ID]`;
//! `[src|dst] host ADDR`, `[src|dst] net CIDR`, `[src|dst] port N`,
//! `ether [src|dst] host MAC`. Combined with `and` (`&&`), `or` (`||`),
//! `not` (`!`) and parentheses; as in tcpdump, `not` binds tightest and
//! `and` and `or` have equal precedence, left to right. `host` and `net`
//! also match ARP's sender and target addresses; `port` matches TCP and
//! UDP. A frame the switch cannot parse matches only the empty filter.

use std::fmt;
use std::net::Ipv4Addr;

use packet::ipv4::protocol;
use packet::{MacAddr, Parsed, L3, L4};

use crate::config::Ipv4Net;

/// A compiled filter; the empty one matches every frame.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Filter {
    expr: Option<Expr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
    Either,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Ip,
    Ip6,
    Arp,
    Proto(u8),
    Vlan(Option<u16>),
    Host(Side, Ipv4Addr),
    Net(Side, Ipv4Net),
    Port(Side, u16),
    Ether(Side, MacAddr),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad capture filter: {}", self.0)
    }
}

impl std::error::Error for FilterError {}

fn bad<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

impl Filter {
    /// Compiles `text`; blank text is the filter that matches everything.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let spaced = text
            .replace('(', " ( ")
            .replace(')', " ) ")
            .replace("&&", " and ")
            .replace("||", " or ")
            .replace('!', " not ");
        let words: Vec<&str> = spaced.split_whitespace().collect();
        if words.is_empty() {
            return Ok(Filter::default());
        }
        let mut p = Parser { words, pos: 0 };
        let expr = p.expr()?;
        match p.peek() {
            None => Ok(Filter { expr: Some(expr) }),
            Some(w) => bad(format!("unexpected {w:?}")),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// Whether the frame (from its Ethernet header) passes.
    pub fn matches(&self, frame: &[u8]) -> bool {
        let Some(expr) = &self.expr else {
            return true;
        };
        Parsed::parse(frame).is_ok_and(|p| expr.eval(&p))
    }
}

struct Parser<'a> {
    words: Vec<&'a str>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.pos).copied()
    }

    fn next(&mut self, what: &str) -> Result<&'a str, FilterError> {
        let w = self.peek();
        self.pos += 1;
        w.map_or_else(|| bad(format!("{what} expected at the end")), Ok)
    }

    /// Left to right, `and` and `or` alike.
    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while let Some(op @ ("and" | "or")) = self.peek() {
            self.pos += 1;
            let right = Box::new(self.unary()?);
            left = match op {
                "and" => Expr::And(Box::new(left), right),
                _ => Expr::Or(Box::new(left), right),
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.next("a primitive")? {
            "not" => Ok(Expr::Not(Box::new(self.unary()?))),
            "(" => {
                let e = self.expr()?;
                match self.next("\")\"")? {
                    ")" => Ok(e),
                    w => bad(format!("\")\" expected, not {w:?}")),
                }
            }
            w => self.primitive(w),
        }
    }

    fn primitive(&mut self, first: &'a str) -> Result<Expr, FilterError> {
        let (side, word) = match first {
            "src" => (Side::Src, self.next("host, net or port")?),
            "dst" => (Side::Dst, self.next("host, net or port")?),
            w => (Side::Either, w),
        };
        let either = side == Side::Either;
        match word {
            "ip" if either => Ok(Expr::Ip),
            "ip6" if either => Ok(Expr::Ip6),
            "arp" if either => Ok(Expr::Arp),
            "tcp" if either => Ok(Expr::Proto(protocol::TCP)),
            "udp" if either => Ok(Expr::Proto(protocol::UDP)),
            "icmp" if either => Ok(Expr::Proto(protocol::ICMP)),
            "vlan" if either => {
                let id = self.peek().and_then(|w| w.parse::<u16>().ok());
                if id.is_some() {
                    self.pos += 1;
                }
                match id {
                    Some(v) if v > 4095 => bad(format!("VLAN {v} is over 4095")),
                    _ => Ok(Expr::Vlan(id)),
                }
            }
            "host" => {
                let w = self.next("an address")?;
                match w.parse() {
                    Ok(ip) => Ok(Expr::Host(side, ip)),
                    Err(_) => bad(format!("{w:?} is not an IPv4 address")),
                }
            }
            "net" => {
                let w = self.next("a network")?;
                match w.parse() {
                    Ok(net) => Ok(Expr::Net(side, net)),
                    Err(e) => bad(format!("{w:?}: {e}")),
                }
            }
            "port" => {
                let w = self.next("a port")?;
                match w.parse() {
                    Ok(port) => Ok(Expr::Port(side, port)),
                    Err(_) => bad(format!("{w:?} is not a port number")),
                }
            }
            "ether" if either => {
                let side = match self.next("host")? {
                    "src" => Side::Src,
                    "dst" => Side::Dst,
                    "host" => return self.mac(Side::Either),
                    w => return bad(format!("host expected after ether, not {w:?}")),
                };
                match self.next("host")? {
                    "host" => self.mac(side),
                    w => bad(format!("host expected, not {w:?}")),
                }
            }
            w => bad(format!("unknown primitive {w:?}")),
        }
    }

    fn mac(&mut self, side: Side) -> Result<Expr, FilterError> {
        let w = self.next("a MAC address")?;
        match w.parse() {
            Ok(mac) => Ok(Expr::Ether(side, mac)),
            Err(_) => bad(format!("{w:?} is not a MAC address")),
        }
    }
}

impl Side {
    fn test<T: Copy>(self, src: T, dst: T, f: impl Fn(T) -> bool) -> bool {
        match self {
            Side::Src => f(src),
            Side::Dst => f(dst),
            Side::Either => f(src) || f(dst),
        }
    }
}

/// The IPv4 addresses of an IPv4 packet, or ARP's sender and target.
fn addresses(p: &Parsed) -> Option<(Ipv4Addr, Ipv4Addr)> {
    match p.l3 {
        L3::Ipv4 { src, dst, .. } => Some((src, dst)),
        L3::Arp(a) => Some((a.sender_ip, a.target_ip)),
        _ => None,
    }
}

impl Expr {
    fn eval(&self, p: &Parsed) -> bool {
        match self {
            Expr::Ip => matches!(p.l3, L3::Ipv4 { .. }),
            Expr::Ip6 => matches!(p.l3, L3::Ipv6 { .. }),
            Expr::Arp => matches!(p.l3, L3::Arp(_)),
            Expr::Proto(want) => match p.l3 {
                L3::Ipv4 { protocol, .. } | L3::Ipv6 { protocol, .. } => protocol == *want,
                _ => false,
            },
            Expr::Vlan(id) => match (id, p.tags[0]) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(want), Some(vid)) => *want == vid,
            },
            Expr::Host(side, ip) => {
                addresses(p).is_some_and(|(s, d)| side.test(s, d, |a| a == *ip))
            }
            Expr::Net(side, net) => {
                addresses(p).is_some_and(|(s, d)| side.test(s, d, |a| net.contains(a)))
            }
            Expr::Port(side, port) => match p.l4 {
                L4::Tcp {
                    src_port, dst_port, ..
                }
                | L4::Udp { src_port, dst_port } => side.test(src_port, dst_port, |x| x == *port),
                _ => false,
            },
            Expr::Ether(side, mac) => side.test(p.src, p.dst, |m| m == *mac),
            Expr::Not(e) => !e.eval(p),
            Expr::And(a, b) => a.eval(p) && b.eval(p),
            Expr::Or(a, b) => a.eval(p) || b.eval(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn empty_matches_everything_even_garbage() {
        assert!(f("").matches(&[1, 2, 3]));
        assert!(f("  ").is_empty());
        assert!(!f("ip").matches(&[1, 2, 3]));
    }

    #[test]
    fn errors_name_the_word() {
        let e = |t: &str| Filter::parse(t).unwrap_err().to_string();
        assert_eq!(e("tcpp"), "bad capture filter: unknown primitive \"tcpp\"");
        assert_eq!(
            e("host 10.0.0"),
            "bad capture filter: \"10.0.0\" is not an IPv4 address"
        );
        assert_eq!(e("port"), "bad capture filter: a port expected at the end");
        assert_eq!(e("(tcp"), "bad capture filter: \")\" expected at the end");
        assert_eq!(e("tcp udp"), "bad capture filter: unexpected \"udp\"");
        assert_eq!(
            e("src tcp"),
            "bad capture filter: unknown primitive \"tcp\""
        );
    }
}
