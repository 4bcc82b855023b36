//! SIGINT and SIGTERM as a readable descriptor the poll loop can wait on.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

pub struct StopSignal {
    rx: UnixStream,
}

impl StopSignal {
    pub fn install() -> io::Result<StopSignal> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        Ok(StopSignal { rx })
    }

    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Whether a stop signal came, for loops that do not poll the fd.
    pub fn raised(&self) -> bool {
        let mut b = [0u8; 16];
        matches!((&self.rx).read(&mut b), Ok(n) if n > 0)
    }
}
