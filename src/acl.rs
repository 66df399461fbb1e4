//! Access control: who may publish to, and receive from, which topics, read from a file in
//! Mosquitto's `acl_file` format.
//!
//! MQTT 3.1.1 leaves authorization to the server (§5.4.2, "Authorization") and only says
//! how a refusal shows: the SUBACK return code 0x80, failure, for a subscription
//! ([MQTT-3.9.3-2]), and nothing at all for a PUBLISH, which the server acknowledges as
//! usual and does not distribute ([MQTT-3.3.5-2]). mqttd reads the same file Mosquitto 2.0
//! does:
//!
//! ```text
//! # Lines starting with '#' are comments; blank lines are skipped.
//! topic read public/#            <- before any `user` line: for clients with no user name
//!
//! user alice                     <- from here on, for the client that logged in as alice
//! topic readwrite sensors/#
//! topic deny sensors/secret/#    <- deny wins over every grant, wherever it stands
//! topic sensors/alice            <- no access word: read and write
//!
//! pattern write devices/%c/state <- for every client: %c is its client id, %u its user name
//! ```
//!
//! How a check decides, for one client and one topic (see [`ClientAcl`]):
//! 1. the entries that concern the client are its own `topic` lines (the block of its user
//!    name, or the anonymous lines before the first `user` line if it sent no user name),
//!    and every `pattern` line with `%c` and `%u` replaced;
//! 2. if a `deny` entry matches the topic, the answer is no;
//! 3. otherwise the answer is yes when an entry granting that access (`read`, `write` or
//!    `readwrite`) matches, and no when none does. No entry, no access.
//!
//! Step 2 is where mqttd reads Mosquitto's manual ("deny topics are handled before topics
//! that grant") more strictly than Mosquitto's code: there, the user's `topic` lines are
//! tried first and the patterns after, each list denies first, so a `topic readwrite #`
//! in a user's block beats a `pattern deny private/%u/#`. Here every deny wins.
//!
//! Matching is the topic matching of §4.7 ([`topic::matches`]), so `topic read sensors/#`
//! lets a client read `sensors/a/b`, and `topic read #` does not reach `$SYS/…` topics
//! ([MQTT-4.7.2-1]). Without an `acl_file` everything is allowed: the caller then holds no
//! [`Acl`] at all.
//!
//! Where mqttd goes further than Mosquitto: Mosquitto's file-based ACL grants every
//! SUBSCRIBE and drops the messages a client may not read, one by one and silently. mqttd
//! answers a filter that can never deliver anything with 0x80 at once, so the client knows
//! (see [`ClientAcl::subscription`]).
//!
//! The module knows topics and nothing else of the broker. It does no I/O but reading the
//! file, and logs nothing: the warnings it finds are handed back ([`Acl::warnings`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::topic::{self, TopicError};

/// What an entry allows, as its access word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `read`: receive messages on the topics (subscribe and be delivered to).
    Read,
    /// `write`: publish to the topics (PUBLISH, a Will, a retained message).
    Write,
    /// `readwrite`, or no access word at all: both.
    ReadWrite,
    /// `deny`: neither, whatever any other entry grants.
    Deny,
}

impl Access {
    /// The access an access word names, or `None` if it names none.
    fn from_word(word: &str) -> Option<Access> {
        match word {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "readwrite" => Some(Access::ReadWrite),
            "deny" => Some(Access::Deny),
            _ => None,
        }
    }

    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// One `topic` or `pattern` line: an access and the topic filter it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    access: Access,
    /// A valid topic filter (checked when the file was read). In a pattern, `%c` and `%u`
    /// are still in it.
    filter: Box<str>,
}

/// A client, as the access rules see it: the identity it gave in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    /// The client identifier (after the broker assigned one to a client that sent none).
    pub client_id: &'a str,
    /// The user name, if the client sent one. `None` makes it anonymous: it gets the
    /// `topic` lines that come before the first `user` line.
    pub username: Option<&'a str>,
}

