//! Ring 2 for the gateway's services: DHCP and DNS exchanges through the
//! pipeline, replies parsed back field by field.

use std::net::Ipv4Addr;

use packet::icmpv4::{msg, Icmpv4Packet};
use packet::ipv4::Ipv4Packet;
use packet::tcp::{TcpFlags, TcpPacket};
use packet::udp::UdpPacket;
use packet::{MacAddr, Parsed, L4};
use vswitch::dhcp::{DhcpRepr, MessageType};
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{dhcp, mac, tcp, udp, Seg};
use vswitch_tests::harness::Harness;

const TOPO: &str = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[network]]
name = "back"
subnet = "10.20.0.0/24"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "cache"
network = "front"
ip = "dhcp"
aliases = ["redis"]

[[port]]
name = "other"
network = "back"
ip = "10.20.0.2"
"#;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The UDP payload of an emitted frame, its checksums verified.
fn udp_payload(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16, Vec<u8>) {
    let p = Parsed::parse(frame).unwrap();
    let ipv4 = Ipv4Packet::new_checked(&frame[p.l3_offset..]).unwrap();
    assert!(ipv4.verify_checksum());
    let u = UdpPacket::new_checked(ipv4.payload()).unwrap();
    assert!(u.verify_checksum_v4(ipv4.src_addr(), ipv4.dst_addr()));
    (
        ipv4.src_addr(),
        ipv4.dst_addr(),
        u.src_port(),
        u.dst_port(),
        u.payload().to_vec(),
    )
}

#[test]
fn a_dhcp_client_gets_its_ipam_address() {
    let mut h = Harness::new("svc_dhcp", TOPO);
    let cache = mac("02:42:0a:0a:00:03");
    let s = h.send(
        "cache",
        &dhcp(cache, MessageType::Discover, None, ip("10.10.0.1")),
    );
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["cache"], "answered, not flooded");
    let (src, dst, sport, dport, payload) = udp_payload(&s.frames[0].1);
    assert_eq!((src, sport, dport), (ip("10.10.0.1"), 67, 68));
    assert_eq!(dst, ip("10.10.0.3"));
    let offer = DhcpRepr::parse(&payload).unwrap();
    assert_eq!(offer.message_type, MessageType::Offer);
    assert_eq!(
        (offer.xid, offer.yiaddr, offer.chaddr),
        (0x1234_5678, ip("10.10.0.3"), cache)
    );
    assert_eq!(offer.router, Some(ip("10.10.0.1")));
    assert_eq!(offer.dns, [ip("10.10.0.1")]);
    assert_eq!(offer.subnet_mask, Some(ip("255.255.255.0")));
    assert_eq!(offer.hostname.as_deref(), Some("cache"));

    let s = h.send(
        "cache",
        &dhcp(
            cache,
            MessageType::Request,
            Some(ip("10.10.0.3")),
            ip("10.10.0.1"),
        ),
    );
    let ack = DhcpRepr::parse(&udp_payload(&s.frames[0].1).4).unwrap();
    assert_eq!(
        (ack.message_type, ack.yiaddr),
        (MessageType::Ack, ip("10.10.0.3"))
    );
    assert_eq!(ack.lease_time, Some(3600));

    // Another MAC on cache's port is not cache: port security drops it.
    let stranger = dhcp(
        mac("02:00:00:00:00:99"),
        MessageType::Discover,
        None,
        ip("10.10.0.1"),
    );
    let s = h.send("cache", &stranger);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::Spoofed));
    assert!(s.frames.is_empty());

    // Without port security it reaches the server, which knows no such
    // MAC and offers nothing.
    let open = TOPO.replace("ip = \"dhcp\"", "ip = \"dhcp\"\nport_security = false");
    let mut h = Harness::new("svc_dhcp_stranger", &open);
    let s = h.send("cache", &stranger);
    assert_eq!(s.verdict, Verdict::Local);
    assert!(s.frames.is_empty());
}

/// A query for `name` of type `qtype` from web.
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    udp(
        (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"), 41000),
        (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"), 53),
        &q,
    )
}

/// (rcode, answer count, the last four bytes).
fn answer(h: &mut Harness, name: &str, qtype: u16) -> (u8, u16, Vec<u8>) {
    let s = h.send("web", &query(name, qtype));
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["web"]);
    let (src, dst, sport, dport, r) = udp_payload(&s.frames[0].1);
    assert_eq!(
        (src, dst, sport, dport),
        (ip("10.10.0.1"), ip("10.10.0.2"), 53, 41000)
    );
    assert_eq!(&r[..2], &[0xab, 0xcd], "id echoed");
    assert_eq!(r[2] & 0x80, 0x80, "a response");
    (
        r[3] & 0x0f,
        u16::from_be_bytes([r[6], r[7]]),
        r[r.len() - 4..].to_vec(),
    )
}

