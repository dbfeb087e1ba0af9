//! Groups (SPEC.md §17.10): an audience with its own ML-KEM-768 keys, so that a message to the
//! group needs one envelope slot per *shard* instead of one per member.
//!
//! A group is the state machine of a signed, hash-chained **operation log**: the founder's
//! `Create` (version 0) fixes the [`GroupId`] and the shard size; every later [`GroupOp`]
//! (`Add`, `Remove`, `SetRole`, `Rotate`) is signed by an admin, carries the next version and the
//! hash of the operation before it, and is checked by [`Group::apply`] against the state it
//! extends. Every member replays the same log and so holds the same state.
//!
//! Members are placed in **shards** of at most `shard_size` (default
//! [`DEFAULT_SHARD_SIZE`] = 200): an add goes to the first shard with room, a removal leaves a
//! hole. Each shard has an epoch and a 32-byte *shard secret*; the shard's ML-KEM-768 key pair
//! is expanded from a seed derived from that secret, so knowing the secret is being able to open
//! the shard's slots. The log carries only the shard's encapsulation key; the secret reaches the
//! shard's members in a [`KeyPackage`] (the secret sealed with the envelope machinery to each
//! member's own encapsulation key, signed by an admin).
//!
//! Removing a member rotates its shard (new epoch, fresh secret, new key in the same signed
//! operation): the other shards are untouched, and the removed member can open neither the new
//! package nor anything sealed to the group afterwards. [`seal_to_group`] seals a message with one
//! slot per non-empty shard; [`open_as_member`] opens it with a shard key. [`Group::may_post`] is
//! the receiver's check that a message's author may post (a poster or an admin).
//!
//! Everything here is deterministic: randomness (nonces, shard secrets, encapsulation entropy)
//! comes only from the caller's RNG.

use crate::broadcast::message::MAX_PAYLOAD;
use crate::crypto::{
    CryptoProvider, Decapsulator, EncapsulationKeyBytes, KEM_SEED_LEN, SIGNATURE_LEN,
    SignatureBytes, VerifyingKeyBytes, signing_input,
};
use crate::id::PeerId;
use crate::identity::Identity;
use crate::privacy::envelope::{
    self, Content, EnvelopeError, SLOT_ENCODED_LEN, Sealed, Slot, TAG_LEN,
};
use crate::wire::MAX_FRAME_LEN;
use crate::wire::codec::{self, BoundedVec, DecodeError, EncodeError, FixedBytes};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Encode};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// Domain of group-operation signatures (SPEC.md §3, §17.9).
pub const GROUP_OP_DOMAIN: &str = "hearsay/v1/group-op";
/// Domain of key-package signatures (SPEC.md §3, §17.9).
pub const GROUP_KEY_DOMAIN: &str = "hearsay/v1/group-key";
/// BLAKE3 key-derivation context of a [`GroupId`].
pub const GROUP_ID_CONTEXT: &str = "hearsay 2026-11 group id v1";
/// BLAKE3 key-derivation context of an operation's hash (the log's chain link).
pub const OP_HASH_CONTEXT: &str = "hearsay 2026-11 group op v1";
/// BLAKE3 key-derivation context of a shard's 64-byte ML-KEM seed.
pub const SHARD_KEY_CONTEXT: &str = "hearsay 2026-11 group shard key v1";

/// Length of a shard secret.
pub const SHARD_SECRET_LEN: usize = 32;
/// The default shard size: a rekey of a full shard (one package, 200 slots, 233,802 B) fits a
/// message payload and so a frame.
pub const DEFAULT_SHARD_SIZE: usize = 200;
/// The most shards a group has: a message to the group carries at most this many slots.
pub const MAX_SHARDS: usize = 64;
/// The most members a group has (also bounded by `MAX_SHARDS × shard_size`).
pub const MAX_MEMBERS: usize = 10_000;
/// The longest encoded [`GroupOp`] accepted (the largest, an `Add` that carries a shard key at
/// a 9-byte version, is 7,791 B).
pub const MAX_OP_LEN: usize = 8192;
/// The longest encoded [`KeyPackage`]: a package travels as a message payload, so it must fit
/// [`MAX_PAYLOAD`] (the frame limit less the message overhead).
pub const MAX_PACKAGE_LEN: usize = MAX_PAYLOAD;
/// Length of a package's content: the sealed shard secret and its tag.
pub const PACKAGE_CONTENT_LEN: usize = SHARD_SECRET_LEN + TAG_LEN;

/// The encoded length of everything in a package but its slots, at the widest shard index (u32)
/// and epoch (u64): array header 1, group 2 + 32, shard 5, epoch 9, content 2 + 48, signer
/// 2 + 32, signer key 3 + 1,952, signature 3 + 3,309.
const PACKAGE_FIXED_LEN: usize = 1 + 34 + 5 + 9 + 2 + PACKAGE_CONTENT_LEN + 34 + 1955 + 3312;

/// Length of the CBOR header of an array of `n` items.
const fn cbor_header_len(n: usize) -> usize {
    if n < 24 {
        1
    } else if n < 0x100 {
        2
    } else if n < 0x1_0000 {
        3
    } else {
        5
    }
}

/// The largest encoded length of a [`KeyPackage`] with `recipients` slots (exact for the
/// widest shard index and epoch; 12 B less when both are below 24).
pub const fn package_len(recipients: usize) -> usize {
    PACKAGE_FIXED_LEN
        .saturating_add(cbor_header_len(recipients))
        .saturating_add(recipients.saturating_mul(SLOT_ENCODED_LEN))
}

const fn max_shard_size() -> usize {
    let mut n = 1;
    while package_len(n + 1) <= MAX_PACKAGE_LEN {
        n += 1;
    }
    n
}

/// The largest shard size: the most slots a [`KeyPackage`] can carry within
/// [`MAX_PACKAGE_LEN`] (217: 253,216 B; 218 would need 254,358 B).
pub const MAX_SHARD_SIZE: usize = max_shard_size();

const _: () = assert!(package_len(DEFAULT_SHARD_SIZE) <= MAX_PACKAGE_LEN);
const _: () = assert!(MAX_PACKAGE_LEN < MAX_FRAME_LEN);
const _: () = assert!(DEFAULT_SHARD_SIZE <= MAX_SHARD_SIZE);
const _: () = assert!(MAX_SHARD_SIZE <= envelope::MAX_SLOTS);
const _: () = assert!(MAX_SHARDS <= envelope::MAX_SLOTS);
const _: () = assert!(MAX_MEMBERS <= MAX_SHARDS * DEFAULT_SHARD_SIZE);

/// The slots of a key package.
pub type PackageSlots = BoundedVec<Slot, MAX_SHARD_SIZE>;

/// A shard's position in the group's shard list.
pub type ShardIndex = u32;

crate::id::id_type!(
    /// A group's identity: BLAKE3-derive([`GROUP_ID_CONTEXT`], founder `PeerId` ‖ 32-byte nonce).
    GroupId,
    "GroupId"
);
crate::id::id_type!(
    /// The hash of an operation's signed bytes: BLAKE3-derive([`OP_HASH_CONTEXT`],
    /// `signing_input(GROUP_OP_DOMAIN, …)`). Each operation names its predecessor's hash.
    OpHash,
    "OpHash"
);

impl GroupId {
    /// The id of the group founded by `founder` with `nonce`.
    pub fn derive(founder: &PeerId, nonce: &[u8; 32]) -> Self {
        let mut h = blake3::Hasher::new_derive_key(GROUP_ID_CONTEXT);
        h.update(founder.as_bytes());
        h.update(nonce);
        Self(*h.finalize().as_bytes())
    }
}

impl OpHash {
    /// The predecessor named by a `Create`: 32 zero bytes.
    pub const GENESIS: OpHash = OpHash([0; 32]);

    /// The hash of an operation whose signed bytes are `signed`.
    pub fn of_signed_bytes(signed: &[u8]) -> Self {
        Self(blake3::derive_key(OP_HASH_CONTEXT, signed))
    }
}

/// What a member may do. Every member can read (it holds its shard's secret); the role decides
/// what it may sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum Role {
    /// Reads the group's messages.
    #[n(0)]
    Viewer,
    /// Reads and posts.
    #[n(1)]
    Poster,
    /// Reads, posts, and signs operations and key packages.
    #[n(2)]
    Admin,
}

impl Role {
    /// Whether messages by a member of this role are accepted as group posts.
    pub fn may_post(self) -> bool {
        matches!(self, Role::Poster | Role::Admin)
    }
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Change {
    /// Founds the group (version 0 only). The signer becomes its first admin, alone in shard 0.
    #[n(0)]
    Create {
        /// Random: with the founder's id it gives the [`GroupId`].
        #[n(0)]
        nonce: FixedBytes<32>,
        /// The most members per shard (1 to [`MAX_SHARD_SIZE`]).
        #[n(1)]
        shard_size: u32,
        /// The founder's own encapsulation key (from its peer record).
        #[n(2)]
        founder_key: EncapsulationKeyBytes,
        /// Shard 0's encapsulation key at epoch 0.
        #[n(3)]
        shard_key: EncapsulationKeyBytes,
    },
    /// Adds a member to the first shard with room, or to a new shard when all are full.
    #[n(1)]
    Add {
        /// The new member.
        #[n(0)]
        member: PeerId,
        /// Its encapsulation key (from its peer record): key packages are sealed to it.
        #[n(1)]
        key: EncapsulationKeyBytes,
        /// Its role.
        #[n(2)]
        role: Role,
        /// Required when the add opens a new shard (its key at epoch 0); when given for an
        /// existing shard, that shard is rotated (new epoch) so the newcomer cannot read what
        /// was sealed before it joined.
        #[n(3)]
        shard_key: Option<EncapsulationKeyBytes>,
    },
    /// Removes a member and rotates its shard: `shard_key` is the shard's key at the next epoch.
    #[n(2)]
    Remove {
        /// The member removed.
        #[n(0)]
        member: PeerId,
        /// The key of the member's shard at its next epoch.
        #[n(1)]
        shard_key: EncapsulationKeyBytes,
    },
    /// Changes a member's role.
    #[n(3)]
    SetRole {
        /// The member.
        #[n(0)]
        member: PeerId,
        /// Its new role.
        #[n(1)]
        role: Role,
    },
    /// Rotates a shard: `shard_key` is its key at the next epoch.
    #[n(4)]
    Rotate {
        /// The shard.
        #[n(0)]
        shard: ShardIndex,
        /// Its key at the next epoch.
        #[n(1)]
        shard_key: EncapsulationKeyBytes,
    },
}

/// One signed entry of a group's operation log.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct GroupOp {
    /// The group.
    #[n(0)]
    pub group: GroupId,
    /// 0 for `Create`; every later operation has the version of the one before it plus one.
    #[n(1)]
    pub version: u64,
    /// The hash of the operation before it ([`OpHash::GENESIS`] for `Create`).
    #[n(2)]
    pub prev: OpHash,
    /// Who signs: the founder for `Create`, an admin otherwise.
    #[n(3)]
    pub signer: PeerId,
    /// What the operation does.
    #[n(4)]
    pub change: Change,
    /// The signer's ML-DSA-65 verifying key (its `PeerId` must be `signer`).
    #[n(5)]
    pub signer_key: VerifyingKeyBytes,
    /// ML-DSA-65 over [`GroupOp::signed_bytes`].
    #[n(6)]
    pub signature: SignatureBytes,
}

