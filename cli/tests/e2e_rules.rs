//! Ring 3 for the rule engine: iptables-restore rules enforced on real Linux
//! TCP and UDP sockets in namespaces, and their counters read back from the
//! running switch. Skips (and says why) without root or /dev/net/tun.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use vswitch_tests::e2e::{self, Running};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

/// web and db share "front"; other sits on "back". The FORWARD policy is
/// DROP; the rules open one TCP and one UDP port, reject two others, and
/// let front ping back.
fn topo(name: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "front"
subnet = "10.63.0.0/24"

[[network]]
name = "back"
subnet = "10.64.0.0/24"

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
name = "other"
network = "back"
netns = "{name}-other"
ip = "10.64.0.2"

[rules]
text = """
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i web -o db -p tcp -m tcp --dport 5432 -j ACCEPT
-A FORWARD -i web -o db -p tcp -m tcp --dport 5433 -j REJECT --reject-with tcp-reset
-A FORWARD -i web -o db -p udp -m udp --dport 5353 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -i web -o db -p udp -m udp --dport 5354 -j ACCEPT
-A FORWARD -i web -o db -p icmp -j ACCEPT
-A FORWARD -i front -o back -p icmp -m icmp --icmp-type echo-request -j ACCEPT
COMMIT
"""
"#
    )
}

fn start(name: &str) -> Running {
    let ns = ["web", "db", "other"].map(|p| format!("{name}-{p}"));
    e2e::remove_netns(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    Running::start(Path::new(BIN), name, &topo(name))
}

fn vswitch(args: &[&str]) -> String {
    e2e::run_ok(std::process::Command::new(BIN).args(args))
}

/// The `[packets:bytes]` counter of the saved rule that ends with `rule`.
fn counter(saved: &str, rule: &str) -> (u64, u64) {
    let line = saved
        .lines()
        .find(|l| l.ends_with(rule))
        .unwrap_or_else(|| panic!("no rule {rule:?} in\n{saved}"));
    let c = line
        .strip_prefix('[')
        .and_then(|l| l.split_once(']'))
        .map(|(c, _)| c)
        .unwrap_or_else(|| panic!("no counters on {line:?}"));
    let (p, b) = c.split_once(':').expect("p:b");
    (p.parse().expect("packets"), b.parse().expect("bytes"))
}

fn connect(ns: &str, to: &'static str, timeout: Duration) -> std::io::Result<TcpStream> {
    e2e::in_netns(ns, move || {
        let addr: SocketAddr = to.parse().expect("address");
        TcpStream::connect_timeout(&addr, timeout)
    })
    .join()
    .expect("client thread")
}

#[test]
fn rules_decide_what_crosses() {
    if e2e::skip("rules_decide_what_crosses") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-rules";
    let (web, db, other) = (
        format!("{name}-web"),
        format!("{name}-db"),
        format!("{name}-other"),
    );
    let sw = start(name);

    // The allowed port connects and the server's replies come back by the
    // ESTABLISHED rule: a request and its echo cross.
    let bind = || TcpListener::bind("10.63.0.3:5432").expect("bind 5432");
    let server = e2e::listen_in_netns(&db, bind, |l| {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        s.write_all(&buf).expect("echo");
        buf
    });
    let echoed = e2e::in_netns(&web, || {
        let addr: SocketAddr = "10.63.0.3:5432".parse().expect("address");
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.write_all(b"hello").expect("write");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("echo back");
        buf
    })
    .join()
    .expect("client");
    assert_eq!(&server.join().expect("server"), b"hello");
    assert_eq!(&echoed, b"hello");

    // REJECT --reject-with tcp-reset: refused at once, though nothing listens
    // behind the rule's back either way.
    let started = Instant::now();
    let refused = connect(&web, "10.63.0.3:5433", Duration::from_secs(5));
    assert_eq!(
        refused.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "RST was slow");

    // The policy DROP: the SYN vanishes and the connect times out.
    let dropped = connect(&web, "10.63.0.3:5434", Duration::from_secs(1));
    assert_eq!(
        dropped.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::TimedOut),
        "{dropped:?}"
    );

    // REJECT icmp-port-unreachable reaches a connected UDP socket as
    // ECONNREFUSED; the open UDP port delivers.
    let bind = || UdpSocket::bind("10.63.0.3:5354").expect("bind 5354");
    let udp = e2e::listen_in_netns(&db, bind, |s| {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        let (n, _) = s.recv_from(&mut buf).expect("datagram");
        buf[..n].to_vec()
    });
    let refused = e2e::in_netns(&web, || {
        let s = UdpSocket::bind("10.63.0.2:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s.connect("10.63.0.3:5353").expect("connect");
        s.send(b"x").expect("send");
        let refused = s.recv(&mut [0u8; 16]).map_err(|e| e.kind());
        s.connect("10.63.0.3:5354").expect("connect");
        s.send(b"open").expect("send");
        refused
    })
    .join()
    .expect("udp client");
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));
    assert_eq!(udp.join().expect("udp server"), b"open");

    // Routed between networks: the gateway decrements the TTL once.
    let ping = e2e::exec(
        &web,
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.64.0.2"],
    );
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.status.success(), "web -> other: {text}");
    assert!(text.contains("ttl=63"), "{text}");
    // Only echo requests may go back -> front.
    assert!(
        !e2e::ping(&other, "10.63.0.2", &["-c", "1"]),
        "other reached web"
    );

    // Counters match what was sent: the first 84-byte echo request was NEW
    // (the next two were ESTABLISHED, as in Linux), one SYN was reset, one
    // datagram rejected.
    let saved = vswitch(&["rules", "--name", name, "-t", "filter", "-S", "-c"]);
    assert_eq!(
        counter(
            &saved,
            "-A FORWARD -i front -o back -p icmp -m icmp --icmp-type 8 -j ACCEPT"
        ),
        (1, 84)
    );
    assert_eq!(
        counter(
            &saved,
            "-A FORWARD -i web -o db -p tcp -m tcp --dport 5433 -j REJECT --reject-with tcp-reset"
        ),
        (1, 60)
    );
    assert_eq!(
        counter(
            &saved,
            "-A FORWARD -i web -o db -p udp -m udp --dport 5353 -j REJECT --reject-with icmp-port-unreachable"
        ),
        (1, 29)
    );
    let ct = vswitch(&["conntrack", "--name", name, "-L"]);
    assert!(
        ct.lines()
            .any(|l| l.starts_with("tcp ") && l.contains("dport=5432") && l.contains("[ASSURED]")),
        "{ct}"
    );
    assert!(sw.stop().success());
}

