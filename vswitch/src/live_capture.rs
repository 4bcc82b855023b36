//! Live captures: the frames a running switch receives and sends on a port,
//! written as a pcap stream to whoever asked (`vswitch capture`).
//!
//! Each capture holds a sink the I/O layer made non-blocking. The datapath
//! hands every frame of a captured port here, as it came in (before the
//! pipeline edits it) and as it leaves, GSO super-frames whole, cut at the
//! capture's snaplen. A record is written whole or not at all: when the
//! sink would block, the frame is counted as dropped for that capture and
//! the datapath goes on; the unsent tail of a record the sink took in part
//! is kept and sent first next time, so the stream stays valid pcap.
//!
//! With no capture, the datapath's only cost is `is_empty`.

use std::io::{self, Write};

use crate::pcap;
use crate::pcap_filter::Filter;
use crate::port::PortId;
use crate::time::Timestamp;

/// What to capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSpec {
    pub port: PortId,
    pub filter: Filter,
    pub snaplen: u32,
    /// Stop after this many frames.
    pub count: Option<u64>,
}

/// A capture that ended, for the I/O layer to close and log.
pub struct Ended<S> {
    pub id: u64,
    pub spec: CaptureSpec,
    pub written: u64,
    pub dropped: u64,
    pub sink: S,
}

struct Live<S> {
    id: u64,
    spec: CaptureSpec,
    sink: S,
    /// Bytes of the stream the sink has not taken yet.
    pending: Vec<u8>,
    written: u64,
    dropped: u64,
    /// The count is reached or the sink failed: end once `pending` is out.
    done: bool,
    broken: bool,
}

pub struct LiveCaptures<S> {
    list: Vec<Live<S>>,
    next_id: u64,
    /// Scratch for one record, reused.
    record: Vec<u8>,
    /// Scratch for a frame sent in several slices, for the filter.
    joined: Vec<u8>,
}

impl<S> Default for LiveCaptures<S> {
    fn default() -> Self {
        LiveCaptures {
            list: Vec::new(),
            next_id: 0,
            record: Vec::new(),
            joined: Vec::new(),
        }
    }
}

impl<S: Write> LiveCaptures<S> {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Starts a capture into `sink` (non-blocking), the pcap file header
    /// first. Returns its id.
    pub fn add(&mut self, spec: CaptureSpec, sink: S) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut live = Live {
            id,
            pending: pcap::header(spec.snaplen).to_vec(),
            spec,
            sink,
            written: 0,
            dropped: 0,
            done: false,
            broken: false,
        };
        live.flush();
        self.list.push(live);
        id
    }

    /// The sinks, by capture id (for the I/O layer to watch for hangups).
    pub fn sinks(&self) -> impl Iterator<Item = (u64, &S)> + '_ {
        self.list.iter().map(|l| (l.id, &l.sink))
    }

    /// Offers one frame seen on `port`, given as consecutive slices.
    pub fn frame(&mut self, at: Timestamp, port: PortId, parts: &[&[u8]]) {
        let mut rendered = None;
        for i in 0..self.list.len() {
            let live = &mut self.list[i];
            if live.spec.port != port || live.done {
                continue;
            }
            if !live.spec.filter.is_empty() {
                let frame = match parts {
                    [one] => one,
                    _ => {
                        self.joined.clear();
                        parts.iter().for_each(|p| self.joined.extend_from_slice(p));
                        &self.joined[..]
                    }
                };
                if !live.spec.filter.matches(frame) {
                    continue;
                }
            }
            if !live.flush() {
                live.dropped += 1;
                continue;
            }
            // Rendered once per snaplen; captures of one port rarely differ.
            if rendered != Some(live.spec.snaplen) {
                self.record.clear();
                pcap::record(at, parts, live.spec.snaplen, &mut self.record);
                rendered = Some(live.spec.snaplen);
            }
            live.send(&self.record);
        }
    }

    /// Sends what sinks did not take yet; call now and then.
    pub fn flush(&mut self) {
        for live in &mut self.list {
            live.flush();
        }
    }

    /// Ends capture `id` (its client hung up).
    pub fn close(&mut self, id: u64) {
        if let Some(l) = self.list.iter_mut().find(|l| l.id == id) {
            l.done = true;
            l.broken = true;
        }
    }

    /// Moves each capture to the port `map` gives for its old one; those
    /// whose port is gone end.
    pub fn remap(&mut self, map: impl Fn(PortId) -> Option<PortId>) {
        for l in &mut self.list {
            match map(l.spec.port) {
                Some(p) => l.spec.port = p,
                None => l.done = true,
            }
        }
    }

    /// Removes and returns the captures that are over: count reached and
    /// all sent, or the sink gone.
    pub fn take_ended(&mut self) -> Vec<Ended<S>> {
        let mut ended = Vec::new();
        let mut i = 0;
        while i < self.list.len() {
            let l = &self.list[i];
            if l.broken || (l.done && l.pending.is_empty()) {
                let l = self.list.swap_remove(i);
                ended.push(Ended {
                    id: l.id,
                    spec: l.spec,
                    written: l.written,
                    dropped: l.dropped,
                    sink: l.sink,
                });
            } else {
                i += 1;
            }
        }
        ended
    }
}

impl<S: Write> Live<S> {
    /// Tries to send `pending`; true when nothing is left of it.
    fn flush(&mut self) -> bool {
        while !self.pending.is_empty() && !self.broken {
            match self.sink.write(&self.pending) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => self.broken = true,
            }
        }
        !self.broken
    }

    /// Sends one whole record; `pending` is empty.
    fn send(&mut self, record: &[u8]) {
        let taken = loop {
            match self.sink.write(record) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.dropped += 1;
                    return;
                }
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        };
        if taken == 0 {
            self.broken = true;
            return;
        }
        // Begun is committed: the rest goes before anything else.
        self.pending.extend_from_slice(&record[taken..]);
        self.written += 1;
        if self.spec.count.is_some_and(|c| self.written >= c) {
            self.done = true;
        }
    }
}
