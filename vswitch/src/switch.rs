//! The pipeline: `Switch::process` takes one frame, the port it came in by and
//! the time, and decides what leaves where. It makes no system calls and reads
//! no clock, so tests, traces and benchmarks run the very code the datapath
//! runs.
//!
//! Order of work, top to bottom in `process`:
//! parse -> VLAN classification -> source check and learning -> the gateway
//! (ARP, ICMP echo, routing between networks) -> FDB lookup -> unicast or
//! flood within the L2 domain.

use std::net::Ipv4Addr;
use std::time::Duration;

use packet::arp::{ArpOp, ArpRepr};
use packet::ethernet::{self, ethertype, EthernetRepr};
use packet::icmpv4::{self, msg, Icmpv4Packet, Icmpv4Repr};
use packet::ipv4::{protocol, Ipv4Packet};
use packet::{MacAddr, Parsed, L3};

use crate::config::{Config, Ipv4Net};
use crate::fdb::{Domain, Fdb, Learned};
use crate::gateway::{self, Gateway, Reply};
use crate::neigh::Neighbours;
use crate::output::{Output, TagEdit};
use crate::port::{Egress, Port, PortId, VlanMembership};
use crate::stats::DropReason;
use crate::time::Timestamp;

/// What happened to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sent on to this many ports.
    Forwarded(usize),
    /// Consumed by the switch itself, which may have answered.
    Local,
    Dropped(DropReason),
}

pub struct Network {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Gateway,
    /// Ports attached to this network, in configuration order.
    pub members: Vec<PortId>,
}

pub struct Switch {
    ports: Vec<Port>,
    networks: Vec<Network>,
    fdb: Fdb,
    neighbours: Neighbours,
}

