use super::*;
use crate::broadcast::message::SignedMessage;
use crate::crypto::{CryptoProvider, SIGNATURE_LEN, SignatureBytes, signing_input};
use crate::id::{PeerId, TopicId};
use crate::identity::record::{MAX_ADDRESS_LEN, MAX_ADDRESSES, PeerRecord};
use crate::time::Timestamp;
use crate::wire::codec::{self, DecodeError, FixedBytes};
use alloc::vec::Vec;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use minicbor::{Decode, Encode};
use zeroize::Zeroizing;

/// Domain of a member's signature over its beacon (SPEC.md §3).
pub const PRESENCE_DOMAIN: &str = "hearsay/v1/presence";
/// Prefix of the associated data of a beacon's ciphertext.
pub const BEACON_AD: &[u8] = b"hearsay/v1/presence-beacon";
/// Length of an epoch tag.
pub const TAG_LEN: usize = 16;
/// Length of a beacon nonce (ChaCha20-Poly1305).
pub const NONCE_LEN: usize = 12;
/// Length of a Poly1305 tag.
pub(super) const AEAD_TAG_LEN: usize = 16;

/// Length of a CBOR header for a byte string or array of `len` items.
pub(super) const fn cbor_header_len(len: usize) -> usize {
    if len < 24 {
        1
    } else if len < 256 {
        2
    } else if len < 65_536 {
        3
    } else {
        5
    }
}

/// The largest encoded [`PeerRecord`]: 8 addresses of 128 B, 9-byte timestamps (7,548 B).
pub const MAX_RECORD_LEN: usize = 1
    + 2
    + 32
    + cbor_header_len(crate::crypto::SIG_VERIFYING_KEY_LEN)
    + crate::crypto::SIG_VERIFYING_KEY_LEN
    + cbor_header_len(crate::crypto::KEM_ENCAPSULATION_KEY_LEN)
    + crate::crypto::KEM_ENCAPSULATION_KEY_LEN
    + 1
    + MAX_ADDRESSES * (cbor_header_len(MAX_ADDRESS_LEN) + MAX_ADDRESS_LEN)
    + 9
    + 9
    + cbor_header_len(SIGNATURE_LEN)
    + SIGNATURE_LEN;

/// The largest encoded inner beacon: array header, status, 9-byte sequence and timestamp, the
/// largest record, the signature (10,880 B).
pub const MAX_INNER_LEN: usize =
    1 + 1 + 9 + 9 + MAX_RECORD_LEN + cbor_header_len(SIGNATURE_LEN) + SIGNATURE_LEN;

/// Every beacon's plaintext is exactly this long: a 2-byte length, the inner beacon, zeros.
pub const PLAINTEXT_LEN: usize = 2 + MAX_INNER_LEN;

/// Every beacon's ciphertext (plaintext and Poly1305 tag) is exactly this long.
pub const CIPHERTEXT_LEN: usize = PLAINTEXT_LEN + AEAD_TAG_LEN;

/// Every beacon's payload (the outer message's payload) is exactly this long (10,932 B).
pub const BEACON_PAYLOAD_LEN: usize = 1
    + cbor_header_len(TAG_LEN)
    + TAG_LEN
    + cbor_header_len(NONCE_LEN)
    + NONCE_LEN
    + cbor_header_len(CIPHERTEXT_LEN)
    + CIPHERTEXT_LEN;

/// Outgoing beacons kept when the owner does not drain them ([`Output::Beacon`]).
pub(super) const MAX_QUEUED_BEACONS: usize = 4;

/// A beacon's payload: the outer, public layer.
#[derive(Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub(super) struct SealedBeacon {
    #[n(0)]
    pub(super) tag: FixedBytes<TAG_LEN>,
    #[n(1)]
    pub(super) nonce: FixedBytes<NONCE_LEN>,
    #[n(2)]
    pub(super) ciphertext: FixedBytes<CIPHERTEXT_LEN>,
}

/// A beacon's plaintext (before padding): what only members see.
#[derive(Clone, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub(super) struct InnerBeacon {
    #[n(0)]
    pub(super) status: Status,
    #[n(1)]
    pub(super) seq: u64,
    #[n(2)]
    pub(super) timestamp: Timestamp,
    #[n(3)]
    pub(super) record: PeerRecord,
    #[n(4)]
    pub(super) signature: SignatureBytes,
}

/// The bytes a member signs: `signing_input(PRESENCE_DOMAIN, topic ‖ epoch ‖ status ‖ seq ‖
/// timestamp ‖ BLAKE3(CBOR(record)))`.
pub(super) fn inner_signed_bytes(
    topic: &TopicId,
    epoch: u64,
    status: Status,
    seq: u64,
    timestamp: Timestamp,
    record: &PeerRecord,
) -> Option<Vec<u8>> {
    let record_bytes = codec::to_vec(record).ok()?;
    let mut body = Vec::with_capacity(32 + 8 + 1 + 8 + 8 + 32);
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&epoch.to_be_bytes());
    body.push(match status {
        Status::Online => 0,
        Status::Offline => 1,
    });
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(&timestamp.as_micros().to_be_bytes());
    body.extend_from_slice(blake3::hash(&record_bytes).as_bytes());
    Some(signing_input(PRESENCE_DOMAIN, &body))
}

