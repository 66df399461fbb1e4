//! The broker's settings, with defaults in the spirit of Mosquitto 2.0 run without a
//! configuration file, and (in `file.rs`) the reading of a Mosquitto configuration file.

mod file;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use file::{load_file, ConfigFileError, Loaded};

/// 1 MiB: see [`Config::max_packet_size`].
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1024 * 1024;

/// The largest `max_inflight_messages`: one message per non-zero Packet Identifier
/// (§2.3.1), so a bigger window could never fill.
pub const MAX_INFLIGHT_MESSAGES: usize = 65_535;

/// One listening socket: Mosquitto's `listener PORT [ADDRESS]` (or `port` and
/// `bind_address` for the default one). Each has its own acceptor thread; clients of every
/// listener share one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub bind: SocketAddr,
    /// Mosquitto's per-listener `max_connections`: `None` for no limit of its own (the
    /// broker-wide [`Config::max_connections`] still applies).
    pub max_connections: Option<usize>,
    /// Mosquitto's `protocol`: MQTT straight on the byte stream, or inside WebSocket frames.
    pub protocol: Protocol,
    /// TLS under whatever `protocol` says (`certfile` and `keyfile` set): `None`, plain TCP.
    pub tls: Option<TlsSettings>,
}

impl Listener {
    /// A plain MQTT listener on `bind`, with no connection limit of its own.
    pub fn new(bind: SocketAddr) -> Listener {
        Listener {
            bind,
            max_connections: None,
            protocol: Protocol::Mqtt,
            tls: None,
        }
    }
}

/// What a listener's clients speak on top of TCP (or TLS): Mosquitto's `protocol` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT's bytes straight on the stream (§4.2).
    Mqtt,
    /// MQTT's bytes inside binary WebSocket frames, after an HTTP upgrade (§6, RFC 6455).
    WebSockets,
}

/// A listener's TLS settings, with Mosquitto's names. Paths are read when the listener
/// starts; a file that cannot be used stops the start, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `certfile`: the server's certificate chain, PEM, the server's own first.
    pub certfile: PathBuf,
    /// `keyfile`: the server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub keyfile: PathBuf,
    /// `cafile`: PEM certificates of the authorities whose client certificates are trusted.
    pub cafile: Option<PathBuf>,
    /// `capath`: a directory of such PEM files.
    pub capath: Option<PathBuf>,
    /// `require_certificate`: a client must present a certificate signed by `cafile` or
    /// `capath`, or the handshake fails.
    pub require_certificate: bool,
    /// `use_identity_as_username`: the client certificate's Common Name is the user name,
    /// for the ACL; the password file is not asked.
    pub use_identity_as_username: bool,
    /// `use_subject_as_username`: the same with the certificate's whole subject.
    pub use_subject_as_username: bool,
    /// `tls_version`: the oldest version offered. `None`: TLS 1.2 and 1.3.
    pub tls_version: Option<TlsVersion>,
}

impl TlsSettings {
    /// TLS with `certfile` and `keyfile` and everything else at Mosquitto's defaults: no
    /// client certificates asked for, TLS 1.2 and 1.3.
    pub fn new(certfile: impl Into<PathBuf>, keyfile: impl Into<PathBuf>) -> TlsSettings {
        TlsSettings {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            cafile: None,
            capath: None,
            require_certificate: false,
            use_identity_as_username: false,
            use_subject_as_username: false,
            tls_version: None,
        }
    }
}

/// Mosquitto's `tls_version` values: the oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `tlsv1.1`: rustls has no TLS 1.1, so this offers what `tlsv1.2` offers (logged).
    V1_1,
    /// `tlsv1.2`: TLS 1.2 and 1.3.
    V1_2,
    /// `tlsv1.3`: TLS 1.3 only.
    V1_3,
}

