//! The byte stream under MQTT: what a connection's threads read and write, whatever a
//! listener puts between TCP and MQTT (§4.2: MQTT needs an ordered, lossless, two-way
//! stream of bytes, and says nothing of what carries it).
//!
//! ```text
//!            MQTT packets (codec, session, routing, keepalive, ACL: all the same)
//!   ───────────── Socket (write) ── Incoming (read) ─────────────   this module's seam
//!            WebSocket frames        (protocol websockets: §6, RFC 6455)   optional
//!            TLS records             (certfile + keyfile: rustls)          optional
//!            TCP                     (std::net, blocking)
//! ```
//!
//! Everything above this module sees one [`Socket`] to write to and one [`Incoming`] to
//! read from, for every listener. [MQTT-7.1.1-1] asks a server for at least one transport
//! that is an ordered, lossless byte stream both ways; each of the four combinations here
//! is one. [MQTT-7.0.0-2] asks that nothing outside the standard be needed to talk to it:
//! a plain TCP listener is always there unless the configuration removes it, and neither
//! layer requires an extension (no WebSocket extension is negotiated, no TLS ALPN is asked
//! for). A listener's [`Transport`] says which layers its
//! connections have, and [`Transport::establish`] sets them up on the handshake thread
//! (the TLS handshake, then the HTTP upgrade), before a CONNECT is read, within the same
//! `connect_timeout`.
//!
//! ## One socket, two threads
//! A connection's socket is shared: the reader thread reads it, the writer thread writes
//! it, and takeover or a stopping broker shut it down from any thread. `std` implements
//! `Read` and `Write` for `&TcpStream`, so all of them use one handle without `try_clone`,
//! which would cost a file descriptor per handle: with thousands of clients, one
//! descriptor per connection instead of four matters.
//!
//! The layers make sharing harder in two ways, and [`Layers`] answers both:
//! - **One TLS session for both directions.** A TLS connection is one state machine
//!   (`rustls::ServerConnection`): decrypting what arrives and encrypting what leaves both
//!   change it. It sits behind a mutex held only while bytes are handed to it or taken from
//!   it, never across a socket call that can block (`tls.rs`).
//! - **The reader writes too, sometimes.** A WebSocket ping is answered by the reader, and
//!   so is a close frame or a TLS alert. Whatever it writes must not land in the middle of
//!   a frame or a TLS record of the writer's, so every write of a layered connection goes
//!   through one output lock, held from encoding to the end of the socket write.
//!   Only these rare answers ever wait for it behind the writer.
//!
//! Plain TCP has no layers and takes none of these locks: its reader never writes.

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "websockets")]
mod websocket;

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
#[cfg(feature = "websockets")]
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::{Listener, Protocol};

/// A cheaply clonable handle on one connection's socket: what the writer writes to, what
/// anyone shuts down.
#[derive(Debug, Clone)]
pub struct Socket(Arc<Shared>);

/// What a connection's threads share: the TCP socket, and the layers on it.
#[derive(Debug)]
struct Shared {
    tcp: TcpStream,
    /// What sits between TCP and MQTT, set once by [`Transport::establish`] before the
    /// threads start; boxed: plain TCP never sets it, and pays 8 bytes for it, not 1.2 KiB.
    layers: OnceLock<Box<Layers>>,
}

/// The layers of one connection (see the module's documentation).
///
/// Lock order: the output lock first, then (in `tls.rs`) the session lock; never the
/// session lock while waiting for the output lock.
struct Layers {
    #[cfg(feature = "tls")]
    tls: Option<tls::Session>,
    /// Whether MQTT travels in WebSocket frames.
    websocket: bool,
    /// The output lock: held by whoever writes to the socket, from encoding to the end of
    /// the write, so that frames and records leave whole and in order. It keeps the buffer
    /// TLS encrypts into.
    output: Mutex<Vec<u8>>,
    /// Who the client's certificate says it is, on a listener that asked.
    identity: Identity,
    /// Whether a WebSocket close frame has gone out (RFC 6455 §5.5.1: one per side), or
    /// may not: true until the upgrade is done, since no frame may come before it.
    #[cfg_attr(not(feature = "websockets"), allow(dead_code))]
    close_sent: AtomicBool,
}

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layers")
            .field("tls", &self.has_tls())
            .field("websocket", &self.websocket)
            .finish_non_exhaustive()
    }
}

