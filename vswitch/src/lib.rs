//! vswitch.
