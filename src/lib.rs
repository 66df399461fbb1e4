//! # mqttd — an MQTT 3.1.1 broker to read alongside the specification
//!
//! mqttd is a complete broker written to be read: every module is named after a concept of
//! the MQTT 3.1.1 standard (OASIS, 29 October 2014), every rule it enforces carries the
//! standard's identifier in a comment (`[MQTT-3.1.2-24]`), and every module has a chapter
//! in `walkthrough/` that tells you what to read in which order.
//!
//! | module          | concept                                           | spec            | chapter |
//! |-----------------|---------------------------------------------------|-----------------|---------|
//! | [`codec`]       | bytes ⇄ packets: fixed header, Remaining Length, the 14 packet types | §1.5, §2, §3 | 01 |
//! | [`topic`]       | topic names, filters, wildcards, the subscription trie | §4.7        | 03 |
//! | [`broker`]      | shared state: sessions by client, subscriptions, retained messages, routing | §3.3.1.3, §3.3.5, §4.5 | 03, 04, 06, 07 |
//! | [`session`]     | what a client's packets do; QoS 1/2 state both ways; what survives a disconnect | §3.1.2.4, §4.1, §4.3, §4.4, §4.6 | 05, 06 |
//! | [`connection`]  | one client's threads: handshake, reader, writer, keepalive, teardown, Will | §3.1, §3.2, §3.12–§3.14, §4.8 | 00, 02, 07 |
//! | [`server`]      | the listening socket, the acceptor thread, starting and stopping | §4.2     | 00 |
//! | [`config`]      | the settings and their defaults                    |                 | 00 |
//!
//! The shape is deliberately simple: synchronous, **thread-per-connection**, no async
//! runtime. See [`server`] for the thread diagram and [`connection`] for one client's threads.
//!
//! To embed a broker (this is what the integration tests do):
//!
//! ```no_run
//! let server = mqttd::Server::start(mqttd::Config {
//!     bind: "127.0.0.1:0".parse().unwrap(), // port 0: let the OS pick a free port
//!     ..mqttd::Config::default()
//! })
//! .expect("bind");
//! println!("listening on {}", server.local_addr());
//! server.stop();
//! ```

#![forbid(unsafe_code)]

pub mod broker;
pub mod codec;
pub mod config;
mod connection;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod mailbox;
mod protocol;
pub mod server;
mod session;
mod socket;
pub mod topic;

pub use config::Config;
pub use server::Server;
