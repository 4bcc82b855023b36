//! Port security and the neighbour table in memory: a container speaks only
//! as itself, and nothing it claims about others is believed.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use packet::arp::{ArpOp, ArpRepr};
use packet::icmpv6::msg;
use packet::ndp::{self, option};
use packet::MacAddr;
use vswitch::dhcp::MessageType;
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{arp, arp_request, dhcp, ether, ipv6, mac, neighbor, ping, udp};
use vswitch_tests::harness::Harness;

const TOPO: &str = r#"
[switch]
name = "sec"

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

[[port]]
name = "cache"
network = "front"
ip = "dhcp"

[[port]]
name = "lan"
network = "front"
kind = "afpacket"
interface = "veth-lan"
"#;

const WEB: &str = "02:42:0a:0a:00:02";
const DB: &str = "02:42:0a:0a:00:03";
const CACHE: &str = "02:42:0a:0a:00:04";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn gw() -> (MacAddr, Ipv4Addr) {
    (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"))
}

/// web's UDP to db with the given source MAC and address.
fn from_web(src_mac: &str, src_ip: &str) -> Vec<u8> {
    udp(
        (mac(src_mac), ip(src_ip), 1000),
        (mac(DB), ip("10.10.0.3"), 2000),
        b"x",
    )
}

#[test]
fn a_container_speaks_only_with_its_own_mac_and_address() {
    let mut h = Harness::new("sec_spoof", TOPO);
    let spoofs = [
        from_web("02:42:0a:0a:00:99", "10.10.0.2"),
        from_web(DB, "10.10.0.2"),
        from_web(WEB, "10.10.0.3"),
        from_web(WEB, "10.10.0.77"),
        from_web(WEB, "0.0.0.0"),
        ping((mac(WEB), ip("192.0.2.1")), gw(), 1, 1, b"p"),
    ];
    for f in &spoofs {
        let s = h.send("web", f);
        assert_eq!(s.verdict, Verdict::Dropped(DropReason::Spoofed));
        assert!(s.frames.is_empty());
    }
    assert_eq!(
        h.stats("web").drops(DropReason::Spoofed),
        spoofs.len() as u64
    );
    assert_eq!(
        h.switch.fdb().len(),
        0,
        "a spoofed frame teaches the FDB nothing"
    );

    // The genuine frame passes and is learned.
    let s = h.send("web", &from_web(WEB, "10.10.0.2"));
    assert_eq!(s.verdict, Verdict::Forwarded(3));
    assert_eq!(h.switch.fdb().len(), 1);
    // The trace names why a spoof died.
    let (verdict, steps) = trace(&mut h, "web", &spoofs[1]);
    assert_eq!(verdict, Verdict::Dropped(DropReason::Spoofed));
    assert!(
        steps
            .iter()
            .any(|s| s.contains("port security: source MAC")),
        "{steps:?}"
    );
}

fn trace(h: &mut Harness, port: &str, frame: &[u8]) -> (Verdict, Vec<String>) {
    let ingress = h.port(port);
    let mut buf = frame.to_vec();
    let mut out = vswitch::Output::new();
    h.switch.trace(h.now, ingress, &mut buf, &mut out)
}

fn arp_reply(sender: (&str, &str), target: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    arp(
        target.0,
        ArpRepr {
            op: ArpOp::Reply,
            sender_mac: mac(sender.0),
            sender_ip: ip(sender.1),
            target_mac: target.0,
            target_ip: target.1,
        },
    )
}

#[test]
fn arp_claiming_another_endpoint_is_dropped_and_the_gateway_is_not_poisoned() {
    let mut h = Harness::new("sec_arp", TOPO);
    // web tells the gateway it is db, then that it is a free address, then
    // broadcasts a gratuitous ARP for db's address.
    let lies = [
        arp_reply((WEB, "10.10.0.3"), gw()),
        arp_reply((WEB, "10.10.0.77"), gw()),
        arp_request(mac(WEB), ip("10.10.0.3"), ip("10.10.0.3")),
        // Ethernet source its own, ARP sender db's MAC.
        ether(
            MacAddr::BROADCAST,
            mac(WEB),
            0x0806,
            &arp_request(mac(DB), ip("10.10.0.3"), ip("10.10.0.3"))[14..],
        ),
    ];
    for f in &lies {
        let s = h.send("web", f);
        assert_eq!(s.verdict, Verdict::Dropped(DropReason::Spoofed), "{f:02x?}");
        assert!(s.frames.is_empty());
    }
    // Its own gratuitous ARP and an address probe (sender 0.0.0.0) pass.
    let own = arp_request(mac(WEB), ip("10.10.0.2"), ip("10.10.0.2"));
    assert_eq!(h.send("web", &own).verdict, Verdict::Forwarded(3));
    let probe = arp_request(mac(WEB), Ipv4Addr::UNSPECIFIED, ip("10.10.0.9"));
    assert_eq!(h.send("web", &probe).verdict, Verdict::Forwarded(3));

    // Routed traffic for db still goes to db's MAC.
    h.send("db", &from_db_to(WEB));
    let routed = udp(
        (mac(WEB), ip("10.10.0.2"), 1),
        (gw().0, ip("10.10.0.3"), 2),
        b"r",
    );
    let s = h.send("web", &routed);
    assert_eq!(s.ports(), ["db"]);
    assert_eq!(&s.frames[0].1[0..6], &mac(DB).0);
}

fn from_db_to(dst: &str) -> Vec<u8> {
    udp(
        (mac(DB), ip("10.10.0.3"), 2000),
        (mac(dst), ip("10.10.0.2"), 1000),
        b"y",
    )
}

#[test]
fn without_port_security_a_tap_may_spoof_but_still_cannot_teach_the_gateway() {
    let open = TOPO.replacen(
        "ip = \"10.10.0.2\"",
        "ip = \"10.10.0.2\"\nport_security = false",
        1,
    );
    let mut h = Harness::new("sec_opt_out", &open);
    let s = h.send("web", &from_web("02:42:0a:0a:00:99", "10.10.0.77"));
    assert_eq!(s.verdict, Verdict::Forwarded(3));
    // web claims 10.10.0.77; the gateway believes only the port owning an
    // address, so a packet routed there is still unresolved.
    assert_eq!(
        h.send("web", &arp_reply((WEB, "10.10.0.77"), gw())).verdict,
        Verdict::Local
    );
    let to_77 = udp(
        (mac(DB), ip("10.10.0.3"), 1),
        (gw().0, ip("10.10.0.77"), 2),
        b"?",
    );
    let s = h.send("db", &to_77);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NeighbourUnresolved));
    // A host of the LAN segment answering for itself is believed.
    let lan_host = "02:00:00:00:00:77";
    h.send("lan", &arp_reply((lan_host, "10.10.0.77"), gw()));
    let s = h.send("db", &to_77);
    assert_eq!(s.ports(), ["lan"]);
    assert_eq!(&s.frames[0].1[0..6], &mac(lan_host).0);
}

