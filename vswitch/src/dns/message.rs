//! DNS messages (RFC 1035 section 4) as the embedded server needs them:
//! read a query's header, its one question and an EDNS OPT record (RFC
//! 6891); write a response with at most one A or PTR answer.
//!
//! Names in input may use compression pointers. A pointer must point before
//! the labels it ends, so every jump goes strictly backwards and a loop
//! cannot form; the decoded name is held to 255 bytes as well.

use std::net::Ipv4Addr;

pub const HEADER_LEN: usize = 12;
/// The longest name in wire form, length bytes and root included.
pub const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// The largest UDP message a client without EDNS accepts (RFC 1035 4.2.1).
pub const UDP_MIN_LIMIT: usize = 512;

pub mod rtype {
    pub const A: u16 = 1;
    pub const PTR: u16 = 12;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const ANY: u16 = 255;
}

pub mod class {
    pub const IN: u16 = 1;
    pub const ANY: u16 = 255;
}

/// Response codes; above 15 the upper bits travel in the OPT record.
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
}

pub mod flag {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
}

const OPCODE_SHIFT: u16 = 11;
/// The DO bit in the OPT record's TTL field (RFC 3225).
const EDNS_DO: u32 = 0x8000;

/// Why a message with a readable header could not be read further.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The message ends inside what starts at `offset`.
    Truncated {
        offset: usize,
    },
    /// Label types 01 and 10 (RFC 6891 retired the extended ones).
    LabelType {
        offset: usize,
    },
    /// A compression pointer at `offset` that does not point backwards.
    BadPointer {
        offset: usize,
    },
    NameTooLong {
        offset: usize,
    },
    /// Queries carry exactly one question.
    QuestionCount(u16),
    /// More than one OPT record, or one not owned by the root.
    BadOpt {
        offset: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// `None` when shorter than a header.
    pub fn parse(msg: &[u8]) -> Option<Header> {
        let w = |i: usize| Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]));
        Some(Header {
            id: w(0)?,
            flags: w(2)?,
            qdcount: w(4)?,
            ancount: w(6)?,
            nscount: w(8)?,
            arcount: w(10)?,
        })
    }

    pub fn is_response(&self) -> bool {
        self.flags & flag::QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> OPCODE_SHIFT) & 0xf) as u8
    }

    pub fn recursion_desired(&self) -> bool {
        self.flags & flag::RD != 0
    }
}

/// A name in uncompressed wire form: length-prefixed labels and the root.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Name(Vec<u8>);

impl Name {
    /// Reads the name at `start` of `msg`, following pointers; returns it
    /// and the offset just after it where it started.
    pub fn read(msg: &[u8], start: usize) -> Result<(Name, usize), Error> {
        let mut out = Vec::new();
        let mut pos = start;
        // Where the labels being read began: a pointer must go before it.
        let mut run_start = start;
        let mut end = None;
        loop {
            let len = *msg.get(pos).ok_or(Error::Truncated { offset: pos })?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    out.push(0);
                    return Ok((Name(out), end.unwrap_or(pos + 1)));
                }
                0x00 => {
                    let len = usize::from(len);
                    let label = msg
                        .get(pos + 1..pos + 1 + len)
                        .ok_or(Error::Truncated { offset: pos })?;
                    // Room for this label and the root after it.
                    if out.len() + 1 + len + 1 > MAX_NAME_LEN {
                        return Err(Error::NameTooLong { offset: start });
                    }
                    out.push(len as u8);
                    out.extend_from_slice(label);
                    pos += 1 + len;
                }
                0xc0 => {
                    let low = *msg.get(pos + 1).ok_or(Error::Truncated { offset: pos })?;
                    let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                    if target >= run_start {
                        return Err(Error::BadPointer { offset: pos });
                    }
                    end.get_or_insert(pos + 2);
                    run_start = target;
                    pos = target;
                }
                _ => return Err(Error::LabelType { offset: pos }),
            }
        }
    }

    /// `a.b.c` or `a.b.c.`; `None` for an empty label, a label over 63
    /// bytes or a name over 255.
    pub fn from_dotted(s: &str) -> Option<Name> {
        let s = s.strip_suffix('.').unwrap_or(s);
        let mut out = Vec::with_capacity(s.len() + 2);
        for label in s.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        (out.len() <= MAX_NAME_LEN).then_some(Name(out))
    }

    /// DNS compares names ASCII-case-insensitively (RFC 4343); length bytes
    /// are below 64 and so untouched.
    pub fn to_lowercase(&self) -> Name {
        Name(self.0.to_ascii_lowercase())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.0.as_slice();
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let label = tail.get(..usize::from(len))?;
            rest = &tail[label.len()..];
            (!label.is_empty()).then_some(label)
        })
    }

    /// The address named by `d.c.b.a.in-addr.arpa`.
    pub fn reverse_ipv4(&self) -> Option<Ipv4Addr> {
        let labels: Vec<&[u8]> = self.labels().collect();
        let [d, c, b, a, inaddr, arpa] = labels[..] else {
            return None;
        };
        if !inaddr.eq_ignore_ascii_case(b"in-addr") || !arpa.eq_ignore_ascii_case(b"arpa") {
            return None;
        }
        // Canonical decimal only: no sign, no leading zeros.
        let octet = |l: &[u8]| match l {
            [b'0'] => Some(0),
            [b'1'..=b'9', ..] if l.len() <= 3 => std::str::from_utf8(l).ok()?.parse::<u8>().ok(),
            _ => None,
        };
        Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

/// The OPT pseudo-record (RFC 6891 6.1.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query: its header, its one question, and its OPT record if any.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Query {
    pub header: Header,
    pub question: Question,
    pub edns: Option<Edns>,
}

