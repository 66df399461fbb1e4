//! MQTT over WebSockets (§6, RFC 6455) from the outside: a raw WebSocket client written
//! here byte by byte (its own framing, not mqttd's), and rumqttc's WebSocket transport as an
//! independent client. Every listener reaches every other: a message published over a
//! WebSocket reaches a plain TCP subscriber and the other way round.

#![cfg(feature = "websockets")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use mqttd::config::{Listener, Protocol};
use mqttd::{Config, Server};

/// A broker with a plain TCP listener (first) and a WebSocket listener (second).
fn tcp_and_websocket(config: Config) -> (Server, SocketAddr, SocketAddr) {
    let websocket = Listener {
        protocol: Protocol::WebSockets,
        ..Listener::new("127.0.0.1:0".parse().unwrap())
    };
    let server = start_broker_with(Config {
        listeners: vec![Listener::new("127.0.0.1:0".parse().unwrap()), websocket],
        sys_interval: Duration::ZERO,
        ..config
    });
    let (tcp, ws) = (server.local_addrs()[0], server.local_addrs()[1]);
    (server, tcp, ws)
}

/// The upgrade request MQTT.js sends, with `protocol` offered.
fn upgrade_request(protocol: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
}

/// A raw WebSocket client: frames built and taken apart here, by hand.
struct Ws {
    stream: TcpStream,
    /// Payload bytes of the server's binary frames, not yet taken as packets.
    stream_bytes: Vec<u8>,
    /// Control frames the server sent: (opcode, payload).
    controls: Vec<(u8, Vec<u8>)>,
    /// Varies the masking key from frame to frame.
    frames_sent: u32,
}

impl Ws {
    /// Connects and sends `request`; returns the client and the server's whole HTTP answer.
    fn request(addr: SocketAddr, request: &[u8]) -> (Ws, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut ws = Ws {
            stream,
            stream_bytes: Vec::new(),
            controls: Vec::new(),
            frames_sent: 0,
        };
        ws.stream.write_all(request).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match ws.stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        (ws, String::from_utf8(head).unwrap())
    }

    /// Upgrades with subprotocol `mqtt`, checking the 101 and its accept key.
    fn open(addr: SocketAddr) -> Ws {
        let (ws, answer) = Ws::request(addr, upgrade_request("mqtt").as_bytes());
        assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
        // RFC 6455 §1.3: the key of the request above gives this accept value.
        assert!(
            answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{answer}"
        );
        // [MQTT-6.0.0-4] the subprotocol chosen is "mqtt".
        assert!(
            answer.contains("Sec-WebSocket-Protocol: mqtt\r\n"),
            "{answer}"
        );
        ws
    }

    /// Opens a WebSocket connection and connects as `client_id` (Clean Session 1).
    fn connected(addr: SocketAddr, client_id: &str) -> Ws {
        let mut ws = Ws::open(addr);
        ws.send_binary(&connect(client_id, 0));
        assert_eq!(ws.recv(), CONNACK_ACCEPTED);
        ws
    }

    /// One masked frame with FIN `fin` and `opcode`.
    fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        self.frames_sent += 1;
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        let key = (0x9E37_79B9u32.wrapping_mul(self.frames_sent)).to_be_bytes();
        out.extend(key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let frame = self.frame(fin, opcode, payload);
        self.stream.write_all(&frame).unwrap();
    }

    /// `bytes` as one binary message.
    fn send_binary(&mut self, bytes: &[u8]) {
        self.send_frame(true, 2, bytes);
    }