#[test]
fn a_dhcp_port_asks_from_nowhere_and_then_speaks_from_its_lease() {
    let mut h = Harness::new("sec_dhcp", TOPO);
    let s = h.send(
        "cache",
        &dhcp(mac(CACHE), MessageType::Discover, None, ip("10.10.0.1")),
    );
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["cache"], "offered");
    let s = h.send(
        "cache",
        &dhcp(
            mac(CACHE),
            MessageType::Request,
            Some(ip("10.10.0.4")),
            ip("10.10.0.1"),
        ),
    );
    assert_eq!(s.verdict, Verdict::Local);
    // Anything else from 0.0.0.0, or a DHCP message that is not asking
    // for an address, is not DHCP's exemption.
    let dns_from_nowhere = udp(
        (mac(CACHE), Ipv4Addr::UNSPECIFIED, 68),
        (gw().0, ip("10.10.0.1"), 53),
        b"q",
    );
    let release = dhcp(mac(CACHE), MessageType::Release, None, ip("10.10.0.1"));
    for f in [&dns_from_nowhere, &release] {
        assert_eq!(
            h.send("cache", f).verdict,
            Verdict::Dropped(DropReason::Spoofed)
        );
    }
    // Leased, it speaks from its address; a static port may not ask from 0.0.0.0.
    let s = h.send(
        "cache",
        &ping((mac(CACHE), ip("10.10.0.4")), gw(), 1, 1, b""),
    );
    assert_eq!(s.verdict, Verdict::Local);
    let s = h.send(
        "web",
        &dhcp(mac(WEB), MessageType::Discover, None, ip("10.10.0.1")),
    );
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Spoofed));
}

#[test]
fn storm_control_limits_each_ports_broadcast_and_multicast() {
    let topo = TOPO
        .replace("name = \"sec\"", "name = \"sec\"\nstorm_pps = 100")
        .replacen("ip = \"10.10.0.2\"", "ip = \"10.10.0.2\"\nstorm_pps = 0", 1);
    let mut h = Harness::new("sec_storm", &topo);
    let bcast = ether(MacAddr::BROADCAST, mac(DB), 0x88b5, &[0; 46]);
    let mcast = ether(mac("01:00:5e:00:00:fb"), mac(DB), 0x88b5, &[0; 46]);
    let passed = |h: &mut Harness, n: usize| {
        (0..n)
            .map(|i| h.send("db", if i % 2 == 0 { &bcast } else { &mcast }))
            .filter(|s| s.verdict == Verdict::Forwarded(3))
            .count()
    };
    // A second's worth at once, then nothing until time passes.
    assert_eq!(passed(&mut h, 150), 100);
    assert_eq!(h.stats("db").drops(DropReason::Storm), 50);
    // Unicast is not limited.
    let s = h.send("db", &from_db_to(WEB));
    assert_eq!(
        s.verdict,
        Verdict::Forwarded(3),
        "web not learned yet: flooded"
    );
    h.send("web", &from_web(WEB, "10.10.0.2"));
    assert_eq!(h.send("db", &from_db_to(WEB)).ports(), ["web"]);
    // Half a second later, half a second's worth.
    h.advance(Duration::from_millis(500));
    assert_eq!(passed(&mut h, 80), 50);
    // 100 per second, sent at 1000 per second for two seconds.
    let mut total = 0;
    for _ in 0..2000 {
        h.advance(Duration::from_millis(1));
        total += passed(&mut h, 1);
    }
    assert_eq!(total, 200);
    // web has storm_pps = 0: no limit, and db's storm left it alone.
    let web_bcast = ether(MacAddr::BROADCAST, mac(WEB), 0x88b5, &[0; 46]);
    for _ in 0..5000 {
        assert_eq!(h.send("web", &web_bcast).verdict, Verdict::Forwarded(3));
    }
    assert_eq!(h.stats("web").drops(DropReason::Storm), 0);
}

