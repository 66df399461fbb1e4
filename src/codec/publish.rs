//! PUBLISH (§3.3): an Application Message, in either direction.
//!
//! ```text
//! byte 1:  0011 D QQ R     D = DUP (bit 3), QQ = QoS (bits 2-1), R = RETAIN (bit 0)
//! variable header: Topic Name (UTF-8 string)
//!                  Packet Identifier (two bytes, only when QoS is 1 or 2)
//! payload:         everything else up to Remaining Length (may be empty)
//! ```
//!
//! The topic and payload are held in `Arc`s: the reader thread decodes a PUBLISH once and
//! every subscriber's writer thread encodes from the same bytes, without copying them.

use std::fmt;
use std::sync::Arc;

use super::primitives::{field_len, put_u16, put_utf8, Reader};
use super::{put_fixed_header, DecodeError, PacketId, PacketType, QoS};
use crate::topic;

/// Bits of byte 1 of a PUBLISH (§3.3.1).
pub mod flag {
    pub const DUP: u8 = 0b1000;
    pub const QOS: u8 = 0b0110;
    pub const QOS_SHIFT: u32 = 1;
    pub const RETAIN: u8 = 0b0001;
}

/// A decoded PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Set on a re-delivery attempt; never copied from an incoming PUBLISH to the outgoing
    /// ones ([MQTT-3.3.1-3]).
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: Arc<str>,
    /// `Some` exactly when `qos` is 1 or 2 ([MQTT-2.3.1-5]).
    pub packet_id: Option<PacketId>,
    pub payload: Arc<[u8]>,
}

impl Publish {
    pub fn decode(flags: u8, r: &mut Reader<'_>) -> Result<Publish, DecodeError> {
        let PublishFlags { dup, qos, retain } = validate_publish_flags(flags)?;
        // [MQTT-3.3.2-1] the Topic Name is a UTF-8 string; [MQTT-3.3.2-2] without wildcards.
        let field = "Topic Name";
        let topic = r.utf8(field)?;
        validate_topic_name(field, topic)?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(r.packet_id(PacketType::Publish)?),
        };
        let payload = r.rest();
        Ok(Publish {
            dup,
            qos,
            retain,
            topic: Arc::from(topic),
            packet_id,
            payload: Arc::from(payload),
        })
    }

    fn byte1(&self) -> u8 {
        let mut byte1 = (PacketType::Publish as u8) << 4;
        byte1 |= self.qos.as_u8() << flag::QOS_SHIFT;
        if self.dup {
            byte1 |= flag::DUP;
        }
        if self.retain {
            byte1 |= flag::RETAIN;
        }
        byte1
    }

    fn remaining_length(&self) -> usize {
        let id_len = if self.packet_id.is_some() { 2 } else { 0 };
        field_len(self.topic.as_bytes()) + id_len + self.payload.len()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_fixed_header(out, self.byte1(), self.remaining_length());
        put_utf8(out, &self.topic);
        if let Some(id) = self.packet_id {
            put_u16(out, id);
        }
        out.extend_from_slice(&self.payload);
    }
}

/// The flag nibble of a PUBLISH's byte 1, unpacked (§3.3.1).
pub struct PublishFlags {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
}

/// Checks the flag nibble of a PUBLISH (bits 3-0 of byte 1) and unpacks it.
pub fn validate_publish_flags(flags: u8) -> Result<PublishFlags, DecodeError> {
    let dup = flags & flag::DUP != 0;
    // [MQTT-3.3.1-4] both QoS bits set is malformed.
    let qos =
        QoS::from_bits((flags & flag::QOS) >> flag::QOS_SHIFT).ok_or(DecodeError::PublishQos3)?;
    // [MQTT-3.3.1-2] DUP must be 0 on QoS 0.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupOnQos0);
    }
    let retain = flags & flag::RETAIN != 0;
    Ok(PublishFlags { dup, qos, retain })
}

