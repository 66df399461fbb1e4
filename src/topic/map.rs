//! The topic map: values stored by topic *name*, looked up with a topic *filter*: the
//! mirror image of the subscription trie, where filters are stored and a name is looked
//! up. The broker keeps its retained messages in one (§3.3.1.3).
//!
//! ```text
//!   root ─ "a" ─ "b" ─ "c" {value}        filter "a/b/+" walks root → a → b, then
//!                  └─ "d" {value}        every child of b: it never looks at the
//!        ─ "x" ─ … 100 000 other topics   other 100 000 topics.
//! ```
//!
//! A literal level follows one edge, `+` follows every child, `#` takes the whole subtree.
//! So the work depends on what can match, not on how many topics are stored. The walk uses
//! an explicit work list, because a topic name may have thousands of levels; the nodes and
//! their pruning come from `tree::LevelTree`, which the subscription trie shares.

use super::tree::{LevelTree, Node};
use super::{MULTI_LEVEL, SEPARATOR, SINGLE_LEVEL};

/// One `V` per topic name, found by filter.
#[derive(Debug)]
pub struct TopicMap<V> {
    tree: LevelTree<Option<V>>,
    /// The number of names with a value.
    len: usize,
}

impl<V> Default for TopicMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> TopicMap<V> {
    pub fn new() -> Self {
        TopicMap {
            tree: LevelTree::new(),
            len: 0,
        }
    }

    /// The number of topic names with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` under the topic `name`, returning the value it replaces.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        let previous = self.tree.get_or_insert(name).replace(value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Takes the value of `name` out, if it has one, and prunes the levels left empty.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let removed = self.tree.get_mut(name)?.take()?;
        self.len -= 1;
        self.tree.prune(name, Option::is_none);
        Some(removed)
    }

    /// Calls `visit` for the value of every topic name that `filter` matches, and returns
    /// how many nodes were looked at (the cost of the lookup).
    pub fn for_each_match(&self, filter: &str, mut visit: impl FnMut(&V)) -> usize {
        let mut visited = 0;
        let mut work = vec![(self.tree.root(), filter.split(SEPARATOR), true)];
        while let Some((node, mut levels, at_root)) = work.pop() {
            visited += 1;
            // [MQTT-4.7.2-1] at the first level, wildcards skip topics that start with '$'.
            let visible = |name: &str| !(at_root && name.starts_with('$'));
            match levels.next() {
                None => node.value().iter().for_each(&mut visit),
                Some(MULTI_LEVEL) => {
                    // '#' also matches the parent level itself ("a/#" matches "a").
                    node.value().iter().for_each(&mut visit);
                    let mut subtree: Vec<&Node<Option<V>>> = node
                        .children()
                        .filter(|(name, _)| visible(name))
                        .map(|(_, child)| child)
                        .collect();
                    while let Some(next) = subtree.pop() {
                        visited += 1;
                        next.value().iter().for_each(&mut visit);
                        subtree.extend(next.children().map(|(_, child)| child));
                    }
                }
                Some(SINGLE_LEVEL) => {
                    for (name, child) in node.children() {
                        if visible(name) {
                            work.push((child, levels.clone(), false));
                        }
                    }
                }
                Some(level) => {
                    if let Some(child) = node.child(level) {
                        work.push((child, levels, false));
                    }
                }
            }
        }
        visited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(names: &[&str]) -> TopicMap<String> {
        let mut map = TopicMap::new();
        for name in names {
            map.insert(name, (*name).to_owned());
        }
        map
    }

    fn matching(map: &TopicMap<String>, filter: &str) -> Vec<String> {
        let mut names = Vec::new();
        map.for_each_match(filter, |name| names.push(name.clone()));
        names.sort();
        names
    }

    #[test]
    fn filters_match_stored_names_like_subscriptions_do_mqtt_4_7_2_1() {
        let map = map_of(&[
            "sport",
            "sport/tennis",
            "sport/tennis/p1",
            "a//b",
            "/x",
            "$SYS/up",
        ]);
        assert_eq!(
            matching(&map, "sport/#"),
            ["sport", "sport/tennis", "sport/tennis/p1"]
        );
        assert_eq!(matching(&map, "sport/+"), ["sport/tennis"]);
        assert_eq!(matching(&map, "a/+/b"), ["a//b"]);
        assert_eq!(matching(&map, "+/x"), ["/x"]);
        // [MQTT-4.7.2-1] wildcards at the first level skip '$' topics.
        assert_eq!(matching(&map, "#").len(), 5);
        assert_eq!(matching(&map, "+/up"), Vec::<String>::new());
        assert_eq!(matching(&map, "$SYS/#"), ["$SYS/up"]);
    }

    #[test]
    fn insert_replaces_and_remove_prunes() {
        let mut map = map_of(&["a/b", "a/b/c"]);
        assert_eq!(map.insert("a/b", "new".into()), Some("a/b".into()));
        assert_eq!(map.len(), 2);
        assert_eq!(map.remove("a/b/c"), Some("a/b/c".into()));
        assert_eq!(map.remove("a/b/c"), None);
        assert_eq!(map.remove("a/b"), Some("new".into()));
        assert!(map.is_empty());
        assert_eq!(
            map.tree.root().children().count(),
            0,
            "nothing is left behind"
        );
    }

    #[test]
    fn a_narrow_filter_looks_only_at_what_can_match() {
        let mut map = TopicMap::new();
        for i in 0..100_000 {
            map.insert(&format!("x/{}/{}", i % 1000, i), ());
        }
        for i in 0..10 {
            map.insert(&format!("a/b/{i}"), ());
        }
        let mut found = 0;
        let visited = map.for_each_match("a/b/+", |_| found += 1);
        assert_eq!(found, 10);
        // root, a, b, and the ten children of b: nothing of the 100 000 others.
        assert_eq!(visited, 13);
    }

    #[test]
    fn a_very_deep_name_is_stored_matched_and_dropped_without_recursion() {
        let deep = "x/".repeat(30_000) + "x";
        let map = map_of(&[&deep]);
        assert_eq!(matching(&map, "#").len(), 1);
        assert_eq!(matching(&map, &deep).len(), 1);
        drop(map);
    }
}
