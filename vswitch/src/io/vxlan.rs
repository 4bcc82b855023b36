//! A vxlan port's sockets: a UDP socket bound to `local` receives, and a
//! raw IPv4 socket (IPPROTO_RAW, so it receives nothing) sends.
//!
//! Why two: RFC 7348 asks for the outer UDP source port to follow the inner
//! flow, so routers hashing the outer 5-tuple (ECMP) spread the flows a
//! tunnel carries. A UDP socket can only send from the port it is bound
//! to, so the datagrams leave through the raw socket with outer headers
//! the pipeline's choice of port is written into (`vxlan::Encap`); the
//! kernel still routes them, resolves the next hop, fills in the IPv4
//! identification and, when `local` leaves it unspecified, the source
//! address. Peers answer to `local`'s port, as every VTEP listens on its
//! own `dstport`, and Linux takes VXLAN from any source port.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use crate::config::Port;
use crate::vxlan::{self, Encap, TunnelDst};

use super::sys::cvt;

pub struct VxlanSocket {
    udp: UdpSocket,
    raw: OwnedFd,
    /// The encapsulation state (the sealing counter) and its buffer, for
    /// whichever datapath thread sends.
    tx: Mutex<(Encap, Vec<u8>)>,
}

impl VxlanSocket {
    /// Binds `port`'s local address; `clock_ns` (the wall clock) is where a
    /// sealing port's counter starts.
    pub fn open(port: &Port, clock_ns: u64) -> io::Result<VxlanSocket> {
        let local = vxlan::local_addr(port);
        let encap = Encap::new(port, clock_ns)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a vxlan port"))?;
        let udp = UdpSocket::bind(local)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {local}: {e}")))?;
        udp.set_nonblocking(true)?;
        // SAFETY: socket has no memory preconditions.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        })?;
        // SAFETY: fd is a descriptor we just opened and own exclusively.
        let raw = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(VxlanSocket {
            udp,
            raw,
            tx: Mutex::new((encap, Vec::with_capacity(65536))),
        })
    }

    /// The receiving socket, for the poll loop.
    pub fn fd(&self) -> RawFd {
        self.udp.as_raw_fd()
    }

    /// One datagram's UDP payload into `buf`, and its sender.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV4)> {
        match self.udp.recv_from(buf)? {
            (n, SocketAddr::V4(from)) => Ok((n, from)),
            (_, SocketAddr::V6(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an IPv6 sender on an IPv4 socket",
            )),
        }
    }

    /// Sends the frame in `parts` to the VTEP `to`.
    pub fn send(&self, parts: &[&[u8]], to: TunnelDst) -> io::Result<usize> {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let (encap, buf) = &mut *tx;
        encap.encapsulate(to, parts, buf);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(to.vtep.octets()),
            },
            sin_zero: [0; 8],
        };
        // sendto only reads through the pointers.
        // SAFETY: buf and addr are live for the call, with the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.raw.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}
