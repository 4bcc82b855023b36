//! The connection table on its own: the fast path (lookup and `track` of
//! an established flow, in tables of 10k and 1M entries), the slow path
//! (a new flow tracked and confirmed), and the heap held per entry,
//! measured by a counting allocator.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conntrack::{Config, Conntrack, CtL4, CtPacket, Tuple};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vswitch_tests::alloc_count::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

const NOW: Duration = Duration::from_secs(10);

/// The i-th distinct TCP flow: 2^24 source addresses times 16 ports.
fn flow(i: u32) -> Tuple {
    Tuple {
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 4))),
        dst: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
        protocol: 6,
        src_port: 40000 + (i & 15) as u16,
        dst_port: 443,
    }
}

fn tcp(tuple: Tuple, flags: u8, seq: u32, ack: u32) -> CtPacket {
    CtPacket {
        tuple,
        len: 52,
        l4: CtL4::Tcp {
            flags,
            seq,
            ack,
            window: 65_000,
            wscale: None,
            payload_len: 0,
        },
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A table of `n` established TCP connections.
fn table(n: u32) -> Conntrack<()> {
    let mut ct = Conntrack::new(Config {
        max_entries: n as usize + 1024,
        ..Config::default()
    });
    for i in 0..n {
        let t = flow(i);
        let id = ct.track(NOW, &tcp(t, SYN, 1000, 0)).id;
        if let Some(id) = id {
            ct.confirm(id).expect("room");
        }
        ct.track(NOW, &tcp(t.reverse(), SYN | ACK, 5000, 1001));
        ct.track(NOW, &tcp(t, ACK, 1001, 5001));
    }
    assert_eq!(ct.len(), n as usize);
    ct
}

fn established(c: &mut Criterion) {
    for (label, n) in [("10k", 10_000u32), ("1M", 1_000_000)] {
        let mut ct = table(n);
        let mut g = c.benchmark_group("conntrack_established");
        g.throughput(Throughput::Elements(1));
        // Spread over many flows so the 1M case pays its cache misses.
        let probes: Vec<Tuple> = (0..4096u32)
            .map(|i| flow(i.wrapping_mul(2_654_435_761) % n))
            .collect();
        let mut k = 0usize;
        g.bench_function(BenchmarkId::new("lookup", label), |b| {
            b.iter(|| {
                k = (k + 1) & 4095;
                black_box(ct.lookup(black_box(&probes[k])))
            })
        });
        let acks: Vec<CtPacket> = probes.iter().map(|t| tcp(*t, ACK, 1001, 5001)).collect();
        g.bench_function(BenchmarkId::new("track", label), |b| {
            b.iter(|| {
                k = (k + 1) & 4095;
                black_box(ct.track(NOW, black_box(&acks[k])))
            })
        });
        g.finish();

        let before = alloc_count::calls();
        for p in &acks {
            black_box(ct.track(NOW, p));
        }
        let allocs = alloc_count::calls() - before;
        println!("conntrack {label}: {allocs} allocations in 4096 established track() calls");
    }
}

fn new_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("conntrack_new");
    g.throughput(Throughput::Elements(1));
    // Flows are new until the table holds 1M; then it starts over.
    const LIMIT: u32 = 1 << 20;
    let mut ct: Conntrack<()> = Conntrack::new(Config {
        max_entries: LIMIT as usize,
        ..Config::default()
    });
    let mut next = 0u32;
    g.bench_function("syn_track_confirm", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if next >= LIMIT {
                    ct.flush();
                    next = 0;
                }
                let batch = left.min(u64::from(LIMIT - next));
                let start = Instant::now();
                for _ in 0..batch {
                    let t = ct.track(NOW, &tcp(flow(next), SYN, 1000, 0));
                    if let Some(id) = t.id {
                        black_box(ct.confirm(id)).ok();
                    }
                    next += 1;
                }
                spent += start.elapsed();
                left -= batch;
            }
            spent
        })
    });
    g.finish();
}

/// Live heap per entry at 1M established entries, from the allocator's
/// count, and as the table reckons it.
fn memory(_c: &mut Criterion) {
    let n = 1_000_000u32;
    let before = alloc_count::live_bytes();
    let ct = table(n);
    let live = alloc_count::live_bytes() - before;
    println!(
        "conntrack memory at {n} entries: {} bytes/entry allocated ({} reckoned by the table)",
        live / n as usize,
        ct.heap_bytes() / n as usize
    );
    drop(ct);
}

criterion_group!(benches, memory, established, new_flows);
criterion_main!(benches);
