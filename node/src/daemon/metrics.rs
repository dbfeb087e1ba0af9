//! `--metrics`: the Prometheus endpoint, and the protocol numbers read from the core that it
//! shares with `status`.

use super::State;
use super::routes::{Body, respond};
use crate::api;
use hearsay_proto::TopicId;
use hearsay_tokio::NodeHandle;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Protocol numbers read from the core in one inspect job.
#[derive(Debug, Default)]
pub(super) struct CoreNumbers {
    pub(super) boot_count: u64,
    pub(super) neighbors: usize,
    pub(super) known_records: usize,
    pub(super) published: u64,
    pub(super) rejected: Vec<(&'static str, u64)>,
    /// (topic id, topic neighbours, delivered, retained)
    pub(super) topics: Vec<(TopicId, usize, u64, usize)>,
    pub(super) frames_in_by_kind: [u64; 7],
    pub(super) frames_out_by_kind: [u64; 7],
    pub(super) passive: usize,
    pub(super) suspects: usize,
    pub(super) transmits_dropped: u64,
    pub(super) events_dropped: u64,
    /// (what, count): payloads and records that failed their checks.
    pub(super) verify_failures: Vec<(&'static str, u64)>,
}

pub(super) async fn core_numbers(node: &NodeHandle) -> Option<CoreNumbers> {
    node.inspect(|v| {
        let c = v.counters();
        CoreNumbers {
            boot_count: v.boot_count(),
            neighbors: v.neighbors().count(),
            known_records: v.known_records(),
            published: c.published,
            frames_in_by_kind: c.frames_in_by_kind,
            frames_out_by_kind: c.frames_out_by_kind,
            passive: v.passive().count(),
            suspects: v.suspects().count(),
            transmits_dropped: c.transmits_dropped,
            events_dropped: c.events_dropped,
            verify_failures: vec![
                ("payload", c.invalid_payloads),
                ("record", c.rejected_record),
                (
                    "private",
                    v.private_counters().announcements_refused
                        + v.private_counters().served_refused,
                ),
            ],
            rejected: vec![
                ("decode", c.rejected_decode),
                ("not_connected", c.rejected_not_connected),
                ("version", c.rejected_version),
                ("record", c.rejected_record),
                ("unestablished", c.rejected_unestablished),
                ("alive", c.rejected_alive),
            ],
            topics: v
                .subscriptions()
                .map(|t| {
                    (
                        t,
                        v.topic_neighbors(&t).len(),
                        v.broadcast_counters(&t).map_or(0, |b| b.delivered),
                        v.retained(&t),
                    )
                })
                .collect(),
        }
    })
    .await
    .ok()
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    out.push_str(&format!(
        "# HELP hearsay_{name} {help}\n# TYPE hearsay_{name} {kind}\n"
    ));
    for (labels, value) in samples {
        out.push_str(&format!("hearsay_{name}{labels} {value}\n"));
    }
}

/// The Prometheus text exposition (format 0.0.4) of the node's counters.
pub(super) async fn metrics_response(
    state: &Arc<State>,
    req: &Request<Incoming>,
) -> Response<Body> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Err(e) = api::parse_metrics(req.method().as_str(), target) {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND);
        return respond(status, "text/plain", format!("{}\n", e.message));
    }
    let node = &state.node;
    let Some(core) = core_numbers(node).await else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the node is stopping\n",
        );
    };
    let c = node.counters();
    let names = state.topics.lock().map(|t| t.clone()).unwrap_or_default();
    let topic_label = |t: &TopicId| {
        let name = names.get(t).cloned().unwrap_or_else(|| t.to_string());
        let escaped = name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        format!("{{topic=\"{escaped}\"}}")
    };
    let one = |v: u64| vec![(String::new(), v)];
    let mut out = String::new();
    metric(
        &mut out,
        "frames_in_total",
        "counter",
        "Frames received.",
        &one(c.frames_in),
    );
    metric(
        &mut out,
        "frames_out_total",
        "counter",
        "Frames sent.",
        &one(c.frames_out),
    );
    metric(
        &mut out,
        "bytes_in_total",
        "counter",
        "Frame bytes received.",
        &one(c.bytes_in),
    );
    metric(
        &mut out,
        "bytes_out_total",
        "counter",
        "Frame bytes sent.",
        &one(c.bytes_out),
    );
    let mut rejected: Vec<(String, u64)> = core
        .rejected
        .iter()
        .map(|(reason, v)| (format!("{{reason=\"{reason}\"}}"), *v))
        .collect();
    rejected.push(("{reason=\"oversize\"}".into(), c.oversize_frames));
    metric(
        &mut out,
        "frames_rejected_total",
        "counter",
        "Frames refused, by reason.",
        &rejected,
    );
    metric(
        &mut out,
        "connections_total",
        "counter",
        "Connections whose identity proof verified, by direction.",
        &[
            ("{direction=\"in\"}".into(), c.connections_accepted),
            ("{direction=\"out\"}".into(), c.connections_dialled),
        ],
    );
    metric(
        &mut out,
        "neighbors",
        "gauge",
        "Peers in the active view.",
        &one(core.neighbors as u64),
    );
    metric(
        &mut out,
        "known_records",
        "gauge",
        "Verified peer records held.",
        &one(core.known_records as u64),
    );
    metric(
        &mut out,
        "published_total",
        "counter",
        "Messages this node published.",
        &one(core.published),
    );
    let per_topic = |f: fn(&(TopicId, usize, u64, usize)) -> u64| -> Vec<(String, u64)> {
        core.topics
            .iter()
            .map(|t| (topic_label(&t.0), f(t)))
            .collect()
    };
    metric(
        &mut out,
        "topic_neighbors",
        "gauge",
        "Peers in a topic's active view.",
        &per_topic(|t| t.1 as u64),
    );
    metric(
        &mut out,
        "deliveries_total",
        "counter",
        "Messages delivered on a topic.",
        &per_topic(|t| t.2),
    );
    metric(
        &mut out,
        "retained_messages",
        "gauge",
        "Messages of a topic retained for repair.",
        &per_topic(|t| t.3 as u64),
    );
    const KINDS: [&str; 7] = [
        "session",
        "membership",
        "failure_detection",
        "topic",
        "reconcile",
        "discovery",
        "private",
    ];
    let by_kind = |counts: &[u64; 7]| -> Vec<(String, u64)> {
        KINDS
            .iter()
            .zip(counts)
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), *v))
            .collect()
    };
    metric(
        &mut out,
        "core_frames_in_total",
        "counter",
        "Frames the core decoded, by frame kind.",
        &by_kind(&core.frames_in_by_kind),
    );
    metric(
        &mut out,
        "core_frames_out_total",
        "counter",
        "Frames the core sent, by frame kind.",
        &by_kind(&core.frames_out_by_kind),
    );
    metric(
        &mut out,
        "drops_total",
        "counter",
        "Frames, events and archived messages dropped, by reason.",
        &[
            (
                "{reason=\"core_transmit_queue\"}".into(),
                core.transmits_dropped,
            ),
            ("{reason=\"core_event_queue\"}".into(), core.events_dropped),
            ("{reason=\"no_connection\"}".into(), c.frames_dropped),
            ("{reason=\"slow_peer\"}".into(), c.send_queue_overflows),
            ("{reason=\"write_stall\"}".into(), c.write_stalls),
            ("{reason=\"read_timeout\"}".into(), c.read_timeouts),
            (
                "{reason=\"mailbox\"}".into(),
                state.mailbox_lost.load(Ordering::Relaxed),
            ),
        ],
    );
    metric(
        &mut out,
        "view_size",
        "gauge",
        "Node-level HyParView views and SWIM suspects.",
        &[
            ("{view=\"active\"}".into(), core.neighbors as u64),
            ("{view=\"passive\"}".into(), core.passive as u64),
            ("{view=\"suspects\"}".into(), core.suspects as u64),
        ],
    );
    let failures: Vec<(String, u64)> = core
        .verify_failures
        .iter()
        .map(|(what, v)| (format!("{{what=\"{what}\"}}"), *v))
        .collect();
    metric(
        &mut out,
        "verify_failures_total",
        "counter",
        "Signed payloads, records and encrypted-message checks that failed.",
        &failures,
    );
    state.latency.write(
        &mut out,
        "delivery_latency_seconds",
        "From a message's timestamp (its author's clock) to its delivery here.",
    );
    respond(StatusCode::OK, "text/plain; version=0.0.4", out)
}

/// A Prometheus histogram with fixed buckets, updated without locks.
#[derive(Debug)]
pub(super) struct Histogram {
    /// Upper bounds, seconds.
    bounds: &'static [f64],
    /// One count per bound, plus +Inf.
    counts: Vec<AtomicU64>,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    pub(super) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub(super) fn observe(&self, seconds: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        out.push_str(&format!(
            "# HELP hearsay_{name} {help}\n# TYPE hearsay_{name} histogram\n"
        ));
        let mut total = 0;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            out.push_str(&format!("hearsay_{name}_bucket{{le=\"{le}\"}} {total}\n"));
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!(
            "hearsay_{name}_sum {sum}\nhearsay_{name}_count {total}\n"
        ));
    }
}

/// Delivery-latency buckets, seconds.
pub(super) const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
