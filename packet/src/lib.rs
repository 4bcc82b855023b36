//! Zero-copy views, owned representations, checksums and flow keys for the
//! frames vswitch handles.
//!
//! Each wire module has a view `Foo<T: AsRef<[u8]>>` over a buffer and,
//! where the switch builds that kind of packet, an owned `FooRepr`.
//!
//! The contract every view keeps: `new_unchecked` checks nothing;
//! `new_checked` runs `check_len`, and once `check_len()` has returned `Ok`,
//! no accessor or setter panics, whatever the bytes say. On a buffer that
//! was never checked, accessors may panic. Setters exist only where
//! `T: AsMut<[u8]>`, and none of them changes a length field, so a check
//! stays valid after any edit. A `Repr`'s `emit` panics when given a buffer
//! shorter than its `buffer_len()`: that is the caller's sizing, not input.
//!
//! `Parsed::parse` runs the views over a whole frame in one pass and is the
//! entry point for the switch.

pub mod arp;
mod be;
pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod flow;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod ndp;
pub mod parse;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vlan_id;
pub mod vnet;
pub mod vxlan;

#[cfg(test)]
mod fixtures;

pub use error::{Error, ErrorKind, Layer, Result};
pub use flow::FlowKey;
pub use mac::MacAddr;
pub use parse::{Parsed, L3, L4};
pub use tcp::TcpFlags;
pub use vlan_id::VlanId;
