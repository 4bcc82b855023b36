//! The lab's namespace operations: `ip netns add|del NAME` and
//! `ip -n NAME link|addr|route ...`. Linux ties them to CAP_SYS_ADMIN (the
//! mount behind `netns add`, the setns behind `-n`), which the confined
//! datapath does not keep; so there the lab asks the parent, which kept
//! root's capabilities (see `privileges`), over a socketpair. The parent
//! runs only these commands for it, nothing the child names otherwise.
//!
//! One request per message: the `ip` arguments, NUL-separated; one answer
//! per request: `ok`, or the error.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

/// Longest request or answer: a few dozen short words.
const MAX_MESSAGE: usize = 4096;

/// Where the lab's namespace commands run.
#[derive(Debug, Default)]
pub enum NetnsOps {
    /// In this process, which has the capabilities.
    #[default]
    Here,
    /// In the parent at the other end of this socket.
    Parent(UnixStream),
}

impl NetnsOps {
    /// Runs `ip ARGS` (a namespace command) here or in the parent; the
    /// error is the message to show.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        match self {
            NetnsOps::Here => ip(args),
            NetnsOps::Parent(conn) => ask(conn, args),
        }
    }
}

fn ask(mut conn: &UnixStream, args: &[&str]) -> Result<(), String> {
    let request = args.join("\0");
    let lost = |e: io::Error| format!("cannot ask for `ip {}`: {e}", args.join(" "));
    conn.write_all(request.as_bytes()).map_err(lost)?;
    let mut answer = [0u8; MAX_MESSAGE];
    let n = loop {
        match conn.read(&mut answer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r.map_err(lost)?,
        }
    };
    match &answer[..n] {
        b"ok" => Ok(()),
        b"" => Err(lost(io::ErrorKind::UnexpectedEof.into())),
        e => Err(String::from_utf8_lossy(e).into_owned()),
    }
}

/// Answers the child's requests until it closes its end (it exited).
pub fn serve(mut conn: &UnixStream) {
    let mut request = [0u8; MAX_MESSAGE];
    loop {
        let n = match conn.read(&mut request) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let answer = match std::str::from_utf8(&request[..n]) {
            Ok(text) => {
                let args: Vec<&str> = text.split('\0').collect();
                allowed(&args).and_then(|()| ip(&args))
            }
            Err(_) => Err("a request that is not UTF-8".to_owned()),
        };
        let answer = answer.map_or_else(|e| e.into_bytes(), |()| b"ok".to_vec());
        if conn
            .write_all(&answer[..answer.len().min(MAX_MESSAGE)])
            .is_err()
        {
            return;
        }
    }
}

/// Whether `args` is one of the namespace commands the lab runs.
fn allowed(args: &[&str]) -> Result<(), String> {
    let name_ok = |ns: &str| !ns.is_empty() && ns != "." && ns != ".." && !ns.contains('/');
    let ok = match args {
        ["netns", "add" | "del", ns] => name_ok(ns),
        ["-n", ns, "link" | "addr" | "route", ..] => name_ok(ns),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` is not a namespace command",
            args.join(" ")
        ))
    }
}

/// Runs `ip ARGS`, turning a failure into a message with its stderr.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (is iproute2 installed?): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespace_commands_are_allowed() {
        assert!(allowed(&["netns", "add", "web"]).is_ok());
        assert!(allowed(&["netns", "del", "web"]).is_ok());
        assert!(allowed(&["-n", "web", "addr", "flush", "dev", "eth0"]).is_ok());
        assert!(allowed(&["-n", "web", "route", "add", "default", "dev", "eth0"]).is_ok());
        for bad in [
            &["netns", "exec", "web", "sh"][..],
            &["-n", "web", "netns", "exec", "x", "sh"],
            &["-n", "web", "-batch", "/tmp/x"],
            &["netns", "add", "../etc"],
            &["netns", "del", ""],
            &["-n", "..", "link"],
            &["link", "del", "eth0"],
            &["netns", "add", "a", "b"],
            &[],
        ] {
            assert!(allowed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_round_trip_and_refusals_come_back() {
        let (child, parent) = super::super::privileges::seqpacket_pair().expect("pair");
        let server = std::thread::spawn(move || serve(&parent));
        let ops = NetnsOps::Parent(child);
        let e = ops.ip(&["netns", "exec", "x", "true"]).unwrap_err();
        assert_eq!(e, "`ip netns exec x true` is not a namespace command");
        drop(ops);
        server.join().expect("server ends when the child closes");
    }
}
