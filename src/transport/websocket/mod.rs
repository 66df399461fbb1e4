//! MQTT over WebSockets (§6, RFC 6455): how a browser, or MQTT.js, reaches the broker.
//!
//! A WebSocket connection starts as HTTP: the client asks to upgrade (`upgrade.rs`), the
//! broker answers `101 Switching Protocols` with the subprotocol `mqtt`
//! ([MQTT-6.0.0-4]), and from then on both sides send frames (`frame.rs`). MQTT treats
//! the frames' payloads as one stream of bytes: a packet may be cut across frames and a
//! frame may hold several packets ([MQTT-6.0.0-2]), so nothing here knows where packets
//! begin. The MQTT codec above reads the stream exactly as it reads TCP, and its packet
//! size limit applies to packets, not frames.
//!
//! Reading: the reader's own buffer receives what the socket (or TLS) gives, and the
//! decoder unmasks the frames' payloads and moves them to the front of that same buffer:
//! no second buffer, no frame held whole, whatever length a frame announces. The control
//! frames met on the way are answered here, by the reader: a ping with a pong, a close with
//! a close. Writing: each write of the writer (one batch of packets) is one binary frame.

mod frame;
mod upgrade;

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::{time_left, EstablishError, Shared};

/// Writes the header of a binary frame of `len` bytes into `out`; returns its length.
pub(super) fn binary_header(len: usize, out: &mut [u8; 10]) -> usize {
    frame::header(frame::Opcode::Binary, len, out)
}

/// The close frame of a connection the broker ends itself: "normal closure" (1000).
pub(super) fn normal_close_frame() -> Vec<u8> {
    frame::close_frame(frame::close_code::NORMAL, "")
}

/// The reading side of one WebSocket connection.
#[derive(Debug)]
pub(super) struct Inbound {
    decoder: frame::Decoder,
    /// Bytes that came right behind the upgrade request, not decoded yet.
    early: Vec<u8>,
    /// A violation met after some MQTT bytes, which were returned first.
    violation: Option<frame::FrameError>,
    /// The client's close frame has been answered: the stream has ended.
    closed: bool,
}

impl Inbound {
    /// Reads MQTT bytes into `buf`, answering control frames on the way. A violation of
    /// RFC 6455 (or of [MQTT-6.0.0-1]) sends a close frame saying why and is an error.
    pub(super) fn read(&mut self, shared: &Shared, buf: &mut [u8]) -> io::Result<usize> {
        let mut silence = Silence::new();
        let read = self.read_payload(shared, buf, &mut silence);
        silence.restore(shared);
        read
    }

    fn read_payload(
        &mut self,
        shared: &Shared,
        buf: &mut [u8],
        silence: &mut Silence,
    ) -> io::Result<usize> {
        if let Some(violation) = self.violation.take() {
            return Err(refuse(shared, &violation));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.closed {
                return Ok(0);
            }
            let n = if self.early.is_empty() {
                shared.read_stream(buf)?
            } else {
                let n = self.early.len().min(buf.len());
                buf[..n].copy_from_slice(&self.early[..n]);
                self.early.drain(..n);
                n
            };
            if n == 0 {
                return Ok(0); // the connection closed without a close frame
            }
            let decoded = self.decoder.decode(&mut buf[..n]);
            for control in decoded.controls {
                self.answer(shared, control)?;
            }
            if let Some(violation) = decoded.error {
                if decoded.payload == 0 {
                    return Err(refuse(shared, &violation));
                }
                self.violation = Some(violation);
            }
            if decoded.payload > 0 {
                return Ok(decoded.payload);
            }
            silence.only_control_frames(shared)?;
        }
    }

    /// Answers one control frame: RFC 6455 §5.5.2 a ping with a pong carrying its data,
    /// §5.5.1 a close with a close (the stream then ends).
    fn answer(&mut self, shared: &Shared, control: frame::Control) -> io::Result<()> {
        let Some(reply) = control.reply() else {
            return Ok(());
        };
        if let frame::Control::Close { .. } = control {
            // The stream ends either way; a client gone already cannot hear the reply.
            self.closed = true;
            let _ = shared.send_close(&reply);
            return Ok(());
        }
        shared.send_unframed(&reply)
    }
}

