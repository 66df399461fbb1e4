//! The listening socket and the acceptor thread: where every connection starts.
//!
//! ```text
//!   main thread ── Server::start ──▶ "acceptor" thread: loop { accept() ─▶ connection::spawn }
//!                                          │
//!                                          ├─▶ hs:<peer> ─▶ rx:<client id> + tx:<client id>
//!                                          ├─▶ hs:<peer> ─▶ rx:<client id> + tx:<client id>
//!                                          └─▶ …
//!   Server::stop: mark the broker as stopping, shut every socket down (each connection
//!                 tears itself down), wake the acceptor with a connection to itself, join it.
//! ```
//!
//! With `persistence true`, `Server::start` first reads the journal back (`open_journal`:
//! the sessions and retained messages it holds are restored before anyone can connect) and
//! starts the `journal` thread, which writes every record the connections hand it; a
//! stopping server lets the connections finish their teardown, then closes the journal.
//!
//! Everything is blocking `std::net`: a learner can pause any thread in a debugger and see
//! in its stack exactly which step of the protocol it is waiting in.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::acl::Acl;
use crate::broker::{Broker, SysTree};
use crate::config::Config;
use crate::connection::{self, Handshakers, ListenerSlot};
use crate::passwords::PasswordFile;
use crate::persistence::Journal;
use crate::throttle::{self, Throttle};
use crate::transport::Transport;

/// A running broker: its listening addresses, its shared state and its acceptor threads
/// (one per listener). Dropping it stops the broker.
#[derive(Debug)]
pub struct Server {
    /// The address each listener bound, in the order of `Config::listeners`.
    local_addrs: Vec<SocketAddr>,
    broker: Arc<Broker>,
    acceptors: Vec<JoinHandle<()>>,
    /// The `sys` thread and the channel whose closing stops it: `None` with `sys_interval 0`.
    sys: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Server {
    /// Checks the settings ([`Config::validate`]: a bad one is an `InvalidInput` error that
    /// names it), binds every listener (port 0 picks a free port) and starts accepting
    /// connections on each.
    pub fn start(mut config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Read every listener's certificates and bind them all before starting anything:
        // one that fails stops the start.
        let mut bound = Vec::new();
        for listener in &config.listeners {
            let (transport, warnings) =
                Transport::for_listener(listener, config.websockets_headers_size)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            for warning in warnings {
                log::warn!("{warning}");
            }
            let socket = crate::listen::bind(listener.bind)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", listener.bind)))?;
            bound.push((socket, listener.max_connections, Arc::new(transport)));
        }
        config.max_connections = within_the_kernels_map_limit(config.max_connections);
        let mut broker = Broker::new(config);
        if broker.config.persistence {
            open_journal(&mut broker)?;
        }
        let broker = Arc::new(broker);
        load_security_files(&broker)?;
        let sys = start_sys_thread(&broker)?;
        let mut server = Server {
            local_addrs: Vec::new(),
            broker,
            acceptors: Vec::new(),
            sys,
        };
        // Every open connection, whichever listener took it: the broker-wide limit.
        let everyone = Arc::new(AtomicUsize::new(0));
        for (socket, limit, transport) in bound {
            let local_addr = socket.local_addr()?;
            match transport.describe() {
                "mqtt" => log::info!("mqttd listening on {local_addr}"),
                other => log::info!("mqttd listening on {local_addr} ({other})"),
            }
            let broker = Arc::clone(&server.broker);
            let everyone = Arc::clone(&everyone);
            let acceptor = std::thread::Builder::new()
                .name("acceptor".into())
                .spawn(move || accept_loop(socket, limit, everyone, broker, transport))?;
            server.local_addrs.push(local_addr);
            server.acceptors.push(acceptor);
        }
        Ok(server)
    }

    /// The address the first listener bound, with the port the OS chose if the configured
    /// one was 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// The address every listener bound, in the order they were configured.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The shared state, for counters and for tests.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// A handle that re-reads the security files, usable from another thread.
    pub fn reloader(&self) -> Reloader {
        Reloader(Arc::clone(&self.broker))
    }

    /// A handle that stops the server from another thread (what SIGTERM does in `main`):
    /// [`Server::wait`] then returns.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            broker: Arc::clone(&self.broker),
            local_addrs: self.local_addrs.clone(),
        }
    }

    /// Blocks until the server is stopped (by another thread calling `stop` via the broker).
    pub fn wait(mut self) {
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
        self.close_journal();
    }

    /// With persistence: lets the connections finish their teardown (each records what it
    /// still has to), then writes what is pending and stops the journal thread.
    fn close_journal(&self) {
        let Some(journal) = self.broker.journal() else {
            return;
        };
        let deadline = Instant::now() + TEARDOWN_WAIT;
        while self.broker.connection_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        journal.close();
    }

    /// Stops accepting, closes every connection, and waits for the acceptors to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.acceptors.is_empty() {
            return;
        }
        self.stopper().stop();
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
        // Dropping the sender is the `sys` thread's signal to end.
        if let Some((stop, sys)) = self.sys.take() {
            drop(stop);
            let _ = sys.join();
        }
        self.close_journal();
        log::info!("mqttd on {:?} stopped", self.local_addrs);
    }
}

