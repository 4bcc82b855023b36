//! Ring 2 for the exact-match cache: every frame of a script, and of
//! random sequences, goes through a switch that uses the cache and through
//! a copy that is tracing, which always takes the full pipeline. What comes
//! out must be the same byte for byte, and so must the rule counters, the
//! connection table, the FDB and the port counters afterwards.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use packet::ipv4::Ipv4Packet;
use packet::tcp::TcpFlags;
use packet::{MacAddr, Parsed};
use proptest::prelude::*;
use vswitch::control::respond;
use vswitch::stats::IoStats;
use vswitch::switch::RxInfo;
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{self, arp_request, mac, tcp, udp, Seg};
use vswitch_tests::harness::{Harness, Sent};
use vswitch_tests::topos;

/// Three ports on one bridge, learning free to move MACs between them; a
/// bridged DNAT and SNAT, a rule that drops one UDP port, and a short FDB
/// aging so that destinations age out within a test.
const TOPO: &str = r#"
[switch]
fdb_aging = 30

[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[port]]
name = "a"
network = "front"
ip = "10.10.0.2"
port_security = false

[[port]]
name = "b"
network = "front"
ip = "10.10.0.3"
port_security = false

[[port]]
name = "c"
network = "front"
ip = "10.10.0.4"
port_security = false

[rules]
text = """
*nat
-A PREROUTING -d 10.10.0.50/32 -p tcp --dport 80 -j DNAT --to-destination 10.10.0.3:8080
-A POSTROUTING -s 10.10.0.2/32 -o c -p udp -j SNAT --to-source 10.10.0.9
COMMIT
*filter
-A FORWARD -p udp --dport 9 -j DROP
COMMIT
"""
"#;

const PORTS: [&str; 3] = ["a", "b", "c"];

/// The hosts behind a, b and c.
fn host(i: usize) -> (MacAddr, Ipv4Addr) {
    let n = 2 + i as u8;
    (
        mac(&format!("02:42:0a:0a:00:{n:02x}")),
        Ipv4Addr::new(10, 10, 0, n),
    )
}

/// The switch under test and its tracing twin.
struct Pair {
    fast: Harness,
    full: Harness,
}

impl Pair {
    /// Both built from `topo`.
    fn of(name: &str, topo: &str) -> Pair {
        let fast = Harness::new(name, topo);
        let mut full = Harness::new(&format!("{name}-full"), topo);
        full.switch.firewall_mut().start_journal();
        Pair { fast, full }
    }

    /// On the bridge of `TOPO`, every host known, so that first packets
    /// are not flooded.
    fn new(name: &str) -> Pair {
        let mut p = Pair::of(name, TOPO);
        for (i, port) in PORTS.iter().enumerate() {
            p.send(port, &hello(i));
        }
        p
    }

    /// On `topos::published_web`, with web, the router and a LAN host known.
    fn routed(name: &str) -> Pair {
        let mut p = Pair::of(name, &topos::published_web(""));
        p.send("web", &hello(0));
        p.send("uplink", &arp_reply(ROUTER, "192.0.2.1"));
        p.send("uplink", &arp_reply(LAN, "192.0.2.50"));
        p
    }

    /// Sends `frame` in by `port` through both; they must agree.
    fn send(&mut self, port: &str, frame: &[u8]) -> Sent {
        self.both(port, |h| h.send(port, frame))
    }

    /// `send` with what the I/O layer knows of the frame.
    fn send_rx(&mut self, port: &str, frame: &[u8], rx: RxInfo) -> Sent {
        self.both(port, |h| h.send_rx(port, frame, rx))
    }

    /// Hands vxlan port `port` of both a datagram from `peer`.
    fn send_datagram(&mut self, port: &str, peer: SocketAddrV4, datagram: &[u8]) -> Sent {
        self.both(port, |h| h.send_datagram(port, peer, datagram))
    }

    /// `send` runs on both, which must agree, frames and their VTEPs.
    fn both(&mut self, port: &str, send: impl Fn(&mut Harness) -> Sent) -> Sent {
        let fast = send(&mut self.fast);
        let full = send(&mut self.full);
        assert_eq!(
            fast, full,
            "a frame in by {port}: cache and full way differ"
        );
        // The journal only grows; nothing reads it.
        self.full.switch.firewall_mut().take_journal();
        self.full.switch.firewall_mut().start_journal();
        fast
    }

    fn advance(&mut self, secs: u64) {
        self.fast.advance(Duration::from_secs(secs));
        self.full.advance(Duration::from_secs(secs));
    }

