//! Published messages: what an author signs once and relays carry unchanged (issue D builds
//! the broadcast on top of this).
//!
//! A message's id is [`MessageId::new`] over (author, topic, sequence, BLAKE3(payload)); the
//! author signs `signing_input("hearsay/v1/message", id ‖ timestamp)` with ML-DSA-65, so a relay
//! can check a message once and never re-sign it. A bounded [`SeenCache`] remembers ids until
//! their retention window ends; messages older than the window are refused, so a replay is
//! refused whether or not its id is still cached.

use crate::crypto::{CryptoProvider, SignatureBytes, VerifyingKeyBytes, signing_input};
use crate::id::{MessageId, PeerId, TopicId};
use crate::identity::Identity;
use crate::time::{TimeDelta, Timestamp};
use crate::wire::{BoundedBytes, MAX_FRAME_LEN};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use minicbor::{Decode, Encode};

/// Bytes of a frame that a message's own fields and the broadcast envelope may take
/// (author, topic, sequence, timestamp, signature, the author's verifying key that travels
/// with it, CBOR headers, the frame's envelope).
pub const MESSAGE_OVERHEAD: usize = 8192;
/// The largest payload a message may carry: the frame limit less [`MESSAGE_OVERHEAD`].
pub const MAX_PAYLOAD: usize = MAX_FRAME_LEN - MESSAGE_OVERHEAD;
/// Domain of message signatures (SPEC.md §3).
pub const MESSAGE_DOMAIN: &str = "hearsay/v1/message";

/// A payload.
pub type Payload = BoundedBytes<MAX_PAYLOAD>;

/// A message as published by its author.
#[derive(Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct SignedMessage {
    /// Who published it.
    #[n(0)]
    pub author: PeerId,
    /// On which topic.
    #[n(1)]
    pub topic: TopicId,
    /// The author's sequence number (never reused by one author on one topic).
    #[n(2)]
    pub sequence: u64,
    /// When the author published it.
    #[n(3)]
    pub timestamp: Timestamp,
    /// The application's bytes.
    #[n(4)]
    pub payload: Payload,
    /// ML-DSA-65 over `signing_input(MESSAGE_DOMAIN, id ‖ timestamp)`.
    #[n(5)]
    pub signature: SignatureBytes,
    /// What the payload is. Application messages (the default) omit the field on the wire;
    /// the other kinds are the node's own (SPEC.md §17.10) and are never delivered as
    /// application payloads. The id covers the kind.
    #[n(6)]
    #[cbor(default, skip_if = "MessageKind::is_application")]
    pub kind: MessageKind,
}

/// What a message's payload is (SPEC.md §15.1, §17.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MessageKind {
    /// The application's bytes, delivered as [`Event::Delivered`](crate::node::Event::Delivered).
    #[default]
    Application,
    /// An announcement of an encrypted message: its access record and its author's peer record.
    Access,
    /// A delete request for an encrypted message.
    Delete,
    /// An encrypted message's content (ciphertext), served only to proven readers and never
    /// broadcast.
    Sealed,
}

impl MessageKind {
    /// The kind's number on the wire and in the id.
    pub const fn number(self) -> u8 {
        match self {
            MessageKind::Application => 0,
            MessageKind::Access => 1,
            MessageKind::Delete => 2,
            MessageKind::Sealed => 3,
        }
    }

    /// The kind numbered `n`.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => Some(MessageKind::Application),
            1 => Some(MessageKind::Access),
            2 => Some(MessageKind::Delete),
            3 => Some(MessageKind::Sealed),
            _ => None,
        }
    }

    /// Whether this is [`MessageKind::Application`] (the default, omitted on the wire).
    pub fn is_application(&self) -> bool {
        *self == MessageKind::Application
    }
}

