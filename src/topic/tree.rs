//! A tree of topic levels: the one shape under both the subscription trie (filters, looked
//! up by a topic name) and the topic map of retained messages (names, looked up by a
//! filter).
//!
//! ```text
//!   root ─ "sport" ─ "tennis" ─ "+"  {value}
//!      │         └─ "#"  {value}
//!      └─ "a" ─ ""  ─ "b"  {value}          "a//b": empty levels are real levels
//! ```
//!
//! A path is a topic or filter split at `/`; each node holds one value (`T`), which is
//! "vacant" when nothing is stored there (an empty set of subscribers, no message). The
//! tree knows how to find, create and prune a path; *matching* is different on each side
//! (a name against stored filters, or a filter against stored names), so it stays with the
//! two users, which walk the nodes through [`Node::child`] and [`Node::children`].
//!
//! Nothing here recurses: a topic name may have thousands of levels, so pruning walks a
//! path twice with loops, and dropping a branch uses an explicit stack.

use std::collections::HashMap;

use super::SEPARATOR;

/// A tree of topic levels with a `T` at every node.
#[derive(Debug)]
pub(crate) struct LevelTree<T> {
    root: Node<T>,
}

/// One level of a path: its value, and the levels below by their bytes ([MQTT-4.7.3-4]).
#[derive(Debug)]
pub(crate) struct Node<T> {
    children: HashMap<Box<str>, Node<T>>,
    value: T,
}

impl<T> Node<T> {
    /// The node one level down, following `level` literally (`+` is just the text "+").
    pub(crate) fn child(&self, level: &str) -> Option<&Node<T>> {
        self.children.get(level)
    }

    /// Every node one level down, with its level's text.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&str, &Node<T>)> {
        self.children.iter().map(|(level, node)| (&**level, node))
    }

    pub(crate) fn value(&self) -> &T {
        &self.value
    }
}

impl<T: Default> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            value: T::default(),
        }
    }
}

impl<T: Default> LevelTree<T> {
    pub(crate) fn new() -> Self {
        LevelTree {
            root: Node::default(),
        }
    }

    /// The node matching starts from. Its own value is never used: every path has at
    /// least one level.
    pub(crate) fn root(&self) -> &Node<T> {
        &self.root
    }

    /// The value at `path`, created (with every level leading to it) if it was not there.
    pub(crate) fn get_or_insert(&mut self, path: &str) -> &mut T {
        let mut node = &mut self.root;
        for level in path.split(SEPARATOR) {
            node = node.children.entry(level.into()).or_default();
        }
        &mut node.value
    }

    /// The value at exactly `path`, if the path exists.
    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut T> {
        let mut node = &mut self.root;
        for level in path.split(SEPARATOR) {
            node = node.children.get_mut(level)?;
        }
        Some(&mut node.value)
    }

    /// Calls `visit` with every node's path (levels joined by `/`) and value, the root's
    /// excepted. Depth first, with an explicit stack, like every walk here.
    pub(crate) fn for_each_mut(&mut self, mut visit: impl FnMut(&str, &mut T)) {
        let mut stack: Vec<(String, &mut Node<T>)> = self
            .root
            .children
            .iter_mut()
            .map(|(level, child)| (level.to_string(), child))
            .collect();
        while let Some((path, node)) = stack.pop() {
            visit(&path, &mut node.value);
            for (level, child) in node.children.iter_mut() {
                stack.push((format!("{path}{SEPARATOR}{level}"), child));
            }
        }
    }

