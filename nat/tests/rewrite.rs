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

#[test]
fn behind_a_vlan_tag() {
    let mut conns = table();
    let t = udp("10.0.0.2", 5000, REMOTE, 53);
    let id = bound(
        &mut conns,
        &t,
        &[Translation::snat(ip(UPLINK)).with_ports(6000, 6000)],
    );
    let plain = frame(&t, b"tagged");
    let mut f = plain[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    f.extend_from_slice(&plain[12..]);
    rewrite(&mut f, ETH + 4, &tuples(&conns, id), Dir::Original, false).unwrap();
    assert_checksums(&f, ETH + 4);
    let mut untagged = f[..12].to_vec();
    untagged.extend_from_slice(&f[16..]);
    assert_eq!(carried(&untagged), udp(UPLINK, 6000, REMOTE, 53));
}

/// Splits the UDP datagram of `f` into a first fragment holding the
/// header and `first` payload bytes, and a second holding the rest.
fn fragments(f: &[u8], first: usize) -> (Vec<u8>, Vec<u8>) {
    let ip = &f[ETH..];
    let l4 = &ip[20..];
    let head = |payload: &[u8], flags_off: u16| {
        let mut h = ipv4_header(ip_of(ip, 12), ip_of(ip, 16), UDP, payload.len());
        h[6..8].copy_from_slice(&flags_off.to_be_bytes());
        h[10..12].fill(0);
        let c = packet::checksum::finish(packet::checksum::sum(&h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut out = f[..ETH].to_vec();
        out.extend(h);
        out.extend_from_slice(payload);
        out
    };
    let cut = 8 + first;
    (head(&l4[..cut], 0x2000), head(&l4[cut..], (cut / 8) as u16))
}

fn ip_of(ip: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3])
}

#[test]
fn fragments_first_gets_ports_the_rest_addresses_only() {
    let mut conns = table();
    let t = udp("10.0.0.2", 5000, REMOTE, 53);
    let id = bound(
        &mut conns,
        &t,
        &[Translation::snat(ip(UPLINK)).with_ports(6000, 6000)],
    );
    let tu = tuples(&conns, id);
    let payload: Vec<u8> = (0..100u8).collect();
    let (mut a, mut b) = fragments(&frame(&t, &payload), 48);
    rewrite(&mut a, ETH, &tu, Dir::Original, false).unwrap();
    rewrite(&mut b, ETH, &tu, Dir::Original, false).unwrap();
    for f in [&a, &b] {
        assert_eq!(fold(packet::checksum::sum(&f[ETH..ETH + 20])), 0xffff);
        assert_eq!(ip_of(&f[ETH..], 12), ip(UPLINK));
    }
    assert_eq!(be16(&a, ETH + 20), 6000);
    // Reassembled, the transport bytes are the translated datagram's,
    // checksum and all.
    let mut l4 = a[ETH + 20..].to_vec();
    l4.extend_from_slice(&b[ETH + 20..]);
    assert_eq!(
        l4,
        frame(&udp(UPLINK, 6000, REMOTE, 53), &payload)[ETH + 20..]
    );
}
