//! Walking a packet through a table's chains at one hook.
//!
//! Linear, as the kernel's x_tables: each rule's matches are tested in
//! order, the first failing one ends the rule; a long chain's index skips
//! the rules whose address test fails, unless the tracer watches them all. Jumps push a return frame
//! onto a fixed array (depth bounded at load), gotos do not, so a RETURN or
//! the end of a chain entered by goto resumes in the caller's caller. No
//! allocation unless a tracer formats rules or a LOG target fires.

use std::fmt;

use super::check::MAX_DEPTH;
use super::targets::Target;
use super::trace::Trace;
use super::{log, Hook, Meta, Outcome, PacketInfo, Policy, Rule, Ruleset, Table};
use crate::time::Timestamp;

/// A rule printed as `-A` writes it, for tracers; formats only when asked.
pub(crate) struct Spec<'a>(pub &'a Rule);

impl fmt::Display for Spec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        super::print::rule_spec(self.0, &mut s);
        f.write_str(&s)
    }
}

impl Ruleset {
    /// Runs `pkt` through `table` at `hook`. Counters of matched rules and
    /// of the policy move; targets edit `meta`. A table without that hook
    /// accepts.
    pub fn evaluate<T: Trace>(
        &mut self,
        table: Table,
        hook: Hook,
        pkt: &PacketInfo,
        meta: &mut Meta,
        now: Timestamp,
        trace: &mut T,
    ) -> Outcome {
        let ports = &self.ports;
        let t = &mut self.tables[table as usize];
        let Some(start) = t.builtin(hook) else {
            return Outcome::Accept;
        };
        let chains = &mut t.chains;
        trace.enter(table, &chains[start].name);
        let mut stack = [(0usize, 0usize); MAX_DEPTH];
        let mut sp = 0;
        let (mut ci, mut ri) = (start, 0);
        loop {
            let chain = &mut chains[ci];
            if !T::SEES_EVERY_RULE {
                if let Some(index) = &chain.index {
                    ri = index.next(pkt, ri).unwrap_or(chain.rules.len());
                }
            }
            let Some(rule) = chain.rules.get_mut(ri) else {
                // Fell off the end: back to the caller, or the policy.
                if sp == 0 {
                    break;
                }
                sp -= 1;
                let (c, r) = stack[sp];
                trace.ret(table, &chains[ci].name, &chains[c].name);
                (ci, ri) = (c, r);
                continue;
            };
            ri += 1;
            let matched = rule.matches.iter_mut().all(|m| m.matches(pkt, meta, now));
            trace.rule(table, &chain.name, ri, &Spec(rule), matched);
            if !matched {
                continue;
            }
            rule.counters.add(pkt.len);
            let outcome = match &rule.target {
                Target::None => continue,
                Target::Accept => Outcome::Accept,
                Target::Drop => Outcome::Drop,
                Target::Reject(w) => Outcome::Reject(*w),
                Target::Nat(a) => Outcome::Nat(*a),
                Target::Return => {
                    if sp == 0 {
                        break;
                    }
                    sp -= 1;
                    let (c, r) = stack[sp];
                    trace.ret(table, &chains[ci].name, &chains[c].name);
                    (ci, ri) = (c, r);
                    continue;
                }
                Target::Jump(j) => {
                    let to = j.idx;
                    // The depth check at load keeps this in bounds.
                    let Some(slot) = stack.get_mut(sp) else {
                        trace.verdict(table, Outcome::Drop);
                        return Outcome::Drop;
                    };
                    *slot = (ci, ri);
                    sp += 1;
                    trace.jump(table, &chain.name, &j.name, false);
                    (ci, ri) = (to, 0);
                    continue;
                }
                Target::Goto(j) => {
                    trace.jump(table, &chain.name, &j.name, true);
                    (ci, ri) = (j.idx, 0);
                    continue;
                }
                Target::Log(l) => {
                    let line = log::line(l, pkt, ports);
                    tracing::info!(target: "vswitch::log", level = l.level, "{line}");
                    trace.log(&line);
                    continue;
                }
                other => {
                    other.edit(meta, pkt.ttl, pkt.tos);
                    continue;
                }
            };
            trace.verdict(table, outcome);
            return outcome;
        }
        let c = &mut chains[start];
        c.counters.add(pkt.len);
        let outcome = match c.policy {
            Some(Policy::Drop) => Outcome::Drop,
            _ => Outcome::Accept,
        };
        trace.policy(table, &c.name, outcome);
        outcome
    }
}
