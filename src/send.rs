//! `mqttd send`: a raw-byte MQTT client, for trying the walkthrough's cases by hand.
//!
//! A learner who wants to see what the broker does with *these* bytes (five Remaining
//! Length bytes, a SUBSCRIBE with the wrong flags, a CONNECT of level 5) needs a client that
//! sends exactly what it is told and shows exactly what comes back. Real clients cannot be
//! made to break the rules, so this one does nothing else:
//!
//! ```text
//!   mqttd send [--connect ID] HOST:PORT HEX...
//!
//!   TCP connect ──► CONNECT (only with --connect) ──► read one packet: the CONNACK
//!               ──► each HEX argument, one write each (--wait MS between them, reading)
//!               ──► read until the broker closes, or --timeout passes ──► the verdict
//! ```
//!
//! Everything that comes back is printed by `mqttd decode`'s dissector
//! ([`crate::dissect`]): the same tables, read by the codec's own readers, so there is no
//! second parser here. Every wait is a socket read timeout bounded by `--timeout`, so the
//! command always ends. It speaks plain TCP only: no TLS, no WebSocket.
//!
//! It is a client, no part of the running broker: it sits on a layer of its own above
//! `dissect` (`tests/layers.rs`) and knows the codec (to build its CONNECT) and the
//! dissector, nothing of the broker.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::codec::{Connect, Packet, ProtocolVersion};
use crate::dissect::{dissect, parse_hex, render, Outcome};

const USAGE: &str = "\
mqttd send — a raw-byte MQTT client: send bytes to a broker and see what comes back

Usage: mqttd send [--connect ID] [--wait MS] [--timeout S] HOST:PORT [HEX...]

Connects to HOST:PORT over plain TCP only (no TLS, no WebSocket), then sends:
  --connect ID   first, an MQTT 3.1.1 CONNECT with Client Identifier ID, Clean Session 1
                 and Keep Alive 60, and shows the CONNACK that answers it
  HEX...         then each argument as one write, in order, in the hex `mqttd decode`
                 reads (quote an argument with spaces: '30 04 00 02 c0 af')
  --wait MS      between two writes, wait MS milliseconds, showing what comes back
  --timeout S    the longest any wait for the broker lasts, in seconds (default 2)

With neither --connect nor HEX it connects, sends nothing, and waits.

What the broker sends back is taken apart by `mqttd decode`'s dissector, one table per
packet. Last, it says whether the broker closed the connection and how long after the
last send, or that the connection was still open after the timeout (and closes it).

Exit status: 0 the exchange ran (whatever the broker answered), 1 no connection or a
socket error, 2 bad usage or hex.";

/// The Keep Alive of the `--connect` CONNECT, as `mosquitto_pub` sends it.
const KEEP_ALIVE: u16 = 60;

/// The largest string a CONNECT can carry: its length is a two-byte integer (§1.5.3).
const MAX_STRING: usize = 65_535;

/// What the command line asked for.
#[derive(Debug, PartialEq)]
struct Options {
    address: String,
    /// `--connect ID`: the Client Identifier of a CONNECT sent first.
    connect: Option<String>,
    /// The bytes of each HEX argument: one write each.
    sends: Vec<Vec<u8>>,
    /// `--wait MS`: the pause between two writes.
    wait: Option<Duration>,
    /// `--timeout S`: the bound on every wait.
    timeout: Duration,
}

/// How a wait for the broker ended.
#[derive(Debug)]
enum End {
    /// The time ran out with the connection still open.
    Open,
    /// The broker closed the connection (end of stream) at this moment.
    Closed(Instant),
    /// The broker reset the connection (it closed with bytes of ours unread).
    Reset(Instant),
    /// A write failed because the broker had closed the connection already.
    WriteFailed(io::Error),
}

/// How much to read before a wait may end early.
#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// One whole packet: the CONNACK after a CONNECT.
    OnePacket,
    /// Everything until the broker closes or the time is up.
    Deadline,
}

/// Runs `mqttd send` with the arguments after `send`.
pub fn run(args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            // Not println!: a closed pipe (`mqttd send -h | head`) is not worth a panic.
            let _ = writeln!(io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("mqttd send: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match exchange(&options, &mut io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqttd send: {}: {e}", options.address);
            ExitCode::FAILURE
        }
    }
}

