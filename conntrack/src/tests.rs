//! Scenarios through the public API, each asserting the whole change:
//! verdict, entry state, counters, expiry and table counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;

use crate::tcp::{ACK, FIN, RST, SYN};
use crate::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 3);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn tuple(protocol: u8, src: (IpAddr, u16), dst: (IpAddr, u16)) -> Tuple {
    Tuple {
        src: src.0,
        dst: dst.0,
        protocol,
        src_port: src.1,
        dst_port: dst.1,
    }
}

fn tcp(t: Tuple, flags: u8, seq: u32, ack: u32, payload_len: u32) -> CtPacket {
    CtPacket {
        tuple: t,
        len: 60 + payload_len,
        l4: CtL4::Tcp {
            flags,
            seq,
            ack,
            window: 64_000,
            wscale: None,
            payload_len,
        },
    }
}

fn udp(t: Tuple) -> CtPacket {
    CtPacket {
        tuple: t,
        len: 60,
        l4: CtL4::Udp,
    }
}

fn fwd() -> Tuple {
    tuple(6, (A.into(), 40000), (B.into(), 5432))
}

fn rev() -> Tuple {
    fwd().reverse()
}

fn ct() -> Conntrack<()> {
    Conntrack::new(Config::default())
}

/// Tracks a packet and confirms the entry it creates, as the switch does
/// for a packet it lets through.
fn pass(ct: &mut Conntrack<()>, now: Duration, pkt: &CtPacket) -> Track {
    let t = ct.track(now, pkt);
    if let (CtState::New, Some(id)) = (t.state, t.id) {
        ct.confirm(id).expect("confirm");
    }
    ct.check();
    t
}

fn state_of(ct: &Conntrack<()>, t: &Tuple) -> Option<TcpState> {
    let (id, _) = ct.lookup(t)?;
    ct.get(id)?.tcp_state()
}

/// SYN 1000 from A, SYN/ACK 5000 from B, ACK from A.
fn established(ct: &mut Conntrack<()>) -> EntryId {
    let t = pass(ct, secs(1), &tcp(fwd(), SYN, 1000, 0, 0));
    pass(ct, secs(1), &tcp(rev(), SYN | ACK, 5000, 1001, 0));
    pass(ct, secs(1), &tcp(fwd(), ACK, 1001, 5001, 0));
    t.id.expect("id")
}

#[test]
fn tcp_handshake_data_and_close() {
    let mut ct = ct();
    let to = Timeouts::default();

    let syn = ct.track(secs(1), &tcp(fwd(), SYN, 1000, 0, 0));
    assert_eq!((syn.state, syn.dir), (CtState::New, Dir::Original));
    let id = syn.id.expect("tentative id");
    assert_eq!(ct.lookup(&fwd()), None, "tentative entries are not found");
    assert_eq!(ct.len(), 0);
    ct.confirm(id).expect("confirm");
    assert_eq!(ct.lookup(&fwd()), Some((id, Dir::Original)));
    assert_eq!(ct.lookup(&rev()), Some((id, Dir::Reply)));
    let e = ct.get(id).expect("entry");
    assert_eq!(e.tcp_state(), Some(TcpState::SynSent));
    assert_eq!(e.expires(), secs(1) + to.tcp_syn_sent);
    assert_eq!(e.status, Status::CONFIRMED);

    let t = pass(&mut ct, secs(2), &tcp(rev(), SYN | ACK, 5000, 1001, 0));
    assert_eq!(
        (t.state, t.dir, t.id),
        (CtState::Established, Dir::Reply, Some(id))
    );
    let e = ct.get(id).expect("entry");
    assert_eq!(e.tcp_state(), Some(TcpState::SynRecv));
    assert_eq!(e.expires(), secs(2) + to.tcp_syn_recv);
    assert!(!e.status.contains(Status::ASSURED));

    let t = pass(&mut ct, secs(2), &tcp(fwd(), ACK, 1001, 5001, 0));
    assert_eq!((t.state, t.dir), (CtState::Established, Dir::Original));
    pass(&mut ct, secs(3), &tcp(rev(), ACK, 5001, 1001, 0));
    pass(&mut ct, secs(3), &tcp(fwd(), ACK, 1001, 5001, 0));
    let e = ct.get(id).expect("entry");
    assert_eq!(e.tcp_state(), Some(TcpState::Established));
    assert!(e.status.contains(Status::ASSURED | Status::SEEN_REPLY));
    assert_eq!(e.expires(), secs(3) + to.tcp_established);
    assert_eq!(
        format_entry(e, secs(4)),
        "tcp      6 431999 ESTABLISHED src=10.10.0.2 dst=10.10.0.3 sport=40000 dport=5432 \
         packets=3 bytes=180 src=10.10.0.3 dst=10.10.0.2 sport=5432 dport=40000 \
         packets=2 bytes=120 [ASSURED] mark=0 use=1"
    );

    // Data waits for its ack under the shorter timeout.
    pass(&mut ct, secs(5), &tcp(fwd(), ACK, 1001, 5001, 100));
    assert_eq!(
        ct.get(id).expect("entry").expires(),
        secs(5) + to.tcp_unacknowledged
    );
    pass(&mut ct, secs(5), &tcp(rev(), ACK, 5001, 1101, 0));
    assert_eq!(
        ct.get(id).expect("entry").expires(),
        secs(5) + to.tcp_established
    );

    // A closes: FIN, ack, B's FIN, last ack.
    let steps = [
        (
            fwd(),
            FIN | ACK,
            1101,
            5001,
            TcpState::FinWait,
            to.tcp_fin_wait,
        ),
        (
            rev(),
            ACK,
            5001,
            1102,
            TcpState::CloseWait,
            to.tcp_close_wait,
        ),
        (
            rev(),
            FIN | ACK,
            5001,
            1102,
            TcpState::LastAck,
            to.tcp_last_ack,
        ),
        (fwd(), ACK, 1102, 5002, TcpState::TimeWait, to.tcp_time_wait),
    ];
    for (t, flags, seq, ack, state, timeout) in steps {
        let tr = pass(&mut ct, secs(6), &tcp(t, flags, seq, ack, 0));
        assert_eq!(tr.state, CtState::Established);
        let e = ct.get(id).expect("entry");
        assert_eq!(e.tcp_state(), Some(state));
        assert_eq!(e.expires(), secs(6) + timeout);
    }
    assert_eq!(ct.expire(secs(6) + to.tcp_time_wait - secs(1)), 0);
    assert_eq!(ct.expire(secs(6) + to.tcp_time_wait + secs(1)), 1);
    assert!(ct.is_empty());
    ct.check();
    let s = ct.stats();
    assert_eq!((s.new, s.found, s.invalid, s.expired), (1, 10, 0, 1));
}

