//! `relay`: the cheapest "broker" that still speaks enough MQTT for the load generator.
//!
//! A load generator must show that it is not the bottleneck. The relay does the least
//! work a broker can do, in one thread with one mio loop: it answers CONNECT with CONNACK,
//! SUBSCRIBE with SUBACK, PINGREQ with PINGRESP, and copies each PUBLISH's bytes unchanged
//! to the connections subscribed to its topic (answering QoS 1 with PUBACK). Whatever rate
//! `loadgen pair --pairs 8` reaches against it is the load generator's own ceiling on this
//! machine; a real broker measured far below it is measured fairly.
//!
//! With `--transport tls`, `ws` or `wss` it serves that transport instead, through the
//! same `transport` layers as the load generator's clients (the server's side of them), so
//! that the ceiling over TLS and WebSockets can be measured too. Each connection's TLS
//! handshake and upgrade are done blocking, as it is accepted: the loop waits meanwhile,
//! which only costs time while the clients connect, before anything is measured.
//!
//! Simplified on purpose, and not a broker: no sessions, no retained messages, no wills,
//! no QoS 2, no limits (a subscriber that stops reading makes its buffer grow: the load
//! generator's windows are what keep it small), no validation beyond the codec's. Topic
//! filters are matched exactly, except `prefix/+` (one more level), `prefix/#` and `#`;
//! any other wildcard is refused in the SUBACK.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use mqttd::codec::{
    Connack, ConnectReturnCode, Packet, PacketType, QoS, Suback, SubscribeReturnCode,
};

use crate::buffers::{Link, OutBuf};
use crate::fail::Fail;
use crate::transport::{Acceptor, MioStream};
use crate::wire::{self, RawFrame, MAX_PACKET};

/// Connections use their index as token; the listener takes the one index never used.
const LISTENER: Token = Token(usize::MAX);

/// How long a client may take over its TLS handshake or WebSocket upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the relay on `addr` until `lifetime` has passed, serving `acceptor`'s transport.
pub fn run(addr: SocketAddr, lifetime: Duration, acceptor: &Acceptor) -> Result<(), Fail> {
    let mut listener = TcpListener::bind(addr).map_err(Fail::io(format!("relay: bind {addr}")))?;
    let mut poll = Poll::new().map_err(Fail::io("create poll"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(Fail::io("register the listener"))?;
    let mut relay = Relay::default();
    let mut events = Events::with_capacity(1024);
    let stop_at = Instant::now() + lifetime;
    eprintln!(
        "relay: listening on {addr} ({}) for {:.0} s",
        acceptor.kind(),
        lifetime.as_secs_f64()
    );
    while Instant::now() < stop_at {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Fail::io("poll (relay)")(e)),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                relay.accept_all(&listener, poll.registry(), acceptor);
            } else {
                relay.on_event(event);
            }
        }
        // One write per connection per turn, however many messages it was given.
        relay.flush_dirty();
    }
    eprintln!(
        "relay: stopping after {:.0} s: {} messages in, {} copies out",
        lifetime.as_secs_f64(),
        relay.messages_in,
        relay.copies_out
    );
    Ok(())
}

/// An accepted connection made ready: TCP_NODELAY, then the transport's handshakes,
/// blocking with a timeout, then back to non-blocking for the loop.
fn set_up(stream: TcpStream, acceptor: &Acceptor) -> Result<MioStream, Fail> {
    let socket = std::net::TcpStream::from(stream);
    socket
        .set_nodelay(true)
        .and_then(|()| socket.set_nonblocking(false))
        .and_then(|()| socket.set_read_timeout(Some(HANDSHAKE_TIMEOUT)))
        .map_err(Fail::io("set up the socket"))?;
    acceptor
        .establish(socket)?
        .into_mio()
        .map_err(Fail::io("set non-blocking"))
}

#[derive(Default)]
struct Relay {
    /// Indexed by token. A closed connection leaves `None`; tokens are never reused.
    conns: Vec<Option<Link<MioStream>>>,
    routes: Routes,
    /// Connections given bytes since the last flush.
    dirty: Vec<usize>,
    messages_in: u64,
    copies_out: u64,
}

