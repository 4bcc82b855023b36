//! Tests for the config stage: the CONTRACT.md example, then one test per
//! validation error asserting the exact `file:line:col: message`.

use std::net::Ipv4Addr;
use std::path::Path;

use packet::{MacAddr, VlanId};

use super::*;

/// The topo.toml example from CONTRACT.md, verbatim.
const CONTRACT: &str = r#"[switch]
name = "lab"                    # used for the control socket /run/vswitch/<name>.sock
threads = 1                     # datapath threads, each pinned to a core

[[network]]                     # like `docker network create`
name = "front"
driver = "bridge"               # bridge | macvlan | ipvlan
subnet = "10.10.0.0/24"
gateway = "10.10.0.1"           # the switch itself answers ARP/ICMP/DHCP/DNS here
# vlan = 10                     # 802.1Q tag when carried on a trunk / uplink
# icc = true                    # false: endpoints on this network may not talk to each other
# internal = false              # true: no traffic to or from the uplink
# masquerade = true             # SNAT to the uplink address for outbound traffic

[[port]]
name = "web"                    # port name: what -i/-o match in rules
network = "front"
kind = "tap"                    # tap | afpacket | vxlan
netns = "web"                   # created if missing; the TAP is moved in and named eth0
ip = "10.10.0.2"                # optional: the network's IPAM allocates one when absent
# mac = "02:42:0a:0a:00:02"     # optional: derived from the IP like Docker when absent
# publish = ["8080:80/tcp"]     # uplink-address:8080 -> this port's 10.10.0.2:80

[[port]]
name = "cache"
network = "front"
kind = "tap"
netns = "cache"
ip = "dhcp"                     # leave eth0 unconfigured; the switch's DHCP server hands out the IPAM address
# aliases = ["redis"]           # extra DNS names

[[port]]
name = "db"
network = "front"
kind = "tap"
netns = "db"
ip = "10.10.0.3"

[[port]]                        # overlay: this network continues on another host
name = "to-host2"
network = "front"
kind = "vxlan"                  # RFC 7348; interoperates with Linux vxlan devices
vni = 42
remote = "198.18.0.2"           # the peer VTEP: Linux vxlan, another vswitch, any RFC 7348 VTEP
# local = "198.18.0.1"          # address the UDP socket binds (port 4789 unless given)

[[network]]                     # endpoints appear on a host interface's segment
name = "lan"
driver = "macvlan"              # own MAC per endpoint; ipvlan: endpoints share the parent's MAC
# mode = "l2"                   # ipvlan only: l2 | l3 (l3: the switch routes, no broadcast to the parent)
parent = "veth-lan"             # host interface, opened with AF_PACKET; "veth-lan.20" = 802.1q trunk, VLAN 20
subnet = "192.168.77.0/24"
gateway = "192.168.77.1"        # the external router on that segment

[uplink]                        # the way out, optional
kind = "afpacket"               # an existing host interface, opened with AF_PACKET
interface = "veth-out"
ip = "192.0.2.10/24"            # the switch's own address there (ARP answered by the switch)
gateway = "192.0.2.1"

[[expect]]                      # firewall unit tests: `vswitch check` evaluates them offline
from = "web"                    # ingress port
packet = "tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn"
verdict = "accept"              # accept | drop | reject
# to = "db"                     # optional: the egress port it must leave by

[rules]                         # iptables-restore syntax; tables filter, nat, mangle, raw
text = """
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -i web -o db -p tcp --dport 5432 -j ACCEPT
-A FORWARD -o db -j DROP
COMMIT
"""
# file = "rules.v4"             # or a file, relative to topo.toml
"#;

fn ok(text: &str) -> Config {
    match parse(text, Path::new("topo.toml")) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("topo.toml")) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// The single error `text` produces.
