//! Packets in words: the flow specs `vswitch trace` and `[[expect]]` take
//! (`tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn`), built into frames, and the
//! one-line description of a parsed frame that traces print.
//!
//! A spec is `PROTO SRC -> DST [options]`:
//! - `tcp A:p -> B:q [syn|ack|fin|rst|psh|urg ...]` (flags default to `syn`),
//! - `udp A:p -> B:q`,
//! - `icmp A -> B [echo-request|echo-reply|TYPE/CODE]` (default echo-request),
//! - `arp A -> B` (a request: who has B, tell A),
//! - `hex 0242...`: a whole frame.
//!
//! Options: `vlan N`, `src-mac M`, `dst-mac M`, `ttl N`, `len N` (payload
//! bytes), and for tcp `seq N` and `ack N` (the acknowledgment number; it
//! sets the ACK flag). MACs not given are those the topology implies: the ingress
//! port's own, and the destination port's when it shares the network, else
//! the gateway's (the packet is routed). A macvlan/ipvlan parent (`--in
//! eth1.20`) sends as a host on its segment, tagged with the trunk's VLAN,
//! to ipvlan endpoints by the parent's MAC.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use packet::arp::{ArpOp, ArpRepr};
use packet::ethernet::{ethertype, EthernetRepr, HEADER_LEN};
use packet::icmpv4::{msg, Icmpv4Repr};
use packet::ipv4::{protocol, Ipv4Repr};
use packet::tcp::{TcpFlags, TcpRepr};
use packet::udp::UdpRepr;
use packet::{MacAddr, Parsed, VlanId, L3, L4};

use crate::config::{Config, Ipv4Net};
use crate::gateway::Gateway;
use crate::parent::{self, Kind};
use crate::topology_rules;

/// Where a spec's packet comes from: what its default MACs follow.
struct Ingress<'a> {
    mac: MacAddr,
    subnet: Ipv4Net,
    /// The switch's address there.
    switch_ip: Ipv4Addr,
    switch_mac: MacAddr,
    /// The ports sharing the segment (none for the uplink).
    network: Option<usize>,
    /// The network's driver when it has a parent.
    kind: Option<Kind>,
    /// The frame comes in by the network's parent, from its segment; with
    /// the parent's VLAN on a trunk.
    from_parent: Option<Option<VlanId>>,
    config: &'a Config,
}

impl Ingress<'_> {
    fn new<'a>(config: &'a Config, from: &str) -> Result<Ingress<'a>, String> {
        if let (Some(u), topology_rules::UPLINK) = (&config.uplink, from) {
            return Ok(Ingress {
                mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
                subnet: u.subnet,
                switch_ip: u.ip,
                switch_mac: u.mac.unwrap_or_else(|| Gateway::mac_for(u.ip)),
                network: None,
                kind: None,
                from_parent: None,
                config,
            });
        }
        let parent = config
            .networks
            .iter()
            .position(|n| n.parent.as_deref() == Some(from));
        let (index, mac) = match (parent, config.port(from)) {
            (Some(i), _) => (i, MacAddr::ZERO),
            (None, Some(p)) => (p.network_index, p.mac),
            (None, None) => return Err(format!("no port named {from:?}")),
        };
        let net = &config.networks[index];
        Ok(Ingress {
            // A port without a MAC of its own, or a host on the parent's segment.
            mac: if mac.is_zero() {
                MacAddr([0x02, 0, 0, 0, 0, 1])
            } else {
                mac
            },
            subnet: net.subnet,
            switch_ip: net.gateway,
            switch_mac: Gateway::mac_for(net.gateway),
            network: Some(index),
            kind: Kind::new(net.driver, net.mode),
            from_parent: parent.and(net.parent_link()).map(|(_, vid)| vid),
            config,
        })
    }

    /// The MAC a packet to `dst` is addressed to on this segment: a port
    /// sharing it, a neighbour derived as Docker derives MACs, or the
    /// switch (routed, or for the switch itself).
    fn dst_mac(&self, dst: Ipv4Addr) -> MacAddr {
        let port = self
            .config
            .ports
            .iter()
            .find(|p| Some(p.network_index) == self.network && p.ip == Some(dst));
        let ipvlan = matches!(self.kind, Some(Kind::IpvlanL2 | Kind::IpvlanL3));
        match port {
            // The segment sees ipvlan endpoints with the parent's MAC.
            Some(_) if ipvlan && self.from_parent.is_some() => parent::placeholder_mac(self.subnet),
            // ipvlan L3 endpoints send everything to the switch.
            _ if self.kind == Some(Kind::IpvlanL3) && self.from_parent.is_none() => self.switch_mac,
            Some(p) => p.mac,
            None if self.subnet.contains(dst) && dst != self.switch_ip => MacAddr::from_ipv4(dst),
            None => self.switch_mac,
        }
    }
}