    /// After something was taken out at `path`: cuts off the branch below the lowest node
    /// that still has another use (the root, a node whose value is not vacant, or a node
    /// with other children), so that emptied paths do not linger. Does nothing while the
    /// node at `path` still holds something or has children.
    pub(crate) fn prune(&mut self, path: &str, is_vacant: impl Fn(&T) -> bool) {
        let levels: Vec<&str> = path.split(SEPARATOR).collect();
        let mut node = &self.root;
        let mut cut_depth = 0;
        for (depth, level) in levels.iter().enumerate() {
            if depth == 0 || !is_vacant(&node.value) || node.children.len() > 1 {
                cut_depth = depth;
            }
            match node.children.get(*level) {
                Some(child) => node = child,
                None => return,
            }
        }
        if !is_vacant(&node.value) || !node.children.is_empty() {
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
}

impl<T> Drop for LevelTree<T> {
    fn drop(&mut self) {
        let children = std::mem::take(&mut self.root.children);
        let mut stack: Vec<Node<T>> = children.into_values().collect();
        while let Some(mut node) = stack.pop() {
            stack.extend(node.children.drain().map(|(_, child)| child));
        }
    }
}

/// Drops a branch without recursion: a chain of thousands of nodes would otherwise make
/// the compiler-generated drop recurse thousands of frames deep.
fn drop_iteratively<T>(node: Option<Node<T>>) {
    let mut stack: Vec<Node<T>> = node.into_iter().collect();
    while let Some(mut node) = stack.pop() {
        stack.extend(node.children.drain().map(|(_, child)| child));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_with(paths: &[&str]) -> LevelTree<Option<u32>> {
        let mut tree = LevelTree::new();
        for (n, path) in (0..).zip(paths) {
            *tree.get_or_insert(path) = Some(n);
        }
        tree
    }

    /// Takes the value at `path` out and prunes, as both users do.
    fn take(tree: &mut LevelTree<Option<u32>>, path: &str) -> Option<u32> {
        let taken = tree.get_mut(path)?.take();
        tree.prune(path, Option::is_none);
        taken
    }

    #[test]
    fn paths_are_split_at_every_separator_empty_levels_included() {
        let mut tree = tree_with(&["a//b"]);
        assert_eq!(tree.get_mut("a//b"), Some(&mut Some(0)));
        assert!(tree.get_mut("a/b").is_none());
        let empty_level = tree.root().child("a").and_then(|a| a.child(""));
        assert!(empty_level.is_some());
    }

    #[test]
    fn pruning_cuts_only_what_nothing_else_uses() {
        let mut tree = tree_with(&["a", "a/b/c", "a/b/d"]);
        assert_eq!(take(&mut tree, "a/b/c"), Some(1));
        let b = tree.root().child("a").and_then(|a| a.child("b"));
        assert_eq!(b.map(|b| b.children().count()), Some(1), "d is kept");
        assert_eq!(take(&mut tree, "a/b/d"), Some(2));
        let a = tree.root().child("a").expect("a has a value of its own");
        assert_eq!(a.children().count(), 0, "the emptied b branch is gone");
        assert_eq!(take(&mut tree, "a"), Some(0));
        assert_eq!(tree.root().children().count(), 0);
    }

    #[test]
    fn every_path_is_visited_with_its_value() {
        let mut tree = tree_with(&["a", "a//b", "c/+"]);
        let mut seen = Vec::new();
        tree.for_each_mut(|path, value| {
            if let Some(n) = value.take() {
                seen.push((path.to_owned(), n));
            }
        });
        seen.sort();
        assert_eq!(
            seen,
            [("a".into(), 0), ("a//b".into(), 1), ("c/+".into(), 2)]
        );
        assert_eq!(
            tree.get_mut("a//b"),
            Some(&mut None),
            "visit could change the value"
        );
    }

    #[test]
    fn a_node_with_children_is_not_pruned() {
        let mut tree = tree_with(&["a", "a/b"]);
        assert_eq!(take(&mut tree, "a"), Some(0));
        assert!(tree.get_mut("a/b").is_some());
    }

    #[test]
    fn a_very_deep_branch_is_pruned_and_dropped_without_recursion() {
        let deep = "x/".repeat(30_000) + "x";
        let mut tree = tree_with(&[&deep, "x"]);
        assert_eq!(take(&mut tree, &deep), Some(0));
        assert!(tree.root().child("x").is_some());
        *tree.get_or_insert(&deep) = Some(5);
        drop(tree);
    }
}
