//! Envelope encryption: one ciphertext, readable by a chosen set of recipients (SPEC.md §17).
//!
//! [`seal`] encrypts a plaintext once under a fresh random *content key* with
//! ChaCha20-Poly1305, then gives every recipient a [`Slot`]: an ML-KEM-768 encapsulation to the
//! recipient's key and the content key wrapped under a key derived from the KEM secret, the
//! KEM ciphertext and the hash of the content ciphertext (so a slot only opens the envelope it
//! was made for). Slots carry no recipient id and are shuffled, so their order leaks nothing.
//!
//! [`open`] finds the caller's slot by trial decapsulation: ML-KEM is implicitly rejecting, so
//! decapsulating someone else's slot yields an unrelated secret and the wrapped key's tag fails
//! to verify. [`open_key`] and [`seal_with_key`] expose the content key so an existing
//! ciphertext can get a new set of slots (same content, different recipients).

use crate::broadcast::message::MAX_PAYLOAD;
use crate::crypto::{
    CryptoProvider, Decapsulator, EncapsulationKeyBytes, KEM_CIPHERTEXT_LEN, KemCiphertext,
    SharedSecret,
};
use crate::wire::codec::{self, BoundedBytes, BoundedVec, DecodeError, EncodeError, FixedBytes};
use alloc::vec::Vec;
use bytes::Bytes;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use core::fmt;
use minicbor::{Decode, Encode};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// Length of a content key (a ChaCha20-Poly1305 key).
pub const CONTENT_KEY_LEN: usize = 32;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of a wrapped content key: the encrypted key and its tag.
pub const WRAPPED_KEY_LEN: usize = CONTENT_KEY_LEN + TAG_LEN;
/// Associated data of the content ciphertext.
pub const CONTENT_AD: &[u8] = b"hearsay/v1/envelope-content";
/// Associated data of a wrapped content key.
pub const SLOT_AD: &[u8] = b"hearsay/v1/envelope-slot";
/// BLAKE3 key-derivation context of a slot's wrapping key.
pub const WRAP_CONTEXT: &str = "hearsay 2026-11 envelope wrap v1";

/// The largest encoded [`Sealed`]: an envelope travels as a published message's payload, so it
/// must fit [`MAX_PAYLOAD`] (the frame limit less the message's own overhead, SPEC.md §15.1).
pub const MAX_SEALED_LEN: usize = MAX_PAYLOAD;

/// Encoded length of one slot: a 2-element array header (1 B), the KEM ciphertext with its
/// 3-byte byte-string header, the wrapped key with its 2-byte header.
pub const SLOT_ENCODED_LEN: usize =
    1 + cbor_header_len(KEM_CIPHERTEXT_LEN) + KEM_CIPHERTEXT_LEN + 2 + WRAPPED_KEY_LEN;

/// The most slots an envelope can hold: as many as fit [`MAX_SEALED_LEN`] next to an empty
/// plaintext's content (its tag alone).
pub const MAX_SLOTS: usize = max_slots_for(0);

/// The longest content ciphertext an envelope can hold: what is left of [`MAX_SEALED_LEN`]
/// after one slot and the CBOR headers (envelope array 1 B, content byte string 5 B, slot
/// array 1 B).
pub const MAX_CONTENT: usize = MAX_SEALED_LEN - 1 - 5 - 1 - SLOT_ENCODED_LEN;

/// The longest plaintext [`seal`] accepts (with a single recipient).
pub const MAX_PLAINTEXT: usize = MAX_CONTENT - TAG_LEN;

/// The content ciphertext (ciphertext ‖ tag).
pub type Content = BoundedBytes<MAX_CONTENT>;

/// A content key, wiped when dropped.
pub type ContentKey = Zeroizing<[u8; CONTENT_KEY_LEN]>;

