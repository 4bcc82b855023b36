//! The rules the switch writes for its topology, in iptables-restore text,
//! laid out as Docker lays out its own: a user chain evaluated first, then
//! isolation between networks, then what each network lets through. They
//! load beneath the user's `[rules]`, so everything here is visible in
//! `vswitch rules` and can be overridden there.

use crate::config::{Config, Driver};

/// Jumped to first from FORWARD: the place for rules that must win over
/// isolation, like DOCKER-USER.
pub const USER_CHAIN: &str = "VSWITCH-USER";
const ISOLATION_1: &str = "VSWITCH-ISOLATION-STAGE-1";
const ISOLATION_2: &str = "VSWITCH-ISOLATION-STAGE-2";

/// Where errors in the generated text would point.
pub const ORIGIN: &str = "<generated>";

/// The filter table for `config`'s bridge networks. FORWARD's policy is
/// DROP, as Docker sets it; each network lets its own endpoints talk
/// (unless `icc = false`) and traffic out of it leave (unless `internal`),
/// and isolation drops what one network sends towards another.
pub fn filter(config: &Config) -> String {
    let bridges: Vec<_> = config
        .networks
        .iter()
        .filter(|n| n.driver == Driver::Bridge)
        .collect();
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("*filter");
    line(":INPUT ACCEPT [0:0]");
    line(":FORWARD DROP [0:0]");
    line(":OUTPUT ACCEPT [0:0]");
    for chain in [USER_CHAIN, ISOLATION_1, ISOLATION_2] {
        line(&format!(":{chain} - [0:0]"));
    }
    line(&format!("-A FORWARD -j {USER_CHAIN}"));
    line(&format!("-A FORWARD -j {ISOLATION_1}"));
    for n in &bridges {
        let name = &n.name;
        line(&format!(
            "-A FORWARD -o {name} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ));
        if !n.internal {
            line(&format!("-A FORWARD -i {name} ! -o {name} -j ACCEPT"));
        }
        let icc = if n.icc { "ACCEPT" } else { "DROP" };
        line(&format!("-A FORWARD -i {name} -o {name} -j {icc}"));
    }
    for n in &bridges {
        let (name, subnet) = (&n.name, n.subnet);
        if n.internal {
            line(&format!("-A {ISOLATION_1} ! -s {subnet} -o {name} -j DROP"));
            line(&format!("-A {ISOLATION_1} ! -d {subnet} -i {name} -j DROP"));
        }
        line(&format!(
            "-A {ISOLATION_1} -i {name} ! -o {name} -j {ISOLATION_2}"
        ));
    }
    line(&format!("-A {ISOLATION_1} -j RETURN"));
    for n in &bridges {
        line(&format!("-A {ISOLATION_2} -o {} -j DROP", n.name));
    }
    line(&format!("-A {ISOLATION_2} -j RETURN"));
    line(&format!("-A {USER_CHAIN} -j RETURN"));
    line("COMMIT");
    t
}