/// What a listener with `use_identity_as_username` or `use_subject_as_username` learned of
/// a client from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub enum Identity {
    /// The listener does not take user names from certificates.
    NotUsed,
    /// It does, and this client's certificate names nobody (no Common Name in it).
    Missing,
    /// It does: the user name the certificate gives.
    Named(String),
}

impl Layers {
    fn has_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Sends `payload` whole: as one binary WebSocket message if `framed` (and the
    /// connection has frames), through TLS if it has TLS.
    fn send(&self, tcp: &TcpStream, framed: bool, payload: &[u8]) -> io::Result<()> {
        self.send_locked(tcp, &mut self.output.lock(), framed, payload)
    }

    /// [`Layers::send`], the output lock already held (`output` is what it guards).
    fn send_locked(
        &self,
        tcp: &TcpStream,
        output: &mut Vec<u8>,
        framed: bool,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut header = [0u8; 10];
        let header_len = self.frame_header(framed, payload.len(), &mut header);
        let parts = [&header[..header_len], payload];
        #[cfg(feature = "tls")]
        if let Some(session) = &self.tls {
            return session.send(tcp, &parts, output);
        }
        let _ = output;
        write_all_parts(tcp, &parts)
    }

    /// The connection's last words before TCP is shut down, as each layer's protocol asks:
    /// a WebSocket close frame (RFC 6455 §5.5.1; "normal closure", unless one went out
    /// already), then TLS's close_notify. Only if the output lock is free: a writer blocked
    /// on a client that does not read keeps it, and then there is no one to say them to.
    /// A write gives up after [`GOODBYE_WAIT`].
    #[cfg_attr(
        not(any(feature = "tls", feature = "websockets")),
        allow(unused_mut, unused_variables)
    )]
    fn goodbye(&self, tcp: &TcpStream) {
        let Some(mut output) = self.output.try_lock() else {
            return;
        };
        let _ = tcp.set_write_timeout(Some(GOODBYE_WAIT));
        #[cfg(feature = "websockets")]
        if self.websocket && !self.close_sent.swap(true, Ordering::Relaxed) {
            let frame = websocket::normal_close_frame();
            let _ = self.send_locked(tcp, &mut output, false, &frame);
        }
        #[cfg(feature = "tls")]
        if let Some(session) = &self.tls {
            session.close_notify();
            let _ = self.send_locked(tcp, &mut output, false, &[]);
        }
    }

    /// Writes the header of a binary WebSocket frame of `len` bytes into `out` and returns
    /// its length; 0 when there is no framing to do.
    fn frame_header(&self, framed: bool, len: usize, out: &mut [u8; 10]) -> usize {
        #[cfg(feature = "websockets")]
        if framed && self.websocket {
            return websocket::binary_header(len, out);
        }
        let _ = (framed, len, out);
        0
    }

    /// Sends what TLS itself has to say (an alert, an answer to a key update), if anything.
    #[cfg(feature = "tls")]
    fn flush_tls(&self, tcp: &TcpStream) -> io::Result<()> {
        self.send(tcp, false, &[])
    }
}

/// How long a connection's last words (a WebSocket close frame, a TLS close_notify) may
/// wait for room in the socket's buffer. A few bytes nearly always fit at once; this only
/// bounds the rare case, short enough that a stopping broker is not held up.
const GOODBYE_WAIT: Duration = Duration::from_millis(50);

/// Writes all of `parts`, in order, with as few system calls as the kernel allows.
fn write_all_parts(mut tcp: &TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while !parts.is_empty() {
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut written = match tcp.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 {
            if written >= parts[0].len() {
                written -= parts[0].len();
                parts.remove(0);
            } else {
                parts[0] = &parts[0][written..];
                written = 0;
            }
        }
    }
    Ok(())
}

impl Shared {
    /// Reads the byte stream under any WebSocket framing: TCP's bytes, or TLS's plaintext.
    fn read_stream(&self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(layers) = self.layers.get() {
            if let Some(session) = &layers.tls {
                return session.read(&self.tcp, buf, || layers.flush_tls(&self.tcp));
            }
        }
        (&self.tcp).read(buf)
    }