    fn flush_conntrack(&mut self) {
        self.fast.switch.firewall_mut().conntrack_mut().flush();
        self.full.switch.firewall_mut().conntrack_mut().flush();
    }

    /// The listings a user reads, and conntrack's counters (`conntrack -S`),
    /// must not tell the two apart.
    fn assert_same_state(&mut self) {
        let io = IoStats::default();
        for req in ["rules -S -c", "rules -t nat -S -c", "conntrack -L", "fdb"] {
            let fast = respond(&mut self.fast.switch, &io, self.fast.now, req);
            let full = respond(&mut self.full.switch, &io, self.full.now, req);
            assert_eq!(fast, full, "`{req}` differs");
        }
        let ports = |h: &mut Harness| {
            let json = respond(&mut h.switch, &io, h.now, "stats --json").expect("stats");
            let v: serde_json::Value = serde_json::from_str(&json).expect("stats json");
            v["ports"].clone()
        };
        assert_eq!(ports(&mut self.fast), ports(&mut self.full));
        let ct = |h: &Harness| *h.switch.firewall().conntrack().stats();
        assert_eq!(
            ct(&self.fast),
            ct(&self.full),
            "conntrack's counters differ"
        );
        assert_eq!(
            self.full.switch.fast_path().hits,
            0,
            "tracing took the cache"
        );
    }

    fn hits(&self) -> u64 {
        self.fast.switch.fast_path().hits
    }
}

/// A broadcast from host `i`, which teaches the switch where it is.
fn hello(i: usize) -> Vec<u8> {
    let (m, ip) = host(i);
    udp(
        (m, ip, 5353),
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST, 5353),
        b"hi",
    )
}

fn udp_between(from: usize, sport: u16, to: usize, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ((ms, is), (md, id)) = (host(from), host(to));
    udp((ms, is, sport), (md, id, dport), payload)
}

#[test]
fn an_established_flow_takes_the_cache_and_leaves_as_the_full_way_would() {
    let mut p = Pair::new("fast-path-udp");
    // a asks, b answers: the connection is established.
    let ask = udp_between(0, 1000, 1, 2000, b"ask");
    p.send("a", &ask);
    p.send("b", &udp_between(1, 2000, 0, 1000, b"answer"));
    // Each direction's first established frame goes the full way and is
    // remembered: the answer was b's; this is a's.
    p.send("a", &ask);
    let before = p.hits();
    for i in 0..5u8 {
        let sent = p.send("a", &udp_between(0, 1000, 1, 2000, &[i; 40]));
        assert_eq!(sent.verdict, Verdict::Forwarded(1));
        assert_eq!(sent.ports(), ["b"]);
        assert_eq!(sent.frames[0].1, udp_between(0, 1000, 1, 2000, &[i; 40]));
        p.send("b", &udp_between(1, 2000, 0, 1000, &[i; 20]));
    }
    assert_eq!(p.hits() - before, 10, "every later frame took the cache");
    p.assert_same_state();
}

#[test]
fn translated_flows_are_rewritten_on_the_cached_way_too() {
    let mut p = Pair::new("fast-path-nat");
    // SNAT: a to c's UDP port leaves from 10.10.0.9.
    let ((ma, ia), (mc, ic)) = (host(0), host(2));
    let snat = (ma, Ipv4Addr::new(10, 10, 0, 9), 1001);
    p.send("a", &udp_between(0, 1001, 2, 2000, b"one"));
    let first = p.send("c", &udp((mc, ic, 2000), snat, b"back"));
    assert_eq!(
        first.frames,
        [("a".to_owned(), udp_between(2, 2000, 0, 1001, b"back"))]
    );
    let hits = p.hits();
    for payload in [b"two", b"333"] {
        let sent = p.send("a", &udp_between(0, 1001, 2, 2000, payload));
        assert_eq!(sent.frames[0].1, udp(snat, (mc, ic, 2000), payload));
    }
    assert_eq!(p.hits(), hits + 1, "the second took the cache");
    let back = p.send("c", &udp((mc, ic, 2000), snat, b"again"));
    assert_eq!(p.hits(), hits + 2);
    assert_eq!(back.frames[0].1, udp_between(2, 2000, 0, 1001, b"again"));

    // DNAT: a's TCP to 10.10.0.50:80 is b's 8080, reached by b's MAC.
    let (mb, ib) = host(1);
    let vip = (mb, Ipv4Addr::new(10, 10, 0, 50), 80);
    p.send("a", &tcp((ma, ia, 40000), vip, Seg::syn(100), &[]));
    let back = (mb, ib, 8080);
    let syn_ack = Seg::syn_ack(500, 101);
    p.send("b", &tcp(back, (ma, ia, 40000), syn_ack, &[]));
    p.send("a", &tcp((ma, ia, 40000), vip, Seg::ack(101, 501), &[]));
    let hits = p.hits();
    let sent = p.send(
        "a",
        &tcp((ma, ia, 40000), vip, Seg::ack(101, 501), b"GET /"),
    );
    assert_eq!(p.hits(), hits + 1, "the data segment took the cache");
    assert_eq!(
        sent.frames[0].1,
        tcp((ma, ia, 40000), back, Seg::ack(101, 501), b"GET /")
    );
    let reply = p.send("b", &tcp(back, (ma, ia, 40000), Seg::ack(501, 106), b"200"));
    assert_eq!(p.hits(), hits + 2);
    assert_eq!(
        reply.frames[0].1,
        tcp(vip, (ma, ia, 40000), Seg::ack(501, 106), b"200")
    );
    p.assert_same_state();
}

