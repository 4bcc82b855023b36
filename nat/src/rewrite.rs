//! Rewriting a packet of a bound connection in place (Linux
//! `nf_nat_packet` and `nf_nat_ipv4_manip_pkt`).
//!
//! A packet travelling in direction `dir` carries its entry's tuple for
//! `dir`; it must leave carrying the reverse of the other direction's
//! tuple, which is what the peer on the far side expects. Only the fields
//! that differ are written, and each checksum covering a written field is
//! patched by the difference (RFC 1624), never summed again: the cost does
//! not grow with the packet, which may be a 64 KB GSO frame.
//!
//! Fragments: a non-first fragment has no transport header, so only its
//! addresses are rewritten. That is enough: the transport checksum lives
//! in the first fragment, whose rewrite already folded the address change
//! into it. (The switch tracks no fragment but the first, so it finds no
//! entry for the others unless it keeps one per datagram itself.)

use std::net::{IpAddr, Ipv4Addr};

use conntrack::{Dir, Tuple};
use packet::ipv4::protocol::ICMP;
use packet::ipv4::Ipv4Packet;
use packet::ErrorKind;

use crate::checksum::Delta;
use crate::transport::{self, Csum};
use crate::{icmp_error, NatError};

/// Rewrites the IPv4 packet at `l3_offset` in `frame`, travelling in `dir`
/// in the entry whose tuples are `tuples` (`Entry::tuples()`), so that it
/// carries what the other side expects: addresses, TCP/UDP ports, the ICMP
/// echo identifier, and, for an ICMP error RELATED to the entry (`dir` as
/// `track` gave it), the packet it quotes.
///
/// `partial_csum` says the TCP/UDP checksum field holds only the pseudo
/// header's sum (CHECKSUM_PARTIAL, from a TAP or AF_PACKET with offloads):
/// only address changes are applied to it then, and an ICMP checksum is
/// left for whoever completes it.
///
/// A connection with no binding is left untouched. Errors leave the frame
/// partly rewritten; the caller drops it.
pub fn rewrite(
    frame: &mut [u8],
    l3_offset: usize,
    tuples: &[Tuple; 2],
    dir: Dir,
    partial_csum: bool,
) -> Result<(), NatError> {
    let current = tuples[dir.index()];
    let target = tuples[dir.opposite().index()].reverse();
    if current == target {
        return Ok(());
    }
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (target.src, target.dst) else {
        return Err(NatError::NotIpv4);
    };
    let malformed = NatError::Malformed { offset: l3_offset };
    let buf = frame.get_mut(l3_offset..).ok_or(malformed)?;
    let mut ip = Ipv4Packet::new_checked(buf).map_err(|e| match e.kind {
        ErrorKind::BadVersion(_) => NatError::NotIpv4,
        _ => malformed,
    })?;
    let l4_offset = l3_offset + ip.header_len();
    let first_fragment = ip.frag_offset() == 0;
    let protocol = ip.protocol();
    if protocol == ICMP && first_fragment {
        if let Some(&t) = ip.payload().first() {
            if icmp_error::is_error(t) {
                let quoted = tuples[dir.opposite().index()];
                return icmp_error::rewrite(
                    &mut ip,
                    l4_offset,
                    &current,
                    &target,
                    &quoted,
                    partial_csum,
                );
            }
        }
    }
    let pseudo = set_addrs(&mut ip, src, dst);
    if !first_fragment {
        return Ok(());
    }
    let csum = if partial_csum {
        Csum::Partial
    } else {
        Csum::Full
    };
    transport::rewrite(
        ip.payload_mut(),
        protocol,
        &target,
        pseudo,
        csum,
        &mut Delta::default(),
        l4_offset,
    )
}

/// Sets both addresses, patching the header checksum; returns the change,
/// for the pseudo header.
pub(crate) fn set_addrs(ip: &mut Ipv4Packet<&mut [u8]>, src: Ipv4Addr, dst: Ipv4Addr) -> Delta {
    let mut d = Delta::default();
    d.add32(ip.src_addr().into(), src.into());
    d.add32(ip.dst_addr().into(), dst.into());
    if !d.is_empty() {
        let c = d.apply(ip.checksum());
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.set_checksum(c);
    }
    d
}
