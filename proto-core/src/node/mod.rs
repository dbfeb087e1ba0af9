//! [`Node`]: the one state machine a driver talks to.
//!
//! The idiom (SPEC.md §6): inputs are `handle_*` methods that take `now`; outputs are queues
//! drained with `poll_transmit` and `poll_event`; `poll_timeout` names the instant at which
//! `handle_timeout` must be called next. No method blocks, reads a clock, or does I/O.

mod discovery;
mod persist;
mod presence;
mod private;
mod records;
mod topics;
mod types;

pub use crate::privacy::fetch::{
    Announcement, MAX_READERS, PrivateConfig, PrivateCounters, PrivateMessage,
};
pub use persist::{MAX_PERSISTED_RECORDS, PersistentState};
pub use presence::MAX_PRESENCE_GROUPS;
pub use types::{
    Command, Config, Contact, Counters, DownReason, Event, FrameError, NodeError, RngSeed, Transmit,
};

use crate::broadcast::topic::Topic;
use crate::crypto::{SIGNATURE_LEN, SignatureBytes, signing_input};
use crate::frame::{Frame, Goodbye, GoodbyeReason, Hello, PROTOCOL_VERSION, SessionMessage};
use crate::id::PeerId;
use crate::id::TopicId;
use crate::identity::Identity;
use crate::identity::record::{Addresses, PeerRecord, RecordError};
use crate::membership::hyparview::{self, HyParView, PeerInfo};
use crate::membership::swim::{self, Swim};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use bytes::Bytes;
use chacha20::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use records::{Offer, RecordCache};

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

