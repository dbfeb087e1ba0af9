//! HyParView membership (Leitão, Pereira, Rodrigues, DSN 2007): a small symmetric *active view*
//! of peers this node is connected to, and a larger *passive view* of peers it knows how to
//! reach, kept fresh by periodic shuffles and used to repair the active view.
//!
//! The state machine ([`StateMachine`]) speaks `PeerId`s and opaque addresses; it asks its owner
//! (the `Node`) to connect, to send, and to disconnect, through [`Output`]s. It is told when a
//! connection's handshake completed ([`Input::LinkUp`]) and when a connection is gone
//! ([`Input::LinkDown`]); the failure detector's verdicts arrive as [`Input::Failed`].
//!
//! Beyond the paper, a node remembers the active peers it *lost* (disconnected or declared
//! failed) and retries them with exponential back-off for a while: when a partition heals, the
//! first retry that gets through re-merges the two halves without help from the application.

mod admission;
mod config;
pub use config::Config;
mod merge;
mod message;
mod receive;
mod shuffle;
mod timers;
mod views;
pub use merge::MergeConfig;
pub use message::*;

use crate::id::PeerId;
use crate::identity::record::Addresses;
use crate::machine::{self, Deadlines, StateMachine};
use crate::membership::DownReason;
use crate::membership::group::{AddressGroup, Source};
use crate::time::{RateLimits, TimeDelta, Timestamp, TokenBucket};
use crate::wire::BoundedVec;
use admission::Scores;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use rand_core::Rng;
use timers::Timer;

/// What the state machine asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `to` over its connection.
    Send {
        /// Recipient.
        to: PeerId,
        /// Message.
        message: Message,
    },
    /// Open a connection to `peer` (then report [`Input::LinkUp`] or [`Input::LinkDown`]).
    Connect {
        /// Peer to dial.
        peer: PeerId,
        /// Its addresses.
        addresses: Addresses,
    },
    /// Close the connection to `peer` once what is queued is sent.
    Disconnect {
        /// Peer.
        peer: PeerId,
    },
    /// `peer` entered the active view.
    NeighborUp {
        /// Peer.
        peer: PeerId,
    },
    /// `peer` left the active view.
    NeighborDown {
        /// Peer.
        peer: PeerId,
        /// Why.
        reason: DownReason,
    },
    /// What `peer` did, for its score (SPEC.md §13.8): a walk from outside the active view.
    Evidence {
        /// The peer.
        peer: PeerId,
        /// What it did.
        evidence: crate::score::Evidence,
    },
}

/// What can happen to the membership protocol (besides time passing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message from `from`, over an established connection.
    Message {
        /// The sender.
        from: PeerId,
        /// The sender's addresses, when its record is known (a JOIN needs them).
        addresses: Option<Addresses>,
        /// The message.
        message: Message,
    },
    /// A connection's handshake completed (either side dialled).
    LinkUp {
        /// The peer.
        peer: PeerId,
    },
    /// A connection is gone.
    LinkDown {
        /// The peer.
        peer: PeerId,
    },
    /// The failure detector declared `peer` dead.
    Failed {
        /// The peer.
        peer: PeerId,
    },
    /// `peer` said goodbye: it is leaving for good.
    Left {
        /// The peer.
        peer: PeerId,
    },
    /// The owner cut `peer` off for misbehaving: it leaves every view, is neither retried nor
    /// tried, and its neighbourhood ends with [`DownReason::Misbehaved`] (§13.7).
    Misbehaved {
        /// The peer.
        peer: PeerId,
    },
    /// Join the overlay through `contacts` (tried again, with back-off, while the node is alone).
    Join {
        /// Where to join.
        contacts: Vec<PeerInfo>,
    },
    /// `origin` asked to join through this node by proxy (a topic FIND walk reached it): do
    /// what a JOIN from it would do, except that this node dials it (a NEIGHBOR of high
    /// priority) since no connection may exist yet. Rate-limited like JOIN. Replies whether a
    /// connection attempt started.
    Introduce {
        /// The peer that wants in.
        origin: PeerInfo,
    },
    /// Ask `peer` to become an active neighbour with high priority (it cannot refuse), without
    /// announcing this node further: one new link, used to join two parts of an overlay.
    /// Replies whether a connection attempt started.
    Link {
        /// The peer.
        peer: PeerInfo,
    },
    /// Leave: forget the views and every attempt (the owner says goodbye on every connection).
    Leave,
    /// Advertise these addresses in shuffles and joins from now on.
    SetAddresses {
        /// This node's addresses.
        addresses: Addresses,
    },
    /// Remember peers (from a restart's persisted records) as passive entries.
    Remember {
        /// The peers.
        peers: Vec<PeerInfo>,
    },
    /// Remember peers (from a restart's persisted state) as tried (§13.7): the peers this node
    /// chose and kept for long before it stopped, asked first for its reserved places.
    RememberTried {
        /// The peers.
        peers: Vec<PeerInfo>,
    },
}

