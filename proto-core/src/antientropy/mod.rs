//! Anti-entropy for one topic: set reconciliation of retained message ids with IBLTs.
//!
//! Every `interval` (jittered), a node that is not already reconciling picks a random neighbour
//! of the topic and sends it a SKETCH: an [`Iblt`] of the ids it retains, of `initial_cells`
//! cells. The responder builds a table of its own ids with the same size and seed, subtracts and
//! decodes. On success it knows both differences: it pushes the messages the initiator lacks (as
//! Plumtree repairs) and asks with IWANT for those it lacks, then answers DONE. When decoding
//! fails (the difference was larger than the table), it answers with an ESTIMATE: its strata
//! estimator, from which the initiator sizes the next SKETCH (`cells_for_estimate`).
//!
//! The responder keeps no state; the initiator keeps one session per topic with a deadline.
//! Responses are rate-limited, sketches are bounded by the frame limit, and sessions that never
//! finish time out; all of it is counted.

pub mod iblt;

use crate::antientropy::iblt::{Iblt, MAX_CELLS, StrataEstimator, cells_for_estimate};
use crate::id::{MessageId, PeerId};
use crate::time::{TimeDelta, Timestamp, TokenBucket};
use crate::wire::{BoundedBytes, MAX_FRAME_LEN};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use chacha20::ChaCha8Rng;
use minicbor::{Decode, Encode};
use rand_core::Rng;

/// Largest sketch or estimate carried in one frame.
pub const MAX_SKETCH_LEN: usize = MAX_FRAME_LEN - 1024;

/// Key-derivation context of the per-session table seeds.
const SEED_CONTEXT: &str = "hearsay 2026-11 reconciliation seed v1";

/// Reconciliation messages (frame kind 4, per topic).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Message {
    /// The initiator's ids as an IBLT (encoded by [`Iblt::to_bytes`]).
    #[n(0)]
    Sketch {
        /// The session.
        #[n(0)]
        session: u64,
        /// Which try of the session (0, 1, ...).
        #[n(1)]
        attempt: u8,
        /// The table.
        #[n(2)]
        table: BoundedBytes<MAX_SKETCH_LEN>,
    },
    /// "Your table was too small": the responder's strata estimator ([`StrataEstimator::to_bytes`]).
    #[n(1)]
    Estimate {
        /// The session.
        #[n(0)]
        session: u64,
        /// The estimator.
        #[n(1)]
        strata: BoundedBytes<MAX_SKETCH_LEN>,
    },
    /// The responder decoded the difference and acted on it.
    #[n(2)]
    Done {
        /// The session.
        #[n(0)]
        session: u64,
        /// Messages it pushed to the initiator.
        #[n(1)]
        pushed: u32,
        /// Messages it asked the initiator for.
        #[n(2)]
        wanted: u32,
    },
}

/// Reconciliation parameters (SPEC.md §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Pause between sessions started by this node (±25% jitter). Default 5 s.
    pub interval: TimeDelta,
    /// A session without an answer for this long is abandoned. Default 5 s.
    pub session_timeout: TimeDelta,
    /// Cells of the first sketch of a session. Default 64 (about 2.9 KB; a difference of ~20).
    pub initial_cells: usize,
    /// Sketches per session before it is given up. Default 3.
    pub max_attempts: u8,
    /// Most messages a responder pushes, or asks for, per session. Default 256.
    pub max_transfer: usize,
    /// Sketches answered per second (burst the same); more are dropped. Default 4.
    pub responses_per_second: u32,
    /// Messages younger than this (by their author's timestamp) are left out of sketches: the
    /// broadcast is still carrying them, and repairing them would only duplicate it.
    /// Default 5 s.
    pub settle: TimeDelta,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: TimeDelta::from_secs(5),
            session_timeout: TimeDelta::from_secs(5),
            initial_cells: 64,
            max_attempts: 3,
            max_transfer: 256,
            responses_per_second: 4,
            settle: TimeDelta::from_secs(5),
        }
    }
}

/// What the state machine asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `to`.
    Send {
        /// Recipient.
        to: PeerId,
        /// Message.
        message: Message,
    },
    /// Send these retained messages to `to` (they are missing there).
    Push {
        /// Recipient.
        to: PeerId,
        /// Ids.
        ids: Vec<MessageId>,
    },
    /// Ask `to` for these messages (they are missing here).
    Want {
        /// Holder.
        to: PeerId,
        /// Ids.
        ids: Vec<MessageId>,
    },
}

