//! The chapters' raw-byte cases, replayed. Every `$ ./target/debug/mqttd send …` command a
//! chapter shows in a fenced block, with the output printed under it, is run again here:
//! the built `mqttd send` against an in-process broker on a port the OS picks. If a log
//! line is reworded, an answer changes or a new behaviour appears, this test fails and
//! names the chapter and the block, instead of the chapter quietly going stale.
//!
//! What is compared: every line of the command's output the chapter shows (`connected to`,
//! `-> sent …`, `<- received …`, the dissector's tables, `decoded: …`, the last line), with
//! the port of every `127.0.0.1:PORT` and the seconds of "closed the connection N s after"
//! masked: they depend on the machine. A command piped through
//! `| grep -E '^(a|b|…)'` is filtered here the same way. Broker log lines quoted *inside*
//! the block (chapter 01 puts its `WARN` line under the output) are looked for among the
//! lines this process logged, addresses masked, and so are those of a separate block
//! marked as the log of the cases above it (below).
//!
//! A block may start with an HTML comment the reader does not see, just above its fence:
//!
//! - `<!-- replay: SETTING=VALUE … -->` starts the block's brokers with those settings:
//!   `max_packet_size`, `max_keepalive`, `allow_anonymous`,
//!   `allow_zero_length_clientid`, `user=NAME:PASSWORD` (a password file with that user,
//!   made by `mqttd passwd`; such a block is skipped without the `auth` feature).
//! - `<!-- replay: log -->` above a block of log lines (timestamps, or the `...` put in
//!   their place, are dropped): the brokers of the cases above must have logged each line.
//!   Only for blocks whose every line comes from those cases, not from other clients.
//! - `<!-- replay: output -->` above a block that shows the output of the command above
//!   it, when the chapter puts the two apart.
//! - `takeover=ID`: a second client connects with the same Client Identifier one second
//!   after the command starts (chapter 02's takeover, there done with `mosquitto_pub`).
//! - `subscriber=ID:FILTER`: a client that subscribes to FILTER before the command starts
//!   (chapter 02's Will, there received by `mosquitto_sub`).
//! - `tail` in the same comment: the block shows only the last lines of each output (the
//!   chapter says the first lines were the same as above), so those are compared with the
//!   last lines of the real output.
//!
//! Commands that cannot be replayed alone are in [`LEFT_OUT`], each with its reason.
//! Each case runs in a thread of its own with its own broker, so the whole replay lasts
//! about as long as the slowest case: chapter 02's client that sends nothing, closed by the
//! broker's 10 s CONNECT deadline.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, start_broker_with, Raw, CONNACK_ACCEPTED, DISCONNECT};
use log::{LevelFilter, Log, Metadata, Record};
use mqttd::Config;

/// What starts a replayed command in a block.
const PROMPT: &str = "$ ./target/debug/mqttd send ";

/// How [`config_for`] says a case cannot be replayed in this build, rather than failed.
const SKIP: &str = "SKIP: ";

/// Commands shown in a chapter that this test does not replay: (chapter, a piece of the
/// command line that picks it out, why). None today; a command that cannot be replayed
/// alone goes here, with the reason.
const LEFT_OUT: &[(&str, &str, &str)] = &[];

