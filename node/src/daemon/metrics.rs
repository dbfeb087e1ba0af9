//! `--metrics`: the Prometheus endpoint, and the protocol numbers read from the core that it
//! shares with `status`.
//!
//! Every scrape reads the node's numbers at once and hands them to `prometheus-client` as one
//! collector, which writes the Prometheus text format (version 0.0.4): counters get their
//! `_total` suffix and every name its `hearsay_` prefix from the encoder, label values are
//! escaped there, and the families come out in a fixed order. The delivery-latency histogram is
//! the one metric updated as things happen (by the topics' recorders).

use super::State;
use super::routes::{Body, respond};
use crate::api;
use hearsay_proto::TopicId;
use hearsay_tokio::NodeHandle;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeMetric, MetricEncoder, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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

/// The content type of `/metrics` (the Prometheus text format, version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every metric's name starts with `hearsay_`.
const PREFIX: &str = "hearsay";

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
    let topic_name = |t: &TopicId| names.get(t).cloned().unwrap_or_else(|| t.to_string());
    let per_topic = |f: fn(&(TopicId, usize, u64, usize)) -> u64| {
        Samples::By(
            "topic",
            core.topics
                .iter()
                .map(|t| (topic_name(&t.0), f(t)))
                .collect(),
        )
    };
    let mut rejected: Vec<(String, u64)> = core
        .rejected
        .iter()
        .map(|(reason, v)| ((*reason).to_owned(), *v))
        .collect();
    rejected.push(("oversize".into(), c.oversize_frames));
    const KINDS: [&str; 7] = [
        "session",
        "membership",
        "failure_detection",
        "topic",
        "reconcile",
        "discovery",
        "private",
    ];
    let by_kind = |counts: &[u64; 7]| {
        Samples::By(
            "kind",
            KINDS
                .iter()
                .zip(counts)
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        )
    };
    let labelled = |label: &'static str, samples: &[(&str, u64)]| {
        Samples::By(
            label,
            samples.iter().map(|(l, v)| ((*l).to_owned(), *v)).collect(),
        )
    };
    let families = vec![
        counter("frames_in", "Frames received.", Samples::One(c.frames_in)),
        counter("frames_out", "Frames sent.", Samples::One(c.frames_out)),
        counter(
            "bytes_in",
            "Frame bytes received.",
            Samples::One(c.bytes_in),
        ),
        counter("bytes_out", "Frame bytes sent.", Samples::One(c.bytes_out)),
        counter(
            "frames_rejected",
            "Frames refused, by reason.",
            Samples::By("reason", rejected),
        ),
        counter(
            "connections",
            "Connections whose identity proof verified, by direction.",
            labelled(
                "direction",
                &[
                    ("in", c.connections_accepted),
                    ("out", c.connections_dialled),
                ],
            ),
        ),
        gauge(
            "neighbors",
            "Peers in the active view.",
            Samples::One(core.neighbors as u64),
        ),
        gauge(
            "known_records",
            "Verified peer records held.",
            Samples::One(core.known_records as u64),
        ),
        counter(
            "published",
            "Messages this node published.",
            Samples::One(core.published),
        ),
        gauge(
            "topic_neighbors",
            "Peers in a topic's active view.",
            per_topic(|t| t.1 as u64),
        ),
        counter(
            "deliveries",
            "Messages delivered on a topic.",
            per_topic(|t| t.2),
        ),
        gauge(
            "retained_messages",
            "Messages of a topic retained for repair.",
            per_topic(|t| t.3 as u64),
        ),
        counter(
            "core_frames_in",
            "Frames the core decoded, by frame kind.",
            by_kind(&core.frames_in_by_kind),
        ),
        counter(
            "core_frames_out",
            "Frames the core sent, by frame kind.",
            by_kind(&core.frames_out_by_kind),
        ),
        counter(
            "drops",
            "Frames, events and archived messages dropped, by reason.",
            labelled(
                "reason",
                &[
                    ("core_transmit_queue", core.transmits_dropped),
                    ("core_event_queue", core.events_dropped),
                    ("no_connection", c.frames_dropped),
                    ("slow_peer", c.send_queue_overflows),
                    ("write_stall", c.write_stalls),
                    ("read_timeout", c.read_timeouts),
                    ("mailbox", state.mailbox_lost.load(Ordering::Relaxed)),
                ],
            ),
        ),
        gauge(
            "view_size",
            "Node-level HyParView views and SWIM suspects.",
            labelled(
                "view",
                &[
                    ("active", core.neighbors as u64),
                    ("passive", core.passive as u64),
                    ("suspects", core.suspects as u64),
                ],
            ),
        ),
        counter(
            "verify_failures",
            "Signed payloads, records and encrypted-message checks that failed.",
            labelled("what", &core.verify_failures),
        ),
    ];
    match exposition(Scrape {
        families,
        latency: state.latency.clone(),
    }) {
        Ok(text) => respond(StatusCode::OK, CONTENT_TYPE, text),
        Err(fmt::Error) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "cannot encode the metrics\n",
        ),
    }
}

/// The text exposition of one scrape.
fn exposition(scrape: Scrape) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The node's numbers read for one scrape, in the order they are exposed.
#[derive(Debug)]
struct Scrape {
    families: Vec<Family>,
    /// Delivery latency (shared with the recorders that observe it).
    latency: Histogram,
}

