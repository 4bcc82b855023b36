//! The switch configuration: topo.toml parsed, validated and resolved.
//!
//! Two stages. `raw` mirrors the file exactly and keeps positions; `validate`
//! checks it and produces the types below, which the rest of the switch uses.
//! They hold no positions and no unresolved choices: defaults are filled in,
//! IPAM has assigned every address, MACs are derived, rules files are read.
//! Validation reports every error it can find, each as `file:line:col: message`.
//!
//! The file format is a user-facing contract (see CONTRACT.md): keys may be
//! added, never renamed or removed.

mod error;
mod net;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use packet::{MacAddr, VlanId};

pub use error::{ConfigError, ConfigErrors};
pub use net::{Ipv4Net, Ipv4NetError};

/// The validated topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub switch: SwitchConfig,
    pub networks: Vec<Network>,
    pub ports: Vec<Port>,
    pub uplink: Option<Uplink>,
    pub expects: Vec<Expect>,
    pub rules: Option<RulesSource>,
    pub fdb: Vec<StaticFdb>,
    pub source: Source,
}

impl Config {
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }
}

/// The file the config came from, kept so later stages (the rule parser,
/// `check`) can report positions in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// `[switch]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// Names the control socket `/run/vswitch/<name>.sock`, hence a safe file name.
    pub name: String,
    pub threads: usize,
    /// Key `fdb_aging`: seconds a learned MAC stays without traffic.
    pub fdb_aging_secs: u64,
    /// Key `fdb_max`: learned entries at most.
    pub fdb_max: usize,
    /// Key `conntrack_max`: tracked connections at most.
    pub conntrack_max: usize,
    /// Key `storm_pps`: broadcast and multicast frames per second each
    /// port may send, unless the port says otherwise; 0 is no limit.
    pub storm_pps: u32,
    /// Key `control_group`: the group the control socket is shared with
    /// (mode 0660); `None`: the socket is root's alone (0600).
    pub control_group: Option<ControlGroup>,
    /// Key `busy_poll_us`: microseconds the datapath keeps polling after
    /// its last frame before it sleeps; 0 sleeps at once.
    pub busy_poll_us: u32,
    /// Key `cpus`: the CPUs datapath thread q is pinned to, `cpus[q %
    /// len]`; empty: the CPUs the process may use, in turn.
    pub cpus: Vec<usize>,
}

/// A Unix group, resolved when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlGroup {
    pub name: String,
    pub gid: u32,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            name: "vswitch".to_owned(),
            threads: 1,
            // Linux bridge's default ageing time.
            fdb_aging_secs: 300,
            fdb_max: 8192,
            // Linux's nf_conntrack_max on a machine with a few GiB.
            conntrack_max: 262_144,
            // Far above what ARP, DHCP and discovery need, far below a storm.
            storm_pps: 1000,
            control_group: None,
            busy_poll_us: 0,
            cpus: Vec::new(),
        }
    }
}

/// `[[network]]`, like `docker network create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub driver: Driver,
    pub subnet: Ipv4Net,
    /// The switch's own address on bridge networks; the external router on
    /// macvlan/ipvlan. Defaults to the first host address, as Docker does.
    pub gateway: Ipv4Addr,
    pub vlan: Option<VlanId>,
    /// false: endpoints on this network may not talk to each other.
    pub icc: bool,
    /// true: no traffic to or from the uplink.
    pub internal: bool,
    pub masquerade: bool,
    /// Meaningful for ipvlan only (the key is refused elsewhere); L2 otherwise.
    pub mode: IpvlanMode,
    /// Host interface for macvlan/ipvlan; `None` exactly for bridge.
    pub parent: Option<String>,
    pub mtu: u16,
}

impl Network {
    /// The parent's host interface and the 802.1Q tag its frames carry
    /// there: `eth1.20` is interface `eth1`, VLAN 20 (trunk mode), as
    /// Docker's macvlan reads it. `None` for bridge networks.
    pub fn parent_link(&self) -> Option<(&str, Option<VlanId>)> {
        let parent = self.parent.as_deref()?;
        Some(match split_trunk(parent) {
            Some((iface, Ok(vid))) => (iface, Some(vid)),
            _ => (parent, None),
        })
    }

    /// The VLAN of the network's L2 domain in the switch: `vlan` on a
    /// bridge, the parent's tag on a trunk.
    pub fn domain_vlan(&self) -> u16 {
        let trunk = self.parent_link().and_then(|(_, vid)| vid);
        self.vlan.or(trunk).map_or(0, VlanId::get)
    }
}

/// `eth1.20` as (`eth1`, the VID or what is wrong with it); `None` when
/// the name has no numeric suffix.
pub(crate) fn split_trunk(parent: &str) -> Option<(&str, Result<VlanId, u64>)> {
    let (iface, vid) = parent.rsplit_once('.')?;
    if iface.is_empty() || vid.is_empty() || !vid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = vid.parse().unwrap_or(u64::MAX);
    let checked = u16::try_from(n).ok().and_then(VlanId::try_new);
    Some((iface, checked.ok_or(n)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    Bridge,
    Macvlan,
    Ipvlan,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
            Driver::Ipvlan => "ipvlan",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpvlanMode {
    #[default]
    L2,
    /// The switch routes; no broadcast reaches the parent.
    L3,
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
        })
    }
}

