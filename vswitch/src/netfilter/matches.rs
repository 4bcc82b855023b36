//! Matches: the general options (`-s -d -i -o -p -f`) and the `-m` modules,
//! each with its option parser, its test against a packet and its
//! iptables-save and `iptables -L` spellings.

use std::fmt::Write;
use std::net::Ipv4Addr;

use packet::MacAddr;

use super::lex::{push_quoted, Cursor, Tok};
use super::types::{
    parse_flags, parse_ip, parse_u32, parse_u8, parse_value_mask, write_flags, write_value_mask,
    Cidr, IfSet, Neg, PResult, Perr, PortRange,
};
use super::{CtDir, CtState, Hook, Interfaces, L4Info, Meta, PacketInfo};
use crate::time::Timestamp;

/// Protocol names as iptables-save prints them (the /etc/protocols names).
pub(crate) const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ospf", 89),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
];

pub(crate) fn proto_name(p: u8) -> Option<&'static str> {
    PROTOCOLS.iter().find(|(_, n)| *n == p).map(|(s, _)| *s)
}

/// `-p` value: a name, `all` (0) or a number.
pub(crate) fn parse_proto(tok: &Tok) -> PResult<u8> {
    let s = tok.text.to_ascii_lowercase();
    if s == "all" {
        return Ok(0);
    }
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == s) {
        return Ok(*n);
    }
    s.parse::<u8>().map_err(|_| {
        Perr::at(
            tok,
            format!(
                "unknown protocol {:?} (use a name like tcp, udp, icmp, or a number)",
                tok.text
            ),
        )
    })
}

const TCP_FLAGS: &[(&str, u32)] = &[
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ALL", 0x3f),
    ("NONE", 0),
];

/// Conntrack states in the order iptables prints them.
const CT_STATES: &[(&str, u32)] = &[
    ("INVALID", 1),
    ("NEW", 2),
    ("RELATED", 4),
    ("ESTABLISHED", 8),
    ("UNTRACKED", 16),
    ("SNAT", 32),
    ("DNAT", 64),
];

const CT_STATUS: &[(&str, u32)] = &[
    ("NONE", 0),
    ("EXPECTED", 1),
    ("SEEN_REPLY", 2),
    ("ASSURED", 4),
    ("CONFIRMED", 8),
];

pub(crate) const ADDR_TYPES: &[(&str, u32)] = &[
    ("UNSPEC", 1 << 0),
    ("UNICAST", 1 << 1),
    ("LOCAL", 1 << 2),
    ("BROADCAST", 1 << 3),
    ("ANYCAST", 1 << 4),
    ("MULTICAST", 1 << 5),
    ("BLACKHOLE", 1 << 6),
    ("UNREACHABLE", 1 << 7),
    ("PROHIBIT", 1 << 8),
    ("THROW", 1 << 9),
    ("NAT", 1 << 10),
    ("XRESOLVE", 1 << 11),
];

/// ICMP type names as `iptables -p icmp -h` lists them: (name, type, code);
/// a code of `None` covers every code of the type.
const ICMP_TYPES: &[(&str, u8, Option<u8>)] = &[
    ("any", 255, None),
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

/// An ICMP type and code range; type 255 is `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IcmpType {
    kind: u8,
    code: (u8, u8),
}

