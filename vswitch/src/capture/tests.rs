//! Readers on hand-built files in both byte orders; damaged and random
//! input gives errors with offsets, never a panic.

use proptest::prelude::*;

use super::pcapng::Resolution;
use super::*;

/// (timestamp ns, orig_len, data) of every frame, or the first error.
type Frames = Vec<(u64, u32, Vec<u8>)>;

fn read_all(bytes: &[u8]) -> Result<(Format, Frames), CaptureError> {
    let mut r = CaptureReader::new(bytes)?;
    let mut v = Vec::new();
    while let Some(p) = r.next_packet()? {
        v.push((p.timestamp.as_nanos(), p.orig_len, p.data.to_vec()));
    }
    Ok((r.format(), v))
}

fn put16(v: &mut Vec<u8>, o: Order, x: u16) {
    v.extend_from_slice(&match o {
        Order::Little => x.to_le_bytes(),
        Order::Big => x.to_be_bytes(),
    });
}

fn put32(v: &mut Vec<u8>, o: Order, x: u32) {
    v.extend_from_slice(&match o {
        Order::Little => x.to_le_bytes(),
        Order::Big => x.to_be_bytes(),
    });
}

const F1: &[u8] = &[0xff; 60];
const F2: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// A classic pcap with `records` of (seconds, fraction, orig_len, data).
fn pcap(o: Order, magic: u32, link: u32, records: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    put32(&mut v, o, magic);
    put16(&mut v, o, 2);
    put16(&mut v, o, 4);
    put32(&mut v, o, 0);
    put32(&mut v, o, 0);
    put32(&mut v, o, 65535);
    put32(&mut v, o, link);
    for &(s, frac, orig, data) in records {
        put32(&mut v, o, s);
        put32(&mut v, o, frac);
        put32(&mut v, o, data.len() as u32);
        put32(&mut v, o, orig);
        v.extend_from_slice(data);
    }
    v
}

fn two_frames(o: Order, magic: u32) -> Vec<u8> {
    pcap(o, magic, 1, &[(10, 5, 60, F1), (11, 250, 100, F2)])
}

#[test]
fn pcap_micro_and_nano_in_both_byte_orders() {
    for o in [Order::Little, Order::Big] {
        let (f, frames) = read_all(&two_frames(o, 0xa1b2_c3d4)).unwrap();
        assert_eq!(f, Format::Pcap);
        assert_eq!(
            frames,
            vec![
                (10_000_005_000, 60, F1.to_vec()),
                (11_000_250_000, 100, F2.to_vec())
            ],
            "{o:?} microseconds"
        );
        let (_, frames) = read_all(&two_frames(o, 0xa1b2_3c4d)).unwrap();
        assert_eq!(frames[0].0, 10_000_000_005, "{o:?} nanoseconds");
        assert_eq!(frames[1].0, 11_000_000_250, "{o:?} nanoseconds");
        // A frame the capture cut keeps its wire length.
        assert_eq!((frames[1].1, frames[1].2.len()), (100, 15));
    }
}

#[test]
fn pcap_written_by_our_writer_reads_back() {
    let mut w = crate::pcap::PcapWriter::new(Vec::new()).unwrap();
    w.write(Timestamp::from_nanos(3_000_007_000), &[&F2[..4], &F2[4..]])
        .unwrap();
    let (_, frames) = read_all(&w.into_inner()).unwrap();
    assert_eq!(frames, vec![(3_000_007_000, 15, F2.to_vec())]);
}

#[test]
fn pcap_errors_name_the_offset() {
    let e = read_all(&pcap(Order::Little, 0xa1b2_c3d4, 105, &[])).unwrap_err();
    assert_eq!(e.offset, 20);
    assert!(matches!(e.kind, ErrorKind::LinkType(105)), "{e}");
    assert_eq!(
        e.to_string(),
        "offset 20: link type 105 is not Ethernet (1), the only one replayed"
    );

    let e = read_all(b"GIF89a, not a capture at all").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotACapture(_)), "{e}");

    let e = read_all(&[0xd4, 0xc3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "offset 0: truncated file header: 4 bytes needed, 2 present"
    );

    let file = two_frames(Order::Big, 0xa1b2_c3d4);
    // Cut inside the second record's header, then inside its data.
    let second = 24 + 16 + 60;
    let e = read_all(&file[..second + 5]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("offset {second}: truncated packet record header: 16 bytes needed, 5 present")
    );
    let e = read_all(&file[..second + 16 + 3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "offset {}: truncated packet data: 15 bytes needed, 3 present",
            second + 16
        )
    );
}

