//! The 12-bit VLAN identifier, as a type so an out-of-range id cannot exist.

use core::fmt;

/// A VLAN id in 1..=4094 (0 means "priority tag only" and 4095 is reserved).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VlanId(u16);

impl VlanId {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;

    pub fn try_new(id: u16) -> Option<VlanId> {
        (Self::MIN..=Self::MAX).contains(&id).then_some(VlanId(id))
    }

    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(VlanId::try_new(0).is_none());
        assert!(VlanId::try_new(4095).is_none());
        assert_eq!(VlanId::try_new(1).map(VlanId::get), Some(1));
        assert_eq!(VlanId::try_new(4094).map(VlanId::get), Some(4094));
    }
}
