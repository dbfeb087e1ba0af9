//! The node's side of encrypted messages (SPEC.md §17.10): publishing an envelope on a topic,
//! announcing who may read it, fetching its content from the author with a proof of
//! readership, and both revocation operations.
//!
//! What travels where:
//! - the **announcement** (a topic message of kind [`MessageKind::Access`]) carries the access
//!   record, the author's peer record and the content's hash; every subscriber relays and
//!   stores it, none learns who the readers are;
//! - the **content** (a message of kind [`MessageKind::Sealed`], its id the one the access
//!   record names) never leaves the author's node except to a reader that proved it holds a
//!   slot, over a direct connection (frame kind 6, [`PrivateMessage`]);
//! - a **delete request** (kind [`MessageKind::Delete`]) withdraws a message everywhere.

use super::{Event, Node, NodeError};
use crate::broadcast::message::{MessageError, MessageKind, SignedMessage};
use crate::broadcast::plumtree::Validator;
use crate::crypto::{CryptoProvider, EncapsulationKeyBytes, VerifyingKeyBytes};
use crate::frame::Frame;
use crate::id::{MessageId, PeerId, TopicId};
use crate::privacy::access::{AccessError, AccessRecord, AccessStore, DeleteRequest, Offer, Slots};
use crate::privacy::envelope::{self, ContentKey, Sealed};
use crate::privacy::fetch::{
    Announcement, MAX_READERS, PrivateConfig, PrivateCounters, PrivateMessage,
};
use crate::privacy::fetch_guard::{self, FetchGuard, FetchKey, Nonce};
use crate::time::Timestamp;
use crate::wire::BoundedVec;
use crate::wire::codec::FixedBytes;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashSet};

/// A message this node authored: what it needs to serve and re-wrap it.
struct Authored {
    topic: TopicId,
    content: SignedMessage,
    key: ContentKey,
    version: u64,
}

/// A fetch in flight.
struct Fetch {
    topic: TopicId,
    author: PeerId,
    author_key: VerifyingKeyBytes,
    key: ContentKey,
    fetch_key: FetchKey,
    content_hash: [u8; 32],
    version: u64,
    /// When the current attempt is given up.
    deadline: Timestamp,
    attempts: u8,
    /// Whether the current attempt's FETCH went out (the link was up).
    asked: bool,
}

/// The node's state for encrypted messages.
pub(super) struct Private {
    authored: HashMap<MessageId, Authored, FixedState>,
    authored_order: VecDeque<MessageId>,
    guard: FetchGuard,
    pub(super) access: AccessStore,
    /// Group shard keys this node holds (a group message needs one slot per shard).
    group_keys: crate::privacy::group::Keyring,
    fetches: HashMap<MessageId, Fetch, FixedState>,
    delivered: HashSet<MessageId, FixedState>,
    delivered_order: VecDeque<MessageId>,
    pub(super) counters: PrivateCounters,
}

impl Private {
    pub(super) fn new(config: &PrivateConfig) -> Self {
        Self {
            authored: HashMap::with_hasher(FixedState::with_seed(0)),
            authored_order: VecDeque::new(),
            guard: FetchGuard::new(
                config.max_authored,
                config.max_challenges,
                config.challenge_ttl,
            ),
            access: AccessStore::new(config.max_access_records),
            group_keys: crate::privacy::group::Keyring::new(config.max_group_keys),
            fetches: HashMap::with_hasher(FixedState::with_seed(0)),
            delivered: HashSet::with_hasher(FixedState::with_seed(0)),
            delivered_order: VecDeque::new(),
            counters: PrivateCounters::default(),
        }
    }

    /// Fetch-guard counters (refusals by reason).
    pub(super) fn guard_counters(&self) -> &fetch_guard::Counters {
        self.guard.counters()
    }