/// Builds the frame `spec` describes, as it would arrive on port `from`
/// (or `uplink`).
pub fn build(spec: &str, config: &Config, from: &str) -> Result<Vec<u8>, String> {
    let ingress = Ingress::new(config, from)?;
    let words: Vec<&str> = spec.split_whitespace().collect();
    let (proto, rest) = words.split_first().ok_or("empty packet spec")?;
    if *proto == "hex" {
        return hex(rest);
    }
    let [src, arrow, dst, opts @ ..] = rest else {
        return Err(format!("expected `{proto} SRC -> DST`, got {spec:?}"));
    };
    if *arrow != "->" {
        return Err(format!(
            "expected `->` between source and destination, got {arrow:?}"
        ));
    }
    let mut o = Options::default();
    let mut words = opts.iter().peekable();
    while let Some(w) = words.next() {
        if *w == "ack" {
            if let Some(n) = words.peek().and_then(|n| n.parse::<u32>().ok()) {
                words.next();
                o.ack = Some(n);
                o.words.push("ack");
                continue;
            }
        }
        let mut value = |what: &str| {
            words
                .next()
                .copied()
                .ok_or_else(|| format!("{w} needs {what}"))
        };
        match *w {
            "vlan" => o.vlan = Some(parse_num(value("a VLAN id")?, "VLAN id")?),
            "src-mac" => o.src_mac = Some(mac(value("a MAC")?)?),
            "dst-mac" => o.dst_mac = Some(mac(value("a MAC")?)?),
            "ttl" => o.ttl = parse_num(value("a TTL")?, "TTL")?,
            "len" => o.len = parse_num(value("a length")?, "length")?,
            "seq" => o.seq = Some(parse_num(value("a sequence number")?, "sequence number")?),
            flag => o.words.push(flag),
        }
    }
    let ports_of = |s: &str| -> Result<(Ipv4Addr, u16), String> {
        let (ip, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("expected ADDRESS:PORT, got {s:?}"))?;
        Ok((addr(ip)?, parse_num(p, "port")?))
    };
    let src_mac = o.src_mac.unwrap_or(ingress.mac);
    let dst_mac_for = |dst: Ipv4Addr| o.dst_mac.unwrap_or_else(|| ingress.dst_mac(dst));
    let payload = vec![0u8; usize::from(o.len)];
    let frame = match *proto {
        "tcp" => {
            let ((s, sp), (d, dp)) = (ports_of(src)?, ports_of(dst)?);
            let flags = tcp_flags(&o.words)?;
            let seg = TcpRepr {
                src_port: sp,
                dst_port: dp,
                seq_number: o.seq.unwrap_or(1000),
                ack_number: match flags.contains(TcpFlags::ACK) {
                    true => o.ack.unwrap_or(1),
                    false => 0,
                },
                flags,
                window: 64240,
                payload: &payload,
            };
            let mut l4 = vec![0; seg.buffer_len()];
            seg.emit_v4(&mut l4, s, d);
            ip_frame(src_mac, dst_mac_for(d), s, d, protocol::TCP, o.ttl, &l4)
        }
        "udp" => {
            no_words(&o.words)?;
            let ((s, sp), (d, dp)) = (ports_of(src)?, ports_of(dst)?);
            let dgram = UdpRepr {
                src_port: sp,
                dst_port: dp,
                payload: &payload,
            };
            let mut l4 = vec![0; dgram.buffer_len()];
            dgram.emit_v4(&mut l4, s, d);
            ip_frame(src_mac, dst_mac_for(d), s, d, protocol::UDP, o.ttl, &l4)
        }
        "icmp" => {
            let (s, d) = (addr(src)?, addr(dst)?);
            let icmp = icmp(&o.words, &payload)?;
            let mut l4 = vec![0; icmp.buffer_len()];
            icmp.emit(&mut l4);
            ip_frame(src_mac, dst_mac_for(d), s, d, protocol::ICMP, o.ttl, &l4)
        }
        "arp" => {
            no_words(&o.words)?;
            let mut a = [0u8; 28];
            ArpRepr {
                op: ArpOp::Request,
                sender_mac: src_mac,
                sender_ip: addr(src)?,
                target_mac: MacAddr::ZERO,
                target_ip: addr(dst)?,
            }
            .emit(&mut a);
            let dst = o.dst_mac.unwrap_or(MacAddr::BROADCAST);
            ether(dst, src_mac, ethertype::ARP, &a)
        }
        other => {
            return Err(format!(
                "unknown protocol {other:?} (expected tcp, udp, icmp, arp or hex)"
            ))
        }
    };
    // From a trunk parent, frames carry its VLAN unless told otherwise.
    let trunk = ingress.from_parent.flatten().map(VlanId::get);
    Ok(match o.vlan.or(trunk) {
        Some(v) => {
            let mut f = frame;
            let vid = VlanId::try_new(v).ok_or_else(|| format!("VLAN {v} is not 1 to 4094"))?;
            packet::vlan::push_tag(&mut f, vid, 0);
            f
        }
        None => frame,
    })
}