#[test]
fn non_syn_without_entry_is_invalid() {
    let mut ct = ct();
    for flags in [ACK, SYN | ACK, RST, RST | ACK, FIN | ACK, SYN | FIN, 0] {
        let t = ct.track(secs(1), &tcp(fwd(), flags, 1, 1, 0));
        assert_eq!((t.state, t.id), (CtState::Invalid, None), "{flags:#x}");
    }
    assert_eq!(ct.stats().invalid, 7);
    assert_eq!(ct.stats().new, 0);
    assert!(ct.is_empty());
    ct.check();
}

#[test]
fn syn_retransmit_stays_syn_sent() {
    let mut ct = ct();
    let id = pass(&mut ct, secs(1), &tcp(fwd(), SYN, 1000, 0, 0)).id;
    let t = pass(&mut ct, secs(3), &tcp(fwd(), SYN, 1000, 0, 0));
    assert_eq!((t.state, t.id), (CtState::New, id));
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::SynSent));
    let e = ct.get(id.expect("id")).expect("entry");
    assert_eq!(e.counters[0].packets, 2);
    assert_eq!(e.expires(), secs(3) + Timeouts::default().tcp_syn_sent);
    assert_eq!(ct.len(), 1);
}

#[test]
fn out_of_window_is_invalid_and_changes_nothing() {
    let mut ct = ct();
    let id = established(&mut ct);
    let before = ct.get(id).expect("entry").clone();
    let bad = [
        // Far beyond what B's window allows.
        tcp(fwd(), ACK, 1001 + 10_000_000, 5001, 10),
        // Acknowledging what B never sent.
        tcp(fwd(), ACK, 1001, 5001 + 1_000_000, 0),
        // A FIN far out of window.
        tcp(rev(), FIN | ACK, 5001 + 10_000_000, 1001, 0),
        // A RST out of window.
        tcp(rev(), RST, 5001 + 10_000_000, 0, 0),
        tcp(fwd(), RST | ACK, 1001u32.wrapping_sub(10_000_000), 5001, 0),
    ];
    for p in bad {
        let t = ct.track(secs(100), &p);
        assert_eq!((t.state, t.id), (CtState::Invalid, None), "{p:?}");
    }
    let after = ct.get(id).expect("entry");
    assert_eq!(after.tcp_state(), Some(TcpState::Established));
    assert_eq!(after.counters, before.counters);
    assert_eq!(after.expires(), before.expires());
    assert_eq!(ct.stats().invalid, 5);
}

