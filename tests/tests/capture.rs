//! Live capture in memory: the filter on real frames, the pcap stream a
//! capture writes read back record by record, and a slow client that makes
//! the datapath drop frames for it without breaking the stream.

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::rc::Rc;

use vswitch::capture::CaptureReader;
use vswitch::control;
use vswitch::live_capture::{CaptureSpec, LiveCaptures};
use vswitch::pcap_filter::Filter;
use vswitch::{config, PortId, Switch, Timestamp};
use vswitch_tests::frames::{arp_request, mac, ping, tagged, tcp, udp, Seg};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn frames() -> [(&'static str, Vec<u8>); 5] {
    let (a, b) = (mac("02:42:0a:0a:00:02"), mac("02:42:0a:0a:00:03"));
    let (ia, ib) = (ip("10.10.0.2"), ip("10.10.0.3"));
    [
        ("tcp", tcp((a, ia, 40000), (b, ib, 80), Seg::syn(1), b"")),
        ("udp", udp((a, ia, 5353), (b, ib, 53), b"q")),
        ("icmp", ping((b, ib), (a, ia), 7, 1, b"hi")),
        ("arp", arp_request(a, ia, ib)),
        ("vlan", tagged(udp((a, ia, 1), (b, ib, 2), b"v"), 20)),
    ]
}

/// Which of `frames()` the filter passes.
fn passed(text: &str) -> Vec<&'static str> {
    let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    frames()
        .into_iter()
        .filter(|(_, fr)| f.matches(fr))
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn filter_primitives_and_precedence() {
    assert_eq!(passed(""), ["tcp", "udp", "icmp", "arp", "vlan"]);
    assert_eq!(passed("tcp"), ["tcp"]);
    assert_eq!(passed("icmp or arp"), ["icmp", "arp"]);
    assert_eq!(passed("ip"), ["tcp", "udp", "icmp", "vlan"]);
    assert_eq!(passed("not ip"), ["arp"]);
    assert_eq!(passed("vlan"), ["vlan"]);
    assert_eq!(passed("vlan 21"), Vec::<&str>::new());
    assert_eq!(passed("vlan 20 and udp"), ["vlan"]);
    // host matches ARP's addresses too, as in tcpdump.
    assert_eq!(passed("src host 10.10.0.2"), ["tcp", "udp", "arp", "vlan"]);
    assert_eq!(passed("dst host 10.10.0.2"), ["icmp"]);
    assert_eq!(
        passed("net 10.10.0.0/24 and not udp"),
        ["tcp", "icmp", "arp"]
    );
    assert_eq!(passed("port 53 || port 80"), ["tcp", "udp"]);
    assert_eq!(passed("dst port 40000"), Vec::<&str>::new());
    assert_eq!(passed("ether src host 02:42:0a:0a:00:03"), ["icmp"]);
    // and/or left to right: (tcp or udp) and port 53; then with parentheses.
    assert_eq!(passed("tcp or udp and port 53"), ["udp"]);
    assert_eq!(passed("tcp or (udp and port 53)"), ["tcp", "udp"]);
    assert_eq!(passed("!(tcp||udp)"), ["icmp", "arp"]);
    // A frame the switch cannot parse passes only the empty filter.
    assert!(!Filter::parse("not tcp").unwrap().matches(&[0u8; 5]));
}

fn spec(port: u16, filter: &str, snaplen: u32, count: Option<u64>) -> CaptureSpec {
    CaptureSpec {
        port: PortId(port),
        filter: Filter::parse(filter).expect("filter"),
        snaplen,
        count,
    }
}

/// (seconds, microseconds-as-ns, original length, bytes) of each record.
fn records(stream: &[u8]) -> Vec<(u64, u32, Vec<u8>)> {
    let mut r = CaptureReader::new(stream).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().expect("whole records") {
        out.push((p.timestamp.as_nanos(), p.orig_len, p.data.to_vec()));
    }
    out
}

#[test]
fn records_hold_the_frames_of_the_port_that_pass() {
    let f = frames();
    let mut caps: LiveCaptures<Vec<u8>> = LiveCaptures::default();
    assert!(caps.is_empty());
    let id = caps.add(spec(1, "ip", 262_144, None), Vec::new());
    let cut = caps.add(spec(1, "", 20, Some(2)), Vec::new());
    assert!(!caps.is_empty());
    let t = Timestamp::from_nanos(1_700_000_000_123_456_789);
    caps.frame(t, PortId(0), &[&f[0].1]); // another port
    caps.frame(t, PortId(1), &[&f[3].1]); // arp: not ip
                                          // A frame sent in slices (a pushed tag) is filtered and written whole.
    let (head, rest) = f[1].1.split_at(12);
    caps.frame(t, PortId(1), &[head, &[0x81, 0, 0, 20], rest]);
    caps.frame(t, PortId(1), &[&f[2].1]);
    let ended = caps.take_ended();
    assert_eq!(ended.len(), 1, "the count of 2 is reached");
    assert_eq!(
        (ended[0].id, ended[0].written, ended[0].dropped),
        (cut, 2, 0)
    );
    let short = records(&ended[0].sink);
    assert_eq!(short.len(), 2);
    assert_eq!(short[0].1 as usize, f[3].1.len());
    assert_eq!(short[0].2, f[3].1[..20]);

    caps.close(id);
    let ended = caps.take_ended();
    assert_eq!(ended.len(), 1);
    assert!(caps.is_empty());
    let stream = &ended[0].sink;
    assert_eq!(&stream[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(&stream[16..20], &262_144u32.to_le_bytes());
    let got = records(stream);
    let mut tagged_udp = f[1].1[..12].to_vec();
    tagged_udp.extend_from_slice(&[0x81, 0, 0, 20]);
    tagged_udp.extend_from_slice(&f[1].1[12..]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].2, tagged_udp);
    assert_eq!(got[1].2, f[2].1);
    // Microsecond timestamps.
    assert_eq!(got[0].0, 1_700_000_000_123_456_000);
}

/// A client that takes `budget` bytes, then would block; the test holds
/// a second handle to give it more room.
#[derive(Clone, Default)]
struct Slow(Rc<RefCell<(Vec<u8>, usize)>>);

impl Write for Slow {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let (data, budget) = &mut *self.0.borrow_mut();
        if *budget == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = b.len().min(*budget);
        data.extend_from_slice(&b[..n]);
        *budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_slow_client_loses_frames_not_the_stream() {
    let f = frames();
    let frame = &f[0].1;
    let rec = 16 + frame.len();
    let client = Slow::default();
    // Room for the header and one and a half records.
    client.0.borrow_mut().1 = 24 + rec + rec / 2;
    let mut caps = LiveCaptures::default();
    let id = caps.add(spec(0, "", 262_144, None), client.clone());
    let at = |n| Timestamp::from_secs(n);
    caps.frame(at(1), PortId(0), &[frame]); // whole
    caps.frame(at(2), PortId(0), &[frame]); // begun: its tail waits
    caps.frame(at(3), PortId(0), &[frame]); // dropped: the tail is still out
    assert_eq!(client.0.borrow().0.len(), 24 + rec + rec / 2);
    // The client catches up: the tail goes first, then the next record.
    client.0.borrow_mut().1 = usize::MAX;
    caps.frame(at(4), PortId(0), &[frame]);
    caps.close(id);
    let e = caps.take_ended().pop().expect("ended");
    assert_eq!((e.written, e.dropped), (3, 1));
    let stream = client.0.borrow().0.clone();
    let got = records(&stream);
    let times: Vec<u64> = got.iter().map(|r| r.0 / 1_000_000_000).collect();
    assert_eq!(times, [1, 2, 4]);
    assert!(got.iter().all(|r| r.2 == *frame));
    assert_eq!(stream.len(), 24 + 3 * rec);
}

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
"#;

#[test]
fn capture_requests_are_checked() {
    let cfg = config::parse(TOPO, Path::new("topo.toml")).expect("topology");
    let sw = Switch::new(&cfg).expect("switch");
    assert_eq!(control::capture(&sw, "fdb"), None);
    assert_eq!(
        control::capture(&sw, "capture db -s 96 -c 3 icmp and host 10.10.0.2\n"),
        Some(Ok(spec(1, "icmp and host 10.10.0.2", 96, Some(3))))
    );
    assert_eq!(
        control::capture(&sw, "capture web"),
        Some(Ok(spec(0, "", 262_144, None)))
    );
    assert_eq!(
        control::capture(&sw, "capture nope"),
        Some(Err("no port named \"nope\"".into()))
    );
    assert_eq!(
        control::capture(&sw, "capture web -c 0"),
        Some(Err("-c 0: not a frame count".into()))
    );
    assert_eq!(
        control::capture(&sw, "capture web port http"),
        Some(Err(
            "bad capture filter: \"http\" is not a port number".into()
        ))
    );
}
