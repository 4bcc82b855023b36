//! DHCP on the gateway: `message` reads and writes the wire format,
//! `server` decides the replies. Sans-IO: the switch hands over UDP
//! payloads sent to port 67 and wraps what comes back in UDP, IP and
//! Ethernet.

pub mod message;
pub mod server;

pub use message::{DhcpRepr, MessageType};
pub use server::{Destination, DhcpServer, Lease, Reply, ServerConfig};
