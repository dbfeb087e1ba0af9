//! Bookkeeping for the delivery metrics: which messages the simulator had nodes publish, which
//! payload frames honest nodes were handed, and what they delivered.
//!
//! Exact definitions (also in `sim/scenarios/README.md`, "Metrics details"):
//!
//! - A *payload frame* is a frame of kind 3 that decodes as `TopicMessage::Broadcast` carrying
//!   `plumtree::Message::Gossip` or `Message::Repair`; its message id is that of the signed
//!   message inside, its topic the frame's.
//! - A payload frame is *received* when the simulator hands it to `handle_frame` of a node that
//!   is not Byzantine at that instant (frames lost on the link, or arriving at a crashed or hung
//!   node, were never received). Any sender counts, honest or not.
//! - A *delivery* is an `Event::Delivered` from a node that is not Byzantine at that instant.
//! - `rmr` = (payload frames received of measured messages) ÷ (deliveries of measured
//!   messages) − 1.
//! - `delivery_ratio` counts, for each measured message, the distinct nodes that delivered it
//!   and are, at the end of the run, live subscribers of its topic (other than its author),
//!   over measured messages × such subscribers. `latency_ms` is taken over exactly those
//!   deliveries (the first one per node and message), from the instant of `publish()`.
//! - `ldh_max` is the largest `hops` of any delivery of a measured message.
//! - `payload_frames_to_nonsubscribers` counts received payload frames (all messages, measured
//!   or not) whose receiver was not subscribed to the frame's topic just before handling it.
//! - `forged_delivered` counts deliveries whose id the claimed author never returned from
//!   `publish()` in this run; `duplicate_deliveries` counts every delivery of an id the same node
//!   had delivered before (in any of its lives).

use crate::metrics::Percentiles;
use bytes::Bytes;
use hearsay_proto::broadcast::plumtree::{Message as Plumtree, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::frame::Frame;
use hearsay_proto::{MessageId, TimeDelta, Timestamp, TopicId};
use std::collections::{HashMap, HashSet};

/// The topic and payload of a payload frame, or `None` for any other frame. Frames of other
/// kinds are recognised from their first two bytes and never decoded.
pub fn payload_of(frame: &Bytes) -> Option<(TopicId, Payload)> {
    if crate::byzantine::frame_kind(frame) != Some(3) {
        return None;
    }
    match Frame::decode_shared(frame).ok()? {
        Frame::Topic(TopicMessage::Broadcast {
            topic,
            message: Plumtree::Gossip(p) | Plumtree::Repair(p),
        }) => Some((topic, p)),
        _ => None,
    }
}

/// One message the simulator had a node publish.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its id, as `publish()` returned it.
    pub id: MessageId,
    /// Its topic.
    pub topic: TopicId,
    /// The author's node number.
    pub author: usize,
    /// The instant of `publish()`.
    pub at: Timestamp,
    /// Whether it counts in the metrics.
    pub measure: bool,
}

#[derive(Debug, Clone, Copy)]
struct Delivery {
    message: u32,
    node: u32,
    at: Timestamp,
}

/// The delivery metrics, computed at the end of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryMetrics {
    /// See the module documentation.
    pub delivery_ratio: Option<f64>,
    /// Percentiles of `latency_samples`.
    pub latency_ms: Option<Percentiles>,
    /// See the module documentation.
    pub rmr: Option<f64>,
    /// See the module documentation.
    pub ldh_max: Option<u64>,
    /// See the module documentation.
    pub payload_frames_to_nonsubscribers: Option<u64>,
    /// See the module documentation.
    pub forged_delivered: Option<u64>,
    /// See the module documentation.
    pub duplicate_deliveries: Option<u64>,
    /// (ours) `latency_ms` of the measured messages published before the first crash.
    pub latency_before_crash_ms: Option<Percentiles>,
    /// (ours) `latency_ms` of the measured messages published at or after the first crash.
    pub latency_after_crash_ms: Option<Percentiles>,
    /// Every latency counted, ms.
    pub latency_samples: Vec<f64>,
    /// (virtual seconds since start, cumulative counted deliveries).
    pub deliveries_over_time: Vec<(f64, u64)>,
}

/// What the world records about broadcast as the run goes.
#[derive(Debug, Default)]
pub struct Tracker {
    publishing: bool,
    messages: Vec<Published>,
    by_id: HashMap<MessageId, u32>,
    /// (node, id) of every delivery at an honest node.
    delivered: HashSet<(u32, MessageId)>,
    /// First delivery per (node, measured message).
    measured: Vec<Delivery>,
    measured_events: u64,
    measured_frames: u64,
    ldh_max: Option<u8>,
    to_nonsubscribers: u64,
    forged: u64,
    duplicates: u64,
    /// When the first node crashed, if one did.
    first_crash: Option<Timestamp>,
}

impl Tracker {
    /// A tracker; `publishing`: whether the scenario publishes at all (the counting metrics
    /// are numbers then, `null` otherwise).
    pub fn new(publishing: bool) -> Self {
        Self {
            publishing,
            ..Self::default()
        }
    }

