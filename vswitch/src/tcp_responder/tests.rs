use super::*;

use crate::dns::{tcp_frame, tcp_frames};

fn key(port: u16) -> ConnKey {
    ConnKey {
        network: 0,
        client: (Ipv4Addr::new(10, 0, 0, 2), port),
        server: (Ipv4Addr::new(10, 0, 0, 1), 53),
    }
}

fn seg(flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]) -> Segment<'_> {
    Segment {
        flags,
        seq,
        ack,
        payload,
    }
}

/// Answers each whole length-prefixed message with it uppercased.
fn upper(rx: &mut Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut frames = tcp_frames(rx);
    for m in frames.by_ref() {
        out.extend(tcp_frame(&m.to_ascii_uppercase()).unwrap());
    }
    let used = frames.consumed();
    rx.drain(..used);
    out
}

fn sent(h: Handled) -> Vec<Reply> {
    match h {
        Handled::Send(v) => v,
        Handled::Reset => panic!("reset"),
    }
}

const ACK: TcpFlags = TcpFlags::ACK;

/// SYN and the handshake's ACK; returns our initial sequence number.
fn connect(r: &mut TcpResponder, now: Timestamp, k: ConnKey) -> u32 {
    let syn_ack = sent(r.handle(now, k, seg(TcpFlags::SYN, 1000, 0, b""), upper));
    assert_eq!(syn_ack.len(), 1);
    let s = &syn_ack[0];
    assert_eq!(s.flags, TcpFlags::SYN | ACK);
    assert_eq!(s.ack, 1001);
    assert!(s.payload.is_empty());
    let none = sent(r.handle(now, k, seg(ACK, 1001, s.seq + 1, b""), upper));
    assert!(none.is_empty(), "a bare ACK is not answered");
    s.seq
}

#[test]
fn a_query_is_answered_and_the_close_followed() {
    let mut r = TcpResponder::new();
    let now = Timestamp::from_secs(5);
    let k = key(40000);
    let iss = connect(&mut r, now, k);
    // The query arrives in two pieces; the answer goes with the second.
    let q = tcp_frame(b"query").unwrap();
    let first = sent(r.handle(now, k, seg(ACK, 1001, iss + 1, &q[..3]), upper));
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].flags, first[0].ack), (ACK, 1004));
    assert!(first[0].payload.is_empty());
    let second = sent(r.handle(
        now,
        k,
        seg(ACK | TcpFlags::PSH, 1004, iss + 1, &q[3..]),
        upper,
    ));
    assert_eq!(second.len(), 1);
    let a = &second[0];
    assert_eq!(
        (a.flags, a.seq, a.ack),
        (ACK | TcpFlags::PSH, iss + 1, 1008)
    );
    assert_eq!(a.payload, tcp_frame(b"QUERY").unwrap());
    assert_eq!(a.window, u16::MAX, "everything taken, the window wide open");

    // The client acknowledges and closes; we close too.
    let end = iss + 1 + a.payload.len() as u32;
    let fin = sent(r.handle(now, k, seg(ACK | TcpFlags::FIN, 1008, end, b""), upper));
    assert_eq!(fin.len(), 1);
    assert_eq!(
        (fin[0].flags, fin[0].seq, fin[0].ack),
        (TcpFlags::FIN | ACK, end, 1009)
    );
    // Its FIN again (our FIN-ACK was lost): the same FIN-ACK.
    let again = sent(r.handle(now, k, seg(ACK | TcpFlags::FIN, 1008, end, b""), upper));
    assert!(again.contains(&fin[0]), "{again:?}");
    assert_eq!(r.len(), 1);
    let last = sent(r.handle(now, k, seg(ACK, 1009, end + 1, b""), upper));
    assert!(last.is_empty());
    assert!(r.is_empty(), "closed both ways");
}

#[test]
fn a_retransmitted_query_gets_the_answer_again() {
    let mut r = TcpResponder::new();
    let now = Timestamp::from_secs(1);
    let k = key(40001);
    let iss = connect(&mut r, now, k);
    let q = tcp_frame(b"abc").unwrap();
    let a = sent(r.handle(now, k, seg(ACK, 1001, iss + 1, &q), upper));
    // Our answer was lost: the client sends its query again.
    let again = sent(r.handle(now, k, seg(ACK, 1001, iss + 1, &q), upper));
    assert_eq!(again.len(), 2);
    assert_eq!((again[0].ack, again[0].payload.len()), (1006, 0));
    assert_eq!(again[1], a[0], "the same answer, the same sequence number");
    // Once acknowledged there is nothing to resend.
    sent(r.handle(now, k, seg(ACK, 1006, iss + 1 + 5, b""), upper));
    let dup = sent(r.handle(now, k, seg(ACK, 1001, iss + 6, &q), upper));
    assert_eq!(dup.len(), 1);
}

#[test]
fn strays_are_reset_and_the_table_is_bounded() {
    let mut r = TcpResponder::new();
    let now = Timestamp::from_secs(1);
    assert_eq!(
        r.handle(now, key(1), seg(ACK, 5, 6, b"x"), upper),
        Handled::Reset
    );
    assert_eq!(
        r.handle(now, key(1), seg(TcpFlags::SYN | ACK, 5, 6, b""), upper),
        Handled::Reset
    );
    for port in 0..MAX_CONNS as u16 {
        sent(r.handle(
            now,
            key(10_000 + port),
            seg(TcpFlags::SYN, 1, 0, b""),
            upper,
        ));
    }
    assert_eq!(r.len(), MAX_CONNS);
    assert_eq!(
        r.handle(now, key(9), seg(TcpFlags::SYN, 1, 0, b""), upper),
        Handled::Reset
    );
    // A reset from the client ends its connection quietly.
    let gone = r.handle(now, key(10_000), seg(TcpFlags::RST, 2, 0, b""), upper);
    assert_eq!(gone, Handled::Send(Vec::new()));
    assert_eq!(r.len(), MAX_CONNS - 1);
    // Idle ones go with time.
    r.expire(now.plus(IDLE));
    assert!(r.is_empty());
}

#[test]
fn a_lost_syn_ack_is_sent_again_and_data_waits_for_the_handshake() {
    let mut r = TcpResponder::new();
    let now = Timestamp::from_secs(1);
    let k = key(40002);
    let first = sent(r.handle(now, k, seg(TcpFlags::SYN, 77, 0, b""), upper));
    let again = sent(r.handle(now, k, seg(TcpFlags::SYN, 77, 0, b""), upper));
    assert_eq!(first, again);
    // The handshake's ACK rides on the query.
    let iss = first[0].seq;
    let q = tcp_frame(b"q").unwrap();
    let a = sent(r.handle(now, k, seg(ACK, 78, iss + 1, &q), upper));
    assert_eq!(a[0].payload, tcp_frame(b"Q").unwrap());
}

#[test]
fn more_than_a_request_can_hold_is_reset() {
    let mut r = TcpResponder::new();
    let now = Timestamp::from_secs(1);
    let k = key(40003);
    let iss = connect(&mut r, now, k);
    // A length prefix promising more than fits, then more bytes than fit.
    let big = vec![0xffu8; RX_LIMIT + 1];
    assert_eq!(
        r.handle(now, k, seg(ACK, 1001, iss + 1, &big), upper),
        Handled::Reset
    );
    assert!(r.is_empty());
}
