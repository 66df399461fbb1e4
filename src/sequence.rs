//! Sequence diagrams of real runs: `mqttd --sequence FILE` writes a Mermaid
//! `sequenceDiagram` of every packet that passes through the broker, one participant per
//! client, one arrow per packet, with notes where a session is resumed, a Will is
//! published and a connection ends.
//!
//! ## Where the diagram comes from: the debug log
//!
//! The [`Recorder`] is a [`log::Log`] that sits in front of the console logger: it hands
//! every record on to the console unchanged, and reads the broker's own lines to draw the
//! diagram. It touches no other module of the crate, and no other module knows it exists:
//! the broker does not draw, it logs, and the diagram is one more reader of that log.
//!
//! Reading log lines looks fragile, and would be for any other program. Here the wording
//! of the debug log is a contract already: it is what the learner reads (README, "Read the
//! logs"; every chapter of `walkthrough/` quotes it), so the diagram shows *exactly* the
//! text of the log line, `PUBLISH "hoge/fuga" qos 2 id=1 retain=0 dup=0 (4 bytes)`, and
//! a learner can go from an arrow to the line and back. Should the wording change,
//! `tests/sequence.rs` runs a broker with the recorder installed and fails.
//!
//! The lines it reads (everything else is ignored):
//!
//! | log line                                                  | in the diagram |
//! |-----------------------------------------------------------|----------------|
//! | `client "ID" <- PACKET` (debug)                           | `c1->>broker: PACKET` (`c1` is ID's alias) |
//! | `client "ID" -> PACKET` (debug)                           | `broker->>c1: PACKET` |
//! | `client "ID" -> CONNACK session_present=1 …` (debug)       | the arrow, and a note: the session was resumed |
//! | `client "ID" connected from PEER (…)`                     | nothing: it names a client that sent an empty identifier |
//! | `client "ID" took over an existing connection`            | a note |
//! | `client "ID" disconnected: REASON`, `… closed: REASON`    | a note with the reason, naming the rule |
//! | `client "ID" refused with …`, `client "ID" (user …) … refused with …` | a note |
//! | `client "ID": …` (publishing its Will, a PUBLISH dropped…) | a note |
//!
//! Hex dumps (`trace`) are left out. Before its CONNECT is read a connection is named by
//! its address (`client "127.0.0.1:50274" <- CONNECT client_id="sensor-1" …`); the
//! diagram draws that CONNECT from `sensor-1`, and whatever else the log says of that
//! address until the client is connected (a refusal) goes to `sensor-1` too. A client that
//! sent an empty Client Identifier gets its name from the broker: its CONNECT is held
//! back until the `connected from` line says which name that is.
//!
//! ## Why append, line by line
//!
//! The file starts with its header (`sequenceDiagram` and the broker's participant) and
//! each line is written and flushed as it happens, with one `write_all` (so one `write`
//! system call on a file, short of a full disk). Mermaid needs no
//! closing line, and a participant is declared on the line before its first arrow, so the
//! file is a complete diagram whenever a learner opens it, even if the broker is killed
//! with SIGKILL. (Rewriting the whole file when the broker stops would lose it all then.)
//!
//! ## Mermaid's syntax
//!
//! Client Identifiers may contain anything. Each client gets a fixed alias (`c1`, `c2`…)
//! with its identifier as the label, and every text is escaped with Mermaid's entity codes:
//! `;` would end the statement, `#` starts an entity code, `<` and `>` are HTML, `%` starts
//! a comment (`%%`). The identifier is shown as the log shows it, with Rust's escapes
//! (`\n`, `\"`), so no line break can reach the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::Mutex;

/// The alias of the broker's participant (its label, in [`HEADER`], is `mqttd`).
const BROKER: &str = "broker";

/// The first lines of every diagram.
pub const HEADER: &str = "sequenceDiagram\n    participant broker as mqttd\n";

// ---------------------------------------------------------------------------------------
// Reading a log line.

