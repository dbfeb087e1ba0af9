//! Membership: who a node is connected to, and who is still alive.
//!
//! - [`hyparview`]: the overlay's views (a small active view of neighbours, a larger passive
//!   view of remembered peers), join, forward-join, shuffle and healing (SPEC.md §13);
//! - [`swim`]: failure detection over the active view (SWIM with Lifeguard, SPEC.md §14).
//!
//! The node feeds SWIM's verdicts to HyParView, which replaces the dead.

pub mod group;
pub mod hyparview;
pub mod swim;
pub mod tree;

use crate::machine::Deadlines;
use crate::time::Timestamp;
use alloc::vec::Vec;

/// Pops the timers due at `now` that `pick` selects, in key order (not time order); the others
/// stay set. A machine whose `handle_timeout` runs its kinds of timer one after the other (all
/// due probes, then all due suspicions, ...) calls it once per kind, so timers that an earlier
/// kind made due are run in the same call.
pub(crate) fn take_due<K: Ord + Copy, T: Ord>(
    deadlines: &mut Deadlines<K>,
    now: Timestamp,
    pick: impl Fn(&K) -> Option<T>,
) -> Vec<T> {
    // Only the picked timers are removed: the others due now stay where they are (a machine
    // calls this once per kind of timer, so popping and re-setting them was most of its cost).
    let mut picked = Vec::new();
    let mut keys = Vec::new();
    for (_, key) in deadlines.due(now) {
        if let Some(t) = pick(&key) {
            picked.push(t);
            keys.push(key);
        }
    }
    for key in &keys {
        deadlines.cancel(key);
    }
    picked.sort();
    picked
}

/// Why a neighbour went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownReason {
    /// The connection closed without a goodbye.
    Disconnected,
    /// The failure detector declared the peer dead.
    Failed,
    /// The peer was replaced by another (or asked to be).
    Replaced,
    /// The peer said goodbye: it is leaving the overlay.
    Left,
    /// This node cut the peer off for misbehaving (SPEC.md §13.7: invalid payloads past the
    /// strike limit); it is forgotten, not retried.
    Misbehaved,
}

#[cfg(test)]
mod take_due_tests {
    use super::*;
    use crate::time::TimeDelta;

    /// `take_due` returns the picked due timers in key order, removes only those, and leaves
    /// every other timer (due or not) at its deadline.
    #[test]
    fn takes_only_the_picked_due_timers() {
        let t0 = Timestamp::from_secs(1_000);
        let at = |ms| t0 + TimeDelta::from_millis(ms);
        let mut d: Deadlines<(u8, u32)> = Deadlines::new();
        d.set((1, 9), at(5));
        d.set((2, 1), at(1));
        d.set((1, 3), at(10));
        d.set((1, 4), at(2));
        d.set((2, 7), at(30));
        d.set((1, 8), at(30));
        let picked = take_due(&mut d, at(10), |&(kind, n)| (kind == 1).then_some(n));
        assert_eq!(picked, [3, 4, 9]);
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(&(2, 1)), Some(at(1)));
        assert_eq!(d.get(&(2, 7)), Some(at(30)));
        assert_eq!(d.get(&(1, 8)), Some(at(30)));
        assert_eq!(d.next(), Some(at(1)));
        assert_eq!(d.due(at(10)).collect::<Vec<_>>(), [(at(1), (2, 1))]);
        let rest = take_due(&mut d, at(10), |&(kind, n)| (kind == 2).then_some(n));
        assert_eq!(rest, [1]);
        assert_eq!(d.next(), Some(at(30)));
    }
}
