//! Presence beacons for a group: "who of group G is online?", answered without telling anyone
//! outside G who is online, or even which beacon belongs to whom (SPEC.md §19).
//!
//! A group is a 32-byte secret its members share (how they got it is the application's
//! business). Everything public about the group is derived from it:
//!
//! - the **presence topic**, `TopicId = BLAKE3-derive("hearsay 2026-11 presence topic v1",
//!   secret)`: only members know it, so only members subscribe to it and relay its beacons;
//! - per **epoch** `e` (time cut into `epoch_length` slices, 10 min by default): an ML-DSA-65
//!   **author key** every member can expand, an **epoch tag** and a ChaCha20-Poly1305 **beacon
//!   key**. Every member publishes its beacons as a [`SignedMessage`] *authored by the epoch's
//!   key*, so the broadcast layer's clear-text author, verifying key and signature are the same
//!   for every member, and change with every epoch.
//!
//! A beacon's payload is `[tag, nonce, ciphertext]`; the ciphertext hides a fixed-size padded
//! plaintext holding the member's status (online or offline), a sequence number, the time, the
//! member's [`PeerRecord`] and the member's own ML-DSA-65 signature over all of it, bound to the
//! group's topic and the epoch. Every beacon of every member in one epoch therefore has the same
//! author, the same tag and the same length; the rest is ciphertext and random numbers.
//!
//! The state machine follows the crate's idiom: [`Presence::start`] and [`Presence::stop`]
//! (which sends a signed *offline* beacon), [`Presence::handle_timeout`] at
//! [`Presence::poll_timeout`], beacons to publish from [`Presence::poll_beacon`], beacons received
//! through [`Presence::handle_beacon`], changes from [`Presence::poll_event`], and
//! [`Presence::online`] for the answer. Relays are members (only members know the topic; SPEC.md
//! discusses outsiders who learn it) and check beacons with a [`PresenceValidator`], the topic's
//! [`Validator`], before forwarding.
//! Time is an argument; randomness (nonces, outer sequence numbers, timer jitter) comes from the
//! RNG the caller passes.

use crate::broadcast::message::{MessageError, SignedMessage};
use crate::broadcast::plumtree::Validator;
use crate::crypto::{
    CryptoProvider, KEM_SEED_LEN, SIG_SEED_LEN, SIGNATURE_LEN, SignatureBytes, Signer,
    VerifyingKeyBytes, signing_input,
};
use crate::id::{PeerId, TopicId};
use crate::identity::record::{MAX_ADDRESS_LEN, MAX_ADDRESSES, PeerRecord};
use crate::identity::{Identity, IdentitySeeds};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::codec::{self, DecodeError, FixedBytes};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
use minicbor::{Decode, Encode};
use rand_core::CryptoRng;
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

/// Domain of a member's signature over its beacon (SPEC.md §3).
pub const PRESENCE_DOMAIN: &str = "hearsay/v1/presence";
/// Prefix of the associated data of a beacon's ciphertext.
pub const BEACON_AD: &[u8] = b"hearsay/v1/presence-beacon";
/// Length of an epoch tag.
pub const TAG_LEN: usize = 16;
/// Length of a beacon nonce (ChaCha20-Poly1305).
pub const NONCE_LEN: usize = 12;
/// Length of a Poly1305 tag.
const AEAD_TAG_LEN: usize = 16;

/// Length of a CBOR header for a byte string or array of `len` items.
const fn cbor_header_len(len: usize) -> usize {
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

/// Outgoing beacons kept when the owner does not drain [`Presence::poll_beacon`].
const MAX_QUEUED_BEACONS: usize = 4;

/// The presence topic of the group whose secret is `secret`.
pub fn presence_topic(secret: &[u8; 32]) -> TopicId {
    TopicId::from_bytes(blake3::derive_key(context::TOPIC, secret))
}

/// Parameters (SPEC.md §19). All members of a group must agree on `epoch_length`; the others
/// are each member's own choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceConfig {
    /// Mean pause between two beacons of a running member; each pause is drawn uniformly from
    /// `[interval / 2, 3 interval / 2)` with the caller's RNG. Default 30 s.
    pub beacon_interval: TimeDelta,
    /// How long a beacon keeps its member online: a member is online until its latest
    /// online beacon's time plus `ttl`. At least twice `beacon_interval`. Default 10 min.
    pub ttl: TimeDelta,
    /// Length of an epoch; author keys, tags and beacon keys rotate at every multiple of it
    /// (since the Unix epoch). Default 10 min (= `ttl`).
    pub epoch_length: TimeDelta,
    /// How far in the future a beacon may be dated. Must be below `epoch_length`. Default 30 s
    /// (the broadcast layer's `clock_skew`).
    pub max_clock_skew: TimeDelta,
    /// Members (online, or offline remembered until their last beacon's `ttl` ends) tracked at
    /// most; beyond it, the one heard from least recently is forgotten. Default 1,024.
    pub max_members_tracked: usize,
    /// Events waiting for [`Presence::poll_event`] at most; the oldest is dropped and counted.
    /// Default 1,024.
    pub max_queued_events: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            beacon_interval: TimeDelta::from_secs(30),
            ttl: TimeDelta::from_secs(600),
            epoch_length: TimeDelta::from_secs(600),
            max_clock_skew: TimeDelta::from_secs(30),
            max_members_tracked: 1024,
            max_queued_events: 1024,
        }
    }
}

impl PresenceConfig {
    /// Checks the parameters' relations; names the first one violated.
    pub fn validate(&self) -> Result<(), SetupError> {
        let bad = |what| Err(SetupError::InvalidConfig(what));
        if self.beacon_interval == TimeDelta::ZERO {
            return bad("beacon_interval must be positive");
        }
        if self.ttl < self.beacon_interval.saturating_mul(2) {
            return bad("ttl must be at least twice beacon_interval");
        }
        if self.epoch_length < TimeDelta::from_secs(1) {
            return bad("epoch_length must be at least 1 s");
        }
        if self.max_clock_skew >= self.epoch_length {
            return bad("max_clock_skew must be below epoch_length");
        }
        if self.max_members_tracked == 0 || self.max_queued_events == 0 {
            return bad("max_members_tracked and max_queued_events must be positive");
        }
        Ok(())
    }
}

/// What a beacon says about its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum Status {
    /// Online until the beacon's time plus the TTL.
    #[n(0)]
    Online,
    /// Leaving now (sent by [`Presence::stop`]).
    #[n(1)]
    Offline,
}

/// Why a member stopped being online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// It sent an offline beacon.
    Left,
    /// No fresh beacon within the TTL (it crashed, or lost its links).
    Expired,
    /// Forgotten to keep within `max_members_tracked`.
    Evicted,
}

/// A change in who is online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// `member` is online: it was not before, or it now announces a newer record.
    Online {
        /// The member.
        member: PeerId,
        /// Its record as carried in the beacon. The beacon's signature (by the record's own
        /// key) vouches for every field; the record's own signature and expiry were not checked.
        record: PeerRecord,
    },
    /// `member` is no longer online.
    Offline {
        /// The member.
        member: PeerId,
        /// Why.
        reason: OfflineReason,
    },
}

/// A beacon to publish on [`Presence::topic`]: a message already signed by the epoch's author
/// key, and that key (which travels with it, SPEC.md §15.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingBeacon {
    /// The signed message. Publish it unchanged (same sequence number and timestamp).
    pub message: SignedMessage,
    /// The epoch author's ML-DSA-65 verifying key.
    pub author_key: VerifyingKeyBytes,
}

