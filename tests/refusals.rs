//! A full broker in a reconnect storm: every client beyond `max_connections` is closed at
//! once, and the log gets one warning a second, not one per client (src/throttle.rs).
//! This file is its own test binary so that its logger sees only its own broker.

mod common;

use std::sync::Mutex;
use std::time::Instant;

use common::*;
use log::{Log, Metadata, Record};
use mqttd::Config;

/// Every line logged in this test binary.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        LOGGED.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

#[test]
fn a_storm_over_max_connections_is_refused_with_one_warning_a_second() {
    log::set_boxed_logger(Box::new(Capture)).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Warn);
    let broker = start_broker_with(Config {
        max_connections: 2,
        ..Config::default()
    });
    let addr = broker.local_addr();
    let _inside: Vec<Raw> = (0..2)
        .map(|n| Raw::connected(addr, &format!("inside-{n}")))
        .collect();
    let started = Instant::now();
    const STORM: usize = 40;
    for _ in 0..STORM {
        let mut refused = Raw::tcp(addr);
        assert_eq!(refused.closed(), [], "closed at once, without a CONNACK");
    }
    let seconds = started.elapsed().as_secs();
    let warnings: Vec<String> = LOGGED
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.starts_with("refusing connection from"))
        .cloned()
        .collect();
    assert!(!warnings.is_empty(), "the refusal is logged");
    assert!(
        warnings.len() as u64 <= 1 + seconds,
        "at most one warning a second, {} in {seconds} s: {warnings:#?}",
        warnings.len()
    );
    assert!(
        warnings[0].contains("2 connections are open"),
        "{}",
        warnings[0]
    );
}
