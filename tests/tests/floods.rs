//! Hostile frames and floods in memory: every bad frame is counted under
//! its reason, the tables stop at their limits, and good traffic goes on.

use std::net::Ipv4Addr;
use std::time::Duration;

use packet::MacAddr;
use vswitch::{DropReason, Verdict};
use vswitch_tests::frames::{ether, mac, tcp, udp, Seg};
use vswitch_tests::harness::Harness;
use vswitch_tests::hostile;

const TOPO: &str = r#"
[switch]
name = "flood"
fdb_max = 1000
conntrack_max = 5000

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
name = "lan"
network = "front"
kind = "afpacket"
interface = "veth-lan"
"#;

const WEB: &str = "02:42:0a:0a:00:02";
const DB: &str = "02:42:0a:0a:00:03";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn web() -> (MacAddr, Ipv4Addr) {
    (mac(WEB), ip("10.10.0.2"))
}

fn db() -> (MacAddr, Ipv4Addr) {
    (mac(DB), ip("10.10.0.3"))
}

#[test]
fn each_hostile_frame_is_counted_under_its_reason_and_forwarding_goes_on() {
    let mut h = Harness::new("hostile", TOPO);
    let good = udp((web().0, web().1, 1), (db().0, db().1, 2), b"good");
    h.send(
        "db",
        &udp((db().0, db().1, 2), (web().0, web().1, 1), b"hi"),
    );
    let list = hostile::frames(web(), db());
    for f in &list {
        let before = h.stats("web").drops(f.reason);
        let s = h.send("web", &f.frame);
        assert_eq!(s.verdict, Verdict::Dropped(f.reason), "{}", f.name);
        assert!(s.frames.is_empty(), "{}", f.name);
        assert_eq!(h.stats("web").drops(f.reason), before + 1, "{}", f.name);
        // Between any two, a good frame still goes straight to db.
        let s = h.send("web", &good);
        assert_eq!(s.ports(), ["db"], "after {}", f.name);
        assert_eq!(s.frames[0].1, good);
    }
    assert_eq!(h.stats("web").total_drops(), list.len() as u64);
    // Nothing a hostile frame said was learned: web and db only.
    assert_eq!(h.switch.fdb().len(), 2);
}

#[test]
fn a_mac_flood_fills_the_fdb_to_its_limit_and_no_further() {
    let mut h = Harness::new("mac_flood", TOPO);
    h.send(
        "db",
        &udp((db().0, db().1, 2), (web().0, web().1, 1), b"hi"),
    );
    // 50,000 sources behind the LAN port, unicast to unknown hosts so storm
    // control (broadcast and multicast only) is not what stops them.
    for i in 0..50_000u32 {
        let b = i.to_be_bytes();
        let src = MacAddr([0x02, 0x77, b[0], b[1], b[2], b[3]]);
        let dst = MacAddr([0x02, 0x88, b[0], b[1], b[2], b[3]]);
        let s = h.send("lan", &ether(dst, src, 0x88b5, &[0; 46]));
        assert_eq!(s.verdict, Verdict::Forwarded(2));
        if i % 1000 == 0 {
            h.advance(Duration::from_millis(1));
        }
    }
    assert_eq!(h.switch.fdb().len(), 1000);
    assert_eq!(h.switch.fdb().evictions(), 50_000 + 1 - 1000);
    // The endpoints that speak are learned again and switched, not flooded.
    h.send(
        "web",
        &udp((web().0, web().1, 1), (db().0, db().1, 2), b"a"),
    );
    let s = h.send("db", &udp((db().0, db().1, 2), (web().0, web().1, 1), b"b"));
    assert_eq!(s.ports(), ["web"]);
    assert_eq!(h.switch.fdb().len(), 1000);
}

#[test]
fn a_syn_flood_fills_conntrack_with_early_drop_while_an_established_connection_goes_on() {
    let mut h = Harness::new("syn_flood", TOPO);
    let client = (web().0, web().1, 40000);
    let server = (db().0, db().1, 5432);
    // The live connection: handshake and a first exchange make it assured.
    h.send("web", &tcp(client, server, Seg::syn(100), &[]));
    h.send("db", &tcp(server, client, Seg::syn_ack(900, 101), &[]));
    h.send("web", &tcp(client, server, Seg::ack(101, 901), b"q"));
    h.send("db", &tcp(server, client, Seg::ack(901, 102), b"r"));
    let (mut cseq, mut sseq) = (102u32, 902u32);
    let mut exchange = |h: &mut Harness| {
        let q = tcp(client, server, Seg::ack(cseq, sseq), b"query");
        assert_eq!(h.send("web", &q).ports(), ["db"], "client -> server");
        cseq += 5;
        let r = tcp(server, client, Seg::ack(sseq, cseq), b"row");
        assert_eq!(h.send("db", &r).ports(), ["web"], "server -> client");
        sseq += 3;
    };
    exchange(&mut h);

    // 100,000 SYNs from the LAN's hosts to db, each a new flow, none answered.
    let (mut passed, mut full) = (0, 0);
    for i in 0..100_000u32 {
        let b = i.to_be_bytes();
        let src = (
            MacAddr([0x02, 0x66, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 10, 1 + b[1] % 200, b[2]),
            1024 + (i % 60_000) as u16,
        );
        let s = h.send("lan", &tcp(src, server, Seg::syn(i), &[]));
        match s.verdict {
            Verdict::Forwarded(_) => passed += 1,
            Verdict::Dropped(DropReason::ConntrackFull) => full += 1,
            v => panic!("SYN {i}: {v:?}"),
        }
        if i % 10_000 == 0 {
            exchange(&mut h);
            h.advance(Duration::from_millis(100));
        }
    }
    let ct = h.switch.firewall().conntrack();
    assert_eq!(ct.len(), 5000, "conntrack at its limit");
    // Early drop made room for new flows: every SYN was tracked in turn.
    assert_eq!((passed, full), (100_000, 0));
    assert!(ct.stats().early_drop >= 95_000, "{:?}", ct.stats());
    exchange(&mut h);
}
