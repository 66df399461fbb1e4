//! A subscriber that stops reading must cost nobody else anything: the publisher goes on at
//! full speed, other subscribers receive everything, and what the stalled subscriber could
//! not take is dropped and counted (checked by counts, never by timing).

mod common;

use common::*;

#[test]
fn a_stalled_subscriber_drops_its_own_messages_and_slows_nobody() {
    const COUNT: u32 = 20_000;
    const BATCH: u32 = 200;
    let broker = start_broker();
    let addr = broker.local_addr();
    // Subscribes to everything, then never reads: its socket buffers fill, then its queue.
    let mut stalled = Raw::connected(addr, "stalled");
    stalled.subscribe_to("#", 0);
    // QoS 0 may fill only half of a queue, so a QoS 1 message still gets in at the end.
    stalled.subscribe_to("marker", 1);
    let mut fast = Raw::connected(addr, "fast");
    fast.subscribe_to("load/#", 0);
    let mut publisher = Raw::connected(addr, "publisher");
    let payload = vec![0x5A; 1024];
    for batch in 0..COUNT / BATCH {
        let mut bytes = Vec::new();
        for i in batch * BATCH..(batch + 1) * BATCH {
            let mut message = i.to_be_bytes().to_vec();
            message.extend_from_slice(&payload);
            bytes.extend(publish("load/t", &message, 0, false, 0));
        }
        publisher.send(&bytes);
        // The fast subscriber keeps up batch by batch and gets every message, in order.
        for i in batch * BATCH..(batch + 1) * BATCH {
            let got = fast.recv_publish();
            assert_eq!(
                got.payload[..4],
                i.to_be_bytes(),
                "fast subscriber, message {i}"
            );
        }
    }
    let dropped = broker.broker().stats().messages_dropped;
    assert!(
        dropped > 0,
        "the stalled subscriber's queue must have overflowed"
    );
    // Now the stalled subscriber reads what it was given. Together with what was dropped
    // for it, that is every message: nothing vanished without being counted.
    publisher.send(&publish("marker", b"end", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let mut received = 0u64;
    loop {
        let got = stalled.recv_publish();
        if got.topic == "marker" {
            break;
        }
        received += 1;
    }
    assert_eq!(received + dropped, u64::from(COUNT));
}
