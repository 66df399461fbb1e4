//! The publisher thread: every publisher's socket in one mio loop.
//!
//! Each turn of the loop, every publisher
//! 1. reads what the broker sent it (PUBACK, PUBREC, PUBCOMP for QoS 1 and 2),
//! 2. appends as many PUBLISH packets as its **window** allows to its output buffer,
//! 3. writes that buffer with one system call.
//!
//! When no publisher can do anything, the thread sleeps in `poll` until a socket becomes
//! writable or readable, or the subscriber thread wakes it because a subscriber caught up.
//!
//! ## The window
//!
//! A publisher may be at most `window` messages ahead of the *slowest subscriber that
//! receives its messages*: with `seen` the number one past the highest sequence number
//! that subscriber has received, it may send message `seq` only while
//! `seq < seen + window`. That makes the load generator measure how fast the broker
//! *delivers*, not how fast it can swallow bytes into a queue, and it keeps every broker
//! queue below `window` messages per publisher, so a broker that bounds its queues is not
//! pushed into dropping. At QoS 1 and 2 the protocol's acknowledgements bound it as well:
//! at most `window` messages await their PUBACK (or PUBCOMP).
//!
//! If the slowest subscriber does not move for [`STALL_AFTER`] while the window is full,
//! its missing messages are taken as lost (the accounting will count them) and the window
//! opens again from the current sequence number; the run reports how often that happened
//! as `stalls`.

use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use mqttd::codec::{Packet, PacketId, PacketType, QoS};

use crate::buffers::Link;
use crate::fail::Fail;
use crate::shared::Shared;
use crate::transport::MioStream;
use crate::wire::{self, PublishTemplate, RawFrame, Stamp, MAX_PACKET};

/// The token of the waker the subscriber thread uses; publishers use their index.
pub const WAKER: Token = Token(usize::MAX);

/// At most this many messages are appended per publisher per loop turn, so that one
/// publisher cannot starve the others of the thread's time.
const BATCH: u32 = 256;

/// A full window that has not moved for this long counts as a stall (see the module doc).
const STALL_AFTER: Duration = Duration::from_millis(500);

/// After sending stops, how long to wait for the last acknowledgements.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The longest sleep in `poll`: a safety net if a wake-up is missed, and how often a stall
/// is noticed.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// Settings common to all publishers of a run.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub qos: QoS,
    pub window: u32,
    /// Messages per second per publisher, or `None` for as fast as the window allows.
    pub rate: Option<f64>,
    /// Sending stops this long after `Shared::epoch`.
    pub send_for: Duration,
}

/// What a publisher reports at the end of the run.
#[derive(Debug, Clone, Copy)]
pub struct PublisherReport {
    pub sent: u32,
    pub stalls: u32,
    /// QoS 1/2 messages still waiting for their acknowledgement when the run ended.
    pub unacked: u32,
}

#[derive(Debug)]
pub struct Publisher {
    /// The publisher number written into every stamp.
    id: u16,
    name: String,
    link: Link<MioStream>,
    template: PublishTemplate,
    /// Messages sent so far, which is also the next sequence number.
    sent: u32,
    /// `Shared::seen` slots of the subscribers that receive this publisher's messages.
    watchers: Vec<usize>,
    /// Raised to `sent` after a stall, so the window no longer waits for lost messages.
    floor: u32,
    /// Since when the window has been full, if it is.
    full_since: Option<Instant>,
    stalls: u32,
    inflight: Inflight,
}

impl Publisher {
    pub fn new(
        id: u16,
        name: String,
        stream: MioStream,
        template: PublishTemplate,
        watchers: Vec<usize>,
    ) -> Publisher {
        Publisher {
            id,
            name,
            link: Link::new(stream, MAX_PACKET),
            template,
            sent: 0,
            watchers,
            floor: 0,
            full_since: None,
            stalls: 0,
            inflight: Inflight::new(),
        }
    }

    pub fn stream_mut(&mut self) -> &mut MioStream {
        &mut self.link.stream
    }

    /// One turn: read acknowledgements, queue what the window allows, write. Returns
    /// whether anything happened.
    fn step(
        &mut self,
        now: Instant,
        sending: bool,
        config: &PublisherConfig,
        shared: &Shared,
    ) -> Result<bool, Fail> {
        let mut progress = false;
        if self.link.readable {
            progress |= self.read_acknowledgements()?;
        }
        if sending {
            progress |= self.queue_messages(now, config, shared) > 0;
        }
        progress |= self.link.flush()? > 0;
        Ok(progress)
    }

    fn read_acknowledgements(&mut self) -> Result<bool, Fail> {
        let name = &self.name;
        let inflight = &mut self.inflight;
        let output = &mut self.link.output;
        let received = self
            .link
            .input
            .read_packets(&mut self.link.stream, |frame| {
                on_packet(name, inflight, output.bytes_mut(), frame)
            })?;
        self.link.readable = false;
        if received.closed {
            return Err(Fail::Protocol(format!(
                "{}: the broker closed the connection",
                self.name
            )));
        }
        Ok(received.bytes > 0)
    }

