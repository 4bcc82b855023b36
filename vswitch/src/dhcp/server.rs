//! The gateway's DHCP server for one network (RFC 2131 section 4.3).
//!
//! Addresses are not pooled here: IPAM already gave every port with
//! `ip = "dhcp"` its address, and the switch registers it with `reserve`.
//! So the server answers only MACs it holds a reservation for. An unknown
//! MAC gets no OFFER, and its REQUESTs get no reply at all, which RFC 2131
//! asks of a server with no record of the client so that it coexists with
//! other servers on the wire (an uplink may bridge one in). A known MAC
//! asking for any other address gets a NAK. INFORM is answered for any
//! client whose address is in the subnet, since it allocates nothing.
//!
//! Leases are keyed by MAC and only record what was acknowledged and until
//! when; they are for listing and for surviving a reload (`leases`,
//! `import`). `expire` drops the ones past their time; it frees nothing,
//! since the address stays reserved for the port. A DECLINE (the client
//! found the address in use) drops the lease, and the reservation stays:
//! the conflict is a configuration error for a person to fix.
//!
//! The server owns no socket and reads no clock: `handle` takes the UDP
//! payload, the frame's source MAC and `now`, and returns the payload to
//! send and where to (RFC 2131 section 4.1).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use packet::MacAddr;
use serde::{Deserialize, Serialize};

use super::message::{DhcpRepr, MessageType, Op};
use crate::config::Ipv4Net;
use crate::time::Timestamp;

/// Total message size every client must accept (RFC 2131 section 2), less
/// the IP and UDP headers, which option 57 counts.
const MIN_MAX_MESSAGE: u16 = 576;
const IP_UDP_HEADERS: usize = 28;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The gateway address: the server identifier and the source of replies.
    pub server_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease: Duration,
}

impl ServerConfig {
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(3600);

    /// The gateway as router and DNS server, an hour's lease, no domain.
    pub fn new(server_ip: Ipv4Addr, subnet: Ipv4Net) -> ServerConfig {
        ServerConfig {
            server_ip,
            subnet,
            router: Some(server_ip),
            dns: vec![server_ip],
            domain: None,
            lease: Self::DEFAULT_LEASE,
        }
    }
}

/// An acknowledged address and when it runs out. Serialized with the MAC
/// and address as text and `expires` in the switch's nanoseconds, which
/// mean something only to the process that wrote them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(with = "mac_text")]
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    #[serde(with = "nanos")]
    pub expires: Timestamp,
}

/// Where a reply goes (RFC 2131 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255 port 68, to ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// `ip` port 68 at `mac`, without ARP: the client may not answer it yet.
    Unicast { ip: Ipv4Addr, mac: MacAddr },
    /// A relay agent: `ip` (giaddr) port 67, at `mac`, the frame's sender.
    Relay { ip: Ipv4Addr, mac: MacAddr },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The UDP payload, from port 67.
    pub payload: Vec<u8>,
    pub to: Destination,
}

#[derive(Clone, Debug)]
struct Reservation {
    ip: Ipv4Addr,
    hostname: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DhcpServer {
    config: ServerConfig,
    reservations: BTreeMap<MacAddr, Reservation>,
    leases: BTreeMap<MacAddr, Lease>,
}

impl DhcpServer {
    pub fn new(config: ServerConfig) -> DhcpServer {
        DhcpServer {
            config,
            reservations: BTreeMap::new(),
            leases: BTreeMap::new(),
        }
    }

    /// Hands `ip` to `mac`, replacing any earlier reservation of that MAC.
    /// The address is the caller's to check (IPAM has); `hostname` goes out
    /// as option 12.
    pub fn reserve(&mut self, mac: MacAddr, ip: Ipv4Addr, hostname: Option<String>) {
        self.reservations.insert(mac, Reservation { ip, hostname });
    }

    /// The current leases, by MAC.
    pub fn leases(&self) -> impl Iterator<Item = Lease> + '_ {
        self.leases.values().copied()
    }

    /// Takes back leases from `leases()` of an earlier server, after the
    /// reservations are in place. A lease whose MAC no longer holds that
    /// address is dropped.
    pub fn import(&mut self, leases: impl IntoIterator<Item = Lease>) {
        for l in leases {
            if self.reservations.get(&l.mac).is_some_and(|r| r.ip == l.ip) {
                self.leases.insert(l.mac, l);
            }
        }
    }

    /// Forgets leases that ran out at or before `now`.
    pub fn expire(&mut self, now: Timestamp) {
        self.leases.retain(|_, l| l.expires > now);
    }

    /// Answers one message that `client_mac` sent to port 67.
    pub fn handle(&mut self, now: Timestamp, client_mac: MacAddr, payload: &[u8]) -> Option<Reply> {
        let req = DhcpRepr::parse(payload).ok()?;
        if req.op != Op::BootRequest {
            return None;
        }
        // A client on the link must name its own MAC; only a relay speaks
        // for others.
        if req.giaddr.is_unspecified() && req.chaddr != client_mac {
            return None;
        }
        // Addressed to another server, or selecting its offer.
        if req.server_id.is_some_and(|s| s != self.config.server_ip) {
            return None;
        }
        match req.message_type {
            MessageType::Discover => {
                let r = self.reservations.get(&req.chaddr)?;
                Some(self.reply(&req, client_mac, MessageType::Offer, Some(r)))
            }
            MessageType::Request => self.request(now, &req, client_mac),
            MessageType::Inform => {
                if !self.config.subnet.contains(req.ciaddr) {
                    return None;
                }
                let r = self.reservations.get(&req.chaddr);
                Some(self.reply(&req, client_mac, MessageType::Ack, r))
            }
            MessageType::Decline => {
                self.drop_lease(req.chaddr, req.requested_ip);
                None
            }
            MessageType::Release => {
                self.drop_lease(req.chaddr, Some(req.ciaddr));
                None
            }
            MessageType::Offer | MessageType::Ack | MessageType::Nak => None,
        }
    }

