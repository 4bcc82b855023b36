//! Reading captures: classic pcap and pcapng, Ethernet frames only.
//!
//! `CaptureReader` tells the two formats apart by their first four bytes
//! and hands out one frame at a time, borrowed from a buffer it reuses, so
//! a capture of any size streams through in constant memory. Nothing here
//! panics on any input: every length is checked before use, and a damaged
//! file is an error that names the byte offset of the header or record at
//! fault. The writer is `crate::pcap`.

mod pcap;
mod pcapng;

use core::fmt;
use std::io::{self, Cursor, Read};

use crate::time::Timestamp;

/// The only link type replayed: Ethernet (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Bound on one record or block, so a corrupt length field is an error
/// rather than an attempt to read gigabytes. Wireshark refuses pcapng
/// blocks past 16 MiB; no frame comes near this.
const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// One captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp: Timestamp,
    /// Length on the wire; more than `data.len()` when the capture cut it.
    pub orig_len: u32,
    /// The captured bytes, starting with the Ethernet header.
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        })
    }
}

/// What is wrong with a capture, and where.
#[derive(Debug)]
pub struct CaptureError {
    /// Byte offset of the header, record or block at fault.
    pub offset: u64,
    pub kind: ErrorKind,
}

#[derive(Debug)]
pub enum ErrorKind {
    Io(io::Error),
    /// The file ended inside `what`.
    Truncated {
        what: &'static str,
        needed: u64,
        present: u64,
    },
    /// Neither a pcap nor a pcapng magic number.
    NotACapture(u32),
    Unsupported(String),
    /// Frames of a link type other than Ethernet.
    LinkType(u32),
    /// A length or field that contradicts the format.
    Malformed(String),
}

impl CaptureError {
    fn new(offset: u64, kind: ErrorKind) -> CaptureError {
        CaptureError { offset, kind }
    }

    fn malformed(offset: u64, what: impl Into<String>) -> CaptureError {
        CaptureError::new(offset, ErrorKind::Malformed(what.into()))
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: ", self.offset)?;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "read failed: {e}"),
            ErrorKind::Truncated {
                what,
                needed,
                present,
            } => write!(
                f,
                "truncated {what}: {needed} bytes needed, {present} present"
            ),
            ErrorKind::NotACapture(m) => {
                write!(f, "not a pcap or pcapng file (magic number {m:#010x})")
            }
            ErrorKind::Unsupported(what) => write!(f, "unsupported {what}"),
            ErrorKind::LinkType(t) => write!(
                f,
                "link type {t} is not Ethernet ({LINKTYPE_ETHERNET}), the only one replayed"
            ),
            ErrorKind::Malformed(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for CaptureError {}

/// A byte stream that knows its offset, for errors that say where.
struct Source<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Source<R> {
        Source { inner, offset: 0 }
    }

    /// Reads until `buf` is full or the stream ends; returns the count.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureError::new(self.offset + n as u64, ErrorKind::Io(e))),
            }
        }
        self.offset += n as u64;
        Ok(n)
    }

    /// Fills `buf` entirely; a short read is a truncation of `what`.
    fn exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), CaptureError> {
        let start = self.offset;
        let n = self.fill(buf)?;
        if n < buf.len() {
            return Err(truncated(start, what, buf.len() as u64, n as u64));
        }
        Ok(())
    }

    /// Like `exact`, but `Ok(false)` when the stream ends before the first
    /// byte: the clean end of a capture.
    fn exact_or_end(&mut self, buf: &mut [u8], what: &'static str) -> Result<bool, CaptureError> {
        let start = self.offset;
        match self.fill(buf)? {
            0 => Ok(false),
            n if n < buf.len() => Err(truncated(start, what, buf.len() as u64, n as u64)),
            _ => Ok(true),
        }
    }

    /// Replaces `buf` with the next `len` bytes. Grows the buffer only as
    /// bytes arrive, so a lying length in a short file costs nothing.
    fn bytes(
        &mut self,
        buf: &mut Vec<u8>,
        len: u32,
        what: &'static str,
    ) -> Result<(), CaptureError> {
        let start = self.offset;
        buf.clear();
        let got = (&mut self.inner)
            .take(u64::from(len))
            .read_to_end(buf)
            .map_err(|e| CaptureError::new(start + buf.len() as u64, ErrorKind::Io(e)))?;
        self.offset += got as u64;
        if got < len as usize {
            return Err(truncated(start, what, u64::from(len), got as u64));
        }
        Ok(())
    }
}

fn truncated(offset: u64, what: &'static str, needed: u64, present: u64) -> CaptureError {
    CaptureError::new(
        offset,
        ErrorKind::Truncated {
            what,
            needed,
            present,
        },
    )
}

/// Reads multi-byte fields in a file's byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Order::Little => u16::from_le_bytes(b),
            Order::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Order::Little => u32::from_le_bytes(b),
            Order::Big => u32::from_be_bytes(b),
        }
    }

    /// The u32 at `at` in `b`, if `b` holds it.
    fn u32_at(self, b: &[u8], at: usize) -> Option<u32> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(self.u32([s[0], s[1], s[2], s[3]]))
    }

    fn u16_at(self, b: &[u8], at: usize) -> Option<u16> {
        let s = b.get(at..at.checked_add(2)?)?;
        Some(self.u16([s[0], s[1]]))
    }
}

/// The stream handed to a format reader: the magic number already read for
/// detection, put back in front.
type Rewound<R> = io::Chain<Cursor<[u8; 4]>, R>;

enum Inner<R> {
    Pcap(pcap::Reader<Rewound<R>>),
    Pcapng(pcapng::Reader<Rewound<R>>),
}

/// Frames of a pcap or pcapng capture, in file order. Give it a buffered
/// reader: it reads headers a few bytes at a time.
pub struct CaptureReader<R> {
    inner: Inner<R>,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header (pcap) or first section header (pcapng).
    pub fn new(mut r: R) -> Result<CaptureReader<R>, CaptureError> {
        let mut magic = [0u8; 4];
        Source::new(&mut r).exact(&mut magic, "file header")?;
        let rewound = Cursor::new(magic).chain(r);
        let inner = if u32::from_le_bytes(magic) == pcapng::SHB {
            Inner::Pcapng(pcapng::Reader::new(rewound)?)
        } else {
            Inner::Pcap(pcap::Reader::new(rewound)?)
        };
        Ok(CaptureReader { inner })
    }

    pub fn format(&self) -> Format {
        match self.inner {
            Inner::Pcap(_) => Format::Pcap,
            Inner::Pcapng(_) => Format::Pcapng,
        }
    }

    /// The next frame, `None` at the end of the capture.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        match &mut self.inner {
            Inner::Pcap(r) => r.next_packet(),
            Inner::Pcapng(r) => r.next_packet(),
        }
    }
}

#[cfg(test)]
mod tests;
