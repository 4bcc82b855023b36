//! Offline traces: every step of a packet's way, asserted line by line.

use std::path::Path;

use vswitch::config::{self, Verdict};
use vswitch::trace::{check, trace};

const TOPO: &str = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[network]]
name = "back"
subnet = "10.20.0.0/24"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"

[[port]]
name = "db"
network = "front"
ip = "10.10.0.3"

[[port]]
name = "x"
network = "back"
ip = "10.20.0.2"

[[expect]]
from = "web"
packet = "tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn"
verdict = "accept"
to = "db"

[[expect]]
from = "web"
packet = "tcp 10.10.0.2:40000 -> 10.10.0.3:22"
verdict = "reject"

[[expect]]
from = "web"
packet = "icmp 10.10.0.2 -> 10.20.0.2"
verdict = "accept"

[rules]
text = """
*filter
:VSWITCH-USER - [0:0]
-A FORWARD -i web -o db -p tcp --dport 22 -j REJECT --reject-with tcp-reset
-A VSWITCH-USER -i front -o back -p icmp -j ACCEPT
COMMIT
"""
"#;

fn cfg() -> config::Config {
    config::parse(TOPO, Path::new("topo.toml")).expect("topology")
}

#[test]
fn a_routed_packet_is_traced_step_by_step() {
    let t = trace(&cfg(), "web", "icmp 10.10.0.2 -> 10.20.0.2").unwrap();
    let want = [
        "in: port web (network front): icmp 10.10.0.2 -> 10.20.0.2 type 8 code 0 (02:42:0a:0a:00:02 -> 02:42:0a:0a:00:01, 42 bytes)",
        "gateway: addressed to the switch (02:42:0a:0a:00:01)",
        "conntrack: NEW (a new entry)",
        "route: 10.20.0.2 via network back, next hop 10.20.0.2 (02:42:0a:14:00:02), ttl 64 -> 63",
        "forward: towards port x",
        "filter FORWARD",
        "filter FORWARD #1 -i web -o db -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset : no match",
        "filter FORWARD #2 -j VSWITCH-USER : match -> jump VSWITCH-USER",
        "filter VSWITCH-USER #1 -i front -o back -p icmp -j ACCEPT : match -> ACCEPT",
        "out: port x: icmp 10.10.0.2 -> 10.20.0.2 type 8 code 0 (02:42:0a:14:00:01 -> 02:42:0a:14:00:02, 42 bytes)",
        "verdict: forwarded to x",
    ];
    assert_eq!(t.steps, want);
    assert_eq!(t.outcome(), Verdict::Accept);

    // The JSON carries the same, and the frame that left.
    let v: serde_json::Value = serde_json::from_str(&t.to_json().to_string()).unwrap();
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["summary"], "forwarded to x");
    assert_eq!(v["steps"].as_array().map(Vec::len), Some(want.len()));
    assert_eq!(v["egress"][0]["port"], "x");
    let hex = v["egress"][0]["frame"].as_str().unwrap();
    assert!(hex.starts_with("02420a14000202420a140001"), "{hex}");
}

#[test]
fn a_reject_is_traced_to_its_rule_and_its_answer() {
    let t = trace(&cfg(), "web", "tcp 10.10.0.2:40000 -> 10.10.0.3:22").unwrap();
    assert_eq!(t.outcome(), Verdict::Reject);
    assert_eq!(
        t.deciding_step(),
        Some("filter FORWARD #1 -i web -o db -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset : match -> REJECT tcp-reset")
    );
    let tail: Vec<&str> = t.steps.iter().rev().take(4).map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "verdict: dropped: rejected",
            "out: port web: tcp 10.10.0.3:22 -> 10.10.0.2:40000 [RST,ACK] (02:42:0a:0a:00:03 -> 02:42:0a:0a:00:02, 54 bytes)",
            "conntrack: UNTRACKED (the switch's answer to a refused packet)",
            "reject: answering the sender with tcp-reset",
        ]
    );
}

#[test]
fn expectations_hold_or_name_the_deciding_step() {
    let c = cfg();
    for e in &c.expects {
        assert_eq!(check(&c, e), Ok(()), "{e:?}");
    }
    let mut wrong = c.expects[2].clone();
    wrong.packet = "icmp 10.20.0.2 -> 10.10.0.2".into();
    wrong.from = "x".into();
    let err = check(&c, &wrong).unwrap_err();
    assert_eq!(
        err,
        "expected accept, got drop (dropped: filtered); decided at: \
         filter VSWITCH-ISOLATION-STAGE-2 #1 -o front -j DROP : match -> DROP"
    );
    let mut elsewhere = c.expects[0].clone();
    elsewhere.to = Some("x".into());
    assert_eq!(
        check(&c, &elsewhere).unwrap_err(),
        "expected it to leave by x, but it was forwarded to db"
    );
    assert!(check(
        &c,
        &config::Expect {
            from: "nobody".into(),
            ..c.expects[0].clone()
        }
    )
    .is_err());
}
