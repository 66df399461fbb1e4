//! The walk: a packet's body read field by field with the codec's own `Reader` and checks,
//! in the order the codec's decoders read it, noting where each field starts and ends.
//!
//! Each function here mirrors one decoder of `src/codec/` line for line (`connect` mirrors
//! `Connect::decode`, `publish` mirrors `Publish::decode`, …) and returns the same value.
//! `super::body_outcome` compares that value with `Packet::decode`'s, so a decoder that
//! changes its order or its checks without this file following is caught (module doc of
//! `super`).

use std::sync::Arc;

use super::{detail, hex, Row};
use crate::codec::connect::{flag as connect_flag, session_present, validate_connect_flags};
use crate::codec::primitives::Reader;
use crate::codec::publish::{validate_publish_flags, validate_topic_name, PublishFlags};
use crate::codec::subscribe::{requested_qos, validate_topic_filter, SubscribeRequest};
use crate::codec::{
    validate_flags, Connack, Connect, ConnectReturnCode, DecodeError, Packet, PacketId, PacketType,
    ProtocolVersion, Publish, QoS, Suback, Subscribe, SubscribeReturnCode, Unsubscribe, Will,
};

/// How many bytes of a long field the table shows before `…`.
const SHOWN_BYTES: usize = 8;

/// How many characters of a long string the table shows before `…`.
const SHOWN_CHARS: usize = 32;

/// The walk through one packet's body.
struct Walk<'a, 'r> {
    body: &'a [u8],
    /// The codec's cursor: every byte is read through it.
    reader: Reader<'a>,
    /// Offset of the body's first byte in the input.
    base: usize,
    rows: &'r mut Vec<Row>,
    /// Where decoding stops if the next check fails: the start of the field being read
    /// (the packet's byte 1 until the body is reached).
    stop: usize,
}

/// Walks the body of the packet with byte 1 `byte1` that starts at `start` (its body at
/// `body_start`), adding a row per field. Returns what the codec's decoding would return,
/// and the offset where decoding stopped.
pub(super) fn walk(
    byte1: u8,
    body: &[u8],
    start: usize,
    body_start: usize,
    rows: &mut Vec<Row>,
) -> (Result<Packet, DecodeError>, usize) {
    let mut walk = Walk {
        body,
        reader: Reader::new(body),
        base: body_start,
        rows,
        stop: start,
    };
    let result = walk.packet(byte1);
    (result, walk.stop)
}

