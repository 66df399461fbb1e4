//! Handling one packet at a time, for one connected client: open, handle, close.
//!
//! A [`Handler`] is what the reader thread owns of the protocol: the client's session
//! (`src/session/`), its Will and its access rules. [`Handler::handle`] takes a packet and
//! appends what the writer must do; routing, subscribing and storing go through the broker.

use std::sync::Arc;

use crate::acl::{ClientAcl, SubscriptionAccess, WriteVerdicts};
use crate::broker::{Broker, Identity, StoredSession, Subscriber};
use crate::codec::{
    Packet, PacketId, Publish, QoS, Suback, Subscribe, SubscribeReturnCode, Unsubscribe, Will,
};
use crate::mailbox::{Doorbells, Message};
use crate::persistence::{Record, Ticket};
use crate::session::{ClientAck, Session, WriterSide};

use super::{CloseReason, ToWriter};

/// The reader side of one connected client, owned by the reader thread alone.
#[derive(Debug)]
pub(crate) struct Handler {
    pub session: Session,
    /// The Will of this connection ([MQTT-3.1.2-8]); removed by DISCONNECT. It belongs to
    /// the connection, not to the session: a resumed session does not bring an old one back.
    will: Option<Will>,
    /// Who this connection is, for the access rules: the Client Identifier and the user
    /// name of its CONNECT (the Will's way: it belongs to the connection, not the session).
    identity: Arc<Identity>,
    /// This client's share of the `acl_file` (`None`: no file, everything allowed), and the
    /// broker's `acl_generation` it was resolved at: a reload makes them differ.
    acl: Option<Arc<ClientAcl>>,
    acl_generation: u64,
    /// The last write verdict of those rules (`WriteVerdicts`), to skip them on a repeat.
    written: WriteVerdicts,
    /// With persistence: the last record the packets handled since the last
    /// [`Handler::take_ticket`] wrote, which must be on disk before their acknowledgements
    /// go out.
    ticket: Ticket,
}

/// A client ready to run: the reader's part, the writer's part, and whether its session
/// existed before ([MQTT-3.2.2-2]).
#[derive(Debug)]
pub(crate) struct Opened {
    pub handler: Handler,
    pub writer_side: WriterSide,
    pub session_present: bool,
}

impl Handler {
    /// Resumes `previous` ([MQTT-3.1.2-4]) or starts afresh ([MQTT-3.1.2-6]): the CleanSession
    /// processing of [MQTT-3.1.4-3].
    pub(crate) fn open(
        broker: &Broker,
        client_id: Arc<str>,
        clean_session: bool,
        will: Option<Will>,
        previous: Option<StoredSession>,
    ) -> Opened {
        match previous {
            Some(StoredSession {
                session,
                writer_side,
            }) if !clean_session => Opened {
                handler: Handler::new(session, will, Ticket::NONE),
                writer_side,
                session_present: true,
            },
            previous => {
                // [MQTT-3.1.2-6] Clean Session 1 discards whatever was stored.
                let mut ticket = Ticket::NONE;
                if let Some(old) = previous {
                    broker.unsubscribe_all(old.session.id, old.session.filters());
                    ticket = broker.record_session_end(&old.session);
                }
                let id = broker.sessions().new_session_id();
                let limits = broker.session_limits();
                let (session, writer_side) = Session::new(id, client_id, clean_session, limits);
                if let Some(on_disk) = session.on_disk() {
                    let client_id = Arc::clone(&session.client_id);
                    ticket = broker.record(Record::SessionOpened {
                        session: on_disk,
                        client_id,
                    });
                }
                Opened {
                    handler: Handler::new(session, will, ticket),
                    writer_side,
                    // [MQTT-3.2.2-1] [MQTT-3.2.2-3] a new session is not present.
                    session_present: false,
                }
            }
        }
    }

