//! Presence and FOAF in the simulator: the `presence` and `foaf` actions' bookkeeping and the
//! metrics computed from what the nodes reported (`presence_seen_ms`, `presence_gone_ms`,
//! `foaf_success_ratio`, `foaf_forwards_per_query`).

use crate::metrics::{MeanMax, MedianMax, P50P95Max, Percentiles};
use hearsay_proto::discovery::foaf::{DiscoveryMessage, QueryId};
use hearsay_proto::{Frame, PeerId, TimeDelta, Timestamp, TopicId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One presence group of the run.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its presence topic.
    pub topic: TopicId,
    /// Its members (node numbers) and when each started beaconing.
    pub started: BTreeMap<usize, Timestamp>,
}

/// A query a node started for the `foaf` action.
#[derive(Debug, Clone)]
struct Query {
    target: PeerId,
    found: bool,
}

/// The presence metrics of a run.
#[derive(Debug, Clone, Copy)]
pub struct PresenceFigures {
    /// `presence_seen_ms`.
    pub seen: Option<P50P95Max>,
    /// `presence_gone_ms`.
    pub gone: Option<MedianMax>,
    /// `presence_gone_left_ms`.
    pub gone_left: Option<MedianMax>,
    /// `presence_gone_crashed_ms`.
    pub gone_crashed: Option<MedianMax>,
}

/// What the run did and saw.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Groups by name.
    pub groups: BTreeMap<String, Group>,
    /// Group name by topic.
    names: HashMap<TopicId, String>,
    /// First time observer saw member online, per (topic, observer, member).
    seen: HashMap<(TopicId, usize, usize), Timestamp>,
    /// Offline reports, per (topic, observer, member): every time one came.
    offline: HashMap<(TopicId, usize, usize), Vec<Timestamp>>,
    /// Members that crashed or left, when, and whether they crashed.
    departures: Vec<(TopicId, usize, Timestamp, bool)>,
    /// Queries by (origin, id).
    queries: BTreeMap<(usize, QueryId), Query>,
    /// Query frames sent, by query id (the origin's and every relay's).
    forwards: HashMap<QueryId, u64>,
    /// `foaf` queries that found no origin with a node at the distance asked.
    pub unplaceable: u64,
}

impl Tracker {
    /// A group formed: `members` started at `now`.
    pub fn group_started(&mut self, name: &str, topic: TopicId, members: &[usize], now: Timestamp) {
        self.names.insert(topic, name.to_string());
        let g = self.groups.entry(name.to_string()).or_insert(Group {
            topic,
            started: BTreeMap::new(),
        });
        for &m in members {
            g.started.entry(m).or_insert(now);
        }
    }

    /// Whether node `i` is a member of group `name`.
    pub fn is_member(&self, name: &str, i: usize) -> bool {
        self.groups
            .get(name)
            .is_some_and(|g| g.started.contains_key(&i))
    }

    /// Node `i` crashed or left at `now`: every group it is a member of notes the departure.
    pub fn departed(&mut self, i: usize, now: Timestamp, crashed: bool) {
        for g in self.groups.values() {
            if g.started.contains_key(&i) {
                self.departures.push((g.topic, i, now, crashed));
            }
        }
    }

    /// `observer` saw `member` online in the group of `topic`.
    pub fn online(&mut self, topic: TopicId, observer: usize, member: usize, now: Timestamp) {
        self.seen.entry((topic, observer, member)).or_insert(now);
    }

    /// `observer` saw `member` go offline.
    pub fn offline(&mut self, topic: TopicId, observer: usize, member: usize, now: Timestamp) {
        self.offline
            .entry((topic, observer, member))
            .or_default()
            .push(now);
    }

    /// `origin` started query `id` for `target`.
    pub fn query_started(&mut self, origin: usize, id: QueryId, target: PeerId) {
        self.queries.insert(
            (origin, id),
            Query {
                target,
                found: false,
            },
        );
    }

    /// `origin` got records for query `id`.
    pub fn query_found(&mut self, origin: usize, id: QueryId, peers: impl Iterator<Item = PeerId>) {
        if let Some(q) = self.queries.get_mut(&(origin, id)) {
            let target = q.target;
            q.found |= peers.into_iter().any(|p| p == target);
        }
    }

