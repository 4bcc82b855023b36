//! Ring 3: `vswitch run` with real Linux network stacks in namespaces as the
//! containers. Skips (and says why) without root or /dev/net/tun.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vswitch::io::privileges::{self, DATAPATH_CAPS};
use vswitch_tests::e2e::{self, Running};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

/// Two containers on one network, a third on another.
fn topo(name: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "front"
driver = "bridge"
subnet = "10.61.0.0/24"
gateway = "10.61.0.1"

[[network]]
name = "back"
driver = "bridge"
subnet = "10.62.0.0/24"
gateway = "10.62.0.1"

[[port]]
name = "web"
network = "front"
kind = "tap"
netns = "{name}-web"
ip = "10.61.0.2"

[[port]]
name = "db"
network = "front"
kind = "tap"
netns = "{name}-db"
ip = "10.61.0.3"

[[port]]
name = "other"
network = "back"
kind = "tap"
netns = "{name}-other"
ip = "10.62.0.2"
"#
    )
}

fn namespaces(name: &str) -> [String; 3] {
    [
        format!("{name}-web"),
        format!("{name}-db"),
        format!("{name}-other"),
    ]
}

fn start(name: &str) -> Running {
    let ns = namespaces(name);
    e2e::remove_netns(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    Running::start(Path::new(BIN), name, &topo(name))
}

#[test]
fn containers_ping_each_other_and_the_gateway() {
    if e2e::skip("containers_ping_each_other_and_the_gateway") {
        return;
    }
    let _g = e2e::serial();
    let sw = start("vse2e-ping");
    assert!(e2e::ping("vse2e-ping-web", "10.61.0.3", &[]), "web -> db");
    assert!(e2e::ping("vse2e-ping-db", "10.61.0.2", &[]), "db -> web");
    assert!(
        e2e::ping("vse2e-ping-web", "10.61.0.1", &[]),
        "web -> gateway"
    );
    // Full-size frames: 1472 bytes of ICMP data is a 1500-byte IP packet, DF set.
    assert!(
        e2e::ping("vse2e-ping-web", "10.61.0.3", &["-s", "1472", "-M", "do"]),
        "1500-byte packets"
    );
    assert!(sw.stop().success());
}

#[test]
fn other_network_cannot_reach() {
    if e2e::skip("other_network_cannot_reach") {
        return;
    }
    let _g = e2e::serial();
    let sw = start("vse2e-iso");
    assert!(
        e2e::ping("vse2e-iso-other", "10.62.0.1", &[]),
        "other -> its gateway"
    );
    assert!(
        !e2e::ping("vse2e-iso-other", "10.61.0.2", &["-c", "2"]),
        "other reached web"
    );
    assert!(
        !e2e::ping("vse2e-iso-web", "10.62.0.2", &["-c", "2"]),
        "web reached other"
    );
    // Not even ARP crosses: the other namespace never learns web's MAC.
    let neigh = e2e::exec("vse2e-iso-other", &["ip", "neigh", "show", "10.61.0.2"]);
    assert!(!String::from_utf8_lossy(&neigh.stdout).contains("lladdr"));
    assert!(sw.stop().success());
}

#[test]
fn tcp_transfer_arrives_intact() {
    if e2e::skip("tcp_transfer_arrives_intact") {
        return;
    }
    let _g = e2e::serial();
    let sw = start("vse2e-tcp");
    e2e::transfer(
        "vse2e-tcp-web",
        "vse2e-tcp-db",
        "10.61.0.3",
        5001,
        20 * 1024 * 1024,
    );
    // The transfer's established segments crossed by the exact-match
    // cache, offloaded super-frames included, and arrived intact.
    let stats = e2e::run_ok(std::process::Command::new(BIN).args([
        "stats",
        "--name",
        "vse2e-tcp",
        "--json",
    ]));
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("json");
    let hits = stats["fast_path"]["hits"].as_u64().unwrap_or(0);
    assert!(hits >= 100, "{stats}");
    assert!(sw.stop().success());
}

#[test]
fn udp_datagrams_cross() {
    if e2e::skip("udp_datagrams_cross") {
        return;
    }
    let _g = e2e::serial();
    let sw = start("vse2e-udp");
    let bind = || UdpSocket::bind("10.61.0.3:5002").expect("bind");
    let server = e2e::listen_in_netns("vse2e-udp-db", bind, |s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..10 {
            let (n, from) = s.recv_from(&mut buf).expect("recv");
            got.push(buf[..n].to_vec());
            s.send_to(&buf[..n], from).expect("echo");
        }
        got
    });
    let client = e2e::in_netns("vse2e-udp-web", || {
        let s = UdpSocket::bind("10.61.0.2:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut echoed = Vec::new();
        let mut buf = [0u8; 2048];
        for i in 0..10u8 {
            let msg = vec![i; 100 + usize::from(i) * 100];
            s.send_to(&msg, "10.61.0.3:5002").expect("send");
            let n = s.recv(&mut buf).expect("echo back");
            echoed.push(buf[..n].to_vec());
        }
        echoed
    });
    let echoed = client.join().expect("client");
    let got = server.join().expect("server");
    let want: Vec<Vec<u8>> = (0..10u8)
        .map(|i| vec![i; 100 + usize::from(i) * 100])
        .collect();
    assert_eq!(got, want);
    assert_eq!(echoed, want);
    assert!(sw.stop().success());
}

#[test]
fn teardown_and_restart_after_a_crash_leave_nothing_behind() {
    if e2e::skip("teardown_and_restart_after_a_crash_leave_nothing_behind") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-crash";
    let ns = namespaces(name);
    let links_before = e2e::host_links();

    // SIGKILL: namespaces stay behind, the TAPs go with the process.
    let sw = start(name);
    let pid = sw.pid().expect("running");
    sw.kill();
    assert!(e2e::netns_list().contains(&ns[0]));

    // A new run adopts the leftovers and forwards again.
    let sw = Running::start(Path::new(BIN), name, &topo(name));
    assert!(e2e::ping(&ns[0], "10.61.0.3", &[]), "after restart");
    assert!(sw.stop().success());

    let left = e2e::netns_list();
    for n in &ns {
        assert!(!left.contains(n), "namespace {n} left behind");
    }
    let links_after = e2e::host_links();
    assert!(
        !links_after
            .iter()
            .any(|l| l.starts_with(&format!("vs{pid}-"))),
        "TAP left on the host"
    );
    assert_eq!(
        links_before.len(),
        links_after.len(),
        "{links_before:?} vs {links_after:?}"
    );
}

#[test]
fn a_crashed_datapath_stops_the_switch_and_the_lab_is_removed() {
    if e2e::skip("a_crashed_datapath_stops_the_switch_and_the_lab_is_removed") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-segv";
    let ns = namespaces(name);
    let sw = start(name);
    let parent = sw.pid().expect("running");
    assert!(e2e::ping(&ns[0], "10.61.0.3", &[]), "forwarding before");
    // The datapath is the child confined to its two capabilities.
    let want = DATAPATH_CAPS.iter().fold(0u64, |w, &c| w | 1 << c);
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .expect("children");
    let datapath = children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .find(|&c| privileges::caps_of(c).is_ok_and(|(eff, _, _)| eff == want))
        .expect("a datapath child");
    // A crash, as a bad pointer would cause, without leaving a core file.
    // Rust's runtime catches SIGSEGV to tell a stack overflow from other
    // faults: on any other it restores the default action and returns, so
    // that the faulting access repeats and kills. A sent signal does not
    // repeat, so the second one, once the handler is gone, is the fatal one.
    let pid = datapath.to_string();
    e2e::run_ok(Command::new("prlimit").args(["--pid", &pid, "--core=0:0"]));
    e2e::run_ok(Command::new("kill").args(["-SEGV", &pid]));
    let start = std::time::Instant::now();
    while catches_segv(datapath) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "SIGSEGV still caught"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    e2e::run_ok(Command::new("kill").args(["-SEGV", &pid]));

    let stderr = sw.stderr.clone();
    let status = sw.wait();
    let log = std::fs::read_to_string(&stderr).expect("stderr");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("vswitch: the datapath was killed by signal 11; the lab is removed"),
        "{log}"
    );
    let left = e2e::netns_list();
    for n in &ns {
        assert!(!left.contains(n), "namespace {n} left behind");
    }
    assert!(!Path::new(&format!("/run/vswitch/{name}.sock")).exists());
    assert!(!Path::new(&format!("/run/vswitch/{name}.state")).exists());
}

