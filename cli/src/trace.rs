//! `vswitch trace`: one described packet through the pipeline, offline.

use std::path::Path;
use std::process::ExitCode;

pub fn trace(path: &Path, port: &str, packet: &str, json: bool) -> ExitCode {
    let (cfg, _) = match crate::check::load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match vswitch::trace::trace(&cfg, port, packet) {
        Ok(t) if json => {
            println!("{}", t.to_json());
            ExitCode::SUCCESS
        }
        Ok(t) => {
            print!("{}", t.to_text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
