//! Entering a named network namespace (one `ip netns add` made) from a
//! thread, so sockets that thread opens live in that namespace.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Moves the calling thread into network namespace `name`. Other threads
/// are unaffected; sockets this thread opens afterwards belong to `name`.
pub fn enter(name: &str) -> io::Result<()> {
    let f = File::open(Path::new("/run/netns").join(name))?;
    // SAFETY: f is an open namespace descriptor for the call's duration.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
