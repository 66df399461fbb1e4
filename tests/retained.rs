//! Retained messages (§3.3.1.3): set, replace, delete, and delivery to new subscriptions.

mod common;

use common::*;

/// Publishes a retained message from a fresh client and waits until it is processed.
fn retain(addr: std::net::SocketAddr, topic: &str, payload: &[u8], qos: u8) {
    let mut publisher = Raw::connected(addr, "retainer");
    let mut packet = publish(topic, payload, qos, false, 1);
    packet[0] |= 0x01; // RETAIN
    publisher.send(&packet);
    match qos {
        0 => {
            publisher.send(&PINGREQ); // answered only after the PUBLISH was handled
            assert_eq!(publisher.recv(), PINGRESP);
        }
        1 => assert_eq!(publisher.recv(), puback(1)),
        _ => assert_eq!(publisher.recv(), pubrec(1)),
    }
    publisher.send(&DISCONNECT);
    publisher.closed();
}

#[test]
fn a_new_subscription_receives_the_retained_message_with_retain_1_mqtt_3_3_1_6_mqtt_3_3_1_8() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "status/door", b"open", 1);
    let mut sub = Raw::connected(addr, "late");
    sub.send(&subscribe(1, &[("status/door", 1)]));
    assert_eq!(
        sub.recv(),
        [0x90, 0x03, 0x00, 0x01, 0x01],
        "SUBACK comes first"
    );
    let got = sub.recv_publish();
    assert!(got.retain);
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.qos),
        ("status/door", &b"open"[..], 1)
    );
}

#[test]
fn a_retained_message_is_replaced_by_the_next_one_mqtt_3_3_1_5() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "temp", b"20", 0);
    retain(addr, "temp", b"21", 0);
    let mut sub = Raw::connected(addr, "reader");
    sub.subscribe_to("temp", 0);
    assert_eq!(sub.recv_publish().payload, b"21");
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP, "only the latest is kept");
}

#[test]
fn an_empty_retained_message_deletes_and_is_still_forwarded_mqtt_3_3_1_10() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "gone", b"here", 0);
    let mut current = Raw::connected(addr, "current");
    current.subscribe_to("gone", 0);
    assert_eq!(current.recv_publish().payload, b"here");
    retain(addr, "gone", b"", 0);
    // The existing subscriber sees the empty message, with RETAIN 0 ([MQTT-3.3.1-9]).
    let forwarded = current.recv_publish();
    assert_eq!((forwarded.retain, forwarded.payload.len()), (false, 0));
    assert_eq!(broker.broker().retained_count(), 0, "[MQTT-3.3.1-11]");
    let mut late = Raw::connected(addr, "late");
    late.subscribe_to("gone", 0);
    late.send(&PINGREQ);
    assert_eq!(late.recv(), PINGRESP, "nothing retained any more");
}

#[test]
fn existing_subscribers_get_retained_publishes_with_retain_0_mqtt_3_3_1_9() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "early");
    sub.subscribe_to("live", 0);
    retain(addr, "live", b"x", 0);
    assert!(!sub.recv_publish().retain);
}

#[test]
fn a_wildcard_subscription_receives_every_matching_retained_message() {
    let broker = start_broker();
    let addr = broker.local_addr();
    for topic in [
        "home/kitchen/temp",
        "home/hall/temp",
        "home/hall/light",
        "office/temp",
    ] {
        retain(addr, topic, topic.as_bytes(), 0);
    }
    retain(addr, "$SYS/fake", b"hidden", 0);
    let mut sub = Raw::connected(addr, "wild");
    sub.send(&subscribe(1, &[("home/+/temp", 0), ("#", 0)]));
    assert_eq!(sub.recv()[0], 0x90);
    let mut topics = Vec::new();
    // 2 for home/+/temp, then 4 for '#' (which skips $SYS, [MQTT-4.7.2-1]).
    for _ in 0..6 {
        let got = sub.recv_publish();
        assert!(got.retain);
        topics.push(got.topic);
    }
    topics.sort();
    assert_eq!(
        topics,
        [
            "home/hall/light",
            "home/hall/temp",
            "home/hall/temp",
            "home/kitchen/temp",
            "home/kitchen/temp",
            "office/temp"
        ]
    );
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP);
}

#[test]
fn retained_qos_is_capped_by_the_granted_qos_mqtt_3_8_4_6() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "capped", b"2", 2);
    let mut sub = Raw::connected(addr, "cap");
    sub.subscribe_to("capped", 1);
    assert_eq!(sub.recv_publish().qos, 1);
}

