//! SUBSCRIBE (§3.8) and its answer SUBACK (§3.9).
//!
//! ```text
//! SUBSCRIBE  byte 1: 0x82 (flags 0010, [MQTT-3.8.1-1])
//!            variable header: Packet Identifier
//!            payload: one or more of { Topic Filter (UTF-8 string), Requested QoS (1 byte) }
//!                     Requested QoS: bits 7-2 reserved (0), bits 1-0 the QoS (0, 1 or 2)
//!
//! SUBACK     byte 1: 0x90
//!            variable header: Packet Identifier of the SUBSCRIBE
//!            payload: one return code per filter, in order: 0x00, 0x01, 0x02 (granted
//!                     QoS) or 0x80 (failure)
//! ```

use std::fmt;

use super::primitives::{field_len, put_u16, put_utf8, Reader};
use super::{put_fixed_header, DecodeError, PacketId, PacketType, QoS};
use crate::topic;

/// One Topic Filter and the maximum QoS the client asks for on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub filter: String,
    pub qos: QoS,
}

/// A decoded SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    /// Never empty ([MQTT-3.8.3-3]).
    pub requests: Vec<SubscribeRequest>,
}

impl Subscribe {
    pub fn decode(r: &mut Reader<'_>) -> Result<Subscribe, DecodeError> {
        let packet_id = r.packet_id(PacketType::Subscribe)?;
        let mut requests = Vec::new();
        while r.remaining() > 0 {
            // [MQTT-3.8.3-1] each filter is a UTF-8 string; §4.7 says what a valid one is.
            let filter = r.utf8("Topic Filter")?;
            validate_topic_filter(filter)?;
            let qos = requested_qos(r.u8("Requested QoS")?)?;
            requests.push(SubscribeRequest {
                filter: filter.to_owned(),
                qos,
            });
        }
        // [MQTT-3.8.3-3] at least one filter.
        if requests.is_empty() {
            return Err(DecodeError::NoTopicFilters {
                packet: PacketType::Subscribe,
            });
        }
        Ok(Subscribe {
            packet_id,
            requests,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload_len: usize = self
            .requests
            .iter()
            .map(|req| field_len(req.filter.as_bytes()) + 1)
            .sum();
        put_fixed_header(out, PacketType::Subscribe.byte1(), 2 + payload_len);
        put_u16(out, self.packet_id);
        for req in &self.requests {
            put_utf8(out, &req.filter);
            out.push(req.qos.as_u8());
        }
    }
}

impl fmt::Display for Subscribe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SUBSCRIBE id={} [", self.packet_id)?;
        for (i, req) in self.requests.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{:?} qos {}", req.filter, req.qos.as_u8())?;
        }
        write!(f, "]")
    }
}

/// One SUBACK return code (§3.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeReturnCode {
    /// 0x00, 0x01 or 0x02: the subscription exists with this maximum QoS.
    Granted(QoS),
    /// 0x80: the subscription was refused.
    Failure,
}

/// The SUBACK code for a refused subscription.
const FAILURE: u8 = 0x80;

impl SubscribeReturnCode {
    fn to_byte(self) -> u8 {
        match self {
            SubscribeReturnCode::Granted(qos) => qos.as_u8(),
            SubscribeReturnCode::Failure => FAILURE,
        }
    }

    /// The return code for a byte of a SUBACK's payload.
    pub fn from_byte(byte: u8) -> Result<SubscribeReturnCode, DecodeError> {
        // [MQTT-3.9.3-2] only 0x00, 0x01, 0x02 and 0x80 exist.
        match (byte, QoS::from_bits(byte)) {
            (_, Some(qos)) => Ok(SubscribeReturnCode::Granted(qos)),
            (FAILURE, None) => Ok(SubscribeReturnCode::Failure),
            (other, None) => Err(DecodeError::InvalidSubackReturnCode(other)),
        }
    }
}

/// A SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    pub packet_id: PacketId,
    /// One per filter of the SUBSCRIBE, in the same order ([MQTT-3.9.3-1]).
    pub return_codes: Vec<SubscribeReturnCode>,
}

