//! Choosing the translated tuple: which address of the range, and which
//! port (or ICMP echo identifier) so that no two connections share a
//! tuple. As `get_unique_tuple` and `nf_nat_l4proto_unique_tuple` in Linux
//! `net/netfilter/nf_nat_core.c`:
//!
//! 1. SNAT without `--random`/`--random-fully` keeps the tuple as it is
//!    when its address and port already lie in the range and it is free.
//! 2. Otherwise the address is chosen by a hash of the client's address
//!    (and of the destination's, unless `--persistent`), so a client keeps
//!    its address from one connection to the next.
//! 3. The port is kept when it is in the range and free (not with the
//!    random flags).
//! 4. Otherwise a search through the range: without a port range, SNAT
//!    stays within the port's class (1-511, 600-1023, 1024-65535) and DNAT
//!    cannot move the port at all; ICMP identifiers take any value. The
//!    search starts at a random offset for SNAT, `--random-fully` and
//!    `--random` (which Linux also draws at random; we use a keyed hash of
//!    the addresses and the peer's port, as Linux did before 5.x, so the
//!    start stays put for one destination), and at the range's first port
//!    for DNAT. It tries at most 128 ports from one offset, then halves the
//!    count from a new random offset until fewer than 16 would be tried, so
//!    a full range costs a bounded time per packet.
//!
//! Not done: Linux's `find_appropriate_src`, which reuses the mapping of
//! an earlier connection from the same source; with a single address and
//! the original port kept when free, it would mostly choose the same.

use std::net::{IpAddr, Ipv4Addr};

use conntrack::{Conntrack, EntryId, Tuple};
use packet::ipv4::protocol::{ICMP, TCP, UDP};

use crate::rng::{hash, NatRng};
use crate::{Kind, Translation};

const MAX_ATTEMPTS: u32 = 128;

/// What decides whether a candidate tuple is free: the table, and the
/// entry being bound, which does not clash with itself.
struct Taken<'a, E> {
    conns: &'a Conntrack<E>,
    id: EntryId,
    original: Tuple,
}

impl<E> Taken<'_, E> {
    /// Whether another connection already holds the reply tuple that
    /// translating the original direction to `t` would need.
    fn used(&self, t: &Tuple) -> bool {
        let reply = t.reverse();
        reply == self.original
            || self
                .conns
                .lookup(&reply)
                .is_some_and(|(id, _)| id != self.id)
    }
}

/// The translated original tuple for `cur` (the original tuple as earlier
/// bindings left it), or `None` when every candidate is taken.
pub(crate) fn unique_tuple<E>(
    conns: &Conntrack<E>,
    id: EntryId,
    original: Tuple,
    cur: &Tuple,
    t: &Translation,
    rng: &mut NatRng,
) -> Option<Tuple> {
    let taken = Taken {
        conns,
        id,
        original,
    };
    let random = t.random || t.random_fully;
    if t.kind == Kind::Snat && !random && in_range(cur, t) && !taken.used(cur) {
        return Some(*cur);
    }
    let mut tuple = *cur;
    set_addr(&mut tuple, t.kind, best_addr(cur, t));
    if !random && port_in_range(&tuple, t) && !taken.used(&tuple) {
        return Some(tuple);
    }
    search(&taken, tuple, t, rng)
}

