//! `vswitch replay` as a user runs it: no root, no devices. The per-port
//! pcaps are read back by tcpdump when it is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vswitch_tests::captures::{conversation, TOPO};

const BIN: &str = env!("CARGO_BIN_EXE_vswitch");

/// A fresh directory holding topo.toml and capture.pcap.
fn setup(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vswitch-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("topo.toml"), TOPO).expect("write topo");
    std::fs::write(dir.join("capture.pcap"), conversation().pcap).expect("write capture");
    dir
}

fn replay(dir: &Path, capture: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(dir.join("topo.toml"))
        .args(["--in", "web"])
        .arg(dir.join(capture))
        .arg("-w")
        .arg(dir.join("out"))
        .args(extra)
        .output()
        .expect("run vswitch")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn replay_writes_per_port_pcaps_and_a_summary() {
    let dir = setup("ok");
    let out = replay(&dir, "capture.pcap", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for line in [
        "frames     7",
        "forwarded  4",
        "local      0",
        "dropped    3",
        "  malformed              1",
        "  filtered               2",
        "  web                    6",
        "  db                     3",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in\n{stdout}");
    }
    assert!(
        stdout.contains("7 frames (pcap) replayed in by web"),
        "{stdout}"
    );

    let out = replay(&dir, "capture.pcap", &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(v["frames"], 7);
    assert_eq!(v["forwarded"], 4);
    assert_eq!(v["dropped"], 3);
    assert_eq!(v["drops"]["filtered"], 2);
    assert_eq!(v["drops"]["malformed"], 1);
    assert_eq!(v["ingress"]["db"], 1);
    assert_eq!(v["egress"]["db"], 3);
    assert_eq!(v["egress"]["web"], 1);

    let conv = conversation();
    for (port, want) in [("db", &conv.to_db), ("web", &conv.to_web)] {
        let bytes = std::fs::read(dir.join("out").join(format!("{port}.pcap"))).expect(port);
        let mut r = vswitch::capture::CaptureReader::new(&bytes[..]).expect("pcap");
        let mut got = Vec::new();
        while let Some(p) = r.next_packet().expect("record") {
            got.push((p.timestamp.as_nanos(), p.data.to_vec()));
        }
        assert_eq!(&got, want, "{port}.pcap");
    }
    assert!(!dir.join("out/cache.pcap").exists());

    tcpdump_reads(&dir.join("out"));
}

/// tcpdump reads what replay wrote: the handshake and data to db, the
/// SYN-ACK to web.
fn tcpdump_reads(out: &Path) {
    let run = |file: &str| {
        Command::new("tcpdump")
            .args(["-n", "-tt", "-r"])
            .arg(out.join(file))
            .output()
    };
    let db = match run("db.pcap") {
        Ok(o) => o,
        Err(e) => {
            println!("skipping the tcpdump check: tcpdump not runnable ({e})");
            return;
        }
    };
    let lines = text(&db.stdout);
    assert!(db.status.success(), "{lines}{}", text(&db.stderr));
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("1700000000.000000 IP 10.10.0.2.40000 > 10.10.0.3.5432: Flags [S]"),
        "{lines:#?}"
    );
    assert!(
        lines[2].contains("Flags [P.]") && lines[2].contains("length 9"),
        "{lines:#?}"
    );
    let web = run("web.pcap").expect("tcpdump");
    let lines = text(&web.stdout);
    assert!(
        lines.starts_with("1700000000.001000 IP 10.10.0.3.5432 > 10.10.0.2.40000: Flags [S.]"),
        "{lines}"
    );
}

#[test]
fn replay_refuses_a_bad_config_as_check_does() {
    let dir = setup("badconfig");
    let bad = TOPO.replace("--dport 5432", "--dprt 5432");
    std::fs::write(dir.join("topo.toml"), bad).unwrap();
    let out = replay(&dir, "capture.pcap", &[]);
    assert_eq!(out.status.code(), Some(2));
    let check = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(dir.join("topo.toml"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
    assert_eq!(text(&out.stderr), text(&check.stderr));

    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(dir.join("topo.toml").with_file_name("missing.toml"))
        .args(["--in", "web", "x.pcap", "-w", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn replay_names_the_file_and_offset_of_a_damaged_capture() {
    let dir = setup("damaged");
    std::fs::write(dir.join("junk.pcap"), b"this is not a capture").unwrap();
    let out = replay(&dir, "junk.pcap", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let junk = dir.join("junk.pcap");
    assert_eq!(
        err.trim_end(),
        format!(
            "vswitch: {}: offset 0: not a pcap or pcapng file (magic number 0x73696874)",
            junk.display()
        )
    );

    // Cut inside the third record's header (24 + two records of 16 + 54 bytes).
    let pcap = conversation().pcap;
    std::fs::write(dir.join("cut.pcap"), &pcap[..24 + 2 * (16 + 54) + 6]).unwrap();
    let out = replay(&dir, "cut.pcap", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "cut.pcap: offset 164: truncated packet record header: 16 bytes needed, 6 present"
        ),
        "{err}"
    );

    let out = replay(&dir, "missing.pcap", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing.pcap: No such file"),
        "{}",
        text(&out.stderr)
    );

    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(dir.join("topo.toml"))
        .args(["--in", "nosuch"])
        .arg(dir.join("capture.pcap"))
        .args(["-w", "out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no port named \"nosuch\""),
        "{}",
        text(&out.stderr)
    );
}
