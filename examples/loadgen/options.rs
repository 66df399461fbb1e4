//! The command line: a scenario name, then `--option value` pairs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use mqttd::codec::QoS;

use crate::fail::Fail;
use crate::transport::Kind;
use crate::wire::STAMP_LEN;

pub const USAGE: &str = "\
Usage: loadgen SCENARIO [options]

Scenarios (each prints one RESULT line on stdout):
  pair     --pairs N          N publisher->subscriber pairs, pair i on topic pair/i
  fanin    --pubs N --qos Q   N publishers (16) on fanin/<i> -> 1 subscriber on fanin/+
  fanout   --subs N           1 publisher -> N subscribers (16) of topic fanout
  qos1     --pairs N          pairs at QoS 1 on both legs, --window (16) messages in flight;
                              also p50/p99/p99.9 of send -> receive in microseconds
  qos2     --pairs N          the same at QoS 2
  latency  --rate R           one pair at R messages/s (10000): p50/p99/p99.9 in microseconds
  conns    --conns N          N idle subscribers on conns/<i>: connect rate, broker RSS per
           --broker-pid PID   connection (from /proc/PID/status), then one message to each
           --probe M          of M (1000) of them, all of which must arrive; and the
                              SYNs dropped meanwhile (ListenOverflows, ListenDrops in
                              /proc/net/netstat: the whole machine's, not one broker's)
  relay                       a trivial broker on --port, to measure this tool's own ceiling;
                              it exits by itself after --secs (600); with --transport
                              tls/ws/wss it serves that (--certfile, --keyfile for TLS)
  store    --sessions N       N (1000) persistent sessions (Clean Session 0), session i
           --messages M       subscribed at QoS 1 to store/i, disconnect; then M (100) QoS 1
                              messages to each topic, every PUBACK awaited: N x M messages
                              queued for sessions that are away (for bench/restart.sh)
  resume   --session K        resume session K of `store` (retrying a refused connection
           --messages M       every millisecond): the time until its CONNACK, counted from
           --started-ns T     T (Unix time in ns, `date +%s%N`, e.g. when the broker was
                              started), then check its M messages all arrive, in order
  large    --messages M       one publisher sends M (20) QoS 0 messages of --payload bytes
           --parts K          (200000), one at a time, each PUBLISH packet cut into K (6)
                              writes (over ws/wss: K WebSocket messages, as MQTT.js sends
                              a large message); one subscriber: median and max time from
                              the first part sent to the whole packet received

Options:
  --host ADDR     broker address, loopback only (127.0.0.1)
  --port N        broker port (1883)
  --secs D        how long to publish (5); the hard deadline is D + 30 s
  --payload B     payload bytes, at least 14 (16)
  --window W      messages a publisher may be ahead of its slowest subscriber
                  (400; fanin 400 / --pubs, 25 for 16; qos1/qos2 16)
  --qos Q         QoS of both legs for pair, fanin and fanout (0)
  --rate R        messages per second per publisher (unlimited; latency 10000)
  --keep-alive S  the Keep Alive of every CONNECT, in seconds (0: none; rumqttd 0.20
                  refuses 0); not for store and resume, which always send 0
  --parallel K    conns: handshakes in progress at once (64; 1: one client at a time;
                  --conns or more: every connect() made before the first CONNACK is
                  read); store: connections (8)
  --persistent    subscribers use Clean Session 0 and fixed client ids
                  (loadgen-persistent-SCENARIO-sub<i>), so a broker with persistence
                  records what it queues for them; any session left under those ids is
                  discarded first (pair, fanin, fanout, qos1, qos2, latency)

Transports (pair, fanin, fanout, qos1, qos2, latency, large; the others use tcp):
  --transport T   tcp (default), tls, ws (WebSocket, subprotocol mqtt) or wss
  --cafile PATH   tls, wss: trust only the CA certificates in PATH (PEM); the server's
                  certificate must be valid for the name localhost
  --ws-path P     ws, wss: the path of the HTTP upgrade request (/mqtt)
  --sub-port N    subscribers connect to this port instead (another listener)
  --sub-transport T  and over this transport (default: --transport)
  --certfile PATH, --keyfile PATH  relay --transport tls|wss: its certificate and key (PEM)";

/// The scenarios, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Pair,
    Fanin,
    Fanout,
    Qos1,
    Qos2,
    Latency,
    Conns,
    Relay,
    Store,
    Resume,
    Large,
}

