//! Just enough TCP for the gateway to serve one request-response protocol
//! (DNS over TCP, RFC 7766) on its own address: the switch is a userspace
//! stack with no TCP of its own. Passive open only, in-order data only.
//!
//! Per connection: SYN is answered with SYN-ACK; data in sequence is
//! buffered and handed to the service, whose answer goes back at once
//! (acknowledging the data with it); the client's FIN is answered with
//! FIN-ACK and the connection ends when that is acknowledged. A segment
//! out of sequence gets an ACK of what we expect and the data we sent and
//! have not seen acknowledged again: that is all the retransmission there
//! is, for the gateway sits one virtual link away from its clients.
//! Segments for no connection, and a SYN when the table is full, get a
//! reset (`Handled::Reset`).
//!
//! The table is keyed by the four addresses and the network; it holds at
//! most `MAX_CONNS` connections, each forgotten after `IDLE` without a
//! segment (RFC 7766 6.2.3 lets servers close idle connections). Time is
//! a parameter; `expire` drops idle entries.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use packet::tcp::TcpFlags;

use crate::time::Timestamp;

/// Connections at once; a SYN beyond is reset.
pub const MAX_CONNS: usize = 256;
/// How long a connection lives without a segment.
pub const IDLE: Duration = Duration::from_secs(10);
/// What a connection buffers of a request: a DNS message and its length.
pub const RX_LIMIT: usize = 2 + 65535;
/// Data per segment we send: RFC 9293's default MSS, since we read no options.
pub const MSS: usize = 536;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub network: u16,
    pub client: (Ipv4Addr, u16),
    pub server: (Ipv4Addr, u16),
}

/// A segment as received.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub payload: &'a [u8],
}

/// A segment to send back to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Send these, in order (maybe none).
    Send(Vec<Reply>),
    /// Answer with a reset, as a host with nothing listening would.
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    SynReceived,
    Established,
    /// The client closed and we sent our FIN; waiting for its ACK.
    LastAck,
}

#[derive(Clone)]
struct Conn {
    state: State,
    iss: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    /// Sent and not yet acknowledged, from `snd_nxt - unacked.len()`.
    unacked: Vec<u8>,
    /// Received in order, not yet taken by the service.
    rx: Vec<u8>,
    expires: Timestamp,
}

impl Conn {
    fn window(&self) -> u16 {
        RX_LIMIT
            .saturating_sub(self.rx.len())
            .min(usize::from(u16::MAX)) as u16
    }

    fn segment(&self, flags: TcpFlags, seq: u32, payload: Vec<u8>) -> Reply {
        Reply {
            flags,
            seq,
            ack: self.rcv_nxt,
            window: self.window(),
            payload,
        }
    }

    /// `data` as segments of at most `MSS`, queued as unacknowledged.
    fn send(&mut self, data: &[u8], out: &mut Vec<Reply>) {
        for chunk in data.chunks(MSS) {
            let flags = TcpFlags::ACK | TcpFlags::PSH;
            out.push(self.segment(flags, self.snd_nxt, chunk.to_vec()));
            self.snd_nxt = self.snd_nxt.wrapping_add(chunk.len() as u32);
            self.unacked.extend_from_slice(chunk);
        }
    }

    /// What we sent and was not acknowledged, again (and our FIN if sent).
    fn resend(&self, out: &mut Vec<Reply>) {
        let fin = u32::from(self.state == State::LastAck);
        let mut seq = self.snd_nxt.wrapping_sub(self.unacked.len() as u32 + fin);
        for chunk in self.unacked.chunks(MSS) {
            out.push(self.segment(TcpFlags::ACK | TcpFlags::PSH, seq, chunk.to_vec()));
            seq = seq.wrapping_add(chunk.len() as u32);
        }
        if fin == 1 {
            out.push(self.segment(TcpFlags::FIN | TcpFlags::ACK, seq, Vec::new()));
        }
    }

    /// Takes an acknowledgement of `ack`, if it acknowledges anything new.
    fn acknowledged(&mut self, ack: u32) {
        // Our SYN or FIN, outstanding, counts for one.
        let flag = u32::from(matches!(self.state, State::SynReceived | State::LastAck));
        let una = self.snd_nxt.wrapping_sub(self.unacked.len() as u32 + flag);
        let newly = ack.wrapping_sub(una) as usize;
        let outstanding = self.snd_nxt.wrapping_sub(una) as usize;
        if newly == 0 || newly > outstanding {
            return;
        }
        if self.state == State::SynReceived && ack == self.iss.wrapping_add(1) {
            self.state = State::Established;
        }
        let data = newly.min(self.unacked.len());
        self.unacked.drain(..data);
    }
}

#[derive(Clone, Default)]
pub struct TcpResponder {
    conns: HashMap<ConnKey, Conn>,
}

