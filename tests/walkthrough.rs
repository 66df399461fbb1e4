//! The walkthrough must not drift from the code. A learner follows a chapter into the
//! source, so everything a chapter points at must be there:
//!
//! - every `src/…rs` or `tests/…rs` path a chapter names exists, and every source file is
//!   named by some chapter;
//! - every gdb frame a chapter quotes (`mqttd::codec::Packet::decode (…) at
//!   src/codec/mod.rs:232`) lands, at that line, inside the function it names, in the
//!   module it names;
//! - every source line gdb prints where it stops (`253\t        if ticket …`) still reads
//!   the same at that line of that file;
//! - every function, type, constant, field or variant a chapter names in backticks
//!   (`Session::handle`, `TAKEOVER_TIMEOUT`) is defined in the code, and `Type::member`
//!   is defined where `Type` is.
//!
//! Only names in prose are checked; fenced blocks are transcripts and shell commands. Words
//! that are not ours (`futex`, `Arc`, `mosquitto_sub`) are listed in `EXTERNAL`, by group.
//!
//! These tests read the source as text, with no compiler: a simple tokeniser finds the
//! definitions (items, fields, variants, parameters, `impl` blocks). It is approximate (an
//! item made by a macro would be missed), which is fine for a crate that keeps macros out
//! of its protocol paths (STYLE.md, rule 7).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

mod source_text;

use source_text::code_only;

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
        // Only count a path that starts a word (not `mysrc/`), and not the tail of a longer
        // path (`library/core/src/…` in a backtrace through the standard library).
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '/') {
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

/// The rule index, `walkthrough/rules.md`, is left out here: it names every file that
/// cites a rule because a program lists them, which says nothing about whether a chapter
/// explains the file. (It is checked like a chapter everywhere else.)
const INDEXES: &[&str] = &["walkthrough/rules.md"];

#[test]
fn every_source_file_is_named_by_a_chapter() {
    let chapters = chapters().into_iter();
    let explained = chapters.filter(|(path, _)| !INDEXES.contains(&path.as_str()));
    let all: String = explained.map(|(_, text)| text).collect();
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

// ---------------------------------------------------------------------------------------
// gdb frames: every quoted frame lands in the function it names.

/// One stack frame or breakpoint hit that a chapter quotes from gdb, in a file of `src/`.
struct Frame {
    chapter: String,
    /// The function as gdb names it, generic arguments removed:
    /// `["mqttd", "connection", "reader", "Reader", "read_batches"]`.
    path: Vec<String>,
    file: String,
    line: usize,
}

impl Frame {
    /// A short form for failure messages: `mqttd::a::f at src/a.rs:12`.
    fn short(&self) -> String {
        format!("{} at {}:{}", self.path.join("::"), self.file, self.line)
    }
}

/// Every frame in `text` that gdb placed in `src/`: `… mqttd::a::f (args) at src/a.rs:12`.
/// Frames elsewhere (the standard library, crossbeam) have no `at src/` and are skipped.
fn gdb_frames(chapter: &str, text: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let (Some((file, number)), Some(function)) = (frame_location(line), frame_function(line))
        else {
            continue;
        };
        let path = without_generics(&function)
            .split("::")
            .map(str::to_owned)
            .collect();
        frames.push(Frame {
            chapter: chapter.to_owned(),
            path,
            file,
            line: number,
        });
    }
    frames
}

/// The `src/…rs:LINE` at the end of a gdb frame.
fn frame_location(line: &str) -> Option<(String, usize)> {
    let start = line.rfind(" at src/")? + " at ".len();
    let (file, rest) = line[start..].split_once(':')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((file.to_owned(), digits.parse().ok()?))
}

/// The function a frame names: from the first `mqttd::` to the ` (` of its arguments,
/// stepping over the spaces inside generic arguments (`Trie<u64, mqttd::x::Y>`).
fn frame_function(line: &str) -> Option<String> {
    let start = line.find("mqttd::")?;
    let mut depth = 0;
    for (i, c) in line[start..].char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ' ' | '(' if depth == 0 => return Some(line[start..start + i].to_owned()),
            _ => {}
        }
    }
    None
}

