//! The pipeline: `Switch::process` takes one frame, the port it came in by and
//! the time, and decides what leaves where. It makes no system calls and reads
//! no clock, so tests, traces and benchmarks run the very code the datapath
//! runs.
//!
//! Order of work, top to bottom in `process`:
//! parse -> VLAN classification -> source check -> what a macvlan/ipvlan
//! parent takes (`parent`) -> learning -> ARP at the gateway -> PREROUTING
//! (raw, conntrack, mangle, nat) -> for the gateway itself: INPUT, then
//! ICMP echo, DHCP and DNS (UDP and TCP); routed between networks: TTL,
//! next hop, FORWARD and POSTROUTING; bridged: FDB lookup, then FORWARD and
//! POSTROUTING per egress port -> send, and conntrack confirms -> what
//! leaves by an ipvlan parent takes the parent's MAC.
//!
//! Between learning and PREROUTING, a frame of an established flow the
//! exact-match cache holds (`fast_path`) is sent the way its flow's frames
//! went, with conntrack, NAT and the rule counters kept as the full way
//! keeps them; whatever the cache cannot vouch for takes the full way.
//!
//! A vxlan port's datagrams come in through `decapsulate` first, which
//! checks and unwraps them; the inner frame then takes the same path, and
//! copies leaving by a vxlan port are given their VTEPs at the end.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::time::Duration;

use packet::arp::{ArpOp, ArpRepr};
use packet::ethernet::{self, ethertype, EthernetRepr};
use packet::icmpv4::{self, msg, Icmpv4Packet, Icmpv4Repr};
use packet::ipv4::{protocol, Ipv4Packet};
use packet::tcp::{TcpPacket, TcpRepr};
use packet::udp::UdpRepr;
use packet::{MacAddr, Parsed, L3, L4};

use crate::config::{Config, ConfigErrors, Ipv4Net, PortKind};
use crate::dhcp::Destination;
use crate::fast_path::{self, FastPath, FastPathStats};
use crate::fdb::{Domain, Fdb, Learned, Station};
use crate::firewall::{self, Firewall, Pass, Prerouted, Refusal};
use crate::flowspec;
use crate::gateway::{self, Body, Gateway, Reply};
use crate::neigh::Neighbours;
use crate::netfilter::Iface;
use crate::output::{Emit, Output, Payload, TagEdit};
use crate::parent::{self, Kind, Parent};
use crate::port::{Egress, Port, PortId, VlanMembership};
use crate::port_security::Identity;
use crate::reject::{self, Refused, TcpResetFrame};
use crate::services::{self, Asker, Dns, Services};
use crate::stats::DropReason;
use crate::storm::TokenBucket;
use crate::tcp_responder::{self, ConnKey, Handled, Segment};
use crate::time::Timestamp;
use crate::topology_rules;
use crate::vxlan::{Tunnel, TunnelDst};

mod reload;

pub use reload::{Reload, Reloaded};

/// What happened to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sent on to this many ports.
    Forwarded(usize),
    /// Consumed by the switch itself, which may have answered.
    Local,
    Dropped(DropReason),
}

#[derive(Clone)]
pub struct Network {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Gateway,
    /// Ports attached to this network, in configuration order.
    pub members: Vec<PortId>,
    /// The host interface of a macvlan or ipvlan network.
    pub parent: Option<Parent>,
}

impl Network {
    /// Whether the switch is the gateway here (bridge) or routes for the
    /// endpoints (ipvlan L3); on macvlan and ipvlan L2 the gateway is a
    /// router on the parent's segment.
    fn routed_by_switch(&self) -> bool {
        self.parent.as_ref().is_none_or(Parent::routes)
    }
}

/// What the I/O layer knows of a received frame beyond its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxInfo {
    /// The transport checksum holds only the pseudo header's sum (a frame
    /// from a port with offloads); NAT must patch it as such.
    pub partial_csum: bool,
    /// A super-frame's payload bytes per segment (0: one packet), to judge
    /// its segments against an egress MTU.
    pub gso_size: u16,
    /// The VTEP a frame from a vxlan port came from (see `decapsulate`).
    pub vtep: Option<Ipv4Addr>,
}

/// A vxlan datagram accepted by `Switch::decapsulate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    /// The inner frame, within the datagram.
    pub inner: Range<usize>,
    pub rx: RxInfo,
}

/// A frame's size as egress ports judge it: all its bytes, and the
/// largest IP packet it leaves as (one segment of a super-frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Size {
    len: usize,
    packet: usize,
}

impl Size {
    fn of(parsed: &Parsed, len: usize, gso_size: u16) -> Size {
        let whole = len.saturating_sub(parsed.l3_offset);
        let seg = usize::from(gso_size);
        let packet = match (seg, parsed.l4) {
            (0, _) => whole,
            (_, L4::Tcp { payload_len, .. }) => whole.saturating_sub(payload_len) + seg,
            (_, L4::Udp { .. }) => parsed.l4_offset.saturating_sub(parsed.l3_offset) + 8 + seg,
            _ => whole,
        };
        Size {
            len,
            packet: packet.min(whole),
        }
    }
}

#[derive(Clone)]
pub struct Switch {
    ports: Vec<Port>,
    /// Configured networks in order, then the uplink's when there is one.
    networks: Vec<Network>,
    /// The uplink's router, for destinations no network holds.
    default_gateway: Option<Ipv4Addr>,
    fdb: Fdb,
    neighbours: Neighbours,
    firewall: Firewall,
    /// Where established flows' frames went, for their later frames.
    fast: FastPath,
    services: Services,
    /// What the switch was built from, to tell a reload what changed.
    config: Config,
}

