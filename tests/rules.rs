//! The rule index stays true (STYLE.md, rules 9 and 17): `walkthrough/rules.md` is what
//! the code says, every rule the code keeps is checked by a test, and every rule a test
//! checks is kept somewhere in the code.
//!
//! The words, precisely (the index in `tests/rule_index/` implements them):
//!
//! - A rule is **cited in `src/`** when `[MQTT-x.y.z-n]` (brackets included, spelled as
//!   the standard does or with its odd spellings normalised) appears anywhere in the text
//!   of a file under `src/` (a comment, a doc comment, or a string such as the ID an
//!   error returns), except in test code: lines inside an item marked `#[test]` or
//!   `#[cfg(test)]` (a `mod tests { … }`, a test-only function), its doc comments and
//!   attributes included, and whole files that a `#[cfg(test)] mod name;` declares.
//! - A rule is **named by a test** when a `#[test]` function, in any `.rs` file under
//!   `tests/` or `src/`, either carries it in its name as `mqtt_` and four numbers
//!   (`rejects_qos_3_mqtt_3_3_1_4`; `mqtt_3_8_3_4` stands for `[MQTT-3-8.3-4]`), or has
//!   `[MQTT-x.y.z-n]` in the comments directly above it (doc or plain, up to the first
//!   blank line, attributes in between) or anywhere in its body (a comment, an assertion's
//!   message). Helper functions, `//!` module comments and the index's own files
//!   (`tests/rules.rs`, `tests/rule_index/`) name nothing.
//!
//! `UPDATE_RULES=1 cargo test --test rules` writes rules.md instead of comparing it.

mod rule_index;
mod source_text;

use std::collections::BTreeSet;
use std::fs;

use rule_index::rust_items::Items;
use rule_index::{
    cited_ids, ids_in_name, key, rust_files, statements, Index, NOT_KEPT, OWN_FILES, RULES_MD,
    SUMMARIES,
};
use source_text::code_only;

#[test]
fn rules_md_is_what_the_code_says() {
    let expected = Index::read().render();
    if std::env::var_os("UPDATE_RULES").is_some() {
        fs::write(RULES_MD, &expected).unwrap();
        return;
    }
    let found = fs::read_to_string(RULES_MD).unwrap_or_default();
    if found != expected {
        let first = found
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(found.lines().count().min(expected.lines().count()));
        panic!(
            "{RULES_MD} is out of date (first difference at line {}); write it again with\n  \
             UPDATE_RULES=1 cargo test --test rules",
            first + 1
        );
    }
}

/// (b) of issue 16: a rule the code keeps has a test that says it checks it.
#[test]
fn every_rule_cited_in_src_is_named_by_a_test() {
    let index = Index::read();
    let mut untested: Vec<&String> = index
        .kept
        .keys()
        .filter(|rule| !index.tested.contains_key(*rule))
        .collect();
    untested.sort_by_key(|rule| index.position(rule));
    let untested: Vec<String> = untested.iter().map(|r| index.spelled(r)).collect();
    assert!(
        untested.is_empty(),
        "{} rule(s) cited in src/ but named by no test (in its name, the comments above \
         it or its body):\n  {}",
        untested.len(),
        untested.join("\n  ")
    );
}

/// (c) of issue 16: a rule a test checks is one the code says where it keeps.
#[test]
fn every_rule_a_test_names_is_cited_in_src() {
    let index = Index::read();
    let mut uncited: Vec<_> = index
        .tested
        .iter()
        .filter(|(rule, _)| !index.kept.contains_key(*rule))
        .collect();
    uncited.sort_by_key(|(rule, _)| index.position(rule));
    let uncited: Vec<String> = uncited
        .into_iter()
        .map(|(rule, tests)| {
            let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
            format!("{} (named by {})", index.spelled(rule), names.join(", "))
        })
        .collect();
    assert!(
        uncited.is_empty(),
        "{} rule(s) named by a test but cited nowhere in src/ outside tests:\n  {}",
        uncited.len(),
        uncited.join("\n  ")
    );
}

