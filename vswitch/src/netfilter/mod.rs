//! The rule engine: iptables' tables, chains, matches and targets, read from
//! iptables-restore text and evaluated against one packet at a time.
//!
//! It is pure. The switch describes each packet as a [`PacketInfo`] (plain
//! values: addresses, ports, interface indices, conntrack state), calls
//! [`Ruleset::evaluate`] per table and hook, and applies what comes back: the
//! [`Outcome`] and the edits targets made to [`Meta`]. Nothing here reads a
//! clock, touches a socket or knows about frames; `now` is a parameter (the
//! limit match's token buckets run on it).
//!
//! Rules are finalized at load: interface names become index bitmaps, jump
//! targets become chain indices, loops and hook restrictions are refused as
//! iptables refuses them. Evaluation then walks a `Vec` of rules per chain
//! without allocating; only tracing and LOG format strings.
//!
//! IPv4 only: IPv6 is not filtered by this engine (ip6tables text is not
//! read, IPv6 addresses in rules are refused).

mod check;
mod eval;
mod index;
mod layer;
mod lex;
mod log;
mod matches;
mod parse;
mod print;
mod replay;
mod targets;
mod trace;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_docker;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use packet::MacAddr;

pub use crate::config::{ConfigError as RuleError, ConfigErrors as RuleErrors};
pub use replay::Step;
pub use trace::{Both, NoTrace, Trace, TraceLines};
pub use types::PortRange;

use matches::Match;
use targets::Target;

/// The four tables, in the order a packet meets them at a hook.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Table {
    Raw,
    Mangle,
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Raw, Table::Mangle, Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Mangle => "mangle",
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    pub fn from_name(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The built-in chains netfilter gives the table, in hook order.
    pub fn hooks(self) -> &'static [Hook] {
        use Hook::*;
        match self {
            Table::Raw => &[Prerouting, Output],
            Table::Mangle => &[Prerouting, Input, Forward, Output, Postrouting],
            Table::Nat => &[Prerouting, Input, Output, Postrouting],
            Table::Filter => &[Input, Forward, Output],
        }
    }
}

/// Where in the packet's path a table is evaluated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub const ALL: [Hook; 5] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    /// The built-in chain's name.
    pub fn chain_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Interface names the rules may name, resolved once at load so evaluation
/// compares integers. "uplink" is just a port name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interfaces {
    pub ports: Vec<String>,
    pub networks: Vec<String>,
}

/// A packet's interface as indices into [`Interfaces`].
///
/// `-i X` matches when X names the port or its network (Linux matches the
/// bridge device, so `-i docker0` matches any port on network docker0);
/// physdev matches the port name only. A port on no network has
/// `network == Iface::NO_NETWORK`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Iface {
    pub port: u16,
    pub network: u16,
}

impl Iface {
    pub const NO_NETWORK: u16 = u16::MAX;
}

/// Where rule text came from, for error positions: the file and the number
/// of lines before the text inside it (non-zero for `[rules] text = """..."""`
/// inside topo.toml).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line_offset: usize,
}

impl Origin {
    pub fn new(path: impl Into<PathBuf>) -> Origin {
        Origin {
            path: path.into(),
            line_offset: 0,
        }
    }

    pub fn with_line_offset(path: impl Into<PathBuf>, line_offset: usize) -> Origin {
        Origin {
            path: path.into(),
            line_offset,
        }
    }
}

/// Transport fields; ports are absent on non-first fragments.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L4Info {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        kind: u8,
        code: u8,
    },
    #[default]
    Other,
}

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// Address types as `-m addrtype` names them (the kernel's RTN_* bits).
/// The switch sets LOCAL (its own addresses), UNICAST, BROADCAST, MULTICAST.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AddrType(pub u16);

impl AddrType {
    pub const UNSPEC: AddrType = AddrType(1 << 0);
    pub const UNICAST: AddrType = AddrType(1 << 1);
    pub const LOCAL: AddrType = AddrType(1 << 2);
    pub const BROADCAST: AddrType = AddrType(1 << 3);
    pub const ANYCAST: AddrType = AddrType(1 << 4);
    pub const MULTICAST: AddrType = AddrType(1 << 5);
    pub const BLACKHOLE: AddrType = AddrType(1 << 6);
    pub const UNREACHABLE: AddrType = AddrType(1 << 7);
    pub const PROHIBIT: AddrType = AddrType(1 << 8);
    pub const THROW: AddrType = AddrType(1 << 9);
    pub const NAT: AddrType = AddrType(1 << 10);
    pub const XRESOLVE: AddrType = AddrType(1 << 11);

    pub const fn union(self, other: AddrType) -> AddrType {
        AddrType(self.0 | other.0)
    }
}

/// Conntrack's view of the packet, as `-m conntrack` and `-m state` see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum CtState {
    #[default]
    New,
    Established,
    Related,
    Invalid,
    Untracked,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum CtDir {
    #[default]
    Original,
    Reply,
}