#[test]
fn pcap_every_cut_is_an_error_or_a_clean_end() {
    let file = two_frames(Order::Little, 0xa1b2_c3d4);
    let boundaries = [24, 24 + 16 + 60, file.len()];
    for cut in 0..file.len() {
        let r = read_all(&file[..cut]);
        match boundaries.iter().position(|&b| b == cut) {
            Some(n) => assert_eq!(r.unwrap().1.len(), n, "cut at {cut}"),
            None => assert!(r.is_err(), "cut at {cut}"),
        }
    }
}

/// A pcapng block of `ty` with `body` padded to 32 bits.
fn block(o: Order, ty: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    let mut v = Vec::new();
    put32(&mut v, o, ty);
    put32(&mut v, o, total);
    v.extend_from_slice(body);
    v.resize(v.len() + pad, 0);
    put32(&mut v, o, total);
    v
}

fn shb(o: Order) -> Vec<u8> {
    let mut b = Vec::new();
    put32(&mut b, o, 0x1a2b_3c4d);
    put16(&mut b, o, 1);
    put16(&mut b, o, 0);
    b.extend_from_slice(&[0xff; 8]); // section length: unknown
    block(o, 0x0a0d_0d0a, &b)
}

/// An interface description with optional if_tsresol and if_tsoffset.
fn idb(o: Order, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
    let mut b = Vec::new();
    put16(&mut b, o, link);
    put16(&mut b, o, 0);
    put32(&mut b, o, 0);
    if let Some(r) = tsresol {
        put16(&mut b, o, 9);
        put16(&mut b, o, 1);
        b.extend_from_slice(&[r, 0, 0, 0]);
    }
    if let Some(s) = tsoffset {
        put16(&mut b, o, 14);
        put16(&mut b, o, 8);
        b.extend_from_slice(&match o {
            Order::Little => s.to_le_bytes(),
            Order::Big => s.to_be_bytes(),
        });
    }
    put16(&mut b, o, 0);
    put16(&mut b, o, 0);
    block(o, 1, &b)
}

fn epb(o: Order, iface: u32, ticks: u64, orig: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put32(&mut b, o, iface);
    put32(&mut b, o, (ticks >> 32) as u32);
    put32(&mut b, o, ticks as u32);
    put32(&mut b, o, data.len() as u32);
    put32(&mut b, o, orig);
    b.extend_from_slice(data);
    b.resize(b.len() + (4 - data.len() % 4) % 4, 0);
    block(o, 6, &b)
}

fn spb(o: Order, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put32(&mut b, o, data.len() as u32);
    b.extend_from_slice(data);
    block(o, 3, &b)
}

/// Two interfaces (nanoseconds; 2^-10 s with a 100 s offset), an unknown
/// block between frames, and a simple packet block.
fn pcapng(o: Order) -> Vec<u8> {
    [
        shb(o),
        idb(o, 1, Some(9), None),
        idb(o, 1, Some(0x80 | 10), Some(100)),
        epb(o, 0, 1_700_000_000_123_456_789, 60, F1),
        block(o, 5, &[0; 16]), // interface statistics: skipped
        epb(o, 1, 3 * 1024 + 512, 100, F2),
        spb(o, F2),
    ]
    .concat()
}

#[test]
fn pcapng_in_both_byte_orders() {
    for o in [Order::Little, Order::Big] {
        let (f, frames) = read_all(&pcapng(o)).unwrap();
        assert_eq!(f, Format::Pcapng);
        assert_eq!(
            frames,
            vec![
                (1_700_000_000_123_456_789, 60, F1.to_vec()),
                (103_500_000_000, 100, F2.to_vec()),
                // No time of its own: the last one seen.
                (103_500_000_000, 15, F2.to_vec()),
            ],
            "{o:?}"
        );
    }
}

#[test]
fn pcapng_default_resolution_is_microseconds() {
    let file = [
        shb(Order::Big),
        idb(Order::Big, 1, None, None),
        epb(Order::Big, 0, 2_000_001, 15, F2),
    ]
    .concat();
    assert_eq!(read_all(&file).unwrap().1[0].0, 2_000_001_000);
}