/// `a::B<u64, x::Y>::c<z::W>` without its generic arguments: `a::B::c`.
fn without_generics(function: &str) -> String {
    let mut depth = 0;
    let mut out = String::new();
    for c in function.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The function a frame is in: its last segment that is not `{closure#N}` or `{impl#N}`.
fn named_function(path: &[String]) -> &str {
    let mut names = path.iter().rev().filter(|s| !s.starts_with('{'));
    names.next().map_or("", String::as_str)
}

/// The module path gdb gives a file's items: `src/a/b.rs` is `mqttd::a::b`, `src/a/mod.rs`
/// is `mqttd::a`, `src/lib.rs` is `mqttd`.
fn module_of(file: &str) -> Vec<String> {
    let inner = file.trim_start_matches("src/").trim_end_matches(".rs");
    let mut path = vec![CRATE.to_owned()];
    path.extend(inner.split('/').map(str::to_owned));
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

/// The name in a line that defines a function: optional visibility, optional `const`,
/// `async` or `unsafe`, then `fn NAME`.
fn defined_function(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    if let Some(after) = rest.strip_prefix("pub") {
        let after = after.trim_start();
        rest = match after.strip_prefix('(') {
            Some(inner) => inner.split_once(')')?.1.trim_start(),
            None => after,
        };
    }
    for qualifier in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    Some(&name[..end]).filter(|n| !n.is_empty())
}

/// Whether `source` has an `impl` block for the type `name` (`impl Broker {`,
/// `impl<T> Trie<T>`, `impl Drop for Broker`).
fn implements(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        let line = line.trim_start();
        let words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
        line.starts_with("impl") && words.skip(1).any(|word| word == name)
    })
}

/// What is wrong with `frame`, or `None` if it lands where it says.
fn frame_problem(frame: &Frame) -> Option<String> {
    let Ok(source) = fs::read_to_string(&frame.file) else {
        return Some(format!("{} does not exist", frame.file));
    };
    let lines: Vec<&str> = source.lines().collect();
    if frame.line == 0 || frame.line > lines.len() {
        return Some(format!("{} has only {} lines", frame.file, lines.len()));
    }
    let expected = named_function(&frame.path);
    let found = lines[..frame.line]
        .iter()
        .rev()
        .find_map(|l| defined_function(l));
    if found != Some(expected) {
        let found = found.map_or("no function".to_owned(), |f| format!("fn {f}"));
        return Some(format!(
            "line {} is in {found}, not fn {expected}",
            frame.line
        ));
    }
    let module = module_of(&frame.file);
    if frame.path.starts_with(&module) || is_method_of_parent_type(frame, &module, &source) {
        return None;
    }
    let module = module.join("::");
    Some(format!(
        "the path is not in {module}, the module of {}",
        frame.file
    ))
}

/// gdb names a method after its type's module, wherever the `impl` block is: rustc
/// reports `Broker::publish`, written in `src/broker/routing.rs`, as
/// `mqttd::broker::Broker::publish`. Such a frame is right when the type's module contains
/// the file and the file has an `impl` of that type.
fn is_method_of_parent_type(frame: &Frame, module: &[String], source: &str) -> bool {
    let Some(split) = frame.path.len().checked_sub(2) else {
        return false;
    };
    let (type_module, type_name) = (&frame.path[..split], &frame.path[split]);
    module.starts_with(type_module) && implements(source, type_name)
}

#[test]
fn every_gdb_frame_lands_in_the_function_it_names() {
    let mut problems = BTreeSet::new(); // a frame quoted twice is reported once
    let mut checked = 0;
    for (chapter, text) in chapters() {
        for frame in gdb_frames(&chapter, &text) {
            checked += 1;
            if let Some(problem) = frame_problem(&frame) {
                problems.insert(format!("{}: {}: {problem}", frame.chapter, frame.short()));
            }
        }
    }
    assert!(
        checked > 0,
        "no gdb frame found: has the chapters' format changed?"
    );
    assert!(
        problems.is_empty(),
        "{} gdb frame(s) no longer match the code; run the chapter's gdb session again:\n  {}",
        problems.len(),
        Vec::from_iter(problems).join("\n  ")
    );
}

