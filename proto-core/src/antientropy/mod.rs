//! Anti-entropy for one topic: set reconciliation of retained message ids with IBLTs.
//!
//! A round starts with a DIGEST: a node that is not already reconciling picks a random
//! neighbour of the topic and sends it the count and a keyed hash of the ids it retains that
//! are older than `settle`, stating that cutoff. The responder hashes its own ids up to the same
//! cutoff; when both agree it answers SAME and nothing more is sent. Otherwise it answers
//! DIFFERS (with its count) and the initiator sends a SKETCH: an [`Iblt`] of its ids, of at
//! least `initial_cells` cells. The responder builds a table of its own ids with the same size
//! and seed, subtracts and decodes. On success it knows both differences: it pushes the messages
//! the initiator lacks (as Plumtree repairs) and asks with IWANT for those it lacks, then answers
//! DONE. When decoding fails (the difference was larger than the table), it answers with an
//! ESTIMATE: its strata estimator, from which the initiator sizes the next SKETCH
//! (`cells_for_estimate`).
//!
//! The pause between rounds is `interval` (jittered) while anything changes, and doubles after
//! each round that found the sets equal, up to `interval_max`: an idle topic costs one small
//! DIGEST and its answer per node per `interval_max`. It goes back to `interval` when the ids
//! retained here change ([`Input::Changed`], or a round finds them changed) or a digest differs.
//!
//! The responder keeps no state; the initiator keeps one session per topic with a deadline.
//! Responses are rate-limited, sketches are bounded by the frame limit, and sessions that never
//! finish time out; all of it is counted.
//!
//! [`Reconciler`] is a [`StateMachine`] (SPEC.md §8.8). It keeps no copy of the topic's
//! neighbours or retained ids: the owner lends them with each [`Input`] that needs them (a
//! message, and [`Input::Timers`], the owner's timer call, since a round picks a neighbour and
//! digests the ids). Its timers (the next round, the session's deadline) are one
//! [`Deadlines`].

pub mod iblt;

use crate::antientropy::iblt::{Iblt, MAX_CELLS, StrataEstimator, cells_for_estimate};
use crate::id::{MessageId, PeerId};
use crate::machine::{Deadlines, Rng, StateMachine};
use crate::time::{TimeDelta, Timestamp, TokenBucket};
use crate::wire::{BoundedBytes, FixedBytes, MAX_FRAME_LEN};
use alloc::borrow::Cow;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use minicbor::{Decode, Encode};
use rand_core::Rng as _;

/// Largest sketch or estimate carried in one frame.
pub const MAX_SKETCH_LEN: usize = MAX_FRAME_LEN - 1024;

/// Key-derivation context of the per-session table seeds.
const SEED_CONTEXT: &str = "hearsay 2026-11 reconciliation seed v1";

/// Key-derivation context of the digests (keyed by the session).
const DIGEST_CONTEXT: &str = "hearsay 2026-11 reconciliation digest v1";

/// Bytes of a digest's hash.
pub const DIGEST_LEN: usize = 16;

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
    /// A session's first message: the count and keyed hash of the initiator's ids dated at or
    /// before `cutoff` (see [`digest`]).
    #[n(3)]
    Digest {
        /// The session (also the hash's key).
        #[n(0)]
        session: u64,
        /// The newest author's timestamp covered; the responder hashes its ids up to it too.
        #[n(1)]
        cutoff: Timestamp,
        /// How many ids.
        #[n(2)]
        count: u32,
        /// Their hash.
        #[n(3)]
        hash: FixedBytes<DIGEST_LEN>,
    },
    /// "Same ids here": the session ends, nothing to move.
    #[n(4)]
    Same {
        /// The session.
        #[n(0)]
        session: u64,
    },
    /// "Different ids here": the initiator goes on with a SKETCH.
    #[n(5)]
    Differs {
        /// The session.
        #[n(0)]
        session: u64,
        /// How many ids the responder holds up to the cutoff (the difference is at least the
        /// gap between the counts; it sizes the first sketch).
        #[n(1)]
        count: u32,
    },
}

/// Reconciliation parameters (SPEC.md §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Pause between sessions started by this node (±25% jitter) while the ids change. Default
    /// 5 s.
    pub interval: TimeDelta,
    /// Longest pause: it doubles from `interval` after each round whose digest matched, up to
    /// this (±25% jitter). Default 120 s.
    pub interval_max: TimeDelta,
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
            interval_max: TimeDelta::from_secs(120),
            session_timeout: TimeDelta::from_secs(5),
            initial_cells: 64,
            max_attempts: 3,
            max_transfer: 256,
            responses_per_second: 4,
            settle: TimeDelta::from_secs(5),
        }
    }
}

