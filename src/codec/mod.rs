//! The wire format: turning bytes into [`Packet`]s and back (spec §1.5, §2 and §3).
//!
//! Every MQTT Control Packet is a *fixed header* followed by a body (§2.1):
//!
//! ```text
//!   byte 1        bits 7-4: packet type (Table 2.1)    bits 3-0: flags (Table 2.2)
//!   bytes 2..=5   Remaining Length: 1 to 4 bytes, the size of the rest (§2.2.3)
//!   body          variable header, then payload, exactly Remaining Length bytes
//! ```
//!
//! Reading happens in two steps, *frame first, then parse*: [`frame::read_frame`] reads
//! byte 1 and the Remaining Length from the socket, checks the size limit and reads exactly
//! that many body bytes; then [`Packet::decode`] parses the body from a slice, so running
//! out of bytes inside a body is a malformed packet and never a reason to wait for more.
//!
//! Files, one per packet family, each with decode, encode and byte-vector tests together:
//!
//! | file                  | packets                                   | spec       |
//! |-----------------------|-------------------------------------------|------------|
//! | `primitives.rs`       | integers, strings, Remaining Length        | §1.5, §2.2.3 |
//! | `frame.rs`            | reading one packet's bytes off a stream    | §2.1, §2.2 |
//! | `connect.rs`          | CONNECT, CONNACK                           | §3.1, §3.2 |
//! | `publish.rs`          | PUBLISH                                    | §3.3       |
//! | `ack.rs`              | PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK  | §3.4–§3.7, §3.11 |
//! | `subscribe.rs`        | SUBSCRIBE, SUBACK                          | §3.8, §3.9 |
//! | `unsubscribe.rs`      | UNSUBSCRIBE                                | §3.10      |
//! | `ping_disconnect.rs`  | PINGREQ, PINGRESP, DISCONNECT              | §3.12–§3.14 |

pub mod ack;
pub mod connect;
mod error;
pub mod frame;
pub mod ping_disconnect;
pub mod primitives;
pub mod publish;
pub mod subscribe;
pub mod unsubscribe;

use std::fmt;

pub use connect::{Connack, Connect, ConnectReturnCode, ProtocolVersion, Will};
pub use error::{DecodeError, MalformedPacket};
pub use frame::{
    holds_whole_packet, read_frame, read_frame_into, read_frame_of, Frame, FrameError,
};
pub use publish::Publish;
pub use subscribe::{Suback, Subscribe, SubscribeReturnCode};
pub use unsubscribe::Unsubscribe;

/// A Packet Identifier (§2.3.1): a two-byte number, never 0 on the wire.
pub type PacketId = u16;

/// The fourteen packet types of Table 2.1, numbered as in byte 1, bits 7–4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Client → server: request to connect.
    Connect = 1,
    /// Server → client: connect acknowledgement.
    Connack = 2,
    /// Both ways: an application message.
    Publish = 3,
    /// Both ways: QoS 1 acknowledgement.
    Puback = 4,
    /// Both ways: QoS 2, part 1 (publish received).
    Pubrec = 5,
    /// Both ways: QoS 2, part 2 (publish release).
    Pubrel = 6,
    /// Both ways: QoS 2, part 3 (publish complete).
    Pubcomp = 7,
    /// Client → server: subscribe request.
    Subscribe = 8,
    /// Server → client: subscribe acknowledgement.
    Suback = 9,
    /// Client → server: unsubscribe request.
    Unsubscribe = 10,
    /// Server → client: unsubscribe acknowledgement.
    Unsuback = 11,
    /// Client → server: are you there?
    Pingreq = 12,
    /// Server → client: yes.
    Pingresp = 13,
    /// Client → server: I am leaving cleanly.
    Disconnect = 14,
}

