//! The floor under any switch with TAP ports: two TAPs, opened as vswitch
//! opens them (virtio-net headers, checksum and segmentation offloads), and
//! one thread that moves each frame from one to the other as it came, with
//! its header. No pipeline, no tables, no batching of writes: the system
//! calls and copies that any userspace switch between two TAPs must make.
//!
//! `scripts/bench.sh floor` measures it beside the kernel bridge and
//! vswitch: what vswitch loses to it is the pipeline's and the poll loop's
//! cost; what it loses to the bridge is the cost of forwarding in user space.
//!
//!     tap_floor TAP_A TAP_B [--busy]   # prints "ready", forwards until killed
//!
//! With `--busy` it never sleeps in the poll: the floor under a round trip
//! through a switch that busy-polls (`busy_poll_us`).

use std::io;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use vswitch::io::tap::Tap;

/// A 64 KB super-frame with room to spare.
const BUF_LEN: usize = 65536 + 256;
/// Frames taken from one TAP before the other gets a turn, as vswitch does.
const BUDGET: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (a, b, busy) = match args.as_slice() {
        [a, b] => (a, b, false),
        [a, b, flag] if flag == "--busy" => (a, b, true),
        _ => {
            eprintln!("usage: tap_floor TAP_A TAP_B [--busy]");
            std::process::exit(2);
        }
    };
    if let Err(e) = forward(a, b, busy) {
        eprintln!("tap_floor: {e}");
        std::process::exit(1);
    }
}

fn forward(a: &str, b: &str, busy: bool) -> io::Result<()> {
    let taps = [Tap::create(a, 1)?, Tap::create(b, 1)?];
    let mut poll = Poll::new()?;
    for (i, tap) in taps.iter().enumerate() {
        let fd = tap
            .queue_fd(0)
            .ok_or_else(|| io::Error::other("no queue"))?;
        poll.registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)?;
    }
    println!("ready");
    let mut events = Events::with_capacity(8);
    let mut buf = vec![0u8; BUF_LEN];
    // Edge-triggered: both start undrained, each is read to WouldBlock.
    let mut ready = [true; 2];
    loop {
        for (from, to) in [(0, 1), (1, 0)] {
            for _ in 0..BUDGET {
                if !ready[from] {
                    break;
                }
                match taps[from].recv(0, &mut buf) {
                    Ok((n, hdr)) => {
                        // A full queue on the other side drops the frame, as vswitch does.
                        let _ = taps[to].send(0, &hdr, &[&buf[..n]]);
                    }
                    Err(e) => match e.kind() {
                        io::ErrorKind::WouldBlock => ready[from] = false,
                        // Interrupted, or one bad frame, already consumed.
                        io::ErrorKind::Interrupted | io::ErrorKind::InvalidData => {}
                        _ => return Err(e),
                    },
                }
            }
        }
        let undrained = ready.contains(&true);
        match poll.poll(&mut events, (busy || undrained).then_some(Duration::ZERO)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        if busy && !undrained && events.is_empty() {
            // As vswitch does: the endpoints on this core go first.
            std::thread::yield_now();
        }
        for ev in events.iter() {
            if let Some(r) = ready.get_mut(ev.token().0) {
                *r = true;
            }
        }
    }
}
