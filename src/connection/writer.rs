//! The writer thread, `tx:<client id>`: the only code that writes to a client's socket, and
//! the owner of the session's outgoing QoS state while the client is connected.
//!
//! It sleeps on two channels at once: what its own reader asks (control), and the bell of
//! its session's Outbox, which publishers ring after routing a batch of messages to it.
//! Awake, it takes deliveries from the Outbox only while the in-flight window has room, so
//! a client that stops acknowledging stops the flow to itself and nobody else: the
//! messages wait in the session's bounded Outbox.
//!
//! Each packet is encoded onto the end of one `batch` buffer, written out only when there
//! is nothing more to take (or it reaches [`BATCH_LIMIT`]), so a burst of a hundred messages
//! leaves in one `write` system call instead of a hundred. The buffer grows only as far as
//! the batches need (a connection that has sent a CONNACK and a SUBACK holds a few dozen
//! bytes), and one grown past [`KEPT_BATCH_CAPACITY`] by a big burst is given back.

use std::io::{self, Write};
use std::mem::take;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, TryRecvError};

use crate::acl::ClientAcl;
use crate::broker::{Broker, Cutoff, Traffic};
use crate::codec::{Packet, QoS};
use crate::mailbox::{Delivery, Outbox};
use crate::persistence::{Batch, Durable, Record, Ticket};
use crate::protocol::ToWriter;
use crate::session::{ClientAck, Outbound, WriterSide, WrongAck};
use crate::transport::Socket;

use super::{log_sent, panic_message, trace_bytes};

/// One thing to do.
enum Work {
    Control(ToWriter),
    Delivery(Delivery),
}

impl Work {
    /// Whether this is something our own reader asked for on the client's behalf (an
    /// answer such as a PUBREC, or an acknowledgement to apply): the client is in the
    /// middle of an exchange, and its next packet is likely to follow soon.
    fn answers_the_client(&self) -> bool {
        matches!(self, Work::Control(_))
    }
}

/// Everything the writer thread owns besides the session's writer side.
pub(super) struct Writer {
    /// Encoded packets not yet written to the socket.
    batch: Vec<u8>,
    socket: Socket,
    client_id: Arc<str>,
    /// What the reader asks of the writer thread: `never()` (which allocates nothing)
    /// until the thread starts and `start_thread` gives it the channel.
    pub(super) control: Receiver<ToWriter>,
    /// The session's queue: to mark it disconnected, and to report drops.
    outbox: Arc<Outbox>,
    /// To look up retained messages.
    broker: Arc<Broker>,
    /// When dropped messages were last reported.
    last_drop_report: Instant,
    /// What this writer has sent since its last flush, for the broker's counters.
    traffic: Traffic,
    /// Set when the client broke a rule that only the writer can see (an acknowledgement
    /// of the wrong kind): the writer closes the connection and tells the reader why.
    violation: Option<WrongAck>,
    /// With persistence: the journal ticket of the acknowledgements the reader handed over
    /// (`ToWriter::AfterDisk`), which must be fsync'd before the batch is written.
    ticket: Ticket,
    /// The records this batch of packets makes (a PUBLISH sent, a PUBREL, an acknowledgement
    /// received), handed to the journal before the batch is written: see [`Writer::flush`].
    journal: Batch,
}

/// How a writer thread begins.
pub(super) enum Start {
    /// At the connect, with the CONNACK to send first and, on a resumed session, whatever
    /// was in flight to send again.
    Connack(Packet),
    /// Later, when the first delivery arrives (or answers must wait for the journal): the
    /// CONNACK and everything since have already gone out (see `writer_slot.rs`).
    Later,
}

/// What the writer thread hands back to the reader when it ends.
pub(super) struct Finished {
    /// The session's writer side, to be stored or ended with the rest of it.
    pub side: WriterSide,
    /// Why the writer closed the connection, if a rule was broken: the reader logs it
    /// instead of the socket error it sees as a consequence.
    pub violation: Option<WrongAck>,
}

