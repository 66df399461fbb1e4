//! The `mqttd` command: parse the arguments, set up logging, start the server, wait.
//! Everything else lives in the library (`src/lib.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use mqttd::config::{load_file, Loaded};
use mqttd::sequence::Recorder;
use mqttd::{Config, Server};

const USAGE: &str = "\
mqttd — an MQTT 3.1.1 broker to read alongside the specification

Usage: mqttd [-c FILE] [--bind ADDR] [-p|--port N] [-v|--verbose] [--sequence FILE] [limits]
       mqttd passwd [-c | -D] [-b] passwordfile username [password]   (see mqttd passwd -h)
       mqttd decode [HEX... | --file FILE]   take packets apart (see mqttd decode -h)
       mqttd send [--connect ID] HOST:PORT HEX...   send raw bytes over plain TCP, show
                                    the answers taken apart (see mqttd send -h)

Options:
  -c, --config FILE        read a Mosquitto configuration file (see mqttd.conf); the
                           options below override it
  --bind ADDR              IP address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  -p, --port N             TCP port to listen on (default 1883; 0 lets the OS pick one)
  -v, --verbose            log every packet in and out (RUST_LOG=debug when RUST_LOG is unset)
  --sequence FILE          write a Mermaid sequence diagram of the run to FILE, one arrow per
                           packet as the debug log names it, whatever RUST_LOG prints
  -h, --help               print this help

Limits:
  --max-packet-size BYTES  largest packet accepted (Remaining Length; default 1048576)
  --max-connections N      open TCP connections at once (default 10000)
  --connect-timeout SECS   time for the CONNECT to arrive after the TCP connect (default 10)
  --max-inflight N         QoS 1/2 messages awaiting acknowledgement per client
                           (default 20, at most 65535)
  --max-queued N           messages waiting for one session (default 1000)

Logging: RUST_LOG=info (default), debug (one line per packet) or trace (plus hex dumps).
Ctrl-C or SIGTERM stops it (every connection closed, exit 0); SIGHUP re-reads the
password and ACL files.";

/// What the command line asked for.
#[derive(Debug)]
struct Args {
    config: Config,
    verbose: bool,
    /// Where `--sequence` writes the run's sequence diagram.
    sequence: Option<PathBuf>,
    /// Lines of the configuration file that were skipped, to log once logging is set up.
    warnings: Vec<String>,
}

/// Why the command line cannot be used.
#[derive(Debug)]
enum ArgsError {
    /// The command line itself is wrong: exit code 2, with the usage.
    Usage(String),
    /// The configuration file is wrong: exit code 1, as Mosquitto, naming file and line.
    File(String),
}

/// Reads the command line: first the configuration file (`-c`), if any, then every other
/// option on top of it, wherever it stood, so that flags override the file.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, ArgsError> {
    let mut file = None;
    let mut flags = Vec::new();
    let mut verbose = false;
    let mut sequence = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-v" | "--verbose" => verbose = true,
            "-c" | "--config" => file = Some(args.next().ok_or_else(|| needs_value(&arg))?),
            "--sequence" => sequence = Some(args.next().ok_or_else(|| needs_value(&arg))?.into()),
            _ => {
                let value = args.next().ok_or_else(|| needs_value(&arg))?;
                flags.push((arg, value));
            }
        }
    }
    let Loaded {
        mut config,
        warnings,
    } = match file {
        Some(path) => load_file(path.as_ref()).map_err(|e| ArgsError::File(e.to_string()))?,
        None => Loaded {
            config: Config::default(),
            warnings: Vec::new(),
        },
    };
    for (flag, value) in flags {
        apply_flag(&mut config, &flag, value).map_err(ArgsError::Usage)?;
    }
    // The settings check themselves: the command line only reads them.
    config
        .validate()
        .map_err(|e| ArgsError::Usage(e.to_string()))?;
    Ok(Some(Args {
        config,
        verbose,
        sequence,
        warnings,
    }))
}

fn needs_value(option: &str) -> ArgsError {
    if option.starts_with('-') {
        ArgsError::Usage(format!("{option} needs a value"))
    } else {
        ArgsError::Usage(format!("unknown argument {option:?}"))
    }
}

