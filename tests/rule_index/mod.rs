//! The rule index: which statement of the standard is kept where, checked by which test,
//! explained in which chapter. It writes `walkthrough/rules.md` from four sources:
//!
//! 1. `walkthrough/rules-summaries.txt`: every numbered statement of MQTT 3.1.1, with its
//!    section, whom it binds, and a one-line summary in our own words;
//! 2. the `[MQTT-x.y.z-n]` citations in `src/`, outside test code: where a rule is kept;
//! 3. the `#[test]` functions in `tests/` and in `src/`: which rules each one names;
//! 4. the chapters `walkthrough/NN-*.md`: which rules each one cites.
//!
//! Everything is read as text (see `rust_items.rs` for the Rust), so the index is only as
//! good as the citations: a check with no `[MQTT-…]` above it is invisible here.
//!
//! `tests/rules.rs` runs it: the file must equal what [`Index::render`] makes
//! (`UPDATE_RULES=1 cargo test --test rules` rewrites it), and the citations and tests
//! must name the same rules. (A directory module, so that cargo does not build it as a
//! test of its own.)

mod render;
pub mod rust_items;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use rust_items::{Item, Items};

/// The statements and their summaries, read.
pub const SUMMARIES: &str = "walkthrough/rules-summaries.txt";
/// The index, written.
pub const RULES_MD: &str = "walkthrough/rules.md";

/// The files of the index itself. They talk about rules without checking the broker, so
/// the tests in them name no rule.
pub const OWN_FILES: &[&str] = &["tests/rules.rs", "tests/rule_index"];

// ---------------------------------------------------------------------------------------
// Hand-written: rules mqttd does not keep, and why. A rule listed here has no citation in
// `src/` on purpose; rules.md shows the reason in place of a site.

pub const NOT_KEPT: &[(&str, &str)] = &[(
    "MQTT-7.0.0-1",
    "mqttd opens no connection to another server: bridges are not built (README, \"not yet\")",
)];

// ---------------------------------------------------------------------------------------
// The statements.

/// One numbered statement of the standard, as `rules-summaries.txt` gives it.
#[derive(Debug, Clone)]
pub struct Statement {
    /// As the standard spells it, odd spellings included: `MQTT-3-8.3-4`.
    pub id: String,
    /// The section it is in: `3.1.2.10`.
    pub section: String,
    /// Whom it binds: `Server`, `Client`, `Both`, `Sender` or `Receiver`.
    pub binds: String,
    /// What it asks, in one line of our own.
    pub summary: String,
}

impl Statement {
    /// Whether the statement binds mqttd. A broker receives every packet a client sends
    /// and sends PUBLISH and all the acknowledgements, so `Sender` and `Receiver`
    /// statements bind it as surely as `Server` and `Both` ones; only `Client` ones do not.
    pub fn binds_the_server(&self) -> bool {
        self.binds != "Client"
    }
}

/// Reads `rules-summaries.txt`: one statement a line, `ID | section | binds | summary`;
/// blank lines and lines starting with `#` are comments.
pub fn statements() -> Vec<Statement> {
    let text = fs::read_to_string(SUMMARIES).unwrap_or_else(|e| panic!("{SUMMARIES}: {e}"));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, '|').map(str::trim).collect();
        let [id, section, binds, summary] = fields[..] else {
            panic!(
                "{SUMMARIES}:{}: expected `ID | section | binds | summary`",
                n + 1
            );
        };
        out.push(Statement {
            id: id.to_owned(),
            section: section.to_owned(),
            binds: binds.to_owned(),
            summary: summary.to_owned(),
        });
    }
    out
}

/// The form of an ID that test names use and that smooths over the standard's odd
/// spellings: `MQTT-3-8.3-4`, `MQTT-3.8.3-4` and `mqtt_3_8_3_4` all give `mqtt_3_8_3_4`.
pub fn key(id: &str) -> String {
    id.to_lowercase().replace(['.', '-'], "_")
}

