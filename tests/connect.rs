//! CONNECT and CONNACK over TCP (§3.1, §3.2): accepted, refused with a code, or closed.

mod common;

use std::time::Duration;

use common::*;
use mqttd::Config;

#[test]
fn a_real_client_connects_and_gets_connack_0_mqtt_3_1_4_4() {
    let broker = start_broker();
    let client = Client::connect(broker.local_addr(), "rumqttc-1");
    drop(client);
}

#[test]
fn connack_is_the_first_packet_and_accepts_with_session_present_0_mqtt_3_2_0_1_mqtt_3_2_2_1() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect("first", 0));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
}

#[test]
fn mqtt_3_1_clients_are_accepted() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    // Protocol Name "MQIsdp", level 3, Clean Session, Keep Alive 0, Client Identifier "old".
    let mut body = string(b"MQIsdp");
    body.extend([3, 0x02, 0, 0]);
    body.extend(string(b"old"));
    raw.send(&packet(0x10, &body));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
}

#[test]
fn an_unsupported_protocol_level_gets_connack_1_then_close_mqtt_3_1_2_2() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    // An MQTT 5 CONNECT: "MQTT" level 5, flags, Keep Alive, then a properties length of 0.
    let mut body = string(b"MQTT");
    body.extend([5, 0x02, 0, 60, 0]);
    body.extend(string(b"v5"));
    raw.send(&packet(0x10, &body));
    // CONNACK 0x01 with Session Present 0 ([MQTT-3.2.2-4]), then the close ([MQTT-3.2.2-5]).
    assert_eq!(raw.closed(), [0x20, 0x02, 0x00, 0x01]);
    assert_still_serving(broker.local_addr());
}

#[test]
fn an_unknown_protocol_name_is_closed_without_connack_mqtt_3_1_2_1() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    let mut body = string(b"HTTP");
    body.extend([4, 0x02, 0, 60]);
    body.extend(string(b"x"));
    raw.send(&packet(0x10, &body));
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

/// With Clean Session 0 and no session stored for the Client Identifier, CONNACK says
/// Session Present 0, return code 0.
#[test]
fn a_first_clean_session_0_connect_gets_session_present_0_mqtt_3_2_2_3() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect_with(0x00, 0, "first-time"));
    assert_eq!(raw.recv(), [0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn an_empty_client_id_with_clean_session_is_accepted_mqtt_3_1_3_6() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect("", 0));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    // It is a real client: it can subscribe and receive.
    raw.send(&subscribe(3, &[("anon/t", 0)]));
    assert_eq!(raw.recv(), [0x90, 0x03, 0x00, 0x03, 0x00]);
}

#[test]
fn an_empty_client_id_without_clean_session_gets_connack_2_mqtt_3_1_3_8() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect_with(0x00, 0, ""));
    assert_eq!(raw.closed(), [0x20, 0x02, 0x00, 0x02]);
    assert_still_serving(broker.local_addr());
}

#[test]
fn a_connect_with_the_reserved_flag_is_closed_without_connack_mqtt_3_1_2_3() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect_with(0x03, 0, "bad-flags"));
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

#[test]
fn a_password_without_user_name_is_closed_without_connack_mqtt_3_1_2_22() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    let mut body = string(b"MQTT");
    body.extend([4, 0x42, 0, 0]); // Password Flag + Clean Session
    body.extend(string(b"pw"));
    body.extend(string(b"secret"));
    raw.send(&packet(0x10, &body));
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

#[test]
fn a_first_packet_other_than_connect_is_closed_mqtt_3_1_0_1() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&PINGREQ);
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

