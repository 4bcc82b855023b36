//! The flow cache: an established connection remembers, per direction, the
//! path its packets took through the FORWARD and POSTROUTING chains, so
//! later packets skip rule evaluation and only bump the same counters.
//!
//! A path is kept only when it is the same for every packet of the flow:
//! every rule tested matched on flow fields alone (addresses, ports,
//! interfaces, conntrack state...), not on per-packet ones (TCP flags,
//! length, TTL, marks, rate limits), and no target had a side effect
//! (LOG, MARK, ...). It holds for one ruleset generation and one pair of
//! ingress and egress ports; anything else evaluates afresh.

use conntrack::Dir;

use crate::netfilter::{Iface, Ruleset, Step, Table, Trace};

/// What a conntrack entry carries for the cache.
#[derive(Clone, Default, Debug)]
pub struct FlowCache {
    dirs: [Option<Box<Cached>>; 2],
}

#[derive(Clone, Debug)]
struct Cached {
    generation: u64,
    iif: Iface,
    oif: Iface,
    /// `None`: evaluated once and found to depend on more than the flow.
    path: Option<Box<[Step]>>,
}

pub enum Lookup<'a> {
    Hit(&'a [Step]),
    /// This flow's path cannot be cached; evaluate without recording.
    Uncacheable,
    Miss,
}

impl FlowCache {
    pub fn lookup(&self, dir: Dir, generation: u64, iif: Iface, oif: Iface) -> Lookup<'_> {
        match &self.dirs[dir.index()] {
            Some(c) if c.generation == generation && c.iif == iif && c.oif == oif => {
                match &c.path {
                    Some(p) => Lookup::Hit(p),
                    None => Lookup::Uncacheable,
                }
            }
            _ => Lookup::Miss,
        }
    }

    pub fn put(
        &mut self,
        dir: Dir,
        generation: u64,
        iif: Iface,
        oif: Iface,
        path: Option<Box<[Step]>>,
    ) {
        self.dirs[dir.index()] = Some(Box::new(Cached {
            generation,
            iif,
            oif,
            path,
        }));
    }
}

/// Records the rules a packet meets, to turn into a path afterwards. Names
/// are kept as text because the ruleset is borrowed while it evaluates.
#[derive(Default, Debug)]
pub struct Recorder {
    on: bool,
    events: Vec<Event>,
}

#[derive(Debug)]
struct Event {
    table: Table,
    chain: String,
    /// 1-based rule index; `None` for the policy.
    rule: Option<usize>,
    matched: bool,
}

impl Recorder {
    pub fn start(&mut self) {
        self.on = true;
        self.events.clear();
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The recorded path if it holds for the whole flow, `None` if not.
    /// Recording stops.
    pub fn finish(&mut self, rules: &Ruleset) -> Option<Box<[Step]>> {
        self.on = false;
        let mut path = Vec::new();
        for e in self.events.drain(..) {
            let step = rules.step(e.table, &e.chain, e.rule)?;
            if e.rule.is_some() && !rules.is_flow_invariant(step) {
                return None;
            }
            if e.matched {
                path.push(step);
            }
        }
        Some(path.into_boxed_slice())
    }
}

impl Trace for Recorder {
    // The rules an index skips fail on an address, which a flow keeps.
    const SEES_EVERY_RULE: bool = false;

    fn rule(
        &mut self,
        table: Table,
        chain: &str,
        index: usize,
        _spec: &dyn std::fmt::Display,
        matched: bool,
    ) {
        self.events.push(Event {
            table,
            chain: chain.to_owned(),
            rule: Some(index),
            matched,
        });
    }

    fn policy(&mut self, table: Table, chain: &str, _outcome: crate::netfilter::Outcome) {
        self.events.push(Event {
            table,
            chain: chain.to_owned(),
            rule: None,
            matched: true,
        });
    }
}
