//! `mqttd decode` (src/dissect/): the spec's own figures taken apart field by field, every
//! refusal the decoder knows named by its rule and offset, the inputs it reads, and the
//! command itself run as a binary. That the dissector agrees with the codec on random
//! input is in `tests/properties.rs`.

use std::io::Write;
use std::process::{Command, Stdio};

use mqttd::codec::{Packet, PacketType};
use mqttd::dissect::{dissect, parse_hex, render, Dissection, Outcome, Row};

/// The CONNECT of the issue: name "MQTT", level 4, Clean Session, Keep Alive 60, and an
/// empty Client Identifier.
const ISSUE_CONNECT: &str = "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00";

/// The only packet in `bytes`.
fn one(bytes: &[u8]) -> Dissection {
    let mut packets = dissect(bytes);
    assert_eq!(packets.len(), 1, "{packets:#?}");
    packets.remove(0)
}

/// The row of the field named `field`.
fn row<'a>(packet: &'a Dissection, field: &str) -> &'a Row {
    packet
        .rows
        .iter()
        .find(|r| r.field.trim() == field)
        .unwrap_or_else(|| panic!("no row {field:?} in {:#?}", packet.rows))
}

/// (offset, value) of the field named `field`.
fn at(packet: &Dissection, field: &str) -> (Option<usize>, String) {
    let row = row(packet, field);
    (row.offset, row.value.clone())
}

/// Every byte of the packet is in exactly one field row, in order: nothing unexplained,
/// nothing explained twice.
fn assert_every_byte_is_one_field(packet: &Dissection) {
    let mut next = packet.start;
    for row in packet.rows.iter().filter(|r| r.offset.is_some()) {
        assert_eq!(row.offset, Some(next), "{row:?} in {:#?}", packet.rows);
        next += row.len;
    }
    assert_eq!(next, packet.start + packet.len, "{:#?}", packet.rows);
}

fn decoded(packet: &Dissection) -> &Packet {
    match &packet.outcome {
        Outcome::Decoded(p) => p,
        other => panic!("expected a decoded packet, got {other:?}"),
    }
}

#[test]
fn the_connect_of_the_issue_is_taken_apart_field_by_field() {
    let packet = one(&parse_hex(ISSUE_CONNECT).unwrap());
    assert_every_byte_is_one_field(&packet);
    assert_eq!(
        at(&packet, "byte 1"),
        (Some(0), "CONNECT, flags 0000".into())
    );
    assert_eq!(at(&packet, "packet type"), (None, "1 = CONNECT".into()));
    assert_eq!(
        at(&packet, "Remaining Length"),
        (Some(1), "12 bytes follow".into())
    );
    assert_eq!(at(&packet, "Protocol Name length"), (Some(2), "4".into()));
    assert_eq!(at(&packet, "Protocol Name"), (Some(4), "\"MQTT\"".into()));
    assert_eq!(
        at(&packet, "Protocol Level"),
        (Some(8), "4 = MQTT 3.1.1".into())
    );
    assert_eq!(at(&packet, "Connect Flags"), (Some(9), "0000 0010".into()));
    assert_eq!(at(&packet, "Clean Session"), (None, "1".into()));
    assert_eq!(at(&packet, "Keep Alive"), (Some(10), "60 s".into()));
    assert_eq!(
        at(&packet, "Client Identifier length"),
        (Some(12), "0".into())
    );
    assert_eq!(at(&packet, "Client Identifier"), (Some(14), "\"\"".into()));
    assert_eq!(row(&packet, "Keep Alive").spec, "§3.1.2.10 Figure 3.5");
    assert_eq!(
        decoded(&packet).to_string(),
        "CONNECT client_id=\"\" protocol=MQTT/4 clean_session=1 keep_alive=60"
    );
}

