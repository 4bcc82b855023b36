//! `Switch::process` in memory: one frame between two ports whose MACs are
//! learned, for minimum-size and full-size frames; then with 10, 1,000 and
//! 10,000 FORWARD rules in the way, for the first packets of connections
//! (every rule evaluated) and for an established flow (the flow cache
//! skips them); and an established flow routed and masqueraded out of an
//! uplink. No devices, no syscalls: this is the pipeline's own cost per
//! frame.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use packet::MacAddr;
use vswitch::{config, Output, Switch, Timestamp};
use vswitch_tests::frames::udp;

const TOPO: &str = r#"
[[network]]
name = "n"
driver = "bridge"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"

[[port]]
name = "a"
network = "n"
kind = "tap"
ip = "10.0.0.2"

[[port]]
name = "b"
network = "n"
kind = "tap"
ip = "10.0.0.3"
"#;

/// The ports' hosts, with the MACs Docker derives from their addresses.
const HOST_A: (MacAddr, Ipv4Addr) = (
    MacAddr([0x02, 0x42, 10, 0, 0, 2]),
    Ipv4Addr::new(10, 0, 0, 2),
);
const HOST_B: (MacAddr, Ipv4Addr) = (
    MacAddr([0x02, 0x42, 10, 0, 0, 3]),
    Ipv4Addr::new(10, 0, 0, 3),
);

fn known_mac(c: &mut Criterion) {
    let cfg = config::parse(TOPO, Path::new("bench.toml")).expect("bench topology");
    let mut sw = Switch::new(&cfg).expect("bench rules");
    let (a, b) = (sw.port_id("a").expect("a"), sw.port_id("b").expect("b"));
    let ((ma, ia), (mb, ib)) = (HOST_A, HOST_B);
    let mut out = Output::new();
    let now = Timestamp::from_secs(1);
    // Teach the switch both MACs.
    let mut back = udp((mb, ib, 2), (ma, ia, 1), &[0; 18]);
    sw.process(now, b, &mut back, &mut out);

    let mut g = c.benchmark_group("process_known_mac");
    // 18 bytes of UDP payload make a 60-byte frame (64 with FCS); 1472 make 1514.
    for (label, payload) in [("64B", 18usize), ("1500B", 1472)] {
        let mut frame = udp((ma, ia, 1), (mb, ib, 2), &vec![0xab; payload]);
        g.throughput(Throughput::Elements(1));
        g.bench_function(label, |bench| {
            bench.iter(|| {
                out.clear();
                black_box(sw.process(now, a, black_box(&mut frame), &mut out));
            })
        });
    }
    g.finish();
}

/// The topology with an uplink: the containers' traffic out is routed and
/// masqueraded.
const TOPO_UPLINK: &str = r#"
[uplink]
kind = "afpacket"
interface = "bench-up"
ip = "192.0.2.10/24"
gateway = "192.0.2.1"
mac = "02:00:00:00:0a:0a"
"#;

