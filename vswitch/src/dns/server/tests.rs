use proptest::prelude::*;

use super::*;
use crate::dns::message::{flag, HEADER_LEN};
use crate::dns::{tcp_frame, tcp_frames};

const FRONT: u16 = 1;
const BACK: u16 = 2;
const WEB: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const DB: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 3);
const VAULT: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);
const ID: u16 = 0xbeef;

fn server() -> DnsServer {
    let mut s = DnsServer::new();
    s.set_records(
        FRONT,
        vec![
            ("web".into(), WEB),
            ("db.".into(), DB),
            ("Redis".into(), DB),
        ],
    )
    .unwrap();
    s.set_records(BACK, vec![("vault".into(), VAULT)]).unwrap();
    s
}

fn wire(name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        b.push(l.len() as u8);
        b.extend(l.as_bytes());
    }
    b.push(0);
    b
}

/// A query as `dig` sends it: RD set, one question; with `edns`, an OPT
/// record of that UDP size, version and DO bit.
fn query(name: &str, qtype: u16, edns: Option<(u16, u8, bool)>) -> Vec<u8> {
    let mut b = ID.to_be_bytes().to_vec();
    b.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    b.extend(wire(name));
    b.extend(qtype.to_be_bytes());
    b.extend(class::IN.to_be_bytes());
    if let Some((size, version, dnssec_ok)) = edns {
        b.extend([0, 0, 41]);
        b.extend(size.to_be_bytes());
        b.extend([0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    b
}

/// A response read back field by field.
#[derive(Debug, PartialEq)]
struct Parsed {
    id: u16,
    flags: u16,
    counts: [u16; 4],
    question: Option<(Vec<u8>, u16, u16)>,
    /// Owner name, type, class, TTL, rdata.
    answers: Vec<(Name, u16, u16, u32, Vec<u8>)>,
    /// UDP size and TTL field.
    opt: Option<(u16, u32)>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn parse(reply: &Answer) -> Parsed {
    let Answer::Reply(b) = reply else {
        panic!("not a reply: {reply:?}");
    };
    let h = Header::parse(b).unwrap();
    let mut p = Parsed {
        id: h.id,
        flags: h.flags,
        counts: [h.qdcount, h.ancount, h.nscount, h.arcount],
        question: None,
        answers: Vec::new(),
        opt: None,
    };
    let mut at = HEADER_LEN;
    if h.qdcount == 1 {
        let (n, after) = Name::read(b, at).unwrap();
        p.question = Some((n.as_bytes().to_vec(), be16(b, after), be16(b, after + 2)));
        at = after + 4;
    }
    for i in 0..h.ancount + h.arcount {
        let (owner, after) = Name::read(b, at).unwrap();
        let (t, c) = (be16(b, after), be16(b, after + 2));
        let ttl = u32::from(be16(b, after + 4)) << 16 | u32::from(be16(b, after + 6));
        let len = usize::from(be16(b, after + 8));
        let rdata = b[after + 10..after + 10 + len].to_vec();
        at = after + 10 + len;
        if i < h.ancount {
            p.answers.push((owner, t, c, ttl, rdata));
        } else {
            assert_eq!((owner.as_bytes(), t, len), (&[0][..], 41, 0));
            p.opt = Some((c, ttl));
        }
    }
    assert_eq!(at, b.len(), "trailing bytes");
    p
}

fn name(s: &str) -> Name {
    Name::from_dotted(s).unwrap()
}

fn ask(s: &DnsServer, network: u16, q: &[u8]) -> Parsed {
    parse(&s.answer(network, q, Transport::Udp))
}

const QR_RD_RA: u16 = flag::QR | flag::RD | flag::RA;

#[test]
fn a_record_for_a_port() {
    let s = server();
    let p = ask(&s, FRONT, &query("web", rtype::A, None));
    assert_eq!(
        p,
        Parsed {
            id: ID,
            flags: QR_RD_RA | flag::AA,
            counts: [1, 1, 0, 0],
            question: Some((wire("web"), rtype::A, class::IN)),
            answers: vec![(name("web"), rtype::A, class::IN, 600, WEB.octets().to_vec())],
            opt: None,
        }
    );
}

#[test]
fn names_match_without_case_or_trailing_dot() {
    let s = server();
    for (q, ip) in [("WEB", WEB), ("db.", DB), ("redis", DB), ("REDIS.", DB)] {
        let p = ask(&s, FRONT, &query(q, rtype::A, None));
        // The question comes back as asked, case included.
        assert_eq!(p.question.unwrap().0, wire(q));
        assert_eq!(p.answers[0].4, ip.octets(), "{q}");
        assert_eq!(p.answers[0].0, name(q));
    }
}

#[test]
fn ptr_for_our_addresses() {
    let s = server();
    let p = ask(
        &s,
        FRONT,
        &query("3.0.10.10.in-addr.arpa", rtype::PTR, None),
    );
    assert_eq!(p.flags, QR_RD_RA | flag::AA);
    assert_eq!(p.counts, [1, 1, 0, 0]);
    // The first name listed for the address, not the alias.
    assert_eq!(
        p.answers,
        [(
            name("3.0.10.10.in-addr.arpa"),
            rtype::PTR,
            class::IN,
            600,
            wire("db")
        )]
    );
}

#[test]
fn other_networks_are_nxdomain_even_with_an_upstream() {
    let mut s = server();
    s.set_upstream(true);
    for q in [
        query("vault", rtype::A, None),
        query("2.0.20.10.in-addr.arpa", rtype::PTR, None),
    ] {
        let p = ask(&s, FRONT, &q);
        assert_eq!(p.flags, QR_RD_RA | flag::AA | rcode::NXDOMAIN);
        assert_eq!(p.counts, [1, 0, 0, 0]);
    }
    // And the other way round.
    let p = ask(&s, BACK, &query("web", rtype::A, None));
    assert_eq!(p.flags & 0xf, rcode::NXDOMAIN);
    assert_eq!(
        ask(&s, BACK, &query("vault", rtype::A, None)).counts,
        [1, 1, 0, 0]
    );
}

#[test]
fn nodata_for_other_types() {
    let s = server();
    for (q, t) in [
        ("web", rtype::AAAA),
        ("web", 16),
        ("2.0.10.10.in-addr.arpa", rtype::A),
    ] {
        let p = ask(&s, FRONT, &query(q, t, None));
        assert_eq!(p.flags, QR_RD_RA | flag::AA, "{q} {t}");
        assert_eq!(p.counts, [1, 0, 0, 0]);
    }
    let p = ask(&s, FRONT, &query("web", rtype::ANY, None));
    assert_eq!(p.answers[0].1, rtype::A);
}

#[test]
fn names_not_ours_are_refused_or_forwarded() {
    let mut s = server();
    for q in [
        query("example.com", rtype::A, None),
        query("9.0.10.10.in-addr.arpa", rtype::PTR, None),
        query("web.example.com", rtype::A, None),
    ] {
        let p = ask(&s, FRONT, &q);
        assert_eq!(p.flags, QR_RD_RA | rcode::REFUSED);
        assert_eq!(p.counts, [1, 0, 0, 0]);
    }
    // A network with no records set yet knows only other networks' names.
    let p = ask(&s, 9, &query("web", rtype::A, None));
    assert_eq!(p.flags & 0xf, rcode::NXDOMAIN);
    s.set_upstream(true);
    assert_eq!(
        s.answer(FRONT, &query("example.com", rtype::A, None), Transport::Udp),
        Answer::Forward
    );
    // Another class is never ours.
    let mut q = query("web", rtype::A, None);
    let at = q.len() - 2;
    q[at..].copy_from_slice(&3u16.to_be_bytes());
    assert_eq!(s.answer(FRONT, &q, Transport::Udp), Answer::Forward);
}

#[test]
fn edns_is_echoed_with_our_size() {
    let s = server();
    let p = ask(&s, FRONT, &query("web", rtype::A, Some((4096, 0, true))));
    assert_eq!(p.counts, [1, 1, 0, 1]);
    assert_eq!(p.opt, Some((UDP_SIZE, 0x0000_8000)));
    let p = ask(&s, FRONT, &query("web", rtype::A, Some((512, 0, false))));
    assert_eq!(p.opt, Some((UDP_SIZE, 0)));
    // A size under 512 counts as 512: the answer still fits.
    let p = ask(&s, FRONT, &query("web", rtype::A, Some((100, 0, false))));
    assert_eq!(p.flags & flag::TC, 0);
    assert_eq!(p.counts[1], 1);
    // Version 1: BADVERS, 16, whose upper bits ride in the OPT TTL.
    let p = ask(&s, FRONT, &query("web", rtype::A, Some((1232, 1, false))));
    assert_eq!(p.flags, QR_RD_RA);
    assert_eq!(p.counts, [1, 0, 0, 1]);
    assert_eq!(p.opt, Some((UDP_SIZE, 0x0100_0000)));
}

#[test]
fn longest_answers_fit_in_512() {
    let long = [
        "x".repeat(63),
        "y".repeat(63),
        "z".repeat(63),
        "w".repeat(61),
    ]
    .join(".");
    let ip = Ipv4Addr::new(10, 10, 0, 200);
    let mut s = server();
    s.set_records(FRONT, vec![(long.clone(), ip)]).unwrap();
    for q in [
        query(&long, rtype::A, Some((512, 0, false))),
        query(
            "200.0.10.10.in-addr.arpa",
            rtype::PTR,
            Some((512, 0, false)),
        ),
    ] {
        let Answer::Reply(b) = s.answer(FRONT, &q, Transport::Udp) else {
            panic!();
        };
        assert!(b.len() <= 512, "{}", b.len());
        assert_eq!(parse(&Answer::Reply(b)).counts, [1, 1, 0, 1]);
    }
    assert_eq!(
        s.set_records(FRONT, vec![(format!("{long}x"), ip)]),
        Err(BadName(format!("{long}x")))
    );
}

#[test]
fn formerr_notimp_and_drop() {
    let s = server();
    let formerr = |q: &[u8]| {
        let p = ask(&s, FRONT, q);
        assert_eq!(p.flags, QR_RD_RA | rcode::FORMERR, "{q:?}");
        assert_eq!((p.id, p.counts), (ID, [0; 4]));
    };
    let good = query("web", rtype::A, None);
    // Two questions counted, one present.
    let mut q = good.clone();
    q[5] = 2;
    formerr(&q);
    // No question.
    formerr(&good[..HEADER_LEN]);
    // Cut inside the name, and inside type and class.
    formerr(&good[..HEADER_LEN + 2]);
    formerr(&good[..good.len() - 1]);
    // A pointer to itself, and one forward.
    let mut q = good[..HEADER_LEN].to_vec();
    q.extend([0xc0, 12, 0, 1, 0, 1]);
    formerr(&q);
    let mut q = good[..HEADER_LEN].to_vec();
    q.extend([0xc0, 14, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
    formerr(&q);
    // A label type in use by nobody.
    let mut q = good.clone();
    q[HEADER_LEN] = 0x83;
    formerr(&q);
    // An additional record counted but missing, and two OPT records.
    let mut q = good.clone();
    q[11] = 1;
    formerr(&q);
    let mut q = query("web", rtype::A, Some((1232, 0, false)));
    q[11] = 2;
    q.extend_from_within(good.len()..);
    formerr(&q);

    // Opcode 2 (STATUS): not implemented.
    let mut q = good.clone();
    q[2] |= 2 << 3;
    let p = ask(&s, FRONT, &q);
    assert_eq!(p.flags, QR_RD_RA | 2 << 11 | rcode::NOTIMP);
    assert_eq!(p.counts, [0; 4]);

    // No header, or a response: nothing to say.
    assert_eq!(s.answer(FRONT, &good[..11], Transport::Udp), Answer::Drop);
    let mut q = good.clone();
    q[2] |= 0x80;
    assert_eq!(s.answer(FRONT, &q, Transport::Udp), Answer::Drop);
}

#[test]
fn compressed_question_names_are_followed() {
    let s = server();
    // The question's name is `web` followed by a pointer back into an
    // answer-less header: pointers before the question can only reach the
    // header, so make the header's last byte the root label.
    let mut q = query("web", rtype::A, None);
    q.truncate(HEADER_LEN);
    q.extend([3, b'w', b'e', b'b', 0xc0, 11, 0, 1, 0, 1]);
    let p = ask(&s, FRONT, &q);
    assert_eq!(p.answers[0].4, WEB.octets());
    assert_eq!(p.question.unwrap().0, wire("web"));
}

#[test]
fn tcp_queries() {
    let s = server();
    let mut stream = tcp_frame(&query("web", rtype::A, None)).unwrap();
    stream.extend(tcp_frame(&query("db", rtype::A, None)).unwrap());
    stream.extend([0, 40, 1, 2]);
    let mut frames = tcp_frames(&stream);
    let answers: Vec<Parsed> = frames
        .by_ref()
        .map(|m| parse(&s.answer(FRONT, m, Transport::Tcp)))
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[1].answers[0].4, DB.octets());
    assert_eq!(frames.consumed(), stream.len() - 4);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut s = server();
        s.set_upstream(true);
        if let Answer::Reply(r) = s.answer(FRONT, &b, Transport::Udp) {
            prop_assert!(Header::parse(&r).is_some_and(|h| h.is_response()));
        }
    }

    #[test]
    fn mutated_queries_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut b = [
            query("web", rtype::A, Some((1232, 0, true))),
            query("3.0.10.10.in-addr.arpa", rtype::PTR, None),
            query("example.com", rtype::AAAA, None),
        ][which]
            .clone();
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(cut % (b.len() + 1));
        let s = server();
        for t in [Transport::Udp, Transport::Tcp] {
            if let Answer::Reply(r) = s.answer(FRONT, &b, t) {
                prop_assert!(r.len() <= 512);
                prop_assert!(Header::parse(&r).is_some_and(|h| h.is_response()));
            }
        }
    }
}
