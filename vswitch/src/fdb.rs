//! The forwarding database: which port a MAC address was last seen on, and
//! behind a vxlan port, which remote VTEP (as `bridge fdb` keeps `dst`).
//!
//! Key: (network, VLAN, MAC). Each network is its own L2 domain and each VLAN
//! inside it another, so the same MAC may be learned once per domain and
//! domains never see each other's entries.
//!
//! Aging: a learned entry not refreshed for `aging` is treated as absent on
//! lookup and removed by `expire`. Static entries never age and are never
//! evicted or moved by learning.
//!
//! Eviction: the table holds at most `max` learned entries. When full, the
//! least recently refreshed learned entry makes room (second-chance queue:
//! refreshing an entry does not move it, the queue re-checks on eviction), so
//! a MAC flood recycles the flood's own entries rather than growing memory.
//!
//! Owned by the pipeline; the I/O layer reaches it only through `Switch`.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use foldhash::fast::RandomState;
use std::time::Duration;

use packet::MacAddr;

use crate::port::PortId;
use crate::time::Timestamp;

/// One L2 domain: a network and a VLAN inside it (0 = untagged).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Domain {
    pub network: u16,
    pub vlan: u16,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    domain: Domain,
    mac: MacAddr,
}

// One word per key: learning and forwarding each hash one per frame.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let Domain { network, vlan } = self.domain;
        let domain = u64::from(network) << 12 ^ u64::from(vlan);
        state.write_u64(self.mac.to_u64() ^ domain << 48);
    }
}

/// Where a MAC lives: a port, and for a vxlan port the VTEP behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Station {
    pub port: PortId,
    pub vtep: Option<Ipv4Addr>,
}

impl From<PortId> for Station {
    fn from(port: PortId) -> Station {
        Station { port, vtep: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: Station,
    pub last_seen: Timestamp,
    pub is_static: bool,
}

/// What learning a source address did, for counters and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    New,
    Refreshed,
    /// To another port, or another VTEP behind the same one.
    Moved {
        from: Station,
    },
    /// A static entry names another station; learning does not override it.
    StaticElsewhere,
    /// The table is full of static entries; nothing could be evicted.
    Full,
}

#[derive(Clone)]
pub struct Fdb {
    /// foldhash, randomly seeded per table: SipHash was a third of the
    /// cost of forwarding a frame.
    entries: HashMap<Key, Entry, RandomState>,
    order: VecDeque<(Key, Timestamp)>,
    learned: usize,
    max: usize,
    aging: Duration,
    evictions: u64,
    /// Bumped whenever an entry appears, moves or goes (not when one is
    /// refreshed): what a lookup answered holds while this stands still.
    changes: u64,
}

impl Fdb {
    pub fn new(max: usize, aging: Duration) -> Fdb {
        Fdb {
            entries: HashMap::with_capacity_and_hasher(max.min(4096), RandomState::default()),
            order: VecDeque::new(),
            learned: 0,
            max,
            aging,
            evictions: 0,
            changes: 0,
        }
    }

    pub fn add_static(&mut self, domain: Domain, mac: MacAddr, at: impl Into<Station>) {
        let key = Key { domain, mac };
        self.changes += 1;
        let old = self.entries.insert(
            key,
            Entry {
                at: at.into(),
                last_seen: Timestamp::ZERO,
                is_static: true,
            },
        );
        if old.is_some_and(|e| !e.is_static) {
            self.learned -= 1;
        }
    }

    pub fn learn(
        &mut self,
        domain: Domain,
        mac: MacAddr,
        at: impl Into<Station>,
        now: Timestamp,
    ) -> Learned {
        let at = at.into();
        let key = Key { domain, mac };
        if let Some(e) = self.entries.get_mut(&key) {
            if e.is_static {
                return if e.at == at {
                    Learned::Refreshed
                } else {
                    Learned::StaticElsewhere
                };
            }
            let from = e.at;
            e.at = at;
            e.last_seen = now;
            if from == at {
                return Learned::Refreshed;
            }
            self.changes += 1;
            return Learned::Moved { from };
        }
        if self.learned >= self.max && !self.evict_one(now) {
            return Learned::Full;
        }
        self.entries.insert(
            key,
            Entry {
                at,
                last_seen: now,
                is_static: false,
            },
        );
        self.order.push_back((key, now));
        self.learned += 1;
        self.changes += 1;
        Learned::New
    }

