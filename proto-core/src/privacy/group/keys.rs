use super::*;
use crate::crypto::{
    CryptoProvider, Decapsulator, EncapsulationKeyBytes, KEM_SEED_LEN, SignatureBytes,
    VerifyingKeyBytes, signing_input,
};
use crate::id::PeerId;
use crate::identity::Identity;
use crate::privacy::envelope::{self, Content, EnvelopeError, Sealed};
use crate::wire::codec::{self, BoundedVec, FixedBytes};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Encode};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// A shard's secret for one epoch, wiped when dropped; its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct ShardSecret(Zeroizing<[u8; SHARD_SECRET_LEN]>);

impl ShardSecret {
    /// Draws a fresh secret from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; SHARD_SECRET_LEN]);
        rng.fill_bytes(secret.as_mut());
        Self(secret)
    }

    /// Wraps 32 secret bytes (e.g. read back from a keystore).
    pub fn from_bytes(bytes: [u8; SHARD_SECRET_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes (for a keystore).
    pub fn as_bytes(&self) -> &[u8; SHARD_SECRET_LEN] {
        &self.0
    }

    /// The 64-byte ML-KEM-768 seed of shard `shard` of `group` at `epoch`:
    /// BLAKE3-derive([`SHARD_KEY_CONTEXT`], group ‖ shard (u32 BE) ‖ epoch (u64 BE) ‖ secret),
    /// in BLAKE3's extendable-output mode.
    pub fn seed(
        &self,
        group: &GroupId,
        shard: ShardIndex,
        epoch: u64,
    ) -> Zeroizing<[u8; KEM_SEED_LEN]> {
        let mut h = blake3::Hasher::new_derive_key(SHARD_KEY_CONTEXT);
        h.update(group.as_bytes());
        h.update(&shard.to_be_bytes());
        h.update(&epoch.to_be_bytes());
        h.update(self.0.as_ref());
        let mut seed = Zeroizing::new([0u8; KEM_SEED_LEN]);
        h.finalize_xof().fill(seed.as_mut());
        seed
    }

    /// The shard's encapsulation key for this secret.
    pub fn encapsulation_key(
        &self,
        provider: &dyn CryptoProvider,
        group: &GroupId,
        shard: ShardIndex,
        epoch: u64,
    ) -> EncapsulationKeyBytes {
        provider
            .decapsulator_from_seed(&self.seed(group, shard, epoch))
            .encapsulation_key()
            .clone()
    }
}

impl fmt::Debug for ShardSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShardSecret(<secret>)")
    }
}

/// A shard's key pair at one epoch, expanded from its secret: what a member opens group
/// messages with.
pub struct ShardKey {
    pub(super) group: GroupId,
    pub(super) shard: ShardIndex,
    pub(super) epoch: u64,
    pub(super) decapsulator: Box<dyn Decapsulator>,
}

