//! Reloading a running switch's configuration in place.
//!
//! The new configuration is built into a whole new pipeline (`prepare`),
//! which the I/O layer reads to bring the devices in line (TAPs and
//! namespaces created and removed), then `commit` moves the running state
//! into it and takes its place. What carries over, by name:
//! - the connection table and NAT's port choices, whole: connections are
//!   keyed by addresses, not ports; the new ruleset's generation retires
//!   every cached rule path, so each flow re-evaluates once;
//! - learned FDB and neighbour entries, and port counters, of ports and
//!   networks that are unchanged;
//! - DHCP leases of networks that are unchanged, for MACs that still hold
//!   the same address, and DNS queries in flight upstream.
//!
//! A port whose settings changed (address, MAC, network, VLANs...) is a
//! removed port plus an added one. A network is unchanged when its L2
//! segment is (driver, subnet, gateway, VLAN, parent); `icc`, `internal`,
//! `masquerade` and `mtu` only change rules and addressing. `[switch]` and
//! `[uplink]` cannot change: the reload is refused, naming them.

use crate::config::{Config, ConfigError, ConfigErrors, Network as NetConfig, Port as PortConfig};
use crate::fdb::{Domain, Station};
use crate::port::PortId;

use super::Switch;

/// A reload worked out, not applied yet.
pub struct Reload {
    next: Switch,
}

impl Reload {
    /// The configuration the switch will run, for the I/O layer.
    pub fn config(&self) -> &Config {
        &self.next.config
    }
}

/// What a committed reload changed, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub ports_added: Vec<String>,
    pub ports_removed: Vec<String>,
    pub networks_added: Vec<String>,
    pub networks_removed: Vec<String>,
    /// Connections carried over.
    pub connections: usize,
}

impl Switch {
    /// Builds the pipeline for `config` beside the running one; refuses
    /// what cannot change in place, and rules with errors.
    pub fn prepare_reload(&self, config: &Config) -> Result<Reload, ConfigErrors> {
        let mut config = config.clone();
        // `run` gives the uplink its interface's MAC when the file does not.
        if let (Some(new), Some(old)) = (config.uplink.as_mut(), self.config.uplink.as_ref()) {
            if new.mac.is_none() && new.interface == old.interface {
                new.mac = old.mac;
            }
        }
        let refuse = |what: &str| {
            Err(ConfigErrors(vec![ConfigError {
                path: config.source.path.clone(),
                line: 1,
                col: 1,
                message: format!(
                    "reload cannot change {what} of a running switch; restart it for that"
                ),
            }]))
        };
        if config.switch != self.config.switch {
            return refuse("[switch]");
        }
        if config.uplink != self.config.uplink {
            return refuse("[uplink]");
        }
        Ok(Reload {
            next: Switch::new(&config)?,
        })
    }

