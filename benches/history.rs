//! The history a join needs, the last 10 messages of a room: from the ring (memory), from SQLite
//! and from PostgreSQL. The seed claims about 1000x for the ring; this measures it.
//!
//! Each store holds 10,000 messages in the room (and as many in another room), written through
//! chatd's own `Store::append`. PostgreSQL is a throwaway server on loopback, started here; without
//! PostgreSQL installed that part is skipped with a note.
//!
//! Run: `cargo bench --bench history`

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use chatd::backends::Row;
use chatd::core::{HistoryQuery, Room, RoomName};

const MESSAGES: u64 = 10_000;

fn history(c: &mut Criterion) {
    let rt = support::runtime();
    let room = RoomName::parse("general").unwrap();
    let query = HistoryQuery {
        room: room.clone(),
        upto: MESSAGES,
        after: 0,
        limit: 10,
    };
    let mut group = c.benchmark_group("join_history_last_10");

    let memory = Room::new(room.clone(), Default::default(), 10);
    for seq in 1..=MESSAGES {
        memory.commit(support::message("general", seq));
    }
    group.bench_function("ring", |b| {
        b.iter(|| black_box(memory.recent(0, black_box(MESSAGES), 10)))
    });

    let benches = rt.block_on(support::stores(false));
    for bench in &benches {
        rt.block_on(async {
            for room in ["general", "other"] {
                let all: Vec<_> = (1..=MESSAGES)
                    .map(|s| Row::Message(support::message(room, s)))
                    .collect();
                for batch in all.chunks(1000) {
                    bench.store.append(batch).await.expect("fill the store");
                }
            }
        });
        group.bench_function(bench.name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let last = bench.store.history(black_box(&query)).await.expect("read");
                        assert_eq!(last.messages.len(), 10);
                        black_box(last);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = history
}
criterion_main!(benches);
