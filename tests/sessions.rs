//! Persistent sessions (§3.1.2.4, §4.1, §4.4): what survives a disconnect with Clean
//! Session 0, what Session Present says, offline queueing and its limit, and flows cut in
//! the middle and finished after a reconnect.

mod common;

use common::*;
use mqttd::Config;

#[test]
fn session_present_is_0_for_a_new_session_and_1_for_a_resumed_one_mqtt_3_2_2_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut first, present) = Raw::session(addr, "persist", false);
    assert!(!present, "[MQTT-3.2.2-3] no session existed");
    first.send(&DISCONNECT);
    assert_eq!(first.closed(), []);
    let (_second, present) = Raw::session(addr, "persist", false);
    assert!(present, "[MQTT-3.2.2-2] the session was kept");
}

#[test]
fn clean_session_1_discards_the_stored_session_mqtt_3_1_2_6() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut first, _) = Raw::session(addr, "wiped", false);
    first.subscribe_to("wiped/t", 1);
    first.send(&DISCONNECT);
    first.closed();
    let (mut clean, present) = Raw::session(addr, "wiped", true);
    assert!(
        !present,
        "[MQTT-3.2.2-1] Session Present is 0 with Clean Session 1"
    );
    // The old subscription went with the old session.
    let mut publisher = Raw::connected(addr, "wiped-pub");
    publisher.send(&publish("wiped/t", b"lost", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    clean.send(&PINGREQ);
    assert_eq!(clean.recv(), PINGRESP);
    clean.send(&DISCONNECT);
    clean.closed();
    // And a Clean Session 1 session is not kept either.
    let (_again, present) = Raw::session(addr, "wiped", false);
    assert!(!present);
}

#[test]
fn subscriptions_and_qos1_2_messages_wait_for_a_client_that_is_away_mqtt_3_1_2_5() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "away", false);
    sub.subscribe_to("away/#", 2);
    sub.send(&DISCONNECT);
    sub.closed();
    let mut publisher = Raw::connected(addr, "away-pub");
    publisher.send(&publish("away/0", b"qos0", 0, false, 0));
    publisher.send(&publish("away/1", b"qos1", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    publisher.send(&publish("away/2", b"qos2", 2, false, 2));
    assert_eq!(publisher.recv(), pubrec(2));
    let (mut back, present) = Raw::session(addr, "away", false);
    assert!(present);
    // QoS 0 was not kept (like Mosquitto's default); QoS 1 and 2 were, in order.
    let first = back.recv_publish();
    assert_eq!((first.topic.as_str(), first.qos), ("away/1", 1));
    back.send(&puback(first.id.unwrap()));
    let second = back.recv_publish();
    assert_eq!((second.topic.as_str(), second.qos), ("away/2", 2));
}

#[test]
fn the_offline_queue_is_bounded_and_counts_what_it_drops() {
    let broker = start_broker_with(Config {
        max_queued_messages: 5,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "bounded", false);
    sub.subscribe_to("bounded", 1);
    sub.send(&DISCONNECT);
    sub.closed();
    let mut publisher = Raw::connected(addr, "bounded-pub");
    for i in 1..=8u16 {
        publisher.send(&publish("bounded", &[i as u8], 1, false, i));
        assert_eq!(publisher.recv(), puback(i));
    }
    assert_eq!(broker.broker().stats().messages_dropped, 3);
    let (mut back, _) = Raw::session(addr, "bounded", false);
    for expected in 1..=5u8 {
        let got = back.recv_publish();
        assert_eq!(got.payload, [expected], "the oldest five are kept");
        back.send(&puback(got.id.unwrap()));
    }
    publisher.send(&publish("bounded", b"live", 1, false, 9));
    assert_eq!(publisher.recv(), puback(9));
    assert_eq!(back.recv_publish().payload, b"live");
}

#[test]
fn an_unacknowledged_qos1_message_is_resent_with_dup_after_reconnect_mqtt_4_4_0_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "cut-q1", false);
    sub.subscribe_to("cut/q1", 1);
    let mut publisher = Raw::connected(addr, "cut-q1-pub");
    publisher.send(&publish("cut/q1", b"m", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let original = sub.recv_publish();
    drop(sub); // gone without PUBACK
    let (mut back, present) = Raw::session(addr, "cut-q1", false);
    assert!(present);
    let again = back.recv_publish();
    // [MQTT-3.3.1-1] DUP is set, same identifier, same message.
    assert!(again.dup);
    assert_eq!(again.id, original.id);
    assert_eq!(again.payload, b"m");
    back.send(&puback(again.id.unwrap()));
    back.send(&DISCONNECT);
    back.closed();
    // Acknowledged now: a third connection gets nothing.
    let (mut third, _) = Raw::session(addr, "cut-q1", false);
    third.send(&PINGREQ);
    assert_eq!(third.recv(), PINGRESP);
}

#[test]
fn a_qos2_message_cut_after_publish_is_resent_as_publish_mqtt_4_4_0_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "cut-q2a", false);
    sub.subscribe_to("cut/q2a", 2);
    let mut publisher = Raw::connected(addr, "cut-q2a-pub");
    publisher.send(&publish("cut/q2a", b"m", 2, false, 1));
    assert_eq!(publisher.recv(), pubrec(1));
    let original = sub.recv_publish();
    drop(sub); // gone without PUBREC
    let (mut back, _) = Raw::session(addr, "cut-q2a", false);
    let again = back.recv_publish();
    assert_eq!((again.dup, again.id, again.qos), (true, original.id, 2));
    back.send(&pubrec(again.id.unwrap()));
    assert_eq!(back.recv(), pubrel(again.id.unwrap()));
    back.send(&pubcomp(again.id.unwrap()));
}

