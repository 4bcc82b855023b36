//! Raw topo.toml to `Config`.
//!
//! Every check reports at the offending value's position and carries on with
//! a placeholder (or skips what depends on the bad value), so one run lists
//! every problem. Placeholders never escape: any error fails the whole parse.
//! A helper returning `None` has always recorded an error.
//!
//! Order matters for addresses only: static IPs of all ports are reserved
//! first, then ports without one are given the lowest free address in file
//! order, then MACs are derived and checked for duplicates.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::{Range, RangeInclusive};
use std::path::Path;

use packet::{MacAddr, VlanId};
use toml::Spanned;

use super::error::Errors;
use super::raw::{self, OneOrMany};
use super::{
    Config, ConfigErrors, ControlGroup, Driver, Expect, Ipv4Net, IpvlanMode, Network, Port,
    PortKind, Publish, PublishProtocol, RulesSource, Source, StaticFdb, SwitchConfig, TunnelKey,
    Uplink, Verdict, VXLAN_PORT,
};
use crate::ipam::{Ipam, IpamError};

type S<T> = Spanned<T>;

/// IFNAMSIZ - 1: the longest Linux interface name.
const IFNAME_MAX: usize = 15;
/// netns and network names end up in paths (/run/netns, /etc/netns).
const NAME_MAX: usize = 64;
const SWITCH_NAME_MAX: usize = 32;
const VNI_MAX: i64 = (1 << 24) - 1;
/// A name the rules use for the uplink, so no port or network may take it.
const UPLINK: &str = "uplink";

pub(super) fn validate(raw: raw::Topo, text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut e = Errors::new(path, text);
    let switch = switch(&mut e, raw.switch.as_ref());
    let nets = networks(&mut e, &raw.network, &overlay_mtus(&raw.port));
    let (ports, port_names) = ports(&mut e, &raw.port, &nets);
    let uplink = raw.uplink.as_ref().and_then(|u| uplink(&mut e, u, &nets));
    let parents = parents(&mut e, &raw.network, &nets, &port_names, uplink.as_ref());
    let endpoints = Endpoints {
        ports: &port_names,
        parents: &parents,
        uplink: raw.uplink.is_some(),
        tunnels: &ports,
    };
    let expects: Vec<Expect> = raw
        .expect
        .iter()
        .filter_map(|x| expect(&mut e, x, &endpoints))
        .collect();
    let rules = raw
        .rules
        .as_ref()
        .and_then(|r| rules(&mut e, r, text, path));
    let fdb = static_fdb(&mut e, &raw.fdb, &endpoints);

    if !e.is_empty() {
        return Err(e.into_errors());
    }
    Ok(Config {
        switch,
        networks: nets.list.into_iter().flatten().collect(),
        ports,
        uplink,
        expects,
        rules,
        fdb,
        source: Source {
            path: path.to_path_buf(),
            text: text.to_owned(),
        },
    })
}

// ---- value helpers -------------------------------------------------------

fn span<T>(v: &S<T>) -> Range<usize> {
    v.span()
}

/// Why `s` is not a safe name of at most `max` characters. Safe names are
/// used as file names and interface names: no '/', no spaces, not "." or "..".
fn name_problem(s: &str, max: usize) -> Option<String> {
    let len = s.chars().count();
    if len == 0 || len > max {
        Some(format!("must be 1 to {max} characters long"))
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("may only contain letters, digits, '_', '.' and '-'".to_owned())
    } else if s == "." || s == ".." {
        Some("cannot be \".\" or \"..\"".to_owned())
    } else {
        None
    }
}

/// Checks a name; `what` names the key, e.g. `port "web": netns`.
fn check_name(e: &mut Errors, v: &S<String>, max: usize, what: &str) -> bool {
    match name_problem(v.get_ref(), max) {
        Some(problem) => {
            e.at(span(v), format!("{what} {:?} {problem}", v.get_ref()));
            false
        }
        None => true,
    }
}

fn int<T: TryFrom<i64>>(
    e: &mut Errors,
    v: &S<i64>,
    range: RangeInclusive<i64>,
    what: &str,
) -> Option<T> {
    let n = *v.get_ref();
    if range.contains(&n) {
        if let Ok(t) = T::try_from(n) {
            return Some(t);
        }
    }
    let bounds = if *range.end() == i64::MAX {
        format!("at least {}", range.start())
    } else {
        format!("{} to {}", range.start(), range.end())
    };
    e.at(span(v), format!("{what} must be {bounds}, not {n}"));
    None
}

fn vlan(e: &mut Errors, v: &S<i64>, what: &str) -> Option<VlanId> {
    let range = i64::from(VlanId::MIN)..=i64::from(VlanId::MAX);
    int::<u16>(e, v, range, what).and_then(VlanId::try_new)
}

fn mtu(e: &mut Errors, v: &S<i64>, what: &str) -> Option<u16> {
    // 68: the IPv4 minimum (RFC 791).
    int(e, v, 68..=65535, what)
}

