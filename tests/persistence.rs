//! Persistence (`persistence true`) of the built binary, across `kill -9`, a damaged
//! journal and a clean stop.
//!
//! Each test runs `mqttd -c FILE` as a child process on a persistence directory of its own
//! (under the system's temp dir, removed at the end), kills it with SIGKILL at a chosen
//! point, starts it again on the same directory and checks over TCP, with packets built by
//! hand, that what the broker acknowledged is still there: stored sessions, their queued
//! and in-flight messages with their Packet Identifiers, QoS 2 ids awaiting PUBREL, and
//! retained messages.
//!
//! The broker's promise (src/persistence/mod.rs) is that no SUBACK, PUBACK, PUBREC, PUBCOMP
//! or CONNACK leaves before the state it confirms is fsync'd; so every kill point here is
//! "right after the test received such an acknowledgement", never a sleep. Every wait is
//! bounded: sockets have read timeouts ([`PATIENCE`]), loops have deadlines and counts, and
//! a broker process dies with its test, panic or not ([`Broker`]'s `Drop`).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------------------
// A directory per test, and the broker as a child process.
// ---------------------------------------------------------------------------------------

/// A directory of this test's own under the system's temp dir; removed when dropped, which
/// happens after the brokers that use it are killed (it is declared before them).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("mqttd-persistence-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the test's directory");
        TempDir(path)
    }

    /// The persistence_location (created by the broker).
    fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    fn journal(&self) -> PathBuf {
        self.data().join("mqttd.journal")
    }

    /// Writes the configuration file for `persistence_location` = [`TempDir::data`].
    fn conf(&self) -> PathBuf {
        self.conf_for(&self.data())
    }

    /// Writes a configuration file with persistence in `location`: one listener on a port
    /// the OS picks (the broker logs it), no `$SYS` tree, and a queue long enough that no
    /// message of these tests is dropped for lack of room.
    fn conf_for(&self, location: &Path) -> PathBuf {
        let path = self.0.join("mqttd.conf");
        let text = format!(
            "listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 0\n\
             max_queued_messages 10000\npersistence true\npersistence_location {}\n",
            location.display()
        );
        fs::write(&path, text).expect("write the configuration file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Starts `mqttd -c conf`, its log (stderr, at level info) read line by line by a thread
/// of its own until the process ends: the channel then disconnects.
fn spawn(conf: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqttd"))
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mqttd");
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines, log) = mpsc::channel();
    thread::spawn(move || {
        // Read to the end even if nobody listens any more: a full pipe would block the
        // broker's logging.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (child, log)
}

/// A running broker, killed (SIGKILL) and reaped when dropped, whatever the test's outcome.
struct Broker {
    child: Child,
    addr: SocketAddr,
    /// What it logged up to "mqttd listening on": recovery's warnings are there.
    startup: Vec<String>,
    log: mpsc::Receiver<String>,
}

impl Broker {
    /// Starts the broker and waits for its "listening" line; fails with what it logged if
    /// it ends first.
    fn start(conf: &Path) -> Broker {
        let (child, log) = spawn(conf);
        let mut broker = Broker {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            startup: Vec::new(),
            log,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match broker.log.recv_timeout(left) {
                Ok(line) => {
                    let addr = line
                        .split_once("mqttd listening on ")
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .map(|addr| addr.parse().expect("a socket address"));
                    broker.startup.push(line);
                    if let Some(addr) = addr {
                        broker.addr = addr;
                        return broker;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "mqttd did not listen in time; it logged {:#?}",
                        broker.startup
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "mqttd ended ({:?}) before listening; it logged {:#?}",
                    broker.child.wait(),
                    broker.startup
                ),
            }
        }
    }

    /// `kill -9`, and waits until the process is gone (and with it the lock's flock).
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL mqttd");
        self.child.wait().expect("reap mqttd");
    }

    /// `kill -TERM` (a clean stop with the `signals` feature; without it SIGTERM kills),
    /// then waits for the process to end (its log closes first); returns its exit status
    /// and the lines it logged after starting.
    #[cfg(all(unix, feature = "signals"))]
    fn terminate(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let lines = read_to_end(&self.log, "mqttd to stop after SIGTERM");
        (self.child.wait().expect("reap mqttd"), lines)
    }

    /// Whether the broker logged, at start, a line containing `text`.
    fn logged_at_start(&self, text: &str) -> Option<&String> {
        self.startup.iter().find(|line| line.contains(text))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line of a log until the process ends (the channel disconnects), within
/// [`PATIENCE`].
fn read_to_end(log: &mpsc::Receiver<String>, what: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => return lines,
            Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}: {lines:#?}"),
        }
    }
}

/// Runs a broker that must not start: returns its exit code and its log.
fn expect_exit(conf: &Path) -> (Option<i32>, String) {
    let (child, log) = spawn(conf);
    let mut guard = Broker {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        startup: Vec::new(),
        log,
    };
    let lines = read_to_end(&guard.log, "mqttd to exit");
    let status = guard.child.wait().expect("reap mqttd");
    (status.code(), lines.join("\n"))
}

// ---------------------------------------------------------------------------------------
// Packets and clients.
// ---------------------------------------------------------------------------------------

/// A PUBLISH with RETAIN 1.
fn retained(topic: &str, payload: &[u8], qos: u8, id: u16) -> Vec<u8> {
    let mut packet = publish(topic, payload, qos, false, id);
    packet[0] |= 0x01;
    packet
}

/// Reads one whole packet, or the error that ended the connection (EOF, reset, timeout).
fn read_packet(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    let mut packet = vec![byte[0]];
    let mut len = 0usize;
    for shift in 0..4 {
        stream.read_exact(&mut byte)?;
        packet.push(byte[0]);
        len |= usize::from(byte[0] & 0x7F) << (7 * shift);
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let start = packet.len();
    packet.resize(start + len, 0);
    stream.read_exact(&mut packet[start..])?;
    Ok(packet)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The Packet Identifier of a PUBACK, PUBREC, PUBREL or PUBCOMP.
fn ack_id(packet: &[u8]) -> u16 {
    assert_eq!(packet.len(), 4, "an acknowledgement, got {packet:02x?}");
    u16::from_be_bytes([packet[2], packet[3]])
}

/// Connects a persistent (Clean Session 0) client that subscribes to `filter` at `qos`,
/// then disconnects and waits for the broker to close: its session is stored.
fn persistent_subscriber(addr: SocketAddr, client_id: &str, filter: &str, qos: u8) {
    let (mut sub, present) = Raw::session(addr, client_id, false);
    assert!(!present, "a new session is not present");
    sub.subscribe_to(filter, qos);
    sub.send(&DISCONNECT);
    sub.closed();
}

/// Publishes a QoS 1 message from a client of its own and waits for the PUBACK.
fn publish_acked(addr: SocketAddr, client_id: &str, topic: &str, payload: &[u8]) {
    let mut publisher = Raw::connected(addr, client_id);
    publisher.send(&publish(topic, payload, 1, false, 1));
    assert_eq!(publisher.recv(), puback(1), "PUBACK for {payload:?}");
    publisher.send(&DISCONNECT);
}

/// The last message of a drain: published after the subscriber reconnected, so everything
/// its session held before is ahead of it in the session's queue (first in, first out).
const SENTINEL: &[u8] = b"end";

/// The receiving side of a client's session, kept across its connections as a real client
/// keeps its session state. QoS 2 is received by Method B of §4.3.3: the message is
/// delivered on the first PUBLISH with an id, the id is kept until PUBREL, and a PUBLISH
/// with a kept id (a re-send, DUP=1) is acknowledged with PUBREC and not delivered again.
#[derive(Default)]
struct Inbox {
    /// Every message delivered to the application, in order.
    delivered: Vec<Received>,
    /// QoS 2 ids received and not yet released by PUBREL.
    awaiting_pubrel: HashSet<u16>,
}

/// One packet from the broker, as the inbox saw it.
enum Seen {
    Publish(Received),
    Pubrel(u16),
}

impl Inbox {
    /// Handles one packet from the broker: delivers a PUBLISH (unless it is a QoS 2 re-send
    /// of an id awaiting PUBREL) and, if `answer`, sends the acknowledgement it asks for.
    fn handle(&mut self, raw: &mut Raw, packet: &[u8], answer: bool) -> Seen {
        match packet[0] {
            byte if byte >> 4 == 3 => {
                let publish = parse_publish(packet);
                match (publish.qos, publish.id) {
                    (0, None) => self.delivered.push(publish.clone()),
                    (1, Some(id)) => {
                        self.delivered.push(publish.clone());
                        if answer {
                            raw.send(&puback(id));
                        }
                    }
                    (2, Some(id)) => {
                        if self.awaiting_pubrel.insert(id) {
                            self.delivered.push(publish.clone());
                        }
                        if answer {
                            raw.send(&pubrec(id));
                        }
                    }
                    _ => panic!("a malformed PUBLISH: {packet:02x?}"),
                }
                Seen::Publish(publish)
            }
            // PUBREL, with its reserved flags 0010 ([MQTT-3.6.1-1]).
            0x62 => {
                let id = ack_id(packet);
                self.awaiting_pubrel.remove(&id);
                if answer {
                    raw.send(&pubcomp(id));
                }
                Seen::Pubrel(id)
            }
            _ => panic!("unexpected packet from the broker: {packet:02x?}"),
        }
    }

    /// Receives and answers everything until the PUBLISH whose payload is `last`; returns
    /// what was seen, in order.
    fn drain_until(&mut self, raw: &mut Raw, last: &[u8]) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            assert!(Instant::now() < deadline, "the drain took too long");
            let packet = raw.recv();
            let packet = self.handle(raw, &packet, true);
            let done = matches!(&packet, Seen::Publish(p) if p.payload == last);
            seen.push(packet);
            if done {
                return seen;
            }
        }
        panic!("no {last:?} among 10 000 packets");
    }

    /// How many times each payload was delivered.
    fn counts(&self) -> BTreeMap<Vec<u8>, usize> {
        let mut counts = BTreeMap::new();
        for publish in &self.delivered {
            *counts.entry(publish.payload.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// Subscribes a fresh Clean Session 1 client to `filter` at QoS 1 and returns the retained
/// messages it gets, sorted by topic, as (topic, payload, QoS). The PINGRESP to a PINGREQ
/// sent after the SUBSCRIBE marks their end: the broker answers both in order, and sends
/// the retained messages of a subscription right after its SUBACK (the window has room
/// for the few of these tests).
fn retained_messages(
    addr: SocketAddr,
    client_id: &str,
    filter: &str,
) -> Vec<(String, Vec<u8>, u8)> {
    let mut sub = Raw::connected(addr, client_id);
    sub.subscribe_to(filter, 1);
    sub.send(&PINGREQ);
    let mut found = Vec::new();
    for _ in 0..100 {
        let packet = sub.recv();
        if packet == PINGRESP {
            sub.send(&DISCONNECT);
            found.sort();
            return found;
        }
        let message = parse_publish(&packet);
        assert!(message.retain, "[MQTT-3.3.1-8] RETAIN 1: {message:?}");
        if let Some(id) = message.id {
            sub.send(&puback(id));
        }
        found.push((message.topic, message.payload, message.qos));
    }
    panic!("no PINGRESP after 100 packets");
}

// ---------------------------------------------------------------------------------------
// 1 and 2: a stream of QoS 1 or 2 messages, the broker killed while it is acknowledging.
// ---------------------------------------------------------------------------------------

/// How many messages each stream publishes: below `max_queued_messages`, so the broker has
/// no reason to drop one.
const STREAM: usize = 400;
const STREAM_TOPIC: &str = "s/stream";

/// Where the streams kill the broker: right after this many acknowledgements reached the
/// publisher (PUBACK for QoS 1, PUBREC for QoS 2).
const KILL_POINTS: [usize; 3] = [1, 60, 250];

/// Publishes [`STREAM`] messages numbered from 0, as fast as the socket takes them, from a
/// thread of their own; reads the acknowledgements, and kills the broker right after the
/// `kill_after`-th. Returns every number acknowledged (counting the acknowledgements that
/// were already on their way when the broker died).
fn publish_until_killed(broker: &mut Broker, qos: u8, kill_after: usize) -> BTreeSet<usize> {
    let mut stream = TcpStream::connect(broker.addr).expect("connect the publisher");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(&connect("stream-pub", 0)).unwrap();
    assert_eq!(read_packet(&mut stream).unwrap(), CONNACK_ACCEPTED);
    // One thread writes, so that packets never interleave: the PUBLISHes, then each PUBREL
    // the reader asks for. It stops at the first failed write (the broker is gone).
    let (to_writer, outgoing) = mpsc::channel::<Vec<u8>>();
    for n in 0..STREAM {
        let id = n as u16 + 1;
        to_writer
            .send(publish(
                STREAM_TOPIC,
                n.to_string().as_bytes(),
                qos,
                false,
                id,
            ))
            .unwrap();
    }
    let mut writer = stream.try_clone().unwrap();
    let writing = thread::spawn(move || {
        for packet in outgoing {
            if writer.write_all(&packet).is_err() {
                return;
            }
        }
    });
    let expected_ack = if qos == 1 { 0x40 } else { 0x50 };
    let mut acked = BTreeSet::new();
    let mut killed = false;
    for _ in 0..3 * STREAM {
        let packet = match read_packet(&mut stream) {
            Ok(packet) => packet,
            Err(e) if is_timeout(&e) => panic!(
                "no acknowledgement within {PATIENCE:?}: {} received, killed: {killed}",
                acked.len()
            ),
            // EOF or reset: the broker has died.
            Err(e) => {
                assert!(
                    killed,
                    "the broker closed the publisher before the kill: {e}"
                );
                break;
            }
        };
        match packet[0] {
            byte if byte == expected_ack => {
                let id = ack_id(&packet);
                assert!(
                    acked.insert(usize::from(id) - 1),
                    "one acknowledgement per PUBLISH: id {id} twice"
                );
                if qos == 2 {
                    let _ = to_writer.send(pubrel(id).to_vec());
                }
            }
            0x70 if qos == 2 => {} // PUBCOMP
            _ => panic!("unexpected packet for the publisher: {packet:02x?}"),
        }
        if !killed && acked.len() == kill_after {
            broker.kill9();
            killed = true;
        }
    }
    assert!(killed, "the broker was not killed");
    drop(to_writer);
    writing.join().expect("the writing thread");
    acked
}

/// The numbers in a list of delivered messages (the sentinel left out).
fn numbers(delivered: &[Received]) -> Vec<usize> {
    delivered
        .iter()
        .filter(|p| p.payload != SENTINEL)
        .map(|p| {
            std::str::from_utf8(&p.payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not a number of the stream: {p:?}"))
        })
        .collect()
}

/// One run of the stream scenario, for one QoS and one kill point:
///
/// 1. a persistent subscriber subscribes to `s/#` at `qos` and disconnects;
/// 2. a publisher streams [`STREAM`] messages; the broker is killed after `kill_after`
///    acknowledgements;
/// 3. restart; the subscriber reconnects and takes a few messages, leaving some of them
///    (and some PUBRELs) unanswered; the broker is killed again;
/// 4. restart; the subscriber reconnects and drains everything up to a sentinel.
///
/// Checks that every acknowledged message is delivered, in order ([MQTT-4.6.0-6]), that
/// what was in flight is re-sent first with its Packet Identifier ([MQTT-4.4.0-1]) and, at
/// QoS 2, that nothing is delivered twice ([MQTT-4.3.3-2] on the subscriber's side, since
/// the broker must not send a message again under a new id).
fn stream_across_kills(name: &str, qos: u8, kill_after: usize) {
    let context = format!("QoS {qos}, killed after {kill_after} acknowledgements");
    let dir = TempDir::new(&format!("{name}-{kill_after}"));
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    persistent_subscriber(broker.addr, "stream-sub", "s/#", qos);
    let acked = publish_until_killed(&mut broker, qos, kill_after);
    assert!(acked.len() >= kill_after, "{context}");

    // Step 3: a partial drain, then a second kill.
    let mut broker = Broker::start(&conf);
    let mut inbox = Inbox::default();
    let (mut sub, present) = Raw::session(broker.addr, "stream-sub", false);
    assert!(
        present,
        "[MQTT-3.2.2-2] the session survived the kill: {context}"
    );
    let partial = acked.len().min(10);
    // The PUBLISHes seen, in order (id, payload), those left unanswered, and the PUBRELs
    // left without PUBCOMP: the broker must send all of those again.
    let mut first_sent: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut must_resend: BTreeSet<u16> = BTreeSet::new();
    let mut publishes = 0;
    for _ in 0..100 {
        if publishes == partial {
            break;
        }
        let packet = sub.recv();
        let answer = match packet[0] >> 4 {
            3 => {
                publishes += 1;
                publishes % 3 != 0
            }
            _ => ack_id(&packet) % 2 == 1,
        };
        match inbox.handle(&mut sub, &packet, answer) {
            Seen::Publish(p) => {
                let id = p.id.expect("QoS > 0");
                first_sent.push((id, p.payload));
                if !answer {
                    must_resend.insert(id);
                }
            }
            Seen::Pubrel(id) if !answer => {
                must_resend.insert(id);
            }
            Seen::Pubrel(_) => {}
        }
    }
    assert_eq!(publishes, partial, "{context}");
    broker.kill9();

    // Step 4: the full drain.
    let broker = Broker::start(&conf);
    let (mut sub, present) = Raw::session(broker.addr, "stream-sub", false);
    assert!(present, "[MQTT-3.2.2-2] the session survived: {context}");
    publish_acked(broker.addr, "sentinel", STREAM_TOPIC, SENTINEL);
    let seen = inbox.drain_until(&mut sub, SENTINEL);

    // [MQTT-4.4.0-1] what was in flight comes first, under its original id, DUP=1 for a
    // PUBLISH ([MQTT-3.3.1-1]), in the order first sent ([MQTT-4.6.0-1]).
    // The re-sent packets are the first ones, each id once; what follows is new
    // PUBLISHes (DUP=0) and the broker's answers to this drain's own acknowledgements
    // (a PUBREL for an id re-sent just before).
    let mut resent: Vec<u16> = Vec::new();
    for s in &seen {
        let id = match s {
            Seen::Publish(p) if !p.dup => break,
            Seen::Publish(p) => p.id.expect("QoS > 0"),
            Seen::Pubrel(id) => *id,
        };
        if resent.contains(&id) {
            break;
        }
        resent.push(id);
    }
    let first_new = resent.len();
    for s in &seen[first_new..] {
        if let Seen::Publish(p) = s {
            assert!(
                !p.dup,
                "[MQTT-4.4.0-1] a re-sent PUBLISH after new ones: {p:?} ({context})"
            );
        }
    }
    let missing: Vec<&u16> = must_resend
        .iter()
        .filter(|id| !resent.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "[MQTT-4.4.0-1] ids {missing:?} left unanswered were not sent again first \
         (re-sent: {resent:?}; {context})"
    );
    let first_sent_at: HashMap<u16, usize> = first_sent
        .iter()
        .enumerate()
        .map(|(at, (id, _))| (*id, at))
        .collect();
    let order: Vec<usize> = resent
        .iter()
        .filter_map(|id| first_sent_at.get(id).copied())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "[MQTT-4.6.0-1] re-sent in another order than first sent: {resent:?} after {first_sent:?} \
         ({context})"
    );
    for s in &seen[..first_new] {
        if let Seen::Publish(p) = s {
            let id = p.id.expect("QoS > 0");
            if let Some(&at) = first_sent_at.get(&id) {
                assert_eq!(
                    p.payload, first_sent[at].1,
                    "[MQTT-4.4.0-1] id {id} re-sent with another message ({context})"
                );
            }
        }
    }

    // Every acknowledged message arrived, in order.
    assert_eq!(inbox.counts().get(SENTINEL), Some(&1), "{context}");
    let delivered = numbers(&inbox.delivered);
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut firsts = Vec::new();
    for &n in &delivered {
        let count = counts.entry(n).or_insert(0);
        if *count == 0 {
            firsts.push(n);
        }
        *count += 1;
    }
    let duplicates: Vec<usize> = counts
        .iter()
        .filter(|(_, &count)| count > 1)
        .map(|(&n, _)| n)
        .collect();
    let missing: Vec<&usize> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{context}: {} acknowledged, {} delivered ({} distinct; {} duplicates: {duplicates:?}); \
         acknowledged and never delivered: {missing:?}",
        acked.len(),
        delivered.len(),
        counts.len(),
        duplicates.len(),
    );
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "[MQTT-4.6.0-6] delivered out of order: {firsts:?} ({context})"
    );
    if qos == 2 {
        assert!(
            duplicates.is_empty(),
            "[MQTT-4.3.3-2] delivered twice at QoS 2: {duplicates:?} ({context})"
        );
    }
}

/// [MQTT-4.3.2-2] a PUBACK means the broker owns the message, and [MQTT-3.1.2-4] a stored
/// session keeps the QoS 1 messages queued for it: every acknowledged message of a stream
/// reaches the persistent subscriber after `kill -9` (twice), in order ([MQTT-4.6.0-6]);
/// duplicates are allowed at QoS 1.
#[test]
fn acknowledged_qos1_messages_survive_kill_9_mqtt_4_3_2_2() {
    for kill_after in KILL_POINTS {
        stream_across_kills("qos1", 1, kill_after);
    }
}

/// [MQTT-4.3.3-2] QoS 2 is exactly once, across `kill -9` too: every message whose PUBREC
/// the publisher received reaches the persistent subscriber, once ([MQTT-3.1.2-4],
/// [MQTT-4.6.0-6]).
#[test]
fn acknowledged_qos2_messages_survive_kill_9_exactly_once_mqtt_4_3_3_2() {
    for kill_after in KILL_POINTS {
        stream_across_kills("qos2", 2, kill_after);
    }
}

// ---------------------------------------------------------------------------------------
// 3 and 4: the QoS 2 state of one message, each way.
// ---------------------------------------------------------------------------------------

/// [MQTT-4.3.3-2] [MQTT-3.1.2-4] the id of a QoS 2 PUBLISH acknowledged with PUBREC is
/// part of the publisher's stored session: after `kill -9`, the publisher's re-send (same
/// id, DUP=1) gets PUBREC again and is not routed a second time; PUBREL gets PUBCOMP; and
/// once released (and the broker killed again) the id is free for a new message.
#[test]
fn a_qos2_id_awaiting_pubrel_survives_kill_9_mqtt_4_3_3_2() {
    let dir = TempDir::new("inbound-qos2");
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    persistent_subscriber(broker.addr, "in-sub", "in/#", 2);
    let (mut publisher, present) = Raw::session(broker.addr, "in-pub", false);
    assert!(!present);
    publisher.send(&publish("in/x", b"once", 2, false, 7));
    assert_eq!(publisher.recv(), pubrec(7));
    broker.kill9();

    let mut broker = Broker::start(&conf);
    let (mut publisher, present) = Raw::session(broker.addr, "in-pub", false);
    assert!(present, "[MQTT-3.2.2-2] the publisher's session survived");
    // [MQTT-4.4.0-1] the client re-sends its unacknowledged PUBLISH, DUP=1.
    publisher.send(&publish("in/x", b"once", 2, true, 7));
    assert_eq!(
        publisher.recv(),
        pubrec(7),
        "a re-send is acknowledged again"
    );
    publisher.send(&pubrel(7));
    assert_eq!(
        publisher.recv(),
        pubcomp(7),
        "[MQTT-4.3.3-2] PUBREL gets PUBCOMP"
    );
    broker.kill9();

    // PUBCOMP promised the release: id 7 now names a new message.
    let broker = Broker::start(&conf);
    let (mut publisher, present) = Raw::session(broker.addr, "in-pub", false);
    assert!(present);
    publisher.send(&publish("in/x", b"second", 2, false, 7));
    assert_eq!(publisher.recv(), pubrec(7));
    publisher.send(&pubrel(7));
    assert_eq!(publisher.recv(), pubcomp(7));

    let (mut sub, present) = Raw::session(broker.addr, "in-sub", false);
    assert!(present, "[MQTT-3.2.2-2] the subscriber's session survived");
    publish_acked(broker.addr, "sentinel", "in/x", SENTINEL);
    let mut inbox = Inbox::default();
    inbox.drain_until(&mut sub, SENTINEL);
    let payloads: Vec<&[u8]> = inbox.delivered.iter().map(|p| &p.payload[..]).collect();
    assert_eq!(
        payloads,
        [&b"once"[..], b"second", SENTINEL],
        "[MQTT-4.3.3-2] the message re-sent across the kill is delivered once, and the \
         released id carries a new one"
    );
}

/// [MQTT-4.4.0-1] messages the broker sent to a Clean Session 0 client and that were not
/// acknowledged are sent again when it reconnects, after `kill -9` too: first, with their
/// original Packet Identifiers, DUP=1 on a PUBLISH ([MQTT-3.3.1-1]), a PUBREL for a QoS 2
/// message whose PUBREC arrived, in their original order ([MQTT-4.6.0-1]); CONNACK says
/// Session Present ([MQTT-3.2.2-2]).
#[test]
fn unacknowledged_outbound_messages_are_resent_after_kill_9_mqtt_4_4_0_1() {
    let dir = TempDir::new("outbound");
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    let (mut sub, present) = Raw::session(broker.addr, "out-sub", false);
    assert!(!present);
    sub.subscribe_to("out/#", 2);
    let mut publisher = Raw::connected(broker.addr, "out-pub");
    publisher.send(&publish("out/x", b"first", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    for (id, payload) in [(2, &b"second"[..]), (3, b"third")] {
        publisher.send(&publish("out/x", payload, 2, false, id));
        assert_eq!(publisher.recv(), pubrec(id));
        publisher.send(&pubrel(id));
        assert_eq!(publisher.recv(), pubcomp(id));
    }
    let first = sub.recv_publish();
    let second = sub.recv_publish();
    let third = sub.recv_publish();
    for (message, payload, qos) in [
        (&first, "first", 1),
        (&second, "second", 2),
        (&third, "third", 2),
    ] {
        assert_eq!(
            (message.payload.as_slice(), message.qos, message.dup),
            (payload.as_bytes(), qos, false)
        );
    }
    let (a, b, c) = (first.id.unwrap(), second.id.unwrap(), third.id.unwrap());
    // The second gets as far as PUBREL; the first and third are not acknowledged at all.
    sub.send(&pubrec(b));
    assert_eq!(sub.recv(), pubrel(b));
    broker.kill9();

    let broker = Broker::start(&conf);
    let (mut sub, present) = Raw::session(broker.addr, "out-sub", false);
    assert!(present, "[MQTT-3.2.2-2] Session Present after the kill");
    assert_eq!(
        parse_publish(&sub.recv()),
        Received {
            dup: true,
            qos: 1,
            retain: false,
            topic: "out/x".into(),
            id: Some(a),
            payload: b"first".to_vec(),
        },
        "[MQTT-4.4.0-1] the unacknowledged QoS 1 PUBLISH first, DUP=1, same id"
    );
    assert_eq!(
        sub.recv(),
        pubrel(b),
        "[MQTT-4.4.0-1] the unacknowledged PUBREL"
    );
    assert_eq!(
        sub.recv(),
        publish("out/x", b"third", 2, true, c),
        "[MQTT-4.4.0-1] the unacknowledged QoS 2 PUBLISH, DUP=1, same id"
    );
    sub.send(&puback(a));
    sub.send(&pubcomp(b));
    sub.send(&pubrec(c));
    assert_eq!(sub.recv(), pubrel(c));
    sub.send(&pubcomp(c));
    // Nothing else was held for the session: the next message is a new one.
    publish_acked(broker.addr, "sentinel", "out/x", SENTINEL);
    let next = sub.recv_publish();
    assert_eq!(
        (next.payload.as_slice(), next.dup),
        (SENTINEL, false),
        "{next:?}"
    );
    sub.send(&puback(next.id.unwrap()));
}

// ---------------------------------------------------------------------------------------
// 5: retained messages.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.3.1-5] retained messages are stored, [MQTT-3.3.1-10] an empty retained payload
/// removes one, [MQTT-3.3.1-6] a new subscription gets them: across `kill -9` as well, a
/// new subscriber gets exactly the live ones, at QoS 0 and 1.
#[test]
fn retained_messages_survive_kill_9_mqtt_3_3_1_10() {
    let dir = TempDir::new("retained");
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    let mut publisher = Raw::connected(broker.addr, "ret-pub");
    publisher.send(&retained("r/zero", b"qos 0", 0, 0));
    publisher.send(&retained("r/one", b"qos 1", 1, 1));
    assert_eq!(publisher.recv(), puback(1));
    publisher.send(&retained("r/gone", b"soon gone", 1, 2));
    assert_eq!(publisher.recv(), puback(2));
    publisher.send(&retained("r/gone", b"", 0, 0));
    publisher.send(&retained("r/replaced", b"old", 1, 3));
    assert_eq!(publisher.recv(), puback(3));
    // The last PUBACK is the barrier: the journal is written in order, so the QoS 0
    // messages before it (not acknowledged themselves) are on disk too.
    publisher.send(&retained("r/replaced", b"new", 1, 4));
    assert_eq!(publisher.recv(), puback(4));
    broker.kill9();

    let broker = Broker::start(&conf);
    assert_eq!(
        retained_messages(broker.addr, "ret-sub", "r/#"),
        [
            ("r/one".to_owned(), b"qos 1".to_vec(), 1),
            ("r/replaced".to_owned(), b"new".to_vec(), 1),
            ("r/zero".to_owned(), b"qos 0".to_vec(), 0),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 6: a journal with a torn or damaged tail.
// ---------------------------------------------------------------------------------------

/// Builds a journal whose last record is known: a persistent subscriber with one queued
/// message, a retained `ret/kept`, then (the last record) a retained `ret/last`. Returns
/// the journal's length before and after that last record; the broker is killed.
fn journal_with_known_tail(dir: &TempDir, conf: &Path) -> (u64, u64) {
    let mut broker = Broker::start(conf);
    persistent_subscriber(broker.addr, "tail-sub", "keep/#", 1);
    let mut publisher = Raw::connected(broker.addr, "tail-pub");
    publisher.send(&publish("keep/q", b"queued", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    publisher.send(&retained("ret/kept", b"kept", 1, 2));
    assert_eq!(publisher.recv(), puback(2));
    // Everything acknowledged is on disk, and nothing else is being written.
    let before = fs::metadata(dir.journal()).unwrap().len();
    publisher.send(&retained("ret/last", b"last", 1, 3));
    assert_eq!(publisher.recv(), puback(3));
    let after = fs::metadata(dir.journal()).unwrap().len();
    assert!(
        after > before,
        "the last message was written: {before} → {after}"
    );
    broker.kill9();
    (before, after)
}

/// What a journal built by [`journal_with_known_tail`] holds once restarted: `ret/last`
/// if `with_last`, and always `ret/kept` and the subscriber's queued message.
fn assert_kept(broker: &Broker, with_last: bool) {
    let mut expected = vec![("ret/kept".to_owned(), b"kept".to_vec(), 1)];
    if with_last {
        expected.push(("ret/last".to_owned(), b"last".to_vec(), 1));
    }
    assert_eq!(retained_messages(broker.addr, "check", "ret/#"), expected);
    let (mut sub, present) = Raw::session(broker.addr, "tail-sub", false);
    assert!(present, "the session before the damage is kept");
    let queued = sub.recv_publish();
    assert_eq!(queued.payload, b"queued");
    sub.send(&puback(queued.id.unwrap()));
    sub.send(&DISCONNECT);
    sub.closed();
}

/// After a restart that cut a tail off, the journal is whole again: another kill and
/// restart warns of nothing and still has the retained messages.
fn assert_healed(broker: &mut Broker, conf: &Path, with_last: bool) {
    broker.kill9();
    let again = Broker::start(conf);
    assert_eq!(
        again.logged_at_start("cutting off"),
        None,
        "{:#?}",
        again.startup
    );
    let live = retained_messages(again.addr, "check-again", "ret/#");
    assert_eq!(live.len(), 1 + usize::from(with_last), "{live:?}");
}

/// Garbage after the last record is cut off at the end of the last whole record, with a
/// warning naming the offset; what came before is kept. Three kinds of garbage: bytes
/// whose "length" is more than the file holds, fewer bytes than a record header, and
/// zeros (what a file system may leave after a crash: a length 0 with a CRC-32 of 0, which
/// is the CRC of nothing, so the body itself must be found wanting).
#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let tails: [(&str, &[u8]); 3] = [
        ("a record of", &[0xAB; 13]),
        ("a record header cut short", &[0x00, 0x00, 0x01, 0x00, 0x42]),
        ("a record that does not decode", &[0; 16]),
    ];
    for (n, (what, garbage)) in tails.into_iter().enumerate() {
        let dir = TempDir::new(&format!("garbage-{n}"));
        let conf = dir.conf();
        let (_, end) = journal_with_known_tail(&dir, &conf);
        fs::OpenOptions::new()
            .append(true)
            .open(dir.journal())
            .unwrap()
            .write_all(garbage)
            .unwrap();
        let mut broker = Broker::start(&conf);
        let warning = broker
            .logged_at_start("cutting off")
            .unwrap_or_else(|| panic!("no warning for {garbage:02x?}: {:#?}", broker.startup));
        assert!(warning.contains(what), "{garbage:02x?}: {warning}");
        assert!(warning.contains(&format!("at offset {end};")), "{warning}");
        let cut = format!("the last {} bytes", garbage.len());
        assert!(warning.contains(&cut), "{warning}");
        assert_eq!(
            fs::metadata(dir.journal()).unwrap().len(),
            end,
            "the file is cut"
        );
        assert_kept(&broker, true);
        assert_healed(&mut broker, &conf, true);
    }
}

/// A last record cut short (the file truncated a few bytes into it) is cut off whole, with
/// a warning naming where it started; every record before it is kept.
#[test]
fn a_torn_last_record_is_cut_off() {
    let dir = TempDir::new("torn");
    let conf = dir.conf();
    let (start_of_last, end) = journal_with_known_tail(&dir, &conf);
    let torn = end - 3;
    fs::OpenOptions::new()
        .write(true)
        .open(dir.journal())
        .unwrap()
        .set_len(torn)
        .unwrap();
    let mut broker = Broker::start(&conf);
    let warning = broker
        .logged_at_start("cutting off")
        .unwrap_or_else(|| panic!("no warning: {:#?}", broker.startup));
    assert!(
        warning.contains(&format!("at offset {start_of_last};")),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("the last {} bytes", torn - start_of_last)),
        "{warning}"
    );
    assert_eq!(fs::metadata(dir.journal()).unwrap().len(), start_of_last);
    assert_kept(&broker, false);
    assert_healed(&mut broker, &conf, false);
}

// ---------------------------------------------------------------------------------------
// Subscriptions and sessions.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.1.2-4] a stored session's subscriptions are part of it: what SUBACK and UNSUBACK
/// confirmed is what routes after `kill -9`. A session opened after a restart gets an id of
/// its own in the journal: after another kill both sessions are there, each with its own
/// subscriptions and messages.
#[test]
fn subscriptions_survive_kill_9_mqtt_3_1_2_4() {
    let dir = TempDir::new("subscriptions");
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    let (mut sub, _) = Raw::session(broker.addr, "subs", false);
    sub.send(&subscribe(1, &[("a/#", 1), ("b/#", 2), ("c/+", 0)]));
    assert_eq!(sub.recv(), [0x90, 0x05, 0x00, 0x01, 1, 2, 0]);
    sub.send(&unsubscribe(2, &["b/#"]));
    assert_eq!(sub.recv(), [0xB0, 0x02, 0x00, 0x02]);
    broker.kill9();

    let mut broker = Broker::start(&conf);
    // A second stored session, opened after the restart, is acknowledged by its CONNACK
    // and SUBACK.
    persistent_subscriber(broker.addr, "other", "a/#", 2);
    broker.kill9();

    let broker = Broker::start(&conf);
    let mut publisher = Raw::connected(broker.addr, "subs-pub");
    for (id, topic) in [(1, "a/1"), (2, "b/1"), (3, "c/1")] {
        publisher.send(&publish(topic, topic.as_bytes(), 2, false, id));
        assert_eq!(publisher.recv(), pubrec(id));
        publisher.send(&pubrel(id));
        assert_eq!(publisher.recv(), pubcomp(id));
    }
    // The last message for both sessions: whatever else they got is ahead of it.
    publisher.send(&publish("a/end", SENTINEL, 1, false, 4));
    assert_eq!(publisher.recv(), puback(4));
    publisher.send(&DISCONNECT);
    for (client_id, expected_qos) in [("subs", 1), ("other", 2)] {
        let (mut sub, present) = Raw::session(broker.addr, client_id, false);
        assert!(present, "[MQTT-3.2.2-2] {client_id}'s session");
        // Offline, a QoS 0 subscription (c/+) queues nothing; b/# is gone.
        let message = sub.recv_publish();
        assert_eq!(
            (message.topic.as_str(), message.qos, message.dup),
            ("a/1", expected_qos, false),
            "{client_id}"
        );
        let next = sub.recv_publish();
        assert_eq!(
            next.payload, SENTINEL,
            "{client_id}: nothing else was queued"
        );
        let id = message.id.unwrap();
        if expected_qos == 1 {
            sub.send(&puback(id));
        } else {
            sub.send(&pubrec(id));
            assert_eq!(sub.recv(), pubrel(id));
            sub.send(&pubcomp(id));
        }
        sub.send(&puback(next.id.unwrap()));
        sub.send(&DISCONNECT);
        sub.closed();
    }
}

/// [MQTT-3.1.2-6] a Clean Session 1 connection discards the stored session of its Client
/// Identifier, and its CONNACK promises that: after `kill -9` the session, its
/// subscriptions and its queued messages stay gone.
#[test]
fn a_session_discarded_by_clean_session_1_stays_discarded_mqtt_3_1_2_6() {
    let dir = TempDir::new("discarded");
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    persistent_subscriber(broker.addr, "fickle", "d/#", 1);
    publish_acked(broker.addr, "d-pub", "d/queued", b"queued");
    // Connected at the kill: the CONNACK alone promises the old session is gone.
    let (_clean, present) = Raw::session(broker.addr, "fickle", true);
    assert!(
        !present,
        "[MQTT-3.2.2-1] Clean Session 1: Session Present 0"
    );
    broker.kill9();

    let broker = Broker::start(&conf);
    // Were the old subscription back, this would be queued for "fickle".
    publish_acked(broker.addr, "d-pub", "d/after", b"after");
    let (mut sub, present) = Raw::session(broker.addr, "fickle", false);
    assert!(
        !present,
        "[MQTT-3.1.2-6] the discarded session did not come back"
    );
    // A new session, with no subscription: nothing is delivered. It subscribes now, and
    // the first message it gets is one published after that.
    sub.subscribe_to("d/#", 1);
    publish_acked(broker.addr, "d-pub", "d/new", SENTINEL);
    let message = sub.recv_publish();
    assert_eq!(
        (message.topic.as_str(), message.payload.as_slice()),
        ("d/new", SENTINEL)
    );
    sub.send(&puback(message.id.unwrap()));
}

// ---------------------------------------------------------------------------------------
// 7: a persistence_location that cannot be used.
// ---------------------------------------------------------------------------------------

/// Two brokers on one persistence_location would corrupt the journal: the second exits
/// with 1, naming the lock and the process that holds it; the first goes on serving.
#[test]
fn a_second_broker_on_the_same_directory_is_refused() {
    let dir = TempDir::new("locked");
    let conf = dir.conf();
    let first = Broker::start(&conf);
    let (code, log) = expect_exit(&conf);
    assert_eq!(code, Some(1), "{log}");
    let lock = dir.data().join("mqttd.lock");
    assert!(log.contains(&lock.display().to_string()), "{log}");
    assert!(
        log.contains("another broker is using this persistence_location"),
        "{log}"
    );
    assert!(
        log.contains(&format!("(process {})", first.child.id())),
        "{log}"
    );
    assert_still_serving(first.addr);
}

/// A persistence_location under a regular file cannot be a directory: exit 1, naming it.
#[test]
fn a_location_under_a_regular_file_is_refused() {
    let dir = TempDir::new("not-a-dir");
    let file = dir.0.join("plain");
    fs::write(&file, b"a file").unwrap();
    let location = file.join("data");
    let conf = dir.conf_for(&location);
    let (code, log) = expect_exit(&conf);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&location.display().to_string()), "{log}");
    assert_eq!(fs::read(&file).unwrap(), b"a file");
}

/// A journal file of another format is neither read nor overwritten: exit 1, "not an
/// mqttd journal", and the file as it was.
#[test]
fn a_file_of_another_format_is_left_alone() {
    let dir = TempDir::new("sqlite");
    fs::create_dir_all(dir.data()).unwrap();
    let mut contents = b"SQLite format 3\0".to_vec();
    contents.extend((0..200u8).map(|b| b.wrapping_mul(7)));
    fs::write(dir.journal(), &contents).unwrap();
    let (code, log) = expect_exit(&dir.conf());
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("not an mqttd journal"), "{log}");
    assert!(log.contains(&dir.journal().display().to_string()), "{log}");
    assert_eq!(
        fs::read(dir.journal()).unwrap(),
        contents,
        "the file is unchanged"
    );
}

// ---------------------------------------------------------------------------------------
// 8: a clean stop.
// ---------------------------------------------------------------------------------------

/// [MQTT-3.1.2-4] a stored session outlives a clean stop (SIGTERM, exit 0) as it outlives
/// a kill: its message in flight comes back first under its id with DUP=1, then its queued
/// messages in order; the retained message is back.
#[cfg(all(unix, feature = "signals"))]
#[test]
fn state_survives_a_clean_stop_mqtt_3_1_2_4() {
    let dir = TempDir::new("sigterm");
    let conf = dir.conf();
    let mut broker = Broker::start(&conf);
    let (mut sub, _) = Raw::session(broker.addr, "term-sub", false);
    sub.subscribe_to("t/#", 1);
    let mut publisher = Raw::connected(broker.addr, "term-pub");
    publisher.send(&publish("t/x", b"1", 1, false, 1));
    assert_eq!(publisher.recv(), puback(1));
    let in_flight = sub.recv_publish();
    assert_eq!(in_flight.payload, b"1");
    // Not acknowledged: it stays in flight.
    sub.send(&DISCONNECT);
    sub.closed();
    for (id, payload) in [(2, b"2"), (3, b"3")] {
        publisher.send(&publish("t/x", payload, 1, false, id));
        assert_eq!(publisher.recv(), puback(id));
    }
    publisher.send(&retained("keep/r", b"kept", 1, 4));
    assert_eq!(publisher.recv(), puback(4));
    let (status, log) = broker.terminate();
    assert_eq!(status.code(), Some(0), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("journal closed")), "{log:#?}");

    let broker = Broker::start(&conf);
    let (mut sub, present) = Raw::session(broker.addr, "term-sub", false);
    assert!(present, "[MQTT-3.2.2-2]");
    assert_eq!(
        sub.recv(),
        publish("t/x", b"1", 1, true, in_flight.id.unwrap()),
        "[MQTT-4.4.0-1] the message in flight first, DUP=1, same id"
    );
    for payload in [b"2", b"3"] {
        let queued = sub.recv_publish();
        assert_eq!(
            (queued.payload.as_slice(), queued.dup),
            (&payload[..], false)
        );
        sub.send(&puback(queued.id.unwrap()));
    }
    sub.send(&puback(in_flight.id.unwrap()));
    assert_eq!(
        retained_messages(broker.addr, "term-check", "keep/#"),
        [("keep/r".to_owned(), b"kept".to_vec(), 1)]
    );
}

// ---------------------------------------------------------------------------------------
// The promise itself, watched in-process: with the journal thread held before its next
// write, no acknowledgement leaves.
// ---------------------------------------------------------------------------------------

/// An in-process broker with persistence in `dir`, and its address.
fn in_process(dir: &TempDir) -> (mqttd::Server, SocketAddr) {
    let server = start_broker_with(mqttd::Config {
        persistence: true,
        persistence_location: dir.data(),
        sys_interval: Duration::ZERO,
        ..mqttd::Config::default()
    });
    let addr = server.local_addr();
    (server, addr)
}

/// Holds the journal thread before its next write while it lives (`Broker::hold_journal`);
/// lets it go when dropped, a failed assertion included.
struct Held<'a>(&'a mqttd::broker::Broker);

impl Held<'_> {
    fn hold(broker: &mqttd::broker::Broker) -> Held<'_> {
        broker.hold_journal(true);
        Held(broker)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.hold_journal(false);
    }
}

/// Waits until at least `n` connections wait for the journal (the held thread cannot let
/// them go), within [`PATIENCE`].
fn until_waiting(server: &mqttd::Server, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    while server.broker().journal_waiting() < n {
        assert!(
            Instant::now() < deadline,
            "{n} connection(s) never waited for the journal"
        );
        thread::yield_now();
    }
}

/// Asserts that nothing arrives on `raw` while the journal is held. A correct broker sends
/// nothing here however long one waits; one that acknowledges early is caught in the first
/// milliseconds, so a short read timeout is enough and cannot fail a correct broker.
fn assert_nothing_arrives(raw: &mut Raw, what: &str) {
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut byte = [0u8; 1];
    // Bounded by the deadline; a signal (SIGCHLD from the tests that kill a child broker)
    // may interrupt the read, which is then tried again for the time left.
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        raw.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match raw.stream.read(&mut byte) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            other => panic!("{what} arrived before its record was on disk: {other:?} {byte:02x?}"),
        }
    }
    raw.stream.set_read_timeout(Some(PATIENCE)).unwrap();
}

