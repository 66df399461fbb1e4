//! The reader thread, `rx:<client id>`: reads packets, lets the session act on them, passes
//! what must be sent to the writer, and tears the connection down when it ends.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::broker::{Broker, ConnectionId, Traffic};
use crate::codec::{holds_whole_packet, read_frame_into};
use crate::mailbox::Doorbells;
use crate::protocol::{is_timeout, CloseReason, Handler, ToWriter};
use crate::session::{WriterSide, WrongAck};
use crate::transport::Socket;

use super::input::Input;
use super::writer::{Finished, Writer};
use super::writer_slot::{Answering, Ended, WriterSlot};
use super::ListenerSlot;
use super::{log_received, panic_message, trace_frame};

/// The largest body buffer a reader keeps between packets; a bigger one, grown by a big
/// packet, is given back rather than held for the life of the connection.
const KEPT_BODY_CAPACITY: usize = 64 * 1024;

/// How long a closing connection waits for its writer to send what is already queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the reader thread owns.
pub(super) struct Reader {
    /// The socket's read side, buffered. It may already hold bytes read during the handshake.
    pub input: Input,
    /// The same socket, to shut it down at the end.
    pub socket: Socket,
    pub connection: ConnectionId,
    /// The Keep Alive of the CONNECT, for the log line when it expires.
    pub keep_alive: u16,
    /// The protocol's side of the client: its session and its Will.
    pub handler: Handler,
    /// Requests for the writer thread, once it runs (`WriterSlot::control`). Dropping it
    /// (with the slot's own copy, `WriterSlot::end`) tells the writer to finish.
    pub control: Option<Sender<ToWriter>>,
    /// The writer: its thread, or its state while it has none (`writer_slot.rs`).
    pub writer: Arc<WriterSlot>,
    pub broker: Arc<Broker>,
    /// What this reader has received since its last batch, for the broker's counters.
    pub traffic: Traffic,
    /// This connection's place in its listener's `max_connections`, given back when the
    /// reader (and with it the connection) ends.
    pub _slot: ListenerSlot,
}

impl Reader {
    pub fn run(mut self: Box<Self>) {
        // A panic while handling a packet is a bug in mqttd. It must cost this one
        // connection and nothing else ([MQTT-4.8.0-2]): catch it here and tear down as
        // usual, so the session is stored or ended and the Client Identifier given up.
        let reason = panic::catch_unwind(AssertUnwindSafe(|| self.read_loop()))
            .unwrap_or_else(|payload| CloseReason::Panicked(panic_message(&payload)));
        self.teardown(reason);
    }

    /// Reads and handles packets until the connection must end, and says why.
    fn read_loop(&mut self) -> CloseReason {
        // What the current batch has produced: requests for our writer, and the
        // subscribers' writers to wake. Both are reused from batch to batch.
        let mut requests = Vec::new();
        let mut doorbells = Doorbells::new();
        let reason = self.read_batches(&mut requests, &mut doorbells);
        // The packets before the last one may have asked for something (the PUBACK for a
        // PUBLISH that came just before DISCONNECT, say): it still goes out, if it can.
        let _ = self.hand_over(&mut requests, &mut doorbells);
        reason
    }

    /// The loop itself. A *batch* is every whole packet already in the input buffer: one
    /// `read` from the socket often brings hundreds. Each is handled as it comes, but what
    /// it produces is handed over only when the batch ends, just before a read that may
    /// block: so a burst of PUBLISHes wakes each subscriber's writer once, and our own
    /// writer once for all the PUBACKs, instead of once per packet.
    fn read_batches(
        &mut self,
        requests: &mut Vec<ToWriter>,
        doorbells: &mut Doorbells,
    ) -> CloseReason {
        let max_packet_size = self.broker.config.max_packet_size;
        // The buffer each packet's body is read into, reused (decoding copies out what it
        // keeps).
        let mut body = Vec::new();
        loop {
            if !holds_whole_packet(self.input.buffer()) {
                if let Err(reason) = self.hand_over(requests, doorbells) {
                    return reason;
                }
            }
            // The socket's read timeout is 1.5 × Keep Alive ([MQTT-3.1.2-24]): a timeout
            // here means the client went silent.
            let frame = match read_frame_into(&mut self.input, max_packet_size, body) {
                Ok(frame) => frame,
                Err(e) => return CloseReason::from_frame_error(e, self.keep_alive),
            };
            self.traffic.packet(frame.wire_len(), frame.is_publish());
            let who = &self.handler.session.client_id;
            trace_frame(who, &frame);
            let packet = match frame.decode() {
                Ok(packet) => packet,
                Err(e) => return CloseReason::Malformed(e),
            };
            // Keep the buffer for the next packet, unless one big packet made it big.
            body = frame.body;
            if body.capacity() > KEPT_BODY_CAPACITY {
                body = Vec::new();
            }
            log_received(who, &packet);
            if let Err(reason) = self
                .handler
                .handle(packet, &self.broker, requests, doorbells)
            {
                return reason;
            }
        }
    }

