//! The byte stream under MQTT: plain TCP, TLS, WebSocket or WebSocket over TLS
//! (`--transport tcp|tls|ws|wss`).
//!
//! Everything above this module reads and writes MQTT bytes through [`Stream`], which is
//! `Read` and `Write` like a socket, so the scenarios, `buffers` and `wire` are the same
//! for every transport. Each layer is there only when the transport asks for it:
//!
//! ```text
//!   MQTT bytes: InBuf / OutBuf (buffers), read_frame (client)
//!        │ Read / Write                          Stream
//!   ┌────▼───────────────────────────────────┐
//!   │ WebSocket (ws, wss)                    │ each write() becomes ONE binary frame, masked
//!   │   RFC 6455 framing, written here       │ with a fresh key; frames read are unwrapped
//!   ├────────────────────────────────────────┤   Pipe
//!   │ TLS (tls, wss)                         │ rustls ClientConnection driven by hand:
//!   │   rustls, ring provider                │ read_tls → process_new_packets → reader(),
//!   │                                        │ writer() → write_tls
//!   ├────────────────────────────────────────┤
//!   │ TCP socket                             │ std's (blocking) while setting up,
//!   └────────────────────────────────────────┘ then mio's (non-blocking) in the event loops
//! ```
//!
//! Setting up (the TLS handshake, the HTTP upgrade) is done blocking, with the socket's
//! read timeout, before the socket goes to mio, like CONNECT and SUBSCRIBE in `client`.
//!
//! The same layers serve the other side of the connection in `relay`, the trivial broker
//! that measures this tool's ceiling: an [`Acceptor`] runs the server's half of the TLS
//! handshake and of the upgrade, and its WebSocket frames go out unmasked and come in
//! masked ([`Role`]).
//!
//! **The event loops' two rules hold through every layer.** mio is edge-triggered, so a
//! reader must read until `WouldBlock` (see `buffers`). A [`Stream`] returns `WouldBlock`
//! from `read` only when the socket itself did, never while a layer still holds bytes
//! (decrypted records inside rustls, a frame's payload here). On the way out, a layer may
//! hold bytes the socket did not take: `write` then accepts what it was given, and
//! [`Stream::flush`] (which `OutBuf::write_to` calls once its buffer is empty) pushes the
//! rest and says `WouldBlock` if the socket is still full, so the writer waits for the
//! next "writable" edge like any other. [`Stream::pending`] tells whether bytes are still
//! held, so that a publisher is not taken as done while its last frame sits here.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};
use sha1::{Digest, Sha1};

use crate::fail::Fail;