fn ipv4(e: &mut Errors, v: &S<String>, what: &str) -> Option<Ipv4Addr> {
    match v.get_ref().parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            e.at(
                span(v),
                format!(
                    "{what}: invalid {:?}: expected an IPv4 address like 10.0.0.1",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

/// A MAC an endpoint may own: unicast and not all zeros.
fn unicast_mac(e: &mut Errors, v: &S<String>, what: &str) -> Option<MacAddr> {
    match v.get_ref().parse::<MacAddr>() {
        Err(err) => {
            e.at(span(v), format!("{what}: invalid {:?}: {err}", v.get_ref()));
            None
        }
        Ok(m) if m.is_multicast() => {
            e.at(
                span(v),
                format!("{what}: {m} is a multicast address; a unicast MAC is needed"),
            );
            None
        }
        Ok(m) if m.is_zero() => {
            e.at(span(v), format!("{what}: {m} is not a usable address"));
            None
        }
        Ok(m) => Some(m),
    }
}

/// A `-p` style spec: `[ip:]hostport[-end]:port[-end][/tcp|udp]`, ranges of equal length.
fn publish(s: &str) -> Option<Publish> {
    fn range(s: &str) -> Option<(u16, u16)> {
        let (lo, hi) = s.split_once('-').unwrap_or((s, s));
        let port = |p: &str| -> Option<u16> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok().filter(|&n| n != 0)
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        (lo <= hi).then_some((lo, hi))
    }
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, PublishProtocol::Tcp),
        Some((spec, "udp")) => (spec, PublishProtocol::Udp),
        Some(_) => return None,
        None => (s, PublishProtocol::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [h, c] => (None, *h, *c),
        [ip, h, c] => (Some(ip.parse::<Ipv4Addr>().ok()?), *h, *c),
        _ => return None,
    };
    let (host_ports, ports) = (range(host)?, range(container)?);
    (host_ports.1 - host_ports.0 == ports.1 - ports.0).then_some(Publish {
        host_ip,
        host_ports,
        ports,
        protocol,
    })
}

/// Letters, digits, '-' and '_' in dot-separated labels of 1..=63, 253 at most.
fn dns_name_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

/// Points at a value when present, else at the table it is missing from.
fn at_or<T>(v: Option<&S<T>>, table: Range<usize>) -> Range<usize> {
    v.map_or(table, span)
}

// ---- [switch] ------------------------------------------------------------

fn switch(e: &mut Errors, raw: Option<&S<raw::Switch>>) -> SwitchConfig {
    let mut out = SwitchConfig::default();
    let Some(raw) = raw.map(S::get_ref) else {
        return out;
    };
    if let Some(name) = &raw.name {
        if check_name(e, name, SWITCH_NAME_MAX, "switch: name") {
            out.name = name.get_ref().clone();
        }
    }
    if let Some(v) = &raw.threads {
        out.threads = int(e, v, 1..=64, "switch: threads").unwrap_or(out.threads);
    }
    if let Some(v) = &raw.fdb_aging {
        out.fdb_aging_secs = int(e, v, 0..=i64::MAX, "switch: fdb_aging").unwrap_or(0);
    }
    if let Some(v) = &raw.fdb_max {
        out.fdb_max = int(e, v, 1..=i64::MAX, "switch: fdb_max").unwrap_or(1);
    }
    if let Some(v) = &raw.conntrack_max {
        out.conntrack_max =
            int(e, v, 1..=(1 << 26), "switch: conntrack_max").unwrap_or(out.conntrack_max);
    }
    if let Some(v) = &raw.storm_pps {
        out.storm_pps = int(e, v, STORM_PPS, "switch: storm_pps").unwrap_or(out.storm_pps);
    }
    if let Some(v) = &raw.control_group {
        out.control_group = control_group(e, v);
    }
    if let Some(v) = &raw.busy_poll_us {
        out.busy_poll_us = int(e, v, 0..=1_000_000, "switch: busy_poll_us").unwrap_or(0);
    }
    let most = libc::CPU_SETSIZE as i64 - 1;
    for v in &raw.cpus {
        let Some(cpu) = int(e, v, 0..=most, "switch: cpus entry") else {
            continue;
        };
        if out.cpus.contains(&cpu) {
            e.at(span(v), format!("switch: cpus lists CPU {cpu} twice"));
        }
        out.cpus.push(cpu);
    }
    out
}

/// Resolves `control_group` on this host, so a typo fails `check`, not a
/// running switch.
fn control_group(e: &mut Errors, v: &S<String>) -> Option<ControlGroup> {
    let name = v.get_ref();
    match crate::io::group::gid(name) {
        Ok(Some(gid)) => Some(ControlGroup {
            name: name.clone(),
            gid,
        }),
        Ok(None) => {
            e.at(
                span(v),
                format!("switch: control_group {name:?} is not a group on this host"),
            );
            None
        }
        Err(err) => {
            e.at(
                span(v),
                format!("switch: control_group {name:?}: cannot look it up: {err}"),
            );
            None
        }
    }
}

/// Broadcast and multicast frames per second a port may send; 0 is no limit.
const STORM_PPS: RangeInclusive<i64> = 0..=10_000_000;

// ---- [[network]] ---------------------------------------------------------

struct Nets {
    /// Aligned with the `[[network]]` tables; `None` where one is invalid.
    list: Vec<Option<Network>>,
    /// First declaration of each name.
    by_name: HashMap<String, usize>,
}

/// What encapsulation costs an inner packet: outer IPv4, UDP and VXLAN
/// headers and the inner Ethernet header; sealing adds its nonce and tag.
const OVERLAY_OVERHEAD: u16 = (packet::vxlan::OVERHEAD + packet::ethernet::HEADER_LEN) as u16;
const SEAL_OVERHEAD: u16 = crate::vxlan::seal::OVERHEAD as u16;

/// The default MTU of each network a vxlan port carries, as Docker gives
/// overlay networks: what a 1500-byte underlay leaves (1450, or 1422 when
/// sealed), so endpoints' TCP never needs fragmentation.
fn overlay_mtus(raw: &[S<raw::Port>]) -> HashMap<String, u16> {
    let mut out: HashMap<String, u16> = HashMap::new();
    for p in raw.iter().map(S::get_ref) {
        if p.kind.as_ref().map(|k| k.get_ref().as_str()) != Some("vxlan") {
            continue;
        }
        let sealed = p.encrypt.as_ref().is_some_and(|v| *v.get_ref());
        let mtu = 1500 - OVERLAY_OVERHEAD - if sealed { SEAL_OVERHEAD } else { 0 };
        let e = out.entry(p.network.get_ref().clone()).or_insert(mtu);
        *e = (*e).min(mtu);
    }
    out
}

fn networks(e: &mut Errors, raw: &[S<raw::Network>], overlay: &HashMap<String, u16>) -> Nets {
    let mut nets = Nets {
        list: Vec::with_capacity(raw.len()),
        by_name: HashMap::new(),
    };
    for (i, table) in raw.iter().enumerate() {
        let name = &table.get_ref().name;
        if check_name(e, name, NAME_MAX, "network name") && name.get_ref() == UPLINK {
            e.at(
                span(name),
                "network name \"uplink\" is reserved: rules use it for the uplink",
            );
        }
        if let Some(&first) = nets.by_name.get(name.get_ref()) {
            let first_line = e.line(&span(&raw[first].get_ref().name));
            e.at(
                span(name),
                format!(
                    "duplicate network name {:?} (first defined on line {first_line})",
                    name.get_ref()
                ),
            );
        } else {
            nets.by_name.insert(name.get_ref().clone(), i);
        }

        let default_mtu = overlay.get(name.get_ref()).copied().unwrap_or(1500);
        let net = network(e, table.get_ref(), default_mtu);
        if let Some(net) = &net {
            let earlier = nets.list.iter().flatten();
            if let Some(other) = earlier.into_iter().find(|o| o.subnet.overlaps(&net.subnet)) {
                e.at(
                    span(&table.get_ref().subnet),
                    format!(
                        "network {:?}: subnet {} overlaps subnet {} of network {:?}",
                        net.name, net.subnet, other.subnet, other.name
                    ),
                );
            }
        }
        nets.list.push(net);
    }
    nets
}

fn network(e: &mut Errors, n: &raw::Network, default_mtu: u16) -> Option<Network> {
    let ctx = format!("network {:?}", n.name.get_ref());

    let driver = match n.driver.as_ref() {
        None => Some(Driver::Bridge),
        Some(d) => match d.get_ref().as_str() {
            "bridge" => Some(Driver::Bridge),
            "macvlan" => Some(Driver::Macvlan),
            "ipvlan" => Some(Driver::Ipvlan),
            other => {
                e.at(
                    span(d),
                    format!("{ctx}: unknown driver {other:?} (expected bridge, macvlan or ipvlan)"),
                );
                None
            }
        },
    };

    let subnet = match n.subnet.get_ref().parse::<Ipv4Net>() {
        Ok(s) if s.prefix > 30 => {
            e.at(
                span(&n.subnet),
                format!(
                    "{ctx}: subnet {s} is too small: the gateway and a port need at least a /30"
                ),
            );
            None
        }
        Ok(s) => Some(s),
        Err(err) => {
            e.at(
                span(&n.subnet),
                format!("{ctx}: invalid subnet {:?}: {err}", n.subnet.get_ref()),
            );
            None
        }
    };

    let gateway = match (&n.gateway, subnet) {
        // Docker's default: the first host address.
        (None, Some(s)) => s.hosts().next(),
        (None, None) => None,
        (Some(g), subnet) => ipv4(e, g, &format!("{ctx}: gateway")).inspect(|&ip| {
            if let Some(s) = subnet {
                if !s.contains(ip) {
                    e.at(
                        span(g),
                        format!("{ctx}: gateway {ip} is outside subnet {s}"),
                    );
                } else if s.is_network_or_broadcast(ip) {
                    let what = if ip == s.network() {
                        "network"
                    } else {
                        "broadcast"
                    };
                    e.at(
                        span(g),
                        format!("{ctx}: gateway {ip} is the {what} address of subnet {s}"),
                    );
                }
            }
        }),
    };

    let vlan_id = n
        .vlan
        .as_ref()
        .and_then(|v| vlan(e, v, &format!("{ctx}: vlan")));

    let mode = match (&n.mode, driver) {
        (None, _) => IpvlanMode::L2,
        (Some(m), Some(Driver::Ipvlan)) => match m.get_ref().as_str() {
            "l2" => IpvlanMode::L2,
            "l3" => IpvlanMode::L3,
            other => {
                e.at(
                    span(m),
                    format!("{ctx}: unknown ipvlan mode {other:?} (expected l2 or l3)"),
                );
                IpvlanMode::L2
            }
        },
        (Some(m), Some(_)) => {
            e.at(
                span(m),
                format!("{ctx}: mode only applies to driver \"ipvlan\""),
            );
            IpvlanMode::L2
        }
        (Some(_), None) => IpvlanMode::L2,
    };

    let parent = match (&n.parent, driver) {
        (Some(p), Some(Driver::Bridge)) => {
            e.at(
                span(p),
                format!("{ctx}: parent only applies to drivers macvlan and ipvlan"),
            );
            None
        }
        (Some(p), _) => {
            check_name(e, p, IFNAME_MAX, &format!("{ctx}: parent"));
            if let Some((_, Err(vid))) = super::split_trunk(p.get_ref()) {
                e.at(
                    span(p),
                    format!(
                        "{ctx}: parent {:?}: VLAN {vid} is not 1 to 4094",
                        p.get_ref()
                    ),
                );
            }
            if let (Some(v), Some(_)) = (&n.vlan, driver) {
                e.at(
                    span(v),
                    format!(
                        "{ctx}: vlan applies to bridge networks; a {} network takes its VLAN from the parent, as \"{}.{}\"",
                        driver.map_or("", Driver::as_str),
                        p.get_ref(),
                        v.get_ref()
                    ),
                );
            }
            Some(p.get_ref().clone())
        }
        (None, Some(d @ (Driver::Macvlan | Driver::Ipvlan))) => {
            let at = at_or(n.driver.as_ref(), span(&n.name));
            e.at(
                at,
                format!("{ctx}: driver \"{d}\" needs a parent (the host interface to attach to)"),
            );
            None
        }
        (None, _) => None,
    };

    let mtu = n
        .mtu
        .as_ref()
        .and_then(|v| mtu(e, v, &format!("{ctx}: mtu")))
        .unwrap_or(default_mtu);

    Some(Network {
        name: n.name.get_ref().clone(),
        driver: driver?,
        subnet: subnet?,
        gateway: gateway?,
        vlan: vlan_id,
        icc: n.icc.unwrap_or(true),
        internal: n.internal.unwrap_or(false),
        masquerade: n.masquerade.unwrap_or(true),
        mode,
        parent,
        mtu,
    })
}

/// Each macvlan/ipvlan parent becomes a port named as written (`eth1.20`),
/// so it must be unique among ports, networks and parents, and its
/// interface cannot also be the uplink. Returns the parents' names.
fn parents(
    e: &mut Errors,
    raw: &[S<raw::Network>],
    nets: &Nets,
    ports: &HashSet<String>,
    uplink: Option<&Uplink>,
) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (table, net) in raw.iter().zip(&nets.list) {
        let (Some(p), Some(net)) = (&table.get_ref().parent, net) else {
            continue;
        };
        let name = p.get_ref();
        let clash = if ports.contains(name) {
            Some("a port name")
        } else if nets.by_name.contains_key(name) || name == UPLINK {
            Some("a network name")
        } else if seen.contains(name) {
            Some("the parent of another network")
        } else {
            None
        };
        if let Some(what) = clash {
            e.at(
                span(p),
                format!(
                    "network {:?}: parent {name:?} is also {what}; the parent is a port of that name in rules",
                    net.name
                ),
            );
        }
        let iface = net.parent_link().map(|(i, _)| i);
        if let Some(u) = uplink.filter(|u| Some(u.interface.as_str()) == iface) {
            e.at(
                span(p),
                format!(
                    "network {:?}: parent interface {} is the uplink's; give each its own interface",
                    net.name, u.interface
                ),
            );
        }
        seen.insert(name.clone());
    }
    seen
}

// ---- [[port]] ------------------------------------------------------------

/// A port whose checks are done except for the address and MAC, which
/// depend on every other port.
struct Draft<'r> {
    raw: &'r S<raw::Port>,
    port: Port,
    /// Still to be allocated by IPAM.
    allocate: bool,
    given_mac: Option<MacAddr>,
}

