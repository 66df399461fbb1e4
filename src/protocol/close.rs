//! Why a connection ended, and how that is logged: the one place that maps every way a
//! connection can end to a log level and a sentence.
//!
//! In MQTT 3.1.1 the server has no packet to say "I am closing you": closing the TCP
//! connection *is* the message ([MQTT-4.8.0-1]). So the log line is the only place a
//! learner can find out why; it always names the rule.

use std::fmt;
use std::io;

use crate::codec::{DecodeError, FrameError, PacketType};

/// Every way a connection ends.
#[derive(Debug)]
pub enum CloseReason {
    /// The client sent DISCONNECT: the clean way to leave.
    ClientDisconnected,
    /// The client closed the TCP connection without sending DISCONNECT.
    PeerClosed,
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// Nothing arrived for 1.5 × Keep Alive ([MQTT-3.1.2-24]).
    KeepAliveExpired { keep_alive: u16 },
    /// The bytes did not form a valid packet.
    Malformed(DecodeError),
    /// A packet bigger than the configured limit.
    TooLarge {
        remaining_length: usize,
        limit: usize,
    },
    /// A well-formed packet that breaks a rule of the protocol.
    Violation { rule: &'static str, what: String },
    /// Another connection presented the same Client Identifier ([MQTT-3.1.4-2]).
    TakenOver,
    /// The broker is shutting down.
    ServerStopping,
    /// A bug in mqttd: the connection's thread panicked. Only this connection is closed
    /// ([MQTT-4.8.0-2]).
    Panicked(String),
}

impl CloseReason {
    /// Turns a failed frame read into a reason. A read timeout means the keepalive timer
    /// ran out: the socket's read timeout *is* the timer.
    pub fn from_frame_error(error: FrameError, keep_alive: u16) -> CloseReason {
        match error {
            FrameError::Closed => CloseReason::PeerClosed,
            FrameError::Io(e) if is_timeout(&e) => CloseReason::KeepAliveExpired { keep_alive },
            FrameError::Io(e) => CloseReason::Io(e),
            FrameError::Malformed(e) => CloseReason::Malformed(e),
            FrameError::TooLarge {
                remaining_length,
                limit,
            } => CloseReason::TooLarge {
                remaining_length,
                limit,
            },
            FrameError::Unexpected { byte1, expected } => unexpected_first_byte(byte1, expected),
        }
    }

    /// Was this a breach of the protocol by the client (logged as a warning)? Bytes the
    /// transport refused count too: a WebSocket frame against RFC 6455 or [MQTT-6.0.0-1],
    /// a TLS record that does not decrypt (the transport reports them as invalid data).
    pub fn is_violation(&self) -> bool {
        match self {
            CloseReason::Malformed(_)
            | CloseReason::TooLarge { .. }
            | CloseReason::Violation { .. } => true,
            CloseReason::Io(e) => e.kind() == io::ErrorKind::InvalidData,
            _ => false,
        }
    }

    /// Logs the line that tells why `who` was closed: a warning for a breach of the
    /// protocol, information otherwise.
    pub fn log(&self, who: &str) {
        if let CloseReason::Panicked(_) = self {
            log::error!("client {who:?} closed: {self}");
        } else if self.is_violation() {
            log::warn!("client {who:?} closed: {self}");
        } else {
            log::info!("client {who:?} disconnected: {self}");
        }
    }
}

/// A first byte that cannot start the packet that must come now: only a new connection
/// expects one type ([MQTT-3.1.0-1]: CONNECT).
pub fn unexpected_first_byte(byte1: u8, expected: PacketType) -> CloseReason {
    let what = match PacketType::from_byte1(byte1) {
        Ok(found) => format!("first byte {byte1:#04x} starts a {}", found.name()),
        Err(_) => format!("first byte {byte1:#04x} starts no MQTT packet"),
    };
    CloseReason::Violation {
        rule: "[MQTT-3.1.0-1]",
        what: format!("{what}, not a {}; closed on that byte", expected.name()),
    }
}

/// Whether a read error is a read timeout (Unix reports `WouldBlock`, Windows `TimedOut`).
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ClientDisconnected => write!(f, "sent DISCONNECT"),
            CloseReason::PeerClosed => write!(f, "closed the connection without DISCONNECT"),
            CloseReason::Io(e) => write!(f, "connection error: {e}"),
            CloseReason::KeepAliveExpired { keep_alive } => write!(
                f,
                "[MQTT-3.1.2-24] nothing received for 1.5 x Keep Alive ({keep_alive} s)"
            ),
            CloseReason::Malformed(e) => e.as_close_reason().fmt(f),
            CloseReason::TooLarge {
                remaining_length,
                limit,
            } => write!(
                f,
                "Remaining Length {remaining_length} exceeds the limit of {limit} bytes \
                 (--max-packet-size); the body was not read"
            ),
            CloseReason::Violation { rule, what } => {
                write!(f, "protocol violation {rule}: {what}")
            }
            CloseReason::TakenOver => write!(
                f,
                "[MQTT-3.1.4-2] taken over by a new connection with the same Client Identifier"
            ),
            CloseReason::ServerStopping => write!(f, "the broker is stopping"),
            CloseReason::Panicked(message) => write!(
                f,
                "internal error (a bug in mqttd; only this connection is closed): {message}"
            ),
        }
    }
}
