//! The stack bench's loop as a plain program: `K` members, `N` messages, one line of output.
//!
//! Criterion's statistics need a quiet machine; on a shared one its figures can move by a third
//! between runs of one build. Comparing builds is then done with many short alternating runs of
//! this loop (docs/BENCHMARKS.md, "The stack bench after this round"):
//!
//! ```sh
//! cargo run --release --example stack_loop -- 100 100000   # K = 100 members, N = 100,000 messages
//! ```

use std::time::Instant;

use chatd::core::{Action, Request};

#[path = "../benches/support/stack.rs"]
mod stack_room;
use stack_room::{call, room};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: u64| {
        args.next()
            .map_or(Ok(default), |a| a.parse())
            .expect("usage: stack_loop [MEMBERS] [MESSAGES]")
    };
    let (members, messages) = (number(100), number(100_000));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut room = room(usize::try_from(members).unwrap_or(usize::MAX)).await;
        let start = Instant::now();
        for _ in 0..messages {
            let req = Request::from(room.sender, Action::Line("hello, everybody".into()));
            call(&mut room.stack, req).await;
            for rx in room.receivers.iter_mut() {
                while rx.try_recv().is_some() {}
            }
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / messages.max(1) as f64;
        println!("{members} members: {per:.3} us per message");
    });
}
