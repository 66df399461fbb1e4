//! Helpers shared by the integration tests: an in-process broker on port 0, a raw-socket
//! client that builds packets by hand (independent of mqttd's codec), and a real MQTT client
//! (`rumqttc`). Every read has a timeout, so a broker bug fails a test instead of hanging it.

#![allow(dead_code)] // each test file uses a different part of this module

/// Certificates for TLS tests, made at test time (a CA, a server, clients).
pub mod certs;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mqttd::{Config, Server};

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Starts a broker on 127.0.0.1 with a port the OS picks, without the `$SYS` tree (whose
/// retained messages would count among a test's own). It stops when dropped.
pub fn start_broker() -> Server {
    start_broker_with(Config {
        sys_interval: Duration::ZERO,
        ..Config::default()
    })
}

/// Starts a broker with `config`, its listeners moved to 127.0.0.1 on ports the OS picks
/// (their own `max_connections` kept).
pub fn start_broker_with(mut config: Config) -> Server {
    for listener in &mut config.listeners {
        listener.bind = "127.0.0.1:0".parse().unwrap();
    }
    Server::start(config).expect("the broker starts on port 0")
}

// ---------------------------------------------------------------------------------------
// Packets built by hand, byte by byte, from the figures of the specification.
// ---------------------------------------------------------------------------------------

/// The Remaining Length encoding of §2.2.3.
pub fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return out;
        }
    }
}

/// A packet from byte 1 and a body.
pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// A UTF-8 string field: two-byte length, then the bytes.
pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A 3.1.1 CONNECT with the given flags byte, Keep Alive and Client Identifier.
pub fn connect_with(flags: u8, keep_alive: u16, client_id: &str) -> Vec<u8> {
    let mut body = string(b"MQTT");
    body.push(4); // Protocol Level
    body.push(flags);
    body.extend(keep_alive.to_be_bytes());
    body.extend(string(client_id.as_bytes()));
    packet(0x10, &body)
}

/// A 3.1.1 CONNECT with Clean Session 1.
pub fn connect(client_id: &str, keep_alive: u16) -> Vec<u8> {
    connect_with(0x02, keep_alive, client_id)
}

/// A 3.1.1 CONNECT with a Will: topic, message, QoS and retain flag, Clean Session 1.
pub fn connect_with_will(
    client_id: &str,
    keep_alive: u16,
    will_topic: &str,
    will_message: &[u8],
    will_qos: u8,
    will_retain: bool,
) -> Vec<u8> {
    let flags = 0x02 | 0x04 | (will_qos << 3) | if will_retain { 0x20 } else { 0 };
    let mut body = string(b"MQTT");
    body.push(4);
    body.push(flags);
    body.extend(keep_alive.to_be_bytes());
    body.extend(string(client_id.as_bytes()));
    body.extend(string(will_topic.as_bytes()));
    body.extend(string(will_message));
    packet(0x10, &body)
}

/// CONNACK with Session Present 0 and return code 0.
pub const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// SUBSCRIBE (byte 1 0x82) with one (filter, requested QoS) pair per entry.
pub fn subscribe(id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    for (filter, qos) in filters {
        body.extend(string(filter.as_bytes()));
        body.push(*qos);
    }
    packet(0x82, &body)
}

/// UNSUBSCRIBE (byte 1 0xA2).
pub fn unsubscribe(id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    for filter in filters {
        body.extend(string(filter.as_bytes()));
    }
    packet(0xA2, &body)
}

