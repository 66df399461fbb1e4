//! One change of durable state, as bytes: the records of the journal.
//!
//! Every record is framed the same way, so that a reader can walk the file without knowing
//! the kinds, and can tell a whole record from a torn or damaged one:
//!
//! ```text
//!   0       4       8                                   8 + length
//!   ┌───────┬───────┬───────────────────────────────────┐
//!   │length │ CRC-32│ body: kind (1 byte), then fields   │
//!   └───────┴───────┴───────────────────────────────────┘
//!   u32 BE  u32 BE of the body
//! ```
//!
//! Numbers are big-endian, as in MQTT. Strings are a two-byte length and UTF-8, as MQTT
//! encodes them (§1.5.3). A message's payload is whatever is left of the body, so it needs
//! no length of its own (as in a PUBLISH, §3.3.3).
//!
//! | kind | record          | fields after the kind byte                          |
//! |------|-----------------|-----------------------------------------------------|
//! | 1    | `SessionOpened` | session u64, client id str                          |
//! | 2    | `SessionEnded`  | session u64                                         |
//! | 3    | `Subscribed`    | session u64, QoS u8, filter str                     |
//! | 4    | `Unsubscribed`  | session u64, filter str                             |
//! | 5    | `Message`       | message u64, flags u8 (QoS bits 0–1, RETAIN bit 2), topic str, payload |
//! | 6    | `Routed`        | message u64, then (session u64, QoS u8) per target  |
//! | 7    | `Queued`        | session u64, message u64, flags u8                  |
//! | 8    | `Dropped`       | session u64, message u64                            |
//! | 9    | `Sent`          | session u64, message u64, packet id u16, flags u8   |
//! | 10   | `PubrelSent`    | session u64, packet id u16                          |
//! | 11   | `Delivered`     | session u64, packet id u16                          |
//! | 12   | `Qos2Received`  | session u64, packet id u16                          |
//! | 13   | `Qos2Released`  | session u64, packet id u16                          |
//! | 14   | `Identified`    | session u64, user name flag u8, user name str       |

use std::fmt;
use std::sync::Arc;

use crate::codec::{PacketId, QoS};
use crate::mailbox::{Message, MessageId};

/// The id of a session in the journal: the broker's `SessionId`.
pub type SessionKey = u64;

/// Bytes before each record's body: its length and its CRC-32.
pub const FRAME_HEADER: usize = 8;

/// One change to the state that must survive the broker (chapter 11 draws each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A Clean Session 0 session began ([MQTT-3.1.2-4]). An older session of the same
    /// Client Identifier, if the journal still holds one, ends with it.
    SessionOpened {
        session: SessionKey,
        client_id: Arc<str>,
    },
    /// A client connected to the session with this user name (the access rules of its
    /// subscriptions are that user's while it is away).
    Identified {
        session: SessionKey,
        username: Option<Box<str>>,
    },
    /// The session ended: Clean Session 1 discarded it, or it expired.
    SessionEnded { session: SessionKey },
    Subscribed {
        session: SessionKey,
        filter: Box<str>,
        qos: QoS,
    },
    Unsubscribed {
        session: SessionKey,
        filter: Box<str>,
    },
    /// A message's content, written once however many sessions get it. With RETAIN set it
    /// becomes its topic's retained message (an empty payload deletes that instead).
    Message(Message),
    /// The message was queued for these sessions, each at the QoS it gets.
    Routed {
        message: MessageId,
        targets: Vec<(SessionKey, QoS)>,
    },
    /// One more copy of a stored message queued for one session: a retained message for a
    /// new subscription, waiting for room in the window.
    Queued {
        session: SessionKey,
        message: MessageId,
        qos: QoS,
        retain: bool,
    },
    /// A queued copy that did not fit the session's queue after all.
    Dropped {
        session: SessionKey,
        message: MessageId,
    },
    /// The message left the queue as a PUBLISH with this Packet Identifier ([MQTT-4.3.2-1],
    /// [MQTT-4.3.3-1]): in flight until acknowledged.
    Sent {
        session: SessionKey,
        message: MessageId,
        packet_id: PacketId,
        qos: QoS,
        retain: bool,
    },
    /// PUBREC arrived and PUBREL went out: the PUBLISH is never sent again ([MQTT-4.3.3-1]).
    PubrelSent {
        session: SessionKey,
        packet_id: PacketId,
    },
    /// PUBACK or PUBCOMP arrived: the delivery is over.
    Delivered {
        session: SessionKey,
        packet_id: PacketId,
    },
    /// A QoS 2 PUBLISH with this id was received and routed ([MQTT-4.3.3-2]).
    Qos2Received {
        session: SessionKey,
        packet_id: PacketId,
    },
    /// Its PUBREL arrived: the id may name a new message.
    Qos2Released {
        session: SessionKey,
        packet_id: PacketId,
    },
}