/// Reads the command line; `Ok(None)` asks for the help text. Options may stand anywhere;
/// the first other argument is the address, the rest are the bytes to send.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut words = Vec::new();
    let (mut connect, mut wait, mut timeout) = (None, None, Duration::from_secs(2));
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--connect" => connect = Some(client_id(value()?)?),
            "--wait" => wait = Some(Duration::from_millis(number(arg, value()?)?)),
            "--timeout" => timeout = seconds(value()?)?,
            option if option.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => words.push(arg),
        }
    }
    let Some((address, hex)) = words.split_first() else {
        return Err("which broker? give HOST:PORT".into());
    };
    let sends = hex.iter().map(|h| bytes(h)).collect::<Result<_, _>>()?;
    Ok(Some(Options {
        address: address.to_string(),
        connect,
        sends,
        wait,
        timeout,
    }))
}

fn client_id(id: &str) -> Result<String, String> {
    if id.len() > MAX_STRING {
        return Err(format!(
            "--connect: a Client Identifier is at most {MAX_STRING} bytes"
        ));
    }
    Ok(id.to_owned())
}

fn number(option: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{option}: {value:?} is not a whole number"))
}

/// `--timeout S`: seconds, decimals allowed, more than 0.
fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("--timeout: {value:?} is not a number of seconds"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(format!("--timeout: {value:?} must be more than 0 seconds")),
    }
}

/// One HEX argument's bytes, read as `mqttd decode` reads hex.
fn bytes(hex: &str) -> Result<Vec<u8>, String> {
    let bytes = parse_hex(hex).map_err(|e| format!("{hex:?}: {e}"))?;
    if bytes.is_empty() {
        return Err(format!("{hex:?} has no bytes to send"));
    }
    Ok(bytes)
}

/// The whole run: connect, send, read, show, and say how it ended.
fn exchange(options: &Options, out: &mut impl Write) -> io::Result<()> {
    let mut stream = open(&options.address, options.timeout)?;
    let _ = writeln!(out, "connected to {} over plain TCP", stream.peer_addr()?);
    let mut last_send = Instant::now();
    if let Some(id) = &options.connect {
        let end = match connect_first(&mut stream, id, options.timeout, out)? {
            Ok((at, end)) => {
                last_send = at;
                end
            }
            Err(end) => end,
        };
        if !matches!(end, End::Open) {
            return finish(end, last_send, options, 0, out);
        }
    }
    for (number, bytes) in options.sends.iter().enumerate() {
        last_send = match send(&mut stream, bytes, "", out)? {
            Ok(at) => at,
            Err(end) => return finish(end, last_send, options, number, out),
        };
        let Some(wait) = options.wait.filter(|_| number + 1 < options.sends.len()) else {
            continue;
        };
        let until = last_send + wait.min(options.timeout);
        let end = receive(&mut stream, until, Until::Deadline, out)?;
        if !matches!(end, End::Open) {
            return finish(end, last_send, options, number + 1, out);
        }
    }
    let until = last_send + options.timeout;
    let end = receive(&mut stream, until, Until::Deadline, out)?;
    finish(end, last_send, options, options.sends.len(), out)
}

/// `--connect ID`: sends the CONNECT and reads one packet, the CONNACK. Returns when the
/// CONNECT went out and how the wait ended, or (inner `Err`) that the write found the
/// connection closed.
fn connect_first(
    stream: &mut TcpStream,
    id: &str,
    timeout: Duration,
    out: &mut impl Write,
) -> io::Result<Result<(Instant, End), End>> {
    let mut connect = Vec::new();
    Packet::Connect(Box::new(connect_packet(id))).encode(&mut connect);
    let what = format!("CONNECT as {id:?}, Clean Session 1, Keep Alive {KEEP_ALIVE}");
    let sent = match send(stream, &connect, &what, out)? {
        Ok(at) => at,
        Err(end) => return Ok(Err(end)),
    };
    let end = receive(stream, sent + timeout, Until::OnePacket, out)?;
    Ok(Ok((sent, end)))
}

/// A TCP connection to `address`, trying each address it resolves to, each try bounded.
fn open(address: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(ErrorKind::NotFound, "the name resolves to no address");
    for candidate in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => {
                // Each write goes out as soon as it is made: the broker sees the sends as
                // separate arrivals, as the command line separates them.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The CONNECT of `--connect ID`, built by the codec's own encoder.
fn connect_packet(client_id: &str) -> Connect {
    Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_session: true,
        keep_alive: KEEP_ALIVE,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
    }
}

/// Writes `bytes` in one go and says so; returns when they were written, or (inner
/// `Err`) that the broker had closed the connection already.
fn send(
    stream: &mut TcpStream,
    bytes: &[u8],
    what: &str,
    out: &mut impl Write,
) -> io::Result<Result<Instant, End>> {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" ({what})")
    };
    let _ = writeln!(
        out,
        "-> sent {} byte(s){what}: {}",
        bytes.len(),
        hex.join(" ")
    );
    match stream.write_all(bytes) {
        Ok(()) => Ok(Ok(Instant::now())),
        Err(e) if closed_by_peer(&e) => Ok(Err(End::WriteFailed(e))),
        Err(e) => Err(e),
    }
}

