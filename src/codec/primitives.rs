//! The spec's data types (§1.5) and the Remaining Length (§2.2.3), as read/write pairs.
//!
//! | type                     | on the wire                                   | read                 | write          |
//! |--------------------------|-----------------------------------------------|----------------------|----------------|
//! | byte                     | 1 byte                                        | [`Reader::u8`]       | `out.push`     |
//! | two-byte integer (§1.5.2)| big-endian, MSB first                         | [`Reader::u16`]      | [`put_u16`]    |
//! | Packet Identifier (§2.3.1)| a two-byte integer, never 0                  | [`Reader::packet_id`] | [`put_u16`]   |
//! | UTF-8 string (§1.5.3)    | 2-byte length, then that many UTF-8 bytes     | [`Reader::utf8`]     | [`put_utf8`]   |
//! | binary data (§3.1.3.3)   | 2-byte length, then that many bytes           | [`Reader::binary`]   | [`put_binary`] |
//! | Remaining Length (§2.2.3)| 1–4 bytes, 7 bits each, bit 7 = "more follows"| [`read_remaining_length`] | [`put_remaining_length`] |
//!
//! Every read takes the *field's name*, so an error can say "Client Identifier: invalid
//! UTF-8 at byte 14" instead of "bad string". The [`Reader`] is a cursor over the body of
//! one packet: its `pos` is what a debugger shows you when a decode fails.

use std::io::{self, Read};

use super::{DecodeError, PacketId, PacketType};

/// The largest value four Remaining Length bytes can hold: 0xFF 0xFF 0xFF 0x7F (§2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The largest string or binary field: its length prefix is a two-byte integer.
pub const MAX_FIELD_LENGTH: usize = u16::MAX as usize;

/// A cursor over the body of one packet (the bytes after the fixed header).
///
/// Running out of bytes inside the body is a malformed packet, never a reason to wait for
/// more: the frame reader has already read exactly Remaining Length bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes the next `n` bytes, or fails naming `field` if the packet ends first.
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { field });
        }
        let taken = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(taken)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// A two-byte integer, most significant byte first (§1.5.2).
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A Packet Identifier (§2.3.1): a two-byte integer that is never 0 ([MQTT-2.3.1-1]).
    /// `packet` names the packet it was read from, for the error.
    pub fn packet_id(&mut self, packet: PacketType) -> Result<PacketId, DecodeError> {
        // [MQTT-2.3.1-1] a packet that needs an identifier carries a non-zero one.
        match self.u16("Packet Identifier")? {
            0 => Err(DecodeError::ZeroPacketId { packet }),
            id => Ok(id),
        }
    }

    /// Binary data: a two-byte length, then that many bytes, returned as they are.
    pub fn binary(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    /// A UTF-8 encoded string (§1.5.3).
    pub fn utf8(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let start = self.pos + 2;
        let bytes = self.binary(field)?;
        // [MQTT-1.5.3-1] ill-formed UTF-8, surrogates included, closes the connection.
        // Rust's UTF-8 check rejects encoded surrogates (0xED 0xA0..0xBF ..) and overlong forms.
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
            field,
            at: start + e.valid_up_to(),
        })?;
        // [MQTT-1.5.3-2] U+0000 is forbidden in every string field.
        if text.contains('\0') {
            return Err(DecodeError::NullCharacter { field });
        }
        // [MQTT-1.5.3-3] a 0xEF 0xBB 0xBF sequence is U+FEFF and stays in the string: we
        // never strip or skip anything, so there is nothing to do here.
        Ok(text)
    }

    /// Everything not read yet (the PUBLISH payload is "the rest of the packet").
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }

    /// Checks that the packet has no bytes after its last field.
    pub fn finish(self, packet: PacketType) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { packet, count }),
        }
    }
}

/// Appends a two-byte integer, most significant byte first.
pub fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends binary data with its two-byte length prefix.
///
/// Every field the broker encodes was either decoded from the wire (so it fits in the
/// two-byte prefix) or made by the broker itself (short); a longer one is a bug here.
pub fn put_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("string and binary fields fit in 65 535 bytes");
    put_u16(out, len);
    out.extend_from_slice(bytes);
}

/// Appends a UTF-8 string with its two-byte length prefix.
pub fn put_utf8(out: &mut Vec<u8>, text: &str) {
    put_binary(out, text.as_bytes());
}

/// The encoded size of a string or binary field: its two-byte prefix plus its bytes.
pub fn field_len(bytes: &[u8]) -> usize {
    2 + bytes.len()
}

/// Appends the Remaining Length: seven bits per byte, least significant group first,
/// bit 7 set on every byte but the last (§2.2.3).
///
/// Packets the broker builds are bounded by the size limit on what it reads, which is at
/// most [`MAX_REMAINING_LENGTH`]; a bigger value is a bug in the caller.
pub fn put_remaining_length(out: &mut Vec<u8>, len: usize) {
    debug_assert!(
        len <= MAX_REMAINING_LENGTH,
        "Remaining Length {len} too big"
    );
    let mut rest = len;
    loop {
        // The `% 128` keeps the value below 128, so the cast cannot lose bits.
        let mut byte = (rest % 128) as u8;
        rest /= 128;
        if rest > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if rest == 0 {
            return;
        }
    }
}