#[test]
fn the_connect_flags_of_figure_3_6_bit_by_bit() {
    // Figure 3.6's variable header (flags 0xCE, Keep Alive 10) with a payload for it.
    let bytes = parse_hex(
        "10 27 00 04 4d 51 54 54 04 ce 00 0a \
         00 03 63 69 64  00 05 77 69 6c 6c 73  00 03 00 ff 01 \
         00 04 75 73 65 72  00 04 70 61 73 73",
    )
    .unwrap();
    let packet = one(&bytes);
    assert_every_byte_is_one_field(&packet);
    let bits: Vec<(String, String)> = packet
        .rows
        .iter()
        .skip_while(|r| r.field != "Connect Flags")
        .skip(1)
        .take(7)
        .map(|r| (r.bytes.clone(), r.value.clone()))
        .collect();
    let want = [
        ("1... ....", "1"), // User Name Flag
        (".1.. ....", "1"), // Password Flag
        ("..0. ....", "0"), // Will Retain
        ("...0 1...", "1"), // Will QoS 1
        (".... .1..", "1"), // Will Flag
        (".... ..1.", "1"), // Clean Session
        (".... ...0", "0"), // Reserved
    ];
    let want: Vec<(String, String)> = want.map(|(b, v)| (b.into(), v.into())).to_vec();
    assert_eq!(bits, want);
    assert_eq!(at(&packet, "Keep Alive"), (Some(10), "10 s".into()));
    assert_eq!(at(&packet, "Will Topic"), (Some(19), "\"wills\"".into()));
    assert_eq!(at(&packet, "Will Message"), (Some(26), "3 bytes".into()));
    assert_eq!(at(&packet, "User Name"), (Some(31), "\"user\"".into()));
    // Masked, as the broker's own log masks it.
    assert_eq!(at(&packet, "Password"), (Some(37), "**** (4 bytes)".into()));
}

/// The Remaining Length boundaries of §2.2.3 (Table 2.4).
const LENGTH_TABLE: &[(usize, &str)] = &[
    (0, "00"),
    (127, "7f"),
    (128, "80 01"),
    (16_383, "ff 7f"),
    (16_384, "80 80 01"),
    (2_097_151, "ff ff 7f"),
    (2_097_152, "80 80 80 01"),
    (268_435_455, "ff ff ff 7f"),
];