    /// Sends `payload` as it is, with no WebSocket frame around it (through TLS, if any):
    /// the HTTP upgrade's answer, and WebSocket control frames already made whole.
    #[cfg(feature = "websockets")]
    fn send_unframed(&self, payload: &[u8]) -> io::Result<()> {
        match self.layers.get() {
            Some(layers) => layers.send(&self.tcp, false, payload),
            None => (&self.tcp).write_all(payload),
        }
    }

    /// From now on, WebSocket frames may be sent (the upgrade is done).
    #[cfg(feature = "websockets")]
    fn frames_begin(&self) {
        if let Some(layers) = self.layers.get() {
            layers.close_sent.store(false, Ordering::Relaxed);
        }
    }

    /// Sends a whole WebSocket close frame, unless one went out already.
    #[cfg(feature = "websockets")]
    fn send_close(&self, frame: &[u8]) -> io::Result<()> {
        match self.layers.get() {
            Some(layers) if layers.close_sent.swap(true, Ordering::Relaxed) => Ok(()),
            _ => self.send_unframed(frame),
        }
    }
}

impl Socket {
    pub fn new(stream: TcpStream) -> Socket {
        Socket(Arc::new(Shared {
            tcp: stream,
            layers: OnceLock::new(),
        }))
    }

    /// Ends the connection in both directions. Threads blocked reading or writing on it
    /// wake up with end-of-stream or an error: this is how a connection is told to go. A
    /// WebSocket or TLS connection gets its layers' last words first, if they can be said
    /// without waiting for the writer.
    pub fn shutdown(&self) {
        if let Some(layers) = self.0.layers.get() {
            layers.goodbye(&self.0.tcp);
        }
        // Fails only if the socket is already closed, which is what we want anyway.
        let _ = self.0.tcp.shutdown(Shutdown::Both);
    }

    /// Makes a blocked read give up after `timeout` (`None`: wait for ever). This is the
    /// keepalive timer and the CONNECT timer: no extra thread, no timer wheel.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.tcp.set_read_timeout(timeout)
    }

    /// Makes a blocked write give up after `timeout` without progress (`None`: wait for
    /// ever): the keepalive timer while the reader writes its own answers. Changed under
    /// the output lock, if there is one: `Layers::goodbye` sets a timeout of its own under
    /// it for its last words, which a change from here must not undo.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let _output = self.0.layers.get().map(|layers| layers.output.lock());
        self.0.tcp.set_write_timeout(timeout)
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.tcp.peer_addr().ok()
    }

    /// The address the client connected to: which listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.0.tcp.local_addr().ok()
    }

    /// Who the client's certificate says it is ([`Identity::NotUsed`] unless its listener
    /// takes user names from certificates).
    pub fn identity(&self) -> Identity {
        match self.0.layers.get() {
            Some(layers) => layers.identity.clone(),
            None => Identity::NotUsed,
        }
    }

    /// The reading side of a plain TCP connection (the tests' way in; a listener's
    /// connections get theirs from [`Transport::establish`]).
    pub fn incoming(&self) -> Incoming {
        Incoming {
            socket: self.clone(),
            #[cfg(feature = "websockets")]
            websocket: None,
        }
    }
}

/// Writing to a socket sends the bytes whole: one WebSocket message per `write` on a
/// WebSocket connection (the writer writes one batch at a time), TLS records on a TLS one.
impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.layers.get() {
            Some(layers) => layers.send(&self.0.tcp, true, buf)?,
            None => (&self.0.tcp).write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading side of a connection: the bytes of MQTT as they arrive, out of their frames
/// and records. Owned by whichever thread reads: the handshake, then the reader.
#[derive(Debug)]
pub struct Incoming {
    socket: Socket,
    /// The frame decoder of a WebSocket connection.
    #[cfg(feature = "websockets")]
    websocket: Option<websocket::Inbound>,
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "websockets")]
        if let Some(websocket) = &mut self.websocket {
            return websocket.read(&self.socket.0, buf);
        }
        self.socket.0.read_stream(buf)
    }
}

