//! CONNECT (§3.1) and its answer CONNACK (§3.2).
//!
//! ```text
//! CONNECT   byte 1: 0x10
//!           variable header: Protocol Name "MQTT" (00 04 4D 51 54 54)
//!                            Protocol Level  (04 for 3.1.1; "MQIsdp"/03 is MQTT 3.1)
//!                            Connect Flags   bit 7 user name, 6 password, 5 will retain,
//!                                            4-3 will QoS, 2 will flag, 1 clean session,
//!                                            0 reserved (must be 0)
//!                            Keep Alive      two bytes, seconds
//!           payload (in this order, each present only if its flag says so):
//!                            Client Identifier, Will Topic, Will Message, User Name, Password
//!
//! CONNACK   byte 1: 0x20, Remaining Length 2
//!           byte 1 of body: Session Present in bit 0, bits 7-1 reserved
//!           byte 2 of body: Connect Return Code (Table 3.1)
//! ```
//!
//! The decoder checks everything that is a property of the bytes alone: the protocol name
//! and level (checked first, because an MQTT 5 CONNECT cannot be parsed as 3.1.1), the
//! flags, the order and presence of the payload fields. Decisions that need the broker's
//! state (a zero-length Client Identifier, session takeover) live in `connection::handshake`.

use std::fmt;

use super::primitives::{field_len, put_binary, put_u16, put_utf8, Reader};
use super::publish::validate_topic_name;
use super::{put_fixed_header, DecodeError, PacketType, QoS};

/// The protocol revisions this broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// MQTT 3.1: Protocol Name `MQIsdp`, level 3. IBM's specification before OASIS;
    /// accepted as Mosquitto does, because many older clients still speak it.
    V3_1,
    /// MQTT 3.1.1: Protocol Name `MQTT`, level 4. The standard this broker implements.
    V3_1_1,
}

impl ProtocolVersion {
    pub fn name(self) -> &'static str {
        match self {
            ProtocolVersion::V3_1 => "MQIsdp",
            ProtocolVersion::V3_1_1 => "MQTT",
        }
    }

    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
        }
    }

    /// Recognises the Protocol Name and Level, before anything else of the CONNECT is read.
    pub fn identify(name: &str, level: u8) -> Result<ProtocolVersion, DecodeError> {
        match (name, level) {
            ("MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
            ("MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
            // [MQTT-3.1.2-2] a known name with a level we do not speak (MQTT 5 sends
            // "MQTT"/5): CONNACK 0x01, then close.
            ("MQTT" | "MQIsdp", level) => Err(DecodeError::UnsupportedProtocolLevel {
                name: name.to_owned(),
                level,
            }),
            // [MQTT-3.1.2-1] not MQTT at all: we may close without a CONNACK, and do.
            _ => Err(DecodeError::UnknownProtocolName(name.to_owned())),
        }
    }
}

/// The Will Message (§3.1.2.5): published by the broker if the connection ends without a
/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    /// Binary data, not UTF-8: the payload of the message that will be published.
    pub message: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

/// A decoded CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    pub clean_session: bool,
    /// Seconds; 0 turns the keepalive timer off (§3.1.2.10).
    pub keep_alive: u16,
    /// May be empty: what the broker does with that is its decision, not the decoder's.
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    /// Binary data, not UTF-8. Never logged.
    pub password: Option<Vec<u8>>,
}

/// Bits of the Connect Flags byte (§3.1.2.3, Figure 3.4).
pub mod flag {
    pub const USER_NAME: u8 = 0b1000_0000;
    pub const PASSWORD: u8 = 0b0100_0000;
    pub const WILL_RETAIN: u8 = 0b0010_0000;
    pub const WILL_QOS: u8 = 0b0001_1000;
    pub const WILL_QOS_SHIFT: u32 = 3;
    pub const WILL: u8 = 0b0000_0100;
    pub const CLEAN_SESSION: u8 = 0b0000_0010;
    pub const RESERVED: u8 = 0b0000_0001;
}