impl TcpResponder {
    pub fn new() -> TcpResponder {
        TcpResponder::default()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Takes one segment of connection `key`. `serve` gets the bytes
    /// received in order so far, removes what it answers and returns the
    /// answer to send.
    pub fn handle(
        &mut self,
        now: Timestamp,
        key: ConnKey,
        seg: Segment,
        serve: impl FnOnce(&mut Vec<u8>) -> Vec<u8>,
    ) -> Handled {
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            self.conns.remove(&key);
            return Handled::Send(Vec::new());
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return self.open(now, key, seg);
        };
        conn.expires = now.plus(IDLE);
        let mut out = Vec::new();
        if f.contains(TcpFlags::SYN) {
            // Our SYN-ACK was lost (the same SYN again), else a challenge ACK.
            if conn.state == State::SynReceived && seg.seq.wrapping_add(1) == conn.rcv_nxt {
                let flags = TcpFlags::SYN | TcpFlags::ACK;
                out.push(conn.segment(flags, conn.iss, Vec::new()));
            } else {
                out.push(conn.segment(TcpFlags::ACK, conn.snd_nxt, Vec::new()));
            }
            return Handled::Send(out);
        }
        if !f.contains(TcpFlags::ACK) {
            return Handled::Send(out);
        }
        conn.acknowledged(seg.ack);
        if conn.state == State::LastAck && conn.unacked.is_empty() && seg.ack == conn.snd_nxt {
            self.conns.remove(&key);
            return Handled::Send(out);
        }
        let occupies = !seg.payload.is_empty() || f.contains(TcpFlags::FIN);
        if occupies && seg.seq != conn.rcv_nxt {
            // A retransmission or a gap: say what we expect, resend ours.
            out.push(conn.segment(TcpFlags::ACK, conn.snd_nxt, Vec::new()));
            conn.resend(&mut out);
            return Handled::Send(out);
        }
        if conn.state == State::SynReceived {
            // Data before the handshake completed is not ours to take.
            return Handled::Send(out);
        }
        if !seg.payload.is_empty() {
            if conn.rx.len() + seg.payload.len() > RX_LIMIT {
                self.conns.remove(&key);
                return Handled::Reset;
            }
            conn.rx.extend_from_slice(seg.payload);
            conn.rcv_nxt = conn.rcv_nxt.wrapping_add(seg.payload.len() as u32);
            let answer = serve(&mut conn.rx);
            conn.send(&answer, &mut out);
        }
        if f.contains(TcpFlags::FIN) && conn.state == State::Established {
            conn.rcv_nxt = conn.rcv_nxt.wrapping_add(1);
            out.push(conn.segment(TcpFlags::FIN | TcpFlags::ACK, conn.snd_nxt, Vec::new()));
            conn.snd_nxt = conn.snd_nxt.wrapping_add(1);
            conn.state = State::LastAck;
        } else if occupies && out.is_empty() {
            out.push(conn.segment(TcpFlags::ACK, conn.snd_nxt, Vec::new()));
        }
        Handled::Send(out)
    }

    /// Sends `data` on connection `key` unprompted (an answer that took
    /// its time); nothing if the connection is gone or closing.
    pub fn send(&mut self, key: ConnKey, data: &[u8]) -> Vec<Reply> {
        let mut out = Vec::new();
        if let Some(c) = self
            .conns
            .get_mut(&key)
            .filter(|c| c.state == State::Established)
        {
            c.send(data, &mut out);
        }
        out
    }

    /// A segment for no connection: a SYN opens one, anything else is reset.
    fn open(&mut self, now: Timestamp, key: ConnKey, seg: Segment) -> Handled {
        if !seg.flags.contains(TcpFlags::SYN) || seg.flags.contains(TcpFlags::ACK) {
            return Handled::Reset;
        }
        if self.conns.len() >= MAX_CONNS {
            return Handled::Reset;
        }
        let iss = initial_seq(now, &key);
        let conn = Conn {
            state: State::SynReceived,
            iss,
            snd_nxt: iss.wrapping_add(1),
            rcv_nxt: seg.seq.wrapping_add(1),
            unacked: Vec::new(),
            rx: Vec::new(),
            expires: now.plus(IDLE),
        };
        let syn_ack = conn.segment(TcpFlags::SYN | TcpFlags::ACK, iss, Vec::new());
        self.conns.insert(key, conn);
        Handled::Send(vec![syn_ack])
    }

    /// Forgets connections idle for `IDLE`.
    pub fn expire(&mut self, now: Timestamp) {
        self.conns.retain(|_, c| c.expires > now);
    }
}

/// RFC 6528's shape without the secret: a clock ticking every 4 µs plus
/// the connection's addresses, so a new connection on the same ports does
/// not start where the last one ended. (The switch's clients share its
/// host; blind injection is not what this guards against.)
fn initial_seq(now: Timestamp, key: &ConnKey) -> u32 {
    let clock = (now.as_nanos() / 4000) as u32;
    let mix =
        u32::from(key.client.0) ^ u32::from(key.client.1).rotate_left(16) ^ u32::from(key.server.1);
    clock.wrapping_add(mix.wrapping_mul(0x9e37_79b9))
}

#[cfg(test)]
mod tests;