/// Stops a running server from another thread: stops accepting and closes every connection
/// (each runs its teardown; Wills are not published, as in Mosquitto: §3.1.2.5 lets a
/// stopping server defer them, and with nothing on disk mqttd drops them).
#[derive(Debug, Clone)]
pub struct Stopper {
    broker: Arc<Broker>,
    local_addrs: Vec<SocketAddr>,
}

impl Stopper {
    pub fn stop(&self) {
        self.broker.stop();
        // Each acceptor is blocked in accept(): a connection to itself wakes it up, and it
        // sees the stopping flag before handling it.
        for addr in &self.local_addrs {
            let _ = TcpStream::connect_timeout(&reachable(*addr), Duration::from_secs(1));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How long a stopping server with persistence waits for its connections to finish their
/// teardown before it closes the journal. They take milliseconds; this bounds a stuck one.
const TEARDOWN_WAIT: Duration = Duration::from_secs(5);

/// Reads the journal in `persistence_location` (creating it if need be), puts the state it
/// holds back in place, and starts the journal thread. A directory that cannot be used, a
/// file of another format, or a journal another broker holds is an error naming the path.
fn open_journal(broker: &mut Broker) -> io::Result<()> {
    let config = &broker.config;
    let (dir, name) = (&config.persistence_location, &config.persistence_file);
    let recovered = Journal::recover(dir, name).map_err(io::Error::other)?;
    log::info!(
        "persistence: read {} records from {}",
        recovered.records,
        dir.join(name).display()
    );
    broker.restore(&recovered.state);
    broker.set_journal(Journal::start(recovered)?);
    Ok(())
}

/// What the security files of the configuration hold: the `acl_file`'s rules and the
/// `password_file`'s users (`None` where the configuration names no file).
struct SecurityFiles {
    acl: Option<Acl>,
    passwords: Option<PasswordFile>,
}

/// Reads the `acl_file` and the `password_file` the configuration names. A file that
/// cannot be read or parsed is an `InvalidInput` error naming it (and the line); valid but
/// doubtful lines are logged.
fn read_security_files(config: &Config) -> io::Result<SecurityFiles> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let acl = match &config.acl_file {
        Some(path) => {
            let acl = Acl::load(path).map_err(|e| invalid(e.to_string()))?;
            for warning in acl.warnings() {
                log::warn!("{warning}");
            }
            log::info!("access rules read from {}", path.display());
            Some(acl)
        }
        None => None,
    };
    let passwords = match &config.password_file {
        Some(path) => {
            let passwords = PasswordFile::load(path).map_err(|e| invalid(e.to_string()))?;
            log::info!("{} user(s) read from {}", passwords.len(), path.display());
            Some(passwords)
        }
        None => None,
    };
    Ok(SecurityFiles { acl, passwords })
}

/// Reads the security files and puts them in place: both, or (on any error) neither.
fn load_security_files(broker: &Broker) -> io::Result<()> {
    let files = read_security_files(&broker.config)?;
    broker.set_passwords(files.passwords);
    broker.set_acl(files.acl);
    Ok(())
}

/// A handle to re-read a running broker's `password_file` and `acl_file` (what SIGHUP does
/// in `main`, as in Mosquitto). Connections stay up: the new users apply to the next
/// CONNECT, the new rules to every subscription at once and to each client's next packet.
#[derive(Debug, Clone)]
pub struct Reloader(Arc<Broker>);

impl Reloader {
    /// Re-reads the files. If one cannot be used, the old ones stay in place and the error
    /// (naming the file and line) is logged and returned.
    pub fn reload(&self) -> io::Result<()> {
        match load_security_files(&self.0) {
            Ok(()) => {
                log::info!("password_file and acl_file reloaded");
                Ok(())
            }
            Err(e) => {
                log::error!("reload failed, keeping the files read before: {e}");
                Err(e)
            }
        }
    }
}

/// Starts the `sys` thread, the broker's housekeeping: it publishes the `$SYS/broker/…`
/// tree at once and then every `sys_interval`, and ends stored sessions whose client has
/// been away longer than `persistent_client_expiration`, until the sender it returns is
/// dropped. `None` when there is nothing to do (`sys_interval 0`, no expiration).
fn start_sys_thread(broker: &Arc<Broker>) -> io::Result<Option<(Sender<()>, JoinHandle<()>)>> {
    let config = &broker.config;
    let interval = match (config.sys_interval, config.persistent_client_expiration) {
        (sys, _) if !sys.is_zero() => sys,
        // Expiry alone: look often enough to end a session close to its time.
        (_, Some(expiration)) => (expiration / 10).clamp(Duration::from_millis(10), EXPIRY_CHECK),
        (_, None) => return Ok(None),
    };
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let broker = Arc::clone(broker);
    let thread = std::thread::Builder::new()
        .name("sys".into())
        .spawn(move || {
            let mut tree = SysTree::new();
            loop {
                let now = Instant::now();
                broker.expire_sessions(now);
                if !broker.config.sys_interval.is_zero() {
                    tree.update(&broker, now);
                }
                if let Err(RecvTimeoutError::Disconnected) = stopped.recv_timeout(interval) {
                    return;
                }
            }
        })?;
    Ok(Some((stop, thread)))
}

/// The longest the `sys` thread sleeps between two looks at expired sessions when it has
/// no `$SYS` to publish.
const EXPIRY_CHECK: Duration = Duration::from_secs(60);

/// The address to connect to in order to reach a listener bound to `addr`: a wildcard
/// address (0.0.0.0 or ::) is not connectable everywhere, so use loopback instead.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Closes a connection accepted beyond `max_connections`. MQTT 3.1.1 could answer a
/// CONNECT with 0x03 "server unavailable", but reading the CONNECT would take a thread per
/// refused client, which is what the limit exists to save; like Mosquitto, we just close.
/// `which` names the limit that was reached, for the warning.
fn refuse_over_limit(stream: TcpStream, limit: usize, which: &str) {
    // A reconnect storm against a full broker: one line a second, not one per client.
    static OVER_LIMIT: Throttle = Throttle::new();
    if let Some(held_back) = OVER_LIMIT.admit(Instant::now()) {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown peer".to_owned(), |a| a.to_string());
        log::warn!(
            "refusing connection from {peer}: {limit} connections are open, {which}{}",
            throttle::held_back(held_back)
        );
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Maps kept free for everything but the connections' steady state: the binary, libraries
/// and heaps (about 70, measured), and the handshake threads, busy or waiting for the next
/// connection (4 maps each; room for about 500 at once).
const MEMORY_MAPS_HEADROOM: usize = 2_200;

/// How many connections a `vm.max_map_count` of `max_map_count` leaves room for.
fn connections_allowed_by(max_map_count: usize) -> usize {
    max_map_count.saturating_sub(MEMORY_MAPS_HEADROOM) / connection::MEMORY_MAPS_PER_CONNECTION
}

/// `max_connections`, lowered if the kernel's `vm.max_map_count` would run out first.
///
/// This is not only about a friendlier refusal. When a process is out of maps, creating a
/// thread fails one of two ways: cleanly, when glibc cannot map the new stack (the client
/// then gets CONNACK 0x03), or fatally, when the thread has started and Rust's standard
/// library cannot map its signal stack: that panic happens before any of our code, where
/// nothing can catch it, and aborts the whole broker (seen in the `conns` benchmark with
/// 10 000 clients). So the acceptor must refuse new connections, without starting a thread
/// for them, before the maps run out.
fn within_the_kernels_map_limit(max_connections: usize) -> usize {
    let Some(max_map_count) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
    else {
        return max_connections; // not Linux, or not readable: nothing to go by
    };
    let allowed = connections_allowed_by(max_map_count);
    if allowed < max_connections {
        // Information, not a fault: with Linux's default limit this is every start-up.
        log::info!(
            "accepting at most {allowed} connections: vm.max_map_count ({max_map_count}) \
             leaves room for no more ({} memory maps each: two threads); for \
             {max_connections} (--max-connections), raise it: sysctl -w vm.max_map_count={}",
            connection::MEMORY_MAPS_PER_CONNECTION,
            max_connections * connection::MEMORY_MAPS_PER_CONNECTION + MEMORY_MAPS_HEADROOM
        );
    }
    max_connections.min(allowed)
}

/// Accepts connections on one listener until the broker stops. `limit` is the listener's
/// own `max_connections`, on top of the broker-wide one, which `everyone` counts; every
/// connection gets the listener's `transport`.
fn accept_loop(
    listener: TcpListener,
    limit: Option<usize>,
    everyone: Arc<AtomicUsize>,
    broker: Arc<Broker>,
    transport: Arc<Transport>,
) {
    // How many connections of this listener are open: each holds a `ListenerSlot`.
    let open = Arc::new(AtomicUsize::new(0));
    let max_connections = broker.config.max_connections;
    let handshakers = Handshakers::new();
    for stream in listener.incoming() {
        if broker.is_stopping() {
            break;
        }
        match stream {
            Ok(stream) if everyone.load(Ordering::Relaxed) >= max_connections => {
                let which = "the broker's limit (--max-connections, or less if \
                             vm.max_map_count allows less: see the start-up log)";
                refuse_over_limit(stream, max_connections, which);
            }
            Ok(stream) if limit.is_some_and(|limit| open.load(Ordering::Relaxed) >= limit) => {
                let which = "this listener's max_connections";
                refuse_over_limit(stream, limit.unwrap_or_default(), which);
            }
            Ok(stream) => {
                broker.count_connection();
                let slot = ListenerSlot::take(&open, &everyone);
                handshakers.start(stream, Arc::clone(&broker), slot, Arc::clone(&transport))
            }
            Err(e) => {
                // Typically "too many open files": wait a moment rather than spin, and let
                // the connections that are closing free some descriptors.
                log::error!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_that_cannot_work_is_refused_at_start_by_name() {
        let config = Config {
            max_queued_messages: 0,
            ..Config::listening_on("127.0.0.1:0".parse().unwrap())
        };
        let error = Server::start(config).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("max_queued_messages"), "{error}");
    }

    #[test]
    fn the_default_map_limit_leaves_room_for_about_8000_connections() {
        assert_eq!(connections_allowed_by(65_530), 7_916);
        assert_eq!(connections_allowed_by(100), 0);
        // What the warning tells an operator to set is enough for what they asked.
        assert!(connections_allowed_by(10_000 * 8 + MEMORY_MAPS_HEADROOM) >= 10_000);
    }
}
