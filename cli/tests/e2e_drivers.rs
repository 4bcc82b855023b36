//! Ring 3 for macvlan and ipvlan networks: a "LAN" namespace on the far
//! end of a veth pair whose host end is the parent, with real Linux
//! stacks on both sides. Skips (and says why) without root or /dev/net/tun.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use packet::arp::ArpOp;
use packet::vnet::VnetHdr;
use packet::{MacAddr, Parsed, L3, L4};
use vswitch::io::afpacket::PacketSocket;
use vswitch_tests::e2e::{self, Running};
use vswitch_tests::frames;

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");
const LAN: &str = "mv-lan";
const A: &str = "mv-a";
const B: &str = "mv-b";
/// The parent (host end) and its peer in the LAN namespace.
const PARENT: &str = "mv-par";
const PEER: &str = "mv-lanp";

fn sh(args: &[&str]) {
    e2e::run_ok(Command::new(args[0]).args(&args[1..]));
}

fn lan(args: &[&str]) {
    let mut v = vec!["ip", "-n", LAN];
    v.extend_from_slice(args);
    sh(&v);
}

/// Removes what an earlier, failed run may have left.
fn clean() {
    e2e::remove_netns(&[LAN, A, B]);
    let _ = Command::new("ip").args(["link", "del", PARENT]).output();
}

/// A LAN namespace on a fresh veth pair; the host end is the parent. The
/// host itself must not route what it sees there (it has no address on
/// it, but may forward).
fn lan_segment() {
    clean();
    sh(&["ip", "netns", "add", LAN]);
    sh(&[
        "ip", "link", "add", PARENT, "type", "veth", "peer", "name", PEER,
    ]);
    sh(&["ip", "link", "set", PEER, "netns", LAN]);
    for (knob, v) in [
        ("ipv4/conf/{}/forwarding", "0"),
        ("ipv6/conf/{}/disable_ipv6", "1"),
    ] {
        let path = format!("/proc/sys/net/{}", knob.replace("{}", PARENT));
        std::fs::write(&path, v).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    lan(&["link", "set", "lo", "up"]);
    lan(&["link", "set", PEER, "up"]);
}

fn topo(name: &str, network: &str, subnet: &str) -> String {
    let net = subnet.trim_end_matches(".0/24");
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "lan"
{network}
subnet = "{subnet}"
gateway = "{net}.1"

[[port]]
name = "a"
network = "lan"
netns = "{A}"
ip = "{net}.2"

[[port]]
name = "b"
network = "lan"
netns = "{B}"
ip = "{net}.3"
"#
    )
}

/// The LAN's neighbour entries: (address, MAC).
fn lan_neighbours() -> Vec<(String, String)> {
    let out = e2e::exec(LAN, &["ip", "-4", "neigh", "show"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let at = f.iter().position(|&w| w == "lladdr")?;
            Some((f[0].to_owned(), f.get(at + 1)?.to_string()))
        })
        .collect()
}

fn mac_of(ns_addr: &[(String, String)], ip: &str) -> String {
    ns_addr
        .iter()
        .find(|(a, _)| a == ip)
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("no neighbour entry for {ip} in {ns_addr:?}"))
}

fn finish(sw: Running) {
    let log = std::fs::read_to_string(&sw.stderr).unwrap_or_default();
    assert!(sw.stop().success(), "vswitch did not stop cleanly:\n{log}");
    clean();
}

#[test]
fn macvlan_endpoints_appear_on_the_lan_with_their_own_macs() {
    if e2e::skip("macvlan_endpoints_appear_on_the_lan_with_their_own_macs") {
        return;
    }
    let _g = e2e::serial();
    lan_segment();
    // The LAN holds the network's gateway: it is the external router.
    lan(&["addr", "add", "10.81.0.1/24", "dev", PEER]);
    let network = format!("driver = \"macvlan\"\nparent = \"{PARENT}\"");
    let sw = Running::start(
        Path::new(BIN),
        "mv-macvlan",
        &topo("mv-macvlan", &network, "10.81.0.0/24"),
    );
    assert!(e2e::ping(LAN, "10.81.0.2", &[]), "LAN -> a");
    assert!(e2e::ping(LAN, "10.81.0.3", &[]), "LAN -> b");
    assert!(
        e2e::ping(A, "10.81.0.1", &[]),
        "a -> its gateway on the LAN"
    );
    assert!(e2e::ping(A, "10.81.0.3", &[]), "a -> b");
    let seen = lan_neighbours();
    assert_eq!(mac_of(&seen, "10.81.0.2"), "02:42:0a:51:00:02");
    assert_eq!(mac_of(&seen, "10.81.0.3"), "02:42:0a:51:00:03");
    finish(sw);
}