/// Applies one option that takes a value. `--bind` and `--port` change the first listener.
fn apply_flag(config: &mut Config, flag: &str, value: String) -> Result<(), String> {
    match flag {
        "--bind" => first_listener(config).set_ip(number(flag, value)?),
        "-p" | "--port" => first_listener(config).set_port(number(flag, value)?),
        "--max-packet-size" => config.max_packet_size = positive(flag, value)?,
        "--max-connections" => config.max_connections = positive(flag, value)?,
        "--connect-timeout" => config.connect_timeout = Duration::from_secs(positive(flag, value)?),
        "--max-inflight" => config.max_inflight_messages = positive(flag, value)?,
        "--max-queued" => config.max_queued_messages = positive(flag, value)?,
        other => return Err(format!("unknown argument {other:?}")),
    }
    Ok(())
}

/// The address of the first listener (there is always one: `Config::validate` says so).
fn first_listener(config: &mut Config) -> &mut std::net::SocketAddr {
    if config.listeners.is_empty() {
        config
            .listeners
            .push(mqttd::config::Listener::new(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                1883,
            ))));
    }
    &mut config.listeners[0].bind
}

/// Parses an option's value (an address or a number).
fn number<T: FromStr>(option: &str, value: String) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{option}: {value:?} is not valid here"))
}

/// Parses a number that must be at least 1.
fn positive<T: FromStr + PartialOrd + From<u8>>(option: &str, value: String) -> Result<T, String> {
    let parsed: T = number(option, value)?;
    if parsed < T::from(1) {
        return Err(format!("{option} must be at least 1"));
    }
    Ok(parsed)
}

