//! The journal against its files: round trips, torn and damaged tails, files that are not
//! a journal, the lock, group commit, compaction, and a property test of crash recovery.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;

use super::file::HEADER_LEN;
use super::record::FRAME_HEADER;
use super::*;
use crate::codec::{PacketId, QoS};
use crate::mailbox::Message;

const NAME: &str = "mqttd.journal";

/// A fresh directory under the system's temporary one, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mqttd-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn journal(&self) -> PathBuf {
        self.0.join(NAME)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn id(n: u64) -> MessageId {
    MessageId::new(n).unwrap()
}

fn message(n: u64, topic: &str, retain: bool) -> Message {
    Message {
        topic: topic.into(),
        payload: Arc::from(format!("payload {n}").as_bytes()),
        qos: QoS::AtLeastOnce,
        retain,
        stored: Some(id(n)),
    }
}

/// A session with a subscription, two messages queued, one sent, and a retained message.
fn some_records() -> Vec<Record> {
    vec![
        Record::SessionOpened {
            session: 1,
            client_id: "c1".into(),
        },
        Record::Subscribed {
            session: 1,
            filter: "a/#".into(),
            qos: QoS::ExactlyOnce,
        },
        Record::Message(message(1, "a/1", false)),
        Record::Routed {
            message: id(1),
            targets: vec![(1, QoS::AtLeastOnce)],
        },
        Record::Message(message(2, "a/2", true)),
        Record::Routed {
            message: id(2),
            targets: vec![(1, QoS::AtLeastOnce)],
        },
        Record::Sent {
            session: 1,
            message: id(1),
            packet_id: 7,
            qos: QoS::AtLeastOnce,
            retain: false,
        },
        Record::Qos2Received {
            session: 1,
            packet_id: 9,
        },
    ]
}

/// What `records` add up to, as recovery leaves it.
fn model(records: &[Record]) -> State {
    let mut state = State::default();
    for record in records {
        state.apply(record);
    }
    state.forget_unheld();
    state
}

/// Writes `records` through a journal in `dir`, and closes it.
fn write_all(dir: &Path, records: &[Record]) {
    let journal = Journal::start(Journal::recover(dir, NAME).unwrap()).unwrap();
    let mut ticket = Ticket::NONE;
    for record in records {
        ticket = journal.append(record.clone());
    }
    journal.wait(ticket).unwrap();
    journal.close();
}

#[test]
fn what_is_written_is_read_back() {
    let dir = TempDir::new("round-trip");
    write_all(&dir.0, &some_records());
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    assert_eq!(recovered.records, some_records().len());
    assert_eq!(recovered.state, model(&some_records()));
    let session = &recovered.state.sessions[&1];
    assert_eq!(session.queue.len(), 1, "message 2 still queued");
    assert_eq!(
        session.in_flight.in_order()[0].1.packet_id,
        7,
        "message 1 in flight as id 7"
    );
    assert!(session.qos2_received.contains(&9));
    assert_eq!(recovered.state.retained().count(), 1);
}

