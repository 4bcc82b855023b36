//! The poll loop: waits on every port's descriptor, drains each ready one in
//! batches through `Switch::process`, and writes what the pipeline emits. It
//! holds no policy; every decision is the pipeline's.
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
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
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

use super::afpacket::HEADROOM;
use super::control::{ControlServer, Served};
use super::lab::{Device, Lab};
use super::metrics::MetricsServer;

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
    fn fd(&self) -> RawFd {
        match self {
            Device::Tap(t) => t.as_raw_fd(),
            Device::Packet(p) => p.as_raw_fd(),
            Device::Vxlan(v) => v.fd(),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let frame = |(range, hdr)| Received {
            range,
            hdr,
            from: None,
        };
        match self {
            Device::Tap(t) => t
                .recv(&mut buf[HEADROOM..])
                .map(|(n, hdr)| frame((HEADROOM..HEADROOM + n, hdr))),
            Device::Packet(p) => p.recv(buf).map(frame),
            Device::Vxlan(v) => v.recv(buf).map(|(n, from)| Received {
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
            Device::Packet(p) => p.vnet(),
            Device::Vxlan(_) => false,
        }
    }

    /// Sends one frame; a vxlan port's goes to the VTEP `to`.
    fn send(&self, hdr: &VnetHdr, parts: &[&[u8]], to: Option<TunnelDst>) -> io::Result<usize> {
        match self {
            Device::Tap(t) => t.send(hdr, parts),
            Device::Packet(p) => p.send(hdr, parts),
            Device::Vxlan(v) => match to {
                Some(to) => v.send(parts, to),
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a frame for a vxlan port without a VTEP",
                )),
            },
        }
    }
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
        hdr: &VnetHdr,
        parts: &[&[u8]],
        to: Option<TunnelDst>,
    ) -> io::Result<()> {
        self.frame.clear();
        for p in parts {
            self.frame.extend_from_slice(p);
        }
        let bad = |e: packet::Error| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        if hdr.is_gso() {
            let mut result = Ok(0);
            vnet::segment(&self.frame, hdr, &mut self.segment, |seg| {
                if result.is_ok() {
                    result = dev.send(&VnetHdr::NONE, &[seg], to);
                }
            })
            .map_err(bad)?;
            return result.map(drop);
        }
        vnet::complete_checksum(&mut self.frame, hdr).map_err(bad)?;
        dev.send(&VnetHdr::NONE, &[&self.frame], to).map(drop)
    }
}

