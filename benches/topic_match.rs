//! Micro-benchmarks of topic matching: how long routing one PUBLISH takes to find its
//! subscribers among 10 000 and 100 000 subscriptions.
//!
//! ```console
//! cargo bench --bench topic_match
//! ```
//!
//! The subscriptions look like a real deployment: `site/<s>/device/<d>/<metric>` for exact
//! subscribers, plus a few wildcard ones (`site/<s>/#`, `site/+/device/<d>/+`, `#`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
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

criterion_group!(benches, matching);
criterion_main!(benches);
