//! Traces: one described packet through the pipeline, every step recorded.
//! Offline, through a fresh pipeline built from the config: `vswitch trace
//! --config` prints them, `vswitch check` holds `[[expect]]` entries
//! against them. Live, through a running switch's state (`vswitch trace
//! --socket`), as Open vSwitch's ofproto/trace does: the packet meets the
//! real conntrack, FDB, rules and leases, but is sent nowhere and changes
//! nothing, since it runs through a copy of that state.

use std::fmt::Write as _;

use packet::tcp::TcpFlags;
use packet::{Parsed, L4};
use serde_json::json;

use crate::config::{self, Config, Expect};
use crate::flowspec;
use crate::output::Output;
use crate::stats::DropReason;
use crate::switch::{Switch, Verdict};
use crate::time::Timestamp;

/// What happened to the packet, and how.
pub struct Traced {
    pub verdict: Verdict,
    pub steps: Vec<String>,
    /// Each frame sent, by port name.
    pub egress: Vec<(String, Vec<u8>)>,
}

/// Sends the packet `spec` describes in on port `from` of a switch freshly
/// built from `config`, whose FDB knows every configured port's MAC.
pub fn trace(config: &Config, from: &str, spec: &str) -> Result<Traced, String> {
    let mut switch = Switch::new(config).map_err(|e| e.to_string())?;
    let now = Timestamp::from_secs(1);
    switch.learn_configured(now);
    run(&mut switch, now, from, spec)
}

/// Sends the packet `spec` describes in on port `from` of a copy of the
/// running `switch` at `now`; the copy, and whatever the packet changed in
/// it, is dropped. The copy costs time in proportion to the connection
/// table, which the datapath waits for.
pub fn trace_live(
    switch: &Switch,
    now: Timestamp,
    from: &str,
    spec: &str,
) -> Result<Traced, String> {
    let followed = follow_connection(switch, from, spec);
    let mut scratch = switch.clone();
    let mut t = run(&mut scratch, now, from, followed.as_deref().unwrap_or(spec))?;
    if let Some(f) = followed {
        let numbers = f.get(spec.len()..).unwrap_or_default().trim();
        t.steps.insert(
            0,
            format!("spec: {numbers}: the next segment of the connection the switch tracks"),
        );
    }
    Ok(t)
}

/// A TCP spec without `seq` for a connection the switch tracks, with the
/// numbers that connection's next segment carries: without them the packet
/// would trace as a stray outside the connection's window.
fn follow_connection(switch: &Switch, from: &str, spec: &str) -> Option<String> {
    if spec.split_whitespace().any(|w| w == "seq") {
        return None;
    }
    let frame = flowspec::build(spec, switch.config(), from).ok()?;
    let p = Parsed::parse(&frame).ok()?;
    let L4::Tcp { flags, .. } = p.l4 else {
        return None;
    };
    let ct = switch.firewall().conntrack();
    let (id, dir) = ct.lookup(&p.flow_key()?)?;
    let (seq, ack) = ct.get(id)?.tcp_next_seq(dir)?;
    Some(match flags.contains(TcpFlags::ACK) {
        true => format!("{spec} seq {seq} ack {ack}"),
        false => format!("{spec} seq {seq}"),
    })
}

fn run(switch: &mut Switch, now: Timestamp, from: &str, spec: &str) -> Result<Traced, String> {
    let ingress = switch
        .port_id(from)
        .ok_or_else(|| format!("no port named {from:?}"))?;
    let mut frame = flowspec::build(spec, switch.config(), from)?;
    let mut out = Output::new();
    let (verdict, mut steps) = switch.trace(now, ingress, &mut frame, &mut out);
    let egress: Vec<(String, Vec<u8>)> = out
        .emits()
        .iter()
        .map(|e| {
            let port = switch.port(e.port).map_or("?", |p| p.name.as_str());
            (port.to_owned(), out.to_vec(e, &frame))
        })
        .collect();
    for ((port, f), e) in egress.iter().zip(out.emits()) {
        let what = Parsed::parse(f)
            .map(|p| flowspec::describe(&p, f.len()))
            .unwrap_or_else(|e| format!("unparsable: {e}"));
        match e.tunnel {
            Some(t) => steps.push(format!(
                "out: port {port} to VTEP {} (udp source port {}): {what}",
                t.vtep, t.src_port
            )),
            None => steps.push(format!("out: port {port}: {what}")),
        }
    }
    let mut t = Traced {
        verdict,
        steps,
        egress,
    };
    let summary = t.summary();
    t.steps.push(format!("verdict: {summary}"));
    Ok(t)
}

impl Traced {
    /// In `[[expect]]`'s terms: sent on or consumed is accept; a REJECT is
    /// reject; any other drop is drop.
    pub fn outcome(&self) -> config::Verdict {
        match self.verdict {
            Verdict::Forwarded(_) | Verdict::Local => config::Verdict::Accept,
            Verdict::Dropped(DropReason::Rejected) => config::Verdict::Reject,
            Verdict::Dropped(_) => config::Verdict::Drop,
        }
    }

    /// `forwarded to db`, `consumed by the switch`, `dropped: filtered`.
    pub fn summary(&self) -> String {
        match self.verdict {
            Verdict::Forwarded(_) => {
                let ports: Vec<&str> = self.egress.iter().map(|(p, _)| p.as_str()).collect();
                format!("forwarded to {}", ports.join(", "))
            }
            Verdict::Local => "consumed by the switch".into(),
            Verdict::Dropped(reason) => format!("dropped: {reason}"),
        }
    }

    /// The step that settled the packet's fate: the last rule or policy
    /// with a verdict, or failing that the last step before the verdict.
    pub fn deciding_step(&self) -> Option<&str> {
        let decided = |s: &&String| {
            s.contains(" -> DROP")
                || s.contains(" -> REJECT")
                || s.contains(" -> ACCEPT")
                || s.contains(": policy ")
        };
        let before_verdict = self.steps.len().saturating_sub(1);
        self.steps[..before_verdict]
            .iter()
            .rfind(decided)
            .or_else(|| self.steps[..before_verdict].last())
            .map(String::as_str)
    }

    /// The steps, numbered, one per line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(s, "{:>3}  {step}", i + 1);
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        let egress: Vec<_> = self
            .egress
            .iter()
            .map(|(port, f)| {
                let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
                json!({"port": port, "frame": hex})
            })
            .collect();
        json!({
            "verdict": self.outcome().to_string(),
            "summary": self.summary(),
            "steps": self.steps,
            "egress": egress,
        })
    }
}

/// Holds one `[[expect]]` against its trace: `Err` says what differed and
/// at which step.
pub fn check(config: &Config, expect: &Expect) -> Result<(), String> {
    let t = trace(config, &expect.from, &expect.packet)?;
    let got = t.outcome();
    let step = t.deciding_step().unwrap_or("no step");
    if got != expect.verdict {
        return Err(format!(
            "expected {}, got {} ({}); decided at: {step}",
            expect.verdict,
            got,
            t.summary()
        ));
    }
    if let Some(to) = &expect.to {
        if !t.egress.iter().any(|(p, _)| p == to) {
            return Err(format!(
                "expected it to leave by {to}, but it was {}",
                t.summary()
            ));
        }
    }
    Ok(())
}
