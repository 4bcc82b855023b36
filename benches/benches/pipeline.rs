//! `Switch::process` in memory: one frame between two ports whose MACs are
//! learned, for minimum-size and full-size frames. No devices, no syscalls:
//! this is the pipeline's own cost per frame.

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

criterion_group!(benches, known_mac);
criterion_main!(benches);