/// The rules of an `acl_file`, for every client. Read once at start; ask
/// [`Acl::for_client`] for one client's rules when it connects.
#[derive(Debug)]
pub struct Acl {
    /// The `topic` lines before the first `user` line: for clients without a user name.
    anonymous: Arc<[Entry]>,
    /// The `topic` lines of each `user` block, by user name. Two blocks for the same name
    /// add up, as in Mosquitto. Shared (`Arc`) with every connected client of that user.
    users: HashMap<String, Arc<[Entry]>>,
    /// The `pattern` lines, wherever they stand in the file, with `%c` and `%u` unreplaced.
    patterns: Vec<Entry>,
    /// What a user name without a block gets: no `topic` entries.
    nothing: Arc<[Entry]>,
    /// Lines that are valid but probably not what the author meant, as `file:line: why`.
    warnings: Vec<String>,
}

impl Acl {
    /// Reads and parses the file at `path`. Errors name the file, and the line for a
    /// syntax error.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let text = fs::read_to_string(path).map_err(|error| AclError::Unreadable {
            path: path.to_owned(),
            error,
        })?;
        Acl::parse(&text, &path.display().to_string())
    }

    /// Parses the text of an `acl_file`; `source_name` is what errors and warnings call it.
    /// The first line that is not valid stops the parse, like Mosquitto refusing to start.
    pub fn parse(text: &str, source_name: &str) -> Result<Acl, AclError> {
        let mut builder = Builder::new(source_name);
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = parse_line(raw).map_err(|problem| AclError::Line {
                file: source_name.to_owned(),
                line: number,
                problem,
            })?;
            builder.add(line, number);
        }
        Ok(builder.finish())
    }

    /// Valid lines that are probably mistakes, as `file:line: why`, for the caller to log:
    /// a `pattern` with neither `%c` nor `%u` (Mosquitto warns about it too), and a line
    /// such as `topic read`, where the access word is taken for the topic.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The entries that concern one client, with its patterns resolved: call it once when
    /// the client connects and keep the result for the whole connection.
    ///
    /// Why once: a pattern becomes a plain filter only when `%c` and `%u` are known, and
    /// replacing them for every message would allocate on the delivery path. The client's
    /// own `topic` lines are shared with the [`Acl`], not copied, so a connection pays only
    /// for its resolved patterns.
    pub fn for_client(&self, who: &Who<'_>) -> ClientAcl {
        let topics = match who.username {
            None => Arc::clone(&self.anonymous),
            Some(name) => Arc::clone(self.users.get(name).unwrap_or(&self.nothing)),
        };
        ClientAcl {
            topics,
            patterns: resolve_patterns(&self.patterns, who),
        }
    }
}

/// The patterns with `%c` and `%u` replaced for `who`.
///
/// Two cases give no pattern at all, as in Mosquitto (`mosquitto_acl_check_default` in
/// `src/security_default.c`): a pattern with `%u` for a client without a user name, and
/// every pattern for a client whose id or user name holds `+` or `#`. The second is a
/// defence: a client named `+` would otherwise turn `devices/%c/#` into `devices/+/#`, and
/// reach every other client's topics. A `/` is not refused: client `a/b` with
/// `devices/%c/#` gets `devices/a/b/#`, one level deeper, as in Mosquitto.
fn resolve_patterns(patterns: &[Entry], who: &Who<'_>) -> Vec<Entry> {
    let has_wildcard = |s: &str| s.contains(['+', '#']);
    if has_wildcard(who.client_id) || who.username.is_some_and(has_wildcard) {
        return Vec::new();
    }
    let usable = |entry: &&Entry| who.username.is_some() || !entry.filter.contains("%u");
    let resolve = |entry: &Entry| Entry {
        access: entry.access,
        filter: substitute(&entry.filter, who).into(),
    };
    patterns.iter().filter(usable).map(resolve).collect()
}