/// What one log line of the broker says, for the diagram. The strings are slices of the
/// line; a client's name keeps Rust's escapes, as the log shows it.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `client "ID" <- PACKET`: a packet received from the client.
    Received { client: &'a str, packet: &'a str },
    /// `client "ID" -> PACKET`: a packet sent to the client.
    Sent { client: &'a str, packet: &'a str },
    /// `client "ID" connected from PEER (DETAILS)`.
    Connected {
        client: &'a str,
        peer: &'a str,
        details: &'a str,
    },
    /// The connection is over: closed, disconnected or refused. `text` is the log's words.
    Ended { client: &'a str, text: &'a str },
    /// Anything else the log says of one client that the diagram shows as a note: its
    /// Will, a takeover, a PUBLISH dropped.
    Note { client: &'a str, text: &'a str },
}

/// Reads one log message (without the timestamp, level and thread: what the code passed
/// to `log!`). `None` for lines the diagram does not show.
pub fn parse(message: &str) -> Option<Line<'_>> {
    let (client, rest) = quoted(message.strip_prefix("client \"")?)?;
    if let Some(text) = rest.strip_prefix(": ") {
        return Some(Line::Note { client, text });
    }
    let rest = rest.strip_prefix(' ')?;
    if let Some(packet) = rest.strip_prefix("<- ") {
        return Some(Line::Received { client, packet });
    }
    if let Some(packet) = rest.strip_prefix("-> ") {
        return Some(Line::Sent { client, packet });
    }
    if let Some(after) = rest.strip_prefix("connected from ") {
        let (peer, details) = after.split_once(" (")?;
        let details = details.strip_suffix(')')?;
        return Some(Line::Connected {
            client,
            peer,
            details,
        });
    }
    let ended = rest.starts_with("disconnected: ")
        || rest.starts_with("closed: ")
        || rest.contains("refused with ");
    if ended {
        return Some(Line::Ended { client, text: rest });
    }
    if rest == "took over an existing connection" {
        return Some(Line::Note { client, text: rest });
    }
    None
}

/// Splits `ID" rest` (a string as `{:?}` writes it, past its opening quote) at its closing
/// quote: the escaped text inside, and what follows the quote.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((&text[..at], &text[at + 1..])),
            _ => {}
        }
    }
    None
}

/// The Client Identifier a CONNECT names (`CONNECT client_id="sensor-1" …`), escaped as
/// the log writes it. `None` if `packet` is not a CONNECT.
fn connect_client_id(packet: &str) -> Option<&str> {
    let rest = packet.strip_prefix("CONNECT client_id=\"")?;
    quoted(rest).map(|(id, _)| id)
}

// ---------------------------------------------------------------------------------------
// Writing Mermaid.

/// Escapes `text` for a Mermaid sequence diagram (a message, a note, a label): the
/// characters that mean something to Mermaid become entity codes (`#59;` is `;`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Ends a statement.
            ';' => out.push_str("#59;"),
            // Starts an entity code.
            '#' => out.push_str("#35;"),
            // `%%` starts a comment.
            '%' => out.push_str("#37;"),
            // HTML: `<br>` would break the line, anything else is markup.
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            // Cannot come from the log (it escapes them), but a line break would end the
            // statement mid-text.
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Who a line of the diagram is about, and what it draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// An arrow from the client to the broker.
    FromClient,
    /// An arrow from the broker to the client.
    ToClient,
    /// A note over the client's lifeline.
    Note,
}

/// A line waiting for its participant's name (see [`Diagram::feed`]).
#[derive(Debug)]
struct Held {
    client: String,
    mark: Mark,
    text: String,
}

/// A diagram being written: it turns log messages into Mermaid lines, written to `out`
/// as they come.
#[derive(Debug)]
pub struct Diagram<W: Write> {
    out: W,
    /// Client name (as the log writes it) → its alias in the diagram (`c1`, `c2`…).
    participants: HashMap<String, String>,
    /// A connection's address → the Client Identifier its CONNECT named, until the
    /// connection is accepted or ends: what the log says of that address is drawn on
    /// that client's lifeline.
    addresses: HashMap<String, String>,
    /// A connection's address → its CONNECT, when that CONNECT had an empty Client
    /// Identifier: the broker's name for it comes with the `connected from` line.
    unnamed: HashMap<String, String>,
    /// Lines about clients not yet in the diagram while some CONNECT is `unnamed`: one of
    /// them may be that client (its CONNACK can be logged before its `connected` line).
    held: Vec<Held>,
}

