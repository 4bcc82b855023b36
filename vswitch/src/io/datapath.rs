//! The poll loop: waits on every port's descriptor, drains each ready one in
//! batches through `Switch::process`, and writes what the pipeline emits:
//! to a TAP at once, to a socket (AF_PACKET, vxlan) at the end of the
//! burst, with the socket's other frames (`batch`). It holds no policy;
//! every decision is the pipeline's.
//!
//! Offloads: a frame comes in with its virtio-net header (TSO super-frame,
//! partial checksum, or none), which the pipeline does not see; a forwarded
//! frame leaves with the same header, its checksum offset moved by the
//! 802.1Q edit, and frames the switch built leave with none. A port without
//! headers gets offloaded frames finished here: checksum completed, super-
//! frames segmented.
//!
//! A vxlan port's datagrams are unwrapped by `Switch::decapsulate` before
//! the pipeline sees the inner frame; frames for it leave encapsulated to
//! the VTEP the pipeline named, segmented and checksummed first.

use std::io;
use std::net::SocketAddrV4;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use packet::vnet::{self, VnetHdr};

use crate::live_capture::LiveCaptures;
use crate::output::{Output, Payload};
use crate::port::PortId;
use crate::stats::IoStats;
use crate::switch::{RxInfo, Switch};
use crate::time::Timestamp;
use crate::vxlan::TunnelDst;

use super::afpacket::{PacketSocket, HEADROOM};
use super::batch::{Counts, TxBatch, MAX_STAGED_LEN};
use super::control::{ControlServer, Served};
use super::lab::{Device, Lab};
use super::metrics::MetricsServer;
use super::sys::cvt;

/// Frames taken from one descriptor before the others get a turn.
const BUDGET: usize = 64;
/// Large enough for a 64 KB GSO frame plus headroom.
const BUF_LEN: usize = 65536 + 256;
/// How often time-driven housekeeping (FDB aging) runs.
const TICK: Duration = Duration::from_secs(1);
/// Poll tokens: devices count up from 0, captures from `CAPTURES`.
const STOP: Token = Token(usize::MAX - 1);
const CONTROL: Token = Token(usize::MAX - 2);
const METRICS: Token = Token(usize::MAX - 3);
const BELL: Token = Token(usize::MAX - 4);
const CAPTURES: usize = usize::MAX / 2;

/// Wall-clock time for capture records, which tcpdump shows as dates.
fn wall_clock() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(since.as_nanos() as u64)
}

/// One received frame: where it is in the buffer, its offloads, and for a
/// vxlan port the sender of the datagram it is (still wrapped).
struct Received {
    range: Range<usize>,
    hdr: VnetHdr,
    from: Option<SocketAddrV4>,
}

impl Device {
    /// The descriptor thread `q` reads: its TAP queue, AF_PACKET socket or
    /// vxlan UDP socket.
    fn fd(&self, q: usize) -> Option<RawFd> {
        match self {
            Device::Tap(t) => t.queue_fd(q),
            Device::Packet(p) => p.get(q).map(AsRawFd::as_raw_fd),
            Device::Vxlan(v) => v.fd(q),
        }
    }

    fn recv(&self, q: usize, buf: &mut [u8]) -> io::Result<Received> {
        let frame = |(range, hdr)| Received {
            range,
            hdr,
            from: None,
        };
        match self {
            Device::Tap(t) => t
                .recv(q, &mut buf[HEADROOM..])
                .map(|(n, hdr)| frame((HEADROOM..HEADROOM + n, hdr))),
            Device::Packet(p) => packet_socket(p, q)?.recv(buf).map(frame),
            Device::Vxlan(v) => v.recv(q, buf).map(|(n, from)| Received {
                range: 0..n,
                hdr: VnetHdr::NONE,
                from: Some(from),
            }),
        }
    }

    /// Whether the device takes offloaded frames as they are.
    fn vnet(&self) -> bool {
        match self {
            Device::Tap(t) => t.vnet(),
            Device::Packet(p) => p.first().is_some_and(PacketSocket::vnet),
            Device::Vxlan(_) => false,
        }
    }