struct Options<'a> {
    vlan: Option<u16>,
    src_mac: Option<MacAddr>,
    dst_mac: Option<MacAddr>,
    ttl: u8,
    len: u16,
    seq: Option<u32>,
    ack: Option<u32>,
    words: Vec<&'a str>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            vlan: None,
            src_mac: None,
            dst_mac: None,
            ttl: 64,
            len: 0,
            seq: None,
            ack: None,
            words: Vec::new(),
        }
    }
}

fn no_words(words: &[&str]) -> Result<(), String> {
    match words.first() {
        Some(w) => Err(format!("unknown option {w:?}")),
        None => Ok(()),
    }
}

fn tcp_flags(words: &[&str]) -> Result<TcpFlags, String> {
    if words.is_empty() {
        return Ok(TcpFlags::SYN);
    }
    let mut bits = 0;
    for w in words {
        for name in w.split(',') {
            bits |= match name {
                "syn" => TcpFlags::SYN.0,
                "ack" => TcpFlags::ACK.0,
                "fin" => TcpFlags::FIN.0,
                "rst" => TcpFlags::RST.0,
                "psh" => TcpFlags::PSH.0,
                "urg" => TcpFlags::URG.0,
                other => {
                    return Err(format!(
                        "unknown TCP flag {other:?} (syn, ack, fin, rst, psh, urg)"
                    ))
                }
            };
        }
    }
    Ok(TcpFlags(bits))
}

fn icmp<'a>(words: &[&str], data: &'a [u8]) -> Result<Icmpv4Repr<'a>, String> {
    let echo = |request| {
        Ok(if request {
            Icmpv4Repr::EchoRequest {
                ident: 1,
                seq_no: 1,
                data,
            }
        } else {
            Icmpv4Repr::EchoReply {
                ident: 1,
                seq_no: 1,
                data,
            }
        })
    };
    match words {
        [] | ["echo-request"] => echo(true),
        ["echo-reply"] => echo(false),
        [tc] => {
            let (t, c) = tc.split_once('/').unwrap_or((tc, "0"));
            let (t, c): (u8, u8) = (parse_num(t, "ICMP type")?, parse_num(c, "ICMP code")?);
            match t {
                msg::ECHO_REQUEST => echo(true),
                msg::ECHO_REPLY => echo(false),
                msg::DST_UNREACHABLE => Ok(Icmpv4Repr::DstUnreachable {
                    code: c,
                    invoking: data,
                }),
                msg::TIME_EXCEEDED => Ok(Icmpv4Repr::TimeExceeded {
                    code: c,
                    invoking: data,
                }),
                _ => Err(format!("ICMP type {t} cannot be built (use hex)")),
            }
        }
        _ => Err(format!("unknown ICMP options {words:?}")),
    }
}

fn ip_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut ip = vec![0u8; Ipv4Repr::HEADER_LEN + l4.len()];
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        ttl,
        payload_len: l4.len(),
        ident: 1,
        dont_frag: true,
        dscp_ecn: 0,
    }
    .emit(&mut ip[..Ipv4Repr::HEADER_LEN]);
    ip[Ipv4Repr::HEADER_LEN..].copy_from_slice(l4);
    ether(dst_mac, src_mac, ethertype::IPV4, &ip)
}

fn ether(dst: MacAddr, src: MacAddr, ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; HEADER_LEN + payload.len()];
    EthernetRepr {
        dst,
        src,
        ethertype: ty,
    }
    .emit(&mut f[..HEADER_LEN]);
    f[HEADER_LEN..].copy_from_slice(payload);
    f
}

fn hex(words: &[&str]) -> Result<Vec<u8>, String> {
    let digits: String = words.concat().replace(':', "");
    if !digits.len().is_multiple_of(2) {
        return Err("hex frame has an odd number of digits".into());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("bad hex {:?}", &digits[i..i + 2]))
        })
        .collect()
}

fn addr(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("expected an IPv4 address, got {s:?}"))
}

fn mac(s: &str) -> Result<MacAddr, String> {
    s.parse().map_err(|_| format!("expected a MAC, got {s:?}"))
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}

