//! The handshake threads, `hs:<peer>`: each takes a freshly accepted connection up to the
//! start of its reader and writer, then waits for the next one instead of ending.
//!
//! Starting a thread is the dearest part of a connect (chapter 09: about 30 µs and 16
//! system calls each, for three threads per connection). Readers and writers live as long
//! as their client, but a handshake thread is done within milliseconds, so it is kept:
//! after a burst of connects, the next connection finds one waiting. How many wait is not
//! fixed: when none is free the acceptor starts another, so a client that connects and
//! says nothing holds up only the thread that waits for its CONNECT (until
//! `connect_timeout`), never the others. A thread that has had nothing to do for
//! [`IDLE_LIFETIME`] ends, and at most [`MAX_IDLE`] wait at once.
//!
//! The hand-off is a crossbeam channel of capacity 0: `try_send` succeeds only when a
//! thread is already waiting in `recv`, so the acceptor never queues a connection behind a
//! busy thread; it starts a new thread instead.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::broker::Broker;
use crate::thread_name;
use crate::throttle::{self, Throttle};
use crate::transport::{Socket, Transport};

use super::{handshake, ListenerSlot, HANDSHAKE_STACK_SIZE};

/// How long a handshake thread with nothing to do waits for a connection before it ends.
pub(crate) const IDLE_LIFETIME: Duration = Duration::from_secs(10);

/// The most handshake threads that wait for a connection at once; one that finishes a
/// handshake when this many already wait ends instead. Each idle one costs a stack it has
/// touched (16 KiB) and four memory maps.
pub(crate) const MAX_IDLE: usize = 64;

/// One accepted connection, on its way to a handshake thread.
struct Accepted {
    stream: TcpStream,
    broker: Arc<Broker>,
    slot: ListenerSlot,
    transport: Arc<Transport>,
}

/// The handshake threads of one listener, as its acceptor sees them. Dropping it lets the
/// waiting threads end.
#[derive(Debug)]
pub(crate) struct Handshakers {
    /// Capacity 0: a send succeeds only into the hands of a waiting thread.
    hand: Sender<Accepted>,
    /// Cloned into each thread it starts.
    waiting: Receiver<Accepted>,
    /// How many threads are waiting in `recv` (or about to).
    idle: Arc<AtomicUsize>,
}

impl Handshakers {
    pub(crate) fn new() -> Handshakers {
        let (hand, waiting) = crossbeam_channel::bounded(0);
        Handshakers {
            hand,
            waiting,
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands a freshly accepted TCP connection to a waiting handshake thread, or to a new
    /// one if none waits. `transport` is what the connection's listener puts between TCP
    /// and MQTT.
    pub(crate) fn start(
        &self,
        stream: TcpStream,
        broker: Arc<Broker>,
        slot: ListenerSlot,
        transport: Arc<Transport>,
    ) {
        let accepted = Accepted {
            stream,
            broker,
            slot,
            transport,
        };
        let accepted = match self.hand.try_send(accepted) {
            Ok(()) => return,
            Err(TrySendError::Full(accepted) | TrySendError::Disconnected(accepted)) => accepted,
        };
        let waiting = self.waiting.clone();
        let idle = Arc::clone(&self.idle);
        // The new thread owns the only handle on the socket: if it cannot start, or dies
        // while starting, the socket is closed with it and nothing is left registered.
        let spawned = std::thread::Builder::new()
            .name("hs".into())
            .stack_size(HANDSHAKE_STACK_SIZE)
            .spawn(move || serve(accepted, &waiting, &idle));
        if let Err(e) = spawned {
            // Out of threads or memory maps, perhaps for a whole burst: one line a second.
            static CANNOT_START: Throttle = Throttle::new();
            if let Some(held_back) = CANNOT_START.admit(Instant::now()) {
                log::error!(
                    "cannot start a thread for a new connection, closed it: {e}{}",
                    throttle::held_back(held_back)
                );
            }
        }
    }
}

/// The body of a handshake thread: the connection it was started for, then each one it is
/// handed, until it has waited [`IDLE_LIFETIME`] for nothing, enough others wait, or the
/// acceptor is gone.
fn serve(first: Accepted, waiting: &Receiver<Accepted>, idle: &AtomicUsize) {
    let mut next = first;
    loop {
        shake_hands(next);
        if idle.fetch_add(1, Ordering::AcqRel) >= MAX_IDLE {
            idle.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let received = waiting.recv_timeout(IDLE_LIFETIME);
        idle.fetch_sub(1, Ordering::AcqRel);
        match received {
            Ok(accepted) => next = accepted,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One connection's handshake, on this thread, renamed after the peer for the time it
/// takes.
fn shake_hands(accepted: Accepted) {
    let Accepted {
        stream,
        broker,
        slot,
        transport,
    } = accepted;
    // Small packets (PUBACK, PINGRESP) should leave now, not wait for Nagle's algorithm;
    // the writer already batches what is queued into one write.
    let _ = stream.set_nodelay(true);
    let socket = Socket::new(stream);
    let peer = match socket.peer_addr() {
        Some(addr) => addr.to_string(),
        None => "unknown peer".to_owned(),
    };
    thread_name::rename(&format!("hs:{peer}"));
    handshake::run(socket, peer, broker, slot, transport);
}
