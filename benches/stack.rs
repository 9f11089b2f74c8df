//! The per-message cost of the whole phase 1 stack: a typed line goes through parse, route,
//! history, persist (none) and fan-out, and lands in the outbound queue of K members.
//!
//! No sockets: this is the server's own work per message, the floor under every latency figure.
//! Run: `cargo bench --bench stack`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chatd::core::{Action, Request};

#[path = "support/stack.rs"]
mod stack_room;
use stack_room::{call, room};

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("stack_message");
    for members in [1usize, 10, 100] {
        let mut room = rt.block_on(room(members));
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("members", members), &members, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let req =
                            Request::from(room.sender, Action::Line("hello, everybody".into()));
                        call(&mut room.stack, req).await;
                        for rx in room.receivers.iter_mut() {
                            while rx.try_recv().is_some() {}
                        }
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
    targets = stack
}
criterion_main!(benches);