impl<'a> Walk<'a, '_> {
    /// Mirrors `Packet::decode`: the type and flags of byte 1, the body, then no byte more.
    fn packet(&mut self, byte1: u8) -> Result<Packet, DecodeError> {
        let packet_type = PacketType::from_byte1(byte1)?;
        let flags = validate_flags(packet_type, byte1)?;
        let packet = match packet_type {
            PacketType::Connect => Packet::Connect(Box::new(self.connect()?)),
            PacketType::Connack => Packet::Connack(self.connack()?),
            PacketType::Publish => Packet::Publish(self.publish(flags)?),
            PacketType::Puback => Packet::Puback(self.packet_id(packet_type)?),
            PacketType::Pubrec => Packet::Pubrec(self.packet_id(packet_type)?),
            PacketType::Pubrel => Packet::Pubrel(self.packet_id(packet_type)?),
            PacketType::Pubcomp => Packet::Pubcomp(self.packet_id(packet_type)?),
            PacketType::Subscribe => Packet::Subscribe(self.subscribe()?),
            PacketType::Suback => Packet::Suback(self.suback()?),
            PacketType::Unsubscribe => Packet::Unsubscribe(self.unsubscribe()?),
            PacketType::Unsuback => Packet::Unsuback(self.packet_id(packet_type)?),
            PacketType::Pingreq => Packet::Pingreq,
            PacketType::Pingresp => Packet::Pingresp,
            PacketType::Disconnect => Packet::Disconnect,
        };
        self.finish(packet_type)?;
        Ok(packet)
    }

    /// Mirrors `Connect::decode` (§3.1.2, §3.1.3).
    fn connect(&mut self) -> Result<Connect, DecodeError> {
        let name = self.utf8("Protocol Name", "§3.1.2.1 Figure 3.2")?;
        let name_at = self.stop;
        let level = self.u8("Protocol Level", "§3.1.2.2 Figure 3.3")?;
        let protocol = ProtocolVersion::identify(name, level).inspect_err(|e| {
            if let DecodeError::UnknownProtocolName(_) = e {
                self.stop = name_at;
            }
        })?;
        self.describe(format!("{level} = {}", version(protocol)));
        let flags_byte = self.u8("Connect Flags", "§3.1.2.3 Figure 3.4")?;
        self.describe(super::bits(flags_byte, 7, 0));
        self.connect_flag_rows(flags_byte);
        let flags = validate_connect_flags(flags_byte)?;
        let keep_alive = self.u16("Keep Alive", "§3.1.2.10 Figure 3.5")?;
        self.describe(format!("{keep_alive} s"));
        let client_id = self.utf8("Client Identifier", "§3.1.3.1")?.to_owned();
        let will = match flags.will {
            Some((qos, retain)) => Some(self.will(qos, retain)?),
            None => None,
        };
        let username = match flags.user_name {
            true => Some(self.utf8("User Name", "§3.1.3.4")?.to_owned()),
            false => None,
        };
        let password = match flags.password {
            true => Some(self.binary("Password", "§3.1.3.5 Figure 3.7")?.to_vec()),
            false => None,
        };
        Ok(Connect {
            protocol,
            clean_session: flags.clean_session,
            keep_alive,
            client_id,
            will,
            username,
            password,
        })
    }

    /// Mirrors `decode_will` in `src/codec/connect.rs`.
    fn will(&mut self, qos: QoS, retain: bool) -> Result<Will, DecodeError> {
        let field = "Will Topic";
        let topic = self.utf8(field, "§3.1.3.2")?;
        validate_topic_name(field, topic)?;
        let message = self.binary("Will Message", "§3.1.3.3")?.to_vec();
        Ok(Will {
            topic: topic.to_owned(),
            message,
            qos,
            retain,
        })
    }

    /// The Connect Flags bit by bit (§3.1.2.3, Figure 3.4).
    fn connect_flag_rows(&mut self, byte: u8) {
        let bit = |mask: u8| u8::from(byte & mask != 0).to_string();
        let will_qos = (byte & connect_flag::WILL_QOS) >> connect_flag::WILL_QOS_SHIFT;
        let lines = [
            (
                7,
                7,
                "User Name Flag",
                bit(connect_flag::USER_NAME),
                "§3.1.2.8",
            ),
            (
                6,
                6,
                "Password Flag",
                bit(connect_flag::PASSWORD),
                "§3.1.2.9",
            ),
            (
                5,
                5,
                "Will Retain",
                bit(connect_flag::WILL_RETAIN),
                "§3.1.2.7",
            ),
            (4, 3, "Will QoS", will_qos.to_string(), "§3.1.2.6"),
            (2, 2, "Will Flag", bit(connect_flag::WILL), "§3.1.2.5"),
            (
                1,
                1,
                "Clean Session",
                bit(connect_flag::CLEAN_SESSION),
                "§3.1.2.4",
            ),
            (0, 0, "Reserved", bit(connect_flag::RESERVED), "§3.1.2.3"),
        ];
        for (high, low, field, value, spec) in lines {
            self.rows
                .push(detail(super::bits(byte, high, low), field, value, spec));
        }
    }

    /// Mirrors `Connack::decode` (§3.2.2).
    fn connack(&mut self) -> Result<Connack, DecodeError> {
        let flags = self.u8("Connect Acknowledge Flags", "§3.2.2.1 Figure 3.9")?;
        let session_present = session_present(flags)?;
        self.describe(format!("Session Present {}", u8::from(session_present)));
        let code = self.u8("Connect Return Code", "§3.2.2.3 Table 3.1")?;
        let code = ConnectReturnCode::from_byte(code)?;
        self.describe(format!("{:#04x} {}", code as u8, code.describe()));
        Ok(Connack {
            session_present,
            code,
        })
    }

    /// Mirrors `Publish::decode` (§3.3.2, §3.3.3); the flags were shown with byte 1.
    fn publish(&mut self, flags: u8) -> Result<Publish, DecodeError> {
        let PublishFlags { dup, qos, retain } = validate_publish_flags(flags)?;
        let field = "Topic Name";
        let topic = self.utf8(field, "§3.3.2.1")?;
        validate_topic_name(field, topic)?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(self.packet_id(PacketType::Publish)?),
        };
        let payload = self.rest("Payload", "§3.3.3");
        Ok(Publish {
            dup,
            qos,
            retain,
            topic: Arc::from(topic),
            packet_id,
            payload: Arc::from(payload),
        })
    }

    /// Mirrors `Subscribe::decode` (§3.8.2, §3.8.3).
    fn subscribe(&mut self) -> Result<Subscribe, DecodeError> {
        let packet_id = self.packet_id(PacketType::Subscribe)?;
        let mut requests = Vec::new();
        while self.reader.remaining() > 0 {
            let filter = self.utf8("Topic Filter", "§3.8.3 Figure 3.22")?;
            validate_topic_filter(filter)?;
            let byte = self.u8("Requested QoS", "§3.8.3 Figure 3.22")?;
            let qos = requested_qos(byte)?;
            self.describe(format!("QoS {}", qos.as_u8()));
            requests.push(SubscribeRequest {
                filter: filter.to_owned(),
                qos,
            });
        }
        if requests.is_empty() {
            self.stop = self.base + self.pos();
            return Err(DecodeError::NoTopicFilters {
                packet: PacketType::Subscribe,
            });
        }
        Ok(Subscribe {
            packet_id,
            requests,
        })
    }

    /// Mirrors `Suback::decode` (§3.9.2, §3.9.3).
    fn suback(&mut self) -> Result<Suback, DecodeError> {
        let packet_id = self.packet_id(PacketType::Suback)?;
        let mut return_codes = Vec::new();
        while self.reader.remaining() > 0 {
            let byte = self.u8("Return Code", "§3.9.3 Figure 3.26")?;
            let code = SubscribeReturnCode::from_byte(byte)?;
            self.describe(match code {
                SubscribeReturnCode::Granted(qos) => format!("granted QoS {}", qos.as_u8()),
                SubscribeReturnCode::Failure => "failure".to_owned(),
            });
            return_codes.push(code);
        }
        Ok(Suback {
            packet_id,
            return_codes,
        })
    }

    /// Mirrors `Unsubscribe::decode` (§3.10.2, §3.10.3).
    fn unsubscribe(&mut self) -> Result<Unsubscribe, DecodeError> {
        let packet_id = self.packet_id(PacketType::Unsubscribe)?;
        let mut filters = Vec::new();
        while self.reader.remaining() > 0 {
            let filter = self.utf8("Topic Filter", "§3.10.3 Figure 3.30")?;
            validate_topic_filter(filter)?;
            filters.push(filter.to_owned());
        }
        if filters.is_empty() {
            self.stop = self.base + self.pos();
            return Err(DecodeError::NoTopicFilters {
                packet: PacketType::Unsubscribe,
            });
        }
        Ok(Unsubscribe { packet_id, filters })
    }

    // -----------------------------------------------------------------------------------
    // The codec's readers, each noting the field it read.

    /// The reader's position in the body.
    fn pos(&self) -> usize {
        self.body.len() - self.reader.remaining()
    }

    /// Notes that a field starts here: if it fails, decoding stopped here.
    fn begin(&mut self) -> usize {
        let at = self.pos();
        self.stop = self.base + at;
        at
    }

    /// Adds a row for the body bytes `at..end`.
    fn row(&mut self, at: usize, end: usize, field: &str, value: String, spec: &'static str) {
        let bytes = &self.body[at..end];
        let shown = match bytes.len() > SHOWN_BYTES {
            true => format!("{} …", hex(&bytes[..SHOWN_BYTES])),
            false => hex(bytes),
        };
        self.rows.push(Row {
            offset: Some(self.base + at),
            len: end - at,
            bytes: shown,
            field: field.to_owned(),
            value,
            spec,
        });
    }

    /// Replaces the value of the last field row with a more telling one.
    fn describe(&mut self, value: String) {
        if let Some(row) = self.rows.iter_mut().rev().find(|r| r.offset.is_some()) {
            row.value = value;
        }
    }

    fn u8(&mut self, field: &'static str, spec: &'static str) -> Result<u8, DecodeError> {
        let at = self.begin();
        let byte = self.reader.u8(field)?;
        self.row(at, at + 1, field, byte.to_string(), spec);
        Ok(byte)
    }

    fn u16(&mut self, field: &'static str, spec: &'static str) -> Result<u16, DecodeError> {
        let at = self.begin();
        let value = self.reader.u16(field)?;
        self.row(at, at + 2, field, value.to_string(), spec);
        Ok(value)
    }

    /// A Packet Identifier (§2.3.1): shown even when it is the forbidden 0.
    fn packet_id(&mut self, packet: PacketType) -> Result<PacketId, DecodeError> {
        let at = self.begin();
        let result = self.reader.packet_id(packet);
        if self.pos() == at + 2 {
            let value = match result {
                Ok(id) => id.to_string(),
                Err(_) => "0: not allowed".to_owned(),
            };
            self.row(
                at,
                at + 2,
                "Packet Identifier",
                value,
                packet_id_figure(packet),
            );
        }
        result
    }

    /// A UTF-8 string (§1.5.3): a row for its length, one for its text.
    fn utf8(&mut self, field: &'static str, spec: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.begin();
        let result = self.reader.utf8(field);
        let text = match &result {
            Ok(text) => quoted(text),
            Err(DecodeError::InvalidUtf8 { at: bad, .. }) => {
                self.stop = self.base + bad;
                format!("not UTF-8 from offset {}", self.base + bad)
            }
            Err(DecodeError::NullCharacter { .. }) => {
                self.stop = self.base + at + 2;
                "contains U+0000".to_owned()
            }
            Err(_) => String::new(),
        };
        self.length_prefixed_rows(at, field, text, spec);
        result
    }

    /// Binary data (§1.5.3's length prefix, then bytes as they are).
    fn binary(&mut self, field: &'static str, spec: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.begin();
        let result = self.reader.binary(field);
        let value = match (&result, field) {
            (Ok(bytes), "Password") => format!("**** ({} bytes)", bytes.len()),
            (Ok(bytes), _) => show_bytes(bytes),
            (Err(_), _) => String::new(),
        };
        self.length_prefixed_rows(at, field, value, spec);
        result
    }

    /// The rows of a field with a two-byte length prefix that starts at `at`. Whatever
    /// was read is shown; if the field runs past the end of the packet, decoding stopped
    /// where its bytes ran out.
    fn length_prefixed_rows(&mut self, at: usize, field: &str, value: String, spec: &'static str) {
        let end = self.pos();
        if end < at + 2 {
            return; // not even the length prefix was there
        }
        let declared = u16::from_be_bytes([self.body[at], self.body[at + 1]]);
        let length_field = format!("{field} length");
        self.row(
            at,
            at + 2,
            &length_field,
            declared.to_string(),
            "§1.5.3 Figure 1.1",
        );
        if end == at + 2 && declared > 0 {
            self.stop = self.base + end; // the text runs past the end of the packet
            return;
        }
        self.row(at + 2, end, field, value, spec);
    }

    /// The rest of the body (a PUBLISH payload).
    fn rest(&mut self, field: &str, spec: &'static str) -> &'a [u8] {
        let at = self.begin();
        let rest = self.reader.rest();
        let value = show_bytes(rest);
        self.row(at, self.pos(), field, value, spec);
        rest
    }

    /// Mirrors `Reader::finish`: no byte may follow the last field (§2.2.3).
    fn finish(&mut self, packet: PacketType) -> Result<(), DecodeError> {
        let at = self.begin();
        let reader = std::mem::replace(&mut self.reader, Reader::new(&[]));
        let result = reader.finish(packet);
        if result.is_err() {
            let end = self.body.len();
            let value = format!("{} byte(s) after the last field", end - at);
            self.row(at, end, "unexpected bytes", value, "§2.2.3");
        }
        result
    }
}

