//! Properties of the codec over many generated inputs (proptest):
//! - every packet mqttd can represent survives encode → decode unchanged;
//! - arbitrary bytes never make the decoder panic, and the frame reader never takes more
//!   bytes off the stream than the packet it reports;
//! - `mqttd decode` (src/dissect/) agrees with the broker's reading on every input: valid
//!   packets, several in a row, valid packets with a byte changed or cut short, and random
//!   bytes. Same packets, same values, same refusals with the same error, same place to
//!   stop: the proof that the dissector has not drifted from the codec.

use std::sync::Arc;

use mqttd::codec::primitives::MAX_REMAINING_LENGTH;
use mqttd::codec::subscribe::SubscribeRequest;
use mqttd::codec::FrameError;
use mqttd::codec::{
    read_frame, Connack, Connect, ConnectReturnCode, Packet, ProtocolVersion, Publish, QoS, Suback,
    Subscribe, SubscribeReturnCode, Unsubscribe, Will,
};
use mqttd::dissect::{dissect, Outcome};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

/// A valid topic name: 1 to 4 levels of printable text without wildcards (levels may be
/// empty, and '$' may start it).
fn topic_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9 $_.é-]{0,8}", 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("non-empty", |t| !t.is_empty())
}

/// A valid topic filter: levels that are text, '+', or a final '#'.
fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => "[a-z0-9]{0,6}", 1 => Just("+".to_owned())];
    (prop::collection::vec(level, 1..5), any::<bool>()).prop_map(|(mut levels, hash)| {
        if hash {
            levels.push("#".into());
        }
        let filter = levels.join("/");
        if filter.is_empty() {
            "#".into()
        } else {
            filter
        }
    })
}

fn utf8() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,20}"
}