#[test]
fn a_qos2_message_cut_after_pubrec_is_resent_as_pubrel_only_mqtt_4_3_3_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "cut-q2b", false);
    sub.subscribe_to("cut/q2b", 2);
    let mut publisher = Raw::connected(addr, "cut-q2b-pub");
    publisher.send(&publish("cut/q2b", b"m", 2, false, 1));
    assert_eq!(publisher.recv(), pubrec(1));
    let id = sub.recv_publish().id.unwrap();
    sub.send(&pubrec(id));
    assert_eq!(sub.recv(), pubrel(id));
    drop(sub); // gone without PUBCOMP
    let (mut back, _) = Raw::session(addr, "cut-q2b", false);
    // The PUBLISH is never sent again once PUBREL has gone out: the client has the message.
    assert_eq!(back.recv(), pubrel(id));
    back.send(&pubcomp(id));
    back.send(&PINGREQ);
    assert_eq!(back.recv(), PINGRESP);
}

#[test]
fn a_publisher_cut_after_pubrec_or_pubrel_delivers_exactly_once_mqtt_4_3_3_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "once-sub");
    sub.subscribe_to("once/#", 2);
    // Cut after PUBREC: the publisher re-sends the PUBLISH with DUP on reconnect.
    let (mut publisher, _) = Raw::session(addr, "once-pub", false);
    publisher.send(&publish("once/a", b"a", 2, false, 10));
    assert_eq!(publisher.recv(), pubrec(10));
    drop(publisher);
    let (mut publisher, present) = Raw::session(addr, "once-pub", false);
    assert!(present);
    publisher.send(&publish("once/a", b"a", 2, true, 10));
    assert_eq!(publisher.recv(), pubrec(10));
    publisher.send(&pubrel(10));
    assert_eq!(publisher.recv(), pubcomp(10));
    // Cut after PUBREL: the publisher re-sends the PUBREL on reconnect.
    publisher.send(&publish("once/b", b"b", 2, false, 11));
    assert_eq!(publisher.recv(), pubrec(11));
    publisher.send(&pubrel(11));
    drop(publisher);
    let (mut publisher, _) = Raw::session(addr, "once-pub", false);
    publisher.send(&pubrel(11));
    assert_eq!(publisher.recv(), pubcomp(11));
    publisher.send(&publish("once/end", b"", 0, false, 0));
    // Each message reached the subscriber exactly once. PUBLISH and PUBREL packets may
    // interleave, so answer whatever comes until the end marker.
    let mut topics = Vec::new();
    loop {
        let packet = sub.recv();
        if packet[0] == 0x62 {
            sub.send(&pubcomp(u16::from_be_bytes([packet[2], packet[3]])));
            continue;
        }
        let got = parse_publish(&packet);
        if got.topic == "once/end" {
            break;
        }
        sub.send(&pubrec(got.id.unwrap()));
        topics.push(got.topic);
    }
    assert_eq!(topics, ["once/a", "once/b"]);
}

