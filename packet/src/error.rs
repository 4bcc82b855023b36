//! Parse errors that say which layer failed, where it starts in the frame and
//! what was wrong, so a drop counter or a trace can name the cause.

use core::fmt;

/// The protocol layer an error belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Layer {
    Ethernet,
    Vlan,
    Arp,
    Ipv4,
    Ipv6,
    Icmpv4,
    Icmpv6,
    Tcp,
    Udp,
    /// The virtio-net header in front of a frame.
    Vnet,
    Vxlan,
}

impl Layer {
    pub const fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "vlan",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Icmpv4 => "icmpv4",
            Layer::Icmpv6 => "icmpv6",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Vnet => "virtio-net",
            Layer::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was wrong with a layer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ErrorKind {
    /// The buffer ends before the fixed part of the header does.
    Truncated { needed: usize, got: usize },
    /// The version nibble is not the one of the layer.
    BadVersion(u8),
    /// A header length field (IPv4 IHL, TCP data offset) is below the minimum
    /// or points past the buffer; the value is in bytes.
    BadHeaderLen(usize),
    /// A length field claims more bytes than the buffer holds, or fewer than
    /// its own header.
    BadTotalLen { claimed: usize, available: usize },
    /// More stacked VLAN tags than `vlan::MAX_TAGS`.
    TooManyTags,
    /// More IPv6 extension headers than `ipv6::MAX_EXTENSIONS`.
    TooManyExtensions,
    /// Anything else, said in a few words.
    Malformed(&'static str),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::Truncated { needed, got } => {
                write!(f, "truncated, needs {needed} bytes, has {got}")
            }
            ErrorKind::BadVersion(v) => write!(f, "bad version {v}"),
            ErrorKind::BadHeaderLen(n) => write!(f, "bad header length {n}"),
            ErrorKind::BadTotalLen { claimed, available } => {
                write!(f, "bad length, claims {claimed} bytes, has {available}")
            }
            ErrorKind::TooManyTags => write!(f, "more than {} VLAN tags", crate::vlan::MAX_TAGS),
            ErrorKind::TooManyExtensions => write!(
                f,
                "more than {} extension headers",
                crate::ipv6::MAX_EXTENSIONS
            ),
            ErrorKind::Malformed(what) => write!(f, "malformed, {what}"),
        }
    }
}

/// A layer that could not be parsed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Error {
    pub layer: Layer,
    /// Where the layer starts in the frame. Views only see their own buffer
    /// and report 0; `Parsed::parse` sets the frame offset.
    pub offset: usize,
    pub kind: ErrorKind,
}

impl Error {
    pub const fn new(layer: Layer, kind: ErrorKind) -> Error {
        Error {
            layer,
            offset: 0,
            kind,
        }
    }

    pub const fn truncated(layer: Layer, needed: usize, got: usize) -> Error {
        Error::new(layer, ErrorKind::Truncated { needed, got })
    }

    /// The same error with the layer placed at `offset` in the frame.
    pub const fn with_offset(self, offset: usize) -> Error {
        Error { offset, ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}: {}", self.layer, self.offset, self.kind)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_layer_offset_and_cause() {
        let e = Error::truncated(Layer::Ipv4, 20, 12).with_offset(18);
        assert_eq!(
            e.to_string(),
            "ipv4 at offset 18: truncated, needs 20 bytes, has 12"
        );
        let e = Error::new(Layer::Vlan, ErrorKind::TooManyTags).with_offset(14);
        assert_eq!(e.to_string(), "vlan at offset 14: more than 2 VLAN tags");
        let e = Error::new(
            Layer::Udp,
            ErrorKind::BadTotalLen {
                claimed: 300,
                available: 37,
            },
        );
        assert_eq!(
            e.to_string(),
            "udp at offset 0: bad length, claims 300 bytes, has 37"
        );
    }
}
