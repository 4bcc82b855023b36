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

use std::ops::Range;

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

/// Records the rules a packet meets, to turn into a path afterwards. Chain
/// names are kept as text because the ruleset is borrowed while it
/// evaluates. One recorder serves every packet and keeps its buffers, so
/// recording allocates nothing once warmed up; the path it finishes is
/// the one allocation, and only when not empty.
#[derive(Clone, Default, Debug)]
pub struct Recorder {
    on: bool,
    events: Vec<Event>,
    /// The events' chain names, end to end.
    names: String,
    path: Vec<Step>,
}

#[derive(Clone, Debug)]
struct Event {
    table: Table,
    /// The chain's name, in `names`.
    chain: Range<usize>,
    /// 1-based rule index; `None` for the policy.
    rule: Option<usize>,
    matched: bool,
}

impl Recorder {
    pub fn start(&mut self) {
        self.on = true;
        self.events.clear();
        self.names.clear();
    }

    /// Drops what was recorded.
    pub fn stop(&mut self) {
        self.on = false;
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The recorded path if it holds for the whole flow, `None` if not.
    /// Recording stops.
    pub fn finish(&mut self, rules: &Ruleset) -> Option<Box<[Step]>> {
        self.on = false;
        let Recorder {
            events,
            names,
            path,
            ..
        } = self;
        path.clear();
        for e in events.iter() {
            let chain = names.get(e.chain.clone())?;
            let step = rules.step(e.table, chain, e.rule)?;
            if e.rule.is_some() && !rules.is_flow_invariant(step) {
                return None;
            }
            if e.matched {
                path.push(step);
            }
        }
        Some(Box::from(path.as_slice()))
    }

    fn push(&mut self, table: Table, chain: &str, rule: Option<usize>, matched: bool) {
        let start = self.names.len();
        self.names.push_str(chain);
        self.events.push(Event {
            table,
            chain: start..self.names.len(),
            rule,
            matched,
        });
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
        self.push(table, chain, Some(index), matched);
    }

    fn policy(&mut self, table: Table, chain: &str, _outcome: crate::netfilter::Outcome) {
        self.push(table, chain, None, true);
    }
}