/// The journal's model of a full window of 65 535 QoS 2 messages, sent under identifiers
/// in a scrambled order and acknowledged in another: each record changes only the copy
/// it names, the order of sending survives, and so does a snapshot of it.
#[test]
fn a_full_window_keeps_its_sending_order_through_acknowledgements_and_snapshots() {
    // k times a number sharing no factor with 65 535 visits every identifier once.
    let scrambled = |step: u32| -> Vec<PacketId> {
        (0..65_535u32)
            .map(|k| PacketId::try_from(k * step % 65_535 + 1).unwrap())
            .collect()
    };
    let sent_order = scrambled(7919);
    let mut state = State::default();
    state.apply(&Record::SessionOpened {
        session: 1,
        client_id: "wide".into(),
    });
    state.apply(&Record::Message(message(1, "t", false)));
    for &packet_id in &sent_order {
        state.apply(&Record::Sent {
            session: 1,
            message: id(1),
            packet_id,
            qos: QoS::ExactlyOnce,
            retain: false,
        });
    }
    // PUBREL sent for every identifier, in a third order; then half delivered (PUBCOMP).
    for &packet_id in &scrambled(4099) {
        state.apply(&Record::PubrelSent {
            session: 1,
            packet_id,
        });
    }
    let delivered: BTreeSet<PacketId> = scrambled(7).into_iter().take(32_768).collect();
    for &packet_id in &delivered {
        state.apply(&Record::Delivered {
            session: 1,
            packet_id,
        });
    }
    let left: Vec<(PacketId, bool)> = state.sessions[&1]
        .in_flight
        .in_order()
        .iter()
        .map(|(_, f)| (f.packet_id, f.pubrel_sent))
        .collect();
    let expected: Vec<(PacketId, bool)> = sent_order
        .iter()
        .filter(|id| !delivered.contains(id))
        .map(|&id| (id, true))
        .collect();
    assert_eq!(left, expected);
    // A snapshot writes them in sending order, and reads back as the same state.
    assert_eq!(model(&state.snapshot()), state);
    // Once every copy is delivered, nothing holds the message any more.
    for &(packet_id, _) in &expected {
        state.apply(&Record::Delivered {
            session: 1,
            packet_id,
        });
    }
    assert!(state.sessions[&1].in_flight.in_order().is_empty());
    assert_eq!(state.message_count(), 0);
}

#[test]
fn a_torn_tail_is_cut_off_and_everything_before_it_kept() {
    let dir = TempDir::new("torn");
    write_all(&dir.0, &some_records());
    let whole = fs::metadata(dir.journal()).unwrap().len();
    // A crash in the middle of writing the last record: its last 3 bytes never arrived.
    let file = OpenOptions::new().write(true).open(dir.journal()).unwrap();
    file.set_len(whole - 3).unwrap();
    drop(file);
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    let all = some_records();
    assert_eq!(recovered.records, all.len() - 1);
    assert_eq!(recovered.state, model(&all[..all.len() - 1]));
    assert!(
        recovered.file.len < whole - 3,
        "the file is cut at the last whole record"
    );
    assert_eq!(
        fs::metadata(dir.journal()).unwrap().len(),
        recovered.file.len
    );
}

#[test]
fn a_damaged_record_ends_the_journal_there() {
    let dir = TempDir::new("garbled");
    write_all(&dir.0, &some_records());
    let mut bytes = fs::read(dir.journal()).unwrap();
    // Flip one bit in the body of the first record: its CRC-32 no longer matches.
    let at = HEADER_LEN as usize + FRAME_HEADER + 3;
    bytes[at] ^= 0x10;
    fs::write(dir.journal(), &bytes).unwrap();
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    assert_eq!(recovered.records, 0);
    assert_eq!(recovered.file.len, HEADER_LEN);
    drop(recovered);
    // A garbled length that claims more than the file holds is caught without allocating.
    write_all(&dir.0, &some_records());
    let mut bytes = fs::read(dir.journal()).unwrap();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0, 1]);
    fs::write(dir.journal(), &bytes).unwrap();
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    assert_eq!(recovered.records, some_records().len());
}

#[test]
fn a_file_of_another_format_or_version_is_refused_and_left_alone() {
    let dir = TempDir::new("format");
    fs::create_dir_all(&dir.0).unwrap();
    fs::write(dir.journal(), b"SQLite format 3\0 and more").unwrap();
    let error = Journal::recover(&dir.0, NAME).unwrap_err().to_string();
    assert!(error.contains("not an mqttd journal"), "{error}");
    assert_eq!(
        fs::read(dir.journal()).unwrap(),
        b"SQLite format 3\0 and more"
    );
    let mut newer = b"mqttdlog".to_vec();
    newer.extend_from_slice(&2u32.to_be_bytes());
    fs::write(dir.journal(), &newer).unwrap();
    let error = Journal::recover(&dir.0, NAME).unwrap_err().to_string();
    assert!(error.contains("version 2"), "{error}");
}

