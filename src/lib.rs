//! # mqttd — an MQTT 3.1.1 broker to read alongside the specification
//!
//! mqttd is a complete broker written to be read: every module is named after a concept of
//! the MQTT 3.1.1 standard (OASIS, 29 October 2014), every rule it enforces carries the
//! standard's identifier in a comment (`[MQTT-3.1.2-24]`), and every module has a chapter
//! in `walkthrough/` that tells you what to read in which order.
//!
//! The modules are layers, and imports run one way: each module uses only those listed
//! below it (`tests/layers.rs` fails otherwise). Read from the bottom up, every module
//! makes sense without the ones above it.
//!
//! | layer | module          | concept                                           | spec            | chapter |
//! |-------|-----------------|---------------------------------------------------|-----------------|---------|
//! | 9     | [`server`]      | the listeners and their acceptor threads, the `sys` thread, starting, stopping, reloading | §4.2     | 00, 10 |
//! | 8     | `connection`    | one client's threads: handshake, reader, writer, keepalive, teardown | §3.1, §3.2, §4.8 | 00, 02, 09 |
//! | 7     | `protocol`      | what each packet does: open, handle, close; why a connection ended | §3, §4.3, §4.8 | 02, 04, 05 |
//! | 6     | [`broker`]      | shared state: the session store, the subscription trie, retained messages, routing, counters and `$SYS` | §3.3.5, §4.5, §4.7.2 | 03, 04, 06, 07, 10 |
//! | 5     | `persistence`   | the journal: records of durable state, group commit, recovery, compaction | §4.1 | 11 |
//! | 5     | `session`       | one client's state that survives a disconnect; QoS 1/2 state both ways | §3.1.2.4, §4.1, §4.4 | 05, 06 |
//! | 4     | [`mailbox`]     | a message, a delivery, the Outbox and the Doorbells a session is delivered through | §4.6 | 04, 09 |
//! | 3     | [`send`]        | `mqttd send`: a raw-byte client over plain TCP, its answers shown by the dissector | §2, §3 | 01, 02 |
//! | 2     | [`dissect`]     | `mqttd decode`: packets taken apart field by field with the codec's own readers | §2, §3 | 01 |
//! | 1     | [`codec`]       | bytes ⇄ packets: fixed header, Remaining Length, the 14 packet types | §1.5, §2, §3 | 01 |
//! | 1     | [`acl`]         | who may publish and receive which topics: Mosquitto's `acl_file` | §4.7, §5.4.2 | 10 |
//! | 1     | `transport`     | the byte stream under MQTT, shared by a connection's threads: TCP, TLS, WebSocket frames | §4.2, §6 | 00, 12 |
//! | 1     | `listen`        | a listening TCP socket whose accept queue holds a reconnect storm (`backlog` feature) | §4.2 | 09 |
//! | 0     | [`thread_name`] | names of threads that change while they run: a kept handshake thread is renamed for each connection | | 00, 09 |
//! | 0     | `throttle`      | one warning a second for refusals that come in floods (a full broker in a reconnect storm) | | 09 |
//! | 0     | [`topic`]       | topic names, filters, wildcards, the trie and the topic map | §4.7        | 03, 07 |
//! | 0     | [`config`]      | the settings, their defaults and limits, and Mosquitto's configuration file |  | 00, 10 |
//! | 0     | [`sequence`]    | `--sequence FILE`: a Mermaid sequence diagram of a real run, drawn from the debug log |  | 05 |
//! | 0     | [`passwords`]   | password files as `mosquitto_passwd` writes them, and `mqttd passwd` (hashing behind the `auth` feature) | §3.1.3.4, §3.1.3.5 | 10 |
//!
//! The modules without a link are internal (`pub(crate)`): an embedder needs only
//! [`Server`] (and its [`Reloader`]), [`Config`] and its file reader, the counters on
//! [`broker::Broker`], and the codec, topic, acl and password types, which the tests and
//! benchmarks use too.
//!
//! The shape is deliberately simple: synchronous, **thread-per-connection**, no async
//! runtime. See [`server`] for the thread diagram and `src/connection/mod.rs` for one
//! client's threads.
//!
//! To embed a broker (this is what the integration tests do):
//!
//! ```no_run
//! // Port 0: let the OS pick a free port.
//! let server = mqttd::Server::start(mqttd::Config::listening_on("127.0.0.1:0".parse().unwrap()))
//!     .expect("bind");
//! println!("listening on {}", server.local_addr());
//! server.stop();
//! ```

#![forbid(unsafe_code)]

pub mod acl;
pub mod broker;
pub mod codec;
pub mod config;
mod connection;
pub mod dissect;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod listen;
pub mod mailbox;
pub mod passwords;
mod persistence;
mod protocol;
pub mod send;
pub mod sequence;
pub mod server;
mod session;
pub mod thread_name;
mod throttle;
pub mod topic;
mod transport;

pub use config::Config;
pub use server::{Reloader, Server, Stopper};
