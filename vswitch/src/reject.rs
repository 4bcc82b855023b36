//! What REJECT answers with: the ICMP destination-unreachable code for each
//! `--reject-with`, and the TCP reset, built as Linux's nf_reject does.

use std::net::Ipv4Addr;

use packet::ethernet::{self, ethertype, EthernetRepr};
use packet::ipv4::{self, Ipv4Repr};
use packet::tcp::{TcpFlags, TcpRepr};
use packet::MacAddr;

use crate::gateway::DEFAULT_TTL;
use crate::netfilter::RejectWith;

/// The ICMP destination-unreachable code for `with`; `None` for tcp-reset.
pub fn icmp_code(with: RejectWith) -> Option<u8> {
    Some(match with {
        RejectWith::NetUnreachable => 0,
        RejectWith::HostUnreachable => 1,
        RejectWith::ProtoUnreachable => 2,
        RejectWith::PortUnreachable => 3,
        RejectWith::NetProhibited => 9,
        RejectWith::HostProhibited => 10,
        RejectWith::AdminProhibited => 13,
        RejectWith::TcpReset => return None,
    })
}

/// The segment being refused, as far as the reset needs it.
pub struct Refused {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub payload_len: usize,
}

/// A reset answering `seg` in the name of its destination (RFC 9293 3.10.7.1):
/// with the segment's ACK number as our sequence if it carried an ACK,
/// otherwise acknowledging everything it occupied. A reset is never
/// answered, so `None` for one.
pub fn tcp_reset(seg: &Refused) -> Option<TcpResetFrame> {
    if seg.flags.contains(TcpFlags::RST) {
        return None;
    }
    let (seq, ack, flags) = if seg.flags.contains(TcpFlags::ACK) {
        (seg.ack, 0, TcpFlags::RST)
    } else {
        let occupied = seg.payload_len as u32
            + u32::from(seg.flags.contains(TcpFlags::SYN))
            + u32::from(seg.flags.contains(TcpFlags::FIN));
        (
            0,
            seg.seq.wrapping_add(occupied),
            TcpFlags(TcpFlags::RST.0 | TcpFlags::ACK.0),
        )
    };
    Some(TcpResetFrame {
        eth: EthernetRepr {
            dst: seg.src_mac,
            src: seg.dst_mac,
            ethertype: ethertype::IPV4,
        },
        src: seg.dst,
        dst: seg.src,
        tcp: TcpRepr {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq_number: seq,
            ack_number: ack,
            flags,
            window: 0,
            payload: &[],
        },
    })
}

pub struct TcpResetFrame {
    eth: EthernetRepr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tcp: TcpRepr<'static>,
}

impl TcpResetFrame {
    pub const LEN: usize = ethernet::HEADER_LEN + Ipv4Repr::HEADER_LEN + packet::tcp::HEADER_LEN;

    /// Writes the frame into `buf` (`LEN` bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        let (eth, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        let (ip, tcp) = rest.split_at_mut(Ipv4Repr::HEADER_LEN);
        self.eth.emit(eth);
        Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: ipv4::protocol::TCP,
            ttl: DEFAULT_TTL,
            payload_len: packet::tcp::HEADER_LEN,
            ident: 0,
            dont_frag: true,
            dscp_ecn: 0,
        }
        .emit(ip);
        self.tcp.emit_v4(tcp, self.src, self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::{Parsed, L3, L4};

    fn syn(flags: TcpFlags, payload_len: usize) -> Refused {
        Refused {
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 3]),
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: Ipv4Addr::new(10, 0, 0, 3),
            src_port: 40000,
            dst_port: 5433,
            flags,
            seq: 1000,
            ack: 7777,
            payload_len,
        }
    }

    fn emitted(seg: &Refused) -> Vec<u8> {
        let frame = tcp_reset(seg).expect("a reset");
        let mut buf = vec![0; TcpResetFrame::LEN];
        frame.emit(&mut buf);
        buf
    }

    #[test]
    fn a_syn_is_answered_with_rst_ack_of_seq_plus_one() {
        let buf = emitted(&syn(TcpFlags::SYN, 0));
        let p = Parsed::parse(&buf).expect("parses");
        assert_eq!(p.src, MacAddr([2, 0, 0, 0, 0, 3]));
        assert_eq!(p.dst, MacAddr([2, 0, 0, 0, 0, 2]));
        let L3::Ipv4 { src, dst, ttl, .. } = p.l3 else {
            panic!("not IPv4: {:?}", p.l3)
        };
        assert_eq!(
            (src, dst, ttl),
            (Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 2), 64)
        );
        let L4::Tcp {
            src_port,
            dst_port,
            flags,
            seq,
            ack,
            ..
        } = p.l4
        else {
            panic!("not TCP: {:?}", p.l4)
        };
        assert_eq!((src_port, dst_port), (5433, 40000));
        assert_eq!(flags, TcpFlags(TcpFlags::RST.0 | TcpFlags::ACK.0));
        assert_eq!((seq, ack), (0, 1001));
        let ip = packet::ipv4::Ipv4Packet::new_checked(&buf[14..]).expect("ip");
        assert!(ip.verify_checksum());
        let tcp = packet::tcp::TcpPacket::new_checked(ip.payload()).expect("tcp");
        assert!(tcp.verify_checksum_v4(src, dst));
    }

    #[test]
    fn a_segment_with_ack_is_answered_from_its_ack_number() {
        let buf = emitted(&syn(TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0), 100));
        let p = Parsed::parse(&buf).expect("parses");
        let L4::Tcp {
            flags, seq, ack, ..
        } = p.l4
        else {
            panic!("not TCP")
        };
        assert_eq!((flags, seq, ack), (TcpFlags::RST, 7777, 0));
    }

    #[test]
    fn a_fin_with_data_is_acknowledged_whole_and_a_reset_never() {
        let buf = emitted(&syn(TcpFlags::FIN, 10));
        let L4::Tcp { ack, .. } = Parsed::parse(&buf).expect("parses").l4 else {
            panic!("not TCP")
        };
        assert_eq!(ack, 1011);
        assert!(tcp_reset(&syn(TcpFlags::RST, 0)).is_none());
    }

    #[test]
    fn icmp_codes_follow_iptables() {
        assert_eq!(icmp_code(RejectWith::PortUnreachable), Some(3));
        assert_eq!(icmp_code(RejectWith::AdminProhibited), Some(13));
        assert_eq!(icmp_code(RejectWith::TcpReset), None);
    }
}