/// Where gdb stops, it prints the source line after the frame: `253\t        if ticket …`.
/// Every such line in a chapter, after a frame in one of our files, must still read the
/// same in that file: a function can move by a few lines and still hold its frames, and
/// then the transcript shows a line the code no longer has there.
#[test]
fn every_source_line_gdb_prints_is_still_there() {
    let frame_at = |line: &str| -> Option<(String, usize)> {
        let at = line.rfind(" at src/")?;
        let (file, number) = line[at + 4..].trim_end().rsplit_once(':')?;
        Some((file.to_owned(), number.parse().ok()?))
    };
    let (mut problems, mut checked) = (Vec::new(), 0);
    for (chapter, text) in chapters() {
        let mut last_frame: Option<(String, usize)> = None;
        for line in text.lines() {
            if let Some(frame) = frame_at(line) {
                last_frame = Some(frame);
                continue;
            }
            let Some((number, shown)) = line.split_once('\t') else {
                continue;
            };
            let Some((file, at)) = &last_frame else {
                continue;
            };
            if number.parse::<usize>().ok() != Some(*at) {
                continue;
            }
            checked += 1;
            let source = fs::read_to_string(file).unwrap_or_default();
            let now = source.lines().nth(at - 1).unwrap_or("");
            if now.trim() != shown.trim() {
                problems.push(format!(
                    "{chapter}: {file}:{at} shows {:?}, the file has {:?}",
                    shown.trim(),
                    now.trim()
                ));
            }
        }
    }
    assert!(checked > 0, "no source line after a gdb frame found");
    assert!(
        problems.is_empty(),
        "{} line(s) gdb printed are no longer in the code; run the chapter's gdb session again:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// Names in backticks: every name a chapter gives in prose is defined in the code.

/// The crate's name, as gdb and `use mqttd::…` spell the root of `src/lib.rs`.
const CRATE: &str = "mqttd";

/// Where the definitions are read from: the crate and its tests, benchmarks and examples
/// (chapters name test functions next to the rules they check, and the `loadgen` example).
const CODE_ROOTS: &[&str] = &["src", "tests", "benches", "examples"];

/// Words the chapters put in backticks that are not names in the project's code, one
/// group per comment, space-separated. A word joins a group only when it is genuinely not
/// ours; a name of ours that no longer exists is a stale chapter, to be fixed in the
/// chapter. A path whose first segment is listed (`Vec::new`, `parking_lot::Mutex`) is
/// external as a whole. Abbreviated commits (`e3ae954`) are recognised by [`is_commit`].
const EXTERNAL: &[&str] = &[
    // Linux: system calls, libc functions and kernel names that strace, perf and /proc show.
    "accept4 clone3 futex malloc malloc_stats mmap mprotect prctl recvfrom rt_sigprocmask",
    "sendto sigaltstack TCP_NODELAY VmRSS flock fsync sched_yield ListenOverflows gettid openat",
    "rseq sched_getaffinity set_robust_list close _raw_spin_unlock_irqrestore futex_wake",
    "utime stime",
    // Rust keywords, the prelude and the standard library.
    "Arc break BufReader BufWriter catch_unwind Condvar continue Display Drop min Mutex None",
    "notify_all Read self std Vec VecDeque Write write_all sync_data TcpStream unsafe",
    "HashMap yield_now",
    // The two concurrency crates mqttd depends on: crossbeam-channel and parking_lot.
    "crossbeam_channel never try_recv try_send parking_lot MutexGuard try_lock SyncWaker",
    // Log levels, as `RUST_LOG` and the log lines spell them.
    "DEBUG debug INFO TRACE trace",
    // Commands the chapters run.
    "heaptrack kill mosquitto_pub mosquitto_sub perf pgrep strace sysctl timeout curl openssl",
    // The protocol names a CONNECT carries (MQTT 3.1.1 and 3.1).
    "MQTT MQIsdp",
    // Mosquitto: configuration keys mqttd refuses or ignores (src/config/file.rs spells
    // every key it knows as a string, which this check does not read), the words of an
    // acl_file, and Mosquitto's own commands and functions the chapters compare with.
    "log_dest set_tcp_nodelay certfile clientid_prefixes mount_point plugin persistence",
    "use_identity_as_username include_dir deny readwrite pattern mosquitto_passwd",
    "mosquitto_unpwd_check autosave_interval crlfile psk_file psk_hint tls_engine ciphers",
    "dhparamfile http_dir",
    // rustls, the TLS library behind the `tls` feature: the type and methods of its
    // sans-IO session that the transport chapter explains.
    "rustls ServerConnection read_tls write_tls",
    // The names of the four kinds of listener as URL schemes (`Transport::describe` returns
    // them as strings), `mqtt` also being the WebSocket subprotocol.
    "mqtt mqtts ws wss",
    // Cargo features and the crates behind them, threads named after their job, and the
    // environment variables bench/compare.sh reads.
    "auth signals sha2 hmac pbkdf2 subtle base64 getrandom rpassword signal_hook backlog",
    "socket2",
    "acceptor sys BASELINE MQTTD_ARGS BASELINE_ARGS",
    // The data of the chapters' runs: client identifiers, topic levels, payloads, the flags
    // `mosquitto_sub -d` prints, bytes, the scenarios of bench/compare.sh, the `RESULT`
    // lines of loadgen, and the suffix the violation tests share (`_closes`).
    "learner twin polite fragile mortal forgetful slowpoke door hoge fuga sport status a b",
    "one two three o d1 r1 d000 conns5k fanout16 fanout256 qos1_durable fanin_q1_durable",
    "fanin_q1 pair8 qos2 qos1_wide qos2_wide",
    "dashboard",
    "RESULT _closes",
];

fn is_external(name: &str) -> bool {
    let mut words = EXTERNAL.iter().flat_map(|group| group.split_whitespace());
    words.any(|word| word == name) || is_commit(name)
}

/// Whether a word is an abbreviated git commit (`e3ae954`): 7 to 40 hexadecimal digits,
/// at least one a decimal digit. Chapters cite the commits their measurements ran at.
fn is_commit(word: &str) -> bool {
    let hex = word
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    hex && (7..=40).contains(&word.len()) && word.chars().any(|c| c.is_ascii_digit())
}

/// Splits code (already through [`code_only`]) into identifiers, `::` and single marks.
/// A lifetime (`'static`) is dropped, so it is not read as a keyword.
fn tokens(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        if chars[i].is_alphanumeric() || chars[i] == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if out.last().is_some_and(|t| t == "'") {
                out.pop();
                continue;
            }
        } else if chars[i] == ':' && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
            if chars[start].is_whitespace() {
                continue;
            }
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    let first = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    first && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The keywords that introduce a named item: `fn x`, `struct X`, `mod x`, …
const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "union", "trait", "type", "const", "static", "mod",
];

/// What a `{ … }` body holds, as far as naming goes: struct fields, enum variants, or
/// anything else (function bodies, `impl` and `mod` blocks).
#[derive(Clone, Copy, Default, PartialEq)]
enum Body {
    Fields,
    Variants,
    #[default]
    Other,
}

/// What the code defines, read from its text.
#[derive(Default)]
struct Definitions {
    /// Every defined name (items, fields, variants, modules), with the files defining it.
    defined_in: BTreeMap<String, BTreeSet<PathBuf>>,
    /// For a type or a module, the files where its members are written: where the type
    /// is defined or has an `impl` block, or the module's own file.
    members_in: BTreeMap<String, BTreeSet<PathBuf>>,
}

impl Definitions {
    /// Reads every `.rs` file under [`CODE_ROOTS`].
    fn read() -> Self {
        let mut definitions = Definitions::default();
        for file in rust_files(CODE_ROOTS) {
            let source = fs::read_to_string(&file).unwrap();
            let module = module_name(&file);
            definitions.define(&module, &file);
            definitions.add_member_site(&module, &file);
            definitions.scan(&file, &tokens(&code_only(&source)));
        }
        definitions
    }

    fn define(&mut self, name: &str, file: &Path) {
        let files = self.defined_in.entry(name.to_owned()).or_default();
        files.insert(file.to_owned());
    }

    fn add_member_site(&mut self, owner: &str, file: &Path) {
        let files = self.members_in.entry(owner.to_owned()).or_default();
        files.insert(file.to_owned());
    }

    fn defines(&self, name: &str) -> bool {
        self.defined_in.contains_key(name)
    }

    /// Whether `member` is defined in a file where `owner`'s members are written. An owner
    /// that is neither a type nor a module (a function, a constant) cannot be checked.
    fn is_member(&self, owner: &str, member: &str) -> bool {
        let Some(sites) = self.members_in.get(owner) else {
            return true;
        };
        let files = self.defined_in.get(member).into_iter().flatten();
        files.into_iter().any(|file| sites.contains(file))
    }

    /// Records what `tokens` (one file) define: items after [`ITEM_KEYWORDS`], function
    /// parameters, fields, enum variants, and the types that `impl` blocks are for.
    fn scan(&mut self, file: &Path, tokens: &[String]) {
        let mut scan = Scan::default();
        for (i, token) in tokens.iter().enumerate() {
            let before = if i > 0 { tokens[i - 1].as_str() } else { "" };
            let after = tokens.get(i + 1).map_or("", String::as_str);
            match token.as_str() {
                "impl" => {
                    if let Some(target) = impl_target(&tokens[i + 1..]) {
                        self.add_member_site(target, file);
                    }
                }
                keyword if ITEM_KEYWORDS.contains(&keyword) => {
                    let inline_body = tokens.get(i + 2).is_some_and(|t| t == "{");
                    scan.next_body = self.item(keyword, after, inline_body, file);
                    scan.awaiting_parameters = keyword == "fn";
                }
                name if is_identifier(name) => {
                    if scan.defines_here(before, after) {
                        self.define(name, file);
                    }
                }
                mark => scan.punctuation(mark, before),
            }
        }
    }

    /// Records the item `name` that `keyword` introduces, and says what its body holds.
    /// A type's members are written where it is defined; a module's, where its body is.
    fn item(&mut self, keyword: &str, name: &str, inline_body: bool, file: &Path) -> Body {
        if !is_identifier(name) || ITEM_KEYWORDS.contains(&name) {
            return Body::Other; // `const fn`, `fn(u8)`: not a name
        }
        self.define(name, file);
        let has_members = matches!(keyword, "struct" | "union" | "enum" | "trait");
        if has_members || (keyword == "mod" && inline_body) {
            self.add_member_site(name, file);
        }
        match keyword {
            "struct" | "union" => Body::Fields,
            "enum" => Body::Variants,
            _ => Body::Other,
        }
    }
}

/// Where a scan through one file stands: which brackets are open and what they hold.
#[derive(Default)]
struct Scan {
    /// Each open `{`: what its body holds, and how many `(` and `[` were open at it.
    open: Vec<(Body, usize)>,
    /// What the next `{` opens, as announced by `struct`, `enum`, …
    next_body: Body,
    /// How many `(` and `[` are open.
    nesting: usize,
    /// Set by `fn` until its parameter list opens.
    awaiting_parameters: bool,
    /// The nesting inside the parameter list being read, if one is.
    parameters: Option<usize>,
}

impl Scan {
    /// Whether a name between `before` and `after`, here, defines a parameter or field
    /// (`name:`) or a variant (`{ Name`, `, Name`, `#[attr] Name`).
    fn defines_here(&self, before: &str, after: &str) -> bool {
        if self.parameters == Some(self.nesting) {
            return after == ":";
        }
        let here = self.open.last().filter(|&&(_, n)| n == self.nesting);
        here.is_some_and(|&(body, _)| is_field_or_variant(body, before, after))
    }

    /// Follows the brackets; `before` is the token before `mark`.
    fn punctuation(&mut self, mark: &str, before: &str) {
        match mark {
            "(" | "[" => {
                self.nesting += 1;
                if mark == "(" && std::mem::take(&mut self.awaiting_parameters) {
                    self.parameters = Some(self.nesting);
                }
            }
            ")" | "]" => {
                if self.parameters == Some(self.nesting) {
                    self.parameters = None;
                }
                self.nesting = self.nesting.saturating_sub(1);
            }
            "{" => {
                // In an enum, `Name {` opens a variant with named fields.
                let in_enum = self.open.last() == Some(&(Body::Variants, self.nesting));
                let body = if in_enum && is_identifier(before) {
                    Body::Fields
                } else {
                    self.next_body
                };
                self.open.push((body, self.nesting));
                (self.next_body, self.awaiting_parameters) = (Body::Other, false);
            }
            "}" => drop(self.open.pop()),
            ";" => (self.next_body, self.awaiting_parameters) = (Body::Other, false),
            _ => {}
        }
    }
}

/// Whether a name directly inside a body of kind `body` defines a field (`name:`) or a
/// variant (`{ Name`, `, Name`, `#[attr] Name`).
fn is_field_or_variant(body: Body, before: &str, after: &str) -> bool {
    match body {
        Body::Fields => after == ":",
        Body::Variants => matches!(before, "{" | "," | "]"),
        Body::Other => false,
    }
}

/// The type an `impl` block is for, from the tokens after `impl`: `<T> Trie<T> {` gives
/// `Trie`, `fmt::Display for DecodeError {` gives `DecodeError`.
fn impl_target(tokens: &[String]) -> Option<&str> {
    let mut depth = 0;
    let mut target = None;
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "<" => depth += 1,
            ">" if i == 0 || tokens[i - 1] != "-" => depth -= 1,
            "{" | ";" | "where" if depth == 0 => break,
            "for" if depth == 0 => target = None,
            word if depth == 0 && is_identifier(word) => target = Some(word),
            _ => {}
        }
    }
    target
}