    /// Records a message `author` published.
    pub fn published(&mut self, message: Published) {
        self.by_id.insert(message.id, self.messages.len() as u32);
        self.messages.push(message);
    }

    /// A node crashed at `now` (the first crash splits the latencies in before and after).
    pub fn crashed(&mut self, now: Timestamp) {
        self.first_crash.get_or_insert(now);
    }

    /// Messages published so far.
    pub fn messages(&self) -> &[Published] {
        &self.messages
    }

    /// Whether the scenario publishes at all.
    pub fn publishing(&self) -> bool {
        self.publishing
    }

    /// A payload frame handed to an honest node; `subscribed`: whether that node subscribed to
    /// the frame's topic just before.
    pub fn frame_received(&mut self, id: &MessageId, subscribed: bool) {
        if !subscribed {
            self.to_nonsubscribers += 1;
        }
        if self.measured_index(id).is_some() {
            self.measured_frames += 1;
        }
    }

    fn measured_index(&self, id: &MessageId) -> Option<u32> {
        self.by_id
            .get(id)
            .copied()
            .filter(|&m| self.messages[m as usize].measure)
    }

    /// An honest node delivered `id`, claimed to be by node `author` (`None`: not a node of
    /// this world) and dated `timestamp`. It is genuine only if that author's `publish()`
    /// returned that id at that instant (the id covers topic, sequence and payload; the
    /// timestamp is signed but not part of the id).
    pub fn delivered(
        &mut self,
        now: Timestamp,
        node: usize,
        id: MessageId,
        author: Option<usize>,
        timestamp: Timestamp,
        hops: u8,
    ) {
        let first = self.delivered.insert((node as u32, id));
        if !first {
            self.duplicates += 1;
        }
        let genuine = self.by_id.get(&id).is_some_and(|&m| {
            let m = &self.messages[m as usize];
            Some(m.author) == author && m.at == timestamp
        });
        if !genuine {
            self.forged += 1;
            return;
        }
        if let Some(message) = self.measured_index(&id) {
            self.measured_events += 1;
            self.ldh_max = self.ldh_max.max(Some(hops));
            if first {
                self.measured.push(Delivery {
                    message,
                    node: node as u32,
                    at: now,
                });
            }
        }
    }

    /// The metrics. `live_subscriber(node, topic)`: whether `node` is live at the end and
    /// subscribed to `topic` then. `nodes`: how many nodes there are.
    pub fn finish(
        &self,
        nodes: usize,
        start: Timestamp,
        live_subscriber: impl Fn(usize, &TopicId) -> bool,
    ) -> DeliveryMetrics {
        let count = |v: u64| self.publishing.then_some(v);
        let mut out = DeliveryMetrics {
            payload_frames_to_nonsubscribers: count(self.to_nonsubscribers),
            forged_delivered: count(self.forged),
            duplicate_deliveries: count(self.duplicates),
            ldh_max: self.ldh_max.map(u64::from),
            rmr: (self.measured_events > 0)
                .then(|| self.measured_frames as f64 / self.measured_events as f64 - 1.0),
            ..DeliveryMetrics::default()
        };
        // Live subscribers per topic of a measured message, as a membership table.
        let mut subscribers: HashMap<TopicId, Vec<bool>> = HashMap::new();
        for m in self.messages.iter().filter(|m| m.measure) {
            subscribers
                .entry(m.topic)
                .or_insert_with(|| (0..nodes).map(|i| live_subscriber(i, &m.topic)).collect());
        }
        let count_of: HashMap<TopicId, u64> = subscribers
            .iter()
            .map(|(t, v)| (*t, v.iter().filter(|&&b| b).count() as u64))
            .collect();
        let mut expected = 0u64;
        for m in self.messages.iter().filter(|m| m.measure) {
            let author_counts = subscribers[&m.topic][m.author];
            expected += count_of[&m.topic] - u64::from(author_counts);
        }
        let mut times = Vec::new();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for d in &self.measured {
            let m = &self.messages[d.message as usize];
            if d.node as usize != m.author && subscribers[&m.topic][d.node as usize] {
                let ms = (d.at - m.at).as_micros() as f64 / 1000.0;
                out.latency_samples.push(ms);
                times.push(d.at);
                if let Some(crash) = self.first_crash {
                    if m.at < crash {
                        &mut before
                    } else {
                        &mut after
                    }
                    .push(ms);
                }
            }
        }
        out.latency_before_crash_ms = Percentiles::of(&before);
        out.latency_after_crash_ms = Percentiles::of(&after);
        if expected > 0 {
            out.delivery_ratio = Some(times.len() as f64 / expected as f64);
        }
        out.latency_ms = Percentiles::of(&out.latency_samples);
        times.sort_unstable();
        out.deliveries_over_time = cumulative(&times, start, self.first_measured());
        out
    }

