//! `conns`: many idle connections. How fast can a broker take them, what does each cost it
//! in memory, and does it still deliver to every one of them?
//!
//! 1. Read the broker's resident memory (`VmRSS` in `/proc/PID/status`).
//! 2. Open `--conns` connections, at most `--parallel` handshakes at a time, each doing
//!    what a real client does: TCP connect, CONNECT, wait for CONNACK, SUBSCRIBE to its
//!    own topic `conns/<i>`, wait for SUBACK. The connect rate is connections per second
//!    until the last SUBACK. With `--parallel 1` that is one client at a time; with
//!    `--parallel` at least `--conns`, every `connect()` is made before the first turn of
//!    the loop, so before any CONNECT is written or any CONNACK read: a burst, as a fleet
//!    reconnecting after an outage makes.
//! 3. Meanwhile, count the connection attempts the kernel dropped because a listening
//!    socket's accept queue was full (`ListenOverflows`, `ListenDrops` in
//!    `/proc/net/netstat`, after − before). Each such SYN costs its client a 1 s
//!    retransmit. The counters belong to the whole network namespace, not to one broker,
//!    so anything else connecting on this machine during the run adds to them.
//! 4. Read the broker's memory again: `(after − before) / conns` is its cost per idle,
//!    subscribed connection.
//! 5. From one more connection, publish one message to each of `--probe` of them, spread
//!    evenly, and check that each arrives exactly once and nowhere else.
//!
//! All connections live in one mio loop on the main thread: ten thousand sockets cost the
//! load generator ten thousand small buffers, not ten thousand threads.

use std::fs;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use mqttd::codec::{ConnectReturnCode, Packet, PacketType, QoS, SubscribeReturnCode};

use crate::buffers::{Link, OutBuf};
use crate::client;
use crate::fail::Fail;
use crate::flow::HARD_MARGIN;
use crate::options::Options;
use crate::transport::Connector;
use crate::wire::{self, PublishTemplate, RawFrame, Stamp};

/// Room for a CONNACK, a SUBACK or one small PUBLISH: idle connections need little.
const IDLE_READ_BUFFER: usize = 512;

/// Time for the broker to finish its bookkeeping before its memory is read again.
const SETTLE: Duration = Duration::from_millis(500);

/// How long the probe messages may take to arrive.
const PROBE_WAIT: Duration = Duration::from_secs(10);

/// Payload of a probe message: just the stamp and a little padding.
const PROBE_PAYLOAD: usize = 16;

#[derive(Debug)]
pub struct ConnsReport {
    pub conns: usize,
    pub parallel: usize,
    /// From the first connect to the last SUBACK.
    pub secs: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// SYNs dropped while the connections were opened; `None` if `/proc/net/netstat`
    /// could not be read.
    pub listen: Option<ListenCounts>,
    pub probe: usize,
    /// Probed connections that got their message.
    pub delivered: usize,
    /// Extra copies of probe messages.
    pub duplicates: u64,
    /// Messages that arrived on a connection that was not probed.
    pub misrouted: u64,
}

impl ConnsReport {
    pub fn fields(&self) -> String {
        let kib = |v: Option<u64>| v.map_or("na".to_owned(), |v| v.to_string());
        let per_conn = match (self.rss_before_kib, self.rss_after_kib) {
            (Some(before), Some(after)) => {
                format!("{:.2}", (after as f64 - before as f64) / self.conns as f64)
            }
            _ => "na".to_owned(),
        };
        let overflows = self
            .listen
            .map_or("na".to_owned(), |c| c.overflows.to_string());
        let drops = self.listen.map_or("na".to_owned(), |c| c.drops.to_string());
        format!(
            "conns={} parallel={} secs={:.2} connect_rate={:.0} listen_overflows={overflows} listen_drops={drops} rss_before_kib={} rss_after_kib={} rss_per_conn_kib={per_conn} probe={} delivered={} lost={} dup={} misrouted={}",
            self.conns,
            self.parallel,
            self.secs,
            self.conns as f64 / self.secs.max(1e-9),
            kib(self.rss_before_kib),
            kib(self.rss_after_kib),
            self.probe,
            self.delivered,
            self.probe - self.delivered,
            self.duplicates,
            self.misrouted
        )
    }
}

