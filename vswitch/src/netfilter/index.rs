//! A long chain's index: the rules a packet could match at all.
//!
//! A rule whose positive `-s` (or `-d`) network does not hold the packet's
//! address cannot match, and as the kernel tests a rule's IP header part
//! before its modules, none of its other matches is tested either. A chain
//! with many such rules is indexed on the address that files most of them:
//! each filed rule under its network, the rest apart. Evaluation visits, in
//! order, the rules filed under the packet's address and the unfiled ones.
//! It skips only rules that could not have matched, so verdicts, counters
//! and stateful matches (limit) come out as a full walk's, and the cost of
//! a first packet no longer grows with the rules aimed at other hosts.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::matches::Match;
use super::types::Cidr;
use super::{PacketInfo, Rule};

/// Below this many filed rules the lookups cost what they save.
const MIN_FILED: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Src,
    Dst,
}

impl Field {
    /// The rule's positive network for this field, if it tests one.
    fn of_rule(self, rule: &Rule) -> Option<Cidr> {
        rule.matches.iter().find_map(|m| match (self, m) {
            (Field::Src, Match::Src(c)) | (Field::Dst, Match::Dst(c)) if !c.neg => Some(c.v),
            _ => None,
        })
    }

    fn of_packet(self, pkt: &PacketInfo) -> u32 {
        u32::from(match self {
            Field::Src => pkt.src,
            Field::Dst => pkt.dst,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RuleIndex {
    field: Field,
    /// The filed networks' masks, each once, longest first.
    masks: Box<[u32]>,
    /// (mask, network) to the positions of the rules testing it, ascending.
    filed: HashMap<(u32, u32), Box<[u32]>, RandomState>,
    /// Positions of the rules that do not test the field, ascending.
    unfiled: Box<[u32]>,
}

impl RuleIndex {
    /// The index of a chain, or `None` when too few of its rules would be
    /// filed for it to pay.
    pub(crate) fn build(rules: &[Rule]) -> Option<RuleIndex> {
        let filed_by = |f: Field| rules.iter().filter(|r| f.of_rule(r).is_some()).count();
        let (src, dst) = (filed_by(Field::Src), filed_by(Field::Dst));
        let field = if src >= dst { Field::Src } else { Field::Dst };
        if src.max(dst) < MIN_FILED {
            return None;
        }
        let mut filed: HashMap<(u32, u32), Vec<u32>, RandomState> = HashMap::default();
        let mut unfiled = Vec::new();
        let mut masks = Vec::new();
        for (pos, rule) in (0u32..).zip(rules) {
            match field.of_rule(rule) {
                Some(c) => {
                    filed.entry((c.mask, c.addr)).or_default().push(pos);
                    if !masks.contains(&c.mask) {
                        masks.push(c.mask);
                    }
                }
                None => unfiled.push(pos),
            }
        }
        masks.sort_unstable_by(|a, b| b.cmp(a));
        Some(RuleIndex {
            field,
            masks: masks.into(),
            filed: filed.into_iter().map(|(k, v)| (k, v.into())).collect(),
            unfiled: unfiled.into(),
        })
    }

    /// The position of the first rule at or after `from` that `pkt` could
    /// match, `None` when no such rule is left.
    #[inline]
    pub(crate) fn next(&self, pkt: &PacketInfo, from: usize) -> Option<usize> {
        let first = |positions: &[u32]| {
            let at = positions.partition_point(|&p| (p as usize) < from);
            positions.get(at).map(|&p| p as usize)
        };
        let addr = self.field.of_packet(pkt);
        let mut next = first(&self.unfiled);
        for &mask in self.masks.iter() {
            if let Some(positions) = self.filed.get(&(mask, addr & mask)) {
                next = match (next, first(positions)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use proptest::prelude::*;

    use super::super::tests::{load, tcp, udp};
    use super::super::*;
    use crate::time::Timestamp;

    /// The positions of the rules evaluation tested, letting the index skip.
    #[derive(Default)]
    struct Tested(Vec<usize>);

    impl Trace for Tested {
        const SEES_EVERY_RULE: bool = false;

        fn rule(&mut self, _: Table, _: &str, index: usize, _: &dyn fmt::Display, _: bool) {
            self.0.push(index);
        }
    }

    fn forward<T: Trace>(rs: &mut Ruleset, pkt: &PacketInfo, trace: &mut T) -> Outcome {
        let mut meta = Meta::default();
        rs.evaluate(
            Table::Filter,
            Hook::Forward,
            pkt,
            &mut meta,
            Timestamp::ZERO,
            trace,
        )
    }

    #[test]
    fn a_long_chain_tests_only_the_rules_for_the_packets_address() {
        let mut text =
            String::from("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p icmp -j ACCEPT\n");
        for i in 0..1000 {
            text += &format!(
                "-A FORWARD -s 10.1.{}.{} -p tcp --dport 22 -j DROP\n",
                i / 250,
                i % 250 + 1
            );
        }
        text += "-A FORWARD -s 10.1.0.0/16 -p udp -j DROP\n-A FORWARD -p tcp -j REJECT\nCOMMIT\n";
        let mut rs = load(&text);
        let cases = [
            (
                tcp("10.1.0.7", 1, "10.9.0.1", 22, 0),
                Outcome::Drop,
                vec![1, 8],
            ),
            (
                tcp("10.2.0.7", 1, "10.9.0.1", 22, 0),
                Outcome::Reject(RejectWith::PortUnreachable),
                vec![1, 1003],
            ),
            (
                udp("10.1.3.3", 1, "10.9.0.1", 53),
                Outcome::Drop,
                vec![1, 754, 1002],
            ),
            (
                udp("10.3.0.1", 1, "10.9.0.1", 53),
                Outcome::Accept,
                vec![1, 1003],
            ),
        ];
        for (pkt, outcome, tested) in cases {
            let mut t = Tested::default();
            assert_eq!(forward(&mut rs, &pkt, &mut t), outcome, "{pkt:?}");
            assert_eq!(t.0, tested, "{pkt:?}");
        }
        let packets = |rule: usize| {
            rs.rule_counters(Table::Filter, "FORWARD", rule)
                .map(|c| c.packets)
        };
        assert_eq!(
            [8, 754, 1002, 1003].map(packets),
            [Some(1), Some(0), Some(1), Some(1)]
        );
        let policy = rs.chain_counters(Table::Filter, "FORWARD");
        assert_eq!(policy.map(|c| c.packets), Some(1));
    }

    #[test]
    fn a_short_chain_or_one_without_addresses_is_walked() {
        let few = "*filter\n-A FORWARD -s 10.0.0.1 -j DROP\n-A FORWARD -s 10.0.0.2 -j DROP\n-A FORWARD -p tcp -j DROP\nCOMMIT\n";
        let mut t = Tested::default();
        forward(&mut load(few), &udp("10.0.0.3", 1, "10.0.0.9", 53), &mut t);
        assert_eq!(t.0, [1, 2, 3]);
        let ports: String = (0..20)
            .map(|i| format!("-A FORWARD -p tcp --dport {i} -j DROP\n"))
            .collect();
        let mut t = Tested::default();
        forward(
            &mut load(&format!("*filter\n{ports}COMMIT\n")),
            &udp("10.0.0.3", 1, "10.0.0.9", 53),
            &mut t,
        );
        assert_eq!(t.0, (1..=20).collect::<Vec<_>>());
    }

    /// One rule of a small vocabulary: addresses from a few networks of
    /// several prefix lengths (and negated), protocols, ports, a rate limit
    /// whose tokens only tested rules spend, and every kind of target.
    fn rule(chain: &'static str, jump: bool) -> impl Strategy<Value = String> {
        let net = (
            0u8..3,
            0u8..3,
            0u8..3,
            prop::sample::select(vec![8u8, 16, 24, 32]),
        )
            .prop_map(|(a, b, c, p)| format!("10.{a}.{b}.{c}/{p}"));
        let addr = prop_oneof![
            2 => Just(String::new()),
            5 => net.clone().prop_map(|n| format!("-s {n}")),
            2 => net.clone().prop_map(|n| format!("-d {n}")),
            1 => net.clone().prop_map(|n| format!("! -s {n}")),
            1 => (net.clone(), net).prop_map(|(s, d)| format!("-s {s} -d {d}")),
        ];
        let l4 = prop::sample::select(vec![
            "",
            "-p tcp",
            "-p tcp --dport 80",
            "-p udp --dport 53",
            "-m limit --limit 2/sec --limit-burst 1",
        ]);
        let mut targets = vec![
            "",
            "-j ACCEPT",
            "-j DROP",
            "-j RETURN",
            "-j MARK --set-mark 7",
        ];
        if jump {
            targets.extend(["-j SUB", "-g SUB"]);
        }
        (addr, l4, prop::sample::select(targets))
            .prop_map(move |(a, l, t)| format!("-A {chain} {a} {l} {t}\n"))
    }

    fn packet() -> impl Strategy<Value = (PacketInfo, u64)> {
        let ip = (0u8..3, 0u8..3, 0u8..3).prop_map(|(b, c, d)| format!("10.{b}.{c}.{d}"));
        (
            ip.clone(),
            ip,
            any::<bool>(),
            prop::sample::select(vec![53u16, 80, 443]),
            0u64..400,
        )
            .prop_map(|(s, d, is_tcp, port, ms)| {
                let p = if is_tcp {
                    tcp(&s, 9, &d, port, 0)
                } else {
                    udp(&s, 9, &d, port)
                };
                (p, ms)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The index changes what is tested, never what is decided: the
        /// verdict, the marks, every counter and the limit's tokens equal
        /// those of a walk through every rule.
        #[test]
        fn indexed_evaluation_equals_the_full_walk(
            main in prop::collection::vec(rule("FORWARD", true), 4..48),
            sub in prop::collection::vec(rule("SUB", false), 0..24),
            packets in prop::collection::vec(packet(), 1..24),
        ) {
            let text = format!("*mangle\n:SUB - [0:0]\n{}{}COMMIT\n", main.concat(), sub.concat());
            let mut indexed = load(&text);
            let mut walked = indexed.clone();
            let mut now = Timestamp::ZERO;
            for (pkt, ms) in &packets {
                now = now.plus(std::time::Duration::from_millis(*ms));
                let (mut m1, mut m2) = (Meta::default(), Meta::default());
                let o1 = indexed.evaluate(Table::Mangle, Hook::Forward, pkt, &mut m1, now, &mut NoTrace);
                let o2 = walked.evaluate(Table::Mangle, Hook::Forward, pkt, &mut m2, now, &mut TraceLines::default());
                prop_assert_eq!(o1, o2, "{:?}", pkt);
                prop_assert_eq!(m1, m2);
            }
            prop_assert_eq!(indexed, walked);
        }
    }
}