/// Length of the CBOR header of a byte string or array of `n` items or bytes.
const fn cbor_header_len(n: usize) -> usize {
    let n = n as u64;
    if n < 24 {
        1
    } else if n < 0x100 {
        2
    } else if n < 0x1_0000 {
        3
    } else if n < 0x1_0000_0000 {
        5
    } else {
        9
    }
}

/// The exact encoded length of a [`Sealed`] with a `plaintext_len`-byte plaintext and
/// `recipients` slots.
pub const fn sealed_len(plaintext_len: usize, recipients: usize) -> usize {
    let content = plaintext_len.saturating_add(TAG_LEN);
    1usize
        .saturating_add(cbor_header_len(content))
        .saturating_add(content)
        .saturating_add(cbor_header_len(recipients))
        .saturating_add(recipients.saturating_mul(SLOT_ENCODED_LEN))
}

/// How many recipients an envelope of a `plaintext_len`-byte plaintext can have (0 when even
/// one slot does not fit).
pub const fn max_recipients(plaintext_len: usize) -> usize {
    max_slots_for(plaintext_len)
}

const fn max_slots_for(plaintext_len: usize) -> usize {
    let fixed = sealed_len(plaintext_len, 0);
    if fixed >= MAX_SEALED_LEN {
        return 0;
    }
    // Assume the widest array header that can occur, then add the slots it leaves room for.
    let mut n = (MAX_SEALED_LEN - fixed).saturating_sub(2) / SLOT_ENCODED_LEN;
    while sealed_len(plaintext_len, n + 1) <= MAX_SEALED_LEN {
        n += 1;
    }
    while n > 0 && sealed_len(plaintext_len, n) > MAX_SEALED_LEN {
        n -= 1;
    }
    n
}

/// One recipient's way in: a KEM ciphertext and the content key wrapped under the secret it
/// carries. No recipient id.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Slot {
    /// ML-KEM-768 encapsulation to the recipient's key.
    #[n(0)]
    pub kem_ciphertext: KemCiphertext,
    /// ChaCha20-Poly1305 of the content key under the slot's wrapping key.
    #[n(1)]
    pub wrapped_key: FixedBytes<WRAPPED_KEY_LEN>,
}

/// An encrypted envelope: the content ciphertext and one slot per recipient, in random order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Sealed {
    /// ChaCha20-Poly1305 of the plaintext under the content key (ciphertext ‖ tag).
    #[n(0)]
    pub content: Content,
    /// The recipients' slots.
    #[n(1)]
    pub slots: BoundedVec<Slot, MAX_SLOTS>,
}

impl Sealed {
    /// BLAKE3 of the content ciphertext. Message ids cover this, not the slots, so an
    /// envelope's recipients can change without changing what was published.
    pub fn content_hash(&self) -> [u8; 32] {
        *blake3::hash(&self.content).as_bytes()
    }

    /// Encodes the envelope.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        codec::to_vec(self)
    }

    /// Decodes an envelope (copying its bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::from_slice(bytes)
    }

    /// Decodes an envelope whose fields point into `bytes` (no copies).
    pub fn from_shared(bytes: &Bytes) -> Result<Self, DecodeError> {
        codec::from_slice_with(bytes, &mut codec::Shared(bytes.clone()))
    }
}

