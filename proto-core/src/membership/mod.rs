//! Membership: who a node is connected to, and who is still alive.
//!
//! - [`hyparview`]: the overlay's views (a small active view of neighbours, a larger passive
//!   view of remembered peers), join, forward-join, shuffle and healing (SPEC.md §13);
//! - [`swim`]: failure detection over the active view (SWIM with Lifeguard, SPEC.md §14).
//!
//! The node feeds SWIM's verdicts to HyParView, which replaces the dead.

pub mod hyparview;
pub mod swim;

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
    let mut picked = Vec::new();
    let mut others = Vec::new();
    while let Some((at, key)) = deadlines.pop_due(now) {
        match pick(&key) {
            Some(t) => picked.push(t),
            None => others.push((at, key)),
        }
    }
    for (at, key) in others {
        deadlines.set(key, at);
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
}
