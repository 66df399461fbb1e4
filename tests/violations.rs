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