/// An HTTP request sent to the MQTT port: its `G` (0x47) reads as a PUBACK header and its
/// `E` as a Remaining Length of 69, more than the 34 bytes that follow. Refused on the first
/// byte, the connection closes at once; waiting for the 69 bytes would keep it open until
/// the (here very long) connect timeout, and `closed` would give up first.
#[test]
fn a_first_byte_that_cannot_start_a_connect_is_refused_at_once_mqtt_3_1_0_1() {
    let broker = start_broker_with(Config {
        connect_timeout: Duration::from_secs(3600),
        ..Config::default()
    });
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

#[test]
fn a_second_connect_is_a_protocol_violation_mqtt_3_1_0_2() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "twice");
    raw.send(&connect("twice", 0));
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

#[test]
fn packets_sent_right_after_connect_are_not_lost() {
    // Clients need not wait for CONNACK (§3.1.4): CONNECT and SUBSCRIBE in one write.
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    let mut both = connect("eager", 0);
    both.extend(subscribe(7, &[("eager/t", 1)]));
    both.extend(PINGREQ);
    raw.send(&both);
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    assert_eq!(raw.recv(), [0x90, 0x03, 0x00, 0x07, 0x01]);
    assert_eq!(raw.recv(), PINGRESP);
}

#[test]
fn a_connection_that_never_sends_connect_is_closed() {
    let broker = start_broker_with(Config {
        connect_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    let mut raw = Raw::tcp(broker.local_addr());
    // Half a CONNECT, then silence: the deadline covers the whole packet.
    raw.send(&connect("slow", 0)[..5]);
    assert_eq!(raw.closed(), []);
    assert_still_serving(broker.local_addr());
}

#[test]
fn a_second_connection_with_the_same_client_id_takes_over_mqtt_3_1_4_2() {
    let broker = start_broker();
    let mut old = Raw::subscribed(broker.local_addr(), "same-id", &["takeover/t"]);
    let mut new = Raw::connected(broker.local_addr(), "same-id");
    assert_eq!(old.closed(), []);
    // The new connection works, and the old one's subscription went with it.
    new.send(&subscribe(2, &[("takeover/t", 0)]));
    assert_eq!(new.recv()[0], 0x90);
    let mut publisher = Raw::connected(broker.local_addr(), "takeover-pub");
    publisher.send(&publish("takeover/t", b"hi", 0, false, 0));
    assert_eq!(new.recv(), publish("takeover/t", b"hi", 0, false, 0));
    assert_eq!(broker.broker().client_count(), 2);
}

#[test]
fn silence_for_one_and_a_half_keep_alive_closes_the_connection_mqtt_3_1_2_24() {
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect("sleepy", 1)); // Keep Alive 1 s: closed after 1.5 s of silence
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    assert_eq!(raw.closed(), []);
}

#[test]
fn pingreq_is_answered_with_pingresp_mqtt_3_12_4_1() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "pinger");
    for _ in 0..3 {
        raw.send(&PINGREQ);
        assert_eq!(raw.recv(), PINGRESP);
    }
}

#[test]
fn disconnect_closes_the_connection_and_frees_the_client_id() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "leaver");
    raw.send(&DISCONNECT);
    assert_eq!(raw.closed(), []);
    // The same id connects again as a new client, not a takeover.
    Raw::connected(broker.local_addr(), "leaver");
}

#[test]
fn stopping_the_broker_closes_every_connection() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut a = Raw::connected(addr, "a");
    let mut b = Raw::tcp(addr); // still in the handshake
    broker.stop();
    assert_eq!(a.closed(), []);
    assert_eq!(b.closed(), []);
}

#[test]
fn answers_queued_before_a_disconnect_are_still_sent() {
    // CONNECT, QoS 1 PUBLISH, PINGREQ and DISCONNECT in one write: every answer goes out
    // before the broker closes the connection.
    let broker = start_broker();
    let mut raw = Raw::tcp(broker.local_addr());
    let mut all = connect("hasty", 0);
    all.extend(publish("hasty/t", b"x", 1, false, 7));
    all.extend(PINGREQ);
    all.extend(DISCONNECT);
    raw.send(&all);
    let mut expected = CONNACK_ACCEPTED.to_vec();
    expected.extend(puback(7));
    expected.extend(PINGRESP);
    assert_eq!(raw.closed(), expected);
}