/// Whether process `pid` has a handler for SIGSEGV (signal 11).
fn catches_segv(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & 1 << (11 - 1) != 0)
}

#[test]
fn afpacket_port_bridges_a_host_interface() {
    if e2e::skip("afpacket_port_bridges_a_host_interface") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-afp";
    let lan = format!("{name}-lan");
    e2e::remove_netns(&[&lan]);
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "vse2e-afp0"])
        .status();
    // A "LAN host" behind a veth whose host end the switch opens with AF_PACKET.
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip");
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &lan]);
    ip(&[
        "link",
        "add",
        "vse2e-afp0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &lan,
    ]);
    ip(&["-n", &lan, "link", "set", "eth0", "up"]);
    ip(&["-n", &lan, "addr", "add", "10.61.0.9/24", "dev", "eth0"]);
    let topo = format!(
        "{}\n[[port]]\nname = \"lan\"\nnetwork = \"front\"\nkind = \"afpacket\"\ninterface = \"vse2e-afp0\"\n",
        topo(name)
    );
    e2e::remove_netns(
        &namespaces(name)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let sw = Running::start(Path::new(BIN), name, &topo);
    assert!(e2e::ping(&lan, "10.61.0.2", &[]), "lan -> web");
    assert!(
        e2e::ping(&format!("{name}-db"), "10.61.0.9", &[]),
        "db -> lan"
    );
    assert!(e2e::ping(&lan, "10.61.0.1", &[]), "lan -> gateway");
    udp_burst_leaves_in_batches_and_in_order(name, &lan);
    assert!(sw.stop().success());
    // The host interface is the user's: the switch leaves it in place.
    assert!(e2e::host_links().contains(&"vse2e-afp0".to_owned()));
    let _ = std::process::Command::new("ip")
        .args(["link", "del", "vse2e-afp0"])
        .status();
    e2e::remove_netns(&[&lan]);
}

