//! Admission under attack (SPEC.md §13.7): who may take a place in the active view, and whom a
//! newcomer may displace.
//!
//! The paper's HyParView admits every JOIN and every high-priority NEIGHBOR by evicting a random
//! active neighbour; an attacker with a dozen identities takes the whole view within seconds.
//! Here:
//! - an active neighbour this node *chose* (its join contact, a passive or tried entry it asked
//!   itself, a lost neighbour it retried) is marked so; the `reserved` longest-standing chosen
//!   neighbours, and the longest-standing neighbour of any kind, are *protected*: nothing a
//!   peer sends can evict them (they leave only by failing, leaving, or closing the link);
//! - a chosen neighbour that stayed `tried_after` and then went (not by failing) is kept as
//!   *tried*; while fewer than `reserved` chosen neighbours are active, repairs ask a tried
//!   peer first, then the passive view, so the protected places refill from peers with a
//!   record of good behaviour rather than from whatever the latest SHUFFLE offered. With a
//!   full view that takes an eviction, so it happens only *under pressure*: within
//!   [`PRESSURE_WINDOW`] of an invited newcomer having evicted a neighbour (a quiet overlay
//!   does not churn for it);
//! - one SHUFFLE or SHUFFLE_REPLY puts at most `shuffle_active + shuffle_passive + 1` entries
//!   into the passive view (what an honest peer sends), however many it carries;
//! - a newcomer evicts the newest unprotected neighbour (one of its own address group first),
//!   so a flood churns one place; one address group holds one invited place,
//!   `passive_per_group` passive entries, and one announced joiner per `announce_interval`;
//! - only active neighbours may walk (SHUFFLE, FORWARD_JOIN), only an awaited reply is taken,
//!   and a walk is no longer than this node's own.

use super::*;

/// How long after an invited newcomer evicted a neighbour the node counts as under pressure
/// and refills its reserved places even when that takes an eviction of its own.
pub const PRESSURE_WINDOW: TimeDelta = TimeDelta::from_secs(60);

/// Most links whose address group is remembered (links are bounded by the node's
/// `max_connections`, well below this).
pub(super) const MAX_GROUPS: usize = 4096;

/// The owner's scores of some peers (§13.8), set before a message that may admit or evict:
/// the newest unprotected neighbour of the lowest score is evicted first, and a newcomer
/// scoring below `admit` displaces nobody. A peer not listed scores 0.
#[derive(Debug, Clone, Default)]
pub(super) struct Scores {
    admit: i32,
    of: Vec<(PeerId, i32)>,
}

impl Scores {
    fn of(&self, peer: &PeerId) -> i32 {
        self.of
            .iter()
            .find(|(p, _)| p == peer)
            .map_or(0, |(_, s)| *s)
    }
}

