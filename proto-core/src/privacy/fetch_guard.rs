//! Pull-based fetch filtering (SPEC.md §17.8): the node serving an envelope hands it only to
//! requesters that prove they hold one of its slots, without the proof naming a recipient.
//!
//! Every slot yields a *fetch key*, derived from the slot's KEM shared secret, its KEM
//! ciphertext and the content hash under [`FETCH_CONTEXT`] (independent of the wrapping key).
//! Only the slot's owner (by decapsulating, [`fetch_key_for`]) and the sealer (who learns the
//! secrets while sealing, [`seal_with_fetch_keys`]) can derive it.
//!
//! The serving node (the author's own node, which sealed the message) registers the fetch keys
//! with a [`FetchGuard`], issues a fresh random challenge per fetch, and checks the answer
//! [`prove`]: a BLAKE3 keyed hash of the challenge and the message id under a fetch key. A
//! challenge is spent by the first check, whatever its outcome.

use crate::crypto::{CryptoProvider, Decapsulator, EncapsulationKeyBytes, SharedSecret};
use crate::id::MessageId;
use crate::privacy::envelope::{self, EnvelopeError, Sealed, Slot};
use crate::time::{TimeDelta, Timestamp};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// BLAKE3 key-derivation context of a slot's fetch key.
pub const FETCH_CONTEXT: &str = "hearsay 2026-11 envelope fetch v1";
/// Length of a challenge nonce.
pub const NONCE_LEN: usize = 32;
/// Length of a proof.
pub const PROOF_LEN: usize = 32;

/// A slot's fetch key, wiped when dropped.
pub type FetchKey = Zeroizing<[u8; 32]>;
/// A challenge issued by a [`FetchGuard`].
pub type Nonce = [u8; NONCE_LEN];
/// A requester's answer to a challenge ([`prove`]).
pub type Proof = [u8; PROOF_LEN];

/// The fetch key of `slot` of the envelope whose content hash is `content_hash`, given the
/// slot's KEM shared secret: BLAKE3-derive(FETCH_CONTEXT, secret ‖ kem_ct ‖ content_hash).
pub fn fetch_key(secret: &SharedSecret, slot: &Slot, content_hash: &[u8; 32]) -> FetchKey {
    let mut hasher = blake3::Hasher::new_derive_key(FETCH_CONTEXT);
    hasher.update(secret.as_ref());
    hasher.update(&slot.kem_ciphertext);
    hasher.update(content_hash);
    Zeroizing::new(*hasher.finalize().as_bytes())
}

/// The fetch keys of every slot of `sealed`, given the slots' shared secrets in slot order (as
/// [`envelope::seal_with_secrets`] returns them). Extra secrets or slots are ignored.
pub fn fetch_keys(sealed: &Sealed, secrets: &[SharedSecret]) -> Vec<FetchKey> {
    let content_hash = sealed.content_hash();
    sealed
        .slots
        .iter()
        .zip(secrets)
        .map(|(slot, secret)| fetch_key(secret, slot, &content_hash))
        .collect()
}

/// [`envelope::seal`], also returning the fetch keys of the slots (in slot order) for the
/// author's [`FetchGuard`]. The shared secrets are dropped (wiped) before returning.
pub fn seal_with_fetch_keys<R: CryptoRng + ?Sized>(
    provider: &dyn CryptoProvider,
    recipients: &[EncapsulationKeyBytes],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Sealed, Vec<FetchKey>), EnvelopeError> {
    let (sealed, secrets) = envelope::seal_with_secrets(provider, recipients, plaintext, rng)?;
    let keys = fetch_keys(&sealed, &secrets);
    Ok((sealed, keys))
}

/// The recipient side: finds `me`'s slot by trial decapsulation and returns its fetch key
/// ([`EnvelopeError::NotARecipient`] when no slot opens).
pub fn fetch_key_for(sealed: &Sealed, me: &dyn Decapsulator) -> Result<FetchKey, EnvelopeError> {
    let (index, secret) = envelope::open_secret(sealed, me)?;
    let slot = sealed
        .slots
        .get(index)
        .ok_or(EnvelopeError::NotARecipient)?;
    Ok(fetch_key(&secret, slot, &sealed.content_hash()))
}