/// An established flow out of the uplink: routed (TTL, MACs), masqueraded
/// (addresses, ports, checksums), conntrack and the filter's cached path.
fn masqueraded(c: &mut Criterion) {
    let topo = format!("{TOPO}{TOPO_UPLINK}");
    let cfg = config::parse(&topo, Path::new("bench.toml")).expect("bench topology");
    let mut sw = Switch::new(&cfg).expect("bench rules");
    let (a, up) = (
        sw.port_id("a").expect("a"),
        sw.port_id("uplink").expect("uplink"),
    );
    let (ma, ia) = HOST_A;
    let gw = MacAddr::from_ipv4(Ipv4Addr::new(10, 0, 0, 1));
    let uplink = (
        MacAddr([0x02, 0, 0, 0, 0x0a, 0x0a]),
        Ipv4Addr::new(192, 0, 2, 10),
    );
    let router = (MacAddr([0x02, 0, 0, 0, 0, 1]), Ipv4Addr::new(192, 0, 2, 1));
    let server = Ipv4Addr::new(198, 51, 100, 7);
    let now = Timestamp::from_secs(1);
    let mut out = Output::new();
    let mut reply = vswitch_tests::frames::arp_reply(router, uplink);
    sw.process(now, up, &mut reply, &mut out);
    let mut first = udp((ma, ia, 1), (gw, server, 9000), &[0; 18]);
    sw.process(now, a, &mut first, &mut out);
    let mut back = udp((router.0, server, 9000), (uplink.0, uplink.1, 1), &[0; 18]);
    out.clear();
    sw.process(now, up, &mut back, &mut out);
    assert_eq!(out.emits().len(), 1, "the answer reaches a");
    // The flow's next frame is remembered, the one after takes the cache.
    for _ in 0..2 {
        out.clear();
        sw.process(
            now,
            a,
            &mut udp((ma, ia, 1), (gw, server, 9000), &[0; 18]),
            &mut out,
        );
    }
    assert_eq!(
        sw.fast_path().hits,
        1,
        "the exact-match cache holds the flow"
    );

    let mut g = c.benchmark_group("process_masqueraded");
    g.throughput(Throughput::Elements(1));
    g.bench_function("64B", |bench| {
        bench.iter_batched_ref(
            || udp((ma, ia, 1), (gw, server, 9000), &[0xab; 18]),
            |f| {
                out.clear();
                black_box(sw.process(now, a, f, &mut out));
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The topology with a user FORWARD chain of `n` rules that never match
/// (sources from TEST-NET-2) ahead of `last`, and `switch` as its
/// `[switch]` section.
fn with_rules(n: usize, last: &str, switch: &str) -> Switch {
    let mut rules = String::from("*filter\n:FORWARD DROP [0:0]\n");
    for i in 0..n {
        rules.push_str(&format!(
            "-A FORWARD -s 198.51.{}.{}/32 -p tcp --dport 22 -j DROP\n",
            i / 250,
            i % 250 + 1
        ));
    }
    rules.push_str(last);
    rules.push_str("\nCOMMIT\n");
    let topo = format!("[switch]\n{switch}\n{TOPO}\n[rules]\ntext = \"\"\"\n{rules}\"\"\"\n");
    let cfg = config::parse(&topo, Path::new("bench.toml")).expect("bench topology");
    Switch::new(&cfg).expect("bench rules")
}

/// New connections between hosts the switch knows: fresh ports each time,
/// so conntrack starts an entry and FORWARD runs to its last rule. After
/// the warm-up the table is full and each new entry evicts an unreplied
/// one, as under a high connection rate. Building the frame is not timed.
fn new_connections(g: &mut BenchmarkGroup<WallTime>, name: String, mut sw: Switch) {
    let ((ma, ia), (mb, ib)) = (HOST_A, HOST_B);
    let (a, b) = (sw.port_id("a").expect("a"), sw.port_id("b").expect("b"));
    let now = Timestamp::from_secs(1);
    let mut out = Output::new();
    let mut hello = udp((mb, ib, 53), (ma, ia, 53), &[0; 18]);
    sw.process(now, b, &mut hello, &mut out);
    let mut conn = 0u32;
    g.bench_function(name, |bench| {
        bench.iter_batched_ref(
            || {
                conn = conn.wrapping_add(1);
                let (sport, dport) = (1024 + (conn % 60_000) as u16, 1 + (conn / 60_000) as u16);
                udp((ma, ia, sport), (mb, ib, dport), &[0; 18])
            },
            |f| {
                out.clear();
                black_box(sw.process(now, a, f, &mut out));
            },
            BatchSize::SmallInput,
        )
    });
}

fn rules(c: &mut Criterion) {
    let ((ma, ia), (mb, ib)) = (HOST_A, HOST_B);
    let now = Timestamp::from_secs(1);
    let mut out = Output::new();
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(1));
    let accept_udp = "-A FORWARD -p udp -j ACCEPT";
    for n in [10, 1_000, 10_000] {
        // The default table (262,144 entries) outgrows the CPU's caches.
        new_connections(
            &mut g,
            format!("new_connection/{n}"),
            with_rules(n, accept_udp, ""),
        );

        // An established flow: the reply direction of a tracked exchange.
        let last = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -p udp -j ACCEPT";
        let mut sw = with_rules(n, last, "");
        let (a, b) = (sw.port_id("a").expect("a"), sw.port_id("b").expect("b"));
        let mut first = udp((mb, ib, 2), (ma, ia, 1), &[0; 18]);
        sw.process(now, b, &mut first, &mut out);
        let mut frame = udp((ma, ia, 1), (mb, ib, 2), &[0; 18]);
        g.bench_function(format!("established/{n}"), |bench| {
            bench.iter(|| {
                out.clear();
                black_box(sw.process(now, a, black_box(&mut frame), &mut out));
            })
        });
    }
    // The same with a table small enough to stay mostly cached.
    let small = with_rules(1_000, accept_udp, "conntrack_max = 16384");
    new_connections(&mut g, "new_connection_16k_table/1000".into(), small);
    g.finish();
}

criterion_group!(benches, known_mac, masqueraded, rules);
criterion_main!(benches);
