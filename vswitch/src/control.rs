//! Requests a running switch answers over its control socket, rendered here
//! without any I/O so they can be tested directly. A request is one line of
//! words, like the command line that sent it (`fdb --json`, `trace web tcp
//! 10.0.0.2:1 -> 10.0.0.3:2 syn`); the answer is text or JSON, or an error
//! sentence.

mod conntrack;
mod rules;

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::config;
use crate::live_capture::CaptureSpec;
use crate::pcap;
use crate::pcap_filter::Filter;
use crate::stats::IoStats;
use crate::switch::{Reloaded, Switch};
use crate::time::Timestamp;
use crate::trace;

/// Largest request accepted; anything longer is refused, not buffered.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Answers one request line. `Err` is a one-sentence error for the client.
pub fn respond(
    switch: &mut Switch,
    io: &IoStats,
    now: Timestamp,
    line: &str,
) -> Result<String, String> {
    if let Some(path) = reload_path(line) {
        return reload(switch, path);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let json = words.contains(&"--json");
    let args: Vec<&str> = words.iter().copied().filter(|w| *w != "--json").collect();
    match args.as_slice() {
        ["fdb"] => Ok(fdb(switch, now, json)),
        ["stats"] => Ok(stats(switch, io, json)),
        ["rules", opts @ ..] => rules::respond(switch.firewall_mut().rules_mut(), opts, json),
        ["conntrack", opts @ ..] => conntrack::respond(switch.firewall_mut(), now, opts, json),
        ["trace", port, spec @ ..] => {
            let t = trace::trace_live(switch, now, port, &spec.join(" "))?;
            Ok(match json {
                true => format!("{}\n", t.to_json()),
                false => t.to_text(),
            })
        }
        [] => Err("empty request".into()),
        [cmd, ..] => Err(format!("unknown request {cmd:?}")),
    }
}

/// The capture a `capture PORT [-s SNAPLEN] [-c COUNT] [FILTER...]`
/// request asks for; `None` when the line is another request. The I/O
/// layer answers `ok` and then streams the pcap on the same connection.
pub fn capture(switch: &Switch, line: &str) -> Option<Result<CaptureSpec, String>> {
    let mut words = line.split_whitespace();
    if words.next() != Some("capture") {
        return None;
    }
    Some(capture_spec(switch, words.collect()))
}

fn capture_spec(switch: &Switch, words: Vec<&str>) -> Result<CaptureSpec, String> {
    let (&name, mut rest) = words.split_first().ok_or("capture needs a port name")?;
    let port = switch
        .port_id(name)
        .ok_or_else(|| format!("no port named {name:?}"))?;
    let mut spec = CaptureSpec {
        port,
        filter: Filter::default(),
        snaplen: pcap::SNAPLEN,
        count: None,
    };
    loop {
        match rest {
            ["-s", n, more @ ..] => {
                spec.snaplen = match n.parse() {
                    Ok(0) => pcap::SNAPLEN,
                    Ok(n) => n,
                    Err(_) => return Err(format!("-s {n}: not a byte count")),
                };
                rest = more;
            }
            ["-c", n, more @ ..] => {
                spec.count = Some(
                    n.parse()
                        .ok()
                        .filter(|&c| c > 0)
                        .ok_or_else(|| format!("-c {n}: not a frame count"))?,
                );
                rest = more;
            }
            _ => break,
        }
    }
    spec.filter = Filter::parse(&rest.join(" ")).map_err(|e| e.to_string())?;
    Ok(spec)
}

/// The config path of a `reload PATH` request.
pub fn reload_path(line: &str) -> Option<&Path> {
    let path = line.trim().strip_prefix("reload ")?;
    // The rest of the line is the path; a --json the client adds is moot.
    Some(Path::new(path.trim().trim_end_matches("--json").trim_end()))
}

/// Applies the config at `path` to a switch without devices; conntrack,
/// the FDB and DHCP leases stay. The config is checked as `vswitch check`
/// does, and refused whole on any error. The I/O layer, which has devices
/// to change, does the same in two steps around its own.
fn reload(switch: &mut Switch, path: &Path) -> Result<String, String> {
    let cfg = config::load(path).map_err(|e| e.to_string())?;
    let done = switch.reload(&cfg).map_err(|e| e.to_string())?;
    Ok(reloaded(path, &done))
}

/// The answer to a reload that was applied.
pub fn reloaded(path: &Path, r: &Reloaded) -> String {
    let mut s = format!(
        "reloaded {}: rules applied, {} connection(s) kept\n",
        path.display(),
        r.connections
    );
    for (what, names) in [
        ("ports added", &r.ports_added),
        ("ports removed", &r.ports_removed),
        ("networks added", &r.networks_added),
        ("networks removed", &r.networks_removed),
    ] {
        if !names.is_empty() {
            let _ = writeln!(s, "{what}: {}", names.join(", "));
        }
    }
    s
}

/// The MAC table, `bridge fdb show` style.
fn fdb(switch: &Switch, now: Timestamp, json: bool) -> String {
    let mut rows: Vec<_> = switch
        .fdb()
        .iter()
        .filter_map(|(domain, mac, e)| {
            let port = switch.port(e.at.port)?;
            let net = switch.networks().get(usize::from(domain.network))?;
            let age = now.since(e.last_seen).as_secs();
            Some((
                net.name.as_str(),
                domain.vlan,
                mac,
                port.name.as_str(),
                e.at.vtep,
                e.is_static,
                age,
            ))
        })
        .collect();
    rows.sort();
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(net, vlan, mac, port, vtep, st, age)| {
                json!({"mac": mac.to_string(), "port": port, "network": net, "vlan": vlan,
                       "remote": vtep.map(|v| v.to_string()),
                       "static": st, "age_secs": if *st { None } else { Some(age) }})
            })
            .collect();
        return format!("{}\n", serde_json::Value::Array(v));
    }
    let mut s = String::new();
    for (net, vlan, mac, port, vtep, st, age) in rows {
        let _ = write!(s, "{mac} dev {port}");
        if let Some(vtep) = vtep {
            let _ = write!(s, " dst {vtep}");
        }
        if vlan != 0 {
            let _ = write!(s, " vlan {vlan}");
        }
        let _ = write!(s, " master {net}");
        if st {
            s.push_str(" static");
        } else {
            let _ = write!(s, " age {age}s");
        }
        s.push('\n');
    }
    s
}

