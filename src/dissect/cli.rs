//! The `mqttd decode` command: read the input, take it apart, print the tables.

use std::io::{Read, Write};
use std::process::ExitCode;

use super::{dissect, parse_hex, render, Outcome};

const USAGE: &str = "\
mqttd decode — take MQTT bytes apart the way the specification draws them

Usage: mqttd decode HEX...          hex bytes, spaces optional (10 0c 00 04 ... or 100c0004)
       mqttd decode 'LOG LINE'...   lines of a RUST_LOG=trace log: the bytes between the
                                    brackets of `<- [..]` and `-> [..]` are read
       mqttd decode --file FILE     raw bytes from a file (a capture of one direction)
       mqttd decode                 hex or log lines from standard input

Each packet is printed as a table: offset, bytes, field, value and the section or figure
of MQTT 3.1.1 the field comes from. Several packets are taken apart one after another; the
first one the broker would refuse ends the run, with the offset where decoding stopped and
the rule it breaks, as the broker logs it.

Exit status: 0 every packet decoded, 1 a packet refused or cut short, 2 bad usage or hex.";

/// Runs `mqttd decode` with the arguments after `decode`.
pub fn run(args: &[String]) -> ExitCode {
    let input = match read_input(args) {
        Ok(Some(input)) => input,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("mqttd decode: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if input.is_empty() {
        eprintln!("mqttd decode: no bytes to decode");
        return ExitCode::from(2);
    }
    let packets = dissect(&input);
    // Not print!: a closed pipe (`mqttd decode … | head`) is not worth a panic.
    let _ = write!(std::io::stdout(), "{}", render(&packets, input.len()));
    let all_decoded = packets
        .iter()
        .all(|p| matches!(p.outcome, Outcome::Decoded(_)));
    let bug = packets
        .iter()
        .any(|p| matches!(p.outcome, Outcome::Disagreement { .. }));
    match (bug, all_decoded) {
        (true, _) => ExitCode::from(3),
        (false, true) => ExitCode::SUCCESS,
        (false, false) => ExitCode::FAILURE,
    }
}

/// The bytes the arguments name; `Ok(None)` asks for the help text.
fn read_input(args: &[String]) -> Result<Option<Vec<u8>>, String> {
    match args {
        [flag] if flag == "-h" || flag == "--help" => Ok(None),
        [flag, path] if flag == "--file" => std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("cannot read {path}: {e}")),
        [flag, ..] if flag == "--file" => Err("--file takes one file name".into()),
        [] => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            parse_hex(&text).map(Some)
        }
        // Joined with spaces, so that a log line the shell cut into words is whole again.
        words => parse_hex(&words.join(" ")).map(Some),
    }
}