    fn mark_delivered(&mut self, id: MessageId, capacity: usize) {
        if self.delivered.insert(id) {
            self.delivered_order.push_back(id);
            while self.delivered_order.len() > capacity.max(1) {
                if let Some(old) = self.delivered_order.pop_front() {
                    self.delivered.remove(&old);
                }
            }
        }
    }

    pub(super) fn authored_content(&self, id: &MessageId) -> Option<&SignedMessage> {
        self.authored.get(id).map(|a| &a.content)
    }

    /// Authors waiting for a link to come up.
    pub(super) fn wants_link(&self, peer: &PeerId) -> bool {
        self.fetches.values().any(|f| f.author == *peer)
    }

    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        self.fetches.values().map(|f| f.deadline).min()
    }
}

/// Checks the kinds the node owns before Plumtree accepts them, and passes application
/// messages to the topic's own validator. Contents are never broadcast: a relayed one is
/// refused.
pub(super) struct KindValidator<'a> {
    pub(super) application: &'a dyn Validator,
    pub(super) crypto: &'a dyn CryptoProvider,
    pub(super) now: Timestamp,
}

impl Validator for KindValidator<'_> {
    fn validate(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), MessageError> {
        match message.kind {
            MessageKind::Application => self.application.validate(message, author_key),
            MessageKind::Access => {
                message.verify(self.crypto, author_key)?;
                let a = Announcement::from_bytes(&message.payload)
                    .map_err(|_| MessageError::Malformed)?;
                a.verify(self.crypto, &message.author, self.now)
                    .map_err(|_| MessageError::Malformed)
            }
            MessageKind::Delete => {
                message.verify(self.crypto, author_key)?;
                let d = DeleteRequest::from_bytes(&message.payload)
                    .map_err(|_| MessageError::Malformed)?;
                if d.author != message.author {
                    return Err(MessageError::Malformed);
                }
                d.verify(self.crypto, author_key)
                    .map_err(|_| MessageError::Malformed)
            }
            _ => Err(MessageError::Malformed),
        }
    }
}

impl Node {
    /// Publishes `plaintext` encrypted for `readers` (their ML-KEM encapsulation keys, from
    /// their peer records) on a subscribed topic. The topic carries only the announcement;
    /// readers fetch the content from this node with a proof (SPEC.md §17.10). Returns the
    /// message's id, which covers the ciphertext and never changes with its readers.
    pub fn publish_private(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        plaintext: &[u8],
        readers: &[EncapsulationKeyBytes],
    ) -> Result<MessageId, NodeError> {
        let now = self.advance(now);
        if !self.topics.contains_key(&topic) {
            return Err(NodeError::NotSubscribed { topic });
        }
        check_readers(readers)?;
        let crypto = self.config.crypto.clone();
        let (sealed, secrets, key) =
            envelope::seal_keyed(&*crypto, readers, plaintext, &mut self.rng)
                .map_err(NodeError::Envelope)?;
        let sequence = self.next_sequence(topic)?;
        let content = SignedMessage::publish_kind(
            &self.identity,
            MessageKind::Sealed,
            topic,
            sequence,
            now,
            &sealed.content,
        )
        .map_err(NodeError::Message)?;
        let id = content.id();
        let keys = fetch_guard::fetch_keys(&sealed, &secrets);
        self.remember_authored(
            id,
            Authored {
                topic,
                content,
                key,
                version: 1,
            },
        );
        self.private.guard.register(id, keys);
        self.announce(now, topic, id, 1, sealed)?;
        self.private.counters.published += 1;
        self.drain_protocols(now);
        Ok(id)
    }

