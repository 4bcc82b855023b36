//! Shared helpers for the scenario tests (frame builders, a switch built from
//! a topo.toml string) and the end-to-end tests (namespaces, a running
//! `vswitch` process).

pub mod alloc_count;
pub mod captures;
pub mod e2e;
pub mod frames;
pub mod harness;
pub mod hostile;
pub mod topos;
