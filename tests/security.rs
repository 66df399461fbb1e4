//! Users and access rules, as Mosquitto 2.0 applies them: `allow_anonymous`,
//! `password_file` (files made by the real `mosquitto_passwd`, in tests/data/) and
//! `acl_file`, checked over TCP with raw packets.

mod common;

use std::path::PathBuf;

use common::*;
use mqttd::Config;

/// CONNACK 0x05, "not authorized".
const CONNACK_NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

/// A 3.1.1 CONNECT with Clean Session 1, a user name and, if given, a password.
fn connect_as(client_id: &str, username: &str, password: Option<&str>) -> Vec<u8> {
    let flags = 0x02 | 0x80 | if password.is_some() { 0x40 } else { 0 };
    let mut body = string(b"MQTT");
    body.push(4);
    body.push(flags);
    body.extend(0u16.to_be_bytes());
    body.extend(string(client_id.as_bytes()));
    body.extend(string(username.as_bytes()));
    if let Some(password) = password {
        body.extend(string(password.as_bytes()));
    }
    packet(0x10, &body)
}

/// Connects as `username` and checks the CONNACK accepts.
fn connected_as(addr: std::net::SocketAddr, client_id: &str, username: &str) -> Raw {
    let mut raw = Raw::tcp(addr);
    raw.send(&connect_as(client_id, username, Some("")));
    assert_eq!(raw.recv(), CONNACK_ACCEPTED, "{client_id} as {username}");
    raw
}

/// Writes an acl_file of this test's own.
fn acl_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mqttd-acl-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write the acl_file");
    path
}

