//! The rule engine's slow path: one TCP packet through filter FORWARD with
//! 10, 1,000 and 10,000 non-matching rules ahead of the one that accepts
//! it. Each non-matching rule fails on its source address, as most rules of
//! a long list would.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vswitch::netfilter::{
    tcp_flags, Hook, Iface, Interfaces, L4Info, Meta, NoTrace, Origin, Outcome, PacketInfo,
    Ruleset, Table,
};
use vswitch::Timestamp;

fn ruleset(misses: usize) -> Ruleset {
    let mut text = String::from("*filter\n:FORWARD DROP [0:0]\n");
    for i in 0..misses {
        text += &format!(
            "-A FORWARD -s 10.{}.{}.0/24 -i web -p tcp -m tcp --dport 80 -j DROP\n",
            i / 256 % 256,
            i % 256
        );
    }
    text += "-A FORWARD -i web -o db -p tcp -m tcp --dport 5432 -j ACCEPT\nCOMMIT\n";
    let ifaces = Interfaces {
        ports: vec!["web".into(), "db".into()],
        networks: vec!["front".into()],
    };
    Ruleset::parse(&text, &Origin::new("bench.rules"), &ifaces).expect("bench rules")
}

fn forward(c: &mut Criterion) {
    let pkt = PacketInfo {
        iif: Some(Iface {
            port: 0,
            network: 0,
        }),
        oif: Some(Iface {
            port: 1,
            network: 0,
        }),
        src: Ipv4Addr::new(192, 168, 0, 2),
        dst: Ipv4Addr::new(192, 168, 0, 3),
        protocol: 6,
        len: 60,
        l4: L4Info::Tcp {
            sport: 40000,
            dport: 5432,
            flags: tcp_flags::SYN,
        },
        ..PacketInfo::default()
    };
    let mut g = c.benchmark_group("rules_forward");
    g.throughput(Throughput::Elements(1));
    for misses in [10, 1_000, 10_000] {
        let mut rs = ruleset(misses);
        g.bench_with_input(BenchmarkId::from_parameter(misses), &misses, |b, _| {
            b.iter(|| {
                let mut meta = Meta::default();
                let o = rs.evaluate(
                    Table::Filter,
                    Hook::Forward,
                    black_box(&pkt),
                    &mut meta,
                    Timestamp::ZERO,
                    &mut NoTrace,
                );
                assert_eq!(o, Outcome::Accept);
                o
            })
        });
    }
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
