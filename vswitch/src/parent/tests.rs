use super::*;
use packet::arp::ArpOp;
use packet::ethernet::EthernetRepr;
use packet::ipv4::Ipv4Repr;

use crate::output::TagEdit;

const PARENT: PortId = PortId(2);
const PARENT_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 0x99]);
const ROUTER: MacAddr = MacAddr([0x02, 0x42, 10, 9, 0, 1]);
const A: MacAddr = MacAddr([0x02, 0x42, 10, 9, 0, 2]);
const B: MacAddr = MacAddr([0x02, 0x42, 10, 9, 0, 3]);
const LAN: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 0x01]);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 0, last)
}

fn parent(kind: Kind) -> Parent {
    Parent {
        port: PARENT,
        kind,
        mac: PARENT_MAC,
        endpoints: vec![(Some(ip(2)), A), (Some(ip(3)), B)],
    }
}

fn eth(dst: MacAddr, src: MacAddr, ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0; ethernet::HEADER_LEN];
    EthernetRepr {
        dst,
        src,
        ethertype: ty,
    }
    .emit(&mut f);
    f.extend_from_slice(payload);
    f
}

fn arp(op: ArpOp, src: (MacAddr, Ipv4Addr), target: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut a = [0; 28];
    ArpRepr {
        op,
        sender_mac: src.0,
        sender_ip: src.1,
        target_mac: target.0,
        target_ip: target.1,
    }
    .emit(&mut a);
    let dst = match op {
        ArpOp::Request => MacAddr::BROADCAST,
        _ => target.0,
    };
    eth(dst, src.0, ethertype::ARP, &a)
}

fn ipv4(dst_mac: MacAddr, src_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0; Ipv4Repr::HEADER_LEN + 4];
    Ipv4Repr {
        src,
        dst,
        protocol: 253, // RFC 3692 experimentation: no L4 header to parse
        ttl: 64,
        payload_len: 4,
        ident: 7,
        dont_frag: true,
        dscp_ecn: 0,
    }
    .emit(&mut p[..Ipv4Repr::HEADER_LEN]);
    p[Ipv4Repr::HEADER_LEN..].copy_from_slice(b"data");
    eth(dst_mac, src_mac, ethertype::IPV4, &p)
}

fn ingress(p: &Parent, frame: &mut [u8]) -> Result<bool, DropReason> {
    let parsed = Parsed::parse(frame).unwrap();
    p.ingress(&parsed, frame, ROUTER)
}

#[test]
fn ipvlan_l2_sends_out_with_the_parents_mac() {
    let p = parent(Kind::IpvlanL2);
    let lan_ip = Ipv4Addr::new(10, 9, 0, 100);
    let mut frame = ipv4(LAN, A, ip(2), lan_ip);
    let mut out = Output::new();
    out.forward(PARENT, TagEdit::Keep);
    p.egress(&mut out, &mut frame);
    // In place: nothing but the source MAC changed.
    assert_eq!(frame, ipv4(LAN, PARENT_MAC, ip(2), lan_ip));
    assert_eq!(out.emits()[0].payload, Payload::Ingress);
}

#[test]
fn ipvlan_l2_arp_to_the_parent_gets_a_copy_with_the_parents_mac() {
    let p = parent(Kind::IpvlanL2);
    let lan_ip = Ipv4Addr::new(10, 9, 0, 100);
    let request = arp(ArpOp::Request, (A, ip(2)), (MacAddr::ZERO, lan_ip));
    let mut frame = request.clone();
    let mut out = Output::new();
    out.forward(PortId(1), TagEdit::Keep);
    out.forward(PARENT, TagEdit::Push(20));
    p.egress(&mut out, &mut frame);
    let sibling = out.to_vec(&out.emits()[0].clone(), &frame);
    assert_eq!(sibling, request, "the sibling endpoint sees A's own MAC");
    let wire = out.to_vec(&out.emits()[1].clone(), &frame);
    let expected = arp(ArpOp::Request, (PARENT_MAC, ip(2)), (MacAddr::ZERO, lan_ip));
    let mut tagged = expected[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0, 20]);
    tagged.extend_from_slice(&expected[12..]);
    assert_eq!(wire, tagged);
}

#[test]
fn set_source_finds_arp_behind_a_tag() {
    let lan_ip = Ipv4Addr::new(10, 9, 0, 100);
    let plain = arp(ArpOp::Reply, (A, ip(2)), (LAN, lan_ip));
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0, 20]);
    tagged.extend_from_slice(&plain[12..]);
    set_source(&mut tagged, PARENT_MAC);
    let want = arp(ArpOp::Reply, (PARENT_MAC, ip(2)), (LAN, lan_ip));
    assert_eq!(&tagged[..12], &want[..12]);
    assert_eq!(&tagged[16..], &want[12..]);
    // Too short to be Ethernet: left alone.
    let mut runt = vec![1, 2, 3];
    set_source(&mut runt, PARENT_MAC);
    assert_eq!(runt, [1, 2, 3]);
}