impl Record {
    fn kind(&self) -> u8 {
        match self {
            Record::SessionOpened { .. } => 1,
            Record::SessionEnded { .. } => 2,
            Record::Subscribed { .. } => 3,
            Record::Unsubscribed { .. } => 4,
            Record::Message(_) => 5,
            Record::Routed { .. } => 6,
            Record::Queued { .. } => 7,
            Record::Dropped { .. } => 8,
            Record::Sent { .. } => 9,
            Record::PubrelSent { .. } => 10,
            Record::Delivered { .. } => 11,
            Record::Qos2Received { .. } => 12,
            Record::Qos2Released { .. } => 13,
            Record::Identified { .. } => 14,
        }
    }

    /// Appends the record, framed, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER]);
        out.push(self.kind());
        match self {
            Record::SessionOpened { session, client_id } => {
                put_u64(out, *session);
                put_str(out, client_id);
            }
            Record::Identified { session, username } => {
                put_u64(out, *session);
                out.push(u8::from(username.is_some()));
                put_str(out, username.as_deref().unwrap_or(""));
            }
            Record::SessionEnded { session } => put_u64(out, *session),
            Record::Subscribed {
                session,
                filter,
                qos,
            } => {
                put_u64(out, *session);
                out.push(qos.as_u8());
                put_str(out, filter);
            }
            Record::Unsubscribed { session, filter } => {
                put_u64(out, *session);
                put_str(out, filter);
            }
            Record::Message(message) => {
                put_u64(out, message.stored.map_or(0, MessageId::get));
                out.push(flags(message.qos, message.retain));
                put_str(out, &message.topic);
                out.extend_from_slice(&message.payload);
            }
            Record::Routed { message, targets } => {
                put_u64(out, message.get());
                for (session, qos) in targets {
                    put_u64(out, *session);
                    out.push(qos.as_u8());
                }
            }
            Record::Queued {
                session,
                message,
                qos,
                retain,
            } => {
                put_u64(out, *session);
                put_u64(out, message.get());
                out.push(flags(*qos, *retain));
            }
            Record::Dropped { session, message } => {
                put_u64(out, *session);
                put_u64(out, message.get());
            }
            Record::Sent {
                session,
                message,
                packet_id,
                qos,
                retain,
            } => {
                put_u64(out, *session);
                put_u64(out, message.get());
                out.extend_from_slice(&packet_id.to_be_bytes());
                out.push(flags(*qos, *retain));
            }
            Record::PubrelSent { session, packet_id }
            | Record::Delivered { session, packet_id }
            | Record::Qos2Received { session, packet_id }
            | Record::Qos2Released { session, packet_id } => {
                put_u64(out, *session);
                out.extend_from_slice(&packet_id.to_be_bytes());
            }
        }
        let body = &out[start + FRAME_HEADER..];
        let length = u32::try_from(body.len()).expect("a record is smaller than 4 GiB");
        let crc = crc32(body);
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    }

    /// Decodes one record's body (the bytes after its frame header, CRC already checked).
    pub fn decode(body: &[u8]) -> Result<Record, BadRecord> {
        let mut r = Fields { bytes: body, at: 0 };
        let kind = r.u8()?;
        let record = match kind {
            1 => Record::SessionOpened {
                session: r.u64()?,
                client_id: Arc::from(r.str()?),
            },
            14 => {
                let session = r.u64()?;
                let has_username = r.u8()? != 0;
                let username = r.str()?;
                Record::Identified {
                    session,
                    username: has_username.then(|| Box::from(username)),
                }
            }
            2 => Record::SessionEnded { session: r.u64()? },
            3 => {
                let session = r.u64()?;
                let qos = r.qos()?;
                Record::Subscribed {
                    session,
                    qos,
                    filter: Box::from(r.str()?),
                }
            }
            4 => Record::Unsubscribed {
                session: r.u64()?,
                filter: Box::from(r.str()?),
            },
            5 => {
                let stored = Some(r.message_id()?);
                let (qos, retain) = r.flags()?;
                let topic = Arc::from(r.str()?);
                let payload = Arc::from(r.rest());
                Record::Message(Message {
                    topic,
                    payload,
                    qos,
                    retain,
                    stored,
                })
            }
            6 => {
                let message = r.message_id()?;
                let mut targets = Vec::with_capacity(r.remaining() / 9);
                while r.remaining() > 0 {
                    targets.push((r.u64()?, r.qos()?));
                }
                Record::Routed { message, targets }
            }
            7 => {
                let (session, message) = (r.u64()?, r.message_id()?);
                let (qos, retain) = r.flags()?;
                Record::Queued {
                    session,
                    message,
                    qos,
                    retain,
                }
            }
            8 => Record::Dropped {
                session: r.u64()?,
                message: r.message_id()?,
            },
            9 => {
                let (session, message, packet_id) = (r.u64()?, r.message_id()?, r.u16()?);
                let (qos, retain) = r.flags()?;
                Record::Sent {
                    session,
                    message,
                    packet_id,
                    qos,
                    retain,
                }
            }
            10..=13 => {
                let (session, packet_id) = (r.u64()?, r.u16()?);
                match kind {
                    10 => Record::PubrelSent { session, packet_id },
                    11 => Record::Delivered { session, packet_id },
                    12 => Record::Qos2Received { session, packet_id },
                    _ => Record::Qos2Released { session, packet_id },
                }
            }
            other => return Err(BadRecord(format!("unknown record kind {other}"))),
        };
        if r.remaining() != 0 {
            return Err(BadRecord(format!(
                "{} bytes left over after a record of kind {kind}",
                r.remaining()
            )));
        }
        Ok(record)
    }
}

