//! Where a connection's writer waits until it has something to deliver: a writer thread,
//! `tx:<client id>`, starts only when the broker first has a message for the client.
//!
//! An idle client is most clients, most of the time: a sensor that publishes now and then,
//! a dashboard subscribed to a topic that rarely changes. Until a message comes its way,
//! such a client has one thread, its reader, and its writer is only state (`Writer`, with
//! the session's outgoing side) in this slot. A second thread would cost it a stack (two
//! touched pages, 8 KiB), the thread's start at connect time (a `clone3`, two stack maps,
//! two more for the signal stack), and four of the process's memory maps for as long as it
//! is connected; chapter 09 measures all three.
//!
//! Meanwhile the packets the client is owed are written by whoever has them:
//!
//! - the CONNACK by the handshake thread (`start_session_threads`);
//! - the answers to its packets (SUBACK, UNSUBACK, PINGRESP, the retained messages of a new
//!   subscription) by its reader, which borrows the writer ([`WriterSlot::answering`]), runs
//!   the same code the writer thread would (`Writer::answer`), and gives it back;
//! - the first delivery by nobody: the publisher that queues it rings the Outbox, and the
//!   ring starts the writer thread ([`WriterSlot::start`], through the mailbox's
//!   `StartWriter`). From then on the connection is the usual two threads until it ends.
//!
//! The writer thread also starts at once when there is something to send right after the
//! CONNACK (a resumed session with messages in flight or queued), when answers must wait
//! for the journal (persistence: those waits belong on a thread of their own, not on the
//! reader's), and for the first PUBACK, PUBREC or PUBCOMP of a client that publishes at
//! QoS 1 or 2: such a client keeps sending, and its reader writing the acknowledgements
//! between two reads doubled the p99 latency of the QoS pairs in `bench/compare.sh`. (The writer's own records, of a retained message it sends or of a PUBREL,
//! are still waited for where it writes: rare for a client that is delivered nothing.)
//!
//! While the reader writes, the socket has a write timeout of 1.5 × Keep Alive, like its
//! read: a client that stops reading cannot hold its reader in a write for ever. The writer
//! thread clears it when it starts, and waits for its client as long as it takes.
//!
//! One lock per connection guards the slot. It is taken by the reader once per batch that
//! has answers while no writer thread runs, by a ring while no writer thread runs (the
//! Outbox's `writer_waiting` flag lets every later ring skip it), and at teardown. No
//! socket I/O happens under it: the reader takes the writer *out* to write with it.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::mailbox::StartWriter;
use crate::protocol::ToWriter;
use crate::session::WriterSide;
use crate::throttle::{self, Throttle};
use crate::transport::Socket;

use super::spawn_named;
use super::writer::{Finished, Start, Writer};

/// The connection's writer: state waiting for a thread, or the thread.
pub(super) struct WriterSlot {
    client_id: Arc<str>,
    /// The connection's socket, to shut it down when a writer thread cannot start.
    socket: Socket,
    state: Mutex<State>,
}

enum State {
    /// No writer thread yet: its state waits here.
    Waiting(Box<Writer>, WriterSide),
    /// Taken out by the reader to write its answers. `wanted`: a delivery came meanwhile,
    /// so the writer thread must start when it comes back.
    Lent { wanted: bool },
    /// The writer thread runs.
    Running(Started),
    /// The connection is closing without a writer thread: one could not start, or the
    /// reader's own writing failed. No thread starts any more; the state waits for the
    /// teardown, which keeps the session.
    Closing(Box<Writer>, WriterSide),
    /// The connection has ended: nothing more to start.
    Ended,
}

/// Who writes a batch's answers (`WriterSlot::answering`).
pub(super) enum Answering {
    /// The reader itself, with the writer lent to it: no writer thread runs.
    Reader(Box<Writer>, WriterSide),
    /// The writer thread, through the control channel.
    Thread,
    /// Nobody: the connection is closing (`WriterSlot::settle` still applies the
    /// acknowledgements).
    Closing,
}

/// What the teardown finds in the slot.
pub(super) enum Ended {
    /// The writer never had a thread: its state, to be finished on the reader's thread.
    NeverStarted(Box<Writer>, WriterSide),
    /// The writer thread, to be waited for and joined.
    Thread {
        thread: JoinHandle<Finished>,
        finished: Receiver<()>,
    },
    /// Nothing: the state was out with the reader (a panic between `answering` and
    /// `give_back` that `Reader::answer` did not catch), or the slot was emptied before.
    Lost,
}

