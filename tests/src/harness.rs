//! An in-memory switch for scenario tests: built from a topo.toml string,
//! driven by a simulated clock, frames in by port name and frames out as
//! (port name, bytes). Every frame in and out is also written to a pcap per
//! scenario under `target/scenarios/` for a human to open when a test fails.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vswitch::config;
use vswitch::pcap::PcapWriter;
use vswitch::switch::RxInfo;
use vswitch::vxlan::TunnelDst;
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
    /// For each of `frames`, the VTEP it goes to when its port is vxlan.
    pub tunnels: Vec<Option<TunnelDst>>,
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
        self.collect(verdict, frame, &buf)
    }

    /// Hands vxlan port `port` a datagram (UDP payload) from `peer`, as its
    /// socket would; a refused one comes back as the drop verdict.
    pub fn send_datagram(&mut self, port: &str, peer: SocketAddrV4, datagram: &[u8]) -> Sent {
        let ingress = self.port(port);
        let mut buf = datagram.to_vec();
        self.out.clear();
        let d = match self.switch.decapsulate(ingress, peer, &mut buf) {
            Ok(d) => d,
            Err(reason) => return self.collect(Verdict::Dropped(reason), &[], &[]),
        };
        let inner = &mut buf[d.inner];
        let verdict = self
            .switch
            .process_rx(self.now, ingress, inner, &mut self.out, d.rx);
        let inner = inner.to_vec();
        self.collect(verdict, &inner, &inner)
    }

    /// `send` with what the I/O layer would know of the frame.
    pub fn send_rx(&mut self, from: &str, frame: &[u8], rx: RxInfo) -> Sent {
        let ingress = self.port(from);
        let mut buf = frame.to_vec();
        self.out.clear();
        let verdict = self
            .switch
            .process_rx(self.now, ingress, &mut buf, &mut self.out, rx);
        self.collect(verdict, frame, &buf)
    }

    /// What the last call emitted; `frame` as it came in, `buf` as edited.
    fn collect(&mut self, verdict: Verdict, frame: &[u8], buf: &[u8]) -> Sent {
        let frames: Vec<(String, Vec<u8>)> = self
            .out
            .emits()
            .iter()
            .map(|e| {
                let name = self.switch.port(e.port).map_or("?", |p| p.name.as_str());
                (name.to_owned(), self.out.to_vec(e, buf))
            })
            .collect();
        let tunnels = self.out.emits().iter().map(|e| e.tunnel).collect();
        if let Some(w) = &mut self.pcap {
            if !frame.is_empty() {
                let _ = w.write(self.now, &[frame]);
            }
            for (_, f) in &frames {
                let _ = w.write(self.now, &[f]);
            }
        }
        Sent {
            verdict,
            frames,
            tunnels,
        }
    }

    pub fn stats(&self, port: &str) -> &vswitch::stats::PortStats {
        &self.switch.ports()[self.port(port).index()].stats
    }
}
