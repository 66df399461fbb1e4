//! The broker's side of persistence: handing records to the journal, waiting for them to
//! be on disk, and putting the state read back from the journal in place at start-up.
//!
//! The journal itself (`src/persistence/`) knows records and files, nothing of sessions or
//! tries. Here a recovered session becomes a stored [`Session`] again, its subscriptions go
//! back into the trie and its messages back into its queue and in-flight window, exactly
//! as if its client had just disconnected. Without `persistence true` there is no journal,
//! every `record` is a no-op that returns `Ticket::NONE`, and nothing waits.

use std::sync::Arc;

use super::{Broker, Identity, StoredSession, Subscriber};
use crate::mailbox::{Delivery, Message};
use crate::persistence::{Batch, Durable, Journal, JournalFailed, Record, State, Ticket};
use crate::session::{Limits, Session, Stage};

impl Broker {
    /// Starts recording into `journal`, once the state it held has been restored.
    pub(crate) fn set_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// The journal, with `persistence true`.
    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Hands a record to the journal; the ticket says when it is on disk.
    pub(crate) fn record(&self, record: Record) -> Ticket {
        match &self.journal {
            Some(journal) => journal.append(record),
            None => Ticket::NONE,
        }
    }

    /// Hands a connection writer's batch of records to the journal; returns what to wait
    /// for before its packets go out, if anything.
    pub(crate) fn record_batch(&self, batch: &mut Batch) -> Option<(Ticket, Durable)> {
        self.journal.as_ref()?.append_batch(batch)
    }

    /// Waits until everything up to `ticket` is on disk: called before sending the
    /// acknowledgement that promises it.
    pub(crate) fn wait_for_disk(&self, ticket: Ticket) -> Result<(), JournalFailed> {
        match &self.journal {
            Some(journal) => journal.wait(ticket),
            None => Ok(()),
        }
    }

    /// Waits until everything up to `ticket` is as durable as `durable` says.
    pub(crate) fn wait_for_journal(
        &self,
        ticket: Ticket,
        durable: Durable,
    ) -> Result<(), JournalFailed> {
        match &self.journal {
            Some(journal) => journal.wait_until(ticket, durable),
            None => Ok(()),
        }
    }

    /// Records that a session kept on disk has ended (Clean Session 1 discarded it, it
    /// expired, or it could not be kept).
    pub(crate) fn record_session_end(&self, session: &Session) -> Ticket {
        match session.on_disk() {
            Some(session) => self.record(Record::SessionEnded { session }),
            None => Ticket::NONE,
        }
    }

    /// How many connections are waiting for their records to reach the disk (0 without
    /// persistence): a test's way to see an acknowledgement held back.
    pub fn journal_waiting(&self) -> u64 {
        self.journal.as_ref().map_or(0, Journal::waiting)
    }

    /// Test-only: holds the journal thread before its next write (true) or lets it go.
    #[cfg(feature = "fault-injection")]
    pub fn hold_journal(&self, held: bool) {
        if let Some(journal) = &self.journal {
            journal.hold(held);
        }
    }

    /// How a new session is kept, from the settings.
    pub(crate) fn session_limits(&self) -> Limits {
        Limits {
            max_queued: self.config.max_queued_messages,
            max_in_flight: self.config.max_inflight_messages,
            on_disk: self.config.persistence,
        }
    }

