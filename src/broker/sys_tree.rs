//! The `$SYS/broker/…` topics: the broker describing itself, under Mosquitto's names, so
//! that `mosquitto_sub -t '$SYS/#' -v` shows the same tree on both brokers.
//!
//! §4.7.2 reserves topics that start with `$` for the server, and keeps them out of `#` and
//! `+` at the first level ([MQTT-4.7.2-1]): a client must ask for `$SYS/#` to see them.
//! Every `sys_interval` seconds the `sys` thread (started by the server) calls
//! [`SysTree::update`], which publishes, retained at QoS 0, each value that changed since
//! the last time (the first time, all of them), so a new subscriber gets the whole tree at
//! once from the retained messages.
//!
//! | topic under `$SYS/broker/` | value |
//! |----------------------------|-------|
//! | `version`, `uptime`        | `mqttd version 0.1.0`, `N seconds` |
//! | `clients/connected`, `disconnected`, `total`, `maximum`, `expired` | connected clients, stored sessions, their sum, the most connected at once, sessions ended by `persistent_client_expiration` |
//! | `messages/received`, `messages/sent` | packets of every type |
//! | `publish/messages/received`, `sent`, `dropped` | PUBLISH packets; messages dropped for full queues |
//! | `bytes/received`, `bytes/sent` | bytes of those packets |
//! | `subscriptions/count`, `retained messages/count` | as the names say |
//! | `messages/stored`, `store/messages/count`, `store/messages/bytes` | retained messages and their payload bytes (queued messages are not counted: each session holds its own) |
//! | `load/…/1min`, `5min`, `15min` | per-minute rates, averaged as Mosquitto does (below) |
//!
//! **Load averages.** Like Unix's load average: each interval's rate, per minute, pulls the
//! average towards it by a factor that depends on how long the interval was against the
//! window: `load = rate + e^(−interval/window) × (load − rate)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Broker, StatsSnapshot};
use crate::codec::QoS;
use crate::mailbox::{Doorbells, Message};

/// The averaging windows of the load figures, with their topic suffixes.
const WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

/// Reads one counter from a snapshot.
type Counter = fn(&StatsSnapshot) -> u64;

/// The rates that get load averages: their topic under `load/`, and how to read them.
const RATES: [(&str, Counter); 8] = [
    ("messages/received", |s| s.packets_received),
    ("messages/sent", |s| s.packets_sent),
    ("bytes/received", |s| s.bytes_received),
    ("bytes/sent", |s| s.bytes_sent),
    ("publish/received", |s| s.publish_received),
    ("publish/sent", |s| s.publish_sent),
    ("publish/dropped", |s| s.messages_dropped),
    ("connections", |s| s.connections),
];

/// What the `$SYS` publisher remembers between two updates. Owned by the `sys` thread.
#[derive(Debug, Default)]
pub(crate) struct SysTree {
    /// The value last published on each topic, to publish only what changed.
    published: HashMap<String, String>,
    /// The counters and the time of the last update, to turn totals into rates.
    last: Option<(Instant, StatsSnapshot)>,
    /// The load averages, by topic.
    loads: HashMap<String, f64>,
    /// The most clients connected at any update.
    clients_maximum: usize,
}

impl SysTree {
    pub(crate) fn new() -> SysTree {
        SysTree::default()
    }

    /// Publishes every `$SYS` value that changed since the last update (all of them the
    /// first time), retained, at QoS 0.
    pub(crate) fn update(&mut self, broker: &Broker, now: Instant) {
        let mut doorbells = Doorbells::new();
        for (topic, value) in self.values(broker, now) {
            if self.published.get(&topic) == Some(&value) {
                continue;
            }
            let message = Message {
                topic: Arc::from(format!("$SYS/broker/{topic}")),
                payload: Arc::from(value.as_bytes()),
                qos: QoS::AtMostOnce,
                retain: true,
                stored: None,
            };
            broker.publish(&message, &mut doorbells);
            self.published.insert(topic, value);
        }
    }

