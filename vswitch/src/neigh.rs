//! The gateway's neighbour (ARP) table: which MAC holds an IPv4 address on a
//! network, for routing frames between networks.
//!
//! Key: (network, address). Entries come from the configuration (endpoints
//! whose address and MAC the switch assigned: permanent) and from ARP the
//! gateway sees in its own domain (requests and replies: reachable for
//! `REACHABLE_TIME`, then gone). Only ARP whose sender address lies in the
//! network's subnet is learned, and never over a permanent entry, so a
//! container cannot redirect another endpoint's routed traffic.
//!
//! Bounded: at most `MAX_LEARNED` learned entries; when full, the stalest
//! learned entry is replaced.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::net::Ipv4Addr;
use std::time::Duration;

use packet::MacAddr;

use crate::time::Timestamp;

/// How long a learned neighbour is trusted without fresh ARP (Linux's
/// base_reachable_time is 30 s; stale entries are reused for longer there,
/// we simply ask again).
pub const REACHABLE_TIME: Duration = Duration::from_secs(60);
pub const MAX_LEARNED: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Neighbour {
    mac: MacAddr,
    /// `None` for permanent entries.
    seen: Option<Timestamp>,
}

#[derive(Clone, Default)]
pub struct Neighbours {
    /// Looked up for every routed frame: foldhash, seeded per table.
    map: HashMap<(u16, Ipv4Addr), Neighbour, RandomState>,
    learned: usize,
}

impl Neighbours {
    pub fn add_permanent(&mut self, network: u16, ip: Ipv4Addr, mac: MacAddr) {
        let old = self
            .map
            .insert((network, ip), Neighbour { mac, seen: None });
        if old.is_some_and(|n| n.seen.is_some()) {
            self.learned -= 1;
        }
    }

    /// Records that `ip` answers at `mac` on `network`.
    pub fn learn(&mut self, network: u16, ip: Ipv4Addr, mac: MacAddr, now: Timestamp) {
        if !mac.is_unicast() || mac.is_zero() || ip.is_unspecified() {
            return;
        }
        let key = (network, ip);
        match self.map.get_mut(&key) {
            Some(n) if n.seen.is_none() => {}
            Some(n) => {
                *n = Neighbour {
                    mac,
                    seen: Some(now),
                }
            }
            None => {
                if self.learned >= MAX_LEARNED {
                    self.evict_stalest();
                }
                self.map.insert(
                    key,
                    Neighbour {
                        mac,
                        seen: Some(now),
                    },
                );
                self.learned += 1;
            }
        }
    }

    pub fn lookup(&self, network: u16, ip: Ipv4Addr, now: Timestamp) -> Option<MacAddr> {
        let n = self.map.get(&(network, ip))?;
        match n.seen {
            Some(t) if now.since(t) > REACHABLE_TIME => None,
            _ => Some(n.mac),
        }
    }

    /// The learned entries: (network, address, MAC, when seen).
    pub fn learned(&self) -> impl Iterator<Item = (u16, Ipv4Addr, MacAddr, Timestamp)> + '_ {
        self.map
            .iter()
            .filter_map(|(&(net, ip), n)| n.seen.map(|t| (net, ip, n.mac, t)))
    }

    pub fn expire(&mut self, now: Timestamp) {
        let before = self.map.len();
        self.map
            .retain(|_, n| n.seen.is_none_or(|t| now.since(t) <= REACHABLE_TIME));
        self.learned -= before - self.map.len();
    }

    fn evict_stalest(&mut self) {
        let stalest = self
            .map
            .iter()
            .filter_map(|(k, n)| n.seen.map(|t| (t, *k)))
            .min();
        if let Some((_, k)) = stalest {
            self.map.remove(&k);
            self.learned -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_entries_resist_learning_and_learned_ones_age() {
        let mut n = Neighbours::default();
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let mac = MacAddr::from_ipv4(ip);
        let evil = MacAddr([2, 0, 0, 0, 0, 66]);
        n.add_permanent(0, ip, mac);
        n.learn(0, ip, evil, Timestamp::from_secs(1));
        assert_eq!(n.lookup(0, ip, Timestamp::from_secs(1000)), Some(mac));

        let other = Ipv4Addr::new(10, 0, 0, 9);
        n.learn(0, other, evil, Timestamp::from_secs(1));
        assert_eq!(n.lookup(0, other, Timestamp::from_secs(61)), Some(evil));
        assert_eq!(n.lookup(0, other, Timestamp::from_secs(62)), None);
        assert_eq!(n.lookup(1, other, Timestamp::from_secs(1)), None);
        n.expire(Timestamp::from_secs(62));
        assert_eq!(n.learned, 0);
    }

    #[test]
    fn bounded() {
        let mut n = Neighbours::default();
        for i in 0..(MAX_LEARNED as u32 + 100) {
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
            n.learn(
                0,
                ip,
                MacAddr([2, 0, 0, 0, 0, 1]),
                Timestamp::from_nanos(u64::from(i)),
            );
        }
        assert_eq!(n.learned, MAX_LEARNED);
        assert_eq!(n.map.len(), MAX_LEARNED);
    }
}
