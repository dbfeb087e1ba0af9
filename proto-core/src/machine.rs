//! The one contract every protocol state machine of the core follows (SPEC.md §8.8).
//!
//! HyParView, SWIM, Plumtree, the root-beacon tree, anti-entropy, FOAF, presence and fetch are
//! each a [`StateMachine`]: inputs go in through [`StateMachine::handle`] (one `Input` enum per
//! machine: messages from peers, link events, the node's requests), time through
//! [`StateMachine::handle_timeout`]; outputs come out of [`StateMachine::poll`] (one `Output`
//! enum per machine) until it answers `None`, and [`StateMachine::poll_timeout`] says when the
//! machine next needs `handle_timeout`. Queries that change nothing (views, counters) stay plain
//! methods.
//!
//! **Randomness.** The node owns the core's one RNG ([`Rng`], seeded by the node's creator);
//! every `handle` and `handle_timeout` takes it, and no machine keeps an RNG of its own. So the
//! node's draws happen in one order whatever the machines do, and a seed replays a run exactly.
//!
//! **Timers.** A machine keeps its timers in a [`Deadlines`]: `poll_timeout` is its earliest
//! entry and `handle_timeout` pops what is due, so the two cannot disagree. After
//! `handle_timeout(t)`, `poll_timeout()` is never at or before `t` (every machine has a property
//! test of it: a timer that stayed due would make a driver spin).

use crate::time::Timestamp;
use alloc::collections::{BTreeMap, BTreeSet};

/// The core's random number generator: the node's, passed to every machine that draws.
pub type Rng = chacha20::ChaCha8Rng;

/// The shape of every protocol state machine (see the module documentation).
pub trait StateMachine {
    /// Everything that can happen to the machine but the passage of time. It may borrow what
    /// the node lends for the call (a sibling's view, a validator, the records the node knows).
    type Input<'a>
    where
        Self: 'a;
    /// What the machine asks of its owner.
    type Output;
    /// What `handle` answers at once (`()` for most machines; a refusal or an id for some).
    type Reply;