#[test]
fn rst_in_window_closes() {
    let mut ct = ct();
    let id = established(&mut ct);
    let t = pass(&mut ct, secs(2), &tcp(rev(), RST, 5001, 0, 0));
    assert_eq!(t.state, CtState::Established);
    let e = ct.get(id).expect("entry");
    assert_eq!(e.tcp_state(), Some(TcpState::Close));
    assert_eq!(e.expires(), secs(2) + Timeouts::default().tcp_close);
    // A new SYN on the closed connection starts a new one.
    let t = ct.track(secs(3), &tcp(fwd(), SYN, 7000, 0, 0));
    assert_eq!(t.state, CtState::New);
    assert!(ct.get(id).is_none());
    ct.abort(t.id.expect("id"));
    assert!(ct.is_empty());
    ct.check();

    // Without it, the earlier expiry is honoured by the wheel.
    let id = established(&mut ct);
    pass(&mut ct, secs(2), &tcp(rev(), RST, 5001, 0, 0));
    assert_eq!(ct.expire(secs(12)), 0);
    assert_eq!(ct.expire(secs(13)), 1);
    assert!(ct.get(id).is_none());
}

#[test]
fn rst_answering_a_syn_ends_the_entry() {
    let mut ct = ct();
    let id = pass(&mut ct, secs(1), &tcp(fwd(), SYN, 1000, 0, 0)).id;
    let t = pass(&mut ct, secs(1), &tcp(rev(), RST | ACK, 0, 1001, 0));
    // Still there for this packet, so NAT can undo itself on it.
    assert_eq!(
        (t.state, t.dir, t.id),
        (CtState::Established, Dir::Reply, id)
    );
    assert_eq!(ct.expire(secs(2)), 1);
    assert!(ct.is_empty());
}

#[test]
fn syn_on_time_wait_reopens() {
    let mut ct = ct();
    let old = established(&mut ct);
    pass(&mut ct, secs(2), &tcp(fwd(), FIN | ACK, 1001, 5001, 0));
    pass(&mut ct, secs(2), &tcp(rev(), FIN | ACK, 5001, 1002, 0));
    pass(&mut ct, secs(2), &tcp(fwd(), ACK, 1002, 5002, 0));
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::TimeWait));

    let t = ct.track(secs(3), &tcp(fwd(), SYN, 90_000, 0, 0));
    assert_eq!((t.state, t.dir), (CtState::New, Dir::Original));
    let new = t.id.expect("id");
    assert_ne!(new, old);
    assert!(ct.get(old).is_none());
    assert!(ct.is_empty());
    ct.confirm(new).expect("confirm");
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::SynSent));
    ct.check();
}

#[test]
fn syn_on_established_is_ignored() {
    let mut ct = ct();
    let id = established(&mut ct);
    let t = pass(&mut ct, secs(2), &tcp(fwd(), SYN, 777, 0, 0));
    assert_eq!((t.state, t.id), (CtState::Established, Some(id)));
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::Established));
    assert_eq!(ct.stats().ignore, 1);
}

#[test]
fn simultaneous_open() {
    let mut ct = ct();
    pass(&mut ct, secs(1), &tcp(fwd(), SYN, 1000, 0, 0));
    pass(&mut ct, secs(1), &tcp(rev(), SYN, 5000, 0, 0));
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::SynSent2));
    pass(&mut ct, secs(1), &tcp(fwd(), SYN | ACK, 1000, 5001, 0));
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::SynRecv));
    // B's SYN/ACK changes nothing; A's ACK establishes, as in Linux.
    let t = pass(&mut ct, secs(1), &tcp(rev(), SYN | ACK, 5000, 1001, 0));
    assert_eq!(t.state, CtState::Established);
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::SynRecv));
    pass(&mut ct, secs(1), &tcp(fwd(), ACK, 1001, 5001, 0));
    assert_eq!(state_of(&ct, &fwd()), Some(TcpState::Established));
}

