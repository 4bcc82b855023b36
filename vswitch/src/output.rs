//! What `Switch::process` asks the I/O layer to send.
//!
//! Forwarded frames are not copied: an `Emit` names the ingress buffer plus
//! the 802.1Q edit to apply on the way out, and the I/O layer writes the
//! result as up to three slices (writev). Frames the switch builds itself
//! (ARP replies, ICMP) live in the output's arena, which is reused across
//! calls, so steady-state processing does not allocate.

use core::ops::Range;

use packet::ethernet::ethertype;

use crate::port::PortId;
use crate::vxlan::TunnelDst;

/// The 802.1Q edit applied to a frame as it leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagEdit {
    Keep,
    /// Insert a tag with this VID after the MAC addresses.
    Push(u16),
    /// Remove the outermost tag.
    Pop,
    /// Replace the outermost tag's VID.
    Retag(u16),
}

/// Where an emitted frame's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The frame given to `process`, as edited in place by the pipeline.
    Ingress,
    /// Bytes in the output arena.
    Built(Range<usize>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emit {
    pub port: PortId,
    pub payload: Payload,
    pub tag: TagEdit,
    /// For a vxlan port: the VTEP this copy goes to.
    pub tunnel: Option<TunnelDst>,
}

/// The frames one `process` call sends. Cleared by the caller between calls.
#[derive(Default)]
pub struct Output {
    arena: Vec<u8>,
    emits: Vec<Emit>,
}

const MACS: usize = 12;

impl Output {
    pub fn new() -> Output {
        Output::default()
    }

    pub fn clear(&mut self) {
        self.arena.clear();
        self.emits.clear();
    }

    pub fn emits(&self) -> &[Emit] {
        &self.emits
    }

    pub fn is_empty(&self) -> bool {
        self.emits.is_empty()
    }

    pub(crate) fn forward(&mut self, port: PortId, tag: TagEdit) {
        self.emits.push(Emit {
            port,
            payload: Payload::Ingress,
            tag,
            tunnel: None,
        });
    }

    /// Builds a frame of `len` bytes in the arena with `fill` and sends it to
    /// `port`. Returns the arena range so a flood can send it again.
    pub(crate) fn build(
        &mut self,
        port: PortId,
        tag: TagEdit,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Range<usize> {
        let start = self.arena.len();
        self.arena.resize(start + len, 0);
        fill(&mut self.arena[start..]);
        let range = start..start + len;
        self.emits.push(Emit {
            port,
            payload: Payload::Built(range.clone()),
            tag,
            tunnel: None,
        });
        range
    }

    /// The bytes of a frame built in the arena.
    pub(crate) fn built(&self, range: Range<usize>) -> &[u8] {
        &self.arena[range]
    }

    /// Takes back the frame `build` just queued (an OUTPUT rule refused it).
    pub(crate) fn unbuild(&mut self, range: Range<usize>) {
        self.emits.pop();
        self.arena.truncate(range.start);
    }

    /// Sends a frame already built in the arena to another port too.
    pub(crate) fn again(&mut self, port: PortId, tag: TagEdit, range: Range<usize>) {
        self.emits.push(Emit {
            port,
            payload: Payload::Built(range),
            tag,
            tunnel: None,
        });
    }

    /// Sends emit `i` to the VTEP `to`.
    pub(crate) fn address(&mut self, i: usize, to: TunnelDst) {
        if let Some(e) = self.emits.get_mut(i) {
            e.tunnel = Some(to);
        }
    }

    /// Sends what emit `i` sends to the VTEP `to` as well.
    pub(crate) fn copy_to(&mut self, i: usize, to: TunnelDst) {
        if let Some(e) = self.emits.get(i) {
            let copy = Emit {
                tunnel: Some(to),
                ..e.clone()
            };
            self.emits.push(copy);
        }
    }

    /// Gives emit `i` a copy of its frame of its own in the arena and
    /// returns it, for an edit only that port's copy may see.
    pub(crate) fn detach(&mut self, i: usize, ingress: &[u8]) -> Option<&mut [u8]> {
        let start = self.arena.len();
        match self.emits.get(i)?.payload.clone() {
            Payload::Ingress => self.arena.extend_from_slice(ingress),
            Payload::Built(r) => self.arena.extend_from_within(r),
        }
        let range = start..self.arena.len();
        self.emits[i].payload = Payload::Built(range.clone());
        Some(&mut self.arena[range])
    }

    /// The frame `e` sends, as up to three slices to write in order.
    /// `tag` is scratch space for an inserted tag.
    pub fn parts<'a>(&'a self, e: &Emit, ingress: &'a [u8], tag: &'a mut [u8; 4]) -> [&'a [u8]; 3] {
        let frame = match &e.payload {
            Payload::Ingress => ingress,
            Payload::Built(r) => self.arena.get(r.clone()).unwrap_or_default(),
        };
        if frame.len() < MACS {
            return [frame, &[], &[]];
        }
        let (macs, rest) = frame.split_at(MACS);
        let outer_tagged = rest.len() >= 4
            && matches!(
                u16::from_be_bytes([rest[0], rest[1]]),
                ethertype::VLAN | ethertype::QINQ
            );
        match e.tag {
            TagEdit::Keep => [frame, &[], &[]],
            TagEdit::Push(vid) => {
                *tag = vlan_tag(ethertype::VLAN, vid);
                [macs, &tag[..], rest]
            }
            TagEdit::Pop if outer_tagged => [macs, &rest[4..], &[]],
            TagEdit::Retag(vid) if outer_tagged => {
                let tpid = u16::from_be_bytes([rest[0], rest[1]]);
                let pcp_dei = rest[2] & 0xf0;
                *tag = vlan_tag(tpid, vid);
                tag[2] |= pcp_dei;
                [macs, &tag[..], &rest[4..]]
            }
            TagEdit::Pop | TagEdit::Retag(_) => [frame, &[], &[]],
        }
    }

    /// The frame `e` sends, in one buffer (tests and slow paths).
    pub fn to_vec(&self, e: &Emit, ingress: &[u8]) -> Vec<u8> {
        let mut tag = [0u8; 4];
        self.parts(e, ingress, &mut tag).concat()
    }
}

fn vlan_tag(tpid: u16, vid: u16) -> [u8; 4] {
    let [t0, t1] = tpid.to_be_bytes();
    let [v0, v1] = (vid & 0x0fff).to_be_bytes();
    [t0, t1, v0, v1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tagged: Option<u16>) -> Vec<u8> {
        let mut f = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2];
        if let Some(v) = tagged {
            f.extend_from_slice(&vlan_tag(ethertype::VLAN, v));
        }
        f.extend_from_slice(&[0x08, 0x00, 0xaa, 0xbb]);
        f
    }

    fn emit(tag: TagEdit) -> Emit {
        Emit {
            port: PortId(1),
            payload: Payload::Ingress,
            tag,
            tunnel: None,
        }
    }

    #[test]
    fn tag_edits() {
        let out = Output::new();
        assert_eq!(
            out.to_vec(&emit(TagEdit::Push(10)), &frame(None)),
            frame(Some(10))
        );
        assert_eq!(
            out.to_vec(&emit(TagEdit::Pop), &frame(Some(10))),
            frame(None)
        );
        assert_eq!(
            out.to_vec(&emit(TagEdit::Retag(20)), &frame(Some(10))),
            frame(Some(20))
        );
        assert_eq!(
            out.to_vec(&emit(TagEdit::Keep), &frame(Some(10))),
            frame(Some(10))
        );
        // Popping an untagged frame leaves it alone rather than eating its ethertype.
        assert_eq!(out.to_vec(&emit(TagEdit::Pop), &frame(None)), frame(None));
    }

    #[test]
    fn a_detached_copy_is_edited_alone() {
        let mut out = Output::new();
        let ingress = frame(None);
        out.forward(PortId(1), TagEdit::Keep);
        out.forward(PortId(2), TagEdit::Push(7));
        out.detach(1, &ingress).unwrap()[0] = 0xee;
        assert_eq!(out.to_vec(&out.emits()[0].clone(), &ingress), ingress);
        let mut edited = frame(Some(7));
        edited[0] = 0xee;
        assert_eq!(out.to_vec(&out.emits()[1].clone(), &ingress), edited);
        assert!(out.detach(2, &ingress).is_none());
    }

    #[test]
    fn built_frames_are_reused_across_calls() {
        let mut out = Output::new();
        out.build(PortId(2), TagEdit::Keep, 4, |b| {
            b.copy_from_slice(&[9, 9, 9, 9])
        });
        assert_eq!(out.to_vec(&out.emits()[0].clone(), &[]), vec![9, 9, 9, 9]);
        out.clear();
        assert!(out.is_empty());
    }
}
