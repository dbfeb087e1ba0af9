//! Plumtree's messages (inside frame kind 3, per topic): payloads pushed along the tree or sent
//! as repairs, and the IHAVE, GRAFT, PRUNE and IWANT that keep the tree and repair it.

use crate::broadcast::message::SignedMessage;
use crate::crypto::VerifyingKeyBytes;
use crate::id::MessageId;
use crate::wire::BoundedVec;
use minicbor::{Decode, Encode};

/// Most ids in one IHAVE, GRAFT or IWANT.
pub const MAX_IDS: usize = 64;

/// A message and what a receiver needs to check it: the author's verifying key (a relay cannot
/// be assumed to know every author) and the hop count at which the receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Payload {
    /// The message as its author signed it.
    #[n(0)]
    pub message: SignedMessage,
    /// The author's ML-DSA-65 verifying key (its hash is the author's id).
    #[n(1)]
    pub author_key: VerifyingKeyBytes,
    /// Hops from the author to the receiver of this frame (1 for the author's own sends).
    #[n(2)]
    pub hops: u8,
}

/// One announced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Announcement {
    /// The message.
    #[n(0)]
    pub id: MessageId,
    /// Hops at which the receiver would get it from the announcer.
    #[n(1)]
    pub hops: u8,
}

/// Plumtree messages (inside frame kind 3, per topic).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Message {
    /// Eager push of a message along the tree.
    #[n(0)]
    Gossip(#[n(0)] Payload),
    /// Lazy announcement of messages the sender holds.
    #[n(1)]
    IHave(#[n(0)] BoundedVec<Announcement, MAX_IDS>),
    /// "Make this link eager again, and send me these messages."
    #[n(2)]
    Graft(#[n(0)] BoundedVec<MessageId, MAX_IDS>),
    /// "Stop pushing to me on this link; announcements are enough."
    #[n(3)]
    Prune,
    /// "Send me these messages" (anti-entropy: the link's role does not change).
    #[n(4)]
    IWant(#[n(0)] BoundedVec<MessageId, MAX_IDS>),
    /// A message sent in answer to IWANT, or pushed by reconciliation: accepted like a Gossip,
    /// but a duplicate does not prune the link.
    #[n(5)]
    Repair(#[n(0)] Payload),
}
