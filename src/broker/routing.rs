//! Routing a PUBLISH: from the topic trie to each matching subscriber's queue.
//!
//! ```text
//!   reader thread of the publisher            writer thread of each subscriber
//!   ─────────────────────────────            ────────────────────────────────
//!   Broker::publish(message, doorbells)
//!     lock trie, collect matches, unlock
//!     one Delivery per session ──offer────▶  Outbox (crossbeam channel, limited length)
//!     note the Outbox in `doorbells`
//!   ... more packets from the same read ...
//!   doorbells.ring() ─────────────────────▶  wakes up once, finds the whole batch
//! ```
//!
//! Queueing and waking are separate on purpose. Waking a sleeping writer costs a system
//! call here and a context switch there, and a writer woken for one message sends one
//! message per `sendto`. So the reader routes every packet it already has in its buffer
//! first, and only then, before it goes back to the socket, rings each writer it fed, once
//! ([`Doorbells`]). With 256 subscribers and 50 messages in one read, that is 256
//! wake-ups instead of 12 800, and each writer sends its 50 messages in one system call.
//!
//! Every topic is an ordered topic ([MQTT-4.6.0-5]): one publisher's messages reach each
//! subscriber's queue in the order they were received, and the queue is first in, first out.
//!
//! The publisher never waits for a subscriber: `try_send` on a full queue fails at once, and
//! the message is dropped *for that subscriber only* and counted. The payload and topic are
//! `Arc`s, so a message to a thousand subscribers is stored once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::{Broker, SessionId};
use crate::codec::QoS;

/// An Application Message as the broker received it (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Arc<str>,
    pub payload: Arc<[u8]>,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
}

/// One message on its way to one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: Message,
    /// min(published QoS, granted QoS) ([MQTT-3.8.4-6]).
    pub qos: QoS,
    /// RETAIN on the outgoing PUBLISH: 1 only for a retained message sent because of a new
    /// subscription ([MQTT-3.3.1-8]), 0 for everything forwarded to an existing one
    /// ([MQTT-3.3.1-9]).
    pub retain: bool,
}

impl Delivery {
    /// A message forwarded to an established subscription granted `granted`.
    pub fn forwarded(message: Message, granted: QoS) -> Delivery {
        // [MQTT-3.8.4-6] never more than the subscription was granted.
        let qos = message.qos.min(granted);
        Delivery {
            message,
            qos,
            retain: false,
        }
    }

    /// A retained message sent to a new subscription granted `granted`.
    pub fn retained(message: Message, granted: QoS) -> Delivery {
        let qos = message.qos.min(granted);
        Delivery {
            message,
            qos,
            retain: true,
        }
    }
}

/// What became of a delivery offered to an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: dropped and counted.
    Dropped,
    /// Not queued, by design: a QoS 0 message for a session whose client is away, or any
    /// message for a session that has just ended.
    Skipped,
}

/// The queue from the broker to one session's writer thread.
///
/// Many reader threads (every publisher) send into it; one writer thread receives. The
/// writer does not sleep on the queue itself but on its *bell*, which publishers ring after
/// a batch (see [`Doorbells`]), so filling the queue wakes nobody. It lives
/// as long as the session, so with Clean Session 0 it keeps filling while the client is
/// away. It is bounded by `max_queued_messages`: what does not fit is dropped and counted.
///
/// The channel itself is crossbeam's *unbounded* (linked-list) flavour, with the limit
/// checked in [`Outbox::offer`]. A bounded crossbeam channel allocates and initialises all
/// its slots up front: 1000 slots of 56 bytes would cost every idle client 56 KiB. The
/// list flavour allocates blocks of 31 slots as messages arrive and frees them as they
/// leave. The price: two publishers checking the length at the same instant may both see
/// room for one message, so the queue can exceed its limit by one message per publisher
/// thread racing at that moment.
#[derive(Debug)]
pub struct Outbox {
    client_id: Arc<str>,
    sender: Sender<Delivery>,
    /// `max_queued_messages`: the most messages the queue holds.
    capacity: usize,
    /// Whether a writer thread is draining the queue. Written by the writer thread when it
    /// starts and ends; read by publishers to leave QoS 0 out while the client is away.
    connected: AtomicBool,
    /// Drops since the writer last reported them. Written by publishers, reset by the writer.
    dropped: AtomicU64,
    /// The bell the writer sleeps on: a channel of one slot, so a ring while one is already
    /// waiting costs nothing and is not lost (the writer has yet to take the waiting one,
    /// and looks at the queue after taking it).
    bell: Sender<()>,
    bell_receiver: Receiver<()>,
    /// Whether some [`Doorbells`] already holds this Outbox, to be rung: so that a batch of
    /// many messages to one subscriber, or many publishers feeding one, ring it once.
    ring_pending: AtomicBool,
}