/// PUBLISH with the given QoS (0, 1, 2), DUP, and Packet Identifier when QoS > 0.
pub fn publish(topic: &str, payload: &[u8], qos: u8, dup: bool, id: u16) -> Vec<u8> {
    let byte1 = 0x30 | (qos << 1) | if dup { 0x08 } else { 0 };
    let mut body = string(topic.as_bytes());
    if qos > 0 {
        body.extend(id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(byte1, &body)
}

/// The four acknowledgements, for Packet Identifier `id`.
pub fn puback(id: u16) -> [u8; 4] {
    ack(0x40, id)
}
pub fn pubrec(id: u16) -> [u8; 4] {
    ack(0x50, id)
}
pub fn pubrel(id: u16) -> [u8; 4] {
    ack(0x62, id)
}
pub fn pubcomp(id: u16) -> [u8; 4] {
    ack(0x70, id)
}
fn ack(byte1: u8, id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [byte1, 0x02, hi, lo]
}

/// A PUBLISH as received, taken apart by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub id: Option<u16>,
    pub payload: Vec<u8>,
}

/// Parses a whole PUBLISH packet (fixed header included); fails the test if it is not one.
pub fn parse_publish(bytes: &[u8]) -> Received {
    assert_eq!(bytes[0] >> 4, 3, "expected a PUBLISH, got {bytes:02x?}");
    let mut at = 1;
    while bytes[at] & 0x80 != 0 {
        at += 1;
    }
    let body = &bytes[at + 1..];
    let qos = (bytes[0] >> 1) & 0x03;
    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + topic_len].to_vec()).unwrap();
    let mut rest = &body[2 + topic_len..];
    let id = if qos > 0 {
        let id = u16::from_be_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        Some(id)
    } else {
        None
    };
    Received {
        dup: bytes[0] & 0x08 != 0,
        qos,
        retain: bytes[0] & 0x01 != 0,
        topic,
        id,
        payload: rest.to_vec(),
    }
}

pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const PINGRESP: [u8; 2] = [0xD0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

// ---------------------------------------------------------------------------------------
// A raw TCP client.
// ---------------------------------------------------------------------------------------

/// A TCP connection that sends bytes and reads whole packets back, parsing only the fixed
/// header itself.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    /// A bare TCP connection, nothing sent yet.
    pub fn tcp(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("TCP connect to the broker");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        // Tests send many small packets one after the other: without this, Nagle's
        // algorithm and delayed ACKs would add 40 ms waits.
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    /// Connects with Clean Session 1, Keep Alive 0, and checks the CONNACK.
    pub fn connected(addr: SocketAddr, client_id: &str) -> Raw {
        let mut raw = Raw::tcp(addr);
        raw.send(&connect(client_id, 0));
        assert_eq!(raw.recv(), CONNACK_ACCEPTED, "CONNACK for {client_id}");
        raw
    }

    /// Connects with the given Clean Session flag and Keep Alive 0; returns the connection
    /// and the CONNACK's Session Present flag.
    pub fn session(addr: SocketAddr, client_id: &str, clean_session: bool) -> (Raw, bool) {
        let mut raw = Raw::tcp(addr);
        let flags = if clean_session { 0x02 } else { 0x00 };
        raw.send(&connect_with(flags, 0, client_id));
        let connack = raw.recv();
        assert_eq!(
            connack[..2],
            [0x20, 0x02],
            "CONNACK expected, got {connack:02x?}"
        );
        assert_eq!(connack[3], 0x00, "connection refused: {connack:02x?}");
        (raw, connack[2] == 0x01)
    }

    /// Subscribes to one filter at `qos` and checks the SUBACK grants it.
    pub fn subscribe_to(&mut self, filter: &str, qos: u8) {
        self.send(&subscribe(1, &[(filter, qos)]));
        assert_eq!(
            self.recv(),
            [0x90, 0x03, 0x00, 0x01, qos],
            "SUBACK for {filter}"
        );
    }

    /// Reads the next packet and parses it as a PUBLISH.
    pub fn recv_publish(&mut self) -> Received {
        parse_publish(&self.recv())
    }

    /// Connects, subscribes to `filters` at QoS 0, and waits for the SUBACK.
    pub fn subscribed(addr: SocketAddr, client_id: &str, filters: &[&str]) -> Raw {
        let mut raw = Raw::connected(addr, client_id);
        let pairs: Vec<(&str, u8)> = filters.iter().map(|f| (*f, 0)).collect();
        raw.send(&subscribe(1, &pairs));
        let suback = raw.recv();
        assert_eq!(suback[0], 0x90, "SUBACK expected, got {suback:02x?}");
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the broker");
    }

    /// Reads one whole packet (fixed header included); fails if none arrives in time.
    pub fn recv(&mut self) -> Vec<u8> {
        let mut byte1 = [0u8; 1];
        self.stream
            .read_exact(&mut byte1)
            .expect("a packet from the broker");
        let mut out = byte1.to_vec();
        let mut len = 0usize;
        for shift in 0..4 {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).expect("Remaining Length");
            out.push(b[0]);
            len += usize::from(b[0] & 0x7F) << (7 * shift);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("packet body");
        out.extend(body);
        out
    }

    /// Waits until the broker closes the connection and returns every byte it sent before
    /// closing. Fails if the connection is still open after [`PATIENCE`].
    pub fn closed(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + PATIENCE;
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                // A reset is a close too.
                Err(_) => return received,
            }
        }
        panic!("the broker did not close the connection; it sent {received:02x?}");
    }
}