impl<W: Write> Diagram<W> {
    /// Starts a diagram: writes its header to `out`.
    pub fn start(mut out: W) -> io::Result<Diagram<W>> {
        out.write_all(HEADER.as_bytes())?;
        out.flush()?;
        Ok(Diagram {
            out,
            participants: HashMap::new(),
            addresses: HashMap::new(),
            unnamed: HashMap::new(),
            held: Vec::new(),
        })
    }

    /// What has been written (for tests that write into a `Vec<u8>`).
    pub fn output(&self) -> &W {
        &self.out
    }

    /// Reads one log message and writes what it shows, if anything.
    pub fn feed(&mut self, message: &str) -> io::Result<()> {
        let Some(line) = parse(message) else {
            return Ok(());
        };
        match line {
            Line::Received { client, packet } => self.received(client, packet),
            Line::Sent { client, packet } => self.sent(client, packet),
            Line::Connected { client, peer, .. } => self.connected(client, peer),
            Line::Ended { client, text } => {
                let name = self.name_of(client);
                // Its address no longer stands for it, whichever name the line used (a
                // refused user is named by its Client Identifier, its CONNACK by address).
                self.addresses.retain(|_, id| *id != name);
                self.draw_unnamed_connect(client)?;
                self.draw(name, Mark::Note, text)
            }
            Line::Note { client, text } => {
                let client = self.name_of(client);
                self.draw(client, Mark::Note, text)
            }
        }
    }

    /// A packet from a client. A CONNECT comes from an address: it is drawn from the
    /// client it names, or held until the broker has named it.
    fn received(&mut self, client: &str, packet: &str) -> io::Result<()> {
        match connect_client_id(packet) {
            Some("") => {
                self.unnamed.insert(client.to_owned(), packet.to_owned());
                Ok(())
            }
            Some(id) => {
                self.addresses.insert(client.to_owned(), id.to_owned());
                self.draw(id.to_owned(), Mark::FromClient, packet)
            }
            None => {
                let client = self.name_of(client);
                self.draw(client, Mark::FromClient, packet)
            }
        }
    }

    /// A packet to a client. A CONNACK with Session Present 1 gets a note: the session
    /// was resumed. (The note hangs on the CONNACK rather than on the `connected` line,
    /// which the handshake thread logs while the writer thread may already be logging the
    /// CONNACK: the packet's line keeps the note in its place.)
    fn sent(&mut self, client: &str, packet: &str) -> io::Result<()> {
        let client = self.name_of(client);
        self.draw(client.clone(), Mark::ToClient, packet)?;
        if packet.starts_with("CONNACK session_present=1 ") {
            let note = "session resumed (session_present=1): its subscriptions and queued messages are back";
            self.draw(client, Mark::Note, note)?;
        }
        Ok(())
    }

    /// A client is connected: its address is no longer its name, and its CONNECT, if
    /// held, is drawn now.
    fn connected(&mut self, client: &str, peer: &str) -> io::Result<()> {
        self.addresses.remove(peer);
        if let Some(connect) = self.unnamed.remove(peer) {
            // Written at once, declaring the client: its held lines can follow.
            self.write(client, Mark::FromClient, &connect)?;
            self.release_held()?;
        }
        Ok(())
    }

    /// A connection that ends before its empty Client Identifier was replaced: its held
    /// CONNECT is drawn from its address.
    fn draw_unnamed_connect(&mut self, address: &str) -> io::Result<()> {
        if let Some(connect) = self.unnamed.remove(address) {
            self.write(address, Mark::FromClient, &connect)?;
            self.release_held()?;
        }
        Ok(())
    }