#[test]
fn udp_new_reply_stream() {
    let mut ct = ct();
    let to = Timeouts::default();
    let q = tuple(17, (A.into(), 5353), (B.into(), 53));
    let t = pass(&mut ct, secs(1), &udp(q));
    assert_eq!(t.state, CtState::New);
    let id = t.id.expect("id");
    let e = ct.get(id).expect("entry");
    assert_eq!(e.expires(), secs(1) + to.udp);
    assert_eq!(
        format_entry(e, secs(2)),
        "udp      17 29 src=10.10.0.2 dst=10.10.0.3 sport=5353 dport=53 packets=1 bytes=60 \
         [UNREPLIED] src=10.10.0.3 dst=10.10.0.2 sport=53 dport=5353 packets=0 bytes=0 \
         mark=0 use=1"
    );
    // Another query before any answer: still NEW.
    assert_eq!(pass(&mut ct, secs(1), &udp(q)).state, CtState::New);

    let t = pass(&mut ct, secs(2), &udp(q.reverse()));
    assert_eq!((t.state, t.dir), (CtState::Established, Dir::Reply));
    let e = ct.get(id).expect("entry");
    assert_eq!(e.status, Status::CONFIRMED | Status::SEEN_REPLY);
    assert_eq!(e.expires(), secs(2) + to.udp);

    pass(&mut ct, secs(3), &udp(q));
    let e = ct.get(id).expect("entry");
    assert!(e.status.contains(Status::ASSURED));
    assert_eq!(e.expires(), secs(3) + to.udp_stream);
    assert_eq!(
        e.counters[0],
        Counter {
            packets: 3,
            bytes: 180
        }
    );
    assert_eq!(
        e.counters[1],
        Counter {
            packets: 1,
            bytes: 60
        }
    );
}

#[test]
fn expired_entry_is_replaced_on_the_next_packet() {
    let mut ct = ct();
    let q = tuple(17, (A.into(), 5353), (B.into(), 53));
    let first = pass(&mut ct, secs(1), &udp(q)).id;
    // 31 s later, before any expire() call.
    let t = pass(&mut ct, secs(32), &udp(q));
    assert_eq!(t.state, CtState::New);
    assert_ne!(t.id, first);
    assert_eq!(ct.len(), 1);
}

fn echo(t: Tuple, request: bool) -> CtPacket {
    CtPacket {
        tuple: t,
        len: 84,
        l4: CtL4::IcmpEcho { request },
    }
}

#[test]
fn icmp_echo() {
    let mut ct = ct();
    let req = tuple(1, (A.into(), 1234), (B.into(), 0));
    // A reply without a request.
    let t = ct.track(secs(1), &echo(req.reverse(), false));
    assert_eq!((t.state, t.id), (CtState::Invalid, None));

    let id = pass(&mut ct, secs(1), &echo(req, true)).id.expect("id");
    let t = pass(&mut ct, secs(1), &echo(req.reverse(), false));
    assert_eq!(
        (t.state, t.dir, t.id),
        (CtState::Established, Dir::Reply, Some(id))
    );
    let e = ct.get(id).expect("entry");
    assert_eq!(
        format_entry(e, secs(2)),
        "icmp     1 29 src=10.10.0.2 dst=10.10.0.3 type=8 code=0 id=1234 packets=1 bytes=84 \
         src=10.10.0.3 dst=10.10.0.2 type=0 code=0 id=1234 packets=1 bytes=84 mark=0 use=1"
    );
    // The same identifier the other way round as a request.
    let t = ct.track(secs(1), &echo(req.reverse(), true));
    assert_eq!(t.state, CtState::Invalid);
    // Another identifier is another flow.
    let other = tuple(1, (A.into(), 1235), (B.into(), 0));
    assert_eq!(
        pass(&mut ct, secs(1), &echo(other, true)).state,
        CtState::New
    );
    assert_eq!(ct.len(), 2);
}

#[test]
fn icmpv6_echo_and_ipv6_tcp() {
    let mut ct = ct();
    let a: IpAddr = "fd00::2".parse::<Ipv6Addr>().expect("addr").into();
    let b: IpAddr = "fd00::3".parse::<Ipv6Addr>().expect("addr").into();
    let req = tuple(58, (a, 7), (b, 0));
    pass(&mut ct, secs(1), &echo(req, true));
    let t = pass(&mut ct, secs(1), &echo(req.reverse(), false));
    assert_eq!(t.state, CtState::Established);
    let (id, _) = ct.lookup(&req).expect("found");
    assert!(format_entry(ct.get(id).expect("entry"), secs(1))
        .starts_with("icmpv6   58 30 src=fd00::2 dst=fd00::3 type=128 code=0 id=7 "));

    let t6 = tuple(6, (a, 40000), (b, 80));
    pass(&mut ct, secs(1), &tcp(t6, SYN, 1, 0, 0));
    pass(&mut ct, secs(1), &tcp(t6.reverse(), SYN | ACK, 9, 2, 0));
    pass(&mut ct, secs(1), &tcp(t6, ACK, 2, 10, 0));
    assert_eq!(state_of(&ct, &t6), Some(TcpState::Established));
    // The mixed-family tuple no parser makes.
    let mixed = tuple(6, (a, 1), (B.into(), 2));
    assert_eq!(
        ct.track(secs(1), &tcp(mixed, SYN, 1, 0, 0)).state,
        CtState::Invalid
    );
}

