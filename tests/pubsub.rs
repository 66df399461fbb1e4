//! SUBSCRIBE, UNSUBSCRIBE and PUBLISH routing (§3.3, §3.8, §3.10, §4.7), mostly at QoS 0;
//! the QoS 1 and 2 flows in detail are in `tests/qos.rs`.
//!
//! To prove that something did *not* arrive without sleeping, the tests publish a marker
//! afterwards on a topic the subscriber also holds: messages from one publisher arrive in
//! order, so if the next packet is the marker, nothing came before it.

mod common;

use common::*;

#[test]
fn mosquitto_style_wildcard_subscriber_receives_a_publish() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "sub");
    assert_eq!(
        sub.subscribe("hoge/#", QoS::AtMostOnce),
        [rumqttc::SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
    let mut publisher = Client::connect(addr, "pub");
    publisher.publish("hoge/fuga", QoS::AtMostOnce, b"piyo");
    let message = sub.next_message();
    assert_eq!(message.topic, "hoge/fuga");
    assert_eq!(&message.payload[..], b"piyo");
    assert_eq!(message.qos, QoS::AtMostOnce);
    assert!(!message.retain);
}

#[test]
fn suback_grants_the_requested_qos_mqtt_3_8_4_5() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "greedy");
    raw.send(&subscribe(9, &[("a", 0), ("b", 1), ("c", 2)]));
    // [MQTT-3.8.4-5] one code per filter, [MQTT-3.9.3-1] in order, [MQTT-3.8.4-2] same id.
    assert_eq!(raw.recv(), [0x90, 0x05, 0x00, 0x09, 0x00, 0x01, 0x02]);
}

#[test]
fn a_qos1_publish_is_acknowledged_and_delivered_at_qos_1_mqtt_4_3_2_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "sub1");
    sub.subscribe("q/1", QoS::AtLeastOnce);
    let mut publisher = Client::connect(addr, "pub1");
    publisher.publish("q/1", QoS::AtLeastOnce, b"one"); // waits for the PUBACK
    let message = sub.next_message();
    assert_eq!(&message.payload[..], b"one");
    assert_eq!(message.qos, QoS::AtLeastOnce);
}

#[test]
fn a_qos2_publish_completes_its_handshake_and_is_delivered_mqtt_4_3_3_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "sub2");
    sub.subscribe("q/2", QoS::ExactlyOnce);
    let mut publisher = Client::connect(addr, "pub2");
    publisher.publish("q/2", QoS::ExactlyOnce, b"two"); // waits for the PUBCOMP
    let message = sub.next_message();
    assert_eq!(&message.payload[..], b"two");
    assert_eq!(message.qos, QoS::ExactlyOnce);
}

#[test]
fn a_resent_qos2_publish_is_not_delivered_twice_mqtt_4_3_3_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "once-sub", &["exactly/#"]);
    let mut publisher = Raw::connected(addr, "once-pub");
    publisher.send(&publish("exactly/once", b"m", 2, false, 42));
    assert_eq!(publisher.recv(), [0x50, 0x02, 0x00, 42]); // PUBREC
    publisher.send(&publish("exactly/once", b"m", 2, true, 42)); // re-send with DUP
    assert_eq!(publisher.recv(), [0x50, 0x02, 0x00, 42]); // PUBREC again
    publisher.send(&[0x62, 0x02, 0x00, 42]); // PUBREL
    assert_eq!(publisher.recv(), [0x70, 0x02, 0x00, 42]); // PUBCOMP
    publisher.send(&publish("exactly/marker", b"end", 0, false, 0));
    assert_eq!(sub.recv(), publish("exactly/once", b"m", 0, false, 0));
    assert_eq!(sub.recv(), publish("exactly/marker", b"end", 0, false, 0));
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_mqtt_3_3_5_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "overlap", &["o/a", "o/+", "o/#", "#"]);
    let mut publisher = Raw::connected(addr, "overlap-pub");
    publisher.send(&publish("o/a", b"1", 0, false, 0));
    publisher.send(&publish("marker", b"2", 0, false, 0));
    assert_eq!(sub.recv(), publish("o/a", b"1", 0, false, 0));
    assert_eq!(sub.recv(), publish("marker", b"2", 0, false, 0));
}

