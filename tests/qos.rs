//! QoS 1 and QoS 2 in both directions (§4.3), the in-flight window, and message order
//! (§4.6), over TCP with raw bytes so that every packet of each flow is visible.

mod common;

use std::thread;

use common::*;
use mqttd::Config;

#[test]
fn qos1_to_a_subscriber_waits_for_puback_mqtt_4_3_2_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "q1-sub");
    sub.subscribe_to("q1/t", 1);
    let mut publisher = Raw::connected(addr, "q1-pub");
    publisher.send(&publish("q1/t", b"hello", 1, false, 77));
    assert_eq!(publisher.recv(), puback(77));
    let got = sub.recv_publish();
    // The broker picks its own identifier ([MQTT-2.3.1-4]); DUP is 0 on a first attempt.
    assert_eq!((got.qos, got.dup, got.retain), (1, false, false));
    assert_eq!(got.payload, b"hello");
    let id = got.id.expect("a QoS 1 PUBLISH carries an identifier");
    assert_ne!(id, 0);
    sub.send(&puback(id));
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP, "nothing is re-sent after PUBACK");
}

#[test]
fn qos2_to_a_subscriber_goes_pubrec_pubrel_pubcomp_mqtt_4_3_3_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "q2-sub");
    sub.subscribe_to("q2/t", 2);
    let mut publisher = Raw::connected(addr, "q2-pub");
    publisher.send(&publish("q2/t", b"exactly", 2, false, 5));
    assert_eq!(publisher.recv(), pubrec(5));
    publisher.send(&pubrel(5));
    assert_eq!(publisher.recv(), pubcomp(5));
    let got = sub.recv_publish();
    assert_eq!(
        (got.qos, got.dup, &got.payload[..]),
        (2, false, &b"exactly"[..])
    );
    let id = got.id.unwrap();
    sub.send(&pubrec(id));
    // [MQTT-2.3.1-6] the PUBREL carries the PUBLISH's identifier.
    assert_eq!(sub.recv(), pubrel(id));
    sub.send(&pubcomp(id));
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP);
}

#[test]
fn delivery_uses_the_lower_of_published_and_granted_qos_mqtt_3_8_4_6() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut low = Raw::connected(addr, "low");
    low.subscribe_to("min/t", 1);
    let mut high = Raw::connected(addr, "high");
    high.subscribe_to("min/t", 2);
    let mut publisher = Raw::connected(addr, "min-pub");
    publisher.send(&publish("min/t", b"2", 2, false, 1));
    assert_eq!(publisher.recv(), pubrec(1));
    publisher.send(&publish("min/t", b"0", 0, false, 0));
    assert_eq!(low.recv_publish().qos, 1);
    assert_eq!(low.recv_publish().qos, 0);
    assert_eq!(high.recv_publish().qos, 2);
    assert_eq!(high.recv_publish().qos, 0);
}

#[test]
fn overlapping_subscriptions_deliver_once_at_the_highest_qos_mqtt_3_3_5_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "overlap-q");
    sub.send(&subscribe(1, &[("o/#", 0), ("o/+", 2), ("o/x", 1)]));
    assert_eq!(sub.recv(), [0x90, 0x05, 0x00, 0x01, 0x00, 0x02, 0x01]);
    let mut publisher = Raw::connected(addr, "overlap-q-pub");
    publisher.send(&publish("o/x", b"m", 2, false, 9));
    assert_eq!(publisher.recv(), pubrec(9));
    publisher.send(&publish("o/y", b"end", 0, false, 0));
    let got = sub.recv_publish();
    assert_eq!((got.qos, &got.payload[..]), (2, &b"m"[..]));
    assert_eq!(sub.recv_publish().payload, b"end", "one copy only");
}

#[test]
fn the_in_flight_window_holds_back_messages_until_acknowledged() {
    let broker = start_broker_with(Config {
        max_inflight_messages: 2,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "window");
    sub.subscribe_to("w", 1);
    let mut publisher = Raw::connected(addr, "window-pub");
    for i in 1..=3u16 {
        publisher.send(&publish("w", &[i as u8], 1, false, i));
        assert_eq!(publisher.recv(), puback(i));
    }
    let first = sub.recv_publish();
    let second = sub.recv_publish();
    assert_eq!((first.payload[0], second.payload[0]), (1, 2));
    // The third is queued, not sent: the window of 2 is full.
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP);
    sub.send(&puback(first.id.unwrap()));
    let third = sub.recv_publish();
    assert_eq!(third.payload, [3]);
}

