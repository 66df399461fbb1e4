//! `large`: big messages, one at a time, and how long each takes to arrive.
//!
//! MQTT.js in a browser writes a large PUBLISH through its WebSocket stream in several
//! writes, and each write becomes a WebSocket message of its own: the broker has to join
//! the MQTT packet back together from several messages. This scenario does the same on
//! purpose: the packet's bytes are cut into `--parts` pieces (6 by default) and each is
//! one write, so over `ws` or `wss` one binary frame with FIN set, a whole WebSocket
//! message. (Over `tcp` or `tls` the pieces are just six writes of one byte stream.)
//!
//! ```text
//!   publisher (main thread)                  broker                subscriber thread
//!   stamp message k, t0 = now
//!   part 1 … part K ────────────────────────▶ one PUBLISH ─────────▶ read_frame returns:
//!                                                                    t1 = now, (k, t1) ──┐
//!   wait for (k, t1) ◀──────────────────────── channel ─────────────────────────────────┘
//!   delivery time = t1 − t0, then message k + 1
//! ```
//!
//! One message at a time, so each time is the broker's handling of one large message and
//! not a queue behind others. QoS 0 on both legs. Blocking sockets and two threads are
//! enough here: nothing is measured at a rate, and the subscriber must be reading while
//! the publisher writes, or a 200 000-byte message could fill the socket buffers.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use mqttd::codec::{read_frame, FrameError, Packet, QoS};

use crate::accounting;
use crate::client;
use crate::fail::Fail;
use crate::flow::Endpoints;
use crate::options::Options;
use crate::transport::Stream;
use crate::wire::{PublishTemplate, Stamp};

/// How long one message may take to arrive before the run fails (and the subscriber's
/// read timeout). Mosquitto 2.0.11 was reported to take about 5 s with six parts.
const MESSAGE_LIMIT: Duration = Duration::from_secs(30);

/// The run's fields: timings in milliseconds.
pub fn run(options: &Options, endpoints: &Endpoints) -> Result<String, Fail> {
    let name = format!("loadgen-{}-large", std::process::id());
    let topic = format!("large/{}", std::process::id());
    let sub_name = format!("{name}-sub");
    let mut subscriber = client::open_blocking(
        &endpoints.subscribers,
        &sub_name,
        Some((&topic, QoS::AtMostOnce)),
    )?;
    let socket = subscriber.socket_mut();
    socket
        .set_read_timeout(Some(MESSAGE_LIMIT))
        .map_err(Fail::io("set read timeout"))?;
    // A second handle on the subscriber's socket: if publishing fails, shutting it down
    // wakes the subscriber thread from its read.
    let stopper = socket.try_clone().map_err(Fail::io("clone a socket"))?;
    let pub_name = format!("{name}-pub");
    let mut publisher = client::open_blocking(&endpoints.publishers, &pub_name, None)?;
    let template = PublishTemplate::new(&topic, QoS::AtMostOnce, options.payload);
    let (arrivals, arrived) = mpsc::channel();
    let (mut times_ns, packet_len) = thread::scope(|scope| {
        let reader = thread::Builder::new()
            .name("subscriber".into())
            .spawn_scoped(scope, || {
                receive_all(subscriber, &sub_name, options, arrivals)
            })
            .map_err(Fail::io("spawn the subscriber thread"))?;
        let sent = publish_all(&mut publisher, &pub_name, &template, options, &arrived);
        if sent.is_err() {
            let _ = stopper.shutdown(Shutdown::Both);
        }
        let received = reader
            .join()
            .unwrap_or_else(|_| Err(Fail::Panic("the subscriber thread".into())));
        // The publisher's error is the cause; the subscriber's is what it saw of it.
        let sent = sent?;
        received?;
        Ok::<_, Fail>(sent)
    })?;
    client::send(&mut publisher, &Packet::Disconnect, &pub_name)?;
    let _ = publisher.close();
    let p = accounting::percentiles(&mut times_ns)
        .ok_or_else(|| Fail::Protocol("no message was timed".into()))?;
    let min_ms = times_ns.first().map_or(0.0, |&ns| ns as f64 / 1e6);
    Ok(format!(
        "messages={} payload={} packet={packet_len} parts={} p50_ms={:.1} max_ms={:.1} min_ms={min_ms:.1}",
        options.messages,
        options.payload,
        options.parts,
        p.p50 / 1000.0,
        p.max / 1000.0,
    ))
}