#[test]
fn a_header_cut_short_by_a_crash_starts_an_empty_journal() {
    let dir = TempDir::new("torn-header");
    fs::create_dir_all(&dir.0).unwrap();
    fs::write(dir.journal(), b"mqttd").unwrap();
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    assert_eq!((recovered.records, recovered.file.len), (0, HEADER_LEN));
    drop(recovered);
    // Five bytes that are not the start of a header are someone else's file.
    fs::write(dir.journal(), b"hello").unwrap();
    assert!(Journal::recover(&dir.0, NAME).is_err());
    assert_eq!(fs::read(dir.journal()).unwrap(), b"hello");
}

#[test]
fn a_directory_that_cannot_be_made_is_an_error_naming_it() {
    let dir = TempDir::new("not-a-dir");
    fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("plain-file");
    fs::write(&file, b"").unwrap();
    let error = Journal::recover(&file.join("sub"), NAME).unwrap_err();
    assert!(error.to_string().contains("plain-file"), "{error}");
}

#[test]
fn a_second_broker_on_the_same_directory_is_refused() {
    let dir = TempDir::new("lock");
    let first = Journal::recover(&dir.0, NAME).unwrap();
    let error = Journal::recover(&dir.0, NAME).unwrap_err().to_string();
    assert!(error.contains("another broker"), "{error}");
    drop(first);
    assert!(
        Journal::recover(&dir.0, NAME).is_ok(),
        "the lock goes with it"
    );
}