/// One command of a chapter, with what the chapter says it printed.
#[derive(Debug, Clone)]
struct Case {
    chapter: String,
    /// The line of the chapter the command is on (1-based).
    line: usize,
    command: String,
    /// The arguments after `send`, the chapter's address among them.
    args: Vec<String>,
    /// The `HOST:PORT` the chapter ran it against.
    address: String,
    /// The alternatives of `grep -E '^(…)'`, when the output was piped through one.
    filter: Option<Vec<String>>,
    /// The output lines the chapter shows.
    output: Vec<String>,
    /// The broker's log lines the chapter shows under the output.
    logs: Vec<String>,
    /// The words of the block's `<!-- replay: … -->` comment.
    settings: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Reading the chapters.
// ---------------------------------------------------------------------------------------

fn chapters() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("walkthrough").expect("walkthrough/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// Every `mqttd send` case in a chapter's fenced blocks.
fn cases_in(chapter: &str, text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut marker: Vec<String> = Vec::new();
    // Inside a block: its settings, and its fence's indentation (a block in a list item
    // is indented; the table rows' own leading spaces are kept).
    let mut in_block: Option<(Vec<String>, usize)> = None;
    let mut current: Option<Case> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with("```") {
            match in_block.take() {
                Some(_) => cases.extend(current.take()),
                None => {
                    let indent = raw.len() - trimmed.len();
                    in_block = Some((std::mem::take(&mut marker), indent));
                }
            }
            continue;
        }
        let Some((settings, indent)) = &in_block else {
            let line = trimmed;
            if let Some(words) = line
                .strip_prefix("<!-- replay:")
                .and_then(|rest| rest.trim_end().strip_suffix("-->"))
            {
                marker = words.split_whitespace().map(str::to_owned).collect();
            } else if !line.is_empty() {
                marker.clear();
            }
            continue;
        };
        let line = raw.get(*indent..).unwrap_or(trimmed);
        let log = settings.iter().any(|w| w == "log");
        if log || settings.iter().any(|w| w == "output") {
            if !line.trim().is_empty() {
                let case = cases.last_mut().unwrap_or_else(|| {
                    panic!("{chapter}:{}: a replay block with no case above", index + 1)
                });
                match log || is_log_line(line) {
                    true => case.logs.push(without_timestamp(line).to_owned()),
                    false => case.output.push(line.to_owned()),
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(PROMPT) {
            cases.extend(current.take());
            current = Some(parse_command(chapter, index + 1, line, rest, settings));
        } else if line.trim().is_empty() || line.starts_with("$ ") {
            cases.extend(current.take());
        } else if let Some(case) = &mut current {
            match is_log_line(line) {
                true => case.logs.push(line.to_owned()),
                false => case.output.push(line.to_owned()),
            }
        }
    }
    cases
}

/// A log line without its timestamp, or the `...` a chapter writes in its place.
fn without_timestamp(line: &str) -> &str {
    match line.split_once(' ') {
        Some((first, rest)) if first == "..." || first.ends_with('Z') => rest,
        _ => line,
    }
}

/// A line of the broker's log: it starts with its level, as `main.rs` writes it.
fn is_log_line(line: &str) -> bool {
    ["TRACE ", "DEBUG ", "INFO  ", "WARN  ", "ERROR "]
        .iter()
        .any(|level| line.starts_with(level))
}

/// The command line after the prompt: shell words (single quotes kept together), up to
/// a `#` comment; a `| grep -E '^(…)'` after them becomes the filter.
fn parse_command(chapter: &str, line: usize, whole: &str, rest: &str, settings: &[String]) -> Case {
    let (args, piped) = shell_words(rest);
    let filter = piped.map(|words| grep_alternatives(&words, chapter, line));
    let address = args
        .iter()
        .find(|a| a.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("{chapter}:{line}: no 127.0.0.1:PORT in {whole}"))
        .clone();
    Case {
        chapter: chapter.to_owned(),
        line,
        command: whole.to_owned(),
        args,
        address,
        filter,
        output: Vec::new(),
        logs: Vec::new(),
        settings: settings.to_vec(),
    }
}

/// Splits on spaces outside single quotes; stops at `#`; what follows a `|` is returned
/// apart.
fn shell_words(text: &str) -> (Vec<String>, Option<Vec<String>>) {
    let mut words = vec![Vec::new()];
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.last_mut().unwrap().push(std::mem::take(&mut word));
                }
                started = false;
            }
            '#' if !quoted && !started => break,
            '|' if !quoted && !started => words.push(Vec::new()),
            _ => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.last_mut().unwrap().push(word);
    }
    let mut words = words.into_iter();
    (words.next().unwrap(), words.next())
}

/// `grep -E '^(a|b|c)'` as the list of prefixes it keeps; any other pipe is refused.
fn grep_alternatives(words: &[String], chapter: &str, line: usize) -> Vec<String> {
    let pattern = match words {
        [grep, e, pattern] if grep == "grep" && e == "-E" => pattern,
        _ => panic!("{chapter}:{line}: only `| grep -E '^(…|…)'` can be replayed: {words:?}"),
    };
    let inner = pattern
        .strip_prefix("^(")
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or_else(|| {
            panic!("{chapter}:{line}: grep pattern not of the form ^(…): {pattern}")
        });
    inner.split('|').map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------
// The broker's log, captured: this test binary's one logger.
// ---------------------------------------------------------------------------------------

/// Every line logged in this process, formatted as `main.rs` formats them, without the
/// timestamp.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        // The thread's name as the broker's own log prints it (a handshake thread is
        // renamed for each connection it takes).
        let line = mqttd::thread_name::with_current(|thread| {
            format!("{:<5} [{thread}] {}", record.level(), record.args())
        });
        LOGGED.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// Waits (a little) until a line equal to `expected`, addresses masked, has been logged.
fn was_logged(expected: &str) -> bool {
    let want = mask(expected);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if LOGGED.lock().unwrap().iter().any(|l| mask(l) == want) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Replaying.
// ---------------------------------------------------------------------------------------

/// The part of a line that depends on timing or on the machine, replaced: the seconds of
/// the close line, and the client's port in `127.0.0.1:PORT`.
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("127.0.0.1:") {
        let (before, after) = rest.split_at(at + "127.0.0.1:".len());
        out.push_str(before);
        out.push_str("PORT");
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    const CLOSED: &str = "the broker closed the connection ";
    if let Some(tail) = out.strip_prefix(CLOSED) {
        if let Some(s) = tail.find(" s after") {
            return format!("{CLOSED}N{}", &tail[s..]);
        }
    }
    out
}

/// The configuration a block's settings ask for (or why it cannot be made here), and the
/// temporary directory holding its password file, if any.
fn config_for(case: &Case) -> Result<(Config, Option<PathBuf>), String> {
    let mut config = Config {
        sys_interval: Duration::ZERO,
        ..Config::default()
    };
    let mut directory = None;
    for word in case.settings.iter().filter(|w| !is_directive(w)) {
        let (name, value) = word
            .split_once('=')
            .ok_or(format!("setting {word:?} is not NAME=VALUE"))?;
        match name {
            "max_packet_size" => config.max_packet_size = parsed(word, value)?,
            "max_keepalive" => config.max_keepalive = parsed(word, value)?,
            "allow_anonymous" => config.allow_anonymous = parsed(word, value)?,
            "allow_zero_length_clientid" => {
                config.allow_zero_length_clientid = parsed(word, value)?
            }
            "user" => {
                let dir = password_file(case, value)?;
                config.password_file = Some(dir.join("passwords.txt"));
                directory = Some(dir);
            }
            _ => return Err(format!("unknown setting {name:?}")),
        }
    }
    Ok((config, directory))
}

/// The words of a `<!-- replay: … -->` comment that are not broker settings.
fn is_directive(word: &str) -> bool {
    ["tail", "log", "output"].contains(&word)
        || word.starts_with("takeover=")
        || word.starts_with("subscriber=")
}

/// A setting's value, read as its field's type.
fn parsed<T: std::str::FromStr>(word: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("setting {word:?}: bad value"))
}

/// A fresh directory with `passwords.txt` holding `NAME:PASSWORD`, made by `mqttd passwd`.
fn password_file(case: &Case, user: &str) -> Result<PathBuf, String> {
    if cfg!(not(feature = "auth")) {
        return Err(format!("{SKIP}a password file needs the `auth` feature"));
    }
    let (name, password) = user.split_once(':').ok_or("user=NAME:PASSWORD")?;
    let dir = std::env::temp_dir().join(format!(
        "mqttd-tryits-{}-{}-{}",
        std::process::id(),
        case.chapter,
        case.line
    ));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let status = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .args(["passwd", "-c", "-b"])
        .arg(dir.join("passwords.txt"))
        .args([name, password])
        .status()
        .map_err(|e| e.to_string())?;
    match status.success() {
        true => Ok(dir),
        false => Err(format!("mqttd passwd failed: {status}")),
    }
}

/// Runs one case; `Err` is the failure message, `Ok(Some(_))` a reason it was skipped.
fn replay(case: &Case) -> Result<Option<String>, String> {
    let (config, directory) = match config_for(case) {
        Ok(made) => made,
        Err(why) => match why.strip_prefix(SKIP) {
            Some(reason) => return Ok(Some(reason.to_owned())),
            None => return Err(why),
        },
    };
    let broker = start_broker_with(config);
    let address = broker.local_addr().to_string();
    // `subscriber=ID:FILTER`: connected and subscribed before the command starts, kept
    // until the log lines have been looked for.
    let subscriber = case
        .settings
        .iter()
        .find_map(|w| w.strip_prefix("subscriber="))
        .map(|s| s.split_once(':').ok_or(format!("{s:?} is not ID:FILTER")))
        .transpose()?
        .map(|(id, filter)| Raw::subscribed(broker.local_addr(), id, &[filter]));
    let args = case.args.iter().map(|a| {
        if *a == case.address {
            address.clone()
        } else {
            a.clone()
        }
    });
    let child = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("send")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("mqttd send did not start: {e}"))?;
    if let Some(id) = case
        .settings
        .iter()
        .find_map(|w| w.strip_prefix("takeover="))
    {
        take_over(broker.local_addr(), id);
    }
    let run = child.wait_with_output();
    if let Some(dir) = directory {
        let _ = fs::remove_dir_all(dir);
    }
    let run = run.map_err(|e| format!("mqttd send did not run: {e}"))?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    let got: Vec<String> = stdout
        .lines()
        .filter(|l| match &case.filter {
            Some(prefixes) => prefixes.iter().any(|p| l.starts_with(p.as_str())),
            None => true,
        })
        .map(mask)
        .collect();
    let expected: Vec<String> = case.output.iter().map(|l| mask(l)).collect();
    let tail = case.settings.iter().any(|w| w == "tail");
    let compared = match tail {
        true => &got[got.len().saturating_sub(expected.len())..],
        false => &got[..],
    };
    let mut problems = Vec::new();
    if compared != expected {
        problems.push(difference(case, tail, &expected, compared, &got));
    }
    for log in &case.logs {
        if !was_logged(log) {
            problems.push(format!("the broker never logged:\n    {log}"));
        }
    }
    // Only now: a Will goes out to the subscriber after the command has closed.
    drop(subscriber);
    drop(broker);
    match problems.is_empty() {
        true => Ok(None),
        false => Err(problems.join("\n")),
    }
}

/// `takeover=ID`: what the chapter's second client (`mosquitto_pub -i ID`, a second
/// later) did, done by hand: the same CONNECT (Clean Session 1, Keep Alive 60), then
/// DISCONNECT.
fn take_over(addr: SocketAddr, id: &str) {
    thread::sleep(Duration::from_secs(1));
    let mut second = Raw::tcp(addr);
    second.send(&connect(id, 60));
    assert_eq!(
        second.recv(),
        CONNACK_ACCEPTED,
        "CONNACK for the second {id}"
    );
    second.send(&DISCONNECT);
}

/// The failure message for an output that is not the chapter's: the first line that
/// differs, then both outputs in full.
fn difference(
    case: &Case,
    tail: bool,
    expected: &[String],
    compared: &[String],
    got: &[String],
) -> String {
    let first = (0..compared.len().max(expected.len()))
        .find(|&i| compared.get(i) != expected.get(i))
        .unwrap_or(0);
    let how = match (tail, &case.filter) {
        (true, _) => "; the block shows the last lines only",
        (false, Some(_)) => "; grep filter applied",
        (false, None) => "",
    };
    let line = |lines: &[String]| {
        lines
            .get(first)
            .map_or("(no line)", String::as_str)
            .to_owned()
    };
    format!(
        "output differs (seconds and ports masked{how}), first at the block's output line {}:\n  \
         expected: {}\n  got:      {}\n  expected, all:\n{}\n  got, all:\n{}",
        first + 1,
        line(expected),
        line(compared),
        indent(expected),
        indent(got)
    )
}

fn indent(lines: &[String]) -> String {
    let lines: Vec<String> = lines.iter().map(|l| format!("    {l}")).collect();
    lines.join("\n")
}

fn left_out(case: &Case) -> Option<&'static str> {
    LEFT_OUT
        .iter()
        .find(|(chapter, piece, _)| case.chapter == *chapter && case.command.contains(piece))
        .map(|(_, _, why)| *why)
}

