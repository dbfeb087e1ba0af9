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
//! The state machine follows the crate's idiom: `handle_*` inputs take `now`, outputs are drained
//! with [`Foaf::poll_transmit`] and [`Foaf::poll_event`], and [`Foaf::poll_timeout`] names the
//! instant at which [`Foaf::handle_timeout`] is due. Randomness (query ids, the choice of
//! neighbours) comes only from the RNG the caller passes in.

use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::time::{TimeDelta, Timestamp, TokenBucket};
use crate::wire::MAX_FRAME_LEN;
use crate::wire::codec::{self, BoundedBytes, BoundedVec, DecodeError, EncodeError};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Decoder, Encode, Encoder};
use rand_core::Rng;

/// The largest hop budget any query may carry; a query arriving with more is refused.
pub const MAX_TTL: u8 = 4;
/// The largest `fanout` a configuration may choose.
pub const MAX_FANOUT: usize = 8;
/// Longest capability tag, in bytes.
pub const MAX_CAPABILITY_LEN: usize = 32;
/// Most records one answer may carry. A record is at most 7,548 B encoded (8 addresses of
/// 128 B), so 32 of them (241,536 B) and the answer's framing fit the 256 KiB frame limit.
pub const MAX_ANSWER_RECORDS: usize = 32;
/// Length of a query id, in bytes.
pub const QUERY_ID_LEN: usize = 16;

/// An opaque capability tag (at most [`MAX_CAPABILITY_LEN`] bytes). Its meaning is the
/// application's; peer records do not carry capabilities, so which peers offer a tag is
/// whatever the answering node's [`Knowledge`] says.
pub type Capability = BoundedBytes<MAX_CAPABILITY_LEN>;

/// A query's identity: 16 random bytes drawn by the origin. Relays use it to recognise
/// duplicates and to route answers back; it says nothing about the origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId([u8; QUERY_ID_LEN]);

impl QueryId {
    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; QUERY_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; QUERY_ID_LEN] {
        &self.0
    }

    /// A fresh id from `rng`.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; QUERY_ID_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

impl fmt::Display for QueryId {
    /// 32 lower-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryId(")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl<C> Encode<C> for QueryId {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for QueryId {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let b = codec::bounded_bytes(d, QUERY_ID_LEN)?;
        <[u8; QUERY_ID_LEN]>::try_from(b).map(Self).map_err(|_| {
            codec::limit(DecodeError::WrongLength {
                expected: QUERY_ID_LEN,
                got: b.len(),
            })
        })
    }
}

/// What a query looks for.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Target {
    /// The record of one peer. An answer may only carry records whose `peer_id` is this peer.
    #[n(0)]
    Peer(#[n(0)] PeerId),
    /// Records of peers offering a capability. Records carry no capabilities, so an answer's
    /// records are the answering node's claim: any record that verifies is accepted.
    #[n(1)]
    Capability(#[n(0)] Capability),
}

impl Target {
    /// Whether `record` may answer this target: for a peer, the record must be that peer's;
    /// for a capability, any record may (the claim is the answering node's, see [`Target`]).
    pub fn admits(&self, record: &PeerRecord) -> bool {
        match self {
            Target::Peer(peer) => record.peer_id == *peer,
            Target::Capability(_) => true,
        }
    }
}

/// "Who knows `target`?", with `ttl` hops left for the receiver to pass on.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Query {
    /// The query's id (random, chosen by the origin).
    #[n(0)]
    pub id: QueryId,
    /// What is looked for.
    #[n(1)]
    pub target: Target,
    /// Hops left, counting the one that delivered this copy: 1 means "answer, do not forward".
    /// Valid values are 1..=[`MAX_TTL`].
    #[n(2)]
    pub ttl: u8,
}

/// Records answering query `id`, sent to the neighbour the query came from.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Answer {
    /// The query answered.
    #[n(0)]
    pub id: QueryId,
    /// Signed records of distinct peers, as their subjects signed them.
    #[n(1)]
    pub records: BoundedVec<PeerRecord, MAX_ANSWER_RECORDS>,
}

/// Discovery messages (frame kind 5).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum DiscoveryMessage {
    /// A query, from the origin or a relay.
    #[n(0)]
    Query(#[n(0)] Query),
    /// An answer, travelling back along the reverse path.
    #[n(1)]
    Answer(#[n(0)] Answer),
}

impl DiscoveryMessage {
    /// Encodes the message alone (without the frame's `[kind, body]` wrapper); fails if it
    /// would exceed [`MAX_FRAME_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let out = codec::to_vec(self)?;
        if out.len() > MAX_FRAME_LEN {
            return Err(EncodeError::FrameTooLarge {
                len: out.len(),
                max: MAX_FRAME_LEN,
            });
        }
        Ok(out)
    }

    /// Decodes one message: the size is checked first, then every list and byte string on its
    /// header; trailing bytes are an error. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(DecodeError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_LEN,
            });
        }
        codec::from_slice(bytes)
    }
}

/// What the answering side knows: the owner (the `Node`) looks records up in its own record,
/// its cache of verified records and, for capabilities, whatever table it keeps.
pub trait Knowledge {
    /// At most `max` signed, verified, unexpired records answering `target` (possibly none).
    /// Records that do not match, are expired, or repeat a peer are filtered out by the caller.
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord>;
}

impl<F: Fn(&Target, usize) -> Vec<PeerRecord>> Knowledge for F {
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord> {
        self(target, max)
    }
}

/// A plain list of records answers peer targets by id and no capability.
impl Knowledge for [PeerRecord] {
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord> {
        match target {
            Target::Peer(_) => self
                .iter()
                .filter(|r| target.admits(r))
                .take(max)
                .cloned()
                .collect(),
            Target::Capability(_) => Vec::new(),
        }
    }
}

/// FOAF parameters (SPEC.md §18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Neighbours a query is sent to, by the origin and by each relay. Default 3.
    pub fanout: usize,
    /// Hop budget of a query when the caller names none. Default 3.
    pub default_ttl: u8,
    /// Largest hop budget accepted (at most [`MAX_TTL`]). Default 4.
    pub max_ttl: u8,
    /// How long the origin and each relay wait for answers to a query. Default 5 s.
    pub query_timeout: TimeDelta,
    /// Most query ids remembered for deduplication; when full, the oldest is forgotten.
    /// Default 1,024.
    pub dedup_capacity: usize,
    /// How long a query id is remembered (at least `query_timeout`). Default 30 s.
    pub dedup_ttl: TimeDelta,
    /// Queries accepted per neighbour per second (token bucket, burst the same). Default 10.
    pub query_rate: u32,
    /// Most records in an answer this node originates (at most [`MAX_ANSWER_RECORDS`]).
    /// Default 8.
    pub max_records_per_answer: usize,
    /// Most distinct records passed back (or reported) per query. Default 32.
    pub max_records_per_query: usize,
    /// Most answers accepted per pending query. Default 32.
    pub max_answers_per_query: usize,
    /// Most pending queries (own and relayed); when full, the oldest relayed one is forgotten.
    /// Default 256.
    pub max_pending: usize,
    /// Most own queries in flight (less than `max_pending`). Default 16.
    pub max_own_queries: usize,
    /// Most peers with a rate-limit bucket; an idle bucket (full again after a second) is
    /// dropped first, then the least recently used. Default 128.
    pub max_rate_buckets: usize,
    /// Most outputs (transmits, events) waiting to be drained; more are dropped and counted.
    /// Default 1,024.
    pub max_queued: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fanout: 3,
            default_ttl: 3,
            max_ttl: MAX_TTL,
            query_timeout: TimeDelta::from_secs(5),
            dedup_capacity: 1024,
            dedup_ttl: TimeDelta::from_secs(30),
            query_rate: 10,
            max_records_per_answer: 8,
            max_records_per_query: 32,
            max_answers_per_query: 32,
            max_pending: 256,
            max_own_queries: 16,
            max_rate_buckets: 128,
            max_queued: 1024,
        }
    }
}

