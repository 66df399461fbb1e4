//! MQTT bytes for the load generator: finding whole packets in a read buffer, reading a
//! PUBLISH without copying it, and writing PUBLISH packets from a template.
//!
//! Everything rare (CONNECT, SUBSCRIBE, the acknowledgements) is encoded and decoded by the
//! broker's own codec, `mqttd::codec`. Only the two things done a million times a second
//! are done here by hand, because the codec's `Publish` owns its topic and payload in
//! `Arc`s, and two allocations per message would make the load generator slower than the
//! brokers it measures:
//!
//! * reading a PUBLISH borrows the topic and payload from the read buffer ([`parse_publish`]);
//! * writing one copies a pre-encoded template and patches the few bytes that change
//!   ([`PublishTemplate`]).
//!
//! Every payload starts with a [`Stamp`]:
//!
//! ```text
//! bytes 0-1    publisher number (big-endian u16)
//! bytes 2-5    sequence number, 0, 1, 2… per publisher (big-endian u32)
//! bytes 6-13   send time, nanoseconds since the load generator started (big-endian u64)
//! bytes 14-    zero padding up to --payload bytes
//! ```

use std::sync::Arc;

use mqttd::codec::primitives::{read_remaining_length, LengthError, Reader};
use mqttd::codec::subscribe::SubscribeRequest;
use mqttd::codec::{Connect, DecodeError, Packet, PacketType, ProtocolVersion, Publish, QoS};
use mqttd::codec::{PacketId, Subscribe};

use crate::fail::Fail;

/// The largest packet the load generator accepts; the read buffers are this big.
pub const MAX_PACKET: usize = 64 * 1024;

/// Bytes of the stamp at the start of every payload; `--payload` may not be smaller.
pub const STAMP_LEN: usize = 14;

/// One complete packet at the front of a buffer, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// Byte 1 of the fixed header: the type in bits 7-4, the flags in bits 3-0.
    pub byte1: u8,
    /// The variable header and payload: exactly Remaining Length bytes.
    pub body: &'a [u8],
    /// The whole packet as it came off the wire, fixed header included (the relay forwards
    /// these bytes unchanged).
    pub bytes: &'a [u8],
}

/// Finds the first complete packet in `buf`, or `None` when more bytes are needed.
///
/// This is the non-blocking twin of `mqttd::codec::read_frame`: the broker's reader may
/// block until a packet is whole, ours may not, so it looks without taking and says "not
/// yet" when the buffer ends inside the fixed header or the body.
pub fn split_frame(buf: &[u8]) -> Result<Option<RawFrame<'_>>, Fail> {
    let Some((&byte1, after_byte1)) = buf.split_first() else {
        return Ok(None);
    };
    // `&[u8]` implements `Read`, so the codec's own Remaining Length reader works on a
    // slice; running off the end of the slice is "wait for more bytes".
    let mut rest = after_byte1;
    let remaining_length = match read_remaining_length(&mut rest) {
        Ok(length) => length,
        Err(LengthError::Io(_)) => return Ok(None),
        Err(LengthError::Malformed(e)) => return Err(Fail::Protocol(e.to_string())),
    };
    if remaining_length > MAX_PACKET {
        return Err(Fail::Protocol(format!(
            "a packet of {remaining_length} bytes is bigger than the load generator reads ({MAX_PACKET})"
        )));
    }
    let header_len = buf.len() - rest.len();
    let total = header_len + remaining_length;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(RawFrame {
        byte1,
        body: &buf[header_len..total],
        bytes: &buf[..total],
    }))
}

/// The packet type in byte 1, as the codec names it (0 and 15 are malformed).
pub fn packet_type(frame: &RawFrame<'_>) -> Result<PacketType, Fail> {
    PacketType::from_byte1(frame.byte1).map_err(|e| Fail::Protocol(e.to_string()))
}

/// Decodes a packet with the broker's codec: for everything but the PUBLISH hot path.
pub fn decode(frame: &RawFrame<'_>) -> Result<Packet, Fail> {
    Packet::decode(frame.byte1, frame.body).map_err(|e| Fail::Protocol(e.to_string()))
}

/// A PUBLISH read in place: the topic and payload point into the read buffer.
#[derive(Debug)]
pub struct PublishView<'a> {
    pub qos: QoS,
    pub topic: &'a [u8],
    /// `Some` exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    pub payload: &'a [u8],
}

/// Reads a PUBLISH (§3.3) with the codec's `Reader`, without allocating.
///
/// Simplified on purpose: the topic is not checked for valid UTF-8 or wildcards (the
/// broker under test checked it when the publisher sent it, and we compare its bytes).
pub fn parse_publish<'a>(frame: &RawFrame<'a>) -> Result<PublishView<'a>, Fail> {
    let protocol = |e: DecodeError| Fail::Protocol(format!("PUBLISH: {e}"));
    // [MQTT-3.3.1-4] both QoS bits set is malformed.
    let qos = QoS::from_bits((frame.byte1 >> 1) & 0b11)
        .ok_or_else(|| protocol(DecodeError::PublishQos3))?;
    let mut reader = Reader::new(frame.body);
    let topic = reader.binary("Topic Name").map_err(protocol)?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        // [MQTT-2.3.1-1] a Packet Identifier is never 0.
        _ => match reader.u16("Packet Identifier").map_err(protocol)? {
            0 => return Err(Fail::Protocol("PUBLISH with Packet Identifier 0".into())),
            id => Some(id),
        },
    };
    Ok(PublishView {
        qos,
        topic,
        packet_id,
        payload: reader.rest(),
    })
}