impl PacketType {
    /// Reads the type from the high nibble of byte 1; 0 and 15 are reserved (Table 2.1).
    pub fn from_byte1(byte1: u8) -> Result<PacketType, DecodeError> {
        use PacketType::*;
        Ok(match byte1 >> 4 {
            1 => Connect,
            2 => Connack,
            3 => Publish,
            4 => Puback,
            5 => Pubrec,
            6 => Pubrel,
            7 => Pubcomp,
            8 => Subscribe,
            9 => Suback,
            10 => Unsubscribe,
            11 => Unsuback,
            12 => Pingreq,
            13 => Pingresp,
            14 => Disconnect,
            reserved => return Err(DecodeError::ReservedPacketType(reserved)),
        })
    }

    /// The flag nibble Table 2.2 requires, or `None` for PUBLISH, whose nibble carries
    /// DUP, QoS and RETAIN.
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::Pubrel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0b0000),
        }
    }

    /// The statement that names the reserved flags of this packet type.
    pub fn flags_rule(self) -> &'static str {
        match self {
            PacketType::Pubrel => "[MQTT-3.6.1-1]",
            PacketType::Subscribe => "[MQTT-3.8.1-1]",
            PacketType::Unsubscribe => "[MQTT-3.10.1-1]",
            PacketType::Disconnect => "[MQTT-3.14.1-1]",
            _ => "[MQTT-2.2.2-2]",
        }
    }

    /// Byte 1 of a packet of this type with its required flags ([MQTT-2.2.2-1]).
    fn byte1(self) -> u8 {
        ((self as u8) << 4) | self.required_flags().unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        use PacketType::*;
        match self {
            Connect => "CONNECT",
            Connack => "CONNACK",
            Publish => "PUBLISH",
            Puback => "PUBACK",
            Pubrec => "PUBREC",
            Pubrel => "PUBREL",
            Pubcomp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            Suback => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            Unsuback => "UNSUBACK",
            Pingreq => "PINGREQ",
            Pingresp => "PINGRESP",
            Disconnect => "DISCONNECT",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Quality of Service levels (§4.3). Ordered, so `min` and `max` mean what they say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// At most once: fire and forget.
    AtMostOnce = 0,
    /// At least once: acknowledged by PUBACK, may be duplicated.
    AtLeastOnce = 1,
    /// Exactly once: the PUBREC / PUBREL / PUBCOMP handshake.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a two-bit value; 3 is not a QoS.
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// One MQTT Control Packet, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Boxed because it is by far the biggest (136 bytes against 48 for a PUBLISH) and the
    /// rarest, once per connection: every `Packet` is as big as its biggest variant, and
    /// every slot of a connection's control channel holds one.
    Connect(Box<Connect>),
    Connack(Connack),
    Publish(Publish),
    Puback(PacketId),
    Pubrec(PacketId),
    Pubrel(PacketId),
    Pubcomp(PacketId),
    Subscribe(Subscribe),
    Suback(Suback),
    Unsubscribe(Unsubscribe),
    Unsuback(PacketId),
    Pingreq,
    Pingresp,
    Disconnect,
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::Connack(_) => PacketType::Connack,
            Packet::Publish(_) => PacketType::Publish,
            Packet::Puback(_) => PacketType::Puback,
            Packet::Pubrec(_) => PacketType::Pubrec,
            Packet::Pubrel(_) => PacketType::Pubrel,
            Packet::Pubcomp(_) => PacketType::Pubcomp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::Suback(_) => PacketType::Suback,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::Unsuback(_) => PacketType::Unsuback,
            Packet::Pingreq => PacketType::Pingreq,
            Packet::Pingresp => PacketType::Pingresp,
            Packet::Disconnect => PacketType::Disconnect,
        }
    }

    /// Decodes one packet from byte 1 of its fixed header and its body: the one dispatch
    /// site for decoding.
    pub fn decode(byte1: u8, body: &[u8]) -> Result<Packet, DecodeError> {
        let packet_type = PacketType::from_byte1(byte1)?;
        let flags = validate_flags(packet_type, byte1)?;
        let mut reader = primitives::Reader::new(body);
        let packet = match packet_type {
            PacketType::Connect => Packet::Connect(Box::new(Connect::decode(&mut reader)?)),
            PacketType::Connack => Packet::Connack(Connack::decode(&mut reader)?),
            PacketType::Publish => Packet::Publish(Publish::decode(flags, &mut reader)?),
            PacketType::Puback => Packet::Puback(ack::decode(packet_type, &mut reader)?),
            PacketType::Pubrec => Packet::Pubrec(ack::decode(packet_type, &mut reader)?),
            PacketType::Pubrel => Packet::Pubrel(ack::decode(packet_type, &mut reader)?),
            PacketType::Pubcomp => Packet::Pubcomp(ack::decode(packet_type, &mut reader)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(&mut reader)?),
            PacketType::Suback => Packet::Suback(Suback::decode(&mut reader)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(&mut reader)?),
            PacketType::Unsuback => Packet::Unsuback(ack::decode(packet_type, &mut reader)?),
            // These three have no body at all: `finish` below rejects any byte.
            PacketType::Pingreq => Packet::Pingreq,
            PacketType::Pingresp => Packet::Pingresp,
            PacketType::Disconnect => Packet::Disconnect,
        };
        // Whatever the type, a byte left over after the last field is malformed (§2.2.3).
        reader.finish(packet_type)?;
        Ok(packet)
    }

    /// Appends the whole packet, fixed header included, to `out`: the one dispatch site for
    /// encoding. Each type computes its Remaining Length first, so bytes go out in order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Packet::Connect(connect) => connect.encode(out),
            Packet::Connack(connack) => connack.encode(out),
            Packet::Publish(publish) => publish.encode(out),
            Packet::Puback(id)
            | Packet::Pubrec(id)
            | Packet::Pubrel(id)
            | Packet::Pubcomp(id)
            | Packet::Unsuback(id) => ack::encode(self.packet_type(), *id, out),
            Packet::Subscribe(subscribe) => subscribe.encode(out),
            Packet::Suback(suback) => suback.encode(out),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.encode(out),
            Packet::Pingreq | Packet::Pingresp | Packet::Disconnect => {
                ping_disconnect::encode(self.packet_type(), out)
            }
        }
    }

    /// The packet as bytes; handy in tests and for logging.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// The one-line description used by the per-packet debug log, for example
