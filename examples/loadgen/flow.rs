//! A message-flow run: who publishes where, who listens, and the figures at the end.
//!
//! Every throughput scenario (`pair`, `fanin`, `fanout`, `qos1`, `qos2`, `latency`) is a
//! [`Plan`]: a list of publishers, each with its topic and the subscribers that receive
//! it, and a list of subscriber filters. [`run`] opens the connections (subscribers first,
//! so that no message is published before its subscription exists), then runs two threads:
//!
//! ```text
//!   "publishers" thread ── one mio Poll ── every publisher socket ──▶ broker
//!          ▲                                                             │
//!          │ Shared::seen (atomics) + a mio Waker                        ▼
//!   "subscribers" thread ── one mio Poll ── every subscriber socket ◀── broker
//! ```
//!
//! Two threads, whatever the number of clients, so the load generator stays a small
//! fixed cost next to the broker on a 2-core machine.
//!
//! Each side connects through its own [`Connector`] ([`Endpoints`]): usually the same
//! listener and transport for both, but the subscribers may use another (`--sub-port`,
//! `--sub-transport`), say publishers over WebSocket and subscribers over plain TCP.

use std::thread;
use std::time::{Duration, Instant};

use mio::{Interest, Poll, Token, Waker};
use mqttd::codec::QoS;

use crate::accounting::{self, Percentiles};
use crate::client;
use crate::fail::Fail;
use crate::publisher::{self, Publisher, PublisherConfig, PublisherReport, WAKER};
use crate::shared::Shared;
use crate::subscriber::{self, Subscriber, SubscriberReport};
use crate::transport::{Connector, MioStream};
use crate::wire::PublishTemplate;

/// How long past `--secs` any loop may still run before the run fails.
pub const HARD_MARGIN: Duration = Duration::from_secs(30);

/// One publisher: its topic, and which subscribers (by index) receive its messages.
#[derive(Debug, Clone)]
pub struct PublisherPlan {
    pub topic: String,
    pub subscribers: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub publishers: Vec<PublisherPlan>,
    /// One topic filter per subscriber.
    pub subscribers: Vec<String>,
    /// Both legs use this QoS: the publishers publish at it and the subscribers ask for it.
    pub qos: QoS,
    pub window: u32,
    pub rate: Option<f64>,
    pub payload: usize,
    pub secs: f64,
    pub record_latency: bool,
    /// `Some(prefix)`: subscriber `i` connects with Clean Session 0 as `<prefix>-sub<i>`,
    /// so that the broker keeps (and, with persistence, writes to disk) what it queues
    /// for it. `None`: Clean Session 1 under a name unique to this process.
    pub persistent: Option<String>,
}

impl Plan {
    /// `n` pairs, pair `i` on its own topic `<name>/<i>`.
    pub fn pairs(name: &str, n: usize) -> (Vec<PublisherPlan>, Vec<String>) {
        let publishers = (0..n)
            .map(|i| PublisherPlan {
                topic: format!("{name}/{i}"),
                subscribers: vec![i],
            })
            .collect();
        let subscribers = (0..n).map(|i| format!("{name}/{i}")).collect();
        (publishers, subscribers)
    }

    /// `n` publishers on `fanin/<i>`, one subscriber on `fanin/+`.
    pub fn fanin(n: usize) -> (Vec<PublisherPlan>, Vec<String>) {
        let publishers = (0..n)
            .map(|i| PublisherPlan {
                topic: format!("fanin/{i}"),
                subscribers: vec![0],
            })
            .collect();
        (publishers, vec!["fanin/+".to_owned()])
    }

    /// One publisher on `fanout`, `n` subscribers of it.
    pub fn fanout(n: usize) -> (Vec<PublisherPlan>, Vec<String>) {
        let publisher = PublisherPlan {
            topic: "fanout".to_owned(),
            subscribers: (0..n).collect(),
        };
        (vec![publisher], vec!["fanout".to_owned(); n])
    }
}

/// The figures of one run, summed over subscribers.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub late: u64,
    pub stalls: u64,
    pub unacked: u64,
    /// From the start of sending to the last arrival.
    pub secs: f64,
    /// The fewest and most messages one subscriber received (fairness in fan-out).
    pub min_sub: u64,
    pub max_sub: u64,
    pub latency: Option<Percentiles>,
}