#[test]
fn a_resent_qos2_publish_with_dup_is_acknowledged_but_not_delivered_twice_mqtt_4_3_3_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "dup-sub");
    sub.subscribe_to("dup/#", 0);
    let mut publisher = Raw::connected(addr, "dup-pub");
    publisher.send(&publish("dup/t", b"once", 2, false, 3));
    assert_eq!(publisher.recv(), pubrec(3));
    publisher.send(&publish("dup/t", b"once", 2, true, 3));
    assert_eq!(publisher.recv(), pubrec(3));
    publisher.send(&pubrel(3));
    assert_eq!(publisher.recv(), pubcomp(3));
    publisher.send(&pubrel(3)); // a repeated PUBREL is answered again
    assert_eq!(publisher.recv(), pubcomp(3));
    publisher.send(&publish("dup/end", b"", 0, false, 0));
    assert_eq!(sub.recv_publish().payload, b"once");
    assert_eq!(sub.recv_publish().topic, "dup/end");
}

#[test]
fn a_duplicate_qos1_publish_is_a_new_message_mqtt_4_3_2_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "q1dup-sub");
    sub.subscribe_to("q1dup", 0);
    let mut publisher = Raw::connected(addr, "q1dup-pub");
    publisher.send(&publish("q1dup", b"a", 1, false, 4));
    assert_eq!(publisher.recv(), puback(4));
    publisher.send(&publish("q1dup", b"a", 1, true, 4));
    assert_eq!(publisher.recv(), puback(4));
    assert_eq!(sub.recv_publish().payload, b"a");
    assert_eq!(sub.recv_publish().payload, b"a");
}

#[test]
fn real_clients_exchange_qos1_and_qos2_both_ways() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "rumqttc-sub");
    sub.subscribe("both/+", QoS::ExactlyOnce);
    let mut publisher = Client::connect(addr, "rumqttc-pub");
    publisher.publish("both/1", QoS::AtLeastOnce, b"one");
    publisher.publish("both/2", QoS::ExactlyOnce, b"two");
    let first = sub.next_message();
    let second = sub.next_message();
    assert_eq!(
        (first.qos, &first.payload[..]),
        (QoS::AtLeastOnce, &b"one"[..])
    );
    assert_eq!(
        (second.qos, &second.payload[..]),
        (QoS::ExactlyOnce, &b"two"[..])
    );
}

/// 10 000 QoS 1 messages from one publisher arrive complete and in order
/// ([MQTT-4.6.0-6]), through a window of 20 in flight.
#[test]
fn a_burst_of_10000_qos1_messages_keeps_its_order_mqtt_4_6_0_6() {
    const COUNT: u32 = 10_000;
    let broker = start_broker_with(Config {
        max_queued_messages: COUNT as usize, // room for the whole burst: this tests order
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "burst-sub");
    sub.subscribe_to("burst", 1);
    let receiver = thread::spawn(move || {
        for expected in 0..COUNT {
            let got = sub.recv_publish();
            assert_eq!(got.payload, expected.to_be_bytes(), "message {expected}");
            sub.send(&puback(got.id.unwrap()));
        }
    });
    let mut publisher = Raw::connected(addr, "burst-pub");
    let mut burst = Vec::new();
    for i in 0..COUNT {
        let id = (i % 60_000 + 1) as u16;
        burst.extend(publish("burst", &i.to_be_bytes(), 1, false, id));
    }
    // The PUBACKs are read on another thread so that neither side's buffers fill up.
    let mut acks = Raw {
        stream: publisher.stream.try_clone().unwrap(),
    };
    let ack_reader = thread::spawn(move || {
        for _ in 0..COUNT {
            assert_eq!(acks.recv()[0], 0x40);
        }
    });
    publisher.send(&burst);
    ack_reader.join().unwrap();
    receiver.join().unwrap();
    assert_eq!(broker.broker().stats().messages_dropped, 0);
}

#[test]
fn acknowledgements_keep_the_order_of_the_packets_they_answer_mqtt_4_6_0_2_mqtt_4_6_0_3() {
    let broker = start_broker();
    let mut publisher = Raw::connected(broker.local_addr(), "ordered-pub");
    let mut burst = Vec::new();
    for id in [5u16, 3, 9] {
        burst.extend(publish("order/1", b"q1", 1, false, id));
    }
    for id in [7u16, 2] {
        burst.extend(publish("order/2", b"q2", 2, false, id));
    }
    publisher.send(&burst);
    for id in [5u16, 3, 9] {
        assert_eq!(publisher.recv(), puback(id), "[MQTT-4.6.0-2]");
    }
    for id in [7u16, 2] {
        assert_eq!(publisher.recv(), pubrec(id), "[MQTT-4.6.0-3]");
    }
}

#[test]
fn pubrels_follow_the_order_of_the_pubrecs_mqtt_4_6_0_4() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "rel-sub");
    sub.subscribe_to("rel", 2);
    let mut publisher = Raw::connected(addr, "rel-pub");
    for id in 1..=3u16 {
        publisher.send(&publish("rel", &[id as u8], 2, false, id));
        assert_eq!(publisher.recv(), pubrec(id));
    }
    let ids: Vec<u16> = (0..3).map(|_| sub.recv_publish().id.unwrap()).collect();
    // The client answers in a different order: the broker's PUBRELs follow it.
    let mut pubrecs = Vec::new();
    for id in [ids[2], ids[0], ids[1]] {
        pubrecs.extend(pubrec(id));
    }
    sub.send(&pubrecs);
    for id in [ids[2], ids[0], ids[1]] {
        assert_eq!(sub.recv(), pubrel(id));
    }
}

