//! Persistence (`persistence true`): the journal that lets sessions, queued messages and
//! retained messages survive a restart, a `kill -9` and a power cut (spec §4.1).
//!
//! **The promise: no acknowledgement leaves the broker before the state it confirms is on
//! disk.** Every change to durable state becomes a [`Record`] appended to one file, the
//! journal. Connections do not write the file themselves: they hand their records to the
//! `journal` thread and get a [`Ticket`]; before they send the SUBACK, PUBACK, PUBREC,
//! PUBCOMP or CONNACK that confirms the change, they wait for that ticket to be committed.
//!
//! ```text
//!   reader/writer threads     journal thread           journal-sync thread      disk
//!   ─────────────────────     ──────────────           ───────────────────      ────
//!   append(r1) → ticket 1 ─┐
//!   append(r2) → ticket 2 ─┴─▶ write r1 r2, written=2 ─▶ fsync ───────────────▶ ████
//!   append(r3) → ticket 3 ───▶ write r3, written=3         │ (r3 rides the next)
//!   append(r4) → ticket 4 ───▶ write r4, written=4         ▼ synced=2: wakes 1, 2
//!                                                        fsync ───────────────▶ ████
//!                                                          ▼ synced=4: wakes 3, 4
//! ```
//!
//! That is **group commit**: one `fsync` covers every record written while the last one
//! ran, so a thousand clients publishing at once share an fsync instead of queueing for
//! one each. A publisher waits for its own batch only, never for a subscriber's. Writing
//! and fsyncing are two threads so that a record is *written* (safe from a crash of the
//! broker, [`Durable::Written`]) within microseconds, whatever fsync is running; what only
//! needs that much waits only that long.
//!
//! The journal thread also keeps a [`State`] (what the records add up to), and when the
//! file has grown past twice the size of its last snapshot (and at least
//! [`COMPACT_AT_LEAST`]), it writes that state as a fresh, short journal and renames it into
//! place (`file::compact`): the log is compacted, as Redis rewrites its append-only file.
//!
//! | file        | holds                                                          |
//! |-------------|----------------------------------------------------------------|
//! | `record.rs` | [`Record`]: each kind of change, and its bytes (length, CRC-32, body) |
//! | `state.rs`  | [`State`]: what the records mean, and the snapshot that compaction writes |
//! | `file.rs`   | the directory, its lock, reading back with the torn tail cut off, compaction |
//! | `commit.rs` | the `journal` thread (writes) and the `journal-sync` thread (fsyncs): group commit |
//! | `mod.rs`    | [`Journal`]: what connections call: append a record, wait for its ticket |

mod commit;
mod file;
mod record;
mod state;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::mailbox::MessageId;

pub use file::{PersistenceError, Recovered};
pub use record::Record;
pub use state::State;

/// Below this size the journal is never compacted: rewriting a small file saves nothing.
pub const COMPACT_AT_LEAST: u64 = 16 * 1024 * 1024;

/// A place in the journal: committed once every record up to it is on disk. `Ticket(0)`
/// is "nothing to wait for".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    pub const NONE: Ticket = Ticket(0);

    /// Whether there is anything to wait for.
    pub fn is_some(self) -> bool {
        self != Ticket::NONE
    }
}

/// The journal could not be written: nothing more can be promised, so nothing more is
/// acknowledged.
#[derive(Debug, Clone)]
pub struct JournalFailed(pub Arc<str>);

impl std::fmt::Display for JournalFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the persistence journal cannot be written: {}", self.0)
    }
}

impl std::error::Error for JournalFailed {}

/// The handle connections use: append records, wait for them to be on disk.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Numbers the messages written to the journal ([`MessageId`]).
    message_ids: AtomicU64,
}