/// Where the standard draws the Packet Identifier of `packet` (§2.3.1 defines it).
fn packet_id_figure(packet: PacketType) -> &'static str {
    use PacketType::*;
    match packet {
        Publish => "§3.3.2.2, §2.3.1",
        Puback => "§3.4.2 Figure 3.13",
        Pubrec => "§3.5.2 Figure 3.15",
        Pubrel => "§3.6.2 Figure 3.17",
        Pubcomp => "§3.7.2 Figure 3.19",
        Subscribe => "§3.8.2 Figure 3.21",
        Suback => "§3.9.2 Figure 3.25",
        Unsubscribe => "§3.10.2 Figure 3.29",
        Unsuback => "§3.11.2 Figure 3.32",
        _ => "§2.3.1 Figure 2.3",
    }
}

/// How a version is usually called.
fn version(protocol: ProtocolVersion) -> &'static str {
    match protocol {
        ProtocolVersion::V3_1 => "MQTT 3.1",
        ProtocolVersion::V3_1_1 => "MQTT 3.1.1",
    }
}

/// Binary data for the value column: text if it is printable UTF-8, else its size.
fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => {
            format!("{} ({} bytes)", quoted(text), bytes.len())
        }
        _ => format!("{} bytes", bytes.len()),
    }
}

/// A string for the value column, quoted, its end cut off if it is long.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}