    /// "Sync access list" (SPEC.md §17.7): re-wraps the same content key for `readers` and
    /// announces the next access-record version; the content and id stay. Readers left out
    /// find no slot in the new version and can no longer fetch. Returns the new version.
    pub fn update_readers(
        &mut self,
        now: Timestamp,
        id: MessageId,
        readers: &[EncapsulationKeyBytes],
    ) -> Result<u64, NodeError> {
        let now = self.advance(now);
        check_readers(readers)?;
        let crypto = self.config.crypto.clone();
        let a = self
            .private
            .authored
            .get(&id)
            .ok_or(NodeError::NotAuthored { id })?;
        let content = envelope::Content::new(a.content.payload.to_bytes())
            .map_err(|_| NodeError::NotAuthored { id })?;
        let (sealed, secrets) =
            envelope::seal_with_key_and_secrets(&*crypto, &a.key, &content, readers, &mut self.rng)
                .map_err(NodeError::Envelope)?;
        let (topic, version) = (a.topic, a.version + 1);
        if let Some(a) = self.private.authored.get_mut(&id) {
            a.version = version;
        }
        self.private
            .guard
            .register(id, fetch_guard::fetch_keys(&sealed, &secrets));
        self.announce(now, topic, id, version, sealed)?;
        self.private.counters.access_updates += 1;
        self.drain_protocols(now);
        Ok(version)
    }

    /// "Re-encrypt" (SPEC.md §17.7): publishes the plaintext again under a fresh content key
    /// for `readers` (a new message) and withdraws the old one with a delete request that
    /// every node honours. Returns the new message's id.
    pub fn reencrypt(
        &mut self,
        now: Timestamp,
        id: MessageId,
        readers: &[EncapsulationKeyBytes],
    ) -> Result<MessageId, NodeError> {
        let now = self.advance(now);
        check_readers(readers)?;
        let a = self
            .private
            .authored
            .get(&id)
            .ok_or(NodeError::NotAuthored { id })?;
        let topic = a.topic;
        let sealed = Sealed {
            content: envelope::Content::new(a.content.payload.to_bytes())
                .map_err(|_| NodeError::NotAuthored { id })?,
            slots: BoundedVec::default(),
        };
        let plaintext = envelope::open_with_key(&sealed, &a.key).map_err(NodeError::Envelope)?;
        let new_id = self.publish_private(now, topic, &plaintext, readers)?;
        let request = DeleteRequest::issue(&self.identity, id).map_err(NodeError::Access)?;
        let payload = request.to_bytes().map_err(NodeError::Access)?;
        self.publish_kind(now, topic, MessageKind::Delete, &payload)?;
        self.withdraw(id, &request);
        self.private.counters.deletes_issued += 1;
        self.drain_protocols(now);
        Ok(new_id)
    }

    /// Holds a group shard key (from a group key package, `group::Group::open_package`): this
    /// node then fetches and opens encrypted messages sealed to that shard
    /// (`group::Group::sealing_keys` as the readers), as a member. The newest
    /// `max_group_keys` keys are kept; a rekeyed shard's new key is simply added.
    pub fn add_group_key(&mut self, key: crate::privacy::group::ShardKey) {
        self.private.group_keys.insert(key);
    }

    /// The latest access record this node holds for `id`, if any.
    pub fn access_record(&self, id: &MessageId) -> Option<&AccessRecord> {
        self.private.access.get(id)
    }

    fn next_sequence(&mut self, topic: TopicId) -> Result<u64, NodeError> {
        let t = self
            .topics
            .get_mut(&topic)
            .ok_or(NodeError::NotSubscribed { topic })?;
        let s = t.sequence;
        t.sequence += 1;
        Ok(s)
    }

    fn remember_authored(&mut self, id: MessageId, a: Authored) {
        let p = &mut self.private;
        if p.authored.insert(id, a).is_none() {
            p.authored_order.push_back(id);
        }
        while p.authored.len() > self.config.private.max_authored.max(1) {
            let Some(old) = p.authored_order.pop_front() else {
                break;
            };
            p.authored.remove(&old);
            p.guard.unregister(&old);
        }
    }