/// Log lines look like `2026-11-25T20:41:20.123Z INFO  [rx:sensor-1] client "sensor-1" …`:
/// the thread name tells which connection and which side (rx/tx) wrote the line.
/// With `--sequence FILE`, a [`Recorder`] stands in front of the console logger and draws
/// the packets into FILE (`src/sequence.rs`).
fn init_logging(verbose: bool, sequence: Option<&Path>) -> std::io::Result<()> {
    // rustls warns about what clients get slightly wrong and does no harm (OpenSSL-based
    // clients such as mosquitto_sub send an IP address as a server name, for one); the
    // broker's own line says why a handshake failed. `RUST_LOG=rustls=debug` shows it all.
    let default_level = if verbose {
        "debug,rustls=info"
    } else {
        "info,rustls=error"
    };
    let console =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .format(|buf, record| {
                mqttd::thread_name::with_current(|thread| {
                    writeln!(
                        buf,
                        "{} {:<5} [{thread}] {}",
                        buf.timestamp_millis(),
                        record.level(),
                        record.args()
                    )
                })
            })
            .build();
    let level = console.filter();
    let installed = match sequence {
        Some(path) => Recorder::create(path, Box::new(console))?.install(level),
        None => log::set_boxed_logger(Box::new(console)).map(|()| log::set_max_level(level)),
    };
    // Only a second logger could make this fail, and main sets one, once.
    installed.map_err(std::io::Error::other)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `mqttd passwd …` is another command sharing the binary, like `mosquitto_passwd` next
    // to `mosquitto`: it edits a password file and exits, and starts no broker.
    if args.first().is_some_and(|first| first == "passwd") {
        return mqttd::passwords::run(&args[1..]);
    }
    // `mqttd decode …` takes bytes apart with the broker's own decoder, and exits.
    if args.first().is_some_and(|first| first == "decode") {
        return mqttd::dissect::run(&args[1..]);
    }
    // `mqttd send …` is a raw-byte client for trying the chapters' cases, and exits.
    if args.first().is_some_and(|first| first == "send") {
        return mqttd::send::run(&args[1..]);
    }
    let args = match parse_args(args.into_iter()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            // Not println!: a closed pipe (`mqttd -h | head -3`) is not worth a panic.
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Usage(message)) => {
            eprintln!("mqttd: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        Err(ArgsError::File(message)) => {
            eprintln!("mqttd: {message}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = init_logging(args.verbose, args.sequence.as_deref()) {
        let file = args.sequence.unwrap_or_default();
        eprintln!("mqttd: --sequence {}: {e}", file.display());
        return ExitCode::from(1);
    }
    for warning in &args.warnings {
        log::warn!("{warning}");
    }
    let config = args.config;
    let caught = signals::catch();
    match Server::start(config.clone()) {
        Ok(server) => {
            signals::watch(caught, server.reloader(), server.stopper());
            server.wait();
            log::info!("mqttd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Signals, as Mosquitto answers them (the `signals` feature): SIGHUP re-reads the password
/// and ACL files, connections staying up; SIGTERM and SIGINT (Ctrl-C) stop the broker
/// cleanly: no new connections, every connection closed (Wills not published), exit 0.
/// The handlers are set before the broker starts listening, so that a signal sent as soon
/// as the listener is up waits for the `signals` thread instead of ending the process.
#[cfg(feature = "signals")]
mod signals {
    use mqttd::{Reloader, Stopper};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    /// Signals caught from now on, waiting for [`watch`].
    pub struct Caught(Option<Signals>);

    pub fn catch() -> Caught {
        match Signals::new([SIGHUP, SIGTERM, SIGINT]) {
            Ok(signals) => Caught(Some(signals)),
            Err(e) => {
                log::warn!("cannot catch signals ({e}): SIGHUP and SIGTERM end the broker");
                Caught(None)
            }
        }
    }

    /// Starts the `signals` thread: SIGHUP reloads the files, SIGTERM or SIGINT stops.
    pub fn watch(caught: Caught, reloader: Reloader, stopper: Stopper) {
        let Some(mut signals) = caught.0 else {
            return;
        };
        let started = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        log::info!("SIGHUP: reloading password_file and acl_file");
                        // A failed reload keeps the old files and logs why.
                        let _ = reloader.reload();
                        continue;
                    }
                    let name = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    log::info!("{name}: stopping");
                    stopper.stop();
                    return;
                }
            });
        if let Err(e) = started {
            log::warn!("cannot start the signals thread ({e}): signals keep their defaults");
        }
    }
}

/// Without the `signals` feature every signal keeps its default action: the broker ends at
/// once (nothing acknowledged is lost by it: mqttd keeps nothing on disk to lose).
#[cfg(not(feature = "signals"))]
mod signals {
    pub struct Caught;

    pub fn catch() -> Caught {
        Caught
    }

    pub fn watch(_caught: Caught, _reloader: mqttd::Reloader, _stopper: mqttd::Stopper) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, ArgsError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn bind(args: &Args) -> std::net::SocketAddr {
        args.config.listeners[0].bind
    }

    #[test]
    fn defaults_to_localhost_1883() {
        let args = parse(&[]).unwrap().unwrap();
        assert_eq!(bind(&args), "127.0.0.1:1883".parse().unwrap());
        assert!(!args.verbose);
    }

    #[test]
    fn reads_every_option() {
        let args = parse(&[
            "--bind",
            "0.0.0.0",
            "-p",
            "1884",
            "-v",
            "--max-packet-size",
            "2048",
            "--max-connections",
            "50",
            "--connect-timeout",
            "3",
            "--max-inflight",
            "5",
            "--max-queued",
            "7",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(bind(&args), "0.0.0.0:1884".parse().unwrap());
        assert!(args.verbose);
        let config = args.config;
        assert_eq!(config.max_packet_size, 2048);
        assert_eq!(config.max_connections, 50);
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.max_inflight_messages, 5);
        assert_eq!(config.max_queued_messages, 7);
        assert_eq!(bind(&parse(&["--port", "0"]).unwrap().unwrap()).port(), 0);
    }

    #[test]
    fn help_and_errors() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--bind"]).is_err());
        assert!(parse(&["--max-queued", "0"]).is_err());
        assert!(parse(&["--max-inflight", "65536"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
        assert!(parse(&["--sequence"]).is_err());
    }

    #[test]
    fn reads_sequence_before_or_after_the_configuration_file() {
        let dir = std::env::temp_dir().join(format!("mqttd-seq-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("mqttd.conf");
        std::fs::write(&conf, "listener 1884\n").unwrap();
        let conf = conf.to_str().unwrap();
        for args in [
            ["-c", conf, "--sequence", "run.mmd"],
            ["--sequence", "run.mmd", "-c", conf],
        ] {
            let args = parse(&args).unwrap().unwrap();
            assert_eq!(args.sequence, Some(PathBuf::from("run.mmd")));
            assert_eq!(bind(&args).port(), 1884);
        }
        assert_eq!(parse(&[]).unwrap().unwrap().sequence, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