/// `[[port]]`: one endpoint attached to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub network: String,
    /// Index of `network` in `Config::networks`.
    pub network_index: usize,
    pub kind: PortKind,
    /// The namespace the TAP is moved into; always `Some` for tap ports.
    pub netns: Option<String>,
    /// The host interface opened by an afpacket port; `None` for other kinds.
    pub interface: Option<String>,
    /// Static or IPAM-assigned; `None` only for afpacket/vxlan ports without `ip`.
    pub ip: Option<Ipv4Addr>,
    /// `ip = "dhcp"`: the address is still assigned by IPAM (and served by the
    /// DHCP server) but the interface in the namespace is left unconfigured.
    pub dhcp: bool,
    /// Given, or derived from `ip` like Docker; `MacAddr::ZERO` when neither.
    pub mac: MacAddr,
    /// Docker `-p` specs: `[ip:]hostport[-end]:port[-end][/tcp|udp]`.
    pub publish: Vec<Publish>,
    /// Extra DNS names.
    pub aliases: Vec<String>,
    /// Access VLAN; defaults to the network's.
    pub vlan: Option<VlanId>,
    /// Tagged VLANs this port carries.
    pub trunk: Vec<VlanId>,
    /// vxlan only.
    pub vni: Option<u32>,
    /// vxlan only: the peer VTEPs.
    pub remote: Vec<Ipv4Addr>,
    /// vxlan only: where the UDP socket binds; the port defaults to 4789.
    pub local: Option<SocketAddrV4>,
    /// vxlan only: frames from VTEPs not in `remote` are taken (and their
    /// MACs learned) instead of dropped.
    pub learn_peers: bool,
    /// vxlan only: `encrypt = true` with the pre-shared key read from `key_file`.
    pub key: Option<TunnelKey>,
    pub mtu: u16,
    /// Drop frames whose source MAC/IP is not the port's own (anti-spoofing).
    pub port_security: bool,
    /// Broadcast/multicast frames per second from this port; `None`: the
    /// switch's `storm_pps`.
    pub storm_pps: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    Tap,
    Afpacket,
    Vxlan,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Afpacket => "afpacket",
            PortKind::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The IANA VXLAN port, used when `local` gives none.
pub const VXLAN_PORT: u16 = 4789;

/// A vxlan port's pre-shared 32-byte key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TunnelKey(pub [u8; 32]);

impl fmt::Debug for TunnelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TunnelKey(..)")
    }
}

/// `[uplink]`: the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// Only `Afpacket` for now.
    pub kind: PortKind,
    pub interface: String,
    /// The switch's own address on the uplink.
    pub ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// `None`: use the interface's own MAC.
    pub mac: Option<MacAddr>,
    /// Upstream resolvers the gateway DNS forwards names not its own to.
    pub dns: Vec<Ipv4Addr>,
}

/// A published port range: the uplink address (or `host_ip`) and
/// `host_ports` lead to the port's `ports`, as Docker's `-p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    pub host_ip: Option<Ipv4Addr>,
    /// Inclusive, as long as `ports`.
    pub host_ports: (u16, u16),
    pub ports: (u16, u16),
    pub protocol: PublishProtocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishProtocol {
    Tcp,
    Udp,
}

impl PublishProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishProtocol::Tcp => "tcp",
            PublishProtocol::Udp => "udp",
        }
    }
}

/// `[[expect]]`: a firewall unit test for `vswitch check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Ingress port name (or `uplink`).
    pub from: String,
    /// A flow spec, parsed by the tracer.
    pub packet: String,
    pub verdict: Verdict,
    pub to: Option<String>,
    /// Line of the `[[expect]]` header, for naming a failing test.
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Reject,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        })
    }
}

/// `[rules]`: iptables-restore text, inline or from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// Line N of `text` is line `line + N - 1` of topo.toml.
    Text { text: String, line: usize },
    /// `path` is resolved against topo.toml's directory; read at load time.
    File { path: PathBuf, text: String },
}

impl RulesSource {
    pub fn text(&self) -> &str {
        match self {
            RulesSource::Text { text, .. } | RulesSource::File { text, .. } => text,
        }
    }
}

/// `[[fdb]]`: a MAC pinned to a port, never learned elsewhere nor aged out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticFdb {
    pub mac: MacAddr,
    /// A port name, or `uplink`.
    pub port: String,
    pub vlan: Option<VlanId>,
    /// vxlan ports: the VTEP the MAC lives behind.
    pub remote: Option<Ipv4Addr>,
}

/// Reads and validates a topo.toml.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match read_text(path) {
        Ok(text) => parse(&text, path),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read the config file: {e}"),
        }])),
    }
}

/// Reads a config or rules file: text of a sane size. A device or a FIFO
/// named by mistake (`/dev/zero`) is an error, not a read that never ends
/// (a reload asks the running datapath to read the file it is given).
fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    const MAX: u64 = 16 * 1024 * 1024;
    // Asked before opening: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX {
        return Err(std::io::Error::other("larger than 16 MiB"));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Validates topo.toml text; `path` names it in errors and anchors a
/// relative rules `file`, which is read here.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let raw: raw::Topo = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let mut errors = error::Errors::new(path, text);
            let span = e.span().unwrap_or(0..0);
            errors.at(span, e.message().trim_end());
            return Err(errors.into_errors());
        }
    };
    validate::validate(raw, text, path)
}