impl Switch {
    /// Builds the pipeline for a validated configuration; its rules may
    /// still be wrong, and are reported as config errors are.
    pub fn new(config: &Config) -> Result<Switch, ConfigErrors> {
        let rules = firewall::load_rules(config)?;
        let mut networks: Vec<Network> = config
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| Network {
                name: n.name.clone(),
                subnet: n.subnet,
                gateway: Gateway {
                    ip: n.gateway,
                    mac: Gateway::mac_for(n.gateway),
                    domain: Domain {
                        network: i as u16,
                        vlan: n.domain_vlan(),
                    },
                },
                members: Vec::new(),
                parent: None,
            })
            .collect();
        let ports = config
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let net = &mut networks[p.network_index];
                net.members.push(PortId(i as u16));
                let access = p.vlan.map_or(net.gateway.domain.vlan, |v| v.get());
                Port {
                    name: p.name.clone(),
                    network: p.network_index as u16,
                    vlans: VlanMembership::new(access, p.trunk.iter().map(|v| v.get())),
                    mac: p.mac,
                    ip: p.ip,
                    kind: p.kind,
                    security: (p.kind == PortKind::Tap && p.port_security).then_some(Identity {
                        mac: p.mac,
                        ip: p.ip,
                        dhcp: p.dhcp,
                    }),
                    storm: TokenBucket::new(p.storm_pps.unwrap_or(config.switch.storm_pps)),
                    stats: Default::default(),
                    tunnel: Tunnel::new(p),
                }
            })
            .collect::<Vec<_>>();
        let mut ports = ports;
        // A macvlan/ipvlan parent is one more port of its network, named
        // as written (`eth1.20`); on a trunk it takes only its VLAN, tagged.
        for (i, n) in config.networks.iter().enumerate() {
            let (Some((_, trunk)), Some(kind)) = (n.parent_link(), Kind::new(n.driver, n.mode))
            else {
                continue;
            };
            let id = PortId(ports.len() as u16);
            let net = &mut networks[i];
            let endpoints = net
                .members
                .iter()
                .map(|m| (ports[m.index()].ip, ports[m.index()].mac))
                .collect();
            net.members.push(id);
            net.parent = Some(Parent {
                port: id,
                kind,
                // Until the I/O layer reads the interface's own.
                mac: parent::placeholder_mac(n.subnet),
                endpoints,
            });
            let vlans = match trunk {
                Some(vid) => VlanMembership::tagged_only([vid.get()]),
                None => VlanMembership::new(net.gateway.domain.vlan, std::iter::empty()),
            };
            ports.push(Port {
                name: n.parent.clone().unwrap_or_default(),
                network: i as u16,
                vlans,
                mac: MacAddr::ZERO,
                ip: None,
                kind: PortKind::Afpacket,
                security: None,
                storm: TokenBucket::new(config.switch.storm_pps),
                stats: Default::default(),
                tunnel: None,
            });
        }
        // The uplink is one more port on a network of its own, named
        // `uplink` both ways, where the switch's address is the uplink's.
        if let Some(u) = &config.uplink {
            let network = networks.len() as u16;
            let mac = u.mac.unwrap_or_else(|| Gateway::mac_for(u.ip));
            let id = PortId(ports.len() as u16);
            networks.push(Network {
                name: topology_rules::UPLINK.to_owned(),
                subnet: u.subnet,
                gateway: Gateway {
                    ip: u.ip,
                    mac,
                    domain: Domain { network, vlan: 0 },
                },
                members: vec![id],
                parent: None,
            });
            ports.push(Port {
                name: topology_rules::UPLINK.to_owned(),
                network,
                vlans: VlanMembership::new(0, std::iter::empty()),
                mac,
                ip: Some(u.ip),
                kind: PortKind::Afpacket,
                security: None,
                storm: TokenBucket::new(config.switch.storm_pps),
                stats: Default::default(),
                tunnel: None,
            });
        }
        let mut fdb = Fdb::new(
            config.switch.fdb_max,
            Duration::from_secs(config.switch.fdb_aging_secs),
        );
        for s in &config.fdb {
            if let Some(i) = ports.iter().position(|p| p.name == s.port) {
                let port: &Port = &ports[i];
                let native = port.vlans.untagged();
                let net_vlan = networks[usize::from(port.network)].gateway.domain.vlan;
                let vlan = s.vlan.map_or(native.unwrap_or(net_vlan), |v| v.get());
                let domain = Domain {
                    network: port.network,
                    vlan,
                };
                let at = Station {
                    port: PortId(i as u16),
                    vtep: s.remote,
                };
                fdb.add_static(domain, s.mac, at);
            }
        }
        // ipvlan endpoints are pinned where they are: a frame the parent
        // demultiplexed or the switch routed to one never floods.
        for n in networks
            .iter()
            .filter(|n| n.parent.as_ref().is_some_and(|p| p.kind != Kind::Macvlan))
        {
            for &m in n.members.iter().filter(|m| !ports[m.index()].mac.is_zero()) {
                if let Some(vlan) = ports[m.index()].vlans.untagged() {
                    let domain = Domain {
                        network: n.gateway.domain.network,
                        vlan,
                    };
                    fdb.add_static(domain, ports[m.index()].mac, m);
                }
            }
        }
        let mut neighbours = Neighbours::default();
        for p in ports.iter().filter(|p| p.name != topology_rules::UPLINK) {
            if let Some(ip) = p.ip.filter(|_| !p.mac.is_zero()) {
                neighbours.add_permanent(p.network, ip, p.mac);
            }
        }
        Ok(Switch {
            ports,
            networks,
            default_gateway: config.uplink.as_ref().and_then(|u| u.gateway),
            fdb,
            neighbours,
            firewall: Firewall::new(config, rules),
            fast: FastPath::default(),
            services: Services::new(config),
            config: config.clone(),
        })
    }

    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| PortId(i as u16))
    }

    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.index())
    }

    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// The configuration the switch runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    /// The gateway's services: DHCP leases, DNS.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Gives the parent of network `name` its interface's MAC, which ipvlan
    /// endpoints appear with. False when the network has no parent.
    pub fn set_parent_mac(&mut self, name: &str, mac: MacAddr) -> bool {
        let parent = self
            .networks
            .iter_mut()
            .find(|n| n.name == name)
            .and_then(|n| n.parent.as_mut());
        parent.map(|p| p.mac = mac).is_some()
    }

    /// The exact-match cache's counters.
    pub fn fast_path(&self) -> FastPathStats {
        self.fast.stats()
    }

    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    pub fn firewall_mut(&mut self) -> &mut Firewall {
        &mut self.firewall
    }

    /// Housekeeping that depends only on time: FDB, neighbour and
    /// connection aging.
    pub fn expire(&mut self, now: Timestamp) {
        self.fdb.expire(now);
        self.neighbours.expire(now);
        self.firewall.expire(now);
        self.services.expire(now);
    }

    /// `process` with every step recorded, rule by rule: what `vswitch
    /// trace` and `[[expect]]` show. The same code runs; only the journal is on.
    pub fn trace(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &mut [u8],
        out: &mut Output,
    ) -> (Verdict, Vec<String>) {
        self.firewall.start_journal();
        let verdict = self.process(now, ingress, frame, out);
        (verdict, self.firewall.take_journal())
    }

    /// Teaches the FDB every port's configured MAC, as if each had spoken,
    /// so an offline trace switches as a running lab would.
    pub fn learn_configured(&mut self, now: Timestamp) {
        for (i, p) in self.ports.iter().enumerate() {
            if p.mac.is_zero() {
                continue;
            }
            let domain = Domain {
                network: p.network,
                vlan: p.vlans.access,
            };
            self.fdb.learn(domain, p.mac, PortId(i as u16), now);
        }
    }

    /// Decides the fate of one frame that arrived on `ingress` at `now`.
    /// Frames to send are appended to `out`; `frame` may be edited in place
    /// and is what `Payload::Ingress` emits refer to.
    pub fn process(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &mut [u8],
        out: &mut Output,
    ) -> Verdict {
        self.process_rx(now, ingress, frame, out, RxInfo::default())
    }

    /// Checks a datagram that vxlan port `port` received from `from` (its
    /// UDP payload) and unwraps it in place; a refusal is counted on the
    /// port. The inner frame then goes to `process_rx` with the `RxInfo`.
    pub fn decapsulate(
        &mut self,
        port: PortId,
        from: SocketAddrV4,
        datagram: &mut [u8],
    ) -> Result<Decapsulated, DropReason> {
        let Some(p) = self.ports.get_mut(port.index()) else {
            return Err(DropReason::NoEgress);
        };
        let Some(tunnel) = p.tunnel.as_mut() else {
            return Err(DropReason::NoEgress);
        };
        match tunnel.decap(*from.ip(), datagram) {
            Ok(inner) => Ok(Decapsulated {
                inner,
                rx: RxInfo {
                    vtep: Some(*from.ip()),
                    ..RxInfo::default()
                },
            }),
            Err(reason) => {
                p.stats.rx(datagram.len());
                p.stats.drop(reason);
                Err(reason)
            }
        }
    }

    /// `process` for a frame with what the I/O layer knows of it.
    pub fn process_rx(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &mut [u8],
        out: &mut Output,
        rx: RxInfo,
    ) -> Verdict {
        let Some(port) = self.ports.get_mut(ingress.index()) else {
            return Verdict::Dropped(DropReason::NoEgress);
        };
        port.stats.rx(frame.len());
        let verdict = self.decide(now, ingress, frame, out, rx);
        for p in self.networks.iter().filter_map(|n| n.parent.as_ref()) {
            p.egress(out, frame);
        }
        if let Verdict::Dropped(reason) = verdict {
            self.ports[ingress.index()].stats.drop(reason);
        }
        self.address_tunnels(now, frame, out);
        verdict
    }

    /// Gives each copy bound for a vxlan port its VTEP: the one its
    /// destination MAC was learned behind, else every `remote` (head-end
    /// replication of broadcast, multicast and unknown unicast), with the
    /// outer source port from the inner flow.
    fn address_tunnels(&mut self, now: Timestamp, frame: &[u8], out: &mut Output) {
        // Copies appended here are addressed already.
        for i in 0..out.emits().len() {
            let e = &out.emits()[i];
            let Some(p) = self.ports.get_mut(e.port.index()) else {
                continue;
            };
            let (Some(tunnel), None) = (&p.tunnel, e.tunnel) else {
                continue;
            };
            let bytes = match &e.payload {
                Payload::Ingress => frame,
                Payload::Built(r) => out.built(r.clone()),
            };
            let len = bytes.len();
            let (dst, src_port) = match Parsed::parse(bytes) {
                Ok(inner) => (inner.dst, packet::vxlan::source_port(&inner)),
                Err(_) => (MacAddr::BROADCAST, packet::vxlan::SOURCE_PORTS.0),
            };
            let domain = Domain {
                network: p.network,
                vlan: p.vlans.access,
            };
            let learned = match dst.is_unicast() {
                true => self.fdb.lookup(domain, dst, now).and_then(|s| s.vtep),
                false => None,
            };
            if let Some(vtep) = learned {
                out.address(i, TunnelDst { vtep, src_port });
                continue;
            }
            for (k, &vtep) in tunnel.remotes.iter().enumerate() {
                let to = TunnelDst { vtep, src_port };
                if k == 0 {
                    out.address(i, to);
                } else {
                    out.copy_to(i, to);
                    // The pipeline counted one copy.
                    p.stats.tx(len);
                }
            }
        }
    }

    fn decide(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &mut [u8],
        out: &mut Output,
        rx: RxInfo,
    ) -> Verdict {
        let mut parsed = match Parsed::parse(frame) {
            Ok(p) => p,
            Err(e) => {
                self.firewall.note(|| format!("parse: malformed: {e}"));
                return Verdict::Dropped(DropReason::Malformed);
            }
        };
        let port = &self.ports[ingress.index()];
        let len = frame.len();
        self.firewall.note(|| {
            let net = &self.networks[usize::from(port.network)].name;
            let what = flowspec::describe(&parsed, len);
            format!("in: port {} (network {net}): {what}", port.name)
        });
        let in_tag = parsed.vlan();
        let Some(vlan) = port.vlans.ingress(in_tag) else {
            return Verdict::Dropped(DropReason::VlanNotAllowed);
        };
        let domain = Domain {
            network: port.network,
            vlan,
        };
        if parsed.src.is_multicast() || parsed.src.is_zero() {
            return Verdict::Dropped(DropReason::BadSourceMac);
        }
        if let Some(id) = &port.security {
            let endpoint = |m| {
                self.ports
                    .iter()
                    .any(|p| p.kind == PortKind::Tap && p.mac == m && p.mac != id.mac)
            };
            if let Err(spoof) = id.check(&parsed, frame, endpoint) {
                self.firewall
                    .note(|| format!("port security: {spoof}: dropped"));
                return Verdict::Dropped(spoof.reason());
            }
        }
        if parsed.dst.is_multicast() {
            let storm = &mut self.ports[ingress.index()].storm;
            if storm.as_mut().is_some_and(|b| !b.take(now)) {
                self.firewall
                    .note(|| "storm control: over the port's storm_pps: dropped".to_owned());
                return Verdict::Dropped(DropReason::Storm);
            }
        }
        let network = &self.networks[usize::from(domain.network)];
        let gw = network.gateway;
        if let Some(parent) = network.parent.as_ref().filter(|p| p.port == ingress) {
            match parent.ingress(&parsed, frame, gw.mac) {
                Ok(false) => {}
                Ok(true) => match Parsed::parse(frame) {
                    Ok(p) => {
                        let (from, to) = (parsed.dst, p.dst);
                        self.firewall
                            .note(|| format!("parent: {from} readdressed to {to}"));
                        parsed = p;
                    }
                    Err(_) => return Verdict::Dropped(DropReason::Malformed),
                },
                Err(reason) => {
                    self.firewall
                        .note(|| format!("parent: {reason}: not for this network"));
                    return Verdict::Dropped(reason);
                }
            }
        }
        let routes = network.routed_by_switch();
        let l3_only = network.parent.as_ref().is_some_and(Parent::routes);
        let station = Station {
            port: ingress,
            vtep: rx.vtep,
        };
        if self.fdb.learn(domain, parsed.src, station, now) == Learned::Full {
            return Verdict::Dropped(DropReason::FdbFull);
        }
        let size = Size::of(&parsed, frame.len(), rx.gso_size);

        let at_gateway = gw.domain == domain && routes;
        if let L3::Arp(arp) = &parsed.l3 {
            if at_gateway {
                if let Some(v) = self.arp(now, &gw, ingress, arp, parsed.dst, out) {
                    return v;
                }
            }
            if l3_only {
                return Verdict::Dropped(DropReason::NotRouted);
            }
            return self.bridge(now, domain, ingress, &parsed, frame, size, None, out);
        }

        let to_gateway = at_gateway && (parsed.dst == gw.mac || is_dhcp_broadcast(&parsed));
        if to_gateway {
            self.firewall
                .note(|| format!("gateway: addressed to the switch ({})", gw.mac));
        } else if l3_only {
            return Verdict::Dropped(DropReason::NotRouted);
        }
        let iif = Iface {
            port: ingress.0,
            network: domain.network,
        };
        let key = fast_path::Key::of(ingress, &parsed);
        let mut tracked = None;
        if let Some(key) = &key {
            match self.fast_forward(now, domain, iif, key, &parsed, frame, rx, size, out) {
                Ok(verdict) => return verdict,
                Err(t) => tracked = t,
            }
        }
        let before = Prerouted {
            partial_csum: rx.partial_csum,
            tracked,
        };
        let mut pass = match self
            .firewall
            .prerouting(now, iif, !to_gateway, &parsed, frame, before)
        {
            None => None,
            Some(Ok(pass)) => Some(pass),
            Some(Err(refusal)) => {
                return self.refuse(now, refusal, &gw, ingress, &parsed, frame, out)
            }
        };
        if let Some(p) = pass.as_ref().and_then(|p| p.reparsed) {
            parsed = p;
        }
        let verdict = if to_gateway {
            self.at_gateway(now, &gw, ingress, &parsed, frame, size, pass.as_mut(), out)
        } else {
            self.bridge(
                now,
                domain,
                ingress,
                &parsed,
                frame,
                size,
                pass.as_mut(),
                out,
            )
        };
        let Some(mut pass) = pass else {
            return verdict;
        };
        let mut accepted = matches!(verdict, Verdict::Forwarded(_) | Verdict::Local);
        let nat = match accepted {
            true => self.firewall.finish_nat(&mut pass, parsed.l3_offset, frame),
            false => Ok(()),
        };
        if nat.is_err() {
            accepted = false;
        }
        if let Err(reason) = self.firewall.finish(&pass, accepted).and(nat) {
            out.clear();
            return Verdict::Dropped(reason);
        }
        if accepted {
            apply_mangle(&pass, &parsed, frame);
            if let (Some(key), Verdict::Forwarded(1)) = (key, verdict) {
                let routed = to_gateway.then_some(&gw);
                self.remember(now, domain, routed, &parsed, frame, key, &pass, out);
            }
        }
        verdict
    }

    /// A frame of a flow the exact-match cache holds, sent the way its
    /// flow's frames went, if the FDB, the neighbours and the hooks still
    /// agree (see `fast_path`). `Err` as for `Firewall::established`.
    #[allow(clippy::too_many_arguments)]
    fn fast_forward(
        &mut self,
        now: Timestamp,
        domain: Domain,
        iif: Iface,
        key: &fast_path::Key,
        parsed: &Parsed,
        frame: &mut [u8],
        rx: RxInfo,
        size: Size,
        out: &mut Output,
    ) -> Result<Verdict, Option<conntrack::Track>> {
        let flow = self.fast.get(key);
        let way = flow.and_then(|f| self.fast_way(now, domain, key, f, parsed, frame, size));
        let (Some(flow), Some((out_domain, out_mac))) = (flow, way) else {
            self.fast.count(false);
            return Err(None);
        };
        let oif = Iface {
            port: flow.egress.0,
            network: self.ports[flow.egress.index()].network,
        };
        let done =
            self.firewall
                .established(now, flow.conn, iif, oif, parsed, frame, rx.partial_csum);
        self.fast.count(done.is_ok());
        done?;
        if let Some(route) = flow.route {
            let src = self.networks[usize::from(route.network)].gateway.mac;
            frame[0..6].copy_from_slice(&out_mac.0);
            frame[6..12].copy_from_slice(&src.0);
            if let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[parsed.l3_offset..]) {
                ip.decrement_ttl();
            }
        }
        let edit = self.send(
            flow.egress,
            out_domain.vlan,
            parsed.vlan(),
            frame.len(),
            out,
        );
        Ok(match edit {
            true => Verdict::Forwarded(1),
            false => Verdict::Dropped(DropReason::NoEgress),
        })
    }

    /// Whether `flow`'s way still holds for this frame: a routed frame's
    /// header checksum and TTL pass and its next hop is resolved, the
    /// packet fits a tunnel's MTU, and the FDB still has the MAC it goes to
    /// behind the flow's egress port. The domain and MAC the frame leaves
    /// for, if so.
    #[allow(clippy::too_many_arguments)]
    fn fast_way(
        &mut self,
        now: Timestamp,
        domain: Domain,
        key: &fast_path::Key,
        mut flow: fast_path::Flow,
        parsed: &Parsed,
        frame: &[u8],
        size: Size,
    ) -> Option<(Domain, MacAddr)> {
        if self.tunnel_mtu_exceeded(flow.egress, size).is_some() {
            return None;
        }
        let (out_domain, out_mac) = match flow.route {
            None => (domain, parsed.dst),
            Some(route) => {
                let ip = Ipv4Packet::new_checked(&frame[parsed.l3_offset..]).ok()?;
                if !ip.verify_checksum() || ip.ttl() <= 1 {
                    return None;
                }
                let gw = self.networks[usize::from(route.network)].gateway;
                let mac = self.neighbours.lookup(gw.domain.network, route.hop, now)?;
                (gw.domain, mac)
            }
        };
        let changes = self.fdb.changes();
        if flow.out_mac != out_mac || flow.fdb_changes != changes || now > flow.out_until {
            let until = self.behind(now, out_domain, out_mac, flow.egress)?;
            flow.out_mac = out_mac;
            flow.fdb_changes = changes;
            flow.out_until = until;
            self.fast.insert(*key, flow);
        }
        Some((out_domain, out_mac))
    }

    /// Until when the FDB's word that `mac` is behind `port` in `domain`
    /// holds (see `Fdb::lookup_until`); `None` when it is not there. On a
    /// vxlan port, the VTEP behind it is the FDB's to say per frame
    /// (`address_tunnels`).
    fn behind(
        &self,
        now: Timestamp,
        domain: Domain,
        mac: MacAddr,
        port: PortId,
    ) -> Option<Timestamp> {
        let (at, until) = self.fdb.lookup_until(domain, mac, now)?;
        (at.port == port).then_some(until)
    }

    /// Lets the exact-match cache hold the flow of a frame the full way
    /// bridged or routed to one port, when the hooks allow
    /// (`Firewall::cached_flow`). `parsed` is the frame as the hooks left
    /// it (translated), `routed` by the gateway `gw`.
    #[allow(clippy::too_many_arguments)]
    fn remember(
        &mut self,
        now: Timestamp,
        domain: Domain,
        routed: Option<&Gateway>,
        parsed: &Parsed,
        frame: &[u8],
        key: fast_path::Key,
        pass: &Pass,
        out: &Output,
    ) {
        let Some(conn) = self.firewall.cached_flow(pass) else {
            return;
        };
        let [Emit {
            port: egress,
            payload: Payload::Ingress,
            tunnel: None,
            ..
        }] = out.emits()
        else {
            return;
        };
        let egress = *egress;
        let (route, out_domain) = match (routed, parsed.l3) {
            (None, _) => (None, domain),
            (Some(gw), L3::Ipv4 { dst, .. }) => {
                let Some(route) = self.next_hop(gw, dst) else {
                    return;
                };
                let gw = self.networks[usize::from(route.network)].gateway;
                (Some(route), gw.domain)
            }
            (Some(_), _) => return,
        };
        // What the frame left for: a routed one has its next hop's MAC now.
        let Some(out_mac) = MacAddr::from_slice(frame) else {
            return;
        };
        let Some(out_until) = self.behind(now, out_domain, out_mac, egress) else {
            return;
        };
        let flow = fast_path::Flow {
            conn,
            egress,
            route,
            out_mac,
            fdb_changes: self.fdb.changes(),
            out_until,
        };
        self.fast.insert(key, flow);
    }

    /// ARP at the gateway: learns the sender, answers for the gateway's
    /// address. `None` when the frame is to be bridged on.
    fn arp(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        arp: &ArpRepr,
        dst: MacAddr,
        out: &mut Output,
    ) -> Option<Verdict> {
        let net = gw.domain.network;
        // A tap port is one endpoint: it may vouch for its own address only.
        let port = &self.ports[ingress.index()];
        let may_claim = port.kind != PortKind::Tap || port.ip == Some(arp.sender_ip);
        if may_claim
            && self.networks[usize::from(net)]
                .subnet
                .contains(arp.sender_ip)
        {
            self.neighbours
                .learn(net, arp.sender_ip, arp.sender_mac, now);
        }
        // ipvlan L3: the switch answers by side (see `parent`), never for
        // the gateway address, which is a router on the segment.
        let answers = match &self.networks[usize::from(net)].parent {
            Some(p) => p.answers_arp(ingress, arp),
            None => gw.answers_arp(arp),
        };
        if answers {
            let responder = Gateway {
                ip: arp.target_ip,
                ..*gw
            };
            self.reply(now, ingress, gw, gateway::ARP_REPLY_LEN, out, true, |b| {
                gateway::emit_arp_reply(b, &responder, arp)
            });
            return Some(Verdict::Local);
        }
        // Replies to the gateway's own requests end here, already learned.
        (dst == gw.mac).then_some(Verdict::Local)
    }

    /// An IP packet addressed to the gateway's MAC (or a DHCP broadcast):
    /// for one of the switch's own addresses (INPUT), or routed to another
    /// network.
    #[allow(clippy::too_many_arguments)]
    fn at_gateway(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &mut [u8],
        size: Size,
        pass: Option<&mut Pass>,
        out: &mut Output,
    ) -> Verdict {
        let L3::Ipv4 { dst, protocol, .. } = parsed.l3 else {
            return Verdict::Dropped(DropReason::NotForUs);
        };
        let ours = |n: &&Network| n.gateway.ip == dst && n.parent.is_none();
        let local = match self.networks.iter().find(ours) {
            Some(n) => n.gateway.ip,
            None if dst.is_broadcast() => gw.ip,
            None => return self.route(now, gw, ingress, parsed, frame, size, pass, out),
        };
        // Answered from the address asked, in the name of the ingress side.
        let responder = Gateway { ip: local, ..*gw };
        if let Some(pass) = pass {
            if let Err(refusal) = self.firewall.input(now, pass) {
                return self.refuse(now, refusal, gw, ingress, parsed, frame, out);
            }
        }
        match protocol {
            protocol::ICMP => self.echo(now, &responder, ingress, parsed, frame, out),
            protocol::UDP => self.udp_service(now, &responder, ingress, parsed, frame, out),
            protocol::TCP => self.tcp_service(now, &responder, ingress, parsed, frame, out),
            _ => Verdict::Dropped(DropReason::NotForUs),
        }
    }

    /// DHCP and DNS at the gateway; any other UDP port is closed and says
    /// so with ICMP port unreachable, as a host's stack would.
    fn udp_service(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &[u8],
        out: &mut Output,
    ) -> Verdict {
        let (L3::Ipv4 { src, total_len, .. }, L4::Udp { src_port, dst_port }) =
            (parsed.l3, parsed.l4)
        else {
            return Verdict::Dropped(DropReason::NotForUs);
        };
        let end = (parsed.l3_offset + total_len).min(frame.len());
        let Some(payload) = frame.get(parsed.l4_offset + 8..end) else {
            return Verdict::Dropped(DropReason::Malformed);
        };
        let network = gw.domain.network;
        let (dst_mac, dst_ip, reply_port, answer) = match dst_port {
            services::DHCP_SERVER_PORT => {
                let Some(r) = self.services.dhcp(now, network, parsed.src, payload) else {
                    return Verdict::Local;
                };
                let (mac, ip, port) = match r.to {
                    Destination::Broadcast => (
                        MacAddr::BROADCAST,
                        Ipv4Addr::BROADCAST,
                        services::DHCP_CLIENT_PORT,
                    ),
                    Destination::Unicast { ip, mac } => (mac, ip, services::DHCP_CLIENT_PORT),
                    Destination::Relay { ip, mac } => (mac, ip, services::DHCP_SERVER_PORT),
                };
                (mac, ip, port, r.payload)
            }
            services::DNS_PORT => {
                let asker = Asker {
                    port: ingress,
                    network,
                    mac: parsed.src,
                    ip: src,
                    udp_port: src_port,
                    tcp: None,
                };
                match self.services.dns(now, asker, payload) {
                    Dns::Reply(answer) => (parsed.src, src, src_port, answer),
                    Dns::Forward { upstream, query } => {
                        self.forward_dns(now, upstream, &query, out);
                        return Verdict::Local;
                    }
                    Dns::Nothing => return Verdict::Local,
                }
            }
            services::FORWARD_PORT if self.uplink().is_some_and(|u| u.ip == gw.ip) => {
                if let Some((asker, answer)) = self.services.dns_answer(payload) {
                    self.answer_forwarded(now, asker, &answer, out);
                }
                return Verdict::Local;
            }
            _ => {
                let error = IcmpError::Unreachable {
                    code: icmpv4::code::PORT_UNREACHABLE,
                };
                self.icmp_error(now, gw, ingress, parsed, frame, error, out);
                return Verdict::Dropped(DropReason::NotForUs);
            }
        };
        let reply = Reply {
            dst_mac,
            dst_ip,
            body: Body::Udp(UdpRepr {
                src_port: dst_port,
                dst_port: reply_port,
                payload: &answer,
            }),
        };
        self.reply(now, ingress, gw, reply.frame_len(), out, true, |b| {
            reply.emit(b, gw)
        });
        Verdict::Local
    }

    /// DNS over TCP at the gateway (`tcp_responder` keeps the connection);
    /// any other port is closed and says so with a reset.
    fn tcp_service(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &[u8],
        out: &mut Output,
    ) -> Verdict {
        let (
            L3::Ipv4 { src, total_len, .. },
            L4::Tcp {
                src_port, dst_port, ..
            },
        ) = (parsed.l3, parsed.l4)
        else {
            return Verdict::Dropped(DropReason::NotForUs);
        };
        let end = (parsed.l3_offset + total_len).min(frame.len());
        let Some(Ok(tcp)) = frame.get(parsed.l4_offset..end).map(TcpPacket::new_checked) else {
            return Verdict::Dropped(DropReason::Malformed);
        };
        if dst_port != services::DNS_PORT {
            self.tcp_reset(now, gw, ingress, parsed, out);
            return Verdict::Dropped(DropReason::NotForUs);
        }
        let key = ConnKey {
            network: gw.domain.network,
            client: (src, src_port),
            server: (gw.ip, dst_port),
        };
        let seg = Segment {
            flags: tcp.flags(),
            seq: tcp.seq_number(),
            ack: tcp.ack_number(),
            payload: tcp.payload(),
        };
        let asker = Asker {
            port: ingress,
            network: gw.domain.network,
            mac: parsed.src,
            ip: src,
            udp_port: src_port,
            tcp: Some(key),
        };
        let (handled, forward) = self.services.dns_tcp(now, asker, key, seg);
        match handled {
            Handled::Reset => self.tcp_reset(now, gw, ingress, parsed, out),
            Handled::Send(segments) => {
                self.send_segments(now, gw, &asker, &segments, out);
            }
        }
        for f in forward {
            if let Dns::Forward { upstream, query } = f {
                self.forward_dns(now, upstream, &query, out);
            }
        }
        Verdict::Local
    }

    /// Sends the gateway's TCP segments to `asker` on its connection.
    fn send_segments(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        asker: &Asker,
        segments: &[tcp_responder::Reply],
        out: &mut Output,
    ) {
        let Some(key) = asker.tcp else {
            return;
        };
        for s in segments {
            let reply = Reply {
                dst_mac: asker.mac,
                dst_ip: asker.ip,
                body: Body::Tcp(TcpRepr {
                    src_port: key.server.1,
                    dst_port: key.client.1,
                    seq_number: s.seq,
                    ack_number: s.ack,
                    flags: s.flags,
                    window: s.window,
                    payload: &s.payload,
                }),
            };
            self.reply(now, asker.port, gw, reply.frame_len(), out, true, |b| {
                reply.emit(b, gw)
            });
        }
    }

    /// The uplink's gateway side: the switch's address there, and its domain.
    fn uplink(&self) -> Option<Gateway> {
        self.default_gateway?;
        self.networks.last().map(|n| n.gateway)
    }

    /// Sends a query on to the upstream resolver from the uplink address.
    fn forward_dns(&mut self, now: Timestamp, upstream: Ipv4Addr, query: &[u8], out: &mut Output) {
        let Some(up) = self.uplink() else {
            return;
        };
        let net = usize::from(up.domain.network);
        let hop = match self.networks[net].subnet.contains(upstream) {
            true => upstream,
            false => self.default_gateway.unwrap_or(upstream),
        };
        let Some(mac) = self.neighbours.lookup(up.domain.network, hop, now) else {
            // The client asks again; by then the router is known.
            self.arp_request(&up, hop, out);
            return;
        };
        let Some(&port) = self.networks[net].members.first() else {
            return;
        };
        self.firewall
            .note(|| format!("dns: forwarded to {upstream} from {}", up.ip));
        let reply = Reply {
            dst_mac: mac,
            dst_ip: upstream,
            body: Body::Udp(UdpRepr {
                src_port: services::FORWARD_PORT,
                dst_port: services::DNS_PORT,
                payload: query,
            }),
        };
        self.reply(now, port, &up, reply.frame_len(), out, true, |b| {
            reply.emit(b, &up)
        });
    }

    /// Hands an upstream's answer to whoever asked, from their gateway.
    fn answer_forwarded(&mut self, now: Timestamp, asker: Asker, answer: &[u8], out: &mut Output) {
        let Some(gw) = self
            .networks
            .get(usize::from(asker.network))
            .map(|n| n.gateway)
        else {
            return;
        };
        if let Some(key) = asker.tcp {
            let gw = Gateway {
                ip: key.server.0,
                ..gw
            };
            let segments = self.services.tcp_send(key, answer);
            self.send_segments(now, &gw, &asker, &segments, out);
            return;
        }
        let reply = Reply {
            dst_mac: asker.mac,
            dst_ip: asker.ip,
            body: Body::Udp(UdpRepr {
                src_port: services::DNS_PORT,
                dst_port: asker.udp_port,
                payload: answer,
            }),
        };
        self.reply(now, asker.port, &gw, reply.frame_len(), out, true, |b| {
            reply.emit(b, &gw)
        });
    }

    fn echo(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &[u8],
        out: &mut Output,
    ) -> Verdict {
        let L3::Ipv4 { src, .. } = parsed.l3 else {
            return Verdict::Dropped(DropReason::NotForUs);
        };
        let ip = match Ipv4Packet::new_checked(&frame[parsed.l3_offset..]) {
            Ok(ip) if ip.verify_checksum() => ip,
            _ => return Verdict::Dropped(DropReason::Malformed),
        };
        let icmp = match Icmpv4Packet::new_checked(ip.payload()) {
            Ok(icmp) if icmp.verify_checksum() => icmp,
            _ => return Verdict::Dropped(DropReason::Malformed),
        };
        if icmp.msg_type() != msg::ECHO_REQUEST || is_unspecified_or_broadcast(src) {
            return Verdict::Dropped(DropReason::NotForUs);
        }
        let reply = Reply {
            dst_mac: parsed.src,
            dst_ip: src,
            body: Body::Icmp(Icmpv4Repr::EchoReply {
                ident: icmp.echo_ident(),
                seq_no: icmp.echo_seq_no(),
                data: icmp.data(),
            }),
        };
        self.reply(now, ingress, gw, reply.frame_len(), out, true, |b| {
            reply.emit(b, gw)
        });
        Verdict::Local
    }

    /// Where a packet the gateway `gw` routes towards `dst` leaves, and the
    /// neighbour it is handed to; `None` when nowhere.
    fn next_hop(&self, gw: &Gateway, dst: Ipv4Addr) -> Option<fast_path::Route> {
        let in_net = usize::from(gw.domain.network);
        // ipvlan L3 routes between its endpoints and its parent only: off
        // the subnet, by the network's gateway, a router on the segment.
        let (network, hop) = match self.networks[in_net].parent.as_ref() {
            Some(p) if p.routes() => match self.networks[in_net].subnet.contains(dst) {
                true => (in_net, dst),
                false => (in_net, self.networks[in_net].gateway.ip),
            },
            _ => {
                // A network with a parent is the segment's, not reached by routing.
                let held = self
                    .networks
                    .iter()
                    .position(|n| n.subnet.contains(dst) && n.parent.is_none());
                // Anything else goes out of the uplink, to its router.
                let uplink = self
                    .networks
                    .len()
                    .checked_sub(1)
                    .filter(|_| self.default_gateway.is_some());
                let network = held.or(uplink)?;
                let hop = match (held, self.default_gateway) {
                    (None, Some(router)) => router,
                    _ => dst,
                };
                (network, hop)
            }
        };
        Some(fast_path::Route {
            network: network as u16,
            hop,
        })
    }

    /// Routes an IPv4 packet addressed to the gateway's MAC onward to the
    /// network that holds its destination, as Linux's ip_forward does: TTL
    /// checked and decremented before the FORWARD hook, MACs rewritten for
    /// the next hop.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &mut [u8],
        size: Size,
        mut pass: Option<&mut Pass>,
        out: &mut Output,
    ) -> Verdict {
        let L3::Ipv4 { dst, ttl, .. } = parsed.l3 else {
            return Verdict::Dropped(DropReason::NotForUs);
        };
        match Ipv4Packet::new_checked(&frame[parsed.l3_offset..]) {
            Ok(ip) if ip.verify_checksum() => {}
            _ => return Verdict::Dropped(DropReason::Malformed),
        }
        let Some(fast_path::Route { network, hop }) = self.next_hop(gw, dst) else {
            self.firewall
                .note(|| format!("route: no network holds {dst} and there is no uplink"));
            return Verdict::Dropped(DropReason::NoRoute);
        };
        let egress_net = usize::from(network);
        if ttl <= 1 {
            self.icmp_error(now, gw, ingress, parsed, frame, IcmpError::TtlExceeded, out);
            return Verdict::Dropped(DropReason::TtlExceeded);
        }
        let egress_gw = self.networks[egress_net].gateway;
        let Some(next_hop) = self.neighbours.lookup(egress_gw.domain.network, hop, now) else {
            self.firewall
                .note(|| format!("route: {hop} not resolved yet; the gateway asks with ARP"));
            let asker = match &self.networks[egress_net].parent {
                // No address of its own there: it asks as the sender, as
                // Linux picks the packet's source for ARP.
                Some(_) => Gateway {
                    ip: match parsed.l3 {
                        L3::Ipv4 { src, .. } => src,
                        _ => egress_gw.ip,
                    },
                    ..egress_gw
                },
                None => egress_gw,
            };
            self.arp_request(&asker, hop, out);
            return Verdict::Dropped(DropReason::NeighbourUnresolved);
        };
        self.firewall.note(|| {
            let net = &self.networks[egress_net].name;
            format!(
                "route: {dst} via network {net}, next hop {hop} ({next_hop}), ttl {ttl} -> {}",
                ttl - 1
            )
        });
        if let Some(pass) = pass.as_deref_mut() {
            pass.info.ttl = ttl - 1;
        }
        let domain = egress_gw.domain;
        let in_tag = parsed.vlan();
        let verdict = match self.fdb.lookup(domain, next_hop, now) {
            Some(at) => {
                let sent = self.filter_send(now, at.port, domain, in_tag, size, pass, out);
                match sent {
                    Ok(true) => Verdict::Forwarded(1),
                    Ok(false) => Verdict::Dropped(DropReason::NoEgress),
                    Err(refusal) => {
                        return self.refuse(now, refusal, gw, ingress, parsed, frame, out)
                    }
                }
            }
            None => match self.flood(now, domain, ingress, in_tag, size, pass, out) {
                Ok(v) => v,
                Err(refusal) => return self.refuse(now, refusal, gw, ingress, parsed, frame, out),
            },
        };
        if let Verdict::Forwarded(_) = verdict {
            frame[0..6].copy_from_slice(&next_hop.0);
            frame[6..12].copy_from_slice(&egress_gw.mac.0);
            if let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[parsed.l3_offset..]) {
                ip.decrement_ttl();
            }
        }
        verdict
    }

    /// Switching within the L2 domain: to the port the destination was
    /// learned on, or flooded; FORWARD decides per egress port.
    #[allow(clippy::too_many_arguments)]
    fn bridge(
        &mut self,
        now: Timestamp,
        domain: Domain,
        ingress: PortId,
        parsed: &Parsed,
        frame: &mut [u8],
        size: Size,
        pass: Option<&mut Pass>,
        out: &mut Output,
    ) -> Verdict {
        let in_tag = parsed.vlan();
        let found = self.fdb.lookup(domain, parsed.dst, now);
        self.firewall.note(|| match found {
            Some(at) if parsed.dst.is_unicast() => {
                let port = &self.ports[at.port.index()].name;
                match at.vtep {
                    Some(vtep) => format!("fdb: {} on port {port} behind VTEP {vtep}", parsed.dst),
                    None => format!("fdb: {} on port {port}", parsed.dst),
                }
            }
            _ => format!(
                "fdb: {} unknown or not unicast: flooding network {} vlan {}",
                parsed.dst,
                self.networks[usize::from(domain.network)].name,
                domain.vlan
            ),
        });
        let sent = match found {
            Some(at) if parsed.dst.is_unicast() => {
                if at.port == ingress {
                    return Verdict::Dropped(DropReason::SameSegment);
                }
                self.filter_send(now, at.port, domain, in_tag, size, pass, out)
                    .map(|sent| match sent {
                        true => Verdict::Forwarded(1),
                        false => Verdict::Dropped(DropReason::NoEgress),
                    })
            }
            _ => self.flood(now, domain, ingress, in_tag, size, pass, out),
        };
        match sent {
            Ok(v) => v,
            Err(refusal) => {
                let gw = self.networks[usize::from(domain.network)].gateway;
                self.refuse(now, refusal, &gw, ingress, parsed, frame, out)
            }
        }
    }

    /// FORWARD towards `port` (for IPv4), then the send. `Ok(false)` when
    /// the port does not carry the VLAN.
    #[allow(clippy::too_many_arguments)]
    fn filter_send(
        &mut self,
        now: Timestamp,
        port: PortId,
        domain: Domain,
        in_tag: Option<u16>,
        size: Size,
        pass: Option<&mut Pass>,
        out: &mut Output,
    ) -> Result<bool, Refusal> {
        let Some(p) = self.ports.get(port.index()) else {
            return Ok(false);
        };
        if p.vlans.egress(domain.vlan).is_none() {
            return Ok(false);
        }
        if let Some(mtu) = self.tunnel_mtu_exceeded(port, size) {
            self.firewall.note(|| {
                format!(
                    "mtu: a {}-byte packet does not fit port {} (mtu {mtu})",
                    size.packet, p.name
                )
            });
            return Err(Refusal::TooBig { mtu });
        }
        if let Some(pass) = pass {
            let oif = Iface {
                port: port.0,
                network: p.network,
            };
            self.firewall
                .note(|| format!("forward: towards port {}", p.name));
            self.firewall.forward(now, pass, oif)?;
        }
        Ok(self.send(port, domain.vlan, in_tag, size.len, out))
    }

    /// The MTU of `port`'s tunnel when the packet (or each segment of a
    /// GSO frame) is larger: it would not fit the outer datagram.
    fn tunnel_mtu_exceeded(&self, port: PortId, size: Size) -> Option<u16> {
        let mtu = self.ports.get(port.index())?.tunnel.as_ref()?.mtu;
        (size.packet > usize::from(mtu)).then_some(mtu)
    }

    /// Drops a refused packet; a REJECT answers its sender first.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        now: Timestamp,
        refusal: Refusal,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &[u8],
        out: &mut Output,
    ) -> Verdict {
        let with = match refusal {
            Refusal::Drop(reason) => return Verdict::Dropped(reason),
            Refusal::Reject(with) => with,
            Refusal::TooBig { mtu } => {
                let df = Ipv4Packet::new_checked(&frame[parsed.l3_offset..])
                    .is_ok_and(|ip| ip.dont_frag());
                if df {
                    self.firewall.note(|| {
                        format!("mtu: answering the sender: fragmentation needed, mtu {mtu}")
                    });
                    let error = IcmpError::FragNeeded { mtu };
                    self.icmp_error(now, gw, ingress, parsed, frame, error, out);
                }
                return Verdict::Dropped(DropReason::TooBig);
            }
        };
        self.firewall
            .note(|| format!("reject: answering the sender with {with}"));
        match reject::icmp_code(with) {
            Some(code) => {
                let error = IcmpError::Unreachable { code };
                self.icmp_error(now, gw, ingress, parsed, frame, error, out)
            }
            None => self.tcp_reset(now, gw, ingress, parsed, out),
        }
        Verdict::Dropped(DropReason::Rejected)
    }

    /// Answers a refused TCP segment with a reset from its destination.
    fn tcp_reset(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        out: &mut Output,
    ) {
        let (
            L3::Ipv4 { src, dst, .. },
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
                ack,
                payload_len,
                ..
            },
        ) = (parsed.l3, parsed.l4)
        else {
            // The rule parser accepts tcp-reset only with -p tcp.
            return;
        };
        let seg = Refused {
            src_mac: parsed.src,
            dst_mac: parsed.dst,
            src,
            dst,
            src_port,
            dst_port,
            flags,
            seq,
            ack,
            payload_len,
        };
        if let Some(rst) = reject::tcp_reset(&seg) {
            self.reply(now, ingress, gw, TcpResetFrame::LEN, out, false, |b| {
                rst.emit(b)
            });
        }
    }

    /// Broadcasts "who has `target`" from the gateway into its domain.
    fn arp_request(&mut self, gw: &Gateway, target: Ipv4Addr, out: &mut Output) {
        let req = ArpRepr {
            op: ArpOp::Request,
            sender_mac: gw.mac,
            sender_ip: gw.ip,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        };
        let net = usize::from(gw.domain.network);
        // ipvlan L3 endpoints are known; only the segment is asked.
        let only = self.networks[net].parent.as_ref().map(|p| p.port);
        let mut built = None;
        for i in 0..self.networks[net].members.len() {
            let port = self.networks[net].members[i];
            if only.is_some_and(|o| o != port) {
                continue;
            }
            let p = &mut self.ports[port.index()];
            let tag = match p.vlans.egress(gw.domain.vlan) {
                Some(Egress::Tagged(v)) => TagEdit::Push(v),
                Some(Egress::Untagged) => TagEdit::Keep,
                None => continue,
            };
            let len = ethernet::HEADER_LEN + 28;
            match &built {
                Some(range) => out.again(port, tag, std::ops::Range::clone(range)),
                None => {
                    built = Some(out.build(port, tag, len, |b| {
                        let (eth, arp) = b.split_at_mut(ethernet::HEADER_LEN);
                        EthernetRepr {
                            dst: MacAddr::BROADCAST,
                            src: gw.mac,
                            ethertype: ethertype::ARP,
                        }
                        .emit(eth);
                        req.emit(arp);
                    }))
                }
            }
            p.stats.tx(len + if tag == TagEdit::Keep { 0 } else { 4 });
        }
    }

    /// Answers the sender of `frame` with an ICMP error quoting it, unless
    /// RFC 1122 forbids: never about an ICMP error, a non-first fragment,
    /// or a packet to or from a broadcast or multicast address.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &[u8],
        error: IcmpError,
        out: &mut Output,
    ) {
        let L3::Ipv4 {
            src,
            dst,
            first_fragment,
            ..
        } = parsed.l3
        else {
            return;
        };
        let about_error = matches!(parsed.l4, L4::Icmp { msg_type, .. }
            if !matches!(msg_type, msg::ECHO_REQUEST | msg::ECHO_REPLY));
        if about_error
            || !first_fragment
            || !parsed.dst.is_unicast()
            || is_unspecified_or_broadcast(src)
            || src.is_multicast()
            || is_unspecified_or_broadcast(dst)
            || dst.is_multicast()
        {
            return;
        }
        let invoking = icmpv4::error_quote(&frame[parsed.l3_offset..]);
        let icmp = match error {
            IcmpError::TtlExceeded => Icmpv4Repr::TimeExceeded {
                code: icmpv4::code::TTL_EXCEEDED,
                invoking,
            },
            IcmpError::Unreachable { code } => Icmpv4Repr::DstUnreachable { code, invoking },
            IcmpError::FragNeeded { mtu } => Icmpv4Repr::FragNeeded { mtu, invoking },
        };
        let reply = Reply {
            dst_mac: parsed.src,
            dst_ip: src,
            body: Body::Icmp(icmp),
        };
        self.reply(now, ingress, gw, reply.frame_len(), out, false, |b| {
            reply.emit(b, gw)
        });
    }

    /// Sends a frame the gateway built back out of `port`, tagged as the
    /// gateway's VLAN leaves that port, once the OUTPUT hooks allow it;
    /// `tracked` as for `Firewall::local_out`.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        now: Timestamp,
        port: PortId,
        gw: &Gateway,
        len: usize,
        out: &mut Output,
        tracked: bool,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let p = &self.ports[port.index()];
        let tag = match p.vlans.egress(gw.domain.vlan) {
            Some(Egress::Tagged(v)) => TagEdit::Push(v),
            Some(Egress::Untagged) | None => TagEdit::Keep,
        };
        let oif = Iface {
            port: port.0,
            network: p.network,
        };
        let range = out.build(port, tag, len, fill);
        if self
            .firewall
            .local_out(now, oif, out.built(range.clone()), tracked)
            .is_err()
        {
            out.unbuild(range);
            return;
        }
        self.ports[port.index()]
            .stats
            .tx(len + if tag == TagEdit::Keep { 0 } else { 4 });
    }

    /// Queues the ingress frame for `port` if it carries `vlan`.
    fn send(
        &mut self,
        port: PortId,
        vlan: u16,
        in_tag: Option<u16>,
        len: usize,
        out: &mut Output,
    ) -> bool {
        let p = &mut self.ports[port.index()];
        let Some(egress) = p.vlans.egress(vlan) else {
            return false;
        };
        let edit = tag_edit(in_tag, egress);
        out.forward(port, edit);
        p.stats.tx(match edit {
            TagEdit::Push(_) => len + 4,
            TagEdit::Pop => len - 4,
            TagEdit::Keep | TagEdit::Retag(_) => len,
        });
        true
    }

    /// Broadcast, multicast and unknown unicast go to every other port of the
    /// same L2 domain that FORWARD lets them reach, and nowhere else. When
    /// no port took the frame, the first refusal is the answer.
    #[allow(clippy::too_many_arguments)]
    fn flood(
        &mut self,
        now: Timestamp,
        domain: Domain,
        ingress: PortId,
        in_tag: Option<u16>,
        size: Size,
        mut pass: Option<&mut Pass>,
        out: &mut Output,
    ) -> Result<Verdict, Refusal> {
        let net = usize::from(domain.network);
        let mut sent = 0;
        let mut refused = None;
        for i in 0..self.networks[net].members.len() {
            let p = self.networks[net].members[i];
            if p == ingress {
                continue;
            }
            match self.filter_send(now, p, domain, in_tag, size, pass.as_deref_mut(), out) {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(r) => {
                    refused.get_or_insert(r);
                }
            }
        }
        match (sent, refused) {
            (0, Some(r)) => Err(r),
            (0, None) => Ok(Verdict::Dropped(DropReason::NoEgress)),
            (n, _) => Ok(Verdict::Forwarded(n)),
        }
    }
}

