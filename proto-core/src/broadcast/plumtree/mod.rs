//! Plumtree broadcast for one topic (Leitão, Pereira, Rodrigues, "Epidemic Broadcast Trees",
//! SRDS 2007).
//!
//! Every neighbour of the topic's overlay starts as an *eager* peer: a new message is pushed to
//! it in full. A node that receives a message twice tells the second sender to PRUNE the link,
//! which becomes *lazy*: it only carries IHAVE announcements (message ids, batched). When an
//! announced message does not arrive within "timeout 1", the node asks the announcer for it
//! with a GRAFT, which also makes the link eager again; if that does not help within "timeout
//! 2", it asks the next announcer. Both follow measured round trips (`timing.rs`). The eager links converge to a spanning tree:
//! payloads cross each tree edge once, and the lazy links repair it.
//!
//! A message is accepted once: its id is looked up in the seen-cache first; a new id is checked
//! by the topic's [`Validator`] (by default the author's signature), and recorded as seen only
//! once it passed, so a forged copy cannot poison the real message's id. Messages older than the
//! retention window are refused, so the bounded seen-cache still refuses every replay.
//!
//! [`Plumtree`] is a [`StateMachine`] (SPEC.md §8.8): an [`Input`] says what happened (a
//! neighbour came or went, the owner's tree changed, a message was published, one arrived with
//! the topic's validator lent for the call, the owner asks to serve or restore messages), an
//! [`Output`] what to send, deliver, penalise or archive. Its timers (the IHAVE batch, each
//! missing message, the end of the oldest retained message's window) are one [`Deadlines`]. It
//! draws no randomness.

