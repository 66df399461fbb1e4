//! The session store: sessions by Client Identifier, who is connected, and what waits for
//! those who are not (spec §3.1.2.4, §3.1.4, §4.1).
//!
//! Each Client Identifier has at most one slot:
//!
//! ```text
//!   Connected { connection, socket }    a network connection holds the session now
//!   Stored(StoredSession)               nobody is connected; a Clean Session 0 session
//!                                       waits here, its subscriptions still in the trie
//! ```
//!
//! **Takeover** ([MQTT-3.1.4-2]) is a hand-over, not a race. The new connection marks the
//! old slot as taken over, shuts the old socket down and *waits* on a condition variable.
//! The old connection's reader tears down as usual: it collects the session back from its
//! writer thread (the in-flight messages included) and stores it in the slot. Only then
//! does the new connection take the slot, so no message in flight is lost between them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::{ConnectionId, Sequence};
use crate::session::{Session, SessionId, WriterSide};
use crate::transport::Socket;

/// How long a new connection waits for the connection it takes over to hand its session
/// back. The old connection's threads are woken by the socket shutdown and finish in
/// microseconds; this only bounds a bug.
pub(crate) const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A session waiting for its client to come back (Clean Session 0 only): both halves,
/// taken back from the reader and writer threads when the connection ended.
#[derive(Debug)]
pub(crate) struct StoredSession {
    pub session: Session,
    pub writer_side: WriterSide,
}

/// The store itself. One lock, `slots`, held for a few map operations at a time and never
/// across I/O: a takeover shuts the old socket down with it released.
#[derive(Debug)]
pub(crate) struct SessionStore {
    /// Sessions by Client Identifier ([MQTT-3.1.3-2]: the id names the session), connected
    /// or stored. Written by the handshake (claim, take over) and by teardown (release).
    slots: Mutex<HashMap<Arc<str>, SessionSlot>>,
    /// Signalled whenever a connection gives its slot up, for a takeover waiting in
    /// [`SessionStore::claim`]. Used with the `slots` lock.
    changed: Condvar,
    /// Numbers the sessions ([`SessionId`]).
    session_ids: Sequence,
    /// Numbers the Client Identifiers made up for clients that sent none.
    generated_ids: Sequence,
}

/// What the store holds for one Client Identifier.
#[derive(Debug)]
enum SessionSlot {
    Connected {
        connection: ConnectionId,
        /// To shut the connection down when another one takes over.
        socket: Socket,
        /// Set by the connection that takes over, read by this one's teardown.
        taken_over: bool,
    },
    /// Boxed: a stored session is several times the size of a connected slot, and most
    /// slots are connected ones.
    Stored(Box<StoredSession>),
}

/// The result of claiming a Client Identifier at CONNECT.
#[derive(Debug)]
pub(crate) struct Claim {
    /// The session that was stored for this Client Identifier, if any.
    pub previous: Option<StoredSession>,
    /// Whether a live connection had to be taken over.
    pub took_over: bool,
}

/// The result of releasing a Client Identifier at the end of a connection.
#[derive(Debug)]
pub(crate) struct Released {
    /// Whether another connection had taken the identifier over.
    pub taken_over: bool,
    /// A session that was to be kept but could not be, because the slot was no longer
    /// this connection's (only after a bug): the caller must remove its subscriptions.
    pub orphan: Option<StoredSession>,
}

impl SessionStore {
    pub(crate) fn new() -> SessionStore {
        SessionStore {
            slots: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            session_ids: Sequence::new(),
            generated_ids: Sequence::new(),
        }
    }

    /// A session id never handed out before by this store.
    pub(crate) fn new_session_id(&self) -> SessionId {
        self.session_ids.next()
    }

    /// Numbers new sessions after `used`, the highest the persistence journal has seen.
    pub(crate) fn skip_session_ids(&self, used: SessionId) {
        self.session_ids.skip_past(used);
    }

    /// Puts a session read back from the persistence journal in place, waiting for its
    /// client; new sessions are numbered after it.
    pub(crate) fn store_recovered(&self, stored: StoredSession) {
        self.session_ids.skip_past(stored.session.id);
        let client_id = Arc::clone(&stored.session.client_id);
        let slot = SessionSlot::Stored(Box::new(stored));
        self.slots.lock().insert(client_id, slot);
    }