/// Running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// JOIN / FORWARD_JOIN dropped by the rate limit or because the node is busy.
    pub joins_dropped: u64,
    /// JOIN / FORWARD_JOIN dropped because their source (address group, else peer) had spent
    /// its share, `join_rate_per_source` (§13.7).
    pub joins_over_source_budget: u64,
    /// Messages that made no sense from their sender (NEIGHBOR_REPLY without a request, a second
    /// JOIN on one connection, ...).
    pub unexpected: u64,
    /// Shuffles completed (replies integrated).
    pub shuffles: u64,
    /// NEIGHBOR requests refused by others.
    pub refused: u64,
    /// Connection attempts that failed or timed out.
    pub attempts_failed: u64,
    /// Lost peers reconnected through retries.
    pub retries_succeeded: u64,
    /// Connection attempts not started because `max_pending` were in flight.
    pub attempts_dropped: u64,
    /// Merge probes sent (one per probe attempt that reached its peer).
    pub merge_probes: u64,
    /// Bridging links made by a merge probe that found another component.
    pub merge_links: u64,
    /// SHUFFLE or FORWARD_JOIN from a peer outside the active view (walks travel active links
    /// only), or a SHUFFLE_REPLY / SHUFFLE_BACK this node was not waiting for: ignored (§13.7).
    pub not_neighbor: u64,
    /// JOINs admitted but not announced: their address group had a joiner announced within
    /// `announce_interval`.
    pub announcements_skipped: u64,
    /// Newcomers (JOIN, NEIGHBOR, the joiner at a FORWARD_JOIN walk's end) refused a place in
    /// a full view because their score was below the admission threshold (§13.8).
    pub refused_low_score: u64,
}

/// What an outgoing connection attempt is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    /// Join through this contact.
    Join,
    /// Ask to become neighbours.
    Neighbor(Priority),
    /// Ask which component the peer is in; a peer in another one links (island merging).
    Probe,
}

/// Who picked the peer of an attempt, and so whether the link it makes counts towards the
/// reserved places (§13.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This node, from its own views, tried peers or contacts.
    Chosen,
    /// Someone else: a FORWARD_JOIN's joiner, an introduction, a link asked for by a topic walk,
    /// a merge probe.
    Invited,
}

#[derive(Debug, Clone)]
struct Attempt {
    /// Whether this node chose the peer ([`Origin::Chosen`]).
    chosen: bool,
    purpose: Purpose,
    addresses: Addresses,
    /// Whether the request went out on an established connection (it is then sent again every
    /// `request_retry` until answered; the attempt ends at `attempt_timeout` in any case).
    sent: bool,
    /// From the lost-peer list (a success is a re-merge).
    retry: bool,
}

#[derive(Debug, Clone)]
struct Lost {
    addresses: Addresses,
    /// Whether it held a chosen place (a successful retry takes one again).
    chosen: bool,
    lost_at: Timestamp,
    /// When to retry (its timer is set while no attempt to the peer is in flight).
    next_try: Timestamp,
    backoff: TimeDelta,
}