    /// Moves the running state into the prepared pipeline and runs it.
    pub fn commit_reload(&mut self, reload: Reload) -> Reloaded {
        let mut next = reload.next;
        let nets = network_map(&self.config, &next.config);
        let ports = port_map(self, &next, &nets);
        for (domain, mac, e) in self.fdb.iter() {
            let (Some(&Some(network)), Some(&Some(port))) = (
                nets.get(usize::from(domain.network)),
                ports.get(e.at.port.index()),
            ) else {
                continue;
            };
            if !e.is_static {
                let domain = Domain { network, ..domain };
                let at = Station { port, ..e.at };
                next.fdb.learn(domain, mac, at, e.last_seen);
            }
        }
        // A parent's MAC is read from its interface once, at start.
        for (old, to) in self.networks.iter().zip(&nets) {
            let next_net = to.and_then(|n| next.networks.get_mut(usize::from(n)));
            if let (Some(was), Some(now)) = (&old.parent, next_net.and_then(|n| n.parent.as_mut()))
            {
                now.mac = was.mac;
            }
        }
        for (net, ip, mac, seen) in self.neighbours.learned() {
            if let Some(&Some(n)) = nets.get(usize::from(net)) {
                next.neighbours.learn(n, ip, mac, seen);
            }
        }
        for (p, to) in self.ports.iter().zip(&ports) {
            if let Some(to) = to {
                next.ports[to.index()].stats = p.stats.clone();
            }
        }
        next.firewall.take_connections(&mut self.firewall);
        next.services.take_state(&mut self.services, &nets, |p| {
            ports.get(p.index()).copied().flatten()
        });
        let mut summary = Reloaded {
            connections: next.firewall.conntrack().len(),
            ..Reloaded::default()
        };
        let names = |ports: &[PortConfig]| ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let kept: Vec<&str> = ports
            .iter()
            .zip(&self.config.ports)
            .filter(|(to, _)| to.is_some())
            .map(|(_, p)| p.name.as_str())
            .collect();
        summary.ports_removed = names(&self.config.ports)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| ports.get(*i).is_none_or(Option::is_none))
            .map(|(_, n)| n)
            .collect();
        summary.ports_added = names(&next.config.ports)
            .into_iter()
            .filter(|n| !kept.contains(&n.as_str()))
            .collect();
        summary.networks_removed = self
            .config
            .networks
            .iter()
            .zip(&nets)
            .filter(|(_, to)| to.is_none())
            .map(|(n, _)| n.name.clone())
            .collect();
        summary.networks_added = next
            .config
            .networks
            .iter()
            .filter(|n| !self.config.networks.iter().any(|o| same_segment(o, n)))
            .map(|n| n.name.clone())
            .collect();
        *self = next;
        summary
    }

    /// Takes `config` in place at once: `prepare_reload` then
    /// `commit_reload`, for a switch without devices (tests, traces).
    pub fn reload(&mut self, config: &Config) -> Result<Reloaded, ConfigErrors> {
        let r = self.prepare_reload(config)?;
        Ok(self.commit_reload(r))
    }
}

/// The same L2 segment under the same name.
fn same_segment(a: &NetConfig, b: &NetConfig) -> bool {
    a.name == b.name
        && a.driver == b.driver
        && a.subnet == b.subnet
        && a.gateway == b.gateway
        && a.vlan == b.vlan
        && a.mode == b.mode
        && a.parent == b.parent
}

/// Each old network's index in the new switch, if unchanged; the uplink's
/// network (last, after the configured ones) maps to the new uplink's.
fn network_map(old: &Config, new: &Config) -> Vec<Option<u16>> {
    let mut map: Vec<Option<u16>> = old
        .networks
        .iter()
        .map(|o| {
            new.networks
                .iter()
                .position(|n| same_segment(o, n))
                .map(|i| i as u16)
        })
        .collect();
    if old.uplink.is_some() && new.uplink.is_some() {
        map.push(Some(new.networks.len() as u16));
    }
    map
}

/// Each old port's id in the new switch, if unchanged: a configured port
/// with the same settings on an unchanged network; a macvlan/ipvlan parent
/// or the uplink (after the configured ports) of the same name whose
/// network is unchanged.
fn port_map(old: &Switch, new: &Switch, nets: &[Option<u16>]) -> Vec<Option<PortId>> {
    let settings = |p: &PortConfig| PortConfig {
        network_index: 0,
        ..p.clone()
    };
    let (configured, new_configured) = (old.config.ports.len(), new.config.ports.len());
    old.ports
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let net = nets.get(usize::from(o.network)).copied().flatten()?;
            let j = match old.config.ports.get(i) {
                Some(c) => {
                    let j = new.config.ports.iter().position(|n| n.name == c.name)?;
                    (settings(c) == settings(&new.config.ports[j])).then_some(j)?
                }
                None if i >= configured => {
                    new_configured
                        + new.ports[new_configured..]
                            .iter()
                            .position(|n| n.name == o.name)?
                }
                None => return None,
            };
            (new.ports[j].network == net).then_some(PortId(j as u16))
        })
        .collect()
}
