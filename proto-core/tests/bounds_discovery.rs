//! Bounds (issue G) of discovery: FOAF's remembered ids, pending queries, rate buckets, queues
//! and per-query limits, and presence's tracked members and queues, one test per bound
//! (SPEC.md §8.6, the "Bounds" table, lists every bound of the core; bounds_node.rs lists the
//! other `bounds_*` files).
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

use chacha20::ChaCha8Rng;
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::discovery::foaf::{
    self, Answer, AnswerOutcome, Foaf, FoafError, Query, QueryId, QueryOutcome, Target,
};
use hearsay_proto::discovery::presence::{OfflineReason, Presence, PresenceConfig, PresenceEvent};
use hearsay_proto::testing::{HOUR, T0, fake_peer, insecure_identity as identity, record, rng};
use hearsay_proto::wire::{BoundedBytes, BoundedVec};
use hearsay_proto::{PeerId, PeerRecord, TimeDelta, Timestamp};
use std::sync::Arc;

// ------------------------------------------------------------------ FOAF discovery

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

// ------------------------------------------------------------------ presence

const SECRET: [u8; 32] = [0x42; 32];

fn presence(n: u64, config: PresenceConfig) -> Presence {
    let me = identity(n);
    Presence::new(
        config,
        SECRET,
        &me,
        record(&me, T0, HOUR),
        Arc::new(InsecureTestProvider),
    )
    .expect("presence")
}

/// A beacon of member `n` at `at`.
fn beacon_of(n: u64, at: Timestamp) -> SignedMessage {
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
    for n in 1..=5u64 {
        let at = T0 + TimeDelta::from_secs(n);
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
    for n in 1..=4u64 {
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