fn ports(e: &mut Errors, raw: &[S<raw::Port>], nets: &Nets) -> (Vec<Port>, HashSet<String>) {
    let mut ipams: Vec<Option<Ipam>> = nets
        .list
        .iter()
        .map(|n| n.as_ref().map(|n| Ipam::new(n.subnet, n.gateway)))
        .collect();
    // (network index, address) -> the port holding it, to name it in errors.
    let mut holders: HashMap<(usize, Ipv4Addr), String> = HashMap::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut drafts = Vec::new();

    for table in raw {
        let name = &table.get_ref().name;
        check_port_name(e, name, nets, &first_line);
        first_line
            .entry(name.get_ref().clone())
            .or_insert_with(|| e.line(&span(name)));
        if let Some(draft) = port(e, table, nets, &mut ipams, &mut holders) {
            drafts.push(draft);
        }
    }

    shared_sockets(e, &drafts);

    // Dynamic addresses, after every static one is reserved.
    for d in &mut drafts {
        if !d.allocate {
            continue;
        }
        let Some(ipam) = ipams.get_mut(d.port.network_index).and_then(Option::as_mut) else {
            continue;
        };
        match ipam.allocate() {
            Ok(ip) => d.port.ip = Some(ip),
            Err(err) => {
                let p = d.raw.get_ref();
                let detail = match err {
                    IpamError::Exhausted { subnet } => format!(
                        "no free address left in subnet {subnet} of network {:?}",
                        p.network.get_ref()
                    ),
                    other => other.to_string(),
                };
                e.at(
                    at_or(p.ip.as_ref(), d.raw.span()),
                    format!("port {:?}: {detail}", p.name.get_ref()),
                );
            }
        }
    }

    // MACs last: a derived one may collide with one given elsewhere.
    let mut macs: HashMap<MacAddr, String> = HashMap::new();
    for d in &mut drafts {
        let mac = match (d.given_mac, d.port.ip) {
            (Some(m), _) => m,
            (None, Some(ip)) => MacAddr::from_ipv4(ip),
            (None, None) => MacAddr::ZERO,
        };
        d.port.mac = mac;
        if mac.is_zero() {
            continue;
        }
        if let Some(other) = macs.get(&mac) {
            let p = d.raw.get_ref();
            let at = at_or(p.mac.as_ref().or(p.ip.as_ref()), d.raw.span());
            e.at(
                at,
                format!(
                    "port {:?}: mac {mac} is already used by port {other:?}",
                    d.port.name
                ),
            );
        } else {
            macs.insert(mac, d.port.name.clone());
        }
    }

    let names = first_line.into_keys().collect();
    (drafts.into_iter().map(|d| d.port).collect(), names)
}

