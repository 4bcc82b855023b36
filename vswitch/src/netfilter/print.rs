//! Printing rules back: iptables-save form (which the parser reads back to
//! an identical ruleset), `iptables -S` form, and `iptables -L -n [-v] [-x]`
//! tables with counters.

use std::fmt::Write;

use super::matches::{proto_name, Match};
use super::targets::Target;
use super::{Chain, Counters, Rule, Ruleset, Table, TableRules};

/// A rule's options and target, each with a leading space.
pub(crate) fn rule_spec(r: &Rule, out: &mut String) {
    for m in &r.matches {
        m.save(out);
    }
    r.target.save(out);
}

impl Ruleset {
    /// `iptables-save` output for one table, or for every table the text
    /// gave. Chain counters are printed, rule counters are not (as without -c).
    pub fn save(&self, table: Option<Table>) -> String {
        self.save_text(table, false)
    }

    /// `iptables-save -c`: rule counters as `[packets:bytes]` prefixes.
    pub fn save_with_counters(&self, table: Option<Table>) -> String {
        self.save_text(table, true)
    }

    fn save_text(&self, table: Option<Table>, counters: bool) -> String {
        let mut out = String::new();
        for t in Table::ALL {
            if table.map_or(!self.table(t).present, |only| only != t) {
                continue;
            }
            let tr = self.table(t);
            let _ = writeln!(out, "*{}", t.name());
            for c in &tr.chains {
                let policy = c.policy.map_or("-", |p| p.name());
                let _ = writeln!(
                    out,
                    ":{} {policy} [{}:{}]",
                    c.name, c.counters.packets, c.counters.bytes
                );
            }
            for c in &tr.chains {
                for r in &c.rules {
                    if counters {
                        let _ = write!(out, "[{}:{}] ", r.counters.packets, r.counters.bytes);
                    }
                    let _ = write!(out, "-A {}", c.name);
                    rule_spec(r, &mut out);
                    out.push('\n');
                }
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// `iptables -S`: policies, user chains, then every rule.
    pub fn rules_spec(&self, table: Table) -> String {
        let tr = self.table(table);
        let mut out = String::new();
        for c in &tr.chains {
            match c.policy {
                Some(p) => {
                    let _ = writeln!(out, "-P {} {}", c.name, p.name());
                }
                None => {
                    let _ = writeln!(out, "-N {}", c.name);
                }
            }
        }
        for c in &tr.chains {
            for r in &c.rules {
                let _ = write!(out, "-A {}", c.name);
                rule_spec(r, &mut out);
                out.push('\n');
            }
        }
        out
    }

    /// `iptables -L -n` for one table; `verbose` adds counters and
    /// interfaces (`-v`), `exact` prints counters unabbreviated (`-x`).
    pub fn list(&self, table: Table, verbose: bool, exact: bool) -> String {
        let tr = self.table(table);
        let mut out = String::new();
        for (i, c) in tr.chains.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            header(&mut out, tr, c, verbose, exact);
            for r in &c.rules {
                row(&mut out, r, verbose, exact);
            }
        }
        out
    }
}

fn header(out: &mut String, tr: &TableRules, c: &Chain, verbose: bool, exact: bool) {
    let _ = write!(out, "Chain {}", c.name);
    match c.policy {
        Some(p) if verbose => {
            let _ = write!(out, " (policy {} ", p.name());
            num(out, c.counters.packets, exact, false);
            out.push_str("packets, ");
            num(out, c.counters.bytes, exact, false);
            out.push_str("bytes)\n");
        }
        Some(p) => {
            let _ = writeln!(out, " (policy {})", p.name());
        }
        None => {
            let refs = tr
                .chains
                .iter()
                .flat_map(|c| &c.rules)
                .filter(
                    |r| matches!(&r.target, Target::Jump(j) | Target::Goto(j) if j.name == c.name),
                )
                .count();
            let _ = writeln!(out, " ({refs} references)");
        }
    }
    if verbose {
        if exact {
            let _ = write!(out, "{:>8} {:>10} ", "pkts", "bytes");
        } else {
            let _ = write!(out, "{:>5} {:>5} ", "pkts", "bytes");
        }
    }
    let _ = write!(out, "{:<9}  prot opt ", "target");
    if verbose {
        let _ = write!(out, "{:<6} {:<6}  ", "in", "out");
    }
    let _ = writeln!(out, "{:<19}  {:<19} ", "source", "destination");
}

/// A counter as iptables prints it: exact, or rounded to K/M/G/T past
/// 99999; `table` pads it to the column.
fn num(out: &mut String, mut n: u64, exact: bool, table: bool) {
    if exact {
        if table {
            let _ = write!(out, "{n:>8} ");
        } else {
            let _ = write!(out, "{n} ");
        }
        return;
    }
    if n <= 99_999 {
        if table {
            let _ = write!(out, "{n:>5} ");
        } else {
            let _ = write!(out, "{n} ");
        }
        return;
    }
    for suffix in ['K', 'M', 'G'] {
        n = (n + 500) / 1000;
        if n <= 9999 {
            if table {
                let _ = write!(out, "{n:>4}{suffix} ");
            } else {
                let _ = write!(out, "{n}{suffix} ");
            }
            return;
        }
    }
    n = (n + 500) / 1000;
    if table {
        let _ = write!(out, "{n:>4}T ");
    } else {
        let _ = write!(out, "{n}T ");
    }
}

fn row(out: &mut String, r: &Rule, verbose: bool, exact: bool) {
    if verbose {
        let Counters { packets, bytes } = r.counters;
        num(out, packets, exact, true);
        num(out, bytes, exact, true);
    }
    let _ = write!(out, "{:<9} ", r.target.name());
    let (mut proto, mut frag, mut iif, mut oif) = (
        "all".to_string(),
        "--".to_string(),
        "*".to_string(),
        "*".to_string(),
    );
    let (mut src, mut dst) = (" 0.0.0.0/0".to_string(), " 0.0.0.0/0".to_string());
    let bang = |neg: bool| if neg { "!" } else { " " };
    for m in &r.matches {
        match m {
            Match::Proto(p) => {
                let name = proto_name(p.v).map_or_else(|| p.v.to_string(), str::to_string);
                proto = format!("{}{name}", if p.neg { "!" } else { "" });
            }
            Match::Frag(f) => frag = format!("{}f", if f.neg { "!" } else { "-" }),
            Match::In(i) => iif = format!("{}{}", if i.neg { "!" } else { "" }, i.v.name),
            Match::Out(o) => oif = format!("{}{}", if o.neg { "!" } else { "" }, o.v.name),
            Match::Src(c) => src = format!("{}{}", bang(c.neg), c.v.short()),
            Match::Dst(c) => dst = format!("{}{}", bang(c.neg), c.v.short()),
            _ => {}
        }
    }
    if proto.starts_with('!') {
        let _ = write!(out, "{proto:<5} ");
    } else {
        let _ = write!(out, " {proto:<5}");
    }
    let _ = write!(out, "{frag} ");
    if verbose {
        let _ = write!(out, " {iif:<6} {oif:<6} ");
    }
    let _ = write!(out, "{src:<20} {dst:<20} ");
    if matches!(r.target, Target::Goto(_)) {
        out.push_str("[goto] ");
    }
    for m in &r.matches {
        if m.module().is_some() {
            m.list(out);
        }
    }
    r.target.list(out);
    out.push('\n');
}