/// The Connect Flags, checked and unpacked.
pub struct ConnectFlags {
    pub user_name: bool,
    pub password: bool,
    /// `Some` when the Will Flag is set: the Will QoS and Will Retain.
    pub will: Option<(QoS, bool)>,
    pub clean_session: bool,
}

/// Checks the Connect Flags byte against §3.1.2.3 and unpacks it.
pub fn validate_connect_flags(byte: u8) -> Result<ConnectFlags, DecodeError> {
    // [MQTT-3.1.2-3] the reserved bit must be 0.
    if byte & flag::RESERVED != 0 {
        return Err(DecodeError::ReservedConnectFlag);
    }
    let will_qos_bits = (byte & flag::WILL_QOS) >> flag::WILL_QOS_SHIFT;
    let will_retain = byte & flag::WILL_RETAIN != 0;
    let will = if byte & flag::WILL != 0 {
        // [MQTT-3.1.2-14] Will QoS 3 is not a QoS.
        let qos = QoS::from_bits(will_qos_bits).ok_or(DecodeError::WillQos3)?;
        Some((qos, will_retain))
    } else {
        // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] no will: QoS and retain must be 0.
        if will_qos_bits != 0 || will_retain {
            return Err(DecodeError::WillFieldsWithoutWillFlag);
        }
        None
    };
    let user_name = byte & flag::USER_NAME != 0;
    let password = byte & flag::PASSWORD != 0;
    // [MQTT-3.1.2-22] no password without a user name.
    if password && !user_name {
        return Err(DecodeError::PasswordWithoutUserName);
    }
    Ok(ConnectFlags {
        user_name,
        password,
        will,
        clean_session: byte & flag::CLEAN_SESSION != 0,
    })
}

impl Connect {
    pub fn decode(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
        let name = r.utf8("Protocol Name")?;
        let level = r.u8("Protocol Level")?;
        let protocol = ProtocolVersion::identify(name, level)?;
        let flags = validate_connect_flags(r.u8("Connect Flags")?)?;
        let keep_alive = r.u16("Keep Alive")?;
        // [MQTT-3.1.3-1] [MQTT-3.1.3-3] the payload fields come in a fixed order, Client
        // Identifier first; a flag promising a field the payload lacks is a truncated field.
        let client_id = r.utf8("Client Identifier")?.to_owned();
        let will = match flags.will {
            Some((qos, retain)) => Some(decode_will(r, qos, retain)?),
            None => None,
        };
        // [MQTT-3.1.2-19] [MQTT-3.1.3-11] present exactly when flagged; an unflagged field
        // would be left over and rejected as trailing bytes ([MQTT-3.1.2-18], [MQTT-3.1.2-20]).
        let username = match flags.user_name {
            true => Some(r.utf8("User Name")?.to_owned()),
            false => None,
        };
        // [MQTT-3.1.2-21]
        let password = match flags.password {
            true => Some(r.binary("Password")?.to_vec()),
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

    fn flags_byte(&self) -> u8 {
        let mut byte = 0;
        if self.username.is_some() {
            byte |= flag::USER_NAME;
        }
        if self.password.is_some() {
            byte |= flag::PASSWORD;
        }
        if let Some(will) = &self.will {
            byte |= flag::WILL | (will.qos.as_u8() << flag::WILL_QOS_SHIFT);
            if will.retain {
                byte |= flag::WILL_RETAIN;
            }
        }
        if self.clean_session {
            byte |= flag::CLEAN_SESSION;
        }
        byte
    }

    fn remaining_length(&self) -> usize {
        let mut len = field_len(self.protocol.name().as_bytes()) + 1 + 1 + 2;
        len += field_len(self.client_id.as_bytes());
        if let Some(will) = &self.will {
            len += field_len(will.topic.as_bytes()) + field_len(&will.message);
        }
        len += self
            .username
            .as_ref()
            .map_or(0, |u| field_len(u.as_bytes()));
        len += self.password.as_ref().map_or(0, |p| field_len(p));
        len
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_fixed_header(out, PacketType::Connect.byte1(), self.remaining_length());
        put_utf8(out, self.protocol.name());
        out.push(self.protocol.level());
        out.push(self.flags_byte());
        put_u16(out, self.keep_alive);
        put_utf8(out, &self.client_id);
        if let Some(will) = &self.will {
            put_utf8(out, &will.topic);
            put_binary(out, &will.message);
        }
        if let Some(username) = &self.username {
            put_utf8(out, username);
        }
        if let Some(password) = &self.password {
            put_binary(out, password);
        }
    }
}

/// Reads the Will Topic and Will Message ([MQTT-3.1.2-9]) and checks the topic.
fn decode_will(r: &mut Reader<'_>, qos: QoS, retain: bool) -> Result<Will, DecodeError> {
    // [MQTT-3.1.3-10] the Will Topic is a UTF-8 string, and it is a topic *name*: it will be
    // published, so it may not be empty or carry wildcards.
    let field = "Will Topic";
    let topic = r.utf8(field)?;
    validate_topic_name(field, topic)?;
    let message = r.binary("Will Message")?.to_vec();
    Ok(Will {
        topic: topic.to_owned(),
        message,
        qos,
        retain,
    })
}

impl fmt::Display for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CONNECT client_id={:?} protocol={}/{} clean_session={} keep_alive={}",
            self.client_id,
            self.protocol.name(),
            self.protocol.level(),
            u8::from(self.clean_session),
            self.keep_alive
        )?;
        if let Some(will) = &self.will {
            write!(
                f,
                " will=[{:?} qos {} retain={} ({} bytes)]",
                will.topic,
                will.qos.as_u8(),
                u8::from(will.retain),
                will.message.len()
            )?;
        }
        if let Some(username) = &self.username {
            write!(f, " username={username:?}")?;
        }
        if self.password.is_some() {
            // Never print a password, not even at trace level.
            write!(f, " password=****")?;
        }
        Ok(())
    }
}