/// Whether to report drops now, or only if the last report is old enough.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    Now,
    WhenDue,
}

/// A batch this big is written out at once, without waiting for the queue to run dry: a
/// long burst of big messages would otherwise grow the buffer without bound.
const BATCH_LIMIT: usize = 64 * 1024;

/// The largest batch buffer a sleeping writer keeps. Keeping it saves an allocation per
/// wake-up (measured: giving it back at every sleep cost a third of the messages/s with
/// 256 subscribers); a bigger one, grown by a burst of big messages, is given back.
const KEPT_BATCH_CAPACITY: usize = 16 * 1024;

/// How many times a writer expecting more work gives its CPU away and looks again before
/// it sleeps (`Writer::next_soon`). Three took the QoS 1 and QoS 2 pairs to their new
/// speed in the first trials; each look costs one `sched_yield` system call, which returns
/// at once when no other thread is waiting for the CPU.
const LOOKS_BEFORE_SLEEP: usize = 3;

/// The shortest time between two "messages were dropped" lines for one client.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(5);

impl Writer {
    pub fn new(
        socket: Socket,
        client_id: Arc<str>,
        outbox: Arc<Outbox>,
        broker: Arc<Broker>,
    ) -> Writer {
        Writer {
            batch: Vec::new(),
            socket,
            client_id,
            control: crossbeam_channel::never(),
            outbox,
            broker,
            last_drop_report: Instant::now(),
            traffic: Traffic::default(),
            violation: None,
            ticket: Ticket::NONE,
            journal: Batch::default(),
        }
    }

    /// Adds a record about the session to the batch, if the session is kept on disk; the
    /// batch is not written before the record is as durable as `needs` says.
    fn record(&mut self, needs: Option<Durable>, change: impl FnOnce(u64) -> Record) {
        if let Some(session) = self.outbox.on_disk() {
            self.journal.push(change(session), needs);
        }
    }

    /// Records what an acknowledgement from the client did to a message in flight.
    fn record_ack(&mut self, ack: ClientAck) {
        let packet_id = ack.packet_id();
        if let ClientAck::Pubrec(_) = ack {
            // [MQTT-4.3.3-1] once PUBREL is out, the PUBLISH is never sent again: not even
            // after a crash, so the PUBREL waits until its record is fsync'd.
            let synced = Some(Durable::Synced);
            self.record(synced, |session| Record::PubrelSent { session, packet_id });
        } else {
            // Lost in a crash, a PUBACK or PUBCOMP only makes the client acknowledge again.
            self.record(None, |session| Record::Delivered { session, packet_id });
        }
    }

    /// Serves the connection until the reader lets go of control or the socket fails.
    #[allow(clippy::boxed_local)] // Boxed on purpose, for the stack: see `writer_slot.rs`.
    pub fn run(mut self: Box<Self>, start: Start, side: WriterSide) -> Finished {
        let WriterSide {
            deliveries,
            mut outbound,
        } = side;
        // A writer thread waits for its client as long as it takes (the teardown's
        // FLUSH_TIMEOUT ends the wait); only the reader's own writes had a time limit.
        let _ = self.socket.set_write_timeout(None);
        // A panic here is a bug in mqttd; it ends this connection like a failed write and
        // harms nobody else ([MQTT-4.8.0-2]). Nothing in `serve` holds a lock across code
        // that can panic, and parking_lot locks are released during unwinding anyway.
        let served = panic::catch_unwind(AssertUnwindSafe(|| {
            self.serve(start, &deliveries, &mut outbound)
        }))
        .unwrap_or_else(|payload| {
            log::error!(
                "client {:?}: writer thread panicked (a bug in mqttd): {}",
                self.client_id,
                panic_message(&payload)
            );
            Err(io::Error::other("writer thread panicked"))
        });
        self.finish(served, deliveries, outbound)
    }

    /// Sends the CONNACK from the thread that accepted the connection, when the writer
    /// thread is not started at once.
    pub fn send_connack(&mut self, connack: &Packet) -> io::Result<()> {
        // [MQTT-3.2.0-1] CONNACK is the first packet the client receives.
        self.write(connack)?;
        self.flush()
    }

