//! Rewriting packets of bound connections, both ways, with every checksum
//! checked against a full recomputation.

mod common;

use common::*;
use conntrack::{Conntrack, Dir, EntryId, Tuple};
use nat::{bind, rewrite, NatError, NatRng, Translation};
use packet::checksum::{fold, pseudo_header_v4};
use packet::ipv4::protocol::{TCP, UDP};

const UPLINK: &str = "192.0.2.1";
const REMOTE: &str = "198.51.100.7";

/// An entry for `t`, bound by `ts` in turn and confirmed.
fn bound(conns: &mut Conntrack<()>, t: &Tuple, ts: &[Translation]) -> EntryId {
    let mut rng = NatRng::new(1);
    let id = start(conns, t);
    for tr in ts {
        bind(conns, id, tr, &mut rng).unwrap();
    }
    conns.confirm(id).unwrap();
    id
}

fn tuples(conns: &Conntrack<()>, id: EntryId) -> [Tuple; 2] {
    *conns.get(id).unwrap().tuples()
}

/// Rewrites `f` as a packet of `dir`, checks it now carries `want` with
/// good checksums, and returns it.
fn through(conns: &Conntrack<()>, id: EntryId, dir: Dir, mut f: Vec<u8>, want: &Tuple) -> Vec<u8> {
    rewrite(&mut f, ETH, &tuples(conns, id), dir, false).unwrap();
    assert_eq!(&carried(&f), want);
    assert_checksums(&f, ETH);
    f
}

#[test]
fn snat_tcp_both_directions() {
    let mut conns = table();
    let t = tcp("10.0.0.2", 40000, REMOTE, 80);
    let id = bound(
        &mut conns,
        &t,
        &[Translation::snat(ip(UPLINK)).with_ports(1000, 1000)],
    );
    let out = through(
        &conns,
        id,
        Dir::Original,
        frame(&t, b"GET / HTTP/1.1\r\n"),
        &tcp(UPLINK, 1000, REMOTE, 80),
    );
    // Only addresses, ports and checksums moved.
    let orig = frame(&t, b"GET / HTTP/1.1\r\n");
    let differ: Vec<usize> = (0..orig.len()).filter(|&i| orig[i] != out[i]).collect();
    assert!(
        differ.iter().all(|i| (24..26).contains(i)
            || (26..30).contains(i)
            || (34..36).contains(i)
            || (50..52).contains(i)),
        "{differ:?}"
    );
    let reply = tcp(REMOTE, 80, UPLINK, 1000);
    through(
        &conns,
        id,
        Dir::Reply,
        frame(&reply, b"HTTP/1.1 200 OK\r\n"),
        &t.reverse(),
    );
}

#[test]
fn dnat_udp_both_directions_and_zero_checksum_stays_zero() {
    let mut conns = table();
    let t = udp("203.0.113.5", 5353, UPLINK, 5353);
    let id = bound(
        &mut conns,
        &t,
        &[Translation::dnat(ip("172.17.0.2")).with_ports(53, 53)],
    );
    let translated = udp("203.0.113.5", 5353, "172.17.0.2", 53);
    through(&conns, id, Dir::Original, frame(&t, b"query"), &translated);
    let reply = translated.reverse();
    through(
        &conns,
        id,
        Dir::Reply,
        frame(&reply, b"answer!"),
        &t.reverse(),
    );
    // Without a checksum: still none after the rewrite.
    let mut f = frame(&t, b"query");
    f[ETH + 20 + 6..ETH + 20 + 8].fill(0);
    let f = through(&conns, id, Dir::Original, f, &translated);
    assert_eq!(be16(&f, ETH + 20 + 6), 0);
}

