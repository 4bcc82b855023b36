//! Ring 2: once warmed up, the pipeline allocates nothing per frame. New
//! connections bridged, routed and masqueraded out of an uplink, into and
//! out of a vxlan port, their replies and established frames (cached or
//! not), a table full enough to evict, and the gateway's own answers: the
//! second pass of the same traffic must make no allocation at all.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use packet::MacAddr;
use vswitch::{config, Output, PortId, Switch, Timestamp};
use vswitch_tests::alloc_count::{self, Counting};
use vswitch_tests::frames::{arp_reply, arp_request, mac, ping, tcp, udp, Seg};
use vswitch_tests::topos;

#[global_allocator]
static ALLOC: Counting = Counting;

/// `topos::overlay` with a second tap port b, an uplink that masquerades
/// and a FORWARD rule; conntrack small enough for the runs below to fill.
fn topology() -> String {
    let extra = r#"
[[port]]
name = "b"
network = "ov"
ip = "10.20.0.3"

[uplink]
kind = "afpacket"
interface = "veth-up"
ip = "192.0.2.10/24"
gateway = "192.0.2.1"
mac = "02:00:00:00:0a:0a"

[rules]
text = """
*filter
-A FORWARD -s 198.51.100.0/24 -p tcp --dport 22 -j DROP
COMMIT
"""
"#;
    format!("[switch]\nconntrack_max = 2048\n{}", topos::overlay(extra))
}

/// A frame in by a port, or a datagram in by the vxlan port from its VTEP.
enum Input {
    Frame(PortId, Vec<u8>),
    Datagram(PortId, Vec<u8>),
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

/// VNI 42's header and `inner` behind it.
fn vxlan42(inner: &[u8]) -> Vec<u8> {
    let mut d = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    d.extend_from_slice(inner);
    d
}

/// `n` rounds of traffic, each with connections of their own.
fn traffic(sw: &Switch, first: u16, n: u16) -> Vec<Input> {
    let port = |name| sw.port_id(name).expect("port");
    let (a, b, tun, up) = (port("a"), port("b"), port("tun"), port("uplink"));
    let (ma, ia) = (mac("02:42:0a:14:00:02"), v4("10.20.0.2"));
    let (mb, ib) = (mac("02:42:0a:14:00:03"), v4("10.20.0.3"));
    let (mr, ir) = (mac("52:54:00:00:00:09"), v4("10.20.0.9"));
    let gw = (MacAddr::from_ipv4(v4("10.20.0.1")), v4("10.20.0.1"));
    let router = mac("02:00:00:00:00:01");
    let uplink = (mac("02:00:00:00:0a:0a"), v4("192.0.2.10"));
    let far = v4("198.51.100.7");
    let mut t = Vec::new();
    for p in first..first + n {
        // Bridged: UDP asked, answered, asked twice more (the first of a's
        // established frames is remembered, the next takes the cache); a
        // TCP handshake and data.
        let (ask, answer) = ((ma, ia, p), (mb, ib, 53));
        t.push(Input::Frame(a, udp(ask, answer, b"ask")));
        t.push(Input::Frame(b, udp(answer, ask, b"answer")));
        t.push(Input::Frame(a, udp(ask, answer, b"again")));
        t.push(Input::Frame(a, udp(ask, answer, b"cached")));
        let (client, server) = ((ma, ia, p), (mb, ib, 80));
        t.push(Input::Frame(a, tcp(client, server, Seg::syn(1), &[])));
        t.push(Input::Frame(
            b,
            tcp(server, client, Seg::syn_ack(9, 2), &[]),
        ));
        t.push(Input::Frame(
            a,
            tcp(client, server, Seg::ack(2, 10), b"GET"),
        ));
        t.push(Input::Frame(
            b,
            tcp(server, client, Seg::ack(10, 5), b"200"),
        ));
        // Routed and masqueraded out of the uplink, and the answer.
        let (out, to) = ((ma, ia, p), (gw.0, far, 443));
        t.push(Input::Frame(a, tcp(out, to, Seg::syn(1), &[])));
        let (from, masq) = ((router, far, 443), (uplink.0, uplink.1, p));
        t.push(Input::Frame(up, tcp(from, masq, Seg::syn_ack(7, 2), &[])));
        t.push(Input::Frame(a, tcp(out, to, Seg::ack(2, 8), b"hello")));
        // Across the overlay: r behind the VTEP asks, a answers twice.
        let (r, at_a) = ((mr, ir, p), (ma, ia, 7));
        t.push(Input::Datagram(tun, vxlan42(&udp(r, at_a, b"ask"))));
        t.push(Input::Frame(a, udp(at_a, r, b"answer")));
        t.push(Input::Frame(a, udp(at_a, r, b"more")));
        // The gateway answers: ARP and an echo request.
        t.push(Input::Frame(a, arp_request(ma, ia, gw.1)));
        t.push(Input::Frame(a, ping((ma, ia), gw, p, 1, b"ping")));
    }
    t
}

fn run(sw: &mut Switch, inputs: &mut [Input], out: &mut Output) {
    let now = Timestamp::from_secs(1);
    let vtep = SocketAddrV4::new(v4("198.18.0.2"), 4789);
    for input in inputs {
        out.clear();
        match input {
            Input::Frame(port, f) => {
                sw.process(now, *port, f, out);
            }
            Input::Datagram(port, d) => {
                if let Ok(inner) = sw.decapsulate(*port, vtep, d) {
                    let frame = &mut d[inner.inner];
                    sw.process_rx(now, *port, frame, out, inner.rx);
                }
            }
        }
    }
}

#[test]
fn a_warmed_up_pipeline_allocates_nothing_per_frame() {
    let cfg = config::parse(&topology(), Path::new("allocations.toml")).expect("topology");
    let mut sw = Switch::new(&cfg).expect("switch");
    let mut out = Output::new();
    let up = sw.port_id("uplink").expect("uplink");
    let router = arp_reply(
        (mac("02:00:00:00:00:01"), v4("192.0.2.1")),
        (mac("02:00:00:00:0a:0a"), v4("192.0.2.10")),
    );
    let mut setup = [Input::Frame(up, router)];
    run(&mut sw, &mut setup, &mut out);
    // 600 rounds open 2,400 connections into a table of 2,048: the second
    // pass evicts as the first did.
    let mut warm = traffic(&sw, 1000, 600);
    let mut counted = traffic(&sw, 2000, 600);
    run(&mut sw, &mut warm, &mut out);
    let before = alloc_count::calls();
    run(&mut sw, &mut counted, &mut out);
    let made = alloc_count::calls() - before;
    let stats = sw.fast_path();
    assert!(stats.hits >= 1200, "the cache took part: {stats:?}");
    assert!(
        sw.firewall().conntrack().stats().early_drop > 0,
        "the table evicted"
    );
    assert_eq!(made, 0, "allocations in {} frames", counted.len());
}
