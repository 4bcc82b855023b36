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
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use packet::vnet::{self, VnetHdr};

use crate::output::{Output, Payload};
use crate::port::PortId;
use crate::stats::IoStats;
use crate::switch::{RxInfo, Switch};
use crate::time::Timestamp;
use crate::vxlan::TunnelDst;

use super::afpacket::HEADROOM;
use super::control::ControlServer;
use super::lab::Device;
use super::metrics::MetricsServer;

/// Frames taken from one descriptor before the others get a turn.
const BUDGET: usize = 64;
/// Large enough for a 64 KB GSO frame plus headroom.
const BUF_LEN: usize = 65536 + 256;
/// How often time-driven housekeeping (FDB aging) runs.
const TICK: Duration = Duration::from_secs(1);

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
    devices: &[Device],
    control: &ControlServer,
    metrics: Option<&MetricsServer>,
    stop: RawFd,
) -> io::Result<IoStats> {
    let mut poll = Poll::new()?;
    let stop_token = Token(devices.len());
    let control_token = Token(devices.len() + 1);
    let metrics_token = Token(devices.len() + 2);
    for (i, d) in devices.iter().enumerate() {
        poll.registry()
            .register(&mut SourceFd(&d.fd()), Token(i), Interest::READABLE)?;
    }
    poll.registry()
        .register(&mut SourceFd(&stop), stop_token, Interest::READABLE)?;
    poll.registry().register(
        &mut SourceFd(&control.fd()),
        control_token,
        Interest::READABLE,
    )?;
    if let Some(m) = metrics {
        poll.registry()
            .register(&mut SourceFd(&m.fd()), metrics_token, Interest::READABLE)?;
    }

    let origin = Instant::now();
    let now = || Timestamp::from_nanos(origin.elapsed().as_nanos() as u64);
    let mut events = Events::with_capacity(256);
    let mut ready = vec![false; devices.len()];
    let mut buf = vec![0u8; BUF_LEN];
    let mut out = Output::new();
    let mut finisher = Finisher::new();
    let mut stats = IoStats::default();
    let mut last_tick = Instant::now();

    loop {
        let busy = ready.iter().any(|&r| r);
        let timeout = if busy { Duration::ZERO } else { TICK };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == stop_token {
                return Ok(stats);
            }
            if ev.token() == control_token {
                control.serve(switch, &stats, now());
                continue;
            }
            if let (Some(m), true) = (metrics, ev.token() == metrics_token) {
                m.serve(switch, &stats);
                continue;
            }
            if let Some(r) = ready.get_mut(ev.token().0) {
                *r = true;
            }
        }
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
                switch.process_rx(now(), port, frame, &mut out, rx);
                transmit(devices, &out, frame, &hdr, &mut finisher, &mut stats);
            }
        }
        if last_tick.elapsed() >= TICK {
            switch.expire(now());
            last_tick = Instant::now();
        }
    }
}

fn transmit(
    devices: &[Device],
    out: &Output,
    frame: &[u8],
    ingress_hdr: &VnetHdr,
    finisher: &mut Finisher,
    stats: &mut IoStats,
) {
    let mut tag = [0u8; 4];
    for e in out.emits() {
        let Some(dev) = devices.get(e.port.index()) else {
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
                dev.send(&hdr, &parts, e.tunnel).map(drop)
            }
            Some(hdr) => finisher.send(dev, &hdr, &parts, e.tunnel),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "checksum offset out of range",
            )),
        };
        if let Err(err) = sent {
            // A full queue or a downed peer interface drops the frame, like a NIC would.
            stats.tx_errors += 1;
            tracing::trace!("send on port {}: {err}", e.port);
        }
    }
}
