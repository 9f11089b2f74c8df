//! The ring buffer on its own: what a message costs to remember, and what a join costs to read.
//!
//! Run: `cargo bench --bench ring`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use chatd::core::message::sample;
use chatd::core::{ChatMessage, Ring, Room, RoomName};

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
    // A join's read: the last 10 messages of a room whose memory holds 10.
    let room = || Room::new(RoomName::parse("general").unwrap(), Arc::default(), 10);
    let full = room();
    for seq in 1..=100 {
        full.commit(sample("general", seq, "alice", "hello, world"));
    }
    group.bench_function("join_read_last_10", |b| {
        b.iter(|| black_box(full.recent(0, black_box(100), 10)))
    });
    // What remembering a message costs where it now happens: in the room's delivery gate, which
    // writes the ring as it delivers (a room without members, so only the gate and the ring).
    group.bench_function("insert_in_order", |b| {
        let room = room();
        let mut seq = 0;
        b.iter(|| {
            seq += 1;
            room.commit(sample("general", seq, "alice", "hello, world"));
        })
    });
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