/// Each vxlan port owns its UDP socket: two may not bind the same port on
/// overlapping addresses (an unspecified one overlaps every other).
fn shared_sockets(e: &mut Errors, drafts: &[Draft]) {
    let mut bound: Vec<(SocketAddrV4, &str)> = Vec::new();
    for d in drafts.iter().filter(|d| d.port.kind == PortKind::Vxlan) {
        let local = d
            .port
            .local
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, VXLAN_PORT));
        let clash = bound.iter().find(|(b, _)| {
            b.port() == local.port()
                && (b.ip() == local.ip() || b.ip().is_unspecified() || local.ip().is_unspecified())
        });
        if let Some((b, other)) = clash {
            let p = d.raw.get_ref();
            e.at(
                at_or(p.local.as_ref().or(p.kind.as_ref()), d.raw.span()),
                format!(
                    "port {:?}: local {local} overlaps port {other:?}'s {b}; give each vxlan port its own address or UDP port",
                    d.port.name
                ),
            );
        } else {
            bound.push((local, &d.port.name));
        }
    }
}

fn check_port_name(
    e: &mut Errors,
    name: &S<String>,
    nets: &Nets,
    first_line: &HashMap<String, usize>,
) {
    let n = name.get_ref();
    // Port names become interface-like names (-i/-o in rules, capture files).
    if !check_name(e, name, IFNAME_MAX, "port name") {
        return;
    }
    if n == UPLINK {
        e.at(
            span(name),
            "port name \"uplink\" is reserved: rules use it for the uplink",
        );
    } else if nets.by_name.contains_key(n) {
        e.at(
            span(name),
            format!(
                "port name {n:?} is also a network name; -i/-o in rules could not tell them apart"
            ),
        );
    } else if let Some(line) = first_line.get(n) {
        e.at(
            span(name),
            format!("duplicate port name {n:?} (first defined on line {line})"),
        );
    }
}