#[test]
fn icmp_echo_request_and_reply() {
    let mut conns = table();
    let mut rng = NatRng::new(3);
    let first = echo("10.0.0.9", REMOTE, 7);
    let other = start(&mut conns, &first);
    bind(&mut conns, other, &Translation::snat(ip(UPLINK)), &mut rng).unwrap();
    conns.confirm(other).unwrap();
    let t = echo("10.0.0.2", REMOTE, 7);
    let id = bound(&mut conns, &t, &[Translation::snat(ip(UPLINK))]);
    let id_out = tuples(&conns, id)[1].src_port;
    assert_ne!(id_out, 7);
    through(
        &conns,
        id,
        Dir::Original,
        frame(&t, &[0x5a; 56]),
        &echo(UPLINK, REMOTE, id_out),
    );
    let mut reply = frame(&echo(REMOTE, UPLINK, id_out), &[0x5a; 56]);
    reply[ETH + 20] = 0; // echo reply
    reply[ETH + 20 + 2..ETH + 20 + 4].fill(0);
    let c = packet::checksum::finish(packet::checksum::sum(&reply[ETH + 20..]));
    reply[ETH + 20 + 2..ETH + 20 + 4].copy_from_slice(&c.to_be_bytes());
    through(&conns, id, Dir::Reply, reply, &echo(REMOTE, "10.0.0.2", 7));
}

/// The partial checksum a sender with offloads leaves: the pseudo
/// header's folded sum, not complemented.
fn make_partial(f: &mut [u8], proto: u8) {
    let at = ETH + 20 + if proto == TCP { 16 } else { 6 };
    let t = carried(f);
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (t.src, t.dst) else {
        unreachable!()
    };
    let len = f.len() - ETH - 20;
    let p = fold(pseudo_header_v4(s, d, proto, len));
    f[at..at + 2].copy_from_slice(&p.to_be_bytes());
}

#[test]
fn partial_checksums_take_the_address_change_only() {
    for proto in [TCP, UDP] {
        let mut conns = table();
        let t = tuple(proto, "10.0.0.2", 40000, REMOTE, 80);
        let id = bound(
            &mut conns,
            &t,
            &[Translation::snat(ip(UPLINK)).with_ports(1000, 1000)],
        );
        let mut f = frame(&t, b"data");
        make_partial(&mut f, proto);
        rewrite(&mut f, ETH, &tuples(&conns, id), Dir::Original, true).unwrap();
        assert_eq!(carried(&f), tuple(proto, UPLINK, 1000, REMOTE, 80));
        // What the sender would have written for the new addresses.
        let mut want = f.clone();
        make_partial(&mut want, proto);
        assert_eq!(f, want, "proto {proto}");
        assert_eq!(fold(packet::checksum::sum(&f[ETH..ETH + 20])), 0xffff);
        // Completing the checksum, as the NIC would, gives a valid packet.
        let at = ETH + 20 + if proto == TCP { 16 } else { 6 };
        let c = packet::checksum::finish(packet::checksum::sum(&f[ETH + 20..]));
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        assert_checksums(&f, ETH);
    }
}

#[test]
fn an_unbound_connection_is_left_alone() {
    let mut conns = table();
    let t = tcp("10.0.0.2", 40000, REMOTE, 80);
    let id = bound(&mut conns, &t, &[]);
    let mut f = frame(&t, b"x");
    let before = f.clone();
    rewrite(&mut f, ETH, &tuples(&conns, id), Dir::Original, false).unwrap();
    assert_eq!(f, before);
}

#[test]
fn malformed_frames_are_errors() {
    let mut conns = table();
    let t = tcp("10.0.0.2", 40000, REMOTE, 80);
    let id = bound(&mut conns, &t, &[Translation::snat(ip(UPLINK))]);
    let tu = tuples(&conns, id);
    let f = frame(&t, b"");
    for cut in [0, ETH, ETH + 19] {
        let mut g = f[..cut].to_vec();
        assert_eq!(
            rewrite(&mut g, ETH, &tu, Dir::Original, false),
            Err(NatError::Malformed { offset: ETH })
        );
    }
    let mut g = f.clone();
    assert_eq!(
        rewrite(&mut g, 100, &tu, Dir::Original, false),
        Err(NatError::Malformed { offset: 100 })
    );
    // A TCP header cut short.
    let mut g = f[..ETH + 30].to_vec();
    g[ETH + 2..ETH + 4].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(
        rewrite(&mut g, ETH, &tu, Dir::Original, false),
        Err(NatError::Malformed { offset: ETH + 20 })
    );
    let mut g = f.clone();
    g[ETH] = 0x65;
    assert_eq!(
        rewrite(&mut g, ETH, &tu, Dir::Original, false),
        Err(NatError::NotIpv4)
    );
}
