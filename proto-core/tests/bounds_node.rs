//! Bounds (issue G): every queue, cache and map the protocol core keeps across calls has a
//! documented bound (SPEC.md §8.6, the "Bounds" table, lists every one), and the `bounds_*`
//! test files have one test per bound, by concept: this one the defaults and the Node's own
//! tables (connections, records, queues, strikes, subscriptions, presence groups, per-neighbour
//! topic tables); `bounds_membership` HyParView and SWIM; `bounds_broadcast` Plumtree, root
//! beacons, anti-entropy and the seen-cache; `bounds_discovery` FOAF and presence;
//! `bounds_privacy` encrypted messages, the fetch guard, access records and groups.
//!
//! Each test fills the collection past its bound the way a remote peer (or, for local-only
//! collections, the application) would — frames into `Node::handle_frame` (through the harness's
//! `Victim`), or messages into a state machine's `handle_*` methods — and checks that it stays at
//! the bound and that the documented thing happens there (which entry is evicted, what is
//! refused, which counter moves). Sizes are observed through the public inspection APIs
//! (`Node::inspect`, each state machine's accessors and counters).
//!
//! Where the default bound is large and filling it costs more than a few thousand frames, the
//! test sets a smaller value of the same parameter; `config_defaults_are_the_documented_bounds`
//! (bounds_node.rs) checks the defaults themselves.
//!
//! Identities and configurations use the insecure test provider (fast stand-ins for ML-DSA and
//! ML-KEM), which hearsay-proto's dev-dependency on itself turns on for its tests: a plain
//! `cargo test -p hearsay-proto` runs every bounds file.

use bytes::Bytes;
use hearsay_proto::broadcast::plumtree;
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::crypto::{SIGNATURE_LEN, SignatureBytes};
use hearsay_proto::membership::swim::Message as Swim;
use hearsay_proto::node::NodeError;
use hearsay_proto::testing::{
    HOUR, Victim, broadcast, encode, fake_id, fake_peer, hello, ihave, insecure_config as config,
    insecure_identity as identity, payload, record, signed, topic,
};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{
    Config, DownReason, Event, Frame, Identity, TimeDelta, Timestamp, TopicId, Transmit,
};
use std::sync::Arc;

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
    assert_eq!(
        (c.dial_rate_per_address, c.dial_private_addresses),
        (2, None)
    );
    let sc = &c.score;
    assert_eq!(
        (sc.admit_threshold, sc.graylist_threshold, sc.in_views),
        (0, -100, false)
    );
    assert_eq!(hearsay_proto::score::MAX_SCORED, 1024);
    let h = &c.hyparview;
    assert_eq!((h.active_view, h.passive_view), (5, 30));
    assert_eq!((h.max_pending, h.max_lost), (8, 16));
    assert_eq!(h.retry_horizon, TimeDelta::from_secs(600));
    assert_eq!((h.join_rate, h.join_rate_per_source), (50, 10));
    assert_eq!(
        (c.topics.find_rate, c.topics.find_rate_per_source),
        (50, 10)
    );
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
    assert_eq!(hearsay_proto::broadcast::topic::MAX_SUBSCRIPTIONS, 1024);
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
            rtt_us: None,
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

/// Events: at `max_queued_events` the oldest event is dropped and counted in `events_dropped`.
#[test]
fn node_events_drop_the_oldest_at_max_queued_events() {
    let (h, topic) = (identity(1), topic());
    let mut v = Victim::subscribed(config(), topic, &h);
    for seq in 0..1030u64 {
        let m = signed(&h, topic, seq, v.now, 8);
        let p = payload(m, h.verifying_key().clone());
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
        plumtree::Message::Repair(payload(m, sender.verifying_key().clone())),
    )
}

/// A neighbour that strikes out (three invalid payloads in the window) is cut off with its own
/// reason, `Misbehaved`, never `Failed` or `Disconnected`, and is not dialled again as a lost
/// neighbour would be (SPEC.md §13.7).
#[test]
fn a_peer_cut_off_for_misbehaving_says_so_and_is_not_retried() {
    let h = identity(1);
    let topic = topic();
    let mut v = Victim::subscribed(config(), topic, &h);
    let a = identity(7);
    v.connect(&a);
    v.join(&a);
    assert!(v.node.inspect().neighbors().any(|p| p == a.peer_id()));
    v.drain();
    for seq in 0..3 {
        v.send(&a, forged_repair(&a, topic, seq, v.now))
            .expect("frame");
    }
    assert_eq!(v.counters().peers_penalised, 1);
    let reasons: Vec<DownReason> = v
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::NeighborDown { peer, reason } if peer == a.peer_id() => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![DownReason::Misbehaved]);
    // Minutes later it has not been dialled again.
    let mut dials = 0;
    for _ in 0..30 {
        v.advance(TimeDelta::from_secs(10));
        dials += v
            .transmits()
            .iter()
            .filter(|t| matches!(t, Transmit::Connect { peer, .. } if *peer == a.peer_id()))
            .count();
    }
    assert_eq!(dials, 0);
}

