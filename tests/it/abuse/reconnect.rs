//! Finding 3: the rate limit was per session, so reconnecting bypassed it (one address got 262
//! messages a second through a limit of 10 with eight reconnecting clients). Now the address has
//! a bucket too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{p99, with_rate_limit};
use crate::support::{Client, connect_from, read_until_closed, start_with};

/// The address's allowance in this test: 20 a second, 40 at once (the defaults are 50 and 200;
/// smaller numbers make the bound bite sooner).
const PER_SECOND: u32 = 20;
const BURST: u32 = 40;

/// One abusive client's loop: connect, join, 20 lines at once, quit, again, until `stop`.
/// Returns the connections it made and how many of them got a session (the others had their
/// connect refused by the address's bucket).
async fn reconnect_in_a_loop(tcp: std::net::SocketAddr, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut rounds, mut sessions) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let mut stream = connect_from(tcp, "127.0.0.5").await;
        let mut burst = String::from("/join flood\n");
        for i in 0..20 {
            burst.push_str(&format!("spam {i}\n"));
        }
        burst.push_str("/quit\n");
        // A refused connect closes the connection; the write may then fail, which is fine. The
        // `/quit` may be refused too (slow down!): closing the sending side ends the session.
        let _ = stream.write_all(burst.as_bytes()).await;
        let _ = stream.shutdown().await;
        let answer = read_until_closed(&mut stream).await;
        rounds += 1;
        sessions += u64::from(answer.starts_with("* welcome"));
    }
    (rounds, sessions)
}

#[tokio::test]
async fn reconnecting_clients_of_one_address_share_one_bucket_and_a_user_elsewhere_chats_on() {
    let server = start_with(with_rate_limit(|limit| {
        limit.per_address_per_second = PER_SECOND;
        limit.per_address_burst = BURST;
    }))
    .await;
    let tcp = server.tcp_addr();
    let mut alice = Client::connect_from(tcp, "127.0.0.2").await;
    alice.send("/nick alice").await;
    alice.expect("* you are now alice").await;
    alice.join("flood").await;
    let mut bob = Client::connect_from(tcp, "127.0.0.3").await;
    bob.send("/nick bob").await;
    bob.expect("* you are now bob").await;
    bob.join("flood").await;
    alice.expect("* bob joined flood").await;
    let before = server.hub().stats().messages_in.get();

    // Eight reconnecting clients from 127.0.0.5, for two seconds...
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let abusers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(reconnect_in_a_loop(tcp, stop.clone())))
        .collect();
    // ...while bob (127.0.0.3) says something every 100 ms and alice (127.0.0.2) reads it all.
    let sent_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader_sent_at = sent_at.clone();
    let pings = 20;
    let reader = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut spam = 0u64;
        while latencies.len() < pings {
            let line = alice.line().await;
            if let Some(n) = line.strip_prefix("[flood] bob: ping ") {
                let n: usize = n.parse().expect("a ping number");
                let at: Instant = reader_sent_at.lock().unwrap()[n];
                latencies.push(at.elapsed());
            } else if line.contains(": spam ") {
                spam += 1;
            }
        }
        (latencies, spam)
    });
    for n in 0..pings {
        sent_at.lock().unwrap().push(Instant::now());
        bob.send(&format!("ping {n}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut rounds, mut sessions) = (0, 0);
    for abuser in abusers {
        let (r, s) = abuser.await.expect("an abuser");
        (rounds, sessions) = (rounds + r, sessions + s);
    }
    let elapsed = started.elapsed();
    let (mut latencies, spam_seen) = reader.await.expect("the reader");

    // Every token the address spent (connects, joins, messages, quits) is within its bucket:
    // BURST at the start, PER_SECOND a second after that. The messages are a part of them.
    let accepted = server.hub().stats().messages_in.get() - before - pings as u64;
    let bound = u64::from(BURST) + (f64::from(PER_SECOND) * elapsed.as_secs_f64()).ceil() as u64;
    let attempted = sessions * 20;
    println!(
        "8 clients reconnecting from one address for {elapsed:.1?}: {rounds} connections \
         ({sessions} got a session), {attempted} messages sent, {accepted} accepted ({:.0}/s; \
         bound {BURST} + {PER_SECOND}/s = {bound}); bob's messages: {} of {pings} delivered, \
         p99 {:?}",
        accepted as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        p99(&mut latencies)
    );
    assert!(accepted <= bound, "{accepted} accepted, more than {bound}");
    assert!(
        attempted > 2 * bound,
        "the abusers tried more than twice the bound ({attempted}), so the bound did bite"
    );
    assert!(server.hub().stats().rate_limited.get() > 0);
    assert!(spam_seen <= accepted);
    // Bob (another address) was never slowed down: all his messages arrived, in order.
    assert_eq!(latencies.len(), pings);
    bob.send("/rooms").await;
    loop {
        let line = bob.line().await;
        assert!(!line.starts_with("! "), "bob was refused: {line}");
        if line.starts_with("* rooms: flood") {
            break;
        }
    }
    server.shutdown().await;
}
