//! The journal on disk: its directory, its lock, its header, reading it back (cutting a
//! torn tail off) and replacing it with a snapshot.
//!
//! ```text
//!   persistence_location/
//!     mqttd.lock       held (flock) while a broker uses the directory
//!     mqttd.journal    "mqttdlog" + version (u32 BE), then records (record.rs)
//!     mqttd.journal.new   a snapshot being written; renamed over the journal when whole
//! ```

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{crc32, Record, FRAME_HEADER};
use super::state::State;

/// The first bytes of every journal: what the file is, then which version of the format.
const MAGIC: &[u8; 8] = b"mqttdlog";
const VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 12;

/// The name of the lock file in the persistence directory.
const LOCK_FILE: &str = "mqttd.lock";

/// Why the journal cannot be used: the broker does not start (exit code 1).
#[derive(Debug)]
pub struct PersistenceError {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for PersistenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "persistence: {}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for PersistenceError {}

fn error(path: &Path, what: impl fmt::Display) -> PersistenceError {
    PersistenceError {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// The journal's files, opened and locked.
#[derive(Debug)]
pub struct JournalFile {
    pub path: PathBuf,
    /// Open for appending, positioned at the end of the last good record.
    pub file: File,
    /// Its length: where the next record goes.
    pub len: u64,
    /// Held for as long as this broker runs: the lock is the file's `flock`, which the
    /// kernel drops when the process ends, however it ends (kill -9 included).
    _lock: File,
}

/// What reading the journal found.
#[derive(Debug)]
pub struct Recovered {
    pub file: JournalFile,
    pub state: State,
    /// How many records were replayed.
    pub records: usize,
}

/// Opens (creating if need be) the directory and journal, takes the lock, and replays the
/// journal into a [`State`]. A torn or damaged tail is cut off at the last whole record,
/// with a warning saying where and how much; anything else wrong is an error.
pub fn open(dir: &Path, name: &str) -> Result<Recovered, PersistenceError> {
    fs::create_dir_all(dir).map_err(|e| error(dir, format!("cannot create the directory: {e}")))?;
    let lock = lock(dir)?;
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| error(&path, format!("cannot open for writing: {e}")))?;
    let len = file.metadata().map_err(|e| error(&path, e))?.len();
    if len == 0 || is_torn_header(&mut file, len) {
        // A new journal, or the first start died while writing its header: start afresh.
        if len > 0 {
            log::warn!(
                "persistence: {}: only {len} bytes of the journal's header were written; \
                 starting an empty journal",
                path.display()
            );
            file.set_len(0).map_err(|e| error(&path, e))?;
        }
        write_header(&mut file).map_err(|e| error(&path, e))?;
        file.sync_all().map_err(|e| error(&path, e))?;
        sync_dir(dir).map_err(|e| error(dir, e))?;
        let file = JournalFile {
            path,
            file,
            len: HEADER_LEN,
            _lock: lock,
        };
        let (state, records) = (State::default(), 0);
        return Ok(Recovered {
            file,
            state,
            records,
        });
    }
    check_header(&mut file, len).map_err(|what| error(&path, what))?;
    let (state, records, good) = replay(&file, &path, len)?;
    if good < len {
        file.set_len(good).map_err(|e| error(&path, e))?;
        file.sync_all().map_err(|e| error(&path, e))?;
    }
    file.seek(SeekFrom::Start(good))
        .map_err(|e| error(&path, e))?;
    let file = JournalFile {
        path,
        file,
        len: good,
        _lock: lock,
    };
    Ok(Recovered {
        file,
        state,
        records,
    })
}

/// Takes the directory's lock, or says which broker has it.
fn lock(dir: &Path) -> Result<File, PersistenceError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| error(&path, format!("cannot open the lock file: {e}")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Err(error(
                &path,
                format!(
                    "another broker is using this persistence_location (process {})",
                    holder.trim()
                ),
            ));
        }
        Err(TryLockError::Error(e)) => return Err(error(&path, format!("cannot lock: {e}"))),
    }
    // Who holds it, for the message above; only informative, the lock is the flock.
    let mut file = file;
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

fn write_header(file: &mut File) -> io::Result<()> {
    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_be_bytes());
    file.write_all(&header)
}

