//! `vswitch run`: build the lab, forward until told to stop, clean up.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use vswitch::config;
use vswitch::io::metrics::MetricsServer;
use vswitch::io::privileges::{self, Exit};
use vswitch::io::{
    self, control::ControlServer, datapath, lab::Lab, netns_ops, notify, stop::StopSignal,
};

use crate::check;

pub fn run(path: &Path, metrics: Option<SocketAddr>) -> ExitCode {
    let mut cfg = match config::load(path) {
        Ok(c) => c,
        Err(errors) => return check::report(errors),
    };
    if !io::is_root() {
        eprintln!(
            "vswitch run needs root (CAP_NET_ADMIN) to create TAP devices and network namespaces"
        );
        return ExitCode::FAILURE;
    }
    // The uplink answers with its interface's own MAC unless given one.
    if let Some(u) = cfg.uplink.as_mut().filter(|u| u.mac.is_none()) {
        u.mac = io::lab::interface_mac(&u.interface);
    }
    // Built once the uplink's MAC is known; rule errors read as check's.
    let mut switch = match check::build(&cfg) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // ipvlan endpoints appear with their parent interface's MAC.
    for n in &cfg.networks {
        let mac = n.parent_link().and_then(|(i, _)| io::lab::interface_mac(i));
        if let Some(mac) = mac {
            switch.set_parent_mac(&n.name, mac);
        }
    }
    // Random NAT ports differ from run to run, as the kernel's do.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    switch.firewall_mut().seed_nat(seed);
    // Signals are caught from here on, so a stop during setup still cleans up.
    let stop = match StopSignal::install() {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let mut lab = match Lab::setup(&cfg) {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string()),
    };
    let control = match ControlServer::bind(&cfg.switch) {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot create the control socket: {e}")),
    };
    let metrics = match metrics.map(MetricsServer::bind).transpose() {
        Ok(m) => m,
        Err(e) => return fail(&format!("cannot serve metrics: {e}")),
    };
    let ports = lab.devices.len();
    let announce = || {
        println!(
            "ready: switch {} forwarding on {ports} port(s)",
            cfg.switch.name
        );
        let _ = std::io::stdout().flush();
        if let Err(e) = notify::ready() {
            tracing::warn!("cannot notify readiness: {e}");
        }
    };
    // The datapath runs in a child confined to the few capabilities it
    // needs (privileges::DATAPATH_CAPS); this process keeps what teardown
    // needs, runs the namespace commands of the child's reloads, and waits.
    let datapath = |ready: &mut dyn FnMut(), parent| {
        lab.ask_parent(parent);
        ready();
        let result = datapath::run(&mut switch, &mut lab, &control, metrics.as_ref(), stop.fd());
        match result {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("vswitch: datapath failed: {e}");
                1
            }
        }
    };
    let exit = privileges::run_confined(datapath, announce, netns_ops::serve);
    // A reload in the datapath may have made or removed namespaces.
    lab.resync();
    lab.teardown();
    match exit {
        Ok(Exit::Code(0)) => ExitCode::SUCCESS,
        // The datapath said why, or its panic did.
        Ok(Exit::Code(_)) => fail("the datapath stopped on an error; the lab is removed"),
        Ok(Exit::Signal(s)) => fail(&format!(
            "the datapath was killed by signal {s}; the lab is removed"
        )),
        Err(e) => fail(&format!("cannot start the datapath: {e}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("vswitch: {msg}");
    ExitCode::FAILURE
}
