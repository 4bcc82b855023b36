//! NAT as Linux nf_nat does it, without I/O: bindings stored on conntrack
//! entries, and the in-place rewrite of each packet of a bound connection.
//!
//! **Binding.** On the first packet of a connection, while its conntrack
//! entry is still tentative, the switch evaluates the nat table and calls
//! [`bind`] with what the rule said: DNAT (and REDIRECT) at PREROUTING or
//! OUTPUT, SNAT (and MASQUERADE) at POSTROUTING or INPUT. A binding replaces
//! the entry's reply tuple, so replies find the entry by what they carry,
//! and sets `Status::SRC_NAT` or `DST_NAT` when the tuple changed. The
//! two kinds compose on one entry (hairpin: DNAT then SNAT), each starting
//! from the tuple the other left, as `nf_nat_setup_info` does.
//!
//! **Port choice** follows `get_unique_tuple` and
//! `nf_nat_l4proto_unique_tuple` of `net/netfilter/nf_nat_core.c`; see
//! `select.rs`. Randomness comes from a [`NatRng`] the caller owns and
//! seeds: no global generator, no clock, so runs replay exactly.
//!
//! **Rewrite.** Every packet of a bound connection, in either direction, is
//! rewritten by [`rewrite`] from the entry's two tuples: addresses, ports or
//! ICMP echo identifier become what the other tuple expects, and the IPv4
//! and transport checksums are patched incrementally (RFC 1624). ICMP
//! errors about a bound connection have their quoted packet rewritten too.
//!
//! IPv4 only, as the nat table is. Nothing here locks or allocates; a
//! `Conntrack` and its `NatRng` belong to one thread.

mod bind;
mod checksum;
mod icmp_error;
mod rewrite;
mod rng;
mod select;
mod transport;
mod wire;

use core::fmt;
use std::net::Ipv4Addr;

pub use bind::{bind, bind_null, Binding};
pub use rewrite::rewrite;
pub use rng::NatRng;

/// Which end of the original tuple a translation changes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Kind {
    /// The source: SNAT and MASQUERADE.
    Snat,
    /// The destination: DNAT and REDIRECT.
    Dnat,
}

/// What a nat rule asks for, in the switch's own words converted to ours:
/// an inclusive address range, an optional inclusive port range (echo
/// identifiers for ICMP), and iptables' flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Translation {
    pub kind: Kind,
    pub addr_lo: Ipv4Addr,
    pub addr_hi: Ipv4Addr,
    /// `None` keeps the port when it is free; SNAT then picks another of
    /// the same class (below 512, 600-1023, or 1024 and up), DNAT cannot.
    pub ports: Option<(u16, u16)>,
    /// `--random`: never keep the original port; start the search at a
    /// keyed hash of the addresses and the peer's port.
    pub random: bool,
    /// `--random-fully`: never keep the original port; start the search at
    /// a fresh random offset for each connection.
    pub random_fully: bool,
    /// `--persistent`: a client gets the same address of the range whatever
    /// its destination.
    pub persistent: bool,
}

impl Translation {
    /// `-j SNAT --to-source addr`.
    pub fn snat(addr: Ipv4Addr) -> Translation {
        Translation::single(Kind::Snat, addr)
    }

    /// `-j DNAT --to-destination addr`.
    pub fn dnat(addr: Ipv4Addr) -> Translation {
        Translation::single(Kind::Dnat, addr)
    }

    /// `-j MASQUERADE`: SNAT to the address of the interface the packet
    /// leaves by, which the caller looks up.
    pub fn masquerade(
        out_addr: Ipv4Addr,
        ports: Option<(u16, u16)>,
        random: bool,
        random_fully: bool,
    ) -> Translation {
        Translation {
            ports,
            random,
            random_fully,
            ..Translation::snat(out_addr)
        }
    }

    /// `-j REDIRECT`: DNAT to the switch's own address on the interface the
    /// packet came in by, which the caller looks up.
    pub fn redirect(own_addr: Ipv4Addr, ports: Option<(u16, u16)>, random: bool) -> Translation {
        Translation {
            ports,
            random,
            ..Translation::dnat(own_addr)
        }
    }

    /// The same translation to the inclusive port range `lo..=hi`.
    pub fn with_ports(self, lo: u16, hi: u16) -> Translation {
        Translation {
            ports: Some((lo, hi)),
            ..self
        }
    }

    fn single(kind: Kind, addr: Ipv4Addr) -> Translation {
        Translation {
            kind,
            addr_lo: addr,
            addr_hi: addr,
            ports: None,
            random: false,
            random_fully: false,
            persistent: false,
        }
    }
}

/// Why a connection could not be bound or a packet rewritten. The switch
/// drops the packet and counts the reason.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NatError {
    /// No entry with that id: aborted, expired or evicted.
    Gone,
    /// The entry already has a binding of this kind (Linux refuses the
    /// same manip twice).
    AlreadyBound(Kind),
    /// Every tuple the range allows is in use (or, for DNAT without a port
    /// range and for protocols without ports, the one possible tuple is).
    Exhausted,
    /// An IPv6 tuple, or a frame that is not IPv4.
    NotIpv4,
    /// The frame is too short, or its IPv4 header unreadable, at this
    /// offset from the start of the frame.
    Malformed { offset: usize },
}

impl fmt::Display for NatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatError::Gone => f.write_str("nat: conntrack entry gone"),
            NatError::AlreadyBound(Kind::Snat) => f.write_str("nat: source already bound"),
            NatError::AlreadyBound(Kind::Dnat) => f.write_str("nat: destination already bound"),
            NatError::Exhausted => f.write_str("nat: no free tuple in range"),
            NatError::NotIpv4 => f.write_str("nat: not IPv4"),
            NatError::Malformed { offset } => write!(f, "nat: malformed packet at byte {offset}"),
        }
    }
}

impl std::error::Error for NatError {}
