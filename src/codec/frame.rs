//! Reading one packet's bytes off a stream: byte 1, the Remaining Length, the body (§2.1).
//!
//! This is step one of "frame first, then parse". It knows nothing about packet types
//! beyond byte 1; it only makes sure that exactly one packet's bytes are taken off the
//! socket, that a hostile length cannot make us allocate memory we were never sent, and that
//! packets over the configured size limit are refused before their body is read.

use std::io::{self, Read};

use super::primitives::{read_remaining_length, LengthError, MAX_REMAINING_LENGTH};
use super::{DecodeError, Packet, PacketType};

/// The bytes of one packet: byte 1 of the fixed header and the body that followed the
/// Remaining Length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub byte1: u8,
    pub body: Vec<u8>,
}

impl Frame {
    /// The packet's size on the wire: byte 1, the Remaining Length in its shortest form
    /// (a client may have used a longer one, which the frame no longer knows), the body.
    pub fn wire_len(&self) -> usize {
        let len = self.body.len();
        let length_bytes = match len {
            0..=127 => 1,
            128..=16_383 => 2,
            16_384..=2_097_151 => 3,
            _ => 4,
        };
        1 + length_bytes + len
    }

    /// Whether this is a PUBLISH (its type, in byte 1).
    pub fn is_publish(&self) -> bool {
        self.byte1 >> 4 == PacketType::Publish as u8
    }

    /// Step two: parse the body.
    pub fn decode(&self) -> Result<Packet, DecodeError> {
        Packet::decode(self.byte1, &self.body)
    }
}

/// Why no frame could be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection cleanly, between two packets.
    Closed,
    /// The socket failed, timed out, or closed in the middle of a packet.
    Io(io::Error),
    /// The Remaining Length itself is malformed.
    Malformed(DecodeError),
    /// The packet is bigger than the broker accepts; its body was not read.
    TooLarge {
        remaining_length: usize,
        limit: usize,
    },
    /// Byte 1 cannot start the packet expected here (see [`read_frame_of`]); nothing after
    /// it was read.
    Unexpected { byte1: u8, expected: PacketType },
}

/// Reads the next packet's bytes from `input`.
///
/// `max_remaining_length` bounds what we are willing to read into memory; it is clamped to
/// the largest length the protocol can express.
pub fn read_frame<R: Read>(
    input: &mut R,
    max_remaining_length: usize,
) -> Result<Frame, FrameError> {
    read_frame_into(input, max_remaining_length, Vec::new())
}

/// Like [`read_frame`], but reads the body into `body` (emptied first), so that a reader
/// can hand the same buffer back packet after packet instead of allocating one per packet.
pub fn read_frame_into<R: Read>(
    input: &mut R,
    max_remaining_length: usize,
    body: Vec<u8>,
) -> Result<Frame, FrameError> {
    let byte1 = read_byte1(input)?;
    read_rest_of_frame(input, byte1, max_remaining_length, body)
}

/// Like [`read_frame`], but only a packet of type `expected` may come: any other byte 1 is
/// refused as soon as it arrives, before the Remaining Length it would be followed by. A
/// new connection uses it for its CONNECT ([MQTT-3.1.0-1]): an HTTP request sent to the
/// MQTT port (`GET /…`, whose `G` reads as a PUBACK declaring 69 bytes) is turned away on
/// its first byte instead of being waited for.
pub fn read_frame_of<R: Read>(
    input: &mut R,
    expected: PacketType,
    max_remaining_length: usize,
) -> Result<Frame, FrameError> {
    let byte1 = read_byte1(input)?;
    if byte1 >> 4 != expected as u8 {
        return Err(FrameError::Unexpected { byte1, expected });
    }
    read_rest_of_frame(input, byte1, max_remaining_length, Vec::new())
}

/// Reads byte 1 of the fixed header.
fn read_byte1<R: Read>(input: &mut R) -> Result<u8, FrameError> {
    let mut byte1 = [0u8; 1];
    match input.read_exact(&mut byte1) {
        Ok(()) => Ok(byte1[0]),
        // End of stream before a packet starts is the peer hanging up, not an error.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FrameError::Closed),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// Reads the Remaining Length and the body that follow `byte1`, into `body` (emptied
/// first).
fn read_rest_of_frame<R: Read>(
    input: &mut R,
    byte1: u8,
    max_remaining_length: usize,
    mut body: Vec<u8>,
) -> Result<Frame, FrameError> {
    body.clear();
    let remaining_length = read_remaining_length(input).map_err(|e| match e {
        LengthError::Io(e) => FrameError::Io(e),
        LengthError::Malformed(e) => FrameError::Malformed(e),
    })?;
    let limit = max_remaining_length.min(MAX_REMAINING_LENGTH);
    if remaining_length > limit {
        return Err(FrameError::TooLarge {
            remaining_length,
            limit,
        });
    }
    // Never allocate from a declared length: `read_to_end` grows the buffer as bytes
    // actually arrive, so a peer that claims 256 MB and sends 10 bytes costs 10 bytes.
    let wanted = u64::try_from(remaining_length).unwrap_or(u64::MAX);
    let got = input
        .take(wanted)
        .read_to_end(&mut body)
        .map_err(FrameError::Io)?;
    if got < remaining_length {
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed after {got} of {remaining_length} body bytes"),
        )));
    }
    Ok(Frame { byte1, body })
}