    /// Reads one frame from the server: binary payloads go to the stream, control frames
    /// to `controls`. False when the server closed the TCP connection.
    fn read_frame(&mut self) -> bool {
        let mut head = [0u8; 2];
        if self.stream.read_exact(&mut head).is_err() {
            return false;
        }
        assert_eq!(
            head[1] & 0x80,
            0,
            "RFC 6455 §5.1: server frames are not masked"
        );
        let len = match head[1] & 0x7F {
            126 => {
                let mut n = [0u8; 2];
                self.stream.read_exact(&mut n).unwrap();
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                self.stream.read_exact(&mut n).unwrap();
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        self.stream.read_exact(&mut payload).unwrap();
        match head[0] & 0x0F {
            2 => {
                // [MQTT-6.0.0-1] the broker sends binary frames only.
                self.stream_bytes.extend(payload)
            }
            opcode if opcode >= 8 => self.controls.push((opcode, payload)),
            opcode => panic!("unexpected frame opcode {opcode}"),
        }
        true
    }

    /// The next MQTT packet from the server's frames, whole.
    fn recv(&mut self) -> Vec<u8> {
        loop {
            if let Some(len) = whole_packet_len(&self.stream_bytes) {
                return self.stream_bytes.drain(..len).collect();
            }
            assert!(self.read_frame(), "the server closed the connection");
        }
    }

    /// Waits for the server to end the connection; returns the control frames it sent.
    fn closed(&mut self) -> Vec<(u8, Vec<u8>)> {
        let deadline = Instant::now() + PATIENCE;
        while self.read_frame() {
            assert!(Instant::now() < deadline, "the server did not close");
        }
        std::mem::take(&mut self.controls)
    }
}

/// The length of the whole MQTT packet at the start of `bytes`, once it is all there.
fn whole_packet_len(bytes: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for (i, byte) in bytes.iter().enumerate().skip(1).take(4) {
        len += usize::from(byte & 0x7F) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            let total = 1 + i + len;
            return (bytes.len() >= total).then_some(total);
        }
    }
    None
}

/// A close frame's status code.
fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

/// A WebSocket client (upgraded with the subprotocol the broker must answer, "mqtt":
/// [MQTT-6.0.0-4], checked by `Ws::open`) and a plain TCP client publish to each other.
#[test]
fn a_websocket_client_and_a_tcp_client_reach_each_other_mqtt_6_0_0_4() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut browser = Ws::connected(ws, "browser");
    browser.send_binary(&subscribe(1, &[("room/#", 0)]));
    assert_eq!(browser.recv(), [0x90, 0x03, 0x00, 0x01, 0x00]);
    let mut device = Raw::subscribed(tcp, "device", &["lamp/+"]);

    device.send(&publish("room/1", b"from tcp", 0, false, 0));
    assert_eq!(browser.recv(), publish("room/1", b"from tcp", 0, false, 0));
    browser.send_binary(&publish("lamp/1", b"from a browser", 0, false, 0));
    assert_eq!(
        device.recv(),
        publish("lamp/1", b"from a browser", 0, false, 0)
    );
}

/// [MQTT-6.0.0-2] the broker does not expect packets to line up with frames: one packet
/// cut across many frames (and a fragmented message, RFC 6455 §5.4), and many packets in
/// one frame, make the same stream.
#[test]
fn packets_and_frames_need_not_line_up_mqtt_6_0_0_2() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut watcher = Raw::subscribed(tcp, "watcher", &["cut/#"]);
    let mut browser = Ws::open(ws);

    // CONNECT, one byte per message.
    for byte in connect("cutter", 0) {
        browser.send_binary(&[byte]);
    }
    assert_eq!(browser.recv(), CONNACK_ACCEPTED);
    // A PUBLISH as one fragmented message: a first frame, continuations, a last one, with
    // a ping in between (control frames may come between fragments).
    let long = publish("cut/long", &[7u8; 1000], 0, false, 0);
    let parts: Vec<&[u8]> = long.chunks(300).collect();
    browser.send_frame(false, 2, parts[0]);
    browser.send_frame(false, 0, parts[1]);
    browser.send_frame(true, 9, b"between");
    browser.send_frame(false, 0, parts[2]);
    browser.send_frame(true, 0, parts[3]);
    assert_eq!(watcher.recv(), long);
    // Three PUBLISHes and a half in one frame, the rest in the next.
    let mut many = Vec::new();
    for n in 0..4u8 {
        many.extend(publish("cut/many", &[n], 0, false, 0));
    }
    let (first, rest) = many.split_at(many.len() - 3);
    browser.send_binary(first);
    browser.send_binary(rest);
    for n in 0..4u8 {
        assert_eq!(watcher.recv(), publish("cut/many", &[n], 0, false, 0));
    }
    // The ping was answered with its own data (RFC 6455 §5.5.3).
    browser.send_binary(&PINGREQ);
    assert_eq!(browser.recv(), PINGRESP);
    assert_eq!(browser.controls, [(0xA, b"between".to_vec())]);
}