impl<C> Encode<C> for MessageKind {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.u8(self.number())?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for MessageKind {
    fn decode(d: &mut minicbor::Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let n = d.u8()?;
        MessageKind::from_number(n)
            .ok_or_else(|| minicbor::decode::Error::message("unknown message kind"))
    }
}

/// Why a message cannot be published or accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The payload is over [`MAX_PAYLOAD`].
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The signature does not verify under the author's key.
    BadSignature,
    /// The key given is not the author's.
    WrongKey,
    /// Older than the retention window: refused as a possible replay.
    TooOld,
    /// Dated further in the future than the allowed clock skew.
    FromTheFuture,
    /// The author could not sign.
    SigningFailed,
    /// The payload is not a valid object of the message's kind (SPEC.md §17.10), or the kind
    /// is never broadcast.
    Malformed,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the {max}-byte limit")
            }
            MessageError::BadSignature => f.write_str("message signature does not verify"),
            MessageError::WrongKey => f.write_str("key does not belong to the message's author"),
            MessageError::TooOld => f.write_str("message is older than the retention window"),
            MessageError::FromTheFuture => f.write_str("message is dated in the future"),
            MessageError::SigningFailed => f.write_str("signing failed"),
            MessageError::Malformed => f.write_str("payload is malformed for its message kind"),
        }
    }
}

impl core::error::Error for MessageError {}

impl SignedMessage {
    /// Signs a new application message by `author`.
    pub fn publish(
        author: &Identity,
        topic: TopicId,
        sequence: u64,
        timestamp: Timestamp,
        payload: &[u8],
    ) -> Result<Self, MessageError> {
        Self::publish_kind(
            author,
            MessageKind::Application,
            topic,
            sequence,
            timestamp,
            payload,
        )
    }

    /// Signs a new message of `kind` by `author`.
    pub fn publish_kind(
        author: &Identity,
        kind: MessageKind,
        topic: TopicId,
        sequence: u64,
        timestamp: Timestamp,
        payload: &[u8],
    ) -> Result<Self, MessageError> {
        let payload = Payload::new(bytes::Bytes::copy_from_slice(payload)).map_err(|_| {
            MessageError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            }
        })?;
        let id = MessageId::of_kind(kind.number(), &author.peer_id(), &topic, sequence, &payload);
        let signature = author
            .signer()
            .sign(&signed_bytes(&id, timestamp))
            .map_err(|_| MessageError::SigningFailed)?;
        Ok(Self {
            author: author.peer_id(),
            topic,
            sequence,
            timestamp,
            payload,
            signature,
            kind,
        })
    }

    /// The message's content address.
    pub fn id(&self) -> MessageId {
        MessageId::of_kind(
            self.kind.number(),
            &self.author,
            &self.topic,
            self.sequence,
            &self.payload,
        )
    }

    /// Checks the author's signature with the author's verifying key; returns the id.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        author_key: &VerifyingKeyBytes,
    ) -> Result<MessageId, MessageError> {
        if PeerId::from_verifying_key(author_key) != self.author {
            return Err(MessageError::WrongKey);
        }
        let id = self.id();
        if !provider.verify(
            author_key,
            &signed_bytes(&id, self.timestamp),
            &self.signature,
        ) {
            return Err(MessageError::BadSignature);
        }
        Ok(id)
    }

    /// Whether the message's date is acceptable at `now`: not older than `retention`, not
    /// further ahead than `skew`.
    pub fn check_age(
        &self,
        now: Timestamp,
        retention: TimeDelta,
        skew: TimeDelta,
    ) -> Result<(), MessageError> {
        if self.timestamp + retention < now {
            return Err(MessageError::TooOld);
        }
        if self.timestamp > now + skew {
            return Err(MessageError::FromTheFuture);
        }
        Ok(())
    }
}

impl fmt::Debug for SignedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedMessage")
            .field("author", &self.author)
            .field("topic", &self.topic)
            .field("sequence", &self.sequence)
            .field("timestamp", &self.timestamp)
            .field("kind", &self.kind)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

fn signed_bytes(id: &MessageId, timestamp: Timestamp) -> Vec<u8> {
    let mut body = [0u8; 40];
    let (a, b) = body.split_at_mut(32);
    a.copy_from_slice(id.as_bytes());
    b.copy_from_slice(&timestamp.as_micros().to_be_bytes());
    signing_input(MESSAGE_DOMAIN, &body)
}

/// Inserts `(expires, id)` into a queue kept sorted by expiry. Ids arrive roughly in expiry
/// order, so the place is searched from the back.
pub(crate) fn insert_by_expiry(
    order: &mut VecDeque<(Timestamp, MessageId)>,
    expires: Timestamp,
    id: MessageId,
) {
    let at = order
        .iter()
        .rposition(|(t, _)| *t <= expires)
        .map_or(0, |i| i + 1);
    order.insert(at, (expires, id));
}