#[test]
fn without_a_password_file_allow_anonymous_false_refuses_everyone_with_0x05() {
    let broker = start_broker_with(Config {
        allow_anonymous: false,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut anonymous = Raw::tcp(addr);
    anonymous.send(&connect("nobody", 0));
    assert_eq!(anonymous.closed(), CONNACK_NOT_AUTHORIZED);
    let mut named = Raw::tcp(addr);
    named.send(&connect_as("named", "alice", Some("wonderland")));
    assert_eq!(named.closed(), CONNACK_NOT_AUTHORIZED);
}

#[cfg(feature = "auth")]
#[test]
fn a_password_file_made_by_mosquitto_passwd_decides_who_connects() {
    let broker = start_broker_with(Config {
        allow_anonymous: false,
        password_file: Some("tests/data/pbkdf2.txt".into()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut alice = Raw::tcp(addr);
    alice.send(&connect_as("a", "alice", Some("wonderland")));
    assert_eq!(alice.recv(), CONNACK_ACCEPTED);
    for (user, password) in [
        ("alice", Some("rabbit hole")),
        ("mallory", Some("wonderland")),
        ("bob", None),
    ] {
        let mut raw = Raw::tcp(addr);
        raw.send(&connect_as("x", user, password));
        assert_eq!(raw.closed(), CONNACK_NOT_AUTHORIZED, "{user}");
    }
    let mut anonymous = Raw::tcp(addr);
    anonymous.send(&connect("anon", 0));
    assert_eq!(anonymous.closed(), CONNACK_NOT_AUTHORIZED);
    assert_still_serving_as(&mut alice);
}

/// The connection of `raw` still works: PINGREQ is answered.
fn assert_still_serving_as(raw: &mut Raw) {
    raw.send(&PINGREQ);
    assert_eq!(raw.recv(), PINGRESP);
}

#[cfg(feature = "auth")]
#[test]
fn with_a_password_file_anonymous_clients_follow_allow_anonymous() {
    let broker = start_broker_with(Config {
        allow_anonymous: true,
        password_file: Some("tests/data/sha512.txt".into()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut anonymous = Raw::tcp(addr);
    anonymous.send(&connect("anon", 0));
    assert_eq!(anonymous.recv(), CONNACK_ACCEPTED);
    let mut carol = Raw::tcp(addr);
    carol.send(&connect_as("c", "carol", Some("h@rd to guess")));
    assert_eq!(
        carol.recv(),
        CONNACK_ACCEPTED,
        "a $6$ line from Mosquitto 1.6"
    );
}

#[cfg(not(feature = "auth"))]
#[test]
fn without_the_auth_feature_a_password_file_stops_the_start_naming_the_feature() {
    let error = mqttd::Server::start(Config {
        password_file: Some("tests/data/pbkdf2.txt".into()),
        ..Config::listening_on("127.0.0.1:0".parse().unwrap())
    })
    .expect_err("refused");
    assert!(error.to_string().contains("`auth` feature"), "{error}");
}

#[test]
fn the_acl_file_decides_who_reads_and_writes_what() {
    let acl = acl_file(
        "rw",
        "topic read public/#\nuser alice\ntopic readwrite public/#\ntopic read private/alice/#\n\
         topic deny public/secret\npattern write private/%u/#\n",
    );
    let broker = start_broker_with(Config {
        acl_file: Some(acl.clone()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut alice = connected_as(addr, "alice-1", "alice");
    alice.send(&subscribe(
        1,
        &[("public/#", 0), ("private/alice/#", 0), ("other/#", 0)],
    ));
    // public/# is granted but filtered (public/secret is denied); other/# is readable by
    // nothing: refused at once with 0x80.
    assert_eq!(alice.recv(), [0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x80]);
    let mut anonymous = Raw::connected(addr, "anon");
    // Anonymous clients may only read public/#: their PUBLISH is acknowledged and dropped.
    anonymous.send(&publish("public/news", b"forged", 1, false, 4));
    assert_eq!(anonymous.recv(), puback(4));
    alice.send(&publish("public/secret", b"hidden", 0, false, 0));
    alice.send(&publish("private/alice/diary", b"mine", 0, false, 0));
    alice.send(&publish("public/news", b"real", 0, false, 0));
    assert_eq!(
        alice.recv_publish().payload,
        b"mine",
        "pattern %u lets alice write her own"
    );
    assert_eq!(
        alice.recv_publish().payload,
        b"real",
        "the denied and the forged never came"
    );
    let _ = std::fs::remove_file(acl);
}

#[test]
fn retained_messages_and_wills_obey_the_acl_file() {
    let acl = acl_file(
        "retain",
        "topic write status/#\nuser watcher\ntopic read #\nuser writer\ntopic readwrite #\n\
         user partial\ntopic read status/#\n",
    );
    let broker = start_broker_with(Config {
        acl_file: Some(acl.clone()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut writer = connected_as(addr, "writer", "writer");
    retain_both(&mut writer);
    // A subscription only partly readable gets only the readable retained message.
    let mut partial = connected_as(addr, "partial", "partial");
    partial.send(&subscribe(1, &[("#", 0)]));
    assert_eq!(partial.recv(), [0x90, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(partial.recv_publish().topic, "status/r");
    assert_still_serving_as(&mut partial);
    // An anonymous client may write status/# only: its Will elsewhere is not published.
    let mut watcher = connected_as(addr, "watcher", "watcher");
    watcher.send(&subscribe(1, &[("hidden/will", 0), ("status/last", 0)]));
    assert_eq!(watcher.recv()[0], 0x90);
    let mut mortal = Raw::tcp(addr);
    mortal.send(&connect_with_will(
        "mortal",
        0,
        "hidden/will",
        b"gone",
        0,
        false,
    ));
    assert_eq!(mortal.recv(), CONNACK_ACCEPTED);
    drop(mortal);
    // Connecting again with its id waits until the old connection's teardown, Will and
    // all, is over.
    let _again = Raw::connected(addr, "mortal");
    let mut last = Raw::tcp(addr);
    last.send(&connect_with_will(
        "last",
        0,
        "status/last",
        b"gone",
        0,
        false,
    ));
    assert_eq!(last.recv(), CONNACK_ACCEPTED);
    drop(last);
    assert_eq!(
        watcher.recv_publish().topic,
        "status/last",
        "the allowed Will only"
    );
    let _ = std::fs::remove_file(acl);
}

/// Retains a message on `hidden/r` and one on `status/r`.
fn retain_both(writer: &mut Raw) {
    for (id, topic) in [(3, "hidden/r"), (4, "status/r")] {
        let mut retained = publish(topic, b"kept", 1, false, id);
        retained[0] |= 0x01;
        writer.send(&retained);
        assert_eq!(writer.recv(), puback(id));
    }
}

/// A reload (what SIGHUP does) puts new rules in place without dropping anyone: an
/// existing subscription reads what the new rules allow, an existing client writes what
/// they allow. A file that does not parse keeps the old rules.
#[test]
fn a_reload_applies_new_rules_to_connected_clients_and_keeps_the_old_on_error() {
    let acl = acl_file("reload", "topic read news/public/#\ntopic write news/#\n");
    let broker = start_broker_with(Config {
        acl_file: Some(acl.clone()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut reader = Raw::connected(addr, "reader");
    reader.send(&subscribe(1, &[("news/#", 0)]));
    assert_eq!(
        reader.recv(),
        [0x90, 0x03, 0x00, 0x01, 0x00],
        "granted, filtered"
    );
    let mut writer = Raw::connected(addr, "writer");
    writer.send(&publish("news/private", b"hidden", 0, false, 0));
    writer.send(&publish("news/public/a", b"seen", 0, false, 0));
    assert_eq!(
        reader.recv_publish().payload,
        b"seen",
        "news/private was filtered"
    );
    std::fs::write(&acl, "topic read news/#\ntopic write news/#\n").unwrap();
    broker.reloader().reload().expect("the new file is valid");
    writer.send(&publish("news/private", b"now readable", 0, false, 0));
    assert_eq!(reader.recv_publish().payload, b"now readable");
    std::fs::write(&acl, "topic read news/#\n").unwrap();
    broker.reloader().reload().expect("valid too");
    writer.send(&publish("news/private", b"no longer written", 0, false, 0));
    writer.send(&PINGREQ);
    assert_eq!(writer.recv(), PINGRESP);
    std::fs::write(&acl, "topic sideways news/#\n").unwrap();
    let error = broker.reloader().reload().expect_err("a bad file");
    assert!(error.to_string().contains(":1:"), "{error}");
    let mut other = Raw::connected(addr, "other");
    other.send(&subscribe(1, &[("news/#", 0)]));
    assert_eq!(
        other.recv(),
        [0x90, 0x03, 0x00, 0x01, 0x00],
        "the read-only rules stayed"
    );
    reader.send(&PINGREQ);
    assert_eq!(
        reader.recv(),
        PINGRESP,
        "nothing was written after the second reload"
    );
    let _ = std::fs::remove_file(acl);
}

#[cfg(feature = "auth")]
#[test]
fn a_reload_reads_the_password_file_again() {
    let path = acl_file(
        "passwords",
        &std::fs::read_to_string("tests/data/sha512.txt").unwrap(),
    );
    let broker = start_broker_with(Config {
        allow_anonymous: false,
        password_file: Some(path.clone()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut carol = Raw::tcp(addr);
    carol.send(&connect_as("c1", "carol", Some("h@rd to guess")));
    assert_eq!(carol.recv(), CONNACK_ACCEPTED);
    std::fs::copy("tests/data/pbkdf2.txt", &path).unwrap();
    broker.reloader().reload().expect("valid");
    let mut again = Raw::tcp(addr);
    again.send(&connect_as("c2", "carol", Some("h@rd to guess")));
    assert_eq!(again.closed(), CONNACK_NOT_AUTHORIZED, "carol is gone");
    let mut alice = Raw::tcp(addr);
    alice.send(&connect_as("a", "alice", Some("wonderland")));
    assert_eq!(alice.recv(), CONNACK_ACCEPTED);
    assert_still_serving_as(&mut carol);
    let _ = std::fs::remove_file(path);
}

/// A Clean Session 0 session resumed under another user name is judged by the rules of the
/// user now connected: its subscriptions do not keep the first user's rights.
#[test]
fn a_session_resumed_by_another_user_reads_with_that_users_rights() {
    let acl = acl_file(
        "resume",
        "user bob\ntopic read #\nuser alice\ntopic read a/#\nuser writer\ntopic write #\n",
    );
    let broker = start_broker_with(Config {
        acl_file: Some(acl.clone()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut bob = Raw::tcp(addr);
    // Clean Session 0 (flags 0x80: user name only), the same Client Identifier twice.
    let as_user = |user: &str| {
        let mut body = string(b"MQTT");
        body.extend([4, 0x80, 0, 0]);
        body.extend(string(b"shared"));
        body.extend(string(user.as_bytes()));
        packet(0x10, &body)
    };
    bob.send(&as_user("bob"));
    assert_eq!(bob.recv(), CONNACK_ACCEPTED);
    bob.send(&subscribe(1, &[("#", 0)]));
    assert_eq!(bob.recv(), [0x90, 0x03, 0x00, 0x01, 0x00]);
    bob.send(&DISCONNECT);
    assert_eq!(bob.closed(), []);
    let mut alice = Raw::tcp(addr);
    alice.send(&as_user("alice"));
    assert_eq!(
        alice.recv(),
        [0x20, 0x02, 0x01, 0x00],
        "the session is resumed"
    );
    let mut writer = connected_as(addr, "w", "writer");
    writer.send(&publish("b/secret", b"bob's", 0, false, 0));
    writer.send(&publish("a/ok", b"alice's", 0, false, 0));
    assert_eq!(
        alice.recv_publish().topic,
        "a/ok",
        "b/secret is not alice's to read"
    );
    let _ = std::fs::remove_file(acl);
}

/// A PUBLISH the acl_file does not allow is acknowledged as its QoS says, PUBACK for QoS 1
/// and PUBREC then PUBCOMP for QoS 2, and goes to nobody, not even a subscriber that may
/// read everything.
#[test]
fn a_forbidden_publish_is_acknowledged_as_usual_and_not_distributed_mqtt_3_3_5_2() {
    let acl = acl_file("ack", "topic read #\ntopic readwrite open/#\n");
    let broker = start_broker_with(Config {
        acl_file: Some(acl.clone()),
        ..Config::default()
    });
    let addr = broker.local_addr();
    let mut reader = Raw::connected(addr, "reads-all");
    reader.subscribe_to("#", 2);
    let mut writer = Raw::connected(addr, "writes-open");
    writer.send(&publish("closed/a", b"q1", 1, false, 1));
    assert_eq!(writer.recv(), puback(1));
    writer.send(&publish("closed/b", b"q2", 2, false, 2));
    assert_eq!(writer.recv(), pubrec(2));
    writer.send(&pubrel(2));
    assert_eq!(writer.recv(), pubcomp(2));
    writer.send(&publish("closed/c", b"q0", 0, false, 0));
    writer.send(&publish("open/marker", b"end", 0, false, 0));
    assert_eq!(reader.recv(), publish("open/marker", b"end", 0, false, 0));
    let _ = std::fs::remove_file(acl);
}
