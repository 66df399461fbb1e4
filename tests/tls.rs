//! MQTT over TLS from the outside, with certificates made when the tests run
//! (`tests/common/certs.rs`): rumqttc's rustls transport as an independent client, and raw
//! bytes for what a client library would never send (plain MQTT to the TLS port, a
//! handshake that stops half-way). Every listener reaches every other.

#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{make_certs, TestCerts, CLIENT_NAME};
use common::*;
use mqttd::config::{Listener, Protocol, TlsSettings};
use mqttd::{Config, Server};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A directory of fresh test certificates, removed when dropped.
struct Certs {
    dir: PathBuf,
    files: TestCerts,
}

impl Certs {
    fn new(test: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("mqttd-tls-{}-{test}", std::process::id()));
        let files = make_certs(&dir);
        Certs { dir, files }
    }

    /// TLS settings with the server's certificate and nothing else.
    fn server(&self) -> TlsSettings {
        TlsSettings::new(&self.files.server_cert, &self.files.server_key)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A broker with a plain TCP listener (first) and a TLS one (second), or more.
fn start(listeners: Vec<Listener>, config: Config) -> Server {
    start_broker_with(Config {
        listeners,
        sys_interval: Duration::ZERO,
        ..config
    })
}

fn plain() -> Listener {
    Listener::new("127.0.0.1:0".parse().unwrap())
}

fn with_tls(tls: TlsSettings) -> Listener {
    Listener {
        tls: Some(tls),
        ..plain()
    }
}

/// A rustls client configuration that trusts the test CA and, if `client` is given,
/// presents that certificate and key. The ring provider, as the broker's.
fn client_config(ca: &PathBuf, client: Option<(&PathBuf, &PathBuf)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)] // ring has no post-quantum key exchange; the tests need none
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// rumqttc over TLS to `addr` (as `localhost`, the name in the server's certificate).
fn tls_client(addr: SocketAddr, client_id: &str, config: Arc<rustls::ClientConfig>) -> Client {
    Client::connect_with(tls_options(addr, client_id, config))
}

fn tls_options(
    addr: SocketAddr,
    client_id: &str,
    config: Arc<rustls::ClientConfig>,
) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(client_id, "localhost", addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    options
}

/// [MQTT-7.1.1-1] TLS is one more ordered, lossless byte stream: an independent TLS client
/// and a plain TCP client exchange QoS 1 and 2 messages through one broker.
#[test]
fn a_tls_client_and_a_tcp_client_reach_each_other_mqtt_7_1_1_1() {
    let certs = Certs::new("reach");
    let server = start(vec![plain(), with_tls(certs.server())], Config::default());
    let (tcp, tls) = (server.local_addrs()[0], server.local_addrs()[1]);
    let mut secure = tls_client(tls, "secure", client_config(&certs.files.ca_cert, None));
    secure.subscribe("to/secure", QoS::ExactlyOnce);
    let mut device = Client::connect(tcp, "device");
    device.subscribe("to/device", QoS::AtLeastOnce);

    secure.publish("to/device", QoS::ExactlyOnce, b"over tls");
    let got = device.next_message();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("to/device", &b"over tls"[..])
    );
    device.publish("to/secure", QoS::AtLeastOnce, b"over tcp");
    let got = secure.next_message();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("to/secure", &b"over tcp"[..])
    );
}

