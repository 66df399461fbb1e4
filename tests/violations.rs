//! Malformed packets and protocol violations (§4.8, and the "Server checklist for bad input"
//! of the requirements index): each closes the offending connection without an answer, and
//! the broker goes on serving everyone else.

mod common;

use common::*;

/// Connects a client, sends `bad`, and checks that the broker closes the connection without
/// sending anything, then that other clients are still served.
fn closes_without_reply(client_id: &str, bad: &[u8]) {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut raw = Raw::connected(addr, client_id);
    raw.send(bad);
    assert_eq!(
        raw.closed(),
        [],
        "{client_id}: nothing may be sent before the close"
    );
    assert_still_serving(addr);
}

#[test]
fn reserved_packet_type_0_closes() {
    closes_without_reply("type-0", &[0x00, 0x00]);
}

#[test]
fn reserved_packet_type_15_closes() {
    closes_without_reply("type-15", &[0xF0, 0x00]);
}

#[test]
fn subscribe_with_reserved_flags_0000_closes_mqtt_3_8_1_1() {
    let mut bad = subscribe(1, &[("a", 0)]);
    bad[0] = 0x80;
    closes_without_reply("sub-flags", &bad);
}

#[test]
fn unsubscribe_with_reserved_flags_0000_closes_mqtt_3_10_1_1() {
    let mut bad = unsubscribe(1, &["a"]);
    bad[0] = 0xA0;
    closes_without_reply("unsub-flags", &bad);
}

#[test]
fn pubrel_with_flags_0000_closes_mqtt_3_6_1_1() {
    closes_without_reply("pubrel-flags", &[0x60, 0x02, 0x00, 0x01]);
}

#[test]
fn pingreq_with_a_flag_closes_mqtt_2_2_2_2() {
    closes_without_reply("ping-flags", &[0xC1, 0x00]);
}

#[test]
fn disconnect_with_a_flag_closes_mqtt_3_14_1_1() {
    closes_without_reply("disconnect-flags", &[0xE1, 0x00]);
}

#[test]
fn a_five_byte_remaining_length_closes() {
    closes_without_reply("long-length", &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
}

#[test]
fn puback_with_remaining_length_3_closes() {
    closes_without_reply("long-puback", &[0x40, 0x03, 0x00, 0x01, 0x00]);
}

#[test]
fn a_string_running_past_the_packet_closes() {
    // PUBLISH whose Topic Name claims 10 bytes in a 4-byte body.
    closes_without_reply("short-topic", &[0x30, 0x04, 0x00, 0x0A, b'a', b'b']);
}

#[test]
fn publish_with_qos_3_closes_mqtt_3_3_1_4() {
    let mut bad = publish("t", b"x", 1, false, 1);
    bad[0] |= 0x06;
    closes_without_reply("qos3", &bad);
}

#[test]
fn publish_with_dup_on_qos_0_closes_mqtt_3_3_1_2() {
    closes_without_reply("dup0", &publish("t", b"x", 0, true, 0));
}

#[test]
fn publish_with_a_wildcard_topic_closes_mqtt_3_3_2_2() {
    closes_without_reply("wild-pub", &publish("a/+", b"x", 0, false, 0));
}

#[test]
fn publish_with_an_empty_topic_closes_mqtt_4_7_3_1() {
    closes_without_reply("empty-topic", &publish("", b"x", 0, false, 0));
}

#[test]
fn publish_with_packet_identifier_0_closes_mqtt_2_3_1_1() {
    closes_without_reply("zero-id", &publish("t", b"x", 1, false, 0));
}

#[test]
fn a_topic_with_invalid_utf8_closes_mqtt_1_5_3_1() {
    // Topic "a" followed by an encoded surrogate, 0xED 0xA0 0x80.
    let body = [0x00, 0x04, b'a', 0xED, 0xA0, 0x80];
    closes_without_reply("bad-utf8", &packet(0x30, &body));
}

#[test]
fn a_topic_with_a_null_character_closes_mqtt_1_5_3_2() {
    closes_without_reply("nul", &publish("a\0b", b"x", 0, false, 0));
}

#[test]
fn subscribe_without_filters_closes_mqtt_3_8_3_3() {
    closes_without_reply("no-filters", &subscribe(1, &[]));
}

#[test]
fn subscribe_with_reserved_qos_bits_closes_mqtt_3_8_3_4() {
    closes_without_reply("qos-bits", &subscribe(1, &[("a", 0x04)]));
}

#[test]
fn subscribe_with_an_invalid_filter_closes_mqtt_4_7_1_2() {
    closes_without_reply("bad-filter", &subscribe(1, &[("a/#/b", 0)]));
}

#[test]
fn subscribe_with_a_misplaced_plus_closes_mqtt_4_7_1_3() {
    closes_without_reply("bad-plus", &subscribe(1, &[("a+", 0)]));
}

#[test]
fn unsubscribe_without_filters_closes_mqtt_3_10_3_2() {
    closes_without_reply("no-unsub-filters", &unsubscribe(1, &[]));
}

#[test]
fn a_server_only_packet_from_a_client_closes() {
    closes_without_reply("sends-connack", &CONNACK_ACCEPTED);
    closes_without_reply("sends-suback", &[0x90, 0x03, 0x00, 0x01, 0x00]);
    closes_without_reply("sends-pingresp", &PINGRESP);
}

#[test]
fn a_filter_deeper_than_the_limit_is_refused_with_0x80_and_the_connection_stays() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "deep");
    let deep = vec!["x"; 201].join("/");
    raw.send(&subscribe(6, &[(&deep, 0), ("shallow", 0)]));
    assert_eq!(raw.recv(), [0x90, 0x04, 0x00, 0x06, 0x80, 0x00]);
    raw.send(&PINGREQ);
    assert_eq!(raw.recv(), PINGRESP);
}

