//! Sealed VXLAN between vswitch peers that share a key (`encrypt = true`):
//! ChaCha20-Poly1305 over the inner frame, with replay protection. Only
//! vswitch speaks it; Linux and hardware VTEPs see VXLAN whose inner frame
//! is noise, and drop it.
//!
//! The VXLAN header stays in the clear, so a receiver can pick the port by
//! VNI, and is authenticated as associated data. After it:
//!
//! ```text
//! | sender id (4) | counter (8) | inner frame, encrypted | tag (16) |
//! ```
//!
//! The nonce is the sender id and counter as they stand there. The sender
//! id is the sending VTEP's own IPv4 address, unique among peers that share
//! a key; the counter starts at the wall clock in nanoseconds when the
//! sender starts and counts up by one per datagram, so a restarted sender
//! never reuses a nonce (it cannot send a datagram a nanosecond) and its
//! counters still lie above those it sent before. The receiver keeps, per
//! sender id, a sliding window of the counters it took (RFC 6479's bitmap,
//! as IPsec and WireGuard do): a counter taken once, or older than the
//! window, is refused, across restarts of either side.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use crate::config::TunnelKey;

const SENDER_LEN: usize = 4;
const COUNTER_LEN: usize = 8;
pub const NONCE_LEN: usize = SENDER_LEN + COUNTER_LEN;
pub const TAG_LEN: usize = 16;
/// Bytes sealing adds to a datagram.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Counters this far behind the highest one taken are refused as old.
const WINDOW_WORDS: usize = 32;
const WINDOW: u64 = (WINDOW_WORDS * 64) as u64;
/// Senders a receiver keeps windows for; one more is refused.
const MAX_SENDERS: usize = 1024;

/// Why a sealed datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short to hold a nonce and a tag.
    Truncated,
    /// The tag does not match: another key, or altered on the way.
    Forged,
    /// A counter already taken, or older than the window.
    Replayed,
    /// Windows for `MAX_SENDERS` senders exist already.
    TooManySenders,
}

/// The sending side of one port.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    sender: [u8; SENDER_LEN],
    counter: u64,
}

impl Sealer {
    /// `sender` is this VTEP's address; `start` the first counter (the wall
    /// clock in nanoseconds, read by the caller).
    pub fn new(key: &TunnelKey, sender: Ipv4Addr, start: u64) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
            sender: sender.octets(),
            counter: start,
        }
    }

    /// Appends the sealed form of the inner frame (given in parts) to
    /// `out`, which ends with the VXLAN header `header`.
    pub fn seal(&mut self, header: &[u8], inner: &[&[u8]], out: &mut Vec<u8>) {
        let counter = self.counter;
        self.counter = self.counter.wrapping_add(1);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..SENDER_LEN].copy_from_slice(&self.sender);
        nonce[SENDER_LEN..].copy_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&nonce);
        let start = out.len();
        for p in inner {
            out.extend_from_slice(p);
        }
        // Encryption of a buffer in memory cannot fail below the
        // cipher's 256 GB message limit.
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), header, &mut out[start..])
            .unwrap_or_default();
        out.extend_from_slice(&tag);
    }
}

/// The receiving side of one port: the key and a window per sender.
#[derive(Clone)]
pub struct Opener {
    cipher: ChaCha20Poly1305,
    windows: HashMap<u32, ReplayWindow>,
}

impl Opener {
    pub fn new(key: &TunnelKey) -> Opener {
        Opener {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
            windows: HashMap::new(),
        }
    }

    /// Checks and decrypts `body` (what follows the VXLAN header `header`)
    /// in place; the inner frame is then at the returned range of `body`.
    /// The window moves only for a datagram whose tag is good.
    pub fn open(&mut self, header: &[u8], body: &mut [u8]) -> Result<Range<usize>, OpenError> {
        if body.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let mut sender = [0u8; SENDER_LEN];
        sender.copy_from_slice(&body[..SENDER_LEN]);
        let sender = u32::from_be_bytes(sender);
        let mut counter = [0u8; COUNTER_LEN];
        counter.copy_from_slice(&body[SENDER_LEN..NONCE_LEN]);
        let counter = u64::from_be_bytes(counter);
        if let Some(w) = self.windows.get(&sender) {
            if !w.fresh(counter) {
                return Err(OpenError::Replayed);
            }
        } else if self.windows.len() >= MAX_SENDERS {
            return Err(OpenError::TooManySenders);
        }
        let (nonce, rest) = body.split_at_mut(NONCE_LEN);
        let (text, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), header, text, Tag::from_slice(tag))
            .map_err(|_| OpenError::Forged)?;
        self.windows.entry(sender).or_default().take(counter);
        Ok(NONCE_LEN..body.len() - TAG_LEN)
    }
}

/// The counters taken from one sender: the highest, and a bitmap of the
/// `WINDOW` below it, indexed by counter modulo `WINDOW`.
#[derive(Clone, Default)]
struct ReplayWindow {
    top: u64,
    bits: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    fn bit(n: u64) -> (usize, u64) {
        let i = (n % WINDOW) as usize;
        (i / 64, 1 << (i % 64))
    }

    /// Whether `n` may still be taken.
    fn fresh(&self, n: u64) -> bool {
        if n > self.top {
            return true;
        }
        if self.top - n >= WINDOW {
            return false;
        }
        let (word, mask) = Self::bit(n);
        self.bits[word] & mask == 0
    }

