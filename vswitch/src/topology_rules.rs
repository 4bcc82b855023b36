//! The rules the switch writes for its topology, in iptables-restore text,
//! laid out as Docker lays out its own: a user chain evaluated first, then
//! isolation between networks, then what each network lets through; in the
//! nat table, MASQUERADE out of the uplink and a DNAT per published port.
//! They load beneath the user's `[rules]`, so everything here is visible in
//! `vswitch rules` and can be overridden there.

use crate::config::{Config, Driver, Network, Port};

/// Jumped to first from FORWARD: the place for rules that must win over
/// isolation, like DOCKER-USER.
pub const USER_CHAIN: &str = "VSWITCH-USER";
const ISOLATION_1: &str = "VSWITCH-ISOLATION-STAGE-1";
const ISOLATION_2: &str = "VSWITCH-ISOLATION-STAGE-2";
/// Published ports: DNAT in nat, the matching accept in filter (Docker's
/// DOCKER chains).
const PUBLISHED: &str = "VSWITCH";

/// The name rules use for the uplink, as port and as network.
pub const UPLINK: &str = "uplink";

/// Where errors in the generated text would point.
pub const ORIGIN: &str = "<generated>";

/// The filter and nat tables for `config`'s bridge networks.
pub fn text(config: &Config) -> String {
    let mut t = filter(config);
    t.push_str(&nat(config));
    t
}

fn bridges(config: &Config) -> impl Iterator<Item = &Network> {
    config
        .networks
        .iter()
        .filter(|n| n.driver == Driver::Bridge)
}

/// Every published range of a port on a bridge network, with the network.
fn published(config: &Config) -> impl Iterator<Item = (&Port, &Network)> {
    config.ports.iter().filter_map(|p| {
        let net = &config.networks[p.network_index];
        (net.driver == Driver::Bridge && !p.publish.is_empty() && p.ip.is_some())
            .then_some((p, net))
    })
}