/// Whether `buffered` (bytes already read from the socket but not yet taken) begins with a
/// whole packet, so that [`read_frame`] can take it without touching the socket again.
///
/// The reader asks this to know when a batch ends: before a read that may block, it hands
/// over what the batch produced (see `connection::reader`). A malformed Remaining Length
/// counts as whole: reading it fails without waiting for more bytes.
pub fn holds_whole_packet(buffered: &[u8]) -> bool {
    let Some((_byte1, mut rest)) = buffered.split_first() else {
        return false;
    };
    match read_remaining_length(&mut rest) {
        Ok(remaining_length) => rest.len() >= remaining_length,
        Err(LengthError::Malformed(_)) => true,
        // The Remaining Length itself is cut short.
        Err(LengthError::Io(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_of_the_wrong_type_is_refused_on_its_first_byte_mqtt_3_1_0_1() {
        // "GET / HTTP/1.1": 'G' is 0x47, a PUBACK header whose next byte, 'E' (69), would
        // declare a 69-byte body. Only the first byte may be taken.
        let mut stream: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        match read_frame_of(&mut stream, PacketType::Connect, 1024) {
            Err(FrameError::Unexpected { byte1, expected }) => {
                assert_eq!((byte1, expected), (b'G', PacketType::Connect));
            }
            other => panic!("expected Unexpected, got {other:?}"),
        }
        assert_eq!(stream.len(), 34, "nothing after byte 1 was read");
        let frame = Frame {
            byte1: 0x30,
            body: vec![0; 200],
        };
        assert_eq!((frame.wire_len(), frame.is_publish()), (203, true));
        let mut connect: &[u8] = &[0x10, 0x00];
        assert!(read_frame_of(&mut connect, PacketType::Connect, 1024).is_ok());
    }

    #[test]
    fn reads_exactly_one_packet_and_leaves_the_next() {
        // PINGREQ (0xC0 0x00) followed by a PUBACK for id 7 (0x40 0x02 0x00 0x07).
        let mut stream: &[u8] = &[0xC0, 0x00, 0x40, 0x02, 0x00, 0x07];
        let first = read_frame(&mut stream, 1024).unwrap();
        assert_eq!(first.decode().unwrap(), Packet::Pingreq);
        let second = read_frame(&mut stream, 1024).unwrap();
        assert_eq!(second.decode().unwrap(), Packet::Puback(7));
        assert!(matches!(
            read_frame(&mut stream, 1024),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn refuses_a_packet_over_the_limit_before_reading_its_body() {
        // PUBLISH claiming 200 bytes, limit 100: refused after the 2 header bytes.
        let mut stream: &[u8] = &[0x30, 0xC8, 0x01, b'x'];
        match read_frame(&mut stream, 100) {
            Err(FrameError::TooLarge {
                remaining_length: 200,
                limit: 100,
            }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(stream, b"x", "the body must not have been read");
    }

    #[test]
    fn a_huge_declared_length_with_few_bytes_allocates_only_what_arrived() {
        // 268 435 455 declared, 3 bytes sent, then end of stream.
        let mut stream: &[u8] = &[0x30, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3];
        match read_frame(&mut stream, MAX_REMAINING_LENGTH) {
            Err(FrameError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected a truncated frame, got {other:?}"),
        }
    }

    #[test]
    fn a_five_byte_remaining_length_is_malformed() {
        let mut stream: &[u8] = &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(
            read_frame(&mut stream, MAX_REMAINING_LENGTH),
            Err(FrameError::Malformed(DecodeError::RemainingLengthTooLong))
        ));
    }

    #[test]
    fn a_stream_ending_inside_the_fixed_header_is_an_io_error_not_a_clean_close() {
        let mut stream: &[u8] = &[0x30];
        assert!(matches!(
            read_frame(&mut stream, 1024),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn a_buffer_holds_a_whole_packet_only_once_its_body_is_there() {
        // PUBLISH QoS 0, topic "a/b", payload "x": 30 06 00 03 'a' '/' 'b' 'x'.
        let publish = [0x30, 0x06, 0x00, 0x03, b'a', b'/', b'b', b'x'];
        for cut in 0..publish.len() {
            assert!(!holds_whole_packet(&publish[..cut]), "cut at {cut}");
        }
        assert!(holds_whole_packet(&publish));
        // A whole PINGREQ (C0 00) followed by part of the next packet.
        assert!(holds_whole_packet(&[0xC0, 0x00, 0x30]));
        // A Remaining Length still waiting for its next byte ...
        assert!(!holds_whole_packet(&[0x30, 0x80, 0x80]));
        // ... and one with a fifth byte, which fails without more input.
        assert!(holds_whole_packet(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]));
    }
}