/// Why the Remaining Length could not be read from a stream.
#[derive(Debug)]
pub enum LengthError {
    /// The stream failed or ended while the length was being read.
    Io(io::Error),
    /// The length is malformed (a fifth byte).
    Malformed(DecodeError),
}

/// Reads the Remaining Length one byte at a time: at most four bytes (§2.2.3, with the
/// Errata 01 reading: four bytes hold up to 268 435 455, only a fifth byte is malformed).
pub fn read_remaining_length<R: Read>(input: &mut R) -> Result<usize, LengthError> {
    let mut value = 0usize;
    for position in 0..4 {
        let mut byte = [0u8; 1];
        input.read_exact(&mut byte).map_err(LengthError::Io)?;
        value += usize::from(byte[0] & 0x7F) << (7 * position);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(LengthError::Malformed(DecodeError::RemainingLengthTooLong))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boundaries from the table in §2.2.3, plus zero.
    const LENGTH_TABLE: &[(usize, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];

    #[test]
    fn remaining_length_encodes_the_spec_boundaries() {
        for &(value, bytes) in LENGTH_TABLE {
            let mut out = Vec::new();
            put_remaining_length(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
        }
    }

    #[test]
    fn remaining_length_decodes_the_spec_boundaries_and_stops_after_the_last_byte() {
        for &(value, bytes) in LENGTH_TABLE {
            let mut input = bytes.to_vec();
            input.push(0xAA); // junk that belongs to the body, not the length
            let mut stream = &input[..];
            let decoded = read_remaining_length(&mut stream).unwrap();
            assert_eq!(decoded, value, "decoding {bytes:02x?}");
            assert_eq!(stream, &[0xAA], "must stop after the length of {value}");
        }
    }

    #[test]
    fn remaining_length_with_a_fifth_byte_is_malformed() {
        let mut stream: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        match read_remaining_length(&mut stream) {
            Err(LengthError::Malformed(DecodeError::RemainingLengthTooLong)) => {}
            other => panic!("expected a malformed length, got {other:?}"),
        }
    }

    #[test]
    fn remaining_length_cut_short_is_an_io_error() {
        let mut stream: &[u8] = &[0x80, 0x80];
        assert!(matches!(
            read_remaining_length(&mut stream),
            Err(LengthError::Io(_))
        ));
    }

    #[test]
    fn utf8_reads_the_string_and_advances_past_it() {
        // Length 0x0004, then "MQTT", then one byte of something else.
        let body = [0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04];
        let mut r = Reader::new(&body);
        assert_eq!(r.utf8("Protocol Name").unwrap(), "MQTT");
        assert_eq!(r.u8("Protocol Level").unwrap(), 4);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn utf8_rejects_an_encoded_surrogate_mqtt_1_5_3_1() {
        // U+D800 encoded as if it were a character: 0xED 0xA0 0x80.
        let body = [0x00, 0x05, b'a', b'b', 0xED, 0xA0, 0x80];
        let err = Reader::new(&body).utf8("Topic Name").unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidUtf8 {
                field: "Topic Name",
                at: 4
            }
        );
        assert_eq!(err.rule(), "[MQTT-1.5.3-1]");
    }

    #[test]
    fn utf8_rejects_an_overlong_encoding_mqtt_1_5_3_1() {
        // '/' written in two bytes (0xC0 0xAF) is not well-formed UTF-8.
        let body = [0x00, 0x02, 0xC0, 0xAF];
        assert!(matches!(
            Reader::new(&body).utf8("Topic Name"),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
    }

    #[test]
    fn utf8_rejects_the_null_character_mqtt_1_5_3_2() {
        let body = [0x00, 0x03, b'a', 0x00, b'b'];
        let err = Reader::new(&body).utf8("Client Identifier").unwrap_err();
        assert_eq!(
            err,
            DecodeError::NullCharacter {
                field: "Client Identifier"
            }
        );
        assert_eq!(err.rule(), "[MQTT-1.5.3-2]");
    }

    #[test]
    fn utf8_keeps_a_byte_order_mark_mqtt_1_5_3_3() {
        // "A" then U+FEFF (0xEF 0xBB 0xBF): the mark is part of the string.
        let body = [0x00, 0x04, b'A', 0xEF, 0xBB, 0xBF];
        assert_eq!(Reader::new(&body).utf8("Topic Name").unwrap(), "A\u{FEFF}");
    }

    #[test]
    fn a_field_longer_than_the_packet_is_truncated_not_a_panic() {
        // The prefix claims 0xFFFF bytes; only two follow.
        let body = [0xFF, 0xFF, b'a', b'b'];
        assert_eq!(
            Reader::new(&body).utf8("Topic Name"),
            Err(DecodeError::Truncated {
                field: "Topic Name"
            })
        );
        assert_eq!(
            Reader::new(&[0x01]).u16("Packet Identifier"),
            Err(DecodeError::Truncated {
                field: "Packet Identifier"
            })
        );
    }

    #[test]
    fn string_fields_round_trip_at_their_length_boundaries() {
        for len in [0usize, 1, 127, 128, 255, 256, MAX_FIELD_LENGTH] {
            let text = "x".repeat(len);
            let mut out = Vec::new();
            put_utf8(&mut out, &text);
            assert_eq!(out.len(), field_len(text.as_bytes()));
            assert_eq!(&out[..2], &u16::try_from(len).unwrap().to_be_bytes());
            assert_eq!(Reader::new(&out).utf8("field").unwrap(), text);
        }
    }
}
