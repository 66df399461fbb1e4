//! The state every connection shares: who is connected, who subscribed to what, and the
//! routing of a PUBLISH to the matching subscribers (spec §3.3.5, §4.5, §4.7). It sits
//! above the session and the mailbox (it stores sessions, feeds Outboxes) and below the
//! protocol handler; it knows a connection only as an id and a [`Socket`] to shut down.
//!
//! | file               | holds                                                      |
//! |--------------------|------------------------------------------------------------|
//! | `mod.rs`           | [`Broker`]: subscriptions, open sockets, security, stopping |
//! | `session_store.rs` | `SessionStore`: sessions by Client Identifier, takeover     |
//! | `routing.rs`       | `Broker::publish`: from the trie to each subscriber's Outbox |
//! | `retained.rs`      | [`RetainedMessages`]: the retained message of each topic    |
//! | `durable.rs`       | the journal's side: what is recorded, and the state read back at start |
//! | `stats.rs`, `sys_tree.rs` | the counters, and the `$SYS/broker/…` tree made of them |
//!
//! ## Locks
//!
//! Six `parking_lot::Mutex`es, one structure each, held for a few operations and never
//! across I/O or a blocking channel send:
//!
//! | lock            | guards                                  | taken by                                  |
//! |-----------------|-----------------------------------------|-------------------------------------------|
//! | `SessionStore::slots` | Client Identifier → session slot  | handshake (claim, take over), teardown (release) |
//! | `subscriptions` | the topic trie                          | SUBSCRIBE, UNSUBSCRIBE, PUBLISH routing, session end, reload |
//! | `retained`      | the retained messages                   | PUBLISH with RETAIN=1, SUBSCRIBE (both inside `subscriptions`); a writer sending them to a new subscription |
//! | `connections`   | every open socket, for [`Broker::stop`] | handshake thread, teardown, stop          |
//! | `acl`, `passwords` | the security files' rules and users (an `Arc`, cloned out) | CONNECT, a packet after a reload, reload |
//!
//! **Lock order.** Each function takes one guard in a small block, copies out what it needs,
//! and lets it drop before taking the next (even `set_acl`: it puts the rules in place, lets
//! go, then walks the trie). The one exception: `retained` is taken *inside*
//! `subscriptions`, by `Broker::publish` to store a RETAIN=1 message and by
//! `Broker::subscribe` to read the store's [`Cutoff`], so that a new subscription sees each
//! retained message either in the store or live, never both. Nothing takes
//! `subscriptions` while it holds `retained`, so no deadlock.

mod durable;
mod retained;
mod routing;
mod session_store;
mod stats;
mod sys_tree;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::acl::{Acl, ClientAcl, SubscriptionAccess, Who};
use crate::codec::QoS;
use crate::config::Config;
use crate::mailbox::{Message, Outbox};
use crate::passwords::{Check, PasswordFile};
use crate::persistence::Journal;
use crate::session::SessionId;
use crate::topic::{self, SubscriptionTrie};
use crate::transport::Socket;

pub use retained::{Cutoff, RetainedMessages};
pub(crate) use session_store::{Released, SessionStore, StoredSession};

pub use stats::StatsSnapshot;
pub(crate) use stats::Traffic;
pub(crate) use sys_tree::SysTree;

/// Identifies one network connection, from accept to close.
pub(crate) type ConnectionId = u64;

/// The deepest topic filter accepted, in levels. Deeper filters get SUBACK 0x80, as in
/// Mosquitto (which also stops at 200 levels). This keeps the trie shallow enough to walk;
/// topic *names* have no such limit.
pub const MAX_FILTER_LEVELS: usize = 200;

/// What one subscription in the trie holds.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    /// The maximum QoS granted for this filter.
    pub qos: QoS,
    /// Where matching messages go: the session's queue to its writer thread.
    pub outbox: Arc<Outbox>,
    /// The subscriber's access rules, when this filter is only partly readable for it
    /// (`SubscriptionAccess::GrantedFiltered`): each message is checked before it is
    /// queued. `None`: everything the filter matches may be delivered.
    pub reading: Option<Arc<ClientAcl>>,
    /// Who subscribed, so that a reload of the `acl_file` can work out `reading` again.
    pub owner: Arc<Identity>,
}

