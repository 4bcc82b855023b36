//! DHCP messages (RFC 2131 section 2, options from RFC 2132): a view over
//! the fixed BOOTP header and an owned `DhcpRepr` for what the server reads
//! and writes.
//!
//! Options are read from the `options` field only. Option 52 (overload:
//! more options in `sname` and `file`) is not honoured; a client that needs
//! it is served as if those fields held none. An option that appears more
//! than once is concatenated (RFC 3396), and `emit` splits one longer than
//! 255 bytes the same way. Options the server has no use for are skipped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use packet::MacAddr;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// Opens the options field (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// The fixed BOOTP header and the magic cookie.
pub const HEADER_LEN: usize = 240;

/// BOOTP's 64-byte vendor field made 300 bytes the shortest message, and
/// some clients still drop anything shorter, so replies are padded to it.
pub const MIN_LEN: usize = 300;

/// The `flags` bit asking for a broadcast reply.
const BROADCAST_FLAG: u16 = 0x8000;

const HTYPE_ETHERNET: u8 = 1;

mod field {
    use core::ops::Range;

    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const XID: Range<usize> = 4..8;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    pub const COOKIE: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// Option codes (RFC 2132).
pub mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const BROADCAST_ADDR: u8 = 28;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// Why bytes are not a DHCP message the server can use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// Shorter than the fixed header and cookie (`HEADER_LEN`).
    Truncated {
        len: usize,
    },
    BadCookie,
    /// Only Ethernet hardware addresses (htype 1, hlen 6) are served.
    NotEthernet {
        htype: u8,
        hlen: u8,
    },
    BadOp(u8),
    /// The option starting at `offset` runs past the end of the message.
    OptionOverrun {
        code: u8,
        offset: usize,
    },
    /// A known option whose (concatenated) length its type does not allow.
    BadOptionLen {
        code: u8,
        len: usize,
    },
    NoMessageType,
    UnknownMessageType(u8),
}

/// A view of a DHCP message. After `check_len`, the fixed header and the
/// cookie are in the buffer and no accessor panics.
#[derive(Debug, Clone)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = DhcpPacket { buffer };
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated { len: b.len() });
        }
        if b[field::COOKIE] != MAGIC_COOKIE {
            return Err(Error::BadCookie);
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn ip(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let mut o = [0u8; 4];
        o.copy_from_slice(&self.bytes()[r]);
        Ipv4Addr::from(o)
    }

    pub fn op(&self) -> u8 {
        self.bytes()[field::OP]
    }

    pub fn htype(&self) -> u8 {
        self.bytes()[field::HTYPE]
    }

    pub fn hlen(&self) -> u8 {
        self.bytes()[field::HLEN]
    }

    pub fn xid(&self) -> u32 {
        let mut o = [0u8; 4];
        o.copy_from_slice(&self.bytes()[field::XID]);
        u32::from_be_bytes(o)
    }

    pub fn flags(&self) -> u16 {
        let b = &self.bytes()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ip(field::CIADDR)
    }

    pub fn yiaddr(&self) -> Ipv4Addr {
        self.ip(field::YIADDR)
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        self.ip(field::GIADDR)
    }

    /// The first six bytes of `chaddr`: the MAC when `hlen` is 6.
    pub fn chaddr(&self) -> MacAddr {
        let mut o = [0u8; 6];
        o.copy_from_slice(&self.bytes()[field::CHADDR][..6]);
        MacAddr(o)
    }

    /// The options, up to the End option or the end of the buffer, pads
    /// skipped.
    pub fn options(&self) -> Options<'_> {
        Options {
            bytes: self.bytes(),
            offset: field::OPTIONS,
        }
    }
}

/// The options of a message as `(code, data)`; an option running past the
/// end yields one error and ends the iteration.
pub struct Options<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.offset;
            let code = *self.bytes.get(start)?;
            match code {
                option::PAD => self.offset += 1,
                option::END => {
                    self.offset = self.bytes.len();
                    return None;
                }
                _ => {
                    self.offset = self.bytes.len();
                    let overrun = Err(Error::OptionOverrun {
                        code,
                        offset: start,
                    });
                    let Some(&len) = self.bytes.get(start + 1) else {
                        return Some(overrun);
                    };
                    let end = start + 2 + usize::from(len);
                    let Some(data) = self.bytes.get(start + 2..end) else {
                        return Some(overrun);
                    };
                    self.offset = end;
                    return Some(Ok((code, data)));
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    BootRequest = 1,
    BootReply = 2,
}

/// Option 53.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl TryFrom<u8> for MessageType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return Err(Error::UnknownMessageType(v)),
        })
    }
}