/// What `--transport` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "tcp" => Kind::Tcp,
            "tls" => Kind::Tls,
            "ws" => Kind::Ws,
            "wss" => Kind::Wss,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Wss => "wss",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Kind::Tls | Kind::Wss)
    }

    pub fn uses_websocket(self) -> bool {
        matches!(self, Kind::Ws | Kind::Wss)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name the server's certificate must carry: the test certificates of
/// `bench/compare.sh` are made for it (and for 127.0.0.1).
const SERVER_NAME: &str = "localhost";

/// How to turn a fresh TCP connection into a [`Stream`]: built once per run from the
/// command line and shared by every connection of one side.
#[derive(Debug, Clone)]
pub struct Connector {
    pub addr: SocketAddr,
    pub kind: Kind,
    /// For `tls` and `wss`: the certificates to trust (`--cafile`) and the rest of rustls's
    /// settings, built once.
    tls: Option<Arc<ClientConfig>>,
    /// The path of the HTTP upgrade request (`--ws-path`).
    ws_path: String,
    /// The TLS version and cipher suite of the first handshake, for the RESULT line.
    negotiated: Arc<OnceLock<String>>,
    /// The Keep Alive its clients' CONNECT packets carry, in seconds (`--keep-alive`).
    pub keep_alive: u16,
}

impl Connector {
    /// Plain TCP to `addr`: what `conns`, `store` and `resume` always use.
    pub fn tcp(addr: SocketAddr) -> Connector {
        Connector {
            addr,
            kind: Kind::Tcp,
            tls: None,
            ws_path: String::new(),
            negotiated: Arc::default(),
            keep_alive: 0,
        }
    }

    /// The same, with this Keep Alive (seconds) in its clients' CONNECT packets.
    pub fn with_keep_alive(mut self, seconds: u16) -> Connector {
        self.keep_alive = seconds;
        self
    }

    /// `kind` to `addr`; `tls` must be given for `tls` and `wss` (see [`tls_config`]).
    pub fn new(
        addr: SocketAddr,
        kind: Kind,
        tls: Option<Arc<ClientConfig>>,
        ws_path: &str,
    ) -> Result<Connector, Fail> {
        if kind.uses_tls() && tls.is_none() {
            return Err(Fail::Usage(format!("--transport {kind} needs --cafile")));
        }
        Ok(Connector {
            addr,
            kind,
            tls: tls.filter(|_| kind.uses_tls()),
            ws_path: ws_path.to_owned(),
            negotiated: Arc::default(),
            keep_alive: 0,
        })
    }

    /// `TLSv1_3/TLS13_AES_256_GCM_SHA384` after the first TLS handshake, else `None`.
    pub fn negotiated(&self) -> Option<&str> {
        self.negotiated.get().map(String::as_str)
    }

    /// Runs the TLS handshake and the WebSocket upgrade the transport asks for on a
    /// blocking TCP connection (its read timeout bounds every step).
    pub fn establish(
        &self,
        socket: std::net::TcpStream,
        client_id: &str,
    ) -> Result<Stream<std::net::TcpStream>, Fail> {
        let what = |step: &str| format!("{client_id}: {step}");
        let mut pipe = Pipe { socket, tls: None };
        if let Some(config) = &self.tls {
            let tls = self.tls_handshake(&mut pipe.socket, config, client_id)?;
            pipe.tls = Some(Box::new(Connection::Client(tls)));
        }
        let ws = match self.kind.uses_websocket() {
            true => Some(
                upgrade(&mut pipe, self.addr, &self.ws_path)
                    .map_err(Fail::io(what("WebSocket upgrade")))?,
            ),
            false => None,
        };
        Ok(Stream { pipe, ws })
    }

    fn tls_handshake(
        &self,
        socket: &mut std::net::TcpStream,
        config: &Arc<ClientConfig>,
        client_id: &str,
    ) -> Result<ClientConnection, Fail> {
        let name = ServerName::try_from(SERVER_NAME)
            .map_err(|e| Fail::Usage(format!("server name {SERVER_NAME:?}: {e}")))?;
        let mut tls = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| Fail::Protocol(format!("TLS: {e}")))?;
        while tls.is_handshaking() {
            // Blocking: each call writes what is due and reads one flight, or fails with
            // rustls's reason (an untrusted certificate is "invalid peer certificate").
            tls.complete_io(socket)
                .map_err(Fail::io(format!("{client_id}: TLS handshake")))?;
        }
        if let (Some(version), Some(suite)) =
            (tls.protocol_version(), tls.negotiated_cipher_suite())
        {
            let _ = self
                .negotiated
                .set(format!("{version:?}/{:?}", suite.suite()));
        }
        Ok(tls)
    }
}