impl Scenario {
    fn from_name(name: &str) -> Option<Scenario> {
        Some(match name {
            "pair" => Scenario::Pair,
            "fanin" => Scenario::Fanin,
            "fanout" => Scenario::Fanout,
            "qos1" => Scenario::Qos1,
            "qos2" => Scenario::Qos2,
            "latency" => Scenario::Latency,
            "conns" => Scenario::Conns,
            "relay" => Scenario::Relay,
            "store" => Scenario::Store,
            "resume" => Scenario::Resume,
            "large" => Scenario::Large,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pair => "pair",
            Scenario::Fanin => "fanin",
            Scenario::Fanout => "fanout",
            Scenario::Qos1 => "qos1",
            Scenario::Qos2 => "qos2",
            Scenario::Latency => "latency",
            Scenario::Conns => "conns",
            Scenario::Relay => "relay",
            Scenario::Store => "store",
            Scenario::Resume => "resume",
            Scenario::Large => "large",
        }
    }
}

/// Everything the command line says, with each scenario's defaults filled in.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub addr: SocketAddr,
    pub secs: f64,
    pub payload: usize,
    pub window: u32,
    pub pairs: usize,
    pub pubs: usize,
    pub subs: usize,
    pub qos: QoS,
    pub rate: Option<f64>,
    pub conns: usize,
    pub broker_pid: Option<u32>,
    pub probe: usize,
    pub parallel: usize,
    /// The Keep Alive of the clients' CONNECT packets, in seconds (0: none).
    pub keep_alive: u16,
    /// Subscribers keep their sessions (Clean Session 0), under fixed client ids.
    pub persistent: bool,
    /// `store`: how many sessions; `resume`: how many there were.
    pub sessions: usize,
    /// `store` and `resume`: messages per session.
    pub messages: usize,
    /// `resume`: which session.
    pub session: usize,
    /// `resume`: what the time to CONNACK counts from, in ns since the Unix epoch.
    pub started_ns: Option<u64>,
    /// The publishers' transport (and the subscribers', unless `sub_transport` differs).
    pub transport: Kind,
    /// Where the subscribers connect: `addr` unless `--sub-port` says otherwise.
    pub sub_addr: SocketAddr,
    pub sub_transport: Kind,
    /// `--cafile`, for `tls` and `wss`.
    pub cafile: Option<PathBuf>,
    /// `--ws-path`, for `ws` and `wss`.
    pub ws_path: String,
    /// `large`: how many writes (WebSocket messages) each PUBLISH is cut into.
    pub parts: usize,
    /// `relay` over tls or wss: its certificate chain and key.
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
}

/// What was given on the command line, before the scenario's defaults apply.
#[derive(Debug, Default)]
struct Given {
    host: Option<IpAddr>,
    port: Option<u16>,
    secs: Option<f64>,
    payload: Option<usize>,
    window: Option<u32>,
    pairs: Option<usize>,
    pubs: Option<usize>,
    subs: Option<usize>,
    qos: Option<u8>,
    rate: Option<f64>,
    conns: Option<usize>,
    broker_pid: Option<u32>,
    probe: Option<usize>,
    parallel: Option<usize>,
    keep_alive: Option<u16>,
    persistent: bool,
    sessions: Option<usize>,
    messages: Option<usize>,
    session: Option<usize>,
    started_ns: Option<u64>,
    transport: Option<Kind>,
    sub_port: Option<u16>,
    sub_transport: Option<Kind>,
    cafile: Option<PathBuf>,
    ws_path: Option<String>,
    parts: Option<usize>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
}

/// Parses the arguments after the program name; `Ok(None)` means "print the help".
pub fn parse(args: &[String]) -> Result<Option<Options>, Fail> {
    let Some(first) = args.first() else {
        return Err(Fail::Usage("no scenario given".into()));
    };
    if first == "-h" || first == "--help" {
        return Ok(None);
    }
    let scenario = Scenario::from_name(first)
        .ok_or_else(|| Fail::Usage(format!("unknown scenario {first:?}")))?;
    let given = parse_options(&args[1..])?;
    resolve(scenario, given).map(Some)
}

