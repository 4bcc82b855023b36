//! `vswitch check`: validate a topology offline.

use std::path::Path;
use std::process::ExitCode;

use vswitch::{config, Switch};

/// Exit code for an invalid configuration.
pub const INVALID: u8 = 2;

/// Loads the config and builds the pipeline from it (which reads the
/// rules), printing every error; `Err` carries the exit code.
pub fn load(path: &Path) -> Result<(config::Config, Switch), ExitCode> {
    let report = |errors: config::ConfigErrors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        ExitCode::from(INVALID)
    };
    let cfg = config::load(path).map_err(report)?;
    let switch = Switch::new(&cfg).map_err(report)?;
    Ok((cfg, switch))
}

pub fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok((cfg, _)) => {
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