/// Running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Sessions started.
    pub started: u64,
    /// Sessions the responder completed.
    pub completed: u64,
    /// Sessions given up after `max_attempts` sketches.
    pub failed: u64,
    /// Sessions abandoned at their deadline.
    pub timed_out: u64,
    /// Sketches answered (as responder).
    pub answered: u64,
    /// Sketches dropped by the rate limit.
    pub rate_limited: u64,
    /// Sketches or estimates that did not decode, or answers to no session.
    pub malformed: u64,
    /// Ids found missing here and asked for.
    pub wanted: u64,
    /// Ids found missing at the peer and pushed.
    pub pushed: u64,
}

#[derive(Debug, Clone)]
struct Session {
    peer: PeerId,
    id: u64,
    attempt: u8,
    deadline: Timestamp,
}

/// The reconciliation state machine of one topic.
#[derive(Debug)]
pub struct Reconciler {
    config: Config,
    session: Option<Session>,
    next_round: Timestamp,
    tokens: TokenBucket,
    out: VecDeque<Output>,
    counters: Counters,
}

fn seed(session: u64, attempt: u8) -> [u8; 32] {
    let mut input = [0u8; 9];
    input[..8].copy_from_slice(&session.to_be_bytes());
    input[8] = attempt;
    blake3::derive_key(SEED_CONTEXT, &input)
}

/// The largest table that fits a sketch.
pub fn max_sketch_cells() -> usize {
    let mut cells = MAX_CELLS;
    while cells > 4 && Iblt::encoded_len(cells) > MAX_SKETCH_LEN {
        cells -= 4;
    }
    cells
}

fn table_of(cells: usize, seed: [u8; 32], ids: &[MessageId]) -> Option<Iblt> {
    let mut t = Iblt::new(cells, seed).ok()?;
    for id in ids {
        t.insert(id.as_bytes());
    }
    Some(t)
}

