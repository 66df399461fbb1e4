//! Topic names, topic filters, and how they match (spec §4.7).
//!
//! A *topic name* is what a PUBLISH is sent to (`sensors/kitchen/temp`); a *topic filter* is
//! what a SUBSCRIBE asks for and may hold wildcards: `+` stands for exactly one level,
//! `#` for any number of levels (zero included) at the end. Levels are separated by `/`, and
//! empty levels are real levels: `a//b` has three, `/a` has two.
//!
//! This module holds the rules of §4.7 in one place: [`validate_topic_name`] and
//! [`validate_topic_filter`] for the shape of a string, [`trie::SubscriptionTrie`] for
//! finding every filter that matches a name, and [`map::TopicMap`] for finding every name
//! that matches a filter, both with the `$` rule ([MQTT-4.7.2-1]). The two share one tree
//! of levels (`tree.rs`). For one pair at a time, [`matches()`], [`filters_overlap`] and
//! [`filter_covers`] (`relation.rs`) say how a filter relates to a name or to another
//! filter; access control (`acl`) asks those questions. The module sits at the bottom of
//! the crate and imports nothing from it.

pub mod map;
mod relation;
mod tree;
pub mod trie;

use std::fmt;

pub use map::TopicMap;
pub use relation::{filter_covers, filters_overlap, matches};
pub use trie::SubscriptionTrie;

/// The level separator.
pub const SEPARATOR: char = '/';
/// The single-level wildcard.
pub const SINGLE_LEVEL: &str = "+";
/// The multi-level wildcard.
pub const MULTI_LEVEL: &str = "#";

/// The longest topic name or filter, in bytes ([MQTT-4.7.3-3]). Topics travel as UTF-8
/// string fields, whose two-byte length prefix cannot say more (§1.5.3); the rule is kept
/// here, with the other rules of §4.7, so that it holds for topics from anywhere.
pub const MAX_TOPIC_LENGTH: usize = 65_535;

/// Why a string is not a valid topic name or topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Zero characters.
    Empty,
    /// Longer than the 65 535 bytes a UTF-8 string field can hold.
    TooLong,
    /// Contains U+0000.
    NullCharacter,
    /// A topic *name* containing `+` or `#`.
    WildcardInName,
    /// `#` that is not alone in the last level (`a/#/b`, `a#`).
    MisplacedMultiLevel,
    /// `+` that does not occupy a whole level (`a+`, `+a/b`).
    MisplacedSingleLevel,
}

impl TopicError {
    /// The statement the error breaks.
    pub fn rule(self) -> &'static str {
        match self {
            TopicError::Empty => "[MQTT-4.7.3-1]",
            TopicError::TooLong => "[MQTT-4.7.3-3]",
            TopicError::NullCharacter => "[MQTT-4.7.3-2]",
            TopicError::WildcardInName => "[MQTT-3.3.2-2]",
            TopicError::MisplacedMultiLevel => "[MQTT-4.7.1-2]",
            TopicError::MisplacedSingleLevel => "[MQTT-4.7.1-3]",
        }
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            TopicError::Empty => "a topic must have at least one character",
            TopicError::TooLong => "a topic must fit in 65 535 bytes",
            TopicError::NullCharacter => "a topic must not contain U+0000",
            TopicError::WildcardInName => "a topic name must not contain '+' or '#'",
            TopicError::MisplacedMultiLevel => "'#' must be the last level, alone",
            TopicError::MisplacedSingleLevel => "'+' must fill a whole level",
        };
        f.write_str(what)
    }
}

