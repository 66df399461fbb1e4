//! The byte stream under MQTT: what a connection's threads read and write, whatever a
//! listener puts between TCP and MQTT (§4.2: MQTT needs an ordered, lossless, two-way
//! stream of bytes, and says nothing of what carries it).
//!
//! Everything above this module (the codec, sessions, keepalive, limits, the ACL) sees one
//! [`Socket`] to write to and one [`Incoming`] to read from, the same for every listener.
//!
//! A connection's socket is shared: the reader thread reads it, the writer thread writes
//! it, and takeover or a stopping broker shut it down from any thread. `std` implements
//! `Read` and `Write` for `&TcpStream`, so all of them use one handle without `try_clone`,
//! which would cost a file descriptor per handle: with thousands of clients, one
//! descriptor per connection instead of four matters.
//!
//! The broker keeps a [`Socket`] for every open connection (to shut it down at takeover
//! and at stop) without knowing anything else of a connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A cheaply clonable handle on one connection's socket: what the writer writes to, what
/// anyone shuts down.
#[derive(Debug, Clone)]
pub struct Socket(Arc<TcpStream>);

impl Socket {
    pub fn new(stream: TcpStream) -> Socket {
        Socket(Arc::new(stream))
    }

    /// Ends the connection in both directions. Threads blocked reading or writing on it
    /// wake up with end-of-stream or an error: this is how a connection is told to go.
    pub fn shutdown(&self) {
        // Fails only if the socket is already closed, which is what we want anyway.
        let _ = self.0.shutdown(Shutdown::Both);
    }

    /// Makes a blocked read give up after `timeout` (`None`: wait for ever). This is the
    /// keepalive timer and the CONNECT timer: no extra thread, no timer wheel.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.peer_addr().ok()
    }

    /// The reading side of this socket. A connection has one, owned by whichever thread
    /// reads (the handshake, then the reader).
    pub fn incoming(&self) -> Incoming {
        Incoming {
            socket: self.clone(),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// The reading side of a connection: the bytes of MQTT as they arrive.
#[derive(Debug)]
pub struct Incoming {
    socket: Socket,
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.socket.0).read(buf)
    }
}
