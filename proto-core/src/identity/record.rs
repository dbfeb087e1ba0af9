//! Signed peer records: the one document that binds a [`PeerId`] to its keys and addresses.

use crate::crypto::{
    CryptoProvider, EncapsulationKeyBytes, SignatureBytes, VerifyingKeyBytes, signing_input,
};
use crate::id::PeerId;
use crate::identity::Identity;
use crate::time::{TimeDelta, Timestamp};
use crate::wire::codec::{self, BoundedBytes, BoundedVec, DecodeError, EncodeError};
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Encode};

/// Most addresses one record may list.
pub const MAX_ADDRESSES: usize = 8;
/// Longest opaque address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 128;
/// Longest lifetime (`expires_at - issued_at`) a record may claim.
pub const MAX_RECORD_LIFETIME: TimeDelta = TimeDelta::from_secs(7 * 24 * 3600);
/// How far in the future `issued_at` may lie before a record is "not yet valid" (clock skew).
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::from_secs(300);
/// Domain of the record signature (SPEC.md §3).
pub const RECORD_DOMAIN: &str = "hearsay/v1/peer-record";

/// An address a driver knows how to dial. The core never interprets it: the tokio runtime puts a
/// socket address's text form here, the simulator a node number.
pub type Address = BoundedBytes<MAX_ADDRESS_LEN>;
/// The addresses of a record.
pub type Addresses = BoundedVec<Address, MAX_ADDRESSES>;

/// A signed statement by a peer: "I am `peer_id`; these are my keys and addresses, valid from
/// `issued_at` until `expires_at`". Anyone can check it with [`PeerRecord::verify`].
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct PeerRecord {
    /// The record's subject, which must equal BLAKE3-derive(verifying key).
    #[n(0)]
    pub peer_id: PeerId,
    /// ML-DSA-65 verifying key.
    #[n(1)]
    pub verifying_key: VerifyingKeyBytes,
    /// ML-KEM-768 encapsulation key (to seal content to this peer).
    #[n(2)]
    pub encapsulation_key: EncapsulationKeyBytes,
    /// Where to reach the peer; opaque to the core.
    #[n(3)]
    pub addresses: Addresses,
    /// When the peer signed the record (µs since the Unix epoch); a newer record replaces older.
    #[n(4)]
    pub issued_at: Timestamp,
    /// After this instant the record is void.
    #[n(5)]
    pub expires_at: Timestamp,
    /// ML-DSA-65 signature over [`PeerRecord::signed_bytes`].
    #[n(6)]
    pub signature: SignatureBytes,
}

/// The signed part of a record: fields 0–5 in the same encoding.
#[derive(Encode)]
struct SignedPart<'a> {
    #[n(0)]
    peer_id: &'a PeerId,
    #[n(1)]
    verifying_key: &'a VerifyingKeyBytes,
    #[n(2)]
    encapsulation_key: &'a EncapsulationKeyBytes,
    #[n(3)]
    addresses: &'a Addresses,
    #[n(4)]
    issued_at: &'a Timestamp,
    #[n(5)]
    expires_at: &'a Timestamp,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// `peer_id` is not the id of `verifying_key`.
    PeerIdMismatch,
    /// `expires_at` has passed.
    Expired,
    /// `issued_at` lies further in the future than the allowed clock skew.
    NotYetValid,
    /// `expires_at` is before `issued_at`, or the lifetime exceeds [`MAX_RECORD_LIFETIME`].
    BadLifetime,
    /// The signature does not verify.
    BadSignature,
    /// The record could not be encoded (over a wire limit).
    Encode(EncodeError),
    /// The record could not be decoded.
    Decode(DecodeError),
    /// The identity's key could not sign.
    SigningFailed,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::PeerIdMismatch => f.write_str("peer id does not match the verifying key"),
            RecordError::Expired => f.write_str("record has expired"),
            RecordError::NotYetValid => f.write_str("record is issued in the future"),
            RecordError::BadLifetime => f.write_str("record lifetime is negative or too long"),
            RecordError::BadSignature => f.write_str("record signature does not verify"),
            RecordError::Encode(e) => write!(f, "record cannot be encoded: {e}"),
            RecordError::Decode(e) => write!(f, "record cannot be decoded: {e}"),
            RecordError::SigningFailed => f.write_str("signing failed"),
        }
    }
}

impl core::error::Error for RecordError {}

impl PeerRecord {
    /// Issues and signs a record for `identity`, valid for `lifetime` from `now`.
    pub fn issue(
        identity: &Identity,
        addresses: Addresses,
        now: Timestamp,
        lifetime: TimeDelta,
    ) -> Result<Self, RecordError> {
        if lifetime > MAX_RECORD_LIFETIME || lifetime == TimeDelta::ZERO {
            return Err(RecordError::BadLifetime);
        }
        let mut record = PeerRecord {
            peer_id: identity.peer_id(),
            verifying_key: identity.verifying_key().clone(),
            encapsulation_key: identity.encapsulation_key().clone(),
            addresses,
            issued_at: now,
            expires_at: now + lifetime,
            // Placeholder, replaced below before the record leaves this function.
            signature: SignatureBytes::from_array([0; crate::crypto::SIGNATURE_LEN]),
        };
        let message = record.signed_bytes().map_err(RecordError::Encode)?;
        record.signature = identity
            .signer()
            .sign(&message)
            .map_err(|_| RecordError::SigningFailed)?;
        Ok(record)
    }

    /// The exact bytes the signature covers: the signing input for [`RECORD_DOMAIN`] over the
    /// CBOR encoding of fields 0–5.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let body = codec::to_vec(&SignedPart {
            peer_id: &self.peer_id,
            verifying_key: &self.verifying_key,
            encapsulation_key: &self.encapsulation_key,
            addresses: &self.addresses,
            issued_at: &self.issued_at,
            expires_at: &self.expires_at,
        })?;
        Ok(signing_input(RECORD_DOMAIN, &body))
    }

    /// Checks everything a receiver must check before trusting the record at `now`: the id
    /// binding, the validity window, and the signature (the most expensive check, done last).
    pub fn verify(&self, provider: &dyn CryptoProvider, now: Timestamp) -> Result<(), RecordError> {
        if PeerId::from_verifying_key(&self.verifying_key) != self.peer_id {
            return Err(RecordError::PeerIdMismatch);
        }
        if self.expires_at < self.issued_at
            || self.expires_at.saturating_since(self.issued_at) > MAX_RECORD_LIFETIME
        {
            return Err(RecordError::BadLifetime);
        }
        if self.expires_at <= now {
            return Err(RecordError::Expired);
        }
        if self.issued_at > now + MAX_CLOCK_SKEW {
            return Err(RecordError::NotYetValid);
        }
        let message = self.signed_bytes().map_err(RecordError::Encode)?;
        if !provider.verify(&self.verifying_key, &message, &self.signature) {
            return Err(RecordError::BadSignature);
        }
        Ok(())
    }

    /// Encodes the record alone (for stores and caches).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        codec::to_vec(self)
    }

    /// Decodes a record (without verifying it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::from_slice(bytes)
    }
}

impl fmt::Debug for PeerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerRecord")
            .field("peer_id", &self.peer_id)
            .field("addresses", &self.addresses)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