/// Forwards until `stop` (a descriptor that becomes readable on a stop
/// signal) fires, answering control requests and metrics scrapes between
/// batches.
pub fn run(
    switch: &mut Switch,
    lab: &mut Lab,
    control: &ControlServer,
    metrics: Option<&MetricsServer>,
    stop: RawFd,
) -> io::Result<IoStats> {
    let listeners = [
        Some((stop, STOP)),
        Some((control.fd(), CONTROL)),
        metrics.map(|m| (m.fd(), METRICS)),
    ];
    let mut poll = register(&lab.devices, &listeners)?;

    let origin = Instant::now();
    let now = || Timestamp::from_nanos(origin.elapsed().as_nanos() as u64);
    let mut events = Events::with_capacity(256);
    let mut ready = vec![false; lab.devices.len()];
    let mut buf = vec![0u8; BUF_LEN];
    let mut out = Output::new();
    let mut finisher = Finisher::new();
    let mut stats = IoStats::default();
    let mut last_tick = Instant::now();
    let mut captures: LiveCaptures<UnixStream> = LiveCaptures::default();
    // Capture ids whose client the poll watches for a hangup.
    let mut watched: Vec<u64> = Vec::new();
    let busy_poll = Duration::from_micros(switch.config().switch.busy_poll_us.into());
    let mut last_frame = Instant::now();

    loop {
        let busy = ready.iter().any(|&r| r);
        let timeout = poll_timeout(busy, busy_poll, &last_frame);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if !busy && events.is_empty() && timeout.is_zero() {
            // Busy polling with nothing to do: the endpoints on this core go first.
            std::thread::yield_now();
        }
        for ev in events.iter() {
            match ev.token() {
                STOP => return Ok(stats),
                CONTROL => {
                    let mut ctx = Served {
                        switch,
                        lab,
                        captures: &mut captures,
                        io: &stats,
                        now: now(),
                    };
                    let changed = control.serve(&mut ctx);
                    if changed {
                        // Devices were added, removed and renumbered: a
                        // fresh poll, and every device drained once.
                        poll = register(&lab.devices, &listeners)?;
                        ready = vec![true; lab.devices.len()];
                        watched.clear();
                    }
                    watch_new(&poll, &captures, &mut watched)?;
                    if changed {
                        // The events left name the old devices.
                        break;
                    }
                }
                METRICS => {
                    if let Some(m) = metrics {
                        m.serve(switch, &stats);
                    }
                }
                Token(t) if t >= CAPTURES => captures.close((t - CAPTURES) as u64),
                Token(i) => {
                    if let Some(r) = ready.get_mut(i) {
                        *r = true;
                    }
                }
            }
        }
        let devices = &lab.devices;
        let mut received = false;
        for (i, dev) in devices.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            // Edge-triggered: a descriptor stays ready until it says WouldBlock.
            for _ in 0..BUDGET {
                let Received { range, hdr, from } = match dev.recv(&mut buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready[i] = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // One bad frame, already consumed: the rest may be fine.
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        stats.rx_errors += 1;
                        tracing::debug!("receive on port {i}: {e}");
                        continue;
                    }
                    Err(e) => {
                        stats.rx_errors += 1;
                        tracing::debug!("receive on port {i}: {e}");
                        ready[i] = false;
                        break;
                    }
                };
                received = true;
                out.clear();
                let port = PortId(i as u16);
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
                switch.process_rx(now(), port, frame, &mut out, rx);
                let tx = Tx {
                    devices,
                    finisher: &mut finisher,
                    stats: &mut stats,
                    captures: &mut captures,
                };
                tx.transmit(&out, frame, &hdr);
            }
        }
        if received && !busy_poll.is_zero() {
            last_frame = Instant::now();
        }
        if !captures.is_empty() {
            captures.flush();
            for end in captures.take_ended() {
                let _ = poll
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
            switch.expire(now());
            last_tick = Instant::now();
        }
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

/// Where emitted frames go: the devices, and the captures of their ports.
struct Tx<'a> {
    devices: &'a [Device],
    finisher: &'a mut Finisher,
    stats: &'a mut IoStats,
    captures: &'a mut LiveCaptures<UnixStream>,
}

impl Tx<'_> {
    fn transmit(self, out: &Output, frame: &[u8], ingress_hdr: &VnetHdr) {
        let mut tag = [0u8; 4];
        for e in out.emits() {
            let Some(dev) = self.devices.get(e.port.index()) else {
                continue;
            };
            let parts = out.parts(e, frame, &mut tag);
            if !self.captures.is_empty() {
                self.captures.frame(wall_clock(), e.port, &parts);
            }
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
                    dev.send(&hdr, &parts, e.tunnel).map(drop)
                }
                Some(hdr) => self.finisher.send(dev, &hdr, &parts, e.tunnel),
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "checksum offset out of range",
                )),
            };
            if let Err(err) = sent {
                // A full queue or a downed peer interface drops the frame, like a NIC would.
                self.stats.tx_errors += 1;
                tracing::trace!("send on port {}: {err}", e.port);
            }
        }
    }
}

/// A poll on every device (token: its index) and on `listeners`.
fn register(devices: &[Device], listeners: &[Option<(RawFd, Token)>]) -> io::Result<Poll> {
    let poll = Poll::new()?;
    let devices = devices.iter().enumerate().map(|(i, d)| (d.fd(), Token(i)));
    for (fd, token) in devices.chain(listeners.iter().flatten().copied()) {
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
}
