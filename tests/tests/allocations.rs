//! Ring 2: what the pipeline allocates per frame once warmed up. Nothing
//! for established frames, bridged, routed and masqueraded out of an
//! uplink, or over a vxlan port, nor for the gateway's own answers. The
//! first established frame of each direction of a connection stores its
//! flow-cache entry: at most two allocations (the entry and its rule
//! path). Beyond that, a connection's first packet, and a change of its
//! timeout, may make the connection table grow as it holds more (its slab
//! by a quarter, its index and timer-wheel slots by doubling): amortized,
//! a handful per thousand connections, and none once a full table
//! evicts.

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
/// and a FORWARD rule, and a connection table of `conntrack_max`.
fn topology(conntrack_max: usize) -> String {
    let extra = format!(
        r#"
[[port]]
name = "b"
network = "ov"
ip = "10.20.0.3"
{}
[rules]
text = """
*filter
-A FORWARD -s 198.51.100.0/24 -p tcp --dport 22 -j DROP
COMMIT
"""
"#,
        topos::UPLINK
    );
    let switch = format!("[switch]\nconntrack_max = {conntrack_max}\n");
    switch + &topos::overlay(&extra)
}

/// A frame in by a port, or a datagram in by the vxlan port from its VTEP,
/// and the most allocations it may make.
struct Input {
    port: PortId,
    bytes: Vec<u8>,
    datagram: bool,
    most: u64,
    /// A connection's first packet or a change of its state, which may
    /// grow the table.
    grows: bool,
}

/// A frame that allocates nothing.
fn frame(port: PortId, bytes: Vec<u8>) -> Input {
    Input {
        port,
        bytes,
        datagram: false,
        most: 0,
        grows: false,
    }
}

/// A connection's first packet.
fn new_connection(port: PortId, bytes: Vec<u8>) -> Input {
    Input {
        grows: true,
        ..frame(port, bytes)
    }
}