#[test]
fn macvlan_on_a_trunk_parent_is_vlan_20_on_the_lan() {
    if e2e::skip("macvlan_on_a_trunk_parent_is_vlan_20_on_the_lan") {
        return;
    }
    let _g = e2e::serial();
    lan_segment();
    let network = format!("driver = \"macvlan\"\nparent = \"{PARENT}.20\"");
    let sw = Running::start(
        Path::new(BIN),
        "mv-trunk",
        &topo("mv-trunk", &network, "10.84.0.0/24"),
    );
    let vlan = format!("{PEER}.20");
    let subif = Command::new("ip")
        .args(["-n", LAN, "link", "add", "link", PEER, "name", &vlan])
        .args(["type", "vlan", "id", "20"])
        .output()
        .expect("ip");
    if subif.status.success() {
        lan(&["link", "set", &vlan, "up"]);
        lan(&["addr", "add", "10.84.0.1/24", "dev", &vlan]);
        assert!(e2e::ping(LAN, "10.84.0.2", &[]), "LAN -> a over VLAN 20");
        assert!(e2e::ping(LAN, "10.84.0.3", &[]), "LAN -> b over VLAN 20");
        assert!(e2e::ping(B, "10.84.0.1", &[]), "b -> the LAN router");
        let seen = lan_neighbours();
        assert_eq!(mac_of(&seen, "10.84.0.2"), "02:42:0a:54:00:02");
        assert_eq!(mac_of(&seen, "10.84.0.3"), "02:42:0a:54:00:03");
    } else {
        // A kernel without 802.1Q devices: the LAN speaks VLAN 20 itself,
        // through a raw socket, to the endpoints' real stacks.
        eprintln!(
            "no VLAN devices here ({}); the LAN side tags by hand",
            String::from_utf8_lossy(&subif.stderr).trim()
        );
        for (ip, mac) in [
            ("10.84.0.2", "02:42:0a:54:00:02"),
            ("10.84.0.3", "02:42:0a:54:00:03"),
        ] {
            let ip: Ipv4Addr = ip.parse().expect("address");
            assert_eq!(tagged_exchange(ip, 20).to_string(), mac);
        }
    }
    finish(sw);
}

