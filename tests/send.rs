//! `mqttd send`, the raw-byte client of chapters 01 and 02, run as a program against an
//! in-process broker: what it sends, what it shows of the answers (the dissector's tables)
//! and how it reports the end of the connection.
//!
//! Every wait is bounded: the command's own `--timeout` bounds each of its waits, so the
//! child always exits. The tests never assert how long anything took, only what happened.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::start_broker;

/// Runs `mqttd send ARGS…` to completion: exit code, standard output, standard error.
fn mqttd_send(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("send")
        .args(args)
        .output()
        .expect("mqttd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn address(addr: SocketAddr) -> String {
    addr.to_string()
}

/// The final line `mqttd send` writes when the broker closed the connection.
const CLOSED: &str = "the broker closed the connection ";

#[test]
fn a_pingreq_after_connect_gets_a_pingresp_shown_decoded() {
    let broker = start_broker();
    let addr = address(broker.local_addr());
    let (code, out, err) =
        mqttd_send(&["--connect", "send-ping", &addr, "c0 00", "--timeout", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("connected to {addr} over plain TCP\n")));
    // The CONNECT the codec built: Clean Session 1, Keep Alive 60, the id.
    assert!(out.contains(
        "-> sent 23 byte(s) (CONNECT as \"send-ping\", Clean Session 1, Keep Alive 60): \
         10 15 00 04 4d 51 54 54 04 02 00 3c 00 09 73 65 6e 64 2d 70 69 6e 67\n"
    ));
    let connack = out.find("decoded: CONNACK session_present=0 code=0x00 (accepted)");
    let ping = out.find("-> sent 2 byte(s): c0 00\n");
    let pingresp = out.find("packet 1: PINGRESP, 2 byte(s) from offset 0");
    let decoded = out.find("decoded: PINGRESP\n");
    assert!(
        connack < ping && ping < pingresp && pingresp < decoded,
        "{out}"
    );
    assert!(connack.is_some(), "{out}");
    // The dissector's table, with its spec column.
    assert!(out.contains("§3.13.1 Figure 3.34"), "{out}");
    // A broker keeps a pinging client: the command gives up waiting and closes.
    assert!(out.ends_with("still open after 1 s; closing\n"), "{out}");
}

#[test]
fn a_malformed_packet_gets_the_close_reported() {
    let broker = start_broker();
    let addr = address(broker.local_addr());
    // Five Remaining Length bytes: malformed (§2.2.3); the broker closes, sending nothing.
    let (code, out, err) = mqttd_send(&[
        "--connect",
        "send-bad",
        &addr,
        "30 80 80 80 80 01",
        "--timeout",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    let after_send = &out[out
        .find("-> sent 6 byte(s): 30 80 80 80 80 01\n")
        .expect(&out)..];
    assert!(!after_send.contains("<- received"), "{out}");
    assert!(after_send.contains(CLOSED), "{out}");
    assert!(after_send.contains(" s after the last send"), "{out}");
}

#[test]
fn a_connect_of_level_5_shows_connack_0x01_and_the_close() {
    let broker = start_broker();
    let addr = address(broker.local_addr());
    // mosquitto_pub -V mqttv5 -i learner-v5: Protocol Level 5, with MQTT 5 properties.
    let v5 = "10 1a 00 04 4d 51 54 54 05 02 00 3c 03 21 00 14 00 0a 6c 65 61 72 6e 65 72 2d 76 35";
    let (code, out, err) = mqttd_send(&[&addr, v5, "--timeout", "5"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("     3  01              Connect Return Code         0x01 unacceptable protocol version"),
        "{out}"
    );
    let connack =
        out.find("decoded: CONNACK session_present=0 code=0x01 (unacceptable protocol version)");
    let closed = out.find(CLOSED);
    assert!(connack.is_some() && connack < closed, "{out}");
}

#[test]
fn several_arguments_are_several_sends_and_a_close_stops_the_rest() {
    let broker = start_broker();
    let addr = address(broker.local_addr());
    // Two PINGREQs, each answered while the command waits between its sends.
    let (code, out, err) = mqttd_send(&[
        "--connect",
        "send-two",
        &addr,
        "c000",
        "c000",
        "--wait",
        "200",
        "--timeout",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("-> sent 2 byte(s): c0 00\n").count(),
        2,
        "{out}"
    );
    assert_eq!(out.matches("decoded: PINGRESP\n").count(), 2, "{out}");
    // A PINGREQ with a body byte is malformed: the broker closes, and the PINGREQ after it
    // is not sent. The wait between the two ends when the connection does, at most 5 s.
    let (code, out, err) = mqttd_send(&[
        "--connect",
        "send-cut",
        &addr,
        "c0 01 00",
        "c0 00",
        "--wait",
        "5000",
        "--timeout",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("-> sent 2 byte(s): c0 00"), "{out}");
    assert!(out.contains(CLOSED), "{out}");
    assert!(
        out.ends_with("(1 argument(s) not sent: the connection was closed)\n"),
        "{out}"
    );
}

#[test]
fn help_says_plain_tcp_and_mqttd_h_lists_the_command() {
    let (code, help, _) = mqttd_send(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("plain TCP only"), "{help}");
    assert!(help.contains("--connect ID"), "{help}");
    let top = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("-h")
        .output()
        .expect("mqttd runs");
    let top = String::from_utf8(top.stdout).unwrap();
    assert!(
        top.contains("mqttd send [--connect ID] HOST:PORT HEX..."),
        "{top}"
    );
}

#[test]
fn bad_usage_exits_2_and_no_broker_exits_1() {
    let (code, _, err) = mqttd_send(&["127.0.0.1:1", "0g"]);
    assert_eq!(code, 2);
    assert!(err.contains("'g' is not a hex digit"), "{err}");
    let (code, _, err) = mqttd_send(&["127.0.0.1:1", "--wait", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("--wait: \"x\" is not a whole number"), "{err}");
    // A port nobody listens on: the connection is refused at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = address(free.local_addr().unwrap());
    drop(free);
    let (code, out, err) = mqttd_send(&[&addr, "c000", "--timeout", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.starts_with(&format!("mqttd send: {addr}: ")), "{err}");
}

#[test]
fn sending_nothing_waits_for_the_brokers_connect_deadline() {
    let broker = common::start_broker_with(mqttd::Config {
        connect_timeout: std::time::Duration::from_secs(1),
        sys_interval: std::time::Duration::ZERO,
        ..mqttd::Config::default()
    });
    let addr = address(broker.local_addr());
    let (code, out, err) = mqttd_send(&[&addr, "--timeout", "5"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("-> sent"), "{out}");
    assert!(out.contains(CLOSED), "{out}");
    assert!(out.ends_with(" s after the TCP connect\n"), "{out}");
}

#[test]
fn a_refused_connect_connack_is_shown_and_what_follows_meets_a_closed_connection() {
    let broker = common::start_broker_with(mqttd::Config {
        allow_anonymous: false,
        sys_interval: std::time::Duration::ZERO,
        ..mqttd::Config::default()
    });
    let addr = address(broker.local_addr());
    let (code, out, err) = mqttd_send(&["--connect", "send-anon", &addr, "c000", "--timeout", "5"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("decoded: CONNACK session_present=0 code=0x05 (not authorized)"),
        "{out}"
    );
    // The PINGREQ either still finds the socket open on our side (and the close follows),
    // or the write fails on the closed connection: both are reported, never an answer.
    assert!(!out.contains("PINGRESP"), "{out}");
    assert!(
        out.contains(CLOSED) || out.contains("the broker had closed the connection already"),
        "{out}"
    );
}
