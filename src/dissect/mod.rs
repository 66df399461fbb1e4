//! `mqttd decode`: packets taken apart field by field, the way the spec draws them.
//!
//! Give it bytes (hex, a `RUST_LOG=trace` log line, or a file of raw bytes) and it prints,
//! for each packet, one row per field: where it starts, its bytes, its name, its value and
//! the section or figure of the standard that defines it. Byte 1 and the Connect Flags are
//! also shown bit by bit, the Remaining Length byte by byte. Bytes the broker would refuse
//! are explained: where decoding stopped, and the rule, in the words of the broker's log.
//!
//! ```text
//!   input ──► codec::read_frame ──► Frame { byte1, body } ──┬─► Packet::decode ──► verdict
//!             (the broker's framer)                         └─► walk (codec readers and
//!                                                                checks, field by field,
//!                                                                noting each offset) ──► rows
//!                                       the two results must be equal, or it is a bug
//! ```
//!
//! ## Why it cannot drift from the broker's decoding
//!
//! There is no second parser here. Every byte is read by the codec's own functions: the
//! stream is cut into packets by [`codec::read_frame`](crate::codec::read_frame), the
//! Remaining Length is read by `read_remaining_length`, and each field by the codec's
//! [`Reader`](crate::codec::primitives::Reader) (`u8`, `u16`, `packet_id`, `utf8`,
//! `binary`, `rest`, `finish`) and checked by the codec's named checks
//! (`validate_flags`, `validate_connect_flags`, `validate_publish_flags`, …). What
//! `walk.rs` adds is the *order* in which a packet's fields come, one function per packet
//! family mirroring its `decode` in `src/codec/`, and the offset of each field, taken
//! from the reader's position before and after each read.
//!
//! That order is the one thing that could drift, so it is checked twice:
//!
//! - at run time, every packet is also decoded by [`Packet::decode`], the broker's one
//!   dispatch site, and the walk's result (the packet, or the error) must be *equal* to
//!   it. If it is not, `mqttd decode` says so ([`Outcome::Disagreement`]) instead of
//!   printing a table that might lie;
//! - in the tests: `tests/decode.rs` runs both on every packet type and every refusal the
//!   decoder knows, and three properties in `tests/properties.rs` (proptest) on random
//!   valid packets, several in a row, packets with a byte changed or cut short, and
//!   random bytes. They must agree on accept or refuse, on the error, on every decoded
//!   value and on where the stream stops. (Leaving one check out of `walk.rs` makes
//!   them fail within a second: tried with `validate_topic_filter` in `unsubscribe`.)
//!
//! The other way to do it, a recorder inside the codec's `Reader` that notes each field as
//! the broker reads it, would need no order here at all, but it adds a field to `Reader`
//! and a call in `Reader::take`, which sit above lines the walkthrough's gdb transcripts
//! quote; the cross-check gives the same guarantee without touching them.
//!
//! The module sits just above the codec (`tests/layers.rs`) and knows nothing else of the
//! broker: it takes bytes, never a socket.

mod cli;
mod input;
mod table;
mod walk;

pub use cli::run;
pub use input::parse_hex;
pub use table::render;

use crate::codec::primitives::{read_remaining_length, LengthError, MAX_REMAINING_LENGTH};
use crate::codec::publish::flag as publish_flag;
use crate::codec::{read_frame, DecodeError, Frame, FrameError, Packet, PacketType};

/// One line of a packet's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Where the field's first byte is in the input; `None` on a line that explains the
    /// bits or the bytes of the field above it.
    pub offset: Option<usize>,
    /// How many bytes of the input the field takes (0 on a detail line).
    pub len: usize,
    /// The field's bytes in hex, or the bits a detail line is about (`.... 0010`).
    pub bytes: String,
    pub field: String,
    pub value: String,
    /// The section, figure or table of the standard the field comes from.
    pub spec: &'static str,
}

/// How taking one packet apart ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The broker accepts these bytes as this packet.
    Decoded(Packet),
    /// The broker refuses them: decoding stopped at offset `at` of the input.
    Refused { at: usize, error: DecodeError },
    /// The input ends inside the packet: the broker would wait for the rest.
    Incomplete { message: String },
    /// The walk and `Packet::decode` disagree: a bug in `mqttd decode`, never shown as a
    /// table that might be wrong.
    Disagreement {
        codec: Result<Packet, DecodeError>,
        walk: Result<Packet, DecodeError>,
    },
}