    /// Makes `connection` the holder of `client_id`. A live connection holding it is shut
    /// down ([MQTT-3.1.4-2]) and its session waited for; a stored session is handed over.
    /// Returns `None` if the old connection did not hand its session back in time.
    pub(crate) fn claim(
        &self,
        client_id: &Arc<str>,
        connection: ConnectionId,
        socket: Socket,
    ) -> Option<Claim> {
        let deadline = Instant::now() + TAKEOVER_TIMEOUT;
        let mut took_over = false;
        let mut sessions = self.slots.lock();
        loop {
            match sessions.get_mut(client_id) {
                Some(SessionSlot::Connected {
                    socket: old_socket,
                    taken_over,
                    ..
                }) => {
                    if !*taken_over {
                        *taken_over = true;
                        took_over = true;
                        let old_socket = old_socket.clone();
                        // [MQTT-3.1.4-2] close the existing connection with this identifier,
                        // with the lock released (no lock is held across I/O), then look at
                        // the slot again: it may have changed meanwhile.
                        MutexGuard::unlocked(&mut sessions, || old_socket.shutdown());
                        continue;
                    }
                    // Sleeps without the lock until the old connection's teardown stores
                    // the session and notifies.
                    if self.changed.wait_until(&mut sessions, deadline).timed_out() {
                        return None;
                    }
                }
                _ => {
                    let connected = SessionSlot::Connected {
                        connection,
                        socket,
                        taken_over: false,
                    };
                    let previous = match sessions.insert(Arc::clone(client_id), connected) {
                        Some(SessionSlot::Stored(stored)) => Some(*stored),
                        _ => None,
                    };
                    return Some(Claim {
                        previous,
                        took_over,
                    });
                }
            }
        }
    }

    /// Gives up `client_id` at the end of `connection`: stores `keep` (a Clean Session 0
    /// session) or forgets the identifier.
    pub(crate) fn release(
        &self,
        client_id: &Arc<str>,
        connection: ConnectionId,
        keep: Option<StoredSession>,
    ) -> Released {
        let mut sessions = self.slots.lock();
        let taken_over = match sessions.get(client_id) {
            Some(SessionSlot::Connected {
                connection: holder,
                taken_over,
                ..
            }) if *holder == connection => *taken_over,
            // The slot is no longer ours: only after a bug made `release_connection` clear
            // it. The session cannot be kept, so its subscriptions must not stay behind.
            _ => {
                return Released {
                    taken_over: true,
                    orphan: keep,
                }
            }
        };
        match keep {
            Some(stored) => {
                sessions.insert(Arc::clone(client_id), SessionSlot::Stored(Box::new(stored)));
            }
            None => {
                sessions.remove(client_id);
            }
        }
        drop(sessions);
        self.changed.notify_all();
        Released {
            taken_over,
            orphan: None,
        }
    }

    /// Forgets whatever session slot `connection` holds, without storing anything: the
    /// clean-up after a bug interrupted a handshake.
    pub(crate) fn release_connection(&self, connection: ConnectionId) {
        self.slots.lock().retain(|_, slot| {
            !matches!(slot, SessionSlot::Connected { connection: holder, .. } if *holder == connection)
        });
        self.changed.notify_all();
    }

    /// Whether another connection has taken `client_id` over from `connection`.
    pub(crate) fn is_taken_over(&self, client_id: &str, connection: ConnectionId) -> bool {
        let sessions = self.slots.lock();
        matches!(
            sessions.get(client_id),
            Some(SessionSlot::Connected { connection: holder, taken_over: true, .. })
                if *holder == connection
        )
    }

    /// The number of connected clients (connections past their CONNACK).
    pub(crate) fn connected_count(&self) -> usize {
        let sessions = self.slots.lock();
        sessions
            .values()
            .filter(|slot| matches!(slot, SessionSlot::Connected { .. }))
            .count()
    }

    /// The number of sessions stored for clients that are not connected.
    pub(crate) fn stored_count(&self) -> usize {
        let sessions = self.slots.lock();
        sessions
            .values()
            .filter(|slot| matches!(slot, SessionSlot::Stored(_)))
            .count()
    }

    /// A Client Identifier for a client that sent an empty one ([MQTT-3.1.3-6]).
    ///
    /// Like Mosquitto's `auto-…` ids: a prefix no sensible client uses plus a number, checked
    /// against the known sessions so that it is unique right now.
    pub(crate) fn generate_client_id(&self) -> String {
        loop {
            let candidate = format!("auto-{:016x}", self.generated_ids.next());
            if !self.slots.lock().contains_key(candidate.as_str()) {
                return candidate;
            }
        }
    }

