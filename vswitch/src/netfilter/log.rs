//! The LOG target's line, in the kernel's format (nf_log_ipv4), emitted
//! through `tracing` at target `vswitch::log`.

use std::fmt::Write;

use super::targets::Log;
use super::{tcp_flags, Iface, L4Info, PacketInfo};

/// `PREFIX IN=web OUT=db MAC=... SRC=... DST=... LEN=.. TOS=.. PREC=.. TTL=..
/// PROTO=TCP SPT=.. DPT=.. SYN`. MAC is the source address only (PacketInfo
/// carries no destination MAC or EtherType); IN/OUT name ports.
pub(crate) fn line(l: &Log, p: &PacketInfo, ports: &[String]) -> String {
    let name = |i: Option<Iface>| {
        i.and_then(|i| ports.get(usize::from(i.port)))
            .map_or("", String::as_str)
    };
    let mut s = String::with_capacity(160);
    let _ = write!(s, "{}IN={} OUT={} ", l.prefix, name(p.iif), name(p.oif));
    if p.iif.is_some() {
        let _ = write!(s, "MAC={} ", p.src_mac);
    }
    let _ = write!(
        s,
        "SRC={} DST={} LEN={} TOS=0x{:02X} PREC=0x{:02X} TTL={} ",
        p.src,
        p.dst,
        p.len,
        p.tos & 0x1e,
        p.tos & 0xe0,
        p.ttl
    );
    if p.fragment {
        s.push_str("FRAG ");
    }
    match p.l4 {
        L4Info::Tcp {
            sport,
            dport,
            flags,
        } if !p.fragment => {
            let _ = write!(s, "PROTO=TCP SPT={sport} DPT={dport} ");
            for (bit, n) in [
                (tcp_flags::URG, "URG "),
                (tcp_flags::ACK, "ACK "),
                (tcp_flags::PSH, "PSH "),
                (tcp_flags::RST, "RST "),
                (tcp_flags::SYN, "SYN "),
                (tcp_flags::FIN, "FIN "),
            ] {
                if flags & bit != 0 {
                    s.push_str(n);
                }
            }
        }
        L4Info::Udp { sport, dport } if !p.fragment => {
            let _ = write!(s, "PROTO=UDP SPT={sport} DPT={dport} ");
        }
        L4Info::Icmp { kind, code } if !p.fragment => {
            let _ = write!(s, "PROTO=ICMP TYPE={kind} CODE={code} ");
        }
        _ => match super::matches::proto_name(p.protocol) {
            Some(n) => {
                let _ = write!(s, "PROTO={} ", n.to_ascii_uppercase());
            }
            None => {
                let _ = write!(s, "PROTO={} ", p.protocol);
            }
        },
    }
    s.truncate(s.trim_end().len());
    s
}
