//! Ring 3: offloads end to end. TAPs give the containers TSO and checksum
//! offload, and 64 KB super-frames cross the switch whole: to another TAP,
//! to and from a veth peer behind an AF_PACKET port, and through a VLAN
//! trunk where the tag push and pop move the checksum offset.

use std::path::Path;
use std::process::Command;

use vswitch_tests::e2e::{self, Running, Veth};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");
const LEN: usize = 20 * 1024 * 1024;

/// A switch with network 10.63.0.0/24 on VLAN 100 and the given ports. Its
/// datapath busy-polls, so these transfers also cover the polling loop.
fn topo(name: &str, gateway: &str, ports: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"
busy_poll_us = 2000

[[network]]
name = "front"
driver = "bridge"
subnet = "10.63.0.0/24"
gateway = "{gateway}"
vlan = 100
{ports}"#
    )
}

fn tap(name: &str, port: &str, ip: &str) -> String {
    format!(
        "\n[[port]]\nname = \"{port}\"\nnetwork = \"front\"\nkind = \"tap\"\nnetns = \"{name}-{port}\"\nip = \"{ip}\"\n"
    )
}

/// An AF_PACKET port on `ifname`, carrying VLAN 100 tagged when `trunk`.
fn afpacket(ifname: &str, trunk: bool) -> String {
    let vlans = if trunk {
        "vlan = 4000\ntrunk = [100]\n"
    } else {
        ""
    };
    format!(
        "\n[[port]]\nname = \"up\"\nnetwork = \"front\"\nkind = \"afpacket\"\ninterface = \"{ifname}\"\n{vlans}"
    )
}

fn start(name: &str, gateway: &str, ports: &str, tap_ports: &[&str]) -> Running {
    let ns: Vec<String> = tap_ports.iter().map(|p| format!("{name}-{p}")).collect();
    e2e::remove_netns(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    Running::start(Path::new(BIN), name, &topo(name, gateway, ports))
}

/// Mean size of the frames port `index` of switch `name` received and
/// sent: above 1514 bytes only if super-frames crossed whole.
fn mean_frame(name: &str, index: usize) -> (u64, u64) {
    let out = Command::new(BIN)
        .args(["stats", "--name", name, "--json"])
        .output()
        .expect("run vswitch stats");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let p = &stats["ports"][index];
    let mean = |bytes: &str, packets: &str| {
        p[bytes].as_u64().unwrap_or(0) / p[packets].as_u64().unwrap_or(0).max(1)
    };
    (
        mean("rx_bytes", "rx_packets"),
        mean("tx_bytes", "tx_packets"),
    )
}

#[test]
fn tso_super_frames_cross_between_taps_and_to_a_veth_peer() {
    if e2e::skip("tso_super_frames_cross_between_taps_and_to_a_veth_peer") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-tso";
    let lan = Veth::to_netns("vse2e-tso0", "vse2e-tso-lan", "10.63.0.9/24");
    let ports =
        tap(name, "web", "10.63.0.2") + &tap(name, "db", "10.63.0.3") + &afpacket(&lan.a, false);
    let sw = start(name, "10.63.0.1", &ports, &["web", "db"]);
    let (web, db, lan_ns) = (format!("{name}-web"), format!("{name}-db"), "vse2e-tso-lan");
    for ns in [&web, &db] {
        assert!(
            e2e::offload_on(ns, "tcp-segmentation-offload"),
            "TSO off in {ns}"
        );
        assert!(
            e2e::offload_on(ns, "tx-checksumming"),
            "tx csum off in {ns}"
        );
    }
    e2e::transfer(&web, &db, "10.63.0.3", 5101, LEN);
    e2e::transfer(&db, &web, "10.63.0.2", 5102, LEN);
    // Through AF_PACKET both ways: the veth peer sends super-frames too.
    assert!(e2e::offload_on(lan_ns, "tcp-segmentation-offload"));
    e2e::transfer(&web, lan_ns, "10.63.0.9", 5103, LEN);
    e2e::transfer(lan_ns, &db, "10.63.0.3", 5104, LEN);
    let (rx, tx) = mean_frame(name, 2);
    assert!(
        rx > 1514 && tx > 1514,
        "AF_PACKET port mean frames: rx {rx}, tx {tx}"
    );
    let (rx, tx) = mean_frame(name, 0);
    assert!(
        rx > 1514 && tx > 1514,
        "TAP port mean frames: rx {rx}, tx {tx}"
    );
    assert!(sw.stop().success());
}

/// Two switches joined by a veth pair that carries VLAN 100 tagged: one
/// pushes the tag onto a TAP's super-frames (checksum offset +4) and sends
/// them by AF_PACKET; the other gets the tag back from the kernel's
/// metadata (+4 again on reinsertion) and pops it for its TAP (-4).
#[test]
fn tso_super_frames_keep_their_checksums_through_vlan_push_and_pop() {
    if e2e::skip("tso_super_frames_keep_their_checksums_through_vlan_push_and_pop") {
        return;
    }
    let _g = e2e::serial();
    let (a, b) = ("vse2e-tsva", "vse2e-tsvb");
    let _trunk = Veth::pair("vse2e-tsva0", "vse2e-tsvb0");
    let sw_a = start(
        a,
        "10.63.0.1",
        &(tap(a, "web", "10.63.0.2") + &afpacket("vse2e-tsva0", true)),
        &["web"],
    );
    let sw_b = start(
        b,
        "10.63.0.254",
        &(tap(b, "db", "10.63.0.3") + &afpacket("vse2e-tsvb0", true)),
        &["db"],
    );
    let (web, db) = (format!("{a}-web"), format!("{b}-db"));
    assert!(
        e2e::ping(&web, "10.63.0.3", &[]),
        "web -> db over the trunk"
    );
    e2e::transfer(&web, &db, "10.63.0.3", 5105, LEN);
    e2e::transfer(&db, &web, "10.63.0.2", 5106, LEN);
    let (rx, tx) = mean_frame(a, 1);
    assert!(
        rx > 1518 && tx > 1518,
        "trunk port mean frames: rx {rx}, tx {tx}"
    );
    assert!(sw_a.stop().success());
    assert!(sw_b.stop().success());
}
