//! Counters. Every drop has a reason, counted on the port the frame came in by.

use core::fmt;

/// Why the pipeline dropped a frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DropReason {
    /// The frame failed to parse: truncated or lying headers.
    Malformed,
    /// A tagged frame whose VLAN the ingress port does not carry.
    VlanNotAllowed,
    /// Source MAC is multicast, broadcast or zero.
    BadSourceMac,
    /// The destination was learned on the port the frame came in by.
    SameSegment,
    /// No other port of the L2 domain to deliver to.
    NoEgress,
    /// Addressed to the gateway, but nothing there handles it.
    NotForUs,
    /// Routed to an address no network holds.
    NoRoute,
    /// The FDB is full of static entries and learning failed.
    FdbFull,
    /// Routed with TTL 1 (answered with ICMP time exceeded).
    TtlExceeded,
    /// Routed to an address nobody answered ARP for yet (the gateway asked).
    NeighbourUnresolved,
    /// A rule's DROP or a chain's DROP policy (isolation between networks
    /// is such a rule).
    Filtered,
    /// A rule's REJECT; the sender was answered with an ICMP error or RST.
    Rejected,
    /// The connection table was full of assured entries.
    ConntrackFull,
    /// Another connection already holds the tuple this one would take.
    ConntrackClash,
    /// A nat rule chose a translation the switch cannot carry out: in
    /// OUTPUT, or MASQUERADE/REDIRECT where it has no address.
    NatUnsupported,
    /// No free address and port was left for a translation.
    NatExhausted,
    /// Larger than the egress port carries (a vxlan port's `mtu`); the
    /// sender was told with ICMP fragmentation-needed if it set DF.
    TooBig,
    /// A datagram on a vxlan port without a valid VXLAN header (too short,
    /// I flag clear) or, sealed, too short for its nonce and tag.
    VxlanMalformed,
    /// A VXLAN header with a VNI not the port's.
    VxlanBadVni,
    /// From a VTEP not in the port's `remote` list.
    VxlanUnknownPeer,
    /// A sealed datagram whose tag does not match (another key, or altered).
    VxlanForged,
    /// A sealed datagram whose counter was taken before, or is too old.
    VxlanReplayed,
    /// Came in by a macvlan/ipvlan parent addressed to none of the
    /// network's endpoints: the host's or other machines' traffic.
    NotAnEndpoint,
    /// An ipvlan L3 network carries routed unicast IPv4 only: broadcast,
    /// multicast and frames not for the switch stop at it.
    NotRouted,
    /// Port security: the source MAC or IP, or the ARP sender, was not the
    /// port's own.
    Spoofed,
    /// Storm control: the port sent broadcast or multicast faster than its
    /// `storm_pps`.
    Storm,
}

impl DropReason {
    pub const ALL: [DropReason; 26] = [
        DropReason::Malformed,
        DropReason::VlanNotAllowed,
        DropReason::BadSourceMac,
        DropReason::SameSegment,
        DropReason::NoEgress,
        DropReason::NotForUs,
        DropReason::NoRoute,
        DropReason::FdbFull,
        DropReason::TtlExceeded,
        DropReason::NeighbourUnresolved,
        DropReason::Filtered,
        DropReason::Rejected,
        DropReason::ConntrackFull,
        DropReason::ConntrackClash,
        DropReason::NatUnsupported,
        DropReason::NatExhausted,
        DropReason::TooBig,
        DropReason::VxlanMalformed,
        DropReason::VxlanBadVni,
        DropReason::VxlanUnknownPeer,
        DropReason::VxlanForged,
        DropReason::VxlanReplayed,
        DropReason::NotAnEndpoint,
        DropReason::NotRouted,
        DropReason::Spoofed,
        DropReason::Storm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::VlanNotAllowed => "vlan_not_allowed",
            DropReason::BadSourceMac => "bad_source_mac",
            DropReason::SameSegment => "same_segment",
            DropReason::NoEgress => "no_egress",
            DropReason::NotForUs => "not_for_us",
            DropReason::NoRoute => "no_route",
            DropReason::FdbFull => "fdb_full",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NeighbourUnresolved => "neighbour_unresolved",
            DropReason::Filtered => "filtered",
            DropReason::Rejected => "rejected",
            DropReason::ConntrackFull => "conntrack_full",
            DropReason::ConntrackClash => "conntrack_clash",
            DropReason::NatUnsupported => "nat_unsupported",
            DropReason::NatExhausted => "nat_exhausted",
            DropReason::TooBig => "too_big",
            DropReason::VxlanMalformed => "vxlan_malformed",
            DropReason::VxlanBadVni => "vxlan_bad_vni",
            DropReason::VxlanUnknownPeer => "vxlan_unknown_peer",
            DropReason::VxlanForged => "vxlan_forged",
            DropReason::VxlanReplayed => "vxlan_replayed",
            DropReason::NotAnEndpoint => "not_an_endpoint",
            DropReason::NotRouted => "not_routed",
            DropReason::Spoofed => "spoofed",
            DropReason::Storm => "storm",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-port packet and byte counters, plus drops by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl PortStats {
    pub fn rx(&mut self, bytes: usize) {
        self.rx_packets += 1;
        self.rx_bytes += bytes as u64;
    }

    pub fn tx(&mut self, bytes: usize) {
        self.tx_packets += 1;
        self.tx_bytes += bytes as u64;
    }

    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Reasons with a non-zero count.
    pub fn drop_counts(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.drops(r)))
            .filter(|&(_, n)| n > 0)
    }
}

/// Errors the I/O layer met on its own, outside the pipeline's counters,
/// and the frames each datapath thread received.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct IoStats {
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub thread_frames: Vec<u64>,
    /// `sendmmsg` calls to AF_PACKET and vxlan sockets, and the frames
    /// they wrote.
    pub tx_batches: u64,
    pub tx_batched: u64,
}
