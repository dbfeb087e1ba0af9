//! Bounds (issue G): every queue, cache and map the protocol core keeps across calls has a
//! documented bound (SPEC.md §8.6, the "Bounds" table), and this file has one test per bound.
//! Each test fills the collection past its bound the way a remote peer (or, for local-only
//! collections, the application) would — frames into `Node::handle_frame`, or messages into a
//! state machine's `handle_*` methods — and checks that it stays at the bound and that the
//! documented thing happens there (which entry is evicted, what is refused, which counter
//! moves). Sizes are observed through the public inspection APIs (`Node::inspect`, each state
//! machine's accessors and counters).
//!
//! Where the default bound is large and filling it costs more than a few thousand frames, the
//! test sets a smaller value of the same parameter; `config_defaults_are_the_documented_bounds`
//! checks the defaults themselves.
//!
//! Needs the `insecure-test-crypto` feature (fast stand-ins for ML-DSA and ML-KEM):
//! `cargo test -p hearsay-proto --features insecure-test-crypto --test bounds`.
#![cfg(feature = "insecure-test-crypto")]

use bytes::Bytes;
use chacha20::ChaCha8Rng;
use hearsay_proto::broadcast::message::{MessageKind, SignedMessage};
use hearsay_proto::broadcast::plumtree::{self, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::crypto::{
    CryptoProvider, EncapsulationKeyBytes, InsecureTestProvider, SIG_VERIFYING_KEY_LEN,
    SIGNATURE_LEN, SignatureBytes, VerifyingKeyBytes,
};
use hearsay_proto::frame::{Hello, PROTOCOL_VERSION, SessionMessage};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::membership::hyparview::{Message as Hpv, PeerInfo};
use hearsay_proto::membership::swim::{Gossip, Message as Swim, Update};
use hearsay_proto::node::{Counters, NodeError};
use hearsay_proto::wire::{BoundedBytes, BoundedVec};
use hearsay_proto::{
    Config, DownReason, Event, Frame, Identity, IdentitySeeds, MessageId, Node, PeerId, PeerRecord,
    TimeDelta, Timestamp, TopicId, Transmit,
};
use rand_core::SeedableRng;
use std::collections::BTreeSet;
use std::sync::Arc;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);
const HOUR: TimeDelta = TimeDelta::from_secs(3600);

// ------------------------------------------------------------------ helpers

fn provider() -> Arc<dyn CryptoProvider> {
    Arc::new(InsecureTestProvider)
}

fn config() -> Config {
    Config {
        crypto: provider(),
        ..Config::default()
    }
}

/// A deterministic identity (insecure provider): `n` picks it.
fn identity(n: u32) -> Identity {
    let mut seeds = [0x5b; 96];
    seeds[..4].copy_from_slice(&n.to_le_bytes());
    Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::from_bytes(&seeds))
}

/// A peer id nobody holds a key for (fake entries a hostile peer advertises).
fn fake_peer(n: u32) -> PeerId {
    let mut b = [0xfa; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    PeerId::from_bytes(b)
}

fn fake_id(n: u32) -> MessageId {
    let mut b = [0x1d; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    MessageId::from_bytes(b)
}

fn record(who: &Identity, now: Timestamp, lifetime: TimeDelta) -> PeerRecord {
    PeerRecord::issue(who, Addresses::default(), now, lifetime).expect("record")
}

fn encode(frame: Frame) -> Bytes {
    frame.encode().expect("frame fits")
}

fn rng(seed: u8) -> ChaCha8Rng {
    ChaCha8Rng::from_seed([seed; 32])
}

fn topic() -> TopicId {
    TopicId::from_name("bounds")
}

fn broadcast(topic: TopicId, message: plumtree::Message) -> Frame {
    Frame::Topic(TopicMessage::Broadcast { topic, message })
}

/// A signed application message by `author` (valid under the insecure provider).
fn signed(
    author: &Identity,
    topic: TopicId,
    sequence: u64,
    at: Timestamp,
    len: usize,
) -> SignedMessage {
    SignedMessage::publish(author, topic, sequence, at, &vec![7; len]).expect("signs")
}

/// A message nobody signed: for state machines driven with an accept-all validator.
fn unsigned(topic: TopicId, sequence: u64, at: Timestamp, len: usize) -> SignedMessage {
    SignedMessage {
        author: fake_peer(0),
        topic,
        sequence,
        timestamp: at,
        payload: BoundedBytes::new(vec![1u8; len]).expect("payload fits"),
        signature: SignatureBytes::from_array([0; SIGNATURE_LEN]),
        kind: MessageKind::Application,
    }
}

fn payload_of(message: SignedMessage, author_key: VerifyingKeyBytes) -> Payload {
    Payload {
        message,
        author_key,
        hops: 1,
    }
}

fn zero_key() -> VerifyingKeyBytes {
    VerifyingKeyBytes::from_array([0; SIG_VERIFYING_KEY_LEN])
}

/// One node under test, and the hostile peers that talk to it.
struct Victim {
    node: Node,
    now: Timestamp,
}

impl Victim {
    fn new(config: Config) -> Self {
        let node = Node::new(config, identity(0), 7u64, T0).expect("node");
        Victim { node, now: T0 }
    }

    fn counters(&self) -> &Counters {
        self.node.inspect().counters()
    }

    /// `h` connects and completes the handshake with a record valid for `lifetime`.
    fn connect_for(&mut self, h: &Identity, lifetime: TimeDelta) {
        self.node.handle_connected(self.now, h.peer_id());
        let hello = Frame::Session(SessionMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            record: record(h, self.now, lifetime),
        }));
        self.send(h, hello).expect("hello accepted");
    }

    fn connect(&mut self, h: &Identity) {
        self.connect_for(h, HOUR);
    }

    fn disconnect(&mut self, h: &Identity) {
        self.node.handle_disconnected(self.now, h.peer_id());
    }

    fn send(&mut self, h: &Identity, frame: Frame) -> Result<(), hearsay_proto::node::FrameError> {
        self.node.handle_frame(self.now, h.peer_id(), encode(frame))
    }

    /// `h` joins the node-level overlay (it becomes a neighbour).
    fn join(&mut self, h: &Identity) {
        self.send(h, Frame::Membership(Hpv::Join)).expect("join");
    }

    /// `h` joins `topic`'s overlay (it becomes a topic neighbour, an eager Plumtree peer).
    fn topic_join(&mut self, h: &Identity, topic: TopicId) {
        let join = Frame::Topic(TopicMessage::Membership {
            topic,
            message: Hpv::Join,
        });
        self.send(h, join).expect("topic join");
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.node.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.node.poll_event()).collect()
    }

    fn drain(&mut self) {
        self.transmits();
        self.events();
    }

    /// Frames sent to `to` (decoded), leaving the other outputs aside.
    fn frames_to(&mut self, to: PeerId) -> Vec<Frame> {
        self.transmits()
            .into_iter()
            .filter_map(|t| match t {
                Transmit::Send { to: p, frame } if p == to => Some(Frame::decode(&frame).ok()?),
                _ => None,
            })
            .collect()
    }

    /// Advances the clock by `by`, running every timer that falls due on the way.
    fn advance(&mut self, by: TimeDelta) {
        let target = self.now + by;
        while let Some(due) = self.node.poll_timeout().filter(|t| *t <= target) {
            self.now = self.now.max(due);
            self.node.handle_timeout(self.now);
        }
        self.now = target;
        self.node.handle_timeout(self.now);
    }
}

// ------------------------------------------------------------------ defaults

/// The defaults are the numbers SPEC.md states for each bound.
#[test]
fn config_defaults_are_the_documented_bounds() {
    let c = Config::default();
    assert_eq!(c.max_connections, 128);
    assert_eq!(c.max_known_records, 256);
    assert_eq!(c.max_queued_transmits, 4096);
    assert_eq!(c.max_queued_events, 1024);
    assert_eq!(c.dial_timeout, TimeDelta::from_secs(15));
    assert_eq!(c.hello_timeout, TimeDelta::from_secs(10));
    let h = &c.hyparview;
    assert_eq!((h.active_view, h.passive_view), (5, 30));
    assert_eq!((h.max_pending, h.max_lost), (8, 16));
    assert_eq!(h.retry_horizon, TimeDelta::from_secs(600));
    let t = &c.topics.hyparview;
    assert_eq!((t.active_view, t.passive_view, t.max_pending), (7, 28, 8));
    assert_eq!(c.swim.max_relays, 64);
    let p = &c.topics.plumtree;
    assert_eq!((p.cache_messages, p.cache_bytes), (4096, 64 << 20));
    assert_eq!((p.seen_capacity, p.rejected_capacity), (65_536, 4096));
    assert_eq!(
        (p.max_missing, p.max_announcers, p.max_pending_ihave),
        (1024, 4, 1024)
    );
    let f = &c.foaf;
    assert_eq!(
        (f.dedup_capacity, f.max_pending, f.max_own_queries),
        (1024, 256, 16)
    );
    assert_eq!((f.max_rate_buckets, f.max_queued), (128, 1024));
    assert_eq!((f.max_records_per_query, f.max_answers_per_query), (32, 32));
    let v = &c.private;
    assert_eq!((v.max_authored, v.max_access_records), (256, 4096));
    assert_eq!((v.max_fetches, v.max_challenges), (64, 1024));
    assert_eq!((v.max_delivered, v.max_group_keys), (4096, 64));
    let s = &c.presence;
    assert_eq!((s.max_members_tracked, s.max_queued_events), (1024, 1024));
    assert_eq!(hearsay_proto::broadcast::topic::MAX_SUBSCRIPTIONS, 64);
    assert_eq!(hearsay_proto::node::MAX_PRESENCE_GROUPS, 16);
}