/// The ICMP errors the switch answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IcmpError {
    TtlExceeded,
    Unreachable { code: u8 },
    FragNeeded { mtu: u16 },
}

/// Writes what mangle targets changed (TTL, TOS) into the IPv4 header.
fn apply_mangle(pass: &Pass, parsed: &Parsed, frame: &mut [u8]) {
    if pass.meta.ttl.is_none() && pass.meta.tos.is_none() {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[parsed.l3_offset..]) else {
        return;
    };
    if let Some(ttl) = pass.meta.ttl {
        ip.set_ttl_update_checksum(ttl);
    }
    if let Some(tos) = pass.meta.tos {
        ip.set_dscp_ecn_update_checksum(tos);
    }
}

/// The 802.1Q edit that takes a frame that came in with `in_tag` out as `egress`.
fn tag_edit(in_tag: Option<u16>, egress: Egress) -> TagEdit {
    match (in_tag, egress) {
        (None, Egress::Untagged) => TagEdit::Keep,
        (None, Egress::Tagged(v)) => TagEdit::Push(v),
        (Some(_), Egress::Untagged) => TagEdit::Pop,
        (Some(t), Egress::Tagged(v)) if t == v => TagEdit::Keep,
        (Some(_), Egress::Tagged(v)) => TagEdit::Retag(v),
    }
}

/// A DHCP client's broadcast to the servers of its segment.
fn is_dhcp_broadcast(parsed: &Parsed) -> bool {
    parsed.dst == MacAddr::BROADCAST
        && matches!(parsed.l3, L3::Ipv4 { dst, .. } if dst.is_broadcast())
        && matches!(
            parsed.l4,
            L4::Udp {
                dst_port: services::DHCP_SERVER_PORT,
                ..
            }
        )
}

fn is_unspecified_or_broadcast(ip: Ipv4Addr) -> bool {
    ip.is_unspecified() || ip.is_broadcast()
}
