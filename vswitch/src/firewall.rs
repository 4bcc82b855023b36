//! Netfilter's part of the pipeline: the hooks in the order a Linux host
//! with `bridge-nf-call-iptables=1` runs them, connection tracking between
//! raw and mangle, and the flow cache that lets established traffic skip
//! the rule tables.
//!
//! The switch calls `prerouting` once per IPv4 packet, then `input` when the
//! packet is for the switch itself or `forward` once per egress port, then
//! `finish_nat` and `finish`, which bind a source translation and confirm
//! the connection the packet started, or forget it. Packets the switch
//! sends itself go through `local_out`.
//!
//! NAT: the first packet of a connection is bound by the nat table as in
//! Linux, DNAT in PREROUTING and SNAT in POSTROUTING, each rewriting it.
//! Later packets of a bound connection are rewritten whole in PREROUTING,
//! so FORWARD sees an SNATed connection's later packets already translated
//! (Linux translates their source in POSTROUTING).
//!
//! IPv4 only: ARP and IPv6 pass untouched, as they would on a host whose
//! rules are all iptables. Fragments are not reassembled; a non-first
//! fragment carries no ports and is evaluated UNTRACKED.

use std::net::Ipv4Addr;
use std::time::Duration;

use conntrack::{ConfirmError, Conntrack, CtL4, CtPacket, Dir, Entry, EntryId, Status, Track};
use packet::icmpv4::msg;
use packet::ipv4::protocol;
use packet::{FlowKey, Parsed, L3, L4};

use nat::{Kind, NatRng, Translation};

use crate::config::{Config, ConfigErrors, Driver, RulesSource};
use crate::flow_cache::{FlowCache, Lookup, Recorder};
use crate::netfilter::{
    AddrType, Both, CtDir, CtInfo, CtState, Hook, Iface, Interfaces, L4Info, Meta, NatAction,
    NatRange, NoTrace, Origin, Outcome, PacketInfo, PortRange, RejectWith, Ruleset, Table,
    TraceLines,
};
use crate::stats::DropReason;
use crate::time::Timestamp;
use crate::topology_rules;

/// Why the hooks stopped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Drop(DropReason),
    /// Dropped, and the sender is to be answered.
    Reject(RejectWith),
    /// Larger than the egress port's `mtu`: dropped, and a sender that set
    /// DF is told the MTU (ICMP fragmentation needed), as a router would.
    TooBig {
        mtu: u16,
    },
}

/// What `prerouting` is told beside the packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prerouted {
    /// The transport checksum holds only the pseudo header's sum.
    pub partial_csum: bool,
    /// Conntrack's answer, when it has already seen the packet
    /// (`established` gave up after tracking it).
    pub tracked: Option<Track>,
}

/// A packet between hooks: what the rules see of it, what targets changed,
/// and its connection.
pub struct Pass {
    pub info: PacketInfo,
    pub meta: Meta,
    conn: Option<(EntryId, Dir)>,
    /// The packet created its entry, still tentative until `finish`.
    creates: bool,
    /// Established: a cached path may replace evaluation.
    cacheable: bool,
    /// The frame as NAT rewrote it: whatever was parsed before is stale.
    pub reparsed: Option<Parsed>,
    /// The transport checksum holds only the pseudo header's sum (an
    /// offloaded frame): NAT patches it differently.
    partial_csum: bool,
    /// A translation the nat table chose, bound once the packet's way out
    /// is known.
    pending: Option<Translation>,
}

impl Pass {
    fn new(info: PacketInfo) -> Pass {
        Pass {
            info,
            meta: Meta::default(),
            conn: None,
            creates: false,
            cacheable: false,
            reparsed: None,
            partial_csum: false,
            pending: None,
        }
    }
}

#[derive(Clone)]
pub struct Firewall {
    rules: Ruleset,
    /// On while a packet is traced: every step, rule by rule.
    journal: Option<TraceLines>,
    conns: Conntrack<FlowCache>,
    /// The switch's own addresses (`--dst-type LOCAL`).
    locals: Vec<Ipv4Addr>,
    /// Each network's directed broadcast address.
    broadcasts: Vec<Ipv4Addr>,
    /// The switch's own address on each network (by index, the uplink
    /// last): what MASQUERADE and REDIRECT translate to.
    own: Vec<Ipv4Addr>,
    nat_rng: NatRng,
    /// The rule path the packet in FORWARD and POSTROUTING meets, for the
    /// flow cache; one for every packet, so that its buffers are reused.
    recorder: Recorder,
}