    /// Sends one frame through thread `q`'s queue or socket. Frames for a
    /// socket are staged in `batch` (a vxlan port's encapsulated for the
    /// VTEP `to`), but for large ones, which go at once after the staged.
    fn send(
        &self,
        q: usize,
        hdr: &VnetHdr,
        parts: &[&[u8]],
        to: Option<TunnelDst>,
        batch: &mut TxBatch,
    ) -> io::Result<()> {
        match self {
            Device::Tap(t) => t.send(q, hdr, parts).map(drop),
            Device::Packet(p) => {
                let socket = packet_socket(p, q)?;
                let len: usize = parts.iter().map(|p| p.len()).sum();
                if len > MAX_STAGED_LEN {
                    batch.flush();
                    return socket.send(hdr, parts).map(drop);
                }
                let head = hdr.to_bytes();
                let head: &[u8] = if socket.vnet() { &head } else { &[] };
                batch.stage(socket.as_raw_fd(), None, head, parts);
                Ok(())
            }
            Device::Vxlan(v) => match to {
                Some(to) => {
                    v.stage(parts, to, batch);
                    Ok(())
                }
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a frame for a vxlan port without a VTEP",
                )),
            },
        }
    }
}

/// Thread `q`'s socket of an AF_PACKET port.
fn packet_socket(sockets: &[PacketSocket], q: usize) -> io::Result<&PacketSocket> {
    sockets.get(q).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("an AF_PACKET port without a socket for thread {q}"),
        )
    })
}

/// Buffers for finishing offloaded frames in software, reused across frames.
struct Finisher {
    frame: Vec<u8>,
    segment: Vec<u8>,
}

impl Finisher {
    fn new() -> Finisher {
        Finisher {
            frame: Vec::with_capacity(BUF_LEN),
            segment: vec![0u8; BUF_LEN],
        }
    }

    /// Sends a frame with offloads to a device that takes none: a super-frame
    /// as segments, else with its checksum completed.
    fn send(
        &mut self,
        dev: &Device,
        q: usize,
        hdr: &VnetHdr,
        parts: &[&[u8]],
        to: Option<TunnelDst>,
        batch: &mut TxBatch,
    ) -> io::Result<()> {
        self.frame.clear();
        for p in parts {
            self.frame.extend_from_slice(p);
        }
        let bad = |e: packet::Error| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        if hdr.is_gso() {
            let mut result = Ok(());
            vnet::segment(&self.frame, hdr, &mut self.segment, |seg| {
                if result.is_ok() {
                    result = dev.send(q, &VnetHdr::NONE, &[seg], to, batch);
                }
            })
            .map_err(bad)?;
            return result;
        }
        vnet::complete_checksum(&mut self.frame, hdr).map_err(bad)?;
        dev.send(q, &VnetHdr::NONE, &[&self.frame], to, batch)
    }
}