/// Sends every message in `--parts` writes and waits for each to arrive before the next.
/// Returns the delivery times in nanoseconds and the packet's size.
fn publish_all(
    publisher: &mut Stream<TcpStream>,
    name: &str,
    template: &PublishTemplate,
    options: &Options,
    arrived: &Receiver<(u32, Instant)>,
) -> Result<(Vec<u64>, usize), Fail> {
    let mut times_ns = Vec::with_capacity(options.messages);
    let mut packet = Vec::new();
    for seq in 0..u32::try_from(options.messages).unwrap_or(u32::MAX) {
        packet.clear();
        let stamp = Stamp {
            publisher: 0,
            seq,
            sent_ns: 0,
        };
        template.append(&mut packet, None, &stamp);
        let sent = Instant::now();
        for part in split(&packet, options.parts) {
            // Over a WebSocket, one write is one binary frame: one WebSocket message.
            publisher
                .write_all(part)
                .map_err(Fail::io(format!("{name}: write part of message {seq}")))?;
        }
        publisher
            .flush()
            .map_err(Fail::io(format!("{name}: flush message {seq}")))?;
        let at = wait_for(arrived, seq)?;
        times_ns.push(u64::try_from(at.duration_since(sent).as_nanos()).unwrap_or(u64::MAX));
    }
    Ok((times_ns, packet.len()))
}

/// `bytes` cut into `parts` pieces whose sizes differ by one byte at most.
fn split(bytes: &[u8], parts: usize) -> impl Iterator<Item = &[u8]> {
    let parts = parts.clamp(1, bytes.len().max(1));
    (0..parts).map(move |i| &bytes[i * bytes.len() / parts..(i + 1) * bytes.len() / parts])
}

fn wait_for(arrived: &Receiver<(u32, Instant)>, seq: u32) -> Result<Instant, Fail> {
    match arrived.recv_timeout(MESSAGE_LIMIT) {
        Ok((got, at)) if got == seq => Ok(at),
        Ok((got, _)) => Err(Fail::Protocol(format!(
            "message {got} arrived while waiting for {seq}"
        ))),
        Err(RecvTimeoutError::Timeout) => Err(Fail::Deadline(format!(
            "message {seq} not delivered after {} s",
            MESSAGE_LIMIT.as_secs()
        ))),
        // The subscriber thread ended: its own error says why.
        Err(RecvTimeoutError::Disconnected) => Err(Fail::Aborted),
    }
}

/// The subscriber thread: reads every message whole, checks it, and reports when it
/// arrived.
fn receive_all(
    mut stream: Stream<TcpStream>,
    name: &str,
    options: &Options,
    arrivals: Sender<(u32, Instant)>,
) -> Result<(), Fail> {
    // Room for the topic and header around the payload.
    let max = options.payload + 1024;
    for expected in 0..u32::try_from(options.messages).unwrap_or(u32::MAX) {
        let frame = read_frame(&mut stream, max).map_err(|e| match e {
            FrameError::Io(error) => Fail::Io {
                context: format!("{name}: waiting for message {expected}"),
                error,
            },
            other => Fail::Protocol(format!("{name}: {other:?}")),
        })?;
        let at = Instant::now();
        let seq = check_message(&frame.decode(), name, options.payload)?;
        if seq != expected {
            return Err(Fail::Protocol(format!(
                "{name}: message {seq} arrived, expected {expected}"
            )));
        }
        if arrivals.send((seq, at)).is_err() {
            return Ok(()); // The publisher gave up; its error is reported.
        }
    }
    client::send(&mut stream, &Packet::Disconnect, name)?;
    let _ = stream.close();
    Ok(())
}

/// A PUBLISH with the whole payload and a stamp: returns its sequence number.
fn check_message(
    packet: &Result<Packet, mqttd::codec::DecodeError>,
    name: &str,
    payload: usize,
) -> Result<u32, Fail> {
    let publish = match packet {
        Ok(Packet::Publish(publish)) => publish,
        Ok(other) => return Err(Fail::Protocol(format!("{name}: unexpected {other}"))),
        Err(e) => return Err(Fail::Protocol(format!("{name}: {e}"))),
    };
    match Stamp::read(&publish.payload) {
        Some(stamp) if publish.payload.len() == payload => Ok(stamp.seq),
        _ => Err(Fail::Protocol(format!(
            "{name}: a message of {} bytes, expected {payload} with a stamp",
            publish.payload.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gives_exactly_the_parts_asked_for_and_every_byte_once() {
        let bytes: Vec<u8> = (0..200_005u32).map(|i| i as u8).collect();
        let parts: Vec<&[u8]> = split(&bytes, 6).collect();
        assert_eq!(parts.len(), 6);
        // 200 005 / 6 = 33 334.2
        assert!(parts.iter().all(|p| p.len() == 33_334 || p.len() == 33_335));
        assert_eq!(parts.concat(), bytes);
        assert_eq!(split(&bytes[..3], 6).count(), 3);
    }
}
