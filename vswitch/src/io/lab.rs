//! Builds the topology on the host: a network namespace per container with a
//! TAP moved in as eth0, addressed and routed via the gateway; and takes it
//! all down again, with a resolv.conf per namespace naming the gateway's DNS.
//! Namespace plumbing goes through iproute2's `ip`, which is what a user
//! would type and what `ip netns` lists.
//!
//! A state file `/run/vswitch/<name>.state` records our pid and the
//! namespaces we created, so a run after a crash (SIGKILL) adopts and later
//! removes what the last one left, and a second instance of the same switch
//! is refused. TAPs need no such care: the kernel removes them with our fds.
//!
//! A reload brings the devices in line with a new configuration in place
//! (in the confined datapath, whose namespace commands the parent runs):
//! a port keeps its device when its namespace (tap) or interface
//! (afpacket) is the same, re-addressed if its settings changed; other new
//! ports get new devices, created before anything is removed so a failure
//! leaves the running ones as they were; the devices no port keeps are
//! closed, and the namespaces this switch created for them deleted.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use packet::MacAddr;

use crate::config::{Config, Driver, IpvlanMode, Port, PortKind};
use crate::vxlan;

use super::afpacket::PacketSocket;
use super::netns_ops::{self, NetnsOps};
use super::tap::Tap;
use super::vxlan::VxlanSocket;

pub const RUN_DIR: &str = "/run/vswitch";

/// A port's device, indexed like the switch's ports.
pub enum Device {
    Tap(Tap),
    /// One socket per datapath thread, in a fanout group when several.
    Packet(Vec<PacketSocket>),
    Vxlan(VxlanSocket),
}

/// What `setup` built; `teardown` (or drop) removes it.
pub struct Lab {
    /// By port, as the switch numbers them: the configured ports, then the
    /// uplink.
    pub devices: Vec<Device>,
    /// The configuration the devices were built for.
    config: Config,
    created: Vec<String>,
    /// resolv.conf files written for namespaces, removed at teardown.
    resolv: Vec<PathBuf>,
    state: PathBuf,
    /// Numbers the host-side names of new TAPs.
    taps_made: usize,
    /// Where namespaces are made, changed and removed.
    ns: NetnsOps,
}

/// What a port's device is bound to: a reload keeps the device of a port
/// whose binding stays.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Binding {
    Netns(String),
    Interface(String),
    /// A vxlan port's UDP socket: two cannot bind one address at once.
    Socket(SocketAddrV4),
}

fn binding(port: &Port) -> Binding {
    match port.kind {
        PortKind::Tap => Binding::Netns(port.netns.clone().unwrap_or_else(|| port.name.clone())),
        PortKind::Afpacket => {
            Binding::Interface(port.interface.clone().unwrap_or_else(|| port.name.clone()))
        }
        PortKind::Vxlan => Binding::Socket(vxlan::local_addr(port)),
    }
}

/// The host interfaces of `config`'s macvlan/ipvlan parents, in network
/// order: the switch's ports after the configured ones.
fn parents(config: &Config) -> Vec<String> {
    let links = config.networks.iter().filter_map(|n| n.parent_link());
    links.map(|(iface, _)| iface.to_owned()).collect()
}

/// What a vxlan socket was opened with: its sending side (VNI, key,
/// counter) is fixed at open, and its address cannot be opened twice.
fn tunnel_settings(p: &Port) -> impl PartialEq + '_ {
    (p.vni, &p.remote, p.local, p.learn_peers, &p.key, p.mtu)
}

#[derive(Debug)]
pub struct LabError(pub String);

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

fn err(msg: impl Into<String>) -> LabError {
    LabError(msg.into())
}