impl Subscriber {
    /// A subscription at `qos` that may receive everything its filter matches, for an
    /// anonymous client named after its Outbox (what the broker's unit tests subscribe).
    #[cfg(test)]
    pub(crate) fn new(outbox: &Arc<Outbox>, qos: QoS) -> Subscriber {
        Subscriber {
            qos,
            outbox: Arc::clone(outbox),
            reading: None,
            owner: Arc::new(Identity {
                client_id: Arc::clone(outbox.client_id()),
                username: None,
            }),
        }
    }
}

/// A client as the access rules see it: the identity its CONNECT gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub client_id: Arc<str>,
    pub username: Option<Box<str>>,
}

impl Identity {
    pub(crate) fn who(&self) -> Who<'_> {
        Who {
            client_id: &self.client_id,
            username: self.username.as_deref(),
        }
    }
}

/// A source of numbers, each handed out once: 1, 2, 3, … Each kind of id has its own, so a
/// learner reading the log sees connections, sessions and generated Client Identifiers
/// counted one by one.
#[derive(Debug)]
struct Sequence(AtomicU64);

impl Sequence {
    fn new() -> Sequence {
        Sequence(AtomicU64::new(1))
    }

    /// Makes sure no number up to `used` is handed out (ids read back from the journal).
    fn skip_past(&self, used: u64) {
        self.0.fetch_max(used + 1, Ordering::Relaxed);
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The shared state of one running broker. Every connection thread holds an `Arc` of it.
#[derive(Debug)]
pub struct Broker {
    pub(crate) config: Config,
    /// Sessions by Client Identifier, connected or stored, with its own lock.
    sessions: SessionStore,
    /// Every subscription of every session. Written by SUBSCRIBE, UNSUBSCRIBE and teardown;
    /// read by every PUBLISH.
    subscriptions: Mutex<SubscriptionTrie<SessionId, Subscriber>>,
    /// The retained message of each topic. Written by PUBLISH with RETAIN=1 (Wills too);
    /// read by SUBSCRIBE. Kept here, apart from every session, so that no session's end
    /// deletes one ([MQTT-3.1.2.7]).
    retained: Mutex<RetainedMessages>,
    /// Every open socket, including those still waiting for their CONNECT, so that
    /// [`Broker::stop`] can close them all. Written by each handshake thread and by teardown.
    connections: Mutex<HashMap<ConnectionId, Socket>>,
    /// The rules of `acl_file`, if there is one. Read when the server starts; each client's
    /// share is resolved once, when it connects ([`Broker::client_acl`]).
    acl: Mutex<Option<Arc<Acl>>>,
    /// Counts the times `acl` was replaced; see [`Broker::acl_generation`].
    acl_generation: AtomicU64,
    /// The users of `password_file`, if there is one. Read when the server starts.
    passwords: Mutex<Option<Arc<PasswordFile>>>,
    /// Numbers the connections ([`ConnectionId`]).
    connection_ids: Sequence,
    /// Set once by [`Broker::stop`]; read by the acceptor before each new connection.
    stopping: AtomicBool,
    /// The counters `$SYS` and [`Broker::stats`] report; each is one atomic, added to once
    /// per batch by readers and writers.
    stats: stats::Stats,
    /// When the broker started, for `$SYS/broker/uptime`.
    started: Instant,
    /// The persistence journal (`persistence true`), or `None`: everything in memory.
    journal: Option<Journal>,
}

impl Broker {
    pub(crate) fn new(config: Config) -> Broker {
        Broker {
            config,
            sessions: SessionStore::new(),
            subscriptions: Mutex::new(SubscriptionTrie::new()),
            retained: Mutex::new(RetainedMessages::new()),
            connections: Mutex::new(HashMap::new()),
            acl: Mutex::new(None),
            acl_generation: AtomicU64::new(0),
            passwords: Mutex::new(None),
            connection_ids: Sequence::new(),
            stopping: AtomicBool::new(false),
            stats: stats::Stats::default(),
            started: Instant::now(),
            journal: None,
        }
    }

    /// The session store: claim and release a Client Identifier, take over a connection.
    pub(crate) fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// A connection id never handed out before by this broker.
    pub(crate) fn new_connection_id(&self) -> ConnectionId {
        self.connection_ids.next()
    }

    /// Puts an `acl_file`'s rules in place: for new clients, every subscription at once (under
    /// the trie's lock), and each client's next packet (its reader sees the new generation).
    pub(crate) fn set_acl(&self, acl: Option<Acl>) {
        let acl = acl.map(Arc::new);
        *self.acl.lock() = acl.clone();
        self.acl_generation.fetch_add(1, Ordering::Release);
        let mut resolved: HashMap<SessionId, Option<Arc<ClientAcl>>> = HashMap::new();
        self.subscriptions
            .lock()
            .for_each_mut(|filter, session, subscriber| {
                let rules = resolved.entry(*session).or_insert_with(|| {
                    acl.as_ref()
                        .map(|acl| Arc::new(acl.for_client(&subscriber.owner.who())))
                });
                subscriber.reading = Self::reading(rules.as_ref(), filter);
            });
    }

    /// The rules a subscription to `filter` asks per message (`None`: reads all; refused: none).
    fn reading(rules: Option<&Arc<ClientAcl>>, filter: &str) -> Option<Arc<ClientAcl>> {
        rules
            .filter(|rules| rules.subscription(filter) != SubscriptionAccess::Granted)
            .cloned()
    }

    /// Changes each time `set_acl` puts new rules in place: a reader that remembers the
    /// value it last saw knows when to ask for its client's rules again.
    pub(crate) fn acl_generation(&self) -> u64 {
        self.acl_generation.load(Ordering::Acquire)
    }

    /// Puts the users of a `password_file` in place for the clients that connect from now on.
    pub(crate) fn set_passwords(&self, passwords: Option<PasswordFile>) {
        *self.passwords.lock() = passwords.map(Arc::new);
    }

    /// Checks a user name and password against the `password_file`. The hashing runs with
    /// the lock released: it takes a while, on purpose, and must not hold up other
    /// connections. Without a file nobody is known.
    pub(crate) fn check_password(&self, username: &str, password: &[u8]) -> Check {
        let passwords = self.passwords.lock().clone();
        match passwords {
            Some(file) => file.check(username, password),
            None => Check::UnknownUser,
        }
    }

    /// One client's access rules (`None`: no `acl_file`, everything is allowed).
    pub(crate) fn client_acl(&self, who: &Who<'_>) -> Option<Arc<ClientAcl>> {
        let acl = self.acl.lock().clone();
        acl.map(|acl| Arc::new(acl.for_client(who)))
    }

    /// The counters, as they are now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Adds what a reader received in one batch to the counters.
    pub(crate) fn count_received(&self, traffic: Traffic) {
        self.stats.received.add(traffic);
    }

    /// Adds what a writer sent in one batch to the counters.
    pub(crate) fn count_sent(&self, traffic: Traffic) {
        self.stats.sent.add(traffic);
    }

    /// Counts a TCP connection accepted, for `$SYS/broker/load/connections`.
    pub(crate) fn count_connection(&self) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds or replaces ([MQTT-3.8.4-3]) one subscription of a session and says what was
    /// granted, with the [`Cutoff`] of the retained messages it is to be sent (`None`:
    /// refused). The filter has been validated by the decoder.
    pub(crate) fn subscribe(
        &self,
        session: SessionId,
        filter: &str,
        subscriber: Subscriber,
    ) -> Option<(QoS, Cutoff)> {
        if topic::level_count(filter) > MAX_FILTER_LEVELS {
            log::warn!(
                "client {:?}: refusing filter deeper than {MAX_FILTER_LEVELS} levels",
                subscriber.owner.client_id
            );
            return None;
        }
        // Every QoS is supported, so what was asked for is granted ([MQTT-3.8.4-6] would
        // allow less), and so are wildcards ([MQTT-3.8.3-2]).
        let granted = subscriber.qos;
        let mut trie = self.subscriptions.lock();
        trie.insert(filter, session, subscriber);
        // Read while the trie is held: every RETAIN=1 message stored after this point is
        // routed after the insert, and so reaches this subscription live.
        let cutoff = self.retained.lock().cutoff();
        Some((granted, cutoff))
    }

    /// Calls `visit` for every retained message whose topic `filter` matches
    /// ([MQTT-3.3.1-6]), stored at or before `cutoff` (later ones were routed live).
    /// `visit` runs under the `retained` lock: it should only copy.
    pub(crate) fn for_each_retained(
        &self,
        filter: &str,
        cutoff: Cutoff,
        visit: impl FnMut(&Message),
    ) {
        self.retained.lock().for_each_match(filter, cutoff, visit);
    }

    /// The number of retained messages and their payload bytes, read under one lock.
    pub(crate) fn retained_totals(&self) -> (usize, usize) {
        let retained = self.retained.lock();
        (retained.len(), retained.bytes())
    }

    /// The number of topics with a retained message.
    pub fn retained_count(&self) -> usize {
        self.retained.lock().len()
    }

    /// Removes one subscription, matching the filter literally ([MQTT-3.10.4-1]).
    /// Returns whether it existed.
    pub(crate) fn unsubscribe(&self, session: SessionId, filter: &str) -> bool {
        self.subscriptions.lock().remove(filter, &session).is_some()
    }

    /// Removes every listed subscription of a session, under one lock.
    pub(crate) fn unsubscribe_all<'a>(
        &self,
        session: SessionId,
        filters: impl Iterator<Item = &'a str>,
    ) {
        let mut trie = self.subscriptions.lock();
        for filter in filters {
            trie.remove(filter, &session);
        }
    }

    /// The number of (filter, session) pairs in the trie.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.lock().len()
    }