// ------------------------------------------------------------------ Node (node/mod.rs)

/// Connections: at `max_connections` a new one is refused at once (Disconnect, counted); a
/// connection still waiting for its Hello is closed after `hello_timeout`.
#[test]
fn node_links_stop_at_max_connections() {
    let mut v = Victim::new(config());
    for n in 1..=128 {
        v.node.handle_connected(v.now, fake_peer(n));
    }
    v.drain();
    assert_eq!(v.node.inspect().pending_handshakes(), 128);
    v.node.handle_connected(v.now, fake_peer(129));
    assert_eq!(
        v.transmits(),
        vec![Transmit::Disconnect {
            peer: fake_peer(129)
        }]
    );
    assert_eq!(v.counters().connections_refused, 1);
    assert_eq!(v.node.inspect().pending_handshakes(), 128);
    // Nobody sent a Hello: every half-open connection is closed at the deadline.
    v.advance(TimeDelta::from_secs(10));
    assert_eq!(v.node.inspect().pending_handshakes(), 0);
    assert_eq!(v.counters().hello_timeouts, 128);
}

/// Cached records: at `max_known_records` the record expiring first among peers without a
/// connection is evicted (not the oldest inserted).
#[test]
fn node_records_evict_the_record_expiring_first() {
    let mut v = Victim::new(config());
    // Records inserted later expire sooner: the eviction order is by expiry.
    let peers: Vec<Identity> = (1..=257).map(identity).collect();
    for (i, h) in peers.iter().take(256).enumerate() {
        v.connect_for(h, TimeDelta::from_secs(7200 - i as u64));
        v.disconnect(h);
        v.drain();
    }
    assert_eq!(v.node.inspect().known_records(), 256);
    v.connect_for(&peers[256], TimeDelta::from_secs(7200));
    assert_eq!(v.node.inspect().known_records(), 256);
    let view = v.node.inspect();
    assert!(view.known_record(&peers[256].peer_id()).is_some());
    assert!(
        view.known_record(&peers[0].peer_id()).is_some(),
        "oldest kept"
    );
    assert!(
        view.known_record(&peers[255].peer_id()).is_none(),
        "the record expiring first is evicted"
    );
}

/// Cached records: records of connected peers are never evicted; when every cached record is
/// protected, a new one is not kept (the handshake still completes).
#[test]
fn node_records_keep_connected_peers() {
    let mut v = Victim::new(Config {
        max_known_records: 4,
        ..config()
    });
    let peers: Vec<Identity> = (1..=5).map(identity).collect();
    for h in &peers {
        v.connect(h);
    }
    let view = v.node.inspect();
    assert_eq!(view.known_records(), 4);
    assert!(view.known_record(&peers[4].peer_id()).is_none());
    assert_eq!(view.connections().count(), 5);
}

/// Outputs: at `max_queued_transmits` new outputs are dropped (the queue keeps the oldest) and
/// counted in `transmits_dropped`.
#[test]
fn node_transmits_drop_the_newest_at_max_queued_transmits() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.drain();
    // Every PING is answered with an ACK; the driver never drains.
    for seq in 0..4100u64 {
        let ping = Swim::Ping {
            seq,
            want_view: false,
            updates: BoundedVec::default(),
        };
        v.send(&h, Frame::FailureDetection(ping)).expect("ping");
    }
    assert_eq!(v.counters().transmits_dropped, 4);
    let acks: Vec<u64> = v
        .frames_to(h.peer_id())
        .into_iter()
        .map(|f| match f {
            Frame::FailureDetection(Swim::Ack { seq, .. }) => seq,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        acks,
        (0..4096).collect::<Vec<u64>>(),
        "the newest are dropped"
    );
}

/// A subscribed victim with one hostile topic neighbour (an eager Plumtree peer).
fn topic_victim(config: Config) -> (Victim, Identity, TopicId) {
    let mut v = Victim::new(config);
    let topic = topic();
    v.node.subscribe(v.now, topic).expect("subscribe");
    let h = identity(1);
    v.connect(&h);
    v.topic_join(&h, topic);
    v.drain();
    assert_eq!(v.node.inspect().topic_neighbors(&topic), vec![h.peer_id()]);
    (v, h, topic)
}

/// Events: at `max_queued_events` the oldest event is dropped and counted in `events_dropped`.
#[test]
fn node_events_drop_the_oldest_at_max_queued_events() {
    let (mut v, h, topic) = topic_victim(config());
    for seq in 0..1030u64 {
        let m = signed(&h, topic, seq, v.now, 8);
        let p = payload_of(m, h.verifying_key().clone());
        v.send(&h, broadcast(topic, plumtree::Message::Gossip(p)))
            .expect("gossip");
    }
    assert_eq!(v.counters().events_dropped, 6);
    let delivered: Vec<u64> = v
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Delivered { sequence, .. } => Some(sequence),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, (6..1030).collect::<Vec<u64>>(), "the oldest go");
}

/// A forged payload of `sender` (bad signature), pushed as a REPAIR: accepted from any
/// connected member, so any connected peer can earn a strike with it.
fn forged_repair(sender: &Identity, topic: TopicId, sequence: u64, at: Timestamp) -> Frame {
    let mut m = signed(sender, topic, sequence, at, 4);
    m.signature = SignatureBytes::from_array([0x55; SIGNATURE_LEN]);
    broadcast(
        topic,
        plumtree::Message::Repair(payload_of(m, sender.verifying_key().clone())),
    )
}

/// Runs the strike table scenario: peer A strikes twice, then `others` peers strike once each
/// and leave, then A strikes a third time. Returns `peers_penalised`.
fn strike_scenario(others: u32) -> u64 {
    let (mut v, _, topic) = topic_victim(config());
    let a = identity(5000);
    v.connect(&a);
    for seq in 0..2 {
        v.send(&a, forged_repair(&a, topic, seq, v.now))
            .expect("frame");
    }
    v.disconnect(&a);
    for n in 0..others {
        v.now += TimeDelta::from_micros(100);
        let h = identity(10_000 + n);
        v.connect(&h);
        v.send(&h, forged_repair(&h, topic, 0, v.now))
            .expect("frame");
        v.disconnect(&h);
        v.drain();
    }
    v.now += TimeDelta::from_micros(100);
    v.connect(&a);
    v.send(&a, forged_repair(&a, topic, 2, v.now))
        .expect("frame");
    assert_eq!(v.counters().invalid_payloads, u64::from(others) + 3);
    v.counters().peers_penalised
}

/// Strikes: at most 1,024 peers are remembered; at the bound the peer whose window started
/// first is forgotten (its count starts again), so a peer that struck once and left costs no
/// memory for ever.
#[test]
fn node_strikes_forget_the_earliest_window_at_1024_peers() {
    // A and 1,023 others fill the table exactly: A's third strike closes its connection.
    assert_eq!(strike_scenario(1023), 1);
    // One more peer: A, whose window started first, is forgotten, and its count restarts.
    assert_eq!(strike_scenario(1024), 0);
}

/// Subscriptions are local: at `MAX_SUBSCRIPTIONS` a new one is refused.
#[test]
fn node_topics_stop_at_max_subscriptions() {
    let mut v = Victim::new(config());
    for n in 0..64 {
        let t = TopicId::from_name(&format!("t{n}"));
        v.node.subscribe(v.now, t).expect("room");
    }
    let more = v.node.subscribe(v.now, TopicId::from_name("one too many"));
    assert_eq!(more, Err(NodeError::TooManySubscriptions { max: 64 }));
    assert_eq!(v.node.inspect().subscriptions().count(), 64);
}

/// Presence groups are local: at `MAX_PRESENCE_GROUPS` a new one is refused.
#[test]
fn node_presence_groups_stop_at_16() {
    let mut v = Victim::new(config());
    for n in 0..16u8 {
        v.node.presence_start(v.now, [n; 32]).expect("room");
    }
    let more = v.node.presence_start(v.now, [99; 32]);
    assert_eq!(more, Err(NodeError::TooManyGroups { max: 16 }));
    // Starting a group already held needs no room.
    v.node.presence_start(v.now, [3; 32]).expect("held");
}

// ------------------------------------------------------------------ HyParView, through the Node

/// Active view: a JOIN beyond `active_view` evicts a random neighbour (DISCONNECT,
/// `NeighborDown { Replaced }`).
#[test]
fn hyparview_active_view_evicts_at_active_view() {
    let mut v = Victim::new(config());
    let peers: Vec<Identity> = (1..=8).map(identity).collect();
    for h in &peers {
        v.connect(h);
        v.join(h);
    }
    assert_eq!(v.node.inspect().neighbors().count(), 5);
    let replaced = v
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::NeighborDown {
                    reason: DownReason::Replaced,
                    ..
                }
            )
        })
        .count();
    assert_eq!(replaced, 3);
    // The evicted ones went to the passive view, not away.
    assert_eq!(v.node.inspect().passive().count(), 3);
}