/// `pattern` with every `%c` replaced by the client id and every `%u` by the user name.
/// Any other `%` stays as it is. Replacing anywhere in a level, not only a whole level, is
/// what Mosquitto's code does (its manual asks for whole levels but does not check).
fn substitute(pattern: &str, who: &Who<'_>) -> String {
    let mut out = String::with_capacity(pattern.len() + who.client_id.len());
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match (after.chars().next(), who.username) {
            (Some('c'), _) => out.push_str(who.client_id),
            (Some('u'), Some(name)) => out.push_str(name),
            _ => {
                out.push('%');
                rest = after;
                continue;
            }
        }
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

/// One client's access rules, resolved when it connected ([`Acl::for_client`]). The caller
/// keeps one per connection and asks it about every PUBLISH, Will, SUBSCRIBE and delivery.
///
/// The checks walk the client's entries in a line: an `acl_file` gives a client a handful
/// of entries, and comparing a topic with each one level by level costs less than a
/// lookup structure would to build and hold per connection. A file with thousands of
/// entries per user would want a trie here ([`topic::SubscriptionTrie`]).
#[derive(Debug, Clone)]
pub struct ClientAcl {
    /// The client's `topic` lines: its user's block, or the anonymous lines.
    topics: Arc<[Entry]>,
    /// Every `pattern` line that applies to the client, `%c` and `%u` replaced.
    patterns: Vec<Entry>,
}

/// What a SUBSCRIBE filter may receive, and so what its SUBACK says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionAccess {
    /// Nothing the filter matches could ever be delivered: a `deny` entry covers the
    /// whole filter, or no read entry matches any topic the filter matches. Answer the
    /// filter with SUBACK's failure code 0x80 and do not subscribe.
    Refused,
    /// Every topic the filter matches may be read: one read entry covers the filter and no
    /// `deny` entry touches it. Deliver without asking again.
    Granted,
    /// Some topics the filter matches may be read and some may not (`sensors/#` when only
    /// `sensors/public/#` is readable). Grant the subscription, and ask
    /// [`ClientAcl::may_read`] for every message delivered through it.
    GrantedFiltered,
}

impl ClientAcl {
    /// Every entry that concerns this client.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.topics.iter().chain(&self.patterns)
    }

    /// Whether a `deny` entry matches `topic`.
    fn denied(&self, topic: &str) -> bool {
        let deny = |e: &&Entry| e.access == Access::Deny;
        self.entries()
            .filter(deny)
            .any(|e| topic::matches(&e.filter, topic))
    }

    /// Whether an entry granting `wanted` matches `topic`, and no `deny` entry does.
    fn allows(&self, topic: &str, wanted: fn(Access) -> bool) -> bool {
        let grants = |e: &&Entry| wanted(e.access);
        !self.denied(topic)
            && self
                .entries()
                .filter(grants)
                .any(|e| topic::matches(&e.filter, topic))
    }

    /// Whether the client may receive a message published to the topic name `topic`.
    /// Asked once per message and subscriber when a subscription was
    /// [`SubscriptionAccess::GrantedFiltered`], and for retained messages.
    pub fn may_read(&self, topic: &str) -> bool {
        self.allows(topic, Access::reads)
    }

    /// Whether the client may publish to the topic name `topic`: a PUBLISH (dropped if
    /// not), its Will, a retained message.
    pub fn may_write(&self, topic: &str) -> bool {
        // §4.7.2 (a SHOULD, no rule ID): `$` topics are the server's. No client may write
        // to `$SYS/…`, whatever the file says, as in Mosquitto (`acl__check_dollar` in
        // `src/security.c`). Mosquitto compares the first four characters, so `$SYSx/…`
        // is refused there too; mqttd compares the first level, exactly `$SYS`.
        if topic.split(topic::SEPARATOR).next() == Some("$SYS") {
            return false;
        }
        self.allows(topic, Access::writes)
    }

    /// What a SUBSCRIBE to `filter` (a valid topic filter) may receive.
    ///
    /// Judged one entry at a time, so it errs only towards
    /// [`SubscriptionAccess::GrantedFiltered`]: when two `deny` entries together cover a
    /// filter that neither covers alone, the subscription is granted and every message is
    /// then refused by [`ClientAcl::may_read`]. Never the other way: a refused filter
    /// could not have delivered anything.
    pub fn subscription(&self, filter: &str) -> SubscriptionAccess {
        let denies = || self.entries().filter(|e| e.access == Access::Deny);
        let reads = || self.entries().filter(|e| e.access.reads());
        let deny_covers = denies().any(|e| topic::filter_covers(&e.filter, filter));
        let read_reaches = reads().any(|e| topic::filters_overlap(&e.filter, filter));
        if deny_covers || !read_reaches {
            return SubscriptionAccess::Refused;
        }
        let read_covers = reads().any(|e| topic::filter_covers(&e.filter, filter));
        let deny_touches = denies().any(|e| topic::filters_overlap(&e.filter, filter));
        if read_covers && !deny_touches {
            SubscriptionAccess::Granted
        } else {
            SubscriptionAccess::GrantedFiltered
        }
    }
}