/// What every payload starts with: who sent it, its number, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u16,
    pub seq: u32,
    /// Nanoseconds since the load generator's start (both threads share that instant).
    pub sent_ns: u64,
}

impl Stamp {
    /// Writes the stamp over the first [`STAMP_LEN`] bytes of `payload`.
    fn write(&self, payload: &mut [u8]) {
        payload[0..2].copy_from_slice(&self.publisher.to_be_bytes());
        payload[2..6].copy_from_slice(&self.seq.to_be_bytes());
        payload[6..14].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a stamp, or `None` if the payload is too short to hold one.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let publisher = u16::from_be_bytes(payload.get(0..2)?.try_into().ok()?);
        let seq = u32::from_be_bytes(payload.get(2..6)?.try_into().ok()?);
        let sent_ns = u64::from_be_bytes(payload.get(6..14)?.try_into().ok()?);
        Some(Stamp {
            publisher,
            seq,
            sent_ns,
        })
    }
}

/// One publisher's PUBLISH packet, encoded once by the codec and then copied per message.
///
/// Only the Packet Identifier and the stamp change from one message to the next, and they
/// sit at fixed offsets from the end of the packet, so appending a message is a copy of a
/// few dozen bytes and two small patches.
#[derive(Debug)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Where the Packet Identifier is, for QoS 1 and 2.
    packet_id_at: Option<usize>,
    /// Where the payload (and so the stamp) starts.
    payload_at: usize,
}

impl PublishTemplate {
    pub fn new(topic: &str, qos: QoS, payload_len: usize) -> PublishTemplate {
        let packet_id = (qos != QoS::AtMostOnce).then_some(1);
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: Arc::from(topic),
            packet_id,
            payload: Arc::from(vec![0u8; payload_len.max(STAMP_LEN)]),
        };
        let mut bytes = Vec::new();
        publish.encode(&mut bytes);
        let payload_at = bytes.len() - payload_len.max(STAMP_LEN);
        PublishTemplate {
            packet_id_at: packet_id.map(|_| payload_at - 2),
            payload_at,
            bytes,
        }
    }

    /// Appends one message to `out`.
    pub fn append(&self, out: &mut Vec<u8>, packet_id: Option<PacketId>, stamp: &Stamp) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let packet = &mut out[start..];
        if let (Some(at), Some(id)) = (self.packet_id_at, packet_id) {
            packet[at..at + 2].copy_from_slice(&id.to_be_bytes());
        }
        stamp.write(&mut packet[self.payload_at..]);
    }
}

/// CONNECT with Clean Session 1 and the Keep Alive given, in seconds. The load generator
/// sends 0 unless told otherwise (`--keep-alive`): no keepalive timer, since it never
/// sleeps long enough to need PINGREQ, and an idle `conns` connection should cost the
/// broker nothing but its memory. rumqttd 0.20 refuses 0, so `bench/compare.sh` gives it
/// the largest, 65 535 s (18 hours), which no run comes near.
pub fn connect(client_id: &str, keep_alive: u16) -> Packet {
    connect_session(client_id, true, keep_alive)
}

/// CONNECT with the Clean Session flag and Keep Alive given: `false` asks the broker to
/// keep the session (its subscriptions and its QoS 1 and 2 messages) after the connection
/// ends, which is what a broker with persistence writes to disk ([MQTT-3.1.2-4]).
pub fn connect_session(client_id: &str, clean_session: bool, keep_alive: u16) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_session,
        keep_alive,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
    }))
}

/// SUBSCRIBE to one filter; the load generator only ever uses Packet Identifier 1 for it.
pub fn subscribe(filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: 1,
        requests: vec![SubscribeRequest {
            filter: filter.to_owned(),
            qos,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_messages_decode_with_the_brokers_codec() {
        let template = PublishTemplate::new("pair/3", QoS::AtLeastOnce, 20);
        let stamp = Stamp {
            publisher: 3,
            seq: 77,
            sent_ns: 123_456_789,
        };
        let mut out = Vec::new();
        template.append(&mut out, Some(9), &stamp);
        let frame = split_frame(&out).unwrap().unwrap();
        assert_eq!(frame.bytes.len(), out.len());
        let Packet::Publish(publish) = decode(&frame).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_eq!(&*publish.topic, "pair/3");
        assert_eq!(publish.packet_id, Some(9));
        assert_eq!(publish.payload.len(), 20);
        assert_eq!(Stamp::read(&publish.payload), Some(stamp));
        let view = parse_publish(&frame).unwrap();
        assert_eq!(view.topic, b"pair/3");
        assert_eq!(view.packet_id, Some(9));
    }

    #[test]
    fn every_prefix_of_a_packet_means_wait_for_more() {
        let mut out = Vec::new();
        PublishTemplate::new("t", QoS::AtMostOnce, 200).append(
            &mut out,
            None,
            &Stamp {
                publisher: 0,
                seq: 0,
                sent_ns: 0,
            },
        );
        for end in 0..out.len() {
            assert!(split_frame(&out[..end]).unwrap().is_none(), "prefix {end}");
        }
        assert!(split_frame(&out).unwrap().is_some());
    }
}