    /// Something happened at `now`.
    fn handle(&mut self, now: Timestamp, input: Self::Input<'_>, rng: &mut Rng) -> Self::Reply;

    /// Time has passed: run every timer due at or before `now`.
    fn handle_timeout(&mut self, now: Timestamp, rng: &mut Rng);

    /// The next output, or `None` when there is nothing left to do.
    fn poll(&mut self) -> Option<Self::Output>;

    /// The earliest instant at which `handle_timeout` has work to do, if any.
    fn poll_timeout(&self) -> Option<Timestamp>;
}

/// A machine's timers: at most one deadline per key, ordered by time then key.
///
/// `next` (what `poll_timeout` reports) and `pop_due` (what `handle_timeout` runs) read the same
/// ordered set, so no timer can be reported without being run or run without being reported.
/// The structure holds one entry per key the machine tracks, so it is bounded by the machine's
/// own bounded tables.
#[derive(Debug, Clone)]
pub struct Deadlines<K: Ord + Copy> {
    by_time: BTreeSet<(Timestamp, K)>,
    by_key: BTreeMap<K, Timestamp>,
}

impl<K: Ord + Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            by_time: BTreeSet::new(),
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    /// No timers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`'s deadline to `at`, replacing the one it had.
    pub fn set(&mut self, key: K, at: Timestamp) {
        if let Some(old) = self.by_key.insert(key, at) {
            if old == at {
                return; // unchanged: most re-arms after an input are
            }
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    /// Sets `key`'s deadline to `at` unless it already has an earlier one.
    pub fn set_earlier(&mut self, key: K, at: Timestamp) {
        match self.by_key.get(&key) {
            Some(&old) if old <= at => {}
            _ => self.set(key, at),
        }
    }

    /// Removes `key`'s deadline; returns it.
    pub fn cancel(&mut self, key: &K) -> Option<Timestamp> {
        let at = self.by_key.remove(key)?;
        self.by_time.remove(&(at, *key));
        Some(at)
    }

    /// `key`'s deadline.
    pub fn get(&self, key: &K) -> Option<Timestamp> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline: a machine's `poll_timeout`.
    pub fn next(&self) -> Option<Timestamp> {
        self.by_time.first().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest deadline if it is at or before `now` (ties in key
    /// order): a machine's `handle_timeout` loops on it.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, K)> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.pop_first();
        self.by_key.remove(&key);
        Some((at, key))
    }

    /// The deadlines at or before `now`, earliest first (ties in key order), left in place.
    pub fn due(&self, now: Timestamp) -> impl Iterator<Item = (Timestamp, K)> + '_ {
        self.by_time
            .iter()
            .take_while(move |&&(at, _)| at <= now)
            .copied()
    }

    /// How many timers are set.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no timer is set.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Removes every timer.
    pub fn clear(&mut self) {
        self.by_time.clear();
        self.by_key.clear();
    }

    /// Keeps only the timers whose key `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let by_time = &mut self.by_time;
        self.by_key.retain(|k, at| {
            let kept = keep(k);
            if !kept {
                by_time.remove(&(*at, *k));
            }
            kept
        });
    }
}

/// Declares a struct that is internal to the core (`pub(crate)`) but public with the `testing`
/// feature, so fuzz targets, benchmarks and tests can drive one machine alone while an embedder
/// sees only the node (SPEC.md "Where things are"). Their `impl` blocks carry
/// `#[cfg_attr(not(feature = "testing"), allow(dead_code))]`: some methods serve only those tools.
macro_rules! internal_struct {
    ($(#[$attr:meta])* struct $name:ident $($rest:tt)*) => {
        #[cfg(feature = "testing")]
        $(#[$attr])*
        pub struct $name $($rest)*
        #[cfg(not(feature = "testing"))]
        $(#[$attr])*
        pub(crate) struct $name $($rest)*
    };
}
pub(crate) use internal_struct;

/// Test support: the deadline property every machine's tests check.
#[cfg(test)]
pub(crate) mod check {
    use super::*;

    /// Runs `machine`'s timers from `start` to `until` the way a driver does (wake at
    /// `poll_timeout`, call `handle_timeout`, drain `poll`), feeding `inputs(now, machine)`
    /// before each wake, and asserts that after `handle_timeout(t)` the machine never again
    /// reports a deadline at or before `t`. Returns how many wakes there were.
    pub(crate) fn timers_move_forward<M: StateMachine>(
        machine: &mut M,
        rng: &mut Rng,
        start: Timestamp,
        until: Timestamp,
        max_wakes: usize,
        mut inputs: impl FnMut(Timestamp, &mut M, &mut Rng),
    ) -> usize {
        let mut now = start;
        let mut wakes = 0;
        while wakes < max_wakes {
            inputs(now, machine, rng);
            while machine.poll().is_some() {}
            let Some(at) = machine.poll_timeout() else {
                break;
            };
            if at > until {
                break;
            }
            // Drivers may wake late, never early: time does not go backwards.
            now = now.max(at);
            machine.handle_timeout(now, rng);
            while machine.poll().is_some() {}
            wakes += 1;
            if let Some(next) = machine.poll_timeout() {
                assert!(
                    next > now,
                    "after handle_timeout({now:?}) poll_timeout() is {next:?}, not later"
                );
            }
        }
        wakes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TimeDelta;

    const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

    #[test]
    fn deadlines_pop_in_time_then_key_order_and_replace_per_key() {
        let mut d = Deadlines::new();
        let s = |n| T0 + TimeDelta::from_secs(n);
        d.set(3u8, s(5));
        d.set(1, s(5));
        d.set(2, s(1));
        d.set(2, s(7)); // replaces 2's earlier deadline
        d.set_earlier(3, s(9)); // keeps 5
        d.set_earlier(1, s(4)); // moves 1 earlier
        assert_eq!(d.len(), 3);
        assert_eq!(d.next(), Some(s(4)));
        assert_eq!(d.pop_due(s(3)), None);
        assert_eq!(d.pop_due(s(6)), Some((s(4), 1)));
        assert_eq!(d.pop_due(s(6)), Some((s(5), 3)));
        assert_eq!(d.pop_due(s(6)), None);
        assert_eq!(d.cancel(&2), Some(s(7)));
        assert!(d.is_empty() && d.next().is_none());
    }

    #[test]
    fn retain_drops_both_indexes() {
        let mut d = Deadlines::new();
        for k in 0u8..10 {
            d.set(k, T0 + TimeDelta::from_secs(u64::from(k)));
        }
        d.retain(|k| k % 2 == 0);
        assert_eq!(d.len(), 5);
        let mut popped = alloc::vec::Vec::new();
        while let Some((_, k)) = d.pop_due(T0 + TimeDelta::from_secs(100)) {
            popped.push(k);
        }
        assert_eq!(popped, [0, 2, 4, 6, 8]);
    }
}