impl Outbox {
    /// A new queue of `capacity` messages, and the receiving end for the writer thread.
    pub fn new(client_id: Arc<str>, capacity: usize) -> (Arc<Outbox>, Receiver<Delivery>) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let (bell, bell_receiver) = crossbeam_channel::bounded(1);
        let outbox = Outbox {
            client_id,
            sender,
            capacity: capacity.max(1),
            connected: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            bell,
            bell_receiver,
            ring_pending: AtomicBool::new(false),
        };
        (Arc::new(outbox), receiver)
    }

    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    /// `max_queued_messages`: the most messages the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Marks whether a writer thread is draining this queue.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// What the writer thread sleeps on: a message here means "look at the queue".
    pub fn bell(&self) -> &Receiver<()> {
        &self.bell_receiver
    }

    /// Queues a delivery without waiting, and without waking the writer: the caller must
    /// hand the Outbox to a [`Doorbells`], as [`Broker::publish`] does.
    pub fn offer(&self, delivery: Delivery) -> Offer {
        // [MQTT-3.1.2-5] only QoS 1 and 2 messages are kept for a client that is away
        // (queueing QoS 0 would be allowed; like Mosquitto's default, we do not).
        let limit = match delivery.qos {
            QoS::AtMostOnce if !self.connected.load(Ordering::Relaxed) => return Offer::Skipped,
            // QoS 0 goes first when the queue fills: only the first half is open to it.
            QoS::AtMostOnce => self.qos0_limit(),
            QoS::AtLeastOnce | QoS::ExactlyOnce => self.capacity,
        };
        if self.sender.len() >= limit {
            return self.record_drop();
        }
        match self.sender.try_send(delivery) {
            Ok(()) => Offer::Queued,
            // The session ended between the trie lookup and this offer (a Clean Session 1
            // client left): nobody is there to miss the message. (An unbounded channel is
            // never full.)
            Err(_) => Offer::Skipped,
        }
    }

    /// Wakes the writer, if it sleeps, to look at the queue.
    fn ring(&self) {
        // Clear the flag first: a message queued after this point finds it clear and has
        // its publisher ring again, so nothing queued is left without a ring after it.
        // (AcqRel: whatever a publisher queued before setting the flag is visible to us,
        // and so to the writer that takes our ring.)
        self.ring_pending.swap(false, Ordering::AcqRel);
        // Full means a ring is already waiting, which the writer has yet to take; a
        // disconnected bell cannot happen while we hold `self`.
        let _ = self.bell.try_send(());
    }

    /// Claims the job of ringing this Outbox: true for the first caller since the last
    /// ring, who must then ring it (directly or through [`Doorbells`]).
    fn claim_ring(&self) -> bool {
        !self.ring_pending.swap(true, Ordering::AcqRel)
    }

    /// How many messages may be queued before QoS 0 ones are dropped: half the queue.
    fn qos0_limit(&self) -> usize {
        self.capacity.div_ceil(2)
    }

    fn record_drop(&self) -> Offer {
        // Warn once at the start of a run of drops; the writer reports the total.
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!(
                "client {:?}: its queue is full ({} messages, or {} for QoS 0): dropping messages for it",
                self.client_id,
                self.capacity,
                self.qos0_limit()
            );
        }
        Offer::Dropped
    }

    /// Takes the number of drops since the last call (for the writer's summary line).
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// The Outboxes a batch of routing has fed, to be rung once the batch is done.
///
/// A reader keeps one across all the packets of one read from its socket and calls
/// [`Doorbells::ring`] before it reads again. Dropping it rings too, so a Will published
/// during teardown, or a batch cut short by a panic, still wakes the writers it fed.
#[derive(Debug, Default)]
pub struct Doorbells {
    outboxes: Vec<Arc<Outbox>>,
}

impl Doorbells {
    pub fn new() -> Doorbells {
        Doorbells::default()
    }

    /// Remembers to ring `outbox`, unless someone already will.
    pub fn add(&mut self, outbox: Arc<Outbox>) {
        if outbox.claim_ring() {
            self.outboxes.push(outbox);
        }
    }