/// A subscriber that answers with the wrong acknowledgement for the message it names
/// (PUBREC or PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREC) is closed
/// ([MQTT-4.8.0-1]); the broker keeps serving everyone else.
#[test]
fn an_acknowledgement_of_the_wrong_kind_closes_the_connection_mqtt_4_8_0_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    type Answer = fn(u16) -> [u8; 4];
    let wrong_answers: [(u8, Answer); 4] = [(1, pubrec), (1, pubcomp), (2, puback), (2, pubcomp)];
    for (n, (qos, wrong)) in wrong_answers.into_iter().enumerate() {
        let topic = format!("wrong/{n}");
        let mut sub = Raw::connected(addr, &format!("wrong-sub-{n}"));
        sub.subscribe_to(&topic, qos);
        let mut publisher = Raw::connected(addr, "wrong-pub");
        publisher.send(&publish(&topic, b"m", qos, false, 1));
        let id = sub.recv_publish().id.expect("QoS 1 and 2 carry an id");
        sub.send(&wrong(id));
        assert_eq!(sub.closed(), [], "answer {n} closes the connection");
    }
    assert_still_serving(addr);
}

/// Byte 1 of every packet the broker sends carries the flags Table 2.2 requires: 0b0010
/// for PUBREL, 0b0000 for the others (PUBLISH aside, whose bits are DUP, QoS and RETAIN).
#[test]
fn every_packet_the_broker_sends_carries_its_required_flags_mqtt_2_2_2_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::tcp(addr);
    sub.send(&connect("flags-sub", 0));
    assert_eq!(sub.recv()[0], 0x20, "CONNACK");
    sub.send(&subscribe(1, &[("flags/t", 2)]));
    assert_eq!(sub.recv()[0], 0x90, "SUBACK");
    sub.send(&unsubscribe(2, &["flags/none"]));
    assert_eq!(sub.recv()[0], 0xB0, "UNSUBACK");
    sub.send(&PINGREQ);
    assert_eq!(sub.recv()[0], 0xD0, "PINGRESP");
    let mut publisher = Raw::connected(addr, "flags-pub");
    publisher.send(&publish("flags/one", b"1", 1, false, 1));
    assert_eq!(publisher.recv()[0], 0x40, "PUBACK");
    publisher.send(&publish("flags/t", b"2", 2, false, 2));
    assert_eq!(publisher.recv()[0], 0x50, "PUBREC");
    publisher.send(&pubrel(2));
    assert_eq!(publisher.recv()[0], 0x70, "PUBCOMP");
    let id = sub.recv_publish().id.unwrap();
    sub.send(&pubrec(id));
    assert_eq!(sub.recv()[0], 0x62, "PUBREL");
}