/// Forwards until `stop` (a descriptor that becomes readable on a stop
/// signal) fires. With `threads = N`, thread q reads queue q of every TAP
/// and socket q of every AF_PACKET and vxlan port; thread 0 (this one)
/// also answers control requests and metrics scrapes between batches.
pub fn run(
    switch: &mut Switch,
    lab: &mut Lab,
    control: &ControlServer,
    metrics: Option<&MetricsServer>,
    stop: RawFd,
) -> io::Result<IoStats> {
    let threads = switch.config().switch.threads.max(1);
    let busy_poll = Duration::from_micros(switch.config().switch.busy_poll_us.into());
    let cpus = datapath_cpus(&switch.config().switch.cpus, allowed_cpus())?;
    let shared = Shared {
        lab: RwLock::new(lab),
        core: Mutex::new(Core {
            switch,
            captures: LiveCaptures::default(),
        }),
        generation: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        bell: Bell::new()?,
        io: IoCounters::new(threads),
        origin: Instant::now(),
        busy_poll,
    };
    if !cpus.is_empty() && threads > cpus.len() {
        tracing::warn!(
            "threads = {threads} on {} CPU(s): datapath threads share CPUs",
            cpus.len()
        );
    }
    let result = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut result = Ok(());
        for q in 1..threads {
            let (shared, cpu) = (&shared, cpus.get(q % cpus.len().max(1)).copied());
            let spawned = std::thread::Builder::new()
                .name(format!("datapath-{q}"))
                .spawn_scoped(scope, move || {
                    let _failed = OnPanic(shared);
                    pin(cpu);
                    let r = follow(shared, q, stop);
                    if r.is_err() {
                        shared.fail();
                    }
                    r
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        {
            // The others stop when this thread leaves, even by a panic:
            // the scope waits for them before it lets the panic through.
            let _stop = StopOnDrop(&shared);
            if result.is_ok() {
                pin(cpus.first().copied());
                result = lead(&shared, control, metrics, stop);
            }
        }
        for (q, h) in handles.into_iter().enumerate() {
            let r = h.join().unwrap_or_else(|_| {
                Err(io::Error::other(format!(
                    "datapath thread {} panicked",
                    q + 1
                )))
            });
            result = result.and(r);
        }
        result
    });
    result.map(|()| shared.io.snapshot())
}

/// What the datapath threads share. Locks are taken `lab` first, then `core`.
struct Shared<'a> {
    /// The devices: read while forwarding, written when a control request
    /// adds or removes ports.
    lab: RwLock<&'a mut Lab>,
    core: Mutex<Core<'a>>,
    /// Bumped when the devices change: each thread then registers anew.
    generation: AtomicU64,
    /// Every thread returns once this is set.
    stop: AtomicBool,
    /// A thread failed: thread 0 stops the datapath with an error.
    failed: AtomicBool,
    /// Wakes every thread's poll, to see `stop`, `failed` or a new generation.
    bell: Bell,
    io: IoCounters,
    origin: Instant,
    busy_poll: Duration,
}

/// The pipeline, and the captures that must see its frames in its order.
struct Core<'a> {
    switch: &'a mut Switch,
    captures: LiveCaptures<UnixStream>,
}

