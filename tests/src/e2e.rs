//! End-to-end helpers: a real `vswitch run` process and real Linux network
//! stacks in namespaces. Tests call `e2e::skip()` first: without root,
//! /dev/net/tun or iproute2 they print why and pass without running.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why end-to-end tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !vswitch::io::is_root() {
        return Some("end-to-end tests need root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("end-to-end tests need /dev/net/tun".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("end-to-end tests need iproute2's ip".into());
    }
    None
}

/// Prints the reason and returns true when the caller should skip.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(r) => {
            eprintln!("skipping {test}: {r}");
            true
        }
        None => false,
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// End-to-end tests share the host's namespaces and two cores: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `vswitch run` in the background, stopped with SIGTERM on drop.
pub struct Running {
    child: Option<Child>,
    pub config: PathBuf,
    pub stderr: PathBuf,
}

impl Running {
    /// Writes `topo` to a file and starts `bin run` on it; waits for `ready`.
    pub fn start(bin: &Path, name: &str, topo: &str) -> Running {
        Running::start_with(bin, name, topo, &[])
    }

    /// `start`, with more arguments for `run`.
    pub fn start_with(bin: &Path, name: &str, topo: &str, args: &[&str]) -> Running {
        let dir = std::env::temp_dir().join(format!("vswitch-e2e-{name}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("topo.toml");
        std::fs::write(&config, topo).expect("write topo");
        Running::start_file_with(bin, &config, args)
    }

    pub fn start_file(bin: &Path, config: &Path) -> Running {
        Running::start_file_with(bin, config, &[])
    }

    /// `start`, with the switch running inside network namespace `netns`
    /// (`ip netns exec`), as on another host.
    pub fn start_in_netns(bin: &Path, netns: &str, name: &str, topo: &str) -> Running {
        let dir = std::env::temp_dir().join(format!("vswitch-e2e-{name}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("topo.toml");
        std::fs::write(&config, topo).expect("write topo");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).arg(bin);
        Running::spawn(cmd, &config, &[])
    }

    fn start_file_with(bin: &Path, config: &Path, args: &[&str]) -> Running {
        Running::spawn(Command::new(bin), config, args)
    }

    /// Runs `cmd run --config CONFIG ARGS` and waits for `ready`.
    fn spawn(mut cmd: Command, config: &Path, args: &[&str]) -> Running {
        let stderr = config.with_extension("stderr");
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = cmd
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn vswitch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready") {
                    let _ = tx.send(());
                }
            }
        });
        let running = Running {
            child: Some(child),
            config: config.to_owned(),
            stderr,
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let log = std::fs::read_to_string(&running.stderr).unwrap_or_default();
            panic!("vswitch never printed ready; stderr:\n{log}");
        }
        running
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Signals the switch; nothing once it is gone (a pid of 0 would
    /// signal the whole process group, the test runner included).
    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("-TERM");
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, Duration::from_secs(20))
    }

    /// Waits for the switch to exit by itself (20 s at most, then kills
    /// it) and returns its status.
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, Duration::from_secs(20))
    }

    /// SIGKILL: the switch gets no chance to clean up.
    pub fn kill(mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal("-TERM");
        if let Some(mut c) = self.child.take() {
            wait_timeout(&mut c, Duration::from_secs(20));
        }
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd`, asserts that it succeeded (naming it, with its stderr), and
/// returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs a command inside network namespace `ns`.
pub fn exec(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("ip netns exec")
}

/// Pings `dst` from `ns`; true when every echo was answered.
pub fn ping(ns: &str, dst: &str, extra: &[&str]) -> bool {
    let mut args = vec!["ping", "-c", "3", "-i", "0.2", "-W", "1"];
    args.extend_from_slice(extra);
    args.push(dst);
    exec(ns, &args).status.success()
}

/// Names of the host's network namespaces.
pub fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the host's links (in the root namespace).
pub fn host_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` on a thread inside namespace `ns` (sockets it opens live there).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        vswitch::io::netns::enter(&ns).unwrap_or_else(|e| panic!("enter netns {ns}: {e}"));
        f()
    })
}

/// Runs `serve` on what `bind` opened, in a thread inside namespace `ns`;
/// returns once `bind` has, so a client started next finds the socket.
pub fn listen_in_netns<S: 'static, T: Send + 'static>(
    ns: &str,
    bind: impl FnOnce() -> S + Send + 'static,
    serve: impl FnOnce(S) -> T + Send + 'static,
) -> JoinHandle<T> {
    let (bound, listening) = std::sync::mpsc::channel();
    let server = in_netns(ns, move || {
        let socket = bind();
        let _ = bound.send(());
        serve(socket)
    });
    // An error means `bind` panicked; joining the server tells why.
    let _ = listening.recv_timeout(Duration::from_secs(10));
    server
}

