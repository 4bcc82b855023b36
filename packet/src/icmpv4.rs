//! ICMP for IPv4 (RFC 792): echo, and the errors a router sends.

use crate::be;
use crate::checksum;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::ipv4::Ipv4Packet;

/// Message types.
pub mod msg {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
}

/// Codes of Destination Unreachable and Time Exceeded.
pub mod code {
    pub const NET_UNREACHABLE: u8 = 0;
    pub const HOST_UNREACHABLE: u8 = 1;
    pub const PROTO_UNREACHABLE: u8 = 2;
    pub const PORT_UNREACHABLE: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const ADMIN_PROHIBITED: u8 = 13;
    pub const TTL_EXCEEDED: u8 = 0;
    pub const REASSEMBLY_EXCEEDED: u8 = 1;
}

/// Type, code, checksum and the 4 bytes whose meaning depends on the type.
pub const HEADER_LEN: usize = 8;

/// Most of the offending datagram an error may quote: RFC 1812 4.3.2.3 keeps
/// the whole ICMP error within 576 bytes, less 20 of IPv4 and 8 of ICMP header.
pub const MAX_ERROR_QUOTE: usize = 576 - 20 - HEADER_LEN;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
}

/// A view of an ICMPv4 message; the checksum covers the whole buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::truncated(Layer::Icmpv4, HEADER_LEN, len));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Meaningful for echo request and reply only.
    pub fn echo_ident(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Meaningful for echo request and reply only.
    pub fn echo_seq_no(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    pub fn is_echo(&self) -> bool {
        matches!(self.msg_type(), msg::ECHO_REQUEST | msg::ECHO_REPLY)
    }

    /// Everything after the 8-byte header: echo data, or the quoted datagram
    /// of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    pub fn set_echo_ident(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }

    pub fn set_echo_seq_no(&mut self, v: u16) {
        be::put_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

/// The ICMPv4 messages the switch reads and writes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// `invoking` is the offending datagram from its IP header on, already
    /// cut to length (see `error_quote`).
    DstUnreachable {
        code: u8,
        invoking: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        invoking: &'a [u8],
    },
    /// Destination unreachable, fragmentation needed and DF set (code 4),
    /// with the next hop's MTU (RFC 1191).
    FragNeeded {
        mtu: u16,
        invoking: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Reads one of the four messages above. The checksum is not verified
    /// (use the view); other types are `Malformed`.
    pub fn parse(bytes: &'a [u8]) -> Result<Icmpv4Repr<'a>> {
        let p = Icmpv4Packet::new_checked(bytes)?;
        let data = &bytes[HEADER_LEN..];
        let (ident, seq_no) = (p.echo_ident(), p.echo_seq_no());
        Ok(match p.msg_type() {
            msg::ECHO_REQUEST => Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            },
            msg::ECHO_REPLY => Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            },
            msg::DST_UNREACHABLE if p.code() == code::FRAG_NEEDED => Icmpv4Repr::FragNeeded {
                mtu: p.echo_seq_no(),
                invoking: data,
            },
            msg::DST_UNREACHABLE => Icmpv4Repr::DstUnreachable {
                code: p.code(),
                invoking: data,
            },
            msg::TIME_EXCEEDED => Icmpv4Repr::TimeExceeded {
                code: p.code(),
                invoking: data,
            },
            _ => {
                return Err(Error::new(
                    Layer::Icmpv4,
                    ErrorKind::Malformed("unsupported message type"),
                ))
            }
        })
    }

    fn body(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => data,
            Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. }
            | Icmpv4Repr::FragNeeded { invoking, .. } => invoking,
        }
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body().len()
    }

    /// Writes the message and its checksum at the start of `buf`. The 4
    /// bytes after the checksum of an error are zero, but for the MTU of
    /// `FragNeeded`.
    ///
    /// # Panics
    /// If `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let body = self.body();
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..HEADER_LEN + body.len()]);
        let (msg_type, code, ident, seq_no) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. } => (msg::ECHO_REQUEST, 0, ident, seq_no),
            Icmpv4Repr::EchoReply { ident, seq_no, .. } => (msg::ECHO_REPLY, 0, ident, seq_no),
            Icmpv4Repr::DstUnreachable { code, .. } => (msg::DST_UNREACHABLE, code, 0, 0),
            Icmpv4Repr::TimeExceeded { code, .. } => (msg::TIME_EXCEEDED, code, 0, 0),
            // The next-hop MTU is the low half of the word an echo's
            // sequence number occupies.
            Icmpv4Repr::FragNeeded { mtu, .. } => (msg::DST_UNREACHABLE, code::FRAG_NEEDED, 0, mtu),
        };
        p.set_msg_type(msg_type);
        p.set_code(code);
        p.set_echo_ident(ident);
        p.set_echo_seq_no(seq_no);
        p.data_mut().copy_from_slice(body);
        p.fill_checksum();
    }
}

