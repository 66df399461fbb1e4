//! Fault injection for tests (only with the `fault-injection` feature, which the
//! integration tests turn on and `cargo run` never does).
//!
//! A bug that panics in one client's thread must not take the broker down, leave a lock
//! held, or leave a session half registered. To show that, a test publishes to one of the
//! topics below and the thread that handles it panics on purpose, exactly where a real bug
//! would.

/// A PUBLISH to this topic makes the publisher's reader thread panic while handling it.
pub const PANIC_IN_READER: &str = "$fault/panic/reader";

/// A message on this topic makes each subscriber's writer thread panic while sending it.
pub const PANIC_IN_WRITER: &str = "$fault/panic/writer";

/// Panics if `topic` is the fault topic for `place`.
pub fn inject(topic: &str, place: &str) {
    if topic == place {
        panic!("fault injected on {topic}");
    }
}
