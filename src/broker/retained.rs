//! Retained messages (spec §3.3.1.3): the last message sent with RETAIN=1 on each topic,
//! handed to every new subscription that matches it.
//!
//! They are kept in a trie of topic *names*, the mirror image of the subscription trie:
//! there we store filters and look up a name; here we store names and look up a filter.
//!
//! ```text
//!   root ─ "a" ─ "b" ─ "c" {message}      filter "a/b/+" walks root → a → b, then
//!                  └─ "d" {message}      every child of b: it never looks at the
//!        ─ "x" ─ … 100 000 other topics   other 100 000 topics.
//! ```
//!
//! A literal level follows one edge, `+` follows every child, `#` takes the whole subtree.
//! So the work depends on what can match, not on how many topics are retained. Every walk
//! uses an explicit work list and dropping the trie is iterative too, because a topic name
//! may have thousands of levels.

use std::collections::HashMap;

use super::Message;
use crate::topic::{MULTI_LEVEL, SEPARATOR, SINGLE_LEVEL};

/// The retained message of every topic that has one.
#[derive(Debug, Default)]
pub struct RetainedMessages {
    root: Node,
    len: usize,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Message>,
}

impl RetainedMessages {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of topics with a retained message.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Applies a PUBLISH with RETAIN=1: replaces the topic's retained message
    /// ([MQTT-3.3.1-5], [MQTT-3.3.1-7]), or deletes it when the payload is empty
    /// ([MQTT-3.3.1-10]); an empty message is never stored ([MQTT-3.3.1-11]).
    pub fn set(&mut self, message: &Message) {
        if message.payload.is_empty() {
            self.remove(&message.topic);
            return;
        }
        let mut node = &mut self.root;
        for level in message.topic.split(SEPARATOR) {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.replace(message.clone()).is_none() {
            self.len += 1;
        }
    }

    /// Deletes the retained message of `topic`, if it has one, and prunes the nodes left
    /// empty: the same two steps as `SubscriptionTrie::remove`.
    fn remove(&mut self, topic: &str) {
        let Some(node) = self.find_mut(topic) else {
            return;
        };
        if node.message.take().is_none() {
            return;
        }
        self.len -= 1;
        self.prune(topic);
    }

    fn find_mut(&mut self, topic: &str) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for level in topic.split(SEPARATOR) {
            node = node.children.get_mut(level)?;
        }
        Some(node)
    }

    /// Cuts off the branch of `topic` below its lowest node that still has another use
    /// (the root, a node with a message of its own, or a node with other children).
    fn prune(&mut self, topic: &str) {
        let levels: Vec<&str> = topic.split(SEPARATOR).collect();
        let mut node = &self.root;
        let mut cut_depth = 0;
        for (depth, level) in levels.iter().enumerate() {
            if depth == 0 || node.message.is_some() || node.children.len() > 1 {
                cut_depth = depth;
            }
            match node.children.get(*level) {
                Some(child) => node = child,
                None => return,
            }
        }
        if node.message.is_some() || !node.children.is_empty() {
            return;
        }
        let mut parent = &mut self.root;
        for level in &levels[..cut_depth] {
            match parent.children.get_mut(*level) {
                Some(child) => parent = child,
                None => return,
            }
        }
        drop_iteratively(parent.children.remove(levels[cut_depth]));
    }

