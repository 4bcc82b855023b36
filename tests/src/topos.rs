//! Topologies more than one scenario test builds on.

/// The uplink of the routed topologies: an AF_PACKET port on veth-up with
/// 192.0.2.10/24 and a fixed MAC, its router 192.0.2.1.
pub const UPLINK: &str = r#"
[uplink]
kind = "afpacket"
interface = "veth-up"
ip = "192.0.2.10/24"
gateway = "192.0.2.1"
mac = "02:00:00:00:0a:0a"
"#;

/// web (10.10.0.2) on network front with port 8080 published to its 80,
/// behind `UPLINK`: what leaves is masqueraded and routed to the uplink's
/// router, what comes in for 8080 is translated to web. `extra` is
/// appended (more ports, or tables).
pub fn published_web(extra: &str) -> String {
    format!(
        r#"
[[network]]
name = "front"
subnet = "10.10.0.0/24"

[[port]]
name = "web"
network = "front"
ip = "10.10.0.2"
publish = ["8080:80/tcp"]
{UPLINK}{extra}"#
    )
}

/// Network ov (10.20.0.0/24) with tap port a (10.20.0.2) and vxlan port
/// tun (VNI 42) towards VTEPs 198.18.0.2 and 198.18.0.3 from 198.18.0.1;
/// `extra` is appended (more keys of tun, or more tables).
pub fn overlay(extra: &str) -> String {
    format!(
        r#"
[[network]]
name = "ov"
subnet = "10.20.0.0/24"
gateway = "10.20.0.1"

[[port]]
name = "a"
network = "ov"
ip = "10.20.0.2"

[[port]]
name = "tun"
network = "ov"
kind = "vxlan"
vni = 42
remote = ["198.18.0.2", "198.18.0.3"]
local = "198.18.0.1"
{extra}"#
    )
}

/// Endpoints a (10.9.0.2) and b (10.9.0.3) on network lan (10.9.0.0/24)
/// over parent `parent`; `driver` is "macvlan", "ipvlan" (L2) or
/// "ipvlan-l3".
pub fn parented(driver: &str, parent: &str) -> String {
    let mode = match driver {
        "ipvlan-l3" => "driver = \"ipvlan\"\nmode = \"l3\"",
        "ipvlan" => "driver = \"ipvlan\"\nmode = \"l2\"",
        _ => "driver = \"macvlan\"",
    };
    format!(
        r#"
[[network]]
name = "lan"
{mode}
parent = "{parent}"
subnet = "10.9.0.0/24"
gateway = "10.9.0.1"

[[port]]
name = "a"
network = "lan"
ip = "10.9.0.2"

[[port]]
name = "b"
network = "lan"
ip = "10.9.0.3"
"#
    )
}
