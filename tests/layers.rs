//! Imports run one way (STYLE.md, rule 16b). mqttd's top-level modules are stacked in
//! layers, and a module may only reach *down*: the codec knows nothing of sessions, the
//! broker nothing of connections, so each layer can be read, tested and changed without
//! the ones above it. A learner who opens `codec` never has to understand `broker` first.
//!
//! The checks read the source as text (no compiler, no dependencies): comments are dropped
//! and string literals emptied, then every path that starts with `crate::` or `super::`
//! (grouped `use` trees included) is resolved to the module it names.
//!
//! - `no_module_imports_a_higher_or_equal_layer`: a file in module M names module N only if
//!   N sits in a lower layer than M. Paths through the crate root (`crate::Config`) count
//!   as the module `lib.rs` re-exports them from.
//! - `no_cycle_among_sibling_files`: inside a module directory, the files that are not
//!   `mod.rs` never depend on each other in a circle. `mod.rs` is left out on purpose: a
//!   parent declares and re-exports its children, and children may use the parent's shared
//!   types. That is Rust's module idiom, not a cycle to remove.
//! - `every_top_level_module_is_in_the_table`: a new module must be given its layer here,
//!   so the table below stays the whole truth.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

mod source_text;

use source_text::{code_only, tokens, Token};

/// The layers, bottom to top. A module may reference only modules of a lower layer.
/// `lib.rs` and `main.rs` sit above all of them and may reference anything.
const LAYERS: &[&[&str]] = &[
    // 0: leaves. Topic names and the trie, the settings, test-only fault injection,
    //    password files (and `mqttd passwd`, which writes them; the hashing inside is the
    //    optional `auth` feature's), and the sequence diagrams of `--sequence`, which
    //    read the log's text and nothing else, the names of threads that change while they
    //    run, and a rate limit for floods of warnings. They know no other module of the
    //    crate.
    &[
        "topic",
        "config",
        "fault",
        "passwords",
        "sequence",
        "thread_name",
        "throttle",
    ],
    // 1: bytes to packets and back, the access rules of an acl_file, and the byte stream
    //    under a connection (TCP, TLS, WebSocket frames). The first two may know topic
    //    names and filters (to validate and match them); the transport knows the listener
    //    settings it is built from; the listening socket (`listen`) knows nothing at all.
    &["codec", "acl", "transport", "listen"],
    // 2: `mqttd decode`, which takes bytes apart with the codec's own readers and checks.
    //    It knows packets (and so topics), nothing of sessions, the broker or sockets.
    &["dissect"],
    // 3: `mqttd send`, a raw-byte client: the codec builds its CONNECT, the dissector shows
    //    the answers. A client, no part of the broker: it opens its own TCP socket.
    &["send"],
    // 4: the queues between a publisher's thread and a subscriber's. May know packets.
    &["mailbox"],
    // 5: one client's state and what its packets do; and the journal, which writes what
    //    sessions and retained messages are made of. May know mailboxes, packets, topics.
    &["session", "persistence"],
    // 6: the state all clients share: sessions by client, subscriptions, retained messages.
    &["broker"],
    // 7: the protocol steps that tie a connection's packets to the broker and a session.
    &["protocol"],
    // 8: one client's threads: handshake, reader, writer, teardown. May know the protocol.
    &["connection"],
    // 9: the listening socket, the acceptor thread, starting and stopping.
    &["server"],
];

/// The files at the top of the crate, allowed to reference every module.
const TOP_FILES: &[&str] = &["lib.rs", "main.rs"];

/// The layer of a top-level module, or `None` when the table does not list it.
fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

// ---------------------------------------------------------------------------------------
// Reading the source as text.

// ---------------------------------------------------------------------------------------
// Finding the references.

/// A path a file names, resolved from the crate root: `["codec", "Packet"]`.
#[derive(Debug, PartialEq)]
struct Reference {
    path: Vec<String>,
    line: usize,
}