crate::machine::internal_struct! {
    /// The HyParView state machine.
    #[derive(Debug)]
    struct HyParView {
        config: Config,
        me: PeerId,
        my_addresses: Addresses,
        active: BTreeMap<PeerId, Addresses>,
        /// When each active neighbour entered the view.
        active_since: BTreeMap<PeerId, Timestamp>,
        /// The active neighbours this node chose itself (§13.7).
        chosen: BTreeSet<PeerId>,
        /// Chosen neighbours of long standing that went without failing (§13.7).
        tried: BTreeMap<PeerId, admission::Tried>,
        /// Until when the node is under pressure (an invited newcomer evicted a neighbour).
        pressure_until: Timestamp,
        passive: BTreeMap<PeerId, Addresses>,
        /// The address group of passive entries that have one (entries since gone are
        /// dropped lazily).
        passive_groups: BTreeMap<PeerId, AddressGroup>,
        /// When each passive entry came in, by insertion number (entries since gone are
        /// dropped lazily): reserved places go to the longest-held entries (§13.7).
        passive_since: BTreeMap<PeerId, u64>,
        /// Passive insertions so far.
        passive_inserts: u64,
        /// When a joiner of each address group was last announced (FORWARD_JOIN walks).
        announced: BTreeMap<AddressGroup, Timestamp>,
        attempts: BTreeMap<PeerId, Attempt>,
        lost: BTreeMap<PeerId, Lost>,
        /// Links whose handshake completed, whatever their use.
        links: BTreeSet<PeerId>,
        /// Links on which a JOIN was already honoured.
        joined_links: BTreeSet<PeerId>,
        /// Entries we sent in our last shuffle (evicted first when the reply arrives).
        last_shuffle_sent: Vec<PeerId>,
        /// Whether this node's last walk is still unanswered (only then is a reply taken in).
        shuffle_awaited: bool,
        next_shuffle: Timestamp,
        /// The pause before the next shuffle (×4 while the active view loses no one).
        shuffle_pause: TimeDelta,
        /// The active view when the last shuffle went.
        shuffle_view: Vec<PeerId>,
        /// Walks forwarded recently: origin → the neighbour it came from, until when (a
        /// SHUFFLE_BACK retraces them).
        shuffle_routes: BTreeMap<PeerId, (PeerId, Timestamp)>,
        next_repair: Timestamp,
        /// Current pause between paced repairs: doubles on each refusal, resets on success.
        repair_backoff: TimeDelta,
        /// The contacts of the last join, tried again (with back-off) while the node is alone.
        contacts: Vec<PeerInfo>,
        next_rejoin: Timestamp,
        rejoin_backoff: TimeDelta,
        join_tokens: TokenBucket,
        /// Each source's share of the JOIN / FORWARD_JOIN budget.
        join_limits: RateLimits<Source>,
        /// The address group of each link whose driver reported one (§13.7).
        groups: BTreeMap<PeerId, AddressGroup>,
        /// Every timer: attempts, resent requests, retries of lost peers, rejoin, shuffle, repair.
        deadlines: Deadlines<Timer>,
        out: VecDeque<Output>,
        counters: Counters,
        left: bool,
        /// Island merging, when configured: the component's root and the probe pacing.
        component: Option<merge::Component>,
        /// Active neighbours spared from eviction ([`HyParView::spare`]).
        spared: Vec<PeerId>,
        /// The owner's latest scores of neighbours and newcomers ([`HyParView::note_scores`]).
        scores: Scores,
        /// The latest `now` seen (the component's tree needs one where an input carries none).
        clock: Timestamp,
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl HyParView {
    /// A node `me` reachable at `my_addresses`, created at `now`.
    pub fn new(
        config: Config,
        me: PeerId,
        my_addresses: Addresses,
        now: Timestamp,
        rng: &mut machine::Rng,
    ) -> Self {
        let first_shuffle = now + jitter(rng, config.shuffle_interval);
        let component = config
            .merge
            .as_ref()
            .map(|m| merge::Component::new(m, me, now, rng));
        let mut hv = Self {
            join_tokens: TokenBucket::new(config.join_rate, now),
            join_limits: RateLimits::new(config.join_rate_per_source, admission::MAX_GROUPS),
            groups: BTreeMap::new(),
            config,
            me,
            my_addresses,
            active: BTreeMap::new(),
            active_since: BTreeMap::new(),
            chosen: BTreeSet::new(),
            tried: BTreeMap::new(),
            pressure_until: Timestamp::EPOCH,
            passive: BTreeMap::new(),
            passive_groups: BTreeMap::new(),
            passive_since: BTreeMap::new(),
            passive_inserts: 0,
            announced: BTreeMap::new(),
            attempts: BTreeMap::new(),
            lost: BTreeMap::new(),
            links: BTreeSet::new(),
            joined_links: BTreeSet::new(),
            last_shuffle_sent: Vec::new(),
            shuffle_awaited: false,
            next_shuffle: first_shuffle,
            shuffle_pause: TimeDelta::ZERO,
            shuffle_view: Vec::new(),
            shuffle_routes: BTreeMap::new(),
            next_repair: now,
            repair_backoff: TimeDelta::ZERO,
            contacts: Vec::new(),
            next_rejoin: Timestamp::MAX,
            rejoin_backoff: TimeDelta::ZERO,
            deadlines: Deadlines::new(),
            out: VecDeque::new(),
            counters: Counters::default(),
            left: false,
            component,
            spared: Vec::new(),
            scores: Scores::default(),
            clock: now,
        };
        hv.arm_timers();
        hv
    }

    /// The active view, in id order.
    pub fn active(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.active.keys()
    }

    /// Whether `peer` is in the active view.
    pub fn is_active(&self, peer: &PeerId) -> bool {
        self.active.contains_key(peer)
    }

    /// The passive view, in id order.
    pub fn passive(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.passive.keys()
    }

    /// Peers remembered for re-merge retries.
    pub fn lost(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.lost.keys()
    }

    /// Connection attempts in flight.
    pub fn attempts(&self) -> usize {
        self.attempts.len()
    }

    /// Whether the connection to `peer` serves the membership protocol (active, or an attempt).
    pub fn wants_link(&self, peer: &PeerId) -> bool {
        self.active.contains_key(peer) || self.attempts.contains_key(peer)
    }

    /// The peers whose connection serves the membership protocol (those for which
    /// [`HyParView::wants_link`] holds), in no particular order.
    pub fn linked(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.active.keys().chain(self.attempts.keys()).copied()
    }

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Shorthand for [`StateMachine::poll`].
    pub fn poll(&mut self) -> Option<Output> {
        StateMachine::poll(self)
    }

    /// Shorthand for [`StateMachine::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        StateMachine::poll_timeout(self)
    }

    /// Shorthand for [`StateMachine::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        StateMachine::handle_timeout(self, now, rng)
    }

    /// Shorthand for `handle(now, Input::Message { from, addresses, message }, rng)`.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        addresses: Option<Addresses>,
        message: Message,
        rng: &mut machine::Rng,
    ) {
        let input = Input::Message {
            from,
            addresses,
            message,
        };
        self.handle(now, input, rng);
    }

    /// Shorthand for `handle(now, Input::LinkUp { peer }, rng)` (which draws nothing).
    pub fn on_link_up(&mut self, now: Timestamp, peer: PeerId) {
        self.clock = self.clock.max(now);
        self.with_timers(|hv| hv.link_up(now, peer));
    }

    /// Shorthand for `handle(now, Input::LinkDown { peer }, rng)`.
    pub fn on_link_down(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        self.handle(now, Input::LinkDown { peer }, rng);
    }

    /// Shorthand for `handle(now, Input::Failed { peer }, rng)`.
    pub fn on_failed(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        self.handle(now, Input::Failed { peer }, rng);
    }

    /// Shorthand for `handle(now, Input::Left { peer }, rng)`.
    pub fn on_left(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        self.handle(now, Input::Left { peer }, rng);
    }

    /// Shorthand for `handle(now, Input::Join { contacts }, rng)` (which draws nothing).
    pub fn join(&mut self, now: Timestamp, contacts: Vec<PeerInfo>) {
        self.clock = self.clock.max(now);
        self.with_timers(|hv| hv.join_via(now, contacts));
    }

    /// Shorthand for `handle(now, Input::Introduce { origin }, rng)` (which draws nothing).
    pub fn introduce(&mut self, now: Timestamp, origin: PeerInfo) -> bool {
        self.clock = self.clock.max(now);
        self.with_timers(|hv| hv.introduce_origin(now, origin))
    }

    /// Shorthand for `handle(now, Input::Link { peer }, rng)` (which draws nothing).
    pub fn link(&mut self, now: Timestamp, peer: PeerInfo) -> bool {
        self.clock = self.clock.max(now);
        self.with_timers(|hv| hv.link_to(now, peer))
    }

    /// Shorthand for `handle(now, Input::Leave, rng)` (which needs neither).
    pub fn leave(&mut self) {
        self.with_timers(|hv| hv.forget_all());
    }

    /// Shorthand for `handle(now, Input::Remember { peers }, rng)` (which needs no time).
    pub fn remember(&mut self, peers: impl IntoIterator<Item = PeerInfo>, rng: &mut machine::Rng) {
        self.with_timers(|hv| hv.remember_peers(peers, rng));
    }

    /// Runs `f`, then brings the timers that follow the views up to date.
    fn with_timers<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let r = f(self);
        self.arm_timers();
        r
    }

    /// [`Input::Remember`].
    fn remember_peers(
        &mut self,
        peers: impl IntoIterator<Item = PeerInfo>,
        rng: &mut machine::Rng,
    ) {
        for info in peers {
            self.add_passive(info.peer, info.addresses, &[], rng);
        }
    }

    /// [`Input::Join`].
    fn join_via(&mut self, now: Timestamp, contacts: Vec<PeerInfo>) {
        self.left = false;
        self.contacts = contacts.clone();
        self.rejoin_backoff = self.config.retry_backoff_min;
        self.next_rejoin = now + self.config.attempt_timeout + self.rejoin_backoff;
        for c in contacts {
            if c.peer == self.me || self.active.contains_key(&c.peer) {
                continue;
            }
            self.attempt(
                now,
                c.peer,
                c.addresses,
                Purpose::Join,
                Origin::Chosen,
                false,
            );
        }
    }

    /// [`Input::Introduce`].
    fn introduce_origin(&mut self, now: Timestamp, origin: PeerInfo) -> bool {
        if self.left || origin.peer == self.me || self.active.contains_key(&origin.peer) {
            return false;
        }
        if !self.take_join_token(now) {
            self.counters.joins_dropped += 1;
            return false;
        }
        let others: Vec<PeerId> = self.active.keys().copied().collect();
        for p in others {
            self.out.push_back(Output::Send {
                to: p,
                message: Message::ForwardJoin {
                    node: origin.clone(),
                    ttl: self.config.arwl,
                },
            });
        }
        self.attempt(
            now,
            origin.peer,
            origin.addresses,
            Purpose::Neighbor(Priority::High),
            Origin::Invited,
            false,
        )
    }

    /// [`Input::Link`].
    fn link_to(&mut self, now: Timestamp, peer: PeerInfo) -> bool {
        if self.left || peer.peer == self.me || self.active.contains_key(&peer.peer) {
            return false;
        }
        self.attempt(
            now,
            peer.peer,
            peer.addresses,
            Purpose::Neighbor(Priority::High),
            Origin::Invited,
            false,
        )
    }

    /// [`Input::Leave`].
    fn forget_all(&mut self) {
        self.left = true;
        self.active.clear();
        self.active_since.clear();
        self.chosen.clear();
        self.attempts.clear();
        self.lost.clear();
        self.deadlines.clear();
    }

    fn attempt(
        &mut self,
        now: Timestamp,
        peer: PeerId,
        addresses: Addresses,
        purpose: Purpose,
        origin: Origin,
        retry: bool,
    ) -> bool {
        if self.attempts.contains_key(&peer) {
            return false;
        }
        if self.attempts.len() >= self.config.max_pending {
            self.counters.attempts_dropped += 1;
            return false;
        }
        self.insert_attempt(
            now,
            peer,
            Attempt {
                chosen: origin == Origin::Chosen,
                purpose,
                addresses: addresses.clone(),
                sent: false,
                retry,
            },
        );
        if self.links.contains(&peer) {
            self.fire_attempt(now, peer);
        } else {
            self.out.push_back(Output::Connect { peer, addresses });
        }
        true
    }

    fn fire_attempt(&mut self, now: Timestamp, peer: PeerId) {
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        if a.sent {
            return;
        }
        a.sent = true;
        let purpose = a.purpose.clone();
        let message = self.request(&purpose);
        self.out.push_back(Output::Send { to: peer, message });
        // Sent again until answered.
        let again = now + self.config.request_retry;
        self.deadlines.set(Timer::Resend(peer), again);
    }

    /// [`Input::LinkUp`].
    fn link_up(&mut self, now: Timestamp, peer: PeerId) {
        self.links.insert(peer);
        self.fire_attempt(now, peer);
    }

    /// [`Input::LinkDown`].
    fn link_down(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        self.links.remove(&peer);
        self.groups.remove(&peer);
        self.joined_links.remove(&peer);
        if let Some(a) = self.take_attempt(&peer) {
            self.counters.attempts_failed += 1;
            self.attempt_failed(now, peer, a);
        }
        let chosen = self.chosen.contains(&peer);
        if let Some(addresses) = self.remove_active(&peer, false) {
            self.out.push_back(Output::NeighborDown {
                peer,
                reason: DownReason::Disconnected,
            });
            self.remember_lost(now, peer, addresses, chosen);
            self.repair(now, rng, true, &[peer]);
        }
    }

    /// [`Input::Failed`].
    fn failed(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        self.passive.remove(&peer);
        let chosen = self.chosen.contains(&peer);
        if let Some(addresses) = self.remove_active(&peer, true) {
            self.out.push_back(Output::NeighborDown {
                peer,
                reason: DownReason::Failed,
            });
            self.out.push_back(Output::Disconnect { peer });
            self.remember_lost(now, peer, addresses, chosen);
            self.repair(now, rng, true, &[peer]);
        }
    }

    /// [`Input::Left`] and [`Input::Misbehaved`]: `peer` is forgotten everywhere.
    fn peer_left(
        &mut self,
        now: Timestamp,
        peer: PeerId,
        rng: &mut machine::Rng,
        reason: DownReason,
    ) {
        self.passive.remove(&peer);
        self.lost.remove(&peer);
        self.arm_lost(peer);
        self.take_attempt(&peer);
        self.tried.remove(&peer);
        if self.remove_active(&peer, true).is_some() {
            self.out.push_back(Output::NeighborDown { peer, reason });
            self.repair(now, rng, true, &[peer]);
        }
    }

    fn attempt_failed(&mut self, now: Timestamp, peer: PeerId, a: Attempt) {
        if a.retry {
            if let Some(l) = self.lost.get_mut(&peer) {
                l.backoff = (l.backoff + l.backoff).min(self.config.retry_backoff_max);
                l.next_try = now + l.backoff;
            }
            self.arm_lost(peer);
        } else if matches!(a.purpose, Purpose::Neighbor(_) | Purpose::Probe) {
            // An unreachable passive entry is dropped (the paper's rule).
            self.passive.remove(&peer);
        }
    }

    fn remember_lost(&mut self, now: Timestamp, peer: PeerId, addresses: Addresses, chosen: bool) {
        // With `max_lost` 0 nothing is remembered (the eviction below would make room for one).
        if self.left || self.config.max_lost == 0 {
            return;
        }
        if self.lost.len() >= self.config.max_lost && !self.lost.contains_key(&peer) {
            let oldest = self
                .lost
                .iter()
                .min_by_key(|(p, l)| (l.lost_at, **p))
                .map(|(p, _)| *p);
            if let Some(o) = oldest {
                self.lost.remove(&o);
                self.arm_lost(o);
            }
        }
        let backoff = self.config.retry_backoff_min;
        self.lost.insert(
            peer,
            Lost {
                addresses,
                chosen,
                lost_at: now,
                next_try: now + backoff,
                backoff,
            },
        );
        self.arm_lost(peer);
    }

    fn take_join_token(&mut self, now: Timestamp) -> bool {
        self.join_tokens.take(now)
    }

    /// Takes a JOIN / FORWARD_JOIN token from `from`'s source and then from the node's budget,
    /// counting a refusal by the budget that refused.
    fn take_join_tokens_of(&mut self, now: Timestamp, from: PeerId) -> bool {
        let source = Source::of(self.groups.get(&from).copied(), from);
        if !self.join_limits.take(now, source) {
            self.counters.joins_over_source_budget += 1;
            return false;
        }
        if !self.take_join_token(now) {
            self.counters.joins_dropped += 1;
            return false;
        }
        true
    }

    fn random_active_except(&self, except: &[PeerId], rng: &mut machine::Rng) -> Option<PeerId> {
        let candidates: Vec<PeerId> = self
            .active
            .keys()
            .copied()
            .filter(|p| !except.contains(p))
            .collect();
        pick(&candidates, rng)
    }

    fn sample_passive(&self, n: usize, rng: &mut machine::Rng) -> Vec<PeerInfo> {
        let all: Vec<PeerInfo> = self
            .passive
            .iter()
            .map(|(p, a)| PeerInfo {
                peer: *p,
                addresses: a.clone(),
            })
            .collect();
        sample(all, n, rng)
    }

    /// Fills the active view from the passive view when it has room: high priority when it is
    /// empty, low otherwise, one attempt per missing slot.
    ///
    /// A loss (`force`) repairs at once; otherwise repairs are paced by `repair_interval`.
    /// `exclude` names peers whose connection is being closed right now.
    fn repair(&mut self, now: Timestamp, rng: &mut machine::Rng, force: bool, exclude: &[PeerId]) {
        if !force && now < self.next_repair {
            return;
        }
        self.next_repair = now + self.repair_backoff.max(self.config.repair_interval);
        self.refill_reserve(now, rng, exclude);
        let in_flight = self
            .attempts
            .values()
            .filter(|a| matches!(a.purpose, Purpose::Neighbor(_)))
            .count();
        let missing = self
            .config
            .active_view
            .saturating_sub(self.active.len() + in_flight);
        if missing == 0 {
            return;
        }
        let priority = if self.active.is_empty() {
            Priority::High
        } else {
            Priority::Low
        };
        let candidates: Vec<PeerInfo> = self
            .passive
            .iter()
            .filter(|(p, _)| !self.attempts.contains_key(p) && !exclude.contains(p))
            .map(|(p, a)| PeerInfo {
                peer: *p,
                addresses: a.clone(),
            })
            .collect();
        // Peers already connected (for another overlay) first: asking them costs no connection.
        let (linked, unlinked): (Vec<PeerInfo>, Vec<PeerInfo>) = candidates
            .into_iter()
            .partition(|i| self.links.contains(&i.peer));
        let mut chosen = sample(linked, missing, rng);
        if chosen.len() < missing {
            chosen.extend(sample(unlinked, missing - chosen.len(), rng));
        }
        for info in chosen {
            self.attempt(
                now,
                info.peer,
                info.addresses,
                Purpose::Neighbor(priority),
                Origin::Chosen,
                false,
            );
        }
    }
}