fn info(peer: PeerId) -> PeerInfo {
    PeerInfo {
        peer,
        addresses: Addresses::default(),
    }
}

/// Passive view: SHUFFLEs carrying more peers than `passive_view` leave it at `passive_view`
/// (entries just sent in the reply go first, then random ones).
#[test]
fn hyparview_passive_view_stays_at_passive_view() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.join(&h);
    for batch in 0..3u32 {
        let nodes = (0..32).map(|i| info(fake_peer(batch * 32 + i))).collect();
        let shuffle = Hpv::Shuffle {
            origin: info(h.peer_id()),
            ttl: 0,
            nodes: BoundedVec::new(nodes).expect("32 fit"),
        };
        v.send(&h, Frame::Membership(shuffle)).expect("shuffle");
        assert_eq!(v.node.inspect().passive().count(), 30, "batch {batch}");
    }
    // The last batch did get in.
    let last: BTreeSet<PeerId> = (64..96).map(fake_peer).collect();
    assert!(v.node.inspect().passive().any(|p| last.contains(&p)));
}

/// Connection attempts: at most `max_pending` in flight; beyond it an attempt is not started
/// (`attempts_dropped`). Dials the node asks for are therefore bounded too, and forgotten once
/// the attempt times out.
#[test]
fn hyparview_attempts_stop_at_max_pending() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.drain();
    // FORWARD_JOINs ending here ask the victim to dial each joiner.
    for n in 0..20 {
        let fj = Hpv::ForwardJoin {
            node: info(fake_peer(n)),
            ttl: 0,
        };
        v.send(&h, Frame::Membership(fj)).expect("forward join");
    }
    let dials = v
        .transmits()
        .into_iter()
        .filter(|t| matches!(t, Transmit::Connect { .. }))
        .count();
    assert_eq!(dials, 8);
    assert_eq!(v.node.inspect().pending_dials(), 8);
    assert_eq!(v.node.inspect().membership_counters().attempts_dropped, 12);
    v.advance(TimeDelta::from_secs(15));
    assert_eq!(v.node.inspect().pending_dials(), 0);
}

/// Lost peers (remembered for re-merge retries): at most `max_lost`; at the bound the peer lost
/// longest ago is forgotten. Driven on the state machine: the Node does not expose the list.
#[test]
fn hyparview_lost_peers_stop_at_max_lost() {
    use hearsay_proto::membership::hyparview::{self, HyParView};
    let mut r = rng(1);
    let mut hv = HyParView::new(
        hyparview::Config::default(),
        fake_peer(u32::MAX),
        Addresses::default(),
        T0,
        &mut r,
    );
    let mut now = T0;
    for n in 0..20 {
        let p = fake_peer(n);
        now += TimeDelta::from_millis(1);
        hv.on_link_up(now, p);
        hv.handle_message(now, p, Some(Addresses::default()), Hpv::Join, &mut r);
        assert!(hv.is_active(&p));
        hv.on_link_down(now, p, &mut r);
        while hv.poll().is_some() {}
    }
    let lost: Vec<PeerId> = hv.lost().copied().collect();
    let expected: BTreeSet<PeerId> = (4..20).map(fake_peer).collect();
    assert_eq!(lost.len(), 16);
    assert_eq!(lost.into_iter().collect::<BTreeSet<_>>(), expected);
}

// ------------------------------------------------------------------ SWIM, through the Node

fn suspect(peer: PeerId, hops: u8) -> Gossip {
    Gossip {
        update: Update::Suspect {
            peer,
            incarnation: 0,
        },
        hops,
    }
}

/// An ACK that matches no probe, carrying `updates`: its updates are absorbed all the same.
fn ack_with(updates: Vec<Gossip>) -> Frame {
    Frame::FailureDetection(Swim::Ack {
        seq: 0,
        view: None,
        updates: BoundedVec::new(updates).expect("≤ 8 updates"),
    })
}

fn ping(seq: u64) -> Frame {
    Frame::FailureDetection(Swim::Ping {
        seq,
        want_view: false,
        updates: BoundedVec::default(),
    })
}

/// Peers named by the updates piggybacked on the ACKs in `frames`.
fn piggybacked(frames: Vec<Frame>) -> Vec<PeerId> {
    frames
        .into_iter()
        .flat_map(|f| match f {
            Frame::FailureDetection(Swim::Ack { updates, .. }) => updates.into_vec(),
            _ => Vec::new(),
        })
        .map(|g| match g.update {
            Update::Suspect { peer, .. } => peer,
            other => panic!("unexpected update {other:?}"),
        })
        .collect()
}

/// Relayed PING_REQs: at most `max_relays` at once; beyond it the requester gets a NACK at
/// once (`relays_refused`). Relays end at the probe timeout (a NACK each).
#[test]
fn swim_relays_stop_at_max_relays() {
    let mut v = Victim::new(config());
    let target = identity(1);
    let requester = identity(2);
    v.connect(&target);
    v.join(&target); // a neighbour, hence a SWIM member
    v.connect(&requester);
    v.drain();
    for seq in 0..70 {
        let req = Swim::PingReq {
            seq,
            target: target.peer_id(),
        };
        v.send(&requester, Frame::FailureDetection(req))
            .expect("ping req");
    }
    let nacks = |frames: Vec<Frame>| {
        frames
            .into_iter()
            .filter(|f| matches!(f, Frame::FailureDetection(Swim::Nack { .. })))
            .count()
    };
    let sent = v.transmits();
    let to = |peer: PeerId| -> Vec<Frame> {
        sent.iter()
            .filter_map(|t| match t {
                Transmit::Send { to, frame } if *to == peer => Frame::decode(frame).ok(),
                _ => None,
            })
            .collect()
    };
    assert_eq!(nacks(to(requester.peer_id())), 6);
    let pings = to(target.peer_id())
        .into_iter()
        .filter(|f| matches!(f, Frame::FailureDetection(Swim::Ping { .. })))
        .count();
    assert_eq!(pings, 64);
    assert_eq!(
        v.node.inspect().failure_detector_counters().relays_refused,
        6
    );
    // The target never answers: at the probe timeout every relay ends with a NACK, and the
    // table has room again.
    v.advance(TimeDelta::from_millis(400));
    assert_eq!(nacks(v.frames_to(requester.peer_id())), 64);
    let req = Swim::PingReq {
        seq: 100,
        target: target.peer_id(),
    };
    v.send(&requester, Frame::FailureDetection(req))
        .expect("ping req");
    assert_eq!(
        v.node.inspect().failure_detector_counters().relays_refused,
        6
    );
}

/// Updates waiting to be piggybacked: at most 64; at the bound the oldest is dropped.
#[test]
fn swim_update_queue_drops_the_oldest_at_64() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.drain();
    // 104 distinct hints with hops left, so each is queued to be passed on.
    for batch in 0..13u32 {
        let updates = (0..8)
            .map(|i| suspect(fake_peer(batch * 8 + i), 1))
            .collect();
        v.send(&h, ack_with(updates)).expect("ack");
    }
    // Drain the queue through the ACKs of PINGs (8 updates per ACK, 4 sends per update).
    let mut seen = BTreeSet::new();
    for seq in 0..64 {
        v.send(&h, ping(seq)).expect("ping");
        seen.extend(piggybacked(v.frames_to(h.peer_id())));
    }
    let newest: BTreeSet<PeerId> = (40..104).map(fake_peer).collect();
    assert_eq!(seen, newest);
}

/// Returns whether a hint `U`, first heard without hops (remembered only), then again with
/// hops after `fillers` other hints, is passed on the second time.
fn swim_seen_scenario(fillers: u32) -> bool {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.drain();
    let u = fake_peer(1_000_000);
    v.send(&h, ack_with(vec![suspect(u, 0)])).expect("ack");
    let mut n = 0;
    while n < fillers {
        let k = (fillers - n).min(8);
        let updates = (n..n + k).map(|i| suspect(fake_peer(i), 0)).collect();
        v.send(&h, ack_with(updates)).expect("ack");
        n += k;
    }
    v.send(&h, ack_with(vec![suspect(u, 1)])).expect("ack");
    v.drain();
    v.send(&h, ping(1)).expect("ping");
    piggybacked(v.frames_to(h.peer_id())).contains(&u)
}

/// Updates already seen (deduplication): at most 1,024 remembered; at the bound the oldest is
/// forgotten, and the same update heard again is news again.
#[test]
fn swim_seen_updates_forget_the_oldest_at_1024() {
    assert!(!swim_seen_scenario(1023), "still remembered: not passed on");
    assert!(swim_seen_scenario(1024), "forgotten: passed on again");
}

// ------------------------------------------------------------------ Plumtree (one topic)

use hearsay_proto::broadcast::message::MessageError;
use hearsay_proto::broadcast::plumtree::{Message as Plum, Output, Plumtree, Validator};