#[test]
fn a_moved_or_aged_destination_or_a_forgotten_connection_goes_the_full_way() {
    let mut p = Pair::new("fast-path-invalidation");
    let there = udp_between(0, 1000, 1, 2000, b"x");
    let back = udp_between(1, 2000, 0, 1000, b"y");
    p.send("a", &there);
    p.send("b", &back);
    p.send("a", &there);
    let hits = p.hits();
    assert_eq!(p.send("a", &there).ports(), ["b"]);
    assert_eq!(p.hits(), hits + 1);

    // Nothing from b's host for longer than the FDB's aging: flooded.
    p.advance(31);
    assert_eq!(p.send("a", &there).ports(), ["b", "c"]);
    p.send("b", &back);
    assert_eq!(p.send("a", &there).ports(), ["b"]);

    // b's host shows up behind c: its frames follow it there.
    p.send("c", &udp_between(1, 2000, 0, 1000, b"moved"));
    assert_eq!(p.send("a", &there).ports(), ["c"]);
    p.send("b", &back);

    // Its connection forgotten: the datagram is NEW again, and the
    // dropped port's rule still applies to the full way.
    p.send("b", &back);
    p.send("a", &there);
    p.flush_conntrack();
    p.send("a", &there);
    let dropped = p.send("a", &udp_between(0, 1000, 1, 9, b"z"));
    assert!(matches!(dropped.verdict, Verdict::Dropped(_)));
    p.assert_same_state();
}

/// One step of a random run.
#[derive(Clone, Debug)]
enum Op {
    /// A datagram of flow `flow`, in its original direction or the reply.
    Udp {
        flow: usize,
        reply: bool,
    },
    /// A segment of the TCP connection `flow` (see `Tcp::segment`).
    Tcp {
        flow: usize,
        reply: bool,
        kind: u8,
    },
    /// Host `host` speaks from port `port`.
    Move {
        host: usize,
        port: usize,
    },
    Advance(u64),
    Flush,
}

/// (client host, client port, server host, server port): through the
/// plain bridge, the SNAT, and to the dropped port.
const UDP_FLOWS: [(usize, u16, usize, u16); 3] =
    [(0, 1000, 1, 2000), (0, 1001, 2, 2000), (1, 7, 2, 9)];

/// Per TCP connection, each side's next sequence number, so segments are
/// mostly in window.
#[derive(Clone, Copy)]
struct Tcp {
    next: [u32; 2],
}

