//! Ring 2 for macvlan and ipvlan networks: endpoints and their parent
//! interface, frames in by port and out compared byte for byte.

use std::net::Ipv4Addr;

use packet::ipv4::Ipv4Packet;
use packet::{MacAddr, Parsed, L3};
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{arp_reply, arp_request, mac, ping, tagged, udp};
use vswitch_tests::harness::Harness;
use vswitch_tests::topos::parented;

const A: &str = "02:42:0a:09:00:02";
const B: &str = "02:42:0a:09:00:03";
const HOST: &str = "52:54:00:00:00:64";
const PARENT_MAC: &str = "52:54:00:00:00:99";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn harness(scenario: &str, driver: &str, parent: &str) -> Harness {
    let mut h = Harness::new(scenario, &parented(driver, parent));
    assert!(h.switch.set_parent_mac("lan", mac(PARENT_MAC)));
    h
}

#[test]
fn macvlan_endpoints_keep_their_macs_on_the_segment() {
    let mut h = harness("macvlan", "macvlan", "lan0");
    // A LAN host asks for a; both endpoints hear it, the switch does not
    // answer for anyone.
    let who = arp_request(mac(HOST), ip("10.9.0.100"), ip("10.9.0.2"));
    let s = h.send("lan0", &who);
    assert_eq!(s.verdict, Verdict::Forwarded(2));
    assert_eq!(s.ports(), ["a", "b"]);
    assert_eq!(s.frames[0].1, who);
    // a answers with its own MAC, unchanged on the segment.
    let reply = arp_reply((mac(A), ip("10.9.0.2")), (mac(HOST), ip("10.9.0.100")));
    let s = h.send("a", &reply);
    assert_eq!(s.ports(), ["lan0"]);
    assert_eq!(s.frames[0].1, reply);
    // The gateway is the LAN's router: a's ARP for it goes to the segment.
    let gw = arp_request(mac(A), ip("10.9.0.2"), ip("10.9.0.1"));
    let s = h.send("a", &gw);
    assert_eq!(s.ports(), ["b", "lan0"]);
    assert!(s.frames.iter().all(|(_, f)| *f == gw), "not answered");
    // Unicast from the segment: for an endpoint's MAC only.
    let to_a = ping(
        (mac(HOST), ip("10.9.0.100")),
        (mac(A), ip("10.9.0.2")),
        1,
        1,
        b"x",
    );
    let s = h.send("lan0", &to_a);
    assert_eq!(s.ports(), ["a"]);
    assert_eq!(s.frames[0].1, to_a);
    let elsewhere = ping(
        (mac(HOST), ip("10.9.0.100")),
        (mac("52:54:00:00:00:65"), ip("10.9.0.101")),
        1,
        1,
        b"x",
    );
    let s = h.send("lan0", &elsewhere);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotAnEndpoint));
    assert_eq!(h.stats("lan0").drops(DropReason::NotAnEndpoint), 1);
}

#[test]
fn macvlan_trunk_parent_tags_and_requires_its_vlan() {
    let mut h = harness("macvlan_trunk", "macvlan", "lan0.20");
    let who = arp_request(mac(A), ip("10.9.0.2"), ip("10.9.0.100"));
    let s = h.send("a", &who);
    assert_eq!(s.ports(), ["b", "lan0.20"]);
    assert_eq!(s.frames[0].1, who, "untagged to the sibling");
    let mut want = who[..12].to_vec();
    want.extend_from_slice(&[0x81, 0x00, 0x00, 20]);
    want.extend_from_slice(&who[12..]);
    assert_eq!(s.frames[1].1, want, "tagged 20 on the parent");

    // Tagged 20 from the segment: popped for the endpoint.
    let reply = arp_reply((mac(HOST), ip("10.9.0.100")), (mac(A), ip("10.9.0.2")));
    let s = h.send("lan0.20", &tagged(reply.clone(), 20));
    assert_eq!(s.ports(), ["a"]);
    assert_eq!(s.frames[0].1, reply);
    // Untagged or another VLAN: not this network's.
    let s = h.send("lan0.20", &reply);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::VlanNotAllowed));
    let s = h.send("lan0.20", &tagged(reply, 30));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::VlanNotAllowed));
}

#[test]
fn ipvlan_l2_shows_the_parents_mac_and_demultiplexes_by_address() {
    let mut h = harness("ipvlan_l2", "ipvlan", "lan0");
    let (host, parent) = (mac(HOST), mac(PARENT_MAC));
    // The LAN asks for b: both endpoints hear it; b's answer leaves with
    // the parent's MAC, in the Ethernet header and inside the ARP.
    let who = arp_request(host, ip("10.9.0.100"), ip("10.9.0.3"));
    assert_eq!(h.send("lan0", &who).ports(), ["a", "b"]);
    let reply = arp_reply((mac(B), ip("10.9.0.3")), (host, ip("10.9.0.100")));
    let s = h.send("b", &reply);
    assert_eq!(s.ports(), ["lan0"]);
    assert_eq!(
        s.frames[0].1,
        arp_reply((parent, ip("10.9.0.3")), (host, ip("10.9.0.100")))
    );

    // In: the parent's MAC and b's address reach b, with b's own MAC.
    let to_b = |dst: MacAddr| {
        udp(
            (host, ip("10.9.0.100"), 5000),
            (dst, ip("10.9.0.3"), 80),
            b"in",
        )
    };
    let s = h.send("lan0", &to_b(parent));
    assert_eq!(s.ports(), ["b"]);
    assert_eq!(s.frames[0].1, to_b(mac(B)));

    // Out: b's unicast carries the parent's MAC as its source, nothing else changed.
    let from_b = |src: MacAddr| {
        udp(
            (src, ip("10.9.0.3"), 80),
            (host, ip("10.9.0.100"), 5000),
            b"out",
        )
    };
    let s = h.send("b", &from_b(mac(B)));
    assert_eq!(s.ports(), ["lan0"]);
    assert_eq!(s.frames[0].1, from_b(parent));

    // The parent's MAC with an address nobody here holds is the host's.
    let s = h.send(
        "lan0",
        &udp(
            (host, ip("10.9.0.100"), 5000),
            (parent, ip("10.9.0.77"), 80),
            b"?",
        ),
    );
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotAnEndpoint));
    // Endpoints still reach each other with their own MACs.
    h.send("a", &arp_request(mac(A), ip("10.9.0.2"), ip("10.9.0.9")));
    let ab = udp(
        (mac(B), ip("10.9.0.3"), 1),
        (mac(A), ip("10.9.0.2"), 2),
        b"ab",
    );
    let s = h.send("b", &ab);
    assert_eq!(s.ports(), ["a"]);
    assert_eq!(s.frames[0].1, ab);
}

