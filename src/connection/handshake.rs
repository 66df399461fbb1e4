//! CONNECT and CONNACK on the wire: how a TCP connection becomes an MQTT client (§3.1,
//! §3.2, §3.1.4).
//!
//! Runs on the connection's first thread, `hs:<peer address>`, and follows §3.1.4 step by
//! step. The decisions are the protocol handler's (`src/protocol/connect.rs`); this file
//! does the reading, the writing and the starting of threads around them:
//!
//! 1. [`read_connect`]: the first packet must arrive within `connect_timeout` and must be
//!    a CONNECT ([MQTT-3.1.0-1]); `reaction_to` says whether a malformed one is refused
//!    with a CONNACK code or closed without a word ([MQTT-3.1.4-1]).
//! 2. `check_keep_alive` (0x02 beyond `max_keepalive`), `authenticate` (0x05), then
//!    `assign_client_id`: an empty Client Identifier gets a generated one, or 0x02.
//! 3. `open_session`: take over the connection with the same id (`SessionStore::claim`),
//!    wait for its session; then `Handler::open` resumes or replaces it.
//! 4. [`start_session_threads`]: the writer sends CONNACK 0x00 first ([MQTT-3.2.0-1]), then
//!    re-sends what was in flight, and the reader goes on with the bytes that followed the
//!    CONNECT.

