//! DNS on the gateway, Docker-style: `message` reads queries and writes
//! responses, `server` answers from per-network tables, `tcp` frames
//! messages on a stream. Sans-IO: the switch hands over the UDP payload or
//! the TCP bytes and sends back what it is given.

pub mod message;
pub mod server;
pub mod tcp;

pub use server::{Answer, BadName, DnsServer, Transport};
pub use tcp::{tcp_frame, tcp_frames};