    /// A handler for an anonymous client, with no access rules until [`Handler::identify`].
    fn new(session: Session, will: Option<Will>, ticket: Ticket) -> Handler {
        let identity = Arc::new(Identity {
            client_id: Arc::clone(&session.client_id),
            username: None,
        });
        Handler {
            session,
            will,
            identity,
            acl: None,
            acl_generation: 0,
            written: WriteVerdicts::default(),
            ticket,
        }
    }

    /// Takes the ticket of the last record written since the last call: everything the
    /// caller is about to acknowledge waits for it (`ToWriter::AfterDisk`).
    pub(crate) fn take_ticket(&mut self) -> Ticket {
        std::mem::take(&mut self.ticket)
    }

    /// Writes a record about this client's session, if the session is kept on disk, and
    /// remembers to wait for it. `change` gets the session's id in the journal.
    fn record(&mut self, broker: &Broker, change: impl FnOnce(u64) -> Record) {
        if let Some(session) = self.session.on_disk() {
            self.ticket = self.ticket.max(broker.record(change(session)));
        }
    }

    /// Records the CONNECT's user name and gives the client the rules of that identity.
    pub(crate) fn identify(&mut self, username: Option<&str>, broker: &Broker) {
        self.identity = Arc::new(Identity {
            client_id: Arc::clone(&self.session.client_id),
            username: username.map(Box::from),
        });
        self.acl_generation = broker.acl_generation();
        self.acl = broker.client_acl(&self.identity.who());
        let username = username.map(Box::from);
        self.record(broker, |session| Record::Identified { session, username });
    }

    /// Asks for this client's rules again if the `acl_file` was reloaded since they were
    /// resolved: one atomic load per packet otherwise.
    fn follow_reload(&mut self, broker: &Broker) {
        let generation = broker.acl_generation();
        if generation != self.acl_generation {
            self.acl_generation = generation;
            self.acl = broker.client_acl(&self.identity.who());
        }
    }

