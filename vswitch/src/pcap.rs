//! Writing classic pcap files (microsecond timestamps, Ethernet link type),
//! which tcpdump and Wireshark read.

use std::io::{self, Write};

use crate::time::Timestamp;

const MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
/// Large enough for a 64 KB GSO frame.
pub const SNAPLEN: u32 = 262_144;

pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
    record: Vec<u8>,
}

/// The file header: little-endian, version 2.4, Ethernet, `snaplen`.
pub fn header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // Bytes 8..16 (time zone, accuracy) stay zero.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Appends one record to `out`: the frame given as consecutive slices, cut
/// at `snaplen` bytes with its original length kept.
pub fn record(at: Timestamp, parts: &[&[u8]], snaplen: u32, out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let ns = at.as_nanos();
    let caplen = len.min(snaplen as usize);
    out.extend_from_slice(&((ns / 1_000_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
    out.extend_from_slice(&(caplen as u32).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let mut left = caplen;
    for p in parts {
        let n = p.len().min(left);
        out.extend_from_slice(&p[..n]);
        left -= n;
    }
}

impl<W: Write> PcapWriter<W> {
    pub fn new(out: W) -> io::Result<PcapWriter<W>> {
        PcapWriter::with_snaplen(out, SNAPLEN)
    }

    /// A writer whose records keep at most `snaplen` bytes of each frame.
    pub fn with_snaplen(mut out: W, snaplen: u32) -> io::Result<PcapWriter<W>> {
        out.write_all(&header(snaplen))?;
        Ok(PcapWriter {
            out,
            snaplen,
            record: Vec::new(),
        })
    }

    /// Appends one frame given as consecutive slices.
    pub fn write(&mut self, at: Timestamp, parts: &[&[u8]]) -> io::Result<()> {
        self.record.clear();
        record(at, parts, self.snaplen, &mut self.record);
        self.out.write_all(&self.record)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(Timestamp::from_nanos(2_500_000_000), &[&[1, 2], &[3]])
            .unwrap();
        let b = w.into_inner();
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(b.len(), 24 + 16 + 3);
        assert_eq!(&b[24..28], &2u32.to_le_bytes());
        assert_eq!(&b[28..32], &500_000u32.to_le_bytes());
        assert_eq!(&b[32..36], &3u32.to_le_bytes());
        assert_eq!(&b[40..], &[1, 2, 3]);
    }

    #[test]
    fn snaplen_cuts_the_bytes_and_keeps_the_length() {
        let mut w = PcapWriter::with_snaplen(Vec::new(), 2).unwrap();
        w.write(Timestamp::ZERO, &[&[1], &[2, 3, 4]]).unwrap();
        let b = w.into_inner();
        assert_eq!(&b[16..20], &2u32.to_le_bytes());
        assert_eq!(&b[32..36], &2u32.to_le_bytes());
        assert_eq!(&b[36..40], &4u32.to_le_bytes());
        assert_eq!(&b[40..], &[1, 2]);
    }
}