    /// Ends a batch: wakes the writers of the subscribers it fed, and passes its requests
    /// to our writer, in the order the packets came (PUBACKs and PUBRECs in the order of
    /// their PUBLISHes, [MQTT-4.6.0-2] [MQTT-4.6.0-3]), after the batch's journal ticket:
    /// the writer sends them once the journal holds what they confirm. While the client
    /// has no writer thread, this thread writes them itself.
    fn hand_over(
        &mut self,
        requests: &mut Vec<ToWriter>,
        doorbells: &mut Doorbells,
    ) -> Result<(), CloseReason> {
        doorbells.ring();
        self.broker.count_received(self.traffic.take());
        // No acknowledgement before the state it confirms is on disk: the writer waits for
        // the batch's ticket before it writes them, and this thread reads on meanwhile. So
        // a ticket starts the writer thread, if the client has none yet.
        let ticket = self.handler.take_ticket();
        if !ticket.is_some() && requests.is_empty() {
            return Ok(());
        }
        // Until the writer thread runs, ask the slot who answers. (Once it runs, it stays
        // until the end, and its control channel is all there is to ask.)
        if self.control.is_none() {
            // A client that publishes at QoS 1 or 2 gets its writer thread for the
            // acknowledgements: its reader writing them itself, between two reads, doubled
            // the p99 latency of bench/compare.sh's QoS pairs (chapter 09).
            let thread_needed =
                ticket.is_some() || requests.iter().any(ToWriter::answers_a_publish);
            match self.writer.answering(thread_needed) {
                // No writer thread, and nothing to wait for: answer from here.
                Answering::Reader(writer, side) => return self.answer(writer, side, requests),
                Answering::Thread => self.control = self.writer.control(),
                Answering::Closing => {
                    self.writer.settle(requests);
                    return Err(CloseReason::Io(io::Error::other(
                        "its writer thread could not start",
                    )));
                }
            }
        }
        let Some(control) = &self.control else {
            return Err(CloseReason::PeerClosed);
        };
        if ticket.is_some() && control.send(ToWriter::AfterDisk(ticket)).is_err() {
            return Err(CloseReason::PeerClosed);
        }
        for request in requests.drain(..) {
            // Blocks while the control channel is full (our client is slow to read its
            // answers, so we stop reading its requests). Fails only if the writer has
            // exited, because the socket failed.
            if control.send(request).is_err() {
                return Err(CloseReason::PeerClosed);
            }
        }
        Ok(())
    }

