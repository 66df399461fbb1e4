//! The sending side of QoS 1 and 2: Packet Identifiers, the in-flight window, and what
//! each acknowledgement from the client does (spec §4.3, §4.4, §4.6, §2.3.1).
//!
//! ```text
//!   QoS 1:  broker ── PUBLISH id=7 ──▶ client        in flight: [7: awaiting PUBACK]
//!           broker ◀── PUBACK id=7 ─── client        in flight: []
//!
//!   QoS 2:  broker ── PUBLISH id=8 ──▶ client        in flight: [8: awaiting PUBREC]
//!           broker ◀── PUBREC id=8 ─── client
//!           broker ── PUBREL id=8 ───▶ client        in flight: [8: awaiting PUBCOMP]
//!           broker ◀── PUBCOMP id=8 ── client        in flight: []
//! ```
//!
//! `Outbound` is plain data owned by one thread at a time: the writer thread while the
//! client is connected (acknowledgements reach it from the reader over the control
//! channel, so no lock is needed), the session store while it is not. It decides; the
//! writer thread only writes what it returns.
//!
//! Messages beyond the window wait. Most wait in the session's `Outbox` channel, which the
//! writer does not read while the window is full; the few that arrive another way
//! (retained messages for a new subscription) wait in `pending`.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use crate::codec::{Packet, PacketId, Publish, QoS};
use crate::config::MAX_INFLIGHT_MESSAGES;
use crate::mailbox::Delivery;

/// Where a message we sent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREC received and PUBREL sent; waiting for PUBCOMP (QoS 2 only).
    Released,
}

/// One message sent at QoS 1 or 2 and not fully acknowledged yet.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: PacketId,
    pub delivery: Delivery,
    pub stage: Stage,
}

/// An acknowledgement the client sent for one of our messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAck {
    Puback(PacketId),
    Pubrec(PacketId),
    Pubcomp(PacketId),
}

impl ClientAck {
    pub fn packet_id(self) -> PacketId {
        match self {
            ClientAck::Puback(id) | ClientAck::Pubrec(id) | ClientAck::Pubcomp(id) => id,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClientAck::Puback(_) => "PUBACK",
            ClientAck::Pubrec(_) => "PUBREC",
            ClientAck::Pubcomp(_) => "PUBCOMP",
        }
    }
}

/// An acknowledgement of the wrong kind for the message it names: PUBREC or PUBCOMP for a
/// QoS 1 message, PUBACK for a QoS 2 one, PUBCOMP before PUBREC. A client that sends one
/// has lost track of the exchange, and the connection is closed ([MQTT-4.8.0-1]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongAck {
    pub ack: ClientAck,
    /// The QoS of the message the acknowledgement names.
    pub qos: QoS,
    pub stage: Stage,
}

impl fmt::Display for WrongAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Published => "awaiting its first acknowledgement",
            Stage::Released => "released (PUBREL sent)",
        };
        write!(
            f,
            "{} for id {}, a QoS {} message {stage}",
            self.ack.name(),
            self.ack.packet_id(),
            self.qos.as_u8()
        )
    }
}

/// The outgoing QoS state of one session.
#[derive(Debug)]
pub struct Outbound {
    /// In the order the PUBLISH packets were first sent, which is the order they must be
    /// re-sent in ([MQTT-4.6.0-1]).
    in_flight: VecDeque<InFlight>,
    /// The Packet Identifiers of `in_flight`, to find a free one without scanning it.
    ids_in_use: HashSet<PacketId>,
    /// Deliveries that arrived while the window was full and are not in the Outbox.
    pending: VecDeque<Delivery>,
    /// The last Packet Identifier handed out.
    last_id: PacketId,
    /// The window: how many QoS 1 and 2 messages may be in flight at once.
    max_in_flight: usize,
}

impl Outbound {
    pub fn new(max_in_flight: usize) -> Outbound {
        Outbound {
            in_flight: VecDeque::new(),
            ids_in_use: HashSet::new(),
            pending: VecDeque::new(),
            last_id: 0,
            // At most 65 535 Packet Identifiers exist; a bigger window could never fill.
            max_in_flight: max_in_flight.clamp(1, MAX_INFLIGHT_MESSAGES),
        }
    }

