//! The fetch exchange's wire messages (frame kind 6, SPEC.md §17.10), the announcement that
//! names a message's readers, and the exchange's parameters and counters. The exchange itself
//! is [`super::FetchExchange`]; the authorisation check (challenge and proof) is
//! [`crate::privacy::fetch_guard`].

use crate::broadcast::message::SignedMessage;
use crate::crypto::CryptoProvider;
use crate::id::{MessageId, PeerId};
use crate::identity::record::PeerRecord;
use crate::privacy::access::{AccessError, AccessRecord};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::DecodeError;
use crate::wire::codec::{self, FixedBytes};
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Encode};

/// Most readers of one encrypted message: an announcement with this many slots, a record of
/// the largest version and the author's peer record fits a message payload (a test checks it).
pub const MAX_READERS: usize = 200;
const _: () = assert!(MAX_READERS <= crate::privacy::envelope::MAX_SLOTS);

/// Encrypted-message parameters (SPEC.md §17.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateConfig {
    /// Most messages this node authored and serves (oldest forgotten first). Default 256.
    pub max_authored: usize,
    /// Most access records kept (oldest evicted first), and most deletions remembered.
    /// Default 4096.
    pub max_access_records: usize,
    /// Most fetches in flight. Default 64.
    pub max_fetches: usize,
    /// How long one fetch attempt may take. Default 10 s.
    pub fetch_timeout: TimeDelta,
    /// Attempts per fetch before giving up. Default 3.
    pub fetch_attempts: u8,
    /// How long a challenge this node issued stays valid. Default 10 s.
    pub challenge_ttl: TimeDelta,
    /// Most challenges outstanding. Default 1024.
    pub max_challenges: usize,
    /// Most message ids remembered as delivered (so each is delivered once). Default 4096.
    pub max_delivered: usize,
    /// Most group shard keys held (newest kept). Default 64.
    pub max_group_keys: usize,
}

impl Default for PrivateConfig {
    fn default() -> Self {
        Self {
            max_authored: 256,
            max_access_records: 4096,
            max_fetches: 64,
            fetch_timeout: TimeDelta::from_secs(10),
            fetch_attempts: 3,
            challenge_ttl: TimeDelta::from_secs(10),
            max_challenges: 1024,
            max_delivered: 4096,
            max_group_keys: 64,
        }
    }
}

/// What is known about an encrypted message once its announcement verified: the payload of a
/// [`MessageKind::Access`](crate::broadcast::message::MessageKind::Access) message.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Announcement {
    /// The access record (who may read), signed by the author.
    #[n(0)]
    pub record: AccessRecord,
    /// The author's peer record: its keys and where to fetch from.
    #[n(1)]
    pub author: PeerRecord,
    /// BLAKE3 of the content ciphertext: a reader finds its slot with it before fetching.
    #[n(2)]
    pub content_hash: FixedBytes<32>,
}

impl fmt::Debug for Announcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Announcement")
            .field("record", &self.record)
            .field("author", &self.author.peer_id)
            .finish_non_exhaustive()
    }
}

impl Announcement {
    /// Encodes the announcement.
    pub fn to_bytes(&self) -> Result<Vec<u8>, crate::wire::EncodeError> {
        codec::to_vec(self)
    }

    /// Decodes an announcement (without verifying it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::from_slice(bytes)
    }

    /// Checks an announcement published by `author`: the author's peer record verifies and is
    /// the author's, the access record is the author's and its signature verifies.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        author: &PeerId,
        now: Timestamp,
    ) -> Result<(), AccessError> {
        if self.author.peer_id != *author || self.record.author != *author {
            return Err(AccessError::NotAuthor);
        }
        self.author
            .verify(provider, now)
            .map_err(|_| AccessError::BadSignature)?;
        self.record.verify(provider, &self.author.verifying_key)
    }
}

/// Frame kind 6: fetching an encrypted message's content from the node that serves it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum PrivateMessage {
    /// "Let me fetch this message": asks for a challenge.
    #[n(0)]
    Fetch {
        /// The message.
        #[n(0)]
        message: MessageId,
    },
    /// A fresh nonce to prove readership against.
    #[n(1)]
    Challenge {
        /// The message.
        #[n(0)]
        message: MessageId,
        /// The nonce (one use, valid for `challenge_ttl`).
        #[n(1)]
        nonce: FixedBytes<32>,
    },
    /// The proof: BLAKE3-keyed(fetch key, nonce ‖ message) (§17.8).
    #[n(2)]
    Prove {
        /// The message.
        #[n(0)]
        message: MessageId,
        /// The challenge answered.
        #[n(1)]
        nonce: FixedBytes<32>,
        /// The proof.
        #[n(2)]
        proof: FixedBytes<32>,
    },
    /// The content: the author's signed message of kind
    /// [`MessageKind::Sealed`](crate::broadcast::message::MessageKind::Sealed).
    #[n(3)]
    Content {
        /// The message.
        #[n(0)]
        message: SignedMessage,
    },
    /// The fetch is refused (unknown message, bad or expired proof). Says nothing more.
    #[n(4)]
    Refused {
        /// The message.
        #[n(0)]
        message: MessageId,
    },
}

/// Counters of encrypted messages (SPEC.md §17.10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrivateCounters {
    /// Encrypted messages this node published.
    pub published: u64,
    /// Access-record versions this node issued after the first (sync access list).
    pub access_updates: u64,
    /// Delete requests this node issued.
    pub deletes_issued: u64,
    /// Announcements and delete requests refused (malformed, not the author's, stale,
    /// deleted, bad signature).
    pub announcements_refused: u64,
    /// Announcements in which this node found no slot of its own.
    pub not_a_reader: u64,
    /// Fetches started.
    pub fetches_started: u64,
    /// Encrypted messages delivered to the application.
    pub delivered: u64,
    /// Fetches given up (attempts exhausted, refused, or the table full).
    pub fetches_failed: u64,
    /// Fetches this node refused to serve (unknown message, bad, unknown or expired proof).
    pub served_refused: u64,
    /// Contents this node served to proven readers.
    pub served: u64,
    /// Fetch frames that made no sense (a challenge or content nobody asked for, content that
    /// does not match its announcement).
    pub unsolicited: u64,
    /// Messages withdrawn by their authors' delete requests, as seen here.
    pub deleted: u64,
}
