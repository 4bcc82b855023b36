//! Binding a connection: the translated tuple is chosen once, on the
//! connection's first packet, and stored on its conntrack entry as the
//! reply tuple (Linux `nf_nat_setup_info`).

use conntrack::{Conntrack, Dir, EntryId, Status, Tuple};

use crate::rng::NatRng;
use crate::select::unique_tuple;
use crate::{Kind, NatError, Translation};

/// The outcome of a binding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Binding {
    /// What packets of the original direction carry once rewritten.
    pub translated: Tuple,
    /// The entry's reply tuple now: what replies carry before rewrite.
    pub reply: Tuple,
    /// Whether the binding changed anything (and so set a status bit).
    pub changed: bool,
}

/// Binds entry `id` as `t` says: chooses a translated tuple no other
/// entry holds, makes its reverse the entry's reply tuple and sets
/// `SRC_NAT` or `DST_NAT` if it differs from the tuple before. Call it on
/// the connection's first packet, before `confirm`; a DNAT binding and a
/// SNAT binding may both be made, in either order, each from what the
/// other left.
///
/// Errors: `Gone`, `AlreadyBound` for a second binding of the same kind,
/// `NotIpv4`, and `Exhausted` when no tuple in the range is free. The
/// entry is unchanged on error; the caller drops the packet (and aborts
/// the entry).
pub fn bind<E>(
    conns: &mut Conntrack<E>,
    id: EntryId,
    t: &Translation,
    rng: &mut NatRng,
) -> Result<Binding, NatError> {
    let e = conns.get(id).ok_or(NatError::Gone)?;
    let bit = status_bit(t.kind);
    if e.status.contains(bit) {
        return Err(NatError::AlreadyBound(t.kind));
    }
    let original = *e.tuple(Dir::Original);
    let cur = e.tuple(Dir::Reply).reverse();
    if !(cur.src.is_ipv4() && cur.dst.is_ipv4()) {
        return Err(NatError::NotIpv4);
    }
    let new = unique_tuple(conns, id, original, &cur, t, rng).ok_or(NatError::Exhausted)?;
    let changed = new != cur;
    if changed {
        // `unique_tuple` checked the tuple is free; a refusal here means
        // the table changed under us, which one thread cannot do.
        conns
            .set_reply_tuple(id, new.reverse())
            .map_err(|_| NatError::Exhausted)?;
        if let Some(e) = conns.get_mut(id) {
            e.status.insert(bit);
        }
    }
    Ok(Binding {
        translated: new,
        reply: new.reverse(),
        changed,
    })
}

/// Linux's null binding (`nf_nat_alloc_null_binding`): for a connection no
/// nat rule translated at a hook, keep its address but make its tuple
/// unique, moving the source port if a translated connection already
/// holds its reply tuple. Without it, `confirm` would refuse such a
/// connection as a clash. A DNAT null binding cannot move anything and
/// fails with `Exhausted` if the tuple is taken.
pub fn bind_null<E>(
    conns: &mut Conntrack<E>,
    id: EntryId,
    kind: Kind,
    rng: &mut NatRng,
) -> Result<Binding, NatError> {
    let cur = conns
        .get(id)
        .ok_or(NatError::Gone)?
        .tuple(Dir::Reply)
        .reverse();
    let addr = match kind {
        Kind::Snat => cur.src,
        Kind::Dnat => cur.dst,
    };
    let std::net::IpAddr::V4(addr) = addr else {
        return Err(NatError::NotIpv4);
    };
    let t = match kind {
        Kind::Snat => Translation::snat(addr),
        Kind::Dnat => Translation::dnat(addr),
    };
    bind(conns, id, &t, rng)
}

fn status_bit(kind: Kind) -> Status {
    match kind {
        Kind::Snat => Status::SRC_NAT,
        Kind::Dnat => Status::DST_NAT,
    }
}