    /// Whether another QoS 1 or 2 message may be sent now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.max_in_flight
    }

    /// Whether messages are out that the client has yet to acknowledge.
    pub fn awaits_acknowledgement(&self) -> bool {
        !self.in_flight.is_empty()
    }

    #[cfg(test)]
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// Puts back a message that was in flight when the broker stopped, with its Packet
    /// Identifier and stage, to be re-sent when the client returns ([MQTT-4.4.0-1]).
    pub fn restore(&mut self, id: PacketId, delivery: Delivery, stage: Stage) {
        self.ids_in_use.insert(id);
        self.last_id = self.last_id.max(id);
        self.in_flight.push_back(InFlight {
            id,
            delivery,
            stage,
        });
    }

    /// Keeps a delivery for later, behind everything already waiting.
    pub fn defer(&mut self, delivery: Delivery) {
        self.pending.push_back(delivery);
    }

    /// The next deferred delivery, if the window has room for it.
    pub fn next_deferred(&mut self) -> Option<Delivery> {
        if self.has_room() {
            self.pending.pop_front()
        } else {
            None
        }
    }

    pub fn has_deferred(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn deferred_count(&self) -> usize {
        self.pending.len()
    }

    /// Turns a delivery into the PUBLISH to write, and records it as in flight when its QoS
    /// is 1 or 2. The caller checks [`Outbound::has_room`] first for those.
    pub fn send(&mut self, delivery: Delivery) -> Publish {
        let packet_id = match delivery.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce | QoS::ExactlyOnce => Some(self.allocate_id()),
        };
        // [MQTT-3.3.1-3] DUP is 0 on a first attempt, whatever the publisher sent.
        let publish = to_publish(&delivery, packet_id, false);
        if let Some(id) = packet_id {
            // [MQTT-4.3.2-1] [MQTT-4.3.3-1] unacknowledged until PUBACK / PUBREC arrives.
            self.ids_in_use.insert(id);
            self.in_flight.push_back(InFlight {
                id,
                delivery,
                stage: Stage::Published,
            });
        }
        publish
    }

    /// What to send again when the client reconnects to this session ([MQTT-4.4.0-1]): every
    /// unacknowledged PUBLISH with DUP 1 ([MQTT-3.3.1-1]) and every unacknowledged PUBREL,
    /// in their original order, with their original Packet Identifiers.
    pub fn resend(&self) -> Vec<Packet> {
        self.in_flight
            .iter()
            .map(|entry| match entry.stage {
                Stage::Published => {
                    Packet::Publish(to_publish(&entry.delivery, Some(entry.id), true))
                }
                // [MQTT-4.3.3-1] never the PUBLISH again once PUBREL has gone out.
                Stage::Released => Packet::Pubrel(entry.id),
            })
            .collect()
    }

    /// Applies an acknowledgement from the client and returns the packet to send in answer,
    /// if any. An acknowledgement for an identifier we do not have in flight is logged and
    /// otherwise ignored (it may finish an exchange from before a reconnect), except PUBREC,
    /// which is answered with PUBREL anyway so that the client can finish its side. An
    /// acknowledgement of the wrong kind for the message it names is a [`WrongAck`]: the
    /// connection must close ([MQTT-4.8.0-1]).
    pub fn acknowledge(&mut self, ack: ClientAck) -> Result<Option<Packet>, WrongAck> {
        let id = ack.packet_id();
        let Some(index) = self.in_flight.iter().position(|entry| entry.id == id) else {
            log::debug!("{ack:?}: no message with id {id} is in flight");
            return Ok(match ack {
                ClientAck::Pubrec(_) => Some(Packet::Pubrel(id)),
                ClientAck::Puback(_) | ClientAck::Pubcomp(_) => None,
            });
        };
        let entry = &mut self.in_flight[index];
        match (ack, entry.delivery.qos, entry.stage) {
            // [MQTT-4.3.2-1] PUBACK ends a QoS 1 delivery; [MQTT-2.3.1-4] the id is free.
            (ClientAck::Puback(_), QoS::AtLeastOnce, _) => {
                self.release_entry(index);
                Ok(None)
            }
            // [MQTT-4.3.3-1] PUBREC moves a QoS 2 message to "released" (a repeated PUBREC
            // finds it there), answered at once with PUBREL, same identifier
            // ([MQTT-2.3.1-6]), so PUBRELs leave in the order PUBRECs came ([MQTT-4.6.0-4]).
            (ClientAck::Pubrec(_), QoS::ExactlyOnce, _) => {
                entry.stage = Stage::Released;
                Ok(Some(Packet::Pubrel(id)))
            }
            // [MQTT-4.3.3-1] PUBCOMP ends a released QoS 2 message; the id is free.
            (ClientAck::Pubcomp(_), QoS::ExactlyOnce, Stage::Released) => {
                self.release_entry(index);
                Ok(None)
            }
            (ack, qos, stage) => Err(WrongAck { ack, qos, stage }),
        }
    }

    /// Forgets the message at `index` of the in-flight list, and frees its identifier.
    fn release_entry(&mut self, index: usize) {
        if let Some(entry) = self.in_flight.remove(index) {
            self.ids_in_use.remove(&entry.id);
        }
    }

    /// A Packet Identifier not in use by any message in flight ([MQTT-2.3.1-4]). Counts
    /// upwards from 1, wrapping round after 65 535 and skipping 0 and identifiers in use.
    fn allocate_id(&mut self) -> PacketId {
        loop {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            let id = self.last_id;
            if !self.ids_in_use.contains(&id) {
                return id;
            }
        }
    }
}

