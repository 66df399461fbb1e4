//! Group commit: the `journal` thread writes what connections append, the `journal-sync`
//! thread makes it durable, and each lets the connections waiting on it go.
//!
//! ```text
//!   journal:       take pending ─ encode ─ write ─ written = last ─ (compact?) ─ take …
//!                                                      │ to_sync.written = last
//!   journal-sync:  wait for to_sync.written > synced ─ fdatasync ─ synced = it ─ wait …
//! ```
//!
//! Neither thread waits for the other's system call: a record is written while an fsync
//! of earlier ones runs, and each fsync covers everything written before it began. Only
//! compaction, which replaces the file, lets the sync thread catch up first.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::file::{self, JournalFile, Recovered};
use super::{JournalFailed, Record, Shared, State};

/// What the journal thread asks of the sync thread: make everything up to `written`
/// durable, in `file` (the journal, or after a compaction its replacement).
#[derive(Debug)]
pub(super) struct SyncRequest {
    written: u64,
    file: Arc<File>,
    stopping: bool,
}

impl SyncRequest {
    pub(super) fn new(file: Arc<File>) -> SyncRequest {
        SyncRequest {
            written: 0,
            file,
            stopping: false,
        }
    }
}

/// Starts the `journal` thread (which starts `journal-sync`) on a recovered journal.
pub(super) fn start(
    shared: Arc<Shared>,
    recovered: Recovered,
    compact_at_least: u64,
) -> std::io::Result<JoinHandle<()>> {
    let sync_shared = Arc::clone(&shared);
    let syncer = std::thread::Builder::new()
        .name("journal-sync".into())
        .spawn(move || sync_loop(&sync_shared))?;
    let mut appender = Appender {
        shared,
        snapshot_len: recovered.file.len,
        file: recovered.file,
        state: recovered.state,
        compact_at_least,
        bytes: Vec::new(),
        syncer: Some(syncer),
    };
    std::thread::Builder::new()
        .name("journal".into())
        .spawn(move || appender.run())
}

/// The `journal` thread's own state: it alone writes the file.
struct Appender {
    shared: Arc<Shared>,
    file: JournalFile,
    /// What the records written so far add up to, for the next snapshot.
    state: State,
    /// The journal's length after its last compaction (or at start).
    snapshot_len: u64,
    compact_at_least: u64,
    /// The encoding buffer, reused from batch to batch.
    bytes: Vec<u8>,
    syncer: Option<JoinHandle<()>>,
}

impl Appender {
    fn run(&mut self) {
        loop {
            let (records, last, stopping) = {
                let mut pending = self.shared.pending.lock();
                while pending.records.is_empty() && !pending.stopping {
                    self.shared.arrived.wait(&mut pending);
                }
                let records = std::mem::take(&mut pending.records);
                (records, pending.last, pending.stopping)
            };
            #[cfg(feature = "fault-injection")]
            {
                let mut held = self.shared.held.lock();
                while *held {
                    self.shared.let_go.wait(&mut held);
                }
            }
            // After a failure, records are taken and thrown away: nothing waits for them.
            let failed = self.shared.committed.lock().failed.is_some();
            if !records.is_empty() && !failed {
                if let Err(e) = self.write(&records, last) {
                    fail(&self.shared, &self.file.path.display().to_string(), e);
                } else if let Err(e) = self.compact_if_due(last) {
                    fail(&self.shared, &self.file.path.display().to_string(), e);
                }
            }
            if stopping {
                break;
            }
        }
        // The sync thread makes what was written durable, then ends.
        self.shared.to_sync.lock().stopping = true;
        self.shared.written_more.notify_one();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }

    /// Writes one batch, whose last ticket is `last`, lets go those who wait only for the
    /// write, and asks the sync thread to fsync it.
    fn write(&mut self, records: &[Record], last: u64) -> std::io::Result<()> {
        self.bytes.clear();
        for record in records {
            record.encode(&mut self.bytes);
            self.state.apply(record);
        }
        self.file.file.write_all(&self.bytes)?;
        self.file.len += self.bytes.len() as u64;
        if self.bytes.capacity() > 1 << 20 {
            self.bytes = Vec::new();
        }
        self.shared.committed.lock().written = last;
        self.shared.written.notify_all();
        self.shared.to_sync.lock().written = last;
        self.shared.written_more.notify_one();
        Ok(())
    }

    /// Replaces the journal with a snapshot of the state once it has grown past twice the
    /// last snapshot. The snapshot is fsync'd before it replaces the journal, so it makes
    /// everything up to `last` durable at once; the sync thread moves to the new file.
    fn compact_if_due(&mut self, last: u64) -> std::io::Result<()> {
        if self.file.len < self.compact_at_least.max(2 * self.snapshot_len) {
            return Ok(());
        }
        let before = self.file.len;
        self.state.forget_unheld();
        file::compact(&mut self.file, &self.state)?;
        self.snapshot_len = self.file.len;
        let new_file = Arc::new(self.file.file.try_clone()?);
        self.shared.to_sync.lock().file = new_file;
        let mut committed = self.shared.committed.lock();
        committed.upto = committed.upto.max(last);
        drop(committed);
        self.shared.synced.notify_all();
        log::info!(
            "persistence: compacted {} from {before} to {} bytes ({} sessions, {} messages)",
            self.file.path.display(),
            self.file.len,
            self.state.sessions.len(),
            self.state.message_count()
        );
        Ok(())
    }
}

/// The body of the `journal-sync` thread: fsync whatever was written since the last fsync,
/// until asked to stop (after one last fsync of whatever is left).
fn sync_loop(shared: &Shared) {
    let mut synced = 0;
    loop {
        let (target, file) = {
            let mut request = shared.to_sync.lock();
            while request.written <= synced && !request.stopping {
                shared.written_more.wait(&mut request);
            }
            if request.written <= synced {
                return;
            }
            (request.written, Arc::clone(&request.file))
        };
        // sync_data: the file's contents and length, not its timestamps.
        if let Err(e) = file.sync_data() {
            fail(shared, "the journal", e);
            return;
        }
        synced = target;
        shared.commits.fetch_add(1, Ordering::Relaxed);
        let mut committed = shared.committed.lock();
        committed.upto = committed.upto.max(target);
        drop(committed);
        shared.synced.notify_all();
    }
}

/// A write or fsync failed: every waiting and future acknowledgement is refused.
fn fail(shared: &Shared, path: &str, e: std::io::Error) {
    log::error!(
        "persistence: {path}: {e}; nothing more will be acknowledged that needs the journal"
    );
    let failed = JournalFailed(Arc::from(e.to_string()));
    shared.committed.lock().failed = Some(failed);
    shared.wake_all();
}
