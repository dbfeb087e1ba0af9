//! Friends-of-friends (FOAF) discovery: "who knows peer P?" or "who knows peers offering
//! capability C?", asked of the overlay without a DHT or a directory.
//!
//! A query goes to `fanout` (3) random neighbours with a hop budget `ttl` (3, at most 4). Each
//! node that receives it for the first time answers from what it knows (its own record, the
//! records it holds for its neighbours and other peers, through the [`Knowledge`] its owner
//! supplies) and, while hops remain, passes it to up to `fanout` of its own neighbours other than
//! the one it came from, with one hop less. Answers are signed [`PeerRecord`]s and travel back
//! **only** along the reverse path, hop by hop, to the neighbour each node got the query from: a
//! query carries no reply address, so it cannot be used to aim traffic at a third party.
//!
//! Bounds (SPEC.md §18): a node forwards a query at most once while its id is remembered, to at
//! most `fanout` neighbours, and always decrements the hop budget, so one query causes at most
//! `fanout + fanout² + … + fanout^ttl` query messages in the whole overlay (39 at the defaults,
//! 120 at ttl 4). Queries are rate-limited per neighbour; every table (remembered ids, pending
//! queries, rate-limit buckets, output queues) has a capacity; answers are accepted only for a
//! pending query and only from a neighbour the query was sent to; every record is checked
//! against the query and verified before it is passed on or reported.
//!
//! [`Foaf`] is a [`StateMachine`] (SPEC.md §8.8): the node's request and the two messages are
//! [`Input`]s to [`StateMachine::handle`] (answered at once by a [`Reply`]), what to send and what
//! to report comes out of [`StateMachine::poll`] as [`Output`]s in the order it was produced, and
//! its timers (each pending query's end, the next forgotten query id) sit in one [`Deadlines`].
//! Randomness (query ids, the choice of neighbours) comes only from the RNG the caller passes in.

mod config;
mod message;
pub use config::*;
pub use message::*;

use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::machine::{Deadlines, StateMachine};
use crate::time::{RateLimits, Timestamp};
use crate::wire::codec::BoundedVec;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use rand_core::Rng;

/// What [`Foaf`] did with an [`Input::Query`] ([`Reply::Query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryOutcome {
    /// Accepted: `answered` records went back to the sender, and the query was sent on to
    /// `forwarded` neighbours.
    Served {
        /// Records in this node's own answer (0: no answer was sent).
        answered: usize,
        /// Neighbours the query was passed to.
        forwarded: usize,
    },
    /// The id was seen before: dropped.
    Duplicate,
    /// The sender exceeded its query rate: dropped.
    RateLimited,
    /// The hop budget is above the maximum: refused.
    TtlTooHigh,
    /// The hop budget is zero: refused.
    TtlZero,
    /// The sender is not a neighbour: refused.
    NotNeighbour,
}

/// What [`Foaf`] did with an [`Input::Answer`] ([`Reply::Answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerOutcome {
    /// Accepted: `new_records` records were new, verified and passed back (or reported).
    Accepted {
        /// Records passed on.
        new_records: usize,
        /// Whether a record failed its check (the rest of the answer was discarded, and the
        /// sender may send no more answers to this query).
        rejected: bool,
    },
    /// No pending query has this id (never sent, timed out, or forgotten): dropped.
    UnknownQuery,
    /// The query was not sent to this peer (or it already sent a bad record): dropped.
    WrongPeer,
    /// The query already took `max_answers_per_query` answers: dropped.
    TooManyAnswers,
}

/// What the origin of a query learns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// New verified records answering one of this node's queries (each peer reported once).
    Found {
        /// The query.
        query: QueryId,
        /// What it looked for.
        target: Target,
        /// The neighbour the answer came through.
        via: PeerId,
        /// The records: distinct peers, verified, matching the target.
        records: Vec<PeerRecord>,
    },
    /// A query of this node ended (its timeout passed); late answers are dropped.
    QueryDone {
        /// The query.
        query: QueryId,
        /// What it looked for.
        target: Target,
        /// Distinct records found (0: the query failed).
        found: usize,
        /// Neighbours the origin sent the query to.
        sent: usize,
    },
}

