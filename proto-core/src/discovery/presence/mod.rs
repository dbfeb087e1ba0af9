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
//! [`Presence`] is a [`StateMachine`] (SPEC.md §8.8): [`Input::Start`] and [`Input::Stop`]
//! (which sends a signed *offline* beacon), beacons received ([`Input::Beacon`]) and the node's
//! new record ([`Input::SetRecord`]) go to [`StateMachine::handle`]; validators to install,
//! beacons to publish and changes in who is online come out of [`StateMachine::poll`] as
//! [`Output`]s in the order they arose; its timers (the next beacon, each tracked member's
//! expiry, the next epoch boundary) sit in one [`Deadlines`]; [`Presence::online`] answers who
//! is online. Relays are members (only members know the topic; SPEC.md discusses outsiders who
//! learn it) and check beacons with a [`PresenceValidator`], the topic's
//! [`Validator`](crate::broadcast::plumtree::Validator), before forwarding.
//! Time is an argument; randomness (nonces, outer sequence numbers, timer jitter) comes from the
//! RNG the caller passes.

mod beacon;
mod derive;
mod errors;
mod validator;
pub use beacon::*;
pub use derive::*;
pub use errors::*;
pub use validator::*;

use crate::broadcast::message::SignedMessage;
use crate::crypto::{CryptoProvider, Signer, VerifyingKeyBytes};
use crate::id::{PeerId, TopicId};
use crate::identity::Identity;
use crate::identity::record::PeerRecord;
use crate::machine::{Deadlines, StateMachine};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::codec::{self, FixedBytes};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use core::fmt;
use minicbor::{Decode, Encode};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

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
    /// Events ([`Output::Event`]) waiting at most; the oldest is dropped and counted. Default
    /// 1,024.
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
    pub fn validate(&self) -> Result<(), PresenceSetupError> {
        let bad = |what| Err(PresenceSetupError::InvalidConfig(what));
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
    /// Leaving now (sent on [`Input::Stop`]).
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

/// What can happen to [`Presence`] (SPEC.md §8.8).
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// Start announcing this member: the first beacon is due at once (at the next
    /// `handle_timeout`), then every `beacon_interval`. Starting a running member does nothing.
    Start,
    /// Stop announcing this member and queue a signed offline beacon, so the others see it
    /// leave as soon as the beacon reaches them. Stopping a stopped member does nothing.
    Stop,
    /// A beacon received on the presence topic (the broadcast layer delivers it after the
    /// topic's validator passed it). Checked cheapest first (SPEC.md §19), it updates who is
    /// online; a refused beacon ([`Refused::Beacon`]) changes nothing and is counted. The outer
    /// ML-DSA signature is the validator's to check; every outer field it covers is also bound
    /// into the ciphertext's associated data, which is checked here.
    Beacon(&'a SignedMessage),
    /// The node re-issued its record: the next beacon carries it. Refused
    /// ([`Refused::Record`]) if it is not this member's.
    SetRecord(PeerRecord),
}

/// What [`Presence`] asks of its owner, in the order it arose.
#[derive(Debug, Clone)]
pub enum Output {
    /// Install this validator on the presence topic (the broadcast layer's
    /// [`Validator`](crate::broadcast::plumtree::Validator)). One comes at construction and
    /// after every epoch change; a stale one still works, only slower (it derives author keys
    /// itself) and more lenient about old epochs.
    Validator(PresenceValidator),
    /// Publish this beacon on [`Presence::topic`], unchanged.
    Beacon(OutgoingBeacon),
    /// A change in who is online.
    Event(PresenceEvent),
}

/// A timer of [`Presence`]. When several are due, expiries run first and the beacon last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A tracked member's beacon runs out.
    Expire(PeerId),
    /// This member's next beacon (while running).
    Beacon,
    /// The next epoch begins: the author keys, tags and beacon keys rotate.
    Epoch,
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

crate::machine::internal_struct! {
    /// One member's presence in one group. See the [module documentation](self).
    struct Presence {
        config: PresenceConfig,
        group: Arc<Group>,
        me: PeerId,
        signer: Box<dyn Signer>,
        record: PeerRecord,
        running: bool,
        /// The member's beacon number, ordering its beacons with equal timestamps.
        next_seq: u64,
        /// The epoch of the latest `now` seen.
        epoch: Option<u64>,
        /// Material of the epochs around the current one (previous, current, next).
        keys: BTreeMap<u64, EpochKeys>,
        /// The author identity of the epoch this member last beaconed in.
        author: Option<(u64, Identity)>,
        members: BTreeMap<PeerId, Member>,
        /// The next beacon (while running), every tracked member's expiry, the next epoch.
        deadlines: Deadlines<Timer>,
        /// Validators, beacons and events in the order they arose: at most one validator (a newer
        /// one replaces it), `MAX_QUEUED_BEACONS` beacons and `max_queued_events` events.
        outputs: VecDeque<Output>,
        /// Beacons in `outputs`.
        queued_beacons: usize,
        /// Events in `outputs`.
        queued_events: usize,
        counters: Counters,
        relay: Arc<RelayCounters>,
    }
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

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl Presence {
    /// Presence in the group whose secret is `group_secret`, as `identity` (whose current
    /// record is `record`). Expands the identity's signing key again from its seed (one ML-DSA
    /// key generation). Nothing is sent before [`Input::Start`]; a first validator is queued.
    pub fn new(
        config: PresenceConfig,
        group_secret: [u8; 32],
        identity: &Identity,
        record: PeerRecord,
        provider: Arc<dyn CryptoProvider>,
    ) -> Result<Self, PresenceSetupError> {
        config.validate()?;
        if record.peer_id != identity.peer_id() || record.verifying_key != *identity.verifying_key()
        {
            return Err(PresenceSetupError::RecordMismatch);
        }
        let secret = Zeroizing::new(group_secret);
        let topic = presence_topic(&secret);
        let signer = provider.signer_from_seed(&identity.seeds().signing);
        let mut presence = Self {
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
            next_seq: 0,
            epoch: None,
            keys: BTreeMap::new(),
            author: None,
            members: BTreeMap::new(),
            deadlines: Deadlines::new(),
            outputs: VecDeque::new(),
            queued_beacons: 0,
            queued_events: 0,
            counters: Counters::default(),
            relay: Arc::new(RelayCounters::new()),
        };
        presence.push_validator();
        Ok(presence)
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

    /// Replaces the record carried in this member's beacons. Shorthand for
    /// `handle(now, Input::SetRecord(record))`.
    pub fn set_record(&mut self, record: PeerRecord) -> Result<(), PresenceSetupError> {
        self.replace_record(record)
    }

    /// Starts announcing this member. Shorthand for `handle(now, Input::Start)`.
    pub fn start(&mut self, now: Timestamp) {
        self.start_at(now);
    }

    /// Stops announcing this member, with an offline beacon. Shorthand for
    /// `handle(now, Input::Stop)`.
    pub fn stop<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.stop_at(now, rng);
    }

    /// Runs the timers due at `now`. Shorthand for [`StateMachine::handle_timeout`], callable
    /// without the trait in scope.
    pub fn handle_timeout<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.on_timeout(now, rng);
    }

    /// When `handle_timeout` next has work: the next beacon, the next expiry, or the next
    /// epoch boundary, whichever is first. Shorthand for [`StateMachine::poll_timeout`],
    /// callable without the trait in scope.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }

    /// A beacon received on the presence topic. Shorthand for
    /// `handle(now, Input::Beacon(message))`.
    pub fn handle_beacon(
        &mut self,
        now: Timestamp,
        message: &SignedMessage,
    ) -> Result<(), PresenceError> {
        self.on_beacon(now, message)
    }

    /// The next beacon to publish, leaving the other outputs queued. A driver that takes every
    /// output calls [`StateMachine::poll`] instead.
    pub fn poll_beacon(&mut self) -> Option<OutgoingBeacon> {
        match self.take_first(|o| matches!(o, Output::Beacon(_)))? {
            Output::Beacon(b) => Some(b),
            _ => None,
        }
    }

    /// The next change in who is online, leaving the other outputs queued. A driver that takes
    /// every output calls [`StateMachine::poll`] instead.
    pub fn poll_event(&mut self) -> Option<PresenceEvent> {
        match self.take_first(|o| matches!(o, Output::Event(_)))? {
            Output::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The validator queued since the last one was taken (a first one, or one for a new epoch),
    /// leaving the other outputs queued. A driver that takes every output calls
    /// [`StateMachine::poll`] instead.
    pub fn poll_validator(&mut self) -> Option<PresenceValidator> {
        match self.take_first(|o| matches!(o, Output::Validator(_)))? {
            Output::Validator(v) => Some(v),
            _ => None,
        }
    }

    /// A validator for the presence topic, knowing the author keys of the current epochs (what
    /// [`Output::Validator`] carries).
    pub fn validator(&self) -> PresenceValidator {
        PresenceValidator {
            group: self.group.clone(),
            authors: self.keys.iter().map(|(e, k)| (*e, k.author)).collect(),
            oldest_epoch: self.epoch.map_or(0, |e| e.saturating_sub(1)),
            counters: self.relay.clone(),
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

    // ------------------------------------------------------------------ inputs

    fn replace_record(&mut self, record: PeerRecord) -> Result<(), PresenceSetupError> {
        if record.peer_id != self.me || record.verifying_key != *self.signer.verifying_key() {
            return Err(PresenceSetupError::RecordMismatch);
        }
        self.record = record;
        Ok(())
    }

    fn start_at(&mut self, now: Timestamp) {
        self.advance(now);
        if !self.running {
            self.running = true;
            self.deadlines.set(Timer::Beacon, now);
        }
    }

    fn stop_at<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.advance(now);
        if self.running {
            self.running = false;
            self.deadlines.cancel(&Timer::Beacon);
            self.emit(now, Status::Offline, rng);
        }
    }

    /// Rotates the epoch material, forgets members whose TTL ran out, then sends the beacon if
    /// it is due. Harmless to call early.
    fn on_timeout<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, rng: &mut R) {
        self.advance(now);
        let mut beacon_due = false;
        while let Some((_, timer)) = self.deadlines.pop_due(now) {
            match timer {
                Timer::Expire(member) => self.expire(member),
                // Sent after every expiry due, whenever each was due.
                Timer::Beacon => beacon_due = true,
                // `advance` has moved to the new epoch and set the next boundary already.
                Timer::Epoch => {}
            }
        }
        if beacon_due && self.running {
            self.emit(now, Status::Online, rng);
            // Uniform in [interval / 2, 3 interval / 2): the mean is the interval, and the
            // spread keeps one member's beacons from forming a recognisable periodic chain.
            let interval = self.config.beacon_interval.as_micros();
            let jitter = rng.next_u64() % interval.max(1);
            let next = now + TimeDelta::from_micros((interval / 2).saturating_add(jitter));
            self.deadlines.set(Timer::Beacon, next);
        }
    }

    fn on_beacon(&mut self, now: Timestamp, message: &SignedMessage) -> Result<(), PresenceError> {
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

    // ------------------------------------------------------------------ internals

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
        self.deadlines
            .set(Timer::Epoch, self.group.epoch_start(e.saturating_add(1)));
        self.push_validator();
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
        if previous.is_none() {
            while self.members.len() >= self.config.max_members_tracked {
                // The member whose beacon runs out first (ties by id) is forgotten.
                let oldest = self
                    .members
                    .iter()
                    .min_by_key(|(p, m)| (m.expires, **p))
                    .map(|(p, _)| *p);
                let Some(oldest) = oldest else {
                    break;
                };
                self.deadlines.cancel(&Timer::Expire(oldest));
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
        self.deadlines.set(Timer::Expire(id), expires);
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

    /// Forgets a member whose TTL ran out; an online one goes offline (`Expired`).
    fn expire(&mut self, id: PeerId) {
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

    /// Removes and returns the first queued output `pick` accepts.
    fn take_first(&mut self, pick: impl Fn(&Output) -> bool) -> Option<Output> {
        let at = self.outputs.iter().position(pick)?;
        let out = self.outputs.remove(at)?;
        self.uncount(&out);
        Some(out)
    }

    fn uncount(&mut self, out: &Output) {
        match out {
            Output::Beacon(_) => self.queued_beacons = self.queued_beacons.saturating_sub(1),
            Output::Event(_) => self.queued_events = self.queued_events.saturating_sub(1),
            Output::Validator(_) => {}
        }
    }

    /// Queues a validator for the current epochs, replacing one still queued.
    fn push_validator(&mut self) {
        self.outputs.retain(|o| !matches!(o, Output::Validator(_)));
        self.outputs.push_back(Output::Validator(self.validator()));
    }

    fn push_event(&mut self, event: PresenceEvent) {
        if self.queued_events >= self.config.max_queued_events {
            self.take_first(|o| matches!(o, Output::Event(_)));
            self.counters.events_dropped += 1;
        }
        self.queued_events += 1;
        self.outputs.push_back(Output::Event(event));
    }

    /// Builds, seals and signs a beacon dated `now` and queues it.
    fn emit<R: CryptoRng + ?Sized>(&mut self, now: Timestamp, status: Status, rng: &mut R) {
        match self.build(now, status, rng) {
            Some(beacon) => {
                match status {
                    Status::Online => self.counters.beacons_sent += 1,
                    Status::Offline => self.counters.offline_sent += 1,
                }
                if self.queued_beacons >= MAX_QUEUED_BEACONS {
                    self.take_first(|o| matches!(o, Output::Beacon(_)));
                    self.counters.beacons_dropped += 1;
                }
                self.queued_beacons += 1;
                self.outputs.push_back(Output::Beacon(beacon));
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

impl StateMachine for Presence {
    type Input<'a> = Input<'a>;
    type Output = Output;
    type Reply = Result<(), Refused>;

    fn handle(
        &mut self,
        now: Timestamp,
        input: Input<'_>,
        rng: &mut crate::machine::Rng,
    ) -> Result<(), Refused> {
        match input {
            Input::Start => self.start_at(now),
            Input::Stop => self.stop_at(now, rng),
            Input::Beacon(message) => self.on_beacon(now, message).map_err(Refused::Beacon)?,
            Input::SetRecord(record) => self.replace_record(record).map_err(Refused::Record)?,
        }
        Ok(())
    }

    fn handle_timeout(&mut self, now: Timestamp, rng: &mut crate::machine::Rng) {
        self.on_timeout(now, rng);
    }

    fn poll(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front()?;
        self.uncount(&out);
        Some(out)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

// Keep the payload type in view: a beacon's payload must fit a message.
const _: () = assert!(BEACON_PAYLOAD_LEN <= crate::broadcast::message::MAX_PAYLOAD);

#[cfg(test)]
mod tests;