#[test]
fn a_client_closing_mid_packet_harms_nobody() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut raw = Raw::connected(addr, "half");
    raw.send(&publish("t", &[0u8; 100], 0, false, 0)[..50]);
    drop(raw);
    assert_still_serving(addr);
}

#[test]
fn a_huge_declared_length_with_no_body_costs_nothing_and_harms_nobody() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut raw = Raw::connected(addr, "liar");
    // Claims 268 435 455 bytes, sends 3 and goes quiet.
    raw.send(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, b't']);
    assert_still_serving(addr);
    drop(raw);
}

// ---------------------------------------------------------------------------------------
// CONNECT that breaks a rule: closed without a CONNACK ([MQTT-3.1.4-1]), or refused with a
// return code where the standard gives one; either way nobody else notices.
// ---------------------------------------------------------------------------------------

/// Sends `bytes` as the first thing on a new connection and returns what the broker sent
/// before closing; then checks that other clients are still served.
fn first_packet_answer(bytes: &[u8]) -> Vec<u8> {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut raw = Raw::tcp(addr);
    raw.send(bytes);
    let answer = raw.closed();
    assert_still_serving(addr);
    answer
}

/// A CONNECT body: name "MQTT", level 4, `flags`, Keep Alive 60, then `payload`.
fn connect_body(flags: u8, payload: &[&[u8]]) -> Vec<u8> {
    let mut body = string(b"MQTT");
    body.extend([4, flags, 0, 60]);
    for field in payload {
        body.extend(string(field));
    }
    packet(0x10, &body)
}

#[test]
fn a_client_id_with_invalid_utf8_is_closed_without_connack_mqtt_1_5_3_1() {
    assert_eq!(
        first_packet_answer(&connect_body(0x02, &[&[b'a', 0xFF]])),
        []
    );
}

#[test]
fn a_client_id_with_a_null_character_is_closed_without_connack_mqtt_1_5_3_2() {
    assert_eq!(first_packet_answer(&connect_body(0x02, &[b"a\0b"])), []);
}

