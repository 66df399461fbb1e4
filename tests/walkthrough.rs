//! The walkthrough must not drift from the code: every `src/…rs` or `tests/…rs` path a
//! chapter names must exist, and every source file must be named by some chapter.

use std::fs;
use std::path::Path;

fn chapters() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("walkthrough").expect("walkthrough/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let text = fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
    out
}

/// Every `src/...rs` or `tests/...rs` path mentioned in `text`.
fn paths_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices(['s', 't']) {
        let rest = &text[start..];
        if !(rest.starts_with("src/") || rest.starts_with("tests/")) {
            continue;
        }
        // Only count a path that starts a word (not `mysrc/`).
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || "_/.-".contains(c)))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches('.');
        if path.ends_with(".rs") {
            found.push(path.to_owned());
        }
    }
    found
}

#[test]
fn every_path_a_chapter_names_exists() {
    for (chapter, text) in chapters() {
        for path in paths_in(&text) {
            assert!(
                Path::new(&path).exists(),
                "{chapter} names {path}, which does not exist"
            );
        }
    }
}

#[test]
fn every_source_file_is_named_by_a_chapter() {
    let all: String = chapters().into_iter().map(|(_, text)| text).collect();
    let mut stack = vec![Path::new("src").to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.display().to_string();
                assert!(all.contains(&name), "no walkthrough chapter names {name}");
            }
        }
    }
}