/// Seeds NAT's random port choices unless the caller reseeds.
const NAT_SEED: u64 = 0x7653_7769_7463_6821;

/// The names rules may use for `-i`/`-o`: ports (configured ones, then
/// macvlan/ipvlan parents), then networks, each with `uplink` last when
/// there is one.
pub fn interfaces(config: &Config) -> Interfaces {
    let uplink = config
        .uplink
        .iter()
        .map(|_| topology_rules::UPLINK.to_owned());
    Interfaces {
        ports: config
            .ports
            .iter()
            .map(|p| p.name.clone())
            .chain(config.networks.iter().filter_map(|n| n.parent.clone()))
            .chain(uplink.clone())
            .collect(),
        networks: config
            .networks
            .iter()
            .map(|n| n.name.clone())
            .chain(uplink)
            .collect(),
    }
}

/// The generated rules with the user's `[rules]` over them; errors name
/// topo.toml (or the rules file) and the line.
pub fn load_rules(config: &Config) -> Result<Ruleset, ConfigErrors> {
    let ifaces = interfaces(config);
    let generated = Ruleset::parse(
        &topology_rules::text(config),
        &Origin::new(topology_rules::ORIGIN),
        &ifaces,
    )?;
    let Some(source) = &config.rules else {
        return Ok(generated);
    };
    let origin = match source {
        RulesSource::Text { line, .. } => {
            Origin::with_line_offset(&config.source.path, line.saturating_sub(1))
        }
        RulesSource::File { path, .. } => Origin::new(path),
    };
    let user = Ruleset::parse(source.text(), &origin, &ifaces)?;
    Ruleset::layered(generated, user)
}

impl Firewall {
    pub fn new(config: &Config, rules: Ruleset) -> Firewall {
        let bridges = config
            .networks
            .iter()
            .filter(|n| n.driver == Driver::Bridge);
        let uplink = config.uplink.as_ref();
        Firewall {
            rules,
            journal: None,
            conns: Conntrack::new(conntrack::Config {
                max_entries: config.switch.conntrack_max,
                ..conntrack::Config::default()
            }),
            locals: bridges
                .clone()
                .map(|n| n.gateway)
                .chain(uplink.map(|u| u.ip))
                .collect(),
            broadcasts: bridges
                .map(|n| n.subnet.broadcast())
                .chain(uplink.map(|u| u.subnet.broadcast()))
                .collect(),
            own: config
                .networks
                .iter()
                .map(|n| n.gateway)
                .chain(uplink.map(|u| u.ip))
                .collect(),
            nat_rng: NatRng::new(NAT_SEED),
            recorder: Recorder::default(),
        }
    }

    pub fn rules(&self) -> &Ruleset {
        &self.rules
    }

    pub fn rules_mut(&mut self) -> &mut Ruleset {
        &mut self.rules
    }

    /// Replaces the ruleset; its new generation retires every cached path.
    pub fn set_rules(&mut self, rules: Ruleset) {
        self.rules = rules;
    }

    /// Takes `old`'s connections and NAT port choices (a reload); `old`
    /// is left with this firewall's empty table.
    pub fn take_connections(&mut self, old: &mut Firewall) {
        std::mem::swap(&mut self.conns, &mut old.conns);
        std::mem::swap(&mut self.nat_rng, &mut old.nat_rng);
    }

    pub fn conntrack(&self) -> &Conntrack<FlowCache> {
        &self.conns
    }

    pub fn conntrack_mut(&mut self) -> &mut Conntrack<FlowCache> {
        &mut self.conns
    }

    /// Seeds the choice of random NAT ports (`--random-fully`); the fixed
    /// default keeps traces and tests repeatable.
    pub fn seed_nat(&mut self, seed: u64) {
        self.nat_rng = NatRng::new(seed);
    }

    /// Starts recording every step of the packets that follow.
    pub fn start_journal(&mut self) {
        self.journal = Some(TraceLines::default());
    }

    /// Stops recording and returns the steps recorded.
    pub fn take_journal(&mut self) -> Vec<String> {
        self.journal.take().map(|j| j.lines).unwrap_or_default()
    }

    /// Adds a step to the journal, when one is being kept.
    pub fn note(&mut self, step: impl FnOnce() -> String) {
        if let Some(j) = &mut self.journal {
            j.lines.push(step());
        }
    }

    pub fn expire(&mut self, now: Timestamp) {
        self.conns.expire(Duration::from_nanos(now.as_nanos()));
    }