    /// Calls `visit` for the retained message of every topic that `filter` matches, and
    /// returns how many trie nodes were looked at (the cost of the lookup).
    pub fn for_each_match(&self, filter: &str, mut visit: impl FnMut(&Message)) -> usize {
        let mut visited = 0;
        let mut work = vec![(&self.root, filter.split(SEPARATOR), true)];
        while let Some((node, mut levels, at_root)) = work.pop() {
            visited += 1;
            // [MQTT-4.7.2-1] at the first level, wildcards skip topics that start with '$'.
            let visible = |name: &str| !(at_root && name.starts_with('$'));
            match levels.next() {
                None => node.message.iter().for_each(&mut visit),
                Some(MULTI_LEVEL) => {
                    // '#' also matches the parent level itself ("a/#" matches "a").
                    node.message.iter().for_each(&mut visit);
                    let mut subtree: Vec<&Node> = node
                        .children
                        .iter()
                        .filter(|(name, _)| visible(name))
                        .map(|(_, child)| child)
                        .collect();
                    while let Some(next) = subtree.pop() {
                        visited += 1;
                        next.message.iter().for_each(&mut visit);
                        subtree.extend(next.children.values());
                    }
                }
                Some(SINGLE_LEVEL) => {
                    for (name, child) in &node.children {
                        if visible(name) {
                            work.push((child, levels.clone(), false));
                        }
                    }
                }
                Some(level) => {
                    if let Some(child) = node.children.get(level) {
                        work.push((child, levels, false));
                    }
                }
            }
        }
        visited
    }
}

impl Drop for RetainedMessages {
    fn drop(&mut self) {
        drop_iteratively(Some(std::mem::take(&mut self.root)));
    }
}

/// Drops a subtree without recursion: a chain of thousands of nodes would otherwise make
/// the compiler-generated drop recurse thousands of frames deep.
fn drop_iteratively(node: Option<Node>) {
    let mut stack: Vec<Node> = node.into_iter().collect();
    while let Some(mut node) = stack.pop() {
        stack.extend(node.children.drain().map(|(_, child)| child));
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
        store.set(&message("a/b", "2"));
        assert_eq!(store.len(), 1);
        let mut payloads = Vec::new();
        store.for_each_match("a/b", |m| payloads.push(m.payload.clone()));
        assert_eq!(payloads, [Arc::from(&b"2"[..])]);
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
        assert!(
            store.root.children.is_empty(),
            "the emptied branch is pruned"
        );
        store.set(&message("never", ""));
        assert!(store.is_empty());
    }

    #[test]
    fn filters_match_retained_topics_like_subscriptions_do() {
        let mut store = RetainedMessages::new();
        for topic in [
            "sport",
            "sport/tennis",
            "sport/tennis/p1",
            "a//b",
            "/x",
            "$SYS/up",
        ] {
            store.set(&message(topic, "m"));
        }
        assert_eq!(
            matching(&store, "sport/#"),
            ["sport", "sport/tennis", "sport/tennis/p1"]
        );
        assert_eq!(matching(&store, "sport/+"), ["sport/tennis"]);
        assert_eq!(matching(&store, "a/+/b"), ["a//b"]);
        assert_eq!(matching(&store, "+/x"), ["/x"]);
        // [MQTT-4.7.2-1] wildcards at the first level skip '$' topics.
        assert_eq!(matching(&store, "#").len(), 5);
        assert_eq!(matching(&store, "+/up"), Vec::<String>::new());
        assert_eq!(matching(&store, "$SYS/#"), ["$SYS/up"]);
    }

    #[test]
    fn a_narrow_filter_looks_only_at_what_can_match() {
        let mut store = RetainedMessages::new();
        for i in 0..100_000 {
            store.set(&message(&format!("x/{}/{}", i % 1000, i), "m"));
        }
        for i in 0..10 {
            store.set(&message(&format!("a/b/{i}"), "m"));
        }
        let mut found = 0;
        let visited = store.for_each_match("a/b/+", |_| found += 1);
        assert_eq!(found, 10);
        // root, a, b, and the ten children of b: nothing of the 100 000 others.
        assert_eq!(visited, 13);
    }

    #[test]
    fn a_very_deep_topic_is_stored_matched_and_dropped_without_recursion() {
        let mut store = RetainedMessages::new();
        let deep = "x/".repeat(30_000) + "x";
        store.set(&message(&deep, "m"));
        assert_eq!(matching(&store, "#").len(), 1);
        assert_eq!(matching(&store, &deep).len(), 1);
        drop(store);
    }
}
