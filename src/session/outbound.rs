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
//!
//! **Cost per message.** The window may be as wide as 65 535 messages
//! (`--max-inflight 65535`), so nothing done once per message may walk the window:
//! `send`, `acknowledge` and the choice of a free Packet Identifier each take a time that
//! does not grow with the number of messages in flight. The messages in flight are kept by
//! Packet Identifier, because that is all an acknowledgement names; the order they were
//! sent in, which only a reconnect needs, is a number in each entry, sorted by `resend`.

use std::collections::VecDeque;
use std::fmt;

use crate::codec::{InFlightMap, Packet, PacketId, Publish, QoS};
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
    /// The messages in flight, by Packet Identifier: an acknowledgement finds its message
    /// in one look-up, however wide the window (a list in sending order had to be walked,
    /// up to 65 535 entries per acknowledgement), and a re-send still follows the sending
    /// order ([MQTT-4.6.0-1]). The key is also how `allocate_id` tells an identifier in
    /// use from a free one.
    in_flight: InFlightMap<InFlight>,
    /// Deliveries that arrived while the window was full and are not in the Outbox.
    pending: VecDeque<Delivery>,
    /// The last Packet Identifier handed out by counting (see `allocate_id`).
    last_id: PacketId,
    /// Identifiers freed by acknowledgements, the longest free first; kept only when the
    /// window is wider than half of all identifiers (`recycle_ids`), see `allocate_id`.
    freed: VecDeque<PacketId>,
    /// Whether `freed` is kept: decided once, from the window.
    recycle_ids: bool,
    /// The window: how many QoS 1 and 2 messages may be in flight at once.
    max_in_flight: usize,
}

