//! The seed corpus: real frames and conversations, and every hostile frame
//! the tests know, for each target. `vswitch-fuzz seeds` writes them to
//! `fuzz/corpus/<target>/`; they are kept in the repository so a run
//! starts from inputs that reach deep into each parser.

use std::net::Ipv4Addr;

use packet::tcp::TcpFlags;
use packet::vnet::{flags, gso, VnetHdr};
use packet::MacAddr;
use vswitch::dhcp::message::Op;
use vswitch::dhcp::{DhcpRepr, MessageType};
use vswitch_tests::captures;
use vswitch_tests::frames::{arp, arp_request, dhcp, ether, mac, ping, tagged, tcp, udp, Seg};
use vswitch_tests::hostile;

use crate::targets::{encode_records, SWITCH_TOPO};

/// (target, file name, bytes).
pub type Seed = (&'static str, String, Vec<u8>);

pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    out.extend(packet());
    out.extend(switch());
    out.extend(rules());
    out.extend(dns());
    out.extend(dhcp_messages());
    out.extend(capture());
    out.extend(config());
    out
}

// The ports of `SWITCH_TOPO`, in order.
const WEB: u8 = 0;
const DB: u8 = 1;
const CACHE: u8 = 2;
const OPEN: u8 = 3;
const TRUNK: u8 = 4;
const UPLINK: u8 = 6;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("seed address")
}

fn web(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (mac("02:42:0a:0a:00:02"), ip("10.10.0.2"), port)
}

fn db(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (mac("02:42:0a:0a:00:03"), ip("10.10.0.3"), port)
}

fn gw(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (MacAddr::from_ipv4(ip("10.10.0.1")), ip("10.10.0.1"), port)
}

fn no_port(e: (MacAddr, Ipv4Addr, u16)) -> (MacAddr, Ipv4Addr) {
    (e.0, e.1)
}

fn good_frames() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("udp", udp(web(4000), db(4001), b"hello")),
        ("tcp-syn", tcp(web(40000), db(5432), Seg::syn(1), &[])),
        (
            "ping",
            ping(no_port(web(0)), no_port(db(0)), 7, 1, b"abcdefgh"),
        ),
        (
            "arp-request",
            arp_request(web(0).0, web(0).1, ip("10.10.0.1")),
        ),
        (
            "dhcp-discover",
            dhcp(
                mac("02:42:0a:0a:00:04"),
                MessageType::Discover,
                None,
                ip("10.10.0.1"),
            ),
        ),
        ("tagged-udp", tagged(udp(web(1), db(2), b"v"), 20)),
        ("ipv6-udp", hostile::ipv6(web(0).0, db(0).0, 2, 0)),
    ]
}