/// Removes namespaces a failed earlier run may have left.
pub fn remove_netns(names: &[&str]) {
    for n in names {
        let _ = Command::new("ip").args(["netns", "del", n]).status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}");
}

/// A veth pair, removed on drop, with end `a` in the root namespace.
pub struct Veth {
    pub a: String,
    ns: Option<String>,
}

impl Veth {
    /// The other end is eth0 in a new namespace `ns`, addressed `cidr`.
    pub fn to_netns(a: &str, ns: &str, cidr: &str) -> Veth {
        let v = Veth {
            a: a.to_owned(),
            ns: Some(ns.to_owned()),
        };
        v.remove();
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", a, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "addr", "add", cidr, "dev", "eth0"]);
        v
    }

    /// The other end is `b`, beside `a`.
    pub fn pair(a: &str, b: &str) -> Veth {
        let v = Veth {
            a: a.to_owned(),
            ns: None,
        };
        v.remove();
        ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ip(&["link", "set", b, "up"]);
        v
    }

    fn remove(&self) {
        let _ = Command::new("ip").args(["link", "del", &self.a]).status();
        if let Some(ns) = &self.ns {
            remove_netns(&[ns]);
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `BIN reload --name NAME --config CONFIG`, run to its end.
pub fn reload(bin: &Path, name: &str, config: &Path) -> Output {
    Command::new(bin)
        .args(["reload", "--name", name, "--config"])
        .arg(config)
        .output()
        .expect("run vswitch reload")
}

/// Starts `BIN capture ARGS` and waits until the switch has it; its
/// stderr is drained from then on so it never blocks on it.
pub fn capture(bin: &Path, args: &[&str], stdout: Stdio) -> Child {
    let mut child = Command::new(bin)
        .arg("capture")
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn capture");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("capture's first line");
    assert!(line.starts_with("capturing on port"), "{line}");
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    child
}

/// `ethtool -k` of eth0 in `ns` lists `feature: on`.
pub fn offload_on(ns: &str, feature: &str) -> bool {
    let out = exec(ns, &["ethtool", "-k", "eth0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .any(|l| l.trim_start().starts_with(&format!("{feature}: on")))
}

/// Enough flows that some land on each of two queues or sockets (all on
/// one: 2 in 2^16).
pub const FLOWS: u16 = 8;

/// `FLOWS` concurrent `transfer`s of `len` bytes from `from` to `to_ip`,
/// on ports from `base` up.
pub fn parallel_transfers(from: &str, to: &str, to_ip: &str, base: u16, len: usize) {
    let flows: Vec<_> = (0..FLOWS)
        .map(|i| {
            let (from, to, to_ip) = (from.to_owned(), to.to_owned(), to_ip.to_owned());
            std::thread::spawn(move || transfer(&from, &to, &to_ip, base + i, len))
        })
        .collect();
    for f in flows {
        f.join().expect("a transfer");
    }
}

/// Frames the exact-match cache forwarded in switch `name` (`vswitch` at
/// `bin`), from `vswitch stats --json`.
pub fn fast_path_hits(bin: &Path, name: &str) -> u64 {
    let out = run_ok(Command::new(bin).args(["stats", "--name", name, "--json"]));
    let stats: serde_json::Value = serde_json::from_str(&out).expect("stats json");
    stats["fast_path"]["hits"].as_u64().expect("fast_path.hits")
}

/// Sends `len` pseudo-random bytes from namespace `from` to `to_ip` in
/// namespace `to` over TCP, in 64 KB writes that TSO sends as super-frames;
/// asserts they all arrive unchanged.
pub fn transfer(from: &str, to: &str, to_ip: &str, port: u16, len: usize) {
    let addr: SocketAddr = format!("{to_ip}:{port}").parse().expect("address");
    let bind = move || TcpListener::bind(addr).expect("bind");
    let server = listen_in_netns(to, bind, move |l| {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut h = DefaultHasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            h.write(&buf[..n]);
            total += n;
        }
        (total, h.finish())
    });
    let client = in_netns(from, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        let mut h = DefaultHasher::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(port);
        let mut chunk = vec![0u8; 1 << 16];
        for _ in 0..len / chunk.len() {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            s.write_all(&chunk).expect("write");
            h.write(&chunk);
        }
        h.finish()
    });
    let sent = client.join().expect("client");
    let (received, got) = server.join().expect("server");
    assert_eq!(received, len, "{from} -> {to}");
    assert_eq!(got, sent, "{from} -> {to}: bytes differ");
}