#[test]
fn takeover_hands_the_session_over_with_its_messages_in_flight_mqtt_3_1_4_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut old, _) = Raw::session(addr, "handover", false);
    old.subscribe_to("handover", 1);
    let mut publisher = Raw::connected(addr, "handover-pub");
    publisher.send(&publish("handover", b"in flight", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let original = old.recv_publish();
    // A new connection with the same id while the old one is still open.
    let (mut new, present) = Raw::session(addr, "handover", false);
    assert!(present);
    assert_eq!(old.closed(), []);
    let again = new.recv_publish();
    assert_eq!((again.dup, again.id), (true, original.id));
    assert_eq!(again.payload, b"in flight");
    new.send(&puback(again.id.unwrap()));
    // Messages published after the takeover reach the new connection.
    publisher.send(&publish("handover", b"after", 1, false, 2));
    assert_eq!(publisher.recv(), puback(2));
    assert_eq!(new.recv_publish().payload, b"after");
}

#[test]
fn a_real_client_with_clean_session_0_catches_up() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut options = rumqttc::MqttOptions::new("catch-up", "127.0.0.1", addr.port());
    options.set_clean_session(false);
    let (client, connection) = rumqttc::Client::new(options.clone(), 10);
    let mut sub = Client { client, connection };
    sub.wait_for("CONNACK", |e| match e {
        Event::Incoming(RPacket::ConnAck(ack)) => Some(ack.session_present),
        _ => None,
    });
    sub.subscribe("news/#", QoS::AtLeastOnce);
    sub.client.disconnect().unwrap();
    sub.wait_for("DISCONNECT", |e| {
        matches!(e, Event::Outgoing(Outgoing::Disconnect)).then_some(())
    });
    drop(sub);
    let mut publisher = Client::connect(addr, "news-pub");
    publisher.publish("news/today", QoS::AtLeastOnce, b"while you were away");
    let (client, connection) = rumqttc::Client::new(options, 10);
    let mut sub = Client { client, connection };
    let present = sub.wait_for("CONNACK", |e| match e {
        Event::Incoming(RPacket::ConnAck(ack)) => Some(ack.session_present),
        _ => None,
    });
    assert!(present);
    assert_eq!(&sub.next_message().payload[..], b"while you were away");
}