impl Lab {
    /// Creates every port's device and namespace. On failure, whatever was
    /// created is removed again before the error is returned.
    pub fn setup(config: &Config) -> Result<Lab, LabError> {
        fs::create_dir_all(RUN_DIR).map_err(|e| err(format!("cannot create {RUN_DIR}: {e}")))?;
        let state = Path::new(RUN_DIR).join(format!("{}.state", config.switch.name));
        let mut lab = Lab {
            devices: Vec::new(),
            config: config.clone(),
            created: adopt(&state, &config.switch.name)?,
            resolv: Vec::new(),
            state,
            taps_made: 0,
            ns: NetnsOps::Here,
        };
        lab.save_state()?;
        for port in &config.ports {
            match lab.add_port(config, port) {
                Ok(d) => lab.devices.push(d),
                Err(e) => {
                    lab.teardown();
                    return Err(err(format!("port {}: {}", port.name, e.0)));
                }
            }
        }
        // Then each macvlan/ipvlan parent, in network order: the switch's
        // ports are numbered so.
        for iface in parents(config) {
            match open_packet(&iface, config.switch.threads) {
                Ok(d) => lab.devices.push(d),
                Err(e) => {
                    lab.teardown();
                    return Err(err(format!("parent {iface}: {}", e.0)));
                }
            }
        }
        // The uplink is the switch's last port.
        if let Some(u) = &config.uplink {
            match open_packet(&u.interface, config.switch.threads) {
                Ok(d) => lab.devices.push(d),
                Err(e) => {
                    lab.teardown();
                    return Err(err(format!("uplink: {}", e.0)));
                }
            }
        }
        Ok(lab)
    }

    /// Brings the devices in line with `config` (see the module's
    /// comment). On error nothing has changed.
    pub fn reload(&mut self, config: &Config) -> Result<(), LabError> {
        let old: Vec<Binding> = self.config.ports.iter().map(binding).collect();
        // For each new port: the old port whose device it keeps.
        let mut keeps: Vec<Option<usize>> = Vec::new();
        for p in &config.ports {
            let b = binding(p);
            let i = (0..old.len()).find(|&i| old[i] == b && !keeps.contains(&Some(i)));
            if let Some(i) = i {
                let was = &self.config.ports[i];
                if p.kind == PortKind::Vxlan && tunnel_settings(was) != tunnel_settings(p) {
                    return Err(err(format!(
                        "port {}: a vxlan port's vni, remote, local, learn_peers, key and mtu \
                         cannot change in place; remove the port in one reload and add it in the next",
                        p.name
                    )));
                }
            }
            keeps.push(i);
        }
        let created_before = self.created.len();
        let resolv_before = self.resolv.len();
        let mut made: Vec<Option<Device>> = Vec::new();
        // New devices first, then kept ones re-addressed: a failure undoes
        // the new ones and leaves the running ports as they were (a
        // re-addressing that fails halfway excepted).
        let mut result = Ok(());
        for (p, keep) in config.ports.iter().zip(&keeps) {
            match keep {
                Some(_) => made.push(None),
                None => match self.add_port(config, p) {
                    Ok(d) => made.push(Some(d)),
                    Err(e) => {
                        result = Err(err(format!("port {}: {}", p.name, e.0)));
                        break;
                    }
                },
            }
        }
        // Macvlan/ipvlan parents, after the ports: kept by interface.
        let (old_parents, new_parents) = (parents(&self.config), parents(config));
        let mut made_parents: Vec<Option<Device>> = Vec::new();
        for iface in &new_parents {
            if result.is_err() {
                break;
            }
            if old_parents.contains(iface) {
                made_parents.push(None);
                continue;
            }
            match open_packet(iface, config.switch.threads) {
                Ok(d) => made_parents.push(Some(d)),
                Err(e) => result = Err(err(format!("parent {iface}: {}", e.0))),
            }
        }
        if result.is_ok() {
            for (p, keep) in config.ports.iter().zip(&keeps) {
                if let Some(i) = keep {
                    if let Err(e) = self.readdress(config, *i, p) {
                        result = Err(err(format!("port {}: {}", p.name, e.0)));
                        break;
                    }
                }
            }
        }
        if let Err(e) = result {
            drop(made);
            drop(made_parents);
            for path in self.resolv.split_off(resolv_before) {
                let _ = fs::remove_file(path);
            }
            for ns in self.created.split_off(created_before) {
                let _ = self.ns.ip(&["netns", "del", &ns]);
            }
            let _ = self.save_state();
            return Err(e);
        }
        let mut olds: Vec<Option<Device>> = self.devices.drain(..).map(Some).collect();
        let uplink = match self.config.uplink {
            Some(_) => olds.pop().flatten(),
            None => None,
        };
        let mut olds_parents = olds.split_off(old.len().min(olds.len()));
        for (made, keep) in made.into_iter().zip(&keeps) {
            let device = made.or_else(|| keep.and_then(|i| olds.get_mut(i)?.take()));
            if let Some(d) = device {
                self.devices.push(d);
            }
        }
        for (iface, made) in new_parents.iter().zip(made_parents) {
            let kept = || {
                let k = old_parents.iter().position(|o| o == iface)?;
                olds_parents.get_mut(k)?.take()
            };
            if let Some(d) = made.or_else(kept) {
                self.devices.push(d);
            }
        }
        self.devices.extend(uplink);
        // What no port kept: closed here; its namespace goes if we made it
        // and no port lives there now.
        let in_use: Vec<Binding> = config.ports.iter().map(binding).collect();
        for (i, d) in olds.into_iter().enumerate() {
            let Some(d) = d else { continue };
            drop(d);
            if let Binding::Netns(ns) = &old[i] {
                if !in_use.contains(&old[i]) {
                    self.remove_netns(ns);
                }
            }
        }
        self.config = config.clone();
        self.save_state()
    }

