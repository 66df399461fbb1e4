//! What the journal's records add up to: the durable state, as plain data.
//!
//! [`State::apply`] is the meaning of each record. Recovery applies every record of the
//! file to an empty `State`; the journal thread applies every record it writes to its own
//! copy, so that it can write a snapshot (the shortest list of records that builds the
//! same state, [`State::snapshot`]) without asking the broker for anything.
//!
//! A record may name a session or message that is gone (a publisher routed to a session
//! just as it ended, say): it changes nothing then. Messages are counted by reference:
//! each queued copy, each copy in flight and a topic's retained slot hold one, and a
//! message nobody holds any more is forgotten.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::record::{Record, SessionKey};
use crate::codec::{InFlightMap, PacketId, QoS};
use crate::mailbox::{Message, MessageId};

/// Every durable session, message and retained topic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    pub sessions: BTreeMap<SessionKey, StoredSession>,
    messages: BTreeMap<MessageId, Held>,
    /// Topic → its retained message.
    retained: HashMap<Arc<str>, MessageId>,
    /// Client Identifier → its session, so that a new session finds the one it replaces
    /// without a walk through all of them.
    by_client: HashMap<Arc<str>, SessionKey>,
    /// The highest session and message numbers seen, so that new ones never reuse them.
    pub last_session: SessionKey,
    pub last_message: u64,
}

/// A message and the number of places that hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    message: Message,
    holders: usize,
}

/// One Clean Session 0 session, as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: Arc<str>,
    /// The user name its client last connected with.
    pub username: Option<Box<str>>,
    pub subscriptions: BTreeMap<Box<str>, QoS>,
    /// Messages waiting to be sent, oldest first.
    pub queue: VecDeque<Copy>,
    /// Messages sent and not yet acknowledged, by Packet Identifier, and in the order they
    /// were sent.
    pub in_flight: InFlightMap<InFlight>,
    /// QoS 2 ids received and not yet released by PUBREL.
    pub qos2_received: BTreeSet<PacketId>,
}

/// One copy of a message for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    pub message: MessageId,
    /// The QoS this session gets it at.
    pub qos: QoS,
    /// RETAIN on the PUBLISH it goes out as: set only for a retained message sent because
    /// of a new subscription.
    pub retain: bool,
}

/// A copy sent and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub packet_id: PacketId,
    pub copy: Copy,
    /// PUBREC arrived and PUBREL was sent (QoS 2).
    pub pubrel_sent: bool,
}

impl StoredSession {
    fn new(client_id: Arc<str>) -> StoredSession {
        StoredSession {
            client_id,
            username: None,
            subscriptions: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: InFlightMap::default(),
            qos2_received: BTreeSet::new(),
        }
    }
}

impl State {
    /// The message a copy refers to.
    pub fn message(&self, id: MessageId) -> Option<&Message> {
        self.messages.get(&id).map(|held| &held.message)
    }

