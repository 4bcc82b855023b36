//! Ring 3: `threads = 2`. Every TAP has two queues, each read by its own
//! datapath thread pinned to a core; the kernel spreads a container's flows
//! over the queues, and both threads share one pipeline. Parallel TCP
//! transfers arrive byte for byte, both threads carry frames and a live
//! capture sees the frames of every flow, a port added
//! by a reload is read on both queues, and an AF_PACKET port's two sockets
//! (a fanout group) are both read.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use packet::{Parsed, L4};
use vswitch::capture::CaptureReader;

use vswitch_tests::e2e::{self, parallel_transfers, Running, Veth, FLOWS};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

fn topo(name: &str, ports: &[(&str, &str)]) -> String {
    let mut t = format!(
        r#"
[switch]
name = "{name}"
threads = 2

[[network]]
name = "front"
driver = "bridge"
subnet = "10.64.0.0/24"
gateway = "10.64.0.1"
"#
    );
    for (port, ip) in ports {
        t.push_str(&format!(
            "\n[[port]]\nname = \"{port}\"\nnetwork = \"front\"\nkind = \"tap\"\nnetns = \"{name}-{port}\"\nip = \"{ip}\"\n"
        ));
    }
    t
}

fn start(name: &str, ports: &[(&str, &str)]) -> Running {
    let ns: Vec<String> = ["web", "db", "cache"]
        .iter()
        .map(|p| format!("{name}-{p}"))
        .collect();
    e2e::remove_netns(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    Running::start(Path::new(BIN), name, &topo(name, ports))
}

/// The queues of eth0 in `ns`, as sysfs lists them (`rx-0`, `tx-0`, ...).
fn queues(ns: &str) -> Vec<String> {
    let out = e2e::exec(ns, &["ls", "/sys/class/net/eth0/queues"]);
    let mut q: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    q.sort();
    q
}

/// The server ports (the lower of the two) of the TCP frames in `pcap`.
fn server_ports(pcap: &Path) -> BTreeSet<u16> {
    let file = std::fs::File::open(pcap).expect("open the capture");
    let mut reader = CaptureReader::new(std::io::BufReader::new(file)).expect("a capture");
    let mut ports = BTreeSet::new();
    while let Some(p) = reader.next_packet().expect("a record") {
        if let Ok(Parsed {
            l4: L4::Tcp {
                src_port, dst_port, ..
            },
            ..
        }) = Parsed::parse(p.data)
        {
            ports.insert(src_port.min(dst_port));
        }
    }
    ports
}

/// Frames each datapath thread received, from `vswitch stats --json`.
fn thread_frames(name: &str) -> Vec<u64> {
    let out = e2e::run_ok(Command::new(BIN).args(["stats", "--name", name, "--json"]));
    let stats: serde_json::Value = serde_json::from_str(&out).expect("json");
    let frames = stats["io"]["thread_frames"]
        .as_array()
        .expect("thread_frames");
    frames
        .iter()
        .map(|n| n.as_u64().expect("a count"))
        .collect()
}

/// The datapath process (the child of `parent` with the most threads: a
/// helper it forks for a moment has one): its threads' names and the CPUs
/// each may run on.
fn datapath_threads(parent: u32) -> Vec<(String, String)> {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .expect("children");
    let tasks_of =
        |pid: &u32| std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    let child: u32 = children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .max_by_key(tasks_of)
        .expect("a datapath child");
    let tasks = std::fs::read_dir(format!("/proc/{child}/task")).expect("tasks");
    let mut threads: Vec<(String, String)> = tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            Some((comm.trim().to_owned(), cpus.trim().to_owned()))
        })
        .collect();
    threads.sort();
    threads
}

#[test]
fn two_pinned_threads_share_the_flows_and_every_byte_arrives() {
    if e2e::skip("two_pinned_threads_share_the_flows_and_every_byte_arrives") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-mq";
    let sw = start(name, &[("web", "10.64.0.2"), ("db", "10.64.0.3")]);
    let (web, db) = (format!("{name}-web"), format!("{name}-db"));
    for ns in [&web, &db] {
        assert_eq!(queues(ns), ["rx-0", "rx-1", "tx-0", "tx-1"], "{ns}");
        assert!(
            e2e::offload_on(ns, "tcp-segmentation-offload"),
            "TSO off in {ns}"
        );
    }
    let threads = datapath_threads(sw.pid().expect("running"));
    let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["datapath-1", "vswitch"], "{threads:?}");
    for (thread, cpus) in &threads {
        assert!(cpus.parse::<usize>().is_ok(), "{thread} may run on {cpus}");
    }

    assert!(e2e::ping(&web, "10.64.0.3", &[]));
    let pcap = std::env::temp_dir().join(format!("vswitch-e2e-{name}.pcap"));
    let path = pcap.to_str().expect("utf-8 path");
    let mut capture = e2e::capture(
        Path::new(BIN),
        &["db", "--name", name, "-w", path, "-s", "128", "tcp"],
        Stdio::null(),
    );
    parallel_transfers(&web, &db, "10.64.0.3", 5301, 4 << 20);
    parallel_transfers(&db, &web, "10.64.0.2", 5401, 4 << 20);
    let frames = thread_frames(name);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(frames.iter().all(|&n| n > 0), "a thread idle: {frames:?}");
    e2e::run_ok(Command::new("kill").args(["-INT", &capture.id().to_string()]));
    assert!(capture.wait().expect("capture").success());
    // Whichever thread carried a flow, the capture has its frames.
    let want: BTreeSet<u16> = (5301..5301 + FLOWS).chain(5401..5401 + FLOWS).collect();
    assert_eq!(server_ports(&pcap), want);
    let _ = std::fs::remove_file(&pcap);
    assert!(sw.stop().success());
}

