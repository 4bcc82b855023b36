//! Ring 3: the overlay. A vxlan port carries a network across a veth
//! "underlay" to a Linux kernel VTEP in another namespace, and to a second
//! vswitch running inside another namespace as if on another host; with
//! `encrypt = true`, a capture of the underlay shows no plaintext.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vswitch_tests::e2e::{self, Running};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");
const LEN: usize = 5 * 1024 * 1024;
/// Sent through the overlay in the clear; a capture of the underlay shows
/// it unless the port seals.
const MARKER: &[u8] = b"vx-marker-plaintext-4f1c9e";

fn ip(args: &[&str]) {
    e2e::run_ok(Command::new("ip").args(args));
}

/// An underlay: a veth pair with `host` (addressed `host_ip`/24) in the
/// root namespace and eth0 (`peer_ip`/24) in namespace `ns`. Removed on drop.
struct Underlay {
    host: String,
    ns: String,
}

impl Underlay {
    fn new(host: &str, host_ip: &str, ns: &str, peer_ip: &str) -> Underlay {
        let u = Underlay {
            host: host.to_owned(),
            ns: ns.to_owned(),
        };
        u.remove();
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", host]);
        ip(&["link", "set", host, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{peer_ip}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        u
    }

    /// A Linux VTEP in the namespace: vx0, VNI 42, from `peer_ip` to the
    /// switch's `host_ip`, addressed `overlay_ip`/24.
    fn linux_vtep(&self, host_ip: &str, peer_ip: &str, overlay_ip: &str) {
        let ns = self.ns.as_str();
        // A veth hands the local stack checksums its sender left to offload,
        // and a UDP socket cannot tell: a wire would carry them complete.
        let ethtool = e2e::exec(ns, &["ethtool", "-K", "eth0", "tx", "off"]);
        assert!(ethtool.status.success(), "ethtool -K eth0 tx off");
        ip(&[
            "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "42", "remote", host_ip,
            "local", peer_ip, "dstport", "4789", "dev", "eth0",
        ]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{overlay_ip}/24"),
            "dev",
            "vx0",
        ]);
        ip(&["-n", ns, "link", "set", "vx0", "up"]);
    }

    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .status();
        e2e::remove_netns(&[&self.ns]);
    }
}

/// A namespace the test made, removed on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        e2e::remove_netns(&[&self.0]);
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A switch named `name` with network 10.4N.0.0/24, one tap port `tap`
/// (address `tap_ip`) and a vxlan port with VNI 42 between `local` and
/// `remote`; `seal` adds `encrypt = true` with `key_file`.
fn topo(
    name: &str,
    net: u8,
    tap: &str,
    tap_ip: &str,
    local: &str,
    remote: &str,
    seal: Option<&Path>,
) -> String {
    let seal = seal.map_or(String::new(), |k| {
        format!("encrypt = true\nkey_file = \"{}\"\n", k.display())
    });
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "ov"
subnet = "10.{net}.0.0/24"
gateway = "10.{net}.0.1"

[[port]]
name = "{tap}"
network = "ov"
netns = "{tap}"
ip = "{tap_ip}"

[[port]]
name = "tun"
network = "ov"
kind = "vxlan"
vni = 42
remote = "{remote}"
local = "{local}"
{seal}"#
    )
}

