//! Ring 3 under attack: containers (real network namespaces) that write
//! garbage, spoofed and flooding frames straight onto their eth0 with a raw
//! socket; the switch counts and drops them, stays within its limits, keeps
//! forwarding, and runs its datapath with two capabilities only.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use packet::vnet::VnetHdr;
use packet::MacAddr;
use vswitch::io::afpacket::PacketSocket;
use vswitch::io::privileges;
use vswitch_tests::e2e::{self, Running};
use vswitch_tests::frames::{ether, mac, tcp, udp, Seg};
use vswitch_tests::hostile;

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

fn topo(name: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"
fdb_max = 500
conntrack_max = 1000

[[network]]
name = "front"
subnet = "10.63.0.0/24"

[[port]]
name = "web"
network = "front"
netns = "{name}-web"
ip = "10.63.0.2"

[[port]]
name = "db"
network = "front"
netns = "{name}-db"
ip = "10.63.0.3"

[[port]]
name = "open"
network = "front"
netns = "{name}-open"
ip = "10.63.0.4"
port_security = false
storm_pps = 0
"#
    )
}

fn start(name: &str) -> Running {
    start_topo(name, &topo(name))
}

fn start_topo(name: &str, topo: &str) -> Running {
    let ns: Vec<String> = ["web", "db", "open"]
        .iter()
        .map(|p| format!("{name}-{p}"))
        .collect();
    e2e::remove_netns(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    Running::start(Path::new(BIN), name, topo)
}

/// Writes `frames` onto eth0 of namespace `ns` through a raw socket, as a
/// hostile container would.
fn send_raw(ns: &str, frames: Vec<Vec<u8>>) {
    e2e::in_netns(ns, move || {
        let s = PacketSocket::open("eth0").expect("raw socket on eth0");
        for f in &frames {
            loop {
                match s.send(&VnetHdr::NONE, &[f]) {
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
        }
    })
    .join()
    .expect("sender");
}

fn vswitch(args: &[&str]) -> String {
    e2e::run_ok(Command::new(BIN).args(args))
}

fn drops(name: &str, port: &str, reason: &str) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_str(&vswitch(&["stats", "--name", name, "--json"])).expect("json");
    let ports = stats["ports"].as_array().expect("ports");
    let p = ports.iter().find(|p| p["port"] == port).expect("port");
    p["drops"][reason].as_u64().unwrap_or(0)
}

/// The connection table's counters, as `vswitch stats --json` shows them.
fn conntrack_stats(name: &str) -> serde_json::Value {
    let stats: serde_json::Value =
        serde_json::from_str(&vswitch(&["stats", "--name", name, "--json"])).expect("json");
    stats["conntrack"].clone()
}

fn web() -> (MacAddr, std::net::Ipv4Addr) {
    (mac("02:42:0a:3f:00:02"), "10.63.0.2".parse().unwrap())
}

fn db() -> (MacAddr, std::net::Ipv4Addr) {
    (mac("02:42:0a:3f:00:03"), "10.63.0.3".parse().unwrap())
}

#[test]
fn garbage_and_spoofed_frames_are_counted_and_dropped_and_ping_still_works() {
    if e2e::skip("garbage_and_spoofed_frames_are_counted_and_dropped_and_ping_still_works") {
        return;
    }
    let _g = e2e::serial();
    let name = "sec-garbage";
    let sw = start(name);
    let (web_ns, db_ns) = (format!("{name}-web"), format!("{name}-db"));
    assert!(e2e::ping(&web_ns, "10.63.0.3", &[]), "before");

    // The kernel will not send a frame shorter than an Ethernet header.
    let list: Vec<_> = hostile::frames(web(), db())
        .into_iter()
        .filter(|h| h.frame.len() >= 14)
        .collect();
    let mut noise = Vec::new();
    for i in 0..200u64 {
        noise.push(hostile::noise(i + 1, 14 + (i as usize * 7) % 1500));
    }
    let mut frames: Vec<Vec<u8>> = list.iter().map(|h| h.frame.clone()).collect();
    frames.extend(noise);
    send_raw(&web_ns, frames);
    assert!(e2e::ping(&web_ns, "10.63.0.3", &[]), "after garbage");
    for reason in ["malformed", "spoofed", "bad_source_mac"] {
        let sent = list.iter().filter(|h| h.reason.as_str() == reason).count() as u64;
        let counted = drops(name, "web", reason);
        assert!(counted >= sent, "{reason}: {counted} counted, {sent} sent");
    }

    // A datagram with db's own address as source never reaches db; the
    // same from web's address does.
    let bind = || UdpSocket::bind("10.63.0.3:7000").expect("bind");
    let listener = e2e::listen_in_netns(&db_ns, bind, |s| {
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            got.push((from.ip().to_string(), buf[..n].to_vec()));
        }
        got
    });
    let spoofed_before = drops(name, "web", "spoofed");
    let other = "10.63.0.9".parse().unwrap();
    send_raw(
        &web_ns,
        vec![
            udp((web().0, other, 5000), (db().0, db().1, 7000), b"spoofed"),
            udp((web().0, web().1, 5000), (db().0, db().1, 7000), b"genuine"),
        ],
    );
    let got = listener.join().expect("listener");
    assert_eq!(got, [("10.63.0.2".to_owned(), b"genuine".to_vec())]);
    assert_eq!(drops(name, "web", "spoofed"), spoofed_before + 1);
    assert!(sw.stop().success());
}

#[test]
fn floods_stop_at_the_table_limits_and_a_live_connection_goes_on() {
    if e2e::skip("floods_stop_at_the_table_limits_and_a_live_connection_goes_on") {
        return;
    }
    let _g = e2e::serial();
    let name = "sec-flood";
    let sw = start(name);
    let open_ns = format!("{name}-open");
    assert!(e2e::ping(&format!("{name}-web"), "10.63.0.3", &[]));

    // 20,000 source MACs from the port without port security.
    let open_mac = mac("02:42:0a:3f:00:04");
    let flood: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let b = i.to_be_bytes();
            let src = MacAddr([0x02, 0x77, b[0], b[1], b[2], b[3]]);
            ether(open_mac, src, 0x88b5, &[0; 46])
        })
        .collect();
    send_raw(&open_ns, flood);
    let fdb = vswitch(&["fdb", "--name", name]);
    let entries = fdb.lines().filter(|l| l.contains(" dev ")).count();
    assert!((400..=500).contains(&entries), "{entries} FDB entries");

    // A SYN flood at a port db listens on while web sends db 32 MB over
    // TCP. db answers every SYN, so no entry is closed by a RST before a
    // reply (which would expire at once and make room without early drop):
    // they stay unassured, and only early drop can make room. The TAP drops
    // what the switch has not read in time, so the flood goes on in rounds
    // of new tuples until the switch has had to early-drop.
    let db_ns = format!("{name}-db");
    let _listener = e2e::in_netns(&db_ns, || {
        std::net::TcpListener::bind("10.63.0.3:9").expect("bind db:9")
    })
    .join()
    .expect("listener");
    let open_ip = "10.63.0.4".parse().unwrap();
    let flooder = std::thread::spawn(move || {
        for round in 0..8u32 {
            let syns: Vec<Vec<u8>> = (round * 5000..(round + 1) * 5000)
                .map(|i| {
                    tcp(
                        (open_mac, open_ip, 1024 + i as u16),
                        (db().0, db().1, 9),
                        Seg::syn(i),
                        &[],
                    )
                })
                .collect();
            send_raw(&open_ns, syns);
            if conntrack_stats(name)["early_drop"].as_u64() > Some(0) {
                break;
            }
        }
    });
    let transfer = std::thread::spawn(move || {
        e2e::transfer(
            &format!("{name}-web"),
            &format!("{name}-db"),
            "10.63.0.3",
            7001,
            32 << 20,
        )
    });
    flooder.join().expect("flooder");
    // Right after the flood the table is at its limit, and early drop
    // evicted unassured entries so that no SYN was refused for room.
    let ct = conntrack_stats(name);
    assert_eq!(ct["max"], 1000, "{ct}");
    assert_eq!(ct["entries"], 1000, "{ct}");
    assert!(ct["early_drop"].as_u64() > Some(0), "{ct}");
    assert_eq!(ct["full"], 0, "{ct}");
    transfer
        .join()
        .expect("the transfer completes during the flood");
    let tracked = vswitch(&["conntrack", "--name", name]).lines().count();
    assert!(tracked <= 1000, "{tracked} connections tracked");
    assert!(e2e::ping(&format!("{name}-web"), "10.63.0.3", &[]), "after");
    assert!(sw.stop().success());
}

