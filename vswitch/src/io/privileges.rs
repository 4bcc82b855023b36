//! Privilege separation for `vswitch run`. Setup needs root's full set
//! (namespaces, mounts, devices) and so does teardown (`ip netns del`
//! unmounts); forwarding frames on descriptors already open needs almost
//! nothing. So once the lab is built the process forks: the child runs the
//! datapath confined to CAP_NET_ADMIN and CAP_NET_RAW (bounding set
//! included, so not even an exec'd program gets more, and no new
//! privileges), while the parent, which runs no code that touches a frame,
//! answers the child's requests on a socket (the namespace commands of a
//! reload, see `netns_ops`), then tears the lab down. The child dies with
//! the parent (SIGKILL of `vswitch run` leaves nothing forwarding), and the
//! parent reports a child that panicked or was killed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};

use super::sys::cvt;

/// What the datapath keeps: create TAPs, bring links up and set socket
/// options (NET_ADMIN), and open packet and raw sockets (NET_RAW), as a
/// reload that adds ports does. Gone are the rest: namespaces and mounts
/// (SYS_ADMIN, asked of the parent instead), file access beyond the
/// owner's (DAC_OVERRIDE), ptrace, modules, raw I/O, setuid, kill, chown...
pub const DATAPATH_CAPS: [u32; 2] = [CAP_NET_ADMIN, CAP_NET_RAW];
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Leaves the calling process only `keep`: effective and permitted sets,
/// the bounding set, no inheritable or ambient capabilities, and no way to
/// gain more through exec (`PR_SET_NO_NEW_PRIVS`).
pub fn confine(keep: &[u32]) -> io::Result<()> {
    let last = last_cap();
    for cap in (0..=last).filter(|c| !keep.contains(c)) {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        // EINVAL: a capability this kernel does not know.
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // EINVAL before Linux 4.3, which has no ambient set to clear.
    // SAFETY: prctl with integer arguments only.
    let _ = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let mut data = [CapData::default(); 2];
    for &cap in keep {
        let word = &mut data[(cap / 32) as usize];
        word.effective |= 1 << (cap % 32);
        word.permitted |= 1 << (cap % 32);
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: header and data are capset's v3 structures, live for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) as libc::c_int
    })
    .map(drop)
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// How the confined datapath ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Runs `datapath` in a confined child process and waits for it.
/// `datapath` gets a function to call once it forwards, on which the parent
/// calls `on_ready` (so readiness is announced by the process that was
/// started), and a socket (SOCK_SEQPACKET) to the parent, which `serve`
/// answers until the child closes it. The child never returns from here:
/// it exits with the code `datapath` returns, or 101 if it panicked (the
/// panic hook has printed the message). Call it while the process has one
/// thread.
pub fn run_confined(
    datapath: impl FnOnce(&mut dyn FnMut(), UnixStream) -> i32,
    on_ready: impl FnOnce(),
    serve: impl FnOnce(&UnixStream),
) -> io::Result<Exit> {
    let (to_parent, from_child) = seqpacket_pair()?;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 just returned this open descriptor, owned here alone.
    let ready_rx = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, the pipe's other end.
    let ready_tx = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the caller guarantees a single thread: the child's copy is consistent.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid == 0 {
        drop(ready_rx);
        drop(from_child);
        let code = child(parent, File::from(ready_tx), to_parent, datapath);
        // The lab's teardown is the parent's, so none of its destructors run here.
        // SAFETY: _exit ends the child at once; nothing of it is used after.
        unsafe { libc::_exit(code) };
    }
    drop(ready_tx);
    drop(to_parent);
    let mut byte = [0u8; 1];
    if matches!(File::from(ready_rx).read(&mut byte), Ok(1)) {
        on_ready();
    }
    serve(&from_child);
    wait(pid)
}

fn child(
    parent: libc::pid_t,
    mut ready: File,
    to_parent: UnixStream,
    datapath: impl FnOnce(&mut dyn FnMut(), UnixStream) -> i32,
) -> i32 {
    // SAFETY: prctl with integer arguments only.
    let dies_with_parent = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // SAFETY: getppid has no preconditions.
    if dies_with_parent < 0 || unsafe { libc::getppid() } != parent {
        return 1;
    }
    if let Err(e) = confine(&DATAPATH_CAPS) {
        eprintln!("vswitch: cannot drop capabilities: {e}");
        return 1;
    }
    let mut signal = || {
        let _ = ready.write_all(b"r");
    };
    panic::catch_unwind(AssertUnwindSafe(|| datapath(&mut signal, to_parent))).unwrap_or(101)
}

/// A connected pair of AF_UNIX sockets that keep message boundaries.
pub(super) fn seqpacket_pair() -> io::Result<(UnixStream, UnixStream)> {
    let mut fds = [0 as libc::c_int; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: fds has room for the two descriptors socketpair writes.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) })?;
    // SAFETY: socketpair just returned these open descriptors, owned here alone.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((UnixStream::from(a), UnixStream::from(b)))
}

fn wait(pid: libc::pid_t) -> io::Result<Exit> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid int for waitpid to write.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(Exit::Signal(libc::WTERMSIG(status)))
    } else {
        Ok(Exit::Code(libc::WEXITSTATUS(status)))
    }
}

/// The capability sets of process `pid` as `/proc/PID/status` shows them:
/// (effective, permitted, bounding).
pub fn caps_of(pid: u32) -> io::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| io::Error::other(format!("no {name} in /proc/{pid}/status")))
    };
    Ok((field("CapEff:")?, field("CapPrm:")?, field("CapBnd:")?))
}