/// rules.md has one row per statement: none is lost between the parts of the page.
#[test]
fn rules_md_has_a_row_for_every_statement() {
    let page = Index::read().render();
    for statement in statements() {
        let row = format!("| [{}] |", statement.id);
        let rows = page.lines().filter(|l| l.starts_with(&row)).count();
        assert_eq!(rows, 1, "rows for {} in {RULES_MD}", statement.id);
    }
}

/// Every statement that binds the server is kept somewhere, or `NOT_KEPT` (in
/// `tests/rule_index/mod.rs`) says why not.
#[test]
fn every_rule_of_the_server_is_kept_or_says_why() {
    let index = Index::read();
    let silent: Vec<&str> = index
        .statements
        .iter()
        .filter(|s| s.binds_the_server() && !index.kept.contains_key(&key(&s.id)))
        .filter(|s| !NOT_KEPT.iter().any(|(id, _)| *id == s.id))
        .map(|s| s.id.as_str())
        .collect();
    assert!(
        silent.is_empty(),
        "{} rule(s) of the server are cited nowhere in src/ and NOT_KEPT gives no reason:\n  {}",
        silent.len(),
        silent.join("\n  ")
    );
}

/// A citation with a typo (3.1.2-25 for 3.1.2-5, say) would be a rule of its own, kept and tested
/// nowhere: every ID the code, the tests and the chapters give must be the standard's.
#[test]
fn every_rule_cited_anywhere_is_in_the_standard() {
    let index = Index::read();
    let known: BTreeSet<String> = index.statements.iter().map(|s| key(&s.id)).collect();
    let sources = [
        ("src/", index.kept.keys().collect::<Vec<_>>()),
        ("a test", index.tested.keys().collect()),
        ("a chapter", index.explained.keys().collect()),
    ];
    let mut unknown = Vec::new();
    for (source, rules) in sources {
        for rule in rules.into_iter().filter(|r| !known.contains(*r)) {
            unknown.push(format!("{} (in {source})", index.spelled(rule)));
        }
    }
    assert!(
        unknown.is_empty(),
        "not statements of MQTT 3.1.1:\n  {}",
        unknown.join("\n  ")
    );
}

#[test]
fn every_statement_is_listed_once_with_a_summary() {
    let statements = statements();
    assert_eq!(statements.len(), 141, "MQTT 3.1.1 numbers 141 statements");
    let keys: BTreeSet<String> = statements.iter().map(|s| key(&s.id)).collect();
    assert_eq!(keys.len(), statements.len(), "an ID is listed twice");
    let binds = ["Server", "Client", "Both", "Sender", "Receiver"];
    for s in &statements {
        assert!(
            binds.contains(&s.binds.as_str()),
            "{}: binds {}",
            s.id,
            s.binds
        );
        assert!(!s.summary.is_empty(), "{}: no summary in {SUMMARIES}", s.id);
    }
}