impl Suback {
    pub fn decode(r: &mut Reader<'_>) -> Result<Suback, DecodeError> {
        let packet_id = r.packet_id(PacketType::Suback)?;
        let mut return_codes = Vec::new();
        while r.remaining() > 0 {
            return_codes.push(SubscribeReturnCode::from_byte(r.u8("Return Code")?)?);
        }
        Ok(Suback {
            packet_id,
            return_codes,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_fixed_header(out, PacketType::Suback.byte1(), 2 + self.return_codes.len());
        put_u16(out, self.packet_id);
        out.extend(self.return_codes.iter().map(|code| code.to_byte()));
    }
}

/// Checks a Topic Filter of a SUBSCRIBE or UNSUBSCRIBE against §4.7.
pub fn validate_topic_filter(filter: &str) -> Result<(), DecodeError> {
    topic::validate_topic_filter(filter).map_err(|error| DecodeError::InvalidTopicFilter { error })
}

/// The QoS of a SUBSCRIBE's Requested QoS byte (§3.8.3, Figure 3.22).
pub fn requested_qos(byte: u8) -> Result<QoS, DecodeError> {
    // [MQTT-3-8.3-4] reserved bits 7-2 must be 0, and 3 is not a QoS.
    QoS::from_bits(byte).ok_or(DecodeError::InvalidRequestedQos(byte))
}

impl fmt::Display for Suback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SUBACK id={} [", self.packet_id)?;
        for (i, code) in self.return_codes.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            match code {
                SubscribeReturnCode::Granted(qos) => write!(f, "{sep}qos {}", qos.as_u8())?,
                SubscribeReturnCode::Failure => write!(f, "{sep}failure")?,
            }
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;

    /// Figure 3.21's payload: "a/b" at QoS 1 and "c/d" at QoS 2, Packet Identifier 10.
    const SUBSCRIBE: &[u8] = &[
        0x82, 0x0E, // SUBSCRIBE, Remaining Length 14
        0x00, 0x0A, // Packet Identifier 10
        0x00, 0x03, b'a', b'/', b'b', 0x01, // "a/b", Requested QoS 1
        0x00, 0x03, b'c', b'/', b'd', 0x02, // "c/d", Requested QoS 2
    ];

    fn subscribe() -> Subscribe {
        Subscribe {
            packet_id: 10,
            requests: vec![
                SubscribeRequest {
                    filter: "a/b".into(),
                    qos: QoS::AtLeastOnce,
                },
                SubscribeRequest {
                    filter: "c/d".into(),
                    qos: QoS::ExactlyOnce,
                },
            ],
        }
    }

    #[test]
    fn subscribe_round_trips() {
        let packet = Packet::Subscribe(subscribe());
        assert_eq!(
            Packet::decode(SUBSCRIBE[0], &SUBSCRIBE[2..]),
            Ok(packet.clone())
        );
        assert_eq!(packet.to_bytes(), SUBSCRIBE);
        assert_eq!(
            packet.to_string(),
            r#"SUBSCRIBE id=10 ["a/b" qos 1, "c/d" qos 2]"#
        );
    }

    #[test]
    fn subscribe_without_filters_is_a_protocol_violation_mqtt_3_8_3_3() {
        let err = Packet::decode(0x82, &[0x00, 0x0A]).unwrap_err();
        assert_eq!(err.rule(), "[MQTT-3.8.3-3]");
    }

    #[test]
    fn reserved_bits_in_requested_qos_are_malformed_mqtt_3_8_3_4() {
        for qos_byte in [0x03, 0x04, 0x81, 0xFC] {
            let body = [0x00, 0x0A, 0x00, 0x01, b'a', qos_byte];
            let err = Packet::decode(0x82, &body).unwrap_err();
            assert_eq!(err, DecodeError::InvalidRequestedQos(qos_byte));
            assert_eq!(err.rule(), "[MQTT-3-8.3-4]");
        }
    }

    #[test]
    fn an_invalid_filter_is_rejected_mqtt_4_7_1_2() {
        let body = [0x00, 0x0A, 0x00, 0x05, b'a', b'/', b'#', b'/', b'b', 0x00];
        let err = Packet::decode(0x82, &body).unwrap_err();
        assert_eq!(err.rule(), "[MQTT-4.7.1-2]");
    }

    #[test]
    fn every_prefix_of_a_subscribe_body_fails_cleanly() {
        for cut in 0..SUBSCRIBE.len() - 2 {
            let prefix = &SUBSCRIBE[2..2 + cut];
            // Cutting exactly after the first pair leaves a valid one-filter SUBSCRIBE.
            if cut == 8 {
                assert!(Packet::decode(0x82, prefix).is_ok());
            } else {
                assert!(Packet::decode(0x82, prefix).is_err(), "{cut}");
            }
        }
    }

    /// Figure 3.26: SUBACK for id 10 with codes 0x00, 0x01, 0x02 and 0x80.
    #[test]
    fn suback_round_trips_with_every_return_code() {
        let bytes = [0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80];
        let packet = Packet::Suback(Suback {
            packet_id: 10,
            return_codes: vec![
                SubscribeReturnCode::Granted(QoS::AtMostOnce),
                SubscribeReturnCode::Granted(QoS::AtLeastOnce),
                SubscribeReturnCode::Granted(QoS::ExactlyOnce),
                SubscribeReturnCode::Failure,
            ],
        });
        assert_eq!(packet.to_bytes(), bytes);
        assert_eq!(Packet::decode(bytes[0], &bytes[2..]), Ok(packet));
    }

    #[test]
    fn suback_rejects_reserved_return_codes_mqtt_3_9_3_2() {
        assert_eq!(
            Packet::decode(0x90, &[0x00, 0x0A, 0x03]),
            Err(DecodeError::InvalidSubackReturnCode(0x03))
        );
    }
}
