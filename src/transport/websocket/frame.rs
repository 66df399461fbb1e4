//! WebSocket frames (RFC 6455 §5): taking MQTT bytes out of a client's frames, and writing
//! the server's frames.
//!
//! Over WebSocket, MQTT is still a byte stream: the client cuts it into binary frames
//! wherever it likes, one frame may hold several packets or a piece of one
//! ([MQTT-6.0.0-2]), and ping, pong and close frames may come in between. This module
//! removes the framing and hands back the stream; the MQTT decoder above never learns
//! that frames existed.
//!
//! One frame on the wire (RFC 6455 §5.2), drawn from the code below:
//!
//! ```text
//! byte 1         FIN (1 bit) | RSV1 RSV2 RSV3 (3 bits, 0 here) | opcode (4 bits)
//! byte 2         MASK (1 bit) | length code (7 bits):
//!                    0-125  the payload length itself
//!                    126    the length is in the next 2 bytes
//!                    127    the length is in the next 8 bytes
//! 0, 2 or 8      extended payload length, big-endian, shortest form only
//! 0 or 4         masking key: present in every client frame, never in a server frame
//! payload        client frames: each byte XOR key[i % 4]
//! ```
//!
//! For example, a client sending MQTT's PINGREQ (`C0 00`) in one binary frame masked with
//! the key `37 FA 21 3D` sends `82 82 37 FA 21 3D F7 FA`.
//!
//! ## Why the decoder works in place
//!
//! The reader thread of a connection reads from the socket into its own buffer, and the MQTT
//! decoder reads packets from that same buffer. [`Decoder::decode`] therefore unmasks the
//! payload of data frames where it lies and slides it to the front of the buffer, over the
//! frame headers it has consumed. No second buffer is needed for MQTT bytes, and a frame
//! that announces 2^62 bytes costs nothing: its length is a counter that the bytes which
//! actually arrive count down. The only bytes the decoder keeps between calls are a partial
//! header (at most 14 bytes) and a control frame's payload (at most 125 bytes).
//!
//! ## What the code around the decoder must do
//!
//! - After each [`Decoder::decode`], hand `buf[..payload]` to the MQTT decoder, *then*
//!   act on the controls and the error, in that order: packets that arrived whole before a
//!   close or a violation are real packets (a DISCONNECT among them included).
//! - Answer each [`Control`] with what [`Control::reply`] returns: a pong for a ping
//!   (RFC 6455 §5.5.2), a close for a close (§5.5.1).
//! - After a [`Control::Close`], send the reply and close the TCP connection: the client
//!   sends nothing more (§5.5.1), and the decoder ignores anything that still comes. An
//!   MQTT packet cut in half by the close is lost, as with any closed connection.
//! - On a [`FrameError`], send [`FrameError::close_frame`] and close the TCP connection
//!   (§7.1.7: "fail the WebSocket connection"). The decoder refuses all later bytes.
//! - Send MQTT bytes as binary frames: [`header`] with [`Opcode::Binary`], then the bytes,
//!   unmasked (§5.1: a server never masks).

use std::fmt;

/// FIN, bit 7 of byte 1: this frame is the last of its message (§5.2).
const FIN_BIT: u8 = 0x80;
/// RSV1, RSV2, RSV3, bits 6-4 of byte 1: meaningful only under a negotiated extension
/// (§5.2). mqttd negotiates none, so they must be 0.
const RSV_BITS: u8 = 0x70;
/// The opcode, bits 3-0 of byte 1 (§5.2).
const OPCODE_BITS: u8 = 0x0F;
/// The opcode bit that all control opcodes (close, ping, pong) have set (§5.5).
const CONTROL_OPCODE_BIT: u8 = 0x8;
/// MASK, bit 7 of byte 2: a masking key follows the length (§5.2, §5.3).
const MASK_BIT: u8 = 0x80;
/// The length code, bits 6-0 of byte 2 (§5.2).
const LENGTH_BITS: u8 = 0x7F;
/// The largest length that fits in the length code itself (§5.2).
const MAX_SHORT_LENGTH: u8 = 125;
/// Length code: the length is in the next two bytes (§5.2).
const LENGTH_IN_16_BITS: u8 = 126;
/// Length code: the length is in the next eight bytes (§5.2).
const LENGTH_IN_64_BITS: u8 = 127;
/// The bit a 64-bit length must leave clear (§5.2): the top bit of its first byte.
const LENGTH_64_HIGH_BIT: u8 = 0x80;
/// A masking key's size in bytes (§5.3).
const MASK_KEY_LEN: usize = 4;

/// The longest header a client can send: 2 bytes, an 8-byte length, a 4-byte key.
pub const MAX_CLIENT_HEADER_LEN: usize = 14;
/// The longest header the server sends: 2 bytes and an 8-byte length, no key.
pub const MAX_SERVER_HEADER_LEN: usize = 10;
/// The largest payload of a control frame (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close status codes this module sends or names (§7.4.1).
pub mod close_code {
    /// The connection did what it was for (§7.4.1: 1000).
    pub const NORMAL: u16 = 1000;
    /// The peer broke the WebSocket protocol (§7.4.1: 1002).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The peer sent a kind of data this endpoint does not take (§7.4.1: 1003); here, text.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// The peer sent data that does not match its type (§7.4.1: 1007); here, a close
    /// reason that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
}

/// The kind of a frame, bits 3-0 of byte 1 (§5.2, §11.8). The other ten values are
/// reserved and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// The next part of a message whose first frame had FIN clear (§5.4).
    Continuation = 0x0,
    /// UTF-8 text. MQTT never travels in text frames ([MQTT-6.0.0-1]).
    Text = 0x1,
    /// Bytes; MQTT's only data frame ([MQTT-6.0.0-1]).
    Binary = 0x2,
    /// The start of the closing handshake (§5.5.1).
    Close = 0x8,
    /// "Are you there?": answered by a pong with the same payload (§5.5.2).
    Ping = 0x9,
    /// The answer to a ping, or an unasked-for heartbeat (§5.5.3).
    Pong = 0xA,
}

impl Opcode {
    /// The opcode for these four bits, or `None` for a reserved value.
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// Close, ping and pong: opcodes with the high bit set (§5.5).
    pub fn is_control(self) -> bool {
        self as u8 & CONTROL_OPCODE_BIT != 0
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Opcode::Continuation => "continuation",
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Close => "close",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
        })
    }
}

/// A control frame that arrived, in the order it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A ping and its payload (at most 125 bytes), to be echoed in a pong (§5.5.2).
    Ping(Vec<u8>),
    /// A pong and its payload. Nothing to do: mqttd sends no pings, since MQTT's own
    /// PINGREQ keeps the connection alive, and an unasked-for pong needs no answer (§5.5.3).
    Pong(Vec<u8>),
    /// The client is closing. `code` is `None` when the frame had no payload (§5.5.1);
    /// the reason is UTF-8 text meant for people, often empty.
    Close { code: Option<u16>, reason: String },
}