/// `SUBSCRIBE id=1 ["hoge/fuga" qos 0]`. Passwords are masked and payloads shown as a size.
impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Connect(connect) => connect.fmt(f),
            Packet::Connack(connack) => connack.fmt(f),
            Packet::Publish(publish) => publish.fmt(f),
            Packet::Puback(id)
            | Packet::Pubrec(id)
            | Packet::Pubrel(id)
            | Packet::Pubcomp(id)
            | Packet::Unsuback(id) => write!(f, "{} id={id}", self.packet_type()),
            Packet::Subscribe(subscribe) => subscribe.fmt(f),
            Packet::Suback(suback) => suback.fmt(f),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.fmt(f),
            Packet::Pingreq | Packet::Pingresp | Packet::Disconnect => {
                f.write_str(self.packet_type().name())
            }
        }
    }
}

/// Returns the flag nibble of byte 1 (bits 3-0), checked against Table 2.2 for every type
/// but PUBLISH, whose nibble `Publish::decode` reads as DUP, QoS and RETAIN.
pub fn validate_flags(packet_type: PacketType, byte1: u8) -> Result<u8, DecodeError> {
    let flags = byte1 & 0x0F;
    // [MQTT-2.2.2-2] a reserved flag nibble with the wrong value closes the connection.
    if let Some(required) = packet_type.required_flags() {
        if flags != required {
            return Err(DecodeError::InvalidFlags {
                packet: packet_type,
                flags,
            });
        }
    }
    Ok(flags)
}