    /// From now on asks the parent at the other end of `conn` for the
    /// namespace commands, as a process without CAP_SYS_ADMIN must.
    pub fn ask_parent(&mut self, conn: UnixStream) {
        self.ns = NetnsOps::Parent(conn);
    }

    /// Runs a namespace command (see `netns_ops`).
    fn netns_ip(&self, args: &[&str]) -> Result<(), LabError> {
        self.ns.ip(args).map_err(err)
    }

    /// Deletes namespace `ns` if this switch made it, with our resolv.conf.
    fn remove_netns(&mut self, ns: &str) {
        let conf = Path::new("/etc/netns").join(ns).join("resolv.conf");
        if let Some(k) = self.resolv.iter().position(|p| *p == conf) {
            let path = self.resolv.swap_remove(k);
            let _ = fs::remove_file(&path);
            if let Some(dir) = path.parent() {
                let _ = fs::remove_dir(dir);
            }
        }
        if let Some(k) = self.created.iter().position(|c| c == ns) {
            self.created.swap_remove(k);
            if let Err(e) = self.ns.ip(&["netns", "del", ns]) {
                tracing::warn!("cannot remove network namespace {ns}: {e}");
            }
        }
    }

    /// A kept TAP whose port's addressing changed gets the new one.
    fn readdress(&mut self, config: &Config, old: usize, port: &Port) -> Result<(), LabError> {
        let was = &self.config.ports[old];
        let net = |c: &Config, p: &Port| {
            let n = &c.networks[p.network_index];
            (n.subnet, n.gateway, n.driver)
        };
        let unchanged = (was.mac, was.mtu, was.ip, was.dhcp)
            == (port.mac, port.mtu, port.ip, port.dhcp)
            && net(&self.config, was) == net(config, port);
        if port.kind != PortKind::Tap || unchanged {
            return Ok(());
        }
        let netns = port.netns.as_deref().unwrap_or(&port.name);
        self.netns_ip(&["-n", netns, "addr", "flush", "dev", "eth0"])?;
        self.configure_tap(config, port, netns)
    }

    fn add_port(&mut self, config: &Config, port: &Port) -> Result<Device, LabError> {
        match port.kind {
            PortKind::Tap => self.add_tap(config, port).map(Device::Tap),
            PortKind::Afpacket => open_packet(
                port.interface.as_deref().unwrap_or(&port.name),
                config.switch.threads,
            ),
            PortKind::Vxlan => {
                // A sealing port's counters start at the wall clock (see vxlan::seal).
                let clock_ns = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                VxlanSocket::open(port, clock_ns, config.switch.threads)
                    .map(Device::Vxlan)
                    .map_err(|e| err(e.to_string()))
            }
        }
    }

