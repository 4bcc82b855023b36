//! Ring 2 for NAT and the uplink: MASQUERADE out, published ports in,
//! hairpin, replies translated back; frames and checksums checked.

use std::net::Ipv4Addr;

use packet::ipv4::Ipv4Packet;
use packet::tcp::TcpPacket;
use packet::{MacAddr, Parsed};
use vswitch::trace::trace;
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{self, arp_request, mac, tcp, Seg};
use vswitch_tests::harness::Harness;
use vswitch_tests::topos;

/// `topos::published_web` with a second container, db.
fn topo() -> String {
    topos::published_web(
        r#"
[[port]]
name = "db"
network = "front"
ip = "10.10.0.3"
"#,
    )
}

const WEB: &str = "02:42:0a:0a:00:02";
const DB: &str = "02:42:0a:0a:00:03";
const UP: &str = "02:00:00:00:0a:0a";
const ROUTER: &str = "02:00:00:00:00:01";
const LAN: &str = "02:00:00:00:00:50";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn gw() -> MacAddr {
    MacAddr::from_ipv4(ip("10.10.0.1"))
}

/// (src, sport, dst, dport, ttl) of an emitted TCP frame, checksums verified.
fn tcp_of(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, u8) {
    let p = Parsed::parse(frame).unwrap();
    let ipv4 = Ipv4Packet::new_checked(&frame[p.l3_offset..]).unwrap();
    assert!(ipv4.verify_checksum(), "IP checksum");
    let t = TcpPacket::new_checked(ipv4.payload()).unwrap();
    assert!(
        t.verify_checksum_v4(ipv4.src_addr(), ipv4.dst_addr()),
        "TCP checksum"
    );
    (
        ipv4.src_addr(),
        t.src_port(),
        ipv4.dst_addr(),
        t.dst_port(),
        ipv4.ttl(),
    )
}

/// An ARP reply from `(mac, ip)` to the uplink address.
fn arp_reply(from: (&str, &str)) -> Vec<u8> {
    frames::arp_reply((mac(from.0), ip(from.1)), (mac(UP), ip("192.0.2.10")))
}

#[test]
fn outbound_connections_are_masqueraded_and_replies_return() {
    let mut h = Harness::new("nat_masq", &topo());
    let syn = tcp(
        (mac(WEB), ip("10.10.0.2"), 40000),
        (gw(), ip("198.51.100.7"), 443),
        Seg::syn(1),
        b"",
    );
    // The router is not known yet: the switch asks for it on the uplink.
    let s = h.send("web", &syn);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NeighbourUnresolved));
    assert_eq!(s.ports(), ["uplink"]);
    let ask = Parsed::parse(&s.frames[0].1).unwrap();
    assert_eq!(ask.src, mac(UP));
    h.send("uplink", &arp_reply((ROUTER, "192.0.2.1")));

    let s = h.send("web", &syn);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["uplink"]);
    let out = &s.frames[0].1;
    let p = Parsed::parse(out).unwrap();
    assert_eq!((p.src, p.dst), (mac(UP), mac(ROUTER)));
    assert_eq!(
        tcp_of(out),
        (ip("192.0.2.10"), 40000, ip("198.51.100.7"), 443, 63)
    );

    let syn_ack = tcp(
        (mac(ROUTER), ip("198.51.100.7"), 443),
        (mac(UP), ip("192.0.2.10"), 40000),
        Seg::syn_ack(9, 2),
        b"",
    );
    let s = h.send("uplink", &syn_ack);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["web"]);
    let back = &s.frames[0].1;
    let p = Parsed::parse(back).unwrap();
    assert_eq!((p.src, p.dst), (gw(), mac(WEB)));
    assert_eq!(
        tcp_of(back),
        (ip("198.51.100.7"), 443, ip("10.10.0.2"), 40000, 63)
    );
    // Something the uplink sends unasked is not let in.
    let stray = tcp(
        (mac(ROUTER), ip("198.51.100.7"), 443),
        (mac(UP), ip("192.0.2.10"), 40001),
        Seg::syn(1),
        b"",
    );
    assert_ne!(h.send("uplink", &stray).ports(), ["web"]);
}

#[test]
fn published_ports_reach_the_container_with_the_clients_address() {
    let mut h = Harness::new("nat_publish", &topo());
    h.switch.learn_configured(h.now);
    // The LAN host asks for the uplink address first, as it would.
    let s = h.send(
        "uplink",
        &arp_request(mac(LAN), ip("192.0.2.50"), ip("192.0.2.10")),
    );
    assert_eq!(s.verdict, Verdict::Local);
    let syn = |port| {
        tcp(
            (mac(LAN), ip("192.0.2.50"), 5555),
            (mac(UP), ip("192.0.2.10"), port),
            Seg::syn(1),
            b"",
        )
    };
    let s = h.send("uplink", &syn(8080));
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["web"]);
    assert_eq!(
        tcp_of(&s.frames[0].1),
        (ip("192.0.2.50"), 5555, ip("10.10.0.2"), 80, 63)
    );
    let syn_ack = tcp(
        (mac(WEB), ip("10.10.0.2"), 80),
        (gw(), ip("192.0.2.50"), 5555),
        Seg::syn_ack(9, 2),
        b"",
    );
    let s = h.send("web", &syn_ack);
    assert_eq!(s.ports(), ["uplink"]);
    assert_eq!(
        tcp_of(&s.frames[0].1),
        (ip("192.0.2.10"), 8080, ip("192.0.2.50"), 5555, 63)
    );
    assert_eq!(Parsed::parse(&s.frames[0].1).unwrap().dst, mac(LAN));
    // A port nobody published stays shut.
    let s = h.send("uplink", &syn(8081));
    assert!(s.frames.iter().all(|(p, _)| p != "web"), "{:?}", s.ports());
}