/// Why an envelope could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Sealing needs at least one recipient.
    NoRecipients,
    /// More recipients than fit an envelope of this plaintext size.
    TooManyRecipients {
        /// Recipients asked for.
        recipients: usize,
        /// The most this plaintext size allows ([`max_recipients`], never above [`MAX_SLOTS`]).
        max: usize,
    },
    /// The plaintext is too long for an envelope with even one slot.
    PlaintextTooLarge {
        /// The plaintext's length.
        len: usize,
        /// The limit ([`MAX_PLAINTEXT`]).
        max: usize,
    },
    /// A recipient's encapsulation key does not decode to a valid ML-KEM-768 key.
    InvalidRecipientKey {
        /// Its position in the recipient list.
        index: usize,
    },
    /// The content key given to [`seal_with_key`] does not decrypt the content.
    WrongKey,
    /// No slot opens with this decapsulation key (also the outcome for tampered content or a
    /// slot moved from another envelope: slots are bound to the content hash).
    NotARecipient,
    /// A slot opened but the content did not decrypt (the sealer wrapped the wrong key).
    Corrupt,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::NoRecipients => f.write_str("an envelope needs at least one recipient"),
            EnvelopeError::TooManyRecipients { recipients, max } => write!(
                f,
                "{recipients} recipients exceed the limit of {max} slots for this plaintext size"
            ),
            EnvelopeError::PlaintextTooLarge { len, max } => {
                write!(f, "plaintext of {len} bytes exceeds the {max}-byte limit")
            }
            EnvelopeError::InvalidRecipientKey { index } => {
                write!(f, "recipient {index} has an invalid encapsulation key")
            }
            EnvelopeError::WrongKey => f.write_str("the content key does not open the content"),
            EnvelopeError::NotARecipient => f.write_str("no slot of the envelope opens"),
            EnvelopeError::Corrupt => f.write_str("the envelope's content does not decrypt"),
        }
    }
}

impl core::error::Error for EnvelopeError {}

/// The all-zero nonce. Safe here, and only here, because every key this module encrypts under
/// encrypts exactly one message: a content key is fresh per envelope and a wrapping key is
/// derived from a fresh KEM secret (and the slot's own KEM ciphertext) per slot.
fn zero_nonce() -> Nonce {
    Nonce::default()
}

fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(key.into())
}

/// Encrypts `plaintext` under `key` (used once), returning ciphertext ‖ tag.
fn aead_seal(key: &[u8; 32], ad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(plaintext.len().saturating_add(TAG_LEN));
    buf.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_inout_detached(&zero_nonce(), ad, buf.as_mut_slice().into())
        .ok()?;
    buf.extend_from_slice(&tag);
    Some(buf)
}

/// Decrypts ciphertext ‖ tag under `key`; `None` when the tag does not verify.
fn aead_open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let split = sealed.len().checked_sub(TAG_LEN)?;
    let (ct, tag) = sealed.split_at(split);
    let tag = Tag::try_from(tag).ok()?;
    let mut buf = Zeroizing::new(ct.to_vec());
    cipher(key)
        .decrypt_inout_detached(&zero_nonce(), ad, buf.as_mut_slice().into(), &tag)
        .ok()?;
    Some(buf)
}

/// The wrapping key of a slot: BLAKE3-derive(WRAP_CONTEXT, secret ‖ kem_ct ‖ content_hash).
fn wrapping_key(
    secret: &[u8],
    kem_ciphertext: &KemCiphertext,
    content_hash: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut hasher = blake3::Hasher::new_derive_key(WRAP_CONTEXT);
    hasher.update(secret);
    hasher.update(kem_ciphertext);
    hasher.update(content_hash);
    Zeroizing::new(*hasher.finalize().as_bytes())
}

fn check_count(plaintext_len: usize, recipients: usize) -> Result<(), EnvelopeError> {
    if recipients == 0 {
        return Err(EnvelopeError::NoRecipients);
    }
    let max = max_recipients(plaintext_len);
    if max == 0 {
        return Err(EnvelopeError::PlaintextTooLarge {
            len: plaintext_len,
            max: MAX_PLAINTEXT,
        });
    }
    if recipients > max {
        return Err(EnvelopeError::TooManyRecipients { recipients, max });
    }
    Ok(())
}

/// Encrypts `plaintext` for `recipients` (their ML-KEM-768 encapsulation keys). All randomness
/// (the content key, the encapsulations' entropy, the slot order) comes from `rng`.
pub fn seal<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    recipients: &[EncapsulationKeyBytes],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    seal_with_secrets(provider, recipients, plaintext, rng).map(|(sealed, _)| sealed)
}

