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

use std::io;
use std::time::Instant;

use super::{time_left, EstablishError, Shared};

/// Writes the header of a binary frame of `len` bytes into `out`; returns its length.
pub(super) fn binary_header(len: usize, out: &mut [u8; 10]) -> usize {
    frame::header(frame::Opcode::Binary, len, out)
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
        if let Some(violation) = self.violation.take() {
            return Err(refuse(shared, &violation));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
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
            // Only control frames came: they are not MQTT traffic, so they do not hold off
            // the keepalive timer ([MQTT-3.1.2-24]), which is this read's timeout.
            if let Some(timeout) = shared.tcp.read_timeout()? {
                if started.elapsed() >= timeout {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        }
    }

    /// Answers one control frame: RFC 6455 §5.5.2 a ping with a pong carrying its data,
    /// §5.5.1 a close with a close (the stream then ends).
    fn answer(&mut self, shared: &Shared, control: frame::Control) -> io::Result<()> {
        let Some(reply) = control.reply() else {
            return Ok(());
        };
        let sent = shared.send_unframed(&reply);
        if let frame::Control::Close { .. } = control {
            // The stream ends either way; a client gone already cannot hear the reply.
            self.closed = true;
            return Ok(());
        }
        sent
    }
}

/// Tells the client, with a close frame, which rule its frames broke, and returns the error
/// that ends the connection.
fn refuse(shared: &Shared, violation: &frame::FrameError) -> io::Error {
    let _ = shared.send_unframed(&violation.close_frame());
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WebSocket: {violation}"),
    )
}

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