    /// Where `mac` lives in `domain`, if learned and not aged out.
    pub fn lookup(&self, domain: Domain, mac: MacAddr, now: Timestamp) -> Option<Station> {
        self.lookup_until(domain, mac, now).map(|(at, _)| at)
    }

    /// `lookup`, and until when its answer holds if `changes` stays the
    /// same: refreshes only put the entry's aging off.
    pub fn lookup_until(
        &self,
        domain: Domain,
        mac: MacAddr,
        now: Timestamp,
    ) -> Option<(Station, Timestamp)> {
        let e = self.entries.get(&Key { domain, mac })?;
        let until = match e.is_static {
            true => Timestamp::from_nanos(u64::MAX),
            false => e.last_seen.plus(self.aging),
        };
        (now <= until).then_some((e.at, until))
    }

    /// See the field: compare two readings to know that nothing but
    /// refreshes happened between them.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Removes aged-out learned entries.
    pub fn expire(&mut self, now: Timestamp) {
        let aging = self.aging;
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.is_static || now.since(e.last_seen) <= aging);
        self.learned -= before - self.entries.len();
        self.changes += (before - self.entries.len()) as u64;
        let entries = &self.entries;
        self.order
            .retain(|(k, _)| entries.get(k).is_some_and(|e| !e.is_static));
    }

