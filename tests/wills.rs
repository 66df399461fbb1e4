//! Wills (§3.1.2.5–§3.1.2.7, §3.14): published on every abnormal end of a connection,
//! discarded on DISCONNECT.

mod common;

use common::*;

/// A watcher subscribed to `will/#` at QoS 1.
fn watcher(addr: std::net::SocketAddr) -> Raw {
    let mut watcher = Raw::connected(addr, "watcher");
    watcher.subscribe_to("will/#", 1);
    watcher
}

/// A client with a Will on `will/<id>` (QoS 1, not retained) and the given Keep Alive.
fn with_will(addr: std::net::SocketAddr, id: &str, keep_alive: u16) -> Raw {
    let mut raw = Raw::tcp(addr);
    raw.send(&connect_with_will(
        id,
        keep_alive,
        &format!("will/{id}"),
        b"bye",
        1,
        false,
    ));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    raw
}

fn expect_will(watcher: &mut Raw, id: &str) {
    let got = watcher.recv_publish();
    assert_eq!(got.topic, format!("will/{id}"));
    assert_eq!(
        (&got.payload[..], got.qos, got.retain),
        (&b"bye"[..], 1, false)
    );
    watcher.send(&puback(got.id.unwrap()));
}

#[test]
fn the_will_is_published_when_the_connection_drops_mqtt_3_1_2_8() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    drop(with_will(addr, "dropped", 0));
    expect_will(&mut watcher, "dropped");
}

#[test]
fn the_will_is_published_when_keepalive_expires_mqtt_3_1_2_24() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    let _silent = with_will(addr, "silent", 1);
    expect_will(&mut watcher, "silent");
}

#[test]
fn the_will_is_published_after_a_protocol_violation_mqtt_4_8_0_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    let mut rude = with_will(addr, "rude", 0);
    rude.send(&[0xE1, 0x00]); // DISCONNECT with a reserved flag: not a valid DISCONNECT
    assert_eq!(rude.closed(), []);
    expect_will(&mut watcher, "rude");
}

#[test]
fn the_will_is_published_when_the_connection_is_taken_over_mqtt_3_1_4_2() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    let mut old = with_will(addr, "twin", 0);
    let _new = Raw::connected(addr, "twin");
    assert_eq!(old.closed(), []);
    expect_will(&mut watcher, "twin");
}

/// DISCONNECT removes the Will, which is then never published ([MQTT-3.1.2-10]).
#[test]
fn disconnect_discards_the_will_mqtt_3_14_4_3() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    let mut polite = with_will(addr, "polite", 0);
    polite.send(&DISCONNECT);
    assert_eq!(polite.closed(), []);
    // Another will, published after, is the next thing the watcher sees.
    drop(with_will(addr, "marker", 0));
    expect_will(&mut watcher, "marker");
}

#[test]
fn a_will_with_retain_becomes_the_retained_message_mqtt_3_1_2_17() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut raw = Raw::tcp(addr);
    raw.send(&connect_with_will(
        "sensor",
        0,
        "will/sensor",
        b"offline",
        0,
        true,
    ));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    let mut watcher = Raw::connected(addr, "watcher");
    watcher.subscribe_to("will/sensor", 0);
    drop(raw);
    // The live subscriber sees it with RETAIN 0 ...
    assert!(!watcher.recv_publish().retain);
    // ... and a later one gets it as the retained message.
    let mut late = Raw::connected(addr, "late");
    late.subscribe_to("will/sensor", 0);
    let got = late.recv_publish();
    assert_eq!((got.retain, &got.payload[..]), (true, &b"offline"[..]));
}

#[test]
fn a_will_without_retain_is_not_kept_mqtt_3_1_2_16() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    drop(with_will(addr, "fleeting", 0));
    expect_will(&mut watcher, "fleeting");
    assert_eq!(broker.broker().retained_count(), 0);
    let mut late = Raw::connected(addr, "late");
    late.subscribe_to("will/#", 0);
    late.send(&PINGREQ);
    assert_eq!(late.recv(), PINGRESP, "no retained Will to send");
}

