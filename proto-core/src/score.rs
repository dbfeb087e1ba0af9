//! Peer scores (SPEC.md §13.8): what a node has seen a peer do, weighed into one number that
//! decides who may displace a neighbour, who is evicted first, whom a missing message is
//! asked of first, and who is cut off. In the spirit of gossipsub v1.1's P1–P7: the terms are
//! time connected (P1), first deliveries (P2), invalid payloads (P4), abuse of this node's
//! budgets (P5's place), address-group colocation (P6) and broken promises (P7).
//!
//! Every counter decays: it is multiplied by 9/10 every `decay_interval`, so what a peer did
//! an hour ago no longer counts, and a peer cannot bank good behaviour for ever. The table is
//! bounded: at most [`MAX_SCORED`] peers, the one whose counters were touched longest ago
//! forgotten first (it starts again at zero, which is where a stranger starts).

use crate::id::PeerId;
use crate::time::{TimeDelta, Timestamp};
use alloc::collections::BTreeMap;

/// Most peers whose evidence is kept at once.
pub const MAX_SCORED: usize = 1024;

/// Counters are kept in thousandths, so decay by 9/10 keeps fractions.
const MILLI: u64 = 1000;

/// What a peer did that counts for or against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// It sent the first copy of a valid message this node delivered (P2).
    FirstDelivery,
    /// It promised a message and did not keep the promise: as a tree parent it missed a
    /// message it should have pushed (§15.8) (P7).
    BrokenPromise,
    /// It asked for work beyond what an honest peer asks: IWANT/GRAFT bytes beyond its
    /// serving budget, a claim about this node with an incarnation it never had (P5).
    Abuse,
    /// It sent a walk (SHUFFLE, FORWARD_JOIN) from outside the active view (P5; its own
    /// weight: an honest peer sends one in the moment after it lost its place).
    StrayWalk,
    /// It sent a payload that failed validation (P4).
    Invalid,
}

/// Weights and thresholds (SPEC.md §13.8). Points are whole numbers; the counters behind
/// them keep fractions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreConfig {
    /// P1: one point per this much time connected... Default 6 min.
    pub time_per_point: TimeDelta,
    /// P1's cap in points. Default 10 (an hour).
    pub time_cap: u32,
    /// P2: points per first delivery, in tenths. Default 5 (half a point).
    pub first_delivery_tenths: u32,
    /// P2's cap in first deliveries. Default 50 (25 points).
    pub first_delivery_cap: u32,
    /// P4: points off per invalid payload, squared. Default 20.
    pub invalid_weight: u32,
    /// P5: points off per abuse, squared. Default 1.
    pub abuse_weight: u32,
    /// P5: points off per stray walk, squared. Default 0 (counted, not weighed: see SPEC.md
    /// §13.8, "Measured").
    pub stray_walk_weight: u32,
    /// P6: links from one address group beyond this count against each of them. Default 3.
    pub colocation_threshold: u32,
    /// P6: points off per link beyond the threshold, squared. Default 5.
    pub colocation_weight: u32,
    /// P6's cap in points: colocation alone never reaches the graylist. Default 50.
    pub colocation_cap: u32,
    /// P7: points off per broken promise, squared. Default 2.
    pub broken_promise_weight: u32,
    /// Every counter is multiplied by 9/10 this often. Default 30 s.
    pub decay_interval: TimeDelta,
    /// Whether the overlays' views use scores: a newcomer scoring below `admit_threshold`
    /// displaces nobody from a full view, and the lowest-scoring unprotected neighbour is
    /// displaced first. Default off (SPEC.md §13.8, "Measured").
    pub in_views: bool,
    /// A newcomer scoring below this displaces nobody from a full view. Default 0.
    pub admit_threshold: i32,
    /// A peer scoring below this is cut off (every overlay drops it, the link is closed).
    /// Default -100.
    pub graylist_threshold: i32,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            time_per_point: TimeDelta::from_secs(360),
            time_cap: 10,
            first_delivery_tenths: 5,
            first_delivery_cap: 50,
            invalid_weight: 20,
            abuse_weight: 1,
            stray_walk_weight: 0,
            colocation_threshold: 3,
            colocation_weight: 5,
            colocation_cap: 50,
            broken_promise_weight: 2,
            decay_interval: TimeDelta::from_secs(30),
            in_views: false,
            admit_threshold: 0,
            graylist_threshold: -100,
        }
    }
}

/// One peer's decaying counters, in thousandths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    first: u64,
    broken: u64,
    abuse: u64,
    stray: u64,
    invalid: u64,
    /// When the counters were last decayed (whole intervals since are still to apply).
    at: Option<Timestamp>,
}