fn packet() -> Vec<Seed> {
    let mut out: Vec<Seed> = good_frames()
        .into_iter()
        .map(|(n, f)| ("packet", format!("good-{n}"), f))
        .collect();
    for h in hostile::frames(no_port(web(0)), no_port(db(0))) {
        out.push(("packet", format!("hostile-{}", h.name), h.frame));
    }
    // A TSO super-frame behind its virtio-net header, as a TAP hands it over.
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let frame = tcp(web(40000), db(5432), Seg::ack(1, 1), &payload);
    let hdr = VnetHdr {
        flags: flags::NEEDS_CSUM,
        gso_type: gso::TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut tso = hdr.to_bytes().to_vec();
    tso.extend_from_slice(&frame);
    out.push(("packet", "vnet-tso".into(), tso));
    out
}

fn switch() -> Vec<Seed> {
    let seed = |name: &str, records: Vec<(u8, u8, Vec<u8>)>| -> Seed {
        let bytes = encode_records(records.iter().map(|(p, f, b)| (*p, *f, &b[..])));
        ("switch", name.to_owned(), bytes)
    };
    let mut out = Vec::new();
    // Each hostile frame from web, then a good one.
    let mut hostile_run = Vec::new();
    for h in hostile::frames(no_port(web(0)), no_port(db(0))) {
        hostile_run.push((WEB, 0, h.frame));
        hostile_run.push((WEB, 0, udp(web(1), db(2), b"ok")));
    }
    out.push(seed("hostile-then-good", hostile_run));
    let psh = TcpFlags(TcpFlags::PSH.0 | TcpFlags::ACK.0);
    out.push(seed(
        "tcp-conversation",
        vec![
            (WEB, 0, tcp(web(40000), db(5432), Seg::syn(100), &[])),
            (
                DB,
                0,
                tcp(db(5432), web(40000), Seg::syn_ack(900, 101), &[]),
            ),
            (WEB, 4, tcp(web(40000), db(5432), Seg::ack(101, 901), &[])),
            (
                WEB,
                1,
                tcp(
                    web(40000),
                    db(5432),
                    Seg {
                        flags: psh,
                        seq: 101,
                        ack: 901,
                    },
                    b"SELECT 1;",
                ),
            ),
            (WEB, 2, tcp(web(40001), db(23), Seg::syn(5), &[])),
            (WEB, 2, udp(web(40002), db(24), b"closed")),
        ],
    ));
    out.push(seed(
        "dhcp-lease",
        vec![
            (
                CACHE,
                0,
                dhcp(
                    mac("02:42:0a:0a:00:04"),
                    MessageType::Discover,
                    None,
                    ip("10.10.0.1"),
                ),
            ),
            (
                CACHE,
                4,
                dhcp(
                    mac("02:42:0a:0a:00:04"),
                    MessageType::Request,
                    Some(ip("10.10.0.4")),
                    ip("10.10.0.1"),
                ),
            ),
        ],
    ));
    out.push(seed(
        "gateway-arp-ping-dns",
        vec![
            (WEB, 0, arp_request(web(0).0, web(0).1, ip("10.10.0.1"))),
            (WEB, 2, ping(no_port(web(0)), no_port(gw(0)), 1, 1, b"p")),
            (WEB, 0, udp(web(41000), gw(53), &dns_query("db", 1))),
            (
                WEB,
                0,
                udp(web(41001), gw(53), &dns_query("example.com", 1)),
            ),
        ],
    ));
    let up = mac("02:00:00:00:0a:0a");
    let router = mac("02:00:00:00:00:01");
    let router_reply = arp(
        up,
        packet::arp::ArpRepr {
            op: packet::arp::ArpOp::Reply,
            sender_mac: router,
            sender_ip: ip("192.0.2.1"),
            target_mac: up,
            target_ip: ip("192.0.2.10"),
        },
    );
    let outside = (router, ip("198.51.100.7"), 443);
    out.push(seed(
        "uplink-nat",
        vec![
            (
                WEB,
                0,
                tcp(web(40000), (gw(0).0, outside.1, 443), Seg::syn(1), &[]),
            ),
            (UPLINK, 0, router_reply),
            (
                WEB,
                0,
                tcp(web(40000), (gw(0).0, outside.1, 443), Seg::syn(1), &[]),
            ),
            (
                UPLINK,
                0,
                tcp(outside, (up, ip("192.0.2.10"), 8080), Seg::syn(77), &[]),
            ),
            (
                OPEN,
                0,
                tcp(
                    (mac("02:42:0a:0a:00:09"), ip("10.10.0.9"), 1),
                    db(81),
                    Seg::syn(1),
                    &[],
                ),
            ),
        ],
    ));
    let bcast = ether(MacAddr::BROADCAST, web(0).0, 0x88b5, &[0; 46]);
    out.push(seed(
        "trunk-and-storm",
        (0..30)
            .map(|_| (WEB, 0, bcast.clone()))
            .chain([(TRUNK, 0, tagged(udp(web(1), db(2), b"t"), 20))])
            .chain([(TRUNK, 0, tagged(udp(web(1), db(2), b"t"), 30))])
            .collect(),
    ));
    out
}

/// A DNS query for `name` of type `qtype`, recursion desired.
fn dns_query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fn rules() -> Vec<Seed> {
    let topo = SWITCH_TOPO;
    let start = topo.find("*raw").expect("rules in the topology");
    let end = topo.rfind("COMMIT").expect("rules end") + "COMMIT\n".len();
    let docker = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n\
        -A FORWARD -o front -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A FORWARD -o front -j DOCKER\n-A FORWARD -i front ! -o front -j ACCEPT\n\
        -A DOCKER-USER -j RETURN\nCOMMIT\n";
    vec![
        (
            "rules",
            "topology".into(),
            topo.as_bytes()[start..end].to_vec(),
        ),
        ("rules", "docker".into(), docker.as_bytes().to_vec()),
        (
            "rules",
            "counters-and-goto".into(),
            b"*filter\n:X - [3:4]\n[1:2] -A FORWARD -p tcp ! --syn -g X\n-A X -j RETURN\nCOMMIT\n"
                .to_vec(),
        ),
    ]
}

fn dns() -> Vec<Seed> {
    let mut loop_ptr = dns_query("web", 1);
    // The name becomes a compression pointer to itself.
    loop_ptr.truncate(12);
    loop_ptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut edns = dns_query("www", 28);
    edns[11] = 1;
    edns.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let mut tcp = Vec::new();
    for q in [dns_query("db", 1), dns_query("2.0.10.10.in-addr.arpa", 12)] {
        tcp.extend_from_slice(&(q.len() as u16).to_be_bytes());
        tcp.extend_from_slice(&q);
    }
    vec![
        ("dns", "a-db".into(), dns_query("db", 1)),
        ("dns", "aaaa-www-edns".into(), edns),
        ("dns", "ptr".into(), dns_query("2.0.10.10.in-addr.arpa", 12)),
        ("dns", "any-upstream".into(), dns_query("example.com", 255)),
        ("dns", "pointer-loop".into(), loop_ptr),
        ("dns", "tcp-two-queries".into(), tcp),
    ]
}

fn dhcp_messages() -> Vec<Seed> {
    let client = mac("02:42:0a:0a:00:04");
    let msg = |ty: MessageType, requested: Option<Ipv4Addr>| {
        let mut m = DhcpRepr::new(Op::BootRequest, ty, 0x1234_5678, client);
        m.requested_ip = requested;
        m.server_id = requested.map(|_| ip("10.10.0.1"));
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        b
    };
    let mut overrun = msg(MessageType::Discover, None);
    overrun.truncate(overrun.len() - 2);
    overrun.extend_from_slice(&[12, 200, b'x']);
    vec![
        ("dhcp", "discover".into(), msg(MessageType::Discover, None)),
        (
            "dhcp",
            "request".into(),
            msg(MessageType::Request, Some(ip("10.10.0.4"))),
        ),
        ("dhcp", "release".into(), msg(MessageType::Release, None)),
        ("dhcp", "inform".into(), msg(MessageType::Inform, None)),
        ("dhcp", "option-overrun".into(), overrun),
    ]
}

fn capture() -> Vec<Seed> {
    let pcap = captures::conversation().pcap;
    // The same first frame as pcapng: section header, interface, one
    // enhanced packet block.
    let frame = udp(web(1), db(2), b"ng");
    let mut ng = Vec::new();
    let block = |ng: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        ng.extend_from_slice(&ty.to_le_bytes());
        ng.extend_from_slice(&len.to_le_bytes());
        ng.extend_from_slice(body);
        ng.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut ng, 0x0a0d_0d0a, &shb);
    let mut idb = vec![1, 0, 0, 0];
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut ng, 1, &idb);
    let mut epb = Vec::new();
    for x in [0u32, 0, 1_000_000, frame.len() as u32, frame.len() as u32] {
        epb.extend_from_slice(&x.to_le_bytes());
    }
    epb.extend_from_slice(&frame);
    epb.resize(epb.len().div_ceil(4) * 4, 0);
    block(&mut ng, 6, &epb);
    vec![
        ("capture", "conversation.pcap".into(), pcap),
        ("capture", "one-frame.pcapng".into(), ng),
    ]
}

fn config() -> Vec<Seed> {
    let example = include_str!("../../examples/bridge.toml");
    vec![
        (
            "config",
            "switch-topology.toml".into(),
            SWITCH_TOPO.as_bytes().to_vec(),
        ),
        (
            "config",
            "bridge-example.toml".into(),
            example.as_bytes().to_vec(),
        ),
        (
            "config",
            "replay.toml".into(),
            captures::TOPO.as_bytes().to_vec(),
        ),
    ]
}
