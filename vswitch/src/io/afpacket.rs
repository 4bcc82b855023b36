//! AF_PACKET sockets on existing host interfaces: how a port attaches a host
//! interface (a veth end, a NIC) to a network, like `ip link set X master br`.
//!
//! With PACKET_VNET_HDR each frame carries the same virtio-net header as a
//! TAP's: the kernel hands us a veth peer's TSO super-frames whole, with
//! partial checksums, and takes ours likewise (segmenting in software only
//! if the interface itself cannot). Frames come in through a mapped ring
//! (see `ring`); they go out with one writev each.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use packet::vnet::VnetHdr;

use super::ring::RxRing;
use super::sys::{cvt, setsockopt, writev_all};
use super::tap::VNET_HOST;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
/// Room kept in front of each received frame to put back a VLAN tag the
/// kernel moved into metadata.
pub const HEADROOM: usize = 4;

pub struct PacketSocket {
    /// Declared before `fd`: unmapped before the socket closes. Locked so
    /// that the socket can be shared by the datapath's threads; one of
    /// them reads it.
    ring: Mutex<RxRing>,
    fd: OwnedFd,
    name: String,
    /// Frames carry a virtio-net header.
    vnet: bool,
}

impl PacketSocket {
    /// Opens a raw socket bound to `ifname`, in promiscuous mode, that does
    /// not see its own transmissions.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let cname = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        // SAFETY: cname is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no host interface named {ifname}"),
            ));
        }
        let ifindex = ifindex as libc::c_int;
        // Protocol 0: nothing is queued to us until bind names the interface.
        // SAFETY: socket has no memory preconditions.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: raw is a descriptor we just opened and own exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Before the ring, which the kernel lays out with or without it.
        let vnet = VNET_HOST
            && setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                &1 as &libc::c_int,
            )
            .is_ok();
        if !vnet {
            tracing::warn!(
                "{ifname}: no PACKET_VNET_HDR; offloaded frames are finished in software"
            );
        }
        let ring = RxRing::new(&fd)?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a sockaddr_ll of the size passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: packet_mreq is plain data; all-zero is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        // Kernels before 4.20 lack it; they loop our sends back, which
        // learning then sees as the same port and drops as same-segment.
        let _ = setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &1 as &libc::c_int,
        );
        Ok(PacketSocket {
            ring: Mutex::new(ring),
            fd,
            name: ifname.to_owned(),
            vnet,
        })
    }

    /// Opens `n` sockets on `ifname`. More than one form a fanout group:
    /// the kernel hands each received frame to one of them by flow hash,
    /// so each datapath thread reads its own and a flow stays in order.
    pub fn open_fanout(ifname: &str, n: usize) -> io::Result<Vec<PacketSocket>> {
        let first = PacketSocket::open(ifname)?;
        if n <= 1 {
            return Ok(vec![first]);
        }
        // Id 0 with UNIQUEID: the kernel picks a free group id, which the
        // others join with (without the flag, which the kernel drops).
        let arg = (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
        set_fanout(&first.fd, arg, ifname)?;
        let id = fanout_id(&first.fd)?;
        let mut all = vec![first];
        for _ in 1..n {
            let s = PacketSocket::open(ifname)?;
            set_fanout(&s.fd, id | PACKET_FANOUT_HASH << 16, ifname)?;
            all.push(s);
        }
        Ok(all)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames carry offloads (a virtio-net header).
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Takes the next frame from the ring into `buf`, returning where in
    /// `buf` it is and its offload state. A VLAN tag the kernel took off into
    /// metadata is put back in place, and the checksum offset moved with it.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(Range<usize>, VnetHdr)> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.recv(self.vnet, buf)
    }

    /// Writes one frame given as consecutive slices, with its offload state
    /// (ignored without PACKET_VNET_HDR; the caller finishes such frames).
    pub fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<usize> {
        writev_all(self.fd.as_raw_fd(), self.vnet.then_some(hdr), parts)
    }
}

/// Joins `fd` to the fanout group `arg` names (id, then type << 16).
fn set_fanout(fd: &OwnedFd, arg: u32, ifname: &str) -> io::Result<()> {
    setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT, &arg)
        .map_err(|e| io::Error::new(e.kind(), format!("PACKET_FANOUT on {ifname}: {e}")))
}

/// The id of the fanout group `fd` is in (the low 16 bits of what
/// PACKET_FANOUT reads back).
fn fanout_id(fd: &OwnedFd) -> io::Result<u32> {
    let mut val: u32 = 0;
    let mut len = size_of::<u32>() as libc::socklen_t;
    // SAFETY: val is a u32 of the length passed, live for the call.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_FANOUT,
            (&mut val as *mut u32).cast(),
            &mut len,
        )
    })?;
    Ok(val & 0xffff)
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
