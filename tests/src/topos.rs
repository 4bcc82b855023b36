//! Topologies more than one scenario test builds on.

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
