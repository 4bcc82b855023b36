//! The offline commands as a user runs them: no root, no devices.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

const TOPO: &str = r#"
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

[[expect]]
from = "web"
packet = "tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn"
verdict = "accept"
to = "db"

[[expect]]
from = "web"
packet = "tcp 10.10.0.2:40000 -> 10.10.0.3:22 syn"
verdict = "accept"

[rules]
text = """
*filter
-A FORWARD -p tcp --dport 22 -j DROP
COMMIT
"""
"#;

fn topo_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vswitch-offline-{name}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("topo.toml");
    std::fs::write(&path, text).expect("write topo");
    path
}

#[test]
fn check_holds_expectations_and_names_the_failing_one() {
    let path = topo_file("expect", TOPO);
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let p = path.display();
    assert!(
        text.contains(&format!(
            "{p}:16: expect accept from web: tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn: ok"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{p}:22: expect accept from web: tcp 10.10.0.2:40000 -> 10.10.0.3:22 syn: FAILED: expected accept, \
             got drop (dropped: filtered); decided at: filter FORWARD #1 -p tcp -m tcp --dport 22 -j DROP : match -> DROP"
        )),
        "{text}"
    );
    assert!(
        text.contains("2 expectation(s): 1 held, 1 failed"),
        "{text}"
    );
    // A config that does not load is exit 2, expectations unheard.
    let bad = topo_file("bad", &TOPO.replace("--dport 22", "--dprt 22"));
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dprt"));
}

#[test]
fn trace_prints_steps_and_json() {
    let path = topo_file("trace", TOPO);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("trace")
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--in", "web", "udp 10.10.0.2:5 -> 10.10.0.3:6"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "  1  in: port web (network front): udp 10.10.0.2:5 -> 10.10.0.3:6 (02:42:0a:0a:00:02 -> 02:42:0a:0a:00:03, 42 bytes)"
    );
    assert!(
        text.trim_end().ends_with("verdict: forwarded to db"),
        "{text}"
    );
    let out = run(&["--in", "web", "--json", "tcp 10.10.0.2:5 -> 10.10.0.3:22"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["verdict"], "drop");
    assert_eq!(v["summary"], "dropped: filtered");
    let out = run(&["--in", "nobody", "tcp 10.10.0.2:5 -> 10.10.0.3:22"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "vswitch: no port named \"nobody\"\n"
    );
}

#[test]
fn every_shipped_example_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run check");
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["bridge.toml", "ipvlan.toml", "macvlan.toml", "vxlan.toml"]
    );
}

#[test]
fn trace_from_a_trunk_parent_tags_and_readdresses() {
    let path = topo_file(
        "offline-ipvlan-trunk",
        r#"
[[network]]
name = "lan"
driver = "ipvlan"
parent = "eth9.20"
subnet = "10.9.0.0/24"

[[port]]
name = "web"
network = "lan"
ip = "10.9.0.2"
"#,
    );
    let out = Command::new(BIN)
        .args(["trace", "--config"])
        .arg(&path)
        .args(["--in", "eth9.20", "udp 10.9.0.77:5000 -> 10.9.0.2:53"])
        .output()
        .expect("run trace");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("vlan 20"), "{text}");
    assert!(
        text.contains("parent: 02:42:0a:09:00:00 readdressed to 02:42:0a:09:00:02"),
        "{text}"
    );
    assert!(text.contains("out: port web"), "{text}");
}