fn binary() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn connect() -> impl Strategy<Value = Packet> {
    let will = prop::option::of((topic_name(), binary(), qos(), any::<bool>()).prop_map(
        |(topic, message, qos, retain)| Will {
            topic,
            message,
            qos,
            retain,
        },
    ));
    let credentials = prop::option::of((utf8(), prop::option::of(binary())));
    (
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        utf8(),
        will,
        credentials,
    )
        .prop_map(
            |(v311, clean_session, keep_alive, client_id, will, credentials)| {
                let (username, password) = match credentials {
                    Some((user, password)) => (Some(user), password),
                    None => (None, None),
                };
                Packet::Connect(Box::new(Connect {
                    protocol: if v311 {
                        ProtocolVersion::V3_1_1
                    } else {
                        ProtocolVersion::V3_1
                    },
                    clean_session,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

fn publish() -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        binary(),
    )
        .prop_map(|(qos, dup, retain, topic, id, payload)| {
            let (dup, packet_id) = match qos {
                QoS::AtMostOnce => (false, None),
                _ => (dup, Some(id)),
            };
            Packet::Publish(Publish {
                dup,
                qos,
                retain,
                topic: Arc::from(topic.as_str()),
                packet_id,
                payload: Arc::from(payload),
            })
        })
}

fn any_packet() -> impl Strategy<Value = Packet> {
    let code = prop_oneof![
        qos().prop_map(SubscribeReturnCode::Granted),
        Just(SubscribeReturnCode::Failure)
    ];
    let connack_code = prop_oneof![
        Just(ConnectReturnCode::Accepted),
        Just(ConnectReturnCode::UnacceptableProtocolVersion),
        Just(ConnectReturnCode::IdentifierRejected),
        Just(ConnectReturnCode::ServerUnavailable),
        Just(ConnectReturnCode::BadUserNameOrPassword),
        Just(ConnectReturnCode::NotAuthorized),
    ];
    prop_oneof![
        connect(),
        (any::<bool>(), connack_code).prop_map(|(session_present, code)| {
            Packet::Connack(Connack {
                session_present,
                code,
            })
        }),
        publish(),
        packet_id().prop_map(Packet::Puback),
        packet_id().prop_map(Packet::Pubrec),
        packet_id().prop_map(Packet::Pubrel),
        packet_id().prop_map(Packet::Pubcomp),
        (
            packet_id(),
            prop::collection::vec((topic_filter(), qos()), 1..5)
        )
            .prop_map(|(packet_id, pairs)| {
                let requests = pairs
                    .into_iter()
                    .map(|(filter, qos)| SubscribeRequest { filter, qos })
                    .collect();
                Packet::Subscribe(Subscribe {
                    packet_id,
                    requests,
                })
            }),
        (packet_id(), prop::collection::vec(code, 0..5)).prop_map(|(packet_id, return_codes)| {
            Packet::Suback(Suback {
                packet_id,
                return_codes,
            })
        }),
        (packet_id(), prop::collection::vec(topic_filter(), 1..5)).prop_map(
            |(packet_id, filters)| Packet::Unsubscribe(Unsubscribe { packet_id, filters })
        ),
        packet_id().prop_map(Packet::Unsuback),
        Just(Packet::Pingreq),
        Just(Packet::Pingresp),
        Just(Packet::Disconnect),
    ]
}

/// Checks that `dissect(data)` says what the broker's own reading says, packet by packet:
/// `read_frame`, then `Packet::decode`, stopping where a connection would be closed.
fn dissector_agrees_with_the_broker(data: &[u8]) -> Result<(), TestCaseError> {
    let packets = dissect(data);
    let mut stream = data;
    for packet in &packets {
        prop_assert_eq!(packet.start, data.len() - stream.len());
        let framed = read_frame(&mut stream, MAX_REMAINING_LENGTH);
        match (&packet.outcome, framed) {
            (Outcome::Decoded(p), Ok(frame)) => prop_assert_eq!(frame.decode(), Ok(p.clone())),
            (Outcome::Refused { error, .. }, Ok(frame)) => {
                prop_assert_eq!(frame.decode(), Err(error.clone()))
            }
            (Outcome::Refused { error, .. }, Err(FrameError::Malformed(e))) => {
                prop_assert_eq!(error, &e)
            }
            (Outcome::Incomplete { .. }, Err(FrameError::Io(_))) => {}
            (outcome, framed) => {
                prop_assert!(false, "dissector: {:?}, broker: {:?}", outcome, framed)
            }
        }
    }
    // It goes on exactly as long as the broker would: to the end, unless a packet is refused.
    match packets.last().map(|p| &p.outcome) {
        None => prop_assert!(data.is_empty()),
        Some(Outcome::Decoded(_)) => prop_assert!(stream.is_empty()),
        Some(_) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_dissector_agrees_with_the_codec_on_valid_packets(
        packets in prop::collection::vec(any_packet(), 1..4),
    ) {
        let bytes: Vec<u8> = packets.iter().flat_map(Packet::to_bytes).collect();
        let dissected = dissect(&bytes);
        let decoded: Vec<&Outcome> = dissected.iter().map(|d| &d.outcome).collect();
        let want: Vec<Outcome> = packets.into_iter().map(Outcome::Decoded).collect();
        prop_assert_eq!(decoded, want.iter().collect::<Vec<_>>());
        dissector_agrees_with_the_broker(&bytes)?;
    }

    #[test]
    fn the_dissector_agrees_with_the_codec_on_changed_and_cut_packets(
        packet in any_packet(),
        at in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<usize>(),
    ) {
        let mut bytes = packet.to_bytes();
        let len = bytes.len();
        bytes[at % len] = byte;
        dissector_agrees_with_the_broker(&bytes)?;
        dissector_agrees_with_the_broker(&bytes[..cut % len])?;
    }

    #[test]
    fn the_dissector_agrees_with_the_codec_on_arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        dissector_agrees_with_the_broker(&data)?;
    }

    #[test]
    fn every_packet_survives_encode_then_decode(packet in any_packet()) {
        let bytes = packet.to_bytes();
        let mut stream: &[u8] = &bytes;
        let frame = read_frame(&mut stream, usize::MAX).unwrap();
        prop_assert!(stream.is_empty(), "the encoding is exactly one frame");
        prop_assert_eq!(frame.decode().unwrap(), packet);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(byte1 in any::<u8>(), body in binary()) {
        let _ = Packet::decode(byte1, &body);
    }

    #[test]
    fn the_frame_reader_takes_exactly_one_packet_off_the_stream(
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut stream: &[u8] = &data;
        if let Ok(frame) = read_frame(&mut stream, 1 << 20) {
            let mut header = vec![frame.byte1];
            mqttd::codec::primitives::put_remaining_length(&mut header, frame.body.len());
            let consumed = data.len() - stream.len();
            // Consumed: byte 1, the length (maybe in a longer, non-minimal form), the body.
            prop_assert!(consumed >= header.len() + frame.body.len());
            prop_assert!(consumed <= 5 + frame.body.len());
            prop_assert_eq!(&data[consumed - frame.body.len()..consumed], &frame.body[..]);
        }
    }

    #[test]
    fn every_prefix_of_a_valid_packet_is_refused_cleanly(packet in any_packet()) {
        let bytes = packet.to_bytes();
        for cut in 0..bytes.len() {
            let mut stream: &[u8] = &bytes[..cut];
            prop_assert!(read_frame(&mut stream, usize::MAX).is_err());
        }
    }
}
