//! One TCP socket shared by all the threads of a connection.
//!
//! `std` implements `Read` and `Write` for `&TcpStream`, so one socket can be read by the
//! reader thread, written by the writer thread and shut down by anyone (takeover, stop)
//! without `try_clone`, which would cost a file descriptor per handle. With thousands of
//! clients, one descriptor per connection instead of four matters.
//!
//! It sits at the bottom of the crate, beside `topic` and `config`: the broker keeps a
//! handle to every open socket (to shut it down at takeover and at stop) without knowing
//! anything else of a connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A cheaply clonable handle on one connection's socket.
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
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
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
