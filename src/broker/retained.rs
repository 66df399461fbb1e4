//! Retained messages (spec §3.3.1.3): the last message sent with RETAIN=1 on each topic,
//! handed to every new subscription that matches it.
//!
//! They are kept in a [`TopicMap`]: messages stored by topic name, found with the new
//! subscription's filter, so a narrow filter looks only at the branch that can match,
//! however many topics are retained (chapter 07). This file adds the rules of RETAIN on top:
//! a new message replaces the old one, and an empty one deletes it.
//!
//! Each message stored is also numbered, 1, 2, 3, …, so that a new subscription can tell
//! the retained messages it must be sent from those that reach it live (a [`Cutoff`]).

use crate::mailbox::Message;
use crate::topic::TopicMap;

/// The retained message of every topic that has one.
#[derive(Debug, Default)]
pub struct RetainedMessages {
    messages: TopicMap<Numbered>,
    /// The payload bytes of every retained message together, for `$SYS`.
    bytes: usize,
    /// The number given to the last message stored; 0 before the first.
    last: u64,
}

/// A retained message and the number [`RetainedMessages::set`] gave it.
#[derive(Debug)]
struct Numbered {
    message: Message,
    number: u64,
}

/// Where the retained messages stood when a subscription was added to the trie. The
/// messages stored up to here were routed before the subscription existed, so only a
/// retained copy can bring them; those stored later were routed after it, and reached the
/// subscriber live. Taken and set under the `subscriptions` lock (see `Broker::publish` and
/// `Broker::subscribe`), so "stored later" and "routed later" are the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff(u64);

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
        self.last += 1;
        let replaced = if message.payload.is_empty() {
            self.messages.remove(&message.topic)
        } else {
            self.bytes += message.payload.len();
            let numbered = Numbered {
                message: message.clone(),
                number: self.last,
            };
            self.messages.insert(&message.topic, numbered)
        };
        if let Some(old) = replaced {
            self.bytes -= old.message.payload.len();
        }
    }

    /// Where the store stands now: every message stored so far is at or before it.
    pub fn cutoff(&self) -> Cutoff {
        Cutoff(self.last)
    }

    /// The payload bytes of all retained messages together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Calls `visit` for the retained message of every topic that `filter` matches and
    /// that was stored at or before `cutoff`, and returns how many trie nodes were looked
    /// at (the cost of the lookup).
    pub fn for_each_match(
        &self,
        filter: &str,
        cutoff: Cutoff,
        mut visit: impl FnMut(&Message),
    ) -> usize {
        self.messages.for_each_match(filter, |numbered| {
            if numbered.number <= cutoff.0 {
                visit(&numbered.message);
            }
        })
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
        let all = store.cutoff();
        store.for_each_match(filter, all, |m| topics.push(m.topic.to_string()));
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
        store.for_each_match("a/b", store.cutoff(), |m| payloads.push(m.payload.clone()));
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

    #[test]
    fn a_cutoff_leaves_out_messages_stored_after_it() {
        let mut store = RetainedMessages::new();
        store.set(&message("a/old", "1"));
        let cutoff = store.cutoff();
        store.set(&message("a/new", "2"));
        let mut topics = Vec::new();
        store.for_each_match("a/+", cutoff, |m| topics.push(m.topic.to_string()));
        assert_eq!(topics, ["a/old"]);
        // A replacement stored after the cutoff is left out as well: it was routed live.
        store.set(&message("a/old", "3"));
        let mut count = 0;
        store.for_each_match("a/+", cutoff, |_| count += 1);
        assert_eq!(count, 0);
        assert_eq!(matching(&store, "a/+"), ["a/new", "a/old"]);
    }
}