/// Failed thread starts are logged at most once a second, all connections together.
static START_FAILURES: Throttle = Throttle::new();

impl WriterSlot {
    /// A slot holding a writer whose thread is not started yet.
    pub fn waiting(
        client_id: Arc<str>,
        socket: Socket,
        writer: Box<Writer>,
        side: WriterSide,
    ) -> WriterSlot {
        WriterSlot {
            client_id,
            socket,
            state: Mutex::new(State::Waiting(writer, side)),
        }
    }

    /// A slot whose writer thread is already running.
    pub fn running(client_id: Arc<str>, socket: Socket, started: Started) -> WriterSlot {
        WriterSlot {
            client_id,
            socket,
            state: Mutex::new(State::Running(started)),
        }
    }

    /// The control channel of the writer thread, once it runs.
    pub fn control(&self) -> Option<Sender<ToWriter>> {
        match &*self.state.lock() {
            State::Running(started) => Some(started.control.clone()),
            _ => None,
        }
    }

    /// For a ring: starts the writer thread, unless it runs already; while the reader has
    /// the writer out, asks for the start when it comes back.
    pub fn start(&self) {
        let mut state = self.state.lock();
        let failed = match &mut *state {
            State::Waiting(..) => {
                self.spawn_in(&mut state);
                matches!(*state, State::Closing(..))
            }
            State::Lent { wanted } => {
                *wanted = true;
                false
            }
            State::Running(_) | State::Closing(..) | State::Ended => false,
        };
        drop(state);
        self.shut_down_if(failed);
    }

    /// Starts the writer thread if a delivery is already waiting: for a connection that
    /// has just been given its Outbox's rings (`Outbox::set_starter`), in case a message was
    /// queued before they came here.
    pub fn start_if_delivering(&self) {
        let delivering = match &*self.state.lock() {
            State::Waiting(_, side) => Writer::has_deliveries(side),
            _ => false,
        };
        if delivering {
            self.start();
        }
    }

    /// For the reader, at the end of a batch with something to answer: lends it the
    /// writer while no writer thread runs, unless `thread_needed` (the answers must wait
    /// for the journal), which starts the thread. One lock, whoever answers.
    pub fn answering(&self, thread_needed: bool) -> Answering {
        let mut state = self.state.lock();
        match &*state {
            State::Waiting(..) if thread_needed => {
                self.spawn_in(&mut state);
                let failed = matches!(*state, State::Closing(..));
                drop(state);
                self.shut_down_if(failed);
                if failed {
                    Answering::Closing
                } else {
                    Answering::Thread
                }
            }
            State::Waiting(..) => {
                match std::mem::replace(&mut *state, State::Lent { wanted: false }) {
                    State::Waiting(writer, side) => Answering::Reader(writer, side),
                    _ => unreachable!("matched just above"),
                }
            }
            State::Running(_) => Answering::Thread,
            State::Lent { .. } | State::Closing(..) | State::Ended => Answering::Closing,
        }
    }

    /// Puts back what `answering` lent, and starts the writer thread if a delivery arrived
    /// meanwhile or is waiting. After a failed `answer` (`closing`), the connection is on
    /// its way out: no thread starts any more. Says whether the connection goes on.
    pub fn give_back(&self, writer: Box<Writer>, side: WriterSide, closing: bool) -> bool {
        let mut state = self.state.lock();
        let wanted = matches!(*state, State::Lent { wanted: true });
        if closing {
            writer.outbox().writer_started();
            *state = State::Closing(writer, side);
            return false;
        }
        if wanted || Writer::has_deliveries(&side) {
            *state = State::Waiting(writer, side);
            self.spawn_in(&mut state);
            let failed = matches!(*state, State::Closing(..));
            drop(state);
            self.shut_down_if(failed);
            return !failed;
        }
        *state = State::Waiting(writer, side);
        true
    }

    /// For a closing connection without a writer thread: applies the acknowledgements
    /// among `requests`, which still change the session, and drops the rest.
    pub fn settle(&self, requests: &mut Vec<ToWriter>) {
        let mut state = self.state.lock();
        if let State::Closing(writer, side) | State::Waiting(writer, side) = &mut *state {
            for request in requests.drain(..) {
                writer.apply_late(request, &mut side.outbound);
            }
        }
        requests.clear();
    }