    /// For the switch's exact-match cache: the hooks' work on a packet of
    /// the established connection `conn` sent from `iif` to `oif`, when
    /// nothing in them can tell its packets apart: raw and mangle
    /// PREROUTING are empty, nobody is tracing, and the flow's FORWARD and
    /// POSTROUTING path is cached. The packet is tracked, NATed and counted
    /// on the path. `Err(None)`: nothing was done; `Err(Some(track))`:
    /// conntrack took the packet, which must go the full way with that.
    #[allow(clippy::too_many_arguments)]
    pub fn established(
        &mut self,
        now: Timestamp,
        conn: (EntryId, Dir),
        iif: Iface,
        oif: Iface,
        parsed: &Parsed,
        frame: &mut [u8],
        partial_csum: bool,
    ) -> Result<(), Option<Track>> {
        if !self.skips_prerouting() {
            return Err(None);
        }
        let Some(pkt) = ct_packet(parsed, frame) else {
            return Err(None);
        };
        let now = Duration::from_nanos(now.as_nanos());
        let t = self
            .conns
            .track_known(now, conn.0, conn.1, &pkt)
            .ok_or(None)?;
        let generation = self.rules.generation();
        let e = match (t.state, t.id.and_then(|id| self.conns.get(id))) {
            (conntrack::CtState::Established, Some(e)) => e,
            _ => return Err(Some(t)),
        };
        let Lookup::Hit(path) = e.extra.lookup(t.dir, generation, iif, oif) else {
            return Err(Some(t));
        };
        if let Some(Err(_)) = rewrite(e, t.dir, parsed.l3_offset, frame, partial_csum) {
            return Err(Some(t));
        }
        self.rules.replay(path, pkt.len as u16);
        Ok(())
    }

    /// The connection of `pass` and its direction, when the exact-match
    /// cache may remember its flow: it is established, `established` would
    /// take its packets, and its way out was the cached path with no target
    /// changing them.
    pub fn cached_flow(&self, pass: &Pass) -> Option<(EntryId, Dir)> {
        let (Some((id, dir)), Some(iif), Some(oif)) = (pass.conn, pass.info.iif, pass.info.oif)
        else {
            return None;
        };
        if !pass.cacheable {
            return None;
        }
        let unchanged = pass.meta.ttl.is_none() && pass.meta.tos.is_none();
        let e = self.conns.get(id)?;
        let path = e.extra.lookup(dir, self.rules.generation(), iif, oif);
        (unchanged
            && e.mark == pass.meta.ctmark
            && matches!(path, Lookup::Hit(_))
            && self.skips_prerouting())
        .then_some((id, dir))
    }

    /// No PREROUTING rule sees an established packet, and no trace is on.
    fn skips_prerouting(&self) -> bool {
        self.journal.is_none()
            && self.rules.is_empty(Table::Raw, Hook::Prerouting)
            && self.rules.is_empty(Table::Mangle, Hook::Prerouting)
    }

    /// raw PREROUTING, conntrack, mangle PREROUTING, nat PREROUTING for a
    /// packet that came in by `iif`; `bridged` when it is not addressed to
    /// the gateway's MAC. `None` for what the rules do not see (anything
    /// but IPv4).
    ///
    /// A packet of a NATed connection, or one the nat table translates, is
    /// rewritten in place: `Pass::reparsed` replaces the caller's parse.
    pub fn prerouting(
        &mut self,
        now: Timestamp,
        iif: Iface,
        bridged: bool,
        parsed: &Parsed,
        frame: &mut [u8],
        rx: Prerouted,
    ) -> Option<Result<Pass, Refusal>> {
        let info = self.describe(parsed, frame, Some(iif), None, bridged)?;
        let mut pass = Pass::new(info);
        pass.partial_csum = rx.partial_csum;
        let verdict = self
            .hook(now, &mut pass, Table::Raw, Hook::Prerouting)
            .and_then(|()| {
                self.track(now, &mut pass, parsed, frame, rx.tracked);
                if !pass.creates {
                    self.translate(&mut pass, parsed.l3_offset, frame)?;
                }
                self.hook(now, &mut pass, Table::Mangle, Hook::Prerouting)?;
                self.nat_hook(now, &mut pass, Hook::Prerouting)?;
                self.bind_pending(&mut pass, parsed.l3_offset, frame)
            });
        Some(match verdict {
            Ok(()) => Ok(pass),
            Err(refusal) => {
                // Nothing later will finish this packet's tentative entry.
                let _ = self.finish(&pass, false);
                Err(refusal)
            }
        })
    }

