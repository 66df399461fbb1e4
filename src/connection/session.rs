//! What a connected client's packets *do*: the protocol decisions of the reader side, as a
//! plain struct that takes a packet and returns the reply. No socket, no thread: the unit
//! tests below drive it directly, and the reader thread only does the I/O around it.
//!
//! | packet from the client | what happens                                    | reply     |
//! |------------------------|-------------------------------------------------|-----------|
//! | PUBLISH QoS 0          | routed to matching subscribers                  | –         |
//! | PUBLISH QoS 1          | routed                                          | PUBACK    |
//! | PUBLISH QoS 2          | routed once; identifier kept until PUBREL       | PUBREC    |
//! | PUBREL                 | identifier released                             | PUBCOMP   |
//! | SUBSCRIBE              | each filter added to the trie                   | SUBACK    |
//! | UNSUBSCRIBE            | each filter removed                             | UNSUBACK  |
//! | PINGREQ                | –                                               | PINGRESP  |
//! | DISCONNECT             | the connection ends cleanly                     | –         |
//! | CONNECT (again)        | protocol violation, close                       | –         |
//! | CONNACK, SUBACK, UNSUBACK, PINGRESP | server-only packets: violation, close | –   |

use std::collections::HashSet;
use std::sync::Arc;

use crate::broker::{Broker, Message, Outbox, SessionId};
use crate::codec::{
    Packet, PacketId, Publish, QoS, Suback, Subscribe, SubscribeReturnCode, Unsubscribe,
};

use super::CloseReason;

/// The reader side of one session. Owned by the reader thread alone.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub client_id: Arc<str>,
    /// This session's queue, given to the trie with every subscription.
    outbox: Arc<Outbox>,
    /// The filters this session holds, so that they can all be removed when it ends.
    filters: HashSet<String>,
    /// QoS 2 Packet Identifiers for which PUBREC was sent and PUBREL has not arrived
    /// ([MQTT-4.3.3-2]). A PUBLISH that reuses one of them is a re-send: acknowledged again,
    /// never routed again.
    awaiting_release: HashSet<PacketId>,
}

impl Session {
    pub fn new(id: SessionId, client_id: Arc<str>, outbox: Arc<Outbox>) -> Session {
        Session {
            id,
            client_id,
            outbox,
            filters: HashSet::new(),
            awaiting_release: HashSet::new(),
        }
    }

    /// Carries out one packet from the client and returns the reply to send, if any, or why
    /// the connection must close.
    pub fn handle(
        &mut self,
        packet: Packet,
        broker: &Broker,
    ) -> Result<Option<Packet>, CloseReason> {
        match packet {
            Packet::Publish(publish) => Ok(self.handle_publish(publish, broker)),
            Packet::Pubrel(id) => Ok(Some(self.handle_pubrel(id))),
            Packet::Puback(id) | Packet::Pubrec(id) | Packet::Pubcomp(id) => {
                // These acknowledge a QoS 1 or 2 message *we* sent; every delivery is QoS 0
                // for now, so there is nothing in flight to acknowledge.
                log::debug!(
                    "client {:?}: no message in flight with id {id}",
                    self.client_id
                );
                Ok(None)
            }
            Packet::Subscribe(subscribe) => Ok(Some(self.handle_subscribe(subscribe, broker))),
            Packet::Unsubscribe(unsubscribe) => {
                Ok(Some(self.handle_unsubscribe(unsubscribe, broker)))
            }
            // [MQTT-3.12.4-1] every PINGREQ gets a PINGRESP.
            Packet::Pingreq => Ok(Some(Packet::Pingresp)),
            // [MQTT-3.14.4-3] a clean goodbye (the Will, once wills exist, is discarded).
            Packet::Disconnect => Err(CloseReason::ClientDisconnected),
            // [MQTT-3.1.0-2] CONNECT only once per connection.
            Packet::Connect(_) => Err(CloseReason::Violation {
                rule: "[MQTT-3.1.0-2]",
                what: "a second CONNECT on the same connection".into(),
            }),
            // [MQTT-4.8.0-1] Table 2.1 gives these the direction server to client only.
            Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp => {
                Err(CloseReason::Violation {
                    rule: "[MQTT-4.8.0-1]",
                    what: format!("{} is sent by servers, not clients", packet.packet_type()),
                })
            }
        }
    }