#[test]
fn dns_answers_names_on_the_same_network_only() {
    let mut h = Harness::new("svc_dns", TOPO);
    assert_eq!(answer(&mut h, "cache", 1), (0, 1, vec![10, 10, 0, 3]));
    assert_eq!(answer(&mut h, "REDIS", 1), (0, 1, vec![10, 10, 0, 3]));
    // Docker's scoping: another network's name does not exist here.
    assert_eq!(answer(&mut h, "other", 1).0, 3, "NXDOMAIN");
    // Our name, no IPv6 address: NOERROR without answers.
    let (rcode, count, _) = answer(&mut h, "cache", 28);
    assert_eq!((rcode, count), (0, 0));
    // Names that are not ours: no upstream, so refused.
    assert_eq!(answer(&mut h, "example.com", 1).0, 5, "REFUSED");
    // Reverse lookup of web's address gives its name.
    let (rcode, count, _) = answer(&mut h, "2.0.10.10.in-addr.arpa", 12);
    assert_eq!((rcode, count), (0, 1));
}

#[test]
fn other_udp_ports_at_the_gateway_are_closed() {
    let mut h = Harness::new("svc_closed", TOPO);
    let f = udp(
        (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"), 41000),
        (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"), 9999),
        b"x",
    );
    let s = h.send("web", &f);
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotForUs));
    let p = Parsed::parse(&s.frames[0].1).unwrap();
    let ipv4 = Ipv4Packet::new_checked(&s.frames[0].1[p.l3_offset..]).unwrap();
    let icmp = Icmpv4Packet::new_checked(ipv4.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.code()), (msg::DST_UNREACHABLE, 3));
}

/// TOPO with an uplink whose resolver is 198.51.100.53, and its router
/// already known: (harness, uplink MAC, router MAC).
fn with_resolver(scenario: &str) -> (Harness, MacAddr, MacAddr) {
    let topo = format!(
        "{TOPO}\n[uplink]\nkind = \"afpacket\"\ninterface = \"veth-up\"\nip = \"192.0.2.10/24\"\n\
         gateway = \"192.0.2.1\"\nmac = \"02:00:00:00:0a:0a\"\ndns = \"198.51.100.53\"\n"
    );
    let mut h = Harness::new(scenario, &topo);
    let (up, router) = (mac("02:00:00:00:0a:0a"), mac("02:00:00:00:00:01"));
    // The router has made itself known on the uplink.
    let mut a = [0u8; 28];
    packet::arp::ArpRepr {
        op: packet::arp::ArpOp::Reply,
        sender_mac: router,
        sender_ip: ip("192.0.2.1"),
        target_mac: up,
        target_ip: ip("192.0.2.10"),
    }
    .emit(&mut a);
    h.send(
        "uplink",
        &vswitch_tests::frames::ether(up, router, 0x0806, &a),
    );
    (h, up, router)
}

/// The resolver's answer to `sent`: QR|RD|RA, one A record, 93.184.216.34.
fn resolved(sent: &[u8]) -> Vec<u8> {
    let mut answer = sent.to_vec();
    answer[2] = 0x81;
    answer[3] = 0x80;
    answer[7] = 1;
    answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
    answer
}

#[test]
fn names_not_ours_go_to_the_uplinks_resolver_and_back() {
    let (mut h, up, router) = with_resolver("svc_dns_forward");
    let q = query("example.com", 1);
    let s = h.send("web", &q);
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["uplink"]);
    assert_eq!(Parsed::parse(&s.frames[0].1).unwrap().dst, router);
    let (src, dst, sport, dport, sent) = udp_payload(&s.frames[0].1);
    assert_eq!(
        (src, dst, sport, dport),
        (ip("192.0.2.10"), ip("198.51.100.53"), 53053, 53)
    );
    let asked = &q[42..];
    assert_eq!(&sent[2..], &asked[2..], "the question goes on as asked");
    let ours = [sent[0], sent[1]];

    let answer = resolved(&sent);
    let back = udp(
        (router, ip("198.51.100.53"), 53),
        (up, ip("192.0.2.10"), 53053),
        &answer,
    );
    let s = h.send("uplink", &back);
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["web"]);
    let (src, dst, sport, dport, got) = udp_payload(&s.frames[0].1);
    assert_eq!(
        (src, dst, sport, dport),
        (ip("10.10.0.1"), ip("10.10.0.2"), 53, 41000)
    );
    assert_eq!(&got[..2], &[0xab, 0xcd], "the asker's identifier is back");
    assert_eq!(&got[2..], &answer[2..]);
    // The same answer again is not awaited any more.
    let again = udp(
        (router, ip("198.51.100.53"), 53),
        (up, ip("192.0.2.10"), 53053),
        &answer,
    );
    assert!(h.send("uplink", &again).frames.is_empty());
    assert_ne!(ours, [0xab, 0xcd]);
}