    /// Does, on the reader's thread, what the reader asks while no writer thread runs:
    /// writes its answers (PUBACK, SUBACK, PINGRESP, …), applies the client's
    /// acknowledgements, sends the retained messages of a new subscription. The same code
    /// as in the writer thread, one batch, one write. An error closes the connection; a
    /// wrong acknowledgement is then in `violation`.
    /// `requests` is emptied as they are handled, from the front, so that what a panic
    /// leaves in it is what was not handled (`Reader::answer` applies that).
    pub fn answer(
        &mut self,
        requests: &mut Vec<ToWriter>,
        outbound: &mut Outbound,
    ) -> io::Result<()> {
        requests.reverse();
        while let Some(request) = requests.pop() {
            if let Err(e) = self.handle(Work::Control(request), outbound) {
                // The rest of the batch is for a connection that is closing; only its
                // acknowledgements still count.
                while let Some(late) = requests.pop() {
                    self.apply_late(late, outbound);
                }
                return Err(e);
            }
        }
        self.flush()
    }

    /// Whether this writer has deliveries to send, which only a writer thread does.
    pub fn has_deliveries(side: &WriterSide) -> bool {
        !side.deliveries.is_empty() || side.outbound.has_deferred()
    }

    /// The session's Outbox, which this writer empties.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The wrong acknowledgement that made `answer` fail, if that is why.
    pub fn take_violation(&mut self) -> Option<WrongAck> {
        self.violation.take()
    }

    /// Ends the writer, in its thread or, for one never started, in the reader's teardown:
    /// the session no longer counts as connected, drops are reported, and after a failed
    /// write what the reader still hands over is applied.
    pub fn finish(
        &mut self,
        served: io::Result<()>,
        deliveries: Receiver<Delivery>,
        mut outbound: Outbound,
    ) -> Finished {
        self.outbox.set_connected(false);
        self.report_drops(Report::Now);
        if let Err(error) = served {
            log::debug!("client {:?}: write failed: {error}", self.client_id);
            // Wake the reader up so it tears down, and keep track of what it still sends.
            self.socket.shutdown();
            self.drain_after_failure(&mut outbound);
        }
        // What the last acknowledgements recorded, written without waiting: nothing is
        // sent after them.
        let _ = self.broker.record_batch(&mut self.journal);
        Finished {
            side: WriterSide {
                deliveries,
                outbound,
            },
            violation: self.violation.take(),
        }
    }

    /// Records a wrong acknowledgement as the reason to close ([MQTT-4.8.0-1]), and returns
    /// the error that ends `serve`, which shuts the socket down.
    fn violation(&mut self, wrong: WrongAck) -> io::Error {
        // [MQTT-4.8.0-1] the client broke the protocol: close the connection. Only the
        // WrongAck is kept, a few bytes and not a CloseReason: each idle writer's stack is
        // counted in pages (chapter 09), and the reader, which logs the reason, makes it one.
        // (Keeping a CloseReason here pushed the idle writer into a third page: +4 KiB.)
        self.violation = Some(wrong);
        io::Error::other("the client sent an acknowledgement of the wrong kind")
    }

    fn serve(
        &mut self,
        start: Start,
        deliveries: &Receiver<Delivery>,
        outbound: &mut Outbound,
    ) -> io::Result<()> {
        if let Start::Connack(connack) = start {
            // [MQTT-3.2.0-1] CONNACK is the first packet the client receives.
            self.write(&connack)?;
            // [MQTT-4.4.0-1] then, on a resumed session, whatever was not acknowledged, in
            // its original order ([MQTT-4.6.0-1]), before anything new.
            for packet in outbound.resend() {
                self.write(&packet)?;
            }
            self.flush()?;
        }
        // Whether more work is likely within microseconds (see `next_soon`).
        let mut expecting = false;
        while let Some(first) = self.next_soon(expecting, deliveries, outbound) {
            expecting = first.answers_the_client();
            self.handle(first, outbound)?;
            while let Some(next) = self.next_ready(deliveries, outbound) {
                expecting |= next.answers_the_client();
                self.handle(next, outbound)?;
            }
            self.flush()?;
            expecting |= outbound.awaits_acknowledgement();
            // About to sleep, perhaps for hours: keep the buffer for the next batch, unless
            // a big burst made it big.
            if self.batch.capacity() > KEPT_BATCH_CAPACITY {
                self.batch = Vec::new();
            }
            self.report_drops(Report::WhenDue);
        }
        // The reader has finished: send what is buffered, if the socket still works.
        self.flush()
    }