/// Whether a socket error means the peer had closed the connection.
fn closed_by_peer(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Reads what the broker sends until `deadline` (or, with [`Until::OnePacket`], until one
/// whole packet has come), then prints it taken apart. Returns how the wait ended.
fn receive(
    stream: &mut TcpStream,
    deadline: Instant,
    until: Until,
    out: &mut impl Write,
) -> io::Result<End> {
    let mut received = Vec::new();
    let end = read_until(stream, deadline, until, &mut received)?;
    if !received.is_empty() {
        // Offsets in the tables count from the first byte that came back in this wait. A
        // packet split across two waits would show as cut short: the broker writes each
        // packet whole, so in practice it does not happen.
        let packets = dissect(&received);
        let _ = writeln!(out, "<- received {} byte(s):", received.len());
        let _ = write!(out, "{}", render(&packets, received.len()));
    }
    Ok(end)
}

/// The reading loop of [`receive`]: every read's timeout is the time left.
fn read_until(
    stream: &mut TcpStream,
    deadline: Instant,
    until: Until,
    received: &mut Vec<u8>,
) -> io::Result<End> {
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(End::Open);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(End::Closed(Instant::now())),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(End::Open)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if closed_by_peer(&e) => return Ok(End::Reset(Instant::now())),
            Err(e) => return Err(e),
        }
        if until == Until::OnePacket && has_whole_packet(received) {
            return Ok(End::Open);
        }
    }
}

/// Whether `bytes` start with a whole packet (or one the dissector already refuses).
fn has_whole_packet(bytes: &[u8]) -> bool {
    dissect(bytes)
        .first()
        .is_some_and(|packet| !matches!(packet.outcome, Outcome::Incomplete { .. }))
}

/// The last line: how the connection ended, and what was not sent because of it.
fn finish(
    end: End,
    last_send: Instant,
    options: &Options,
    sent: usize,
    out: &mut impl Write,
) -> io::Result<()> {
    let after = |at: Instant| at.saturating_duration_since(last_send).as_secs_f64();
    // Nothing sent at all: the clock started when the TCP connection was made.
    let since = match options.connect.is_none() && options.sends.is_empty() {
        true => "the TCP connect",
        false => "the last send",
    };
    let _ = match end {
        End::Open => writeln!(
            out,
            "still open after {} s; closing",
            options.timeout.as_secs_f64()
        ),
        End::Closed(at) => writeln!(
            out,
            "the broker closed the connection {:.2} s after {since}",
            after(at)
        ),
        End::Reset(at) => writeln!(
            out,
            "the broker closed the connection {:.2} s after {since} (reset: it left \
             bytes we sent unread)",
            after(at)
        ),
        End::WriteFailed(e) => writeln!(
            out,
            "the broker had closed the connection already: the write failed ({e})"
        ),
    };
    let unsent = options.sends.len() - sent;
    if unsent > 0 {
        let _ = writeln!(
            out,
            "({unsent} argument(s) not sent: the connection was closed)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_args(&args)
    }

    #[test]
    fn reads_the_address_the_sends_and_the_options_anywhere() {
        let options = parse(&[
            "--connect",
            "raw",
            "127.0.0.1:1883",
            "c0 00",
            "--wait",
            "100",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(options.address, "127.0.0.1:1883");
        assert_eq!(options.connect.as_deref(), Some("raw"));
        assert_eq!(options.sends, vec![vec![0xc0, 0x00]]);
        assert_eq!(options.wait, Some(Duration::from_millis(100)));
        assert_eq!(options.timeout, Duration::from_secs(2));
        let options = parse(&["h:1", "c000", "e0 00", "--timeout", "0.5"])
            .unwrap()
            .unwrap();
        assert_eq!(options.sends.len(), 2);
        assert_eq!(options.timeout, Duration::from_millis(500));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&[]).is_err());
        assert!(
            parse(&["h:1"]).unwrap().unwrap().sends.is_empty(),
            "connect and wait"
        );
        assert!(parse(&["h:1", "0g"]).is_err());
        assert!(parse(&["h:1", ""]).is_err());
        assert!(parse(&["h:1", "c0", "--timeout", "0"]).is_err());
        assert!(parse(&["h:1", "c0", "--timeout", "-1"]).is_err());
        assert!(parse(&["h:1", "c0", "--wait"]).is_err());
        assert!(parse(&["h:1", "c0", "--frobnicate"]).is_err());
    }
}
