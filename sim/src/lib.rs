//! # hearsay-sim
//!
//! A deterministic network simulator for hearsay: real `hearsay_proto::Node`s, driven only
//! through their public handle/poll surface (the calls the tokio runtime makes), over simulated
//! links in virtual time. Same seed, same trace.
//!
//! This crate currently holds the discrete-event [`Scheduler`] and a fixed-latency [`Network`]
//! that connects nodes, carries their frames and fires their timers. Scenario files, the link
//! model with faults, metrics and reports arrive with issue B.

mod network;
mod scheduler;

pub use network::{Network, NodeIndex, SimEvent};
pub use scheduler::Scheduler;

use hearsay_proto::Timestamp;

/// The simulator's virtual clock starts here: 2027-01-15T08:00:00Z.
pub const SIM_EPOCH: Timestamp = Timestamp::from_secs(1_800_000_000);