/// Each Client Identifier names its own session: what was kept for one is given back to
/// that one only.
#[test]
fn a_client_id_names_its_own_session_mqtt_3_1_3_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    for id in ["alpha", "beta"] {
        let (mut raw, _) = Raw::session(addr, id, false);
        raw.subscribe_to(&format!("own/{id}"), 1);
        raw.send(&DISCONNECT);
        raw.closed();
    }
    let mut publisher = Raw::connected(addr, "own-pub");
    publisher.send(&publish("own/alpha", b"for alpha", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    publisher.send(&publish("own/beta", b"for beta", 1, false, 2));
    assert_eq!(publisher.recv(), puback(2));
    for id in ["beta", "alpha"] {
        let (mut back, present) = Raw::session(addr, id, false);
        assert!(present, "{id}");
        let got = back.recv_publish();
        assert_eq!(got.payload, format!("for {id}").as_bytes());
        back.send(&puback(got.id.unwrap()));
        back.send(&PINGREQ);
        assert_eq!(back.recv(), PINGRESP, "{id} gets its own message only");
    }
}

/// The Clean Session processing happens only once the CONNECT has been found valid: a
/// malformed CONNECT with Clean Session 1, and one refused with 0x01, leave the stored
/// session as it was.
#[test]
fn an_invalid_connect_leaves_the_stored_session_alone_mqtt_3_1_4_3() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut keeper, _) = Raw::session(addr, "keeper", false);
    keeper.subscribe_to("keep/t", 1);
    keeper.send(&DISCONNECT);
    keeper.closed();
    let mut publisher = Raw::connected(addr, "keep-pub");
    publisher.send(&publish("keep/t", b"kept", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    // Clean Session 1 with the reserved flag set ([MQTT-3.1.2-3]): closed, no CONNACK.
    let mut malformed = Raw::tcp(addr);
    malformed.send(&connect_with(0x03, 0, "keeper"));
    assert_eq!(malformed.closed(), []);
    // Clean Session 1 at protocol level 5: refused with 0x01 ([MQTT-3.1.2-2]).
    let mut v5 = connect("keeper", 0);
    v5[8] = 5;
    let mut refused = Raw::tcp(addr);
    refused.send(&v5);
    assert_eq!(refused.closed(), [0x20, 0x02, 0x00, 0x01]);
    let (mut back, present) = Raw::session(addr, "keeper", false);
    assert!(present, "the session is still there");
    assert_eq!(back.recv_publish().payload, b"kept");
}

/// A stored session keeps its state for as long as it lasts, over any number of
/// connections: its subscription, and a message delivered but never acknowledged.
#[test]
fn a_session_keeps_its_state_over_several_connections_mqtt_4_1_0_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "lasting", false);
    sub.subscribe_to("lasting/t", 1);
    sub.send(&DISCONNECT);
    sub.closed();
    let mut publisher = Raw::connected(addr, "lasting-pub");
    publisher.send(&publish("lasting/t", b"first", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let (mut second, present) = Raw::session(addr, "lasting", false);
    assert!(present);
    let first = second.recv_publish();
    assert_eq!(first.payload, b"first");
    drop(second); // without PUBACK
    let (mut third, present) = Raw::session(addr, "lasting", false);
    assert!(present);
    let again = third.recv_publish();
    assert_eq!(
        (again.dup, again.id, &again.payload[..]),
        (true, first.id, &b"first"[..])
    );
    third.send(&puback(again.id.unwrap()));
    // The subscription made two connections ago still delivers.
    publisher.send(&publish("lasting/t", b"second", 1, false, 2));
    assert_eq!(publisher.recv(), puback(2));
    assert_eq!(third.recv_publish().payload, b"second");
}

/// A session lasts at least as long as its connection: `persistent_client_expiration`
/// ends a stored session whose client is away, never one whose client is connected, however
/// long it has been connected.
#[test]
fn a_connected_session_never_expires_mqtt_4_1_0_2() {
    let broker = start_broker_with(Config {
        persistent_client_expiration: Some(std::time::Duration::from_millis(100)),
        sys_interval: std::time::Duration::ZERO,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let (mut staying, _) = Raw::session(addr, "staying", false);
    staying.subscribe_to("stay/t", 1);
    let (mut leaving, _) = Raw::session(addr, "leaving", false);
    leaving.send(&DISCONNECT);
    leaving.closed();
    // The expiry that ends "leaving" has seen "staying" connected for longer than the limit.
    let deadline = std::time::Instant::now() + PATIENCE;
    while broker.broker().stats().clients_expired == 0 {
        assert!(std::time::Instant::now() < deadline, "nothing expired");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(broker.broker().stats().clients_expired, 1);
    let mut publisher = Raw::connected(addr, "stay-pub");
    publisher.send(&publish("stay/t", b"still here", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    assert_eq!(staying.recv_publish().payload, b"still here");
    // And the session is still registered under its id: a new connection takes it over.
    let (_successor, present) = Raw::session(addr, "staying", false);
    assert!(present, "the connected session was not ended");
}

/// A message is put into the session of every client with a matching subscription,
/// connected or away.
#[test]
fn a_message_goes_into_every_matching_session_connected_or_not_mqtt_4_5_0_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut away, _) = Raw::session(addr, "receipt-away", false);
    away.subscribe_to("receipt/+", 1);
    away.send(&DISCONNECT);
    away.closed();
    let mut here = Raw::connected(addr, "receipt-here");
    here.subscribe_to("receipt/#", 1);
    let mut publisher = Raw::connected(addr, "receipt-pub");
    publisher.send(&publish("receipt/t", b"for both", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    assert_eq!(here.recv_publish().payload, b"for both");
    let (mut back, _) = Raw::session(addr, "receipt-away", false);
    assert_eq!(back.recv_publish().payload, b"for both");
}