#[test]
fn will_qos_without_will_flag_is_closed_without_connack_mqtt_3_1_2_13() {
    assert_eq!(first_packet_answer(&connect_body(0x02 | 0x08, &[b"x"])), []);
}

#[test]
fn will_retain_without_will_flag_is_closed_without_connack_mqtt_3_1_2_15() {
    assert_eq!(first_packet_answer(&connect_body(0x02 | 0x20, &[b"x"])), []);
}

#[test]
fn will_qos_3_is_closed_without_connack_mqtt_3_1_2_14() {
    let bytes = connect_body(0x02 | 0x04 | 0x18, &[b"x", b"will/t", b"m"]);
    assert_eq!(first_packet_answer(&bytes), []);
}

#[test]
fn a_will_topic_with_a_wildcard_is_closed_without_connack() {
    let bytes = connect_body(0x02 | 0x04, &[b"x", b"will/#", b"m"]);
    assert_eq!(first_packet_answer(&bytes), []);
}

#[test]
fn a_user_name_flag_without_a_user_name_is_closed_without_connack_mqtt_3_1_2_19() {
    assert_eq!(first_packet_answer(&connect_body(0x02 | 0x80, &[b"x"])), []);
}

#[test]
fn a_user_name_without_its_flag_is_closed_without_connack_mqtt_3_1_2_18() {
    assert_eq!(
        first_packet_answer(&connect_body(0x02, &[b"x", b"user"])),
        []
    );
}

#[test]
fn a_connect_with_flags_in_its_fixed_header_is_closed_without_connack_mqtt_2_2_2_2() {
    let mut bytes = connect_body(0x02, &[b"x"]);
    bytes[0] = 0x11;
    assert_eq!(first_packet_answer(&bytes), []);
}

#[test]
fn nothing_sent_after_a_refused_connect_is_processed_mqtt_3_1_4_5() {
    // An MQTT 5 CONNECT followed at once by a SUBSCRIBE and a PINGREQ in the same write:
    // the broker answers the CONNECT with 0x01 and reads no further.
    let mut bytes = string(b"MQTT");
    bytes.extend([5, 0x02, 0, 60, 0]);
    bytes.extend(string(b"v5"));
    let mut all = packet(0x10, &bytes);
    all.extend(subscribe(1, &[("a", 0)]));
    all.extend(PINGREQ);
    assert_eq!(first_packet_answer(&all), [0x20, 0x02, 0x00, 0x01]);
}

#[test]
fn an_empty_client_id_with_clean_session_0_is_refused_with_0x02_mqtt_3_1_3_8() {
    assert_eq!(
        first_packet_answer(&connect_body(0x00, &[b""])),
        [0x20, 0x02, 0x00, 0x02]
    );
}

#[test]
fn a_packet_over_the_size_limit_closes_before_its_body_is_read() {
    let broker = start_broker_with(mqttd::Config {
        max_packet_size: 100,
        ..mqttd::Config::default()
    });
    let addr = broker.local_addr();
    let mut raw = Raw::connected(addr, "big");
    raw.send(&publish("t", &[0u8; 90], 0, false, 0)); // fits: body is 93 bytes
    raw.send(&PINGREQ);
    assert_eq!(raw.recv(), PINGRESP);
    // Only the fixed header of this one is sent: the broker must not wait for the body.
    raw.send(&publish("t", &[0u8; 200], 0, false, 0)[..3]);
    assert_eq!(raw.closed(), []);
    assert_still_serving(addr);
}

#[test]
fn connections_over_the_limit_are_closed_at_once_and_the_rest_carry_on() {
    let broker = start_broker_with(mqttd::Config {
        max_connections: 3,
        ..mqttd::Config::default()
    });
    let addr = broker.local_addr();
    let mut a = Raw::connected(addr, "a");
    let b = Raw::connected(addr, "b");
    let _c = Raw::connected(addr, "c");
    let mut extra = Raw::tcp(addr);
    extra.send(&connect("extra", 0));
    assert_eq!(extra.closed(), [], "refused without a word");
    a.send(&PINGREQ);
    assert_eq!(a.recv(), PINGRESP, "the others are unaffected");
    // A slot frees up when a client leaves.
    let mut b = b;
    b.send(&DISCONNECT);
    b.closed();
    wait_until(|| broker.broker().connection_count() < 3);
    Raw::connected(addr, "late");
}