/// [MQTT-6.0.0-1] MQTT travels in binary frames: a text frame closes the connection, with a
/// close frame saying so (1003, data the endpoint cannot accept).
#[test]
fn a_text_frame_closes_the_connection_mqtt_6_0_0_1() {
    let (server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut browser = Ws::connected(ws, "texter");
    browser.send_frame(true, 1, b"hello");
    let controls = browser.closed();
    assert_eq!(controls.len(), 1, "{controls:?}");
    assert_eq!(controls[0].0, 8, "a close frame");
    assert_eq!(close_code(&controls[0].1), 1003);
    assert_still_serving(tcp);
    drop(server);
}

/// RFC 6455 §5.1: a client masks every frame; the broker closes on one that is not, with
/// 1002 (protocol error).
#[test]
fn an_unmasked_frame_closes_the_connection() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut browser = Ws::connected(ws, "unmasked");
    let ping = publish("x", b"y", 0, false, 0);
    let mut frame = vec![0x82, ping.len() as u8];
    frame.extend(&ping);
    browser.stream.write_all(&frame).unwrap();
    let controls = browser.closed();
    assert_eq!(controls.len(), 1, "{controls:?}");
    assert_eq!(close_code(&controls[0].1), 1002);
    assert_still_serving(tcp);
}

/// A close frame from the client is answered with a close frame, and the connection ends
/// as if the client had dropped it: without DISCONNECT, so its Will is published.
#[test]
fn the_close_handshake_ends_the_connection_and_the_will_goes_out() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut watcher = Raw::subscribed(tcp, "watcher", &["will/#"]);
    let mut browser = Ws::open(ws);
    browser.send_binary(&connect_with_will("tab", 0, "will/tab", b"gone", 0, false));
    assert_eq!(browser.recv(), CONNACK_ACCEPTED);
    browser.send_frame(true, 8, &1001u16.to_be_bytes());
    let controls = browser.closed();
    assert_eq!(controls.len(), 1, "{controls:?}");
    assert_eq!(controls[0].0, 8);
    assert_eq!(
        close_code(&controls[0].1),
        1001,
        "the client's code is echoed"
    );
    assert_eq!(watcher.recv(), publish("will/tab", b"gone", 0, false, 0));
}

/// [MQTT-3.1.2-24] pings are not MQTT traffic: a client that only pings is still closed
/// once 1.5 x Keep Alive passes without a packet.
#[test]
fn websocket_pings_do_not_keep_a_silent_client_alive_mqtt_3_1_2_24() {
    let (_server, _tcp, ws) = tcp_and_websocket(Config::default());
    let mut browser = Ws::open(ws);
    browser.send_binary(&connect("pinger", 1));
    assert_eq!(browser.recv(), CONNACK_ACCEPTED);
    browser
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 256];
    loop {
        assert!(
            Instant::now() < deadline,
            "still open after {PATIENCE:?} of pings"
        );
        // Sent faster than the 1.5 s the keepalive allows; a write to a closed connection
        // fails, which ends the test as well as a read of end-of-stream.
        let ping = browser.frame(true, 9, b"still here?");
        if browser.stream.write_all(&ping).is_err() {
            break;
        }
        match browser.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
}

/// What a browser gets for opening the WebSocket URL as a page: 426, and the end. The
/// other refusals of the upgrade: another subprotocol (400), none at all (400), another
/// method (405).
#[test]
fn a_request_that_is_not_an_mqtt_upgrade_gets_a_4xx_and_a_close() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let requests = [
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_owned(),
            "426",
        ),
        (upgrade_request("chat"), "400"),
        (
            upgrade_request("mqtt").replace("Sec-WebSocket-Protocol: mqtt\r\n", ""),
            "400",
        ),
        (upgrade_request("mqtt").replace("GET", "POST"), "405"),
    ];
    for (request, status) in requests {
        let (mut client, answer) = Ws::request(ws, request.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} got {answer:?}"
        );
        let mut rest = Vec::new();
        let _ = client.stream.read_to_end(&mut rest);
        assert!(client.closed().is_empty(), "closed after the answer");
    }
    assert_still_serving(tcp);
}