impl Config {
    /// Checks the parameters; the error names the rule broken.
    pub fn validate(&self) -> Result<(), FoafError> {
        let rule = if self.fanout == 0 || self.fanout > MAX_FANOUT {
            "fanout must be between 1 and MAX_FANOUT"
        } else if self.max_ttl == 0 || self.max_ttl > MAX_TTL {
            "max_ttl must be between 1 and MAX_TTL"
        } else if self.default_ttl == 0 || self.default_ttl > self.max_ttl {
            "default_ttl must be between 1 and max_ttl"
        } else if self.query_timeout == TimeDelta::ZERO {
            "query_timeout must be positive"
        } else if self.dedup_ttl < self.query_timeout {
            "dedup_ttl must be at least query_timeout"
        } else if self.max_records_per_answer == 0
            || self.max_records_per_answer > MAX_ANSWER_RECORDS
        {
            "max_records_per_answer must be between 1 and MAX_ANSWER_RECORDS"
        } else if self.dedup_capacity == 0
            || self.max_records_per_query == 0
            || self.max_answers_per_query == 0
            || self.max_rate_buckets == 0
            || self.max_queued == 0
            || self.max_own_queries == 0
        {
            "capacities must be at least 1"
        } else if self.max_own_queries >= self.max_pending {
            "max_own_queries must be less than max_pending"
        } else {
            return Ok(());
        };
        Err(FoafError::InvalidConfig(rule))
    }
}

/// Why a FOAF call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoafError {
    /// The configuration breaks the named rule.
    InvalidConfig(&'static str),
    /// The hop budget is zero or above the configured maximum.
    BadTtl {
        /// The budget asked for.
        ttl: u8,
        /// The configured maximum.
        max: u8,
    },
    /// There is no neighbour to send the query to.
    NoNeighbours,
    /// `max_own_queries` of this node's queries are in flight.
    TooManyQueries {
        /// The limit.
        max: usize,
    },
    /// The RNG kept producing ids already in use (a broken RNG).
    IdCollision,
}

impl fmt::Display for FoafError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FoafError::InvalidConfig(rule) => write!(f, "invalid FOAF configuration: {rule}"),
            FoafError::BadTtl { ttl, max } => {
                write!(f, "query ttl {ttl} is outside 1..={max}")
            }
            FoafError::NoNeighbours => f.write_str("no neighbour to send the query to"),
            FoafError::TooManyQueries { max } => {
                write!(f, "{max} discovery queries are already in flight")
            }
            FoafError::IdCollision => f.write_str("could not draw an unused query id"),
        }
    }
}

impl core::error::Error for FoafError {}

/// What [`Foaf::handle_query`] did with a query.
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

/// What [`Foaf::handle_answer`] did with an answer.
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

#[derive(Debug, Clone)]
struct Bucket {
    tokens: TokenBucket,
    last_used: Timestamp,
}

/// How long an unused bucket takes to fill again (its burst equals its rate per second): after
/// this it is the same as a new one and can be dropped.
const BUCKET_REFILL: TimeDelta = TimeDelta::from_secs(1);

