//! Zero-copy views, owned representations, checksums and flow keys for the
//! frames vswitch handles.

pub mod mac;
pub mod vlan_id;

pub use mac::MacAddr;
pub use vlan_id::VlanId;
