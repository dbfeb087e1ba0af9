use crate::id::PeerId;
use crate::identity::record::Addresses;
use crate::wire::BoundedVec;
use minicbor::{Decode, Encode};

/// Most entries a SHUFFLE or SHUFFLE_REPLY may carry.
pub const MAX_SHUFFLE_NODES: usize = 32;

/// What is needed to dial a peer: its id and addresses. Never a full record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct PeerInfo {
    /// The peer.
    #[n(0)]
    pub peer: PeerId,
    /// Where to reach it.
    #[n(1)]
    pub addresses: Addresses,
}

/// Priority of a NEIGHBOR request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum Priority {
    /// Accept only if the active view has room.
    #[n(0)]
    Low,
    /// Always accept (the requester has no active peer, or is re-merging).
    #[n(1)]
    High,
}

/// HyParView messages (frame kind 1).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Message {
    /// "Add me": sent by a joining node to its contact.
    #[n(0)]
    Join,
    /// A random walk announcing a joining node.
    #[n(1)]
    ForwardJoin {
        /// The joining node.
        #[n(0)]
        node: PeerInfo,
        /// Remaining hops.
        #[n(1)]
        ttl: u8,
    },
    /// "Make me one of your active peers."
    #[n(2)]
    Neighbor {
        /// How insistent.
        #[n(0)]
        priority: Priority,
    },
    /// The answer to NEIGHBOR.
    #[n(3)]
    NeighborReply {
        /// Whether the sender added the requester to its active view.
        #[n(0)]
        accepted: bool,
    },
    /// "You are no longer in my active view" (the sender keeps running: keep it as passive).
    #[n(4)]
    Disconnect,
    /// A random walk carrying a sample of the origin's views.
    #[n(5)]
    Shuffle {
        /// Who started the walk (the reply goes there).
        #[n(0)]
        origin: PeerInfo,
        /// Remaining hops.
        #[n(1)]
        ttl: u8,
        /// The sample.
        #[n(2)]
        nodes: BoundedVec<PeerInfo, MAX_SHUFFLE_NODES>,
    },
    /// The walk's end answers with a sample of its passive view (over a connection it already
    /// has to the origin).
    #[n(6)]
    ShuffleReply {
        /// The sample.
        #[n(0)]
        nodes: BoundedVec<PeerInfo, MAX_SHUFFLE_NODES>,
    },
    /// A SHUFFLE_REPLY travelling back along the walk, hop by hop, to `origin` (the walk's end
    /// has no connection to the origin; none is opened for it).
    #[n(7)]
    ShuffleBack {
        /// Who started the walk.
        #[n(0)]
        origin: PeerId,
        /// The sample.
        #[n(1)]
        nodes: BoundedVec<PeerInfo, MAX_SHUFFLE_NODES>,
    },
    /// The node-level overlay's component root, as one active neighbour passes it to another
    /// (island merging, SPEC.md §13.6; topic overlays carry theirs in topic frames).
    #[n(8)]
    Beacon {
        /// The beacon.
        #[n(0)]
        beacon: crate::membership::tree::RootBeacon,
    },
    /// "My component's root is `root`": a peer that follows another root becomes the sender's
    /// active neighbour, as for a NEIGHBOR of high priority, and both answer with
    /// NEIGHBOR_REPLY (accepted only then), so two islands fuse.
    #[n(9)]
    Probe {
        /// The root the sender follows.
        #[n(0)]
        root: PeerId,
    },
}