    /// Signs and broadcasts an announcement of version `version` of `id`'s access record.
    fn announce(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        id: MessageId,
        version: u64,
        sealed: Sealed,
    ) -> Result<(), NodeError> {
        let content_hash = FixedBytes::from_array(sealed.content_hash());
        let slots: Slots = sealed.slots;
        let record =
            AccessRecord::issue(&self.identity, id, version, slots).map_err(NodeError::Access)?;
        let crypto = self.config.crypto.clone();
        let _ = self.private.access.offer(
            record.clone(),
            &*crypto,
            self.identity.verifying_key(),
            self.identity.peer_id(),
        );
        let announcement = Announcement {
            record,
            author: self.record.clone(),
            content_hash,
        };
        let payload = announcement
            .to_bytes()
            .map_err(|e| NodeError::Access(AccessError::Encode(e)))?;
        self.publish_kind(now, topic, MessageKind::Access, &payload)
    }

    fn publish_kind(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        kind: MessageKind,
        payload: &[u8],
    ) -> Result<(), NodeError> {
        let sequence = self.next_sequence(topic)?;
        let message =
            SignedMessage::publish_kind(&self.identity, kind, topic, sequence, now, payload)
                .map_err(NodeError::Message)?;
        let key = self.identity.verifying_key().clone();
        if let Some(t) = self.topics.get_mut(&topic) {
            crate::machine::StateMachine::handle(
                &mut t.plumtree,
                now,
                crate::broadcast::plumtree::Input::Publish {
                    message,
                    author_key: key,
                },
                &mut self.rng,
            );
        }
        Ok(())
    }

    /// Local effects of a delete request: the record goes, the content is no longer served
    /// or fetched.
    fn withdraw(&mut self, id: MessageId, request: &DeleteRequest) {
        let crypto = self.config.crypto.clone();
        let key = self.identity.verifying_key().clone();
        let _ = self
            .private
            .access
            .delete(request, &*crypto, &key, self.identity.peer_id());
        let p = &mut self.private;
        p.authored.remove(&id);
        p.authored_order.retain(|m| *m != id);
        p.guard.unregister(&id);
        p.fetches.remove(&id);
    }

    /// A message of a node-owned kind passed the topic's checks and Plumtree delivered it.
    pub(super) fn on_private_delivery(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        message: SignedMessage,
        author_key: VerifyingKeyBytes,
    ) {
        match message.kind {
            MessageKind::Access => self.on_announcement(now, topic, &message),
            MessageKind::Delete => self.on_delete(&message, &author_key),
            _ => self.private.counters.announcements_refused += 1,
        }
    }

    fn on_announcement(&mut self, now: Timestamp, topic: TopicId, message: &SignedMessage) {
        let Ok(a) = Announcement::from_bytes(&message.payload) else {
            self.private.counters.announcements_refused += 1;
            return;
        };
        if a.author.peer_id != message.author {
            self.private.counters.announcements_refused += 1;
            return;
        }
        let id = a.record.message;
        let version = a.record.version;
        let author_key = a.author.verifying_key.clone();
        // The validator verified it (Announcement::verify) before Plumtree accepted the message.
        self.cache_verified_record(a.author.clone());
        let crypto = self.config.crypto.clone();
        let offered =
            self.private
                .access
                .offer(a.record.clone(), &*crypto, &author_key, message.author);
        match offered {
            Ok(Offer::New | Offer::Replaced { .. }) => {}
            Err(_) => {
                self.private.counters.announcements_refused += 1;
                return;
            }
        }
        if message.author == self.identity.peer_id() || self.private.delivered.contains(&id) {
            return;
        }
        let content_hash: [u8; 32] = {
            let mut h = [0u8; 32];
            h.copy_from_slice(a.content_hash.as_bytes());
            h
        };
        // This node's own slot, else a slot of a group shard whose key it holds.
        let found =
            envelope::find_key(&a.record.slots, &content_hash, self.identity.decapsulator())
                .or_else(|e| {
                    self.private
                        .group_keys
                        .iter()
                        .find_map(|k| {
                            envelope::find_key(&a.record.slots, &content_hash, k.decapsulator())
                                .ok()
                        })
                        .ok_or(e)
                });
        let Ok((index, secret, key)) = found else {
            self.private.counters.not_a_reader += 1;
            // A newer version without our slot ends a fetch of an older one.
            self.private.fetches.remove(&id);
            return;
        };
        let Some(slot) = a.record.slots.get(index) else {
            return;
        };
        let fetch_key = fetch_guard::fetch_key(&secret, slot, &content_hash);
        let cap = self.config.private.max_fetches.max(1);
        if !self.private.fetches.contains_key(&id) && self.private.fetches.len() >= cap {
            self.private.counters.fetches_failed += 1;
            return;
        }
        let deadline = now + self.config.private.fetch_timeout;
        self.private.fetches.insert(
            id,
            Fetch {
                topic,
                author: message.author,
                author_key: author_key.clone(),
                key,
                fetch_key,
                content_hash,
                version,
                deadline,
                attempts: 1,
                asked: false,
            },
        );
        self.private.counters.fetches_started += 1;
        self.start_fetch(now, id);
    }

