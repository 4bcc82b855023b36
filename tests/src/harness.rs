//! An in-memory switch for scenario tests: built from a topo.toml string,
//! driven by a simulated clock, frames in by port name and frames out as
//! (port name, bytes). Every frame in and out is also written to a pcap per
//! scenario under `target/scenarios/` for a human to open when a test fails.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vswitch::config;
use vswitch::pcap::PcapWriter;
use vswitch::{Output, PortId, Switch, Timestamp, Verdict};

pub struct Harness {
    pub switch: Switch,
    pub now: Timestamp,
    out: Output,
    pcap: Option<PcapWriter<BufWriter<File>>>,
}

/// What one frame did.
#[derive(Debug, PartialEq, Eq)]
pub struct Sent {
    pub verdict: Verdict,
    /// (egress port name, frame bytes), in emission order.
    pub frames: Vec<(String, Vec<u8>)>,
}

impl Sent {
    pub fn ports(&self) -> Vec<&str> {
        self.frames.iter().map(|(p, _)| p.as_str()).collect()
    }
}

impl Harness {
    /// Builds a switch from `topo`; panics with the config errors if invalid.
    pub fn new(scenario: &str, topo: &str) -> Harness {
        let cfg = match config::parse(topo, Path::new("scenario.toml")) {
            Ok(c) => c,
            Err(e) => panic!("scenario config invalid:\n{e}"),
        };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/scenarios");
        let pcap = std::fs::create_dir_all(&dir)
            .and_then(|_| File::create(dir.join(format!("{scenario}.pcap"))))
            .and_then(|f| PcapWriter::new(BufWriter::new(f)))
            .ok();
        Harness {
            switch: Switch::new(&cfg).unwrap_or_else(|e| panic!("scenario rules invalid:\n{e}")),
            now: Timestamp::from_secs(1),
            out: Output::new(),
            pcap,
        }
    }

    pub fn port(&self, name: &str) -> PortId {
        self.switch
            .port_id(name)
            .unwrap_or_else(|| panic!("no port {name}"))
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.plus(d);
    }

    /// Pushes `frame` in on port `from` and returns what came out.
    pub fn send(&mut self, from: &str, frame: &[u8]) -> Sent {
        let ingress = self.port(from);
        let mut buf = frame.to_vec();
        self.out.clear();
        let verdict = self
            .switch
            .process(self.now, ingress, &mut buf, &mut self.out);
        let frames: Vec<(String, Vec<u8>)> = self
            .out
            .emits()
            .iter()
            .map(|e| {
                let name = self.switch.port(e.port).map_or("?", |p| p.name.as_str());
                (name.to_owned(), self.out.to_vec(e, &buf))
            })
            .collect();
        if let Some(w) = &mut self.pcap {
            let _ = w.write(self.now, &[frame]);
            for (_, f) in &frames {
                let _ = w.write(self.now, &[f]);
            }
        }
        Sent { verdict, frames }
    }

    pub fn stats(&self, port: &str) -> &vswitch::stats::PortStats {
        &self.switch.ports()[self.port(port).index()].stats
    }
}