/// The FOAF discovery state machine of one node.
#[derive(Debug)]
pub struct Foaf {
    config: Config,
    /// Remembered query ids, and their expiry in insertion order.
    seen: BTreeSet<QueryId>,
    seen_order: VecDeque<(Timestamp, QueryId)>,
    pending: BTreeMap<QueryId, Pending>,
    /// `(expires_at, id)` of every pending query.
    expiries: BTreeSet<(Timestamp, QueryId)>,
    own_queries: usize,
    buckets: BTreeMap<PeerId, Bucket>,
    transmits: VecDeque<(PeerId, DiscoveryMessage)>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl Foaf {
    /// A state machine with `config`, which must pass [`Config::validate`].
    pub fn new(config: Config) -> Result<Self, FoafError> {
        config.validate()?;
        Ok(Self {
            config,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            pending: BTreeMap::new(),
            expiries: BTreeSet::new(),
            own_queries: 0,
            buckets: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
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

    /// Outputs waiting to be drained (each queue at most `max_queued`).
    pub fn queued(&self) -> (usize, usize) {
        (self.transmits.len(), self.events.len())
    }

    /// Starts a query for `target` with hop budget `ttl` (`None`: `default_ttl`), sent to up to
    /// `fanout` random peers of `neighbours`. Answers arrive as [`Event::Found`]; after
    /// `query_timeout` an [`Event::QueryDone`] reports the outcome. The owner should look in its
    /// own knowledge first: the query does not.
    pub fn start_query<R: Rng + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        target: Target,
        ttl: Option<u8>,
        neighbours: &[PeerId],
    ) -> Result<QueryId, FoafError> {
        self.expire(now);
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

    /// A query arrived from `from`. In order: the hop budget is checked, the sender must be in
    /// `neighbours`, a remembered id is a duplicate, the sender's rate is checked; then the id is
    /// remembered, the query answered from `knowledge` (if it knows matching records) and, if
    /// hops remain and it is still worth it (a capability query, or a peer query this node could
    /// not answer), sent on to up to `fanout` random neighbours other than `from`.
    pub fn handle_query<R: Rng + ?Sized, K: Knowledge + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        from: PeerId,
        query: Query,
        knowledge: &K,
        neighbours: &[PeerId],
    ) -> QueryOutcome {
        self.expire(now);
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

    /// An answer arrived from `from`. It is accepted only for a pending query that was sent to
    /// `from`, within `max_answers_per_query`. Each record, in order, must match the query's
    /// target, be new for this query (else it is skipped unverified) and within
    /// `max_records_per_query`, and pass `verify` (the owner's full check, SPEC §4, which may
    /// consult its cache); the first record that fails ends the answer and bars `from` from
    /// answering this query again. New records go back to the neighbour the query came from,
    /// or, at the origin, are reported in [`Event::Found`].
    pub fn handle_answer(
        &mut self,
        now: Timestamp,
        from: PeerId,
        answer: Answer,
        mut verify: impl FnMut(&PeerRecord) -> bool,
    ) -> AnswerOutcome {
        self.expire(now);
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
    /// expired query ids and idle rate-limit buckets.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.expire(now);
        self.buckets
            .retain(|_, b| now.saturating_since(b.last_used) < BUCKET_REFILL);
    }

    /// The earliest instant at which [`Foaf::handle_timeout`] has work to do, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let pending = self.expiries.first().map(|(t, _)| *t);
        let seen = self.seen_order.front().map(|(t, _)| *t);
        match (pending, seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next message to send: `(neighbour, message)`.
    pub fn poll_transmit(&mut self) -> Option<(PeerId, DiscoveryMessage)> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
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
        if !self.buckets.contains_key(&from) && self.buckets.len() >= self.config.max_rate_buckets {
            self.buckets
                .retain(|_, b| now.saturating_since(b.last_used) < BUCKET_REFILL);
            if self.buckets.len() >= self.config.max_rate_buckets {
                let lru = self
                    .buckets
                    .iter()
                    .min_by_key(|(p, b)| (b.last_used, **p))
                    .map(|(p, _)| *p);
                if let Some(lru) = lru {
                    self.buckets.remove(&lru);
                }
            }
        }
        let rate = self.config.query_rate;
        let bucket = self.buckets.entry(from).or_insert_with(|| Bucket {
            tokens: TokenBucket::new(rate, now),
            last_used: now,
        });
        bucket.last_used = now;
        bucket.tokens.take(now)
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
    }

    /// Inserts a pending query; when the table is full, forgets the relayed query that expires
    /// first (own queries are bounded below the capacity, so there always is one).
    fn insert_pending(&mut self, id: QueryId, pending: Pending) {
        while self.pending.len() >= self.config.max_pending {
            let victim = self
                .expiries
                .iter()
                .find(|(_, q)| self.pending.get(q).is_some_and(|p| p.from.is_some()))
                .copied();
            let Some((t, q)) = victim else { break };
            self.expiries.remove(&(t, q));
            self.pending.remove(&q);
            self.counters.pending_evicted += 1;
        }
        self.expiries.insert((pending.expires_at, id));
        if let Some(old) = self.pending.insert(id, pending) {
            // Not reachable (ids are checked before), but keep the index exact regardless.
            self.expiries.remove(&(old.expires_at, id));
            if old.from.is_none() {
                self.own_queries = self.own_queries.saturating_sub(1);
            }
        }
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(t, id)) = self.expiries.first() {
            if t > now {
                break;
            }
            self.expiries.remove(&(t, id));
            let Some(p) = self.pending.remove(&id) else {
                continue;
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
        while let Some(&(t, id)) = self.seen_order.front() {
            if t > now {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&id);
        }
    }

    fn push_transmit(&mut self, to: PeerId, message: DiscoveryMessage) {
        if self.transmits.len() >= self.config.max_queued {
            self.counters.queue_dropped += 1;
            return;
        }
        self.transmits.push_back((to, message));
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.max_queued {
            self.counters.queue_dropped += 1;
            return;
        }
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PureRustProvider;
    use crate::identity::record::Addresses;
    use crate::identity::{Identity, IdentitySeeds};
    use alloc::vec;
    use chacha20::ChaCha8Rng;
    use rand_core::SeedableRng;
    use std::sync::OnceLock;

    const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// A peer id with no record behind it.
    fn pid(n: u64) -> PeerId {
        PeerId::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn qid(n: u64) -> QueryId {
        let mut b = [0u8; QUERY_ID_LEN];
        b[..8].copy_from_slice(&n.to_le_bytes());
        QueryId::from_bytes(b)
    }

    /// Real signed records (pure-Rust ML-DSA), made once for all tests.
    fn records() -> &'static [PeerRecord] {
        static RECORDS: OnceLock<Vec<PeerRecord>> = OnceLock::new();
        RECORDS.get_or_init(|| {
            (0..16u8)
                .map(|i| {
                    let mut r = ChaCha8Rng::from_seed([i; 32]);
                    let identity =
                        Identity::from_seeds(&PureRustProvider, IdentitySeeds::generate(&mut r));
                    PeerRecord::issue(
                        &identity,
                        Addresses::empty(),
                        T0,
                        TimeDelta::from_secs(3600),
                    )
                    .unwrap()
                })
                .collect()
        })
    }

    fn verify_at(now: Timestamp) -> impl FnMut(&PeerRecord) -> bool {
        move |r| r.verify(&PureRustProvider, now).is_ok()
    }

    fn peer_query(id: QueryId, peer: PeerId, ttl: u8) -> Query {
        Query {
            id,
            target: Target::Peer(peer),
            ttl,
        }
    }

    fn drain(f: &mut Foaf) -> Vec<(PeerId, DiscoveryMessage)> {
        core::iter::from_fn(|| f.poll_transmit()).collect()
    }

    // ------------------------------------------------------------------ test network

    /// Foaf instances wired by a graph; the harness delivers every transmit (through the codec)
    /// in FIFO order and logs it.
    struct Net {
        now: Timestamp,
        ids: Vec<PeerId>,
        index: BTreeMap<PeerId, usize>,
        nodes: Vec<Foaf>,
        rngs: Vec<ChaCha8Rng>,
        adj: Vec<Vec<PeerId>>,
        know: Vec<Vec<PeerRecord>>,
        queue: VecDeque<(PeerId, PeerId, Vec<u8>)>,
        log: Vec<(PeerId, PeerId, DiscoveryMessage)>,
        events: Vec<(usize, Event)>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Knows {
        /// Only its own record (if it has one).
        Itself,
        /// Its own record and its neighbours' (what a Node holds after handshakes).
        Neighbours,
        /// Nothing.
        Nothing,
    }

    impl Net {
        fn new(
            ids: Vec<PeerId>,
            own: Vec<Option<PeerRecord>>,
            edges: &[(usize, usize)],
            knows: Knows,
            config: Config,
            seed: u64,
        ) -> Net {
            let n = ids.len();
            let mut adj = vec![Vec::new(); n];
            for &(a, b) in edges {
                if a != b && !adj[a].contains(&ids[b]) {
                    adj[a].push(ids[b]);
                    adj[b].push(ids[a]);
                }
            }
            let index = ids.iter().enumerate().map(|(i, p)| (*p, i)).collect();
            let mut know = vec![Vec::new(); n];
            if knows != Knows::Nothing {
                for i in 0..n {
                    know[i].extend(own[i].clone());
                }
            }
            if knows == Knows::Neighbours {
                for &(a, b) in edges {
                    know[a].extend(own[b].clone());
                    know[b].extend(own[a].clone());
                }
            }
            Net {
                now: T0,
                nodes: (0..n).map(|_| Foaf::new(config.clone()).unwrap()).collect(),
                rngs: (0..n).map(|i| rng(seed ^ (i as u64) << 16)).collect(),
                ids,
                index,
                adj,
                know,
                queue: VecDeque::new(),
                log: Vec::new(),
                events: Vec::new(),
            }
        }

        /// A network of the first `n` record holders.
        fn with_records(n: usize, edges: &[(usize, usize)], knows: Knows, seed: u64) -> Net {
            let recs = &records()[..n];
            Net::new(
                recs.iter().map(|r| r.peer_id).collect(),
                recs.iter().cloned().map(Some).collect(),
                edges,
                knows,
                Config::default(),
                seed,
            )
        }

        fn drain(&mut self, i: usize) {
            while let Some((to, m)) = self.nodes[i].poll_transmit() {
                self.queue.push_back((self.ids[i], to, m.encode().unwrap()));
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events.push((i, e));
            }
        }

        fn run(&mut self) {
            while let Some((from, to, bytes)) = self.queue.pop_front() {
                let msg = DiscoveryMessage::decode(&bytes).unwrap();
                self.log.push((from, to, msg.clone()));
                let i = self.index[&to];
                let now = self.now;
                match msg {
                    DiscoveryMessage::Query(q) => {
                        self.nodes[i].handle_query(
                            now,
                            &mut self.rngs[i],
                            from,
                            q,
                            self.know[i].as_slice(),
                            &self.adj[i],
                        );
                    }
                    DiscoveryMessage::Answer(a) => {
                        self.nodes[i].handle_answer(now, from, a, verify_at(now));
                    }
                }
                self.drain(i);
            }
        }

        fn start(&mut self, origin: usize, target: Target, ttl: Option<u8>) -> QueryId {
            let id = self.nodes[origin]
                .start_query(
                    self.now,
                    &mut self.rngs[origin],
                    target,
                    ttl,
                    &self.adj[origin],
                )
                .unwrap();
            self.drain(origin);
            self.run();
            id
        }

        /// Lets every query time out.
        fn finish(&mut self) {
            self.now += TimeDelta::from_secs(60);
            for i in 0..self.nodes.len() {
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
            }
        }

        fn found(&self, origin: usize, query: QueryId) -> Vec<PeerId> {
            let mut out = Vec::new();
            for (i, e) in &self.events {
                if let Event::Found {
                    query: q, records, ..
                } = e
                    && *i == origin
                    && *q == query
                {
                    out.extend(records.iter().map(|r| r.peer_id));
                }
            }
            out
        }

        fn queries(&self, id: QueryId) -> Vec<(usize, usize, u8)> {
            self.log
                .iter()
                .filter_map(|(f, t, m)| match m {
                    DiscoveryMessage::Query(q) if q.id == id => {
                        Some((self.index[f], self.index[t], q.ttl))
                    }
                    _ => None,
                })
                .collect()
        }

        fn answers(&self, id: QueryId) -> Vec<(usize, usize)> {
            self.log
                .iter()
                .filter_map(|(f, t, m)| match m {
                    DiscoveryMessage::Answer(a) if a.id == id => {
                        Some((self.index[f], self.index[t]))
                    }
                    _ => None,
                })
                .collect()
        }

        /// Every answer X → Y follows a query Y → X with the same id, sent earlier.
        fn assert_reverse_path_only(&self) {
            for (n, (from, to, m)) in self.log.iter().enumerate() {
                if let DiscoveryMessage::Answer(a) = m {
                    let asked = self.log[..n].iter().any(|(f, t, m)| {
                        f == to
                            && t == from
                            && matches!(m, DiscoveryMessage::Query(q) if q.id == a.id)
                    });
                    assert!(
                        asked,
                        "answer {from:?} -> {to:?} without a query {to:?} -> {from:?}"
                    );
                }
            }
        }
    }

    fn line(n: usize) -> Vec<(usize, usize)> {
        (1..n).map(|i| (i - 1, i)).collect()
    }

    /// A random graph where every node links to `degree` random others (links are symmetric).
    fn random_graph(n: usize, degree: usize, seed: u64) -> Vec<(usize, usize)> {
        let mut r = rng(seed);
        let mut edges = Vec::new();
        for a in 0..n {
            for _ in 0..degree {
                let b = (r.next_u64() % n as u64) as usize;
                if a != b {
                    edges.push((a, b));
                }
            }
        }
        edges
    }

    fn dense_net(n: usize, seed: u64) -> Net {
        let ids: Vec<PeerId> = (0..n as u64).map(pid).collect();
        Net::new(
            ids,
            vec![None; n],
            &random_graph(n, 6, seed),
            Knows::Nothing,
            Config::default(),
            seed,
        )
    }

    // ------------------------------------------------------------------ wire

    #[test]
    fn messages_round_trip_with_the_specified_layout() {
        let id = QueryId::from_bytes([7; 16]);
        let peer = PeerId::from_bytes([9; 32]);
        let q = DiscoveryMessage::Query(peer_query(id, peer, 3));
        let bytes = q.encode().unwrap();
        // [0, [[id, [0, [peer]], 3]]]
        let mut expected = vec![0x82, 0x00, 0x81, 0x83, 0x50];
        expected.extend_from_slice(&[7; 16]);
        expected.extend_from_slice(&[0x82, 0x00, 0x81, 0x58, 0x20]);
        expected.extend_from_slice(&[9; 32]);
        expected.push(0x03);
        assert_eq!(bytes, expected);
        assert_eq!(DiscoveryMessage::decode(&bytes).unwrap(), q);

        let cap = DiscoveryMessage::Query(Query {
            id,
            target: Target::Capability(Capability::new(&b"relay"[..]).unwrap()),
            ttl: 4,
        });
        let bytes = cap.encode().unwrap();
        // [0, [[id, [1, ["relay"]], 4]]]
        assert_eq!(
            &bytes[21..],
            &[0x82, 0x01, 0x81, 0x45, b'r', b'e', b'l', b'a', b'y', 4]
        );
        assert_eq!(DiscoveryMessage::decode(&bytes).unwrap(), cap);

        let a = DiscoveryMessage::Answer(Answer {
            id,
            records: BoundedVec::new(records()[..2].to_vec()).unwrap(),
        });
        let bytes = a.encode().unwrap();
        // [1, [[id, [record, record]]]]
        assert_eq!(&bytes[..5], &[0x82, 0x01, 0x81, 0x82, 0x50]);
        assert_eq!(bytes[21], 0x82);
        assert_eq!(DiscoveryMessage::decode(&bytes).unwrap(), a);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let id = QueryId::from_bytes([1; 16]);
        // Oversize: refused before parsing.
        assert_eq!(
            DiscoveryMessage::decode(&vec![0u8; MAX_FRAME_LEN + 1]),
            Err(DecodeError::FrameTooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
        // Garbage and an unknown variant.
        assert!(matches!(
            DiscoveryMessage::decode(&[0xff, 0x00, 0x13]),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            DiscoveryMessage::decode(&[0x82, 0x07, 0x80]),
            Err(DecodeError::Malformed { .. })
        ));
        // An answer declaring 33 records: refused on the array header.
        let mut too_many = vec![0x82, 0x01, 0x81, 0x82, 0x50];
        too_many.extend_from_slice(&[1; 16]);
        too_many.extend_from_slice(&[0x98, 33]);
        assert_eq!(
            DiscoveryMessage::decode(&too_many),
            Err(DecodeError::ListTooLong {
                max: MAX_ANSWER_RECORDS
            })
        );
        // A 15-byte query id.
        let mut short_id = vec![0x82, 0x00, 0x81, 0x83, 0x4f];
        short_id.extend_from_slice(&[1; 15]);
        assert_eq!(
            DiscoveryMessage::decode(&short_id),
            Err(DecodeError::WrongLength {
                expected: 16,
                got: 15
            })
        );
        // A 33-byte capability.
        let mut long_cap = vec![0x82, 0x00, 0x81, 0x83, 0x50];
        long_cap.extend_from_slice(&[1; 16]);
        long_cap.extend_from_slice(&[0x82, 0x01, 0x81, 0x58, 33]);
        long_cap.extend_from_slice(&[0; 33]);
        long_cap.push(3);
        assert_eq!(
            DiscoveryMessage::decode(&long_cap),
            Err(DecodeError::BytesTooLong {
                max: MAX_CAPABILITY_LEN
            })
        );
        // A ttl that does not fit a byte.
        let mut big_ttl = DiscoveryMessage::Query(peer_query(id, pid(1), 1))
            .encode()
            .unwrap();
        big_ttl.pop();
        big_ttl.extend_from_slice(&[0x19, 0x01, 0x00]);
        assert!(matches!(
            DiscoveryMessage::decode(&big_ttl),
            Err(DecodeError::Malformed { .. })
        ));
        // Trailing bytes.
        let mut trailing = DiscoveryMessage::Query(peer_query(id, pid(1), 1))
            .encode()
            .unwrap();
        trailing.push(0);
        assert_eq!(
            DiscoveryMessage::decode(&trailing),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        // More records than the wire allows cannot even be built.
        assert!(
            BoundedVec::<PeerRecord, MAX_ANSWER_RECORDS>::new(vec![
                records()[0].clone();
                MAX_ANSWER_RECORDS + 1
            ])
            .is_err()
        );
    }

    #[test]
    fn truncated_and_corrupted_messages_never_panic() {
        let answer = DiscoveryMessage::Answer(Answer {
            id: qid(5),
            records: BoundedVec::new(records()[..1].to_vec()).unwrap(),
        })
        .encode()
        .unwrap();
        for cut in 0..answer.len() {
            assert!(
                DiscoveryMessage::decode(&answer[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let query = DiscoveryMessage::Query(peer_query(qid(5), pid(5), 3))
            .encode()
            .unwrap();
        let mut r = rng(77);
        for _ in 0..20_000 {
            let mut m = if r.next_u32().is_multiple_of(2) {
                query.clone()
            } else {
                answer[..64].to_vec()
            };
            let at = (r.next_u64() % m.len() as u64) as usize;
            m[at] = r.next_u32() as u8;
            let _ = DiscoveryMessage::decode(&m);
        }
        for len in 0..64 {
            let mut m = vec![0u8; len];
            r.fill_bytes(&mut m);
            let _ = DiscoveryMessage::decode(&m);
        }
    }

    #[test]
    fn an_answer_of_the_largest_records_fits_a_frame() {
        use crate::crypto::{EncapsulationKeyBytes, SignatureBytes, VerifyingKeyBytes};
        let address = crate::identity::record::Address::new(vec![
                0xaa;
                crate::identity::record::MAX_ADDRESS_LEN
            ]);
        let largest = PeerRecord {
            peer_id: pid(1),
            verifying_key: VerifyingKeyBytes::from_array([1; crate::crypto::SIG_VERIFYING_KEY_LEN]),
            encapsulation_key: EncapsulationKeyBytes::from_array(
                [2; crate::crypto::KEM_ENCAPSULATION_KEY_LEN],
            ),
            addresses: Addresses::new(vec![
                address.unwrap();
                crate::identity::record::MAX_ADDRESSES
            ])
            .unwrap(),
            issued_at: Timestamp::MAX,
            expires_at: Timestamp::MAX,
            signature: SignatureBytes::from_array([3; crate::crypto::SIGNATURE_LEN]),
        };
        assert_eq!(largest.to_bytes().unwrap().len(), 7_548);
        let answer = DiscoveryMessage::Answer(Answer {
            id: qid(1),
            records: BoundedVec::new(vec![largest; MAX_ANSWER_RECORDS]).unwrap(),
        });
        let len = answer.encode().unwrap().len();
        // The frame adds `[5, body]`: 2 bytes.
        assert!(len + 2 <= MAX_FRAME_LEN, "{len}");
        assert_eq!(
            DiscoveryMessage::decode(&answer.encode().unwrap()).unwrap(),
            answer
        );
    }

    // ------------------------------------------------------------------ finding peers

    #[test]
    fn finds_peers_two_and_three_hops_away_along_the_reverse_path() {
        // 0 - 1 - 2 - 3 - 4 - 5, each node knowing only itself.
        let mut net = Net::with_records(6, &line(6), Knows::Itself, 1);
        for hops in [2usize, 3] {
            let target = net.ids[hops];
            let q = net.start(0, Target::Peer(target), None);
            assert_eq!(net.found(0, q), vec![target], "{hops} hops");
            // The answer came back hop by hop: hops → hops−1 → … → 0.
            let expected: Vec<(usize, usize)> = (1..=hops).rev().map(|i| (i, i - 1)).collect();
            assert_eq!(net.answers(q), expected);
            // The hop budget shrank by one per hop and the target did not pass the query on.
            let ttls: Vec<(usize, usize, u8)> =
                (0..hops).map(|i| (i, i + 1, 3 - i as u8)).collect();
            assert_eq!(net.queries(q), ttls);
        }
        net.assert_reverse_path_only();
        net.finish();
        let done: Vec<usize> = net
            .events
            .iter()
            .filter_map(|(i, e)| match e {
                Event::QueryDone { found, sent, .. } if *i == 0 => {
                    assert_eq!(*sent, 1);
                    Some(*found)
                }
                _ => None,
            })
            .collect();
        assert_eq!(done, vec![1, 1]);
        assert_eq!(net.nodes[0].counters().queries_succeeded, 2);
    }

    #[test]
    fn nothing_is_found_or_asked_beyond_the_ttl() {
        let mut net = Net::with_records(6, &line(6), Knows::Itself, 2);
        let far = net.ids[4];
        let q = net.start(0, Target::Peer(far), Some(3));
        assert!(net.found(0, q).is_empty());
        assert!(net.answers(q).is_empty());
        // Hops 1..3 got the query, node 4 never did.
        assert_eq!(
            net.queries(q)
                .iter()
                .map(|(_, t, _)| *t)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        net.finish();
        assert!(net.events.iter().any(|(i, e)| *i == 0
            && matches!(e, Event::QueryDone { query, found: 0, .. } if *query == q)));
        assert_eq!(net.nodes[0].counters().queries_succeeded, 0);

        // With the maximum budget the same peer is found.
        let q4 = net.start(0, Target::Peer(far), Some(4));
        assert_eq!(net.found(0, q4), vec![far]);
        assert!(!net.queries(q4).iter().any(|(_, t, _)| *t == 5));
        net.assert_reverse_path_only();
    }

    #[test]
    fn relays_answer_from_what_they_know() {
        // Each node knows its neighbours' records (as a Node does after handshakes): node 3
        // answers for node 4, which lies beyond the budget and is never asked.
        let mut net = Net::with_records(6, &line(6), Knows::Neighbours, 3);
        let target = net.ids[4];
        let q = net.start(0, Target::Peer(target), Some(3));
        assert_eq!(net.found(0, q), vec![target]);
        assert_eq!(net.answers(q), vec![(3, 2), (2, 1), (1, 0)]);
        assert!(!net.queries(q).iter().any(|(_, t, _)| *t == 4));
        assert_eq!(net.nodes[3].counters().answers_sent, 1);
        // Node 2 knew node 3, not node 4: it relayed, it did not answer itself.
        assert_eq!(net.nodes[2].counters().answers_sent, 0);
        assert_eq!(net.nodes[2].counters().answers_relayed, 1);
        // Node 1 knows node 2: a query for it stops at node 1, which does not pass it on.
        let q2 = net.start(0, Target::Peer(net.ids[2]), None);
        assert_eq!(net.queries(q2), vec![(0, 1, 3)]);
        assert_eq!(net.answers(q2), vec![(1, 0)]);
        net.assert_reverse_path_only();
    }

    #[test]
    fn in_a_tree_answers_travel_only_the_reverse_path() {
        // A binary tree of depth 3: node i's parent is (i − 1) / 2; node 14 is a leaf.
        let edges: Vec<(usize, usize)> = (1..15).map(|i| ((i - 1) / 2, i)).collect();
        let mut net = Net::with_records(15, &edges, Knows::Itself, 4);
        let q = net.start(0, Target::Peer(net.ids[14]), None);
        assert_eq!(net.found(0, q), vec![net.ids[14]]);
        assert_eq!(net.answers(q), vec![(14, 6), (6, 2), (2, 0)]);
        // The query reached every node of depth ≤ 3 exactly once.
        let mut reached: Vec<usize> = net.queries(q).iter().map(|(_, t, _)| *t).collect();
        reached.sort();
        assert_eq!(reached, (1..15).collect::<Vec<_>>());
        net.assert_reverse_path_only();
        // A capability query: nobody has capability knowledge, so nothing is found, but every
        // node asked forwards it (capability queries are not stopped by an answer).
        let cap = Target::Capability(Capability::new(&b"storage"[..]).unwrap());
        let qc = net.start(0, cap, None);
        assert_eq!(net.queries(qc).len(), 14);
        assert!(net.answers(qc).is_empty());
    }

    #[test]
    fn the_origin_reports_each_peer_once() {
        // 0 links to 1 and 2, both of which link to 3 and know its record.
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3)];
        let mut net = Net::with_records(4, &edges, Knows::Neighbours, 5);
        let q = net.start(0, Target::Peer(net.ids[3]), None);
        assert_eq!(net.answers(q).len(), 2);
        assert_eq!(net.found(0, q), vec![net.ids[3]]);
        assert_eq!(net.nodes[0].counters().records_duplicate, 1);
        assert_eq!(net.nodes[0].counters().records_found, 1);
    }

    #[test]
    fn capability_answers_come_from_the_knowledge_callback() {
        let recs = records();
        let tag = Capability::new(&b"relay"[..]).unwrap();
        let wanted = tag.clone();
        let knowledge = move |t: &Target, max: usize| -> Vec<PeerRecord> {
            match t {
                Target::Capability(c) if *c == wanted => {
                    recs[3..6].iter().take(max).cloned().collect()
                }
                _ => Vec::new(),
            }
        };
        let mut f = Foaf::new(Config::default()).unwrap();
        let (a, b) = (pid(1), pid(2));
        let out = f.handle_query(
            T0,
            &mut rng(1),
            a,
            Query {
                id: qid(1),
                target: Target::Capability(tag),
                ttl: 2,
            },
            &knowledge,
            &[a, b],
        );
        assert_eq!(
            out,
            QueryOutcome::Served {
                answered: 3,
                forwarded: 1
            }
        );
        let sent = drain(&mut f);
        assert!(
            matches!(&sent[0], (to, DiscoveryMessage::Answer(ans)) if *to == a && ans.records.len() == 3)
        );
        assert!(matches!(&sent[1], (to, DiscoveryMessage::Query(q)) if *to == b && q.ttl == 1));
    }

    // ------------------------------------------------------------------ bounds

    #[test]
    fn a_query_id_is_served_once() {
        let mut f = Foaf::new(Config::default()).unwrap();
        let me = &records()[0];
        let neighbours = [pid(1), pid(2), pid(3), pid(4), pid(5)];
        let q = peer_query(qid(1), pid(99), 3);
        let first = f.handle_query(
            T0,
            &mut rng(1),
            pid(1),
            q.clone(),
            &[me.clone()][..],
            &neighbours,
        );
        assert_eq!(
            first,
            QueryOutcome::Served {
                answered: 0,
                forwarded: 3
            }
        );
        let sent = drain(&mut f);
        assert_eq!(sent.len(), 3);
        assert!(
            sent.iter()
                .all(|(to, m)| *to != pid(1)
                    && matches!(m, DiscoveryMessage::Query(q) if q.ttl == 2))
        );
        let again = f.handle_query(
            T0,
            &mut rng(1),
            pid(2),
            q.clone(),
            &[me.clone()][..],
            &neighbours,
        );
        assert_eq!(again, QueryOutcome::Duplicate);
        assert!(drain(&mut f).is_empty());
        assert_eq!(f.counters().duplicates, 1);
        assert_eq!(f.counters().queries_sent, 3);

        // Also for a query this node answers: one answer, whoever asks again.
        let mine = peer_query(qid(2), me.peer_id, 2);
        f.handle_query(
            T0,
            &mut rng(1),
            pid(1),
            mine.clone(),
            &[me.clone()][..],
            &neighbours,
        );
        f.handle_query(
            T0,
            &mut rng(1),
            pid(2),
            mine,
            &[me.clone()][..],
            &neighbours,
        );
        let sent = drain(&mut f);
        assert_eq!(sent.len(), 1);
        assert!(matches!(&sent[0], (to, DiscoveryMessage::Answer(_)) if *to == pid(1)));
        assert_eq!(f.counters().answers_sent, 1);
    }

    fn check_forward_bound(ttl: u8, seed: u64) {
        let bound: usize = (1..=u32::from(ttl)).map(|k| 3usize.pow(k)).sum();
        let mut net = dense_net(60, seed);
        let mut deepest = 0;
        for origin in 0..20 {
            let q = net.start(origin, Target::Peer(pid(1_000_000)), Some(ttl));
            let sends = net.queries(q);
            assert!(sends.len() <= bound, "ttl {ttl}: {} > {bound}", sends.len());
            // No node sent the query more than fanout times (it forwarded once at most).
            for node in 0..60 {
                assert!(sends.iter().filter(|(f, _, _)| *f == node).count() <= 3);
            }
            // Budgets only shrink: a copy at hop h carries ttl − h + 1.
            assert!(sends.iter().all(|(_, _, t)| *t >= 1 && *t <= ttl));
            deepest = deepest.max(sends.iter().filter(|(_, _, t)| *t == 1).count());
        }
        // Forwarding did reach the last hop, and dedup was exercised on this dense graph.
        assert!(deepest > 3, "{deepest}");
        let dups: u64 = net.nodes.iter().map(|n| n.counters().duplicates).sum();
        assert!(dups > 0);
        let sent: u64 = net.nodes.iter().map(|n| n.counters().queries_sent).sum();
        assert_eq!(sent as usize, net.log.len());
    }

    #[test]
    fn forwards_per_query_are_bounded_at_ttl_3() {
        check_forward_bound(3, 11);
    }

    #[test]
    fn forwards_per_query_are_bounded_at_ttl_4() {
        check_forward_bound(4, 12);
    }

    #[test]
    fn a_ttl_above_the_maximum_is_refused_and_counted() {
        let mut f = Foaf::new(Config::default()).unwrap();
        let n = [pid(1), pid(2), pid(3)];
        let none: &[PeerRecord] = &[];
        let q = peer_query(qid(1), pid(9), MAX_TTL + 1);
        assert_eq!(
            f.handle_query(T0, &mut rng(1), pid(1), q, none, &n),
            QueryOutcome::TtlTooHigh
        );
        let zero = peer_query(qid(1), pid(9), 0);
        assert_eq!(
            f.handle_query(T0, &mut rng(1), pid(1), zero, none, &n),
            QueryOutcome::TtlZero
        );
        assert!(drain(&mut f).is_empty());
        assert_eq!((f.counters().ttl_too_high, f.counters().ttl_zero), (1, 1));
        // The refused copies did not mark the id as seen.
        let ok = peer_query(qid(1), pid(9), MAX_TTL);
        assert!(matches!(
            f.handle_query(T0, &mut rng(1), pid(1), ok, none, &n),
            QueryOutcome::Served { forwarded: 2, .. }
        ));
        // A lower configured maximum is enforced too, for queries and for the origin.
        let mut low = Foaf::new(Config {
            max_ttl: 3,
            ..Config::default()
        })
        .unwrap();
        assert_eq!(
            low.handle_query(
                T0,
                &mut rng(1),
                pid(1),
                peer_query(qid(2), pid(9), 4),
                none,
                &n
            ),
            QueryOutcome::TtlTooHigh
        );
        assert_eq!(
            low.start_query(T0, &mut rng(1), Target::Peer(pid(9)), Some(4), &n),
            Err(FoafError::BadTtl { ttl: 4, max: 3 })
        );
        assert_eq!(
            low.start_query(T0, &mut rng(1), Target::Peer(pid(9)), Some(0), &n),
            Err(FoafError::BadTtl { ttl: 0, max: 3 })
        );
    }

    #[test]
    fn queries_from_non_neighbours_are_refused() {
        let mut f = Foaf::new(Config::default()).unwrap();
        let none: &[PeerRecord] = &[];
        let out = f.handle_query(
            T0,
            &mut rng(1),
            pid(7),
            peer_query(qid(1), pid(9), 2),
            none,
            &[pid(1)],
        );
        assert_eq!(out, QueryOutcome::NotNeighbour);
        assert_eq!(f.counters().not_neighbour, 1);
        assert!(drain(&mut f).is_empty());
    }

    #[test]
    fn a_flooding_neighbour_is_rate_limited_while_others_are_served() {
        let mut f = Foaf::new(Config::default()).unwrap();
        let (a, b) = (pid(1), pid(2));
        let n = [a, b, pid(3), pid(4)];
        let none: &[PeerRecord] = &[];
        let mut r = rng(1);
        let mut served = 0;
        for i in 0..50 {
            match f.handle_query(T0, &mut r, a, peer_query(qid(i), pid(9), 2), none, &n) {
                QueryOutcome::Served { .. } => served += 1,
                QueryOutcome::RateLimited => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(served, 10);
        assert_eq!(f.counters().rate_limited, 40);
        drain(&mut f);
        // Another neighbour is still served at the same instant.
        assert!(matches!(
            f.handle_query(T0, &mut r, b, peer_query(qid(100), pid(9), 2), none, &n),
            QueryOutcome::Served { forwarded: 3, .. }
        ));
        // A rate-limited id was not remembered: it is served when it comes again later.
        let later = T0 + TimeDelta::from_secs(1);
        assert!(matches!(
            f.handle_query(later, &mut r, a, peer_query(qid(49), pid(9), 2), none, &n),
            QueryOutcome::Served { .. }
        ));
    }

    #[test]
    fn unsolicited_answers_are_dropped_and_counted() {
        let mut f = Foaf::new(Config::default()).unwrap();
        let n = [pid(1), pid(2), pid(3), pid(4), pid(5)];
        let target = &records()[1];
        let q = f
            .start_query(T0, &mut rng(3), Target::Peer(target.peer_id), None, &n)
            .unwrap();
        let sent_to: Vec<PeerId> = drain(&mut f).into_iter().map(|(p, _)| p).collect();
        assert_eq!(sent_to.len(), 3);
        let outsider = *n.iter().find(|p| !sent_to.contains(p)).unwrap();
        let answer = |id| Answer {
            id,
            records: BoundedVec::new(vec![target.clone()]).unwrap(),
        };
        // An id never sent.
        assert_eq!(
            f.handle_answer(T0, sent_to[0], answer(qid(42)), verify_at(T0)),
            AnswerOutcome::UnknownQuery
        );
        // A neighbour the query was not sent to.
        assert_eq!(
            f.handle_answer(T0, outsider, answer(q), verify_at(T0)),
            AnswerOutcome::WrongPeer
        );
        assert!(f.poll_event().is_none());
        // The real answer is accepted...
        assert_eq!(
            f.handle_answer(T0, sent_to[0], answer(q), verify_at(T0)),
            AnswerOutcome::Accepted {
                new_records: 1,
                rejected: false
            }
        );
        assert!(matches!(f.poll_event(), Some(Event::Found { via, .. }) if via == sent_to[0]));
        // ...and once the query timed out, a late one is unknown.
        let late = T0 + f.config().query_timeout;
        assert_eq!(f.poll_timeout(), Some(late));
        assert_eq!(
            f.handle_answer(late, sent_to[1], answer(q), verify_at(late)),
            AnswerOutcome::UnknownQuery
        );
        assert!(matches!(
            f.poll_event(),
            Some(Event::QueryDone {
                found: 1,
                sent: 3,
                ..
            })
        ));
        let c = f.counters();
        assert_eq!((c.answers_unknown_query, c.answers_wrong_peer), (2, 1));
        assert!(
            drain(&mut f).is_empty(),
            "nothing is sent in reply to an answer at the origin"
        );
    }

    #[test]
    fn bad_records_are_dropped_and_counted() {
        let recs = records();
        let mut f = Foaf::new(Config::default()).unwrap();
        let (a, b, c, d) = (pid(1), pid(2), pid(3), pid(4));
        // A relay: the query came from `a` and went to b, c, d.
        let target = recs[2].clone();
        let none: &[PeerRecord] = &[];
        f.handle_query(
            T0,
            &mut rng(1),
            a,
            peer_query(qid(1), target.peer_id, 3),
            none,
            &[a, b, c, d],
        );
        assert_eq!(drain(&mut f).len(), 3);
        let answer = |records: Vec<PeerRecord>| Answer {
            id: qid(1),
            records: BoundedVec::new(records).unwrap(),
        };
        // A forged record (changed after signing) fails verification; the rest of the answer
        // is discarded and `b` may not answer this query again.
        let mut forged = target.clone();
        forged.issued_at += TimeDelta::from_micros(1);
        assert_eq!(
            f.handle_answer(T0, b, answer(vec![forged, target.clone()]), verify_at(T0)),
            AnswerOutcome::Accepted {
                new_records: 0,
                rejected: true
            }
        );
        assert_eq!(
            f.handle_answer(T0, b, answer(vec![target.clone()]), verify_at(T0)),
            AnswerOutcome::WrongPeer
        );
        // A valid record of another peer does not answer a peer query.
        assert_eq!(
            f.handle_answer(T0, c, answer(vec![recs[3].clone()]), verify_at(T0)),
            AnswerOutcome::Accepted {
                new_records: 0,
                rejected: true
            }
        );
        // An expired record fails verification too.
        let expired = T0 + TimeDelta::from_secs(3600);
        assert!(!verify_at(expired)(&target));
        assert!(drain(&mut f).is_empty(), "nothing bad was relayed");
        // The real record is relayed back to `a` only, once.
        assert_eq!(
            f.handle_answer(
                T0,
                d,
                answer(vec![target.clone(), target.clone()]),
                verify_at(T0)
            ),
            AnswerOutcome::Accepted {
                new_records: 1,
                rejected: false
            }
        );
        let sent = drain(&mut f);
        assert_eq!(sent.len(), 1);
        assert!(
            matches!(&sent[0], (to, DiscoveryMessage::Answer(ans)) if *to == a && ans.records.len() == 1)
        );
        let k = f.counters();
        assert_eq!(
            (
                k.records_invalid,
                k.records_mismatched,
                k.records_duplicate,
                k.answers_relayed
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn answers_and_records_per_query_are_capped() {
        let recs = records();
        let mut f = Foaf::new(Config {
            max_answers_per_query: 3,
            max_records_per_query: 4,
            ..Config::default()
        })
        .unwrap();
        let (a, b) = (pid(1), pid(2));
        let cap = Target::Capability(Capability::new(&b"x"[..]).unwrap());
        let q = f.start_query(T0, &mut rng(1), cap, Some(2), &[a]).unwrap();
        drain(&mut f);
        let answer = |r: &[PeerRecord]| Answer {
            id: q,
            records: BoundedVec::new(r.to_vec()).unwrap(),
        };
        let mut verified = 0;
        let mut count = |r: &PeerRecord| {
            verified += 1;
            r.verify(&PureRustProvider, T0).is_ok()
        };
        assert_eq!(
            f.handle_answer(T0, a, answer(&recs[0..6]), &mut count),
            AnswerOutcome::Accepted {
                new_records: 4,
                rejected: false
            }
        );
        f.handle_answer(T0, a, answer(&recs[6..8]), &mut count);
        f.handle_answer(T0, a, answer(&recs[8..9]), &mut count);
        assert_eq!(
            f.handle_answer(T0, a, answer(&recs[9..10]), &mut count),
            AnswerOutcome::TooManyAnswers
        );
        // Records over the per-query limit were dropped before any verification.
        assert_eq!(verified, 4);
        assert_eq!(f.counters().records_over_limit, 5);
        assert_eq!(f.counters().answers_over_limit, 1);
        let _ = b;
    }

    #[test]
    fn tables_stay_bounded_under_a_flood_of_distinct_ids() {
        let config = Config {
            dedup_capacity: 64,
            max_pending: 16,
            max_own_queries: 4,
            max_rate_buckets: 32,
            max_queued: 100,
            query_rate: 1_000,
            ..Config::default()
        };
        let mut f = Foaf::new(config).unwrap();
        let neighbours: Vec<PeerId> = (0..300).map(pid).collect();
        let none: &[PeerRecord] = &[];
        let mut r = rng(9);
        let mut now = T0;
        for i in 0..5_000u64 {
            now += TimeDelta::from_micros(100);
            let from = neighbours[(i % 300) as usize];
            f.handle_query(
                now,
                &mut r,
                from,
                peer_query(qid(i), pid(9), 3),
                none,
                &neighbours,
            );
            if i % 7 == 0 {
                let _ = f.start_query(now, &mut r, Target::Peer(pid(9)), None, &neighbours);
            }
            assert!(f.remembered_ids() <= 64);
            assert!(f.pending_queries() <= 16);
            assert!(f.own_queries() <= 4);
            assert!(f.rate_buckets() <= 32);
            let (tx, ev) = f.queued();
            assert!(tx <= 100 && ev <= 100);
            if i % 1_000 == 999 {
                drain(&mut f);
                while f.poll_event().is_some() {}
            }
        }
        let c = f.counters();
        assert!(c.dedup_evicted > 0 && c.pending_evicted > 0 && c.queue_dropped > 0);
        assert_eq!(
            f.start_query(now, &mut r, Target::Peer(pid(9)), None, &neighbours),
            Err(FoafError::TooManyQueries { max: 4 })
        );
        // Everything drains away with time.
        let end = now + TimeDelta::from_secs(60);
        assert!(f.poll_timeout().is_some_and(|t| t <= end));
        f.handle_timeout(end);
        assert_eq!(
            (
                f.remembered_ids(),
                f.pending_queries(),
                f.own_queries(),
                f.rate_buckets()
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_choices() {
        // Returns the whole log and, separately, only who sent to whom (ids aside).
        let run = |seed: u64| {
            let mut net = dense_net(40, 21);
            net.rngs = (0..40).map(|i| rng(seed + i)).collect();
            for origin in 0..5 {
                net.start(origin, Target::Peer(pid(555)), Some(4));
            }
            let routes: Vec<(PeerId, PeerId)> = net.log.iter().map(|(f, t, _)| (*f, *t)).collect();
            (net.log, routes)
        };
        let (log, routes) = run(1);
        assert_eq!((log.clone(), routes.clone()), run(1));
        assert_ne!(
            routes,
            run(2).1,
            "the choice of neighbours depends on the RNG"
        );
        // Every neighbour gets picked: the choice is random, not the first `fanout`.
        let n: Vec<PeerId> = (0..10).map(pid).collect();
        let mut f = Foaf::new(Config::default()).unwrap();
        let mut picked = BTreeMap::<PeerId, usize>::new();
        let mut r = rng(8);
        for i in 0..300 {
            let now = T0 + TimeDelta::from_secs(i);
            f.handle_query(
                now,
                &mut r,
                n[0],
                peer_query(qid(i), pid(99), 2),
                &[][..],
                &n,
            );
            for (to, _) in drain(&mut f) {
                *picked.entry(to).or_default() += 1;
            }
        }
        assert_eq!(picked.len(), 9);
        assert!(
            picked.values().all(|c| (60..=140).contains(c)),
            "{picked:?}"
        );
        // The caller's neighbour order does not matter either.
        let n: Vec<PeerId> = (0..10).map(pid).collect();
        let mut rev = n.clone();
        rev.reverse();
        let pick = |list: &[PeerId]| {
            let mut f = Foaf::new(Config::default()).unwrap();
            f.start_query(T0, &mut rng(5), Target::Peer(pid(99)), None, list)
                .unwrap();
            drain(&mut f)
        };
        assert_eq!(pick(&n), pick(&rev));
    }

    #[test]
    fn start_query_needs_neighbours_and_a_valid_config() {
        let mut f = Foaf::new(Config::default()).unwrap();
        assert_eq!(
            f.start_query(T0, &mut rng(1), Target::Peer(pid(1)), None, &[]),
            Err(FoafError::NoNeighbours)
        );
        assert_eq!(f.own_queries(), 0);
        for bad in [
            Config {
                fanout: 0,
                ..Config::default()
            },
            Config {
                max_ttl: 5,
                ..Config::default()
            },
            Config {
                default_ttl: 4,
                max_ttl: 3,
                ..Config::default()
            },
            Config {
                max_records_per_answer: MAX_ANSWER_RECORDS + 1,
                ..Config::default()
            },
            Config {
                max_own_queries: 256,
                ..Config::default()
            },
            Config {
                dedup_ttl: TimeDelta::from_secs(1),
                ..Config::default()
            },
        ] {
            assert!(matches!(Foaf::new(bad), Err(FoafError::InvalidConfig(_))));
        }
    }
}