/// The answer to challenge `nonce` for `message`: BLAKE3 keyed hash under `fetch_key` of
/// nonce ‖ message id.
pub fn prove(fetch_key: &[u8; 32], nonce: &Nonce, message: &MessageId) -> Proof {
    let mut hasher = blake3::Hasher::new_keyed(fetch_key);
    hasher.update(nonce);
    hasher.update(message.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Constant-time equality of two 32-byte strings (no early exit).
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Why a fetch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterError {
    /// No fetch keys are registered for the message.
    UnknownMessage,
    /// The challenge was never issued, was already used, or was evicted to make room.
    UnknownChallenge,
    /// The challenge was issued but has expired.
    ExpiredChallenge,
    /// The proof matches none of the message's fetch keys.
    BadProof,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterError::UnknownMessage => "no fetch keys are registered for this message",
            FilterError::UnknownChallenge => "unknown, used or evicted challenge",
            FilterError::ExpiredChallenge => "expired challenge",
            FilterError::BadProof => "the proof matches no slot of the message",
        })
    }
}

impl core::error::Error for FilterError {}

/// What a [`FetchGuard`] accepted and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Fetches allowed.
    pub allowed: u64,
    /// Checks for a message with no registered fetch keys.
    pub unknown_message: u64,
    /// Checks with an unknown, used or evicted challenge.
    pub unknown_challenge: u64,
    /// Checks with an expired challenge.
    pub expired_challenge: u64,
    /// Checks whose proof matched no fetch key.
    pub bad_proof: u64,
    /// Messages evicted to make room.
    pub evicted_messages: u64,
    /// Outstanding challenges evicted to make room.
    pub evicted_challenges: u64,
}

impl Counters {
    fn count(&mut self, error: FilterError) {
        let counter = match error {
            FilterError::UnknownMessage => &mut self.unknown_message,
            FilterError::UnknownChallenge => &mut self.unknown_challenge,
            FilterError::ExpiredChallenge => &mut self.expired_challenge,
            FilterError::BadProof => &mut self.bad_proof,
        };
        *counter = counter.saturating_add(1);
    }
}

crate::machine::internal_struct! {
    /// The serving node's side: the fetch keys of at most `capacity` messages (when full, the
    /// message registered first is evicted; re-registering keeps its place) and at most
    /// `challenge_capacity` outstanding challenges, each valid for `challenge_ttl` and usable once
    /// (when full, the oldest is evicted).
    struct FetchGuard {
        keys: HashMap<MessageId, Vec<FetchKey>, FixedState>,
        order: VecDeque<MessageId>,
        capacity: usize,
        challenges: HashMap<Nonce, Timestamp, FixedState>,
        challenge_order: VecDeque<Nonce>,
        challenge_capacity: usize,
        challenge_ttl: TimeDelta,
        counters: Counters,
    }
}