/// What can happen to [`Foaf`] (SPEC.md §8.8): the node's request and the two messages of
/// frame kind 5. Each borrows, for the call, what the node lends it.
pub enum Input<'a> {
    /// The node looks for `target` (`Node::find`): a query with hop budget `ttl` (`None`:
    /// `default_ttl`) goes to up to `fanout` random peers of `neighbours`. Answers arrive as
    /// [`Event::Found`]; after `query_timeout` an [`Event::QueryDone`] reports the outcome. The
    /// owner should look in its own knowledge first: the query does not. Answered with
    /// [`Reply::Started`].
    Find {
        /// What to look for.
        target: Target,
        /// The hop budget (`None`: `default_ttl`).
        ttl: Option<u8>,
        /// The node's neighbours (its active view).
        neighbours: &'a [PeerId],
    },
    /// A query arrived from the neighbour `from`. In order: the hop budget is checked, the
    /// sender must be in `neighbours`, a remembered id is a duplicate, the sender's rate is
    /// checked; then the id is remembered, the query answered from `knowledge` (if it knows
    /// matching records) and, if hops remain and it is still worth it (a capability query, or a
    /// peer query this node could not answer), sent on to up to `fanout` random neighbours other
    /// than `from`. Answered with [`Reply::Query`].
    Query {
        /// The neighbour it came from.
        from: PeerId,
        /// The query.
        query: Query,
        /// What this node knows (its own record, the records it holds).
        knowledge: &'a dyn Knowledge,
        /// The node's neighbours (its active view).
        neighbours: &'a [PeerId],
    },
    /// An answer arrived from the neighbour `from`. It is accepted only for a pending query
    /// that was sent to `from`, within `max_answers_per_query`. Each record, in order, must
    /// match the query's target, be new for this query (else it is skipped unverified) and
    /// within `max_records_per_query`, and pass `verify` (the owner's full check, SPEC §4, which
    /// may consult its cache); the first record that fails ends the answer and bars `from` from
    /// answering this query again. New records go back to the neighbour the query came from,
    /// or, at the origin, are reported in [`Event::Found`]. Answered with [`Reply::Answer`].
    Answer {
        /// The neighbour it came from.
        from: PeerId,
        /// The answer.
        answer: Answer,
        /// The owner's check of a record.
        verify: &'a mut dyn FnMut(&PeerRecord) -> bool,
    },
}

impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Find {
                target,
                ttl,
                neighbours,
            } => f
                .debug_struct("Find")
                .field("target", target)
                .field("ttl", ttl)
                .field("neighbours", &neighbours.len())
                .finish(),
            Input::Query {
                from,
                query,
                neighbours,
                ..
            } => f
                .debug_struct("Query")
                .field("from", from)
                .field("query", query)
                .field("neighbours", &neighbours.len())
                .finish_non_exhaustive(),
            Input::Answer { from, answer, .. } => f
                .debug_struct("Answer")
                .field("from", from)
                .field("answer", answer)
                .finish_non_exhaustive(),
        }
    }
}

/// What [`Foaf`] asks of its owner, in the order it arose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to the neighbour `to` (frame kind 5).
    Send {
        /// The neighbour.
        to: PeerId,
        /// The message.
        message: DiscoveryMessage,
    },
    /// Tell the owner (the origin of a query).
    Event(Event),
}

/// What [`Foaf`] answers to an [`Input`] at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// To [`Input::Find`]: the new query's id, or why no query was started.
    Started(Result<QueryId, FoafError>),
    /// To [`Input::Query`]: what was done with it.
    Query(QueryOutcome),
    /// To [`Input::Answer`]: what was done with it.
    Answer(AnswerOutcome),
}

/// A timer of [`Foaf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A pending query (own or relayed) ends.
    Query(QueryId),
    /// The oldest remembered query id is forgotten.
    Forget,
}

