//! Access records and delete requests (SPEC.md §17.7).
//!
//! A message id covers an envelope's content ciphertext, never its slots (§2, §17.1). Who may
//! read a message is therefore said separately, by an [`AccessRecord`]: the slots of the
//! envelope, signed by the message's author with a version number. A newer version replaces an
//! older one, so the author can change the readers of a message without changing its id or
//! re-sending its content ("sync access list" revocation: re-wrap the same content key for the
//! remaining readers with [`envelope::seal_with_key`] and issue the next version).
//!
//! A [`DeleteRequest`], also signed by the author, withdraws a message: stores drop its access
//! record and refuse later ones. Together with a new envelope under a fresh content key (a new
//! message) it gives "re-encrypt" revocation, after which a revoked reader holds no key to
//! anything new.
//!
//! [`AccessStore`] keeps the latest verified record per message and the ids deleted, both
//! bounded; every refusal is a typed [`AccessError`] and is counted in [`Counters`].

use crate::crypto::{
    CryptoProvider, Decapsulator, SIGNATURE_LEN, SignatureBytes, VerifyingKeyBytes, signing_input,
};
use crate::id::{MessageId, PeerId};
use crate::identity::Identity;
use crate::privacy::envelope::{self, Content, EnvelopeError, MAX_SLOTS, Sealed, Slot};
use crate::wire::codec::{self, BoundedVec, DecodeError, EncodeError};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashSet};
use minicbor::{Decode, Encode};
use zeroize::Zeroizing;

/// Domain of access-record signatures (SPEC.md §3, §17.7).
pub const ACCESS_DOMAIN: &str = "hearsay/v1/access";
/// Domain of delete-request signatures (SPEC.md §3, §17.7).
pub const DELETE_DOMAIN: &str = "hearsay/v1/delete";

/// The slots of an access record (0 to [`MAX_SLOTS`]; none means nobody can read).
pub type Slots = BoundedVec<Slot, MAX_SLOTS>;

/// The author's signed statement of who may read a message: the envelope slots of version
/// `version`. Combine with the message's content via [`AccessRecord::sealed`] or
/// [`open_with_record`].
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct AccessRecord {
    /// The message whose readers this names.
    #[n(0)]
    pub message: MessageId,
    /// The message's author, who signs.
    #[n(1)]
    pub author: PeerId,
    /// Higher replaces lower; equal or lower is stale.
    #[n(2)]
    pub version: u64,
    /// One slot per reader, as in an envelope (§17.1).
    #[n(3)]
    pub slots: Slots,
    /// ML-DSA-65 over [`AccessRecord::signed_bytes`].
    #[n(4)]
    pub signature: SignatureBytes,
}

/// The author's signed withdrawal of a message.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct DeleteRequest {
    /// The message withdrawn.
    #[n(0)]
    pub message: MessageId,
    /// Its author, who signs.
    #[n(1)]
    pub author: PeerId,
    /// ML-DSA-65 over [`DeleteRequest::signed_bytes`].
    #[n(2)]
    pub signature: SignatureBytes,
}

/// Why an access record or delete request was refused, or a message could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// The signer named in the record is not the message's author.
    NotAuthor,
    /// The verifying key given is not the key of the record's `author`.
    WrongKey,
    /// The signature does not verify.
    BadSignature,
    /// The version is not newer than the one stored.
    Stale {
        /// The stored version.
        stored: u64,
        /// The version offered.
        offered: u64,
    },
    /// The message was deleted; no access record for it is accepted.
    Deleted,
    /// The author could not sign.
    SigningFailed,
    /// The record could not be encoded (over a wire limit).
    Encode(EncodeError),
    /// The bytes could not be decoded.
    Decode(DecodeError),
    /// The envelope made of the content and the record's slots did not open.
    Envelope(EnvelopeError),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::NotAuthor => f.write_str("signer is not the message's author"),
            AccessError::WrongKey => f.write_str("key does not belong to the named author"),
            AccessError::BadSignature => f.write_str("signature does not verify"),
            AccessError::Stale { stored, offered } => write!(
                f,
                "access record version {offered} is not newer than the stored version {stored}"
            ),
            AccessError::Deleted => f.write_str("the message was deleted"),
            AccessError::SigningFailed => f.write_str("signing failed"),
            AccessError::Encode(e) => write!(f, "cannot be encoded: {e}"),
            AccessError::Decode(e) => write!(f, "cannot be decoded: {e}"),
            AccessError::Envelope(e) => write!(f, "envelope does not open: {e}"),
        }
    }
}