fn error(text: &str) -> String {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.remove(0)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// Four lines; what tests append starts on line 5.
const BASE: &str = r#"[[network]]
name = "front"
subnet = "10.10.0.0/24"
gateway = "10.10.0.1"
"#;

fn with_base(rest: &str) -> String {
    format!("{BASE}{rest}")
}

#[test]
fn contract_example() {
    let c = ok(CONTRACT);
    assert_eq!(
        c.switch,
        SwitchConfig {
            name: "lab".into(),
            threads: 1,
            fdb_aging_secs: 300,
            fdb_max: 8192,
            conntrack_max: 262_144,
            storm_pps: 1000,
            control_group: None,
            busy_poll_us: 0,
            cpus: Vec::new(),
        }
    );

    assert_eq!(c.networks.len(), 2);
    let front = &c.networks[0];
    assert_eq!(
        *front,
        Network {
            name: "front".into(),
            driver: Driver::Bridge,
            subnet: "10.10.0.0/24".parse().unwrap(),
            gateway: ip("10.10.0.1"),
            vlan: None,
            icc: true,
            internal: false,
            masquerade: true,
            mode: IpvlanMode::L2,
            parent: None,
            // A vxlan port carries the network: room for the encapsulation.
            mtu: 1450,
        }
    );
    let lan = &c.networks[1];
    assert_eq!(lan.name, "lan");
    assert_eq!(lan.driver, Driver::Macvlan);
    assert_eq!(lan.parent.as_deref(), Some("veth-lan"));
    assert_eq!(lan.subnet.to_string(), "192.168.77.0/24");
    assert_eq!(lan.gateway, ip("192.168.77.1"));

    let names: Vec<_> = c.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "cache", "db", "to-host2"]);
    let web = &c.ports[0];
    assert_eq!(
        *web,
        Port {
            name: "web".into(),
            network: "front".into(),
            network_index: 0,
            kind: PortKind::Tap,
            netns: Some("web".into()),
            interface: None,
            ip: Some(ip("10.10.0.2")),
            dhcp: false,
            mac: mac("02:42:0a:0a:00:02"),
            publish: vec![],
            aliases: vec![],
            vlan: None,
            trunk: vec![],
            vni: None,
            remote: vec![],
            local: None,
            learn_peers: false,
            key: None,
            mtu: 1450,
            port_security: true,
            storm_pps: None,
        }
    );
    // Statics (web .2, db .3) are reserved before "dhcp" ports are allocated.
    let cache = &c.ports[1];
    assert_eq!(cache.ip, Some(ip("10.10.0.4")));
    assert!(cache.dhcp);
    assert_eq!(cache.mac, mac("02:42:0a:0a:00:04"));
    assert_eq!(cache.netns.as_deref(), Some("cache"));
    let db = &c.ports[2];
    assert_eq!((db.ip, db.dhcp), (Some(ip("10.10.0.3")), false));
    let vx = &c.ports[3];
    assert_eq!(vx.kind, PortKind::Vxlan);
    assert_eq!(vx.vni, Some(42));
    assert_eq!(vx.remote, [ip("198.18.0.2")]);
    assert_eq!(
        (vx.ip, vx.mac, vx.netns.as_deref()),
        (None, MacAddr::ZERO, None)
    );
    assert_eq!(vx.local, None);

    assert_eq!(
        c.uplink,
        Some(Uplink {
            kind: PortKind::Afpacket,
            interface: "veth-out".into(),
            ip: ip("192.0.2.10"),
            subnet: "192.0.2.0/24".parse().unwrap(),
            gateway: Some(ip("192.0.2.1")),
            mac: None,
            dns: vec![],
        })
    );

    assert_eq!(
        c.expects,
        [Expect {
            from: "web".into(),
            packet: "tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn".into(),
            verdict: Verdict::Accept,
            to: None,
            line: 61,
        }]
    );

    let Some(RulesSource::Text { text, line }) = &c.rules else {
        panic!("inline rules expected, got {:?}", c.rules);
    };
    assert_eq!(*line, 69);
    assert_eq!(CONTRACT.lines().nth(line - 1), Some("*filter"));
    assert!(text.starts_with("*filter\n:FORWARD ACCEPT [0:0]\n"));
    assert!(text.ends_with("COMMIT\n"));
    assert!(c.fdb.is_empty());
    assert_eq!(c.source.path, Path::new("topo.toml"));
    assert_eq!(c.source.text, CONTRACT);
    assert_eq!(c.port("db").map(|p| p.network_index), Some(0));
    assert_eq!(c.network("lan").map(|n| n.mtu), Some(1500));
}

#[test]
fn defaults_and_optional_keys() {
    let c = ok(&with_base(
        r#"vlan = 10
mtu = 9000

[switch]
name = "s1"
threads = 4
fdb_aging = 60
fdb_max = 100
conntrack_max = 5000
storm_pps = 200

[[port]]
name = "a"
network = "front"
mac = "02:00:00:00:00:aa"
publish = ["8080:80/tcp", "127.0.0.1:5353:53/udp", "9000-9001:9000-9001"]
aliases = ["alpha", "a.internal"]
trunk = [20, 30]
port_security = false
storm_pps = 0

[[port]]
name = "b"
network = "front"
vlan = 11
mtu = 1400

[[port]]
name = "up0"
network = "front"
kind = "afpacket"
interface = "eth1"

[[port]]
name = "tun"
network = "front"
kind = "vxlan"
vni = 7
remote = ["198.18.0.2", "198.18.0.3"]
local = "198.18.0.1"

[[fdb]]
mac = "02:00:00:00:00:bb"
port = "b"
vlan = 11
"#,
    ));
    assert_eq!(c.switch.name, "s1");
    assert_eq!(c.switch.threads, 4);
    assert_eq!(c.switch.fdb_aging_secs, 60);
    assert_eq!(c.switch.fdb_max, 100);
    assert_eq!(c.switch.conntrack_max, 5000);
    assert_eq!(c.switch.storm_pps, 200);
    assert_eq!(c.networks[0].vlan, VlanId::try_new(10));
    assert_eq!(c.networks[0].mtu, 9000);

    let a = &c.ports[0];
    // No netns: a tap port gets one named after itself.
    assert_eq!(a.netns.as_deref(), Some("a"));
    assert_eq!(a.ip, Some(ip("10.10.0.2")));
    assert_eq!(a.mac, mac("02:00:00:00:00:aa"));
    assert_eq!(a.vlan, VlanId::try_new(10));
    assert_eq!(
        a.trunk,
        [VlanId::try_new(20).unwrap(), VlanId::try_new(30).unwrap()]
    );
    assert_eq!(
        a.publish,
        [
            Publish {
                host_ip: None,
                host_ports: (8080, 8080),
                ports: (80, 80),
                protocol: PublishProtocol::Tcp
            },
            Publish {
                host_ip: Some(ip("127.0.0.1")),
                host_ports: (5353, 5353),
                ports: (53, 53),
                protocol: PublishProtocol::Udp
            },
            Publish {
                host_ip: None,
                host_ports: (9000, 9001),
                ports: (9000, 9001),
                protocol: PublishProtocol::Tcp
            },
        ]
    );
    assert_eq!(a.aliases, ["alpha", "a.internal"]);
    assert_eq!(a.mtu, 9000);
    assert!(!a.port_security);
    assert_eq!(a.storm_pps, Some(0));
    assert_eq!(c.ports[1].storm_pps, None);

    let b = &c.ports[1];
    assert_eq!(
        (b.ip, b.vlan, b.mtu),
        (Some(ip("10.10.0.3")), VlanId::try_new(11), 1400)
    );
    assert_eq!(b.mac, mac("02:42:0a:0a:00:03"));

    let up = &c.ports[2];
    assert_eq!(up.interface.as_deref(), Some("eth1"));
    assert_eq!(
        (up.ip, up.mac, up.netns.as_deref()),
        (None, MacAddr::ZERO, None)
    );

    let tun = &c.ports[3];
    assert_eq!(tun.remote, [ip("198.18.0.2"), ip("198.18.0.3")]);
    assert_eq!(tun.local, Some("198.18.0.1:4789".parse().unwrap()));

    assert_eq!(
        c.fdb,
        [StaticFdb {
            mac: mac("02:00:00:00:00:bb"),
            port: "b".into(),
            vlan: VlanId::try_new(11),
            remote: None,
        }]
    );
}

