//! The control socket `/run/vswitch/<name>.sock` (mode 0600, or 0660 for
//! `[switch] control_group`): the server side served from the poll loop,
//! and the client the CLI uses. One request line per connection; the
//! answer is `ok` or `error: ...` on the first line, then the body, then
//! the server closes. A capture request is the exception: after `ok` the
//! connection carries the pcap stream until either side closes it.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, SwitchConfig};
use crate::control::{self, MAX_REQUEST};
use crate::live_capture::LiveCaptures;
use crate::stats::IoStats;
use crate::switch::Switch;
use crate::time::Timestamp;

use super::lab::{Lab, RUN_DIR};

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
    /// Binds the socket `[switch]` names: 0600, or 0660 owned by its
    /// `control_group`. A stale file from a crashed run is replaced: the
    /// state file already proved no live switch owns it.
    pub fn bind(switch: &SwitchConfig) -> io::Result<ControlServer> {
        let group = switch.control_group.as_ref();
        let path = socket_path(&switch.name);
        let _ = fs::remove_file(&path);
        // Created 0600 rather than changed to it, so no one can connect in
        // between. The umask is the process's; setup runs on one thread.
        // SAFETY: umask has no preconditions and cannot fail.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(&path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = bound?;
        let server = ControlServer { listener, path };
        let mode = match group {
            // The group first, then its bits: never open to the wrong group.
            Some(g) => {
                std::os::unix::fs::chown(&server.path, None, Some(g.gid))?;
                0o660
            }
            None => 0o600,
        };
        fs::set_permissions(&server.path, fs::Permissions::from_mode(mode))?;
        server.listener.set_nonblocking(true)?;
        Ok(server)
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Serves every pending connection; a capture request's connection
    /// joins `captures`. True when a reload changed the devices.
    pub fn serve(&self, ctx: &mut Served<'_>) -> bool {
        let mut changed = false;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => match serve_one(stream, ctx) {
                    Ok(c) => changed |= c,
                    Err(e) => tracing::debug!("control client: {e}"),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return changed,
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What the control socket reaches of the running switch.
pub struct Served<'a> {
    pub switch: &'a mut Switch,
    pub lab: &'a mut Lab,
    pub captures: &'a mut LiveCaptures<UnixStream>,
    pub io: &'a IoStats,
    pub now: Timestamp,
}

/// A reload with devices: the switch works the new config out, the lab
/// brings the devices in line, then the switch takes the new config and
/// the captures follow their ports.
fn reload(ctx: &mut Served<'_>, path: &Path) -> Result<String, String> {
    let cfg = config::load(path).map_err(|e| e.to_string())?;
    let plan = ctx.switch.prepare_reload(&cfg).map_err(|e| e.to_string())?;
    ctx.lab
        .reload(plan.config())
        .map_err(|e| format!("reload refused, the switch runs on unchanged: {e}"))?;
    let names: Vec<String> = ctx.switch.ports().iter().map(|p| p.name.clone()).collect();
    let done = ctx.switch.commit_reload(plan);
    let switch = &*ctx.switch;
    ctx.captures
        .remap(|old| switch.port_id(names.get(old.index())?));
    Ok(control::reloaded(path, &done))
}

/// Answers one connection; true when it changed the devices.
fn serve_one(stream: UnixStream, ctx: &mut Served<'_>) -> io::Result<bool> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT * 10))?;
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST as u64 + 1));
    let answer = match reader.read_line(&mut line) {
        Ok(_) if line.len() > MAX_REQUEST => Err("request too large".to_owned()),
        Ok(_) => {
            if let Some(path) = control::reload_path(&line) {
                let answer = reload(ctx, path);
                let changed = answer.is_ok();
                write_answer(&stream, answer)?;
                return Ok(changed);
            }
            match control::capture(ctx.switch, &line) {
                Some(Ok(spec)) => {
                    (&stream).write_all(b"ok\n")?;
                    stream.set_nonblocking(true)?;
                    let port = ctx.switch.port(spec.port).map_or("?", |p| p.name.as_str());
                    tracing::info!("capture on port {port} started");
                    ctx.captures.add(spec, stream);
                    return Ok(false);
                }
                Some(Err(e)) => Err(e),
                None => control::respond(ctx.switch, ctx.io, ctx.now, &line),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err("request is not UTF-8".to_owned()),
        Err(e) => return Err(e),
    };
    write_answer(&stream, answer).map(|()| false)
}

fn write_answer(mut w: &UnixStream, answer: Result<String, String>) -> io::Result<()> {
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
    let mut s = send(name, request)?;
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

/// Sends a capture request; after the switch's `ok`, the returned stream
/// carries the pcap stream.
pub fn capture(name: Option<&str>, request: &str) -> Result<UnixStream, String> {
    let s = send(name, request)?;
    // Byte by byte up to the newline, so no pcap byte is read ahead.
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match (&s).read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => first.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
    match String::from_utf8_lossy(&first).as_ref() {
        "ok" => Ok(s),
        "" => Err("the switch closed the connection without answering".into()),
        other => {
            let mut rest = String::new();
            let _ = (&s).read_to_string(&mut rest);
            let first = other.strip_prefix("error: ").unwrap_or(other);
            Err(format!("{first}\n{rest}").trim_end().to_owned())
        }
    }
}

fn send(name: Option<&str>, request: &str) -> Result<UnixStream, String> {
    let path = match name {
        Some(n) => socket_path(n),
        None => only_socket()?,
    };
    let mut s = UnixStream::connect(&path)
        .map_err(|e| format!("cannot reach the switch at {}: {e}", path.display()))?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    Ok(s)
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