    /// Takes out every stored session whose client has been away at least `max_away` at
    /// `now` (Mosquitto's `persistent_client_expiration`), and returns them with their
    /// Client Identifiers; the caller ends them. Connected sessions are never touched.
    pub(crate) fn expire(
        &self,
        max_away: Duration,
        now: Instant,
    ) -> Vec<(Arc<str>, StoredSession)> {
        let expired = |slot: &SessionSlot| match slot {
            SessionSlot::Stored(stored) => stored
                .session
                .away_since
                .is_some_and(|since| now.saturating_duration_since(since) >= max_away),
            SessionSlot::Connected { .. } => false,
        };
        let mut slots = self.slots.lock();
        let gone: Vec<Arc<str>> = slots
            .iter()
            .filter(|(_, slot)| expired(slot))
            .map(|(client_id, _)| Arc::clone(client_id))
            .collect();
        gone.into_iter()
            .filter_map(|client_id| match slots.remove(&client_id) {
                Some(SessionSlot::Stored(stored)) => Some((client_id, *stored)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Limits;
    use std::net::{TcpListener, TcpStream};

    /// A real socket to put in a slot (the store shuts it down at a takeover).
    fn socket() -> (Socket, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (Socket::new(stream), listener)
    }

    fn stored(store: &SessionStore, client_id: &str) -> StoredSession {
        let limits = Limits {
            max_queued: 10,
            max_in_flight: 10,
            on_disk: false,
        };
        let id = store.new_session_id();
        let (session, writer_side) = Session::new(id, client_id.into(), false, limits);
        StoredSession {
            session,
            writer_side,
        }
    }

    #[test]
    fn generated_client_ids_count_one_by_one_mqtt_3_1_3_6() {
        let store = SessionStore::new();
        store.new_session_id();
        assert_eq!(store.generate_client_id(), "auto-0000000000000001");
        assert_eq!(store.generate_client_id(), "auto-0000000000000002");
    }

    #[test]
    fn a_kept_session_is_handed_to_the_next_claim_mqtt_3_1_2_4() {
        let store = SessionStore::new();
        let (socket, _listener) = socket();
        let client_id: Arc<str> = "k".into();
        let first = store.claim(&client_id, 1, socket.clone()).unwrap();
        assert!(first.previous.is_none() && !first.took_over);
        assert_eq!(store.connected_count(), 1);
        let keep = stored(&store, "k");
        let id = keep.session.id;
        let released = store.release(&client_id, 1, Some(keep));
        assert!(!released.taken_over && released.orphan.is_none());
        assert_eq!((store.connected_count(), store.stored_count()), (0, 1));
        let second = store.claim(&client_id, 2, socket).unwrap();
        assert_eq!(second.previous.map(|p| p.session.id), Some(id));
    }

    #[test]
    fn a_release_by_a_connection_that_no_longer_holds_the_slot_returns_the_orphan() {
        let store = SessionStore::new();
        let (socket, _listener) = socket();
        let client_id: Arc<str> = "k".into();
        store.claim(&client_id, 1, socket).unwrap();
        store.release_connection(1);
        let released = store.release(&client_id, 1, Some(stored(&store, "k")));
        assert!(
            released.orphan.is_some(),
            "its subscriptions must be removed"
        );
        assert_eq!(store.stored_count(), 0);
    }

    #[test]
    fn only_stored_sessions_away_long_enough_expire() {
        let store = SessionStore::new();
        let (socket, _listener) = socket();
        let (away, here): (Arc<str>, Arc<str>) = ("away".into(), "here".into());
        store.claim(&away, 1, socket.clone()).unwrap();
        store.claim(&here, 2, socket).unwrap();
        let mut keep = stored(&store, "away");
        let left = Instant::now();
        keep.session.away_since = Some(left);
        store.release(&away, 1, Some(keep));
        let hour = Duration::from_secs(3_600);
        assert!(store.expire(hour, left).is_empty(), "not away long enough");
        let expired = store.expire(hour, left + hour);
        assert_eq!(expired.len(), 1);
        assert_eq!(&*expired[0].0, "away");
        assert_eq!(
            store.connected_count(),
            1,
            "a connected session never expires"
        );
    }
}