#[test]
fn the_datapath_keeps_two_capabilities_and_the_control_socket_refuses_bad_requests() {
    if e2e::skip("the_datapath_keeps_two_capabilities_and_the_control_socket_refuses_bad_requests")
    {
        return;
    }
    let _g = e2e::serial();
    let name = "sec-priv";
    let sw = start(name);
    let parent = sw.pid().expect("running");
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .expect("children");
    let child: u32 = children
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .expect("a datapath child");
    // CAP_NET_ADMIN and CAP_NET_RAW, nothing else.
    let want = 1 << 12 | 1 << 13;
    let (eff, prm, bnd) = privileges::caps_of(child).expect("child caps");
    assert_eq!((eff, prm, bnd), (want, want, want));
    let (eff, _, _) = privileges::caps_of(parent).expect("parent caps");
    assert_ne!(eff, want, "the parent keeps what teardown needs");
    assert!(e2e::ping(&format!("{name}-web"), "10.63.0.3", &[]));

    let sock = format!("/run/vswitch/{name}.sock");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ask = |bytes: &[u8]| {
        let mut s = UnixStream::connect(&sock).expect("connect");
        // Written from a thread: the switch may answer and close before
        // taking all of an oversized request.
        let mut w = s.try_clone().expect("clone");
        let bytes = bytes.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&bytes);
        });
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let _ = writer.join();
        answer
    };
    let mut huge = vec![b'x'; 200 * 1024];
    huge.push(b'\n');
    assert_eq!(ask(&huge), "error: request too large\n");
    assert_eq!(
        ask(b"\xff\xfe\x00garbage\n"),
        "error: request is not UTF-8\n"
    );
    assert_eq!(
        ask(b"launch missiles\n"),
        "error: unknown request \"launch\"\n"
    );
    assert_eq!(ask(b"\n"), "error: empty request\n");
    assert!(ask(b"stats\n").starts_with("ok\n"));
    assert!(sw.stop().success());
}

