//! pcapng (draft-ietf-opsawg-pcapng): a sequence of blocks, each
//! `type, total length, body, total length`. A Section Header Block opens
//! each section and sets its byte order; Interface Description Blocks
//! number the section's interfaces (link type, timestamp resolution);
//! Enhanced, Simple and the obsolete Packet Blocks carry frames. Other
//! blocks (name resolution, statistics, custom) are skipped.

use std::io::Read;

use super::{CaptureError, ErrorKind, Order, Packet, Source, LINKTYPE_ETHERNET, MAX_RECORD};
use crate::time::Timestamp;

/// Section Header Block type; a palindrome, so it reads the same in
/// either byte order.
pub const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// Units per second of an interface's timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resolution {
    /// 10^-n seconds.
    Decimal(u8),
    /// 2^-n seconds.
    Binary(u8),
}

impl Resolution {
    /// Nanoseconds in `ticks` units; `None` if the resolution is beyond
    /// what u128 arithmetic holds (10^-38, 2^-127), which no capture uses.
    pub(super) fn nanos(self, ticks: u64) -> Option<u64> {
        let t = u128::from(ticks);
        let ns = match self {
            Resolution::Decimal(n) if n <= 9 => t * 10u128.pow(u32::from(9 - n)),
            Resolution::Decimal(n) => t / 10u128.checked_pow(u32::from(n - 9))?,
            Resolution::Binary(n) => (t * 1_000_000_000).checked_shr(u32::from(n))?,
        };
        Some(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    resolution: Resolution,
    /// if_tsoffset: seconds added to every timestamp.
    offset_secs: i64,
}

pub struct Reader<R> {
    src: Source<R>,
    order: Order,
    /// The current section's interfaces, by id.
    interfaces: Vec<Interface>,
    /// Simple Packet Blocks carry no time; they take the last one seen.
    last_timestamp: Timestamp,
    body: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// Reads the first Section Header Block.
    pub fn new(r: R) -> Result<Reader<R>, CaptureError> {
        let mut reader = Reader {
            src: Source::new(r),
            order: Order::Little,
            interfaces: Vec::new(),
            last_timestamp: Timestamp::ZERO,
            body: Vec::new(),
        };
        match reader.block()? {
            Some(SHB) => Ok(reader),
            _ => Err(CaptureError::new(
                0,
                ErrorKind::Malformed("pcapng file does not open with a section header".into()),
            )),
        }
    }

    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        loop {
            let start = self.src.offset;
            let (interface, timestamp, orig_len, data) = match self.block()? {
                None => return Ok(None),
                Some(EPB) => self.epb(start)?,
                Some(SPB) => self.spb(start)?,
                Some(PB) => self.pb(start)?,
                // Section headers and interfaces are taken in by `block`.
                Some(_) => continue,
            };
            let Some(iface) = self.interfaces.get(interface as usize) else {
                return Err(CaptureError::malformed(
                    start,
                    format!("packet on interface {interface}, which no interface block describes"),
                ));
            };
            if iface.link_type != LINKTYPE_ETHERNET {
                return Err(CaptureError::new(
                    start,
                    ErrorKind::LinkType(iface.link_type),
                ));
            }
            let timestamp = match timestamp {
                Some(ticks) => {
                    let ns = iface.resolution.nanos(ticks).ok_or_else(|| {
                        CaptureError::new(
                            start,
                            ErrorKind::Unsupported(format!(
                                "timestamp resolution {:?} of interface {interface}",
                                iface.resolution
                            )),
                        )
                    })?;
                    let offset_ns = iface.offset_secs.saturating_mul(1_000_000_000);
                    Timestamp::from_nanos(ns.saturating_add_signed(offset_ns))
                }
                None => self.last_timestamp,
            };
            self.last_timestamp = timestamp;
            return Ok(Some(Packet {
                timestamp,
                orig_len,
                data: self.body.get(data).unwrap_or_default(),
            }));
        }
    }

    /// Reads one block into `self.body` and returns its type, or `None`
    /// at the end of the file. Section headers and interface descriptions
    /// are applied here.
    fn block(&mut self) -> Result<Option<u32>, CaptureError> {
        let start = self.src.offset;
        let mut h = [0u8; 8];
        if !self.src.exact_or_end(&mut h, "block header")? {
            return Ok(None);
        }
        let ty = self.order.u32([h[0], h[1], h[2], h[3]]);
        let len_bytes = [h[4], h[5], h[6], h[7]];
        let body_start = if ty == SHB {
            // The byte order of the section, hence of its own length, comes next.
            let mut m = [0u8; 4];
            self.src.exact(&mut m, "section header")?;
            self.order = match (u32::from_le_bytes(m), u32::from_be_bytes(m)) {
                (BYTE_ORDER_MAGIC, _) => Order::Little,
                (_, BYTE_ORDER_MAGIC) => Order::Big,
                (m, _) => {
                    return Err(CaptureError::malformed(
                        start,
                        format!("section header with byte-order magic {m:#010x}"),
                    ))
                }
            };
            12
        } else {
            8
        };
        let total = self.order.u32(len_bytes);
        if total < body_start + 4 || total & 3 != 0 || total > MAX_RECORD {
            return Err(CaptureError::malformed(
                start,
                format!("block of type {ty:#x} with total length {total}"),
            ));
        }
        self.src
            .bytes(&mut self.body, total - body_start - 4, "block")?;
        let mut t = [0u8; 4];
        self.src.exact(&mut t, "block trailer")?;
        if self.order.u32(t) != total {
            return Err(CaptureError::malformed(
                start,
                format!(
                    "block of type {ty:#x}: total length {total} at the start, {} at the end",
                    self.order.u32(t)
                ),
            ));
        }
        match ty {
            SHB => self.section(start)?,
            IDB => self.interface(start)?,
            _ => {}
        }
        Ok(Some(ty))
    }

    /// A new section: its own byte order (already set) and interfaces.
    fn section(&mut self, start: u64) -> Result<(), CaptureError> {
        let major = self
            .order
            .u16_at(&self.body, 0)
            .ok_or_else(|| short(start, "section header", &self.body))?;
        if major != 1 {
            return Err(CaptureError::new(
                start,
                ErrorKind::Unsupported(format!("pcapng version {major} (only 1 is read)")),
            ));
        }
        self.interfaces.clear();
        Ok(())
    }

    fn interface(&mut self, start: u64) -> Result<(), CaptureError> {
        let o = self.order;
        let b = &self.body;
        let (Some(link_type), Some(snaplen)) = (o.u16_at(b, 0), o.u32_at(b, 4)) else {
            return Err(short(start, "interface description", b));
        };
        let mut iface = Interface {
            link_type: u32::from(link_type),
            snaplen,
            resolution: Resolution::Decimal(6),
            offset_secs: 0,
        };
        let mut at = 8;
        while let (Some(code), Some(len)) = (o.u16_at(b, at), o.u16_at(b, at + 2)) {
            let value = b.get(at + 4..at + 4 + usize::from(len)).ok_or_else(|| {
                CaptureError::malformed(
                    start,
                    format!("interface option {code} of {len} bytes overruns its block"),
                )
            })?;
            match (code, value) {
                (OPT_ENDOFOPT, _) => break,
                (IF_TSRESOL, [r, ..]) if r & 0x80 == 0 => {
                    iface.resolution = Resolution::Decimal(*r)
                }
                (IF_TSRESOL, [r, ..]) => iface.resolution = Resolution::Binary(r & 0x7f),
                (IF_TSOFFSET, &[a, b, c, d, e, f, g, h]) => {
                    let v = [a, b, c, d, e, f, g, h];
                    iface.offset_secs = match o {
                        Order::Little => i64::from_le_bytes(v),
                        Order::Big => i64::from_be_bytes(v),
                    };
                }
                _ => {}
            }
            // Option values are padded to 32 bits.
            at += 4 + usize::from(len).div_ceil(4) * 4;
        }
        self.interfaces.push(iface);
        Ok(())
    }

    /// Enhanced Packet Block: interface, 64-bit timestamp, lengths, data.
    fn epb(&self, start: u64) -> Result<Captured, CaptureError> {
        let (o, b) = (self.order, &self.body);
        let Some([interface, hi, lo, caplen, orig_len]) = u32s(o, b, 0) else {
            return Err(short(start, "enhanced packet block", b));
        };
        let data = data_range(start, b, 20, caplen)?;
        let ticks = u64::from(hi) << 32 | u64::from(lo);
        Ok((interface, Some(ticks), orig_len, data))
    }

    /// The obsolete Packet Block: as the enhanced one with a 16-bit interface.
    fn pb(&self, start: u64) -> Result<Captured, CaptureError> {
        let (o, b) = (self.order, &self.body);
        let (Some(interface), Some([hi, lo, caplen, orig_len])) = (o.u16_at(b, 0), u32s(o, b, 4))
        else {
            return Err(short(start, "packet block", b));
        };
        let data = data_range(start, b, 20, caplen)?;
        let ticks = u64::from(hi) << 32 | u64::from(lo);
        Ok((u32::from(interface), Some(ticks), orig_len, data))
    }

    /// Simple Packet Block: interface 0, no timestamp, only the original
    /// length; what was captured is the block's room, capped by the snaplen.
    fn spb(&self, start: u64) -> Result<Captured, CaptureError> {
        let Some(orig_len) = self.order.u32_at(&self.body, 0) else {
            return Err(short(start, "simple packet block", &self.body));
        };
        let room = u32::try_from(self.body.len().saturating_sub(4)).unwrap_or(u32::MAX);
        let snaplen = match self.interfaces.first() {
            Some(i) if i.snaplen != 0 => i.snaplen,
            _ => u32::MAX,
        };
        let caplen = orig_len.min(room).min(snaplen);
        Ok((0, None, orig_len, 4..4 + caplen as usize))
    }
}

/// A packet block's interface, raw timestamp (if any), original length
/// and where its bytes lie in the block body.
type Captured = (u32, Option<u64>, u32, core::ops::Range<usize>);

/// `caplen` bytes at `at` of a block body, checked to lie inside it.
fn data_range(
    start: u64,
    body: &[u8],
    at: usize,
    caplen: u32,
) -> Result<core::ops::Range<usize>, CaptureError> {
    let end = at.saturating_add(caplen as usize);
    if end > body.len() {
        return Err(CaptureError::malformed(
            start,
            format!(
                "packet of {caplen} bytes in a block with room for {}",
                body.len().saturating_sub(at)
            ),
        ));
    }
    Ok(at..end)
}

/// N consecutive u32 fields from `at`, if `b` holds them all.
fn u32s<const N: usize>(o: Order, b: &[u8], at: usize) -> Option<[u32; N]> {
    let mut v = [0; N];
    for (i, x) in v.iter_mut().enumerate() {
        *x = o.u32_at(b, at + 4 * i)?;
    }
    Some(v)
}

fn short(start: u64, what: &str, body: &[u8]) -> CaptureError {
    CaptureError::malformed(
        start,
        format!(
            "{what} too short for its fields ({} bytes of body)",
            body.len()
        ),
    )
}
