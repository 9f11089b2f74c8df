//! The ring buffer on its own: what a message costs to remember, and what a join costs to read.
//!
//! Run: `cargo bench --bench ring`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use chatd::core::message::sample;
use chatd::core::{ChatMessage, HistoryQuery, Ring, RoomName};
use chatd::layers::history::HistoryCache;

fn ring(c: &mut Criterion) {
    let msg = sample("general", 1, "alice", "hello, world");
    let mut group = c.benchmark_group("ring");
    for capacity in [10usize, 1000] {
        group.bench_with_input(
            BenchmarkId::new("push", capacity),
            &capacity,
            |b, &capacity| {
                let mut ring: Ring<Arc<ChatMessage>> = Ring::new(capacity);
                b.iter(|| ring.push(black_box(msg.clone())));
            },
        );
    }
    // A join's read: the last 10 messages of a full ring of 10, through the history cache.
    let cache = HistoryCache::new(10);
    for seq in 1..=100 {
        cache.insert(sample("general", seq, "alice", "hello, world"));
    }
    let query = HistoryQuery {
        room: RoomName::parse("general").unwrap(),
        upto: 100,
        after: 0,
        limit: 10,
    };
    group.bench_function("join_read_last_10", |b| {
        b.iter(|| black_box(cache.read(black_box(&query))))
    });
    group.bench_function("insert_in_order", |b| {
        let cache = HistoryCache::new(10);
        let mut seq = 0;
        b.iter(|| {
            seq += 1;
            cache.insert(sample("general", seq, "alice", "hello, world"));
        })
    });
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