impl Tcp {
    /// kind 0: SYN or SYN/ACK; 1: data; 2: FIN; 3: RST.
    fn segment(&mut self, reply: bool, kind: u8) -> (Seg, Vec<u8>) {
        let (me, peer) = (usize::from(reply), usize::from(!reply));
        let (seq, ack) = (self.next[me], self.next[peer]);
        let flags = |f: u8| TcpFlags(f);
        let (seg, payload, used) = match kind {
            0 if !reply => (Seg::syn(seq), vec![], 1),
            0 => (Seg::syn_ack(seq, ack), vec![], 1),
            1 => (Seg::ack(seq, ack), vec![0x5a; 30], 30),
            2 => {
                let fin = TcpFlags::FIN.0 | TcpFlags::ACK.0;
                (
                    Seg {
                        flags: flags(fin),
                        seq,
                        ack,
                    },
                    vec![],
                    1,
                )
            }
            _ => {
                let rst = TcpFlags::RST.0 | TcpFlags::ACK.0;
                (
                    Seg {
                        flags: flags(rst),
                        seq,
                        ack,
                    },
                    vec![],
                    0,
                )
            }
        };
        self.next[me] = seq.wrapping_add(used);
        (seg, payload)
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..UDP_FLOWS.len(), any::<bool>()).prop_map(|(flow, reply)| Op::Udp { flow, reply }),
        6 => (0..2usize, any::<bool>(), 0..4u8).prop_map(|(flow, reply, kind)| Op::Tcp { flow, reply, kind }),
        1 => (0..3usize, 0..3usize).prop_map(|(host, port)| Op::Move { host, port }),
        1 => prop_oneof![Just(1u64), Just(20), Just(40), Just(200)].prop_map(Op::Advance),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_sequence_leaves_the_same_frames_and_state(ops in prop::collection::vec(op(), 1..120)) {
        let mut p = Pair::new("fast-path-random");
        // Where each host is now, and each TCP connection's numbers.
        let mut at = [0usize, 1, 2];
        let mut conns = [Tcp { next: [1_000, 9_000] }, Tcp { next: [50_000, 70_000] }];
        // TCP connections: a to b directly, and c to a.
        let tcp_flows = [(0usize, 40000u16, 1usize, 80u16), (2, 41000, 0, 22)];
        for op in ops {
            match op {
                Op::Udp { flow, reply } => {
                    let (c, cp, s, sp) = UDP_FLOWS[flow];
                    let (from, f) = match reply {
                        false => (c, udp_between(c, cp, s, sp, b"req")),
                        true => (s, udp_between(s, sp, c, cp, b"resp")),
                    };
                    p.send(PORTS[at[from]], &f);
                }
                Op::Tcp { flow, reply, kind } => {
                    let (c, cp, s, sp) = tcp_flows[flow];
                    let (seg, payload) = conns[flow].segment(reply, kind);
                    let ((mc, ic), (ms, is)) = (host(c), host(s));
                    let (from, f) = match reply {
                        false => (c, tcp((mc, ic, cp), (ms, is, sp), seg, &payload)),
                        true => (s, tcp((ms, is, sp), (mc, ic, cp), seg, &payload)),
                    };
                    p.send(PORTS[at[from]], &f);
                }
                Op::Move { host: h, port } => {
                    at[h] = port;
                    p.send(PORTS[port], &hello(h));
                }
                Op::Advance(secs) => p.advance(secs),
                Op::Flush => p.flush_conntrack(),
            }
        }
        p.assert_same_state();
    }
}

const UP: &str = "02:00:00:00:0a:0a";
const ROUTER: &str = "02:00:00:00:00:01";
const LAN: &str = "02:00:00:00:00:50";

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

/// The MAC web's gateway answers with.
fn gw() -> MacAddr {
    MacAddr::from_ipv4(v4("10.10.0.1"))
}

/// An ARP reply from `mac`/`ip` to the uplink's address: the switch
/// resolves the neighbour and learns where its MAC is.
fn arp_reply(mac_s: &str, ip: &str) -> Vec<u8> {
    frames::arp_reply((mac(mac_s), v4(ip)), (mac(UP), v4("192.0.2.10")))
}

/// `frame` with its IPv4 TTL set to `ttl` and the header checksum redone.
fn with_ttl(mut frame: Vec<u8>, ttl: u8) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_checked(&mut frame[14..]).expect("ipv4");
    ip.set_ttl(ttl);
    ip.fill_checksum();
    frame
}

/// web's connection out to 198.51.100.7:443, masqueraded: (web's side,
/// the server's side as web addresses it, the server's side as it answers
/// the uplink address).
type Ends = (
    (MacAddr, Ipv4Addr, u16),
    (MacAddr, Ipv4Addr, u16),
    (MacAddr, Ipv4Addr, u16),
);

fn outbound() -> Ends {
    let web = (host(0).0, v4("10.10.0.2"), 40000);
    let server = (gw(), v4("198.51.100.7"), 443);
    let answering = (mac(ROUTER), v4("198.51.100.7"), 443);
    (web, server, answering)
}

/// Opens web's outbound connection through both; returns the next
/// sequence numbers (web's, the server's).
fn connect_out(p: &mut Pair) -> (u32, u32) {
    let (web, server, answering) = outbound();
    let up = (mac(UP), v4("192.0.2.10"), 40000);
    p.send("web", &tcp(web, server, Seg::syn(100), &[]));
    p.send("uplink", &tcp(answering, up, Seg::syn_ack(900, 101), &[]));
    p.send("web", &tcp(web, server, Seg::ack(101, 901), &[]));
    (101, 901)
}

