//! Retained messages (spec §3.3.1.3): the last message sent with RETAIN=1 on each topic,
//! handed to every new subscription that matches it.
//!
//! They are kept in a [`TopicMap`]: messages stored by topic name, found with the new
//! subscription's filter, so a narrow filter looks only at the branch that can match,
//! however many topics are retained (chapter 07). This file adds the rules of RETAIN on top:
//! a new message replaces the old one, and an empty one deletes it.

use crate::mailbox::Message;
use crate::topic::TopicMap;

/// The retained message of every topic that has one.
#[derive(Debug, Default)]
pub struct RetainedMessages {
    messages: TopicMap<Message>,
    /// The payload bytes of every retained message together, for `$SYS`.
    bytes: usize,
}

impl RetainedMessages {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of topics with a retained message.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Applies a PUBLISH with RETAIN=1: replaces the topic's retained message
    /// ([MQTT-3.3.1-5], [MQTT-3.3.1-7]), or deletes it when the payload is empty
    /// ([MQTT-3.3.1-10]); an empty message is never stored ([MQTT-3.3.1-11]).
    pub fn set(&mut self, message: &Message) {
        let replaced = if message.payload.is_empty() {
            self.messages.remove(&message.topic)
        } else {
            self.bytes += message.payload.len();
            self.messages.insert(&message.topic, message.clone())
        };
        if let Some(old) = replaced {
            self.bytes -= old.payload.len();
        }
    }

    /// The payload bytes of all retained messages together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Calls `visit` for the retained message of every topic that `filter` matches, and
    /// returns how many trie nodes were looked at (the cost of the lookup).
    pub fn for_each_match(&self, filter: &str, visit: impl FnMut(&Message)) -> usize {
        self.messages.for_each_match(filter, visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use std::sync::Arc;

    fn message(topic: &str, payload: &str) -> Message {
        Message {
            topic: topic.into(),
            payload: Arc::from(payload.as_bytes()),
            qos: QoS::AtLeastOnce,
            retain: true,
            stored: None,
        }
    }

    fn matching(store: &RetainedMessages, filter: &str) -> Vec<String> {
        let mut topics = Vec::new();
        store.for_each_match(filter, |m| topics.push(m.topic.to_string()));
        topics.sort();
        topics
    }

    #[test]
    fn a_new_message_replaces_the_old_one_mqtt_3_3_1_5() {
        let mut store = RetainedMessages::new();
        store.set(&message("a/b", "1"));
        store.set(&message("a/b", "22"));
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), 2);
        let mut payloads = Vec::new();
        store.for_each_match("a/b", |m| payloads.push(m.payload.clone()));
        assert_eq!(payloads, [Arc::from(&b"22"[..])]);
    }

    #[test]
    fn an_empty_payload_deletes_and_is_not_stored_mqtt_3_3_1_10_mqtt_3_3_1_11() {
        let mut store = RetainedMessages::new();
        store.set(&message("a/b", "1"));
        store.set(&message("a/b/c", "2"));
        store.set(&message("a/b", ""));
        assert_eq!(matching(&store, "#"), ["a/b/c"]);
        store.set(&message("a/b/c", ""));
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
        store.set(&message("never", ""));
        assert!(store.is_empty());
        assert_eq!(matching(&store, "#"), Vec::<String>::new());
    }
}