crate::machine::internal_struct! {
    /// Ids seen recently, each kept until its message leaves the retention window, at most
    /// `capacity` of them. Insert an id only after its message verified, so forged frames cannot
    /// poison real ids.
    ///
    /// Two ways in: [`SeenCache::admit`] (messages) never forgets an id before it expires, and
    /// holds at most `per_author` ids of one author, so that a flood of valid messages can
    /// neither push honest ids out (which would reopen their replay) nor take the whole cache
    /// (SPEC.md §15.4); [`SeenCache::insert`] (refused digests) forgets the oldest when full.
    #[derive(Debug)]
    struct SeenCache {
        /// Each id's expiry and its author's key in `authors` (0: none).
        expiry: HashMap<MessageId, (Timestamp, u64), FixedState>,
        order: VecDeque<(Timestamp, MessageId)>,
        capacity: usize,
        per_author: usize,
        /// Ids held per author (by the first 8 bytes of its id).
        authors: HashMap<u64, u32, FixedState>,
    }
}

/// Whether [`SeenCache::admit`] took an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// New, now remembered.
    New,
    /// Already seen.
    Seen,
    /// Every place holds an id that has not expired: refused (forgetting one would reopen its
    /// replay).
    Full,
    /// Its author holds `per_author` ids already: refused.
    AuthorFull,
}

