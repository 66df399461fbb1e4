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
//! subscriber's queue in the order received, and leave it in that order ([MQTT-4.6.0-6]).
//!
//! The publisher never waits for a subscriber: `try_send` on a full queue fails at once, and
//! the message is dropped *for that subscriber only* and counted. The payload and topic are
//! `Arc`s, so a message to a thousand subscribers is stored once.

use std::sync::Arc;

use super::{Broker, SessionId};
use crate::codec::QoS;
use crate::mailbox::{Delivery, Doorbells, Message, MessageId, Offer, Outbox};
use crate::persistence::{Record, Ticket};

impl Broker {
    /// Delivers `message` to every session with a matching subscription ([MQTT-4.5.0-1]),
    /// after keeping it as the topic's retained message if RETAIN is set. The writers are
    /// not woken yet: the Outboxes fed go into `doorbells`, to be rung after the batch.
    ///
    /// A session with several matching subscriptions gets the message once, at the highest
    /// QoS among them ([MQTT-3.3.5-1]).
    pub(crate) fn publish(&self, message: &Message, doorbells: &mut Doorbells) -> Ticket {
        // With persistence, the message gets its number in the journal before anyone can
        // see it: a writer records what it sends by that number, after this record.
        let numbered;
        let journal = self.journal().filter(|_| !is_sys(&message.topic));
        let message = match journal {
            Some(journal) => {
                numbered = Message {
                    stored: Some(journal.next_message_id()),
                    ..message.clone()
                };
                &numbered
            }
            None => message,
        };
        let mut ticket = Ticket::NONE;
        // Recorded before it is retained: a new subscriber's writer may send it at once.
        if message.retain && message.stored.is_some() {
            ticket = self.record(Record::Message(message.clone()));
        }
        let mut targets: Vec<(SessionId, QoS, Arc<Outbox>)> = Vec::new();
        {
            let trie = self.subscriptions.lock();
            // [MQTT-3.3.1-12] RETAIN=0 leaves the retained messages alone. Stored while the
            // trie is held, so that a subscription added at the same moment either is in
            // the trie now (and gets the message live) or reads a `Cutoff` that includes it.
            if message.retain {
                self.retained.lock().set(message);
            }
            trie.for_each_match(&message.topic, |session, subscriber| {
                // A filter only partly readable for its subscriber: ask its rules.
                if let Some(rules) = &subscriber.reading {
                    if !rules.may_read(&message.topic) {
                        return;
                    }
                }
                targets.push((*session, subscriber.qos, Arc::clone(&subscriber.outbox)));
            });
        }
        one_per_session(&mut targets);
        if let (Some(id), Some(_)) = (message.stored, journal) {
            ticket = ticket.max(self.record_routing(message, id, &targets));
        }
        for (_, granted, outbox) in targets {
            let delivery = Delivery::forwarded(message.clone(), granted);
            let durable = delivery.qos != QoS::AtMostOnce;
            match outbox.offer(delivery) {
                Offer::Queued => {
                    doorbells.add(outbox);
                    continue;
                }
                Offer::Dropped => self.stats.count_drop(),
                Offer::Skipped => {}
            }
            // Not queued after all: the journal, told it was, must be told it was not.
            if let (Some(session), Some(id), true) = (outbox.on_disk(), message.stored, durable) {
                let dropped = Record::Dropped {
                    session,
                    message: id,
                };
                ticket = ticket.max(self.record(dropped));
            }
        }
        ticket
    }

    /// Records the message (unless RETAIN already did) and the sessions on disk it is
    /// queued for, at QoS 1 or 2: one copy of the payload in the journal, however many
    /// sessions get it. Nothing when no session on disk gets it.
    fn record_routing(
        &self,
        message: &Message,
        id: MessageId,
        targets: &[(SessionId, QoS, Arc<Outbox>)],
    ) -> Ticket {
        let on_disk: Vec<(u64, QoS)> = targets
            .iter()
            .filter_map(|(_, granted, outbox)| {
                let qos = message.qos.min(*granted);
                let session = outbox.on_disk()?;
                (qos != QoS::AtMostOnce).then_some((session, qos))
            })
            .collect();
        if on_disk.is_empty() {
            return Ticket::NONE;
        }
        if !message.retain {
            self.record(Record::Message(message.clone()));
        }
        self.record(Record::Routed {
            message: id,
            targets: on_disk,
        })
    }

    /// Counts a message dropped for `outbox`'s session outside `Outbox::offer` (a retained
    /// message that found the session's deferred queue full).
    pub(crate) fn count_drop(&self, outbox: &Outbox) {
        outbox.record_drop();
        self.stats.count_drop();
    }
}

/// Whether `topic` is in the broker's own `$SYS` tree, which is never written to the
/// journal: the `sys` thread publishes it afresh after every start.
fn is_sys(topic: &str) -> bool {
    topic.split('/').next() == Some("$SYS")
}

