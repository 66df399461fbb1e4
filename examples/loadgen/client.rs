//! Opening one client connection the plain, blocking way, before the measured run starts.
//!
//! Setting up is not what we measure (except in `conns`, which has its own non-blocking
//! version), so it is written the simple way: connect, send CONNECT, wait for CONNACK,
//! send SUBSCRIBE, wait for SUBACK, each with a timeout. Only then is the socket switched
//! to non-blocking mode and handed to mio. Reading with the codec's `read_frame` takes
//! exactly one packet's bytes off the socket, so nothing read ahead is lost in the switch
//! (and whatever a TLS or WebSocket layer read ahead stays in the [`Stream`], which moves
//! to mio whole).
//!
//! The TLS handshake and the WebSocket upgrade, when `--transport` asks for them, come
//! between the TCP connect and the CONNECT ([`Connector::establish`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mqttd::codec::{read_frame, ConnectReturnCode, FrameError, Packet, QoS, SubscribeReturnCode};

use crate::fail::Fail;
use crate::transport::{Connector, MioStream, Stream};
use crate::wire::{self, MAX_PACKET};

/// How long each setup step may take before the run fails.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects with Clean Session 1 and, when `subscription` is given, subscribes; returns
/// the blocking connection.
pub fn open_blocking(
    connector: &Connector,
    client_id: &str,
    subscription: Option<(&str, QoS)>,
) -> Result<Stream<TcpStream>, Fail> {
    let (stream, _) = open_blocking_session(connector, client_id, true, subscription)?;
    Ok(stream)
}

/// Connects with the Clean Session flag given and, when `subscription` is given,
/// subscribes; returns the blocking connection and the CONNACK's Session Present flag.
pub fn open_blocking_session(
    connector: &Connector,
    client_id: &str,
    clean_session: bool,
    subscription: Option<(&str, QoS)>,
) -> Result<(Stream<TcpStream>, bool), Fail> {
    let socket = connect_tcp(connector.addr, client_id)?;
    let mut stream = connector.establish(socket, client_id)?;
    let keep_alive = connector.keep_alive;
    let session_present = handshake(
        &mut stream,
        client_id,
        clean_session,
        keep_alive,
        subscription,
    )?;
    Ok((stream, session_present))
}

/// The TCP connection alone, with TCP_NODELAY and the setup read timeout.
pub fn connect_tcp(addr: SocketAddr, client_id: &str) -> Result<TcpStream, Fail> {
    let what = |step: &str| format!("{client_id}: {step}");
    let stream =
        TcpStream::connect_timeout(&addr, SETUP_TIMEOUT).map_err(Fail::io(what("connect")))?;
    // Batching is our job: Nagle's algorithm would hold small acknowledgements back.
    stream
        .set_nodelay(true)
        .map_err(Fail::io(what("set TCP_NODELAY")))?;
    stream
        .set_read_timeout(Some(SETUP_TIMEOUT))
        .map_err(Fail::io(what("set read timeout")))?;
    Ok(stream)
}

/// CONNECT (with this Keep Alive, in seconds), CONNACK, and SUBSCRIBE, SUBACK if
/// `subscription` is given, on a fresh connection. Returns the CONNACK's Session Present
/// flag.
pub fn handshake<S: Read + Write>(
    stream: &mut S,
    client_id: &str,
    clean_session: bool,
    keep_alive: u16,
    subscription: Option<(&str, QoS)>,
) -> Result<bool, Fail> {
    send(
        stream,
        &wire::connect_session(client_id, clean_session, keep_alive),
        client_id,
    )?;
    let session_present = expect_connack(stream, client_id)?;
    if let Some((filter, qos)) = subscription {
        send(stream, &wire::subscribe(filter, qos), client_id)?;
        expect_suback(stream, client_id, filter, qos)?;
    }
    Ok(session_present)
}

/// Like [`open_blocking`], then hands the connection to mio.
pub fn open(
    connector: &Connector,
    client_id: &str,
    subscription: Option<(&str, QoS)>,
) -> Result<MioStream, Fail> {
    let stream = open_blocking(connector, client_id, subscription)?;
    into_mio(stream, client_id)
}