#[test]
fn every_matching_subscriber_receives_the_message() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut subs: Vec<Raw> = ["s/x", "s/+", "#", "+/x"]
        .iter()
        .enumerate()
        .map(|(i, filter)| Raw::subscribed(addr, &format!("fan-{i}"), &[filter]))
        .collect();
    let mut publisher = Raw::connected(addr, "fan-pub");
    publisher.send(&publish("s/x", b"all", 0, false, 0));
    for sub in &mut subs {
        assert_eq!(sub.recv(), publish("s/x", b"all", 0, false, 0));
    }
}

#[test]
fn wildcards_at_the_first_level_do_not_match_dollar_topics_mqtt_4_7_2_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    // Any topic that starts with '$' (clients may not publish into $SYS itself, which the
    // broker owns: `a_client_cannot_publish_into_sys` in tests/operations.rs).
    let mut all = Raw::subscribed(addr, "hash", &["#", "+/info"]);
    let mut dollar = Raw::subscribed(addr, "dollar", &["$app/#"]);
    let mut publisher = Raw::connected(addr, "dollar-pub");
    publisher.send(&publish("$app/info", b"x", 0, false, 0));
    publisher.send(&publish("after", b"y", 0, false, 0));
    assert_eq!(dollar.recv(), publish("$app/info", b"x", 0, false, 0));
    assert_eq!(all.recv(), publish("after", b"y", 0, false, 0));
}

#[test]
fn a_multi_level_wildcard_matches_its_parent_level_and_empty_levels() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "parent", &["sport/#", "a/+/b"]);
    let mut publisher = Raw::connected(addr, "parent-pub");
    for topic in ["sport", "sport/tennis/player1", "a//b", "a/x/b"] {
        publisher.send(&publish(topic, b"p", 0, false, 0));
        assert_eq!(sub.recv(), publish(topic, b"p", 0, false, 0), "{topic}");
    }
}

#[test]
fn unsubscribe_stops_delivery_and_is_acknowledged_mqtt_3_10_4_4() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "unsub", &["u/stop", "u/marker"]);
    // [MQTT-3.10.4-5] UNSUBACK comes even for a filter that was never subscribed.
    sub.send(&unsubscribe(4, &["u/stop", "u/never"]));
    assert_eq!(sub.recv(), [0xB0, 0x02, 0x00, 0x04]);
    let mut publisher = Raw::connected(addr, "unsub-pub");
    publisher.send(&publish("u/stop", b"no", 0, false, 0));
    publisher.send(&publish("u/marker", b"yes", 0, false, 0));
    assert_eq!(sub.recv(), publish("u/marker", b"yes", 0, false, 0));
}

#[test]
fn unsubscribe_compares_filters_literally_mqtt_3_10_4_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "literal", &["l/a"]);
    sub.send(&unsubscribe(5, &["l/+"])); // would match l/a, but is not the same filter
    assert_eq!(sub.recv(), [0xB0, 0x02, 0x00, 0x05]);
    let mut publisher = Raw::connected(addr, "literal-pub");
    publisher.send(&publish("l/a", b"still", 0, false, 0));
    assert_eq!(sub.recv(), publish("l/a", b"still", 0, false, 0));
}

#[test]
fn forwarded_messages_have_retain_0_and_dup_0_mqtt_3_3_1_9_mqtt_3_3_1_3() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "flags-sub", &["f/t"]);
    let mut publisher = Raw::connected(addr, "flags-pub");
    // RETAIN=1, QoS 1, DUP=1 from the publisher.
    let mut retained_dup = publish("f/t", b"r", 1, true, 3);
    retained_dup[0] |= 0x01;
    publisher.send(&retained_dup);
    assert_eq!(publisher.recv(), [0x40, 0x02, 0x00, 0x03]);
    assert_eq!(sub.recv(), publish("f/t", b"r", 0, false, 0));
}