impl Outbound {
    pub fn new(max_in_flight: usize) -> Outbound {
        // At most 65 535 Packet Identifiers exist; a bigger window could never fill.
        let max_in_flight = max_in_flight.clamp(1, MAX_INFLIGHT_MESSAGES);
        Outbound {
            in_flight: InFlightMap::default(),
            pending: VecDeque::new(),
            last_id: 0,
            freed: VecDeque::new(),
            recycle_ids: max_in_flight > MAX_INFLIGHT_MESSAGES / 2,
            max_in_flight,
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
    /// Called in the order they were first sent, before anything new is sent.
    pub fn restore(&mut self, id: PacketId, delivery: Delivery, stage: Stage) {
        self.last_id = self.last_id.max(id);
        self.insert(id, delivery, stage);
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
            self.insert(id, delivery, Stage::Published);
        }
        publish
    }

    /// Records a message as in flight under `id`, after every message before it.
    fn insert(&mut self, id: PacketId, delivery: Delivery, stage: Stage) {
        let entry = InFlight {
            id,
            delivery,
            stage,
        };
        self.in_flight.insert(id, entry);
    }

    /// What to send again when the client reconnects to this session ([MQTT-4.4.0-1]): every
    /// unacknowledged PUBLISH with DUP 1 ([MQTT-3.3.1-1]) and every unacknowledged PUBREL,
    /// in their original order, with their original Packet Identifiers.
    ///
    /// The map holds no order, so `in_order` sorts: n log n for n messages in flight, once
    /// per reconnect, paid so that each acknowledgement can cost O(1).
    pub fn resend(&self) -> Vec<Packet> {
        // [MQTT-4.6.0-1] in the order the PUBLISH packets were first sent.
        self.in_flight
            .in_order()
            .into_iter()
            .map(|(_, entry)| match entry.stage {
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
        let Some(entry) = self.in_flight.get_mut(id) else {
            log::debug!("{ack:?}: no message with id {id} is in flight");
            return Ok(match ack {
                ClientAck::Pubrec(_) => Some(Packet::Pubrel(id)),
                ClientAck::Puback(_) | ClientAck::Pubcomp(_) => None,
            });
        };
        match (ack, entry.delivery.qos, entry.stage) {
            // [MQTT-4.3.2-1] PUBACK ends a QoS 1 delivery; [MQTT-2.3.1-4] the id is free.
            (ClientAck::Puback(_), QoS::AtLeastOnce, _) => {
                self.release_id(id);
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
                self.release_id(id);
                Ok(None)
            }
            (ack, qos, stage) => Err(WrongAck { ack, qos, stage }),
        }
    }

    /// Forgets the message in flight under `id`, which frees the identifier.
    fn release_id(&mut self, id: PacketId) {
        self.in_flight.remove(id);
        if self.recycle_ids {
            self.freed.push_back(id);
        }
    }

    /// A Packet Identifier not in use by any message in flight ([MQTT-2.3.1-4]). Counts
    /// upwards from 1, wrapping round after 65 535 and skipping 0 and identifiers in use;
    /// a window wider than half the identifiers first reuses those in `freed`.
    ///
    /// Counting costs one step per identifier it skips. With at most `w` of the 65 535
    /// identifiers in flight, one turn of the counter skips at most `w` and hands out the
    /// rest, so each identifier costs 65 535 / (65 535 − w) steps on average: at most 2
    /// while `w` is at most half of them. A wider window can be nearly full, and then one
    /// free identifier may lie a whole turn away. So such a window also keeps `freed`, the
    /// identifiers acknowledgements set free, and hands those out first: the counter then
    /// only hands out identifiers never used yet, and every later one comes from `freed`
    /// in one step. (`freed` holds only free identifiers, each once: counting takes over
    /// only when it is empty. A narrow window does without it, and so without its memory:
    /// up to 128 KiB, one `u16` for each free identifier.)
    fn allocate_id(&mut self) -> PacketId {
        while let Some(id) = self.freed.pop_front() {
            // Always free, as said above; checked anyway, as it costs one look-up.
            if !self.in_flight.contains(id) {
                return id;
            }
        }
        loop {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            let id = self.last_id;
            if !self.in_flight.contains(id) {
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

    /// The 65 535 identifiers, each once, in a scrambled but repeatable order: `k` times a
    /// number that shares no factor with 65 535 (3 · 5 · 17 · 257) visits every residue.
    fn scrambled(step: usize) -> Vec<PacketId> {
        let n = MAX_INFLIGHT_MESSAGES;
        (0..n)
            .map(|k| PacketId::try_from(k * step % n + 1).unwrap())
            .collect()
    }

    /// Fills a window of 65 535 with messages at `qos`, the payload of each its sending
    /// number, and checks the identifiers: 1, 2, 3, … while none was ever freed.
    fn full_window(qos: QoS) -> Outbound {
        let mut out = Outbound::new(MAX_INFLIGHT_MESSAGES);
        for k in 1..=MAX_INFLIGHT_MESSAGES {
            let publish = out.send(delivery(qos, &k.to_string()));
            assert_eq!(publish.packet_id.map(usize::from), Some(k));
        }
        assert!(!out.has_room());
        out
    }

    /// What `resend` gives, as (identifier, PUBLISH payload or "PUBREL").
    fn resent(out: &Outbound) -> Vec<(PacketId, String)> {
        out.resend()
            .into_iter()
            .map(|packet| match packet {
                Packet::Publish(p) => {
                    assert!(p.dup, "[MQTT-3.3.1-1] a re-sent PUBLISH has DUP 1");
                    let payload = String::from_utf8(p.payload.to_vec()).unwrap();
                    (p.packet_id.unwrap(), payload)
                }
                Packet::Pubrel(id) => (id, "PUBREL".to_string()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_full_window_of_qos1_acknowledged_out_of_order_frees_exactly_those_ids_mqtt_2_3_1_4() {
        let mut out = full_window(QoS::AtLeastOnce);
        // Acknowledge a scrambled third of the window.
        let acked: Vec<PacketId> = scrambled(7919).into_iter().take(21_845).collect();
        for (done, &id) in acked.iter().enumerate() {
            assert_eq!(out.acknowledge(ClientAck::Puback(id)), Ok(None));
            assert_eq!(out.in_flight_count(), MAX_INFLIGHT_MESSAGES - done - 1);
        }
        // A repeated PUBACK finds nothing and changes nothing.
        assert_eq!(out.acknowledge(ClientAck::Puback(acked[0])), Ok(None));
        // Every other message is still there, untouched, in sending order (id k was the
        // k-th sent, with payload k).
        let acked_set: std::collections::HashSet<PacketId> = acked.iter().copied().collect();
        let expected: Vec<(PacketId, String)> = (1..=u16::MAX)
            .filter(|id| !acked_set.contains(id))
            .map(|id| (id, id.to_string()))
            .collect();
        assert_eq!(resent(&out), expected);
        // New messages reuse exactly the freed identifiers, the longest free first, and
        // none of those still in flight.
        for &id in &acked {
            assert!(out.has_room());
            let publish = out.send(delivery(QoS::AtLeastOnce, &format!("new {id}")));
            assert_eq!(publish.packet_id, Some(id));
        }
        assert!(!out.has_room());
        // [MQTT-4.6.0-1] a reconnect re-sends the old ones first, then the new ones, each
        // in the order it was sent.
        let mut expected_after = expected;
        expected_after.extend(acked.iter().map(|&id| (id, format!("new {id}"))));
        assert_eq!(resent(&out), expected_after);
    }

    #[test]
    fn a_full_window_of_qos2_goes_pubrec_then_pubcomp_in_any_order_mqtt_4_3_3_1() {
        let mut out = full_window(QoS::ExactlyOnce);
        // [MQTT-4.6.0-4] each PUBREC is answered at once by its PUBREL, so PUBRELs leave
        // in the order the PUBRECs came, here a scrambled one.
        for id in scrambled(7919) {
            assert_eq!(
                out.acknowledge(ClientAck::Pubrec(id)),
                Ok(Some(Packet::Pubrel(id)))
            );
        }
        assert_eq!(out.in_flight_count(), MAX_INFLIGHT_MESSAGES);
        // A reconnect re-sends every PUBREL, in the order the PUBLISH packets were sent.
        let all_released: Vec<(PacketId, String)> =
            (1..=u16::MAX).map(|id| (id, "PUBREL".into())).collect();
        assert_eq!(resent(&out), all_released);
        // [MQTT-4.8.0-1] a PUBACK for a released QoS 2 message is refused, and changes
        // nothing.
        let wrong = out.acknowledge(ClientAck::Puback(12_345)).unwrap_err();
        assert_eq!(
            (wrong.qos, wrong.stage),
            (QoS::ExactlyOnce, Stage::Released)
        );
        assert_eq!(resent(&out), all_released);
        // PUBCOMP for half of them, in another order: the others stay released.
        let completed: Vec<PacketId> = scrambled(4099).into_iter().take(32_768).collect();
        for &id in &completed {
            assert_eq!(out.acknowledge(ClientAck::Pubcomp(id)), Ok(None));
        }
        let completed_set: std::collections::HashSet<PacketId> =
            completed.iter().copied().collect();
        let remaining: Vec<(PacketId, String)> = all_released
            .into_iter()
            .filter(|(id, _)| !completed_set.contains(id))
            .collect();
        assert_eq!(resent(&out), remaining);
        // The freed identifiers go to new messages, which start at the first stage.
        for &id in &completed {
            assert_eq!(
                out.send(delivery(QoS::ExactlyOnce, "again")).packet_id,
                Some(id)
            );
        }
        assert!(!out.has_room());
        let first_new = completed[0];
        assert_eq!(
            out.acknowledge(ClientAck::Pubcomp(first_new))
                .unwrap_err()
                .stage,
            Stage::Published,
            "[MQTT-4.8.0-1] PUBCOMP before PUBREC"
        );
    }

    #[test]
    fn a_narrow_window_keeps_counting_upwards_past_ids_in_use_mqtt_2_3_1_4() {
        let mut out = Outbound::new(3);
        for _ in 0..3 {
            out.send(delivery(QoS::AtLeastOnce, "x"));
        }
        // Freeing 2 does not make it the next identifier: counting goes on from 3.
        out.acknowledge(ClientAck::Puback(2)).unwrap();
        assert_eq!(out.send(delivery(QoS::AtLeastOnce, "y")).packet_id, Some(4));
        assert!(
            out.freed.is_empty(),
            "a narrow window keeps no list of freed ids"
        );
    }

    #[test]
    fn restored_messages_are_resent_in_restore_order_and_their_ids_skipped() {
        let mut out = Outbound::new(MAX_INFLIGHT_MESSAGES);
        out.restore(9, delivery(QoS::ExactlyOnce, "a"), Stage::Released);
        out.restore(3, delivery(QoS::AtLeastOnce, "b"), Stage::Published);
        assert_eq!(
            resent(&out),
            [(9, "PUBREL".to_string()), (3, "b".to_string())]
        );
        // Counting starts after the highest restored identifier.
        assert_eq!(
            out.send(delivery(QoS::AtLeastOnce, "c")).packet_id,
            Some(10)
        );
        assert_eq!(out.acknowledge(ClientAck::Pubcomp(9)), Ok(None));
        assert_eq!(out.acknowledge(ClientAck::Puback(3)), Ok(None));
        assert_eq!(resent(&out), [(10, "c".to_string())]);
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