#[test]
fn subscribing_again_sends_the_retained_messages_again_mqtt_3_8_4_3() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "again", b"r", 0);
    let mut sub = Raw::connected(addr, "twice");
    sub.subscribe_to("again", 0);
    assert_eq!(sub.recv_publish().payload, b"r");
    sub.subscribe_to("again", 0);
    assert_eq!(sub.recv_publish().payload, b"r");
}

#[test]
fn retained_messages_outlive_the_sessions_that_sent_them_mqtt_3_1_2_7() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "durable", b"d", 1); // its publisher has disconnected (Clean Session 1)
    let mut sub = Raw::connected(addr, "later");
    sub.subscribe_to("durable", 1);
    assert_eq!(sub.recv_publish().payload, b"d");
}

#[test]
fn a_new_subscriber_never_ends_with_an_older_retained_value_than_it_saw_live() {
    // Whatever the interleaving of SUBSCRIBE and PUBLISH, the last message the subscriber
    // sees on a topic is the newest one: retained messages are looked up just before they
    // are sent, so they are never older than a live message already sent.
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "race", &0u32.to_be_bytes(), 0);
    let mut publisher = Raw::connected(addr, "racer");
    for round in 1..=50u32 {
        let mut sub = Raw::connected(addr, "racing-sub");
        sub.subscribe_to("race-end", 0);
        // Subscribe and publish at (nearly) the same moment, from two clients.
        sub.send(&subscribe(1, &[("race", 0)]));
        let mut retained = publish("race", &round.to_be_bytes(), 0, false, 0);
        retained[0] |= 0x01;
        publisher.send(&retained);
        publisher.send(&PINGREQ);
        assert_eq!(publisher.recv(), PINGRESP);
        // A marker after it (same publisher, so behind it in every queue), then a PINGREQ
        // from the subscriber (behind its SUBACK and retained messages).
        publisher.send(&publish("race-end", b"", 0, false, 0));
        publisher.send(&PINGREQ);
        assert_eq!(publisher.recv(), PINGRESP);
        sub.send(&PINGREQ);
        let (mut last, mut marker, mut pong) = (None, false, false);
        while !(marker && pong) {
            let packet = sub.recv();
            match packet[0] >> 4 {
                9 => {}            // SUBACK
                13 => pong = true, // PINGRESP
                _ => {
                    let got = parse_publish(&packet);
                    if got.topic == "race-end" {
                        marker = true;
                    } else {
                        last = Some(got.payload);
                    }
                }
            }
        }
        assert_eq!(last, Some(round.to_be_bytes().to_vec()), "round {round}");
        sub.send(&DISCONNECT);
        sub.closed();
    }
}

#[test]
fn retained_messages_waiting_for_a_full_window_are_bounded_like_the_queue() {
    let broker = start_broker_with(mqttd::Config {
        max_inflight_messages: 1,
        max_queued_messages: 5,
        ..mqttd::Config::default()
    });
    let addr = broker.local_addr();
    for i in 0..20 {
        retain(addr, &format!("big/{i}"), b"r", 1);
    }
    let mut sub = Raw::connected(addr, "hoarder");
    sub.subscribe_to("fill", 1);
    let mut publisher = Raw::connected(addr, "filler");
    publisher.send(&publish("fill", b"f", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let held = sub.recv_publish(); // in flight, not acknowledged: the window is full
    sub.subscribe_to("big/#", 1);
    sub.send(&PINGREQ);
    assert_eq!(
        sub.recv(),
        PINGRESP,
        "nothing can be sent while the window is full"
    );
    assert_eq!(
        broker.broker().stats().messages_dropped,
        15,
        "20 retained, 5 may wait"
    );
    sub.send(&puback(held.id.unwrap()));
    for _ in 0..5 {
        let got = sub.recv_publish();
        assert!(got.retain);
        sub.send(&puback(got.id.unwrap()));
    }
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP);
}

/// A QoS 0 PUBLISH with RETAIN replaces whatever was retained on its topic, here a QoS 1
/// message: a new subscription gets the QoS 0 one, and only it.
#[test]
fn a_retained_qos0_message_replaces_the_one_before_mqtt_3_3_1_7() {
    let broker = start_broker();
    let addr = broker.local_addr();
    retain(addr, "gauge", b"old", 1);
    retain(addr, "gauge", b"new", 0);
    let mut sub = Raw::connected(addr, "gauge-reader");
    sub.subscribe_to("gauge", 1);
    let got = sub.recv_publish();
    assert_eq!(
        (got.retain, got.qos, &got.payload[..]),
        (true, 0, &b"new"[..])
    );
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP, "the QoS 1 message is gone");
}