impl ShardKey {
    /// Expands `secret` into the key pair of shard `shard` of `group` at `epoch`.
    pub fn derive(
        provider: &dyn CryptoProvider,
        group: GroupId,
        shard: ShardIndex,
        epoch: u64,
        secret: &ShardSecret,
    ) -> Self {
        let decapsulator = provider.decapsulator_from_seed(&secret.seed(&group, shard, epoch));
        Self {
            group,
            shard,
            epoch,
            decapsulator,
        }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The shard.
    pub fn shard(&self) -> ShardIndex {
        self.shard
    }

    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The shard's encapsulation key at this epoch.
    pub fn encapsulation_key(&self) -> &EncapsulationKeyBytes {
        self.decapsulator.encapsulation_key()
    }

    /// The decapsulation key.
    pub fn decapsulator(&self) -> &dyn Decapsulator {
        &*self.decapsulator
    }
}

impl fmt::Debug for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardKey")
            .field("group", &self.group)
            .field("shard", &self.shard)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// A shard's secret for one epoch, sealed to (some of) the shard's members and signed by an
/// admin: how members learn a shard secret (a "rekey" when sent to the whole shard after a
/// rotation, a "welcome" when sent to a newcomer).
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct KeyPackage {
    /// The group.
    #[n(0)]
    pub group: GroupId,
    /// The shard.
    #[n(1)]
    pub shard: ShardIndex,
    /// The epoch whose secret this carries.
    #[n(2)]
    pub epoch: u64,
    /// The envelope content: the 32-byte secret under a fresh content key, with its tag.
    #[n(3)]
    pub content: FixedBytes<PACKAGE_CONTENT_LEN>,
    /// One envelope slot per recipient (SPEC.md §17.1), shuffled, no ids.
    #[n(4)]
    pub slots: PackageSlots,
    /// The admin who issued it.
    #[n(5)]
    pub signer: PeerId,
    /// The admin's ML-DSA-65 verifying key.
    #[n(6)]
    pub signer_key: VerifyingKeyBytes,
    /// ML-DSA-65 over [`KeyPackage::signed_bytes`].
    #[n(7)]
    pub signature: SignatureBytes,
}

impl KeyPackage {
    /// Seals `secret`, the secret of `shard` of `group` at its current epoch, to `recipients`
    /// (encapsulation keys of the shard's members) and signs it as `admin`. Checks that `admin`
    /// is an admin of `group` and that `secret` gives the shard's current key.
    pub fn issue<R: CryptoRng + ?Sized>(
        provider: &dyn CryptoProvider,
        admin: &Identity,
        group: &Group,
        shard: ShardIndex,
        secret: &ShardSecret,
        recipients: &[EncapsulationKeyBytes],
        rng: &mut R,
    ) -> Result<Self, GroupError> {
        group.check_admin(&admin.peer_id())?;
        let current = group
            .shard(shard)
            .ok_or(GroupError::UnknownShard { shard })?;
        if secret.encapsulation_key(provider, &group.id, shard, current.epoch) != current.key {
            return Err(GroupError::KeyMismatch);
        }
        if recipients.len() > MAX_SHARD_SIZE {
            return Err(GroupError::Envelope(EnvelopeError::TooManyRecipients {
                recipients: recipients.len(),
                max: MAX_SHARD_SIZE,
            }));
        }
        let sealed = envelope::seal(provider, recipients, secret.as_bytes(), rng)
            .map_err(GroupError::Envelope)?;
        let mut package = KeyPackage {
            group: group.id,
            shard,
            epoch: current.epoch,
            content: FixedBytes::new(sealed.content.to_bytes()).map_err(GroupError::Decode)?,
            slots: PackageSlots::new(sealed.slots.into_vec()).map_err(GroupError::Decode)?,
            signer: admin.peer_id(),
            signer_key: admin.verifying_key().clone(),
            signature: placeholder_signature(),
        };
        let signed = package.signed_bytes()?;
        package.signature = admin
            .signer()
            .sign(&signed)
            .map_err(|_| GroupError::SigningFailed)?;
        Ok(package)
    }

    /// The exact bytes the signature covers: `signing_input(GROUP_KEY_DOMAIN, group ‖ shard
    /// (u32 BE) ‖ epoch (u64 BE) ‖ signer ‖ BLAKE3(content) ‖ BLAKE3(CBOR(slots)))`.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, GroupError> {
        let slots = codec::to_vec(&self.slots).map_err(GroupError::Encode)?;
        let mut body = Vec::with_capacity(32 + 4 + 8 + 32 + 32 + 32);
        body.extend_from_slice(self.group.as_bytes());
        body.extend_from_slice(&self.shard.to_be_bytes());
        body.extend_from_slice(&self.epoch.to_be_bytes());
        body.extend_from_slice(self.signer.as_bytes());
        body.extend_from_slice(blake3::hash(&self.content).as_bytes());
        body.extend_from_slice(blake3::hash(&slots).as_bytes());
        Ok(signing_input(GROUP_KEY_DOMAIN, &body))
    }

    /// Checks that `signer_key` is the signer's and that the signature verifies (nothing about
    /// the group: see [`Group::check_package`]).
    pub fn verify(&self, provider: &dyn CryptoProvider) -> Result<(), GroupError> {
        if PeerId::from_verifying_key(&self.signer_key) != self.signer {
            return Err(GroupError::WrongKey);
        }
        let signed = self.signed_bytes()?;
        if !provider.verify(&self.signer_key, &signed, &self.signature) {
            return Err(GroupError::BadSignature);
        }
        Ok(())
    }