#[test]
fn empty_file_is_a_switch_with_defaults() {
    let c = ok("");
    assert_eq!(c.switch, SwitchConfig::default());
    assert!(c.networks.is_empty() && c.ports.is_empty() && c.uplink.is_none());
}

#[test]
fn network_defaults_gateway_to_first_host() {
    let c = ok("[[network]]\nname = \"n\"\nsubnet = \"10.1.0.0/16\"\n");
    assert_eq!(c.networks[0].gateway, ip("10.1.0.1"));
}

#[test]
fn ipvlan_mode_and_parent() {
    let c = ok(r#"[[network]]
name = "iv"
driver = "ipvlan"
mode = "l3"
parent = "veth-lan.20"
subnet = "10.2.0.0/24"
"#);
    assert_eq!(c.networks[0].mode, IpvlanMode::L3);
    assert_eq!(c.networks[0].parent.as_deref(), Some("veth-lan.20"));
}

#[test]
fn dhcp_is_refused_on_ipvlan_l3() {
    assert_eq!(
        error(
            r#"[[network]]
name = "iv"
driver = "ipvlan"
mode = "l3"
parent = "veth-lan"
subnet = "10.2.0.0/24"

[[port]]
name = "a"
network = "iv"
ip = "dhcp"
"#
        ),
        "topo.toml:11:6: port \"a\": ip = \"dhcp\" cannot work on an ipvlan l3 network, where no broadcast crosses to a DHCP server; give the port an address"
    );
}

// ---- syntax and serde errors ----

#[test]
fn toml_syntax_error() {
    assert_eq!(
        error("[switch]\nname = \"x\" = 1\n"),
        "topo.toml:2:12: expected newline, `#`"
    );
}

#[test]
fn unknown_key() {
    assert_eq!(
        error("[switch]\nname = \"x\"\nbogus = 2\n"),
        "topo.toml:3:1: unknown field `bogus`, expected one of `name`, `threads`, `fdb_aging`, `fdb_max`, `conntrack_max`, `storm_pps`, `control_group`, `busy_poll_us`, `cpus`"
    );
    assert_eq!(
        error(&with_base("colour = \"blue\"\n")),
        "topo.toml:5:1: unknown field `colour`, expected one of `name`, `driver`, `subnet`, `gateway`, `vlan`, `icc`, `internal`, `masquerade`, `mode`, `parent`, `mtu`"
    );
}

#[test]
fn unknown_table() {
    assert_eq!(
        error("[[ports]]\nname = \"a\"\n"),
        "topo.toml:1:3: unknown field `ports`, expected one of `switch`, `network`, `port`, `uplink`, `expect`, `rules`, `fdb`"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\n"),
        "topo.toml:1:1: missing field `subnet`"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        error("[switch]\nthreads = \"two\"\n"),
        "topo.toml:2:11: invalid type: string \"two\", expected i64"
    );
}

// ---- [switch] ----

#[test]
fn switch_name_must_be_a_safe_file_name() {
    assert_eq!(
        error("[switch]\nname = \"../x\"\n"),
        "topo.toml:2:8: switch: name \"../x\" may only contain letters, digits, '_', '.' and '-'"
    );
    assert_eq!(
        error("[switch]\nname = \"..\"\n"),
        "topo.toml:2:8: switch: name \"..\" cannot be \".\" or \"..\""
    );
    assert_eq!(
        error(&format!("[switch]\nname = \"{}\"\n", "x".repeat(33))),
        format!(
            "topo.toml:2:8: switch: name \"{}\" must be 1 to 32 characters long",
            "x".repeat(33)
        )
    );
}

#[test]
fn switch_numbers_in_range() {
    assert_eq!(
        errors("[switch]\nthreads = 0\nfdb_aging = -1\nfdb_max = 0\nstorm_pps = -5\nbusy_poll_us = 1000001\n"),
        [
            "topo.toml:2:11: switch: threads must be 1 to 64, not 0",
            "topo.toml:3:13: switch: fdb_aging must be at least 0, not -1",
            "topo.toml:4:11: switch: fdb_max must be at least 1, not 0",
            "topo.toml:5:13: switch: storm_pps must be 0 to 10000000, not -5",
            "topo.toml:6:16: switch: busy_poll_us must be 0 to 1000000, not 1000001",
        ]
    );
    assert_eq!(
        ok("[switch]\nbusy_poll_us = 20000\n").switch.busy_poll_us,
        20_000
    );
}

#[test]
fn switch_cpus_are_cpu_numbers_each_once() {
    assert_eq!(ok("[switch]\ncpus = [1, 3]\n").switch.cpus, [1, 3]);
    assert!(ok("[switch]\n").switch.cpus.is_empty());
    assert_eq!(
        errors("[switch]\ncpus = [1, -1, 1, 1024]\n"),
        [
            "topo.toml:2:12: switch: cpus entry must be 0 to 1023, not -1",
            "topo.toml:2:16: switch: cpus lists CPU 1 twice",
            "topo.toml:2:19: switch: cpus entry must be 0 to 1023, not 1024",
        ]
    );
}

#[test]
fn control_group_is_resolved_on_this_host() {
    let c = ok("[switch]\ncontrol_group = \"root\"\n");
    assert_eq!(
        c.switch.control_group,
        Some(ControlGroup {
            name: "root".into(),
            gid: 0
        })
    );
    assert_eq!(
        errors("[switch]\nname = \"x\"\ncontrol_group = \"vswitch-no-such-group\"\n"),
        ["topo.toml:3:17: switch: control_group \"vswitch-no-such-group\" is not a group on this host"]
    );
    assert_eq!(
        errors("[switch]\ncontrol_group = \"a\\u0000b\"\n"),
        ["topo.toml:2:17: switch: control_group \"a\\0b\": cannot look it up: NUL in group name"]
    );
}

// ---- [[network]] ----

#[test]
fn bad_cidr() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.10.0/24\"\n"),
        "topo.toml:3:10: network \"n\": invalid subnet \"10.10.0/24\": expected a.b.c.d/len, like 10.0.0.0/24"
    );
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.10.0.0/33\"\n"),
        "topo.toml:3:10: network \"n\": invalid subnet \"10.10.0.0/33\": the prefix length must be 0 to 32"
    );
}