#[test]
fn routed_flows_take_the_cache_masqueraded_out_and_published_in() {
    let mut p = Pair::routed("fast-path-routed");
    let (web, server, answering) = outbound();
    let up = (mac(UP), v4("192.0.2.10"), 40000);
    let (seq, ack) = connect_out(&mut p);
    // The server's first data segment is the reply direction's first
    // established one through the full way; the cache has web's already.
    p.send("uplink", &tcp(answering, up, Seg::ack(ack, seq), b"hello"));
    let hits = p.hits();
    let sent = p.send("web", &tcp(web, server, Seg::ack(seq, ack + 5), b"GET /"));
    let back = p.send(
        "uplink",
        &tcp(answering, up, Seg::ack(ack + 5, seq + 5), b"200"),
    );
    assert_eq!(p.hits(), hits + 2);
    // Out: masqueraded, from the uplink's MAC to the router's, TTL 63.
    let masq = (mac(UP), v4("192.0.2.10"), 40000);
    let to_router = (mac(ROUTER), v4("198.51.100.7"), 443);
    let expect = with_ttl(tcp(masq, to_router, Seg::ack(seq, ack + 5), b"GET /"), 63);
    assert_eq!(sent.frames, [("uplink".to_owned(), expect)]);
    // In: back to web from its gateway's MAC.
    let from_gw = (gw(), v4("198.51.100.7"), 443);
    let expect = with_ttl(tcp(from_gw, web, Seg::ack(ack + 5, seq + 5), b"200"), 63);
    assert_eq!(back.frames, [("web".to_owned(), expect)]);

    // A published port: the LAN host's connection to the uplink address
    // is web's port 80.
    let lan = (mac(LAN), v4("192.0.2.50"), 5555);
    let published = (mac(UP), v4("192.0.2.10"), 8080);
    let web80 = (host(0).0, v4("10.10.0.2"), 80);
    let to_lan = (gw(), v4("192.0.2.50"), 5555);
    p.send("uplink", &tcp(lan, published, Seg::syn(7), &[]));
    p.send("web", &tcp(web80, to_lan, Seg::syn_ack(70, 8), &[]));
    p.send("uplink", &tcp(lan, published, Seg::ack(8, 71), &[]));
    let hits = p.hits();
    let sent = p.send("uplink", &tcp(lan, published, Seg::ack(8, 71), b"GET /"));
    let back = p.send("web", &tcp(web80, to_lan, Seg::ack(71, 13), b"200"));
    assert_eq!(p.hits(), hits + 2);
    let from_gw = (gw(), v4("192.0.2.50"), 5555);
    let expect = with_ttl(tcp(from_gw, web80, Seg::ack(8, 71), b"GET /"), 63);
    assert_eq!(sent.frames, [("web".to_owned(), expect)]);
    let lan_mac = (mac(LAN), v4("192.0.2.50"), 5555);
    let expect = with_ttl(tcp(published, lan_mac, Seg::ack(71, 13), b"200"), 63);
    assert_eq!(back.frames, [("uplink".to_owned(), expect)]);
    p.assert_same_state();
}

#[test]
fn a_routed_flow_goes_the_full_way_for_ttl_checksum_and_next_hop_changes() {
    let mut p = Pair::routed("fast-path-routed-changes");
    let (web, server, _) = outbound();
    let (seq, ack) = connect_out(&mut p);
    let data = |n: u32| tcp(web, server, Seg::ack(seq + n, ack), b"x");
    p.send("web", &data(0));
    let hits = p.hits();
    p.send("web", &data(1));
    assert_eq!(p.hits(), hits + 1, "cached");

    // TTL 1: not forwarded; web hears time exceeded from its gateway.
    let expired = p.send("web", &with_ttl(data(2), 1));
    assert_eq!(expired.verdict, Verdict::Dropped(DropReason::TtlExceeded));
    assert_eq!(expired.ports(), ["web"]);
    // A broken header checksum: dropped as the full way drops it.
    let mut broken = data(2);
    broken[24] ^= 0xff;
    let dropped = p.send("web", &broken);
    assert_eq!(dropped.verdict, Verdict::Dropped(DropReason::Malformed));

    // The router answers from another MAC: the next segment goes there.
    let moved = "02:00:00:00:00:02";
    p.send("uplink", &arp_reply(moved, "192.0.2.1"));
    let sent = p.send("web", &data(2));
    assert_eq!(
        Parsed::parse(&sent.frames[0].1).expect("frame").dst,
        mac(moved)
    );

    // The router's entry goes stale: the gateway asks for it again.
    p.advance(61);
    let asked = p.send("web", &data(3));
    assert_eq!(
        asked.verdict,
        Verdict::Dropped(DropReason::NeighbourUnresolved)
    );
    p.assert_same_state();
}