impl Control {
    /// The frame to send back, if any: a pong with the ping's payload, or a close that
    /// echoes the client's status code (1000 when it gave none), as §5.5.1 suggests.
    pub fn reply(&self) -> Option<Vec<u8>> {
        match self {
            Control::Ping(payload) => Some(pong_frame(payload)),
            Control::Pong(_) => None,
            Control::Close { code, .. } => {
                Some(close_frame(code.unwrap_or(close_code::NORMAL), ""))
            }
        }
    }
}

/// A frame that breaks RFC 6455 or [MQTT-6.0.0-1]. Each one ends the connection with a
/// close frame carrying [`FrameError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The MASK bit of a client frame is 0 (§5.1).
    Unmasked,
    /// RSV1, RSV2 or RSV3 is set, though no extension was negotiated (§5.2). Holds the
    /// three bits as they sit in byte 1.
    ReservedBits(u8),
    /// An opcode RFC 6455 reserves (§5.2).
    UnknownOpcode(u8),
    /// A text frame ([MQTT-6.0.0-1]).
    TextFrame,
    /// A close, ping or pong with FIN clear (§5.5).
    FragmentedControl(Opcode),
    /// A close, ping or pong longer than 125 bytes (§5.5).
    ControlTooLong(Opcode),
    /// A continuation frame with no fragmented message open (§5.4).
    ContinuationWithoutMessage,
    /// A binary or text frame while a fragmented message still waits for its last
    /// continuation (§5.4).
    UnfinishedMessage,
    /// A 64-bit length with its most significant bit set (§5.2).
    LengthHighBitSet,
    /// A length written in a longer form than it needs (§5.2).
    NonMinimalLength { length: u64 },
    /// A close frame with a 1-byte payload: a status code takes two (§5.5.1).
    CloseCodeCut,
    /// A close status code that may not travel in a close frame (§7.4).
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (§5.5.1).
    CloseReasonNotUtf8,
}