/// A DHCP message over Ethernet with the options the server uses. `hops`,
/// `secs`, `siaddr`, `sname` and `file` are not kept; `emit` writes them as
/// zero, as a server on the client's link does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DhcpRepr {
    pub op: Op,
    pub xid: u32,
    /// The broadcast bit of `flags`.
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: MacAddr,
    pub message_type: MessageType,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// Seconds, as are T1 and T2.
    pub lease_time: Option<u32>,
    pub renewal_time: Option<u32>,
    pub rebinding_time: Option<u32>,
    pub subnet_mask: Option<Ipv4Addr>,
    /// The first router of option 3.
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Not validated as a host name; bytes that are not UTF-8 are replaced.
    pub hostname: Option<String>,
    pub domain_name: Option<String>,
    pub broadcast_addr: Option<Ipv4Addr>,
    pub client_id: Option<Vec<u8>>,
    pub parameter_request_list: Vec<u8>,
    pub max_message_size: Option<u16>,
}

impl DhcpRepr {
    /// A message with no options but the type; a base for building.
    pub fn new(op: Op, message_type: MessageType, xid: u32, chaddr: MacAddr) -> DhcpRepr {
        DhcpRepr {
            op,
            xid,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            message_type,
            requested_ip: None,
            server_id: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: None,
            router: None,
            dns: Vec::new(),
            hostname: None,
            domain_name: None,
            broadcast_addr: None,
            client_id: None,
            parameter_request_list: Vec::new(),
            max_message_size: None,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<DhcpRepr, Error> {
        let p = DhcpPacket::new_checked(bytes)?;
        if p.htype() != HTYPE_ETHERNET || p.hlen() != 6 {
            return Err(Error::NotEthernet {
                htype: p.htype(),
                hlen: p.hlen(),
            });
        }
        let op = match p.op() {
            1 => Op::BootRequest,
            2 => Op::BootReply,
            v => return Err(Error::BadOp(v)),
        };
        let mut opts: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        for o in p.options() {
            let (code, data) = o?;
            opts.entry(code).or_default().extend_from_slice(data);
        }
        let get = |code| opts.get(&code).map(Vec::as_slice);
        // An empty name or client id says nothing (RFC 2132: at least one
        // byte), and `emit` leaves empty ones out.
        let some = |code| get(code).filter(|d| !d.is_empty());
        let message_type = match get(option::MESSAGE_TYPE) {
            None => return Err(Error::NoMessageType),
            Some(&[t]) => MessageType::try_from(t)?,
            Some(d) => return Err(bad_len(option::MESSAGE_TYPE, d)),
        };
        Ok(DhcpRepr {
            op,
            xid: p.xid(),
            broadcast: p.flags() & BROADCAST_FLAG != 0,
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            giaddr: p.giaddr(),
            chaddr: p.chaddr(),
            message_type,
            requested_ip: get(option::REQUESTED_IP)
                .map(ip_of(option::REQUESTED_IP))
                .transpose()?,
            server_id: get(option::SERVER_ID)
                .map(ip_of(option::SERVER_ID))
                .transpose()?,
            lease_time: get(option::LEASE_TIME)
                .map(u32_of(option::LEASE_TIME))
                .transpose()?,
            renewal_time: get(option::RENEWAL_TIME)
                .map(u32_of(option::RENEWAL_TIME))
                .transpose()?,
            rebinding_time: get(option::REBINDING_TIME)
                .map(u32_of(option::REBINDING_TIME))
                .transpose()?,
            subnet_mask: get(option::SUBNET_MASK)
                .map(ip_of(option::SUBNET_MASK))
                .transpose()?,
            router: match get(option::ROUTER) {
                None => None,
                Some(d) => ips_of(option::ROUTER, d)?.first().copied(),
            },
            dns: get(option::DNS).map_or(Ok(Vec::new()), |d| ips_of(option::DNS, d))?,
            hostname: some(option::HOSTNAME).map(text),
            domain_name: some(option::DOMAIN_NAME).map(text),
            broadcast_addr: get(option::BROADCAST_ADDR)
                .map(ip_of(option::BROADCAST_ADDR))
                .transpose()?,
            client_id: some(option::CLIENT_ID).map(<[u8]>::to_vec),
            parameter_request_list: get(option::PARAMETER_REQUEST_LIST)
                .map_or_else(Vec::new, <[u8]>::to_vec),
            max_message_size: match get(option::MAX_MESSAGE_SIZE) {
                None => None,
                Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
                Some(d) => return Err(bad_len(option::MAX_MESSAGE_SIZE, d)),
            },
        })
    }

    /// Calls `f` with each option to emit, in the order they go out.
    fn each_option(&self, mut f: impl FnMut(u8, &[u8])) {
        let ip = |f: &mut dyn FnMut(u8, &[u8]), code, v: Option<Ipv4Addr>| {
            if let Some(v) = v {
                f(code, &v.octets());
            }
        };
        let secs = |f: &mut dyn FnMut(u8, &[u8]), code, v: Option<u32>| {
            if let Some(v) = v {
                f(code, &v.to_be_bytes());
            }
        };
        f(option::MESSAGE_TYPE, &[self.message_type as u8]);
        ip(&mut f, option::SERVER_ID, self.server_id);
        ip(&mut f, option::REQUESTED_IP, self.requested_ip);
        secs(&mut f, option::LEASE_TIME, self.lease_time);
        secs(&mut f, option::RENEWAL_TIME, self.renewal_time);
        secs(&mut f, option::REBINDING_TIME, self.rebinding_time);
        ip(&mut f, option::SUBNET_MASK, self.subnet_mask);
        ip(&mut f, option::BROADCAST_ADDR, self.broadcast_addr);
        ip(&mut f, option::ROUTER, self.router);
        let dns: Vec<u8> = self.dns.iter().flat_map(|a| a.octets()).collect();
        f(option::DNS, &dns);
        if let Some(d) = &self.domain_name {
            f(option::DOMAIN_NAME, d.as_bytes());
        }
        if let Some(h) = &self.hostname {
            f(option::HOSTNAME, h.as_bytes());
        }
        if let Some(m) = self.max_message_size {
            f(option::MAX_MESSAGE_SIZE, &m.to_be_bytes());
        }
        f(option::PARAMETER_REQUEST_LIST, &self.parameter_request_list);
        if let Some(c) = &self.client_id {
            f(option::CLIENT_ID, c);
        }
    }

    pub fn buffer_len(&self) -> usize {
        let mut len = HEADER_LEN + 1;
        self.each_option(|_, data| {
            len += data.len() + 2 * data.len().div_ceil(255);
        });
        len.max(MIN_LEN)
    }

    /// Writes the message, End and padding up to `MIN_LEN`. Empty options
    /// are left out.
    ///
    /// # Panics
    /// If `buf` is shorter than `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        buf.fill(0);
        buf[field::OP] = self.op as u8;
        buf[field::HTYPE] = HTYPE_ETHERNET;
        buf[field::HLEN] = 6;
        buf[field::XID].copy_from_slice(&self.xid.to_be_bytes());
        let flags = if self.broadcast { BROADCAST_FLAG } else { 0 };
        buf[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
        buf[field::CIADDR].copy_from_slice(&self.ciaddr.octets());
        buf[field::YIADDR].copy_from_slice(&self.yiaddr.octets());
        buf[field::GIADDR].copy_from_slice(&self.giaddr.octets());
        buf[field::CHADDR][..6].copy_from_slice(&self.chaddr.octets());
        buf[field::COOKIE].copy_from_slice(&MAGIC_COOKIE);
        let mut at = field::OPTIONS;
        self.each_option(|code, data| {
            for chunk in data.chunks(255) {
                buf[at] = code;
                // chunks(255) keeps the length in a byte.
                buf[at + 1] = chunk.len() as u8;
                buf[at + 2..at + 2 + chunk.len()].copy_from_slice(chunk);
                at += 2 + chunk.len();
            }
        });
        buf[at] = option::END;
    }
}

fn bad_len(code: u8, data: &[u8]) -> Error {
    Error::BadOptionLen {
        code,
        len: data.len(),
    }
}

fn ip_of(code: u8) -> impl Fn(&[u8]) -> Result<Ipv4Addr, Error> {
    move |d| match d {
        &[a, b, c, e] => Ok(Ipv4Addr::new(a, b, c, e)),
        _ => Err(bad_len(code, d)),
    }
}

fn u32_of(code: u8) -> impl Fn(&[u8]) -> Result<u32, Error> {
    move |d| match d {
        &[a, b, c, e] => Ok(u32::from_be_bytes([a, b, c, e])),
        _ => Err(bad_len(code, d)),
    }
}

/// A list of one or more addresses.
fn ips_of(code: u8, d: &[u8]) -> Result<Vec<Ipv4Addr>, Error> {
    let quads = d.chunks_exact(4);
    if d.is_empty() || !quads.remainder().is_empty() {
        return Err(bad_len(code, d));
    }
    Ok(quads
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect())
}

fn text(d: &[u8]) -> String {
    String::from_utf8_lossy(d).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0x42, 0x0a, 0x0a, 0x00, 0x02]);

