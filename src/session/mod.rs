//! Sessions (spec §3.1.2.4, §4.1): the state the broker keeps for one Client Identifier.
//!
//! With Clean Session 1 a session lives exactly as long as the network connection; with
//! Clean Session 0 it outlives it, and the next connection with the same identifier picks it
//! up ([MQTT-3.1.2-4]). It holds:
//!
//! | part                                   | owned while connected by | type                 |
//! |----------------------------------------|--------------------------|----------------------|
//! | subscriptions (in the broker's trie)   | the trie; names here     | `Session::filters`   |
//! | QoS 2 ids received, awaiting PUBREL    | reader thread            | `Session::awaiting_release` |
//! | messages queued for delivery           | the channel              | [`Outbox`] + its receiver |
//! | messages sent, awaiting acknowledgement| writer thread            | [`Outbound`]         |
//!
//! This module is plain data and the rules that act on it alone. It calls nobody: the
//! protocol handler (`src/protocol/`) decides what a packet does and tells the session, and
//! the broker's session store (`src/broker/session_store.rs`) keeps a session while its
//! client is away, its subscriptions still in the trie so that QoS 1 and 2 messages keep
//! queueing ([MQTT-3.1.2-5]).
//!
//! **QoS 2 receiver method.** §4.3.3 allows two ways to receive QoS 2: store the message
//! and pass it on at PUBREL, or store only its Packet Identifier and pass it on at once.
//! mqttd does the second: the message is routed when the PUBLISH arrives, and the
//! identifier alone is kept until PUBREL so that a re-sent PUBLISH is not routed twice. The
//! state is a set of numbers instead of a set of messages, and subscribers get the message
//! one round trip sooner ([`Session::receive_qos2`]).

pub mod outbound;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::codec::PacketId;
use crate::mailbox::{Delivery, Outbox};

pub use outbound::{ClientAck, Outbound, Stage, WrongAck};

/// Identifies one session. A new id for each session, so that the teardown of an old
/// connection can never remove what a newer session of the same client subscribed; the
/// trie files every subscription under it.
pub type SessionId = u64;

/// The reader side of one session: owned by the reader thread alone while the client is
/// connected, by the session store while it is away. It lives at least as long as the
/// connection ([MQTT-4.1.0-2]).
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub client_id: Arc<str>,
    /// Clean Session 1: everything ends with the connection.
    pub clean_session: bool,
    /// This session's queue, given to the trie with every subscription.
    outbox: Arc<Outbox>,
    /// The filters this session holds, so that they can all be removed when it ends.
    filters: HashSet<String>,
    /// QoS 2 Packet Identifiers for which PUBREC was sent and PUBREL has not arrived
    /// ([MQTT-4.3.3-2]). A PUBLISH that reuses one of them is a re-send: acknowledged again,
    /// never routed again.
    awaiting_release: HashSet<PacketId>,
    /// When its client left, for a session kept while it is away (Clean Session 0): set
    /// when the session is stored, read by `persistent_client_expiration`.
    pub away_since: Option<Instant>,
}

/// The parts of a session the writer thread owns while the client is connected.
#[derive(Debug)]
pub struct WriterSide {
    /// The receiving end of the session's [`Outbox`].
    pub deliveries: Receiver<Delivery>,
    pub outbound: Outbound,
}

/// How a new session is kept: how big its queues are (`max_queued_messages` and
/// `max_inflight_messages`), and whether a Clean Session 0 session is written to the
/// persistence journal (`persistence true`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_queued: usize,
    pub max_in_flight: usize,
    pub on_disk: bool,
}

impl Session {
    /// A new, empty session and its writer side ([MQTT-3.1.2-6]: nothing carried over).
    pub fn new(
        id: SessionId,
        client_id: Arc<str>,
        clean_session: bool,
        limits: Limits,
    ) -> (Session, WriterSide) {
        // [MQTT-4.1.0-1] a Clean Session 0 session outlives the connection; with persistence
        // it outlives the broker too, under its id in the journal.
        let on_disk = (limits.on_disk && !clean_session).then_some(id);
        let (outbox, deliveries) = Outbox::new(Arc::clone(&client_id), limits.max_queued, on_disk);
        let session = Session {
            id,
            client_id,
            clean_session,
            outbox,
            filters: HashSet::new(),
            awaiting_release: HashSet::new(),
            away_since: None,
        };
        let writer_side = WriterSide {
            deliveries,
            outbound: Outbound::new(limits.max_in_flight),
        };
        (session, writer_side)
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Its id in the persistence journal, if it is written there (Clean Session 0 with
    /// `persistence true`): every change to it is then recorded before it is acknowledged.
    pub fn on_disk(&self) -> Option<SessionId> {
        self.outbox.on_disk()
    }

    /// A session read back from the journal at start-up, as its client left it: its
    /// filters and the QoS 2 ids that await PUBREL. Its messages go into the writer side
    /// (`Outbound::restore`) and its queue.
    pub fn recovered(
        id: SessionId,
        client_id: Arc<str>,
        limits: Limits,
        filters: impl Iterator<Item = String>,
        awaiting_release: impl Iterator<Item = PacketId>,
    ) -> (Session, WriterSide) {
        let (mut session, writer_side) = Session::new(id, client_id, false, limits);
        session.filters.extend(filters);
        session.awaiting_release.extend(awaiting_release);
        session.away_since = Some(Instant::now());
        (session, writer_side)
    }

    /// The filters this session is subscribed to.
    pub fn filters(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().map(String::as_str)
    }

    /// Records a filter the broker now routes to this session.
    pub fn subscribed(&mut self, filter: String) {
        self.filters.insert(filter);
    }

    /// Records a filter the broker no longer routes to this session.
    pub fn unsubscribed(&mut self, filter: &str) {
        self.filters.remove(filter);
    }

    /// A QoS 2 PUBLISH with Packet Identifier `id` arrived: true if it is new and must be
    /// routed, false if it is a re-send of one awaiting PUBREL ([MQTT-4.3.3-2]).
    pub fn receive_qos2(&mut self, id: PacketId) -> bool {
        self.awaiting_release.insert(id)
    }

    /// PUBREL for `id` arrived: the identifier may name a new message from now on
    /// ([MQTT-4.3.3-2]). False if it was not awaiting release.
    pub fn release(&mut self, id: PacketId) -> bool {
        self.awaiting_release.remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_queued: 10,
        max_in_flight: 2,
        on_disk: false,
    };

    #[test]
    fn a_qos2_id_is_new_once_until_released_mqtt_4_3_3_2() {
        let (mut session, _) = Session::new(1, "s".into(), true, LIMITS);
        assert!(session.receive_qos2(9), "the first PUBLISH is routed");
        assert!(!session.receive_qos2(9), "a re-send before PUBREL is not");
        session.release(9);
        assert!(
            session.receive_qos2(9),
            "after PUBREL the id names a new message"
        );
    }

    #[test]
    fn filters_are_remembered_until_unsubscribed() {
        let (mut session, _) = Session::new(1, "s".into(), false, LIMITS);
        session.subscribed("a/+".into());
        session.subscribed("b".into());
        session.unsubscribed("b");
        assert_eq!(session.filters().collect::<Vec<_>>(), ["a/+"]);
    }
}
