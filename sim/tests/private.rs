//! Encrypted messages end to end across Nodes in the simulator (SPEC.md §17.9): readers fetch
//! and open, others cannot; both revocation operations ("sync access list" and "re-encrypt")
//! take effect on every node; a removed reader's fetch is refused by the author.

use hearsay_proto::crypto::EncapsulationKeyBytes;
use hearsay_proto::node::Event;
use hearsay_proto::privacy::access::open_with_record;
use hearsay_proto::privacy::envelope::Content;
use hearsay_proto::{MessageId, TimeDelta, Timestamp, TopicId};
use hearsay_sim::run::Sim;
use hearsay_sim::scenario::Action;
use hearsay_sim::world::World;
use std::collections::BTreeSet;

const N: usize = 12;

fn s(secs: u64) -> TimeDelta {
    TimeDelta::from_secs(secs)
}

/// `N` nodes joined by 5 s, all subscribed to "t" at 10 s; run to 40 s.
fn world(seed: u64) -> World {
    let mut w = Sim::builder()
        .nodes(N)
        .seed(seed)
        .duration(s(200))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(5),
            },
        )
        .at(
            s(10),
            Action::Subscribe {
                topic: "t".into(),
                fraction: 1.0,
            },
        )
        .build()
        .unwrap();
    w.record();
    w.run_until(at(40));
    w
}

fn at(secs: u64) -> Timestamp {
    w_epoch() + s(secs)
}

fn w_epoch() -> Timestamp {
    hearsay_sim::SIM_EPOCH
}

fn key_of(w: &World, i: usize) -> EncapsulationKeyBytes {
    w.node(i)
        .unwrap()
        .inspect()
        .record()
        .encapsulation_key
        .clone()
}

fn keys(w: &World, nodes: &[usize]) -> Vec<EncapsulationKeyBytes> {
    nodes.iter().map(|&i| key_of(w, i)).collect()
}

/// Which nodes delivered `id`, with which plaintext and version.
fn delivered(w: &World, id: MessageId) -> Vec<(usize, Vec<u8>, u64)> {
    w.events()
        .iter()
        .filter_map(|(_, i, e)| match e {
            Event::PrivateDelivered {
                id: got,
                plaintext,
                version,
                ..
            } if *got == id => Some((*i, plaintext.to_vec(), *version)),
            _ => None,
        })
        .collect()
}

fn deleted(w: &World, id: MessageId) -> BTreeSet<usize> {
    w.events()
        .iter()
        .filter_map(|(_, i, e)| match e {
            Event::PrivateDeleted { id: got } if *got == id => Some(*i),
            _ => None,
        })
        .collect()
}

/// Whether node `i` can open `id`'s content with the access record it holds now.
fn can_open_with_held_record(w: &World, author: usize, i: usize, id: MessageId) -> bool {
    let content = w.node(author).unwrap().inspect().authored(&id).unwrap();
    let content = Content::new(content.payload.to_bytes()).unwrap();
    let record = w
        .node(i)
        .unwrap()
        .inspect()
        .access_record(&id)
        .unwrap()
        .clone();
    let me = w.identity(i).unwrap();
    open_with_record(&content, &record, me.decapsulator()).is_ok()
}

#[test]
fn readers_fetch_and_open_and_nobody_else_does() {
    let mut w = world(1);
    let topic = TopicId::from_name("t");
    let readers = keys(&w, &[1, 2, 3]);
    let id = w
        .with_node(0, |n, now| {
            n.publish_private(now, topic, b"for three", &readers)
        })
        .unwrap()
        .unwrap();
    w.run_until(at(60));
    let got = delivered(&w, id);
    let who: BTreeSet<usize> = got.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(who, BTreeSet::from([1, 2, 3]), "deliveries: {got:?}");
    assert!(got.iter().all(|(_, p, v)| p == b"for three" && *v == 1));
    // Every subscriber holds the access record; the non-readers found no slot in it.
    for i in 1..N {
        let view = w.node(i).unwrap().inspect();
        assert_eq!(
            view.access_record(&id).map(|r| r.version),
            Some(1),
            "node {i}"
        );
        if i > 3 {
            assert_eq!(view.private_counters().not_a_reader, 1, "node {i}");
            assert_eq!(view.private_counters().fetches_started, 0, "node {i}");
        }
    }
    let author = w.node(0).unwrap().inspect();
    assert_eq!(author.private_counters().served, 3);
    assert_eq!(author.private_counters().served_refused, 0);
    // Relays carried only the announcement: no node but the author holds the content.
    for i in 1..N {
        assert!(w.node(i).unwrap().inspect().authored(&id).is_none());
    }
}

