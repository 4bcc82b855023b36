//! vswitch: a userspace virtual switch for containers.
//!
//! `Switch` is the sans-IO pipeline; `io` moves frames between devices and
//! it; `config` turns topo.toml into the validated configuration both use.

pub mod capture;
pub mod config;
pub mod control;
pub mod dhcp;
pub mod dns;
pub mod fast_path;
pub mod fdb;
pub mod firewall;
pub mod flow_cache;
pub mod flowspec;
pub mod gateway;
pub mod io;
pub mod ipam;
pub mod live_capture;
pub mod metrics;
pub mod neigh;
pub mod netfilter;
pub mod output;
pub mod parent;
pub mod pcap;
pub mod pcap_filter;
pub mod port;
pub mod port_security;
pub mod reject;
pub mod replay;
pub mod services;
pub mod stats;
pub mod storm;
pub mod switch;
pub mod tcp_responder;
pub mod time;
pub mod topology_rules;
pub mod trace;
pub mod vxlan;

pub use output::{Emit, Output, Payload, TagEdit};
pub use port::PortId;
pub use stats::DropReason;
pub use switch::{Switch, Verdict};
pub use time::Timestamp;
