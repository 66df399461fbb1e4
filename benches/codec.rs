//! Micro-benchmarks of the codec: decoding and encoding PUBLISH, the packet every message
//! costs twice (once in from the publisher, once out per subscriber).
//!
//! ```console
//! cargo bench --bench codec
//! ```

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mqttd::codec::{read_frame, Packet, Publish, QoS};

fn publish(payload_len: usize, qos: QoS) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from("sensors/building-7/floor-3/temperature"),
        packet_id: (qos != QoS::AtMostOnce).then_some(42),
        payload: Arc::from(vec![0x5A; payload_len]),
    })
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    for (name, payload_len, qos) in [
        ("qos0-16B", 16, QoS::AtMostOnce),
        ("qos1-256B", 256, QoS::AtLeastOnce),
        ("qos0-4KiB", 4096, QoS::AtMostOnce),
    ] {
        let packet = publish(payload_len, qos);
        let bytes = packet.to_bytes();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let mut input: &[u8] = black_box(&bytes);
                let frame = read_frame(&mut input, usize::MAX).unwrap();
                black_box(frame.decode().unwrap())
            })
        });
        let mut out = Vec::with_capacity(bytes.len());
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&packet).encode(&mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