/// The PUBLISH for a delivery: its own QoS, RETAIN only for a retained message sent because
/// of a new subscription ([MQTT-3.3.1-8], [MQTT-3.3.1-9]), DUP only on a re-send, so never
/// on QoS 0 ([MQTT-4.3.1-1]). The topic is the one it was published to, which matched the
/// subscription's filter ([MQTT-3.3.2-3]).
fn to_publish(delivery: &Delivery, packet_id: Option<PacketId>, dup: bool) -> Publish {
    Publish {
        dup,
        qos: delivery.qos,
        retain: delivery.retain,
        topic: delivery.message.topic.clone(),
        packet_id,
        payload: delivery.message.payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Message;
    use std::sync::Arc;

    fn delivery(qos: QoS, payload: &str) -> Delivery {
        Delivery {
            message: Message {
                topic: "t".into(),
                payload: Arc::from(payload.as_bytes()),
                qos,
                retain: false,
                stored: None,
            },
            qos,
            retain: false,
        }
    }

    #[test]
    fn qos0_is_sent_without_id_and_not_kept_mqtt_2_3_1_5() {
        let mut out = Outbound::new(2);
        let publish = out.send(delivery(QoS::AtMostOnce, "a"));
        assert_eq!(publish.packet_id, None);
        assert_eq!(out.in_flight_count(), 0);
    }

    #[test]
    fn qos1_is_in_flight_until_puback_mqtt_4_3_2_1() {
        let mut out = Outbound::new(2);
        let publish = out.send(delivery(QoS::AtLeastOnce, "a"));
        assert_eq!(publish.packet_id, Some(1));
        assert!(!publish.dup);
        assert_eq!(out.in_flight_count(), 1);
        assert_eq!(out.acknowledge(ClientAck::Puback(1)), Ok(None));
        assert_eq!(out.in_flight_count(), 0);
    }

    #[test]
    fn qos2_goes_published_released_complete_mqtt_4_3_3_1() {
        let mut out = Outbound::new(2);
        let id = out.send(delivery(QoS::ExactlyOnce, "a")).packet_id.unwrap();
        assert_eq!(
            out.acknowledge(ClientAck::Pubrec(id)),
            Ok(Some(Packet::Pubrel(id)))
        );
        // After PUBREL, a reconnect re-sends the PUBREL, never the PUBLISH.
        assert_eq!(out.resend(), [Packet::Pubrel(id)]);
        assert_eq!(out.acknowledge(ClientAck::Pubcomp(id)), Ok(None));
        assert_eq!(out.in_flight_count(), 0);
    }

    #[test]
    fn an_acknowledgement_of_the_wrong_kind_is_refused_mqtt_4_8_0_1() {
        let mut out = Outbound::new(10);
        let qos1 = out.send(delivery(QoS::AtLeastOnce, "a")).packet_id.unwrap();
        let qos2 = out.send(delivery(QoS::ExactlyOnce, "b")).packet_id.unwrap();
        let wrong = [
            (ClientAck::Pubrec(qos1), QoS::AtLeastOnce),
            (ClientAck::Pubcomp(qos1), QoS::AtLeastOnce),
            (ClientAck::Puback(qos2), QoS::ExactlyOnce),
            // PUBCOMP before PUBREC: the message was never released.
            (ClientAck::Pubcomp(qos2), QoS::ExactlyOnce),
        ];
        for (ack, qos) in wrong {
            let refused = out.acknowledge(ack).expect_err("a wrong acknowledgement");
            assert_eq!((refused.ack, refused.qos), (ack, qos));
        }
        assert_eq!(out.in_flight_count(), 2, "nothing was acknowledged");
        let shown = out
            .acknowledge(ClientAck::Puback(qos2))
            .unwrap_err()
            .to_string();
        assert_eq!(
            shown,
            "PUBACK for id 2, a QoS 2 message awaiting its first acknowledgement"
        );
    }

    #[test]
    fn the_window_limits_what_is_in_flight() {
        let mut out = Outbound::new(2);
        out.send(delivery(QoS::AtLeastOnce, "a"));
        assert!(out.has_room());
        out.send(delivery(QoS::AtLeastOnce, "b"));
        assert!(!out.has_room());
        out.defer(delivery(QoS::AtLeastOnce, "c"));
        assert!(out.next_deferred().is_none());
        out.acknowledge(ClientAck::Puback(1)).unwrap();
        assert_eq!(&out.next_deferred().unwrap().message.payload[..], b"c");
    }

    #[test]
    fn resend_keeps_order_ids_and_sets_dup_mqtt_4_4_0_1_mqtt_3_3_1_1() {
        let mut out = Outbound::new(10);
        for payload in ["a", "b", "c"] {
            out.send(delivery(QoS::ExactlyOnce, payload));
        }
        out.acknowledge(ClientAck::Pubrec(2)).unwrap();
        let resent = out.resend();
        let Packet::Publish(first) = &resent[0] else {
            panic!("expected PUBLISH");
        };
        assert_eq!(
            (first.packet_id, first.dup, &first.payload[..]),
            (Some(1), true, &b"a"[..])
        );
        assert_eq!(resent[1], Packet::Pubrel(2));
        let Packet::Publish(third) = &resent[2] else {
            panic!("expected PUBLISH");
        };
        assert_eq!((third.packet_id, third.dup), (Some(3), true));
    }

    #[test]
    fn ids_skip_zero_and_those_in_use_mqtt_2_3_1_4() {
        let mut out = Outbound::new(10);
        out.last_id = u16::MAX - 1;
        let a = out.send(delivery(QoS::AtLeastOnce, "a")).packet_id.unwrap();
        assert_eq!(a, u16::MAX);
        let b = out.send(delivery(QoS::AtLeastOnce, "b")).packet_id.unwrap();
        assert_eq!(b, 1, "wraps round, skipping 0");
        // Id 2 is taken by something still in flight after another wrap.
        out.last_id = u16::MAX;
        out.acknowledge(ClientAck::Puback(u16::MAX)).unwrap();
        let c = out.send(delivery(QoS::AtLeastOnce, "c")).packet_id.unwrap();
        assert_eq!(c, 2, "1 is in use, so 2");
    }

    #[test]
    fn the_window_cannot_exceed_the_number_of_packet_identifiers() {
        let mut out = Outbound::new(usize::MAX);
        for _ in 0..MAX_INFLIGHT_MESSAGES {
            assert!(out.has_room());
            out.send(delivery(QoS::AtLeastOnce, "x"));
        }
        assert!(
            !out.has_room(),
            "every identifier is in use: nothing more may be sent"
        );
    }

    #[test]
    fn an_unknown_pubrec_is_still_answered_with_pubrel() {
        let mut out = Outbound::new(1);
        assert_eq!(
            out.acknowledge(ClientAck::Pubrec(99)),
            Ok(Some(Packet::Pubrel(99)))
        );
    }
}
