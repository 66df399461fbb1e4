//! The subscriber thread: every subscriber's socket in one mio loop.
//!
//! Each time a socket becomes readable, the subscriber reads until the socket is empty,
//! records every message in its books (see `accounting`), publishes its progress for the
//! publishers' windows, and answers QoS 1 and 2 messages as the protocol asks (PUBACK; or
//! PUBREC, then PUBCOMP when the broker's PUBREL comes). After each batch of events it
//! wakes the publisher thread if that thread is asleep waiting for exactly this progress.
//!
//! It stops when the publishers have stopped and every subscriber has every message they
//! sent, or when nothing has arrived for [`DRAIN_IDLE`] after they stopped: whatever is
//! missing then is counted as lost.
//!
//! The load generator never reconnects, so a broker has no reason ever to send a message
//! twice; every second copy is counted as a duplicate, at every QoS.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use mqttd::codec::{Packet, PacketId, PacketType, QoS};

use crate::accounting::SourceLog;
use crate::buffers::{Link, OutBuf};
use crate::fail::Fail;
use crate::shared::Shared;
use crate::transport::MioStream;
use crate::wire::{self, PublishView, RawFrame, Stamp, MAX_PACKET};

/// Once the publishers have stopped, give up waiting after this long without a message.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// The longest sleep in `poll`, so that the end of the run and an abort are noticed.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);

/// What a subscriber reports at the end of the run.
#[derive(Debug, Default)]
pub struct SubscriberReport {
    /// Every PUBLISH that arrived, duplicates included.
    pub received: u64,
    /// Different messages (publisher, sequence number) that arrived.
    pub distinct: u64,
    pub duplicates: u64,
    /// Arrived after a message with a higher sequence number from the same publisher.
    pub late: u64,
    /// Sent by a publisher it listens to and never arrived.
    pub lost: u64,
    /// Nanoseconds after `Shared::epoch` of the last arrival.
    pub last_arrival_ns: u64,
    pub latencies_ns: Vec<u64>,
}

#[derive(Debug)]
pub struct Subscriber {
    link: Link<MioStream>,
    book: Book,
}

/// Everything a subscriber knows about what it received, apart from the socket.
#[derive(Debug)]
struct Book {
    /// This subscriber's number, for `Shared::seen_slot`.
    index: usize,
    name: String,
    /// Indexed by publisher number; `None` for publishers it does not listen to.
    sources: Vec<Option<SourceLog>>,
    /// QoS 2 messages answered with PUBREC whose PUBREL has not come yet.
    awaiting_release: HashSet<PacketId>,
    received: u64,
    last_arrival_ns: u64,
    record_latency: bool,
    latencies_ns: Vec<u64>,
}

impl Subscriber {
    /// `sources[p]` is true when this subscriber receives publisher `p`'s messages.
    pub fn new(
        index: usize,
        name: String,
        stream: MioStream,
        sources: &[bool],
        record_latency: bool,
    ) -> Subscriber {
        Subscriber {
            link: Link::new(stream, MAX_PACKET),
            book: Book {
                index,
                name,
                sources: sources
                    .iter()
                    .map(|&listens| listens.then(SourceLog::default))
                    .collect(),
                awaiting_release: HashSet::new(),
                received: 0,
                last_arrival_ns: 0,
                record_latency,
                latencies_ns: Vec::new(),
            },
        }
    }

    pub fn stream_mut(&mut self) -> &mut MioStream {
        &mut self.link.stream
    }

    /// Reads everything available, records it, sends the answers. Returns bytes read.
    fn serve(&mut self, shared: &Shared) -> Result<usize, Fail> {
        let mut bytes = 0;
        if self.link.readable {
            let arrived_ns = shared.now_ns();
            let book = &mut self.book;
            let output = &mut self.link.output;
            let received = self
                .link
                .input
                .read_packets(&mut self.link.stream, |frame| {
                    book.on_packet(frame, output, shared, arrived_ns)
                })?;
            self.link.readable = false;
            if received.closed {
                return Err(Fail::Protocol(format!(
                    "{}: the broker closed the connection",
                    self.book.name
                )));
            }
            bytes = received.bytes;
        }
        self.link.flush()?;
        Ok(bytes)
    }

    fn report(self, shared: &Shared) -> SubscriberReport {
        let book = self.book;
        let mut report = SubscriberReport {
            received: book.received,
            last_arrival_ns: book.last_arrival_ns,
            latencies_ns: book.latencies_ns,
            ..SubscriberReport::default()
        };
        for (publisher, log) in book.sources.iter().enumerate() {
            let Some(log) = log else { continue };
            report.distinct += log.distinct;
            report.duplicates += log.duplicates;
            report.late += log.late;
            report.lost += u64::from(shared.sent(publisher)).saturating_sub(log.distinct);
        }
        report
    }
}

