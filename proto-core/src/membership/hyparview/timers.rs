//! HyParView's timers: one [`Deadlines`] of [`Timer`]s, which `poll_timeout` reads and
//! `handle_timeout` runs kind by kind.

use super::*;
use crate::membership::take_due;

/// HyParView's timers, run kind by kind in this order (the variants') and, within a kind, in
/// peer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A connection attempt ends (`attempt_timeout` after it started).
    Attempt(PeerId),
    /// A lost peer's next retry or, if sooner, the end of its `retry_horizon` (only the end
    /// while an attempt to it is in flight).
    Lost(PeerId),
    /// An unanswered JOIN or NEIGHBOR goes again.
    Resend(PeerId),
    /// Is the node alone? Then join again through the contacts (set while there are contacts).
    Rejoin,
    /// The periodic shuffle.
    Shuffle,
    /// A paced repair round (set while the active view has room and the passive view has
    /// candidates).
    Repair,
    /// The component's root tree has a timer due (island merging only).
    Component,
    /// The next merge probe (island merging only).
    Probe,
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl HyParView {
    /// Time passed: expire attempts, forget and retry lost peers, resend requests, rejoin,
    /// shuffle, repair.
    pub(super) fn run_timers(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        if self.left {
            return;
        }
        let expired = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Attempt(peer) => Some(*peer),
            _ => None,
        });
        for peer in expired {
            if let Some(a) = self.take_attempt(&peer) {
                self.counters.attempts_failed += 1;
                if !self.active.contains_key(&peer) {
                    self.out.push_back(Output::Disconnect { peer });
                }
                self.attempt_failed(now, peer, a);
            }
        }
        let retries = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Lost(peer) => Some(*peer),
            _ => None,
        });
        let horizon = self.config.retry_horizon;
        for peer in retries {
            let Some(l) = self.lost.get_mut(&peer) else {
                continue;
            };
            if now.saturating_since(l.lost_at) >= horizon {
                // Forgotten, even while a retry is in flight (which may still succeed).
                self.lost.remove(&peer);
                self.arm_lost(peer);
                continue;
            }
            if l.next_try > now || self.attempts.contains_key(&peer) {
                // Not due (cannot happen: the timer says when it is): set it again.
                self.arm_lost(peer);
                continue;
            }
            // Until this attempt fails or succeeds, do not fire again.
            l.next_try = now + self.config.attempt_timeout + l.backoff;
            let addresses = l.addresses.clone();
            let origin = if l.chosen {
                Origin::Chosen
            } else {
                Origin::Invited
            };
            self.attempt(
                now,
                peer,
                addresses,
                Purpose::Neighbor(Priority::High),
                origin,
                true,
            );
            // The attempt may not have started (too many in flight): then the retry waits.
            self.arm_lost(peer);
        }
        let unanswered = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Resend(peer) => Some(*peer),
            _ => None,
        });
        for peer in unanswered {
            self.resend(now, peer);
        }
        let periodic = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Rejoin | Timer::Shuffle | Timer::Repair => Some(*t),
            _ => None,
        });
        if periodic.contains(&Timer::Rejoin) {
            self.rejoin(now);
        }
        if periodic.contains(&Timer::Shuffle) {
            self.shuffle(now, rng);
        }
        // A repair round runs when its timer is due, and only then: what a node does never
        // depends on how often it is woken (the timer is set while the active view has room
        // and the passive view has candidates, at `next_repair`, which may have passed).
        // What ran above may have made a repair wanted whose time has come (a chosen attempt
        // expired): it runs now rather than leave its timer in the past.
        if periodic.contains(&Timer::Repair) || (self.repair_wanted() && self.next_repair <= now) {
            self.repair(now, rng, false, &[]);
        }
        let merging = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Component | Timer::Probe => Some(*t),
            _ => None,
        });
        if !merging.is_empty() {
            self.merge_timers(now, rng);
        }
    }

    /// Sets the timers that follow the views and the fields (rejoin, shuffle, repair), or none
    /// once the node left. Runs after every input and every `handle_timeout`.
    pub(super) fn arm_timers(&mut self) {
        if self.left {
            self.deadlines.clear();
            return;
        }
        self.arm_component();
        self.deadlines.set(Timer::Shuffle, self.next_shuffle);
        if self.contacts.is_empty() {
            self.deadlines.cancel(&Timer::Rejoin);
        } else {
            self.deadlines.set(Timer::Rejoin, self.next_rejoin);
        }
        if self.repair_wanted() {
            self.deadlines.set(Timer::Repair, self.next_repair);
        } else {
            self.deadlines.cancel(&Timer::Repair);
        }
    }

    /// Whether the [`Timer::Repair`] is set: the active view has room and the passive view has
    /// candidates, or a reserved place is empty and someone can be asked (§13.7).
    fn repair_wanted(&self) -> bool {
        (self.active.len() < self.config.active_view && !self.passive.is_empty())
            || self.reserve_wanted()
    }

    /// Sets or cancels `peer`'s [`Timer::Lost`]: set while it is lost (never while active).
    /// Runs after each change to the lost peers, the attempts or the active view.
    pub(super) fn arm_lost(&mut self, peer: PeerId) {
        let at = match self.lost.get(&peer) {
            Some(l) if self.attempts.contains_key(&peer) => {
                Some(l.lost_at + self.config.retry_horizon)
            }
            Some(l) if !self.active.contains_key(&peer) => {
                Some(l.next_try.min(l.lost_at + self.config.retry_horizon))
            }
            _ => None,
        };
        match at {
            Some(at) => self.deadlines.set(Timer::Lost(peer), at),
            None => {
                self.deadlines.cancel(&Timer::Lost(peer));
            }
        }
    }

    /// Starts tracking an attempt (which ends at `attempt_timeout`).
    pub(super) fn insert_attempt(&mut self, now: Timestamp, peer: PeerId, attempt: Attempt) {
        self.attempts.insert(peer, attempt);
        let end = now + self.config.attempt_timeout;
        self.deadlines.set(Timer::Attempt(peer), end);
        self.arm_lost(peer);
    }

    /// Stops tracking `peer`'s attempt, with its timers.
    pub(super) fn take_attempt(&mut self, peer: &PeerId) -> Option<Attempt> {
        let a = self.attempts.remove(peer)?;
        self.deadlines.cancel(&Timer::Attempt(*peer));
        self.deadlines.cancel(&Timer::Resend(*peer));
        self.arm_lost(*peer);
        Some(a)
    }

    /// Sends again a JOIN or NEIGHBOR that got no answer in `request_retry`.
    fn resend(&mut self, now: Timestamp, peer: PeerId) {
        let Some(a) = self.attempts.get(&peer) else {
            return;
        };
        if !a.sent || !self.links.contains(&peer) {
            return;
        }
        let message = self.request(&a.purpose.clone());
        self.out.push_back(Output::Send { to: peer, message });
        let again = now + self.config.request_retry;
        self.deadlines.set(Timer::Resend(peer), again);
    }

    /// Alone (no active peer, nothing in flight, no passive entry to repair from): join again
    /// through the original contacts, with back-off. Otherwise just look again later.
    fn rejoin(&mut self, now: Timestamp) {
        let alone = self.active.is_empty() && self.attempts.is_empty() && self.passive.is_empty();
        if alone && !self.contacts.is_empty() {
            for c in self.contacts.clone() {
                if c.peer != self.me {
                    self.attempt(
                        now,
                        c.peer,
                        c.addresses,
                        Purpose::Join,
                        Origin::Chosen,
                        false,
                    );
                }
            }
            self.rejoin_backoff = (self.rejoin_backoff + self.rejoin_backoff)
                .max(self.config.retry_backoff_min)
                .min(self.config.retry_backoff_max);
        } else if !self.active.is_empty() {
            self.rejoin_backoff = self.config.retry_backoff_min;
        }
        self.next_rejoin = now + self.config.attempt_timeout.max(self.rejoin_backoff);
    }
}
