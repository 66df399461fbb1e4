//! Micro-benchmarks of topic matching: how long routing one PUBLISH takes to find its
//! subscribers among 10 000 and 100 000 subscriptions.
//!
//! ```console
//! cargo bench --bench topic_match
//! ```
//!
//! The subscriptions look like a real deployment: `site/<s>/device/<d>/<metric>` for exact
//! subscribers, plus a few wildcard ones (`site/<s>/#`, `site/+/device/<d>/+`, `#`).
//!
//! `acl/may_read` is the check an `acl_file` adds to every delivery: one client's eight
//! entries (two of them `deny`, three from patterns) against one topic name.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mqttd::acl::{Acl, Who};
use mqttd::topic::SubscriptionTrie;

const METRICS: [&str; 5] = ["temp", "humidity", "power", "door", "battery"];

fn build(count: usize) -> SubscriptionTrie<u64, u8> {
    let mut trie = SubscriptionTrie::new();
    let sites = 100;
    let mut key = 0u64;
    for i in 0..count {
        let filter = format!(
            "site/{}/device/{}/{}",
            i % sites,
            i / sites,
            METRICS[i % METRICS.len()]
        );
        trie.insert(&filter, key, 0);
        key += 1;
    }
    for s in 0..sites {
        trie.insert(&format!("site/{s}/#"), key, 0);
        key += 1;
    }
    for d in 0..100 {
        trie.insert(&format!("site/+/device/{d}/+"), key, 0);
        key += 1;
    }
    trie.insert("#", key, 0);
    trie
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    for count in [10_000, 100_000] {
        let trie = build(count);
        // A topic with one exact subscriber plus the wildcard ones.
        let hit = "site/7/device/42/temp";
        let miss = "other/7/device/42/temp";
        group.bench_function(format!("{count}/hit"), |b| {
            b.iter(|| {
                let mut found = 0;
                trie.for_each_match(black_box(hit), |_, _| found += 1);
                black_box(found)
            })
        });
        group.bench_function(format!("{count}/miss"), |b| {
            b.iter(|| {
                let mut found = 0;
                trie.for_each_match(black_box(miss), |_, _| found += 1);
                black_box(found)
            })
        });
    }
    group.finish();
}

/// A user block and some patterns, as a small deployment would write them.
const ACL_FILE: &str = "\
topic read public/#
user alice
topic readwrite site/+/device/#
topic deny site/+/device/+/door
topic read news/+/today
topic write cmd/+/set
pattern readwrite clients/%c/#
pattern read users/%u/inbox
pattern deny users/%u/inbox/private
";

fn acl_checks(c: &mut Criterion) {
    let acl = Acl::parse(ACL_FILE, "bench").expect("a valid file");
    let who = Who {
        client_id: "alice-phone",
        username: Some("alice"),
    };
    let client = acl.for_client(&who);
    let mut group = c.benchmark_group("acl");
    for (label, topic) in [
        ("granted", "site/7/device/42/temp"),
        ("denied", "site/7/device/42/door"),
        ("unmatched", "other/7/device/42/temp"),
    ] {
        group.bench_function(format!("may_read/{label}"), |b| {
            b.iter(|| client.may_read(black_box(topic)))
        });
    }
    group.finish();
}

criterion_group!(benches, matching, acl_checks);
criterion_main!(benches);