fn icmp_error(to: Ipv4Addr, inner: Tuple) -> CtPacket {
    CtPacket {
        tuple: tuple(1, (ROUTER.into(), 0), (to.into(), 0)),
        len: 112,
        l4: CtL4::IcmpError { inner },
    }
}

#[test]
fn icmp_errors_are_related() {
    let mut ct = ct();
    let id = established(&mut ct);
    let before = ct.get(id).expect("entry").clone();

    // A router tells A its packet to B did not get through.
    let t = ct.track(secs(2), &icmp_error(A, fwd()));
    assert_eq!(
        (t.state, t.dir, t.id),
        (CtState::Related, Dir::Reply, Some(id))
    );
    // And tells B about B's packet to A.
    let t = ct.track(secs(2), &icmp_error(B, rev()));
    assert_eq!(
        (t.state, t.dir, t.id),
        (CtState::Related, Dir::Original, Some(id))
    );
    // An error about nothing we track.
    let other = tuple(17, (A.into(), 1), (B.into(), 2));
    let t = ct.track(secs(2), &icmp_error(A, other));
    assert_eq!((t.state, t.id), (CtState::Invalid, None));

    // Errors about a ping.
    let req = tuple(1, (A.into(), 99), (B.into(), 0));
    let ping = pass(&mut ct, secs(2), &echo(req, true)).id;
    let t = ct.track(secs(2), &icmp_error(A, req));
    assert_eq!((t.state, t.id), (CtState::Related, ping));

    // No entry made, nothing counted on the entry.
    assert_eq!(ct.len(), 2);
    let after = ct.get(id).expect("entry");
    assert_eq!(after.counters, before.counters);
    assert_eq!(after.expires(), before.expires());
    // An echo reply is not an error.
    let bad = CtPacket {
        l4: CtL4::IcmpEcho { request: false },
        ..icmp_error(A, fwd())
    };
    assert_eq!(ct.track(secs(2), &bad).state, CtState::Invalid);
}

#[test]
fn generic_protocols_by_address() {
    let mut ct = ct();
    let gre = tuple(47, (A.into(), 11), (B.into(), 22));
    let pkt = CtPacket {
        tuple: gre,
        len: 100,
        l4: CtL4::Other,
    };
    let t = pass(&mut ct, secs(1), &pkt);
    assert_eq!(t.state, CtState::New);
    let back = CtPacket {
        tuple: tuple(47, (B.into(), 0), (A.into(), 0)),
        ..pkt
    };
    let t2 = pass(&mut ct, secs(2), &back);
    assert_eq!(
        (t2.state, t2.dir, t2.id),
        (CtState::Established, Dir::Reply, t.id)
    );
    assert!(ct.lookup(&gre).is_some());
    let e = ct.get(t.id.expect("id")).expect("entry");
    assert_eq!(e.expires(), secs(2) + Timeouts::default().generic);
    assert_eq!(
        format_entry(e, secs(2)),
        "unknown  47 600 src=10.10.0.2 dst=10.10.0.3 packets=1 bytes=100 \
         src=10.10.0.3 dst=10.10.0.2 packets=1 bytes=100 mark=0 use=1"
    );
}

#[test]
fn protocol_and_transport_must_agree() {
    let mut ct = ct();
    let u = tuple(17, (A.into(), 1), (B.into(), 2));
    let cases = [
        tcp(u, SYN, 1, 0, 0),
        CtPacket {
            l4: CtL4::Other,
            ..udp(u)
        },
        udp(fwd()),
        echo(u, true),
    ];
    for p in cases {
        assert_eq!(ct.track(secs(1), &p).state, CtState::Invalid, "{p:?}");
    }
    assert_eq!(ct.stats().new, 0);
}

#[test]
fn tentative_entries_are_bounded() {
    let mut ct = ct();
    let mut ids = Vec::new();
    for port in 0..20u16 {
        let t = ct.track(secs(1), &udp(tuple(17, (A.into(), port), (B.into(), 53))));
        ids.push(t.id.expect("id"));
        ct.check();
    }
    // The oldest were dropped to keep the list short.
    assert_eq!(ct.confirm(ids[0]), Err(ConfirmError::Gone));
    assert!(ct.get(ids[0]).is_none());
    assert_eq!(ct.confirm(ids[19]), Ok(()));
    ct.abort(ids[18]);
    assert!(ct.get(ids[18]).is_none());
    assert_eq!(ct.confirm(ids[18]), Err(ConfirmError::Gone));
    // Abort leaves a confirmed entry alone; confirming twice is harmless.
    ct.abort(ids[19]);
    assert_eq!(ct.confirm(ids[19]), Ok(()));
    assert_eq!(ct.len(), 1);
    ct.check();
}

