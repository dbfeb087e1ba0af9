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
//!
//! The exchange of frame kind 6 (serving, fetching, their timers) is the state machine
//! [`FetchExchange`]; this file is its glue: it feeds it what announcements, deletes,
//! connections and frames bring, carries out what it asks, and delivers what it opens.

use super::{Event, Node, NodeError};
use crate::broadcast::message::{MessageError, MessageKind, SignedMessage};
use crate::broadcast::plumtree::Validator;
use crate::crypto::{CryptoProvider, EncapsulationKeyBytes, VerifyingKeyBytes};
use crate::frame::Frame;
use crate::id::{MessageId, PeerId, TopicId};
use crate::machine::StateMachine;
use crate::privacy::access::{AccessError, AccessRecord, AccessStore, DeleteRequest, Offer, Slots};
use crate::privacy::envelope::{self, Sealed};
use crate::privacy::fetch::{
    self, Announcement, Authored, FetchExchange, MAX_READERS, PrivateConfig, PrivateCounters,
    PrivateMessage, Reply, Wanted,
};
use crate::privacy::fetch_guard;
use crate::time::Timestamp;
use crate::wire::BoundedVec;
use crate::wire::codec::FixedBytes;
use alloc::collections::VecDeque;
use foldhash::fast::FixedState;
use hashbrown::HashSet;

/// The node's state for encrypted messages.
pub(super) struct Private {
    /// Serving what this node authored, fetching what it may read.
    fetch: FetchExchange,
    pub(super) access: AccessStore,
    /// Group shard keys this node holds (a group message needs one slot per shard).
    group_keys: crate::privacy::group::Keyring,
    delivered: HashSet<MessageId, FixedState>,
    delivered_order: VecDeque<MessageId>,
    pub(super) counters: PrivateCounters,
}

impl Private {
    pub(super) fn new(config: &PrivateConfig) -> Self {
        Self {
            fetch: FetchExchange::new(config),
            access: AccessStore::new(config.max_access_records),
            group_keys: crate::privacy::group::Keyring::new(config.max_group_keys),
            delivered: HashSet::with_hasher(FixedState::with_seed(0)),
            delivered_order: VecDeque::new(),
            counters: PrivateCounters::default(),
        }
    }

    /// Fetch-guard counters (refusals by reason).
    pub(super) fn guard_counters(&self) -> &fetch_guard::Counters {
        self.fetch.guard().counters()
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
        self.fetch.authored(id).map(|a| &a.content)
    }

    /// Authors waiting for a link to come up.
    pub(super) fn wants_link(&self, peer: &PeerId) -> bool {
        self.fetch.wants_link(peer)
    }

    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        self.fetch.poll_timeout()
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
        let fetch_keys = fetch_guard::fetch_keys(&sealed, &secrets);
        self.fetch_input(
            now,
            fetch::Input::Serve {
                message: id,
                authored: Authored {
                    topic,
                    content,
                    key,
                    version: 1,
                },
                fetch_keys,
            },
        );
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
            .fetch
            .authored(&id)
            .ok_or(NodeError::NotAuthored { id })?;
        let content = envelope::Content::new(a.content.payload.to_bytes())
            .map_err(|_| NodeError::NotAuthored { id })?;
        let (sealed, secrets) =
            envelope::seal_with_key_and_secrets(&*crypto, &a.key, &content, readers, &mut self.rng)
                .map_err(NodeError::Envelope)?;
        let (topic, version) = (a.topic, a.version + 1);
        self.fetch_input(
            now,
            fetch::Input::Rekey {
                message: id,
                version,
                fetch_keys: fetch_guard::fetch_keys(&sealed, &secrets),
            },
        );
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
            .fetch
            .authored(&id)
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
        self.withdraw(now, id, &request);
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
    fn withdraw(&mut self, now: Timestamp, id: MessageId, request: &DeleteRequest) {
        let crypto = self.config.crypto.clone();
        let key = self.identity.verifying_key().clone();
        let _ = self
            .private
            .access
            .delete(request, &*crypto, &key, self.identity.peer_id());
        self.fetch_input(now, fetch::Input::Withdraw { message: id });
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
            MessageKind::Delete => self.on_delete(now, &message, &author_key),
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
            self.fetch_input(now, fetch::Input::Cancel { message: id });
            return;
        };
        let Some(slot) = a.record.slots.get(index) else {
            return;
        };
        let fetch_key = fetch_guard::fetch_key(&secret, slot, &content_hash);
        let wanted = Wanted {
            message: id,
            topic,
            author: message.author,
            author_key,
            key,
            fetch_key,
            content_hash,
            version,
        };
        self.fetch_input(now, fetch::Input::Fetch(wanted));
    }

    /// A connection came up: fetches waiting for it ask now.
    pub(super) fn private_link_up(&mut self, now: Timestamp, peer: PeerId) {
        self.fetch_input(now, fetch::Input::LinkUp { peer });
    }

    fn on_delete(
        &mut self,
        now: Timestamp,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) {
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
                self.fetch_input(now, fetch::Input::Withdraw { message: id });
                let p = &mut self.private;
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
        let crypto = self.config.crypto.clone();
        self.fetch_input(
            now,
            fetch::Input::Frame {
                from,
                message: m,
                crypto: &*crypto,
            },
        );
    }

    /// Runs the fetch attempts and challenge expiries that are due.
    pub(super) fn private_timeout(&mut self, now: Timestamp) {
        self.private.fetch.handle_timeout(now, &mut self.rng);
        self.drain_fetch(now);
    }

    /// Hands `input` to the fetch exchange and carries out what it asks.
    fn fetch_input(&mut self, now: Timestamp, input: fetch::Input<'_>) {
        match self.private.fetch.handle(now, input, &mut self.rng) {
            Reply::Done => {}
            Reply::Started => self.private.counters.fetches_started += 1,
            Reply::Unsolicited => self.private.counters.unsolicited += 1,
        }
        self.drain_fetch(now);
    }

    fn drain_fetch(&mut self, now: Timestamp) {
        while let Some(out) = self.private.fetch.poll() {
            match out {
                fetch::Output::Ask { author, message } => {
                    let addresses = self
                        .records
                        .get(&author)
                        .map(|r| r.addresses.clone())
                        .unwrap_or_default();
                    if self.link_ready_or_dial(now, author, addresses) {
                        self.send_frame(author, &Frame::Private(PrivateMessage::Fetch { message }));
                    } else {
                        let input = fetch::Input::NoLink { message };
                        self.private.fetch.handle(now, input, &mut self.rng);
                    }
                }
                fetch::Output::Send { to, message } => {
                    match message {
                        PrivateMessage::Content { .. } => self.private.counters.served += 1,
                        PrivateMessage::Refused { .. } => self.private.counters.served_refused += 1,
                        _ => {}
                    }
                    self.send_frame(to, &Frame::Private(message));
                }
                fetch::Output::Fetched {
                    topic,
                    author,
                    message,
                    version,
                    plaintext,
                } => {
                    let capacity = self.config.private.max_delivered;
                    self.private.mark_delivered(message, capacity);
                    self.private.counters.delivered += 1;
                    self.push_event(Event::PrivateDelivered {
                        topic,
                        author,
                        id: message,
                        version,
                        plaintext: bytes::Bytes::copy_from_slice(&plaintext),
                    });
                }
                fetch::Output::Failed { .. } => self.private.counters.fetches_failed += 1,
            }
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