impl Relay {
    fn accept_all(&mut self, listener: &TcpListener, registry: &Registry, acceptor: &Acceptor) {
        loop {
            let stream = match listener.accept() {
                Ok((stream, _peer)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of file descriptors, say: keep serving the others.
                    eprintln!("relay: accept: {e}");
                    return;
                }
            };
            let token = Token(self.conns.len());
            let registered = set_up(stream, acceptor).and_then(|mut stream| {
                registry
                    .register(
                        stream.socket_mut(),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map_err(Fail::io("register with poll"))?;
                Ok(stream)
            });
            match registered {
                Ok(stream) => self.conns.push(Some(Link::new(stream, MAX_PACKET))),
                Err(e) => eprintln!("relay: set up a connection: {e}"),
            }
        }
    }

    /// Serves one connection. It is taken out of `conns` meanwhile, so that forwarding
    /// can borrow every other connection's output buffer.
    fn on_event(&mut self, event: &mio::event::Event) {
        let index = event.token().0;
        let Some(mut link) = self.conns.get_mut(index).and_then(Option::take) else {
            return;
        };
        link.on_event(event);
        match self.serve(index, &mut link) {
            Ok(true) => self.conns[index] = Some(link),
            Ok(false) => self.routes.remove_all(index),
            Err(e) => {
                eprintln!("relay: connection {index}: {e}");
                self.routes.remove_all(index);
            }
        }
    }

    /// Reads and handles every packet available; returns false when the client left.
    fn serve(&mut self, index: usize, link: &mut Link<MioStream>) -> Result<bool, Fail> {
        if link.readable {
            let mut leaving = false;
            let output = &mut link.output;
            let received = link.input.read_packets(&mut link.stream, |frame| {
                leaving |= self.on_packet(index, output, frame)?;
                Ok(())
            })?;
            link.readable = false;
            if received.closed || leaving {
                return Ok(false);
            }
        }
        // Its own answers (CONNACK, SUBACK, PUBACK…) go out at once.
        link.flush()?;
        Ok(true)
    }

    /// Handles one packet from connection `index`; returns true on DISCONNECT.
    fn on_packet(
        &mut self,
        index: usize,
        own: &mut OutBuf,
        frame: RawFrame<'_>,
    ) -> Result<bool, Fail> {
        if wire::packet_type(&frame)? == PacketType::Publish {
            self.forward(index, own, frame)?;
            return Ok(false);
        }
        let answer = match wire::decode(&frame)? {
            Packet::Connect(_) => Packet::Connack(Connack {
                session_present: false,
                code: ConnectReturnCode::Accepted,
            }),
            Packet::Subscribe(subscribe) => {
                let return_codes = subscribe
                    .requests
                    .iter()
                    .map(|request| match self.routes.add(&request.filter, index) {
                        true => SubscribeReturnCode::Granted(request.qos.min(QoS::AtLeastOnce)),
                        false => SubscribeReturnCode::Failure,
                    })
                    .collect();
                Packet::Suback(Suback {
                    packet_id: subscribe.packet_id,
                    return_codes,
                })
            }
            Packet::Unsubscribe(unsubscribe) => {
                for filter in &unsubscribe.filters {
                    self.routes.remove(filter, index);
                }
                Packet::Unsuback(unsubscribe.packet_id)
            }
            Packet::Pingreq => Packet::Pingresp,
            // A subscriber acknowledging a forwarded QoS 1 message: nothing to do.
            Packet::Puback(_) => return Ok(false),
            Packet::Disconnect => return Ok(true),
            other => return Err(Fail::Protocol(format!("the relay does not handle {other}"))),
        };
        answer.encode(own.bytes_mut());
        Ok(false)
    }

    /// Copies a PUBLISH, byte for byte, to every connection subscribed to its topic.
    fn forward(&mut self, index: usize, own: &mut OutBuf, frame: RawFrame<'_>) -> Result<(), Fail> {
        let publish = wire::parse_publish(&frame)?;
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => {}
            (QoS::AtLeastOnce, Some(id)) => Packet::Puback(id).encode(own.bytes_mut()),
            _ => return Err(Fail::Protocol("the relay does not do QoS 2".into())),
        }
        self.messages_in += 1;
        let Relay {
            conns,
            routes,
            dirty,
            copies_out,
            ..
        } = self;
        routes.for_each_match(publish.topic, |target| {
            let output = if target == index {
                &mut *own
            } else {
                match conns.get_mut(target) {
                    Some(Some(link)) => &mut link.output,
                    _ => return,
                }
            };
            // An empty buffer becoming non-empty needs a flush; a non-empty one already
            // has one coming (it is in `dirty`, or waiting for its socket to be writable).
            if output.pending() == 0 && target != index {
                dirty.push(target);
            }
            output.bytes_mut().extend_from_slice(frame.bytes);
            *copies_out += 1;
        });
        Ok(())
    }

