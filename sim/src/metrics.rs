//! The metrics of the scenario contract, as computed from a run, and the series the report plots.
//!
//! Every metric is `None` (JSON `null`) when it has no samples; nothing is filled in.

use serde::Serialize;

/// Percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples`, or `None` if there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * s.len() as f64).ceil() as usize;
            s[i.clamp(1, s.len()) - 1]
        };
        Some(Self {
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: s[s.len() - 1],
        })
    }
}

/// Median and maximum (for presence gone-times).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MedianMax {
    /// Median.
    pub p50: f64,
    /// Largest sample.
    pub max: f64,
}

/// Median, 95th percentile and maximum (for presence seen-times).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct P50P95Max {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest sample.
    pub max: f64,
}

/// Mean and maximum (for FOAF forwards).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanMax {
    /// Mean.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
}

/// Minimum and 5th percentile (for the honest share of active views).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MinP5 {
    /// Smallest sample.
    pub min: f64,
    /// 5th percentile (nearest rank).
    pub p5: f64,
}

impl MinP5 {
    /// The minimum and nearest-rank 5th percentile of `samples`, or `None` if there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let i = ((0.05 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
        Some(Self {
            min: s[0],
            p5: s[i],
        })
    }
}

/// Every metric of the contract, plus our additions at the end. Field names are the JSON keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Deliveries of measured messages to live subscribers ÷ (measured messages × live
    /// subscribers other than the author).
    pub delivery_ratio: Option<f64>,
    /// Publish-to-delivery latency over those deliveries.
    pub latency_ms: Option<Percentiles>,
    /// Payload frames received ÷ deliveries − 1, over measured messages.
    pub rmr: Option<f64>,
    /// Largest hop count at which a measured message was delivered.
    pub ldh_max: Option<u64>,
    /// Payload frames of a topic received by nodes not subscribed to it.
    pub payload_frames_to_nonsubscribers: Option<u64>,
    /// Time from a crash or hang to each live former neighbour declaring the node dead.
    pub detection_ms: Option<Percentiles>,
    /// Pairs never detected (also counted in `detection_ms` as crash-to-end).
    pub detection_missed: Option<u64>,
    /// "Failed" verdicts about nodes alive, not hung and reachable at the time.
    pub false_positives: Option<u64>,
    /// Connected components of the live nodes at the end.
    pub components: Option<u64>,
    /// Live nodes with an empty active view at the end.
    pub isolated_nodes: Option<u64>,
    /// `components` just before the last `heal`.
    pub components_at_heal: Option<u64>,
    /// From the last heal to the first instant at which `components` is 1.
    pub remerge_ms: Option<f64>,
    /// Deliveries of messages their claimed author never published.
    pub forged_delivered: Option<u64>,
    /// A node delivering the same message id twice.
    pub duplicate_deliveries: Option<u64>,
    /// Frames sent by honest nodes.
    pub frames_sent: Option<u64>,
    /// Bytes sent by honest nodes.
    pub bytes_sent: Option<u64>,
    /// `bytes_sent` ÷ nodes ÷ seconds of virtual time.
    pub bytes_per_node_per_s: Option<f64>,
    /// Bytes sent per honest node per second from 60 s after the last `join`/`subscribe`
    /// event to the first `publish` event (or the end); null when that window is empty.
    pub idle_bytes_per_node_per_s: Option<f64>,
    /// (ours) Frames sent per honest node per second over the same window.
    pub idle_frames_per_node_per_s: Option<f64>,
    /// Simulator events processed.
    pub events: Option<u64>,
    /// Wall-clock seconds the run took.
    pub wall_s: Option<f64>,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: Option<f64>,
    /// From a member's first beacon to every other live member seeing it online.
    pub presence_seen_ms: Option<P50P95Max>,
    /// From a member's crash or leave to every live member seeing it offline.
    pub presence_gone_ms: Option<MedianMax>,
    /// FOAF queries that found their target.
    pub foaf_success_ratio: Option<f64>,
    /// Frames forwarded per FOAF query.
    pub foaf_forwards_per_query: Option<MeanMax>,
    /// Signing operations of honest nodes: `max` the most by one node in any 10 s window ÷
    /// 10, `mean` all of them ÷ (honest nodes × duration).
    pub signatures_per_node_per_s: Option<MeanMax>,
    /// Sampled every 5 s from the first `byzantine` event to the end: the largest number of
    /// honest nodes whose node-level active view, or the active view of a topic they subscribe
    /// to, holds no honest peer (an empty view counts). Null without a `byzantine` event.
    pub eclipsed_nodes: Option<u64>,
    /// Over the same samples and honest nodes: the honest share of each node-level active view
    /// (an empty view counts 0).
    pub honest_view_fraction: Option<MinP5>,
    /// (ours) Frames refused by honest nodes (decode errors, bad records, bad versions, ...).
    pub rejected_frames: Option<u64>,
    /// (ours) Peak RSS growth attributable to the simulated nodes, KiB per node.
    pub memory_per_node_kb: Option<f64>,
    /// (ours) Simulator events per wall-clock second.
    pub events_per_s: Option<f64>,
    /// (ours) `presence_gone_ms` of the members that left gracefully (offline beacon).
    pub presence_gone_left_ms: Option<MedianMax>,
    /// (ours) `presence_gone_ms` of the members that crashed (beacons stop; TTL).
    pub presence_gone_crashed_ms: Option<MedianMax>,
    /// (ours) `latency_ms` of the measured messages published before the first `crash`.
    pub latency_before_crash_ms: Option<Percentiles>,
    /// (ours) `latency_ms` of the measured messages published at or after the first `crash`.
    pub latency_after_crash_ms: Option<Percentiles>,
    /// (ours) `latency_after_crash_ms.p99 ÷ latency_before_crash_ms.p99`: how much a crash
    /// slows the broadcast down while it is being repaired.
    pub latency_p99_after_crash_ratio: Option<f64>,
}

