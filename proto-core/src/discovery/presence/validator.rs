use super::*;
use crate::broadcast::message::{MessageError, SignedMessage};
use crate::broadcast::plumtree::Validator;
use crate::crypto::VerifyingKeyBytes;
use crate::id::PeerId;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

/// The presence topic's [`Validator`], run by every relay of the topic before it forwards a
/// beacon. Relays are members (nobody else knows the topic), so it makes the full check: the
/// tag and author of the beacon's epoch (taken from the message's timestamp, which the
/// broadcast layer already checked against its retention window and clock skew), the outer
/// signature, decryption, and the member's signature. Refusals are counted in the owning
/// [`Presence`]'s [`Counters::relay_rejected`].
#[derive(Clone)]
pub struct PresenceValidator {
    pub(super) group: Arc<Group>,
    /// Author ids of the epochs known when the validator was made.
    pub(super) authors: Vec<(u64, PeerId)>,
    /// Beacons of earlier epochs are refused as stale.
    pub(super) oldest_epoch: u64,
    pub(super) counters: Arc<RelayCounters>,
}

impl fmt::Debug for PresenceValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceValidator")
            .field("topic", &self.group.topic)
            .field("oldest_epoch", &self.oldest_epoch)
            .field("epochs", &self.authors.len())
            .finish_non_exhaustive()
    }
}

impl PresenceValidator {
    /// The full check, with the precise refusal.
    pub fn check(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), PresenceError> {
        let group = &*self.group;
        let sealed = decode_sealed(&group.topic, message)?;
        let epoch = group.epoch_of(message.timestamp);
        if epoch < self.oldest_epoch {
            return Err(PresenceError::StaleEpoch {
                epoch,
                oldest: self.oldest_epoch,
            });
        }
        let (tag, key) = group.tag_and_key(epoch);
        if sealed.tag.as_bytes() != tag.as_slice() {
            return Err(PresenceError::WrongTag);
        }
        // The author check needs the epoch's key pair: known for the epochs around the one the
        // validator was made in, derived (one key generation) otherwise; only after the tag
        // check, so that only beacons made with the group secret can cost that.
        let author = match self.authors.iter().find(|(e, _)| *e == epoch) {
            Some((_, a)) => *a,
            None => group.author_id(epoch),
        };
        if message.author != author {
            return Err(PresenceError::WrongAuthor);
        }
        message
            .verify(&*group.provider, author_key)
            .map_err(|_| PresenceError::OuterSignature)?;
        let opened = open_beacon(&group.topic, message, &sealed, epoch, &key)?;
        verify_inner(&*group.provider, &group.topic, &opened)
    }
}

impl Validator for PresenceValidator {
    fn validate(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), MessageError> {
        match self.check(message, author_key) {
            Ok(()) => {
                RelayCounters::bump(&self.counters.accepted);
                Ok(())
            }
            Err(e) => {
                self.counters.reject(&e);
                Err(e.to_message_error())
            }
        }
    }
}