/// What the connections and the journal thread share.
#[derive(Debug)]
struct Shared {
    /// Records handed over and not yet taken by the journal thread. Held for a push.
    pending: Mutex<Pending>,
    /// Signalled when records arrive (or the journal should stop).
    arrived: Condvar,
    /// How far the journal is on disk. Held to read or advance it.
    committed: Mutex<Committed>,
    /// Signalled after each fsync (and at a failure), for the connections waiting on a
    /// ticket to be synced.
    synced: Condvar,
    /// Signalled after each write, for those waiting only for it ([`Durable::Written`]).
    written: Condvar,
    /// How many batches were written and fsync'd: with [`Pending::last`], how well group
    /// commit shares the fsyncs.
    commits: AtomicU64,
    /// How many threads are waiting in [`Journal::wait`] right now.
    waiting: AtomicU64,
    /// Test-only: while true, the journal thread writes nothing, so a test can see that an
    /// acknowledgement waits for its record (`Broker::hold_journal`).
    #[cfg(feature = "fault-injection")]
    held: Mutex<bool>,
    #[cfg(feature = "fault-injection")]
    let_go: Condvar,
    /// How far the `journal` thread has written, for the `journal-sync` thread to fsync.
    to_sync: Mutex<commit::SyncRequest>,
    /// Signalled when `to_sync` moves on (or the sync thread should stop).
    written_more: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    records: Vec<Record>,
    /// The ticket of the last record appended.
    last: u64,
    stopping: bool,
}

#[derive(Debug, Default)]
struct Committed {
    /// Every record up to this ticket has been written to the file: it survives a crash of
    /// the process (the kernel holds it), not yet a power cut.
    written: u64,
    /// Every record up to this ticket has been fsync'd: it survives a power cut too.
    upto: u64,
    failed: Option<JournalFailed>,
}

/// How far a record must have gone before a waiting connection may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durable {
    /// Written to the file: enough against a crash of the broker.
    Written,
    /// Written and fsync'd: enough against a power cut. What every acknowledgement needs.
    Synced,
}

impl Journal {
    /// Opens `dir/name`, replays it, and returns what it held; [`Journal::start`] then
    /// starts writing after it.
    pub fn recover(dir: &Path, name: &str) -> Result<Recovered, PersistenceError> {
        file::open(dir, name)
    }

    /// Starts the `journal` thread on a recovered journal.
    pub fn start(recovered: Recovered) -> std::io::Result<Journal> {
        Journal::start_compacting_at(recovered, COMPACT_AT_LEAST)
    }