    /// Whether `netns` holds an eth0. In a namespace adopted from a run
    /// that was killed, its TAP goes when that run's datapath process,
    /// killed with it, has exited: that is waited for, a second at most.
    fn has_eth0(&self, netns: &str) -> bool {
        let present = || {
            self.ns
                .ip(&["-n", netns, "link", "show", "dev", "eth0"])
                .is_ok()
        };
        if !self.created.iter().any(|n| n == netns) {
            return present();
        }
        for _ in 0..20 {
            if !present() {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        present()
    }

    fn add_tap(&mut self, config: &Config, port: &Port) -> Result<Tap, LabError> {
        let netns = port.netns.as_deref().unwrap_or(&port.name);
        if !netns_exists(netns) {
            self.netns_ip(&["netns", "add", netns])?;
            self.created.push(netns.to_owned());
            self.save_state()?;
        } else if self.has_eth0(netns) {
            return Err(err(format!(
                "network namespace {netns} already has an eth0; remove it or choose another netns"
            )));
        }
        // A host-side name unique to this process and TAP; it only lives
        // until the move into the namespace.
        let host_name = format!("vs{}-{}", std::process::id(), self.taps_made);
        self.taps_made += 1;
        let tap = Tap::create(&host_name, config.switch.threads).map_err(|e| err(e.to_string()))?;
        ip(&["link", "set", "dev", &host_name, "netns", netns])?;
        self.netns_ip(&[
            "-n", netns, "link", "set", "dev", &host_name, "name", "eth0",
        ])?;
        self.configure_tap(config, port, netns)?;
        Ok(tap)
    }

    /// Addresses eth0 in `netns` as `port` says: MAC, MTU, address and
    /// default route (unless DHCP), and the resolver.
    fn configure_tap(&mut self, config: &Config, port: &Port, netns: &str) -> Result<(), LabError> {
        let net = &config.networks[port.network_index];
        let mac = port.mac.to_string();
        let mtu = port.mtu.to_string();
        let n = |args: &[&str]| {
            let mut v = vec!["-n", netns];
            v.extend_from_slice(args);
            self.ns.ip(&v).map_err(err)
        };
        n(&["link", "set", "dev", "eth0", "address", &mac, "mtu", &mtu])?;
        n(&["link", "set", "dev", "lo", "up"])?;
        n(&["link", "set", "dev", "eth0", "up"])?;
        if let (Some(addr), false) = (port.ip, port.dhcp) {
            let cidr = format!("{addr}/{}", net.subnet.prefix);
            n(&["addr", "add", &cidr, "dev", "eth0"])?;
            // ipvlan L3 as Linux sets it up: every destination on-link; the
            // switch answers ARP for all of them and routes.
            match (net.driver, net.mode) {
                (Driver::Ipvlan, IpvlanMode::L3) => n(&["route", "add", "default", "dev", "eth0"])?,
                _ => n(&["route", "add", "default", "via", &net.gateway.to_string()])?,
            }
        }
        if net.driver == Driver::Bridge {
            if let Some(path) = write_resolv_conf(netns, net.gateway)? {
                if !self.resolv.contains(&path) {
                    self.resolv.push(path);
                    self.save_state()?;
                }
            }
        }
        Ok(())
    }

    fn save_state(&self) -> Result<(), LabError> {
        let mut s = format!("pid {}\n", std::process::id());
        for ns in &self.created {
            let _ = writeln!(s, "netns {ns}");
        }
        for path in &self.resolv {
            let _ = writeln!(s, "resolv {}", path.display());
        }
        fs::write(&self.state, s)
            .map_err(|e| err(format!("cannot write {}: {e}", self.state.display())))
    }

    /// Takes the namespaces and resolv.conf files to remove from the state
    /// file, which the datapath process rewrites when a reload changes them.
    pub fn resync(&mut self) {
        if let Ok(text) = fs::read_to_string(&self.state) {
            let state = StateFile::parse(&text);
            (self.created, self.resolv) = (state.netns, state.resolv);
        }
    }

    /// Closes every device and deletes the namespaces this switch created.
    pub fn teardown(&mut self) {
        self.devices.clear();
        for path in self.resolv.drain(..) {
            let _ = fs::remove_file(&path);
            if let Some(dir) = path.parent() {
                // Only if empty: the user may keep other files there.
                let _ = fs::remove_dir(dir);
            }
        }
        for ns in self.created.drain(..) {
            if let Err(e) = self.ns.ip(&["netns", "del", &ns]) {
                tracing::warn!("cannot remove network namespace {ns}: {e}");
            }
        }
        let _ = fs::remove_file(&self.state);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Reads a previous run's state file: refuses if that run is alive, else
/// returns the namespaces it created (and that still exist) as ours.
fn adopt(state: &Path, name: &str) -> Result<Vec<String>, LabError> {
    let text = match fs::read_to_string(state) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(format!("cannot read {}: {e}", state.display()))),
    };
    let state = StateFile::parse(&text);
    if let Some(pid) = state.pid {
        if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
            return Err(err(format!(
                "switch {name} is already running (pid {pid}); stop it first"
            )));
        }
    }
    let adopted: Vec<String> = state
        .netns
        .into_iter()
        .filter(|ns| netns_exists(ns))
        .collect();
    if !adopted.is_empty() {
        tracing::info!(
            "adopting namespaces left by an earlier run: {}",
            adopted.join(", ")
        );
    }
    Ok(adopted)
}

/// What `save_state` records: the process running the switch, the
/// namespaces it made and the resolv.conf files it wrote.
struct StateFile {
    pid: Option<u32>,
    netns: Vec<String>,
    resolv: Vec<PathBuf>,
}

impl StateFile {
    fn parse(text: &str) -> StateFile {
        let mut state = StateFile {
            pid: None,
            netns: Vec::new(),
            resolv: Vec::new(),
        };
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", pid)) => state.pid = pid.parse().ok(),
                Some(("netns", ns)) => state.netns.push(ns.to_owned()),
                Some(("resolv", path)) => state.resolv.push(PathBuf::from(path)),
                _ => {}
            }
        }
        state
    }
}