/// Everything that can happen to a topic's reconciler but the passage of time.
pub enum Input<'a> {
    /// A message from `from`, a neighbour in the topic.
    Message {
        /// The sender.
        from: PeerId,
        /// The message.
        message: Message,
        /// The ids retained here that are old enough to reconcile: for a DIGEST, those dated at or
        /// before its `cutoff`.
        ids: &'a [MessageId],
        /// Whether an id was already accepted here: such ids are not asked for, even if no
        /// longer retained.
        seen: &'a dyn Fn(&MessageId) -> bool,
    },
    /// `peer` left the topic's overlay: a session with it ends.
    NeighborDown(PeerId),
    /// `peer` joined the topic's overlay: the next round comes within an `interval` and goes to
    /// it (it may hold other ids, say after a partition healed).
    NeighborUp(PeerId),
    /// A message was retained here: the pause goes back to `interval`, and a round comes once
    /// the message is old enough to reconcile (`settle` plus a jittered `interval`).
    Changed,
    /// The timers due at `now`, with what a round needs lent: the topic's neighbours (one is
    /// picked at random) and the ids retained (sketched). [`StateMachine::handle_timeout`] is
    /// this with nothing lent: a round then due finds no neighbour and only sets the next one,
    /// so the owner sends this instead whenever [`StateMachine::poll_timeout`] is due.
    Timers {
        /// The topic's neighbours.
        neighbors: &'a [PeerId],
        /// The ids retained here (those old enough to reconcile).
        ids: &'a [MessageId],
    },
}

impl core::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Input::Message {
                from, message, ids, ..
            } => f
                .debug_struct("Message")
                .field("from", from)
                .field("message", message)
                .field("ids", &ids.len())
                .finish_non_exhaustive(),
            Input::NeighborDown(p) => f.debug_tuple("NeighborDown").field(p).finish(),
            Input::NeighborUp(p) => f.debug_tuple("NeighborUp").field(p).finish(),
            Input::Changed => f.write_str("Changed"),
            Input::Timers { neighbors, ids } => f
                .debug_struct("Timers")
                .field("neighbors", neighbors)
                .field("ids", &ids.len())
                .finish(),
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
    /// Digests sent (sessions started with one).
    pub digests: u64,
    /// Digests answered (as responder).
    pub digests_answered: u64,
    /// Sessions that ended with SAME: nothing to move, no sketch sent.
    pub matched: u64,
    /// Sessions whose digest differed and went on to a sketch.
    pub differed: u64,
}

/// The session this node started; its deadline is [`Timer::Session`].
#[derive(Debug, Clone)]
struct Session {
    peer: PeerId,
    id: u64,
    attempt: u8,
    /// Waiting for SAME or DIFFERS (no sketch sent yet).
    digest: bool,
    /// The pause went back to `interval` while it ran: its SAME does not lengthen it again.
    reset: bool,
}

/// The reconciler's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The session goes unanswered too long.
    Session,
    /// The next round.
    Round,
}

crate::machine::internal_struct! {
    /// The reconciliation state machine of one topic.
    #[derive(Debug)]
    struct Reconciler {
        config: Config,
        session: Option<Session>,
        /// [`Timer::Round`] always; [`Timer::Session`] while a session runs.
        deadlines: Deadlines<Timer>,
        tokens: TokenBucket,
        out: VecDeque<Output>,
        counters: Counters,
        /// The pause before the next round: `interval` up to `interval_max`.
        pause: TimeDelta,
        /// The fingerprint of the ids the last round saw (to notice they changed).
        last: Option<[u8; 32]>,
        /// A neighbour that came up: the next round goes to it.
        prefer: Option<PeerId>,
    }
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

/// The ids in id order without repeats (the owner lends them so; otherwise a sorted copy).
fn sorted(ids: &[MessageId]) -> Cow<'_, [MessageId]> {
    if ids.iter().zip(ids.iter().skip(1)).all(|(a, b)| a < b) {
        Cow::Borrowed(ids)
    } else {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v.dedup();
        Cow::Owned(v)
    }
}

