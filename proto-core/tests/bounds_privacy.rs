//! Bounds (issue G) of privacy: encrypted messages' fetches, delivered ids, authored messages
//! and challenges, the fetch guard's keys, access records and deletions, and groups' keyrings
//! and members, one test per bound (SPEC.md §8.6, the "Bounds" table, lists every bound of the
//! core; bounds_node.rs lists the other `bounds_*` files).
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

use hearsay_proto::broadcast::message::{MessageKind, SignedMessage};
use hearsay_proto::broadcast::plumtree;
use hearsay_proto::crypto::{EncapsulationKeyBytes, InsecureTestProvider};
use hearsay_proto::node::{Announcement as Announced, PrivateConfig, PrivateMessage};
use hearsay_proto::privacy::access::{AccessRecord, AccessStore, DeleteRequest, Offer};
use hearsay_proto::privacy::envelope::{self, ContentKey, Sealed};
use hearsay_proto::privacy::fetch_guard::{FetchGuard, FilterError};
use hearsay_proto::privacy::group::{
    Group, GroupError, GroupId, Keyring, Role, ShardKey, ShardSecret,
};
use hearsay_proto::testing::{
    HOUR, T0, Victim, broadcast, fake_id, fake_peer, insecure_config as config,
    insecure_identity as identity, payload, record, rng, topic,
};
use hearsay_proto::wire::FixedBytes;
use hearsay_proto::{Config, Event, Frame, Identity, MessageId, PeerRecord, TimeDelta, TopicId};
use std::collections::BTreeSet;

// ------------------------------------------------------------------ encrypted messages

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
        plumtree::Message::Gossip(payload(m, h.verifying_key().clone())),
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
    let (h, topic) = (identity(1), topic());
    let mut v = Victim::subscribed(
        private_config(PrivateConfig {
            max_fetches: 2,
            ..PrivateConfig::default()
        }),
        topic,
        &h,
    );
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
    let (h, topic) = (identity(1), topic());
    let mut v = Victim::subscribed(
        private_config(PrivateConfig {
            max_delivered: 2,
            ..PrivateConfig::default()
        }),
        topic,
        &h,
    );
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

/// One author offering ten times the store's capacity evicts its own records: every other
/// author's stay (at the bound the first inserted of the author holding the most goes).
#[test]
fn an_author_flooding_access_records_evicts_its_own() {
    let flooder = identity(66);
    let mut store = AccessStore::new(8);
    let offer = |store: &mut AccessStore, who: &Identity, n: u32| {
        let r = AccessRecord::issue(who, fake_id(n), 1, Default::default()).expect("signs");
        store.offer(r, &InsecureTestProvider, who.verifying_key(), who.peer_id())
    };
    let honest: Vec<Identity> = (1..=4).map(identity).collect();
    for (k, h) in honest.iter().enumerate() {
        assert_eq!(offer(&mut store, h, k as u32), Ok(Offer::New));
    }
    for n in 0..80 {
        assert_eq!(offer(&mut store, &flooder, 1000 + n), Ok(Offer::New));
    }
    assert_eq!(store.len(), 8);
    assert_eq!(store.counters().evicted_records, 76);
    for k in 0..4u32 {
        assert!(
            store.get(&fake_id(k)).is_some(),
            "honest record {k} evicted"
        );
    }
    assert!(store.get(&fake_id(1079)).is_some() && store.get(&fake_id(1075)).is_none());
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