/// The Connect Return Codes of Table 3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectReturnCode {
    /// 0x00: connection accepted.
    Accepted = 0,
    /// 0x01: the server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// 0x02: the Client Identifier is valid UTF-8 but not allowed by the server.
    IdentifierRejected = 2,
    /// 0x03: the MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 0x04: the user name or password is malformed.
    BadUserNameOrPassword = 4,
    /// 0x05: the client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The code for a byte of Table 3.1; 6 to 255 are reserved ([MQTT-3.2.2-6]).
    pub fn from_byte(byte: u8) -> Result<ConnectReturnCode, DecodeError> {
        use ConnectReturnCode::*;
        Ok(match byte {
            0 => Accepted,
            1 => UnacceptableProtocolVersion,
            2 => IdentifierRejected,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            other => return Err(DecodeError::ReservedConnectReturnCode(other)),
        })
    }

    pub fn describe(self) -> &'static str {
        use ConnectReturnCode::*;
        match self {
            Accepted => "accepted",
            UnacceptableProtocolVersion => "unacceptable protocol version",
            IdentifierRejected => "identifier rejected",
            ServerUnavailable => "server unavailable",
            BadUserNameOrPassword => "bad user name or password",
            NotAuthorized => "not authorized",
        }
    }
}

/// A CONNACK packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    pub code: ConnectReturnCode,
}

/// Session Present is bit 0 of the acknowledge flags; bits 7-1 are reserved (§3.2.2.1).
const SESSION_PRESENT: u8 = 0b0000_0001;

