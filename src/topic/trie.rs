//! The subscription trie: every topic filter, split into levels, as a path from the root.
//!
//! ```text
//!   root ─ "sport" ─ "tennis" ─ "+" ─ {subscribers of sport/tennis/+}
//!      │         └─ "#" ─ {subscribers of sport/#}
//!      └─ "+" ─ "news" ─ {subscribers of +/news}
//! ```
//!
//! Wildcards are stored as ordinary levels named `+` and `#`. Matching a topic name walks
//! the trie level by level and, at each node, follows up to three edges: the literal level,
//! `+` (which swallows one level) and `#` (which matches everything from here, including the
//! parent level itself: `sport/#` matches `sport`). So the work depends on how many filters
//! *could* match, not on how many filters exist.
//!
//! The trie knows nothing about sessions: each filter holds a map from a key (who
//! subscribed) to a value (what they asked for). Subscribing again with the same key
//! replaces the value, which is exactly [MQTT-3.8.4-3].
//!
//! The nodes and their pruning come from `tree::LevelTree`, which the retained messages' topic
//! map shares. Matching uses an explicit work list instead of recursion, because a topic
//! *name* may have thousands of levels.

use std::collections::HashMap;
use std::hash::Hash;

use super::tree::LevelTree;
use super::{MULTI_LEVEL, SEPARATOR, SINGLE_LEVEL};

/// A set of topic filters, each with the subscribers (`K`) and their options (`V`).
#[derive(Debug)]
pub struct SubscriptionTrie<K, V> {
    /// At each node, who subscribed to the filter that ends there.
    tree: LevelTree<HashMap<K, V>>,
    /// The number of (filter, key) pairs stored.
    len: usize,
}

impl<K: Eq + Hash, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash, V> SubscriptionTrie<K, V> {
    pub fn new() -> Self {
        SubscriptionTrie {
            tree: LevelTree::new(),
            len: 0,
        }
    }

