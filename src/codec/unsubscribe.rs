//! UNSUBSCRIBE (§3.10). Its answer, UNSUBACK, is a two-byte acknowledgement (`ack.rs`).
//!
//! ```text
//! byte 1: 0xA2 (flags 0010, [MQTT-3.10.1-1])
//! variable header: Packet Identifier
//! payload: one or more Topic Filters (UTF-8 strings), back to back, no QoS bytes
//! ```

use std::fmt;

use super::primitives::{field_len, put_u16, put_utf8, Reader};
use super::subscribe::validate_topic_filter;
use super::{put_fixed_header, DecodeError, PacketId, PacketType};

/// A decoded UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    /// Never empty ([MQTT-3.10.3-2]).
    pub filters: Vec<String>,
}

impl Unsubscribe {
    pub fn decode(r: &mut Reader<'_>) -> Result<Unsubscribe, DecodeError> {
        let packet_id = r.packet_id(PacketType::Unsubscribe)?;
        let mut filters = Vec::new();
        while r.remaining() > 0 {
            // [MQTT-3.10.3-1] UTF-8 strings; an invalid filter is a protocol violation.
            let filter = r.utf8("Topic Filter")?;
            validate_topic_filter(filter)?;
            filters.push(filter.to_owned());
        }
        // [MQTT-3.10.3-2] at least one filter.
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters {
                packet: PacketType::Unsubscribe,
            });
        }
        Ok(Unsubscribe { packet_id, filters })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload_len: usize = self.filters.iter().map(|f| field_len(f.as_bytes())).sum();
        put_fixed_header(out, PacketType::Unsubscribe.byte1(), 2 + payload_len);
        put_u16(out, self.packet_id);
        for filter in &self.filters {
            put_utf8(out, filter);
        }
    }
}

impl fmt::Display for Unsubscribe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UNSUBSCRIBE id={} {:?}", self.packet_id, self.filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;

    /// Figure 3.30's payload: "a/b" and "c/d", Packet Identifier 10.
    const UNSUBSCRIBE: &[u8] = &[
        0xA2, 0x0C, // UNSUBSCRIBE, Remaining Length 12
        0x00, 0x0A, // Packet Identifier 10
        0x00, 0x03, b'a', b'/', b'b', // "a/b"
        0x00, 0x03, b'c', b'/', b'd', // "c/d"
    ];

    #[test]
    fn unsubscribe_round_trips() {
        let packet = Packet::Unsubscribe(Unsubscribe {
            packet_id: 10,
            filters: vec!["a/b".into(), "c/d".into()],
        });
        assert_eq!(
            Packet::decode(UNSUBSCRIBE[0], &UNSUBSCRIBE[2..]),
            Ok(packet.clone())
        );
        assert_eq!(packet.to_bytes(), UNSUBSCRIBE);
        assert_eq!(packet.to_string(), r#"UNSUBSCRIBE id=10 ["a/b", "c/d"]"#);
    }

    #[test]
    fn unsubscribe_without_filters_is_a_protocol_violation_mqtt_3_10_3_2() {
        let err = Packet::decode(0xA2, &[0x00, 0x0A]).unwrap_err();
        assert_eq!(err.rule(), "[MQTT-3.10.3-2]");
    }

    #[test]
    fn every_prefix_of_an_unsubscribe_body_fails_cleanly_or_is_shorter_valid() {
        for cut in 0..UNSUBSCRIBE.len() - 2 {
            let result = Packet::decode(0xA2, &UNSUBSCRIBE[2..2 + cut]);
            assert_eq!(result.is_ok(), cut == 7, "{cut}");
        }
    }
}