use crate::broadcast::message::{SeenCache, SignedMessage};
use crate::crypto::VerifyingKeyBytes;
use crate::id::{MessageId, PeerId, TopicId};
use crate::machine::{Deadlines, Rng, StateMachine};
use crate::time::{RttEstimate, TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

mod announce;
mod bypass;
mod message;
mod retain;
mod seen;
mod serve;
mod shorthand;
#[cfg(test)]
mod tests;
mod timing;
mod validator;
mod watch;

pub use message::{Announcement, MAX_IDS, Message, Payload};
pub use validator::{RestoreError, SignatureValidator, Validator};

/// Plumtree parameters (SPEC.md §15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The longest an announced message may be missing before a GRAFT asks for it ("timeout
    /// 1"), and the wait while no round-trip time is known (SPEC.md §15.4). Default 500 ms.
    pub ihave_timeout: TimeDelta,
    /// The shortest such wait, however fast the links. Default 2 ms.
    pub ihave_timeout_min: TimeDelta,
    /// The longest a GRAFT may go unanswered before the next announcer is asked ("timeout 2"),
    /// and the wait while the announcer's round-trip time is unknown. Default 250 ms.
    pub graft_timeout: TimeDelta,
    /// The shortest such wait. Default 5 ms.
    pub graft_timeout_min: TimeDelta,
    /// Both repair waits are this many of the peers' RTOs (`srtt + 4·rttvar`), within their
    /// bounds. Default 2.
    pub repair_rtos: u32,
    /// The longest IHAVE entries wait to be batched (a peer's smoothed RTT when shorter).
    /// Default 50 ms.
    pub ihave_delay: TimeDelta,
    /// The shortest batching wait. Default 1 ms.
    pub ihave_delay_min: TimeDelta,
    /// The tree optimisation: a lazy link that delivers announcements this many hops earlier
    /// than the eager one replaces it. Default 3.
    pub optimization_threshold: u8,
    /// How long messages are retained (and served, and reconciled); older ones are refused as
    /// replays. Default 10 min.
    pub retention: TimeDelta,
    /// Most messages retained. Default 4,096.
    pub cache_messages: usize,
    /// Most payload bytes retained. Default 64 MiB.
    pub cache_bytes: usize,
    /// Most ids remembered as seen (at least the messages of one retention window). An id is
    /// never forgotten before its message leaves the window: when every place holds one, new
    /// messages are refused (`seen_full`) until one expires. Default 65,536.
    pub seen_capacity: usize,
    /// Most ids of one author in the seen-cache: more of its messages within the window are
    /// refused (`seen_author_full`), so that one author cannot take the cache. Default 8,192
    /// (13.6 messages a second for the 10-minute window).
    pub seen_per_author: usize,
    /// Most refused payloads remembered (by digest of id, signature and key), so that the same
    /// bytes offered again are dropped without another check or penalty. Default 4,096.
    pub rejected_capacity: usize,
    /// How far in the future a message may be dated. Default 30 s.
    pub clock_skew: TimeDelta,
    /// Most missing messages tracked at once. Default 1,024.
    pub max_missing: usize,
    /// Most announcers remembered per missing message. Default 4.
    pub max_announcers: usize,
    /// Most IHAVE entries waiting per peer. Default 1,024.
    pub max_pending_ihave: usize,
    /// Whether every message this node retains (its own and those it accepts) is also handed
    /// to the owner as [`Output::Archive`], for an anchor's durable mailbox (SPEC.md §15.7).
    /// Default false.
    pub archive: bool,
    /// In tree mode, how long after a message that came first from a peer other than the
    /// tree's links (fetched with a GRAFT, or pushed along a bypass link) the parent's own copy
    /// is awaited before it counts as missed by the parent (SPEC.md §15.8). Default 3 s.
    pub parent_watch: TimeDelta,
    /// Misses in a row, with nothing from the parent between them, that demote the parent:
    /// it gets announcements only, for `distrust_for` or until it sends a payload. Default 3.
    pub parent_misses: u32,
    /// How long a parent demoted for forwarding nothing stays out of the eager set. Default
    /// 10 min.
    pub distrust_for: TimeDelta,
    /// How long a bypass link lasts: the peer that served a message the parent missed stays an
    /// eager link, through tree updates and duplicates (SPEC.md §15.4). Default 10 min.
    pub bypass_for: TimeDelta,
    /// Most bypass links at once (a new one replaces the oldest). Default 2.
    pub max_bypass: usize,
    /// KiB per second (and per burst) served to one peer's IWANT and GRAFT requests (SPEC.md
    /// §15.4). Default 4,096 (4 MiB/s).
    pub serve_rate_kib: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ihave_timeout: TimeDelta::from_millis(500),
            ihave_timeout_min: TimeDelta::from_millis(2),
            graft_timeout: TimeDelta::from_millis(250),
            graft_timeout_min: TimeDelta::from_millis(5),
            repair_rtos: 2,
            ihave_delay: TimeDelta::from_millis(50),
            ihave_delay_min: TimeDelta::from_millis(1),
            optimization_threshold: 3,
            retention: TimeDelta::from_secs(600),
            cache_messages: 4096,
            cache_bytes: 64 << 20,
            seen_capacity: 65_536,
            seen_per_author: 8_192,
            rejected_capacity: 4096,
            clock_skew: TimeDelta::from_secs(30),
            max_missing: 1024,
            max_announcers: 4,
            max_pending_ihave: 1024,
            archive: false,
            parent_watch: TimeDelta::from_secs(3),
            parent_misses: 3,
            distrust_for: TimeDelta::from_secs(600),
            bypass_for: TimeDelta::from_secs(600),
            max_bypass: 2,
            serve_rate_kib: 4096,
        }
    }
}

/// What the state machine asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `to`.
    Send {
        /// Recipient.
        to: PeerId,
        /// Message.
        message: Message,
    },
    /// Give `message` to the application.
    Deliver {
        /// The message (its signature checked by the topic's validator).
        message: SignedMessage,
        /// Its id.
        id: MessageId,
        /// Hops from its author.
        hops: u8,
        /// The author's verifying key that travelled with it (the validator checked it).
        author_key: VerifyingKeyBytes,
    },
    /// `peer` sent something that failed validation.
    Penalise {
        /// The sender.
        peer: PeerId,
    },
    /// What `peer` did, for its score (SPEC.md §13.8): it sent a message's first copy, it
    /// missed a message as the tree parent, or it asked beyond its serving budget.
    Evidence {
        /// The peer.
        peer: PeerId,
        /// What it did.
        evidence: crate::score::Evidence,
    },
    /// A message now retained, to be stored durably (only with [`Config::archive`]); give it
    /// back after a restart with [`Input::Restore`].
    Archive {
        /// The message as retained.
        payload: Payload,
        /// Its id.
        id: MessageId,
        /// When it leaves the retention window.
        expires: Timestamp,
    },
}