    /// mangle and filter INPUT, nat INPUT: the packet is for the switch.
    /// Its connection is confirmed here, as Linux does at the end of INPUT,
    /// so the switch's answer through OUTPUT finds it.
    pub fn input(&mut self, now: Timestamp, pass: &mut Pass) -> Result<(), Refusal> {
        pass.cacheable = false;
        self.hook(now, pass, Table::Mangle, Hook::Input)?;
        self.hook(now, pass, Table::Filter, Hook::Input)?;
        self.nat_hook(now, pass, Hook::Input)?;
        self.finish(pass, true).map_err(Refusal::Drop)?;
        pass.creates = false;
        Ok(())
    }

    /// mangle and filter FORWARD, mangle and nat POSTROUTING, towards `oif`.
    /// An established packet whose path through these chains was cached
    /// for the same ports and ruleset skips them, counters replayed.
    pub fn forward(&mut self, now: Timestamp, pass: &mut Pass, oif: Iface) -> Result<(), Refusal> {
        pass.info.oif = Some(oif);
        let conn = pass.conn.filter(|_| pass.cacheable);
        if let (Some((id, dir)), Some(iif)) = (conn, pass.info.iif) {
            let generation = self.rules.generation();
            if let Some(e) = self.conns.get(id) {
                match e.extra.lookup(dir, generation, iif, oif) {
                    Lookup::Hit(path) => {
                        let steps = path.len();
                        self.rules.replay(path, pass.info.len);
                        self.note(|| {
                            format!("flow cache: established path replayed ({steps} counters), rules skipped")
                        });
                        return Ok(());
                    }
                    Lookup::Miss => self.recorder.start(),
                    Lookup::Uncacheable => {}
                }
            }
        }
        let done = self.forward_hooks(now, pass);
        match done {
            Ok(()) => self.store(pass),
            // A refused packet's path is not its flow's.
            Err(_) => self.recorder.stop(),
        }
        done
    }

    fn forward_hooks(&mut self, now: Timestamp, pass: &mut Pass) -> Result<(), Refusal> {
        self.hook(now, pass, Table::Mangle, Hook::Forward)?;
        self.hook(now, pass, Table::Filter, Hook::Forward)?;
        self.hook(now, pass, Table::Mangle, Hook::Postrouting)?;
        self.nat_hook(now, pass, Hook::Postrouting)
    }

    /// Binds the source translation POSTROUTING chose for the connection
    /// this packet starts, and rewrites the packet; call once its way out
    /// is settled, before `finish`.
    pub fn finish_nat(
        &mut self,
        pass: &mut Pass,
        l3_offset: usize,
        frame: &mut [u8],
    ) -> Result<(), DropReason> {
        self.bind_pending(pass, l3_offset, frame)
            .map_err(|r| match r {
                Refusal::Drop(reason) => reason,
                Refusal::Reject(_) | Refusal::TooBig { .. } => DropReason::NatExhausted,
            })
    }

    /// Confirms the connection the packet started if it was let through,
    /// forgets it otherwise, and keeps the connection mark.
    pub fn finish(&mut self, pass: &Pass, accepted: bool) -> Result<(), DropReason> {
        let Some((id, _)) = pass.conn else {
            return Ok(());
        };
        if !accepted {
            if pass.creates {
                self.conns.abort(id);
            }
            return Ok(());
        }
        if let Some(e) = self.conns.get_mut(id) {
            e.mark = pass.meta.ctmark;
        }
        if !pass.creates {
            return Ok(());
        }
        self.conns.confirm(id).map_err(|e| match e {
            ConfirmError::Full => DropReason::ConntrackFull,
            ConfirmError::Clash | ConfirmError::Gone => DropReason::ConntrackClash,
        })
    }

    /// raw, mangle, nat and filter OUTPUT, then mangle and nat POSTROUTING,
    /// for a frame the switch built and is about to send out of `oif`.
    /// An ICMP error or reset answering a refused packet is not `tracked`:
    /// it belongs to a connection that never was (Linux attaches it to the
    /// refused packet's, which is then dropped).
    pub fn local_out(
        &mut self,
        now: Timestamp,
        oif: Iface,
        frame: &[u8],
        tracked: bool,
    ) -> Result<(), Refusal> {
        let parsed = Parsed::parse(frame).map_err(|_| Refusal::Drop(DropReason::Malformed))?;
        let Some(info) = self.describe(&parsed, frame, None, Some(oif), false) else {
            return Ok(());
        };
        let mut pass = Pass::new(info);
        let verdict = self.output_hooks(now, &mut pass, &parsed, frame, tracked);
        self.finish(&pass, verdict.is_ok()).map_err(Refusal::Drop)?;
        verdict
    }