    /// Appends as many messages as allowed; returns how many.
    fn queue_messages(&mut self, now: Instant, config: &PublisherConfig, shared: &Shared) -> u32 {
        let count = self.allowance(now, config, shared);
        if count == 0 {
            return 0;
        }
        // One clock reading per batch: the messages of a batch leave in the same write.
        let sent_ns = shared.now_ns();
        let out = self.link.output.bytes_mut();
        for _ in 0..count {
            let packet_id = match config.qos {
                QoS::AtMostOnce => None,
                qos => Some(self.inflight.take(qos)),
            };
            let stamp = Stamp {
                publisher: self.id,
                seq: self.sent,
                sent_ns,
            };
            self.template.append(out, packet_id, &stamp);
            self.sent += 1;
        }
        count
    }

    /// How many messages may go now: the smallest of what the subscribers' window, the
    /// protocol acknowledgements, the rate limit and the batch size allow.
    fn allowance(&mut self, now: Instant, config: &PublisherConfig, shared: &Shared) -> u32 {
        let by_acks = match config.qos {
            QoS::AtMostOnce => u32::MAX,
            _ => config.window.saturating_sub(self.inflight.count),
        };
        let by_rate = self.rate_credit(now, config, shared);
        let by_receivers = self.receiver_credit(now, config.window, shared);
        by_receivers.min(by_acks).min(by_rate).min(BATCH)
    }

    /// Messages we may send before being `window` ahead of the slowest subscriber.
    fn receiver_credit(&mut self, now: Instant, window: u32, shared: &Shared) -> u32 {
        let slowest = self
            .watchers
            .iter()
            .map(|&slot| shared.seen(slot))
            .min()
            .unwrap_or(self.sent);
        let credit = slowest
            .max(self.floor)
            .saturating_add(window)
            .saturating_sub(self.sent);
        if credit > 0 {
            self.full_since = None;
            return credit;
        }
        let since = *self.full_since.get_or_insert(now);
        if now.duration_since(since) < STALL_AFTER {
            return 0;
        }
        // The slowest subscriber has not moved for a while: what it misses is lost.
        self.stalls += 1;
        self.floor = self.sent;
        self.full_since = None;
        window
    }

    /// With `--rate`, message `k` is due `k / rate` seconds after the start.
    fn rate_credit(&self, now: Instant, config: &PublisherConfig, shared: &Shared) -> u32 {
        let Some(rate) = config.rate else {
            return u32::MAX;
        };
        let elapsed = now.saturating_duration_since(shared.epoch).as_secs_f64();
        // By now messages 0 ..= floor(elapsed × rate) are due. (`as` saturates on floats.)
        let due = (elapsed * rate) as u64 + 1;
        u32::try_from(due.saturating_sub(u64::from(self.sent))).unwrap_or(u32::MAX)
    }

    /// When the next message is due, with `--rate`.
    fn next_due(&self, config: &PublisherConfig, shared: &Shared) -> Option<Instant> {
        let rate = config.rate?;
        Some(shared.epoch + Duration::from_secs_f64(f64::from(self.sent) / rate))
    }

    /// Everything written and acknowledged.
    fn settled(&self) -> bool {
        !self.link.unsent() && self.inflight.count == 0
    }

    fn report(&self) -> PublisherReport {
        PublisherReport {
            sent: self.sent,
            stalls: self.stalls,
            unacked: self.inflight.count,
        }
    }
}

/// Handles one packet from the broker to a publisher: only acknowledgements are expected.
fn on_packet(
    name: &str,
    inflight: &mut Inflight,
    out: &mut Vec<u8>,
    frame: RawFrame<'_>,
) -> Result<(), Fail> {
    let packet = wire::decode(&frame).map_err(|e| Fail::Protocol(format!("{name}: {e}")))?;
    let answer = match packet {
        Packet::Puback(id) => inflight.acknowledge(PacketType::Puback, id),
        Packet::Pubrec(id) => inflight.acknowledge(PacketType::Pubrec, id),
        Packet::Pubcomp(id) => inflight.acknowledge(PacketType::Pubcomp, id),
        Packet::Pingresp => Ok(None),
        other => Err(format!("unexpected {other}")),
    }
    .map_err(|e| Fail::Protocol(format!("{name}: {e}")))?;
    if let Some(answer) = answer {
        answer.encode(out);
    }
    Ok(())
}

/// Where a QoS 1 or 2 message is in its handshake (§4.3.2, §4.3.3, sender side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Free,
    AwaitPuback,
    AwaitPubrec,
    AwaitPubcomp,
}

/// Packet Identifiers in use by one publisher's unacknowledged messages.
#[derive(Debug)]
struct Inflight {
    /// Indexed by Packet Identifier; allocated on first use (QoS 0 never needs it).
    stages: Vec<Stage>,
    count: u32,
    last_id: PacketId,
}

impl Inflight {
    fn new() -> Inflight {
        Inflight {
            stages: Vec::new(),
            count: 0,
            last_id: 0,
        }
    }

