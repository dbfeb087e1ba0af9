use super::*;
use crate::crypto::{
    CryptoProvider, EncapsulationKeyBytes, SignatureBytes, VerifyingKeyBytes, signing_input,
};
use crate::id::PeerId;
use crate::identity::Identity;
use crate::wire::codec::{self, FixedBytes};
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Encode};

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
pub(super) struct OpSignedPart<'a> {
    #[n(0)]
    pub(super) group: &'a GroupId,
    #[n(1)]
    pub(super) version: u64,
    #[n(2)]
    pub(super) prev: &'a OpHash,
    #[n(3)]
    pub(super) signer: &'a PeerId,
    #[n(4)]
    pub(super) change: &'a Change,
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

    pub(super) fn verify_signed(
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

    pub(super) fn sign(&mut self, signer: &Identity) -> Result<(), GroupError> {
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
pub(super) fn encode_within<T: minicbor::Encode<()>>(
    value: &T,
    max: usize,
) -> Result<Vec<u8>, GroupError> {
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
pub(super) fn decode_within<'b, T: minicbor::Decode<'b, ()>>(
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
