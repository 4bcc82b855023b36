//! `vswitch capture`: a running switch's frames on one port, as pcap, to a
//! file or stdout. Records are written whole, so a stop (Ctrl-C) between
//! them leaves a valid file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use vswitch::io::control;
use vswitch::io::stop::StopSignal;

#[derive(Args)]
pub struct Capture {
    /// The port whose frames to capture (both directions).
    port: String,
    /// Where to write the pcap: a file, or `-` for stdout.
    #[arg(short = 'w', value_name = "FILE")]
    write: String,
    /// Stop after this many frames.
    #[arg(short = 'c', value_name = "COUNT")]
    count: Option<u64>,
    /// Bytes kept of each frame (0: 262144, enough for any GSO frame).
    #[arg(short = 's', value_name = "SNAPLEN")]
    snaplen: Option<u32>,
    /// The switch to ask (default: the only one running).
    #[arg(long)]
    name: Option<String>,
    /// A tcpdump-style filter: tcp, udp, icmp, arp, ip, vlan [ID],
    /// [src|dst] host ADDR, [src|dst] net CIDR, [src|dst] port N,
    /// ether [src|dst] host MAC, with and, or, not and parentheses.
    filter: Vec<String>,
}

/// The pcap file header, then 16 bytes before each record.
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

impl Capture {
    fn request(&self) -> String {
        let mut r = format!("capture {}", self.port);
        if let Some(s) = self.snaplen {
            r.push_str(&format!(" -s {s}"));
        }
        if let Some(c) = self.count {
            r.push_str(&format!(" -c {c}"));
        }
        for w in &self.filter {
            r.push(' ');
            r.push_str(w);
        }
        r
    }
}

pub fn capture(c: &Capture) -> ExitCode {
    // Caught from here on, so a stop ends between records.
    let stop = match StopSignal::install() {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let stream = match control::capture(c.name.as_deref(), &c.request()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    // As tcpdump's "listening on": frames from here on are captured.
    eprintln!("capturing on port {}", c.port);
    let out: Box<dyn Write> = match c.write.as_str() {
        "-" => Box::new(io::stdout().lock()),
        path => match File::create(Path::new(path)) {
            Ok(f) => Box::new(f),
            Err(e) => return fail(&format!("cannot create {path}: {e}")),
        },
    };
    match copy(stream, out, &stop, c.count) {
        Ok(n) => {
            eprintln!("{n} frame(s) captured");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Copies the stream record by record until the switch ends it, `count`
/// records are out, or a stop signal comes; returns the records written.
fn copy(
    mut stream: std::os::unix::net::UnixStream,
    mut out: Box<dyn Write>,
    stop: &StopSignal,
    count: Option<u64>,
) -> io::Result<u64> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 16];
    let mut header_out = false;
    let mut written = 0;
    loop {
        if stop.raised() || count.is_some_and(|c| written >= c) {
            break;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        if !header_out {
            if buf.len() < FILE_HEADER {
                continue;
            }
            out.write_all(&buf[..FILE_HEADER])?;
            used = FILE_HEADER;
            header_out = true;
        }
        while let Some(len) = record_len(&buf[used..]) {
            if count.is_some_and(|c| written >= c) {
                break;
            }
            out.write_all(&buf[used..used + len])?;
            used += len;
            written += 1;
        }
        out.flush()?;
        buf.drain(..used);
    }
    out.flush()?;
    Ok(written)
}

/// The length of the complete record at the start of `b`, if it is all there.
fn record_len(b: &[u8]) -> Option<usize> {
    let caplen = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    let len = RECORD_HEADER + caplen;
    (b.len() >= len).then_some(len)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("vswitch: {msg}");
    ExitCode::FAILURE
}