/// A hearsay node: identity, records, connections, and (as later protocols land) membership,
/// failure detection, broadcast and discovery, all behind one sans-IO surface.
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
    refresh_at: Timestamp,
    housekeeping_at: Timestamp,
    links: BTreeMap<PeerId, Link>,
    /// Dials requested from the driver and not yet answered, with their deadlines.
    dialing: BTreeMap<PeerId, Timestamp>,
    records: RecordCache,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    hyparview: HyParView,
    swim: Swim,
    /// Subscribed topics (boxed: a topic's state is large, and a map node holds room for 11).
    topics: BTreeMap<TopicId, Box<Topic>>,
    /// What each connected peer said it subscribes to.
    neighbor_topics: BTreeMap<PeerId, BTreeSet<TopicId>>,
    /// In how many overlays each peer is a neighbour (SWIM probes it while any).
    member_refs: BTreeMap<PeerId, u32>,
    /// Invalid payloads per peer, and when the current count started.
    strikes: BTreeMap<PeerId, (u32, Timestamp)>,
    /// FIND walks handled.
    find_tokens: crate::time::TokenBucket,
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
        let mut remembered = Vec::new();
        for record in state.known_records.into_vec() {
            if record.peer_id == node.identity.peer_id() {
                continue;
            }
            let info = PeerInfo {
                peer: record.peer_id,
                addresses: record.addresses.clone(),
            };
            if node.accept_record(record, now).is_ok() {
                remembered.push(info);
            }
        }
        node.hyparview.remember(remembered, &mut node.rng);
        Ok(node)
    }

    fn build(
        config: Config,
        identity: Identity,
        rng_seed: RngSeed,
        now: Timestamp,
        boot_count: u64,
    ) -> Result<Node, NodeError> {
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
        let private = private::Private::new(&config.private);
        let foaf = crate::discovery::foaf::Foaf::new(config.foaf.clone())
            .map_err(|_| NodeError::InvalidConfig("foaf"))?;
        let mut node = Node {
            records: RecordCache::new(config.max_known_records),
            housekeeping_at: now + config.housekeeping_interval,
            config,
            identity,
            rng,
            boot_count,
            now,
            hello: Bytes::new(),
            refresh_at: Timestamp::MAX,
            record,
            links: BTreeMap::new(),
            dialing: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            hyparview,
            swim,
            topics: BTreeMap::new(),
            neighbor_topics: BTreeMap::new(),
            member_refs: BTreeMap::new(),
            strikes: BTreeMap::new(),
            private,
            foaf,
            presence: BTreeMap::new(),
            find_tokens,
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

    /// The driver has a connection to `peer` (it dialled, or `peer` dialled in), and the
    /// transport proved `peer`'s identity.
    pub fn handle_connected(&mut self, now: Timestamp, peer: PeerId) {
        let now = self.advance(now);
        self.dialing.remove(&peer);
        if self.links.contains_key(&peer) {
            return; // the driver reported the same connection twice: nothing changes
        }
        if peer == self.identity.peer_id() || self.links.len() >= self.config.max_connections {
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
            },
        );
        let hello = self.hello.clone();
        self.send(peer, hello);
    }

    /// The connection to `peer` is gone (closed by either side, or the dial failed).
    pub fn handle_disconnected(&mut self, now: Timestamp, peer: PeerId) {
        let now = self.advance(now);
        self.dialing.remove(&peer);
        self.links.remove(&peer);
        self.link_down(now, peer);
        self.drain_protocols(now);
    }

    /// The application asks for something.
    pub fn handle_command(&mut self, now: Timestamp, command: Command) -> Result<(), NodeError> {
        let now = self.advance(now);
        match command {
            Command::Join { contacts } => {
                let mut infos = Vec::new();
                for contact in contacts {
                    let addresses = BoundedVec::new(contact.addresses).map_err(|_| {
                        NodeError::TooManyAddresses {
                            max: crate::identity::record::MAX_ADDRESSES,
                        }
                    })?;
                    infos.push(PeerInfo {
                        peer: contact.peer,
                        addresses,
                    });
                }
                self.hyparview.join(now, infos);
                self.drain_protocols(now);
                Ok(())
            }
            Command::SetAddresses { addresses } => {
                let addresses =
                    Addresses::new(addresses).map_err(|_| NodeError::TooManyAddresses {
                        max: crate::identity::record::MAX_ADDRESSES,
                    })?;
                self.config.addresses = addresses.as_slice().to_vec();
                self.hyparview.set_addresses(addresses.clone());
                self.reissue_record(now, addresses)
            }
            Command::Subscribe { topic } => self.subscribe(now, topic),
            Command::Unsubscribe { topic } => self.unsubscribe(now, topic),
            Command::Publish { topic, payload } => self.publish(now, topic, &payload).map(|_| ()),
            Command::Leave => {
                self.presence_leave(now);
                let goodbye = Frame::Session(SessionMessage::Goodbye(Goodbye {
                    reason: GoodbyeReason::Leaving,
                }))
                .encode()
                .ok();
                self.hyparview.leave();
                for t in self.topics.values_mut() {
                    t.hyparview.leave();
                }
                let members: Vec<PeerId> = self.member_refs.keys().copied().collect();
                for peer in &members {
                    self.swim.remove_member(peer);
                }
                self.member_refs.clear();
                let links = core::mem::take(&mut self.links);
                for (peer, link) in links {
                    if let (true, Some(goodbye)) = (link.established, &goodbye) {
                        self.send(peer, goodbye.clone());
                    }
                    self.push_transmit(Transmit::Disconnect { peer });
                }
                self.dialing.clear();
                self.drain_protocols(now);
                Ok(())
            }
        }
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
        self.foaf.handle_timeout(now);
        self.presence_timeout(now);
        self.drain_protocols(now);
        self.discover_due(now);
        self.drain_protocols(now);
        self.close_unused_links(now);
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
        let links = self.links.values().filter(|l| !l.established).map(|l| {
            l.hello_deadline
                .min(l.next_hello_request().unwrap_or(Timestamp::MAX))
        });
        let dials = self.dialing.values().copied();
        let unused = self.unused_link_deadline();
        links
            .chain(dials)
            .chain([self.refresh_at, self.housekeeping_at])
            .chain(self.hyparview.poll_timeout())
            .chain(self.swim.poll_timeout())
            .chain(self.topics_poll_timeout())
            .chain(self.private.poll_timeout())
            .chain(self.foaf.poll_timeout())
            .chain(self.presence_poll_timeout())
            .chain(unused)
            .min()
    }

    // ---------------------------------------------------------------- state

    /// What must survive a restart; give it back to [`Node::restore`].
    pub fn persistent_state(&self) -> PersistentState {
        let known: Vec<PeerRecord> = self
            .records
            .sorted()
            .into_iter()
            .take(persist::MAX_PERSISTED_RECORDS)
            .cloned()
            .collect();
        PersistentState {
            owner: self.identity.peer_id(),
            boot_count: self.boot_count,
            saved_at: self.now,
            known_records: BoundedVec::new(known).unwrap_or_default(),
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

    fn on_frame(&mut self, now: Timestamp, from: PeerId, bytes: Bytes) -> Result<(), FrameError> {
        if !self.links.contains_key(&from) {
            return Err(FrameError::NotConnected);
        }
        let frame = match &self.config.interner {
            Some(interner) => Frame::decode_interned(&bytes, &**interner),
            None => Frame::decode_shared(&bytes),
        }
        .map_err(FrameError::Decode)?;
        if let Some(n) = self
            .counters
            .frames_in_by_kind
            .get_mut(frame.kind().number() as usize)
        {
            *n += 1;
        }
        let established = self.links.get(&from).is_some_and(|l| l.established);
        match frame {
            Frame::Session(SessionMessage::Hello(hello)) => self.on_hello(now, from, hello),
            Frame::Session(SessionMessage::Goodbye(goodbye)) => {
                self.on_goodbye(now, from, goodbye);
                Ok(())
            }
            Frame::Session(SessionMessage::HelloRequest) => {
                if let Some(link) = self.links.get_mut(&from)
                    && now >= link.hello_sent_at + HELLO_RESEND_INTERVAL
                {
                    link.hello_sent_at = now;
                    let hello = self.hello.clone();
                    self.send(from, hello);
                }
                Ok(())
            }
            Frame::Membership(_)
            | Frame::FailureDetection(_)
            | Frame::Topic(_)
            | Frame::Reconcile(_)
            | Frame::Private(_)
            | Frame::Discovery(_)
                if !established =>
            {
                // The peer is past the handshake, so its Hello was lost: ask for it again.
                if let Some(link) = self.links.get_mut(&from)
                    && link
                        .hello_requested_at
                        .is_none_or(|t| now >= t + HELLO_RESEND_INTERVAL)
                {
                    link.hello_requested_at = Some(now);
                    if let Ok(req) = Frame::Session(SessionMessage::HelloRequest).encode() {
                        self.send(from, req);
                    }
                }
                Err(FrameError::NotEstablished)
            }
            Frame::Membership(message) => {
                let addresses = self.records.get(&from).map(|r| r.addresses.clone());
                self.hyparview
                    .handle_message(now, from, addresses, message, &mut self.rng);
                Ok(())
            }
            Frame::FailureDetection(mut message) => {
                self.verify_alive_claims(&mut message);
                let members: Vec<PeerId> = self.member_refs.keys().copied().collect();
                self.swim.handle_message(now, from, message, &members);
                Ok(())
            }
            Frame::Topic(message) => {
                self.on_topic_frame(now, from, message);
                Ok(())
            }
            Frame::Reconcile(message) => {
                self.on_reconcile_frame(now, from, message);
                Ok(())
            }
            Frame::Discovery(message) => {
                self.on_discovery_frame(now, from, message);
                Ok(())
            }
            Frame::Private(message) => {
                self.on_private_frame(now, from, message);
                Ok(())
            }
        }
    }

    fn on_hello(&mut self, now: Timestamp, from: PeerId, hello: Hello) -> Result<(), FrameError> {
        if hello.version != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion {
                version: hello.version,
            });
        }
        if hello.record.peer_id != from {
            return Err(FrameError::PeerMismatch);
        }
        self.accept_record(hello.record, now)?;
        if let Some(link) = self.links.get_mut(&from)
            && !link.established
        {
            link.established = true;
            link.last_used = now;
            self.hyparview.on_link_up(now, from);
            self.topics_link_up(now, from);
            self.private_link_up(now, from);
        }
        Ok(())
    }

    fn on_goodbye(&mut self, now: Timestamp, from: PeerId, goodbye: Goodbye) {
        match goodbye.reason {
            GoodbyeReason::Leaving => self.peer_left(now, from),
            GoodbyeReason::Replaced => self.hyparview.handle_message(
                now,
                from,
                None,
                hyparview::Message::Disconnect,
                &mut self.rng,
            ),
        }
        self.links.remove(&from);
        self.link_down(now, from);
        self.push_transmit(Transmit::Disconnect { peer: from });
    }

    /// Drops ALIVE claims whose signature does not verify under the claimant's known key.
    fn verify_alive_claims(&mut self, message: &mut swim::Message) {
        let updates = match message {
            swim::Message::Ping { updates, .. } | swim::Message::Ack { updates, .. } => updates,
            _ => return,
        };
        let mut kept = Vec::with_capacity(updates.len());
        for g in core::mem::take(updates).into_vec() {
            if let swim::Update::Alive {
                peer,
                incarnation,
                signature,
            } = &g.update
            {
                let ok = self.records.get(peer).is_some_and(|r| {
                    let msg =
                        signing_input(swim::ALIVE_DOMAIN, &swim::alive_body(peer, *incarnation));
                    self.config.crypto.verify(&r.verifying_key, &msg, signature)
                });
                if !ok {
                    self.counters.rejected_alive += 1;
                    continue;
                }
            }
            kept.push(g);
        }
        *updates = BoundedVec::new(kept).unwrap_or_default();
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
                            self.hyparview.on_link_up(now, peer);
                        }
                    }
                    hyparview::Output::Disconnect { peer } => {
                        self.hyparview.on_link_down(now, peer, &mut self.rng);
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
                        }
                        if let Some(l) = self.links.get_mut(&peer) {
                            l.last_used = now;
                        }
                        self.push_event(Event::NeighborUp { peer });
                    }
                    hyparview::Output::NeighborDown { peer, reason } => {
                        self.member_down(&peer);
                        if let Some(l) = self.links.get_mut(&peer) {
                            l.last_used = now;
                        }
                        self.push_event(Event::NeighborDown { peer, reason });
                    }
                }
            }
            while let Some(out) = self.swim.poll() {
                progressed = true;
                match out {
                    swim::Output::Send { to, message } => {
                        self.send_frame(to, &Frame::FailureDetection(message))
                    }
                    swim::Output::Dead { peer } => self.peer_failed(now, peer),
                    swim::Output::Refute { incarnation } => {
                        let me = self.identity.peer_id();
                        let msg =
                            signing_input(swim::ALIVE_DOMAIN, &swim::alive_body(&me, incarnation));
                        if let Ok(sig) = self.identity.signer().sign(&msg) {
                            self.swim.publish_alive(incarnation, sig);
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
    }

    /// An overlay wants a connection to `peer`. Returns true if an established one exists
    /// (another overlay may have kept it up after this one let it go): the caller reports it
    /// up at once, since no dial will. Otherwise asks the driver to dial, unless a connection
    /// is being made; its handshake reaches every overlay.
    fn link_ready_or_dial(&mut self, now: Timestamp, peer: PeerId, addresses: Addresses) -> bool {
        if self.links.get(&peer).is_some_and(|l| l.established) {
            return true;
        }
        self.dial(now, peer, addresses);
        false
    }

    /// Asks the driver for a connection to `peer`, unless one exists or is being made.
    fn dial(&mut self, now: Timestamp, peer: PeerId, addresses: Addresses) {
        if !self.links.contains_key(&peer) && !self.dialing.contains_key(&peer) {
            self.dialing.insert(peer, now + self.config.dial_timeout);
            self.push_transmit(Transmit::Connect {
                peer,
                addresses: addresses.into_vec(),
            });
        }
    }

    /// Sends a protocol frame over an established link (dropped if there is none).
    fn send_frame(&mut self, to: PeerId, frame: &Frame) {
        if !self.links.get(&to).is_some_and(|l| l.established) {
            return;
        }
        if let Ok(bytes) = frame.encode() {
            self.send(to, bytes);
        }
    }

    fn unused_link_deadline(&self) -> Option<Timestamp> {
        self.links
            .iter()
            .filter(|(p, l)| l.established && !self.link_wanted(p))
            .map(|(_, l)| l.last_used + self.config.unused_link_timeout)
            .min()
    }

    /// Closes established connections no protocol has used for `unused_link_timeout`.
    fn close_unused_links(&mut self, now: Timestamp) {
        let idle: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(p, l)| {
                l.established
                    && !self.link_wanted(p)
                    && now >= l.last_used + self.config.unused_link_timeout
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in idle {
            self.links.remove(&peer);
            self.counters.unused_links_closed += 1;
            self.push_transmit(Transmit::Disconnect { peer });
            self.link_down(now, peer);
        }
        self.drain_protocols(now);
    }

    /// Verifies (once) and caches a record.
    /// Caches a record the caller already verified (a FOAF answer checked hop by hop, an
    /// announcement's author record checked by the validator): no second signature check.
    fn cache_verified_record(&mut self, record: PeerRecord) {
        if matches!(self.records.offer(&record), Offer::New) {
            let links = &self.links;
            self.records.insert(record, |p| links.contains_key(p));
        }
    }

    fn accept_record(&mut self, record: PeerRecord, now: Timestamp) -> Result<(), FrameError> {
        match self.records.offer(&record) {
            Offer::Stale => Err(FrameError::StaleRecord),
            Offer::Known if record.expires_at > now => Ok(()),
            Offer::Known => Err(FrameError::BadRecord(RecordError::Expired)),
            Offer::New => {
                self.counters.records_verified += 1;
                record
                    .verify(&*self.config.crypto, now)
                    .map_err(FrameError::BadRecord)?;
                let links = &self.links;
                self.records.insert(record, |p| links.contains_key(p));
                Ok(())
            }
        }
    }

    fn reissue_record(&mut self, now: Timestamp, addresses: Addresses) -> Result<(), NodeError> {
        let record = PeerRecord::issue(&self.identity, addresses, now, self.config.record_lifetime)
            .map_err(NodeError::Record)?;
        self.adopt_record(record)?;
        self.presence_record();
        let hello = self.hello.clone();
        let neighbors: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, l)| l.established)
            .map(|(p, _)| *p)
            .collect();
        for peer in neighbors {
            self.send(peer, hello.clone());
        }
        Ok(())
    }

    /// Makes `record` the node's own: caches its `Hello` and schedules its refresh at three
    /// quarters of its lifetime, less a random jitter of up to a sixteenth, so that nodes started
    /// together do not all re-sign at once.
    fn adopt_record(&mut self, mut record: PeerRecord) -> Result<(), NodeError> {
        let hello = Frame::Session(SessionMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            record: record.clone(),
        }))
        .encode()
        .map_err(|e| NodeError::Record(RecordError::Encode(e)))?;
        // The signature ends the Hello frame (the record's last field, in the frame's last
        // field): keep one copy of it, the frame's, instead of two.
        let tail = hello
            .len()
            .checked_sub(SIGNATURE_LEN)
            .map(|at| hello.slice(at..));
        if let Some(tail) = tail
            && tail == record.signature.as_bytes()
            && let Ok(signature) = SignatureBytes::new(tail)
        {
            record.signature = signature;
        }
        let lifetime = record.expires_at.saturating_since(record.issued_at);
        let jitter_span = (lifetime.as_micros() / 16).max(1);
        let jitter = TimeDelta::from_micros(self.rng.next_u64() % jitter_span);
        self.refresh_at = record
            .issued_at
            .saturating_add(TimeDelta::from_micros(lifetime.as_micros() / 4 * 3))
            .saturating_sub(jitter);
        self.record = record;
        self.hello = hello;
        Ok(())
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

/// A read-only view of a [`Node`] (see [`Node::inspect`]).
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    node: &'a Node,
}