/// A tried peer: where to reach it, and when it became tried (the oldest goes first).
#[derive(Debug, Clone)]
pub(super) struct Tried {
    pub(super) addresses: Addresses,
    pub(super) since: Timestamp,
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl HyParView {
    /// The active neighbours no newcomer may evict: the `reserved` longest-standing chosen
    /// ones and the longest-standing one of any kind.
    pub(super) fn protected(&self) -> Vec<PeerId> {
        let mut chosen: Vec<(Timestamp, PeerId)> = self
            .chosen
            .iter()
            .filter_map(|p| self.active_since.get(p).map(|s| (*s, *p)))
            .collect();
        chosen.sort_unstable();
        let mut out: Vec<PeerId> = chosen
            .into_iter()
            .take(self.config.reserved)
            .map(|(_, p)| p)
            .collect();
        if let Some((_, oldest)) = self
            .active_since
            .iter()
            .map(|(p, s)| (*s, *p))
            .min()
            .filter(|(_, p)| !out.contains(p))
        {
            out.push(oldest);
        }
        out
    }

    /// The owner's scores (§13.8) of the peers that matter to the next message: the active
    /// neighbours and the sender. Below `admit`, a newcomer displaces nobody from a full view;
    /// of the neighbours a newcomer may displace, the lowest-scoring goes first (the newest of
    /// them on a tie). Replaces the previous scores; a peer not listed scores 0.
    pub fn note_scores(&mut self, admit: i32, scores: impl IntoIterator<Item = (PeerId, i32)>) {
        self.scores.admit = admit;
        self.scores.of.clear();
        self.scores
            .of
            .extend(scores.into_iter().filter(|(_, s)| *s != 0));
    }

    /// Whether `peer` may take a place in the active view now: there is room, it holds one
    /// already, or it scores at least the admission threshold (else refused and counted).
    pub(super) fn admits(&mut self, peer: &PeerId) -> bool {
        if self.active.len() < self.config.active_view
            || self.active.contains_key(peer)
            || self.scores.of(peer) >= self.scores.admit
        {
            return true;
        }
        self.counters.refused_low_score += 1;
        false
    }

    /// Active neighbours this node chose itself (the reserved places count these).
    pub fn chosen(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.chosen.iter()
    }

    /// Peers that held a chosen place for `tried_after` and went without failing, oldest
    /// first in id order.
    pub fn tried(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.tried.keys()
    }

    /// Records the address group of the link to `peer` (the driver saw its remote address):
    /// admission limits what one group may hold (§13.7). Kept while the link is up.
    pub fn note_group(&mut self, peer: PeerId, group: AddressGroup) {
        if self.groups.len() < MAX_GROUPS || self.groups.contains_key(&peer) {
            self.groups.insert(peer, group);
        }
    }

    /// The address group of the link to `peer`, if its driver reported one.
    pub fn group_of(&self, peer: &PeerId) -> Option<AddressGroup> {
        self.groups.get(peer).copied()
    }

    /// The neighbour to evict for a newcomer from address group `group` when the view is
    /// full: an unprotected invited neighbour of the newcomer's own group if there is one (a
    /// group holds one invited place), else the newest invited neighbour that is neither
    /// protected nor spared (one the failure detector suspects), else the newest such chosen
    /// one, else the newest unprotected one. `None` when every neighbour is protected (only
    /// when `active_view` is at most `reserved + 1`).
    pub(super) fn eviction_victim(
        &self,
        group: Option<AddressGroup>,
        rng: &mut machine::Rng,
    ) -> Option<PeerId> {
        let protected = self.protected();
        let same_group: Vec<PeerId> = group
            .map(|g| {
                self.active
                    .keys()
                    .filter(|p| {
                        !protected.contains(p)
                            && !self.chosen.contains(p)
                            && self.groups.get(p) == Some(&g)
                    })
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(p) = pick_one(same_group, rng) {
            return Some(p);
        }
        let mut keep = protected.clone();
        keep.extend(self.spared.iter().copied());
        let mut keep_chosen = keep.clone();
        keep_chosen.extend(self.chosen.iter().copied());
        self.newest_active_except(&keep_chosen)
            .or_else(|| self.newest_active_except(&keep))
            .or_else(|| self.newest_active_except(&protected))
    }

    /// Of the neighbours not in `except`, the lowest-scoring one (§13.8), and of those the one
    /// that entered the active view last (ties: the smallest id).
    fn newest_active_except(&self, except: &[PeerId]) -> Option<PeerId> {
        self.active_since
            .iter()
            .filter(|(p, _)| !except.contains(p))
            .max_by_key(|(p, s)| {
                (
                    core::cmp::Reverse(self.scores.of(p)),
                    **s,
                    core::cmp::Reverse(**p),
                )
            })
            .map(|(p, _)| *p)
    }

    /// Removes `peer` from the active view (and from the chosen places), remembering it as
    /// tried if it was a chosen neighbour of long standing that went without failing.
    pub(super) fn remove_active(&mut self, peer: &PeerId, failed: bool) -> Option<Addresses> {
        let stood = self.has_stood(peer);
        let addresses = self.active.remove(peer)?;
        self.active_since.remove(peer);
        let was_chosen = self.chosen.remove(peer);
        if failed {
            self.tried.remove(peer);
        } else if was_chosen && stood {
            self.remember_tried(*peer, addresses.clone());
        }
        Some(addresses)
    }

    /// Whether active neighbour `peer` has stood at least `tried_after`.
    pub(super) fn has_stood(&self, peer: &PeerId) -> bool {
        self.active_since
            .get(peer)
            .is_some_and(|s| self.clock.saturating_since(*s) >= self.config.tried_after)
    }

    /// The peers of long good standing, for a restart's peer cache (§13.7): the tried peers
    /// and the chosen neighbours active for at least `tried_after`, in id order.
    pub fn long_standing(&self) -> Vec<PeerId> {
        let mut out: Vec<PeerId> = self.tried.keys().copied().collect();
        out.extend(self.chosen.iter().copied().filter(|p| self.has_stood(p)));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Adds `peer` to the tried peers, evicting the oldest when full.
    pub(super) fn remember_tried(&mut self, peer: PeerId, addresses: Addresses) {
        if self.config.tried == 0 {
            return;
        }
        if self.tried.len() >= self.config.tried
            && !self.tried.contains_key(&peer)
            && let Some(oldest) = self
                .tried
                .iter()
                .min_by_key(|(p, t)| (t.since, **p))
                .map(|(p, _)| *p)
        {
            self.tried.remove(&oldest);
        }
        self.tried.insert(
            peer,
            Tried {
                addresses,
                since: self.clock,
            },
        );
    }

    /// Chosen places still to fill: `reserved` minus the chosen neighbours and the chosen
    /// attempts in flight.
    pub(super) fn reserve_missing(&self) -> usize {
        let in_flight = self.attempts.values().filter(|a| a.chosen).count();
        self.config
            .reserved
            .min(self.config.active_view)
            .saturating_sub(self.chosen.len() + in_flight)
    }

    /// Whether a chosen place may be refilled at `at`: the view has room, or the node is under
    /// pressure.
    fn may_refill(&self, at: Timestamp) -> bool {
        self.active.len() < self.config.active_view || at < self.pressure_until
    }

    /// Whether a repair at its next time (`next_repair`) would fill a chosen place: one is
    /// missing, it may be refilled then, and there is someone to ask.
    pub(super) fn reserve_wanted(&self) -> bool {
        self.reserve_missing() > 0
            && self.may_refill(self.next_repair)
            && (self
                .tried
                .keys()
                .any(|p| !self.active.contains_key(p) && !self.attempts.contains_key(p))
                || self.passive.keys().any(|p| !self.attempts.contains_key(p)))
    }

    /// One attempt at a missing chosen place: a tried peer first, else a passive entry (one
    /// already connected first). Replies whether an attempt started.
    pub(super) fn refill_reserve(
        &mut self,
        now: Timestamp,
        rng: &mut machine::Rng,
        exclude: &[PeerId],
    ) -> bool {
        if self.reserve_missing() == 0 || !self.may_refill(now) {
            return false;
        }
        let free = |p: &PeerId, hv: &Self| {
            !hv.active.contains_key(p) && !hv.attempts.contains_key(p) && !exclude.contains(p)
        };
        let tried: Vec<PeerInfo> = self
            .tried
            .iter()
            .filter(|(p, _)| free(p, self))
            .map(|(p, t)| PeerInfo {
                peer: *p,
                addresses: t.addresses.clone(),
            })
            .collect();
        let choice = match pick_one(tried, rng) {
            Some(c) => Some(c),
            None => {
                // An address group the active view does not hold yet comes first.
                let held: Vec<AddressGroup> = self
                    .active
                    .iter()
                    .filter_map(|(p, a)| self.group_of_entry(p, a))
                    .collect();
                let candidates: Vec<PeerInfo> = self
                    .passive
                    .iter()
                    .filter(|(p, _)| free(p, self))
                    .map(|(p, a)| PeerInfo {
                        peer: *p,
                        addresses: a.clone(),
                    })
                    .collect();
                let (fresh, rest): (Vec<PeerInfo>, Vec<PeerInfo>) =
                    candidates.into_iter().partition(|i| {
                        self.group_of_entry(&i.peer, &i.addresses)
                            .is_none_or(|g| !held.contains(&g))
                    });
                // Then the entry held longest: identities a flood pours in churn through the
                // passive view, while peers met before it stay.
                let pool = if fresh.is_empty() { rest } else { fresh };
                pool.into_iter()
                    .min_by_key(|i| self.passive_since.get(&i.peer).copied().unwrap_or(0))
            }
        };
        let Some(info) = choice else {
            return false;
        };
        // High: a reserved place is worth a place the asked peer gave an invited newcomer
        // (whom it evicts, newest first); Low is refused by every full view. Only where every
        // node can hold its reserved places: each link is chosen by one end at most, so a
        // node holds `active_view / 2` chosen places on average, and asking for more with
        // High would only pass the shortage on, eviction after eviction.
        let priority = if self.active.is_empty()
            || (now < self.pressure_until && 2 * self.config.reserved <= self.config.active_view)
        {
            Priority::High
        } else {
            Priority::Low
        };
        self.attempt(
            now,
            info.peer,
            info.addresses,
            Purpose::Neighbor(priority),
            Origin::Chosen,
            false,
        )
    }

    /// Whether joiner `peer` may be announced now: its address group (of its link, else of
    /// its address) had no joiner announced within `announce_interval`. Records the
    /// announcement when it may.
    pub(super) fn may_announce(
        &mut self,
        now: Timestamp,
        peer: &PeerId,
        addresses: &Addresses,
    ) -> bool {
        let Some(group) = self
            .groups
            .get(peer)
            .copied()
            .or_else(|| self.group_of_entry(peer, addresses))
        else {
            return true;
        };
        let interval = self.config.announce_interval;
        if self
            .announced
            .get(&group)
            .is_some_and(|t| now.saturating_since(*t) < interval)
        {
            self.counters.announcements_skipped += 1;
            return false;
        }
        if self.announced.len() >= MAX_GROUPS {
            self.announced
                .retain(|_, t| now.saturating_since(*t) < interval);
        }
        if self.announced.len() < MAX_GROUPS {
            self.announced.insert(group, now);
        }
        true
    }

    /// Most entries one SHUFFLE or SHUFFLE_REPLY may put into the passive view.
    pub(super) fn shuffle_intake(&self) -> usize {
        self.config.shuffle_active + self.config.shuffle_passive + 1
    }
}

/// One item chosen uniformly.
fn pick_one<T>(items: Vec<T>, rng: &mut machine::Rng) -> Option<T> {
    sample(items, 1, rng).pop()
}
