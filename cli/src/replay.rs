//! `vswitch replay`: a capture through the pipeline offline, what leaves
//! each port written to `DIR/<port>.pcap`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::process::ExitCode;

use vswitch::capture::CaptureReader;
use vswitch::replay::{self, Replay, ReplayError};

pub fn replay(config: &Path, port: &str, capture: &Path, dir: &Path, json: bool) -> ExitCode {
    let (_, switch) = match crate::check::load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(ingress) = switch.port_id(port) else {
        eprintln!("vswitch: {}: no port named {port:?}", config.display());
        return ExitCode::from(crate::check::INVALID);
    };
    let unreadable = |e: &dyn std::fmt::Display| {
        eprintln!("vswitch: {}: {e}", capture.display());
        ExitCode::FAILURE
    };
    let file = match File::open(capture) {
        Ok(f) => f,
        Err(e) => return unreadable(&e),
    };
    let mut reader = match CaptureReader::new(BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => return unreadable(&e),
    };
    let mut replay = Replay::new(switch, ingress);
    match replay::to_dir(&mut replay, &mut reader, dir) {
        Ok(()) => {}
        Err(ReplayError::Capture(e)) => return unreadable(&e),
        Err(e) => {
            eprintln!("vswitch: {e}");
            return ExitCode::FAILURE;
        }
    }
    let summary = replay.summary();
    if json {
        println!("{}", summary.to_json());
    } else {
        println!(
            "{}: {} frames ({}) replayed in by {port}, out to {}",
            capture.display(),
            summary.frames,
            reader.format(),
            dir.display()
        );
        print!("{summary}");
    }
    ExitCode::SUCCESS
}