#[test]
fn many_threads_share_fsyncs_and_all_are_committed() {
    let dir = TempDir::new("group");
    let journal = Arc::new(Journal::start(Journal::recover(&dir.0, NAME).unwrap()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                for n in 0..50 {
                    let ticket = journal.append(Record::Qos2Received {
                        session: t,
                        packet_id: n,
                    });
                    journal.wait(ticket).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let (records, commits) = journal.counts();
    assert_eq!(records, 400);
    assert!(commits <= records, "never more fsyncs than records");
    journal.close();
    assert_eq!(Journal::recover(&dir.0, NAME).unwrap().records, 400);
}

#[test]
fn waiting_after_the_journal_closed_fails_instead_of_hanging() {
    let dir = TempDir::new("closed");
    let journal = Journal::start(Journal::recover(&dir.0, NAME).unwrap()).unwrap();
    journal.close();
    let ticket = journal.append(Record::SessionEnded { session: 1 });
    assert!(journal.wait(ticket).is_err());
}

#[test]
fn compaction_keeps_the_state_and_bounds_the_file() {
    let dir = TempDir::new("compact");
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    let journal = Journal::start_compacting_at(recovered, 4096).unwrap();
    let mut records = some_records();
    // Churn: subscribing and unsubscribing changes nothing in the end, but fills a log.
    for n in 0..2000 {
        let filter: Box<str> = format!("churn/{n}").into();
        records.push(Record::Subscribed {
            session: 1,
            filter: filter.clone(),
            qos: QoS::AtMostOnce,
        });
        records.push(Record::Unsubscribed { session: 1, filter });
    }
    for record in &records {
        journal.wait(journal.append(record.clone())).unwrap();
    }
    journal.close();
    let len = fs::metadata(dir.journal()).unwrap().len();
    assert!(len < 3 * 4096, "compacted: {len} bytes");
    let recovered = Journal::recover(&dir.0, NAME).unwrap();
    let mut expected = model(&records);
    let mut got = recovered.state;
    (expected.last_session, expected.last_message) = (0, 0);
    (got.last_session, got.last_message) = (0, 0);
    assert_eq!(got, expected);
}

/// Records drawn from a small world (3 sessions, 2 client ids, 4 packet ids, 3 topics),
/// so that they often refer to each other. Message ids are made unique afterwards, as the
/// broker makes them.
fn any_record() -> impl Strategy<Value = Record> {
    let session = 1..4u64;
    let qos = prop_oneof![Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)];
    let packet_id = 1..5u16;
    let message_id = (1..12u64).prop_map(id);
    prop_oneof![
        (session.clone(), 0..2u8).prop_map(|(session, c)| Record::SessionOpened {
            session,
            client_id: format!("c{c}").into(),
        }),
        session
            .clone()
            .prop_map(|session| Record::SessionEnded { session }),
        (session.clone(), 0..3u8, qos.clone()).prop_map(|(session, f, qos)| {
            Record::Subscribed {
                session,
                filter: format!("f{f}").into(),
                qos,
            }
        }),
        (session.clone(), 0..3u8).prop_map(|(session, f)| Record::Unsubscribed {
            session,
            filter: format!("f{f}").into(),
        }),
        (0..3u8, any::<bool>(), 0..3usize).prop_map(|(t, retain, len)| {
            let mut m = message(1, &format!("t{t}"), retain);
            m.payload = Arc::from(&b"xyz"[..len]);
            Record::Message(m)
        }),
        (
            message_id.clone(),
            proptest::collection::vec((session.clone(), qos.clone()), 0..3)
        )
            .prop_map(|(message, targets)| Record::Routed { message, targets }),
        (
            session.clone(),
            message_id.clone(),
            qos.clone(),
            any::<bool>()
        )
            .prop_map(|(session, message, qos, retain)| Record::Queued {
                session,
                message,
                qos,
                retain,
            }),
        (session.clone(), message_id.clone())
            .prop_map(|(session, message)| Record::Dropped { session, message }),
        (
            session.clone(),
            message_id,
            packet_id.clone(),
            qos,
            any::<bool>()
        )
            .prop_map(|(session, message, packet_id, qos, retain)| Record::Sent {
                session,
                message,
                packet_id,
                qos,
                retain,
            }),
        (session.clone(), packet_id.clone())
            .prop_map(|(session, packet_id)| Record::PubrelSent { session, packet_id }),
        (session.clone(), packet_id.clone())
            .prop_map(|(session, packet_id)| Record::Delivered { session, packet_id }),
        (session.clone(), packet_id.clone())
            .prop_map(|(session, packet_id)| Record::Qos2Received { session, packet_id }),
        (session, packet_id)
            .prop_map(|(session, packet_id)| Record::Qos2Released { session, packet_id }),
    ]
}

/// Numbers the `Message` records 1, 2, 3, … in order, as `Journal::next_message_id` does.
fn number_messages(mut records: Vec<Record>) -> Vec<Record> {
    let mut next = 1;
    for record in &mut records {
        if let Record::Message(m) = record {
            m.stored = Some(id(next));
            next += 1;
        }
    }
    records
}

fn without_counters(mut state: State) -> State {
    (state.last_session, state.last_message) = (0, 0);
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A crash at any byte: recovery gives exactly the state of the whole records before it.
    #[test]
    fn recovery_after_a_crash_anywhere_equals_the_model_at_that_record(
        records in proptest::collection::vec(any_record(), 0..60).prop_map(number_messages),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut bytes = Vec::new();
        let mut ends = vec![0];
        for record in &records {
            record.encode(&mut bytes);
            ends.push(bytes.len());
        }
        let cut_at = cut.index(bytes.len() + 1);
        let whole = ends.iter().filter(|&&end| end <= cut_at).count() - 1;
        let dir = TempDir::new("prop");
        fs::create_dir_all(&dir.0).unwrap();
        let mut file = fs::File::create(dir.journal()).unwrap();
        file.write_all(b"mqttdlog\0\0\0\x01").unwrap();
        file.write_all(&bytes[..cut_at]).unwrap();
        drop(file);
        let recovered = Journal::recover(&dir.0, NAME).unwrap();
        prop_assert_eq!(recovered.records, whole);
        prop_assert_eq!(recovered.state, model(&records[..whole]));
    }

    /// A snapshot is the same state in fewer records: what compaction writes reads back
    /// equal.
    #[test]
    fn a_snapshot_reads_back_as_the_state_it_was_taken_from(
        records in proptest::collection::vec(any_record(), 0..80).prop_map(number_messages),
    ) {
        let state = model(&records);
        let again = model(&state.snapshot());
        prop_assert_eq!(without_counters(again), without_counters(state));
    }
}