/// A WebSocket listener with a certificate is wss: rumqttc's WebSocket-over-TLS transport
/// reaches a plain TCP subscriber.
#[cfg(feature = "websockets")]
#[test]
fn a_websocket_listener_with_a_certificate_is_wss() {
    let certs = Certs::new("wss");
    let wss = Listener {
        protocol: Protocol::WebSockets,
        ..with_tls(certs.server())
    };
    let server = start(vec![plain(), wss], Config::default());
    let (tcp, wss) = (server.local_addrs()[0], server.local_addrs()[1]);
    let mut device = Raw::subscribed(tcp, "device", &["from/wss"]);
    let mut options = rumqttc::MqttOptions::new(
        "browser",
        format!("wss://localhost:{}/mqtt", wss.port()),
        wss.port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    let config = client_config(&certs.files.ca_cert, None);
    options.set_transport(rumqttc::Transport::wss_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    let mut browser = Client::connect_with(options);
    browser.publish("from/wss", QoS::AtLeastOnce, b"secure and framed");
    assert_eq!(device.recv_publish().payload, b"secure and framed".to_vec());
}

/// `require_certificate` with `use_identity_as_username`: the certificate's Common Name is
/// the user name, whatever the CONNECT says (its password is not asked for), and the
/// `acl_file` rules for that user apply.
#[test]
fn the_certificate_names_the_user_and_the_acl_applies_to_that_name() {
    let certs = Certs::new("identity");
    let acl = certs.dir.join("acl");
    std::fs::write(
        &acl,
        format!("user {CLIENT_NAME}\ntopic write sensors/{CLIENT_NAME}/#\n\npattern read #\n"),
    )
    .unwrap();
    let mutual = TlsSettings {
        cafile: Some(certs.files.ca_cert.clone()),
        require_certificate: true,
        use_identity_as_username: true,
        ..certs.server()
    };
    let server = start(
        vec![plain(), with_tls(mutual)],
        Config {
            acl_file: Some(acl),
            ..Config::default()
        },
    );
    let (tcp, tls) = (server.local_addrs()[0], server.local_addrs()[1]);
    let mut watcher = Raw::subscribed(tcp, "watcher", &["sensors/#"]);

    let config = client_config(
        &certs.files.ca_cert,
        Some((&certs.files.client_cert, &certs.files.client_key)),
    );
    let mut options = tls_options(tls, "sensor-client", config);
    // Names nobody the broker knows: the certificate decides, not this.
    options.set_credentials("someone-else", "wrong");
    let mut sensor = Client::connect_with(options);
    sensor.publish("sensors/other/t", QoS::AtLeastOnce, b"not mine: dropped");
    sensor.publish(
        &format!("sensors/{CLIENT_NAME}/t"),
        QoS::AtLeastOnce,
        b"21.5",
    );
    let got = watcher.recv_publish();
    assert_eq!(got.topic, format!("sensors/{CLIENT_NAME}/t"));
    assert_eq!(got.payload, b"21.5".to_vec());
}

/// A client certificate from a CA the listener does not trust fails the handshake: no
/// MQTT is spoken, and the broker serves everyone else as before. So does a listener that
/// requires a certificate and gets none.
#[test]
fn a_certificate_from_the_wrong_ca_or_none_fails_the_handshake() {
    let certs = Certs::new("wrong-ca");
    let mutual = TlsSettings {
        cafile: Some(certs.files.ca_cert.clone()),
        require_certificate: true,
        ..certs.server()
    };
    let server = start(vec![plain(), with_tls(mutual)], Config::default());
    let (tcp, tls) = (server.local_addrs()[0], server.local_addrs()[1]);
    let wrong = client_config(
        &certs.files.ca_cert,
        Some((
            &certs.files.wrong_client_cert,
            &certs.files.wrong_client_key,
        )),
    );
    let none = client_config(&certs.files.ca_cert, None);
    for config in [wrong, none] {
        let (client, mut connection) =
            rumqttc::Client::new(tls_options(tls, "intruder", config), 10);
        let first = connection.recv_timeout(PATIENCE).expect("an event");
        assert!(first.is_err(), "the connection must fail: {first:?}");
        drop(client);
    }
    assert_still_serving(tcp);
}

/// Plain MQTT sent to the TLS port is not a TLS handshake: the connection is closed with
/// no MQTT answer, and nothing else is disturbed.
#[test]
fn plain_mqtt_on_the_tls_port_is_closed() {
    let certs = Certs::new("plain-on-tls");
    let server = start(vec![plain(), with_tls(certs.server())], Config::default());
    let (tcp, tls) = (server.local_addrs()[0], server.local_addrs()[1]);
    let mut raw = Raw::tcp(tls);
    raw.send(&connect("confused", 0));
    let answer = raw.closed();
    assert_ne!(answer.first(), Some(&0x20), "no CONNACK: {answer:02x?}");
    assert_still_serving(tcp);
}

/// A client that starts a handshake and stops half-way is closed when the connect timeout
/// runs out ([MQTT-3.1.4-1]'s reasonable time covers the handshake), while others connect.
#[test]
fn a_handshake_that_stalls_is_closed_at_the_connect_timeout() {
    let certs = Certs::new("stall");
    let server = start(
        vec![plain(), with_tls(certs.server())],
        Config {
            connect_timeout: Duration::from_millis(500),
            ..Config::default()
        },
    );
    let (tcp, tls) = (server.local_addrs()[0], server.local_addrs()[1]);
    // The first bytes of a ClientHello record header, then nothing.
    let mut stalled = TcpStream::connect(tls).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_still_serving(tcp);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(
        started.elapsed() < PATIENCE,
        "the stalled handshake was not closed"
    );
    // And a TLS client still gets in after it.
    let config = client_config(&certs.files.ca_cert, None);
    let mut secure = tls_client(tls, "after-the-stall", config);
    secure.subscribe("a/b", QoS::AtMostOnce);
}

/// A listener whose certificate file is missing stops the start, naming the file.
#[test]
fn a_missing_certificate_file_stops_the_start_naming_it() {
    let certs = Certs::new("missing");
    let settings = TlsSettings::new(certs.dir.join("nope.pem"), &certs.files.server_key);
    let error = Server::start(Config {
        listeners: vec![with_tls(settings)],
        ..Config::default()
    })
    .expect_err("refused");
    assert!(error.to_string().contains("nope.pem"), "{error}");
}