fn parse_options(args: &[String]) -> Result<Given, Fail> {
    let mut given = Given::default();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if flag == "-h" || flag == "--help" {
            return Err(Fail::Usage("--help goes first".into()));
        }
        // The one option without a value.
        if flag == "--persistent" {
            given.persistent = true;
            continue;
        }
        let value = rest
            .next()
            .ok_or_else(|| Fail::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--host" => given.host = Some(number(flag, value)?),
            "--port" => given.port = Some(number(flag, value)?),
            "--secs" => given.secs = Some(positive(flag, value)?),
            "--payload" => given.payload = Some(number(flag, value)?),
            "--window" => given.window = Some(number(flag, value)?),
            "--pairs" => given.pairs = Some(number(flag, value)?),
            "--pubs" => given.pubs = Some(number(flag, value)?),
            "--subs" => given.subs = Some(number(flag, value)?),
            "--qos" => given.qos = Some(number(flag, value)?),
            "--rate" => given.rate = Some(positive(flag, value)?),
            "--conns" => given.conns = Some(number(flag, value)?),
            "--broker-pid" => given.broker_pid = Some(number(flag, value)?),
            "--probe" => given.probe = Some(number(flag, value)?),
            "--parallel" => given.parallel = Some(number(flag, value)?),
            "--keep-alive" => given.keep_alive = Some(number(flag, value)?),
            "--sessions" => given.sessions = Some(number(flag, value)?),
            "--messages" => given.messages = Some(number(flag, value)?),
            "--session" => given.session = Some(number(flag, value)?),
            "--started-ns" => given.started_ns = Some(number(flag, value)?),
            "--transport" => given.transport = Some(transport(flag, value)?),
            "--sub-port" => given.sub_port = Some(number(flag, value)?),
            "--sub-transport" => given.sub_transport = Some(transport(flag, value)?),
            "--cafile" => given.cafile = Some(PathBuf::from(value)),
            "--ws-path" => given.ws_path = Some(value.clone()),
            "--parts" => given.parts = Some(number(flag, value)?),
            "--certfile" => given.certfile = Some(PathBuf::from(value)),
            "--keyfile" => given.keyfile = Some(PathBuf::from(value)),
            _ => return Err(Fail::Usage(format!("unknown option {flag}"))),
        }
    }
    Ok(given)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, Fail> {
    value
        .parse()
        .map_err(|_| Fail::Usage(format!("{flag}: cannot read {value:?}")))
}

fn transport(flag: &str, value: &str) -> Result<Kind, Fail> {
    Kind::from_name(value).ok_or_else(|| {
        Fail::Usage(format!(
            "{flag}: expected tcp, tls, ws or wss, not {value:?}"
        ))
    })
}

fn positive(flag: &str, value: &str) -> Result<f64, Fail> {
    match number::<f64>(flag, value)? {
        x if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(Fail::Usage(format!("{flag} must be a positive number"))),
    }
}

/// Fills in each scenario's defaults and checks the values make sense together.
fn resolve(scenario: Scenario, given: Given) -> Result<Options, Fail> {
    let host = given.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // This tool floods whatever it points at: never anything but this machine.
    if !host.is_loopback() {
        return Err(Fail::Usage(format!("{host} is not a loopback address")));
    }
    let qos = match scenario {
        Scenario::Qos1 => QoS::AtLeastOnce,
        Scenario::Qos2 => QoS::ExactlyOnce,
        _ => QoS::from_bits(given.qos.unwrap_or(0))
            .ok_or_else(|| Fail::Usage("--qos must be 0, 1 or 2".into()))?,
    };
    // At most 400 messages in flight towards any one subscriber: below the QoS 0 queue
    // of mqttd (half of --max-queued 1000) and Mosquitto's max_queued_messages 1000, so
    // the window, not a broker's drop policy, is what holds the publishers back.
    let default_window = match scenario {
        Scenario::Fanin => {
            400 / u32::try_from(given.pubs.unwrap_or(16))
                .unwrap_or(u32::MAX)
                .max(1)
        }
        Scenario::Qos1 | Scenario::Qos2 => 16,
        _ => 400,
    }
    .max(1);
    let conns = given.conns.unwrap_or(5000);
    let addr = SocketAddr::new(host, given.port.unwrap_or(1883));
    let transport = given.transport.unwrap_or(Kind::Tcp);
    let large = scenario == Scenario::Large;
    let options = Options {
        scenario,
        addr,
        secs: given.secs.unwrap_or(if scenario == Scenario::Relay {
            600.0
        } else {
            5.0
        }),
        payload: given
            .payload
            .unwrap_or(if large { LARGE_PAYLOAD } else { 16 }),
        window: given.window.unwrap_or(default_window),
        pairs: given.pairs.unwrap_or(1),
        pubs: given.pubs.unwrap_or(16),
        subs: given.subs.unwrap_or(16),
        qos,
        rate: given
            .rate
            .or((scenario == Scenario::Latency).then_some(10_000.0)),
        conns,
        broker_pid: given.broker_pid,
        probe: given.probe.unwrap_or(1000).min(conns),
        parallel: given
            .parallel
            .unwrap_or(if scenario == Scenario::Store { 8 } else { 64 }),
        keep_alive: given.keep_alive.unwrap_or(0),
        persistent: given.persistent,
        sessions: given.sessions.unwrap_or(1000),
        messages: given.messages.unwrap_or(if large { 20 } else { 100 }),
        session: given.session.unwrap_or(0),
        started_ns: given.started_ns,
        transport,
        sub_addr: SocketAddr::new(host, given.sub_port.unwrap_or(addr.port())),
        sub_transport: given.sub_transport.unwrap_or(transport),
        cafile: given.cafile,
        ws_path: given.ws_path.unwrap_or_else(|| "/mqtt".to_owned()),
        parts: given.parts.unwrap_or(6),
        certfile: given.certfile,
        keyfile: given.keyfile,
    };
    check(&options)?;
    check_transport(&options)?;
    Ok(options)
}