impl<'a> NodeView<'a> {
    /// The node's id.
    pub fn peer_id(&self) -> PeerId {
        self.node.identity.peer_id()
    }

    /// The node's current signed record.
    pub fn record(&self) -> &'a PeerRecord {
        &self.node.record
    }

    /// The active view (HyParView): this node's neighbours, in id order.
    pub fn neighbors(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.hyparview.active().copied()
    }

    /// The passive view, in id order.
    pub fn passive(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.hyparview.passive().copied()
    }

    /// Connections whose handshake completed (neighbours and short-lived ones), in id order.
    pub fn connections(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node
            .links
            .iter()
            .filter(|(_, l)| l.established)
            .map(|(p, _)| *p)
    }

    /// Peers the failure detector currently suspects.
    pub fn suspects(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.swim.suspects().copied()
    }

    /// Lifeguard's local health multiplier (0 = healthy).
    pub fn health(&self) -> u32 {
        self.node.swim.health()
    }

    /// This node's SWIM incarnation.
    pub fn incarnation(&self) -> u64 {
        self.node.swim.incarnation()
    }

    /// HyParView's running totals.
    pub fn membership_counters(&self) -> &'a hyparview::Counters {
        self.node.hyparview.counters()
    }

    /// SWIM's running totals.
    pub fn failure_detector_counters(&self) -> &'a swim::Counters {
        self.node.swim.counters()
    }

    /// Connections still waiting for the peer's `Hello`.
    pub fn pending_handshakes(&self) -> usize {
        self.node.links.values().filter(|l| !l.established).count()
    }

    /// Dials requested and not yet answered.
    pub fn pending_dials(&self) -> usize {
        self.node.dialing.len()
    }

    /// The verified record held for `peer`, if any.
    pub fn known_record(&self, peer: &PeerId) -> Option<&'a PeerRecord> {
        self.node.records.get(peer)
    }

    /// How many verified records are held.
    pub fn known_records(&self) -> usize {
        self.node.records.len()
    }

    /// Running totals.
    pub fn counters(&self) -> &'a Counters {
        &self.node.counters
    }

    /// How many times this identity has started (1 for a fresh node).
    pub fn boot_count(&self) -> u64 {
        self.node.boot_count
    }

    /// The latest `now` the node has seen.
    pub fn now(&self) -> Timestamp {
        self.node.now
    }

    /// Subscribed topics, in id order.
    pub fn subscriptions(&self) -> impl Iterator<Item = TopicId> + 'a {
        self.node.topics.keys().copied()
    }

    /// Whether the node subscribes to `topic`.
    pub fn is_subscribed(&self, topic: &TopicId) -> bool {
        self.node.topics.contains_key(topic)
    }

    /// The active view of `topic`'s overlay (empty if not subscribed).
    pub fn topic_neighbors(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.hyparview.active().copied().collect())
            .unwrap_or_default()
    }

    /// Plumtree's eager peers in `topic` (empty if not subscribed).
    pub fn eager_peers(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.plumtree.eager_peers().copied().collect())
            .unwrap_or_default()
    }

    /// Plumtree's lazy peers in `topic` (empty if not subscribed).
    pub fn lazy_peers(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.plumtree.lazy_peers().copied().collect())
            .unwrap_or_default()
    }

    /// A retained message of `topic` encoded as [`Event::Archived`] carries it (for
    /// [`Node::restore_message`]), with when it leaves the retention window: how a driver
    /// makes one message durable, such as the node's own right after publishing it.
    pub fn retained_record(
        &self,
        topic: &TopicId,
        id: &crate::id::MessageId,
    ) -> Option<(alloc::vec::Vec<u8>, Timestamp)> {
        let (payload, expires) = self.node.topics.get(topic)?.plumtree.retained_payload(id)?;
        Some((crate::wire::codec::to_vec(payload).ok()?, expires))
    }

    /// How many messages of `topic` are retained.
    pub fn retained(&self, topic: &TopicId) -> usize {
        self.node
            .topics
            .get(topic)
            .map_or(0, |t| t.plumtree.retained_ids().count())
    }

    /// Plumtree's running totals for `topic`.
    pub fn broadcast_counters(
        &self,
        topic: &TopicId,
    ) -> Option<&'a crate::broadcast::plumtree::Counters> {
        self.node.topics.get(topic).map(|t| t.plumtree.counters())
    }

    /// Presence counters of `group` (beacons accepted and refused by cause).
    pub fn presence_counters(
        &self,
        group: &TopicId,
    ) -> Option<crate::discovery::presence::Counters> {
        self.node.presence.get(group).map(|p| p.counters())
    }

    /// Friends-of-friends discovery counters (SPEC.md §18).
    pub fn discovery_counters(&self) -> &'a crate::discovery::foaf::Counters {
        self.node.foaf.counters()
    }

    /// Encrypted-message counters (SPEC.md §17.10).
    pub fn private_counters(&self) -> &'a PrivateCounters {
        &self.node.private.counters
    }

    /// Access-record store counters (records stored, replaced, refused by reason).
    pub fn access_counters(&self) -> crate::privacy::access::Counters {
        self.node.private.access.counters()
    }

    /// Fetch refusals this node made as a server, by reason.
    pub fn fetch_guard_counters(&self) -> &'a crate::privacy::fetch_guard::Counters {
        self.node.private.guard_counters()
    }

    /// The content (a signed message of kind `Sealed`) this node serves for an encrypted
    /// message it authored.
    pub fn authored(
        &self,
        id: &crate::id::MessageId,
    ) -> Option<&'a crate::broadcast::message::SignedMessage> {
        self.node.private.authored_content(id)
    }

    /// The latest access record held for `id`.
    pub fn access_record(
        &self,
        id: &crate::id::MessageId,
    ) -> Option<&'a crate::privacy::access::AccessRecord> {
        self.node.private.access.get(id)
    }

    /// Anti-entropy's running totals for `topic`.
    pub fn reconcile_counters(&self, topic: &TopicId) -> Option<&'a crate::antientropy::Counters> {
        self.node.topics.get(topic).map(|t| t.reconciler.counters())
    }

    /// The topic overlay's HyParView totals for `topic`.
    pub fn topic_membership_counters(&self, topic: &TopicId) -> Option<&'a hyparview::Counters> {
        self.node.topics.get(topic).map(|t| t.hyparview.counters())
    }
}

