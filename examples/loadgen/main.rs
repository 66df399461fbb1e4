//! # loadgen: a load generator for MQTT 3.1.1 brokers on this machine
//!
//! It measures a broker, any broker, from the outside, over loopback, and prints one
//! machine-readable `RESULT` line per run. `bench/compare.sh` runs every scenario against
//! mqttd and Mosquitto and compares them; `bench/README.md` says what each one measures.
//!
//! ```console
//! $ cargo build --release --example loadgen
//! $ target/release/examples/loadgen pair --pairs 8 --port 1883 --secs 5
//! RESULT scenario=pair pairs=8 qos=0 payload=16 window=100 secs=5.00 sent=… received=… rate=… lost=0 dup=0 reorder=0 …
//! ```
//!
//! ## Never the bottleneck
//!
//! A load generator that is slower than the broker measures itself. So:
//!
//! * **Few threads.** Two, whatever the number of clients: one mio event loop for all
//!   publishers and one for all subscribers (`flow`, `publisher`, `subscriber`). `conns`
//!   and `relay` use one.
//! * **Batched writes.** Packets are appended to a buffer and written with one system call
//!   per connection per loop turn (`buffers`); PUBLISH packets are copied from a template,
//!   not encoded one by one, and read in place, not copied (`wire`).
//! * **Proof.** `loadgen relay` is a trivial broker in the same style; what the load
//!   generator reaches against it is its ceiling (`relay`).
//!
//! ## Exact
//!
//! * Every payload carries its publisher, a sequence number and its send time (`wire`).
//! * Every subscriber counts lost, duplicated and out-of-order messages (`accounting`).
//! * A publisher is never more than `--window` messages ahead of its slowest subscriber,
//!   and at QoS 1/2 never has more than `--window` unacknowledged messages, so what is
//!   measured is delivery, not queueing (`publisher`).
//! * Every loop has a hard deadline (`--secs` + 30 s); any protocol error ends the run with
//!   a non-zero exit code (`fail`).
//!
//! | module       | what it does                                                   |
//! |--------------|----------------------------------------------------------------|
//! | `options`    | the command line and each scenario's defaults                  |
//! | `flow`       | the throughput scenarios: who publishes where, the two threads, the report |
//! | `publisher`  | the publisher thread: windows, rate limit, QoS 1/2 sender side |
//! | `subscriber` | the subscriber thread: accounting, QoS 1/2 receiver side      |
//! | `shared`     | the atomics the two threads share                              |
//! | `accounting` | lost / duplicate / late per publisher, latency percentiles     |
//! | `conns`      | many idle connections: connect rate, memory, delivery          |
//! | `relay`      | the trivial broker that measures this tool's ceiling           |
//! | `restart`    | `store` and `resume`: queued messages that must survive a restart |
//! | `large`      | 200 000-byte messages cut into 6 WebSocket messages, one at a time |
//! | `client`     | blocking connection setup (CONNECT, SUBSCRIBE) before a run    |
//! | `transport`  | tcp, tls (rustls), ws and wss (WebSocket framing) under MQTT   |
//! | `buffers`    | non-blocking reads and batched writes                          |
//! | `wire`       | packet framing, the PUBLISH template, the payload stamp        |
//! | `fail`       | errors and exit codes                                          |

#![forbid(unsafe_code)]

mod accounting;
mod buffers;
mod client;
mod conns;
mod fail;
mod flow;
mod large;
mod options;
mod publisher;
mod relay;
mod restart;
mod shared;
mod subscriber;
mod transport;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use fail::Fail;
use flow::{Endpoints, Plan};
use options::{Options, Scenario, USAGE};
use transport::{Acceptor, Connector, Kind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match options::parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(fail) => {
            eprintln!("loadgen: {fail}\n\n{USAGE}");
            return ExitCode::from(fail.exit_code());
        }
    };
    match run(&options) {
        Ok(Some(result)) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("loadgen {}: {fail}", options.scenario.name());
            ExitCode::from(fail.exit_code())
        }
    }
}