    /// Remembers an open socket so that `stop` can close it.
    pub(crate) fn track_connection(&self, id: ConnectionId, socket: Socket) {
        self.connections.lock().insert(id, socket);
    }

    /// Forgets a socket that has been closed.
    pub(crate) fn untrack_connection(&self, id: ConnectionId) {
        self.connections.lock().remove(&id);
    }

    /// The number of open TCP connections, including those still in the handshake.
    pub fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }

    /// The number of connected clients (connections past their CONNACK).
    pub fn client_count(&self) -> usize {
        self.sessions.connected_count()
    }

    /// The number of sessions stored for clients that are not connected.
    pub fn stored_session_count(&self) -> usize {
        self.sessions.stored_count()
    }

    /// Gives up `client_id` at the end of `connection`, storing `keep` if it is a session
    /// to keep; see [`SessionStore::release`]. Returns whether the connection was taken over.
    pub(crate) fn release_session(
        &self,
        client_id: &Arc<str>,
        connection: ConnectionId,
        keep: Option<StoredSession>,
    ) -> bool {
        let Released { taken_over, orphan } = self.sessions.release(client_id, connection, keep);
        if let Some(orphan) = orphan {
            let session = &orphan.session;
            self.unsubscribe_all(session.id, session.filters());
            self.record_session_end(session);
        }
        taken_over
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Marks the broker as stopping and shuts every open socket down. Each connection's
    /// threads then see their socket fail and run their normal teardown.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let sockets: Vec<Socket> = self.connections.lock().values().cloned().collect();
        for socket in sockets {
            socket.shutdown();
        }
    }

    /// Gives a resumed session's subscriptions to the connection now holding it: its
    /// identity, and its rules where a filter is not wholly readable for it. Without this, a
    /// Clean Session 0 session resumed under another user name would go on receiving what
    /// the first user was allowed to read. One walk of the session's filters, under the
    /// trie's lock.
    pub(crate) fn reown<'a>(
        &self,
        session: SessionId,
        filters: impl Iterator<Item = &'a str>,
        owner: &Arc<Identity>,
        rules: Option<&Arc<ClientAcl>>,
    ) {
        let mut trie = self.subscriptions.lock();
        for filter in filters {
            if let Some(subscriber) = trie.get_mut(filter, &session) {
                subscriber.owner = Arc::clone(owner);
                subscriber.reading = Self::reading(rules, filter);
            }
        }
    }

    /// Ends every stored session whose client has been away longer than
    /// `persistent_client_expiration`: its subscriptions leave the trie, its queued
    /// messages go with it, and each expiry is logged and counted (`$SYS/broker/clients/expired`).
    pub(crate) fn expire_sessions(&self, now: Instant) {
        let Some(max_away) = self.config.persistent_client_expiration else {
            return;
        };
        for (client_id, expired) in self.sessions.expire(max_away, now) {
            let session = &expired.session;
            self.unsubscribe_all(session.id, session.filters());
            self.record_session_end(session);
            self.stats.count_expiry();
            log::info!(
                "client {client_id:?}: its session expired after {max_away:?} away \
                 (persistent_client_expiration)"
            );
        }
    }
}