    fn flush_dirty(&mut self) {
        for index in std::mem::take(&mut self.dirty) {
            let Some(Some(link)) = self.conns.get_mut(index) else {
                continue;
            };
            if let Err(e) = link.flush() {
                eprintln!("relay: connection {index}: {e}");
                self.conns[index] = None;
                self.routes.remove_all(index);
            }
        }
    }
}

/// Who is subscribed to what: exact topics in a hash map, the few wildcards in a list.
#[derive(Default)]
struct Routes {
    exact: HashMap<Vec<u8>, Vec<usize>>,
    /// (prefix, one level only, connection): `a/+` is (`a/`, true), `a/#` is (`a/`,
    /// false), `#` is (``, false).
    wildcards: Vec<(Vec<u8>, bool, usize)>,
}

impl Routes {
    /// Adds a subscription; false if the relay cannot match this filter.
    fn add(&mut self, filter: &str, who: usize) -> bool {
        let (prefix, single_level) = if filter == "#" {
            ("", false)
        } else if let Some(prefix) = filter.strip_suffix('#') {
            (prefix, false)
        } else if let Some(prefix) = filter.strip_suffix('+') {
            (prefix, true)
        } else {
            (filter, false)
        };
        let is_wildcard = prefix.len() < filter.len();
        if prefix.contains(['+', '#'])
            || (is_wildcard && !(prefix.is_empty() || prefix.ends_with('/')))
        {
            return false;
        }
        if is_wildcard {
            let entry = (prefix.as_bytes().to_vec(), single_level, who);
            if !self.wildcards.contains(&entry) {
                self.wildcards.push(entry);
            }
        } else {
            let subscribers = self.exact.entry(filter.as_bytes().to_vec()).or_default();
            if !subscribers.contains(&who) {
                subscribers.push(who);
            }
        }
        true
    }

    fn remove(&mut self, filter: &str, who: usize) {
        if let Some(subscribers) = self.exact.get_mut(filter.as_bytes()) {
            subscribers.retain(|&s| s != who);
        }
        let prefix = filter.trim_end_matches(['+', '#']).as_bytes();
        self.wildcards
            .retain(|(p, _, w)| !(*w == who && p == prefix));
    }

    fn remove_all(&mut self, who: usize) {
        for subscribers in self.exact.values_mut() {
            subscribers.retain(|&s| s != who);
        }
        self.wildcards.retain(|&(_, _, w)| w != who);
    }

    fn for_each_match(&self, topic: &[u8], mut deliver: impl FnMut(usize)) {
        if let Some(subscribers) = self.exact.get(topic) {
            subscribers.iter().for_each(|&who| deliver(who));
        }
        for (prefix, single_level, who) in &self.wildcards {
            if let Some(rest) = topic.strip_prefix(prefix.as_slice()) {
                if !*single_level || !rest.contains(&b'/') {
                    deliver(*who);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(routes: &Routes, topic: &str) -> Vec<usize> {
        let mut who = Vec::new();
        routes.for_each_match(topic.as_bytes(), |w| who.push(w));
        who
    }

    #[test]
    fn routes_match_exact_topics_and_trailing_wildcards() {
        let mut routes = Routes::default();
        assert!(routes.add("pair/1", 1));
        assert!(routes.add("fanin/+", 2));
        assert!(routes.add("a/#", 3));
        assert!(!routes.add("a/+/b", 4));
        assert!(!routes.add("a+", 4));
        assert_eq!(matches(&routes, "pair/1"), vec![1]);
        assert_eq!(matches(&routes, "fanin/7"), vec![2]);
        assert!(matches(&routes, "fanin/7/x").is_empty());
        assert_eq!(matches(&routes, "a/b/c"), vec![3]);
        routes.remove_all(2);
        assert!(matches(&routes, "fanin/7").is_empty());
    }
}
