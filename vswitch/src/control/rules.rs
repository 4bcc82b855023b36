//! `vswitch rules`: the running ruleset, as iptables prints it.

use serde_json::json;

use crate::netfilter::{Ruleset, Table};

/// `-t TABLE` (default filter); `-S` rules as `iptables -S`, with `-c` as
/// `iptables-save -c`; otherwise `iptables -L -n`, `-v` with counters, `-x`
/// exact; `-Z` zeroes the counters after printing.
pub fn respond(rules: &mut Ruleset, opts: &[&str], json: bool) -> Result<String, String> {
    let mut table = Table::Filter;
    let (mut spec, mut counters, mut verbose, mut exact, mut zero) =
        (false, false, false, false, false);
    let mut words = opts.iter();
    while let Some(w) = words.next() {
        match *w {
            "-t" | "--table" => {
                let name = words.next().ok_or("-t needs a table name")?;
                table = Table::from_name(name).ok_or_else(|| {
                    format!("unknown table {name:?} (expected filter, nat, mangle or raw)")
                })?;
            }
            "-S" | "--list-rules" => spec = true,
            "-c" | "--counters" => counters = true,
            "-v" | "--verbose" => verbose = true,
            "-x" | "--exact" => exact = true,
            "-Z" | "--zero" => zero = true,
            "-L" | "--list" | "-n" | "--numeric" => {}
            other => return Err(format!("unknown rules option {other:?}")),
        }
    }
    let text = if json {
        as_json(&rules.save_with_counters(Some(table)))
    } else if spec && counters {
        rules.save_with_counters(Some(table))
    } else if spec {
        rules.rules_spec(table)
    } else {
        rules.list(table, verbose, exact)
    };
    if zero {
        rules.zero_counters();
    }
    Ok(text)
}

/// The table's chains with policy, counters and rules, from its
/// `iptables-save -c` text (one table, so one section).
fn as_json(saved: &str) -> String {
    let mut chains: Vec<serde_json::Value> = Vec::new();
    let mut table = "";
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t;
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let name = parts.next().unwrap_or_default();
            let policy = parts.next().filter(|p| *p != "-");
            let (packets, bytes) = parts.next().map_or((0, 0), counter_pair);
            chains.push(json!({"chain": name, "policy": policy, "packets": packets,
                               "bytes": bytes, "rules": []}));
        } else if let Some((c, rule)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
            let (packets, bytes) = counter_pair(&format!("[{c}]"));
            let chain = rule.split_whitespace().nth(1).unwrap_or_default();
            if let Some(rules) = chains
                .iter_mut()
                .find(|ch| ch["chain"] == chain)
                .and_then(|ch| ch["rules"].as_array_mut())
            {
                rules.push(json!({"rule": rule, "packets": packets, "bytes": bytes}));
            }
        }
    }
    format!("{}\n", json!({"table": table, "chains": chains}))
}

/// `[packets:bytes]`.
fn counter_pair(s: &str) -> (u64, u64) {
    s.trim_matches(|c| c == '[' || c == ']')
        .split_once(':')
        .and_then(|(p, b)| Some((p.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 0))
}
