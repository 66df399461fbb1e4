//! Running mqttd for real: the settings a Mosquitto configuration file brings (keepalive
//! and identifier limits, message sizes, the broker's own `$SYS` tree), over TCP with raw
//! bytes.

mod common;

use common::*;
use mqttd::Config;

/// CONNACK 0x02, "identifier rejected", with Session Present 0 ([MQTT-3.2.2-4]).
const CONNACK_IDENTIFIER_REJECTED: [u8; 4] = [0x20, 0x02, 0x00, 0x02];

#[test]
fn a_keep_alive_beyond_max_keepalive_or_none_at_all_is_refused_with_0x02() {
    let broker = start_broker_with(Config {
        max_keepalive: 60,
        ..Config::default()
    });
    let addr = broker.local_addr();
    for keep_alive in [61, 0] {
        let mut raw = Raw::tcp(addr);
        raw.send(&connect("sleepy", keep_alive));
        assert_eq!(
            raw.closed(),
            CONNACK_IDENTIFIER_REJECTED,
            "Keep Alive {keep_alive}"
        );
    }
    let mut raw = Raw::tcp(addr);
    raw.send(&connect("awake", 60));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED);
}

#[test]
fn an_empty_client_id_is_refused_when_the_file_says_so_mqtt_3_1_3_9() {
    let broker = start_broker_with(Config {
        allow_zero_length_clientid: false,
        ..Config::default()
    });
    let mut raw = Raw::tcp(broker.local_addr());
    raw.send(&connect("", 0));
    assert_eq!(raw.closed(), CONNACK_IDENTIFIER_REJECTED);
}

#[test]
fn a_message_over_message_size_limit_is_acknowledged_and_dropped() {
    let broker = start_broker_with(Config {
        message_size_limit: 4,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "size-sub");
    sub.subscribe_to("size/t", 1);
    let mut publisher = Raw::connected(addr, "size-pub");
    publisher.send(&publish("size/t", b"too big", 1, false, 7));
    assert_eq!(publisher.recv(), puback(7), "acknowledged all the same");
    publisher.send(&publish("size/t", b"ok", 0, false, 0));
    assert_eq!(
        sub.recv_publish().payload,
        b"ok",
        "only the small one arrives"
    );
}

#[test]
fn a_client_cannot_publish_into_sys() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "sys-sub");
    sub.subscribe_to("$SYS/fake", 0);
    sub.subscribe_to("after", 0);
    let mut publisher = Raw::connected(addr, "sys-pub");
    publisher.send(&publish("$SYS/fake", b"forged", 1, false, 3));
    assert_eq!(publisher.recv(), puback(3));
    publisher.send(&publish("after", b"next", 0, false, 0));
    let got = sub.recv_publish();
    assert_eq!(got.topic, "after", "the $SYS message was not passed on");
}

/// Reads `$SYS` updates until `topic` carries `expected`; fails after [`PATIENCE`].
fn wait_for_sys_value(sub: &mut Raw, topic: &str, expected: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let got = sub.recv_publish();
        if got.topic == topic {
            last = String::from_utf8_lossy(&got.payload).into_owned();
            if last == expected {
                return;
            }
        }
    }
    panic!("{topic} never became {expected:?}; last {last:?}");
}

