//! Ring 2: the pipeline in memory. Frames in by port, frames out compared
//! byte for byte, counters checked after each step.

use std::net::Ipv4Addr;
use std::time::Duration;

use packet::icmpv4::{msg, Icmpv4Packet};
use packet::ipv4::Ipv4Packet;
use packet::{MacAddr, Parsed, L3};
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{arp_request, ether, mac, ping, tagged, udp};
use vswitch_tests::harness::Harness;

const THREE_PORTS: &str = r#"
[switch]
name = "t"
fdb_aging = 300

[[network]]
name = "front"
driver = "bridge"
subnet = "10.10.0.0/24"
gateway = "10.10.0.1"

[[port]]
name = "a"
network = "front"
kind = "tap"
ip = "10.10.0.2"

[[port]]
name = "b"
network = "front"
kind = "tap"
ip = "10.10.0.3"

# A LAN segment: many hosts behind one port, so no port security.
[[port]]
name = "c"
network = "front"
kind = "afpacket"
interface = "veth-c"
ip = "10.10.0.4"
"#;

const A: &str = "02:42:0a:0a:00:02";
const B: &str = "02:42:0a:0a:00:03";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The address a Docker-style MAC (02:42 and the IPv4 address) stands for.
fn ip_of(m: MacAddr) -> Ipv4Addr {
    Ipv4Addr::new(m.0[2], m.0[3], m.0[4], m.0[5])
}

fn unicast(dst: &str, src: &str) -> Vec<u8> {
    let (dst, src) = (mac(dst), mac(src));
    udp((src, ip_of(src), 1000), (dst, ip_of(dst), 2000), b"hello")
}

#[test]
fn learns_floods_unknown_then_forwards_known() {
    let mut h = Harness::new("learn_flood", THREE_PORTS);
    let f = unicast(B, A);
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Forwarded(2));
    assert_eq!(s.ports(), ["b", "c"]);
    assert!(
        s.frames.iter().all(|(_, out)| *out == f),
        "flooded frame changed"
    );

    // b answers; a was learned, so the reply goes to a alone.
    let r = unicast(A, B);
    let s = h.send("b", &r);
    assert_eq!(s.ports(), ["a"]);
    assert_eq!(s.frames[0].1, r);

    // Now b is known too.
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["b"]);

    assert_eq!(h.stats("a").rx_packets, 2);
    assert_eq!(h.stats("a").tx_packets, 1);
    assert_eq!(h.stats("b").tx_packets, 2);
    assert_eq!(h.stats("b").tx_bytes, 2 * f.len() as u64);
    assert_eq!(h.stats("c").tx_packets, 1);
    assert_eq!(h.switch.fdb().len(), 2);
}

#[test]
fn broadcast_goes_everywhere_but_home() {
    let mut h = Harness::new("broadcast", THREE_PORTS);
    let f = ether(MacAddr::BROADCAST, mac(B), 0x88b5, &[0; 46]);
    let s = h.send("b", &f);
    assert_eq!(s.ports(), ["a", "c"]);
}

#[test]
fn destination_on_the_ingress_port_is_dropped() {
    let mut h = Harness::new("same_segment", THREE_PORTS);
    // Two hosts of the LAN behind c talk to each other: c has heard them both.
    let (x, y) = ("02:42:0a:0a:00:08", "02:42:0a:0a:00:09");
    h.send("c", &unicast(y, x));
    let s = h.send("c", &unicast(x, y));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::SameSegment));
    assert!(s.frames.is_empty());
    assert_eq!(h.stats("c").drops(DropReason::SameSegment), 1);
}

#[test]
fn entries_age_out_with_the_clock() {
    let mut h = Harness::new("aging", THREE_PORTS);
    h.send("b", &unicast(A, B));
    h.advance(Duration::from_secs(299));
    assert_eq!(h.send("a", &unicast(B, A)).ports(), ["b"]);
    // b was last seen 299 s ago; 2 s more and it is gone: flooding resumes.
    h.advance(Duration::from_secs(2));
    assert_eq!(h.send("a", &unicast(B, A)).ports(), ["b", "c"]);
    h.switch.expire(h.now);
    assert_eq!(h.switch.fdb().len(), 1, "only a's fresh entry remains");
}