impl<'a> Shared<'a> {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }

    /// Stops the datapath with an error, from a thread other than 0.
    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
        self.bell.ring();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    // A thread that panicked holding a lock has set `failed`, and the
    // datapath is stopping: the others may go on with what it left.
    fn read_lab(&self) -> RwLockReadGuard<'_, &'a mut Lab> {
        self.lab.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lab(&self) -> RwLockWriteGuard<'_, &'a mut Lab> {
        self.lab.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn core(&self) -> MutexGuard<'_, Core<'a>> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tells every thread to return.
struct StopOnDrop<'a, 'b>(&'a Shared<'b>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
        self.0.bell.ring();
    }
}

/// Marks the datapath failed if the thread unwinds.
struct OnPanic<'a, 'b>(&'a Shared<'b>);

impl Drop for OnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// Counters of the I/O layer, added to by every thread.
struct IoCounters {
    rx_errors: AtomicU64,
    tx_errors: AtomicU64,
    /// Frames each thread received.
    frames: Vec<AtomicU64>,
    tx_batches: AtomicU64,
    tx_batched: AtomicU64,
}

impl IoCounters {
    fn new(threads: usize) -> IoCounters {
        IoCounters {
            rx_errors: AtomicU64::new(0),
            tx_errors: AtomicU64::new(0),
            frames: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            tx_batches: AtomicU64::new(0),
            tx_batched: AtomicU64::new(0),
        }
    }

    fn add_batches(&self, c: Counts) {
        if c.calls > 0 {
            self.tx_batches.fetch_add(c.calls, Ordering::Relaxed);
            self.tx_batched.fetch_add(c.sent, Ordering::Relaxed);
            self.tx_errors.fetch_add(c.dropped, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> IoStats {
        IoStats {
            rx_errors: self.rx_errors.load(Ordering::Relaxed),
            tx_errors: self.tx_errors.load(Ordering::Relaxed),
            thread_frames: self
                .frames
                .iter()
                .map(|f| f.load(Ordering::Relaxed))
                .collect(),
            tx_batches: self.tx_batches.load(Ordering::Relaxed),
            tx_batched: self.tx_batched.load(Ordering::Relaxed),
        }
    }
}

/// An eventfd every thread's poll watches; never read, as each ring wakes
/// every edge-triggered watcher.
struct Bell(OwnedFd);

impl Bell {
    fn new() -> io::Result<Bell> {
        // SAFETY: eventfd has no memory preconditions.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fd is a descriptor we just opened and own exclusively.
        Ok(Bell(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: one is 8 readable bytes, live for the call.
        let _ = unsafe { libc::write(self.fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// The CPUs the datapath threads take in turn: those `[switch] cpus`
/// names, which the process must be allowed, else all it is allowed.
fn datapath_cpus(chosen: &[usize], allowed: Vec<usize>) -> io::Result<Vec<usize>> {
    if chosen.is_empty() {
        return Ok(allowed);
    }
    // An empty `allowed` is an affinity nobody could read: nothing to hold to.
    if let Some(c) = chosen
        .iter()
        .find(|c| !allowed.is_empty() && !allowed.contains(c))
    {
        let allowed: Vec<String> = allowed.iter().map(usize::to_string).collect();
        return Err(io::Error::other(format!(
            "[switch] cpus names CPU {c}, which this process may not run on (it may use {})",
            allowed.join(",")
        )));
    }
    Ok(chosen.to_vec())
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a cpu_set_t of the size passed.
    let got = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if got != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| {
            // SAFETY: c is below CPU_SETSIZE, within the set CPU_ISSET reads.
            unsafe { libc::CPU_ISSET(c, &set) }
        })
        .collect()
}

/// Pins the calling thread to `cpu`; a refusal leaves it to the scheduler.
fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // From sched_getaffinity, or a `cpus` entry the config held below 1024.
    // SAFETY: cpu is below CPU_SETSIZE, within the set CPU_SET writes.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        tracing::warn!(
            "cannot pin a datapath thread to CPU {cpu}: {}",
            io::Error::last_os_error()
        );
    }
}

/// Thread 0's loop: forwarding as every thread does, and the control
/// socket, metrics, live captures and housekeeping.
fn lead(
    shared: &Shared,
    control: &ControlServer,
    metrics: Option<&MetricsServer>,
    stop: RawFd,
) -> io::Result<()> {
    let listeners = [
        Some((stop, STOP)),
        Some((shared.bell.fd(), BELL)),
        Some((control.fd(), CONTROL)),
        metrics.map(|m| (m.fd(), METRICS)),
    ];
    let mut w = Worker::new(0)?;
    // Capture ids whose client the poll watches for a hangup.
    let mut watched: Vec<u64> = Vec::new();
    let mut last_tick = Instant::now();
    loop {
        {
            let lab = shared.read_lab();
            if w.generation != shared.generation() {
                w.register(shared, &lab.devices, &listeners)?;
                watched.clear();
            }
            w.drain(shared, &lab.devices);
        }
        {
            let mut core = shared.core();
            let core = &mut *core;
            if !core.captures.is_empty() {
                watch_new(&w.poll, &core.captures, &mut watched)?;
                core.captures.flush();
                for end in core.captures.take_ended() {
                    let _ = w
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&end.sink.as_raw_fd()));
                    watched.retain(|&id| id != end.id);
                    tracing::info!(
                        "capture on port {} ended: {} frame(s) written, {} dropped",
                        end.spec.port,
                        end.written,
                        end.dropped
                    );
                }
            }
            if last_tick.elapsed() >= TICK {
                core.switch.expire(shared.now());
                last_tick = Instant::now();
            }
        }
        w.wait()?;
        if shared.failed.load(Ordering::Relaxed) {
            return Err(io::Error::other("a datapath thread failed"));
        }
        let mut serve_control = false;
        for ev in w.events.iter() {
            match ev.token() {
                STOP => return Ok(()),
                BELL => {}
                CONTROL => serve_control = true,
                METRICS => {
                    if let Some(m) = metrics {
                        m.serve(shared.core().switch, &shared.io.snapshot());
                    }
                }
                Token(t) if t >= CAPTURES => shared.core().captures.close((t - CAPTURES) as u64),
                Token(i) => mark_ready(&mut w.ready, i),
            }
        }
        if serve_control {
            let mut lab = shared.write_lab();
            let mut core = shared.core();
            let Core { switch, captures } = &mut *core;
            let mut ctx = Served {
                switch,
                lab: &mut lab,
                captures,
                io: &shared.io.snapshot(),
                now: shared.now(),
            };
            if control.serve(&mut ctx) {
                // Devices were added, removed and renumbered: every thread
                // registers anew and drains every device once.
                shared.generation.fetch_add(1, Ordering::Release);
                shared.bell.ring();
            }
        }
    }
}

/// The loop of threads 1 and up: forwarding from queue `q` of every TAP.
fn follow(shared: &Shared, q: usize, stop: RawFd) -> io::Result<()> {
    let listeners = [Some((stop, STOP)), Some((shared.bell.fd(), BELL))];
    let mut w = Worker::new(q)?;
    loop {
        {
            let lab = shared.read_lab();
            if w.generation != shared.generation() {
                w.register(shared, &lab.devices, &listeners)?;
            }
            w.drain(shared, &lab.devices);
        }
        w.wait()?;
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        for ev in w.events.iter() {
            match ev.token() {
                STOP => return Ok(()),
                Token(i) if i < CAPTURES => mark_ready(&mut w.ready, i),
                _ => {}
            }
        }
    }
}

/// One datapath thread's poll and buffers.
struct Worker {
    /// The TAP queue this thread reads and writes.
    queue: usize,
    poll: Poll,
    events: Events,
    /// By device: not yet drained to WouldBlock.
    ready: Vec<bool>,
    /// The devices' generation `poll` watches.
    generation: u64,
    buf: Vec<u8>,
    out: Output,
    finisher: Finisher,
    batch: TxBatch,
    last_frame: Instant,
    /// How long to poll after the last frame: adapted to the gaps between
    /// frames, up to `busy_poll` (see `adapt`).
    window: Duration,
}

impl Worker {
    fn new(queue: usize) -> io::Result<Worker> {
        Ok(Worker {
            queue,
            poll: Poll::new()?,
            events: Events::with_capacity(256),
            ready: Vec::new(),
            generation: u64::MAX,
            buf: vec![0u8; BUF_LEN],
            out: Output::new(),
            finisher: Finisher::new(),
            batch: TxBatch::new(),
            last_frame: Instant::now(),
            window: Duration::ZERO,
        })
    }

    /// A fresh poll on this thread's descriptor of each device (token: the
    /// device's index) and on `listeners`; every device is drained once.
    fn register(
        &mut self,
        shared: &Shared,
        devices: &[Device],
        listeners: &[Option<(RawFd, Token)>],
    ) -> io::Result<()> {
        self.generation = shared.generation();
        let q = self.queue;
        let fds = devices.iter().enumerate();
        let fds = fds.filter_map(|(i, d)| Some((d.fd(q)?, Token(i))));
        self.poll = register(fds.chain(listeners.iter().flatten().copied()))?;
        self.ready = devices.iter().map(|d| d.fd(q).is_some()).collect();
        Ok(())
    }

    /// Polls: at once while a device is left undrained or within the busy
    /// poll window, else until an event or the tick.
    fn wait(&mut self) -> io::Result<()> {
        let busy = self.ready.iter().any(|&r| r);
        let timeout = poll_timeout(busy, self.window, &self.last_frame);
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        if !busy && self.events.is_empty() && timeout.is_zero() {
            // Busy polling with nothing to do: the endpoints on this core go first.
            std::thread::yield_now();
        }
        Ok(())
    }

    /// Takes up to `BUDGET` frames from each ready device through the
    /// pipeline and sends what it emits.
    fn drain(&mut self, shared: &Shared, devices: &[Device]) {
        let Worker {
            queue,
            ready,
            buf,
            out,
            finisher,
            batch,
            ..
        } = self;
        let q = *queue;
        let mut frames = 0u64;
        for (i, dev) in devices.iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                continue;
            }
            // Edge-triggered: a descriptor stays ready until it says WouldBlock.
            for _ in 0..BUDGET {
                let Received { range, hdr, from } = match dev.recv(q, buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready[i] = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // One bad frame, already consumed: the rest may be fine.
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        shared.io.rx_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("receive on port {i}: {e}");
                        continue;
                    }
                    Err(e) => {
                        shared.io.rx_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("receive on port {i}: {e}");
                        ready[i] = false;
                        break;
                    }
                };
                frames += 1;
                out.clear();
                let port = PortId(i as u16);
                let mut core = shared.core();
                let Core { switch, captures } = &mut *core;
                let (frame, rx) = match from {
                    Some(from) => match switch.decapsulate(port, from, &mut buf[range.clone()]) {
                        Ok(d) => {
                            let inner = range.start + d.inner.start..range.start + d.inner.end;
                            (&mut buf[inner], d.rx)
                        }
                        Err(_) => continue,
                    },
                    None => {
                        let rx = RxInfo {
                            partial_csum: hdr.needs_csum(),
                            gso_size: if hdr.is_gso() { hdr.gso_size } else { 0 },
                            vtep: None,
                        };
                        (&mut buf[range], rx)
                    }
                };
                if !captures.is_empty() {
                    captures.frame(wall_clock(), port, &[frame]);
                }
                switch.process_rx(shared.now(), port, frame, out, rx);
                if !captures.is_empty() {
                    capture_tx(captures, out, frame);
                }
                drop(core);
                let tx = Tx {
                    devices,
                    queue: q,
                    finisher,
                    batch,
                    io: &shared.io,
                };
                tx.transmit(out, frame, &hdr);
            }
            // A burst's frames for each socket leave together.
            batch.flush();
            shared.io.add_batches(batch.take_counts());
        }
        if frames > 0 {
            shared.io.frames[q].fetch_add(frames, Ordering::Relaxed);
            if !shared.busy_poll.is_zero() {
                let now = Instant::now();
                let gap = now.saturating_duration_since(self.last_frame);
                self.window = adapt(self.window, shared.busy_poll, gap);
                self.last_frame = now;
            }
        }
    }
}

/// Notes that device `i` has frames (its index may be from before the
/// devices changed; the next generation drains them all anyway).
fn mark_ready(ready: &mut [bool], i: usize) {
    if let Some(r) = ready.get_mut(i) {
        *r = true;
    }
}

/// How long the next poll may sleep: not at all while a descriptor is left
/// undrained, or within `busy_poll` of the last frame. Polling instead of
/// sleeping keeps the core awake, so the next frame is not delayed by the
/// wakeup of an idle core (tens of microseconds in a virtual machine).
fn poll_timeout(busy: bool, busy_poll: Duration, last_frame: &Instant) -> Duration {
    if busy || (!busy_poll.is_zero() && last_frame.elapsed() < busy_poll) {
        Duration::ZERO
    } else {
        TICK
    }
}

/// The busy-poll window after frames that came `gap` after the last ones:
/// long enough to have caught them when a window of at most `cap` could
/// (twice the gap, to catch the next one too), else half as long, so that
/// traffic too sparse to catch soon stops costing polls that catch nothing.
fn adapt(window: Duration, cap: Duration, gap: Duration) -> Duration {
    match gap <= cap {
        true => window.max(gap.saturating_mul(2).min(cap)),
        false => window / 2,
    }
}

/// Offers the frames `out` emits to the captures of their ports.
fn capture_tx(captures: &mut LiveCaptures<UnixStream>, out: &Output, frame: &[u8]) {
    let mut tag = [0u8; 4];
    for e in out.emits() {
        captures.frame(wall_clock(), e.port, &out.parts(e, frame, &mut tag));
    }
}

/// Where emitted frames go: the devices, through this thread's queue.
struct Tx<'a> {
    devices: &'a [Device],
    queue: usize,
    finisher: &'a mut Finisher,
    batch: &'a mut TxBatch,
    io: &'a IoCounters,
}

