//! The I/O layer: devices, namespaces and the poll loop. The only place that
//! makes system calls, and the only place with `unsafe`.

pub mod afpacket;
mod batch;
pub mod control;
pub mod datapath;
pub mod group;
pub mod lab;
pub mod metrics;
pub mod netns;
pub mod netns_ops;
pub mod notify;
pub mod privileges;
mod ring;
pub mod stop;
mod sys;
pub mod tap;
pub mod vxlan;

/// Whether we run as root, which building namespaces and TAPs needs.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