fn search<E>(
    taken: &Taken<'_, E>,
    mut tuple: Tuple,
    t: &Translation,
    rng: &mut NatRng,
) -> Option<Tuple> {
    let port = match (tuple.protocol, t.kind) {
        (ICMP, _) | (TCP | UDP, Kind::Snat) => tuple.src_port,
        (TCP | UDP, Kind::Dnat) => tuple.dst_port,
        // Nothing to vary: the one tuple is free or not.
        _ => return (!taken.used(&tuple)).then_some(tuple),
    };
    let (min, size) = match t.ports {
        Some((lo, hi)) => {
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            (u32::from(lo), u32::from(hi - lo) + 1)
        }
        None if tuple.protocol == ICMP => (0, 65536),
        None if t.kind == Kind::Dnat => return (!taken.used(&tuple)).then_some(tuple),
        None if port < 512 => (1, 511),
        None if port < 1024 => (600, 424),
        None => (1024, 64512),
    };
    let mut off = if t.random_fully || (t.kind == Kind::Snat && !t.random) {
        u32::from(rng.next_u16())
    } else if t.random {
        let (src, dst) = (v4(tuple.src), v4(tuple.dst));
        let peer = match t.kind {
            Kind::Snat => tuple.dst_port,
            Kind::Dnat => tuple.src_port,
        };
        rng.keyed(&[src, dst, u32::from(peer)])
    } else {
        0
    };
    let mut attempts = size.min(MAX_ATTEMPTS);
    loop {
        for _ in 0..attempts {
            // `size` is at most 65536 and `min + size - 1` at most 65535.
            let candidate = (min + off % size) as u16;
            set_port(&mut tuple, t.kind, candidate);
            if !taken.used(&tuple) {
                return Some(tuple);
            }
            off = off.wrapping_add(1);
        }
        if attempts >= size || attempts < 16 {
            return None;
        }
        attempts /= 2;
        off = u32::from(rng.next_u16());
    }
}

/// Linux `nf_in_range`: the manipulated address and port already lie in
/// the range.
fn in_range(tuple: &Tuple, t: &Translation) -> bool {
    let addr = match t.kind {
        Kind::Snat => tuple.src,
        Kind::Dnat => tuple.dst,
    };
    let a = v4(addr);
    let (lo, hi) = addr_bounds(t);
    (lo..=hi).contains(&a) && port_in_range(tuple, t)
}

fn port_in_range(tuple: &Tuple, t: &Translation) -> bool {
    let Some((lo, hi)) = t.ports else {
        return true;
    };
    let port = match (tuple.protocol, t.kind) {
        (ICMP, _) | (TCP | UDP, Kind::Snat) => tuple.src_port,
        (TCP | UDP, Kind::Dnat) => tuple.dst_port,
        _ => return true,
    };
    (lo.min(hi)..=lo.max(hi)).contains(&port)
}

fn addr_bounds(t: &Translation) -> (u32, u32) {
    let (lo, hi) = (u32::from(t.addr_lo), u32::from(t.addr_hi));
    (lo.min(hi), lo.max(hi))
}

/// Linux `find_best_ips_proto`: a hash of the source address, seeded by
/// the destination's unless persistent, picks the address. Unkeyed, so a
/// client keeps its address across restarts, as Linux's comment wants for
/// sites that tie a session to the client address.
fn best_addr(cur: &Tuple, t: &Translation) -> Ipv4Addr {
    let (lo, hi) = addr_bounds(t);
    if lo == hi {
        return Ipv4Addr::from(lo);
    }
    let seed = if t.persistent {
        0
    } else {
        u64::from(v4(cur.dst))
    };
    let span = u64::from(hi - lo) + 1;
    let pick = hash(seed, &[v4(cur.src)]) % span;
    // `pick < span`, so `lo + pick <= hi` fits.
    Ipv4Addr::from(lo + pick as u32)
}

fn set_addr(tuple: &mut Tuple, kind: Kind, a: Ipv4Addr) {
    match kind {
        Kind::Snat => tuple.src = a.into(),
        Kind::Dnat => tuple.dst = a.into(),
    }
}

/// Sets the port the kind manipulates; ICMP's identifier lives in
/// `src_port` whichever end is translated.
fn set_port(tuple: &mut Tuple, kind: Kind, port: u16) {
    match (tuple.protocol, kind) {
        (ICMP, _) | (_, Kind::Snat) => tuple.src_port = port,
        (_, Kind::Dnat) => tuple.dst_port = port,
    }
}

/// The address as a number; IPv6 never reaches here (`bind` refuses it),
/// and would hash as 0.
fn v4(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => a.into(),
        IpAddr::V6(_) => 0,
    }
}
