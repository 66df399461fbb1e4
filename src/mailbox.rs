//! The mailbox: what a message is, and how it reaches one session's writer thread.
//!
//! ```text
//!   publisher's reader thread                        subscriber's writer thread
//!   ─────────────────────────                        ──────────────────────────
//!   Outbox::offer(Delivery) ──▶ [ queue of Deliveries ] ──▶ taken while the window has room
//!   Doorbells::add(outbox)
//!   … the rest of the batch …
//!   Doorbells::ring ─────────▶ [ bell: one slot ] ────▶ wakes up, looks at the queue
//! ```
//!
//! A [`Message`] is an Application Message as the broker received it; a [`Delivery`] is
//! that message on its way to one subscriber, at the QoS that subscriber gets. Every
//! session has one [`Outbox`], which outlives the connection for a Clean Session 0 client,
//! and [`Doorbells`] collect the Outboxes a batch of routing fed so that each writer is woken
//! once per batch, not once per message (chapter 09 measures why).
//!
//! The mailbox knows nothing of the broker, the session or the socket: routing (in
//! `broker/routing.rs`) fills it, the writer (in `connection/writer.rs`) empties it.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

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
    /// Its number in the persistence journal, once written there (`src/persistence/`):
    /// the sessions that must get it refer to it by this. `None` in memory-only mode, and
    /// for messages nothing durable needs (QoS 0 to connected clients, `$SYS`).
    pub stored: Option<MessageId>,
}

/// The number of a message written to the persistence journal: never 0, so that an
/// `Option<MessageId>` costs no more than the number.
pub type MessageId = std::num::NonZeroU64;

/// One message on its way to one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
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

/// Whoever can start a session's writer thread when it has none yet: the connection, which
/// starts it only once there is something to deliver (`src/connection/writer_slot.rs`).
/// The mailbox only knows to call it, through [`Outbox::ring`], while no writer runs.
pub(crate) trait StartWriter: Send + Sync {
    fn start_writer(&self);
}

/// What became of a delivery offered to an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
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
pub(crate) struct Outbox {
    client_id: Arc<str>,
    /// The session's id in the persistence journal, when it is written there: routing
    /// records the QoS 1 and 2 messages it queues here, and the writer what it sends.
    on_disk: Option<u64>,
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
    /// Set while the connected client has no writer thread yet: a ring must then start
    /// one, through `starter`. Clear when a writer runs, so a ring costs no lock then.
    writer_waiting: AtomicBool,
    /// The connection that can start the writer; `Weak`, so that an Outbox that outlives
    /// its connection (Clean Session 0) does not keep the connection's state alive.
    starter: Mutex<Option<Weak<dyn StartWriter>>>,
}

impl Outbox {
    /// A new queue of `capacity` messages, and the receiving end for the writer thread.
    pub fn new(
        client_id: Arc<str>,
        capacity: usize,
        on_disk: Option<u64>,
    ) -> (Arc<Outbox>, Receiver<Delivery>) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let (bell, bell_receiver) = crossbeam_channel::bounded(1);
        let outbox = Outbox {
            client_id,
            on_disk,
            sender,
            capacity: capacity.max(1),
            connected: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            bell,
            bell_receiver,
            ring_pending: AtomicBool::new(false),
            writer_waiting: AtomicBool::new(false),
            starter: Mutex::new(None),
        };
        (Arc::new(outbox), receiver)
    }

    #[cfg(test)]
    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    /// The session's id in the persistence journal, if it is written there.
    pub fn on_disk(&self) -> Option<u64> {
        self.on_disk
    }

    /// Puts back a message that was queued when the broker stopped, whatever the limit is
    /// now: it was accepted under the old one, and dropping it would lose it.
    pub fn restore(&self, delivery: Delivery) {
        let _ = self.sender.try_send(delivery);
    }

    /// `max_queued_messages`: the most messages the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Marks whether a writer thread is draining this queue.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Gives the Outbox the connection that starts its writer thread on the first ring
    /// (`None` when the connection ends), and says whether that thread is still to start.
    pub fn set_starter(&self, starter: Option<Weak<dyn StartWriter>>) {
        // The connection first, then the flag that sends rings to it: a ring that sees the
        // flag finds the connection.
        let waiting = starter.is_some();
        if !waiting {
            self.writer_waiting.store(false, Ordering::SeqCst);
        }
        *self.starter.lock() = starter;
        if waiting {
            self.writer_waiting.store(true, Ordering::SeqCst);
            // Paired with the fence in `ring`: either that ring sees the flag, or the
            // caller, looking at the queue after this, sees the message it rang for.
            fence(Ordering::SeqCst);
        }
    }

    /// Says that the writer thread is running (or will never run): rings need not start it.
    pub fn writer_started(&self) {
        self.writer_waiting.store(false, Ordering::Release);
    }

    /// What the writer thread sleeps on: a message here means "look at the queue".
    pub fn bell(&self) -> &Receiver<()> {
        &self.bell_receiver
    }

    /// Queues a delivery without waiting, and without waking the writer: the caller must
    /// hand the Outbox to a [`Doorbells`], as `Broker::publish` does.
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
        // No writer thread yet: this ring starts it (the queue was filled before, so the
        // new thread finds the message). The lock is released before the start. The fence
        // pairs with the one in `set_starter`, for a connection that is just starting.
        fence(Ordering::SeqCst);
        if self.writer_waiting.load(Ordering::SeqCst) {
            let starter = self.starter.lock().as_ref().and_then(Weak::upgrade);
            if let Some(starter) = starter {
                starter.start_writer();
            }
        }
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

    /// Counts one message dropped for this session: here when the queue is full, or by
    /// the writer for a retained message it has no room for.
    pub(crate) fn record_drop(&self) -> Offer {
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
pub(crate) struct Doorbells {
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