impl Reconciler {
    /// A reconciler whose first round is due one jittered interval after `now`.
    pub fn new(config: Config, now: Timestamp, rng: &mut ChaCha8Rng) -> Self {
        let first = now + jitter(&config, rng);
        Self {
            tokens: TokenBucket::new(config.responses_per_second, now),
            config,
            session: None,
            next_round: first,
            out: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The next output.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Runs the round timer and the session deadline. `neighbors` are the topic's neighbours,
    /// `ids` the ids retained.
    pub fn handle_timeout(
        &mut self,
        now: Timestamp,
        neighbors: &[PeerId],
        ids: &[MessageId],
        rng: &mut ChaCha8Rng,
    ) {
        if let Some(s) = &self.session
            && s.deadline <= now
        {
            self.session = None;
            self.counters.timed_out += 1;
        }
        if now < self.next_round {
            return;
        }
        self.next_round = now + jitter(&self.config, rng);
        if self.session.is_some() || neighbors.is_empty() {
            return;
        }
        let pick = (rng.next_u64() % neighbors.len() as u64) as usize;
        let Some(peer) = neighbors.get(pick).copied() else {
            return;
        };
        let id = rng.next_u64();
        self.counters.started += 1;
        self.session = Some(Session {
            peer,
            id,
            attempt: 0,
            deadline: now + self.config.session_timeout,
        });
        self.send_sketch(peer, id, 0, self.config.initial_cells, ids);
    }

    fn send_sketch(
        &mut self,
        to: PeerId,
        session: u64,
        attempt: u8,
        cells: usize,
        ids: &[MessageId],
    ) {
        let cells = cells.clamp(4, max_sketch_cells());
        let Some(table) = table_of(cells, seed(session, attempt), ids) else {
            return;
        };
        if let Ok(table) = BoundedBytes::new(table.to_bytes()) {
            self.out.push_back(Output::Send {
                to,
                message: Message::Sketch {
                    session,
                    attempt,
                    table,
                },
            });
        }
    }

    /// A message from `from`. `ids` are the ids retained here; `seen` says whether an id was
    /// already accepted here (such ids are not asked for, even if no longer retained).
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        message: Message,
        ids: &[MessageId],
        seen: &dyn Fn(&MessageId) -> bool,
    ) {
        match message {
            Message::Sketch {
                session,
                attempt,
                table,
            } => self.answer(now, from, session, attempt, &table, ids, seen),
            Message::Estimate { session, strata } => {
                let Some(s) = self
                    .session
                    .as_mut()
                    .filter(|s| s.peer == from && s.id == session)
                else {
                    self.counters.malformed += 1;
                    return;
                };
                let Ok(theirs) = StrataEstimator::from_bytes(&strata) else {
                    self.counters.malformed += 1;
                    self.session = None;
                    return;
                };
                if s.attempt.saturating_add(1) >= self.config.max_attempts {
                    self.counters.failed += 1;
                    self.session = None;
                    return;
                }
                s.attempt += 1;
                s.deadline = now + self.config.session_timeout;
                let (peer, id, attempt) = (s.peer, s.id, s.attempt);
                let mut mine = StrataEstimator::new(*theirs.seed());
                for m in ids {
                    mine.insert(m.as_bytes());
                }
                let cells = cells_for_estimate(mine.estimate(&theirs));
                self.send_sketch(peer, id, attempt, cells, ids);
            }
            Message::Done { session, .. } => {
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.peer == from && s.id == session)
                {
                    self.session = None;
                    self.counters.completed += 1;
                } else {
                    self.counters.malformed += 1;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        now: Timestamp,
        from: PeerId,
        session: u64,
        attempt: u8,
        table: &[u8],
        ids: &[MessageId],
        seen: &dyn Fn(&MessageId) -> bool,
    ) {
        if !self.take_token(now) {
            self.counters.rate_limited += 1;
            return;
        }
        let Ok(theirs) = Iblt::from_bytes(table) else {
            self.counters.malformed += 1;
            return;
        };
        self.counters.answered += 1;
        let decoded = table_of(theirs.cells(), *theirs.seed(), ids)
            .and_then(|mine| theirs.subtract(&mine).ok())
            .and_then(|d| d.decode().ok());
        let Some(diff) = decoded else {
            // Too different for this table: tell the initiator how different we are.
            let mut strata = StrataEstimator::new(seed(session, attempt.wrapping_add(128)));
            for m in ids {
                strata.insert(m.as_bytes());
            }
            if let Ok(strata) = BoundedBytes::new(strata.to_bytes()) {
                self.out.push_back(Output::Send {
                    to: from,
                    message: Message::Estimate { session, strata },
                });
            }
            return;
        };
        let max = self.config.max_transfer;
        // `ours` of their table minus ours: ids only at the initiator (missing here).
        let wanted: Vec<MessageId> = diff
            .ours
            .iter()
            .map(|b| MessageId::from_bytes(*b))
            .filter(|id| !seen(id))
            .take(max)
            .collect();
        let pushed: Vec<MessageId> = diff
            .theirs
            .iter()
            .map(|b| MessageId::from_bytes(*b))
            .take(max)
            .collect();
        self.counters.wanted += wanted.len() as u64;
        self.counters.pushed += pushed.len() as u64;
        let done = Message::Done {
            session,
            pushed: pushed.len() as u32,
            wanted: wanted.len() as u32,
        };
        if !pushed.is_empty() {
            self.out.push_back(Output::Push {
                to: from,
                ids: pushed,
            });
        }
        if !wanted.is_empty() {
            self.out.push_back(Output::Want {
                to: from,
                ids: wanted,
            });
        }
        self.out.push_back(Output::Send {
            to: from,
            message: done,
        });
    }

    fn take_token(&mut self, now: Timestamp) -> bool {
        self.tokens.take(now)
    }

    /// `peer` left the topic's overlay: a session with it ends.
    pub fn neighbor_down(&mut self, peer: &PeerId) {
        if self.session.as_ref().is_some_and(|s| s.peer == *peer) {
            self.session = None;
        }
    }

    /// When [`Reconciler::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let deadline = self.session.as_ref().map(|s| s.deadline);
        Some(deadline.map_or(self.next_round, |d| d.min(self.next_round)))
    }
}

fn jitter(config: &Config, rng: &mut ChaCha8Rng) -> TimeDelta {
    let base = config.interval.as_micros().max(4);
    let spread = base / 2;
    TimeDelta::from_micros(base - base / 4 + rng.next_u64() % spread.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use std::collections::BTreeSet;

    const T: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn ids(range: core::ops::Range<u32>) -> Vec<MessageId> {
        range
            .map(|i| MessageId::from_bytes(blake3::hash(&i.to_be_bytes()).into()))
            .collect()
    }

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    /// Runs one session from `a` (holding `ours`) to `b` (holding `theirs`); returns what `b`
    /// pushed and wanted, and the number of sketches `a` sent.
    fn session(
        ours: &[MessageId],
        theirs: &[MessageId],
    ) -> (BTreeSet<MessageId>, BTreeSet<MessageId>, usize, Counters) {
        let mut rng = ChaCha8Rng::from_seed([7; 32]);
        let config = Config::default();
        let mut a = Reconciler::new(config.clone(), T, &mut rng);
        let mut b = Reconciler::new(config.clone(), T, &mut rng);
        let now = T + TimeDelta::from_secs(10);
        a.handle_timeout(now, &[peer(2)], ours, &mut rng);
        let (mut pushed, mut wanted, mut sketches) = (BTreeSet::new(), BTreeSet::new(), 0);
        let theirs_set: BTreeSet<MessageId> = theirs.iter().copied().collect();
        for _ in 0..10 {
            let mut progressed = false;
            while let Some(out) = a.poll() {
                progressed = true;
                if let Output::Send { to, message } = out {
                    assert_eq!(to, peer(2));
                    sketches += usize::from(matches!(message, Message::Sketch { .. }));
                    b.handle_message(now, peer(1), message, theirs, &|id| theirs_set.contains(id));
                }
            }
            while let Some(out) = b.poll() {
                progressed = true;
                match out {
                    Output::Send { message, .. } => {
                        a.handle_message(now, peer(2), message, ours, &|_| false)
                    }
                    Output::Push { ids, .. } => pushed.extend(ids),
                    Output::Want { ids, .. } => wanted.extend(ids),
                }
            }
            if !progressed {
                break;
            }
        }
        (pushed, wanted, sketches, a.counters().clone())
    }

    #[test]
    fn a_small_difference_is_found_in_one_sketch_both_ways() {
        let ours = ids(0..100);
        let theirs = ids(5..110);
        let (pushed, wanted, sketches, counters) = session(&ours, &theirs);
        assert_eq!(pushed, ids(100..110).into_iter().collect());
        assert_eq!(wanted, ids(0..5).into_iter().collect());
        assert_eq!(sketches, 1);
        assert_eq!(counters.completed, 1);
    }

    #[test]
    fn a_large_difference_is_estimated_then_found() {
        let ours = ids(0..600);
        let theirs = ids(300..1000);
        let (pushed, wanted, sketches, counters) = session(&ours, &theirs);
        // The responder pushes and asks for at most `max_transfer` ids per session.
        assert_eq!(pushed.len(), 256);
        assert_eq!(wanted.len(), 256);
        let truth_pushed: BTreeSet<MessageId> = ids(600..1000).into_iter().collect();
        let truth_wanted: BTreeSet<MessageId> = ids(0..300).into_iter().collect();
        assert!(pushed.is_subset(&truth_pushed) && wanted.is_subset(&truth_wanted));
        assert_eq!(sketches, 2, "one small sketch, one sized by the estimate");
        assert_eq!(counters.completed, 1);
    }

    #[test]
    fn equal_sets_finish_with_nothing_to_move() {
        let same = ids(0..50);
        let (pushed, wanted, _, counters) = session(&same, &same);
        assert!(pushed.is_empty() && wanted.is_empty());
        assert_eq!(counters.completed, 1);
    }

    #[test]
    fn garbage_sketches_and_stray_answers_are_counted_and_change_nothing() {
        let mut rng = ChaCha8Rng::from_seed([1; 32]);
        let mut r = Reconciler::new(Config::default(), T, &mut rng);
        let junk = BoundedBytes::new(alloc::vec![0xAB; 1000]).unwrap();
        r.handle_message(
            T,
            peer(3),
            Message::Sketch {
                session: 1,
                attempt: 0,
                table: junk.clone(),
            },
            &ids(0..10),
            &|_| false,
        );
        r.handle_message(
            T,
            peer(3),
            Message::Estimate {
                session: 9,
                strata: junk,
            },
            &[],
            &|_| false,
        );
        r.handle_message(
            T,
            peer(3),
            Message::Done {
                session: 9,
                pushed: 0,
                wanted: 0,
            },
            &[],
            &|_| false,
        );
        assert_eq!(r.counters().malformed, 3);
        assert!(r.poll().is_none());
    }

    #[test]
    fn answers_are_rate_limited() {
        let mut rng = ChaCha8Rng::from_seed([1; 32]);
        let config = Config::default();
        let mut r = Reconciler::new(config.clone(), T, &mut rng);
        let table = BoundedBytes::new(Iblt::new(64, [1; 32]).unwrap().to_bytes()).unwrap();
        for s in 0..100 {
            r.handle_message(
                T,
                peer(3),
                Message::Sketch {
                    session: s,
                    attempt: 0,
                    table: table.clone(),
                },
                &[],
                &|_| false,
            );
        }
        assert_eq!(
            r.counters().answered,
            u64::from(config.responses_per_second)
        );
        assert_eq!(
            r.counters().rate_limited,
            100 - u64::from(config.responses_per_second)
        );
    }

    #[test]
    fn an_unanswered_session_times_out_and_the_next_round_starts_another() {
        let mut rng = ChaCha8Rng::from_seed([1; 32]);
        let mut r = Reconciler::new(Config::default(), T, &mut rng);
        let mut now = T;
        let mut sketches = 0;
        for _ in 0..400 {
            now += TimeDelta::from_millis(100);
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now, &[peer(2)], &ids(0..3), &mut rng);
                assert!(r.poll_timeout().is_some_and(|t| t > now));
            }
            while let Some(o) = r.poll() {
                sketches += usize::from(matches!(
                    o,
                    Output::Send {
                        message: Message::Sketch { .. },
                        ..
                    }
                ));
            }
        }
        assert!(sketches >= 3, "{sketches}");
        assert!(r.counters().timed_out >= 2, "{:?}", r.counters());
    }
}