impl Report {
    /// Messages received per second, summed over subscribers.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.received as f64 / self.secs
        } else {
            0.0
        }
    }

    /// The common `key=value` fields of the RESULT line.
    pub fn fields(&self) -> String {
        let mut line = format!(
            "secs={:.2} sent={} received={} rate={:.0} lost={} dup={} reorder={} stalls={} unacked={} min_sub={} max_sub={}",
            self.secs,
            self.sent,
            self.received,
            self.rate(),
            self.lost,
            self.duplicates,
            self.late,
            self.stalls,
            self.unacked,
            self.min_sub,
            self.max_sub
        );
        if let Some(p) = &self.latency {
            line += &format!(
                " p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} samples={}",
                p.p50, p.p99, p.p999, p.max, p.samples
            );
        }
        line
    }
}

/// Where each side connects, and over what.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub publishers: Connector,
    pub subscribers: Connector,
}

/// Opens the connections, runs the two threads, adds up their reports.
pub fn run(plan: &Plan, endpoints: &Endpoints) -> Result<Report, Fail> {
    let send_for = Duration::from_secs_f64(plan.secs);
    // Setting up counts against the hard deadline too.
    let deadline = Instant::now() + send_for + HARD_MARGIN;
    let setup = Setup {
        endpoints,
        client_prefix: format!("loadgen-{}", std::process::id()),
        deadline,
    };
    let subscriber_poll = Poll::new().map_err(Fail::io("create poll"))?;
    let subscribers = open_subscribers(plan, &setup, &subscriber_poll)?;
    let publisher_poll = Poll::new().map_err(Fail::io("create poll"))?;
    let publishers = open_publishers(plan, &setup, &publisher_poll)?;
    let waker = Waker::new(publisher_poll.registry(), WAKER).map_err(Fail::io("create waker"))?;
    // The clock starts now, after every connection is set up.
    let shared = Shared::new(
        plan.publishers.len(),
        plan.subscribers.len(),
        waker,
        deadline,
    );
    let config = PublisherConfig {
        qos: plan.qos,
        window: plan.window,
        rate: plan.rate,
        send_for,
    };
    let (sent, received) = run_threads(
        (publishers, publisher_poll),
        (subscribers, subscriber_poll),
        &shared,
        &config,
    )?;
    let report = summarize(&sent, received);
    // The figures are taken; leave no session behind that would go on collecting
    // messages (and, with persistence, writing them) during someone else's run.
    if let Some(prefix) = &plan.persistent {
        for index in 0..plan.subscribers.len() {
            let name = format!("{prefix}-sub{index}");
            if let Err(e) = client::discard_session(&endpoints.subscribers, &name) {
                eprintln!("loadgen: could not discard the session {name}: {e}");
            }
        }
    }
    Ok(report)
}

/// Where to connect, how to name the clients, and until when.
struct Setup<'a> {
    endpoints: &'a Endpoints,
    client_prefix: String,
    deadline: Instant,
}

impl Setup<'_> {
    /// Opens one client connection through `connector`, unless the hard deadline has
    /// passed: a persistent session (Clean Session 0, any older session under `name`
    /// discarded first) or a clean one.
    fn open(
        &self,
        connector: &Connector,
        name: &str,
        persistent: bool,
        subscription: Option<(&str, QoS)>,
    ) -> Result<MioStream, Fail> {
        if Instant::now() >= self.deadline {
            return Err(Fail::Deadline(format!("still setting up at {name}")));
        }
        if persistent {
            client::open_persistent(connector, name, subscription)
        } else {
            client::open(connector, name, subscription)
        }
    }
}

fn open_subscribers(plan: &Plan, setup: &Setup, poll: &Poll) -> Result<Vec<Subscriber>, Fail> {
    let mut subscribers = Vec::with_capacity(plan.subscribers.len());
    for (index, filter) in plan.subscribers.iter().enumerate() {
        let name = match &plan.persistent {
            Some(prefix) => format!("{prefix}-sub{index}"),
            None => format!("{}-sub{index}", setup.client_prefix),
        };
        let persistent = plan.persistent.is_some();
        let subscription = Some((filter.as_str(), plan.qos));
        let stream = setup.open(
            &setup.endpoints.subscribers,
            &name,
            persistent,
            subscription,
        )?;
        let sources: Vec<bool> = plan
            .publishers
            .iter()
            .map(|p| p.subscribers.contains(&index))
            .collect();
        let mut subscriber = Subscriber::new(index, name, stream, &sources, plan.record_latency);
        register(poll, subscriber.stream_mut(), index)?;
        subscribers.push(subscriber);
    }
    Ok(subscribers)
}