fn port<'r>(
    e: &mut Errors,
    table: &'r S<raw::Port>,
    nets: &Nets,
    ipams: &mut [Option<Ipam>],
    holders: &mut HashMap<(usize, Ipv4Addr), String>,
) -> Option<Draft<'r>> {
    let p = table.get_ref();
    let name = p.name.get_ref();
    let ctx = format!("port {name:?}");

    let net_index = nets.by_name.get(p.network.get_ref()).copied();
    if net_index.is_none() {
        e.at(
            span(&p.network),
            format!("{ctx}: unknown network {:?}", p.network.get_ref()),
        );
    }
    // `None` when the network itself is invalid: its errors are reported already.
    let net = net_index
        .and_then(|i| nets.list.get(i))
        .and_then(Option::as_ref);

    let kind = match p.kind.as_ref() {
        None => Some(PortKind::Tap),
        Some(k) => match k.get_ref().as_str() {
            "tap" => Some(PortKind::Tap),
            "afpacket" => Some(PortKind::Afpacket),
            "vxlan" => Some(PortKind::Vxlan),
            other => {
                e.at(
                    span(k),
                    format!("{ctx}: unknown kind {other:?} (expected tap, afpacket or vxlan)"),
                );
                None
            }
        },
    };
    // Where to report a key missing for this kind.
    let kind_at = at_or(p.kind.as_ref(), table.span());
    let only_for = |e: &mut Errors, v: Option<Range<usize>>, key: &str, wanted: PortKind| {
        if let (Some(at), Some(k)) = (v, kind) {
            if k != wanted {
                e.at(
                    at,
                    format!("{ctx}: {key} only applies to kind \"{wanted}\""),
                );
            }
        }
    };

    // A tap port without netns gets a namespace named after the port: the
    // common case needs no extra line, and port names are valid netns names.
    let netns = match (&p.netns, kind) {
        (Some(ns), Some(PortKind::Tap)) => {
            check_name(e, ns, NAME_MAX, &format!("{ctx}: netns"));
            Some(ns.get_ref().clone())
        }
        (None, Some(PortKind::Tap)) => Some(name.clone()),
        _ => None,
    };
    only_for(e, p.netns.as_ref().map(span), "netns", PortKind::Tap);

    let interface = match (&p.interface, kind) {
        (Some(i), Some(PortKind::Afpacket)) => {
            check_name(e, i, IFNAME_MAX, &format!("{ctx}: interface"));
            Some(i.get_ref().clone())
        }
        (None, Some(PortKind::Afpacket)) => {
            e.at(
                kind_at.clone(),
                format!("{ctx}: kind \"afpacket\" needs an interface (the host interface to open)"),
            );
            None
        }
        _ => None,
    };
    only_for(
        e,
        p.interface.as_ref().map(span),
        "interface",
        PortKind::Afpacket,
    );

    let (vni, remote, local, key) = vxlan(e, p, kind, &ctx, kind_at.clone());
    only_for(e, p.vni.as_ref().map(span), "vni", PortKind::Vxlan);
    only_for(e, p.remote.as_ref().map(span), "remote", PortKind::Vxlan);
    only_for(e, p.local.as_ref().map(span), "local", PortKind::Vxlan);
    only_for(
        e,
        p.learn_peers.as_ref().map(span),
        "learn_peers",
        PortKind::Vxlan,
    );
    only_for(e, p.encrypt.as_ref().map(span), "encrypt", PortKind::Vxlan);
    only_for(
        e,
        p.key_file.as_ref().map(span),
        "key_file",
        PortKind::Vxlan,
    );

    // The address: "dhcp", a static one reserved now, or none yet.
    let mut ip = None;
    let mut dhcp = false;
    let mut allocate = kind == Some(PortKind::Tap) && p.ip.is_none();
    if let Some(v) = &p.ip {
        if v.get_ref() == "dhcp" {
            dhcp = true;
            allocate = true;
            if kind == Some(PortKind::Vxlan) {
                e.at(
                    span(v),
                    format!("{ctx}: ip = \"dhcp\" does not apply to kind \"vxlan\", which carries many endpoints"),
                );
            }
            if net.is_some_and(|n| (n.driver, n.mode) == (Driver::Ipvlan, IpvlanMode::L3)) {
                e.at(
                    span(v),
                    format!("{ctx}: ip = \"dhcp\" cannot work on an ipvlan l3 network, where no broadcast crosses to a DHCP server; give the port an address"),
                );
            }
        } else if let Ok(addr) = v.get_ref().parse::<Ipv4Addr>() {
            let ipam = net_index
                .and_then(|i| ipams.get_mut(i))
                .and_then(Option::as_mut);
            if let (Some(i), Some(net), Some(ipam)) = (net_index, net, ipam) {
                // A refused address derives no MAC, so its error stands alone.
                if reserve(e, v, addr, ipam, net, i, &ctx, name, holders) {
                    ip = Some(addr);
                }
            }
        } else {
            e.at(
                span(v),
                format!(
                    "{ctx}: invalid ip {:?}: expected an IPv4 address like 10.0.0.2, or \"dhcp\"",
                    v.get_ref()
                ),
            );
        }
    }

    let given_mac = p
        .mac
        .as_ref()
        .and_then(|m| unicast_mac(e, m, &format!("{ctx}: mac")));

    let access_vlan = match &p.vlan {
        Some(v) => vlan(e, v, &format!("{ctx}: vlan")),
        None => net.and_then(|n| n.vlan),
    };

    let mut trunk = Vec::with_capacity(p.trunk.len());
    for v in &p.trunk {
        if let Some(id) = vlan(e, v, &format!("{ctx}: trunk VLAN id")) {
            if trunk.contains(&id) {
                e.at(span(v), format!("{ctx}: trunk lists VLAN {id} twice"));
            }
            trunk.push(id);
        }
    }

    let port_mtu = match &p.mtu {
        Some(v) => mtu(e, v, &format!("{ctx}: mtu")).unwrap_or(1500),
        None => net.map_or(1500, |n| n.mtu),
    };

    let mut published = Vec::new();
    for v in &p.publish {
        match publish(v.get_ref()) {
            Some(p) => published.push(p),
            None => e.at(
                span(v),
                format!(
                    "{ctx}: invalid publish {:?}: expected [ip:]hostport:port[/tcp|udp], like \"8080:80/tcp\"",
                    v.get_ref()
                ),
            ),
        }
    }
    for v in &p.aliases {
        if !dns_name_ok(v.get_ref()) {
            e.at(
                span(v),
                format!("{ctx}: alias {:?} is not a valid DNS name", v.get_ref()),
            );
        }
    }

    Some(Draft {
        raw: table,
        port: Port {
            name: name.clone(),
            network: p.network.get_ref().clone(),
            network_index: net_index.filter(|_| net.is_some())?,
            kind: kind?,
            netns,
            interface,
            ip,
            dhcp,
            mac: MacAddr::ZERO,
            publish: published,
            aliases: p.aliases.iter().map(|v| v.get_ref().clone()).collect(),
            vlan: access_vlan,
            trunk,
            vni,
            remote,
            local,
            learn_peers: p.learn_peers.as_ref().is_some_and(|v| *v.get_ref()),
            key,
            mtu: port_mtu,
            port_security: p.port_security.unwrap_or(true),
            storm_pps: p
                .storm_pps
                .as_ref()
                .and_then(|v| int(e, v, STORM_PPS, &format!("{ctx}: storm_pps"))),
        },
        allocate,
        given_mac,
    })
}