#[test]
fn subnet_with_host_bits() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.0.0.5/24\"\n"),
        "topo.toml:3:10: network \"n\": invalid subnet \"10.0.0.5/24\": host bits are set; the network address is 10.0.0.0/24"
    );
}

#[test]
fn subnet_too_small() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.0.0.0/31\"\n"),
        "topo.toml:3:10: network \"n\": subnet 10.0.0.0/31 is too small: the gateway and a port need at least a /30"
    );
}

#[test]
fn gateway_outside_subnet() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.10.0.0/24\"\ngateway = \"10.20.0.1\"\n"),
        "topo.toml:4:11: network \"n\": gateway 10.20.0.1 is outside subnet 10.10.0.0/24"
    );
}

#[test]
fn gateway_is_network_or_broadcast_address() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.10.0.0/24\"\ngateway = \"10.10.0.0\"\n"),
        "topo.toml:4:11: network \"n\": gateway 10.10.0.0 is the network address of subnet 10.10.0.0/24"
    );
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.10.0.0/24\"\ngateway = \"10.10.0.255\"\n"),
        "topo.toml:4:11: network \"n\": gateway 10.10.0.255 is the broadcast address of subnet 10.10.0.0/24"
    );
}

#[test]
fn gateway_not_an_address() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nsubnet = \"10.10.0.0/24\"\ngateway = \"10.10.0\"\n"),
        "topo.toml:4:11: network \"n\": gateway: invalid \"10.10.0\": expected an IPv4 address like 10.0.0.1"
    );
}

#[test]
fn duplicate_network_name() {
    assert_eq!(
        error(&with_base(
            "\n[[network]]\nname = \"front\"\nsubnet = \"10.20.0.0/24\"\n"
        )),
        "topo.toml:7:8: duplicate network name \"front\" (first defined on line 2)"
    );
}

#[test]
fn network_name_checks() {
    assert_eq!(
        error("[[network]]\nname = \"my net\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:2:8: network name \"my net\" may only contain letters, digits, '_', '.' and '-'"
    );
    assert_eq!(
        error("[[network]]\nname = \"uplink\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:2:8: network name \"uplink\" is reserved: rules use it for the uplink"
    );
}

#[test]
fn overlapping_subnets() {
    assert_eq!(
        error(&with_base("\n[[network]]\nname = \"big\"\nsubnet = \"10.0.0.0/8\"\n")),
        "topo.toml:8:10: network \"big\": subnet 10.0.0.0/8 overlaps subnet 10.10.0.0/24 of network \"front\""
    );
}

#[test]
fn unknown_driver() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\ndriver = \"overlay\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:3:10: network \"n\": unknown driver \"overlay\" (expected bridge, macvlan or ipvlan)"
    );
}

#[test]
fn parent_required_for_macvlan_refused_for_bridge() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\ndriver = \"macvlan\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:3:10: network \"n\": driver \"macvlan\" needs a parent (the host interface to attach to)"
    );
    assert_eq!(
        error("[[network]]\nname = \"n\"\nparent = \"eth0\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:3:10: network \"n\": parent only applies to drivers macvlan and ipvlan"
    );
    assert_eq!(
        error("[[network]]\nname = \"n\"\ndriver = \"ipvlan\"\nparent = \"a-very-long-ifname\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:4:10: network \"n\": parent \"a-very-long-ifname\" must be 1 to 15 characters long"
    );
}

#[test]
fn mode_only_for_ipvlan() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\nmode = \"l3\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:3:8: network \"n\": mode only applies to driver \"ipvlan\""
    );
    assert_eq!(
        error("[[network]]\nname = \"n\"\ndriver = \"ipvlan\"\nparent = \"eth0\"\nmode = \"l4\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:5:8: network \"n\": unknown ipvlan mode \"l4\" (expected l2 or l3)"
    );
}

#[test]
fn network_vlan_and_mtu_ranges() {
    assert_eq!(
        errors(&with_base("vlan = 4095\nmtu = 60\n")),
        [
            "topo.toml:5:8: network \"front\": vlan must be 1 to 4094, not 4095",
            "topo.toml:6:7: network \"front\": mtu must be 68 to 65535, not 60",
        ]
    );
}

// ---- [[port]] ----

#[test]
fn duplicate_port_name() {
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\n[[port]]\nname = \"web\"\nnetwork = \"front\"\n"
        )),
        "topo.toml:9:8: duplicate port name \"web\" (first defined on line 6)"
    );
}

#[test]
fn port_name_must_be_interface_like() {
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"a-sixteen-chars!\"\nnetwork = \"front\"\n"
        )),
        "topo.toml:6:8: port name \"a-sixteen-chars!\" must be 1 to 15 characters long"
    );
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"we/b\"\nnetwork = \"front\"\n"
        )),
        "topo.toml:6:8: port name \"we/b\" may only contain letters, digits, '_', '.' and '-'"
    );
    assert_eq!(
        error(&with_base("[[port]]\nname = \"\"\nnetwork = \"front\"\n")),
        "topo.toml:6:8: port name \"\" must be 1 to 15 characters long"
    );
}