fn open_publishers(plan: &Plan, setup: &Setup, poll: &Poll) -> Result<Vec<Publisher>, Fail> {
    let publisher_count = plan.publishers.len();
    let mut publishers = Vec::with_capacity(publisher_count);
    for (index, publisher_plan) in plan.publishers.iter().enumerate() {
        let id =
            u16::try_from(index).map_err(|_| Fail::Usage("at most 65 536 publishers".into()))?;
        let name = format!("{}-pub{index}", setup.client_prefix);
        let stream = setup.open(&setup.endpoints.publishers, &name, false, None)?;
        let template = PublishTemplate::new(&publisher_plan.topic, plan.qos, plan.payload);
        // Where the subscribers of this publisher post their progress (see `Shared`).
        let watchers = publisher_plan
            .subscribers
            .iter()
            .map(|&sub| sub * publisher_count + index)
            .collect();
        let mut publisher = Publisher::new(id, name, stream, template, watchers);
        register(poll, publisher.stream_mut(), index)?;
        publishers.push(publisher);
    }
    Ok(publishers)
}

fn register(poll: &Poll, stream: &mut MioStream, index: usize) -> Result<(), Fail> {
    poll.registry()
        .register(
            stream.socket_mut(),
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(Fail::io("register with poll"))
}

type PublisherSide = (Vec<Publisher>, Poll);
type SubscriberSide = (Vec<Subscriber>, Poll);

/// Runs both threads to the end. If one fails it tells the other to stop (`abort`), and
/// its error, not the other's "aborted", is the one reported.
fn run_threads(
    (publishers, publisher_poll): PublisherSide,
    (subscribers, subscriber_poll): SubscriberSide,
    shared: &Shared,
    config: &PublisherConfig,
) -> Result<(Vec<PublisherReport>, Vec<SubscriberReport>), Fail> {
    thread::scope(|scope| {
        let sending = thread::Builder::new()
            .name("publishers".into())
            .spawn_scoped(scope, || {
                let result = publisher::run(publishers, publisher_poll, shared, config);
                if result.is_err() {
                    shared.abort();
                }
                result
            })
            .map_err(Fail::io("spawn the publisher thread"))?;
        let receiving = thread::Builder::new()
            .name("subscribers".into())
            .spawn_scoped(scope, || {
                let result = subscriber::run(subscribers, subscriber_poll, shared);
                if result.is_err() {
                    shared.abort();
                }
                result
            });
        let receiving = match receiving {
            Ok(handle) => handle,
            Err(e) => {
                shared.abort();
                return Err(Fail::io("spawn the subscriber thread")(e));
            }
        };
        let sent = sending.join().unwrap_or_else(|p| Err(panic_fail(p)));
        let received = receiving.join().unwrap_or_else(|p| Err(panic_fail(p)));
        match (sent, received) {
            (Ok(sent), Ok(received)) => Ok((sent, received)),
            (Err(Fail::Aborted), Err(e)) | (Err(e), _) | (_, Err(e)) => Err(e),
        }
    })
}

fn panic_fail(payload: Box<dyn std::any::Any + Send>) -> Fail {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    Fail::Panic(message)
}

fn summarize(sent: &[PublisherReport], received: Vec<SubscriberReport>) -> Report {
    let mut report = Report {
        sent: sent.iter().map(|p| u64::from(p.sent)).sum(),
        stalls: sent.iter().map(|p| u64::from(p.stalls)).sum(),
        unacked: sent.iter().map(|p| u64::from(p.unacked)).sum(),
        min_sub: received.iter().map(|s| s.received).min().unwrap_or(0),
        max_sub: received.iter().map(|s| s.received).max().unwrap_or(0),
        ..Report::default()
    };
    let mut latencies = Vec::new();
    let mut last_arrival_ns = 0;
    for subscriber in received {
        report.received += subscriber.received;
        report.lost += subscriber.lost;
        report.duplicates += subscriber.duplicates;
        report.late += subscriber.late;
        last_arrival_ns = last_arrival_ns.max(subscriber.last_arrival_ns);
        latencies.extend(subscriber.latencies_ns);
    }
    report.secs = last_arrival_ns as f64 / 1e9;
    report.latency = accounting::percentiles(&mut latencies);
    report
}
