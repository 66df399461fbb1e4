//! Sessions (spec §3.1.2.4, §4.1) and what a connected client's packets *do*.
//!
//! A session is the state the broker keeps for one Client Identifier. With Clean Session 1
//! it lives exactly as long as the network connection; with Clean Session 0 it outlives it,
//! and the next connection with the same identifier picks it up ([MQTT-3.1.2-4]). It holds:
//!
//! | part                                   | owned while connected by | type                 |
//! |----------------------------------------|--------------------------|----------------------|
//! | subscriptions (in the broker's trie)   | the trie; names here     | `Session::filters`   |
//! | QoS 2 ids received, awaiting PUBREL    | reader thread            | `Session::awaiting_release` |
//! | messages queued for delivery           | the channel              | [`Outbox`] + its receiver |
//! | messages sent, awaiting acknowledgement| writer thread            | [`Outbound`]         |
//!
//! While the client is away all of it sits in a [`StoredSession`] in the broker's session
//! store, and the subscriptions stay in the trie so that QoS 1 and 2 messages keep queueing
//! ([MQTT-3.1.2-5]).
//!
//! [`Session::handle`] is the reader side's protocol: a plain method that takes a packet and
//! appends what the writer must do. No socket, no thread: the unit tests below drive it
//! directly, and the reader thread only does the I/O around it.
//!
//! | packet from the client | what happens                                    | to the writer |
//! |------------------------|-------------------------------------------------|---------------|
//! | PUBLISH QoS 0          | routed to matching subscribers                  | –             |
//! | PUBLISH QoS 1          | routed                                          | PUBACK        |
//! | PUBLISH QoS 2          | routed once; identifier kept until PUBREL       | PUBREC        |
//! | PUBREL                 | identifier released                             | PUBCOMP       |
//! | PUBACK, PUBREC, PUBCOMP| acknowledge *our* messages                      | the ack itself |
//! | SUBSCRIBE              | each filter added to the trie                   | SUBACK, then retained messages |
//! | UNSUBSCRIBE            | each filter removed                             | UNSUBACK      |
//! | PINGREQ                | –                                               | PINGRESP      |
//! | DISCONNECT             | the connection ends cleanly, Will discarded     | –             |
//! | CONNECT (again)        | protocol violation, close                       | –             |
//! | CONNACK, SUBACK, UNSUBACK, PINGRESP | server-only packets: violation, close | –       |
//!
//! **QoS 2 receiver method.** §4.3.3 allows two ways to receive QoS 2: store the message
//! and pass it on at PUBREL, or store only its Packet Identifier and pass it on at once.
//! mqttd does the second: the message is routed when the PUBLISH arrives, and the
//! identifier alone is kept until PUBREL so that a re-sent PUBLISH is not routed twice. The
//! state is a set of numbers instead of a set of messages, and subscribers get the message
//! one round trip sooner.

pub mod outbound;

use std::collections::HashSet;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::broker::{Broker, Delivery, Doorbells, Message, Outbox, SessionId};
use crate::codec::{
    Packet, PacketId, Publish, QoS, Suback, Subscribe, SubscribeReturnCode, Unsubscribe, Will,
};
use crate::connection::CloseReason;

pub use outbound::{ClientAck, Outbound};

/// What the reader thread asks of the writer thread (over the control channel).
#[derive(Debug)]
pub enum ToWriter {
    /// Send this packet (an answer: CONNACK, PUBACK, SUBACK, PINGRESP, …).
    Send(Packet),
    /// Send the retained messages matching `filter`, at most at QoS `granted`, to a new
    /// subscription ([MQTT-3.3.1-6]). The writer looks them up itself, just before sending:
    /// a retained message read any earlier could be older than a live RETAIN=1 message on
    /// the same topic that the writer sends first, and the client would end up with stale
    /// state.
    SendRetained { filter: String, granted: QoS },
    /// The client acknowledged one of our messages.
    Ack(ClientAck),
}

/// A session waiting for its client to come back (Clean Session 0 only).
#[derive(Debug)]
pub struct StoredSession {
    pub id: SessionId,
    pub outbox: Arc<Outbox>,
    pub deliveries: Receiver<Delivery>,
    pub filters: HashSet<String>,
    pub awaiting_release: HashSet<PacketId>,
    pub outbound: Outbound,
}

/// The parts of a session the writer thread owns while the client is connected.
#[derive(Debug)]
pub struct WriterSide {
    pub deliveries: Receiver<Delivery>,
    pub outbound: Outbound,
}

/// The reader side of one session. Owned by the reader thread alone. It lives at least as
/// long as the connection ([MQTT-4.1.0-2]).
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
    /// The Will of this connection ([MQTT-3.1.2-8]); removed by DISCONNECT.
    will: Option<Will>,
}