pub fn run(options: &Options) -> Result<ConnsReport, Fail> {
    let deadline = Instant::now() + Duration::from_secs_f64(options.secs) + HARD_MARGIN;
    let rss_before_kib = options.broker_pid.map(read_rss_kib).transpose()?;
    let listen_before = ListenCounts::read();
    let start = Instant::now();
    let mut fleet = Fleet::open(options, deadline)?;
    let secs = start.elapsed().as_secs_f64();
    let listen = ListenCounts::read()
        .zip(listen_before)
        .map(|(after, before)| after.since(before));
    thread::sleep(SETTLE);
    let rss_after_kib = options.broker_pid.map(read_rss_kib).transpose()?;
    let probed = fleet.probe(options, deadline)?;
    fleet.say_goodbye();
    let mut report = ConnsReport {
        conns: options.conns,
        parallel: options.parallel,
        secs,
        rss_before_kib,
        rss_after_kib,
        listen,
        probe: probed.len(),
        delivered: 0,
        duplicates: 0,
        misrouted: 0,
    };
    for (index, idle) in fleet.conns.iter().enumerate() {
        let got = u64::from(idle.state.got);
        if probed.binary_search(&index).is_ok() {
            report.delivered += usize::from(got > 0);
            report.duplicates += got.saturating_sub(1);
        } else {
            report.misrouted += got;
        }
    }
    Ok(report)
}

/// The broker's resident memory in KiB, from the `VmRSS:` line of `/proc/PID/status`.
fn read_rss_kib(pid: u32) -> Result<u64, Fail> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(Fail::io(format!("read {path}")))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Fail::Protocol(format!("no VmRSS line in {path}")))
}

/// The kernel's counts of connection attempts dropped at a listening socket, from the
/// `TcpExt:` lines of `/proc/net/netstat` (a line of names, then a line of values).
/// `ListenOverflows`: the SYN (or the handshake's last ACK) came while the accept queue
/// was full. `ListenDrops`: every such drop, overflows included. Both count for the whole
/// network namespace since boot; a run takes the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenCounts {
    pub overflows: u64,
    pub drops: u64,
}

impl ListenCounts {
    /// `None` where there is no such file or it lacks the fields: the run goes on without.
    fn read() -> Option<ListenCounts> {
        let text = fs::read_to_string("/proc/net/netstat").ok()?;
        ListenCounts::parse(&text)
    }

    fn parse(text: &str) -> Option<ListenCounts> {
        let mut tcp_ext = text.lines().filter(|line| line.starts_with("TcpExt:"));
        let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
        let field = |wanted: &str| {
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(name, _)| *name == wanted)
                .and_then(|(_, value)| value.parse().ok())
        };
        Some(ListenCounts {
            overflows: field("ListenOverflows")?,
            drops: field("ListenDrops")?,
        })
    }

    /// What happened between `before` and now (`self`).
    fn since(self, before: ListenCounts) -> ListenCounts {
        ListenCounts {
            overflows: self.overflows.saturating_sub(before.overflows),
            drops: self.drops.saturating_sub(before.drops),
        }
    }
}

/// Where one idle connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// TCP connect in progress.
    Connecting,
    AwaitConnack,
    AwaitSuback,
    /// Subscribed; waiting (maybe for ever) for a probe message.
    Ready,
}

/// One idle connection: the socket, and what we know about it.
#[derive(Debug)]
struct Idle {
    link: Link,
    state: IdleState,
}

#[derive(Debug)]
struct IdleState {
    stage: Stage,
    /// Its number: client id `<prefix>-conn<i>`, topic `conns/<i>`.
    index: usize,
    client_id: String,
    /// Probe messages received.
    got: u32,
    /// The Keep Alive its CONNECT carries (`--keep-alive`).
    keep_alive: u16,
}