/// [MQTT-4.3.2-2] the PUBACK says the broker owns the message: with persistence it leaves
/// only once the message is on disk for the persistent session that must get it. And the
/// SUBACK only once the subscription is.
#[test]
fn puback_and_suback_wait_for_the_journal_mqtt_4_3_2_2() {
    let dir = TempDir::new("held-puback");
    let (server, addr) = in_process(&dir);
    let broker = server.broker();
    let (mut subscriber, _) = Raw::session(addr, "held-sub", false);
    let held = Held::hold(broker);
    subscriber.send(&subscribe(1, &[("held/#", 1)]));
    until_waiting(&server, 1);
    assert_nothing_arrives(&mut subscriber, "the SUBACK");
    drop(held);
    assert_eq!(subscriber.recv(), [0x90, 0x03, 0x00, 0x01, 0x01]);
    subscriber.send(&[0xe0, 0x00]);
    subscriber.closed();

    let mut publisher = Raw::connected(addr, "held-pub");
    let held = Held::hold(broker);
    publisher.send(&publish("held/1", b"kept", 1, false, 5));
    until_waiting(&server, 1);
    assert_nothing_arrives(&mut publisher, "the PUBACK");
    drop(held);
    assert_eq!(publisher.recv(), puback(5));
}

/// [MQTT-4.3.3-1] [MQTT-4.4.0-1] a QoS 2 PUBLISH to a persistent session leaves only once
/// its Packet Identifier is on disk: were the broker to crash after sending it, it must
/// send it again under the same id, never as a new message.
#[test]
fn a_publish_to_a_persistent_session_waits_for_its_record_mqtt_4_4_0_1() {
    let dir = TempDir::new("held-publish");
    let (server, addr) = in_process(&dir);
    let broker = server.broker();
    let (mut subscriber, _) = Raw::session(addr, "held-sub", false);
    subscriber.subscribe_to("held/#", 2);
    let mut publisher = Raw::connected(addr, "held-pub");
    let held = Held::hold(broker);
    publisher.send(&publish("held/2", b"once", 2, false, 6));
    // The publisher's reader waits for the message's records; the subscriber's writer is
    // woken meanwhile, sends nothing, and waits for its `Sent` record.
    until_waiting(&server, 2);
    assert_nothing_arrives(&mut subscriber, "the PUBLISH");
    assert_nothing_arrives(&mut publisher, "the PUBREC");
    drop(held);
    assert_eq!(publisher.recv(), pubrec(6));
    let received = subscriber.recv_publish();
    assert_eq!(received.payload, b"once");
}