/// One packet taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dissection {
    /// Offset of byte 1 in the input.
    pub start: usize,
    /// Byte 1 of the fixed header: the packet's type and flags.
    pub byte1: u8,
    /// How many bytes of the input the packet took (the framer's count).
    pub len: usize,
    pub rows: Vec<Row>,
    pub outcome: Outcome,
}

/// Takes apart every packet in `input`, one after another, as the broker's reader thread
/// would read them from a connection. Like the broker, it stops at the first packet it
/// refuses: the connection would be closed there.
pub fn dissect(input: &[u8]) -> Vec<Dissection> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < input.len() {
        let dissection = dissect_one(input, start);
        let go_on = matches!(dissection.outcome, Outcome::Decoded(_));
        start += dissection.len;
        out.push(dissection);
        if !go_on {
            break;
        }
    }
    out
}

/// Takes apart the packet whose byte 1 is `input[start]`.
fn dissect_one(input: &[u8], start: usize) -> Dissection {
    let mut rest = &input[start..];
    // The broker's own framer, with the protocol's largest length as the only limit.
    let framed = read_frame(&mut rest, MAX_REMAINING_LENGTH);
    let len = input.len() - start - rest.len();
    let byte1 = input[start];
    let mut rows = byte1_rows(byte1, start);
    let (length_bytes, length_read) = remaining_length_rows(input, start + 1, &mut rows);
    let body_start = start + 1 + length_bytes;
    let outcome = match framed {
        Ok(frame) => body_outcome(&frame, start, body_start, &mut rows),
        // A fifth length byte: decoding stopped on the fourth, whose bit 7 asks for more.
        Err(FrameError::Malformed(error)) => Outcome::Refused {
            at: start + length_bytes,
            error,
        },
        // The only other way a frame read from memory fails: the input ends inside it.
        Err(other) => {
            if length_read {
                // Show the fields that did arrive. Only rows: the verdict is the framer's.
                let _ = walk::walk(byte1, &input[body_start..], start, body_start, &mut rows);
            }
            Outcome::Incomplete {
                message: match other {
                    FrameError::Io(e) => e.to_string(),
                    other => format!("{other:?}"),
                },
            }
        }
    };
    Dissection {
        start,
        byte1,
        len,
        rows,
        outcome,
    }
}

/// Walks the body, decodes it with `Packet::decode`, and compares the two.
fn body_outcome(frame: &Frame, start: usize, body_start: usize, rows: &mut Vec<Row>) -> Outcome {
    let codec = frame.decode();
    let (walked, stop) = walk::walk(frame.byte1, &frame.body, start, body_start, rows);
    match (codec, walked) {
        (Ok(codec), Ok(walked)) if codec == walked => Outcome::Decoded(codec),
        (Err(codec), Err(walked)) if codec == walked => Outcome::Refused {
            at: stop,
            error: codec,
        },
        (codec, walk) => Outcome::Disagreement { codec, walk },
    }
}

/// Byte 1 of the fixed header (§2.2, Figure 2.2), then its two halves: the type
/// (bits 7-4) and the flags (bits 3-0).
fn byte1_rows(byte1: u8, start: usize) -> Vec<Row> {
    let packet_type = PacketType::from_byte1(byte1);
    let flags = byte1 & 0x0F;
    let (name, figure) = match packet_type {
        Ok(t) => (t.name(), fixed_header_figure(t)),
        Err(_) => ("reserved type", "§2.2 Figure 2.2"),
    };
    let mut rows = vec![Row {
        offset: Some(start),
        len: 1,
        bytes: format!("{byte1:02x}"),
        field: "byte 1".into(),
        value: format!("{name}, flags {flags:04b}"),
        spec: figure,
    }];
    let type_value = match packet_type {
        Ok(t) => format!("{} = {}", byte1 >> 4, t.name()),
        Err(_) => format!("{} = reserved, forbidden", byte1 >> 4),
    };
    rows.push(detail(
        bits(byte1, 7, 4),
        "packet type",
        type_value,
        "§2.2.1 Table 2.1",
    ));
    match packet_type {
        Ok(PacketType::Publish) => rows.extend(publish_flag_rows(byte1)),
        Ok(t) => {
            let required = t.required_flags().unwrap_or_default();
            let verdict = if flags == required {
                "reserved, as required"
            } else {
                "reserved, WRONG"
            };
            let value = format!("{flags:04b}: {verdict} ({required:04b})");
            rows.push(detail(
                bits(byte1, 3, 0),
                "flags",
                value,
                "§2.2.2 Table 2.2",
            ));
        }
        Err(_) => {}
    }
    rows
}