/// One step of a random run on `topos::published_web`.
#[derive(Clone, Debug)]
enum RoutedOp {
    /// A segment of web's outbound connection (0) or of the LAN host's
    /// connection to the published port (1); `ttl` 1 or 64.
    Tcp {
        conn: usize,
        reply: bool,
        kind: u8,
        ttl: u8,
    },
    /// The router answers ARP from one of two MACs.
    Router(bool),
    Advance(u64),
    Flush,
}

fn routed_op() -> impl Strategy<Value = RoutedOp> {
    let ttl = prop_oneof![8 => Just(64u8), 1 => Just(1u8)];
    prop_oneof![
        8 => (0..2usize, any::<bool>(), 0..4u8, ttl)
            .prop_map(|(conn, reply, kind, ttl)| RoutedOp::Tcp { conn, reply, kind, ttl }),
        1 => any::<bool>().prop_map(RoutedOp::Router),
        1 => prop_oneof![Just(1u64), Just(30), Just(61)].prop_map(RoutedOp::Advance),
        1 => Just(RoutedOp::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_routed_sequence_leaves_the_same_frames_and_state(
        ops in prop::collection::vec(routed_op(), 1..120),
    ) {
        let mut p = Pair::routed("fast-path-routed-random");
        let (web, server, answering) = outbound();
        let up = (mac(UP), v4("192.0.2.10"), 40000);
        let lan = (mac(LAN), v4("192.0.2.50"), 5555);
        let published = (mac(UP), v4("192.0.2.10"), 8080);
        let web80 = (host(0).0, v4("10.10.0.2"), 80);
        let to_lan = (gw(), v4("192.0.2.50"), 5555);
        // (client side, server side as addressed, the answer's two ends,
        // the ports the client and the server speak from).
        let conns = [
            (web, server, answering, up, "web", "uplink"),
            (lan, published, web80, to_lan, "uplink", "web"),
        ];
        let mut numbers = [Tcp { next: [1_000, 9_000] }, Tcp { next: [50_000, 70_000] }];
        for op in ops {
            match op {
                RoutedOp::Tcp { conn, reply, kind, ttl } => {
                    let (client, addressed, answer_from, answer_to, cport, sport) = conns[conn];
                    let (seg, payload) = numbers[conn].segment(reply, kind);
                    let (port, f) = match reply {
                        false => (cport, tcp(client, addressed, seg, &payload)),
                        true => (sport, tcp(answer_from, answer_to, seg, &payload)),
                    };
                    p.send(port, &with_ttl(f, ttl));
                }
                RoutedOp::Router(second) => {
                    let m = if second { "02:00:00:00:00:02" } else { ROUTER };
                    p.send("uplink", &arp_reply(m, "192.0.2.1"));
                }
                RoutedOp::Advance(secs) => p.advance(secs),
                RoutedOp::Flush => p.flush_conntrack(),
            }
        }
        p.assert_same_state();
    }
}

/// `topos::overlay` with a FORWARD rule that drops one UDP port.
fn overlay() -> String {
    topos::overlay(
        r#"
[rules]
text = """
*filter
-A FORWARD -p udp --dport 9 -j DROP
COMMIT
"""
"#,
    )
}

/// a, and r behind the tunnel.
fn overlay_hosts() -> ((MacAddr, Ipv4Addr), (MacAddr, Ipv4Addr)) {
    (
        (mac("02:42:0a:14:00:02"), v4("10.20.0.2")),
        (mac("52:54:00:00:00:09"), v4("10.20.0.9")),
    )
}

/// VTEP `i` of `overlay`'s two.
fn vtep(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2 + i as u8), 4789)
}

/// VNI 42's header and `inner` behind it.
fn vxlan42(inner: &[u8]) -> Vec<u8> {
    let mut d = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    d.extend_from_slice(inner);
    d
}

/// A datagram of `len` payload bytes between a (port 1000) and r (2000).
fn a_to_r(len: usize) -> Vec<u8> {
    let ((ma, ia), (mr, ir)) = overlay_hosts();
    udp((ma, ia, 1000), (mr, ir, 2000), &vec![7; len])
}

fn r_to_a(len: usize) -> Vec<u8> {
    let ((ma, ia), (mr, ir)) = overlay_hosts();
    udp((mr, ir, 2000), (ma, ia, 1000), &vec![8; len])
}

