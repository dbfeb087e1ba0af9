//! HyParView's parameters (SPEC.md §13.5, §13.7).
use super::MergeConfig;
use crate::time::TimeDelta;

/// HyParView parameters (SPEC.md §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Active view capacity. Default 5.
    pub active_view: usize,
    /// Passive view capacity. Default 30.
    pub passive_view: usize,
    /// Active random walk length (FORWARD_JOIN ttl). Default 6.
    pub arwl: u8,
    /// Hops of a SHUFFLE walk. Default 6.
    pub shuffle_ttl: u8,
    /// Passive random walk length: at this ttl a FORWARD_JOIN also fills the passive view. Default 3.
    pub prwl: u8,
    /// First pause between shuffles, and the pause again whenever the active view changed
    /// since the last shuffle. Default 10 s.
    pub shuffle_interval: TimeDelta,
    /// A node whose active view gains its first neighbour shuffles this soon (± 25 %) if its
    /// next shuffle is later: its passive view then holds more than its join walk found before
    /// anything can fail. Default 2 s.
    pub first_shuffle: TimeDelta,
    /// While the active view loses no one, the pause grows fourfold after each shuffle up to this.
    /// Default 60 s.
    pub shuffle_interval_max: TimeDelta,
    /// Active entries in a shuffle sample. Default 3.
    pub shuffle_active: usize,
    /// Passive entries in a shuffle sample. Default 4.
    pub shuffle_passive: usize,
    /// First delay before retrying a lost peer; doubles per failure. Default 2 s.
    pub retry_backoff_min: TimeDelta,
    /// Longest delay between retries of a lost peer. Default 30 s.
    pub retry_backoff_max: TimeDelta,
    /// How long a lost peer is retried before it is forgotten. Default 10 min.
    pub retry_horizon: TimeDelta,
    /// Most lost peers remembered for retries. Default 16.
    pub max_lost: usize,
    /// Most connection attempts in flight. Default 8.
    pub max_pending: usize,
    /// How long a connection attempt may take before it counts as failed. Default 10 s.
    pub attempt_timeout: TimeDelta,
    /// Pause between repair rounds after a NEIGHBOR was refused. Default 2 s.
    pub repair_interval: TimeDelta,
    /// While the active view is not empty, each refusal doubles the pause between repair
    /// rounds up to this (a view that cannot fill because everyone is full stops asking
    /// often). Default 2 min.
    pub repair_backoff_max: TimeDelta,
    /// An unanswered JOIN or NEIGHBOR is sent again after this long (until the attempt times
    /// out): the protocol survives lossy links. Default 1 s.
    pub request_retry: TimeDelta,
    /// JOIN and FORWARD_JOIN messages handled per second, on average (burst the same). Default 50.
    pub join_rate: u32,
    /// JOIN and FORWARD_JOIN messages handled per second from one source (the address group of
    /// the link, else the peer), burst the same (§13.7): however many identities one operator
    /// makes, it spends at most this share of `join_rate`. Default 10.
    pub join_rate_per_source: u32,
    /// Island merging (component roots and probes, [`MergeConfig`]). Default off: the node-level
    /// overlay turns it on; topic overlays merge through their own beacons and walks.
    pub merge: Option<MergeConfig>,
    /// Active places kept for neighbours this node chose itself (§13.7): the longest-standing
    /// chosen neighbours, this many, cannot be evicted by anything a peer sends (nor can the
    /// longest-standing neighbour of any kind). Default 2.
    pub reserved: usize,
    /// Most tried peers remembered (chosen neighbours of long standing that went without
    /// failing; asked first when a reserved place is empty). Default 8.
    pub tried: usize,
    /// How long a chosen neighbour must stay to count as tried. Default 30 s.
    pub tried_after: TimeDelta,
    /// Most passive entries of one address group (read from the entry's first address, or
    /// from the link to it): a newcomer of a full group replaces one of its own (§13.7).
    /// Default 2.
    pub passive_per_group: usize,
    /// A contact announces (starts FORWARD_JOIN walks for) at most one joiner of an address
    /// group per this long; later ones are admitted but not announced (§13.7). Default 60 s.
    pub announce_interval: TimeDelta,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            active_view: 5,
            passive_view: 30,
            arwl: 6,
            shuffle_ttl: 6,
            prwl: 3,
            shuffle_interval: TimeDelta::from_secs(10),
            first_shuffle: TimeDelta::from_secs(2),
            shuffle_interval_max: TimeDelta::from_secs(60),
            shuffle_active: 3,
            shuffle_passive: 4,
            retry_backoff_min: TimeDelta::from_secs(2),
            retry_backoff_max: TimeDelta::from_secs(30),
            retry_horizon: TimeDelta::from_secs(600),
            max_lost: 16,
            max_pending: 8,
            attempt_timeout: TimeDelta::from_secs(10),
            repair_interval: TimeDelta::from_secs(2),
            repair_backoff_max: TimeDelta::from_secs(120),
            request_retry: TimeDelta::from_secs(1),
            join_rate: 50,
            join_rate_per_source: 10,
            merge: None,
            reserved: 2,
            tried: 8,
            tried_after: TimeDelta::from_secs(30),
            passive_per_group: 2,
            announce_interval: TimeDelta::from_secs(60),
        }
    }
}