/// Running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Own queries started.
    pub queries_started: u64,
    /// Own queries ended by their timeout.
    pub queries_done: u64,
    /// Own queries that found at least one record.
    pub queries_succeeded: u64,
    /// Queries accepted from neighbours (first copies, within TTL and rate).
    pub queries_received: u64,
    /// Query messages sent (by the origin and as relay): a simulator sums these per query.
    pub queries_sent: u64,
    /// Accepted queries this node passed on to at least one neighbour.
    pub queries_relayed: u64,
    /// Answers this node originated from its own knowledge.
    pub answers_sent: u64,
    /// Answers relayed back towards an origin.
    pub answers_relayed: u64,
    /// Answers accepted from neighbours.
    pub answers_received: u64,
    /// Distinct records reported to this node as origin.
    pub records_found: u64,
    /// Queries dropped as duplicates.
    pub duplicates: u64,
    /// Queries dropped by the per-neighbour rate limit.
    pub rate_limited: u64,
    /// Queries refused for a hop budget above the maximum.
    pub ttl_too_high: u64,
    /// Queries refused for a hop budget of zero.
    pub ttl_zero: u64,
    /// Queries refused because the sender is not a neighbour.
    pub not_neighbour: u64,
    /// Answers for no pending query.
    pub answers_unknown_query: u64,
    /// Answers from a peer the query was not sent to (or that already sent a bad record).
    pub answers_wrong_peer: u64,
    /// Answers beyond `max_answers_per_query`.
    pub answers_over_limit: u64,
    /// Records that failed verification.
    pub records_invalid: u64,
    /// Records that do not match the query's target.
    pub records_mismatched: u64,
    /// Records for a peer already passed back for the query (dropped unverified).
    pub records_duplicate: u64,
    /// Records beyond `max_records_per_query` (dropped unverified).
    pub records_over_limit: u64,
    /// Query ids forgotten early because the dedup table was full.
    pub dedup_evicted: u64,
    /// Relayed queries forgotten early because the pending table was full.
    pub pending_evicted: u64,
    /// Outputs dropped because `max_queued` were waiting.
    pub queue_dropped: u64,
}

/// A query this node sent (as origin or relay) and waits for answers to.
#[derive(Debug, Clone)]
struct Pending {
    /// The neighbour the query came from (answers go there), or `None` for an own query.
    from: Option<PeerId>,
    target: Target,
    /// Neighbours the query went to that may still answer.
    sent_to: Vec<PeerId>,
    /// How many it went to.
    sent: usize,
    expires_at: Timestamp,
    /// Peers whose records were passed back (or reported) already.
    records: BTreeSet<PeerId>,
    answers: usize,
}