struct AcceptAll;

impl Validator for AcceptAll {
    fn validate(&self, _: &SignedMessage, _: &VerifyingKeyBytes) -> Result<(), MessageError> {
        Ok(())
    }
}

struct RejectAll;

impl Validator for RejectAll {
    fn validate(&self, _: &SignedMessage, _: &VerifyingKeyBytes) -> Result<(), MessageError> {
        Err(MessageError::BadSignature)
    }
}

fn plumtree_with(config: plumtree::Config, neighbours: &[PeerId]) -> Plumtree {
    let mut p = Plumtree::new(config, topic());
    for n in neighbours {
        p.neighbor_up(*n);
    }
    p
}

fn outputs(p: &mut Plumtree) -> Vec<Output> {
    std::iter::from_fn(|| p.poll()).collect()
}

fn delivered(outputs: &[Output]) -> Vec<MessageId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Deliver { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn gossip(p: &mut Plumtree, from: PeerId, m: &SignedMessage, validator: &dyn Validator) {
    let payload = payload_of(m.clone(), zero_key());
    p.handle_message(T0, from, Plum::Gossip(payload), validator);
}

fn retained(p: &Plumtree) -> BTreeSet<MessageId> {
    p.retained_ids().copied().collect()
}

/// Retained messages: at most `cache_messages`; at the bound the retained message dated
/// earliest (expiring first) is evicted, and the newcomer is kept even if older still.
#[test]
fn plumtree_cache_evicts_the_earliest_dated_at_cache_messages() {
    let a = fake_peer(1);
    let config = plumtree::Config {
        cache_messages: 8,
        ..plumtree::Config::default()
    };
    let mut p = plumtree_with(config, &[a]);
    // Each message is dated a second before the previous one.
    let ms: Vec<SignedMessage> = (0..10u64)
        .map(|i| unsigned(topic(), i, T0 - TimeDelta::from_secs(i), 8))
        .collect();
    for m in &ms {
        gossip(&mut p, a, m, &AcceptAll);
    }
    assert_eq!(delivered(&outputs(&mut p)).len(), 10);
    let expected: BTreeSet<MessageId> = [0, 1, 2, 3, 4, 5, 6, 9]
        .iter()
        .map(|i| ms[*i].id())
        .collect();
    assert_eq!(retained(&p), expected);
}

/// Retained payload bytes: at most `cache_bytes`; at the bound the earliest-dated messages are
/// evicted until the newcomer fits.
#[test]
fn plumtree_cache_evicts_the_earliest_dated_at_cache_bytes() {
    let a = fake_peer(1);
    let config = plumtree::Config {
        cache_bytes: 10_000,
        ..plumtree::Config::default()
    };
    let mut p = plumtree_with(config, &[a]);
    let ms: Vec<SignedMessage> = (0..5u64)
        .map(|i| unsigned(topic(), i, T0 - TimeDelta::from_secs(10 - i), 3000))
        .collect();
    for m in &ms {
        gossip(&mut p, a, m, &AcceptAll);
    }
    let expected: BTreeSet<MessageId> = ms[2..].iter().map(SignedMessage::id).collect();
    assert_eq!(retained(&p), expected);
}

/// Seen ids: at most `seen_capacity`; at the bound the id expiring first is forgotten, so the
/// same message offered again is new again (hence `seen_capacity` must exceed the messages of
/// a retention window).
#[test]
fn plumtree_seen_forgets_the_earliest_expiry_at_seen_capacity() {
    let a = fake_peer(1);
    let config = plumtree::Config {
        seen_capacity: 4,
        cache_messages: 4,
        ..plumtree::Config::default()
    };
    let mut p = plumtree_with(config, &[a]);
    let ms: Vec<SignedMessage> = (0..5u64)
        .map(|i| unsigned(topic(), i, T0 - TimeDelta::from_secs(10 - i), 8))
        .collect();
    for m in &ms {
        gossip(&mut p, a, m, &AcceptAll);
    }
    assert_eq!(delivered(&outputs(&mut p)).len(), 5);
    assert!(p.has_seen(&ms[4].id()) && !p.has_seen(&ms[0].id()));
    // The newest is still a duplicate; the forgotten one is delivered a second time.
    gossip(&mut p, a, &ms[4], &AcceptAll);
    assert_eq!(delivered(&outputs(&mut p)), vec![]);
    assert_eq!(p.counters().duplicates, 1);
    gossip(&mut p, a, &ms[0], &AcceptAll);
    assert_eq!(delivered(&outputs(&mut p)), vec![ms[0].id()]);
}

/// Refused payloads remembered: at most `rejected_capacity`; at the bound the digest expiring
/// first is forgotten, so those bytes are checked (and penalised) again.
#[test]
fn plumtree_rejected_forgets_the_earliest_expiry_at_rejected_capacity() {
    let a = fake_peer(1);
    let config = plumtree::Config {
        rejected_capacity: 4,
        ..plumtree::Config::default()
    };
    let mut p = plumtree_with(config, &[a]);
    let ms: Vec<SignedMessage> = (0..5u64)
        .map(|i| unsigned(topic(), i, T0 - TimeDelta::from_secs(10 - i), 8))
        .collect();
    for m in &ms {
        gossip(&mut p, a, m, &RejectAll);
    }
    assert_eq!(p.counters().invalid, 5);
    outputs(&mut p);
    // Still remembered: dropped without a check or a penalty.
    gossip(&mut p, a, &ms[4], &RejectAll);
    assert_eq!((p.counters().refused_again, p.counters().invalid), (1, 5));
    assert!(outputs(&mut p).is_empty());
    // Forgotten: checked and penalised again.
    gossip(&mut p, a, &ms[0], &RejectAll);
    assert_eq!((p.counters().refused_again, p.counters().invalid), (1, 6));
    assert_eq!(outputs(&mut p), vec![Output::Penalise { peer: a }]);
}

fn ihave(ids: impl IntoIterator<Item = MessageId>) -> Plum {
    let entries = ids
        .into_iter()
        .map(|id| plumtree::Announcement { id, hops: 1 })
        .collect();
    Plum::IHave(BoundedVec::new(entries).expect("≤ 64 ids"))
}

/// Missing messages tracked: at most `max_missing`; announcements beyond it are dropped and
/// counted (`overflow`).
#[test]
fn plumtree_missing_stops_at_max_missing() {
    let a = fake_peer(1);
    let mut p = plumtree_with(plumtree::Config::default(), &[a]);
    for batch in 0..17u32 {
        let ids = (0..64).map(|i| fake_id(batch * 64 + i));
        p.handle_message(T0, a, ihave(ids), &AcceptAll);
    }
    assert_eq!(p.missing(), 1024);
    assert_eq!(p.counters().overflow, 64);
}

/// Announcers per missing message: at most `max_announcers`; later ones are dropped and
/// counted. GRAFTs go to the kept announcers in order, then the id is abandoned.
#[test]
fn plumtree_announcers_stop_at_max_announcers() {
    let peers: Vec<PeerId> = (1..=6).map(fake_peer).collect();
    let mut p = plumtree_with(plumtree::Config::default(), &peers);
    let x = fake_id(42);
    for a in &peers {
        p.handle_message(T0, *a, ihave([x]), &AcceptAll);
    }
    assert_eq!(p.counters().overflow, 2);
    let mut grafted = Vec::new();
    let mut now = T0 + TimeDelta::from_millis(500);
    for _ in 0..6 {
        p.handle_timeout(now);
        for o in outputs(&mut p) {
            if let Output::Send {
                to,
                message: Plum::Graft(_),
            } = o
            {
                grafted.push(to);
            }
        }
        now += TimeDelta::from_millis(250);
    }
    assert_eq!(grafted, peers[..4].to_vec());
    assert_eq!((p.missing(), p.counters().missing_abandoned), (0, 1));
}

/// IHAVE entries waiting per lazy peer: at most `max_pending_ihave`; at the bound the oldest
/// entry is dropped and counted (`overflow`).
#[test]
fn plumtree_pending_ihave_drops_the_oldest_at_max_pending_ihave() {
    let (source, lazy) = (fake_peer(1), fake_peer(2));
    let mut p = plumtree_with(plumtree::Config::default(), &[source, lazy]);
    p.handle_message(T0, lazy, Plum::Prune, &AcceptAll);
    assert_eq!(p.lazy_peers().copied().collect::<Vec<_>>(), vec![lazy]);
    let ms: Vec<SignedMessage> = (0..1030u64).map(|i| unsigned(topic(), i, T0, 1)).collect();
    for m in &ms {
        gossip(&mut p, source, m, &AcceptAll);
        outputs(&mut p);
    }
    assert_eq!(p.counters().overflow, 6);
    p.handle_timeout(T0 + TimeDelta::from_millis(50));
    let announced: Vec<MessageId> = outputs(&mut p)
        .into_iter()
        .flat_map(|o| match o {
            Output::Send {
                to,
                message: Plum::IHave(entries),
            } if to == lazy => entries.into_vec(),
            _ => Vec::new(),
        })
        .map(|a| a.id)
        .collect();
    let expected: Vec<MessageId> = ms[6..].iter().map(SignedMessage::id).collect();
    assert_eq!(announced, expected);
}

// ------------------------------------------------------------------ root beacons

/// Given-up roots remembered: at most 8; at the bound the smallest remembered root id is
/// forgotten, and that root's stale beacons are adopted again.
#[test]
fn beacons_expired_roots_stop_at_8() {
    use hearsay_proto::broadcast::tree::{self, RootBeacon, RootTree};
    let me = PeerId::from_bytes([200; 32]);
    let n = PeerId::from_bytes([150; 32]);
    let mut b = RootTree::new(tree::Config::default(), me, T0, T0);
    b.neighbor_up(n);
    let beacon = |r: u8| RootBeacon {
        root: PeerId::from_bytes([r; 32]),
        seq: 5,
        dist: 1,
        parent: None,
    };
    let mut now = T0;
    // Nine roots, largest id first, each adopted and then given up.
    for r in (1..=9u8).rev() {
        b.handle(now, n, beacon(r));
        assert_eq!(b.root(), PeerId::from_bytes([r; 32]));
        now += TimeDelta::from_secs(17);
        b.handle_timeout(now);
        assert!(b.is_root());
        while b.poll().is_some() {}
    }
    let adopted = b.adopted();
    for r in (1..=9u8).rev() {
        b.handle(now, n, beacon(r));
    }
    assert_eq!(
        b.adopted(),
        adopted + 1,
        "one remembered root was forgotten"
    );
    assert_eq!(
        b.root(),
        PeerId::from_bytes([9; 32]),
        "the root given up longest ago is the one forgotten"
    );
}

// ------------------------------------------------------------------ anti-entropy

/// Sessions: one per topic at a time (a round finds it busy), abandoned at `session_timeout`.
#[test]
fn reconciler_keeps_one_session_per_topic() {
    use hearsay_proto::antientropy::{self, Reconciler};
    let config = antientropy::Config {
        session_timeout: TimeDelta::from_secs(60),
        ..antientropy::Config::default()
    };
    let mut r = rng(2);
    let mut rec = Reconciler::new(config, T0, &mut r);
    let neighbours = [fake_peer(1), fake_peer(2)];
    let mut now = T0;
    for _ in 0..8 {
        now += TimeDelta::from_secs(7);
        rec.handle_timeout(now, &neighbours, &[], &mut r);
        while rec.poll().is_some() {}
    }
    assert_eq!(rec.counters().started, 1);
    now += TimeDelta::from_secs(60);
    rec.handle_timeout(now, &neighbours, &[], &mut r);
    assert_eq!((rec.counters().timed_out, rec.counters().started), (1, 2));
}

// ------------------------------------------------------------------ FOAF discovery

use hearsay_proto::discovery::foaf::{
    self, Answer, AnswerOutcome, Foaf, FoafError, Query, QueryId, QueryOutcome, Target,
};

fn qid(n: u32) -> QueryId {
    let mut b = [0x9e; 16];
    b[..4].copy_from_slice(&n.to_le_bytes());
    QueryId::from_bytes(b)
}

fn peer_query(id: QueryId, ttl: u8) -> Query {
    Query {
        id,
        target: Target::Peer(fake_peer(77_777)),
        ttl,
    }
}

fn nothing(_: &Target, _: usize) -> Vec<PeerRecord> {
    Vec::new()
}

fn foaf_with(config: foaf::Config) -> Foaf {
    Foaf::new(config).expect("valid config")
}

/// Remembered query ids: at most `dedup_capacity`; at the bound the oldest is forgotten
/// (`dedup_evicted`) and a copy of it is handled again. Ids also go after `dedup_ttl`.
#[test]
fn foaf_dedup_forgets_the_oldest_at_dedup_capacity() {
    let mut f = foaf_with(foaf::Config::default());
    let mut r = rng(3);
    let neighbours: Vec<PeerId> = (0..104).map(fake_peer).collect();
    for n in 0..103u32 {
        for k in 0..10 {
            let q = peer_query(qid(n * 10 + k), 1);
            let out = f.handle_query(T0, &mut r, fake_peer(n), q, &nothing, &neighbours);
            assert!(matches!(out, QueryOutcome::Served { .. }), "{out:?}");
        }
    }
    assert_eq!(f.remembered_ids(), 1024);
    assert_eq!(f.counters().dedup_evicted, 6);
    let again = |f: &mut Foaf, r: &mut ChaCha8Rng, id| {
        f.handle_query(
            T0,
            r,
            fake_peer(103),
            peer_query(id, 1),
            &nothing,
            &neighbours,
        )
    };
    assert_eq!(again(&mut f, &mut r, qid(1029)), QueryOutcome::Duplicate);
    assert!(matches!(
        again(&mut f, &mut r, qid(0)),
        QueryOutcome::Served { .. }
    ));
    f.handle_timeout(T0 + TimeDelta::from_secs(30));
    assert_eq!(f.remembered_ids(), 0);
}

/// Pending queries: at most `max_pending`, own and relayed; at the bound the relayed query
/// expiring first is forgotten (`pending_evicted`; its late answers are unknown). Own queries
/// are never evicted, and at most `max_own_queries` run at once.
#[test]
fn foaf_pending_evicts_relayed_queries_at_max_pending() {
    let mut f = foaf_with(foaf::Config::default());
    let mut r = rng(4);
    let neighbours: Vec<PeerId> = (0..40).map(fake_peer).collect();
    let mut now = T0;
    for _ in 0..16 {
        f.start_query(
            now,
            &mut r,
            Target::Peer(fake_peer(9)),
            Some(2),
            &neighbours,
        )
        .expect("room");
    }
    assert_eq!(
        f.start_query(
            now,
            &mut r,
            Target::Peer(fake_peer(9)),
            Some(2),
            &neighbours
        ),
        Err(FoafError::TooManyQueries { max: 16 })
    );
    for n in 0..26u32 {
        for k in 0..10 {
            now += TimeDelta::from_millis(1);
            let q = peer_query(qid(n * 10 + k), 2);
            f.handle_query(now, &mut r, fake_peer(n), q, &nothing, &neighbours);
            while f.poll_transmit().is_some() {}
        }
    }
    assert_eq!(f.pending_queries(), 256);
    assert_eq!(f.own_queries(), 16);
    assert_eq!(f.counters().pending_evicted, 20);
    let answer = |id| Answer {
        id,
        records: BoundedVec::default(),
    };
    // The first relayed queries expire first: forgotten.
    let out = f.handle_answer(now, fake_peer(39), answer(qid(0)), |_| true);
    assert_eq!(out, AnswerOutcome::UnknownQuery);
    // The last one is still pending (the answer is refused only for its sender).
    let out = f.handle_answer(now, fake_peer(25), answer(qid(259)), |_| true);
    assert_eq!(out, AnswerOutcome::WrongPeer);
}

/// Rate-limit buckets: at most `max_rate_buckets`; idle ones go first, then the least
/// recently used; a bucket idle for a second is dropped.
#[test]
fn foaf_rate_buckets_stop_at_max_rate_buckets() {
    let mut f = foaf_with(foaf::Config::default());
    let mut r = rng(5);
    let neighbours: Vec<PeerId> = (0..200).map(fake_peer).collect();
    let mut now = T0;
    for n in 0..200u32 {
        now += TimeDelta::from_millis(1);
        let q = peer_query(qid(n), 1);
        f.handle_query(now, &mut r, fake_peer(n), q, &nothing, &neighbours);
    }
    assert_eq!(f.rate_buckets(), 128);
    f.handle_timeout(now + TimeDelta::from_secs(1));
    assert_eq!(f.rate_buckets(), 0);
}

/// Outputs: at most `max_queued` transmits and as many events; more are dropped and counted
/// (`queue_dropped`), the queue keeps the oldest.
#[test]
fn foaf_queues_drop_the_newest_at_max_queued() {
    let mut f = foaf_with(foaf::Config::default());
    let mut r = rng(6);
    let neighbours: Vec<PeerId> = (0..50).map(fake_peer).collect();
    // 400 queries, each forwarded to 3 neighbours: 1,200 transmits, never drained.
    for n in 0..40u32 {
        for k in 0..10 {
            let q = peer_query(qid(n * 10 + k), 2);
            f.handle_query(T0, &mut r, fake_peer(n), q, &nothing, &neighbours);
        }
    }
    assert_eq!(f.queued().0, 1024);
    assert_eq!(f.counters().queue_dropped, 176);
    let first = f.poll_transmit().expect("queued");
    assert!(matches!(first.1, foaf::DiscoveryMessage::Query(q) if q.id == qid(0)));

    // Events: a small queue, filled by answers to an own query.
    let mut f = foaf_with(foaf::Config {
        max_queued: 4,
        ..foaf::Config::default()
    });
    let a = fake_peer(1);
    let q = f
        .start_query(T0, &mut r, capability(), Some(1), &[a])
        .expect("starts");
    for i in 0..6 {
        let records = BoundedVec::new(vec![record(&identity(100 + i), T0, HOUR)]).expect("1");
        f.handle_answer(T0, a, Answer { id: q, records }, |_| true);
    }
    assert_eq!(f.queued().1, 4);
    assert_eq!(f.counters().queue_dropped, 2);
}

fn capability() -> Target {
    Target::Capability(BoundedBytes::new(b"tag".to_vec()).expect("short"))
}

/// Per query: at most `max_answers_per_query` answers (`answers_over_limit`) and
/// `max_records_per_query` distinct records (`records_over_limit`, skipped unverified).
#[test]
fn foaf_answers_and_records_per_query_stop_at_32() {
    let mut f = foaf_with(foaf::Config::default());
    let mut r = rng(7);
    let a = fake_peer(1);
    let q = f
        .start_query(T0, &mut r, capability(), Some(1), &[a])
        .expect("starts");
    for _ in 0..33 {
        f.handle_answer(
            T0,
            a,
            Answer {
                id: q,
                records: BoundedVec::default(),
            },
            |_| true,
        );
    }
    assert_eq!(f.counters().answers_over_limit, 1);

    let q = f
        .start_query(T0, &mut r, capability(), Some(1), &[a])
        .expect("starts");
    let records: Vec<PeerRecord> = (0..40)
        .map(|i| record(&identity(200 + i), T0, HOUR))
        .collect();
    let mut verified = 0;
    for chunk in records.chunks(8) {
        let answer = Answer {
            id: q,
            records: BoundedVec::new(chunk.to_vec()).expect("8"),
        };
        f.handle_answer(T0, a, answer, |_| {
            verified += 1;
            true
        });
    }
    assert_eq!(verified, 32);
    assert_eq!(f.counters().records_over_limit, 8);
    assert_eq!(f.counters().records_found, 32);
}

// ------------------------------------------------------------------ encrypted messages

use hearsay_proto::node::{Announcement as Announced, PrivateConfig, PrivateMessage};
use hearsay_proto::privacy::access::{AccessRecord, AccessStore, DeleteRequest, Offer};
use hearsay_proto::privacy::envelope::{self, ContentKey, Sealed};
use hearsay_proto::privacy::fetch_guard::{FetchGuard, FilterError};
use hearsay_proto::wire::FixedBytes;

/// An encrypted message `h` authors for `readers`: its content message and content key.
struct Private {
    content: SignedMessage,
    sealed: Sealed,
    key: ContentKey,
}

fn seal_private(
    h: &Identity,
    topic: TopicId,
    sequence: u64,
    readers: &[EncapsulationKeyBytes],
) -> Private {
    let (sealed, _, key) =
        envelope::seal_keyed(&InsecureTestProvider, readers, b"plaintext", &mut rng(8))
            .expect("seals");
    let content =
        SignedMessage::publish_kind(h, MessageKind::Sealed, topic, sequence, T0, &sealed.content)
            .expect("signs");
    Private {
        content,
        sealed,
        key,
    }
}

/// The announcement (a broadcast message of kind Access) of version `version` of `p`, with
/// slots for `readers` wrapping the same content key.
fn announcement(
    h: &Identity,
    p: &Private,
    version: u64,
    sequence: u64,
    readers: &[EncapsulationKeyBytes],
) -> Frame {
    let sealed = envelope::seal_with_key(
        &InsecureTestProvider,
        &p.key,
        &p.sealed.content,
        readers,
        &mut rng(9),
    )
    .expect("re-wraps");
    let record =
        AccessRecord::issue(h, p.content.id(), version, sealed.slots.clone()).expect("signs");
    let a = Announced {
        record,
        author: record_of(h),
        content_hash: FixedBytes::from_array(sealed.content_hash()),
    };
    let bytes = a.to_bytes().expect("fits");
    let m = SignedMessage::publish_kind(h, MessageKind::Access, topic(), sequence, T0, &bytes)
        .expect("signs");
    broadcast(
        topic(),
        plumtree::Message::Gossip(payload_of(m, h.verifying_key().clone())),
    )
}

fn record_of(h: &Identity) -> PeerRecord {
    record(h, T0, HOUR)
}

fn private_config(private: PrivateConfig) -> Config {
    Config {
        private,
        ..config()
    }
}

fn fetches(frames: &[Frame]) -> Vec<MessageId> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Private(PrivateMessage::Fetch { message }) => Some(*message),
            _ => None,
        })
        .collect()
}