impl fmt::Debug for FetchGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print fetch keys.
        f.debug_struct("FetchGuard")
            .field("messages", &self.keys.len())
            .field("capacity", &self.capacity)
            .field("challenges", &self.challenges.len())
            .field("challenge_capacity", &self.challenge_capacity)
            .field("counters", &self.counters)
            .finish()
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl FetchGuard {
    /// An empty guard (each capacity at least one).
    pub fn new(capacity: usize, challenge_capacity: usize, challenge_ttl: TimeDelta) -> Self {
        Self {
            keys: HashMap::with_hasher(FixedState::with_seed(0)),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            challenges: HashMap::with_hasher(FixedState::with_seed(0)),
            challenge_order: VecDeque::new(),
            challenge_capacity: challenge_capacity.max(1),
            challenge_ttl,
            counters: Counters::default(),
        }
    }

    /// Messages with registered fetch keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no message is registered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Outstanding challenges.
    pub fn challenges_len(&self) -> usize {
        self.challenges.len()
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Registers (or replaces) the fetch keys of `message`, evicting the oldest message when
    /// full.
    pub fn register(&mut self, message: MessageId, fetch_keys: Vec<FetchKey>) {
        if self.keys.insert(message, fetch_keys).is_some() {
            return;
        }
        self.order.push_back(message);
        while self.keys.len() > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if self.keys.remove(&old).is_some() {
                self.counters.evicted_messages = self.counters.evicted_messages.saturating_add(1);
            }
        }
    }

    /// Forgets the fetch keys of `message` (for instance after a delete request).
    pub fn unregister(&mut self, message: &MessageId) {
        if self.keys.remove(message).is_some() {
            self.order.retain(|m| m != message);
        }
    }

    /// Issues a fresh challenge at `now`, valid until `now + challenge_ttl`. Expired
    /// challenges are pruned first; when still full the oldest is evicted.
    pub fn challenge<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, now: Timestamp) -> Nonce {
        self.issue(rng, now, |_| {}).0
    }

    /// [`FetchGuard::challenge`], also returning when the challenge expires and passing every
    /// challenge it drops (pruned as expired, or evicted) to `dropped`: the owner of the
    /// challenges' expiry timers ([`super::fetch::FetchExchange`]) cancels theirs.
    pub fn issue<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Timestamp,
        mut dropped: impl FnMut(Nonce),
    ) -> (Nonce, Timestamp) {
        while let Some(&front) = self.challenge_order.front() {
            match self.challenges.get(&front) {
                Some(expires) if *expires > now => break,
                _ => {
                    self.challenge_order.pop_front();
                    if self.challenges.remove(&front).is_some() {
                        dropped(front);
                    }
                }
            }
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let expires = now.saturating_add(self.challenge_ttl);
        if self.challenges.insert(nonce, expires).is_none() {
            self.challenge_order.push_back(nonce);
        }
        while self.challenges.len() > self.challenge_capacity {
            let Some(old) = self.challenge_order.pop_front() else {
                break;
            };
            if self.challenges.remove(&old).is_some() {
                self.counters.evicted_challenges =
                    self.counters.evicted_challenges.saturating_add(1);
                dropped(old);
            }
        }
        (nonce, expires)
    }

    /// Forgets challenge `nonce`, whose time is up: its expiry timer ran (a later proof
    /// against it is refused as [`FilterError::UnknownChallenge`]).
    pub fn expire(&mut self, nonce: &Nonce) {
        if self.challenges.remove(nonce).is_some() {
            self.forget_order(nonce);
        }
    }

    /// Drops `nonce` from the issue order; challenges mostly leave from the front.
    fn forget_order(&mut self, nonce: &Nonce) {
        if self.challenge_order.front() == Some(nonce) {
            self.challenge_order.pop_front();
        } else {
            self.challenge_order.retain(|n| n != nonce);
        }
    }

    /// Checks a requester's `proof` for `message` against challenge `nonce` at `now`. The
    /// challenge is spent whatever the outcome. Every proof is compared in constant time
    /// against every fetch key of the message, so timing does not reveal which slot matched.
    pub fn check(
        &mut self,
        message: &MessageId,
        nonce: &Nonce,
        proof: &Proof,
        now: Timestamp,
    ) -> Result<(), FilterError> {
        let result = self.check_inner(message, nonce, proof, now);
        match result {
            Ok(()) => self.counters.allowed = self.counters.allowed.saturating_add(1),
            Err(error) => self.counters.count(error),
        }
        result
    }

    fn check_inner(
        &mut self,
        message: &MessageId,
        nonce: &Nonce,
        proof: &Proof,
        now: Timestamp,
    ) -> Result<(), FilterError> {
        let expires = self
            .challenges
            .remove(nonce)
            .ok_or(FilterError::UnknownChallenge)?;
        self.forget_order(nonce);
        if expires <= now {
            return Err(FilterError::ExpiredChallenge);
        }
        let keys = self.keys.get(message).ok_or(FilterError::UnknownMessage)?;
        let mut matched = false;
        for key in keys {
            matched |= ct_eq(&prove(key, nonce, message), proof);
        }
        if matched {
            Ok(())
        } else {
            Err(FilterError::BadProof)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_bytes() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(ct_eq(&a, &b));
        b[31] ^= 1;
        assert!(!ct_eq(&a, &b));
    }
}
