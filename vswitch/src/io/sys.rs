//! Thin wrappers over the system calls the I/O layer shares.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use packet::vnet::VnetHdr;

/// Turns a -1 return into the thread's errno.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sets a socket option whose value is a plain `T`.
pub fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: val points at a T of the size passed, live for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Reads one frame scattered over `bufs` (one readv): a virtio-net header
/// into the first, the frame into the second.
pub fn readv_into<const N: usize>(fd: RawFd, bufs: &mut [&mut [u8]; N]) -> io::Result<usize> {
    let iov = bufs.each_mut().map(|b| libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    });
    // Each iovec points at an exclusively borrowed slice of its length.
    // SAFETY: those slices live for the call's duration.
    cvt_size(unsafe { libc::readv(fd, iov.as_ptr(), N as libc::c_int) })
}

/// Writes the slices as one frame (one writev), skipping empty ones, after
/// the virtio-net header `hdr` when the descriptor takes one.
pub fn writev_all(fd: RawFd, hdr: Option<&VnetHdr>, parts: &[&[u8]]) -> io::Result<usize> {
    let head = hdr.map(VnetHdr::to_bytes);
    let head: &[u8] = head.as_ref().map_or(&[], |h| &h[..]);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 5];
    let mut n = 0;
    let all = std::iter::once(&head).chain(parts);
    for p in all.filter(|p| !p.is_empty()).take(iov.len()) {
        iov[n] = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
        n += 1;
    }
    // writev only reads through the iovecs.
    // SAFETY: the first n iovecs point at live slices borrowed for the call.
    cvt_size(unsafe { libc::writev(fd, iov.as_ptr(), n as libc::c_int) })
}

/// `a` as the socket calls take it.
pub fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}