#[test]
fn every_mqttd_send_case_in_the_chapters_still_prints_what_the_chapter_shows() {
    log::set_boxed_logger(Box::new(Capture)).expect("the only logger of this test binary");
    log::set_max_level(LevelFilter::Debug);
    let cases: Vec<Case> = chapters()
        .iter()
        .flat_map(|(name, text)| cases_in(name, text))
        .collect();
    assert!(cases.len() >= 10, "too few cases found: {}", cases.len());
    let mut failures = Vec::new();
    let mut running = Vec::new();
    for case in cases {
        if let Some(why) = left_out(&case) {
            eprintln!("{}:{}: left out: {why}", case.chapter, case.line);
            continue;
        }
        if case.output.is_empty() {
            failures.push(format!(
                "{}:{}: a command shown with no output; show it, or list it in LEFT_OUT\n  {}",
                case.chapter, case.line, case.command
            ));
            continue;
        }
        running.push(thread::spawn(move || (replay(&case), case)));
    }
    for handle in running {
        let (result, case) = handle.join().expect("a replay thread panicked");
        match result {
            Ok(None) => eprintln!(
                "{}:{}: replayed, {} line(s) and {} log line(s) as shown",
                case.chapter,
                case.line,
                case.output.len(),
                case.logs.len()
            ),
            Ok(Some(skipped)) => eprintln!("{}:{}: skipped: {skipped}", case.chapter, case.line),
            Err(problem) => failures.push(format!(
                "walkthrough/{}, line {}:\n  {}\n{problem}",
                case.chapter, case.line, case.command
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