/// The keepalive timer of one read. It is the socket's read timeout, 1.5 x Keep Alive
/// ([MQTT-3.1.2-24]), and it counts MQTT traffic: control frames are not. So after a read
/// that brought only control frames, the next one may wait only for what is left of the
/// timeout, not for a whole new one; the socket's own timeout is put back afterwards.
struct Silence {
    started: Instant,
    /// The socket's timeout, while a shorter one is set.
    full: Option<Duration>,
}

impl Silence {
    fn new() -> Silence {
        Silence {
            started: Instant::now(),
            full: None,
        }
    }

    /// Shortens the socket's read timeout to what is left of it, or gives up if nothing is.
    fn only_control_frames(&mut self, shared: &Shared) -> io::Result<()> {
        let full = match self.full {
            Some(full) => full,
            None => match shared.tcp.read_timeout()? {
                Some(full) => full,
                None => return Ok(()), // Keep Alive 0: no timer
            },
        };
        let left = full.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        shared.tcp.set_read_timeout(Some(left))?;
        self.full = Some(full);
        Ok(())
    }

    fn restore(self, shared: &Shared) {
        if let Some(full) = self.full {
            let _ = shared.tcp.set_read_timeout(Some(full));
        }
    }
}

/// Tells the client, with a close frame, which rule its frames broke, and returns the error
/// that ends the connection.
fn refuse(shared: &Shared, violation: &frame::FrameError) -> io::Error {
    let _ = shared.send_close(&violation.close_frame());
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WebSocket: {violation}"),
    )
}

/// After a refusal, lets the client read it. Closing a socket with unread bytes in it
/// makes the kernel reset the connection, and a reset can reach the client before it has
/// read the answer (a request that was too long is still arriving). So: no more writing,
/// then read and drop what still comes, until the client closes, [`LINGER_BYTES`] have
/// come, or `until`, at most [`LINGER_TIME`] from now.
fn linger(shared: &Shared, until: Instant) {
    let _ = shared.tcp.shutdown(std::net::Shutdown::Write);
    let until = until.min(Instant::now() + LINGER_TIME);
    let mut dropped = 0;
    let mut scratch = [0u8; 1024];
    while dropped < LINGER_BYTES {
        let Ok(left) = time_left(until) else { return };
        if shared.tcp.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&shared.tcp).read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => dropped += n,
        }
    }
}

/// The most a refused client may still send before the connection is closed anyway.
const LINGER_BYTES: usize = 64 * 1024;

/// The longest a refused client is waited for.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Reads the client's HTTP upgrade request, by `until`, and answers it: `101` and the
/// WebSocket stream begins, or a 4xx naming what was wrong and the end. Never reads more
/// than `limit` bytes of request (Mosquitto's `websockets_headers_size`).
pub(super) fn upgrade(
    shared: &Shared,
    until: Instant,
    limit: usize,
) -> Result<Inbound, EstablishError> {
    let failed = |why: String| EstablishError {
        step: "WebSocket upgrade",
        why,
    };
    let mut request = vec![0u8; limit];
    let mut filled = 0;
    loop {
        match upgrade::parse_request(&request[..filled], limit) {
            Ok(Some((accepted, used))) => {
                log::debug!(
                    "WebSocket upgrade: GET {}, subprotocol {}",
                    accepted.path,
                    accepted.protocol
                );
                shared
                    .send_unframed(&upgrade::accept_response(&accepted))
                    .map_err(|e| failed(e.to_string()))?;
                shared.frames_begin();
                return Ok(Inbound {
                    decoder: frame::Decoder::new(),
                    early: request[used..filled].to_vec(),
                    violation: None,
                    closed: false,
                });
            }
            Ok(None) => {}
            Err(refusal) => {
                let _ = shared.send_unframed(&refusal.response());
                linger(shared, until);
                return Err(failed(format!(
                    "answered {}: {}",
                    refusal.status, refusal.reason
                )));
            }
        }
        let read = time_left(until)
            .and_then(|left| shared.tcp.set_read_timeout(Some(left)))
            .and_then(|()| shared.read_stream(&mut request[filled..]));
        match read {
            Ok(0) => return Err(failed("the client closed the connection".into())),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                return Err(failed("no complete request within connect_timeout".into()));
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    }
}