#[test]
fn fdb_limit_evicts_and_keeps_forwarding() {
    let topo = THREE_PORTS.replace("fdb_aging = 300", "fdb_aging = 300\nfdb_max = 8");
    let mut h = Harness::new("fdb_limit", &topo);
    for i in 0..1000u32 {
        let b = i.to_be_bytes();
        let src = MacAddr([0x02, 0x99, b[0], b[1], b[2], b[3]]);
        let f = ether(MacAddr::BROADCAST, src, 0x88b5, &[0; 46]);
        assert_eq!(h.send("c", &f).verdict, Verdict::Forwarded(2));
    }
    assert_eq!(h.switch.fdb().len(), 8);
    assert_eq!(h.switch.fdb().evictions(), 992);
    // A real conversation still learns and forwards.
    h.send("b", &unicast(A, B));
    assert_eq!(h.send("a", &unicast(B, A)).ports(), ["b"]);
}

const VLANS: &str = r#"
[[network]]
name = "n"
driver = "bridge"
subnet = "10.20.0.0/24"
gateway = "10.20.0.1"
vlan = 10

[[network]]
name = "other"
driver = "bridge"
subnet = "10.30.0.0/24"
gateway = "10.30.0.1"

[[port]]
name = "v10"
network = "n"
kind = "tap"

[[port]]
name = "v20"
network = "n"
kind = "tap"
vlan = 20

[[port]]
name = "trunk"
network = "n"
kind = "afpacket"
interface = "veth-t"
vlan = 1
trunk = [10, 20]

[[port]]
name = "x"
network = "other"
kind = "tap"
"#;

#[test]
fn vlans_isolate_and_trunks_tag() {
    let mut h = Harness::new("vlans", VLANS);
    let own_mac = |h: &Harness, port| h.switch.port(h.port(port)).unwrap().mac;
    let bcast = ether(MacAddr::BROADCAST, own_mac(&h, "v10"), 0x88b5, &[7; 46]);

    // Access port in VLAN 10: reaches the trunk tagged 10, never VLAN 20 or the other network.
    let s = h.send("v10", &bcast);
    assert_eq!(s.ports(), ["trunk"]);
    assert_eq!(s.frames[0].1, tagged(bcast.clone(), 10));

    // Tagged 20 on the trunk: reaches v20 untagged only.
    let s = h.send("trunk", &tagged(bcast.clone(), 20));
    assert_eq!(s.ports(), ["v20"]);
    assert_eq!(s.frames[0].1, bcast);

    // A VLAN the trunk does not carry is refused and counted.
    let s = h.send("trunk", &tagged(bcast.clone(), 30));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::VlanNotAllowed));
    assert_eq!(h.stats("trunk").drops(DropReason::VlanNotAllowed), 1);

    // The same MAC was learned separately per VLAN: v10's in 10, the
    // trunk's host in 20.
    assert_eq!(h.switch.fdb().len(), 2);

    // The other network hears nothing from this one, and vice versa.
    let bcast = ether(MacAddr::BROADCAST, own_mac(&h, "x"), 0x88b5, &[7; 46]);
    let s = h.send("x", &bcast);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NoEgress));
    assert_eq!(h.stats("x").tx_packets, 0);
}

#[test]
fn gateway_answers_arp_and_is_not_flooded() {
    let mut h = Harness::new("gateway_arp", THREE_PORTS);
    let req = arp_request(mac(A), ip("10.10.0.2"), ip("10.10.0.1"));
    let s = h.send("a", &req);
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["a"]);
    let gw = MacAddr::from_ipv4(ip("10.10.0.1"));
    // Expected reply, spelled out byte by byte.
    let mut want = Vec::new();
    want.extend_from_slice(&mac(A).0);
    want.extend_from_slice(&gw.0);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    want.extend_from_slice(&gw.0);
    want.extend_from_slice(&[10, 10, 0, 1]);
    want.extend_from_slice(&mac(A).0);
    want.extend_from_slice(&[10, 10, 0, 2]);
    assert_eq!(s.frames[0].1, want);

    // ARP for another endpoint is flooded as usual, not answered.
    let s = h.send("a", &arp_request(mac(A), ip("10.10.0.2"), ip("10.10.0.3")));
    assert_eq!(s.ports(), ["b", "c"]);
}

