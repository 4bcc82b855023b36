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

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use packet::MacAddr;

use crate::config::{Config, Driver, Port, PortKind};

use super::afpacket::PacketSocket;
use super::tap::Tap;

pub const RUN_DIR: &str = "/run/vswitch";

/// A port's device, indexed like the switch's ports.
pub enum Device {
    Tap(Tap),
    Packet(PacketSocket),
}

/// What `setup` built; `teardown` (or drop) removes it.
pub struct Lab {
    pub devices: Vec<Device>,
    created: Vec<String>,
    /// resolv.conf files written for namespaces, removed at teardown.
    resolv: Vec<PathBuf>,
    state: PathBuf,
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
            created: adopt(&state, &config.switch.name)?,
            resolv: Vec::new(),
            state,
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
        // The uplink is the switch's last port.
        if let Some(u) = &config.uplink {
            match open_packet(&u.interface) {
                Ok(d) => lab.devices.push(d),
                Err(e) => {
                    lab.teardown();
                    return Err(err(format!("uplink: {}", e.0)));
                }
            }
        }
        Ok(lab)
    }

    fn add_port(&mut self, config: &Config, port: &Port) -> Result<Device, LabError> {
        match port.kind {
            PortKind::Tap => self.add_tap(config, port).map(Device::Tap),
            PortKind::Afpacket => open_packet(port.interface.as_deref().unwrap_or(&port.name)),
            PortKind::Vxlan => Err(err("kind = \"vxlan\" ports are not supported yet")),
        }
    }

    /// Whether `netns` holds an eth0. In a namespace adopted from a run
    /// that was killed, its TAP goes when that run's datapath process,
    /// killed with it, has exited: that is waited for, a second at most.
    fn has_eth0(&self, netns: &str) -> bool {
        let present = || ip(&["-n", netns, "link", "show", "dev", "eth0"]).is_ok();
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
            ip(&["netns", "add", netns])?;
            self.created.push(netns.to_owned());
            self.save_state()?;
        } else if self.has_eth0(netns) {
            return Err(err(format!(
                "network namespace {netns} already has an eth0; remove it or choose another netns"
            )));
        }
        // A host-side name unique to this process and port; it only lives
        // until the move into the namespace.
        let host_name = format!("vs{}-{}", std::process::id(), self.devices.len());
        let tap = Tap::create(&host_name).map_err(|e| err(e.to_string()))?;
        let net = &config.networks[port.network_index];
        let mac = port.mac.to_string();
        let mtu = port.mtu.to_string();
        ip(&["link", "set", "dev", &host_name, "netns", netns])?;
        let n = |args: &[&str]| {
            let mut v = vec!["-n", netns];
            v.extend_from_slice(args);
            ip(&v)
        };
        n(&["link", "set", "dev", &host_name, "name", "eth0"])?;
        n(&["link", "set", "dev", "eth0", "address", &mac, "mtu", &mtu])?;
        n(&["link", "set", "dev", "lo", "up"])?;
        n(&["link", "set", "dev", "eth0", "up"])?;
        if let (Some(addr), false) = (port.ip, port.dhcp) {
            let cidr = format!("{addr}/{}", net.subnet.prefix);
            n(&["addr", "add", &cidr, "dev", "eth0"])?;
            n(&["route", "add", "default", "via", &net.gateway.to_string()])?;
        }
        if net.driver == Driver::Bridge {
            if let Some(path) = write_resolv_conf(netns, net.gateway)? {
                self.resolv.push(path);
            }
        }
        Ok(tap)
    }

    fn save_state(&self) -> Result<(), LabError> {
        let mut s = format!("pid {}\n", std::process::id());
        for ns in &self.created {
            let _ = writeln!(s, "netns {ns}");
        }
        fs::write(&self.state, s)
            .map_err(|e| err(format!("cannot write {}: {e}", self.state.display())))
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
            if let Err(e) = ip(&["netns", "del", &ns]) {
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
    let mut adopted = Vec::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("pid", pid)) => {
                if let Ok(pid) = pid.parse::<u32>() {
                    if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
                        return Err(err(format!(
                            "switch {name} is already running (pid {pid}); stop it first"
                        )));
                    }
                }
            }
            Some(("netns", ns)) if netns_exists(ns) => adopted.push(ns.to_owned()),
            _ => {}
        }
    }
    if !adopted.is_empty() {
        tracing::info!(
            "adopting namespaces left by an earlier run: {}",
            adopted.join(", ")
        );
    }
    Ok(adopted)
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
fn open_packet(ifname: &str) -> Result<Device, LabError> {
    ip(&["link", "set", "dev", ifname, "up"])?;
    PacketSocket::open(ifname)
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

/// Runs `ip ARGS`, turning a failure into a message with its stderr.
fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| err(format!("cannot run ip (is iproute2 installed?): {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(err(format!(
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