    /// Every retained message.
    pub fn retained(&self) -> impl Iterator<Item = Message> + '_ {
        self.retained.values().filter_map(|id| {
            let message = self.message(*id)?.clone();
            Some(Message {
                retain: true,
                ..message
            })
        })
    }

    /// How many messages are held, retained or queued or in flight.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// Carries out one record.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::SessionOpened { session, client_id } => {
                // One session per Client Identifier ([MQTT-3.1.2-4]), one per number.
                if let Some(older) = self.by_client.get(client_id).copied() {
                    self.end_session(older);
                }
                self.end_session(*session);
                self.last_session = self.last_session.max(*session);
                let stored = StoredSession::new(Arc::clone(client_id));
                self.sessions.insert(*session, stored);
                self.by_client.insert(Arc::clone(client_id), *session);
            }
            Record::Identified { session, username } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.username.clone_from(username);
                }
            }
            Record::SessionEnded { session } => self.end_session(*session),
            Record::Subscribed {
                session,
                filter,
                qos,
            } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.subscriptions.insert(filter.clone(), *qos);
                }
            }
            Record::Unsubscribed { session, filter } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.subscriptions.remove(filter);
                }
            }
            Record::Message(message) => self.store(message),
            Record::Routed { message, targets } => {
                for (session, qos) in targets {
                    let copy = Copy {
                        message: *message,
                        qos: *qos,
                        retain: false,
                    };
                    self.queue(*session, copy);
                }
            }
            Record::Queued {
                session,
                message,
                qos,
                retain,
            } => {
                let copy = Copy {
                    message: *message,
                    qos: *qos,
                    retain: *retain,
                };
                self.queue(*session, copy);
            }
            Record::Dropped { session, message } => {
                let Some(s) = self.sessions.get_mut(session) else {
                    return;
                };
                let last = s
                    .queue
                    .iter()
                    .rposition(|c| c.message == *message && !c.retain);
                if let Some(copy) = last.and_then(|at| s.queue.remove(at)) {
                    self.release(copy.message);
                }
            }
            Record::Sent {
                session,
                message,
                packet_id,
                qos,
                retain,
            } => self.sent(*session, *message, *packet_id, *qos, *retain),
            Record::PubrelSent { session, packet_id } => {
                let in_flight = self
                    .sessions
                    .get_mut(session)
                    .and_then(|s| s.in_flight.get_mut(*packet_id));
                if let Some(entry) = in_flight {
                    entry.pubrel_sent = true;
                }
            }
            Record::Delivered { session, packet_id } => {
                let Some(s) = self.sessions.get_mut(session) else {
                    return;
                };
                if let Some(entry) = s.in_flight.remove(*packet_id) {
                    self.release(entry.copy.message);
                }
            }
            Record::Qos2Received { session, packet_id } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.qos2_received.insert(*packet_id);
                }
            }
            Record::Qos2Released { session, packet_id } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.qos2_received.remove(packet_id);
                }
            }
        }
    }

    /// Keeps a message's content; with RETAIN, makes it (or, empty, its absence) the
    /// topic's retained message ([MQTT-3.3.1-5], [MQTT-3.3.1-10]).
    fn store(&mut self, message: &Message) {
        let Some(id) = message.stored else {
            return;
        };
        self.last_message = self.last_message.max(id.get());
        if message.retain {
            let old = if message.payload.is_empty() {
                self.retained.remove(&message.topic)
            } else {
                self.retained.insert(Arc::clone(&message.topic), id)
            };
            if let Some(old) = old {
                self.release(old);
            }
            if message.payload.is_empty() {
                return;
            }
        }
        // Whether it is retained is the `retained` map's business: kept here without the
        // flag, so that a snapshot reads back equal.
        let held = Held {
            message: Message {
                retain: false,
                ..message.clone()
            },
            holders: usize::from(message.retain),
        };
        self.messages.insert(id, held);
    }

    fn queue(&mut self, session: SessionKey, copy: Copy) {
        let (Some(s), Some(held)) = (
            self.sessions.get_mut(&session),
            self.messages.get_mut(&copy.message),
        ) else {
            return;
        };
        s.queue.push_back(copy);
        held.holders += 1;
    }

    /// A copy left the queue (or, a retained one sent at once, never entered it) as a
    /// PUBLISH with `packet_id`.
    fn sent(
        &mut self,
        session: SessionKey,
        message: MessageId,
        packet_id: PacketId,
        qos: QoS,
        retain: bool,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let copy = Copy {
            message,
            qos,
            retain,
        };
        let queued = s
            .queue
            .iter()
            .position(|c| c.message == message && c.retain == retain);
        match queued {
            // The queue's hold passes to the copy in flight.
            Some(at) => {
                s.queue.remove(at);
            }
            None => match self.messages.get_mut(&message) {
                Some(held) => held.holders += 1,
                None => return,
            },
        }
        let entry = InFlight {
            packet_id,
            copy,
            pubrel_sent: false,
        };
        let replaced = s.in_flight.insert(packet_id, entry);
        // Never expected (an identifier is not reused while in flight), but if it came, the
        // copy it replaces would never be acknowledged: its hold ends here.
        if let Some(old) = replaced {
            self.release(old.copy.message);
        }
    }

    fn end_session(&mut self, session: SessionKey) {
        if let Some(s) = self.sessions.remove(&session) {
            self.by_client.remove(&s.client_id);
            let copies = s.queue.iter().chain(s.in_flight.values().map(|f| &f.copy));
            for copy in copies {
                self.release(copy.message);
            }
        }
    }

    /// One holder fewer; a message nobody holds is forgotten.
    fn release(&mut self, id: MessageId) {
        if let Some(held) = self.messages.get_mut(&id) {
            held.holders = held.holders.saturating_sub(1);
            if held.holders == 0 {
                self.messages.remove(&id);
            }
        }
    }

    /// Forgets messages that were written but never reached a session (their publisher
    /// routed them to sessions that had just ended).
    pub fn forget_unheld(&mut self) {
        self.messages.retain(|_, held| held.holders > 0);
    }

    /// The shortest list of records that builds this state from nothing: what compaction
    /// writes. Messages first (each once, RETAIN set only on a topic's current retained
    /// message), then each session: opened, subscriptions, QoS 2 ids, what is in flight,
    /// what is queued.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records = Vec::new();
        for (id, held) in &self.messages {
            if held.holders == 0 {
                continue;
            }
            let mut message = held.message.clone();
            message.retain = self.retained.get(&message.topic) == Some(id);
            records.push(Record::Message(message));
        }
        for (&session, s) in &self.sessions {
            records.push(Record::SessionOpened {
                session,
                client_id: Arc::clone(&s.client_id),
            });
            let username = s.username.clone();
            records.push(Record::Identified { session, username });
            for (filter, &qos) in &s.subscriptions {
                let filter = filter.clone();
                records.push(Record::Subscribed {
                    session,
                    filter,
                    qos,
                });
            }
            for &packet_id in &s.qos2_received {
                records.push(Record::Qos2Received { session, packet_id });
            }
            // In flight before queued: a `Sent` finds no queued copy to take, so it cannot
            // take one that should stay queued.
            for (_, f) in s.in_flight.in_order() {
                records.push(Record::Sent {
                    session,
                    message: f.copy.message,
                    packet_id: f.packet_id,
                    qos: f.copy.qos,
                    retain: f.copy.retain,
                });
                if f.pubrel_sent {
                    let packet_id = f.packet_id;
                    records.push(Record::PubrelSent { session, packet_id });
                }
            }
            for c in &s.queue {
                records.push(Record::Queued {
                    session,
                    message: c.message,
                    qos: c.qos,
                    retain: c.retain,
                });
            }
        }
        records
    }
}