#[test]
fn port_name_clashing_with_network_or_uplink() {
    assert_eq!(
        error(&with_base("[[port]]\nname = \"front\"\nnetwork = \"front\"\n")),
        "topo.toml:6:8: port name \"front\" is also a network name; -i/-o in rules could not tell them apart"
    );
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"uplink\"\nnetwork = \"front\"\n"
        )),
        "topo.toml:6:8: port name \"uplink\" is reserved: rules use it for the uplink"
    );
}

#[test]
fn netns_must_be_safe() {
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\nnetns = \"..\"\n"
        )),
        "topo.toml:8:9: port \"web\": netns \"..\" cannot be \".\" or \"..\""
    );
    assert_eq!(
        error(&with_base("[[port]]\nname = \"web\"\nnetwork = \"front\"\nnetns = \"a/b\"\n")),
        "topo.toml:8:9: port \"web\": netns \"a/b\" may only contain letters, digits, '_', '.' and '-'"
    );
}

#[test]
fn unknown_network() {
    assert_eq!(
        error(&with_base("[[port]]\nname = \"web\"\nnetwork = \"back\"\n")),
        "topo.toml:7:11: port \"web\": unknown network \"back\""
    );
}

#[test]
fn unknown_kind() {
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\nkind = \"veth\"\n"
        )),
        "topo.toml:8:8: port \"web\": unknown kind \"veth\" (expected tap, afpacket or vxlan)"
    );
}

#[test]
fn ip_outside_subnet() {
    assert_eq!(
        error(&with_base("[[port]]\nname = \"web\"\nnetwork = \"front\"\nip = \"10.20.0.2\"\n")),
        "topo.toml:8:6: port \"web\": ip 10.20.0.2 is outside subnet 10.10.0.0/24 of network \"front\""
    );
}

#[test]
fn ip_reserved() {
    let port = |addr: &str| {
        with_base(&format!(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\nip = \"{addr}\"\n"
        ))
    };
    assert_eq!(
        error(&port("10.10.0.1")),
        "topo.toml:8:6: port \"web\": ip 10.10.0.1 is the gateway of network \"front\""
    );
    assert_eq!(
        error(&port("10.10.0.0")),
        "topo.toml:8:6: port \"web\": ip 10.10.0.0 is the network address of network \"front\""
    );
    assert_eq!(
        error(&port("10.10.0.255")),
        "topo.toml:8:6: port \"web\": ip 10.10.0.255 is the broadcast address of network \"front\""
    );
    assert_eq!(
        error(&port("10.10.0")),
        "topo.toml:8:6: port \"web\": invalid ip \"10.10.0\": expected an IPv4 address like 10.0.0.2, or \"dhcp\""
    );
}

#[test]
fn duplicate_ip() {
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\nip = \"10.10.0.2\"\n\
             [[port]]\nname = \"db\"\nnetwork = \"front\"\nip = \"10.10.0.2\"\n"
        )),
        "topo.toml:12:6: port \"db\": ip 10.10.0.2 is already used by port \"web\""
    );
}

#[test]
fn static_ip_wins_over_earlier_dynamic_port() {
    // "auto" comes first in the file but statics are reserved first.
    let c = ok(&with_base(
        "[[port]]\nname = \"auto\"\nnetwork = \"front\"\n\
         [[port]]\nname = \"web\"\nnetwork = \"front\"\nip = \"10.10.0.2\"\n",
    ));
    assert_eq!(c.ports[0].ip, Some(ip("10.10.0.3")));
    assert_eq!(c.ports[1].ip, Some(ip("10.10.0.2")));
}

#[test]
fn duplicate_mac() {
    // "db" derives 02:42:0a:0a:00:03 from its address, which "web" claimed.
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\nmac = \"02:42:0a:0a:00:03\"\n\
             [[port]]\nname = \"db\"\nnetwork = \"front\"\nip = \"10.10.0.3\"\n"
        )),
        "topo.toml:12:6: port \"db\": mac 02:42:0a:0a:00:03 is already used by port \"web\""
    );
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"a\"\nnetwork = \"front\"\nmac = \"02:00:00:00:00:01\"\n\
             [[port]]\nname = \"b\"\nnetwork = \"front\"\nmac = \"02:00:00:00:00:01\"\n"
        )),
        "topo.toml:12:7: port \"b\": mac 02:00:00:00:00:01 is already used by port \"a\""
    );
}

#[test]
fn bad_mac() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"a\"\nnetwork = \"front\"\nmac = \"02:00:00:00:00\"\n\
             [[port]]\nname = \"b\"\nnetwork = \"front\"\nmac = \"01:00:5e:00:00:01\"\n"
        )),
        [
            "topo.toml:8:7: port \"a\": mac: invalid \"02:00:00:00:00\": expected a MAC address of six hex octets like 02:42:0a:00:00:02",
            "topo.toml:12:7: port \"b\": mac: 01:00:5e:00:00:01 is a multicast address; a unicast MAC is needed",
        ]
    );
}

#[test]
fn tap_without_netns_uses_the_port_name() {
    let c = ok(&with_base(
        "[[port]]\nname = \"web\"\nnetwork = \"front\"\nkind = \"tap\"\n",
    ));
    assert_eq!(c.ports[0].netns.as_deref(), Some("web"));
}

#[test]
fn afpacket_without_interface() {
    assert_eq!(
        error(&with_base("[[port]]\nname = \"p\"\nnetwork = \"front\"\nkind = \"afpacket\"\n")),
        "topo.toml:8:8: port \"p\": kind \"afpacket\" needs an interface (the host interface to open)"
    );
}

#[test]
fn keys_that_do_not_apply_to_the_kind() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"p\"\nnetwork = \"front\"\ninterface = \"eth1\"\nvni = 3\n\
             [[port]]\nname = \"q\"\nnetwork = \"front\"\nkind = \"afpacket\"\ninterface = \"eth2\"\nnetns = \"q\"\n"
        )),
        [
            "topo.toml:8:13: port \"p\": interface only applies to kind \"afpacket\"",
            "topo.toml:9:7: port \"p\": vni only applies to kind \"vxlan\"",
            "topo.toml:15:9: port \"q\": netns only applies to kind \"tap\"",
        ]
    );
}

