//! ICMP errors about bound connections: found RELATED by conntrack, then
//! the outer addresses and the quoted packet rewritten, checksums intact.

mod common;

use common::*;
use conntrack::{Conntrack, CtL4, CtPacket, CtState, Dir, EntryId, Tuple};
use nat::{bind, rewrite, NatError, NatRng, Translation};
use packet::icmpv4::{code, msg};

const UPLINK: &str = "192.0.2.1";
const REMOTE: &str = "198.51.100.7";
const ROUTER: &str = "198.51.100.254";

fn bound(conns: &mut Conntrack<()>, t: &Tuple, tr: &Translation) -> EntryId {
    let mut rng = NatRng::new(1);
    let id = start(conns, t);
    bind(conns, id, tr, &mut rng).unwrap();
    conns.confirm(id).unwrap();
    id
}

/// What the switch does with an ICMP error: track it (RELATED, with the
/// entry and direction) and rewrite it with that entry's tuples.
fn translate_error(
    conns: &mut Conntrack<()>,
    f: &mut [u8],
    quoted: &Tuple,
    partial: bool,
) -> Result<(Dir, EntryId), NatError> {
    let outer = carried(f);
    let tr = conns.track(
        NOW,
        &CtPacket {
            tuple: outer,
            len: 100,
            l4: CtL4::IcmpError { inner: *quoted },
        },
    );
    assert_eq!(tr.state, CtState::Related);
    let id = tr.id.unwrap();
    let tuples = *conns.get(id).unwrap().tuples();
    rewrite(f, ETH, &tuples, tr.dir, partial)?;
    Ok((tr.dir, id))
}

/// The IPv4 packet of `frame`, as an error quotes it.
fn ip_of(frame: &[u8]) -> Vec<u8> {
    frame[ETH..].to_vec()
}

#[test]
fn port_unreachable_from_the_remote_reaches_the_inside_host() {
    let mut conns = table();
    let t = udp("10.0.0.2", 5353, REMOTE, 53);
    let id = bound(
        &mut conns,
        &t,
        &Translation::snat(ip(UPLINK)).with_ports(2000, 2000),
    );
    let sent = udp(UPLINK, 2000, REMOTE, 53);
    let mut f = icmp_error(
        REMOTE,
        UPLINK,
        msg::DST_UNREACHABLE,
        code::PORT_UNREACHABLE,
        &ip_of(&frame(&sent, b"query")),
    );
    let (dir, found) = translate_error(&mut conns, &mut f, &sent, false).unwrap();
    assert_eq!((dir, found), (Dir::Reply, id));
    assert_checksums(&f, ETH);
    assert_eq!(carried(&f), tuple(1, REMOTE, 0, "10.0.0.2", 0));
    // The quote is now the very packet the host sent.
    assert_eq!(&f[ETH + 28..], &ip_of(&frame(&t, b"query"))[..]);
}

#[test]
fn time_exceeded_from_a_router_keeps_the_router_and_mends_a_short_quote() {
    let mut conns = table();
    let t = tcp("10.0.0.2", 40000, REMOTE, 443);
    let id = bound(
        &mut conns,
        &t,
        &Translation::snat(ip(UPLINK)).with_ports(3000, 3000),
    );
    let sent = tcp(UPLINK, 3000, REMOTE, 443);
    // Header plus the 8 bytes RFC 792 asks for: no TCP checksum quoted.
    let quote = &ip_of(&frame(&sent, b"hello"))[..28];
    let mut f = icmp_error(
        ROUTER,
        UPLINK,
        msg::TIME_EXCEEDED,
        code::TTL_EXCEEDED,
        quote,
    );
    assert_eq!(
        translate_error(&mut conns, &mut f, &sent, false).unwrap(),
        (Dir::Reply, id)
    );
    assert_checksums(&f, ETH);
    assert_eq!(carried(&f), tuple(1, ROUTER, 0, "10.0.0.2", 0));
    assert_eq!(&f[ETH + 28..], &ip_of(&frame(&t, b"hello"))[..28]);
}

#[test]
fn an_error_from_a_dnat_target_leaves_as_the_published_address() {
    // A published UDP port with nothing listening behind it: the client
    // must see the refusal come from the address it sent to.
    let mut conns = table();
    let t = udp("203.0.113.5", 5353, UPLINK, 5353);
    let id = bound(
        &mut conns,
        &t,
        &Translation::dnat(ip("172.17.0.2")).with_ports(53, 53),
    );
    let arrived = udp("203.0.113.5", 5353, "172.17.0.2", 53);
    let mut f = icmp_error(
        "172.17.0.2",
        "203.0.113.5",
        msg::DST_UNREACHABLE,
        code::PORT_UNREACHABLE,
        &ip_of(&frame(&arrived, b"q")),
    );
    assert_eq!(
        translate_error(&mut conns, &mut f, &arrived, false).unwrap(),
        (Dir::Reply, id)
    );
    assert_checksums(&f, ETH);
    assert_eq!(carried(&f), tuple(1, UPLINK, 0, "203.0.113.5", 0));
    assert_eq!(&f[ETH + 28..], &ip_of(&frame(&t, b"q"))[..]);
}