    /// The name a line is drawn under: the client a connection's address stands for, if
    /// its CONNECT named one.
    fn name_of(&self, client: &str) -> String {
        match self.addresses.get(client) {
            Some(id) => id.clone(),
            None => client.to_owned(),
        }
    }

    /// Draws one line about `client`, declaring it first if it is new, or holds the line
    /// while a CONNECT waits for the broker's name (see [`Diagram::held`]).
    fn draw(&mut self, client: String, mark: Mark, text: &str) -> io::Result<()> {
        if !self.participants.contains_key(&client) && !self.unnamed.is_empty() {
            let text = text.to_owned();
            self.held.push(Held { client, mark, text });
            return Ok(());
        }
        self.write(&client, mark, text)
    }

    /// Draws the held lines of the clients now known, in their order; all of them once
    /// no CONNECT waits for a name.
    fn release_held(&mut self) -> io::Result<()> {
        let (ready, waiting): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| self.unnamed.is_empty() || self.participants.contains_key(&h.client));
        self.held = waiting;
        for Held { client, mark, text } in ready {
            self.write(&client, mark, &text)?;
        }
        Ok(())
    }

    /// Writes one Mermaid line (after the participant's declaration, if it is new), each
    /// in one call, flushed.
    fn write(&mut self, client: &str, mark: Mark, text: &str) -> io::Result<()> {
        let mut lines = String::new();
        let alias = match self.participants.get(client) {
            Some(alias) => alias.clone(),
            None => {
                let alias = format!("c{}", self.participants.len() + 1);
                lines += &format!("    participant {alias} as {}\n", escape(client));
                self.participants.insert(client.to_owned(), alias.clone());
                alias
            }
        };
        let text = escape(text);
        lines += &match mark {
            Mark::FromClient => format!("    {alias}->>{BROKER}: {text}\n"),
            Mark::ToClient => format!("    {BROKER}->>{alias}: {text}\n"),
            Mark::Note => format!("    Note over {alias}: {text}\n"),
        };
        self.out.write_all(lines.as_bytes())?;
        self.out.flush()
    }
}

// ---------------------------------------------------------------------------------------
// The logger.

/// A [`Log`] that passes every record to the console logger and draws the broker's
/// lines into a [`Diagram`]. It reads `debug` lines even when the console shows only
/// `info`: [`Recorder::install`] sets log's maximum level to `debug` at least, and the
/// console logger still filters what it prints by its own settings.
pub struct Recorder<W: Write + Send> {
    console: Box<dyn Log>,
    /// Written by whichever thread logs; the lock is held for one line's write, and
    /// nothing logs while holding it.
    diagram: Mutex<Drawing<W>>,
}

/// The diagram, or why it stopped.
enum Drawing<W: Write> {
    Open(Diagram<W>),
    /// Writing failed; the broker goes on without the diagram (said once, on stderr).
    Failed,
}

impl Recorder<File> {
    /// Creates (or empties) the file at `path` and writes the diagram's header.
    pub fn create(path: &Path, console: Box<dyn Log>) -> io::Result<Recorder<File>> {
        Recorder::new(File::create(path)?, console)
    }
}

impl<W: Write + Send> Recorder<W> {
    /// A recorder that writes the diagram to `out` and passes every record to `console`.
    pub fn new(out: W, console: Box<dyn Log>) -> io::Result<Recorder<W>> {
        Ok(Recorder {
            console,
            diagram: Mutex::new(Drawing::Open(Diagram::start(out)?)),
        })
    }
}

impl<W: Write + Send + 'static> Recorder<W> {
    /// Makes this the process's logger. `console_level` is the most the console logger
    /// prints; log lets through at least `debug`, for the diagram.
    pub fn install(self, console_level: LevelFilter) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(console_level.max(LevelFilter::Debug));
        Ok(())
    }
}

/// Whether the diagram reads this record: the broker's own lines (the `mqttd` crate),
/// hex dumps (`trace`) left out.
fn drawn(metadata: &Metadata) -> bool {
    let target = metadata.target();
    let ours = target == "mqttd" || target.starts_with("mqttd::");
    ours && metadata.level() <= Level::Debug
}