/// Every `crate::…` and `super::…` path in `source`, resolved from the crate root.
/// `module` is where the file sits (`["connection", "reader"]` for
/// `src/connection/reader.rs`); inline `mod name { … }` blocks are followed, so that
/// `super::` inside `mod tests` means the file's own module.
fn references(source: &str, module: &[String]) -> Vec<Reference> {
    let tokens = tokens(&code_only(source));
    let mut out = Vec::new();
    let mut inline_modules: Vec<(String, usize)> = Vec::new(); // (name, depth inside it)
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate() {
        match token.text.as_str() {
            "{" => {
                depth += 1;
                if let Some(name) = inline_module_opened_at(&tokens, i) {
                    inline_modules.push((name, depth));
                }
            }
            "}" => {
                if inline_modules.last().is_some_and(|&(_, d)| d == depth) {
                    inline_modules.pop();
                }
                depth -= 1;
            }
            "crate" | "super" if starts_a_path(&tokens, i) => {
                let mut here = module.to_vec();
                here.extend(inline_modules.iter().map(|(name, _)| name.clone()));
                for raw in path_tree(&tokens, i, Vec::new()) {
                    out.extend(resolve(&raw.path, &here).map(|path| Reference { path, ..raw }));
                }
            }
            _ => {}
        }
    }
    out
}

/// The name of the inline module whose `{` is at `i` (`mod tests {`), if it is one.
fn inline_module_opened_at(tokens: &[Token], i: usize) -> Option<String> {
    let is_mod = i >= 2 && tokens[i - 2].text == "mod";
    is_mod.then(|| tokens[i - 1].text.clone())
}

/// Whether the `crate` or `super` at `i` begins a path (`crate::x`), rather than being
/// a visibility (`pub(crate)`), the middle of a path, or a macro's `$crate`.
fn starts_a_path(tokens: &[Token], i: usize) -> bool {
    let before = i.checked_sub(1).map(|k| tokens[k].text.as_str());
    let after = tokens.get(i + 1).map(|t| t.text.as_str());
    after == Some("::") && !matches!(before, Some("::" | "$"))
}

/// The paths of the use tree starting at `tokens[i]`, each as written (`super`s and
/// `crate` included): `crate::{a, b::C}` gives `crate::a` and `crate::b::C`.
fn path_tree(tokens: &[Token], mut i: usize, mut prefix: Vec<String>) -> Vec<Reference> {
    let mut out = Vec::new();
    while let Some(token) = tokens.get(i) {
        let line = token.line;
        match token.text.as_str() {
            "{" => return group(tokens, i + 1, &prefix),
            "*" => prefix.push("*".to_owned()),
            "self" if !prefix.is_empty() => {}
            word if is_identifier(word) => prefix.push(word.to_owned()),
            _ => break,
        }
        if tokens.get(i + 1).map(|t| t.text.as_str()) != Some("::") {
            out.push(Reference { path: prefix, line });
            return out;
        }
        i += 2;
    }
    out
}

