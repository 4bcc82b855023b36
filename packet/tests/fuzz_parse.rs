//! Random and mutated frames through `Parsed::parse` and through every
//! view's `new_checked`, then every accessor and setter: none may panic.
//! A failure proptest records under `proptest-regressions/` is replayed on
//! every run; turn it into a named case in `parse.rs` when fixing it.

use std::net::{Ipv4Addr, Ipv6Addr};

use packet::arp::{ArpPacket, ArpRepr};
use packet::ethernet::{EthernetFrame, EthernetRepr};
use packet::icmpv4::{self, Icmpv4Packet, Icmpv4Repr};
use packet::icmpv6::Icmpv6Packet;
use packet::ipv4::{Ipv4Packet, Ipv4Repr};
use packet::ipv6::{self, Ipv6Packet, Ipv6Repr};
use packet::tcp::{TcpPacket, TcpRepr};
use packet::udp::{UdpPacket, UdpRepr};
use packet::vlan::{self, VlanTag};
use packet::{MacAddr, Parsed, TcpFlags, VlanId, L3};
use proptest::prelude::*;

#[path = "../src/fixtures.rs"]
mod fixtures;

const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const V6: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// Offsets where a layer starts in some fixture: untagged, one and two tags,
/// after a 20-byte IPv4 header, after a 40-byte IPv6 header, after HBH.
const STARTS: [usize; 8] = [0, 14, 18, 22, 34, 38, 54, 62];

fn parse(b: &[u8]) {
    match Parsed::parse(b) {
        Ok(p) => {
            assert!(p.l3_offset <= b.len() && p.l4_offset <= b.len());
            assert!(usize::from(p.tag_count) <= vlan::MAX_TAGS);
            let _ = p.vlan();
            if let Some(k) = p.flow_key() {
                let _ = k.to_string();
                assert_eq!(k.reverse().reverse(), k);
            }
            if let L3::Ipv4 { total_len, .. } = p.l3 {
                assert!(p.l3_offset + total_len <= b.len());
            }
        }
        Err(e) => {
            assert!(e.offset <= b.len(), "{e}");
            let _ = e.to_string();
        }
    }
}