/// Writes byte 1 and the Remaining Length: the start of every encoded packet.
fn put_fixed_header(out: &mut Vec<u8>, byte1: u8, remaining_length: usize) {
    out.push(byte1);
    primitives::put_remaining_length(out, remaining_length);
}

/// Messages in flight, kept by Packet Identifier and numbered in the order they were sent:
/// the sending side (`session::Outbound`) and the journal's copy of it
/// (`persistence::State`) both find an entry by the identifier an acknowledgement names,
/// once per acknowledgement, in a window of up to 65 535 entries, and both must give their
/// entries back in sending order on a reconnect ([MQTT-4.6.0-1]) or a snapshot. A map
/// gives the first in one look-up; the number kept with each entry gives the second, by
/// sorting, n log n once per reconnect or snapshot rather than a walk of the list per
/// acknowledgement. It lives in the codec, with [`PacketId`], because those two modules
/// sit side by side and may not use each other.
#[derive(Debug, Clone)]
pub struct InFlightMap<V> {
    /// Each entry with its number in the sending order.
    by_id: std::collections::HashMap<PacketId, (u64, V), BuildPacketIdHasher>,
    /// The number the next entry gets.
    next_sent: u64,
}

impl<V> Default for InFlightMap<V> {
    fn default() -> InFlightMap<V> {
        InFlightMap {
            by_id: std::collections::HashMap::default(),
            next_sent: 0,
        }
    }
}

impl<V> InFlightMap<V> {
    /// Adds an entry under `id`, after every entry already there. Returns the entry it
    /// replaces, if `id` was in use (which a sender never does).
    pub fn insert(&mut self, id: PacketId, value: V) -> Option<V> {
        let sent = self.next_sent;
        self.next_sent += 1;
        self.by_id.insert(id, (sent, value)).map(|(_, old)| old)
    }

    pub fn get_mut(&mut self, id: PacketId) -> Option<&mut V> {
        self.by_id.get_mut(&id).map(|(_, value)| value)
    }

    pub fn remove(&mut self, id: PacketId) -> Option<V> {
        self.by_id.remove(&id).map(|(_, value)| value)
    }

    pub fn contains(&self, id: PacketId) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.by_id.values().map(|(_, value)| value)
    }

    /// Every entry with its identifier, in the order they were inserted.
    pub fn in_order(&self) -> Vec<(PacketId, &V)> {
        let mut entries: Vec<(u64, PacketId, &V)> = self
            .by_id
            .iter()
            .map(|(&id, (sent, value))| (*sent, id, value))
            .collect();
        entries.sort_unstable_by_key(|&(sent, _, _)| sent);
        entries
            .into_iter()
            .map(|(_, id, value)| (id, value))
            .collect()
    }
}

/// Two are equal when they hold the same entries in the same order. The numbers
/// themselves are not compared: a state read back from a snapshot numbers its entries
/// afresh.
impl<V: PartialEq> PartialEq for InFlightMap<V> {
    fn eq(&self, other: &InFlightMap<V>) -> bool {
        self.in_order() == other.in_order()
    }
}

impl<V: Eq> Eq for InFlightMap<V> {}

/// Builds a [`PacketIdHasher`]: the hasher of an [`InFlightMap`].
///
/// Why not the standard library's default? Its SipHash, seeded at random, protects a map
/// whose keys an attacker picks from being flooded into one bucket. Here the broker picks
/// every key itself (`Outbound::allocate_id` hands them out), so that protection buys
/// nothing, and it costs a SipHash round per look-up. Why not the identity either? The
/// map (hashbrown, inside `std`) uses the *low* bits of a hash to pick a bucket and the
/// *top* 7 bits as a tag it compares first; a `u16` taken as it is leaves the top bits 0,
/// every tag equal, and each look-up would compare keys one by one along a probe.
#[derive(Debug, Clone, Copy, Default)]
struct BuildPacketIdHasher;