/// The packet's connection. For Invalid and Untracked packets only `state`
/// is meaningful (as in the kernel, other conntrack criteria then fail).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CtInfo {
    pub state: CtState,
    /// `CtInfo::EXPECTED | SEEN_REPLY | ASSURED | CONFIRMED` bits.
    pub status: u8,
    /// `CtInfo::SNAT | DNAT` bits: the connection is NATed that way.
    pub nat: u8,
    pub dir: CtDir,
    pub orig_src: Ipv4Addr,
    pub orig_dst: Ipv4Addr,
    pub orig_sport: u16,
    pub orig_dport: u16,
    pub reply_src: Ipv4Addr,
    pub reply_dst: Ipv4Addr,
    pub reply_sport: u16,
    pub reply_dport: u16,
}

impl CtInfo {
    pub const EXPECTED: u8 = 1;
    pub const SEEN_REPLY: u8 = 2;
    pub const ASSURED: u8 = 4;
    pub const CONFIRMED: u8 = 8;
    pub const SNAT: u8 = 1;
    pub const DNAT: u8 = 2;
}

impl Default for CtInfo {
    fn default() -> CtInfo {
        CtInfo {
            state: CtState::Untracked,
            status: 0,
            nat: 0,
            dir: CtDir::Original,
            orig_src: Ipv4Addr::UNSPECIFIED,
            orig_dst: Ipv4Addr::UNSPECIFIED,
            orig_sport: 0,
            orig_dport: 0,
            reply_src: Ipv4Addr::UNSPECIFIED,
            reply_dst: Ipv4Addr::UNSPECIFIED,
            reply_sport: 0,
            reply_dport: 0,
        }
    }
}

/// One IPv4 packet as the rules see it; built by the switch per packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PacketInfo {
    pub iif: Option<Iface>,
    pub oif: Option<Iface>,
    /// Bridged rather than routed, for `--physdev-is-bridged`.
    pub bridged: bool,
    pub src_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    /// IP total length; what byte counters add.
    pub len: u16,
    /// A non-first fragment: carries no ports.
    pub fragment: bool,
    pub l4: L4Info,
    pub src_type: AddrType,
    pub dst_type: AddrType,
    pub ct: CtInfo,
}

impl Default for PacketInfo {
    fn default() -> PacketInfo {
        PacketInfo {
            iif: None,
            oif: None,
            bridged: false,
            src_mac: MacAddr::ZERO,
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            protocol: 0,
            ttl: 64,
            tos: 0,
            len: 0,
            fragment: false,
            l4: L4Info::Other,
            src_type: AddrType::UNICAST,
            dst_type: AddrType::UNICAST,
            ct: CtInfo::default(),
        }
    }
}

/// What targets change, for the switch to apply to the frame and the
/// conntrack entry. Matches read `mark`, `ctmark`, `ttl` and `tos` as earlier
/// rules left them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Meta {
    pub mark: u32,
    pub ctmark: u32,
    /// New TTL to write, if a TTL target ran.
    pub ttl: Option<u8>,
    /// New TOS byte to write, if a TOS or DSCP target ran.
    pub tos: Option<u8>,
    pub notrack: bool,
}

/// The verdict of one table at one hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Accept,
    Drop,
    Reject(RejectWith),
    /// A nat table's terminal verdict: bind the connection this way.
    Nat(NatAction),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RejectWith {
    NetUnreachable,
    HostUnreachable,
    PortUnreachable,
    ProtoUnreachable,
    NetProhibited,
    HostProhibited,
    AdminProhibited,
    TcpReset,
}

/// An address range and optional port range for SNAT/DNAT.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NatRange {
    pub addr_lo: Ipv4Addr,
    pub addr_hi: Ipv4Addr,
    pub ports: Option<PortRange>,
    pub random: bool,
    pub random_fully: bool,
    pub persistent: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NatAction {
    Snat(NatRange),
    Dnat(NatRange),
    Masquerade {
        ports: Option<PortRange>,
        random: bool,
        random_fully: bool,
    },
    Redirect {
        ports: Option<PortRange>,
        random: bool,
    },
}

/// Packet and byte counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

impl Counters {
    fn add(&mut self, len: u16) {
        self.packets += 1;
        self.bytes += u64::from(len);
    }
}

/// A built-in chain's policy; user chains have none.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// Where a rule came from, for errors found after parsing (loops, hook
/// restrictions, layering): the place of its target.
#[derive(Clone, Debug)]
pub(crate) struct Pos {
    pub origin: Arc<Origin>,
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub(crate) fn error(&self, message: impl Into<String>) -> RuleError {
        RuleError {
            path: self.origin.path.clone(),
            line: self.origin.line_offset + self.line,
            col: self.col,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub matches: Vec<Match>,
    pub target: Target,
    pub counters: Counters,
    pub pos: Pos,
}

/// Rules compare by what they do and count, not where they were written.
impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.matches == other.matches
            && self.target == other.target
            && self.counters == other.counters
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub name: String,
    /// Some for built-in chains.
    pub hook: Option<Hook>,
    pub policy: Option<Policy>,
    /// The policy's counters for built-ins.
    pub counters: Counters,
    /// Named by a `:CHAIN` line of the text (layering takes the policy of
    /// the text that declared a built-in chain).
    pub declared: bool,
    pub rules: Vec<Rule>,
    /// Built when the table is finalized, for long chains.
    pub index: Option<index::RuleIndex>,
}

impl PartialEq for Chain {
    fn eq(&self, other: &Chain) -> bool {
        self.name == other.name
            && self.policy == other.policy
            && self.counters == other.counters
            && self.rules == other.rules
    }
}

impl Chain {
    fn builtin(hook: Hook) -> Chain {
        Chain {
            name: hook.chain_name().to_string(),
            hook: Some(hook),
            policy: Some(Policy::Accept),
            counters: Counters::default(),
            declared: false,
            rules: Vec::new(),
            index: None,
        }
    }

