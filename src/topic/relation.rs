//! How one filter relates to one topic name, or to another filter, without a trie.
//!
//! The trie answers "which of many stored filters match this name?". Access control asks
//! smaller questions about a single pair, and these three functions answer them:
//!
//! - [`matches()`]: does filter F match the name N? (`a/+` matches `a/b`)
//! - [`filters_overlap`]: is there a name both A and B match? (`a/+/c` and `+/b/#`
//!   share `a/b/c`)
//! - [`filter_covers`]: does A match every name B matches? (`a/#` covers `a/+/c`)
//!
//! All three walk both strings one level at a time, side by side, with no allocation and
//! no recursion, and all three keep the `$` rule ([MQTT-4.7.2-1]): a filter whose first
//! level is a wildcard never matches a name whose first level starts with `$`.
//! The inputs must be valid (see `validate_topic_filter` and `validate_topic_name`);
//! for anything else the answer is meaningless, though never a panic.

use super::{MULTI_LEVEL, SEPARATOR, SINGLE_LEVEL};

/// [MQTT-4.7.2-1] Whether `filter` can never match a name that starts like `topic`: the
/// filter opens with a wildcard and the other side opens with a literal `$…` level. For
/// valid inputs the first character says it all (a level that starts with `+` or `#` is
/// that wildcard), and looking at one character keeps this off the cost of every match.
fn dollar_rule_separates(filter: &str, topic: &str) -> bool {
    topic.starts_with('$') && filter.starts_with(['+', '#'])
}

/// Whether the topic filter `filter` matches the topic name `name` (§4.7), exactly as the
/// subscription trie decides it: `+` takes one level, `#` takes the rest, the parent level
/// included (`sport/#` matches `sport`), and the `$` rule holds.
pub fn matches(filter: &str, name: &str) -> bool {
    // [MQTT-4.7.2-1] wildcards at the first level do not match '$' names.
    if dollar_rule_separates(filter, name) {
        return false;
    }
    let mut names = name.split(SEPARATOR);
    for level in filter.split(SEPARATOR) {
        if level == MULTI_LEVEL {
            return true;
        }
        match names.next() {
            Some(got) if level == SINGLE_LEVEL || level == got => {}
            _ => return false,
        }
    }
    names.next().is_none()
}

/// Whether some topic name is matched by both filters `a` and `b`. Symmetric.
///
/// Level by level: two literals must be equal; `+` agrees with any one level; `#` on
/// either side agrees with whatever is left of the other. When one filter runs out first,
/// the other may only have a lone `#` left, which also matches the parent level.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    // [MQTT-4.7.2-1] a wildcard-first filter cannot reach a name that must start with '$'.
    if dollar_rule_separates(a, b) || dollar_rule_separates(b, a) {
        return false;
    }
    let (mut a_levels, mut b_levels) = (a.split(SEPARATOR), b.split(SEPARATOR));
    loop {
        match (a_levels.next(), b_levels.next()) {
            (None, None) => return true,
            (Some(MULTI_LEVEL), _) | (_, Some(MULTI_LEVEL)) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(x), Some(y)) if x == SINGLE_LEVEL || y == SINGLE_LEVEL || x == y => {}
            (Some(_), Some(_)) => return false,
        }
    }
}

