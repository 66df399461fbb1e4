//! How long does it take to find the retained messages for a new subscription when the
//! broker holds 100 000 retained topics? Run with:
//!
//! ```console
//! cargo run --release --example retained_lookup
//! ```
//!
//! It prints, for a few filters, how many messages matched, how many trie nodes were looked
//! at, and the average time per lookup. A narrow filter such as `a/b/+` looks only at the
//! branch that can match, however many other topics are retained.

use std::sync::Arc;
use std::time::Instant;

use mqttd::broker::RetainedMessages;
use mqttd::codec::QoS;
use mqttd::mailbox::Message;

fn main() {
    let mut store = RetainedMessages::new();
    let payload: Arc<[u8]> = Arc::from(&b"21.5"[..]);
    // 100 000 topics spread over 100 buildings x 1000 sensors, plus 10 under a/b.
    for i in 0..100_000u32 {
        store.set(&message(
            &format!("site/{}/sensor/{}", i % 100, i),
            &payload,
        ));
    }
    for i in 0..10 {
        store.set(&message(&format!("a/b/{i}"), &payload));
    }
    println!("{} retained topics", store.len());
    for filter in [
        "a/b/+",
        "a/b/3",
        "site/7/sensor/+",
        "site/+/sensor/12345",
        "#",
    ] {
        let rounds = if filter == "#" { 10 } else { 10_000 };
        let (mut matched, mut visited) = (0, 0);
        let start = Instant::now();
        for _ in 0..rounds {
            matched = 0;
            visited = store.for_each_match(filter, store.cutoff(), |_| matched += 1);
        }
        let per_lookup = start.elapsed() / rounds;
        println!("{filter:<22} matched {matched:>6}  visited {visited:>6} nodes  {per_lookup:>10.2?} per lookup");
    }
}

fn message(topic: &str, payload: &Arc<[u8]>) -> Message {
    Message {
        topic: topic.into(),
        payload: Arc::clone(payload),
        qos: QoS::AtLeastOnce,
        retain: true,
        stored: None,
    }
}