/// The DUP, QoS and RETAIN bits of a PUBLISH's byte 1 (§3.3.1).
fn publish_flag_rows(byte1: u8) -> Vec<Row> {
    let dup = u8::from(byte1 & publish_flag::DUP != 0);
    let qos = (byte1 & publish_flag::QOS) >> publish_flag::QOS_SHIFT;
    let retain = u8::from(byte1 & publish_flag::RETAIN != 0);
    let qos_value = match qos {
        3 => "3: not a QoS".to_owned(),
        qos => format!("QoS {qos}"),
    };
    vec![
        detail(bits(byte1, 3, 3), "DUP", dup.to_string(), "§3.3.1.1"),
        detail(bits(byte1, 2, 1), "QoS", qos_value, "§3.3.1.2 Table 3.2"),
        detail(bits(byte1, 0, 0), "RETAIN", retain.to_string(), "§3.3.1.3"),
    ]
}

/// The Remaining Length (§2.2.3), one row with the value the codec reads and one per
/// byte: 7 bits of the value each, least significant first, bit 7 set when more follow.
/// Returns how many bytes it takes (up to 4; all that is there if the input ends first),
/// and whether a length could be read from them.
fn remaining_length_rows(input: &[u8], at: usize, rows: &mut Vec<Row>) -> (usize, bool) {
    let mut rest = &input[at..];
    let value = read_remaining_length(&mut rest);
    let used = input.len() - at - rest.len();
    let read = value.is_ok();
    let value = match value {
        Ok(length) => format!("{length} bytes follow"),
        Err(LengthError::Malformed(_)) => "malformed: more than 4 bytes".to_owned(),
        Err(LengthError::Io(_)) => "cut short: the input ends inside it".to_owned(),
    };
    rows.push(Row {
        offset: Some(at),
        len: used,
        bytes: hex(&input[at..at + used]),
        field: "Remaining Length".into(),
        value,
        spec: "§2.2.3 Table 2.4",
    });
    let mut multiplier = 1usize;
    for (i, &byte) in input[at..at + used].iter().enumerate() {
        let digit = usize::from(byte & 0x7F);
        let more = if byte & 0x80 != 0 {
            "more follows"
        } else {
            "last byte"
        };
        let field = format!("length byte {}: {more}", i + 1);
        let value = format!("{digit} × {multiplier} = {}", digit * multiplier);
        let shown = format!("{byte:02x} = {}|{:07b}", byte >> 7, byte & 0x7F);
        rows.push(detail(shown, &field, value, ""));
        multiplier *= 128;
    }
    (used, read)
}

/// The figure that draws the fixed header of `packet_type`.
fn fixed_header_figure(packet_type: PacketType) -> &'static str {
    use PacketType::*;
    match packet_type {
        Connect => "§3.1.1 Figure 3.1",
        Connack => "§3.2.1 Figure 3.8",
        Publish => "§3.3.1 Figure 3.10",
        Puback => "§3.4.1 Figure 3.12",
        Pubrec => "§3.5.1 Figure 3.14",
        Pubrel => "§3.6.1 Figure 3.16",
        Pubcomp => "§3.7.1 Figure 3.18",
        Subscribe => "§3.8.1 Figure 3.20",
        Suback => "§3.9.1 Figure 3.24",
        Unsubscribe => "§3.10.1 Figure 3.28",
        Unsuback => "§3.11.1 Figure 3.31",
        Pingreq => "§3.12.1 Figure 3.33",
        Pingresp => "§3.13.1 Figure 3.34",
        Disconnect => "§3.14.1 Figure 3.35",
    }
}

/// A detail line: no offset of its own, it explains part of the field above it.
fn detail(bytes: String, field: &str, value: String, spec: &'static str) -> Row {
    Row {
        offset: None,
        len: 0,
        bytes,
        field: format!("  {field}"),
        value,
        spec,
    }
}

/// Bits `high` down to `low` of `byte`, the others shown as dots: `bits(0x82, 3, 0)` is
/// `.... 0010`.
fn bits(byte: u8, high: u32, low: u32) -> String {
    let mut out = String::new();
    for bit in (0..8).rev() {
        out.push(match bit {
            b if b > high || b < low => '.',
            b if byte & (1 << b) != 0 => '1',
            _ => '0',
        });
        if bit == 4 {
            out.push(' ');
        }
    }
    out
}

/// Bytes as lower-case hex, space-separated, as the trace log writes them.
fn hex(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(" ")
}