/// All idle connections and the one poll that watches them.
struct Fleet {
    poll: Poll,
    events: Events,
    conns: Vec<Idle>,
}

impl Fleet {
    /// Opens and subscribes every connection; returns when the last SUBACK has arrived.
    fn open(options: &Options, deadline: Instant) -> Result<Fleet, Fail> {
        let mut fleet = Fleet {
            poll: Poll::new().map_err(Fail::io("create poll"))?,
            events: Events::with_capacity(1024),
            conns: Vec::with_capacity(options.conns),
        };
        let prefix = format!("loadgen-{}", std::process::id());
        let mut ready = 0;
        while ready < options.conns {
            if Instant::now() >= deadline {
                return Err(Fail::Deadline(format!(
                    "{ready} of {} connections subscribed",
                    options.conns
                )));
            }
            // Keep `--parallel` handshakes going: connections opened but not yet ready.
            while fleet.conns.len() < options.conns && fleet.conns.len() - ready < options.parallel
            {
                fleet.start_connect(options, &prefix)?;
            }
            match fleet.turn(Duration::from_millis(100)) {
                Ok(became_ready) => ready += became_ready,
                Err(fail) => {
                    // How far it got is the interesting figure when a broker runs out.
                    eprintln!(
                        "loadgen conns: {ready} of {} connections were subscribed when this failed:",
                        options.conns
                    );
                    return Err(fail);
                }
            }
        }
        Ok(fleet)
    }

    fn start_connect(&mut self, options: &Options, prefix: &str) -> Result<(), Fail> {
        let index = self.conns.len();
        let client_id = format!("{prefix}-conn{index}");
        let hint = format!("{client_id}: connect (with many connections, raise `ulimit -n`)");
        let mut stream = TcpStream::connect(options.addr).map_err(Fail::io(hint))?;
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(Fail::io("register with poll"))?;
        self.conns.push(Idle {
            link: Link::new(stream, IDLE_READ_BUFFER),
            state: IdleState {
                stage: Stage::Connecting,
                index,
                client_id,
                got: 0,
                keep_alive: options.keep_alive,
            },
        });
        Ok(())
    }

    /// Waits for events and moves each connection along; returns how many became ready.
    fn turn(&mut self, timeout: Duration) -> Result<usize, Fail> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(Fail::io("poll (conns)")(e)),
        }
        let mut became_ready = 0;
        for event in self.events.iter() {
            let Some(idle) = self.conns.get_mut(event.token().0) else {
                continue;
            };
            idle.link.on_event(event);
            let was_ready = idle.state.stage == Stage::Ready;
            idle.advance()?;
            if !was_ready && idle.state.stage == Stage::Ready {
                became_ready += 1;
            }
        }
        Ok(became_ready)
    }

    /// Publishes one message to each of `--probe` connections spread evenly over all of
    /// them, and waits until each has it. Returns the probed indexes, in order.
    fn probe(&mut self, options: &Options, deadline: Instant) -> Result<Vec<usize>, Fail> {
        let count = self.conns.len();
        let probed: Vec<usize> = (0..options.probe)
            .map(|k| k * count / options.probe)
            .collect();
        let client_id = format!("loadgen-{}-prober", std::process::id());
        let connector = Connector::tcp(options.addr).with_keep_alive(options.keep_alive);
        let mut publisher = client::open_blocking(&connector, &client_id, None)?;
        let mut bytes = Vec::new();
        for (seq, &index) in (0u32..).zip(&probed) {
            let template =
                PublishTemplate::new(&format!("conns/{index}"), QoS::AtMostOnce, PROBE_PAYLOAD);
            let stamp = Stamp {
                publisher: 0,
                seq,
                sent_ns: 0,
            };
            template.append(&mut bytes, None, &stamp);
        }
        Packet::Disconnect.encode(&mut bytes);
        publisher
            .write_all(&bytes)
            .map_err(Fail::io(format!("{client_id}: publish the probe messages")))?;
        let give_up = (Instant::now() + PROBE_WAIT).min(deadline);
        while Instant::now() < give_up && !probed.iter().all(|&i| self.conns[i].state.got > 0) {
            self.turn(Duration::from_millis(100))?;
        }
        Ok(probed)
    }

    /// DISCONNECT on every connection, best effort: the figures are already taken.
    fn say_goodbye(&mut self) {
        for idle in &mut self.conns {
            Packet::Disconnect.encode(idle.link.output.bytes_mut());
            let _ = idle.link.flush();
        }
    }
}