fn u16_at(msg: &[u8], at: usize) -> Result<u16, Error> {
    match msg.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Error::Truncated { offset: at }),
    }
}

impl Query {
    /// Reads the question and the OPT record; answer and authority records
    /// are walked over unread, other additional records ignored.
    pub fn parse(msg: &[u8]) -> Result<Query, Error> {
        let header = Header::parse(msg).ok_or(Error::Truncated { offset: 0 })?;
        if header.qdcount != 1 {
            return Err(Error::QuestionCount(header.qdcount));
        }
        let (name, at) = Name::read(msg, HEADER_LEN)?;
        let question = Question {
            name,
            qtype: u16_at(msg, at)?,
            qclass: u16_at(msg, at + 2)?,
        };
        let mut at = at + 4;
        let skipped = usize::from(header.ancount) + usize::from(header.nscount);
        let mut edns = None;
        for i in 0..skipped + usize::from(header.arcount) {
            let start = at;
            let (owner, after) = Name::read(msg, at)?;
            let rtype = u16_at(msg, after)?;
            let rclass = u16_at(msg, after + 2)?;
            let ttl_hi = u16_at(msg, after + 4)?;
            let ttl_lo = u16_at(msg, after + 6)?;
            let rdlen = usize::from(u16_at(msg, after + 8)?);
            at = after + 10 + rdlen;
            if at > msg.len() {
                return Err(Error::Truncated { offset: start });
            }
            if i >= skipped && rtype == rtype::OPT {
                if edns.is_some() || owner.as_bytes() != [0] {
                    return Err(Error::BadOpt { offset: start });
                }
                let ttl = u32::from(ttl_hi) << 16 | u32::from(ttl_lo);
                edns = Some(Edns {
                    udp_size: rclass,
                    version: (ttl >> 16) as u8,
                    dnssec_ok: ttl & EDNS_DO != 0,
                });
            }
        }
        Ok(Query {
            header,
            question,
            edns,
        })
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RData {
    A(Ipv4Addr),
    Ptr(Name),
}

/// An answer; its owner is the question's name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    pub ttl: u32,
    pub data: RData,
}

/// A response to build. Without a question the counts are all zero (the
/// FORMERR and NOTIMP replies); with one, the question is written back and
/// the answer's owner points to it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Response<'a> {
    pub id: u16,
    pub opcode: u8,
    pub authoritative: bool,
    pub recursion_desired: bool,
    /// Up to 12 bits; the upper 8 need `edns`.
    pub rcode: u16,
    pub question: Option<&'a Question>,
    pub answer: Option<Record>,
    /// Our OPT record.
    pub edns: Option<Edns>,
}

/// Where the question's name starts in a message we write.
const QUESTION_POINTER: [u8; 2] = [0xc0, HEADER_LEN as u8];

