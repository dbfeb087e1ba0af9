use crate::broadcast::message::MessageError;
use crate::wire::codec::DecodeError;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

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

    pub(super) fn index(&self) -> usize {
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

pub(super) const CAUSES: usize = 14;

/// Why [`Presence::new`](super::Presence::new) refused, or an
/// [`Input::SetRecord`](super::Input::SetRecord) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceSetupError {
    /// A parameter is out of range (the text says which).
    InvalidConfig(&'static str),
    /// The record is not the identity's.
    RecordMismatch,
}

impl fmt::Display for PresenceSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresenceSetupError::InvalidConfig(what) => write!(f, "invalid presence config: {what}"),
            PresenceSetupError::RecordMismatch => f.write_str("the record is not the identity's"),
        }
    }
}

impl core::error::Error for PresenceSetupError {}

/// Why [`Presence`](super::Presence) refused an [`Input`](super::Input) (the reply of its
/// `handle`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// An [`Input::Beacon`](super::Input::Beacon) was refused (counted in
    /// [`Counters::rejected`]).
    Beacon(PresenceError),
    /// An [`Input::SetRecord`](super::Input::SetRecord) was refused.
    Record(PresenceSetupError),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Beacon(e) => write!(f, "beacon refused: {e}"),
            Refused::Record(e) => write!(f, "record refused: {e}"),
        }
    }
}

impl core::error::Error for Refused {}

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
    pub(super) fn from_array(c: [u64; CAUSES]) -> Self {
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
    /// Beacons accepted ([`Input::Beacon`](super::Input::Beacon)).
    pub accepted: u64,
    /// The member's own beacons coming back (accepted, ignored).
    pub own_beacons: u64,
    /// Members that went offline without an offline beacon (TTL ran out).
    pub members_expired: u64,
    /// Members forgotten to keep within `max_members_tracked`.
    pub members_evicted: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Beacons refused ([`Input::Beacon`](super::Input::Beacon)), by cause.
    pub rejected: Rejections,
    /// Beacons accepted by this member's [`PresenceValidator`]s (as a relay).
    pub relay_accepted: u64,
    /// Beacons refused by this member's [`PresenceValidator`]s, by cause.
    pub relay_rejected: Rejections,
}

/// Counters the validators share with their [`Presence`]: a validator is called through `&self`.
#[derive(Debug)]
pub(super) struct RelayCounters {
    pub(super) accepted: AtomicU32,
    pub(super) rejected: [AtomicU32; CAUSES],
}

impl RelayCounters {
    pub(super) fn new() -> Self {
        Self {
            accepted: AtomicU32::new(0),
            rejected: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    pub(super) fn bump(counter: &AtomicU32) {
        // Saturates instead of wrapping; the closure never refuses, so the result is Ok.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_add(1))
        });
    }

    pub(super) fn reject(&self, e: &PresenceError) {
        if let Some(c) = self.rejected.get(e.index()) {
            Self::bump(c);
        }
    }

    pub(super) fn snapshot(&self) -> (u64, Rejections) {
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
