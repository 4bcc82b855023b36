//! The fuzz targets: each takes arbitrary bytes and must neither panic nor
//! hang, whatever they are. Where a parser can also write what it read,
//! the target checks that what it wrote reads back the same.

use std::io::Cursor;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use packet::vnet::{self, VnetHdr};
use packet::{MacAddr, Parsed};
use vswitch::capture::CaptureReader;
use vswitch::config::{self, Config, Ipv4Net};
use vswitch::dhcp::{DhcpRepr, DhcpServer, ServerConfig};
use vswitch::dns::{tcp_frames, DnsServer, Transport};
use vswitch::netfilter::{Interfaces, Origin, Ruleset};
use vswitch::switch::RxInfo;
use vswitch::{Output, PortId, Switch, Timestamp};

/// A target: a name (its corpus directory), the function to call, and
/// tokens the mutator may splice in (for the text formats).
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    pub dict: &'static [&'static str],
}

const RULES_DICT: &[&str] = &[
    "*filter\n",
    "*nat\n",
    "*mangle\n",
    "*raw\n",
    "COMMIT\n",
    ":FORWARD DROP [0:0]\n",
    ":NEW - [0:0]\n",
    "-A FORWARD ",
    "-I INPUT 1 ",
    "-N X\n",
    "-j ",
    "ACCEPT",
    "DROP",
    "REJECT --reject-with tcp-reset",
    "DNAT --to-destination 10.0.0.1:80-90",
    "SNAT --to-source ",
    "MASQUERADE",
    "-p tcp ",
    "-p udp ",
    "--dport ",
    "--sport 1:65535 ",
    "-m conntrack --ctstate ",
    "NEW,ESTABLISHED",
    "-m multiport --dports 1,2:3 ",
    "-m limit --limit 3/min ",
    "-s 10.0.0.0/8 ",
    "! ",
    "-i web ",
    "-o db+ ",
    "-g X ",
    "-m comment --comment \"x\" ",
    "[1:2]",
    "\n",
    " ",
    "\"",
];

const CONFIG_DICT: &[&str] = &[
    "[switch]\n",
    "[[network]]\n",
    "[[port]]\n",
    "[uplink]\n",
    "[rules]\n",
    "[[expect]]\n",
    "[[fdb]]\n",
    "name = \"n\"\n",
    "network = \"n\"\n",
    "subnet = \"10.0.0.0/24\"\n",
    "ip = \"dhcp\"\n",
    "ip = \"10.0.0.2\"\n",
    "kind = \"afpacket\"\n",
    "kind = \"vxlan\"\n",
    "vlan = 4094\n",
    "trunk = [1, 4095]\n",
    "publish = [\"80:80/udp\"]\n",
    "mtu = 68\n",
    "driver = \"ipvlan\"\n",
    "mode = \"l3\"\n",
    "parent = \"eth0.5\"\n",
    "storm_pps = 0\n",
    "port_security = false\n",
    "text = \"\"\"\n*filter\nCOMMIT\n\"\"\"\n",
    "\n",
    "=",
    "\"",
];

pub const TARGETS: &[Target] = &[
    Target {
        name: "packet",
        run: packet,
        dict: &[],
    },
    Target {
        name: "switch",
        run: switch,
        dict: &[],
    },
    Target {
        name: "rules",
        run: rules,
        dict: RULES_DICT,
    },
    Target {
        name: "dns",
        run: dns,
        dict: &[],
    },
    Target {
        name: "dhcp",
        run: dhcp,
        dict: &[],
    },
    Target {
        name: "capture",
        run: capture,
        dict: &[],
    },
    Target {
        name: "config",
        run: config,
        dict: CONFIG_DICT,
    },
];

