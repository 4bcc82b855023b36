//! Thin wrappers over the system calls the I/O layer shares.

use std::io;
use std::os::fd::RawFd;

/// Turns a -1 return into the thread's errno.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

pub fn read_into(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes for the call's duration.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// Writes the slices as one frame (one writev), skipping empty ones.
pub fn writev_all(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    let mut n = 0;
    for p in parts.iter().filter(|p| !p.is_empty()).take(iov.len()) {
        iov[n] = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
        n += 1;
    }
    // SAFETY: the first n iovecs point at live slices borrowed for the call;
    // writev only reads through them.
    cvt_size(unsafe { libc::writev(fd, iov.as_ptr(), n as libc::c_int) })
}