impl std::hash::BuildHasher for BuildPacketIdHasher {
    type Hasher = PacketIdHasher;

    fn build_hasher(&self) -> PacketIdHasher {
        PacketIdHasher(0)
    }
}

/// Fibonacci hashing: the key times 2^64 / φ (an odd number, so no two keys collide).
/// The low bits of the product still differ for consecutive identifiers (distinct buckets
/// for 1, 2, 3, …), and the multiplication carries every bit of the key into the top 7
/// bits, so the tags spread too.
#[derive(Debug, Clone, Copy)]
struct PacketIdHasher(u64);

/// ⌊2^64 / φ⌋, made odd: the multiplier of Fibonacci hashing (Knuth, TAOCP vol. 3, §6.4).
const FIBONACCI_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

impl std::hash::Hasher for PacketIdHasher {
    fn write_u16(&mut self, id: u16) {
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(FIBONACCI_MULTIPLIER);
    }

    /// Only `write_u16` is used by a `PacketId` key; this folds any other bytes in the
    /// same way, so that the hasher stays correct for whatever else is hashed with it.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u16(u16::from(byte));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_packet_types_0_and_15_are_malformed() {
        assert_eq!(
            Packet::decode(0x00, &[]),
            Err(DecodeError::ReservedPacketType(0))
        );
        assert_eq!(
            Packet::decode(0xF0, &[]),
            Err(DecodeError::ReservedPacketType(15))
        );
    }

    #[test]
    fn wrong_reserved_flags_are_rejected_for_every_type_mqtt_2_2_2_2() {
        // Byte 1 with the right type and every wrong nibble: never accepted, never a panic.
        for packet_type in 1u8..=14 {
            let pt = PacketType::from_byte1(packet_type << 4).unwrap();
            let Some(required) = pt.required_flags() else {
                continue;
            };
            for flags in (0u8..16).filter(|f| *f != required) {
                let err = Packet::decode((packet_type << 4) | flags, &[0, 1]).unwrap_err();
                assert_eq!(err, DecodeError::InvalidFlags { packet: pt, flags });
            }
        }
    }

    #[test]
    fn flag_errors_name_the_packet_specific_rule() {
        let rule = |byte1| Packet::decode(byte1, &[0, 1]).unwrap_err().rule();
        assert_eq!(rule(0x60), "[MQTT-3.6.1-1]"); // PUBREL with 0000
        assert_eq!(rule(0x80), "[MQTT-3.8.1-1]"); // SUBSCRIBE with 0000
        assert_eq!(rule(0xA0), "[MQTT-3.10.1-1]"); // UNSUBSCRIBE with 0000
        assert_eq!(rule(0xE1), "[MQTT-3.14.1-1]"); // DISCONNECT with 0001
        assert_eq!(rule(0x41), "[MQTT-2.2.2-2]"); // PUBACK with 0001
    }

    /// What [`PacketIdHasher`] promises the map: every identifier its own bucket among
    /// the 65 536 a full window uses (the low 16 bits differ), and tags (the top 7 bits)
    /// spread over all 128 values even for identifiers that differ only in their low bits.
    #[test]
    fn packet_id_hashes_spread_over_buckets_and_tags() {
        use std::collections::HashSet;
        use std::hash::{BuildHasher, Hasher};
        let hash = |id: PacketId| {
            let mut hasher = BuildPacketIdHasher.build_hasher();
            hasher.write_u16(id);
            hasher.finish()
        };
        let buckets: HashSet<u64> = (1..=u16::MAX).map(|id| hash(id) & 0xFFFF).collect();
        assert_eq!(buckets.len(), 65_535);
        let tags: HashSet<u64> = (1..=1024).map(|id| hash(id) >> 57).collect();
        assert_eq!(tags.len(), 128);
    }
}
