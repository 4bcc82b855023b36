//! Hairpin: a container reaches a published port on the uplink address
//! and is sent to another container on its own network. DNAT at
//! PREROUTING and SNAT at POSTROUTING bind the one connection; both
//! directions are rewritten end to end, and replies are found by the
//! tuple they carry.

mod common;

use common::*;
use conntrack::{CtL4, CtPacket, CtState, Dir};
use nat::{bind, rewrite, NatRng, Translation};

const UPLINK: &str = "192.0.2.1";
const GATEWAY: &str = "10.0.0.1";
const CLIENT: &str = "10.0.0.2";
const SERVER: &str = "10.0.0.3";

fn dnat() -> Translation {
    Translation::dnat(ip(SERVER)).with_ports(80, 80)
}

fn masquerade() -> Translation {
    Translation::masquerade(ip(GATEWAY), None, false, false)
}

fn end_to_end(order: [Translation; 2]) {
    let mut conns = table();
    let mut rng = NatRng::new(5);
    let t = tcp(CLIENT, 40000, UPLINK, 8080);
    let id = start(&mut conns, &t);
    for tr in &order {
        bind(&mut conns, id, tr, &mut rng).unwrap();
    }
    conns.confirm(id).unwrap();
    let e = conns.get(id).unwrap();
    assert!(e
        .status
        .contains(conntrack::Status::SRC_NAT | conntrack::Status::DST_NAT));
    let tuples = *e.tuples();
    assert_eq!(tuples[1], tcp(SERVER, 80, GATEWAY, 40000));

    // The SYN leaves towards the server from the gateway.
    let mut syn = frame(&t, b"");
    rewrite(&mut syn, ETH, &tuples, Dir::Original, false).unwrap();
    assert_eq!(carried(&syn), tcp(GATEWAY, 40000, SERVER, 80));
    assert_checksums(&syn, ETH);

    // The server's answer is found by what it carries, and goes back to
    // the client as if from the published address.
    let answer = tcp(SERVER, 80, GATEWAY, 40000);
    let tr = conns.track(
        NOW,
        &CtPacket {
            tuple: answer,
            len: 40,
            l4: CtL4::Tcp {
                flags: 0x12,
                seq: 5000,
                ack: 1001,
                window: 65160,
                wscale: Some(7),
                payload_len: 0,
            },
        },
    );
    assert_eq!(
        (tr.state, tr.id, tr.dir),
        (CtState::Established, Some(id), Dir::Reply)
    );
    let mut synack = frame(&answer, b"");
    rewrite(&mut synack, ETH, &tuples, Dir::Reply, false).unwrap();
    assert_eq!(carried(&synack), tcp(UPLINK, 8080, CLIENT, 40000));
    assert_checksums(&synack, ETH);
}

#[test]
fn dnat_then_snat() {
    end_to_end([dnat(), masquerade()]);
}

#[test]
fn snat_then_dnat_composes_the_same() {
    end_to_end([masquerade(), dnat()]);
}

#[test]
fn two_clients_hairpinning_with_one_port_get_two_gateway_ports() {
    let mut conns = table();
    let mut rng = NatRng::new(6);
    let mut seen = Vec::new();
    for client in ["10.0.0.2", "10.0.0.4"] {
        let id = start(&mut conns, &tcp(client, 40000, UPLINK, 8080));
        bind(&mut conns, id, &dnat(), &mut rng).unwrap();
        let b = bind(&mut conns, id, &masquerade(), &mut rng).unwrap();
        conns.confirm(id).unwrap();
        assert_eq!(b.translated.src, std::net::IpAddr::V4(ip(GATEWAY)));
        seen.push((id, b.reply));
    }
    assert_ne!(seen[0].1.dst_port, seen[1].1.dst_port);
    for (id, reply) in seen {
        assert_eq!(conns.lookup(&reply), Some((id, Dir::Reply)));
    }
}
