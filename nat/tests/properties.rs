//! Properties over random connections, translations and bytes: binding
//! never panics and never hands out a tuple twice; rewriting a packet and
//! then rewriting it back restores every byte; no input makes the rewrite
//! panic.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use conntrack::{Conntrack, Dir, Tuple};
use nat::{bind, rewrite, Kind, NatRng, Translation};
use packet::checksum::{fold, pseudo_header_v4};
use packet::ipv4::protocol::{ICMP, TCP, UDP};
use proptest::prelude::*;

fn proto() -> impl Strategy<Value = u8> {
    prop_oneof![Just(TCP), Just(UDP), Just(ICMP), Just(47)]
}

/// Few addresses and ports, so that clashes are common.
fn conn() -> impl Strategy<Value = Tuple> {
    let port = prop_oneof![Just(22u16), Just(80), Just(1000), Just(40000), any::<u16>()];
    (proto(), 1u8..5, port.clone(), 1u8..4, port).prop_map(|(p, s, sp, d, dp)| Tuple {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, s)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, d)),
        protocol: p,
        src_port: sp,
        dst_port: if p == ICMP { 0 } else { dp },
    })
}

fn translation() -> impl Strategy<Value = Translation> {
    let ports = proptest::option::of((990u16..1010, 0u16..8).prop_map(|(lo, n)| (lo, lo + n)));
    (
        any::<bool>(),
        prop_oneof![
            Just([192, 0, 2, 1]),
            Just([10, 0, 0, 1]),
            Just([198, 51, 100, 1])
        ],
        0u8..3,
        ports,
        any::<[bool; 3]>(),
    )
        .prop_map(
            |(snat, lo, span, ports, [random, random_fully, persistent])| {
                let addr_lo = Ipv4Addr::from(lo);
                let addr_hi = Ipv4Addr::new(lo[0], lo[1], lo[2], lo[3] + span);
                Translation {
                    kind: if snat { Kind::Snat } else { Kind::Dnat },
                    addr_lo,
                    addr_hi,
                    ports,
                    random,
                    random_fully,
                    persistent,
                }
            },
        )
}

/// Binds `t` by `trs` (failures allowed) and confirms it if that worked.
fn open(
    conns: &mut Conntrack<()>,
    rng: &mut NatRng,
    t: &Tuple,
    trs: &[Translation],
) -> Option<[Tuple; 2]> {
    let tr = conns.track(NOW, &first_packet(t));
    let id = tr.id?;
    for x in trs {
        if bind(conns, id, x, rng).is_err() {
            conns.abort(id);
            return None;
        }
    }
    conns.confirm(id).ok()?;
    let tuples = *conns.get(id)?.tuples();
    // Replies find it by what they carry.
    assert_eq!(conns.lookup(&tuples[1]), Some((id, Dir::Reply)));
    Some(tuples)
}

/// A frame of `t`; for TCP and UDP optionally with no UDP checksum, or
/// with a partial one.
fn packet_of(t: &Tuple, payload: &[u8], udp_zero: bool, partial: bool) -> Vec<u8> {
    let mut f = frame(t, payload);
    let at = match t.protocol {
        TCP => ETH + 20 + 16,
        UDP => ETH + 20 + 6,
        _ => return f,
    };
    if partial {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (t.src, t.dst) else {
            unreachable!()
        };
        let p = fold(pseudo_header_v4(s, d, t.protocol, f.len() - ETH - 20));
        f[at..at + 2].copy_from_slice(&p.to_be_bytes());
    } else if udp_zero && t.protocol == UDP {
        f[at..at + 2].fill(0);
    }
    f
}

fn swapped(tuples: &[Tuple; 2]) -> [Tuple; 2] {
    [tuples[1].reverse(), tuples[0].reverse()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rewrite_then_reverse_restores_every_byte(
        others in proptest::collection::vec((conn(), proptest::collection::vec(translation(), 0..3)), 0..24),
        t in conn(),
        trs in proptest::collection::vec(translation(), 1..3),
        seed in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        udp_zero in any::<bool>(),
        partial in any::<bool>(),
    ) {
        let mut conns = table();
        let mut rng = NatRng::new(seed);
        for (o, otrs) in &others {
            open(&mut conns, &mut rng, o, otrs);
        }
        let Some(tuples) = open(&mut conns, &mut rng, &t, &trs) else {
            return Ok(());
        };
        let partial = partial && matches!(t.protocol, TCP | UDP);
        for (dir, sent) in [(Dir::Original, tuples[0]), (Dir::Reply, tuples[1])] {
            let f = packet_of(&sent, &payload, udp_zero, partial);
            let mut g = f.clone();
            rewrite(&mut g, ETH, &tuples, dir, partial).unwrap();
            prop_assert_eq!(carried(&g), tuples[dir.opposite().index()].reverse());
            if !partial {
                assert_checksums(&g, ETH);
            }
            rewrite(&mut g, ETH, &swapped(&tuples), dir, partial).unwrap();
            prop_assert_eq!(g, f);
        }
        conntrack_tuples_unique(&conns);
    }

    #[test]
    fn no_bytes_make_rewrite_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..160),
        l3 in 0usize..24,
        a in conn(),
        b in conn(),
        reply in any::<bool>(),
        partial in any::<bool>(),
    ) {
        let mut f = bytes;
        let dir = if reply { Dir::Reply } else { Dir::Original };
        let _ = rewrite(&mut f, l3, &[a, b], dir, partial);
    }

    #[test]
    fn damaged_packets_and_errors_never_panic(
        t in conn(),
        tr in translation(),
        error in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        reply in any::<bool>(),
        partial in any::<bool>(),
    ) {
        let mut conns = table();
        let mut rng = NatRng::new(0);
        let Some(tuples) = open(&mut conns, &mut rng, &t, &[tr]) else {
            return Ok(());
        };
        let inner = frame(&tuples[1].reverse(), b"payload");
        let mut f = if error {
            icmp_error("203.0.113.1", "192.0.2.1", 3, 3, &inner[ETH..])
        } else {
            inner
        };
        for (at, v) in flips {
            let i = at.index(f.len());
            f[i] = v;
        }
        let keep = ETH + cut.index(f.len() - ETH + 1);
        f.truncate(keep);
        let dir = if reply { Dir::Reply } else { Dir::Original };
        let _ = rewrite(&mut f, ETH, &tuples, dir, partial);
    }
}

/// No two confirmed entries share a tuple: each is found by both of its
/// own, so NAT never made a binding the index would have refused.
fn conntrack_tuples_unique(conns: &Conntrack<()>) {
    for (id, e) in conns.iter() {
        for t in e.tuples() {
            assert_eq!(conns.lookup(t).map(|(found, _)| found), Some(id), "{t}");
        }
    }
}
