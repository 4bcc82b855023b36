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
    };
    let json = respond(&mut h.switch, &io, h.now, "stats --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let a = &v["ports"][0];
    assert_eq!(a["port"], "a");
    assert_eq!(a["rx_packets"], 2);
    assert_eq!(a["drops"]["malformed"], 1);
    assert_eq!(v["ports"][1]["tx_packets"], 1);
    assert_eq!(v["io"]["tx_errors"], 2);
    let text = respond(&mut h.switch, &io, h.now, "stats").unwrap();
    assert!(text.contains("  drops: malformed=1\n"), "{text}");
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
