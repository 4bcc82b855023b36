//! Counting without evaluating: the flow cache keeps the steps a packet
//! took (rules matched, policies applied) and replays their counters for
//! later packets of the same flow. Whether a rule may be cached depends
//! only on what it matches and does, decided here where rules are known.

use super::matches::Match;
use super::targets::Target;
use super::{Ruleset, Table};

/// A rule, or a built-in chain's policy, by position in a ruleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    table: Table,
    chain: u16,
    /// 0-based; `POLICY` for the chain's policy.
    rule: u32,
}

const POLICY: u32 = u32::MAX;

impl Ruleset {
    /// The step for `chain`'s rule `index` (1-based, as traces name it) or,
    /// with `None`, its policy.
    pub fn step(&self, table: Table, chain: &str, index: Option<usize>) -> Option<Step> {
        let t = self.table(table);
        let c = t.find(chain)?;
        let rule = match index {
            Some(i) => {
                let i = i.checked_sub(1)?;
                t.chains[c].rules.get(i)?;
                u32::try_from(i).ok()?
            }
            None => POLICY,
        };
        Some(Step {
            table,
            chain: u16::try_from(c).ok()?,
            rule,
        })
    }

    /// Whether the rule at `step` decides the same for every packet of an
    /// established flow in one direction: it matches on addresses, ports,
    /// interfaces and connection state only, and its target has no side
    /// effect beyond the verdict.
    pub fn is_flow_invariant(&self, step: Step) -> bool {
        let Some(rule) = self
            .table(step.table)
            .chains
            .get(usize::from(step.chain))
            .and_then(|c| c.rules.get(step.rule as usize))
        else {
            return step.rule == POLICY;
        };
        rule.matches.iter().all(Match::is_flow_invariant)
            && matches!(
                rule.target,
                Target::None
                    | Target::Accept
                    | Target::Drop
                    | Target::Return
                    | Target::Jump(_)
                    | Target::Goto(_)
                    | Target::Reject(_)
            )
    }

    /// Counts a packet of `len` bytes on every step, as evaluating it would.
    pub fn replay(&mut self, steps: &[Step], len: u16) {
        for s in steps {
            let Some(chain) = self.tables[s.table as usize]
                .chains
                .get_mut(usize::from(s.chain))
            else {
                continue;
            };
            let counters = match s.rule {
                POLICY => &mut chain.counters,
                i => match chain.rules.get_mut(i as usize) {
                    Some(r) => &mut r.counters,
                    None => continue,
                },
            };
            counters.add(len);
        }
    }
}