    /// Forgets everything learned on `port` (the port went away or moved network).
    pub fn flush_port(&mut self, port: PortId) {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.is_static || e.at.port != port);
        self.learned -= before - self.entries.len();
        self.changes += (before - self.entries.len()) as u64;
    }

    /// Drops the least recently refreshed learned entry. The queue holds each
    /// key with the time it was queued; an entry refreshed since then gets a
    /// second chance at the back of the queue.
    fn evict_one(&mut self, now: Timestamp) -> bool {
        // Every live learned entry is queued at most once, so one pass over
        // the queue plus the re-queued ones bounds the loop.
        let mut budget = self.order.len() * 2 + 1;
        while let Some((key, queued)) = self.order.pop_front() {
            budget -= 1;
            match self.entries.get(&key) {
                Some(e) if !e.is_static => {
                    if e.last_seen > queued && budget > 0 && now.since(e.last_seen) <= self.aging {
                        self.order.push_back((key, e.last_seen));
                        continue;
                    }
                    self.entries.remove(&key);
                    self.learned -= 1;
                    self.evictions += 1;
                    self.changes += 1;
                    return true;
                }
                _ => continue,
            }
        }
        false
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Every entry, live or not yet expired, for listings.
    pub fn iter(&self) -> impl Iterator<Item = (Domain, MacAddr, &Entry)> {
        self.entries.iter().map(|(k, e)| (k.domain, k.mac, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Domain = Domain {
        network: 0,
        vlan: 0,
    };

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, 0, b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn changes_count_what_a_lookup_could_see_and_refreshes_put_off_aging() {
        let mut f = Fdb::new(16, Duration::from_secs(300));
        let (t0, t1) = (Timestamp::from_secs(10), Timestamp::from_secs(70));
        f.learn(D, mac(1), PortId(1), t0);
        let c = f.changes();
        let until = Timestamp::from_secs(310);
        assert_eq!(
            f.lookup_until(D, mac(1), t0),
            Some((PortId(1).into(), until))
        );
        f.learn(D, mac(1), PortId(1), t1);
        assert_eq!(f.changes(), c, "a refresh is no change");
        let later = Timestamp::from_secs(370);
        assert_eq!(
            f.lookup_until(D, mac(1), later),
            Some((PortId(1).into(), later))
        );
        assert_eq!(
            f.lookup_until(D, mac(1), later.plus(Duration::from_nanos(1))),
            None
        );
        f.learn(D, mac(1), PortId(2), t1);
        assert_eq!(f.changes(), c + 1, "a move");
        f.learn(D, mac(2), PortId(2), t1);
        assert_eq!(f.changes(), c + 2, "a new entry");
        f.flush_port(PortId(2));
        assert_eq!(f.changes(), c + 4, "two flushed");
        f.add_static(D, mac(3), PortId(3));
        assert_eq!(f.changes(), c + 5);
        let never = Timestamp::from_nanos(u64::MAX);
        assert_eq!(
            f.lookup_until(D, mac(3), later),
            Some((PortId(3).into(), never))
        );
        f.learn(D, mac(4), PortId(1), t0);
        let c = f.changes();
        f.expire(later);
        assert_eq!(f.changes(), c + 1, "one aged out");
    }

    #[test]
    fn learn_lookup_move_and_age() {
        let mut f = Fdb::new(16, Duration::from_secs(300));
        let t0 = Timestamp::from_secs(10);
        assert_eq!(f.learn(D, mac(1), PortId(1), t0), Learned::New);
        assert_eq!(f.lookup(D, mac(1), t0), Some(PortId(1).into()));
        assert_eq!(
            f.lookup(
                Domain {
                    network: 1,
                    vlan: 0
                },
                mac(1),
                t0
            ),
            None
        );
        assert_eq!(
            f.learn(D, mac(1), PortId(2), t0),
            Learned::Moved {
                from: PortId(1).into()
            }
        );
        assert_eq!(
            f.lookup(D, mac(1), Timestamp::from_secs(310)),
            Some(PortId(2).into())
        );
        assert_eq!(f.lookup(D, mac(1), Timestamp::from_secs(311)), None);
        f.expire(Timestamp::from_secs(311));
        assert!(f.is_empty());
    }

    #[test]
    fn full_table_evicts_least_recently_seen() {
        let mut f = Fdb::new(3, Duration::from_secs(300));
        for i in 0..3 {
            f.learn(D, mac(i), PortId(1), Timestamp::from_secs(i as u64));
        }
        // mac(0) is refreshed, so mac(1) is the stalest.
        f.learn(D, mac(0), PortId(1), Timestamp::from_secs(5));
        assert_eq!(
            f.learn(D, mac(9), PortId(2), Timestamp::from_secs(6)),
            Learned::New
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f.lookup(D, mac(1), Timestamp::from_secs(6)), None);
        assert!(f.lookup(D, mac(0), Timestamp::from_secs(6)).is_some());
        assert_eq!(f.evictions(), 1);
    }

    #[test]
    fn statics_win_and_never_age() {
        let mut f = Fdb::new(1, Duration::from_secs(1));
        f.add_static(D, mac(1), PortId(3));
        assert_eq!(
            f.learn(D, mac(1), PortId(2), Timestamp::from_secs(1)),
            Learned::StaticElsewhere
        );
        f.expire(Timestamp::from_secs(1000));
        assert_eq!(
            f.lookup(D, mac(1), Timestamp::from_secs(1000)),
            Some(PortId(3).into())
        );
        // The one learned slot still works beside the static entry.
        assert_eq!(
            f.learn(D, mac(2), PortId(2), Timestamp::from_secs(1)),
            Learned::New
        );
        assert_eq!(
            f.learn(D, mac(3), PortId(2), Timestamp::from_secs(1)),
            Learned::New
        );
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn a_mac_moving_between_vteps_of_one_port_is_a_move() {
        let mut f = Fdb::new(16, Duration::from_secs(300));
        let t = Timestamp::from_secs(1);
        let behind = |ip: [u8; 4]| Station {
            port: PortId(4),
            vtep: Some(Ipv4Addr::from(ip)),
        };
        assert_eq!(f.learn(D, mac(1), behind([198, 18, 0, 2]), t), Learned::New);
        assert_eq!(
            f.learn(D, mac(1), behind([198, 18, 0, 3]), t),
            Learned::Moved {
                from: behind([198, 18, 0, 2])
            }
        );
        assert_eq!(f.lookup(D, mac(1), t), Some(behind([198, 18, 0, 3])));
        // A static entry pins the VTEP too.
        f.add_static(D, mac(2), behind([198, 18, 0, 2]));
        assert_eq!(
            f.learn(D, mac(2), behind([198, 18, 0, 3]), t),
            Learned::StaticElsewhere
        );
    }

    #[test]
    fn flood_of_sources_stays_bounded() {
        let mut f = Fdb::new(100, Duration::from_secs(300));
        for i in 0..50_000 {
            f.learn(D, mac(i), PortId(1), Timestamp::from_nanos(i as u64));
        }
        assert_eq!(f.len(), 100);
        assert!(f.order.len() <= 200);
    }
}
