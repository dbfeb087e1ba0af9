//! FOAF's parameters and the refusals of its calls.

use super::message::{MAX_ANSWER_RECORDS, MAX_FANOUT, MAX_TTL};
use crate::time::TimeDelta;
use core::fmt;

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
