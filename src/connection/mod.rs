//! One client's life, from TCP accept to close (spec §3.1, §3.2, §3.12–§3.14, §4.8).
//!
//! ## Threads of one connection
//!
//! ```text
//!            accept()
//!               │
//!   acceptor ───┴─▶ "hs:127.0.0.1:50312"   handshake: read CONNECT (10 s limit), validate,
//!                        │                  assign the Client Identifier, take over, send
//!                        │                  the CONNACK, start the reader and wait for the
//!                        │                  next connection (handshakers.rs)
//!          ┌─────────────┴──────────────┐
//!          ▼                            ▼  started by the first message for the client
//!   "rx:sensor-1" reader           "tx:sensor-1" writer   (writer_slot.rs; until then its
//!   Input (a buffer that follows   one batch buffer on    state waits in a WriterSlot)
//!   the traffic) on the socket     the same socket; sleeps on two channels:
//!   decodes packets, runs the        control: what its own reader asks (answers
//!   protocol (session::Session),              such as SUBACK and PUBACK, "send the
//!   routes PUBLISH via the broker;            retained messages of this filter", the
//!   at the end of each batch rings            client's PUBACK/PUBREC/PUBCOMP)
//!   the Outboxes it fed and sends    bell:    rung by any publisher's reader after
//!   ToWriter ──control──▶                     it queued messages in this session's
//!   (or, with no writer thread yet,           Outbox; the Outbox is read only while
//!   writes the answers itself with            the in-flight window has room
//!   the writer's code)             owns the outgoing QoS state (session::Outbound),
//!                                  encodes all that is ready, one write per batch
//! ```
//!
//! Who owns what:
//! - the **socket** is one [`Socket`], shared: the reader reads it, the writer writes it,
//!   takeover and `stop` shut it down;
//! - the **reader side of the session** (its subscriptions, the QoS 2 identifiers waiting
//!   for PUBREL, the Will) belongs to the reader thread alone: no lock;
//! - the **writer side of the session** (messages in flight, Packet Identifiers) belongs to
//!   the writer thread alone: the reader forwards acknowledgements to it, no lock. Before
//!   that thread starts, it waits in the connection's `WriterSlot`, which lends it to the
//!   reader for each batch of answers;
//! - the **control channel** has one sender (the reader) and one receiver (the writer),
//!   made when the writer thread starts;
//! - the **delivery queue** (an [`crate::broker::Outbox`]) has many senders, one per
//!   matching subscription in the trie, and one receiver, the writer.
//!
//! Shutdown rule: whoever decides the connection is over shuts the socket down. The reader
//! then stops reading, drops the control sender and joins the writer (or finishes it on
//! its own thread if it never had one), which hands back its side of the session. The reader logs why, publishes the Will unless the client said
//! DISCONNECT (or the broker is stopping: with nothing on disk, mqttd drops the Wills it
//! could defer), and stores the session (Clean Session 0) or ends it (Clean Session 1).

mod handshake;
mod handshakers;
mod input;
mod reader;
mod writer;
mod writer_slot;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::codec::primitives::put_remaining_length;
use crate::codec::{Frame, Packet};

pub(crate) use handshakers::Handshakers;

/// Stack size of each connection thread. Only the pages a thread touches count towards
/// memory use; this bounds the worst case. Decoding and routing never recurse deeply.
pub(crate) const THREAD_STACK_SIZE: usize = 256 * 1024;

/// Memory maps (kernel VMAs) one connection costs the process. Each of its two threads has
/// a stack with a guard page below it (two maps) and a signal stack with its own guard page,
/// which Rust's standard library sets up for every thread to report stack overflows (two
/// more). Linux caps maps per process at `vm.max_map_count`, 65 530 by default: about
/// 8 000 connections. Counted with `/proc/PID/maps` and 2 000 idle clients.
pub(crate) const MEMORY_MAPS_PER_CONNECTION: usize = 8;

/// Stack size of a handshake thread (`handshakers.rs`): a different size on purpose. glibc
/// keeps the stacks of finished threads and hands them to new threads that ask for the
/// same size, pages already touched included. A handshake (decoding the CONNECT, logging
/// it) touches more of its stack than an idle reader or writer ever does, so if its stack
/// were passed on to the reader or writer of a later connection, that connection would
/// hold the extra pages for its whole life. Measured with 3 000 connections opened 32 at a
/// time: 18.5 KiB of stack per connection with one size for all, 16 KiB with two.
const HANDSHAKE_STACK_SIZE: usize = 128 * 1024;

/// Starts a connection thread (`rx:` or `tx:`) with its name and [`THREAD_STACK_SIZE`].
fn spawn_named<T: Send + 'static>(
    name: String,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK_SIZE)
        .spawn(body)
}

/// A connection's place in two counts, its listener's and the whole broker's, held from
/// accept to close: dropping it gives both back. This is how `max_connections` (the
/// listener's and the broker-wide one) is counted without a lock or a walk over the open
/// connections, and at accept, so that a burst of connects cannot pass the limit before
/// their handshake threads have registered them.
#[derive(Debug)]
pub(crate) struct ListenerSlot {
    listener: Arc<AtomicUsize>,
    everyone: Arc<AtomicUsize>,
}

impl ListenerSlot {
    /// Takes one slot of the listener whose open connections `listener` counts, and one of
    /// the broker's, counted by `everyone`.
    pub(crate) fn take(listener: &Arc<AtomicUsize>, everyone: &Arc<AtomicUsize>) -> ListenerSlot {
        listener.fetch_add(1, Ordering::Relaxed);
        everyone.fetch_add(1, Ordering::Relaxed);
        ListenerSlot {
            listener: Arc::clone(listener),
            everyone: Arc::clone(everyone),
        }
    }
}

impl Drop for ListenerSlot {
    fn drop(&mut self) {
        self.listener.fetch_sub(1, Ordering::Relaxed);
        self.everyone.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The text of a panic, for the log line that reports it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// The per-packet debug line for a packet received from `who`.
fn log_received(who: &str, packet: &Packet) {
    log::debug!("client {who:?} <- {packet}");
}

/// The per-packet debug line for a packet sent to `who`.
fn log_sent(who: &str, packet: &Packet) {
    log::debug!("client {who:?} -> {packet}");
}

/// The trace-level hex dump of a packet's bytes.
fn trace_bytes(who: &str, arrow: &str, bytes: &[u8]) {
    if log::log_enabled!(log::Level::Trace) {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        log::trace!("client {who:?} {arrow} [{}]", hex.join(" "));
    }
}

/// The trace-level hex dump of a received frame, fixed header included. The Remaining
/// Length is shown re-encoded in its shortest form: a client may have sent a longer form
/// (`80 00` for 0, which §2.2.3 does not forbid), and the frame no longer holds it.
fn trace_frame(who: &str, frame: &Frame) {
    if log::log_enabled!(log::Level::Trace) {
        let mut bytes = vec![frame.byte1];
        put_remaining_length(&mut bytes, frame.body.len());
        bytes.extend_from_slice(&frame.body);
        trace_bytes(who, "<-", &bytes);
    }
}