#[test]
fn sync_access_list_moves_readers_without_changing_the_message() {
    let mut w = world(2);
    let topic = TopicId::from_name("t");
    let v1 = keys(&w, &[1, 2, 3]);
    let id = w
        .with_node(0, |n, now| n.publish_private(now, topic, b"list", &v1))
        .unwrap()
        .unwrap();
    w.run_until(at(60));
    assert!(can_open_with_held_record(&w, 0, 3, id));
    // Drop reader 3, add reader 4: same content key, new slots, version 2.
    let v2 = keys(&w, &[1, 2, 4]);
    let version = w
        .with_node(0, |n, now| n.update_readers(now, id, &v2))
        .unwrap()
        .unwrap();
    assert_eq!(version, 2);
    w.run_until(at(80));
    for i in 1..N {
        let held = w
            .node(i)
            .unwrap()
            .inspect()
            .access_record(&id)
            .map(|r| r.version);
        assert_eq!(held, Some(2), "node {i} holds the new version");
    }
    // The removed reader cannot open with the version everyone now holds; the new reader
    // fetched the same id and opened it.
    assert!(!can_open_with_held_record(&w, 0, 3, id));
    assert!(can_open_with_held_record(&w, 0, 4, id));
    let got = delivered(&w, id);
    assert!(
        got.iter()
            .any(|(i, p, v)| *i == 4 && p == b"list" && *v == 2),
        "{got:?}"
    );
}

#[test]
fn a_reader_removed_before_it_fetched_is_refused_by_the_author() {
    let mut w = world(3);
    let topic = TopicId::from_name("t");
    let v1 = keys(&w, &[1, 2, 3]);
    let v2 = keys(&w, &[1, 2]);
    let id = w
        .with_node(0, |n, now| n.publish_private(now, topic, b"too late", &v1))
        .unwrap()
        .unwrap();
    // Step until reader 3 has found its slot and started to fetch, then drop it: its proof
    // reaches an author that holds only the new version's fetch keys.
    let mut t = at(40);
    while w
        .node(3)
        .unwrap()
        .inspect()
        .private_counters()
        .fetches_started
        == 0
    {
        t += TimeDelta::from_millis(1);
        assert!(t < at(45), "reader 3 never started its fetch");
        w.run_until(t);
    }
    w.with_node(0, |n, now| n.update_readers(now, id, &v2))
        .unwrap()
        .unwrap();
    w.run_until(at(70));
    let got = delivered(&w, id);
    let who: BTreeSet<usize> = got.iter().map(|(i, _, _)| *i).collect();
    assert!(!who.contains(&3), "{got:?}");
    let author = w.node(0).unwrap().inspect();
    assert!(
        author.fetch_guard_counters().bad_proof >= 1,
        "{:?}",
        author.fetch_guard_counters()
    );
    assert!(author.private_counters().served_refused >= 1);
    let removed = w.node(3).unwrap().inspect();
    // Its fetch ended, by the author's refusal or by the new version without its slot.
    let c = removed.private_counters();
    assert!(c.fetches_failed + c.not_a_reader >= 1, "{c:?}");
    assert_eq!(removed.access_record(&id).map(|r| r.version), Some(2));
    assert!(!can_open_with_held_record(&w, 0, 3, id));
}

