//! # hearsay-sim
//!
//! A deterministic network simulator for hearsay: real `hearsay_proto::Node`s, driven only
//! through their public handle/poll surface (the calls the tokio runtime makes), over simulated
//! links in virtual time. Same seed, same trace.
//!
//! - [`scenario`]: the scenario file format (the contract in `sim/scenarios/README.md`);
//! - [`world`]: nodes, QUIC-like connections, the link model (latency, loss, duplication,
//!   reordering, partitions) and node faults (crash, hang, restart, leave, Byzantine plug-ins);
//! - [`metrics`] and [`report`]: the contract's metrics, JSON, a terminal table and an HTML page;
//! - [`run`]: running a scenario, and `Sim::builder()` for scenarios written in code.

pub mod broadcast;
pub mod byzantine;
pub mod crypto;
pub mod discovery;
pub mod fastmap;
pub mod intern;
pub mod metrics;
pub mod report;
pub mod rss;
pub mod run;
pub mod scenario;
mod scheduler;
pub mod world;

pub use scheduler::Scheduler;

use hearsay_proto::Timestamp;

/// The simulator's virtual clock starts here: 2027-01-15T08:00:00Z.
pub const SIM_EPOCH: Timestamp = Timestamp::from_secs(1_800_000_000);