#[test]
fn confirm_refuses_a_clash() {
    let mut ct = ct();
    let q = tuple(17, (A.into(), 1), (B.into(), 2));
    let first = ct.track(secs(1), &udp(q)).id.expect("id");
    let second = ct.track(secs(1), &udp(q)).id.expect("id");
    ct.confirm(first).expect("first");
    assert_eq!(ct.confirm(second), Err(ConfirmError::Clash));
    assert!(ct.get(second).is_none());
    assert_eq!(ct.stats().insert_failed, 1);
    ct.check();
}

#[test]
fn full_table_evicts_unassured_then_refuses() {
    let mut ct: Conntrack<()> = Conntrack::new(Config {
        max_entries: 2,
        ..Config::default()
    });
    let q = |p| tuple(17, (A.into(), p), (B.into(), 53));
    pass(&mut ct, secs(1), &udp(q(1)));
    pass(&mut ct, secs(1), &udp(q(2)));
    pass(&mut ct, secs(1), &udp(q(3)));
    assert_eq!(ct.len(), 2);
    assert_eq!(ct.stats().early_drop, 1);
    assert!(ct.lookup(&q(3)).is_some());

    // Make both remaining flows ASSURED: nothing may be evicted.
    for (_, e) in ct
        .iter()
        .map(|(id, e)| (id, *e.tuples()))
        .collect::<Vec<_>>()
    {
        pass(&mut ct, secs(2), &udp(e[1]));
        pass(&mut ct, secs(2), &udp(e[0]));
    }
    let t = ct.track(secs(3), &udp(q(4)));
    assert_eq!(ct.confirm(t.id.expect("id")), Err(ConfirmError::Full));
    assert_eq!(ct.stats().drop, 1);
    assert_eq!(ct.len(), 2);
    assert!(ct.lookup(&q(4)).is_none());

    // Once they have expired they make room again.
    let t = ct.track(secs(500), &udp(q(5)));
    assert_eq!(ct.confirm(t.id.expect("id")), Ok(()));
    ct.check();

    let mut none: Conntrack<()> = Conntrack::new(Config {
        max_entries: 0,
        ..Config::default()
    });
    let t = none.track(secs(1), &udp(q(1)));
    assert_eq!(none.confirm(t.id.expect("id")), Err(ConfirmError::Full));
    none.check();
}

#[test]
fn nat_rewrites_the_reply_tuple() {
    let mut ct = ct();
    let id = pass(&mut ct, secs(1), &tcp(fwd(), SYN, 1000, 0, 0))
        .id
        .expect("id");
    // SNAT A:40000 to 192.0.2.1:61000.
    let nat_reply = tuple(
        6,
        (B.into(), 5432),
        (Ipv4Addr::new(192, 0, 2, 1).into(), 61000),
    );
    assert!(!ct.is_taken(&nat_reply));
    ct.set_reply_tuple(id, nat_reply).expect("free tuple");
    ct.get_mut(id)
        .expect("entry")
        .status
        .insert(Status::SRC_NAT);
    assert!(ct.is_taken(&nat_reply));
    assert_eq!(ct.lookup(&nat_reply), Some((id, Dir::Reply)));
    assert_eq!(ct.lookup(&rev()), None);
    ct.check();

    let t = pass(&mut ct, secs(1), &tcp(nat_reply, SYN | ACK, 5000, 1001, 0));
    assert_eq!((t.dir, t.id), (Dir::Reply, Some(id)));

    // Another flow may not take the same reply tuple, nor its own original.
    let other = pass(
        &mut ct,
        secs(1),
        &udp(tuple(17, (A.into(), 1), (B.into(), 2))),
    )
    .id
    .expect("id");
    assert_eq!(ct.set_reply_tuple(other, nat_reply), Err(Clash));
    assert_eq!(ct.set_reply_tuple(other, fwd()), Err(Clash));
    let own = *ct.get(other).expect("entry").tuple(Dir::Original);
    assert_eq!(ct.set_reply_tuple(other, own), Err(Clash));
    // On a tentative entry the tuple is checked at confirm.
    let third = ct
        .track(secs(1), &udp(tuple(17, (A.into(), 3), (B.into(), 4))))
        .id
        .expect("id");
    let r = tuple(17, (B.into(), 4), (Ipv4Addr::new(192, 0, 2, 1).into(), 3));
    ct.set_reply_tuple(third, r).expect("free");
    ct.confirm(third).expect("confirm");
    assert_eq!(ct.lookup(&r), Some((third, Dir::Reply)));
    ct.check();
}

