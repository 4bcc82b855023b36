//! systemd-style readiness: `READY=1` to `$NOTIFY_SOCKET` when it is set.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub fn ready() -> io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let path = path.to_string_lossy();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddr::from_pathname(path.as_ref())?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(b"READY=1", &addr)?;
    Ok(())
}
