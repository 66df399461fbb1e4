//! One warning per second, not one per client: for refusals that come in floods.
//!
//! When the broker is full (`max_connections`, or the machine's limit on threads or memory
//! maps), a reconnect storm brings thousands of clients in a second, and a warning for
//! each would bury everything else in the log and cost a write per refused client, just
//! when the broker is busiest. A [`Throttle`] lets one line through per interval and
//! counts the rest, and the next line it lets through says how many were left out.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often a throttled warning may appear.
pub const EVERY: Duration = Duration::from_secs(1);

/// A rate limit for one kind of log line, shared by every thread that may log it.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the last line was let through.
    last: Option<Instant>,
    /// Lines held back since then.
    held_back: u64,
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            state: Mutex::new(State {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` if so, `n` being how many were
    /// held back since the last one; `None` if this one is to be held back (and counted).
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        match state.last {
            Some(last) if now.saturating_duration_since(last) < EVERY => {
                state.held_back += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.held_back))
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

/// The end of a throttled line: how many like it were left out, if any.
pub fn held_back(n: u64) -> String {
    match n {
        0 => String::new(),
        1 => " (and 1 more like it since the last such line, not logged)".to_owned(),
        n => format!(" (and {n} more like it since the last such line, not logged)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_next_says_how_many_were_held_back() {
        let throttle = Throttle::new();
        let start = Instant::now();
        assert_eq!(throttle.admit(start), Some(0));
        for ms in [1, 10, 500, 999] {
            assert_eq!(throttle.admit(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.admit(start + EVERY), Some(4));
        assert_eq!(throttle.admit(start + EVERY * 3), Some(0));
    }

    #[test]
    fn the_count_reads_as_a_sentence() {
        assert_eq!(held_back(0), "");
        assert!(held_back(1).contains("1 more like it"));
        assert!(held_back(250).contains("250 more like it"));
    }
}