    /// [`Journal::start`], compacting once the file passes `compact_at_least` bytes (and
    /// twice its last snapshot): tests make it small.
    pub fn start_compacting_at(
        recovered: Recovered,
        compact_at_least: u64,
    ) -> std::io::Result<Journal> {
        // A second handle on the same file, for the sync thread's fsyncs.
        let sync_file = Arc::new(recovered.file.file.try_clone()?);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            arrived: Condvar::new(),
            committed: Mutex::new(Committed::default()),
            synced: Condvar::new(),
            written: Condvar::new(),
            commits: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            to_sync: Mutex::new(commit::SyncRequest::new(sync_file)),
            written_more: Condvar::new(),
            #[cfg(feature = "fault-injection")]
            held: Mutex::new(false),
            #[cfg(feature = "fault-injection")]
            let_go: Condvar::new(),
        });
        let message_ids = AtomicU64::new(recovered.state.last_message + 1);
        let thread = commit::start(Arc::clone(&shared), recovered, compact_at_least)?;
        Ok(Journal {
            shared,
            thread: Mutex::new(Some(thread)),
            message_ids,
        })
    }

    /// A number for a message about to be written.
    pub fn next_message_id(&self) -> MessageId {
        let id = self.message_ids.fetch_add(1, Ordering::Relaxed);
        MessageId::new(id).unwrap_or(MessageId::MIN)
    }

    /// Hands a record to the journal thread. The ticket says when it is on disk.
    pub fn append(&self, record: Record) -> Ticket {
        let mut pending = self.shared.pending.lock();
        let was_empty = pending.records.is_empty();
        pending.records.push(record);
        pending.last += 1;
        let ticket = Ticket(pending.last);
        drop(pending);
        if was_empty {
            self.shared.arrived.notify_one();
        }
        ticket
    }

    /// Hands a writer's batch of records to the journal thread; returns what to wait for
    /// before the batch's packets go out, if anything.
    pub fn append_batch(&self, batch: &mut Batch) -> Option<(Ticket, Durable)> {
        if batch.records.is_empty() {
            return None;
        }
        let ticket = self.append_all(&mut batch.records);
        batch.needs.take().map(|durable| (ticket, durable))
    }

    /// Hands records to the journal thread, in order, under one lock; the ticket is the
    /// last one's. Only the first records after the journal thread emptied the list wake
    /// it: it takes everything that arrives until then in one go.
    fn append_all(&self, records: &mut Vec<Record>) -> Ticket {
        let mut pending = self.shared.pending.lock();
        let was_empty = pending.records.is_empty();
        pending.last += records.len() as u64;
        pending.records.append(records);
        let ticket = Ticket(pending.last);
        drop(pending);
        if was_empty {
            self.shared.arrived.notify_one();
        }
        ticket
    }

    /// Waits until every record up to `ticket` is written and fsync'd.
    pub fn wait(&self, ticket: Ticket) -> Result<(), JournalFailed> {
        self.wait_until(ticket, Durable::Synced)
    }

    /// Waits until every record up to `ticket` is as durable as `durable` says.
    pub fn wait_until(&self, ticket: Ticket, durable: Durable) -> Result<(), JournalFailed> {
        if ticket == Ticket::NONE {
            return Ok(());
        }
        let mut committed = self.shared.committed.lock();
        self.shared.waiting.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            if let Some(failed) = &committed.failed {
                break Err(failed.clone());
            }
            let reached = match durable {
                Durable::Written => committed.written,
                Durable::Synced => committed.upto,
            };
            if reached >= ticket.0 {
                break Ok(());
            }
            match durable {
                Durable::Written => self.shared.written.wait(&mut committed),
                Durable::Synced => self.shared.synced.wait(&mut committed),
            }
        };
        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    /// How many threads are waiting for their records to be on disk right now.
    pub fn waiting(&self) -> u64 {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// Test-only: stops (true) or lets go (false) the journal thread before its next write.
    #[cfg(feature = "fault-injection")]
    pub fn hold(&self, held: bool) {
        *self.shared.held.lock() = held;
        self.shared.let_go.notify_all();
    }

    /// How many records were appended, and in how many fsync'd batches they were written.
    pub fn counts(&self) -> (u64, u64) {
        let appended = self.shared.pending.lock().last;
        (appended, self.shared.commits.load(Ordering::Relaxed))
    }

    /// Writes what is pending, then stops the journal thread (at a clean shutdown, after
    /// every connection has ended).
    pub fn close(&self) {
        // A test that held the journal and failed must not hang the stop.
        #[cfg(feature = "fault-injection")]
        self.hold(false);
        self.shared.pending.lock().stopping = true;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
            let (records, commits) = self.counts();
            log::info!(
                "persistence: journal closed; {records} records written in {commits} fsyncs"
            );
        }
        // Nobody writes from now on: a connection still waiting must not wait for ever.
        let mut committed = self.shared.committed.lock();
        committed
            .failed
            .get_or_insert_with(|| JournalFailed("the broker has stopped".into()));
        drop(committed);
        self.shared.wake_all();
    }
}

/// The records a connection's writer gathers while it fills a batch of packets: handed to
/// the journal in one go before the batch goes out, with how durable they must be by then.
#[derive(Debug, Default)]
pub struct Batch {
    records: Vec<Record>,
    /// The most any record of the batch needs; `None`: the batch need not wait at all.
    needs: Option<Durable>,
}

impl Batch {
    pub fn push(&mut self, record: Record, needs: Option<Durable>) {
        self.records.push(record);
        self.needs = self.needs.max(needs);
    }
}

impl Shared {
    /// Wakes every connection waiting on the journal, to look again (a failure, a stop).
    fn wake_all(&self) {
        self.written.notify_all();
        self.synced.notify_all();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
