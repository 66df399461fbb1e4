//! A panic in one client's thread (a bug) must not take the broker down, leave a lock held
//! or a session half registered ([MQTT-4.8.0-2]). The `fault-injection` feature, on for
//! the tests only, makes a thread panic on purpose when it handles a message on a special
//! topic (see `src/fault.rs`).

mod common;

use common::*;
use mqttd::fault::{PANIC_IN_READER, PANIC_IN_WRITER};

/// A panic while the reader thread handles an inbound packet closes that connection only
/// ([MQTT-4.8.0-2]): the Will goes out, the session and its id are given up, others go on.
#[test]
fn a_panic_in_a_reader_thread_closes_only_that_connection_and_cleans_up() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut watcher = Raw::connected(addr, "watcher");
    watcher.subscribe_to("will/victim", 1);
    let mut victim = Raw::tcp(addr);
    victim.send(&connect_with_will(
        "victim",
        0,
        "will/victim",
        b"crashed",
        1,
        false,
    ));
    assert_eq!(victim.recv(), CONNACK_ACCEPTED);
    victim.subscribe_to("victim/#", 1);
    assert_eq!(broker.broker().subscription_count(), 2);

    victim.send(&publish(PANIC_IN_READER, b"boom", 0, false, 0));
    assert_eq!(victim.closed(), []);

    // The connection ended like any abnormal end: Will published ...
    let will = watcher.recv_publish();
    assert_eq!(will.payload, b"crashed");
    watcher.send(&puback(will.id.unwrap()));
    // ... nothing was left registered: the same Client Identifier connects again (which
    // waits for the old teardown to finish), as a new session, and the old session's
    // subscriptions are gone: only the watcher's is left ...
    let (_again, present) = Raw::session(addr, "victim", true);
    assert!(!present);
    assert_eq!(broker.broker().subscription_count(), 1);
    // ... and nothing was left locked: others are served.
    assert_still_serving(addr);
}

/// A panic in the writer thread closes that connection only ([MQTT-4.8.0-2]): the
/// publisher and the other subscribers carry on, and the session is kept.
#[test]
fn a_panic_in_a_writer_thread_closes_only_that_connection_and_keeps_its_session() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let (mut fragile, _) = Raw::session(addr, "fragile", false);
    fragile.subscribe_to(PANIC_IN_WRITER, 1);
    let mut sturdy = Raw::connected(addr, "sturdy");
    sturdy.subscribe_to("news", 0);
    let mut publisher = Raw::connected(addr, "publisher");
    publisher.send(&publish(PANIC_IN_WRITER, b"boom", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1), "the publisher is not affected");
    assert_eq!(fragile.closed(), []);
    publisher.send(&publish("news", b"still here", 0, false, 0));
    assert_eq!(sturdy.recv_publish().payload, b"still here");
    assert_still_serving(addr);
    // The Clean Session 0 session was handed back and stored, not lost.
    let (_back, present) = Raw::session(addr, "fragile", false);
    assert!(present);
}

/// The same panic while the *reader* runs the writer's code, before the client has a writer
/// thread: a retained message sent to a new subscription ([MQTT-3.3.1-6]) is written by the
/// reader itself. It too costs that connection only, and the session is kept
/// ([MQTT-4.8.0-2]).
#[test]
fn a_panic_while_the_reader_writes_for_its_writer_keeps_the_session() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut publisher = Raw::connected(addr, "publisher");
    let mut retained = publish(PANIC_IN_WRITER, b"boom", 1, false, 2);
    retained[0] |= 0x01; // RETAIN
    publisher.send(&retained);
    assert_eq!(publisher.recv(), puback(2));
    assert_eq!(broker.broker().retained_count(), 1);
    let (mut fragile, _) = Raw::session(addr, "fragile-reader", false);
    fragile.send(&subscribe(1, &[(PANIC_IN_WRITER, 1)]));
    // The SUBACK may or may not have left before the retained message's panic.
    let mut left = fragile.closed();
    if left.starts_with(&[0x90, 0x03, 0x00, 0x01, 0x01]) {
        left.drain(..5);
    }
    assert_eq!(left, [], "nothing but the SUBACK before the close");
    assert_still_serving(addr);
    let (_back, present) = Raw::session(addr, "fragile-reader", false);
    assert!(present, "the Clean Session 0 session was kept");
}
