//! `store` and `resume`: messages queued for sessions that are away, which a broker with
//! persistence must still hold after a restart (`bench/restart.sh` kills the broker with
//! SIGKILL between the two).
//!
//! * `store` opens `--sessions` N persistent sessions (Clean Session 0), client
//!   `loadgen-store-<i>` subscribed at QoS 1 to `store/<i>`, and disconnects each; then
//!   `--parallel` publishers send `--messages` M QoS 1 messages to every `store/<i>` and
//!   wait for every PUBACK. Once `store` has printed its line, the broker has promised all
//!   N × M messages: a broker with persistence must have them on disk.
//! * `resume --session K` connects as `loadgen-store-<K>` with Clean Session 0, retrying a
//!   refused connection every millisecond, and measures the time until the CONNACK from
//!   `--started-ns` (when the script started the broker), and the time until the last of
//!   its messages arrived (`drain_ms`, after the CONNACK). The session must be there
//!   (Session Present 1) and its M messages must all arrive, once each, in order.
//!
//! Both are written the plain, blocking way: nothing here is a throughput figure to
//! compare, apart from the time to the CONNACK.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqttd::codec::{read_frame, FrameError, Packet, PacketId, QoS};

use crate::client;
use crate::fail::Fail;
use crate::flow::HARD_MARGIN;
use crate::options::Options;
use crate::transport::Connector;
use crate::wire::{PublishTemplate, Stamp, MAX_PACKET};

/// QoS 1 messages a `store` publisher sends before it waits for their PUBACKs.
const STORE_BATCH: usize = 100;

/// After the last expected message, how long `resume` keeps reading for extra copies.
const LINGER: Duration = Duration::from_millis(300);

/// How long `resume` waits for the next message before it counts the rest as lost.
const QUIET: Duration = Duration::from_secs(5);

fn client_id(session: usize) -> String {
    format!("loadgen-store-{session}")
}

fn topic(session: usize) -> String {
    format!("store/{session}")
}

/// The `store` scenario; returns the fields of its RESULT line.
pub fn store(options: &Options) -> Result<String, Fail> {
    let deadline = Instant::now() + Duration::from_secs_f64(options.secs) + HARD_MARGIN;
    let threads = options.parallel.min(options.sessions);
    let started = Instant::now();
    in_threads(threads, |t| {
        for session in (t..options.sessions).step_by(threads) {
            check_deadline(deadline, "opening the sessions")?;
            open_session(options.addr, session)?;
        }
        Ok(())
    })?;
    let sessions_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    in_threads(threads, |t| publish(options, t, threads, deadline))?;
    let publish_secs = started.elapsed().as_secs_f64();
    let messages = options.sessions * options.messages;
    Ok(format!(
        "sessions={} messages_per_session={} messages={messages} payload={} publishers={threads} sessions_secs={sessions_secs:.2} publish_secs={publish_secs:.2} publish_rate={:.0}",
        options.sessions,
        options.messages,
        options.payload,
        messages as f64 / publish_secs.max(1e-9)
    ))
}

/// Runs `work(0)` … `work(n - 1)` on `n` threads; the first error is the result.
fn in_threads<F>(n: usize, work: F) -> Result<(), Fail>
where
    F: Fn(usize) -> Result<(), Fail> + Sync,
{
    thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..n).map(|t| scope.spawn(move || work(t))).collect();
        let mut first = Ok(());
        for handle in handles {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err(Fail::Panic("a store thread panicked".into())));
            if first.is_ok() {
                first = result;
            }
        }
        first
    })
}

fn check_deadline(deadline: Instant, doing: &str) -> Result<(), Fail> {
    if Instant::now() >= deadline {
        return Err(Fail::Deadline(format!("still {doing}")));
    }
    Ok(())
}