/// Every rule ID cited in `text`, as written between the brackets: `[MQTT-3.1.2-24]`.
pub fn cited_ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (start, _) in text.match_indices("[MQTT-") {
        let rest = &text[start + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with(']') {
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// Every rule ID a test's name carries, in key form: `…_mqtt_3_1_2_24` gives
/// `mqtt_3_1_2_24`. An ID is `mqtt_` and exactly four numbers, so
/// `identifies_mqtt_3_1_1_and_mqtt_3_1` (protocol versions) carries none.
pub fn ids_in_name(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (start, _) in name.match_indices("mqtt_") {
        let preceded = start == 0 || name[..start].ends_with('_');
        let groups: Vec<&str> = name[start + 5..]
            .split('_')
            .take_while(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_digit()))
            .collect();
        if preceded && groups.len() == 4 {
            out.push(format!("mqtt_{}", groups.join("_")));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// What the code, the tests and the chapters say.

/// A place in the code: a file and the function (or other item) in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    pub file: String,
    pub place: Option<String>,
}

/// A test function and its file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestName {
    pub file: String,
    pub name: String,
}

/// Everything the index knows, by rule key.
pub struct Index {
    pub statements: Vec<Statement>,
    /// Where each rule is cited in `src/`, outside test code.
    pub kept: BTreeMap<String, BTreeSet<Site>>,
    /// Which tests name each rule.
    pub tested: BTreeMap<String, BTreeSet<TestName>>,
    /// Which chapters cite each rule (their file names).
    pub explained: BTreeMap<String, BTreeSet<String>>,
}

impl Index {
    /// Reads the statements, `src/`, `tests/` and the chapters.
    pub fn read() -> Self {
        let mut index = Index {
            statements: statements(),
            kept: BTreeMap::new(),
            tested: BTreeMap::new(),
            explained: BTreeMap::new(),
        };
        let test_modules = test_module_files();
        for file in rust_files("src").into_iter().chain(rust_files("tests")) {
            if OWN_FILES.iter().any(|own| file.starts_with(own)) {
                continue;
            }
            let source = fs::read_to_string(&file).unwrap();
            let whole_file_is_test = test_modules
                .iter()
                .any(|m| file == m.with_extension("rs") || file.starts_with(m));
            index.read_file(&file, &source, whole_file_is_test);
        }
        for (chapter, text) in chapters() {
            for id in cited_ids(&text) {
                let chapters = index.explained.entry(key(&id)).or_default();
                chapters.insert(chapter.clone());
            }
        }
        index
    }

    /// Records what one Rust file says: its tests' rules, and (for a file of `src/`) the
    /// rules its code cites outside test code.
    fn read_file(&mut self, file: &Path, source: &str, whole_file_is_test: bool) {
        let items = Items::read(source);
        let path = file.display().to_string();
        let lines: Vec<&str> = source.lines().collect();
        for test in items.tests() {
            let body = &lines[test.first_line - 1..test.last_line.min(lines.len())];
            let cited = body
                .iter()
                .flat_map(|line| cited_ids(line))
                .map(|id| key(&id));
            for rule in ids_in_name(&test.name).into_iter().chain(cited) {
                let name = TestName {
                    file: path.clone(),
                    name: test.name.clone(),
                };
                self.tested.entry(rule).or_default().insert(name);
            }
        }
        if !file.starts_with("src") || whole_file_is_test {
            return;
        }
        for (n, line) in lines.iter().enumerate() {
            if items.is_test_code(n + 1) {
                continue;
            }
            for id in cited_ids(line) {
                let site = Site {
                    file: path.clone(),
                    place: items.place(n + 1),
                };
                self.kept.entry(key(&id)).or_default().insert(site);
            }
        }
    }

    /// The statement with this key, if the standard has one.
    pub fn statement(&self, rule: &str) -> Option<&Statement> {
        self.statements.iter().find(|s| key(&s.id) == rule)
    }

    /// Where a rule comes in the standard, for listing rules in its order (`3.1.2-9`
    /// before `3.1.2-10`); a rule the standard does not have comes last.
    pub fn position(&self, rule: &str) -> usize {
        let found = self.statements.iter().position(|s| key(&s.id) == rule);
        found.unwrap_or(self.statements.len())
    }

    /// How a key is shown: the standard's spelling when it knows the rule.
    pub fn spelled(&self, rule: &str) -> String {
        match self.statement(rule) {
            Some(statement) => statement.id.clone(),
            None => rule.to_uppercase().replacen('_', "-", 1).replace('_', "."),
        }
    }
}

/// Every `.rs` file under `root`, sorted.
pub fn rust_files(root: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The files under `src/` that are test modules as a whole: `#[cfg(test)] mod tests;`
/// in `src/persistence/mod.rs` makes `src/persistence/tests.rs` (or `tests/mod.rs`) one.
/// Each is returned as the path without `.rs` (`src/persistence/tests`): the module is
/// that path with `.rs`, or everything under it when it is a directory.
fn test_module_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in rust_files("src") {
        let source = fs::read_to_string(&file).unwrap();
        let stem = file.file_stem().unwrap_or_default();
        let dir = match stem.to_str() {
            Some("mod" | "lib" | "main") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        let items = Items::read(&source);
        // An inline `mod tests { … }` is not a file: its lines are test code already.
        let declared = |i: &&Item| i.keyword == "mod" && i.is_cfg_test && !i.has_body;
        for item in items.0.iter().filter(declared) {
            out.push(dir.join(&item.name));
        }
    }
    out
}

/// The chapters, as (file name, text): `walkthrough/NN-*.md`, not README.md or this index.
fn chapters() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("walkthrough").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".md") && name.starts_with(|c: char| c.is_ascii_digit()) {
            out.push((name, fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    out
}
