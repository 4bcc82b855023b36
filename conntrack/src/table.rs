//! Storage: entries in a slab addressed by `EntryId`, a hash index from
//! each confirmed entry's two tuples to (slot, direction), the expiry
//! wheel, and the short list of tentative entries.
//!
//! The index (`index.rs`) stores 4-byte values (slot << 1 | direction)
//! and compares tuples in the slab, so a tuple is stored once. Every
//! tuple in the index is unique; `confirm` and `set_reply_tuple` refuse a
//! tuple already there.

use core::fmt;
use std::time::Duration;

use crate::expiry::{Wheel, NOT_FILED};
use crate::hash::TupleHasher;
use crate::index::Index;
use crate::tcp::{TcpConn, TcpState};
use crate::{Clash, Config, ConfirmError, Counter, CtStats, Dir, Status, Tuple};

/// How many tentative entries may be left neither confirmed nor aborted;
/// creating one more drops the oldest.
pub(crate) const TENTATIVE_MAX: usize = 8;
/// Slots looked at for an entry to evict when confirming into a full table.
const EVICT_SAMPLE: usize = 64;
/// Slot indices must fit the index's 31 bits.
const MAX_SLOTS: usize = (1 << 31) - 1;

/// Names an entry. Stays valid while the entry lives; once it is gone the
/// id finds nothing, even after its slot is reused (until the 32-bit
/// generation comes round again, 2^32 entries later).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EntryId {
    pub(crate) index: u32,
    gen: u32,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.gen)
    }
}

/// The protocol's own state.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Proto {
    Tcp(TcpConn),
    Udp,
    Icmp,
    Generic,
}

/// One connection.
#[derive(Clone, Debug)]
pub struct Entry<E> {
    tuples: [Tuple; 2],
    pub status: Status,
    pub mark: u32,
    /// Packets and L3 bytes accepted, by `Dir::index`.
    pub counters: [Counter; 2],
    pub extra: E,
    pub(crate) proto: Proto,
    /// Nanoseconds on the caller's clock.
    pub(crate) expires: u64,
    /// Where the entry is filed in the wheel; `NOT_FILED` while tentative.
    wheel_slot: u16,
    wheel_pos: u32,
    /// Tells this entry from earlier ones in the same slot, for `EntryId`.
    gen: u32,
}

impl<E> Entry<E> {
    /// The tuples by `Dir::index`: original, then reply. Read-only, as the
    /// index is built from them; NAT changes the reply tuple through
    /// `Conntrack::set_reply_tuple`.
    pub fn tuples(&self) -> &[Tuple; 2] {
        &self.tuples
    }

    pub fn tuple(&self, dir: Dir) -> &Tuple {
        &self.tuples[dir.index()]
    }

    pub fn tcp_state(&self) -> Option<TcpState> {
        match &self.proto {
            Proto::Tcp(c) => Some(c.state()),
            _ => None,
        }
    }

    /// For TCP, the (sequence, acknowledgment) numbers of the next segment
    /// in `dir`.
    pub fn tcp_next_seq(&self, dir: Dir) -> Option<(u32, u32)> {
        match &self.proto {
            Proto::Tcp(c) => Some(c.next_seq(dir)),
            _ => None,
        }
    }

    /// When the entry times out, on the caller's clock.
    pub fn expires(&self) -> Duration {
        Duration::from_nanos(self.expires)
    }

    /// The state name `conntrack -L` prints, for protocols that have one.
    pub fn protocol_state_name(&self) -> Option<&'static str> {
        self.tcp_state().map(TcpState::name)
    }

    pub fn is_confirmed(&self) -> bool {
        self.wheel_slot != NOT_FILED
    }

    pub(crate) fn new(tuple: Tuple, proto: Proto, extra: E) -> Entry<E> {
        Entry {
            tuples: [tuple, tuple.reverse()],
            status: Status::empty(),
            mark: 0,
            counters: [Counter::default(); 2],
            extra,
            proto,
            expires: 0,
            wheel_slot: NOT_FILED,
            wheel_pos: 0,
            gen: 0,
        }
    }
}

/// A slab slot; `None` when free.
type Slot<E> = Option<Entry<E>>;