/// [`seal`], also returning each slot's KEM shared secret, in slot order (after the shuffle),
/// so the sealer can derive per-slot keys such as fetch keys (SPEC.md §17.8). Consumes `rng`
/// exactly as [`seal`] does. The secrets are as sensitive as the content key: keep them only
/// as long as needed.
pub fn seal_with_secrets<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    recipients: &[EncapsulationKeyBytes],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Sealed, Vec<SharedSecret>), EnvelopeError> {
    seal_keyed(provider, recipients, plaintext, rng).map(|(sealed, secrets, _)| (sealed, secrets))
}

/// [`seal_with_secrets`], also returning the fresh content key, so that the sealer can
/// re-wrap it later ([`seal_with_key`]) without holding a slot of its own.
pub fn seal_keyed<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    recipients: &[EncapsulationKeyBytes],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Sealed, Vec<SharedSecret>, ContentKey), EnvelopeError> {
    check_count(plaintext.len(), recipients.len())?;
    let mut key: ContentKey = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
    rng.fill_bytes(key.as_mut());
    let too_large = EnvelopeError::PlaintextTooLarge {
        len: plaintext.len(),
        max: MAX_PLAINTEXT,
    };
    let content = aead_seal(&key, CONTENT_AD, plaintext).ok_or(too_large.clone())?;
    let content = Content::new(content).map_err(|_| too_large)?;
    let content_hash = *blake3::hash(&content).as_bytes();
    let (slots, secrets) = make_slots(provider, &key, &content_hash, recipients, rng)?;
    Ok((Sealed { content, slots }, secrets, key))
}

/// Gives an existing content ciphertext a new set of slots: the envelope `content` under
/// `key` (from [`open_key`]) for `recipients`. The content, hence the content hash and any
/// message id over it, stays the same. Fails with [`EnvelopeError::WrongKey`] if `key` does
/// not decrypt `content`.
pub fn seal_with_key<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    key: &ContentKey,
    content: &Content,
    recipients: &[EncapsulationKeyBytes],
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    seal_with_key_and_secrets(provider, key, content, recipients, rng).map(|(sealed, _)| sealed)
}

/// [`seal_with_key`], also returning the slots' KEM shared secrets in slot order (as
/// [`seal_with_secrets`] does), so the sealer can derive the new slots' fetch keys.
pub fn seal_with_key_and_secrets<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    key: &ContentKey,
    content: &Content,
    recipients: &[EncapsulationKeyBytes],
    rng: &mut R,
) -> Result<(Sealed, Vec<SharedSecret>), EnvelopeError> {
    let plaintext_len = content.len().saturating_sub(TAG_LEN);
    check_count(plaintext_len, recipients.len())?;
    if aead_open(key, CONTENT_AD, content).is_none() {
        return Err(EnvelopeError::WrongKey);
    }
    let content_hash = *blake3::hash(content).as_bytes();
    let (slots, secrets) = make_slots(provider, key, &content_hash, recipients, rng)?;
    Ok((
        Sealed {
            content: content.clone(),
            slots,
        },
        secrets,
    ))
}