/// The crypto provider, ring: the only one this project builds rustls with.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // rustls 0.23.48 marks ring's provider deprecated because ring has no post-quantum
    // key exchange; this tool measures brokers on loopback with a throw-away CA, and the
    // project builds rustls with ring alone (`cargo tree -e normal,dev | grep -i aws` is empty).
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rustls's client settings: the certificates in `cafile` (PEM) are the only ones trusted,
/// and the only crypto provider is ring.
pub fn tls_config(cafile: &Path) -> Result<Arc<ClientConfig>, Fail> {
    let bad = |e: &dyn fmt::Display| Fail::Usage(format!("--cafile {}: {e}", cafile.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cafile).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The relay's side: what a server needs to accept connections of one transport.
#[derive(Debug, Clone)]
pub struct Acceptor {
    kind: Kind,
    /// For `tls` and `wss`: the certificate chain and key (`--certfile`, `--keyfile`).
    tls: Option<Arc<ServerConfig>>,
}

impl Acceptor {
    /// Plain TCP, or `kind` with the certificate and key in these PEM files.
    pub fn new(kind: Kind, cert_and_key: Option<(&Path, &Path)>) -> Result<Acceptor, Fail> {
        let tls = match (kind.uses_tls(), cert_and_key) {
            (true, Some((cert, key))) => Some(server_tls_config(cert, key)?),
            (true, None) => {
                return Err(Fail::Usage(format!(
                    "relay --transport {kind} needs --certfile and --keyfile"
                )))
            }
            (false, _) => None,
        };
        Ok(Acceptor { kind, tls })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The server's half of the TLS handshake and of the WebSocket upgrade, blocking.
    pub fn establish(
        &self,
        socket: std::net::TcpStream,
    ) -> Result<Stream<std::net::TcpStream>, Fail> {
        let mut pipe = Pipe { socket, tls: None };
        if let Some(config) = &self.tls {
            let mut tls = ServerConnection::new(Arc::clone(config))
                .map_err(|e| Fail::Protocol(format!("TLS: {e}")))?;
            while tls.is_handshaking() {
                tls.complete_io(&mut pipe.socket)
                    .map_err(Fail::io("TLS handshake (server)"))?;
            }
            pipe.tls = Some(Box::new(Connection::Server(tls)));
        }
        let ws = match self.kind.uses_websocket() {
            true => {
                Some(accept_upgrade(&mut pipe).map_err(Fail::io("WebSocket upgrade (server)"))?)
            }
            false => None,
        };
        Ok(Stream { pipe, ws })
    }
}

/// rustls's server settings: one certificate chain and its key, ring as provider.
fn server_tls_config(certfile: &Path, keyfile: &Path) -> Result<Arc<ServerConfig>, Fail> {
    let bad = |path: &Path, e: &dyn fmt::Display| Fail::Usage(format!("{}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(certfile)
        .map_err(|e| bad(certfile, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(certfile, &e))?;
    let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| bad(keyfile, &e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(certfile, &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(keyfile, &e))?;
    Ok(Arc::new(config))
}

/// One connection's bytes, through whichever layers its transport has.
#[derive(Debug)]
pub struct Stream<S> {
    pipe: Pipe<S>,
    /// The WebSocket framing, for `ws` and `wss`.
    ws: Option<WebSocket>,
}

/// The connections the event loops use.
pub type MioStream = Stream<mio::net::TcpStream>;

impl<S> Stream<S> {
    /// The socket, to register it with mio or set its timeouts.
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.pipe.socket
    }

    /// Bytes written to this stream that have not reached the socket yet.
    pub fn pending(&self) -> bool {
        self.ws.as_ref().is_some_and(WebSocket::holds_output) || self.pipe.pending()
    }
}

impl Stream<std::net::TcpStream> {
    /// Hands a connection that is set up to mio: non-blocking from now on.
    pub fn into_mio(self) -> io::Result<MioStream> {
        let Stream { pipe, ws } = self;
        pipe.socket.set_nonblocking(true)?;
        Ok(Stream {
            pipe: Pipe {
                socket: mio::net::TcpStream::from_std(pipe.socket),
                tls: pipe.tls,
            },
            ws,
        })
    }
}

impl<S: Read + Write> Stream<S> {
    /// Says goodbye at each layer, as a polite client does after its DISCONNECT: a
    /// WebSocket close frame (1000, normal closure, §7.4.1) and TLS's close_notify, so
    /// that the broker sees a clean end and not a truncated stream. Best effort: what the
    /// socket does not take now goes when the connection is dropped, or not at all.
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(ws) = &mut self.ws {
            let mask = ws.next_mask();
            encode_frame(&mut ws.out, OP_CLOSE, mask, &1000u16.to_be_bytes());
            ws.push(&mut self.pipe)?;
        }
        if let Some(tls) = &mut self.pipe.tls {
            tls.send_close_notify();
        }
        self.pipe.flush()
    }
}

impl<S: Read + Write> Read for Stream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.ws {
            Some(ws) => ws.read(&mut self.pipe, buf),
            None => self.pipe.read(buf),
        }
    }
}

impl<S: Read + Write> Write for Stream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.ws {
            Some(ws) => ws.write(&mut self.pipe, buf),
            None => self.pipe.write(buf),
        }
    }

    /// Pushes every byte a layer still holds; `WouldBlock` if the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(ws) = &mut self.ws {
            ws.push(&mut self.pipe)?;
        }
        self.pipe.flush()
    }
}

/// The byte pipe under the WebSocket layer: the socket, through TLS when there is TLS
/// (the client's side of it, or in `relay` the server's).
#[derive(Debug)]
struct Pipe<S> {
    socket: S,
    tls: Option<Box<Connection>>,
}

impl<S> Pipe<S> {
    /// TLS records not yet written to the socket.
    fn pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }
}

