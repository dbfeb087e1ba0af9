//! Membership: who a node is connected to, and who is still alive.
//!
//! - [`hyparview`]: the overlay's views (a small active view of neighbours, a larger passive
//!   view of remembered peers), join, forward-join, shuffle and healing (SPEC.md §13);
//! - [`swim`]: failure detection over the active view (SWIM with Lifeguard, SPEC.md §14).
//!
//! The node feeds SWIM's verdicts to HyParView, which replaces the dead.

pub mod hyparview;
pub mod swim;

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