#[test]
fn vxlan_needs_vni_and_remote() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"t\"\nnetwork = \"front\"\nkind = \"vxlan\"\n"
        )),
        [
            "topo.toml:8:8: port \"t\": kind \"vxlan\" needs a vni",
            "topo.toml:8:8: port \"t\": kind \"vxlan\" needs a remote (the peer VTEP's address)",
        ]
    );
}

#[test]
fn vxlan_values() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"t\"\nnetwork = \"front\"\nkind = \"vxlan\"\nvni = 16777216\n\
             remote = [\"198.18.0.2\", \"198.18.0\"]\nlocal = \"198.18.0.1:0\"\n"
        )),
        [
            "topo.toml:9:7: port \"t\": vni must be 0 to 16777215, not 16777216",
            "topo.toml:10:25: port \"t\": invalid remote \"198.18.0\": expected an IPv4 address like 198.18.0.2",
            "topo.toml:11:9: port \"t\": invalid local \"198.18.0.1:0\": expected an IPv4 address, optionally with a port, like 198.18.0.1:4789",
        ]
    );
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"t\"\nnetwork = \"front\"\nkind = \"vxlan\"\nvni = 1\nremote = []\n"
        )),
        "topo.toml:10:10: port \"t\": remote lists no address"
    );
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"t\"\nnetwork = \"front\"\nkind = \"vxlan\"\nvni = 1\nremote = \"198.18.0.2\"\nip = \"dhcp\"\n"
        )),
        "topo.toml:11:6: port \"t\": ip = \"dhcp\" does not apply to kind \"vxlan\", which carries many endpoints"
    );
}

const TUN: &str = "[[port]]\nname = \"t\"\nnetwork = \"front\"\nkind = \"vxlan\"\nvni = 1\nremote = \"198.18.0.2\"\n";

#[test]
fn vxlan_sealing_needs_a_key_and_a_local_address() {
    assert_eq!(
        errors(&with_base(&format!("{TUN}encrypt = true\n"))),
        [
            "topo.toml:11:11: port \"t\": encrypt = true needs a key_file (32 bytes, or 64 hex digits)",
            "topo.toml:11:11: port \"t\": encrypt = true needs local (this VTEP's own address, which names it in every nonce)",
        ]
    );
    assert_eq!(
        error(&with_base(&format!("{TUN}key_file = \"k\"\n"))),
        "topo.toml:11:12: port \"t\": key_file is only used with encrypt = true"
    );
    let dir = std::env::temp_dir().join("vswitch-config-keys");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("short"), [1u8; 31]).unwrap();
    std::fs::write(dir.join("hex"), format!("{}\n", "ab".repeat(32))).unwrap();
    let sealed = |file: &str| {
        format!("{BASE}{TUN}local = \"198.18.0.1\"\nencrypt = true\nkey_file = \"{file}\"\n")
    };
    let path = dir.join("topo.toml");
    let bad = parse(&sealed("short"), &path).expect_err("short key");
    assert!(
        bad.to_string().ends_with(&format!(
            "port \"t\": key_file {} must hold 32 bytes, or 64 hex digits",
            dir.join("short").display()
        )),
        "{bad}"
    );
    let c = parse(&sealed("hex"), &path).expect("hex key");
    assert_eq!(c.ports[0].key, Some(TunnelKey([0xab; 32])));
    assert_eq!(c.networks[0].mtu, 1422, "room for the nonce and tag");
    assert!(
        format!("{:?}", c.ports[0]).contains("TunnelKey(..)"),
        "never printed"
    );
}

#[test]
fn vxlan_ports_may_not_share_a_socket() {
    let second = TUN.replace("\"t\"", "\"u\"");
    assert_eq!(
        error(&with_base(&format!(
            "{TUN}local = \"198.18.0.1\"\n{second}"
        ))),
        "topo.toml:15:8: port \"u\": local 0.0.0.0:4789 overlaps port \"t\"'s 198.18.0.1:4789; give each vxlan port its own address or UDP port"
    );
    ok(&with_base(&format!(
        "{TUN}local = \"198.18.0.1\"\n{second}local = \"198.18.0.1:4790\"\n"
    )));
}

#[test]
fn overlay_networks_default_to_mtu_1450_and_their_ports_follow() {
    let c = ok(&with_base(TUN));
    assert_eq!(c.networks[0].mtu, 1450);
    assert_eq!(c.ports[0].mtu, 1450);
    let c = ok(&with_base(&format!("mtu = 9000\n{TUN}")));
    assert_eq!(c.networks[0].mtu, 9000, "a given MTU stands");
}

#[test]
fn trunk_vlan_out_of_range() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"p\"\nnetwork = \"front\"\ntrunk = [10, 0, 4095, 10]\n"
        )),
        [
            "topo.toml:8:14: port \"p\": trunk VLAN id must be 1 to 4094, not 0",
            "topo.toml:8:17: port \"p\": trunk VLAN id must be 1 to 4094, not 4095",
            "topo.toml:8:23: port \"p\": trunk lists VLAN 10 twice",
        ]
    );
}

#[test]
fn publish_and_aliases_syntax() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"p\"\nnetwork = \"front\"\npublish = [\"80\", \"8080:80/sctp\"]\naliases = [\"-bad\"]\n"
        )),
        [
            "topo.toml:8:12: port \"p\": invalid publish \"80\": expected [ip:]hostport:port[/tcp|udp], like \"8080:80/tcp\"",
            "topo.toml:8:18: port \"p\": invalid publish \"8080:80/sctp\": expected [ip:]hostport:port[/tcp|udp], like \"8080:80/tcp\"",
            "topo.toml:9:12: port \"p\": alias \"-bad\" is not a valid DNS name",
        ]
    );
}