impl Connack {
    pub fn decode(r: &mut Reader<'_>) -> Result<Connack, DecodeError> {
        let session_present = session_present(r.u8("Connect Acknowledge Flags")?)?;
        let code = ConnectReturnCode::from_byte(r.u8("Connect Return Code")?)?;
        Ok(Connack {
            session_present,
            code,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_fixed_header(out, PacketType::Connack.byte1(), 2);
        out.push(if self.session_present {
            SESSION_PRESENT
        } else {
            0
        });
        out.push(self.code as u8);
    }
}

/// Reads Session Present from the Connect Acknowledge Flags, whose bits 7-1 must be 0
/// (§3.2.2.1).
pub fn session_present(flags: u8) -> Result<bool, DecodeError> {
    if flags & !SESSION_PRESENT != 0 {
        return Err(DecodeError::InvalidConnackFlags(flags));
    }
    Ok(flags & SESSION_PRESENT != 0)
}

impl fmt::Display for Connack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CONNACK session_present={} code={:#04x} ({})",
            u8::from(self.session_present),
            self.code as u8,
            self.code.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packet;

    /// The CONNECT of Figure 3.6's variable header (name "MQTT", level 4, flags 0xCE =
    /// user name + password + will QoS 1 + will flag + clean session, Keep Alive 10), with a
    /// payload we chose, followed by one junk byte that must not be read.
    fn full_connect_bytes() -> Vec<u8> {
        vec![
            0x10, 0x27, // CONNECT, Remaining Length 39
            0x00, 0x04, b'M', b'Q', b'T', b'T', // Protocol Name
            0x04, // Protocol Level 4 (3.1.1)
            0xCE, // Connect Flags 1100 1110
            0x00, 0x0A, // Keep Alive 10 s
            0x00, 0x03, b'c', b'i', b'd', // Client Identifier "cid"
            0x00, 0x05, b'w', b'i', b'l', b'l', b's', // Will Topic "wills"
            0x00, 0x03, 0x00, 0xFF, 0x01, // Will Message: binary, 3 bytes
            0x00, 0x04, b'u', b's', b'e', b'r', // User Name "user"
            0x00, 0x04, b'p', b'a', b's', b's', // Password "pass"
            0xEE, // junk after the packet
        ]
    }

    fn full_connect() -> Connect {
        Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_session: true,
            keep_alive: 10,
            client_id: "cid".into(),
            will: Some(Will {
                topic: "wills".into(),
                message: vec![0x00, 0xFF, 0x01],
                qos: QoS::AtLeastOnce,
                retain: false,
            }),
            username: Some("user".into()),
            password: Some(b"pass".to_vec()),
        }
    }

    /// Decodes a complete packet given as bytes (fixed header included).
    fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let mut stream = bytes;
        let frame = crate::codec::read_frame(&mut stream, usize::MAX).unwrap();
        frame.decode()
    }

    #[test]
    fn decodes_a_connect_with_every_field_and_stops_at_remaining_length() {
        let bytes = full_connect_bytes();
        assert_eq!(
            decode(&bytes).unwrap(),
            Packet::Connect(Box::new(full_connect()))
        );
    }

    #[test]
    fn encodes_a_connect_with_every_field() {
        let bytes = full_connect_bytes();
        let packet = Packet::Connect(Box::new(full_connect()));
        assert_eq!(packet.to_bytes(), &bytes[..bytes.len() - 1]);
    }

    #[test]
    fn every_prefix_of_a_connect_body_fails_cleanly() {
        let bytes = full_connect_bytes();
        let body = &bytes[2..bytes.len() - 1];
        for cut in 0..body.len() {
            assert!(Packet::decode(0x10, &body[..cut]).is_err(), "prefix {cut}");
        }
    }