#[test]
fn pcapng_sections_set_their_own_byte_order_and_interfaces() {
    let file = [
        pcapng(Order::Little),
        shb(Order::Big),
        idb(Order::Big, 1, None, None),
        epb(Order::Big, 0, 7, 15, F2),
    ]
    .concat();
    let (_, frames) = read_all(&file).unwrap();
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[3], (7_000, 15, F2.to_vec()));

    // The new section forgets the old one's interfaces.
    let file = [
        pcapng(Order::Little),
        shb(Order::Little),
        epb(Order::Little, 1, 7, 15, F2),
    ]
    .concat();
    let e = read_all(&file).unwrap_err();
    assert_eq!(e.offset, pcapng(Order::Little).len() as u64 + 28);
    assert!(e.to_string().contains("interface 1"), "{e}");
}

#[test]
fn pcapng_errors_name_the_offset() {
    let o = Order::Little;
    let head = [shb(o), idb(o, 113, None, None)].concat();
    let e = read_all(&[head.clone(), epb(o, 0, 1, 15, F2)].concat()).unwrap_err();
    assert_eq!(e.offset, head.len() as u64);
    assert!(matches!(e.kind, ErrorKind::LinkType(113)), "{e}");

    // Total lengths at the start and end disagree.
    let mut bad = epb(o, 0, 1, 15, F2);
    let n = bad.len();
    bad[n - 4] ^= 4;
    let head = [shb(o), idb(o, 1, None, None)].concat();
    let e = read_all(&[head.clone(), bad].concat()).unwrap_err();
    assert_eq!(e.offset, head.len() as u64);
    assert!(e.to_string().contains("at the end"), "{e}");

    // A captured length past the block.
    let mut bad = epb(o, 0, 1, 15, F2);
    bad[20] = 200;
    let e = read_all(&[head.clone(), bad].concat()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "offset {}: packet of 200 bytes in a block with room for 16",
            head.len()
        )
    );

    let mut bad = shb(o);
    bad[8] = 0x99;
    let e = read_all(&bad).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("byte-order magic"), "{e}");
}

#[test]
fn pcapng_every_cut_is_an_error_or_a_clean_end() {
    for o in [Order::Little, Order::Big] {
        let blocks = [
            shb(o),
            idb(o, 1, Some(9), None),
            epb(o, 0, 1, 60, F1),
            spb(o, F2),
        ];
        let file = blocks.concat();
        let mut boundaries = Vec::new();
        let mut at = 0;
        for b in &blocks {
            at += b.len();
            boundaries.push(at);
        }
        for cut in 4..file.len() {
            let r = read_all(&file[..cut]);
            match boundaries.iter().position(|&b| b == cut) {
                Some(i) => assert_eq!(r.unwrap().1.len(), i.saturating_sub(1), "cut at {cut}"),
                None => assert!(r.is_err(), "{o:?} cut at {cut}"),
            }
        }
    }
}

#[test]
fn timestamp_resolutions() {
    assert_eq!(Resolution::Decimal(6).nanos(5), Some(5_000));
    assert_eq!(Resolution::Decimal(12).nanos(5_000), Some(5));
    assert_eq!(Resolution::Binary(1).nanos(3), Some(1_500_000_000));
    assert_eq!(Resolution::Decimal(0).nanos(u64::MAX), Some(u64::MAX));
    assert_eq!(Resolution::Decimal(60).nanos(1), None);
    assert_eq!(Resolution::Binary(127).nanos(1), Some(0));
}

fn never_panics(bytes: &[u8]) {
    let mut r = match CaptureReader::new(bytes) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.offset <= bytes.len() as u64, "{e}");
            return;
        }
    };
    loop {
        match r.next_packet() {
            Ok(Some(p)) => assert!(p.data.len() <= bytes.len()),
            Ok(None) => return,
            Err(e) => {
                assert!(e.offset <= bytes.len() as u64, "{e}");
                return;
            }
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        never_panics(&bytes);
    }

    /// Valid headers followed by garbage reach the record parsers.
    #[test]
    fn garbage_after_headers_never_panics(
        ng in any::<bool>(),
        big in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let o = if big { Order::Big } else { Order::Little };
        let mut file = if ng {
            [shb(o), idb(o, 1, Some(9), None)].concat()
        } else {
            pcap(o, 0xa1b2_c3d4, 1, &[])
        };
        file.extend_from_slice(&tail);
        never_panics(&file);
    }

    /// Valid files with bytes overwritten at random.
    #[test]
    fn damaged_files_never_panic(
        ng in any::<bool>(),
        big in any::<bool>(),
        hits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let o = if big { Order::Big } else { Order::Little };
        let mut file = if ng { pcapng(o) } else { two_frames(o, 0xa1b2_3c4d) };
        for (i, b) in hits {
            let at = i.index(file.len());
            file[at] = b;
        }
        never_panics(&file);
    }
}