/// One line for a parsed frame: `tcp 10.0.0.2:40000 -> 10.0.0.3:80 [SYN]
/// (02:..:02 -> 02:..:03, 54 bytes)`.
pub fn describe(p: &Parsed, len: usize) -> String {
    let mut s = String::new();
    let _ = match (p.l3, p.l4) {
        (L3::Arp(a), _) => match a.op {
            ArpOp::Request => write!(s, "arp who-has {} tell {}", a.target_ip, a.sender_ip),
            _ => write!(s, "arp {} is-at {}", a.sender_ip, a.sender_mac),
        },
        (
            L3::Ipv4 { src, dst, .. },
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                ..
            },
        ) => {
            write!(s, "tcp {src}:{src_port} -> {dst}:{dst_port} [{flags}]")
        }
        (L3::Ipv4 { src, dst, .. }, L4::Udp { src_port, dst_port }) => {
            write!(s, "udp {src}:{src_port} -> {dst}:{dst_port}")
        }
        (L3::Ipv4 { src, dst, .. }, L4::Icmp { msg_type, code, .. }) => {
            write!(s, "icmp {src} -> {dst} type {msg_type} code {code}")
        }
        (
            L3::Ipv4 {
                src, dst, protocol, ..
            },
            _,
        ) => {
            write!(s, "ipv4 {src} -> {dst} protocol {protocol}")
        }
        (
            L3::Ipv6 {
                src, dst, protocol, ..
            },
            _,
        ) => {
            write!(s, "ipv6 {src} -> {dst} next header {protocol}")
        }
        (L3::Other, _) => write!(s, "ethertype {:#06x}", p.ethertype),
    };
    let _ = write!(s, " ({} -> {}", p.src, p.dst);
    if let Some(v) = p.vlan() {
        let _ = write!(s, ", vlan {v}");
    }
    let _ = write!(s, ", {len} bytes)");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TOPO: &str = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "db"
network = "front"
ip = "10.10.0.3"
"#;

    fn built(spec: &str) -> Result<Vec<u8>, String> {
        let c = crate::config::parse(TOPO, Path::new("t.toml")).expect("topology");
        build(spec, &c, "web")
    }

    fn described(spec: &str) -> String {
        let f = built(spec).expect(spec);
        describe(&Parsed::parse(&f).expect("parses"), f.len())
    }

    #[test]
    fn specs_build_the_frames_they_describe() {
        assert_eq!(
            described("tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn"),
            "tcp 10.10.0.2:40000 -> 10.10.0.3:5432 [SYN] (02:42:0a:0a:00:02 -> 02:42:0a:0a:00:03, 54 bytes)"
        );
        assert_eq!(
            described("udp 10.10.0.2:1 -> 10.10.0.9:2 len 10 vlan 5"),
            "udp 10.10.0.2:1 -> 10.10.0.9:2 (02:42:0a:0a:00:02 -> 02:42:0a:0a:00:09, vlan 5, 56 bytes)"
        );
        // Off the network: addressed to the gateway, to be routed.
        assert_eq!(
            described("icmp 10.10.0.2 -> 8.8.8.8"),
            "icmp 10.10.0.2 -> 8.8.8.8 type 8 code 0 (02:42:0a:0a:00:02 -> 02:42:0a:0a:00:01, 42 bytes)"
        );
        assert_eq!(
            described("arp 10.10.0.2 -> 10.10.0.1"),
            "arp who-has 10.10.0.1 tell 10.10.0.2 (02:42:0a:0a:00:02 -> ff:ff:ff:ff:ff:ff, 42 bytes)"
        );
        assert_eq!(
            described("tcp 10.10.0.2:1 -> 10.10.0.3:2 ack,psh src-mac 02:00:00:00:00:05"),
            "tcp 10.10.0.2:1 -> 10.10.0.3:2 [PSH,ACK] (02:00:00:00:00:05 -> 02:42:0a:0a:00:03, 54 bytes)"
        );
        let f = built("hex ffffffffffff 020000000001 88b5 00").expect("hex");
        assert_eq!(f.len(), 15);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, err) in [
            ("", "empty packet spec"),
            ("tcp 10.10.0.2:1 10.10.0.3:2", "expected `tcp SRC -> DST`"),
            ("tcp 10.10.0.2 -> 10.10.0.3:2", "expected ADDRESS:PORT"),
            (
                "tcp 10.10.0.2:1 -> 10.10.0.3:2 sin",
                "unknown TCP flag \"sin\"",
            ),
            ("sctp 1.2.3.4 -> 1.2.3.5", "unknown protocol \"sctp\""),
            (
                "udp 10.10.0.2:1 -> 10.10.0.3:2 vlan",
                "vlan needs a VLAN id",
            ),
            (
                "udp 10.10.0.2:1 -> 10.10.0.3:2 vlan 5000",
                "VLAN 5000 is not 1 to 4094",
            ),
            ("hex abc", "odd number"),
        ] {
            let e = built(spec).expect_err(spec);
            assert!(e.contains(err), "{spec:?}: {e}");
        }
    }
}
