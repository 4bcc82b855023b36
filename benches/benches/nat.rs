//! NAT on its own: the per-packet rewrite of an established 64-byte TCP
//! frame (each direction), and the binding of a new connection in a table
//! of 10,000 bound ones, with its source port free and with it taken (a
//! port search).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use conntrack::{Config, Conntrack, CtL4, CtPacket, Dir, Tuple};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nat::{bind, rewrite, NatRng, Translation};
use packet::checksum::{finish, pseudo_header_v4, sum};

const NOW: Duration = Duration::from_secs(1);
const UPLINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Tuple {
    Tuple {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        protocol: 6,
        src_port: sport,
        dst_port: dport,
    }
}

fn syn(t: &Tuple) -> CtPacket {
    CtPacket {
        tuple: *t,
        len: 60,
        l4: CtL4::Tcp {
            flags: 0x02,
            seq: 1,
            ack: 0,
            window: 64240,
            wscale: Some(7),
            payload_len: 0,
        },
    }
}

/// A 64-byte Ethernet frame: IPv4, TCP ACK with 10 bytes of data.
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = finish(sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = vec![0u8; 30];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[12] = 0x50;
    l4[13] = 0x10;
    let c = finish(pseudo_header_v4(src, dst, 6, l4.len()) + sum(&l4));
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend(ip);
    f.extend(l4);
    f
}

/// A table holding `n` connections from distinct hosts, all from port
/// 40000 to the same server, masqueraded: the first keeps 40000, the
/// others were moved.
fn bound_table(n: u32, rng: &mut NatRng) -> Conntrack<()> {
    let mut conns = Conntrack::new(Config::default());
    let masq = Translation::masquerade(UPLINK, None, false, false);
    for i in 0..n {
        let t = tcp(Ipv4Addr::from(0x0a00_0000 | (i + 2)), 40000, REMOTE, 443);
        if let Some(id) = conns.track(NOW, &syn(&t)).id {
            if bind(&mut conns, id, &masq, rng).is_ok() {
                conns.confirm(id).ok();
            }
        }
    }
    conns
}

fn rewrite_established(c: &mut Criterion) {
    let mut rng = NatRng::new(1);
    let mut conns = bound_table(1, &mut rng);
    let inside = Ipv4Addr::new(10, 0, 0, 2);
    let Some((id, _)) = conns.lookup(&tcp(inside, 40000, REMOTE, 443)) else {
        return;
    };
    let Some(tuples) = conns.get(id).map(|e| *e.tuples()) else {
        return;
    };
    conns.expire(NOW);
    let mut g = c.benchmark_group("nat_rewrite");
    g.throughput(Throughput::Elements(1));
    for (name, dir, orig) in [
        (
            "tcp_64B_original",
            Dir::Original,
            frame(inside, 40000, REMOTE, 443),
        ),
        (
            "tcp_64B_reply",
            Dir::Reply,
            frame(REMOTE, 443, UPLINK, 40000),
        ),
    ] {
        let mut buf = orig.clone();
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.copy_from_slice(&orig);
                black_box(rewrite(black_box(&mut buf), 14, &tuples, dir, false)).ok();
            })
        });
    }
    g.finish();
}

fn bind_new(c: &mut Criterion) {
    let mut rng = NatRng::new(2);
    let mut conns = bound_table(10_000, &mut rng);
    assert_eq!(conns.len(), 10_000);
    let masq = Translation::masquerade(UPLINK, None, false, false);
    let mut g = c.benchmark_group("nat_bind_10k_bound");
    g.throughput(Throughput::Elements(1));
    let host = Ipv4Addr::new(10, 200, 0, 1);
    for (name, port) in [("port_free", 50000u16), ("port_taken", 40000)] {
        let t = tcp(host, port, REMOTE, 443);
        g.bench_function(name, |b| {
            b.iter(|| {
                if let Some(id) = conns.track(NOW, &syn(&t)).id {
                    black_box(bind(&mut conns, id, &masq, &mut rng)).ok();
                    conns.abort(id);
                }
            })
        });
    }
    // What track and abort cost alone, to subtract from the above.
    let t = tcp(host, 50000, REMOTE, 443);
    g.bench_function("track_abort_only", |b| {
        b.iter(|| {
            if let Some(id) = conns.track(NOW, black_box(&syn(&t))).id {
                conns.abort(id);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, rewrite_established, bind_new);
criterion_main!(benches);