/// A header block longer than `websockets_headers_size` is refused (431) as soon as the
/// limit is reached, without the broker reading on to its end.
#[test]
fn an_oversized_upgrade_request_is_refused_at_the_limit() {
    let (_server, tcp, ws) = tcp_and_websocket(Config {
        websockets_headers_size: 1024,
        ..Config::default()
    });
    let mut client = TcpStream::connect(ws).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = upgrade_request("mqtt").replace("\r\n\r\n", "\r\n");
    request.push_str(&format!("Cookie: {}\r\n", "a".repeat(2000)));
    // The end of the headers never comes: the answer must not wait for it.
    let _ = client.write_all(request.as_bytes());
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    assert_still_serving(tcp);
}

/// The packet size limit applies to MQTT packets, not to frames: a packet within it passes
/// in many small frames; one beyond it is refused though every frame is small.
#[test]
fn the_packet_size_limit_applies_to_the_mqtt_stream_not_to_frames() {
    let (_server, tcp, ws) = tcp_and_websocket(Config {
        max_packet_size: 1000,
        ..Config::default()
    });
    let mut watcher = Raw::subscribed(tcp, "watcher", &["size/#"]);
    let mut browser = Ws::connected(ws, "sizer");
    let fits = publish("size/ok", &[1u8; 900], 0, false, 0);
    for chunk in fits.chunks(100) {
        browser.send_binary(chunk);
    }
    assert_eq!(watcher.recv(), fits);
    let too_big = publish("size/big", &[2u8; 1500], 0, false, 0);
    for chunk in too_big.chunks(100) {
        let frame = browser.frame(true, 2, chunk);
        if browser.stream.write_all(&frame).is_err() {
            break;
        }
    }
    browser.closed();
    assert_still_serving(tcp);
}

/// A 200 000-byte PUBLISH cut in six WebSocket messages, as MQTT.js sends one, arrives
/// whole.
#[test]
fn a_large_message_in_six_websocket_messages_arrives_whole() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut watcher = Raw::subscribed(tcp, "watcher", &["big"]);
    let mut browser = Ws::connected(ws, "big-sender");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let big = publish("big", &payload, 0, false, 0);
    for part in big.chunks(big.len().div_ceil(6)) {
        browser.send_binary(part);
    }
    assert_eq!(watcher.recv(), big);
}

/// rumqttc's WebSocket transport, an independent client, publishes at QoS 1 and 2 to a
/// plain TCP subscriber and receives from it: [MQTT-7.1.1-1] a WebSocket is one more byte
/// stream, and [MQTT-7.0.0-2] the client needs no extension (it offers none) to get in.
#[test]
fn rumqttc_over_websockets_talks_to_a_tcp_client_mqtt_7_0_0_2() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut options = rumqttc::MqttOptions::new("rumqttc-ws", format!("ws://{ws}/mqtt"), ws.port());
    options.set_transport(rumqttc::Transport::Ws);
    options.set_keep_alive(Duration::from_secs(30));
    let mut browser = Client::connect_with(options);
    assert_eq!(
        browser.subscribe("to/browser", QoS::ExactlyOnce),
        [rumqttc::SubscribeReasonCode::Success(QoS::ExactlyOnce)]
    );
    let mut device = Client::connect(tcp, "device");
    device.subscribe("to/device", QoS::AtLeastOnce);

    browser.publish("to/device", QoS::ExactlyOnce, b"over ws");
    let got = device.next_message();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("to/device", &b"over ws"[..])
    );
    device.publish("to/browser", QoS::AtLeastOnce, b"over tcp");
    let got = browser.next_message();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("to/browser", &b"over tcp"[..])
    );
}

/// When the broker ends a WebSocket connection itself (here a takeover, [MQTT-3.1.4-2]), it
/// says so with a close frame before TCP goes (RFC 6455 §5.5.1), so the client sees a
/// normal closure, not a dropped connection.
#[test]
fn a_connection_the_broker_ends_gets_a_close_frame_first() {
    let (_server, tcp, ws) = tcp_and_websocket(Config::default());
    let mut browser = Ws::connected(ws, "same-id");
    let _taker = Raw::connected(tcp, "same-id");
    let controls = browser.closed();
    assert_eq!(controls.len(), 1, "{controls:?}");
    assert_eq!(controls[0].0, 8, "a close frame");
    assert_eq!(close_code(&controls[0].1), 1000, "normal closure");
}