/// The `$SYS` counters count exactly what crossed the wire: a known workload of raw
/// packets, then the totals it must produce.
#[test]
fn sys_counters_count_a_known_workload_exactly() {
    let broker = start_broker_with(Config {
        sys_interval: std::time::Duration::from_secs(1),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut sent_bytes = 0;
    let watch = connect("sys-watch", 0);
    let subscribe_packet = subscribe(
        1,
        &[
            ("$SYS/broker/publish/messages/received", 0),
            ("$SYS/broker/bytes/received", 0),
        ],
    );
    let mut watcher = Raw::tcp(addr);
    watcher.send(&watch);
    assert_eq!(watcher.recv(), CONNACK_ACCEPTED);
    watcher.send(&subscribe_packet);
    assert_eq!(watcher.recv()[0], 0x90, "SUBACK");
    sent_bytes += watch.len() + subscribe_packet.len();
    let mut publisher = Raw::tcp(addr);
    let hello = connect("sys-pub", 0);
    publisher.send(&hello);
    assert_eq!(publisher.recv(), CONNACK_ACCEPTED);
    sent_bytes += hello.len();
    for n in 0..5u8 {
        let message = publish("counted", &[n; 10], 0, false, 0);
        publisher.send(&message);
        sent_bytes += message.len();
    }
    publisher.send(&PINGREQ);
    assert_eq!(publisher.recv(), PINGRESP, "the five were read before this");
    sent_bytes += PINGREQ.len();
    wait_for_sys_value(&mut watcher, "$SYS/broker/publish/messages/received", "5");
    wait_for_sys_value(
        &mut watcher,
        "$SYS/broker/bytes/received",
        &sent_bytes.to_string(),
    );
}

/// A Will goes through the checks of a PUBLISH: one on a `$SYS` topic would otherwise forge
/// a retained value of the broker's own tree.
#[test]
fn a_will_cannot_forge_sys_values() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut forger = Raw::tcp(addr);
    forger.send(&connect_with_will(
        "forger",
        0,
        "$SYS/broker/uptime",
        b"forever",
        0,
        true,
    ));
    assert_eq!(forger.recv(), CONNACK_ACCEPTED);
    drop(forger);
    // Connecting again with its id waits until the teardown, Will and all, is over.
    let _again = Raw::connected(addr, "forger");
    assert_eq!(broker.broker().retained_count(), 0, "nothing was retained");
}

/// A listener's own `max_connections` (Mosquitto's, per listener): one more connection is
/// closed at once, and one that leaves gives its place back.
#[test]
fn a_listener_refuses_connections_beyond_its_own_limit() {
    let broker = start_broker_with(Config {
        listeners: vec![mqttd::config::Listener {
            max_connections: Some(1),
            ..mqttd::config::Listener::new("127.0.0.1:0".parse().unwrap())
        }],
        ..Config::default()
    });
    let addr = broker.local_addr();
    let first = Raw::connected(addr, "first");
    let mut second = Raw::tcp(addr);
    second.send(&connect("second", 0));
    assert_eq!(second.closed(), [], "closed without a CONNACK");
    drop(first);
    // The first connection's teardown gives its slot back; the next one gets in.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut third = Raw::tcp(addr);
        third.send(&connect("third", 0));
        let mut byte = [0u8; 1];
        use std::io::Read;
        if third.stream.read(&mut byte).is_ok_and(|n| n == 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never given back"
        );
    }
}

