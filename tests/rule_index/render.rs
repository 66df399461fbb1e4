//! Writing `walkthrough/rules.md`: one table per part of the standard, one row per
//! statement. Links are relative to `walkthrough/`, where the file lives.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{key, Index, Site, Statement, TestName, NOT_KEPT};

/// The parts of the standard the tables follow: a section number and its title. A
/// statement goes under the part whose number its section is or begins with (`3.1` holds
/// 3.1 and 3.1.2.10, not 3.10).
const PARTS: &[(&str, &str)] = &[
    ("1", "§1 UTF-8 strings"),
    ("2", "§2 The packet format"),
    ("3.1", "§3.1 CONNECT"),
    ("3.2", "§3.2 CONNACK"),
    ("3.3", "§3.3 PUBLISH"),
    ("3.6", "§3.6 PUBREL"),
    ("3.8", "§3.8 SUBSCRIBE"),
    ("3.9", "§3.9 SUBACK"),
    ("3.10", "§3.10 UNSUBSCRIBE"),
    ("3.12", "§3.12 PINGREQ"),
    ("3.14", "§3.14 DISCONNECT"),
    ("4", "§4 Operational behaviour"),
    ("6", "§6 WebSocket"),
    ("7", "§7 Conformance"),
];

/// Whether `section` (`3.1.2.10`) is in the part numbered `part` (`3.1`).
fn in_part(section: &str, part: &str) -> bool {
    section == part || section.starts_with(&format!("{part}."))
}

const HEADER: &str = "\
# The rule index

<!-- Written by tests/rule_index/ from the code: do not edit by hand. To write it again:
     UPDATE_RULES=1 cargo test --test rules -->

Every numbered statement of MQTT 3.1.1, with where mqttd keeps it, the tests that check it
and the chapter that explains it. It is written by a program
([`tests/rule_index/mod.rs`](../tests/rule_index/mod.rs)) from the code itself, and
`tests/rules.rs` fails when this page is out of date: after changing a citation, a test or
a chapter, write it again with

```console
$ UPDATE_RULES=1 cargo test --test rules
```

How to read a row:

- **rule**: the statement's identifier, spelled as the standard spells it (two are odd:
  `[MQTT-3.1.2.7]` and `[MQTT-3-8.3-4]`).
- **binds**: whom the standard puts the duty on. A broker receives every packet a client
  sends and itself sends PUBLISH and every acknowledgement, so *Sender* and *Receiver*
  statements bind it as much as *Server* and *Both* ones do: all four are in the first
  part below. *Client* statements come last: a broker is not bound by them, but many say
  what it must check in what it receives.
- **what it asks**: one line in our own words, kept in
  [`rules-summaries.txt`](rules-summaries.txt). It is a reminder, not the standard: read
  the standard's sentence before relying on a detail.
- **kept in**: each file and function whose code (outside tests) cites the rule as
  `[MQTT-x.y.z-n]`, in a comment or in the error it returns. A rule mqttd does not keep
  says why instead.
- **checked by**: each test that names the rule, in its name (`…_mqtt_3_1_2_24`), in the
  comments above it or anywhere in its body (a comment, an assertion's message).
- **explained in**: the chapters of this walkthrough that cite it.
";

impl Index {
    /// The whole of `walkthrough/rules.md`.
    pub fn render(&self) -> String {
        let mut out = String::from(HEADER);
        self.write_counts(&mut out);
        out.push_str("\n## The statements that bind the server\n");
        for (part, title) in PARTS {
            let rows: Vec<&Statement> = self
                .statements
                .iter()
                .filter(|s| s.binds_the_server() && in_part(&s.section, part))
                .collect();
            self.write_table(&mut out, &format!("### {title}"), &rows);
        }
        out.push_str(
            "\n## The client's statements\n\n\
             These bind a client only. The broker does not have to keep them, but it reads \
             what clients send, and a row with a site is one it checks on input.\n",
        );
        let client: Vec<&Statement> = self
            .statements
            .iter()
            .filter(|s| !s.binds_the_server())
            .collect();
        self.write_table(&mut out, "", &client);
        out
    }

    fn write_counts(&self, out: &mut String) {
        let server: Vec<&Statement> = self
            .statements
            .iter()
            .filter(|s| s.binds_the_server())
            .collect();
        let kept = server
            .iter()
            .filter(|s| self.kept.contains_key(&key(&s.id)));
        let tested = server
            .iter()
            .filter(|s| self.tested.contains_key(&key(&s.id)));
        let both = server.iter().filter(|s| {
            let rule = key(&s.id);
            self.kept.contains_key(&rule) && self.tested.contains_key(&rule)
        });
        let _ = write!(
            out,
            "\nOf the {} statements, {} bind the server: {} of them are cited in `src/`, {} \
             are named by a test, {} are both.\n",
            self.statements.len(),
            server.len(),
            kept.count(),
            tested.count(),
            both.count(),
        );
    }

    fn write_table(&self, out: &mut String, heading: &str, rows: &[&Statement]) {
        if rows.is_empty() {
            return;
        }
        if !heading.is_empty() {
            let _ = write!(out, "\n{heading}\n");
        }
        out.push_str(
            "\n| rule | binds | what it asks | kept in | checked by | explained in |\n\
             |------|-------|--------------|---------|------------|--------------|\n",
        );
        for statement in rows {
            let rule = key(&statement.id);
            let _ = writeln!(
                out,
                "| [{}] | {} | {} | {} | {} | {} |",
                statement.id,
                statement.binds,
                statement.summary,
                self.kept_cell(statement),
                tests_cell(self.tested.get(&rule)),
                chapters_cell(self.explained.get(&rule)),
            );
        }
    }

    /// The sites, grouped by file: `` [`src/a.rs`](../src/a.rs): `f`, `g` ``.
    fn kept_cell(&self, statement: &Statement) -> String {
        let rule = key(&statement.id);
        if let Some(sites) = self.kept.get(&rule) {
            return sites_cell(sites);
        }
        if let Some((_, why)) = NOT_KEPT.iter().find(|(id, _)| key(id) == rule) {
            return format!("not kept: {why}");
        }
        if statement.binds_the_server() {
            "no citation in `src/`".to_owned()
        } else {
            "–".to_owned()
        }
    }
}

fn sites_cell(sites: &BTreeSet<Site>) -> String {
    let mut files: Vec<String> = Vec::new();
    let mut current: Option<&str> = None;
    for site in sites {
        if current != Some(site.file.as_str()) {
            current = Some(&site.file);
            files.push(format!("[`{0}`](../{0})", site.file));
        }
        if let (Some(place), Some(last)) = (&site.place, files.last_mut()) {
            let separator = if last.ends_with(')') { ": " } else { ", " };
            let _ = write!(last, "{separator}`{place}`");
        }
    }
    files.join("<br>")
}

fn tests_cell(tests: Option<&BTreeSet<TestName>>) -> String {
    let Some(tests) = tests else {
        return "–".to_owned();
    };
    let names = tests
        .iter()
        .map(|t| format!("[`{}`](../{})", t.name, t.file));
    names.collect::<Vec<_>>().join(", ")
}

fn chapters_cell(chapters: Option<&BTreeSet<String>>) -> String {
    let Some(chapters) = chapters else {
        return "–".to_owned();
    };
    let links = chapters.iter().map(|c| format!("[{}]({c})", &c[..2]));
    links.collect::<Vec<_>>().join(", ")
}