#[cfg(all(test, feature = "insecure-test-crypto"))]
mod bounds_tests {
    //! Bounds of the Node's own tables that no public API shows (SPEC.md §8.6, issue G): what a
    //! peer puts there goes with its connection, its window, or its place in an overlay.
    use super::*;
    use crate::broadcast::topic::TopicMessage;
    use crate::crypto::InsecureTestProvider;
    use crate::identity::IdentitySeeds;
    use alloc::sync::Arc;

    const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn identity(n: u32) -> Identity {
        let mut seeds = [0x6c; 96];
        seeds[..4].copy_from_slice(&n.to_le_bytes());
        Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::from_bytes(&seeds))
    }

    fn node() -> Node {
        let config = Config {
            crypto: Arc::new(InsecureTestProvider),
            ..Config::default()
        };
        Node::new(config, identity(0), 1u64, T0).unwrap()
    }

    fn send(node: &mut Node, now: Timestamp, h: &Identity, frame: Frame) {
        node.handle_frame(now, h.peer_id(), frame.encode().unwrap())
            .unwrap();
    }

    fn connect(node: &mut Node, now: Timestamp, h: &Identity) {
        node.handle_connected(now, h.peer_id());
        let record =
            PeerRecord::issue(h, Addresses::default(), now, TimeDelta::from_secs(3600)).unwrap();
        let hello = Frame::Session(SessionMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            record,
        }));
        send(node, now, h, hello);
    }

    fn drain(node: &mut Node) {
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }

    /// What each connected peer subscribes to is kept per connection (at most
    /// `MAX_SUBSCRIPTIONS` topics each) and forgotten with the connection.
    #[test]
    fn neighbour_topics_go_with_the_connection() {
        let mut n = node();
        let topics: Vec<TopicId> = (0..64u8).map(|k| TopicId::from_bytes([k; 32])).collect();
        for i in 1..=300 {
            let h = identity(i);
            connect(&mut n, T0, &h);
            let topics = BoundedVec::new(topics.clone()).unwrap();
            send(
                &mut n,
                T0,
                &h,
                Frame::Topic(TopicMessage::Subscriptions { topics }),
            );
            assert_eq!(n.neighbor_topics.len(), 1);
            n.handle_disconnected(T0, h.peer_id());
            drain(&mut n);
        }
        assert!(n.neighbor_topics.is_empty());
    }

    /// Overlay references (which peers SWIM probes) are at most the overlays' active views,
    /// and go when the peers leave them.
    #[test]
    fn member_refs_follow_the_active_views() {
        let mut n = node();
        let topic = TopicId::from_bytes([9; 32]);
        n.subscribe(T0, topic).unwrap();
        let peers: Vec<Identity> = (1..=20).map(identity).collect();
        for h in &peers {
            connect(&mut n, T0, h);
            send(&mut n, T0, h, Frame::Membership(hyparview::Message::Join));
            let join = TopicMessage::Membership {
                topic,
                message: hyparview::Message::Join,
            };
            send(&mut n, T0, h, Frame::Topic(join));
            assert!(n.member_refs.len() <= 5 + 7);
        }
        assert!(n.member_refs.len() >= 7);
        for h in &peers {
            n.handle_disconnected(T0, h.peer_id());
        }
        drain(&mut n);
        assert!(n.member_refs.is_empty());
        assert!(
            n.dialing.len() <= 2 * 8,
            "repair dials: one max_pending per overlay"
        );
    }

    /// A strike entry lives for its 60 s window at most.
    #[test]
    fn strike_entries_go_when_their_window_ends() {
        let mut n = node();
        let topic = TopicId::from_bytes([9; 32]);
        n.subscribe(T0, topic).unwrap();
        for i in 1..=10 {
            let h = identity(i);
            connect(&mut n, T0, &h);
            let mut m =
                crate::broadcast::message::SignedMessage::publish(&h, topic, 0, T0, b"forged")
                    .unwrap();
            m.signature = crate::crypto::SignatureBytes::from_array([1; 3309]);
            let payload = crate::broadcast::plumtree::Payload {
                message: m,
                author_key: h.verifying_key().clone(),
                hops: 1,
            };
            let repair = TopicMessage::Broadcast {
                topic,
                message: crate::broadcast::plumtree::Message::Repair(payload),
            };
            send(&mut n, T0, &h, Frame::Topic(repair));
            n.handle_disconnected(T0, h.peer_id());
        }
        assert_eq!(n.strikes.len(), 10);
        n.handle_timeout(T0 + TimeDelta::from_secs(59));
        assert_eq!(n.strikes.len(), 10);
        n.handle_timeout(T0 + TimeDelta::from_secs(60));
        assert!(n.strikes.is_empty());
    }
}
