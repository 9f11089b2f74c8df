//! `GET /metrics`: the instance's counters in the Prometheus text format (version 0.0.4).
//!
//! **How.** The `prometheus-client` crate (the Prometheus project's own Rust client) does the
//! encoding: names, `# HELP`/`# TYPE` lines, `_total` suffixes, escaping, histogram buckets. Its
//! metric types are not used for counting: one `Exporter`, registered as a custom
//! [`Collector`], reads [`Stats`](crate::core::Stats) and the hub at scrape time. The counters therefore stay plain
//! atomics that the chat code bumps without knowing about Prometheus, and a scrape costs one walk
//! over the counters and the session table.
//!
//! **The delivery latency** (`chatd_delivery_latency_seconds`) runs from the moment the route
//! layer numbered a message to the moment the adapter took it from the recipient's queue to write
//! it to the socket (TCP) or event stream (SSE): queueing in the room's ordered gate, the
//! persist layer in write-ahead mode, and the recipient's outbound queue are all in it; the
//! kernel's socket buffer is not. A message from another instance (`origin="remote"`) carries no
//! instant of this process, so its latency is this host's wall clock minus the sending
//! instance's timestamp: it includes the bus, and any skew between the two hosts' clocks.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use std::sync::Arc;

use crate::backends::{Bus, Writer};
use crate::core::latency::Histogram;
use crate::core::stats::{ByProtocol, Counter};
use crate::core::{Hub, Protocol};

/// A registry whose one collector reads `hub` (and the persist layer's `writer` and the fan-out's
/// `bus`, if any).
pub fn registry(hub: Hub, writer: Option<Writer>, bus: Option<Arc<dyn Bus>>) -> Registry {
    let mut registry = Registry::with_prefix("chatd");
    registry.register_collector(Box::new(Exporter { hub, writer, bus }));
    registry
}

/// The text of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(err) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        // Writing to a String cannot fail; should the encoder refuse, say so in the body.
        let _ = writeln!(out, "# chatd: encoding the metrics failed: {err}");
    }
    out
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Reads the counters when Prometheus scrapes; see the module docs.
#[derive(Debug)]
struct Exporter {
    hub: Hub,
    writer: Option<Writer>,
    bus: Option<Arc<dyn Bus>>,
}

type Fmt = Result<(), std::fmt::Error>;

const ROOMS_HELP: &str = "Rooms in memory on this instance (rooms idle for room_idle_secs leave it; those with stored history are still listed by /rooms).";
const QUEUE_HELP: &str = "Messages waiting in the store writer's queue.";

impl Collector for Exporter {
    fn encode(&self, mut out: DescriptorEncoder) -> Fmt {
        let stats = self.hub.stats();
        // Clients: connections and sessions, open now and opened since start.
        let open = |p: Protocol| {
            // Closed first: a connection that opens and closes between the two reads is then
            // counted in both or neither, never subtracted without being added.
            let closed = stats.connections_closed.get(p).get();
            stats.connections_opened.get(p).get().saturating_sub(closed)
        };
        per_protocol(
            &mut out,
            "connections_open",
            "Client connections open now (TCP: one per netcat user; HTTP: keep-alive and event-stream connections; IRC: one per IRC client).",
            MetricType::Gauge,
            Protocol::ALL.map(open),
        )?;
        per_protocol(
            &mut out,
            "connections_opened",
            "Client connections accepted since start.",
            MetricType::Counter,
            each_protocol(&stats.connections_opened),
        )?;
        per_protocol(
            &mut out,
            "sessions_open",
            "Chat sessions open now (a TCP connection, or an HTTP session token).",
            MetricType::Gauge,
            self.hub.sessions().count_by_protocol(),
        )?;
        per_protocol(
            &mut out,
            "sessions_opened",
            "Chat sessions opened since start.",
            MetricType::Counter,
            each_protocol(&stats.sessions_opened_by),
        )?;
        gauge(&mut out, "rooms", ROOMS_HELP, self.hub.rooms().len() as u64)?;
        let help = "Room memberships of this instance's sessions (a session in three rooms counts three): what a shared presence directory lists for this instance once it is up to date.";
        let memberships = self.hub.sessions().memberships() as u64;
        gauge(&mut out, "memberships", help, memberships)?;
        let queued = "Bytes waiting in outbound queues (sessions and event streams), against max_queued_bytes.";
        gauge(&mut out, "queued_bytes", queued, stats.queued.used() as u64)?;
        latency(&mut out, &stats.latency_local, &stats.latency_remote)?;
        if let Some(writer) = &self.writer {
            gauge(
                &mut out,
                "persist_queue_depth",
                QUEUE_HELP,
                writer.queued() as u64,
            )?;
        }
        if let Some(bus) = &self.bus {
            let help = "1 while messages between instances take the slow path (Valkey unreachable: they travel through PostgreSQL), else 0.";
            gauge(&mut out, "bus_degraded", help, u64::from(bus.degraded()))?;
            let help = "Rooms this instance listens to on the bus (Valkey channels subscribed, rooms polled in PostgreSQL): it follows rooms, and is 0 once every room has left memory.";
            gauge(&mut out, "bus_rooms", help, bus.listening() as u64)?;
        }
        // Everything else is a plain counter of `Stats`.
        #[rustfmt::skip]
        let counters: [(&str, &str, &Counter); 21] = [
            ("messages_in", "Chat messages accepted from this instance's sessions.", &stats.messages_in),
            ("deliveries", "Chat messages queued for a recipient session (one message to a room of ten is ten).", &stats.deliveries),
            ("slow_consumer_disconnects", "Sessions and event streams disconnected because their queue was full in events or bytes, or the instance's budget was used up (the client read too slowly).", &stats.slow_consumers),
            ("budget_disconnects", "Of the slow-consumer disconnects, those made because the instance's budget for waiting events (max_queued_bytes) was used up and the client held more than its share.", &stats.budget_cuts),
            ("rate_limited", "Requests refused by the rate_limit layer.", &stats.rate_limited),
            ("persisted", "Messages written to the store.", &stats.persisted),
            ("persist_batches", "Batches written to the store (one transaction each).", &stats.persist_batches),
            ("persist_retries", "Batch writes retried because the store was unavailable.", &stats.persist_retries),
            ("persist_rejected", "Messages the store refused one by one (failures; the rest of their batch was written).", &stats.persist_rejected),
            ("persist_dropped", "Messages never stored: the write queue was full, or the store stayed unreachable through shutdown.", &stats.persist_dropped),
            ("persist_timeouts", "Write-ahead messages refused because the store did not commit them within sync_timeout_ms (never delivered; not stored, except an attempt that hung past its grace and committed later, which is logged).", &stats.persist_timeouts),
            ("bus_publishes", "Messages and presence changes handed to the bus for the other instances.", &stats.bus_published),
            ("bus_receives", "Messages and presence changes received from other instances.", &stats.bus_received),
            ("bus_reconnects", "Times the bus subscription was lost and established again.", &stats.bus_reconnects),
            ("bus_failures", "Bus operations that failed (a publish, a poll, a lost subscription).", &stats.bus_failures),
            ("gap_fills", "Messages read from the store to fill a hole in a room's sequence.", &stats.gap_fills),
            ("gaps_skipped", "Sequence numbers given up on: messages numbered but never received.", &stats.gaps_skipped),
            ("streams_refused", "Event streams refused: too many for their session or their address.", &stats.streams_refused),
            ("replay_pages", "Pages of history read for event streams (each costs a rate-limit token).", &stats.replay_pages),
            ("rooms_refused", "Joins refused because they would create a room beyond max_rooms or the address's max_rooms_per_ip.", &stats.rooms_refused),
            ("rooms_evicted", "Idle rooms evicted from memory (their history stays in the store; reopened on demand).", &stats.rooms_evicted),
        ];
        for (name, help, value) in counters {
            out.encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value.get(), None)?;
        }
        Ok(())
    }
}