#[test]
fn large_payloads_and_many_messages_arrive_intact_and_in_order() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "bulk-sub", &["bulk"]);
    let mut publisher = Raw::connected(addr, "bulk-pub");
    let big = vec![0xA5u8; 300_000];
    publisher.send(&publish("bulk", &big, 0, false, 0));
    assert_eq!(sub.recv(), publish("bulk", &big, 0, false, 0));
    for i in 0..200u32 {
        publisher.send(&publish("bulk", &i.to_be_bytes(), 0, false, 0));
    }
    for i in 0..200u32 {
        assert_eq!(sub.recv(), publish("bulk", &i.to_be_bytes(), 0, false, 0));
    }
}

/// The reader routes a whole read's packets before waking anyone. A packet followed by
/// the start of the next one must still go out without waiting for the rest: the batch
/// ends where the bytes run out, not where the read did.
#[test]
fn a_packet_followed_by_part_of_the_next_is_delivered_and_answered_at_once() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "batch-sub", &["batch"]);
    let mut publisher = Raw::connected(addr, "batch-pub");
    let first = publish("batch", b"first", 1, false, 1);
    let second = publish("batch", b"second", 1, false, 2);
    // One write: a whole QoS 1 PUBLISH and the first three bytes of another.
    let mut bytes = first.clone();
    bytes.extend_from_slice(&second[..3]);
    publisher.send(&bytes);
    assert_eq!(publisher.recv(), puback(1));
    assert_eq!(sub.recv(), publish("batch", b"first", 0, false, 0));
    // The rest arrives later, and completes the second packet.
    publisher.send(&second[3..]);
    assert_eq!(publisher.recv(), puback(2));
    assert_eq!(sub.recv(), publish("batch", b"second", 0, false, 0));
}

/// Many packets in one write form one batch: every PUBACK comes back in order
/// ([MQTT-4.6.0-2]) and every message reaches the subscriber in order ([MQTT-4.6.0-6]).
#[test]
fn a_burst_in_one_write_is_answered_and_delivered_in_order_mqtt_4_6_0_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "burst-sub", &["burst"]);
    let mut publisher = Raw::connected(addr, "burst-pub");
    let mut bytes = Vec::new();
    for id in 1..=100u16 {
        bytes.extend(publish("burst", &id.to_be_bytes(), 1, false, id));
    }
    publisher.send(&bytes);
    for id in 1..=100u16 {
        assert_eq!(publisher.recv(), puback(id));
    }
    for id in 1..=100u16 {
        assert_eq!(sub.recv(), publish("burst", &id.to_be_bytes(), 0, false, 0));
    }
}