#[test]
fn the_remaining_length_table_of_2_2_3_byte_by_byte() {
    for &(value, hex) in LENGTH_TABLE {
        // A PUBLISH header alone: the length is read, then the input ends.
        let mut bytes = vec![0x30];
        bytes.extend(parse_hex(hex).unwrap());
        let packet = one(&bytes);
        let length = row(&packet, "Remaining Length");
        assert_eq!(length.value, format!("{value} bytes follow"));
        assert_eq!((length.offset, length.bytes.as_str()), (Some(1), hex));
        // One line per length byte, whose contributions add up to the value.
        let parts: Vec<&Row> = packet
            .rows
            .iter()
            .filter(|r| r.field.contains("length byte"))
            .collect();
        assert_eq!(parts.len(), length.len, "{value}");
        let sum: usize = parts
            .iter()
            .map(|r| {
                r.value
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert_eq!(sum, value);
        assert!(parts.last().unwrap().field.ends_with("last byte"));
    }
}

#[test]
fn whole_packets_at_the_remaining_length_boundaries_are_decoded() {
    for &(value, hex) in &LENGTH_TABLE[1..7] {
        // PUBLISH QoS 0, topic "t" (3 bytes with its length), payload to fill the length.
        let mut bytes = vec![0x30];
        bytes.extend(parse_hex(hex).unwrap());
        bytes.extend([0x00, 0x01, b't']);
        bytes.resize(bytes.len() + value - 3, b'x');
        let packet = one(&bytes);
        assert_every_byte_is_one_field(&packet);
        let payload = at(&packet, "Payload").1;
        assert!(
            payload.ends_with(&format!("({} bytes)", value - 3)),
            "{payload}"
        );
        assert_eq!(decoded(&packet).to_bytes(), bytes);
    }
}

/// One packet of each of the fourteen types, as the broker's encoder writes it.
fn every_type() -> Vec<Packet> {
    let bytes = [
        ISSUE_CONNECT,
        "20 02 01 00",                                     // CONNACK, session present
        "32 0a 00 03 61 2f 62 00 0a 78 79 7a",             // PUBLISH of Figure 3.11
        "40 02 12 34",                                     // PUBACK
        "50 02 12 34",                                     // PUBREC
        "62 02 12 34",                                     // PUBREL
        "70 02 12 34",                                     // PUBCOMP
        "82 0e 00 0a 00 03 61 2f 62 01 00 03 63 2f 64 02", // SUBSCRIBE of Figure 3.23
        "90 05 00 0a 00 02 80",                            // SUBACK of Figure 3.27
        "a2 0c 00 0a 00 03 61 2f 62 00 03 63 2f 64",       // UNSUBSCRIBE of Figure 3.30
        "b0 02 00 0a",                                     // UNSUBACK
        "c0 00",                                           // PINGREQ
        "d0 00",                                           // PINGRESP
        "e0 00",                                           // DISCONNECT
    ];
    bytes
        .iter()
        .map(|hex| {
            let bytes = parse_hex(hex).unwrap();
            Packet::decode(bytes[0], &bytes[2..]).unwrap()
        })
        .collect()
}

#[test]
fn every_packet_type_is_taken_apart_and_agrees_with_the_codec() {
    let packets = every_type();
    assert_eq!(packets.len(), 14);
    for packet in packets {
        let bytes = packet.to_bytes();
        let dissection = one(&bytes);
        assert_eq!(decoded(&dissection), &packet);
        assert_every_byte_is_one_field(&dissection);
        let byte1 = row(&dissection, "byte 1");
        assert!(byte1.spec.starts_with('§'), "{byte1:?}");
        assert!(byte1.value.starts_with(packet.packet_type().name()));
    }
}

#[test]
fn spec_examples_show_their_fields() {
    let subscribe = one(&every_type()[7].to_bytes());
    let filters: Vec<(Option<usize>, String)> = subscribe
        .rows
        .iter()
        .filter(|r| r.field == "Topic Filter" || r.field == "Requested QoS")
        .map(|r| (r.offset, r.value.clone()))
        .collect();
    let want = [
        (Some(6), "\"a/b\""),
        (Some(9), "QoS 1"),
        (Some(12), "\"c/d\""),
        (Some(15), "QoS 2"),
    ];
    assert_eq!(filters, want.map(|(o, v)| (o, v.to_owned())).to_vec());
    let suback = one(&every_type()[8].to_bytes());
    let codes: Vec<String> = suback
        .rows
        .iter()
        .filter(|r| r.field == "Return Code")
        .map(|r| r.value.clone())
        .collect();
    assert_eq!(codes, ["granted QoS 0", "granted QoS 2", "failure"]);
    let publish = one(&every_type()[2].to_bytes());
    assert_eq!(at(&publish, "QoS"), (None, "QoS 1".into()));
    assert_eq!(at(&publish, "Packet Identifier"), (Some(7), "10".into()));
    assert_eq!(
        at(&publish, "Payload"),
        (Some(9), "\"xyz\" (3 bytes)".into())
    );
}

/// Every refusal the decoder knows: the bytes, the rule, the offset where decoding stopped.
const REFUSALS: &[(&str, &str, &str, usize)] = &[
    (
        "fifth length byte",
        "30 80 80 80 80 01",
        "§2.2.3 Remaining Length",
        4,
    ),
    ("packet type 0", "00 00", "§2.2.1 Table 2.1", 0),
    ("packet type 15", "f0 00", "§2.2.1 Table 2.1", 0),
    ("PUBACK flags 0001", "41 02 00 01", "[MQTT-2.2.2-2]", 0),
    ("PUBREL flags 0000", "60 02 00 01", "[MQTT-3.6.1-1]", 0),
    (
        "SUBSCRIBE flags 0000",
        "80 06 00 01 00 01 61 00",
        "[MQTT-3.8.1-1]",
        0,
    ),
    (
        "UNSUBSCRIBE flags 0000",
        "a0 05 00 01 00 01 61",
        "[MQTT-3.10.1-1]",
        0,
    ),
    ("DISCONNECT flags 0001", "e1 00", "[MQTT-3.14.1-1]", 0),
    ("PUBLISH QoS 3", "36 05 00 01 61 00 01", "[MQTT-3.3.1-4]", 0),
    ("DUP on QoS 0", "38 03 00 01 61", "[MQTT-3.3.1-2]", 0),
    (
        "string past the end",
        "30 03 00 05 61",
        "§2.2.3 Remaining Length",
        4,
    ),
    (
        "length prefix cut",
        "30 01 00",
        "§2.2.3 Remaining Length",
        2,
    ),
    (
        "PUBACK with 3 bytes",
        "40 03 00 01 ff",
        "§2.2.3 Remaining Length",
        4,
    ),
    (
        "PINGREQ with a body",
        "c0 01 00",
        "§2.2.3 Remaining Length",
        2,
    ),
    ("overlong UTF-8", "30 04 00 02 c0 af", "[MQTT-1.5.3-1]", 4),
    ("surrogate", "30 05 00 03 ed a0 80", "[MQTT-1.5.3-1]", 4),
    (
        "null character",
        "30 05 00 03 61 00 62",
        "[MQTT-1.5.3-2]",
        4,
    ),
    ("identifier 0", "32 05 00 01 61 00 00", "[MQTT-2.3.1-1]", 5),
    ("PUBACK identifier 0", "40 02 00 00", "[MQTT-2.3.1-1]", 2),
    ("empty topic", "30 02 00 00", "[MQTT-4.7.3-1]", 2),
    ("wildcard in topic", "30 03 00 01 23", "[MQTT-3.3.2-2]", 2),
    (
        "bad filter",
        "82 07 00 01 00 02 61 23 00",
        "[MQTT-4.7.1-2]",
        4,
    ),
    (
        "Requested QoS 3",
        "82 06 00 01 00 01 61 03",
        "[MQTT-3-8.3-4]",
        7,
    ),
    (
        "SUBSCRIBE without filter",
        "82 02 00 01",
        "[MQTT-3.8.3-3]",
        4,
    ),
    (
        "UNSUBSCRIBE without filter",
        "a2 02 00 01",
        "[MQTT-3.10.3-2]",
        4,
    ),
    (
        "not MQTT",
        "10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00",
        "[MQTT-3.1.2-1]",
        2,
    ),
    (
        "MQTT 5",
        "10 0c 00 04 4d 51 54 54 05 02 00 3c 00 00",
        "[MQTT-3.1.2-2]",
        8,
    ),
    (
        "reserved flag",
        "10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00",
        "[MQTT-3.1.2-3]",
        9,
    ),
    (
        "will QoS, no will",
        "10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00",
        "[MQTT-3.1.2-11]",
        9,
    ),
    (
        "will QoS 3",
        "10 0c 00 04 4d 51 54 54 04 1e 00 3c 00 00",
        "[MQTT-3.1.2-14]",
        9,
    ),
    (
        "password alone",
        "10 0c 00 04 4d 51 54 54 04 42 00 3c 00 00",
        "[MQTT-3.1.2-22]",
        9,
    ),
    (
        "will topic #",
        "10 11 00 04 4d 51 54 54 04 06 00 3c 00 00 00 01 23 00 00",
        "[MQTT-3.3.2-2]",
        14,
    ),
    (
        "CONNACK flags",
        "20 02 02 00",
        "§3.2.2.1 Connect Acknowledge Flags",
        2,
    ),
    ("CONNACK code 6", "20 02 00 06", "[MQTT-3.2.2-6]", 3),
    ("SUBACK code 3", "90 03 00 01 03", "[MQTT-3.9.3-2]", 4),
];

#[test]
fn every_refusal_names_its_rule_and_where_decoding_stopped() {
    for &(case, hex, rule, stop) in REFUSALS {
        let bytes = parse_hex(hex).unwrap();
        let packet = one(&bytes);
        let Outcome::Refused { at, error } = &packet.outcome else {
            panic!("{case}: expected a refusal, got {:?}", packet.outcome);
        };
        assert_eq!((error.rule(), *at), (rule, stop), "{case}: {error}");
        // The verdict uses the broker's close-log words: "malformed packet RULE: what".
        let text = render(std::slice::from_ref(&packet), bytes.len());
        let verdict = format!("refused at offset {stop}: malformed packet {rule}: {error}");
        assert!(text.contains(&verdict), "{case}:\n{text}");
    }
}

#[test]
fn a_broker_log_trace_line_is_read_like_hex() {
    let line = "2026-12-06T08:00:00.000Z TRACE [rx:a] client \"a\" <- [10 0c 00 04 4d 51 54 54 \
                04 02 00 3c 00 00]";
    assert_eq!(parse_hex(line).unwrap(), parse_hex(ISSUE_CONNECT).unwrap());
}

#[test]
fn several_packets_in_one_input_are_taken_apart_one_after_another() {
    // CONNECT, then SUBSCRIBE "hoge/#", then PINGREQ: chapter 01's capture.
    let bytes = parse_hex(&format!(
        "{ISSUE_CONNECT} 82 0b 00 01 00 06 68 6f 67 65 2f 23 00 c0 00"
    ))
    .unwrap();
    let packets = dissect(&bytes);
    let types: Vec<(usize, PacketType)> = packets
        .iter()
        .map(|p| (p.start, decoded(p).packet_type()))
        .collect();
    assert_eq!(
        types,
        [
            (0, PacketType::Connect),
            (14, PacketType::Subscribe),
            (27, PacketType::Pingreq)
        ]
    );
    for packet in &packets {
        assert_every_byte_is_one_field(packet);
    }
    assert_eq!(
        at(&packets[1], "Topic Filter"),
        (Some(20), "\"hoge/#\"".into())
    );
}

#[test]
fn the_first_refused_packet_ends_the_stream_like_a_closed_connection() {
    // PINGREQ, PINGREQ with a flag (refused), PINGREQ never reached.
    let bytes = parse_hex("c0 00 c1 00 c0 00").unwrap();
    let packets = dissect(&bytes);
    assert_eq!(packets.len(), 2);
    assert!(matches!(packets[1].outcome, Outcome::Refused { at: 2, .. }));
    let text = render(&packets, bytes.len());
    assert!(
        text.contains("2 byte(s) from offset 4 on not taken apart"),
        "{text}"
    );
}

#[test]
fn input_that_ends_inside_a_packet_is_incomplete_not_malformed() {
    let packet = one(&parse_hex("30 0a 00 02").unwrap());
    match &packet.outcome {
        Outcome::Incomplete { message } => {
            assert_eq!(message, "connection closed after 2 of 10 body bytes")
        }
        other => panic!("expected Incomplete, got {other:?}"),
    }
    assert!(matches!(
        one(&[0x30, 0x80]).outcome,
        Outcome::Incomplete { .. }
    ));
    // The fields that did arrive are shown: here the Topic Name's length, not its text.
    let cut = one(&parse_hex("30 0a 00 05 61").unwrap());
    assert_eq!(at(&cut, "Topic Name length"), (Some(2), "5".into()));
    assert!(cut.rows.iter().all(|r| r.field != "Topic Name"));
}

// ---------------------------------------------------------------------------------------
// The command.

fn mqttd_decode(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mqttd runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_command_reads_arguments_standard_input_trace_lines_and_files() {
    let words: Vec<&str> = ISSUE_CONNECT.split(' ').collect();
    let (code, from_words, _) = mqttd_decode(&words, b"");
    assert_eq!(code, 0);
    assert!(from_words.starts_with("packet 1: CONNECT, 14 byte(s) from offset 0\n"));
    assert!(from_words.contains("\ndecoded: CONNECT client_id=\"\" protocol=MQTT/4"));
    assert!(from_words.contains("     9  02"), "{from_words}");

    let (code, from_one_word, _) = mqttd_decode(&[&ISSUE_CONNECT.replace(' ', "")], b"");
    assert_eq!((code, &from_one_word), (0, &from_words));

    let line = format!("2026-12-06T08:00:00.000Z TRACE [rx:a] client \"a\" <- [{ISSUE_CONNECT}]\n");
    let (code, from_stdin, _) = mqttd_decode(&[], line.as_bytes());
    assert_eq!((code, &from_stdin), (0, &from_words));

    let file = std::env::temp_dir().join(format!("mqttd-decode-{}.bin", std::process::id()));
    std::fs::write(&file, parse_hex(ISSUE_CONNECT).unwrap()).unwrap();
    let (code, from_file, _) = mqttd_decode(&["--file", file.to_str().unwrap()], b"");
    let _ = std::fs::remove_file(&file);
    assert_eq!((code, &from_file), (0, &from_words));
}

#[test]
fn the_command_exits_1_on_a_refused_packet_and_2_on_bad_input() {
    let (code, out, _) = mqttd_decode(&["10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00"], b"");
    assert_eq!(code, 1);
    assert!(out.contains(
        "refused at offset 9: malformed packet [MQTT-3.1.2-3]: reserved bit 0 of the Connect \
         Flags is set"
    ));
    let (code, _, err) = mqttd_decode(&["10 0g"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("'g' is not a hex digit"), "{err}");
    let (code, help, _) = mqttd_decode(&["--help"], b"");
    assert_eq!(code, 0);
    assert!(help.contains("mqttd decode --file FILE"));
}