#[test]
fn a_container_reaches_a_published_port_through_the_uplink_address() {
    let mut h = Harness::new("nat_hairpin", &topo());
    let syn = tcp(
        (mac(DB), ip("10.10.0.3"), 6000),
        (gw(), ip("192.0.2.10"), 8080),
        Seg::syn(1),
        b"",
    );
    let s = h.send("db", &syn);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["web"]);
    assert_eq!(
        tcp_of(&s.frames[0].1),
        (ip("10.10.0.3"), 6000, ip("10.10.0.2"), 80, 63)
    );
    // web answers db directly on the segment; the reply is translated back
    // to the address db asked.
    let syn_ack = tcp(
        (mac(WEB), ip("10.10.0.2"), 80),
        (mac(DB), ip("10.10.0.3"), 6000),
        Seg::syn_ack(9, 2),
        b"",
    );
    let s = h.send("web", &syn_ack);
    assert_eq!(s.ports(), ["db"]);
    let (src, sport, dst, dport, _) = tcp_of(&s.frames[0].1);
    assert_eq!(
        (src, sport, dst, dport),
        (ip("192.0.2.10"), 8080, ip("10.10.0.3"), 6000)
    );
}

#[test]
fn a_published_port_is_traced_through_dnat_and_forward() {
    let cfg = vswitch::config::parse(&topo(), std::path::Path::new("topo.toml")).unwrap();
    let t = trace(&cfg, "uplink", "tcp 192.0.2.50:5555 -> 192.0.2.10:8080 syn").unwrap();
    let steps: Vec<&str> = t.steps.iter().map(String::as_str).collect();
    let at = |needle: &str| {
        steps
            .iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("no step {needle:?} in {steps:#?}"))
    };
    let order = [
        at("in: port uplink (network uplink): tcp 192.0.2.50:5555 -> 192.0.2.10:8080 [SYN]"),
        at("conntrack: NEW (a new entry)"),
        at("nat VSWITCH #1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.10.0.2:80 : match -> DNAT 10.10.0.2:80"),
        at("nat: DNAT bound: 192.0.2.50:5555 > 192.0.2.10:8080 becomes 192.0.2.50:5555 > 10.10.0.2:80"),
        at("nat: rewritten to tcp 192.0.2.50:5555 -> 10.10.0.2:80 [SYN]"),
        at("route: 10.10.0.2 via network front"),
        at("filter VSWITCH #1 -d 10.10.0.2/32 ! -i front -o front -p tcp -m tcp --dport 80 -j ACCEPT : match -> ACCEPT"),
        at("out: port web: tcp 192.0.2.50:5555 -> 10.10.0.2:80 [SYN]"),
        at("verdict: forwarded to web"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{steps:#?}");
}

#[test]
fn icc_off_and_internal_networks_keep_to_themselves() {
    let topo = r#"
[[network]]
name = "quiet"
subnet = "10.30.0.0/24"
icc = false

[[network]]
name = "vault"
subnet = "10.40.0.0/24"
internal = true

[[port]]
name = "q1"
network = "quiet"
ip = "10.30.0.2"

[[port]]
name = "q2"
network = "quiet"
ip = "10.30.0.3"

[[port]]
name = "v1"
network = "vault"
ip = "10.40.0.2"

[[port]]
name = "v2"
network = "vault"
ip = "10.40.0.3"
"#;
    let topo = format!("{topo}{}", topos::UPLINK);
    let mut h = Harness::new("nat_icc_internal", &topo);
    h.switch.learn_configured(h.now);
    h.send("uplink", &arp_reply((ROUTER, "192.0.2.1")));
    let ep = |s: &str, port| (MacAddr::from_ipv4(ip(s)), ip(s), port);
    // icc = false: the two endpoints of "quiet" may not talk...
    let s = h.send(
        "q1",
        &tcp(ep("10.30.0.2", 1), ep("10.30.0.3", 2), Seg::syn(1), b""),
    );
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    // ...but may leave by the uplink, masqueraded.
    let out = tcp(
        ep("10.30.0.2", 1),
        (MacAddr::from_ipv4(ip("10.30.0.1")), ip("198.51.100.7"), 2),
        Seg::syn(1),
        b"",
    );
    let s = h.send("q1", &out);
    assert_eq!(s.ports(), ["uplink"]);
    assert_eq!(tcp_of(&s.frames[0].1).0, ip("192.0.2.10"));
    // internal: endpoints talk to each other, never to the uplink.
    let s = h.send(
        "v1",
        &tcp(ep("10.40.0.2", 1), ep("10.40.0.3", 2), Seg::syn(1), b""),
    );
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    let out = tcp(
        ep("10.40.0.2", 1),
        (MacAddr::from_ipv4(ip("10.40.0.1")), ip("198.51.100.7"), 2),
        Seg::syn(1),
        b"",
    );
    let s = h.send("v1", &out);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert!(s.frames.is_empty());
}
