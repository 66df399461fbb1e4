//! What can go wrong in a run, and the exit code each kind of failure gives.
//!
//! A load generator that prints a number after something went wrong is worse than one that
//! prints nothing: every failure ends the run with a message on stderr and a non-zero exit
//! code, so `bench/compare.sh` (or a person) can tell a broken run from a slow one.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Fail {
    /// The command line makes no sense (exit code 2).
    Usage(String),
    /// A socket call failed: connection refused or reset, too many open files… (exit 3).
    Io { context: String, error: io::Error },
    /// The broker sent something MQTT 3.1.1 does not allow, something we did not ask for,
    /// or closed a connection in the middle of a run (exit 4).
    Protocol(String),
    /// The run was still going at its hard deadline, `--secs` + 30 s (exit 5).
    Deadline(String),
    /// This thread stopped because the other one failed; the other's error is the one to
    /// report (exit 6, only seen if both threads somehow report this).
    Aborted,
    /// A thread of the load generator panicked: a bug here, not in the broker (exit 7).
    Panic(String),
}

impl Fail {
    /// Wraps an `io::Error` with what we were doing, for `map_err`.
    ///
    /// ```ignore
    /// stream.set_nodelay(true).map_err(Fail::io("set TCP_NODELAY"))?;
    /// ```
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Fail {
        let context = context.into();
        move |error| Fail::Io { context, error }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Fail::Usage(_) => 2,
            Fail::Io { .. } => 3,
            Fail::Protocol(_) => 4,
            Fail::Deadline(_) => 5,
            Fail::Aborted => 6,
            Fail::Panic(_) => 7,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Usage(message) => write!(f, "usage: {message}"),
            Fail::Io { context, error } => write!(f, "{context}: {error}"),
            Fail::Protocol(message) => write!(f, "protocol error: {message}"),
            Fail::Deadline(message) => write!(f, "hard deadline passed: {message}"),
            Fail::Aborted => write!(f, "stopped because another thread failed"),
            Fail::Panic(message) => write!(f, "a load generator thread panicked: {message}"),
        }
    }
}