impl Counts {
    /// Applies the decay due at `now` (whole intervals only).
    fn decay(&mut self, now: Timestamp, interval: TimeDelta) {
        let Some(at) = self.at else {
            self.at = Some(now);
            return;
        };
        let step = interval.as_micros().max(1);
        let steps = now.saturating_since(at).as_micros() / step;
        if steps == 0 {
            return;
        }
        // After 64 steps (0.9^64 ≈ 0.001) every counter this table can hold is zero.
        for _ in 0..steps.min(64) {
            self.first = self.first * 9 / 10;
            self.broken = self.broken * 9 / 10;
            self.abuse = self.abuse * 9 / 10;
            self.stray = self.stray * 9 / 10;
            self.invalid = self.invalid * 9 / 10;
        }
        if steps >= 64 {
            *self = Self::default();
        }
        self.at = Some(at + TimeDelta::from_micros(steps.saturating_mul(step)));
    }

    fn is_zero(&self) -> bool {
        self.first == 0
            && self.broken == 0
            && self.abuse == 0
            && self.stray == 0
            && self.invalid == 0
    }
}

/// What the node knows of a peer besides its evidence, at the moment of scoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// How long its link has been up (P1).
    pub connected_for: TimeDelta,
    /// How many of the node's links share its address group, its own included (P6).
    pub colocated: u32,
}

/// The score's terms, in points (for inspection and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terms {
    /// P1, time connected.
    pub time: i32,
    /// P2, first deliveries.
    pub first_deliveries: i32,
    /// P4, invalid payloads (zero or negative).
    pub invalid: i32,
    /// P5, abuse and stray walks (zero or negative).
    pub abuse: i32,
    /// P6, colocation (zero or negative).
    pub colocation: i32,
    /// P7, broken promises (zero or negative).
    pub broken_promises: i32,
}

impl Terms {
    /// The score: the sum of the terms.
    pub fn total(&self) -> i32 {
        self.time
            .saturating_add(self.first_deliveries)
            .saturating_add(self.invalid)
            .saturating_add(self.abuse)
            .saturating_add(self.colocation)
            .saturating_add(self.broken_promises)
    }
}

/// Every peer's evidence, bounded, and the formula.
#[derive(Debug, Clone)]
pub struct PeerScores {
    config: ScoreConfig,
    counts: BTreeMap<PeerId, Counts>,
}

/// `weight · x²` for a counter `x` in thousandths, in whole points (saturating).
fn squared(weight: u32, milli: u64) -> i32 {
    let x = milli as u128;
    let points = u128::from(weight) * x * x / u128::from(MILLI * MILLI);
    i32::try_from(points).unwrap_or(i32::MAX)
}

impl PeerScores {
    /// An empty table.
    pub fn new(config: ScoreConfig) -> Self {
        Self {
            config,
            counts: BTreeMap::new(),
        }
    }

    /// The weights and thresholds.
    pub fn config(&self) -> &ScoreConfig {
        &self.config
    }

    /// Peers with evidence held.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no peer has evidence held.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Records one piece of evidence about `peer` at `now`.
    pub fn note(&mut self, now: Timestamp, peer: PeerId, evidence: Evidence) {
        if !self.counts.contains_key(&peer) && self.counts.len() >= MAX_SCORED {
            self.forget_faded(now);
            if self.counts.len() >= MAX_SCORED {
                let stalest = self
                    .counts
                    .iter()
                    .min_by_key(|(p, c)| (c.at, **p))
                    .map(|(p, _)| *p);
                if let Some(p) = stalest {
                    self.counts.remove(&p);
                }
            }
        }
        let interval = self.config.decay_interval;
        let cap = u64::from(self.config.first_delivery_cap) * MILLI;
        let c = self.counts.entry(peer).or_default();
        c.decay(now, interval);
        match evidence {
            Evidence::FirstDelivery => c.first = (c.first + MILLI).min(cap),
            Evidence::BrokenPromise => c.broken = c.broken.saturating_add(MILLI),
            Evidence::Abuse => c.abuse = c.abuse.saturating_add(MILLI),
            Evidence::StrayWalk => c.stray = c.stray.saturating_add(MILLI),
            Evidence::Invalid => c.invalid = c.invalid.saturating_add(MILLI),
        }
    }

    /// Forgets every peer whose counters have decayed to nothing.
    pub fn forget_faded(&mut self, now: Timestamp) {
        let interval = self.config.decay_interval;
        self.counts.retain(|_, c| {
            c.decay(now, interval);
            !c.is_zero()
        });
    }

    /// Forgets `peer` (it was cut off, or left for good).
    pub fn forget(&mut self, peer: &PeerId) {
        self.counts.remove(peer);
    }