/// The paths of a `{ … }` group whose first member is at `i`, all under `prefix`.
fn group(tokens: &[Token], mut i: usize, prefix: &[String]) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut depth = 0;
    while let Some(token) = tokens.get(i) {
        match token.text.as_str() {
            "{" => depth += 1,
            "}" if depth == 0 => break,
            "}" => depth -= 1,
            _ if depth == 0 && (i == 0 || matches!(tokens[i - 1].text.as_str(), "{" | ",")) => {
                out.extend(path_tree(tokens, i, prefix.to_vec()));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn is_identifier(word: &str) -> bool {
    word.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// `raw` (as written) resolved from the crate root, seen from module `here`; `None` when
/// `super` climbs above the crate root.
fn resolve(raw: &[String], here: &[String]) -> Option<Vec<String>> {
    if raw.first().is_some_and(|s| s == "crate") {
        return Some(raw[1..].to_vec());
    }
    let supers = raw.iter().take_while(|s| *s == "super").count();
    let base = here.len().checked_sub(supers)?;
    Some([&here[..base], &raw[supers..]].concat())
}

// ---------------------------------------------------------------------------------------
// The files.

/// Every `.rs` file under `src/`, as (path, module path): `src/a/b.rs` is `["a", "b"]`,
/// `src/a/mod.rs` and `src/a.rs` are `["a"]`. `lib.rs` and `main.rs` are left out.
fn source_files() -> Vec<(PathBuf, Vec<String>)> {
    let mut files = Vec::new();
    let mut dirs = vec![PathBuf::from("src")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = module_path(&path);
                if !module.is_empty() {
                    files.push((path, module));
                }
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file under `src/`; empty for `lib.rs` and `main.rs`.
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix("src").expect("a file under src/");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    if parts.is_empty() && TOP_FILES.contains(&last.as_str()) {
        return Vec::new();
    }
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_owned());
    }
    parts
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The items `lib.rs` re-exports, by name, with the module they come from:
/// `pub use config::Config;` maps `Config` to `config`.
fn reexports() -> BTreeMap<String, String> {
    let tokens = tokens(&code_only(&read(Path::new("src/lib.rs"))));
    let mut map = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.text != "use" {
            continue;
        }
        for raw in path_tree(&tokens, i + 1, Vec::new()) {
            let path = raw
                .path
                .strip_prefix(&["crate".to_owned()])
                .unwrap_or(&raw.path);
            if let (Some(module), Some(item)) = (path.first(), path.last()) {
                map.insert(item.clone(), module.clone());
            }
        }
    }
    map
}

/// The top-level module a resolved path lands in. A path through the crate root
/// (`crate::Config`) lands where `lib.rs` re-exports it from; anything else defined in
/// `lib.rs` itself is `lib.rs`, the top.
fn top_module(path: &[String], reexports: &BTreeMap<String, String>) -> String {
    let first = path.first().map_or("*", String::as_str);
    let src = Path::new("src");
    let is_module = rank(first).is_some()
        || src.join(first).is_dir()
        || src.join(format!("{first}.rs")).is_file();
    if is_module {
        return first.to_owned();
    }
    reexports
        .get(first)
        .cloned()
        .unwrap_or_else(|| "lib.rs".to_owned())
}

/// How a violation message names the layer of `module`.
fn rank_label(module: &str) -> String {
    match rank(module) {
        Some(r) => r.to_string(),
        None if module == "lib.rs" => "top".to_owned(),
        None => "not in the table".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn no_module_imports_a_higher_or_equal_layer() {
    let reexports = reexports();
    let mut violations = BTreeSet::new();
    for (file, module) in source_files() {
        let Some(own_rank) = rank(&module[0]) else {
            continue; // every_top_level_module_is_in_the_table reports it
        };
        for reference in references(&read(&file), &module) {
            let target = top_module(&reference.path, &reexports);
            if target == module[0] {
                continue;
            }
            let allowed = rank(&target).is_some_and(|r| r < own_rank);
            if !allowed {
                let why = format!(
                    "`{}` (rank {own_rank}) references `{target}` (rank {})",
                    module[0],
                    rank_label(&target),
                );
                violations.insert((file.clone(), reference.line, why));
            }
        }
    }
    let list: Vec<String> = violations
        .into_iter()
        .map(|(file, line, why)| format!("{}:{line}: {why}", file.display()))
        .collect();
    assert!(
        list.is_empty(),
        "imports must run down the layers (STYLE.md 16b); {} reference(s) go up or sideways:\n  {}",
        list.len(),
        list.join("\n  ")
    );
}

/// The dependency graph among the children of each module directory, by directory:
/// `{"connection": {"handshake": {"reader", …}, …}}`. Edges come from every file of a
/// child module except the directory's own `mod.rs`.
fn sibling_graphs() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let files = source_files();
    let children = |dir: &[String]| -> BTreeSet<String> {
        let nested = files.iter().map(|(_, m)| m);
        let inside = nested.filter(|m| m.len() > dir.len() && m.starts_with(dir));
        inside.map(|m| m[dir.len()].clone()).collect()
    };
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (file, module) in &files {
        let references = references(&read(file), module);
        for d in 1..module.len() {
            let (dir, child) = (&module[..d], &module[d]);
            let siblings = children(dir);
            let graph = graphs.entry(dir.join("/")).or_default();
            let edges = graph.entry(child.clone()).or_default();
            for path in references.iter().map(|r| &r.path) {
                if path.len() > d && path.starts_with(dir) && &path[d] != child {
                    edges.extend(siblings.get(&path[d]).cloned());
                }
            }
        }
    }
    graphs
}

/// One cycle of `graph` (`["a", "b", "a"]`), if it has any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|n| n == node) {
            return Some([&stack[start..], &[node.to_owned()]].concat());
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    let mut cycle = None;
    for node in graph.keys() {
        cycle = cycle.or_else(|| visit(node, graph, &mut Vec::new(), &mut done));
    }
    cycle
}

#[test]
fn no_cycle_among_sibling_files() {
    let mut cycles = Vec::new();
    for (dir, graph) in sibling_graphs() {
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("src/{dir}/: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "sibling files must not depend on each other in a circle; move the shared part down \
         (into one of them, or the parent's mod.rs):\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn every_top_level_module_is_in_the_table() {
    let modules: BTreeSet<String> = source_files()
        .into_iter()
        .map(|(_, m)| m[0].clone())
        .collect();
    let missing: Vec<&String> = modules.iter().filter(|m| rank(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "give these modules a layer in LAYERS at the top of tests/layers.rs: {missing:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The reference finder on small examples, so a change to it is checked too.

mod finder {
    use super::*;

    fn found(source: &str, module: &[&str]) -> Vec<String> {
        let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
        let found = references(source, &module);
        found.into_iter().map(|r| r.path.join("::")).collect()
    }

    #[test]
    fn reads_a_grouped_use() {
        let source = "use crate::{a, b::C, d::{e::F, self}};";
        assert_eq!(found(source, &["m"]), ["a", "b::C", "d::e::F", "d"]);
    }

    #[test]
    fn ignores_comments_and_strings() {
        let source = "// use crate::a;\n/// [`crate::b`]\n/* crate::c */ let s = \"crate::d\";";
        assert!(found(source, &["m"]).is_empty());
    }

    #[test]
    fn climbs_with_super() {
        let source = "use super::super::x::Y;\nuse super::sibling::Z;";
        assert_eq!(found(source, &["a", "b"]), ["x::Y", "a::sibling::Z"]);
    }

    #[test]
    fn super_in_an_inline_module_is_the_file_itself() {
        let source = "mod tests {\n    use super::*;\n}\nuse super::T;";
        assert_eq!(found(source, &["a", "b"]), ["a::b::*", "a::T"]);
    }

    #[test]
    fn finds_paths_in_code_and_keeps_line_numbers() {
        let source = "pub(crate) fn f() {\n    crate::codec::read(x);\n}";
        let module = ["m".to_owned()];
        let found = references(source, &module);
        assert_eq!(
            found,
            [Reference {
                path: vec!["codec".into(), "read".into()],
                line: 2
            }]
        );
    }

    #[test]
    fn finds_a_cycle_and_only_a_cycle() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (from, to) in edges {
                g.entry(from.to_string())
                    .or_default()
                    .insert(to.to_string());
            }
            g
        };
        let chain = graph(&[("a", "b"), ("b", "c"), ("a", "c")]);
        assert_eq!(find_cycle(&chain), None);
        let circle = graph(&[("a", "b"), ("b", "c"), ("c", "a")]);
        assert_eq!(find_cycle(&circle).unwrap(), ["a", "b", "c", "a"]);
    }

    #[test]
    fn lifetimes_and_characters_do_not_hide_code() {
        let source = "fn f<'a>(c: char) -> bool { c == '\"' && crate::x::y() }";
        assert_eq!(found(source, &["m"]), ["x::y"]);
    }
}