impl IcmpType {
    fn parse(tok: &Tok) -> PResult<IcmpType> {
        let s = tok.text.as_str();
        if let Some((_, kind, code)) = ICMP_TYPES
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(s))
        {
            let code = code.map_or((0, 255), |c| (c, c));
            return Ok(IcmpType { kind: *kind, code });
        }
        let num = |v: &str| {
            v.parse::<u8>().map_err(|_| {
                let names = ICMP_TYPES.iter().map(|(n, _, _)| *n);
                Perr::at(
                    tok,
                    format!(
                        "unknown ICMP type {s:?}: a name like echo-request or type[/code]{}",
                        super::types::did_you_mean(s, names)
                    ),
                )
            })
        };
        match s.split_once('/') {
            Some((t, c)) => {
                let c = num(c)?;
                Ok(IcmpType {
                    kind: num(t)?,
                    code: (c, c),
                })
            }
            None => Ok(IcmpType {
                kind: num(s)?,
                code: (0, 255),
            }),
        }
    }

    fn matches(&self, kind: u8, code: u8) -> bool {
        self.kind == 255 || (self.kind == kind && self.code.0 <= code && code <= self.code.1)
    }

    fn write(&self, out: &mut String) {
        if self.kind == 255 {
            out.push_str("any");
        } else if self.code == (0, 255) {
            let _ = write!(out, "{}", self.kind);
        } else {
            let _ = write!(out, "{}/{}", self.kind, self.code.0);
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ports {
    sport: Option<Neg<PortRange>>,
    dport: Option<Neg<PortRange>>,
}

impl Ports {
    fn option(&mut self, opt: &Tok, neg: bool, cur: &mut Cursor) -> PResult<bool> {
        let slot = match opt.text.as_str() {
            "--sport" | "--source-port" => &mut self.sport,
            "--dport" | "--destination-port" => &mut self.dport,
            _ => return Ok(false),
        };
        let v = cur.value(opt)?;
        let r = PortRange::parse(v, &v.text, ':')?;
        // A full range without `!` is no test at all; iptables stores and
        // prints it as absent.
        let val = (neg || r != PortRange::ALL).then_some(Neg::new(neg, r));
        set(slot, val, opt)?;
        Ok(true)
    }

    #[inline]
    fn matches(&self, sport: u16, dport: u16) -> bool {
        self.sport.is_none_or(|r| r.test(|r| r.contains(sport)))
            && self.dport.is_none_or(|r| r.test(|r| r.contains(dport)))
    }

    fn save(&self, out: &mut String) {
        for (r, opt) in [(self.sport, "--sport"), (self.dport, "--dport")] {
            if let Some(r) = r {
                r.push_opt(out, opt);
                out.push(' ');
                r.v.write(out, ':');
            }
        }
    }

    fn list(&self, out: &mut String) {
        for (r, name) in [(self.sport, "spt"), (self.dport, "dpt")] {
            if let Some(r) = r {
                let bang = if r.neg { "!" } else { "" };
                if r.v.lo == r.v.hi {
                    let _ = write!(out, " {name}:{bang}{}", r.v.lo);
                } else {
                    let _ = write!(out, " {name}s:{bang}{}:{}", r.v.lo, r.v.hi);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tcp {
    ports: Ports,
    /// (mask, comparison)
    flags: Option<Neg<(u8, u8)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Src,
    Dst,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Multiport {
    which: Which,
    ports: Vec<PortRange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Physdev {
    inp: Option<Neg<IfSet>>,
    out: Option<Neg<IfSet>>,
    is_in: Option<Neg<()>>,
    is_out: Option<Neg<()>>,
    is_bridged: Option<Neg<()>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Conntrack {
    state: Option<Neg<u8>>,
    orig_src: Option<Neg<Cidr>>,
    orig_dst: Option<Neg<Cidr>>,
    repl_src: Option<Neg<Cidr>>,
    repl_dst: Option<Neg<Cidr>>,
    orig_sport: Option<Neg<PortRange>>,
    orig_dport: Option<Neg<PortRange>>,
    repl_sport: Option<Neg<PortRange>>,
    repl_dport: Option<Neg<PortRange>>,
    status: Option<Neg<u8>>,
    dir: Option<CtDir>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TtlOp {
    Eq,
    Lt,
    Gt,
}

/// `-m limit`: a token bucket refilled at `period` (in 1/10000 s per packet,
/// the kernel's XT_LIMIT_SCALE) holding at most `burst` packets. The bucket
/// lives in the rule and runs on the `now` given to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limit {
    period: u32,
    burst: u32,
    last: Option<Timestamp>,
    credit: u64,
}

const LIMIT_SCALE: u64 = 10_000;
const LIMIT_UNITS: &[(&str, u64)] = &[("day", 86_400), ("hour", 3_600), ("min", 60), ("sec", 1)];

impl Default for Limit {
    /// iptables' defaults: 3/hour, burst 5.
    fn default() -> Limit {
        Limit {
            period: (LIMIT_SCALE * 3600 / 3) as u32,
            burst: 5,
            last: None,
            credit: 0,
        }
    }
}

impl Limit {
    fn interval_ns(&self) -> u64 {
        u64::from(self.period) * (1_000_000_000 / LIMIT_SCALE)
    }

    fn allow(&mut self, now: Timestamp) -> bool {
        let cost = self.interval_ns();
        let cap = cost.saturating_mul(u64::from(self.burst));
        self.credit = match self.last {
            None => cap,
            Some(last) => {
                let elapsed = u64::try_from(now.since(last).as_nanos()).unwrap_or(u64::MAX);
                self.credit.saturating_add(elapsed).min(cap)
            }
        };
        self.last = Some(now);
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }

    /// `N/unit` with the largest unit that keeps N whole, as iptables prints.
    fn write_rate(&self, out: &mut String) {
        let p = u64::from(self.period).max(1);
        let mut best = LIMIT_UNITS[0];
        for &(name, secs) in LIMIT_UNITS {
            let mult = secs * LIMIT_SCALE;
            if p > mult || mult / p < mult % p {
                break;
            }
            best = (name, secs);
        }
        let _ = write!(out, "{}/{}", best.1 * LIMIT_SCALE / p, best.0);
    }

    fn parse_rate(tok: &Tok) -> PResult<u32> {
        let s = tok.text.as_str();
        let (n, unit) = match s.split_once('/') {
            Some((n, u)) => {
                let secs = [
                    ("second", 1),
                    ("minute", 60),
                    ("hour", 3600),
                    ("day", 86400),
                ]
                .iter()
                .find(|(name, _)| !u.is_empty() && name.starts_with(&u.to_ascii_lowercase()))
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    Perr::at(
                        tok,
                        format!("bad rate {s:?}: unit must be second, minute, hour or day"),
                    )
                })?;
                (n, secs)
            }
            None => (s, 1u64),
        };
        let n: u64 = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            Perr::at(
                tok,
                format!("bad rate {s:?}: expected N/second, N/minute, N/hour or N/day"),
            )
        })?;
        let period = LIMIT_SCALE * unit / n;
        if period == 0 {
            return Err(Perr::at(
                tok,
                format!("rate {s:?} too fast (at most 10000/second)"),
            ));
        }
        u32::try_from(period).map_err(|_| Perr::at(tok, format!("bad rate {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match {
    Src(Neg<Cidr>),
    Dst(Neg<Cidr>),
    In(Neg<IfSet>),
    Out(Neg<IfSet>),
    Proto(Neg<u8>),
    Frag(Neg<()>),
    Tcp(Tcp),
    Udp(Ports),
    Icmp(Option<Neg<IcmpType>>),
    Multiport(Option<Neg<Multiport>>),
    Physdev(Box<Physdev>),
    Conntrack(Box<Conntrack>),
    State(Option<Neg<u8>>),
    Mac(Option<Neg<MacAddr>>),
    Mark(Option<Neg<(u32, u32)>>),
    Connmark(Option<Neg<(u32, u32)>>),
    IpRange {
        src: Option<Neg<(u32, u32)>>,
        dst: Option<Neg<(u32, u32)>>,
    },
    AddrType {
        src: Option<Neg<u16>>,
        dst: Option<Neg<u16>>,
    },
    Limit(Limit),
    Comment(Option<String>),
    Length(Option<Neg<PortRange>>),
    Ttl(Option<Neg<(TtlOp, u8)>>),
}

impl Match {
    /// True when every packet of a flow, in one direction and in one
    /// conntrack state, gets the same answer: not for TCP flags, lengths,
    /// TTLs, marks, rate limits, fragment bits, connection status bits
    /// (ASSURED comes later) or source MACs (a routed flow may change hops).
    pub(crate) fn is_flow_invariant(&self) -> bool {
        match self {
            Match::Src(_)
            | Match::Dst(_)
            | Match::In(_)
            | Match::Out(_)
            | Match::Proto(_)
            | Match::Udp(_)
            | Match::Icmp(_)
            | Match::Multiport(_)
            | Match::Physdev(_)
            | Match::State(_)
            | Match::IpRange { .. }
            | Match::AddrType { .. }
            | Match::Comment(_) => true,
            Match::Tcp(t) => t.flags.is_none(),
            Match::Conntrack(c) => c.status.is_none(),
            Match::Frag(_)
            | Match::Mac(_)
            | Match::Mark(_)
            | Match::Connmark(_)
            | Match::Limit(_)
            | Match::Length(_)
            | Match::Ttl(_) => false,
        }
    }
}

/// Modules `-m` may load.
pub(crate) const MODULES: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "multiport",
    "physdev",
    "conntrack",
    "state",
    "mac",
    "mark",
    "connmark",
    "iprange",
    "addrtype",
    "limit",
    "comment",
    "length",
    "ttl",
];

/// Stores an option's value, refusing a second one.
fn set<T>(slot: &mut Option<T>, v: Option<T>, opt: &Tok) -> PResult<()> {
    if slot.is_some() {
        return Err(Perr::at(opt, format!("{} given twice", opt.text)));
    }
    *slot = v;
    Ok(())
}

fn no_neg(neg: bool, opt: &Tok) -> PResult<()> {
    if neg {
        return Err(Perr::at(
            opt,
            format!("{} cannot be negated with '!'", opt.text),
        ));
    }
    Ok(())
}

fn parse_range_v4(tok: &Tok) -> PResult<(u32, u32)> {
    let (a, b) = tok.text.split_once('-').ok_or_else(|| {
        Perr::at(
            tok,
            format!(
                "bad range {:?}: expected FROM-TO like 10.0.0.1-10.0.0.9",
                tok.text
            ),
        )
    })?;
    let (a, b) = (u32::from(parse_ip(tok, a)?), u32::from(parse_ip(tok, b)?));
    if a > b {
        return Err(Perr::at(
            tok,
            format!("bad range {:?}: start above end", tok.text),
        ));
    }
    Ok((a, b))
}

fn write_range_v4(out: &mut String, (a, b): (u32, u32)) {
    let _ = write!(out, " {}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b));
}

/// The `--ctstate`/`--state` bits of a packet.
#[inline]
fn state_bits(p: &PacketInfo) -> u8 {
    let s = match p.ct.state {
        CtState::Invalid => 1,
        CtState::New => 2,
        CtState::Related => 4,
        CtState::Established => 8,
        CtState::Untracked => return 16,
    };
    s | ((p.ct.nat & super::CtInfo::SNAT) * 32) | (((p.ct.nat & super::CtInfo::DNAT) >> 1) * 64)
}

impl Match {
    /// A fresh module for `-m name`.
    pub fn load(name: &str) -> Option<Match> {
        Some(match name {
            "tcp" => Match::Tcp(Tcp::default()),
            "udp" => Match::Udp(Ports::default()),
            "icmp" => Match::Icmp(None),
            "multiport" => Match::Multiport(None),
            "physdev" => Match::Physdev(Box::default()),
            "conntrack" => Match::Conntrack(Box::default()),
            "state" => Match::State(None),
            "mac" => Match::Mac(None),
            "mark" => Match::Mark(None),
            "connmark" => Match::Connmark(None),
            "iprange" => Match::IpRange {
                src: None,
                dst: None,
            },
            "addrtype" => Match::AddrType {
                src: None,
                dst: None,
            },
            "limit" => Match::Limit(Limit::default()),
            "comment" => Match::Comment(None),
            "length" => Match::Length(None),
            "ttl" => Match::Ttl(None),
            _ => return None,
        })
    }

    /// The module name for `-m`; `None` for general options.
    pub fn module(&self) -> Option<&'static str> {
        Some(match self {
            Match::Src(_)
            | Match::Dst(_)
            | Match::In(_)
            | Match::Out(_)
            | Match::Proto(_)
            | Match::Frag(_) => return None,
            Match::Tcp(_) => "tcp",
            Match::Udp(_) => "udp",
            Match::Icmp(_) => "icmp",
            Match::Multiport(_) => "multiport",
            Match::Physdev(_) => "physdev",
            Match::Conntrack(_) => "conntrack",
            Match::State(_) => "state",
            Match::Mac(_) => "mac",
            Match::Mark(_) => "mark",
            Match::Connmark(_) => "connmark",
            Match::IpRange { .. } => "iprange",
            Match::AddrType { .. } => "addrtype",
            Match::Limit(_) => "limit",
            Match::Comment(_) => "comment",
            Match::Length(_) => "length",
            Match::Ttl(_) => "ttl",
        })
    }

    /// The options this module takes, for suggestions.
    pub fn option_names(&self) -> &'static [&'static str] {
        match self {
            Match::Tcp(_) => &[
                "--sport",
                "--dport",
                "--source-port",
                "--destination-port",
                "--tcp-flags",
                "--syn",
            ],
            Match::Udp(_) => &["--sport", "--dport", "--source-port", "--destination-port"],
            Match::Icmp(_) => &["--icmp-type"],
            Match::Multiport(_) => &[
                "--sports",
                "--dports",
                "--ports",
                "--source-ports",
                "--destination-ports",
            ],
            Match::Physdev(_) => &[
                "--physdev-in",
                "--physdev-out",
                "--physdev-is-in",
                "--physdev-is-out",
                "--physdev-is-bridged",
            ],
            Match::Conntrack(_) => &[
                "--ctstate",
                "--ctstatus",
                "--ctorigsrc",
                "--ctorigdst",
                "--ctreplsrc",
                "--ctrepldst",
                "--ctorigsrcport",
                "--ctorigdstport",
                "--ctreplsrcport",
                "--ctrepldstport",
                "--ctdir",
            ],
            Match::State(_) => &["--state"],
            Match::Mac(_) => &["--mac-source"],
            Match::Mark(_) | Match::Connmark(_) => &["--mark"],
            Match::IpRange { .. } => &["--src-range", "--dst-range"],
            Match::AddrType { .. } => &["--src-type", "--dst-type"],
            Match::Limit(_) => &["--limit", "--limit-burst"],
            Match::Comment(_) => &["--comment"],
            Match::Length(_) => &["--length"],
            Match::Ttl(_) => &["--ttl-eq", "--ttl-lt", "--ttl-gt"],
            _ => &[],
        }
    }

    /// Takes `opt` (already past its `!`) and its values if it belongs to
    /// this module; `Ok(false)` when it does not.
    pub fn option(
        &mut self,
        opt: &Tok,
        neg: bool,
        cur: &mut Cursor,
        ifaces: &Interfaces,
    ) -> PResult<bool> {
        let o = opt.text.as_str();
        match self {
            Match::Tcp(t) => {
                if t.ports.option(opt, neg, cur)? {
                    return Ok(true);
                }
                let flags = match o {
                    "--tcp-flags" => {
                        let m = cur.value(opt)?;
                        let c = cur.value(opt)?;
                        (
                            parse_flags(m, "TCP flag", TCP_FLAGS)? as u8,
                            parse_flags(c, "TCP flag", TCP_FLAGS)? as u8,
                        )
                    }
                    "--syn" => (0x17, 0x02),
                    _ => return Ok(false),
                };
                let v = (neg || flags.0 != 0).then_some(Neg::new(neg, flags));
                set(&mut t.flags, v, opt)?;
            }
            Match::Udp(p) => return p.option(opt, neg, cur),
            Match::Icmp(t) => {
                if o != "--icmp-type" {
                    return Ok(false);
                }
                let v = IcmpType::parse(cur.value(opt)?)?;
                set(t, Some(Neg::new(neg, v)), opt)?;
            }
            Match::Multiport(m) => {
                let which = match o {
                    "--sports" | "--source-ports" => Which::Src,
                    "--dports" | "--destination-ports" => Which::Dst,
                    "--ports" => Which::Both,
                    _ => return Ok(false),
                };
                let v = cur.value(opt)?;
                let mut ports = Vec::new();
                let mut slots = 0;
                for p in v.text.split(',') {
                    let r = PortRange::parse(v, p, ':')?;
                    slots += if r.lo == r.hi { 1 } else { 2 };
                    ports.push(r);
                }
                if slots > 15 {
                    return Err(Perr::at(
                        v,
                        "too many ports: multiport takes at most 15 (a range counts as two)",
                    ));
                }
                if m.is_some() {
                    return Err(Perr::at(
                        opt,
                        "multiport takes one of --sports, --dports, --ports",
                    ));
                }
                *m = Some(Neg::new(neg, Multiport { which, ports }));
            }
            Match::Physdev(p) => {
                let flag = Some(Neg::new(neg, ()));
                match o {
                    "--physdev-in" => {
                        let s = IfSet::parse(cur.value(opt)?, ifaces, true)?;
                        set(&mut p.inp, Some(Neg::new(neg, s)), opt)?;
                    }
                    "--physdev-out" => {
                        let s = IfSet::parse(cur.value(opt)?, ifaces, true)?;
                        set(&mut p.out, Some(Neg::new(neg, s)), opt)?;
                    }
                    "--physdev-is-in" => set(&mut p.is_in, flag, opt)?,
                    "--physdev-is-out" => set(&mut p.is_out, flag, opt)?,
                    "--physdev-is-bridged" => set(&mut p.is_bridged, flag, opt)?,
                    _ => return Ok(false),
                }
            }
            Match::Conntrack(c) => return conntrack_option(c, opt, neg, cur),
            Match::State(s) => {
                if o != "--state" {
                    return Ok(false);
                }
                let v = parse_flags(cur.value(opt)?, "state", &CT_STATES[..5])? as u8;
                set(s, Some(Neg::new(neg, v)), opt)?;
            }
            Match::Mac(m) => {
                if o != "--mac-source" {
                    return Ok(false);
                }
                let v = cur.value(opt)?;
                let mac = v
                    .text
                    .parse::<MacAddr>()
                    .map_err(|e| Perr::at(v, format!("bad MAC {:?}: {e}", v.text)))?;
                set(m, Some(Neg::new(neg, mac)), opt)?;
            }
            Match::Mark(m) | Match::Connmark(m) => {
                if o != "--mark" {
                    return Ok(false);
                }
                let v = parse_value_mask(cur.value(opt)?)?;
                set(m, Some(Neg::new(neg, v)), opt)?;
            }
            Match::IpRange { src, dst } => {
                let slot = match o {
                    "--src-range" => src,
                    "--dst-range" => dst,
                    _ => return Ok(false),
                };
                let v = parse_range_v4(cur.value(opt)?)?;
                set(slot, Some(Neg::new(neg, v)), opt)?;
            }
            Match::AddrType { src, dst } => {
                let slot = match o {
                    "--src-type" => src,
                    "--dst-type" => dst,
                    _ => return Ok(false),
                };
                let v = parse_flags(cur.value(opt)?, "address type", ADDR_TYPES)? as u16;
                set(slot, Some(Neg::new(neg, v)), opt)?;
            }
            Match::Limit(l) => match o {
                "--limit" => {
                    no_neg(neg, opt)?;
                    l.period = Limit::parse_rate(cur.value(opt)?)?;
                }
                "--limit-burst" => {
                    no_neg(neg, opt)?;
                    let v = cur.value(opt)?;
                    l.burst = parse_u32(v, &v.text)?;
                    if l.burst == 0 || l.burst > 10_000 {
                        return Err(Perr::at(v, "burst must be 1 to 10000"));
                    }
                }
                _ => return Ok(false),
            },
            Match::Comment(c) => {
                if o != "--comment" {
                    return Ok(false);
                }
                no_neg(neg, opt)?;
                let v = cur.value(opt)?;
                if v.text.len() > 255 {
                    return Err(Perr::at(v, "comment longer than 255 bytes"));
                }
                set(c, Some(v.text.clone()), opt)?;
            }
            Match::Length(l) => {
                if o != "--length" {
                    return Ok(false);
                }
                let v = cur.value(opt)?;
                set(
                    l,
                    Some(Neg::new(neg, PortRange::parse(v, &v.text, ':')?)),
                    opt,
                )?;
            }
            Match::Ttl(t) => {
                let op = match o {
                    "--ttl-eq" => TtlOp::Eq,
                    "--ttl-lt" => TtlOp::Lt,
                    "--ttl-gt" => TtlOp::Gt,
                    _ => return Ok(false),
                };
                if op != TtlOp::Eq {
                    no_neg(neg, opt)?;
                }
                let v = cur.value(opt)?;
                let n = parse_u8(v, &v.text)?;
                if t.is_some() {
                    return Err(Perr::at(
                        opt,
                        "ttl takes one of --ttl-eq, --ttl-lt, --ttl-gt",
                    ));
                }
                *t = Some(Neg::new(neg, (op, n)));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A module given without the options it needs.
    pub fn missing(&self) -> Option<&'static str> {
        Some(match self {
            Match::Multiport(None) => "needs --sports, --dports or --ports",
            Match::State(None) => "needs --state",
            Match::Mac(None) => "needs --mac-source",
            Match::Mark(None) | Match::Connmark(None) => "needs --mark",
            Match::IpRange {
                src: None,
                dst: None,
            } => "needs --src-range or --dst-range",
            Match::AddrType {
                src: None,
                dst: None,
            } => "needs --src-type or --dst-type",
            Match::Length(None) => "needs --length",
            Match::Ttl(None) => "needs --ttl-eq, --ttl-lt or --ttl-gt",
            Match::Physdev(p) if **p == Physdev::default() => "needs a --physdev-* option",
            Match::Conntrack(c) if **c == Conntrack::default() => "needs a --ct* option",
            _ => return None,
        })
    }

    /// Protocols the module needs `-p` to name (as the kernel checks).
    pub fn needs_proto(&self) -> Option<&'static [u8]> {
        match self {
            Match::Tcp(_) => Some(&[6]),
            Match::Udp(_) => Some(&[17]),
            Match::Icmp(_) => Some(&[1]),
            Match::Multiport(_) => Some(&[6, 17, 132, 136]),
            _ => None,
        }
    }

    /// Hooks the match may be used from, as a bit set of `Hook::bit`.
    pub fn hooks(&self) -> (u8, &'static str) {
        let all = 0x1f;
        match self {
            Match::Mac(_) => (
                Hook::Prerouting.bit() | Hook::Input.bit() | Hook::Forward.bit(),
                "-m mac is only valid in PREROUTING, INPUT and FORWARD",
            ),
            Match::Physdev(p)
                if (p.out.is_some() || p.is_out.is_some()) && p.is_bridged.is_none_or(|b| b.neg) =>
            {
                (
                    all & !Hook::Output.bit(),
                    "--physdev-out and --physdev-is-out are not valid in OUTPUT (without --physdev-is-bridged)",
                )
            }
            _ => (all, ""),
        }
    }

    /// Whether the packet matches; `meta` carries marks and TTL/TOS as
    /// earlier rules set them.
    #[inline]
    pub fn matches(&mut self, p: &PacketInfo, meta: &Meta, now: Timestamp) -> bool {
        match self {
            Match::Src(c) => c.test(|c| c.contains(p.src)),
            Match::Dst(c) => c.test(|c| c.contains(p.dst)),
            Match::In(i) => i.test(|i| i.matches(p.iif)),
            Match::Out(i) => i.test(|i| i.matches(p.oif)),
            Match::Proto(n) => n.test(|&n| n == p.protocol),
            Match::Frag(f) => f.test(|_| p.fragment),
            Match::Tcp(t) => match p.l4 {
                L4Info::Tcp {
                    sport,
                    dport,
                    flags,
                } if !p.fragment => {
                    t.ports.matches(sport, dport)
                        && t.flags.is_none_or(|f| f.test(|(m, c)| flags & m == *c))
                }
                _ => false,
            },
            Match::Udp(u) => match p.l4 {
                L4Info::Udp { sport, dport } if !p.fragment => u.matches(sport, dport),
                _ => false,
            },
            Match::Icmp(t) => match p.l4 {
                L4Info::Icmp { kind, code } if !p.fragment => {
                    t.is_none_or(|t| t.test(|t| t.matches(kind, code)))
                }
                _ => false,
            },
            Match::Multiport(m) => {
                let (sport, dport) = match p.l4 {
                    L4Info::Tcp { sport, dport, .. } | L4Info::Udp { sport, dport }
                        if !p.fragment =>
                    {
                        (sport, dport)
                    }
                    _ => return false,
                };
                m.as_ref().is_none_or(|m| {
                    m.test(|m| {
                        m.ports.iter().any(|r| match m.which {
                            Which::Src => r.contains(sport),
                            Which::Dst => r.contains(dport),
                            Which::Both => r.contains(sport) || r.contains(dport),
                        })
                    })
                })
            }
            Match::Physdev(d) => physdev_matches(d, p),
            Match::Conntrack(c) => conntrack_matches(c, p),
            Match::State(s) => s.is_none_or(|s| s.test(|m| m & state_bits(p) != 0)),
            Match::Mac(m) => m.is_none_or(|m| m.test(|m| *m == p.src_mac)),
            Match::Mark(m) => m.is_none_or(|m| m.test(|(v, mask)| meta.mark & mask == *v)),
            Match::Connmark(m) => m.is_none_or(|m| m.test(|(v, mask)| meta.ctmark & mask == *v)),
            Match::IpRange { src, dst } => {
                let inr = |r: &Option<Neg<(u32, u32)>>, a: Ipv4Addr| {
                    r.is_none_or(|r| r.test(|(lo, hi)| (*lo..=*hi).contains(&u32::from(a))))
                };
                inr(src, p.src) && inr(dst, p.dst)
            }
            Match::AddrType { src, dst } => {
                src.is_none_or(|m| m.test(|m| p.src_type.0 & m != 0))
                    && dst.is_none_or(|m| m.test(|m| p.dst_type.0 & m != 0))
            }
            Match::Limit(l) => l.allow(now),
            Match::Comment(_) => true,
            Match::Length(l) => l.is_none_or(|l| l.test(|r| r.contains(p.len))),
            Match::Ttl(t) => {
                let ttl = meta.ttl.unwrap_or(p.ttl);
                t.is_none_or(|t| {
                    t.test(|(op, v)| match op {
                        TtlOp::Eq => ttl == *v,
                        TtlOp::Lt => ttl < *v,
                        TtlOp::Gt => ttl > *v,
                    })
                })
            }
        }
    }

    /// The iptables-save spelling, with a leading space.
    pub fn save(&self, out: &mut String) {
        match self {
            Match::Src(c) => {
                c.push_opt(out, "-s");
                let _ = write!(out, " {}", c.v);
            }
            Match::Dst(c) => {
                c.push_opt(out, "-d");
                let _ = write!(out, " {}", c.v);
            }
            Match::In(i) => {
                i.push_opt(out, "-i");
                let _ = write!(out, " {}", i.v.name);
            }
            Match::Out(i) => {
                i.push_opt(out, "-o");
                let _ = write!(out, " {}", i.v.name);
            }
            Match::Proto(n) => {
                n.push_opt(out, "-p");
                match proto_name(n.v) {
                    Some(name) => {
                        let _ = write!(out, " {name}");
                    }
                    None => {
                        let _ = write!(out, " {}", n.v);
                    }
                }
            }
            Match::Frag(f) => f.push_opt(out, "-f"),
            _ => self.save_module(out),
        }
    }

    fn save_module(&self, out: &mut String) {
        if let Some(name) = self.module() {
            let _ = write!(out, " -m {name}");
        }
        match self {
            Match::Tcp(t) => {
                t.ports.save(out);
                if let Some(f) = t.flags {
                    f.push_opt(out, "--tcp-flags");
                    out.push(' ');
                    write_tcp_flags(out, f.v.0);
                    out.push(' ');
                    write_tcp_flags(out, f.v.1);
                }
            }
            Match::Udp(p) => p.save(out),
            Match::Icmp(t) => {
                let t = t.unwrap_or(Neg::new(
                    false,
                    IcmpType {
                        kind: 255,
                        code: (0, 255),
                    },
                ));
                t.push_opt(out, "--icmp-type");
                out.push(' ');
                t.v.write(out);
            }
            Match::Multiport(Some(m)) => {
                let opt = match m.v.which {
                    Which::Src => "--sports",
                    Which::Dst => "--dports",
                    Which::Both => "--ports",
                };
                m.push_opt(out, opt);
                write_port_list(out, &m.v.ports);
            }
            Match::Physdev(p) => {
                for (s, opt) in [(&p.inp, "--physdev-in"), (&p.out, "--physdev-out")] {
                    if let Some(s) = s {
                        s.push_opt(out, opt);
                        push_quoted(out, &s.v.name);
                    }
                }
                for (f, opt) in [
                    (p.is_in, "--physdev-is-in"),
                    (p.is_out, "--physdev-is-out"),
                    (p.is_bridged, "--physdev-is-bridged"),
                ] {
                    if let Some(f) = f {
                        f.push_opt(out, opt);
                    }
                }
            }
            Match::Conntrack(c) => save_conntrack(c, out),
            Match::State(Some(s)) => {
                s.push_opt(out, "--state");
                out.push(' ');
                write_flags(out, u32::from(s.v), CT_STATES);
            }
            Match::Mac(Some(m)) => {
                m.push_opt(out, "--mac-source");
                let _ = write!(out, " {}", m.v.to_string().to_ascii_uppercase());
            }
            Match::Mark(Some(m)) | Match::Connmark(Some(m)) => {
                m.push_opt(out, "--mark");
                write_value_mask(out, m.v);
            }
            Match::IpRange { src, dst } => {
                for (r, opt) in [(src, "--src-range"), (dst, "--dst-range")] {
                    if let Some(r) = r {
                        r.push_opt(out, opt);
                        write_range_v4(out, r.v);
                    }
                }
            }
            Match::AddrType { src, dst } => {
                for (t, opt) in [(src, "--src-type"), (dst, "--dst-type")] {
                    if let Some(t) = t {
                        t.push_opt(out, opt);
                        out.push(' ');
                        write_flags(out, u32::from(t.v), ADDR_TYPES);
                    }
                }
            }
            Match::Limit(l) => {
                out.push_str(" --limit ");
                l.write_rate(out);
                if l.burst != 5 {
                    let _ = write!(out, " --limit-burst {}", l.burst);
                }
            }
            Match::Comment(Some(c)) => {
                out.push_str(" --comment");
                push_quoted(out, c);
            }
            Match::Length(Some(l)) => {
                l.push_opt(out, "--length");
                out.push(' ');
                l.v.write(out, ':');
            }
            Match::Ttl(Some(t)) => {
                let opt = match t.v.0 {
                    TtlOp::Eq => "--ttl-eq",
                    TtlOp::Lt => "--ttl-lt",
                    TtlOp::Gt => "--ttl-gt",
                };
                t.push_opt(out, opt);
                let _ = write!(out, " {}", t.v.1);
            }
            _ => {}
        }
    }

    /// The `iptables -L` text after the columns (modules only), with a
    /// leading space.
    pub fn list(&self, out: &mut String) {
        let bang = |neg: bool| if neg { "! " } else { "" };
        match self {
            Match::Tcp(t) => {
                out.push_str(" tcp");
                t.ports.list(out);
                if let Some(f) = t.flags {
                    let _ = write!(
                        out,
                        " flags:{}0x{:02X}/0x{:02X}",
                        if f.neg { "!" } else { "" },
                        f.v.0,
                        f.v.1
                    );
                }
            }
            Match::Udp(p) => {
                out.push_str(" udp");
                p.list(out);
            }
            Match::Icmp(t) => {
                out.push_str(" icmptype ");
                match t {
                    Some(t) => {
                        out.push_str(bang(t.neg));
                        t.v.write(out);
                    }
                    None => out.push_str("any"),
                }
            }
            Match::Multiport(Some(m)) => {
                let w = match m.v.which {
                    Which::Src => "sports",
                    Which::Dst => "dports",
                    Which::Both => "ports",
                };
                let _ = write!(out, " multiport {w}");
                if m.neg {
                    out.push_str(" !");
                }
                write_port_list(out, &m.v.ports);
            }
            Match::Comment(Some(c)) => {
                let _ = write!(out, " /* {c} */");
            }
            Match::Limit(l) => {
                out.push_str(" limit: avg ");
                l.write_rate(out);
                let _ = write!(out, " burst {}", l.burst);
            }
            Match::Mark(Some(m)) | Match::Connmark(Some(m)) => {
                let what = if matches!(self, Match::Mark(_)) {
                    "mark"
                } else {
                    "connmark"
                };
                let _ = write!(out, " {}{what} match", bang(m.neg));
                write_value_mask(out, m.v);
            }
            Match::AddrType { .. } => {
                out.push_str(" ADDRTYPE match");
                let mut s = String::new();
                self.save_module(&mut s);
                out.push_str(
                    s.trim_start_matches(" -m addrtype")
                        .replace("--", "")
                        .as_str(),
                );
            }
            _ => {
                // The remaining modules read clearly in their save form.
                let mut s = String::new();
                self.save_module(&mut s);
                if let Some(rest) = s.strip_prefix(" -m ") {
                    out.push(' ');
                    out.push_str(&rest.replace(" --", " "));
                }
            }
        }
    }
}

fn write_tcp_flags(out: &mut String, mut flags: u8) {
    if flags == 0 {
        out.push_str("NONE");
        return;
    }
    let mut first = true;
    for (name, bit) in &TCP_FLAGS[..6] {
        let bit = *bit as u8;
        if flags & bit != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
            flags &= !bit;
        }
    }
}

fn write_port_list(out: &mut String, ports: &[PortRange]) {
    out.push(' ');
    for (i, r) in ports.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        r.write(out, ':');
    }
}

fn physdev_matches(d: &Physdev, p: &PacketInfo) -> bool {
    // Not bridged: as the kernel, only negated options can match.
    if !p.bridged {
        return [d.inp.as_ref().map(|s| s.neg), d.out.as_ref().map(|s| s.neg)]
            .into_iter()
            .chain([d.is_in, d.is_out, d.is_bridged].map(|f| f.map(|f| f.neg)))
            .all(|neg| neg.unwrap_or(true));
    }
    d.inp
        .as_ref()
        .is_none_or(|s| s.test(|s| s.matches_port(p.iif)))
        && d.out
            .as_ref()
            .is_none_or(|s| s.test(|s| s.matches_port(p.oif)))
        && d.is_in.is_none_or(|f| f.test(|_| p.iif.is_some()))
        && d.is_out.is_none_or(|f| f.test(|_| p.oif.is_some()))
        && d.is_bridged.is_none_or(|f| f.test(|_| p.oif.is_some()))
}

fn conntrack_option(c: &mut Conntrack, opt: &Tok, neg: bool, cur: &mut Cursor) -> PResult<bool> {
    let o = opt.text.as_str();
    match o {
        "--ctstate" => {
            let v = parse_flags(cur.value(opt)?, "state", CT_STATES)? as u8;
            set(&mut c.state, Some(Neg::new(neg, v)), opt)?;
        }
        "--ctstatus" => {
            let v = parse_flags(cur.value(opt)?, "status", CT_STATUS)? as u8;
            set(&mut c.status, Some(Neg::new(neg, v)), opt)?;
        }
        "--ctorigsrc" | "--ctorigdst" | "--ctreplsrc" | "--ctrepldst" => {
            let slot = match o {
                "--ctorigsrc" => &mut c.orig_src,
                "--ctorigdst" => &mut c.orig_dst,
                "--ctreplsrc" => &mut c.repl_src,
                _ => &mut c.repl_dst,
            };
            let v = Cidr::parse(cur.value(opt)?)?;
            set(slot, Some(Neg::new(neg, v)), opt)?;
        }
        "--ctorigsrcport" | "--ctorigdstport" | "--ctreplsrcport" | "--ctrepldstport" => {
            let slot = match o {
                "--ctorigsrcport" => &mut c.orig_sport,
                "--ctorigdstport" => &mut c.orig_dport,
                "--ctreplsrcport" => &mut c.repl_sport,
                _ => &mut c.repl_dport,
            };
            let v = cur.value(opt)?;
            set(
                slot,
                Some(Neg::new(neg, PortRange::parse(v, &v.text, ':')?)),
                opt,
            )?;
        }
        "--ctdir" => {
            no_neg(neg, opt)?;
            let v = cur.value(opt)?;
            let d = match v.text.to_ascii_uppercase().as_str() {
                "ORIGINAL" => CtDir::Original,
                "REPLY" => CtDir::Reply,
                _ => {
                    return Err(Perr::at(
                        v,
                        format!("bad --ctdir {:?}: ORIGINAL or REPLY", v.text),
                    ))
                }
            };
            set(&mut c.dir, Some(d), opt)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn conntrack_matches(c: &Conntrack, p: &PacketInfo) -> bool {
    if let Some(s) = c.state {
        if !s.test(|m| m & state_bits(p) != 0) {
            return false;
        }
    }
    // No connection: as the kernel, only a lone --ctstate can match.
    if matches!(p.ct.state, CtState::Invalid | CtState::Untracked) {
        return Conntrack {
            state: c.state,
            ..Conntrack::default()
        } == *c;
    }
    let ct = &p.ct;
    let addr = |r: &Option<Neg<Cidr>>, a: Ipv4Addr| r.is_none_or(|r| r.test(|r| r.contains(a)));
    let port = |r: &Option<Neg<PortRange>>, v: u16| r.is_none_or(|r| r.test(|r| r.contains(v)));
    addr(&c.orig_src, ct.orig_src)
        && addr(&c.orig_dst, ct.orig_dst)
        && addr(&c.repl_src, ct.reply_src)
        && addr(&c.repl_dst, ct.reply_dst)
        && port(&c.orig_sport, ct.orig_sport)
        && port(&c.orig_dport, ct.orig_dport)
        && port(&c.repl_sport, ct.reply_sport)
        && port(&c.repl_dport, ct.reply_dport)
        && c.status.is_none_or(|s| s.test(|m| m & ct.status != 0))
        && c.dir.is_none_or(|d| d == ct.dir)
}

fn save_conntrack(c: &Conntrack, out: &mut String) {
    if let Some(s) = c.state {
        s.push_opt(out, "--ctstate");
        out.push(' ');
        write_flags(out, u32::from(s.v), CT_STATES);
    }
    for (a, opt) in [
        (c.orig_src, "--ctorigsrc"),
        (c.orig_dst, "--ctorigdst"),
        (c.repl_src, "--ctreplsrc"),
        (c.repl_dst, "--ctrepldst"),
    ] {
        if let Some(a) = a {
            a.push_opt(out, opt);
            let _ = write!(out, " {}", a.v.short());
        }
    }
    for (r, opt) in [
        (c.orig_sport, "--ctorigsrcport"),
        (c.orig_dport, "--ctorigdstport"),
        (c.repl_sport, "--ctreplsrcport"),
        (c.repl_dport, "--ctrepldstport"),
    ] {
        if let Some(r) = r {
            r.push_opt(out, opt);
            out.push(' ');
            r.v.write(out, ':');
        }
    }
    if let Some(s) = c.status {
        s.push_opt(out, "--ctstatus");
        out.push(' ');
        if s.v == 0 {
            out.push_str("NONE");
        } else {
            write_flags(out, u32::from(s.v), CT_STATUS);
        }
    }
    if let Some(d) = c.dir {
        out.push_str(match d {
            CtDir::Original => " --ctdir ORIGINAL",
            CtDir::Reply => " --ctdir REPLY",
        });
    }
}