/// The signed part of an operation: fields 0–4 in the same encoding.
#[derive(Encode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
struct OpSignedPart<'a> {
    #[n(0)]
    group: &'a GroupId,
    #[n(1)]
    version: u64,
    #[n(2)]
    prev: &'a OpHash,
    #[n(3)]
    signer: &'a PeerId,
    #[n(4)]
    change: &'a Change,
}

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
    group: GroupId,
    shard: ShardIndex,
    epoch: u64,
    decapsulator: Box<dyn Decapsulator>,
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

/// A member as the group state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// What it may do.
    pub role: Role,
    /// The shard it was placed in (it stays there until removed).
    pub shard: ShardIndex,
    /// Its encapsulation key: key packages for its shard are sealed to it.
    pub encapsulation_key: EncapsulationKeyBytes,
}

/// One shard of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// 0 when the shard is opened; +1 at every rotation.
    pub epoch: u64,
    /// The shard's encapsulation key at `epoch` (what [`seal_to_group`] seals to).
    pub key: EncapsulationKeyBytes,
    /// Its members in the order they joined (at most the group's shard size).
    pub members: Vec<PeerId>,
}

/// Why an operation or key package was refused, or could not be built or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    /// The object names another group.
    WrongGroup,
    /// The operation's version is not newer than the state's (a replay or duplicate).
    Stale {
        /// The state's version.
        current: u64,
        /// The operation's version.
        offered: u64,
    },
    /// The operation skips versions: earlier operations are missing.
    Gap {
        /// The version expected next.
        expected: u64,
        /// The operation's version.
        offered: u64,
    },
    /// The operation does not extend the state's last operation (its `prev` differs).
    Fork,
    /// The signer is not a member.
    NotMember,
    /// The signer's role does not allow this (only admins sign operations and packages).
    Forbidden {
        /// The signer's role.
        role: Role,
    },
    /// The verifying key given is not the signer's.
    WrongKey,
    /// The signature does not verify.
    BadSignature,
    /// The operation names a member the group does not have.
    UnknownMember,
    /// The operation adds a member the group already has.
    AlreadyMember,
    /// The operation would leave the group without an admin.
    LastAdmin,
    /// An admin may not remove itself: it would know its shard's next secret.
    SelfRemoval,
    /// The group is full.
    TooManyMembers {
        /// Its capacity: `min(MAX_MEMBERS, MAX_SHARDS × shard_size)`.
        max: usize,
    },
    /// No such shard.
    UnknownShard {
        /// The shard named.
        shard: ShardIndex,
    },
    /// An add that opens a new shard must carry the shard's key.
    MissingShardKey,
    /// A key in the operation is not a valid ML-KEM-768 encapsulation key.
    InvalidKey,
    /// The founding operation is malformed (not a `Create` at version 0 with the genesis
    /// predecessor and the id its founder and nonce give), or a `Create` appeared later.
    BadGenesis,
    /// The shard size is outside 1 to [`MAX_SHARD_SIZE`].
    InvalidShardSize {
        /// The size given.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The package is for another epoch than the shard's current one.
    EpochMismatch {
        /// The shard's epoch.
        current: u64,
        /// The package's epoch.
        offered: u64,
    },
    /// The secret does not give the shard's current key.
    KeyMismatch,
    /// The encoded object is longer than its limit.
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The signer could not sign.
    SigningFailed,
    /// The object could not be encoded.
    Encode(EncodeError),
    /// The bytes could not be decoded.
    Decode(DecodeError),
    /// Sealing or opening an envelope failed (for instance, not a recipient).
    Envelope(EnvelopeError),
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::WrongGroup => f.write_str("names another group"),
            GroupError::Stale { current, offered } => {
                write!(
                    f,
                    "version {offered} is not newer than the group's {current}"
                )
            }
            GroupError::Gap { expected, offered } => {
                write!(
                    f,
                    "version {offered} skips ahead of the expected {expected}"
                )
            }
            GroupError::Fork => f.write_str("does not extend the group's last operation"),
            GroupError::NotMember => f.write_str("signer is not a member"),
            GroupError::Forbidden { role } => {
                write!(f, "a member with role {role:?} may not sign this")
            }
            GroupError::WrongKey => f.write_str("key does not belong to the signer"),
            GroupError::BadSignature => f.write_str("signature does not verify"),
            GroupError::UnknownMember => f.write_str("no such member"),
            GroupError::AlreadyMember => f.write_str("already a member"),
            GroupError::LastAdmin => f.write_str("would leave the group without an admin"),
            GroupError::SelfRemoval => f.write_str("an admin may not remove itself"),
            GroupError::TooManyMembers { max } => write!(f, "group is full ({max} members)"),
            GroupError::UnknownShard { shard } => write!(f, "no shard {shard}"),
            GroupError::MissingShardKey => f.write_str("opening a new shard needs its key"),
            GroupError::InvalidKey => f.write_str("invalid encapsulation key"),
            GroupError::BadGenesis => f.write_str("malformed founding operation"),
            GroupError::InvalidShardSize { size, max } => {
                write!(f, "shard size {size} is outside 1 to {max}")
            }
            GroupError::EpochMismatch { current, offered } => {
                write!(
                    f,
                    "package for epoch {offered}, shard is at epoch {current}"
                )
            }
            GroupError::KeyMismatch => f.write_str("secret does not give the shard's key"),
            GroupError::TooLarge { len, max } => {
                write!(f, "{len} bytes exceed the {max}-byte limit")
            }
            GroupError::SigningFailed => f.write_str("signing failed"),
            GroupError::Encode(e) => write!(f, "cannot be encoded: {e}"),
            GroupError::Decode(e) => write!(f, "cannot be decoded: {e}"),
            GroupError::Envelope(e) => write!(f, "envelope: {e}"),
        }
    }
}

impl core::error::Error for GroupError {}

/// What a [`Group`] accepted and refused, and why (operations and key packages alike).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Operations applied.
    pub applied: u64,
    /// Key packages accepted by [`Group::check_package`].
    pub packages_accepted: u64,
    /// Key packages opened by [`Group::open_package`].
    pub packages_opened: u64,
    /// Refused: another group.
    pub wrong_group: u64,
    /// Refused: stale or duplicate version.
    pub stale: u64,
    /// Refused: versions missing before this one.
    pub gap: u64,
    /// Refused: does not extend the last operation.
    pub fork: u64,
    /// Refused: signer not a member.
    pub not_member: u64,
    /// Refused: signer's role does not allow it.
    pub forbidden: u64,
    /// Refused: key not the signer's.
    pub wrong_key: u64,
    /// Refused: signature does not verify.
    pub bad_signature: u64,
    /// Refused: names an unknown member.
    pub unknown_member: u64,
    /// Refused: adds an existing member.
    pub already_member: u64,
    /// Refused: would remove or demote the last admin.
    pub last_admin: u64,
    /// Refused: an admin removing itself.
    pub self_removal: u64,
    /// Refused: the group is full.
    pub too_many_members: u64,
    /// Refused: unknown shard.
    pub unknown_shard: u64,
    /// Refused: an add opening a shard without its key.
    pub missing_shard_key: u64,
    /// Refused: an invalid encapsulation key.
    pub invalid_key: u64,
    /// Refused: a `Create` after the founding operation.
    pub bad_genesis: u64,
    /// Refused: package for another epoch.
    pub epoch_mismatch: u64,
    /// Refused: package whose secret does not give the shard's key.
    pub key_mismatch: u64,
    /// Packages that did not open for this member (no slot of ours, tampered).
    pub not_recipient: u64,
    /// Anything else (over-long, undecodable, unencodable).
    pub malformed: u64,
}

impl Counters {
    fn count(&mut self, error: &GroupError) {
        let counter = match error {
            GroupError::WrongGroup => &mut self.wrong_group,
            GroupError::Stale { .. } => &mut self.stale,
            GroupError::Gap { .. } => &mut self.gap,
            GroupError::Fork => &mut self.fork,
            GroupError::NotMember => &mut self.not_member,
            GroupError::Forbidden { .. } => &mut self.forbidden,
            GroupError::WrongKey => &mut self.wrong_key,
            GroupError::BadSignature => &mut self.bad_signature,
            GroupError::UnknownMember => &mut self.unknown_member,
            GroupError::AlreadyMember => &mut self.already_member,
            GroupError::LastAdmin => &mut self.last_admin,
            GroupError::SelfRemoval => &mut self.self_removal,
            GroupError::TooManyMembers { .. } => &mut self.too_many_members,
            GroupError::UnknownShard { .. } => &mut self.unknown_shard,
            GroupError::MissingShardKey => &mut self.missing_shard_key,
            GroupError::InvalidKey => &mut self.invalid_key,
            GroupError::BadGenesis => &mut self.bad_genesis,
            GroupError::EpochMismatch { .. } => &mut self.epoch_mismatch,
            GroupError::KeyMismatch => &mut self.key_mismatch,
            GroupError::Envelope(_) => &mut self.not_recipient,
            GroupError::InvalidShardSize { .. }
            | GroupError::TooLarge { .. }
            | GroupError::SigningFailed
            | GroupError::Encode(_)
            | GroupError::Decode(_) => &mut self.malformed,
        };
        *counter = counter.saturating_add(1);
    }
}

/// A zero signature, replaced before a signed object leaves its constructor.
fn placeholder_signature() -> SignatureBytes {
    SignatureBytes::from_array([0; SIGNATURE_LEN])
}

fn shard_index(i: usize) -> Result<ShardIndex, GroupError> {
    ShardIndex::try_from(i).map_err(|_| GroupError::UnknownShard {
        shard: ShardIndex::MAX,
    })
}

/// Whether `key` is a valid ML-KEM-768 encapsulation key: it must accept an encapsulation
/// (with fixed entropy; the result is discarded).
fn check_key(provider: &dyn CryptoProvider, key: &EncapsulationKeyBytes) -> Result<(), GroupError> {
    provider
        .encapsulate(key, &[0; 32])
        .map(|_| ())
        .map_err(|_| GroupError::InvalidKey)
}

impl GroupOp {
    /// The exact bytes the signature covers: `signing_input(GROUP_OP_DOMAIN, CBOR([group,
    /// version, prev, signer, change]))`, fields 0–4 re-encoded in shortest form.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, GroupError> {
        let body = codec::to_vec(&OpSignedPart {
            group: &self.group,
            version: self.version,
            prev: &self.prev,
            signer: &self.signer,
            change: &self.change,
        })
        .map_err(GroupError::Encode)?;
        Ok(signing_input(GROUP_OP_DOMAIN, &body))
    }

    /// The operation's hash: what the next operation names as `prev`.
    pub fn hash(&self) -> Result<OpHash, GroupError> {
        Ok(OpHash::of_signed_bytes(&self.signed_bytes()?))
    }

    /// Checks that `signer_key` is the signer's and that the signature verifies (nothing about
    /// the group: see [`Group::apply`]).
    pub fn verify(&self, provider: &dyn CryptoProvider) -> Result<(), GroupError> {
        self.verify_signed(provider, &self.signed_bytes()?)
    }

    fn verify_signed(
        &self,
        provider: &dyn CryptoProvider,
        signed: &[u8],
    ) -> Result<(), GroupError> {
        if PeerId::from_verifying_key(&self.signer_key) != self.signer {
            return Err(GroupError::WrongKey);
        }
        if !provider.verify(&self.signer_key, signed, &self.signature) {
            return Err(GroupError::BadSignature);
        }
        Ok(())
    }

    fn sign(&mut self, signer: &Identity) -> Result<(), GroupError> {
        let signed = self.signed_bytes()?;
        self.signature = signer
            .signer()
            .sign(&signed)
            .map_err(|_| GroupError::SigningFailed)?;
        Ok(())
    }

    /// Encodes the operation.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GroupError> {
        encode_within(self, MAX_OP_LEN)
    }

    /// Decodes an operation (without verifying it); more than [`MAX_OP_LEN`] bytes are refused
    /// before parsing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GroupError> {
        decode_within(bytes, MAX_OP_LEN)
    }
}