/// From the LAN namespace, by a raw socket on the peer: asks for `ip` with
/// ARP tagged `vid` and pings it tagged; both answers must come back
/// tagged `vid`. Returns the MAC that answered.
fn tagged_exchange(ip: Ipv4Addr, vid: u16) -> MacAddr {
    e2e::in_netns(LAN, move || {
        let sock = PacketSocket::open(PEER).expect("raw socket on the LAN peer");
        let me = (
            frames::mac("02:00:00:00:54:01"),
            Ipv4Addr::new(10, 84, 0, 1),
        );
        let send = |f: Vec<u8>| {
            sock.send(&VnetHdr::NONE, &[&frames::tagged(f, vid)])
                .expect("send");
        };
        let mut buf = vec![0u8; 65536 + 256];
        // The first tagged frame from `ip` that `want` accepts.
        let mut wait = |want: &dyn Fn(&Parsed) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                match sock.recv(&mut buf) {
                    Ok((range, _)) => {
                        let frame = buf[range].to_vec();
                        if let Ok(p) = Parsed::parse(&frame) {
                            if want(&p) {
                                assert_eq!(p.tags[0], Some(vid), "answered on VLAN {vid}");
                                return p;
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            panic!("no answer from {ip} on VLAN {vid}");
        };
        send(frames::arp_request(me.0, me.1, ip));
        let reply =
            wait(&|p| matches!(p.l3, L3::Arp(a) if a.op == ArpOp::Reply && a.sender_ip == ip));
        let L3::Arp(arp) = reply.l3 else {
            unreachable!("matched as ARP")
        };
        send(frames::ping(me, (arp.sender_mac, ip), 0x5420, 1, b"tagged"));
        wait(&|p| {
            matches!(p.l3, L3::Ipv4 { src, .. } if src == ip)
                && matches!(
                    p.l4,
                    L4::Icmp {
                        msg_type: 0,
                        ident: 0x5420,
                        ..
                    }
                )
        });
        arp.sender_mac
    })
    .join()
    .expect("tagged exchange")
}

fn parent_mac() -> String {
    std::fs::read_to_string(format!("/sys/class/net/{PARENT}/address"))
        .expect("parent MAC")
        .trim()
        .to_owned()
}

#[test]
fn ipvlan_l2_endpoints_share_the_parents_mac_and_serve_tcp() {
    if e2e::skip("ipvlan_l2_endpoints_share_the_parents_mac_and_serve_tcp") {
        return;
    }
    let _g = e2e::serial();
    lan_segment();
    lan(&["addr", "add", "10.82.0.1/24", "dev", PEER]);
    let network = format!("driver = \"ipvlan\"\nmode = \"l2\"\nparent = \"{PARENT}\"");
    let sw = Running::start(
        Path::new(BIN),
        "mv-ipvlan2",
        &topo("mv-ipvlan2", &network, "10.82.0.0/24"),
    );
    assert!(e2e::ping(LAN, "10.82.0.2", &[]), "LAN -> a");
    assert!(e2e::ping(LAN, "10.82.0.3", &[]), "LAN -> b");
    assert!(e2e::ping(A, "10.82.0.3", &[]), "a -> b");
    let seen = lan_neighbours();
    let parent = parent_mac();
    assert_eq!(mac_of(&seen, "10.82.0.2"), parent);
    assert_eq!(mac_of(&seen, "10.82.0.3"), parent);
    // A TCP server in b, reached from the LAN: 4 MB, hash-checked.
    e2e::transfer(LAN, B, "10.82.0.3", 7000, 4 << 20);
    // Its established segments, both ways through the parent, were cached.
    let hits = e2e::fast_path_hits(Path::new(BIN), "mv-ipvlan2");
    assert!(hits > 50, "fast path hits: {hits}");
    finish(sw);
}

#[test]
fn ipvlan_l3_is_routed_between_endpoints_and_the_lan() {
    if e2e::skip("ipvlan_l3_is_routed_between_endpoints_and_the_lan") {
        return;
    }
    let _g = e2e::serial();
    lan_segment();
    // The LAN is the router the network's gateway names, with a route
    // back to the endpoints by the parent's segment; its own hosts sit in
    // another subnet.
    lan(&["addr", "add", "192.168.83.1/24", "dev", PEER]);
    lan(&["addr", "add", "10.83.0.1/32", "dev", PEER]);
    lan(&["route", "add", "10.83.0.0/24", "dev", PEER]);
    let network = format!("driver = \"ipvlan\"\nmode = \"l3\"\nparent = \"{PARENT}\"");
    let sw = Running::start(
        Path::new(BIN),
        "mv-ipvlan3",
        &topo("mv-ipvlan3", &network, "10.83.0.0/24"),
    );
    let route = e2e::exec(A, &["ip", "route", "show", "default"]);
    assert_eq!(
        String::from_utf8_lossy(&route.stdout).trim(),
        "default dev eth0 scope link"
    );
    // The switch drops a packet whose next hop it is still asking for, as
    // its other routes do: one echo first to have the LAN's MAC learned.
    let _ = e2e::exec(A, &["ping", "-c", "1", "-W", "1", "192.168.83.1"]);
    assert!(e2e::ping(A, "192.168.83.1", &[]), "a -> a LAN host, routed");
    assert!(e2e::ping(LAN, "10.83.0.3", &[]), "LAN -> b");
    assert!(e2e::ping(A, "10.83.0.3", &[]), "a -> b, routed");
    // One hop: the switch routes, and says so in the TTL.
    let out = e2e::exec(A, &["ping", "-c", "1", "-W", "1", "192.168.83.1"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ttl=63"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let seen = lan_neighbours();
    assert_eq!(mac_of(&seen, "10.83.0.3"), parent_mac());
    e2e::transfer(A, LAN, "192.168.83.1", 7001, 4 << 20);
    let hits = e2e::fast_path_hits(Path::new(BIN), "mv-ipvlan3");
    assert!(hits > 50, "fast path hits: {hits}");
    finish(sw);
}