    /// Rings every Outbox fed since the last ring, once each.
    pub fn ring(&mut self) {
        for outbox in self.outboxes.drain(..) {
            outbox.ring();
        }
    }
}

impl Drop for Doorbells {
    fn drop(&mut self) {
        self.ring();
    }
}

impl Broker {
    /// Delivers `message` to every session with a matching subscription ([MQTT-4.5.0-1]),
    /// after keeping it as the topic's retained message if RETAIN is set. The writers are
    /// not woken yet: the Outboxes fed go into `doorbells`, to be rung after the batch.
    ///
    /// A session with several matching subscriptions gets the message once, at the highest
    /// QoS among them ([MQTT-3.3.5-1]).
    pub fn publish(&self, message: &Message, doorbells: &mut Doorbells) {
        self.stats
            .publishes_received
            .fetch_add(1, Ordering::Relaxed);
        // [MQTT-3.3.1-12] RETAIN=0 leaves the retained messages alone.
        if message.retain {
            self.retained.lock().set(message);
        }
        let mut targets: Vec<(SessionId, QoS, Arc<Outbox>)> = Vec::new();
        {
            let trie = self.subscriptions.lock();
            trie.for_each_match(&message.topic, |session, subscriber| {
                targets.push((*session, subscriber.qos, Arc::clone(&subscriber.outbox)));
            });
        }
        for (granted, outbox) in one_per_session(targets) {
            let delivery = Delivery::forwarded(message.clone(), granted);
            match outbox.offer(delivery) {
                Offer::Queued => doorbells.add(outbox),
                Offer::Dropped => {
                    self.stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Offer::Skipped => {}
            }
        }
    }

    /// Counts a message dropped for `outbox`'s session outside `Outbox::offer` (a retained
    /// message that found the session's deferred queue full).
    pub fn count_drop(&self, outbox: &Outbox) {
        outbox.record_drop();
        self.stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Merges overlapping subscriptions of the same session into one target, keeping the
/// highest granted QoS ([MQTT-3.3.5-1]).
fn one_per_session(
    mut targets: Vec<(SessionId, QoS, Arc<Outbox>)>,
) -> impl Iterator<Item = (QoS, Arc<Outbox>)> {
    targets.sort_unstable_by_key(|(session, qos, _)| (*session, std::cmp::Reverse(*qos)));
    // After sorting, the first entry of each session has its highest QoS.
    targets.dedup_by_key(|(session, _, _)| *session);
    targets.into_iter().map(|(_, qos, outbox)| (qos, outbox))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn message(topic: &str, qos: QoS) -> Message {
        Message {
            topic: topic.into(),
            payload: Arc::from(&b"x"[..]),
            qos,
            retain: false,
        }
    }

    impl Broker {
        /// Publishes and rings at once, as a batch of one.
        fn publish_now(&self, message: &Message) {
            self.publish(message, &mut Doorbells::new());
        }
    }

    /// An Outbox whose client is connected.
    fn connected_outbox(name: &str, capacity: usize) -> (Arc<Outbox>, Receiver<Delivery>) {
        let (outbox, inbox) = Outbox::new(name.into(), capacity);
        outbox.set_connected(true);
        (outbox, inbox)
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_mqtt_3_3_5_1() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("alice", 10);
        broker.subscribe(1, &outbox, "a/b", QoS::AtMostOnce);
        broker.subscribe(1, &outbox, "a/+", QoS::AtMostOnce);
        broker.subscribe(1, &outbox, "#", QoS::AtMostOnce);
        broker.publish_now(&message("a/b", QoS::AtMostOnce));
        assert_eq!(inbox.len(), 1);
    }

    #[test]
    fn routing_queues_without_waking_and_the_batch_rings_each_writer_once() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("s", 10);
        broker.subscribe(1, &outbox, "t", QoS::AtMostOnce);
        let mut doorbells = Doorbells::new();
        for _ in 0..3 {
            broker.publish(&message("t", QoS::AtMostOnce), &mut doorbells);
        }
        assert_eq!(inbox.len(), 3);
        assert!(
            outbox.bell().is_empty(),
            "the writer is not woken per message"
        );
        doorbells.ring();
        assert_eq!(outbox.bell().len(), 1);
        // The next batch rings again; a ring the writer has not taken yet stays one ring.
        broker.publish(&message("t", QoS::AtMostOnce), &mut doorbells);
        doorbells.ring();
        assert_eq!(outbox.bell().len(), 1);
        outbox.bell().try_recv().unwrap();
        broker.publish(&message("t", QoS::AtMostOnce), &mut doorbells);
        drop(doorbells);
        assert_eq!(outbox.bell().len(), 1, "dropping the doorbells rings them");
        assert_eq!(inbox.len(), 5);
    }

    #[test]
    fn one_per_session_keeps_the_highest_qos() {
        let (a, _ra) = Outbox::new("a".into(), 1);
        let (b, _rb) = Outbox::new("b".into(), 1);
        let targets = vec![
            (7, QoS::AtMostOnce, Arc::clone(&a)),
            (3, QoS::AtMostOnce, Arc::clone(&b)),
            (7, QoS::ExactlyOnce, Arc::clone(&a)),
            (7, QoS::AtLeastOnce, Arc::clone(&a)),
        ];
        let merged: Vec<(QoS, Arc<str>)> = one_per_session(targets)
            .map(|(qos, outbox)| (qos, Arc::clone(outbox.client_id())))
            .collect();
        assert_eq!(
            merged,
            [
                (QoS::AtMostOnce, "b".into()),
                (QoS::ExactlyOnce, "a".into())
            ]
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("slow", 4);
        broker.subscribe(1, &outbox, "t", QoS::AtLeastOnce);
        for _ in 0..7 {
            broker.publish_now(&message("t", QoS::AtLeastOnce));
        }
        assert_eq!(inbox.len(), 4);
        assert_eq!(broker.stats().messages_dropped, 3);
        assert_eq!(outbox.take_dropped(), 3);
        assert_eq!(outbox.take_dropped(), 0);
    }

    #[test]
    fn qos0_is_dropped_first_leaving_room_for_qos1_and_2() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("slow", 4);
        broker.subscribe(1, &outbox, "t", QoS::ExactlyOnce);
        // QoS 0 fills only half of the queue ...
        for _ in 0..5 {
            broker.publish_now(&message("t", QoS::AtMostOnce));
        }
        assert_eq!(inbox.len(), 2);
        // ... so QoS 1 still finds room for the other half.
        for _ in 0..3 {
            broker.publish_now(&message("t", QoS::AtLeastOnce));
        }
        assert_eq!(inbox.len(), 4);
        assert_eq!(broker.stats().messages_dropped, 3 + 1);
    }

    #[test]
    fn delivery_qos_is_the_minimum_of_published_and_granted_mqtt_3_8_4_6() {
        let broker = Broker::new(Config::default());
        let (high, high_inbox) = connected_outbox("high", 10);
        let (low, low_inbox) = connected_outbox("low", 10);
        broker.subscribe(1, &high, "t", QoS::ExactlyOnce);
        broker.subscribe(2, &low, "t", QoS::AtMostOnce);
        broker.publish_now(&message("t", QoS::AtLeastOnce));
        assert_eq!(high_inbox.try_recv().unwrap().qos, QoS::AtLeastOnce);
        assert_eq!(low_inbox.try_recv().unwrap().qos, QoS::AtMostOnce);
    }

    #[test]
    fn an_offline_session_queues_qos1_and_2_but_not_qos0_mqtt_3_1_2_5() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = Outbox::new("away".into(), 10);
        broker.subscribe(1, &outbox, "t", QoS::ExactlyOnce);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            broker.publish_now(&message("t", qos));
        }
        let queued: Vec<QoS> = inbox.try_iter().map(|d| d.qos).collect();
        assert_eq!(queued, [QoS::AtLeastOnce, QoS::ExactlyOnce]);
        assert_eq!(broker.stats().messages_dropped, 0);
    }

    #[test]
    fn retain_stores_and_forwards_with_retain_0_mqtt_3_3_1_9() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("s", 10);
        broker.subscribe(1, &outbox, "t", QoS::AtMostOnce);
        let mut retained = message("t", QoS::AtMostOnce);
        retained.retain = true;
        broker.publish_now(&retained);
        assert!(!inbox.try_recv().unwrap().retain);
        assert_eq!(broker.retained_count(), 1);
        // [MQTT-3.3.1-12] a RETAIN=0 message leaves it alone.
        broker.publish_now(&message("t", QoS::AtMostOnce));
        assert_eq!(broker.retained_count(), 1);
    }
}