/// Encodes `value`, refusing an encoding longer than `max` bytes.
fn encode_within<T: minicbor::Encode<()>>(value: &T, max: usize) -> Result<Vec<u8>, GroupError> {
    let bytes = codec::to_vec(value).map_err(GroupError::Encode)?;
    if bytes.len() > max {
        return Err(GroupError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Decodes `bytes`, refusing more than `max` of them before parsing.
fn decode_within<'b, T: minicbor::Decode<'b, ()>>(
    bytes: &'b [u8],
    max: usize,
) -> Result<T, GroupError> {
    if bytes.len() > max {
        return Err(GroupError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    codec::from_slice(bytes).map_err(GroupError::Decode)
}

impl fmt::Debug for GroupOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupOp")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("prev", &self.prev)
            .field("signer", &self.signer)
            .field("change", &self.change)
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

/// A shard rotated by a proposed operation: its new epoch and secret, which the proposing admin
/// keeps and hands out in key packages once the operation is applied.
#[derive(Debug, Clone)]
pub struct Rekey {
    /// The shard.
    pub shard: ShardIndex,
    /// Its epoch once the operation is applied.
    pub epoch: u64,
    /// Its secret at that epoch.
    pub secret: ShardSecret,
}

/// A signed operation built by an admin, and the new shard secret if it rotates a shard.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The operation, to be applied (by the admin too) and sent to the members.
    pub op: GroupOp,
    /// The rotated shard, if any.
    pub rekey: Option<Rekey>,
}

/// What [`Group::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The group's version now.
    pub version: u64,
    /// The shard whose key changed (rotated or opened), if any: its members need a key package.
    pub rekeyed: Option<ShardIndex>,
}

/// A validated operation, before its signature is checked and it is committed.
enum Plan {
    Add {
        member: PeerId,
        key: EncapsulationKeyBytes,
        role: Role,
        shard: usize,
        new_shard: bool,
        shard_key: Option<EncapsulationKeyBytes>,
    },
    Remove {
        member: PeerId,
        shard: usize,
        shard_key: EncapsulationKeyBytes,
    },
    SetRole {
        member: PeerId,
        role: Role,
    },
    Rotate {
        shard: usize,
        shard_key: EncapsulationKeyBytes,
    },
}

/// A group's state: the result of applying its operation log in order. Bounded: at most
/// [`MAX_MEMBERS`] members in at most [`MAX_SHARDS`] shards of at most `shard_size` each.
#[derive(Clone)]
pub struct Group {
    id: GroupId,
    version: u64,
    head: OpHash,
    shard_size: usize,
    members: BTreeMap<PeerId, Member>,
    shards: Vec<Shard>,
    admins: usize,
    counters: Counters,
}

impl Group {
    /// Founds a group: draws a nonce and shard 0's secret from `rng`, signs the `Create` as
    /// `founder`, and returns the state, the operation (to send to members) and shard 0's secret
    /// at epoch 0 (which the founder keeps, to welcome members into shard 0).
    pub fn create<R: CryptoRng + ?Sized>(
        provider: &dyn CryptoProvider,
        founder: &Identity,
        shard_size: usize,
        rng: &mut R,
    ) -> Result<(Group, GroupOp, ShardSecret), GroupError> {
        check_shard_size(shard_size)?;
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let id = GroupId::derive(&founder.peer_id(), &nonce);
        let secret = ShardSecret::generate(rng);
        let mut op = GroupOp {
            group: id,
            version: 0,
            prev: OpHash::GENESIS,
            signer: founder.peer_id(),
            change: Change::Create {
                nonce: FixedBytes::from_array(nonce),
                shard_size: u32::try_from(shard_size).unwrap_or(u32::MAX),
                founder_key: founder.encapsulation_key().clone(),
                shard_key: secret.encapsulation_key(provider, &id, 0, 0),
            },
            signer_key: founder.verifying_key().clone(),
            signature: placeholder_signature(),
        };
        op.sign(founder)?;
        let group = Group::from_genesis(provider, &op)?;
        Ok((group, op, secret))
    }

    /// Builds the state from the founding operation, checking it: a `Create` at version 0 with
    /// the genesis predecessor, an id that its signer and nonce give, a shard size in range,
    /// the signer's key and signature, valid encapsulation keys.
    pub fn from_genesis(provider: &dyn CryptoProvider, op: &GroupOp) -> Result<Group, GroupError> {
        let Change::Create {
            nonce,
            shard_size,
            founder_key,
            shard_key,
        } = &op.change
        else {
            return Err(GroupError::BadGenesis);
        };
        let nonce = <[u8; 32]>::try_from(nonce.as_bytes()).map_err(|_| GroupError::BadGenesis)?;
        if op.version != 0
            || op.prev != OpHash::GENESIS
            || op.group != GroupId::derive(&op.signer, &nonce)
        {
            return Err(GroupError::BadGenesis);
        }
        let shard_size = usize::try_from(*shard_size).unwrap_or(usize::MAX);
        check_shard_size(shard_size)?;
        let signed = op.signed_bytes()?;
        op.verify_signed(provider, &signed)?;
        check_key(provider, founder_key)?;
        check_key(provider, shard_key)?;
        let mut members = BTreeMap::new();
        members.insert(
            op.signer,
            Member {
                role: Role::Admin,
                shard: 0,
                encapsulation_key: founder_key.clone(),
            },
        );
        Ok(Group {
            id: op.group,
            version: 0,
            head: OpHash::of_signed_bytes(&signed),
            shard_size,
            members,
            shards: alloc::vec![Shard {
                epoch: 0,
                key: shard_key.clone(),
                members: alloc::vec![op.signer],
            }],
            admins: 1,
            counters: Counters::default(),
        })
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The version of the last operation applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The hash of the last operation applied (the next operation's `prev`).
    pub fn head(&self) -> OpHash {
        self.head
    }

    /// The most members per shard.
    pub fn shard_size(&self) -> usize {
        self.shard_size
    }

    /// The most members this group can have: `min(MAX_MEMBERS, MAX_SHARDS × shard_size)`.
    pub fn capacity(&self) -> usize {
        MAX_MEMBERS.min(MAX_SHARDS.saturating_mul(self.shard_size))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no members (never: it always keeps an admin).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The number of admins (at least one).
    pub fn admins(&self) -> usize {
        self.admins
    }

    /// A member's entry.
    pub fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.get(peer)
    }

    /// The members, in `PeerId` order.
    pub fn members(&self) -> impl Iterator<Item = (&PeerId, &Member)> {
        self.members.iter()
    }

    /// A member's role.
    pub fn role(&self, peer: &PeerId) -> Option<Role> {
        self.members.get(peer).map(|m| m.role)
    }

    /// Whether a message authored by `peer` is accepted as a post to the group: it is a member
    /// with role poster or admin. Receivers drop group posts for which this is false.
    pub fn may_post(&self, peer: &PeerId) -> bool {
        self.role(peer).is_some_and(Role::may_post)
    }

    /// The shards, in index order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// One shard.
    pub fn shard(&self, shard: ShardIndex) -> Option<&Shard> {
        usize::try_from(shard).ok().and_then(|i| self.shards.get(i))
    }

    /// The encapsulation keys a message to the group is sealed to: one per non-empty shard,
    /// in shard order.
    pub fn sealing_keys(&self) -> Vec<EncapsulationKeyBytes> {
        self.shards
            .iter()
            .filter(|s| !s.members.is_empty())
            .map(|s| s.key.clone())
            .collect()
    }

    /// What this state accepted and refused.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Applies `op`, the next operation of the log. Checks, cheapest first: the group, the
    /// version (`Stale`, `Gap`), the predecessor (`Fork`), that the signer is an admin
    /// (`NotMember`, `Forbidden`) whose key is given (`WrongKey`), the change against the state
    /// (`UnknownMember`, `AlreadyMember`, `LastAdmin`, `SelfRemoval`, `TooManyMembers`,
    /// `UnknownShard`, `MissingShardKey`), the signature (`BadSignature`), the keys it carries
    /// (`InvalidKey`). A refused operation changes nothing but the counters.
    pub fn apply(
        &mut self,
        provider: &dyn CryptoProvider,
        op: &GroupOp,
    ) -> Result<Applied, GroupError> {
        let result = self.apply_inner(provider, op);
        match &result {
            Ok(_) => self.counters.applied = self.counters.applied.saturating_add(1),
            Err(e) => self.counters.count(e),
        }
        result
    }

    fn apply_inner(
        &mut self,
        provider: &dyn CryptoProvider,
        op: &GroupOp,
    ) -> Result<Applied, GroupError> {
        let plan = self.plan(op)?;
        let signed = op.signed_bytes()?;
        op.verify_signed(provider, &signed)?;
        check_plan_keys(provider, &plan)?;
        let rekeyed = self.commit(plan)?;
        self.version = op.version;
        self.head = OpHash::of_signed_bytes(&signed);
        Ok(Applied {
            version: self.version,
            rekeyed,
        })
    }

    /// The signer must be a member with role admin.
    fn check_admin(&self, signer: &PeerId) -> Result<(), GroupError> {
        let member = self.members.get(signer).ok_or(GroupError::NotMember)?;
        if member.role != Role::Admin {
            return Err(GroupError::Forbidden { role: member.role });
        }
        Ok(())
    }

    /// Where the next member goes: the first shard with room, else a new shard.
    fn target_shard(&self) -> Option<(usize, bool)> {
        match self
            .shards
            .iter()
            .position(|s| s.members.len() < self.shard_size)
        {
            Some(i) => Some((i, false)),
            None if self.shards.len() < MAX_SHARDS => Some((self.shards.len(), true)),
            None => None,
        }
    }

    fn shard_at(&self, shard: ShardIndex) -> Result<(usize, &Shard), GroupError> {
        usize::try_from(shard)
            .ok()
            .and_then(|i| self.shards.get(i).map(|s| (i, s)))
            .ok_or(GroupError::UnknownShard { shard })
    }

    /// Every check of `op` against the state except its signature and key validity.
    fn plan(&self, op: &GroupOp) -> Result<Plan, GroupError> {
        if op.group != self.id {
            return Err(GroupError::WrongGroup);
        }
        if op.version <= self.version {
            return Err(GroupError::Stale {
                current: self.version,
                offered: op.version,
            });
        }
        let expected = self.version.saturating_add(1);
        if op.version != expected {
            return Err(GroupError::Gap {
                expected,
                offered: op.version,
            });
        }
        if op.prev != self.head {
            return Err(GroupError::Fork);
        }
        self.check_admin(&op.signer)?;
        if PeerId::from_verifying_key(&op.signer_key) != op.signer {
            return Err(GroupError::WrongKey);
        }
        match &op.change {
            Change::Create { .. } => Err(GroupError::BadGenesis),
            Change::Add {
                member,
                key,
                role,
                shard_key,
            } => {
                if self.members.contains_key(member) {
                    return Err(GroupError::AlreadyMember);
                }
                let full = GroupError::TooManyMembers {
                    max: self.capacity(),
                };
                if self.members.len() >= self.capacity() {
                    return Err(full);
                }
                let (shard, new_shard) = self.target_shard().ok_or(full)?;
                if new_shard && shard_key.is_none() {
                    return Err(GroupError::MissingShardKey);
                }
                Ok(Plan::Add {
                    member: *member,
                    key: key.clone(),
                    role: *role,
                    shard,
                    new_shard,
                    shard_key: shard_key.clone(),
                })
            }
            Change::Remove { member, shard_key } => {
                let entry = self.members.get(member).ok_or(GroupError::UnknownMember)?;
                if entry.role == Role::Admin && self.admins <= 1 {
                    return Err(GroupError::LastAdmin);
                }
                if *member == op.signer {
                    return Err(GroupError::SelfRemoval);
                }
                let (shard, _) = self.shard_at(entry.shard)?;
                Ok(Plan::Remove {
                    member: *member,
                    shard,
                    shard_key: shard_key.clone(),
                })
            }
            Change::SetRole { member, role } => {
                let entry = self.members.get(member).ok_or(GroupError::UnknownMember)?;
                if entry.role == Role::Admin && *role != Role::Admin && self.admins <= 1 {
                    return Err(GroupError::LastAdmin);
                }
                Ok(Plan::SetRole {
                    member: *member,
                    role: *role,
                })
            }
            Change::Rotate { shard, shard_key } => {
                let (shard, _) = self.shard_at(*shard)?;
                Ok(Plan::Rotate {
                    shard,
                    shard_key: shard_key.clone(),
                })
            }
        }
    }

    /// Applies a validated plan. Returns the shard whose key changed.
    fn commit(&mut self, plan: Plan) -> Result<Option<ShardIndex>, GroupError> {
        match plan {
            Plan::Add {
                member,
                key,
                role,
                shard,
                new_shard,
                shard_key,
            } => {
                let index = shard_index(shard)?;
                let mut rekeyed = None;
                if new_shard {
                    let key = shard_key.ok_or(GroupError::MissingShardKey)?;
                    self.shards.push(Shard {
                        epoch: 0,
                        key,
                        members: Vec::new(),
                    });
                    rekeyed = Some(index);
                } else if let Some(key) = shard_key {
                    self.rotate(shard, key)?;
                    rekeyed = Some(index);
                }
                let target = self
                    .shards
                    .get_mut(shard)
                    .ok_or(GroupError::UnknownShard { shard: index })?;
                target.members.push(member);
                if role == Role::Admin {
                    self.admins = self.admins.saturating_add(1);
                }
                self.members.insert(
                    member,
                    Member {
                        role,
                        shard: index,
                        encapsulation_key: key,
                    },
                );
                Ok(rekeyed)
            }
            Plan::Remove {
                member,
                shard,
                shard_key,
            } => {
                if let Some(entry) = self.members.remove(&member)
                    && entry.role == Role::Admin
                {
                    self.admins = self.admins.saturating_sub(1);
                }
                if let Some(s) = self.shards.get_mut(shard) {
                    s.members.retain(|m| *m != member);
                }
                self.rotate(shard, shard_key)?;
                Ok(Some(shard_index(shard)?))
            }
            Plan::SetRole { member, role } => {
                if let Some(entry) = self.members.get_mut(&member) {
                    match (entry.role == Role::Admin, role == Role::Admin) {
                        (true, false) => self.admins = self.admins.saturating_sub(1),
                        (false, true) => self.admins = self.admins.saturating_add(1),
                        _ => {}
                    }
                    entry.role = role;
                }
                Ok(None)
            }
            Plan::Rotate { shard, shard_key } => {
                self.rotate(shard, shard_key)?;
                Ok(Some(shard_index(shard)?))
            }
        }
    }

    fn rotate(&mut self, shard: usize, key: EncapsulationKeyBytes) -> Result<(), GroupError> {
        let index = shard_index(shard)?;
        let s = self
            .shards
            .get_mut(shard)
            .ok_or(GroupError::UnknownShard { shard: index })?;
        s.epoch = s.epoch.saturating_add(1);
        s.key = key;
        Ok(())
    }

    /// Builds and signs the next operation with `change` as `admin`, after checking it against
    /// the state exactly as [`Group::apply`] will (so a refused proposal is never signed).
    fn propose(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        change: Change,
        rekey: Option<Rekey>,
    ) -> Result<Proposal, GroupError> {
        let mut op = GroupOp {
            group: self.id,
            version: self.version.saturating_add(1),
            prev: self.head,
            signer: admin.peer_id(),
            change,
            signer_key: admin.verifying_key().clone(),
            signature: placeholder_signature(),
        };
        let plan = self.plan(&op)?;
        check_plan_keys(provider, &plan)?;
        op.sign(admin)?;
        Ok(Proposal { op, rekey })
    }

    /// A fresh secret for `shard` at `epoch` and the key it gives.
    fn fresh_shard_key<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        shard: ShardIndex,
        epoch: u64,
        rng: &mut R,
    ) -> (Rekey, EncapsulationKeyBytes) {
        let secret = ShardSecret::generate(rng);
        let key = secret.encapsulation_key(provider, &self.id, shard, epoch);
        (
            Rekey {
                shard,
                epoch,
                secret,
            },
            key,
        )
    }

    /// Proposes adding `member` (with its encapsulation `key`, from its peer record) as `role`.
    /// It goes to the first shard with room; a new shard is opened (with a fresh secret, in the
    /// proposal's `rekey`) when all are full. With `rotate`, an existing target shard is also
    /// rotated, so the newcomer cannot read what was sealed to the shard before it joined.
    /// Without it, the newcomer needs the shard's current secret ([`Group::welcome_package`]).
    #[allow(clippy::too_many_arguments)]
    pub fn propose_add<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: PeerId,
        key: EncapsulationKeyBytes,
        role: Role,
        rotate: bool,
        rng: &mut R,
    ) -> Result<Proposal, GroupError> {
        let (mut rekey, mut shard_key) = (None, None);
        if let Some((shard, new_shard)) = self.target_shard()
            && (new_shard || rotate)
        {
            let index = shard_index(shard)?;
            let epoch = match self.shards.get(shard) {
                Some(s) if !new_shard => s.epoch.saturating_add(1),
                _ => 0,
            };
            let (r, k) = self.fresh_shard_key(provider, index, epoch, rng);
            rekey = Some(r);
            shard_key = Some(k);
        }
        let change = Change::Add {
            member,
            key,
            role,
            shard_key,
        };
        self.propose(provider, admin, change, rekey)
    }

    /// Proposes removing `member`; its shard is rotated (the fresh secret is in the proposal's
    /// `rekey`: after applying, send [`Group::rekey_package`] to the shard's remaining members).
    pub fn propose_remove<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: PeerId,
        rng: &mut R,
    ) -> Result<Proposal, GroupError> {
        let entry = self.members.get(&member).ok_or(GroupError::UnknownMember)?;
        let (_, shard) = self.shard_at(entry.shard)?;
        let epoch = shard.epoch.saturating_add(1);
        let (rekey, shard_key) = self.fresh_shard_key(provider, entry.shard, epoch, rng);
        self.propose(
            provider,
            admin,
            Change::Remove { member, shard_key },
            Some(rekey),
        )
    }

    /// Proposes giving `member` the role `role`. Demoting an admin does not take back the shard
    /// secrets it held: rotate those shards too.
    pub fn propose_set_role(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: PeerId,
        role: Role,
    ) -> Result<Proposal, GroupError> {
        self.propose(provider, admin, Change::SetRole { member, role }, None)
    }

    /// Proposes rotating `shard` (new epoch, fresh secret in the proposal's `rekey`).
    pub fn propose_rotate<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        shard: ShardIndex,
        rng: &mut R,
    ) -> Result<Proposal, GroupError> {
        let (_, current) = self.shard_at(shard)?;
        let epoch = current.epoch.saturating_add(1);
        let (rekey, shard_key) = self.fresh_shard_key(provider, shard, epoch, rng);
        self.propose(
            provider,
            admin,
            Change::Rotate { shard, shard_key },
            Some(rekey),
        )
    }

    /// The key package of `shard`'s current epoch for all of its members (a rekey): `secret` is
    /// the shard's current secret, `admin` signs.
    pub fn rekey_package<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        shard: ShardIndex,
        secret: &ShardSecret,
        rng: &mut R,
    ) -> Result<KeyPackage, GroupError> {
        let (_, s) = self.shard_at(shard)?;
        let recipients = self.keys_of(&s.members);
        KeyPackage::issue(provider, admin, self, shard, secret, &recipients, rng)
    }

    /// The key package of `member`'s shard at its current epoch for `member` alone (a
    /// welcome): `secret` is that shard's current secret, `admin` signs.
    pub fn welcome_package<R: CryptoRng + ?Sized>(
        &self,
        provider: &dyn CryptoProvider,
        admin: &Identity,
        member: &PeerId,
        secret: &ShardSecret,
        rng: &mut R,
    ) -> Result<KeyPackage, GroupError> {
        let entry = self.members.get(member).ok_or(GroupError::UnknownMember)?;
        let recipients = [entry.encapsulation_key.clone()];
        KeyPackage::issue(provider, admin, self, entry.shard, secret, &recipients, rng)
    }

    fn keys_of(&self, peers: &[PeerId]) -> Vec<EncapsulationKeyBytes> {
        peers
            .iter()
            .filter_map(|p| self.members.get(p))
            .map(|m| m.encapsulation_key.clone())
            .collect()
    }

    /// Checks a key package against the state: the group, the shard (`UnknownShard`), its
    /// current epoch (`EpochMismatch`), that the signer is an admin (`NotMember`, `Forbidden`),
    /// the signer's key and the signature (`WrongKey`, `BadSignature`). Counted.
    pub fn check_package(
        &mut self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
    ) -> Result<(), GroupError> {
        let result = self.check_package_inner(provider, package);
        match &result {
            Ok(()) => {
                self.counters.packages_accepted = self.counters.packages_accepted.saturating_add(1)
            }
            Err(e) => self.counters.count(e),
        }
        result
    }

    fn check_package_inner(
        &self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
    ) -> Result<(), GroupError> {
        if package.group != self.id {
            return Err(GroupError::WrongGroup);
        }
        let (_, shard) = self.shard_at(package.shard)?;
        if package.epoch != shard.epoch {
            return Err(GroupError::EpochMismatch {
                current: shard.epoch,
                offered: package.epoch,
            });
        }
        self.check_admin(&package.signer)?;
        package.verify(provider)
    }

    /// Checks `package` as [`Group::check_package`] does, opens it as the holder of `me` (the
    /// member's own decapsulation key), and checks that the secret gives the shard's current
    /// key (`KeyMismatch`). Returns the shard key to open group messages with. Counted.
    pub fn open_package(
        &mut self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
        me: &dyn Decapsulator,
    ) -> Result<ShardKey, GroupError> {
        let result = self.open_package_inner(provider, package, me);
        match &result {
            Ok(_) => {
                self.counters.packages_opened = self.counters.packages_opened.saturating_add(1)
            }
            Err(e) => self.counters.count(e),
        }
        result
    }

    fn open_package_inner(
        &self,
        provider: &dyn CryptoProvider,
        package: &KeyPackage,
        me: &dyn Decapsulator,
    ) -> Result<ShardKey, GroupError> {
        self.check_package_inner(provider, package)?;
        let secret = package.open(me)?;
        let key = ShardKey::derive(provider, self.id, package.shard, package.epoch, &secret);
        let (_, shard) = self.shard_at(package.shard)?;
        if *key.encapsulation_key() != shard.key {
            return Err(GroupError::KeyMismatch);
        }
        Ok(key)
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("members", &self.members.len())
            .field("shards", &self.shards.len())
            .field("shard_size", &self.shard_size)
            .finish_non_exhaustive()
    }
}