    fn take(&mut self, n: u64) {
        if n > self.top {
            // Bits of the counters the window slides past are for reuse.
            if n - self.top >= WINDOW {
                self.bits = [0; WINDOW_WORDS];
            } else {
                for skipped in self.top + 1..n {
                    let (word, mask) = Self::bit(skipped);
                    self.bits[word] &= !mask;
                }
            }
            self.top = n;
        }
        let (word, mask) = Self::bit(n);
        self.bits[word] |= mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 42, 0];

    fn key(b: u8) -> TunnelKey {
        TunnelKey([b; 32])
    }

    fn sealed(s: &mut Sealer, inner: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (a, b) = inner.split_at(inner.len().min(3));
        s.seal(&HEADER, &[a, b], &mut out);
        out
    }

    #[test]
    fn round_trip_and_the_bytes_hide_the_frame() {
        let mut s = Sealer::new(&key(7), Ipv4Addr::new(198, 18, 0, 1), 1000);
        let mut o = Opener::new(&key(7));
        let inner = b"an inner frame that says plaintext-marker".to_vec();
        let mut body = sealed(&mut s, &inner);
        assert_eq!(body.len(), inner.len() + OVERHEAD);
        assert_eq!(&body[..4], &[198, 18, 0, 1]);
        assert_eq!(&body[4..12], &1000u64.to_be_bytes());
        assert!(!body.windows(9).any(|w| w == b"plaintext"));
        let r = o.open(&HEADER, &mut body).expect("opens");
        assert_eq!(&body[r], &inner[..]);
        // The next datagram takes the next counter.
        let body = sealed(&mut s, &inner);
        assert_eq!(&body[4..12], &1001u64.to_be_bytes());
    }

    #[test]
    fn tampering_anywhere_and_another_key_are_refused() {
        let mut s = Sealer::new(&key(7), Ipv4Addr::new(198, 18, 0, 1), 1);
        let body = sealed(&mut s, b"0123456789abcdef");
        for i in 0..body.len() {
            let mut o = Opener::new(&key(7));
            let mut b = body.clone();
            b[i] ^= 0x01;
            assert_eq!(o.open(&HEADER, &mut b), Err(OpenError::Forged), "byte {i}");
        }
        // The header is authenticated too: another VNI does not open.
        let mut o = Opener::new(&key(7));
        let mut b = body.clone();
        let mut other = HEADER;
        other[6] = 43;
        assert_eq!(o.open(&other, &mut b), Err(OpenError::Forged));
        let mut o = Opener::new(&key(8));
        assert_eq!(o.open(&HEADER, &mut body.clone()), Err(OpenError::Forged));
        assert_eq!(
            o.open(&HEADER, &mut body[..27].to_vec()),
            Err(OpenError::Truncated)
        );
    }

    #[test]
    fn replays_are_refused_reordering_within_the_window_is_not() {
        let mut s = Sealer::new(&key(1), Ipv4Addr::new(198, 18, 0, 1), 5_000);
        let mut o = Opener::new(&key(1));
        let datagrams: Vec<Vec<u8>> = (0..WINDOW + 10).map(|_| sealed(&mut s, b"x")).collect();
        let mut open = |i: usize| o.open(&HEADER, &mut datagrams[i].clone()).map(drop);
        assert_eq!(open(5), Ok(()));
        assert_eq!(open(5), Err(OpenError::Replayed));
        // Late but inside the window: taken once.
        assert_eq!(open(2), Ok(()));
        assert_eq!(open(2), Err(OpenError::Replayed));
        // The window slides: 5 + WINDOW makes counter 5 too old to tell.
        assert_eq!(open(5 + WINDOW as usize), Ok(()));
        assert_eq!(open(3), Err(OpenError::Replayed));
        assert_eq!(open(6 + WINDOW as usize), Ok(()));
        assert_eq!(open(7), Ok(()), "inside the slid window, never taken");
        // A forged copy of a fresh counter does not move the window.
        let mut forged = datagrams[9 + WINDOW as usize].clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(o.open(&HEADER, &mut forged), Err(OpenError::Forged));
        assert_eq!(
            o.open(&HEADER, &mut datagrams[9 + WINDOW as usize].clone()),
            Ok(NONCE_LEN..NONCE_LEN + 1)
        );
    }

    #[test]
    fn a_restarted_sender_goes_on_above_its_old_counters() {
        let mut o = Opener::new(&key(1));
        let mut first = Sealer::new(&key(1), Ipv4Addr::new(198, 18, 0, 1), 10_000);
        let old = sealed(&mut first, b"old");
        assert!(o.open(&HEADER, &mut old.clone()).is_ok());
        // Restarted later: its clock-based counter is higher.
        let mut again = Sealer::new(&key(1), Ipv4Addr::new(198, 18, 0, 1), 20_000);
        assert!(o.open(&HEADER, &mut sealed(&mut again, b"new")).is_ok());
        assert_eq!(o.open(&HEADER, &mut old.clone()), Err(OpenError::Replayed));
        // Another sender with the same counters has its own window.
        let mut other = Sealer::new(&key(1), Ipv4Addr::new(198, 18, 0, 2), 10_000);
        assert!(o.open(&HEADER, &mut sealed(&mut other, b"old")).is_ok());
    }
}
