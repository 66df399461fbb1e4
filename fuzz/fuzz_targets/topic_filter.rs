//! Feeds arbitrary text to the topic filter and name parsers, and checks the subscription
//! trie and the retained-message trie against a slow, obviously correct matcher written
//! straight from §4.7. Input: `filter`, a newline, then `topic name`.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mqttd::broker::RetainedMessages;
use mqttd::mailbox::Message;
use mqttd::codec::QoS;
use mqttd::topic::{validate_topic_filter, validate_topic_name, SubscriptionTrie};

/// §4.7 as directly as possible: level by level, with the '$' rule.
fn reference_match(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let filter: Vec<&str> = filter.split('/').collect();
    let name: Vec<&str> = name.split('/').collect();
    for (i, level) in filter.iter().enumerate() {
        match *level {
            "#" => return true, // matches the rest, the parent level included
            "+" if i < name.len() => {}
            literal if i < name.len() && name[i] == literal => {}
            _ => return false,
        }
    }
    filter.len() == name.len()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (filter, name) = text.split_once('\n').unwrap_or((text, "a/b"));
    let _ = validate_topic_name(text);
    if validate_topic_filter(filter).is_err() || validate_topic_name(name).is_err() {
        return;
    }
    let expected = reference_match(filter, name);

    let mut trie = SubscriptionTrie::new();
    trie.insert(filter, 1u8, ());
    let mut found = 0;
    trie.for_each_match(name, |_, _| found += 1);
    assert_eq!(found == 1, expected, "subscription trie: {filter:?} vs {name:?}");
    assert!(trie.remove(filter, &1).is_some());
    assert!(trie.is_empty());

    let mut retained = RetainedMessages::new();
    retained.set(&Message {
        topic: name.into(),
        payload: Arc::from(&b"x"[..]),
        qos: QoS::AtMostOnce,
        retain: true,
        stored: None,
    });
    let mut found = 0;
    retained.for_each_match(filter, retained.cutoff(), |_| found += 1);
    assert_eq!(found == 1, expected, "retained trie: {filter:?} vs {name:?}");
});