/// One network, FORWARD ours: established traffic and port 5432 only, plus
/// whatever `extra` adds.
fn reload_topo(name: &str, extra: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "front"
subnet = "10.69.0.0/24"

[[port]]
name = "web"
network = "front"
netns = "{name}-web"
ip = "10.69.0.2"

[[port]]
name = "db"
network = "front"
netns = "{name}-db"
ip = "10.69.0.3"

[rules]
text = """
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 5432 -j ACCEPT
{extra}COMMIT
"""
"#
    )
}

/// Echoes what each connection sends, for `n` connections.
fn echo_server(ns: &str, addr: &'static str, n: usize) -> std::thread::JoinHandle<()> {
    let bind = move || TcpListener::bind(addr).expect("bind");
    e2e::listen_in_netns(ns, bind, move |l| {
        for _ in 0..n {
            let (mut s, _) = l.accept().expect("accept");
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(k) = s.read(&mut buf) {
                    if k == 0 || s.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            });
        }
    })
}

#[test]
fn reload_adds_a_rule_while_a_connection_keeps_flowing() {
    if e2e::skip("reload_adds_a_rule_while_a_connection_keeps_flowing") {
        return;
    }
    let _g = e2e::serial();
    let name = "vse2e-reload";
    let (web, db) = (format!("{name}-web"), format!("{name}-db"));
    e2e::remove_netns(&[&web, &db]);
    let sw = Running::start(Path::new(BIN), name, &reload_topo(name, ""));
    let server = echo_server(&db, "10.69.0.3:5432", 1);
    let other = echo_server(&db, "10.69.0.3:6000", 1);
    let (to_client, from_test) = std::sync::mpsc::channel::<()>();
    let (to_test, from_client) = std::sync::mpsc::channel::<String>();
    // A connection that exchanges a line, waits for the reload, exchanges again.
    let client = e2e::in_netns(&web, move || {
        let addr: SocketAddr = "10.69.0.3:5432".parse().expect("address");
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 6];
        for word in [b"before", b"after!"] {
            s.write_all(word).expect("write");
            s.read_exact(&mut buf).expect("echo");
            to_test
                .send(String::from_utf8_lossy(&buf).into_owned())
                .expect("report");
            let _ = from_test.recv();
        }
    });
    assert_eq!(from_client.recv().expect("first echo"), "before");
    assert!(
        connect(&web, "10.69.0.3:6000", Duration::from_secs(1)).is_err(),
        "6000 open before the reload"
    );

    let dir = std::env::temp_dir().join(format!("vswitch-e2e-{name}"));
    let next = dir.join("next.toml");
    let extra = "-A FORWARD -p tcp -m tcp --dport 6000 -j ACCEPT\n";
    std::fs::write(&next, reload_topo(name, extra)).expect("write config");
    let out = e2e::reload(Path::new(BIN), name, &next);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    to_client.send(()).expect("go on");
    assert_eq!(from_client.recv().expect("second echo"), "after!");
    to_client.send(()).expect("finish");
    client.join().expect("client");
    assert!(connect(&web, "10.69.0.3:6000", Duration::from_secs(5)).is_ok());
    let _ = (server.join(), other.join());

    // A bad config is refused with check's errors; the rules stay.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        reload_topo(name, "-A FORWARD -p tcp --dprt 7 -j ACCEPT\n"),
    )
    .expect("write config");
    let out = e2e::reload(Path::new(BIN), name, &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:", bad.display())) && err.contains("--dprt"),
        "{err}"
    );
    let rules = vswitch(&["rules", "--name", name, "-S"]);
    assert!(rules.contains("--dport 6000 -j ACCEPT"), "{rules}");
    assert!(sw.stop().success());
}

