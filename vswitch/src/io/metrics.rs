//! `run --metrics ADDR`: a plain HTTP endpoint a Prometheus server scrapes,
//! served from the poll loop like the control socket. `GET /metrics` gets
//! the counters; anything else a 404.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::metrics;
use crate::stats::IoStats;
use crate::switch::Switch;

/// How long a scraper may take to send its request: the datapath waits for
/// it, so briefly.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(100);
/// Request heads longer than this are refused.
const MAX_HEAD: usize = 8192;

pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener })
    }

    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Answers every pending scrape.
    pub fn serve(&self, switch: &Switch, io: &IoStats) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = answer(stream, switch, io) {
                        tracing::debug!("metrics client: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}

fn answer(mut stream: TcpStream, switch: &Switch, io: &IoStats) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT * 10))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() + n > MAX_HEAD {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, body) = match line {
        b"GET /metrics HTTP/1.0" | b"GET /metrics HTTP/1.1" => {
            ("200 OK", metrics::render(switch, io))
        }
        _ => ("404 Not Found", "try /metrics\n".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