fn stdout(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_of(ns: &str) -> String {
    let out = stdout(e2e::exec(ns, &["cat", "/sys/class/net/eth0/address"]));
    out.trim().to_owned()
}

fn switch_fdb(name: &str) -> String {
    stdout(
        Command::new(BIN)
            .args(["fdb", "--name", name])
            .output()
            .expect("vswitch fdb"),
    )
}

/// tcpdump on `iface`, writing the VXLAN datagrams it sees to `file`.
fn capture(iface: &str, file: &Path) -> Child {
    let child = Command::new("tcpdump")
        .args(["-i", iface, "-U", "-n", "-w"])
        .arg(file)
        .args(["udp", "port", "4789"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    // Until it listens, what we send goes unseen.
    std::thread::sleep(Duration::from_millis(1500));
    child
}

fn stop_capture(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Sends MARKER a few times over UDP from namespace `from` to `to_ip`.
fn send_marker(from: &str, to_ip: &str) {
    let to = format!("{to_ip}:7777");
    e2e::in_netns(from, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        for _ in 0..5 {
            s.send_to(MARKER, &to).expect("send");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .join()
    .expect("marker sender");
}

#[test]
fn linux_vtep_and_a_container_ping_move_5mb_and_learn_each_other() {
    if e2e::skip("linux_vtep_and_a_container_ping_move_5mb_and_learn_each_other") {
        return;
    }
    let _serial = e2e::serial();
    e2e::remove_netns(&["vx-a1"]);
    let underlay = Underlay::new("vx-u0", "198.18.42.1", "vx-peer", "198.18.42.2");
    underlay.linux_vtep("198.18.42.1", "198.18.42.2", "10.42.0.100");
    let switch = Running::start(
        Path::new(BIN),
        "vx-a",
        &topo(
            "vx-a",
            42,
            "vx-a1",
            "10.42.0.2",
            "198.18.42.1",
            "198.18.42.2",
            None,
        ),
    );

    // Endpoints get the overlay's MTU, as Docker gives them.
    let mtu = stdout(e2e::exec("vx-a1", &["cat", "/sys/class/net/eth0/mtu"]));
    assert_eq!(mtu.trim(), "1450");

    assert!(
        e2e::ping("vx-a1", "10.42.0.100", &[]),
        "container -> Linux VTEP"
    );
    assert!(
        e2e::ping("vx-peer", "10.42.0.2", &[]),
        "Linux VTEP -> container"
    );
    // The largest packet the MTU lets through, DF set.
    assert!(e2e::ping(
        "vx-a1",
        "10.42.0.100",
        &["-M", "do", "-s", "1422"]
    ));

    e2e::transfer("vx-a1", "vx-peer", "10.42.0.100", 5201, LEN);
    e2e::transfer("vx-peer", "vx-a1", "10.42.0.2", 5202, LEN);
    // The transfers' established segments, in by the tunnel and out to it,
    // took the exact-match cache.
    let hits = e2e::fast_path_hits(Path::new(BIN), "vx-a");
    assert!(hits > 1000, "fast path hits: {hits}");

    // The kernel learned the container behind the switch's VTEP...
    let kernel = stdout(e2e::exec(
        "vx-peer",
        &["bridge", "fdb", "show", "dev", "vx0"],
    ));
    let container = mac_of("vx-a1");
    assert!(
        kernel
            .lines()
            .any(|l| l.starts_with(&container) && l.contains("dst 198.18.42.1")),
        "kernel fdb lacks {container} dst 198.18.42.1:\n{kernel}"
    );
    // ...and the switch the kernel's device behind the kernel's.
    let vx0 = stdout(e2e::exec("vx-peer", &["cat", "/sys/class/net/vx0/address"]));
    let ours = switch_fdb("vx-a");
    assert!(
        ours.lines()
            .any(|l| l.starts_with(vx0.trim()) && l.contains("dev tun dst 198.18.42.2")),
        "switch fdb lacks {} dst 198.18.42.2:\n{ours}",
        vx0.trim()
    );
    assert!(switch.stop().success());
}

#[test]
fn with_two_threads_both_sockets_of_a_vxlan_port_are_read() {
    if e2e::skip("with_two_threads_both_sockets_of_a_vxlan_port_are_read") {
        return;
    }
    let _serial = e2e::serial();
    e2e::remove_netns(&["vx-t1"]);
    let underlay = Underlay::new("vx-t0", "198.18.43.1", "vx-tpeer", "198.18.43.2");
    underlay.linux_vtep("198.18.43.1", "198.18.43.2", "10.43.0.100");
    let topo = topo(
        "vx-t",
        43,
        "vx-t1",
        "10.43.0.2",
        "198.18.43.1",
        "198.18.43.2",
        None,
    )
    .replace("[switch]\n", "[switch]\nthreads = 2\n");
    let switch = Running::start(Path::new(BIN), "vx-t", &topo);
    // The kernel's VTEP picks each flow's outer source port by its hash,
    // and the socket group is spread by those ports: a flow on thread 1's
    // socket arrives only if that thread reads it.
    e2e::parallel_transfers("vx-tpeer", "vx-t1", "10.43.0.2", 5301, 1 << 20);
    e2e::parallel_transfers("vx-t1", "vx-tpeer", "10.43.0.100", 5401, 1 << 20);
    assert!(switch.stop().success());
}

/// Two switches joined by a veth underlay, the second inside namespace
/// vx-host2 as if on another host; returns what a capture of the underlay
/// saw while the containers talked.
fn two_hosts(prefix: &str, net: u8, seal: bool) -> Vec<u8> {
    let (c1, c2) = (format!("{prefix}c1"), format!("{prefix}c2"));
    let (host2, link) = (format!("{prefix}host2"), format!("{prefix}u1"));
    e2e::remove_netns(&[&c1, &c2]);
    let under1 = format!("198.18.{net}.1");
    let under2 = format!("198.18.{net}.2");
    let _underlay = Underlay::new(&link, &under1, &host2, &under2);
    let dir = std::env::temp_dir().join(format!("vswitch-e2e-{prefix}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = dir.join("overlay.key");
    std::fs::write(
        &key,
        "5d41402abc4b2a76b9719d911017c592ae2d4e6f1b2c3d4e5f60718293a4b5c6\n",
    )
    .expect("key");
    let key = seal.then_some(key.as_path());
    let (a_ip, b_ip) = (format!("10.{net}.0.2"), format!("10.{net}.0.3"));
    let one = Running::start(
        Path::new(BIN),
        &format!("{prefix}1"),
        &topo(
            &format!("{prefix}1"),
            net,
            &c1,
            &a_ip,
            &under1,
            &under2,
            key,
        ),
    );
    // Under `ip netns exec` the switch has a mount namespace of its own, so
    // a namespace it created would be invisible here: c2's is made first.
    ip(&["netns", "add", &c2]);
    let _c2 = Netns(c2.clone());
    let two = Running::start_in_netns(
        Path::new(BIN),
        &host2,
        &format!("{prefix}2"),
        &topo(
            &format!("{prefix}2"),
            net,
            &c2,
            &b_ip,
            &under2,
            &under1,
            key,
        ),
    );

    assert!(e2e::ping(&c1, &b_ip, &[]), "{c1} -> {c2}");
    assert!(e2e::ping(&c2, &a_ip, &[]), "{c2} -> {c1}");
    e2e::transfer(&c1, &c2, &b_ip, 5203, LEN);

    let pcap = dir.join("underlay.pcap");
    let tcpdump = capture(&link, &pcap);
    send_marker(&c1, &b_ip);
    assert!(e2e::ping(&c1, &b_ip, &[]), "{c1} -> {c2} while captured");
    stop_capture(tcpdump);

    // Each switch learned the other's container behind the other's VTEP.
    let fdb = switch_fdb(&format!("{prefix}1"));
    let remote = mac_of(&c2);
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(&remote) && l.contains(&format!("dst {under2}"))),
        "{remote} not learned behind {under2}:\n{fdb}"
    );
    assert!(one.stop().success());
    assert!(two.stop().success());
    let seen = std::fs::read(&pcap).expect("capture");
    assert!(seen.len() > 24 + 16 * 10, "the capture saw too little");
    seen
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn two_switches_on_two_hosts_join_one_network() {
    if e2e::skip("two_switches_on_two_hosts_join_one_network") {
        return;
    }
    let _serial = e2e::serial();
    let seen = two_hosts("vx-p", 43, false);
    // Plain VXLAN: what the containers say is on the wire for anyone.
    assert!(contains(&seen, MARKER), "the plain overlay hid the marker?");
}

#[test]
fn sealed_overlay_shows_no_plaintext_on_the_underlay() {
    if e2e::skip("sealed_overlay_shows_no_plaintext_on_the_underlay") {
        return;
    }
    let _serial = e2e::serial();
    let seen = two_hosts("vx-s", 44, true);
    assert!(
        !contains(&seen, MARKER),
        "the marker crossed the underlay in the clear"
    );
}