fn ttl(frame: &[u8]) -> u8 {
    let p = Parsed::parse(frame).unwrap();
    let ipv4 = Ipv4Packet::new_checked(&frame[p.l3_offset..]).unwrap();
    assert!(ipv4.verify_checksum());
    ipv4.ttl()
}

#[test]
fn ipvlan_l3_routes_between_endpoints_and_the_segment() {
    let mut h = harness("ipvlan_l3", "ipvlan-l3", "lan0");
    let (host, parent, router) = (
        mac(HOST),
        mac(PARENT_MAC),
        MacAddr::from_ipv4(ip("10.9.0.1")),
    );
    // a's ARP for a LAN address is answered by the switch, as its router.
    let s = h.send("a", &arp_request(mac(A), ip("10.9.0.2"), ip("10.9.0.100")));
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["a"]);
    assert_eq!(
        s.frames[0].1,
        arp_reply((router, ip("10.9.0.100")), (mac(A), ip("10.9.0.2")))
    );

    // a's packet: the switch asks the segment only, as a, with the parent's MAC.
    let out = ping(
        (mac(A), ip("10.9.0.2")),
        (router, ip("10.9.0.100")),
        7,
        1,
        b"l3",
    );
    let s = h.send("a", &out);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NeighbourUnresolved));
    assert_eq!(s.ports(), ["lan0"]);
    assert_eq!(
        s.frames[0].1,
        arp_request(parent, ip("10.9.0.2"), ip("10.9.0.100"))
    );
    let s = h.send(
        "lan0",
        &arp_reply((host, ip("10.9.0.100")), (parent, ip("10.9.0.2"))),
    );
    assert_eq!(s.verdict, Verdict::Local);
    let s = h.send("a", &out);
    assert_eq!(s.ports(), ["lan0"]);
    let sent = &s.frames[0].1;
    assert_eq!((&sent[0..6], &sent[6..12]), (&host.0[..], &parent.0[..]));
    assert_eq!(ttl(sent), 63);
    assert_eq!(&sent[34..], &out[34..], "the ICMP message is untouched");

    // The segment asks for b: the switch answers with the parent's MAC.
    let s = h.send("lan0", &arp_request(host, ip("10.9.0.100"), ip("10.9.0.3")));
    assert_eq!(s.ports(), ["lan0"]);
    assert_eq!(
        s.frames[0].1,
        arp_reply((parent, ip("10.9.0.3")), (host, ip("10.9.0.100")))
    );
    // ...but not for the gateway, a router on the segment, nor broadcast on.
    let s = h.send("lan0", &arp_request(host, ip("10.9.0.100"), ip("10.9.0.1")));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotRouted));
    assert!(s.frames.is_empty());
    // In: routed to b with b's MAC.
    h.send("b", &arp_request(mac(B), ip("10.9.0.3"), ip("10.9.0.9")));
    let inbound = ping(
        (host, ip("10.9.0.100")),
        (parent, ip("10.9.0.3")),
        8,
        1,
        b"in",
    );
    let s = h.send("lan0", &inbound);
    assert_eq!(s.ports(), ["b"]);
    let got = &s.frames[0].1;
    assert_eq!((&got[0..6], &got[6..12]), (&mac(B).0[..], &router.0[..]));
    assert_eq!(ttl(got), 63);

    // Off the subnet: by the gateway, which the switch asks for.
    let far = ping(
        (mac(A), ip("10.9.0.2")),
        (router, ip("198.51.100.1")),
        9,
        1,
        b"far",
    );
    let s = h.send("a", &far);
    assert_eq!(s.ports(), ["lan0"]);
    let p = Parsed::parse(&s.frames[0].1).unwrap();
    let L3::Arp(req) = p.l3 else {
        panic!("not ARP")
    };
    assert_eq!(req.target_ip, ip("10.9.0.1"));

    // No broadcast or multicast crosses, either way.
    let bcast = |src: MacAddr, from: &str| {
        udp(
            (src, ip(from), 68),
            (MacAddr::BROADCAST, ip("10.9.0.255"), 9),
            b"b",
        )
    };
    let s = h.send("a", &bcast(mac(A), "10.9.0.2"));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotRouted));
    let s = h.send("lan0", &bcast(host, "10.9.0.100"));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotRouted));
    assert!(s.frames.is_empty());
}
