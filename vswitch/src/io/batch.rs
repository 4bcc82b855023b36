//! Batched I/O on datagram sockets, where a system call can carry many
//! frames; a TAP takes and gives one per call whatever is asked of it.
//!
//! Sending: frames for AF_PACKET ports and the vxlan raw socket are held
//! back until the end of a burst, then written with one `sendmmsg` per
//! socket. Each socket's frames leave in the order they were staged. A
//! frame a socket refuses is dropped and counted, like a NIC's full queue
//! drops; when the socket's buffer is full the rest of its burst goes with
//! it.
//!
//! Receiving: a vxlan port's UDP socket is read with `recvmmsg`, up to
//! `RX_FRAMES` datagrams a call, handed out one at a time.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::os::fd::RawFd;

/// Frames staged before the batch sends itself.
pub const MAX_FRAMES: usize = 64;
/// Larger frames are written at once, after what is staged: copying a 64 KB
/// super-frame costs more than the system call it would share.
pub const MAX_STAGED_LEN: usize = 4096;

pub struct TxBatch {
    /// The staged frames' bytes, back to back.
    bytes: Vec<u8>,
    frames: Vec<Staged>,
    /// Since `take_counts` last asked.
    counts: Counts,
}

/// What flushing did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `sendmmsg` calls.
    pub calls: u64,
    /// Frames the sockets took.
    pub sent: u64,
    /// Frames they refused.
    pub dropped: u64,
}

struct Staged {
    fd: RawFd,
    range: Range<usize>,
    /// Where an unconnected socket sends it.
    to: Option<libc::sockaddr_in>,
}

impl TxBatch {
    pub fn new() -> TxBatch {
        TxBatch {
            bytes: Vec::with_capacity(MAX_FRAMES * 2048),
            frames: Vec::with_capacity(MAX_FRAMES),
            counts: Counts::default(),
        }
    }

    /// Stages one frame, `head` (a virtio-net header, or empty) and the
    /// slices, for `fd` (and, for an unconnected socket, `to`). A full batch
    /// is sent first.
    pub fn stage(
        &mut self,
        fd: RawFd,
        to: Option<libc::sockaddr_in>,
        head: &[u8],
        parts: &[&[u8]],
    ) {
        self.stage_with(fd, to, |bytes| {
            bytes.extend_from_slice(head);
            parts.iter().for_each(|p| bytes.extend_from_slice(p));
        });
    }

    /// Stages the frame `write` appends to the batch's bytes, so that a
    /// frame built for sending (an encapsulated one) is built in place.
    pub fn stage_with(
        &mut self,
        fd: RawFd,
        to: Option<libc::sockaddr_in>,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.frames.len() >= MAX_FRAMES {
            self.flush();
        }
        let start = self.bytes.len();
        write(&mut self.bytes);
        let range = start..self.bytes.len();
        self.frames.push(Staged { fd, range, to });
    }

    /// Sends every staged frame, one `sendmmsg` per socket (more when one
    /// refuses a frame).
    pub fn flush(&mut self) {
        // Bit i: frame i is sent or dropped (at most MAX_FRAMES are staged).
        let mut done = 0u64;
        for first in 0..self.frames.len() {
            if done & (1 << first) != 0 {
                continue;
            }
            let fd = self.frames[first].fd;
            let mut names = [None; MAX_FRAMES];
            let mut iov = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_FRAMES];
            let mut n = 0;
            for (i, f) in self.frames.iter().enumerate().skip(first) {
                if f.fd == fd {
                    let bytes = &self.bytes[f.range.clone()];
                    iov[n] = libc::iovec {
                        iov_base: bytes.as_ptr() as *mut libc::c_void,
                        iov_len: bytes.len(),
                    };
                    names[n] = f.to;
                    n += 1;
                    done |= 1 << i;
                }
            }
            send_all(fd, &iov[..n], &names[..n], &mut self.counts);
        }
        self.frames.clear();
        self.bytes.clear();
    }

    /// What the flushes since the last call did.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }
}