/// web and db on front, plus whatever `extra` adds; icmp and port 5432
/// may cross.
fn ports_topo(name: &str, extra: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "front"
subnet = "10.73.0.0/24"

[[port]]
name = "web"
network = "front"
netns = "{name}-web"
ip = "10.73.0.2"

[[port]]
name = "db"
network = "front"
netns = "{name}-db"
ip = "10.73.0.3"
{extra}
[rules]
text = """
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 5432 -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
"""
"#
    )
}

fn reload(name: &str, config: &Path) -> String {
    vswitch(&[
        "reload",
        "--name",
        name,
        "--config",
        &config.to_string_lossy(),
    ])
}

#[test]
fn reload_adds_and_removes_a_port_while_a_connection_keeps_flowing() {
    if e2e::skip("reload_adds_and_removes_a_port_while_a_connection_keeps_flowing") {
        return;
    }
    let _g = e2e::serial();
    let name = "rl-e2e";
    let (web, db, new) = (
        format!("{name}-web"),
        format!("{name}-db"),
        format!("{name}-new"),
    );
    e2e::remove_netns(&[&web, &db, &new]);
    let sw = Running::start(Path::new(BIN), name, &ports_topo(name, ""));
    let server = echo_server(&db, "10.73.0.3:5432", 1);
    // A connection that keeps exchanging lines until told to stop; it
    // reports how many round trips it made.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = {
        let (stop, done) = (stop.clone(), done.clone());
        e2e::in_netns(&web, move || {
            let addr: SocketAddr = "10.73.0.3:5432".parse().expect("address");
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 4];
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                s.write_all(b"ping").expect("write");
                s.read_exact(&mut buf).expect("echo");
                assert_eq!(&buf, b"ping");
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let round_trips = || done.load(std::sync::atomic::Ordering::SeqCst);
    let progressed = |since: usize| {
        for _ in 0..100 {
            if round_trips() > since + 5 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(progressed(0), "no exchange before the reload");

    let dir = std::env::temp_dir().join(format!("vswitch-e2e-{name}"));
    let added = dir.join("added.toml");
    let port = format!(
        "\n[[port]]\nname = \"new\"\nnetwork = \"front\"\nnetns = \"{new}\"\nip = \"10.73.0.4\"\n"
    );
    std::fs::write(&added, ports_topo(name, &port)).expect("write config");
    let answer = reload(name, &added);
    assert!(answer.contains("ports added: new\n"), "{answer}");
    assert!(answer.contains("1 connection(s) kept"), "{answer}");
    assert!(e2e::netns_list().contains(&new), "no namespace {new}");
    assert!(e2e::ping(&new, "10.73.0.3", &[]), "new cannot reach db");
    assert!(
        progressed(round_trips()),
        "the connection stalled after adding"
    );

    std::fs::write(&added, ports_topo(name, "")).expect("write config");
    let answer = reload(name, &added);
    assert!(answer.contains("ports removed: new\n"), "{answer}");
    assert!(!e2e::netns_list().contains(&new), "{new} left behind");
    assert!(
        progressed(round_trips()),
        "the connection stalled after removing"
    );

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    client.join().expect("client");
    let _ = server.join();
    assert!(sw.stop().success());
    assert!(!e2e::netns_list().contains(&web));
}
