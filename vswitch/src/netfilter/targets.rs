//! Targets: what a matching rule does. Terminal verdicts, jumps, and the
//! extensions that edit [`Meta`] and carry on (LOG, MARK, CONNMARK, TTL,
//! TOS, DSCP, NOTRACK), each with its parser, its table and hook
//! restrictions as the kernel enforces them, and its printers.

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::lex::{push_quoted, Cursor, Tok};
use super::types::{parse_ip, parse_u32, parse_u8, parse_value_mask, PResult, Perr, PortRange};
use super::{Hook, Meta, NatAction, NatRange, RejectWith, Table};

/// A jump target by name, resolved to an index into the table's chains
/// once all edits of the table are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainRef {
    pub name: String,
    pub idx: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Log {
    pub prefix: String,
    pub level: u8,
    pub flags: u8,
}

const LOG_LEVELS: &[(&str, u8)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("error", 3),
    ("err", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// LOG's flags, with the kernel's bit values; accepted and printed back.
/// PacketInfo carries no sequence numbers, options or socket owner, so they
/// add nothing to the line.
const LOG_FLAGS: &[(&str, u8)] = &[
    ("--log-tcp-sequence", 0x01),
    ("--log-tcp-options", 0x02),
    ("--log-ip-options", 0x04),
    ("--log-uid", 0x08),
    ("--log-macdecode", 0x20),
];

const REJECT_WITH: &[(&str, &str, RejectWith)] = &[
    (
        "icmp-net-unreachable",
        "net-unreach",
        RejectWith::NetUnreachable,
    ),
    (
        "icmp-host-unreachable",
        "host-unreach",
        RejectWith::HostUnreachable,
    ),
    (
        "icmp-port-unreachable",
        "port-unreach",
        RejectWith::PortUnreachable,
    ),
    (
        "icmp-proto-unreachable",
        "proto-unreach",
        RejectWith::ProtoUnreachable,
    ),
    (
        "icmp-net-prohibited",
        "net-prohib",
        RejectWith::NetProhibited,
    ),
    (
        "icmp-host-prohibited",
        "host-prohib",
        RejectWith::HostProhibited,
    ),
    (
        "icmp-admin-prohibited",
        "admin-prohib",
        RejectWith::AdminProhibited,
    ),
    ("tcp-reset", "tcp-rst", RejectWith::TcpReset),
];

const DSCP_CLASSES: &[(&str, u8)] = &[
    ("CS0", 0),
    ("CS1", 8),
    ("CS2", 16),
    ("CS3", 24),
    ("CS4", 32),
    ("CS5", 40),
    ("CS6", 48),
    ("CS7", 56),
    ("BE", 0),
    ("AF11", 10),
    ("AF12", 12),
    ("AF13", 14),
    ("AF21", 18),
    ("AF22", 20),
    ("AF23", 22),
    ("AF31", 26),
    ("AF32", 28),
    ("AF33", 30),
    ("AF41", 34),
    ("AF42", 36),
    ("AF43", 38),
    ("EF", 46),
];

const TOS_NAMES: &[(&str, u8)] = &[
    ("Minimize-Delay", 0x10),
    ("Maximize-Throughput", 0x08),
    ("Maximize-Reliability", 0x04),
    ("Minimize-Cost", 0x02),
    ("Normal-Service", 0x00),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnmarkOp {
    Set { ctmark: u32, ctmask: u32 },
    Save { nfmask: u32, ctmask: u32 },
    Restore { nfmask: u32, ctmask: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TtlOp {
    Set,
    Dec,
    Inc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No `-j`: the rule only counts.
    None,
    Accept,
    Drop,
    Return,
    Jump(ChainRef),
    Goto(ChainRef),
    Reject(RejectWith),
    Log(Box<Log>),
    /// `mark = (mark & !mask) ^ value`, the kernel's xset.
    Mark {
        value: u32,
        mask: u32,
    },
    Connmark(Option<ConnmarkOp>),
    Ttl(Option<(TtlOp, u8)>),
    /// `tos = (tos & !mask) ^ value`
    Tos(Option<(u8, u8)>),
    Dscp(Option<u8>),
    Notrack,
    /// `-j CT --notrack`; `false` until the option is seen.
    CtNotrack(bool),
    Nat(NatAction),
}

/// Extension targets `-j` knows, for suggestions.
pub(crate) const TARGETS: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "LOG",
    "MARK",
    "CONNMARK",
    "TTL",
    "TOS",
    "DSCP",
    "NOTRACK",
    "CT",
    "SNAT",
    "DNAT",
    "MASQUERADE",
    "REDIRECT",
];

fn unset_range() -> NatRange {
    NatRange {
        addr_lo: Ipv4Addr::UNSPECIFIED,
        addr_hi: Ipv4Addr::UNSPECIFIED,
        ports: None,
        random: false,
        random_fully: false,
        persistent: false,
    }
}

/// `a[-b][:p[-q]]`, as `--to-source`/`--to-destination` take it.
fn parse_nat_range(tok: &Tok, r: &mut NatRange) -> PResult<()> {
    let s = tok.text.as_str();
    let (addrs, ports) = match s.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    if addrs.is_empty() {
        return Err(Perr::at(
            tok,
            format!("{s:?}: an address is required before the ports"),
        ));
    }
    let (lo, hi) = match addrs.split_once('-') {
        Some((a, b)) => (parse_ip(tok, a)?, parse_ip(tok, b)?),
        None => {
            let a = parse_ip(tok, addrs)?;
            (a, a)
        }
    };
    if u32::from(lo) > u32::from(hi) {
        return Err(Perr::at(
            tok,
            format!("{s:?}: address range start above end"),
        ));
    }
    r.addr_lo = lo;
    r.addr_hi = hi;
    r.ports = ports.map(|p| PortRange::parse(tok, p, '-')).transpose()?;
    Ok(())
}

fn write_nat_range(out: &mut String, r: &NatRange) {
    let _ = write!(out, "{}", r.addr_lo);
    if r.addr_hi != r.addr_lo {
        let _ = write!(out, "-{}", r.addr_hi);
    }
    if let Some(p) = r.ports {
        out.push(':');
        p.write(out, '-');
    }
}

impl Target {
    /// A fresh target for `-j NAME`; `None` when NAME is not a built-in or
    /// extension target (then it names a chain).
    pub fn load(name: &str) -> Option<Target> {
        Some(match name {
            "ACCEPT" => Target::Accept,
            "DROP" => Target::Drop,
            "RETURN" => Target::Return,
            "REJECT" => Target::Reject(RejectWith::PortUnreachable),
            "LOG" => Target::Log(Box::new(Log {
                prefix: String::new(),
                level: 4,
                flags: 0,
            })),
            "MARK" => Target::Mark { value: 0, mask: 0 },
            "CONNMARK" => Target::Connmark(None),
            "TTL" => Target::Ttl(None),
            "TOS" => Target::Tos(None),
            "DSCP" => Target::Dscp(None),
            "NOTRACK" => Target::Notrack,
            "CT" => Target::CtNotrack(false),
            "SNAT" => Target::Nat(NatAction::Snat(unset_range())),
            "DNAT" => Target::Nat(NatAction::Dnat(unset_range())),
            "MASQUERADE" => Target::Nat(NatAction::Masquerade {
                ports: None,
                random: false,
                random_fully: false,
            }),
            "REDIRECT" => Target::Nat(NatAction::Redirect {
                ports: None,
                random: false,
            }),
            _ => return None,
        })
    }

    /// The name `-j` gives it.
    pub fn name(&self) -> &str {
        match self {
            Target::None => "",
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Return => "RETURN",
            Target::Jump(c) | Target::Goto(c) => &c.name,
            Target::Reject(_) => "REJECT",
            Target::Log(_) => "LOG",
            Target::Mark { .. } => "MARK",
            Target::Connmark(_) => "CONNMARK",
            Target::Ttl(_) => "TTL",
            Target::Tos(_) => "TOS",
            Target::Dscp(_) => "DSCP",
            Target::Notrack => "NOTRACK",
            Target::CtNotrack(_) => "CT",
            Target::Nat(NatAction::Snat(_)) => "SNAT",
            Target::Nat(NatAction::Dnat(_)) => "DNAT",
            Target::Nat(NatAction::Masquerade { .. }) => "MASQUERADE",
            Target::Nat(NatAction::Redirect { .. }) => "REDIRECT",
        }
    }

    pub fn option_names(&self) -> &'static [&'static str] {
        match self {
            Target::Reject(_) => &["--reject-with"],
            Target::Log(_) => &[
                "--log-prefix",
                "--log-level",
                "--log-tcp-sequence",
                "--log-tcp-options",
                "--log-ip-options",
                "--log-uid",
                "--log-macdecode",
            ],
            Target::Mark { .. } => &[
                "--set-mark",
                "--set-xmark",
                "--and-mark",
                "--or-mark",
                "--xor-mark",
            ],
            Target::Connmark(_) => &[
                "--set-mark",
                "--set-xmark",
                "--and-mark",
                "--or-mark",
                "--xor-mark",
                "--save-mark",
                "--restore-mark",
                "--mask",
                "--nfmask",
                "--ctmask",
            ],
            Target::Ttl(_) => &["--ttl-set", "--ttl-dec", "--ttl-inc"],
            Target::Tos(_) => &["--set-tos", "--and-tos", "--or-tos", "--xor-tos"],
            Target::Dscp(_) => &["--set-dscp", "--set-dscp-class"],
            Target::CtNotrack(_) => &["--notrack"],
            Target::Nat(NatAction::Snat(_)) => {
                &["--to-source", "--random", "--random-fully", "--persistent"]
            }
            Target::Nat(NatAction::Dnat(_)) => &["--to-destination", "--random", "--persistent"],
            Target::Nat(NatAction::Masquerade { .. }) => {
                &["--to-ports", "--random", "--random-fully"]
            }
            Target::Nat(NatAction::Redirect { .. }) => &["--to-ports", "--random"],
            _ => &[],
        }
    }

    /// Takes `opt` and its values if this target has it; `Ok(false)` when not.
    /// `seen` lists options given so far, to refuse repeats and conflicts.
    pub fn option(&mut self, opt: &Tok, cur: &mut Cursor, seen: &[&str]) -> PResult<bool> {
        let o = opt.text.as_str();
        if !self.option_names().contains(&o) {
            return Ok(false);
        }
        if seen.contains(&o) {
            return Err(Perr::at(opt, format!("{o} given twice")));
        }
        let one_of = |names: &[&str]| -> PResult<()> {
            match seen.iter().find(|s| names.contains(s)) {
                Some(prev) => Err(Perr::at(opt, format!("{o} conflicts with {prev}"))),
                None => Ok(()),
            }
        };
        let value = |cur: &mut Cursor| -> PResult<u32> {
            let v = cur.value(opt)?;
            parse_u32(v, &v.text)
        };
        match self {
            Target::Reject(w) => {
                let v = cur.value(opt)?;
                *w = REJECT_WITH
                    .iter()
                    .find(|(long, short, _)| v.text == *long || v.text == *short)
                    .map(|(_, _, w)| *w)
                    .ok_or_else(|| {
                        let names = REJECT_WITH.iter().map(|(l, _, _)| *l);
                        Perr::at(
                            v,
                            format!(
                                "unknown --reject-with {:?}{}",
                                v.text,
                                super::types::did_you_mean(&v.text, names)
                            ),
                        )
                    })?;
            }
            Target::Log(l) => {
                match o {
                    "--log-prefix" => {
                        let v = cur.value(opt)?;
                        if v.text.len() > 29 {
                            return Err(Perr::at(v, "log prefix longer than 29 characters"));
                        }
                        l.prefix = v.text.clone();
                    }
                    "--log-level" => {
                        let v = cur.value(opt)?;
                        l.level = match LOG_LEVELS.iter().find(|(n, _)| v.text.eq_ignore_ascii_case(n)) {
                        Some((_, n)) => *n,
                        None => match v.text.parse::<u8>() {
                            Ok(n) if n <= 7 => n,
                            _ => {
                                return Err(Perr::at(
                                    v,
                                    format!("bad --log-level {:?}: 0-7 or a name like warning, info, debug", v.text),
                                ))
                            }
                        },
                    };
                    }
                    _ => {
                        if let Some((_, bit)) = LOG_FLAGS.iter().find(|(n, _)| *n == o) {
                            l.flags |= bit;
                        }
                    }
                }
            }
            Target::Mark { value: val, mask } => {
                one_of(&[
                    "--set-mark",
                    "--set-xmark",
                    "--and-mark",
                    "--or-mark",
                    "--xor-mark",
                ])?;
                (*val, *mask) = match o {
                    "--set-xmark" => parse_value_mask(cur.value(opt)?)?,
                    "--set-mark" => {
                        let (v, m) = parse_value_mask(cur.value(opt)?)?;
                        (v, v | m)
                    }
                    "--and-mark" => (0, !value(cur)?),
                    "--or-mark" => {
                        let v = value(cur)?;
                        (v, v)
                    }
                    _ => (value(cur)?, 0),
                };
            }
            Target::Connmark(op) => {
                let ops = [
                    "--set-mark",
                    "--set-xmark",
                    "--and-mark",
                    "--or-mark",
                    "--xor-mark",
                    "--save-mark",
                    "--restore-mark",
                ];
                if ops.contains(&o) {
                    one_of(&ops)?;
                }
                match o {
                    "--set-xmark" => {
                        let (v, m) = parse_value_mask(cur.value(opt)?)?;
                        *op = Some(ConnmarkOp::Set {
                            ctmark: v,
                            ctmask: m,
                        });
                    }
                    "--set-mark" => {
                        let (v, m) = parse_value_mask(cur.value(opt)?)?;
                        *op = Some(ConnmarkOp::Set {
                            ctmark: v,
                            ctmask: v | m,
                        });
                    }
                    "--and-mark" => {
                        *op = Some(ConnmarkOp::Set {
                            ctmark: 0,
                            ctmask: !value(cur)?,
                        })
                    }
                    "--or-mark" => {
                        let v = value(cur)?;
                        *op = Some(ConnmarkOp::Set {
                            ctmark: v,
                            ctmask: v,
                        });
                    }
                    "--xor-mark" => {
                        *op = Some(ConnmarkOp::Set {
                            ctmark: value(cur)?,
                            ctmask: 0,
                        })
                    }
                    "--save-mark" => {
                        *op = Some(ConnmarkOp::Save {
                            nfmask: u32::MAX,
                            ctmask: u32::MAX,
                        })
                    }
                    "--restore-mark" => {
                        *op = Some(ConnmarkOp::Restore {
                            nfmask: u32::MAX,
                            ctmask: u32::MAX,
                        })
                    }
                    _ => {
                        let m = value(cur)?;
                        let (nf, ct) = match op {
                            Some(
                                ConnmarkOp::Save { nfmask, ctmask }
                                | ConnmarkOp::Restore { nfmask, ctmask },
                            ) => (nfmask, ctmask),
                            _ => {
                                return Err(Perr::at(
                                    opt,
                                    format!("{o} goes after --save-mark or --restore-mark"),
                                ))
                            }
                        };
                        match o {
                            "--nfmask" => *nf = m,
                            "--ctmask" => *ct = m,
                            _ => (*nf, *ct) = (m, m),
                        }
                    }
                }
            }
            Target::Ttl(t) => {
                one_of(&["--ttl-set", "--ttl-dec", "--ttl-inc"])?;
                let v = cur.value(opt)?;
                let n = parse_u8(v, &v.text)?;
                let op = match o {
                    "--ttl-set" => TtlOp::Set,
                    "--ttl-dec" => TtlOp::Dec,
                    _ => TtlOp::Inc,
                };
                if n == 0 && op != TtlOp::Set {
                    return Err(Perr::at(v, format!("{o} 0 changes nothing")));
                }
                *t = Some((op, n));
            }
            Target::Tos(t) => {
                one_of(&["--set-tos", "--and-tos", "--or-tos", "--xor-tos"])?;
                let v = cur.value(opt)?;
                *t = Some(match o {
                    "--set-tos" => match TOS_NAMES
                        .iter()
                        .find(|(n, _)| v.text.eq_ignore_ascii_case(n))
                    {
                        Some((_, b)) => (*b, 0x3f),
                        None => {
                            let (val, m) = match v.text.split_once('/') {
                                Some((a, m)) => (parse_u8(v, a)?, parse_u8(v, m)?),
                                None => (parse_u8(v, &v.text)?, 0xff),
                            };
                            (val, m)
                        }
                    },
                    "--and-tos" => (0, !parse_u8(v, &v.text)?),
                    "--or-tos" => {
                        let b = parse_u8(v, &v.text)?;
                        (b, b)
                    }
                    _ => (parse_u8(v, &v.text)?, 0),
                });
            }
            Target::Dscp(d) => {
                one_of(&["--set-dscp", "--set-dscp-class"])?;
                let v = cur.value(opt)?;
                let n = if o == "--set-dscp" {
                    parse_u8(v, &v.text)?
                } else {
                    DSCP_CLASSES
                        .iter()
                        .find(|(n, _)| v.text.eq_ignore_ascii_case(n))
                        .map(|(_, c)| *c)
                        .ok_or_else(|| {
                            Perr::at(
                                v,
                                format!(
                                    "unknown DSCP class {:?} (CS0-CS7, AF11-AF43, EF, BE)",
                                    v.text
                                ),
                            )
                        })?
                };
                if n > 63 {
                    return Err(Perr::at(v, "DSCP is 0-63"));
                }
                *d = Some(n);
            }
            Target::CtNotrack(n) => *n = true,
            Target::Nat(a) => match (a, o) {
                (NatAction::Snat(r), "--to-source") | (NatAction::Dnat(r), "--to-destination") => {
                    parse_nat_range(cur.value(opt)?, r)?
                }
                (NatAction::Snat(r) | NatAction::Dnat(r), _) => match o {
                    "--random" => r.random = true,
                    "--random-fully" => r.random_fully = true,
                    _ => r.persistent = true,
                },
                (
                    NatAction::Masquerade { ports, .. } | NatAction::Redirect { ports, .. },
                    "--to-ports",
                ) => {
                    let v = cur.value(opt)?;
                    *ports = Some(PortRange::parse(v, &v.text, '-')?);
                }
                (
                    NatAction::Masquerade {
                        random,
                        random_fully,
                        ..
                    },
                    _,
                ) => match o {
                    "--random" => *random = true,
                    _ => *random_fully = true,
                },
                (NatAction::Redirect { random, .. }, _) => *random = true,
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// What the target still needs after its options, as an error message.
    pub fn missing(&self, seen: &[&str]) -> Option<&'static str> {
        Some(match self {
            Target::Mark { .. } if seen.is_empty() => "MARK needs --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark",
            Target::Connmark(None) => "CONNMARK needs --set-mark, --save-mark or --restore-mark (or --set-xmark/--and-/--or-/--xor-mark)",
            Target::Ttl(None) => "TTL needs --ttl-set, --ttl-dec or --ttl-inc",
            Target::Tos(None) => "TOS needs --set-tos",
            Target::Dscp(None) => "DSCP needs --set-dscp or --set-dscp-class",
            Target::CtNotrack(false) => "CT needs --notrack (no other CT option is supported)",
            Target::Nat(NatAction::Snat(_)) if !seen.contains(&"--to-source") => "SNAT needs --to-source",
            Target::Nat(NatAction::Dnat(_)) if !seen.contains(&"--to-destination") => "DNAT needs --to-destination",
            _ => return None,
        })
    }

    /// Whether the target names ports (they need -p tcp, udp, sctp or dccp).
    pub fn has_ports(&self) -> bool {
        match self {
            Target::Nat(NatAction::Snat(r) | NatAction::Dnat(r)) => r.ports.is_some(),
            Target::Nat(
                NatAction::Masquerade { ports, .. } | NatAction::Redirect { ports, .. },
            ) => ports.is_some(),
            _ => false,
        }
    }

    /// The table the target is confined to, if any.
    pub fn table(&self) -> Option<Table> {
        match self {
            Target::Reject(_) => Some(Table::Filter),
            Target::Nat(_) => Some(Table::Nat),
            Target::Ttl(_) | Target::Tos(_) | Target::Dscp(_) => Some(Table::Mangle),
            Target::Notrack | Target::CtNotrack(_) => Some(Table::Raw),
            _ => None,
        }
    }

    /// Hooks the target may run from, as `Hook::bit`s, and how to say so.
    pub fn hooks(&self) -> (u8, &'static str) {
        use Hook::*;
        match self {
            Target::Reject(_) => (
                Input.bit() | Forward.bit() | Output.bit(),
                "REJECT is only valid in INPUT, FORWARD and OUTPUT",
            ),
            Target::Nat(NatAction::Snat(_)) => (
                Postrouting.bit() | Input.bit(),
                "SNAT is only valid in POSTROUTING and INPUT",
            ),
            Target::Nat(NatAction::Dnat(_)) => (
                Prerouting.bit() | Output.bit(),
                "DNAT is only valid in PREROUTING and OUTPUT",
            ),
            Target::Nat(NatAction::Masquerade { .. }) => {
                (Postrouting.bit(), "MASQUERADE is only valid in POSTROUTING")
            }
            Target::Nat(NatAction::Redirect { .. }) => (
                Prerouting.bit() | Output.bit(),
                "REDIRECT is only valid in PREROUTING and OUTPUT",
            ),
            _ => (0x1f, ""),
        }
    }

    /// Edits `meta` for the non-terminating extensions; `tos`/`ttl` are the
    /// packet's, used when no earlier rule changed them.
    #[inline]
    pub fn edit(&self, meta: &mut Meta, ttl: u8, tos: u8) {
        match self {
            Target::Mark { value, mask } => meta.mark = (meta.mark & !mask) ^ value,
            Target::Connmark(Some(op)) => match *op {
                ConnmarkOp::Set { ctmark, ctmask } => {
                    meta.ctmark = (meta.ctmark & !ctmask) ^ ctmark
                }
                ConnmarkOp::Save { nfmask, ctmask } => {
                    meta.ctmark = (meta.ctmark & !ctmask) ^ (meta.mark & nfmask)
                }
                ConnmarkOp::Restore { nfmask, ctmask } => {
                    meta.mark = (meta.mark & !nfmask) ^ (meta.ctmark & ctmask)
                }
            },
            Target::Ttl(Some((op, n))) => {
                let cur = meta.ttl.unwrap_or(ttl);
                meta.ttl = Some(match op {
                    TtlOp::Set => *n,
                    TtlOp::Dec => cur.saturating_sub(*n),
                    TtlOp::Inc => cur.saturating_add(*n),
                });
            }
            Target::Tos(Some((value, mask))) => {
                meta.tos = Some((meta.tos.unwrap_or(tos) & !mask) ^ value)
            }
            Target::Dscp(Some(d)) => meta.tos = Some((meta.tos.unwrap_or(tos) & 0x03) | (d << 2)),
            Target::Notrack | Target::CtNotrack(_) => meta.notrack = true,
            _ => {}
        }
    }

    /// ` -j NAME opts` as iptables-save prints it (nothing for no target).
    pub fn save(&self, out: &mut String) {
        match self {
            Target::None => return,
            Target::Goto(c) => {
                let _ = write!(out, " -g {}", c.name);
                return;
            }
            _ => {
                out.push_str(" -j ");
                out.push_str(self.name());
            }
        }
        match self {
            Target::Reject(w) => {
                let name = REJECT_WITH
                    .iter()
                    .find(|(_, _, x)| x == w)
                    .map_or("", |(n, _, _)| *n);
                let _ = write!(out, " --reject-with {name}");
            }
            Target::Log(l) => {
                if !l.prefix.is_empty() {
                    out.push_str(" --log-prefix");
                    push_quoted(out, &l.prefix);
                }
                if l.level != 4 {
                    let _ = write!(out, " --log-level {}", l.level);
                }
                for (name, bit) in LOG_FLAGS {
                    if l.flags & bit != 0 {
                        out.push(' ');
                        out.push_str(name);
                    }
                }
            }
            Target::Mark { value, mask } => {
                let _ = write!(out, " --set-xmark {value:#x}/{mask:#x}");
            }
            Target::Connmark(Some(op)) => match op {
                ConnmarkOp::Set { ctmark, ctmask } => {
                    let _ = write!(out, " --set-xmark {ctmark:#x}/{ctmask:#x}");
                }
                ConnmarkOp::Save { nfmask, ctmask } => {
                    let _ = write!(
                        out,
                        " --save-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
                    );
                }
                ConnmarkOp::Restore { nfmask, ctmask } => {
                    let _ = write!(
                        out,
                        " --restore-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
                    );
                }
            },
            Target::Ttl(Some((op, n))) => {
                let o = match op {
                    TtlOp::Set => "set",
                    TtlOp::Dec => "dec",
                    TtlOp::Inc => "inc",
                };
                let _ = write!(out, " --ttl-{o} {n}");
            }
            Target::Tos(Some((v, m))) => {
                let _ = write!(out, " --set-tos 0x{v:02x}/0x{m:02x}");
            }
            Target::Dscp(Some(d)) => {
                let _ = write!(out, " --set-dscp 0x{d:02x}");
            }
            Target::CtNotrack(_) => out.push_str(" --notrack"),
            Target::Nat(a) => match a {
                NatAction::Snat(r) | NatAction::Dnat(r) => {
                    out.push_str(if matches!(a, NatAction::Snat(_)) {
                        " --to-source "
                    } else {
                        " --to-destination "
                    });
                    write_nat_range(out, r);
                    for (on, flag) in [
                        (r.random, " --random"),
                        (r.random_fully, " --random-fully"),
                        (r.persistent, " --persistent"),
                    ] {
                        if on {
                            out.push_str(flag);
                        }
                    }
                }
                NatAction::Masquerade {
                    ports,
                    random,
                    random_fully,
                } => {
                    if let Some(p) = ports {
                        out.push_str(" --to-ports ");
                        p.write(out, '-');
                    }
                    if *random {
                        out.push_str(" --random");
                    }
                    if *random_fully {
                        out.push_str(" --random-fully");
                    }
                }
                NatAction::Redirect { ports, random } => {
                    if let Some(p) = ports {
                        out.push_str(" --to-ports ");
                        p.write(out, '-');
                    }
                    if *random {
                        out.push_str(" --random");
                    }
                }
            },
            _ => {}
        }
    }

    /// The `iptables -L` text for the target's options, with a leading space.
    pub fn list(&self, out: &mut String) {
        match self {
            Target::Reject(_) => {
                let mut s = String::new();
                self.save(&mut s);
                out.push_str(&s.replace(" -j REJECT --reject-with", " reject-with"));
            }
            Target::Log(l) => {
                let _ = write!(out, " LOG flags {} level {}", l.flags, l.level);
                if !l.prefix.is_empty() {
                    let _ = write!(out, " prefix \"{}\"", l.prefix);
                }
            }
            Target::Mark { value, mask } => {
                let _ = write!(out, " MARK xset {value:#x}/{mask:#x}");
            }
            Target::Nat(NatAction::Snat(r) | NatAction::Dnat(r)) => {
                out.push_str(" to:");
                write_nat_range(out, r);
                for (on, flag) in [
                    (r.random, " random"),
                    (r.random_fully, " random-fully"),
                    (r.persistent, " persistent"),
                ] {
                    if on {
                        out.push_str(flag);
                    }
                }
            }
            Target::Nat(
                NatAction::Masquerade { ports, .. } | NatAction::Redirect { ports, .. },
            ) => {
                if let Some(p) = ports {
                    let what = if matches!(self, Target::Nat(NatAction::Redirect { .. })) {
                        "redir"
                    } else {
                        "masq"
                    };
                    let _ = write!(out, " {what} ports: ");
                    p.write(out, '-');
                }
            }
            Target::None
            | Target::Accept
            | Target::Drop
            | Target::Return
            | Target::Jump(_)
            | Target::Goto(_)
            | Target::Notrack => {}
            _ => {
                let mut s = String::new();
                self.save(&mut s);
                if let Some(rest) = s.strip_prefix(" -j ") {
                    out.push(' ');
                    out.push_str(&rest.replace(" --", " "));
                }
            }
        }
    }
}