pub fn by_name(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The frame parser, the flow key, and the offload code a TAP frame meets:
/// the first 10 bytes as a virtio-net header for checksum completion and
/// segmentation of the rest.
pub fn packet(data: &[u8]) {
    if let Ok(p) = Parsed::parse(data) {
        let _ = p.flow_key();
    }
    let Some((hdr, frame)) = data.split_first_chunk::<{ vnet::HEADER_LEN }>() else {
        return;
    };
    let Ok(hdr) = VnetHdr::parse(hdr) else {
        return;
    };
    let mut copy = frame.to_vec();
    let _ = vnet::complete_checksum(&mut copy, &hdr);
    let mut scratch = vec![0u8; 65_536 + 128];
    let mut segments = 0usize;
    let _ = vnet::segment(frame, &hdr, &mut scratch, |s| {
        segments += 1;
        let _ = Parsed::parse(s);
    });
}

/// The pipeline on a topology with everything on: port security, storm
/// control, VLAN trunks, the gateway's services, rules in every table,
/// conntrack with a small limit, NAT out of and into the uplink.
pub const SWITCH_TOPO: &str = r#"
[switch]
name = "fuzz"
fdb_max = 16
conntrack_max = 32
storm_pps = 20

[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[network]]
name = "back"
subnet = "10.20.0.0/24"
vlan = 20

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"
publish = ["8080:80/tcp", "5353:53/udp"]
aliases = ["www"]

[[port]]
name = "db"
network = "front"
ip = "10.10.0.3"

[[port]]
name = "cache"
network = "front"
ip = "dhcp"

[[port]]
name = "open"
network = "front"
ip = "10.10.0.9"
port_security = false
storm_pps = 0

[[port]]
name = "trunk"
network = "back"
kind = "afpacket"
interface = "veth-t"
vlan = 1
trunk = [20, 30]

[[port]]
name = "x"
network = "back"
ip = "10.20.0.2"

[uplink]
kind = "afpacket"
interface = "veth-up"
ip = "192.0.2.10/24"
gateway = "192.0.2.1"
mac = "02:00:00:00:0a:0a"
dns = ["192.0.2.53"]

[rules]
text = """
*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p udp --dport 9 -j NOTRACK
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 22 -j TOS --set-tos 0x10
-A POSTROUTING -o db -j TTL --ttl-dec 1
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i open -p tcp --dport 81 -j DNAT --to-destination 10.10.0.3:5432
-A PREROUTING -i open -p udp --dport 53 -j REDIRECT --to-ports 53
-A POSTROUTING -s 10.20.0.0/24 -o uplink -p udp -j SNAT --to-source 192.0.2.10:20000-20010
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A INPUT -p icmp --icmp-type echo-request -m limit --limit 5/sec -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp --dport 23 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp --dport 24 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -p tcp -m multiport --dports 5432,80 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -m length --length 1000:65535 -j LOG --log-prefix "big "
COMMIT
"""
"#;

fn switch_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        config::parse(SWITCH_TOPO, Path::new("fuzz.toml"))
            .unwrap_or_else(|e| panic!("the fuzz topology is invalid:\n{e}"))
    })
}

/// One input is a conversation: records of `[port][flags][len lo][len hi]`
/// and `len` bytes of frame (the last record takes what is left). Flags:
/// bit 0 the frame's checksum is partial, bit 1 trace it, bits 2-7 how
/// far the clock moves first (in 250 ms steps). A fresh switch each time,
/// so an input replays the same.
pub fn switch(data: &[u8]) {
    let mut sw = match Switch::new(switch_config()) {
        Ok(sw) => sw,
        Err(e) => panic!("the fuzz topology's rules are invalid:\n{e}"),
    };
    let ports = sw.ports().len();
    let mut now = Timestamp::from_secs(1);
    let mut out = Output::new();
    for record in records(data) {
        let ingress = PortId((usize::from(record.port) % ports) as u16);
        now = now.plus(Duration::from_millis(250) * u32::from(record.flags >> 2));
        let mut frame = record.frame.to_vec();
        out.clear();
        let rx = RxInfo {
            partial_csum: record.flags & 1 != 0,
            ..RxInfo::default()
        };
        if record.flags & 2 != 0 {
            let _ = sw.trace(now, ingress, &mut frame, &mut out);
        } else {
            let _ = sw.process_rx(now, ingress, &mut frame, &mut out, rx);
        }
        for e in out.emits() {
            let _ = Parsed::parse(&out.to_vec(e, &frame));
        }
        sw.expire(now);
    }
}

