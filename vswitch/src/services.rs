//! The gateway's services on each bridge network: DHCP on port 67 and DNS on
//! port 53, as Docker's embedded DNS answers at 127.0.0.11. The pipeline
//! hands over UDP payloads addressed to the gateway; what comes back it
//! wraps in UDP, IPv4 and Ethernet and sends through OUTPUT.

use packet::MacAddr;

use crate::config::{Config, Driver};
use crate::dhcp::{self, DhcpServer, ServerConfig};
use crate::dns::{Answer, DnsServer, Transport};
use crate::time::Timestamp;

pub const DHCP_SERVER_PORT: u16 = 67;
pub const DHCP_CLIENT_PORT: u16 = 68;
pub const DNS_PORT: u16 = 53;

pub struct Services {
    /// By network index; `None` where the switch is not the gateway.
    dhcp: Vec<Option<DhcpServer>>,
    dns: DnsServer,
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
        Services { dhcp, dns }
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

    /// The answer to a DNS query over UDP from `network`. Names that are not
    /// ours are refused: there is no upstream to forward them to yet.
    pub fn dns(&self, network: u16, query: &[u8]) -> Option<Vec<u8>> {
        match self.dns.answer(network, query, Transport::Udp) {
            Answer::Reply(r) => Some(r),
            Answer::Forward | Answer::Drop => None,
        }
    }

    pub fn expire(&mut self, now: Timestamp) {
        for s in self.dhcp.iter_mut().flatten() {
            s.expire(now);
        }
    }
}