/// One counter or gauge family of a scrape.
#[derive(Debug)]
struct Family {
    /// Without the `hearsay_` prefix and, for a counter, the `_total` suffix: the encoder adds
    /// both (`frames_in` is exposed as `hearsay_frames_in_total`).
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Samples,
}

/// A family's samples: one without labels, or one per value of a single label.
#[derive(Debug)]
enum Samples {
    One(u64),
    By(&'static str, Vec<(String, u64)>),
}

fn counter(name: &'static str, help: &'static str, samples: Samples) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        samples,
    }
}

fn gauge(name: &'static str, help: &'static str, samples: Samples) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        samples,
    }
}

/// The latency histogram's name and help.
const LATENCY_NAME: &str = "delivery_latency_seconds";
const LATENCY_HELP: &str = "From a message's timestamp (its author's clock) to its delivery here.";

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        for family in &self.families {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            match &family.samples {
                Samples::One(value) => sample(family.kind, *value, metric)?,
                Samples::By(label, values) => {
                    for (label_value, value) in values {
                        let labels = [(*label, label_value.as_str())];
                        sample(family.kind, *value, metric.encode_family(&labels)?)?;
                    }
                }
            }
        }
        let metric =
            encoder.encode_descriptor(LATENCY_NAME, LATENCY_HELP, None, MetricType::Histogram)?;
        self.latency.encode(metric)
    }
}

fn sample(kind: MetricType, value: u64, encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
    if kind == MetricType::Counter {
        ConstCounter::new(value).encode(encoder)
    } else {
        ConstGauge::new(value).encode(encoder)
    }
}

/// A new delivery-latency histogram.
pub(super) fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// Delivery-latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition keeps the format /metrics had before prometheus-client: `_total` counter
    /// names in HELP and TYPE, the given order, escaped label values, `le` as `1` not `1.0`,
    /// cumulative buckets then sum and count. One difference: an empty sum is `0.0` (was `0`).
    #[test]
    fn exposition_is_the_prometheus_text_format() {
        let latency = latency_histogram();
        latency.observe(0.5);
        latency.observe(120.0);
        let scrape = Scrape {
            families: vec![
                counter("frames_in", "Frames received.", Samples::One(3)),
                counter(
                    "connections",
                    "Connections, by direction.",
                    Samples::By("direction", vec![("in".into(), 1), ("out".into(), 0)]),
                ),
                gauge("neighbors", "Peers in the active view.", Samples::One(2)),
                counter(
                    "deliveries",
                    "Messages delivered on a topic.",
                    Samples::By("topic", vec![("a\"b\\c\nd".into(), 7)]),
                ),
            ],
            latency,
        };
        let expected = r#"# HELP hearsay_frames_in_total Frames received.
# TYPE hearsay_frames_in_total counter
hearsay_frames_in_total 3
# HELP hearsay_connections_total Connections, by direction.
# TYPE hearsay_connections_total counter
hearsay_connections_total{direction="in"} 1
hearsay_connections_total{direction="out"} 0
# HELP hearsay_neighbors Peers in the active view.
# TYPE hearsay_neighbors gauge
hearsay_neighbors 2
# HELP hearsay_deliveries_total Messages delivered on a topic.
# TYPE hearsay_deliveries_total counter
hearsay_deliveries_total{topic="a\"b\\c\nd"} 7
# HELP hearsay_delivery_latency_seconds From a message's timestamp (its author's clock) to its delivery here.
# TYPE hearsay_delivery_latency_seconds histogram
hearsay_delivery_latency_seconds_bucket{le="0.001"} 0
hearsay_delivery_latency_seconds_bucket{le="0.0025"} 0
hearsay_delivery_latency_seconds_bucket{le="0.005"} 0
hearsay_delivery_latency_seconds_bucket{le="0.01"} 0
hearsay_delivery_latency_seconds_bucket{le="0.025"} 0
hearsay_delivery_latency_seconds_bucket{le="0.05"} 0
hearsay_delivery_latency_seconds_bucket{le="0.1"} 0
hearsay_delivery_latency_seconds_bucket{le="0.25"} 0
hearsay_delivery_latency_seconds_bucket{le="0.5"} 1
hearsay_delivery_latency_seconds_bucket{le="1"} 1
hearsay_delivery_latency_seconds_bucket{le="2.5"} 1
hearsay_delivery_latency_seconds_bucket{le="5"} 1
hearsay_delivery_latency_seconds_bucket{le="10"} 1
hearsay_delivery_latency_seconds_bucket{le="30"} 1
hearsay_delivery_latency_seconds_bucket{le="60"} 1
hearsay_delivery_latency_seconds_bucket{le="+Inf"} 2
hearsay_delivery_latency_seconds_sum 120.5
hearsay_delivery_latency_seconds_count 2
"#;
        assert_eq!(exposition(scrape).unwrap(), expected);
        let empty = exposition(Scrape {
            families: Vec::new(),
            latency: latency_histogram(),
        })
        .unwrap();
        assert!(empty.ends_with("_sum 0.0\nhearsay_delivery_latency_seconds_count 0\n"));
    }
}