/// Polls `condition` every few milliseconds until it holds, failing after [`PATIENCE`].
fn wait_until(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn unsubscribe_with_an_invalid_filter_closes_mqtt_4_7_1_3() {
    closes_without_reply("bad-unsub-filter", &unsubscribe(1, &["a+b"]));
}

#[test]
fn a_topic_name_that_is_not_utf8_closes_mqtt_3_3_2_1() {
    // Topic "a" then a lone continuation byte 0x80: not a UTF-8 string.
    let body = [0x00, 0x02, b'a', 0x80];
    closes_without_reply("topic-not-utf8", &packet(0x30, &body));
}

#[test]
fn a_topic_name_with_a_multi_level_wildcard_closes_mqtt_4_7_1_1() {
    closes_without_reply("hash-in-name", &publish("a/#", b"x", 1, false, 1));
}

#[test]
fn a_subscribe_filter_that_is_not_utf8_closes_mqtt_3_8_3_1() {
    // Packet Identifier 1, the filter "a" + 0xFF, Requested QoS 0.
    let body = [0x00, 0x01, 0x00, 0x02, b'a', 0xFF, 0x00];
    closes_without_reply("filter-not-utf8", &packet(0x82, &body));
}

#[test]
fn an_unsubscribe_filter_that_is_not_utf8_closes_mqtt_3_10_3_1() {
    // Packet Identifier 1, the filter "a" + 0xFF.
    let body = [0x00, 0x01, 0x00, 0x02, b'a', 0xFF];
    closes_without_reply("unsub-not-utf8", &packet(0xA2, &body));
}

#[test]
fn a_subscribe_filter_with_a_null_character_closes_mqtt_4_7_3_2() {
    closes_without_reply("nul-filter", &subscribe(1, &[("a/\0", 0)]));
}

#[test]
fn a_will_flag_without_will_topic_and_message_is_closed_without_connack_mqtt_3_1_2_9() {
    // Will Flag 1, but the payload ends after the Client Identifier.
    assert_eq!(first_packet_answer(&connect_body(0x02 | 0x04, &[b"x"])), []);
}

#[test]
fn a_password_without_its_flag_is_closed_without_connack_mqtt_3_1_2_20() {
    // User Name Flag 1, Password Flag 0, and a password after the user name.
    let bytes = connect_body(0x02 | 0x80, &[b"x", b"user", b"secret"]);
    assert_eq!(first_packet_answer(&bytes), []);
}

#[test]
fn a_password_flag_without_a_password_is_closed_without_connack_mqtt_3_1_2_21() {
    // User Name Flag and Password Flag 1, but only the user name follows.
    let bytes = connect_body(0x02 | 0x80 | 0x40, &[b"x", b"user"]);
    assert_eq!(first_packet_answer(&bytes), []);
}

#[test]
fn a_connect_without_a_client_id_is_closed_without_connack_mqtt_3_1_3_3() {
    // The variable header ends the packet: no payload, so no Client Identifier.
    assert_eq!(first_packet_answer(&connect_body(0x02, &[])), []);
}

#[test]
fn a_will_topic_that_is_not_utf8_is_closed_without_connack_mqtt_3_1_3_10() {
    let bytes = connect_body(0x02 | 0x04, &[b"x", &[b'w', 0xFF], b"m"]);
    assert_eq!(first_packet_answer(&bytes), []);
}

#[test]
fn a_user_name_that_is_not_utf8_is_closed_without_connack_mqtt_3_1_3_11() {
    let bytes = connect_body(0x02 | 0x80, &[b"x", &[b'u', 0xFF]]);
    assert_eq!(first_packet_answer(&bytes), []);
}