/// What a listener puts between TCP and MQTT, ready to set up on each new connection.
pub struct Transport {
    #[cfg(feature = "tls")]
    tls: Option<tls::Acceptor>,
    websocket: bool,
    /// Mosquitto's `websockets_headers_size`: the longest HTTP upgrade request read.
    #[cfg_attr(not(feature = "websockets"), allow(dead_code))]
    header_limit: usize,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a listener's transport cannot be set up: a file that cannot be used, or a layer this
/// build of mqttd leaves out. Names the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError(pub String);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransportError {}

/// Why a new connection never got as far as MQTT: the TLS handshake or the WebSocket
/// upgrade failed. Logged at info; it costs nobody else anything.
#[derive(Debug)]
pub struct EstablishError {
    /// `"TLS handshake"` or `"WebSocket upgrade"`.
    pub step: &'static str,
    pub why: String,
}

impl fmt::Display for EstablishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.why)
    }
}

impl Transport {
    /// The transport of `listener`, its TLS files read. Returns warnings to log too (a
    /// `tls_version` rustls cannot offer, say). A listener that asks for a layer this build
    /// leaves out is refused, naming the cargo feature.
    pub fn for_listener(
        listener: &Listener,
        header_limit: usize,
    ) -> Result<(Transport, Vec<String>), TransportError> {
        let at = |problem: String| TransportError(format!("listener {}: {problem}", listener.bind));
        let websocket = match listener.protocol {
            Protocol::Mqtt => false,
            Protocol::WebSockets if cfg!(feature = "websockets") => true,
            Protocol::WebSockets => {
                return Err(at(missing_feature("protocol websockets", "websockets")));
            }
        };
        #[allow(unused_mut)]
        let mut warnings = Vec::new();
        let transport = Transport {
            #[cfg(feature = "tls")]
            tls: match &listener.tls {
                Some(settings) => {
                    let (acceptor, more) = tls::Acceptor::new(settings).map_err(at)?;
                    warnings.extend(
                        more.into_iter()
                            .map(|w| format!("listener {}: {w}", listener.bind)),
                    );
                    Some(acceptor)
                }
                None => None,
            },
            websocket,
            header_limit,
        };
        #[cfg(not(feature = "tls"))]
        if listener.tls.is_some() {
            return Err(at(missing_feature("certfile and keyfile (TLS)", "tls")));
        }
        Ok((transport, warnings))
    }

    /// What this listener speaks, as URL schemes say it: `mqtt`, `mqtts`, `ws` or `wss`.
    pub fn describe(&self) -> &'static str {
        match (self.has_tls(), self.websocket) {
            (false, false) => "mqtt",
            (true, false) => "mqtts",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }

    fn has_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Sets up this transport's layers on a new connection's socket: the TLS handshake,
    /// then the WebSocket upgrade, both done by `until` (the connection's CONNECT deadline:
    /// §3.1.4's reasonable time covers whatever comes before the CONNECT too). Returns the
    /// connection's reading side, which may already hold bytes that came early.
    pub fn establish(&self, socket: &Socket, until: Instant) -> Result<Incoming, EstablishError> {
        let _ = until;
        if !self.has_tls() && !self.websocket {
            return Ok(socket.incoming());
        }
        #[cfg(feature = "tls")]
        let (tls, identity) = match &self.tls {
            Some(acceptor) => {
                let (session, identity) = acceptor.handshake(&socket.0.tcp, until)?;
                (Some(session), identity)
            }
            None => (None, Identity::NotUsed),
        };
        #[cfg(not(feature = "tls"))]
        let identity = Identity::NotUsed;
        let layers = Layers {
            #[cfg(feature = "tls")]
            tls,
            websocket: self.websocket,
            output: Mutex::new(Vec::new()),
            identity,
            close_sent: AtomicBool::new(true),
        };
        // The handshake thread is the only one that knows this socket's layers yet.
        let _ = socket.0.layers.set(Box::new(layers));
        #[allow(unused_mut)]
        let mut incoming = socket.incoming();
        #[cfg(feature = "websockets")]
        if self.websocket {
            incoming.websocket = Some(websocket::upgrade(&socket.0, until, self.header_limit)?);
        }
        Ok(incoming)
    }
}

/// The error for a layer left out of this build.
fn missing_feature(what: &str, feature: &str) -> String {
    format!(
        "{what} needs mqttd built with the `{feature}` cargo feature, which this build \
         leaves out (it is on by default: build without --no-default-features, or with \
         --features {feature})"
    )
}

/// The time left until `until`, as a socket timeout (never zero, which would mean none).
#[cfg(any(feature = "tls", feature = "websockets"))]
fn time_left(until: Instant) -> io::Result<Duration> {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}
