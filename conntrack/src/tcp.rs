//! TCP as nf_conntrack_proto_tcp.c tracks it: the same state table, the
//! same flag validation, and the same window tracking (`tcp_in_window`)
//! minus SACK blocks and the retransmission counter.
//!
//! We are strict where Linux is loose by default: only a SYN starts an
//! entry (Linux `nf_conntrack_tcp_loose=1` picks connections up from any
//! ACK). A switch that saw a flow's first packet has no mid-stream flows
//! to pick up, and strictness keeps stray ACKs from creating entries.

use core::fmt;
use std::time::Duration;

use crate::{Dir, Timeouts};

pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const ACK: u8 = 0x10;
const URG: u8 = 0x20;

/// Connection states, named as `conntrack -L` prints them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TcpState {
    None,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    /// Simultaneous open: a SYN answered by a SYN.
    SynSent2,
}

impl TcpState {
    const ALL: [TcpState; 10] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::SynSent2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }

    fn timeout(self, t: &Timeouts) -> Duration {
        match self {
            TcpState::None | TcpState::SynSent | TcpState::SynSent2 => t.tcp_syn_sent,
            TcpState::SynRecv => t.tcp_syn_recv,
            TcpState::Established => t.tcp_established,
            TcpState::FinWait => t.tcp_fin_wait,
            TcpState::CloseWait => t.tcp_close_wait,
            TcpState::LastAck => t.tcp_last_ack,
            TcpState::TimeWait => t.tcp_time_wait,
            TcpState::Close => t.tcp_close,
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// Cells of the state table: a state's position in `TcpState::ALL`, or one
// of these.
const IV: u8 = 10;
const IG: u8 = 11;
const SS: u8 = 1;
const SR: u8 = 2;
const ES: u8 = 3;
const FW: u8 = 4;
const CW: u8 = 5;
const LA: u8 = 6;
const TW: u8 = 7;
const CL: u8 = 8;
const S2: u8 = 9;

/// `tcp_conntracks[dir][packet kind][old state]`, copied from Linux.
/// Packet kinds: SYN, SYN/ACK, FIN, ACK, RST, none of these.
#[rustfmt::skip]
const TABLE: [[[u8; 10]; 6]; 2] = [
    [
        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /*syn*/  [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        /*sack*/ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        /*fin*/  [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /*ack*/  [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        /*rst*/  [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /*none*/ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    [
        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /*syn*/  [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        /*sack*/ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        /*fin*/  [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /*ack*/  [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        /*rst*/  [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /*none*/ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

const KIND_SYN: usize = 0;
const KIND_RST: usize = 4;

fn kind(flags: u8) -> usize {
    if flags & RST != 0 {
        KIND_RST
    } else if flags & SYN != 0 {
        if flags & ACK != 0 {
            1
        } else {
            KIND_SYN
        }
    } else if flags & FIN != 0 {
        2
    } else if flags & ACK != 0 {
        3
    } else {
        5
    }
}

/// Linux `tcp_valid_flags`: the combinations a real stack sends, PSH, ECE
/// and CWR aside.
fn valid_flags(flags: u8) -> bool {
    const SYN_URG: u8 = SYN | URG;
    const SYN_ACK: u8 = SYN | ACK;
    const RST_ACK: u8 = RST | ACK;
    const FIN_ACK: u8 = FIN | ACK;
    const FIN_ACK_URG: u8 = FIN | ACK | URG;
    const ACK_URG: u8 = ACK | URG;
    matches!(
        flags & (FIN | SYN | RST | ACK | URG),
        SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
    )
}

fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// The TCP facts of one segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub wscale: Option<u8>,
    pub payload_len: u32,
}

impl Segment {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Sequence number after this segment: data, plus one each for SYN
    /// and FIN.
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(u32::from(self.has(SYN)))
            .wrapping_add(u32::from(self.has(FIN)))
    }
}

const PEER_WSCALE: u8 = 1 << 0;
const PEER_MAXACK_SET: u8 = 1 << 1;
const PEER_DATA_UNACK: u8 = 1 << 2;

/// Linux `ip_ct_tcp_state`, less its scale and flags, which `TcpConn`
/// keeps beside the pair so the entry packs tighter.
#[derive(Clone, Copy, Debug, Default)]
struct Peer {
    /// Highest sequence number sent, plus one.
    end: u32,
    /// Highest sequence number the other side's window allows.
    maxend: u32,
    /// Largest window advertised; 0 until this side has sent anything.
    maxwin: u32,
    /// Highest ack sent.
    maxack: u32,
}

/// What a segment does to a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Verdict {
    /// Moved from one state to another (or stayed).
    Accept {
        old: TcpState,
        new: TcpState,
    },
    /// Let through without touching the state (Linux `sIG`), e.g. a
    /// retransmitted SYN/ACK or a SYN on an established connection.
    Ignore,
    /// A SYN on a connection in TIME_WAIT or CLOSE: the old entry is to
    /// go and the SYN to start a new one.
    Reopen,
    Invalid,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpConn {
    seen: [Peer; 2],
    /// Window scale shift of each side.
    scale: [u8; 2],
    /// `PEER_*` bits of each side.
    flags: [u8; 2],
    state: TcpState,
}

impl TcpConn {
    /// The connection a segment with no entry starts: only a bare SYN may.
    pub fn start(seg: &Segment) -> Option<TcpConn> {
        if !valid_flags(seg.flags) || kind(seg.flags) != KIND_SYN {
            return None;
        }
        let mut c = TcpConn {
            seen: [Peer::default(); 2],
            scale: [0; 2],
            flags: [0; 2],
            state: TcpState::SynSent,
        };
        c.init_from_syn(0, seg);
        Some(c)
    }

    fn init_from_syn(&mut self, side: usize, seg: &Segment) {
        let end = seg.end();
        let p = &mut self.seen[side];
        p.end = end;
        p.maxend = end;
        p.maxwin = u32::from(seg.window).max(1);
        match seg.wscale {
            // RFC 7323 caps the shift at 14, as Linux does.
            Some(s) => {
                self.scale[side] = s.min(14);
                self.flags[side] |= PEER_WSCALE;
            }
            None => {
                self.scale[side] = 0;
                self.flags[side] &= !PEER_WSCALE;
            }
        }
    }

    /// The sequence number a segment sent in `dir` carries next, and the
    /// acknowledgment number: what each side has sent so far.
    pub fn next_seq(&self, dir: Dir) -> (u32, u32) {
        (
            self.seen[dir.index()].end,
            self.seen[dir.opposite().index()].end,
        )
    }

    pub fn state(&self) -> TcpState {
        self.state
    }

    pub fn packet(&mut self, dir: Dir, seg: &Segment) -> Verdict {
        if !valid_flags(seg.flags) {
            return Verdict::Invalid;
        }
        let k = kind(seg.flags);
        let old = self.state;
        let cell = TABLE[dir.index()][k][old as usize];
        let new = match cell {
            IV => return Verdict::Invalid,
            IG => return Verdict::Ignore,
            c => TcpState::ALL.get(usize::from(c)).copied(),
        };
        let Some(new) = new else {
            return Verdict::Invalid;
        };
        if new == TcpState::SynSent && matches!(old, TcpState::TimeWait | TcpState::Close) {
            return Verdict::Reopen;
        }
        // A RST below what the other side has acknowledged is stale or
        // forged (Linux checks the same against td_maxack).
        let other = dir.opposite().index();
        if k == KIND_RST
            && self.flags[other] & PEER_MAXACK_SET != 0
            && before(seg.seq, self.seen[other].maxack)
        {
            return Verdict::Invalid;
        }
        // On a copy, so that an invalid segment leaves no trace.
        let mut next = *self;
        if !next.in_window(old, dir, seg) {
            return Verdict::Invalid;
        }
        *self = next;
        self.state = new;
        Verdict::Accept { old, new }
    }

    /// Linux `tcp_in_window`: is the segment within what the receiver's
    /// window allows, and does it acknowledge only data actually sent? If
    /// so, record what it sent and advertised.
    fn in_window(&mut self, state: TcpState, dir: Dir, seg: &Segment) -> bool {
        // Sender and receiver.
        let (sn, rc) = (dir.index(), dir.opposite().index());
        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let mut end = seg.end();
        let win = u32::from(seg.window);

        if self.seen[sn].maxwin == 0 {
            if seg.has(SYN) {
                // The SYN/ACK answering the SYN, or a SYN from the reply
                // side in a simultaneous open.
                self.init_from_syn(sn, seg);
                // RFC 7323: scaling only when both sides offer it.
                if self.flags[sn] & self.flags[rc] & PEER_WSCALE == 0 {
                    self.scale[sn] = 0;
                    self.scale[rc] = 0;
                }
                if !seg.has(ACK) {
                    return true;
                }
            } else {
                // This side's first segment is not a SYN (a RST or ACK
                // answering a SYN): take its numbers as they come.
                self.seen[sn].end = end;
                self.seen[sn].maxwin = (win << self.scale[sn]).max(1);
                self.seen[sn].maxend = end.wrapping_add(self.seen[sn].maxwin);
                if self.seen[rc].maxwin == 0 {
                    self.seen[rc].end = ack;
                    self.seen[rc].maxend = ack;
                } else if ack == self.seen[rc].end.wrapping_add(1) {
                    self.seen[rc].end = self.seen[rc].end.wrapping_add(1);
                }
            }
        } else if ((state == TcpState::SynSent && dir == Dir::Original)
            || (state == TcpState::SynRecv && dir == Dir::Reply))
            && after(end, self.seen[sn].end)
        {
            // A SYN (or SYN/ACK) resent with a new initial sequence number.
            self.init_from_syn(sn, seg);
        }

        if !seg.has(ACK) || (seg.has(RST) && ack == 0) {
            // No ack to check; some stacks send RST+ACK with ack 0.
            ack = self.seen[rc].end;
        }
        if seg.has(RST) && seq == 0 && state == TcpState::SynSent {
            // The RST answering a SYN.
            seq = self.seen[sn].end;
            end = self.seen[sn].end;
        }

        let max_ack_window = if self.seen[sn].maxwin == 0 {
            66_000
        } else {
            self.seen[sn].maxwin
        };
        let in_recv_window = self.seen[rc].maxwin == 0
            || after(
                end,
                self.seen[sn]
                    .end
                    .wrapping_sub(self.seen[rc].maxwin)
                    .wrapping_sub(1),
            );
        let ok = before(seq, self.seen[sn].maxend.wrapping_add(1))
            && in_recv_window
            && before(ack, self.seen[rc].end.wrapping_add(1))
            && after(
                ack,
                self.seen[rc]
                    .end
                    .wrapping_sub(max_ack_window)
                    .wrapping_sub(1),
            );
        if !ok {
            return false;
        }

        let win = if seg.has(SYN) {
            win
        } else {
            win << self.scale[sn]
        };
        self.seen[sn].maxwin = self.seen[sn].maxwin.max(win);
        if after(end, self.seen[sn].end) {
            self.seen[sn].end = end;
            self.flags[sn] |= PEER_DATA_UNACK;
        }
        if seg.has(ACK)
            && (self.flags[sn] & PEER_MAXACK_SET == 0 || after(ack, self.seen[sn].maxack))
        {
            self.seen[sn].maxack = ack;
            self.flags[sn] |= PEER_MAXACK_SET;
        }
        if self.seen[rc].maxwin != 0 && after(end, self.seen[sn].maxend) {
            let grown = end.wrapping_sub(self.seen[sn].maxend);
            self.seen[rc].maxwin = self.seen[rc].maxwin.wrapping_add(grown);
        }
        if after(ack.wrapping_add(win), self.seen[rc].maxend.wrapping_sub(1)) {
            self.seen[rc].maxend = ack.wrapping_add(win.max(1));
        }
        if ack == self.seen[rc].end {
            self.flags[rc] &= !PEER_DATA_UNACK;
        }
        true
    }

    /// The timeout after an accepted segment, as Linux picks it: a RST
    /// closes; data in flight caps the state's timeout.
    pub fn timeout(&self, t: &Timeouts, rst: bool) -> Duration {
        if rst {
            return t.tcp_close;
        }
        let base = self.state.timeout(t);
        if (self.flags[0] | self.flags[1]) & PEER_DATA_UNACK != 0 {
            base.min(t.tcp_unacknowledged)
        } else {
            base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, payload_len: u32) -> Segment {
        Segment {
            flags,
            seq,
            ack,
            window: 64_000,
            wscale: None,
            payload_len,
        }
    }

    fn handshake() -> TcpConn {
        let mut c = TcpConn::start(&seg(SYN, 1000, 0, 0)).expect("SYN starts");
        assert_eq!(
            c.packet(Dir::Reply, &seg(SYN | ACK, 5000, 1001, 0)),
            Verdict::Accept {
                old: TcpState::SynSent,
                new: TcpState::SynRecv
            }
        );
        assert_eq!(
            c.packet(Dir::Original, &seg(ACK, 1001, 5001, 0)),
            Verdict::Accept {
                old: TcpState::SynRecv,
                new: TcpState::Established
            }
        );
        c
    }

    #[test]
    fn only_a_bare_syn_starts() {
        assert!(TcpConn::start(&seg(SYN, 1, 0, 0)).is_some());
        for flags in [ACK, SYN | ACK, RST, FIN | ACK, SYN | FIN, SYN | RST, 0] {
            assert!(TcpConn::start(&seg(flags, 1, 0, 0)).is_none(), "{flags:#x}");
        }
    }

    #[test]
    fn flag_validation_matches_linux() {
        assert!(valid_flags(SYN | 0x08 | 0x40 | 0x80));
        assert!(!valid_flags(FIN));
        assert!(!valid_flags(SYN | FIN));
        assert!(!valid_flags(FIN | SYN | RST | ACK | URG));
    }

    #[test]
    fn data_both_ways_and_window_limits() {
        let mut c = handshake();
        assert!(matches!(
            c.packet(Dir::Original, &seg(ACK, 1001, 5001, 1000)),
            Verdict::Accept { .. }
        ));
        // Data outstanding: the timeout is capped.
        let t = Timeouts::default();
        assert_eq!(c.timeout(&t, false), t.tcp_unacknowledged);
        assert!(matches!(
            c.packet(Dir::Reply, &seg(ACK, 5001, 2001, 0)),
            Verdict::Accept { .. }
        ));
        assert_eq!(c.timeout(&t, false), t.tcp_established);
        // Acknowledging data never sent.
        assert_eq!(
            c.packet(Dir::Reply, &seg(ACK, 5001, 2001 + 100_000, 0)),
            Verdict::Invalid
        );
        // Sending far beyond the receiver's window.
        assert_eq!(
            c.packet(Dir::Original, &seg(ACK, 2001 + 1_000_000, 5001, 10)),
            Verdict::Invalid
        );
        // Data from long before the window.
        assert_eq!(
            c.packet(
                Dir::Original,
                &seg(ACK, 2001u32.wrapping_sub(1_000_000), 5001, 10)
            ),
            Verdict::Invalid
        );
        assert_eq!(c.state(), TcpState::Established);
    }

    #[test]
    fn window_scale_needs_both_sides() {
        let mut s = seg(SYN, 1000, 0, 0);
        s.wscale = Some(7);
        let mut c = TcpConn::start(&s).expect("SYN");
        // The SYN/ACK does not offer scaling: neither side scales.
        c.packet(Dir::Reply, &seg(SYN | ACK, 5000, 1001, 0));
        assert_eq!(c.scale[0], 0);
        assert_eq!(c.scale[1], 0);

        let mut c = TcpConn::start(&s).expect("SYN");
        let mut sa = seg(SYN | ACK, 5000, 1001, 0);
        sa.wscale = Some(20);
        c.packet(Dir::Reply, &sa);
        assert_eq!(c.scale[0], 7);
        assert_eq!(c.scale[1], 14);
    }

    /// With scaling agreed, a window of 1000 means 128000 bytes; without
    /// it, 1000.
    #[test]
    fn scaled_windows_admit_more_data() {
        for (wscale, data_ok) in [(Some(7), true), (None, false)] {
            let mut syn = seg(SYN, 1000, 0, 0);
            syn.wscale = wscale;
            let mut c = TcpConn::start(&syn).expect("SYN");
            let mut sa = seg(SYN | ACK, 5000, 1001, 0);
            sa.wscale = wscale;
            c.packet(Dir::Reply, &sa);
            let mut ack = seg(ACK, 1001, 5001, 0);
            ack.window = 1000;
            assert!(matches!(
                c.packet(Dir::Original, &ack),
                Verdict::Accept { .. }
            ));
            let far = seg(ACK, 5001 + 100_000, 1001, 100);
            let v = c.packet(Dir::Reply, &far);
            assert_eq!(v != Verdict::Invalid, data_ok, "{wscale:?}");
        }
    }

    #[test]
    fn rst_answering_a_syn_is_accepted() {
        let mut c = TcpConn::start(&seg(SYN, 1000, 0, 0)).expect("SYN");
        let mut rst = seg(RST | ACK, 0, 1001, 0);
        rst.window = 0;
        assert_eq!(
            c.packet(Dir::Reply, &rst),
            Verdict::Accept {
                old: TcpState::SynSent,
                new: TcpState::Close
            }
        );
    }

    #[test]
    fn every_cell_of_the_table_is_a_state_or_a_marker() {
        for cell in TABLE.iter().flatten().flatten() {
            assert!(usize::from(*cell) < TcpState::ALL.len() || *cell == IV || *cell == IG);
        }
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        assert_eq!(TcpState::ALL[0], TcpState::None);
        assert_eq!(TcpState::ALL[usize::from(CW)], TcpState::CloseWait);
        assert_eq!(TcpState::ALL[usize::from(LA)], TcpState::LastAck);
        assert_eq!(TcpState::ALL[usize::from(FW)], TcpState::FinWait);
    }
}
