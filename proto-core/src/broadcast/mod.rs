//! Broadcast per topic: signed messages, the Plumtree tree that spreads them, the root beacons
//! that shape the tree, and the topic that composes a per-topic overlay with its tree and its
//! anti-entropy (SPEC.md §15).
//!
//! - [`message`]: published messages, their ids, signatures and the seen cache (§15.1);
//! - [`plumtree`]: eager push along a tree, lazy IHAVE, IWANT/GRAFT, PRUNE (§15.3–15.5);
//! - [`tree`]: root beacons, which pick one root per topic and a spanning tree under it (§15.6);
//! - [`topic`]: one topic's overlay (a HyParView of its own), tree and reconciler (§15.2).

pub mod message;
pub mod plumtree;
pub mod topic;
/// Root beacons live with membership (the node-level overlay uses them too, to know its
/// component); topic overlays use them from here as before.
pub use crate::membership::tree;
