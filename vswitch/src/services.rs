//! The gateway's services on each bridge network: DHCP on port 67 and DNS on
//! port 53 over UDP and TCP, as Docker's embedded DNS answers at
//! 127.0.0.11. The pipeline hands over UDP payloads and TCP segments
//! addressed to the gateway; what comes back it wraps in UDP or TCP, IPv4
//! and Ethernet and sends through OUTPUT. TCP is `tcp_responder`'s.
//!
//! Names that are not the network's go to the uplink's resolvers (`[uplink]
//! dns`): the query leaves from the uplink address with an identifier of our
//! own, and the answer is matched back to the asker by it; an asker over
//! TCP gets it on its connection.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use packet::MacAddr;

use crate::config::{Config, Driver};
use crate::dhcp::{self, DhcpServer, ServerConfig};
use crate::dns::{tcp_frame, tcp_frames, Answer, DnsServer, Transport};
use crate::port::PortId;
use crate::tcp_responder::{self, ConnKey, Handled, Segment, TcpResponder};
use crate::time::Timestamp;

pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
pub const DNS_PORT: u16 = 53;
/// The uplink port forwarded queries leave from and answers come back to.
pub const FORWARD_PORT: u16 = 53053;
/// How long a forwarded query waits for its answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries in flight at most; more are dropped (the client retries).
const FORWARD_MAX: usize = 1024;

#[derive(Clone)]
pub struct Services {
    /// By network index; `None` where the switch is not the gateway.
    dhcp: Vec<Option<DhcpServer>>,
    dns: DnsServer,
    upstream: Option<Ipv4Addr>,
    /// Forwarded queries by the identifier they left with.
    pending: HashMap<u16, Pending>,
    next_id: u16,
    tcp: TcpResponder,
}

/// Who asked a forwarded query, to send the answer back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asker {
    pub port: PortId,
    pub network: u16,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub udp_port: u16,
    /// Asked over TCP, on this connection.
    pub tcp: Option<ConnKey>,
}

#[derive(Clone)]
struct Pending {
    asker: Asker,
    id: u16,
    expires: Timestamp,
}

/// What to do with a DNS query.
pub enum Dns {
    Reply(Vec<u8>),
    /// Send `query` to the `upstream` resolver from `FORWARD_PORT`.
    Forward {
        upstream: Ipv4Addr,
        query: Vec<u8>,
    },
    Nothing,
}

impl Services {
    /// A DHCP server per bridge network that hands each port its IPAM
    /// address (so `ip = "dhcp"` ports get theirs from any client), and DNS
    /// records for every port name and alias, scoped to its network.
    pub fn new(config: &Config) -> Services {
        let mut dhcp: Vec<Option<DhcpServer>> = config
            .networks
            .iter()
            .map(|n| {
                (n.driver == Driver::Bridge)
                    .then(|| DhcpServer::new(ServerConfig::new(n.gateway, n.subnet)))
            })
            .collect();
        let mut dns = DnsServer::new();
        for (i, _) in config.networks.iter().enumerate() {
            let mut records = Vec::new();
            for p in config.ports.iter().filter(|p| p.network_index == i) {
                let Some(ip) = p.ip else { continue };
                if let Some(Some(server)) = dhcp.get_mut(i) {
                    server.reserve(p.mac, ip, Some(p.name.clone()));
                }
                records.push((p.name.clone(), ip));
                records.extend(p.aliases.iter().map(|a| (a.clone(), ip)));
            }
            // Names were validated with the config; one the DNS refuses
            // is left out rather than taking the network's others down.
            if let Err(e) = dns.set_records(i as u16, records) {
                tracing::warn!("DNS names of network {}: {e}", config.networks[i].name);
            }
        }
        let upstream = config.uplink.as_ref().and_then(|u| u.dns.first().copied());
        dns.set_upstream(upstream.is_some());
        Services {
            dhcp,
            dns,
            upstream,
            pending: HashMap::new(),
            next_id: 1,
            tcp: TcpResponder::new(),
        }
    }

    /// Takes `old`'s leases and forwarded queries (a reload): `networks`
    /// and `port` give each old network's and port's new index, if any.
    pub fn take_state(
        &mut self,
        old: &mut Services,
        networks: &[Option<u16>],
        port: impl Fn(PortId) -> Option<PortId>,
    ) {
        for (i, server) in old.dhcp.iter().enumerate() {
            let to = networks.get(i).copied().flatten().map(usize::from);
            if let (Some(server), Some(Some(new))) = (server, to.and_then(|j| self.dhcp.get_mut(j)))
            {
                new.import(server.leases());
            }
        }
        for (id, mut p) in old.pending.drain() {
            let network = networks
                .get(usize::from(p.asker.network))
                .copied()
                .flatten();
            if let (Some(network), Some(port)) = (network, port(p.asker.port)) {
                p.asker.network = network;
                p.asker.port = port;
                self.pending.insert(id, p);
            }
        }
        self.next_id = old.next_id;
    }

