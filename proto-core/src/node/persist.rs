//! State that must survive a restart, handed out and taken back explicitly.

use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::time::Timestamp;
use crate::wire::codec::{self, BoundedVec, DecodeError, EncodeError};
use alloc::vec::Vec;
use minicbor::{Decode, Encode};

/// Most records a persistent state may carry.
pub const MAX_PERSISTED_RECORDS: usize = 1024;

/// What a node hands its driver to keep across restarts ([`Node::persistent_state`]) and takes
/// back in [`Node::restore`]. Encode it with [`PersistentState::to_bytes`] and store the bytes.
///
/// [`Node::persistent_state`]: super::Node::persistent_state
/// [`Node::restore`]: super::Node::restore
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct PersistentState {
    /// The peer this state belongs to.
    #[n(0)]
    pub owner: PeerId,
    /// How many times this identity has started; a restored node runs as boot `boot_count + 1`.
    /// Later protocols derive values that must grow across restarts (incarnations, sequence
    /// epochs) from it.
    #[n(1)]
    pub boot_count: u64,
    /// The latest `now` the node had seen when the state was taken.
    #[n(2)]
    pub saved_at: Timestamp,
    /// Verified peer records it knew: remembered peers to rejoin through. Those of
    /// `long_standing` come first.
    #[n(3)]
    pub known_records: BoundedVec<PeerRecord, MAX_PERSISTED_RECORDS>,
    /// The peers of long good standing when the state was taken (SPEC.md §13.7: tried peers,
    /// and chosen neighbours of long standing), restored as tried: a restarted node asks them
    /// first, not whoever happened to be connected at shutdown. Absent in older states.
    #[n(4)]
    pub long_standing: Option<BoundedVec<PeerId, MAX_LONG_STANDING>>,
}

/// Most peers of long standing a persistent state may name.
pub const MAX_LONG_STANDING: usize = 64;

impl PersistentState {
    /// Encodes the state for storage.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        codec::to_vec(self)
    }

    /// Decodes stored state (records are verified again by [`Node::restore`](super::Node::restore)).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::from_slice(bytes)
    }
}