/// A host interface's own MAC, from sysfs; `None` if it cannot be read.
pub fn interface_mac(ifname: &str) -> Option<MacAddr> {
    fs::read_to_string(Path::new("/sys/class/net").join(ifname).join("address"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Brings a host interface up and opens it with AF_PACKET.
fn open_packet(ifname: &str, threads: usize) -> Result<Device, LabError> {
    ip(&["link", "set", "dev", ifname, "up"])?;
    PacketSocket::open_fanout(ifname, threads)
        .map(Device::Packet)
        .map_err(|e| err(format!("cannot open {ifname}: {e}")))
}

/// First line of the resolv.conf files the switch writes, so it only ever
/// replaces or removes its own.
const RESOLV_MARK: &str = "# written by vswitch: the gateway answers for the network's names";

/// Points the namespace's resolver at the gateway's DNS, as Docker points
/// containers at its embedded server: `ip netns exec` mounts
/// `/etc/netns/<netns>/resolv.conf` over `/etc/resolv.conf`. A file the user
/// wrote there is left alone (`None`).
fn write_resolv_conf(netns: &str, gateway: Ipv4Addr) -> Result<Option<PathBuf>, LabError> {
    let dir = Path::new("/etc/netns").join(netns);
    let path = dir.join("resolv.conf");
    match fs::read_to_string(&path) {
        Ok(text) if !text.starts_with(RESOLV_MARK) => {
            tracing::info!("{} exists; leaving it as it is", path.display());
            return Ok(None);
        }
        _ => {}
    }
    fs::create_dir_all(&dir)
        .and_then(|()| {
            fs::write(
                &path,
                format!("{RESOLV_MARK}\nnameserver {gateway}\noptions ndots:0\n"),
            )
        })
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(path))
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Runs `ip ARGS` in the host's namespace, which the datapath may do itself.
fn ip(args: &[&str]) -> Result<(), LabError> {
    netns_ops::ip(args).map_err(err)
}