/// Checks that `topic`, read from the string field `field` (a PUBLISH's Topic Name or a
/// CONNECT's Will Topic), is a topic *name*: not empty, no wildcards (§4.7).
pub fn validate_topic_name(field: &'static str, topic: &str) -> Result<(), DecodeError> {
    topic::validate_topic_name(topic)
        .map_err(|error| DecodeError::InvalidTopicName { field, error })
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PUBLISH {:?} qos {}", self.topic, self.qos.as_u8())?;
        if let Some(id) = self.packet_id {
            write!(f, " id={id}")?;
        }
        write!(
            f,
            " retain={} dup={} ({} bytes)",
            u8::from(self.retain),
            u8::from(self.dup),
            self.payload.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;

    /// QoS 1 PUBLISH of Figure 3.11's variable header: Topic Name "a/b", Packet Identifier
    /// 10, then a 3-byte payload.
    const QOS1: &[u8] = &[
        0x32, 0x0A, // PUBLISH, QoS 1, Remaining Length 10
        0x00, 0x03, b'a', b'/', b'b', // Topic Name "a/b"
        0x00, 0x0A, // Packet Identifier 10
        b'x', b'y', b'z', // payload
    ];

    fn qos1() -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: Some(10),
            payload: Arc::from(&b"xyz"[..]),
        }
    }

    #[test]
    fn decodes_and_encodes_a_qos1_publish() {
        assert_eq!(
            Packet::decode(QOS1[0], &QOS1[2..]),
            Ok(Packet::Publish(qos1()))
        );
        assert_eq!(Packet::Publish(qos1()).to_bytes(), QOS1);
    }

    #[test]
    fn a_qos0_publish_has_no_packet_identifier_mqtt_2_3_1_5() {
        let bytes = [0x31, 0x06, 0x00, 0x01, b't', b'h', b'i', b'!'];
        let packet = Packet::decode(bytes[0], &bytes[2..]).unwrap();
        let Packet::Publish(publish) = &packet else {
            panic!("not a PUBLISH");
        };
        assert_eq!(publish.packet_id, None);
        assert!(publish.retain);
        assert_eq!(&publish.payload[..], b"hi!");
        assert_eq!(packet.to_bytes(), bytes);
    }

    #[test]
    fn the_payload_may_be_empty() {
        let bytes = [0x30, 0x03, 0x00, 0x01, b't'];
        let packet = Packet::decode(bytes[0], &bytes[2..]).unwrap();
        assert_eq!(packet.to_bytes(), bytes);
    }

    #[test]
    fn rejects_qos_3_mqtt_3_3_1_4() {
        assert_eq!(
            Packet::decode(0x36, &QOS1[2..]),
            Err(DecodeError::PublishQos3)
        );
    }

    #[test]
    fn rejects_dup_on_qos_0_mqtt_3_3_1_2() {
        assert_eq!(
            Packet::decode(0x38, &[0x00, 0x01, b't']),
            Err(DecodeError::DupOnQos0)
        );
    }

    #[test]
    fn rejects_packet_identifier_zero_mqtt_2_3_1_1() {
        let body = [0x00, 0x01, b't', 0x00, 0x00];
        assert_eq!(
            Packet::decode(0x32, &body),
            Err(DecodeError::ZeroPacketId {
                packet: PacketType::Publish
            })
        );
    }

    #[test]
    fn rejects_wildcards_in_the_topic_name_mqtt_3_3_2_2() {
        for topic in [&b"a/+"[..], b"#", b"a/#"] {
            let mut body = vec![0x00, u8::try_from(topic.len()).unwrap()];
            body.extend_from_slice(topic);
            let err = Packet::decode(0x30, &body).unwrap_err();
            assert!(
                matches!(err, DecodeError::InvalidTopicName { .. }),
                "{topic:?}"
            );
            assert_eq!(err.rule(), "[MQTT-3.3.2-2]");
        }
    }

    #[test]
    fn rejects_an_empty_topic_name_mqtt_4_7_3_1() {
        let err = Packet::decode(0x30, &[0x00, 0x00]).unwrap_err();
        assert_eq!(err.rule(), "[MQTT-4.7.3-1]");
    }

    #[test]
    fn every_prefix_of_a_qos1_publish_body_fails_cleanly() {
        // The payload is "the rest", so only cuts inside the topic or identifier fail.
        for cut in 0..7 {
            assert!(Packet::decode(QOS1[0], &QOS1[2..2 + cut]).is_err(), "{cut}");
        }
    }
}
