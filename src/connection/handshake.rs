//! CONNECT and CONNACK: how a TCP connection becomes an MQTT client (§3.1, §3.2, §3.1.4).
//!
//! Runs on the connection's first thread, `hs:<peer address>`, and follows §3.1.4 step by
//! step:
//!
//! 1. [`read_connect`]: the first packet must arrive within `connect_timeout` and must be
//!    a CONNECT ([MQTT-3.1.0-1]); a malformed one is closed without CONNACK
//!    ([MQTT-3.1.4-1]), except an unsupported protocol level, which gets 0x01.
//! 2. [`assign_client_id`]: an empty Client Identifier gets a generated one, or 0x02.
//! 3. [`Broker::claim_session`]: take over an existing connection with the same id and
//!    wait for its session; then [`Session::open`] resumes or replaces it.
//! 4. [`start_session_threads`]: the writer sends CONNACK 0x00 first ([MQTT-3.2.0-1]), then
//!    re-sends what was in flight, and the reader goes on with the bytes that followed the
//!    CONNECT.
//!
//! [`reaction_to`] is the one place that decides between "refuse with a CONNACK code" and
//! "close without a word".

use std::io::{self, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::{Broker, ConnectionId};
use crate::codec::{
    read_frame, Connack, Connect, ConnectReturnCode, DecodeError, FrameError, Packet,
    ProtocolVersion,
};

use super::close::{is_timeout, CloseReason};
use super::input::Input;
use super::reader::Reader;
use super::writer::Writer;
use super::{
    log_received, log_sent, panic_message, trace_bytes, trace_frame, Socket, THREAD_STACK_SIZE,
};
use crate::session::{Opened, Session};

/// How many requests the reader may queue for its writer before it waits. The reader
/// waiting on its *own* writer only slows down this client, which is the right place for
/// back-pressure: a client that sends faster than it reads the answers is throttled. A
/// bounded crossbeam channel allocates its slots up front (48 bytes each here), so this is
/// kept small: every idle client pays for it.
const CONTROL_QUEUE: usize = 16;

/// Why a connection is refused during the handshake.
#[derive(Debug)]
enum Refusal {
    /// Close without sending anything.
    Close(CloseReason),
    /// Send CONNACK with this non-zero code, then close ([MQTT-3.2.2-5]).
    Connack {
        code: ConnectReturnCode,
        rule: &'static str,
        what: String,
    },
}

/// Handles a new connection up to the start of its reader and writer threads.
pub(super) fn run(socket: Socket, peer: String, broker: Arc<Broker>) {
    let connection = broker.next_id();
    broker.track_connection(connection, socket.clone());
    // `Broker::stop` sets its flag before it shuts the tracked sockets down, so a connection
    // tracked too late to be shut down by it sees the flag here.
    if broker.is_stopping() {
        socket.shutdown();
        broker.untrack_connection(connection);
        return;
    }
    // A panic here is a bug in mqttd: it costs this connection only ([MQTT-4.8.0-2]), and
    // any session slot it had claimed is given up so the Client Identifier stays usable.
    let accepted = panic::catch_unwind(AssertUnwindSafe(|| {
        accept(&socket, connection, &peer, &broker)
    }))
    .unwrap_or_else(|payload| {
        broker.release_connection(connection);
        Err(Refusal::Close(CloseReason::Panicked(panic_message(
            &payload,
        ))))
    });
    if let Err(refusal) = accepted {
        refuse(&socket, &peer, refusal);
        socket.shutdown();
        broker.untrack_connection(connection);
    }
}

fn accept(
    socket: &Socket,
    connection: ConnectionId,
    peer: &str,
    broker: &Arc<Broker>,
) -> Result<(), Refusal> {
    // The input buffer may hold bytes the client sent after its CONNECT (clients need not wait
    // for CONNACK, §3.1.4); it is handed to the reader thread so none of them is lost.
    let mut input = Input::new(socket.clone());
    let connect = read_connect(&mut input, socket, broker, peer)?;
    let client_id = assign_client_id(&connect, broker)?;
    // [MQTT-3.1.2-24] from now on, the read timeout is the keepalive timer.
    socket
        .set_read_timeout(keep_alive_timeout(connect.keep_alive))
        .map_err(|e| Refusal::Close(CloseReason::Io(e)))?;
    // [MQTT-3.1.4-2] an existing connection with this Client Identifier is closed, and
    // its session handed over.
    let claim = broker
        .claim_session(&client_id, connection, socket.clone())
        .ok_or_else(|| Refusal::Connack {
            code: ConnectReturnCode::ServerUnavailable,
            rule: "[MQTT-3.1.4-2]",
            what: "the connection being taken over did not hand its session back".into(),
        })?;
    if claim.took_over {
        log::info!("client {client_id:?} took over an existing connection");
    }
    let protocol = connect.protocol;
    let keep_alive = connect.keep_alive;
    let clean_session = connect.clean_session;
    // [MQTT-3.1.4-3] the Clean Session processing of §3.1.2.4.
    let mut opened = Session::open(
        broker,
        Arc::clone(&client_id),
        clean_session,
        connect.will,
        claim.previous,
    );
    // MQTT 3.1 has no Session Present flag: its CONNACK byte stays 0 even on resumption.
    opened.session_present &= protocol == ProtocolVersion::V3_1_1;
    let session_present = opened.session_present;
    start_session_threads(input, socket, connection, keep_alive, opened, broker)?;
    log::info!(
        "client {client_id:?} connected from {peer} ({}/{}, clean_session={}, keep_alive={}, session_present={})",
        protocol.name(),
        protocol.level(),
        u8::from(clean_session),
        keep_alive,
        u8::from(session_present),
    );
    Ok(())
}

/// Reads the first packet, which must be a CONNECT, within the configured time.
fn read_connect(
    input: &mut Input,
    socket: &Socket,
    broker: &Broker,
    peer: &str,
) -> Result<Connect, Refusal> {
    let config = &broker.config;
    let mut timed = Deadline {
        input,
        socket,
        until: Instant::now() + config.connect_timeout,
    };
    let frame = read_frame(&mut timed, config.max_packet_size).map_err(|e| match e {
        // §3.1.4: no CONNECT within a reasonable time: close.
        FrameError::Io(e) if is_timeout(&e) => Refusal::Close(CloseReason::Violation {
            rule: "§3.1.4",
            what: format!("no CONNECT within {:?}", config.connect_timeout),
        }),
        other => Refusal::Close(CloseReason::from_frame_error(other, 0)),
    })?;
    trace_frame(peer, &frame);
    let packet = frame.decode().map_err(reaction_to)?;
    log_received(peer, &packet);
    match packet {
        Packet::Connect(connect) => Ok(*connect),
        // [MQTT-3.1.0-1] the first packet must be CONNECT.
        other => Err(Refusal::Close(CloseReason::Violation {
            rule: "[MQTT-3.1.0-1]",
            what: format!("first packet is {}, not CONNECT", other.packet_type()),
        })),
    }
}

/// Decides what a CONNECT that fails to decode gets: the one place for that decision.
fn reaction_to(error: DecodeError) -> Refusal {
    match error {
        // [MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01, then close.
        DecodeError::UnsupportedProtocolLevel { .. } => Refusal::Connack {
            code: ConnectReturnCode::UnacceptableProtocolVersion,
            rule: error.rule(),
            what: error.to_string(),
        },
        // [MQTT-3.1.4-1] anything else wrong with a CONNECT: close, no CONNACK.
        other => Refusal::Close(CloseReason::Malformed(other)),
    }
}

/// The Client Identifier this connection will use (§3.1.3.1).
///
/// Any non-empty identifier is accepted: [MQTT-3.1.3-5] requires 1 to 23 letters and
/// digits to be accepted and allows more, and like Mosquitto we accept any valid UTF-8.
fn assign_client_id(connect: &Connect, broker: &Broker) -> Result<Arc<str>, Refusal> {
    if !connect.client_id.is_empty() {
        return Ok(Arc::from(connect.client_id.as_str()));
    }
    let refuse = |rule, what: &str| Refusal::Connack {
        code: ConnectReturnCode::IdentifierRejected,
        rule,
        what: what.to_owned(),
    };
    // [MQTT-3.1.3-9] the only identifier refused: an empty one from an MQTT 3.1 client.
    if connect.protocol == ProtocolVersion::V3_1 {
        return Err(refuse(
            "MQTT 3.1 §3.1",
            "MQTT 3.1 has no empty Client Identifier",
        ));
    }
    if !connect.clean_session {
        // [MQTT-3.1.3-8] an empty Client Identifier cannot name a session to keep.
        return Err(refuse(
            "[MQTT-3.1.3-8]",
            "empty Client Identifier with Clean Session 0",
        ));
    }
    // [MQTT-3.1.3-6] empty with Clean Session 1: assign a unique one.
    Ok(Arc::from(broker.generate_client_id()))
}

/// 1.5 × Keep Alive, or no timeout at all when Keep Alive is 0 (§3.1.2.10).
pub(super) fn keep_alive_timeout(keep_alive: u16) -> Option<Duration> {
    match keep_alive {
        0 => None,
        seconds => Some(Duration::from_millis(u64::from(seconds) * 1500)),
    }
}

/// Sends the refusal, if it has a CONNACK, and logs why the connection is closed.
fn refuse(socket: &Socket, peer: &str, refusal: Refusal) {
    match refusal {
        Refusal::Close(reason) => reason.log(peer),
        Refusal::Connack { code, rule, what } => {
            // [MQTT-3.2.2-4] Session Present is 0 whenever the code is not 0.
            let connack = Packet::Connack(Connack {
                session_present: false,
                code,
            });
            log_sent(peer, &connack);
            let bytes = connack.to_bytes();
            trace_bytes(peer, "->", &bytes);
            let _ = socket.clone().write_all(&bytes);
            // [MQTT-3.2.2-5] close after a non-zero return code; [MQTT-3.1.4-5] nothing
            // the client sent after its CONNECT is processed.
            log::warn!(
                "client {peer:?} refused with {:#04x} ({}): {rule} {what}",
                code as u8,
                code.describe()
            );
        }
    }
}

/// Starts the reader and writer threads of an accepted connection.
fn start_session_threads(
    input: Input,
    socket: &Socket,
    connection: ConnectionId,
    keep_alive: u16,
    opened: Opened,
    broker: &Arc<Broker>,
) -> Result<(), Refusal> {
    let Opened {
        session,
        writer_side,
        session_present,
    } = opened;
    let client_id = Arc::clone(&session.client_id);
    let (control_tx, control_rx) = crossbeam_channel::bounded(CONTROL_QUEUE);
    // [MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present says whether a session was resumed.
    // [MQTT-3.1.4-4] the code is 0x00.
    let connack = Packet::Connack(Connack {
        session_present,
        code: ConnectReturnCode::Accepted,
    });
    // The reader thread starts first and waits for its state, so that if a thread cannot
    // be started nothing has been handed over yet and the session can be closed cleanly.
    let (hand_over, handed) = crossbeam_channel::bounded::<Reader>(1);
    let refuse = |e: io::Error| Refusal::Connack {
        code: ConnectReturnCode::ServerUnavailable,
        rule: "§3.2.2.3",
        what: format!("cannot start a connection thread: {e}"),
    };
    let reader_thread = spawn_named(format!("rx:{client_id}"), move || {
        let received = handed.recv();
        // The channel has done its job: free it now rather than when the connection ends
        // (it holds a slot as big as a `Reader`).
        drop(handed);
        if let Ok(reader) = received {
            reader.run();
        }
    });
    if let Err(e) = reader_thread {
        let stored = session.close(broker, Some(writer_side));
        broker.release_session(&client_id, connection, stored);
        return Err(refuse(e));
    }
    let writer = Writer::new(
        socket.clone(),
        Arc::clone(&client_id),
        control_rx,
        Arc::clone(session.outbox()),
        Arc::clone(broker),
    );
    let (finished, writer_finished) = crossbeam_channel::bounded::<()>(0);
    // From here on the session counts as connected: a QoS 0 message routed before the
    // writer thread runs must be queued, not skipped as if the client were away.
    session.outbox().set_connected(true);
    let writer = match spawn_named(format!("tx:{client_id}"), move || {
        // Dropped when this thread ends, whatever way: that is the reader's signal.
        let _finished = finished;
        writer.run(connack, writer_side)
    }) {
        Ok(handle) => handle,
        Err(e) => {
            // The writer side went down with the closure: the session cannot be kept.
            // Dropping `hand_over` lets the waiting reader thread end.
            let _ = session.close(broker, None);
            broker.release_session(&client_id, connection, None);
            return Err(refuse(e));
        }
    };
    let reader = Reader {
        input,
        socket: socket.clone(),
        connection,
        keep_alive,
        session,
        control: control_tx,
        writer,
        writer_finished,
        broker: Arc::clone(broker),
    };
    // The reader thread is waiting for exactly this, unless it died while starting up:
    // the standard library can panic before our code runs (for example when it cannot map
    // the thread's signal stack). Then the teardown runs here, so that the writer stops
    // and the session is stored or ended instead of being held for ever.
    if let Err(crossbeam_channel::SendError(reader)) = hand_over.send(reader) {
        reader.teardown(CloseReason::Panicked(
            "the reader thread died while starting".into(),
        ));
    }
    Ok(())
}

fn spawn_named<T: Send + 'static>(
    name: String,
    body: impl FnOnce() -> T + Send + 'static,
) -> io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK_SIZE)
        .spawn(body)
}