/// Whether a file shorter than a header holds the first bytes of one: what a crash while
/// writing the header of a new journal leaves. Anything else is not ours to overwrite.
fn is_torn_header(file: &mut File, len: u64) -> bool {
    let mut bytes = Vec::new();
    if len >= HEADER_LEN || file.read_to_end(&mut bytes).is_err() {
        return false;
    }
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&VERSION.to_be_bytes());
    let _ = file.seek(SeekFrom::Start(0));
    header.starts_with(&bytes)
}

fn check_header(file: &mut File, len: u64) -> Result<(), String> {
    let mut header = [0; HEADER_LEN as usize];
    if len < HEADER_LEN || file.read_exact(&mut header).is_err() {
        return Err("not an mqttd journal (too short for its header); move it away".into());
    }
    if &header[..8] != MAGIC {
        return Err(format!(
            "not an mqttd journal (it starts {:?}, not \"mqttdlog\"); move it away or set \
             persistence_file to another name",
            String::from_utf8_lossy(&header[..8])
        ));
    }
    let version = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(format!(
            "journal format version {version}; this mqttd reads version {VERSION} only"
        ));
    }
    Ok(())
}

/// Reads records from after the header until the end or the first bad one, applying each.
/// Returns the state, the number of records, and the offset just after the last good one.
fn replay(file: &File, path: &Path, len: u64) -> Result<(State, usize, u64), PersistenceError> {
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut state = State::default();
    let (mut at, mut records) = (HEADER_LEN, 0);
    let mut body = Vec::new();
    let damage = loop {
        if at == len {
            break None;
        }
        let mut header = [0; FRAME_HEADER];
        if len - at < FRAME_HEADER as u64 {
            break Some("a record header cut short".to_owned());
        }
        input.read_exact(&mut header).map_err(|e| error(path, e))?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        // Never allocate more than the file could hold: a garbled length is caught here.
        if u64::from(length) > len - at - FRAME_HEADER as u64 {
            break Some(format!(
                "a record of {length} bytes that the file does not hold"
            ));
        }
        body.resize(length as usize, 0);
        input.read_exact(&mut body).map_err(|e| error(path, e))?;
        if crc32(&body) != crc {
            break Some(format!(
                "a record of {length} bytes whose CRC-32 does not match"
            ));
        }
        match Record::decode(&body) {
            Ok(record) => state.apply(&record),
            Err(bad) => break Some(format!("a record that does not decode ({bad})")),
        }
        at += FRAME_HEADER as u64 + u64::from(length);
        records += 1;
    };
    if let Some(what) = damage {
        log::warn!(
            "persistence: {}: the journal ends in {what} at offset {at}; cutting off the last \
             {} bytes there and keeping the {records} records before it (a crash while \
             writing leaves such a tail; whatever it held was never acknowledged)",
            path.display(),
            len - at
        );
    }
    state.forget_unheld();
    Ok((state, records, at))
}

/// Replaces the journal with a snapshot of `state`: written whole to a new file, made
/// durable, then renamed over the journal, so a crash at any point leaves either the old
/// journal or the new one, never half of one.
pub fn compact(journal: &mut JournalFile, state: &State) -> io::Result<()> {
    let new_path = journal.path.with_extension("journal.new");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    for record in state.snapshot() {
        record.encode(&mut bytes);
    }
    let mut new = File::create(&new_path)?;
    new.write_all(&bytes)?;
    new.sync_all()?;
    fs::rename(&new_path, &journal.path)?;
    if let Some(dir) = journal.path.parent() {
        sync_dir(dir)?;
    }
    journal.file = OpenOptions::new().append(true).open(&journal.path)?;
    journal.len = bytes.len() as u64;
    Ok(())
}

/// Makes a directory's entries (a new or renamed file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}
