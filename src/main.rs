//! The `mqttd` command: parse the arguments, set up logging, start the server, wait.
//! Everything else lives in the library (`src/lib.rs`).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use mqttd::{Config, Server};

const USAGE: &str = "\
mqttd — an MQTT 3.1.1 broker to read alongside the specification

Usage: mqttd [--bind ADDR] [-p|--port N] [-v|--verbose]

Options:
  --bind ADDR     IP address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  -p, --port N    TCP port to listen on (default 1883; 0 lets the OS pick one)
  -v, --verbose   log every packet in and out (same as RUST_LOG=debug when RUST_LOG is unset)
  -h, --help      print this help

Logging: RUST_LOG=info (default), debug (one line per packet) or trace (plus hex dumps).
Stop it with Ctrl-C or SIGTERM.";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    bind: IpAddr,
    port: u16,
    verbose: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let defaults = Config::default().bind;
    let mut parsed = Args {
        bind: defaults.ip(),
        port: defaults.port(),
        verbose: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-v" | "--verbose" => parsed.verbose = true,
            "--bind" => {
                let value = args.next().ok_or("--bind needs an IP address")?;
                parsed.bind = value
                    .parse()
                    .map_err(|_| format!("--bind: {value:?} is not an IP address"))?;
            }
            "-p" | "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                parsed.port = value
                    .parse()
                    .map_err(|_| format!("--port: {value:?} is not a port number"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

/// Log lines look like `2026-11-25T20:41:20.123Z INFO  [rx:sensor-1] client "sensor-1" …`:
/// the thread name tells which connection and which side (rx/tx) wrote the line.
fn init_logging(verbose: bool) {
    let default_level = if verbose { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format(|buf, record| {
            let thread = std::thread::current();
            writeln!(
                buf,
                "{} {:<5} [{}] {}",
                buf.timestamp_millis(),
                record.level(),
                thread.name().unwrap_or("?"),
                record.args()
            )
        })
        .init();
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("mqttd: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.verbose);
    let config = Config {
        bind: SocketAddr::new(args.bind, args.port),
        ..Config::default()
    };
    // Ctrl-C and SIGTERM keep their default action, ending the process at once: the broker
    // keeps nothing on disk, so there is nothing to save, and it stops immediately.
    match Server::start(config.clone()) {
        Ok(server) => {
            server.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("cannot listen on {}: {e}", config.bind);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_to_localhost_1883() {
        let args = parse(&[]).unwrap().unwrap();
        assert_eq!(args.bind, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(args.port, 1883);
        assert!(!args.verbose);
    }

    #[test]
    fn reads_every_option() {
        let args = parse(&["--bind", "0.0.0.0", "-p", "1884", "-v"])
            .unwrap()
            .unwrap();
        assert_eq!(
            args,
            Args {
                bind: IpAddr::from([0, 0, 0, 0]),
                port: 1884,
                verbose: true
            }
        );
        assert_eq!(parse(&["--port", "0"]).unwrap().unwrap().port, 0);
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--bind"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
    }
}