crate::machine::internal_struct! {
    /// The FOAF discovery state machine of one node.
    #[derive(Debug)]
    struct Foaf {
        config: Config,
        /// Remembered query ids, and their expiry in insertion order.
        seen: BTreeSet<QueryId>,
        seen_order: VecDeque<(Timestamp, QueryId)>,
        pending: BTreeMap<QueryId, Pending>,
        /// The end of every pending query, and the expiry of the oldest remembered id.
        deadlines: Deadlines<Timer>,
        own_queries: usize,
        buckets: RateLimits<PeerId>,
        /// Sends and events in the order they arose; at most `max_queued` of each kind.
        outputs: VecDeque<Output>,
        /// Sends in `outputs`.
        queued_sends: usize,
        /// Events in `outputs`.
        queued_events: usize,
        counters: Counters,
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl Foaf {
    /// A state machine with `config`, which must pass [`Config::validate`].
    pub fn new(config: Config) -> Result<Self, FoafError> {
        config.validate()?;
        Ok(Self {
            buckets: RateLimits::new(config.query_rate, config.max_rate_buckets),
            config,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            pending: BTreeMap::new(),
            deadlines: Deadlines::new(),
            own_queries: 0,
            outputs: VecDeque::new(),
            queued_sends: 0,
            queued_events: 0,
            counters: Counters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Query ids currently remembered for deduplication (at most `dedup_capacity`).
    pub fn remembered_ids(&self) -> usize {
        self.seen.len()
    }

    /// Queries waiting for answers, own and relayed (at most `max_pending`).
    pub fn pending_queries(&self) -> usize {
        self.pending.len()
    }

    /// Own queries in flight (at most `max_own_queries`).
    pub fn own_queries(&self) -> usize {
        self.own_queries
    }

    /// Peers with a rate-limit bucket (at most `max_rate_buckets`).
    pub fn rate_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Outputs waiting to be drained: `(sends, events)`, each at most `max_queued`.
    pub fn queued(&self) -> (usize, usize) {
        (self.queued_sends, self.queued_events)
    }

    /// Starts a query for `target`. Shorthand for `handle(now, Input::Find { target, ttl,
    /// neighbours })`.
    pub fn start_query<R: Rng + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        target: Target,
        ttl: Option<u8>,
        neighbours: &[PeerId],
    ) -> Result<QueryId, FoafError> {
        self.find(now, rng, target, ttl, neighbours)
    }

    /// A query arrived from `from`. Shorthand for `handle(now, Input::Query { from, query,
    /// knowledge, neighbours })`.
    pub fn handle_query<R: Rng + ?Sized, K: Knowledge + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        from: PeerId,
        query: Query,
        knowledge: &K,
        neighbours: &[PeerId],
    ) -> QueryOutcome {
        self.on_query(now, rng, from, query, knowledge, neighbours)
    }

    /// An answer arrived from `from`. Shorthand for `handle(now, Input::Answer { from, answer,
    /// verify })`.
    pub fn handle_answer(
        &mut self,
        now: Timestamp,
        from: PeerId,
        answer: Answer,
        mut verify: impl FnMut(&PeerRecord) -> bool,
    ) -> AnswerOutcome {
        self.on_answer(now, from, answer, &mut verify)
    }

    /// Runs the timers due at `now`. Shorthand for [`StateMachine::handle_timeout`] (FOAF
    /// draws nothing when time passes).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.on_timeout(now);
    }

    /// When [`Foaf::handle_timeout`] next has work. Shorthand for
    /// [`StateMachine::poll_timeout`], callable without the trait in scope.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }

    /// The next message to send, `(neighbour, message)`, leaving events queued. A driver that
    /// takes every output calls [`StateMachine::poll`] instead.
    pub fn poll_transmit(&mut self) -> Option<(PeerId, DiscoveryMessage)> {
        let at = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Send { .. }))?;
        match self.outputs.remove(at)? {
            Output::Send { to, message } => {
                self.queued_sends = self.queued_sends.saturating_sub(1);
                Some((to, message))
            }
            Output::Event(_) => None,
        }
    }

    /// The next event for the owner, leaving sends queued. A driver that takes every output
    /// calls [`StateMachine::poll`] instead.
    pub fn poll_event(&mut self) -> Option<Event> {
        let at = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Event(_)))?;
        match self.outputs.remove(at)? {
            Output::Event(e) => {
                self.queued_events = self.queued_events.saturating_sub(1);
                Some(e)
            }
            Output::Send { .. } => None,
        }
    }

    // ------------------------------------------------------------------ inputs

    fn find<R: Rng + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        target: Target,
        ttl: Option<u8>,
        neighbours: &[PeerId],
    ) -> Result<QueryId, FoafError> {
        self.run_timers(now);
        let ttl = ttl.unwrap_or(self.config.default_ttl);
        if ttl == 0 || ttl > self.config.max_ttl {
            return Err(FoafError::BadTtl {
                ttl,
                max: self.config.max_ttl,
            });
        }
        if self.own_queries >= self.config.max_own_queries {
            return Err(FoafError::TooManyQueries {
                max: self.config.max_own_queries,
            });
        }
        let id = self.fresh_id(rng)?;
        let chosen = self.choose(rng, neighbours, None);
        if chosen.is_empty() {
            return Err(FoafError::NoNeighbours);
        }
        self.remember(now, id);
        self.counters.queries_started += 1;
        self.own_queries += 1;
        self.send_queries(id, &target, ttl, &chosen);
        self.insert_pending(
            id,
            Pending {
                from: None,
                target,
                sent: chosen.len(),
                sent_to: chosen,
                expires_at: now + self.config.query_timeout,
                records: BTreeSet::new(),
                answers: 0,
            },
        );
        Ok(id)
    }

    fn on_query<R: Rng + ?Sized, K: Knowledge + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        from: PeerId,
        query: Query,
        knowledge: &K,
        neighbours: &[PeerId],
    ) -> QueryOutcome {
        self.run_timers(now);
        if query.ttl == 0 {
            self.counters.ttl_zero += 1;
            return QueryOutcome::TtlZero;
        }
        if query.ttl > self.config.max_ttl {
            self.counters.ttl_too_high += 1;
            return QueryOutcome::TtlTooHigh;
        }
        if !neighbours.contains(&from) {
            self.counters.not_neighbour += 1;
            return QueryOutcome::NotNeighbour;
        }
        if self.seen.contains(&query.id) || self.pending.contains_key(&query.id) {
            self.counters.duplicates += 1;
            return QueryOutcome::Duplicate;
        }
        if !self.take_token(now, from) {
            self.counters.rate_limited += 1;
            return QueryOutcome::RateLimited;
        }
        self.remember(now, query.id);
        self.counters.queries_received += 1;

        let records = self.local_answer(now, &query.target, knowledge);
        let answered = records.len();
        let answered_peers: BTreeSet<PeerId> = records.iter().map(|r| r.peer_id).collect();
        // `local_answer` keeps at most `max_records_per_answer` ≤ MAX_ANSWER_RECORDS records.
        if answered > 0
            && let Ok(records) = BoundedVec::new(records)
        {
            self.counters.answers_sent += 1;
            self.push_transmit(
                from,
                DiscoveryMessage::Answer(Answer {
                    id: query.id,
                    records,
                }),
            );
        }

        // A peer query is satisfied on this branch once answered: only capability queries
        // (which may find more) go on past a node that answered.
        let worth_it = answered == 0 || matches!(query.target, Target::Capability(_));
        let mut forwarded = 0;
        if query.ttl > 1 && worth_it {
            let chosen = self.choose(rng, neighbours, Some(from));
            if !chosen.is_empty() {
                forwarded = chosen.len();
                self.counters.queries_relayed += 1;
                self.send_queries(query.id, &query.target, query.ttl - 1, &chosen);
                self.insert_pending(
                    query.id,
                    Pending {
                        from: Some(from),
                        target: query.target,
                        sent: chosen.len(),
                        sent_to: chosen,
                        expires_at: now + self.config.query_timeout,
                        records: answered_peers,
                        answers: 0,
                    },
                );
            }
        }
        QueryOutcome::Served {
            answered,
            forwarded,
        }
    }

    fn on_answer(
        &mut self,
        now: Timestamp,
        from: PeerId,
        answer: Answer,
        verify: &mut dyn FnMut(&PeerRecord) -> bool,
    ) -> AnswerOutcome {
        self.run_timers(now);
        let Some(pending) = self.pending.get_mut(&answer.id) else {
            self.counters.answers_unknown_query += 1;
            return AnswerOutcome::UnknownQuery;
        };
        if !pending.sent_to.contains(&from) {
            self.counters.answers_wrong_peer += 1;
            return AnswerOutcome::WrongPeer;
        }
        if pending.answers >= self.config.max_answers_per_query {
            self.counters.answers_over_limit += 1;
            return AnswerOutcome::TooManyAnswers;
        }
        pending.answers += 1;
        self.counters.answers_received += 1;

        let mut fresh: Vec<PeerRecord> = Vec::new();
        let mut rejected = false;
        for record in answer.records.into_vec() {
            if !pending.target.admits(&record) {
                self.counters.records_mismatched += 1;
                rejected = true;
                break;
            }
            if pending.records.contains(&record.peer_id) {
                self.counters.records_duplicate += 1;
                continue;
            }
            if pending.records.len() >= self.config.max_records_per_query {
                self.counters.records_over_limit += 1;
                continue;
            }
            if !verify(&record) {
                self.counters.records_invalid += 1;
                rejected = true;
                break;
            }
            pending.records.insert(record.peer_id);
            fresh.push(record);
        }
        if rejected {
            pending.sent_to.retain(|p| *p != from);
        }
        let new_records = fresh.len();
        if new_records > 0 {
            let (back, target) = (pending.from, pending.target.clone());
            match back {
                None => {
                    self.counters.records_found += new_records as u64;
                    self.push_event(Event::Found {
                        query: answer.id,
                        target,
                        via: from,
                        records: fresh,
                    });
                }
                Some(back) => {
                    // `fresh` is a subset of an answer that fitted the wire limit.
                    if let Ok(records) = BoundedVec::new(fresh) {
                        self.counters.answers_relayed += 1;
                        self.push_transmit(
                            back,
                            DiscoveryMessage::Answer(Answer {
                                id: answer.id,
                                records,
                            }),
                        );
                    }
                }
            }
        }
        AnswerOutcome::Accepted {
            new_records,
            rejected,
        }
    }

    /// Ends pending queries whose time is up (own ones with [`Event::QueryDone`]), forgets
    /// expired query ids, and drops idle rate-limit buckets (which need no timer: they are
    /// dropped whenever time passes, or when the table is full).
    fn on_timeout(&mut self, now: Timestamp) {
        self.run_timers(now);
        self.buckets.forget_idle(now);
    }

    // ------------------------------------------------------------------ internals

    fn fresh_id<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<QueryId, FoafError> {
        for _ in 0..8 {
            let id = QueryId::random(rng);
            if !self.seen.contains(&id) && !self.pending.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(FoafError::IdCollision)
    }

    /// Up to `fanout` distinct peers of `neighbours` other than `except`, drawn uniformly by a
    /// partial Fisher–Yates shuffle of the sorted list (so the caller's order does not matter).
    fn choose<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        neighbours: &[PeerId],
        except: Option<PeerId>,
    ) -> Vec<PeerId> {
        let mut candidates: Vec<PeerId> = neighbours
            .iter()
            .copied()
            .filter(|p| Some(*p) != except)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let k = self.config.fanout.min(candidates.len());
        for i in 0..k {
            let left = (candidates.len() - i) as u64;
            let j = i + (rng.next_u64() % left) as usize;
            candidates.swap(i, j);
        }
        candidates.truncate(k);
        candidates
    }

    /// What this node answers from its own knowledge: matching, unexpired, one per peer, at
    /// most `max_records_per_answer`.
    fn local_answer<K: Knowledge + ?Sized>(
        &self,
        now: Timestamp,
        target: &Target,
        knowledge: &K,
    ) -> Vec<PeerRecord> {
        let max = self.config.max_records_per_answer;
        let mut out: Vec<PeerRecord> = Vec::new();
        for record in knowledge.lookup(target, max) {
            if out.len() >= max {
                break;
            }
            if target.admits(&record)
                && record.expires_at > now
                && !out.iter().any(|r| r.peer_id == record.peer_id)
            {
                out.push(record);
            }
        }
        out
    }

    fn send_queries(&mut self, id: QueryId, target: &Target, ttl: u8, to: &[PeerId]) {
        for peer in to {
            self.counters.queries_sent += 1;
            self.push_transmit(
                *peer,
                DiscoveryMessage::Query(Query {
                    id,
                    target: target.clone(),
                    ttl,
                }),
            );
        }
    }

    fn take_token(&mut self, now: Timestamp, from: PeerId) -> bool {
        self.buckets.take(now, from)
    }

    /// Remembers `id` until `now + dedup_ttl`, forgetting the oldest id if the table is full.
    fn remember(&mut self, now: Timestamp, id: QueryId) {
        while self.seen.len() >= self.config.dedup_capacity {
            match self.seen_order.pop_front() {
                Some((_, old)) => {
                    self.seen.remove(&old);
                    self.counters.dedup_evicted += 1;
                }
                None => break,
            }
        }
        if self.seen.insert(id) {
            self.seen_order.push_back((now + self.config.dedup_ttl, id));
        }
        self.arm_forget();
    }

    /// Sets [`Timer::Forget`] to the expiry of the oldest remembered id (ids are remembered in
    /// the order they came, so it is the first to go).
    fn arm_forget(&mut self) {
        match self.seen_order.front() {
            Some(&(at, _)) => self.deadlines.set(Timer::Forget, at),
            None => {
                self.deadlines.cancel(&Timer::Forget);
            }
        }
    }

    /// Inserts a pending query; when the table is full, forgets the relayed query that expires
    /// first (own queries are bounded below the capacity, so there always is one).
    fn insert_pending(&mut self, id: QueryId, pending: Pending) {
        while self.pending.len() >= self.config.max_pending {
            let victim = self
                .pending
                .iter()
                .filter(|(_, p)| p.from.is_some())
                .min_by_key(|(q, p)| (p.expires_at, **q))
                .map(|(q, _)| *q);
            let Some(q) = victim else { break };
            self.deadlines.cancel(&Timer::Query(q));
            self.pending.remove(&q);
            self.counters.pending_evicted += 1;
        }
        self.deadlines.set(Timer::Query(id), pending.expires_at);
        if let Some(old) = self.pending.insert(id, pending) {
            // Not reachable (ids are checked before), but keep the count exact regardless.
            if old.from.is_none() {
                self.own_queries = self.own_queries.saturating_sub(1);
            }
        }
    }

    /// Runs every timer due at `now`, in time then key order.
    fn run_timers(&mut self, now: Timestamp) {
        while let Some((_, timer)) = self.deadlines.pop_due(now) {
            match timer {
                Timer::Query(id) => self.end_query(id),
                Timer::Forget => {
                    while let Some(&(t, id)) = self.seen_order.front() {
                        if t > now {
                            break;
                        }
                        self.seen_order.pop_front();
                        self.seen.remove(&id);
                    }
                    self.arm_forget();
                }
            }
        }
    }

    /// A pending query's time is up; an own query reports [`Event::QueryDone`].
    fn end_query(&mut self, id: QueryId) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        if p.from.is_none() {
            self.own_queries = self.own_queries.saturating_sub(1);
            self.counters.queries_done += 1;
            if !p.records.is_empty() {
                self.counters.queries_succeeded += 1;
            }
            self.push_event(Event::QueryDone {
                query: id,
                target: p.target,
                found: p.records.len(),
                sent: p.sent,
            });
        }
    }

    fn push_transmit(&mut self, to: PeerId, message: DiscoveryMessage) {
        if self.queued_sends >= self.config.max_queued {
            self.counters.queue_dropped += 1;
            return;
        }
        self.queued_sends += 1;
        self.outputs.push_back(Output::Send { to, message });
    }

    fn push_event(&mut self, event: Event) {
        if self.queued_events >= self.config.max_queued {
            self.counters.queue_dropped += 1;
            return;
        }
        self.queued_events += 1;
        self.outputs.push_back(Output::Event(event));
    }
}

impl StateMachine for Foaf {
    type Input<'a> = Input<'a>;
    type Output = Output;
    type Reply = Reply;

    fn handle(&mut self, now: Timestamp, input: Input<'_>, rng: &mut crate::machine::Rng) -> Reply {
        match input {
            Input::Find {
                target,
                ttl,
                neighbours,
            } => Reply::Started(self.find(now, rng, target, ttl, neighbours)),
            Input::Query {
                from,
                query,
                knowledge,
                neighbours,
            } => Reply::Query(self.on_query(now, rng, from, query, knowledge, neighbours)),
            Input::Answer {
                from,
                answer,
                verify,
            } => Reply::Answer(self.on_answer(now, from, answer, verify)),
        }
    }

    fn handle_timeout(&mut self, now: Timestamp, _rng: &mut crate::machine::Rng) {
        self.on_timeout(now);
    }

    fn poll(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front()?;
        match &out {
            Output::Send { .. } => self.queued_sends = self.queued_sends.saturating_sub(1),
            Output::Event(_) => self.queued_events = self.queued_events.saturating_sub(1),
        }
        Some(out)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

#[cfg(test)]
mod tests;