/// The last write verdict of one connection: a client that publishes to the same topic
/// again and again (a sensor, a benchmark) pays for its rules once, then for one string
/// comparison per PUBLISH instead of a walk over every entry (measured with a 100-line
/// file: the walk cost the pair benchmark four fifths of its messages). Owned by the
/// connection's reader thread alone, hence a `RefCell`. The verdict is tied to the rules
/// that gave it (`Arc::ptr_eq`), so rules replaced by a reload are asked again.
#[derive(Debug, Default)]
pub struct WriteVerdicts {
    last: RefCell<Option<Verdict>>,
}

/// One remembered answer: which rules were asked, about which topic, and what they said.
#[derive(Debug)]
struct Verdict {
    rules: Arc<ClientAcl>,
    topic: Arc<str>,
    allowed: bool,
}

impl WriteVerdicts {
    /// [`ClientAcl::may_write`], remembered for the last topic.
    pub fn may_write(&self, rules: &Arc<ClientAcl>, topic: &Arc<str>) -> bool {
        if let Some(last) = &*self.last.borrow() {
            if Arc::ptr_eq(&last.rules, rules) && *last.topic == **topic {
                return last.allowed;
            }
        }
        let allowed = rules.may_write(topic);
        *self.last.borrow_mut() = Some(Verdict {
            rules: Arc::clone(rules),
            topic: Arc::clone(topic),
            allowed,
        });
        allowed
    }
}

// ---------------------------------------------------------------------------------------
// Reading the file.

/// What one line of the file says.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    /// A blank line or a comment.
    Nothing,
    /// `user NAME`: the `topic` lines that follow are NAME's.
    User(&'a str),
    /// `topic [ACCESS] FILTER`.
    Topic(Entry),
    /// `pattern [ACCESS] FILTER`.
    Pattern(Entry),
}

/// Reads one line. Words are separated by spaces or tabs; after the keyword (and the
/// access word), the rest of the line is one value, so a user name or a topic may hold
/// spaces, as in Mosquitto (`aclfile__parse` in `src/security_default.c`).
fn parse_line(raw: &str) -> Result<Line<'_>, LineProblem> {
    let line = raw.trim();
    // Mosquitto takes '#' as a comment only in the first column; mqttd also after blanks.
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Nothing);
    }
    let (keyword, rest) = split_word(line);
    match keyword {
        "topic" => parse_entry(keyword, rest).map(Line::Topic),
        "pattern" => parse_entry(keyword, rest).map(Line::Pattern),
        "user" if rest.is_empty() => Err(LineProblem::MissingUsername),
        "user" => Ok(Line::User(rest)),
        other => Err(LineProblem::UnknownKeyword(other.to_owned())),
    }
}

/// The first word of `text` and the rest, trimmed: `("read", "a b")` for `"read  a b"`.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

/// Reads what follows `topic` or `pattern`: an optional access word, then a filter.
///
/// With a single word, that word is the filter and the access is `readwrite`, even when
/// the word is `read`: Mosquitto reads `topic read` as "read and write the topic `read`".
/// We keep that meaning and warn about it ([`Builder::add`]).
fn parse_entry(keyword: &str, rest: &str) -> Result<Entry, LineProblem> {
    if rest.is_empty() {
        return Err(LineProblem::MissingTopic(keyword.to_owned()));
    }
    let (first, after) = split_word(rest);
    let (access, filter) = if after.is_empty() {
        (Access::ReadWrite, first)
    } else {
        let access =
            Access::from_word(first).ok_or_else(|| LineProblem::UnknownAccess(first.to_owned()))?;
        (access, after)
    };
    // [MQTT-4.7.1-2] [MQTT-4.7.1-3] an entry's topic is a filter, with the filter's rules.
    topic::validate_topic_filter(filter).map_err(|error| LineProblem::InvalidFilter {
        filter: filter.to_owned(),
        error,
    })?;
    let filter = filter.into();
    Ok(Entry { access, filter })
}

