//! Write throughput into each store, through chatd's writer, in both durability modes.
//!
//! * `write_behind` (`durability = "async"`): 5,000 messages are queued as fast as a sender can
//!   and the time runs until the last one is committed. Batches form by themselves (up to 500).
//! * `write_ahead_1` (`durability = "sync"`, one sender): each message waits for its own commit
//!   before the next is sent: one commit per message, the worst case.
//! * `write_ahead_32` (`"sync"`, 32 concurrent senders): each waits for its commit, but messages
//!   that arrive together share a batch ("group commit").
//!
//! SQLite runs with `synchronous = NORMAL` for write-behind and `FULL` for write-ahead, as chatd
//! does. PostgreSQL is a throwaway loopback server with `fsync=off` (the test harness's), so its
//! figures show protocol and batching costs, not disk syncs; see docs/BENCHMARKS.md.
//!
//! Run: `cargo bench --bench persist`

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;

use chatd::backends::{Background, Writer, WriterOptions};
use chatd::core::Stats;

const BEHIND: u64 = 5_000;
const SENDERS: u64 = 32;

/// The next unused seq: every message written is a new row, never a no-op duplicate.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn next(n: u64) -> u64 {
    SEQ.fetch_add(n, Ordering::Relaxed) + 1
}

fn persist(c: &mut Criterion) {
    let rt = support::runtime();
    let _in_runtime = rt.enter(); // the writer task is spawned from here
    let mut group = c.benchmark_group("persist");
    group.sample_size(10);
    for full_sync in [false, true] {
        for bench in rt.block_on(support::stores(full_sync)) {
            let background = Background::default();
            let writer = Writer::spawn(
                bench.store.clone(),
                WriterOptions::new(10_000, 500),
                Arc::new(Stats::default()),
                &background,
            );
            if !full_sync {
                group.throughput(Throughput::Elements(BEHIND));
                group.bench_function(BenchmarkId::new("write_behind", bench.name), |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..iters {
                                let first = next(BEHIND);
                                for seq in first..first + BEHIND - 1 {
                                    assert!(writer.enqueue(support::message("bench", seq)));
                                }
                                // FIFO and one writer: when the last is committed, all are.
                                let last = support::message("bench", first + BEHIND - 1);
                                writer.write(last).await.expect("written");
                            }
                            start.elapsed()
                        })
                    })
                });
                rt.block_on(background.finish());
                continue;
            }
            for senders in [1, SENDERS] {
                group.throughput(Throughput::Elements(senders));
                let id = BenchmarkId::new(format!("write_ahead_{senders}"), bench.name);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..iters {
                                let first = next(senders);
                                let writes = (first..first + senders)
                                    .map(|seq| writer.write(support::message("bench", seq)));
                                for result in join_all(writes).await {
                                    result.expect("written");
                                }
                            }
                            start.elapsed()
                        })
                    })
                });
            }
            rt.block_on(background.finish());
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4));
    targets = persist
}
criterion_main!(benches);