/// QoS 0 gets no answer, QoS 1 a PUBACK, QoS 2 a PUBREC (Table 3.4). A PINGREQ sent after
/// the QoS 0 PUBLISH proves nothing came for it: answers keep the order of the packets.
#[test]
fn each_publish_is_answered_as_its_qos_says_mqtt_3_3_4_1() {
    let broker = start_broker();
    let mut publisher = Raw::connected(broker.local_addr(), "answers");
    publisher.send(&publish("answers/0", b"0", 0, false, 0));
    publisher.send(&PINGREQ);
    assert_eq!(publisher.recv(), PINGRESP, "nothing for QoS 0");
    publisher.send(&publish("answers/1", b"1", 1, false, 11));
    assert_eq!(publisher.recv(), puback(11));
    publisher.send(&publish("answers/2", b"2", 2, false, 12));
    assert_eq!(publisher.recv(), pubrec(12));
}

/// A QoS 0 delivery has QoS 0 and DUP 0 and no Packet Identifier, even for a message the
/// publisher sent at QoS 2 with DUP set, and it is never sent again.
#[test]
fn a_qos0_delivery_has_dup_0_mqtt_4_3_1_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut sub, _) = Raw::session(addr, "qos0-dup", false);
    sub.subscribe_to("qos0/t", 0);
    let mut publisher = Raw::connected(addr, "qos0-dup-pub");
    publisher.send(&publish("qos0/t", b"m", 2, true, 5));
    assert_eq!(publisher.recv(), pubrec(5));
    publisher.send(&pubrel(5));
    assert_eq!(publisher.recv(), pubcomp(5));
    assert_eq!(sub.recv(), publish("qos0/t", b"m", 0, false, 0));
    // Gone without any acknowledgement: nothing is re-sent on the way back.
    drop(sub);
    let (mut back, present) = Raw::session(addr, "qos0-dup", false);
    assert!(present);
    back.send(&PINGREQ);
    assert_eq!(back.recv(), PINGRESP);
}

/// Every topic is an ordered topic: one publisher's messages on one topic reach a
/// subscriber in the order sent, whatever QoS each was published at. (Nothing is
/// acknowledged: the four QoS 1 and 2 messages fit in the default in-flight window.)
#[test]
fn messages_on_one_topic_keep_their_order_across_qos_levels_mqtt_4_6_0_5() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "ordered-topic");
    sub.subscribe_to("ordered", 2);
    let mut publisher = Raw::connected(addr, "ordered-topic-pub");
    let qos_of = [0u8, 1, 2, 0, 2, 1, 0];
    let mut burst = Vec::new();
    for (i, qos) in qos_of.iter().enumerate() {
        let id = i as u16 + 1;
        burst.extend(publish("ordered", &[i as u8], *qos, false, id));
    }
    publisher.send(&burst);
    for (i, qos) in qos_of.iter().enumerate() {
        let got = sub.recv_publish();
        assert_eq!((got.payload[0], got.qos), (i as u8, *qos), "message {i}");
    }
}

/// Unsubscribing does not abandon what is already on its way: a QoS 2 flow in flight is
/// finished (PUBREC still answered with PUBREL), and a QoS 1 message waiting behind a full
/// window is still sent once the window opens.
#[test]
fn messages_already_on_their_way_are_delivered_after_unsubscribe_mqtt_3_10_4_3() {
    let broker = start_broker_with(Config {
        max_inflight_messages: 1,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "finishing");
    sub.send(&subscribe(1, &[("fin/2", 2), ("fin/1", 1)]));
    assert_eq!(sub.recv(), [0x90, 0x04, 0x00, 0x01, 0x02, 0x01]);
    let mut publisher = Raw::connected(addr, "finishing-pub");
    publisher.send(&publish("fin/2", b"two", 2, false, 1));
    assert_eq!(publisher.recv(), pubrec(1));
    publisher.send(&publish("fin/1", b"one", 1, false, 2));
    assert_eq!(publisher.recv(), puback(2));
    let first = sub.recv_publish();
    assert_eq!((first.qos, &first.payload[..]), (2, &b"two"[..]));
    sub.send(&unsubscribe(2, &["fin/2", "fin/1"]));
    assert_eq!(sub.recv(), [0xB0, 0x02, 0x00, 0x02]);
    let id = first.id.unwrap();
    sub.send(&pubrec(id));
    assert_eq!(sub.recv(), pubrel(id));
    sub.send(&pubcomp(id));
    let second = sub.recv_publish();
    assert_eq!((second.qos, &second.payload[..]), (1, &b"one"[..]));
    sub.send(&puback(second.id.unwrap()));
    sub.send(&PINGREQ);
    assert_eq!(sub.recv(), PINGRESP);
}