/// A TCP segment the gateway sent: (flags, seq, ack, payload), checksums verified.
fn tcp_segment(frame: &[u8]) -> (TcpFlags, u32, u32, Vec<u8>) {
    let p = Parsed::parse(frame).unwrap();
    let ipv4 = Ipv4Packet::new_checked(&frame[p.l3_offset..]).unwrap();
    assert!(ipv4.verify_checksum());
    assert_eq!(
        (ipv4.src_addr(), ipv4.dst_addr()),
        (ip("10.10.0.1"), ip("10.10.0.2"))
    );
    let t = TcpPacket::new_checked(ipv4.payload()).unwrap();
    assert!(t.verify_checksum_v4(ipv4.src_addr(), ipv4.dst_addr()));
    assert_eq!((t.src_port(), t.dst_port()), (53, 41000));
    (
        t.flags(),
        t.seq_number(),
        t.ack_number(),
        t.payload().to_vec(),
    )
}

#[test]
fn dns_over_tcp_answers_on_a_connection() {
    let mut h = Harness::new("svc_dns_tcp", TOPO);
    let web = (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"), 41000);
    let gw = (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"), 53);
    let ack = TcpFlags::ACK;

    let s = h.send("web", &tcp(web, gw, Seg::syn(7000), b""));
    assert_eq!(s.verdict, Verdict::Local);
    assert_eq!(s.ports(), ["web"]);
    let (flags, iss, acked, _) = tcp_segment(&s.frames[0].1);
    assert_eq!((flags, acked), (TcpFlags::SYN | ack, 7001));
    assert!(h
        .send("web", &tcp(web, gw, Seg::ack(7001, iss + 1), b""))
        .frames
        .is_empty());

    // The query of `answer` above, framed with its length (RFC 7766).
    let q = &query("cache", 1)[42..];
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    let s = h.send("web", &tcp(web, gw, Seg::ack(7001, iss + 1), &framed));
    assert_eq!(s.ports(), ["web"]);
    let (flags, seq, acked, payload) = tcp_segment(&s.frames[0].1);
    assert_eq!((flags, seq), (ack | TcpFlags::PSH, iss + 1));
    assert_eq!(acked, 7001 + framed.len() as u32);
    let len = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
    let r = &payload[2..];
    assert_eq!(len, r.len(), "one whole message");
    assert_eq!(&r[..2], &[0xab, 0xcd], "id echoed");
    assert_eq!(
        (r[2] & 0x80, r[2] & 0x02, r[3] & 0x0f),
        (0x80, 0, 0),
        "QR, no TC, NOERROR"
    );
    assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
    assert_eq!(&r[r.len() - 4..], &[10, 10, 0, 3]);

    // The client closes once it has its answer; so does the gateway.
    let (c, g) = (7001 + framed.len() as u32, iss + 1 + payload.len() as u32);
    let fin = Seg {
        flags: TcpFlags::FIN | ack,
        seq: c,
        ack: g,
    };
    let s = h.send("web", &tcp(web, gw, fin, b""));
    let (flags, seq, acked, _) = tcp_segment(&s.frames[0].1);
    assert_eq!((flags, seq, acked), (TcpFlags::FIN | ack, g, c + 1));
    assert!(h
        .send("web", &tcp(web, gw, Seg::ack(c + 1, g + 1), b""))
        .frames
        .is_empty());
    // The connection is gone: more on it is reset.
    let s = h.send("web", &tcp(web, gw, Seg::ack(c + 1, g + 1), b"\x00\x01x"));
    let (flags, seq, _, _) = tcp_segment(&s.frames[0].1);
    assert_eq!((flags, seq), (TcpFlags::RST, g + 1));
}

#[test]
fn other_tcp_ports_at_the_gateway_are_reset() {
    let mut h = Harness::new("svc_tcp_closed", TOPO);
    let web = (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"), 41000);
    let gw = (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"), 80);
    let s = h.send("web", &tcp(web, gw, Seg::syn(5), b""));
    assert_eq!(s.verdict, Verdict::Dropped(DropReason::NotForUs));
    let p = Parsed::parse(&s.frames[0].1).unwrap();
    let L4::Tcp {
        flags,
        ack,
        src_port,
        ..
    } = p.l4
    else {
        panic!("not TCP")
    };
    assert_eq!(
        (flags, ack, src_port),
        (TcpFlags::RST | TcpFlags::ACK, 6, 80)
    );
}

#[test]
fn names_not_ours_asked_over_tcp_come_back_on_the_connection() {
    let (mut h, up, router) = with_resolver("svc_dns_tcp_forward");
    let web = (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"), 41000);
    let gw = (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"), 53);
    let s = h.send("web", &tcp(web, gw, Seg::syn(100), b""));
    let iss = tcp_segment(&s.frames[0].1).1;
    h.send("web", &tcp(web, gw, Seg::ack(101, iss + 1), b""));
    let q = &query("example.com", 1)[42..];
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    let s = h.send("web", &tcp(web, gw, Seg::ack(101, iss + 1), &framed));
    // The client's data acknowledged; the query upstream by UDP.
    assert_eq!(s.ports(), ["web", "uplink"]);
    let (_, dst, _, dport, sent) = udp_payload(&s.frames[1].1);
    assert_eq!((dst, dport), (ip("198.51.100.53"), 53));
    let (flags, _, acked, data) = tcp_segment(&s.frames[0].1);
    assert_eq!(
        (flags, acked, data.len()),
        (TcpFlags::ACK, 101 + framed.len() as u32, 0)
    );

    let back = udp(
        (router, ip("198.51.100.53"), 53),
        (up, ip("192.0.2.10"), 53053),
        &resolved(&sent),
    );
    let s = h.send("uplink", &back);
    assert_eq!(s.ports(), ["web"]);
    let (flags, seq, _, payload) = tcp_segment(&s.frames[0].1);
    assert_eq!((flags, seq), (TcpFlags::ACK | TcpFlags::PSH, iss + 1));
    let r = &payload[2..];
    assert_eq!(
        usize::from(u16::from_be_bytes([payload[0], payload[1]])),
        r.len()
    );
    assert_eq!(&r[..2], &[0xab, 0xcd], "the asker's identifier is back");
    assert_eq!(&r[r.len() - 4..], &[93, 184, 216, 34]);
}

#[test]
fn dhcp_leases_survive_a_reload_of_the_rules() {
    let mut h = Harness::new("svc_dhcp_reload", TOPO);
    let cache = mac("02:42:0a:0a:00:03");
    h.send(
        "cache",
        &dhcp(cache, MessageType::Discover, None, ip("10.10.0.1")),
    );
    let s = h.send(
        "cache",
        &dhcp(
            cache,
            MessageType::Request,
            Some(ip("10.10.0.3")),
            ip("10.10.0.1"),
        ),
    );
    let ack = DhcpRepr::parse(&udp_payload(&s.frames[0].1).4).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    let leases: Vec<_> = h.switch.services().leases().collect();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].1.mac, leases[0].1.ip), (cache, ip("10.10.0.3")));

    // New rules: web may no longer reach cache.
    let changed = format!(
        "{TOPO}\n[rules]\ntext = \"\"\"\n*filter\n:FORWARD DROP [0:0]\n\
         -A FORWARD -i web -o cache -j DROP\nCOMMIT\n\"\"\"\n"
    );
    let cfg = vswitch::config::parse(&changed, std::path::Path::new("scenario.toml")).unwrap();
    h.switch.reload(&cfg).expect("reload");
    let web = (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"));
    let ping = vswitch_tests::frames::ping(web, (cache, ip("10.10.0.3")), 1, 1, b"");
    assert_eq!(
        h.send("web", &ping).verdict,
        Verdict::Dropped(DropReason::Filtered),
        "the new rules are in force"
    );

    // The lease is as it was, and the client's renewal is acknowledged
    // with the same address.
    assert_eq!(h.switch.services().leases().collect::<Vec<_>>(), leases);
    let s = h.send(
        "cache",
        &dhcp(
            cache,
            MessageType::Request,
            Some(ip("10.10.0.3")),
            ip("10.10.0.1"),
        ),
    );
    let ack = DhcpRepr::parse(&udp_payload(&s.frames[0].1).4).unwrap();
    assert_eq!(
        (ack.message_type, ack.yiaddr),
        (MessageType::Ack, ip("10.10.0.3"))
    );
}
