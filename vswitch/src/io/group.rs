//! Unix group names, resolved through the C library (so /etc/group, NSS
//! modules and all) for the control socket's `control_group`.

use std::ffi::CString;
use std::io;

/// Grows the buffer getgrnam_r fills up to this; a group whose member
/// list needs more is refused rather than read without bound.
const MAX_BUF: usize = 1 << 20;

/// The id of group `name`; `None` when no such group exists.
pub fn gid(name: &str) -> io::Result<Option<libc::gid_t>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in group name"))?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: an all-zero `struct group` is valid (null pointers, gid 0).
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // Only gr_gid is read afterwards, which needs nothing from buf.
        // SAFETY: cname ends in NUL; grp, buf (its length passed) and found live through the call.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(grp.gr_gid)),
            libc::ERANGE if buf.len() < MAX_BUF => buf.resize(buf.len() * 2, 0),
            // glibc reports "not found" as these when a backend has no entry.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_zero_and_nonsense_is_absent() {
        assert_eq!(gid("root").unwrap(), Some(0));
        assert_eq!(gid("vswitch-no-such-group").unwrap(), None);
        assert!(gid("a\0b").is_err());
    }
}