    /// Routes an incoming PUBLISH and answers it according to its QoS ([MQTT-3.3.4-1]).
    fn handle_publish(&mut self, publish: Publish, broker: &Broker) -> Option<Packet> {
        let message = Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
        };
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                broker.publish(&message);
                // [MQTT-4.3.2-2] PUBACK after taking ownership; a later PUBLISH with the same
                // id is a new message, whatever its DUP flag.
                Some(Packet::Puback(id))
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // [MQTT-4.3.3-2] route on the first PUBLISH with this id only; a re-send
                // before PUBREL gets PUBREC again and is not routed a second time.
                if self.awaiting_release.insert(id) {
                    broker.publish(&message);
                }
                Some(Packet::Pubrec(id))
            }
            // QoS 0 (the decoder guarantees an identifier exactly when QoS > 0).
            _ => {
                broker.publish(&message);
                None
            }
        }
    }

    /// [MQTT-4.3.3-2] PUBREL releases the identifier, and PUBCOMP confirms it. An unknown
    /// identifier is answered too, so that a client retrying after a reconnect can finish.
    fn handle_pubrel(&mut self, id: PacketId) -> Packet {
        self.awaiting_release.remove(&id);
        Packet::Pubcomp(id)
    }

    /// [MQTT-3.8.4-4] each filter as if it came alone, one SUBACK for all of them, with the
    /// codes in the order of the filters ([MQTT-3.8.4-5], [MQTT-3.9.3-1]).
    fn handle_subscribe(&mut self, subscribe: Subscribe, broker: &Broker) -> Packet {
        let return_codes = subscribe
            .requests
            .into_iter()
            .map(|request| {
                let code = broker.subscribe(self.id, &self.outbox, &request.filter, request.qos);
                if code != SubscribeReturnCode::Failure {
                    self.filters.insert(request.filter);
                }
                code
            })
            .collect();
        // [MQTT-3.8.4-1] [MQTT-3.8.4-2] a SUBACK with the same Packet Identifier.
        Packet::Suback(Suback {
            packet_id: subscribe.packet_id,
            return_codes,
        })
    }

    /// [MQTT-3.10.4-6] each filter removed on its own, one UNSUBACK for all, sent even when
    /// nothing matched ([MQTT-3.10.4-4], [MQTT-3.10.4-5]).
    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe, broker: &Broker) -> Packet {
        for filter in &unsubscribe.filters {
            // [MQTT-3.10.4-1] literal comparison; [MQTT-3.10.4-2] no new messages after this.
            broker.unsubscribe(self.id, filter);
            self.filters.remove(filter);
        }
        Packet::Unsuback(unsubscribe.packet_id)
    }

    /// Ends the session: every subscription it holds is removed from the trie.
    pub fn end(self, broker: &Broker) {
        broker.unsubscribe_all(self.id, self.filters.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::subscribe::SubscribeRequest;
    use crate::codec::Connack;
    use crate::config::Config;

    fn session(
        broker: &Broker,
        name: &str,
    ) -> (
        Session,
        crossbeam_channel::Receiver<crate::broker::Delivery>,
    ) {
        let (outbox, inbox) = Outbox::new(name.into(), 100);
        (Session::new(broker.next_id(), name.into(), outbox), inbox)
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
        sub.handle(subscribe(&["t"]), &broker).unwrap();
        let first = publisher.handle(publish(QoS::ExactlyOnce, Some(9), false), &broker);
        let again = publisher.handle(publish(QoS::ExactlyOnce, Some(9), true), &broker);
        assert_eq!(first.unwrap(), Some(Packet::Pubrec(9)));
        assert_eq!(again.unwrap(), Some(Packet::Pubrec(9)));
        assert_eq!(inbox.len(), 1);
        // After PUBREL/PUBCOMP the identifier is free: the same id is a new message.
        assert_eq!(
            publisher.handle(Packet::Pubrel(9), &broker).unwrap(),
            Some(Packet::Pubcomp(9))
        );
        publisher
            .handle(publish(QoS::ExactlyOnce, Some(9), false), &broker)
            .unwrap();
        assert_eq!(inbox.len(), 2);
    }

    #[test]
    fn a_qos1_publish_is_acknowledged_and_a_repeat_is_a_new_message_mqtt_4_3_2_2() {
        let broker = Broker::new(Config::default());
        let (mut sub, inbox) = session(&broker, "sub");
        let (mut publisher, _) = session(&broker, "pub");
        sub.handle(subscribe(&["t"]), &broker).unwrap();
        for dup in [false, true] {
            let reply = publisher.handle(publish(QoS::AtLeastOnce, Some(4), dup), &broker);
            assert_eq!(reply.unwrap(), Some(Packet::Puback(4)));
        }
        assert_eq!(inbox.len(), 2);
    }

    #[test]
    fn pubrel_for_an_unknown_id_still_gets_pubcomp() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        assert_eq!(
            s.handle(Packet::Pubrel(77), &broker).unwrap(),
            Some(Packet::Pubcomp(77))
        );
    }

    #[test]
    fn suback_has_one_code_per_filter_in_order_mqtt_3_9_3_1() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let deep = vec!["x"; 201].join("/");
        let reply = s.handle(subscribe(&["a", &deep, "b/#"]), &broker).unwrap();
        let Some(Packet::Suback(suback)) = reply else {
            panic!("expected a SUBACK");
        };
        assert_eq!(suback.packet_id, 1);
        assert_eq!(
            suback.return_codes,
            [
                SubscribeReturnCode::Granted(crate::broker::MAX_GRANTED_QOS),
                SubscribeReturnCode::Failure,
                SubscribeReturnCode::Granted(crate::broker::MAX_GRANTED_QOS),
            ]
        );
    }

    #[test]
    fn unsuback_is_sent_even_when_nothing_matched_mqtt_3_10_4_5() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        let reply = s.handle(
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 5,
                filters: vec!["never/subscribed".into()],
            }),
            &broker,
        );
        assert_eq!(reply.unwrap(), Some(Packet::Unsuback(5)));
    }

    #[test]
    fn ending_a_session_removes_all_its_subscriptions() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        s.handle(subscribe(&["a", "b/+", "#"]), &broker).unwrap();
        assert_eq!(broker.subscription_count(), 3);
        s.end(&broker);
        assert_eq!(broker.subscription_count(), 0);
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
        let reason = s.handle(Packet::Connect(connect), &broker).unwrap_err();
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
            assert!(s.handle(packet, &broker).unwrap_err().is_violation());
        }
    }

    #[test]
    fn pingreq_gets_pingresp_mqtt_3_12_4_1() {
        let broker = Broker::new(Config::default());
        let (mut s, _) = session(&broker, "s");
        assert_eq!(
            s.handle(Packet::Pingreq, &broker).unwrap(),
            Some(Packet::Pingresp)
        );
    }
}