/// One persistent session, subscribed, then away. A session left under that id by an
/// earlier run is discarded first, so the new one starts empty.
fn open_session(addr: SocketAddr, session: usize) -> Result<(), Fail> {
    let id = client_id(session);
    let tcp = Connector::tcp(addr);
    client::discard_session(&tcp, &id)?;
    let filter = topic(session);
    let (stream, present) =
        client::open_blocking_session(&tcp, &id, false, Some((&filter, QoS::AtLeastOnce)))?;
    if present {
        return Err(Fail::Protocol(format!(
            "{id}: the broker resumed a session that a Clean Session 1 connection had just discarded"
        )));
    }
    client::disconnect_and_wait(stream, &id)
}

/// Publisher `t` of `threads`: every message for the sessions `t`, `t + threads`, …, in
/// order of sequence number, `STORE_BATCH` at a time, each batch acknowledged in full
/// before the next.
fn publish(options: &Options, t: usize, threads: usize, deadline: Instant) -> Result<(), Fail> {
    let name = format!("loadgen-{}-store-pub{t}", std::process::id());
    let mut stream = client::open_blocking(&Connector::tcp(options.addr), &name, None)?;
    let sessions: Vec<usize> = (t..options.sessions).step_by(threads).collect();
    let templates: Vec<PublishTemplate> = sessions
        .iter()
        .map(|&s| PublishTemplate::new(&topic(s), QoS::AtLeastOnce, options.payload))
        .collect();
    let all = (0..options.messages)
        .flat_map(|seq| (0..sessions.len()).map(move |k| (seq, k)))
        .collect::<Vec<_>>();
    let mut bytes = Vec::new();
    for batch in all.chunks(STORE_BATCH) {
        check_deadline(deadline, "publishing")?;
        bytes.clear();
        for (&(seq, k), id) in batch.iter().zip(1..) {
            let stamp = Stamp {
                publisher: u16::try_from(sessions[k]).unwrap_or(u16::MAX),
                seq: u32::try_from(seq).unwrap_or(u32::MAX),
                sent_ns: 0,
            };
            templates[k].append(&mut bytes, Some(id), &stamp);
        }
        stream
            .write_all(&bytes)
            .map_err(Fail::io(format!("{name}: publish")))?;
        let mut acked = vec![false; batch.len()];
        for _ in 0..batch.len() {
            match client::receive(&mut stream, &name, "PUBACK")? {
                Packet::Puback(id) if (1..=batch.len()).contains(&usize::from(id)) => {
                    let slot = &mut acked[usize::from(id) - 1];
                    if *slot {
                        return Err(Fail::Protocol(format!("{name}: PUBACK {id} twice")));
                    }
                    *slot = true;
                }
                other => {
                    return Err(Fail::Protocol(format!(
                        "{name}: expected a PUBACK for 1..={}, got {other}",
                        batch.len()
                    )))
                }
            }
        }
    }
    client::disconnect_and_wait(stream, &name)
}