/// Per-port counters and drops by reason; the connection table's size,
/// limit, entries evicted to make room (`early_drop`) and connections
/// refused because nothing could be (`full`); the exact-match cache's hits
/// and misses.
fn stats(switch: &Switch, io: &IoStats, json: bool) -> String {
    let ct = switch.firewall().conntrack();
    let fast = switch.fast_path();
    if json {
        let ports: Vec<_> = switch
            .ports()
            .iter()
            .map(|p| {
                let drops: serde_json::Map<_, _> = p
                    .stats
                    .drop_counts()
                    .map(|(r, n)| (r.as_str().to_owned(), json!(n)))
                    .collect();
                json!({"port": p.name, "rx_packets": p.stats.rx_packets, "rx_bytes": p.stats.rx_bytes,
                       "tx_packets": p.stats.tx_packets, "tx_bytes": p.stats.tx_bytes, "drops": drops})
            })
            .collect();
        let v = json!({"ports": ports, "io": {"rx_errors": io.rx_errors, "tx_errors": io.tx_errors,
                             "thread_frames": io.thread_frames, "tx_batches": io.tx_batches,
                             "tx_batched": io.tx_batched},
                       "conntrack": {"entries": ct.len(), "max": ct.config().max_entries,
                                     "early_drop": ct.stats().early_drop, "full": ct.stats().drop},
                       "fast_path": {"hits": fast.hits, "misses": fast.misses}});
        return format!("{v}\n");
    }
    let mut s = format!(
        "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}\n",
        "port", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops"
    );
    for p in switch.ports() {
        let st = &p.stats;
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:>14} {:>12} {:>14} {:>10}",
            p.name,
            st.rx_packets,
            st.rx_bytes,
            st.tx_packets,
            st.tx_bytes,
            st.total_drops()
        );
        let reasons: Vec<String> = st.drop_counts().map(|(r, n)| format!("{r}={n}")).collect();
        if !reasons.is_empty() {
            let _ = writeln!(s, "  drops: {}", reasons.join(" "));
        }
    }
    let frames: Vec<String> = io.thread_frames.iter().map(u64::to_string).collect();
    let _ = writeln!(
        s,
        "io: rx_errors={} tx_errors={} thread_frames={} tx_batches={} tx_batched={}",
        io.rx_errors,
        io.tx_errors,
        frames.join(","),
        io.tx_batches,
        io.tx_batched
    );
    let _ = writeln!(
        s,
        "conntrack: entries={} max={} early_drop={} full={}",
        ct.len(),
        ct.config().max_entries,
        ct.stats().early_drop,
        ct.stats().drop
    );
    let _ = writeln!(s, "fast_path: hits={} misses={}", fast.hits, fast.misses);
    s
}
