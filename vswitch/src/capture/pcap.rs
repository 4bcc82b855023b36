//! Classic pcap: a 24-byte file header whose magic number gives the byte
//! order and the timestamp unit (microseconds or nanoseconds), then records
//! of a 16-byte header and the captured bytes.

use std::io::Read;

use super::{
    truncated, CaptureError, ErrorKind, Order, Packet, Source, LINKTYPE_ETHERNET, MAX_RECORD,
};
use crate::time::Timestamp;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

pub struct Reader<R> {
    src: Source<R>,
    order: Order,
    /// Nanoseconds per unit of the fraction field: 1000 or 1.
    frac_ns: u64,
    buf: Vec<u8>,
}

impl<R: Read> Reader<R> {
    pub fn new(r: R) -> Result<Reader<R>, CaptureError> {
        let mut src = Source::new(r);
        let mut h = [0u8; 24];
        // Magic first, so a short file that is no pcap says so.
        let n = src.fill(&mut h)?;
        let magic = [h[0], h[1], h[2], h[3]];
        let (order, frac_ns) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (MAGIC_MICROS, _) => (Order::Little, 1000),
            (_, MAGIC_MICROS) => (Order::Big, 1000),
            (MAGIC_NANOS, _) => (Order::Little, 1),
            (_, MAGIC_NANOS) => (Order::Big, 1),
            (m, _) => return Err(CaptureError::new(0, ErrorKind::NotACapture(m))),
        };
        if n < h.len() {
            return Err(truncated(0, "pcap file header", h.len() as u64, n as u64));
        }
        let major = order.u16([h[4], h[5]]);
        if major != 2 {
            return Err(CaptureError::new(
                4,
                ErrorKind::Unsupported(format!("pcap version {major} (only 2 is read)")),
            ));
        }
        // The upper bits hold FCS flags (RFC draft "pcap"); the link type is the low 16.
        let link_type = order.u32([h[20], h[21], h[22], h[23]]) & 0xffff;
        if link_type != LINKTYPE_ETHERNET {
            return Err(CaptureError::new(20, ErrorKind::LinkType(link_type)));
        }
        Ok(Reader {
            src,
            order,
            frac_ns,
            buf: Vec::new(),
        })
    }

    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        let start = self.src.offset;
        let mut h = [0u8; 16];
        if !self.src.exact_or_end(&mut h, "packet record header")? {
            return Ok(None);
        }
        let field = |i: usize| self.order.u32([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (secs, frac, caplen, orig_len) = (field(0), field(4), field(8), field(12));
        if caplen > MAX_RECORD {
            return Err(CaptureError::malformed(
                start,
                format!("packet record of {caplen} bytes (at most {MAX_RECORD} are read)"),
            ));
        }
        self.src.bytes(&mut self.buf, caplen, "packet data")?;
        // At most 2^32 s * 10^9 + 2^32 * 1000 ns: no overflow in u64.
        let ns = u64::from(secs) * 1_000_000_000 + u64::from(frac) * self.frac_ns;
        Ok(Some(Packet {
            timestamp: Timestamp::from_nanos(ns),
            orig_len,
            data: &self.buf,
        }))
    }
}