/// A Will is published once: the Clean Session 0 session it belonged to is resumed by a
/// connection without a Will, and when that one drops too, nothing is published again.
/// (Its other half, the Will removed by DISCONNECT, is `disconnect_discards_the_will`.)
#[test]
fn a_published_will_is_removed_from_the_session_mqtt_3_1_2_10() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    let mut first = connect_with_will("once", 0, "will/once", b"bye", 1, false);
    first[9] &= !0x02; // Clean Session 0: the session outlives the connection
    let mut raw = Raw::tcp(addr);
    raw.send(&first);
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    drop(raw);
    expect_will(&mut watcher, "once");
    // Resumed without a Will, then dropped again.
    let (again, present) = Raw::session(addr, "once", false);
    assert!(present);
    drop(again);
    // Connecting under the same id waits until the dropped connection's end is handled.
    let (mut last, _) = Raw::session(addr, "once", false);
    last.send(&DISCONNECT);
    assert_eq!(last.closed(), []);
    drop(with_will(addr, "marker", 0));
    expect_will(&mut watcher, "marker");
}

#[test]
fn a_connection_without_a_will_publishes_nothing_when_it_drops_mqtt_3_1_2_12() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = Raw::connected(addr, "watcher");
    watcher.subscribe_to("#", 1);
    let (quiet, _) = Raw::session(addr, "quiet", false);
    drop(quiet);
    // Connecting under the same id waits until the dropped connection's end is handled.
    let (mut back, present) = Raw::session(addr, "quiet", false);
    assert!(present);
    back.send(&DISCONNECT);
    assert_eq!(back.closed(), []);
    drop(with_will(addr, "marker", 0));
    expect_will(&mut watcher, "marker");
}

/// The payload's fields come in the order Client Identifier, Will Topic, Will Message,
/// User Name, Password: read in that order, the Will is the one the client meant.
#[test]
fn the_connect_payload_is_read_in_its_fixed_order_mqtt_3_1_3_1() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = watcher(addr);
    // Clean Session, Will Flag, Will QoS 1, Password Flag, User Name Flag.
    let mut body = string(b"MQTT");
    body.extend([4, 0x02 | 0x04 | 0x08 | 0x40 | 0x80, 0, 0]);
    for field in [&b"ordered"[..], b"will/ordered", b"bye", b"user", b"secret"] {
        body.extend(string(field));
    }
    let mut raw = Raw::tcp(addr);
    raw.send(&packet(0x10, &body));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
    drop(raw);
    expect_will(&mut watcher, "ordered");
}

/// Keepalive holds while the broker is *writing* to a client too ([MQTT-3.1.2-24]): a client
/// that subscribes to more retained messages than the sockets can buffer, then neither
/// reads nor sends, is closed after 1.5 x Keep Alive, and its Will goes out. (Its reader,
/// writing the retained messages itself, would otherwise wait for ever in that write.)
#[test]
fn a_client_that_stops_reading_is_closed_at_its_keepalive_mqtt_3_1_2_24() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut publisher = Raw::connected(addr, "filler");
    // 16 MiB of retained messages, more than loopback's socket buffers on both sides.
    let payload = vec![b'x'; 512 * 1024];
    for n in 0..32u16 {
        let mut retained = publish(&format!("big/{n}"), &payload, 1, false, n + 1);
        retained[0] |= 0x01; // RETAIN
        publisher.send(&retained);
        assert_eq!(publisher.recv(), puback(n + 1));
    }
    let mut watcher = watcher(addr);
    let mut stuck = with_will(addr, "stuck", 1);
    stuck.send(&subscribe(1, &[("big/#", 0)]));
    // Neither reads nor sends from here on.
    expect_will(&mut watcher, "stuck");
    drop(stuck);
}