/// The part of `ip_packet` (an IPv4 datagram from its header on) an ICMP
/// error should quote: as much as fits in a 576-byte error (RFC 1812
/// 4.3.2.3), which is always more than the header plus 8 bytes RFC 792 asks
/// for. Bytes past the datagram's `total_len`, like Ethernet padding, are
/// left out when the header is readable.
pub fn error_quote(ip_packet: &[u8]) -> &[u8] {
    let len = match Ipv4Packet::new_checked(ip_packet) {
        Ok(p) => p.total_len(),
        Err(_) => ip_packet.len(),
    };
    &ip_packet[..len.min(MAX_ERROR_QUOTE)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        ICMPV4_ECHO_REQUEST, ICMPV4_PORT_UNREACHABLE, IPV4_FIRST_FRAGMENT, UDP_DNS_QUERY,
    };

    /// The ICMP message of an untagged frame with a 20-byte IPv4 header.
    fn icmp(frame: &[u8]) -> &[u8] {
        &frame[34..]
    }

    #[test]
    fn deconstruct_echo_request() {
        let p = Icmpv4Packet::new_checked(icmp(&ICMPV4_ECHO_REQUEST)).unwrap();
        assert_eq!(p.msg_type(), msg::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x046e);
        assert_eq!(p.echo_ident(), 3755);
        assert_eq!(p.echo_seq_no(), 1);
        assert!(p.is_echo());
        assert_eq!(p.data().len(), 56);
        // Linux ping fills the data after its 16-byte timeval with 0x10, 0x11, ...
        assert!(p.data()[16..].iter().copied().eq(0x10..0x38));
        assert!(p.verify_checksum());
    }

    #[test]
    fn echo_reply_built_from_request() {
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = Icmpv4Repr::parse(icmp(&ICMPV4_ECHO_REQUEST)).unwrap()
        else {
            panic!("not an echo request");
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = vec![0u8; reply.buffer_len()];
        reply.emit(&mut buf);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), msg::ECHO_REPLY);
        assert_eq!(p.data(), data);
        // Only the type changed, so the checksum moved by exactly 0x0800.
        assert_eq!(p.checksum(), checksum::update16(0x046e, 0x0800, 0x0000));
    }

    #[test]
    fn construct_echo_round_trips() {
        let repr = Icmpv4Repr::parse(icmp(&ICMPV4_ECHO_REQUEST)).unwrap();
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], icmp(&ICMPV4_ECHO_REQUEST));
    }

    #[test]
    fn port_unreachable_round_trips() {
        let bytes = icmp(&ICMPV4_PORT_UNREACHABLE);
        let p = Icmpv4Packet::new_checked(bytes).unwrap();
        assert!(p.verify_checksum());
        let repr = Icmpv4Repr::parse(bytes).unwrap();
        let invoking = &UDP_DNS_QUERY[14..];
        assert_eq!(
            repr,
            Icmpv4Repr::DstUnreachable {
                code: code::PORT_UNREACHABLE,
                invoking
            }
        );
        // Linux quotes the whole 57-byte datagram, as error_quote does.
        assert_eq!(error_quote(invoking), invoking);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf);
        assert_eq!(&buf[..], bytes);
    }

    #[test]
    fn time_exceeded_emits() {
        let invoking = error_quote(&IPV4_FIRST_FRAGMENT[14..]);
        let repr = Icmpv4Repr::TimeExceeded {
            code: code::TTL_EXCEEDED,
            invoking,
        };
        let mut buf = vec![0xaa; repr.buffer_len()];
        repr.emit(&mut buf);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.msg_type(), p.code(), p.echo_ident(), p.echo_seq_no()),
            (11, 0, 0, 0)
        );
        assert_eq!(Icmpv4Repr::parse(&buf), Ok(repr));
    }

    #[test]
    fn frag_needed_carries_the_mtu() {
        let invoking = error_quote(&UDP_DNS_QUERY[14..]);
        let repr = Icmpv4Repr::FragNeeded {
            mtu: 1450,
            invoking,
        };
        let mut buf = vec![0xaa; repr.buffer_len()];
        repr.emit(&mut buf);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(&buf[..8], &[3, 4, buf[2], buf[3], 0, 0, 0x05, 0xaa]);
        assert_eq!(Icmpv4Repr::parse(&buf), Ok(repr));
    }

    #[test]
    fn error_quote_bounds() {
        // A big datagram is cut to 548 bytes.
        let mut big = vec![0u8; 1500];
        big[..20].copy_from_slice(&UDP_DNS_QUERY[14..34]);
        big[2..4].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(error_quote(&big).len(), MAX_ERROR_QUOTE);
        // Padding after total_len is not quoted.
        let mut padded = UDP_DNS_QUERY[14..].to_vec();
        padded.extend_from_slice(&[0; 9]);
        assert_eq!(error_quote(&padded), &UDP_DNS_QUERY[14..]);
        // Unreadable input is quoted as given, within the bound.
        assert_eq!(error_quote(&[1, 2, 3]), &[1, 2, 3]);
    }

    #[test]
    fn setters_and_unsupported_types() {
        let mut b = icmp(&ICMPV4_ECHO_REQUEST).to_vec();
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(msg::TIMESTAMP);
        p.set_code(1);
        p.set_echo_ident(7);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.msg_type(), p.code(), p.echo_ident()),
            (msg::TIMESTAMP, 1, 7)
        );
        assert_eq!(
            Icmpv4Repr::parse(&b).unwrap_err().kind,
            ErrorKind::Malformed("unsupported message type")
        );
        assert_eq!(
            Icmpv4Repr::parse(&b[..7]).unwrap_err(),
            Error::truncated(Layer::Icmpv4, 8, 7)
        );
    }
}