impl core::error::Error for AccessError {}

/// A zero signature, replaced before an issued object leaves its constructor.
fn placeholder_signature() -> SignatureBytes {
    SignatureBytes::from_array([0; SIGNATURE_LEN])
}

/// `message ‖ author ‖ version (u64 BE) ‖ BLAKE3(CBOR(slots))`, in the access domain.
fn access_signed_bytes(
    message: &MessageId,
    author: &PeerId,
    version: u64,
    slots: &Slots,
) -> Result<Vec<u8>, EncodeError> {
    let encoded = codec::to_vec(slots)?;
    let slots_hash = blake3::hash(&encoded);
    let mut body = Vec::with_capacity(32 + 32 + 8 + 32);
    body.extend_from_slice(message.as_bytes());
    body.extend_from_slice(author.as_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(slots_hash.as_bytes());
    Ok(signing_input(ACCESS_DOMAIN, &body))
}

/// `message ‖ author`, in the delete domain.
fn delete_signed_bytes(message: &MessageId, author: &PeerId) -> Vec<u8> {
    let mut body = [0u8; 64];
    let (a, b) = body.split_at_mut(32);
    a.copy_from_slice(message.as_bytes());
    b.copy_from_slice(author.as_bytes());
    signing_input(DELETE_DOMAIN, &body)
}

/// The checks shared by records and requests: the key is the author's, the signature verifies.
fn check_signature(
    provider: &dyn CryptoProvider,
    author: &PeerId,
    author_key: &VerifyingKeyBytes,
    signed: &[u8],
    signature: &SignatureBytes,
) -> Result<(), AccessError> {
    if PeerId::from_verifying_key(author_key) != *author {
        return Err(AccessError::WrongKey);
    }
    if !provider.verify(author_key, signed, signature) {
        return Err(AccessError::BadSignature);
    }
    Ok(())
}

impl AccessRecord {
    /// Issues and signs version `version` of the access record of `message` by its `author`.
    pub fn issue(
        author: &Identity,
        message: MessageId,
        version: u64,
        slots: Slots,
    ) -> Result<Self, AccessError> {
        let mut record = AccessRecord {
            message,
            author: author.peer_id(),
            version,
            slots,
            signature: placeholder_signature(),
        };
        let signed = record.signed_bytes()?;
        record.signature = author
            .signer()
            .sign(&signed)
            .map_err(|_| AccessError::SigningFailed)?;
        Ok(record)
    }

    /// The exact bytes the signature covers: `signing_input(ACCESS_DOMAIN, message ‖ author ‖
    /// version (u64 big-endian) ‖ BLAKE3(CBOR(slots)))`.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, AccessError> {
        access_signed_bytes(&self.message, &self.author, self.version, &self.slots)
            .map_err(AccessError::Encode)
    }

    /// Checks that `author_key` is the key of `author` and that the signature verifies. Whether
    /// `author` really is the message's author is the caller's knowledge (see
    /// [`AccessStore::offer`]).
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), AccessError> {
        let signed = self.signed_bytes()?;
        check_signature(provider, &self.author, author_key, &signed, &self.signature)
    }

    /// The envelope made of a message's `content` and this record's slots.
    pub fn sealed(&self, content: &Content) -> Sealed {
        Sealed {
            content: content.clone(),
            slots: self.slots.clone(),
        }
    }

    /// Encodes the record.
    pub fn to_bytes(&self) -> Result<Vec<u8>, AccessError> {
        codec::to_vec(self).map_err(AccessError::Encode)
    }

    /// Decodes a record (without verifying it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccessError> {
        codec::from_slice(bytes).map_err(AccessError::Decode)
    }
}