/// A session ready for a new connection: the reader's part, the writer's part, and
/// whether it existed before ([MQTT-3.2.2-2]).
#[derive(Debug)]
pub struct Opened {
    pub session: Session,
    pub writer_side: WriterSide,
    pub session_present: bool,
}

impl Session {
    /// Resumes `previous` ([MQTT-3.1.2-4]) or starts afresh ([MQTT-3.1.2-6]): the CleanSession
    /// processing of [MQTT-3.1.4-3].
    pub fn open(
        broker: &Broker,
        client_id: Arc<str>,
        clean_session: bool,
        will: Option<Will>,
        previous: Option<StoredSession>,
    ) -> Opened {
        let config = &broker.config;
        match previous {
            Some(stored) if !clean_session => Opened {
                session: Session {
                    id: stored.id,
                    client_id,
                    clean_session,
                    outbox: stored.outbox,
                    filters: stored.filters,
                    awaiting_release: stored.awaiting_release,
                    will,
                },
                writer_side: WriterSide {
                    deliveries: stored.deliveries,
                    outbound: stored.outbound,
                },
                session_present: true,
            },
            previous => {
                // [MQTT-3.1.2-6] Clean Session 1 discards whatever was stored.
                if let Some(old) = previous {
                    broker.unsubscribe_all(old.id, old.filters.iter().map(String::as_str));
                }
                let (outbox, deliveries) =
                    Outbox::new(Arc::clone(&client_id), config.max_queued_messages);
                Opened {
                    session: Session {
                        id: broker.next_id(),
                        client_id,
                        clean_session,
                        outbox,
                        filters: HashSet::new(),
                        awaiting_release: HashSet::new(),
                        will,
                    },
                    writer_side: WriterSide {
                        deliveries,
                        outbound: Outbound::new(config.max_inflight_messages),
                    },
                    // [MQTT-3.2.2-1] [MQTT-3.2.2-3] a new session is not present.
                    session_present: false,
                }
            }
        }
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Carries out one packet from the client: appends to `out` what the writer must do,
    /// or returns why the connection must close. A PUBLISH is routed at once, and the
    /// subscribers' writers to wake are added to `doorbells`, for the caller to ring.
    pub fn handle(
        &mut self,
        packet: Packet,
        broker: &Broker,
        out: &mut Vec<ToWriter>,
        doorbells: &mut Doorbells,
    ) -> Result<(), CloseReason> {
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish, broker, out, doorbells),
            Packet::Pubrel(id) => out.push(ToWriter::Send(self.handle_pubrel(id))),
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
        };
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                broker.publish(&message, doorbells);
                // [MQTT-4.3.2-2] PUBACK after taking ownership; a later PUBLISH with the same
                // id is a new message, whatever its DUP flag.
                out.push(ToWriter::Send(Packet::Puback(id)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // [MQTT-4.3.3-2] route on the first PUBLISH with this id only; a re-send
                // before PUBREL gets PUBREC again and is not routed a second time.
                if self.awaiting_release.insert(id) {
                    broker.publish(&message, doorbells);
                }
                out.push(ToWriter::Send(Packet::Pubrec(id)));
            }
            // QoS 0 (the decoder guarantees an identifier exactly when QoS > 0).
            _ => broker.publish(&message, doorbells),
        }
    }

    /// [MQTT-4.3.3-2] PUBREL releases the identifier, and PUBCOMP confirms it. An unknown
    /// identifier is answered too, so that a client retrying after a reconnect can finish.
    fn handle_pubrel(&mut self, id: PacketId) -> Packet {
        self.awaiting_release.remove(&id);
        Packet::Pubcomp(id)
    }

    /// [MQTT-3.8.4-4] each filter as if it came alone, one SUBACK for all of them, with the
    /// codes in the order of the filters ([MQTT-3.8.4-5], [MQTT-3.9.3-1]), then the retained
    /// messages that match ([MQTT-3.3.1-6]).
    fn handle_subscribe(&mut self, subscribe: Subscribe, broker: &Broker, out: &mut Vec<ToWriter>) {
        let mut retained = Vec::new();
        let mut return_codes = Vec::with_capacity(subscribe.requests.len());
        for request in subscribe.requests {
            let code = broker.subscribe(self.id, &self.outbox, &request.filter, request.qos);
            if let SubscribeReturnCode::Granted(granted) = code {
                // [MQTT-3.8.4-3] a repeated filter replaces the subscription, and its
                // retained messages are sent again.
                retained.push(ToWriter::SendRetained {
                    filter: request.filter.clone(),
                    granted,
                });
                self.filters.insert(request.filter);
            }
            return_codes.push(code);
        }
        // [MQTT-3.8.4-1] [MQTT-3.8.4-2] a SUBACK with the same Packet Identifier.
        out.push(ToWriter::Send(Packet::Suback(Suback {
            packet_id: subscribe.packet_id,
            return_codes,
        })));
        out.extend(retained);
    }

    /// [MQTT-3.10.4-6] each filter removed on its own, one UNSUBACK for all, sent even when
    /// nothing matched ([MQTT-3.10.4-4], [MQTT-3.10.4-5]).
    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe, broker: &Broker) -> Packet {
        for filter in &unsubscribe.filters {
            // [MQTT-3.10.4-1] literal comparison; [MQTT-3.10.4-2] no new messages after this.
            // Messages already in flight or queued are still delivered ([MQTT-3.10.4-3]).
            broker.unsubscribe(self.id, filter);
            self.filters.remove(filter);
        }
        Packet::Unsuback(unsubscribe.packet_id)
    }

    /// Publishes the Will, if the connection still has one ([MQTT-3.1.2-8]): with its own
    /// QoS, and retained if Will Retain was set ([MQTT-3.1.2-16], [MQTT-3.1.2-17]). It is
    /// removed once published ([MQTT-3.1.2-10]).
    pub fn publish_will(&mut self, broker: &Broker) {
        // With Will Flag 0 there is no Will, so nothing is published ([MQTT-3.1.2-12]).
        if let Some(will) = self.will.take() {
            log::info!(
                "client {:?}: publishing its Will to {:?}",
                self.client_id,
                will.topic
            );
            // A batch of one: the Doorbells ring as they are dropped, at the end of the line.
            broker.publish(
                &Message {
                    topic: Arc::from(will.topic.as_str()),
                    payload: Arc::from(will.message),
                    qos: will.qos,
                    retain: will.retain,
                },
                &mut Doorbells::new(),
            );
        }
    }

    /// Ends the connection's hold on the session. A Clean Session 0 session comes back as a
    /// [`StoredSession`] to keep ([MQTT-3.1.2-4], [MQTT-4.1.0-1]); a Clean Session 1 session
    /// ends here, its subscriptions removed ([MQTT-3.1.2-6]).
    pub fn close(self, broker: &Broker, writer_side: Option<WriterSide>) -> Option<StoredSession> {
        match writer_side {
            Some(writer_side) if !self.clean_session => Some(StoredSession {
                id: self.id,
                outbox: self.outbox,
                deliveries: writer_side.deliveries,
                filters: self.filters,
                awaiting_release: self.awaiting_release,
                outbound: writer_side.outbound,
            }),
            _ => {
                broker.unsubscribe_all(self.id, self.filters.iter().map(String::as_str));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::subscribe::SubscribeRequest;
    use crate::codec::Connack;
    use crate::config::Config;

    fn session(broker: &Broker, name: &str) -> (Session, Receiver<Delivery>) {
        let opened = Session::open(broker, name.into(), true, None, None);
        (opened.session, opened.writer_side.deliveries)
    }

    /// Runs one packet and returns what it asked of the writer.
    fn run(s: &mut Session, broker: &Broker, packet: Packet) -> Vec<ToWriter> {
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
                ToWriter::SendRetained { filter, granted } => (filter.as_str(), *granted),
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
        let opened = Session::open(&broker, "k".into(), false, None, None);
        assert!(!opened.session_present);
        let (mut s, writer_side) = (opened.session, opened.writer_side);
        run(&mut s, &broker, subscribe(&["keep/#"]));
        run(&mut s, &broker, publish(QoS::ExactlyOnce, Some(5), false));
        let id = s.id;
        let stored = s.close(&broker, Some(writer_side)).expect("kept");
        assert_eq!(
            broker.subscription_count(),
            1,
            "subscriptions stay while offline"
        );
        let resumed = Session::open(&broker, "k".into(), false, None, Some(stored));
        assert!(resumed.session_present);
        assert_eq!(resumed.session.id, id);
        assert!(resumed.session.awaiting_release.contains(&5));
    }

    #[test]
    fn clean_session_discards_a_stored_session_mqtt_3_1_2_6() {
        let broker = Broker::new(Config::default());
        let opened = Session::open(&broker, "k".into(), false, None, None);
        let (mut s, writer_side) = (opened.session, opened.writer_side);
        run(&mut s, &broker, subscribe(&["a", "b"]));
        let stored = s.close(&broker, Some(writer_side));
        let fresh = Session::open(&broker, "k".into(), true, None, stored);
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
        let mut s = Session::open(&broker, "w".into(), true, Some(will), None).session;
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
        let mut retained = 0;
        broker.for_each_retained("w", |_| retained += 1);
        assert_eq!(retained, 0, "no Will was published");
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
