//! Value types rules are made of, each with the parser and printer its
//! options share.

use std::fmt::{self, Write};
use std::net::Ipv4Addr;

use super::lex::Tok;
use super::{Iface, Interfaces};

/// A parse failure at a column of the current line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Perr {
    pub col: usize,
    pub message: String,
}

impl Perr {
    pub fn at(tok: &Tok, message: impl Into<String>) -> Perr {
        Perr {
            col: tok.col,
            message: message.into(),
        }
    }
}

pub(crate) type PResult<T> = Result<T, Perr>;

/// An option value with its `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Neg<T> {
    pub neg: bool,
    pub v: T,
}

impl<T> Neg<T> {
    pub fn new(neg: bool, v: T) -> Neg<T> {
        Neg { neg, v }
    }

    /// The inner test, inverted when negated.
    #[inline]
    pub fn test(&self, f: impl FnOnce(&T) -> bool) -> bool {
        f(&self.v) != self.neg
    }

    /// ` ! --opt` or ` --opt`, the iptables-save spelling.
    pub fn push_opt(&self, out: &mut String, opt: &str) {
        if self.neg {
            out.push_str(" !");
        }
        out.push(' ');
        out.push_str(opt);
    }
}

/// An IPv4 network; the address is stored masked, as the kernel stores it,
/// so `10.1.2.3/8` prints back as `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub addr: u32,
    pub mask: u32,
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d`, `a.b.c.d/n` or `a.b.c.d/m.m.m.m` (contiguous masks only).
    pub fn parse(tok: &Tok) -> PResult<Cidr> {
        let s = tok.text.as_str();
        if s.contains(',') {
            return Err(Perr::at(
                tok,
                format!("{s}: one address per rule (iptables would expand a list into several rules; write them out)"),
            ));
        }
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = parse_ip(tok, a)?;
        let prefix = match p {
            None => 32,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                Ok(_) => {
                    return Err(Perr::at(
                        tok,
                        format!("bad CIDR {s:?}: prefix longer than 32"),
                    ))
                }
                Err(_) => match p.parse::<Ipv4Addr>() {
                    Ok(m) => {
                        let bits = u32::from(m);
                        if bits.leading_ones() + bits.trailing_zeros() != 32 {
                            return Err(Perr::at(
                                tok,
                                format!("bad CIDR {s:?}: mask {m} is not contiguous"),
                            ));
                        }
                        bits.leading_ones() as u8
                    }
                    Err(_) => {
                        return Err(Perr::at(
                            tok,
                            format!("bad CIDR {s:?}: expected a prefix length after '/'"),
                        ))
                    }
                },
            },
        };
        Ok(Cidr::new(addr, prefix))
    }

    pub fn new(addr: Ipv4Addr, prefix: u8) -> Cidr {
        let mask = mask32(prefix);
        Cidr {
            addr: u32::from(addr) & mask,
            mask,
            prefix: prefix.min(32),
        }
    }

    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == self.addr
    }

    pub fn is_any(&self) -> bool {
        self.prefix == 0
    }

    /// `1.2.3.4` for a host, `10.0.0.0/8` otherwise: how `iptables -L` and
    /// the conntrack match print.
    pub fn short(&self) -> String {
        if self.prefix == 32 {
            Ipv4Addr::from(self.addr).to_string()
        } else {
            self.to_string()
        }
    }
}

/// `10.0.0.0/8`, always with the prefix, as iptables-save prints `-s`/`-d`.
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// An IPv4 address; IPv6 is named as such so the user knows why.
pub(crate) fn parse_ip(tok: &Tok, s: &str) -> PResult<Ipv4Addr> {
    s.parse::<Ipv4Addr>().map_err(|_| {
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            Perr::at(tok, format!("{s}: IPv6 addresses are not filtered by this engine (IPv4 only)"))
        } else {
            Perr::at(
                tok,
                format!("bad address {s:?}: expected an IPv4 address or CIDR like 10.0.0.0/8 (host names are not resolved)"),
            )
        }
    })
}

/// An inclusive port range; a single port has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    /// `80`, `1000:2000`, `:1024` (from 0) or `1024:` (to 65535), joined by
    /// `sep`: `:` in matches, `-` in NAT targets.
    pub(crate) fn parse(tok: &Tok, s: &str, sep: char) -> PResult<PortRange> {
        let port = |p: &str, dflt: u16| -> PResult<u16> {
            if p.is_empty() {
                return Ok(dflt);
            }
            p.parse::<u16>().map_err(|_| {
                Perr::at(
                    tok,
                    format!("bad port {p:?}: expected a number 0-65535 (service names are not looked up)"),
                )
            })
        };
        let r = match s.split_once(sep) {
            Some((a, b)) if !(a.is_empty() && b.is_empty()) => PortRange {
                lo: port(a, 0)?,
                hi: port(b, u16::MAX)?,
            },
            Some(_) => return Err(Perr::at(tok, format!("bad port range {s:?}"))),
            None => {
                if s.is_empty() {
                    return Err(Perr::at(tok, "empty port"));
                }
                let p = port(s, 0)?;
                PortRange { lo: p, hi: p }
            }
        };
        if r.lo > r.hi {
            return Err(Perr::at(
                tok,
                format!("bad port range {s:?}: start above end"),
            ));
        }
        Ok(r)
    }

    pub(crate) fn write(&self, out: &mut String, sep: char) {
        if self.lo == self.hi {
            let _ = write!(out, "{}", self.lo);
        } else {
            let _ = write!(out, "{}{sep}{}", self.lo, self.hi);
        }
    }
}

/// Interface names a rule's `-i`/`-o`/`--physdev-*` pattern covers,
/// resolved to bitmaps of port and network indices at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfSet {
    /// As written: a name, or a prefix ending in `+`.
    pub name: String,
    /// A lone `+`: matches anything, even no interface (as the kernel does).
    any: bool,
    ports: Bits,
    nets: Bits,
}

/// Linux's IFNAMSIZ less the terminating NUL.
const IFNAME_MAX: usize = 15;

impl IfSet {
    /// `ports_only`: physdev names ports, never networks. An exact name that
    /// is neither a port nor a network is refused: it could never match.
    pub fn parse(tok: &Tok, ifaces: &Interfaces, ports_only: bool) -> PResult<IfSet> {
        let s = &tok.text;
        if s.is_empty() || s.len() > IFNAME_MAX {
            return Err(Perr::at(
                tok,
                format!("bad interface name {s:?}: 1 to {IFNAME_MAX} characters"),
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(Perr::at(tok, format!("bad interface name {s:?}")));
        }
        let pat = |n: &String| match s.strip_suffix('+') {
            Some(prefix) => n.starts_with(prefix),
            None => n == s,
        };
        let ports = Bits::from_iter(ifaces.ports.iter().map(pat));
        let nets = if ports_only {
            Bits::default()
        } else {
            Bits::from_iter(ifaces.networks.iter().map(pat))
        };
        if !s.ends_with('+') && ports.is_empty() && nets.is_empty() {
            let what = if ports_only {
                "port"
            } else {
                "port or network"
            };
            let known = ifaces
                .ports
                .iter()
                .chain(ifaces.networks.iter().filter(|_| !ports_only))
                .map(String::as_str);
            return Err(Perr::at(
                tok,
                format!(
                    "unknown interface {s:?}: no {what} has that name{}",
                    did_you_mean(s, known)
                ),
            ));
        }
        Ok(IfSet {
            name: s.clone(),
            any: s == "+",
            ports,
            nets,
        })
    }

    #[inline]
    pub fn matches(&self, i: Option<Iface>) -> bool {
        match i {
            Some(i) => self.any || self.ports.has(i.port) || self.nets.has(i.network),
            None => self.any,
        }
    }

    #[inline]
    pub fn matches_port(&self, i: Option<Iface>) -> bool {
        match i {
            Some(i) => self.any || self.ports.has(i.port),
            None => self.any,
        }
    }
}

/// A small bit set over indices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn from_iter(it: impl Iterator<Item = bool>) -> Bits {
        let mut words = Vec::new();
        for (i, set) in it.enumerate() {
            if set {
                let w = i / 64;
                if words.len() <= w {
                    words.resize(w + 1, 0);
                }
                words[w] |= 1 << (i % 64);
            }
        }
        Bits(words)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn has(&self, i: u16) -> bool {
        let i = usize::from(i);
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Parses a number in decimal or `0x` hex, as iptables does for marks.
pub(crate) fn parse_u32(tok: &Tok, s: &str) -> PResult<u32> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse::<u32>(),
    };
    r.map_err(|_| Perr::at(tok, format!("bad number {s:?}: expected decimal or 0x hex")))
}

pub(crate) fn parse_u8(tok: &Tok, s: &str) -> PResult<u8> {
    let n = parse_u32(tok, s)?;
    u8::try_from(n).map_err(|_| Perr::at(tok, format!("{s}: out of range 0-255")))
}

/// `value[/mask]`; the mask defaults to all ones.
pub(crate) fn parse_value_mask(tok: &Tok) -> PResult<(u32, u32)> {
    match tok.text.split_once('/') {
        Some((v, m)) => Ok((parse_u32(tok, v)?, parse_u32(tok, m)?)),
        None => Ok((parse_u32(tok, &tok.text)?, u32::MAX)),
    }
}

/// ` 0x1` or ` 0x1/0xff`, as the mark matches print.
pub(crate) fn write_value_mask(out: &mut String, (v, m): (u32, u32)) {
    if m == u32::MAX {
        let _ = write!(out, " {v:#x}");
    } else {
        let _ = write!(out, " {v:#x}/{m:#x}");
    }
}

/// Comma-separated names, each looked up in `table`, or'ed into a bit set.
pub(crate) fn parse_flags(tok: &Tok, what: &str, table: &[(&str, u32)]) -> PResult<u32> {
    let mut bits = 0;
    for name in tok.text.split(',') {
        let found = table
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                Perr::at(
                    tok,
                    format!("unknown {what} {name:?} (known: {})", known.join(", ")),
                )
            })?;
        bits |= found.1;
    }
    Ok(bits)
}

/// The names of the bits set in `bits`, in table order, comma-joined.
pub(crate) fn write_flags(out: &mut String, bits: u32, table: &[(&str, u32)]) {
    let mut first = true;
    for (name, bit) in table {
        if *bit != 0 && bits & bit == *bit {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

/// ` (did you mean X?)` when one candidate is a small edit away.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= 2 && d < c.len().max(word.len()) || c.eq_ignore_ascii_case(word))
        .min_by_key(|&(d, _)| d);
    match best {
        Some((_, c)) => format!(" (did you mean {c}?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> Tok {
        Tok {
            text: s.into(),
            col: 1,
            quoted: false,
        }
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse(&tok("10.1.2.3/8")).unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert_eq!(
            Cidr::parse(&tok("1.2.3.4")).unwrap().to_string(),
            "1.2.3.4/32"
        );
        assert_eq!(
            Cidr::parse(&tok("1.2.3.4/255.255.0.0"))
                .unwrap()
                .to_string(),
            "1.2.0.0/16"
        );
        let any = Cidr::parse(&tok("0.0.0.0/0")).unwrap();
        assert!(any.is_any() && any.contains("9.9.9.9".parse().unwrap()));
        assert!(Cidr::parse(&tok("1.2.3.4/33")).is_err());
        assert!(Cidr::parse(&tok("1.2.3.4/255.0.255.0")).is_err());
        assert!(Cidr::parse(&tok("example.com")).is_err());
        assert!(Cidr::parse(&tok("fd00::1/64"))
            .unwrap_err()
            .message
            .contains("IPv6"));
    }

    #[test]
    fn ports() {
        let r = |s: &str| PortRange::parse(&tok(s), s, ':');
        assert_eq!(r("80").unwrap(), PortRange { lo: 80, hi: 80 });
        assert_eq!(r(":1024").unwrap(), PortRange { lo: 0, hi: 1024 });
        assert_eq!(
            r("1024:").unwrap(),
            PortRange {
                lo: 1024,
                hi: 65535
            }
        );
        assert!(r("2:1").is_err() && r("http").is_err() && r(":").is_err() && r("").is_err());
    }

    #[test]
    fn interface_sets() {
        let ifs = Interfaces {
            ports: vec!["web".into(), "db".into(), "veth0".into()],
            networks: vec!["docker0".into()],
        };
        let on = |port, network| Some(Iface { port, network });
        let web = IfSet::parse(&tok("web"), &ifs, false).unwrap();
        assert!(web.matches(on(0, 0)) && !web.matches(on(1, 0)) && !web.matches(None));
        let br = IfSet::parse(&tok("docker0"), &ifs, false).unwrap();
        assert!(br.matches(on(1, 0)) && !br.matches(on(1, Iface::NO_NETWORK)));
        assert!(!br.matches_port(on(1, 0)));
        let veth = IfSet::parse(&tok("veth+"), &ifs, false).unwrap();
        assert!(veth.matches(on(2, 9)) && !veth.matches(on(0, 9)));
        let any = IfSet::parse(&tok("+"), &ifs, false).unwrap();
        assert!(any.matches(None) && any.matches(on(0, 0)));
        assert!(IfSet::parse(&tok("nothere+"), &ifs, false).is_ok());
        let e = IfSet::parse(&tok("wbe"), &ifs, false).unwrap_err();
        assert!(e.message.contains("did you mean web?"), "{}", e.message);
        assert!(IfSet::parse(&tok("docker0"), &ifs, true).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("--dprt", ["--dport", "--sport"].into_iter()),
            " (did you mean --dport?)"
        );
        assert_eq!(
            did_you_mean("accept", ["ACCEPT"].into_iter()),
            " (did you mean ACCEPT?)"
        );
        assert_eq!(did_you_mean("--zzzzzz", ["--dport"].into_iter()), "");
    }
}