/// Proves the broker still serves others: a fresh subscriber receives a fresh publisher's
/// message.
pub fn assert_still_serving(addr: SocketAddr) {
    let mut sub = Raw::subscribed(addr, "health-sub", &["health/check"]);
    let mut publisher = Raw::connected(addr, "health-pub");
    publisher.send(&publish("health/check", b"ok", 0, false, 0));
    assert_eq!(sub.recv(), publish("health/check", b"ok", 0, false, 0));
    publisher.send(&DISCONNECT);
    sub.send(&DISCONNECT);
}

// ---------------------------------------------------------------------------------------
// A real MQTT client: rumqttc, driven synchronously.
// ---------------------------------------------------------------------------------------

pub use rumqttc::{Event, Outgoing, Packet as RPacket, QoS};

pub struct Client {
    pub client: rumqttc::Client,
    pub connection: rumqttc::Connection,
}

impl Client {
    /// Connects with Clean Session 1 and waits for the CONNACK.
    pub fn connect(addr: SocketAddr, client_id: &str) -> Client {
        let mut options = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        Client::connect_with(options)
    }

    /// Connects with `options` (a TLS or WebSocket transport, say) and waits for the
    /// CONNACK.
    pub fn connect_with(options: rumqttc::MqttOptions) -> Client {
        let (client, connection) = rumqttc::Client::new(options, 100);
        let mut this = Client { client, connection };
        this.wait_for("CONNACK", |event| match event {
            Event::Incoming(RPacket::ConnAck(ack)) => Some(ack.clone()),
            _ => None,
        });
        this
    }

    /// Polls the connection until `pick` returns something, or fails after [`PATIENCE`].
    pub fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            match self.connection.recv_timeout(left) {
                Ok(Ok(event)) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Ok(Err(e)) => panic!("connection error while waiting for {what}: {e}"),
                Err(e) => panic!("no {what}: {e:?}"),
            }
        }
    }

    /// Subscribes and returns the SUBACK's return codes.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).unwrap();
        self.wait_for("SUBACK", |event| match event {
            Event::Incoming(RPacket::SubAck(ack)) => Some(ack.return_codes.clone()),
            _ => None,
        })
    }

    /// Publishes and waits until the PUBLISH has been written to the socket (QoS 0) or
    /// acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP).
    pub fn publish(&mut self, topic: &str, qos: QoS, payload: &[u8]) {
        self.client
            .publish(topic, qos, false, payload.to_vec())
            .unwrap();
        self.wait_for("the publish to complete", |event| match (qos, event) {
            (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_))) => Some(()),
            (QoS::AtLeastOnce, Event::Incoming(RPacket::PubAck(_))) => Some(()),
            (QoS::ExactlyOnce, Event::Incoming(RPacket::PubComp(_))) => Some(()),
            _ => None,
        });
    }

    /// The next PUBLISH the broker sends to this client.
    pub fn next_message(&mut self) -> rumqttc::Publish {
        self.wait_for("a PUBLISH", |event| match event {
            Event::Incoming(RPacket::Publish(p)) => Some(p.clone()),
            _ => None,
        })
    }
}