/// Everything a [`crate::Server`] can be told. `Config::default()` is what `cargo run` uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default one listener on `127.0.0.1:1883`: local only, like Mosquitto
    /// 2.0 without a configuration file, so a learner's broker is not open to the network
    /// by accident.
    pub listeners: Vec<Listener>,
    /// How long a new TCP connection may take to send its CONNECT before it is closed
    /// (§3.1.4: "within a reasonable amount of time"). Default 10 s.
    pub connect_timeout: Duration,
    /// The largest Remaining Length accepted; a bigger packet is refused before its body is
    /// read, and the connection closed. Default 1 MiB: far above what MQTT messages usually
    /// carry, and small enough that a few thousand clients cannot make the broker hold
    /// gigabytes of half-read packets. The protocol itself allows up to 268 435 455 bytes
    /// (Mosquitto's default); raise it with `--max-packet-size` if you need to.
    pub max_packet_size: usize,
    /// How many TCP connections may be open at once, counting those still in the
    /// handshake. Each costs two threads and a file descriptor; beyond the limit, new
    /// connections are accepted and closed at once, with a warning. Default 10 000.
    pub max_connections: usize,
    /// How many messages may wait for one session, whether its client is connected (and
    /// its writer busy) or away (Clean Session 0: QoS 1 and 2 only). When the queue is
    /// full, new messages for that session are dropped and counted: a slow subscriber never
    /// slows down a publisher. QoS 0 messages are dropped first: they are queued only while
    /// the queue is less than half full, so the other half stays for QoS 1 and 2. Default
    /// 1000, like Mosquitto's `max_queued_messages`.
    pub max_queued_messages: usize,
    /// How many QoS 1 and 2 messages may be sent to one client and not yet acknowledged.
    /// Further messages wait in the queue until acknowledgements arrive. Default 20, like
    /// Mosquitto's `max_inflight_messages`. At most 65 535, the number of Packet Identifiers.
    pub max_inflight_messages: usize,
    /// Whether a client may connect without a user name. Default true, as Mosquitto 2.0 in
    /// its local-only mode (no configuration file); a configuration file that sets up a
    /// listener makes it false unless it says `allow_anonymous true` (see `file.rs`).
    pub allow_anonymous: bool,
    /// Mosquitto's `password_file`: users and their hashed passwords. `None`: no users.
    pub password_file: Option<PathBuf>,
    /// Mosquitto's `acl_file`: who may read and write which topics. `None`: everyone may
    /// read and write everything.
    pub acl_file: Option<PathBuf>,
    /// The largest PUBLISH payload accepted, in bytes; a bigger message is acknowledged as
    /// its QoS requires and then dropped, as Mosquitto does. 0 (the default): no limit but
    /// `max_packet_size`.
    pub message_size_limit: usize,
    /// The longest Keep Alive a client may ask for, in seconds; a CONNECT with a longer
    /// one, or with 0 (no keepalive), is refused with 0x02 as Mosquitto documents. 0 (the
    /// default): any Keep Alive is accepted.
    pub max_keepalive: u16,
    /// How often the `$SYS/broker/…` topics are published. Default 10 s, as Mosquitto;
    /// zero turns them off.
    pub sys_interval: Duration,
    /// Mosquitto's `persistent_client_expiration`: a stored session (Clean Session 0) whose
    /// client has been away this long is ended, its subscriptions and queued messages with
    /// it, and the expiry logged. `None` (the default, as in Mosquitto): never.
    pub persistent_client_expiration: Option<Duration>,
    /// Whether a client may connect with an empty Client Identifier (Clean Session 1 only,
    /// [MQTT-3.1.3-6]) and be given one. Default true, as Mosquitto.
    pub allow_zero_length_clientid: bool,
    /// Mosquitto's `persistence`: keep Clean Session 0 sessions, their queued QoS 1 and 2
    /// messages and the retained messages in a journal on disk, so that they survive a
    /// restart or a crash (`src/persistence/`). Default false: everything lives in memory.
    pub persistence: bool,
    /// Mosquitto's `persistence_location`: the directory of the journal, created if missing.
    /// Default: the directory the broker was started in, as Mosquitto.
    pub persistence_location: PathBuf,
    /// Mosquitto's `persistence_file`: the journal's file name in that directory.
    pub persistence_file: String,
    /// Mosquitto's `websockets_headers_size`: the longest HTTP upgrade request a WebSocket
    /// listener reads; a longer one is refused (431) without being held in memory.
    /// Default 4096 bytes (Mosquitto's is 1024, which a browser's cookies can exceed).
    pub websockets_headers_size: usize,
}

/// See [`Config::websockets_headers_size`].
pub const DEFAULT_WEBSOCKETS_HEADERS_SIZE: usize = 4096;

/// The journal's file name unless `persistence_file` says otherwise (Mosquitto's is
/// `mosquitto.db`, a different format: the names differ so that one is not read as the other).
pub const DEFAULT_PERSISTENCE_FILE: &str = "mqttd.journal";

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![Listener::new(SocketAddr::from(([127, 0, 0, 1], 1883)))],
            connect_timeout: Duration::from_secs(10),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_connections: 10_000,
            max_queued_messages: 1000,
            max_inflight_messages: 20,
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            message_size_limit: 0,
            max_keepalive: 0,
            sys_interval: Duration::from_secs(10),
            allow_zero_length_clientid: true,
            persistent_client_expiration: None,
            persistence: false,
            persistence_location: PathBuf::from("."),
            persistence_file: DEFAULT_PERSISTENCE_FILE.to_owned(),
            websockets_headers_size: DEFAULT_WEBSOCKETS_HEADERS_SIZE,
        }
    }
}

impl Config {
    /// The default settings with one listener on `bind` (port 0: the OS picks a free one),
    /// as an embedding program or a test starts a broker.
    pub fn listening_on(bind: SocketAddr) -> Config {
        Config {
            listeners: vec![Listener::new(bind)],
            ..Config::default()
        }
    }
}

/// A setting whose value cannot work, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's name, as Mosquitto's configuration file spells it (the command-line
    /// flag may be shorter: `--max-inflight` sets `max_inflight_messages`).
    pub setting: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks every setting against what the broker can do, so that a bad value is refused
    /// at start-up with its name, not discovered (or silently clamped) later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError {
                setting: "listener",
                problem: "at least one listener is needed".into(),
            });
        }
        let at_least_one = [
            ("max_packet_size", self.max_packet_size),
            ("max_connections", self.max_connections),
            ("max_queued_messages", self.max_queued_messages),
            ("max_inflight_messages", self.max_inflight_messages),
        ];
        for (setting, value) in at_least_one {
            if value == 0 {
                return Err(ConfigError {
                    setting,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if self.max_inflight_messages > MAX_INFLIGHT_MESSAGES {
            return Err(ConfigError {
                setting: "max_inflight_messages",
                problem: format!(
                    "{} is more than the {MAX_INFLIGHT_MESSAGES} Packet Identifiers there are",
                    self.max_inflight_messages
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn impossible_limits_are_refused_by_name() {
        let too_wide = Config {
            max_inflight_messages: MAX_INFLIGHT_MESSAGES + 1,
            ..Config::default()
        };
        assert_eq!(
            too_wide.validate().map_err(|e| e.setting),
            Err("max_inflight_messages")
        );
        let no_queue = Config {
            max_queued_messages: 0,
            ..Config::default()
        };
        assert_eq!(
            no_queue.validate().map_err(|e| e.to_string()),
            Err("max_queued_messages: must be at least 1".to_owned())
        );
    }
}