/// Sends one frame per iovec through `fd`, each to its name if it has one.
fn send_all(
    fd: RawFd,
    iov: &[libc::iovec],
    names: &[Option<libc::sockaddr_in>],
    counts: &mut Counts,
) {
    // SAFETY: mmsghdr is plain data; all zeroes is an empty message.
    let mut msgs: [libc::mmsghdr; MAX_FRAMES] = unsafe { std::mem::zeroed() };
    for ((m, v), name) in msgs.iter_mut().zip(iov).zip(names) {
        m.msg_hdr.msg_iov = v as *const libc::iovec as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = 1;
        if let Some(name) = name {
            m.msg_hdr.msg_name = name as *const libc::sockaddr_in as *mut libc::c_void;
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
    }
    let mut sent = 0;
    while sent < iov.len() {
        let rest = &mut msgs[sent..iov.len()];
        // sendmmsg reads the messages, their iovecs and names, all borrowed
        // from this frame or the batch for the call, and writes msg_len.
        // SAFETY: rest holds rest.len() initialized mmsghdrs.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                rest.as_mut_ptr(),
                rest.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        counts.calls += 1;
        match usize::try_from(n) {
            Ok(n) if n > 0 => {
                sent += n;
                counts.sent += n as u64;
            }
            _ => {
                let err = io::Error::last_os_error();
                tracing::trace!("sendmmsg on fd {fd}: {err}");
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let lost = match err.kind() {
                    io::ErrorKind::WouldBlock => iov.len() - sent,
                    _ => 1,
                };
                counts.dropped += lost as u64;
                sent += lost;
            }
        }
    }
}

/// Datagrams one `recvmmsg` takes.
pub const RX_FRAMES: usize = 16;
/// The largest datagram taken whole: a VXLAN datagram on a 9,000-byte
/// underlay is at most 8,972.
pub const RX_DATAGRAM: usize = 9216;

/// Datagrams read from one socket and not yet handed out.
pub struct RxBatch {
    bufs: Vec<u8>,
    /// Per datagram: its length (more than `RX_DATAGRAM` if truncated) and
    /// sender.
    got: Vec<(usize, Option<SocketAddrV4>)>,
    next: usize,
}

impl RxBatch {
    pub fn new() -> RxBatch {
        RxBatch {
            bufs: vec![0u8; RX_FRAMES * RX_DATAGRAM],
            got: Vec::with_capacity(RX_FRAMES),
            next: 0,
        }
    }

    /// The next datagram from `fd` into `buf`, and its IPv4 sender; reads
    /// the socket only when every datagram of the last read is out.
    /// WouldBlock once the socket is empty too.
    pub fn recv(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV4)> {
        if self.next == self.got.len() {
            self.fill(fd)?;
        }
        let i = self.next;
        self.next += 1;
        let (len, from) = self.got[i];
        let from = from.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "a sender that is not IPv4")
        })?;
        if len > RX_DATAGRAM || len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a datagram of {len} bytes, over {RX_DATAGRAM}"),
            ));
        }
        let start = i * RX_DATAGRAM;
        buf[..len].copy_from_slice(&self.bufs[start..start + len]);
        Ok((len, from))
    }

    fn fill(&mut self, fd: RawFd) -> io::Result<()> {
        self.got.clear();
        self.next = 0;
        // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
        let mut names: [libc::sockaddr_in; RX_FRAMES] = unsafe { std::mem::zeroed() };
        let mut iov: [libc::iovec; RX_FRAMES] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.bufs[i * RX_DATAGRAM..].as_mut_ptr().cast(),
            iov_len: RX_DATAGRAM,
        });
        // SAFETY: mmsghdr is plain data; all zeroes is an empty message.
        let mut msgs: [libc::mmsghdr; RX_FRAMES] = unsafe { std::mem::zeroed() };
        for ((m, v), name) in msgs.iter_mut().zip(iov.iter_mut()).zip(names.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        // recvmmsg writes each datagram through its iovec into `bufs`, its
        // sender into `names` and the lengths into `msgs`, all live here.
        // SAFETY: msgs holds RX_FRAMES initialized mmsghdrs.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                RX_FRAMES as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        for (m, name) in msgs.iter().zip(&names).take(n) {
            let v4 = m.msg_hdr.msg_namelen as usize == size_of::<libc::sockaddr_in>()
                && name.sin_family == libc::AF_INET as libc::sa_family_t;
            let from = v4.then(|| {
                let ip = Ipv4Addr::from(name.sin_addr.s_addr.to_ne_bytes());
                SocketAddrV4::new(ip, u16::from_be(name.sin_port))
            });
            self.got.push((m.msg_len as usize, from));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sys::sockaddr;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    fn frame(i: u8, len: usize) -> Vec<u8> {
        (0..len).map(|j| i.wrapping_add(j as u8)).collect()
    }

    fn v4(s: &UdpSocket) -> SocketAddrV4 {
        match s.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
        }
    }

    fn recv_all(sock: &UnixDatagram) -> Vec<Vec<u8>> {
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 8192];
        let mut got = Vec::new();
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[test]
    fn each_socket_gets_its_frames_whole_and_in_order() {
        let (a, a_peer) = UnixDatagram::pair().unwrap();
        let (b, b_peer) = UnixDatagram::pair().unwrap();
        let mut batch = TxBatch::new();
        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        for i in 0..10u8 {
            let f = frame(i, 60 + i as usize * 100);
            let (head, rest) = f.split_at(10);
            let (eth, tail) = rest.split_at(14);
            let (fd, want) = match i % 3 {
                0 => (b.as_raw_fd(), &mut want_b),
                _ => (a.as_raw_fd(), &mut want_a),
            };
            batch.stage(fd, None, head, &[eth, tail]);
            want.push(f);
        }
        assert!(
            recv_all(&a_peer).is_empty(),
            "nothing leaves before the flush"
        );
        batch.flush();
        let counts = batch.take_counts();
        assert_eq!((counts.calls, counts.sent, counts.dropped), (2, 10, 0));
        assert_eq!(recv_all(&a_peer), want_a);
        assert_eq!(recv_all(&b_peer), want_b);
        batch.flush();
        assert!(recv_all(&a_peer).is_empty(), "a flushed batch is empty");
    }

    #[test]
    fn a_full_batch_sends_itself_before_taking_more() {
        let (a, a_peer) = UnixDatagram::pair().unwrap();
        let mut batch = TxBatch::new();
        let frames: Vec<Vec<u8>> = (0..=MAX_FRAMES as u8).map(|i| frame(i, 64)).collect();
        for f in &frames {
            batch.stage(a.as_raw_fd(), None, &[], &[f]);
        }
        assert_eq!(recv_all(&a_peer), frames[..MAX_FRAMES]);
        batch.flush();
        assert_eq!(recv_all(&a_peer), frames[MAX_FRAMES..]);
        let counts = batch.take_counts();
        assert_eq!((counts.calls, counts.sent), (2, MAX_FRAMES as u64 + 1));
    }

    #[test]
    fn refused_frames_are_counted_and_the_other_sockets_still_get_theirs() {
        let (a, a_peer) = UnixDatagram::pair().unwrap();
        let (b, b_peer) = UnixDatagram::pair().unwrap();
        drop(b_peer);
        let mut batch = TxBatch::new();
        for i in 0..6u8 {
            let fd = [a.as_raw_fd(), b.as_raw_fd()][i as usize % 2];
            batch.stage(fd, None, &[], &[&frame(i, 64)]);
        }
        batch.flush();
        let counts = batch.take_counts();
        assert_eq!(counts.dropped, 3, "the three frames for the closed peer");
        assert_eq!(counts.sent, 3);
        assert_eq!(batch.take_counts(), Counts::default(), "taken once");
        assert_eq!(recv_all(&a_peer).len(), 3);
    }

    #[test]
    fn a_full_socket_buffer_drops_the_rest_of_the_burst() {
        let (a, a_peer) = UnixDatagram::pair().unwrap();
        let small: libc::c_int = 16384;
        // SAFETY: small is a c_int of the length passed, live for the call.
        let set = unsafe {
            libc::setsockopt(
                a.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&small as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
        let mut batch = TxBatch::new();
        let big = frame(7, 4000);
        for _ in 0..MAX_FRAMES {
            batch.stage(a.as_raw_fd(), None, &[], &[&big]);
        }
        batch.flush();
        let Counts { sent, dropped, .. } = batch.take_counts();
        let got = recv_all(&a_peer);
        assert_eq!(got.len() as u64, sent);
        assert!(
            dropped > 0,
            "a 16 KB send buffer holds fewer than 64 such frames"
        );
        assert_eq!(got.len() as u64 + dropped, MAX_FRAMES as u64);
        assert!(got.iter().all(|f| f == &big));
    }

    #[test]
    fn frames_with_a_name_go_to_it() {
        let rx1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let name = |s: &UdpSocket| sockaddr(v4(s));
        let mut batch = TxBatch::new();
        batch.stage(tx.as_raw_fd(), Some(name(&rx1)), &[], &[b"one"]);
        batch.stage(tx.as_raw_fd(), Some(name(&rx2)), &[], &[b"two"]);
        batch.stage(tx.as_raw_fd(), Some(name(&rx1)), &[], &[b"three"]);
        batch.flush();
        let counts = batch.take_counts();
        assert_eq!(
            (counts.calls, counts.sent),
            (1, 3),
            "one call for three names"
        );
        let mut buf = [0u8; 16];
        for (rx, want) in [(&rx1, "one"), (&rx2, "two"), (&rx1, "three")] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], want.as_bytes());
        }
    }

    #[test]
    fn datagrams_come_out_one_at_a_time_in_order_with_their_sender() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let sent: Vec<Vec<u8>> = (0..RX_FRAMES as u8 + 5)
            .map(|i| frame(i, 50 + usize::from(i) * 300))
            .collect();
        for d in &sent {
            tx.send_to(d, to).unwrap();
        }
        tx.send_to(&frame(9, RX_DATAGRAM + 1), to).unwrap();
        tx.send_to(b"after", to).unwrap();
        let from = v4(&tx);
        let mut batch = RxBatch::new();
        let mut buf = vec![0u8; 65536];
        for d in &sent {
            let (n, who) = batch.recv(rx.as_raw_fd(), &mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..]);
            assert_eq!(who, from);
        }
        let err = batch.recv(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "too large: {err}");
        let (n, _) = batch.recv(rx.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"after",
            "a refused datagram does not stop the rest"
        );
        let err = batch.recv(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