/// Every `.rs` file under the given directories.
fn rust_files(roots: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The module a file is: `src/a/b.rs` is `b`, `src/a/mod.rs` is `a`,
/// `examples/loadgen/main.rs` is `loadgen`, `src/lib.rs` is the crate.
fn module_name(file: &Path) -> String {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let parent = file.parent().unwrap_or(Path::new(""));
    let parent_name = parent.file_name().unwrap_or_default().to_string_lossy();
    let is_root = CODE_ROOTS.contains(&parent_name.as_ref());
    match stem.as_ref() {
        "lib" if is_root => CRATE.to_owned(),
        "mod" | "main" if !is_root => parent_name.into_owned(),
        _ => stem.into_owned(),
    }
}

/// The inline code spans of a chapter's prose. Fenced blocks are left out: they are
/// transcripts and commands, checked by the gdb frame test where they quote code.
fn inline_spans(text: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let spans = prose.split('`').skip(1).step_by(2);
    spans.map(str::to_owned).collect()
}

/// The segments of a span that is exactly a name or path, maybe called: `Outbox::offer`,
/// `read_connect()`. Anything else (`tx:`, `0x82`, `-t hoge/#`) is not a name of code.
fn code_name(span: &str) -> Option<Vec<&str>> {
    let path = span.strip_suffix("()").unwrap_or(span);
    let segments: Vec<&str> = path.split("::").collect();
    segments
        .iter()
        .all(|s| is_identifier(s))
        .then_some(segments)
}

/// What is wrong with a name a chapter gives, or `None` if the code defines it. In a path
/// every segment must be defined, and each must be a member of the one before it.
fn name_problem(segments: &[&str], definitions: &Definitions) -> Option<String> {
    if is_external(segments[0]) {
        return None;
    }
    if let Some(missing) = segments.iter().find(|s| !definitions.defines(s)) {
        return Some(format!("`{missing}` is defined nowhere in the code"));
    }
    for pair in segments.windows(2) {
        if !definitions.is_member(pair[0], pair[1]) {
            let (owner, member) = (pair[0], pair[1]);
            return Some(format!(
                "`{member}` is not where `{owner}` is defined or implemented"
            ));
        }
    }
    None
}

#[test]
fn every_function_and_type_a_chapter_names_exists() {
    let definitions = Definitions::read();
    let mut problems = BTreeSet::new();
    for (chapter, text) in chapters() {
        for span in inline_spans(&text) {
            let Some(segments) = code_name(&span) else {
                continue;
            };
            if let Some(problem) = name_problem(&segments, &definitions) {
                problems.insert(format!("{chapter}: `{span}`: {problem}"));
            }
        }
    }
    let list: Vec<String> = problems.into_iter().collect();
    assert!(
        list.is_empty(),
        "{} name(s) in the chapters are not in the code; fix the chapter, or, for a name \
         that is not ours (a syscall, a std type), add it to EXTERNAL:\n  {}",
        list.len(),
        list.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------
// The readers above on small examples, so a change to them is checked too.

mod readers {
    use super::*;

    #[test]
    fn a_frame_with_generics_and_closures_names_its_function() {
        let line = "#1 mqttd::topic::trie::Trie<u64, mqttd::broker::S>::insert<u64> (self=0x1, \
                    key=2) at src/topic/trie.rs:86";
        let function = frame_function(line).unwrap();
        assert_eq!(
            without_generics(&function),
            "mqttd::topic::trie::Trie::insert"
        );
        assert_eq!(
            frame_location(line),
            Some(("src/topic/trie.rs".to_owned(), 86))
        );
        let closure = ["run".to_owned(), "{closure#1}".to_owned()];
        assert_eq!(named_function(&closure), "run");
    }

    #[test]
    fn function_definitions_are_found_with_any_visibility() {
        assert_eq!(
            defined_function("    pub(crate) const fn size() -> usize {"),
            Some("size")
        );
        assert_eq!(defined_function("fn run<T>(t: T) {"), Some("run"));
        assert_eq!(defined_function("    /// fn not_code()"), None);
        assert_eq!(module_of("src/codec/mod.rs"), ["mqttd", "codec"]);
    }

    #[test]
    fn the_scan_finds_items_fields_variants_parameters_and_impls() {
        let mut definitions = Definitions::default();
        let scan = |definitions: &mut Definitions, file: &str, source: &str| {
            definitions.scan(Path::new(file), &tokens(&code_only(source)));
        };
        let s = "pub struct S<T: Copy> { pub(crate) field: Vec<u8>, t: T }\n\
                 impl<'a> fmt::Display for S<'a> { fn show(&self, out: &str) {} }";
        scan(&mut definitions, "src/s.rs", s);
        let e = "enum E { A, #[doc = \"x\"] B(u8, Q), C { inner: u8 } } // struct Commented";
        scan(&mut definitions, "src/e.rs", e);
        let names: Vec<&str> = definitions.defined_in.keys().map(String::as_str).collect();
        let expected = [
            "A", "B", "C", "E", "S", "field", "inner", "out", "show", "t",
        ];
        assert_eq!(names, expected);
        assert!(definitions.is_member("S", "show") && definitions.is_member("E", "inner"));
        assert!(!definitions.is_member("E", "show"));
    }

    #[test]
    fn only_names_in_prose_are_checked() {
        let text = "Read `Session::handle()` and `tx:`.\n```text\n`not_checked`\n```\n";
        let spans = inline_spans(text);
        assert_eq!(spans, ["Session::handle()", "tx:"]);
        assert_eq!(code_name(&spans[0]), Some(vec!["Session", "handle"]));
        assert_eq!(code_name(&spans[1]), None);
        assert!(is_commit("e3ae954") && !is_commit("deadbeef_"));
    }
}