#[test]
fn remove_flush_and_stale_ids() {
    let mut ct = ct();
    let a = established(&mut ct);
    let q = tuple(17, (A.into(), 1), (B.into(), 2));
    let b = pass(&mut ct, secs(1), &udp(q)).id.expect("id");
    assert!(ct.remove_tuple(&q.reverse()));
    assert!(!ct.remove_tuple(&q));
    assert!(ct.get(b).is_none());
    // The freed slot is reused; the old id still finds nothing.
    let c = pass(&mut ct, secs(1), &udp(q)).id.expect("id");
    assert!(ct.get(b).is_none());
    assert!(!ct.remove(b));
    assert!(ct.get(c).is_some());
    assert_eq!(ct.iter().count(), 2);
    ct.flush();
    assert!(ct.is_empty());
    assert!(ct.get(a).is_none() && ct.get(c).is_none());
    assert_eq!(ct.lookup(&fwd()), None);
    ct.check();
    pass(&mut ct, secs(1), &udp(q));
    assert_eq!(ct.len(), 1);
}

#[test]
fn expiry_over_long_timeouts_and_gaps() {
    let mut ct = ct();
    let id = established(&mut ct);
    let q = tuple(17, (A.into(), 1), (B.into(), 2));
    pass(&mut ct, secs(1), &udp(q));
    // Every second for two hours: only the UDP flow goes, at 31 s.
    let mut gone = Vec::new();
    for s in 2..7200 {
        let n = ct.expire(secs(s));
        if n > 0 {
            gone.push((s, n));
        }
    }
    assert_eq!(gone, vec![(32, 1)]);
    assert!(ct.get(id).is_some());
    ct.check();
    // Kept alive by traffic, it outlives its first deadline.
    let deadline = ct.get(id).expect("entry").expires();
    pass(
        &mut ct,
        deadline - secs(10),
        &tcp(fwd(), ACK, 1001, 5001, 0),
    );
    assert_eq!(ct.expire(deadline + secs(5)), 0);
    // A gap longer than the wheel in one call.
    assert_eq!(ct.expire(deadline + secs(1_000_000)), 1);
    assert!(ct.is_empty());
    ct.check();
}

/// `expire` looks only at what is due: long-lived entries come round once
/// per turn of the wheel, not on every call.
#[test]
fn expire_cost_follows_what_is_due() {
    let mut ct = ct();
    let n = 10_000u32;
    for i in 0..n {
        let t = tuple(
            6,
            (Ipv4Addr::from(0x0a00_0000 | i).into(), 1),
            (B.into(), 80),
        );
        pass_quiet(&mut ct, secs(1), &tcp(t, SYN, 1, 0, 0));
        ct.track(secs(1), &tcp(t.reverse(), SYN | ACK, 9, 2, 0));
        ct.track(secs(1), &tcp(t, ACK, 2, 10, 0));
    }
    assert_eq!(ct.len(), n as usize);
    // Filed under SYN_RECV's 60 s, they come up once at 62 s and are filed
    // again under ESTABLISHED's five days.
    for s in 2..100 {
        assert_eq!(ct.expire(secs(s)), 0);
    }
    assert_eq!(ct.expiry_visits, u64::from(n));
    ct.expiry_visits = 0;
    for s in 100..1000 {
        ct.expire(secs(s));
    }
    assert_eq!(ct.expiry_visits, 0);
    // A whole turn: each entry is looked at once and filed again.
    for s in 1000..1000 + 4096 {
        ct.expire(secs(s));
    }
    assert_eq!(ct.expiry_visits, u64::from(n));
    ct.check();
}

#[test]
fn status_and_state_display() {
    assert_eq!(Status::empty().to_string(), "0");
    let mut s = Status::CONFIRMED;
    s.insert(Status::SEEN_REPLY | Status::ASSURED);
    assert_eq!(s.to_string(), "SEEN_REPLY|ASSURED|CONFIRMED");
    s.remove(Status::ASSURED);
    assert!(!s.contains(Status::ASSURED));
    assert_eq!(CtState::Related.to_string(), "RELATED");
    assert_eq!(TcpState::SynSent2.to_string(), "SYN_SENT2");
    assert_eq!(Dir::Reply.opposite(), Dir::Original);
    assert_eq!(Dir::Reply.index(), 1);
}

