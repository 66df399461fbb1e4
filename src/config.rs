//! The broker's settings, with defaults in the spirit of Mosquitto 2.0 run without a
//! configuration file.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// 1 MiB: see [`Config::max_packet_size`].
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1024 * 1024;

/// The largest `max_inflight_messages`: one message per non-zero Packet Identifier
/// (§2.3.1), so a bigger window could never fill.
pub const MAX_INFLIGHT_MESSAGES: usize = 65_535;

/// Everything a [`crate::Server`] can be told. `Config::default()` is what `cargo run` uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:1883`: local only, like Mosquitto 2.0 without a
    /// configuration file, so a learner's broker is not open to the network by accident.
    pub bind: SocketAddr,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 1883)),
            connect_timeout: Duration::from_secs(10),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_connections: 10_000,
            max_queued_messages: 1000,
            max_inflight_messages: 20,
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
