//! A vxlan port's sockets: a UDP socket bound to `local` receives (one per
//! datapath thread), and a raw IPv4 socket (IPPROTO_RAW, so it receives
//! nothing) sends.
//!
//! With several threads the receiving sockets form an `SO_REUSEPORT`
//! group, which the kernel spreads datagrams over by their addresses and
//! ports: a peer's outer source port follows the inner flow (RFC 7348), so
//! each flow stays with one thread, in order. A plain bind of `local`
//! first makes sure no other process holds it, as with one socket: the
//! kernel would otherwise let another root process's group share it.
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
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use crate::config::Port;
use crate::vxlan::{self, Encap, TunnelDst};

use super::batch::{RxBatch, TxBatch};
use super::sys::{cvt, setsockopt, sockaddr};

pub struct VxlanSocket {
    /// By datapath thread, each with the datagrams its last read took.
    udp: Vec<UdpSocket>,
    rx: Vec<Mutex<RxBatch>>,
    raw: OwnedFd,
    /// The encapsulation state (the sealing counter), for whichever
    /// datapath thread sends; it builds each datagram in that thread's
    /// batch.
    tx: Mutex<Encap>,
}

impl VxlanSocket {
    /// Binds `port`'s local address, once per thread of `threads`;
    /// `clock_ns` (the wall clock) is where a sealing port's counter starts.
    pub fn open(port: &Port, clock_ns: u64, threads: usize) -> io::Result<VxlanSocket> {
        let local = vxlan::local_addr(port);
        let encap = Encap::new(port, clock_ns)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a vxlan port"))?;
        let cannot =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot bind UDP {local}: {e}"));
        let plain = UdpSocket::bind(local).map_err(cannot)?;
        let udp = match threads {
            0 | 1 => vec![plain],
            n => {
                drop(plain);
                (0..n)
                    .map(|_| reuseport_socket(local))
                    .collect::<io::Result<_>>()
                    .map_err(cannot)?
            }
        };
        for u in &udp {
            u.set_nonblocking(true)?;
        }
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
            rx: udp.iter().map(|_| Mutex::new(RxBatch::new())).collect(),
            udp,
            raw,
            tx: Mutex::new(encap),
        })
    }

    /// Thread `q`'s receiving socket, for its poll loop.
    pub fn fd(&self, q: usize) -> Option<RawFd> {
        self.udp.get(q).map(AsRawFd::as_raw_fd)
    }

    /// One datagram's UDP payload into `buf` from thread `q`'s socket, and
    /// its sender.
    pub fn recv(&self, q: usize, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV4)> {
        let (Some(udp), Some(rx)) = (self.udp.get(q), self.rx.get(q)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no socket for thread {q}"),
            ));
        };
        let mut rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
        rx.recv(udp.as_raw_fd(), buf)
    }

    /// Stages the frame in `parts`, encapsulated, for the VTEP `to`.
    pub fn stage(&self, parts: &[&[u8]], to: TunnelDst, batch: &mut TxBatch) {
        let mut encap = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let addr = sockaddr(SocketAddrV4::new(to.vtep, 0));
        batch.stage_with(self.raw.as_raw_fd(), Some(addr), |bytes| {
            encap.encapsulate(to, parts, bytes)
        });
    }
}

/// A UDP socket bound to `local` in an `SO_REUSEPORT` group.
fn reuseport_socket(local: SocketAddrV4) -> io::Result<UdpSocket> {
    // SAFETY: socket has no memory preconditions.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a descriptor we just opened and own exclusively.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_REUSEPORT,
        &(1 as libc::c_int),
    )?;
    let addr = sockaddr(local);
    // SAFETY: addr is a live sockaddr_in of the length passed.
    cvt(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(UdpSocket::from(sock))
}
