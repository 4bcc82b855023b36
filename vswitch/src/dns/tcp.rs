//! DNS over TCP: each message follows its length in two bytes (RFC 1035
//! 4.2.2, RFC 7766). The switch keeps a buffer per connection, answers the
//! whole messages `tcp_frames` finds and keeps the bytes after `consumed()`.

/// The whole messages at the front of `buf`.
pub fn tcp_frames(buf: &[u8]) -> TcpFrames<'_> {
    TcpFrames { buf, consumed: 0 }
}

#[derive(Clone, Debug)]
pub struct TcpFrames<'a> {
    buf: &'a [u8],
    consumed: usize,
}

impl TcpFrames<'_> {
    /// Bytes of the messages returned so far, length prefixes included;
    /// what follows is an incomplete message.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for TcpFrames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.consumed..)?;
        let (&[hi, lo], body) = rest.split_first_chunk::<2>()?;
        let msg = body.get(..usize::from(u16::from_be_bytes([hi, lo])))?;
        self.consumed += 2 + msg.len();
        Some(msg)
    }
}

/// `msg` with its length in front; `None` if it is over 65535 bytes, which
/// no reply of the server is.
pub fn tcp_frame(msg: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(msg.len()).ok()?;
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whole_messages_and_keeps_the_rest() {
        let buf = [0, 2, b'a', b'b', 0, 0, 0, 3, b'c', b'd'];
        let mut frames = tcp_frames(&buf);
        assert_eq!(frames.next(), Some(&b"ab"[..]));
        assert_eq!(frames.next(), Some(&b""[..]));
        assert_eq!(frames.next(), None);
        assert_eq!(frames.consumed(), 6);
        assert_eq!(tcp_frames(&[0]).next(), None);
        assert_eq!(tcp_frames(&[]).consumed(), 0);
    }

    #[test]
    fn frames_round_trip() {
        let framed = tcp_frame(b"hello").unwrap();
        assert_eq!(framed, b"\x00\x05hello");
        assert_eq!(tcp_frames(&framed).collect::<Vec<_>>(), [&b"hello"[..]]);
        assert_eq!(tcp_frame(&vec![0; 65535]).map(|f| f.len()), Some(65537));
        assert_eq!(tcp_frame(&vec![0; 65536]), None);
    }
}