#[allow(clippy::too_many_arguments)]
fn reserve(
    e: &mut Errors,
    v: &S<String>,
    addr: Ipv4Addr,
    ipam: &mut Ipam,
    net: &Network,
    net_index: usize,
    ctx: &str,
    port: &str,
    holders: &mut HashMap<(usize, Ipv4Addr), String>,
) -> bool {
    let problem = match ipam.reserve(addr) {
        Ok(()) => {
            holders.insert((net_index, addr), port.to_owned());
            return true;
        }
        Err(IpamError::OutsideSubnet { subnet, .. }) => {
            format!("is outside subnet {subnet} of network {:?}", net.name)
        }
        Err(IpamError::Reserved { what, .. }) => format!("is {what} of network {:?}", net.name),
        Err(IpamError::Taken { .. }) => match holders.get(&(net_index, addr)) {
            Some(holder) => format!("is already used by port {holder:?}"),
            None => "is already used".to_owned(),
        },
        Err(other) => other.to_string(),
    };
    e.at(span(v), format!("{ctx}: ip {addr} {problem}"));
    false
}

type VxlanParts = (
    Option<u32>,
    Vec<Ipv4Addr>,
    Option<SocketAddrV4>,
    Option<TunnelKey>,
);

fn vxlan(
    e: &mut Errors,
    p: &raw::Port,
    kind: Option<PortKind>,
    ctx: &str,
    kind_at: Range<usize>,
) -> VxlanParts {
    if kind != Some(PortKind::Vxlan) {
        return (None, Vec::new(), None, None);
    }
    let vni = match &p.vni {
        Some(v) => int(e, v, 0..=VNI_MAX, &format!("{ctx}: vni")),
        None => {
            e.at(
                kind_at.clone(),
                format!("{ctx}: kind \"vxlan\" needs a vni"),
            );
            None
        }
    };

    let mut remote = Vec::new();
    match &p.remote {
        None => e.at(
            kind_at,
            format!("{ctx}: kind \"vxlan\" needs a remote (the peer VTEP's address)"),
        ),
        Some(r) => remote = addresses(e, r, ctx, "remote", "198.18.0.2"),
    }

    let local = p.local.as_ref().and_then(|v| {
        let s = v.get_ref();
        let parsed = match s.parse::<SocketAddrV4>() {
            Ok(sa) => Some(sa).filter(|sa| sa.port() != 0),
            Err(_) => s
                .parse::<Ipv4Addr>()
                .ok()
                .map(|ip| SocketAddrV4::new(ip, VXLAN_PORT)),
        };
        if parsed.is_none() {
            e.at(
                span(v),
                format!("{ctx}: invalid local {s:?}: expected an IPv4 address, optionally with a port, like 198.18.0.1:4789"),
            );
        }
        parsed
    });

    let encrypt = p.encrypt.as_ref().filter(|v| *v.get_ref());
    let key = match (encrypt, &p.key_file) {
        (Some(_), Some(file)) => tunnel_key(e, file, ctx),
        (Some(at), None) => {
            e.at(
                span(at),
                format!("{ctx}: encrypt = true needs a key_file (32 bytes, or 64 hex digits)"),
            );
            None
        }
        (None, Some(file)) => {
            e.at(
                span(file),
                format!("{ctx}: key_file is only used with encrypt = true"),
            );
            None
        }
        (None, None) => None,
    };
    // The sender id in every nonce is the local address, so it must be one.
    if let (Some(at), false) = (encrypt, local.is_some_and(|l| !l.ip().is_unspecified())) {
        e.at(
            span(at),
            format!("{ctx}: encrypt = true needs local (this VTEP's own address, which names it in every nonce)"),
        );
    }

    (vni, remote, local, key)
}