#[test]
fn ipam_exhaustion_is_an_error_at_the_port() {
    let text = r#"[[network]]
name = "tiny"
subnet = "10.0.0.0/30"

[[port]]
name = "a"
network = "tiny"

[[port]]
name = "b"
network = "tiny"

[[port]]
name = "c"
network = "tiny"
ip = "dhcp"
"#;
    assert_eq!(
        errors(text),
        [
            "topo.toml:9:1: port \"b\": no free address left in subnet 10.0.0.0/30 of network \"tiny\"",
            "topo.toml:16:6: port \"c\": no free address left in subnet 10.0.0.0/30 of network \"tiny\"",
        ]
    );
}

// ---- [uplink] ----

#[test]
fn uplink_ip_must_be_cidr() {
    assert_eq!(
        error("[uplink]\ninterface = \"veth-out\"\nip = \"192.0.2.10\"\n"),
        "topo.toml:3:6: uplink: invalid ip \"192.0.2.10\": expected the switch's address with its prefix length, like 192.0.2.10/24 (expected a.b.c.d/len, like 10.0.0.0/24)"
    );
}

#[test]
fn uplink_checks() {
    assert_eq!(
        errors(&with_base(
            "[uplink]\nkind = \"tap\"\ninterface = \"veth-out\"\nip = \"10.10.0.200/16\"\ngateway = \"10.11.0.1\"\n"
        )),
        [
            "topo.toml:6:8: uplink: kind must be \"afpacket\" (the only uplink kind so far), not \"tap\"",
            "topo.toml:8:6: uplink: subnet 10.10.0.0/16 overlaps subnet 10.10.0.0/24 of network \"front\"",
            "topo.toml:9:11: uplink: gateway 10.11.0.1 is outside 10.10.0.0/16",
        ]
    );
    assert_eq!(
        errors(&with_base(
            "[uplink]\ninterface = \"veth-out\"\nip = \"192.0.2.10/24\"\ndns = [\"192.0.2.53\", \"nope\", \"192.0.2.53\"]\n"
        )),
        [
            "topo.toml:8:22: uplink: invalid dns \"nope\": expected an IPv4 address like 192.0.2.53",
            "topo.toml:8:30: uplink: dns lists 192.0.2.53 twice",
        ]
    );
    let c = ok(&with_base(
        "[uplink]\ninterface = \"veth-out\"\nip = \"192.0.2.10/24\"\ndns = \"192.0.2.53\"\n",
    ));
    assert_eq!(c.uplink.map(|u| u.dns), Some(vec![ip("192.0.2.53")]));
}

// ---- [[expect]] ----

#[test]
fn expect_naming_unknown_ports() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\n\n[[expect]]\nfrom = \"wbe\"\n\
             packet = \"icmp 10.10.0.2 -> 10.10.0.1\"\nverdict = \"accept\"\nto = \"uplink\"\n"
        )),
        [
            "topo.toml:10:8: expect: from names unknown port \"wbe\"",
            "topo.toml:13:6: expect: to names unknown port \"uplink\"",
        ]
    );
}

#[test]
fn expect_bad_verdict() {
    assert_eq!(
        error(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\n\n[[expect]]\nfrom = \"web\"\n\
             packet = \"icmp 10.10.0.2 -> 10.10.0.1\"\nverdict = \"allow\"\n"
        )),
        "topo.toml:12:11: expect: verdict must be accept, drop or reject, not \"allow\""
    );
}

#[test]
fn expect_verdict_in_capitals_and_line() {
    let c = ok(&with_base(
        "[[port]]\nname = \"web\"\nnetwork = \"front\"\n\n[[expect]]\nfrom = \"web\"\n\
         packet = \"icmp 10.10.0.2 -> 10.10.0.1\"\nverdict = \"DROP\"\n",
    ));
    assert_eq!(c.expects[0].verdict, Verdict::Drop);
    assert_eq!(c.expects[0].line, 9);
}

// ---- [rules] ----

#[test]
fn rules_both_or_neither() {
    assert_eq!(
        error("\n[rules]\ntext = \"*filter\\nCOMMIT\\n\"\nfile = \"rules.v4\"\n"),
        "topo.toml:2:1: [rules] takes text or file, not both"
    );
    assert_eq!(
        error("[rules]\n"),
        "topo.toml:1:1: [rules] needs text or file"
    );
}

#[test]
fn rules_text_line() {
    let c = ok("[rules]\ntext = \"*filter\\nCOMMIT\\n\"\n");
    assert_eq!(
        c.rules,
        Some(RulesSource::Text {
            text: "*filter\nCOMMIT\n".into(),
            line: 2
        })
    );
    let c = ok("\n[rules]\ntext = '''\n*filter\nCOMMIT\n'''\n");
    assert!(matches!(c.rules, Some(RulesSource::Text { line: 4, .. })));
}

