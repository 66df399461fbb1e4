//! Opening one client connection the plain, blocking way, before the measured run starts.
//!
//! Setting up is not what we measure (except in `conns`, which has its own non-blocking
//! version), so it is written the simple way: connect, send CONNECT, wait for CONNACK,
//! send SUBSCRIBE, wait for SUBACK, each with a timeout. Only then is the socket switched
//! to non-blocking mode and handed to mio. Reading with the codec's `read_frame` takes
//! exactly one packet's bytes off the socket, so nothing read ahead is lost in the switch.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mqttd::codec::{read_frame, ConnectReturnCode, FrameError, Packet, QoS, SubscribeReturnCode};

use crate::fail::Fail;
use crate::wire::{self, MAX_PACKET};

/// How long each setup step may take before the run fails.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and, when `subscription` is given, subscribes; returns the blocking socket.
pub fn open_blocking(
    addr: SocketAddr,
    client_id: &str,
    subscription: Option<(&str, QoS)>,
) -> Result<TcpStream, Fail> {
    let what = |step: &str| format!("{client_id}: {step}");
    let mut stream =
        TcpStream::connect_timeout(&addr, SETUP_TIMEOUT).map_err(Fail::io(what("connect")))?;
    // Batching is our job: Nagle's algorithm would hold small acknowledgements back.
    stream
        .set_nodelay(true)
        .map_err(Fail::io(what("set TCP_NODELAY")))?;
    stream
        .set_read_timeout(Some(SETUP_TIMEOUT))
        .map_err(Fail::io(what("set read timeout")))?;
    send(&mut stream, &wire::connect(client_id), client_id)?;
    expect_connack(&mut stream, client_id)?;
    if let Some((filter, qos)) = subscription {
        send(&mut stream, &wire::subscribe(filter, qos), client_id)?;
        expect_suback(&mut stream, client_id, filter, qos)?;
    }
    Ok(stream)
}

/// Like [`open_blocking`], then hands the socket to mio.
pub fn open(
    addr: SocketAddr,
    client_id: &str,
    subscription: Option<(&str, QoS)>,
) -> Result<mio::net::TcpStream, Fail> {
    let stream = open_blocking(addr, client_id, subscription)?;
    stream
        .set_nonblocking(true)
        .map_err(Fail::io(format!("{client_id}: set non-blocking")))?;
    Ok(mio::net::TcpStream::from_std(stream))
}

fn send(stream: &mut TcpStream, packet: &Packet, client_id: &str) -> Result<(), Fail> {
    stream
        .write_all(&packet.to_bytes())
        .map_err(Fail::io(format!(
            "{client_id}: send {}",
            packet.packet_type()
        )))
}

/// Reads one packet with the broker's own frame reader and decoder.
fn receive(stream: &mut TcpStream, client_id: &str, waiting_for: &str) -> Result<Packet, Fail> {
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

fn expect_connack(stream: &mut TcpStream, client_id: &str) -> Result<(), Fail> {
    match receive(stream, client_id, "CONNACK")? {
        Packet::Connack(connack) if connack.code == ConnectReturnCode::Accepted => Ok(()),
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
fn expect_suback(
    stream: &mut TcpStream,
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