    pub(crate) fn user(name: &str) -> Chain {
        Chain {
            name: name.to_string(),
            hook: None,
            policy: None,
            counters: Counters::default(),
            declared: true,
            rules: Vec::new(),
            index: None,
        }
    }
}

/// One table: built-in chains in hook order, then user chains sorted by
/// name (the order iptables-save prints).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableRules {
    /// Given in the text; `save(None)` prints only present tables.
    pub present: bool,
    pub chains: Vec<Chain>,
}

impl TableRules {
    pub(crate) fn new(table: Table) -> TableRules {
        TableRules {
            present: false,
            chains: table.hooks().iter().map(|&h| Chain::builtin(h)).collect(),
        }
    }

    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.chains.iter().position(|c| c.name == name)
    }

    /// Adds a user chain at its sorted place; jump indices are resolved
    /// after all edits, so shifting them here is harmless.
    pub(crate) fn add_user(&mut self, chain: Chain) {
        let at = self
            .chains
            .iter()
            .position(|c| c.hook.is_none() && c.name.as_str() > chain.name.as_str())
            .unwrap_or(self.chains.len());
        self.chains.insert(at, chain);
    }

    fn builtin(&self, hook: Hook) -> Option<usize> {
        self.chains.iter().position(|c| c.hook == Some(hook))
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Every table's chains and rules, finalized for evaluation.
#[derive(Clone, Debug)]
pub struct Ruleset {
    tables: [TableRules; 4],
    /// Port names, for LOG lines.
    ports: Arc<[String]>,
    generation: u64,
}

/// Rulesets compare by content: chains, rules and counters, not generation
/// or source positions.
impl PartialEq for Ruleset {
    fn eq(&self, other: &Ruleset) -> bool {
        self.tables == other.tables
    }
}

impl Default for Ruleset {
    fn default() -> Ruleset {
        Ruleset::empty(&Interfaces::default())
    }
}

impl Ruleset {
    /// No rules anywhere: every hook accepts.
    pub fn empty(ifaces: &Interfaces) -> Ruleset {
        Ruleset {
            tables: Table::ALL.map(TableRules::new),
            ports: ifaces.ports.clone().into(),
            generation: next_generation(),
        }
    }

    /// Reads iptables-restore text. Every problem is reported, each as
    /// `file:line:col: message`.
    pub fn parse(text: &str, origin: &Origin, ifaces: &Interfaces) -> Result<Ruleset, RuleErrors> {
        parse::parse(text, origin, ifaces)
    }

    /// The switch's generated rules combined with the user's: a built-in
    /// chain the user's text declared is the user's alone (policy and
    /// rules); in every other chain both define, the user's rules come
    /// first. Both must have been parsed with the same [`Interfaces`].
    pub fn layered(generated: Ruleset, user: Ruleset) -> Result<Ruleset, RuleErrors> {
        layer::layered(generated, user)
    }

    /// Changes with every load (unique across instances), never with
    /// counters: the switch compares it to invalidate cached verdicts.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn zero_counters(&mut self) {
        for t in &mut self.tables {
            for c in &mut t.chains {
                c.counters = Counters::default();
                for r in &mut c.rules {
                    r.counters = Counters::default();
                }
            }
        }
    }

    /// True when the table's chain at `hook` has no rules and accepts: the
    /// switch may skip evaluating it.
    pub fn is_empty(&self, table: Table, hook: Hook) -> bool {
        let t = &self.tables[table as usize];
        t.builtin(hook).is_none_or(|i| {
            let c = &t.chains[i];
            c.rules.is_empty() && c.policy == Some(Policy::Accept)
        })
    }

    /// A chain's policy counters (zero for user chains).
    pub fn chain_counters(&self, table: Table, chain: &str) -> Option<Counters> {
        let t = &self.tables[table as usize];
        t.find(chain).map(|i| t.chains[i].counters)
    }

    /// A rule's counters; `index` is 1-based as in `iptables -L --line-numbers`.
    pub fn rule_counters(&self, table: Table, chain: &str, index: usize) -> Option<Counters> {
        let t = &self.tables[table as usize];
        let c = &t.chains[t.find(chain)?];
        c.rules.get(index.checked_sub(1)?).map(|r| r.counters)
    }

    fn table(&self, table: Table) -> &TableRules {
        &self.tables[table as usize]
    }
}