impl FrameError {
    /// The status code the server's close frame carries for this error (§7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TextFrame => close_code::UNSUPPORTED_DATA,
            FrameError::CloseReasonNotUtf8 => close_code::INVALID_DATA,
            _ => close_code::PROTOCOL_ERROR,
        }
    }

    /// The close frame to send before closing the connection: the status code and this
    /// error's text, so a client's developer can read what went wrong.
    pub fn close_frame(&self) -> Vec<u8> {
        close_frame(self.close_code(), &self.to_string())
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Unmasked => write!(f, "unmasked frame from a client (RFC 6455 §5.1)"),
            FrameError::ReservedBits(bits) => write!(
                f,
                "reserved bits {bits:#04x} set with no extension negotiated (RFC 6455 §5.2)"
            ),
            FrameError::UnknownOpcode(opcode) => {
                write!(f, "reserved opcode {opcode:#x} (RFC 6455 §5.2)")
            }
            FrameError::TextFrame => {
                write!(
                    f,
                    "text frame: MQTT is sent in binary frames only [MQTT-6.0.0-1]"
                )
            }
            FrameError::FragmentedControl(opcode) => write!(
                f,
                "{opcode} frame without FIN: control frames are never fragmented (RFC 6455 §5.5)"
            ),
            FrameError::ControlTooLong(opcode) => {
                write!(f, "{opcode} frame longer than 125 bytes (RFC 6455 §5.5)")
            }
            FrameError::ContinuationWithoutMessage => write!(
                f,
                "continuation frame with no fragmented message open (RFC 6455 §5.4)"
            ),
            FrameError::UnfinishedMessage => write!(
                f,
                "new data frame before the fragmented message ended (RFC 6455 §5.4)"
            ),
            FrameError::LengthHighBitSet => write!(
                f,
                "64-bit payload length with its most significant bit set (RFC 6455 §5.2)"
            ),
            FrameError::NonMinimalLength { length } => write!(
                f,
                "payload length {length} not written in its shortest form (RFC 6455 §5.2)"
            ),
            FrameError::CloseCodeCut => write!(
                f,
                "close frame with a 1-byte payload, too short for a status code (RFC 6455 §5.5.1)"
            ),
            FrameError::InvalidCloseCode(code) => {
                write!(
                    f,
                    "close status code {code} may not be sent (RFC 6455 §7.4)"
                )
            }
            FrameError::CloseReasonNotUtf8 => {
                write!(f, "close reason is not UTF-8 (RFC 6455 §5.5.1)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

// ---------------------------------------------------------------------------------------
// Decoding: client frames to the MQTT byte stream.

/// What one call to [`Decoder::decode`] found in its chunk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// How many MQTT bytes now sit at the front of the buffer, unmasked.
    pub payload: usize,
    /// The control frames completed in this chunk, in order. Each takes at least 6 bytes
    /// of the chunk, so the list stays small.
    pub controls: Vec<Control>,
    /// A violation met in this chunk. The bytes after it were not decoded, but the
    /// `payload` before it is good: packets that arrived whole before it are not lost.
    pub error: Option<FrameError>,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct PayloadInProgress {
    opcode: Opcode,
    /// Payload bytes still to come. A plain counter: nothing is allocated from it.
    remaining: u64,
    mask: Mask,
}

/// Why the decoder takes no more bytes.
#[derive(Debug, Clone)]
enum Stopped {
    /// A close frame arrived: nothing may follow it (§5.5.1).
    Closed,
    /// The client broke a rule; every later call reports it again.
    Failed(FrameError),
}

/// Takes a client's frames apart, chunk by chunk, however the chunks were cut: a chunk may
/// end in the middle of a header, a masking key, a payload or a control frame.
///
/// All of its state is the few fields below; it keeps no data frame's bytes.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// The header being read, as far as it has arrived: `header[..header_len]`. Written by
    /// `header_byte` byte by byte, emptied as soon as the header is complete.
    header: [u8; MAX_CLIENT_HEADER_LEN],
    header_len: usize,
    /// The frame whose payload is being read; `None` between frames, while a header is read.
    payload: Option<PayloadInProgress>,
    /// Whether a fragmented message is open: a binary frame with FIN clear arrived, and the
    /// continuation with FIN set not yet (§5.4). Decides which data opcode may come next.
    in_message: bool,
    /// The payload of the control frame being read, `control[..control_len]`, unmasked.
    /// Control frames are collected whole because their payload is answered or checked,
    /// not passed on; §5.5 caps it at 125 bytes, so a fixed array holds it.
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
    /// Set by a close frame or a violation; from then on no byte is decoded.
    stopped: Option<Stopped>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for a connection that has just finished its opening handshake.
    pub fn new() -> Decoder {
        Decoder {
            header: [0; MAX_CLIENT_HEADER_LEN],
            header_len: 0,
            payload: None,
            in_message: false,
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            stopped: None,
        }
    }

    /// Decodes `buf`, the bytes just read from the connection.
    ///
    /// The unmasked payload of binary and continuation frames is moved to the front of
    /// `buf`, over the headers already consumed; [`Decoded::payload`] says how much of it
    /// there is. Everything after that in `buf` is left over and means nothing.
    pub fn decode(&mut self, buf: &mut [u8]) -> Decoded {
        let mut decoded = Decoded::default();
        if let Some(Stopped::Failed(error)) = &self.stopped {
            decoded.error = Some(error.clone());
            return decoded;
        }
        // `written` never passes `read`: every byte written was read first, and headers and
        // control frames are read without being written. So moving payload to the front
        // never overwrites a byte that has not been read yet.
        let (mut read, mut written) = (0, 0);
        while read < buf.len() && self.stopped.is_none() {
            let step = if self.payload.is_none() {
                let byte = buf[read];
                read += 1;
                self.header_byte(byte)
            } else {
                self.payload_bytes(buf, &mut read, &mut written)
            };
            match step {
                Ok(None) => {}
                Ok(Some(control)) => {
                    if let Control::Close { .. } = control {
                        // RFC 6455 §5.5.1: the close is the client's last frame; whatever
                        // follows it is not decoded.
                        self.stopped = Some(Stopped::Closed);
                    }
                    decoded.controls.push(control);
                }
                Err(error) => {
                    self.stopped = Some(Stopped::Failed(error.clone()));
                    decoded.error = Some(error);
                }
            }
        }
        decoded.payload = written;
        decoded
    }

    /// Adds one byte to the header being read. When it completes the header, the frame
    /// begins, and a control frame without payload is already whole.
    fn header_byte(&mut self, byte: u8) -> Result<Option<Control>, FrameError> {
        // In bounds: `read_header` reports a header complete at its 14th byte at the
        // latest, and a complete header empties `header`.
        self.header[self.header_len] = byte;
        self.header_len += 1;
        match read_header(&self.header[..self.header_len], self.in_message)? {
            HeaderProgress::Incomplete => Ok(None),
            HeaderProgress::Complete(header) => {
                self.header_len = 0;
                self.begin_frame(header)
            }
        }
    }

    /// Starts reading the payload of a frame whose header was just read.
    fn begin_frame(&mut self, header: FrameHeader) -> Result<Option<Control>, FrameError> {
        // RFC 6455 §5.4: a binary frame without FIN opens a message, a continuation with FIN
        // ends it. `read_header` has already refused the orders that make no sense.
        if let Opcode::Binary | Opcode::Continuation = header.opcode {
            self.in_message = !header.fin;
        }
        self.control_len = 0;
        if header.length == 0 {
            return self.finish_frame(header.opcode);
        }
        self.payload = Some(PayloadInProgress {
            opcode: header.opcode,
            remaining: header.length,
            mask: header.mask,
        });
        Ok(None)
    }

    /// Takes as much of the current frame's payload as `buf[*read..]` holds. Data bytes are
    /// unmasked and moved to `buf[*written..]`; control bytes are unmasked into `control`.
    fn payload_bytes(
        &mut self,
        buf: &mut [u8],
        read: &mut usize,
        written: &mut usize,
    ) -> Result<Option<Control>, FrameError> {
        let Some(frame) = self.payload.as_mut() else {
            return Ok(None);
        };
        let available = buf.len() - *read;
        // A count that does not fit in a usize is certainly more than `available`.
        let n = usize::try_from(frame.remaining).map_or(available, |r| r.min(available));
        let source = *read..*read + n;
        if frame.opcode.is_control() {
            // In bounds: a control frame's payload is at most 125 bytes (checked in its
            // header), and `control_len + remaining` never exceeds it.
            let collected = &mut self.control[self.control_len..self.control_len + n];
            collected.copy_from_slice(&buf[source]);
            frame.mask.apply(collected);
            self.control_len += n;
        } else {
            buf.copy_within(source, *written);
            frame.mask.apply(&mut buf[*written..*written + n]);
            *written += n;
        }
        *read += n;
        // Widening: a usize has at most 64 bits on every target Rust supports.
        frame.remaining -= n as u64;
        if frame.remaining > 0 {
            return Ok(None);
        }
        let opcode = frame.opcode;
        self.payload = None;
        self.finish_frame(opcode)
    }

    /// A frame's last payload byte has arrived: a control frame becomes a [`Control`].
    fn finish_frame(&mut self, opcode: Opcode) -> Result<Option<Control>, FrameError> {
        let payload = &self.control[..self.control_len];
        match opcode {
            Opcode::Ping => Ok(Some(Control::Ping(payload.to_vec()))),
            Opcode::Pong => Ok(Some(Control::Pong(payload.to_vec()))),
            Opcode::Close => read_close(payload).map(Some),
            // Data frames were passed on byte by byte; there is nothing left to do.
            Opcode::Binary | Opcode::Continuation | Opcode::Text => Ok(None),
        }
    }
}

/// A complete frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    fin: bool,
    opcode: Opcode,
    length: u64,
    mask: Mask,
}

/// What the header bytes that have arrived so far amount to.
#[derive(Debug, PartialEq, Eq)]
enum HeaderProgress {
    /// Valid so far; more bytes are needed.
    Incomplete,
    /// `bytes` is exactly one complete, valid header.
    Complete(FrameHeader),
}

/// Reads the start of a header, `bytes`, which may stop anywhere. Each field is checked as
/// soon as it is in, so a bad frame is refused on the byte that makes it bad, without
/// waiting for the rest of the header.
///
/// `in_message` says whether a fragmented message is open, which decides whether a
/// continuation or a new binary frame may come (§5.4).
fn read_header(bytes: &[u8], in_message: bool) -> Result<HeaderProgress, FrameError> {
    let Some(&byte1) = bytes.first() else {
        return Ok(HeaderProgress::Incomplete);
    };
    let (fin, opcode) = read_byte1(byte1, in_message)?;
    let Some(&byte2) = bytes.get(1) else {
        return Ok(HeaderProgress::Incomplete);
    };
    let length_code = read_byte2(byte2, opcode)?;
    let Some((length, length_len)) = read_length(length_code, &bytes[2..])? else {
        return Ok(HeaderProgress::Incomplete);
    };
    let key_start = 2 + length_len;
    let key = bytes.get(key_start..key_start + MASK_KEY_LEN);
    let Some(key) = key.and_then(|key| <[u8; MASK_KEY_LEN]>::try_from(key).ok()) else {
        return Ok(HeaderProgress::Incomplete);
    };
    let mask = Mask::new(key);
    Ok(HeaderProgress::Complete(FrameHeader {
        fin,
        opcode,
        length,
        mask,
    }))
}

/// Byte 1: FIN, the reserved bits and the opcode, and whether this opcode may come now.
fn read_byte1(byte1: u8, in_message: bool) -> Result<(bool, Opcode), FrameError> {
    // RFC 6455 §5.2: RSV1-3 carry meaning only under an extension; none was negotiated.
    let reserved = byte1 & RSV_BITS;
    if reserved != 0 {
        return Err(FrameError::ReservedBits(reserved));
    }
    // RFC 6455 §5.2: an opcode outside the defined six fails the connection.
    let bits = byte1 & OPCODE_BITS;
    let opcode = Opcode::from_bits(bits).ok_or(FrameError::UnknownOpcode(bits))?;
    let fin = byte1 & FIN_BIT != 0;
    match opcode {
        // [MQTT-6.0.0-1] MQTT travels in binary frames; any other data frame closes the
        // connection. RFC 6455 §7.4.1 has a code for data of a type not accepted: 1003.
        Opcode::Text => Err(FrameError::TextFrame),
        // RFC 6455 §5.4: a continuation only continues an open message...
        Opcode::Continuation if !in_message => Err(FrameError::ContinuationWithoutMessage),
        // ...and messages do not interleave: a new one waits for the open one's last frame.
        Opcode::Binary if in_message => Err(FrameError::UnfinishedMessage),
        // RFC 6455 §5.5: control frames are never fragmented.
        Opcode::Close | Opcode::Ping | Opcode::Pong if !fin => {
            Err(FrameError::FragmentedControl(opcode))
        }
        _ => Ok((fin, opcode)),
    }
}

/// Byte 2: the MASK bit and the length code.
fn read_byte2(byte2: u8, opcode: Opcode) -> Result<u8, FrameError> {
    // RFC 6455 §5.1: a client masks every frame; an unmasked one ends the connection.
    if byte2 & MASK_BIT == 0 {
        return Err(FrameError::Unmasked);
    }
    let length_code = byte2 & LENGTH_BITS;
    // RFC 6455 §5.5: a control frame's payload is at most 125 bytes, so its length always
    // fits in the length code; 126 or 127 announce a longer one.
    if opcode.is_control() && length_code > MAX_SHORT_LENGTH {
        return Err(FrameError::ControlTooLong(opcode));
    }
    Ok(length_code)
}

/// The payload length, from the length code and the bytes after byte 2 (`after`, which
/// may stop anywhere). Returns the length and how many bytes after byte 2 it took (0, 2 or
/// 8), or `None` while those bytes have not all arrived.
///
/// A length in a longer form than it needs (5 written in 2 bytes) is refused, not
/// accepted. RFC 6455 §5.2 says the shortest form MUST be used, so a conforming client
/// never sends another, and a decoder that let it pass would hide a client's bug (the
/// house rule: reject, never mask). The MQTT codec differs on purpose: MQTT 3.1.1 states
/// no such rule for the Remaining Length.
fn read_length(length_code: u8, after: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let (length, length_len, shortest) = match length_code {
        LENGTH_IN_16_BITS => {
            let Some(bytes) = after.get(..2).and_then(|b| <[u8; 2]>::try_from(b).ok()) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes(bytes)), 2, 126)
        }
        LENGTH_IN_64_BITS => {
            // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0. It is
            // in the first length byte, so it is judged as soon as that byte is in.
            if after.first().is_some_and(|&b| b & LENGTH_64_HIGH_BIT != 0) {
                return Err(FrameError::LengthHighBitSet);
            }
            let Some(bytes) = after.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                return Ok(None);
            };
            (u64::from_be_bytes(bytes), 8, 65_536)
        }
        short => return Ok(Some((u64::from(short), 0))),
    };
    // RFC 6455 §5.2: the length is written in the fewest bytes that hold it.
    if length < shortest {
        return Err(FrameError::NonMinimalLength { length });
    }
    Ok(Some((length, length_len)))
}