/// The IDs, sections and "binds" of `rules-summaries.txt` agree with the requirement list
/// the project is written against, when it is where the chapters point
/// (`../shared/spec/`, or `MQTT_REQUIREMENTS=path`). Without it there is nothing to
/// compare with, and the test says so and passes.
#[test]
fn the_summaries_follow_the_requirement_list() {
    let path = std::env::var("MQTT_REQUIREMENTS")
        .unwrap_or_else(|_| "../shared/spec/mqtt-3.1.1-requirements.md".to_owned());
    let Ok(list) = fs::read_to_string(&path) else {
        eprintln!("{path} not found: nothing to compare {SUMMARIES} with");
        return;
    };
    // A row of the list: `| [ID] | 3.1.2.10 Keep Alive | Server | … |`.
    let mut theirs = BTreeSet::new();
    for line in list.lines().filter(|l| l.starts_with("| [MQTT-")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let id = cells[1].trim_matches(['[', ']']);
        let section = cells[2].split_whitespace().next().unwrap_or("");
        theirs.insert(format!("{id} | {section} | {}", cells[3]));
    }
    let ours: BTreeSet<String> = statements()
        .iter()
        .map(|s| format!("{} | {} | {}", s.id, s.section, s.binds))
        .collect();
    let missing: Vec<&String> = theirs.difference(&ours).collect();
    let extra: Vec<&String> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{SUMMARIES} differs from {path}:\n  missing {missing:?}\n  not in the list {extra:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The readers on small examples, so a change to them is checked too. The IDs below are
// made up where a real one would do, so that nothing here reads as a test of the broker.

mod readers {
    use super::*;

    #[test]
    fn ids_are_read_from_brackets_and_test_names() {
        // Made-up numbers, spelled through a stand-in so that no tool that greps for
        // citations takes them for the broker's.
        let text = "// [XXXX-9.9.9-1] and [XXXX-9-9.9-2], not XXXX-9.9.9-3 or [XXXX-9.9]x"
            .replace("XXXX", "MQTT");
        let text = text.as_str();
        assert_eq!(
            cited_ids(text),
            ["MQTT-9.9.9-1", "MQTT-9-9.9-2", "MQTT-9.9"]
        );
        assert_eq!(key("MQTT-9-9.9-2"), "mqtt_9_9_9_2");
        assert_eq!(
            ids_in_name("empty_deletes_mqtt_9_9_9_10_mqtt_9_9_9_11"),
            ["mqtt_9_9_9_10", "mqtt_9_9_9_11"]
        );
        assert!(ids_in_name("identifies_mqtt_3_1_1_and_mqtt_3_1").is_empty());
    }

    /// A small file with the shapes the index meets: a method in an `impl`, a doc comment
    /// above a function, a `pub(crate)` function, a constant, a test module. Its made-up
    /// rule numbers are spelled `XXXX-…`, turned into citations by the test.
    const SAMPLE: &str = "\
//! Module comment [XXXX-9.9.9-1].
pub struct Frame;

impl Frame {
    /// [XXXX-9.9.9-2] above the method.
    pub(crate) fn check(&self) {
        let s = \"{\"; // a brace in a string
        // [XXXX-9.9.9-3] inside it.
    }
}

const TABLE: &[Frame] = &[Frame {}];

#[cfg(test)]
mod tests {
    /// [XXXX-9.9.9-4] a test's doc comment.
    #[test]
    fn checks_mqtt_9_9_9_5() {}
}
";

    #[test]
    fn items_know_their_place_and_whether_they_are_tests() {
        let sample = SAMPLE.replace("XXXX", "MQTT");
        let items = Items::read(&sample);
        assert_eq!(items.place(1), None, "a module comment has no item");
        assert_eq!(items.place(5).as_deref(), Some("Frame::check"));
        assert_eq!(items.place(8).as_deref(), Some("Frame::check"));
        assert_eq!(items.place(12).as_deref(), Some("TABLE"));
        assert!(!items.is_test_code(8) && items.is_test_code(16));
        let tests: Vec<(&str, usize, usize)> = items
            .tests()
            .map(|t| (t.name.as_str(), t.first_line, t.last_line))
            .collect();
        assert_eq!(tests, [("checks_mqtt_9_9_9_5", 16, 18)]);
    }

    /// The item reader finds every test of the project: as many `#[test]` functions as
    /// there are `#[test]` lines in the code (comments and strings left out).
    #[test]
    fn every_test_attribute_is_read_as_a_test_function() {
        let files = rust_files("src").into_iter().chain(rust_files("tests"));
        let files = files.filter(|f| !OWN_FILES.iter().any(|own| f.starts_with(own)));
        let (mut attributes, mut found) = (0, 0);
        for file in files {
            let source = fs::read_to_string(&file).unwrap();
            let lines = code_only(&source);
            let here = lines.lines().filter(|l| l.trim() == "#[test]").count();
            let read = Items::read(&source).tests().count();
            assert_eq!(read, here, "{}: #[test] functions read", file.display());
            (attributes, found) = (attributes + here, found + read);
        }
        assert!(found > 100 && found == attributes);
    }
}
