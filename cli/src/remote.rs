//! Commands answered by a running switch over its control socket.

use std::process::ExitCode;

use clap::Args;
use vswitch::io::control;

#[derive(Args)]
pub struct Target {
    /// The switch to ask (default: the only one running).
    #[arg(long)]
    name: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn ask(t: &Target, request: &str) -> ExitCode {
    let line = if t.json {
        format!("{request} --json")
    } else {
        request.to_owned()
    };
    match control::request(t.name.as_deref(), &line) {
        Ok(body) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