/// FORWARD's policy is DROP, as Docker sets it; each network lets its own
/// endpoints talk (unless `icc = false`) and traffic out of it leave (unless
/// `internal`), published ports in, and isolation drops what one network
/// sends towards another.
fn filter(config: &Config) -> String {
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("*filter");
    line(":INPUT ACCEPT [0:0]");
    line(":FORWARD DROP [0:0]");
    line(":OUTPUT ACCEPT [0:0]");
    for chain in [PUBLISHED, USER_CHAIN, ISOLATION_1, ISOLATION_2] {
        line(&format!(":{chain} - [0:0]"));
    }
    line(&format!("-A FORWARD -j {USER_CHAIN}"));
    line(&format!("-A FORWARD -j {ISOLATION_1}"));
    for n in bridges(config) {
        let name = &n.name;
        line(&format!(
            "-A FORWARD -o {name} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ));
        line(&format!("-A FORWARD -o {name} -j {PUBLISHED}"));
        if !n.internal {
            line(&format!("-A FORWARD -i {name} ! -o {name} -j ACCEPT"));
        }
        let icc = if n.icc { "ACCEPT" } else { "DROP" };
        line(&format!("-A FORWARD -i {name} -o {name} -j {icc}"));
    }
    // A macvlan/ipvlan network is its endpoints and its parent's segment;
    // the switch carries traffic among them, as the kernel's drivers do
    // without a bridge hook.
    for n in config
        .networks
        .iter()
        .filter(|n| n.driver != Driver::Bridge)
    {
        line(&format!("-A FORWARD -i {0} -o {0} -j ACCEPT", n.name));
    }
    for (p, n) in published(config) {
        for publish in &p.publish {
            let (ip, name) = (p.ip.unwrap_or(n.gateway), &n.name);
            let proto = publish.protocol.as_str();
            line(&format!(
                "-A {PUBLISHED} -d {ip}/32 ! -i {name} -o {name} -p {proto} -m {proto} --dport {} -j ACCEPT",
                ports(publish.ports)
            ));
        }
    }
    for n in bridges(config) {
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
    for n in bridges(config) {
        line(&format!("-A {ISOLATION_2} -o {} -j DROP", n.name));
    }
    line(&format!("-A {ISOLATION_2} -j RETURN"));
    line(&format!("-A {USER_CHAIN} -j RETURN"));
    line("COMMIT");
    t
}

/// MASQUERADE for what leaves a network (with `masquerade`, not
/// `internal`) by the uplink; a DNAT per published range for what comes to
/// the switch's addresses, and the MASQUERADE that makes a container
/// reaching its own published port get the replies (hairpin).
fn nat(config: &Config) -> String {
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("*nat");
    line(":PREROUTING ACCEPT [0:0]");
    line(":INPUT ACCEPT [0:0]");
    line(":OUTPUT ACCEPT [0:0]");
    line(":POSTROUTING ACCEPT [0:0]");
    if published(config).next().is_some() {
        line(&format!(":{PUBLISHED} - [0:0]"));
        line(&format!(
            "-A PREROUTING -m addrtype --dst-type LOCAL -j {PUBLISHED}"
        ));
    }
    if config.uplink.is_some() {
        for n in bridges(config).filter(|n| n.masquerade && !n.internal) {
            line(&format!(
                "-A POSTROUTING -s {} -o {UPLINK} -j MASQUERADE",
                n.subnet
            ));
        }
    }
    for (p, n) in published(config) {
        let ip = p.ip.unwrap_or(n.gateway);
        for publish in &p.publish {
            let proto = publish.protocol.as_str();
            line(&format!(
                "-A POSTROUTING -s {ip}/32 -d {ip}/32 -p {proto} -m {proto} --dport {} -j MASQUERADE",
                ports(publish.ports)
            ));
        }
    }
    for (p, n) in published(config) {
        let ip = p.ip.unwrap_or(n.gateway);
        for publish in &p.publish {
            let proto = publish.protocol.as_str();
            let dst = publish
                .host_ip
                .map(|h| format!(" -d {h}/32"))
                .unwrap_or_default();
            // One rule per port, as Docker writes them: a DNAT to a range
            // would pick any port of it, not the matching one.
            let (host, to) = (publish.host_ports.0, publish.ports.0);
            for i in 0..=publish.ports.1 - to {
                line(&format!(
                    "-A {PUBLISHED}{dst} -p {proto} -m {proto} --dport {} -j DNAT --to-destination {ip}:{}",
                    host + i,
                    to + i
                ));
            }
        }
    }
    line("COMMIT");
    t
}

/// `80` or `9000:9001`, as `--dport` takes them.
fn ports((lo, hi): (u16, u16)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}:{hi}")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config;

    #[test]
    fn publish_forms_become_one_dnat_per_port() {
        let topo = r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"
publish = ["127.0.0.1:5353:53/udp", "9000-9001:7000-7001"]

[uplink]
kind = "afpacket"
interface = "veth-up"
ip = "192.0.2.10/24"
gateway = "192.0.2.1"
"#;
        let c = config::parse(topo, Path::new("t.toml")).expect("topology");
        let text = super::text(&c);
        let nat: Vec<&str> = text
            .split("*nat\n")
            .nth(1)
            .expect("a nat table")
            .lines()
            .filter(|l| l.starts_with("-A"))
            .collect();
        assert_eq!(
            nat,
            [
                "-A PREROUTING -m addrtype --dst-type LOCAL -j VSWITCH",
                "-A POSTROUTING -s 10.10.0.0/24 -o uplink -j MASQUERADE",
                "-A POSTROUTING -s 10.10.0.2/32 -d 10.10.0.2/32 -p udp -m udp --dport 53 -j MASQUERADE",
                "-A POSTROUTING -s 10.10.0.2/32 -d 10.10.0.2/32 -p tcp -m tcp --dport 7000:7001 -j MASQUERADE",
                "-A VSWITCH -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.10.0.2:53",
                "-A VSWITCH -p tcp -m tcp --dport 9000 -j DNAT --to-destination 10.10.0.2:7000",
                "-A VSWITCH -p tcp -m tcp --dport 9001 -j DNAT --to-destination 10.10.0.2:7001",
            ]
        );
        assert!(text.contains(
            "-A VSWITCH -d 10.10.0.2/32 ! -i front -o front -p tcp -m tcp --dport 7000:7001 -j ACCEPT\n"
        ));
        // The text loads: every chain named, every option known.
        assert!(crate::firewall::load_rules(&c).is_ok());
    }
}