use std::io::{self, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crossbeam_channel::{Receiver, SendError};

use crate::broker::{Broker, ConnectionId, Traffic};
use crate::codec::{
    read_frame_of, Connack, Connect, ConnectReturnCode, Frame, FrameError, Packet, PacketType,
};
use crate::mailbox::StartWriter;
use crate::protocol::{
    assign_client_id, authenticate, check_keep_alive, is_timeout, keep_alive_timeout, open_session,
    reaction_to, user_from_certificate, CloseReason, Handler, Opened, Refusal,
};
use crate::session::WriterSide;
use crate::throttle::{self, Throttle};
use crate::transport::{Incoming, Socket, Transport};

use super::input::Input;
use super::reader::Reader;
use super::writer::{Start, Writer};
use super::writer_slot::{start_thread, WriterSlot};
use super::{
    log_received, log_sent, panic_message, spawn_named, trace_bytes, trace_frame, ListenerSlot,
};

/// Handles a new connection up to the start of its reader and writer threads.
/// `slot` is the connection's place in its listener's count: held until the connection
/// ends (by the reader, once the handshake is done), given back if it is refused.
pub(super) fn run(
    socket: Socket,
    peer: String,
    broker: Arc<Broker>,
    slot: ListenerSlot,
    transport: Arc<Transport>,
) {
    let connection = broker.new_connection_id();
    broker.track_connection(connection, socket.clone());
    // `Broker::stop` sets its flag before it shuts the tracked sockets down, so a connection
    // tracked too late to be shut down by it sees the flag here.
    if broker.is_stopping() {
        socket.shutdown();
        broker.untrack_connection(connection);
        return;
    }
    // §3.1.4's "reasonable time" for the CONNECT covers what comes before it too: the TLS
    // handshake and the WebSocket upgrade.
    let until = Instant::now() + broker.config.connect_timeout;
    // A panic here is a bug in mqttd: it costs this connection only ([MQTT-4.8.0-2]), and
    // any session slot it had claimed is given up so the Client Identifier stays usable.
    let accepted = panic::catch_unwind(AssertUnwindSafe(|| {
        let incoming = transport.establish(&socket, until).map_err(|e| {
            // Not MQTT yet: nothing to answer, and nothing the client did to anyone else.
            let to = socket
                .local_addr()
                .map_or_else(String::new, |a| format!(" to {a}"));
            log::info!("connection from {peer}{to} ({transport:?}) closed: {e}");
            None
        })?;
        accept(&socket, incoming, until, connection, &peer, &broker, slot).map_err(Some)
    }))
    .unwrap_or_else(|payload| {
        broker.sessions().release_connection(connection);
        Err(Some(Refusal::Close(CloseReason::Panicked(panic_message(
            &payload,
        )))))
    });
    if let Err(refusal) = accepted {
        if let Some(refusal) = refusal {
            refuse(&socket, &peer, refusal, &broker);
        }
        socket.shutdown();
        broker.untrack_connection(connection);
    }
}

fn accept(
    socket: &Socket,
    incoming: Incoming,
    until: Instant,
    connection: ConnectionId,
    peer: &str,
    broker: &Arc<Broker>,
    slot: ListenerSlot,
) -> Result<(), Refusal> {
    // The input buffer may hold bytes the client sent after its CONNECT (clients need not wait
    // for CONNACK, §3.1.4); it is handed to the reader thread so none of them is lost.
    let mut input = Input::new(incoming);
    let mut connect = read_connect(&mut input, socket, until, broker, peer)?;
    check_keep_alive(&connect, broker)?;
    if user_from_certificate(&mut connect, socket.identity())? {
        log::info!(
            "client {:?} from {peer}: user name {:?} taken from its certificate",
            connect.client_id,
            connect.username.as_deref().unwrap_or_default()
        );
    } else {
        authenticate(&connect, broker)?;
    }
    let client_id = assign_client_id(&connect, broker)?;
    // [MQTT-3.1.2-24] from now on, the read timeout is the keepalive timer.
    socket
        .set_read_timeout(keep_alive_timeout(connect.keep_alive))
        .map_err(|e| Refusal::Close(CloseReason::Io(e)))?;
    let Connect {
        protocol,
        keep_alive,
        clean_session,
        ..
    } = connect;
    let mut opened = open_session(broker, connection, socket, Arc::clone(&client_id), connect)?;
    // With persistence, CONNACK waits until a new session is on disk.
    if let Err(failed) = broker.wait_for_disk(opened.handler.take_ticket()) {
        let Opened {
            handler,
            writer_side,
            ..
        } = opened;
        return Err(give_up(
            handler,
            Some(writer_side),
            connection,
            broker,
            failed,
        ));
    }
    let session_present = opened.session_present;
    let started = Started {
        input,
        connection,
        keep_alive,
        slot,
    };
    start_session_threads(started, socket, opened, broker)?;
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
    until: Instant,
    broker: &Broker,
    peer: &str,
) -> Result<Connect, Refusal> {
    let config = &broker.config;
    let mut timed = Deadline {
        input,
        socket,
        until,
    };
    // [MQTT-3.1.0-1] only a CONNECT may come first: anything else is refused on its first
    // byte, without waiting for the body it declares.
    let frame = read_frame_of(&mut timed, PacketType::Connect, config.max_packet_size).map_err(
        |e| match e {
            // §3.1.4: no CONNECT within a reasonable time: close.
            FrameError::Io(e) if is_timeout(&e) => Refusal::Close(CloseReason::Violation {
                rule: "§3.1.4",
                what: format!("no CONNECT within {:?}", config.connect_timeout),
            }),
            other => Refusal::Close(CloseReason::from_frame_error(other, 0)),
        },
    )?;
    trace_frame(peer, &frame);
    count_one(broker, &frame);
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

/// Counts the CONNECT, the one packet the handshake reads, for `$SYS`.
fn count_one(broker: &Broker, frame: &Frame) {
    let mut traffic = Traffic::default();
    traffic.packet(frame.wire_len(), false);
    broker.count_received(traffic);
}

/// Sends the refusal, if it has a CONNACK, and logs why the connection is closed.
fn refuse(socket: &Socket, peer: &str, refusal: Refusal, broker: &Broker) {
    match refusal {
        Refusal::Close(reason) => reason.log(peer),
        Refusal::Connack { code, rule, what } => {
            send_connack(socket, peer, code, broker);
            // 0x03 comes in floods (the machine is out of threads for a whole burst): one
            // line a second for those; the other codes are each about one client.
            static UNAVAILABLE: Throttle = Throttle::new();
            let held_back = match code {
                ConnectReturnCode::ServerUnavailable => UNAVAILABLE.admit(Instant::now()),
                _ => Some(0),
            };
            if let Some(held_back) = held_back {
                log::warn!(
                    "client {peer:?} refused with {:#04x} ({}): {rule} {what}{}",
                    code as u8,
                    code.describe(),
                    throttle::held_back(held_back)
                );
            }
        }
        Refusal::NotAuthorized {
            client_id,
            username,
            why,
        } => {
            send_connack(socket, peer, ConnectReturnCode::NotAuthorized, broker);
            log::info!(
                "client {client_id:?} (user {:?}) from {peer} refused with 0x05 (not authorized): {why}",
                username.unwrap_or_default()
            );
        }
    }
}

/// Sends a CONNACK with a non-zero `code`; the caller then closes the connection.
fn send_connack(socket: &Socket, peer: &str, code: ConnectReturnCode, broker: &Broker) {
    // [MQTT-3.2.2-4] Session Present is 0 whenever the code is not 0.
    let connack = Packet::Connack(Connack {
        session_present: false,
        code,
    });
    log_sent(peer, &connack);
    let bytes = connack.to_bytes();
    trace_bytes(peer, "->", &bytes);
    if socket.clone().write_all(&bytes).is_ok() {
        let mut traffic = Traffic::default();
        traffic.packet(bytes.len(), false);
        broker.count_sent(traffic);
    }
    // [MQTT-3.2.2-5] the connection closes after a non-zero return code; [MQTT-3.1.4-5]
    // nothing the client sent after its CONNECT is processed.
}

/// Starts the threads of an accepted connection: its reader, and its writer only if there
/// is something to send at once (see `writer_slot.rs`).
///
/// The reader thread starts first and waits for its state, so that if it cannot start,
/// nothing has been handed over yet and the client can still be told 0x03: [`give_up`] is
/// the one way back. Then the CONNACK goes out: from a writer thread started with the
/// state moved in, when a resumed session has messages to send again or queued, or
/// otherwise from this thread, the writer staying in its slot. Then the reader gets its
/// state (its teardown runs here if its thread is gone). The states are boxed: on the
/// heap, not the threads' stacks, each idle thread touches two stack pages; unboxed, the
/// writer touched a third, +4 KiB a connection (chapter 09).
fn start_session_threads(
    started: Started,
    socket: &Socket,
    opened: Opened,
    broker: &Arc<Broker>,
) -> Result<(), Refusal> {
    let Started {
        input,
        connection,
        keep_alive,
        slot,
    } = started;
    let Opened {
        handler,
        writer_side,
        session_present,
    } = opened;
    let client_id = Arc::clone(&handler.session.client_id);
    let (hand_over, handed) = crossbeam_channel::bounded::<Box<Reader>>(1);
    if let Err(e) = spawn_named(format!("rx:{client_id}"), move || wait_for_reader(handed)) {
        let e = format!("cannot start a connection thread: {e}");
        return Err(give_up(handler, Some(writer_side), connection, broker, e));
    }
    let outbox = Arc::clone(handler.session.outbox());
    let mut writer = Box::new(Writer::new(
        socket.clone(),
        Arc::clone(&client_id),
        Arc::clone(&outbox),
        Arc::clone(broker),
    ));
    // [MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present says whether a session was resumed.
    // [MQTT-3.1.4-4] the code is 0x00.
    let connack = Packet::Connack(Connack {
        session_present,
        code: ConnectReturnCode::Accepted,
    });
    let send_at_once =
        writer_side.outbound.awaits_acknowledgement() || Writer::has_deliveries(&writer_side);
    let writer = if send_at_once {
        // From here on the session counts as connected: a QoS 0 message routed before the
        // writer thread runs must be queued, not skipped as if the client were away.
        outbox.set_connected(true);
        match start_thread(&client_id, writer, writer_side, Start::Connack(connack)) {
            Ok(started) => Arc::new(WriterSlot::running(client_id, socket.clone(), started)),
            // Dropping `hand_over` on the way out lets the waiting reader thread end.
            Err(not_started) => {
                let (_, writer_side, e) = *not_started;
                // Away again: a stored session keeps QoS 1 and 2 only ([MQTT-3.1.2-5]).
                outbox.set_connected(false);
                let e = format!("cannot start a connection thread: {e}");
                return Err(give_up(handler, Some(writer_side), connection, broker, e));
            }
        }
    } else {
        // Connected from here on, as above; a message queued now waits for the check below.
        outbox.set_connected(true);
        // [MQTT-3.2.0-1] the CONNACK first, before any ring can start a writer thread: a
        // failed write shows up as a closed socket in the reader, which then tears down.
        // Until a writer thread runs, the reader writes, and a client that stops reading
        // must not block it past the keepalive (the reader's read has the same timeout).
        let _ = socket.set_write_timeout(keep_alive_timeout(keep_alive));
        if let Err(e) = writer.send_connack(&connack) {
            log::debug!("client {client_id:?}: write failed: {e}");
        }
        let slot = Arc::new(WriterSlot::waiting(
            client_id,
            socket.clone(),
            writer,
            writer_side,
        ));
        let starter: Weak<dyn StartWriter> = Arc::downgrade(&slot) as Weak<WriterSlot>;
        outbox.set_starter(Some(starter));
        // A message queued before the Outbox could start a writer started none.
        slot.start_if_delivering();
        slot
    };
    let reader = Box::new(Reader {
        input,
        socket: socket.clone(),
        connection,
        keep_alive,
        handler,
        control: None,
        writer,
        broker: Arc::clone(broker),
        traffic: Traffic::default(),
        _slot: slot,
    });
    // The standard library can panic before our code runs (for example when it cannot map
    // the thread's signal stack): then the teardown runs here, so that the writer stops
    // and the session is stored or ended instead of being held for ever.
    if let Err(SendError(reader)) = hand_over.send(reader) {
        reader.teardown(CloseReason::Panicked(
            "the reader thread died while starting".into(),
        ));
    }
    Ok(())
}

/// What the handshake hands on to the reader besides the session: the bytes it has read,
/// and the facts of this connection.
struct Started {
    /// May already hold bytes the client sent after its CONNECT.
    input: Input,
    connection: ConnectionId,
    keep_alive: u16,
    slot: ListenerSlot,
}

/// The body of a reader thread: wait for the `Reader` the handshake hands over, then run.
fn wait_for_reader(handed: Receiver<Box<Reader>>) {
    let received = handed.recv();
    // The channel has done its job: free it now rather than when the connection ends (its
    // state, a few hundred bytes, is allocated up front whatever the slot holds).
    drop(handed);
    if let Ok(reader) = received {
        reader.run();
    }
}

/// The way back when the connection's threads cannot take it: the session is stored
/// (Clean Session 0; only while its writer side is still here) or ended and the Client
/// Identifier given up, as at any other end, and the client is told the server is
/// unavailable.
fn give_up(
    handler: Handler,
    writer_side: Option<WriterSide>,
    connection: ConnectionId,
    broker: &Broker,
    what: impl ToString,
) -> Refusal {
    let client_id = Arc::clone(&handler.session.client_id);
    let kept = handler.close(broker, writer_side);
    broker.release_session(&client_id, connection, kept);
    Refusal::Connack {
        code: ConnectReturnCode::ServerUnavailable,
        rule: "§3.2.2.3",
        what: what.to_string(),
    }
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