#[test]
fn gateway_answers_ping_on_a_trunk_with_the_tag() {
    let mut h = Harness::new("gateway_ping_tagged", VLANS);
    let gw = MacAddr::from_ipv4(ip("10.20.0.1"));
    let req = tagged(
        ping(
            (mac(A), ip("10.20.0.9")),
            (gw, ip("10.20.0.1")),
            0x1234,
            7,
            b"abcdefgh",
        ),
        10,
    );
    let s = h.send("trunk", &req);
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["trunk"]);
    let reply = &s.frames[0].1;
    let p = Parsed::parse(reply).unwrap();
    assert_eq!(p.vlan(), Some(10));
    assert_eq!((p.dst, p.src), (mac(A), gw));
    let L3::Ipv4 { src, dst, .. } = p.l3 else {
        panic!("not IPv4")
    };
    assert_eq!((src, dst), (ip("10.20.0.1"), ip("10.20.0.9")));
    let ipv4 = Ipv4Packet::new_checked(&reply[p.l3_offset..]).unwrap();
    assert!(ipv4.verify_checksum());
    let icmp = Icmpv4Packet::new_checked(ipv4.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), msg::ECHO_REPLY);
    assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x1234, 7));
    assert_eq!(icmp.data(), b"abcdefgh");
}

#[test]
fn ping_with_a_bad_checksum_gets_no_answer() {
    let mut h = Harness::new("gateway_bad_csum", THREE_PORTS);
    let gw = MacAddr::from_ipv4(ip("10.10.0.1"));
    let mut req = ping((mac(A), ip("10.10.0.2")), (gw, ip("10.10.0.1")), 1, 1, b"x");
    let last = req.len() - 1;
    req[last] ^= 0xff;
    let s = h.send("a", &req);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Malformed));
    assert!(s.frames.is_empty());
}

#[test]
fn malformed_frames_are_counted_and_dropped() {
    let mut h = Harness::new("malformed", THREE_PORTS);
    let good = unicast(B, A);
    let mut lying = good.clone();
    lying[14 + 2..14 + 4].copy_from_slice(&9000u16.to_be_bytes()); // IPv4 total length beyond the frame
    let mut ihl15 = good.clone();
    ihl15[14] = 0x4f;
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 5],
        good[..13].to_vec(),
        good[..20].to_vec(),
        lying,
        ihl15,
        tagged(tagged(tagged(good.clone(), 5), 6), 7),
        ether(mac(B), MacAddr::BROADCAST, 0x88b5, &[0; 46]), // broadcast source
    ];
    for f in &bad {
        let s = h.send("a", f);
        assert!(matches!(s.verdict, Verdict::Dropped(_)), "{f:02x?} passed");
        assert!(s.frames.is_empty());
    }
    assert_eq!(h.stats("a").drops(DropReason::Malformed), 7);
    assert_eq!(h.stats("a").drops(DropReason::BadSourceMac), 1);
    assert_eq!(h.stats("a").rx_packets, bad.len() as u64);
    // And the switch still forwards.
    assert_eq!(h.send("a", &good).verdict, Verdict::Forwarded(2));
}

const TWO_NETWORKS: &str = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[network]]
name = "back"
subnet = "10.20.0.0/24"

[[port]]
name = "a"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "b"
network = "front"
ip = "10.10.0.3"

[[port]]
name = "lan"
network = "front"
kind = "afpacket"
interface = "veth-lan"

[[port]]
name = "x"
network = "back"
ip = "10.20.0.2"
"#;

fn gw_mac(s: &str) -> MacAddr {
    MacAddr::from_ipv4(ip(s))
}

fn with_ttl(mut frame: Vec<u8>, ttl: u8) -> Vec<u8> {
    let mut p = Ipv4Packet::new_checked(&mut frame[14..]).unwrap();
    p.set_ttl(ttl);
    p.fill_checksum();
    frame
}

