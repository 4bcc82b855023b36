//! `vswitch check`: validate a topology offline.

use std::path::Path;
use std::process::ExitCode;

use vswitch::{config, Switch};

/// Exit code for an invalid configuration.
pub const INVALID: u8 = 2;

/// Loads the config and builds the pipeline from it (which reads the
/// rules), printing every error; `Err` carries the exit code.
pub fn load(path: &Path) -> Result<(config::Config, Switch), ExitCode> {
    let cfg = config::load(path).map_err(report)?;
    let switch = build(&cfg)?;
    Ok((cfg, switch))
}

/// The pipeline for a loaded config, its rule errors printed as `load`'s.
pub fn build(cfg: &config::Config) -> Result<Switch, ExitCode> {
    Switch::new(cfg).map_err(report)
}

/// Prints every error; the exit code for an invalid configuration.
pub fn report(errors: config::ConfigErrors) -> ExitCode {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    ExitCode::from(INVALID)
}

/// Exit code when the config is valid but an `[[expect]]` fails.
pub const EXPECT_FAILED: u8 = 1;

pub fn check(path: &Path) -> ExitCode {
    let cfg = match load(path) {
        Ok((cfg, _)) => cfg,
        Err(code) => return code,
    };
    println!(
        "{}: valid: {} network(s), {} port(s)",
        path.display(),
        cfg.networks.len(),
        cfg.ports.len()
    );
    let mut failed = 0;
    for e in &cfg.expects {
        let what = format!(
            "{}:{}: expect {} from {}: {}",
            path.display(),
            e.line,
            e.verdict,
            e.from,
            e.packet
        );
        match vswitch::trace::check(&cfg, e) {
            Ok(()) => println!("{what}: ok"),
            Err(why) => {
                failed += 1;
                println!("{what}: FAILED: {why}");
            }
        }
    }
    if cfg.expects.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!(
        "{} expectation(s): {} held, {failed} failed",
        cfg.expects.len(),
        cfg.expects.len() - failed
    );
    if failed > 0 {
        ExitCode::from(EXPECT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