/// Associated data of a beacon's ciphertext: it binds the ciphertext to the group, the epoch,
/// the tag and every outer field, so no part of the outer message can be swapped.
pub(super) fn associated_data(
    topic: &TopicId,
    epoch: u64,
    tag: &[u8],
    author: &PeerId,
    sequence: u64,
    timestamp: Timestamp,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(BEACON_AD.len() + 32 + 8 + TAG_LEN + 32 + 8 + 8);
    ad.extend_from_slice(BEACON_AD);
    ad.extend_from_slice(topic.as_bytes());
    ad.extend_from_slice(&epoch.to_be_bytes());
    ad.extend_from_slice(tag);
    ad.extend_from_slice(author.as_bytes());
    ad.extend_from_slice(&sequence.to_be_bytes());
    ad.extend_from_slice(&timestamp.as_micros().to_be_bytes());
    ad
}

pub(super) fn aead_seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(plaintext.len().saturating_add(AEAD_TAG_LEN));
    buf.extend_from_slice(plaintext);
    let nonce = Nonce::from(*nonce);
    let tag = ChaCha20Poly1305::new(key.into())
        .encrypt_inout_detached(&nonce, ad, buf.as_mut_slice().into())
        .ok()?;
    buf.extend_from_slice(&tag);
    Some(buf)
}

pub(super) fn aead_open(
    key: &[u8; 32],
    nonce: &[u8],
    ad: &[u8],
    sealed: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let split = sealed.len().checked_sub(AEAD_TAG_LEN)?;
    let (ct, tag) = sealed.split_at_checked(split)?;
    let tag = Tag::try_from(tag).ok()?;
    let nonce = Nonce::try_from(nonce).ok()?;
    let mut buf = Zeroizing::new(ct.to_vec());
    ChaCha20Poly1305::new(key.into())
        .decrypt_inout_detached(&nonce, ad, buf.as_mut_slice().into(), &tag)
        .ok()?;
    Some(buf)
}

/// Pads an encoded inner beacon to [`PLAINTEXT_LEN`]: 2-byte big-endian length, bytes, zeros.
pub(super) fn pad(inner: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if inner.len() > MAX_INNER_LEN {
        return None;
    }
    let len = u16::try_from(inner.len()).ok()?;
    let mut out = Zeroizing::new(Vec::with_capacity(PLAINTEXT_LEN));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(inner);
    out.resize(PLAINTEXT_LEN, 0);
    Some(out)
}

/// The inner beacon's bytes inside a padded plaintext; the padding must be zeros.
pub(super) fn unpad(plaintext: &[u8]) -> Result<&[u8], DecodeError> {
    let malformed = DecodeError::Malformed { position: None };
    let (len, rest) = plaintext.split_at_checked(2).ok_or(malformed.clone())?;
    let len = usize::from(u16::from_be_bytes([
        len.first().copied().unwrap_or(0),
        len.get(1).copied().unwrap_or(0),
    ]));
    let (inner, padding) = rest.split_at_checked(len).ok_or(malformed.clone())?;
    if padding.iter().any(|b| *b != 0) {
        return Err(malformed);
    }
    Ok(inner)
}

/// A beacon that decrypted and decoded, not yet signature-checked.
pub(super) struct Opened {
    pub(super) epoch: u64,
    pub(super) inner: InnerBeacon,
}

/// Decrypts a beacon whose tag and author were checked, decodes its plaintext and checks the
/// inner fields that cost no signature: the record's id against its key, the inner time against
/// the outer one.
pub(super) fn open_beacon(
    topic: &TopicId,
    message: &SignedMessage,
    sealed: &SealedBeacon,
    epoch: u64,
    key: &[u8; 32],
) -> Result<Opened, PresenceError> {
    let ad = associated_data(
        topic,
        epoch,
        sealed.tag.as_bytes(),
        &message.author,
        message.sequence,
        message.timestamp,
    );
    let plaintext = aead_open(
        key,
        sealed.nonce.as_bytes(),
        &ad,
        sealed.ciphertext.as_bytes(),
    )
    .ok_or(PresenceError::Undecryptable)?;
    let inner_bytes = unpad(&plaintext).map_err(PresenceError::Malformed)?;
    let inner: InnerBeacon = codec::from_slice(inner_bytes).map_err(PresenceError::Malformed)?;
    if PeerId::from_verifying_key(&inner.record.verifying_key) != inner.record.peer_id {
        return Err(PresenceError::PeerIdMismatch);
    }
    if inner.timestamp != message.timestamp {
        return Err(PresenceError::TimestampMismatch);
    }
    Ok(Opened { epoch, inner })
}

/// Topic, size and outer decoding.
pub(super) fn decode_sealed(
    topic: &TopicId,
    message: &SignedMessage,
) -> Result<SealedBeacon, PresenceError> {
    if message.topic != *topic {
        return Err(PresenceError::WrongTopic);
    }
    let len = message.payload.len();
    if len > BEACON_PAYLOAD_LEN {
        return Err(PresenceError::Oversize {
            len,
            max: BEACON_PAYLOAD_LEN,
        });
    }
    codec::from_slice(&message.payload).map_err(PresenceError::Malformed)
}

/// The member's signature, the most expensive check, done last.
pub(super) fn verify_inner(
    provider: &dyn CryptoProvider,
    topic: &TopicId,
    opened: &Opened,
) -> Result<(), PresenceError> {
    let i = &opened.inner;
    let signed = inner_signed_bytes(topic, opened.epoch, i.status, i.seq, i.timestamp, &i.record)
        .ok_or(PresenceError::BadSignature)?;
    if provider.verify(&i.record.verifying_key, &signed, &i.signature) {
        Ok(())
    } else {
        Err(PresenceError::BadSignature)
    }
}