/// Many publishers feed many subscribers at once. A writer is woken once per batch, by
/// whichever reader fed it first, so a lost wake-up would leave messages sitting in a queue
/// and this test would time out. Every subscriber must get every message, each publisher's
/// in the order sent ([MQTT-4.6.0-6]), whatever the sizes of the bursts.
#[test]
fn concurrent_bursts_from_many_publishers_all_arrive_in_order_mqtt_4_6_0_6() {
    const PUBLISHERS: u8 = 4;
    const SUBSCRIBERS: usize = 4;
    const MESSAGES: u16 = 2_000;
    let broker = start_broker_with(mqttd::Config {
        // Room for everything: this test is about wake-ups, not about drops.
        max_queued_messages: 100_000,
        ..mqttd::Config::default()
    });
    let addr = broker.local_addr();
    let readers: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| Raw::subscribed(addr, &format!("wake-sub-{i}"), &["wake/#"]))
        .map(|mut sub| {
            std::thread::spawn(move || {
                let mut next = [0u16; PUBLISHERS as usize];
                for _ in 0..u32::from(PUBLISHERS) * u32::from(MESSAGES) {
                    let got = sub.recv_publish();
                    let from = usize::from(got.payload[0]);
                    let seq = u16::from_be_bytes([got.payload[1], got.payload[2]]);
                    assert_eq!(seq, next[from], "publisher {from}'s messages in order");
                    next[from] += 1;
                }
                next
            })
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut publisher = Raw::connected(addr, &format!("wake-pub-{p}"));
                let topic = format!("wake/{p}");
                let (mut seq, mut burst) = (0u16, u16::from(p) + 1);
                while seq < MESSAGES {
                    // Bursts of 1 to 64 QoS 1 PUBLISHes in one write: batches of every size.
                    let first = seq;
                    let mut bytes = Vec::new();
                    while seq < MESSAGES && seq - first < burst {
                        let [high, low] = seq.to_be_bytes();
                        bytes.extend(publish(&topic, &[p, high, low], 1, false, seq + 1));
                        seq += 1;
                    }
                    publisher.send(&bytes);
                    for id in first + 1..=seq {
                        assert_eq!(publisher.recv(), puback(id));
                    }
                    burst = burst * 7 % 64 + 1;
                }
                publisher
            })
        })
        .collect();
    // The publishers stay connected until every message has arrived: a connection that
    // ends rings whatever its reader had not rung yet, which could hide a missed ring.
    let _connected: Vec<Raw> = publishers
        .into_iter()
        .map(|publisher| publisher.join().expect("publisher thread"))
        .collect();
    for reader in readers {
        assert_eq!(
            reader.join().expect("subscriber thread"),
            [MESSAGES; PUBLISHERS as usize]
        );
    }
}

#[test]
fn suback_and_unsuback_carry_the_identifier_of_the_packet_they_answer_mqtt_2_3_1_7() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "echo-ids");
    // Two SUBSCRIBEs and two UNSUBSCRIBEs in one write, each with its own identifier,
    // both bytes non-zero so that a byte swapped or dropped shows.
    let mut burst = subscribe(0xBEEF, &[("ids/a", 0)]);
    burst.extend(subscribe(0x0102, &[("ids/b", 1)]));
    burst.extend(unsubscribe(0x0A0B, &["ids/a"]));
    burst.extend(unsubscribe(0x7F01, &["ids/never"]));
    raw.send(&burst);
    assert_eq!(raw.recv(), [0x90, 0x03, 0xBE, 0xEF, 0x00]);
    assert_eq!(raw.recv(), [0x90, 0x03, 0x01, 0x02, 0x01]);
    assert_eq!(raw.recv(), [0xB0, 0x02, 0x0A, 0x0B]);
    assert_eq!(raw.recv(), [0xB0, 0x02, 0x7F, 0x01]);
}