fn each_protocol(counters: &ByProtocol) -> [u64; 3] {
    Protocol::ALL.map(|p| counters.get(p).get())
}

fn gauge(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Fmt {
    out.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One metric with a `protocol` label, the values in [`Protocol::ALL`]'s order.
fn per_protocol(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: [u64; 3],
) -> Fmt {
    let mut metric = out.encode_descriptor(name, help, None, kind)?;
    for (protocol, value) in Protocol::ALL.into_iter().zip(values) {
        let labels = [("protocol", protocol.label())];
        let mut family = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => family.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            _ => family.encode_gauge(&value)?,
        }
    }
    Ok(())
}

fn latency(out: &mut DescriptorEncoder, local: &Histogram, remote: &Histogram) -> Fmt {
    let mut metric = out.encode_descriptor(
        "delivery_latency_seconds",
        "Seconds from the route layer numbering a chat message to the adapter taking it from the \
         recipient's queue to write it to the socket or event stream. origin=remote: messages from \
         other instances, measured from the sender's wall-clock timestamp (includes the bus and \
         clock skew).",
        None,
        MetricType::Histogram,
    )?;
    for (origin, histogram) in [("local", local), ("remote", remote)] {
        let snapshot = histogram.snapshot();
        let labels = [("origin", origin)];
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(
                snapshot.sum_seconds,
                snapshot.count,
                &snapshot.buckets,
                None,
            )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_text_has_help_types_labels_and_moving_counters() {
        let hub = Hub::new("test");
        let registry = registry(hub.clone(), None, None);
        let before = render(&registry);
        assert!(
            before.contains("# HELP chatd_messages_in_total "),
            "{before}"
        );
        assert!(
            before.contains("# TYPE chatd_messages_in_total counter\nchatd_messages_in_total 0\n"),
            "{before}"
        );
        assert!(
            before.contains("chatd_sessions_open{protocol=\"tcp\"} 0\n"),
            "{before}"
        );
        assert!(
            !before.contains("persist_queue_depth"),
            "no writer, no queue"
        );

        hub.stats().messages_in.inc();
        hub.stats().connections_opened.tcp.inc();
        hub.stats()
            .latency_local
            .observe(Duration::from_micros(300));
        let after = render(&registry);
        assert!(after.contains("chatd_messages_in_total 1\n"), "{after}");
        assert!(
            after.contains("chatd_connections_open{protocol=\"tcp\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("chatd_connections_opened_total{protocol=\"http\"} 0\n"),
            "{after}"
        );
        assert!(
            after.contains(
                "chatd_delivery_latency_seconds_bucket{origin=\"local\",le=\"0.0005\"} 1\n"
            ),
            "{after}"
        );
        assert!(
            after.contains("chatd_delivery_latency_seconds_count{origin=\"local\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("chatd_delivery_latency_seconds_count{origin=\"remote\"} 0\n"),
            "{after}"
        );
    }
}