impl fmt::Debug for AccessRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessRecord")
            .field("message", &self.message)
            .field("author", &self.author)
            .field("version", &self.version)
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl DeleteRequest {
    /// Issues and signs the withdrawal of `message` by its `author`.
    pub fn issue(author: &Identity, message: MessageId) -> Result<Self, AccessError> {
        let signed = delete_signed_bytes(&message, &author.peer_id());
        let signature = author
            .signer()
            .sign(&signed)
            .map_err(|_| AccessError::SigningFailed)?;
        Ok(DeleteRequest {
            message,
            author: author.peer_id(),
            signature,
        })
    }

    /// The exact bytes the signature covers: `signing_input(DELETE_DOMAIN, message ‖ author)`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        delete_signed_bytes(&self.message, &self.author)
    }

    /// Checks that `author_key` is the key of `author` and that the signature verifies.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), AccessError> {
        check_signature(
            provider,
            &self.author,
            author_key,
            &self.signed_bytes(),
            &self.signature,
        )
    }

    /// Encodes the request.
    pub fn to_bytes(&self) -> Result<Vec<u8>, AccessError> {
        codec::to_vec(self).map_err(AccessError::Encode)
    }

    /// Decodes a request (without verifying it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccessError> {
        codec::from_slice(bytes).map_err(AccessError::Decode)
    }
}

impl fmt::Debug for DeleteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteRequest")
            .field("message", &self.message)
            .field("author", &self.author)
            .finish_non_exhaustive()
    }
}

/// Opens a message's `content` with the slots of its access `record` as the holder of `me`.
/// The record should have been verified (e.g. taken from an [`AccessStore`]); slots are bound
/// to the content hash, so slots made for other content give [`EnvelopeError::NotARecipient`].
pub fn open_with_record(
    content: &Content,
    record: &AccessRecord,
    me: &dyn Decapsulator,
) -> Result<Zeroizing<Vec<u8>>, AccessError> {
    envelope::open(&record.sealed(content), me).map_err(AccessError::Envelope)
}

/// What [`AccessStore::offer`] did with an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The first record stored for this message.
    New,
    /// Replaced the stored record of a lower version.
    Replaced {
        /// The version replaced.
        previous: u64,
    },
}

/// What an [`AccessStore`] accepted and refused, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records stored for a message that had none.
    pub new: u64,
    /// Records that replaced a lower version.
    pub replaced: u64,
    /// Records or requests whose signer is not the message's author.
    pub not_author: u64,
    /// Records or requests checked against a key that is not the named author's.
    pub wrong_key: u64,
    /// Records or requests whose signature did not verify.
    pub bad_signature: u64,
    /// Records not newer than the stored version.
    pub stale: u64,
    /// Records refused because their message was deleted.
    pub refused_deleted: u64,
    /// Records that could not be encoded to be checked.
    pub malformed: u64,
    /// Delete requests accepted (the first for each message).
    pub deletes: u64,
    /// Records evicted to make room.
    pub evicted_records: u64,
    /// Deleted ids forgotten to make room.
    pub evicted_deletes: u64,
}

impl Counters {
    fn count(&mut self, error: &AccessError) {
        let counter = match error {
            AccessError::NotAuthor => &mut self.not_author,
            AccessError::WrongKey => &mut self.wrong_key,
            AccessError::BadSignature => &mut self.bad_signature,
            AccessError::Stale { .. } => &mut self.stale,
            AccessError::Deleted => &mut self.refused_deleted,
            AccessError::SigningFailed
            | AccessError::Encode(_)
            | AccessError::Decode(_)
            | AccessError::Envelope(_) => &mut self.malformed,
        };
        *counter = counter.saturating_add(1);
    }
}

/// The latest verified access record per message, and the messages deleted.
///
/// At most `capacity` records (when full, the record inserted first is evicted; replacing a
/// record keeps its place) and at most `capacity` deleted ids (when full, the oldest deletion
/// is forgotten, after which a record for that id would be accepted again: size the store to
/// cover the retention window of the messages it serves).
#[derive(Debug)]
pub struct AccessStore {
    records: HashMap<MessageId, AccessRecord, FixedState>,
    order: VecDeque<MessageId>,
    /// Records held per author (room is made from the author holding the most).
    by_author: alloc::collections::BTreeMap<PeerId, usize>,
    deleted: HashSet<MessageId, FixedState>,
    deleted_order: VecDeque<MessageId>,
    capacity: usize,
    counters: Counters,
}

impl AccessStore {
    /// An empty store holding at most `capacity` records and `capacity` deleted ids (at
    /// least one of each).
    pub fn new(capacity: usize) -> Self {
        Self {
            records: HashMap::with_hasher(FixedState::with_seed(0)),
            order: VecDeque::new(),
            by_author: alloc::collections::BTreeMap::new(),
            deleted: HashSet::with_hasher(FixedState::with_seed(0)),
            deleted_order: VecDeque::new(),
            capacity: capacity.max(1),
            counters: Counters::default(),
        }
    }

