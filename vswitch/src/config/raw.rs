//! topo.toml as written: one struct per table, field names equal to the keys.
//!
//! Values that validation must check keep their position (`Spanned`) and stay
//! loosely typed (strings, i64), so a bad value becomes a precise error from
//! the validation stage, which reports every problem at once, instead of a
//! serde error that stops at the first one.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Topo {
    pub switch: Option<S<Switch>>,
    #[serde(default)]
    pub network: Vec<S<Network>>,
    #[serde(default)]
    pub port: Vec<S<Port>>,
    pub uplink: Option<S<Uplink>>,
    #[serde(default)]
    pub expect: Vec<S<Expect>>,
    pub rules: Option<S<Rules>>,
    #[serde(default)]
    pub fdb: Vec<S<Fdb>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Switch {
    pub name: Option<S<String>>,
    pub threads: Option<S<i64>>,
    pub fdb_aging: Option<S<i64>>,
    pub fdb_max: Option<S<i64>>,
    pub conntrack_max: Option<S<i64>>,
    pub storm_pps: Option<S<i64>>,
    pub control_group: Option<S<String>>,
    pub busy_poll_us: Option<S<i64>>,
    #[serde(default)]
    pub cpus: Vec<S<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Network {
    pub name: S<String>,
    pub driver: Option<S<String>>,
    pub subnet: S<String>,
    pub gateway: Option<S<String>>,
    pub vlan: Option<S<i64>>,
    pub icc: Option<bool>,
    pub internal: Option<bool>,
    pub masquerade: Option<bool>,
    pub mode: Option<S<String>>,
    pub parent: Option<S<String>>,
    pub mtu: Option<S<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Port {
    pub name: S<String>,
    pub network: S<String>,
    pub kind: Option<S<String>>,
    pub netns: Option<S<String>>,
    pub interface: Option<S<String>>,
    pub ip: Option<S<String>>,
    pub mac: Option<S<String>>,
    #[serde(default)]
    pub publish: Vec<S<String>>,
    #[serde(default)]
    pub aliases: Vec<S<String>>,
    pub vlan: Option<S<i64>>,
    #[serde(default)]
    pub trunk: Vec<S<i64>>,
    pub vni: Option<S<i64>>,
    pub remote: Option<S<OneOrMany>>,
    pub local: Option<S<String>>,
    pub learn_peers: Option<S<bool>>,
    pub encrypt: Option<S<bool>>,
    pub key_file: Option<S<String>>,
    pub mtu: Option<S<i64>>,
    pub port_security: Option<bool>,
    pub storm_pps: Option<S<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Uplink {
    pub kind: Option<S<String>>,
    pub interface: S<String>,
    pub ip: S<String>,
    pub gateway: Option<S<String>>,
    pub mac: Option<S<String>>,
    pub dns: Option<S<OneOrMany>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    pub from: S<String>,
    pub packet: S<String>,
    pub verdict: S<String>,
    pub to: Option<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rules {
    pub text: Option<S<String>>,
    pub file: Option<S<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fdb {
    pub mac: S<String>,
    pub port: S<String>,
    pub vlan: Option<S<i64>>,
    pub remote: Option<S<String>>,
}

/// A key that takes a string or an array of strings (`remote`).
///
/// Hand-written rather than `#[serde(untagged)]`: untagged buffers the value
/// and would lose the element positions.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    /// A bare string; its position is the enclosing `Spanned`'s.
    One(String),
    Many(Vec<S<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        d.deserialize_any(V)
    }
}