impl Book {
    fn on_packet(
        &mut self,
        frame: RawFrame<'_>,
        output: &mut OutBuf,
        shared: &Shared,
        arrived_ns: u64,
    ) -> Result<(), Fail> {
        // PUBLISH is the hot path and is read in place; anything else goes to the codec.
        if wire::packet_type(&frame)? == PacketType::Publish {
            let publish = wire::parse_publish(&frame)?;
            return self.on_publish(&publish, output, shared, arrived_ns);
        }
        match wire::decode(&frame)? {
            Packet::Pubrel(id) => {
                // [MQTT-4.3.3-2] (receiver side) answer PUBREL with PUBCOMP.
                self.awaiting_release.remove(&id);
                Packet::Pubcomp(id).encode(output.bytes_mut());
                Ok(())
            }
            Packet::Pingresp => Ok(()),
            other => Err(Fail::Protocol(format!("{}: unexpected {other}", self.name))),
        }
    }

    fn on_publish(
        &mut self,
        publish: &PublishView<'_>,
        output: &mut OutBuf,
        shared: &Shared,
        arrived_ns: u64,
    ) -> Result<(), Fail> {
        let stamp = Stamp::read(publish.payload).ok_or_else(|| {
            Fail::Protocol(format!(
                "{}: a message on {:?} without a load generator stamp",
                self.name,
                String::from_utf8_lossy(publish.topic)
            ))
        })?;
        let publisher = usize::from(stamp.publisher);
        let Some(Some(log)) = self.sources.get_mut(publisher) else {
            return Err(Fail::Protocol(format!(
                "{}: a message from publisher {publisher}, which it does not subscribe to",
                self.name
            )));
        };
        log.record(stamp.seq);
        shared.set_seen(shared.seen_slot(self.index, publisher), log.next());
        self.received += 1;
        self.last_arrival_ns = arrived_ns;
        if self.record_latency {
            // A fresh clock reading per message: the batch's reading is too coarse here.
            self.latencies_ns
                .push(shared.now_ns().saturating_sub(stamp.sent_ns));
        }
        self.acknowledge(publish, output);
        Ok(())
    }

    /// The receiver's side of QoS 1 (§4.3.2) and QoS 2 (§4.3.3).
    fn acknowledge(&mut self, publish: &PublishView<'_>, output: &mut OutBuf) {
        match (publish.qos, publish.packet_id) {
            // [MQTT-4.3.2-2] answer a QoS 1 PUBLISH with PUBACK.
            (QoS::AtLeastOnce, Some(id)) => Packet::Puback(id).encode(output.bytes_mut()),
            // [MQTT-4.3.3-2] answer a QoS 2 PUBLISH with PUBREC, and wait for PUBREL.
            (QoS::ExactlyOnce, Some(id)) => {
                self.awaiting_release.insert(id);
                Packet::Pubrec(id).encode(output.bytes_mut());
            }
            _ => {}
        }
    }

    /// Has everything each of its publishers sent (valid once the publishers are done).
    fn complete(&self, shared: &Shared) -> bool {
        self.awaiting_release.is_empty()
            && self
                .sources
                .iter()
                .enumerate()
                .all(|(publisher, log)| match log {
                    Some(log) => log.distinct >= u64::from(shared.sent(publisher)),
                    None => true,
                })
    }
}

/// The subscriber thread's loop; returns one report per subscriber.
pub fn run(
    mut subscribers: Vec<Subscriber>,
    mut poll: Poll,
    shared: &Shared,
) -> Result<Vec<SubscriberReport>, Fail> {
    let mut events = Events::with_capacity(1024);
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        shared.check(now, "subscriber thread")?;
        if shared.publishers_done()
            && (subscribers.iter().all(|s| s.book.complete(shared))
                || now.duration_since(last_progress) >= DRAIN_IDLE)
        {
            break;
        }
        match poll.poll(&mut events, Some(POLL_TIMEOUT)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Fail::io("poll (subscribers)")(e)),
        }
        for event in events.iter() {
            let Some(subscriber) = subscribers.get_mut(event.token().0) else {
                continue;
            };
            subscriber.link.on_event(event);
            if subscriber.serve(shared)? > 0 {
                last_progress = Instant::now();
            }
        }
        shared.wake_publishers()?;
    }
    for subscriber in &mut subscribers {
        // Best effort, as for the publishers.
        Packet::Disconnect.encode(subscriber.link.output.bytes_mut());
        let _ = subscriber.link.flush();
        let _ = subscriber.link.stream.close();
    }
    Ok(subscribers.into_iter().map(|s| s.report(shared)).collect())
}
