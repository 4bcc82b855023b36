//! Commands answered by a running switch over its control socket.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use vswitch::io::control;

#[derive(Args)]
pub struct Rules {
    #[command(flatten)]
    pub target: Target,
    /// The table: filter, nat, mangle or raw.
    #[arg(short = 't', long, default_value = "filter")]
    table: String,
    /// Print rules as `iptables -S` does (with -c: as `iptables-save -c`).
    #[arg(short = 'S', long = "list-rules")]
    spec: bool,
    /// With -S: each rule's `[packets:bytes]`.
    #[arg(short = 'c', long)]
    counters: bool,
    /// Packet and byte counters, interfaces.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Exact counters, not rounded to K/M/G.
    #[arg(short = 'x', long)]
    exact: bool,
    /// Zero the counters after printing them.
    #[arg(short = 'Z', long)]
    zero: bool,
    /// Accepted for iptables habits: listing is the default.
    #[arg(short = 'L', long)]
    list: bool,
    /// Accepted for iptables habits: addresses are always numeric.
    #[arg(short = 'n', long)]
    numeric: bool,
}

impl Rules {
    pub fn request(&self) -> String {
        let mut r = format!("rules -t {}", self.table);
        for (on, flag) in [
            (self.spec, "-S"),
            (self.counters, "-c"),
            (self.verbose, "-v"),
            (self.exact, "-x"),
            (self.zero, "-Z"),
        ] {
            if on {
                r.push(' ');
                r.push_str(flag);
            }
        }
        r
    }
}

#[derive(Args)]
pub struct Conntrack {
    #[command(flatten)]
    pub target: Target,
    /// List the connections (the default).
    #[arg(short = 'L', long = "dump")]
    list: bool,
    /// Remove every connection.
    #[arg(short = 'F', long, conflicts_with_all = ["list", "delete"])]
    flush: bool,
    /// Remove the connections the filters select.
    #[arg(short = 'D', long, conflicts_with = "list")]
    delete: bool,
    /// Only this protocol: tcp, udp, icmp or a number.
    #[arg(short = 'p', long = "proto")]
    protocol: Option<String>,
    /// Only this original source address.
    #[arg(short = 's', long = "src")]
    src: Option<String>,
    /// Only this original destination address.
    #[arg(short = 'd', long = "dst")]
    dst: Option<String>,
    /// Only this original source port.
    #[arg(long)]
    sport: Option<u16>,
    /// Only this original destination port.
    #[arg(long)]
    dport: Option<u16>,
}

impl Conntrack {
    pub fn request(&self) -> String {
        let mut r = String::from("conntrack");
        r.push_str(if self.flush {
            " -F"
        } else if self.delete {
            " -D"
        } else {
            " -L"
        });
        let ports = [(self.sport, "--sport"), (self.dport, "--dport")];
        let values = [
            (self.protocol.clone(), "-p"),
            (self.src.clone(), "-s"),
            (self.dst.clone(), "-d"),
        ]
        .into_iter()
        .chain(
            ports
                .into_iter()
                .map(|(p, f)| (p.map(|p| p.to_string()), f)),
        );
        for (v, flag) in values {
            if let Some(v) = v {
                r.push_str(&format!(" {flag} {v}"));
            }
        }
        r
    }
}

#[derive(Args)]
pub struct Target {
    /// The switch to ask (default: the only one running).
    #[arg(long)]
    name: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Sends the config's absolute path: the switch reads it itself.
pub fn reload(t: &Target, config: &Path) -> ExitCode {
    match std::fs::canonicalize(config) {
        Ok(path) => ask(t, &format!("reload {}", path.display())),
        Err(e) => {
            eprintln!("vswitch: cannot read {}: {e}", config.display());
            ExitCode::FAILURE
        }
    }
}

pub fn ask(t: &Target, request: &str) -> ExitCode {
    ask_switch(t.name.as_deref(), t.json, request)
}

/// Sends `request` to the switch `name` (or the only one running) and
/// prints its answer, as JSON if `json`.
pub fn ask_switch(name: Option<&str>, json: bool, request: &str) -> ExitCode {
    let line = if json {
        format!("{request} --json")
    } else {
        request.to_owned()
    };
    match control::request(name, &line) {
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
