//! Serving what neighbours ask for (IWANT, GRAFT) within a per-peer budget (SPEC.md §15.4).
//!
//! A 2 KB request names up to 64 ids, each up to a 248 KiB payload: served naively, one
//! neighbour could make a node send 16 MB per request, and ask again at once. So a request's
//! repeated ids count once; an id served to a peer is not served to it again for
//! [`RESERVE_AFTER`] (its copy is on a reliable connection); and each peer has a byte budget
//! (`serve_rate` KiB per second, the same as a burst). What is refused is counted
//! (`served_again`, `serve_over_budget`) and costs the node nothing more.

use super::*;
use crate::time::TokenBucket;

/// How long an id served to a peer is not served to it again.
pub const RESERVE_AFTER: TimeDelta = TimeDelta::from_secs(10);
/// Peers whose budgets are remembered (the one that asked least recently is forgotten).
const MAX_SERVED_PEERS: usize = 64;
/// Ids remembered per peer as served.
const MAX_SERVED_IDS: usize = 256;

/// One peer's serving budget and the ids lately served to it.
#[derive(Debug, Clone)]
pub(super) struct Served {
    /// KiB left to serve it.
    kib: TokenBucket,
    /// Ids served, and when; oldest first.
    recent: VecDeque<(Timestamp, MessageId)>,
    /// When it last asked.
    last: Timestamp,
}

impl Plumtree {
    /// Serves `to`'s IWANT (`repair`) or GRAFT for `ids` within its budget.
    pub(super) fn serve_request(
        &mut self,
        now: Timestamp,
        to: PeerId,
        ids: &[MessageId],
        repair: bool,
    ) {
        if !self.served.contains_key(&to) && self.served.len() >= MAX_SERVED_PEERS {
            let stalest = self
                .served
                .iter()
                .min_by_key(|(p, s)| (s.last, **p))
                .map(|(p, _)| *p);
            if let Some(p) = stalest {
                self.served.remove(&p);
            }
        }
        let rate = self.config.serve_rate_kib;
        let served = self.served.entry(to).or_insert_with(|| Served {
            kib: TokenBucket::new(rate, now),
            recent: VecDeque::new(),
            last: now,
        });
        served.last = now;
        while served
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_since(*t) >= RESERVE_AFTER)
        {
            served.recent.pop_front();
        }
        let mut chosen: Vec<MessageId> = Vec::new();
        let mut over_budget = false;
        for id in ids {
            if chosen.contains(id) || served.recent.iter().any(|(_, s)| s == id) {
                self.counters.served_again += 1;
                continue;
            }
            let Some(r) = self.cache.get(id) else {
                self.counters.unknown_requests += 1;
                continue;
            };
            let kib = u64::try_from(r.len.div_ceil(1024).max(1)).unwrap_or(u64::MAX);
            if !served.kib.take_n(now, kib) {
                self.counters.serve_over_budget += 1;
                over_budget = true;
                continue;
            }
            if served.recent.len() >= MAX_SERVED_IDS {
                served.recent.pop_front();
            }
            served.recent.push_back((now, *id));
            chosen.push(*id);
        }
        if over_budget {
            // One piece of evidence per request, however many ids it asked beyond the budget.
            self.out.push_back(Output::Evidence {
                peer: to,
                evidence: crate::score::Evidence::Abuse,
            });
        }
        self.send_retained(to, &chosen, repair);
    }
}
