//! TAP devices, opened on /dev/net/tun directly: the crates we looked at know
//! neither IFF_VNET_HDR nor multi-queue, which the fast path needs.
//!
//! With IFF_VNET_HDR every frame read or written is preceded by a 10-byte
//! `struct virtio_net_hdr` (the default size: the same layout AF_PACKET's
//! PACKET_VNET_HDR uses, so a header passes between the two port kinds
//! unchanged; the 12-byte variant only adds `num_buffers`, which neither
//! side uses). TUNSETOFFLOAD then tells the kernel we accept partial
//! checksums and TSO/USO super-frames, which turns on checksum offload and
//! TSO on the device, the container's eth0: its kernel hands us up to 64 KB
//! per frame instead of segmenting and checksumming 1500-byte frames.
//!
//! With more than one datapath thread the TAP is multi-queue: one descriptor
//! per queue, each read by its own thread. The kernel spreads the frames the
//! container sends over the queues by flow hash, so one flow stays in order.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use packet::vnet::{self, VnetHdr};

use super::sys::{cvt, readv_into, writev_all};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;
/// Linux writes legacy virtio-net headers in the host's byte order; the
/// packet crate reads them little-endian, so only such hosts use them.
pub(super) const VNET_HOST: bool = cfg!(target_endian = "little");

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A TAP device. The device exists as long as this value does: closing the
/// last descriptor of a non-persistent TAP removes it, wherever it was moved.
pub struct Tap {
    /// One descriptor per queue; queue 0 first.
    queues: Vec<OwnedFd>,
    name: String,
    /// Frames carry a virtio-net header.
    vnet: bool,
}

impl Tap {
    /// Creates a TAP named `name` (at most 15 bytes) with `queues` queues
    /// (multi-queue when more than one), non-blocking, with virtio-net
    /// headers and offloads where the host allows.
    pub fn create(name: &str, queues: usize) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {name:?} must be 1 to 15 bytes"),
            ));
        }
        let multi = if queues > 1 { IFF_MULTI_QUEUE } else { 0 };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | multi | if VNET_HOST { IFF_VNET_HDR } else { 0 },
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        let mut fds = Vec::with_capacity(queues.max(1));
        for _ in 0..queues.max(1) {
            // The first TUNSETIFF creates the device (and may rename it);
            // each later one, with the same name and flags, adds a queue.
            fds.push(attach(&mut req, name)?);
        }
        let name = CStr::from_bytes_until_nul(&req.name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| name.to_owned());
        if VNET_HOST {
            enable_offloads(&fds[0], &name);
        }
        Ok(Tap {
            queues: fds,
            name,
            vnet: VNET_HOST,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames carry offloads (a virtio-net header).
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Queue `q`'s descriptor, if the TAP has that queue.
    pub fn queue_fd(&self, q: usize) -> Option<RawFd> {
        self.queues.get(q).map(AsRawFd::as_raw_fd)
    }

    fn fd(&self, q: usize) -> io::Result<RawFd> {
        self.queue_fd(q).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TAP {} has no queue {q}", self.name),
            )
        })
    }

    /// Reads one frame from queue `q` into `buf` and its offload state;
    /// `WouldBlock` when none is waiting.
    pub fn recv(&self, q: usize, buf: &mut [u8]) -> io::Result<(usize, VnetHdr)> {
        let fd = self.fd(q)?;
        if !self.vnet {
            return readv_into(fd, &mut [buf]).map(|n| (n, VnetHdr::NONE));
        }
        let mut hdr = [0u8; vnet::HEADER_LEN];
        let n = readv_into(fd, &mut [&mut hdr[..], buf])?;
        let hdr = VnetHdr::parse(&hdr)
            .ok()
            .filter(|_| n >= vnet::HEADER_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short read"))?;
        Ok((n - vnet::HEADER_LEN, hdr))
    }

    /// Writes one frame on queue `q`, given as consecutive slices, with its
    /// offload state (ignored by a TAP without headers; the caller finishes
    /// such frames).
    pub fn send(&self, q: usize, hdr: &VnetHdr, parts: &[&[u8]]) -> io::Result<usize> {
        writev_all(self.fd(q)?, self.vnet.then_some(hdr), parts)
    }
}

/// Opens /dev/net/tun and attaches it to the TAP `req` names: the first
/// call creates the device, later ones add queues.
fn attach(req: &mut IfReq, name: &str) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: path is a valid NUL-terminated string; open has no other preconditions.
    let raw = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")))?;
    // SAFETY: raw is a descriptor we just opened and own exclusively.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, req as *mut IfReq) })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create TAP {name}: {e}")))?;
    Ok(fd)
}

/// Declares the offloads we take from the kernel: partial checksums, TSO
/// (with ECN) and, on Linux 6.2 and later, USO. Older kernels refuse the
/// USO bits, so they are tried first and dropped on refusal. Without any,
/// the TAP still works; the container's kernel segments and checksums.
fn enable_offloads(fd: &OwnedFd, name: &str) {
    let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    for flags in [tso | TUN_F_USO4 | TUN_F_USO6, tso] {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        if cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, libc::c_ulong::from(flags)) })
            .is_ok()
        {
            return;
        }
    }
    tracing::warn!("TAP {name}: the kernel refused offloads; frames cross segmented");
}

impl AsRawFd for Tap {
    /// Queue 0's descriptor.
    fn as_raw_fd(&self) -> RawFd {
        self.queues[0].as_raw_fd()
    }
}