impl Response<'_> {
    /// The message, at most `limit` bytes if it can be: when the answer
    /// does not fit it is left out and TC set (RFC 2181 9).
    pub fn emit(&self, limit: usize) -> Vec<u8> {
        let full = self.emit_with(self.answer.as_ref(), false);
        if full.len() <= limit || self.answer.is_none() {
            return full;
        }
        self.emit_with(None, true)
    }

    fn emit_with(&self, answer: Option<&Record>, truncated: bool) -> Vec<u8> {
        let mut flags =
            flag::QR | u16::from(self.opcode & 0xf) << OPCODE_SHIFT | flag::RA | (self.rcode & 0xf);
        for (on, bit) in [
            (self.authoritative, flag::AA),
            (truncated, flag::TC),
            (self.recursion_desired, flag::RD),
        ] {
            if on {
                flags |= bit;
            }
        }
        let answer = answer.filter(|_| self.question.is_some());
        let mut m = Vec::with_capacity(UDP_MIN_LIMIT);
        for w in [
            self.id,
            flags,
            u16::from(self.question.is_some()),
            u16::from(answer.is_some()),
            0,
            u16::from(self.edns.is_some()),
        ] {
            m.extend_from_slice(&w.to_be_bytes());
        }
        if let Some(q) = self.question {
            m.extend_from_slice(q.name.as_bytes());
            m.extend_from_slice(&q.qtype.to_be_bytes());
            m.extend_from_slice(&q.qclass.to_be_bytes());
        }
        if let Some(a) = answer {
            let (rtype, rdata) = match &a.data {
                RData::A(ip) => (rtype::A, ip.octets().to_vec()),
                RData::Ptr(name) => (rtype::PTR, name.as_bytes().to_vec()),
            };
            m.extend_from_slice(&QUESTION_POINTER);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&class::IN.to_be_bytes());
            m.extend_from_slice(&a.ttl.to_be_bytes());
            // rdata is at most a name: 255 bytes.
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&rdata);
        }
        if let Some(e) = self.edns {
            let ttl = u32::from(self.rcode >> 4) << 24
                | u32::from(e.version) << 16
                | if e.dnssec_ok { EDNS_DO } else { 0 };
            m.push(0);
            m.extend_from_slice(&rtype::OPT.to_be_bytes());
            m.extend_from_slice(&e.udp_size.to_be_bytes());
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&0u16.to_be_bytes());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_dotted(s).unwrap()
    }

    #[test]
    fn pointers_are_followed_backwards_only() {
        let msg = b"\x03foo\x00\x03bar\xc0\x00\xff";
        assert_eq!(Name::read(msg, 5), Ok((name("bar.foo"), 11)));
        // Onto itself, forwards, and a two-step loop.
        assert_eq!(
            Name::read(b"\xc0\x00", 0),
            Err(Error::BadPointer { offset: 0 })
        );
        assert_eq!(
            Name::read(b"\xc0\x02\x00", 0),
            Err(Error::BadPointer { offset: 0 })
        );
        assert_eq!(
            Name::read(b"\x01a\xc0\x04\xc0\x00", 4),
            Err(Error::BadPointer { offset: 2 })
        );
        assert_eq!(
            Name::read(b"\x01a\xc0", 0),
            Err(Error::Truncated { offset: 2 })
        );
        assert_eq!(Name::read(b"\x40", 0), Err(Error::LabelType { offset: 0 }));
    }

    #[test]
    fn names_stop_at_255_bytes() {
        // A chain of pointers each adding a 63-byte label.
        let mut msg = Vec::new();
        let mut prev = None;
        for _ in 0..5 {
            let here = msg.len();
            msg.push(63);
            msg.extend([b'x'; 63]);
            match prev {
                None => msg.push(0),
                Some(p) => msg.extend([0xc0, p as u8]),
            }
            prev = Some(here);
        }
        let last = prev.unwrap();
        assert_eq!(
            Name::read(&msg, last),
            Err(Error::NameTooLong { offset: last })
        );
        assert_eq!(Name::read(&msg, 0).unwrap().0.as_bytes().len(), 65);
    }

    #[test]
    fn dotted_names() {
        assert_eq!(name("Web.").as_bytes(), b"\x03Web\x00");
        assert_eq!(name("db.lab"), name("db.lab."));
        assert_eq!(name("WEB").to_lowercase(), name("web"));
        for bad in ["", ".", "a..b", &"x".repeat(64), &["x"; 128].join(".")] {
            assert_eq!(Name::from_dotted(bad), None, "{bad}");
        }
        let n = name("a.bc");
        let labels: Vec<&[u8]> = n.labels().collect();
        assert_eq!(labels, [&b"a"[..], b"bc"]);
    }

    #[test]
    fn reverse_names() {
        let ip = Ipv4Addr::new(10, 10, 0, 2);
        assert_eq!(name("2.0.10.10.IN-ADDR.ARPA").reverse_ipv4(), Some(ip));
        assert_eq!(
            name("0.0.0.255.in-addr.arpa").reverse_ipv4(),
            Some(Ipv4Addr::new(255, 0, 0, 0))
        );
        for bad in [
            "0.10.10.in-addr.arpa",
            "256.0.10.10.in-addr.arpa",
            "02.0.10.10.in-addr.arpa",
            "+2.0.10.10.in-addr.arpa",
            "2.0.10.10.ip6.arpa",
        ] {
            assert_eq!(name(bad).reverse_ipv4(), None, "{bad}");
        }
    }

    #[test]
    fn too_big_answers_are_dropped_with_tc() {
        let q = Question {
            name: name("web"),
            qtype: rtype::PTR,
            qclass: class::IN,
        };
        let r = Response {
            id: 7,
            opcode: 0,
            authoritative: true,
            recursion_desired: false,
            rcode: rcode::NOERROR,
            question: Some(&q),
            answer: Some(Record {
                ttl: 600,
                data: RData::A(Ipv4Addr::LOCALHOST),
            }),
            edns: None,
        };
        let full = r.emit(UDP_MIN_LIMIT);
        assert_eq!(full.len(), 12 + 9 + 16);
        let cut = r.emit(full.len() - 1);
        assert_eq!(
            cut,
            [
                &[0, 7, 0x86, 0x80, 0, 1, 0, 0, 0, 0, 0, 0][..],
                &full[12..21]
            ]
            .concat()
        );
    }
}
