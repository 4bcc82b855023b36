//! A captured conversation for the replay tests of both rings: a topology
//! whose rules let web reach db on 5432 only, and a pcap, as taken on web's
//! link, of an allowed handshake with data, a SYN to a blocked port, a
//! stray ACK conntrack calls INVALID and a frame the capture cut short.

use std::net::Ipv4Addr;

use packet::tcp::TcpFlags;
use packet::MacAddr;

use crate::frames::{mac, tcp, Seg};

pub const TOPO: &str = r#"
[switch]
name = "replay"

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

[[port]]
name = "cache"
network = "front"
ip = "10.10.0.4"

[rules]
text = """
*filter
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i web -o db -p tcp --dport 5432 -j ACCEPT
-A FORWARD -o db -j DROP
COMMIT
"""
"#;

/// Capture time of the first frame: 2023-11-14T22:13:20Z.
pub const START_NS: u64 = 1_700_000_000_000_000_000;

pub struct Conversation {
    /// The capture: classic pcap, microseconds, little-endian.
    pub pcap: Vec<u8>,
    /// (capture time in ns, frame) of what must leave by db, then by web.
    pub to_db: Vec<(u64, Vec<u8>)>,
    pub to_web: Vec<(u64, Vec<u8>)>,
}

pub fn web(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (mac("02:42:0a:0a:00:02"), Ipv4Addr::new(10, 10, 0, 2), port)
}

pub fn db(port: u16) -> (MacAddr, Ipv4Addr, u16) {
    (mac("02:42:0a:0a:00:03"), Ipv4Addr::new(10, 10, 0, 3), port)
}

pub fn conversation() -> Conversation {
    let push_ack = Seg {
        flags: TcpFlags(TcpFlags::PSH.0 | TcpFlags::ACK.0),
        seq: 1001,
        ack: 5001,
    };
    let syn = tcp(web(40000), db(5432), Seg::syn(1000), &[]);
    let syn_ack = tcp(db(5432), web(40000), Seg::syn_ack(5000, 1001), &[]);
    let ack = tcp(web(40000), db(5432), Seg::ack(1001, 5001), &[]);
    let data = tcp(web(40000), db(5432), push_ack, b"SELECT 1;");
    let blocked = tcp(web(40001), db(22), Seg::syn(7000), &[]);
    let stray = tcp(web(40002), db(5432), Seg::ack(9000, 9000), &[]);
    let cut = tcp(web(40003), db(5432), Seg::syn(3000), &[]);
    let ms = |n: u64| START_NS + n * 1_000_000;
    // (time, frame, bytes captured): the last one cut by a snaplen of 30.
    let records: [(u64, &[u8], usize); 7] = [
        (ms(0), &syn, syn.len()),
        (ms(1), &syn_ack, syn_ack.len()),
        (ms(2), &ack, ack.len()),
        (ms(1500), &data, data.len()),
        (ms(2000), &blocked, blocked.len()),
        (ms(2500), &stray, stray.len()),
        (ms(4000), &cut, 30),
    ];
    let mut pcap = Vec::new();
    for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        pcap.extend_from_slice(&x.to_le_bytes());
    }
    for &(ns, frame, caplen) in &records {
        let secs = (ns / 1_000_000_000) as u32;
        let micros = (ns % 1_000_000_000 / 1000) as u32;
        for x in [secs, micros, caplen as u32, frame.len() as u32] {
            pcap.extend_from_slice(&x.to_le_bytes());
        }
        pcap.extend_from_slice(&frame[..caplen]);
    }
    Conversation {
        pcap,
        to_db: vec![(ms(0), syn), (ms(2), ack), (ms(1500), data)],
        to_web: vec![(ms(1), syn_ack)],
    }
}
