//! Frames built from scratch with full checksums, and a check that
//! recomputes every checksum a rewrite should have patched.

#![allow(dead_code)] // Each test file uses its own share of these.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use conntrack::{Config, Conntrack, CtL4, CtPacket, CtState, EntryId, Tuple};
use packet::checksum::{finish, fold, pseudo_header_v4, sum};
use packet::ipv4::protocol::{ICMP, TCP, UDP};

pub const NOW: Duration = Duration::from_secs(1);
pub const ETH: usize = 14;

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

pub fn tuple(proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    Tuple {
        src: IpAddr::V4(ip(src)),
        dst: IpAddr::V4(ip(dst)),
        protocol: proto,
        src_port: sport,
        dst_port: dport,
    }
}

pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    tuple(TCP, src, sport, dst, dport)
}

pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    tuple(UDP, src, sport, dst, dport)
}

/// An echo request; the identifier is in `src_port`.
pub fn echo(src: &str, dst: &str, id: u16) -> Tuple {
    tuple(ICMP, src, id, dst, 0)
}

pub fn table() -> Conntrack<()> {
    Conntrack::new(Config::default())
}

/// What conntrack needs to start an entry for the first packet of `t`.
pub fn first_packet(t: &Tuple) -> CtPacket {
    let l4 = match t.protocol {
        TCP => CtL4::Tcp {
            flags: 0x02,
            seq: 1000,
            ack: 0,
            window: 64240,
            wscale: Some(7),
            payload_len: 0,
        },
        UDP => CtL4::Udp,
        ICMP => CtL4::IcmpEcho { request: true },
        _ => CtL4::Other,
    };
    CtPacket {
        tuple: *t,
        len: 60,
        l4,
    }
}

/// A tentative entry for a new connection.
pub fn start(conns: &mut Conntrack<()>, t: &Tuple) -> EntryId {
    let tr = conns.track(NOW, &first_packet(t));
    assert_eq!(tr.state, CtState::New, "{t}");
    tr.id.expect("new entry")
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("IPv4 only"),
    }
}

/// An IPv4 header with a correct checksum.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = finish(sum(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// The transport header and payload of the packet `t` names, checksummed.
pub fn l4_bytes(t: &Tuple, payload: &[u8]) -> Vec<u8> {
    let mut l4 = match t.protocol {
        TCP => {
            let mut h = vec![0u8; 20];
            h[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
            h[12] = 0x50;
            h[13] = 0x18;
            h[14..16].copy_from_slice(&502u16.to_be_bytes());
            h
        }
        UDP => {
            let mut h = vec![0u8; 8];
            h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            h
        }
        ICMP => {
            let mut h = vec![8u8, 0, 0, 0, 0, 0, 0, 1];
            h[4..6].copy_from_slice(&t.src_port.to_be_bytes());
            h
        }
        _ => Vec::new(),
    };
    if matches!(t.protocol, TCP | UDP) {
        l4[0..2].copy_from_slice(&t.src_port.to_be_bytes());
        l4[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
    }
    l4.extend_from_slice(payload);
    fill_l4_checksum(v4(t.src), v4(t.dst), t.protocol, &mut l4);
    l4
}

fn fill_l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &mut [u8]) {
    let at = match proto {
        TCP => 16,
        UDP => 6,
        ICMP => 2,
        _ => return,
    };
    l4[at..at + 2].fill(0);
    let pseudo = if proto == ICMP {
        0
    } else {
        pseudo_header_v4(src, dst, proto, l4.len())
    };
    let mut c = finish(pseudo + sum(l4));
    if proto == UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An Ethernet frame carrying the packet `t` names, with `payload`.
pub fn frame(t: &Tuple, payload: &[u8]) -> Vec<u8> {
    let l4 = l4_bytes(t, payload);
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend(ipv4_header(v4(t.src), v4(t.dst), t.protocol, l4.len()));
    f.extend(l4);
    f
}

/// An ICMP error from `from` to `to` quoting `quoted` (an IPv4 packet,
/// from its header on, cut as the sender liked).
pub fn icmp_error(from: &str, to: &str, msg_type: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![msg_type, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quoted);
    let c = finish(sum(&icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend(ipv4_header(ip(from), ip(to), ICMP, icmp.len()));
    f.extend(icmp);
    f
}

/// The header fields of the packet in `frame`, as a tuple (echo id in
/// `src_port`).
pub fn carried(frame: &[u8]) -> Tuple {
    let ip = &frame[ETH..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let l4 = &ip[ihl..];
    let proto = ip[9];
    let (sp, dp) = match proto {
        TCP | UDP => (be16(l4, 0), be16(l4, 2)),
        ICMP => (be16(l4, 4), 0),
        _ => (0, 0),
    };
    Tuple {
        src: IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
        dst: IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
        protocol: proto,
        src_port: sp,
        dst_port: dp,
    }
}

pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Recomputes every checksum of the IPv4 packet at `l3` and asserts that
/// the incremental ones equal it: the IP header's, the transport's (a UDP
/// 0 must have stayed 0, which `udp_zero` says it was), and for an ICMP
/// error, the ICMP checksum, the quoted IP header's and the quoted UDP or
/// ICMP checksum when the quote holds the whole packet.
pub fn assert_checksums(frame: &[u8], l3: usize) {
    let ip = &frame[l3..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2));
    assert_eq!(fold(sum(&ip[..ihl])), 0xffff, "IPv4 header checksum");
    let proto = ip[9];
    let l4 = &ip[ihl..total];
    let (src, dst) = (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    );
    match proto {
        TCP => assert_eq!(
            fold(pseudo_header_v4(src, dst, TCP, l4.len()) + sum(l4)),
            0xffff,
            "TCP checksum"
        ),
        UDP if be16(l4, 6) != 0 => assert_eq!(
            fold(pseudo_header_v4(src, dst, UDP, l4.len()) + sum(l4)),
            0xffff,
            "UDP checksum"
        ),
        ICMP => {
            assert_eq!(fold(sum(l4)), 0xffff, "ICMP checksum");
            if matches!(l4[0], 3 | 11 | 12) {
                assert_quote(&l4[8..]);
            }
        }
        _ => {}
    }
}

fn assert_quote(q: &[u8]) {
    let ihl = usize::from(q[0] & 0x0f) * 4;
    assert_eq!(fold(sum(&q[..ihl])), 0xffff, "quoted IPv4 header checksum");
    let total = usize::from(be16(q, 2));
    if q.len() < total {
        return;
    }
    let l4 = &q[ihl..total];
    let (src, dst) = (
        Ipv4Addr::new(q[12], q[13], q[14], q[15]),
        Ipv4Addr::new(q[16], q[17], q[18], q[19]),
    );
    match q[9] {
        TCP => assert_eq!(
            fold(pseudo_header_v4(src, dst, TCP, l4.len()) + sum(l4)),
            0xffff,
            "quoted TCP checksum"
        ),
        UDP if be16(l4, 6) != 0 => assert_eq!(
            fold(pseudo_header_v4(src, dst, UDP, l4.len()) + sum(l4)),
            0xffff,
            "quoted UDP checksum"
        ),
        ICMP => assert_eq!(fold(sum(l4)), 0xffff, "quoted ICMP checksum"),
        _ => {}
    }
}