impl Metrics {
    /// The value of a dotted metric key (`latency_ms.p95`), or `None` if null or unknown.
    pub fn get(&self, key: &str) -> Option<f64> {
        let json = serde_json::to_value(self).ok()?;
        let mut v = &json;
        for part in key.split('.') {
            v = v.get(part)?;
        }
        v.as_f64()
    }
}

/// What the report plots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Every measured delivery's latency, ms.
    pub latency_ms: Vec<f64>,
    /// (virtual seconds since start, cumulative measured deliveries).
    pub deliveries_over_time: Vec<(f64, u64)>,
    /// Active-view size of every live node at the end.
    pub active_view_degree: Vec<u64>,
    /// Frames sent by each node (by node number).
    pub frames_per_node: Vec<u64>,
    /// (virtual seconds since start, components of the live nodes), sampled.
    pub components_over_time: Vec<(f64, u64)>,
}

/// One `[[expect]]` and how it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectOutcome {
    /// The metric key.
    pub metric: String,
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// The measured value (`None`: null).
    pub value: Option<f64>,
    /// Whether the bound held (a null value never passes).
    pub passed: bool,
}

impl ExpectOutcome {
    /// Checks `expect` against `metrics`.
    pub fn check(expect: &crate::scenario::Expect, metrics: &Metrics) -> Self {
        let value = metrics.get(&expect.metric);
        let passed = value.is_some_and(|v| {
            expect.min.is_none_or(|m| v >= m) && expect.max.is_none_or(|m| v <= m)
        });
        Self {
            metric: expect.metric.clone(),
            min: expect.min,
            max: expect.max,
            value,
            passed,
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The scenario's name.
    pub name: String,
    /// The scenario file, if it came from one.
    pub file: Option<String>,
    /// The seed used.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Virtual seconds simulated.
    pub duration_s: f64,
    /// The crypto used ("sim-fast" or "pure-rust").
    pub crypto: String,
    /// All metrics.
    pub metrics: Metrics,
    /// Bounds and outcomes.
    pub expectations: Vec<ExpectOutcome>,
    /// Things the reader must know (actions this build cannot perform yet, ...).
    pub warnings: Vec<String>,
    /// BLAKE3 over every delivered frame and event, in order (hex).
    pub trace_hash: String,
    /// The command that replays this run exactly.
    pub replay_command: String,
    /// Plot data (not part of the JSON metrics contract, but written alongside).
    pub series: Series,
    /// Honest traffic by message kind over the idle window (or the whole run): only with
    /// `--traffic`.
    pub traffic: Vec<TrafficRow>,
}

impl RunResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|e| e.passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&s).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[7.0]).unwrap().p50, 7.0);
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn min_and_fifth_percentile() {
        let s: Vec<f64> = (1..=40).map(|i| f64::from(i) / 40.0).collect();
        let m = MinP5::of(&s).unwrap();
        assert_eq!((m.min, m.p5), (1.0 / 40.0, 2.0 / 40.0));
        assert_eq!(MinP5::of(&[0.5]).unwrap().p5, 0.5);
        assert!(MinP5::of(&[]).is_none());
    }

    #[test]
    fn dotted_lookup_and_nulls() {
        let m = Metrics {
            latency_ms: Percentiles::of(&[1.0, 2.0]),
            components: Some(3),
            ..Metrics::default()
        };
        assert_eq!(m.get("latency_ms.p95"), Some(2.0));
        assert_eq!(m.get("components"), Some(3.0));
        assert_eq!(m.get("delivery_ratio"), None);
        assert_eq!(m.get("no_such"), None);
        let json = serde_json::to_value(&m).unwrap();
        assert!(
            json.get("delivery_ratio").unwrap().is_null(),
            "null metrics must be present as null"
        );
        for key in crate::scenario::METRIC_KEYS {
            let top = key.split('.').next().unwrap();
            assert!(json.get(top).is_some(), "metric {key} missing from JSON");
        }
    }
}

/// One line of the traffic table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficRow {
    /// The message's label (`Topic.Membership.Shuffle`).
    pub message: String,
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent.
    pub bytes: u64,
}