/// The connection table. See the crate documentation.
#[derive(Clone)]
pub struct Conntrack<E> {
    pub(crate) config: Config,
    pub(crate) slots: Vec<Slot<E>>,
    free: Vec<u32>,
    index: Index,
    hasher: TupleHasher,
    wheel: Wheel,
    /// Oldest first.
    tentative: Vec<EntryId>,
    /// The generation the next entry gets.
    next_gen: u32,
    len: usize,
    evict_cursor: usize,
    /// The latest `now` seen, in nanoseconds, for eviction to prefer
    /// entries already expired.
    pub(crate) now: u64,
    pub(crate) stats: CtStats,
    /// Entries `expire` has looked at, to show its cost in tests.
    #[cfg(test)]
    pub(crate) expiry_visits: u64,
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The tuple as the index holds it: generic protocols are tracked by
/// addresses and protocol only, ICMP echo by identifier only.
pub(crate) fn key(t: &Tuple) -> Tuple {
    use packet::ipv4::protocol::{ICMP, ICMPV6, TCP, UDP};
    match t.protocol {
        TCP | UDP => *t,
        ICMP | ICMPV6 => Tuple { dst_port: 0, ..*t },
        _ => Tuple {
            src_port: 0,
            dst_port: 0,
            ..*t
        },
    }
}

fn packed(index: u32, dir: Dir) -> u32 {
    index << 1 | dir.index() as u32
}

fn dir_of(v: u32) -> Dir {
    if v & 1 == 0 {
        Dir::Original
    } else {
        Dir::Reply
    }
}

impl<E> Conntrack<E> {
    pub fn new(config: Config) -> Conntrack<E> {
        let config = Config {
            max_entries: config.max_entries.min(MAX_SLOTS - TENTATIVE_MAX),
            ..config
        };
        Conntrack {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            index: Index::new(),
            hasher: TupleHasher::new(),
            wheel: Wheel::new(),
            tentative: Vec::with_capacity(TENTATIVE_MAX),
            next_gen: 0,
            len: 0,
            evict_cursor: 0,
            now: 0,
            stats: CtStats::default(),
            #[cfg(test)]
            expiry_visits: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Confirmed entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn stats(&self) -> &CtStats {
        &self.stats
    }

    pub fn get(&self, id: EntryId) -> Option<&Entry<E>> {
        self.entry_at(id.index).filter(|e| e.gen == id.gen)
    }

    pub fn get_mut(&mut self, id: EntryId) -> Option<&mut Entry<E>> {
        self.entry_at_mut(id.index).filter(|e| e.gen == id.gen)
    }

    pub(crate) fn entry_at(&self, index: u32) -> Option<&Entry<E>> {
        self.slots.get(index as usize)?.as_ref()
    }

    pub(crate) fn entry_at_mut(&mut self, index: u32) -> Option<&mut Entry<E>> {
        self.slots.get_mut(index as usize)?.as_mut()
    }

    pub(crate) fn id_at(&self, index: u32) -> EntryId {
        let gen = self.entry_at(index).map_or(0, |e| e.gen);
        EntryId { index, gen }
    }

    /// The confirmed entry holding `tuple`, and the direction it names.
    pub fn lookup(&self, tuple: &Tuple) -> Option<(EntryId, Dir)> {
        self.find(&key(tuple))
            .map(|v| (self.id_at(v >> 1), dir_of(v)))
    }

    /// Whether a confirmed entry holds `tuple` in either direction; NAT
    /// asks this when choosing a port.
    pub fn is_taken(&self, tuple: &Tuple) -> bool {
        self.find(&key(tuple)).is_some()
    }

    /// The packed (slot, direction) of an already normalised tuple.
    pub(crate) fn find(&self, t: &Tuple) -> Option<u32> {
        self.find_hashed(self.hasher.hash(t), t)
    }

    fn find_hashed(&self, hash: u64, t: &Tuple) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |v| tuple_in(slots, v).is_some_and(|x| x == t))
    }

    fn index_insert(&mut self, v: u32) {
        if let Some(t) = tuple_in(&self.slots, v) {
            self.index_insert_hashed(self.hasher.hash(t), v);
        }
    }

    fn index_insert_hashed(&mut self, hash: u64, v: u32) {
        let slots = &self.slots;
        let hasher = self.hasher;
        self.index.insert_unique(hash, v, |x| {
            tuple_in(slots, x).map_or(0, |t| hasher.hash(t))
        });
    }

    fn index_remove(&mut self, v: u32) {
        let Some(t) = tuple_in(&self.slots, v) else {
            return;
        };
        self.index.remove(self.hasher.hash(t), v);
    }

    /// Stores a new tentative entry.
    pub(crate) fn insert_tentative(&mut self, mut entry: Entry<E>) -> Option<EntryId> {
        if self.tentative.len() >= TENTATIVE_MAX {
            let oldest = self.tentative.remove(0);
            self.free_slot(oldest.index);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                // Grow by a quarter rather than double, and never past
                // the slots that can be in use: entries are most of the
                // table's memory, so slack in the slab counts.
                let most = self.config.max_entries + TENTATIVE_MAX;
                let len = self.slots.len();
                if len >= most {
                    return None;
                }
                if len == self.slots.capacity() {
                    self.slots
                        .reserve_exact((len / 4).max(1024).min(most - len));
                }
                self.slots.push(None);
                len as u32
            }
        };
        let gen = self.next_gen;
        self.next_gen = gen.wrapping_add(1);
        entry.gen = gen;
        *self.slots.get_mut(index as usize)? = Some(entry);
        let id = EntryId { index, gen };
        self.tentative.push(id);
        self.stats.new += 1;
        Some(id)
    }