impl<S: Read + Write> Read for Pipe<S> {
    /// Decrypted bytes if rustls has some; otherwise records from the socket until it has
    /// (or the socket says `WouldBlock`, which is passed up).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.socket.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                // 0 after the server's close_notify; after a bare TCP close, rustls says
                // UnexpectedEof instead.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            tls.read_tls(&mut self.socket)?;
            tls.process_new_packets()
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
            // Reading can give rustls something to say (an alert, a key update answer).
            write_records(tls, &mut self.socket).or_else(would_block_is_fine)?;
        }
    }
}

impl<S: Read + Write> Write for Pipe<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.socket.write(buf);
        };
        // Older records first: rustls would otherwise take plaintext faster than the
        // socket takes records. If they do not all go, nothing new is accepted.
        write_records(tls, &mut self.socket)?;
        let accepted = tls.writer().write(buf)?;
        write_records(tls, &mut self.socket).or_else(would_block_is_fine)?;
        Ok(accepted)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            write_records(tls, &mut self.socket)?;
        }
        self.socket.flush()
    }
}

/// Writes rustls's pending records until there are none or the socket is full.
fn write_records<S: Write>(tls: &mut Connection, socket: &mut S) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(socket)? == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// For `or_else`: a full socket is not an error where the bytes can wait for `flush`.
fn would_block_is_fine(e: io::Error) -> io::Result<()> {
    match e.kind() {
        ErrorKind::WouldBlock => Ok(()),
        _ => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// WebSocket (RFC 6455): the client's side, and the server's for `relay`.

/// The GUID that RFC 6455 §1.3 appends to the key before hashing it.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Opcodes, RFC 6455 §5.2.
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Byte 1 of a frame: FIN, the last frame of a message.
const FIN: u8 = 0x80;
/// Byte 1: the reserved bits, which stay 0 without an extension (none is negotiated).
const RSV_BITS: u8 = 0x70;
/// Byte 2: MASK, set on every frame from a client and on none from a server (§5.1).
const MASK: u8 = 0x80;
/// Payload lengths in byte 2 that say "the length follows in 2 (126) or 8 (127) bytes".
const LEN_16: u8 = 126;
const LEN_64: u8 = 127;
/// The longest HTTP request or response head of the upgrade that we read.
const MAX_HEAD: usize = 8 * 1024;
/// The read buffer under the framing: payload bytes leave it as soon as they arrive, so it
/// only ever has to hold a frame header and a control frame (at most 14 + 125 bytes).
const RAW_CAPACITY: usize = 64 * 1024;

/// Which end of the WebSocket this is. [RFC 6455 §5.1] a client masks every frame it
/// sends and a server none, and each closes the connection on a frame masked the wrong way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// A WebSocket connection's framing state: what came from below and is not unwrapped yet,
/// and frames made but not yet handed below.
struct WebSocket {
    role: Role,
    /// Bytes read from the pipe; `raw[start..end]` are not taken yet.
    raw: Box<[u8]>,
    start: usize,
    end: usize,
    /// Payload bytes of the current data frame still to come (in `raw` or below).
    payload_left: u64,
    /// The current data frame's masking key (frames from a client), and how many of its
    /// payload bytes have been unmasked: byte i is XORed with key byte i mod 4.
    mask: Option<[u8; 4]>,
    unmasked: u64,
    /// Frames (data, and pongs to the peer's pings) not yet written below.
    out: Vec<u8>,
    out_written: usize,
    keys: MaskKeys,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.role)
            .field("unread", &(self.end - self.start))
            .field("payload_left", &self.payload_left)
            .field("unwritten", &(self.out.len() - self.out_written))
            .finish()
    }
}

/// A frame header, read from the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    /// The masking key, on frames from a client.
    mask: Option<[u8; 4]>,
    /// Bytes of the header itself, masking key included (2 to 14).
    header_len: usize,
}

impl WebSocket {
    fn new(role: Role, keys: MaskKeys, leftover: &[u8]) -> WebSocket {
        let mut raw = vec![0; RAW_CAPACITY].into_boxed_slice();
        raw[..leftover.len()].copy_from_slice(leftover);
        WebSocket {
            role,
            raw,
            start: 0,
            end: leftover.len(),
            payload_left: 0,
            mask: None,
            unmasked: 0,
            out: Vec::new(),
            out_written: 0,
            keys,
        }
    }

