//! `Switch::process` in memory: one frame between two ports whose MACs are
//! learned, for minimum-size and full-size frames; then with 10, 1,000 and
//! 10,000 FORWARD rules in the way, for the first packets of connections
//! (every rule evaluated) and for an established flow (the flow cache
//! skips them). No devices, no syscalls: this is the pipeline's own cost
//! per frame.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

fn known_mac(c: &mut Criterion) {
    let cfg = config::parse(TOPO, Path::new("bench.toml")).expect("bench topology");
    let mut sw = Switch::new(&cfg).expect("bench rules");
    let (a, b) = (sw.port_id("a").expect("a"), sw.port_id("b").expect("b"));
    let ma = MacAddr::from_ipv4(Ipv4Addr::new(10, 0, 0, 2));
    let mb = MacAddr::from_ipv4(Ipv4Addr::new(10, 0, 0, 3));
    let ia = Ipv4Addr::new(10, 0, 0, 2);
    let ib = Ipv4Addr::new(10, 0, 0, 3);
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

/// The topology with a user FORWARD chain of `n` rules that never match
/// (sources from TEST-NET-2) ahead of `last`.
fn with_rules(n: usize, last: &str) -> Switch {
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
    let topo = format!("{TOPO}\n[rules]\ntext = \"\"\"\n{rules}\"\"\"\n");
    let cfg = config::parse(&topo, Path::new("bench.toml")).expect("bench topology");
    Switch::new(&cfg).expect("bench rules")
}

fn rules(c: &mut Criterion) {
    let (ma, ia) = (
        MacAddr::from_ipv4(Ipv4Addr::new(10, 0, 0, 2)),
        Ipv4Addr::new(10, 0, 0, 2),
    );
    let (mb, ib) = (
        MacAddr::from_ipv4(Ipv4Addr::new(10, 0, 0, 3)),
        Ipv4Addr::new(10, 0, 0, 3),
    );
    let now = Timestamp::from_secs(1);
    let mut out = Output::new();
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(1));
    for n in [10, 1_000, 10_000] {
        // New connections: a fresh source port each time, so conntrack
        // starts an entry and FORWARD runs to its last rule.
        let mut sw = with_rules(n, "-A FORWARD -p udp -j ACCEPT");
        let a = sw.port_id("a").expect("a");
        let mut port = 0u16;
        g.bench_function(format!("new_connection/{n}"), |bench| {
            bench.iter(|| {
                port = port.wrapping_add(1);
                let mut f = udp((ma, ia, port), (mb, ib, 53), &[0; 18]);
                out.clear();
                black_box(sw.process(now, a, &mut f, &mut out));
            })
        });

        // An established flow: the reply direction of a tracked exchange.
        let last = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -p udp -j ACCEPT";
        let mut sw = with_rules(n, last);
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
    g.finish();
}

criterion_group!(benches, known_mac, rules);
criterion_main!(benches);
