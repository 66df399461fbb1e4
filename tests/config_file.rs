//! `mqttd -c FILE`, run as the built binary: a Mosquitto configuration file's errors stop
//! it with the file, the line and what was wrong; a good file's listeners each accept
//! clients of one broker.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::*;

/// Writes `text` to a configuration file of this test's own, and returns its path.
fn conf_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mqttd-test-{}-{name}.conf", std::process::id()));
    std::fs::write(&path, text).expect("write the test's configuration file");
    path
}

/// Runs `mqttd -c FILE` to its end and returns its exit code and what it printed on stderr.
fn run_to_end(path: &PathBuf) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("-c")
        .arg(path)
        .output()
        .expect("run mqttd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_option_stops_the_broker_naming_file_and_line() {
    let path = conf_file("unknown", "# ours\nlistener 0 127.0.0.1\nxyz 1\n");
    let (code, stderr) = run_to_end(&path);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("{}:3: unknown option 'xyz'", path.display())),
        "{stderr}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_feature_not_built_yet_is_refused_by_name() {
    let path = conf_file("crl", "listener 0 127.0.0.1\ncrlfile revoked.pem\n");
    let (code, stderr) = run_to_end(&path);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(":2: 'crlfile' is not supported yet"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(path);
}

/// A broker process that is killed when dropped, whatever the test's outcome.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mqttd -c FILE` and waits for `count` "listening on" lines; returns the process,
/// the addresses it printed and the lines it logs from then on.
fn start_with_file(
    path: &PathBuf,
    count: usize,
) -> (Broker, Vec<SocketAddr>, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("-c")
        .arg(path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mqttd");
    let stderr = child.stderr.take().expect("piped stderr");
    let broker = Broker(child);
    let (lines, received) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut addrs = Vec::new();
    while addrs.len() < count {
        let line = received
            .recv_timeout(PATIENCE)
            .expect("mqttd logs its listeners");
        // "mqttd listening on ADDRESS", then "(wss)" or the like for other transports.
        if let Some((_, rest)) = line.split_once("mqttd listening on ") {
            let addr = rest.split_whitespace().next().expect("an address");
            addrs.push(addr.parse().expect("an address"));
        }
    }
    (broker, addrs, received)
}

#[test]
fn each_listener_of_the_file_serves_the_same_broker() {
    let path = conf_file(
        "listeners",
        "listener 0 127.0.0.1\nlistener 0 127.0.0.1\nallow_anonymous true\nlog_dest stdout\n",
    );
    let (_broker, addrs, _log) = start_with_file(&path, 2);
    let mut sub = Raw::subscribed(addrs[0], "on-first", &["across"]);
    let mut publisher = Raw::connected(addrs[1], "on-second");
    publisher.send(&publish("across", b"hello", 0, false, 0));
    assert_eq!(sub.recv_publish().payload, b"hello");
    let _ = std::fs::remove_file(path);
}

/// The example beside the README is read without an error or a warning (that it also
/// works with `mosquitto -c` was checked by hand: see the chapter on running it for real).
#[test]
fn the_example_mqttd_conf_is_valid() {
    let loaded = mqttd::config::load_file("mqttd.conf".as_ref()).expect("mqttd.conf is valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.listeners,
        [mqttd::config::Listener {
            max_connections: Some(1000),
            ..mqttd::config::Listener::new("127.0.0.1:1883".parse().unwrap())
        }]
    );
}

/// SIGHUP re-reads the password and ACL files, and the broker goes on serving.
#[cfg(all(unix, feature = "signals"))]
#[test]
fn sighup_reloads_the_security_files() {
    let acl = std::env::temp_dir().join(format!("mqttd-test-{}-hup.acl", std::process::id()));
    std::fs::write(&acl, "topic readwrite #\n").unwrap();
    let path = conf_file(
        "hup",
        &format!(
            "listener 0 127.0.0.1\nallow_anonymous true\nacl_file {}\n",
            acl.display()
        ),
    );
    let (broker, addrs, log) = start_with_file(&path, 1);
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(broker.0.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    loop {
        let line = log.recv_timeout(PATIENCE).expect("mqttd logs the reload");
        if line.contains("password_file and acl_file reloaded") {
            break;
        }
    }
    assert_still_serving(addrs[0]);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(acl);
}

/// SIGTERM stops the broker cleanly: the connected client is closed, the process logs that
/// it stopped and exits with 0 (not killed by the signal).
#[cfg(all(unix, feature = "signals"))]
#[test]
fn sigterm_closes_every_connection_and_exits_0() {
    let path = conf_file("term", "listener 0 127.0.0.1\nallow_anonymous true\n");
    let (mut broker, addrs, log) = start_with_file(&path, 1);
    let mut client = Raw::connected(addrs[0], "stays");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(broker.0.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_eq!(
        client.closed(),
        [],
        "the connection is closed by the broker"
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    let exit = loop {
        if let Some(exit) = broker.0.try_wait().expect("wait for mqttd") {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "mqttd did not stop");
        thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));
    // The process has ended, its stderr is closed: this reads to the end, then stops.
    let logged: Vec<String> = log.iter().collect();
    assert!(
        logged.iter().any(|line| line.contains("mqttd stopped")),
        "{logged:?}"
    );
    let _ = std::fs::remove_file(path);
}

/// Built without the `tls` or `websockets` feature (`cargo test --no-default-features`),
/// mqttd refuses a listener that needs it, naming the feature, and starts nothing.
#[cfg(not(all(feature = "tls", feature = "websockets")))]
#[test]
fn a_listener_needing_a_feature_left_out_is_refused_naming_it() {
    let cases = [
        (
            cfg!(feature = "websockets"),
            "listener 0 127.0.0.1\nprotocol websockets\n",
            "websockets",
        ),
        (
            cfg!(feature = "tls"),
            "listener 0 127.0.0.1\ncertfile server.pem\nkeyfile server.key\n",
            "tls",
        ),
    ];
    for (built_in, text, feature) in cases {
        if built_in {
            continue;
        }
        let path = conf_file(&format!("needs-{feature}"), text);
        let (code, stderr) = run_to_end(&path);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("`{feature}` cargo feature")),
            "names the feature: {stderr}"
        );
        assert!(
            !stderr.contains("listening on"),
            "nothing started: {stderr}"
        );
    }
}

/// A TLS listener whose certificate file is missing stops mqttd, naming the file.
#[cfg(feature = "tls")]
#[test]
fn a_tls_listener_with_a_missing_certificate_stops_the_start() {
    let path = conf_file(
        "missing-cert",
        "listener 0 127.0.0.1\ncertfile /nonexistent/server.pem\nkeyfile /nonexistent/server.key\n",
    );
    let (code, stderr) = run_to_end(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/server.pem"), "{stderr}");
}