fn check_shard_size(size: usize) -> Result<(), GroupError> {
    if size == 0 || size > MAX_SHARD_SIZE {
        return Err(GroupError::InvalidShardSize {
            size,
            max: MAX_SHARD_SIZE,
        });
    }
    Ok(())
}

fn check_plan_keys(provider: &dyn CryptoProvider, plan: &Plan) -> Result<(), GroupError> {
    match plan {
        Plan::Add { key, shard_key, .. } => {
            check_key(provider, key)?;
            if let Some(k) = shard_key {
                check_key(provider, k)?;
            }
            Ok(())
        }
        Plan::Remove { shard_key, .. } | Plan::Rotate { shard_key, .. } => {
            check_key(provider, shard_key)
        }
        Plan::SetRole { .. } => Ok(()),
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
    keys: VecDeque<ShardKey>,
    capacity: usize,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::message::MESSAGE_OVERHEAD;
    use crate::crypto::PureRustProvider;
    use crate::identity::IdentitySeeds;
    use alloc::format;
    use alloc::vec;
    use chacha20::ChaCha8Rng;
    use proptest::prelude::*;
    use rand_core::SeedableRng;

    const P: &PureRustProvider = &PureRustProvider;

    fn identity(n: u32) -> Identity {
        let mut seed = [0x6b; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(seed);
        Identity::from_seeds(P, IdentitySeeds::generate(&mut rng))
    }

    /// A member that never signs: a peer id and a decapsulation key, cheaper than an identity.
    struct Reader {
        peer: PeerId,
        decapsulator: Box<dyn Decapsulator>,
    }

    impl Reader {
        fn new(tag: u8, n: u32) -> Self {
            let mut seed = [tag; KEM_SEED_LEN];
            seed[..4].copy_from_slice(&n.to_le_bytes());
            let decapsulator = P.decapsulator_from_seed(&seed);
            let peer = PeerId::from_verifying_key(&seed);
            Self { peer, decapsulator }
        }

        fn key(&self) -> EncapsulationKeyBytes {
            self.decapsulator.encapsulation_key().clone()
        }
    }

    /// The founder's side: the group state and every shard secret the founder generated.
    struct Fixture {
        group: Group,
        founder: Identity,
        secrets: BTreeMap<ShardIndex, ShardSecret>,
        rng: ChaCha8Rng,
    }

    impl Fixture {
        fn new(shard_size: usize, seed: u8) -> Self {
            let founder = identity(0);
            let mut rng = ChaCha8Rng::from_seed([seed; 32]);
            let (group, _, secret) = Group::create(P, &founder, shard_size, &mut rng).unwrap();
            let mut secrets = BTreeMap::new();
            secrets.insert(0, secret);
            Self {
                group,
                founder,
                secrets,
                rng,
            }
        }

        fn commit(&mut self, proposal: Proposal) -> Applied {
            let applied = self.group.apply(P, &proposal.op).unwrap();
            if let Some(rekey) = proposal.rekey {
                assert_eq!(applied.rekeyed, Some(rekey.shard));
                assert_eq!(self.group.shard(rekey.shard).unwrap().epoch, rekey.epoch);
                self.secrets.insert(rekey.shard, rekey.secret);
            }
            applied
        }

        fn add(&mut self, peer: PeerId, key: EncapsulationKeyBytes, role: Role) -> Applied {
            let proposal = self
                .group
                .propose_add(P, &self.founder, peer, key, role, false, &mut self.rng)
                .unwrap();
            self.commit(proposal)
        }

        fn remove(&mut self, peer: PeerId) -> Applied {
            let proposal = self
                .group
                .propose_remove(P, &self.founder, peer, &mut self.rng)
                .unwrap();
            self.commit(proposal)
        }

        fn package(&mut self, shard: ShardIndex) -> KeyPackage {
            let secret = self.secrets.get(&shard).unwrap().clone();
            self.group
                .rekey_package(P, &self.founder, shard, &secret, &mut self.rng)
                .unwrap()
        }

        /// `peer`'s shard key, delivered in a welcome package and opened as `me`.
        fn shard_key(&mut self, peer: &PeerId, me: &dyn Decapsulator) -> ShardKey {
            let shard = self.group.member(peer).unwrap().shard;
            let secret = self.secrets.get(&shard).unwrap().clone();
            let package = self
                .group
                .welcome_package(P, &self.founder, peer, &secret, &mut self.rng)
                .unwrap();
            self.group.open_package(P, &package, me).unwrap()
        }
    }

    /// The next operation of `group` with `change`, signed by anyone (for refusal tests).
    fn signed_by(group: &Group, signer: &Identity, change: Change) -> GroupOp {
        let mut op = GroupOp {
            group: group.id(),
            version: group.version() + 1,
            prev: group.head(),
            signer: signer.peer_id(),
            change,
            signer_key: signer.verifying_key().clone(),
            signature: placeholder_signature(),
        };
        op.sign(signer).unwrap();
        op
    }

    fn not_recipient<T: fmt::Debug>(result: Result<T, GroupError>) {
        assert!(
            matches!(
                result,
                Err(GroupError::Envelope(EnvelopeError::NotARecipient))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn limits_are_consistent_with_the_frame() {
        assert_eq!(PACKAGE_FIXED_LEN, 5400);
        assert_eq!(package_len(DEFAULT_SHARD_SIZE), 233_802);
        assert_eq!(MAX_SHARD_SIZE, 217);
        assert_eq!(package_len(217), 253_216);
        assert_eq!(package_len(218), 254_358);
        assert!(package_len(MAX_SHARD_SIZE) <= MAX_PACKAGE_LEN);
        assert!(package_len(MAX_SHARD_SIZE + 1) > MAX_PACKAGE_LEN);
        // A package is a message payload: with the message's overhead it is one frame.
        assert_eq!(MAX_PACKAGE_LEN + MESSAGE_OVERHEAD, MAX_FRAME_LEN);
        assert!(package_len(DEFAULT_SHARD_SIZE) + MESSAGE_OVERHEAD <= MAX_FRAME_LEN);
        // A message to a group of MAX_SHARDS shards still leaves room for a payload.
        assert_eq!(envelope::max_recipients(180_840), MAX_SHARDS);
        assert_eq!(envelope::max_recipients(180_841), MAX_SHARDS - 1);
        assert_eq!(MAX_SHARDS * DEFAULT_SHARD_SIZE, 12_800);
    }

    #[test]
    fn founding_checks_the_genesis_operation() {
        let founder = identity(0);
        let mut rng = ChaCha8Rng::from_seed([1; 32]);
        let (group, op, secret) = Group::create(P, &founder, 4, &mut rng).unwrap();
        assert_eq!(group.version(), 0);
        assert_eq!(group.head(), op.hash().unwrap());
        assert_eq!(group.role(&founder.peer_id()), Some(Role::Admin));
        assert_eq!(group.shards().len(), 1);
        assert_eq!(
            group.shard(0).unwrap().key,
            secret.encapsulation_key(P, &group.id(), 0, 0)
        );
        let Change::Create { nonce, .. } = &op.change else {
            panic!("not a create")
        };
        let nonce = <[u8; 32]>::try_from(nonce.as_bytes()).unwrap();
        assert_eq!(group.id(), GroupId::derive(&founder.peer_id(), &nonce));

        // The encoded operation rebuilds the same state; a second copy is stale.
        let decoded = GroupOp::from_bytes(&op.to_bytes().unwrap()).unwrap();
        let mut again = Group::from_genesis(P, &decoded).unwrap();
        assert_eq!(again.head(), group.head());
        assert!(matches!(
            again.apply(P, &decoded),
            Err(GroupError::Stale { .. })
        ));

        // Version, predecessor, id and signer are all checked.
        let mut bad = op.clone();
        bad.version = 1;
        assert_eq!(
            Group::from_genesis(P, &bad).unwrap_err(),
            GroupError::BadGenesis
        );
        let mut bad = op.clone();
        bad.prev = OpHash::from_bytes([1; 32]);
        assert_eq!(
            Group::from_genesis(P, &bad).unwrap_err(),
            GroupError::BadGenesis
        );
        let mut bad = op.clone();
        bad.group = GroupId::from_bytes([2; 32]);
        assert_eq!(
            Group::from_genesis(P, &bad).unwrap_err(),
            GroupError::BadGenesis
        );
        let other = identity(1);
        let mut bad = op.clone();
        bad.signer_key = other.verifying_key().clone();
        assert_eq!(
            Group::from_genesis(P, &bad).unwrap_err(),
            GroupError::WrongKey
        );
        let mut bad = op.clone();
        if let Change::Create { shard_size, .. } = &mut bad.change {
            *shard_size = 5;
        }
        assert_eq!(
            Group::from_genesis(P, &bad).unwrap_err(),
            GroupError::BadSignature
        );
        for size in [0usize, MAX_SHARD_SIZE + 1] {
            assert_eq!(
                Group::create(P, &founder, size, &mut rng).unwrap_err(),
                GroupError::InvalidShardSize {
                    size,
                    max: MAX_SHARD_SIZE
                }
            );
        }
        let not_create = signed_by(
            &group,
            &founder,
            Change::SetRole {
                member: founder.peer_id(),
                role: Role::Admin,
            },
        );
        assert_eq!(
            Group::from_genesis(P, &not_create).unwrap_err(),
            GroupError::BadGenesis
        );
    }

    #[test]
    fn signed_bytes_follow_the_spec_layout() {
        let mut fx = Fixture::new(2, 2);
        let reader = Reader::new(1, 1);
        let proposal = fx
            .group
            .propose_set_role(P, &fx.founder, fx.founder.peer_id(), Role::Admin)
            .unwrap();
        let op = proposal.op;
        let mut body = Vec::new();
        body.push(0x85); // [group, version, prev, signer, change]
        body.extend_from_slice(&[0x58, 0x20]);
        body.extend_from_slice(fx.group.id().as_bytes());
        body.push(0x01);
        body.extend_from_slice(&[0x58, 0x20]);
        body.extend_from_slice(fx.group.head().as_bytes());
        body.extend_from_slice(&[0x58, 0x20]);
        body.extend_from_slice(fx.founder.peer_id().as_bytes());
        body.extend_from_slice(&[0x82, 0x03, 0x82, 0x58, 0x20]); // [3, [member, role]]
        body.extend_from_slice(fx.founder.peer_id().as_bytes());
        body.push(0x02); // Admin
        assert_eq!(
            op.signed_bytes().unwrap(),
            signing_input(GROUP_OP_DOMAIN, &body)
        );
        fx.group.apply(P, &op).unwrap();
        assert_eq!(
            fx.group.head(),
            OpHash(blake3::derive_key(
                OP_HASH_CONTEXT,
                &signing_input(GROUP_OP_DOMAIN, &body)
            ))
        );

        // An add into a shard with room carries no shard key: a 3-element field array.
        let add = fx
            .group
            .propose_add(
                P,
                &fx.founder,
                reader.peer,
                reader.key(),
                Role::Viewer,
                false,
                &mut fx.rng,
            )
            .unwrap();
        assert!(add.rekey.is_none());
        let encoded = codec::to_vec(&add.op.change).unwrap();
        assert_eq!(&encoded[..5], &[0x82, 0x01, 0x83, 0x58, 0x20]);
        fx.commit(add);

        let package = fx.package(0);
        let mut body = Vec::new();
        body.extend_from_slice(fx.group.id().as_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(fx.founder.peer_id().as_bytes());
        body.extend_from_slice(blake3::hash(&package.content).as_bytes());
        body.extend_from_slice(blake3::hash(&codec::to_vec(&package.slots).unwrap()).as_bytes());
        assert_eq!(
            package.signed_bytes().unwrap(),
            signing_input(GROUP_KEY_DOMAIN, &body)
        );
        // Exact encoded length: package_len less the narrow shard and epoch (4 + 8 bytes).
        assert_eq!(package.to_bytes().unwrap().len(), package_len(2) - 12);

        // The two domains do not mix: an op signature never verifies as a package's.
        let mut forged = package.clone();
        forged.signature = op.signature.clone();
        assert_eq!(forged.verify(P), Err(GroupError::BadSignature));
    }

    #[test]
    fn members_open_group_messages_and_outsiders_cannot() {
        let mut fx = Fixture::new(2, 3);
        let readers: Vec<Reader> = (0..4).map(|i| Reader::new(3, i)).collect();
        for r in &readers {
            fx.add(r.peer, r.key(), Role::Viewer);
        }
        // Founder and readers[0] in shard 0, then [1, 2] in shard 1, [3] in shard 2.
        let shards: Vec<Vec<PeerId>> = fx
            .group
            .shards()
            .iter()
            .map(|s| s.members.clone())
            .collect();
        assert_eq!(
            shards,
            vec![
                vec![fx.founder.peer_id(), readers[0].peer],
                vec![readers[1].peer, readers[2].peer],
                vec![readers[3].peer],
            ]
        );
        let keys: Vec<ShardKey> = readers
            .iter()
            .map(|r| fx.shard_key(&r.peer, &*r.decapsulator))
            .collect();
        let founder_key = {
            let founder = identity(0);
            fx.shard_key(&founder.peer_id(), founder.decapsulator())
        };
        let sealed = seal_to_group(P, &fx.group, b"to the group", &mut fx.rng).unwrap();
        assert_eq!(sealed.slots.len(), 3);
        for key in keys.iter().chain([&founder_key]) {
            assert_eq!(&**open_as_member(&sealed, key).unwrap(), b"to the group");
        }
        // An outsider has no slot, in the message or in any package.
        let outsider = Reader::new(4, 0);
        assert_eq!(
            envelope::open(&sealed, &*outsider.decapsulator),
            Err(EnvelopeError::NotARecipient)
        );
        for shard in 0..3 {
            let package = fx.package(shard);
            not_recipient(package.open(&*outsider.decapsulator));
            not_recipient(fx.group.open_package(P, &package, &*outsider.decapsulator));
        }
        // Nor does a member open another shard's package.
        let package = fx.package(2);
        not_recipient(package.open(&*readers[0].decapsulator));
        assert_eq!(fx.group.counters().not_recipient, 3);
    }

    #[test]
    fn removal_rekeys_only_the_affected_shard_and_locks_the_removed_member_out() {
        let mut fx = Fixture::new(2, 4);
        let readers: Vec<Reader> = (0..4).map(|i| Reader::new(5, i)).collect();
        for r in &readers {
            fx.add(r.peer, r.key(), Role::Viewer);
        }
        let mut keys: Vec<ShardKey> = readers
            .iter()
            .map(|r| fx.shard_key(&r.peer, &*r.decapsulator))
            .collect();
        let before_sealed = seal_to_group(P, &fx.group, b"before", &mut fx.rng).unwrap();
        let old_package = fx.package(1);
        let before: Vec<Shard> = fx.group.shards().to_vec();

        // readers[1] is in shard 1 with readers[2].
        let applied = fx.remove(readers[1].peer);
        assert_eq!(applied.rekeyed, Some(1));
        assert!(fx.group.member(&readers[1].peer).is_none());
        let after = fx.group.shards();
        assert_eq!(after[0], before[0]);
        assert_eq!(after[2], before[2]);
        assert_eq!(after[1].epoch, before[1].epoch + 1);
        assert_ne!(after[1].key, before[1].key);
        assert_eq!(after[1].members, vec![readers[2].peer]);

        // The rekey reaches the remaining member of the shard only.
        let package = fx.package(1);
        assert_eq!(package.slots.len(), 1);
        not_recipient(package.open(&*readers[1].decapsulator));
        not_recipient(
            fx.group
                .open_package(P, &package, &*readers[1].decapsulator),
        );
        keys[2] = fx
            .group
            .open_package(P, &package, &*readers[2].decapsulator)
            .unwrap();
        assert_eq!(keys[2].epoch(), 1);

        let sealed = seal_to_group(P, &fx.group, b"after", &mut fx.rng).unwrap();
        for i in [0, 2, 3] {
            assert_eq!(&**open_as_member(&sealed, &keys[i]).unwrap(), b"after");
        }
        // The removed member's old shard key and its own key open nothing sealed afterwards.
        not_recipient(open_as_member(&sealed, &keys[1]));
        assert_eq!(
            envelope::open(&sealed, &*readers[1].decapsulator),
            Err(EnvelopeError::NotARecipient)
        );
        // What was sealed before stays readable with the key it held (it cannot be taken back).
        assert_eq!(
            &**open_as_member(&before_sealed, &keys[1]).unwrap(),
            b"before"
        );
        // The package of the old epoch is refused now.
        assert_eq!(
            fx.group.check_package(P, &old_package),
            Err(GroupError::EpochMismatch {
                current: 1,
                offered: 0
            })
        );
        // A removal leaves a hole; the next add fills the first shard with room.
        let newcomer = Reader::new(6, 0);
        let applied = fx.add(newcomer.peer, newcomer.key(), Role::Viewer);
        assert_eq!(applied.rekeyed, None);
        assert_eq!(fx.group.member(&newcomer.peer).unwrap().shard, 1);
        assert_eq!(fx.group.shards().len(), 3);
    }

    #[test]
    fn rotating_on_add_keeps_earlier_messages_from_the_newcomer() {
        let mut fx = Fixture::new(4, 5);
        let a = Reader::new(7, 0);
        fx.add(a.peer, a.key(), Role::Viewer);
        let sealed = seal_to_group(P, &fx.group, b"early", &mut fx.rng).unwrap();

        // Without rotation the newcomer gets the current secret and reads earlier messages.
        let b = Reader::new(7, 1);
        fx.add(b.peer, b.key(), Role::Viewer);
        let key_b = fx.shard_key(&b.peer, &*b.decapsulator);
        assert_eq!(&**open_as_member(&sealed, &key_b).unwrap(), b"early");

        // With rotation it does not.
        let secret0 = fx.secrets.get(&0).unwrap().clone();
        let c = Reader::new(7, 2);
        let proposal = fx
            .group
            .propose_add(
                P,
                &fx.founder,
                c.peer,
                c.key(),
                Role::Viewer,
                true,
                &mut fx.rng,
            )
            .unwrap();
        assert_eq!(
            proposal.rekey.as_ref().map(|r| (r.shard, r.epoch)),
            Some((0, 1))
        );
        fx.commit(proposal);
        let package = fx.package(0);
        assert_eq!(package.slots.len(), 4);
        let key_c = fx
            .group
            .open_package(P, &package, &*c.decapsulator)
            .unwrap();
        not_recipient(open_as_member(&sealed, &key_c));
        let key_a = fx
            .group
            .open_package(P, &package, &*a.decapsulator)
            .unwrap();
        let later = seal_to_group(P, &fx.group, b"later", &mut fx.rng).unwrap();
        for key in [&key_a, &key_c] {
            assert_eq!(&**open_as_member(&later, key).unwrap(), b"later");
        }

        // A keyring opens messages of both epochs with the right key.
        let mut ring = Keyring::new(2);
        ring.insert(ShardKey::derive(P, fx.group.id(), 0, 0, &secret0));
        ring.insert(key_a);
        assert_eq!(&**ring.open(&sealed).unwrap(), b"early");
        assert_eq!(&**ring.open(&later).unwrap(), b"later");
        // A key of the same shard and epoch replaces; a third key evicts the oldest.
        ring.insert(key_c);
        assert_eq!(ring.len(), 2);
        assert_eq!(&**ring.open(&later).unwrap(), b"later");
        ring.insert(ShardKey::derive(
            P,
            fx.group.id(),
            1,
            0,
            &ShardSecret::from_bytes([9; 32]),
        ));
        assert_eq!(ring.len(), 2);
        not_recipient(ring.open(&sealed));
        assert_eq!(&**ring.open(&later).unwrap(), b"later");
    }

    #[test]
    fn roles_are_enforced_and_refusals_counted() {
        let mut fx = Fixture::new(8, 6);
        let (poster, viewer, outsider) = (identity(10), identity(11), identity(12));
        fx.add(
            poster.peer_id(),
            poster.encapsulation_key().clone(),
            Role::Poster,
        );
        fx.add(
            viewer.peer_id(),
            viewer.encapsulation_key().clone(),
            Role::Viewer,
        );
        let target = Reader::new(8, 0);
        fx.add(target.peer, target.key(), Role::Viewer);
        let newcomer = Reader::new(8, 1);
        let version = fx.group.version();
        let add = Change::Add {
            member: newcomer.peer,
            key: newcomer.key(),
            role: Role::Viewer,
            shard_key: None,
        };
        let remove = Change::Remove {
            member: target.peer,
            shard_key: fx.group.shard(0).unwrap().key.clone(),
        };
        let rotate = Change::Rotate {
            shard: 0,
            shard_key: fx.group.shard(0).unwrap().key.clone(),
        };
        for change in [add.clone(), remove.clone(), rotate.clone()] {
            let op = signed_by(&fx.group, &viewer, change);
            assert_eq!(
                fx.group.apply(P, &op),
                Err(GroupError::Forbidden { role: Role::Viewer })
            );
        }
        let op = signed_by(&fx.group, &poster, add.clone());
        assert_eq!(
            fx.group.apply(P, &op),
            Err(GroupError::Forbidden { role: Role::Poster })
        );
        let op = signed_by(&fx.group, &outsider, add.clone());
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::NotMember));
        // The proposal helpers refuse the same way, before signing.
        assert_eq!(
            fx.group
                .propose_add(
                    P,
                    &viewer,
                    newcomer.peer,
                    newcomer.key(),
                    Role::Viewer,
                    false,
                    &mut fx.rng
                )
                .unwrap_err(),
            GroupError::Forbidden { role: Role::Viewer }
        );
        assert_eq!(
            fx.group
                .propose_rotate(P, &poster, 0, &mut fx.rng)
                .unwrap_err(),
            GroupError::Forbidden { role: Role::Poster }
        );

        // Versions: a replay is stale, a skipped version is a gap, a wrong predecessor a fork.
        let mut op = signed_by(&fx.group, &fx.founder, add.clone());
        op.version = version;
        op.sign(&fx.founder).unwrap();
        assert_eq!(
            fx.group.apply(P, &op),
            Err(GroupError::Stale {
                current: version,
                offered: version
            })
        );
        op.version = version + 2;
        op.sign(&fx.founder).unwrap();
        assert_eq!(
            fx.group.apply(P, &op),
            Err(GroupError::Gap {
                expected: version + 1,
                offered: version + 2
            })
        );
        let mut op = signed_by(&fx.group, &fx.founder, add.clone());
        op.prev = OpHash::from_bytes([7; 32]);
        op.sign(&fx.founder).unwrap();
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::Fork));
        let mut op = signed_by(&fx.group, &fx.founder, add.clone());
        op.group = GroupId::from_bytes([7; 32]);
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::WrongGroup));
        let mut op = signed_by(&fx.group, &fx.founder, add.clone());
        op.signer_key = poster.verifying_key().clone();
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::WrongKey));
        let mut op = signed_by(&fx.group, &fx.founder, add.clone());
        op.signature = signed_by(&fx.group, &fx.founder, rotate.clone()).signature;
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::BadSignature));
        assert_eq!(fx.group.version(), version);

        // The admin's own operation goes through, and a replay of it is stale.
        let op = signed_by(&fx.group, &fx.founder, add);
        fx.group.apply(P, &op).unwrap();
        assert!(matches!(
            fx.group.apply(P, &op),
            Err(GroupError::Stale { .. })
        ));

        let c = fx.group.counters();
        assert_eq!(c.forbidden, 4);
        assert_eq!(c.not_member, 1);
        assert_eq!(c.stale, 2);
        assert_eq!((c.gap, c.fork, c.wrong_group), (1, 1, 1));
        assert_eq!((c.wrong_key, c.bad_signature), (1, 1));
        assert_eq!(c.applied, 4);

        // Posting: posters and admins yes, viewers and outsiders no.
        assert!(fx.group.may_post(&fx.founder.peer_id()));
        assert!(fx.group.may_post(&poster.peer_id()));
        assert!(!fx.group.may_post(&viewer.peer_id()));
        assert!(!fx.group.may_post(&outsider.peer_id()));
        let op = fx
            .group
            .propose_set_role(P, &fx.founder, viewer.peer_id(), Role::Poster)
            .unwrap();
        fx.commit(op);
        assert!(fx.group.may_post(&viewer.peer_id()));
    }

    #[test]
    fn membership_rules_are_typed_and_counted() {
        let mut fx = Fixture::new(1, 7);
        let founder = fx.founder.peer_id();
        // The founder alone: it can be neither removed nor demoted.
        let second = identity(20);
        assert_eq!(
            fx.group
                .propose_set_role(P, &fx.founder, founder, Role::Poster)
                .unwrap_err(),
            GroupError::LastAdmin
        );
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::Remove {
                member: founder,
                shard_key: fx.group.shard(0).unwrap().key.clone(),
            },
        );
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::LastAdmin));
        // With a second admin, an admin still may not remove itself, but may remove the other.
        fx.add(
            second.peer_id(),
            second.encapsulation_key().clone(),
            Role::Admin,
        );
        assert_eq!(fx.group.admins(), 2);
        assert_eq!(
            fx.group
                .propose_remove(P, &fx.founder, founder, &mut fx.rng)
                .unwrap_err(),
            GroupError::SelfRemoval
        );
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::Remove {
                member: founder,
                shard_key: fx.group.shard(0).unwrap().key.clone(),
            },
        );
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::SelfRemoval));
        assert_eq!(
            fx.group
                .propose_add(
                    P,
                    &fx.founder,
                    second.peer_id(),
                    second.encapsulation_key().clone(),
                    Role::Viewer,
                    false,
                    &mut fx.rng
                )
                .unwrap_err(),
            GroupError::AlreadyMember
        );
        let stranger = Reader::new(9, 0);
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::SetRole {
                member: stranger.peer,
                role: Role::Poster,
            },
        );
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::UnknownMember));
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::Rotate {
                shard: 9,
                shard_key: stranger.key(),
            },
        );
        assert_eq!(
            fx.group.apply(P, &op),
            Err(GroupError::UnknownShard { shard: 9 })
        );
        // Shard size 1: every add opens a shard, and must carry its key.
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::Add {
                member: stranger.peer,
                key: stranger.key(),
                role: Role::Viewer,
                shard_key: None,
            },
        );
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::MissingShardKey));
        // Keys that are not ML-KEM-768 keys (coefficients ≥ q) are refused.
        let junk =
            EncapsulationKeyBytes::from_array([0xff; crate::crypto::KEM_ENCAPSULATION_KEY_LEN]);
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::Add {
                member: stranger.peer,
                key: junk.clone(),
                role: Role::Viewer,
                shard_key: Some(stranger.key()),
            },
        );
        assert_eq!(fx.group.apply(P, &op), Err(GroupError::InvalidKey));
        assert_eq!(
            fx.group
                .propose_add(
                    P,
                    &fx.founder,
                    stranger.peer,
                    junk,
                    Role::Viewer,
                    false,
                    &mut fx.rng
                )
                .unwrap_err(),
            GroupError::InvalidKey
        );
        // The second admin removes the founder (demoting first is not needed).
        let proposal = fx
            .group
            .propose_remove(P, &second, founder, &mut fx.rng)
            .unwrap();
        fx.group.apply(P, &proposal.op).unwrap();
        assert_eq!(fx.group.admins(), 1);
        assert_eq!(fx.group.shard(0).unwrap().members, Vec::<PeerId>::new());
        // An empty shard gets no slot.
        let sealed = seal_to_group(P, &fx.group, b"x", &mut fx.rng).unwrap();
        assert_eq!(sealed.slots.len(), 1);
        let c = fx.group.counters();
        assert_eq!(
            (
                c.last_admin,
                c.self_removal,
                c.unknown_member,
                c.unknown_shard
            ),
            (1, 1, 1, 1)
        );
        assert_eq!((c.missing_shard_key, c.invalid_key), (1, 1));
    }

    #[test]
    fn a_full_group_refuses_members() {
        // Shard size 1: the capacity is MAX_SHARDS members.
        let mut fx = Fixture::new(1, 8);
        assert_eq!(fx.group.capacity(), MAX_SHARDS);
        for i in 1..MAX_SHARDS as u32 {
            let r = Reader::new(10, i);
            fx.add(r.peer, r.key(), Role::Viewer);
        }
        assert_eq!(fx.group.len(), MAX_SHARDS);
        assert_eq!(fx.group.shards().len(), MAX_SHARDS);
        let r = Reader::new(10, 0);
        assert_eq!(
            fx.group
                .propose_add(
                    P,
                    &fx.founder,
                    r.peer,
                    r.key(),
                    Role::Viewer,
                    false,
                    &mut fx.rng
                )
                .unwrap_err(),
            GroupError::TooManyMembers { max: MAX_SHARDS }
        );
        let op = signed_by(
            &fx.group,
            &fx.founder,
            Change::Add {
                member: r.peer,
                key: r.key(),
                role: Role::Viewer,
                shard_key: Some(r.key()),
            },
        );
        assert_eq!(
            fx.group.apply(P, &op),
            Err(GroupError::TooManyMembers { max: MAX_SHARDS })
        );
        assert_eq!(fx.group.counters().too_many_members, 1);
        // A message to the full group: one slot per shard.
        let sealed = seal_to_group(P, &fx.group, b"all", &mut fx.rng).unwrap();
        assert_eq!(sealed.slots.len(), MAX_SHARDS);
    }

    #[test]
    fn shards_split_at_the_limit_and_a_full_rekey_fits_a_frame() {
        let mut fx = Fixture::new(DEFAULT_SHARD_SIZE, 9);
        let readers: Vec<Reader> = (0..DEFAULT_SHARD_SIZE as u32)
            .map(|i| Reader::new(11, i))
            .collect();
        for r in &readers[..DEFAULT_SHARD_SIZE - 1] {
            fx.add(r.peer, r.key(), Role::Viewer);
        }
        assert_eq!(fx.group.len(), 200);
        assert_eq!(fx.group.shards().len(), 1);
        assert_eq!(
            seal_to_group(P, &fx.group, b"", &mut fx.rng)
                .unwrap()
                .slots
                .len(),
            1
        );

        // The rekey of a full shard: 200 slots, within a message payload and a frame.
        let package = fx.package(0);
        assert_eq!(package.slots.len(), 200);
        let bytes = package.to_bytes().unwrap();
        assert_eq!(bytes.len(), package_len(200) - 12);
        assert!(bytes.len() + MESSAGE_OVERHEAD <= MAX_FRAME_LEN);
        assert_eq!(KeyPackage::from_bytes(&bytes).unwrap(), package);
        let last = &readers[DEFAULT_SHARD_SIZE - 2];
        let key_last = fx
            .group
            .open_package(P, &package, &*last.decapsulator)
            .unwrap();

        // The 201st member opens shard 1; a group message now carries two slots.
        let extra = &readers[DEFAULT_SHARD_SIZE - 1];
        let applied = fx.add(extra.peer, extra.key(), Role::Viewer);
        assert_eq!(applied.rekeyed, Some(1));
        assert_eq!(fx.group.len(), 201);
        assert_eq!(fx.group.shards().len(), 2);
        assert_eq!(fx.group.shard(0).unwrap().members.len(), 200);
        assert_eq!(fx.group.shard(1).unwrap().members, vec![extra.peer]);
        let key_extra = fx.shard_key(&extra.peer, &*extra.decapsulator);
        let sealed = seal_to_group(P, &fx.group, b"two shards", &mut fx.rng).unwrap();
        assert_eq!(sealed.slots.len(), 2);
        for key in [&key_last, &key_extra] {
            assert_eq!(&**open_as_member(&sealed, key).unwrap(), b"two shards");
        }
        // Removing the newcomer rekeys shard 1 only.
        let epoch0 = fx.group.shard(0).unwrap().epoch;
        fx.remove(extra.peer);
        assert_eq!(fx.group.shard(0).unwrap().epoch, epoch0);
        assert_eq!(fx.group.shard(1).unwrap().epoch, 1);
    }

    #[test]
    fn package_checks_are_typed_and_counted() {
        let mut fx = Fixture::new(3, 10);
        let viewer = identity(30);
        fx.add(
            viewer.peer_id(),
            viewer.encapsulation_key().clone(),
            Role::Viewer,
        );
        let secret = fx.secrets.get(&0).unwrap().clone();
        // Only admins issue, and only with the secret that gives the shard's key.
        assert_eq!(
            fx.group
                .rekey_package(P, &viewer, 0, &secret, &mut fx.rng)
                .unwrap_err(),
            GroupError::Forbidden { role: Role::Viewer }
        );
        assert_eq!(
            fx.group
                .rekey_package(
                    P,
                    &fx.founder,
                    0,
                    &ShardSecret::from_bytes([1; 32]),
                    &mut fx.rng
                )
                .unwrap_err(),
            GroupError::KeyMismatch
        );
        assert_eq!(
            fx.group
                .rekey_package(P, &fx.founder, 5, &secret, &mut fx.rng)
                .unwrap_err(),
            GroupError::UnknownShard { shard: 5 }
        );

        // A package forged with the wrong secret (by an admin, bypassing `issue`'s check).
        let good = fx.package(0);
        let wrong = envelope::seal(
            P,
            &[viewer.encapsulation_key().clone()],
            &[3; 32],
            &mut fx.rng,
        )
        .unwrap();
        let mut forged = good.clone();
        forged.content = FixedBytes::new(wrong.content.to_bytes()).unwrap();
        forged.slots = PackageSlots::new(wrong.slots.into_vec()).unwrap();
        forged.signature = fx
            .founder
            .signer()
            .sign(&forged.signed_bytes().unwrap())
            .unwrap();
        assert_eq!(fx.group.check_package(P, &forged), Ok(()));
        assert_eq!(
            fx.group
                .open_package(P, &forged, viewer.decapsulator())
                .unwrap_err(),
            GroupError::KeyMismatch
        );
        // Signed by a viewer, or by a non-member.
        let mut by_viewer = good.clone();
        by_viewer.signer = viewer.peer_id();
        by_viewer.signer_key = viewer.verifying_key().clone();
        by_viewer.signature = viewer
            .signer()
            .sign(&by_viewer.signed_bytes().unwrap())
            .unwrap();
        assert_eq!(
            fx.group.check_package(P, &by_viewer),
            Err(GroupError::Forbidden { role: Role::Viewer })
        );
        let outsider = identity(31);
        let mut by_outsider = by_viewer.clone();
        by_outsider.signer = outsider.peer_id();
        assert_eq!(
            fx.group.check_package(P, &by_outsider),
            Err(GroupError::NotMember)
        );
        let mut other_group = good.clone();
        other_group.group = GroupId::from_bytes([1; 32]);
        assert_eq!(
            fx.group.check_package(P, &other_group),
            Err(GroupError::WrongGroup)
        );
        let mut future = good.clone();
        future.epoch = 3;
        assert_eq!(
            fx.group.check_package(P, &future),
            Err(GroupError::EpochMismatch {
                current: 0,
                offered: 3
            })
        );
        let c = fx.group.counters();
        assert_eq!(c.packages_accepted, 1);
        assert_eq!((c.key_mismatch, c.forbidden, c.not_member), (1, 1, 1));
        assert_eq!((c.wrong_group, c.epoch_mismatch), (1, 1));
    }

    /// Byte positions to flip: every byte of the first 160 and every 7th after that.
    fn flip_positions(len: usize) -> impl Iterator<Item = usize> {
        (0..len).filter(|i| *i < 160 || i % 7 == 0)
    }

    #[test]
    fn any_flipped_bit_in_an_op_or_a_package_is_refused() {
        let mut fx = Fixture::new(2, 11);
        let (a, b) = (Reader::new(12, 0), Reader::new(12, 1));
        fx.add(a.peer, a.key(), Role::Poster);
        fx.add(b.peer, b.key(), Role::Viewer);
        let proposal = fx
            .group
            .propose_remove(P, &fx.founder, a.peer, &mut fx.rng)
            .unwrap();
        let bytes = proposal.op.to_bytes().unwrap();
        let mut tried = 0;
        for i in flip_positions(bytes.len()) {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << (i % 8);
            if let Ok(op) = GroupOp::from_bytes(&flipped) {
                let mut group = fx.group.clone();
                assert!(group.apply(P, &op).is_err(), "flip at byte {i} was applied");
                assert_eq!(group.version(), fx.group.version());
                tried += 1;
            }
        }
        assert!(tried > 500, "{tried}");
        fx.commit(proposal);

        // Shard 0 now holds the founder alone; shard 1 holds b. Package shard 1.
        let package = fx.package(1);
        let bytes = package.to_bytes().unwrap();
        let mut group = fx.group.clone();
        group.open_package(P, &package, &*b.decapsulator).unwrap();
        let mut tried = 0;
        for i in flip_positions(bytes.len()) {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << (i % 8);
            if let Ok(p) = KeyPackage::from_bytes(&flipped) {
                assert!(
                    group.check_package(P, &p).is_err(),
                    "flip at byte {i} accepted"
                );
                assert!(group.open_package(P, &p, &*b.decapsulator).is_err());
                tried += 1;
            }
        }
        assert!(tried > 500, "{tried}");
    }

    #[test]
    fn decoders_refuse_oversized_and_malformed_input() {
        let mut fx = Fixture::new(2, 12);
        let a = Reader::new(13, 0);
        fx.add(a.peer, a.key(), Role::Viewer);
        let op = fx
            .group
            .propose_rotate(P, &fx.founder, 0, &mut fx.rng)
            .unwrap()
            .op;
        let bytes = op.to_bytes().unwrap();
        assert_eq!(bytes.len(), 6562);
        assert_eq!(GroupOp::from_bytes(&bytes).unwrap(), op);
        // The largest operation: an add carrying a shard key, at the widest version.
        let mut largest = signed_by(
            &fx.group,
            &fx.founder,
            Change::Add {
                member: a.peer,
                key: a.key(),
                role: Role::Admin,
                shard_key: Some(a.key()),
            },
        );
        assert_eq!(largest.to_bytes().unwrap().len(), 7783);
        largest.version = u64::MAX;
        assert_eq!(largest.to_bytes().unwrap().len(), 7791);
        assert!(largest.to_bytes().unwrap().len() <= MAX_OP_LEN);
        assert_eq!(
            GroupOp::from_bytes(&vec![0; MAX_OP_LEN + 1]).unwrap_err(),
            GroupError::TooLarge {
                len: MAX_OP_LEN + 1,
                max: MAX_OP_LEN
            }
        );
        for cut in [0, 1, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(
                GroupOp::from_bytes(&bytes[..cut]),
                Err(GroupError::Decode(_))
            ));
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            GroupOp::from_bytes(&trailing).unwrap_err(),
            GroupError::Decode(DecodeError::TrailingBytes { extra: 1 })
        );
        // An unknown role or change variant is malformed.
        let set_role = signed_by(
            &fx.group,
            &fx.founder,
            Change::SetRole {
                member: a.peer,
                role: Role::Poster,
            },
        );
        let mut bytes = set_role.to_bytes().unwrap();
        let role_at = bytes
            .windows(33)
            .position(|w| w[..32] == *a.peer.as_bytes() && w[32] == 0x01)
            .unwrap()
            + 32;
        bytes[role_at] = 0x07;
        assert!(matches!(
            GroupOp::from_bytes(&bytes),
            Err(GroupError::Decode(DecodeError::Malformed { .. }))
        ));

        // Packages: over-long input, a slot list over MAX_SHARD_SIZE on its header.
        assert!(matches!(
            KeyPackage::from_bytes(&vec![0; MAX_PACKAGE_LEN + 1]),
            Err(GroupError::TooLarge { .. })
        ));
        let package = fx.package(0);
        let bytes = package.to_bytes().unwrap();
        // The slot list header follows the 48-byte content: 0x82 (2 slots) → 0x98 0xda (218).
        let at = bytes.iter().position(|b| *b == 0x58).unwrap(); // group
        let content_at = at + 34 + 2; // shard 0, epoch 0
        assert_eq!(&bytes[content_at..content_at + 2], &[0x58, 0x30]);
        let slots_at = content_at + 2 + PACKAGE_CONTENT_LEN;
        assert_eq!(bytes[slots_at], 0x82);
        let mut long = bytes[..slots_at].to_vec();
        long.extend_from_slice(&[0x98, 218]);
        long.extend_from_slice(&bytes[slots_at + 1..]);
        assert_eq!(
            KeyPackage::from_bytes(&long).unwrap_err(),
            GroupError::Decode(DecodeError::ListTooLong {
                max: MAX_SHARD_SIZE
            })
        );
        for cut in [0, 10, bytes.len() / 3, bytes.len() - 1] {
            assert!(matches!(
                KeyPackage::from_bytes(&bytes[..cut]),
                Err(GroupError::Decode(_))
            ));
        }
        assert!(fx.group.counters().malformed == 0);
        assert!(!format!("{}", GroupError::LastAdmin).is_empty());
        assert!(format!("{:?}", ShardSecret::from_bytes([0xab; 32])).contains("<secret>"));
    }

    #[test]
    fn same_seeds_give_the_same_bytes() {
        let run = || {
            let mut fx = Fixture::new(2, 13);
            let a = Reader::new(14, 0);
            let op = fx
                .group
                .propose_add(
                    P,
                    &fx.founder,
                    a.peer,
                    a.key(),
                    Role::Viewer,
                    true,
                    &mut fx.rng,
                )
                .unwrap();
            let op_bytes = op.op.to_bytes().unwrap();
            fx.commit(op);
            let package = fx.package(0).to_bytes().unwrap();
            let sealed = seal_to_group(P, &fx.group, b"m", &mut fx.rng)
                .unwrap()
                .to_bytes()
                .unwrap();
            (op_bytes, package, sealed, fx.group.head())
        };
        assert_eq!(run(), run());
    }

    /// Members of `shard` and the decapsulation key of each.
    fn decapsulator_of<'a>(
        peer: &PeerId,
        founder: &'a Identity,
        readers: &'a [Reader],
    ) -> &'a dyn Decapsulator {
        if *peer == founder.peer_id() {
            return founder.decapsulator();
        }
        &*readers
            .iter()
            .find(|r| r.peer == *peer)
            .unwrap()
            .decapsulator
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn removals_rekey_only_their_shard_and_lock_out_the_removed(
            seed in any::<u8>(),
            shard_size in 1usize..=3,
            n in 1u32..=7,
            removals in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            let mut fx = Fixture::new(shard_size, seed);
            let readers: Vec<Reader> = (0..n).map(|i| Reader::new(seed ^ 0x5a, i)).collect();
            for r in &readers {
                fx.add(r.peer, r.key(), Role::Viewer);
            }
            // First fit in join order: full shards, then the rest.
            let total = n as usize + 1;
            prop_assert_eq!(fx.group.shards().len(), total.div_ceil(shard_size));
            for s in fx.group.shards() {
                prop_assert!(s.members.len() <= shard_size);
            }
            let founder = identity(0);
            let mut keys: BTreeMap<PeerId, ShardKey> = BTreeMap::new();
            for shard in 0..fx.group.shards().len() as ShardIndex {
                let package = fx.package(shard);
                for peer in fx.group.shard(shard).unwrap().members.clone() {
                    let me = decapsulator_of(&peer, &founder, &readers);
                    keys.insert(peer, fx.group.open_package(P, &package, me).unwrap());
                }
            }
            let mut present: Vec<usize> = (0..readers.len()).collect();
            let mut removed: Vec<usize> = Vec::new();
            for index in removals {
                if present.is_empty() {
                    break;
                }
                let gone = present.remove(index.index(present.len()));
                let before = fx.group.shards().to_vec();
                let applied = fx.remove(readers[gone].peer);
                let shard = applied.rekeyed.unwrap();
                for (i, (old, new)) in before.iter().zip(fx.group.shards()).enumerate() {
                    if i == shard as usize {
                        prop_assert_eq!(new.epoch, old.epoch + 1);
                        prop_assert_ne!(&new.key, &old.key);
                    } else {
                        prop_assert_eq!(old, new);
                    }
                }
                removed.push(gone);
                let members = fx.group.shard(shard).unwrap().members.clone();
                if !members.is_empty() {
                    let package = fx.package(shard);
                    for peer in members {
                        let me = decapsulator_of(&peer, &founder, &readers);
                        keys.insert(peer, fx.group.open_package(P, &package, me).unwrap());
                    }
                    for r in &removed {
                        prop_assert!(package.open(&*readers[*r].decapsulator).is_err());
                    }
                }
            }
            let sealed = seal_to_group(P, &fx.group, b"proptest", &mut fx.rng).unwrap();
            let non_empty = fx.group.shards().iter().filter(|s| !s.members.is_empty()).count();
            prop_assert_eq!(sealed.slots.len(), non_empty);
            prop_assert_eq!(&**open_as_member(&sealed, &keys[&founder.peer_id()]).unwrap(), b"proptest");
            for i in &present {
                let key = &keys[&readers[*i].peer];
                prop_assert_eq!(&**open_as_member(&sealed, key).unwrap(), b"proptest");
            }
            for i in &removed {
                prop_assert!(open_as_member(&sealed, &keys[&readers[*i].peer]).is_err());
                prop_assert!(envelope::open(&sealed, &*readers[*i].decapsulator).is_err());
            }
        }
    }
}
