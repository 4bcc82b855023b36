//! Replay in memory: a captured conversation through one switch, frames
//! out per port read back from the pcaps written, and the summary.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use packet::{MacAddr, Parsed, L3, L4};

use vswitch::capture::CaptureReader;
use vswitch::replay::{self, Replay, Summary};
use vswitch::{config, DropReason, Switch, Timestamp, Verdict};
use vswitch_tests::captures::{conversation, db, web, START_NS, TOPO};
use vswitch_tests::frames::{arp_request, mac, tcp, Seg};
use vswitch_tests::topos;

fn switch() -> Switch {
    let cfg = config::parse(TOPO, Path::new("topo.toml")).expect("topology");
    Switch::new(&cfg).expect("rules")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/replay-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// (time in ns, frame) of every frame in the capture at `path`.
fn read_pcap(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = CaptureReader::new(&bytes[..]).expect("pcap header");
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet().expect("pcap record") {
        frames.push((p.timestamp.as_nanos(), p.data.to_vec()));
    }
    frames
}

#[test]
fn allowed_frames_leave_by_their_ports_byte_for_byte() {
    let conv = conversation();
    let dir = out_dir("conversation");
    // A file an earlier run left for a port that sends nothing now goes.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cache.pcap"), b"stale").unwrap();

    let sw = switch();
    let web = sw.port_id("web").unwrap();
    let mut replay = Replay::new(sw, web);
    let mut capture = CaptureReader::new(&conv.pcap[..]).unwrap();
    replay::to_dir(&mut replay, &mut capture, &dir).unwrap();

    assert_eq!(read_pcap(&dir.join("db.pcap")), conv.to_db);
    assert_eq!(read_pcap(&dir.join("web.pcap")), conv.to_web);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["db.pcap", "web.pcap"]);

    let count = |v: &[(&str, u64)]| v.iter().map(|&(p, n)| (p.to_owned(), n)).collect();
    assert_eq!(
        replay.summary(),
        Summary {
            frames: 7,
            forwarded: 4,
            local: 0,
            dropped: vec![(DropReason::Malformed, 1), (DropReason::Filtered, 2)],
            ingress: count(&[("web", 6), ("db", 1)]),
            egress: count(&[("web", 1), ("db", 3)]),
        }
    );
    let s = replay.summary().to_json();
    assert_eq!(s["dropped"], 3);
    assert_eq!(s["drops"]["filtered"], 2);
    assert_eq!(s["drops"]["malformed"], 1);
    assert_eq!(s["egress"]["db"], 3);
}

#[test]
fn verdicts_frame_by_frame() {
    let conv = conversation();
    let sw = switch();
    let web = sw.port_id("web").unwrap();
    let mut replay = Replay::new(sw, web);
    let mut capture = CaptureReader::new(&conv.pcap[..]).unwrap();
    let mut verdicts = Vec::new();
    while let Some(p) = capture.next_packet().unwrap() {
        let mut out = Vec::new();
        let v = replay
            .frame(p.timestamp, p.data, |port, parts| {
                out.push((port, parts.concat()));
                Ok::<(), ()>(())
            })
            .unwrap();
        verdicts.push((v, out.len()));
    }
    let dropped = |r| (Verdict::Dropped(r), 0);
    assert_eq!(
        verdicts,
        [
            (Verdict::Forwarded(1), 1),
            (Verdict::Forwarded(1), 1),
            (Verdict::Forwarded(1), 1),
            (Verdict::Forwarded(1), 1),
            dropped(DropReason::Filtered),
            dropped(DropReason::Filtered),
            dropped(DropReason::Malformed),
        ]
    );
    assert_eq!(replay.switch().firewall().conntrack().len(), 1);
}

/// The pipeline runs on capture time and tables age with it: a SYN left
/// unanswered past conntrack's 120 s is expired by the next frame of
/// another flow, and the late SYN-ACK is INVALID.
#[test]
fn tables_age_with_capture_time() {
    let sw = switch();
    let web_port = sw.port_id("web").unwrap();
    let mut replay = Replay::new(sw, web_port);
    let at = |s: u64| Timestamp::from_nanos(START_NS + s * 1_000_000_000);
    let send = |replay: &mut Replay, t, frame: Vec<u8>| {
        replay.frame(t, &frame, |_, _| Ok::<(), ()>(())).unwrap()
    };
    let syn = tcp(web(40000), db(5432), Seg::syn(1000), &[]);
    assert_eq!(send(&mut replay, at(0), syn), Verdict::Forwarded(1));
    assert_eq!(replay.switch().firewall().conntrack().len(), 1);
    let other = tcp(web(40001), db(22), Seg::syn(7000), &[]);
    let filtered = Verdict::Dropped(DropReason::Filtered);
    assert_eq!(send(&mut replay, at(121), other), filtered);
    assert_eq!(replay.switch().firewall().conntrack().len(), 0);
    let syn_ack = tcp(db(5432), web(40000), Seg::syn_ack(5000, 1001), &[]);
    assert_eq!(send(&mut replay, at(122), syn_ack), filtered);
}

/// NAT state carries across frames too: a client on the uplink's LAN
/// reaches web's published port, web's answer (in by web, from its MAC)
/// leaves translated back, and the client's ACK finds the binding.
#[test]
fn a_published_port_conversation_replays_through_dnat() {
    let topo = topos::published_web("");
    let cfg = config::parse(&topo, Path::new("topo.toml")).expect("topology");
    let sw = Switch::new(&cfg).expect("rules");
    let uplink = sw.port_id("uplink").expect("uplink port");
    let mut replay = Replay::new(sw, uplink);
    let lan = |port| (mac("02:00:00:00:00:50"), ip("192.0.2.50"), port);
    let up = |port| (mac("02:00:00:00:0a:0a"), ip("192.0.2.10"), port);
    let gw = MacAddr::from_ipv4(ip("10.10.0.1"));
    let frames = [
        arp_request(mac("02:00:00:00:00:50"), ip("192.0.2.50"), ip("192.0.2.10")),
        tcp(lan(5555), up(8080), Seg::syn(1), b""),
        tcp(
            web(80),
            (gw, ip("192.0.2.50"), 5555),
            Seg::syn_ack(9, 2),
            b"",
        ),
        tcp(lan(5555), up(8080), Seg::ack(2, 10), b""),
    ];
    let mut sent = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let at = Timestamp::from_nanos(START_NS + i as u64 * 1_000_000);
        let v = replay
            .frame(at, f, |port, parts| {
                let frame = parts.concat();
                let p = Parsed::parse(&frame).expect("emitted frame parses");
                let tuple = match (p.l3, p.l4) {
                    (
                        L3::Ipv4 { src, dst, .. },
                        L4::Tcp {
                            src_port, dst_port, ..
                        },
                    ) => Some((src, src_port, dst, dst_port)),
                    _ => None,
                };
                sent.push((port, tuple));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_ne!(v, Verdict::Dropped(DropReason::Filtered), "frame {i}");
    }
    let web_port = replay.switch().port_id("web").unwrap();
    assert_eq!(
        sent,
        [
            (uplink, None),
            (
                web_port,
                Some((ip("192.0.2.50"), 5555, ip("10.10.0.2"), 80))
            ),
            (
                uplink,
                Some((ip("192.0.2.10"), 8080, ip("192.0.2.50"), 5555))
            ),
            (
                web_port,
                Some((ip("192.0.2.50"), 5555, ip("10.10.0.2"), 80))
            ),
        ]
    );
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