#[test]
fn ipv6_speaks_link_local_and_neighbor_discovery_cannot_claim_another_endpoint() {
    let mut h = Harness::new("sec_v6", TOPO);
    let (web_ll, db_ll) = (ndp::link_local(mac(WEB)), ndp::link_local(mac(DB)));
    let me = (mac(WEB), web_ll);
    let (ns, na) = (msg::NEIGHBOR_SOLICIT, msg::NEIGHBOR_ADVERT);
    let (sll, tll) = (option::SOURCE_LINK_ADDR, option::TARGET_LINK_ADDR);
    let genuine = [
        // DAD for its link-local, then announcing it, then asking for db's.
        neighbor((mac(WEB), Ipv6Addr::UNSPECIFIED), ns, web_ll, &[]),
        neighbor(me, na, web_ll, &[(tll, mac(WEB))]),
        neighbor(me, ns, db_ll, &[(sll, mac(WEB))]),
    ];
    for f in &genuine {
        let s = h.send("web", f);
        assert_eq!(s.verdict, Verdict::Forwarded(3), "{f:02x?}");
        assert!(
            s.frames.iter().all(|(_, out)| out == f),
            "forwarded unchanged"
        );
    }
    // Unicast to db from the link-local address reaches db as sent.
    h.send("db", &from_db_to(WEB));
    let to_db = ipv6(
        me,
        (mac(DB), db_ll),
        17,
        &[0x0f, 0xa0, 0x0f, 0xa1, 0, 8, 0, 0],
    );
    let s = h.send("web", &to_db);
    assert_eq!(s.ports(), ["db"]);
    assert_eq!(s.frames[0].1, to_db);
    let fdb = h.switch.fdb().len();

    let spoofs = [
        // db's link-local as a source, and as an advertised target.
        ipv6((mac(WEB), db_ll), (mac(DB), web_ll), 59, &[]),
        neighbor(me, na, db_ll, &[(tll, mac(WEB))]),
        // Its own addresses, but db's MAC in the link-layer options.
        neighbor(me, na, web_ll, &[(tll, mac(DB))]),
        neighbor(me, ns, db_ll, &[(sll, mac(DB))]),
        // Addresses the configuration never gave it.
        ipv6(
            (mac(WEB), "fd00::2".parse().unwrap()),
            (mac(DB), db_ll),
            59,
            &[],
        ),
        neighbor(me, na, "fd00::3".parse().unwrap(), &[]),
    ];
    for f in &spoofs {
        let s = h.send("web", f);
        assert_eq!(s.verdict, Verdict::Dropped(DropReason::Spoofed), "{f:02x?}");
        assert!(s.frames.is_empty());
    }
    // An option of length 0: unreadable, so malformed.
    let mut zero = neighbor(me, na, web_ll, &[(tll, mac(WEB))]);
    let opt_len = zero.len() - 7;
    zero[opt_len] = 0;
    let s = h.send("web", &zero);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Malformed));
    assert!(s.frames.is_empty());

    let stats = h.stats("web");
    assert_eq!(stats.drops(DropReason::Spoofed), spoofs.len() as u64);
    assert_eq!(stats.drops(DropReason::Malformed), 1);
    assert_eq!(h.switch.fdb().len(), fdb, "no spoof taught the FDB");
    let (verdict, steps) = trace(&mut h, "web", &spoofs[1]);
    assert_eq!(verdict, Verdict::Dropped(DropReason::Spoofed));
    assert!(
        steps.iter().any(|s| s.contains(&format!(
            "ND advertisement target {db_ll} is not the port's"
        ))),
        "{steps:?}"
    );

    // With port security off, the port's claims pass.
    let open = TOPO.replacen(
        "ip = \"10.10.0.2\"",
        "ip = \"10.10.0.2\"\nport_security = false",
        1,
    );
    let mut h = Harness::new("sec_v6_open", &open);
    for f in &spoofs {
        assert_eq!(h.send("web", f).verdict, Verdict::Forwarded(3), "{f:02x?}");
    }
}