    /// Carries out one packet from the client: appends to `out` what the writer must do,
    /// or returns why the connection must close. A PUBLISH is routed at once, and the
    /// subscribers' writers to wake are added to `doorbells`, for the caller to ring.
    pub(crate) fn handle(
        &mut self,
        packet: Packet,
        broker: &Broker,
        out: &mut Vec<ToWriter>,
        doorbells: &mut Doorbells,
    ) -> Result<(), CloseReason> {
        self.follow_reload(broker);
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish, broker, out, doorbells),
            Packet::Pubrel(id) => out.push(ToWriter::Send(self.handle_pubrel(id, broker))),
            Packet::Puback(id) => out.push(ToWriter::Ack(ClientAck::Puback(id))),
            Packet::Pubrec(id) => out.push(ToWriter::Ack(ClientAck::Pubrec(id))),
            Packet::Pubcomp(id) => out.push(ToWriter::Ack(ClientAck::Pubcomp(id))),
            Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe, broker, out),
            Packet::Unsubscribe(unsubscribe) => {
                out.push(ToWriter::Send(self.handle_unsubscribe(unsubscribe, broker)))
            }
            // [MQTT-3.12.4-1] every PINGREQ gets a PINGRESP.
            Packet::Pingreq => out.push(ToWriter::Send(Packet::Pingresp)),
            Packet::Disconnect => {
                // [MQTT-3.14.4-3] [MQTT-3.1.2-10] a clean goodbye discards the Will.
                self.will = None;
                return Err(CloseReason::ClientDisconnected);
            }
            // [MQTT-3.1.0-2] CONNECT only once per connection.
            Packet::Connect(_) => {
                return Err(CloseReason::Violation {
                    rule: "[MQTT-3.1.0-2]",
                    what: "a second CONNECT on the same connection".into(),
                })
            }
            // [MQTT-4.8.0-1] Table 2.1 gives these the direction server to client only.
            Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp => {
                return Err(CloseReason::Violation {
                    rule: "[MQTT-4.8.0-1]",
                    what: format!("{} is sent by servers, not clients", packet.packet_type()),
                })
            }
        }
        Ok(())
    }

    /// Routes an incoming PUBLISH and answers it according to its QoS ([MQTT-3.3.4-1]).
    fn handle_publish(
        &mut self,
        publish: Publish,
        broker: &Broker,
        out: &mut Vec<ToWriter>,
        doorbells: &mut Doorbells,
    ) {
        #[cfg(feature = "fault-injection")]
        crate::fault::inject(&publish.topic, crate::fault::PANIC_IN_READER);
        let message = Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            stored: None,
        };
        // A message the broker will not pass on is still acknowledged as its QoS asks:
        // MQTT 3.1.1 has no way to say no to a PUBLISH.
        let route = self.may_route(&message, broker);
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                if route {
                    let routed = broker.publish(&message, doorbells);
                    self.ticket = self.ticket.max(routed);
                }
                // [MQTT-4.3.2-2] PUBACK after taking ownership; a later PUBLISH with the same
                // id is a new message, whatever its DUP flag.
                out.push(ToWriter::Send(Packet::Puback(id)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // [MQTT-4.3.3-2] route on the first PUBLISH with this id only; a re-send
                // before PUBREL gets PUBREC again and is not routed a second time.
                if self.session.receive_qos2(id) {
                    if route {
                        let routed = broker.publish(&message, doorbells);
                        self.ticket = self.ticket.max(routed);
                    }
                    let packet_id = id;
                    self.record(broker, |session| Record::Qos2Received {
                        session,
                        packet_id,
                    });
                }
                out.push(ToWriter::Send(Packet::Pubrec(id)));
            }
            // QoS 0 (the decoder guarantees an identifier exactly when QoS > 0). Nothing is
            // acknowledged, so nothing waits for the disk: not even a retained message.
            _ if route => {
                broker.publish(&message, doorbells);
            }
            _ => {}
        }
    }

    /// Whether a client's message may be passed on: not into the broker's own `$SYS` tree
    /// (§4.7.2 leaves `$` topics to the server), and not over `message_size_limit`.
    fn may_route(&self, message: &Message, broker: &Broker) -> bool {
        let (who, topic) = (&self.session.client_id, &message.topic);
        // §4.7.2: the `$SYS` tree is the broker's (its first level exactly: not `$SYSTEM`).
        if topic.split('/').next() == Some("$SYS") {
            log::debug!("client {who:?}: PUBLISH to {topic:?} dropped: $SYS belongs to the broker");
            return false;
        }
        // [MQTT-3.3.5-2] one the client may not make: acknowledged all the same, not passed on.
        if self
            .acl
            .as_ref()
            .is_some_and(|rules| !self.written.may_write(rules, topic))
        {
            log::debug!("client {who:?}: PUBLISH to {topic:?} dropped: the acl_file does not let it write there");
            return false;
        }
        let limit = broker.config.message_size_limit;
        if limit != 0 && message.payload.len() > limit {
            log::debug!(
                "client {who:?}: PUBLISH to {topic:?} dropped: its {} bytes exceed message_size_limit ({limit})",
                message.payload.len()
            );
            return false;
        }
        true
    }

    /// [MQTT-4.3.3-2] PUBREL releases the identifier, and PUBCOMP confirms it. An unknown
    /// identifier is answered too, so that a client retrying after a reconnect can finish.
    fn handle_pubrel(&mut self, id: PacketId, broker: &Broker) -> Packet {
        if self.session.release(id) {
            let packet_id = id;
            self.record(broker, |session| Record::Qos2Released {
                session,
                packet_id,
            });
        }
        Packet::Pubcomp(id)
    }

    /// [MQTT-3.8.4-4] each filter as if it came alone, one SUBACK for all of them, with the
    /// codes in the order of the filters ([MQTT-3.8.4-5], [MQTT-3.9.3-1]), then the retained
    /// messages that match ([MQTT-3.3.1-6]).
    fn handle_subscribe(&mut self, subscribe: Subscribe, broker: &Broker, out: &mut Vec<ToWriter>) {
        let mut retained = Vec::new();
        let mut return_codes = Vec::with_capacity(subscribe.requests.len());
        for request in subscribe.requests {
            let reading = match self.access(&request.filter) {
                SubscriptionAccess::Refused => {
                    return_codes.push(SubscribeReturnCode::Failure);
                    continue;
                }
                SubscriptionAccess::Granted => None,
                SubscriptionAccess::GrantedFiltered => self.acl.clone(),
            };
            let subscriber = Subscriber {
                qos: request.qos,
                outbox: Arc::clone(self.session.outbox()),
                reading: reading.clone(),
                owner: Arc::clone(&self.identity),
            };
            let Some((granted, cutoff)) =
                broker.subscribe(self.session.id, &request.filter, subscriber)
            else {
                return_codes.push(SubscribeReturnCode::Failure);
                continue;
            };
            let filter = Box::from(request.filter.as_str());
            self.record(broker, |session| Record::Subscribed {
                session,
                filter,
                qos: granted,
            });
            // [MQTT-3.8.4-3] a repeated filter replaces the subscription, and its retained
            // messages are sent again.
            retained.push(ToWriter::SendRetained {
                filter: request.filter.clone(),
                granted,
                reading,
                cutoff,
            });
            self.session.subscribed(request.filter);
            return_codes.push(SubscribeReturnCode::Granted(granted));
        }
        // [MQTT-3.8.4-1] [MQTT-3.8.4-2] a SUBACK with the same Packet Identifier.
        out.push(ToWriter::Send(Packet::Suback(Suback {
            packet_id: subscribe.packet_id,
            return_codes,
        })));
        out.extend(retained);
    }

    /// What the `acl_file` lets this client receive through `filter`. A filter through which
    /// nothing could ever be read is refused with 0x80 at once ([MQTT-3.9.3-2] lists
    /// failure among the return codes), where Mosquitto grants it and delivers nothing.
    fn access(&self, filter: &str) -> SubscriptionAccess {
        let Some(rules) = &self.acl else {
            return SubscriptionAccess::Granted;
        };
        let access = rules.subscription(filter);
        if access == SubscriptionAccess::Refused {
            log::debug!(
                "client {:?}: SUBSCRIBE {filter:?} refused: the acl_file lets it read nothing there",
                self.session.client_id
            );
        }
        access
    }

    /// [MQTT-3.10.4-6] each filter removed on its own, one UNSUBACK for all, sent even when
    /// nothing matched ([MQTT-3.10.4-4], [MQTT-3.10.4-5]).
    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe, broker: &Broker) -> Packet {
        for filter in &unsubscribe.filters {
            // [MQTT-3.10.4-1] literal comparison; [MQTT-3.10.4-2] no new messages after this.
            // Messages already in flight or queued are still delivered ([MQTT-3.10.4-3]).
            broker.unsubscribe(self.session.id, filter);
            self.session.unsubscribed(filter);
            let filter = Box::from(filter.as_str());
            self.record(broker, |session| Record::Unsubscribed { session, filter });
        }
        Packet::Unsuback(unsubscribe.packet_id)
    }

    /// Publishes the Will, if the connection still has one ([MQTT-3.1.2-8]): with its own
    /// QoS, and retained if Will Retain was set ([MQTT-3.1.2-16], [MQTT-3.1.2-17]). It is
    /// removed once published ([MQTT-3.1.2-10]).
    pub(crate) fn publish_will(&mut self, broker: &Broker) {
        // With Will Flag 0 there is no Will, so nothing is published ([MQTT-3.1.2-12]).
        if let Some(will) = self.will.take() {
            let message = Message {
                topic: Arc::from(will.topic.as_str()),
                payload: Arc::from(will.message),
                qos: will.qos,
                stored: None,
                retain: will.retain,
            };
            // A Will is the client's message, published for it: the checks of its PUBLISHes
            // apply (not into `$SYS`, not over `message_size_limit`, not where the acl_file
            // forbids it). Unlike a PUBLISH, a Will is kept from the CONNECT on, so it is
            // judged by the rules in place when it is due, a reload included. (Without the
            // `$SYS` check a Will could forge a retained `$SYS/broker/…` value that the `sys`
            // thread, which republishes only what changed, might never put right.)
            if !self.may_route(&message, broker) {
                log::info!(
                    "client {:?}: its Will to {:?} is not published",
                    self.session.client_id,
                    message.topic
                );
                return;
            }
            log::info!(
                "client {:?}: publishing its Will to {:?}",
                self.session.client_id,
                message.topic
            );
            // A batch of one: the Doorbells ring as they are dropped, at the end of the line.
            broker.publish(&message, &mut Doorbells::new());
        }
    }

    /// Ends the connection's hold on the session. A Clean Session 0 session comes back as a
    /// [`StoredSession`] to keep ([MQTT-3.1.2-4], [MQTT-4.1.0-1]); a Clean Session 1 session
    /// ends here, its subscriptions removed ([MQTT-3.1.2-6]). Without its writer side (the
    /// writer thread died) the session cannot be kept either.
    pub(crate) fn close(
        self,
        broker: &Broker,
        writer_side: Option<WriterSide>,
    ) -> Option<StoredSession> {
        let mut session = self.session;
        match writer_side {
            Some(writer_side) if !session.clean_session => {
                session.away_since = Some(std::time::Instant::now());
                Some(StoredSession {
                    session,
                    writer_side,
                })
            }
            _ => {
                broker.unsubscribe_all(session.id, session.filters());
                // Only when the writer thread died can a session on disk end here.
                broker.record_session_end(&session);
                None
            }
        }
    }

    /// Hands the subscriptions of a resumed session to this connection's identity and
    /// rules (`Broker::reown`); a new session has none yet.
    pub(crate) fn claim_subscriptions(&self, broker: &Broker) {
        let (session, rules) = (&self.session, self.acl.as_ref());
        broker.reown(session.id, session.filters(), &self.identity, rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::subscribe::SubscribeRequest;
    use crate::codec::Connack;
    use crate::config::Config;
    use crate::mailbox::Delivery;
    use crossbeam_channel::Receiver;

    fn session(broker: &Broker, name: &str) -> (Handler, Receiver<Delivery>) {
        let opened = Handler::open(broker, name.into(), true, None, None);
        (opened.handler, opened.writer_side.deliveries)
    }

    /// Runs one packet and returns what it asked of the writer.
    fn run(s: &mut Handler, broker: &Broker, packet: Packet) -> Vec<ToWriter> {
        let mut out = Vec::new();
        s.handle(packet, broker, &mut out, &mut Doorbells::new())
            .unwrap();
        out
    }

    /// The packets a list of writer requests would send (deliveries shown as their topic).
    fn sent(requests: &[ToWriter]) -> Vec<Packet> {
        requests
            .iter()
            .filter_map(|r| match r {
                ToWriter::Send(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn publish(qos: QoS, id: Option<PacketId>, dup: bool) -> Packet {
        Packet::Publish(Publish {
            dup,
            qos,
            retain: false,
            topic: "t".into(),
            packet_id: id,
            payload: Arc::from(&b"m"[..]),
        })
    }

    fn subscribe(filters: &[&str]) -> Packet {
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            requests: filters
                .iter()
                .map(|f| SubscribeRequest {
                    filter: (*f).into(),
                    qos: QoS::ExactlyOnce,
                })
                .collect(),
        })
    }

    #[test]
    fn a_resent_qos2_publish_is_acknowledged_but_routed_once_mqtt_4_3_3_2() {
        let broker = Broker::new(Config::default());
        let (mut sub, inbox) = session(&broker, "sub");
        let (mut publisher, _) = session(&broker, "pub");
        run(&mut sub, &broker, subscribe(&["t"]));
        let first = run(
            &mut publisher,
            &broker,
            publish(QoS::ExactlyOnce, Some(9), false),
        );
        let again = run(
            &mut publisher,
            &broker,
            publish(QoS::ExactlyOnce, Some(9), true),
        );
        assert_eq!(sent(&first), [Packet::Pubrec(9)]);
        assert_eq!(sent(&again), [Packet::Pubrec(9)]);
        assert_eq!(inbox.len(), 1);
        // After PUBREL/PUBCOMP the identifier is free: the same id is a new message.
        let released = run(&mut publisher, &broker, Packet::Pubrel(9));
        assert_eq!(sent(&released), [Packet::Pubcomp(9)]);
        run(
            &mut publisher,
            &broker,
            publish(QoS::ExactlyOnce, Some(9), false),
        );
        assert_eq!(inbox.len(), 2);
    }

    #[test]
    fn a_qos1_publish_is_acknowledged_and_a_repeat_is_a_new_message_mqtt_4_3_2_2() {
        let broker = Broker::new(Config::default());
        let (mut sub, inbox) = session(&broker, "sub");
        let (mut publisher, _) = session(&broker, "pub");
        run(&mut sub, &broker, subscribe(&["t"]));
        for dup in [false, true] {
            let out = run(
                &mut publisher,
                &broker,
                publish(QoS::AtLeastOnce, Some(4), dup),
            );
            assert_eq!(sent(&out), [Packet::Puback(4)]);
        }
        assert_eq!(inbox.len(), 2);
    }

    #[test]
    fn acknowledgements_from_the_client_go_to_the_writer() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let out = run(&mut s, &broker, Packet::Puback(3));
        assert!(matches!(out[..], [ToWriter::Ack(ClientAck::Puback(3))]));
    }

    #[test]
    fn pubrel_for_an_unknown_id_still_gets_pubcomp() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        assert_eq!(
            sent(&run(&mut s, &broker, Packet::Pubrel(77))),
            [Packet::Pubcomp(77)]
        );
    }

    #[test]
    fn suback_has_one_code_per_filter_in_order_mqtt_3_9_3_1() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let deep = vec!["x"; 201].join("/");
        let out = run(&mut s, &broker, subscribe(&["a", &deep, "b/#"]));
        let [Packet::Suback(suback)] = &sent(&out)[..] else {
            panic!("expected one SUBACK");
        };
        assert_eq!(suback.packet_id, 1);
        assert_eq!(
            suback.return_codes,
            [
                SubscribeReturnCode::Granted(QoS::ExactlyOnce),
                SubscribeReturnCode::Failure,
                SubscribeReturnCode::Granted(QoS::ExactlyOnce),
            ]
        );
    }

    #[test]
    fn retained_messages_are_requested_after_the_suback_mqtt_3_3_1_6() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let out = run(&mut s, &broker, subscribe(&["r/+", "x"]));
        assert!(matches!(out[0], ToWriter::Send(Packet::Suback(_))));
        let requested: Vec<(&str, QoS)> = out[1..]
            .iter()
            .map(|r| match r {
                ToWriter::SendRetained {
                    filter, granted, ..
                } => (filter.as_str(), *granted),
                other => panic!("expected retained requests, got {other:?}"),
            })
            .collect();
        assert_eq!(
            requested,
            [("r/+", QoS::ExactlyOnce), ("x", QoS::ExactlyOnce)]
        );
    }

    #[test]
    fn unsuback_is_sent_even_when_nothing_matched_mqtt_3_10_4_5() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let unsubscribe = Packet::Unsubscribe(Unsubscribe {
            packet_id: 5,
            filters: vec!["never/subscribed".into()],
        });
        assert_eq!(
            sent(&run(&mut s, &broker, unsubscribe)),
            [Packet::Unsuback(5)]
        );
    }

    #[test]
    fn closing_a_clean_session_removes_all_its_subscriptions_mqtt_3_1_2_6() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        run(&mut s, &broker, subscribe(&["a", "b/+", "#"]));
        assert_eq!(broker.subscription_count(), 3);
        assert!(s.close(&broker, None).is_none());
        assert_eq!(broker.subscription_count(), 0);
    }

    #[test]
    fn a_session_kept_and_resumed_has_its_state_mqtt_3_1_2_4() {
        let broker = Broker::new(Config::default());
        let opened = Handler::open(&broker, "k".into(), false, None, None);
        assert!(!opened.session_present);
        let (mut s, writer_side) = (opened.handler, opened.writer_side);
        run(&mut s, &broker, subscribe(&["keep/#"]));
        run(&mut s, &broker, publish(QoS::ExactlyOnce, Some(5), false));
        let id = s.session.id;
        let stored = s.close(&broker, Some(writer_side)).expect("kept");
        assert_eq!(
            broker.subscription_count(),
            1,
            "subscriptions stay while offline"
        );
        let resumed = Handler::open(&broker, "k".into(), false, None, Some(stored));
        assert!(resumed.session_present);
        let mut session = resumed.handler.session;
        assert_eq!(session.id, id);
        assert!(!session.receive_qos2(5), "id 5 still awaits its PUBREL");
    }

    #[test]
    fn clean_session_discards_a_stored_session_mqtt_3_1_2_6() {
        let broker = Broker::new(Config::default());
        let opened = Handler::open(&broker, "k".into(), false, None, None);
        let (mut s, writer_side) = (opened.handler, opened.writer_side);
        run(&mut s, &broker, subscribe(&["a", "b"]));
        let stored = s.close(&broker, Some(writer_side));
        let fresh = Handler::open(&broker, "k".into(), true, None, stored);
        assert!(!fresh.session_present);
        assert_eq!(broker.subscription_count(), 0);
    }

    #[test]
    fn disconnect_discards_the_will_mqtt_3_14_4_3() {
        let broker = Broker::new(Config::default());
        let will = Will {
            topic: "w".into(),
            message: b"gone".to_vec(),
            qos: QoS::AtMostOnce,
            retain: true,
        };
        let mut s = Handler::open(&broker, "w".into(), true, Some(will), None).handler;
        let reason = s
            .handle(
                Packet::Disconnect,
                &broker,
                &mut Vec::new(),
                &mut Doorbells::new(),
            )
            .unwrap_err();
        assert!(matches!(reason, CloseReason::ClientDisconnected));
        s.publish_will(&broker);
        assert_eq!(broker.retained_count(), 0, "no Will was published");
    }

    #[test]
    fn a_second_connect_is_a_protocol_violation_mqtt_3_1_0_2() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let connect = crate::codec::Connect {
            protocol: crate::codec::ProtocolVersion::V3_1_1,
            clean_session: true,
            keep_alive: 0,
            client_id: "s".into(),
            will: None,
            username: None,
            password: None,
        };
        let reason = s
            .handle(
                Packet::Connect(Box::new(connect)),
                &broker,
                &mut Vec::new(),
                &mut Doorbells::new(),
            )
            .unwrap_err();
        assert!(matches!(
            reason,
            CloseReason::Violation {
                rule: "[MQTT-3.1.0-2]",
                ..
            }
        ));
    }

    #[test]
    fn server_only_packets_from_a_client_are_violations() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let connack = Packet::Connack(Connack {
            session_present: false,
            code: crate::codec::ConnectReturnCode::Accepted,
        });
        for packet in [connack, Packet::Pingresp, Packet::Unsuback(1)] {
            let reason = s
                .handle(packet, &broker, &mut Vec::new(), &mut Doorbells::new())
                .unwrap_err();
            assert!(reason.is_violation());
        }
    }

    #[test]
    fn pingreq_gets_pingresp_mqtt_3_12_4_1() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        assert_eq!(
            sent(&run(&mut s, &broker, Packet::Pingreq)),
            [Packet::Pingresp]
        );
    }
}