/// Merges overlapping subscriptions of the same session into one target, keeping the
/// highest granted QoS ([MQTT-3.3.5-1]).
fn one_per_session(targets: &mut Vec<(SessionId, QoS, Arc<Outbox>)>) {
    targets.sort_unstable_by_key(|(session, qos, _)| (*session, std::cmp::Reverse(*qos)));
    // After sorting, the first entry of each session has its highest QoS.
    targets.dedup_by_key(|(session, _, _)| *session);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Subscriber;
    use crate::config::Config;
    use crossbeam_channel::Receiver;

    fn message(topic: &str, qos: QoS) -> Message {
        Message {
            topic: topic.into(),
            payload: Arc::from(&b"x"[..]),
            qos,
            retain: false,
            stored: None,
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
        let (outbox, inbox) = Outbox::new(name.into(), capacity, None);
        outbox.set_connected(true);
        (outbox, inbox)
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_mqtt_3_3_5_1() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("alice", 10);
        broker.subscribe(1, "a/b", Subscriber::new(&outbox, QoS::AtMostOnce));
        broker.subscribe(1, "a/+", Subscriber::new(&outbox, QoS::AtMostOnce));
        broker.subscribe(1, "#", Subscriber::new(&outbox, QoS::AtMostOnce));
        broker.publish_now(&message("a/b", QoS::AtMostOnce));
        assert_eq!(inbox.len(), 1);
    }

    #[test]
    fn routing_queues_without_waking_and_the_batch_rings_each_writer_once() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("s", 10);
        broker.subscribe(1, "t", Subscriber::new(&outbox, QoS::AtMostOnce));
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
        let (a, _ra) = Outbox::new("a".into(), 1, None);
        let (b, _rb) = Outbox::new("b".into(), 1, None);
        let mut targets = vec![
            (7, QoS::AtMostOnce, Arc::clone(&a)),
            (3, QoS::AtMostOnce, Arc::clone(&b)),
            (7, QoS::ExactlyOnce, Arc::clone(&a)),
            (7, QoS::AtLeastOnce, Arc::clone(&a)),
        ];
        one_per_session(&mut targets);
        let merged: Vec<(QoS, Arc<str>)> = targets
            .iter()
            .map(|(_, qos, outbox)| (*qos, Arc::clone(outbox.client_id())))
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
        broker.subscribe(1, "t", Subscriber::new(&outbox, QoS::AtLeastOnce));
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
        broker.subscribe(1, "t", Subscriber::new(&outbox, QoS::ExactlyOnce));
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
        broker.subscribe(1, "t", Subscriber::new(&high, QoS::ExactlyOnce));
        broker.subscribe(2, "t", Subscriber::new(&low, QoS::AtMostOnce));
        broker.publish_now(&message("t", QoS::AtLeastOnce));
        assert_eq!(high_inbox.try_recv().unwrap().qos, QoS::AtLeastOnce);
        assert_eq!(low_inbox.try_recv().unwrap().qos, QoS::AtMostOnce);
    }

    #[test]
    fn an_offline_session_queues_qos1_and_2_but_not_qos0_mqtt_3_1_2_5() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = Outbox::new("away".into(), 10, None);
        broker.subscribe(1, "t", Subscriber::new(&outbox, QoS::ExactlyOnce));
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
        broker.subscribe(1, "t", Subscriber::new(&outbox, QoS::AtMostOnce));
        let mut retained = message("t", QoS::AtMostOnce);
        retained.retain = true;
        broker.publish_now(&retained);
        assert!(!inbox.try_recv().unwrap().retain);
        assert_eq!(broker.retained_count(), 1);
        // [MQTT-3.3.1-12] a RETAIN=0 message leaves it alone.
        broker.publish_now(&message("t", QoS::AtMostOnce));
        assert_eq!(broker.retained_count(), 1);
    }

    /// A new subscription gets each retained message once ([MQTT-3.3.1-6]): one stored
    /// before the subscription through the retained lookup, one stored after it live
    /// ([MQTT-3.3.1-9]), never through both. The Will in `tests/wills.rs` used to arrive
    /// twice when it was published between the SUBACK and the writer's lookup.
    #[test]
    fn a_retained_message_reaches_a_new_subscription_once_mqtt_3_3_1_6() {
        let broker = Broker::new(Config::default());
        let (outbox, inbox) = connected_outbox("s", 10);
        let mut before = message("t/before", QoS::AtMostOnce);
        before.retain = true;
        broker.publish_now(&before);
        let (_, cutoff) = broker
            .subscribe(1, "t/+", Subscriber::new(&outbox, QoS::AtMostOnce))
            .unwrap();
        let mut after = message("t/after", QoS::AtMostOnce);
        after.retain = true;
        broker.publish_now(&after);
        let live: Vec<Arc<str>> = inbox.try_iter().map(|d| d.message.topic).collect();
        assert_eq!(live, [Arc::from("t/after")]);
        let mut looked_up = Vec::new();
        broker.for_each_retained("t/+", cutoff, |m| looked_up.push(m.topic.clone()));
        assert_eq!(looked_up, [Arc::from("t/before")]);
    }
}