/// Runs the scenario; returns its RESULT line (the relay has none).
fn run(options: &Options) -> Result<Option<String>, Fail> {
    let name = options.scenario.name();
    match options.scenario {
        Scenario::Relay => {
            let files = options.certfile.as_deref().zip(options.keyfile.as_deref());
            let acceptor = Acceptor::new(options.transport, files)?;
            relay::run(
                options.addr,
                Duration::from_secs_f64(options.secs),
                &acceptor,
            )?;
            Ok(None)
        }
        Scenario::Conns => {
            let report = conns::run(options)?;
            Ok(Some(format!("RESULT scenario={name} {}", report.fields())))
        }
        Scenario::Store => {
            let fields = restart::store(options)?;
            Ok(Some(format!("RESULT scenario={name} {fields}")))
        }
        Scenario::Resume => {
            let fields = restart::resume(options)?;
            Ok(Some(format!("RESULT scenario={name} {fields}")))
        }
        Scenario::Large => {
            let endpoints = endpoints(options)?;
            let fields = large::run(options, &endpoints)?;
            let transport = transport_fields(options, &endpoints);
            Ok(Some(format!("RESULT scenario={name} {fields}{transport}")))
        }
        _ => {
            let endpoints = endpoints(options)?;
            let (plan, fields) = plan(options);
            let report = flow::run(&plan, &endpoints)?;
            Ok(Some(format!(
                "RESULT scenario={name} {fields} {}{}",
                report.fields(),
                transport_fields(options, &endpoints)
            )))
        }
    }
}

/// The publishers' and the subscribers' connectors; the TLS settings (and so the CA file)
/// are read once for both.
fn endpoints(options: &Options) -> Result<Endpoints, Fail> {
    let tls = match &options.cafile {
        Some(cafile) => Some(transport::tls_config(cafile)?),
        None => None,
    };
    let path = &options.ws_path;
    Ok(Endpoints {
        publishers: Connector::new(options.addr, options.transport, tls.clone(), path)?
            .with_keep_alive(options.keep_alive),
        subscribers: Connector::new(options.sub_addr, options.sub_transport, tls, path)?
            .with_keep_alive(options.keep_alive),
    })
}

/// ` transport=… sub_transport=… sub_port=… tls=…` for whatever is not plain TCP on one
/// port, so that a plain run's RESULT line reads as it always did.
fn transport_fields(options: &Options, endpoints: &Endpoints) -> String {
    let mut fields = String::new();
    if options.transport != Kind::Tcp || options.sub_transport != options.transport {
        fields += &format!(" transport={}", options.transport);
    }
    if options.sub_transport != options.transport {
        fields += &format!(" sub_transport={}", options.sub_transport);
    }
    if options.sub_addr != options.addr {
        fields += &format!(" sub_port={}", options.sub_addr.port());
    }
    let negotiated = endpoints.publishers.negotiated();
    if let Some(tls) = negotiated.or_else(|| endpoints.subscribers.negotiated()) {
        fields += &format!(" tls={tls}");
    }
    fields
}

/// The plan of a throughput scenario, and the fields that describe it in the RESULT line.
fn plan(options: &Options) -> (Plan, String) {
    let name = options.scenario.name();
    let ((publishers, subscribers), mut fields) = match options.scenario {
        Scenario::Fanin => (Plan::fanin(options.pubs), format!("pubs={}", options.pubs)),
        Scenario::Fanout => (Plan::fanout(options.subs), format!("subs={}", options.subs)),
        Scenario::Latency => (
            Plan::pairs(name, 1),
            format!("pairs=1 target_rate={:.0}", options.rate.unwrap_or(0.0)),
        ),
        _ => (
            Plan::pairs(name, options.pairs),
            format!("pairs={}", options.pairs),
        ),
    };
    fields += &format!(
        " qos={} payload={} window={}",
        options.qos.as_u8(),
        options.payload,
        options.window
    );
    if let (Some(rate), false) = (options.rate, options.scenario == Scenario::Latency) {
        fields += &format!(" rate_limit={rate:.0}");
    }
    if options.persistent {
        fields += " persistent=1";
    }
    let plan = Plan {
        publishers,
        subscribers,
        qos: options.qos,
        window: options.window,
        rate: options.rate,
        payload: options.payload,
        secs: options.secs,
        // QoS 1 and 2 too: a broker whose acknowledgements cost O(window) shows it in the
        // tail before the rate (one clock reading and 8 bytes per message).
        record_latency: matches!(
            options.scenario,
            Scenario::Latency | Scenario::Qos1 | Scenario::Qos2
        ),
        persistent: options
            .persistent
            .then(|| format!("loadgen-persistent-{name}")),
    };
    (plan, fields)
}
