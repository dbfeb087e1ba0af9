//! What the world measures while it runs (failure-detection times and false positives,
//! connected components and re-merge after a heal) and, at the end, the metrics and checked
//! expectations of the [`RunResult`].

use super::{Ev, NodeState, SimNode, World};
use crate::SIM_EPOCH;
use crate::metrics::{ExpectOutcome, Metrics, Percentiles, RunResult, Series};
use hearsay_proto::{TimeDelta, Timestamp};

impl World {
    /// Samples the number of components (finely while waiting for the final re-merge).
    pub(super) fn sample_components(&mut self, now: Timestamp) {
        let comps = self.components();
        self.components_series
            .push(((now - SIM_EPOCH).as_micros() as f64 / 1e6, comps));
        if let Some(heal) = self.last_heal_at
            && Some(heal) == self.final_heal_at
            && self.remerge_ms.is_none()
            && comps == 1
        {
            self.remerge_ms = Some((now - heal).as_micros() as f64 / 1000.0);
        }
        // Fine sampling while waiting for the final re-merge, coarse otherwise.
        let waiting = self.last_heal_at.is_some()
            && self.last_heal_at == self.final_heal_at
            && self.remerge_ms.is_none();
        let next = if waiting {
            TimeDelta::from_millis(100)
        } else {
            self.sample_every
        };
        self.scheduler.schedule(now + next, Ev::SampleComponents);
    }

    /// Node `i` reports neighbour `x` as failed: a detection sample if `x` had stopped, a
    /// false positive if `x` is running and reachable both ways.
    pub(super) fn neighbor_failed(&mut self, now: Timestamp, i: usize, x: usize) {
        if let Some(t) = self.pending_detection.remove(&(i, x)) {
            self.detection_samples
                .push((now - t).as_micros() as f64 / 1000.0);
        }
        // Only verdicts about honest nodes are false positives (contract v4).
        let alive = self.nodes[x].state == NodeState::Running && self.nodes[x].adversary.is_none();
        if alive && self.reachable(i, x) && self.reachable(x, i) && self.is_live(i) {
            self.false_positives += 1;
        }
    }