/// The broker-wide `max_connections` is counted at accept: a burst of connects made before
/// any handshake has run still gets exactly the limit, the rest closed at once.
#[test]
fn a_burst_of_connects_cannot_pass_max_connections() {
    let broker = start_broker_with(Config {
        max_connections: 3,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut burst: Vec<Raw> = (0..8).map(|_| Raw::tcp(addr)).collect();
    let mut accepted = 0;
    for (n, raw) in burst.iter_mut().enumerate() {
        raw.send(&connect(&format!("burst-{n}"), 0));
        let mut first = [0u8; 1];
        use std::io::Read;
        if raw.stream.read(&mut first).is_ok_and(|read| read == 1) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 3);
}

/// `persistent_client_expiration`: a stored session whose client stays away longer is ended
/// (its subscriptions go with it), and a client coming back later starts afresh.
#[test]
fn a_stored_session_expires_after_persistent_client_expiration() {
    let broker = start_broker_with(Config {
        persistent_client_expiration: Some(std::time::Duration::from_millis(300)),
        sys_interval: std::time::Duration::ZERO,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let (mut away, present) = Raw::session(addr, "wanderer", false);
    assert!(!present);
    away.subscribe_to("expiry/t", 1);
    away.send(&DISCONNECT);
    assert_eq!(away.closed(), []);
    let stats = broker.broker();
    // An expiry is counted once the session and its subscriptions are gone.
    let deadline = std::time::Instant::now() + PATIENCE;
    while stats.stats().clients_expired == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(stats.stored_session_count(), 0);
    assert_eq!(
        stats.subscription_count(),
        0,
        "its subscription went with it"
    );
    let (_back, present) = Raw::session(addr, "wanderer", false);
    assert!(!present, "the client starts afresh");
}

/// Handshake threads are kept for the next connection (src/connection/handshakers.rs):
/// clients connecting one after another, each once the one before has its CONNACK, are all
/// served, and each can publish to a subscriber that connected before them. (A reused
/// thread that kept anything of its previous connection would fail one of them.)
#[test]
fn clients_connecting_one_after_another_are_each_served() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut subscriber = Raw::subscribed(addr, "listener", &["relay/#"]);
    for n in 0..20 {
        let mut client = Raw::connected(addr, &format!("one-after-another-{n}"));
        client.send(&publish(&format!("relay/{n}"), b"x", 0, false, 0));
        client.send(&DISCONNECT);
        assert_eq!(client.closed(), []);
        assert_eq!(subscriber.recv_publish().topic, format!("relay/{n}"));
    }
}

/// A client that connects and says nothing holds up only the handshake thread waiting for
/// its CONNECT: others connecting meanwhile get their CONNACK at once, well within
/// `PATIENCE`, though the silent ones would be waited for much longer (the acceptor starts
/// another handshake thread when none is free, §3.1.4 leaves the wait to the server).
#[test]
fn a_silent_client_does_not_hold_up_the_next_ones() {
    let broker = start_broker_with(Config {
        connect_timeout: std::time::Duration::from_secs(60),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let silent: Vec<Raw> = (0..4).map(|_| Raw::tcp(addr)).collect();
    for n in 0..4 {
        let mut client = Raw::connected(addr, &format!("not-held-up-{n}"));
        client.send(&DISCONNECT);
        assert_eq!(client.closed(), []);
    }
    drop(silent);
}

/// Whether this test process has a thread called `name` (the broker runs in-process, and
/// Linux lists each thread's name in `/proc/self/task/*/comm`).
fn has_thread(name: &str) -> bool {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux lists our threads");
    tasks.flatten().any(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        comm.trim_end() == name
    })
}

/// An idle client costs one thread: its reader answers its SUBSCRIBE and PINGREQ itself, and
/// the writer thread starts with the first message the broker has to deliver to it, which
/// then arrives ([MQTT-3.3.5-1]; chapter 09). A client that publishes at QoS 1 gets its
/// writer thread for its PUBACKs.
#[test]
fn a_client_gets_its_writer_thread_with_its_first_delivery() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut subscriber = Raw::connected(addr, "lazy-sub");
    subscriber.subscribe_to("lazy/t", 1);
    subscriber.send(&PINGREQ);
    assert_eq!(subscriber.recv(), PINGRESP);
    let mut publisher = Raw::connected(addr, "lazy-pub");
    publisher.send(&publish("lazy/t", b"first", 0, false, 0));
    let got = subscriber.recv_publish();
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        ("lazy/t", &b"first"[..])
    );
    assert!(has_thread("tx:lazy-sub"), "the delivery started the writer");
    // The QoS 0 publisher has been sent nothing: still one thread.
    publisher.send(&PINGREQ);
    assert_eq!(publisher.recv(), PINGRESP);
    assert!(has_thread("rx:lazy-pub"));
    assert!(
        !has_thread("tx:lazy-pub"),
        "a QoS 0 publisher needs no writer thread"
    );
    // Its first QoS 1 PUBLISH gets its PUBACK from a writer thread.
    publisher.send(&publish("lazy/t", b"second", 1, false, 7));
    assert_eq!(publisher.recv(), puback(7));
    assert!(has_thread("tx:lazy-pub"), "PUBACKs start the writer");
    let got = subscriber.recv_publish();
    assert_eq!(&got.payload[..], b"second");
    subscriber.send(&puback(got.id.expect("QoS 1 has an id")));
    subscriber.send(&PINGREQ);
    assert_eq!(subscriber.recv(), PINGRESP);
}
