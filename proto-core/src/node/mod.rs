//! [`Node`]: the one state machine a driver talks to.
//!
//! The idiom (SPEC.md §6): inputs are `handle_*` methods that take `now`; outputs are queues
//! drained with `poll_transmit` and `poll_event`; `poll_timeout` names the instant at which
//! `handle_timeout` must be called next. No method blocks, reads a clock, or does I/O.

mod session;
mod view;
pub use view::*;

mod command;
mod dialing;
mod discovery;
mod persist;
mod presence;
mod private;
mod records;
mod rtt;
mod scoring;
mod topic_table;
mod topics;
mod types;

pub use crate::privacy::fetch::{
    Announcement, MAX_READERS, PrivateConfig, PrivateCounters, PrivateMessage,
};
pub use command::{Accepted, Command};
pub use persist::{MAX_PERSISTED_RECORDS, PersistentState};
pub use presence::MAX_PRESENCE_GROUPS;
pub use types::{
    Config, Contact, Counters, DownReason, Event, FrameError, NodeError, RngSeed, Transmit,
};

use crate::crypto::signing_input;
use crate::frame::{Frame, SessionMessage};
use crate::id::PeerId;
use crate::id::TopicId;
use crate::identity::Identity;
use crate::identity::record::{Addresses, PeerRecord};
use crate::machine::StateMachine;
use crate::membership::group::AddressGroup;
use crate::membership::hyparview::{self, HyParView, PeerInfo};
use crate::membership::swim::{self, Swim};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use bytes::Bytes;
use chacha20::ChaCha8Rng;
use core::net::SocketAddr;
use rand_core::SeedableRng;
use records::RecordCache;

/// One connection as the node sees it.
#[derive(Debug, Clone)]
struct Link {
    /// Whether the peer's `Hello` arrived and verified.
    established: bool,
    /// When a link still waiting for `Hello` is given up.
    hello_deadline: Timestamp,
    /// When the link was last wanted by a protocol (or established).
    last_used: Timestamp,
    /// When this node last sent its Hello on the link (answers to requests are rate-limited).
    hello_sent_at: Timestamp,
    /// When this node last asked the peer for its Hello.
    hello_requested_at: Option<Timestamp>,
    /// When the driver reported the connection.
    created: Timestamp,
    /// Whether the Hello this node sent on the link was the short form ([`crate::frame::HelloAgain`]).
    hello_short: bool,
    /// Whether the peer has sent a protocol frame on the link (so it holds this node's record).
    confirmed: bool,
    /// The SWIM ping awaiting its ack here (seq, when sent), and the round-trip estimate its
    /// acks feed (SPEC.md §15.4).
    ping: Option<(u64, Timestamp)>,
    rtt: Option<crate::time::RttEstimate>,
    /// The estimate the topics last got (they get a new one when it moves by an eighth).
    rtt_shared: Option<crate::time::RttEstimate>,
    /// This end's latest sample, not yet reported to the peer on a PING (µs).
    rtt_report: Option<u32>,
    /// The address group of the connection's remote end, when the driver gave its address.
    group: Option<AddressGroup>,
}

impl Link {
    /// While waiting for the peer's Hello, when to ask for it (again).
    fn next_hello_request(&self) -> Option<Timestamp> {
        (!self.established)
            .then(|| self.hello_requested_at.unwrap_or(self.created) + HELLO_RESEND_INTERVAL)
    }
}

/// Least time between two Hellos resent on request, or two requests, on one link.
const HELLO_RESEND_INTERVAL: TimeDelta = TimeDelta::from_secs(1);
/// Most sources (address groups, else peers) whose FIND share is remembered (SPEC.md §8.6).
const MAX_FIND_SOURCES: usize = 4096;

