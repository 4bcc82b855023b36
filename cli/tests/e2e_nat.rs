//! Ring 3 for the way out: an uplink on a veth whose far end, in its own
//! namespace, plays the outside world. Containers reach it masqueraded;
//! it reaches a published port with its own address preserved; a container
//! reaches the published port through the uplink address (hairpin).
//! Skips (and says why) without root or /dev/net/tun.

use std::io::ErrorKind;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vswitch_tests::e2e::{self, Running};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");
const NAME: &str = "vse2e-nat";
const UPLINK: &str = "vse2e-nup";
const PEER: &str = "vse2e-nlan";

fn topo() -> String {
    format!(
        r#"
[switch]
name = "{NAME}"

[[network]]
name = "front"
subnet = "10.68.0.0/24"

[[port]]
name = "web"
network = "front"
netns = "{NAME}-web"
ip = "10.68.0.2"
publish = ["8080:80/tcp", "5353:53/udp"]

[[port]]
name = "db"
network = "front"
netns = "{NAME}-db"
ip = "10.68.0.3"

[uplink]
kind = "afpacket"
interface = "{UPLINK}"
ip = "192.0.2.10/24"
gateway = "192.0.2.1"
dns = "192.0.2.1"
"#
    )
}

fn sh(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{args:?} failed");
}

/// Accepts one connection on `addr` inside `ns` and answers with the
/// address it came from.
fn peer_server(ns: &str, addr: &'static str) -> std::thread::JoinHandle<()> {
    let bind = move || TcpListener::bind(addr).expect("bind");
    e2e::listen_in_netns(ns, bind, |l| {
        let (mut s, peer) = l.accept().expect("accept");
        s.write_all(peer.ip().to_string().as_bytes())
            .expect("answer");
    })
}

/// Connects from `ns` to `to` and returns what the server said.
fn ask(ns: &str, to: &'static str) -> String {
    e2e::in_netns(ns, move || {
        let addr: SocketAddr = to.parse().expect("address");
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {to}: {e}"));
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        answer
    })
    .join()
    .expect("client")
}

/// A query from `web` for a name no network holds reaches the resolver in
/// `lan` and its answer comes back.
fn dns_is_forwarded(web: &str, lan: &str) {
    let bind = || UdpSocket::bind("192.0.2.1:53").expect("bind 53");
    let resolver = e2e::listen_in_netns(lan, bind, |s| {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let (n, from) = s.recv_from(&mut buf).expect("query");
        let mut answer = buf[..n].to_vec();
        answer[2] |= 0x80;
        answer[3] = 0x80;
        answer[7] = 1;
        // An OPT record dig adds would follow the question: drop it.
        answer[11] = 0;
        let question_end = 12 + answer[12..].iter().position(|&b| b == 0).expect("name") + 5;
        answer.truncate(question_end);
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 7]);
        s.send_to(&answer, from).expect("answer");
    });
    let out = e2e::exec(
        web,
        &[
            "dig",
            "+short",
            "+time=3",
            "+tries=1",
            "@10.68.0.1",
            "example.com",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "203.0.113.7");
    resolver.join().expect("resolver");
}