/// Why a beacon was refused. Each cause is counted in [`Rejections`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceError {
    /// The message is not on this group's presence topic.
    WrongTopic,
    /// The payload is longer than every beacon's fixed length.
    Oversize {
        /// Its length.
        len: usize,
        /// [`BEACON_PAYLOAD_LEN`].
        max: usize,
    },
    /// The payload or the decrypted plaintext does not decode (truncated, garbage, bad
    /// padding).
    Malformed(DecodeError),
    /// Dated further in the future than `max_clock_skew`.
    FromTheFuture,
    /// From an epoch before the previous one.
    StaleEpoch {
        /// The beacon's epoch.
        epoch: u64,
        /// The oldest epoch accepted.
        oldest: u64,
    },
    /// Older than the TTL: it cannot make anyone online.
    Expired,
    /// The tag is not the epoch's (not from this group, or tampered).
    WrongTag,
    /// The outer author is not the epoch's author key.
    WrongAuthor,
    /// The outer signature does not verify (checked by [`PresenceValidator`] only).
    OuterSignature,
    /// The ciphertext does not decrypt under the epoch's key.
    Undecryptable,
    /// The inner record's peer id is not the id of its verifying key.
    PeerIdMismatch,
    /// The inner timestamp is not the outer message's timestamp.
    TimestampMismatch,
    /// The member's signature does not verify.
    BadSignature,
    /// Not newer than a beacon already accepted from this member (a replay).
    Replayed,
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresenceError::WrongTopic => f.write_str("not on the group's presence topic"),
            PresenceError::Oversize { len, max } => {
                write!(f, "beacon payload of {len} bytes exceeds {max}")
            }
            PresenceError::Malformed(e) => write!(f, "malformed beacon: {e}"),
            PresenceError::FromTheFuture => f.write_str("beacon dated in the future"),
            PresenceError::StaleEpoch { epoch, oldest } => {
                write!(f, "beacon of epoch {epoch}, oldest accepted is {oldest}")
            }
            PresenceError::Expired => f.write_str("beacon older than the TTL"),
            PresenceError::WrongTag => f.write_str("beacon tag is not the epoch's"),
            PresenceError::WrongAuthor => f.write_str("beacon author is not the epoch's key"),
            PresenceError::OuterSignature => f.write_str("beacon's outer signature is bad"),
            PresenceError::Undecryptable => f.write_str("beacon does not decrypt"),
            PresenceError::PeerIdMismatch => f.write_str("member id does not match its key"),
            PresenceError::TimestampMismatch => f.write_str("inner and outer times differ"),
            PresenceError::BadSignature => f.write_str("member's beacon signature is bad"),
            PresenceError::Replayed => f.write_str("beacon not newer than one accepted"),
        }
    }
}

impl core::error::Error for PresenceError {}

impl PresenceError {
    /// What the broadcast layer's [`Validator`] reports for this refusal.
    pub fn to_message_error(&self) -> MessageError {
        match self {
            PresenceError::Oversize { len, max } => MessageError::PayloadTooLarge {
                len: *len,
                max: *max,
            },
            PresenceError::StaleEpoch { .. } | PresenceError::Expired => MessageError::TooOld,
            PresenceError::FromTheFuture => MessageError::FromTheFuture,
            PresenceError::WrongAuthor => MessageError::WrongKey,
            _ => MessageError::BadSignature,
        }
    }

    fn index(&self) -> usize {
        match self {
            PresenceError::WrongTopic => 0,
            PresenceError::Oversize { .. } => 1,
            PresenceError::Malformed(_) => 2,
            PresenceError::FromTheFuture => 3,
            PresenceError::StaleEpoch { .. } => 4,
            PresenceError::Expired => 5,
            PresenceError::WrongTag => 6,
            PresenceError::WrongAuthor => 7,
            PresenceError::OuterSignature => 8,
            PresenceError::Undecryptable => 9,
            PresenceError::PeerIdMismatch => 10,
            PresenceError::TimestampMismatch => 11,
            PresenceError::BadSignature => 12,
            PresenceError::Replayed => 13,
        }
    }
}

const CAUSES: usize = 14;

/// Why [`Presence::new`] or [`Presence::set_record`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// A parameter is out of range (the text says which).
    InvalidConfig(&'static str),
    /// The record is not the identity's.
    RecordMismatch,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::InvalidConfig(what) => write!(f, "invalid presence config: {what}"),
            SetupError::RecordMismatch => f.write_str("the record is not the identity's"),
        }
    }
}

impl core::error::Error for SetupError {}

/// Refused beacons, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    /// [`PresenceError::WrongTopic`].
    pub wrong_topic: u64,
    /// [`PresenceError::Oversize`].
    pub oversize: u64,
    /// [`PresenceError::Malformed`].
    pub malformed: u64,
    /// [`PresenceError::FromTheFuture`].
    pub from_the_future: u64,
    /// [`PresenceError::StaleEpoch`].
    pub stale_epoch: u64,
    /// [`PresenceError::Expired`].
    pub expired: u64,
    /// [`PresenceError::WrongTag`].
    pub wrong_tag: u64,
    /// [`PresenceError::WrongAuthor`].
    pub wrong_author: u64,
    /// [`PresenceError::OuterSignature`].
    pub outer_signature: u64,
    /// [`PresenceError::Undecryptable`].
    pub undecryptable: u64,
    /// [`PresenceError::PeerIdMismatch`].
    pub peer_id_mismatch: u64,
    /// [`PresenceError::TimestampMismatch`].
    pub timestamp_mismatch: u64,
    /// [`PresenceError::BadSignature`].
    pub bad_signature: u64,
    /// [`PresenceError::Replayed`].
    pub replayed: u64,
}

