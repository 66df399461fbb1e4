//! The packets with no body at all: PINGREQ (§3.12), PINGRESP (§3.13), DISCONNECT (§3.14).
//!
//! ```text
//! PINGREQ     0xC0 0x00     client asks "are you there?"; the server answers PINGRESP
//! PINGRESP    0xD0 0x00
//! DISCONNECT  0xE0 0x00     client leaves cleanly: the server discards its Will
//! ```
//!
//! Decoding needs no code of its own: `Packet::decode` checks the flags, and its final
//! `finish` rejects any body byte. Encoding is byte 1 and a zero Remaining Length.

use super::{put_fixed_header, PacketType};

pub fn encode(packet: PacketType, out: &mut Vec<u8>) {
    put_fixed_header(out, packet.byte1(), 0);
}

#[cfg(test)]
mod tests {
    use crate::codec::{DecodeError, Packet, PacketType};

    #[test]
    fn the_empty_packets_round_trip() {
        for (packet, bytes) in [
            (Packet::Pingreq, [0xC0, 0x00]),
            (Packet::Pingresp, [0xD0, 0x00]),
            (Packet::Disconnect, [0xE0, 0x00]),
        ] {
            assert_eq!(packet.to_bytes(), bytes);
            assert_eq!(Packet::decode(bytes[0], &[]), Ok(packet));
        }
    }

    #[test]
    fn a_body_byte_makes_them_malformed() {
        assert_eq!(
            Packet::decode(0xC0, &[0x00]),
            Err(DecodeError::TrailingBytes {
                packet: PacketType::Pingreq,
                count: 1
            })
        );
    }

    #[test]
    fn disconnect_with_flags_is_rejected_mqtt_3_14_1_1() {
        let err = Packet::decode(0xE2, &[]).unwrap_err();
        assert_eq!(err.rule(), "[MQTT-3.14.1-1]");
    }
}