    fn first_measured(&self) -> Option<Timestamp> {
        self.messages
            .iter()
            .filter(|m| m.measure)
            .map(|m| m.at)
            .min()
    }
}

/// Most points in the deliveries-over-time series.
const MAX_POINTS: usize = 500;

/// The cumulative count of the sorted instants `times`, as (seconds since `start`, count),
/// starting at zero at `from` and thinned to about [`MAX_POINTS`] points.
fn cumulative(times: &[Timestamp], start: Timestamp, from: Option<Timestamp>) -> Vec<(f64, u64)> {
    let secs = |t: Timestamp| (t - start).as_micros() as f64 / 1e6;
    let (Some(from), Some(last)) = (from, times.last()) else {
        return Vec::new();
    };
    let mut out = vec![(secs(from.min(times[0])), 0)];
    let step = times.len().div_ceil(MAX_POINTS).max(1);
    let mut i = step - 1;
    while i < times.len() {
        out.push((secs(times[i]), i as u64 + 1));
        i += step;
    }
    if out.last().is_some_and(|p| p.1 != times.len() as u64) {
        out.push((secs(*last), times.len() as u64));
    }
    out
}

/// Deterministic payload bytes for message `k` of publish event `event` in a run with `seed`.
pub fn payload_bytes(seed: u64, event: usize, k: u64, size: usize) -> Vec<u8> {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(event as u64).to_le_bytes());
    key[16..].copy_from_slice(&k.to_le_bytes());
    let mut hasher = blake3::Hasher::new_derive_key("hearsay-sim payload v1");
    hasher.update(&key);
    let mut out = vec![0u8; size];
    hasher.finalize_xof().fill(&mut out);
    out
}

/// The instant of message `k` of a publish at `at` with `rate` messages per second.
pub fn publish_instant(at: Timestamp, k: u64, rate: f64) -> Timestamp {
    at + TimeDelta::from_micros((k as f64 * 1e6 / rate).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_series_starts_at_zero_and_ends_at_the_total() {
        let start = Timestamp::from_secs(100);
        let times: Vec<Timestamp> = (0..2000)
            .map(|i| start + TimeDelta::from_millis(1000 + i))
            .collect();
        let s = cumulative(&times, start, Some(start + TimeDelta::from_secs(1)));
        assert_eq!(s[0], (1.0, 0));
        assert_eq!(s.last().unwrap().1, 2000);
        assert!(s.len() <= MAX_POINTS + 2);
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!(cumulative(&[], start, None).is_empty());
    }

    #[test]
    fn payloads_are_deterministic_and_sized() {
        assert_eq!(payload_bytes(1, 2, 3, 100), payload_bytes(1, 2, 3, 100));
        assert_ne!(payload_bytes(1, 2, 3, 100), payload_bytes(1, 2, 4, 100));
        assert_eq!(payload_bytes(1, 2, 3, 0).len(), 0);
        assert_eq!(payload_bytes(9, 0, 0, 1024).len(), 1024);
    }

    fn id(n: u8) -> MessageId {
        MessageId::from_bytes([n; 32])
    }

    #[test]
    fn forged_duplicate_and_ratio_accounting() {
        let t0 = Timestamp::from_secs(10);
        let topic = TopicId::from_name("t");
        let mut tr = Tracker::new(true);
        tr.published(Published {
            id: id(1),
            topic,
            author: 0,
            at: t0,
            measure: true,
        });
        tr.published(Published {
            id: id(2),
            topic,
            author: 1,
            at: t0,
            measure: false,
        });
        let later = t0 + TimeDelta::from_millis(40);
        tr.frame_received(&id(1), true);
        tr.frame_received(&id(1), true);
        tr.frame_received(&id(2), false);
        tr.delivered(later, 1, id(1), Some(0), t0, 1);
        tr.delivered(later, 1, id(1), Some(0), t0, 1); // a duplicate
        tr.delivered(later, 2, id(1), Some(1), t0, 1); // wrong author: forged
        tr.delivered(later, 2, id(9), Some(0), t0, 1); // never published: forged
        tr.delivered(later, 0, id(1), Some(0), later, 1); // re-dated: forged
        tr.delivered(later, 3, id(2), Some(1), t0, 4); // unmeasured
        let m = tr.finish(4, Timestamp::from_secs(0), |i, _| i != 3);
        assert_eq!(m.duplicate_deliveries, Some(1));
        assert_eq!(m.forged_delivered, Some(3));
        assert_eq!(m.payload_frames_to_nonsubscribers, Some(1));
        // Live subscribers 0, 1, 2; other than the author (0): 1 and 2; node 1 delivered.
        assert_eq!(m.delivery_ratio, Some(0.5));
        assert_eq!(m.latency_ms.unwrap().max, 40.0);
        assert_eq!(m.ldh_max, Some(1));
        // Two frames for two deliveries (one a duplicate) of the measured message.
        assert_eq!(m.rmr, Some(0.0));
        let empty = Tracker::default().finish(4, t0, |_, _| true);
        assert_eq!(empty, DeliveryMetrics::default());
    }
}
