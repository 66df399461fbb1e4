//! The state every connection shares: who is connected, who subscribed to what, and the
//! routing of a PUBLISH to the matching subscribers (spec §3.3.5, §4.5, §4.7).
//!
//! ## Locks
//!
//! Four `parking_lot::Mutex`es, each guarding one structure, each held only for a few
//! operations and never across I/O or a blocking channel send:
//!
//! | lock            | guards                                  | taken by                                  |
//! |-----------------|-----------------------------------------|-------------------------------------------|
//! | `sessions`      | Client Identifier → session slot        | handshake (claim, take over), teardown (store) |
//! | `subscriptions` | the topic trie                          | SUBSCRIBE, UNSUBSCRIBE, PUBLISH routing, session end |
//! | `retained`      | the retained messages                   | PUBLISH with RETAIN=1; a writer sending them to a new subscription |
//! | `connections`   | every open socket, for [`Broker::stop`] | handshake thread, teardown, stop          |
//!
//! **Lock order: no code path holds two of them at once.** Each function takes one guard in
//! a small block, copies out what it needs, and lets it drop before taking the next. With no
//! nesting there is no order to get wrong, and no deadlock to find in a debugger.

mod retained;
mod routing;
mod sessions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::codec::{QoS, SubscribeReturnCode};
use crate::config::Config;
use crate::connection::Socket;
use crate::topic::{self, SubscriptionTrie};

pub use retained::RetainedMessages;
pub use routing::{Delivery, Doorbells, Message, Outbox};
pub use sessions::{Claim, SessionSlot, TAKEOVER_TIMEOUT};

/// Identifies one network connection, from accept to close.
pub type ConnectionId = u64;

/// Identifies one session. A new id for each session, so that the teardown of an old
/// connection can never remove what a newer session of the same client subscribed.
pub type SessionId = u64;

/// The deepest topic filter accepted, in levels. Deeper filters get SUBACK 0x80, as in
/// Mosquitto (which also stops at 200 levels). This keeps the trie shallow enough to walk
/// and drop without deep recursion; topic *names* have no such limit.
pub const MAX_FILTER_LEVELS: usize = 200;

/// What one subscription in the trie holds.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The maximum QoS granted for this filter.
    pub qos: QoS,
    /// Where matching messages go: the session's queue to its writer thread.
    pub outbox: Arc<Outbox>,
}

/// Counters that anyone may read; each is written with a single atomic add.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages routed: every PUBLISH accepted from a client (a re-sent QoS 2 PUBLISH is
    /// not routed twice, so it is not counted twice) and every Will published.
    pub publishes_received: AtomicU64,
    /// Messages dropped because a subscriber's queue was full.
    pub messages_dropped: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub publishes_received: u64,
    pub messages_dropped: u64,
}

/// The shared state of one running broker. Every connection thread holds an `Arc` of it.
#[derive(Debug)]
pub struct Broker {
    pub config: Config,
    /// Sessions by Client Identifier ([MQTT-3.1.3-2]: the id names the session), connected
    /// or stored. Written by the handshake (claim, take over) and by teardown (store, forget).
    sessions: Mutex<HashMap<Arc<str>, SessionSlot>>,
    /// Signalled whenever a connection gives its session slot up, for a takeover waiting
    /// in `claim_session`. Used with the `sessions` lock.
    sessions_changed: Condvar,
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
    /// Source of connection and session ids, and of generated Client Identifiers.
    next_id: AtomicU64,
    /// Set once by [`Broker::stop`]; read by the acceptor before each new connection.
    stopping: AtomicBool,
    pub stats: Stats,
}

impl Broker {
    pub fn new(config: Config) -> Broker {
        Broker {
            config,
            sessions: Mutex::new(HashMap::new()),
            sessions_changed: Condvar::new(),
            subscriptions: Mutex::new(SubscriptionTrie::new()),
            retained: Mutex::new(RetainedMessages::new()),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            stats: Stats::default(),
        }
    }

    /// A number never handed out before by this broker.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            publishes_received: self.stats.publishes_received.load(Ordering::Relaxed),
            messages_dropped: self.stats.messages_dropped.load(Ordering::Relaxed),
        }
    }

    /// Adds or replaces ([MQTT-3.8.4-3]) one subscription of a session and says what was
    /// granted. The filter has been validated by the decoder.
    pub fn subscribe(
        &self,
        session: SessionId,
        outbox: &Arc<Outbox>,
        filter: &str,
        requested: QoS,
    ) -> SubscribeReturnCode {
        if topic::level_count(filter) > MAX_FILTER_LEVELS {
            log::warn!(
                "client {:?}: refusing filter deeper than {MAX_FILTER_LEVELS} levels",
                outbox.client_id()
            );
            return SubscribeReturnCode::Failure;
        }
        // Every QoS is supported, so what was asked for is granted ([MQTT-3.8.4-6] would
        // allow less), and so are wildcards ([MQTT-3.8.3-2]).
        let subscriber = Subscriber {
            qos: requested,
            outbox: Arc::clone(outbox),
        };
        self.subscriptions
            .lock()
            .insert(filter, session, subscriber);
        SubscribeReturnCode::Granted(requested)
    }

    /// Calls `visit` for every retained message whose topic `filter` matches
    /// ([MQTT-3.3.1-6]). `visit` runs under the `retained` lock: it should only copy.
    pub fn for_each_retained(&self, filter: &str, visit: impl FnMut(&Message)) {
        self.retained.lock().for_each_match(filter, visit);
    }

    /// The number of topics with a retained message.
    pub fn retained_count(&self) -> usize {
        self.retained.lock().len()
    }

    /// Removes one subscription, matching the filter literally ([MQTT-3.10.4-1]).
    /// Returns whether it existed.
    pub fn unsubscribe(&self, session: SessionId, filter: &str) -> bool {
        self.subscriptions.lock().remove(filter, &session).is_some()
    }

    /// Removes every listed subscription of a session, under one lock.
    pub fn unsubscribe_all<'a>(&self, session: SessionId, filters: impl Iterator<Item = &'a str>) {
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
    pub fn track_connection(&self, id: ConnectionId, socket: Socket) {
        self.connections.lock().insert(id, socket);
    }

    /// Forgets a socket that has been closed.
    pub fn untrack_connection(&self, id: ConnectionId) {
        self.connections.lock().remove(&id);
    }

    /// The number of open TCP connections, including those still in the handshake.
    pub fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Marks the broker as stopping and shuts every open socket down. Each connection's
    /// threads then see their socket fail and run their normal teardown.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let sockets: Vec<Socket> = self.connections.lock().values().cloned().collect();
        for socket in sockets {
            socket.shutdown();
        }
    }
}