    /// A node stops (crash or hang): every live node that has it as a neighbour now starts a
    /// detection clock.
    pub(super) fn note_departure(&mut self, now: Timestamp, x: usize) {
        let peer = self.nodes[x].peer;
        for l in 0..self.nodes.len() {
            if l != x
                && self.is_live(l)
                && self.nodes[l]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.inspect().neighbors().any(|p| p == peer))
            {
                self.pending_detection.insert((l, x), now);
            }
        }
        // Pairs where x was the one watching can no longer be detected by x.
        self.pending_detection.retain(|(l, _), _| *l != x);
    }

    /// Connected components of the live nodes (an active-view entry in either direction is an
    /// edge while both ends are reachable both ways).
    pub fn components(&self) -> u64 {
        let n = self.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let live: Vec<bool> = (0..n).map(|i| self.is_live(i)).collect();
        for i in 0..n {
            if !live[i] {
                continue;
            }
            let Some(node) = self.nodes[i].node.as_ref() else {
                continue;
            };
            for peer in node.inspect().neighbors() {
                let Some(&j) = self.index.get(&peer) else {
                    continue;
                };
                if live[j] && self.reachable(i, j) && self.reachable(j, i) {
                    let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                    if ri != rj {
                        parent[ri] = rj;
                    }
                }
            }
        }
        let mut roots = std::collections::BTreeSet::new();
        for (i, _) in live.iter().enumerate().filter(|(_, l)| **l) {
            roots.insert(find(&mut parent, i));
        }
        roots.len() as u64
    }

    /// Computes the metrics, checks the expectations, and returns everything.
    pub fn finish(
        mut self,
        wall_s: f64,
        baseline_rss_kb: Option<u64>,
        file: Option<String>,
    ) -> RunResult {
        let end = self.end;
        self.run_until(end);
        // The scenario's nodes; the identities adversaries made come after them and are never
        // honest, so they are in no per-node figure.
        let n = self.base_nodes;
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect();
        let mut detection = std::mem::take(&mut self.detection_samples);
        let missed = self.pending_detection.len() as u64;
        for t in self.pending_detection.values() {
            detection.push((end - *t).as_micros() as f64 / 1000.0);
        }
        let had_pairs = !detection.is_empty();
        let degrees: Vec<u64> = live
            .iter()
            .filter_map(|&i| {
                self.nodes[i]
                    .node
                    .as_ref()
                    .map(|x| x.inspect().neighbors().count() as u64)
            })
            .collect();
        let honest = |s: &SimNode| s.adversary.is_none();
        let frames_sent: u64 = self
            .nodes
            .iter()
            .filter(|s| honest(s))
            .map(|s| s.frames_sent)
            .sum();
        let bytes_sent: u64 = self
            .nodes
            .iter()
            .filter(|s| honest(s))
            .map(|s| s.bytes_sent)
            .sum();
        let rejected: u64 = self
            .nodes
            .iter()
            .filter(|s| honest(s))
            .filter_map(|s| s.node.as_ref())
            .map(|x| x.inspect().counters().frames_rejected())
            .sum();
        let secs = self.scenario.duration.as_micros() as f64 / 1e6;
        let delivery = self
            .broadcast
            .finish(self.nodes.len(), SIM_EPOCH, |i, topic| {
                self.is_live(i)
                    && self.nodes[i]
                        .node
                        .as_ref()
                        .is_some_and(|x| x.inspect().is_subscribed(topic))
            });
        let honest_nodes = self.nodes.iter().filter(|s| honest(s)).count();
        let idle = self.idle.rates(honest_nodes);
        let peak = crate::rss::peak_rss_kb();
        let (foaf_success_ratio, foaf_forwards_per_query) = self.discovery.foaf_metrics();
        let (eclipsed_nodes, honest_view_fraction) = self.eclipse_metrics();
        let presence = self.discovery.presence_metrics(end, |i| self.is_live(i));
        let metrics = Metrics {
            presence_seen_ms: presence.seen,
            presence_gone_ms: presence.gone,
            presence_gone_left_ms: presence.gone_left,
            presence_gone_crashed_ms: presence.gone_crashed,
            foaf_success_ratio,
            foaf_forwards_per_query,
            signatures_per_node_per_s: self.signature_metrics(secs),
            eclipsed_nodes,
            honest_view_fraction,
            delivery_ratio: delivery.delivery_ratio,
            latency_ms: delivery.latency_ms,
            latency_p99_after_crash_ratio: match (
                &delivery.latency_before_crash_ms,
                &delivery.latency_after_crash_ms,
            ) {
                (Some(b), Some(a)) if b.p99 > 0.0 => Some(a.p99 / b.p99),
                _ => None,
            },
            latency_before_crash_ms: delivery.latency_before_crash_ms,
            latency_after_crash_ms: delivery.latency_after_crash_ms,
            rmr: delivery.rmr,
            ldh_max: delivery.ldh_max,
            payload_frames_to_nonsubscribers: delivery.payload_frames_to_nonsubscribers,
            forged_delivered: delivery.forged_delivered,
            duplicate_deliveries: delivery.duplicate_deliveries,
            detection_ms: if had_pairs {
                Percentiles::of(&detection)
            } else {
                None
            },
            detection_missed: had_pairs.then_some(missed),
            false_positives: Some(self.false_positives),
            components: Some(self.components()),
            isolated_nodes: Some(degrees.iter().filter(|&&d| d == 0).count() as u64),
            components_at_heal: self.components_at_heal,
            remerge_ms: self.remerge_ms,
            frames_sent: Some(frames_sent),
            bytes_sent: Some(bytes_sent),
            bytes_per_node_per_s: (n > 0 && secs > 0.0)
                .then(|| bytes_sent as f64 / n as f64 / secs),
            idle_bytes_per_node_per_s: idle.map(|r| r.0),
            idle_frames_per_node_per_s: idle.map(|r| r.1),
            events: Some(self.events_processed),
            wall_s: Some(wall_s),
            peak_rss_mb: peak.map(|kb| kb as f64 / 1024.0),
            rejected_frames: Some(rejected),
            memory_per_node_kb: match (peak, baseline_rss_kb) {
                (Some(p), Some(b)) if n > 0 => Some(p.saturating_sub(b) as f64 / n as f64),
                _ => None,
            },
            events_per_s: (wall_s > 0.0).then(|| self.events_processed as f64 / wall_s),
        };
        let expectations = self
            .scenario
            .expects
            .iter()
            .map(|e| ExpectOutcome::check(e, &metrics))
            .collect();
        let series = Series {
            latency_ms: delivery.latency_samples,
            deliveries_over_time: delivery.deliveries_over_time,
            active_view_degree: degrees,
            frames_per_node: self.nodes[..n].iter().map(|s| s.frames_sent).collect(),
            components_over_time: std::mem::take(&mut self.components_series),
        };
        let replay_command = match &file {
            Some(f) => format!(
                "cargo run --release -p hearsay-sim -- run {f} --seed {} --nodes {n}",
                self.seed
            ),
            None => format!("(built in code) seed {} nodes {n}", self.seed),
        };
        RunResult {
            name: self.scenario.name.clone(),
            file,
            seed: self.seed,
            nodes: n,
            duration_s: secs,
            crypto: self.crypto.name().to_string(),
            metrics,
            expectations,
            warnings: std::mem::take(&mut self.warnings),
            trace_hash: self.trace.finalize().to_hex().to_string(),
            replay_command,
            series,
            traffic: self.traffic.as_ref().map(|t| t.rows()).unwrap_or_default(),
        }
    }
}