    /// The next free identifier. The window is at most 65 535, so one is always free.
    fn take(&mut self, qos: QoS) -> PacketId {
        if self.stages.is_empty() {
            self.stages = vec![Stage::Free; usize::from(u16::MAX) + 1];
        }
        loop {
            // [MQTT-2.3.1-1] identifiers are 1..=65535: skip 0 when wrapping round.
            self.last_id = self.last_id.wrapping_add(1).max(1);
            let stage = &mut self.stages[usize::from(self.last_id)];
            if *stage == Stage::Free {
                *stage = match qos {
                    QoS::ExactlyOnce => Stage::AwaitPubrec,
                    _ => Stage::AwaitPuback,
                };
                self.count += 1;
                return self.last_id;
            }
        }
    }

    /// Moves a message along its handshake; returns the PUBREL to send after a PUBREC.
    fn acknowledge(&mut self, packet: PacketType, id: PacketId) -> Result<Option<Packet>, String> {
        let stage = self.stages.get_mut(usize::from(id));
        let (expected, next, answer) = match packet {
            PacketType::Puback => (Stage::AwaitPuback, Stage::Free, None),
            PacketType::Pubrec => (
                Stage::AwaitPubrec,
                Stage::AwaitPubcomp,
                Some(Packet::Pubrel(id)),
            ),
            _ => (Stage::AwaitPubcomp, Stage::Free, None),
        };
        match stage {
            Some(stage) if *stage == expected => {
                *stage = next;
                if next == Stage::Free {
                    self.count -= 1;
                }
                Ok(answer)
            }
            _ => Err(format!(
                "{packet} for Packet Identifier {id}, which is not waiting for one"
            )),
        }
    }
}

/// The publisher thread's loop; returns one report per publisher.
pub fn run(
    mut publishers: Vec<Publisher>,
    mut poll: Poll,
    shared: &Shared,
    config: &PublisherConfig,
) -> Result<Vec<PublisherReport>, Fail> {
    let mut events = Events::with_capacity(1024);
    let send_end = shared.epoch + config.send_for;
    loop {
        let now = Instant::now();
        shared.check(now, "publisher thread")?;
        let sending = now < send_end;
        if !sending {
            if !shared.publishers_done() {
                shared.finish_sending(publishers.iter().map(|p| p.sent));
            }
            if publishers.iter().all(Publisher::settled) || now >= send_end + DRAIN_LIMIT {
                break;
            }
        }
        if step_all(&mut publishers, now, sending, config, shared)? {
            continue;
        }
        // Nothing to do. Say so, look once more (see `Shared::park_publishers`), sleep.
        shared.park_publishers();
        if !step_all(&mut publishers, Instant::now(), sending, config, shared)? {
            let nap = nap_length(&publishers, now, send_end, config, shared);
            wait(&mut poll, &mut events, &mut publishers, nap)?;
        }
        shared.unpark_publishers();
    }
    for publisher in &mut publishers {
        // Best effort: a broker that already closed the connection changes no figure.
        Packet::Disconnect.encode(publisher.link.output.bytes_mut());
        let _ = publisher.link.flush();
        let _ = publisher.link.stream.close();
    }
    Ok(publishers.iter().map(Publisher::report).collect())
}

fn step_all(
    publishers: &mut [Publisher],
    now: Instant,
    sending: bool,
    config: &PublisherConfig,
    shared: &Shared,
) -> Result<bool, Fail> {
    let mut progress = false;
    for publisher in publishers {
        progress |= publisher.step(now, sending, config, shared)?;
    }
    Ok(progress)
}

/// How long to sleep: until the next message is due (with `--rate`), until sending
/// stops, and never more than [`IDLE_POLL`].
fn nap_length(
    publishers: &[Publisher],
    now: Instant,
    send_end: Instant,
    config: &PublisherConfig,
    shared: &Shared,
) -> Duration {
    let mut until = now + IDLE_POLL;
    if now < send_end {
        until = until.min(send_end);
        for publisher in publishers {
            // A message already due and still unsent waits for its window or its socket,
            // and those wake us up: only a future due time is worth a timer.
            if let Some(due) = publisher.next_due(config, shared).filter(|&due| due > now) {
                until = until.min(due);
            }
        }
    }
    until.saturating_duration_since(Instant::now())
}

/// Sleeps, then records which sockets became readable or writable.
///
/// `poll` counts its timeout in whole milliseconds, rounding up. A rate of 10 000 messages
/// a second needs a message every 100 µs, so short naps use `thread::sleep` (microsecond
/// precision) and then collect events without waiting.
fn wait(
    poll: &mut Poll,
    events: &mut Events,
    publishers: &mut [Publisher],
    nap: Duration,
) -> Result<(), Fail> {
    let timeout = if nap < Duration::from_millis(1) {
        thread::sleep(nap);
        Duration::ZERO
    } else {
        nap
    };
    match poll.poll(events, Some(timeout)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
        Err(e) => return Err(Fail::io("poll (publishers)")(e)),
    }
    for event in events.iter() {
        if let Some(publisher) = publishers.get_mut(event.token().0) {
            publisher.link.on_event(event);
        }
    }
    Ok(())
}