#[test]
fn ipvlan_l2_demultiplexes_the_parents_mac_by_address() {
    let p = parent(Kind::IpvlanL2);
    let lan_ip = Ipv4Addr::new(10, 9, 0, 100);
    let mut frame = ipv4(PARENT_MAC, LAN, lan_ip, ip(3));
    assert_eq!(ingress(&p, &mut frame), Ok(true));
    assert_eq!(frame, ipv4(B, LAN, lan_ip, ip(3)));

    // An ARP reply to the parent's MAC: destination and target hardware
    // address become the endpoint's.
    let mut reply = arp(ArpOp::Reply, (LAN, lan_ip), (PARENT_MAC, ip(2)));
    assert_eq!(ingress(&p, &mut reply), Ok(true));
    assert_eq!(reply, arp(ArpOp::Reply, (LAN, lan_ip), (A, ip(2))));

    // Nobody holds the address: the host's, not ours.
    let mut other = ipv4(PARENT_MAC, LAN, lan_ip, ip(50));
    assert_eq!(ingress(&p, &mut other), Err(DropReason::NotAnEndpoint));
    // Another machine's unicast, seen in promiscuous mode.
    let mut theirs = ipv4(MacAddr([2, 0, 0, 0, 0, 7]), LAN, lan_ip, ip(2));
    assert_eq!(ingress(&p, &mut theirs), Err(DropReason::NotAnEndpoint));
    // Broadcast reaches every endpoint untouched.
    let mut who = arp(ArpOp::Request, (LAN, lan_ip), (MacAddr::ZERO, ip(2)));
    let before = who.clone();
    assert_eq!(ingress(&p, &mut who), Ok(false));
    assert_eq!(who, before);
}

#[test]
fn macvlan_takes_unicast_for_its_endpoints_only() {
    let p = parent(Kind::Macvlan);
    let lan_ip = Ipv4Addr::new(10, 9, 0, 100);
    let mut to_a = ipv4(A, LAN, lan_ip, ip(2));
    let before = to_a.clone();
    assert_eq!(ingress(&p, &mut to_a), Ok(false));
    assert_eq!(to_a, before);
    let mut to_parent = ipv4(PARENT_MAC, LAN, lan_ip, ip(2));
    assert_eq!(ingress(&p, &mut to_parent), Err(DropReason::NotAnEndpoint));
    // macvlan endpoints keep their MACs on the way out.
    let mut out = Output::new();
    out.forward(PARENT, TagEdit::Keep);
    let mut frame = ipv4(LAN, A, ip(2), lan_ip);
    p.egress(&mut out, &mut frame);
    assert_eq!(frame, ipv4(LAN, A, ip(2), lan_ip));
}

#[test]
fn ipvlan_l3_routes_and_answers_arp_by_side() {
    let p = parent(Kind::IpvlanL3);
    let lan_ip = Ipv4Addr::new(192, 168, 9, 1);
    let mut frame = ipv4(PARENT_MAC, LAN, lan_ip, ip(2));
    assert_eq!(ingress(&p, &mut frame), Ok(true));
    assert_eq!(frame, ipv4(ROUTER, LAN, lan_ip, ip(2)), "to the router");
    let mut bcast = ipv4(MacAddr::BROADCAST, LAN, lan_ip, Ipv4Addr::BROADCAST);
    assert_eq!(ingress(&p, &mut bcast), Err(DropReason::NotRouted));

    let req = |from: Ipv4Addr, target: Ipv4Addr| ArpRepr {
        op: ArpOp::Request,
        sender_mac: A,
        sender_ip: from,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    };
    // From an endpoint: any address but its own.
    assert!(p.answers_arp(PortId(0), &req(ip(2), lan_ip)));
    assert!(p.answers_arp(PortId(0), &req(ip(2), ip(3))));
    assert!(!p.answers_arp(PortId(0), &req(ip(2), ip(2))), "DAD");
    // From the segment: endpoint addresses only.
    assert!(p.answers_arp(PARENT, &req(lan_ip, ip(3))));
    assert!(!p.answers_arp(PARENT, &req(lan_ip, ip(77))));
    // Not in L2 mode: there the endpoints answer for themselves.
    assert!(!parent(Kind::IpvlanL2).answers_arp(PARENT, &req(lan_ip, ip(3))));
}
