//! Opening a listening TCP socket, with a queue long enough for a reconnect storm.
//!
//! Between a client's `connect()` and the broker's `accept()`, the kernel holds the
//! finished TCP handshake in the listening socket's accept queue. When that queue is full,
//! Linux drops the next client's SYN (`ListenOverflows` in `/proc/net/netstat`), and the
//! client only tries again after its retransmission timer: one second, then three, then
//! seven. A fleet of clients reconnecting at once after an outage fills a short queue in
//! microseconds, however fast the acceptor thread is, and each dropped SYN turns into a
//! second or more of waiting for that client.
//!
//! `std::net::TcpListener::bind` always asks for a queue of 128 and offers no way to ask
//! for more. With the `backlog` feature (on by default), [`bind`] opens the socket with
//! `socket2` instead and asks for [`BACKLOG`]; the kernel caps the request at
//! `net.core.somaxconn` (4096 on current Linux), so the queue is as long as the machine
//! allows. Without the feature, it is std's 128: the broker works the same, and a burst of
//! more than 128 connects at once costs some clients a retransmission.

use std::io;
use std::net::{SocketAddr, TcpListener};

/// How many finished handshakes may wait for `accept()`: as many as the kernel allows
/// (it silently lowers any larger request to `net.core.somaxconn`).
#[cfg(feature = "backlog")]
pub const BACKLOG: i32 = 65_535;

/// Binds a TCP listener on `addr` and starts listening, with the longest accept queue
/// available (see the module's documentation). Port 0 picks a free port.
#[cfg(feature = "backlog")]
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // What std does too: a restarted broker can bind its port again at once, while
    // connections of the previous one are still in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds a TCP listener on `addr` with std's fixed accept queue of 128 (the `backlog`
/// feature is off).
#[cfg(not(feature = "backlog"))]
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn a_bound_listener_accepts_and_picks_a_free_port() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let _client = TcpStream::connect(addr).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert!(peer.ip().is_loopback());
    }

    #[test]
    fn a_port_in_use_is_refused() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let error = bind(first.local_addr().unwrap()).expect_err("port in use");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