    /// The most records (and deleted ids) kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Deleted ids remembered.
    pub fn deleted_len(&self) -> usize {
        self.deleted.len()
    }

    /// The latest record of `message`.
    pub fn get(&self, message: &MessageId) -> Option<&AccessRecord> {
        self.records.get(message)
    }

    /// Whether `message` was deleted (and the deletion is still remembered).
    pub fn is_deleted(&self, message: &MessageId) -> bool {
        self.deleted.contains(message)
    }

    /// What was accepted and refused so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Offers a record for a message whose author is `expected_author`, checked with
    /// `author_key`. Refused: a signer other than the author ([`AccessError::NotAuthor`]), a
    /// key not the author's, a bad signature, a version not newer than the stored one
    /// ([`AccessError::Stale`]), a deleted message ([`AccessError::Deleted`]). The cheap
    /// checks come first, the signature last.
    pub fn offer(
        &mut self,
        record: AccessRecord,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
        expected_author: PeerId,
    ) -> Result<Offer, AccessError> {
        let result = self.offer_inner(record, provider, author_key, expected_author);
        match &result {
            Ok(Offer::New) => self.counters.new = self.counters.new.saturating_add(1),
            Ok(Offer::Replaced { .. }) => {
                self.counters.replaced = self.counters.replaced.saturating_add(1);
            }
            Err(e) => self.counters.count(e),
        }
        result
    }

    fn offer_inner(
        &mut self,
        record: AccessRecord,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
        expected_author: PeerId,
    ) -> Result<Offer, AccessError> {
        if record.author != expected_author {
            return Err(AccessError::NotAuthor);
        }
        if self.deleted.contains(&record.message) {
            return Err(AccessError::Deleted);
        }
        let previous = self.records.get(&record.message).map(|r| r.version);
        if let Some(stored) = previous
            && record.version <= stored
        {
            return Err(AccessError::Stale {
                stored,
                offered: record.version,
            });
        }
        record.verify(provider, author_key)?;
        match previous {
            Some(previous) => {
                self.records.insert(record.message, record);
                Ok(Offer::Replaced { previous })
            }
            None => {
                while self.records.len() >= self.capacity {
                    let Some(old) = self.eviction_victim() else {
                        break;
                    };
                    if self.forget(&old) {
                        self.counters.evicted_records =
                            self.counters.evicted_records.saturating_add(1);
                    }
                }
                self.order.push_back(record.message);
                *self.by_author.entry(record.author).or_default() += 1;
                self.records.insert(record.message, record);
                Ok(Offer::New)
            }
        }
    }

    /// The record to evict for a new one: the first inserted of the author holding the most
    /// (ties: the smallest id), taken out of the insertion order. One author offering ten
    /// times the store's capacity evicts its own records, not other authors'.
    fn eviction_victim(&mut self) -> Option<MessageId> {
        let heaviest = self
            .by_author
            .iter()
            .max_by_key(|(a, n)| (**n, core::cmp::Reverse(**a)))
            .map(|(a, _)| *a);
        let at = heaviest
            .and_then(|a| {
                self.order
                    .iter()
                    .position(|m| self.records.get(m).is_some_and(|r| r.author == a))
            })
            .unwrap_or(0);
        self.order.remove(at)
    }

    /// Drops the record of `message`, if held (its place in the order is the caller's).
    fn forget(&mut self, message: &MessageId) -> bool {
        let Some(r) = self.records.remove(message) else {
            return false;
        };
        if let Some(n) = self.by_author.get_mut(&r.author) {
            *n -= 1;
            if *n == 0 {
                self.by_author.remove(&r.author);
            }
        }
        true
    }

    /// Honours a delete request for a message whose author is `expected_author`, checked with
    /// `author_key`: drops the message's access record and refuses later ones. Returns whether
    /// the deletion is new (a repeated request is accepted and changes nothing).
    pub fn delete(
        &mut self,
        request: &DeleteRequest,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
        expected_author: PeerId,
    ) -> Result<bool, AccessError> {
        let result = self.delete_inner(request, provider, author_key, expected_author);
        match &result {
            Ok(true) => self.counters.deletes = self.counters.deletes.saturating_add(1),
            Ok(false) => {}
            Err(e) => self.counters.count(e),
        }
        result
    }