    /// Asks the author for a challenge, dialling it first if need be.
    fn start_fetch(&mut self, now: Timestamp, id: MessageId) {
        let Some(f) = self.private.fetches.get(&id) else {
            return;
        };
        let author = f.author;
        let addresses = self
            .records
            .get(&author)
            .map(|r| r.addresses.clone())
            .unwrap_or_default();
        if self.link_ready_or_dial(now, author, addresses) {
            if let Some(f) = self.private.fetches.get_mut(&id) {
                f.asked = true;
            }
            self.send_frame(
                author,
                &Frame::Private(PrivateMessage::Fetch { message: id }),
            );
        }
    }

    /// A connection came up: fetches waiting for it ask now.
    pub(super) fn private_link_up(&mut self, now: Timestamp, peer: PeerId) {
        let waiting: Vec<MessageId> = self
            .private
            .fetches
            .iter()
            .filter(|(_, f)| f.author == peer && !f.asked)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.start_fetch(now, id);
        }
    }

    fn on_delete(&mut self, message: &SignedMessage, author_key: &VerifyingKeyBytes) {
        let Ok(request) = DeleteRequest::from_bytes(&message.payload) else {
            self.private.counters.announcements_refused += 1;
            return;
        };
        let crypto = self.config.crypto.clone();
        match self
            .private
            .access
            .delete(&request, &*crypto, author_key, message.author)
        {
            Ok(fresh) => {
                let id = request.message;
                let p = &mut self.private;
                p.fetches.remove(&id);
                p.guard.unregister(&id);
                if p.authored.remove(&id).is_some() {
                    p.authored_order.retain(|m| *m != id);
                }
                if fresh {
                    p.counters.deleted += 1;
                    let was_delivered = p.delivered.contains(&id);
                    if was_delivered {
                        self.push_event(Event::PrivateDeleted { id });
                    }
                }
            }
            Err(_) => self.private.counters.announcements_refused += 1,
        }
    }

    /// A frame of kind 6 from an established link.
    pub(super) fn on_private_frame(&mut self, now: Timestamp, from: PeerId, m: PrivateMessage) {
        match m {
            PrivateMessage::Fetch { message } => {
                if !self.private.authored.contains_key(&message) {
                    self.private.counters.served_refused += 1;
                    self.send_frame(from, &Frame::Private(PrivateMessage::Refused { message }));
                    return;
                }
                let nonce = self.private.guard.challenge(&mut self.rng, now);
                self.send_frame(
                    from,
                    &Frame::Private(PrivateMessage::Challenge {
                        message,
                        nonce: FixedBytes::from_array(nonce),
                    }),
                );
            }
            PrivateMessage::Challenge { message, nonce } => {
                let Some(f) = self.private.fetches.get(&message) else {
                    self.private.counters.unsolicited += 1;
                    return;
                };
                if f.author != from {
                    self.private.counters.unsolicited += 1;
                    return;
                }
                let nonce: Nonce = to_array(nonce.as_bytes());
                let proof = fetch_guard::prove(&f.fetch_key, &nonce, &message);
                self.send_frame(
                    from,
                    &Frame::Private(PrivateMessage::Prove {
                        message,
                        nonce: FixedBytes::from_array(nonce),
                        proof: FixedBytes::from_array(proof),
                    }),
                );
            }
            PrivateMessage::Prove {
                message,
                nonce,
                proof,
            } => {
                let nonce: Nonce = to_array(nonce.as_bytes());
                let proof = to_array(proof.as_bytes());
                let allowed = self.private.guard.check(&message, &nonce, &proof, now);
                match (allowed, self.private.authored.get(&message)) {
                    (Ok(()), Some(a)) => {
                        let content = a.content.clone();
                        self.private.counters.served += 1;
                        self.send_frame(
                            from,
                            &Frame::Private(PrivateMessage::Content { message: content }),
                        );
                    }
                    _ => {
                        self.private.counters.served_refused += 1;
                        self.send_frame(from, &Frame::Private(PrivateMessage::Refused { message }));
                    }
                }
            }
            PrivateMessage::Content { message } => self.on_content(from, message),
            PrivateMessage::Refused { message } => {
                match self.private.fetches.get(&message) {
                    Some(f) if f.author == from => {
                        // A refusal is final: the author does not count us among the readers
                        // (any more). A newer announcement may start a new fetch.
                        self.private.fetches.remove(&message);
                        self.private.counters.fetches_failed += 1;
                    }
                    _ => self.private.counters.unsolicited += 1,
                }
            }
        }
    }

    fn on_content(&mut self, from: PeerId, message: SignedMessage) {
        let id = message.id();
        let Some(f) = self.private.fetches.get(&id) else {
            self.private.counters.unsolicited += 1;
            return;
        };
        let crypto = self.config.crypto.clone();
        let genuine = f.author == from
            && message.author == f.author
            && message.kind == MessageKind::Sealed
            && message.topic == f.topic
            && *blake3::hash(&message.payload).as_bytes() == f.content_hash
            && message.verify(&*crypto, &f.author_key).is_ok();
        if !genuine {
            self.private.counters.unsolicited += 1;
            return;
        }
        let Some(f) = self.private.fetches.remove(&id) else {
            return;
        };
        let sealed = Sealed {
            content: match envelope::Content::new(message.payload.to_bytes()) {
                Ok(c) => c,
                Err(_) => return,
            },
            slots: BoundedVec::default(),
        };
        match envelope::open_with_key(&sealed, &f.key) {
            Ok(plaintext) => {
                let capacity = self.config.private.max_delivered;
                self.private.mark_delivered(id, capacity);
                self.private.counters.delivered += 1;
                self.push_event(Event::PrivateDelivered {
                    topic: f.topic,
                    author: f.author,
                    id,
                    version: f.version,
                    plaintext: bytes::Bytes::copy_from_slice(&plaintext),
                });
            }
            Err(_) => self.private.counters.fetches_failed += 1,
        }
    }

    /// Retries or gives up fetches whose attempt timed out.
    pub(super) fn private_timeout(&mut self, now: Timestamp) {
        let due: Vec<MessageId> = self
            .private
            .fetches
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let attempts = self.config.private.fetch_attempts.max(1);
        let timeout = self.config.private.fetch_timeout;
        for id in due {
            let Some(f) = self.private.fetches.get_mut(&id) else {
                continue;
            };
            if f.attempts >= attempts {
                self.private.fetches.remove(&id);
                self.private.counters.fetches_failed += 1;
                continue;
            }
            f.attempts += 1;
            f.deadline = now + timeout;
            f.asked = false;
            self.start_fetch(now, id);
        }
    }
}

