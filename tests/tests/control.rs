//! What the control socket answers, rendered from an in-memory switch.

use std::time::Duration;

use vswitch::control::respond;
use vswitch::stats::IoStats;
use vswitch_tests::frames::{mac, udp};
use vswitch_tests::harness::Harness;

const TOPO: &str = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"
vlan = 7

[[port]]
name = "a"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "b"
network = "front"
ip = "10.10.0.3"

[[fdb]]
mac = "02:00:00:00:00:99"
port = "b"
"#;

fn traffic() -> Harness {
    let mut h = Harness::new("control", TOPO);
    let (a, b) = (mac("02:42:0a:0a:00:02"), mac("02:42:0a:0a:00:03"));
    let f = udp(
        (a, "10.10.0.2".parse().unwrap(), 1),
        (b, "10.10.0.3".parse().unwrap(), 2),
        b"x",
    );
    h.send("a", &f);
    h.send("a", &[0u8; 3]);
    h.advance(Duration::from_secs(5));
    h
}

#[test]
fn fdb_listing() {
    let mut h = traffic();
    let text = respond(&mut h.switch, &IoStats::default(), h.now, "fdb").unwrap();
    assert_eq!(
        text,
        "02:00:00:00:00:99 dev b vlan 7 master front static\n\
         02:42:0a:0a:00:02 dev a vlan 7 master front age 5s\n"
    );
    let json = respond(&mut h.switch, &IoStats::default(), h.now, "fdb --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[1]["mac"], "02:42:0a:0a:00:02");
    assert_eq!(v[1]["port"], "a");
    assert_eq!(v[1]["age_secs"], 5);
    assert_eq!(v[0]["static"], true);
}

#[test]
fn stats_listing() {
    let mut h = traffic();
    let io = IoStats {
        rx_errors: 0,
        tx_errors: 2,
        thread_frames: vec![5, 7],
        tx_batches: 3,
        tx_batched: 40,
    };
    let json = respond(&mut h.switch, &io, h.now, "stats --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let a = &v["ports"][0];
    assert_eq!(a["port"], "a");
    assert_eq!(a["rx_packets"], 2);
    assert_eq!(a["drops"]["malformed"], 1);
    assert_eq!(v["ports"][1]["tx_packets"], 1);
    assert_eq!(v["io"]["tx_errors"], 2);
    assert_eq!(v["io"]["thread_frames"], serde_json::json!([5, 7]));
    assert_eq!(v["io"]["tx_batches"], 3);
    assert_eq!(v["io"]["tx_batched"], 40);
    let text = respond(&mut h.switch, &io, h.now, "stats").unwrap();
    assert!(
        text.contains("io: rx_errors=0 tx_errors=2 thread_frames=5,7 tx_batches=3 tx_batched=40\n"),
        "{text}"
    );
    let ct = &v["conntrack"];
    assert_eq!(
        (&ct["entries"], &ct["max"], &ct["early_drop"], &ct["full"]),
        (&1.into(), &262_144.into(), &0.into(), &0.into())
    );
    let text = respond(&mut h.switch, &io, h.now, "stats").unwrap();
    assert!(text.contains("  drops: malformed=1\n"), "{text}");
    // The datagram was a unicast IPv4 frame the exact-match cache did not hold.
    assert_eq!(v["fast_path"], serde_json::json!({"hits": 0, "misses": 1}));
    assert!(
        text.ends_with(
            "conntrack: entries=1 max=262144 early_drop=0 full=0\nfast_path: hits=0 misses=1\n"
        ),
        "{text}"
    );
}

#[test]
fn bad_requests_get_an_error() {
    let mut h = traffic();
    let io = IoStats::default();
    assert!(respond(&mut h.switch, &io, h.now, "").is_err());
    assert_eq!(
        respond(&mut h.switch, &io, h.now, "frobnicate now"),
        Err("unknown request \"frobnicate\"".into())
    );
}

#[test]
fn rules_listings_carry_the_counters() {
    let mut h = traffic();
    let io = IoStats::default();
    // The datagram a sent crossed the generated rules: VSWITCH-USER's
    // RETURN, isolation's RETURN, then the accept within "front".
    let saved = respond(&mut h.switch, &io, h.now, "rules -t filter -S -c").unwrap();
    assert!(
        saved.starts_with("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n"),
        "{saved}"
    );
    assert!(
        saved.contains("[1:29] -A FORWARD -i front -o front -j ACCEPT\n"),
        "{saved}"
    );
    assert!(
        saved.contains("[1:29] -A VSWITCH-USER -j RETURN\n"),
        "{saved}"
    );
    let spec = respond(&mut h.switch, &io, h.now, "rules -S").unwrap();
    assert!(
        spec.starts_with("-P INPUT ACCEPT\n-P FORWARD DROP\n"),
        "{spec}"
    );
    assert!(spec.contains("-N VSWITCH-USER\n"), "{spec}");
    let list = respond(&mut h.switch, &io, h.now, "rules -v -x").unwrap();
    assert!(
        list.starts_with("Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n"),
        "{list}"
    );
    let json = respond(&mut h.switch, &io, h.now, "rules --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["table"], "filter");
    let forward = &v["chains"][1];
    assert_eq!(
        (forward["chain"].as_str(), forward["policy"].as_str()),
        (Some("FORWARD"), Some("DROP"))
    );
    assert_eq!(forward["rules"][0]["rule"], "-A FORWARD -j VSWITCH-USER");
    assert_eq!(forward["rules"][0]["packets"], 1);
    // -Z zeroes after printing.
    respond(&mut h.switch, &io, h.now, "rules -Z").unwrap();
    let saved = respond(&mut h.switch, &io, h.now, "rules -S -c").unwrap();
    assert!(!saved.contains("[1:29]"), "{saved}");
    let nat = respond(&mut h.switch, &io, h.now, "rules -t nat -S").unwrap();
    assert_eq!(
        nat,
        "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
    );
    assert_eq!(
        respond(&mut h.switch, &io, h.now, "rules -t bogus"),
        Err("unknown table \"bogus\" (expected filter, nat, mangle or raw)".into())
    );
}

#[test]
fn conntrack_lists_deletes_and_flushes() {
    let mut h = traffic();
    let io = IoStats::default();
    let (a, b) = (mac("02:42:0a:0a:00:02"), mac("02:42:0a:0a:00:03"));
    let f = udp(
        (a, "10.10.0.2".parse().unwrap(), 7),
        (b, "10.10.0.3".parse().unwrap(), 8),
        b"y",
    );
    h.send("a", &f);
    let list = respond(&mut h.switch, &io, h.now, "conntrack -L").unwrap();
    assert_eq!(
        list,
        "udp      17 25 src=10.10.0.2 dst=10.10.0.3 sport=1 dport=2 packets=1 bytes=29 [UNREPLIED] \
         src=10.10.0.3 dst=10.10.0.2 sport=2 dport=1 packets=0 bytes=0 mark=0 use=1\n\
         udp      17 30 src=10.10.0.2 dst=10.10.0.3 sport=7 dport=8 packets=1 bytes=29 [UNREPLIED] \
         src=10.10.0.3 dst=10.10.0.2 sport=8 dport=7 packets=0 bytes=0 mark=0 use=1\n"
    );
    let json = respond(
        &mut h.switch,
        &io,
        h.now,
        "conntrack -L -p udp --dport 8 --json",
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(1));
    let del = respond(
        &mut h.switch,
        &io,
        h.now,
        "conntrack -D -s 10.10.0.2 --sport 1",
    )
    .unwrap();
    assert_eq!(del, "1 flow entries have been deleted.\n");
    assert_eq!(h.switch.firewall().conntrack().len(), 1);
    respond(&mut h.switch, &io, h.now, "conntrack -F").unwrap();
    assert_eq!(h.switch.firewall().conntrack().len(), 0);
    assert!(respond(&mut h.switch, &io, h.now, "conntrack -s not-an-ip").is_err());
}

#[test]
fn metrics_render_every_counter() {
    let h = traffic();
    let io = IoStats {
        rx_errors: 2,
        tx_errors: 0,
        thread_frames: vec![9, 4],
        tx_batches: 2,
        tx_batched: 17,
    };
    let page = vswitch::metrics::render(&h.switch, &io);
    for line in [
        "# TYPE vswitch_port_rx_packets_total counter",
        "vswitch_port_rx_packets_total{port=\"a\"} 2",
        "vswitch_port_tx_packets_total{port=\"b\"} 1",
        "vswitch_port_drops_total{port=\"a\",reason=\"malformed\"} 1",
        "vswitch_io_errors_total{direction=\"rx\"} 2",
        "# TYPE vswitch_datapath_frames_total counter",
        "vswitch_datapath_frames_total{thread=\"1\"} 4",
        "# TYPE vswitch_tx_batches_total counter",
        "vswitch_tx_batches_total 2",
        "vswitch_tx_batched_frames_total 17",
        "# TYPE vswitch_fast_path_lookups_total counter",
        "vswitch_fast_path_lookups_total{result=\"hit\"} 0",
        "vswitch_fast_path_lookups_total{result=\"miss\"} 1",
        "vswitch_conntrack_entries 1",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
    }
}

#[test]
fn reload_takes_new_rules_and_keeps_connections() {
    let mut h = traffic();
    let io = IoStats::default();
    let dir = std::env::temp_dir().join("vswitch-reload-test");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("topo.toml");
    let rules =
        "\n[rules]\ntext = \"\"\"\n*filter\n-A FORWARD -p udp --dport 9 -j DROP\nCOMMIT\n\"\"\"\n";
    std::fs::write(&path, format!("{TOPO}{rules}")).unwrap();
    let line = format!("reload {}", path.display());
    let answer = respond(&mut h.switch, &io, h.now, &line).unwrap();
    assert!(
        answer.contains("rules applied, 1 connection(s) kept"),
        "{answer}"
    );
    let saved = respond(&mut h.switch, &io, h.now, "rules -S").unwrap();
    assert!(
        saved.contains("-A FORWARD -p udp -m udp --dport 9 -j DROP\n"),
        "{saved}"
    );

    // A bad rule: refused with its position, the running rules stay.
    std::fs::write(
        &path,
        format!("{TOPO}{}", rules.replace("--dport 9", "--dprt 9")),
    )
    .unwrap();
    let err = respond(&mut h.switch, &io, h.now, &line).unwrap_err();
    assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
    assert!(err.contains("--dprt"), "{err}");
    let kept = respond(&mut h.switch, &io, h.now, "rules -S").unwrap();
    assert_eq!(kept, saved);

    // [switch] cannot change in place: refused, naming it.
    std::fs::write(&path, format!("[switch]\nname = \"other\"\n{TOPO}")).unwrap();
    let err = respond(&mut h.switch, &io, h.now, &line).unwrap_err();
    assert!(
        err.ends_with("reload cannot change [switch] of a running switch; restart it for that"),
        "{err}"
    );
    assert_eq!(h.switch.firewall().conntrack().len(), 1);
}

const TRACE_TOPO: &str = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "db"
network = "front"
ip = "10.10.0.3"

[rules]
text = """
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp --dport 5432 --syn -j ACCEPT
COMMIT
"""
"#;

/// Everything a trace could disturb, as the control socket shows it.
fn state(h: &mut Harness) -> Vec<String> {
    let io = IoStats::default();
    ["conntrack -L", "rules -S -c", "stats", "fdb"]
        .iter()
        .map(|r| respond(&mut h.switch, &io, h.now, r).unwrap())
        .collect()
}

#[test]
fn live_trace_reads_the_running_state_and_changes_nothing() {
    use vswitch_tests::frames::{tcp, Seg};
    let mut h = Harness::new("live-trace", TRACE_TOPO);
    let io = IoStats::default();
    let web = (
        mac("02:42:0a:0a:00:02"),
        "10.10.0.2".parse().unwrap(),
        40000,
    );
    let db = (mac("02:42:0a:0a:00:03"), "10.10.0.3".parse().unwrap(), 5432);
    h.send("db", &tcp(db, web, Seg::ack(1, 1), b"")); // db's MAC learned
    h.send("web", &tcp(web, db, Seg::syn(100), b""));
    h.send("db", &tcp(db, web, Seg::syn_ack(500, 101), b""));
    h.send("web", &tcp(web, db, Seg::ack(101, 501), b""));
    let before = state(&mut h);

    // The connection's next packet: ESTABLISHED, to db, by the first rule.
    let line = "trace web tcp 10.10.0.2:40000 -> 10.10.0.3:5432 ack --json";
    let json = respond(&mut h.switch, &io, h.now, line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    // Its numbers follow the connection: web sent up to 101, db up to 501.
    assert_eq!(
        steps[0],
        "spec: seq 101 ack 501: the next segment of the connection the switch tracks"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("conntrack: ESTABLISHED")),
        "{steps:#?}"
    );
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["egress"][0]["port"], "db");
    assert_eq!(state(&mut h), before, "a live trace changed the switch");

    // Numbers given are kept: far outside the window, the packet is
    // INVALID, and the trace says a connection exists.
    let text = respond(
        &mut h.switch,
        &io,
        h.now,
        "trace web tcp 10.10.0.2:40000 -> 10.10.0.3:5432 ack seq 900000000 ack 501",
    )
    .unwrap();
    assert!(
        text.contains("conntrack: INVALID (outside the tracked connection's window or state)"),
        "{text}"
    );
    assert!(text.contains("verdict: dropped"), "{text}");

    // An offline trace of the same packet knows no connection: an ACK
    // that opens nothing matches neither rule, and the policy drops it.
    let offline = vswitch::trace::trace(
        h.switch.config(),
        "web",
        "tcp 10.10.0.2:40000 -> 10.10.0.3:5432 ack",
    )
    .unwrap();
    assert_eq!(offline.outcome(), vswitch::config::Verdict::Drop);

    // A new connection traced: NEW and accepted, but not tracked after.
    let text = respond(
        &mut h.switch,
        &io,
        h.now,
        "trace web tcp 10.10.0.2:40001 -> 10.10.0.3:5432 syn",
    )
    .unwrap();
    assert!(text.contains("conntrack: NEW"), "{text}");
    assert!(
        text.trim_end().ends_with("verdict: forwarded to db"),
        "{text}"
    );
    assert!(text.starts_with("  1  in: port web"), "{text}");
    assert_eq!(state(&mut h), before, "a live trace changed the switch");

    assert_eq!(
        respond(
            &mut h.switch,
            &io,
            h.now,
            "trace nope tcp 1.2.3.4:1 -> 1.2.3.5:2"
        ),
        Err("no port named \"nope\"".into())
    );
}

/// TRACE_TOPO plus `extra` ports and networks.
fn topo_with(extra: &str) -> String {
    let (head, rules) = TRACE_TOPO.split_at(TRACE_TOPO.find("[rules]").unwrap());
    format!("{head}{extra}\n{rules}")
}

const CACHE: &str = r#"
[[port]]
name = "cache"
network = "front"
ip = "dhcp"

[[network]]
name = "back"
subnet = "10.20.0.0/24"

[[port]]
name = "other"
network = "back"
ip = "10.20.0.2"
"#;

#[test]
fn reload_adds_and_removes_ports_and_networks_keeping_state() {
    use vswitch::dhcp::MessageType;
    use vswitch_tests::frames::{dhcp, tcp, Seg};
    let mut h = Harness::new("reload-ports", TRACE_TOPO);
    let io = IoStats::default();
    let web = (
        mac("02:42:0a:0a:00:02"),
        "10.10.0.2".parse().unwrap(),
        40000,
    );
    let db = (mac("02:42:0a:0a:00:03"), "10.10.0.3".parse().unwrap(), 5432);
    h.send("web", &tcp(web, db, Seg::syn(100), b""));
    h.send("db", &tcp(db, web, Seg::syn_ack(500, 101), b""));
    h.send("web", &tcp(web, db, Seg::ack(101, 501), b""));
    let dir = std::env::temp_dir().join("vswitch-reload-ports-test");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("topo.toml");
    let line = format!("reload {}", path.display());

    // Added: a port on front (its address from DHCP) and a network with a port.
    std::fs::write(&path, topo_with(CACHE)).unwrap();
    let answer = respond(&mut h.switch, &io, h.now, &line).unwrap();
    assert!(
        answer.contains("rules applied, 1 connection(s) kept\n"),
        "{answer}"
    );
    assert!(answer.contains("ports added: cache, other\n"), "{answer}");
    assert!(answer.contains("networks added: back\n"), "{answer}");
    assert!(!answer.contains("removed"), "{answer}");
    let names: Vec<&str> = h.switch.ports().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "db", "cache", "other"]);
    // The connection goes on, ESTABLISHED, its counters kept.
    let s = h.send("web", &tcp(web, db, Seg::ack(101, 501), b"more"));
    assert_eq!(s.ports(), ["db"]);
    assert_eq!(h.stats("web").rx_packets, 3);
    let fdb = respond(&mut h.switch, &io, h.now, "fdb").unwrap();
    assert!(
        fdb.contains("02:42:0a:0a:00:03 dev db master front"),
        "{fdb}"
    );
    // The new port leases its address, and reaches db once it has.
    let cache = mac("02:42:0a:0a:00:04");
    let gw = "10.10.0.1".parse().unwrap();
    let cache_ip = "10.10.0.4".parse().unwrap();
    let s = h.send(
        "cache",
        &dhcp(cache, MessageType::Request, Some(cache_ip), gw),
    );
    assert_eq!(s.ports(), ["cache"]);
    let syn = tcp((cache, cache_ip, 41000), db, Seg::syn(7), b"");
    assert_eq!(h.send("cache", &syn).ports(), ["db"]);
    let tcp_conns = |h: &mut Harness| {
        let list = respond(&mut h.switch, &io, h.now, "conntrack -L -p tcp").unwrap();
        list.lines().count()
    };
    assert_eq!(tcp_conns(&mut h), 2);
    let all = h.switch.firewall().conntrack().len();

    // Reloading the same file keeps the lease; removing cache drops it and
    // its FDB entry, and keeps both connections and everything else.
    let leases = |h: &Harness| h.switch.services().leases().count();
    respond(&mut h.switch, &io, h.now, &line).unwrap();
    assert_eq!(leases(&h), 1);
    std::fs::write(
        &path,
        topo_with(&CACHE.replace("name = \"cache\"", "name = \"cache2\"")),
    )
    .unwrap();
    let answer = respond(&mut h.switch, &io, h.now, &line).unwrap();
    assert!(
        answer.contains(&format!("{all} connection(s) kept")),
        "{answer}"
    );
    assert!(
        answer.contains("ports added: cache2\nports removed: cache\n"),
        "{answer}"
    );
    assert!(!answer.contains("networks"), "{answer}");
    assert_eq!(leases(&h), 1, "cache2 has cache's MAC and address");
    let fdb = respond(&mut h.switch, &io, h.now, "fdb").unwrap();
    assert!(!fdb.contains("dev cache "), "{fdb}");
    std::fs::write(&path, TRACE_TOPO).unwrap();
    let answer = respond(&mut h.switch, &io, h.now, &line).unwrap();
    assert!(
        answer.contains("ports removed: cache2, other\n"),
        "{answer}"
    );
    assert!(answer.contains("networks removed: back\n"), "{answer}");
    assert_eq!(leases(&h), 0);
    assert_eq!(tcp_conns(&mut h), 2);
    let s = h.send("db", &tcp(db, web, Seg::ack(501, 105), b"back"));
    assert_eq!(s.ports(), ["web"]);
}