/// `large`'s default payload: a 200 000-byte message, as in the MQTT.js report.
const LARGE_PAYLOAD: usize = 200_000;

/// The largest `--payload` of `large` (mqttd accepts 1 MiB packets by default).
const LARGE_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// The transport options make sense for the scenario and each other.
fn check_transport(options: &Options) -> Result<(), Fail> {
    let kinds = [options.transport, options.sub_transport];
    let plain = kinds.iter().all(|&k| k == Kind::Tcp) && options.sub_addr == options.addr;
    let tcp_only = matches!(
        options.scenario,
        Scenario::Conns | Scenario::Store | Scenario::Resume
    );
    if tcp_only && !plain {
        return Err(Fail::Usage(format!(
            "{} uses plain TCP on --port only (no --transport, --sub-port or --sub-transport)",
            options.scenario.name()
        )));
    }
    if options.scenario == Scenario::Relay {
        return check_relay_transport(options);
    }
    if options.certfile.is_some() || options.keyfile.is_some() {
        return Err(Fail::Usage("--certfile and --keyfile are for relay".into()));
    }
    let tls = kinds.iter().any(|k| k.uses_tls());
    match (tls, &options.cafile) {
        (true, None) => Err(Fail::Usage("tls and wss need --cafile".into())),
        (false, Some(_)) => Err(Fail::Usage("--cafile is only for tls and wss".into())),
        _ if !options.ws_path.starts_with('/')
            || options
                .ws_path
                .contains(|c: char| c.is_whitespace() || c.is_control()) =>
        {
            Err(Fail::Usage(
                "--ws-path must start with / and hold no spaces".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// The relay serves one transport on one port, with its own certificate for TLS.
fn check_relay_transport(options: &Options) -> Result<(), Fail> {
    if options.sub_addr != options.addr
        || options.sub_transport != options.transport
        || options.cafile.is_some()
    {
        return Err(Fail::Usage(
            "relay takes --transport (and --certfile, --keyfile), not --sub-port, --sub-transport or --cafile".into(),
        ));
    }
    let tls = options.transport.uses_tls();
    match (tls, options.certfile.is_some() && options.keyfile.is_some()) {
        (true, false) => Err(Fail::Usage(
            "relay --transport tls|wss needs --certfile and --keyfile".into(),
        )),
        (false, _) if options.certfile.is_some() || options.keyfile.is_some() => Err(Fail::Usage(
            "--certfile and --keyfile are only for tls and wss".into(),
        )),
        _ => Ok(()),
    }
}

fn check(options: &Options) -> Result<(), Fail> {
    let max_payload = match options.scenario {
        Scenario::Large => LARGE_MAX_PAYLOAD,
        _ => 60_000,
    };
    if options.payload < STAMP_LEN || options.payload > max_payload {
        return Err(Fail::Usage(format!(
            "--payload must be between {STAMP_LEN} (the stamp) and {max_payload}"
        )));
    }
    if options.parts == 0 || options.parts > options.payload {
        return Err(Fail::Usage(
            "--parts must be at least 1 and at most --payload".into(),
        ));
    }
    if options.window == 0 || options.window > u32::from(u16::MAX) {
        return Err(Fail::Usage(
            "--window must be between 1 and 65535 (Packet Identifiers)".into(),
        ));
    }
    let counts = [
        options.pairs,
        options.pubs,
        options.subs,
        options.conns,
        options.parallel,
    ];
    if counts.contains(&0) || options.pubs > 60_000 || options.pairs > 60_000 {
        return Err(Fail::Usage(
            "--pairs, --pubs, --subs, --conns and --parallel must be at least 1 (and publishers at most 60000)".into(),
        ));
    }
    if options.persistent
        && matches!(
            options.scenario,
            Scenario::Conns
                | Scenario::Relay
                | Scenario::Store
                | Scenario::Resume
                | Scenario::Large
        )
    {
        return Err(Fail::Usage(format!(
            "--persistent does not apply to {} (store and resume always use persistent sessions)",
            options.scenario.name()
        )));
    }
    // The session number goes into the stamp's 16-bit publisher field.
    if options.sessions == 0 || options.sessions > 60_000 || options.messages == 0 {
        return Err(Fail::Usage(
            "--sessions must be between 1 and 60000, --messages at least 1".into(),
        ));
    }
    if options.messages > 1_000_000 {
        return Err(Fail::Usage("--messages must be at most 1000000".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn persistent_takes_no_value_and_is_off_by_default() {
        let plain = parse(&args("qos1 --pairs 8")).unwrap().unwrap();
        assert!(!plain.persistent);
        let durable = parse(&args("qos1 --persistent --pairs 8"))
            .unwrap()
            .unwrap();
        assert!(durable.persistent);
        assert_eq!(durable.pairs, 8);
        assert_eq!(durable.window, 16);
        let fanin = parse(&args("fanin --pubs 16 --qos 1 --persistent"))
            .unwrap()
            .unwrap();
        assert!(fanin.persistent);
        assert_eq!(fanin.window, 25);
    }

    #[test]
    fn persistent_is_refused_where_it_means_nothing() {
        for scenario in ["conns", "relay", "store", "resume"] {
            let line = format!("{scenario} --persistent");
            assert!(parse(&args(&line)).is_err(), "{line}");
        }
    }

    #[test]
    fn store_and_resume_defaults() {
        let store = parse(&args("store")).unwrap().unwrap();
        assert_eq!(
            (store.sessions, store.messages, store.parallel),
            (1000, 100, 8)
        );
        let resume = parse(&args("resume --session 7 --started-ns 123"))
            .unwrap()
            .unwrap();
        assert_eq!((resume.session, resume.started_ns), (7, Some(123)));
    }

    #[test]
    fn transports_default_to_tcp_and_subscribers_follow_publishers() {
        let plain = parse(&args("pair --port 1884")).unwrap().unwrap();
        assert_eq!(
            (plain.transport, plain.sub_transport),
            (Kind::Tcp, Kind::Tcp)
        );
        assert_eq!(plain.sub_addr, plain.addr);
        let ws = parse(&args("fanout --transport ws --port 8080"))
            .unwrap()
            .unwrap();
        assert_eq!((ws.transport, ws.sub_transport), (Kind::Ws, Kind::Ws));
        assert_eq!(ws.ws_path, "/mqtt");
        let mixed = parse(&args(
            "large --transport wss --cafile ca.pem --port 8443 --sub-port 1883 --sub-transport tcp",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (mixed.transport, mixed.sub_transport),
            (Kind::Wss, Kind::Tcp)
        );
        assert_eq!(mixed.sub_addr.port(), 1883);
        let relay = parse(&args(
            "relay --transport wss --certfile c.pem --keyfile k.pem",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(relay.transport, Kind::Wss);
        assert_eq!(
            (mixed.payload, mixed.parts, mixed.messages),
            (200_000, 6, 20)
        );
    }

    #[test]
    fn transport_options_that_cannot_work_are_refused() {
        for line in [
            "pair --transport tls",               // no --cafile
            "pair --transport ws --cafile x.pem", // --cafile without TLS
            "pair --transport quic",
            "pair --transport ws --ws-path mqtt",
            "conns --transport ws",
            "store --sub-port 1884",
            "relay --transport tls", // no certificate
            "relay --transport ws --sub-port 1884",
            "pair --certfile c.pem --keyfile k.pem", // a server's files
            "pair --payload 200000",
        ] {
            assert!(parse(&args(line)).is_err(), "{line}");
        }
    }
}
