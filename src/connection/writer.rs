//! The writer thread, `tx:<client id>`: the only code that writes to a client's socket.
//!
//! It waits on two channels at once, the replies of its own reader (control) and the
//! messages routed to its session (deliveries), writes each packet into a `BufWriter`, and
//! flushes only when both channels are momentarily empty. A burst of a hundred messages
//! therefore leaves in a few `write` system calls instead of a hundred.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};

use crate::broker::{Delivery, Outbox};
use crate::codec::{Packet, Publish, QoS};

use super::{log_sent, trace_bytes, Socket};

/// One thing to write.
enum Outgoing {
    Control(Packet),
    Delivery(Delivery),
}

/// Everything the writer thread owns.
pub(super) struct Writer {
    output: BufWriter<Socket>,
    socket: Socket,
    client_id: Arc<str>,
    control: Receiver<Packet>,
    deliveries: Receiver<Delivery>,
    /// Reused for every packet, so encoding does not allocate once it has grown.
    scratch: Vec<u8>,
}

impl Writer {
    pub fn new(
        socket: Socket,
        client_id: Arc<str>,
        control: Receiver<Packet>,
        deliveries: Receiver<Delivery>,
    ) -> Writer {
        Writer {
            output: BufWriter::new(socket.clone()),
            socket,
            client_id,
            control,
            deliveries,
            scratch: Vec::new(),
        }
    }

    /// Writes `connack` first ([MQTT-3.2.0-1]), then everything that arrives, until the
    /// reader drops its end of the control channel or the socket fails.
    pub fn run(mut self, connack: Packet, outbox: Arc<Outbox>) {
        if let Err(e) = self.write_all_ready(Outgoing::Control(connack), &outbox) {
            return self.fail(e);
        }
        while let Some(first) = self.next_blocking() {
            if let Err(e) = self.write_all_ready(first, &outbox) {
                return self.fail(e);
            }
        }
        // The reader has finished. Whatever is buffered goes out if the socket still works.
        let _ = self.output.flush();
    }

    /// Writes `first` and everything else already waiting, then flushes once.
    fn write_all_ready(&mut self, first: Outgoing, outbox: &Outbox) -> io::Result<()> {
        self.write(first)?;
        while let Some(next) = self.next_ready() {
            self.write(next)?;
        }
        self.output.flush()?;
        let dropped = outbox.take_dropped();
        if dropped > 0 {
            log::info!(
                "client {:?}: {dropped} message(s) were dropped while its queue was full",
                self.client_id
            );
        }
        Ok(())
    }

    /// Waits for the next packet from either channel; `None` once the reader has gone.
    fn next_blocking(&self) -> Option<Outgoing> {
        select! {
            recv(self.control) -> packet => packet.ok().map(Outgoing::Control),
            recv(self.deliveries) -> delivery => delivery.ok().map(Outgoing::Delivery),
        }
    }

    /// The next packet that is already waiting, without blocking.
    fn next_ready(&self) -> Option<Outgoing> {
        if let Ok(packet) = self.control.try_recv() {
            return Some(Outgoing::Control(packet));
        }
        self.deliveries.try_recv().ok().map(Outgoing::Delivery)
    }

    fn write(&mut self, outgoing: Outgoing) -> io::Result<()> {
        let packet = match outgoing {
            Outgoing::Control(packet) => packet,
            Outgoing::Delivery(delivery) => Packet::Publish(publish_for(delivery)),
        };
        log_sent(&self.client_id, &packet);
        self.scratch.clear();
        packet.encode(&mut self.scratch);
        trace_bytes(&self.client_id, "->", &self.scratch);
        self.output.write_all(&self.scratch)
    }

    /// The socket failed: shut it down so that the reader wakes up and tears down.
    fn fail(self, error: io::Error) {
        log::debug!("client {:?}: write failed: {error}", self.client_id);
        self.socket.shutdown();
    }
}

/// The PUBLISH a subscriber receives for a delivery. Every delivery is QoS 0 until QoS 1/2
/// delivery exists: no Packet Identifier ([MQTT-2.3.1-5]), DUP 0 ([MQTT-3.3.1-2]), and
/// RETAIN 0 because it goes to an established subscription ([MQTT-3.3.1-9]).
fn publish_for(delivery: Delivery) -> Publish {
    debug_assert_eq!(delivery.qos, QoS::AtMostOnce);
    Publish::qos0(delivery.message.topic, delivery.message.payload)
}