/// The first established frame of a direction: its flow-cache entry.
fn first_established(port: PortId, bytes: Vec<u8>) -> Input {
    Input {
        most: 2,
        ..new_connection(port, bytes)
    }
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
fn traffic(sw: &Switch, from: u16, n: u16) -> Vec<Input> {
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
    for p in from..from + n {
        // Bridged: UDP asked, answered, asked twice more; a TCP handshake
        // and data both ways.
        let (ask, answer) = ((ma, ia, p), (mb, ib, 53));
        t.push(new_connection(a, udp(ask, answer, b"ask")));
        t.push(first_established(b, udp(answer, ask, b"answer")));
        t.push(first_established(a, udp(ask, answer, b"again")));
        t.push(frame(a, udp(ask, answer, b"cached")));
        let (client, server) = ((ma, ia, p), (mb, ib, 80));
        t.push(new_connection(a, tcp(client, server, Seg::syn(1), &[])));
        t.push(first_established(
            b,
            tcp(server, client, Seg::syn_ack(9, 2), &[]),
        ));
        t.push(first_established(
            a,
            tcp(client, server, Seg::ack(2, 10), b"GET"),
        ));
        t.push(frame(b, tcp(server, client, Seg::ack(10, 5), b"200")));
        // Routed and masqueraded out of the uplink, and the answer.
        let (out, to) = ((ma, ia, p), (gw.0, far, 443));
        t.push(new_connection(a, tcp(out, to, Seg::syn(1), &[])));
        let (from, masq) = ((router, far, 443), (uplink.0, uplink.1, p));
        t.push(first_established(
            up,
            tcp(from, masq, Seg::syn_ack(7, 2), &[]),
        ));
        t.push(first_established(a, tcp(out, to, Seg::ack(2, 8), b"hello")));
        // Across the overlay: r behind the VTEP asks, a answers twice.
        let (r, at_a) = ((mr, ir, p), (ma, ia, 7));
        t.push(Input {
            datagram: true,
            ..new_connection(tun, vxlan42(&udp(r, at_a, b"ask")))
        });
        t.push(first_established(a, udp(at_a, r, b"answer")));
        t.push(frame(a, udp(at_a, r, b"more")));
        // The gateway answers: ARP and an echo request.
        t.push(frame(a, arp_request(ma, ia, gw.1)));
        t.push(frame(a, ping((ma, ia), gw, p, 1, b"ping")));
    }
    t
}

/// Sends every input through `sw`; the allocations each made.
fn run(sw: &mut Switch, inputs: &mut [Input], out: &mut Output) -> Vec<u64> {
    let now = Timestamp::from_secs(1);
    let vtep = SocketAddrV4::new(v4("198.18.0.2"), 4789);
    let mut made = Vec::with_capacity(inputs.len());
    for Input {
        port,
        bytes,
        datagram,
        ..
    } in inputs.iter_mut()
    {
        let before = alloc_count::calls();
        out.clear();
        match datagram {
            false => {
                sw.process(now, *port, bytes, out);
            }
            true => {
                if let Ok(d) = sw.decapsulate(*port, vtep, bytes) {
                    sw.process_rx(now, *port, &mut bytes[d.inner], out, d.rx);
                }
            }
        }
        made.push(alloc_count::calls() - before);
    }
    made
}

/// `topology` with the uplink's router resolved.
fn switch(conntrack_max: usize) -> Switch {
    let cfg =
        config::parse(&topology(conntrack_max), Path::new("allocations.toml")).expect("topology");
    let mut sw = Switch::new(&cfg).expect("switch");
    let up = sw.port_id("uplink").expect("uplink");
    let router = arp_reply(
        (mac("02:00:00:00:00:01"), v4("192.0.2.1")),
        (mac("02:00:00:00:0a:0a"), v4("192.0.2.10")),
    );
    run(&mut sw, &mut [frame(up, router)], &mut Output::new());
    sw
}

#[test]
fn frames_allocate_nothing_but_a_directions_first_established_its_cache_entry() {
    let mut sw = switch(262_144);
    let mut out = Output::new();
    let mut warm = traffic(&sw, 1000, 300);
    run(&mut sw, &mut warm, &mut out);
    let hits = sw.fast_path().hits;
    let mut counted = traffic(&sw, 2000, 300);
    let made = run(&mut sw, &mut counted, &mut out);
    let (mut growth, mut growing, mut entries) = (0, 0, 0);
    for (i, (input, &n)) in counted.iter().zip(&made).enumerate() {
        entries += n.min(input.most);
        if input.grows {
            growth += n.saturating_sub(input.most);
            growing += 1;
        } else {
            assert_eq!(n, 0, "frame {i} ({} of its round) allocated", i % 16);
        }
    }
    assert!(
        growth * 100 <= growing,
        "{growth} allocations in {growing} frames"
    );
    assert!(entries > 0, "the flow cache stored its entries");
    assert!(sw.fast_path().hits - hits >= 600, "the cache took part");
}

#[test]
fn a_full_table_evicts_without_allocating() {
    let mut sw = switch(256);
    let mut out = Output::new();
    let a = sw.port_id("a").expect("a");
    let (ma, ia) = (mac("02:42:0a:14:00:02"), v4("10.20.0.2"));
    let (mb, ib) = (mac("02:42:0a:14:00:03"), v4("10.20.0.3"));
    // Datagrams nobody answers: unreplied entries, the first evicted.
    let unanswered = |from: u16| -> Vec<Input> {
        (from..from + 1000)
            .map(|p| new_connection(a, udp((ma, ia, p), (mb, ib, 53), b"ask")))
            .collect()
    };
    // Until its index has grown past the tombstones evictions leave (one
    // allocation, about 2,000 datagrams in), the table is still settling.
    for from in [1000, 2000, 3000, 4000, 5000] {
        run(&mut sw, &mut unanswered(from), &mut out);
    }
    let evicted = sw.firewall().conntrack().stats().early_drop;
    let made = run(&mut sw, &mut unanswered(10_000), &mut out);
    assert_eq!(made.iter().sum::<u64>(), 0, "allocations while evicting");
    let now_evicted = sw.firewall().conntrack().stats().early_drop;
    assert_eq!(now_evicted - evicted, 1000, "each datagram evicted one");
}
