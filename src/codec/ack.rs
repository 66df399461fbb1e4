//! The two-byte acknowledgements: PUBACK (§3.4), PUBREC (§3.5), PUBREL (§3.6), PUBCOMP
//! (§3.7) and UNSUBACK (§3.11).
//!
//! ```text
//! byte 1:  type << 4 | flags     PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70,
//!                                UNSUBACK 0xB0 (PUBREL's flags are 0010, [MQTT-3.6.1-1])
//! byte 2:  Remaining Length = 2
//! body:    Packet Identifier (two bytes) of the packet being acknowledged
//! ```
//!
//! They differ only in byte 1, so they share one decoder and one encoder.

use super::primitives::{put_u16, Reader};
use super::{put_fixed_header, DecodeError, PacketId, PacketType};

/// Reads the Packet Identifier of an acknowledgement. It echoes the identifier of a
/// PUBLISH, SUBSCRIBE or UNSUBSCRIBE ([MQTT-2.3.1-6], [MQTT-2.3.1-7]), which is never 0,
/// so 0 cannot acknowledge anything and is rejected like Mosquitto does.
pub fn decode(packet: PacketType, r: &mut Reader<'_>) -> Result<PacketId, DecodeError> {
    r.packet_id(packet)
}

pub fn encode(packet: PacketType, id: PacketId, out: &mut Vec<u8>) {
    put_fixed_header(out, packet.byte1(), 2);
    put_u16(out, id);
}

#[cfg(test)]
mod tests {
    use crate::codec::{DecodeError, Packet, PacketType};

    /// Each acknowledgement for Packet Identifier 0x1234, as byte 1, length, MSB, LSB.
    const ACKS: &[(Packet, [u8; 4])] = &[
        (Packet::Puback(0x1234), [0x40, 0x02, 0x12, 0x34]),
        (Packet::Pubrec(0x1234), [0x50, 0x02, 0x12, 0x34]),
        (Packet::Pubrel(0x1234), [0x62, 0x02, 0x12, 0x34]),
        (Packet::Pubcomp(0x1234), [0x70, 0x02, 0x12, 0x34]),
        (Packet::Unsuback(0x1234), [0xB0, 0x02, 0x12, 0x34]),
    ];

    #[test]
    fn each_acknowledgement_round_trips() {
        for (packet, bytes) in ACKS {
            assert_eq!(&packet.to_bytes(), bytes, "{packet}");
            assert_eq!(Packet::decode(bytes[0], &bytes[2..]).as_ref(), Ok(packet));
        }
    }

    #[test]
    fn a_remaining_length_other_than_2_is_malformed() {
        for (_, bytes) in ACKS {
            assert!(Packet::decode(bytes[0], &bytes[2..3]).is_err());
            assert!(Packet::decode(bytes[0], &[0x12, 0x34, 0x00]).is_err());
        }
    }

    #[test]
    fn pubrel_requires_flags_0010_mqtt_3_6_1_1() {
        let err = Packet::decode(0x60, &[0x12, 0x34]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidFlags {
                packet: PacketType::Pubrel,
                flags: 0
            }
        );
        assert_eq!(err.rule(), "[MQTT-3.6.1-1]");
    }

    #[test]
    fn packet_identifier_zero_acknowledges_nothing() {
        assert_eq!(
            Packet::decode(0x40, &[0, 0]),
            Err(DecodeError::ZeroPacketId {
                packet: PacketType::Puback
            })
        );
    }
}