#[test]
fn masquerade_publish_and_hairpin() {
    if e2e::skip("masquerade_publish_and_hairpin") {
        return;
    }
    let _g = e2e::serial();
    let (web, db, lan) = (
        format!("{NAME}-web"),
        format!("{NAME}-db"),
        format!("{NAME}-lan"),
    );
    e2e::remove_netns(&[&web, &db, &lan]);
    let _ = Command::new("ip").args(["link", "del", UPLINK]).status();
    sh(&["ip", "netns", "add", &lan]);
    sh(&[
        "ip", "link", "add", UPLINK, "type", "veth", "peer", "name", PEER,
    ]);
    sh(&["ip", "link", "set", PEER, "netns", &lan]);
    sh(&["ip", "-n", &lan, "addr", "add", "192.0.2.1/24", "dev", PEER]);
    sh(&["ip", "-n", &lan, "link", "set", PEER, "up"]);
    let sw = Running::start(Path::new(BIN), NAME, &topo());

    // Out: the outside sees the uplink address.
    let server = peer_server(&lan, "192.0.2.1:9000");
    assert_eq!(ask(&web, "192.0.2.1:9000"), "192.0.2.10");
    server.join().expect("server");
    assert!(e2e::ping(&web, "192.0.2.1", &[]), "ping out");

    // Names not the network's are asked of the uplink's resolver: here a
    // stand-in that answers every A question with 203.0.113.7.
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("skipping the DNS forwarding check: dig is not installed");
    } else {
        dns_is_forwarded(&web, &lan);
    }

    // In: the published port, the client's address preserved.
    let server = peer_server(&web, "0.0.0.0:80");
    assert_eq!(ask(&lan, "192.0.2.10:8080"), "192.0.2.1");
    server.join().expect("server");

    // Hairpin: db through the uplink address reaches web.
    let server = peer_server(&web, "0.0.0.0:80");
    assert_eq!(ask(&db, "192.0.2.10:8080"), "10.68.0.3");
    server.join().expect("server");

    // UDP published: the answer comes back from the uplink address.
    let bind = || UdpSocket::bind("0.0.0.0:53").expect("bind 53");
    let server = e2e::listen_in_netns(&web, bind, |s| {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let (_, peer) = s.recv_from(&mut buf).expect("datagram");
        s.send_to(peer.ip().to_string().as_bytes(), peer)
            .expect("answer");
    });
    let answer = e2e::in_netns(&lan, || {
        let s = UdpSocket::bind("192.0.2.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.connect("192.0.2.10:5353").expect("connect");
        s.send(b"who").expect("send");
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).expect("answer");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .join()
    .expect("udp client");
    assert_eq!(answer, "192.0.2.1");
    server.join().expect("udp server");

    // A datagram to a closed outside port: the ICMP error is translated
    // back and reaches the container's socket as ECONNREFUSED.
    let refused = e2e::in_netns(&web, || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s.connect("192.0.2.1:9999").expect("connect");
        s.send(b"x").expect("send");
        s.recv(&mut [0u8; 8]).map_err(|e| e.kind())
    })
    .join()
    .expect("udp");
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));

    // A port nobody published is not forwarded.
    let shut = e2e::in_netns(&lan, || {
        let addr: SocketAddr = "192.0.2.10:8081".parse().expect("address");
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map(drop)
    })
    .join()
    .expect("client");
    assert!(shut.is_err(), "8081 was reachable");

    // Fifty outbound connections at once, each masqueraded and answered.
    const N: usize = 50;
    let bind = || TcpListener::bind("192.0.2.1:9001").expect("bind");
    let server = e2e::listen_in_netns(&lan, bind, |l| {
        let mut conns = Vec::new();
        for _ in 0..N {
            let (mut s, _) = l.accept().expect("accept");
            let mut id = [0u8; 1];
            s.read_exact(&mut id).expect("id");
            s.write_all(&id).expect("echo");
            conns.push(s);
        }
        conns.len()
    });
    let echoed = e2e::in_netns(&web, || {
        let addr: SocketAddr = "192.0.2.1:9001".parse().expect("address");
        let mut open = Vec::new();
        for i in 0..N {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            s.write_all(&[i as u8]).expect("send id");
            open.push(s);
        }
        let mut answered = 0;
        for (i, s) in open.iter_mut().enumerate() {
            let mut id = [0u8; 1];
            if s.read_exact(&mut id).is_ok() && usize::from(id[0]) == i {
                answered += 1;
            }
        }
        answered
    })
    .join()
    .expect("clients");
    assert_eq!((echoed, server.join().expect("server")), (N, N));

    // A bulk transfer out, masqueraded and routed to the uplink: its
    // established segments take the exact-match cache and arrive intact.
    let hits = || {
        let out = e2e::run_ok(Command::new(BIN).args(["stats", "--name", NAME, "--json"]));
        let stats: serde_json::Value = serde_json::from_str(&out).expect("json");
        stats["fast_path"]["hits"].as_u64().unwrap_or(0)
    };
    let before = hits();
    e2e::transfer(&web, &lan, "192.0.2.1", 9002, 4 * 1024 * 1024);
    let taken = hits() - before;
    assert!(taken >= 50, "{taken} hits");

    // The rules that did it are there to see, with their counters.
    let out = Command::new(BIN)
        .args(["rules", "--name", NAME, "-t", "nat", "-S", "-c"])
        .output()
        .expect("rules");
    let nat = String::from_utf8_lossy(&out.stdout);
    let masq = nat
        .lines()
        .find(|l| l.ends_with("-A POSTROUTING -s 10.68.0.0/24 -o uplink -j MASQUERADE"))
        .unwrap_or_else(|| panic!("no MASQUERADE rule in\n{nat}"));
    assert!(!masq.starts_with("[0:0]"), "{masq}");
    assert!(
        nat.contains("-A VSWITCH -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.68.0.2:80"),
        "{nat}"
    );

    assert!(sw.stop().success());
    // The uplink interface is the user's: it stays.
    assert!(e2e::host_links().contains(&UPLINK.to_owned()));
    let _ = Command::new("ip").args(["link", "del", UPLINK]).status();
    e2e::remove_netns(&[&lan]);
}
