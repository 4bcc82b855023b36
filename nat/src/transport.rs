//! Ports, ICMP echo identifiers and the checksums over them.

use conntrack::Tuple;
use packet::icmpv4::msg;
use packet::ipv4::protocol::{ICMP, TCP, UDP};

use crate::checksum::Delta;
use crate::wire::{get16, swap16};
use crate::NatError;

/// What the transport checksum field holds, and how sure we are to see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Csum {
    /// A complete checksum, over pseudo header, header and data.
    Full,
    /// CHECKSUM_PARTIAL: the pseudo header's sum only, the rest to be done
    /// by whoever offloaded it. Port changes are then covered when that
    /// sum is completed; only address changes touch the field.
    Partial,
    /// A complete checksum in a packet quoted by an ICMP error, which may
    /// be cut after the first 8 transport bytes (RFC 792): a TCP checksum
    /// past the cut is left alone, as Linux does.
    Quoted,
}

/// Where TCP and UDP keep their checksum.
const TCP_CHECKSUM: usize = 16;
const UDP_CHECKSUM: usize = 6;
const ICMP_CHECKSUM: usize = 2;
const ICMP_ECHO_ID: usize = 4;
/// What a rewrite needs of each header: all of TCP's, UDP's and ICMP's
/// fixed part, or the 8 bytes an ICMP error always quotes.
const TCP_HEADER: usize = 20;
const MIN_HEADER: usize = 8;

/// Rewrites the ports (or echo identifier) at the start of `l4`, the
/// transport header of a `protocol` packet, to those of `want`, and patches
/// its checksum for them and for `pseudo`, the change to the pseudo header.
/// Every word changed is also added to `enclosing`, for a checksum that
/// covers this header (an ICMP error's). `offset` is where `l4` starts in
/// the frame, for errors. Other protocols are left alone.
pub(crate) fn rewrite(
    l4: &mut [u8],
    protocol: u8,
    want: &Tuple,
    pseudo: Delta,
    csum: Csum,
    enclosing: &mut Delta,
    offset: usize,
) -> Result<(), NatError> {
    let need = match (protocol, csum) {
        (TCP, Csum::Full | Csum::Partial) => TCP_HEADER,
        (TCP | UDP | ICMP, _) => MIN_HEADER,
        _ => return Ok(()),
    };
    if l4.len() < need {
        return Err(NatError::Malformed { offset });
    }
    let mut ports = Delta::default();
    let at_checksum = match protocol {
        ICMP => {
            if !matches!(l4.first(), Some(&(msg::ECHO_REQUEST | msg::ECHO_REPLY))) {
                return Ok(());
            }
            put(l4, ICMP_ECHO_ID, want.src_port, &mut ports, offset)?;
            ICMP_CHECKSUM
        }
        _ => {
            put(l4, 0, want.src_port, &mut ports, offset)?;
            put(l4, 2, want.dst_port, &mut ports, offset)?;
            if protocol == TCP {
                TCP_CHECKSUM
            } else {
                UDP_CHECKSUM
            }
        }
    };
    enclosing.add(ports);
    let Some(old) = get16(l4, at_checksum) else {
        // Only a quoted TCP header may stop before its checksum.
        return Ok(());
    };
    let new = match csum {
        // A UDP checksum of 0 means none was computed: it stays so.
        Csum::Full | Csum::Quoted if protocol == UDP && old == 0 => return Ok(()),
        Csum::Partial if protocol == ICMP => return Ok(()),
        Csum::Partial => pseudo.apply_partial(old),
        Csum::Full | Csum::Quoted => {
            let mut all = ports;
            if protocol != ICMP {
                all.add(pseudo);
            }
            all.apply(old)
        }
    };
    // A UDP checksum that comes to 0 is sent as 0xffff (RFC 768), as
    // Linux's CSUM_MANGLED_0.
    let new = if protocol == UDP && new == 0 {
        0xffff
    } else {
        new
    };
    put(l4, at_checksum, new, enclosing, offset)
}

/// Writes one word and records its change in `delta`.
fn put(
    b: &mut [u8],
    at: usize,
    new: u16,
    delta: &mut Delta,
    offset: usize,
) -> Result<(), NatError> {
    let old = swap16(b, at, new).ok_or(NatError::Malformed { offset })?;
    delta.add16(old, new);
    Ok(())
}