    /// SELECTING and INIT-REBOOT name the address in option 50; RENEWING and
    /// REBINDING in `ciaddr`. All four are answered alike.
    fn request(&mut self, now: Timestamp, req: &DhcpRepr, client_mac: MacAddr) -> Option<Reply> {
        let asked = req
            .requested_ip
            .or_else(|| (!req.ciaddr.is_unspecified()).then_some(req.ciaddr))?;
        let r = self.reservations.get(&req.chaddr)?;
        if asked != r.ip {
            return Some(self.nak(req, client_mac));
        }
        let reply = self.reply(req, client_mac, MessageType::Ack, Some(r));
        self.leases.insert(
            req.chaddr,
            Lease {
                mac: req.chaddr,
                ip: asked,
                expires: now.plus(self.config.lease),
            },
        );
        Some(reply)
    }

    fn drop_lease(&mut self, mac: MacAddr, ip: Option<Ipv4Addr>) {
        if self.leases.get(&mac).is_some_and(|l| Some(l.ip) == ip) {
            self.leases.remove(&mac);
        }
    }

    /// An OFFER or ACK; with no reservation (INFORM from a static address)
    /// it carries no address and no lease times.
    fn reply(
        &self,
        req: &DhcpRepr,
        client_mac: MacAddr,
        kind: MessageType,
        r: Option<&Reservation>,
    ) -> Reply {
        let c = &self.config;
        let mut m = DhcpRepr::new(Op::BootReply, kind, req.xid, req.chaddr);
        m.broadcast = req.broadcast;
        m.giaddr = req.giaddr;
        if kind == MessageType::Ack {
            m.ciaddr = req.ciaddr;
        }
        m.server_id = Some(c.server_ip);
        if let Some(r) = r.filter(|_| req.message_type != MessageType::Inform) {
            m.yiaddr = r.ip;
            let lease = u32::try_from(c.lease.as_secs()).unwrap_or(u32::MAX);
            m.lease_time = Some(lease);
            // RFC 2131 section 4.4.5 defaults: half and seven eighths.
            m.renewal_time = Some(lease / 2);
            m.rebinding_time = Some((u64::from(lease) * 7 / 8) as u32);
        }
        m.subnet_mask = Some(c.subnet.netmask());
        m.broadcast_addr = Some(c.subnet.broadcast());
        m.router = c.router;
        m.dns.clone_from(&c.dns);
        m.domain_name.clone_from(&c.domain);
        m.hostname = r.and_then(|r| r.hostname.clone());
        // RFC 6842: the client identifier comes back.
        m.client_id.clone_from(&req.client_id);
        fit(&mut m, req.max_message_size);
        Reply {
            to: destination(req, m.yiaddr, client_mac),
            payload: to_bytes(&m),
        }
    }

    fn nak(&self, req: &DhcpRepr, client_mac: MacAddr) -> Reply {
        let mut m = DhcpRepr::new(Op::BootReply, MessageType::Nak, req.xid, req.chaddr);
        m.giaddr = req.giaddr;
        m.server_id = Some(self.config.server_ip);
        m.client_id.clone_from(&req.client_id);
        let to = if req.giaddr.is_unspecified() {
            Destination::Broadcast
        } else {
            // The relay must broadcast it on the client's link.
            m.broadcast = true;
            Destination::Relay {
                ip: req.giaddr,
                mac: client_mac,
            }
        };
        Reply {
            payload: to_bytes(&m),
            to,
        }
    }
}

/// RFC 2131 section 4.1: a relay first, then a configured client at its
/// address, then broadcast if asked for (or nothing to unicast to), else
/// the offered address at the client's MAC.
fn destination(req: &DhcpRepr, yiaddr: Ipv4Addr, client_mac: MacAddr) -> Destination {
    if !req.giaddr.is_unspecified() {
        Destination::Relay {
            ip: req.giaddr,
            mac: client_mac,
        }
    } else if !req.ciaddr.is_unspecified() {
        Destination::Unicast {
            ip: req.ciaddr,
            mac: req.chaddr,
        }
    } else if req.broadcast || yiaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        Destination::Unicast {
            ip: yiaddr,
            mac: req.chaddr,
        }
    }
}

/// Leaves out the options a client did not make room for (option 57),
/// least needed first; what remains always fits in 576 bytes.
fn fit(m: &mut DhcpRepr, max_message_size: Option<u16>) {
    let limit = usize::from(max_message_size.unwrap_or(0).max(MIN_MAX_MESSAGE)) - IP_UDP_HEADERS;
    let cuts: [fn(&mut DhcpRepr); 5] = [
        |m| m.hostname = None,
        |m| m.domain_name = None,
        |m| m.broadcast_addr = None,
        |m| m.dns.clear(),
        |m| m.router = None,
    ];
    for cut in cuts {
        if m.buffer_len() <= limit {
            break;
        }
        cut(m);
    }
}

fn to_bytes(m: &DhcpRepr) -> Vec<u8> {
    let mut b = vec![0; m.buffer_len()];
    m.emit(&mut b);
    b
}

mod mac_text {
    use packet::MacAddr;
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(mac)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

mod nanos {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::time::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.as_nanos())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        u64::deserialize(d).map(Timestamp::from_nanos)
    }
}

#[cfg(test)]
mod tests;
