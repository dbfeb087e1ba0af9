use super::*;
use crate::crypto::{CryptoProvider, KEM_SEED_LEN, SIG_SEED_LEN, Signer};
use crate::id::{PeerId, TopicId};
use crate::identity::{Identity, IdentitySeeds};
use crate::time::{TimeDelta, Timestamp};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use zeroize::Zeroizing;

/// BLAKE3 key-derivation contexts of everything derived from a group secret (SPEC.md §19).
pub mod context {
    /// The presence topic: `BLAKE3-derive(TOPIC, secret)`.
    pub const TOPIC: &str = "hearsay 2026-11 presence topic v1";
    /// An epoch's author key seeds: 96 bytes of `BLAKE3-derive(AUTHOR, secret ‖ epoch)` (XOF):
    /// the ML-DSA-65 seed, then an ML-KEM-768 seed that is never used.
    pub const AUTHOR: &str = "hearsay 2026-11 presence author v1";
    /// An epoch's tag: the first 16 bytes of `BLAKE3-derive(TAG, secret ‖ epoch)`.
    pub const TAG: &str = "hearsay 2026-11 presence tag v1";
    /// An epoch's beacon key: `BLAKE3-derive(KEY, secret ‖ epoch)`.
    pub const KEY: &str = "hearsay 2026-11 presence key v1";
}

/// The presence topic of the group whose secret is `secret`.
pub fn presence_topic(secret: &[u8; 32]) -> TopicId {
    TopicId::from_bytes(blake3::derive_key(context::TOPIC, secret))
}

/// What every member derives from the group secret, shared with the validators.
pub(super) struct Group {
    pub(super) secret: Zeroizing<[u8; 32]>,
    pub(super) topic: TopicId,
    pub(super) epoch_length: TimeDelta,
    pub(super) provider: Arc<dyn CryptoProvider>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("topic", &self.topic)
            .field("epoch_length", &self.epoch_length)
            .finish_non_exhaustive()
    }
}

impl Group {
    pub(super) fn epoch_of(&self, t: Timestamp) -> u64 {
        t.as_micros()
            .checked_div(self.epoch_length.as_micros())
            .unwrap_or(0)
    }

    pub(super) fn epoch_start(&self, epoch: u64) -> Timestamp {
        Timestamp::from_micros(epoch.saturating_mul(self.epoch_length.as_micros()))
    }

    pub(super) fn derive(&self, context: &str, epoch: u64, out: &mut [u8]) {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(self.secret.as_ref());
        h.update(&epoch.to_be_bytes());
        h.finalize_xof().fill(out);
    }

    /// The epoch's author seeds (ML-DSA-65, then an unused ML-KEM-768 seed).
    pub(super) fn author_seeds(&self, epoch: u64) -> IdentitySeeds {
        let mut both = Zeroizing::new([0u8; SIG_SEED_LEN + KEM_SEED_LEN]);
        self.derive(context::AUTHOR, epoch, both.as_mut());
        IdentitySeeds::from_bytes(&both)
    }

    /// The epoch's author identity (an ML-DSA-65 key generation: ~1 ms).
    pub(super) fn author_identity(&self, epoch: u64) -> Identity {
        Identity::from_seeds(&*self.provider, self.author_seeds(epoch))
    }

    /// The epoch's author id only (an ML-DSA-65 key generation, no ML-KEM).
    pub(super) fn author_id(&self, epoch: u64) -> PeerId {
        let seeds = self.author_seeds(epoch);
        let signer: Box<dyn Signer> = self.provider.signer_from_seed(&seeds.signing);
        PeerId::from_verifying_key(signer.verifying_key())
    }

    /// The epoch's tag and key, and its author's id.
    pub(super) fn epoch_keys(&self, epoch: u64) -> EpochKeys {
        let mut tag = [0u8; TAG_LEN];
        self.derive(context::TAG, epoch, &mut tag);
        let mut key = Zeroizing::new([0u8; 32]);
        self.derive(context::KEY, epoch, key.as_mut());
        EpochKeys {
            tag,
            key,
            author: self.author_id(epoch),
        }
    }

    /// The tag and key without the author (cheap: two BLAKE3 calls).
    pub(super) fn tag_and_key(&self, epoch: u64) -> ([u8; TAG_LEN], Zeroizing<[u8; 32]>) {
        let mut tag = [0u8; TAG_LEN];
        self.derive(context::TAG, epoch, &mut tag);
        let mut key = Zeroizing::new([0u8; 32]);
        self.derive(context::KEY, epoch, key.as_mut());
        (tag, key)
    }
}

/// One epoch's public and secret material.
#[derive(Clone)]
pub(super) struct EpochKeys {
    pub(super) tag: [u8; TAG_LEN],
    pub(super) key: Zeroizing<[u8; 32]>,
    pub(super) author: PeerId,
}