/// UDP segmentation offload: `a_to_r` carrying segments of `seg` bytes.
fn gso(seg: u16) -> RxInfo {
    RxInfo {
        gso_size: seg,
        ..RxInfo::default()
    }
}

#[test]
fn overlay_flows_take_the_cache_to_the_vtep_their_destination_is_behind() {
    let mut p = Pair::of("fast-path-overlay", &overlay());
    p.send_datagram("tun", vtep(1), &vxlan42(&r_to_a(10)));
    p.send("a", &a_to_r(10));
    p.send_datagram("tun", vtep(1), &vxlan42(&r_to_a(10)));
    p.send("a", &a_to_r(10));
    let hits = p.hits();
    for n in 0..3 {
        let out = p.send("a", &a_to_r(20 + n));
        assert_eq!(out.ports(), ["tun"]);
        assert_eq!(out.tunnels[0].map(|t| t.vtep), Some(*vtep(1).ip()));
        assert_eq!(out.frames[0].1, a_to_r(20 + n));
        let back = p.send_datagram("tun", vtep(1), &vxlan42(&r_to_a(30 + n)));
        assert_eq!(back.frames, [("a".to_owned(), r_to_a(30 + n))]);
    }
    assert_eq!(p.hits() - hits, 6, "both directions took the cache");

    // r speaks from the other VTEP: a's frames follow it there.
    p.send_datagram("tun", vtep(0), &vxlan42(&r_to_a(10)));
    let out = p.send("a", &a_to_r(10));
    assert_eq!(out.tunnels[0].map(|t| t.vtep), Some(*vtep(0).ip()));
    let hits = p.hits();
    let out = p.send("a", &a_to_r(10));
    assert_eq!(out.tunnels[0].map(|t| t.vtep), Some(*vtep(0).ip()));
    assert_eq!(p.hits(), hits + 1);

    // Over the tunnel's MTU (1450): refused, cached flow or not; a
    // super-frame whose segments fit goes on.
    let big = p.send("a", &a_to_r(1450));
    assert!(matches!(big.verdict, Verdict::Dropped(_)), "{big:?}");
    assert!(!big.ports().contains(&"tun"));
    let fits = p.send_rx("a", &a_to_r(3000), gso(1000));
    assert_eq!(fits.ports(), ["tun"]);
    assert_eq!(p.hits(), hits + 2);
    let too_big = p.send_rx("a", &a_to_r(3000), gso(1440));
    assert!(matches!(too_big.verdict, Verdict::Dropped(_)));
    p.assert_same_state();
}

/// One step of a random run on `overlay`.
#[derive(Clone, Debug)]
enum OverlayOp {
    /// r's datagram to a from VTEP `vtep`.
    In {
        vtep: usize,
        len: usize,
    },
    /// a's datagram to r, to the dropped port when `dropped`, as a
    /// super-frame of `seg`-byte segments when `seg` is not 0.
    Out {
        len: usize,
        seg: u16,
        dropped: bool,
    },
    Advance(u64),
    Flush,
}

