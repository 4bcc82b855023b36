//! The exact-match cache in front of the hooks, the bridge and the router.
//! For a frame of an established IPv4 TCP or UDP connection that was
//! bridged or routed to one port, it keeps where the full pipeline sent
//! the frames of its flow, keyed by everything that decision read: ingress
//! port, VLAN tag, MAC addresses and the five-tuple.
//!
//! A hit still does each frame's own work: conntrack's state machine and
//! counters, NAT's rewrite, the rule counters on the flow's cached path,
//! learning, and the FDB's say on where the destination (or the next hop)
//! is now; a routed frame also has its header checksum checked, its TTL
//! decremented, its next hop's MAC looked up and its MACs rewritten.
//! Whatever a hit cannot vouch for goes the full way and is then
//! remembered afresh: a ruleset of another generation, a destination that
//! moved or aged out, an unresolved next hop, a TTL about to expire, a
//! packet too large for a vxlan port, a connection no longer ESTABLISHED,
//! a trace being taken. What the pipeline does at a macvlan/ipvlan parent
//! or a vxlan port before and after its decision (readdressing, the
//! parent's MAC, the VTEP) is done for every frame, so flows through them
//! are cached like any other.
//!
//! The table is direct-mapped: a flow whose slot another flow took just
//! takes the full way once, and the slot back.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use conntrack::{Dir, EntryId};
use foldhash::fast::RandomState;
use packet::{MacAddr, Parsed, L3, L4};

use crate::port::PortId;
use crate::time::Timestamp;

/// Slots in the table: a few thousand concurrent flows per switch.
const SLOTS: usize = 4096;

/// What the pipeline's decision for a forwarded frame depends on: ingress
/// port, VLAN tag, MAC addresses and five-tuple, packed into four words
/// without loss so that comparing and hashing a key per frame is cheap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Key([u64; 4]);

// Word by word: an array of integers would hash as a byte string.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for w in self.0 {
            state.write_u64(w);
        }
    }
}

impl Key {
    /// The key of a unicast IPv4 TCP or UDP frame; `None` for any other.
    pub fn of(ingress: PortId, parsed: &Parsed) -> Option<Key> {
        let L3::Ipv4 {
            src, dst, protocol, ..
        } = parsed.l3
        else {
            return None;
        };
        let (src_port, dst_port) = match parsed.l4 {
            L4::Tcp {
                src_port, dst_port, ..
            }
            | L4::Udp {
                src_port, dst_port, ..
            } => (src_port, dst_port),
            _ => return None,
        };
        let tag = parsed.vlan().map_or(0, |t| u64::from(t) | 1 << 16);
        parsed.dst.is_unicast().then_some(Key([
            parsed.src.to_u64() | u64::from(ingress.0) << 48,
            parsed.dst.to_u64(),
            u64::from(src.to_bits()) << 32 | u64::from(dst.to_bits()),
            u64::from(src_port) | u64::from(dst_port) << 16 | u64::from(protocol) << 32 | tag << 40,
        ]))
    }
}

/// Where a flow's frames went, and the connection they belong to.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    /// The connection and the direction the flow's frames travel in it.
    pub conn: (EntryId, Dir),
    pub egress: PortId,
    /// For a routed flow, the way the gateway chose; `None`: bridged.
    pub route: Option<Route>,
    /// The MAC the FDB placed behind `egress`: the frames' destination,
    /// or a routed flow's next hop.
    pub out_mac: MacAddr,
    /// The FDB's answer for `out_mac` holds until `out_until` while its
    /// `changes` reads `fdb_changes` (see `Fdb::lookup_until`).
    pub fdb_changes: u64,
    pub out_until: Timestamp,
}

/// Where a routed flow's packets go after the gateway: the network (by
/// index) they leave by and the neighbour there they are handed to, whose
/// MAC is looked up per frame as the full way does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub network: u16,
    pub hop: Ipv4Addr,
}

/// Lookups since the switch started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPathStats {
    /// Frames a remembered flow took through.
    pub hits: u64,
    /// Unicast IPv4 TCP and UDP frames that went the full way: first
    /// packets, flows the cache may not hold, and what it gave up on.
    pub misses: u64,
}

#[derive(Clone)]
pub struct FastPath {
    slots: Box<[Option<(Key, Flow)>]>,
    /// 16 bits of each slot's hash (0: empty), 8 KiB that stay cached:
    /// the first packets of connections, which always miss, mostly learn
    /// so without touching a slot.
    tags: Box<[u16]>,
    hasher: RandomState,
    stats: FastPathStats,
}

impl Default for FastPath {
    fn default() -> FastPath {
        FastPath {
            slots: vec![None; SLOTS].into_boxed_slice(),
            tags: vec![0; SLOTS].into_boxed_slice(),
            hasher: RandomState::default(),
            stats: FastPathStats::default(),
        }
    }
}

impl FastPath {
    /// The key's slot and nonzero tag.
    fn slot(&self, key: &Key) -> (usize, u16) {
        let h = self.hasher.hash_one(key);
        (h as usize % SLOTS, (h >> 48) as u16 | 1)
    }

    /// The flow remembered for `key`.
    pub fn get(&self, key: &Key) -> Option<Flow> {
        let (i, tag) = self.slot(key);
        if self.tags[i] != tag {
            return None;
        }
        match &self.slots[i] {
            Some((k, flow)) if k == key => Some(*flow),
            _ => None,
        }
    }

    pub fn insert(&mut self, key: Key, flow: Flow) {
        let (i, tag) = self.slot(&key);
        self.slots[i] = Some((key, flow));
        self.tags[i] = tag;
    }

    /// Counts a frame that took the remembered way (`hit`) or not.
    pub fn count(&mut self, hit: bool) {
        match hit {
            true => self.stats.hits += 1,
            false => self.stats.misses += 1,
        }
    }

    pub fn stats(&self) -> FastPathStats {
        self.stats
    }
}