/// Reads a pre-shared key: 32 bytes as they are, or 64 hex digits
/// (`openssl rand -hex 32`), relative to topo.toml's directory.
fn tunnel_key(e: &mut Errors, file: &S<String>, ctx: &str) -> Option<TunnelKey> {
    let path = Path::new(file.get_ref());
    let resolved = match e.path().parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    let bytes = match std::fs::read(&resolved) {
        Ok(b) => b,
        Err(err) => {
            e.at(
                span(file),
                format!("{ctx}: cannot read key_file {}: {err}", resolved.display()),
            );
            return None;
        }
    };
    let hex = std::str::from_utf8(&bytes).ok().map(str::trim);
    let key = match hex {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let mut k = [0u8; 32];
            for (i, byte) in k.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()?;
            }
            Some(k)
        }
        _ => <[u8; 32]>::try_from(bytes.as_slice()).ok(),
    };
    if key.is_none() {
        e.at(
            span(file),
            format!(
                "{ctx}: key_file {} must hold 32 bytes, or 64 hex digits",
                resolved.display()
            ),
        );
    }
    key.map(TunnelKey)
}

/// `key` of `ctx`, holding one IPv4 address or a list of them, none twice;
/// `like` is an example address for the error.
fn addresses(e: &mut Errors, r: &S<OneOrMany>, ctx: &str, key: &str, like: &str) -> Vec<Ipv4Addr> {
    let items: Vec<(&str, Range<usize>)> = match r.get_ref() {
        OneOrMany::One(s) => vec![(s.as_str(), r.span())],
        OneOrMany::Many(list) => list
            .iter()
            .map(|s| (s.get_ref().as_str(), s.span()))
            .collect(),
    };
    if items.is_empty() {
        e.at(r.span(), format!("{ctx}: {key} lists no address"));
    }
    let mut out = Vec::new();
    for (s, at) in items {
        match s.parse::<Ipv4Addr>() {
            Ok(ip) if out.contains(&ip) => e.at(at, format!("{ctx}: {key} lists {ip} twice")),
            Ok(ip) => out.push(ip),
            Err(_) => e.at(
                at,
                format!("{ctx}: invalid {key} {s:?}: expected an IPv4 address like {like}"),
            ),
        }
    }
    out
}

// ---- [uplink] ------------------------------------------------------------

fn uplink(e: &mut Errors, table: &S<raw::Uplink>, nets: &Nets) -> Option<Uplink> {
    let u = table.get_ref();
    let kind = match &u.kind {
        None => Some(PortKind::Afpacket),
        Some(k) if k.get_ref() == "afpacket" => Some(PortKind::Afpacket),
        Some(k) => {
            e.at(
                span(k),
                format!(
                    "uplink: kind must be \"afpacket\" (the only uplink kind so far), not {:?}",
                    k.get_ref()
                ),
            );
            None
        }
    };
    let interface_ok = check_name(e, &u.interface, IFNAME_MAX, "uplink: interface");

    let parsed = match Ipv4Net::parse_host(u.ip.get_ref()) {
        Ok((ip, subnet)) if subnet.is_network_or_broadcast(ip) => {
            let what = if ip == subnet.network() {
                "network"
            } else {
                "broadcast"
            };
            e.at(
                span(&u.ip),
                format!("uplink: ip {ip} is the {what} address of {subnet}"),
            );
            None
        }
        Ok(v) => Some(v),
        Err(err) => {
            e.at(
                span(&u.ip),
                format!(
                    "uplink: invalid ip {:?}: expected the switch's address with its prefix length, like 192.0.2.10/24 ({err})",
                    u.ip.get_ref()
                ),
            );
            None
        }
    };
    if let Some((_, subnet)) = parsed {
        if let Some(other) = nets
            .list
            .iter()
            .flatten()
            .find(|n| n.subnet.overlaps(&subnet))
        {
            e.at(
                span(&u.ip),
                format!(
                    "uplink: subnet {subnet} overlaps subnet {} of network {:?}",
                    other.subnet, other.name
                ),
            );
        }
    }

    let gateway = u.gateway.as_ref().and_then(|g| {
        ipv4(e, g, "uplink: gateway").inspect(|&gw| {
            if let Some((ip, subnet)) = parsed {
                if !subnet.contains(gw) {
                    e.at(span(g), format!("uplink: gateway {gw} is outside {subnet}"));
                } else if gw == ip {
                    e.at(
                        span(g),
                        format!("uplink: gateway {gw} is the uplink's own address"),
                    );
                } else if subnet.is_network_or_broadcast(gw) {
                    e.at(
                        span(g),
                        format!(
                            "uplink: gateway {gw} is the network or broadcast address of {subnet}"
                        ),
                    );
                }
            }
        })
    });
    let mac = u
        .mac
        .as_ref()
        .and_then(|m| unicast_mac(e, m, "uplink: mac"));

    let (ip, subnet) = parsed?;
    if !interface_ok {
        return None;
    }
    let dns = u
        .dns
        .as_ref()
        .map(|d| addresses(e, d, "uplink", "dns", "192.0.2.53"))
        .unwrap_or_default();
    Some(Uplink {
        kind: kind?,
        interface: u.interface.get_ref().clone(),
        ip,
        subnet,
        gateway,
        mac,
        dns,
    })
}

// ---- [[expect]], [rules], [[fdb]] -----------------------------------------