fn make_slots<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    key: &ContentKey,
    content_hash: &[u8; 32],
    recipients: &[EncapsulationKeyBytes],
    rng: &mut R,
) -> Result<(BoundedVec<Slot, MAX_SLOTS>, Vec<SharedSecret>), EnvelopeError> {
    let mut slots = Vec::with_capacity(recipients.len());
    let mut secrets = Vec::with_capacity(recipients.len());
    for (index, recipient) in recipients.iter().enumerate() {
        let mut entropy = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(entropy.as_mut());
        let (kem_ciphertext, secret) = provider
            .encapsulate(recipient, &entropy)
            .map_err(|_| EnvelopeError::InvalidRecipientKey { index })?;
        let wrap = wrapping_key(secret.as_ref(), &kem_ciphertext, content_hash);
        let wrapped = aead_seal(&wrap, SLOT_AD, key.as_ref()).ok_or(EnvelopeError::Corrupt)?;
        let wrapped_key = FixedBytes::new(wrapped).map_err(|_| EnvelopeError::Corrupt)?;
        slots.push(Slot {
            kem_ciphertext,
            wrapped_key,
        });
        secrets.push(secret);
    }
    // Fisher–Yates: a slot's position says nothing about whose it is. The modulo bias of a
    // 64-bit draw over at most MAX_SLOTS positions is below 2^-56.
    for i in (1..slots.len()).rev() {
        let j = rng.next_u64() % (i as u64 + 1);
        let j = usize::try_from(j).unwrap_or(0);
        slots.swap(i, j);
        secrets.swap(i, j);
    }
    let slots = BoundedVec::new(slots).map_err(|_| EnvelopeError::TooManyRecipients {
        recipients: recipients.len(),
        max: MAX_SLOTS,
    })?;
    Ok((slots, secrets))
}

/// Finds `me`'s slot and returns the content key. Slots are tried in order until one opens
/// (one ML-KEM decapsulation each).
pub fn open_key(sealed: &Sealed, me: &dyn Decapsulator) -> Result<ContentKey, EnvelopeError> {
    find_slot(sealed, me).map(|(_, _, key)| key)
}

/// Finds `me`'s slot as [`open_key`] does and returns its position and KEM shared secret, so a
/// recipient can derive per-slot keys such as fetch keys (SPEC.md §17.8).
pub fn open_secret(
    sealed: &Sealed,
    me: &dyn Decapsulator,
) -> Result<(usize, SharedSecret), EnvelopeError> {
    find_slot(sealed, me).map(|(index, secret, _)| (index, secret))
}

fn find_slot(
    sealed: &Sealed,
    me: &dyn Decapsulator,
) -> Result<(usize, SharedSecret, ContentKey), EnvelopeError> {
    find_key(&sealed.slots, &sealed.content_hash(), me)
}

/// Finds `me`'s slot among `slots` of the content whose hash is `content_hash`, without the
/// content itself (a reader learns the hash first and fetches the content afterwards, SPEC.md
/// §17.9): the slot's index, its KEM shared secret and the content key it wraps.
/// [`EnvelopeError::NotARecipient`] when no slot opens.
pub fn find_key(
    slots: &[Slot],
    content_hash: &[u8; 32],
    me: &dyn Decapsulator,
) -> Result<(usize, SharedSecret, ContentKey), EnvelopeError> {
    for (index, slot) in slots.iter().enumerate() {
        let Ok(secret) = me.decapsulate(&slot.kem_ciphertext) else {
            continue;
        };
        let wrap = wrapping_key(secret.as_ref(), &slot.kem_ciphertext, content_hash);
        if let Some(unwrapped) = aead_open(&wrap, SLOT_AD, &slot.wrapped_key) {
            let mut key: ContentKey = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
            if unwrapped.len() != CONTENT_KEY_LEN {
                return Err(EnvelopeError::Corrupt);
            }
            key.copy_from_slice(&unwrapped);
            return Ok((index, secret, key));
        }
    }
    Err(EnvelopeError::NotARecipient)
}

/// Decrypts the content with a content key (from [`open_key`]).
pub fn open_with_key(
    sealed: &Sealed,
    key: &ContentKey,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    aead_open(key, CONTENT_AD, &sealed.content).ok_or(EnvelopeError::Corrupt)
}