/// The key an author's ids are counted under: the first 8 bytes of its id, never 0.
fn author_key(author: &PeerId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&author.as_bytes()[..8]);
    u64::from_le_bytes(b).max(1)
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl SeenCache {
    /// An empty cache holding at most `capacity` ids, of one author at most `per_author`.
    pub fn new(capacity: usize, per_author: usize) -> Self {
        Self {
            expiry: HashMap::with_hasher(FixedState::with_seed(0)),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            per_author: per_author.max(1),
            authors: HashMap::with_hasher(FixedState::with_seed(0)),
        }
    }

    /// Remembers `id` of `author` until `expires`, if it is new, there is room at `now` (ids
    /// expired by then are forgotten first) and its author is within its share. Nothing is
    /// forgotten early: a full cache refuses.
    pub fn admit(
        &mut self,
        now: Timestamp,
        id: MessageId,
        author: &PeerId,
        expires: Timestamp,
    ) -> Admit {
        if self.expiry.contains_key(&id) {
            return Admit::Seen;
        }
        let key = author_key(author);
        let held = |c: &Self| c.authors.get(&key).copied().unwrap_or(0) as usize;
        if self.expiry.len() >= self.capacity || held(self) >= self.per_author {
            self.expire(now);
        }
        if self.expiry.len() >= self.capacity {
            return Admit::Full;
        }
        if held(self) >= self.per_author {
            return Admit::AuthorFull;
        }
        *self.authors.entry(key).or_insert(0) += 1;
        self.expiry.insert(id, (expires, key));
        insert_by_expiry(&mut self.order, expires, id);
        Admit::New
    }

    /// Whether `id` was seen (and has not expired).
    pub fn contains(&self, id: &MessageId) -> bool {
        self.expiry.contains_key(id)
    }

    /// Remembers `id` until `expires`. Returns false if it was already there.
    pub fn insert(&mut self, id: MessageId, expires: Timestamp) -> bool {
        if self.expiry.contains_key(&id) {
            return false;
        }
        while self.expiry.len() >= self.capacity {
            match self.order.pop_front() {
                Some((_, old)) => self.forget(&old),
                None => break,
            }
        }
        self.expiry.insert(id, (expires, 0));
        insert_by_expiry(&mut self.order, expires, id);
        true
    }

    fn forget(&mut self, id: &MessageId) {
        if let Some((_, key)) = self.expiry.remove(id)
            && key != 0
            && let Some(n) = self.authors.get_mut(&key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.authors.remove(&key);
            }
        }
    }

    /// Forgets every id whose retention ended by `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((t, id)) = self.order.front().copied() {
            if t > now {
                break;
            }
            self.order.pop_front();
            self.forget(&id);
        }
    }

    /// Ids held.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PureRustProvider;
    use crate::identity::{Identity, IdentitySeeds};
    use rand_core::SeedableRng;

    fn author(seed: u8) -> Identity {
        let mut rng = chacha20::ChaCha8Rng::from_seed([seed; 32]);
        Identity::from_seeds(&PureRustProvider, IdentitySeeds::generate(&mut rng))
    }

    const T: Timestamp = Timestamp::from_secs(1_800_000_000);

    #[test]
    fn published_messages_verify_once_and_any_change_breaks_them() {
        let a = author(1);
        let topic = TopicId::from_name("news");
        let m = SignedMessage::publish(&a, topic, 1, T, b"hello").unwrap();
        let vk = a.verifying_key();
        assert_eq!(m.verify(&PureRustProvider, vk), Ok(m.id()));
        assert_eq!(m.id(), MessageId::new(&a.peer_id(), &topic, 1, b"hello"));
        let mut t = m.clone();
        t.sequence = 2;
        assert_eq!(
            t.verify(&PureRustProvider, vk),
            Err(MessageError::BadSignature)
        );
        let mut t = m.clone();
        t.timestamp += TimeDelta::from_micros(1);
        assert_eq!(
            t.verify(&PureRustProvider, vk),
            Err(MessageError::BadSignature)
        );
        let mut t = m.clone();
        t.payload = Payload::new(&b"hellp"[..]).unwrap();
        assert_eq!(
            t.verify(&PureRustProvider, vk),
            Err(MessageError::BadSignature)
        );
        assert_eq!(
            m.verify(&PureRustProvider, author(2).verifying_key()),
            Err(MessageError::WrongKey)
        );
        // Same bytes published twice are two messages.
        let again = SignedMessage::publish(&a, topic, 2, T, b"hello").unwrap();
        assert_ne!(again.id(), m.id());
    }

    #[test]
    fn oversized_payload_is_refused_naming_the_limit() {
        let big = alloc::vec![0u8; MAX_PAYLOAD + 1];
        let e = SignedMessage::publish(&author(1), TopicId::from_name("t"), 1, T, &big);
        assert_eq!(
            e,
            Err(MessageError::PayloadTooLarge {
                len: MAX_PAYLOAD + 1,
                max: MAX_PAYLOAD
            })
        );
        // The largest payload still fits a frame with room for the envelope.
        let m =
            SignedMessage::publish(&author(1), TopicId::from_name("t"), 1, T, &big[1..]).unwrap();
        let len = crate::wire::codec::to_vec(&m).unwrap().len();
        assert!(len + 512 < MAX_FRAME_LEN, "{len}");
    }

    #[test]
    fn age_window_refuses_replays_and_future_dates() {
        let m = SignedMessage::publish(&author(1), TopicId::from_name("t"), 1, T, b"x").unwrap();
        let (ret, skew) = (TimeDelta::from_secs(600), TimeDelta::from_secs(30));
        assert_eq!(
            m.check_age(T + TimeDelta::from_secs(600), ret, skew),
            Ok(())
        );
        assert_eq!(
            m.check_age(T + TimeDelta::from_secs(601), ret, skew),
            Err(MessageError::TooOld)
        );
        assert_eq!(
            m.check_age(T - TimeDelta::from_secs(31), ret, skew),
            Err(MessageError::FromTheFuture)
        );
    }

    #[test]
    fn seen_cache_is_bounded_and_expires_in_order() {
        let mut c = SeenCache::new(3, 3);
        let id = |n: u8| MessageId::from_bytes([n; 32]);
        assert!(c.insert(id(1), T + TimeDelta::from_secs(10)));
        assert!(!c.insert(id(1), T + TimeDelta::from_secs(10)));
        c.insert(id(2), T + TimeDelta::from_secs(5));
        c.insert(id(3), T + TimeDelta::from_secs(20));
        c.insert(id(4), T + TimeDelta::from_secs(30)); // evicts the earliest expiry: id 2
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&id(2)) && c.contains(&id(1)));
        c.expire(T + TimeDelta::from_secs(20));
        assert!(!c.contains(&id(1)) && !c.contains(&id(3)) && c.contains(&id(4)));
    }
}
