//! The receive ring of an AF_PACKET socket (PACKET_RX_RING, TPACKET_V2): the
//! kernel writes each frame into memory mapped into both sides and flips the
//! frame's status word to hand it over; we copy it out and flip it back. No
//! system call per frame.
//!
//! V2 rather than V3: a V3 block wakes the reader only when it fills or its
//! retire timer fires, which would add up to that timeout to every frame of
//! a quiet flow (a ping, a handshake); V2 wakes the reader per frame. Slots
//! are fixed at just over 64 KB so a TSO super-frame arrives whole, with its
//! virtio-net header in front of the MAC header (the kernel writes it there
//! when PACKET_VNET_HDR was set before the ring was made).
//!
//! Layout of one slot, offsets from its start (`tpacket2_hdr`, then the
//! kernel's `sockaddr_ll`, then padding, then the frame at `tp_mac`):
//!
//! ```text
//! 0 status | 4 len | 8 snaplen | 12 mac:u16 | 14 net:u16 | 16 sec | 20 nsec
//! | 24 vlan_tci:u16 | 26 vlan_tpid:u16 | ... | mac-10 vnet header | mac frame
//! ```
//!
//! One datapath thread reads a ring; its socket keeps it under a lock.

use std::cell::Cell;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use packet::vlan;
use packet::vnet::{self, VnetHdr};

use super::afpacket::HEADROOM;
use super::sys::setsockopt;

/// Power-of-two pages, so the kernel's allocation wastes none.
const BLOCK_SIZE: usize = 1 << 20;
const BLOCK_NR: usize = 4;
/// Fits the slot header, the virtio-net header and a 64 KB super-frame with
/// a tag (65,629 bytes at most), 15 to a block; a multiple of 16
/// (TPACKET_ALIGNMENT).
const FRAME_SIZE: usize = BLOCK_SIZE / 15 / 16 * 16;
const FRAMES_PER_BLOCK: usize = BLOCK_SIZE / FRAME_SIZE;
const FRAME_NR: usize = BLOCK_NR * FRAMES_PER_BLOCK;

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1 << 0;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// Field offsets in a `tpacket2_hdr`.
mod field {
    use std::ops::Range;
    pub const STATUS: Range<usize> = 0..4;
    pub const LEN: Range<usize> = 4..8;
    pub const SNAPLEN: Range<usize> = 8..12;
    pub const MAC: Range<usize> = 12..14;
    pub const VLAN_TCI: Range<usize> = 24..26;
    pub const VLAN_TPID: Range<usize> = 26..28;
    /// `TPACKET2_HDRLEN`: the header, aligned, then a `sockaddr_ll`; the
    /// frame (and its virtio-net header) never start before it.
    pub const END: usize = 32 + 20;
}

pub struct RxRing {
    base: NonNull<u8>,
    /// Slot the kernel fills after the last one we took.
    next: Cell<usize>,
}

// The ring is plain memory owned by this value (unmapped on drop). It is
// not Sync (Cell), so one thread at a time reads it.
// SAFETY: moving it to another thread moves that ownership with it.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Makes the ring on `fd` and maps it. PACKET_VNET_HDR, if wanted, must
    /// already be set.
    pub fn new(fd: &OwnedFd) -> io::Result<RxRing> {
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as libc::c_uint,
            tp_block_nr: BLOCK_NR as libc::c_uint,
            tp_frame_size: FRAME_SIZE as libc::c_uint,
            tp_frame_nr: FRAME_NR as libc::c_uint,
        };
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        // The ring the kernel just made on fd, mapped whole; nothing else in
        // this process aliases it.
        // SAFETY: a fresh shared mapping of exactly the ring's size.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BLOCK_SIZE * BLOCK_NR,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(RxRing {
            base,
            next: Cell::new(0),
        })
    }

    /// Copies the next frame into `buf` (see [`Slot::copy_out`]) and hands
    /// its slot back to the kernel. `WouldBlock` when the ring is empty;
    /// `InvalidData` for a slot that could not be read, which is skipped.
    pub fn recv(&self, vnet: bool, buf: &mut [u8]) -> io::Result<(Range<usize>, VnetHdr)> {
        let i = self.next.get();
        let offset = i / FRAMES_PER_BLOCK * BLOCK_SIZE + i % FRAMES_PER_BLOCK * FRAME_SIZE;
        // Slots start on 16-byte boundaries, so the status word is aligned.
        // SAFETY: offset + FRAME_SIZE is within the mapping.
        let slot = unsafe { self.base.as_ptr().add(offset) };
        // SAFETY: as above; the kernel writes the word atomically too.
        let status = unsafe { AtomicU32::from_ptr(slot.cast()) };
        // Acquire: the frame's bytes are visible once its status says ours.
        if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let result = {
            // The kernel leaves a TP_STATUS_USER slot alone until we clear it
            // below, after this borrow ends.
            // SAFETY: the slot is ours and FRAME_SIZE bytes long.
            let bytes = unsafe { std::slice::from_raw_parts(slot, FRAME_SIZE) };
            Slot::parse(bytes, vnet).and_then(|s| s.copy_out(bytes, buf))
        };
        // Release: our reads of the slot are done before the kernel reuses it.
        status.store(TP_STATUS_KERNEL, Ordering::Release);
        self.next.set((i + 1) % FRAME_NR);
        result
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // No borrow of the mapping outlives recv.
        // SAFETY: base is the mapping made in new, of this size.
        unsafe { libc::munmap(self.base.as_ptr().cast(), BLOCK_SIZE * BLOCK_NR) };
    }
}