impl<W: Write + Send> Log for Recorder<W> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        drawn(metadata) || self.console.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if self.console.enabled(record.metadata()) {
            self.console.log(record);
        }
        if !drawn(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let mut drawing = self.diagram.lock();
        if let Drawing::Open(diagram) = &mut *drawing {
            if let Err(e) = diagram.feed(&message) {
                // Not a log line: this is the logger.
                eprintln!("mqttd: --sequence: cannot write the diagram ({e}); it stops here");
                *drawing = Drawing::Failed;
            }
        }
    }

    fn flush(&self) {
        self.console.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagram(messages: &[&str]) -> String {
        let mut diagram = Diagram::start(Vec::new()).unwrap();
        for message in messages {
            diagram.feed(message).unwrap();
        }
        String::from_utf8(diagram.output().clone()).unwrap()
    }

    #[test]
    fn parses_the_per_packet_lines() {
        assert_eq!(
            parse(r#"client "sub" <- SUBSCRIBE id=1 ["hoge/#" qos 2]"#),
            Some(Line::Received {
                client: "sub",
                packet: r#"SUBSCRIBE id=1 ["hoge/#" qos 2]"#
            })
        );
        assert_eq!(
            parse(r#"client "a \"b\" c" -> PUBREL id=1"#),
            Some(Line::Sent {
                client: r#"a \"b\" c"#,
                packet: "PUBREL id=1"
            })
        );
    }

    #[test]
    fn parses_the_info_lines() {
        assert_eq!(
            parse(
                r#"client "s" connected from 127.0.0.1:5 (MQTT/4, clean_session=0, keep_alive=60, session_present=1)"#
            ),
            Some(Line::Connected {
                client: "s",
                peer: "127.0.0.1:5",
                details: "MQTT/4, clean_session=0, keep_alive=60, session_present=1"
            })
        );
        assert_eq!(
            parse(r#"client "s" disconnected: sent DISCONNECT"#),
            Some(Line::Ended {
                client: "s",
                text: "disconnected: sent DISCONNECT"
            })
        );
        assert_eq!(
            parse(r#"client "s": publishing its Will to "w/t""#),
            Some(Line::Note {
                client: "s",
                text: r#"publishing its Will to "w/t""#
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(parse("mqttd stopped"), None);
        assert_eq!(parse("listening on 127.0.0.1:1883"), None);
        assert_eq!(parse(r#"client "unterminated"#), None);
        assert_eq!(parse(r#"client "s" did something else"#), None);
    }

    #[test]
    fn escapes_what_mermaid_reads() {
        assert_eq!(escape("a;b#c%d<br>&"), "a#59;b#35;c#37;d#lt;br#gt;#amp;");
        assert_eq!(
            escape(r#"PUBLISH "hoge/fuga" qos 2"#),
            r#"PUBLISH "hoge/fuga" qos 2"#
        );
    }

    #[test]
    fn draws_arrows_and_a_closing_note() {
        let text = diagram(&[
            r#"client "127.0.0.1:5" <- CONNECT client_id="sub" protocol=MQTT/4 clean_session=1 keep_alive=60"#,
            r#"client "sub" connected from 127.0.0.1:5 (MQTT/4, clean_session=1, keep_alive=60, session_present=0)"#,
            r#"client "sub" -> CONNACK session_present=0 code=0x00 (accepted)"#,
            r#"client "sub" <- DISCONNECT"#,
            r#"client "sub" disconnected: sent DISCONNECT"#,
        ]);
        assert_eq!(
            text,
            "sequenceDiagram
    participant broker as mqttd
    participant c1 as sub
    c1->>broker: CONNECT client_id=\"sub\" protocol=MQTT/4 clean_session=1 keep_alive=60
    broker->>c1: CONNACK session_present=0 code=0x00 (accepted)
    c1->>broker: DISCONNECT
    Note over c1: disconnected: sent DISCONNECT
"
        );
    }

    #[test]
    fn notes_a_resumed_session_and_a_will() {
        let text = diagram(&[
            r#"client "s" connected from 127.0.0.1:5 (MQTT/4, clean_session=0, keep_alive=60, session_present=1)"#,
            r#"client "s" -> CONNACK session_present=1 code=0x00 (accepted)"#,
            r#"client "s" closed: protocol violation §3.1.4: no CONNECT within 10s"#,
            r#"client "s": publishing its Will to "w/t""#,
        ]);
        assert!(text.contains(
            "    broker->>c1: CONNACK session_present=1 code=0x00 (accepted)\n    Note over c1: session resumed (session_present=1)"
        ));
        assert!(text
            .contains("Note over c1: closed: protocol violation §3.1.4: no CONNECT within 10s\n"));
        assert!(text.contains("Note over c1: publishing its Will to \"w/t\"\n"));
    }

    #[test]
    fn a_refused_connect_stays_on_the_named_client() {
        let text = diagram(&[
            r#"client "127.0.0.1:5" <- CONNECT client_id="x" protocol=MQTT/4 clean_session=1 keep_alive=60 username="u" password=****"#,
            r#"client "127.0.0.1:5" -> CONNACK session_present=0 code=0x05 (not authorized)"#,
            r#"client "x" (user "u") from 127.0.0.1:5 refused with 0x05 (not authorized): no such user"#,
        ]);
        assert!(!text.contains("participant c2"), "one lifeline: {text}");
        assert!(text.contains("broker->>c1: CONNACK session_present=0 code=0x05"));
        assert!(text.contains("Note over c1: (user \"u\") from 127.0.0.1:5"));
        // The address is free again: what is logged of it next is not `x`'s.
        let text = diagram(&[
            r#"client "127.0.0.1:5" <- CONNECT client_id="x" protocol=MQTT/4 clean_session=1 keep_alive=60 username="u" password=****"#,
            r#"client "x" (user "u") from 127.0.0.1:5 refused with 0x05 (not authorized): no such user"#,
            r#"client "127.0.0.1:5" closed: malformed packet"#,
        ]);
        assert!(text.contains("participant c2 as 127.0.0.1:5\n"), "{text}");
    }

    #[test]
    fn an_empty_client_id_waits_for_the_brokers_name() {
        let text = diagram(&[
            r#"client "127.0.0.1:5" <- CONNECT client_id="" protocol=MQTT/4 clean_session=1 keep_alive=60"#,
            r#"client "auto-1" -> CONNACK session_present=0 code=0x00 (accepted)"#,
            r#"client "auto-1" connected from 127.0.0.1:5 (MQTT/4, clean_session=1, keep_alive=60, session_present=0)"#,
            r#"client "auto-1" <- DISCONNECT"#,
        ]);
        let arrows: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            arrows,
            [
                "    participant c1 as auto-1",
                "    c1->>broker: CONNECT client_id=\"\" protocol=MQTT/4 clean_session=1 keep_alive=60",
                "    broker->>c1: CONNACK session_present=0 code=0x00 (accepted)",
                "    c1->>broker: DISCONNECT",
            ]
        );
    }

    #[test]
    fn client_ids_are_aliased_and_escaped() {
        let text = diagram(&[r#"client "end; #%<b>" <- PINGREQ"#]);
        assert!(text.contains("    participant c1 as end#59; #35;#37;#lt;b#gt;\n"));
        assert!(text.contains("    c1->>broker: PINGREQ\n"));
    }

    #[test]
    fn the_recorder_reads_debug_lines_of_mqttd_only() {
        let quiet = Metadata::builder()
            .level(Level::Debug)
            .target("mqttd::x")
            .build();
        let dumps = Metadata::builder()
            .level(Level::Trace)
            .target("mqttd::x")
            .build();
        let other = Metadata::builder()
            .level(Level::Debug)
            .target("rustls")
            .build();
        assert!(drawn(&quiet));
        assert!(!drawn(&dumps));
        assert!(!drawn(&other));
    }
}
