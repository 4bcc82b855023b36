//! `vswitch check`: validate a topology offline.

use std::path::Path;
use std::process::ExitCode;

use vswitch::config;

/// Exit code for an invalid configuration.
pub const INVALID: u8 = 2;

/// Loads the config, printing every error; `Err` carries the exit code.
pub fn load(path: &Path) -> Result<config::Config, ExitCode> {
    config::load(path).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        ExitCode::from(INVALID)
    })
}

pub fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(cfg) => {
            println!(
                "{}: valid: {} network(s), {} port(s)",
                path.display(),
                cfg.networks.len(),
                cfg.ports.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