    /// Waits for the next thing to do; `None` once the reader has gone. Deliveries are
    /// looked at only while the window has room for them.
    fn next_blocking(
        &self,
        deliveries: &Receiver<Delivery>,
        outbound: &mut Outbound,
    ) -> Option<Work> {
        let never = crossbeam_channel::never();
        loop {
            // Look at the queue before sleeping: it may hold messages that arrived while
            // the window was full, or after the last ring was taken.
            if let Some(delivery) = next_delivery(deliveries, outbound) {
                return Some(Work::Delivery(delivery));
            }
            // Sleep until our reader asks for something or a publisher rings. Taking the
            // ring comes before looking at the queue again (the next turn of this loop), so
            // a message queued after our look always has a ring after it that we have yet
            // to take. With the window full, rings are left waiting: only an
            // acknowledgement, which comes through control, can make room.
            let bell = if accepts_new(outbound) {
                self.outbox.bell()
            } else {
                &never
            };
            select! {
                recv(self.control) -> request => return request.ok().map(Work::Control),
                recv(bell) -> _ring => {}
            }
        }
    }

    /// The next thing to do, looking a few times before going to sleep when more work is
    /// `expecting`: this writer has just answered its client, or has messages out that
    /// await the client's acknowledgement. Then the client's next packet (its PUBREL, its
    /// PUBREC or PUBACK) typically reaches our reader, and through it our control channel,
    /// within tens of microseconds. Sleeping in `select!` means that whoever sends next
    /// must wake us with a futex call, and on a virtual machine waking a thread on the
    /// other CPU costs an inter-processor interrupt. So the writer first gives its CPU
    /// away (`yield_now`, which lets the reader that will hand over the acknowledgement
    /// run) and looks again, `LOOKS_BEFORE_SLEEP` times. On this 2-core machine the QoS 1
    /// and QoS 2 pairs of `bench/compare.sh` went 1.5 to 2.1 times as fast, their p99
    /// latency from 3.4-11 ms down to 0.8-1.8 ms (chapter 09); a writer with nothing to
    /// expect (QoS 0 traffic only) sleeps at once, as before.
    fn next_soon(
        &self,
        expecting: bool,
        deliveries: &Receiver<Delivery>,
        outbound: &mut Outbound,
    ) -> Option<Work> {
        if expecting {
            for _ in 0..LOOKS_BEFORE_SLEEP {
                std::thread::yield_now();
                match self.control.try_recv() {
                    Ok(request) => return Some(Work::Control(request)),
                    Err(TryRecvError::Disconnected) => return None,
                    Err(TryRecvError::Empty) => {}
                }
                if let Some(delivery) = next_delivery(deliveries, outbound) {
                    return Some(Work::Delivery(delivery));
                }
            }
        }
        self.next_blocking(deliveries, outbound)
    }