    fn full() -> DhcpRepr {
        let mut r = DhcpRepr::new(Op::BootReply, MessageType::Ack, 0xdead_beef, MAC);
        r.broadcast = true;
        r.ciaddr = Ipv4Addr::new(10, 10, 0, 9);
        r.yiaddr = Ipv4Addr::new(10, 10, 0, 2);
        r.giaddr = Ipv4Addr::new(10, 9, 0, 1);
        r.requested_ip = Some(Ipv4Addr::new(10, 10, 0, 2));
        r.server_id = Some(Ipv4Addr::new(10, 10, 0, 1));
        r.lease_time = Some(3600);
        r.renewal_time = Some(1800);
        r.rebinding_time = Some(3150);
        r.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
        r.router = Some(Ipv4Addr::new(10, 10, 0, 1));
        r.dns = vec![Ipv4Addr::new(10, 10, 0, 1), Ipv4Addr::new(9, 9, 9, 9)];
        r.hostname = Some("web".into());
        r.domain_name = Some("lab".into());
        r.broadcast_addr = Some(Ipv4Addr::new(10, 10, 0, 255));
        r.client_id = Some(vec![1, 2, 0x42, 10, 10, 0, 2]);
        r.parameter_request_list = vec![1, 3, 6];
        r.max_message_size = Some(1500);
        r
    }

