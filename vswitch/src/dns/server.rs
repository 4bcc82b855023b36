//! The embedded DNS server on each gateway address, scoped as Docker's is:
//! a port sees the names (port names and aliases) of its own network.
//!
//! Per network the server holds two maps: lowercased name to address for A
//! queries, and address to its first-listed name for PTR queries under
//! in-addr.arpa. Answers are authoritative with a TTL of 600 seconds, as
//! Docker's. Our name with a type other than A gets NOERROR and no answer
//! (NODATA). A name that belongs to another network is NXDOMAIN, never
//! forwarded, so networks do not learn each other's addresses. Any other
//! name is the upstream's (`Answer::Forward`) when one is configured, else
//! REFUSED. No SOA goes with negative answers: there is no zone to name.
//!
//! A name has one address and an address one PTR name, so a response holds
//! at most one record and stays under 512 bytes: 298 for an A answer to a
//! 255-byte name, 324 for a 255-byte PTR answer (reverse names are read in
//! canonical decimal only, so the question is at most 30 bytes). The TC rule
//! in `Response::emit` is kept for the protocol's sake and does not fire.
//!
//! Tables change only through `set_records` (on load and reload); `answer`
//! takes `&self` and allocates only the reply.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use super::message::{
    class, rcode, rtype, Edns, Header, Name, Query, RData, Record, Response, UDP_MIN_LIMIT,
};

/// Docker's embedded DNS uses the same.
pub const TTL: u32 = 600;

/// The UDP size we advertise: the DNS Flag Day 2020 value, which fits any
/// path's MTU without fragments.
pub const UDP_SIZE: u16 = 1232;

const TCP_LIMIT: usize = u16::MAX as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send this back to the client.
    Reply(Vec<u8>),
    /// Not ours: the switch relays the query to the upstream resolver.
    Forward,
    /// Not a query, or not even a header: send nothing.
    Drop,
}

/// A record name that is not a DNS name (empty label, label over 63 bytes,
/// over 255 in all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadName(pub String);

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a valid DNS name", self.0)
    }
}

impl std::error::Error for BadName {}

#[derive(Clone, Debug, Default)]
struct Zone {
    addrs: HashMap<Name, Ipv4Addr>,
    names: HashMap<Ipv4Addr, Name>,
}

#[derive(Clone, Debug, Default)]
pub struct DnsServer {
    zones: HashMap<u16, Zone>,
    upstream: bool,
}

/// What the tables say about a question.
enum Lookup {
    /// Ours: the record of the asked type, if there is one.
    Ours(Option<RData>),
    OtherNetwork,
    NotOurs,
}

impl DnsServer {
    pub fn new() -> DnsServer {
        DnsServer::default()
    }

    /// Replaces the names of `network`. When a name appears twice the first
    /// address wins, and an address's PTR answer is the first name listed
    /// for it, so list the port name before its aliases. Nothing changes
    /// if a name is invalid.
    pub fn set_records(
        &mut self,
        network: u16,
        records: Vec<(String, Ipv4Addr)>,
    ) -> Result<(), BadName> {
        let mut zone = Zone::default();
        for (text, ip) in records {
            let name = Name::from_dotted(&text).ok_or(BadName(text))?;
            zone.names.entry(ip).or_insert_with(|| name.clone());
            zone.addrs.entry(name.to_lowercase()).or_insert(ip);
        }
        self.zones.insert(network, zone);
        Ok(())
    }

    /// Whether names that are not ours go to an upstream resolver.
    pub fn set_upstream(&mut self, on: bool) {
        self.upstream = on;
    }

    /// Answers one query that arrived on `network`'s gateway.
    pub fn answer(&self, network: u16, query: &[u8], transport: Transport) -> Answer {
        let Some(header) = Header::parse(query) else {
            return Answer::Drop;
        };
        if header.is_response() {
            return Answer::Drop;
        }
        let bare = |rcode| Response {
            id: header.id,
            opcode: header.opcode(),
            authoritative: false,
            recursion_desired: header.recursion_desired(),
            rcode,
            question: None,
            answer: None,
            edns: None,
        };
        if header.opcode() != 0 {
            return Answer::Reply(bare(rcode::NOTIMP).emit(UDP_MIN_LIMIT));
        }
        let Ok(q) = Query::parse(query) else {
            return Answer::Reply(bare(rcode::FORMERR).emit(UDP_MIN_LIMIT));
        };
        let limit = match (transport, q.edns) {
            (Transport::Tcp, _) => TCP_LIMIT,
            // RFC 6891 6.2.5: below 512 means 512.
            (Transport::Udp, Some(e)) => usize::from(e.udp_size).max(UDP_MIN_LIMIT),
            (Transport::Udp, None) => UDP_MIN_LIMIT,
        };
        let mut r = Response {
            question: Some(&q.question),
            edns: q.edns.map(|e| Edns {
                udp_size: UDP_SIZE,
                version: 0,
                // RFC 3225 3: copied from the query.
                dnssec_ok: e.dnssec_ok,
            }),
            ..bare(rcode::NOERROR)
        };
        if q.edns.is_some_and(|e| e.version != 0) {
            r.rcode = rcode::BADVERS;
            return Answer::Reply(r.emit(limit));
        }
        match self.lookup(network, &q) {
            Lookup::Ours(data) => {
                r.authoritative = true;
                r.answer = data.map(|data| Record { ttl: TTL, data });
            }
            Lookup::OtherNetwork => {
                r.authoritative = true;
                r.rcode = rcode::NXDOMAIN;
            }
            Lookup::NotOurs if self.upstream => return Answer::Forward,
            Lookup::NotOurs => r.rcode = rcode::REFUSED,
        }
        Answer::Reply(r.emit(limit))
    }

    fn lookup(&self, network: u16, q: &Query) -> Lookup {
        let qn = &q.question;
        if qn.qclass != class::IN && qn.qclass != class::ANY {
            return Lookup::NotOurs;
        }
        let wants = |t| qn.qtype == t || qn.qtype == rtype::ANY;
        let key = qn.name.to_lowercase();
        let reverse = qn.name.reverse_ipv4();
        let found = |z: &Zone| match reverse {
            Some(ip) => z
                .names
                .get(&ip)
                .map(|n| wants(rtype::PTR).then(|| RData::Ptr(n.clone()))),
            None => z
                .addrs
                .get(&key)
                .map(|&ip| wants(rtype::A).then_some(RData::A(ip))),
        };
        if let Some(data) = self.zones.get(&network).and_then(found) {
            return Lookup::Ours(data);
        }
        let elsewhere = self
            .zones
            .iter()
            .any(|(&n, z)| n != network && found(z).is_some());
        if elsewhere {
            Lookup::OtherNetwork
        } else {
            Lookup::NotOurs
        }
    }
}

#[cfg(test)]
mod tests;
