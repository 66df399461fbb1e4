//! TLS under MQTT (§4.2, and §5.4.5 on why a broker open to a network wants it), with
//! rustls driven by hand: rustls' `ServerConnection` does no I/O of its own ("sans-IO"), it
//! takes the bytes that arrived and gives the bytes to send. That is what lets one TLS
//! session serve two threads:
//!
//! ```text
//!   reader thread                          writer thread
//!   read(tcp) ── no lock ──┐               ┌── lock output ──────────────────────────┐
//!   lock session:          │               │ lock session: encrypt the batch into     │
//!     read_tls, decrypt,   │               │   the output buffer; unlock              │
//!     take plaintext       │               │ write(tcp) the records ── no session lock│
//!   unlock                 │               └── unlock output ────────────────────────┘
//! ```
//!
//! The session lock is held while bytes are copied in or out and (de)crypted: microseconds,
//! never a socket call that could block. The output lock (in `Layers`) keeps records in the
//! order they were numbered: TLS counts every record, and a record sent out of turn ends
//! the connection. The reader takes it only to send what TLS itself must say (an alert).
//!
//! `setup.rs` turns a listener's `certfile`, `keyfile`, `cafile`… into a rustls
//! `ServerConfig`, once, at start-up; `identity.rs` reads a client's name from its
//! certificate, for `use_identity_as_username`.

mod identity;
mod setup;

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rustls::{ServerConfig, ServerConnection};

use super::{time_left, EstablishError, Identity};
use crate::config::TlsSettings;

/// The most ciphertext read from the socket at once. rustls refuses more input while it
/// holds more than 16 KiB of plaintext not yet taken; reading no more than this between two
/// takes keeps it below that.
const READ_CHUNK: usize = 16 * 1024;

/// The largest buffer a connection keeps between two writes for its TLS records; a bigger
/// one, grown by a big batch, is given back.
const KEPT_OUTPUT_CAPACITY: usize = 64 * 1024;

/// A TLS listener's settings, ready for handshakes.
pub(super) struct Acceptor {
    config: Arc<ServerConfig>,
    /// Where a client's user name comes from, if from its certificate.
    identity: IdentityFrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdentityFrom {
    /// The CONNECT's user name, as on any listener.
    Connect,
    /// `use_identity_as_username`: the certificate's Common Name.
    CommonName,
    /// `use_subject_as_username`: the certificate's whole subject.
    Subject,
}

impl Acceptor {
    /// Reads the listener's certificate, key and authorities. Returns warnings to log.
    pub(super) fn new(settings: &TlsSettings) -> Result<(Acceptor, Vec<String>), String> {
        let setup = setup::server_config(settings).map_err(|e| e.to_string())?;
        // Mosquitto takes the Common Name when both are set.
        let identity = if settings.use_identity_as_username {
            IdentityFrom::CommonName
        } else if settings.use_subject_as_username {
            IdentityFrom::Subject
        } else {
            IdentityFrom::Connect
        };
        let acceptor = Acceptor {
            config: setup.config,
            identity,
        };
        Ok((acceptor, setup.warnings))
    }

    /// Runs the TLS handshake on a new connection, by `until`. Blocking and single-threaded:
    /// no other thread knows this connection yet.
    pub(super) fn handshake(
        &self,
        tcp: &TcpStream,
        until: Instant,
    ) -> Result<(Session, Identity), EstablishError> {
        let failed = |why: String| EstablishError {
            step: "TLS handshake",
            why,
        };
        let mut connection =
            ServerConnection::new(Arc::clone(&self.config)).map_err(|e| failed(e.to_string()))?;
        // What we write is taken out at once (`encrypt`), so rustls need not bound it.
        connection.set_buffer_limit(None);
        let mut buffer = vec![0; READ_CHUNK];
        let result = drive_handshake(&mut connection, tcp, until, &mut buffer);
        // A failed handshake leaves an alert to send (a bad certificate, say): try, once.
        if connection.wants_write() {
            let _ = tcp.set_write_timeout(time_left(until).ok());
            let _ = connection.write_tls(&mut &*tcp);
        }
        let _ = tcp.set_write_timeout(None);
        result.map_err(|e| {
            failed(match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    "not finished within connect_timeout".to_owned()
                }
                _ => e.to_string(),
            })
        })?;
        let identity = self.identity_of(&connection);
        Ok((
            Session {
                connection: Mutex::new(connection),
            },
            identity,
        ))
    }

    fn identity_of(&self, connection: &ServerConnection) -> Identity {
        let whole_subject = match self.identity {
            IdentityFrom::Connect => return Identity::NotUsed,
            IdentityFrom::CommonName => false,
            IdentityFrom::Subject => true,
        };
        connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|certificate| identity::identity(certificate, whole_subject))
            .map_or(Identity::Missing, Identity::Named)
    }
}