/// One frame of a `switch` input.
pub struct Record<'a> {
    pub port: u8,
    pub flags: u8,
    pub frame: &'a [u8],
}

pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&[port, flags, lo, hi], rest) = data.split_first_chunk::<4>()?;
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
        let (frame, rest) = rest.split_at(len);
        data = rest;
        Some(Record { port, flags, frame })
    })
}

/// Encodes frames as a `switch` input.
pub fn encode_records<'a>(frames: impl IntoIterator<Item = (u8, u8, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (port, flags, frame) in frames {
        let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[port, flags]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame[..usize::from(len)]);
    }
    out
}

/// The iptables-restore parser; what it accepts prints as `iptables-save`
/// text that parses again to the same rules.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ifaces = Interfaces {
        ports: vec!["web".into(), "db".into(), "uplink".into()],
        networks: vec!["front".into()],
    };
    let origin = Origin::new("fuzz.rules");
    let Ok(rules) = Ruleset::parse(text, &origin, &ifaces) else {
        return;
    };
    let saved = rules.save(None);
    match Ruleset::parse(&saved, &origin, &ifaces) {
        Ok(again) => assert_eq!(again.save(None), saved, "save is not stable"),
        Err(e) => panic!("saved rules do not parse:\n{saved}\n{e}"),
    }
}

/// The DNS server's answers over UDP and TCP, and the TCP framing.
pub fn dns(data: &[u8]) {
    static SERVER: OnceLock<DnsServer> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let mut s = DnsServer::new();
        let records = vec![
            ("web".to_owned(), Ipv4Addr::new(10, 10, 0, 2)),
            ("www".to_owned(), Ipv4Addr::new(10, 10, 0, 2)),
            ("db".to_owned(), Ipv4Addr::new(10, 10, 0, 3)),
        ];
        let _ = s.set_records(0, records);
        s.set_upstream(true);
        s
    });
    let _ = server.answer(0, data, Transport::Udp);
    let _ = server.answer(1, data, Transport::Tcp);
    let mut frames = tcp_frames(data);
    for msg in frames.by_ref() {
        let _ = server.answer(0, msg, Transport::Tcp);
    }
    assert!(frames.consumed() <= data.len());
}

/// The DHCP message parser, round-tripped, and the server's answer.
pub fn dhcp(data: &[u8]) {
    if let Ok(m) = DhcpRepr::parse(data) {
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        match DhcpRepr::parse(&b) {
            Ok(again) => assert_eq!(again, m, "emit does not read back"),
            Err(e) => panic!("an emitted message does not parse: {e:?}"),
        }
    }
    let subnet: Ipv4Net = "10.10.0.0/24".parse().expect("subnet");
    let mut server = DhcpServer::new(ServerConfig::new(Ipv4Addr::new(10, 10, 0, 1), subnet));
    let client = MacAddr([0x02, 0x42, 10, 10, 0, 4]);
    server.reserve(client, Ipv4Addr::new(10, 10, 0, 4), Some("cache".into()));
    let _ = server.handle(Timestamp::from_secs(1), client, data);
    let _ = server.handle(Timestamp::from_secs(2), MacAddr([2, 0, 0, 0, 0, 9]), data);
}

/// The pcap and pcapng readers, to the end of the capture or its first error.
pub fn capture(data: &[u8]) {
    let Ok(mut r) = CaptureReader::new(Cursor::new(data)) else {
        return;
    };
    while let Ok(Some(p)) = r.next_packet() {
        assert!(p.data.len() <= data.len());
    }
}

/// topo.toml parsing and validation, and building a switch from what passes.
/// The config names no directory that exists, so a rules `file` is read
/// only when it is absolute.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = config::parse(text, Path::new("/nonexistent/fuzz/topo.toml")) {
        let _ = Switch::new(&c);
    }
}