    /// Writes a batch's answers on this thread, with the writer's code, while the client
    /// has no writer thread, then gives the writer back. A panic in there is a bug in
    /// mqttd, caught as the writer thread would catch it: the writer goes back to its slot
    /// (so the teardown keeps the session) and the connection closes.
    fn answer(
        &mut self,
        mut writer: Box<Writer>,
        mut side: WriterSide,
        requests: &mut Vec<ToWriter>,
    ) -> Result<(), CloseReason> {
        let answered = panic::catch_unwind(AssertUnwindSafe(|| {
            writer.answer(requests, &mut side.outbound)
        }));
        if answered.is_err() {
            // What the panic left unhandled (`Writer::answer` keeps it reversed, so `pop`
            // takes it in order): its acknowledgements still count.
            while let Some(late) = requests.pop() {
                writer.apply_late(late, &mut side.outbound);
            }
        }
        let violation = writer.take_violation();
        let failed = !matches!(answered, Ok(Ok(())));
        let goes_on = self.writer.give_back(writer, side, failed);
        match (answered, violation) {
            (Ok(Ok(())), _) if goes_on => Ok(()),
            (Ok(Ok(())), _) => Err(CloseReason::Io(io::Error::other(
                "its writer thread could not start",
            ))),
            (Ok(Err(_)), Some(wrong)) => Err(wrong_ack(wrong)),
            (Ok(Err(e)), None) if is_timeout(&e) => Err(CloseReason::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "it read nothing for 1.5 x Keep Alive while the broker wrote to it",
            ))),
            (Ok(Err(e)), None) => Err(CloseReason::Io(e)),
            (Err(payload), _) => Err(CloseReason::Panicked(panic_message(&payload))),
        }
    }

    /// Ends the connection: stop the writer and take its side of the session back, log
    /// why, publish the Will unless the client said DISCONNECT (or the broker is stopping),
    /// then keep or end the session and give the Client Identifier up.
    pub(super) fn teardown(self: Box<Self>, reason: CloseReason) {
        let Reader {
            socket,
            connection,
            mut handler,
            control,
            writer,
            broker,
            ..
        } = *self;
        // Let the writer finish first: it sends what is still queued (the PUBACK for a
        // PUBLISH that came just before DISCONNECT, say), flushes, and exits once the
        // control channel is disconnected, handing back the messages in flight. A client
        // that does not read could keep it waiting for ever, so after FLUSH_TIMEOUT the
        // socket is shut down anyway, which makes any blocked write fail. A writer that
        // never had a thread is finished here.
        drop(control);
        let client_id = Arc::clone(&handler.session.client_id);
        let (writer_side, violation) = match writer.end() {
            Ended::Thread { thread, finished } => {
                let _ = finished.recv_timeout(FLUSH_TIMEOUT);
                socket.shutdown();
                join_writer(thread, &client_id)
            }
            Ended::NeverStarted(mut writer, side) => {
                socket.shutdown();
                let Finished { side, violation } =
                    writer.finish(Ok(()), side.deliveries, side.outbound);
                (Some(side), violation.map(wrong_ack))
            }
            Ended::Lost => {
                socket.shutdown();
                log::error!(
                    "client {client_id:?}: its writer was lost; the session cannot be kept"
                );
                (None, None)
            }
        };
        // No ring may look for this connection's writer any more.
        handler.session.outbox().set_starter(None);
        // A rule broken where only the writer saw it is the cause of the socket error the
        // reader saw.
        let reason = match (violation, reason) {
            (Some(violation), CloseReason::PeerClosed | CloseReason::Io(_)) => violation,
            (_, reason) => reason,
        };
        let reason = explain(reason, &broker, &client_id, connection);
        reason.log(&client_id);
        // [MQTT-3.1.2-8] every end but DISCONNECT publishes the Will (a broker shutting
        // down may defer it, §3.1.2.5; having no storage, we drop it).
        if !matches!(reason, CloseReason::ServerStopping) {
            handler.publish_will(&broker);
        }
        let kept = handler.close(&broker, writer_side);
        broker.release_session(&client_id, connection, kept);
        broker.untrack_connection(connection);
    }
}

/// Waits for the writer thread and takes back its side of the session, and the rule the
/// client broke if that is why the writer ended. The side is lost only if the writer thread
/// panicked outside its own catch.
fn join_writer(
    writer: JoinHandle<Finished>,
    client_id: &str,
) -> (Option<WriterSide>, Option<CloseReason>) {
    match writer.join() {
        Ok(Finished { side, violation }) => (Some(side), violation.map(wrong_ack)),
        Err(_) => {
            log::error!("client {client_id:?}: writer thread panicked; the session cannot be kept");
            (None, None)
        }
    }
}

/// A socket that failed because someone else shut it down was not the client's doing: say
/// who did.
fn explain(
    reason: CloseReason,
    broker: &Broker,
    client_id: &str,
    connection: ConnectionId,
) -> CloseReason {
    match reason {
        CloseReason::PeerClosed | CloseReason::Io(_) if broker.is_stopping() => {
            CloseReason::ServerStopping
        }
        CloseReason::PeerClosed | CloseReason::Io(_)
            if broker.sessions().is_taken_over(client_id, connection) =>
        {
            CloseReason::TakenOver
        }
        other => other,
    }
}

/// The reason to close for an acknowledgement of the wrong kind, which the writer saw.
fn wrong_ack(wrong: WrongAck) -> CloseReason {
    CloseReason::Violation {
        rule: "[MQTT-4.8.0-1]",
        what: wrong.to_string(),
    }
}
