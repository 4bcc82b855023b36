//! Replaying a capture through the pipeline offline (`vswitch replay`).
//!
//! One `Switch` sees every frame in capture order, so conntrack, NAT and
//! the FDB carry from frame to frame. The pipeline's clock is the capture's:
//! `now` is `ORIGIN` plus the time since the first frame, held monotonic
//! when a capture steps back, and `expire` runs whenever a second of it has
//! passed. A frame comes in by the port given, unless its source MAC is
//! another port's configured MAC: then by that port, so both directions of
//! a conversation captured in one place replay as a conversation.

use core::fmt;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use packet::MacAddr;
use serde_json::json;

use crate::capture::{CaptureError, CaptureReader};
use crate::output::Output;
use crate::pcap::PcapWriter;
use crate::port::PortId;
use crate::stats::DropReason;
use crate::switch::{Switch, Verdict};
use crate::time::Timestamp;

/// Pipeline time of the first frame; after zero so nothing is "at time 0".
pub const ORIGIN: Timestamp = Timestamp::from_secs(1);

/// How often, in capture time, tables age.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// What a replay did, frame by frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub frames: u64,
    pub forwarded: u64,
    pub local: u64,
    /// Drops by reason, in `DropReason::ALL` order, reasons seen only.
    pub dropped: Vec<(DropReason, u64)>,
    /// Frames in by each port (configuration order, ports seen only).
    pub ingress: Vec<(String, u64)>,
    /// Frames out of each port (configuration order, ports seen only).
    pub egress: Vec<(String, u64)>,
}

impl Summary {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let counts = |v: &[(String, u64)]| {
            v.iter()
                .map(|(p, n)| (p.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>()
        };
        let drops: serde_json::Map<_, _> = self
            .dropped
            .iter()
            .map(|(r, n)| (r.as_str().to_owned(), json!(n)))
            .collect();
        json!({
            "frames": self.frames,
            "forwarded": self.forwarded,
            "local": self.local,
            "dropped": self.dropped_total(),
            "drops": drops,
            "ingress": counts(&self.ingress),
            "egress": counts(&self.egress),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "frames     {}", self.frames)?;
        writeln!(f, "forwarded  {}", self.forwarded)?;
        writeln!(f, "local      {}", self.local)?;
        writeln!(f, "dropped    {}", self.dropped_total())?;
        for (reason, n) in &self.dropped {
            writeln!(f, "  {:<22} {n}", reason.as_str())?;
        }
        writeln!(f, "in by port")?;
        for (port, n) in &self.ingress {
            writeln!(f, "  {port:<22} {n}")?;
        }
        writeln!(f, "out by port")?;
        for (port, n) in &self.egress {
            writeln!(f, "  {port:<22} {n}")?;
        }
        Ok(())
    }
}

/// The switch and clock of one replay; `frame` feeds it.
pub struct Replay {
    switch: Switch,
    ingress: PortId,
    by_mac: HashMap<MacAddr, PortId>,
    first: Option<Timestamp>,
    now: Timestamp,
    expired_at: Timestamp,
    out: Output,
    buf: Vec<u8>,
    forwarded: u64,
    local: u64,
    drops: [u64; DropReason::ALL.len()],
    rx: Vec<u64>,
    tx: Vec<u64>,
}

impl Replay {
    /// Frames arrive on `ingress` unless their source MAC says otherwise.
    /// The FDB starts out knowing every configured port's MAC, as in a
    /// running lab where each has spoken.
    pub fn new(mut switch: Switch, ingress: PortId) -> Replay {
        let by_mac = switch
            .ports()
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.mac.is_zero())
            .map(|(i, p)| (p.mac, PortId(i as u16)))
            .collect();
        switch.learn_configured(ORIGIN);
        let n = switch.ports().len();
        Replay {
            switch,
            ingress,
            by_mac,
            first: None,
            now: ORIGIN,
            expired_at: ORIGIN,
            out: Output::new(),
            buf: Vec::new(),
            forwarded: 0,
            local: 0,
            drops: [0; DropReason::ALL.len()],
            rx: vec![0; n],
            tx: vec![0; n],
        }
    }

    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// Pushes one frame captured at `at` through the pipeline and hands
    /// each frame that leaves to `sink` as (port, slices to write in order).
    pub fn frame<E>(
        &mut self,
        at: Timestamp,
        frame: &[u8],
        mut sink: impl FnMut(PortId, &[&[u8]]) -> Result<(), E>,
    ) -> Result<Verdict, E> {
        let first = *self.first.get_or_insert(at);
        self.now = self.now.max(ORIGIN.plus(at.since(first)));
        if self.now.since(self.expired_at) >= EXPIRE_EVERY {
            self.switch.expire(self.now);
            self.expired_at = self.now;
        }
        let ingress = MacAddr::from_slice(frame.get(6..12).unwrap_or_default())
            .and_then(|src| self.by_mac.get(&src).copied())
            .unwrap_or(self.ingress);
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        self.out.clear();
        let verdict = self
            .switch
            .process(self.now, ingress, &mut self.buf, &mut self.out);
        if let Some(n) = self.rx.get_mut(ingress.index()) {
            *n += 1;
        }
        match verdict {
            Verdict::Forwarded(_) => self.forwarded += 1,
            Verdict::Local => self.local += 1,
            Verdict::Dropped(r) => {
                if let Some(i) = DropReason::ALL.iter().position(|&x| x == r) {
                    self.drops[i] += 1;
                }
            }
        }
        let mut tag = [0u8; 4];
        for e in self.out.emits() {
            if let Some(n) = self.tx.get_mut(e.port.index()) {
                *n += 1;
            }
            sink(e.port, &self.out.parts(e, &self.buf, &mut tag))?;
        }
        Ok(verdict)
    }

