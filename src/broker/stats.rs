//! The broker's counters: what `$SYS/broker/…` publishes and [`Broker::stats`] returns.
//!
//! Every counter is one atomic. Readers and writers do not add to them per packet: a
//! thousand threads adding to one shared number would fight over its cache line millions of
//! times a second. Each keeps a [`Traffic`] of its own and adds it once per batch (the
//! reader when it hands a batch over, the writer when it flushes one).
//!
//! [`Broker::stats`]: super::Broker::stats

use std::sync::atomic::{AtomicU64, Ordering};

/// What one thread has counted since it last reported: packets, their bytes (fixed header
/// included), and how many of the packets were PUBLISH.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    pub packets: u64,
    pub bytes: u64,
    pub publishes: u64,
}

impl Traffic {
    /// Counts one packet of `bytes` bytes.
    pub(crate) fn packet(&mut self, bytes: usize, is_publish: bool) {
        self.packets += 1;
        self.bytes += u64::try_from(bytes).unwrap_or(u64::MAX);
        self.publishes += u64::from(is_publish);
    }

    /// Takes what was counted, leaving zero.
    pub(crate) fn take(&mut self) -> Traffic {
        std::mem::take(self)
    }
}

/// The broker-wide totals of one direction.
#[derive(Debug, Default)]
pub(super) struct Totals {
    packets: AtomicU64,
    bytes: AtomicU64,
    publishes: AtomicU64,
}

impl Totals {
    pub(super) fn add(&self, traffic: Traffic) {
        if traffic == Traffic::default() {
            return;
        }
        self.packets.fetch_add(traffic.packets, Ordering::Relaxed);
        self.bytes.fetch_add(traffic.bytes, Ordering::Relaxed);
        self.publishes
            .fetch_add(traffic.publishes, Ordering::Relaxed);
    }

    fn read(&self) -> Traffic {
        Traffic {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            publishes: self.publishes.load(Ordering::Relaxed),
        }
    }
}

/// The counters. Private to the broker: everyone else reads a [`StatsSnapshot`].
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Packets from clients (every type), written by readers once per batch.
    pub(super) received: Totals,
    /// Packets to clients (every type), written by writers once per flush.
    pub(super) sent: Totals,
    /// Messages dropped because a subscriber's queue was full.
    pub(super) messages_dropped: AtomicU64,
    /// TCP connections accepted, written by the acceptors.
    pub(super) connections: AtomicU64,
    /// Stored sessions ended by `persistent_client_expiration`.
    pub(super) clients_expired: AtomicU64,
}

impl Stats {
    pub(super) fn count_expiry(&self) {
        self.clients_expired.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_drop(&self) {
        self.messages_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> StatsSnapshot {
        let received = self.received.read();
        let sent = self.sent.read();
        StatsSnapshot {
            packets_received: received.packets,
            packets_sent: sent.packets,
            bytes_received: received.bytes,
            bytes_sent: sent.bytes,
            publish_received: received.publishes,
            publish_sent: sent.publishes,
            messages_dropped: self.messages_dropped.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            clients_expired: self.clients_expired.load(Ordering::Relaxed),
        }
    }
}

/// A copy of the counters at one moment. Packet and byte counts are complete up to each
/// thread's last finished batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Packets of every type received from clients (`$SYS/broker/messages/received`).
    pub packets_received: u64,
    /// Packets of every type sent to clients (`$SYS/broker/messages/sent`).
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// PUBLISH packets received (`$SYS/broker/publish/messages/received`).
    pub publish_received: u64,
    /// PUBLISH packets sent, re-sends included (`$SYS/broker/publish/messages/sent`).
    pub publish_sent: u64,
    /// Messages dropped because a subscriber's queue was full
    /// (`$SYS/broker/publish/messages/dropped`).
    pub messages_dropped: u64,
    /// TCP connections accepted since the start.
    pub connections: u64,
    /// Stored sessions ended by `persistent_client_expiration`
    /// (`$SYS/broker/clients/expired`).
    pub clients_expired: u64,
}
