//! 802.1Q / 802.1ad tags, and pushing and popping them on whole frames.
//!
//! A tag is a TPID (0x8100 or 0x88a8, read as the EtherType before it) and
//! the 4 bytes `VlanTag` views: TCI (PCP 3 bits, DEI 1 bit, VID 12 bits) and
//! the inner EtherType.

use crate::be;
use crate::error::{Error, Layer, Result};
use crate::ethernet::{self, ethertype};
use crate::VlanId;

/// Bytes a tag adds to a frame, TPID included.
pub const TAG_LEN: usize = 4;

/// Stacked tags `Parsed::parse` accepts: an 802.1ad S-tag and an 802.1Q C-tag.
pub const MAX_TAGS: usize = 2;

/// Where the TPID of the outermost tag goes: right after the two MACs.
const TPID_OFFSET: usize = 12;

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const LEN: usize = 4;
}

/// A view of the 4 bytes following a TPID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::LEN {
            return Err(Error::truncated(Layer::Vlan, field::LEN, len));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn tci(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point, 0..=7.
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// The raw 12-bit VID: 0 is a priority tag, so this is not a `VlanId`.
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The EtherType of what the tag encapsulates.
    pub fn ethertype(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// The tag and everything after it.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    pub fn set_tci(&mut self, tci: u16) {
        be::put_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    /// Keeps PCP and DEI; only the low 12 bits of `vid` are used.
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Keeps DEI and VID; only the low 3 bits of `pcp` are used.
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 0x7) << 13);
        self.set_tci(tci);
    }

    pub fn set_dei(&mut self, dei: bool) {
        let tci = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        be::put_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }
}

/// Whether `ethertype` is a TPID that starts a tag.
pub fn is_tpid(ethertype: u16) -> bool {
    ethertype == ethertype::VLAN || ethertype == ethertype::QINQ
}

/// Inserts an 802.1Q tag (TPID 0x8100) after the MACs, outside any tag the
/// frame already has. The Vec grows by 4 bytes and the rest shifts in place.
/// A frame shorter than an Ethernet header is left unchanged: `Parsed::parse`
/// would have rejected it, and the result could not be popped again.
pub fn push_tag(frame: &mut Vec<u8>, vid: VlanId, pcp: u8) {
    push_tag_with_tpid(frame, ethertype::VLAN, vid, pcp);
}

/// As `push_tag` with a chosen TPID, e.g. `ethertype::QINQ` for an S-tag.
pub fn push_tag_with_tpid(frame: &mut Vec<u8>, tpid: u16, vid: VlanId, pcp: u8) {
    if frame.len() < ethernet::HEADER_LEN {
        return;
    }
    let tci = (u16::from(pcp & 0x7) << 13) | vid.get();
    let old_len = frame.len();
    frame.resize(old_len + TAG_LEN, 0);
    frame.copy_within(TPID_OFFSET..old_len, TPID_OFFSET + TAG_LEN);
    be::put_u16(frame, TPID_OFFSET, tpid);
    be::put_u16(frame, TPID_OFFSET + 2, tci);
}

/// Removes the outermost 802.1Q or 802.1ad tag, returning its raw VID; `None`
/// (frame unchanged) when the frame carries no complete tag.
pub fn pop_tag(frame: &mut Vec<u8>) -> Option<u16> {
    let tpid = frame.get(TPID_OFFSET..TPID_OFFSET + 2)?;
    if !is_tpid(u16::from_be_bytes([tpid[0], tpid[1]])) {
        return None;
    }
    // The tag's inner EtherType must be there too, or the frame has no
    // header left once the tag is gone.
    let tag = VlanTag::new_checked(frame.get(TPID_OFFSET + 2..)?).ok()?;
    let vid = tag.vid();
    frame.copy_within(TPID_OFFSET + TAG_LEN.., TPID_OFFSET);
    frame.truncate(frame.len() - TAG_LEN);
    Some(vid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::EthernetFrame;
    use crate::fixtures::{
        ARP_REQUEST, ICMPV4_ECHO_REQUEST, QINQ_ARP_REQUEST, VLAN100_ICMPV4_ECHO_REQUEST,
    };

    #[test]
    fn deconstruct() {
        let eth = EthernetFrame::new_checked(&VLAN100_ICMPV4_ECHO_REQUEST[..]).unwrap();
        assert_eq!(eth.ethertype(), ethertype::VLAN);
        let tag = VlanTag::new_checked(eth.payload()).unwrap();
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.pcp(), 0);
        assert!(!tag.dei());
        assert_eq!(tag.ethertype(), ethertype::IPV4);
        assert_eq!(tag.payload(), &ICMPV4_ECHO_REQUEST[14..]);
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut b = [0x00, 0x64, 0x08, 0x00];
        let mut tag = VlanTag::new_checked(&mut b[..]).unwrap();
        tag.set_pcp(5);
        tag.set_dei(true);
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (5, true, 100));
        tag.set_vid(0xffff);
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (5, true, 4095));
        tag.set_pcp(0xff);
        tag.set_dei(false);
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (7, false, 4095));
        tag.set_ethertype(ethertype::ARP);
        assert_eq!(tag.ethertype(), ethertype::ARP);
    }

    #[test]
    fn push_then_pop_round_trips() {
        let mut f = ICMPV4_ECHO_REQUEST.to_vec();
        push_tag(&mut f, VlanId::try_new(100).unwrap(), 0);
        assert_eq!(f, VLAN100_ICMPV4_ECHO_REQUEST);
        assert_eq!(pop_tag(&mut f), Some(100));
        assert_eq!(f, ICMPV4_ECHO_REQUEST);
        assert_eq!(pop_tag(&mut f), None);
        assert_eq!(f, ICMPV4_ECHO_REQUEST);
    }

    #[test]
    fn push_and_pop_stack_outermost_first() {
        let mut f = ARP_REQUEST.to_vec();
        push_tag(&mut f, VlanId::try_new(100).unwrap(), 0);
        push_tag_with_tpid(&mut f, ethertype::QINQ, VlanId::try_new(200).unwrap(), 0);
        assert_eq!(f, QINQ_ARP_REQUEST);
        assert_eq!(pop_tag(&mut f), Some(200));
        assert_eq!(pop_tag(&mut f), Some(100));
        assert_eq!(f, ARP_REQUEST);
    }

    #[test]
    fn push_sets_pcp() {
        let mut f = ARP_REQUEST.to_vec();
        push_tag(&mut f, VlanId::try_new(4094).unwrap(), 6);
        let tag = VlanTag::new_checked(&f[14..]).unwrap();
        assert_eq!((tag.pcp(), tag.vid()), (6, 4094));
    }

    #[test]
    fn short_frames_are_left_alone() {
        let mut f = vec![0; 13];
        push_tag(&mut f, VlanId::try_new(1).unwrap(), 0);
        assert_eq!(f.len(), 13);
        // A TPID without the rest of its tag.
        let mut f = VLAN100_ICMPV4_ECHO_REQUEST[..17].to_vec();
        assert_eq!(pop_tag(&mut f), None);
        assert_eq!(f.len(), 17);
        let mut f = Vec::new();
        assert_eq!(pop_tag(&mut f), None);
    }
}