    /// The package as an envelope (its content and slots).
    pub fn sealed(&self) -> Result<Sealed, GroupError> {
        Ok(Sealed {
            content: Content::new(self.content.to_bytes()).map_err(GroupError::Decode)?,
            slots: BoundedVec::new(self.slots.to_vec()).map_err(GroupError::Decode)?,
        })
    }

    /// Finds `me`'s slot by trial decapsulation (as an envelope, SPEC.md §17.3) and returns the
    /// shard secret. Does not verify the package: use [`Group::open_package`], which also
    /// checks the signer and that the secret gives the shard's key.
    pub fn open(&self, me: &dyn Decapsulator) -> Result<ShardSecret, GroupError> {
        let plaintext = envelope::open(&self.sealed()?, me).map_err(GroupError::Envelope)?;
        let bytes = <[u8; SHARD_SECRET_LEN]>::try_from(plaintext.as_slice())
            .map_err(|_| GroupError::Envelope(EnvelopeError::Corrupt))?;
        Ok(ShardSecret::from_bytes(bytes))
    }

    /// Encodes the package.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GroupError> {
        encode_within(self, MAX_PACKAGE_LEN)
    }

    /// Decodes a package (without verifying it); more than [`MAX_PACKAGE_LEN`] bytes are
    /// refused before parsing, more than [`MAX_SHARD_SIZE`] slots on the list's header.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GroupError> {
        decode_within(bytes, MAX_PACKAGE_LEN)
    }
}

impl fmt::Debug for KeyPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPackage")
            .field("group", &self.group)
            .field("shard", &self.shard)
            .field("epoch", &self.epoch)
            .field("slots", &self.slots.len())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// Seals `plaintext` to `group`: one envelope slot per non-empty shard, to the shard's current
/// key (SPEC.md §17.2). Any member opens it with its shard's key ([`open_as_member`]).
pub fn seal_to_group<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    group: &Group,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Sealed, GroupError> {
    envelope::seal(provider, &group.sealing_keys(), plaintext, rng).map_err(GroupError::Envelope)
}

/// Opens a group message with a shard key (from [`Group::open_package`]). A key of another
/// shard or of an earlier epoch finds no slot: `Envelope(NotARecipient)`.
pub fn open_as_member(sealed: &Sealed, key: &ShardKey) -> Result<Zeroizing<Vec<u8>>, GroupError> {
    envelope::open(sealed, key.decapsulator()).map_err(GroupError::Envelope)
}

/// A member's shard keys over several epochs, so messages sealed before a rotation still open.
/// Bounded: when full, the key inserted first is dropped.
#[derive(Debug)]
pub struct Keyring {
    pub(super) keys: VecDeque<ShardKey>,
    pub(super) capacity: usize,
}

impl Keyring {
    /// An empty keyring holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            keys: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds `key`, replacing a key of the same group, shard and epoch, dropping the oldest when
    /// full.
    pub fn insert(&mut self, key: ShardKey) {
        self.keys
            .retain(|k| (k.group, k.shard, k.epoch) != (key.group, key.shard, key.epoch));
        while self.keys.len() >= self.capacity {
            self.keys.pop_front();
        }
        self.keys.push_back(key);
    }

    /// The keys, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &ShardKey> {
        self.keys.iter()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Opens a group message with the newest key that has a slot in it.
    pub fn open(&self, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, GroupError> {
        for key in self.keys.iter().rev() {
            match envelope::open_key(sealed, key.decapsulator()) {
                Ok(content_key) => {
                    return envelope::open_with_key(sealed, &content_key)
                        .map_err(GroupError::Envelope);
                }
                Err(EnvelopeError::NotARecipient) => continue,
                Err(e) => return Err(GroupError::Envelope(e)),
            }
        }
        Err(GroupError::Envelope(EnvelopeError::NotARecipient))
    }
}