/// Whether every topic name that `inner` matches is matched by `outer` too: `outer` is
/// at least as wide. A name is a filter without wildcards, so `filter_covers(f, name)` is
/// `matches(f, name)`.
///
/// Level by level: `#` in `outer` takes everything left; a literal in `outer` needs the
/// same literal in `inner`; `+` in `outer` takes a literal or `+`, but never `#` (which
/// also matches names of other lengths). When `inner` runs out first, `outer` may only
/// have a lone `#` left.
///
/// One corner: `+/#` covers `#`. A lone `#` matches every name of one level or more (a
/// topic name is never empty, so it has no parent level to match), and so does `+/#`.
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    // [MQTT-4.7.2-1] `#` does not cover `$SYS/#`: the '$' names escape a wildcard-first filter.
    if dollar_rule_separates(outer, inner) {
        return false;
    }
    if inner == MULTI_LEVEL {
        return outer == MULTI_LEVEL || outer == "+/#";
    }
    let (mut outer_levels, mut inner_levels) = (outer.split(SEPARATOR), inner.split(SEPARATOR));
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            (None, None) | (Some(MULTI_LEVEL), _) => return true,
            (_, Some(MULTI_LEVEL)) | (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) if x == SINGLE_LEVEL || x == y => {}
            (Some(_), Some(_)) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::SubscriptionTrie;
    use super::*;

    /// (filter, name, matches?) — the examples of §4.7 and the cases that trip
    /// implementations.
    const MATCH_TABLE: &[(&str, &str, bool)] = &[
        ("a/b", "a/b", true),
        ("a/b", "A/b", false), // case sensitive, [MQTT-4.7.3-4]
        ("a/b", "a/b/", false),
        ("a/+/b", "a//b", true), // empty levels are levels
        ("sport/#", "sport", true),
        ("sport/#", "sports", false),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+", "/finance", false),
        ("/+", "/finance", true),
        ("#", "$SYS/uptime", false),
        ("+/uptime", "$SYS/uptime", false),
        ("$SYS/#", "$SYS", true),
        ("a/#", "a/$b", true), // '$' only matters at the start of the name
    ];

    /// The table's rows include [MQTT-4.7.3-4]: levels compare byte for byte, with no
    /// normalisation (`a/b` does not match `A/b`).
    #[test]
    fn matches_the_topic_table_mqtt_4_7_2_1() {
        for &(filter, name, expected) in MATCH_TABLE {
            assert_eq!(matches(filter, name), expected, "{filter:?} vs {name:?}");
        }
    }

    /// (a, b, overlap?)
    const OVERLAP_TABLE: &[(&str, &str, bool)] = &[
        ("a/b", "a/b", true),
        ("a/b", "a/c", false),
        ("a/+/c", "+/b/#", true),   // both match a/b/c
        ("a/+", "a/b/c", false),    // one level against two
        ("a/#", "a", true),         // both match a
        ("a/+", "a", false),        // a/+ needs a second level
        ("#", "+/+/+", true),       // # agrees with any length
        ("#", "$SYS/#", false),     // [MQTT-4.7.2-1]
        ("+/x", "$SYS/x", false),   // [MQTT-4.7.2-1]
        ("$SYS/+", "$SYS/#", true), // both literal at the first level
        ("a/b/#", "a/+/c", true),
        ("a/b/#", "a/c/#", false),
    ];

    #[test]
    fn overlap_table_is_symmetric_and_keeps_the_dollar_rule_mqtt_4_7_2_1() {
        for &(a, b, expected) in OVERLAP_TABLE {
            assert_eq!(filters_overlap(a, b), expected, "{a:?} and {b:?}");
            assert_eq!(filters_overlap(b, a), expected, "{b:?} and {a:?}");
        }
    }

    /// (outer, inner, covers?)
    const COVER_TABLE: &[(&str, &str, bool)] = &[
        ("a/#", "a/+/c", true),
        ("a/#", "a", true),       // a/# matches the parent level
        ("a/+", "a/#", false),    // a/# also matches a and a/b/c
        ("a/+/c", "a/b/c", true), // a name is the narrowest filter
        ("a/b/c", "a/+/c", false),
        ("+/+", "a/+", true),
        ("#", "+/#", true),
        ("+/#", "#", true),     // both match every name of one level or more
        ("+/+/#", "#", false),  // not `a`
        ("#", "$SYS/#", false), // [MQTT-4.7.2-1]
        ("+/#", "$SYS/x", false),
        ("$SYS/#", "$SYS/broker/+", true),
        ("a", "a/#", false),
    ];

    #[test]
    fn cover_table_keeps_the_dollar_rule_mqtt_4_7_2_1() {
        for &(outer, inner, expected) in COVER_TABLE {
            assert_eq!(
                filter_covers(outer, inner),
                expected,
                "{outer:?} ⊇ {inner:?}"
            );
        }
    }

    /// Every filter of up to three levels over the level alphabet `a`, `$x`, `+`, `#`.
    /// `$x` is there to test the `$` rule; `#` only ever comes last.
    fn small_filters() -> Vec<String> {
        let mut all = Vec::new();
        let mut open: Vec<String> = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for prefix in &open {
                for level in ["a", "$x", "+", "#"] {
                    let filter = if prefix.is_empty() {
                        level.to_owned()
                    } else {
                        format!("{prefix}/{level}")
                    };
                    all.push(filter.clone());
                    if level != "#" {
                        next.push(filter);
                    }
                }
            }
            open = next;
        }
        all
    }

    /// Every name of up to four levels over `a`, `$x` and `c`, a level no filter names,
    /// so that "any level" and "one more level" have witnesses.
    fn small_names() -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let mut last: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            let grown: Vec<String> = last
                .iter()
                .flat_map(|p| {
                    ["a", "$x", "c"].map(|l| {
                        if p.is_empty() {
                            l.to_owned()
                        } else {
                            format!("{p}/{l}")
                        }
                    })
                })
                .collect();
            all.extend(grown.iter().cloned());
            last = grown;
        }
        all
    }

    #[test]
    fn matches_agrees_with_the_subscription_trie_on_every_small_case() {
        let names = small_names();
        for filter in small_filters() {
            let mut trie = SubscriptionTrie::new();
            trie.insert(&filter, (), ());
            for name in &names {
                let mut by_trie = false;
                trie.for_each_match(name, |_, _| by_trie = true);
                assert_eq!(matches(&filter, name), by_trie, "{filter:?} vs {name:?}");
            }
        }
    }

    #[test]
    fn overlap_and_cover_agree_with_brute_force_over_small_names() {
        let (filters, names) = (small_filters(), small_names());
        let matched: Vec<Vec<bool>> = filters
            .iter()
            .map(|f| names.iter().map(|n| matches(f, n)).collect())
            .collect();
        for (i, a) in filters.iter().enumerate() {
            for (j, b) in filters.iter().enumerate() {
                let both = (0..names.len()).any(|k| matched[i][k] && matched[j][k]);
                assert_eq!(filters_overlap(a, b), both, "overlap {a:?} {b:?}");
                let wider = (0..names.len()).all(|k| !matched[j][k] || matched[i][k]);
                assert_eq!(filter_covers(a, b), wider, "cover {a:?} ⊇ {b:?}");
            }
        }
    }
}
