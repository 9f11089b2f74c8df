//! The per-message cost of the whole phase 1 stack: a typed line goes through parse, route,
//! history, persist (none) and fan-out, and lands in the outbound queue of K members.
//!
//! No sockets: this is the server's own work per message, the floor under every latency figure.
//! Run: `cargo bench --bench stack`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tower::{Service, ServiceExt};

use chatd::backends::Background;
use chatd::core::outbound::Inbox;
use chatd::core::{Action, Connect, Hub, Protocol, Request, SessionId, ask};
use chatd::pipeline::config::{LayerConfig, PersistConfig};
use chatd::pipeline::{self, ChatService, load};

struct Room {
    stack: ChatService,
    sender: SessionId,
    receivers: Vec<Inbox>,
}

async fn call(stack: &mut ChatService, req: Request) -> chatd::core::Reply {
    stack.ready().await.unwrap().call(req).await.unwrap()
}

async fn connect(stack: &mut ChatService) -> (SessionId, Inbox) {
    let (connect, rx) = Connect::sample(Protocol::Tcp, None, 1024);
    let session = ask(stack, None, connect).await.unwrap().answer.session;
    call(
        stack,
        Request::from(session, Action::Line("/join bench".into())),
    )
    .await;
    (session, rx)
}

async fn room(members: usize) -> Room {
    // Phase 1's stack: nothing stored (the persist benches measure the stores), and no rate
    // limit (a bench sends faster than any person, on purpose).
    let mut config = load::embedded_default().unwrap();
    config
        .layers
        .retain(|layer| !matches!(layer, LayerConfig::RateLimit(_)));
    for layer in &mut config.layers {
        if let LayerConfig::Persist(persist) = layer {
            *persist = PersistConfig::None {};
        }
    }
    let hub = Hub::new("bench");
    let mut stack = pipeline::build(&config, &hub, &Background::default())
        .await
        .unwrap();
    let (sender, _own) = connect(&mut stack).await;
    let mut receivers = Vec::new();
    for _ in 0..members {
        receivers.push(connect(&mut stack).await.1);
    }
    for rx in receivers.iter_mut() {
        while rx.try_recv().is_some() {} // the join notices
    }
    Room {
        stack,
        sender,
        receivers,
    }
}

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