/// Runs the strike table scenario: peer A strikes twice, then `others` peers strike once each
/// and leave, then A strikes a third time. Returns `peers_penalised`.
fn strike_scenario(others: u32) -> u64 {
    let (_h, topic) = (identity(1), topic());
    let mut v = Victim::subscribed(config(), topic, &_h);
    let a = identity(5000);
    v.connect(&a);
    for seq in 0..2 {
        v.send(&a, forged_repair(&a, topic, seq, v.now))
            .expect("frame");
    }
    v.disconnect(&a);
    for n in 0..others {
        v.now += TimeDelta::from_micros(100);
        let h = identity(10_000 + u64::from(n));
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
    for n in 0..1024 {
        let t = TopicId::from_name(&format!("t{n}"));
        v.node.subscribe(v.now, t).expect("room");
    }
    let more = v.node.subscribe(v.now, TopicId::from_name("one too many"));
    assert_eq!(more, Err(NodeError::TooManySubscriptions { max: 1024 }));
    assert_eq!(v.node.inspect().subscriptions().count(), 1024);
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

// ------------------------------------------------------------------ known bugs

/// Regression (same cause as `plumtree_cache_bytes_bounds_the_memory_retained` in
/// bounds_broadcast.rs): a cached peer record kept the whole Hello frame it arrived in alive (a
/// record padded with a trailing field still verifies: the signature covers the re-encoded
/// fields), so `max_known_records` (256) records could pin 64 MiB instead of ~2 MiB.
#[test]
fn node_records_do_not_pin_their_hello_frames() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.node.handle_connected(v.now, h.peer_id());
    let rec = record(&h, v.now, HOUR);
    let frame = encode(hello(rec.clone()));
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
    let frame = encode(hello(rec.clone()));
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
    let (_h, topic) = (identity(1), topic());
    let mut v = Victim::subscribed(config(), topic, &_h);
    let strangers: Vec<Identity> = (100..150).map(identity).collect();
    for (i, s) in strangers.iter().enumerate() {
        v.connect(s);
        let beacon = RootBeacon {
            root: fake_peer(i as u32),
            seq: 1,
            dist: 0,
            parent: None,
            interval_ms: 5_000,
            ask: false,
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

// ------------------------------------------------------------------ per-source budgets

/// FIND walks: one peer sending ten times its share (`find_rate_per_source`) in one instant
/// has its share handled and the rest counted and dropped (no introduction, no forwarding);
/// another peer's walk in the same instant is still handled (an introduction may still wait
/// for a free attempt place, `max_pending`). Without the per-source share one
/// peer would spend the node's whole `find_rate` for everyone.
#[test]
fn find_walks_are_budgeted_per_source() {
    let topic = topic();
    let mut v = Victim::new(config());
    v.node.subscribe(v.now, topic).expect("subscribes");
    let h = identity(1);
    let other = identity(2);
    v.connect(&h);
    v.connect(&other);
    v.drain();
    let share = config().topics.find_rate_per_source;
    let find = |n: u64| {
        Frame::Topic(TopicMessage::Find {
            topic,
            origin: hearsay_proto::membership::hyparview::PeerInfo {
                peer: fake_peer(u32::try_from(n).expect("small")),
                addresses: Default::default(),
            },
            ttl: 3,
            merge: None,
        })
    };
    for n in 0..u64::from(10 * share) {
        let _ = v.send(&h, find(1_000 + n));
    }
    let c = v.counters().clone();
    assert_eq!(c.finds_over_source_budget, u64::from(9 * share));
    assert_eq!(c.finds_dropped, 0);
    assert!(
        c.finds_answered <= u64::from(share),
        "{} walks answered",
        c.finds_answered
    );
    let _ = v.send(&other, find(5_000));
    let c = v.counters();
    assert_eq!(
        (c.finds_over_source_budget, c.finds_dropped),
        (u64::from(9 * share), 0),
        "another peer's walk is handled, not dropped by any budget"
    );
}