/// Rules shared by names and filters (§4.7.3).
fn validate_common(topic: &str) -> Result<(), TopicError> {
    // [MQTT-4.7.3-1] at least one character.
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    // [MQTT-4.7.3-3] at most 65 535 bytes. Anything decoded from the wire already fits.
    if topic.len() > MAX_TOPIC_LENGTH {
        return Err(TopicError::TooLong);
    }
    // [MQTT-4.7.3-2] no U+0000 (the string decoder has rejected it already; this keeps the
    // rule true for topics that come from anywhere else).
    if topic.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Checks a topic name, as carried by PUBLISH and by a Will.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    validate_common(name)?;
    // [MQTT-3.3.2-2] [MQTT-4.7.1-1] wildcards belong to filters only.
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter, as carried by SUBSCRIBE and UNSUBSCRIBE.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_common(filter)?;
    let mut levels = filter.split(SEPARATOR).peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        // [MQTT-4.7.1-2] '#' only as a whole level, and only as the last one.
        if level.contains('#') && (level != MULTI_LEVEL || !is_last) {
            return Err(TopicError::MisplacedMultiLevel);
        }
        // [MQTT-4.7.1-3] '+' only as a whole level.
        if level.contains('+') && level != SINGLE_LEVEL {
            return Err(TopicError::MisplacedSingleLevel);
        }
    }
    Ok(())
}

/// The number of levels in a topic or filter: one more than the number of separators.
pub fn level_count(topic: &str) -> usize {
    topic.split(SEPARATOR).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topic_names() {
        for name in [
            "a",
            "/",
            "a/b",
            "a//b",
            "/a",
            "a/",
            "$SYS/x",
            "with space",
            "ü/€",
        ] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name:?}");
        }
    }

    /// An empty name ([MQTT-4.7.3-1]), a wildcard in a name ([MQTT-3.3.2-2],
    /// [MQTT-4.7.1-1]) and U+0000 ([MQTT-4.7.3-2]) are refused here, whatever the string
    /// decoder has already refused, so the rules hold for topics from anywhere.
    #[test]
    fn invalid_topic_names() {
        let table = [
            ("", TopicError::Empty),
            ("a/+", TopicError::WildcardInName),
            ("#", TopicError::WildcardInName),
            ("a#", TopicError::WildcardInName),
            ("a\0b", TopicError::NullCharacter),
        ];
        for (name, error) in table {
            assert_eq!(validate_topic_name(name), Err(error), "{name:?}");
        }
    }

    #[test]
    fn valid_topic_filters_mqtt_4_7_1_2_and_mqtt_4_7_1_3() {
        for filter in [
            "#",
            "+",
            "a/#",
            "a/+",
            "+/+",
            "/+",
            "+/tennis/#",
            "sport/+/player1",
            "a//b",
            "/",
            "$SYS/#",
        ] {
            assert_eq!(validate_topic_filter(filter), Ok(()), "{filter:?}");
        }
    }

    #[test]
    fn invalid_topic_filters_mqtt_4_7_1_2_and_mqtt_4_7_1_3() {
        let table = [
            ("", TopicError::Empty),
            ("a/#/b", TopicError::MisplacedMultiLevel),
            ("sport#", TopicError::MisplacedMultiLevel),
            ("#/", TopicError::MisplacedMultiLevel),
            ("a/b#", TopicError::MisplacedMultiLevel),
            ("a+", TopicError::MisplacedSingleLevel),
            ("sport+", TopicError::MisplacedSingleLevel),
            ("+a/b", TopicError::MisplacedSingleLevel),
            ("a/++", TopicError::MisplacedSingleLevel),
        ];
        for (filter, error) in table {
            assert_eq!(validate_topic_filter(filter), Err(error), "{filter:?}");
            assert!(error.rule().starts_with("[MQTT-"));
        }
    }

    #[test]
    fn topics_longer_than_65535_bytes_are_refused_mqtt_4_7_3_3() {
        let longest = "a".repeat(65_535);
        assert_eq!(validate_topic_name(&longest), Ok(()));
        assert_eq!(validate_topic_filter(&longest), Ok(()));
        let too_long = "a".repeat(65_536);
        assert_eq!(validate_topic_name(&too_long), Err(TopicError::TooLong));
        assert_eq!(validate_topic_filter(&too_long), Err(TopicError::TooLong));
    }

    #[test]
    fn counts_levels_including_empty_ones() {
        assert_eq!(level_count("a"), 1);
        assert_eq!(level_count("a//b"), 3);
        assert_eq!(level_count("/"), 2);
    }
}