fn overlay_op() -> impl Strategy<Value = OverlayOp> {
    let len = prop_oneof![8 => 1..1400usize, 1 => 1400..3000usize];
    let seg = prop_oneof![4 => Just(0u16), 1 => Just(1000), 1 => Just(1440)];
    prop_oneof![
        4 => (0..2usize, len.clone()).prop_map(|(vtep, len)| OverlayOp::In { vtep, len }),
        6 => (len, seg, prop::bool::weighted(0.1))
            .prop_map(|(len, seg, dropped)| OverlayOp::Out { len, seg, dropped }),
        1 => prop_oneof![Just(1u64), Just(200), Just(400)].prop_map(OverlayOp::Advance),
        1 => Just(OverlayOp::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_overlay_sequence_leaves_the_same_frames_vteps_and_state(
        ops in prop::collection::vec(overlay_op(), 1..100),
    ) {
        let mut p = Pair::of("fast-path-overlay-random", &overlay());
        let ((ma, ia), (mr, ir)) = overlay_hosts();
        for op in ops {
            match op {
                OverlayOp::In { vtep: v, len } => {
                    p.send_datagram("tun", vtep(v), &vxlan42(&r_to_a(len)));
                }
                OverlayOp::Out { len, seg, dropped } => {
                    let dport = if dropped { 9 } else { 2000 };
                    let f = udp((ma, ia, 1000), (mr, ir, dport), &vec![7; len]);
                    p.send_rx("a", &f, gso(seg));
                }
                OverlayOp::Advance(secs) => p.advance(secs),
                OverlayOp::Flush => p.flush_conntrack(),
            }
        }
        p.assert_same_state();
    }
}

/// `topos::parented` over `parent`, whose MAC is `PARENT`.
fn parented(name: &str, driver: &str, parent: &str) -> Pair {
    let mut p = Pair::of(name, &topos::parented(driver, parent));
    for h in [&mut p.fast, &mut p.full] {
        assert!(h.switch.set_parent_mac("lan", mac(PARENT)));
    }
    p
}

const PARENT: &str = "52:54:00:00:00:99";
const SEGMENT_HOST: &str = "52:54:00:00:00:64";

#[test]
fn flows_through_a_macvlan_or_ipvlan_parent_take_the_cache_both_ways() {
    let (a, host, parent) = (mac("02:42:0a:09:00:02"), mac(SEGMENT_HOST), mac(PARENT));
    let router = MacAddr::from_ipv4(v4("10.9.0.1"));
    let (ia, ih) = (v4("10.9.0.2"), v4("10.9.0.100"));
    // (driver, a's frames go to, the host's come to, what a's
    // frames leave with as source and destination, what reaches a from)
    let drivers = [
        ("macvlan", host, a, (a, host), host),
        ("ipvlan", host, parent, (parent, host), host),
        ("ipvlan-l3", router, parent, (parent, host), router),
    ];
    for (driver, out_to, in_to, (left_from, left_to), reached_from) in drivers {
        let mut p = parented(&format!("fast-path-{driver}"), driver, "lan0");
        let out = |n: u8| udp((a, ia, 1000), (out_to, ih, 2000), &[n; 30]);
        let back = |n: u8| udp((host, ih, 2000), (in_to, ia, 1000), &[n; 30]);
        // Each side known: a's neighbour entry and the host's ARP answer
        // (ipvlan L3 routes), or their MACs (the others bridge).
        p.send("a", &arp_request(a, ia, v4("10.9.0.9")));
        p.send("a", &out(0));
        p.send("lan0", &frames::arp_reply((host, ih), (parent, ia)));
        p.send("a", &out(0));
        p.send("lan0", &back(0));
        p.send("a", &out(0));
        p.send("lan0", &back(0));
        let hits = p.hits();
        for n in 1..4 {
            let sent = p.send("a", &out(n));
            assert_eq!(sent.ports(), ["lan0"], "{driver}");
            let f = &sent.frames[0].1;
            assert_eq!((&f[0..6], &f[6..12]), (&left_to.0[..], &left_from.0[..]));
            let sent = p.send("lan0", &back(n));
            assert_eq!(sent.ports(), ["a"], "{driver}");
            let f = &sent.frames[0].1;
            assert_eq!((&f[0..6], &f[6..12]), (&a.0[..], &reached_from.0[..]));
            assert_eq!(&f[42..], &[n; 30], "{driver}");
        }
        assert_eq!(
            p.hits() - hits,
            6,
            "{driver}: both directions took the cache"
        );
        p.assert_same_state();
    }
}

#[test]
fn a_trunk_parents_flows_are_cached_with_their_vlan() {
    let mut p = parented("fast-path-trunk", "macvlan", "lan0.20");
    let (a, host) = (mac("02:42:0a:09:00:02"), mac(SEGMENT_HOST));
    let (ia, ih) = (v4("10.9.0.2"), v4("10.9.0.100"));
    let out = |n: u8| udp((a, ia, 1000), (host, ih, 2000), &[n; 30]);
    let back = |n: u8| udp((host, ih, 2000), (a, ia, 1000), &[n; 30]);
    p.send("a", &out(0));
    p.send("lan0.20", &frames::tagged(back(0), 20));
    p.send("a", &out(0));
    p.send("lan0.20", &frames::tagged(back(0), 20));
    let hits = p.hits();
    for n in 1..3 {
        let sent = p.send("a", &out(n));
        assert_eq!(
            sent.frames,
            [("lan0.20".to_owned(), frames::tagged(out(n), 20))]
        );
        let sent = p.send("lan0.20", &frames::tagged(back(n), 20));
        assert_eq!(sent.frames, [("a".to_owned(), back(n))]);
    }
    assert_eq!(p.hits() - hits, 4);
    // The same flow on another VLAN, or untagged, is not this network's.
    for wrong in [frames::tagged(back(9), 30), back(9)] {
        let sent = p.send("lan0.20", &wrong);
        assert_eq!(sent.verdict, Verdict::Dropped(DropReason::VlanNotAllowed));
    }
    p.assert_same_state();
}