/// Reads the payload of a close frame: nothing, or a status code and a UTF-8 reason.
fn read_close(payload: &[u8]) -> Result<Control, FrameError> {
    match *payload {
        // RFC 6455 §5.5.1: a close frame may have no payload at all.
        [] => Ok(Control::Close {
            code: None,
            reason: String::new(),
        }),
        // RFC 6455 §5.5.1: if there is a payload, its first two bytes are the status code.
        [_] => Err(FrameError::CloseCodeCut),
        [high, low, ref reason @ ..] => {
            let code = u16::from_be_bytes([high, low]);
            // RFC 6455 §7.4: only some codes may travel in a close frame.
            if !is_valid_close_code(code) {
                return Err(FrameError::InvalidCloseCode(code));
            }
            // RFC 6455 §5.5.1: the reason after the code is UTF-8.
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::CloseReasonNotUtf8)?;
            Ok(Control::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

/// Whether a client may send `code` in a close frame (§7.4).
///
/// - 1000-1003 and 1007-1011 are defined by §7.4.1; 1012-1014 were added to the IANA
///   registry later (service restart, try again later, bad gateway), and we take them.
/// - 1004 is reserved, and 1005, 1006 and 1015 stand for "no code", "no close frame" and
///   "TLS failed": §7.4.1 forbids sending them in a frame.
/// - 3000-3999 are for libraries and frameworks, 4000-4999 for private use (§7.4.2).
/// - Everything else (below 1000, the rest of 1000-2999, 5000 and above) is unassigned.
fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A masking key, and how far into it the next payload byte is (§5.3).
///
/// The position carries on from one chunk to the next: a payload split across two reads
/// is unmasked as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mask {
    key: [u8; MASK_KEY_LEN],
    position: usize,
}

impl Mask {
    fn new(key: [u8; MASK_KEY_LEN]) -> Mask {
        Mask { key, position: 0 }
    }

    /// Unmasks `bytes` in place: byte i of the payload is XORed with key byte i mod 4.
    fn apply(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte ^= self.key[self.position];
            self.position = (self.position + 1) % MASK_KEY_LEN;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoding: the server's frames, never masked (§5.1).

/// Writes the header of a server frame into `out`: FIN set, `opcode`, a payload of `len`
/// bytes, no mask (§5.1: a server never masks). Returns the header's length: 2, 4 or 10.
///
/// The length is written in its shortest form (§5.2). A control frame's `len` must be at
/// most 125 (§5.5); [`close_frame`] and [`pong_frame`] see to that.
pub fn header(opcode: Opcode, len: usize, out: &mut [u8; MAX_SERVER_HEADER_LEN]) -> usize {
    debug_assert!(!opcode.is_control() || len <= MAX_CONTROL_PAYLOAD);
    out[0] = FIN_BIT | opcode as u8;
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if short <= MAX_SHORT_LENGTH => {
            out[1] = short;
            2
        }
        (_, Ok(medium)) => {
            out[1] = LENGTH_IN_16_BITS;
            out[2..4].copy_from_slice(&medium.to_be_bytes());
            4
        }
        _ => {
            out[1] = LENGTH_IN_64_BITS;
            // Widening: a usize has at most 64 bits on every target Rust supports, and no
            // buffer reaches 2^63 bytes, so the high bit stays clear as §5.2 asks.
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    }
}

/// A whole close frame with `code` and `reason` (§5.5.1). The reason is cut, at a character
/// boundary so it stays UTF-8, to fit the 125-byte control payload with the code.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = truncate_utf8(reason, MAX_CONTROL_PAYLOAD - 2);
    let mut head = [0; MAX_SERVER_HEADER_LEN];
    let head_len = header(Opcode::Close, 2 + reason.len(), &mut head);
    let mut frame = Vec::with_capacity(head_len + 2 + reason.len());
    frame.extend_from_slice(&head[..head_len]);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}

/// A whole pong frame carrying `payload`, the payload of the ping it answers (§5.5.3).
/// A ping's payload is at most 125 bytes; anything longer is cut to that.
pub fn pong_frame(payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mut head = [0; MAX_SERVER_HEADER_LEN];
    let head_len = header(Opcode::Pong, payload.len(), &mut head);
    let mut frame = Vec::with_capacity(head_len + payload.len());
    frame.extend_from_slice(&head[..head_len]);
    frame.extend_from_slice(payload);
    frame
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Byte 1 of a final binary frame, of a final ping, and of a final close.
    const FIN_BINARY: u8 = 0x82;
    const FIN_PING: u8 = 0x89;
    const FIN_CLOSE: u8 = 0x88;
    /// The masking key of the RFC 6455 §5.7 examples.
    const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    /// RFC 6455 §5.7, "a single-frame masked text message" holding "Hello".
    const RFC_MASKED_TEXT_HELLO: [u8; 11] = [
        0x81, // FIN, opcode 1: text
        0x85, // MASK, length 5
        0x37, 0xFA, 0x21, 0x3D, // masking key
        0x7F, 0x9F, 0x4D, 0x51, 0x58, // "Hello" XOR the key
    ];

    /// The same frame as binary: what an MQTT client would send.
    const MASKED_BINARY_HELLO: [u8; 11] = [
        0x82, // FIN, opcode 2: binary
        0x85, // MASK, length 5
        0x37, 0xFA, 0x21, 0x3D, // masking key
        0x7F, 0x9F, 0x4D, 0x51, 0x58, // "Hello" XOR the key
    ];

    /// RFC 6455 §5.7's fragmented "Hello", as a client must send it: binary and masked.
    const MASKED_FRAGMENTED_HELLO: [u8; 17] = [
        0x02, // FIN clear, opcode 2: binary, the message goes on
        0x83, // MASK, length 3
        0x37, 0xFA, 0x21, 0x3D, // masking key
        0x7F, 0x9F, 0x4D, // "Hel" XOR the key
        0x80, // FIN, opcode 0: continuation, the message ends
        0x82, // MASK, length 2
        0x37, 0xFA, 0x21, 0x3D, // masking key (the same, for reading ease)
        0x5B, 0x95, // "lo" XOR the key
    ];

    /// A masked client frame with `byte1`, written here independently of [`header`].
    fn client_frame(byte1: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![byte1];
        match payload.len() {
            0..=125 => frame.push(0x80 | payload.len() as u8),
            126..=65_535 => {
                frame.push(0x80 | 126);
                frame.extend((payload.len() as u16).to_be_bytes());
            }
            _ => {
                frame.push(0x80 | 127);
                frame.extend((payload.len() as u64).to_be_bytes());
            }
        }
        frame.extend(key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        frame
    }

    /// Decodes `bytes` in one chunk; returns the MQTT bytes and what was found.
    fn decode_chunk(decoder: &mut Decoder, bytes: &[u8]) -> (Vec<u8>, Decoded) {
        let mut buf = bytes.to_vec();
        let decoded = decoder.decode(&mut buf);
        (buf[..decoded.payload].to_vec(), decoded)
    }

    /// Decodes `bytes` with a fresh decoder, in one chunk.
    fn decode_once(bytes: &[u8]) -> (Vec<u8>, Decoded) {
        decode_chunk(&mut Decoder::new(), bytes)
    }

    /// [MQTT-6.0.0-1] The RFC's own masked text frame is refused with 1003: MQTT is binary.
    #[test]
    fn rfc_masked_text_hello_is_refused_mqtt_6_0_0_1() {
        let (payload, decoded) = decode_once(&RFC_MASKED_TEXT_HELLO);
        assert_eq!(payload, b"");
        assert_eq!(decoded.error, Some(FrameError::TextFrame));
        assert_eq!(
            FrameError::TextFrame.close_code(),
            close_code::UNSUPPORTED_DATA
        );
        assert!(FrameError::TextFrame.to_string().contains("[MQTT-6.0.0-1]"));
    }

    /// [MQTT-6.0.0-1] A text frame is refused on its first byte, before its length arrives.
    #[test]
    fn a_text_frame_is_refused_on_its_first_byte_mqtt_6_0_0_1() {
        let (_, decoded) = decode_once(&RFC_MASKED_TEXT_HELLO[..1]);
        assert_eq!(decoded.error, Some(FrameError::TextFrame));
    }

    #[test]
    fn a_masked_binary_hello_is_unmasked_in_place_over_its_header() {
        let mut buf = MASKED_BINARY_HELLO.to_vec();
        let decoded = Decoder::new().decode(&mut buf);
        assert_eq!(
            decoded,
            Decoded {
                payload: 5,
                controls: vec![],
                error: None
            }
        );
        assert_eq!(&buf[..5], b"Hello", "the header bytes were overwritten");
    }

    #[test]
    fn a_fragmented_message_passes_through_as_one_stream() {
        let (payload, decoded) = decode_once(&MASKED_FRAGMENTED_HELLO);
        assert_eq!((payload.as_slice(), decoded.error), (&b"Hello"[..], None));
    }

    /// RFC 6455 §5.4: control frames may come between the fragments of a message.
    #[test]
    fn a_ping_between_fragments_is_reported_and_the_stream_goes_on() {
        let mut wire = MASKED_FRAGMENTED_HELLO[..9].to_vec(); // "Hel", FIN clear
        wire.extend(client_frame(FIN_PING, b"?", KEY));
        wire.extend(&MASKED_FRAGMENTED_HELLO[9..]); // "lo", FIN set
        let (payload, decoded) = decode_once(&wire);
        assert_eq!(payload, b"Hello");
        assert_eq!(decoded.controls, vec![Control::Ping(b"?".to_vec())]);
        assert_eq!(decoded.error, None);
    }

    /// RFC 6455 §5.7: a masked ping with "Hello" is answered by the unmasked pong
    /// `8A 05 48 65 6C 6C 6F`.
    #[test]
    fn a_ping_is_answered_with_a_pong_of_the_same_payload() {
        let ping = [
            0x89, // FIN, opcode 9: ping
            0x85, // MASK, length 5
            0x37, 0xFA, 0x21, 0x3D, // masking key
            0x7F, 0x9F, 0x4D, 0x51, 0x58, // "Hello" XOR the key
        ];
        let (payload, decoded) = decode_once(&ping);
        assert_eq!(payload, b"");
        assert_eq!(decoded.controls, vec![Control::Ping(b"Hello".to_vec())]);
        let pong = [
            0x8A, // FIN, opcode 10: pong
            0x05, // no MASK, length 5
            0x48, 0x65, 0x6C, 0x6C, 0x6F, // "Hello"
        ];
        assert_eq!(decoded.controls[0].reply(), Some(pong.to_vec()));
        assert_eq!(pong_frame(b"Hello"), pong);
    }

    #[test]
    fn a_pong_from_the_client_needs_no_answer() {
        let (_, decoded) = decode_once(&client_frame(0x8A, b"hi", KEY));
        assert_eq!(decoded.controls, vec![Control::Pong(b"hi".to_vec())]);
        assert_eq!(decoded.controls[0].reply(), None);
    }

    /// RFC 6455 §5.7: 256 bytes take the 16-bit length form, 64 KiB the 64-bit one.
    #[test]
    fn lengths_of_256_bytes_and_64_kib_use_the_16_and_64_bit_forms() {
        let mut out = [0; MAX_SERVER_HEADER_LEN];
        assert_eq!(header(Opcode::Binary, 256, &mut out), 4);
        // FIN + binary, length code 126, then 256 as two bytes.
        assert_eq!(out[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(header(Opcode::Binary, 65_536, &mut out), 10);
        // FIN + binary, length code 127, then 65536 as eight bytes.
        assert_eq!(
            out,
            [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );

        for len in [256, 65_536] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let wire = client_frame(FIN_BINARY, &data, KEY);
            let (payload, decoded) = decode_once(&wire);
            assert_eq!(
                (payload == data, decoded.error),
                (true, None),
                "{len} bytes"
            );
        }
    }

    /// RFC 6455 §5.2: the server writes each length in its shortest form.
    #[test]
    fn header_lengths_switch_form_at_126_and_65536() {
        let mut out = [0; MAX_SERVER_HEADER_LEN];
        let table = [
            (0, 2),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
            (1 << 40, 10),
        ];
        for (len, header_len) in table {
            assert_eq!(
                header(Opcode::Binary, len, &mut out),
                header_len,
                "length {len}"
            );
        }
        assert_eq!(header(Opcode::Binary, 125, &mut out), 2);
        assert_eq!(out[..2], [0x82, 0x7D]);
        assert_eq!(header(Opcode::Binary, 65_535, &mut out), 4);
        assert_eq!(out[..4], [0x82, 0x7E, 0xFF, 0xFF]);
    }

    /// [MQTT-6.0.0-2] Packets need not line up with frames: here PINGREQ (`C0 00`) and
    /// PUBACK (`40 02 00 07`) are cut into a 1-byte frame and a 5-byte frame.
    #[test]
    fn packets_need_not_line_up_with_frames_mqtt_6_0_0_2() {
        let mut wire = client_frame(FIN_BINARY, &[0xC0], KEY);
        wire.extend(client_frame(
            FIN_BINARY,
            &[0x00, 0x40, 0x02, 0x00, 0x07],
            [1, 2, 3, 4],
        ));
        let (payload, decoded) = decode_once(&wire);
        assert_eq!(payload, [0xC0, 0x00, 0x40, 0x02, 0x00, 0x07]);
        assert_eq!(decoded.error, None);
    }

    #[test]
    fn empty_frames_carry_nothing_and_break_nothing() {
        let mut wire = client_frame(0x02, b"", KEY); // binary, FIN clear, empty
        wire.extend(client_frame(0x80, b"", KEY)); // continuation, FIN set, empty
        wire.extend(client_frame(FIN_BINARY, b"", KEY));
        wire.extend(client_frame(FIN_PING, b"", KEY));
        let (payload, decoded) = decode_once(&wire);
        assert_eq!(payload, b"");
        assert_eq!(decoded.controls, vec![Control::Ping(vec![])]);
        assert_eq!(decoded.error, None);
    }

    /// Each violation, as the bytes that commit it, and the close code it earns.
    const VIOLATIONS: &[(&str, &[u8], FrameError, u16)] = &[
        (
            "§5.1 unmasked binary frame",
            &[0x82, 0x01, 0xC0],
            FrameError::Unmasked,
            1002,
        ),
        (
            "§5.2 RSV1 set",
            &[0xC2, 0x80, 0, 0, 0, 0],
            FrameError::ReservedBits(0x40),
            1002,
        ),
        (
            "§5.2 RSV2 set",
            &[0xA2, 0x80, 0, 0, 0, 0],
            FrameError::ReservedBits(0x20),
            1002,
        ),
        (
            "§5.2 RSV3 set",
            &[0x92, 0x80, 0, 0, 0, 0],
            FrameError::ReservedBits(0x10),
            1002,
        ),
        (
            "§5.2 reserved data opcode 3",
            &[0x83, 0x80, 0, 0, 0, 0],
            FrameError::UnknownOpcode(0x3),
            1002,
        ),
        (
            "§5.2 reserved control opcode 0xB",
            &[0x8B, 0x80, 0, 0, 0, 0],
            FrameError::UnknownOpcode(0xB),
            1002,
        ),
        (
            "[MQTT-6.0.0-1] text frame",
            &[0x81, 0x80, 0, 0, 0, 0],
            FrameError::TextFrame,
            1003,
        ),
        (
            "§5.5 ping without FIN",
            &[0x09, 0x80, 0, 0, 0, 0],
            FrameError::FragmentedControl(Opcode::Ping),
            1002,
        ),
        (
            "§5.5 close of 126 bytes",
            &[0x88, 0xFE, 0x00, 0x7E],
            FrameError::ControlTooLong(Opcode::Close),
            1002,
        ),
        (
            "§5.4 continuation with no message open",
            &[0x80, 0x80, 0, 0, 0, 0],
            FrameError::ContinuationWithoutMessage,
            1002,
        ),
        (
            "§5.4 binary frame inside an open message",
            &[0x02, 0x80, 0, 0, 0, 0, 0x82, 0x80, 0, 0, 0, 0],
            FrameError::UnfinishedMessage,
            1002,
        ),
        (
            "§5.2 64-bit length with its top bit set",
            &[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
            FrameError::LengthHighBitSet,
            1002,
        ),
        (
            "§5.2 125 written in the 16-bit form",
            &[0x82, 0xFE, 0x00, 0x7D, 0, 0, 0, 0],
            FrameError::NonMinimalLength { length: 125 },
            1002,
        ),
        (
            "§5.2 65535 written in the 64-bit form",
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
            FrameError::NonMinimalLength { length: 65_535 },
            1002,
        ),
        (
            "§5.5.1 close with a 1-byte payload",
            &[0x88, 0x81, 0, 0, 0, 0, 0x03],
            FrameError::CloseCodeCut,
            1002,
        ),
        (
            "§7.4 close code 1005, which only stands for 'no code'",
            &[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED],
            FrameError::InvalidCloseCode(1005),
            1002,
        ),
        (
            "§5.5.1 close reason that is not UTF-8",
            &[0x88, 0x83, 0, 0, 0, 0, 0x03, 0xE8, 0xFF],
            FrameError::CloseReasonNotUtf8,
            1007,
        ),
    ];

    #[test]
    fn each_violation_is_refused_with_its_close_code() {
        for (name, bytes, error, code) in VIOLATIONS {
            let (payload, decoded) = decode_once(bytes);
            assert_eq!(payload, b"", "{name}");
            assert_eq!(decoded.error.as_ref(), Some(error), "{name}");
            assert_eq!(error.close_code(), *code, "{name}");
            let text = error.to_string();
            assert!(
                text.contains("RFC 6455 §") || text.contains("[MQTT-6.0.0-1]"),
                "{text}"
            );
        }
    }

    /// A bad header is refused on the byte that makes it bad, not when it is complete.
    #[test]
    fn each_header_violation_is_refused_without_waiting_for_the_rest() {
        let early = [
            (&[0x82, 0x05][..], FrameError::Unmasked),
            (&[0xC2], FrameError::ReservedBits(0x40)),
            (&[0x80], FrameError::ContinuationWithoutMessage),
            (&[0x88, 0xFE], FrameError::ControlTooLong(Opcode::Close)),
            (&[0x82, 0xFF, 0x80], FrameError::LengthHighBitSet),
        ];
        for (bytes, error) in early {
            assert_eq!(decode_once(bytes).1.error, Some(error), "{bytes:02x?}");
        }
    }

    /// §7.4: the codes a client may send, and those it may not.
    #[test]
    fn close_codes_are_checked_against_rfc_6455_section_7_4() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ];
        for code in valid.into_iter().chain([3000, 3999, 4000, 4999]) {
            let mut payload = u16::to_be_bytes(code).to_vec();
            payload.extend(b"ok");
            let (_, decoded) = decode_once(&client_frame(FIN_CLOSE, &payload, KEY));
            let close = Control::Close {
                code: Some(code),
                reason: "ok".into(),
            };
            assert_eq!(decoded.controls, vec![close], "{code}");
        }
        let invalid: [u16; 12] = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535,
        ];
        for code in invalid {
            let (_, decoded) = decode_once(&client_frame(FIN_CLOSE, &code.to_be_bytes(), KEY));
            assert_eq!(decoded.error, Some(FrameError::InvalidCloseCode(code)));
        }
    }

    /// Packets before a violation are good packets: they are handed on, the rest is not.
    #[test]
    fn payload_before_a_violation_is_still_returned() {
        let mut wire = client_frame(FIN_BINARY, &[0xC0, 0x00], KEY); // PINGREQ
        wire.extend([0x82, 0x02, 0xE0, 0x00]); // DISCONNECT, but unmasked
        let (payload, decoded) = decode_once(&wire);
        assert_eq!(payload, [0xC0, 0x00]);
        assert_eq!(decoded.error, Some(FrameError::Unmasked));
    }

    #[test]
    fn after_a_violation_every_later_call_reports_it_and_decodes_nothing() {
        let mut decoder = Decoder::new();
        assert_eq!(
            decode_chunk(&mut decoder, &RFC_MASKED_TEXT_HELLO).1.error,
            Some(FrameError::TextFrame)
        );
        let (payload, decoded) = decode_chunk(&mut decoder, &MASKED_BINARY_HELLO);
        assert_eq!(
            (payload.len(), decoded.error),
            (0, Some(FrameError::TextFrame))
        );
    }

    /// RFC 6455 §5.5.1: nothing follows a close; the bytes before it still count.
    #[test]
    fn a_close_ends_decoding_and_is_echoed() {
        let mut wire = client_frame(FIN_BINARY, &[0xE0, 0x00], KEY); // DISCONNECT
        let mut close = 1001u16.to_be_bytes().to_vec();
        close.extend(b"bye");
        wire.extend(client_frame(FIN_CLOSE, &close, KEY));
        wire.extend(&MASKED_BINARY_HELLO); // ignored
        let mut decoder = Decoder::new();
        let (payload, decoded) = decode_chunk(&mut decoder, &wire);
        assert_eq!(payload, [0xE0, 0x00]);
        let expected = Control::Close {
            code: Some(1001),
            reason: "bye".into(),
        };
        assert_eq!(
            (decoded.controls, decoded.error),
            (vec![expected.clone()], None)
        );
        // FIN + close, length 2, status code 1001, no reason.
        assert_eq!(expected.reply(), Some(vec![0x88, 0x02, 0x03, 0xE9]));
        assert_eq!(
            decode_chunk(&mut decoder, &MASKED_BINARY_HELLO).1,
            Decoded::default()
        );
    }

    #[test]
    fn an_empty_close_has_no_code_and_is_answered_with_1000() {
        let (_, decoded) = decode_once(&client_frame(FIN_CLOSE, b"", KEY));
        let close = Control::Close {
            code: None,
            reason: String::new(),
        };
        assert_eq!(decoded.controls, vec![close.clone()]);
        assert_eq!(close.reply(), Some(vec![0x88, 0x02, 0x03, 0xE8]));
    }

    /// A conversation of every frame kind, cut in two at every byte, and fed a byte at a
    /// time: the stream and the controls come out the same.
    #[test]
    fn every_cut_of_a_conversation_decodes_the_same() {
        let big: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let mut wire = MASKED_BINARY_HELLO.to_vec();
        wire.extend(client_frame(FIN_PING, b"ping", [9, 8, 7, 6]));
        wire.extend(&MASKED_FRAGMENTED_HELLO);
        wire.extend(client_frame(FIN_BINARY, &big, [0xA5, 0x5A, 0xFF, 0x00]));
        wire.extend(client_frame(FIN_CLOSE, &[0x03, 0xE8], KEY));
        let mut stream = b"HelloHello".to_vec();
        stream.extend(&big);
        let controls = vec![
            Control::Ping(b"ping".to_vec()),
            Control::Close {
                code: Some(1000),
                reason: String::new(),
            },
        ];
        let mut splits: Vec<Vec<usize>> = (0..=wire.len()).map(|cut| vec![cut]).collect();
        splits.push((1..wire.len()).collect()); // a byte at a time
        for cuts in splits {
            let (got_stream, got_controls) = decode_in_chunks(&wire, &cuts);
            assert_eq!(got_stream, stream, "cut at {cuts:?}");
            assert_eq!(got_controls, controls, "cut at {cuts:?}");
        }
    }

    /// Decodes `wire` cut at the ascending positions `cuts`; returns the stream and the
    /// controls, and fails on any error.
    fn decode_in_chunks(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Control>) {
        let mut decoder = Decoder::new();
        let (mut stream, mut controls) = (Vec::new(), Vec::new());
        let mut start = 0;
        for end in cuts.iter().copied().chain([wire.len()]) {
            let (payload, decoded) = decode_chunk(&mut decoder, &wire[start..end]);
            assert_eq!(decoded.error, None);
            stream.extend(payload);
            controls.extend(decoded.controls);
            start = end;
        }
        (stream, controls)
    }

    /// A frame may announce 2^62 bytes: the decoder counts them down as they come and
    /// allocates nothing for them.
    #[test]
    fn a_frame_announcing_2_pow_62_bytes_only_counts_down() {
        let mut wire = vec![0x82, 0xFF]; // FIN + binary, MASK + 64-bit length
        wire.extend((1u64 << 62).to_be_bytes());
        wire.extend([0, 0, 0, 0]); // a zero key leaves the payload as it is
        let mut decoder = Decoder::new();
        assert_eq!(decode_chunk(&mut decoder, &wire).1, Decoded::default());
        let chunk = vec![0x30; 1 << 20];
        for _ in 0..4 {
            let (payload, decoded) = decode_chunk(&mut decoder, &chunk);
            assert_eq!((payload.len(), decoded.error), (chunk.len(), None));
        }
        assert!(
            std::mem::size_of::<Decoder>() < 256,
            "no buffer grows with a frame"
        );
    }

    #[test]
    fn close_frames_fit_their_reason_into_125_bytes_at_a_character_boundary() {
        // FIN + close, length 2, status code 1000.
        assert_eq!(close_frame(1000, ""), [0x88, 0x02, 0x03, 0xE8]);
        let long = "é".repeat(100); // 200 bytes of two-byte characters
        let frame = close_frame(1002, &long);
        assert_eq!(
            frame[..2],
            [0x88, 124],
            "2 + 122: a 123rd byte would split an é"
        );
        assert_eq!(frame[2..4], [0x03, 0xEA]);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        let refusal = FrameError::TextFrame.close_frame();
        assert_eq!(refusal[2..4], [0x03, 0xEB], "1003");
        assert_eq!(&refusal[4..], FrameError::TextFrame.to_string().as_bytes());
    }

    #[test]
    fn a_pong_carries_at_most_125_bytes() {
        let frame = pong_frame(&[7; 200]);
        assert_eq!((frame.len(), frame[1]), (127, 125));
    }

    #[test]
    fn opcodes_read_back_and_know_whether_they_are_control() {
        for bits in 0..16 {
            match Opcode::from_bits(bits) {
                Some(opcode) => {
                    assert_eq!(opcode as u8, bits);
                    assert_eq!(opcode.is_control(), bits >= 8);
                }
                None => assert!(matches!(bits, 3..=7 | 0xB..=0xF), "{bits}"),
            }
        }
    }

    /// One frame of a generated conversation: how many stream bytes it carries at most,
    /// whether it ends its message, a ping to send before it, and its masking key.
    type PlannedFrame = (usize, bool, Option<Vec<u8>>, [u8; 4]);

    fn planned_frame() -> impl Strategy<Value = PlannedFrame> {
        (
            0usize..300,
            any::<bool>(),
            proptest::option::of(vec(any::<u8>(), 0..=125)),
            any::<[u8; 4]>(),
        )
    }

    /// Frames `stream` as `plan` says (the last frame takes what is left and ends the
    /// message); returns the wire bytes and the pings sent, in order.
    fn frame_stream(stream: &[u8], plan: &[PlannedFrame]) -> (Vec<u8>, Vec<Control>) {
        let (mut wire, mut pings) = (Vec::new(), Vec::new());
        let mut rest = stream;
        let mut in_message = false;
        for (i, (size, fin, ping, key)) in plan.iter().enumerate() {
            if let Some(ping) = ping {
                wire.extend(client_frame(FIN_PING, ping, *key));
                pings.push(Control::Ping(ping.clone()));
            }
            let last = i + 1 == plan.len();
            let take = if last {
                rest.len()
            } else {
                (*size).min(rest.len())
            };
            let (piece, tail) = rest.split_at(take);
            rest = tail;
            let fin = *fin || last;
            let opcode = if in_message { 0x0 } else { 0x2 };
            wire.extend(client_frame(
                opcode | if fin { 0x80 } else { 0 },
                piece,
                *key,
            ));
            in_message = !fin;
        }
        (wire, pings)
    }

    proptest! {
        /// [MQTT-6.0.0-2] Any framing of an MQTT byte stream, with pings between frames,
        /// read in any chunks, gives back exactly the stream and the pings in order.
        #[test]
        fn any_framing_and_any_chunks_give_back_the_stream_mqtt_6_0_0_2(
            stream in vec(any::<u8>(), 0..3000),
            plan in vec(planned_frame(), 1..25),
            chunk_sizes in vec(1usize..600, 0..40),
        ) {
            let (wire, pings) = frame_stream(&stream, &plan);
            let mut cuts = Vec::new();
            let mut at = 0;
            for size in chunk_sizes {
                at += size;
                if at >= wire.len() {
                    break;
                }
                cuts.push(at);
            }
            let (got_stream, got_controls) = decode_in_chunks(&wire, &cuts);
            prop_assert_eq!(got_stream, stream);
            prop_assert_eq!(got_controls, pings);
        }
    }
}