    /// `peer`'s terms at `now`, given its `standing`.
    pub fn terms(&self, now: Timestamp, peer: &PeerId, standing: Standing) -> Terms {
        let cfg = &self.config;
        let mut c = self.counts.get(peer).copied().unwrap_or_default();
        if c.at.is_some() {
            c.decay(now, cfg.decay_interval);
        }
        let per_point = cfg.time_per_point.as_micros().max(1);
        let time = (standing.connected_for.as_micros() / per_point).min(u64::from(cfg.time_cap));
        let first = c.first * u64::from(cfg.first_delivery_tenths) / (10 * MILLI);
        let beyond = standing.colocated.saturating_sub(cfg.colocation_threshold);
        let colocation = squared(cfg.colocation_weight, u64::from(beyond) * MILLI)
            .min(i32::try_from(cfg.colocation_cap).unwrap_or(i32::MAX));
        Terms {
            time: i32::try_from(time).unwrap_or(i32::MAX),
            first_deliveries: i32::try_from(first).unwrap_or(i32::MAX),
            invalid: -squared(cfg.invalid_weight, c.invalid),
            abuse: -(squared(cfg.abuse_weight, c.abuse)
                .saturating_add(squared(cfg.stray_walk_weight, c.stray))),
            colocation: -colocation,
            broken_promises: -squared(cfg.broken_promise_weight, c.broken),
        }
    }

    /// `peer`'s score at `now`, given its `standing`.
    pub fn score(&self, now: Timestamp, peer: &PeerId, standing: Standing) -> i32 {
        self.terms(now, peer, standing).total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_bytes([i; 32])
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_micros(1) + TimeDelta::from_secs(secs)
    }

    #[test]
    fn a_stranger_scores_zero_and_time_connected_adds_up_to_its_cap() {
        let s = PeerScores::new(ScoreConfig::default());
        assert_eq!(s.score(at(0), &peer(1), Standing::default()), 0);
        let hour = Standing {
            connected_for: TimeDelta::from_secs(3600),
            colocated: 1,
        };
        assert_eq!(s.score(at(0), &peer(1), hour), 10);
        let day = Standing {
            connected_for: TimeDelta::from_secs(86_400),
            colocated: 1,
        };
        assert_eq!(s.score(at(0), &peer(1), day), 10, "capped");
    }

    #[test]
    fn first_deliveries_count_up_to_their_cap_and_decay() {
        let mut s = PeerScores::new(ScoreConfig::default());
        for _ in 0..10 {
            s.note(at(0), peer(1), Evidence::FirstDelivery);
        }
        assert_eq!(s.score(at(0), &peer(1), Standing::default()), 5);
        for _ in 0..1000 {
            s.note(at(0), peer(1), Evidence::FirstDelivery);
        }
        assert_eq!(s.score(at(0), &peer(1), Standing::default()), 25);
        // Ten intervals: 50 × 0.9^10 ≈ 17 deliveries, 8 points.
        assert_eq!(s.score(at(300), &peer(1), Standing::default()), 8);
        s.forget_faded(at(30 * 64));
        assert!(s.is_empty(), "decayed to nothing, forgotten");
    }

    #[test]
    fn penalties_grow_with_the_square_and_reach_the_graylist() {
        let mut s = PeerScores::new(ScoreConfig::default());
        let cfg = s.config().clone();
        for n in 1..=3 {
            s.note(at(0), peer(1), Evidence::Invalid);
            assert_eq!(s.score(at(0), &peer(1), Standing::default()), -(20 * n * n));
        }
        assert!(s.score(at(0), &peer(1), Standing::default()) < cfg.graylist_threshold);
        // Abuse: ten are -100, eleven cross the graylist.
        for _ in 0..11 {
            s.note(at(0), peer(2), Evidence::Abuse);
        }
        assert_eq!(s.score(at(0), &peer(2), Standing::default()), -121);
        s.note(at(0), peer(3), Evidence::BrokenPromise);
        assert_eq!(s.score(at(0), &peer(3), Standing::default()), -2);
        // Stray walks are counted but weigh nothing by default.
        for _ in 0..50 {
            s.note(at(0), peer(4), Evidence::StrayWalk);
        }
        assert_eq!(s.score(at(0), &peer(4), Standing::default()), 0);
        let mut weighed = PeerScores::new(ScoreConfig {
            stray_walk_weight: 1,
            ..ScoreConfig::default()
        });
        for _ in 0..5 {
            weighed.note(at(0), peer(4), Evidence::StrayWalk);
        }
        assert_eq!(weighed.score(at(0), &peer(4), Standing::default()), -25);
    }

    #[test]
    fn colocation_counts_beyond_its_threshold_and_never_reaches_the_graylist_alone() {
        let s = PeerScores::new(ScoreConfig::default());
        let with = |colocated| Standing {
            connected_for: TimeDelta::ZERO,
            colocated,
        };
        assert_eq!(s.score(at(0), &peer(1), with(3)), 0);
        assert_eq!(s.score(at(0), &peer(1), with(4)), -5);
        assert_eq!(s.score(at(0), &peer(1), with(5)), -20);
        assert_eq!(s.score(at(0), &peer(1), with(300)), -50);
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_stalest() {
        let mut s = PeerScores::new(ScoreConfig::default());
        for i in 0..(MAX_SCORED as u32 + 100) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            s.note(at(u64::from(i)), PeerId::from_bytes(id), Evidence::Abuse);
            assert!(s.len() <= MAX_SCORED);
        }
        let mut first = [0u8; 32];
        first[..4].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            s.score(at(2000), &PeerId::from_bytes(first), Standing::default()),
            0,
            "the stalest went first"
        );
    }
}