/// Opens a **persistent** session (Clean Session 0) under `client_id` and hands the socket
/// to mio. Whatever session the broker still keeps under that id (from an earlier run
/// against the same broker, say, with messages queued for it) is discarded first, with
/// a Clean Session 1 connection ([MQTT-3.1.2-6]); the CONNACK of the new session must then
/// say Session Present 0, or the run fails: it would start with someone else's backlog.
pub fn open_persistent(
    connector: &Connector,
    client_id: &str,
    subscription: Option<(&str, QoS)>,
) -> Result<MioStream, Fail> {
    discard_session(connector, client_id)?;
    let (stream, session_present) =
        open_blocking_session(connector, client_id, false, subscription)?;
    if session_present {
        return Err(Fail::Protocol(format!(
            "{client_id}: the broker resumed a session that a Clean Session 1 connection had just discarded"
        )));
    }
    into_mio(stream, client_id)
}

/// Ends whatever session the broker keeps under `client_id`: connects with Clean Session 1
/// (which discards it), says DISCONNECT, and waits until the broker closes the
/// connection, so that the session is gone before the next connection under that id.
pub fn discard_session(connector: &Connector, client_id: &str) -> Result<(), Fail> {
    let stream = open_blocking(connector, client_id, None)?;
    disconnect_and_wait(stream, client_id)
}

/// Says DISCONNECT and waits (up to the read timeout) until the broker closes the
/// connection: once it has, the broker is done with it, and a session with Clean Session
/// 0 is stored, away, before anything else happens.
pub fn disconnect_and_wait<S: Read + Write>(mut stream: S, client_id: &str) -> Result<(), Fail> {
    send(&mut stream, &Packet::Disconnect, client_id)?;
    let mut rest = [0u8; 64];
    loop {
        match stream.read(&mut rest) {
            // The broker closed it, as it must after DISCONNECT; it sends nothing more.
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(Fail::Protocol(format!(
                    "{client_id}: the broker sent something after DISCONNECT"
                )))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Reset, or (through TLS) closed without a close_notify: closed all the same.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(())
            }
            Err(e) => {
                return Err(Fail::io(format!(
                    "{client_id}: waiting for the broker to close after DISCONNECT"
                ))(e))
            }
        }
    }
}

fn into_mio(stream: Stream<TcpStream>, client_id: &str) -> Result<MioStream, Fail> {
    stream
        .into_mio()
        .map_err(Fail::io(format!("{client_id}: set non-blocking")))
}

/// Writes one packet (over a WebSocket: one frame) and flushes it.
pub fn send<W: Write>(stream: &mut W, packet: &Packet, client_id: &str) -> Result<(), Fail> {
    stream
        .write_all(&packet.to_bytes())
        .and_then(|()| stream.flush())
        .map_err(Fail::io(format!(
            "{client_id}: send {}",
            packet.packet_type()
        )))
}

/// Reads one packet with the broker's own frame reader and decoder.
pub fn receive<R: Read>(
    stream: &mut R,
    client_id: &str,
    waiting_for: &str,
) -> Result<Packet, Fail> {
    let frame = read_frame(stream, MAX_PACKET).map_err(|e| match e {
        FrameError::Io(error) => Fail::Io {
            context: format!("{client_id}: waiting for {waiting_for}"),
            error,
        },
        other => Fail::Protocol(format!("{client_id}: waiting for {waiting_for}: {other:?}")),
    })?;
    frame
        .decode()
        .map_err(|e| Fail::Protocol(format!("{client_id}: {e}")))
}

/// Waits for the CONNACK; returns its Session Present flag if the connection is accepted.
fn expect_connack<R: Read>(stream: &mut R, client_id: &str) -> Result<bool, Fail> {
    match receive(stream, client_id, "CONNACK")? {
        Packet::Connack(connack) if connack.code == ConnectReturnCode::Accepted => {
            Ok(connack.session_present)
        }
        Packet::Connack(connack) => Err(Fail::Protocol(format!(
            "{client_id}: connection refused: {}",
            connack.code.describe()
        ))),
        other => Err(Fail::Protocol(format!(
            "{client_id}: expected CONNACK, got {other}"
        ))),
    }
}

/// Waits for the SUBACK and checks that the broker granted the QoS we asked for: a run
/// that claims "QoS 2 both ways" must not quietly measure QoS 1 on the second leg.
fn expect_suback<R: Read>(
    stream: &mut R,
    client_id: &str,
    filter: &str,
    qos: QoS,
) -> Result<(), Fail> {
    match receive(stream, client_id, "SUBACK")? {
        Packet::Suback(suback) => match suback.return_codes.as_slice() {
            [SubscribeReturnCode::Granted(granted)] if *granted == qos => Ok(()),
            codes => Err(Fail::Protocol(format!(
                "{client_id}: subscription to {filter:?} answered with {codes:?}"
            ))),
        },
        other => Err(Fail::Protocol(format!(
            "{client_id}: expected SUBACK, got {other}"
        ))),
    }
}