/// Running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Payload frames that carried an id already seen.
    pub duplicates: u64,
    /// Payloads refused by the validator (or naming another topic).
    pub invalid: u64,
    /// Payloads refused as older than the retention window, or dated in the future.
    pub too_old: u64,
    /// Valid payloads refused because every place in the seen-cache held an unexpired id.
    pub seen_full: u64,
    /// Valid payloads refused because their author held `seen_per_author` ids already.
    pub seen_author_full: u64,
    /// Payloads dropped because exactly these bytes were refused before.
    pub refused_again: u64,
    /// PRUNEs sent.
    pub prunes_sent: u64,
    /// GRAFTs sent because an announced message was missing.
    pub grafts_sent: u64,
    /// Tree optimisations (a lazy link replaced an eager one).
    pub optimizations: u64,
    /// Missing messages given up (no announcer delivered; anti-entropy may still repair).
    pub missing_abandoned: u64,
    /// Requests (GRAFT, IWANT) naming ids not retained.
    pub unknown_requests: u64,
    /// Messages from peers that are not neighbours in this topic, ignored.
    pub not_neighbor: u64,
    /// IHAVE entries or missing ids dropped because a bound was reached.
    pub overflow: u64,
    /// Stored messages taken back by [`Input::Restore`].
    pub restored: u64,
    /// Parents demoted for missing messages they should have pushed (SPEC.md §15.8).
    pub parents_distrusted: u64,
    /// Bypass links made: a peer served a message the parent missed (SPEC.md §15.4).
    pub bypasses: u64,
    /// Ids in IWANT or GRAFT not served again: repeated in the request, or served to the
    /// same peer within `RESERVE_AFTER`.
    pub served_again: u64,
    /// Ids in IWANT or GRAFT not served because the peer's byte budget was spent.
    pub serve_over_budget: u64,
    /// Retained messages evicted to make room that were not the oldest: their author held the
    /// most of the cache (§15.4).
    pub evicted_for_share: u64,
}

#[derive(Debug, Clone)]
struct Retained {
    payload: Payload,
    /// Who pushed it to us along the tree, for the tree optimisation.
    parent: Option<PeerId>,
    /// Published by this node (served at hop 1, not one more than received).
    own: bool,
    len: usize,
}

/// A message announced but not received; its deadline is [`Timer::Missing`].
#[derive(Debug, Clone)]
struct Missing {
    announcers: VecDeque<(PeerId, u8)>,
    /// Whether a GRAFT went for it.
    grafted: bool,
}

/// Plumtree's timers. When several are due at once they run in this order (the key's), then
/// missing messages in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Send the IHAVE entries waiting for a batch.
    IHaveFlush,
    /// An announced message is still missing: GRAFT the next announcer, or give up.
    Missing(MessageId),
    /// A message fetched with a GRAFT has waited its `parent_watch` for the parent's copy.
    ParentWatch,
    /// The earliest bypass link or demotion ends.
    Links,
    /// The oldest retained message leaves the retention window.
    Retention,
}