    fn free_slot(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            if slot.take().is_some() {
                self.free.push(index);
            }
        }
    }

    /// Makes a tentative entry visible to lookups. On error the entry is
    /// gone and the caller drops the packet that created it.
    pub fn confirm(&mut self, id: EntryId) -> Result<(), ConfirmError> {
        let Some(entry) = self.get(id) else {
            return Err(ConfirmError::Gone);
        };
        if entry.is_confirmed() {
            return Ok(());
        }
        let [orig, reply] = entry.tuples;
        self.tentative.retain(|&t| t != id);
        let (h_orig, h_reply) = (self.hasher.hash(&orig), self.hasher.hash(&reply));
        if self.find_hashed(h_orig, &orig).is_some() || self.find_hashed(h_reply, &reply).is_some()
        {
            self.free_slot(id.index);
            self.stats.insert_failed += 1;
            return Err(ConfirmError::Clash);
        }
        if self.len >= self.config.max_entries && !self.evict() {
            self.free_slot(id.index);
            self.stats.drop += 1;
            return Err(ConfirmError::Full);
        }
        self.index_insert_hashed(h_orig, packed(id.index, Dir::Original));
        // A tuple that is its own reverse is indexed once.
        if reply != orig {
            self.index_insert_hashed(h_reply, packed(id.index, Dir::Reply));
        }
        self.file(id.index);
        if let Some(e) = self.entry_at_mut(id.index) {
            e.status.insert(Status::CONFIRMED);
        }
        self.len += 1;
        Ok(())
    }

    /// Forgets a tentative entry whose packet was dropped. Does nothing to
    /// a confirmed entry.
    pub fn abort(&mut self, id: EntryId) {
        if self.get(id).is_some_and(|e| !e.is_confirmed()) {
            self.tentative.retain(|&t| t != id);
            self.free_slot(id.index);
        }
    }

    /// Removes the first expired or non-ASSURED confirmed entry among a
    /// bounded sample, scanning on from where the last call stopped.
    fn evict(&mut self) -> bool {
        let n = self.slots.len();
        for _ in 0..EVICT_SAMPLE.min(n) {
            self.evict_cursor = (self.evict_cursor + 1) % n;
            let i = self.evict_cursor as u32;
            let Some(e) = self.entry_at(i) else {
                continue;
            };
            if !e.is_confirmed() {
                continue;
            }
            if e.expires <= self.now {
                self.remove_index(i);
                self.stats.expired += 1;
                return true;
            }
            if !e.status.contains(Status::ASSURED) {
                self.remove_index(i);
                self.stats.early_drop += 1;
                return true;
            }
        }
        false
    }

    /// Replaces the reply tuple (NAT), refusing one already in the table.
    pub fn set_reply_tuple(&mut self, id: EntryId, reply: Tuple) -> Result<(), Clash> {
        let reply = key(&reply);
        let Some(e) = self.get(id) else {
            return Err(Clash);
        };
        if e.tuples[1] == reply {
            return Ok(());
        }
        if e.tuples[0] == reply || self.find(&reply).is_some() {
            return Err(Clash);
        }
        let confirmed = e.is_confirmed();
        let was_own_reverse = e.tuples[0] == e.tuples[1];
        if confirmed && !was_own_reverse {
            self.index_remove(packed(id.index, Dir::Reply));
        }
        if let Some(e) = self.entry_at_mut(id.index) {
            e.tuples[1] = reply;
        }
        if confirmed {
            self.index_insert(packed(id.index, Dir::Reply));
        }
        Ok(())
    }

    pub fn remove(&mut self, id: EntryId) -> bool {
        if self.get(id).is_none() {
            return false;
        }
        self.tentative.retain(|&t| t != id);
        self.remove_index(id.index);
        true
    }

    /// Removes the entry holding `tuple` (`conntrack -D`).
    pub fn remove_tuple(&mut self, tuple: &Tuple) -> bool {
        match self.lookup(tuple) {
            Some((id, _)) => self.remove(id),
            None => false,
        }
    }

    /// Removes every entry, tentative ones included (`conntrack -F`).
    pub fn flush(&mut self) {
        for i in 0..self.slots.len() as u32 {
            self.free_slot(i);
        }
        self.index.clear();
        self.wheel.clear();
        self.tentative.clear();
        self.len = 0;
    }

    /// Removes a confirmed or tentative entry by slot (not touching the
    /// tentative list).
    pub(crate) fn remove_index(&mut self, index: u32) {
        let Some(e) = self.entry_at(index) else {
            return;
        };
        if e.is_confirmed() {
            let own_reverse = e.tuples[0] == e.tuples[1];
            self.index_remove(packed(index, Dir::Original));
            if !own_reverse {
                self.index_remove(packed(index, Dir::Reply));
            }
            self.unfile(index);
            self.len -= 1;
        }
        self.free_slot(index);
    }

    /// Files a confirmed entry in the wheel under its expiry.
    fn file(&mut self, index: u32) {
        let Some(expires) = self.entry_at(index).map(|e| e.expires) else {
            return;
        };
        let slot = self.wheel.slot_for(expires);
        let pos = self.wheel.push(slot, index);
        if let Some(e) = self.entry_at_mut(index) {
            e.wheel_slot = slot;
            e.wheel_pos = pos;
        }
    }

    fn unfile(&mut self, index: u32) {
        let Some((slot, pos)) = self.entry_at(index).map(|e| (e.wheel_slot, e.wheel_pos)) else {
            return;
        };
        if let Some(moved) = self.wheel.swap_remove(slot, pos) {
            if let Some(m) = self.entry_at_mut(moved) {
                m.wheel_pos = pos;
            }
        }
    }

    /// Sets an entry's expiry, refiling it if it moved earlier.
    pub(crate) fn set_expires(&mut self, index: u32, expires: u64) {
        let Some(e) = self.entry_at_mut(index) else {
            return;
        };
        let earlier = expires < e.expires;
        e.expires = expires;
        if earlier && e.is_confirmed() {
            self.unfile(index);
            self.file(index);
        }
    }

    /// Removes the entries whose timeout has passed; returns how many.
    /// Call it about once a second.
    pub fn expire(&mut self, now: Duration) -> usize {
        let now = nanos(now);
        self.now = self.now.max(now);
        let mut removed = 0;
        while let Some(slot) = self.wheel.next_due(now) {
            let mut pos = 0;
            // Each turn removes the index at `pos` or steps past it.
            while let Some(index) = self.wheel.at(slot, pos) {
                #[cfg(test)]
                {
                    self.expiry_visits += 1;
                }
                let Some(expires) = self.entry_at(index).map(|e| e.expires) else {
                    // Cannot happen: the wheel holds live entries only.
                    pos += 1;
                    continue;
                };
                if expires <= now {
                    self.remove_index(index);
                    removed += 1;
                } else if self.wheel.slot_for(expires) == slot {
                    pos += 1;
                } else {
                    self.unfile(index);
                    self.file(index);
                }
            }
            self.wheel.trim(slot);
        }
        self.stats.expired += removed as u64;
        removed
    }

    /// Confirmed entries, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (EntryId, &Entry<E>)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let e = s.as_ref().filter(|e| e.is_confirmed())?;
            Some((
                EntryId {
                    index: i as u32,
                    gen: e.gen,
                },
                e,
            ))
        })
    }

    /// Heap bytes the table holds, entries, index and wheel together.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<E>>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + self.index.heap_bytes()
            + self.wheel.heap_bytes()
            + self.tentative.capacity() * std::mem::size_of::<EntryId>()
    }

    /// Checks the invariants the tests rely on: every confirmed entry is
    /// found by both tuples and filed where it says, and the counts agree.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut confirmed = 0;
        for (i, s) in self.slots.iter().enumerate() {
            let Some(e) = s else { continue };
            let id = EntryId {
                index: i as u32,
                gen: e.gen,
            };
            if e.is_confirmed() {
                confirmed += 1;
                assert_eq!(self.lookup(&e.tuples[0]), Some((id, Dir::Original)));
                let want = if e.tuples[0] == e.tuples[1] {
                    Dir::Original
                } else {
                    Dir::Reply
                };
                assert_eq!(self.lookup(&e.tuples[1]), Some((id, want)));
                assert_eq!(self.wheel.at(e.wheel_slot, e.wheel_pos), Some(i as u32));
            } else {
                assert!(self.tentative.contains(&id), "stray tentative {id}");
            }
        }
        assert_eq!(confirmed, self.len);
        assert!(self.len <= self.config.max_entries);
        assert!(self.tentative.len() <= TENTATIVE_MAX);
        let own_reverse = self
            .iter()
            .filter(|(_, e)| e.tuples[0] == e.tuples[1])
            .count();
        assert_eq!(self.index.len(), 2 * self.len - own_reverse);
        let hasher = self.hasher;
        self.index
            .check(|v| tuple_in(&self.slots, v).map_or(0, |t| hasher.hash(t)));
    }
}

fn tuple_in<E>(slots: &[Slot<E>], v: u32) -> Option<&Tuple> {
    let e = slots.get((v >> 1) as usize)?.as_ref()?;
    Some(&e.tuples[(v & 1) as usize])
}
