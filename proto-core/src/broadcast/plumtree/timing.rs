//! The repair waits, from measured round-trip times (SPEC.md §15.4).
//!
//! The owner hands each neighbour's smoothed round-trip estimate in ([`super::Input::Rtt`]; the
//! node takes it from SWIM's pings and acks, so the simulator and a real driver feed the same
//! input). With `k` = [`super::Config::repair_rtos`] and `rto(p)` = `srtt + 4·rttvar` of `p`:
//!
//! - an announced message may be missing for `k × max(rto)` over the announcer and the eager
//!   peers with an estimate ("timeout 1"), within [`super::Config::ihave_timeout_min`] and
//!   [`super::Config::ihave_timeout`];
//! - a GRAFT may go unanswered for `k × rto(announcer)` ("timeout 2"), within
//!   [`super::Config::graft_timeout_min`] and [`super::Config::graft_timeout`];
//! - IHAVE entries for a peer wait to be batched for its `srtt`, within
//!   [`super::Config::ihave_delay_min`] and [`super::Config::ihave_delay`].
//!
//! Without an estimate each wait is its upper bound (the fixed values of the paper's design).

use super::Plumtree;
use crate::id::PeerId;
use crate::time::{RttEstimate, TimeDelta};

impl Plumtree {
    /// Remembers `peer`'s estimate, if it is a neighbour (so the table stays bounded by them).
    pub(super) fn set_rtt(&mut self, peer: PeerId, rtt: RttEstimate) {
        if self.is_neighbor(&peer) {
            self.rtts.insert(peer, rtt);
        }
    }

    /// "Timeout 1" for a message `announcer` announced.
    pub(super) fn ihave_wait(&self, announcer: &PeerId) -> TimeDelta {
        let c = &self.config;
        let rto = core::iter::once(announcer)
            .chain(self.eager_peers.iter())
            .filter_map(|p| self.rtts.get(p))
            .map(RttEstimate::timeout)
            .max();
        bounded(rto, c.repair_rtos, c.ihave_timeout_min, c.ihave_timeout)
    }

    /// "Timeout 2" after a GRAFT to `announcer`.
    pub(super) fn graft_wait(&self, announcer: &PeerId) -> TimeDelta {
        let c = &self.config;
        let rto = self.rtts.get(announcer).map(RttEstimate::timeout);
        bounded(rto, c.repair_rtos, c.graft_timeout_min, c.graft_timeout)
    }

    /// How long IHAVE entries for `peer` may wait for a batch.
    pub(super) fn batch_wait(&self, peer: &PeerId) -> TimeDelta {
        let c = &self.config;
        let srtt = self.rtts.get(peer).map(RttEstimate::srtt);
        bounded(srtt, 1, c.ihave_delay_min, c.ihave_delay)
    }
}

/// `k × base` within `[min, max]`; `max` when `base` is unknown.
fn bounded(base: Option<TimeDelta>, k: u32, min: TimeDelta, max: TimeDelta) -> TimeDelta {
    match base {
        Some(b) => b.saturating_mul(u64::from(k)).max(min).min(max),
        None => max,
    }
}