/// Collects the lines of one file into an [`Acl`].
struct Builder<'a> {
    file: &'a str,
    /// The name of the last `user` line so far; `None` before the first.
    user: Option<String>,
    anonymous: Vec<Entry>,
    users: HashMap<String, Vec<Entry>>,
    patterns: Vec<Entry>,
    warnings: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(file: &'a str) -> Self {
        Builder {
            file,
            user: None,
            anonymous: Vec::new(),
            users: HashMap::new(),
            patterns: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Adds line `number`, already read, to what it belongs to.
    fn add(&mut self, line: Line<'_>, number: usize) {
        if let Some(why) = doubt(&line) {
            self.warnings.push(format!("{}:{number}: {why}", self.file));
        }
        match line {
            Line::Nothing => {}
            Line::User(name) => self.user = Some(name.to_owned()),
            Line::Topic(entry) => match &self.user {
                None => self.anonymous.push(entry),
                Some(name) => self.users.entry(name.clone()).or_default().push(entry),
            },
            Line::Pattern(entry) => self.patterns.push(entry),
        }
    }

    fn finish(self) -> Acl {
        let users = self.users.into_iter();
        Acl {
            anonymous: self.anonymous.into(),
            users: users
                .map(|(name, entries)| (name, entries.into()))
                .collect(),
            patterns: self.patterns,
            nothing: Arc::from(Vec::new()),
            warnings: self.warnings,
        }
    }
}

/// Why a valid line is probably not what its author meant, if it is not.
fn doubt(line: &Line<'_>) -> Option<String> {
    match line {
        Line::Topic(entry) | Line::Pattern(entry)
            if entry.access == Access::ReadWrite && Access::from_word(&entry.filter).is_some() =>
        {
            Some(format!(
                "`{}` is taken as the topic, with readwrite access; \
                 write an access word and a topic",
                entry.filter
            ))
        }
        Line::Pattern(entry) if !entry.filter.contains("%c") && !entry.filter.contains("%u") => {
            Some("this pattern has neither %c nor %u: it applies alike to every client".into())
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Errors.

/// Why an `acl_file` could not be used.
#[derive(Debug)]
pub enum AclError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    Unreadable { path: PathBuf, error: io::Error },
    /// Line `line` of `file` does not say what the format expects.
    Line {
        file: String,
        line: usize,
        problem: LineProblem,
    },
}

/// What is wrong with one line of an `acl_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// The first word is not `topic`, `pattern` or `user`.
    UnknownKeyword(String),
    /// `topic` or `pattern` with nothing after it.
    MissingTopic(String),
    /// Two or more words after `topic`/`pattern`, and the first is not an access word.
    UnknownAccess(String),
    /// The topic is not a valid topic filter.
    InvalidFilter { filter: String, error: TopicError },
    /// `user` with nothing after it.
    MissingUsername,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclError::Unreadable { path, error } => {
                write!(f, "{}: cannot read the acl_file: {error}", path.display())
            }
            AclError::Line {
                file,
                line,
                problem,
            } => write!(f, "{file}:{line}: {problem}"),
        }
    }
}