    pub fn summary(&self) -> Summary {
        let by_port = |counts: &[u64]| {
            self.switch
                .ports()
                .iter()
                .zip(counts)
                .filter(|(_, &n)| n > 0)
                .map(|(p, &n)| (p.name.clone(), n))
                .collect()
        };
        Summary {
            frames: self.rx.iter().sum(),
            forwarded: self.forwarded,
            local: self.local,
            dropped: DropReason::ALL
                .iter()
                .zip(self.drops)
                .filter(|&(_, n)| n > 0)
                .map(|(&r, n)| (r, n))
                .collect(),
            ingress: by_port(&self.rx),
            egress: by_port(&self.tx),
        }
    }
}

/// Why a replay to files stopped.
#[derive(Debug)]
pub enum ReplayError {
    Capture(CaptureError),
    Write(PathBuf, io::Error),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Capture(e) => e.fmt(f),
            ReplayError::Write(path, e) => write!(f, "{}: {e}", path.display()),
        }
    }
}

impl std::error::Error for ReplayError {}

/// Replays every frame of `capture` and writes what leaves each port to
/// `dir/<port>.pcap`, stamped with the capture time of the frame that
/// caused it. `dir` is created; a `<port>.pcap` left there by an earlier
/// run for a port that sends nothing now is removed, so the directory
/// tells the truth. Files written before an error are complete up to it.
pub fn to_dir<R: Read>(
    replay: &mut Replay,
    capture: &mut CaptureReader<R>,
    dir: &Path,
) -> Result<(), ReplayError> {
    fs::create_dir_all(dir).map_err(|e| ReplayError::Write(dir.to_owned(), e))?;
    let paths: Vec<PathBuf> = replay
        .switch()
        .ports()
        .iter()
        .map(|p| dir.join(format!("{}.pcap", p.name)))
        .collect();
    for path in &paths {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(ReplayError::Write(path.clone(), e))
            }
            _ => {}
        }
    }
    let mut writers: Vec<Option<PcapWriter<BufWriter<File>>>> =
        paths.iter().map(|_| None).collect();
    while let Some(p) = capture.next_packet().map_err(ReplayError::Capture)? {
        let at = p.timestamp;
        replay.frame(at, p.data, |port, parts| {
            let i = port.index();
            let (Some(slot), Some(path)) = (writers.get_mut(i), paths.get(i)) else {
                return Ok(());
            };
            let fail = |e| ReplayError::Write(path.clone(), e);
            let w = match slot {
                Some(w) => w,
                None => slot.insert(
                    File::create(path)
                        .and_then(|f| PcapWriter::new(BufWriter::new(f)))
                        .map_err(fail)?,
                ),
            };
            w.write(at, parts).map_err(fail)
        })?;
    }
    for (w, path) in writers.into_iter().zip(&paths) {
        if let Some(w) = w {
            w.into_inner()
                .flush()
                .map_err(|e| ReplayError::Write(path.clone(), e))?;
        }
    }
    Ok(())
}