/// A burst of small datagrams from web to the LAN host crosses the
/// AF_PACKET port in `sendmmsg` batches: some write several frames, every
/// frame the host gets was written by one, and none is reordered (the host
/// may miss some, as a flood overruns queues).
fn udp_burst_leaves_in_batches_and_in_order(name: &str, lan: &str) {
    const COUNT: u32 = 20_000;
    let bind = || UdpSocket::bind("10.61.0.9:5003").expect("bind");
    let server = e2e::listen_in_netns(lan, bind, |s| {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut seqs = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = s.recv(&mut buf) {
            let seq: [u8; 4] = buf[..n].try_into().expect("a 4-byte sequence number");
            seqs.push(u32::from_be_bytes(seq));
        }
        seqs
    });
    let client = e2e::in_netns(&format!("{name}-web"), || {
        let s = UdpSocket::bind("10.61.0.2:0").expect("bind");
        for seq in 0..COUNT {
            s.send_to(&seq.to_be_bytes(), "10.61.0.9:5003")
                .expect("send");
        }
    });
    client.join().expect("client");
    let seqs = server.join().expect("server");
    assert!(!seqs.is_empty(), "no datagram arrived");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "datagrams reordered or repeated"
    );
    let out = e2e::run_ok(Command::new(BIN).args(["stats", "--name", name, "--json"]));
    let stats: serde_json::Value = serde_json::from_str(&out).expect("json");
    let count = |k: &str| stats["io"][k].as_u64().expect(k);
    let (batches, batched) = (count("tx_batches"), count("tx_batched"));
    assert!(
        batched >= seqs.len() as u64,
        "{batched} batched, {} received",
        seqs.len()
    );
    assert!(
        batched > batches,
        "{batched} frames in {batches} sendmmsg calls"
    );
}

#[test]
fn control_socket_answers_fdb_and_stats() {
    if e2e::skip("control_socket_answers_fdb_and_stats") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-ctl";
    let sw = start(name);
    assert!(e2e::ping(&format!("{name}-web"), "10.61.0.3", &[]));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .output()
            .expect("run vswitch");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let fdb = run(&["fdb", "--name", name]);
    assert!(
        fdb.contains("02:42:0a:3d:00:02 dev web master front"),
        "{fdb}"
    );
    assert!(
        fdb.contains("02:42:0a:3d:00:03 dev db master front"),
        "{fdb}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&run(&["stats", "--name", name, "--json"])).expect("json");
    let web = &stats["ports"][0];
    assert_eq!(web["port"], "web");
    assert!(web["rx_packets"].as_u64().unwrap_or(0) >= 3, "{stats}");
    let sock = format!("/run/vswitch/{name}.sock");
    let mode =
        std::fs::metadata(&sock).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.ok().map(|m| m & 0o777), Some(0o600));
    assert!(sw.stop().success());
    assert!(!Path::new(&sock).exists(), "socket left behind");
}

#[test]
fn metrics_endpoint_serves_the_counters() {
    if e2e::skip("metrics_endpoint_serves_the_counters") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-met";
    let ns = namespaces(name);
    e2e::remove_netns(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    let sw = Running::start_with(
        Path::new(BIN),
        name,
        &topo(name),
        &["--metrics", "127.0.0.1:19617"],
    );
    assert!(e2e::ping(&ns[0], "10.61.0.3", &[]));
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect("127.0.0.1:19617").expect("connect");
        use std::io::{Read, Write};
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        answer
    };
    let page = get("/metrics");
    assert!(page.starts_with("HTTP/1.0 200 OK\r\n"), "{page}");
    let rx = page
        .lines()
        .find_map(|l| l.strip_prefix("vswitch_port_rx_packets_total{port=\"web\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no web rx counter in\n{page}"));
    assert!(rx >= 3, "{page}");
    assert!(
        page.contains("# TYPE vswitch_conntrack_entries gauge\nvswitch_conntrack_entries "),
        "{page}"
    );
    assert!(get("/").starts_with("HTTP/1.0 404 Not Found"));
    assert!(sw.stop().success());
}
