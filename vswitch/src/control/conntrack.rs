//! `vswitch conntrack`: the connection table, as conntrack-tools shows and
//! edits it.

use std::net::IpAddr;
use std::time::Duration;

use conntrack::{format_entry, Dir, Tuple};
use serde_json::json;

use crate::firewall::Firewall;
use crate::time::Timestamp;

/// `-L` (the default) lists, `-F` flushes, `-D` deletes; `-p`, `-s`, `-d`,
/// `--sport`, `--dport` select entries by their original tuple.
pub fn respond(
    fw: &mut Firewall,
    now: Timestamp,
    opts: &[&str],
    json: bool,
) -> Result<String, String> {
    let mut action = Action::List;
    let mut filter = Filter::default();
    let mut words = opts.iter();
    while let Some(w) = words.next() {
        let mut value = |what: &str| {
            words
                .next()
                .copied()
                .ok_or_else(|| format!("{w} needs {what}"))
        };
        match *w {
            "-L" | "--dump" => action = Action::List,
            "-F" | "--flush" => action = Action::Flush,
            "-D" | "--delete" => action = Action::Delete,
            "-p" | "--proto" => filter.protocol = Some(protocol(value("a protocol")?)?),
            "-s" | "--src" | "--orig-src" => filter.src = Some(addr(value("an address")?)?),
            "-d" | "--dst" | "--orig-dst" => filter.dst = Some(addr(value("an address")?)?),
            "--sport" | "--orig-port-src" => filter.sport = Some(port(value("a port")?)?),
            "--dport" | "--orig-port-dst" => filter.dport = Some(port(value("a port")?)?),
            other => return Err(format!("unknown conntrack option {other:?}")),
        }
    }
    let now = Duration::from_nanos(now.as_nanos());
    let conns = fw.conntrack_mut();
    match action {
        Action::Flush => {
            let n = conns.len();
            conns.flush();
            Ok(format!(
                "connection tracking table has been emptied ({n} entries)\n"
            ))
        }
        Action::Delete => {
            let doomed: Vec<Tuple> = conns
                .iter()
                .map(|(_, e)| *e.tuple(Dir::Original))
                .filter(|t| filter.accepts(t))
                .collect();
            for t in &doomed {
                conns.remove_tuple(t);
            }
            Ok(format!(
                "{} flow entries have been deleted.\n",
                doomed.len()
            ))
        }
        Action::List => {
            let mut lines: Vec<String> = conns
                .iter()
                .filter(|(_, e)| filter.accepts(e.tuple(Dir::Original)))
                .map(|(_, e)| format_entry(e, now))
                .collect();
            lines.sort();
            if json {
                return Ok(format!("{}\n", json!({ "entries": lines })));
            }
            let mut s = lines.join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            Ok(s)
        }
    }
}

enum Action {
    List,
    Flush,
    Delete,
}

#[derive(Default)]
struct Filter {
    protocol: Option<u8>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
}

impl Filter {
    fn accepts(&self, t: &Tuple) -> bool {
        self.protocol.is_none_or(|p| p == t.protocol)
            && self.src.is_none_or(|a| a == t.src)
            && self.dst.is_none_or(|a| a == t.dst)
            && self.sport.is_none_or(|p| p == t.src_port)
            && self.dport.is_none_or(|p| p == t.dst_port)
    }
}

fn protocol(s: &str) -> Result<u8, String> {
    match s {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" => Ok(58),
        n => n
            .parse()
            .map_err(|_| format!("unknown protocol {s:?} (tcp, udp, icmp, icmpv6 or a number)")),
    }
}

fn addr(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("bad address {s:?}"))
}

fn port(s: &str) -> Result<u16, String> {
    s.parse().map_err(|_| format!("bad port {s:?}"))
}