impl StateMachine for HyParView {
    type Input<'a> = Input;
    type Output = Output;
    /// `Introduce` and `Link` reply whether they started a connection attempt; every other
    /// input replies `false`.
    type Reply = bool;

    fn handle(&mut self, now: Timestamp, input: Input, rng: &mut machine::Rng) -> bool {
        self.clock = self.clock.max(now);
        let started = match input {
            Input::Message {
                from,
                addresses,
                message,
            } => {
                self.receive(now, from, addresses, message, rng);
                false
            }
            Input::LinkUp { peer } => {
                self.link_up(now, peer);
                false
            }
            Input::LinkDown { peer } => {
                self.link_down(now, peer, rng);
                false
            }
            Input::Failed { peer } => {
                self.failed(now, peer, rng);
                false
            }
            Input::Left { peer } => {
                self.peer_left(now, peer, rng, DownReason::Left);
                false
            }
            Input::Misbehaved { peer } => {
                self.peer_left(now, peer, rng, DownReason::Misbehaved);
                false
            }
            Input::Join { contacts } => {
                self.join_via(now, contacts);
                false
            }
            Input::Introduce { origin } => self.introduce_origin(now, origin),
            Input::Link { peer } => self.link_to(now, peer),
            Input::Leave => {
                self.forget_all();
                false
            }
            Input::SetAddresses { addresses } => {
                self.my_addresses = addresses;
                false
            }
            Input::Remember { peers } => {
                self.remember_peers(peers, rng);
                false
            }
            Input::RememberTried { peers } => {
                for info in peers {
                    if info.peer != self.me {
                        self.remember_tried(info.peer, info.addresses);
                    }
                }
                false
            }
        };
        self.arm_timers();
        started
    }

    fn handle_timeout(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        self.clock = self.clock.max(now);
        self.run_timers(now, rng);
        self.arm_timers();
    }

    fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

fn pick<T: Copy>(items: &[T], rng: &mut machine::Rng) -> Option<T> {
    if items.is_empty() {
        return None;
    }
    items
        .get((rng.next_u64() % items.len() as u64) as usize)
        .copied()
}

/// `n` distinct items chosen uniformly (partial Fisher-Yates).
fn sample<T>(mut items: Vec<T>, n: usize, rng: &mut machine::Rng) -> Vec<T> {
    let n = n.min(items.len());
    for i in 0..n {
        let j = i + (rng.next_u64() % (items.len() - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(n);
    items
}

/// `base` ± 25 %, so that periodic work does not synchronise across nodes.
fn jitter(rng: &mut machine::Rng, base: TimeDelta) -> TimeDelta {
    let quarter = base.as_micros() / 4;
    let span = quarter.saturating_mul(2).max(1);
    TimeDelta::from_micros(base.as_micros() - quarter + rng.next_u64() % span)
}

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod bounds_tests;
#[cfg(test)]
mod flood_tests;
#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod score_tests;
#[cfg(test)]
mod shuffle_tests;
#[cfg(test)]
mod tests;