#[test]
fn rules_file_relative_to_topo() {
    let dir = std::env::temp_dir().join(format!("vswitch-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.v4"), "*filter\nCOMMIT\n").unwrap();
    let topo = dir.join("topo.toml");
    std::fs::write(&topo, "[rules]\nfile = \"rules.v4\"\n").unwrap();

    let c = load(&topo).unwrap();
    assert_eq!(
        c.rules,
        Some(RulesSource::File {
            path: dir.join("rules.v4"),
            text: "*filter\nCOMMIT\n".into()
        })
    );

    std::fs::write(&topo, "[rules]\nfile = \"missing.v4\"\n").unwrap();
    let err = load(&topo).unwrap_err().to_string();
    let missing = dir.join("missing.v4");
    assert_eq!(
        err,
        format!(
            "{}:2:8: rules: cannot read file {}: No such file or directory (os error 2)",
            topo.display(),
            missing.display()
        )
    );

    // A device is refused at once rather than read without end.
    std::fs::write(&topo, "[rules]\nfile = \"/dev/zero\"\n").unwrap();
    let err = load(&topo).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:8: rules: cannot read file /dev/zero: not a regular file",
            topo.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_config_file() {
    let err = load(Path::new("/nonexistent/topo.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/topo.toml: cannot read the config file: No such file or directory (os error 2)"
    );
    // What a reload over the control socket may be handed.
    let err = load(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/zero: cannot read the config file: not a regular file"
    );
}

// ---- [[fdb]] ----

#[test]
fn static_fdb_unknown_port() {
    assert_eq!(
        error("[[fdb]]\nmac = \"02:00:00:00:00:01\"\nport = \"nowhere\"\n"),
        "topo.toml:3:8: fdb: unknown port \"nowhere\""
    );
}

#[test]
fn static_fdb_values() {
    assert_eq!(
        errors(&with_base(
            "[[port]]\nname = \"web\"\nnetwork = \"front\"\n\
             [[fdb]]\nmac = \"02:00:00:00:00:01\"\nport = \"web\"\n\
             [[fdb]]\nmac = \"02:00:00:00:00:01\"\nport = \"web\"\n\
             [[fdb]]\nmac = \"ff:ff:ff:ff:ff:ff\"\nport = \"web\"\nvlan = 5000\n"
        )),
        [
            "topo.toml:12:7: fdb: duplicate entry for 02:00:00:00:00:01 (first on line 8)",
            "topo.toml:15:7: fdb: mac: ff:ff:ff:ff:ff:ff is a multicast address; a unicast MAC is needed",
            "topo.toml:17:8: fdb: vlan must be 1 to 4094, not 5000",
        ]
    );
}

// ---- many errors at once ----

#[test]
fn all_errors_are_reported_in_file_order() {
    let text = r#"[switch]
threads = 100

[[network]]
name = "front"
subnet = "10.10.0.0/24"
gateway = "10.99.0.1"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.300"

[[port]]
name = "db"
network = "nope"
"#;
    assert_eq!(
        errors(text),
        [
            "topo.toml:2:11: switch: threads must be 1 to 64, not 100",
            "topo.toml:7:11: network \"front\": gateway 10.99.0.1 is outside subnet 10.10.0.0/24",
            "topo.toml:12:6: port \"web\": invalid ip \"10.10.0.300\": expected an IPv4 address like 10.0.0.2, or \"dhcp\"",
            "topo.toml:16:11: port \"db\": unknown network \"nope\"",
        ]
    );
}

#[test]
fn shipped_example_is_valid() {
    let c = ok(include_str!("../../../examples/bridge.toml"));
    assert_eq!(c.switch.name, "bridge-demo");
    let addrs: Vec<_> = c
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.netns.as_deref(), p.ip))
        .collect();
    assert_eq!(
        addrs,
        [
            ("web", Some("web"), Some(ip("10.10.0.2"))),
            ("db", Some("db"), Some(ip("10.10.0.3")))
        ]
    );
    assert!(c.rules.is_none());
}

#[test]
fn a_parent_with_a_vlan_suffix_is_a_trunk() {
    let c = ok(r#"[[network]]
name = "mv"
driver = "macvlan"
parent = "eth1.20"
subnet = "10.2.0.0/24"

[[network]]
name = "iv"
driver = "ipvlan"
parent = "br.lan"
subnet = "10.3.0.0/24"
"#);
    let vid = packet::VlanId::try_new(20);
    assert_eq!(c.networks[0].parent_link(), Some(("eth1", vid)));
    assert_eq!(c.networks[0].domain_vlan(), 20);
    assert_eq!(c.networks[1].parent_link(), Some(("br.lan", None)));
    assert_eq!(c.networks[1].domain_vlan(), 0);
}

#[test]
fn parent_vlans_and_names_are_checked() {
    assert_eq!(
        error("[[network]]\nname = \"n\"\ndriver = \"macvlan\"\nparent = \"eth1.4095\"\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:4:10: network \"n\": parent \"eth1.4095\": VLAN 4095 is not 1 to 4094"
    );
    assert_eq!(
        error("[[network]]\nname = \"n\"\ndriver = \"macvlan\"\nparent = \"eth1\"\nvlan = 20\nsubnet = \"10.0.0.0/24\"\n"),
        "topo.toml:5:8: network \"n\": vlan applies to bridge networks; a macvlan network takes its VLAN from the parent, as \"eth1.20\""
    );
    let clash = "[[network]]\nname = \"n\"\ndriver = \"ipvlan\"\nparent = \"web\"\nsubnet = \"10.0.0.0/24\"\n\
                 [[port]]\nname = \"web\"\nnetwork = \"n\"\n";
    assert_eq!(
        error(clash),
        "topo.toml:4:10: network \"n\": parent \"web\" is also a port name; the parent is a port of that name in rules"
    );
    let twice = "[[network]]\nname = \"a\"\ndriver = \"macvlan\"\nparent = \"eth1\"\nsubnet = \"10.0.0.0/24\"\n\
                 [[network]]\nname = \"b\"\ndriver = \"ipvlan\"\nparent = \"eth1\"\nsubnet = \"10.1.0.0/24\"\n";
    assert_eq!(
        error(twice),
        "topo.toml:9:10: network \"b\": parent \"eth1\" is also the parent of another network; the parent is a port of that name in rules"
    );
    let uplink = "[[network]]\nname = \"a\"\ndriver = \"macvlan\"\nparent = \"eth1.5\"\nsubnet = \"10.0.0.0/24\"\n\
                  [uplink]\nkind = \"afpacket\"\ninterface = \"eth1\"\nip = \"192.0.2.2/24\"\n";
    assert_eq!(
        error(uplink),
        "topo.toml:4:10: network \"a\": parent interface eth1 is the uplink's; give each its own interface"
    );
}
