//! Classifying a packet: find its entry or start one, run the protocol's
//! state machine, count it and push its expiry forward.
//!
//! Per protocol, as Linux does unless said otherwise:
//! - TCP: `tcp.rs`.
//! - UDP: the first packet is NEW and the entry UNREPLIED with the `udp`
//!   timeout; a reply sets SEEN_REPLY. Any packet after that makes the
//!   entry ASSURED with `udp_stream`. (Linux also waits two seconds from
//!   the first packet, so a DNS retry is not a stream; we do not.)
//! - ICMP and ICMPv6 echo: keyed by identifier; a request starts an entry,
//!   the reply answers it; a reply with no entry is INVALID. A request
//!   that matches an entry's reply tuple (both hosts pinging each other
//!   with the same identifier) is INVALID here, as our tuple has no type.
//! - ICMP errors: RELATED to the entry the quoted packet belongs to, with
//!   no entry of their own and no effect on it; INVALID otherwise.
//! - Other protocols: by addresses and protocol, NEW until a reply.
//!
//! Invalid packets change nothing: no state, no counters, no expiry.

use std::time::Duration;

use packet::ipv4::protocol::{ICMP, ICMPV6, TCP, UDP};

use crate::table::{key, nanos, Entry, Proto};
use crate::tcp::{Segment, TcpConn, TcpState, Verdict, RST};
use crate::{Conntrack, CtL4, CtPacket, CtState, Dir, EntryId, Status, Track, Tuple};

fn invalid_track() -> Track {
    Track {
        state: CtState::Invalid,
        dir: Dir::Original,
        id: None,
    }
}

/// The packet's tuple as the index keys it, if its transport facts agree
/// with its protocol number.
fn packet_key(pkt: &CtPacket) -> Option<Tuple> {
    let t = &pkt.tuple;
    if t.src.is_ipv4() != t.dst.is_ipv4() {
        return None;
    }
    let agrees = match pkt.l4 {
        CtL4::Tcp { .. } => t.protocol == TCP,
        CtL4::Udp => t.protocol == UDP,
        CtL4::IcmpEcho { .. } | CtL4::IcmpError { .. } => {
            t.protocol == if t.src.is_ipv4() { ICMP } else { ICMPV6 }
        }
        CtL4::Other => !matches!(t.protocol, TCP | UDP | ICMP | ICMPV6),
    };
    agrees.then(|| key(t))
}

fn segment(l4: &CtL4) -> Option<Segment> {
    match *l4 {
        CtL4::Tcp {
            flags,
            seq,
            ack,
            window,
            wscale,
            payload_len,
        } => Some(Segment {
            flags,
            seq,
            ack,
            window,
            wscale,
            payload_len,
        }),
        _ => None,
    }
}

impl<E: Default> Conntrack<E> {
    /// Classifies a packet and updates its entry's state, counters and
    /// expiry. A packet that starts a flow creates a tentative entry,
    /// returned in `Track::id`, that lookups do not find until `confirm`.
    pub fn track(&mut self, now: Duration, pkt: &CtPacket) -> Track {
        let now = nanos(now);
        self.now = self.now.max(now);
        let track = self.classify(now, pkt);
        if track.state == CtState::Invalid {
            self.stats.invalid += 1;
        }
        track
    }

    /// `track` for a TCP or UDP packet that a cache says is of entry `id`,
    /// in direction `dir`, as an earlier `track` of a packet with the same
    /// tuple found: it skips the index. A confirmed entry's tuples never
    /// change and a reused slot has a new generation, so the cache's word
    /// holds while `id` does. `None`, with nothing changed, when `id` is no
    /// confirmed, unexpired entry.
    pub fn track_known(
        &mut self,
        now: Duration,
        id: EntryId,
        dir: Dir,
        pkt: &CtPacket,
    ) -> Option<Track> {
        let now = nanos(now);
        if !matches!(pkt.l4, CtL4::Tcp { .. } | CtL4::Udp) {
            return None;
        }
        let e = self
            .get(id)
            .filter(|e| e.is_confirmed() && e.expires > now)?;
        debug_assert!(*e.tuple(dir) == pkt.tuple, "a cache misremembered {id}");
        self.now = self.now.max(now);
        self.stats.found += 1;
        let track = self.existing(now, id.index, dir, &pkt.tuple, pkt);
        if track.state == CtState::Invalid {
            self.stats.invalid += 1;
        }
        Some(track)
    }

    fn classify(&mut self, now: u64, pkt: &CtPacket) -> Track {
        let Some(tuple) = packet_key(pkt) else {
            return invalid_track();
        };
        if let CtL4::IcmpError { inner } = pkt.l4 {
            return self.related(now, &inner);
        }
        let mut found = self.find(&tuple);
        if let Some(v) = found {
            // Not reaped yet by `expire`, but gone all the same.
            if self.entry_at(v >> 1).is_some_and(|e| e.expires <= now) {
                self.remove_index(v >> 1);
                self.stats.expired += 1;
                found = None;
            }
        }
        match found {
            Some(v) => {
                self.stats.found += 1;
                let dir = if v & 1 == 0 {
                    Dir::Original
                } else {
                    Dir::Reply
                };
                self.existing(now, v >> 1, dir, &tuple, pkt)
            }
            None => self.start(now, tuple, pkt),
        }
    }