#[test]
fn every_subscribe_is_answered_with_a_suback_even_a_refused_one_mqtt_3_8_4_1() {
    let broker = start_broker();
    let mut raw = Raw::connected(broker.local_addr(), "answered");
    // A filter deeper than the broker's limit is refused (0x80), and still answered.
    let deep = vec!["x"; 201].join("/");
    let mut burst = subscribe(1, &[("fine", 0)]);
    burst.extend(subscribe(2, &[(&deep, 1)]));
    burst.extend(subscribe(3, &[("fine", 2)]));
    raw.send(&burst);
    assert_eq!(raw.recv(), [0x90, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(raw.recv(), [0x90, 0x03, 0x00, 0x02, 0x80]);
    assert_eq!(raw.recv(), [0x90, 0x03, 0x00, 0x03, 0x02]);
}

/// One SUBSCRIBE with several filters acts as that many SUBSCRIBEs in a row: the second
/// request for the same filter replaces the first ([MQTT-3.8.4-3]), a refused filter does
/// not stop the others, and one SUBACK answers them all.
#[test]
fn a_subscribe_with_several_filters_acts_as_several_subscribes_mqtt_3_8_4_4() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "several");
    let deep = vec!["x"; 201].join("/");
    sub.send(&subscribe(
        7,
        &[("sev/t", 0), (&deep, 0), ("sev/t", 1), ("sev/marker", 0)],
    ));
    assert_eq!(sub.recv(), [0x90, 0x06, 0x00, 0x07, 0x00, 0x80, 0x01, 0x00]);
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP, "one SUBACK, not one per filter");
    let mut publisher = Raw::connected(addr, "several-pub");
    publisher.send(&publish("sev/t", b"m", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    publisher.send(&publish("sev/marker", b"end", 0, false, 0));
    // One copy, at the QoS of the later request for the same filter.
    let got = sub.recv_publish();
    assert_eq!((got.topic.as_str(), got.qos), ("sev/t", 1));
    sub.send(&puback(got.id.unwrap()));
    assert_eq!(sub.recv(), publish("sev/marker", b"end", 0, false, 0));
}

#[test]
fn wildcard_filters_are_granted_and_match_mqtt_3_8_3_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "wild");
    sub.send(&subscribe(2, &[("+/plus", 1), ("hash/#", 0)]));
    assert_eq!(sub.recv(), [0x90, 0x04, 0x00, 0x02, 0x01, 0x00]);
    let mut publisher = Raw::connected(addr, "wild-pub");
    publisher.send(&publish("a/plus", b"1", 0, false, 0));
    publisher.send(&publish("hash/a/b", b"2", 0, false, 0));
    assert_eq!(sub.recv(), publish("a/plus", b"1", 0, false, 0));
    assert_eq!(sub.recv(), publish("hash/a/b", b"2", 0, false, 0));
}

#[test]
fn a_forwarded_topic_name_matches_the_subscription_filter_mqtt_3_3_2_3() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "names", &["m/+/x"]);
    let mut publisher = Raw::connected(addr, "names-pub");
    for topic in ["m/1/x", "m/1/y", "m/2/x", "n/1/x", "m/1/x/y", "m/3/x"] {
        publisher.send(&publish(topic, topic.as_bytes(), 0, false, 0));
    }
    // Each arrives under the topic it was published to, which the filter matches.
    for topic in ["m/1/x", "m/2/x", "m/3/x"] {
        assert_eq!(sub.recv(), publish(topic, topic.as_bytes(), 0, false, 0));
    }
}

/// Unsubscribing removes that one subscription: a message it matched now arrives only
/// through the other, wider subscription the client still holds, at that one's QoS.
#[test]
fn a_deleted_subscription_adds_no_new_messages_mqtt_3_10_4_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "deleted");
    sub.send(&subscribe(1, &[("del/a", 1), ("del/#", 0)]));
    assert_eq!(sub.recv(), [0x90, 0x04, 0x00, 0x01, 0x01, 0x00]);
    let mut publisher = Raw::connected(addr, "deleted-pub");
    publisher.send(&publish("del/a", b"before", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let got = sub.recv_publish();
    assert_eq!((got.qos, &got.payload[..]), (1, &b"before"[..]));
    sub.send(&puback(got.id.unwrap()));
    sub.send(&unsubscribe(2, &["del/a"]));
    assert_eq!(sub.recv(), [0xB0, 0x02, 0x00, 0x02]);
    publisher.send(&publish("del/a", b"after", 1, false, 2));
    assert_eq!(publisher.recv(), puback(2));
    assert_eq!(sub.recv(), publish("del/a", b"after", 0, false, 0));
}

#[test]
fn an_unsubscribe_with_several_filters_removes_each_and_is_answered_once_mqtt_3_10_4_6() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::subscribed(addr, "unsub-many", &["um/a", "um/b", "um/c"]);
    sub.send(&unsubscribe(3, &["um/a", "um/never", "um/b"]));
    assert_eq!(sub.recv(), [0xB0, 0x02, 0x00, 0x03]);
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP, "one UNSUBACK, not one per filter");
    let mut publisher = Raw::connected(addr, "unsub-many-pub");
    for topic in ["um/a", "um/b", "um/c"] {
        publisher.send(&publish(topic, b"m", 0, false, 0));
    }
    assert_eq!(sub.recv(), publish("um/c", b"m", 0, false, 0));
}