impl Switch {
    /// Builds the pipeline for a validated configuration.
    pub fn new(config: &Config) -> Switch {
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
                        vlan: n.vlan.map_or(0, |v| v.get()),
                    },
                },
                members: Vec::new(),
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
                    stats: Default::default(),
                }
            })
            .collect::<Vec<_>>();
        let mut fdb = Fdb::new(
            config.switch.fdb_max,
            Duration::from_secs(config.switch.fdb_aging_secs),
        );
        for s in &config.fdb {
            if let Some(i) = ports.iter().position(|p| p.name == s.port) {
                let port: &Port = &ports[i];
                let vlan = s.vlan.map_or(port.vlans.access, |v| v.get());
                let domain = Domain {
                    network: port.network,
                    vlan,
                };
                fdb.add_static(domain, s.mac, PortId(i as u16));
            }
        }
        let mut neighbours = Neighbours::default();
        for p in &ports {
            if let Some(ip) = p.ip.filter(|_| !p.mac.is_zero()) {
                neighbours.add_permanent(p.network, ip, p.mac);
            }
        }
        Switch {
            ports,
            networks,
            fdb,
            neighbours,
        }
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

    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    /// Housekeeping that depends only on time: FDB and neighbour aging.
    pub fn expire(&mut self, now: Timestamp) {
        self.fdb.expire(now);
        self.neighbours.expire(now);
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
        let Some(port) = self.ports.get_mut(ingress.index()) else {
            return Verdict::Dropped(DropReason::NoEgress);
        };
        port.stats.rx(frame.len());
        let verdict = self.decide(now, ingress, frame, out);
        if let Verdict::Dropped(reason) = verdict {
            self.ports[ingress.index()].stats.drop(reason);
        }
        verdict
    }

    fn decide(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &mut [u8],
        out: &mut Output,
    ) -> Verdict {
        let parsed = match Parsed::parse(frame) {
            Ok(p) => p,
            Err(_) => return Verdict::Dropped(DropReason::Malformed),
        };
        let port = &self.ports[ingress.index()];
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
        if self.fdb.learn(domain, parsed.src, ingress, now) == Learned::Full {
            return Verdict::Dropped(DropReason::FdbFull);
        }

        let gw = self.networks[usize::from(domain.network)].gateway;
        if gw.domain == domain {
            if let Some(v) = self.for_gateway(now, &gw, ingress, &parsed, frame, out) {
                return v;
            }
        }

        if parsed.dst.is_unicast() {
            if let Some(dst) = self.fdb.lookup(domain, parsed.dst, now) {
                if dst == ingress {
                    return Verdict::Dropped(DropReason::SameSegment);
                }
                return match self.send(dst, vlan, in_tag, frame.len(), out) {
                    true => Verdict::Forwarded(1),
                    false => Verdict::Dropped(DropReason::NoEgress),
                };
            }
        }
        self.flood(domain, ingress, in_tag, frame.len(), out)
    }

    /// Frames the gateway consumes: ARP for its address, anything to its MAC.
    /// `None` when the frame is not for the gateway and switching goes on.
    fn for_gateway(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &mut [u8],
        out: &mut Output,
    ) -> Option<Verdict> {
        if let L3::Arp(arp) = &parsed.l3 {
            let net = gw.domain.network;
            if self.networks[usize::from(net)]
                .subnet
                .contains(arp.sender_ip)
            {
                self.neighbours
                    .learn(net, arp.sender_ip, arp.sender_mac, now);
            }
            if gw.answers_arp(arp) {
                self.reply(ingress, gw, gateway::ARP_REPLY_LEN, out, |b| {
                    gateway::emit_arp_reply(b, gw, arp)
                });
                return Some(Verdict::Local);
            }
        }
        if parsed.dst != gw.mac {
            return None;
        }
        let L3::Ipv4 { dst, protocol, .. } = parsed.l3 else {
            // ARP replies to our own requests end here, already learned.
            return Some(match parsed.l3 {
                L3::Arp(_) => Verdict::Local,
                _ => Verdict::Dropped(DropReason::NotForUs),
            });
        };
        if dst != gw.ip {
            return Some(self.route(now, gw, ingress, parsed, frame, out));
        }
        Some(match protocol {
            protocol::ICMP => self.echo(gw, ingress, parsed, frame, out),
            _ => Verdict::Dropped(DropReason::NotForUs),
        })
    }

    fn echo(
        &mut self,
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
            icmp: Icmpv4Repr::EchoReply {
                ident: icmp.echo_ident(),
                seq_no: icmp.echo_seq_no(),
                data: icmp.data(),
            },
        };
        self.reply(ingress, gw, reply.frame_len(), out, |b| reply.emit(b, gw));
        Verdict::Local
    }

    /// Routes an IPv4 packet addressed to the gateway's MAC onward to the
    /// network that holds its destination, as Linux's ip_forward does: TTL
    /// checked before the FORWARD decision, decremented after it, MACs
    /// rewritten for the next hop.
    fn route(
        &mut self,
        now: Timestamp,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &mut [u8],
        out: &mut Output,
    ) -> Verdict {
        let L3::Ipv4 { dst, ttl, .. } = parsed.l3 else {
            return Verdict::Dropped(DropReason::NotForUs);
        };
        match Ipv4Packet::new_checked(&frame[parsed.l3_offset..]) {
            Ok(ip) if ip.verify_checksum() => {}
            _ => return Verdict::Dropped(DropReason::Malformed),
        }
        let Some(egress_net) = self.networks.iter().position(|n| n.subnet.contains(dst)) else {
            return Verdict::Dropped(DropReason::NoRoute);
        };
        if ttl <= 1 {
            self.icmp_error(gw, ingress, parsed, frame, msg::TIME_EXCEEDED, 0, out);
            return Verdict::Dropped(DropReason::TtlExceeded);
        }
        if !self.forward_allowed(gw.domain.network, egress_net as u16) {
            return Verdict::Dropped(DropReason::Isolated);
        }
        let egress_gw = self.networks[egress_net].gateway;
        let Some(next_hop) = self.neighbours.lookup(egress_gw.domain.network, dst, now) else {
            self.arp_request(&egress_gw, dst, out);
            return Verdict::Dropped(DropReason::NeighbourUnresolved);
        };
        frame[0..6].copy_from_slice(&next_hop.0);
        frame[6..12].copy_from_slice(&egress_gw.mac.0);
        if let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[parsed.l3_offset..]) {
            ip.decrement_ttl();
        }
        let in_tag = parsed.vlan();
        let domain = egress_gw.domain;
        match self.fdb.lookup(domain, next_hop, now) {
            Some(port) if self.send(port, domain.vlan, in_tag, frame.len(), out) => {
                Verdict::Forwarded(1)
            }
            Some(_) => Verdict::Dropped(DropReason::NoEgress),
            None => self.flood(domain, ingress, in_tag, frame.len(), out),
        }
    }

    /// Whether traffic may be routed between two networks. Docker's default:
    /// each network is isolated from the others.
    fn forward_allowed(&self, from: u16, to: u16) -> bool {
        from == to
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
        let mut built = None;
        for i in 0..self.networks[net].members.len() {
            let port = self.networks[net].members[i];
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

    /// Answers the sender of `frame` with an ICMP error quoting it.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        gw: &Gateway,
        ingress: PortId,
        parsed: &Parsed,
        frame: &[u8],
        msg_type: u8,
        code: u8,
        out: &mut Output,
    ) {
        let L3::Ipv4 { src, .. } = parsed.l3 else {
            return;
        };
        let invoking = icmpv4::error_quote(&frame[parsed.l3_offset..]);
        let icmp = match msg_type {
            msg::TIME_EXCEEDED => Icmpv4Repr::TimeExceeded { code, invoking },
            _ => Icmpv4Repr::DstUnreachable { code, invoking },
        };
        let reply = Reply {
            dst_mac: parsed.src,
            dst_ip: src,
            icmp,
        };
        self.reply(ingress, gw, reply.frame_len(), out, |b| reply.emit(b, gw));
    }

    /// Sends a frame the gateway built back out of `port`, tagged as the
    /// gateway's VLAN leaves that port.
    fn reply(
        &mut self,
        port: PortId,
        gw: &Gateway,
        len: usize,
        out: &mut Output,
        fill: impl FnOnce(&mut [u8]),
    ) {
        let p = &mut self.ports[port.index()];
        let tag = match p.vlans.egress(gw.domain.vlan) {
            Some(Egress::Tagged(v)) => TagEdit::Push(v),
            Some(Egress::Untagged) | None => TagEdit::Keep,
        };
        out.build(port, tag, len, fill);
        p.stats.tx(len + if tag == TagEdit::Keep { 0 } else { 4 });
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
    /// same L2 domain, and nowhere else.
    fn flood(
        &mut self,
        domain: Domain,
        ingress: PortId,
        in_tag: Option<u16>,
        len: usize,
        out: &mut Output,
    ) -> Verdict {
        let net = usize::from(domain.network);
        let mut sent = 0;
        for i in 0..self.networks[net].members.len() {
            let p = self.networks[net].members[i];
            if p != ingress && self.send(p, domain.vlan, in_tag, len, out) {
                sent += 1;
            }
        }
        if sent == 0 {
            Verdict::Dropped(DropReason::NoEgress)
        } else {
            Verdict::Forwarded(sent)
        }
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

fn is_unspecified_or_broadcast(ip: Ipv4Addr) -> bool {
    ip.is_unspecified() || ip.is_broadcast()
}
