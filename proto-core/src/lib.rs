//! # hearsay-proto
//!
//! The sans-IO protocol core of hearsay, a post-quantum gossip overlay. Everything here is a
//! deterministic state machine: it never reads a clock, opens a socket, spawns a thread or asks
//! the OS for randomness. A driver (the tokio runtime, the simulator, or your own event loop)
//! feeds a [`Node`] inputs — frames from peers, connection events, commands, the passage of time
//! — and drains its outputs: frames to send, peers to dial or drop, events for the application,
//! and the instant at which it wants to be woken.
//!
//! ```
//! use hearsay_proto::{Config, Identity, IdentitySeeds, Node, Timestamp};
//! use rand_core::SeedableRng;
//!
//! let config = Config::default();
//! let mut rng = chacha20::ChaCha8Rng::from_seed([1; 32]);
//! let identity = Identity::from_seeds(&*config.crypto, IdentitySeeds::generate(&mut rng));
//! let now = Timestamp::from_secs(1_800_000_000);
//! let mut node = Node::new(config, identity, 42, now).unwrap();
//! // ... node.handle_connected(now, peer); node.handle_frame(now, peer, bytes); ...
//! while let Some(_transmit) = node.poll_transmit() { /* send it */ }
//! while let Some(_event) = node.poll_event() { /* tell the application */ }
//! let _wake_at = node.poll_timeout();
//! ```
//!
//! SPEC.md in the repository is the normative description of the protocol.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

extern crate alloc;
#[cfg(test)]
extern crate std;

// The layers, bottom to top; a module imports only from layers below it (CI checks it):
// time, id, wire (the codec), machine (the state-machine contract) → crypto → identity → membership → antientropy → broadcast →
// privacy, discovery → frame (gathers every protocol's message) → node.
pub mod antientropy;
pub mod broadcast;
pub mod crypto;
pub mod discovery;
pub mod frame;
pub mod id;
pub mod identity;
pub mod machine;
pub mod membership;
pub mod node;
pub mod privacy;
pub mod score;
pub mod testing;
pub mod time;
pub mod wire;

pub use crypto::{CryptoProvider, PureRustProvider, default_provider};
pub use frame::Frame;
pub use id::{MessageId, PeerId, TopicId};
pub use identity::record::{Address, PeerRecord, RecordError};
pub use identity::{Identity, IdentitySeeds};
pub use membership::group::AddressGroup;
pub use node::{
    Command, Config, Contact, DownReason, Event, Node, NodeError, PersistentState, Transmit,
};
pub use time::{TimeDelta, Timestamp};
pub use wire::{DecodeError, MAX_FRAME_LEN};