/// The `resume` scenario; returns the fields of its RESULT line.
pub fn resume(options: &Options) -> Result<String, Fail> {
    let deadline = Instant::now() + Duration::from_secs_f64(options.secs) + HARD_MARGIN;
    let since = options.started_ns.unwrap_or_else(unix_ns);
    let id = client_id(options.session);
    let (mut stream, attempts) = connect_retrying(options.addr, &id, deadline)?;
    // A broker may bind its port before it has read its state back: the kernel then
    // completes TCP handshakes into the listen backlog, and only the CONNACK says the
    // broker is ready.
    let tcp_ms = ms_since(since);
    let present = client::handshake(&mut stream, &id, false, 0, None)?;
    let accept_ms = ms_since(since);
    if !present {
        return Err(Fail::Protocol(format!(
            "{id}: CONNACK {accept_ms:.1} ms after the start, but the session is gone (Session Present 0)"
        )));
    }
    let got = receive_stored(&mut stream, options, &id, since, deadline)?;
    let drain_ms = got.complete_ms.map_or(-1.0, |done| done - accept_ms);
    client::disconnect_and_wait(stream, &id)?;
    let fields = format!(
        "session={} messages={} tcp_ms={tcp_ms:.1} accept_ms={accept_ms:.1} attempts={attempts} drain_ms={drain_ms:.1} received={} lost={} dup={} reorder={}",
        options.session, options.messages, got.received, got.lost, got.duplicates, got.late
    );
    if got.lost > 0 || got.duplicates > 0 || got.late > 0 || got.strangers > 0 {
        return Err(Fail::Protocol(format!(
            "{id}: the stored messages did not come back as sent: {fields} strangers={}",
            got.strangers
        )));
    }
    Ok(fields)
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn ms_since(since_ns: u64) -> f64 {
    unix_ns().saturating_sub(since_ns) as f64 / 1e6
}

/// TCP connect, retried every millisecond while the port refuses (the broker is still
/// starting). Returns the socket and the number of attempts.
fn connect_retrying(
    addr: SocketAddr,
    id: &str,
    deadline: Instant,
) -> Result<(TcpStream, u32), Fail> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client::connect_tcp(addr, id) {
            Ok(stream) => return Ok((stream, attempts)),
            Err(Fail::Io { error, .. })
                if error.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What `resume` received of one session's stored messages.
#[derive(Debug, Default)]
struct Got {
    received: u64,
    lost: u64,
    duplicates: u64,
    late: u64,
    /// Messages on another topic, or not stamped by `store` for this session.
    strangers: u64,
    /// When the last of the M messages came, in ms after `--started-ns`.
    complete_ms: Option<f64>,
}

/// Reads the session's messages (answering each with PUBACK) until all M have come and
/// nothing more comes for `LINGER`, or nothing has come for `QUIET`.
fn receive_stored(
    stream: &mut TcpStream,
    options: &Options,
    id: &str,
    since: u64,
    deadline: Instant,
) -> Result<Got, Fail> {
    let expected_topic = topic(options.session);
    let mut seen = vec![false; options.messages];
    let mut distinct = 0;
    let mut next = 0u32;
    let mut got = Got::default();
    loop {
        check_deadline(deadline, "receiving the stored messages")?;
        let wait = if distinct == options.messages {
            LINGER
        } else {
            QUIET
        };
        stream
            .set_read_timeout(Some(wait))
            .map_err(Fail::io(format!("{id}: set read timeout")))?;
        let frame = match read_frame(stream, MAX_PACKET) {
            Ok(frame) => frame,
            Err(FrameError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                break
            }
            Err(e) => {
                return Err(Fail::Protocol(format!(
                    "{id}: reading the stored messages: {e:?}"
                )))
            }
        };
        let packet = frame
            .decode()
            .map_err(|e| Fail::Protocol(format!("{id}: {e}")))?;
        let Packet::Publish(publish) = packet else {
            return Err(Fail::Protocol(format!("{id}: unexpected {packet}")));
        };
        got.received += 1;
        let stamp = Stamp::read(&publish.payload);
        match stamp {
            Some(stamp)
                if *publish.topic == *expected_topic
                    && usize::from(stamp.publisher) == options.session
                    && (stamp.seq as usize) < options.messages =>
            {
                let slot = &mut seen[stamp.seq as usize];
                if *slot {
                    got.duplicates += 1;
                } else {
                    *slot = true;
                    distinct += 1;
                    if distinct == options.messages {
                        got.complete_ms = Some(ms_since(since));
                    }
                }
                if stamp.seq < next {
                    got.late += 1;
                }
                next = next.max(stamp.seq + 1);
            }
            _ => got.strangers += 1,
        }
        if let (QoS::AtLeastOnce, Some(packet_id)) = (publish.qos, publish.packet_id) {
            acknowledge(stream, id, packet_id)?;
        }
    }
    got.lost = (options.messages - distinct) as u64;
    Ok(got)
}

fn acknowledge(stream: &mut TcpStream, id: &str, packet_id: PacketId) -> Result<(), Fail> {
    stream
        .write_all(&Packet::Puback(packet_id).to_bytes())
        .map_err(Fail::io(format!("{id}: PUBACK")))
}
