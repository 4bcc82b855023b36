//! Checked big-endian field access on raw buffers. The rewrite works on
//! raw offsets rather than `packet`'s views because it must edit headers
//! the views refuse whole: a first fragment whose UDP length runs past it,
//! a TCP header cut short inside an ICMP error's quote.

/// The 16-bit field at `at`, if the buffer holds it.
pub(crate) fn get16(b: &[u8], at: usize) -> Option<u16> {
    let f = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([f[0], f[1]]))
}

/// Writes `new` at `at` and returns what was there, if the buffer holds it.
pub(crate) fn swap16(b: &mut [u8], at: usize, new: u16) -> Option<u16> {
    let f = b.get_mut(at..at.checked_add(2)?)?;
    let old = u16::from_be_bytes([f[0], f[1]]);
    f.copy_from_slice(&new.to_be_bytes());
    Some(old)
}

/// As `swap16` for a 32-bit field.
pub(crate) fn swap32(b: &mut [u8], at: usize, new: u32) -> Option<u32> {
    let f = b.get_mut(at..at.checked_add(4)?)?;
    let old = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
    f.copy_from_slice(&new.to_be_bytes());
    Some(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_none_and_writes_nothing() {
        let mut b = [1u8, 2, 3];
        assert_eq!(get16(&b, 1), Some(0x0203));
        assert_eq!(get16(&b, 2), None);
        assert_eq!(get16(&b, usize::MAX), None);
        assert_eq!(swap16(&mut b, 2, 0xffff), None);
        assert_eq!(swap32(&mut b, 0, 0), None);
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(swap16(&mut b, 0, 0xaabb), Some(0x0102));
        assert_eq!(b, [0xaa, 0xbb, 3]);
    }
}