    fn output_hooks(
        &mut self,
        now: Timestamp,
        pass: &mut Pass,
        parsed: &Parsed,
        frame: &[u8],
        tracked: bool,
    ) -> Result<(), Refusal> {
        self.hook(now, pass, Table::Raw, Hook::Output)?;
        if tracked {
            self.track(now, pass, parsed, frame, None);
        } else {
            self.note(|| "conntrack: UNTRACKED (the switch's answer to a refused packet)".into());
        }
        pass.cacheable = false;
        self.hook(now, pass, Table::Mangle, Hook::Output)?;
        self.nat_hook(now, pass, Hook::Output)?;
        self.hook(now, pass, Table::Filter, Hook::Output)?;
        self.hook(now, pass, Table::Mangle, Hook::Postrouting)?;
        self.nat_hook(now, pass, Hook::Postrouting)
    }

    /// One table at one hook; `Err` ends the packet's way through the hooks.
    fn hook(
        &mut self,
        now: Timestamp,
        pass: &mut Pass,
        table: Table,
        hook: Hook,
    ) -> Result<(), Refusal> {
        if self.rules.is_empty(table, hook) {
            return Ok(());
        }
        let (info, meta) = (&pass.info, &mut pass.meta);
        let outcome = match (&mut self.journal, self.recorder.is_on()) {
            (None, false) => self
                .rules
                .evaluate(table, hook, info, meta, now, &mut NoTrace),
            (None, true) => self
                .rules
                .evaluate(table, hook, info, meta, now, &mut self.recorder),
            (Some(j), false) => self.rules.evaluate(table, hook, info, meta, now, j),
            (Some(j), true) => {
                let mut both = Both(&mut self.recorder, j);
                self.rules.evaluate(table, hook, info, meta, now, &mut both)
            }
        };
        match outcome {
            Outcome::Accept => Ok(()),
            Outcome::Drop => Err(Refusal::Drop(DropReason::Filtered)),
            Outcome::Reject(with) => Err(Refusal::Reject(with)),
            Outcome::Nat(action) => self.choose_nat(pass, hook, action),
        }
    }

    /// Keeps what a nat rule chose as the translation to bind: DNAT and
    /// REDIRECT bind in PREROUTING, SNAT and MASQUERADE once the egress is
    /// known. MASQUERADE takes the switch's address on the egress network,
    /// REDIRECT the one on the ingress network.
    fn choose_nat(
        &mut self,
        pass: &mut Pass,
        hook: Hook,
        action: NatAction,
    ) -> Result<(), Refusal> {
        let own = |iface: Option<Iface>| {
            iface.and_then(|i| self.own.get(usize::from(i.network)).copied())
        };
        let range = |r: &NatRange| Translation {
            kind: Kind::Snat,
            addr_lo: r.addr_lo,
            addr_hi: r.addr_hi,
            ports: r.ports.map(|p| (p.lo, p.hi)),
            random: r.random,
            random_fully: r.random_fully,
            persistent: r.persistent,
        };
        let ports = |p: Option<PortRange>| p.map(|p| (p.lo, p.hi));
        let t = match action {
            NatAction::Snat(r) => range(&r),
            NatAction::Dnat(r) => Translation {
                kind: Kind::Dnat,
                ..range(&r)
            },
            NatAction::Masquerade {
                ports: p,
                random,
                random_fully,
            } => match own(pass.info.oif) {
                Some(addr) => Translation::masquerade(addr, ports(p), random, random_fully),
                None => return Err(Refusal::Drop(DropReason::NatUnsupported)),
            },
            NatAction::Redirect { ports: p, random } => match own(pass.info.iif) {
                Some(addr) => Translation::redirect(addr, ports(p), random),
                None => return Err(Refusal::Drop(DropReason::NatUnsupported)),
            },
        };
        if hook == Hook::Output {
            // The switch's own packets are answers; nothing of theirs is
            // translated by a new binding.
            return Err(Refusal::Drop(DropReason::NatUnsupported));
        }
        pass.pending = Some(t);
        Ok(())
    }

