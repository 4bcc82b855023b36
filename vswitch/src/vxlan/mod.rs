//! VXLAN ports (RFC 7348): each is one VTEP for its network, carrying the
//! network's frames to and from remote VTEPs over UDP.
//!
//! Inbound, `Tunnel::decap` checks a datagram the I/O layer received on
//! the port's socket (VXLAN header, VNI, that the sender is a known peer,
//! the seal when encrypted) and finds the inner frame, which then goes
//! through the pipeline like a frame from any port; the FDB learns its
//! source MAC behind the VTEP it came from. Outbound, the pipeline decides
//! which VTEPs get a frame: the one the destination MAC was learned behind,
//! or every `remote` for broadcast, multicast and unknown unicast (head-end
//! replication), and the outer source port from the inner flow.
//! `Encap` builds the datagram, in the I/O layer's hands.
//!
//! Frames larger than the port carries (`mtu`: inner IP packets, 1450 by
//! default over a 1500-byte underlay) are the pipeline's to refuse, with
//! ICMP fragmentation-needed when DF is set.

pub mod seal;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;

use packet::vxlan::{OuterRepr, Vni, VxlanRepr, HEADER_LEN, OUTER_LEN};

use crate::config::{self, VXLAN_PORT};
use crate::stats::DropReason;

use self::seal::{OpenError, Opener, Sealer};

/// A vxlan port's VTEP as the pipeline keeps it.
#[derive(Clone)]
pub struct Tunnel {
    pub vni: Vni,
    /// Peers: frames are taken from these, and flooded to them.
    pub remotes: Vec<Ipv4Addr>,
    /// Frames from VTEPs not in `remotes` are taken too.
    pub learn_peers: bool,
    /// The largest inner IP packet the port carries.
    pub mtu: u16,
    opener: Option<Opener>,
}

/// Where one copy of a frame leaving by a vxlan port goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelDst {
    pub vtep: Ipv4Addr,
    /// The outer UDP source port, from the inner flow.
    pub src_port: u16,
}

impl Tunnel {
    /// The VTEP of a validated vxlan port; `None` for other kinds.
    pub fn new(p: &config::Port) -> Option<Tunnel> {
        let vni = Vni::try_new(p.vni?)?;
        Some(Tunnel {
            vni,
            remotes: p.remote.clone(),
            learn_peers: p.learn_peers,
            mtu: p.mtu,
            opener: p.key.as_ref().map(Opener::new),
        })
    }

    /// Checks one received datagram (the UDP payload) from `from` and, when
    /// sealed, opens it in place. The inner frame is at the returned range.
    pub fn decap(
        &mut self,
        from: Ipv4Addr,
        datagram: &mut [u8],
    ) -> Result<Range<usize>, DropReason> {
        let header = VxlanRepr::parse(datagram).map_err(|_| DropReason::VxlanMalformed)?;
        if header.vni != self.vni {
            return Err(DropReason::VxlanBadVni);
        }
        if !self.learn_peers && !self.remotes.contains(&from) {
            return Err(DropReason::VxlanUnknownPeer);
        }
        let (head, body) = datagram.split_at_mut(HEADER_LEN);
        let inner = match &mut self.opener {
            None => 0..body.len(),
            Some(o) => o.open(head, body).map_err(|e| match e {
                OpenError::Truncated => DropReason::VxlanMalformed,
                OpenError::Forged => DropReason::VxlanForged,
                OpenError::Replayed => DropReason::VxlanReplayed,
                OpenError::TooManySenders => DropReason::VxlanUnknownPeer,
            })?,
        };
        Ok(HEADER_LEN + inner.start..HEADER_LEN + inner.end)
    }
}

/// The address a vxlan port's socket binds.
pub fn local_addr(p: &config::Port) -> SocketAddrV4 {
    p.local
        .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, VXLAN_PORT))
}

/// Builds the datagrams one vxlan port sends: outer IPv4 and UDP headers,
/// VXLAN header, the inner frame (sealed when the port encrypts).
pub struct Encap {
    header: [u8; HEADER_LEN],
    local: SocketAddrV4,
    sealer: Option<Sealer>,
}

impl Encap {
    /// `clock_ns` is the wall clock in nanoseconds, the first counter of a
    /// sealing port (see `seal`).
    pub fn new(p: &config::Port, clock_ns: u64) -> Option<Encap> {
        let vni = Vni::try_new(p.vni?)?;
        let local = local_addr(p);
        Some(Encap {
            header: VxlanRepr { vni }.to_bytes(),
            local,
            sealer: p
                .key
                .as_ref()
                .map(|k| Sealer::new(k, *local.ip(), clock_ns)),
        })
    }

    /// Appends to `out` the whole IPv4 packet carrying `inner` (in parts)
    /// to `to`. The source address is the bound one, or zero for the
    /// kernel to fill in.
    pub fn encapsulate(&mut self, to: TunnelDst, inner: &[&[u8]], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + OUTER_LEN, 0);
        out.extend_from_slice(&self.header);
        match &mut self.sealer {
            Some(s) => s.seal(&self.header, inner, out),
            None => inner.iter().for_each(|p| out.extend_from_slice(p)),
        }
        OuterRepr {
            src: *self.local.ip(),
            dst: to.vtep,
            src_port: to.src_port,
            dst_port: self.local.port(),
            payload_len: out.len() - start - OUTER_LEN,
        }
        .emit(&mut out[start..]);
    }
}