    /// A frame left a node: query frames are counted per query id.
    pub fn frame_sent(&mut self, frame: &[u8]) {
        // [kind, body] with kind 5: 0x82 0x05.
        if frame.len() < 2 || frame[0] != 0x82 || frame[1] != 0x05 {
            return;
        }
        if let Ok(Frame::Discovery(DiscoveryMessage::Query(q))) = Frame::decode(frame) {
            *self.forwards.entry(q.id).or_insert(0) += 1;
        }
    }

    /// `foaf_success_ratio` and `foaf_forwards_per_query`.
    pub fn foaf_metrics(&self) -> (Option<f64>, Option<MeanMax>) {
        if self.queries.is_empty() {
            return (None, None);
        }
        let n = self.queries.len() as f64;
        let found = self.queries.values().filter(|q| q.found).count() as f64;
        let forwards: Vec<f64> = self
            .queries
            .keys()
            .map(|(_, id)| self.forwards.get(id).copied().unwrap_or(0) as f64)
            .collect();
        let mean = forwards.iter().sum::<f64>() / n;
        let max = forwards.iter().copied().fold(0.0, f64::max);
        (Some(found / n), Some(MeanMax { mean, max }))
    }

    /// `presence_seen_ms` and `presence_gone_ms`. `live(i)` says whether node `i` is live at
    /// the end. A member nobody saw (or an observer that never saw it) counts until `end`:
    /// failures lengthen the figures, they never vanish from them.
    pub fn presence_metrics(
        &self,
        end: Timestamp,
        live: impl Fn(usize) -> bool,
    ) -> PresenceFigures {
        let ms = |d: TimeDelta| d.as_micros() as f64 / 1000.0;
        let departed: BTreeSet<(TopicId, usize)> = self
            .departures
            .iter()
            .map(|(t, m, _, _)| (*t, *m))
            .collect();
        let mut seen_samples = Vec::new();
        for g in self.groups.values() {
            for (&m, &start_m) in &g.started {
                // From a member's first beacon to every other live member seeing it online;
                // a member that departed is measured only if it was seen before it went.
                let mut worst: Option<TimeDelta> = None;
                for (&o, &start_o) in &g.started {
                    if o == m || !live(o) {
                        continue;
                    }
                    let from = start_m.max(start_o);
                    let at = self.seen.get(&(g.topic, o, m)).copied();
                    let delta = match at {
                        Some(t) => t.saturating_since(from),
                        None if departed.contains(&(g.topic, m)) => continue,
                        None => end.saturating_since(from),
                    };
                    worst = Some(worst.map_or(delta, |w: TimeDelta| w.max(delta)));
                }
                if let Some(w) = worst {
                    seen_samples.push(ms(w));
                }
            }
        }
        let mut gone_samples = Vec::new();
        let mut crashed_samples = Vec::new();
        let mut left_samples = Vec::new();
        for (topic, m, at, crashed) in &self.departures {
            let Some(g) = self.names.get(topic).and_then(|n| self.groups.get(n)) else {
                continue;
            };
            let mut worst: Option<TimeDelta> = None;
            for &o in g.started.keys() {
                if o == *m || !live(o) {
                    continue;
                }
                let gone = self
                    .offline
                    .get(&(*topic, o, *m))
                    .and_then(|v| v.iter().copied().find(|t| t >= at));
                let delta = gone.unwrap_or(end).saturating_since(*at);
                worst = Some(worst.map_or(delta, |w: TimeDelta| w.max(delta)));
            }
            if let Some(w) = worst {
                gone_samples.push(ms(w));
                if *crashed {
                    crashed_samples.push(ms(w));
                } else {
                    left_samples.push(ms(w));
                }
            }
        }
        let seen = Percentiles::of(&seen_samples).map(|p| P50P95Max {
            p50: p.p50,
            p95: p.p95,
            max: p.max,
        });
        let median_max = |s: &[f64]| {
            Percentiles::of(s).map(|p| MedianMax {
                p50: p.p50,
                max: p.max,
            })
        };
        PresenceFigures {
            seen,
            gone: median_max(&gone_samples),
            gone_left: median_max(&left_samples),
            gone_crashed: median_max(&crashed_samples),
        }
    }
}