impl std::error::Error for AclError {}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ENTRY: &str = "[read|write|readwrite|deny] TOPIC";
        match self {
            LineProblem::UnknownKeyword(word) => write!(
                f,
                "unknown keyword `{word}`: expected `topic`, `pattern`, `user` or a `#` comment"
            ),
            LineProblem::MissingTopic(keyword) => {
                write!(
                    f,
                    "`{keyword}` without a topic: expected `{keyword} {ENTRY}`"
                )
            }
            LineProblem::UnknownAccess(word) => write!(
                f,
                "unknown access `{word}`: expected read, write, readwrite or deny, then the topic"
            ),
            LineProblem::InvalidFilter { filter, error } => write!(
                f,
                "`{filter}` is not a valid topic filter: {error} {}",
                error.rule()
            ),
            LineProblem::MissingUsername => {
                write!(f, "`user` without a name: expected `user NAME`")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANONYMOUS: Who<'static> = Who {
        client_id: "anon-1",
        username: None,
    };

    fn alice() -> Who<'static> {
        Who {
            client_id: "alice-phone",
            username: Some("alice"),
        }
    }

    fn acl(text: &str) -> Acl {
        Acl::parse(text, "acl.conf").unwrap_or_else(|e| panic!("{e}"))
    }

    fn client(text: &str, who: Who<'_>) -> ClientAcl {
        acl(text).for_client(&who)
    }

    fn problem(text: &str) -> (usize, LineProblem) {
        match Acl::parse(text, "acl.conf") {
            Err(AclError::Line { line, problem, .. }) => (line, problem),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    // --- the syntax --------------------------------------------------------------------

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = "# a comment\n\n   \n  # indented comment\r\ntopic read a\r\n";
        let acl = acl(text);
        assert_eq!(acl.anonymous.len(), 1);
        assert!(acl.warnings().is_empty());
    }

    #[test]
    fn topic_without_access_word_is_readwrite() {
        let c = client("topic a/b", ANONYMOUS);
        assert!(c.may_read("a/b") && c.may_write("a/b"));
    }

    #[test]
    fn topic_with_only_an_access_word_means_that_topic_as_in_mosquitto() {
        let acl = acl("topic read");
        let c = acl.for_client(&ANONYMOUS);
        assert!(c.may_write("read") && c.may_read("read"));
        assert!(!c.may_read("anything"));
        assert_eq!(acl.warnings().len(), 1);
        assert!(acl.warnings()[0].starts_with("acl.conf:1: `read` is taken as the topic"));
    }

    #[test]
    fn topics_may_hold_spaces_and_user_names_too() {
        let text = "user Alice Smith\ntopic read  rooms/living room ";
        let who = Who {
            client_id: "x",
            username: Some("Alice Smith"),
        };
        assert!(client(text, who).may_read("rooms/living room"));
    }

    #[test]
    fn lines_before_any_user_line_are_for_anonymous_clients_only() {
        let text = "topic read public/#\nuser alice\ntopic read alice/#";
        assert!(client(text, ANONYMOUS).may_read("public/news"));
        assert!(!client(text, ANONYMOUS).may_read("alice/diary"));
        assert!(!client(text, alice()).may_read("public/news"));
        assert!(client(text, alice()).may_read("alice/diary"));
    }

    #[test]
    fn a_user_name_without_a_block_gets_no_topic_entries() {
        let text = "topic read #\nuser alice\ntopic read #";
        let bob = Who {
            client_id: "b",
            username: Some("bob"),
        };
        assert!(!client(text, bob).may_read("x"));
    }

    #[test]
    fn two_blocks_for_one_user_add_up() {
        let text = "user alice\ntopic read a\nuser bob\ntopic read b\nuser alice\ntopic read c";
        let c = client(text, alice());
        assert!(c.may_read("a") && c.may_read("c") && !c.may_read("b"));
    }

    #[test]
    fn patterns_replace_client_id_and_user_name() {
        let text = "pattern readwrite devices/%c/#\npattern read users/%u/inbox";
        let c = client(text, alice());
        assert!(c.may_write("devices/alice-phone/state"));
        assert!(!c.may_write("devices/bob-phone/state"));
        assert!(c.may_read("users/alice/inbox"));
        assert!(!c.may_read("users/bob/inbox"));
    }

    #[test]
    fn patterns_apply_to_every_client_even_after_a_user_line() {
        let text = "user bob\ntopic read b\npattern read devices/%c";
        assert!(client(text, alice()).may_read("devices/alice-phone"));
        assert!(client(text, ANONYMOUS).may_read("devices/anon-1"));
    }

    #[test]
    fn a_user_name_pattern_does_not_apply_to_anonymous_clients() {
        let text = "pattern read users/%u/#\npattern read all/%c%u";
        let c = client(text, ANONYMOUS);
        assert!(!c.may_read("users//x") && !c.may_read("users/%u/x"));
        assert!(!c.may_read("all/anon-1"));
        assert!(client(text, alice()).may_read("all/alice-phonealice"));
    }

    #[test]
    fn a_percent_sign_before_another_letter_stays() {
        let who = Who {
            client_id: "c1",
            username: None,
        };
        assert_eq!(substitute("a/%x/%%c/%", &who), "a/%x/%c1/%");
    }

    #[test]
    fn a_client_id_with_a_wildcard_gets_no_patterns_at_all() {
        let text = "pattern readwrite devices/%c/#\nuser alice\ntopic read alice/#";
        for (client_id, username) in [("+", Some("alice")), ("ok", Some("al#ice"))] {
            let c = client(
                text,
                Who {
                    client_id,
                    username,
                },
            );
            assert!(
                !c.may_write("devices/other/state"),
                "{client_id} {username:?}"
            );
            assert!(!c.may_write("devices/+/state"));
        }
        let own_block_still_counts = client(
            text,
            Who {
                client_id: "+",
                ..alice()
            },
        );
        assert!(own_block_still_counts.may_read("alice/x"));
    }

    #[test]
    fn a_client_id_with_a_slash_reaches_one_level_deeper_as_in_mosquitto() {
        let c = client(
            "pattern read devices/%c/#",
            Who {
                client_id: "a/b",
                username: None,
            },
        );
        assert!(c.may_read("devices/a/b/state"));
        assert!(!c.may_read("devices/a/state"));
    }

    #[test]
    fn a_pattern_without_substitution_is_kept_with_a_warning() {
        let acl = acl("\npattern read news/#");
        assert_eq!(acl.warnings().len(), 1);
        assert!(acl.warnings()[0].starts_with("acl.conf:2: this pattern has neither"));
        assert!(acl.for_client(&ANONYMOUS).may_read("news/today"));
    }

    // --- the checks --------------------------------------------------------------------

    #[test]
    fn deny_wins_over_readwrite_wherever_it_stands() {
        for text in [
            "topic readwrite a/#\ntopic deny a/secret",
            "topic deny a/secret\ntopic readwrite a/#",
        ] {
            let c = client(text, ANONYMOUS);
            assert!(!c.may_read("a/secret") && !c.may_write("a/secret"));
            assert!(c.may_read("a/open") && c.may_write("a/open"));
        }
    }

    #[test]
    fn a_deny_pattern_wins_over_a_users_topic_grant() {
        let text = "user alice\ntopic readwrite #\npattern deny private/%u/#";
        let c = client(text, alice());
        assert!(!c.may_read("private/alice/x"));
        assert!(c.may_read("private/bob/x"));
    }

    #[test]
    fn read_and_write_are_separate() {
        let text = "topic read in/#\ntopic write out/#";
        let c = client(text, ANONYMOUS);
        assert!(c.may_read("in/a") && !c.may_write("in/a"));
        assert!(c.may_write("out/a") && !c.may_read("out/a"));
    }

    #[test]
    fn wildcard_entries_match_as_subscriptions_do() {
        let c = client("topic read sensors/#\ntopic write cmd/+/set", ANONYMOUS);
        assert!(c.may_read("sensors/a/b") && c.may_read("sensors"));
        assert!(!c.may_read("sensorsX"));
        assert!(c.may_write("cmd/lamp/set") && !c.may_write("cmd/lamp/x/set"));
    }

    #[test]
    fn nothing_matches_means_nothing_is_allowed() {
        let c = client("", ANONYMOUS);
        assert!(!c.may_read("a") && !c.may_write("a"));
        assert_eq!(c.subscription("#"), SubscriptionAccess::Refused);
    }

    #[test]
    fn hash_does_not_grant_sys_topics_mqtt_4_7_2_1() {
        let c = client("topic readwrite #", ANONYMOUS);
        assert!(!c.may_read("$SYS/broker/uptime"));
        assert!(c.may_read("a/$SYS"));
        let sys = client("topic read $SYS/#", ANONYMOUS);
        assert!(sys.may_read("$SYS/broker/uptime"));
    }

    #[test]
    fn no_client_may_write_to_sys_topics() {
        let c = client(
            "topic readwrite $SYS/#\ntopic readwrite $other/#",
            ANONYMOUS,
        );
        assert!(!c.may_write("$SYS/broker/uptime") && !c.may_write("$SYS"));
        assert!(c.may_write("$other/x"));
    }

    // --- the subscription check --------------------------------------------------------

    #[test]
    fn a_filter_a_deny_covers_is_refused() {
        let c = client("topic read #\ntopic deny secret/#", ANONYMOUS);
        assert_eq!(c.subscription("secret/+/x"), SubscriptionAccess::Refused);
        assert_eq!(c.subscription("secret"), SubscriptionAccess::Refused);
    }

    #[test]
    fn a_filter_no_read_entry_reaches_is_refused() {
        let c = client("topic read a/#\ntopic write b/#", ANONYMOUS);
        assert_eq!(c.subscription("b/#"), SubscriptionAccess::Refused);
        assert_eq!(c.subscription("c"), SubscriptionAccess::Refused);
        let sys = client("topic read $SYS/#", ANONYMOUS);
        assert_eq!(sys.subscription("#"), SubscriptionAccess::Refused);
    }

    #[test]
    fn a_filter_a_read_entry_covers_is_granted_whole() {
        let c = client("topic read sensors/#", ANONYMOUS);
        assert_eq!(
            c.subscription("sensors/+/temp"),
            SubscriptionAccess::Granted
        );
        assert_eq!(c.subscription("sensors/a"), SubscriptionAccess::Granted);
    }

    #[test]
    fn a_partly_readable_filter_is_granted_and_filtered() {
        let c = client("topic read sensors/public/#", ANONYMOUS);
        assert_eq!(
            c.subscription("sensors/#"),
            SubscriptionAccess::GrantedFiltered
        );
        assert!(c.may_read("sensors/public/a") && !c.may_read("sensors/private/a"));
        let d = client("topic read sensors/#\ntopic deny sensors/secret", ANONYMOUS);
        assert_eq!(
            d.subscription("sensors/+"),
            SubscriptionAccess::GrantedFiltered
        );
    }

    #[test]
    fn deny_entries_that_cover_only_together_leave_the_filter_to_may_read() {
        let text = "topic read a/#\ntopic deny a\ntopic deny a/+/#";
        let c = client(text, ANONYMOUS);
        assert_eq!(c.subscription("a/#"), SubscriptionAccess::GrantedFiltered);
        assert!(!c.may_read("a") && !c.may_read("a/b"));
    }

    // --- errors ------------------------------------------------------------------------

    #[test]
    fn an_unknown_keyword_is_named_with_its_line() {
        let (line, problem) = problem("topic read a\n\nsubscribe a/b");
        assert_eq!(line, 3);
        assert_eq!(problem, LineProblem::UnknownKeyword("subscribe".into()));
    }

    #[test]
    fn an_unknown_access_word_is_refused() {
        let (line, problem) = problem("user alice\ntopic reed a/b");
        assert_eq!(
            (line, problem),
            (2, LineProblem::UnknownAccess("reed".into()))
        );
    }

    #[test]
    fn topic_pattern_and_user_need_a_value() {
        assert_eq!(
            problem("topic"),
            (1, LineProblem::MissingTopic("topic".into()))
        );
        assert_eq!(
            problem("pattern   "),
            (1, LineProblem::MissingTopic("pattern".into()))
        );
        assert_eq!(problem("user"), (1, LineProblem::MissingUsername));
    }

    #[test]
    fn an_invalid_filter_is_refused_with_its_rule_mqtt_4_7_1_2() {
        let (line, problem) = problem("# header\ntopic read a/#/b");
        let error = TopicError::MisplacedMultiLevel;
        let filter = "a/#/b".to_owned();
        assert_eq!(
            (line, problem),
            (2, LineProblem::InvalidFilter { filter, error })
        );
    }

    #[test]
    fn error_messages_read_file_line_what_was_expected() {
        let error = Acl::parse("topic reed a", "/etc/mqttd/acl").unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/mqttd/acl:1: unknown access `reed`: \
             expected read, write, readwrite or deny, then the topic"
        );
        let error = Acl::parse("\ntopic read a+", "acl").unwrap_err();
        assert_eq!(
            error.to_string(),
            "acl:2: `a+` is not a valid topic filter: '+' must fill a whole level [MQTT-4.7.1-3]"
        );
    }

    #[test]
    fn load_reads_a_file_and_names_a_missing_one() {
        let path = std::env::temp_dir().join(format!("mqttd-acl-test-{}", std::process::id()));
        fs::write(&path, "topic read a\n").expect("a writable temp dir");
        let loaded = Acl::load(&path);
        fs::remove_file(&path).ok();
        assert!(loaded.expect("loads").for_client(&ANONYMOUS).may_read("a"));
        let missing = Acl::load(Path::new("/nonexistent/acl")).unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("/nonexistent/acl: cannot read the acl_file"));
    }

    #[test]
    fn a_write_verdict_is_remembered_for_the_same_rules_only() {
        let anonymous = Who {
            client_id: "c",
            username: None,
        };
        let open = Arc::new(client("topic write a/#\n", anonymous));
        let closed = Arc::new(client("topic read a/#\n", anonymous));
        let verdicts = WriteVerdicts::default();
        let topic: Arc<str> = Arc::from("a/b");
        assert!(verdicts.may_write(&open, &topic));
        assert!(verdicts.may_write(&open, &topic), "the remembered answer");
        assert!(
            !verdicts.may_write(&closed, &topic),
            "new rules are asked again"
        );
        assert!(!verdicts.may_write(&closed, &Arc::from("x")));
    }
}