/// Fetches in flight: at most `max_fetches`; an announcement beyond it starts no fetch
/// (`fetches_failed`).
#[test]
fn private_fetches_stop_at_max_fetches() {
    let (mut v, h, topic) = topic_victim(private_config(PrivateConfig {
        max_fetches: 2,
        ..PrivateConfig::default()
    }));
    let me = [identity(0).encapsulation_key().clone()];
    for i in 0..3u64 {
        let p = seal_private(&h, topic, i, &me);
        v.send(&h, announcement(&h, &p, 1, 100 + i, &me))
            .expect("announcement");
    }
    assert_eq!(fetches(&v.frames_to(h.peer_id())).len(), 2);
    let c = v.node.inspect().private_counters().clone();
    assert_eq!((c.fetches_started, c.fetches_failed), (2, 1));
}

/// Delivered ids remembered: at most `max_delivered`; at the bound the oldest is forgotten, so
/// a newer announcement of it is fetched and delivered again.
#[test]
fn private_delivered_forgets_the_oldest_at_max_delivered() {
    let (mut v, h, topic) = topic_victim(private_config(PrivateConfig {
        max_delivered: 2,
        ..PrivateConfig::default()
    }));
    let me = [identity(0).encapsulation_key().clone()];
    let ps: Vec<Private> = (0..3u64).map(|i| seal_private(&h, topic, i, &me)).collect();
    for (i, p) in ps.iter().enumerate() {
        v.send(&h, announcement(&h, p, 1, 100 + i as u64, &me))
            .expect("announcement");
        let content = Frame::Private(PrivateMessage::Content {
            message: p.content.clone(),
        });
        v.send(&h, content).expect("content");
    }
    let delivered = |v: &mut Victim| {
        v.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::PrivateDelivered { id, .. } => Some(id),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let ids: Vec<MessageId> = ps.iter().map(|p| p.content.id()).collect();
    assert_eq!(delivered(&mut v), ids);
    v.drain();
    // Version 2 of the newest: still remembered as delivered, not fetched again.
    v.send(&h, announcement(&h, &ps[2], 2, 200, &me))
        .expect("announcement");
    assert!(fetches(&v.frames_to(h.peer_id())).is_empty());
    // Version 2 of the oldest: forgotten, so fetched and delivered a second time.
    v.send(&h, announcement(&h, &ps[0], 2, 201, &me))
        .expect("announcement");
    assert_eq!(fetches(&v.frames_to(h.peer_id())), vec![ids[0]]);
    let content = Frame::Private(PrivateMessage::Content {
        message: ps[0].content.clone(),
    });
    v.send(&h, content).expect("content");
    assert_eq!(delivered(&mut v), vec![ids[0]]);
}

/// Authored messages served: at most `max_authored` (local); the oldest is forgotten and no
/// longer served.
#[test]
fn private_authored_forgets_the_oldest_at_max_authored() {
    let mut v = Victim::new(private_config(PrivateConfig {
        max_authored: 2,
        ..PrivateConfig::default()
    }));
    let topic = topic();
    v.node.subscribe(v.now, topic).expect("subscribe");
    let reader = [identity(9).encapsulation_key().clone()];
    let ids: Vec<MessageId> = (0..3)
        .map(|_| {
            v.node
                .publish_private(v.now, topic, b"x", &reader)
                .expect("publishes")
        })
        .collect();
    let view = v.node.inspect();
    assert!(view.authored(&ids[0]).is_none());
    assert!(view.authored(&ids[1]).is_some() && view.authored(&ids[2]).is_some());
    let r = identity(9);
    v.connect(&r);
    v.drain();
    let fetch = Frame::Private(PrivateMessage::Fetch { message: ids[0] });
    v.send(&r, fetch).expect("fetch");
    assert_eq!(
        v.frames_to(r.peer_id()),
        vec![Frame::Private(PrivateMessage::Refused { message: ids[0] })]
    );
}

/// Outstanding challenges: at most `max_challenges`; expired ones are pruned first, then the
/// oldest is evicted (`evicted_challenges`) and a proof against it is refused.
#[test]
fn private_challenges_evict_the_oldest_at_max_challenges() {
    let mut v = Victim::new(config());
    let topic = topic();
    v.node.subscribe(v.now, topic).expect("subscribe");
    let r = identity(9);
    let id = v
        .node
        .publish_private(v.now, topic, b"x", &[r.encapsulation_key().clone()])
        .expect("publishes");
    v.connect(&r);
    v.drain();
    let mut nonces = Vec::new();
    for _ in 0..1030 {
        v.send(&r, Frame::Private(PrivateMessage::Fetch { message: id }))
            .expect("fetch");
        for f in v.frames_to(r.peer_id()) {
            if let Frame::Private(PrivateMessage::Challenge { nonce, .. }) = f {
                nonces.push(nonce);
            }
        }
    }
    assert_eq!(nonces.len(), 1030);
    assert_eq!(
        v.node.inspect().fetch_guard_counters().evicted_challenges,
        6
    );
    let prove = |nonce: &FixedBytes<32>| {
        Frame::Private(PrivateMessage::Prove {
            message: id,
            nonce: nonce.clone(),
            proof: FixedBytes::from_array([0; 32]),
        })
    };
    v.send(&r, prove(&nonces[0])).expect("prove");
    v.send(&r, prove(&nonces[1029])).expect("prove");
    let c = *v.node.inspect().fetch_guard_counters();
    assert_eq!((c.unknown_challenge, c.bad_proof), (1, 1));
    // Once they expired, the outstanding challenges are pruned rather than evicted.
    v.advance(TimeDelta::from_secs(11));
    v.connect(&r); // the idle link was closed meanwhile
    v.send(&r, Frame::Private(PrivateMessage::Fetch { message: id }))
        .expect("fetch");
    assert_eq!(
        v.node.inspect().fetch_guard_counters().evicted_challenges,
        6
    );
}

/// Fetch keys: of at most `capacity` messages (`max_authored` in the Node); when full the
/// message registered first is evicted (`evicted_messages`).
#[test]
fn fetch_guard_keys_evict_the_first_registered_at_capacity() {
    let mut g = FetchGuard::new(2, 8, TimeDelta::from_secs(10));
    for n in 0..3 {
        g.register(fake_id(n), vec![zeroize::Zeroizing::new([n as u8; 32])]);
    }
    assert_eq!(g.len(), 2);
    assert_eq!(g.counters().evicted_messages, 1);
    let mut r = rng(10);
    let nonce = g.challenge(&mut r, T0);
    assert_eq!(
        g.check(&fake_id(0), &nonce, &[0; 32], T0),
        Err(FilterError::UnknownMessage)
    );
    let nonce = g.challenge(&mut r, T0);
    assert_eq!(
        g.check(&fake_id(1), &nonce, &[0; 32], T0),
        Err(FilterError::BadProof)
    );
}

/// Access records: at most `capacity` (`max_access_records`); at the bound the record inserted
/// first is evicted (`evicted_records`), a replaced record keeping its place.
#[test]
fn access_records_evict_the_first_inserted_at_capacity() {
    let author = identity(1);
    let key = author.verifying_key().clone();
    let mut store = AccessStore::new(3);
    let offer = |store: &mut AccessStore, n: u32, version: u64| {
        let r =
            AccessRecord::issue(&author, fake_id(n), version, Default::default()).expect("signs");
        store.offer(r, &InsecureTestProvider, &key, author.peer_id())
    };
    for n in 0..3 {
        assert_eq!(offer(&mut store, n, 1), Ok(Offer::New));
    }
    assert_eq!(offer(&mut store, 0, 2), Ok(Offer::Replaced { previous: 1 }));
    assert_eq!(offer(&mut store, 3, 1), Ok(Offer::New));
    assert_eq!(store.len(), 3);
    assert_eq!(store.counters().evicted_records, 1);
    assert!(store.get(&fake_id(0)).is_none(), "replacing kept its place");
    assert!(store.get(&fake_id(1)).is_some());
}

/// Deleted ids: at most `capacity`; at the bound the oldest deletion is forgotten
/// (`evicted_deletes`) and records for that id are accepted again.
#[test]
fn access_deletions_forget_the_oldest_at_capacity() {
    let author = identity(1);
    let key = author.verifying_key().clone();
    let mut store = AccessStore::new(3);
    for n in 0..4 {
        let d = DeleteRequest::issue(&author, fake_id(n)).expect("signs");
        assert_eq!(
            store.delete(&d, &InsecureTestProvider, &key, author.peer_id()),
            Ok(true)
        );
    }
    assert_eq!(store.deleted_len(), 3);
    assert_eq!(store.counters().evicted_deletes, 1);
    assert!(!store.is_deleted(&fake_id(0)) && store.is_deleted(&fake_id(1)));
    let r = AccessRecord::issue(&author, fake_id(0), 1, Default::default()).expect("signs");
    assert_eq!(
        store.offer(r, &InsecureTestProvider, &key, author.peer_id()),
        Ok(Offer::New)
    );
}

// ------------------------------------------------------------------ groups

use hearsay_proto::privacy::group::{
    Group, GroupError, GroupId, Keyring, Role, ShardKey, ShardSecret,
};

/// Shard keys held: at most `capacity` (`max_group_keys`); at the bound the key inserted first
/// is dropped; a key of the same group, shard and epoch replaces the old one.
#[test]
fn group_keyring_drops_the_oldest_at_capacity() {
    let group = GroupId::derive(&fake_peer(1), &[3; 32]);
    let key = |epoch: u64| {
        let secret = ShardSecret::from_bytes([epoch as u8; 32]);
        ShardKey::derive(&InsecureTestProvider, group, 0, epoch, &secret)
    };
    let mut ring = Keyring::new(3);
    for epoch in 0..5 {
        ring.insert(key(epoch));
    }
    ring.insert(key(3));
    let epochs: BTreeSet<u64> = ring.iter().map(ShardKey::epoch).collect();
    assert_eq!(ring.len(), 3);
    assert_eq!(epochs, [2, 3, 4].into_iter().collect());
}

/// Members and shards: a group holds at most `min(MAX_MEMBERS, MAX_SHARDS × shard_size)`
/// members; an add beyond it is refused (`TooManyMembers`), so shards stop at `MAX_SHARDS`.
#[test]
fn group_members_stop_at_capacity() {
    let p = InsecureTestProvider;
    let founder = identity(1);
    let mut r = rng(11);
    let (mut group, _, _) = Group::create(&p, &founder, 1, &mut r).expect("founds");
    assert_eq!(group.capacity(), 64);
    for n in 2..=64 {
        let m = identity(n);
        let proposal = group
            .propose_add(
                &p,
                &founder,
                m.peer_id(),
                m.encapsulation_key().clone(),
                Role::Viewer,
                false,
                &mut r,
            )
            .expect("room");
        group.apply(&p, &proposal.op).expect("applies");
    }
    assert_eq!((group.len(), group.shards().len()), (64, 64));
    let m = identity(65);
    let refused = group.propose_add(
        &p,
        &founder,
        m.peer_id(),
        m.encapsulation_key().clone(),
        Role::Viewer,
        false,
        &mut r,
    );
    assert!(matches!(
        refused,
        Err(GroupError::TooManyMembers { max: 64 })
    ));
}

// ------------------------------------------------------------------ presence

use hearsay_proto::discovery::presence::{OfflineReason, Presence, PresenceConfig, PresenceEvent};

const SECRET: [u8; 32] = [0x42; 32];

fn presence(n: u32, config: PresenceConfig) -> Presence {
    let me = identity(n);
    Presence::new(config, SECRET, &me, record(&me, T0, HOUR), provider()).expect("presence")
}

/// A beacon of member `n` at `at`.
fn beacon_of(n: u32, at: Timestamp) -> SignedMessage {
    let mut m = presence(n, PresenceConfig::default());
    m.start(at);
    m.handle_timeout(at, &mut rng(12));
    m.poll_beacon().expect("beacon").message
}

/// Tracked members: at most `max_members_tracked`; a new member beyond it evicts the one
/// expiring first (heard from least recently), with `Offline { Evicted }` if it was online.
#[test]
fn presence_members_evict_the_least_recent_at_max_members_tracked() {
    let mut observer = presence(
        0,
        PresenceConfig {
            max_members_tracked: 3,
            ..PresenceConfig::default()
        },
    );
    for n in 1..=5u32 {
        let at = T0 + TimeDelta::from_secs(u64::from(n));
        observer
            .handle_beacon(at, &beacon_of(n, at))
            .expect("accepted");
    }
    assert_eq!(observer.tracked(), 3);
    assert_eq!(observer.counters().members_evicted, 2);
    let evicted: Vec<PeerId> = std::iter::from_fn(|| observer.poll_event())
        .filter_map(|e| match e {
            PresenceEvent::Offline {
                member,
                reason: OfflineReason::Evicted,
            } => Some(member),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, vec![identity(1).peer_id(), identity(2).peer_id()]);
}

/// Events waiting: at most `max_queued_events`; the oldest is dropped and counted.
#[test]
fn presence_events_drop_the_oldest_at_max_queued_events() {
    let mut observer = presence(
        0,
        PresenceConfig {
            max_queued_events: 2,
            ..PresenceConfig::default()
        },
    );
    for n in 1..=4u32 {
        observer
            .handle_beacon(T0, &beacon_of(n, T0))
            .expect("accepted");
    }
    assert_eq!(observer.counters().events_dropped, 2);
    let online: Vec<PeerId> = std::iter::from_fn(|| observer.poll_event())
        .map(|e| match e {
            PresenceEvent::Online { member, .. } => member,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(online, vec![identity(3).peer_id(), identity(4).peer_id()]);
}

/// Outgoing beacons not yet published: at most 4; the oldest is dropped and counted.
#[test]
fn presence_outgoing_beacons_drop_the_oldest_at_4() {
    let mut m = presence(1, PresenceConfig::default());
    let mut r = rng(13);
    let mut now = T0;
    m.start(now);
    for _ in 0..6 {
        m.handle_timeout(now, &mut r);
        now += TimeDelta::from_secs(60);
    }
    let c = m.counters();
    assert_eq!((c.beacons_sent, c.beacons_dropped), (6, 2));
    let queued: Vec<Timestamp> = std::iter::from_fn(|| m.poll_beacon())
        .map(|b| b.message.timestamp)
        .collect();
    let expected: Vec<Timestamp> = (2..6).map(|i| T0 + TimeDelta::from_secs(60 * i)).collect();
    assert_eq!(queued, expected);
}

// ------------------------------------------------------------------ the seen-cache

/// A `SeenCache` holds at most `capacity` ids; at the bound the id expiring first is forgotten,
/// and ids go when their expiry passes.
#[test]
fn seen_cache_forgets_the_earliest_expiry_at_capacity() {
    use hearsay_proto::broadcast::message::SeenCache;
    let mut seen = SeenCache::new(3);
    let expiries = [5u64, 1, 3, 4];
    for (n, e) in expiries.iter().enumerate() {
        assert!(seen.insert(fake_id(n as u32), T0 + TimeDelta::from_secs(*e)));
    }
    assert_eq!(seen.len(), 3);
    assert!(!seen.contains(&fake_id(1)), "expiring first: forgotten");
    assert!(seen.contains(&fake_id(0)) && seen.contains(&fake_id(2)) && seen.contains(&fake_id(3)));
    seen.expire(T0 + TimeDelta::from_secs(4));
    assert_eq!(seen.len(), 1);
}

// ------------------------------------------------------------------ known bug

/// `frame` with `pad` bytes of an unknown trailing field appended to its innermost array, the
/// broadcast `Payload` (`[message, author_key, hops]` becomes `[message, author_key, hops,
/// pad]`). Decoders ignore trailing fields they do not know (§6.1), so the frame is valid.
fn padded(frame: Bytes, payload: &Payload, pad: usize) -> Bytes {
    let inner = minicbor::to_vec(payload).expect("encodes");
    assert!(
        frame.ends_with(&inner) && inner[0] == 0x83,
        "payload ends the frame"
    );
    let mut out = frame[..frame.len() - inner.len()].to_vec();
    out.push(0x84);
    out.extend_from_slice(&inner[1..]);
    out.push(0x5a); // a byte string with a 4-byte length
    out.extend_from_slice(&(pad as u32).to_be_bytes());
    out.resize(out.len() + pad, 0);
    Bytes::from(out)
}

/// Regression (found by this file): decoded keys, signatures and payloads used to share the
/// received frame's buffer whatever their size, so a retained message kept its whole frame
/// alive. A peer that padded each 1-byte message to a full frame with a trailing field made
/// every retained message pin ~256 KiB: `cache_messages` (4,096) of them 1 GiB per topic while
/// `cache_bytes` (64 MiB) saw 4 KiB. Now a value is shared only when it is at least half of its
/// frame (SPEC.md §6.3), so `cache_bytes` bounds the memory kept to within a factor of two.
#[test]
fn plumtree_cache_bytes_bounds_the_memory_retained() {
    let cache_bytes = 64 << 10;
    let mut config = config();
    config.topics.plumtree.cache_bytes = cache_bytes;
    let (mut v, h, topic) = topic_victim(config);
    let mut frames = Vec::new();
    for seq in 0..16u64 {
        let p = payload_of(signed(&h, topic, seq, v.now, 1), h.verifying_key().clone());
        let frame = encode(broadcast(topic, plumtree::Message::Gossip(p.clone())));
        let frame = padded(frame, &p, 240_000);
        v.node
            .handle_frame(v.now, h.peer_id(), frame.clone())
            .expect("a padded frame is valid");
        frames.push(frame);
    }
    v.drain();
    assert_eq!(v.node.inspect().retained(&topic), 16);
    let pinned: usize = frames
        .iter()
        .filter(|f| !f.is_unique())
        .map(|f| f.len())
        .sum();
    assert!(
        pinned <= cache_bytes,
        "{pinned} bytes of frames kept alive by 16 retained 1-byte messages (cache_bytes = {cache_bytes})"
    );
}

/// Regression (same cause): a cached peer record kept the whole Hello frame it arrived in alive
/// (a record padded with a trailing field still verifies: the signature covers the re-encoded
/// fields), so `max_known_records` (256) records could pin 64 MiB instead of ~2 MiB.
#[test]
fn node_records_do_not_pin_their_hello_frames() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.node.handle_connected(v.now, h.peer_id());
    let rec = record(&h, v.now, HOUR);
    let frame = encode(Frame::Session(SessionMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        record: rec.clone(),
    })));
    // The record's array (7 fields) ends the frame: give it an 8th, unknown field.
    let inner = minicbor::to_vec(&rec).expect("encodes");
    assert!(frame.ends_with(&inner) && inner[0] == 0x87);
    let mut out = frame[..frame.len() - inner.len()].to_vec();
    out.push(0x88);
    out.extend_from_slice(&inner[1..]);
    out.push(0x5a);
    out.extend_from_slice(&240_000u32.to_be_bytes());
    out.resize(out.len() + 240_000, 0);
    let frame = Bytes::from(out);
    v.node
        .handle_frame(v.now, h.peer_id(), frame.clone())
        .expect("a padded record verifies");
    v.disconnect(&h);
    v.drain();
    assert!(v.node.inspect().known_record(&h.peer_id()).is_some());
    assert!(
        frame.is_unique(),
        "the cached record keeps the {}-byte frame alive",
        frame.len()
    );
}

/// With an interner (`Config::interner`, what the simulator installs so that its nodes share
/// keys and signatures), a cached record's keys and signature are the interner's buffers: the
/// record holds no copy of its own and pins no frame, even a padded one. Without one, it keeps
/// copies of its keys (they are under half of the frame).
#[test]
fn node_records_share_the_interners_buffers() {
    use std::sync::Mutex;
    #[derive(Default)]
    struct Pool(Mutex<Vec<Bytes>>);
    impl hearsay_proto::wire::Interner for Pool {
        fn intern(&self, bytes: &[u8]) -> Option<Bytes> {
            let mut held = self.0.lock().ok()?;
            if let Some(b) = held.iter().find(|b| b.as_ref() == bytes) {
                return Some(b.clone());
            }
            let b = Bytes::copy_from_slice(bytes);
            held.push(b.clone());
            Some(b)
        }
    }
    let pool = Arc::new(Pool::default());
    let mut config = config();
    config.interner = Some(pool.clone());
    let mut v = Victim::new(config);
    let h = identity(1);
    v.node.handle_connected(v.now, h.peer_id());
    let rec = record(&h, v.now, HOUR);
    let frame = encode(Frame::Session(SessionMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        record: rec.clone(),
    })));
    v.node
        .handle_frame(v.now, h.peer_id(), frame.clone())
        .expect("hello accepted");
    v.drain();
    let cached = v.node.inspect().known_record(&h.peer_id()).expect("cached");
    assert_eq!(cached, &rec);
    let held = pool.0.lock().expect("pool").clone();
    for field in [
        cached.verifying_key.as_bytes(),
        cached.encapsulation_key.as_bytes(),
        cached.signature.as_bytes(),
    ] {
        assert!(
            held.iter().any(|b| b.as_ptr() == field.as_ptr()),
            "a {}-byte field is not the interner's buffer",
            field.len()
        );
    }
    drop(held);
    assert!(
        frame.is_unique(),
        "the cached record keeps its Hello frame alive"
    );
}