#[test]
fn an_error_in_the_original_direction() {
    // The inside host refuses a late reply; the remote must see the error
    // from the uplink, about the packet it sent there.
    let mut conns = table();
    let t = udp("10.0.0.2", 5353, REMOTE, 53);
    let id = bound(
        &mut conns,
        &t,
        &Translation::snat(ip(UPLINK)).with_ports(2000, 2000),
    );
    let delivered = t.reverse();
    let mut f = icmp_error(
        "10.0.0.2",
        REMOTE,
        msg::DST_UNREACHABLE,
        code::PORT_UNREACHABLE,
        &ip_of(&frame(&delivered, b"late")),
    );
    assert_eq!(
        translate_error(&mut conns, &mut f, &delivered, false).unwrap(),
        (Dir::Original, id)
    );
    assert_checksums(&f, ETH);
    assert_eq!(carried(&f), tuple(1, UPLINK, 0, REMOTE, 0));
    assert_eq!(
        &f[ETH + 28..],
        &ip_of(&frame(&udp(REMOTE, 53, UPLINK, 2000), b"late"))[..]
    );
}

#[test]
fn an_error_about_an_echo_request_restores_its_identifier() {
    let mut conns = table();
    let mut rng = NatRng::new(2);
    // Take identifier 7 on the uplink first, so the next is moved.
    let first = start(&mut conns, &echo("10.0.0.9", REMOTE, 7));
    bind(&mut conns, first, &Translation::snat(ip(UPLINK)), &mut rng).unwrap();
    conns.confirm(first).unwrap();
    let t = echo("10.0.0.2", REMOTE, 7);
    let id = bound(&mut conns, &t, &Translation::snat(ip(UPLINK)));
    let out_id = conns.get(id).unwrap().tuples()[1].src_port;
    let sent = echo(UPLINK, REMOTE, out_id);
    let mut f = icmp_error(
        ROUTER,
        UPLINK,
        msg::TIME_EXCEEDED,
        code::TTL_EXCEEDED,
        &ip_of(&frame(&sent, &[1; 24])),
    );
    assert_eq!(
        translate_error(&mut conns, &mut f, &sent, false).unwrap(),
        (Dir::Reply, id)
    );
    assert_checksums(&f, ETH);
    assert_eq!(&f[ETH + 28..], &ip_of(&frame(&t, &[1; 24]))[..]);
}

#[test]
fn partial_checksum_leaves_the_icmp_checksum_alone() {
    let mut conns = table();
    let t = udp("10.0.0.2", 5353, REMOTE, 53);
    bound(
        &mut conns,
        &t,
        &Translation::snat(ip(UPLINK)).with_ports(2000, 2000),
    );
    let sent = udp(UPLINK, 2000, REMOTE, 53);
    let mut f = icmp_error(
        REMOTE,
        UPLINK,
        msg::DST_UNREACHABLE,
        code::PORT_UNREACHABLE,
        &ip_of(&frame(&sent, b"q")),
    );
    let icmp_ck = be16(&f, ETH + 22);
    translate_error(&mut conns, &mut f, &sent, true).unwrap();
    assert_eq!(be16(&f, ETH + 22), icmp_ck);
    assert_eq!(&f[ETH + 28..], &ip_of(&frame(&t, b"q"))[..]);
}

#[test]
fn an_unreadable_quote_is_an_error() {
    let mut conns = table();
    let t = udp("10.0.0.2", 5353, REMOTE, 53);
    let id = bound(
        &mut conns,
        &t,
        &Translation::snat(ip(UPLINK)).with_ports(2000, 2000),
    );
    let tuples = *conns.get(id).unwrap().tuples();
    let quote = ip_of(&frame(&udp(UPLINK, 2000, REMOTE, 53), b"q"));
    for (cut, version) in [(28, 0x65), (19, 0x45), (24, 0x46), (27, 0x45)] {
        let mut q = quote[..cut].to_vec();
        q[0] = version;
        let mut f = icmp_error(
            REMOTE,
            UPLINK,
            msg::DST_UNREACHABLE,
            code::PORT_UNREACHABLE,
            &q,
        );
        let err = rewrite(&mut f, ETH, &tuples, Dir::Reply, false).unwrap_err();
        assert!(
            matches!(err, NatError::Malformed { offset } if offset >= ETH + 28),
            "{cut} {version:#x}: {err:?}"
        );
    }
}
