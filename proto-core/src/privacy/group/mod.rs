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

mod keys;
mod op;
mod state;
pub use keys::*;
pub use op::*;
pub use state::*;

use crate::broadcast::message::MAX_PAYLOAD;
use crate::crypto::{CryptoProvider, EncapsulationKeyBytes, SIGNATURE_LEN, SignatureBytes};
use crate::id::PeerId;
use crate::privacy::envelope::{self, EnvelopeError, SLOT_ENCODED_LEN, Slot, TAG_LEN};
use crate::wire::MAX_FRAME_LEN;
use crate::wire::codec::{BoundedVec, DecodeError, EncodeError};
use core::fmt;
use minicbor::{Decode, Encode};

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

#[cfg(test)]
mod tests;