    /// Empties the slot at teardown: no thread starts after this.
    pub fn end(&self) -> Ended {
        match std::mem::replace(&mut *self.state.lock(), State::Ended) {
            State::Waiting(writer, side) | State::Closing(writer, side) => {
                Ended::NeverStarted(writer, side)
            }
            // The slot's copy of the control sender goes here: with the reader's, the
            // writer thread's signal to finish.
            State::Running(Started {
                thread, finished, ..
            }) => Ended::Thread { thread, finished },
            State::Lent { .. } | State::Ended => Ended::Lost,
        }
    }

    /// Starts the writer thread from a `Waiting` slot, under the slot's lock, so that a
    /// ring and the reader cannot both start one. The slot becomes `Running`, or, if the
    /// thread cannot start, `Closing`: then the caller shuts the socket down once the lock
    /// is released (`shut_down_if`), the reader tears down, and the session is kept.
    fn spawn_in(&self, state: &mut State) {
        let State::Waiting(writer, side) = std::mem::replace(state, State::Ended) else {
            unreachable!("called on a Waiting slot only")
        };
        let outbox = Arc::clone(writer.outbox());
        // Rings need not look here any more, whatever happens.
        outbox.writer_started();
        *state = match start_thread(&self.client_id, writer, side, Start::Later) {
            Ok(started) => State::Running(started),
            Err(not_started) => {
                let (writer, side, e) = *not_started;
                if let Some(held_back) = START_FAILURES.admit(Instant::now()) {
                    log::error!(
                        "client {:?}: cannot start its writer thread, closing the connection: \
                         {e}{}",
                        self.client_id,
                        throttle::held_back(held_back)
                    );
                }
                State::Closing(writer, side)
            }
        };
    }

    /// Shuts the socket down after a writer thread failed to start: outside the slot's
    /// lock, as closing a TLS or WebSocket connection writes to the socket.
    fn shut_down_if(&self, failed: bool) {
        if failed {
            self.socket.shutdown();
        }
    }
}

/// How many requests the reader may queue for its writer thread before it waits. The
/// reader waiting on its *own* writer only slows down this client, which is the right place
/// for back-pressure: a client that sends faster than it reads the answers is throttled. A
/// bounded crossbeam channel allocates its slots up front (48 bytes each here), so it is
/// made only when the writer thread starts, and kept small.
const CONTROL_QUEUE: usize = 16;

/// A started writer thread.
pub(super) struct Started {
    thread: JoinHandle<Finished>,
    /// Disconnected when the thread ends.
    finished: Receiver<()>,
    /// The reader's side of the thread's control channel.
    control: Sender<ToWriter>,
}

/// A writer whose thread could not start, given back, and why (boxed: it is big, and a
/// thread start rarely fails).
pub(super) type NotStarted = Box<(Box<Writer>, WriterSide, io::Error)>;

/// Starts a writer thread, `tx:<client id>`. The state travels through a one-slot channel
/// filled before the start, not moved into the thread's closure: if the thread cannot
/// start, the state comes back out instead of going down with the closure.
pub(super) fn start_thread(
    client_id: &str,
    mut writer: Box<Writer>,
    side: WriterSide,
    start: Start,
) -> Result<Started, NotStarted> {
    let (control, requests) = crossbeam_channel::bounded(CONTROL_QUEUE);
    writer.control = requests;
    let (parcel, unpack) = crossbeam_channel::bounded(1);
    let _ = parcel.send((writer, side)); // One slot, empty: cannot fail.
    let taken = unpack.clone();
    let (signal, finished) = crossbeam_channel::bounded::<()>(0);
    let started = spawn_named(format!("tx:{client_id}"), move || {
        // Dropped when this thread ends, whatever way: that is the reader's signal.
        let _finished = signal;
        let (writer, side): (Box<Writer>, WriterSide) = taken
            .recv()
            .expect("the state is in the channel before the thread starts");
        writer.run(start, side)
    });
    match started {
        Ok(thread) => Ok(Started {
            thread,
            finished,
            control,
        }),
        Err(e) => match unpack.try_recv() {
            Ok((mut writer, side)) => {
                writer.control = crossbeam_channel::never();
                Err(Box::new((writer, side, e)))
            }
            Err(_) => unreachable!("a thread that did not start took nothing"),
        },
    }
}

impl StartWriter for WriterSlot {
    fn start_writer(&self) {
        self.start();
    }
}