/// Per-neighbour tables of a topic (beacon reports, Plumtree's IHAVE queues and announcers)
/// are keyed by topic neighbours only: beacons and IHAVEs from connected peers outside the
/// topic's active view are ignored and counted, and leave nothing behind.
#[test]
fn topic_tables_take_topic_neighbours_only() {
    use hearsay_proto::broadcast::tree::RootBeacon;
    let (mut v, _, topic) = topic_victim(config());
    let strangers: Vec<Identity> = (100..150).map(identity).collect();
    for (i, s) in strangers.iter().enumerate() {
        v.connect(s);
        let beacon = RootBeacon {
            root: fake_peer(i as u32),
            seq: 1,
            dist: 0,
            parent: None,
        };
        v.send(s, Frame::Topic(TopicMessage::Beacon { topic, beacon }))
            .expect("beacon");
        let ids = (0..64).map(|k| fake_id(i as u32 * 64 + k));
        v.send(s, broadcast(topic, ihave(ids))).expect("ihave");
        v.disconnect(s);
        v.drain();
    }
    assert_eq!(v.counters().topic_frames_unsubscribed, 50);
    let c = v
        .node
        .inspect()
        .broadcast_counters(&topic)
        .expect("subscribed")
        .clone();
    assert_eq!((c.not_neighbor, c.overflow), (50, 0));
    // Nothing was asked for: no IHAVE from a stranger became a missing message.
    v.advance(TimeDelta::from_secs(1));
    assert_eq!(c.grafts_sent, 0);
    assert_eq!(
        v.node
            .inspect()
            .broadcast_counters(&topic)
            .expect("subscribed")
            .grafts_sent,
        0
    );
}
