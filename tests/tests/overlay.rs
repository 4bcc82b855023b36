//! Ring 2: vxlan ports in memory. Datagrams in as a port's socket would
//! hand them over, frames out with the VTEPs they go to, counters checked.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use packet::icmpv4::{msg, Icmpv4Packet};
use packet::ipv4::Ipv4Packet;
use packet::vxlan::{OUTER_LEN, SOURCE_PORTS};
use packet::Parsed;
use vswitch::config::{self, Config};
use vswitch::switch::RxInfo;
use vswitch::vxlan::{Encap, Tunnel, TunnelDst};
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{arp_request, mac, ping, tcp, udp, Seg};
use vswitch_tests::harness::Harness;
use vswitch_tests::topos::overlay;

const A: &str = "02:42:0a:14:00:02";
/// A container behind a remote VTEP.
const R: &str = "02:00:00:00:00:99";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn peer(s: &str) -> SocketAddrV4 {
    SocketAddrV4::new(ip(s), 4789)
}

fn parse(topo: &str) -> Config {
    config::parse(topo, Path::new("scenario.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The datagram (UDP payload) port `port` of `topo` sends `inner` in,
/// its sealing counter (if it seals) starting at `clock`.
fn datagram_from(topo: &str, port: &str, clock: u64, inner: &[u8]) -> Vec<u8> {
    let cfg = parse(topo);
    let p = cfg.port(port).expect("port");
    let mut encap = Encap::new(p, clock).expect("vxlan port");
    let to = TunnelDst {
        vtep: ip("198.18.0.1"),
        src_port: 50000,
    };
    let mut out = Vec::new();
    encap.encapsulate(to, &[inner], &mut out);
    out.split_off(OUTER_LEN)
}

/// A VXLAN header for VNI `vni` and `inner` behind it.
fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut d = vec![0x08, 0, 0, 0];
    d.extend_from_slice(&(vni << 8).to_be_bytes());
    d.extend_from_slice(inner);
    d
}

fn hello(dst: &str, src: &str, src_ip: &str, dst_ip: &str) -> Vec<u8> {
    udp(
        (mac(src), ip(src_ip), 1000),
        (mac(dst), ip(dst_ip), 2000),
        b"hello",
    )
}

#[test]
fn encapsulation_bytes() {
    let cfg = parse(&overlay(""));
    let mut encap = Encap::new(cfg.port("tun").expect("tun"), 0).expect("vxlan");
    let inner = hello(R, A, "10.20.0.2", "10.20.0.9");
    let to = TunnelDst {
        vtep: ip("198.18.0.2"),
        src_port: 50000,
    };
    let mut out = Vec::new();
    encap.encapsulate(to, &[&inner[..20], &inner[20..]], &mut out);
    let mut want = vec![
        // IPv4: 83 bytes, no DF, TTL 64, UDP, 198.18.0.1 -> 198.18.0.2.
        0x45, 0, 0, 83, 0, 0, 0, 0, 64, 17, 0xee, 0x72, 198, 18, 0, 1, 198, 18, 0, 2,
        // UDP 50000 -> 4789, 63 bytes, checksum zero.
        0xc3, 0x50, 0x12, 0xb5, 0, 63, 0, 0, // VXLAN: I flag, VNI 42.
        0x08, 0, 0, 0, 0, 0, 42, 0,
    ];
    want.extend_from_slice(&inner);
    assert_eq!(out, want);

    // And in: the switch finds the inner frame of such a datagram, unchanged.
    let mut h = Harness::new("vxlan_decap_bytes", &overlay(""));
    let back = hello(A, R, "10.20.0.9", "10.20.0.2");
    let mut d = Vec::new();
    encap.encapsulate(to, &[&back], &mut d);
    assert_eq!(d[OUTER_LEN..], vxlan(42, &back));
    let sent = h.send_datagram("tun", peer("198.18.0.2"), &d[OUTER_LEN..]);
    assert_eq!(sent.verdict, Verdict::Forwarded(1));
    assert_eq!(sent.frames, [("a".to_owned(), back)]);
}

#[test]
fn remote_macs_are_learned_behind_their_vtep_and_answered_there() {
    let mut h = Harness::new("vxlan_learning", &overlay(""));
    // R asks for a's address through VTEP .3.
    let ask = arp_request(mac(R), ip("10.20.0.9"), ip("10.20.0.2"));
    let sent = h.send_datagram("tun", peer("198.18.0.3"), &vxlan(42, &ask));
    assert_eq!(sent.verdict, Verdict::Forwarded(1));
    assert_eq!(sent.frames, [("a".to_owned(), ask)]);
    let (_, _, entry) = h
        .switch
        .fdb()
        .iter()
        .find(|(_, m, _)| *m == mac(R))
        .expect("R learned");
    assert_eq!(entry.at.port, h.port("tun"));
    assert_eq!(entry.at.vtep, Some(ip("198.18.0.3")));

    // a answers R: one copy, to .3 only.
    let reply = hello(R, A, "10.20.0.2", "10.20.0.9");
    let sent = h.send("a", &reply);
    assert_eq!(sent.verdict, Verdict::Forwarded(1));
    assert_eq!(sent.frames, [("tun".to_owned(), reply.clone())]);
    let to = sent.tunnels[0].expect("a VTEP");
    assert_eq!(to.vtep, ip("198.18.0.3"));
    let parsed = Parsed::parse(&reply).expect("parses");
    assert_eq!(to.src_port, packet::vxlan::source_port(&parsed));

    // R moves behind .2: the next frame from it moves the entry.
    let again = hello(A, R, "10.20.0.9", "10.20.0.2");
    h.send_datagram("tun", peer("198.18.0.2"), &vxlan(42, &again));
    let sent = h.send("a", &reply);
    assert_eq!(
        sent.tunnels,
        [Some(TunnelDst {
            vtep: ip("198.18.0.2"),
            ..to
        })]
    );
    assert_eq!(h.stats("tun").rx_packets, 2);
    assert_eq!(h.stats("tun").tx_packets, 2);
}

#[test]
fn broadcast_and_unknown_unicast_go_to_every_remote() {
    let mut h = Harness::new("vxlan_bum", &overlay(""));
    let ask = arp_request(mac(A), ip("10.20.0.2"), ip("10.20.0.9"));
    let sent = h.send("a", &ask);
    assert_eq!(sent.verdict, Verdict::Forwarded(1));
    assert_eq!(sent.ports(), ["tun", "tun"]);
    assert!(sent.frames.iter().all(|(_, f)| *f == ask));
    let vteps: Vec<Ipv4Addr> = sent.tunnels.iter().map(|t| t.expect("vtep").vtep).collect();
    assert_eq!(vteps, [ip("198.18.0.2"), ip("198.18.0.3")]);
    let port = sent.tunnels[0].expect("vtep").src_port;
    assert!(port >= SOURCE_PORTS.0);
    assert_eq!(sent.tunnels[1].expect("vtep").src_port, port);
    assert_eq!(h.stats("tun").tx_packets, 2, "each copy counted");

    // Unknown unicast too; multicast too.
    let sent = h.send("a", &hello(R, A, "10.20.0.2", "10.20.0.9"));
    assert_eq!(sent.tunnels.len(), 2);
    let mcast = hello("01:00:5e:00:00:fb", A, "10.20.0.2", "224.0.0.251");
    assert_eq!(h.send("a", &mcast).tunnels.len(), 2);
    assert_eq!(h.stats("tun").tx_packets, 6);
}

#[test]
fn what_the_gateway_answers_a_remote_goes_back_to_its_vtep() {
    let mut h = Harness::new("vxlan_gateway", &overlay(""));
    let gw = "02:42:0a:14:00:01";
    let echo = ping(
        (mac(R), ip("10.20.0.9")),
        (mac(gw), ip("10.20.0.1")),
        7,
        1,
        b"hi",
    );
    let sent = h.send_datagram("tun", peer("198.18.0.3"), &vxlan(42, &echo));
    assert_eq!(sent.verdict, Verdict::Local);
    assert_eq!(sent.ports(), ["tun"]);
    assert_eq!(sent.tunnels[0].map(|t| t.vtep), Some(ip("198.18.0.3")));
    let reply = Parsed::parse(&sent.frames[0].1).expect("parses");
    assert_eq!((reply.src, reply.dst), (mac(gw), mac(R)));
}

#[test]
fn wrong_vni_unknown_peer_and_malformed_datagrams_are_dropped_with_reasons() {
    let mut h = Harness::new("vxlan_drops", &overlay(""));
    let frame = hello(A, R, "10.20.0.9", "10.20.0.2");
    let cases: [(SocketAddrV4, Vec<u8>, DropReason); 5] = [
        (
            peer("198.18.0.2"),
            vxlan(43, &frame),
            DropReason::VxlanBadVni,
        ),
        (
            peer("198.18.0.7"),
            vxlan(42, &frame),
            DropReason::VxlanUnknownPeer,
        ),
        (
            peer("198.18.0.2"),
            vxlan(42, &frame)[..7].to_vec(),
            DropReason::VxlanMalformed,
        ),
        (
            peer("198.18.0.2"),
            [&[0u8][..], &vxlan(42, &frame)[1..]].concat(),
            DropReason::VxlanMalformed,
        ),
        // A good header around a frame that is not one.
        (
            peer("198.18.0.2"),
            vxlan(42, &frame[..10]),
            DropReason::Malformed,
        ),
    ];
    for (from, datagram, reason) in &cases {
        let sent = h.send_datagram("tun", *from, datagram);
        assert_eq!(sent.verdict, Verdict::Dropped(*reason), "{reason}");
        assert!(sent.frames.is_empty());
    }
    let s = h.stats("tun");
    assert_eq!(s.drops(DropReason::VxlanBadVni), 1);
    assert_eq!(s.drops(DropReason::VxlanUnknownPeer), 1);
    assert_eq!(s.drops(DropReason::VxlanMalformed), 2);
    assert_eq!(s.drops(DropReason::Malformed), 1);
    assert_eq!(s.rx_packets, 5);
    assert_eq!(
        h.switch.fdb().len(),
        0,
        "nothing learned from refused datagrams"
    );
}

#[test]
fn learn_peers_takes_vteps_not_listed() {
    let mut h = Harness::new("vxlan_learn_peers", &overlay("learn_peers = true\n"));
    let frame = hello(A, R, "10.20.0.9", "10.20.0.2");
    let sent = h.send_datagram("tun", peer("198.18.0.7"), &vxlan(42, &frame));
    assert_eq!(sent.verdict, Verdict::Forwarded(1));
    let sent = h.send("a", &hello(R, A, "10.20.0.2", "10.20.0.9"));
    assert_eq!(sent.tunnels[0].map(|t| t.vtep), Some(ip("198.18.0.7")));
}

#[test]
fn static_entries_name_the_vtep() {
    let extra = "\n[[fdb]]\nmac = \"02:00:00:00:00:99\"\nport = \"tun\"\nremote = \"198.18.0.3\"\n";
    let mut h = Harness::new("vxlan_static", &overlay(extra));
    let sent = h.send("a", &hello(R, A, "10.20.0.2", "10.20.0.9"));
    assert_eq!(sent.tunnels.len(), 1);
    assert_eq!(sent.tunnels[0].map(|t| t.vtep), Some(ip("198.18.0.3")));
    // A frame from R through another VTEP does not move it.
    let from = hello(A, R, "10.20.0.9", "10.20.0.2");
    h.send_datagram("tun", peer("198.18.0.2"), &vxlan(42, &from));
    let sent = h.send("a", &hello(R, A, "10.20.0.2", "10.20.0.9"));
    assert_eq!(sent.tunnels[0].map(|t| t.vtep), Some(ip("198.18.0.3")));

    // A remote that is not one of the port's peers is a config error.
    let bad = extra.replace("198.18.0.3", "198.18.0.9");
    let err = config::parse(&overlay(&bad), Path::new("t.toml")).expect_err("refused");
    assert!(
        err.to_string()
            .contains("fdb: remote 198.18.0.9 is not one of port \"tun\"'s remote peers"),
        "{err}"
    );
}

#[test]
fn too_big_for_the_tunnel_is_answered_with_fragmentation_needed() {
    // a's own MTU is larger than the overlay's.
    let t = overlay("").replace("ip = \"10.20.0.2\"\n", "ip = \"10.20.0.2\"\nmtu = 9000\n");
    let mut h = Harness::new("vxlan_too_big", &t);
    let big = udp(
        (mac(A), ip("10.20.0.2"), 1000),
        (mac(R), ip("10.20.0.9"), 2000),
        &[7u8; 1500],
    );
    let sent = h.send("a", &big);
    assert_eq!(sent.verdict, Verdict::Dropped(DropReason::TooBig));
    assert_eq!(sent.ports(), ["a"]);
    let icmp = &sent.frames[0].1;
    let ipv4 = Ipv4Packet::new_checked(&icmp[14..]).expect("ipv4");
    assert!(ipv4.verify_checksum());
    assert_eq!(ipv4.dst_addr(), ip("10.20.0.2"));
    let m = Icmpv4Packet::new_checked(ipv4.payload()).expect("icmp");
    assert!(m.verify_checksum());
    assert_eq!((m.msg_type(), m.code()), (msg::DST_UNREACHABLE, 4));
    assert_eq!(m.echo_seq_no(), 1450, "the next-hop MTU");
    assert_eq!(&m.data()[..20], &big[14..34], "quotes the packet");
    assert_eq!(h.stats("a").drops(DropReason::TooBig), 1);

    // Exactly 1450 bytes fit.
    let fits = udp(
        (mac(A), ip("10.20.0.2"), 1000),
        (mac(R), ip("10.20.0.9"), 2000),
        &[7u8; 1450 - 28],
    );
    assert_eq!(h.send("a", &fits).tunnels.len(), 2);

    // A super-frame is judged by its segments.
    let sf = tcp(
        (mac(A), ip("10.20.0.2"), 40000),
        (mac(R), ip("10.20.0.9"), 80),
        Seg::ack(1, 1),
        &[1u8; 8000],
    );
    let rx = |gso_size| RxInfo {
        gso_size,
        ..RxInfo::default()
    };
    assert_eq!(h.send_rx("a", &sf, rx(1410)).verdict, Verdict::Forwarded(1));
    let sent = h.send_rx("a", &sf, rx(1448));
    assert_eq!(sent.verdict, Verdict::Dropped(DropReason::TooBig));
    assert_eq!(sent.ports(), ["a"], "answered");
}

#[test]
fn sealed_datagrams_round_trip_and_tampered_or_replayed_ones_are_refused() {
    let dir = std::env::temp_dir().join("vswitch-overlay-seal");
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("k");
    std::fs::write(&key, [0x42u8; 32]).expect("key");
    let sealed = format!("encrypt = true\nkey_file = \"{}\"\n", key.display());
    let ours = overlay(&sealed);
    // The peer at .2, whose remote is us.
    let theirs = ours
        .replace(
            "remote = [\"198.18.0.2\", \"198.18.0.3\"]",
            "remote = \"198.18.0.1\"",
        )
        .replace("local = \"198.18.0.1\"", "local = \"198.18.0.2\"");
    let mut h = Harness::new("vxlan_sealed", &ours);
    // Sealing costs 28 bytes more: the overlay's MTU drops to 1422.
    assert_eq!(parse(&ours).network("ov").map(|n| n.mtu), Some(1422));

    let frame = hello(A, R, "10.20.0.9", "10.20.0.2");
    let d = datagram_from(&theirs, "tun", 1_000, &frame);
    assert!(!d.windows(5).any(|w| w == b"hello"), "sealed on the wire");
    let sent = h.send_datagram("tun", peer("198.18.0.2"), &d);
    assert_eq!(sent.frames, [("a".to_owned(), frame.clone())]);
    let replay = h.send_datagram("tun", peer("198.18.0.2"), &d);
    assert_eq!(replay.verdict, Verdict::Dropped(DropReason::VxlanReplayed));
    let mut forged = datagram_from(&theirs, "tun", 2_000, &frame);
    let at = forged.len() / 2;
    forged[at] ^= 0x80;
    let sent = h.send_datagram("tun", peer("198.18.0.2"), &forged);
    assert_eq!(sent.verdict, Verdict::Dropped(DropReason::VxlanForged));
    // A plain VXLAN peer's datagram does not open either.
    let sent = h.send_datagram("tun", peer("198.18.0.2"), &vxlan(42, &frame));
    assert_eq!(sent.verdict, Verdict::Dropped(DropReason::VxlanForged));

    // Our sealed datagram opens at the peer's end.
    let cfg = parse(&theirs);
    let mut tunnel = Tunnel::new(cfg.port("tun").expect("tun")).expect("vxlan");
    let mut d = datagram_from(&ours, "tun", 1_000, &frame);
    let inner = tunnel.decap(ip("198.18.0.1"), &mut d).expect("opens");
    assert_eq!(&d[inner], &frame[..]);
}

#[test]
fn non_ip_inner_frames_cross_hashed_on_their_macs() {
    // Non-IP inner frames cross too, hashed on their MACs.
    let mut h = Harness::new("vxlan_non_ip", &overlay(""));
    let mut f = hello(R, A, "10.20.0.2", "10.20.0.9");
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    let sent = h.send("a", &f);
    assert_eq!(sent.tunnels.len(), 2);
    assert_eq!(sent.frames[0].1, f);
}