    fn holds_output(&self) -> bool {
        self.out_written < self.out.len()
    }

    /// A fresh masking key for a client's frame; none for a server's.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then(|| self.keys.next_key())
    }

    /// Wraps all of `buf` in one binary frame. If frames from before could not all be
    /// written, nothing is taken: `WouldBlock`, as a full socket would say.
    fn write<S: Read + Write>(&mut self, pipe: &mut Pipe<S>, buf: &[u8]) -> io::Result<usize> {
        self.push(pipe)?;
        let mask = self.next_mask();
        encode_frame(&mut self.out, OP_BINARY, mask, buf);
        self.push(pipe).or_else(would_block_is_fine)?;
        Ok(buf.len())
    }

    /// Writes the frames made so far to the pipe, until done or `WouldBlock`.
    fn push<S: Read + Write>(&mut self, pipe: &mut Pipe<S>) -> io::Result<()> {
        while self.holds_output() {
            match pipe.write(&self.out[self.out_written..])? {
                0 => return Err(ErrorKind::WriteZero.into()),
                n => self.out_written += n,
            }
        }
        self.out.clear();
        self.out_written = 0;
        Ok(())
    }

    /// Hands on the payload of binary frames, answers pings, stops at a close.
    fn read<S: Read + Write>(&mut self, pipe: &mut Pipe<S>, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.payload_left > 0 && self.start < self.end {
                return Ok(self.take_payload(buf));
            }
            if self.payload_left == 0 {
                match self.next_frame()? {
                    Next::Data => continue,
                    Next::Closed => return Ok(0),
                    Next::NeedMore => {}
                }
            }
            if self.fill(pipe)? == 0 {
                return Ok(0);
            }
        }
    }

    fn take_payload(&mut self, buf: &mut [u8]) -> usize {
        let available = self.end - self.start;
        let n = usize::try_from(self.payload_left)
            .unwrap_or(usize::MAX)
            .min(available)
            .min(buf.len());
        buf[..n].copy_from_slice(&self.raw[self.start..self.start + n]);
        if let Some(key) = self.mask {
            apply_mask(&mut buf[..n], key, self.unmasked);
            self.unmasked += n as u64;
        }
        self.start += n;
        self.payload_left -= n as u64;
        n
    }

    /// Reads more bytes from the pipe into `raw`; 0 means the connection ended.
    fn fill<S: Read + Write>(&mut self, pipe: &mut Pipe<S>) -> io::Result<usize> {
        if self.start > 0 {
            self.raw.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = pipe.read(&mut self.raw[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Takes the frame header at the front of `raw`, and a control frame whole.
    fn next_frame(&mut self) -> io::Result<Next> {
        let Some(header) = parse_header(&self.raw[self.start..self.end], self.role)? else {
            return Ok(Next::NeedMore);
        };
        match header.opcode {
            // A message may come in several frames; MQTT is a byte stream, so their
            // payloads simply follow one another.
            OP_BINARY | OP_CONTINUATION => {
                self.start += header.header_len;
                self.payload_left = header.len;
                self.mask = header.mask;
                self.unmasked = 0;
                Ok(Next::Data)
            }
            OP_PING | OP_PONG | OP_CLOSE => self.control(header),
            OP_TEXT => Err(invalid("a text frame: MQTT goes in binary frames only")),
            other => Err(invalid(&format!("a frame with unknown opcode {other:#x}"))),
        }
    }

    /// A ping is answered with a pong carrying the same bytes (§5.5.2); a pong is dropped;
    /// a close ends the stream (its answer would change no figure).
    fn control(&mut self, header: Header) -> io::Result<Next> {
        // [RFC 6455 §5.5] control frames are not fragmented and carry at most 125 bytes.
        if !header.fin || header.len > 125 {
            return Err(invalid("a fragmented or long control frame"));
        }
        let total = header.header_len + header.len as usize;
        if self.end - self.start < total {
            return Ok(Next::NeedMore);
        }
        if header.opcode == OP_PING {
            let mut body = self.raw[self.start + header.header_len..self.start + total].to_vec();
            if let Some(key) = header.mask {
                apply_mask(&mut body, key, 0);
            }
            let mask = self.next_mask();
            encode_frame(&mut self.out, OP_PONG, mask, &body);
        }
        self.start += total;
        match header.opcode {
            OP_CLOSE => Ok(Next::Closed),
            _ => Ok(Next::Data),
        }
    }
}

/// What the front of the read buffer held.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A frame was taken; look again.
    Data,
    /// The peer closed the WebSocket.
    Closed,
    /// Not a whole header (or control frame) yet.
    NeedMore,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("WebSocket: {what}"))
}

/// Reads the peer's frame header, or `None` if `bytes` holds only part of one. `role` is
/// ours: a client expects unmasked frames, a server masked ones.
fn parse_header(bytes: &[u8], role: Role) -> io::Result<Option<Header>> {
    let (Some(&byte1), Some(&byte2)) = (bytes.first(), bytes.get(1)) else {
        return Ok(None);
    };
    if byte1 & RSV_BITS != 0 {
        return Err(invalid(
            "reserved bits set, but no extension was negotiated",
        ));
    }
    // [RFC 6455 §5.1] frames from a server are never masked, frames from a client always.
    match (role, byte2 & MASK != 0) {
        (Role::Client, true) => return Err(invalid("a masked frame from the server")),
        (Role::Server, false) => return Err(invalid("an unmasked frame from the client")),
        _ => {}
    }
    let (len, at) = match byte2 & !MASK {
        LEN_16 => match bytes.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        LEN_64 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let (mask, header_len) = match role {
        Role::Client => (None, at),
        Role::Server => match bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        {
            Some(key) => (Some(key), at + 4),
            None => return Ok(None),
        },
    };
    Ok(Some(Header {
        fin: byte1 & FIN != 0,
        opcode: byte1 & 0x0F,
        len,
        mask,
        header_len,
    }))
}

/// Appends one whole (FIN) frame: header, then the masking key and the masked payload
/// (a client's frame) or the payload as it is (a server's).
fn encode_frame(out: &mut Vec<u8>, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) {
    let mask_bit = if mask.is_some() { MASK } else { 0 };
    out.push(FIN | opcode);
    match payload.len() {
        n if n < usize::from(LEN_16) => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | LEN_16);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | LEN_64);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// [RFC 6455 §5.3] byte i of a payload is XORed with byte i mod 4 of the key; `offset`
/// is how far into the payload `bytes` starts. (Masking and unmasking are the same.)
fn apply_mask(bytes: &mut [u8], key: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= key[(shift + i) & 3];
    }
}

/// Masking keys and handshake nonces: random enough for a load generator (RFC 6455
/// wants keys a proxy cannot predict; nothing here is a secret). A xorshift generator,
/// seeded from the per-process random keys of std's `RandomState`.
struct MaskKeys(u64);

impl MaskKeys {
    fn new() -> MaskKeys {
        let seed = RandomState::new().build_hasher().finish();
        MaskKeys(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn next_key(&mut self) -> [u8; 4] {
        let [a, b, c, d, ..] = self.next_u64().to_be_bytes();
        [a, b, c, d]
    }
}

/// The client's opening handshake (RFC 6455 §4.1): GET with Upgrade, asking for the
/// subprotocol "mqtt" (MQTT 3.1.1 §6.0); the answer must be 101 with the right
/// Sec-WebSocket-Accept.
fn upgrade<S: Read + Write>(
    pipe: &mut Pipe<S>,
    addr: SocketAddr,
    path: &str,
) -> io::Result<WebSocket> {
    let mut keys = MaskKeys::new();
    let nonce: Vec<u8> = [keys.next_u64(), keys.next_u64()]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let key = BASE64.encode(nonce);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    pipe.write_all(request.as_bytes())?;
    pipe.flush()?;
    let (head, leftover) = read_head(pipe)?;
    check_response(&head, &key).map_err(|e| invalid(&e))?;
    Ok(WebSocket::new(Role::Client, keys, &leftover))
}

/// The server's side of the opening handshake (RFC 6455 §4.2), for `relay`: a GET that
/// asks for an upgrade to WebSocket version 13 with the subprotocol mqtt gets its 101.
fn accept_upgrade<S: Read + Write>(pipe: &mut Pipe<S>) -> io::Result<WebSocket> {
    let (head, leftover) = read_head(pipe)?;
    let key = check_request(&head).map_err(|e| invalid(&e))?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        accept_for(&key)
    );
    pipe.write_all(response.as_bytes())?;
    pipe.flush()?;
    Ok(WebSocket::new(Role::Server, MaskKeys::new(), &leftover))
}

/// Reads until the blank line that ends an HTTP head; returns it and whatever came
/// after (the peer may already have sent frames).
fn read_head<R: Read>(pipe: &mut R) -> io::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = bytes.split_off(at + 4);
            return Ok((String::from_utf8_lossy(&bytes).into_owned(), rest));
        }
        if bytes.len() > MAX_HEAD {
            return Err(invalid("the upgrade's HTTP head has no end"));
        }
        match pipe.read(&mut chunk)? {
            0 => return Err(invalid("the peer closed the connection during the upgrade")),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The value of header `name` (case-insensitive) in an HTTP head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(head: &str, name: &str, token: &str) -> bool {
    header(head, name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Checks the server's answer to the upgrade request: status, headers and the accept
/// value, which proves the server read our key (RFC 6455 §4.1, the client's checks).
fn check_response(head: &str, key: &str) -> Result<(), String> {
    let status = head.split("\r\n").next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(format!("the server answered {status:?}, not 101"));
    }
    if !has_token(head, "Upgrade", "websocket") {
        return Err("no \"Upgrade: websocket\" in the 101 response".into());
    }
    if !has_token(head, "Connection", "upgrade") {
        return Err("no \"Connection: Upgrade\" in the 101 response".into());
    }
    let expected = accept_for(key);
    match header(head, "Sec-WebSocket-Accept") {
        Some(accept) if accept == expected => {}
        other => {
            return Err(format!(
                "Sec-WebSocket-Accept {other:?}, expected {expected:?}"
            ))
        }
    }
    match header(head, "Sec-WebSocket-Protocol") {
        Some("mqtt") => Ok(()),
        other => Err(format!(
            "Sec-WebSocket-Protocol {other:?}, expected \"mqtt\""
        )),
    }
}

/// Checks a client's upgrade request (RFC 6455 §4.2.1); returns its key.
fn check_request(head: &str) -> Result<String, String> {
    let request = head.split("\r\n").next().unwrap_or_default();
    if !request.starts_with("GET ") {
        return Err(format!("expected a GET, got {request:?}"));
    }
    let upgrade =
        has_token(head, "Upgrade", "websocket") && has_token(head, "Connection", "upgrade");
    if !upgrade || header(head, "Sec-WebSocket-Version") != Some("13") {
        return Err("not a WebSocket version 13 upgrade request".into());
    }
    if !has_token(head, "Sec-WebSocket-Protocol", "mqtt") {
        return Err("the request does not offer the subprotocol mqtt".into());
    }
    header(head, "Sec-WebSocket-Key")
        .map(str::to_owned)
        .ok_or_else(|| "no Sec-WebSocket-Key".into())
}

/// Sec-WebSocket-Accept for a key: base64 of the SHA-1 of the key and the GUID.
fn accept_for(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WS_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_the_example_in_rfc_6455() {
        // §1.3: this key must give this accept value.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_frames_are_masked_with_the_three_length_forms() {
        let key = [1, 2, 3, 4];
        for (len, header) in [
            (5usize, 2usize),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OP_BINARY, Some(key), &payload);
            assert_eq!(out[0], FIN | OP_BINARY);
            assert_ne!(out[1] & MASK, 0, "client frames are masked");
            assert_eq!(&out[header..header + 4], &key);
            let unmasked: Vec<u8> = out[header + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(unmasked, payload, "length {len}");
        }
    }

    /// A socket that gives one byte per read, then end of stream.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.bytes.get(self.at) {
                Some(&b) if !buf.is_empty() => {
                    buf[0] = b;
                    self.at += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Reads `wire` through the framing as `role`, one byte at a time from below (every
    /// split of a header, key or payload), collecting the MQTT bytes.
    fn unwrap_bytewise(wire: &[u8], role: Role) -> (Vec<u8>, WebSocket) {
        let mut ws = WebSocket::new(role, MaskKeys(7), &[]);
        let mut pipe = Pipe {
            socket: Trickle {
                bytes: wire.to_vec(),
                at: 0,
            },
            tls: None,
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match ws.read(&mut pipe, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e}"),
            }
        }
        (got, ws)
    }

    /// A fragmented message with a ping between its frames, then a whole one, as `mask`
    /// says (a server's frames: None).
    fn fragmented(mqtt: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut wire = Vec::new();
        encode_frame(&mut wire, OP_BINARY, mask, &mqtt[..100]);
        wire[0] &= !FIN; // more frames of this message follow
        encode_frame(&mut wire, OP_PING, mask, b"hi");
        let at = wire.len();
        encode_frame(&mut wire, OP_CONTINUATION, mask, &[]);
        wire[at] &= !FIN;
        encode_frame(&mut wire, OP_CONTINUATION, mask, &mqtt[100..200]);
        encode_frame(&mut wire, OP_BINARY, mask, &mqtt[200..]);
        wire
    }

    #[test]
    fn a_client_unwraps_fragments_and_answers_pings_with_masked_pongs() {
        let mqtt: Vec<u8> = (0..300).map(|i| (i * 7) as u8).collect();
        let (got, ws) = unwrap_bytewise(&fragmented(&mqtt, None), Role::Client);
        assert_eq!(got, mqtt);
        // The ping's answer waits in `out`: a masked pong with the same two bytes.
        assert_eq!(ws.out[0], FIN | OP_PONG);
        assert_eq!(ws.out[1], MASK | 2);
        let key = &ws.out[2..6];
        assert_eq!([ws.out[6] ^ key[0], ws.out[7] ^ key[1]], *b"hi");
    }

    #[test]
    fn a_server_unmasks_client_frames_and_answers_pings_unmasked() {
        let mqtt: Vec<u8> = (0..300).map(|i| (i * 11) as u8).collect();
        let wire = fragmented(&mqtt, Some([0xA1, 0xB2, 0xC3, 0xD4]));
        let (got, ws) = unwrap_bytewise(&wire, Role::Server);
        assert_eq!(got, mqtt);
        assert_eq!(ws.out, [FIN | OP_PONG, 2, b'h', b'i']);
    }

    #[test]
    fn a_close_frame_ends_the_stream_and_text_is_refused() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, OP_BINARY, None, b"ab");
        encode_frame(&mut wire, OP_CLOSE, None, &[0x03, 0xE8]);
        encode_frame(&mut wire, OP_BINARY, None, b"never");
        assert_eq!(unwrap_bytewise(&wire, Role::Client).0, b"ab");

        let mut ws = WebSocket::new(Role::Client, MaskKeys(7), &[FIN | OP_TEXT, 1, b'x']);
        let mut pipe = Pipe {
            socket: io::Cursor::new(Vec::new()),
            tls: None,
        };
        assert!(ws.read(&mut pipe, &mut [0u8; 8]).is_err());
    }

    #[test]
    fn frames_masked_the_wrong_way_and_reserved_bits_are_refused() {
        assert!(parse_header(&[FIN | OP_BINARY, MASK | 1], Role::Client).is_err());
        assert!(parse_header(&[FIN | OP_BINARY, 1], Role::Server).is_err());
        assert!(parse_header(&[FIN | 0x40 | OP_BINARY, 1], Role::Client).is_err());
        assert_eq!(
            parse_header(&[FIN | OP_BINARY, LEN_16, 1], Role::Client).unwrap(),
            None
        );
        // A client's header is whole only with its four-byte key.
        assert_eq!(
            parse_header(&[FIN | OP_BINARY, MASK | 1, 9, 9, 9], Role::Server).unwrap(),
            None
        );
    }

    #[test]
    fn the_upgrade_response_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
                    Connection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                    Sec-WebSocket-Protocol: mqtt\r\n\r\n";
        assert_eq!(check_response(good, key), Ok(()));
        let wrong_accept = good.replace("xOo=", "xOp=");
        assert!(check_response(&wrong_accept, key).is_err());
        let no_protocol = good.replace("Sec-WebSocket-Protocol: mqtt\r\n", "");
        assert!(check_response(&no_protocol, key).is_err());
        assert!(check_response("HTTP/1.1 404 Not Found\r\n\r\n", key).is_err());
    }

    #[test]
    fn the_upgrade_request_is_checked() {
        let good = "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Key: abc==\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqttv3.1, mqtt\r\n\r\n";
        assert_eq!(check_request(good), Ok("abc==".to_owned()));
        assert!(check_request(&good.replace("mqttv3.1, mqtt", "mqttv3.1")).is_err());
        assert!(check_request(&good.replace("Version: 13", "Version: 8")).is_err());
        assert!(check_request(&good.replace("GET", "POST")).is_err());
    }
}