/// A reader that gives up when a deadline passes, however the bytes trickle in: the
/// CONNECT must be *complete* within the time allowed, not merely started.
struct Deadline<'a> {
    input: &'a mut Input,
    socket: &'a Socket,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.socket.set_read_timeout(Some(left))?;
        self.input.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_timeout_is_one_and_a_half_times_keep_alive_mqtt_3_1_2_24() {
        assert_eq!(keep_alive_timeout(0), None);
        assert_eq!(keep_alive_timeout(10), Some(Duration::from_secs(15)));
        assert_eq!(keep_alive_timeout(1), Some(Duration::from_millis(1500)));
        assert_eq!(
            keep_alive_timeout(u16::MAX),
            Some(Duration::from_millis(65_535 * 1500))
        );
    }

    #[test]
    fn only_an_unsupported_level_is_answered_with_a_connack_mqtt_3_1_4_1() {
        let level = DecodeError::UnsupportedProtocolLevel {
            name: "MQTT".into(),
            level: 5,
        };
        assert!(matches!(
            reaction_to(level),
            Refusal::Connack {
                code: ConnectReturnCode::UnacceptableProtocolVersion,
                ..
            }
        ));
        assert!(matches!(
            reaction_to(DecodeError::ReservedConnectFlag),
            Refusal::Close(CloseReason::Malformed(_))
        ));
    }

    fn connect(client_id: &str, clean_session: bool) -> Connect {
        Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_session,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
        }
    }

    #[test]
    fn an_empty_client_id_with_clean_session_gets_a_unique_one_mqtt_3_1_3_6() {
        let broker = Broker::new(crate::Config::default());
        let a = assign_client_id(&connect("", true), &broker).unwrap();
        let b = assign_client_id(&connect("", true), &broker).unwrap();
        assert!(a.starts_with("auto-"));
        assert_ne!(a, b);
    }

    #[test]
    fn an_empty_client_id_without_clean_session_is_rejected_mqtt_3_1_3_8() {
        let broker = Broker::new(crate::Config::default());
        assert!(matches!(
            assign_client_id(&connect("", false), &broker),
            Err(Refusal::Connack {
                code: ConnectReturnCode::IdentifierRejected,
                ..
            })
        ));
    }

    #[test]
    fn a_client_id_of_letters_and_digits_is_accepted_mqtt_3_1_3_5() {
        let broker = Broker::new(crate::Config::default());
        let id = "abcdefghijklmnopqrstuvw";
        assert_eq!(
            &*assign_client_id(&connect(id, false), &broker).unwrap(),
            id
        );
    }
}