/// What `from`, `to` and `[[fdb]] port` may name.
struct Endpoints<'a> {
    ports: &'a HashSet<String>,
    /// macvlan/ipvlan parents: ports named as written in `parent`.
    parents: &'a HashSet<String>,
    uplink: bool,
    /// Every port, to tell which are vxlan and what peers they have.
    tunnels: &'a [Port],
}

impl Endpoints<'_> {
    fn contains(&self, name: &str) -> bool {
        self.ports.contains(name) || self.parents.contains(name) || (self.uplink && name == UPLINK)
    }
}

fn expect(e: &mut Errors, table: &S<raw::Expect>, known: &Endpoints) -> Option<Expect> {
    let x = table.get_ref();
    let mut ok = true;
    for (key, v) in [("from", Some(&x.from)), ("to", x.to.as_ref())] {
        if let Some(v) = v {
            if !known.contains(v.get_ref()) {
                e.at(
                    span(v),
                    format!("expect: {key} names unknown port {:?}", v.get_ref()),
                );
                ok = false;
            }
        }
    }
    if x.packet.get_ref().trim().is_empty() {
        e.at(span(&x.packet), "expect: packet is empty");
        ok = false;
    }
    // iptables spells verdicts in capitals; accept both.
    let verdict = match x.verdict.get_ref().to_ascii_lowercase().as_str() {
        "accept" => Some(Verdict::Accept),
        "drop" => Some(Verdict::Drop),
        "reject" => Some(Verdict::Reject),
        _ => {
            e.at(
                span(&x.verdict),
                format!(
                    "expect: verdict must be accept, drop or reject, not {:?}",
                    x.verdict.get_ref()
                ),
            );
            None
        }
    };
    Some(Expect {
        from: x.from.get_ref().clone(),
        packet: x.packet.get_ref().clone(),
        verdict: verdict?,
        to: x.to.as_ref().map(|v| v.get_ref().clone()),
        line: e.line(&table.span()),
    })
    .filter(|_| ok)
}

fn rules(e: &mut Errors, table: &S<raw::Rules>, text: &str, path: &Path) -> Option<RulesSource> {
    let r = table.get_ref();
    match (&r.text, &r.file) {
        (Some(t), None) => {
            let start = t.span().start;
            let mut line = e.line(&t.span());
            // A newline right after """ or ''' is not part of the string.
            let after = text.get(start..).unwrap_or("");
            let body = after
                .strip_prefix("\"\"\"")
                .or_else(|| after.strip_prefix("'''"));
            if body.is_some_and(|b| b.starts_with('\n') || b.starts_with("\r\n")) {
                line += 1;
            }
            Some(RulesSource::Text {
                text: t.get_ref().clone(),
                line,
            })
        }
        (None, Some(f)) => {
            let file = Path::new(f.get_ref());
            let resolved = match path.parent() {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.to_path_buf(),
            };
            match super::read_text(&resolved) {
                Ok(body) => Some(RulesSource::File {
                    path: resolved,
                    text: body,
                }),
                Err(err) => {
                    e.at(
                        span(f),
                        format!("rules: cannot read file {}: {err}", resolved.display()),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            e.at(table.span(), "[rules] takes text or file, not both");
            None
        }
        (None, None) => {
            e.at(table.span(), "[rules] needs text or file");
            None
        }
    }
}

fn static_fdb(e: &mut Errors, raw: &[S<raw::Fdb>], known: &Endpoints) -> Vec<StaticFdb> {
    let mut out = Vec::with_capacity(raw.len());
    let mut seen: HashMap<(MacAddr, Option<VlanId>), usize> = HashMap::new();
    for table in raw {
        let f = table.get_ref();
        let mac = unicast_mac(e, &f.mac, "fdb: mac");
        let port_ok = known.contains(f.port.get_ref());
        if !port_ok {
            e.at(
                span(&f.port),
                format!("fdb: unknown port {:?}", f.port.get_ref()),
            );
        }
        let vlan_id = f.vlan.as_ref().map(|v| vlan(e, v, "fdb: vlan"));
        let vlan_ok = !matches!(vlan_id, Some(None));
        let vlan_id = vlan_id.flatten();
        let remote = f.remote.as_ref().map(|r| fdb_remote(e, r, f, known));
        let remote_ok = !matches!(remote, Some(None));
        let (Some(mac), true, true, true) = (mac, vlan_ok, port_ok, remote_ok) else {
            continue;
        };
        let line = e.line(&table.span());
        if let Some(first) = seen.get(&(mac, vlan_id)) {
            e.at(
                span(&f.mac),
                format!("fdb: duplicate entry for {mac} (first on line {first})"),
            );
            continue;
        }
        seen.insert((mac, vlan_id), line);
        out.push(StaticFdb {
            mac,
            port: f.port.get_ref().clone(),
            vlan: vlan_id,
            remote: remote.flatten(),
        });
    }
    out
}

/// An `[[fdb]] remote`: one of the vxlan port's peers, since frames from
/// any other are not taken (unless the port learns peers).
fn fdb_remote(e: &mut Errors, r: &S<String>, f: &raw::Fdb, known: &Endpoints) -> Option<Ipv4Addr> {
    let ip = ipv4(e, r, "fdb: remote")?;
    let port = known.tunnels.iter().find(|p| p.name == *f.port.get_ref());
    match port {
        Some(p) if p.kind != PortKind::Vxlan => {
            e.at(
                span(r),
                format!(
                    "fdb: remote applies to vxlan ports, and {:?} is {}",
                    p.name, p.kind
                ),
            );
            None
        }
        Some(p) if !p.learn_peers && !p.remote.contains(&ip) => {
            e.at(
                span(r),
                format!(
                    "fdb: remote {ip} is not one of port {:?}'s remote peers",
                    p.name
                ),
            );
            None
        }
        _ => Some(ip),
    }
}
