//! Ring 3 for the debugging commands: `vswitch capture` of real pings read
//! back by tcpdump, and `vswitch trace --socket` against a running switch's
//! live connections. Skips (and says why) without root or /dev/net/tun.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vswitch_tests::e2e::{self, Running};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

/// web and db on one network; web may reach db's TCP port 7000 only when
/// the connection is new or established.
fn topo(name: &str) -> String {
    format!(
        r#"
[switch]
name = "{name}"

[[network]]
name = "front"
subnet = "10.71.0.0/24"

[[port]]
name = "web"
network = "front"
netns = "{name}-web"
ip = "10.71.0.2"

[[port]]
name = "db"
network = "front"
netns = "{name}-db"
ip = "10.71.0.3"

[rules]
text = """
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
-A FORWARD -p tcp --dport 7000 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""
"#
    )
}

fn start(name: &str) -> Running {
    e2e::remove_netns(&[&format!("{name}-web"), &format!("{name}-db")]);
    Running::start(Path::new(BIN), name, &topo(name))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vswitch-e2e-{name}"));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Starts `vswitch capture ARGS` and waits until the switch has it.
fn capture(args: &[&str], stdout: Stdio) -> Child {
    e2e::capture(Path::new(BIN), args, stdout)
}

fn wait(child: &mut Child) -> bool {
    for _ in 0..200 {
        if let Ok(Some(s)) = child.try_wait() {
            return s.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("capture did not end");
}

/// tcpdump's one-line summaries of the ICMP echo lines in `text`.
fn echoes(text: &str) -> (Vec<&str>, Vec<&str>) {
    let req = text
        .lines()
        .filter(|l| l.contains("ICMP echo request"))
        .collect();
    let rep = text
        .lines()
        .filter(|l| l.contains("ICMP echo reply"))
        .collect();
    (req, rep)
}

fn tcpdump_read(path: &Path) -> String {
    e2e::run_ok(Command::new("tcpdump").args(["-n", "-r"]).arg(path))
}

#[test]
fn capture_of_a_ping_reads_back_in_tcpdump() {
    if e2e::skip("capture_of_a_ping_reads_back_in_tcpdump") {
        return;
    }
    if Command::new("tcpdump").arg("--version").output().is_err() {
        eprintln!("skipping capture_of_a_ping_reads_back_in_tcpdump: no tcpdump");
        return;
    }
    let _g = e2e::serial();
    let name = "cap-e2e";
    let web = format!("{name}-web");
    let sw = start(name);
    let file = dir(name).join("web.pcap");
    let _ = std::fs::remove_file(&file);

    // To a file, four ICMP frames on web: two requests in, two replies out.
    let path = file.to_str().expect("utf-8 path");
    let mut c = capture(
        &["web", "--name", name, "-w", path, "-c", "4", "icmp"],
        Stdio::null(),
    );
    assert!(e2e::ping(&web, "10.71.0.3", &["-c", "2"]));
    assert!(wait(&mut c), "capture failed");
    let text = tcpdump_read(&file);
    let (req, rep) = echoes(&text);
    assert_eq!((req.len(), rep.len()), (2, 2), "{text}");
    assert!(
        req.iter().all(|l| l.contains("10.71.0.2 > 10.71.0.3")),
        "{text}"
    );
    assert!(
        rep.iter().all(|l| l.contains("10.71.0.3 > 10.71.0.2")),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        4,
        "only ICMP passed the filter: {text}"
    );

    // To stdout, piped into tcpdump -r -.
    let mut c = capture(
        &["web", "--name", name, "-w", "-", "-c", "4", "icmp"],
        Stdio::piped(),
    );
    let pipe = c.stdout.take().expect("capture's stdout");
    let dump = Command::new("tcpdump")
        .args(["-n", "-r", "-"])
        .stdin(pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    assert!(e2e::ping(&web, "10.71.0.3", &["-c", "2"]));
    assert!(wait(&mut c), "capture failed");
    let out = dump.wait_with_output().expect("tcpdump output");
    let text = String::from_utf8_lossy(&out.stdout);
    let (req, rep) = echoes(&text);
    assert_eq!((req.len(), rep.len()), (2, 2), "{text}");

    // No count: Ctrl-C ends it, and the file is whole.
    let mut c = capture(&["web", "--name", name, "-w", path], Stdio::null());
    assert!(e2e::ping(&web, "10.71.0.3", &["-c", "3"]));
    std::thread::sleep(Duration::from_millis(300));
    let pid = c.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    assert!(wait(&mut c), "capture after SIGINT");
    let text = tcpdump_read(&file);
    let (req, rep) = echoes(&text);
    assert_eq!((req.len(), rep.len()), (3, 3), "{text}");

    // The captures are gone; the switch forwards on.
    assert!(e2e::ping(&web, "10.71.0.3", &["-c", "1"]));
    assert!(sw.stop().success());
}

fn vswitch(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run vswitch")
}

#[test]
fn live_trace_sees_the_running_connection() {
    if e2e::skip("live_trace_sees_the_running_connection") {
        return;
    }
    let _g = e2e::serial();
    let name = "cap-trace";
    let (web, db) = (format!("{name}-web"), format!("{name}-db"));
    let sw = start(name);
    let bind = || TcpListener::bind("10.71.0.3:7000").expect("bind");
    let server = e2e::listen_in_netns(&db, bind, |l| {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = [0u8; 4];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
    let client = e2e::in_netns(&web, move || {
        let addr: SocketAddr = "10.71.0.3:7000".parse().expect("address");
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let mut buf = [0u8; 4];
        s.write_all(b"ping").expect("write");
        s.read_exact(&mut buf).expect("echo");
        port_tx
            .send(s.local_addr().expect("local").port())
            .expect("port");
        let _ = wait_go.recv();
        s.write_all(b"pong").expect("write after trace");
        s.read_exact(&mut buf).expect("echo after trace");
        buf
    });
    let sport = port_rx.recv().expect("client port");

    // The next packet of the live connection: ESTABLISHED, accepted, and
    // not sent (db's stack would answer a stray segment with a reset).
    let spec = format!("tcp 10.71.0.2:{sport} -> 10.71.0.3:7000 ack");
    let out = vswitch(&["trace", "--name", name, "--in", "web", &spec, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("conntrack:") && s.contains("ESTABLISHED")),
        "{steps:#?}"
    );
    assert_eq!(v["verdict"], "accept", "{v}");
    assert_eq!(v["egress"][0]["port"], "db", "{v}");

    // A new connection to a port no rule opens: NEW, dropped by the policy.
    let out = vswitch(&[
        "trace",
        "--socket",
        "--name",
        name,
        "--in",
        "web",
        "tcp 10.71.0.2:41000 -> 10.71.0.3:7001 syn",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("NEW"), "{text}");
    assert!(text.contains("verdict: dropped"), "{text}");

    // The traced packets changed nothing: the connection goes on, and the
    // switch tracks exactly one connection.
    go.send(()).expect("go on");
    assert_eq!(&client.join().expect("client"), b"pong");
    let ct = vswitch(&["conntrack", "--name", name, "-L"]);
    let ct = String::from_utf8_lossy(&ct.stdout);
    assert_eq!(
        ct.lines().filter(|l| l.starts_with("tcp ")).count(),
        1,
        "{ct}"
    );
    drop(server);
    assert!(sw.stop().success());
}