fn views(b: &[u8]) {
    let mut w = b.to_vec();
    if let Ok(mut f) = EthernetFrame::new_checked(&mut w[..]) {
        let _ = (f.dst(), f.src(), f.ethertype(), f.payload().len());
        f.set_dst(MacAddr::BROADCAST);
        f.set_src(MacAddr::ZERO);
        f.set_ethertype(0x0800);
        f.payload_mut().fill(0);
        assert!(EthernetRepr::parse(b).is_ok());
    }

    let mut w = b.to_vec();
    if let Ok(mut t) = VlanTag::new_checked(&mut w[..]) {
        let _ = (
            t.tci(),
            t.pcp(),
            t.dei(),
            t.vid(),
            t.ethertype(),
            t.payload().len(),
        );
        t.set_vid(4095);
        t.set_pcp(9);
        t.set_dei(true);
        t.set_ethertype(0);
    }

    let mut w = b.to_vec();
    if let Ok(mut p) = ArpPacket::new_checked(&mut w[..]) {
        let _ = (
            p.operation(),
            p.sender_hw_addr(),
            p.sender_proto_addr(),
            p.target_hw_addr(),
            p.target_proto_addr(),
        );
        p.set_target_proto_addr(V4);
        p.set_sender_hw_addr(MacAddr::ZERO);
        let r = ArpRepr::parse(&w).unwrap();
        let mut out = [0; 28];
        r.emit(&mut out);
        assert_eq!(ArpRepr::parse(&out), Ok(r));
    }

    let mut w = b.to_vec();
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut w[..]) {
        let _ = (
            p.version(),
            p.dscp_ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
        );
        let _ = (
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
            p.is_fragment(),
        );
        let _ = (
            p.header().len(),
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
        );
        assert!(p.header_len() <= p.total_len());
        let was_valid = p.verify_checksum();
        p.decrement_ttl();
        assert_eq!(p.verify_checksum(), was_valid);
        p.set_src_addr_update_checksum(V4);
        p.set_dst_addr_update_checksum(V4);
        p.set_ttl(1);
        p.set_ident(7);
        p.set_dscp_ecn(3);
        p.set_protocol(6);
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut().fill(0);
        let r = Ipv4Repr::parse(&w).unwrap();
        let mut out = [0; 20];
        r.emit(&mut out);
        assert!(Ipv4Packet::new_unchecked(&out[..]).verify_checksum());
        let _ = icmpv4::error_quote(&w);
    }
    let _ = icmpv4::error_quote(b);

    let mut w = b.to_vec();
    if let Ok(mut p) = Ipv6Packet::new_checked(&mut w[..]) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.next_header(),
            p.hop_limit(),
        );
        let _ = (p.src_addr(), p.dst_addr(), p.payload().len());
        if let Ok((_, off)) = ipv6::upper_layer(&p) {
            assert!(off <= ipv6::HEADER_LEN + p.payload_len());
        }
        p.set_hop_limit(0);
        p.set_next_header(59);
        p.set_src_addr(V6);
        p.set_dst_addr(V6);
        p.payload_mut().fill(0);
        let r = Ipv6Repr::parse(&w).unwrap();
        let mut out = [0; 40];
        r.emit(&mut out);
    }

    let mut w = b.to_vec();
    if let Ok(mut p) = Icmpv4Packet::new_checked(&mut w[..]) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.is_echo(),
        );
        let _ = (p.data().len(), p.verify_checksum());
        p.set_msg_type(0);
        p.set_code(0);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.data_mut().fill(0);
        p.fill_checksum();
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&w).unwrap();
        let mut out = vec![0; r.buffer_len()];
        r.emit(&mut out);
        assert_eq!(out, w);
    }
    let _ = Icmpv4Repr::parse(b);

    let mut w = b.to_vec();
    if let Ok(mut p) = Icmpv6Packet::new_checked(&mut w[..]) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
            p.is_echo(),
        );
        let _ = (p.data().len(), p.verify_checksum(V6, V6));
        p.set_msg_type(128);
        p.set_code(0);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.data_mut().fill(0);
        p.fill_checksum(V6, V6);
        assert!(p.verify_checksum(V6, V6));
    }

    let mut w = b.to_vec();
    if let Ok(mut p) = TcpPacket::new_checked(&mut w[..]) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.header_len(),
        );
        let _ = (p.flags().to_string(), p.window(), p.checksum(), p.urgent());
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.verify_checksum_v4(V4, V4),
            p.verify_checksum_v6(V6, V6),
        );
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(TcpFlags::RST | TcpFlags::ACK);
        p.set_window(5);
        p.set_urgent(0);
        p.payload_mut().fill(0);
        p.fill_checksum_v4(V4, V4);
        assert!(p.verify_checksum_v4(V4, V4));
        p.fill_checksum_v6(V6, V6);
        assert!(p.verify_checksum_v6(V6, V6));
        let r = TcpRepr::parse(&w).unwrap();
        let mut out = vec![0; r.buffer_len()];
        r.emit_v4(&mut out, V4, V4);
        assert_eq!(TcpRepr::parse(&out), Ok(r));
    }

    let mut w = b.to_vec();
    if let Ok(mut p) = UdpPacket::new_checked(&mut w[..]) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload().len(),
        );
        let _ = (p.verify_checksum_v4(V4, V4), p.verify_checksum_v6(V6, V6));
        p.set_src_port(1);
        p.set_dst_port(2);
        p.payload_mut().fill(0);
        p.fill_checksum_v4(V4, V4);
        assert!(p.verify_checksum_v4(V4, V4));
        p.fill_checksum_v6(V6, V6);
        assert!(p.verify_checksum_v6(V6, V6));
        let r = UdpRepr::parse(&w).unwrap();
        let mut out = vec![0; r.buffer_len()];
        r.emit_v6(&mut out, V6, V6);
        assert_eq!(UdpRepr::parse(&out), Ok(r));
    }
}

fn tags(b: &[u8]) {
    let mut f = b.to_vec();
    let before = f.clone();
    if let Some(vid) = vlan::pop_tag(&mut f) {
        assert!(vid <= 0x0fff);
        assert_eq!(f.len() + 4, before.len());
    } else {
        assert_eq!(f, before);
    }
    let mut f = b.to_vec();
    if let Some(id) = VlanId::try_new(100) {
        vlan::push_tag(&mut f, id, 3);
        if b.len() >= 14 {
            assert_eq!(vlan::pop_tag(&mut f), Some(100));
            assert_eq!(f, b);
        }
    }
}

fn everything(b: &[u8]) {
    parse(b);
    tags(b);
    for start in STARTS {
        if let Some(s) = b.get(start..) {
            views(s);
        }
    }
}

/// A fixture with some bytes overwritten, then maybe cut short.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..fixtures::ALL.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(i, edits, cut, truncate)| {
            let mut f = fixtures::ALL[i].1.to_vec();
            for (at, byte) in edits {
                let at = at.index(f.len());
                f[at] = byte;
            }
            if truncate {
                f.truncate(cut.index(f.len() + 1));
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes(b in proptest::collection::vec(any::<u8>(), 0..128)) {
        everything(&b);
    }

    /// Random bytes behind a real Ethernet header and EtherType, so the
    /// L3 and L4 parsers see them.
    #[test]
    fn random_payloads(ethertype in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8]), version in 0u8..16, body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut b = fixtures::TCP_SYN[..12].to_vec();
        b.extend_from_slice(&ethertype.to_be_bytes());
        b.extend_from_slice(&body);
        if let Some(first) = b.get_mut(14) {
            *first = (version << 4) | (*first & 0x0f);
        }
        everything(&b);
    }

    #[test]
    fn mutated_fixtures(b in mutated()) {
        everything(&b);
    }
}

#[test]
fn fixtures_themselves() {
    for (_, f) in fixtures::ALL {
        everything(f);
        for n in 0..f.len() {
            everything(&f[..n]);
        }
    }
}
