//! What the publisher thread and the subscriber thread share, and nothing else.
//!
//! The two threads never lock anything: every shared value is an atomic with exactly one
//! writer.
//!
//! | field              | written by                    | read by                         |
//! |--------------------|-------------------------------|---------------------------------|
//! | `seen`             | subscriber thread, per message| publisher thread, for the window|
//! | `sent`             | publisher thread, once, at the end of sending | subscriber thread, to know when it has everything |
//! | `publishers_done`  | publisher thread, once        | subscriber thread               |
//! | `publisher_parked` | publisher thread before it sleeps; subscriber thread clears it when it wakes it | both |
//! | `abort`            | whichever thread fails first  | both, every loop turn           |

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use mio::Waker;

use crate::fail::Fail;

#[derive(Debug)]
pub struct Shared {
    /// Time zero of the stamps: both threads measure from the same instant.
    pub epoch: Instant,
    /// After this instant, any loop still running fails the run.
    pub hard_deadline: Instant,
    publishers: usize,
    /// `seen[sub * publishers + publisher]`: one past the highest sequence number that
    /// subscriber `sub` has received from `publisher`.
    seen: Vec<AtomicU32>,
    /// How many messages each publisher sent in all; valid once `publishers_done` is set.
    sent: Vec<AtomicU32>,
    publishers_done: AtomicBool,
    /// The publisher thread is about to sleep in `poll` because every window is full.
    publisher_parked: AtomicBool,
    /// Wakes the publisher thread's `poll` from the subscriber thread.
    waker: Waker,
    abort: AtomicBool,
}

impl Shared {
    /// Starts the clock: `epoch` is now.
    pub fn new(
        publishers: usize,
        subscribers: usize,
        waker: Waker,
        hard_deadline: Instant,
    ) -> Shared {
        Shared {
            epoch: Instant::now(),
            hard_deadline,
            publishers,
            seen: (0..publishers * subscribers)
                .map(|_| AtomicU32::new(0))
                .collect(),
            sent: (0..publishers).map(|_| AtomicU32::new(0)).collect(),
            publishers_done: AtomicBool::new(false),
            publisher_parked: AtomicBool::new(false),
            waker,
            abort: AtomicBool::new(false),
        }
    }

    /// Nanoseconds since `epoch`: the clock of the stamps.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn seen_slot(&self, subscriber: usize, publisher: usize) -> usize {
        subscriber * self.publishers + publisher
    }

    pub fn seen(&self, slot: usize) -> u32 {
        self.seen[slot].load(Ordering::Acquire)
    }

    pub fn set_seen(&self, slot: usize, next: u32) {
        self.seen[slot].store(next, Ordering::Release);
    }

    /// Called once by the publisher thread when sending stops.
    pub fn finish_sending(&self, totals: impl Iterator<Item = u32>) {
        for (slot, total) in self.sent.iter().zip(totals) {
            slot.store(total, Ordering::Release);
        }
        self.publishers_done.store(true, Ordering::Release);
    }

    pub fn publishers_done(&self) -> bool {
        self.publishers_done.load(Ordering::Acquire)
    }

    pub fn sent(&self, publisher: usize) -> u32 {
        self.sent[publisher].load(Ordering::Acquire)
    }

    /// The publisher thread says "I am going to sleep". It must look at the windows once
    /// more *after* this: either it sees the subscriber's latest progress, or the
    /// subscriber sees this flag and wakes it. (`SeqCst` on both sides makes that "either".)
    pub fn park_publishers(&self) {
        self.publisher_parked.store(true, Ordering::SeqCst);
    }

    pub fn unpark_publishers(&self) {
        self.publisher_parked.store(false, Ordering::SeqCst);
    }

    /// Called by the subscriber thread after it has recorded a batch of messages: one
    /// system call per batch, and only when the publisher thread is actually asleep.
    pub fn wake_publishers(&self) -> Result<(), Fail> {
        if self.publisher_parked.swap(false, Ordering::SeqCst) {
            self.waker
                .wake()
                .map_err(Fail::io("wake the publisher thread"))?;
        }
        Ok(())
    }

    /// Tells the other thread to stop: this one failed.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// Every loop turn of both threads: stop if the other thread failed or time is up.
    pub fn check(&self, now: Instant, who: &str) -> Result<(), Fail> {
        if self.abort.load(Ordering::Acquire) {
            return Err(Fail::Aborted);
        }
        if now >= self.hard_deadline {
            return Err(Fail::Deadline(format!("{who} still running")));
        }
        Ok(())
    }
}