impl Tx<'_> {
    fn transmit(self, out: &Output, frame: &[u8], ingress_hdr: &VnetHdr) {
        let mut tag = [0u8; 4];
        let q = self.queue;
        for e in out.emits() {
            let Some(dev) = self.devices.get(e.port.index()) else {
                continue;
            };
            let parts = out.parts(e, frame, &mut tag);
            let hdr = match e.payload {
                // Only a pushed or popped tag moves the L3 header and what follows.
                Payload::Ingress => {
                    let len: usize = parts.iter().map(|p| p.len()).sum();
                    ingress_hdr.shifted(len as i32 - frame.len() as i32)
                }
                Payload::Built(_) => Some(VnetHdr::NONE),
            };
            let sent = match hdr {
                Some(hdr) if dev.vnet() || !hdr.offloads() => {
                    dev.send(q, &hdr, &parts, e.tunnel, self.batch)
                }
                Some(hdr) => self
                    .finisher
                    .send(dev, q, &hdr, &parts, e.tunnel, self.batch),
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "checksum offset out of range",
                )),
            };
            if let Err(err) = sent {
                // A full queue or a downed peer interface drops the frame, like a NIC would.
                self.io.tx_errors.fetch_add(1, Ordering::Relaxed);
                tracing::trace!("send on port {}: {err}", e.port);
            }
        }
    }
}