#[test]
fn routes_through_the_gateway_with_ttl_and_macs_rewritten() {
    let mut h = Harness::new("route_same_net", TWO_NETWORKS);
    // a sends to b's address but to the gateway's MAC, as a host with a
    // route via the gateway would.
    let f = udp(
        (mac(A), ip("10.10.0.2"), 1000),
        (gw_mac("10.10.0.1"), ip("10.10.0.3"), 2000),
        b"routed",
    );
    h.send("b", &unicast(A, B)); // b is learned on its port
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Forwarded(1));
    assert_eq!(s.ports(), ["b"]);
    let mut want = f.clone();
    want[0..6].copy_from_slice(&mac(B).0);
    want[6..12].copy_from_slice(&gw_mac("10.10.0.1").0);
    let want = with_ttl(want, 63);
    assert_eq!(s.frames[0].1, want);
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut h = Harness::new("route_ttl", TWO_NETWORKS);
    let f = with_ttl(
        ping(
            (mac(A), ip("10.10.0.2")),
            (gw_mac("10.10.0.1"), ip("10.10.0.3")),
            9,
            1,
            b"t",
        ),
        1,
    );
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::TtlExceeded));
    assert_eq!(s.ports(), ["a"]);
    let reply = &s.frames[0].1;
    let p = Parsed::parse(reply).unwrap();
    let ipv4 = Ipv4Packet::new_checked(&reply[p.l3_offset..]).unwrap();
    assert_eq!(ipv4.src_addr(), ip("10.10.0.1"));
    assert_eq!(ipv4.dst_addr(), ip("10.10.0.2"));
    let icmp = Icmpv4Packet::new_checked(ipv4.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!((icmp.msg_type(), icmp.code()), (msg::TIME_EXCEEDED, 0));
    // The quote is the offending packet's IP header and what follows it.
    assert_eq!(icmp.data(), &f[14..]);
}

#[test]
fn networks_are_isolated_by_the_generated_rules() {
    let mut h = Harness::new("route_isolated", TWO_NETWORKS);
    let f = ping(
        (mac(A), ip("10.10.0.2")),
        (gw_mac("10.10.0.1"), ip("10.20.0.2")),
        1,
        1,
        b"",
    );
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Filtered));
    assert!(s.frames.is_empty());
    let f = ping(
        (mac(A), ip("10.10.0.2")),
        (gw_mac("10.10.0.1"), ip("192.0.2.1")),
        1,
        1,
        b"",
    );
    assert_eq!(
        h.send("a", &f).verdict,
        Verdict::Dropped(DropReason::NoRoute)
    );
    assert_eq!(h.stats("a").drops(DropReason::Filtered), 1);
}

#[test]
fn unknown_next_hop_is_asked_for_then_learned() {
    let mut h = Harness::new("route_arp", TWO_NETWORKS);
    let lan_mac = mac("02:00:00:00:00:77");
    let f = udp(
        (mac(A), ip("10.10.0.2"), 1),
        (gw_mac("10.10.0.1"), ip("10.10.0.77"), 2),
        b"?",
    );
    let s = h.send("a", &f);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NeighbourUnresolved));
    // The gateway broadcast "who has 10.10.0.77" to every port of the network.
    assert_eq!(s.ports(), ["a", "b", "lan"]);
    let p = Parsed::parse(&s.frames[2].1).unwrap();
    let L3::Arp(req) = p.l3 else {
        panic!("not ARP")
    };
    assert_eq!(
        (req.sender_ip, req.target_ip),
        (ip("10.10.0.1"), ip("10.10.0.77"))
    );
    // The LAN host answers; the reply is the gateway's, not flooded.
    let mut a = [0u8; 28];
    packet::arp::ArpRepr {
        op: packet::arp::ArpOp::Reply,
        sender_mac: lan_mac,
        sender_ip: ip("10.10.0.77"),
        target_mac: gw_mac("10.10.0.1"),
        target_ip: ip("10.10.0.1"),
    }
    .emit(&mut a);
    let s = h.send("lan", &ether(gw_mac("10.10.0.1"), lan_mac, 0x0806, &a));
    assert_eq!(s.verdict, Verdict::Local);
    // The retry is routed to the LAN host.
    let s = h.send("a", &f);
    assert_eq!(s.ports(), ["lan"]);
    assert_eq!(&s.frames[0].1[0..6], &lan_mac.0);
}
