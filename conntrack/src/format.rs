//! `conntrack -L` output, one line per entry, as conntrack-tools prints it
//! with accounting on.

use core::fmt::Write;
use std::time::Duration;

use packet::ipv4::protocol::{ICMP, ICMPV6, TCP, UDP};

use crate::{Dir, Entry, Status, Tuple};

/// `tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=40000
/// dport=5432 packets=3 bytes=180 src=10.10.0.3 dst=10.10.0.2 sport=5432
/// dport=40000 packets=2 bytes=120 [ASSURED] mark=0 use=1`, on one line.
/// The number after the protocol is the seconds left at `now`.
pub fn format_entry<E>(e: &Entry<E>, now: Duration) -> String {
    let mut s = String::with_capacity(200);
    let proto = e.tuple(Dir::Original).protocol;
    let name = match proto {
        TCP => "tcp",
        UDP => "udp",
        ICMP => "icmp",
        ICMPV6 => "icmpv6",
        // Tracked generically, which conntrack-tools calls "unknown".
        _ => "unknown",
    };
    let left = e.expires().saturating_sub(now).as_secs();
    // Writing to a String cannot fail.
    let _ = write!(s, "{name:<8} {proto} {left} ");
    if let Some(state) = e.protocol_state_name() {
        let _ = write!(s, "{state} ");
    }
    tuple(&mut s, e, Dir::Original);
    if !e.status.contains(Status::SEEN_REPLY) {
        s.push_str(" [UNREPLIED]");
    }
    s.push(' ');
    tuple(&mut s, e, Dir::Reply);
    if e.status.contains(Status::ASSURED) {
        s.push_str(" [ASSURED]");
    }
    let _ = write!(s, " mark={} use=1", e.mark);
    s
}

fn tuple<E>(s: &mut String, e: &Entry<E>, dir: Dir) {
    let t: &Tuple = e.tuple(dir);
    let c = e.counters[dir.index()];
    let _ = write!(s, "src={} dst={} ", t.src, t.dst);
    match t.protocol {
        TCP | UDP => {
            let _ = write!(s, "sport={} dport={} ", t.src_port, t.dst_port);
        }
        ICMP | ICMPV6 => {
            // Echo request one way, reply the other.
            let ty = match (t.protocol, dir) {
                (ICMP, Dir::Original) => 8,
                (ICMP, Dir::Reply) => 0,
                (_, Dir::Original) => 128,
                (_, Dir::Reply) => 129,
            };
            let _ = write!(s, "type={ty} code=0 id={} ", t.src_port);
        }
        _ => {}
    }
    let _ = write!(s, "packets={} bytes={}", c.packets, c.bytes);
}