    /// Binds a pending translation to the packet's new connection and
    /// rewrites the packet.
    fn bind_pending(
        &mut self,
        pass: &mut Pass,
        l3_offset: usize,
        frame: &mut [u8],
    ) -> Result<(), Refusal> {
        let Some(t) = pass.pending.take() else {
            return Ok(());
        };
        let Some((id, _)) = pass.conn.filter(|_| pass.creates) else {
            return Err(Refusal::Drop(DropReason::NatUnsupported));
        };
        let before = self.conns.get(id).map(|e| *e.tuple(Dir::Original));
        match nat::bind(&mut self.conns, id, &t, &mut self.nat_rng) {
            Ok(b) => self.note(|| {
                let kind = match t.kind {
                    Kind::Snat => "SNAT",
                    Kind::Dnat => "DNAT",
                };
                let was = before.map(|t| flow(&t)).unwrap_or_default();
                format!("nat: {kind} bound: {was} becomes {}", flow(&b.translated))
            }),
            Err(e) => {
                self.note(|| format!("nat: binding failed: {e}"));
                return Err(Refusal::Drop(DropReason::NatExhausted));
            }
        }
        self.translate(pass, l3_offset, frame)
    }

    /// Rewrites a packet of a NATed connection as its binding says, and
    /// describes it afresh for the rules after.
    fn translate(
        &mut self,
        pass: &mut Pass,
        l3_offset: usize,
        frame: &mut [u8],
    ) -> Result<(), Refusal> {
        let Some((id, dir)) = pass.conn else {
            return Ok(());
        };
        let Some(e) = self.conns.get(id) else {
            return Ok(());
        };
        match rewrite(e, dir, l3_offset, frame, pass.partial_csum) {
            None => return Ok(()),
            Some(Ok(())) => {}
            Some(Err(err)) => {
                self.note(|| format!("nat: rewrite failed: {err}"));
                return Err(Refusal::Drop(DropReason::Malformed));
            }
        }
        let Ok(parsed) = Parsed::parse(frame) else {
            return Err(Refusal::Drop(DropReason::Malformed));
        };
        let ct = pass.info.ct;
        if let Some(info) = self.describe(
            &parsed,
            frame,
            pass.info.iif,
            pass.info.oif,
            pass.info.bridged,
        ) {
            pass.info = PacketInfo { ct, ..info };
        }
        pass.reparsed = Some(parsed);
        self.note(|| {
            format!(
                "nat: rewritten to {}",
                crate::flowspec::describe(&parsed, frame.len())
            )
        });
        Ok(())
    }

    /// The nat table sees only the first packet of a connection.
    fn nat_hook(&mut self, now: Timestamp, pass: &mut Pass, hook: Hook) -> Result<(), Refusal> {
        if pass.info.ct.state != CtState::New {
            return Ok(());
        }
        self.hook(now, pass, Table::Nat, hook)
    }

    /// Looks the packet up in the connection table (or starts an entry) and
    /// fills in what `-m conntrack` matches on.
    fn track(
        &mut self,
        now: Timestamp,
        pass: &mut Pass,
        parsed: &Parsed,
        frame: &[u8],
        tracked: Option<Track>,
    ) {
        if pass.meta.notrack {
            pass.info.ct = CtInfo::default();
            self.note(|| "conntrack: UNTRACKED (raw table NOTRACK)".into());
            return;
        }
        let Some(pkt) = ct_packet(parsed, frame) else {
            pass.info.ct = CtInfo {
                state: CtState::Untracked,
                ..CtInfo::default()
            };
            self.note(|| "conntrack: UNTRACKED (no ports to key it: a fragment or an ICMP message conntrack does not follow)".into());
            return;
        };
        let t = match tracked {
            Some(t) => t,
            None => self.conns.track(Duration::from_nanos(now.as_nanos()), &pkt),
        };
        let state = match t.state {
            conntrack::CtState::New => CtState::New,
            conntrack::CtState::Established => CtState::Established,
            conntrack::CtState::Related => CtState::Related,
            conntrack::CtState::Invalid => CtState::Invalid,
            conntrack::CtState::Untracked => CtState::Untracked,
        };
        let Some(id) = t.id else {
            pass.info.ct = CtInfo {
                state,
                ..CtInfo::default()
            };
            let known = self.journal.is_some() && self.conns.lookup(&pkt.tuple).is_some();
            self.note(|| match known {
                true => format!(
                    "conntrack: {} (outside the tracked connection's window or state)",
                    state_name(state)
                ),
                false => format!("conntrack: {} (no connection)", state_name(state)),
            });
            return;
        };
        let Some(e) = self.conns.get(id) else {
            return;
        };
        let (orig, reply) = (e.tuple(Dir::Original), e.tuple(Dir::Reply));
        let mut status = 0;
        for (bit, ours) in [
            (Status::SEEN_REPLY, CtInfo::SEEN_REPLY),
            (Status::ASSURED, CtInfo::ASSURED),
            (Status::CONFIRMED, CtInfo::CONFIRMED),
        ] {
            if e.status.contains(bit) {
                status |= ours;
            }
        }
        let mut nat = 0;
        if e.status.contains(Status::SRC_NAT) {
            nat |= CtInfo::SNAT;
        }
        if e.status.contains(Status::DST_NAT) {
            nat |= CtInfo::DNAT;
        }
        pass.info.ct = CtInfo {
            state,
            status,
            nat,
            dir: match t.dir {
                Dir::Original => CtDir::Original,
                Dir::Reply => CtDir::Reply,
            },
            orig_src: v4(orig.src),
            orig_dst: v4(orig.dst),
            orig_sport: orig.src_port,
            orig_dport: orig.dst_port,
            reply_src: v4(reply.src),
            reply_dst: v4(reply.dst),
            reply_sport: reply.src_port,
            reply_dport: reply.dst_port,
        };
        pass.meta.ctmark = e.mark;
        pass.creates = !e.is_confirmed() && state == CtState::New;
        let (dir, created) = (t.dir, pass.creates);
        self.note(|| {
            let how = match (created, dir) {
                (true, _) => "a new entry",
                (false, Dir::Original) => "original direction",
                (false, Dir::Reply) => "reply direction",
            };
            format!("conntrack: {} ({how})", state_name(state))
        });
        pass.cacheable = state == CtState::Established;
        pass.conn = Some((id, t.dir));
    }