impl Rejections {
    fn from_array(c: [u64; CAUSES]) -> Self {
        let [
            wrong_topic,
            oversize,
            malformed,
            from_the_future,
            stale_epoch,
            expired,
            wrong_tag,
            wrong_author,
            outer_signature,
            undecryptable,
            peer_id_mismatch,
            timestamp_mismatch,
            bad_signature,
            replayed,
        ] = c;
        Self {
            wrong_topic,
            oversize,
            malformed,
            from_the_future,
            stale_epoch,
            expired,
            wrong_tag,
            wrong_author,
            outer_signature,
            undecryptable,
            peer_id_mismatch,
            timestamp_mismatch,
            bad_signature,
            replayed,
        }
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        [
            self.wrong_topic,
            self.oversize,
            self.malformed,
            self.from_the_future,
            self.stale_epoch,
            self.expired,
            self.wrong_tag,
            self.wrong_author,
            self.outer_signature,
            self.undecryptable,
            self.peer_id_mismatch,
            self.timestamp_mismatch,
            self.bad_signature,
            self.replayed,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// What a [`Presence`] and its validators did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Online beacons built.
    pub beacons_sent: u64,
    /// Offline beacons built.
    pub offline_sent: u64,
    /// Beacons that could not be built (signing or encoding failed).
    pub send_failures: u64,
    /// Outgoing beacons dropped because the owner did not drain them.
    pub beacons_dropped: u64,
    /// Beacons accepted by [`Presence::handle_beacon`].
    pub accepted: u64,
    /// The member's own beacons coming back (accepted, ignored).
    pub own_beacons: u64,
    /// Members that went offline without an offline beacon (TTL ran out).
    pub members_expired: u64,
    /// Members forgotten to keep within `max_members_tracked`.
    pub members_evicted: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Beacons refused by [`Presence::handle_beacon`], by cause.
    pub rejected: Rejections,
    /// Beacons accepted by this member's [`PresenceValidator`]s (as a relay).
    pub relay_accepted: u64,
    /// Beacons refused by this member's [`PresenceValidator`]s, by cause.
    pub relay_rejected: Rejections,
}

/// Counters the validators share with their [`Presence`]: a validator is called through `&self`.
#[derive(Debug)]
struct RelayCounters {
    accepted: AtomicU32,
    rejected: [AtomicU32; CAUSES],
}

impl RelayCounters {
    fn new() -> Self {
        Self {
            accepted: AtomicU32::new(0),
            rejected: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    fn bump(counter: &AtomicU32) {
        // Saturates instead of wrapping; the closure never refuses, so the result is Ok.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(1))
        });
    }

    fn reject(&self, e: &PresenceError) {
        if let Some(c) = self.rejected.get(e.index()) {
            Self::bump(c);
        }
    }

    fn snapshot(&self) -> (u64, Rejections) {
        let mut c = [0u64; CAUSES];
        for (out, a) in c.iter_mut().zip(self.rejected.iter()) {
            *out = u64::from(a.load(Ordering::Relaxed));
        }
        (
            u64::from(self.accepted.load(Ordering::Relaxed)),
            Rejections::from_array(c),
        )
    }
}

/// What every member derives from the group secret, shared with the validators.
struct Group {
    secret: Zeroizing<[u8; 32]>,
    topic: TopicId,
    epoch_length: TimeDelta,
    provider: Arc<dyn CryptoProvider>,
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
    fn epoch_of(&self, t: Timestamp) -> u64 {
        t.as_micros()
            .checked_div(self.epoch_length.as_micros())
            .unwrap_or(0)
    }

    fn epoch_start(&self, epoch: u64) -> Timestamp {
        Timestamp::from_micros(epoch.saturating_mul(self.epoch_length.as_micros()))
    }

    fn derive(&self, context: &str, epoch: u64, out: &mut [u8]) {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(self.secret.as_ref());
        h.update(&epoch.to_be_bytes());
        h.finalize_xof().fill(out);
    }

    /// The epoch's author seeds (ML-DSA-65, then an unused ML-KEM-768 seed).
    fn author_seeds(&self, epoch: u64) -> IdentitySeeds {
        let mut both = Zeroizing::new([0u8; SIG_SEED_LEN + KEM_SEED_LEN]);
        self.derive(context::AUTHOR, epoch, both.as_mut());
        IdentitySeeds::from_bytes(&both)
    }

    /// The epoch's author identity (an ML-DSA-65 key generation: ~1 ms).
    fn author_identity(&self, epoch: u64) -> Identity {
        Identity::from_seeds(&*self.provider, self.author_seeds(epoch))
    }

    /// The epoch's author id only (an ML-DSA-65 key generation, no ML-KEM).
    fn author_id(&self, epoch: u64) -> PeerId {
        let seeds = self.author_seeds(epoch);
        let signer: Box<dyn Signer> = self.provider.signer_from_seed(&seeds.signing);
        PeerId::from_verifying_key(signer.verifying_key())
    }

    /// The epoch's tag and key, and its author's id.
    fn epoch_keys(&self, epoch: u64) -> EpochKeys {
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
    fn tag_and_key(&self, epoch: u64) -> ([u8; TAG_LEN], Zeroizing<[u8; 32]>) {
        let mut tag = [0u8; TAG_LEN];
        self.derive(context::TAG, epoch, &mut tag);
        let mut key = Zeroizing::new([0u8; 32]);
        self.derive(context::KEY, epoch, key.as_mut());
        (tag, key)
    }
}

/// One epoch's public and secret material.
#[derive(Clone)]
struct EpochKeys {
    tag: [u8; TAG_LEN],
    key: Zeroizing<[u8; 32]>,
    author: PeerId,
}

/// A beacon's payload: the outer, public layer.
#[derive(Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
struct SealedBeacon {
    #[n(0)]
    tag: FixedBytes<TAG_LEN>,
    #[n(1)]
    nonce: FixedBytes<NONCE_LEN>,
    #[n(2)]
    ciphertext: FixedBytes<CIPHERTEXT_LEN>,
}

/// A beacon's plaintext (before padding): what only members see.
#[derive(Clone, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
struct InnerBeacon {
    #[n(0)]
    status: Status,
    #[n(1)]
    seq: u64,
    #[n(2)]
    timestamp: Timestamp,
    #[n(3)]
    record: PeerRecord,
    #[n(4)]
    signature: SignatureBytes,
}

/// The bytes a member signs: `signing_input(PRESENCE_DOMAIN, topic ‖ epoch ‖ status ‖ seq ‖
/// timestamp ‖ BLAKE3(CBOR(record)))`.
fn inner_signed_bytes(
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
fn associated_data(
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

fn aead_seal(
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

fn aead_open(key: &[u8; 32], nonce: &[u8], ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
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
fn pad(inner: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
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
fn unpad(plaintext: &[u8]) -> Result<&[u8], DecodeError> {
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
struct Opened {
    epoch: u64,
    inner: InnerBeacon,
}

/// Decrypts a beacon whose tag and author were checked, decodes its plaintext and checks the
/// inner fields that cost no signature: the record's id against its key, the inner time against
/// the outer one.
fn open_beacon(
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
fn decode_sealed(topic: &TopicId, message: &SignedMessage) -> Result<SealedBeacon, PresenceError> {
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
fn verify_inner(
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

/// What a member remembers of another member.
#[derive(Debug, Clone, Copy)]
struct Member {
    status: Status,
    timestamp: Timestamp,
    seq: u64,
    /// Online until then (or, when offline, remembered until then to refuse replays).
    expires: Timestamp,
    record_issued_at: Timestamp,
}

/// One member's presence in one group. See the [module documentation](self).
pub struct Presence {
    config: PresenceConfig,
    group: Arc<Group>,
    me: PeerId,
    signer: Box<dyn Signer>,
    record: PeerRecord,
    running: bool,
    next_beacon: Timestamp,
    /// The member's beacon number, ordering its beacons with equal timestamps.
    next_seq: u64,
    /// The epoch of the latest `now` seen.
    epoch: Option<u64>,
    /// Material of the epochs around the current one (previous, current, next).
    keys: BTreeMap<u64, EpochKeys>,
    /// The author identity of the epoch this member last beaconed in.
    author: Option<(u64, Identity)>,
    members: BTreeMap<PeerId, Member>,
    /// `(expires, member)` for every tracked member: expiry order and eviction order.
    expiry: BTreeSet<(Timestamp, PeerId)>,
    beacons: VecDeque<OutgoingBeacon>,
    events: VecDeque<PresenceEvent>,
    validator_due: bool,
    counters: Counters,
    relay: Arc<RelayCounters>,
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("topic", &self.group.topic)
            .field("me", &self.me)
            .field("running", &self.running)
            .field("epoch", &self.epoch)
            .field("tracked", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// Presence in the group whose secret is `group_secret`, as `identity` (whose current
    /// record is `record`). Expands the identity's signing key again from its seed (one ML-DSA
    /// key generation). Nothing is sent before [`Presence::start`].
    pub fn new(
        config: PresenceConfig,
        group_secret: [u8; 32],
        identity: &Identity,
        record: PeerRecord,
        provider: Arc<dyn CryptoProvider>,
    ) -> Result<Self, SetupError> {
        config.validate()?;
        if record.peer_id != identity.peer_id() || record.verifying_key != *identity.verifying_key()
        {
            return Err(SetupError::RecordMismatch);
        }
        let secret = Zeroizing::new(group_secret);
        let topic = presence_topic(&secret);
        let signer = provider.signer_from_seed(&identity.seeds().signing);
        Ok(Self {
            group: Arc::new(Group {
                secret,
                topic,
                epoch_length: config.epoch_length,
                provider,
            }),
            config,
            me: identity.peer_id(),
            signer,
            record,
            running: false,
            next_beacon: Timestamp::EPOCH,
            next_seq: 0,
            epoch: None,
            keys: BTreeMap::new(),
            author: None,
            members: BTreeMap::new(),
            expiry: BTreeSet::new(),
            beacons: VecDeque::new(),
            events: VecDeque::new(),
            validator_due: true,
            counters: Counters::default(),
            relay: Arc::new(RelayCounters::new()),
        })
    }

    /// The group's presence topic (subscribe to it, publish beacons on it).
    pub fn topic(&self) -> TopicId {
        self.group.topic
    }

    /// The parameters.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// The epoch `t` falls in.
    pub fn epoch_of(&self, t: Timestamp) -> u64 {
        self.group.epoch_of(t)
    }

    /// Whether this member is announcing itself.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Replaces the record carried in this member's beacons (after the node re-issued it);
    /// the next beacon carries it.
    pub fn set_record(&mut self, record: PeerRecord) -> Result<(), SetupError> {
        if record.peer_id != self.me || record.verifying_key != *self.signer.verifying_key() {
            return Err(SetupError::RecordMismatch);
        }
        self.record = record;
        Ok(())
    }

    /// Starts announcing this member: the first beacon is due at once (at the next
    /// [`Presence::handle_timeout`]), then every `beacon_interval`.
    pub fn start(&mut self, now: Timestamp) {
        self.advance(now);
        if !self.running {
            self.running = true;
            self.next_beacon = now;
        }
    }

    /// Stops announcing this member and queues a signed offline beacon, so the others see it
    /// leave as soon as the beacon reaches them.
    pub fn stop<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.advance(now);
        if self.running {
            self.running = false;
            self.emit(now, Status::Offline, rng);
        }
    }

    /// Sends a beacon if one is due, forgets members whose TTL ran out, and rotates the epoch
    /// material. Harmless to call early.
    pub fn handle_timeout<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.advance(now);
        self.expire(now);
        if self.running && now >= self.next_beacon {
            self.emit(now, Status::Online, rng);
            // Uniform in [interval / 2, 3 interval / 2): the mean is the interval, and the
            // spread keeps one member's beacons from forming a recognisable periodic chain.
            let interval = self.config.beacon_interval.as_micros();
            let jitter = rng.next_u64() % interval.max(1);
            self.next_beacon = now + TimeDelta::from_micros((interval / 2).saturating_add(jitter));
        }
    }

    /// When [`Presence::handle_timeout`] is next due: the next beacon, the next expiry, or the
    /// next epoch boundary, whichever is first.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let beacon = self.running.then_some(self.next_beacon);
        let expiry = self.expiry.first().map(|(t, _)| *t);
        let epoch = self
            .epoch
            .map(|e| self.group.epoch_start(e.saturating_add(1)));
        [beacon, expiry, epoch].into_iter().flatten().min()
    }

    /// The next beacon to publish on [`Presence::topic`], already signed by the epoch's
    /// author key.
    pub fn poll_beacon(&mut self) -> Option<OutgoingBeacon> {
        self.beacons.pop_front()
    }

    /// The next change in who is online.
    pub fn poll_event(&mut self) -> Option<PresenceEvent> {
        self.events.pop_front()
    }

    /// A validator for the presence topic, knowing the author keys of the current epochs. Give
    /// it to the broadcast layer (`Node::set_validator`), and replace it with the one
    /// [`Presence::poll_validator`] yields after every epoch change.
    pub fn validator(&self) -> PresenceValidator {
        PresenceValidator {
            group: self.group.clone(),
            authors: self.keys.iter().map(|(e, k)| (*e, k.author)).collect(),
            oldest_epoch: self.epoch.map_or(0, |e| e.saturating_sub(1)),
            counters: self.relay.clone(),
        }
    }

    /// A fresh validator when the epoch changed since the last one was taken (or none was
    /// taken yet). A stale validator still works, only slower (it derives author keys itself)
    /// and more lenient about old epochs.
    pub fn poll_validator(&mut self) -> Option<PresenceValidator> {
        if self.validator_due {
            self.validator_due = false;
            Some(self.validator())
        } else {
            None
        }
    }

    /// A beacon received on the presence topic (the broadcast layer delivers it after the
    /// topic's validator passed it). Checks it, cheapest first (SPEC.md §19), and updates who
    /// is online; changes come out of [`Presence::poll_event`]. A refused beacon changes nothing
    /// and is counted.
    ///
    /// The outer ML-DSA signature is the validator's to check; every outer field it covers is
    /// also bound into the ciphertext's associated data, which is checked here.
    pub fn handle_beacon(
        &mut self,
        now: Timestamp,
        message: &SignedMessage,
    ) -> Result<(), PresenceError> {
        match self.check_and_apply(now, message) {
            Ok(()) => {
                self.counters.accepted += 1;
                Ok(())
            }
            Err(e) => {
                let mut c = self.rejection_array();
                if let Some(n) = c.get_mut(e.index()) {
                    *n = n.saturating_add(1);
                }
                self.counters.rejected = Rejections::from_array(c);
                Err(e)
            }
        }
    }

    /// The members online at `now`, in id order (this member not included).
    pub fn online(&self, now: Timestamp) -> impl Iterator<Item = PeerId> + '_ {
        self.members
            .iter()
            .filter(move |(_, m)| m.status == Status::Online && m.expires > now)
            .map(|(id, _)| *id)
    }

    /// Whether `member` is online at `now`.
    pub fn is_online(&self, now: Timestamp, member: &PeerId) -> bool {
        self.members
            .get(member)
            .is_some_and(|m| m.status == Status::Online && m.expires > now)
    }

    /// Until when `member` counts as online, if it does.
    pub fn online_until(&self, member: &PeerId) -> Option<Timestamp> {
        self.members
            .get(member)
            .filter(|m| m.status == Status::Online)
            .map(|m| m.expires)
    }

    /// Members tracked (online, and offline ones remembered against replays).
    pub fn tracked(&self) -> usize {
        self.members.len()
    }

    /// What happened so far, this member's validators included.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        let (accepted, rejected) = self.relay.snapshot();
        c.relay_accepted = accepted;
        c.relay_rejected = rejected;
        c
    }

    fn rejection_array(&self) -> [u64; CAUSES] {
        let r = &self.counters.rejected;
        [
            r.wrong_topic,
            r.oversize,
            r.malformed,
            r.from_the_future,
            r.stale_epoch,
            r.expired,
            r.wrong_tag,
            r.wrong_author,
            r.outer_signature,
            r.undecryptable,
            r.peer_id_mismatch,
            r.timestamp_mismatch,
            r.bad_signature,
            r.replayed,
        ]
    }

    /// Moves to `now`'s epoch: keeps the material of the previous, current and next epochs
    /// (deriving what is missing), drops the rest.
    fn advance(&mut self, now: Timestamp) {
        let e = self.group.epoch_of(now);
        if self.epoch == Some(e) {
            return;
        }
        self.epoch = Some(e);
        let (lo, hi) = (e.saturating_sub(1), e.saturating_add(1));
        self.keys.retain(|k, _| (lo..=hi).contains(k));
        for x in lo..=hi {
            if !self.keys.contains_key(&x) {
                let keys = self.group.epoch_keys(x);
                self.keys.insert(x, keys);
            }
        }
        if self
            .author
            .as_ref()
            .is_some_and(|(a, _)| !(lo..=hi).contains(a))
        {
            self.author = None;
        }
        self.validator_due = true;
    }

    /// Material of `epoch`, which must be within one epoch of the current one.
    fn keys_for(&mut self, epoch: u64) -> EpochKeys {
        if let Some(k) = self.keys.get(&epoch) {
            return k.clone();
        }
        // Only reachable if the window checks and `advance` disagree; still bounded, as the
        // derived material is not kept.
        self.group.epoch_keys(epoch)
    }

    fn check_and_apply(
        &mut self,
        now: Timestamp,
        message: &SignedMessage,
    ) -> Result<(), PresenceError> {
        self.advance(now);
        // Cheap outer checks first: topic, size and shape before any time or crypto check.
        let sealed = decode_sealed(&self.group.topic, message)?;
        let ts = message.timestamp;
        if ts > now + self.config.max_clock_skew {
            return Err(PresenceError::FromTheFuture);
        }
        let epoch = self.group.epoch_of(ts);
        let oldest = self.group.epoch_of(now).saturating_sub(1);
        if epoch < oldest {
            return Err(PresenceError::StaleEpoch { epoch, oldest });
        }
        if ts + self.config.ttl <= now {
            return Err(PresenceError::Expired);
        }
        let keys = self.keys_for(epoch);
        if sealed.tag.as_bytes() != keys.tag.as_slice() {
            return Err(PresenceError::WrongTag);
        }
        if message.author != keys.author {
            return Err(PresenceError::WrongAuthor);
        }
        let opened = open_beacon(&self.group.topic, message, &sealed, epoch, &keys.key)?;
        let member = opened.inner.record.peer_id;
        if let Some(m) = self.members.get(&member)
            && (opened.inner.timestamp, opened.inner.seq) <= (m.timestamp, m.seq)
        {
            return Err(PresenceError::Replayed);
        }
        verify_inner(&*self.group.provider, &self.group.topic, &opened)?;
        if member == self.me {
            self.counters.own_beacons += 1;
            return Ok(());
        }
        self.apply(now, opened.inner);
        Ok(())
    }

    /// Records a verified beacon of another member and queues the resulting event.
    fn apply(&mut self, now: Timestamp, inner: InnerBeacon) {
        let id = inner.record.peer_id;
        let previous = self.members.get(&id).copied();
        let was_online = previous.is_some_and(|m| m.status == Status::Online && m.expires > now);
        if let Some(p) = previous {
            self.expiry.remove(&(p.expires, id));
        } else {
            while self.members.len() >= self.config.max_members_tracked {
                let Some((_, oldest)) = self.expiry.pop_first() else {
                    break;
                };
                if let Some(m) = self.members.remove(&oldest) {
                    self.counters.members_evicted += 1;
                    if m.status == Status::Online && m.expires > now {
                        self.push_event(PresenceEvent::Offline {
                            member: oldest,
                            reason: OfflineReason::Evicted,
                        });
                    }
                }
            }
        }
        let expires = inner.timestamp + self.config.ttl;
        self.members.insert(
            id,
            Member {
                status: inner.status,
                timestamp: inner.timestamp,
                seq: inner.seq,
                expires,
                record_issued_at: inner.record.issued_at,
            },
        );
        self.expiry.insert((expires, id));
        match inner.status {
            Status::Online => {
                let newer_record =
                    previous.is_none_or(|p| inner.record.issued_at > p.record_issued_at);
                if !was_online || newer_record {
                    self.push_event(PresenceEvent::Online {
                        member: id,
                        record: inner.record,
                    });
                }
            }
            Status::Offline => {
                if was_online {
                    self.push_event(PresenceEvent::Offline {
                        member: id,
                        reason: OfflineReason::Left,
                    });
                }
            }
        }
    }

    /// Forgets members whose TTL ran out; online ones go offline (`Expired`).
    fn expire(&mut self, now: Timestamp) {
        while let Some(&(t, id)) = self.expiry.first() {
            if t > now {
                break;
            }
            self.expiry.pop_first();
            if let Some(m) = self.members.remove(&id)
                && m.status == Status::Online
            {
                self.counters.members_expired += 1;
                self.push_event(PresenceEvent::Offline {
                    member: id,
                    reason: OfflineReason::Expired,
                });
            }
        }
    }

    fn push_event(&mut self, event: PresenceEvent) {
        if self.events.len() >= self.config.max_queued_events {
            self.events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Builds, seals and signs a beacon dated `now` and queues it.
    fn emit<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, status: Status, rng: &mut R) {
        match self.build(now, status, rng) {
            Some(beacon) => {
                match status {
                    Status::Online => self.counters.beacons_sent += 1,
                    Status::Offline => self.counters.offline_sent += 1,
                }
                if self.beacons.len() >= MAX_QUEUED_BEACONS {
                    self.beacons.pop_front();
                    self.counters.beacons_dropped += 1;
                }
                self.beacons.push_back(beacon);
            }
            None => self.counters.send_failures += 1,
        }
    }

    fn build<R: CryptoRng + ?Sized>(
        &mut self,
        now: Timestamp,
        status: Status,
        rng: &mut R,
    ) -> Option<OutgoingBeacon> {
        let epoch = self.group.epoch_of(now);
        let keys = self.keys_for(epoch);
        if self.author.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.author = Some((epoch, self.group.author_identity(epoch)));
        }
        let (_, author) = self.author.as_ref()?;
        let topic = self.group.topic;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let signed = inner_signed_bytes(&topic, epoch, status, seq, now, &self.record)?;
        let inner = InnerBeacon {
            status,
            seq,
            timestamp: now,
            record: self.record.clone(),
            signature: self.signer.sign(&signed).ok()?,
        };
        let encoded = Zeroizing::new(codec::to_vec(&inner).ok()?);
        let plaintext = pad(&encoded)?;
        // The top bit keeps the CBOR encoding of every outer sequence number 9 bytes long.
        let sequence = rng.next_u64() | (1 << 63);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let author_id = author.peer_id();
        let ad = associated_data(&topic, epoch, &keys.tag, &author_id, sequence, now);
        let ciphertext = aead_seal(&keys.key, &nonce, &ad, &plaintext)?;
        let sealed = SealedBeacon {
            tag: FixedBytes::from_array(keys.tag),
            nonce: FixedBytes::from_array(nonce),
            ciphertext: FixedBytes::new(ciphertext).ok()?,
        };
        let payload = codec::to_vec(&sealed).ok()?;
        let message = SignedMessage::publish(author, topic, sequence, now, &payload).ok()?;
        Some(OutgoingBeacon {
            message,
            author_key: author.verifying_key().clone(),
        })
    }
}

/// The presence topic's [`Validator`], run by every relay of the topic before it forwards a
/// beacon. Relays are members (nobody else knows the topic), so it makes the full check: the
/// tag and author of the beacon's epoch (taken from the message's timestamp, which the
/// broadcast layer already checked against its retention window and clock skew), the outer
/// signature, decryption, and the member's signature. Refusals are counted in the owning
/// [`Presence`]'s [`Counters::relay_rejected`].
#[derive(Clone)]
pub struct PresenceValidator {
    group: Arc<Group>,
    /// Author ids of the epochs known when the validator was made.
    authors: Vec<(u64, PeerId)>,
    /// Beacons of earlier epochs are refused as stale.
    oldest_epoch: u64,
    counters: Arc<RelayCounters>,
}

impl fmt::Debug for PresenceValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresenceValidator")
            .field("topic", &self.group.topic)
            .field("oldest_epoch", &self.oldest_epoch)
            .field("epochs", &self.authors.len())
            .finish_non_exhaustive()
    }
}

impl PresenceValidator {
    /// The full check, with the precise refusal.
    pub fn check(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), PresenceError> {
        let group = &*self.group;
        let sealed = decode_sealed(&group.topic, message)?;
        let epoch = group.epoch_of(message.timestamp);
        if epoch < self.oldest_epoch {
            return Err(PresenceError::StaleEpoch {
                epoch,
                oldest: self.oldest_epoch,
            });
        }
        let (tag, key) = group.tag_and_key(epoch);
        if sealed.tag.as_bytes() != tag.as_slice() {
            return Err(PresenceError::WrongTag);
        }
        // The author check needs the epoch's key pair: known for the epochs around the one the
        // validator was made in, derived (one key generation) otherwise; only after the tag
        // check, so that only beacons made with the group secret can cost that.
        let author = match self.authors.iter().find(|(e, _)| *e == epoch) {
            Some((_, a)) => *a,
            None => group.author_id(epoch),
        };
        if message.author != author {
            return Err(PresenceError::WrongAuthor);
        }
        message
            .verify(&*group.provider, author_key)
            .map_err(|_| PresenceError::OuterSignature)?;
        let opened = open_beacon(&group.topic, message, &sealed, epoch, &key)?;
        verify_inner(&*group.provider, &group.topic, &opened)
    }
}

impl Validator for PresenceValidator {
    fn validate(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), MessageError> {
        match self.check(message, author_key) {
            Ok(()) => {
                RelayCounters::bump(&self.counters.accepted);
                Ok(())
            }
            Err(e) => {
                self.counters.reject(&e);
                Err(e.to_message_error())
            }
        }
    }
}

// Keep the payload type in view: a beacon's payload must fit a message.
const _: () = assert!(BEACON_PAYLOAD_LEN <= crate::broadcast::message::MAX_PAYLOAD);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::message::Payload;
    use crate::crypto::PureRustProvider;
    use crate::identity::record::{Address, Addresses};
    use alloc::vec;
    use chacha20::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};

    /// An epoch boundary at the default epoch length (1.8e9 s is a multiple of 600 s).
    const T0: Timestamp = Timestamp::from_secs(1_800_000_000);
    const SECRET: [u8; 32] = [7; 32];
    const fn secs(s: u64) -> TimeDelta {
        TimeDelta::from_secs(s)
    }

    fn provider() -> Arc<dyn CryptoProvider> {
        Arc::new(PureRustProvider)
    }

    /// A member with `addresses` addresses of `address_len` bytes in its record.
    fn member_with(
        seed: u8,
        secret: [u8; 32],
        config: PresenceConfig,
        addresses: usize,
        address_len: usize,
    ) -> Presence {
        let mut rng = ChaCha8Rng::from_seed([seed; 32]);
        let identity = Identity::generate(&PureRustProvider, &mut rng);
        let addrs = (0..addresses)
            .map(|i| Address::new(vec![i as u8; address_len]).unwrap())
            .collect();
        let record =
            PeerRecord::issue(&identity, Addresses::new(addrs).unwrap(), T0, secs(3600)).unwrap();
        Presence::new(config, secret, &identity, record, provider()).unwrap()
    }

    fn member(seed: u8) -> Presence {
        member_with(seed, SECRET, PresenceConfig::default(), 1, 16)
    }

    fn rng(seed: u8) -> ChaCha8Rng {
        ChaCha8Rng::from_seed([seed; 32])
    }

    /// Starts `p` (if needed) and returns the beacon it sends at `now`.
    fn beacon_at(p: &mut Presence, now: Timestamp, rng: &mut ChaCha8Rng) -> OutgoingBeacon {
        p.start(now);
        p.handle_timeout(now, rng);
        p.poll_beacon().expect("a beacon is due")
    }

    fn events(p: &mut Presence) -> Vec<PresenceEvent> {
        core::iter::from_fn(|| p.poll_event()).collect()
    }

    fn online(p: &Presence, now: Timestamp) -> Vec<PeerId> {
        p.online(now).collect()
    }

    fn sealed(m: &SignedMessage) -> SealedBeacon {
        codec::from_slice(&m.payload).unwrap()
    }

    fn with_payload(m: &SignedMessage, payload: Vec<u8>) -> SignedMessage {
        let mut m = m.clone();
        m.payload = Payload::new(payload).unwrap();
        m
    }

    /// What a member could do to a beacon: decrypt it with the group's keys, change the inner
    /// beacon, encrypt it again (same nonce and outer fields). The outer signature is left
    /// stale unless `resign`.
    fn tamper(
        group_of: &Presence,
        m: &SignedMessage,
        resign: bool,
        f: impl FnOnce(&mut InnerBeacon),
    ) -> SignedMessage {
        let g = &group_of.group;
        let epoch = g.epoch_of(m.timestamp);
        let (tag, key) = g.tag_and_key(epoch);
        let s = sealed(m);
        let ad = associated_data(&g.topic, epoch, &tag, &m.author, m.sequence, m.timestamp);
        let plain = aead_open(&key, s.nonce.as_bytes(), &ad, s.ciphertext.as_bytes()).unwrap();
        let mut inner: InnerBeacon = codec::from_slice(unpad(&plain).unwrap()).unwrap();
        f(&mut inner);
        let plain = pad(&codec::to_vec(&inner).unwrap()).unwrap();
        let nonce: [u8; NONCE_LEN] = s.nonce.as_bytes().try_into().unwrap();
        let ct = aead_seal(&key, &nonce, &ad, &plain).unwrap();
        let payload = codec::to_vec(&SealedBeacon {
            tag: s.tag,
            nonce: s.nonce,
            ciphertext: FixedBytes::new(ct).unwrap(),
        })
        .unwrap();
        if resign {
            let author = g.author_identity(epoch);
            SignedMessage::publish(&author, m.topic, m.sequence, m.timestamp, &payload).unwrap()
        } else {
            with_payload(m, payload)
        }
    }

    #[test]
    fn members_see_each_other_come_leave_and_time_out() {
        let mut r = rng(1);
        let (mut a, mut b, mut c) = (member(1), member(2), member(3));
        assert_eq!(a.topic(), presence_topic(&SECRET));
        assert_eq!(a.topic(), b.topic());
        a.start(T0);
        assert_eq!(
            a.poll_timeout(),
            Some(T0),
            "the first beacon is due at once"
        );
        let ba = beacon_at(&mut a, T0, &mut r);
        let bb = beacon_at(&mut b, T0, &mut r);
        let bc = beacon_at(&mut c, T0, &mut r);
        // The broadcast layer's own check passes: a signed message under the key it carries.
        ba.message
            .verify(&PureRustProvider, &ba.author_key)
            .unwrap();

        let t1 = T0 + secs(1);
        a.handle_beacon(t1, &bb.message).unwrap();
        a.handle_beacon(t1, &bc.message).unwrap();
        b.handle_beacon(t1, &ba.message).unwrap();
        assert_eq!(
            events(&mut b),
            vec![PresenceEvent::Online {
                member: a.me,
                record: a.record.clone()
            }]
        );
        assert_eq!(events(&mut a).len(), 2);
        let mut both = vec![b.me, c.me];
        both.sort();
        assert_eq!(online(&a, t1), both);
        assert_eq!(online(&b, t1), vec![a.me]);

        // Beacons repeat every interval (± half of it); a refresh changes nothing visible but
        // extends the TTL.
        let next = b.poll_timeout().unwrap();
        assert!(next >= T0 + secs(15) && next < T0 + secs(45));
        b.handle_timeout(next, &mut r);
        let bb2 = b.poll_beacon().unwrap();
        a.handle_beacon(next, &bb2.message).unwrap();
        assert!(events(&mut a).is_empty());
        assert_eq!(a.online_until(&b.me), Some(next + secs(600)));

        // b leaves gracefully: gone as soon as its offline beacon arrives.
        let t2 = next + secs(2);
        b.stop(t2, &mut r);
        assert!(!b.is_running());
        let off = b.poll_beacon().unwrap();
        a.handle_beacon(t2, &off.message).unwrap();
        assert_eq!(
            events(&mut a),
            vec![PresenceEvent::Offline {
                member: b.me,
                reason: OfflineReason::Left
            }]
        );
        assert_eq!(online(&a, t2), vec![c.me]);

        // c crashed after its first beacon: it drops out when its TTL runs out, not before.
        let ttl_end = T0 + secs(600);
        assert_eq!(a.online_until(&c.me), Some(ttl_end));
        let mut a_rng = rng(9);
        let mut now = t2;
        while let Some(t) = a.poll_timeout() {
            if t >= ttl_end {
                break;
            }
            now = t;
            a.handle_timeout(now, &mut a_rng);
            while a.poll_beacon().is_some() {}
        }
        assert!(a.is_online(now, &c.me) && events(&mut a).is_empty());
        a.handle_timeout(ttl_end - TimeDelta::from_micros(1), &mut a_rng);
        assert!(events(&mut a).is_empty());
        assert!(a.poll_timeout().unwrap() <= ttl_end);
        a.handle_timeout(ttl_end, &mut a_rng);
        assert_eq!(
            events(&mut a),
            vec![PresenceEvent::Offline {
                member: c.me,
                reason: OfflineReason::Expired
            }]
        );
        assert!(online(&a, ttl_end).is_empty());
        assert_eq!(a.counters().members_expired, 1);
        assert_eq!(a.counters().rejected.total(), 0);
    }

    #[test]
    fn outsiders_can_neither_read_nor_tell_members_apart_nor_link_epochs() {
        let mut r = rng(2);
        let mut a = member(1);
        // b's record is as large as a record can be; a's is small.
        let mut b = member_with(2, SECRET, PresenceConfig::default(), MAX_ADDRESSES, 128);
        let t = T0 + secs(5);
        let ba = beacon_at(&mut a, t, &mut r);
        let bb = beacon_at(&mut b, t, &mut r);
        b.stop(t + secs(1), &mut r);
        let ob = b.poll_beacon().unwrap();

        // Same outer author and key (the epoch's, neither member's), same tag, same length.
        for x in [&bb, &ob] {
            assert_eq!(x.message.author, ba.message.author);
            assert_eq!(x.author_key, ba.author_key);
            assert_eq!(sealed(&x.message).tag, sealed(&ba.message).tag);
            assert_eq!(x.message.payload.len(), BEACON_PAYLOAD_LEN);
            assert_eq!(
                codec::to_vec(&x.message).unwrap().len(),
                codec::to_vec(&ba.message).unwrap().len()
            );
        }
        assert_eq!(ba.message.payload.len(), BEACON_PAYLOAD_LEN);
        assert!(ba.message.author != a.me && ba.message.author != b.me);
        // Neither member's id nor key appears in the clear.
        for x in [&ba, &bb, &ob] {
            let bytes = codec::to_vec(&x.message).unwrap();
            for p in [&a, &b] {
                let vk = &p.signer.verifying_key()[..32];
                assert!(!bytes.windows(32).any(|w| w == p.me.as_bytes() || w == vk));
            }
        }

        // An outsider (another secret) gets a different topic, tag and key: it can decrypt
        // nothing, and its Presence refuses the beacon.
        let mut o = member_with(3, [8; 32], PresenceConfig::default(), 1, 16);
        assert_ne!(o.topic(), a.topic());
        let epoch = a.epoch_of(t);
        let (otag, okey) = o.group.tag_and_key(epoch);
        let s = sealed(&bb.message);
        assert_ne!(s.tag.as_bytes(), otag.as_slice());
        let m = &bb.message;
        for topic in [a.topic(), o.topic()] {
            let ad = associated_data(&topic, epoch, &otag, &m.author, m.sequence, m.timestamp);
            assert!(aead_open(&okey, s.nonce.as_bytes(), &ad, s.ciphertext.as_bytes()).is_none());
        }
        assert_eq!(
            o.handle_beacon(t, &bb.message),
            Err(PresenceError::WrongTopic)
        );
        let mut moved = bb.message.clone();
        moved.topic = o.topic();
        assert_eq!(o.handle_beacon(t, &moved), Err(PresenceError::WrongTag));

        // The same member in the next epoch shares no public field with its earlier beacon.
        let t_next = T0 + secs(600) + secs(5);
        assert_eq!(a.epoch_of(t_next), epoch + 1);
        let mut a_rng = rng(3);
        a.handle_timeout(t_next, &mut a_rng);
        let later = a.poll_beacon().unwrap();
        assert_ne!(later.message.author, ba.message.author);
        assert_ne!(later.author_key, ba.author_key);
        let (old_tag, new_tag) = (sealed(&ba.message).tag, sealed(&later.message).tag);
        assert_ne!(old_tag, new_tag);
        let later_bytes = codec::to_vec(&later.message).unwrap();
        for field in [
            old_tag.as_bytes(),
            ba.message.author.as_bytes(),
            &ba.author_key[..32],
        ] {
            assert!(!later_bytes.windows(field.len()).any(|w| w == field));
        }
        // Only the topic is common (it is the group's, SPEC.md §19 discusses it).
        assert_eq!(later.message.topic, ba.message.topic);
        assert_eq!(later.message.payload.len(), ba.message.payload.len());
    }

    /// Checks that `a` refuses `m` at `when` with `e` (any `Malformed` matches a `Malformed`),
    /// counts it, and changes nothing.
    fn refuse(
        a: &mut Presence,
        expect: &mut [u64; CAUSES],
        when: Timestamp,
        m: &SignedMessage,
        e: PresenceError,
    ) {
        let tracked = a.tracked();
        let got = a.handle_beacon(when, m);
        match (&got, &e) {
            (Err(PresenceError::Malformed(_)), PresenceError::Malformed(_)) => {}
            _ => assert_eq!(got, Err(e.clone())),
        }
        expect[e.index()] += 1;
        assert_eq!(
            a.counters().rejected,
            Rejections::from_array(*expect),
            "{e}"
        );
        assert_eq!(a.tracked(), tracked);
        assert!(a.poll_event().is_none());
    }

    #[test]
    fn forged_stale_and_malformed_beacons_are_refused_and_counted() {
        let mut r = rng(3);
        let (mut a, mut b, c) = (member(1), member(2), member(3));
        let t = T0 + secs(60);
        let bb = beacon_at(&mut b, t, &mut r).message;
        let now = t + secs(1);
        let x = &mut [0u64; CAUSES];

        // The member's signature: flipped, or another member's record under b's signature.
        let m = tamper(&b, &bb, false, |i| {
            let mut s = i.signature.as_bytes().to_vec();
            s[100] ^= 1;
            i.signature = SignatureBytes::new(s).unwrap();
        });
        refuse(&mut a, x, now, &m, PresenceError::BadSignature);
        let m = tamper(&b, &bb, false, |i| i.record = c.record.clone());
        refuse(&mut a, x, now, &m, PresenceError::BadSignature);
        // A record whose id is not its key's.
        let m = tamper(&b, &bb, false, |i| i.record.peer_id = c.me);
        refuse(&mut a, x, now, &m, PresenceError::PeerIdMismatch);
        let m = tamper(&b, &bb, false, |i| i.timestamp += TimeDelta::from_micros(1));
        refuse(&mut a, x, now, &m, PresenceError::TimestampMismatch);
        // Outer fields are bound into the ciphertext.
        let mut m = bb.clone();
        m.sequence ^= 1;
        refuse(&mut a, x, now, &m, PresenceError::Undecryptable);
        let mut p = bb.payload.to_vec();
        let last = p.len() - 1;
        p[last] ^= 1;
        refuse(
            &mut a,
            x,
            now,
            &with_payload(&bb, p),
            PresenceError::Undecryptable,
        );
        // Tag, author, topic.
        let mut s = sealed(&bb);
        s.tag = FixedBytes::from_array([0; TAG_LEN]);
        let m = with_payload(&bb, codec::to_vec(&s).unwrap());
        refuse(&mut a, x, now, &m, PresenceError::WrongTag);
        let mut m = bb.clone();
        m.author = b.me;
        refuse(&mut a, x, now, &m, PresenceError::WrongAuthor);
        let mut m = bb.clone();
        m.topic = TopicId::from_name("elsewhere");
        refuse(&mut a, x, now, &m, PresenceError::WrongTopic);
        // Truncated, garbage, empty, oversize.
        let full = bb.payload.to_vec();
        let malformed = PresenceError::Malformed(DecodeError::Malformed { position: None });
        for p in [full[..full.len() - 1].to_vec(), vec![0xff; 100], Vec::new()] {
            refuse(&mut a, x, now, &with_payload(&bb, p), malformed.clone());
        }
        let mut long = full.clone();
        long.push(0);
        let e = PresenceError::Oversize {
            len: BEACON_PAYLOAD_LEN + 1,
            max: BEACON_PAYLOAD_LEN,
        };
        refuse(&mut a, x, now, &with_payload(&bb, long), e);
        // Time: from the future, stale epoch (two epochs on), expired (previous epoch, TTL over).
        refuse(&mut a, x, t - secs(31), &bb, PresenceError::FromTheFuture);
        let e = a.epoch_of(t);
        let stale = PresenceError::StaleEpoch {
            epoch: e,
            oldest: e + 1,
        };
        refuse(&mut a, x, T0 + secs(1200), &bb, stale);
        let (mut a, x) = (member(1), &mut [0u64; CAUSES]);
        refuse(&mut a, x, t + secs(600), &bb, PresenceError::Expired);
        // With short epochs a beacon two epochs old is stale although its TTL has not run out.
        let short = PresenceConfig {
            epoch_length: secs(60),
            ..PresenceConfig::default()
        };
        let mut s1 = member_with(4, SECRET, short.clone(), 1, 16);
        let mut s2 = member_with(5, SECRET, short, 1, 16);
        let old = beacon_at(&mut s1, t, &mut r).message;
        let e = s2.epoch_of(t);
        let stale = PresenceError::StaleEpoch {
            epoch: e,
            oldest: e + 1,
        };
        refuse(&mut s2, &mut [0; CAUSES], t + secs(150), &old, stale);
        // The genuine beacon is accepted once; the same beacon again is a replay.
        assert_eq!(a.handle_beacon(now, &bb), Ok(()));
        assert_eq!(events(&mut a).len(), 1);
        refuse(&mut a, x, now, &bb, PresenceError::Replayed);
        assert_eq!(online(&a, now), vec![b.me]);
        assert_eq!(a.counters().accepted, 1);
    }

    #[test]
    fn reordered_or_replayed_online_beacons_cannot_undo_a_leave() {
        let mut r = rng(4);
        let (mut a, mut b) = (member(1), member(2));
        let t = T0 + secs(10);
        let on = beacon_at(&mut b, t, &mut r).message;
        b.stop(t + secs(1), &mut r);
        let off = b.poll_beacon().unwrap().message;
        let now = t + secs(2);
        // The offline beacon overtakes the online one.
        a.handle_beacon(now, &off).unwrap();
        assert_eq!(a.handle_beacon(now, &on), Err(PresenceError::Replayed));
        assert!(online(&a, now).is_empty() && events(&mut a).is_empty());
        // A leave within the same microsecond as the last beacon is still ordered (by seq).
        b.start(now);
        b.handle_timeout(now, &mut r);
        let on2 = b.poll_beacon().unwrap().message;
        b.stop(now, &mut r);
        let off2 = b.poll_beacon().unwrap().message;
        a.handle_beacon(now, &on2).unwrap();
        a.handle_beacon(now, &off2).unwrap();
        assert_eq!(a.handle_beacon(now, &on2), Err(PresenceError::Replayed));
        assert!(online(&a, now).is_empty());
    }

    #[test]
    fn relay_validator_makes_the_full_check_and_counts() {
        let mut r = rng(5);
        let (mut a, mut b, c) = (member(1), member(2), member(3));
        a.start(T0);
        let v = a.poll_validator().expect("a first validator");
        assert!(a.poll_validator().is_none());
        let t = T0 + secs(20);
        let ob = beacon_at(&mut b, t, &mut r);
        let (m, key) = (&ob.message, &ob.author_key);
        assert_eq!(v.validate(m, key), Ok(()));
        // A validator made before any epoch is known derives the author itself.
        let fresh = member(4).validator();
        assert_eq!(fresh.check(m, key), Ok(()));

        // Payload changed without the epoch key: the outer signature fails.
        let mut p = m.payload.to_vec();
        let last = p.len() - 1;
        p[last] ^= 1;
        assert_eq!(
            v.check(&with_payload(m, p), key),
            Err(PresenceError::OuterSignature)
        );
        // The key carried is not the author's.
        assert_eq!(
            v.check(m, c.signer.verifying_key()),
            Err(PresenceError::OuterSignature)
        );
        // Validly signed, but by a key that is not the epoch's.
        let mut id_rng = rng(6);
        let stranger = Identity::generate(&PureRustProvider, &mut id_rng);
        let s = SignedMessage::publish(&stranger, m.topic, 1, m.timestamp, &m.payload).unwrap();
        assert_eq!(
            v.validate(&s, stranger.verifying_key()),
            Err(MessageError::WrongKey)
        );
        // A member re-signs a beacon with a forged inner signature: caught by the relay.
        let forged = tamper(&b, m, true, |i| {
            let mut s = i.signature.as_bytes().to_vec();
            s[7] ^= 0x80;
            i.signature = SignatureBytes::new(s).unwrap();
        });
        assert_eq!(v.check(&forged, key), Err(PresenceError::BadSignature));
        assert_eq!(v.validate(&forged, key), Err(MessageError::BadSignature));
        // Garbage.
        assert!(matches!(
            v.check(&with_payload(m, vec![1, 2, 3]), key),
            Err(PresenceError::Malformed(_))
        ));
        let counters = a.counters();
        assert_eq!(counters.relay_accepted, 1);
        assert_eq!(counters.relay_rejected.wrong_author, 1);
        assert_eq!(counters.relay_rejected.bad_signature, 1);
        assert_eq!(counters.rejected.total(), 0, "handle_beacon counts apart");

        // Two epochs on, a new validator refuses the old epoch as stale.
        let later = T0 + secs(1200);
        a.handle_timeout(later, &mut r);
        let v2 = a.poll_validator().expect("a validator per epoch");
        let e = a.epoch_of(t);
        assert_eq!(
            v2.validate(m, key),
            Err(MessageError::TooOld),
            "stale epoch"
        );
        assert_eq!(
            v2.check(m, key),
            Err(PresenceError::StaleEpoch {
                epoch: e,
                oldest: e + 1
            })
        );
        assert_eq!(a.counters().relay_rejected.stale_epoch, 1);
    }

    #[test]
    fn tracked_members_are_bounded_and_the_least_recent_is_evicted() {
        let mut r = rng(6);
        let config = PresenceConfig {
            max_members_tracked: 3,
            ..PresenceConfig::default()
        };
        let mut a = member_with(1, SECRET, config, 1, 16);
        let mut ids = Vec::new();
        for i in 0..5u8 {
            let mut s = member(10 + i);
            let t = T0 + secs(u64::from(i));
            let m = beacon_at(&mut s, t, &mut r).message;
            a.handle_beacon(t, &m).unwrap();
            assert!(a.tracked() <= 3);
            ids.push(s.me);
        }
        let now = T0 + secs(5);
        let mut expect: Vec<PeerId> = ids[2..].to_vec();
        expect.sort();
        assert_eq!(online(&a, now), expect);
        let evicted: Vec<_> = events(&mut a)
            .into_iter()
            .filter_map(|e| match e {
                PresenceEvent::Offline {
                    member,
                    reason: OfflineReason::Evicted,
                } => Some(member),
                _ => None,
            })
            .collect();
        assert_eq!(evicted, ids[..2].to_vec());
        assert_eq!(a.counters().members_evicted, 2);
    }

    #[test]
    fn same_seed_gives_same_beacon_bytes() {
        let bytes = |seed: u8| {
            let mut p = member(1);
            let mut r = rng(seed);
            let b = beacon_at(&mut p, T0 + secs(3), &mut r);
            p.stop(T0 + secs(4), &mut r);
            let o = p.poll_beacon().unwrap();
            (
                codec::to_vec(&b.message).unwrap(),
                codec::to_vec(&o.message).unwrap(),
                b.author_key,
            )
        };
        assert_eq!(bytes(1), bytes(1));
        assert_ne!(bytes(1).0, bytes(2).0);
    }

    #[test]
    fn mutated_and_random_payloads_never_panic_or_change_state() {
        let mut r = rng(7);
        let (mut a, mut b) = (member(1), member(2));
        let t = T0 + secs(30);
        let ob = beacon_at(&mut b, t, &mut r);
        let v = a.validator();
        let good = ob.message.payload.to_vec();
        for i in 0..400 {
            let mut p = good.clone();
            match i % 4 {
                0 => {
                    let at = r.next_u64() as usize % p.len();
                    p[at] ^= 1 << (r.next_u32() % 8);
                }
                1 => p.truncate(r.next_u64() as usize % p.len()),
                2 => {
                    p = vec![0; r.next_u64() as usize % (BEACON_PAYLOAD_LEN + 64)];
                    r.fill_bytes(&mut p);
                }
                _ => {
                    // Headers of the payload: the first bytes of each field.
                    let at = r.next_u64() as usize % 40;
                    p[at] = r.next_u32() as u8;
                }
            }
            if p == good {
                continue;
            }
            let m = with_payload(&ob.message, p);
            assert!(a.handle_beacon(t, &m).is_err());
            if i % 8 == 0 {
                assert!(v.check(&m, &ob.author_key).is_err());
            }
        }
        assert_eq!(a.tracked(), 0);
        assert!(a.poll_event().is_none());
        assert_eq!(a.counters().accepted, 0);
        a.handle_beacon(t, &ob.message).unwrap();
        assert_eq!(a.tracked(), 1);
    }

    #[test]
    fn the_largest_inner_beacon_fills_the_fixed_plaintext_exactly() {
        let b = member_with(
            2,
            SECRET,
            PresenceConfig::default(),
            MAX_ADDRESSES,
            MAX_ADDRESS_LEN,
        );
        assert_eq!(codec::to_vec(&b.record).unwrap().len(), MAX_RECORD_LEN);
        assert_eq!(MAX_RECORD_LEN, 7_548);
        let inner = InnerBeacon {
            status: Status::Offline,
            seq: u64::MAX,
            timestamp: Timestamp::MAX,
            record: b.record.clone(),
            signature: SignatureBytes::from_array([0; SIGNATURE_LEN]),
        };
        let encoded = codec::to_vec(&inner).unwrap();
        assert_eq!(encoded.len(), MAX_INNER_LEN);
        assert_eq!(pad(&encoded).unwrap().len(), PLAINTEXT_LEN);
        assert_eq!(BEACON_PAYLOAD_LEN, 10_932);
        // Non-zero padding is refused.
        let mut padded = pad(&encoded[..100]).unwrap();
        padded[PLAINTEXT_LEN - 1] = 1;
        assert!(unpad(&padded).is_err());
        assert!(unpad(&[0xff, 0xff, 0]).is_err());
    }

    #[test]
    fn beacons_travel_through_plumtree_with_the_presence_validator() {
        use crate::broadcast::plumtree::{self, Message, Output, Plumtree};
        let mut r = rng(9);
        let (mut a, mut b, mut c) = (member(1), member(2), member(3));
        a.start(T0);
        let validator = a.poll_validator().unwrap();
        let t = T0 + secs(3);
        let from = b.me;
        let mut relay = Plumtree::new(plumtree::Config::default(), a.topic());
        relay.neighbor_up(from);
        let gossip = |o: &OutgoingBeacon| {
            Message::Gossip(plumtree::Payload {
                message: o.message.clone(),
                author_key: o.author_key.clone(),
                hops: 1,
            })
        };
        let (ob, oc) = (beacon_at(&mut b, t, &mut r), beacon_at(&mut c, t, &mut r));
        // Same author, distinct ids: the random outer sequence numbers keep them apart.
        assert_ne!(ob.message.id(), oc.message.id());
        let forged = tamper(&b, &ob.message, true, |i| i.seq += 1);
        let forged = OutgoingBeacon {
            message: forged,
            author_key: ob.author_key.clone(),
        };
        for o in [&forged, &ob, &oc] {
            relay.handle_message(t, from, gossip(o), &validator);
        }
        let mut delivered = 0;
        while let Some(out) = relay.poll() {
            if let Output::Deliver { message, .. } = out {
                a.handle_beacon(t, &message).unwrap();
                delivered += 1;
            }
        }
        assert_eq!(delivered, 2);
        assert_eq!(relay.counters().invalid, 1);
        assert_eq!(a.counters().relay_rejected.bad_signature, 1);
        let mut both = vec![b.me, c.me];
        both.sort();
        assert_eq!(online(&a, t), both);
    }

    #[test]
    fn configs_and_records_are_checked() {
        let mut r = rng(8);
        let id = Identity::generate(&PureRustProvider, &mut r);
        let other = Identity::generate(&PureRustProvider, &mut r);
        let rec = |i: &Identity| PeerRecord::issue(i, Addresses::empty(), T0, secs(60)).unwrap();
        assert!(matches!(
            Presence::new(
                PresenceConfig::default(),
                SECRET,
                &id,
                rec(&other),
                provider()
            ),
            Err(SetupError::RecordMismatch)
        ));
        for bad in [
            PresenceConfig {
                beacon_interval: TimeDelta::ZERO,
                ..PresenceConfig::default()
            },
            PresenceConfig {
                ttl: secs(30),
                ..PresenceConfig::default()
            },
            PresenceConfig {
                max_clock_skew: secs(600),
                ..PresenceConfig::default()
            },
            PresenceConfig {
                max_members_tracked: 0,
                ..PresenceConfig::default()
            },
        ] {
            assert!(matches!(
                Presence::new(bad, SECRET, &id, rec(&id), provider()),
                Err(SetupError::InvalidConfig(_))
            ));
        }
        let mut p =
            Presence::new(PresenceConfig::default(), SECRET, &id, rec(&id), provider()).unwrap();
        assert_eq!(p.set_record(rec(&other)), Err(SetupError::RecordMismatch));
        let newer = PeerRecord::issue(&id, Addresses::empty(), T0 + secs(1), secs(60)).unwrap();
        assert_eq!(p.set_record(newer), Ok(()));
        // Debug never shows the secret.
        let dbg = alloc::format!("{p:?} {:?}", p.validator());
        assert!(!dbg.contains("7, 7, 7"));
    }
}