    /// Every value of the tree now, as (topic under `$SYS/broker/`, text).
    fn values(&mut self, broker: &Broker, now: Instant) -> Vec<(String, String)> {
        let stats = broker.stats();
        let connected = broker.client_count();
        let stored = broker.stored_session_count();
        self.clients_maximum = self.clients_maximum.max(connected);
        let uptime = now.saturating_duration_since(broker.started).as_secs();
        let (retained, retained_bytes) = broker.retained_totals();
        let mut values: Vec<(String, String)> = [
            (
                "version",
                format!("mqttd version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("uptime", format!("{uptime} seconds")),
            ("clients/connected", connected.to_string()),
            ("clients/disconnected", stored.to_string()),
            ("clients/total", (connected + stored).to_string()),
            ("clients/maximum", self.clients_maximum.to_string()),
            ("clients/expired", stats.clients_expired.to_string()),
            ("messages/received", stats.packets_received.to_string()),
            ("messages/sent", stats.packets_sent.to_string()),
            ("messages/stored", retained.to_string()),
            (
                "publish/messages/received",
                stats.publish_received.to_string(),
            ),
            ("publish/messages/sent", stats.publish_sent.to_string()),
            (
                "publish/messages/dropped",
                stats.messages_dropped.to_string(),
            ),
            ("bytes/received", stats.bytes_received.to_string()),
            ("bytes/sent", stats.bytes_sent.to_string()),
            (
                "subscriptions/count",
                broker.subscription_count().to_string(),
            ),
            ("retained messages/count", retained.to_string()),
            ("store/messages/count", retained.to_string()),
            ("store/messages/bytes", retained_bytes.to_string()),
        ]
        .into_iter()
        .map(|(topic, value)| (topic.to_owned(), value))
        .collect();
        values.extend(self.load_values(&stats, now));
        values
    }

    /// The load averages, updated with the rates since the last update. The first update
    /// has no rate yet: every average starts at 0.
    fn load_values(&mut self, stats: &StatsSnapshot, now: Instant) -> Vec<(String, String)> {
        let previous = self.last.replace((now, *stats));
        let elapsed = previous.map(|(then, before)| (now.saturating_duration_since(then), before));
        let mut values = Vec::new();
        for (name, read) in RATES {
            let rate = match elapsed {
                Some((interval, before)) if interval > Duration::ZERO => {
                    let delta = read(stats).saturating_sub(read(&before)) as f64;
                    Some((
                        delta * 60.0 / interval.as_secs_f64(),
                        interval.as_secs_f64(),
                    ))
                }
                _ => None,
            };
            for (suffix, window) in WINDOWS {
                let topic = format!("load/{name}/{suffix}");
                let load = self.loads.entry(topic.clone()).or_insert(0.0);
                if let Some((rate, seconds)) = rate {
                    *load = rate + (-seconds / window).exp() * (*load - rate);
                }
                values.push((topic, format!("{load:.2}")));
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Subscriber;
    use crate::config::Config;
    use crate::mailbox::{Delivery, Outbox};
    use crate::session::SessionId;
    use crossbeam_channel::Receiver;

    /// Subscribes a connected session to `filter` and returns what it receives.
    fn watch(broker: &Broker, session: SessionId, filter: &str) -> Receiver<Delivery> {
        let (outbox, inbox) = Outbox::new("watcher".into(), 1000, None);
        outbox.set_connected(true);
        broker.subscribe(session, filter, Subscriber::new(&outbox, QoS::AtMostOnce));
        inbox
    }

    fn received(inbox: &Receiver<Delivery>) -> HashMap<String, String> {
        inbox
            .try_iter()
            .map(|d| {
                let topic = d
                    .message
                    .topic
                    .trim_start_matches("$SYS/broker/")
                    .to_owned();
                (
                    topic,
                    String::from_utf8_lossy(&d.message.payload).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_first_update_publishes_the_whole_tree_then_only_changes() {
        let broker = Broker::new(Config::default());
        let inbox = watch(&broker, 1, "$SYS/#");
        let mut tree = SysTree::new();
        let start = broker.started;
        tree.update(&broker, start);
        let first = received(&inbox);
        assert_eq!(
            first["version"],
            format!("mqttd version {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(first["uptime"], "0 seconds");
        assert_eq!(first["subscriptions/count"], "1");
        assert_eq!(first["load/messages/received/1min"], "0.00");
        assert_eq!(first.len(), 19 + RATES.len() * WINDOWS.len());
        tree.update(&broker, start + Duration::from_secs(10));
        let second = received(&inbox);
        assert_eq!(second["uptime"], "10 seconds");
        // The tree's own retained messages changed the retained counts; nothing else moved.
        let mut changed: Vec<&str> = second.keys().map(String::as_str).collect();
        changed.sort_unstable();
        assert_eq!(
            changed,
            [
                "messages/stored",
                "retained messages/count",
                "store/messages/bytes",
                "store/messages/count",
                "uptime"
            ]
        );
    }

    #[test]
    fn counters_and_loads_follow_the_traffic() {
        let broker = Broker::new(Config::default());
        let inbox = watch(&broker, 1, "$SYS/broker/#");
        let mut tree = SysTree::new();
        let start = broker.started;
        tree.update(&broker, start);
        received(&inbox);
        // 600 packets of 10 bytes in 60 s, 100 of them PUBLISH: 600 packets a minute.
        let mut traffic = crate::broker::Traffic::default();
        for n in 0..600 {
            traffic.packet(10, n % 6 == 0);
        }
        broker.count_received(traffic);
        tree.update(&broker, start + Duration::from_secs(60));
        let got = received(&inbox);
        assert_eq!(got["messages/received"], "600");
        assert_eq!(got["bytes/received"], "6000");
        assert_eq!(got["publish/messages/received"], "100");
        // One full window at 600 a minute: 600 × (1 − e^−1) = 379.27.
        assert_eq!(got["load/messages/received/1min"], "379.27");
    }
}
