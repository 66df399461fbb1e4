//! What can be wrong with the bytes of a packet, and which rule each fault breaks.
//!
//! Every variant is a protocol fact a learner can look up. [`DecodeError::rule`] names the
//! normative statement (as spelled in the standard's Appendix B) or, where the standard has
//! no numbered sentence for the case, the section that defines the format. The connection
//! logs that name when it closes, so a log line always answers "which rule did I break?".
//!
//! Deciding what to *do* about an error is not this module's job. For a CONNECT,
//! `connection::handshake::reaction_to` decides between a refusing CONNACK and a silent
//! close; after the handshake every decode error closes the connection
//! (`connection::reader`, via `CloseReason::Malformed`).

use std::fmt;

use crate::topic::TopicError;

use super::PacketType;

/// A packet that could not be decoded, or that broke a rule the decoder checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The Remaining Length used a fifth byte (§2.2.3: at most four bytes).
    RemainingLengthTooLong,
    /// Packet type 0 or 15 in byte 1: both are reserved and forbidden (§2.2.1, Table 2.1).
    ReservedPacketType(u8),
    /// The fixed-header flag nibble does not hold the value Table 2.2 requires.
    InvalidFlags { packet: PacketType, flags: u8 },
    /// A field ran past the end of the packet: the Remaining Length was too short for it.
    Truncated { field: &'static str },
    /// Bytes were left over after the last field the packet can carry.
    TrailingBytes { packet: PacketType, count: usize },
    /// A UTF-8 string field holds ill-formed UTF-8 (which includes encoded surrogates).
    InvalidUtf8 { field: &'static str, at: usize },
    /// A UTF-8 string field contains U+0000.
    NullCharacter { field: &'static str },
    /// A PUBLISH (QoS > 0), SUBSCRIBE, UNSUBSCRIBE or acknowledgement carried Packet Identifier 0.
    ZeroPacketId { packet: PacketType },
    /// A PUBLISH with both QoS bits set.
    PublishQos3,
    /// A QoS 0 PUBLISH with the DUP flag set.
    DupOnQos0,
    /// The Topic Name of a PUBLISH or of a Will is not a valid topic name.
    InvalidTopicName {
        field: &'static str,
        error: TopicError,
    },
    /// A Topic Filter of a SUBSCRIBE or UNSUBSCRIBE is not a valid filter.
    InvalidTopicFilter { error: TopicError },
    /// A SUBSCRIBE Requested QoS byte with reserved bits set, or QoS 3.
    InvalidRequestedQos(u8),
    /// A SUBSCRIBE or UNSUBSCRIBE without any Topic Filter.
    NoTopicFilters { packet: PacketType },
    /// The Protocol Name is neither `MQTT` (3.1.1) nor `MQIsdp` (3.1).
    UnknownProtocolName(String),
    /// A known Protocol Name with a level this broker does not speak (for example MQTT 5).
    UnsupportedProtocolLevel { name: String, level: u8 },
    /// Bit 0 of the Connect Flags (reserved) is set.
    ReservedConnectFlag,
    /// Will Flag is 0 but Will QoS or Will Retain is not 0.
    WillFieldsWithoutWillFlag,
    /// Will Flag is 1 and Will QoS is 3.
    WillQos3,
    /// Password Flag is 1 while User Name Flag is 0.
    PasswordWithoutUserName,
    /// A CONNACK with reserved bits set in its acknowledge flags byte.
    InvalidConnackFlags(u8),
    /// A CONNACK return code outside 0..=5.
    ReservedConnectReturnCode(u8),
    /// A SUBACK return code other than 0x00, 0x01, 0x02 or 0x80.
    InvalidSubackReturnCode(u8),
}

impl DecodeError {
    /// The normative statement this error breaks, or the section that defines the format
    /// when the standard has no numbered statement for the case.
    pub fn rule(&self) -> &'static str {
        match self {
            DecodeError::RemainingLengthTooLong => "§2.2.3 Remaining Length",
            DecodeError::ReservedPacketType(_) => "§2.2.1 Table 2.1",
            DecodeError::InvalidFlags { packet, .. } => packet.flags_rule(),
            DecodeError::Truncated { .. } => "§2.2.3 Remaining Length",
            DecodeError::TrailingBytes { .. } => "§2.2.3 Remaining Length",
            DecodeError::InvalidUtf8 { .. } => "[MQTT-1.5.3-1]",
            DecodeError::NullCharacter { .. } => "[MQTT-1.5.3-2]",
            DecodeError::ZeroPacketId { .. } => "[MQTT-2.3.1-1]",
            DecodeError::PublishQos3 => "[MQTT-3.3.1-4]",
            DecodeError::DupOnQos0 => "[MQTT-3.3.1-2]",
            DecodeError::InvalidTopicName { error, .. } => error.rule(),
            DecodeError::InvalidTopicFilter { error } => error.rule(),
            DecodeError::InvalidRequestedQos(_) => "[MQTT-3-8.3-4]",
            DecodeError::NoTopicFilters {
                packet: PacketType::Unsubscribe,
            } => "[MQTT-3.10.3-2]",
            DecodeError::NoTopicFilters { .. } => "[MQTT-3.8.3-3]",
            DecodeError::UnknownProtocolName(_) => "[MQTT-3.1.2-1]",
            DecodeError::UnsupportedProtocolLevel { .. } => "[MQTT-3.1.2-2]",
            DecodeError::ReservedConnectFlag => "[MQTT-3.1.2-3]",
            DecodeError::WillFieldsWithoutWillFlag => "[MQTT-3.1.2-11]",
            DecodeError::WillQos3 => "[MQTT-3.1.2-14]",
            DecodeError::PasswordWithoutUserName => "[MQTT-3.1.2-22]",
            DecodeError::InvalidConnackFlags(_) => "§3.2.2.1 Connect Acknowledge Flags",
            DecodeError::ReservedConnectReturnCode(_) => "[MQTT-3.2.2-6]",
            DecodeError::InvalidSubackReturnCode(_) => "[MQTT-3.9.3-2]",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::RemainingLengthTooLong => {
                write!(f, "Remaining Length continues past its fourth byte")
            }
            DecodeError::ReservedPacketType(t) => write!(f, "packet type {t} is reserved"),
            DecodeError::InvalidFlags { packet, flags } => write!(
                f,
                "{packet} fixed-header flags are {flags:#06b}, must be {:#06b}",
                packet.required_flags().unwrap_or_default()
            ),
            DecodeError::Truncated { field } => {
                write!(f, "{field}: runs past the end of the packet")
            }
            DecodeError::TrailingBytes { packet, count } => {
                write!(
                    f,
                    "{packet}: {count} unexpected byte(s) after the last field"
                )
            }
            DecodeError::InvalidUtf8 { field, at } => {
                write!(f, "{field}: invalid UTF-8 at byte {at}")
            }
            DecodeError::NullCharacter { field } => write!(f, "{field}: contains U+0000"),
            DecodeError::ZeroPacketId { packet } => {
                write!(f, "{packet} has Packet Identifier 0")
            }
            DecodeError::PublishQos3 => write!(f, "PUBLISH has QoS 3 (both QoS bits set)"),
            DecodeError::DupOnQos0 => write!(f, "PUBLISH has QoS 0 and DUP set"),
            DecodeError::InvalidTopicName { field, error } => write!(f, "{field}: {error}"),
            DecodeError::InvalidTopicFilter { error } => write!(f, "Topic Filter: {error}"),
            DecodeError::InvalidRequestedQos(b) => {
                write!(f, "SUBSCRIBE Requested QoS byte {b:#04x} is not 0, 1 or 2")
            }
            DecodeError::NoTopicFilters { packet } => write!(f, "{packet} has no Topic Filter"),
            DecodeError::UnknownProtocolName(name) => {
                write!(f, "Protocol Name {name:?} is not MQTT")
            }
            DecodeError::UnsupportedProtocolLevel { name, level } => {
                write!(f, "Protocol {name:?} level {level} is not supported")
            }
            DecodeError::ReservedConnectFlag => {
                write!(f, "reserved bit 0 of the Connect Flags is set")
            }
            DecodeError::WillFieldsWithoutWillFlag => {
                write!(f, "Will QoS or Will Retain set while Will Flag is 0")
            }
            DecodeError::WillQos3 => write!(f, "Will QoS is 3"),
            DecodeError::PasswordWithoutUserName => {
                write!(f, "Password Flag set while User Name Flag is 0")
            }
            DecodeError::InvalidConnackFlags(b) => {
                write!(f, "CONNACK flags byte {b:#04x} has reserved bits set")
            }
            DecodeError::ReservedConnectReturnCode(c) => {
                write!(f, "CONNACK return code {c} is reserved")
            }
            DecodeError::InvalidSubackReturnCode(c) => {
                write!(f, "SUBACK return code {c:#04x} is not allowed")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// The words the broker logs when it closes a connection for this error
    /// (`protocol::close`), also printed by `mqttd decode`: one wording for both.
    pub fn as_close_reason(&self) -> MalformedPacket<'_> {
        MalformedPacket(self)
    }
}

/// A [`DecodeError`] as a close reason: `malformed packet [MQTT-3.1.2-3]: reserved bit 0 of
/// the Connect Flags is set`.
pub struct MalformedPacket<'a>(&'a DecodeError);

impl fmt::Display for MalformedPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed packet {}: {}", self.0.rule(), self.0)
    }
}
