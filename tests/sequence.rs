//! `--sequence`: the diagram of a real exchange, drawn by the [`Recorder`] installed as this
//! process's logger in front of a broker running in-process (a process has one logger, so
//! these tests have a file, hence a process, of their own).
//!
//! The diagram is read from the debug log's wording (`src/sequence.rs` says why that
//! wording is the contract): if a per-packet line or a close line changes its words, these
//! tests fail.

mod common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use common::*;
use log::LevelFilter;
use mqttd::sequence::Recorder;

/// Where the recorder writes: a buffer the tests read.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The console of these tests: silent.
struct Silent;

impl log::Log for Silent {
    fn enabled(&self, _: &log::Metadata) -> bool {
        false
    }
    fn log(&self, _: &log::Record) {}
    fn flush(&self) {}
}

/// The diagram so far, the recorder installed on first use (the tests share it, each with
/// its own clients).
fn diagram() -> String {
    static OUT: OnceLock<Shared> = OnceLock::new();
    let out = OUT.get_or_init(|| {
        let out = Shared::default();
        Recorder::new(out.clone(), Box::new(Silent))
            .unwrap()
            .install(LevelFilter::Off)
            .unwrap();
        out
    });
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

/// The lines drawn on `client`'s lifeline, in order, written `-> TEXT` (client to broker),
/// `<- TEXT` (broker to client) or `note TEXT`, as in the log's own arrows.
fn lifeline(diagram: &str, client: &str) -> Vec<String> {
    let declared = format!(" as {client}");
    let Some(alias) = diagram
        .lines()
        .filter_map(|l| l.trim().strip_prefix("participant "))
        .find_map(|l| l.strip_suffix(declared.as_str()))
    else {
        return Vec::new();
    };
    let (from, to, note) = (
        format!("{alias}->>broker: "),
        format!("broker->>{alias}: "),
        format!("Note over {alias}: "),
    );
    let mut out = Vec::new();
    for line in diagram.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix(from.as_str()) {
            out.push(format!("-> {text}"));
        } else if let Some(text) = line.strip_prefix(to.as_str()) {
            out.push(format!("<- {text}"));
        } else if let Some(text) = line.strip_prefix(note.as_str()) {
            out.push(format!("note {text}"));
        }
    }
    out
}

/// Waits until `client`'s lifeline has `count` lines (the close note comes from the
/// client's reader thread after the test's last packet) and returns it.
fn wait_for_lifeline(client: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines = lifeline(&diagram(), client);
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_qos2_exchange_is_drawn_arrow_by_arrow_as_the_log_names_it() {
    diagram();
    let broker = start_broker();
    let addr = broker.local_addr();
    let mut sub = Raw::connected(addr, "seq-sub");
    sub.subscribe_to("seq/#", 2);
    let mut publisher = Raw::connected(addr, "seq-pub");
    publisher.send(&publish("seq/t", b"exactly", 2, false, 5));
    assert_eq!(publisher.recv(), pubrec(5));
    publisher.send(&pubrel(5));
    assert_eq!(publisher.recv(), pubcomp(5));
    let id = sub.recv_publish().id.unwrap();
    sub.send(&pubrec(id));
    assert_eq!(sub.recv(), pubrel(id));
    sub.send(&pubcomp(id));
    publisher.send(&DISCONNECT);
    sub.send(&DISCONNECT);

    let connect = |id: &str| {
        format!("-> CONNECT client_id=\"{id}\" protocol=MQTT/4 clean_session=1 keep_alive=0")
    };
    let connack = "<- CONNACK session_present=0 code=0x00 (accepted)";
    let disconnect = ["-> DISCONNECT", "note disconnected: sent DISCONNECT"];
    let publish = "PUBLISH \"seq/t\" qos 2 id=5 retain=0 dup=0 (7 bytes)";
    let mut expected = vec![connect("seq-pub"), connack.into(), format!("-> {publish}")];
    expected.extend(["<- PUBREC id=5", "-> PUBREL id=5", "<- PUBCOMP id=5"].map(String::from));
    expected.extend(disconnect.map(String::from));
    assert_eq!(wait_for_lifeline("seq-pub", expected.len()), expected);

    // The outgoing leg: the broker's own Packet Identifier.
    let forwarded = format!("<- PUBLISH \"seq/t\" qos 2 id={id} retain=0 dup=0 (7 bytes)");
    let mut expected = vec![connect("seq-sub"), connack.into()];
    expected.push("-> SUBSCRIBE id=1 [\"seq/#35;\" qos 2]".into());
    expected.push("<- SUBACK id=1 [qos 2]".into());
    expected.push(forwarded.clone());
    expected.extend([
        format!("-> PUBREC id={id}"),
        format!("<- PUBREL id={id}"),
        format!("-> PUBCOMP id={id}"),
    ]);
    expected.extend(disconnect.map(String::from));
    assert_eq!(wait_for_lifeline("seq-sub", expected.len()), expected);

    // Across lifelines: the message comes in before it goes out.
    let text = diagram();
    let came_in = text.find(&format!("->>broker: {publish}")).unwrap();
    let went_out = text.find(&forwarded[3..]).unwrap();
    assert!(came_in < went_out, "{text}");
}

#[test]
fn a_resumed_session_a_will_and_a_broken_rule_are_notes() {
    diagram();
    let broker = start_broker();
    let addr = broker.local_addr();
    let (first, _) = Raw::session(addr, "seq-resumed", false);
    drop(first);
    // Wait for the first connection's end before coming back.
    wait_for_lifeline("seq-resumed", 3);
    let (mut again, present) = Raw::session(addr, "seq-resumed", false);
    assert!(present);
    again.send(&DISCONNECT);
    let lines = wait_for_lifeline("seq-resumed", 8);
    // Right under the CONNACK that says so (a takeover note may come before it, should
    // the first connection not be quite gone yet).
    let connack = lines
        .iter()
        .position(|l| l == "<- CONNACK session_present=1 code=0x00 (accepted)")
        .expect("the second CONNACK");
    assert!(
        lines[connack + 1].starts_with("note session resumed (session_present=1)"),
        "{lines:?}"
    );

    let mut willing = Raw::tcp(addr);
    willing.send(&connect_with_will(
        "seq-will", 0, "seq/will", b"gone", 0, false,
    ));
    assert_eq!(willing.recv(), CONNACK_ACCEPTED);
    // A SUBSCRIBE with no topic filter breaks a rule: closed, the note naming the rule (the
    // rule itself is tested in tests/violations.rs); then the Will goes.
    willing.send(&packet(0x82, &[0x00, 0x01]));
    willing.closed();
    let lines = wait_for_lifeline("seq-will", 4);
    assert!(lines[2].starts_with("note closed: "), "{lines:?}");
    assert!(
        lines[2].contains("[MQTT-"),
        "the note names the rule: {lines:?}"
    );
    assert_eq!(lines[3], "note publishing its Will to \"seq/will\"");
}