/// Everything that can happen to a topic's Plumtree but the passage of time.
pub enum Input<'a> {
    /// `peer` became a neighbour in this topic's overlay: it starts eager.
    NeighborUp(PeerId),
    /// `peer` is no longer a neighbour.
    NeighborDown(PeerId),
    /// The owner's round-trip estimate to neighbour `peer` (SWIM's pings, SPEC.md §15.4): the
    /// repair waits follow it.
    Rtt {
        /// The neighbour.
        peer: PeerId,
        /// Its estimate.
        rtt: RttEstimate,
    },
    /// Makes these links (those that are neighbours) eager, with the bypass links and the
    /// peers kept at their request but without a demoted parent (SPEC.md §15.4, §15.8), and
    /// every other neighbour lazy: the owner passes the links of a spanning tree it maintains
    /// (the topic's beacon tree). Until the next one, the usual rules (PRUNE on duplicates,
    /// GRAFT for missing messages) repair it; the hop-count optimisation is off, since the
    /// tree is already shallow.
    SetTree(&'a [PeerId]),
    /// The owner's tree parent (none while this node is the root), watched for the messages
    /// it should push down (SPEC.md §15.8).
    Parent(Option<PeerId>),
    /// Broadcast a message this node authored (already signed). It is not delivered locally.
    Publish {
        /// The message.
        message: SignedMessage,
        /// Its author's (this node's) verifying key.
        author_key: VerifyingKeyBytes,
    },
    /// A message from `from`, a peer on this topic's overlay (or not: then it is ignored
    /// unless it is a repair).
    Message {
        /// The sender.
        from: PeerId,
        /// The message.
        message: Message,
        /// The topic's validator, for a payload not seen before.
        validator: &'a dyn Validator,
    },
    /// Send the retained messages among `ids` to `to`, as repairs (`repair`) or tree pushes
    /// (the owner's reconciler found them missing there).
    Serve {
        /// Recipient.
        to: PeerId,
        /// The messages.
        ids: &'a [MessageId],
        /// Whether they go as [`Message::Repair`] rather than [`Message::Gossip`].
        repair: bool,
    },
    /// Take back a message stored from [`Output::Archive`] before a restart: checked like a
    /// received one (topic, age, validator), then retained and served (to GRAFT, IWANT and
    /// reconciliation) but neither delivered nor pushed. Nothing is output; the reply says
    /// whether it was taken.
    Restore {
        /// The message as stored.
        payload: Payload,
        /// The topic's validator.
        validator: &'a dyn Validator,
    },
    /// Keep (and accept) messages for `retention` from now on (a topic whose messages age
    /// fast, such as presence beacons, keeps them for less than the default).
    SetRetention(TimeDelta),
}

impl core::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Input::NeighborUp(p) => f.debug_tuple("NeighborUp").field(p).finish(),
            Input::NeighborDown(p) => f.debug_tuple("NeighborDown").field(p).finish(),
            Input::Rtt { peer, rtt } => f.debug_tuple("Rtt").field(peer).field(rtt).finish(),
            Input::SetTree(links) => f.debug_tuple("SetTree").field(links).finish(),
            Input::Parent(p) => f.debug_tuple("Parent").field(p).finish(),
            Input::Publish { message, .. } => f
                .debug_struct("Publish")
                .field("message", message)
                .finish_non_exhaustive(),
            Input::Message { from, message, .. } => f
                .debug_struct("Message")
                .field("from", from)
                .field("message", message)
                .finish_non_exhaustive(),
            Input::Serve { to, ids, repair } => f
                .debug_struct("Serve")
                .field("to", to)
                .field("ids", ids)
                .field("repair", repair)
                .finish(),
            Input::Restore { payload, .. } => f
                .debug_struct("Restore")
                .field("payload", payload)
                .finish_non_exhaustive(),
            Input::SetRetention(r) => f.debug_tuple("SetRetention").field(r).finish(),
        }
    }
}

crate::machine::internal_struct! {
    /// The Plumtree state machine of one topic.
    struct Plumtree {
        config: Config,
        topic: TopicId,
        eager_peers: BTreeSet<PeerId>,
        lazy_peers: BTreeSet<PeerId>,
        /// Boxed: a map node holds room for 11 entries, most of them empty with few messages.
        cache: BTreeMap<MessageId, Box<Retained>>,
        cache_order: VecDeque<(Timestamp, MessageId)>,
        cache_bytes: usize,
        /// Messages and bytes retained per author (`retain.rs`).
        retained_by: BTreeMap<PeerId, (usize, usize)>,
        seen: SeenCache,
        /// Digests of refused payloads.
        rejected: SeenCache,
        missing: BTreeMap<MessageId, Missing>,
        pending_ihave: BTreeMap<PeerId, Vec<Announcement>>,
        /// Round-trip estimates of neighbours (one entry per neighbour at most).
        rtts: BTreeMap<PeerId, RttEstimate>,
        /// Every timer: the IHAVE batch, each missing message, the retention window's end.
        deadlines: Deadlines<Timer>,
        /// Whether the owner maintains the eager tree ([`Input::SetTree`]).
        tree_mode: bool,
        /// The owner's tree links (never pruned in tree mode).
        tree: BTreeSet<PeerId>,
        /// The owner's tree parent, watched (§15.8).
        parent: Option<PeerId>,
        /// Messages that came first off the tree awaiting the parent's copy, until when, and who
        /// sent them; oldest first.
        watched: VecDeque<(Timestamp, MessageId, PeerId)>,
        /// Bypass links (§15.4) and until when; oldest first, at most `max_bypass`.
        bypass: VecDeque<(PeerId, Timestamp)>,
        /// Neighbours that asked (an empty GRAFT in tree mode) to stay eager across tree
        /// updates: the other ends of their bypass links, until they PRUNE.
        kept: BTreeSet<PeerId>,
        /// Parents demoted for forwarding nothing (§15.8), until when; oldest first.
        distrusted: VecDeque<(PeerId, Timestamp)>,
        /// Messages missed by the parent in a row.
        parent_missed: u32,
        /// Serving budgets of the peers that asked lately (§15.4).
        served: BTreeMap<PeerId, serve::Served>,
        out: VecDeque<Output>,
        counters: Counters,
    }
}

