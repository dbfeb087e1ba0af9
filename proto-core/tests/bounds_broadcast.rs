//! Bounds (issue G) of broadcast: Plumtree's caches, seen and refused ids, missing messages,
//! announcers and IHAVE queues, remembered root beacons, anti-entropy sessions and the
//! seen-cache, one test per bound (SPEC.md §8.6, the "Bounds" table, lists every bound of the
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

use bytes::Bytes;
use hearsay_proto::broadcast::message::MessageError;
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::{self, Payload};
use hearsay_proto::broadcast::plumtree::{Message as Plum, Output, Plumtree, Validator};
use hearsay_proto::crypto::{SIG_VERIFYING_KEY_LEN, VerifyingKeyBytes};
use hearsay_proto::testing::{
    T0, Victim, broadcast, encode, fake_id, fake_peer, ihave, insecure_config as config,
    insecure_identity as identity, payload, rng, signed, topic, unsigned,
};
use hearsay_proto::{MessageId, PeerId, TimeDelta};
use std::collections::BTreeSet;

// ------------------------------------------------------------------ Plumtree (one topic)

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

fn zero_key() -> VerifyingKeyBytes {
    VerifyingKeyBytes::from_array([0; SIG_VERIFYING_KEY_LEN])
}

fn gossip(p: &mut Plumtree, from: PeerId, m: &SignedMessage, validator: &dyn Validator) {
    let payload = payload(m.clone(), zero_key());
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

/// Seen ids: at most `seen_capacity`; at the bound a new message is refused (`seen_full`) and no
/// unexpired id is forgotten, so every message seen stays a duplicate until it leaves the
/// window (§15.4). (Before, the id expiring first was forgotten and its message accepted again.)
#[test]
fn plumtree_seen_refuses_new_ids_at_seen_capacity() {
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
    assert_eq!(delivered(&outputs(&mut p)).len(), 4);
    assert_eq!(p.counters().seen_full, 1);
    assert!(p.has_seen(&ms[0].id()) && !p.has_seen(&ms[4].id()));
    // The first is still a duplicate.
    gossip(&mut p, a, &ms[0], &AcceptAll);
    assert_eq!(delivered(&outputs(&mut p)), vec![]);
    assert_eq!(p.counters().duplicates, 1);
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
        interval_ms: 5_000,
        ask: false,
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

// ------------------------------------------------------------------ the seen-cache

/// A `SeenCache` holds at most `capacity` ids; at the bound the id expiring first is forgotten,
/// and ids go when their expiry passes.
#[test]
fn seen_cache_forgets_the_earliest_expiry_at_capacity() {
    use hearsay_proto::broadcast::message::SeenCache;
    let mut seen = SeenCache::new(3, 3);
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
    let (h, topic) = (identity(1), topic());
    let mut v = Victim::subscribed(config, topic, &h);
    let mut frames = Vec::new();
    for seq in 0..16u64 {
        let p = payload(signed(&h, topic, seq, v.now, 1), h.verifying_key().clone());
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