/// A poll on each (descriptor, token).
fn register(fds: impl Iterator<Item = (RawFd, Token)>) -> io::Result<Poll> {
    let poll = Poll::new()?;
    for (fd, token) in fds {
        poll.registry()
            .register(&mut SourceFd(&fd), token, Interest::READABLE)?;
    }
    Ok(poll)
}

/// Watches the clients of new captures for a hangup (readable: EOF).
fn watch_new(
    poll: &Poll,
    captures: &LiveCaptures<UnixStream>,
    watched: &mut Vec<u64>,
) -> io::Result<()> {
    for (id, sink) in captures.sinks() {
        if !watched.contains(&id) {
            let token = Token(CAPTURES + id as usize);
            poll.registry().register(
                &mut SourceFd(&sink.as_raw_fd()),
                token,
                Interest::READABLE,
            )?;
            watched.push(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_sleeps_only_when_drained_and_past_the_busy_poll_time() {
        let now = Instant::now();
        let long_ago = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        let busy_poll = Duration::from_secs(1);
        assert_eq!(poll_timeout(false, Duration::ZERO, &now), TICK);
        assert_eq!(
            poll_timeout(true, Duration::ZERO, &long_ago),
            Duration::ZERO
        );
        assert_eq!(poll_timeout(false, busy_poll, &now), Duration::ZERO);
        assert_eq!(poll_timeout(false, busy_poll, &long_ago), TICK);
    }

    #[test]
    fn datapath_cpus_are_the_chosen_ones_if_allowed() {
        assert_eq!(datapath_cpus(&[], vec![0, 1]).ok(), Some(vec![0, 1]));
        assert_eq!(datapath_cpus(&[1], vec![0, 1]).ok(), Some(vec![1]));
        assert_eq!(datapath_cpus(&[3], vec![]).ok(), Some(vec![3]));
        let refused = datapath_cpus(&[1, 5], vec![0, 1]).map_err(|e| e.to_string());
        assert_eq!(
            refused,
            Err(
                "[switch] cpus names CPU 5, which this process may not run on (it may use 0,1)"
                    .into()
            )
        );
    }

    #[test]
    fn the_busy_poll_window_follows_the_gaps_it_could_catch() {
        let ms = Duration::from_millis;
        let cap = ms(10);
        // Frames 2 ms apart: a 4 ms window catches the next.
        assert_eq!(adapt(Duration::ZERO, cap, ms(2)), ms(4));
        // 6 ms: as long as the cap allows.
        assert_eq!(adapt(ms(4), cap, ms(6)), cap);
        // Caught within the window: it stays.
        assert_eq!(adapt(cap, cap, ms(1)), cap);
        // Gaps no window up to the cap could catch halve it, down to nothing.
        let mut w = cap;
        for _ in 0..40 {
            w = adapt(w, cap, ms(50));
        }
        assert_eq!(w, Duration::ZERO);
        // And it comes back once frames come close together again.
        assert_eq!(adapt(w, cap, ms(3)), ms(6));
    }
}
