//! Ring 3 for the gateway's services: a real DHCP client (busybox udhcpc)
//! takes its lease, real resolvers (dig, glibc's getent) ask the embedded
//! DNS. Skips (and says why) without root, /dev/net/tun or the tools.

use std::path::Path;
use std::process::Command;

use vswitch_tests::e2e::{self, Running};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

fn topo(name: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "front"
subnet = "10.65.0.0/24"

[[network]]
name = "back"
subnet = "10.66.0.0/24"

[[port]]
name = "web"
network = "front"
netns = "{name}-web"
ip = "10.65.0.2"

[[port]]
name = "cache"
network = "front"
netns = "{name}-cache"
ip = "dhcp"
aliases = ["redis"]

[[port]]
name = "other"
network = "back"
netns = "{name}-other"
ip = "10.66.0.2"
"#
    )
}

/// Why the tools these tests drive are missing, if they are.
fn missing_tools() -> Option<String> {
    for (tool, arg) in [("busybox", "--help"), ("dig", "-v")] {
        if Command::new(tool).arg(arg).output().is_err() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn stdout(ns: &str, args: &[&str]) -> String {
    let out = e2e::exec(ns, args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dhcp_and_dns_serve_real_clients() {
    if e2e::skip("dhcp_and_dns_serve_real_clients") {
        return;
    }
    if let Some(why) = missing_tools() {
        eprintln!("skipping dhcp_and_dns_serve_real_clients: {why}");
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-svc";
    let [web, cache, other] = ["web", "cache", "other"].map(|p| format!("{name}-{p}"));
    e2e::remove_netns(&[&web, &cache, &other]);
    let sw = Running::start(Path::new(BIN), name, &topo(name));

    // The dhcp port's eth0 is up but has no address until udhcpc asks;
    // the script configures what the lease says.
    let script = std::env::temp_dir().join(format!("{name}-udhcpc.sh"));
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
         ip addr add \"$ip/$mask\" dev \"$interface\"\n\
         ip route add default via \"$router\"\n",
    )
    .expect("write udhcpc script");
    let chmod = Command::new("chmod").arg("+x").arg(&script).status();
    assert!(chmod.map(|s| s.success()).unwrap_or(false));
    let dhcp = e2e::exec(
        &cache,
        &[
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            script.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        dhcp.status.success(),
        "udhcpc: {}{}",
        String::from_utf8_lossy(&dhcp.stdout),
        String::from_utf8_lossy(&dhcp.stderr)
    );
    let addr = stdout(&cache, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("inet 10.65.0.3/24"), "{addr}");
    assert!(
        e2e::ping(&cache, "10.65.0.1", &[]),
        "leased address reaches the gateway"
    );
    assert!(e2e::ping(&cache, "10.65.0.2", &[]), "and web");

    // dig straight at the gateway: names, aliases, reverse, scoping.
    let dig = |ns: &str, args: &[&str]| {
        let mut a = vec!["dig", "+short", "+time=2", "+tries=1", "@10.65.0.1"];
        a.extend_from_slice(args);
        stdout(ns, &a).trim().to_owned()
    };
    assert_eq!(dig(&web, &["cache"]), "10.65.0.3");
    assert_eq!(dig(&web, &["redis"]), "10.65.0.3");
    assert_eq!(dig(&web, &["-x", "10.65.0.3"]), "cache.");
    let full = stdout(&web, &["dig", "+time=2", "+tries=1", "@10.65.0.1", "other"]);
    assert!(full.contains("status: NXDOMAIN"), "{full}");
    // The same over TCP (RFC 7766), connection and all.
    assert_eq!(dig(&web, &["+tcp", "cache"]), "10.65.0.3");
    assert_eq!(dig(&web, &["+tcp", "-x", "10.65.0.2"]), "web.");
    let full = stdout(
        &web,
        &["dig", "+tcp", "+time=2", "+tries=1", "@10.65.0.1", "other"],
    );
    assert!(full.contains("status: NXDOMAIN"), "{full}");
    assert!(full.contains("(TCP)"), "{full}");

    // The namespace's resolver points at the gateway: getent resolves.
    let resolv = std::fs::read_to_string(format!("/etc/netns/{web}/resolv.conf"))
        .expect("resolv.conf written");
    assert!(resolv.contains("nameserver 10.65.0.1"), "{resolv}");
    let hosts = stdout(&web, &["getent", "hosts", "cache"]);
    assert!(hosts.starts_with("10.65.0.3"), "{hosts}");
    let hosts = stdout(&other, &["getent", "hosts", "cache"]);
    assert!(hosts.is_empty(), "another network resolved cache: {hosts}");

    assert!(sw.stop().success());
    assert!(
        !Path::new(&format!("/etc/netns/{web}")).exists(),
        "resolv.conf left behind"
    );
    let _ = std::fs::remove_file(script);
}
