//! Frames a hostile container sends, each with the reason the switch must
//! count it under. Shared by the in-memory and end-to-end tests and by the
//! fuzz corpus, so all three hold the switch to the same list.

use std::net::Ipv4Addr;

use packet::arp::{ArpOp, ArpRepr};
use packet::ethernet::ethertype;
use packet::ipv4::protocol;
use packet::MacAddr;
use vswitch::DropReason;

use crate::frames::{arp, ether, tagged, tcp, udp, Seg};

pub struct Hostile {
    pub name: &'static str,
    pub frame: Vec<u8>,
    pub reason: DropReason,
}

/// Offset of the IPv4 header in an untagged frame.
const IP: usize = 14;

/// The hostile frames `me` can send at `peer`; `me` is the sending port's
/// own MAC and address, so only what is wrong with each frame is wrong.
pub fn frames(me: (MacAddr, Ipv4Addr), peer: (MacAddr, Ipv4Addr)) -> Vec<Hostile> {
    let good = udp((me.0, me.1, 4000), (peer.0, peer.1, 4001), &[0x55; 40]);
    let edited = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut frame = good.clone();
        f(&mut frame);
        frame
    };
    vec![
        Hostile {
            name: "random-bytes",
            frame: ether(peer.0, me.0, ethertype::IPV4, &noise(0x5eed, 64)),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "runt",
            frame: good[..10].to_vec(),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "truncated-ipv4",
            frame: good[..IP + 12].to_vec(),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "ihl-15",
            frame: edited(&|f| f[IP] = 0x4f),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "ihl-3",
            frame: edited(&|f| f[IP] = 0x43),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "total-length-past-frame",
            frame: edited(&|f| f[IP + 2..IP + 4].copy_from_slice(&9000u16.to_be_bytes())),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "total-length-below-header",
            frame: edited(&|f| f[IP + 2..IP + 4].copy_from_slice(&12u16.to_be_bytes())),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "udp-length-lies",
            frame: edited(&|f| f[IP + 24..IP + 26].copy_from_slice(&4000u16.to_be_bytes())),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "fragment-past-65535",
            // MF clear, offset 65528: the datagram would end at 65596.
            frame: edited(&|f| f[IP + 6..IP + 8].copy_from_slice(&(65_528u16 / 8).to_be_bytes())),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "tiny-first-fragment",
            frame: tiny_first_fragment(me, peer),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "triple-vlan",
            frame: tagged(tagged(tagged(good.clone(), 5), 6), 7),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "ipv6-extension-chain",
            frame: ipv6(me.0, peer.0, 9, 0),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "ipv6-extension-past-end",
            frame: ipv6(me.0, peer.0, 1, 255),
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "arp-bad-lengths",
            frame: {
                let mut f = gratuitous(me.0, me.1);
                f[IP + 4] = 8;
                f
            },
            reason: DropReason::Malformed,
        },
        Hostile {
            name: "broadcast-source",
            frame: ether(peer.0, MacAddr::BROADCAST, 0x88b5, &[0; 46]),
            reason: DropReason::BadSourceMac,
        },
        Hostile {
            name: "gratuitous-arp-for-peer",
            frame: gratuitous(me.0, peer.1),
            reason: DropReason::Spoofed,
        },
        Hostile {
            name: "arp-reply-as-peer",
            frame: {
                let mut f = gratuitous(peer.0, peer.1);
                f[6..12].copy_from_slice(&me.0 .0);
                f
            },
            reason: DropReason::Spoofed,
        },
        Hostile {
            name: "spoofed-source-ip",
            frame: udp((me.0, peer.1, 4000), (peer.0, peer.1, 4001), b"x"),
            reason: DropReason::Spoofed,
        },
        Hostile {
            name: "spoofed-source-mac",
            frame: udp(
                (peer.0, me.1, 4000),
                (MacAddr::BROADCAST, peer.1, 4001),
                b"x",
            ),
            reason: DropReason::Spoofed,
        },
    ]
}

/// Deterministic noise (xorshift), for "random" bytes that stay the same
/// from run to run.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An ARP reply announcing `ip` at `mac` to everyone.
fn gratuitous(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    arp(
        MacAddr::BROADCAST,
        ArpRepr {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::BROADCAST,
            target_ip: ip,
        },
    )
}

/// A first fragment too short to hold the TCP header (RFC 1858): its
/// ports cannot be filtered.
fn tiny_first_fragment(me: (MacAddr, Ipv4Addr), peer: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut f = tcp((me.0, me.1, 4000), (peer.0, peer.1, 80), Seg::syn(1), &[]);
    f.truncate(IP + 20 + 8);
    f[IP + 2..IP + 4].copy_from_slice(&28u16.to_be_bytes());
    f[IP + 6] = 0x20; // MF, offset 0
    refill_ipv4_checksum(&mut f);
    f
}

fn refill_ipv4_checksum(f: &mut [u8]) {
    let mut ip = packet::ipv4::Ipv4Packet::new_unchecked(&mut f[IP..]);
    ip.fill_checksum();
}

/// IPv6 carrying UDP behind `count` destination-options headers, the first
/// claiming `first_len` (in 8-byte units beyond the first 8).
pub fn ipv6(src: MacAddr, dst: MacAddr, count: usize, first_len: u8) -> Vec<u8> {
    let mut ext = Vec::new();
    for i in 0..count {
        let next = if i + 1 == count { protocol::UDP } else { 60 };
        let len = if i == 0 { first_len } else { 0 };
        // PadN filling the header's six remaining bytes.
        ext.extend_from_slice(&[next, len, 1, 4, 0, 0, 0, 0]);
    }
    let udp = [0x0f, 0xa0, 0x0f, 0xa1, 0, 8, 0, 0];
    let payload_len = (ext.len() + udp.len()) as u16;
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&payload_len.to_be_bytes());
    ip.extend_from_slice(&[60, 64]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    ip.extend_from_slice(&ext);
    ip.extend_from_slice(&udp);
    ether(dst, src, ethertype::IPV6, &ip)
}
