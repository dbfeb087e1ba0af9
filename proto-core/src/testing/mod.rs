//! The test harness the core's tests, the benchmarks and the fuzz targets share (feature
//! `testing`; never needed by a node). no_std + alloc like the rest of the core, and as
//! deterministic: every identity, rng, drop and delivery order follows from the numbers given.
//!
//! - fixed times: [`T0`], [`HOUR`], [`at`];
//! - identities and nodes, by number: [`identity`], [`identity_with`], [`node`],
//!   [`node_with`], [`rng`], [`record`], [`fake_peer`], [`fake_id`] (and, with the
//!   `insecure-test-crypto` feature, `insecure_identity` and `insecure_config`);
//! - frames and messages built by hand: [`topic`], [`encode`], [`hello`], [`broadcast`],
//!   [`topic_join`], [`signed`], [`unsigned`], [`payload`], [`ihave`], [`hex`];
//! - [`Net`]: N nodes wired in memory, delivering in order until quiet, with cuts
//!   (partitions), seeded loss and virtual time; [`Net::pair`] is two connected nodes;
//! - [`Victim`]: one node and the hostile peers the test speaks for, sending it any frame or
//!   bytes; its outputs are kept for the test to inspect.
//!
//! ```
//! use hearsay_proto::testing::{Net, node, T0};
//! use hearsay_proto::TimeDelta;
//!
//! // Node 1 joins through node 0; the frames go back and forth until both are quiet.
//! let mut net = Net::pair(node(1), node(2));
//! assert_eq!(net.neighbors(0), vec![net.id(1)]);
//! // Node 1's frames to node 0 are dropped from now on; a minute of timers runs.
//! net.cut_one_way(1, 0);
//! net.advance(TimeDelta::from_secs(60));
//! assert_eq!(net.now, T0 + TimeDelta::from_secs(60));
//! ```
#![cfg(feature = "testing")]
// A harness fails loudly: a setup that does not work is a broken test, not an error to handle.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod frames;
mod identities;
mod net;
mod time;
mod victim;

pub use frames::{
    broadcast, encode, hello, hex, ihave, payload, signed, topic, topic_join, unsigned,
};
pub use identities::{fake_id, fake_peer, identity, identity_with, node, node_with, record, rng};
#[cfg(feature = "insecure-test-crypto")]
pub use identities::{insecure_config, insecure_identity};
pub use net::{Net, NetCounters};
pub use time::{HOUR, T0, at};
pub use victim::Victim;

#[cfg(test)]
mod tests;