/// BLAKE3 (key-derivation mode, [`DIGEST_CONTEXT`]) over `session`, the count and the ids,
/// which are in id order without repeats.
fn set_hash(session: u64, ids: &[MessageId]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
    h.update(&session.to_be_bytes());
    h.update(&(ids.len() as u64).to_be_bytes());
    for id in ids {
        h.update(id.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// The digest of a set of ids for `session`: how many (without repeats), and the first
/// [`DIGEST_LEN`] bytes of BLAKE3 in key-derivation mode (context
/// `"hearsay 2026-11 reconciliation digest v1"`) over `session` (8 B big-endian), the count
/// (8 B big-endian) and the ids (32 B each) in id order.
pub fn digest(session: u64, ids: &[MessageId]) -> (u32, FixedBytes<DIGEST_LEN>) {
    let ids = sorted(ids);
    let hash = set_hash(session, &ids);
    let mut short = [0u8; DIGEST_LEN];
    for (s, h) in short.iter_mut().zip(hash.iter()) {
        *s = *h;
    }
    (
        u32::try_from(ids.len()).unwrap_or(u32::MAX),
        FixedBytes::from_array(short),
    )
}

fn table_of(cells: usize, seed: [u8; 32], ids: &[MessageId]) -> Option<Iblt> {
    let mut t = Iblt::new(cells, seed).ok()?;
    for id in ids {
        t.insert(id.as_bytes());
    }
    Some(t)
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl Reconciler {
    /// A reconciler whose first round is due one jittered interval after `now`.
    pub fn new(config: Config, now: Timestamp, rng: &mut Rng) -> Self {
        let mut deadlines = Deadlines::new();
        deadlines.set(Timer::Round, now + jitter(config.interval, rng));
        Self {
            tokens: TokenBucket::new(config.responses_per_second, now),
            pause: config.interval,
            config,
            session: None,
            deadlines,
            out: VecDeque::new(),
            counters: Counters::default(),
            last: None,
            prefer: None,
        }
    }

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Runs the session's deadline and the round timer (see [`Input::Timers`]).
    fn run_timers(
        &mut self,
        now: Timestamp,
        neighbors: &[PeerId],
        ids: &[MessageId],
        rng: &mut Rng,
    ) {
        // The session's deadline runs before the round whatever the two deadlines, so that a
        // round due at the same wake finds the session ended.
        let mut round = false;
        while let Some((_, timer)) = self.deadlines.pop_due(now) {
            match timer {
                Timer::Session => {
                    self.session = None;
                    self.counters.timed_out += 1;
                }
                Timer::Round => round = true,
            }
        }
        if round {
            self.round(now, neighbors, ids, rng);
        }
    }

    /// A round: the next one is set (one pause on), the pause goes back to `interval` if the ids
    /// changed since the last round, and a session starts with a DIGEST to a neighbour (the one
    /// that came up last, else a random one) unless one is running.
    fn round(&mut self, now: Timestamp, neighbors: &[PeerId], ids: &[MessageId], rng: &mut Rng) {
        if !neighbors.is_empty() {
            // Nothing lent (the contract's bare timer call) says nothing about the ids.
            let fingerprint = set_hash(0, &sorted(ids));
            if self.last.is_some_and(|last| last != fingerprint) {
                self.pause = self.config.interval;
            }
            self.last = Some(fingerprint);
        }
        self.deadlines
            .set(Timer::Round, now + jitter(self.pause, rng));
        if self.session.is_some() || neighbors.is_empty() {
            return;
        }
        let preferred = self.prefer.take().filter(|p| neighbors.contains(p));
        let peer = match preferred {
            Some(p) => p,
            None => {
                let pick = (rng.next_u64() % neighbors.len() as u64) as usize;
                let Some(p) = neighbors.get(pick).copied() else {
                    return;
                };
                p
            }
        };
        let id = rng.next_u64();
        self.counters.started += 1;
        self.counters.digests += 1;
        self.session = Some(Session {
            peer,
            id,
            attempt: 0,
            digest: true,
            reset: false,
        });
        self.deadlines
            .set(Timer::Session, now + self.config.session_timeout);
        let (count, hash) = digest(id, ids);
        self.out.push_back(Output::Send {
            to: peer,
            message: Message::Digest {
                session: id,
                cutoff: now - self.config.settle,
                count,
                hash,
            },
        });
    }

    /// The pause goes back to `interval`, and the next round comes within `delay` plus one.
    fn reset(&mut self, now: Timestamp, delay: TimeDelta, rng: &mut Rng) {
        self.pause = self.config.interval;
        if let Some(s) = self.session.as_mut() {
            s.reset = true;
        }
        self.deadlines
            .set_earlier(Timer::Round, now + delay + jitter(self.pause, rng));
    }

    /// Ends the session this node started, if any.
    fn end_session(&mut self) {
        self.session = None;
        self.deadlines.cancel(&Timer::Session);
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

    /// See [`Input::Message`].
    fn on_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        message: Message,
        ids: &[MessageId],
        seen: &dyn Fn(&MessageId) -> bool,
        rng: &mut Rng,
    ) {
        match message {
            Message::Digest {
                session,
                count,
                hash,
                ..
            } => self.answer_digest(now, from, session, count, &hash, ids, rng),
            Message::Same { session } => {
                if !self.digest_session(from, session) {
                    self.counters.malformed += 1;
                    return;
                }
                let reset = self.session.as_ref().is_some_and(|s| s.reset);
                self.end_session();
                self.counters.matched += 1;
                if !reset {
                    // Nothing changed: the next round one doubled pause from now.
                    self.pause = self
                        .pause
                        .saturating_mul(2)
                        .min(self.config.interval_max)
                        .max(self.config.interval);
                    self.deadlines
                        .set(Timer::Round, now + jitter(self.pause, rng));
                }
            }
            Message::Differs { session, count } => {
                if !self.digest_session(from, session) {
                    self.counters.malformed += 1;
                    return;
                }
                self.counters.differed += 1;
                self.reset(now, TimeDelta::from_micros(0), rng);
                if let Some(s) = self.session.as_mut() {
                    s.digest = false;
                }
                self.deadlines
                    .set(Timer::Session, now + self.config.session_timeout);
                // The difference is at least the gap between the counts (as the peer states
                // it: taken up to `max_transfer`, beyond which an ESTIMATE sizes the table).
                let mine = u32::try_from(sorted(ids).len()).unwrap_or(u32::MAX);
                let gap = (mine.abs_diff(count) as usize).min(self.config.max_transfer);
                let cells = cells_for_estimate(gap).max(self.config.initial_cells);
                self.send_sketch(from, session, 0, cells, ids);
            }
            Message::Sketch {
                session,
                attempt,
                table,
            } => self.answer(now, from, session, attempt, &table, ids, seen),
            Message::Estimate { session, strata } => {
                let Some(s) = self
                    .session
                    .as_mut()
                    .filter(|s| s.peer == from && s.id == session && !s.digest)
                else {
                    self.counters.malformed += 1;
                    return;
                };
                let Ok(theirs) = StrataEstimator::from_bytes(&strata) else {
                    self.counters.malformed += 1;
                    self.end_session();
                    return;
                };
                if s.attempt.saturating_add(1) >= self.config.max_attempts {
                    self.counters.failed += 1;
                    self.end_session();
                    return;
                }
                s.attempt += 1;
                let (peer, id, attempt) = (s.peer, s.id, s.attempt);
                self.deadlines
                    .set(Timer::Session, now + self.config.session_timeout);
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
                    .is_some_and(|s| s.peer == from && s.id == session && !s.digest)
                {
                    self.end_session();
                    self.counters.completed += 1;
                } else {
                    self.counters.malformed += 1;
                }
            }
        }
    }

    /// Whether `session` from `from` is this node's session waiting for SAME or DIFFERS.
    fn digest_session(&self, from: PeerId, session: u64) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.peer == from && s.id == session && s.digest)
    }

    /// Answers a DIGEST: SAME if the ids lent (those up to its cutoff) have its count and hash,
    /// else DIFFERS, and then this node's own pause goes back to `interval` too.
    #[allow(clippy::too_many_arguments)]
    fn answer_digest(
        &mut self,
        now: Timestamp,
        from: PeerId,
        session: u64,
        count: u32,
        hash: &FixedBytes<DIGEST_LEN>,
        ids: &[MessageId],
        rng: &mut Rng,
    ) {
        if !self.take_token(now) {
            self.counters.rate_limited += 1;
            return;
        }
        self.counters.digests_answered += 1;
        let (mine, my_hash) = digest(session, ids);
        let message = if mine == count && my_hash == *hash {
            Message::Same { session }
        } else {
            self.reset(now, TimeDelta::from_micros(0), rng);
            Message::Differs {
                session,
                count: mine,
            }
        };
        self.out.push_back(Output::Send { to: from, message });
    }

    /// See [`Input::NeighborUp`].
    fn neighbor_up(&mut self, now: Timestamp, peer: PeerId, rng: &mut Rng) {
        self.prefer = Some(peer);
        self.deadlines
            .set_earlier(Timer::Round, now + jitter(self.config.interval, rng));
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

    /// See [`Input::NeighborDown`].
    fn neighbor_left(&mut self, peer: &PeerId) {
        if self.session.as_ref().is_some_and(|s| s.peer == *peer) {
            self.end_session();
        }
    }

    // ------------------------------------------------------ shorthands for older callers

    /// Shorthand for [`StateMachine::poll`].
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Shorthand for [`StateMachine::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }

    /// Shorthand for `handle(now, Input::Timers { neighbors, ids })`.
    pub fn handle_timeout(
        &mut self,
        now: Timestamp,
        neighbors: &[PeerId],
        ids: &[MessageId],
        rng: &mut Rng,
    ) {
        self.run_timers(now, neighbors, ids, rng);
    }

    /// Shorthand for `handle(now, Input::Message { from, message, ids, seen })`.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        message: Message,
        ids: &[MessageId],
        seen: &dyn Fn(&MessageId) -> bool,
        rng: &mut Rng,
    ) {
        self.on_message(now, from, message, ids, seen, rng);
    }

    /// Shorthand for `handle(now, Input::NeighborDown(*peer))`.
    pub fn neighbor_down(&mut self, peer: &PeerId) {
        self.neighbor_left(peer);
    }
}

impl StateMachine for Reconciler {
    type Input<'a> = Input<'a>;
    type Output = Output;
    type Reply = ();

    fn handle(&mut self, now: Timestamp, input: Input<'_>, rng: &mut Rng) {
        match input {
            Input::Message {
                from,
                message,
                ids,
                seen,
            } => self.on_message(now, from, message, ids, seen, rng),
            Input::NeighborDown(peer) => self.neighbor_left(&peer),
            Input::NeighborUp(peer) => self.neighbor_up(now, peer, rng),
            Input::Changed => self.reset(now, self.config.settle, rng),
            Input::Timers { neighbors, ids } => self.run_timers(now, neighbors, ids, rng),
        }
    }

    /// The timers with no neighbour or id lent (see [`Input::Timers`]).
    fn handle_timeout(&mut self, now: Timestamp, rng: &mut Rng) {
        self.run_timers(now, &[], &[], rng);
    }

    fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

/// `pause` ±25 %.
fn jitter(pause: TimeDelta, rng: &mut Rng) -> TimeDelta {
    let base = pause.as_micros().max(4);
    let spread = base / 2;
    TimeDelta::from_micros(base - base / 4 + rng.next_u64() % spread.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Rng;
    use crate::machine::check::timers_move_forward;
    use proptest::prelude::*;
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
        let mut rng = Rng::from_seed([7; 32]);
        let config = Config::default();
        let mut a = Reconciler::new(config.clone(), T, &mut rng);
        let mut b = Reconciler::new(config.clone(), T, &mut rng);
        let now = T + TimeDelta::from_secs(10);
        let input = Input::Timers {
            neighbors: &[peer(2)],
            ids: ours,
        };
        a.handle(now, input, &mut rng);
        let (mut pushed, mut wanted, mut sketches) = (BTreeSet::new(), BTreeSet::new(), 0);
        let theirs_set: BTreeSet<MessageId> = theirs.iter().copied().collect();
        for _ in 0..10 {
            let mut progressed = false;
            while let Some(out) = a.poll() {
                progressed = true;
                if let Output::Send { to, message } = out {
                    assert_eq!(to, peer(2));
                    sketches += usize::from(matches!(message, Message::Sketch { .. }));
                    let input = Input::Message {
                        from: peer(1),
                        message,
                        ids: theirs,
                        seen: &|id| theirs_set.contains(id),
                    };
                    b.handle(now, input, &mut rng);
                }
            }
            while let Some(out) = b.poll() {
                progressed = true;
                match out {
                    Output::Send { message, .. } => {
                        let input = Input::Message {
                            from: peer(2),
                            message,
                            ids: ours,
                            seen: &|_| false,
                        };
                        a.handle(now, input, &mut rng);
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
    fn equal_sets_exchange_a_digest_and_no_sketch() {
        let same = ids(0..50);
        let (pushed, wanted, sketches, counters) = session(&same, &same);
        assert!(pushed.is_empty() && wanted.is_empty());
        assert_eq!(sketches, 0, "equal sets need no sketch");
        assert_eq!((counters.digests, counters.matched), (1, 1));
        assert_eq!(counters.differed, 0);
        // The same ids lent in another order (or repeated) have the same digest.
        let mut shuffled = same.clone();
        shuffled.reverse();
        shuffled.push(same[3]);
        assert_eq!(digest(9, &shuffled), digest(9, &same));
        assert_ne!(digest(9, &same), digest(10, &same), "keyed by the session");
        assert_ne!(digest(9, &same), digest(9, &same[1..]));
    }

    #[test]
    fn a_differing_digest_goes_on_to_a_sketch_sized_by_the_counts() {
        let ours = ids(0..50);
        let theirs = ids(0..52);
        let (pushed, wanted, sketches, counters) = session(&ours, &theirs);
        assert_eq!(pushed, ids(50..52).into_iter().collect());
        assert!(wanted.is_empty());
        assert_eq!(sketches, 1);
        assert_eq!((counters.digests, counters.differed), (1, 1));
        assert_eq!((counters.matched, counters.completed), (0, 1));
    }

    /// Two neighbours `a` (0) and `b` (1) reconciling by themselves, messages delivered at once.
    struct Pair {
        nodes: [Reconciler; 2],
        sets: [BTreeSet<MessageId>; 2],
        now: Timestamp,
        rng: Rng,
        /// Messages sent, by kind: digests, sketches.
        digests: usize,
        sketches: usize,
    }

    impl Pair {
        fn new(sets: [BTreeSet<MessageId>; 2]) -> Self {
            let mut rng = Rng::from_seed([3; 32]);
            let nodes = [
                Reconciler::new(Config::default(), T, &mut rng),
                Reconciler::new(Config::default(), T, &mut rng),
            ];
            Self {
                nodes,
                sets,
                now: T,
                rng,
                digests: 0,
                sketches: 0,
            }
        }

        fn ids(&self, n: usize) -> Vec<MessageId> {
            self.sets[n].iter().copied().collect()
        }

        /// Runs both until `until`.
        fn run(&mut self, until: Timestamp) {
            loop {
                let next = self.nodes.iter().filter_map(|r| r.poll_timeout()).min();
                let Some(at) = next.filter(|at| *at <= until) else {
                    break;
                };
                self.now = at;
                for n in 0..2 {
                    if self.nodes[n].poll_timeout().is_some_and(|t| t <= at) {
                        let ids = self.ids(n);
                        let neighbors = [peer(1 - n as u8)];
                        let input = Input::Timers {
                            neighbors: &neighbors,
                            ids: &ids,
                        };
                        self.nodes[n].handle(at, input, &mut self.rng);
                    }
                }
                self.deliver();
            }
            self.now = until;
        }

        fn deliver(&mut self) {
            let mut moved = true;
            while moved {
                moved = false;
                for n in 0..2 {
                    while let Some(out) = self.nodes[n].poll() {
                        moved = true;
                        match out {
                            Output::Send { message, .. } => {
                                self.digests +=
                                    usize::from(matches!(message, Message::Digest { .. }));
                                self.sketches +=
                                    usize::from(matches!(message, Message::Sketch { .. }));
                                let ids = self.ids(1 - n);
                                let seen = self.sets[1 - n].clone();
                                let input = Input::Message {
                                    from: peer(n as u8),
                                    message,
                                    ids: &ids,
                                    seen: &|id| seen.contains(id),
                                };
                                self.nodes[1 - n].handle(self.now, input, &mut self.rng);
                            }
                            Output::Push { ids, .. } => self.sets[1 - n].extend(ids),
                            Output::Want { ids, .. } => {
                                let have: Vec<MessageId> = ids
                                    .into_iter()
                                    .filter(|id| self.sets[1 - n].contains(id))
                                    .collect();
                                self.sets[n].extend(have);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn quiet_rounds_back_off_to_the_maximum_and_still_repair_a_missed_message() {
        let config = Config::default();
        let mut pair = Pair::new([
            ids(0..20).into_iter().collect(),
            ids(0..20).into_iter().collect(),
        ]);
        // An hour of equal sets: digests only, ever rarer.
        pair.run(T + TimeDelta::from_secs(3600));
        assert_eq!(pair.sketches, 0);
        assert!(pair.nodes.iter().all(|r| r.pause == config.interval_max));
        let quiet = pair.digests;
        // A round per node every 5 s would be 1,440 digests an hour; backing off to 120 s, about
        // 60 and the few of the first minutes.
        assert!((50..=80).contains(&quiet), "{quiet} digests in an hour");
        // The last ten minutes: about one round per node per `interval_max`.
        let before = pair.digests;
        pair.run(T + TimeDelta::from_secs(4200));
        let recent = pair.digests - before;
        assert!((8..=14).contains(&recent), "{recent} digests in 10 min");
        // `b` gets a message that `a` missed, and neither is told: a round still finds it,
        // within one longest pause (jittered) of either node.
        let missed = ids(100..101)[0];
        pair.sets[1].insert(missed);
        let found = pair.now + config.interval_max + config.interval_max.div(4);
        pair.run(found);
        assert!(
            pair.sets[0].contains(&missed),
            "not repaired within a longest pause"
        );
        assert!(pair.sketches >= 1);
        // And the mismatch brought the pause back to `interval`.
        assert!(pair.nodes.iter().any(|r| r.pause < config.interval_max));
    }

    #[test]
    fn a_change_brings_the_next_round_back_within_settle_and_an_interval() {
        let config = Config::default();
        let mut pair = Pair::new([
            ids(0..5).into_iter().collect(),
            ids(0..5).into_iter().collect(),
        ]);
        pair.run(T + TimeDelta::from_secs(3600));
        assert!(pair.nodes.iter().all(|r| r.pause == config.interval_max));
        // `a` retains a message (and says so); `b` lacks it.
        pair.sets[0].insert(ids(50..51)[0]);
        let now = pair.now;
        pair.nodes[0].handle(now, Input::Changed, &mut Rng::from_seed([1; 32]));
        assert_eq!(pair.nodes[0].pause, config.interval);
        let due = pair.nodes[0].poll_timeout().unwrap();
        assert!(due <= now + config.settle + config.interval + config.interval.div(4));
        pair.run(due);
        assert!(pair.sets[1].contains(&ids(50..51)[0]));
    }

    #[test]
    fn a_change_during_a_session_is_not_undone_by_its_same() {
        let mut rng = Rng::from_seed([1; 32]);
        let config = Config::default();
        let mut r = Reconciler::new(config.clone(), T, &mut rng);
        r.pause = config.interval_max;
        let now = r.poll_timeout().unwrap();
        let mine = ids(0..3);
        let input = Input::Timers {
            neighbors: &[peer(2)],
            ids: &mine,
        };
        r.handle(now, input, &mut rng);
        let Some(Output::Send {
            message: Message::Digest { session, .. },
            ..
        }) = r.poll()
        else {
            panic!("no digest");
        };
        r.handle(now, Input::Changed, &mut rng);
        let input = Input::Message {
            from: peer(2),
            message: Message::Same { session },
            ids: &mine,
            seen: &|_| false,
        };
        r.handle(now, input, &mut rng);
        assert_eq!(r.counters().matched, 1);
        assert_eq!(r.pause, config.interval);
        let due = r.poll_timeout().unwrap();
        assert!(due <= now + config.settle + config.interval + config.interval.div(4));
    }

    #[test]
    fn a_neighbour_that_comes_up_gets_the_next_round() {
        let mut rng = Rng::from_seed([1; 32]);
        let config = Config::default();
        let mut r = Reconciler::new(config.clone(), T, &mut rng);
        r.pause = config.interval_max;
        r.deadlines.set(Timer::Round, T + config.interval_max);
        r.handle(T, Input::NeighborUp(peer(9)), &mut rng);
        let due = r.poll_timeout().unwrap();
        assert!(due <= T + config.interval + config.interval.div(4));
        let neighbors = [peer(1), peer(2), peer(3), peer(9)];
        let mine = ids(0..3);
        let input = Input::Timers {
            neighbors: &neighbors,
            ids: &mine,
        };
        r.handle(due, input, &mut rng);
        match r.poll() {
            Some(Output::Send {
                to,
                message: Message::Digest { cutoff, count, .. },
            }) => {
                assert_eq!(to, peer(9));
                assert_eq!(count, 3);
                assert_eq!(cutoff, due - config.settle);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_sketches_and_stray_answers_are_counted_and_change_nothing() {
        let mut rng = Rng::from_seed([1; 32]);
        let mut r = Reconciler::new(Config::default(), T, &mut rng);
        let junk = BoundedBytes::new(alloc::vec![0xAB; 1000]).unwrap();
        r.handle(
            T,
            Input::Message {
                from: peer(3),
                message: Message::Sketch {
                    session: 1,
                    attempt: 0,
                    table: junk.clone(),
                },
                ids: &ids(0..10),
                seen: &|_| false,
            },
            &mut rng,
        );
        r.handle(
            T,
            Input::Message {
                from: peer(3),
                message: Message::Estimate {
                    session: 9,
                    strata: junk,
                },
                ids: &[],
                seen: &|_| false,
            },
            &mut rng,
        );
        r.handle(
            T,
            Input::Message {
                from: peer(3),
                message: Message::Done {
                    session: 9,
                    pushed: 0,
                    wanted: 0,
                },
                ids: &[],
                seen: &|_| false,
            },
            &mut rng,
        );
        assert_eq!(r.counters().malformed, 3);
        assert!(r.poll().is_none());
    }

    #[test]
    fn answers_are_rate_limited() {
        let mut rng = Rng::from_seed([1; 32]);
        let config = Config::default();
        let mut r = Reconciler::new(config.clone(), T, &mut rng);
        let table = BoundedBytes::new(Iblt::new(64, [1; 32]).unwrap().to_bytes()).unwrap();
        for s in 0..100 {
            r.handle(
                T,
                Input::Message {
                    from: peer(3),
                    message: Message::Sketch {
                        session: s,
                        attempt: 0,
                        table: table.clone(),
                    },
                    ids: &[],
                    seen: &|_| false,
                },
                &mut rng,
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
        let mut rng = Rng::from_seed([1; 32]);
        let mut r = Reconciler::new(Config::default(), T, &mut rng);
        let mut now = T;
        let mut digests = 0;
        for _ in 0..400 {
            now += TimeDelta::from_millis(100);
            if r.poll_timeout().is_some_and(|t| t <= now) {
                let input = Input::Timers {
                    neighbors: &[peer(2)],
                    ids: &ids(0..3),
                };
                r.handle(now, input, &mut rng);
                assert!(r.poll_timeout().is_some_and(|t| t > now));
            }
            while let Some(o) = r.poll() {
                digests += usize::from(matches!(
                    o,
                    Output::Send {
                        message: Message::Digest { .. },
                        ..
                    }
                ));
            }
        }
        // Unanswered rounds do not back off (only answered SAMEs do).
        assert!(digests >= 3, "{digests}");
        assert!(r.counters().timed_out >= 2, "{:?}", r.counters());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After the timers ran at `t` (lent neighbours and ids or not), `poll_timeout()` is
        /// never at or before `t`, and the session's timer is set exactly while a session runs.
        #[test]
        fn timers_move_forward_under_random_inputs(
            steps in prop::collection::vec((0u8..5, 0u8..4, any::<bool>(), 0u32..9000), 1..60),
        ) {
            let mut rng = Rng::from_seed([5; 32]);
            let config = Config {
                session_timeout: TimeDelta::from_secs(3),
                ..Config::default()
            };
            let mut r = Reconciler::new(config, T, &mut rng);
            let neighbors = [peer(1), peer(2), peer(3)];
            let mine = ids(0..40);
            let mut now = T;
            for (kind, n, answer, wait) in steps {
                // An answer to the running session, or a stray message.
                let running = r.session.as_ref().map(|s| (s.peer, s.id));
                let (from, session) = match running {
                    Some(running) if answer => running,
                    _ => (peer(n + 1), 7),
                };
                let message = match kind {
                    0 => {
                        let table = table_of(64, seed(session, 0), &ids(10..60)).unwrap();
                        Some(Message::Sketch {
                            session,
                            attempt: 0,
                            table: BoundedBytes::new(table.to_bytes()).unwrap(),
                        })
                    }
                    1 => {
                        let mut strata = StrataEstimator::new(seed(session, 128));
                        for id in ids(20..300) {
                            strata.insert(id.as_bytes());
                        }
                        Some(Message::Estimate {
                            session,
                            strata: BoundedBytes::new(strata.to_bytes()).unwrap(),
                        })
                    }
                    2 => Some(Message::Done { session, pushed: 0, wanted: 0 }),
                    _ => None,
                };
                match message {
                    Some(message) => {
                        let seen = |_: &MessageId| false;
                        let input = Input::Message { from, message, ids: &mine, seen: &seen };
                        r.handle(now, input, &mut rng);
                    }
                    None => r.handle(now, Input::NeighborDown(from), &mut rng),
                }
                prop_assert_eq!(r.deadlines.get(&Timer::Session).is_some(), r.session.is_some());
                let until = now + TimeDelta::from_millis(u64::from(wait));
                if answer {
                    // The contract's own call: nothing lent.
                    timers_move_forward(&mut r, &mut rng, now, until, 100, |_, _, _| {});
                } else {
                    // The node's call: the neighbours and ids lent whenever a timer is due.
                    while let Some(at) = r.poll_timeout().filter(|at| *at <= until) {
                        now = now.max(at);
                        let input = Input::Timers { neighbors: &neighbors, ids: &mine };
                        r.handle(now, input, &mut rng);
                        while r.poll().is_some() {}
                        prop_assert!(r.poll_timeout().is_some_and(|t| t > now));
                    }
                }
                prop_assert!(r.poll_timeout().is_some_and(|t| t > until));
                prop_assert_eq!(r.deadlines.get(&Timer::Session).is_some(), r.session.is_some());
                while r.poll().is_some() {}
                now = until;
            }
        }
    }
}
