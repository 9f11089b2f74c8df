//! Operating chatd: what an operator can learn from a running instance, and where.
//!
//! * [`logs`]: `tracing` events on stderr, as text or as JSON lines, filtered by `RUST_LOG`;
//! * [`metrics`]: `GET /metrics`, the hub's counters ([`Stats`](crate::core::Stats)) in the
//!   Prometheus text format;
//! * [`health`]: `GET /healthz` (the process answers) and `GET /readyz` (its store and its bus
//!   work, and if not, what is wrong);
//! * [`memory`]: freed memory handed back to the system after a burst (glibc keeps it otherwise).
//!
//! **What it teaches.** Counting is the hot path's job and must cost an atomic add; *reading* the
//! counts is the scraper's job and may cost what it likes. So nothing here keeps metric objects
//! that the code must remember to update: the exporter reads `Stats`, the hub and the backends
//! when Prometheus asks, and the chat code never knows a metrics crate exists. Likewise health is
//! asked of the backends when `/readyz` is called (each behind the small `health`/`ping` seam of
//! [`Bus`] and [`Store`]), never cached where it could go stale.
//!
//! The HTTP adapter only routes the two paths to [`Ops`], a cheap handle made by the server.

pub mod health;
pub mod logs;
pub mod memory;
pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;

use crate::backends::{Bus, Store, Writer};
use crate::core::Hub;

pub use health::Readiness;

/// The backends a pipeline started, as the operator's endpoints see them. Filled in by
/// `pipeline::build`; every field is `None` when the pipeline has no such backend.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// The store of the persist layer.
    pub store: Option<Arc<dyn Store>>,
    /// The persist layer's writer: its queue depth, and whether it still runs.
    pub writer: Option<Writer>,
    /// The cross-instance fan-out backend.
    pub bus: Option<Arc<dyn Bus>>,
}

/// The handle behind `/metrics` and `/readyz`; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ops {
    inner: Arc<Inner>,
}

/// How long one readiness answer is reused. `/readyz` is on the public HTTP port: without this,
/// a client polling it in a loop would make the store answer a `SELECT 1` (from the pool the
/// writer needs) for every request.
const READINESS_TTL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Inner {
    hub: Hub,
    backends: Backends,
    registry: Registry,
    /// The last readiness answer and when it was found; one check runs at a time.
    readiness: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl Ops {
    /// The endpoints of the instance whose state is `hub` and whose backends are `backends`.
    pub fn new(hub: Hub, backends: Backends) -> Ops {
        let registry =
            metrics::registry(hub.clone(), backends.writer.clone(), backends.bus.clone());
        Ops {
            inner: Arc::new(Inner {
                hub,
                backends,
                registry,
                readiness: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The shared state (the adapters count into its `Stats`).
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Every metric, now, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        metrics::render(&self.inner.registry)
    }

    /// Asks the store and the bus whether they work (see [`health`]), at most once a
    /// second: callers in between get the last answer.
    pub async fn readiness(&self) -> Readiness {
        let mut last = self.inner.readiness.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < READINESS_TTL
        {
            return answer.clone();
        }
        let answer = health::check(&self.inner.backends).await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}
