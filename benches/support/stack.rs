//! The stack the stack bench measures, shared with `examples/stack_loop.rs` (included by
//! `#[path]`, not copied): the embedded default pipeline without a store or a rate limit, and a
//! room of K members whose queues the caller drains.

use tower::{Service, ServiceExt};

use chatd::backends::Background;
use chatd::core::outbound::Inbox;
use chatd::core::{Action, Connect, Hub, Protocol, Request, SessionId, ask};
use chatd::pipeline::config::{LayerConfig, PersistConfig};
use chatd::pipeline::{self, ChatService, load};

/// A stack, one sender and the queues of the room's other members.
pub struct Room {
    pub stack: ChatService,
    pub sender: SessionId,
    pub receivers: Vec<Inbox>,
}

/// One request through the stack.
pub async fn call(stack: &mut ChatService, req: Request) -> chatd::core::Reply {
    stack.ready().await.unwrap().call(req).await.unwrap()
}

/// A session that has joined the bench's room.
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

/// A room of `members` readers and one sender, their join notices drained.
pub async fn room(members: usize) -> Room {
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