impl core::fmt::Debug for Plumtree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Plumtree")
            .field("topic", &self.topic)
            .field("eager_peers", &self.eager_peers.len())
            .field("lazy_peers", &self.lazy_peers.len())
            .field("retained", &self.cache.len())
            .finish_non_exhaustive()
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl Plumtree {
    /// An empty broadcast state for `topic`.
    pub fn new(config: Config, topic: TopicId) -> Self {
        Self {
            seen: SeenCache::new(config.seen_capacity, config.seen_per_author),
            rejected: SeenCache::new(config.rejected_capacity, config.rejected_capacity),
            config,
            topic,
            eager_peers: BTreeSet::new(),
            lazy_peers: BTreeSet::new(),
            cache: BTreeMap::new(),
            cache_order: VecDeque::new(),
            cache_bytes: 0,
            retained_by: BTreeMap::new(),
            missing: BTreeMap::new(),
            pending_ihave: BTreeMap::new(),
            rtts: BTreeMap::new(),
            deadlines: Deadlines::new(),
            tree_mode: false,
            tree: BTreeSet::new(),
            parent: None,
            watched: VecDeque::new(),
            bypass: VecDeque::new(),
            kept: BTreeSet::new(),
            distrusted: VecDeque::new(),
            parent_missed: 0,
            served: BTreeMap::new(),
            out: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The topic.
    pub fn topic(&self) -> TopicId {
        self.topic
    }

    /// Peers that receive payloads from this node.
    pub fn eager_peers(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.eager_peers.iter()
    }

    /// Peers that receive announcements only.
    pub fn lazy_peers(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.lazy_peers.iter()
    }

    /// A retained message with its author's key and hop count, and when it leaves the window.
    pub fn retained_payload(&self, id: &MessageId) -> Option<(&Payload, Timestamp)> {
        self.cache.get(id).map(|r| {
            (
                &r.payload,
                r.payload.message.timestamp + self.config.retention,
            )
        })
    }

    /// Ids of the messages retained (served on request and reconciled), in id order.
    pub fn retained_ids(&self) -> impl Iterator<Item = &MessageId> + '_ {
        self.cache.keys()
    }

    /// Ids of retained messages dated at or before `cutoff` (the author's timestamp), in id
    /// order: reconciliation leaves out messages still being broadcast.
    pub fn retained_ids_before(&self, cutoff: Timestamp) -> impl Iterator<Item = &MessageId> + '_ {
        self.cache
            .iter()
            .filter(move |(_, r)| r.payload.message.timestamp <= cutoff)
            .map(|(id, _)| id)
    }

    /// Whether `id` was accepted (or published) and has not expired.
    pub fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    /// Messages being waited for.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Makes `peer` an eager neighbour.
    fn neighbor_joined(&mut self, peer: PeerId) {
        self.lazy_peers.remove(&peer);
        self.eager_peers.insert(peer);
    }

    /// Forgets `peer` as a neighbour and as an announcer.
    fn neighbor_left(&mut self, peer: &PeerId) {
        self.eager_peers.remove(peer);
        self.lazy_peers.remove(peer);
        self.pending_ihave.remove(peer);
        self.rtts.remove(peer);
        self.forget_links(peer);
        for m in self.missing.values_mut() {
            m.announcers.retain(|(p, _)| p != peer);
        }
    }

    fn is_neighbor(&self, peer: &PeerId) -> bool {
        self.eager_peers.contains(peer) || self.lazy_peers.contains(peer)
    }

    /// See [`Input::Publish`].
    fn publish_own(
        &mut self,
        now: Timestamp,
        message: SignedMessage,
        author_key: VerifyingKeyBytes,
    ) {
        let id = message.id();
        let expires = message.timestamp + self.config.retention;
        if !self.admit_seen(now, id, &message.author, expires) {
            return;
        }
        let payload = Payload {
            message,
            author_key,
            hops: 1,
        };
        self.retain_new(id, payload.clone(), None, true, expires);
        self.spread(now, id, payload, None);
    }

    /// See [`Input::Message`].
    fn on_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        message: Message,
        validator: &dyn Validator,
    ) {
        if !self.is_neighbor(&from) && !matches!(message, Message::Repair(_)) {
            // Repairs come from reconciliation, which may pair with any topic member it is
            // connected to; everything else belongs to the tree.
            self.counters.not_neighbor += 1;
            return;
        }
        match message {
            Message::Gossip(p) => self.on_payload(now, from, p, true, validator),
            Message::Repair(p) => self.on_payload(now, from, p, false, validator),
            Message::IHave(entries) => self.on_ihave(now, from, entries.into_vec()),
            Message::Graft(ids) => {
                self.grafted_by(from, ids.is_empty());
                self.serve_request(now, from, ids.as_slice(), false);
            }
            Message::Prune => self.pruned_by(&from),
            Message::IWant(ids) => self.serve_request(now, from, ids.as_slice(), true),
        }
    }

    /// Sends the retained messages among `ids` to `to`, as repairs (`repair`) or tree pushes.
    fn send_retained(&mut self, to: PeerId, ids: &[MessageId], repair: bool) {
        for id in ids {
            match self.cache.get(id) {
                Some(r) => {
                    let mut payload = r.payload.clone();
                    payload.hops = payload.hops.saturating_add(u8::from(!r.own));
                    let message = if repair {
                        Message::Repair(payload)
                    } else {
                        Message::Gossip(payload)
                    };
                    self.out.push_back(Output::Send { to, message });
                }
                None => self.counters.unknown_requests += 1,
            }
        }
    }

    fn on_payload(
        &mut self,
        now: Timestamp,
        from: PeerId,
        payload: Payload,
        eager: bool,
        validator: &dyn Validator,
    ) {
        let id = payload.message.id();
        if self.seen.contains(&id) {
            self.counters.duplicates += 1;
            self.payload_from(&from, &id);
            // The sender pushes to us although we have the message: whatever we think of the
            // link, tell it to stop (the paper's rule; a PRUNE only sent when we saw the link
            // as eager would leave links pushing one way forever).
            // In tree mode the owner's tree links stay: a duplicate on one means a GRAFT
            // elsewhere raced it, and the grafted link is the one to prune. Bypass links and
            // the peers that asked to be kept stay too (§15.4).
            if eager && !self.keeps_link(&from) {
                self.eager_peers.remove(&from);
                self.lazy_peers.insert(from);
                self.counters.prunes_sent += 1;
                self.out.push_back(Output::Send {
                    to: from,
                    message: Message::Prune,
                });
            }
            return;
        }
        if payload.message.topic != self.topic {
            self.counters.invalid += 1;
            self.out.push_back(Output::Penalise { peer: from });
            return;
        }
        // A forged copy must not block the real message, so refusals are remembered by the
        // exact bytes that were refused, not by id. The digest hashes ~5 KB (signature and
        // key): computed only when something was refused, never on the quiet path.
        let digest = if self.rejected.is_empty() {
            None
        } else {
            let digest = refusal_digest(&id, &payload);
            if self.rejected.contains(&digest) {
                self.counters.refused_again += 1;
                return;
            }
            Some(digest)
        };
        if payload
            .message
            .check_age(now, self.config.retention, self.config.clock_skew)
            .is_err()
        {
            // Not necessarily malice: clocks drift, and late repairs happen. Refuse, no penalty.
            self.counters.too_old += 1;
            return;
        }
        if validator
            .validate(&payload.message, &payload.author_key)
            .is_err()
        {
            let until = payload.message.timestamp + self.config.retention;
            let digest = digest.unwrap_or_else(|| refusal_digest(&id, &payload));
            self.rejected
                .insert(digest, until + TimeDelta::from_micros(1));
            self.counters.invalid += 1;
            self.out.push_back(Output::Penalise { peer: from });
            return;
        }
        let expires = payload.message.timestamp + self.config.retention;
        if !self.admit_seen(now, id, &payload.message.author, expires) {
            return; // refused, counted: no room, or its author's share is taken
        }
        let grafted = self.missing.get(&id).is_some_and(|m| m.grafted);
        self.payload_from(&from, &id);
        self.watch_parent(now, &from, &id, grafted);
        self.found(&id);
        self.counters.delivered += 1;
        self.out.push_back(Output::Deliver {
            message: payload.message.clone(),
            id,
            hops: payload.hops,
            author_key: payload.author_key.clone(),
        });
        self.out.push_back(Output::Evidence {
            peer: from,
            evidence: crate::score::Evidence::FirstDelivery,
        });
        if eager && self.lazy_peers.remove(&from) {
            // The paper: a link that delivered a payload is part of the tree.
            self.eager_peers.insert(from);
        }
        let parent = if eager { Some(from) } else { None };
        self.retain_new(id, payload.clone(), parent, false, expires);
        self.spread(now, id, payload, Some(from));
    }

    /// Pushes a new message to the eager peers and queues announcements for the lazy ones.
    fn spread(&mut self, now: Timestamp, id: MessageId, payload: Payload, from: Option<PeerId>) {
        let hops = payload.hops;
        let mut next = payload;
        if from.is_some() {
            next.hops = hops.saturating_add(1);
        }
        for peer in self.eager_peers.iter() {
            if Some(*peer) == from {
                continue;
            }
            self.out.push_back(Output::Send {
                to: *peer,
                message: Message::Gossip(next.clone()),
            });
        }
        let lazy: Vec<PeerId> = self
            .lazy_peers
            .iter()
            .copied()
            .filter(|p| Some(*p) != from)
            .collect();
        for peer in lazy {
            let queue = self.pending_ihave.entry(peer).or_default();
            if queue.len() >= self.config.max_pending_ihave {
                queue.remove(0);
                self.counters.overflow += 1;
            }
            queue.push(Announcement {
                id,
                hops: next.hops,
            });
            let at = now + self.batch_wait(&peer);
            if self
                .deadlines
                .get(&Timer::IHaveFlush)
                .is_none_or(|t| t > at)
            {
                self.deadlines.set(Timer::IHaveFlush, at);
            }
        }
    }

    /// The tree optimisation of the paper: an announcement that arrives much closer to the
    /// author than the eager copy did makes its link eager, and the old parent link lazy.
    fn optimize(&mut self, from: PeerId, a: Announcement) {
        if self.tree_mode {
            return;
        }
        let Some(r) = self.cache.get_mut(&a.id) else {
            return;
        };
        let Some(parent) = r.parent else { return };
        if parent == from
            || u16::from(a.hops) + u16::from(self.config.optimization_threshold)
                > u16::from(r.payload.hops)
        {
            return;
        }
        r.parent = Some(from);
        r.payload.hops = a.hops;
        self.counters.optimizations += 1;
        self.lazy_peers.remove(&from);
        self.eager_peers.insert(from);
        self.out.push_back(Output::Send {
            to: from,
            message: Message::Graft(BoundedVec::default()),
        });
        if self.eager_peers.remove(&parent) {
            self.lazy_peers.insert(parent);
            self.counters.prunes_sent += 1;
            self.out.push_back(Output::Send {
                to: parent,
                message: Message::Prune,
            });
        }
    }

    /// See [`Input::Restore`].
    fn restore_payload(
        &mut self,
        now: Timestamp,
        payload: Payload,
        validator: &dyn Validator,
    ) -> Result<MessageId, RestoreError> {
        let id = payload.message.id();
        if payload.message.topic != self.topic {
            return Err(RestoreError::WrongTopic);
        }
        if self.seen.contains(&id) {
            return Err(RestoreError::AlreadySeen);
        }
        if payload
            .message
            .check_age(now, self.config.retention, self.config.clock_skew)
            .is_err()
        {
            return Err(RestoreError::Expired);
        }
        if validator
            .validate(&payload.message, &payload.author_key)
            .is_err()
        {
            return Err(RestoreError::Invalid);
        }
        let expires = payload.message.timestamp + self.config.retention;
        if !self.admit_seen(now, id, &payload.message.author, expires) {
            return Err(RestoreError::Full);
        }
        self.found(&id);
        self.counters.restored += 1;
        self.retain(id, payload, None, false, expires);
        Ok(id)
    }

    /// A message no longer missing: its timer goes with it.
    fn found(&mut self, id: &MessageId) {
        if self.missing.remove(id).is_some() {
            self.deadlines.cancel(&Timer::Missing(*id));
        }
    }

    /// Sets the retention timer to the end of the oldest retained message's window.
    fn retention_timer(&mut self) {
        match self.cache_order.front() {
            Some(&(at, _)) => self.deadlines.set(Timer::Retention, at),
            None => {
                self.deadlines.cancel(&Timer::Retention);
            }
        }
    }

    /// Runs the timers due at `now`: IHAVE batches, missing messages, retention; and forgets
    /// seen and refused ids whose window ended.
    fn run_timers(&mut self, now: Timestamp) {
        let mut due = Vec::new();
        while let Some((_, timer)) = self.deadlines.pop_due(now) {
            due.push(timer);
        }
        // Kinds in key order whatever their deadlines (batches first, then missing messages
        // by id): the order in which their outputs go out.
        due.sort_unstable();
        for timer in due {
            match timer {
                Timer::IHaveFlush => self.flush_ihave(),
                Timer::Missing(id) => self.still_missing(now, id),
                Timer::ParentWatch => self.parent_watch_due(now),
                Timer::Links => self.links_due(now),
                Timer::Retention => {
                    while let Some((t, _)) = self.cache_order.front() {
                        if *t > now {
                            break;
                        }
                        self.evict_oldest();
                    }
                    self.retention_timer();
                }
            }
        }
        self.seen.expire(now);
        self.rejected.expire(now);
    }

    /// Carries out `input` at `now` (no input draws randomness).
    fn apply(&mut self, now: Timestamp, input: Input<'_>) -> Option<RestoreError> {
        match input {
            Input::NeighborUp(peer) => self.neighbor_joined(peer),
            Input::NeighborDown(peer) => self.neighbor_left(&peer),
            Input::Rtt { peer, rtt } => self.set_rtt(peer, rtt),
            Input::SetTree(links) => self.follow_tree(links),
            Input::Parent(parent) => self.set_parent(parent),
            Input::Publish {
                message,
                author_key,
            } => self.publish_own(now, message, author_key),
            Input::Message {
                from,
                message,
                validator,
            } => self.on_message(now, from, message, validator),
            Input::Serve { to, ids, repair } => self.send_retained(to, ids, repair),
            Input::Restore { payload, validator } => {
                return self.restore_payload(now, payload, validator).err();
            }
            Input::SetRetention(retention) => self.config.retention = retention,
        }
        None
    }
}

impl StateMachine for Plumtree {
    type Input<'a> = Input<'a>;
    type Output = Output;
    /// Why an [`Input::Restore`] was refused; `None` for everything else.
    type Reply = Option<RestoreError>;

    fn handle(&mut self, now: Timestamp, input: Input<'_>, _rng: &mut Rng) -> Self::Reply {
        self.apply(now, input)
    }

    fn handle_timeout(&mut self, now: Timestamp, _rng: &mut Rng) {
        self.run_timers(now);
    }

    fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

/// Names one exact refused payload: its id, timestamp, signature and key.
fn refusal_digest(id: &MessageId, payload: &Payload) -> MessageId {
    let mut h = blake3::Hasher::new_derive_key("hearsay 2026-11 refused payload v1");
    h.update(id.as_bytes());
    // The timestamp is signed but not part of the id: a re-dated copy is another payload.
    h.update(&payload.message.timestamp.as_micros().to_be_bytes());
    h.update(payload.message.signature.as_bytes());
    h.update(payload.author_key.as_bytes());
    MessageId::from_bytes(*h.finalize().as_bytes())
}
