//! Watching evaluation step by step: `vswitch trace` and tests record
//! through [`Trace`]; the datapath passes [`NoTrace`], whose calls compile
//! away.

use std::fmt;

use super::{NatAction, Outcome, RejectWith, Table};

/// Steps of one evaluation. Every method has an empty default, so a
/// recorder implements only what it shows.
pub trait Trace {
    /// Whether `rule` must hear of every rule in a chain. When not, a
    /// chain's index lets evaluation skip rules whose address test cannot
    /// hold for the packet; what the walk decides and counts is the same.
    const SEES_EVERY_RULE: bool = true;

    /// Evaluation of `table` starts at built-in chain `chain`.
    fn enter(&mut self, _table: Table, _chain: &str) {}
    /// Rule `index` (1-based, as `iptables -L --line-numbers`) of `chain`
    /// was tested. `spec` prints the rule as `-A` writes it, without
    /// `-A CHAIN` (formatting it costs; only recorders do).
    fn rule(
        &mut self,
        _table: Table,
        _chain: &str,
        _index: usize,
        _spec: &dyn fmt::Display,
        _matched: bool,
    ) {
    }
    /// The matched rule jumped (`goto`: `-g`) from `from` into `to`.
    fn jump(&mut self, _table: Table, _from: &str, _to: &str, _goto: bool) {}
    /// `from` ended or hit RETURN; evaluation resumes in `to`.
    fn ret(&mut self, _table: Table, _from: &str, _to: &str) {}
    /// The matched rule's target ended the table with `outcome`.
    fn verdict(&mut self, _table: Table, _outcome: Outcome) {}
    /// Built-in `chain` ran out of rules (or returned): its policy applies.
    fn policy(&mut self, _table: Table, _chain: &str, _outcome: Outcome) {}
    /// A LOG target's line.
    fn log(&mut self, _line: &str) {}
}

/// The tracer of the datapath: records nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    const SEES_EVERY_RULE: bool = false;
}

/// Two tracers fed the same steps (a recorder and a journal).
pub struct Both<'a, A, B>(pub &'a mut A, pub &'a mut B);

impl<A: Trace, B: Trace> Trace for Both<'_, A, B> {
    const SEES_EVERY_RULE: bool = A::SEES_EVERY_RULE || B::SEES_EVERY_RULE;

    fn enter(&mut self, table: Table, chain: &str) {
        self.0.enter(table, chain);
        self.1.enter(table, chain);
    }

    fn rule(
        &mut self,
        table: Table,
        chain: &str,
        index: usize,
        spec: &dyn fmt::Display,
        matched: bool,
    ) {
        self.0.rule(table, chain, index, spec, matched);
        self.1.rule(table, chain, index, spec, matched);
    }

    fn jump(&mut self, table: Table, from: &str, to: &str, goto: bool) {
        self.0.jump(table, from, to, goto);
        self.1.jump(table, from, to, goto);
    }

    fn ret(&mut self, table: Table, from: &str, to: &str) {
        self.0.ret(table, from, to);
        self.1.ret(table, from, to);
    }

    fn verdict(&mut self, table: Table, outcome: Outcome) {
        self.0.verdict(table, outcome);
        self.1.verdict(table, outcome);
    }

    fn policy(&mut self, table: Table, chain: &str, outcome: Outcome) {
        self.0.policy(table, chain, outcome);
        self.1.policy(table, chain, outcome);
    }

    fn log(&mut self, line: &str) {
        self.0.log(line);
        self.1.log(line);
    }
}

/// Records steps as lines like
/// `filter FORWARD #3 -i web -o db -p tcp -m tcp --dport 5432 -j ACCEPT : match -> ACCEPT`.
#[derive(Debug, Default, Clone)]
pub struct TraceLines {
    pub lines: Vec<String>,
}

impl TraceLines {
    fn append(&mut self, s: &str) {
        if let Some(l) = self.lines.last_mut() {
            l.push_str(s);
        }
    }
}

impl Trace for TraceLines {
    fn enter(&mut self, table: Table, chain: &str) {
        self.lines.push(format!("{} {chain}", table.name()));
    }

    fn rule(
        &mut self,
        table: Table,
        chain: &str,
        index: usize,
        spec: &dyn fmt::Display,
        matched: bool,
    ) {
        let m = if matched { "match" } else { "no match" };
        self.lines
            .push(format!("{} {chain} #{index}{spec} : {m}", table.name()));
    }

    fn jump(&mut self, _table: Table, _from: &str, to: &str, goto: bool) {
        let how = if goto { "goto" } else { "jump" };
        self.append(&format!(" -> {how} {to}"));
    }

    fn ret(&mut self, table: Table, from: &str, to: &str) {
        self.lines
            .push(format!("{} {from} : return to {to}", table.name()));
    }

    fn verdict(&mut self, _table: Table, outcome: Outcome) {
        self.append(&format!(" -> {outcome}"));
    }

    fn policy(&mut self, table: Table, chain: &str, outcome: Outcome) {
        self.lines
            .push(format!("{} {chain} : policy {outcome}", table.name()));
    }

    fn log(&mut self, line: &str) {
        self.lines.push(format!("log: {line}"));
    }
}

/// `ACCEPT`, `DROP`, `REJECT icmp-port-unreachable`, `DNAT 172.17.0.2:80`...
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Accept => f.write_str("ACCEPT"),
            Outcome::Drop => f.write_str("DROP"),
            Outcome::Reject(w) => write!(f, "REJECT {w}"),
            Outcome::Nat(a) => {
                let (name, r) = match a {
                    NatAction::Snat(r) => ("SNAT", r),
                    NatAction::Dnat(r) => ("DNAT", r),
                    NatAction::Masquerade { .. } => return f.write_str("MASQUERADE"),
                    NatAction::Redirect { .. } => return f.write_str("REDIRECT"),
                };
                write!(f, "{name} {}", r.addr_lo)?;
                if r.addr_hi != r.addr_lo {
                    write!(f, "-{}", r.addr_hi)?;
                }
                if let Some(p) = r.ports {
                    write!(f, ":{}", p.lo)?;
                    if p.hi != p.lo {
                        write!(f, "-{}", p.hi)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for RejectWith {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectWith::NetUnreachable => "icmp-net-unreachable",
            RejectWith::HostUnreachable => "icmp-host-unreachable",
            RejectWith::PortUnreachable => "icmp-port-unreachable",
            RejectWith::ProtoUnreachable => "icmp-proto-unreachable",
            RejectWith::NetProhibited => "icmp-net-prohibited",
            RejectWith::HostProhibited => "icmp-host-prohibited",
            RejectWith::AdminProhibited => "icmp-admin-prohibited",
            RejectWith::TcpReset => "tcp-reset",
        })
    }
}