    /// Puts what the journal held back in place: every session stored as its client left
    /// it, its subscriptions in the trie, and every retained message. Called at start-up,
    /// before any client connects and before the `acl_file` is read (reading it then works
    /// out each restored subscription's rules, as a reload does).
    pub(crate) fn restore(&self, state: &State) {
        let mut retained = 0;
        for message in state.retained() {
            self.retained.lock().set(&message);
            retained += 1;
        }
        self.sessions.skip_session_ids(state.last_session);
        let (mut queued, mut in_flight) = (0, 0);
        for (&id, stored) in &state.sessions {
            let copy = |message: &Message, qos, retain| Delivery {
                message: message.clone(),
                qos,
                retain,
            };
            let filters = stored.subscriptions.keys().map(|f| f.to_string());
            let client_id = Arc::clone(&stored.client_id);
            let limits = self.session_limits();
            let awaiting = stored.qos2_received.iter().copied();
            let (session, mut writer_side) =
                Session::recovered(id, client_id, limits, filters, awaiting);
            for (_, entry) in stored.in_flight.in_order() {
                let c = entry.copy;
                if let Some(message) = state.message(c.message) {
                    let stage = match entry.pubrel_sent {
                        true => Stage::Released,
                        false => Stage::Published,
                    };
                    let delivery = copy(message, c.qos, c.retain);
                    writer_side
                        .outbound
                        .restore(entry.packet_id, delivery, stage);
                    in_flight += 1;
                }
            }
            for c in &stored.queue {
                if let Some(message) = state.message(c.message) {
                    let delivery = copy(message, c.qos, c.retain);
                    // A retained message for a new subscription waited in the writer's
                    // deferred list, ahead of the queue; everything else in the queue.
                    match c.retain {
                        true => writer_side.outbound.defer(delivery),
                        false => session.outbox().restore(delivery),
                    }
                    queued += 1;
                }
            }
            let owner = Arc::new(Identity {
                client_id: Arc::clone(&stored.client_id),
                username: stored.username.clone(),
            });
            let mut trie = self.subscriptions.lock();
            for (filter, &qos) in &stored.subscriptions {
                let subscriber = Subscriber {
                    qos,
                    outbox: Arc::clone(session.outbox()),
                    reading: None,
                    owner: Arc::clone(&owner),
                };
                trie.insert(filter, id, subscriber);
            }
            drop(trie);
            self.sessions.store_recovered(StoredSession {
                session,
                writer_side,
            });
        }
        log::info!(
            "persistence: restored {} sessions ({queued} messages queued, {in_flight} in \
             flight) and {retained} retained messages",
            state.sessions.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Packet, QoS};
    use crate::config::Config;
    use crate::mailbox::MessageId;
    use std::net::{TcpListener, TcpStream};

    fn id(n: u64) -> MessageId {
        MessageId::new(n).unwrap()
    }

    fn message(n: u64, topic: &str, retain: bool) -> Message {
        Message {
            topic: topic.into(),
            payload: Arc::from(format!("m{n}").as_bytes()),
            qos: QoS::ExactlyOnce,
            retain,
            stored: Some(id(n)),
        }
    }

    /// A session `k` that subscribed to `a/#`, got message 1 in flight as id 7 (PUBREL
    /// already sent), has message 2 queued, and awaits PUBREL for its own id 9; and a
    /// retained message on `a/r`.
    fn journal() -> State {
        let records = [
            Record::SessionOpened {
                session: 4,
                client_id: "k".into(),
            },
            Record::Subscribed {
                session: 4,
                filter: "a/#".into(),
                qos: QoS::ExactlyOnce,
            },
            Record::Message(message(1, "a/1", false)),
            Record::Message(message(2, "a/r", true)),
            Record::Routed {
                message: id(1),
                targets: vec![(4, QoS::ExactlyOnce)],
            },
            Record::Routed {
                message: id(2),
                targets: vec![(4, QoS::ExactlyOnce)],
            },
            Record::Sent {
                session: 4,
                message: id(1),
                packet_id: 7,
                qos: QoS::ExactlyOnce,
                retain: false,
            },
            Record::PubrelSent {
                session: 4,
                packet_id: 7,
            },
            Record::Qos2Received {
                session: 4,
                packet_id: 9,
            },
        ];
        let mut state = State::default();
        for record in &records {
            state.apply(record);
        }
        state
    }

    #[test]
    fn a_restored_session_is_stored_as_its_client_left_it_mqtt_4_4_0_1() {
        let config = Config {
            persistence: true,
            ..Config::default()
        };
        let broker = Broker::new(config);
        broker.restore(&journal());
        assert_eq!(broker.stored_session_count(), 1);
        assert_eq!(broker.subscription_count(), 1);
        assert_eq!(broker.retained_count(), 1);
        // New sessions are numbered after the restored one.
        assert!(broker.sessions().new_session_id() > 4);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let claim = broker
            .sessions()
            .claim(&Arc::from("k"), 1, crate::transport::Socket::new(stream))
            .unwrap();
        let StoredSession {
            mut session,
            writer_side,
        } = claim.previous.expect("the session was stored");
        assert_eq!(session.on_disk(), Some(4));
        // [MQTT-4.3.3-1] past PUBREC, only PUBREL is sent again, under the same id.
        assert_eq!(writer_side.outbound.resend(), [Packet::Pubrel(7)]);
        let queued = writer_side.deliveries.try_recv().unwrap();
        assert_eq!(&*queued.message.topic, "a/r");
        assert_eq!(queued.message.stored, Some(id(2)));
        // [MQTT-4.3.3-2] id 9 still awaits PUBREL: a re-send is not routed again.
        assert!(!session.receive_qos2(9));
    }
}
