//! AF_PACKET sockets on existing host interfaces: how a port attaches a host
//! interface (a veth end, a NIC) to a network, like `ip link set X master br`.
//!
//! With PACKET_VNET_HDR each frame carries the same virtio-net header as a
//! TAP's: the kernel hands us a veth peer's TSO super-frames whole, with
//! partial checksums, and takes ours likewise (segmenting in software only
//! if the interface itself cannot).

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use packet::vlan;
use packet::vnet::{self, VnetHdr};

use super::sys::{cvt, writev_all};
use super::tap::VNET_HOST;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_VNET_HDR: libc::c_int = 15;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// Room kept in front of each received frame to put back a VLAN tag the
/// kernel moved into metadata.
pub const HEADROOM: usize = 4;

pub struct PacketSocket {
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
        // SAFETY: socket has no memory preconditions.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(ETH_P_ALL.to_be()),
            )
        })?;
        // SAFETY: raw is a descriptor we just opened and own exclusively.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Before bind, so every frame queued to us has the header.
        let vnet = VNET_HOST && setsockopt(&fd, PACKET_VNET_HDR, &1 as &libc::c_int).is_ok();
        if !vnet {
            tracing::warn!(
                "{ifname}: no PACKET_VNET_HDR; offloaded frames are finished in software"
            );
        }
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
        setsockopt(&fd, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        setsockopt(&fd, libc::PACKET_AUXDATA, &1 as &libc::c_int)?;
        // Kernels before 4.20 lack it; they loop our sends back, which
        // learning then sees as the same port and drops as same-segment.
        let _ = setsockopt(
            &fd,
            23, /* PACKET_IGNORE_OUTGOING */
            &1 as &libc::c_int,
        );
        Ok(PacketSocket {
            fd,
            name: ifname.to_owned(),
            vnet,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames carry offloads (a virtio-net header).
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Receives one frame into `buf`, returning where in `buf` it is and its
    /// offload state. A VLAN tag the kernel took off into metadata is put
    /// back in place, and the checksum offset moved with it.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(Range<usize>, VnetHdr)> {
        if buf.len() <= HEADROOM + 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer too small",
            ));
        }
        let mut hdr = [0u8; vnet::HEADER_LEN];
        let head = if self.vnet { vnet::HEADER_LEN } else { 0 };
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: head,
            },
            libc::iovec {
                iov_base: buf[HEADROOM..].as_mut_ptr().cast(),
                iov_len: buf.len() - HEADROOM,
            },
        ];
        let mut cbuf = [0u64; 16];
        // SAFETY: msghdr is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&cbuf);
        // SAFETY: msg points at iov (into hdr and buf) and cbuf, all live for the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let short = || io::Error::new(io::ErrorKind::InvalidData, "short read");
        let n = n.checked_sub(head).ok_or_else(short)?;
        let n = n.min(buf.len() - HEADROOM);
        let mut hdr = match self.vnet {
            true => VnetHdr::parse(&hdr).map_err(|_| short())?,
            false => VnetHdr::NONE,
        };
        let mut start = HEADROOM;
        if let Some((tpid, tci)) = vlan_from_cmsgs(&msg) {
            if n >= 12 {
                buf.copy_within(HEADROOM..HEADROOM + 12, 0);
                buf[12..14].copy_from_slice(&tpid.to_be_bytes());
                buf[14..16].copy_from_slice(&tci.to_be_bytes());
                start = 0;
                hdr = hdr.shifted(vlan::TAG_LEN as i32).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "checksum offset out of range")
                })?;
            }
        }
        Ok((start..HEADROOM + n, hdr))
    }

    /// Writes one frame given as consecutive slices, with its offload state
    /// (ignored without PACKET_VNET_HDR; the caller finishes such frames).
    pub fn send(&self, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<usize> {
        if !self.vnet {
            return writev_all(self.fd.as_raw_fd(), &[], parts);
        }
        writev_all(self.fd.as_raw_fd(), &hdr.to_bytes(), parts)
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: val points at a T of the size passed, live for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The (TPID, TCI) of a tag the kernel stripped, from PACKET_AUXDATA.
fn vlan_from_cmsgs(msg: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: msg was filled by recvmsg; the CMSG macros stay within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is non-null and within the control buffer.
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::SOL_PACKET && hdr.cmsg_type == libc::PACKET_AUXDATA {
            // SAFETY: the kernel writes a tpacket_auxdata as this message's data;
            // read_unaligned copes with the control buffer's alignment.
            let aux: libc::tpacket_auxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if aux.tp_status & TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                0x8100
            };
            return Some((tpid, aux.tp_vlan_tci));
        }
        // SAFETY: as above; CMSG_NXTHDR returns null past the end.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}