    fn bytes(r: &DhcpRepr) -> Vec<u8> {
        let mut b = vec![0xaa; r.buffer_len()];
        r.emit(&mut b);
        b
    }

    #[test]
    fn round_trip() {
        let r = full();
        let b = bytes(&r);
        assert_eq!(DhcpRepr::parse(&b), Ok(r));
    }

    #[test]
    fn long_options_are_split_and_joined() {
        let mut r = full();
        r.domain_name = Some("d".repeat(300));
        let b = bytes(&r);
        assert_eq!(b.len(), r.buffer_len());
        let splits: Vec<usize> = DhcpPacket::new_checked(&b[..])
            .unwrap()
            .options()
            .map(Result::unwrap)
            .filter(|(c, _)| *c == option::DOMAIN_NAME)
            .map(|(_, d)| d.len())
            .collect();
        assert_eq!(splits, [255, 45]);
        assert_eq!(DhcpRepr::parse(&b), Ok(r));
    }

    #[test]
    fn malformed() {
        let good = bytes(&full());
        assert_eq!(
            DhcpRepr::parse(&good[..239]),
            Err(Error::Truncated { len: 239 })
        );
        let mut b = good.clone();
        b[236] = 0;
        assert_eq!(DhcpRepr::parse(&b), Err(Error::BadCookie));
        let mut b = good.clone();
        b[2] = 16;
        assert_eq!(
            DhcpRepr::parse(&b),
            Err(Error::NotEthernet { htype: 1, hlen: 16 })
        );
        let mut b = good.clone();
        b[0] = 3;
        assert_eq!(DhcpRepr::parse(&b), Err(Error::BadOp(3)));
        // The first option (53) claims more bytes than there are.
        let mut b = good[..244].to_vec();
        b[241] = 200;
        assert_eq!(
            DhcpRepr::parse(&b),
            Err(Error::OptionOverrun {
                code: 53,
                offset: 240
            })
        );
        // A length byte missing.
        let b = [&good[..240], &[option::SERVER_ID]].concat();
        assert_eq!(
            DhcpRepr::parse(&b),
            Err(Error::OptionOverrun {
                code: 54,
                offset: 240
            })
        );
        let b = [&good[..240], &[53, 1, 1, 54, 3, 10, 0, 0, 255]].concat();
        assert_eq!(
            DhcpRepr::parse(&b),
            Err(Error::BadOptionLen { code: 54, len: 3 })
        );
        let b = [&good[..240], &[6, 0, 53, 1, 1, 255]].concat();
        assert_eq!(
            DhcpRepr::parse(&b),
            Err(Error::BadOptionLen { code: 6, len: 0 })
        );
        let b = [&good[..240], &[0, 0, 255]].concat();
        assert_eq!(DhcpRepr::parse(&b), Err(Error::NoMessageType));
        let b = [&good[..240], &[53, 1, 9, 255]].concat();
        assert_eq!(DhcpRepr::parse(&b), Err(Error::UnknownMessageType(9)));
    }

    #[test]
    fn pads_and_missing_end() {
        let good = bytes(&full());
        // Pads before the type; no End: the buffer's end closes the options.
        let b = [&good[..240], &[0, 0, 53, 1, 1]].concat();
        let r = DhcpRepr::parse(&b).unwrap();
        assert_eq!(r.message_type, MessageType::Discover);
        // Anything after End is ignored.
        let b = [&good[..240], &[53, 1, 1, 255, 54, 9]].concat();
        assert_eq!(DhcpRepr::parse(&b).unwrap().server_id, None);
    }
}
