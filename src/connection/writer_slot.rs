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
//! - the answers to its packets (SUBACK, PUBACK, PINGRESP, …) by its reader, which borrows
//!   the writer ([`WriterSlot::lend`]), runs the same code the writer thread would
//!   (`Writer::answer`), and gives it back;
//! - the first delivery by nobody: the publisher that queues it rings the Outbox, and the
//!   ring starts the writer thread ([`WriterSlot::start`], through the mailbox's
//!   `StartWriter`). From then on the connection is the usual two threads until it ends.
//!
//! The writer thread also starts at once when there is something to send right after the
//! CONNACK (a resumed session with messages in flight or queued), and when answers must
//! wait for the journal (persistence): those waits belong on a thread of their own, not on
//! the reader's. (The writer's own records, of a retained message it sends or of a PUBREL,
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

use crossbeam_channel::Receiver;
use parking_lot::Mutex;

use crate::mailbox::StartWriter;
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
    /// The writer thread runs. `finished` is disconnected when it ends.
    Running {
        thread: JoinHandle<Finished>,
        finished: Receiver<()>,
    },
    /// A writer thread could not start: the connection is closing (its socket is shut
    /// down), and the state waits for the teardown, which keeps the session.
    Broken(Box<Writer>, WriterSide),
    /// The connection has ended: nothing more to start.
    Ended,
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
    /// Nothing: the state was out with the reader when the connection ended, which only a
    /// panic in the middle of `WriterSlot::lend` and `give_back` can do.
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
    pub fn running(client_id: Arc<str>, socket: Socket, (thread, finished): Started) -> WriterSlot {
        WriterSlot {
            client_id,
            socket,
            state: Mutex::new(State::Running { thread, finished }),
        }
    }

    /// Starts the writer thread, unless it runs already; while the reader has the writer
    /// out, asks for the start when it comes back. Says whether a writer thread runs (or
    /// will, when the reader gives the writer back): `false` means the connection is
    /// closing, because a thread could not start.
    pub fn start(&self) -> bool {
        let mut state = self.state.lock();
        let runs = match &mut *state {
            State::Waiting(..) => {
                let State::Waiting(writer, side) = std::mem::replace(&mut *state, State::Ended)
                else {
                    unreachable!("matched just above")
                };
                *state = self.spawn(writer, side);
                matches!(*state, State::Running { .. })
            }
            State::Lent { wanted } => {
                *wanted = true;
                true
            }
            State::Running { .. } => true,
            State::Broken(..) | State::Ended => false,
        };
        drop(state);
        self.shut_down_unless(runs);
        runs
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

    /// Takes the writer out for the reader to write its answers with, if no writer thread
    /// runs; `None` when one does (the reader then hands its requests over through the
    /// control channel, as usual), or could not start.
    pub fn lend(&self) -> Option<(Box<Writer>, WriterSide)> {
        let mut state = self.state.lock();
        if !matches!(*state, State::Waiting(..)) {
            return None;
        }
        match std::mem::replace(&mut *state, State::Lent { wanted: false }) {
            State::Waiting(writer, side) => Some((writer, side)),
            _ => unreachable!("matched just above"),
        }
    }

    /// Puts back what `lend` took, and starts the writer thread if a delivery arrived
    /// meanwhile or is waiting. After a failed `answer` (`closing`), it only puts it back.
    pub fn give_back(&self, writer: Box<Writer>, side: WriterSide, closing: bool) {
        let mut state = self.state.lock();
        let wanted = matches!(*state, State::Lent { wanted: true });
        *state = if !closing && (wanted || Writer::has_deliveries(&side)) {
            self.spawn(writer, side)
        } else {
            State::Waiting(writer, side)
        };
        let runs = !matches!(*state, State::Broken(..));
        drop(state);
        self.shut_down_unless(runs);
    }

    /// Empties the slot at teardown: no thread starts after this.
    pub fn end(&self) -> Ended {
        match std::mem::replace(&mut *self.state.lock(), State::Ended) {
            State::Waiting(writer, side) | State::Broken(writer, side) => {
                Ended::NeverStarted(writer, side)
            }
            State::Running { thread, finished } => Ended::Thread { thread, finished },
            State::Lent { .. } | State::Ended => Ended::Lost,
        }
    }

    /// Starts the writer thread, under the slot's lock, so that a ring and the reader
    /// cannot both start one. If it cannot start, the slot holds the state as `Broken`, and
    /// the caller shuts the socket down once the lock is released: the reader tears down,
    /// and the session is kept.
    fn spawn(&self, writer: Box<Writer>, side: WriterSide) -> State {
        let outbox = Arc::clone(writer.outbox());
        match start_thread(&self.client_id, writer, side, Start::Later) {
            Ok((thread, finished)) => {
                outbox.writer_started();
                State::Running { thread, finished }
            }
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
                // Rings need not try again.
                outbox.writer_started();
                State::Broken(writer, side)
            }
        }
    }

    /// Shuts the socket down if no writer thread could start: outside the slot's lock, as
    /// closing a TLS or WebSocket connection writes to the socket.
    fn shut_down_unless(&self, runs: bool) {
        if !runs {
            self.socket.shutdown();
        }
    }
}

/// A started writer thread, and the channel that is disconnected when it ends.
pub(super) type Started = (JoinHandle<Finished>, Receiver<()>);

/// A writer whose thread could not start, given back, and why (boxed: it is big, and a
/// thread start rarely fails).
pub(super) type NotStarted = Box<(Box<Writer>, WriterSide, io::Error)>;

/// Starts a writer thread, `tx:<client id>`. The state travels through a one-slot channel
/// filled before the start, not moved into the thread's closure: if the thread cannot
/// start, the state comes back out instead of going down with the closure.
pub(super) fn start_thread(
    client_id: &str,
    writer: Box<Writer>,
    side: WriterSide,
    start: Start,
) -> Result<Started, NotStarted> {
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
        Ok(thread) => Ok((thread, finished)),
        Err(e) => match unpack.try_recv() {
            Ok((writer, side)) => Err(Box::new((writer, side, e))),
            Err(_) => unreachable!("a thread that did not start took nothing"),
        },
    }
}

impl StartWriter for WriterSlot {
    fn start_writer(&self) {
        self.start();
    }
}