impl Idle {
    /// Takes the connection as far as it can go with what has happened on its socket.
    fn advance(&mut self) -> Result<(), Fail> {
        if self.state.stage == Stage::Connecting && !self.finish_connect()? {
            return Ok(());
        }
        if self.link.readable {
            let state = &mut self.state;
            let output = &mut self.link.output;
            let received = self
                .link
                .input
                .read_packets(&mut self.link.stream, |frame| {
                    state.on_packet(frame, output)
                })?;
            self.link.readable = false;
            if received.closed {
                return Err(Fail::Protocol(format!(
                    "{}: the broker closed the connection",
                    self.state.client_id
                )));
            }
        }
        self.link.flush()?;
        Ok(())
    }

    /// After a non-blocking connect, mio says "writable" once the outcome is known: an
    /// error, or a peer address. Returns whether the connection is up (CONNECT queued).
    fn finish_connect(&mut self) -> Result<bool, Fail> {
        let what = || format!("{}: connect", self.state.client_id);
        if let Some(error) = self.link.stream.take_error().map_err(Fail::io(what()))? {
            return Err(Fail::io(what())(error));
        }
        match self.link.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(Fail::io(what())(e)),
        }
        self.link
            .stream
            .set_nodelay(true)
            .map_err(Fail::io(what()))?;
        wire::connect(&self.state.client_id, self.state.keep_alive)
            .encode(self.link.output.bytes_mut());
        self.state.stage = Stage::AwaitConnack;
        Ok(true)
    }
}

impl IdleState {
    fn on_packet(&mut self, frame: RawFrame<'_>, output: &mut OutBuf) -> Result<(), Fail> {
        if self.stage == Stage::Ready && wire::packet_type(&frame)? == PacketType::Publish {
            let topic = wire::parse_publish(&frame)?.topic;
            let expected = format!("conns/{}", self.index);
            if topic != expected.as_bytes() {
                return Err(Fail::Protocol(format!(
                    "{}: got a message on {:?}, subscribed only to {expected:?}",
                    self.client_id,
                    String::from_utf8_lossy(topic)
                )));
            }
            self.got += 1;
            return Ok(());
        }
        let packet = wire::decode(&frame)?;
        match (self.stage, &packet) {
            (Stage::AwaitConnack, Packet::Connack(connack))
                if connack.code == ConnectReturnCode::Accepted =>
            {
                wire::subscribe(&format!("conns/{}", self.index), QoS::AtMostOnce)
                    .encode(output.bytes_mut());
                self.stage = Stage::AwaitSuback;
            }
            (Stage::AwaitSuback, Packet::Suback(suback))
                if matches!(suback.return_codes[..], [SubscribeReturnCode::Granted(_)]) =>
            {
                self.stage = Stage::Ready;
            }
            _ => {
                return Err(Fail::Protocol(format!(
                    "{}: unexpected {packet} while in stage {:?}",
                    self.client_id, self.stage
                )))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_counts_are_read_by_name_from_the_tcpext_lines() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                       TcpExt: 0 12 13 99\n\
                       IpExt: InNoRoutes\n\
                       IpExt: 0\n";
        let counts = ListenCounts::parse(netstat).unwrap();
        assert_eq!(
            counts,
            ListenCounts {
                overflows: 12,
                drops: 13
            }
        );
        let before = ListenCounts {
            overflows: 2,
            drops: 3,
        };
        assert_eq!(
            counts.since(before),
            ListenCounts {
                overflows: 10,
                drops: 10
            }
        );
    }
}
