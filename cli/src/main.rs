//! The `vswitch` command: argument parsing and output formatting. Everything
//! else lives in the `vswitch` library.

mod capture;
mod check;
mod remote;
mod replay;
mod run;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vswitch",
    version,
    about = "A userspace virtual switch for containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the topology and forward frames until SIGINT/SIGTERM.
    Run {
        /// The topology file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Serve Prometheus metrics over HTTP at this address (`GET /metrics`).
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Validate a topology file without root and without touching the host,
    /// then hold its `[[expect]]` entries against traces.
    Check {
        /// The topology file.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Send one described packet through the pipeline and print every
    /// step: parse, conntrack, each rule, routing, FDB, egress. Offline
    /// with --config; with --socket (or --name) through the running
    /// switch's live state, sending nothing and changing nothing.
    Trace {
        /// The topology file (offline).
        #[arg(long, short = 'c', required_unless_present_any = ["socket", "name"], conflicts_with_all = ["socket", "name"])]
        config: Option<PathBuf>,
        /// Ask the running switch (its control socket) instead.
        #[arg(long)]
        socket: bool,
        /// The running switch to ask (default: the only one); implies --socket.
        #[arg(long)]
        name: Option<String>,
        /// The port the packet comes in by.
        #[arg(long = "in")]
        port: String,
        /// The packet, e.g. `tcp 10.10.0.2:40000 -> 10.10.0.3:5432 syn`.
        packet: String,
        /// Print JSON instead of steps.
        #[arg(long)]
        json: bool,
    },
    /// Push every frame of a pcap or pcapng capture through the pipeline
    /// offline and write what leaves each port to `DIR/<port>.pcap`.
    Replay {
        /// The topology file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// The port frames come in by, unless their source MAC is another
        /// port's configured MAC.
        #[arg(long = "in")]
        port: String,
        /// The capture to replay.
        capture: PathBuf,
        /// The directory for the per-port pcaps (created).
        #[arg(short = 'w')]
        dir: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The running switch's MAC table, `bridge fdb show` style.
    Fdb(remote::Target),
    /// The running switch's per-port packet, byte and drop counters.
    Stats(remote::Target),
    /// Apply a changed config's rules to the running switch; connections,
    /// the FDB and DHCP leases stay. A bad config is refused whole.
    Reload {
        /// The topology file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        #[command(flatten)]
        target: remote::Target,
    },
    /// The running switch's rules: `iptables -L -n` style, or `-S`.
    Rules(remote::Rules),
    /// The running switch's connection table, `conntrack -L` style.
    Conntrack(remote::Conntrack),
    /// Write the frames a running switch receives and sends on a port to
    /// a pcap file, or to stdout with `-w -` (`| tcpdump -r -`).
    Capture(capture::Capture),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let command = Cli::parse().command;
    if !matches!(command, Command::Run { .. }) {
        // `vswitch rules | head` ends quietly, as any command-line tool
        // does, instead of failing a print. `run` keeps SIGPIPE ignored: a
        // control client that goes away must not stop the switch.
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match command {
        Command::Run { config, metrics } => run::run(&config, metrics),
        Command::Check { config } => check::check(&config),
        Command::Trace {
            config: Some(config),
            port,
            packet,
            json,
            ..
        } => trace::trace(&config, &port, &packet, json),
        Command::Trace {
            name,
            port,
            packet,
            json,
            ..
        } => remote::ask_switch(name.as_deref(), json, &format!("trace {port} {packet}")),
        Command::Replay {
            config,
            port,
            capture,
            dir,
            json,
        } => replay::replay(&config, &port, &capture, &dir, json),
        Command::Fdb(t) => remote::ask(&t, "fdb"),
        Command::Stats(t) => remote::ask(&t, "stats"),
        Command::Reload { config, target } => remote::reload(&target, &config),
        Command::Rules(r) => remote::ask(&r.target, &r.request()),
        Command::Conntrack(c) => remote::ask(&c.target, &c.request()),
        Command::Capture(c) => capture::capture(&c),
    }
}