/// What a slot's header says about the frame in it.
struct Slot {
    /// Where the frame is in the slot, checked against its bounds.
    frame: Range<usize>,
    hdr: VnetHdr,
    /// (TPID, TCI) of a tag the kernel took off.
    vlan: Option<(u16, u16)>,
}

impl Slot {
    /// Reads the header of a slot the kernel handed over. Fails on offsets
    /// outside the slot, a frame cut short, or a bad virtio-net header.
    fn parse(slot: &[u8], vnet: bool) -> io::Result<Slot> {
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("ring slot: {what}"));
        let u32_at = |r: Range<usize>| {
            slot.get(r)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let u16_at = |r: Range<usize>| {
            slot.get(r)
                .and_then(|b| b.try_into().ok())
                .map(u16::from_ne_bytes)
        };
        let (Some(status), Some(len), Some(snaplen), Some(mac), Some(tci), Some(tpid)) = (
            u32_at(field::STATUS),
            u32_at(field::LEN),
            u32_at(field::SNAPLEN),
            u16_at(field::MAC),
            u16_at(field::VLAN_TCI),
            u16_at(field::VLAN_TPID),
        ) else {
            return Err(bad("shorter than its header"));
        };
        if snaplen != len {
            return Err(bad("frame truncated"));
        }
        let head = if vnet { vnet::HEADER_LEN } else { 0 };
        let mac = usize::from(mac);
        let end = mac
            .checked_add(snaplen as usize)
            .filter(|&e| e <= slot.len());
        let (Some(end), true) = (end, mac >= field::END + head) else {
            return Err(bad("frame offset out of bounds"));
        };
        let hdr = match vnet {
            true => VnetHdr::parse(&slot[mac - head..mac]).map_err(|_| bad("virtio-net header"))?,
            false => VnetHdr::NONE,
        };
        let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            (tpid, tci)
        });
        Ok(Slot {
            frame: mac..end,
            hdr,
            vlan,
        })
    }

    /// Copies the frame to `buf` after [`HEADROOM`], returning where in
    /// `buf` it is and its offload state. A tag the kernel took off is put
    /// back in place (in the headroom), and the checksum offset moved with it.
    fn copy_out(self, slot: &[u8], buf: &mut [u8]) -> io::Result<(Range<usize>, VnetHdr)> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let frame = slot
            .get(self.frame)
            .ok_or_else(|| bad("frame offset out of bounds"))?;
        let end = HEADROOM + frame.len();
        buf.get_mut(HEADROOM..end)
            .ok_or_else(|| bad("frame larger than the buffer"))?
            .copy_from_slice(frame);
        match self.vlan {
            Some((tpid, tci)) if frame.len() >= 12 => {
                let hdr = self
                    .hdr
                    .shifted(vlan::TAG_LEN as i32)
                    .ok_or_else(|| bad("checksum offset out of range"))?;
                buf.copy_within(HEADROOM..HEADROOM + 12, 0);
                buf[12..14].copy_from_slice(&tpid.to_be_bytes());
                buf[14..16].copy_from_slice(&tci.to_be_bytes());
                Ok((0..end, hdr))
            }
            _ => Ok((HEADROOM..end, self.hdr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTIAL: VnetHdr = VnetHdr {
        flags: vnet::flags::NEEDS_CSUM,
        gso_type: vnet::gso::TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };

    /// A slot as the kernel lays it out with PACKET_VNET_HDR: the frame at
    /// 76 (TPACKET_ALIGN(52 + 14) + 10 - 14), its header just before.
    fn slot(status: u32, frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        let mac = 76;
        let mut s = vec![0u8; 256];
        s[field::STATUS].copy_from_slice(&(TP_STATUS_USER | status).to_ne_bytes());
        s[field::LEN].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        s[field::SNAPLEN].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        s[field::MAC].copy_from_slice(&(mac as u16).to_ne_bytes());
        s[field::VLAN_TCI].copy_from_slice(&tci.to_ne_bytes());
        s[field::VLAN_TPID].copy_from_slice(&tpid.to_ne_bytes());
        s[mac - vnet::HEADER_LEN..mac].copy_from_slice(&PARTIAL.to_bytes());
        s[mac..mac + frame.len()].copy_from_slice(frame);
        s
    }

    fn frame() -> Vec<u8> {
        let mut f: Vec<u8> = (0..12).collect();
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend((0..50).map(|i| 0x40 + i));
        f
    }

    fn receive(slot: &[u8], vnet: bool) -> io::Result<(Vec<u8>, VnetHdr)> {
        let mut buf = [0u8; 128];
        let (range, hdr) = Slot::parse(slot, vnet)?.copy_out(slot, &mut buf)?;
        Ok((buf[range].to_vec(), hdr))
    }

    #[test]
    fn untagged_frame_comes_out_whole_with_its_header() {
        let f = frame();
        let s = slot(0, &f, 0, 0);
        assert_eq!(receive(&s, true).unwrap(), (f.clone(), PARTIAL));
        assert_eq!(receive(&s, false).unwrap(), (f, VnetHdr::NONE));
    }

    #[test]
    fn stripped_tag_is_put_back_and_checksum_start_follows() {
        let f = frame();
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x88, 0xa8, 0x20, 0x64]);
        tagged.extend_from_slice(&f[12..]);
        let s = slot(
            TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID,
            &f,
            0x88a8,
            0x2064,
        );
        let (out, hdr) = receive(&s, true).unwrap();
        assert_eq!(out, tagged);
        assert_eq!((hdr.csum_start, hdr.hdr_len), (38, 58));
        assert_eq!(hdr.csum_offset, PARTIAL.csum_offset);

        // No TPID from the kernel: 802.1Q.
        let s = slot(TP_STATUS_VLAN_VALID, &f, 0, 0x0064);
        let (out, _) = receive(&s, true).unwrap();
        assert_eq!(out[12..16], [0x81, 0x00, 0x00, 0x64]);
        assert_eq!(out[16..], f[12..]);
    }

    #[test]
    fn offsets_outside_the_slot_are_refused() {
        let f = frame();
        let invalid = |s: &[u8]| {
            let e = receive(s, true).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        };
        // Frame runs past the slot's end, at every cut.
        let s = slot(0, &f, 0, 0);
        for len in 0..76 + f.len() {
            invalid(&s[..len]);
        }
        // Frame (or its virtio-net header) over the slot header.
        let mut s = slot(0, &f, 0, 0);
        s[field::MAC].copy_from_slice(&(field::END as u16 + 9).to_ne_bytes());
        invalid(&s);
        assert!(receive(&s, false).is_ok());
        // mac + snaplen overflowing, and a frame cut short.
        let mut s = slot(0, &f, 0, 0);
        s[field::LEN].copy_from_slice(&u32::MAX.to_ne_bytes());
        s[field::SNAPLEN].copy_from_slice(&u32::MAX.to_ne_bytes());
        invalid(&s);
        let mut s = slot(0, &f, 0, 0);
        s[field::LEN].copy_from_slice(&1500u32.to_ne_bytes());
        invalid(&s);
    }

    #[test]
    fn frame_larger_than_the_buffer_is_refused() {
        let f = vec![0u8; 125];
        let e = receive(&slot(0, &f, 0, 0), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
