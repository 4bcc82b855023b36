//! The connection table: which flow a packet belongs to, in which
//! direction, and what state that flow is in, as Linux nf_conntrack
//! decides it.
//!
//! **Key.** An entry is found by either of its two tuples: the original
//! direction (as the first packet carried it) and the reply direction (what
//! a reply carries; NAT may rewrite it). TCP and UDP are keyed by ports,
//! ICMP and ICMPv6 echo by identifier, other IP protocols by addresses and
//! protocol alone (their ports are ignored).
//!
//! **Life of an entry.** `track` classifies a packet. A packet that starts a
//! flow gets a *tentative* entry that no lookup finds yet; the caller
//! `confirm`s it once the packet has passed the filter (or `abort`s it when
//! the packet is dropped), as Linux confirms at the last hook. The caller
//! confirms or aborts before tracking the next packet; a few tentative
//! entries may be left outstanding, and beyond that the oldest is dropped,
//! so forgetting to do so never grows the table. Every accepted packet
//! pushes the entry's expiry forward by its state's timeout; `expire(now)`
//! removes the entries whose time has come, through a timer wheel, so its
//! cost follows the entries due rather than the table size.
//!
//! **Size and eviction.** At most `Config::max_entries` confirmed entries.
//! Confirming into a full table first evicts an entry that is expired or
//! not ASSURED, from a bounded sample (Linux `early_drop`); when none is
//! found the new entry is refused and the caller drops its packet.
//!
//! **Threads.** One `Conntrack` belongs to one thread; nothing here locks.
//! Nothing reads a clock: `now` comes from the caller.

mod expiry;
mod format;
mod hash;
mod index;
mod table;
mod tcp;
mod track;

#[cfg(test)]
mod tests;

use core::fmt;
use std::time::Duration;

pub use format::format_entry;
pub use packet::FlowKey as Tuple;
pub use table::{Conntrack, Entry, EntryId};
pub use tcp::TcpState;

/// The direction of a packet relative to the packet that created its entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Dir {
    Original,
    Reply,
}

impl Dir {
    pub const fn index(self) -> usize {
        match self {
            Dir::Original => 0,
            Dir::Reply => 1,
        }
    }

    pub const fn opposite(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }
}

/// A packet's state as `iptables -m conntrack --ctstate` sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CtState {
    /// Starts a flow, or belongs to one that has not seen a reply yet.
    New,
    /// Belongs to a flow that has seen packets both ways.
    Established,
    /// An ICMP error about a tracked flow.
    Related,
    /// Belongs to no flow and cannot start one (out of window, bad flags,
    /// an echo reply without a request, an error about nothing tracked).
    Invalid,
    /// Not tracked at all (the raw table's NOTRACK). Set by the caller;
    /// `track` never returns it.
    Untracked,
}

impl fmt::Display for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CtState::New => "NEW",
            CtState::Established => "ESTABLISHED",
            CtState::Related => "RELATED",
            CtState::Invalid => "INVALID",
            CtState::Untracked => "UNTRACKED",
        })
    }
}

/// Entry status bits. The NAT bits are set by the NAT layer through
/// `get_mut`; the others by the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct Status(u8);

impl Status {
    /// A packet has been seen in the reply direction.
    pub const SEEN_REPLY: Status = Status(1 << 0);
    /// Established enough not to be evicted early.
    pub const ASSURED: Status = Status(1 << 1);
    /// In the table, found by lookups.
    pub const CONFIRMED: Status = Status(1 << 2);
    pub const SRC_NAT: Status = Status(1 << 3);
    pub const DST_NAT: Status = Status(1 << 4);

    const NAMES: [(Status, &'static str); 5] = [
        (Status::SEEN_REPLY, "SEEN_REPLY"),
        (Status::ASSURED, "ASSURED"),
        (Status::CONFIRMED, "CONFIRMED"),
        (Status::SRC_NAT, "SRC_NAT"),
        (Status::DST_NAT, "DST_NAT"),
    ];

    pub const fn empty() -> Status {
        Status(0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: Status) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Status) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: Status) {
        self.0 &= !other.0;
    }
}

impl core::ops::BitOr for Status {
    type Output = Status;

    fn bitor(self, other: Status) -> Status {
        Status(self.0 | other.0)
    }
}