    /// Keeps the path the packet just recorded for its flow's direction.
    fn store(&mut self, pass: &mut Pass) {
        if !self.recorder.is_on() {
            return;
        }
        let path = self.recorder.finish(&self.rules);
        let (Some((id, dir)), Some(iif), Some(oif)) = (pass.conn, pass.info.iif, pass.info.oif)
        else {
            return;
        };
        let generation = self.rules.generation();
        if let Some(e) = self.conns.get_mut(id) {
            e.extra.put(dir, generation, iif, oif, path);
        }
    }

    /// What the rules see of an IPv4 packet.
    fn describe(
        &self,
        parsed: &Parsed,
        frame: &[u8],
        iif: Option<Iface>,
        oif: Option<Iface>,
        bridged: bool,
    ) -> Option<PacketInfo> {
        let L3::Ipv4 {
            src,
            dst,
            protocol: proto,
            ttl,
            total_len,
            first_fragment,
            ..
        } = parsed.l3
        else {
            return None;
        };
        let tos = frame.get(parsed.l3_offset + 1).copied().unwrap_or(0);
        let l4 = match parsed.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                ..
            } => L4Info::Tcp {
                sport: src_port,
                dport: dst_port,
                flags: flags.bits(),
            },
            L4::Udp { src_port, dst_port } => L4Info::Udp {
                sport: src_port,
                dport: dst_port,
            },
            L4::Icmp { msg_type, code, .. } => L4Info::Icmp {
                kind: msg_type,
                code,
            },
            _ => L4Info::Other,
        };
        Some(PacketInfo {
            iif,
            oif,
            bridged,
            src_mac: parsed.src,
            src,
            dst,
            protocol: proto,
            ttl,
            tos,
            len: u16::try_from(total_len).unwrap_or(u16::MAX),
            fragment: !first_fragment,
            l4,
            src_type: self.addr_type(src),
            dst_type: self.addr_type(dst),
            ct: CtInfo::default(),
        })
    }

    fn addr_type(&self, ip: Ipv4Addr) -> AddrType {
        if self.locals.contains(&ip) {
            AddrType::LOCAL
        } else if ip.is_broadcast() || self.broadcasts.contains(&ip) {
            AddrType::BROADCAST
        } else if ip.is_multicast() {
            AddrType::MULTICAST
        } else {
            AddrType::UNICAST
        }
    }
}

/// As `-m conntrack --ctstate` spells it.
fn state_name(state: CtState) -> &'static str {
    match state {
        CtState::New => "NEW",
        CtState::Established => "ESTABLISHED",
        CtState::Related => "RELATED",
        CtState::Invalid => "INVALID",
        CtState::Untracked => "UNTRACKED",
    }
}

/// `10.0.0.2:40000 > 192.0.2.1:80` (ports left out for ICMP).
fn flow(t: &FlowKey) -> String {
    match t.protocol {
        protocol::TCP | protocol::UDP => {
            format!("{}:{} > {}:{}", t.src, t.src_port, t.dst, t.dst_port)
        }
        _ => format!("{} > {}", t.src, t.dst),
    }
}