    /// A minimal 3.1.1 CONNECT body with the given flags: name, level, flags, keep alive 60,
    /// Client Identifier "a".
    fn body_with_flags(flags: u8) -> Vec<u8> {
        vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60, 0, 1, b'a']
    }

    #[test]
    fn rejects_the_reserved_connect_flag_mqtt_3_1_2_3() {
        let err = Packet::decode(0x10, &body_with_flags(0x03)).unwrap_err();
        assert_eq!(err, DecodeError::ReservedConnectFlag);
        assert_eq!(err.rule(), "[MQTT-3.1.2-3]");
    }

    #[test]
    fn rejects_will_qos_or_retain_without_will_flag_mqtt_3_1_2_11() {
        for flags in [0x02 | 0x08, 0x02 | 0x10, 0x02 | 0x20] {
            let err = Packet::decode(0x10, &body_with_flags(flags)).unwrap_err();
            assert_eq!(err, DecodeError::WillFieldsWithoutWillFlag, "{flags:#04x}");
        }
    }

    #[test]
    fn rejects_will_qos_3_mqtt_3_1_2_14() {
        let err = Packet::decode(0x10, &body_with_flags(0x02 | 0x04 | 0x18)).unwrap_err();
        assert_eq!(err, DecodeError::WillQos3);
    }

    #[test]
    fn rejects_password_without_user_name_mqtt_3_1_2_22() {
        let err = Packet::decode(0x10, &body_with_flags(0x02 | 0x40)).unwrap_err();
        assert_eq!(err, DecodeError::PasswordWithoutUserName);
    }

    #[test]
    fn a_flag_promising_a_missing_user_name_is_truncated_mqtt_3_1_2_19() {
        let err = Packet::decode(0x10, &body_with_flags(0x02 | 0x80)).unwrap_err();
        assert_eq!(err, DecodeError::Truncated { field: "User Name" });
    }

    #[test]
    fn an_extra_field_after_the_payload_is_trailing_bytes_mqtt_3_1_2_18() {
        // Flags say no user name, but one follows the Client Identifier.
        let mut body = body_with_flags(0x02);
        body.extend_from_slice(&[0, 1, b'u']);
        let err = Packet::decode(0x10, &body).unwrap_err();
        assert!(matches!(err, DecodeError::TrailingBytes { count: 3, .. }));
    }

    #[test]
    fn rejects_a_will_topic_with_a_wildcard() {
        let mut body = body_with_flags(0x02 | 0x04);
        body.extend_from_slice(&[0, 3, b'a', b'/', b'#', 0, 0]);
        let err = Packet::decode(0x10, &body).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::InvalidTopicName {
                field: "Will Topic",
                ..
            }
        ));
    }

    #[test]
    fn identifies_mqtt_3_1_1_and_mqtt_3_1() {
        assert_eq!(
            ProtocolVersion::identify("MQTT", 4),
            Ok(ProtocolVersion::V3_1_1)
        );
        assert_eq!(
            ProtocolVersion::identify("MQIsdp", 3),
            Ok(ProtocolVersion::V3_1)
        );
    }

    #[test]
    fn an_unsupported_level_is_reported_before_the_rest_is_parsed_mqtt_3_1_2_2() {
        // An MQTT 5 CONNECT: name "MQTT", level 5, then properties 3.1.1 cannot parse.
        let body = [0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0x00];
        let err = Packet::decode(0x10, &body).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedProtocolLevel {
                name: "MQTT".into(),
                level: 5
            }
        );
        assert_eq!(err.rule(), "[MQTT-3.1.2-2]");
    }

    #[test]
    fn an_unknown_protocol_name_is_rejected_mqtt_3_1_2_1() {
        let body = [0, 4, b'H', b'T', b'T', b'P', 4, 0x02, 0, 60, 0, 1, b'a'];
        let err = Packet::decode(0x10, &body).unwrap_err();
        assert_eq!(err, DecodeError::UnknownProtocolName("HTTP".into()));
    }

    #[test]
    fn connack_round_trips_every_return_code() {
        // Table 3.1: 0x20 0x02, flags, code.
        for code in 0u8..=5 {
            let bytes = [0x20, 0x02, 0x00, code];
            let packet = decode(&bytes).unwrap();
            assert_eq!(packet.to_bytes(), bytes);
        }
        let present = [0x20, 0x02, 0x01, 0x00];
        assert_eq!(
            decode(&present).unwrap(),
            Packet::Connack(Connack {
                session_present: true,
                code: ConnectReturnCode::Accepted
            })
        );
    }

    /// A CONNACK's reserved flag bits, and a return code beyond 5, which no server may send
    /// ([MQTT-3.2.2-6]: with no code that fits it closes without a CONNACK), are malformed.
    #[test]
    fn connack_rejects_reserved_bits_and_codes() {
        assert_eq!(
            decode(&[0x20, 0x02, 0x02, 0x00]),
            Err(DecodeError::InvalidConnackFlags(0x02))
        );
        assert_eq!(
            decode(&[0x20, 0x02, 0x00, 0x06]),
            Err(DecodeError::ReservedConnectReturnCode(6))
        );
    }

    #[test]
    fn display_masks_the_password() {
        let line = Packet::Connect(Box::new(full_connect())).to_string();
        assert!(line.contains("password=****"), "{line}");
        assert!(!line.contains("pass\""), "{line}");
    }
}