/// Heap bytes per entry with `E = ()`, index and wheel included.
#[test]
fn memory_per_entry() {
    let n: u32 = 200_000;
    let mut ct: Conntrack<()> = Conntrack::new(Config::default());
    for i in 0..n {
        let t = tuple(
            17,
            (Ipv4Addr::from(0x0a00_0000 | i).into(), 1000),
            (B.into(), 53),
        );
        pass_quiet(&mut ct, secs(1), &udp(t));
    }
    assert_eq!(ct.len(), n as usize);
    let per = ct.heap_bytes() / n as usize;
    println!(
        "conntrack: {per} heap bytes per entry at {n} entries (Entry<()> {} bytes)",
        std::mem::size_of::<Entry<()>>()
    );
    assert!(per <= 256, "{per} bytes per entry");
}

fn pass_quiet(ct: &mut Conntrack<()>, now: Duration, pkt: &CtPacket) {
    if let Some(id) = ct.track(now, pkt).id {
        let _ = ct.confirm(id);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Packet(usize, u8, u32, u32, u32),
    Udp(usize),
    Echo(usize, bool),
    Error(usize),
    Confirm,
    Abort,
    Remove(usize),
    Nat(usize, u16),
    Advance(u64),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    let idx = 0usize..8;
    prop_oneof![
        8 => (idx.clone(), any::<u8>(), 0u32..4000, 0u32..4000, 0u32..3000)
            .prop_map(|(i, f, s, a, l)| Op::Packet(i, f, s, a, l)),
        3 => idx.clone().prop_map(Op::Udp),
        2 => (idx.clone(), any::<bool>()).prop_map(|(i, r)| Op::Echo(i, r)),
        1 => idx.clone().prop_map(Op::Error),
        4 => Just(Op::Confirm),
        1 => Just(Op::Abort),
        1 => idx.clone().prop_map(Op::Remove),
        1 => (idx, 0u16..4).prop_map(|(i, p)| Op::Nat(i, p)),
        2 => (0u64..200).prop_map(Op::Advance),
        1 => Just(Op::Flush),
    ]
}

/// A small pool so flows collide: 4 hosts' tuples, both directions.
fn pool(i: usize, protocol: u8) -> Tuple {
    let hosts = [A, B, ROUTER, Ipv4Addr::new(10, 10, 0, 4)];
    let src = hosts[i % 4];
    let dst = hosts[(i / 2 + 1) % 4];
    let (sp, dp) = if protocol == 1 {
        (7, 0)
    } else {
        (1000 + (i % 2) as u16, 80)
    };
    let t = tuple(protocol, (src.into(), sp), (dst.into(), dp));
    if i >= 4 {
        t.reverse()
    } else {
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_traffic_keeps_the_table_consistent(ops in proptest::collection::vec(op(), 1..300)) {
        let mut ct: Conntrack<()> = Conntrack::new(Config { max_entries: 5, ..Config::default() });
        let mut now = secs(1);
        let mut last: Option<EntryId> = None;
        for op in ops {
            match op {
                Op::Packet(i, flags, seq, ack, len) => {
                    let t = ct.track(now, &tcp(pool(i, 6), flags, seq, ack, len));
                    last = t.id.or(last);
                }
                Op::Udp(i) => last = ct.track(now, &udp(pool(i, 17))).id.or(last),
                Op::Echo(i, r) => last = ct.track(now, &echo(pool(i, 1), r)).id.or(last),
                Op::Error(i) => {
                    let t = ct.track(now, &icmp_error(A, pool(i, 6)));
                    prop_assert!(matches!(t.state, CtState::Related | CtState::Invalid));
                }
                Op::Confirm => {
                    if let Some(id) = last {
                        let _ = ct.confirm(id);
                    }
                }
                Op::Abort => {
                    if let Some(id) = last {
                        ct.abort(id);
                    }
                }
                Op::Remove(i) => {
                    ct.remove_tuple(&pool(i, 6));
                }
                Op::Nat(i, p) => {
                    if let Some(id) = last {
                        let mut r = pool(i, 17);
                        r.dst_port = 60000 + p;
                        let _ = ct.set_reply_tuple(id, r);
                    }
                }
                Op::Advance(s) => {
                    now += secs(s);
                    ct.expire(now);
                }
                Op::Flush => ct.flush(),
            }
            ct.check();
            prop_assert!(ct.len() <= 5);
            prop_assert!(ct.iter().count() == ct.len());
        }
    }
}