fn v4(ip: std::net::IpAddr) -> Ipv4Addr {
    match ip {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Rewrites a packet of `e`'s connection, travelling in `dir`, as its NAT
/// binding says; `None` when the connection is not translated.
fn rewrite(
    e: &Entry<FlowCache>,
    dir: Dir,
    l3_offset: usize,
    frame: &mut [u8],
    partial_csum: bool,
) -> Option<Result<(), nat::NatError>> {
    if !e.status.contains(Status::SRC_NAT) && !e.status.contains(Status::DST_NAT) {
        return None;
    }
    Some(nat::rewrite(
        frame,
        l3_offset,
        e.tuples(),
        dir,
        partial_csum,
    ))
}

/// What conntrack needs of a packet; `None` for what it cannot key (a
/// non-first fragment, an ICMP message that is neither echo nor error).
// Inlined, so the packet is built where it is read: a copy of its
// unaligned tuple cost a store-forwarding stall per frame.
#[inline(always)]
fn ct_packet(parsed: &Parsed, frame: &[u8]) -> Option<CtPacket> {
    let L3::Ipv4 { total_len, .. } = parsed.l3 else {
        return None;
    };
    let len = total_len as u32;
    let (tuple, l4) = match parsed.l4 {
        L4::Tcp {
            flags,
            seq,
            ack,
            window,
            payload_len,
            ..
        } => (
            parsed.flow_key()?,
            CtL4::Tcp {
                flags: flags.bits(),
                seq,
                ack,
                window,
                wscale: window_scale(frame, parsed.l4_offset),
                payload_len: payload_len as u32,
            },
        ),
        L4::Udp { .. } => (parsed.flow_key()?, CtL4::Udp),
        L4::Icmp { msg_type, .. } => match msg_type {
            msg::ECHO_REQUEST | msg::ECHO_REPLY => (
                parsed.flow_key()?,
                CtL4::IcmpEcho {
                    request: msg_type == msg::ECHO_REQUEST,
                },
            ),
            msg::DST_UNREACHABLE | msg::TIME_EXCEEDED | msg::PARAM_PROBLEM => {
                let L3::Ipv4 { src, dst, .. } = parsed.l3 else {
                    return None;
                };
                let inner = quoted_tuple(frame.get(parsed.l4_offset + 8..)?)?;
                let outer = FlowKey {
                    src: src.into(),
                    dst: dst.into(),
                    protocol: protocol::ICMP,
                    src_port: 0,
                    dst_port: 0,
                };
                (outer, CtL4::IcmpError { inner })
            }
            _ => return None,
        },
        L4::None
            if !matches!(
                parsed.l3,
                L3::Ipv4 {
                    first_fragment: false,
                    ..
                }
            ) =>
        {
            let L3::Ipv4 {
                src, dst, protocol, ..
            } = parsed.l3
            else {
                return None;
            };
            let key = FlowKey {
                src: src.into(),
                dst: dst.into(),
                protocol,
                src_port: 0,
                dst_port: 0,
            };
            (key, CtL4::Other)
        }
        _ => return None,
    };
    Some(CtPacket { tuple, len, l4 })
}

/// The tuple of the IPv4 packet an ICMP error quotes: its header and at
/// least the first eight bytes after it.
fn quoted_tuple(q: &[u8]) -> Option<FlowKey> {
    let ihl = usize::from(q.first()? & 0x0f) * 4;
    if q.first()? >> 4 != 4 || ihl < 20 {
        return None;
    }
    let proto = *q.get(9)?;
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = q.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let l4 = q.get(ihl..ihl + 8)?;
    let word = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    let (src_port, dst_port) = match proto {
        protocol::TCP | protocol::UDP => (word(0), word(2)),
        protocol::ICMP if l4[0] == msg::ECHO_REQUEST || l4[0] == msg::ECHO_REPLY => (word(4), 0),
        protocol::ICMP => return None,
        _ => (0, 0),
    };
    Some(FlowKey {
        src: addr(12)?.into(),
        dst: addr(16)?.into(),
        protocol: proto,
        src_port,
        dst_port,
    })
}

/// The window scale option of a SYN, which conntrack's window tracking needs.
fn window_scale(frame: &[u8], l4_offset: usize) -> Option<u8> {
    let tcp = frame.get(l4_offset..)?;
    let header_len = usize::from(tcp.get(12)? >> 4) * 4;
    if tcp.get(13)? & 0x02 == 0 {
        return None;
    }
    let mut opts = tcp.get(20..header_len)?;
    while let [kind, rest @ ..] = opts {
        match kind {
            0 => return None,
            1 => opts = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if *kind == 3 && len == 3 {
                    return Some(opts[2]);
                }
                opts = &opts[len..];
            }
        }
    }
    None
}