    fn delete_inner(
        &mut self,
        request: &DeleteRequest,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
        expected_author: PeerId,
    ) -> Result<bool, AccessError> {
        if request.author != expected_author {
            return Err(AccessError::NotAuthor);
        }
        request.verify(provider, author_key)?;
        let id = request.message;
        if self.deleted.contains(&id) {
            return Ok(false);
        }
        if self.forget(&id) {
            self.order.retain(|m| *m != id);
        }
        while self.deleted.len() >= self.capacity {
            let Some(old) = self.deleted_order.pop_front() else {
                break;
            };
            if self.deleted.remove(&old) {
                self.counters.evicted_deletes = self.counters.evicted_deletes.saturating_add(1);
            }
        }
        self.deleted.insert(id);
        self.deleted_order.push_back(id);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PureRustProvider;

    /// The harness's identity `n` (real ML-DSA/ML-KEM: envelopes need working keys).
    fn identity(n: u8) -> Identity {
        crate::testing::identity_with(&PureRustProvider, u64::from(n))
    }

    fn id(n: u8) -> MessageId {
        MessageId::from_bytes([n; 32])
    }

    #[test]
    fn signed_bytes_follow_the_spec_layout() {
        let author = identity(1);
        let record = AccessRecord::issue(&author, id(7), 0x0102, Slots::empty()).unwrap();
        let signed = record.signed_bytes().unwrap();
        let mut expected = Vec::new();
        expected.push(ACCESS_DOMAIN.len() as u8);
        expected.extend_from_slice(ACCESS_DOMAIN.as_bytes());
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(author.peer_id().as_bytes());
        expected.extend_from_slice(&0x0102u64.to_be_bytes());
        expected.extend_from_slice(blake3::hash(&[0x80]).as_bytes());
        assert_eq!(signed, expected);
        record
            .verify(&PureRustProvider, author.verifying_key())
            .unwrap();

        let request = DeleteRequest::issue(&author, id(7)).unwrap();
        let mut expected = Vec::new();
        expected.push(DELETE_DOMAIN.len() as u8);
        expected.extend_from_slice(DELETE_DOMAIN.as_bytes());
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(author.peer_id().as_bytes());
        assert_eq!(request.signed_bytes(), expected);
        request
            .verify(&PureRustProvider, author.verifying_key())
            .unwrap();
    }

    #[test]
    fn domains_are_not_interchangeable() {
        // A delete signature is never an access signature, and the other way round.
        let author = identity(1);
        let request = DeleteRequest::issue(&author, id(3)).unwrap();
        let forged = AccessRecord {
            message: id(3),
            author: author.peer_id(),
            version: 1,
            slots: Slots::empty(),
            signature: request.signature.clone(),
        };
        assert_eq!(
            forged.verify(&PureRustProvider, author.verifying_key()),
            Err(AccessError::BadSignature)
        );
    }

    #[test]
    fn store_evicts_oldest_insertion_and_counts() {
        let author = identity(1);
        let key = author.verifying_key();
        let mut store = AccessStore::new(2);
        for n in 0..3u8 {
            let r = AccessRecord::issue(&author, id(n), 1, Slots::empty()).unwrap();
            assert_eq!(
                store.offer(r, &PureRustProvider, key, author.peer_id()),
                Ok(Offer::New)
            );
        }
        assert_eq!(store.len(), 2);
        assert!(store.get(&id(0)).is_none());
        assert!(store.get(&id(2)).is_some());
        let c = store.counters();
        assert_eq!((c.new, c.evicted_records), (3, 1));
        let d = DeleteRequest::issue(&author, id(1)).unwrap();
        assert_eq!(
            store.delete(&d, &PureRustProvider, key, author.peer_id()),
            Ok(true)
        );
        assert_eq!(
            store.delete(&d, &PureRustProvider, key, author.peer_id()),
            Ok(false)
        );
        assert_eq!(store.len(), 1);
        assert_eq!(store.counters().deletes, 1);
    }

    #[test]
    fn errors_display() {
        let shown = alloc::format!(
            "{}",
            AccessError::Stale {
                stored: 2,
                offered: 1
            }
        );
        assert!(shown.contains('2') && shown.contains('1'));
        assert!(!alloc::format!("{}", AccessError::NotAuthor).is_empty());
    }
}