    /// A packet with no entry: start a tentative one if it may.
    fn start(&mut self, now: u64, tuple: Tuple, pkt: &CtPacket) -> Track {
        let t = &self.config.timeouts;
        let (proto, timeout) = match pkt.l4 {
            CtL4::Tcp { .. } => {
                let Some(conn) = segment(&pkt.l4).and_then(|s| TcpConn::start(&s)) else {
                    return invalid_track();
                };
                (Proto::Tcp(conn), t.tcp_syn_sent)
            }
            CtL4::Udp => (Proto::Udp, t.udp),
            CtL4::IcmpEcho { request: true } => (Proto::Icmp, t.icmp),
            CtL4::Other => (Proto::Generic, t.generic),
            CtL4::IcmpEcho { request: false } | CtL4::IcmpError { .. } => {
                return invalid_track();
            }
        };
        let mut entry = Entry::new(tuple, proto, E::default());
        entry.counters[0].packets = 1;
        entry.counters[0].bytes = u64::from(pkt.len);
        entry.expires = now.saturating_add(nanos(timeout));
        match self.insert_tentative(entry) {
            Some(id) => Track {
                state: CtState::New,
                dir: Dir::Original,
                id: Some(id),
            },
            None => invalid_track(),
        }
    }

    fn existing(&mut self, now: u64, index: u32, dir: Dir, tuple: &Tuple, pkt: &CtPacket) -> Track {
        // Fields borrowed apart, so the timeouts need not be copied.
        let timeouts = &self.config.timeouts;
        let Some(Some(e)) = self.slots.get_mut(index as usize) else {
            return invalid_track();
        };
        let seen_reply = e.status.contains(Status::SEEN_REPLY);
        let timeout = match (&mut e.proto, pkt.l4) {
            (Proto::Tcp(conn), CtL4::Tcp { flags, .. }) => {
                let Some(seg) = segment(&pkt.l4) else {
                    return invalid_track();
                };
                match conn.packet(dir, &seg) {
                    Verdict::Invalid => return invalid_track(),
                    Verdict::Reopen => {
                        self.remove_index(index);
                        return self.start(now, *tuple, pkt);
                    }
                    Verdict::Ignore => None,
                    Verdict::Accept { old, new } => {
                        let rst = flags & RST != 0;
                        if rst && !seen_reply {
                            // A RST before any reply (now CLOSE): Linux
                            // kills the entry at once. We let it expire on
                            // the next tick so the caller can still NAT
                            // this RST.
                            Some(0)
                        } else {
                            if new == TcpState::Established
                                && matches!(old, TcpState::SynRecv | TcpState::Established)
                                && seen_reply
                            {
                                e.status.insert(Status::ASSURED);
                            }
                            Some(nanos(conn.timeout(timeouts, rst)))
                        }
                    }
                }
            }
            (Proto::Udp, CtL4::Udp) => {
                if seen_reply {
                    e.status.insert(Status::ASSURED);
                    Some(nanos(timeouts.udp_stream))
                } else {
                    Some(nanos(timeouts.udp))
                }
            }
            (Proto::Icmp, CtL4::IcmpEcho { request }) => {
                if request != (dir == Dir::Original) {
                    return invalid_track();
                }
                Some(nanos(timeouts.icmp))
            }
            (Proto::Generic, CtL4::Other) => Some(nanos(timeouts.generic)),
            _ => return invalid_track(),
        };
        if dir == Dir::Reply {
            e.status.insert(Status::SEEN_REPLY);
        }
        let c = &mut e.counters[dir.index()];
        c.packets += 1;
        c.bytes += u64::from(pkt.len);
        let state = if e.status.contains(Status::SEEN_REPLY) {
            CtState::Established
        } else {
            CtState::New
        };
        match timeout {
            Some(timeout) => self.set_expires(index, now.saturating_add(timeout)),
            None => self.stats.ignore += 1,
        }
        Track {
            state,
            dir,
            id: Some(self.id_at(index)),
        }
    }

    /// An ICMP error quoting `inner`, the packet as its sender sent it.
    /// Like Linux, look up the quoted tuple reversed: its direction is the
    /// one the error travels in. Failing that, the tuple as it is.
    fn related(&mut self, now: u64, inner: &Tuple) -> Track {
        let inner = key(inner);
        let hit = match self.find(&inner.reverse()) {
            Some(v) => Some((v >> 1, v & 1 == 0)),
            None => self.find(&inner).map(|v| (v >> 1, v & 1 == 1)),
        };
        let Some((index, original)) = hit else {
            return invalid_track();
        };
        if !matches!(self.entry_at(index), Some(e) if e.expires > now) {
            return invalid_track();
        }
        Track {
            state: CtState::Related,
            dir: if original { Dir::Original } else { Dir::Reply },
            id: Some(self.id_at(index)),
        }
    }
}