/// The handshake's loop: send what rustls has to send, read what the client sends, until
/// rustls says the handshake is over.
fn drive_handshake(
    connection: &mut ServerConnection,
    tcp: &TcpStream,
    until: Instant,
    buffer: &mut [u8],
) -> io::Result<()> {
    loop {
        while connection.wants_write() {
            tcp.set_write_timeout(Some(time_left(until)?))?;
            connection.write_tls(&mut &*tcp)?;
        }
        if !connection.is_handshaking() {
            return Ok(());
        }
        tcp.set_read_timeout(Some(time_left(until)?))?;
        let n = (&*tcp).read(buffer)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection",
            ));
        }
        // Whatever came after the handshake (the CONNECT, often, in the same read) stays in
        // the connection as plaintext for the reader.
        feed(connection, &buffer[..n])?;
    }
}

/// Hands ciphertext to rustls and lets it decrypt; an error is the connection's end (rustls
/// has then queued an alert saying why).
fn feed(connection: &mut ServerConnection, mut ciphertext: &[u8]) -> io::Result<()> {
    while !ciphertext.is_empty() {
        connection.read_tls(&mut ciphertext)?;
        connection
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    Ok(())
}

/// One connection's TLS session, shared by its reader and writer.
pub(super) struct Session {
    connection: Mutex<ServerConnection>,
}

impl Session {
    /// Sends `parts`, in order, as TLS records. `output` is the connection's output buffer,
    /// whose lock the caller holds until the records are written: the session lock is
    /// held for the encryption only.
    pub(super) fn send(
        &self,
        tcp: &TcpStream,
        parts: &[&[u8]; 2],
        output: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.encrypt(parts, output)?;
        let written = (&*tcp).write_all(output);
        output.clear();
        if output.capacity() > KEPT_OUTPUT_CAPACITY {
            *output = Vec::new();
        }
        written
    }

    /// Queues TLS's close_notify alert, for the next send.
    pub(super) fn close_notify(&self) {
        self.connection.lock().send_close_notify();
    }

    /// Encrypts `parts`, in order, into TLS records appended to `output`.
    fn encrypt(&self, parts: &[&[u8]; 2], output: &mut Vec<u8>) -> io::Result<()> {
        let slices = [IoSlice::new(parts[0]), IoSlice::new(parts[1])];
        let mut connection = self.connection.lock();
        if parts.iter().any(|part| !part.is_empty()) {
            // With no buffer limit (set at the handshake), rustls takes it all in one go:
            // the WebSocket header and the batch in the same records.
            let total = parts[0].len() + parts[1].len();
            if connection.writer().write_vectored(&slices)? != total {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        while connection.wants_write() {
            connection.write_tls(output)?;
        }
        Ok(())
    }

    /// Reads plaintext into `buf`: what rustls already holds, or else ciphertext read from
    /// the socket (blocking, without the session lock) and decrypted. `flush` sends what
    /// the session has to send meanwhile (an alert, the answer to a key update).
    pub(super) fn read(
        &self,
        tcp: &TcpStream,
        buf: &mut [u8],
        flush: impl Fn() -> io::Result<()>,
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.connection.lock().reader().read(buf) {
                // Ok(0) after the client's close_notify: the end of the stream.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The client closed TCP without a close_notify: for MQTT, whose packets say
                // their own length, that is the end of the stream like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let chunk = buf.len().min(READ_CHUNK);
            let n = (&*tcp).read(&mut buf[..chunk])?;
            let mut connection = self.connection.lock();
            if n == 0 {
                // Tells rustls the stream has ended; the next read says how.
                connection.read_tls(&mut &[][..])?;
                continue;
            }
            let fed = feed(&mut connection, &buf[..n]);
            let wants_write = connection.wants_write();
            drop(connection);
            if wants_write {
                let _ = flush();
            }
            // Past the handshake, the close reason says which layer failed.
            fed.map_err(|e| io::Error::new(e.kind(), format!("TLS: {e}")))?;
        }
    }
}
