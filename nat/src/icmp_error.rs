//! ICMP errors about a bound connection (Linux
//! `nf_nat_icmp_reply_translation`). The error quotes a packet of the
//! connection as it was on the far side of the translation; the quote is
//! put back as it was on this side, so the host reading the error
//! recognises its own packet, and the outer addresses are translated where
//! the binding translates that end in this direction.
//!
//! The ICMP checksum covers the quote, so every word changed inside it,
//! the quoted IP and transport checksums included, is summed and patched
//! into it. Each of those fields sits at an even offset from the start of
//! the ICMP message (8, then a header of whole 32-bit words), so 16-bit
//! updates line up.

use std::net::IpAddr;

use conntrack::Tuple;
use packet::icmpv4::msg;
use packet::ipv4::Ipv4Packet;

use crate::checksum::Delta;
use crate::rewrite::set_addrs;
use crate::transport::{self, Csum};
use crate::wire::{get16, swap16, swap32};
use crate::NatError;

/// The errors that quote a packet and are RELATED to its connection.
pub(crate) fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg::DST_UNREACHABLE | msg::TIME_EXCEEDED | msg::PARAM_PROBLEM
    )
}

const ICMP_HEADER: usize = 8;
const ICMP_CHECKSUM: usize = 2;
const IP_HEADER: usize = 20;
const IP_FLAGS_OFFSET: usize = 6;
const IP_PROTOCOL: usize = 9;
const IP_CHECKSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;

/// `current` and `target` are the error's direction's tuple and what it
/// must become, as for any packet; `quoted` is the other direction's
/// tuple, which the quote must carry. `l4_offset` is where the ICMP
/// message starts in the frame.
pub(crate) fn rewrite(
    ip: &mut Ipv4Packet<&mut [u8]>,
    l4_offset: usize,
    current: &Tuple,
    target: &Tuple,
    quoted: &Tuple,
    partial_csum: bool,
) -> Result<(), NatError> {
    let (IpAddr::V4(inner_src), IpAddr::V4(inner_dst)) = (quoted.src, quoted.dst) else {
        return Err(NatError::NotIpv4);
    };
    // The outer source is often a router on the way, not the peer: only
    // an end the binding translates is rewritten.
    let src = match target.src {
        IpAddr::V4(a) if current.src != target.src => a,
        _ => ip.src_addr(),
    };
    let dst = match target.dst {
        IpAddr::V4(a) if current.dst != target.dst => a,
        _ => ip.dst_addr(),
    };
    set_addrs(ip, src, dst);

    let icmp = ip.payload_mut();
    let quote_offset = l4_offset + ICMP_HEADER;
    let quote = icmp
        .get_mut(ICMP_HEADER..)
        .ok_or(NatError::Malformed { offset: l4_offset })?;
    let malformed = NatError::Malformed {
        offset: quote_offset,
    };
    let ihl = match quote.first() {
        Some(&v) if v >> 4 == 4 => usize::from(v & 0x0f) * 4,
        _ => return Err(malformed),
    };
    if ihl < IP_HEADER || ihl > quote.len() {
        return Err(malformed);
    }
    let mut in_icmp = Delta::default();
    let mut addrs = Delta::default();
    for (at, new) in [(IP_SRC, inner_src), (IP_DST, inner_dst)] {
        let old = swap32(quote, at, new.into()).ok_or(malformed)?;
        addrs.add32(old, new.into());
    }
    in_icmp.add(addrs);
    let old = get16(quote, IP_CHECKSUM).ok_or(malformed)?;
    let new = addrs.apply(old);
    swap16(quote, IP_CHECKSUM, new).ok_or(malformed)?;
    in_icmp.add16(old, new);

    let first_fragment = get16(quote, IP_FLAGS_OFFSET).is_some_and(|f| f & 0x1fff == 0);
    let protocol = quote.get(IP_PROTOCOL).copied().ok_or(malformed)?;
    if first_fragment {
        let l4 = quote.get_mut(ihl..).ok_or(malformed)?;
        transport::rewrite(
            l4,
            protocol,
            quoted,
            addrs,
            Csum::Quoted,
            &mut in_icmp,
            quote_offset + ihl,
        )?;
    }
    if !partial_csum {
        let old = get16(icmp, ICMP_CHECKSUM).ok_or(NatError::Malformed { offset: l4_offset })?;
        swap16(icmp, ICMP_CHECKSUM, in_icmp.apply(old));
    }
    Ok(())
}