/// Opens an envelope as the holder of `me`: finds its slot, unwraps the content key and
/// decrypts the content. A non-recipient, tampered content, a tampered slot of ours, or a slot
/// from another envelope all give [`EnvelopeError::NotARecipient`]; [`EnvelopeError::Corrupt`]
/// means our slot opened but the content did not.
pub fn open(sealed: &Sealed, me: &dyn Decapsulator) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let key = open_key(sealed, me)?;
    open_with_key(sealed, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PureRustProvider;
    use crate::identity::Identity;
    use rand_core::SeedableRng;

    /// The harness's identity `n` (real ML-DSA/ML-KEM: envelopes need working keys).
    fn identity(n: u8) -> Identity {
        crate::testing::identity_with(&PureRustProvider, u64::from(n))
    }

    #[test]
    fn limits_are_consistent() {
        assert_eq!(SLOT_ENCODED_LEN, 1 + 3 + 1088 + 2 + 48);
        assert_eq!(MAX_SLOTS, 222);
        assert_eq!(MAX_CONTENT, 252_803);
        assert_eq!(MAX_PLAINTEXT, 252_787);
        assert_eq!(sealed_len(0, 222), 253_544);
        assert_eq!(sealed_len(0, 223), 254_686);
        assert_eq!(max_recipients(100_000), 134);
        assert!(sealed_len(0, MAX_SLOTS) <= MAX_SEALED_LEN);
        assert!(sealed_len(0, MAX_SLOTS + 1) > MAX_SEALED_LEN);
        assert_eq!(max_recipients(MAX_PLAINTEXT), 1);
        assert_eq!(max_recipients(MAX_PLAINTEXT + 1), 0);
        assert!(sealed_len(MAX_PLAINTEXT, 1) <= MAX_SEALED_LEN);
        for p in [0usize, 1, 23, 24, 255, 256, 1000, 65_535, 65_536, 100_000] {
            let n = max_recipients(p);
            assert!(sealed_len(p, n) <= MAX_SEALED_LEN, "{p}");
            assert!(
                sealed_len(p, n + 1) > MAX_SEALED_LEN || n == MAX_SLOTS,
                "{p}"
            );
        }
    }

    #[test]
    fn encoded_length_matches_sealed_len_and_keys_round_trip() {
        let (a, b) = (identity(1), identity(2));
        let mut rng = chacha20::ChaCha8Rng::from_seed([9; 32]);
        let keys = [a.encapsulation_key().clone(), b.encapsulation_key().clone()];
        let sealed = seal(&PureRustProvider, &keys, b"hello", &mut rng).unwrap();
        assert_eq!(sealed.to_bytes().unwrap().len(), sealed_len(5, 2));
        let key = open_key(&sealed, a.decapsulator()).unwrap();
        let c = identity(3);
        let resealed = seal_with_key(
            &PureRustProvider,
            &key,
            &sealed.content,
            &[c.encapsulation_key().clone()],
            &mut rng,
        )
        .unwrap();
        assert_eq!(resealed.content_hash(), sealed.content_hash());
        assert_eq!(&**open(&resealed, c.decapsulator()).unwrap(), b"hello");
        assert_eq!(
            open(&resealed, a.decapsulator()),
            Err(EnvelopeError::NotARecipient)
        );
        let wrong: ContentKey = Zeroizing::new([7; 32]);
        assert_eq!(
            seal_with_key(&PureRustProvider, &wrong, &sealed.content, &keys, &mut rng),
            Err(EnvelopeError::WrongKey)
        );
    }

    #[test]
    fn empty_and_oversized_inputs_are_typed_errors() {
        let mut rng = chacha20::ChaCha8Rng::from_seed([9; 32]);
        assert_eq!(
            seal(&PureRustProvider, &[], b"x", &mut rng),
            Err(EnvelopeError::NoRecipients)
        );
        let key = identity(1).encapsulation_key().clone();
        let big = alloc::vec![0u8; MAX_PLAINTEXT + 1];
        assert_eq!(
            seal(&PureRustProvider, &[key], &big, &mut rng),
            Err(EnvelopeError::PlaintextTooLarge {
                len: MAX_PLAINTEXT + 1,
                max: MAX_PLAINTEXT
            })
        );
    }
}
