//! Health: `GET /healthz` says the process answers; `GET /readyz` says it can do its job.
//!
//! **Two questions, two endpoints.** A process can be up and useless: its database gone, or its
//! Valkey subscription dropped so that other instances' messages no longer arrive. An orchestrator
//! should restart a process that does not answer `/healthz` (liveness), but only stop routing
//! users to one whose `/readyz` is red (readiness): restarting it would not bring Valkey back.
//!
//! **The checks**, asked anew on every call and run side by side, each within
//! [`CHECK_TIMEOUT`]:
//! * `store`: the persist layer's writer task still runs and has not been retrying a batch
//!   the store did not take for a second or more ([`Writer::failing`]: a full disk or a
//!   read-only database still answers reads), and the store answers a `SELECT 1` ([`Store::ping`]; PostgreSQL through its pool,
//!   SQLite on its read connection);
//! * `bus`: the cross-instance backend says messages flow ([`Bus::health`]): for Valkey, the
//!   subscriber connection is up, its receive loop was heard from within three PING intervals,
//!   and a pooled connection answers PING; for `poll`, a poll succeeded within the last few
//!   intervals.
//!
//! A pipeline without a store or a bus has no such check. The answer is `200` with
//! `{"status":"ok","checks":{...}}` when every check passes; `200` with `"status":"degraded"`
//! when the bus works by its slower path (Valkey down, messages between instances through
//! PostgreSQL: the instance still serves its users, so a load balancer should keep it); else
//! `503` with `{"status":"unavailable",...}` and, for each failing check, what is wrong.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Backends;
use crate::backends::{Bus, BusHealth, Store, Writer};

/// The longest a check may take before it counts as failed: a load balancer's probe must get an
/// answer even when a backend hangs.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the writer must have been retrying a batch the store did not take before the store
/// check says so.
const FAILING_FOR: Duration = Duration::from_secs(1);

/// The outcome of the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Whether the instance can do its job (every check passed, or the bus is degraded).
    pub ready: bool,
    /// `{"status": "ok" | "degraded" | "unavailable", "checks": {"store": "ok" | what is
    /// wrong, ...}}`.
    pub body: Value,
}

/// Runs the checks of `backends`; see the module docs.
pub async fn check(backends: &Backends) -> Readiness {
    let store = async {
        match &backends.store {
            Some(store) => Some(store_check(store, backends.writer.as_ref()).await),
            None => None,
        }
    };
    let bus = async {
        match &backends.bus {
            Some(bus) => Some(bus_check(bus).await),
            None => None,
        }
    };
    let (store, bus) = tokio::join!(store, bus);
    let store = store.map(|result| match result {
        Ok(()) => BusHealth::Ok,
        Err(why) => BusHealth::Down(why),
    });
    let mut checks = Map::new();
    let (mut ready, mut degraded) = (true, false);
    for (name, health) in [("store", store), ("bus", bus)] {
        let Some(health) = health else { continue };
        let value = match health {
            BusHealth::Ok => "ok".to_string(),
            BusHealth::Degraded(why) => {
                degraded = true;
                why
            }
            BusHealth::Down(why) => {
                ready = false;
                why
            }
        };
        checks.insert(name.to_string(), Value::String(value));
    }
    let status = match (ready, degraded) {
        (false, _) => "unavailable",
        (true, true) => "degraded",
        (true, false) => "ok",
    };
    Readiness {
        ready,
        body: json!({ "status": status, "checks": checks }),
    }
}

async fn store_check(store: &Arc<dyn Store>, writer: Option<&Writer>) -> Result<(), String> {
    if writer.is_some_and(|writer| !writer.is_running()) {
        return Err("the store writer has stopped: messages are not being stored".into());
    }
    if let Some((since, why)) = writer.and_then(Writer::failing) {
        // A retry or two (a lock held for a moment) is not worth a red answer.
        if since.elapsed() >= FAILING_FOR {
            let secs = since.elapsed().as_secs();
            return Err(format!("the store has taken no write for {secs} s: {why}"));
        }
    }
    match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

async fn bus_check(bus: &Arc<dyn Bus>) -> BusHealth {
    match tokio::time::timeout(CHECK_TIMEOUT, bus.health()).await {
        Ok(health) => health,
        Err(_) => BusHealth::Down(format!(
            "the bus did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;
    use tower::BoxError;

    use super::*;
    use crate::backends::Background;
    use crate::backends::mock::Mock;
    use crate::core::ChatService;
    use crate::core::{ChatMessage, Hub, OpenRoom, Presence};

    /// A bus whose health is whatever the test says (healthy at first).
    #[derive(Debug)]
    struct Scripted(Mutex<BusHealth>);

    impl Default for Scripted {
        fn default() -> Scripted {
            Scripted(Mutex::new(BusHealth::Ok))
        }
    }

    impl Bus for Scripted {
        fn publish<'a>(&'a self, _: &'a Arc<ChatMessage>) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async { Ok(()) })
        }
        fn announce<'a>(&'a self, _: &'a Arc<Presence>) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async { Ok(()) })
        }
        fn open_room<'a>(&'a self, _: &'a OpenRoom) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async { Ok(()) })
        }
        fn health(&self) -> BoxFuture<'_, BusHealth> {
            let result = self.0.lock().unwrap().clone();
            Box::pin(async move { result })
        }
        fn start(&self, _: ChatService, _: Hub, _: &Background) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_check_is_named_and_any_failure_makes_it_unavailable() {
        assert_eq!(
            check(&Backends::default()).await.body,
            json!({ "status": "ok", "checks": {} }),
            "nothing to check: ready"
        );

        let store = Arc::new(Mock::default());
        let bus = Arc::new(Scripted::default());
        let backends = Backends {
            store: Some(store.clone()),
            writer: None,
            bus: Some(bus.clone()),
        };
        let green = check(&backends).await;
        assert!(green.ready);
        assert_eq!(
            green.body,
            json!({ "status": "ok", "checks": { "store": "ok", "bus": "ok" } })
        );

        *bus.0.lock().unwrap() = BusHealth::Degraded("degraded: valkey down".into());
        let degraded = check(&backends).await;
        assert!(degraded.ready, "a degraded bus still serves");
        assert_eq!(
            degraded.body,
            json!({ "status": "degraded", "checks": { "store": "ok", "bus": "degraded: valkey down" } })
        );

        *bus.0.lock().unwrap() = BusHealth::Down("poll: no successful poll for 5 s".into());
        store.set_down(true);
        let red = check(&backends).await;
        assert!(!red.ready);
        assert_eq!(red.body["status"], "unavailable");
        assert_eq!(
            red.body["checks"]["bus"],
            "poll: no successful poll for 5 s"
        );
        assert_eq!(
            red.body["checks"]["store"],
            "the store is unavailable: mock is down"
        );
    }
}