/// The set bits by their kernel names, `SEEN_REPLY|ASSURED|CONFIRMED`, as
/// ctnetlink names them; `0` when none is set.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in Status::NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// Per-state and per-protocol idle timeouts. `Default` is Linux's defaults
/// (`nf_conntrack_tcp_timeout_*`, `nf_conntrack_udp_timeout*`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timeouts {
    /// Also used for SYN_SENT2, as Linux does.
    pub tcp_syn_sent: Duration,
    pub tcp_syn_recv: Duration,
    pub tcp_established: Duration,
    pub tcp_fin_wait: Duration,
    pub tcp_close_wait: Duration,
    pub tcp_last_ack: Duration,
    pub tcp_time_wait: Duration,
    pub tcp_close: Duration,
    /// Caps the timeout while data is in flight unacknowledged.
    pub tcp_unacknowledged: Duration,
    /// UDP until the flow is ASSURED.
    pub udp: Duration,
    /// UDP once ASSURED.
    pub udp_stream: Duration,
    pub icmp: Duration,
    pub generic: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            tcp_syn_sent: s(120),
            tcp_syn_recv: s(60),
            tcp_established: s(5 * 24 * 3600),
            tcp_fin_wait: s(120),
            tcp_close_wait: s(60),
            tcp_last_ack: s(30),
            tcp_time_wait: s(120),
            tcp_close: s(10),
            tcp_unacknowledged: s(300),
            udp: s(30),
            udp_stream: s(120),
            icmp: s(30),
            generic: s(600),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Config {
    /// Most confirmed entries (Linux `nf_conntrack_max`). 0 refuses every
    /// new flow; values above 2^31 - 1 are treated as 2^31 - 1.
    pub max_entries: usize,
    pub timeouts: Timeouts,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_entries: 262_144,
            timeouts: Timeouts::default(),
        }
    }
}

/// What the caller extracts from a parsed packet, IPv4 or IPv6.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CtPacket {
    pub tuple: Tuple,
    /// L3 length, for the byte counters.
    pub len: u32,
    pub l4: CtL4,
}

/// The transport facts each protocol's tracker needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CtL4 {
    Tcp {
        /// FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128.
        flags: u8,
        seq: u32,
        ack: u32,
        /// As carried, before window scaling.
        window: u16,
        /// The window scale option of a SYN or SYN/ACK.
        wscale: Option<u8>,
        payload_len: u32,
    },
    Udp,
    /// ICMP or ICMPv6 echo; the identifier is in `tuple.src_port`.
    IcmpEcho {
        request: bool,
    },
    /// ICMP destination unreachable, time exceeded or parameter problem
    /// (or their ICMPv6 counterparts, and packet too big).
    IcmpError {
        /// The quoted packet's tuple, as that packet was sent.
        inner: Tuple,
    },
    /// Any other IP protocol, tracked by addresses and protocol.
    Other,
}

/// What `track` decided about one packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Track {
    pub state: CtState,
    /// The packet's direction in its entry; for `Related`, the direction
    /// the error travels in the entry it is about. `Original` when there is
    /// no entry.
    pub dir: Dir,
    /// The packet's entry: a tentative one to `confirm` or `abort` when
    /// the packet created it, otherwise the confirmed one; for `Related`,
    /// the entry the error is about. `None` only for `Invalid`.
    pub id: Option<EntryId>,
}

/// One direction's traffic.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Table counters, as `conntrack -S` reports them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtStats {
    /// Packets that matched a confirmed entry.
    pub found: u64,
    /// Tentative entries created.
    pub new: u64,
    /// Packets classified INVALID.
    pub invalid: u64,
    /// TCP packets let through without a state change (Linux "ignore").
    pub ignore: u64,
    /// Confirms refused because a tuple was taken meanwhile.
    pub insert_failed: u64,
    /// Confirms refused because the table was full.
    pub drop: u64,
    /// Entries evicted to make room.
    pub early_drop: u64,
    /// Entries removed because their timeout passed.
    pub expired: u64,
}

/// Why `confirm` refused an entry; the entry is gone and the caller drops
/// the packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConfirmError {
    /// The table is full and nothing could be evicted.
    Full,
    /// Another entry holds one of the tuples (Linux `insert_failed`).
    Clash,
    /// No such tentative entry: aborted, removed, or dropped because too
    /// many were left outstanding.
    Gone,
}

impl fmt::Display for ConfirmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfirmError::Full => "conntrack table full",
            ConfirmError::Clash => "conntrack tuple clash",
            ConfirmError::Gone => "conntrack entry gone",
        })
    }
}

impl std::error::Error for ConfirmError {}

/// `set_reply_tuple` found the tuple in use, or the entry gone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Clash;

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("conntrack tuple in use")
    }
}

impl std::error::Error for Clash {}