/// A hearsay node: its identity, records and connections, and every protocol it composes
/// (membership, failure detection, topics and broadcast, anti-entropy, encrypted messages,
/// discovery, presence) behind one sans-IO surface (SPEC.md §8).
///
/// ```
/// use bytes::Bytes;
/// use hearsay_proto::node::{Accepted, Command, Transmit};
/// use hearsay_proto::{Config, Identity, IdentitySeeds, Node, Timestamp, TopicId};
/// use rand_core::SeedableRng;
///
/// let config = Config::default();
/// let mut rng = chacha20::ChaCha8Rng::from_seed([7; 32]);
/// let identity = Identity::from_seeds(&*config.crypto, IdentitySeeds::generate(&mut rng));
/// let now = Timestamp::from_secs(1_800_000_000);
/// let mut node = Node::new(config, identity, 7, now).unwrap();
///
/// // Every request is a command; the node answers at once and queues its outputs.
/// let topic = TopicId::from_name("news");
/// assert_eq!(node.handle_command(now, Command::Subscribe { topic }), Ok(Accepted::Done));
/// let published = node.handle_command(
///     now,
///     Command::Publish { topic, payload: Bytes::from_static(b"hello") },
/// );
/// assert!(matches!(published, Ok(Accepted::Message { .. })));
///
/// // The driver loop: drain transmits and events after every input, then sleep until
/// // poll_timeout (or the next input) and call handle_timeout.
/// while let Some(t) = node.poll_transmit() {
///     if let Transmit::Send { to, frame } = t { let _ = (to, frame); }
/// }
/// while let Some(_event) = node.poll_event() {}
/// if let Some(at) = node.poll_timeout() {
///     node.handle_timeout(at);
///     assert!(node.poll_timeout().is_none_or(|next| next > at));
/// }
/// ```
pub struct Node {
    config: Config,
    identity: Identity,
    rng: ChaCha8Rng,
    boot_count: u64,
    /// The latest `now` seen; inputs with an earlier `now` are clamped to it.
    now: Timestamp,
    record: PeerRecord,
    /// `record` wrapped in a `Hello` frame, encoded once per issue.
    hello: Bytes,
    /// Peers known to hold this node's current record (they confirmed it on a connection):
    /// peer → (the record's `issued_at`, when last confirmed). Bounded by
    /// `max_known_records`; a new connection to one of them starts with the short Hello.
    record_holders: BTreeMap<PeerId, (Timestamp, Timestamp)>,
    refresh_at: Timestamp,
    housekeeping_at: Timestamp,
    /// No link deadline (a Hello's, a Hello request's, an established link's unused close)
    /// comes before this: exact after each `handle_timeout`, lowered when a link is added or
    /// established, and otherwise only ever early (deadlines move later as links are used).
    links_wake: Timestamp,
    links: BTreeMap<PeerId, Link>,
    /// Dials requested from the driver and not yet answered, with their deadlines.
    dialing: BTreeMap<PeerId, Timestamp>,
    records: RecordCache,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    hyparview: HyParView,
    swim: Swim,
    /// Subscribed topics (boxed: a topic's state is large), with the index that keeps idle
    /// ones free to hold.
    topics: topic_table::TopicTable,
    /// What each connected peer said it subscribes to.
    neighbor_topics: BTreeMap<PeerId, BTreeSet<TopicId>>,
    /// In how many overlays each peer is a neighbour (SWIM probes it while any).
    member_refs: BTreeMap<PeerId, u32>,
    /// Invalid payloads per peer, and when the current count started.
    strikes: BTreeMap<PeerId, (u32, Timestamp)>,
    /// What every peer was seen to do, weighed into its score (§13.8).
    scores: crate::score::PeerScores,
    /// Each target address's dial budget (§20.1).
    dial_limits: crate::time::RateLimits<[u8; 16]>,
    /// The peer each target address was last dialled for (redialling it is free).
    dial_peers: BTreeMap<[u8; 16], PeerId>,
    /// FIND walks handled.
    find_tokens: crate::time::TokenBucket,
    /// Each source's share of `find_tokens`.
    find_limits: crate::time::RateLimits<crate::membership::group::Source>,
    /// Encrypted messages: authored, fetched, access records.
    private: private::Private,
    /// Friends-of-friends discovery.
    foaf: crate::discovery::foaf::Foaf,
    /// Presence groups this node is a member of, by presence topic.
    presence: BTreeMap<TopicId, crate::discovery::presence::Presence>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.identity.peer_id())
            .field("now", &self.now)
            .field("links", &self.links.len())
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Creates a node at `now`: issues and signs its record. Fails only on a configuration
    /// that cannot produce a valid record.
    pub fn new(
        config: Config,
        identity: Identity,
        rng_seed: impl Into<RngSeed>,
        now: Timestamp,
    ) -> Result<Node, NodeError> {
        Self::build(config, identity, rng_seed.into(), now, 1)
    }

    /// Creates a node from state saved by [`Node::persistent_state`] before a restart: the
    /// same identity, a higher boot count, and the remembered records that still verify.
    pub fn restore(
        config: Config,
        identity: Identity,
        rng_seed: impl Into<RngSeed>,
        now: Timestamp,
        state: PersistentState,
    ) -> Result<Node, NodeError> {
        if state.owner != identity.peer_id() {
            return Err(NodeError::StateOfAnotherPeer);
        }
        let now = now.max(state.saved_at);
        let mut node = Self::build(
            config,
            identity,
            rng_seed.into(),
            now,
            state.boot_count.saturating_add(1),
        )?;
        let standing = state
            .long_standing
            .map(|s| s.into_vec())
            .unwrap_or_default();
        let (mut remembered, mut tried) = (Vec::new(), Vec::new());
        for record in state.known_records.into_vec() {
            if record.peer_id == node.identity.peer_id() {
                continue;
            }
            let info = PeerInfo {
                peer: record.peer_id,
                addresses: record.addresses.clone(),
            };
            if node.accept_record(record, now).is_ok() {
                if standing.contains(&info.peer) {
                    tried.push(info.clone());
                }
                remembered.push(info);
            }
        }
        let input = hyparview::Input::Remember { peers: remembered };
        node.hyparview.handle(now, input, &mut node.rng);
        let input = hyparview::Input::RememberTried { peers: tried };
        node.hyparview.handle(now, input, &mut node.rng);
        Ok(node)
    }

    fn build(
        config: Config,
        identity: Identity,
        rng_seed: RngSeed,
        now: Timestamp,
        boot_count: u64,
    ) -> Result<Node, NodeError> {
        let score_config = config.score.clone();
        let dial_rate = config.dial_rate_per_address;
        if config.max_connections == 0 {
            return Err(NodeError::InvalidConfig(
                "max_connections must be at least 1",
            ));
        }
        if config.hello_timeout == TimeDelta::ZERO || config.dial_timeout == TimeDelta::ZERO {
            return Err(NodeError::InvalidConfig("timeouts must be positive"));
        }
        if config.housekeeping_interval == TimeDelta::ZERO {
            return Err(NodeError::InvalidConfig(
                "housekeeping_interval must be positive",
            ));
        }
        let addresses =
            Addresses::new(config.addresses.clone()).map_err(|_| NodeError::TooManyAddresses {
                max: crate::identity::record::MAX_ADDRESSES,
            })?;
        let record = PeerRecord::issue(&identity, addresses.clone(), now, config.record_lifetime)
            .map_err(NodeError::Record)?;
        let mut rng = ChaCha8Rng::from_seed(rng_seed.0);
        let me = identity.peer_id();
        let hyparview = HyParView::new(config.hyparview.clone(), me, addresses, now, &mut rng);
        // Incarnations grow across restarts: the boot count is their high half.
        let swim = Swim::new(config.swim.clone(), me, boot_count << 32);
        let find_tokens = crate::time::TokenBucket::new(config.topics.find_rate, now);
        let find_limits =
            crate::time::RateLimits::new(config.topics.find_rate_per_source, MAX_FIND_SOURCES);
        let private = private::Private::new(&config.private);
        let foaf = crate::discovery::foaf::Foaf::new(config.foaf.clone())
            .map_err(|_| NodeError::InvalidConfig("foaf"))?;
        let mut node = Node {
            records: RecordCache::new(config.max_known_records),
            housekeeping_at: now + config.housekeeping_interval,
            links_wake: Timestamp::MAX,
            config,
            identity,
            rng,
            boot_count,
            now,
            hello: Bytes::new(),
            record_holders: BTreeMap::new(),
            refresh_at: Timestamp::MAX,
            record,
            links: BTreeMap::new(),
            dialing: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            hyparview,
            swim,
            topics: topic_table::TopicTable::default(),
            neighbor_topics: BTreeMap::new(),
            member_refs: BTreeMap::new(),
            strikes: BTreeMap::new(),
            scores: crate::score::PeerScores::new(score_config),
            dial_limits: crate::time::RateLimits::new(dial_rate, dialing::MAX_DIAL_TARGETS),
            dial_peers: BTreeMap::new(),
            private,
            foaf,
            presence: BTreeMap::new(),
            find_tokens,
            find_limits,
        };
        node.adopt_record(node.record.clone())?;
        Ok(node)
    }

    // ---------------------------------------------------------------- inputs

    /// A frame arrived from `from` over its connection. Returns why the frame was refused, if it
    /// was; a refused frame changes no protocol state and is counted.
    pub fn handle_frame(
        &mut self,
        now: Timestamp,
        from: PeerId,
        frame: Bytes,
    ) -> Result<(), FrameError> {
        let now = self.advance(now);
        self.counters.frames_received += 1;
        self.counters.bytes_received += frame.len() as u64;
        let result = self.on_frame(now, from, frame);
        self.drain_protocols(now);
        if let Err(e) = &result {
            let c = &mut self.counters;
            match e {
                FrameError::Decode(_) => c.rejected_decode += 1,
                FrameError::NotConnected => c.rejected_not_connected += 1,
                FrameError::UnsupportedVersion { .. } => c.rejected_version += 1,
                FrameError::PeerMismatch | FrameError::BadRecord(_) | FrameError::StaleRecord => {
                    c.rejected_record += 1
                }
                FrameError::NotEstablished => c.rejected_unestablished += 1,
            }
        }
        result
    }

    /// [`Node::handle_connected`], with the remote address of the connection as the driver
    /// sees it: admission to the views limits what one address group may hold (SPEC.md
    /// §13.7), so a driver that knows the address should use this.
    pub fn handle_connected_from(&mut self, now: Timestamp, peer: PeerId, remote: SocketAddr) {
        self.handle_connected_in(now, peer, AddressGroup::of(remote));
    }

    /// [`Node::handle_connected`], with the connection's address group given directly (a
    /// driver whose addresses are not IP addresses, such as the simulator).
    pub fn handle_connected_in(&mut self, now: Timestamp, peer: PeerId, group: AddressGroup) {
        self.handle_connected(now, peer);
        if let Some(link) = self.links.get_mut(&peer)
            && !link.established
        {
            link.group = Some(group);
        }
    }

    /// The driver has a connection to `peer` (it dialled, or `peer` dialled in), and the
    /// transport proved `peer`'s identity.
    pub fn handle_connected(&mut self, now: Timestamp, peer: PeerId) {
        let now = self.advance(now);
        self.dialing.remove(&peer);
        if self.links.contains_key(&peer) {
            return; // the driver reported the same connection twice: nothing changes
        }
        if peer == self.identity.peer_id()
            || self.links.len() >= self.config.max_connections
            || self.graylisted(&peer)
        {
            self.counters.connections_refused += 1;
            self.push_transmit(Transmit::Disconnect { peer });
            return;
        }
        self.links.insert(
            peer,
            Link {
                established: false,
                hello_deadline: now + self.config.hello_timeout,
                last_used: now,
                hello_sent_at: now,
                hello_requested_at: None,
                created: now,
                hello_short: false,
                confirmed: false,
                ping: None,
                rtt: None,
                rtt_shared: None,
                rtt_report: None,
                group: None,
            },
        );
        self.note_link_deadline(now + self.config.hello_timeout.min(HELLO_RESEND_INTERVAL));
        self.send_hello(peer);
    }

    /// The connection to `peer` is gone (closed by either side, or the dial failed).
    pub fn handle_disconnected(&mut self, now: Timestamp, peer: PeerId) {
        let now = self.advance(now);
        self.dialing.remove(&peer);
        self.links.remove(&peer);
        self.link_down(now, peer);
        self.drain_protocols(now);
    }

    /// Time has passed: run every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        if now >= self.refresh_at {
            let addresses = self.record.addresses.clone();
            // A failure here leaves the old record in place; the next refresh retries.
            if self.reissue_record(now, addresses).is_err() {
                self.refresh_at = now + self.config.record_lifetime.div(16);
            }
        }
        // Every link deadline is at or after `links_wake`: before it there is nothing to scan.
        let links_due = now >= self.links_wake;
        if links_due {
            self.sweep_handshakes(now);
        }
        let before = self.dialing.len();
        self.dialing.retain(|_, deadline| *deadline > now);
        self.counters.dial_timeouts += (before - self.dialing.len()) as u64;
        if now >= self.housekeeping_at {
            self.records.sweep(now);
            self.housekeeping_at = now + self.config.housekeeping_interval;
        }
        self.hyparview.handle_timeout(now, &mut self.rng);
        self.swim.handle_timeout(now, &mut self.rng);
        self.topics_timeout(now);
        self.private_timeout(now);
        crate::machine::StateMachine::handle_timeout(&mut self.foaf, now, &mut self.rng);
        self.presence_timeout(now);
        self.drain_protocols(now);
        self.discover_due(now);
        self.drain_protocols(now);
        if links_due {
            self.close_unused_links(now);
            self.recompute_links_wake();
        } else {
            self.drain_protocols(now);
        }
    }

    /// Handshakes that ran out of time are dropped; those still waiting for a Hello after a
    /// while ask for it again (it may have been lost).
    fn sweep_handshakes(&mut self, now: Timestamp) {
        let expired: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| !l.established && l.hello_deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.links.remove(&peer);
            self.counters.hello_timeouts += 1;
            self.push_transmit(Transmit::Disconnect { peer });
            self.link_down(now, peer);
        }
        // Still waiting for a Hello after a while: it may have been lost; ask for it.
        let waiting: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| l.next_hello_request().is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        if !waiting.is_empty()
            && let Ok(req) = Frame::Session(SessionMessage::HelloRequest).encode()
        {
            for peer in waiting {
                if let Some(l) = self.links.get_mut(&peer) {
                    l.hello_requested_at = Some(now);
                }
                self.send(peer, req.clone());
            }
        }
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing the driver must do: send a frame, dial a peer, or drop one.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing the application should hear about.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Node::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.dialing
            .values()
            .copied()
            .chain([self.refresh_at, self.housekeeping_at, self.links_wake])
            .chain(self.hyparview.poll_timeout())
            .chain(self.swim.poll_timeout())
            .chain(self.topics_poll_timeout())
            .chain(self.private.poll_timeout())
            .chain(self.foaf.poll_timeout())
            .chain(self.presence_poll_timeout())
            .min()
    }

    /// A link deadline may now come before the recorded ones.
    fn note_link_deadline(&mut self, at: Timestamp) {
        self.links_wake = self.links_wake.min(at);
    }

    /// Reads every link's next deadline (one pass, after the links were swept): a Hello's
    /// deadline and Hello request while a handshake runs, `unused_link_timeout` after its last
    /// use once established (`close_unused_links` then closes it, or counts it as used if an
    /// overlay still wants it).
    fn recompute_links_wake(&mut self) {
        let unused = self.config.unused_link_timeout;
        self.links_wake = self
            .links
            .values()
            .map(|l| {
                if l.established {
                    l.last_used + unused
                } else {
                    l.hello_deadline
                        .min(l.next_hello_request().unwrap_or(Timestamp::MAX))
                }
            })
            .min()
            .unwrap_or(Timestamp::MAX);
    }

    // ---------------------------------------------------------------- state

    /// What must survive a restart; give it back to [`Node::restore`].
    pub fn persistent_state(&self) -> PersistentState {
        let mut standing = self.hyparview.long_standing();
        standing.truncate(persist::MAX_LONG_STANDING);
        // Peers of long standing first, so that a full cache never drops them.
        let mut known: Vec<&PeerRecord> = self.records.sorted();
        known.sort_by_key(|r| !standing.contains(&r.peer_id));
        let known: Vec<PeerRecord> = known
            .into_iter()
            .take(persist::MAX_PERSISTED_RECORDS)
            .cloned()
            .collect();
        PersistentState {
            owner: self.identity.peer_id(),
            boot_count: self.boot_count,
            saved_at: self.now,
            known_records: BoundedVec::new(known).unwrap_or_default(),
            long_standing: BoundedVec::new(standing).ok(),
        }
    }

    /// A read-only view of the node's state, for metrics, tests and status displays.
    pub fn inspect(&self) -> NodeView<'_> {
        NodeView { node: self }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    // ---------------------------------------------------------------- internals

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        if now < self.now {
            self.counters.clock_regressions += 1;
        } else {
            self.now = now;
        }
        self.now
    }

    /// Carries out what HyParView and SWIM asked for, until both are quiet.
    fn drain_protocols(&mut self, now: Timestamp) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.hyparview.poll() {
                progressed = true;
                match out {
                    hyparview::Output::Send { to, message } => {
                        self.send_frame(to, &Frame::Membership(message))
                    }
                    hyparview::Output::Connect { peer, addresses } => {
                        if self.link_ready_or_dial(now, peer, addresses) {
                            let input = hyparview::Input::LinkUp { peer };
                            self.hyparview.handle(now, input, &mut self.rng);
                        }
                    }
                    hyparview::Output::Disconnect { peer } => {
                        let input = hyparview::Input::LinkDown { peer };
                        self.hyparview.handle(now, input, &mut self.rng);
                        if self.link_wanted(&peer) {
                            // A topic overlay still uses the connection.
                            if let Some(l) = self.links.get_mut(&peer) {
                                l.last_used = now;
                            }
                        } else {
                            if self.links.remove(&peer).is_some() {
                                self.push_transmit(Transmit::Disconnect { peer });
                            }
                            self.dialing.remove(&peer);
                            self.link_down(now, peer);
                        }
                    }
                    hyparview::Output::NeighborUp { peer } => {
                        self.member_up(now, peer);
                        if !self.topics.is_empty() {
                            self.send_subscriptions(peer);
                            self.restart_merge_walks(now);
                        }
                        if let Some(l) = self.links.get_mut(&peer) {
                            l.last_used = now;
                        }
                        self.push_event(Event::NeighborUp { peer });
                    }
                    hyparview::Output::NeighborDown { peer, reason } => {
                        self.member_down(&peer);
                        self.pace_member(now, peer);
                        if let Some(l) = self.links.get_mut(&peer) {
                            l.last_used = now;
                        }
                        self.push_event(Event::NeighborDown { peer, reason });
                    }
                    hyparview::Output::Evidence { peer, evidence } => {
                        self.note_evidence(now, peer, evidence)
                    }
                }
            }
            while let Some(out) = self.swim.poll() {
                progressed = true;
                match out {
                    swim::Output::Send { to, mut message } => {
                        self.ping_sent(now, to, &mut message);
                        self.send_frame(to, &Frame::FailureDetection(message))
                    }
                    swim::Output::Dead { peer } => self.peer_failed(now, peer),
                    swim::Output::Evidence { peer, evidence } => {
                        self.note_evidence(now, peer, evidence)
                    }
                    swim::Output::Refute { incarnation } => {
                        let me = self.identity.peer_id();
                        let msg =
                            signing_input(swim::ALIVE_DOMAIN, &swim::alive_body(&me, incarnation));
                        if let Ok(sig) = self.identity.signer().sign(&msg) {
                            let input = swim::Input::PublishAlive {
                                incarnation,
                                signature: sig,
                            };
                            self.swim.handle(now, input, &mut self.rng);
                        }
                    }
                }
            }
            progressed |= self.drain_topics(now);
            progressed |= self.drain_discovery();
            progressed |= self.drain_presence(now);
            if !progressed {
                break;
            }
        }
        self.topics
            .settle(Self::topic_deadline, |t| t.hyparview.linked().collect());
    }

    fn send(&mut self, to: PeerId, frame: Bytes) {
        let len = frame.len() as u64;
        // Every frame is the array [kind, body] (§6.1): 0x82, then the kind as one byte.
        let kind = match frame.first().zip(frame.get(1)) {
            Some((0x82, k)) => Some(usize::from(*k)),
            _ => None,
        };
        if self.push_transmit(Transmit::Send { to, frame }) {
            self.counters.frames_sent += 1;
            self.counters.bytes_sent += len;
            if let Some(n) = kind.and_then(|k| self.counters.frames_out_by_kind.get_mut(k)) {
                *n += 1;
            }
        }
    }

    fn push_transmit(&mut self, t: Transmit) -> bool {
        if self.transmits.len() >= self.config.max_queued_transmits {
            self.counters.transmits_dropped += 1;
            return false;
        }
        self.transmits.push_back(t);
        true
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= self.config.max_queued_events {
            self.events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.events.push_back(e);
    }
}

#[cfg(all(test, feature = "insecure-test-crypto"))]
mod bounds_tests;
