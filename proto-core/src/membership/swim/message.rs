//! SWIM's messages (frame kind 2) and the membership updates they carry.

use crate::crypto::SignatureBytes;
use crate::id::PeerId;
use crate::wire::BoundedVec;
use minicbor::{Decode, Encode};

/// Most membership updates piggybacked on one frame.
pub const MAX_UPDATES: usize = 8;
/// Most peers in a view carried by an ack.
pub const MAX_VIEW: usize = 16;
/// Domain of the signed ALIVE claim (SPEC.md §3).
pub const ALIVE_DOMAIN: &str = "hearsay/v1/alive";

/// A membership update carried on SWIM frames.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Update {
    /// `peer` claims to be alive at `incarnation`, signed by `peer` itself.
    #[n(0)]
    Alive {
        /// Who.
        #[n(0)]
        peer: PeerId,
        /// Its incarnation.
        #[n(1)]
        incarnation: u64,
        /// ML-DSA-65 over `signing_input(ALIVE_DOMAIN, peer ‖ incarnation)`.
        #[n(2)]
        signature: SignatureBytes,
    },
    /// `by` suspects `peer` at `incarnation` (a hint).
    #[n(1)]
    Suspect {
        /// Who.
        #[n(0)]
        peer: PeerId,
        /// The incarnation suspected.
        #[n(1)]
        incarnation: u64,
        /// The node that suspects it (its issuer; absent: the sender). Distinct issuers are
        /// the independent confirmations of Lifeguard's suspicion timeout; not authenticated.
        #[n(2)]
        by: Option<PeerId>,
    },
    /// The sender declared `peer` dead at `incarnation` (a hint).
    #[n(2)]
    Dead {
        /// Who.
        #[n(0)]
        peer: PeerId,
        /// The incarnation declared dead.
        #[n(1)]
        incarnation: u64,
    },
}

impl Update {
    /// What an update is remembered as seen by: its subject, incarnation and kind, and for a
    /// SUSPECT its issuer (each issuer's suspicion travels on its own, so that the suspect's
    /// neighbours hear every independent one). [`NO_ISSUER`] for the others.
    pub(super) fn key(&self) -> UpdateKey {
        match self {
            Update::Alive {
                peer, incarnation, ..
            } => (*peer, *incarnation, 0, NO_ISSUER),
            Update::Suspect {
                peer,
                incarnation,
                by,
            } => (*peer, *incarnation, 1, by.unwrap_or(NO_ISSUER)),
            Update::Dead { peer, incarnation } => (*peer, *incarnation, 2, NO_ISSUER),
        }
    }

    pub(super) fn peer(&self) -> PeerId {
        self.key().0
    }
}

/// (subject, incarnation, kind: 0 ALIVE, 1 SUSPECT, 2 DEAD, issuer).
pub(super) type UpdateKey = (PeerId, u64, u8, PeerId);

/// The issuer slot of keys that have none.
pub(super) const NO_ISSUER: PeerId = PeerId::from_bytes([0; 32]);

/// The bytes an ALIVE signature covers (before the domain prefix).
pub fn alive_body(peer: &PeerId, incarnation: u64) -> [u8; 40] {
    let mut b = [0u8; 40];
    let (id, inc) = b.split_at_mut(32);
    id.copy_from_slice(peer.as_bytes());
    inc.copy_from_slice(&incarnation.to_be_bytes());
    b
}

/// An update on its way: `hops` is how many more times its receiver may pass it on.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Gossip {
    /// The news.
    #[n(0)]
    pub update: Update,
    /// Further forwards allowed.
    #[n(1)]
    pub hops: u8,
}

/// Updates on one frame.
pub type Updates = BoundedVec<Gossip, MAX_UPDATES>;

/// SWIM messages (frame kind 2).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Message {
    /// Are you there?
    #[n(0)]
    Ping {
        /// Probe number, echoed in the ack.
        #[n(0)]
        seq: u64,
        /// Ask the target to include its active view in the ack.
        #[n(1)]
        want_view: bool,
        /// Piggybacked updates.
        #[n(2)]
        updates: Updates,
        /// The sender's latest round-trip sample on this link (µs; SPEC.md §15.4), filled in
        /// by the node: with paired probing only one end pings, and this gives the other end
        /// the same samples. Omitted when none is new.
        #[n(3)]
        rtt_us: Option<u32>,
    },
    /// I am.
    #[n(1)]
    Ack {
        /// The ping's number.
        #[n(0)]
        seq: u64,
        /// The sender's active view, when asked for.
        #[n(1)]
        view: Option<BoundedVec<PeerId, MAX_VIEW>>,
        /// Piggybacked updates.
        #[n(2)]
        updates: Updates,
    },
    /// Please ping `target` for me.
    #[n(2)]
    PingReq {
        /// The requester's probe number.
        #[n(0)]
        seq: u64,
        /// Whom to ping.
        #[n(1)]
        target: PeerId,
    },
    /// `target` answered your PING_REQ `seq`.
    #[n(3)]
    IndirectAck {
        /// The requester's probe number.
        #[n(0)]
        seq: u64,
        /// Who answered.
        #[n(1)]
        target: PeerId,
    },
    /// I could not reach `target` for your PING_REQ `seq`.
    #[n(4)]
    Nack {
        /// The requester's probe number.
        #[n(0)]
        seq: u64,
        /// Whom.
        #[n(1)]
        target: PeerId,
    },
}