    /// Every DHCP lease, by network index.
    pub fn leases(&self) -> impl Iterator<Item = (u16, dhcp::Lease)> + '_ {
        self.dhcp
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u16, s.as_ref()?)))
            .flat_map(|(i, s)| s.leases().map(move |l| (i, l)))
    }

    /// The answer to a DHCP message from `client` on `network`.
    pub fn dhcp(
        &mut self,
        now: Timestamp,
        network: u16,
        client: MacAddr,
        payload: &[u8],
    ) -> Option<dhcp::Reply> {
        self.dhcp
            .get_mut(usize::from(network))?
            .as_mut()?
            .handle(now, client, payload)
    }

    /// What to do with a DNS query over UDP from `asker`: answer it, or
    /// forward a name not ours upstream (refused when there is no upstream).
    pub fn dns(&mut self, now: Timestamp, asker: Asker, query: &[u8]) -> Dns {
        match self.dns.answer(asker.network, query, Transport::Udp) {
            Answer::Reply(r) => Dns::Reply(r),
            Answer::Drop => Dns::Nothing,
            Answer::Forward => self.forward(now, asker, query),
        }
    }

    /// A TCP segment for the gateway's DNS from `asker`: what to send back
    /// on the connection, and the queries to forward upstream (their
    /// answers come back on the connection through `dns_answer`).
    pub fn dns_tcp(
        &mut self,
        now: Timestamp,
        asker: Asker,
        key: ConnKey,
        seg: Segment,
    ) -> (Handled, Vec<Dns>) {
        let (dns, mut forward) = (&self.dns, Vec::new());
        let handled = self.tcp.handle(now, key, seg, |rx| {
            let mut reply = Vec::new();
            let mut frames = tcp_frames(rx);
            for query in frames.by_ref() {
                match dns.answer(key.network, query, Transport::Tcp) {
                    // Our answers are far below 64 KB (see `dns::server`).
                    Answer::Reply(r) => reply.extend(tcp_frame(&r).unwrap_or_default()),
                    Answer::Forward => forward.push(query.to_vec()),
                    Answer::Drop => {}
                }
            }
            let used = frames.consumed();
            rx.drain(..used);
            reply
        });
        let asker = Asker {
            tcp: Some(key),
            ..asker
        };
        let forward = forward
            .iter()
            .map(|q| self.forward(now, asker, q))
            .collect();
        (handled, forward)
    }

    /// An answer from upstream for a connection: the segments carrying it.
    pub fn tcp_send(&mut self, key: ConnKey, answer: &[u8]) -> Vec<tcp_responder::Reply> {
        match tcp_frame(answer) {
            Some(framed) => self.tcp.send(key, &framed),
            None => Vec::new(),
        }
    }

    /// Sends a name not ours on to the upstream resolver under an
    /// identifier of our own; nothing when too many queries wait.
    fn forward(&mut self, now: Timestamp, asker: Asker, query: &[u8]) -> Dns {
        let (Some(upstream), Some(id)) = (self.upstream, query.get(..2)) else {
            return Dns::Nothing;
        };
        if self.pending.len() >= FORWARD_MAX {
            return Dns::Nothing;
        }
        let ours = self.free_id();
        self.pending.insert(
            ours,
            Pending {
                asker,
                id: u16::from_be_bytes([id[0], id[1]]),
                expires: now.plus(FORWARD_TIMEOUT),
            },
        );
        let mut query = query.to_vec();
        query[..2].copy_from_slice(&ours.to_be_bytes());
        Dns::Forward { upstream, query }
    }

    /// An upstream's answer to a forwarded query: who asked, and the answer
    /// with their identifier back. `None` for anything not awaited.
    pub fn dns_answer(&mut self, answer: &[u8]) -> Option<(Asker, Vec<u8>)> {
        let id = answer.get(..2)?;
        let p = self.pending.remove(&u16::from_be_bytes([id[0], id[1]]))?;
        let mut answer = answer.to_vec();
        answer[..2].copy_from_slice(&p.id.to_be_bytes());
        Some((p.asker, answer))
    }

    /// An identifier no query in flight holds. Sequential: the switch's
    /// resolvers sit on the lab's own uplink.
    fn free_id(&mut self) -> u16 {
        while self.pending.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    pub fn expire(&mut self, now: Timestamp) {
        for s in self.dhcp.iter_mut().flatten() {
            s.expire(now);
        }
        self.tcp.expire(now);
        self.pending.retain(|_, p| p.expires > now);
    }
}