    /// The number of (filter, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `key` to `filter`, returning the value it replaces if `key` was already there.
    /// The filter must be valid (see `validate_topic_filter`).
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        let previous = self.tree.get_or_insert(filter).insert(key, value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes `key` from exactly `filter` (compared literally, as UNSUBSCRIBE requires,
    /// [MQTT-3.10.4-1]) and prunes the nodes that are left empty.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        let removed = self.tree.get_mut(filter)?.remove(key)?;
        self.len -= 1;
        self.tree.prune(filter, HashMap::is_empty);
        Some(removed)
    }

    /// Calls `visit` for every subscription: its filter, its key, and its value to change
    /// (a broker revising what its subscribers may receive, say).
    pub fn for_each_mut(&mut self, mut visit: impl FnMut(&str, &K, &mut V)) {
        self.tree.for_each_mut(|filter, subscribers| {
            for (key, value) in subscribers.iter_mut() {
                visit(filter, key, value);
            }
        });
    }

    /// Calls `visit` for every (subscriber, value) whose filter matches the topic `name`.
    ///
    /// A subscriber with several matching filters is visited once per filter; the caller
    /// decides what overlapping subscriptions mean ([MQTT-3.3.5-1]).
    pub fn for_each_match(&self, name: &str, mut visit: impl FnMut(&K, &V)) {
        // [MQTT-4.7.2-1] a filter starting with a wildcard does not match a name starting
        // with '$': at the root, only literal levels are followed for such names.
        let dollar = name.starts_with('$');
        let mut work = vec![(self.tree.root(), name.split(SEPARATOR), true)];
        while let Some((node, mut levels, at_root)) = work.pop() {
            let wildcards = !(at_root && dollar);
            if wildcards {
                // '#' matches the rest of the name, however long, and the parent level.
                if let Some(hash) = node.child(MULTI_LEVEL) {
                    hash.value().iter().for_each(|(k, v)| visit(k, v));
                }
            }
            match levels.next() {
                None => node.value().iter().for_each(|(k, v)| visit(k, v)),
                Some(level) => {
                    if let Some(child) = node.child(level) {
                        work.push((child, levels.clone(), false));
                    }
                    if wildcards {
                        if let Some(plus) = node.child(SINGLE_LEVEL) {
                            work.push((plus, levels, false));
                        }
                    }
                }
            }
        }
    }

    /// The value `key` holds at exactly `filter`, to change in place.
    pub fn get_mut(&mut self, filter: &str, key: &K) -> Option<&mut V> {
        self.tree.get_mut(filter)?.get_mut(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Does `filter` match `name`, according to the trie?
    fn matches(filter: &str, name: &str) -> bool {
        let mut trie = SubscriptionTrie::new();
        trie.insert(filter, 1u32, ());
        let mut found = false;
        trie.for_each_match(name, |_, _| found = true);
        found
    }

    /// (filter, topic name, matches?) — the examples of §4.7 and the cases that trip
    /// implementations.
    const MATCH_TABLE: &[(&str, &str, bool)] = &[
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("a/b", "A/b", false), // case sensitive, [MQTT-4.7.3-4]
        ("a/b", "a/b/", false),
        ("a//b", "a//b", true), // empty levels are levels
        ("a/+/b", "a//b", true),
        ("a/b", "a//b", false),
        // '#': any number of levels, including the parent level itself
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("sport/#", "sport/", true),
        ("sport/#", "sports", false),
        ("#", "a", true),
        ("#", "/", true),
        ("#", "a/b/c", true),
        // '+': exactly one level
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("+", "a", true),
        ("+/b/#", "a/b", true),
        ("+/b/#", "a/b/c/d", true),
        // [MQTT-4.7.2-1] wildcards at the first level do not match '$' topics
        ("#", "$SYS/uptime", false),
        ("+/uptime", "$SYS/uptime", false),
        ("+", "$SYS", false),
        ("$SYS/#", "$SYS/uptime", true),
        ("$SYS/+", "$SYS/uptime", true),
        ("a/#", "a/$b", true), // '$' only matters at the start of the name
        ("a/+", "a/$b", true),
    ];

    #[test]
    fn matches_the_topic_table_mqtt_4_7_2_1() {
        for &(filter, name, expected) in MATCH_TABLE {
            assert_eq!(matches(filter, name), expected, "{filter:?} vs {name:?}");
        }
    }

    #[test]
    fn visits_each_matching_filter_of_each_subscriber() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/b", "alice", 0);
        trie.insert("a/+", "alice", 1);
        trie.insert("#", "bob", 2);
        trie.insert("c", "carol", 3);
        let mut seen = Vec::new();
        trie.for_each_match("a/b", |k, v| seen.push((*k, *v)));
        seen.sort();
        assert_eq!(seen, [("alice", 0), ("alice", 1), ("bob", 2)]);
    }

    #[test]
    fn subscribing_again_replaces_mqtt_3_8_4_3() {
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.insert("a/b", "alice", 0), None);
        assert_eq!(trie.insert("a/b", "alice", 2), Some(0));
        assert_eq!(trie.len(), 1);
        let mut seen = Vec::new();
        trie.for_each_match("a/b", |_, v| seen.push(*v));
        assert_eq!(seen, [2]);
    }

    #[test]
    fn remove_is_literal_and_prunes_mqtt_3_10_4_1() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/b/c", "alice", ());
        trie.insert("a/+", "bob", ());
        // A wildcard filter does not remove what it would match.
        assert_eq!(trie.remove("a/#", &"alice"), None);
        assert_eq!(trie.remove("a/b/c", &"bob"), None);
        assert_eq!(trie.remove("a/b/c", &"alice"), Some(()));
        assert_eq!(trie.len(), 1);
        // Only "a/+" is left: the "b/c" branch is gone, "a" stays for "+".
        let a = trie.tree.root().child("a").expect("a stays");
        assert_eq!(
            a.children().map(|(level, _)| level).collect::<Vec<_>>(),
            ["+"]
        );
        assert_eq!(trie.remove("a/+", &"bob"), Some(()));
        assert_eq!(trie.tree.root().children().count(), 0);
        assert!(trie.is_empty());
    }

    #[test]
    fn removing_keeps_nodes_that_other_filters_use() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a", "alice", ());
        trie.insert("a/b/c", "bob", ());
        trie.insert("a/b/d", "carol", ());
        trie.remove("a/b/c", &"bob");
        assert!(matches_in(&trie, "a"));
        assert!(matches_in(&trie, "a/b/d"));
        trie.remove("a/b/d", &"carol");
        let a = trie.tree.root().child("a").expect("a has a subscriber");
        assert_eq!(a.children().count(), 0);
        assert!(matches_in(&trie, "a"));
    }

    fn matches_in(trie: &SubscriptionTrie<&str, ()>, name: &str) -> bool {
        let mut found = false;
        trie.for_each_match(name, |_, _| found = true);
        found
    }

    #[test]
    fn a_very_deep_topic_name_is_matched_without_recursion() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("#", 1u8, ());
        trie.insert("+/+", 2u8, ());
        let deep = "x/".repeat(30_000) + "x";
        let mut seen = Vec::new();
        trie.for_each_match(&deep, |k, _| seen.push(*k));
        assert_eq!(seen, [1]);
    }
}