/// A body that is not a record this version writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord(pub String);

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn flags(qos: QoS, retain: bool) -> u8 {
    qos.as_u8() | u8::from(retain) << 2
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// A string as MQTT encodes one: two bytes of length, then UTF-8. Topics, filters and
/// Client Identifiers all fit, since the codec accepted them from an MQTT string.
fn put_str(out: &mut Vec<u8>, text: &str) {
    let length = u16::try_from(text.len()).expect("an MQTT string is at most 65 535 bytes");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Reads the fields of one body, failing rather than panicking when it is too short.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadRecord> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| BadRecord("the record ends inside a field".into()))?;
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }

    fn u8(&mut self) -> Result<u8, BadRecord> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, BadRecord> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u64(&mut self) -> Result<u64, BadRecord> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(bytes))
    }

    fn message_id(&mut self) -> Result<MessageId, BadRecord> {
        MessageId::new(self.u64()?).ok_or_else(|| BadRecord("message id 0".into()))
    }

    fn qos(&mut self) -> Result<QoS, BadRecord> {
        let value = self.u8()?;
        QoS::from_bits(value).ok_or_else(|| BadRecord(format!("QoS {value}")))
    }

    fn flags(&mut self) -> Result<(QoS, bool), BadRecord> {
        let value = self.u8()?;
        let qos =
            QoS::from_bits(value & 0b11).ok_or_else(|| BadRecord(format!("flags {value}")))?;
        if value & !0b111 != 0 {
            return Err(BadRecord(format!("flags {value:#04x}")));
        }
        Ok((qos, value & 0b100 != 0))
    }

    fn str(&mut self) -> Result<&'a str, BadRecord> {
        let length = usize::from(self.u16()?);
        std::str::from_utf8(self.take(length)?)
            .map_err(|_| BadRecord("a string that is not UTF-8".into()))
    }
}

/// CRC-32 as zlib, PNG and Ethernet compute it (IEEE 802.3, reflected, polynomial
/// 0xEDB88320), a byte at a time from a table built at compile time. Enough to catch a torn
/// write or a flipped bit; not a defence against anyone changing the file on purpose.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc = CRC_TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> MessageId {
        MessageId::new(n).unwrap()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The check value every CRC-32 (IEEE) implementation publishes for "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_sent_record_is_laid_out_as_the_table_says() {
        let record = Record::Sent {
            session: 2,
            message: id(7),
            packet_id: 0x0102,
            qos: QoS::ExactlyOnce,
            retain: true,
        };
        let mut bytes = Vec::new();
        record.encode(&mut bytes);
        let body = [
            9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 0b110,
        ];
        assert_eq!(&bytes[..4], &(body.len() as u32).to_be_bytes());
        assert_eq!(&bytes[4..8], &crc32(&body).to_be_bytes());
        assert_eq!(&bytes[8..], &body);
    }

    #[test]
    fn every_kind_decodes_to_what_was_encoded() {
        let message = Message {
            topic: "a/b".into(),
            payload: Arc::from(&b"hello"[..]),
            qos: QoS::AtLeastOnce,
            retain: true,
            stored: Some(id(3)),
        };
        let records = [
            Record::SessionOpened {
                session: 1,
                client_id: "c".into(),
            },
            Record::Identified {
                session: 1,
                username: Some("u".into()),
            },
            Record::Identified {
                session: 1,
                username: None,
            },
            Record::SessionEnded { session: 1 },
            Record::Subscribed {
                session: 1,
                filter: "a/#".into(),
                qos: QoS::ExactlyOnce,
            },
            Record::Unsubscribed {
                session: 1,
                filter: "a/#".into(),
            },
            Record::Message(message),
            Record::Routed {
                message: id(3),
                targets: vec![(1, QoS::AtLeastOnce), (9, QoS::ExactlyOnce)],
            },
            Record::Queued {
                session: 1,
                message: id(3),
                qos: QoS::AtLeastOnce,
                retain: true,
            },
            Record::Dropped {
                session: 1,
                message: id(3),
            },
            Record::PubrelSent {
                session: 1,
                packet_id: 5,
            },
            Record::Delivered {
                session: 1,
                packet_id: 5,
            },
            Record::Qos2Received {
                session: 1,
                packet_id: 6,
            },
            Record::Qos2Released {
                session: 1,
                packet_id: 6,
            },
        ];
        for record in records {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(Record::decode(&bytes[FRAME_HEADER..]), Ok(record));
        }
    }

    #[test]
    fn a_short_or_unknown_body_is_an_error_not_a_panic() {
        assert!(Record::decode(&[]).is_err());
        assert!(Record::decode(&[2, 0, 0]).is_err());
        assert!(Record::decode(&[99]).is_err());
        assert!(Record::decode(&[3, 0, 0, 0, 0, 0, 0, 0, 1, 7, 0, 0]).is_err());
    }
}