    /// The next thing to do that is already waiting, without blocking.
    fn next_ready(&self, deliveries: &Receiver<Delivery>, outbound: &mut Outbound) -> Option<Work> {
        match self.control.try_recv() {
            Ok(request) => return Some(Work::Control(request)),
            // The reader has finished: stop taking new deliveries and let `serve` end.
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        next_delivery(deliveries, outbound).map(Work::Delivery)
    }

    fn handle(&mut self, work: Work, outbound: &mut Outbound) -> io::Result<()> {
        match work {
            Work::Control(ToWriter::Send(packet)) => self.write(&packet),
            Work::Control(ToWriter::Ack(ack)) => match outbound.acknowledge(ack) {
                Ok(answer) => {
                    self.record_ack(ack);
                    match answer {
                        Some(answer) => self.write(&answer),
                        None => Ok(()),
                    }
                }
                Err(wrong) => Err(self.violation(wrong)),
            },
            Work::Control(ToWriter::AfterDisk(ticket)) => {
                self.ticket = self.ticket.max(ticket);
                Ok(())
            }
            Work::Control(ToWriter::SendRetained {
                filter,
                granted,
                reading,
                cutoff,
            }) => self.send_retained(&filter, granted, reading.as_deref(), cutoff, outbound),
            Work::Delivery(delivery) => self.send(delivery, outbound),
        }
    }

    /// Sends the retained messages for a new subscription ([MQTT-3.3.1-6]) with RETAIN 1
    /// ([MQTT-3.3.1-8]). They are looked up here, at the last moment: every live RETAIN=1
    /// message this writer has already sent was stored as retained *before* it was routed,
    /// so what is found now is never older than it. Those stored after `cutoff` are left
    /// out: the subscription already existed when they were routed, so they come (or came)
    /// live. Those the window has no room for wait their turn, ahead of newer deliveries,
    /// up to `max_queued_messages` of them; beyond that they are dropped and counted like
    /// any message that does not fit.
    fn send_retained(
        &mut self,
        filter: &str,
        granted: QoS,
        reading: Option<&ClientAcl>,
        cutoff: Cutoff,
        outbound: &mut Outbound,
    ) -> io::Result<()> {
        let mut found = Vec::new();
        self.broker.for_each_retained(filter, cutoff, |message| {
            // A filter only partly readable: the acl_file decides message by message.
            if reading.is_none_or(|rules| rules.may_read(&message.topic)) {
                found.push(Delivery::retained(message.clone(), granted));
            }
        });
        for delivery in found {
            if delivery.qos == QoS::AtMostOnce || accepts_new(outbound) {
                self.send(delivery, outbound)?;
            } else if outbound.deferred_count() < self.outbox.capacity() {
                if let Some(message) = delivery.message.stored {
                    let qos = delivery.qos;
                    self.record(None, |session| Record::Queued {
                        session,
                        message,
                        qos,
                        retain: true,
                    });
                }
                outbound.defer(delivery);
            } else {
                self.broker.count_drop(&self.outbox);
            }
        }
        Ok(())
    }

    fn send(&mut self, delivery: Delivery, outbound: &mut Outbound) -> io::Result<()> {
        #[cfg(feature = "fault-injection")]
        crate::fault::inject(&delivery.message.topic, crate::fault::PANIC_IN_WRITER);
        let (stored, qos, retain) = (delivery.message.stored, delivery.qos, delivery.retain);
        let publish = outbound.send(delivery);
        // In flight from now on, under this Packet Identifier: recorded before the PUBLISH
        // leaves, so that after a crash it is re-sent with the same id ([MQTT-4.4.0-1]).
        if let (Some(message), Some(packet_id)) = (stored, publish.packet_id) {
            self.record(sent_needs(qos), |session| Record::Sent {
                session,
                message,
                packet_id,
                qos,
                retain,
            });
        }
        self.write(&Packet::Publish(publish))
    }

    /// Adds `packet` to the batch; writes the batch out if it has grown big.
    fn write(&mut self, packet: &Packet) -> io::Result<()> {
        log_sent(&self.client_id, packet);
        let start = self.batch.len();
        packet.encode(&mut self.batch);
        let is_publish = matches!(packet, Packet::Publish(_));
        self.traffic.packet(self.batch.len() - start, is_publish);
        trace_bytes(&self.client_id, "->", &self.batch[start..]);
        if self.batch.len() >= BATCH_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the batch to the socket: one `write` system call, unless the socket's send
    /// buffer is full (then `write_all` blocks until the client reads). With persistence,
    /// first waits until the journal holds what the batch promises: an acknowledgement
    /// before its state is on disk breaks the broker's promise, and a PUBLISH or PUBREL
    /// whose record a crash takes back would be sent again as a new message.
    fn flush(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // Our records first, so that the journal writes them while we wait for the
        // reader's; then the batch waits for whichever is the later.
        let ours = self.broker.record_batch(&mut self.journal);
        let reader = take(&mut self.ticket);
        self.broker
            .wait_for_disk(reader)
            .map_err(io::Error::other)?;
        if let Some((ticket, durable)) = ours {
            let waited = self.broker.wait_for_journal(ticket, durable);
            waited.map_err(io::Error::other)?;
        }
        let written = self.socket.write_all(&self.batch);
        self.batch.clear();
        if written.is_ok() {
            self.broker.count_sent(self.traffic.take());
        }
        written
    }

    /// Logs how many messages were dropped for this client, at most once per
    /// [`DROP_REPORT_INTERVAL`], so that a stalled client costs a few log lines, not
    /// thousands. Taking the count also re-arms the warning in `Outbox::offer`.
    fn report_drops(&mut self, now_or_later: Report) {
        if now_or_later == Report::WhenDue && self.last_drop_report.elapsed() < DROP_REPORT_INTERVAL
        {
            return;
        }
        self.last_drop_report = Instant::now();
        let dropped = self.outbox.take_dropped();
        if dropped > 0 {
            log::info!(
                "client {:?}: {dropped} message(s) were dropped while its queue was full",
                self.client_id
            );
        }
    }

    /// After a failed write, keeps applying what the reader still sends until it lets go of
    /// the channel: acknowledgements already received must not be lost, or a kept session
    /// would re-send messages the client has finished with.
    fn drain_after_failure(&mut self, outbound: &mut Outbound) {
        let control = self.control.clone();
        for request in control.iter() {
            self.apply_late(request, outbound);
        }
    }

    /// Applies a request that comes after the connection failed: an acknowledgement still
    /// changes the session; nothing else is for a connection that is gone.
    pub fn apply_late(&mut self, request: ToWriter, outbound: &mut Outbound) {
        match request {
            ToWriter::Ack(ack) => {
                // A wrong one changes nothing; the connection is closing anyway.
                if outbound.acknowledge(ack).is_ok() {
                    self.record_ack(ack);
                }
            }
            ToWriter::Send(_) | ToWriter::SendRetained { .. } | ToWriter::AfterDisk(_) => {}
        }
    }
}

/// How durable the record of a PUBLISH sent to a session on disk must be before the
/// PUBLISH goes out. QoS 2: fsync'd. Were the record lost, the message would still look
/// queued after a restart and go out again under a new id, and the client would deliver it
/// twice. QoS 1: written, which a crash of the broker cannot take back, so the message is
/// re-sent under its id ([MQTT-4.4.0-1]); after a power cut it may come back under a new
/// one instead, a duplicate, which QoS 1 allows. (Waiting for the fsync at QoS 1 made every
/// turn of a subscriber's in-flight window wait for one: chapter 11 measures it.)
fn sent_needs(qos: QoS) -> Option<Durable> {
    match qos {
        QoS::ExactlyOnce => Some(Durable::Synced),
        QoS::AtLeastOnce | QoS::AtMostOnce => Some(Durable::Written),
    }
}

/// The next delivery to send, if one is waiting: a deferred retained message first, then
/// the queue's oldest, while the window has room.
fn next_delivery(deliveries: &Receiver<Delivery>, outbound: &mut Outbound) -> Option<Delivery> {
    if let Some(deferred) = outbound.next_deferred() {
        return Some(deferred);
    }
    if accepts_new(outbound) {
        return deliveries.try_recv().ok();
    }
    None
}

/// Whether new deliveries may be taken from the queue: the window has room, and nothing
/// deferred is waiting ahead of them.
fn accepts_new(outbound: &Outbound) -> bool {
    outbound.has_room() && !outbound.has_deferred()
}