#[test]
fn reencrypt_withdraws_the_old_message_everywhere() {
    let mut w = world(4);
    let topic = TopicId::from_name("t");
    let v1 = keys(&w, &[1, 2, 3]);
    let old = w
        .with_node(0, |n, now| n.publish_private(now, topic, b"secret", &v1))
        .unwrap()
        .unwrap();
    w.run_until(at(60));
    let remaining = keys(&w, &[1, 2]);
    let new = w
        .with_node(0, |n, now| n.reencrypt(now, old, &remaining))
        .unwrap()
        .unwrap();
    assert_ne!(new, old);
    w.run_until(at(90));
    // The new message reaches the remaining readers only.
    let who: BTreeSet<usize> = delivered(&w, new).iter().map(|(i, _, _)| *i).collect();
    assert_eq!(who, BTreeSet::from([1, 2]));
    // The old one is withdrawn: readers that had it are told, every node dropped its record,
    // and the author no longer serves it.
    assert_eq!(deleted(&w, old), BTreeSet::from([1, 2, 3]));
    for i in 0..N {
        let view = w.node(i).unwrap().inspect();
        assert!(view.access_record(&old).is_none(), "node {i}");
    }
    assert!(w.node(0).unwrap().inspect().authored(&old).is_none());
    // The removed reader has no slot in the new message.
    assert!(!can_open_with_held_record(&w, 0, 3, new));
    assert!(can_open_with_held_record(&w, 0, 1, new));
}

#[test]
fn a_group_message_needs_one_slot_and_a_removed_member_cannot_read_after_the_rekey() {
    use hearsay_proto::privacy::group::{Group, Role};
    use rand_core::SeedableRng;
    let mut w = world(5);
    let topic = TopicId::from_name("t");
    let admin = w.identity(0).unwrap();
    // The simulated nodes' crypto (fast stand-ins with the real sizes).
    let provider = std::sync::Arc::new(hearsay_proto::crypto::InsecureTestProvider);
    let mut rng = chacha20::ChaCha8Rng::seed_from_u64(5);
    let (mut group, genesis, secret) = Group::create(&*provider, &admin, 200, &mut rng).unwrap();
    let _ = genesis;
    let members = [1usize, 2, 3];
    for &m in &members {
        let me = w.identity(m).unwrap();
        let p = group
            .propose_add(
                &*provider,
                &admin,
                me.peer_id(),
                me.encapsulation_key().clone(),
                Role::Viewer,
                false,
                &mut rng,
            )
            .unwrap();
        group.apply(&*provider, &p.op).unwrap();
    }
    // The founder wraps shard 0's secret for the members; each opens it and hands the shard
    // key to its node.
    let package = group
        .rekey_package(&*provider, &admin, 0, &secret, &mut rng)
        .unwrap();
    for &m in &members {
        let me = w.identity(m).unwrap();
        let key = group
            .clone()
            .open_package(&*provider, &package, me.decapsulator())
            .unwrap();
        w.with_node(m, |n, _| n.add_group_key(key)).unwrap();
    }
    let readers = group.sealing_keys();
    assert_eq!(readers.len(), 1, "one slot for the whole group");
    let first = w
        .with_node(0, |n, now| {
            n.publish_private(now, topic, b"to the group", &readers)
        })
        .unwrap()
        .unwrap();
    w.run_until(at(60));
    let who: BTreeSet<usize> = delivered(&w, first).iter().map(|(i, _, _)| *i).collect();
    assert_eq!(who, BTreeSet::from([1, 2, 3]));

    // Remove member 3: its shard is rekeyed; the others get the new key.
    let removed = w.identity(3).unwrap().peer_id();
    let p = group
        .propose_remove(&*provider, &admin, removed, &mut rng)
        .unwrap();
    group.apply(&*provider, &p.op).unwrap();
    let rekey = p.rekey.unwrap();
    let package = group
        .rekey_package(&*provider, &admin, rekey.shard, &rekey.secret, &mut rng)
        .unwrap();
    for m in [1usize, 2] {
        let me = w.identity(m).unwrap();
        let key = group
            .clone()
            .open_package(&*provider, &package, me.decapsulator())
            .unwrap();
        w.with_node(m, |n, _| n.add_group_key(key)).unwrap();
    }
    let me3 = w.identity(3).unwrap();
    assert!(
        group
            .clone()
            .open_package(&*provider, &package, me3.decapsulator())
            .is_err()
    );
    let readers = group.sealing_keys();
    let second = w
        .with_node(0, |n, now| {
            n.publish_private(now, topic, b"after the removal", &readers)
        })
        .unwrap()
        .unwrap();
    w.run_until(at(80));
    let who: BTreeSet<usize> = delivered(&w, second).iter().map(|(i, _, _)| *i).collect();
    assert_eq!(who, BTreeSet::from([1, 2]));
    assert_eq!(
        w.node(3).unwrap().inspect().private_counters().not_a_reader,
        1
    );
}