#[test]
fn a_port_added_by_reload_is_read_on_both_queues() {
    if e2e::skip("a_port_added_by_reload_is_read_on_both_queues") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-mqr";
    let sw = start(name, &[("web", "10.64.0.2")]);
    let next = topo(name, &[("web", "10.64.0.2"), ("cache", "10.64.0.4")]);
    let path = std::env::temp_dir().join(format!("vswitch-e2e-{name}-next.toml"));
    std::fs::write(&path, next).expect("write config");
    let out = e2e::reload(Path::new(BIN), name, &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (web, cache) = (format!("{name}-web"), format!("{name}-cache"));
    assert_eq!(queues(&cache), ["rx-0", "rx-1", "tx-0", "tx-1"]);
    // A flow the kernel puts on queue 1 of the new TAP reaches web only if
    // thread 1 took up that queue after the reload.
    parallel_transfers(&cache, &web, "10.64.0.2", 5501, 1 << 20);
    assert!(e2e::ping(&cache, "10.64.0.2", &[]));
    assert!(sw.stop().success());
    let _ = std::fs::remove_file(path);
}

#[test]
fn both_sockets_of_an_afpacket_port_are_read() {
    if e2e::skip("both_sockets_of_an_afpacket_port_are_read") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-mqa";
    let lan = Veth::to_netns("vse2e-mqa0", "vse2e-mqa-lan", "10.64.0.9/24");
    let topo = topo(name, &[("web", "10.64.0.2")])
        + "\n[[port]]\nname = \"lan\"\nnetwork = \"front\"\nkind = \"afpacket\"\ninterface = \"vse2e-mqa0\"\n";
    e2e::remove_netns(&[&format!("{name}-web")]);
    let sw = Running::start(Path::new(BIN), name, &topo);
    let (web, lan_ns) = (format!("{name}-web"), "vse2e-mqa-lan");
    // The kernel hands each flow to one socket of the group by hash: a flow
    // on the socket of thread 1 arrives only if that thread reads it.
    parallel_transfers(lan_ns, &web, "10.64.0.2", 5601, 1 << 20);
    parallel_transfers(&web, lan_ns, "10.64.0.9", 5701, 1 << 20);
    assert!(sw.stop().success());
    drop(lan);
}

/// The highest CPU this process may run on.
fn last_allowed_cpu() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    list.trim()
        .rsplit([',', '-'])
        .next()
        .and_then(|c| c.parse().ok())
        .expect("a CPU number")
}

#[test]
fn cpus_puts_the_threads_on_the_cpus_it_names() {
    if e2e::skip("cpus_puts_the_threads_on_the_cpus_it_names") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-cpu";
    let cpu = last_allowed_cpu();
    let pinned = |cpus: &str| {
        topo(name, &[("web", "10.64.0.2"), ("db", "10.64.0.3")])
            .replace("threads = 2\n", &format!("threads = 2\ncpus = [{cpus}]\n"))
    };
    // Left alone, thread 0 would take the first allowed CPU.
    e2e::remove_netns(&[&format!("{name}-web"), &format!("{name}-db")]);
    let sw = Running::start(Path::new(BIN), name, &pinned(&cpu.to_string()));
    assert!(e2e::ping(&format!("{name}-web"), "10.64.0.3", &[]));
    let threads = datapath_threads(sw.pid().expect("running"));
    let want = [("datapath-1", cpu), ("vswitch", cpu)].map(|(t, c)| (t.to_owned(), c.to_string()));
    assert_eq!(threads, want);
    assert!(sw.stop().success());

    // A CPU the process may not use: `run` says so and stops.
    let config = std::env::temp_dir().join(format!("vswitch-e2e-{name}-bad.toml"));
    std::fs::write(&config, pinned("1023")).expect("write topo");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cpus names CPU 1023"), "{err}");
    let _ = std::fs::remove_file(config);
}