#[test]
fn the_control_socket_is_shared_with_its_control_group_only() {
    if e2e::skip("the_control_socket_is_shared_with_its_control_group_only") {
        return;
    }
    let _g = e2e::serial();
    let name = "sec-group";
    // A group every Linux system has; the switch gives it the socket.
    let gid = vswitch::io::group::gid("daemon")
        .expect("group lookup")
        .expect("a group daemon");
    let topo = topo(name).replacen("[switch]\n", "[switch]\ncontrol_group = \"daemon\"\n", 1);
    let sw = start_topo(name, &topo);
    let sock = format!("/run/vswitch/{name}.sock");
    let meta = std::fs::metadata(&sock).expect("socket");
    assert_eq!((meta.uid(), meta.gid()), (0, gid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // An unprivileged user in the group may ask; without it, may not.
    let as_nobody = |groups: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534"])
            .args(groups)
            .arg(BIN)
            .args(["stats", "--name", name])
            .output()
            .expect("setpriv")
    };
    let member = as_nobody(&["--groups", &gid.to_string()]);
    let out = String::from_utf8_lossy(&member.stdout);
    assert!(
        member.status.success(),
        "{}",
        String::from_utf8_lossy(&member.stderr)
    );
    assert!(out.contains("web"), "{out}");
    let stranger = as_nobody(&["--clear-groups"]);
    let err = String::from_utf8_lossy(&stranger.stderr);
    assert!(!stranger.status.success());
    assert!(err.contains("Permission denied"), "{err}");
    assert!(sw.stop().success());
    assert!(
        !Path::new(&sock).exists(),
        "the socket goes with the switch"
    );
}