fn check_readers(readers: &[EncapsulationKeyBytes]) -> Result<(), NodeError> {
    if readers.is_empty() || readers.len() > MAX_READERS {
        return Err(NodeError::TooManyReaders {
            readers: readers.len(),
            max: MAX_READERS,
        });
    }
    Ok(())
}

fn to_array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::message::MAX_PAYLOAD;
    use crate::broadcast::plumtree::SignatureValidator;
    use crate::crypto::PureRustProvider;
    use crate::identity::record::{Addresses, PeerRecord};
    use crate::identity::{Identity, IdentitySeeds};
    use crate::privacy::envelope::Slot;
    use crate::time::TimeDelta;
    use alloc::sync::Arc;
    use alloc::vec;
    use rand_core::SeedableRng;

    const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn identity(seed: u8) -> Identity {
        let mut rng = chacha20::ChaCha8Rng::from_seed([seed; 32]);
        Identity::from_seeds(&PureRustProvider, IdentitySeeds::generate(&mut rng))
    }

    fn record_of(who: &Identity) -> PeerRecord {
        let addresses = Addresses::new(vec![
            crate::identity::record::Address::new(
                vec![b'x'; crate::identity::record::MAX_ADDRESS_LEN]
            )
            .unwrap();
            crate::identity::record::MAX_ADDRESSES
        ])
        .unwrap();
        PeerRecord::issue(who, addresses, NOW, TimeDelta::from_secs(3600)).unwrap()
    }

    fn slot(n: u8) -> Slot {
        Slot {
            kem_ciphertext: FixedBytes::from_array([n; 1088]),
            wrapped_key: FixedBytes::from_array([n; 48]),
        }
    }

    fn announcement(
        author: &Identity,
        signer: &Identity,
        slots: usize,
        version: u64,
    ) -> Announcement {
        let slots = Slots::new((0..slots).map(|i| slot(i as u8)).collect()).unwrap();
        let mut record =
            AccessRecord::issue(signer, MessageId::from_bytes([9; 32]), version, slots).unwrap();
        record.author = signer.peer_id();
        Announcement {
            record,
            author: record_of(author),
            content_hash: FixedBytes::from_array([3; 32]),
        }
    }

    fn message(author: &Identity, kind: MessageKind, payload: &[u8]) -> SignedMessage {
        SignedMessage::publish_kind(author, kind, TopicId::from_name("t"), 1, NOW, payload).unwrap()
    }

    fn check(m: &SignedMessage, key: &VerifyingKeyBytes) -> Result<(), MessageError> {
        let app = SignatureValidator(Arc::new(PureRustProvider));
        KindValidator {
            application: &app,
            crypto: &PureRustProvider,
            now: NOW,
        }
        .validate(m, key)
    }

    #[test]
    fn the_largest_announcement_fits_a_message_payload() {
        let author = identity(1);
        let a = announcement(&author, &author, MAX_READERS, u64::MAX);
        let bytes = a.to_bytes().unwrap();
        assert!(
            bytes.len() <= MAX_PAYLOAD,
            "{} > {MAX_PAYLOAD}",
            bytes.len()
        );
        // ... and with a few more slots it would not: the limit is not loose by much.
        let over = announcement(&author, &author, MAX_READERS + 20, u64::MAX);
        assert!(over.to_bytes().unwrap().len() > MAX_PAYLOAD);
    }

    #[test]
    fn announcements_and_deletes_are_checked_before_acceptance() {
        let author = identity(1);
        let other = identity(2);
        let key = author.verifying_key().clone();
        let good = announcement(&author, &author, 2, 1).to_bytes().unwrap();
        check(&message(&author, MessageKind::Access, &good), &key).unwrap();
        // An access record signed by someone other than the message's author.
        let foreign = announcement(&author, &other, 2, 1).to_bytes().unwrap();
        assert_eq!(
            check(&message(&author, MessageKind::Access, &foreign), &key),
            Err(MessageError::Malformed)
        );
        // The author's peer record replaced by another peer's.
        let swapped = announcement(&other, &author, 2, 1).to_bytes().unwrap();
        assert_eq!(
            check(&message(&author, MessageKind::Access, &swapped), &key),
            Err(MessageError::Malformed)
        );
        // Garbage and truncated payloads.
        for bad in [&b"junk"[..], &good[..good.len() / 2]] {
            assert_eq!(
                check(&message(&author, MessageKind::Access, bad), &key),
                Err(MessageError::Malformed)
            );
        }
        // A flipped bit anywhere in the record breaks its signature.
        let mut flipped = good.clone();
        let at = flipped.len() / 3;
        flipped[at] ^= 1;
        assert!(check(&message(&author, MessageKind::Access, &flipped), &key).is_err());
        // A delete request signed by someone other than the author.
        let mid = MessageId::from_bytes([9; 32]);
        let ok = DeleteRequest::issue(&author, mid)
            .unwrap()
            .to_bytes()
            .unwrap();
        check(&message(&author, MessageKind::Delete, &ok), &key).unwrap();
        let forged = DeleteRequest::issue(&other, mid)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(
            check(&message(&author, MessageKind::Delete, &forged), &key),
            Err(MessageError::Malformed)
        );
        // Contents are never broadcast.
        assert_eq!(
            check(&message(&author, MessageKind::Sealed, b"ciphertext"), &key),
            Err(MessageError::Malformed)
        );
    }

    #[test]
    fn private_frames_round_trip_and_garbage_is_a_typed_error() {
        let author = identity(1);
        let frames = [
            PrivateMessage::Fetch {
                message: MessageId::from_bytes([1; 32]),
            },
            PrivateMessage::Challenge {
                message: MessageId::from_bytes([1; 32]),
                nonce: FixedBytes::from_array([2; 32]),
            },
            PrivateMessage::Prove {
                message: MessageId::from_bytes([1; 32]),
                nonce: FixedBytes::from_array([2; 32]),
                proof: FixedBytes::from_array([3; 32]),
            },
            PrivateMessage::Content {
                message: message(&author, MessageKind::Sealed, b"ct"),
            },
            PrivateMessage::Refused {
                message: MessageId::from_bytes([1; 32]),
            },
        ];
        for m in frames {
            let bytes = Frame::Private(m.clone()).encode().unwrap();
            assert_eq!(Frame::decode(&bytes).unwrap(), Frame::Private(m));
            for cut in 0..bytes.len() {
                assert!(Frame::decode(&bytes[..cut]).is_err());
            }
        }
        // An unknown message kind inside a content frame does not decode.
        let mut m = message(&author, MessageKind::Sealed, b"ct");
        m.kind = MessageKind::Delete;
        let mut bytes = Frame::Private(PrivateMessage::Content { message: m })
            .encode()
            .unwrap()
            .to_vec();
        let last = bytes.len() - 1;
        assert_eq!(bytes[last], 2);
        bytes[last] = 9;
        assert!(Frame::decode(&bytes).is_err());
    }

    #[test]
    fn kinds_change_the_id_and_the_default_kind_keeps_the_old_encoding() {
        let author = identity(1);
        let app = message(&author, MessageKind::Application, b"x");
        let access = message(&author, MessageKind::Access, b"x");
        assert_ne!(app.id(), access.id());
        assert_eq!(
            app.id(),
            MessageId::new(&app.author, &app.topic, app.sequence, b"x")
        );
        let with_kind = crate::wire::codec::to_vec(&access).unwrap();
        let without = crate::wire::codec::to_vec(&app).unwrap();
        assert_eq!(with_kind.len(), without.len() + 1);
    }
}
