//! The control socket `/run/vswitch/<name>.sock` (mode 0600): the server side
//! served from the poll loop, and the client the CLI uses. One request line
//! per connection; the answer is `ok` or `error: ...` on the first line, then
//! the body, then the server closes.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::{self, MAX_REQUEST};
use crate::stats::IoStats;
use crate::switch::Switch;
use crate::time::Timestamp;

use super::lab::RUN_DIR;

/// How long a client may take to send its request. The datapath waits this
/// long at most for a slow client.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(100);

pub fn socket_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.sock"))
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the switch's socket. A stale file from a crashed run is
    /// replaced: the state file already proved no live switch owns it.
    pub fn bind(name: &str) -> io::Result<ControlServer> {
        let path = socket_path(name);
        let _ = fs::remove_file(&path);
        // Created 0600 rather than changed to it, so no one can connect in
        // between. The umask is the process's; setup runs on one thread.
        // SAFETY: umask has no preconditions and cannot fail.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(&path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = bound?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer { listener, path })
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Serves every pending connection.
    pub fn serve(&self, switch: &mut Switch, io: &IoStats, now: Timestamp) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = serve_one(stream, switch, io, now) {
                        tracing::debug!("control client: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn serve_one(
    stream: UnixStream,
    switch: &mut Switch,
    io: &IoStats,
    now: Timestamp,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT * 10))?;
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST as u64 + 1));
    let answer = match reader.read_line(&mut line) {
        Ok(_) if line.len() > MAX_REQUEST => Err("request too large".to_owned()),
        Ok(_) => control::respond(switch, io, now, &line),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err("request is not UTF-8".to_owned()),
        Err(e) => return Err(e),
    };
    let mut w = &stream;
    match answer {
        Ok(body) => {
            w.write_all(b"ok\n")?;
            w.write_all(body.as_bytes())
        }
        Err(msg) => w.write_all(format!("error: {msg}\n").as_bytes()),
    }
}

/// Sends `request` to the switch `name` (or the only one running) and
/// returns the body of its answer, or a sentence saying what went wrong.
pub fn request(name: Option<&str>, request: &str) -> Result<String, String> {
    let path = match name {
        Some(n) => socket_path(n),
        None => only_socket()?,
    };
    let mut s = UnixStream::connect(&path)
        .map_err(|e| format!("cannot reach the switch at {}: {e}", path.display()))?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    match answer.split_once('\n') {
        Some(("ok", body)) => Ok(body.to_owned()),
        Some((err, rest)) => {
            let first = err.strip_prefix("error: ").unwrap_or(err);
            // A config refused on reload is one error per line.
            Err(format!("{first}\n{rest}").trim_end().to_owned())
        }
        None => Err("the switch closed the connection without answering".into()),
    }
}

fn only_socket() -> Result<PathBuf, String> {
    let mut socks: Vec<PathBuf> = fs::read_dir(RUN_DIR)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    match socks.len() {
        0 => Err(format!("no running switch found in {RUN_DIR}")),
        1 => Ok(socks.remove(0)),
        _ => {
            let names: Vec<String> = socks
                .iter()
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            Err(format!(
                "several switches are running ({}): choose one with --name",
                names.join(", ")
            ))
        }
    }
}
