//! Plumtree under random input: a message is delivered at most once, only after it passed the
//! topic's validator, and is then delivered even if forged copies with the same id came first;
//! nothing that failed validation is ever forwarded; state stays within its bounds.
use hearsay_proto::broadcast::message::{MessageError, Payload as Bytes_, SignedMessage};
use hearsay_proto::broadcast::plumtree::{
    Announcement, Config, Message, Output, Payload, Plumtree, Validator,
};
use hearsay_proto::crypto::{
    SIG_VERIFYING_KEY_LEN, SIGNATURE_LEN, SignatureBytes, VerifyingKeyBytes,
};
use hearsay_proto::testing::T0;
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{MessageId, PeerId, TimeDelta, TopicId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Accepts a message iff the first byte of its signature is 0 (no crypto needed).
struct FirstByte;
impl Validator for FirstByte {
    fn validate(&self, m: &SignedMessage, _: &VerifyingKeyBytes) -> Result<(), MessageError> {
        if m.signature.as_bytes()[0] == 0 {
            Ok(())
        } else {
            Err(MessageError::BadSignature)
        }
    }
}

fn topic() -> TopicId {
    TopicId::from_name("t")
}

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes([n + 1; 32])
}

fn message(n: u8, valid: bool) -> SignedMessage {
    let mut sig = vec![0u8; SIGNATURE_LEN];
    sig[0] = u8::from(!valid);
    SignedMessage {
        author: PeerId::from_bytes([200; 32]),
        topic: topic(),
        sequence: u64::from(n),
        timestamp: T0,
        payload: Bytes_::new(vec![n; 8]).unwrap(),
        signature: SignatureBytes::new(sig).unwrap(),
        kind: Default::default(),
    }
}

fn payload(n: u8, valid: bool, hops: u8) -> Payload {
    Payload {
        message: message(n, valid),
        author_key: VerifyingKeyBytes::new(vec![0u8; SIG_VERIFYING_KEY_LEN]).unwrap(),
        hops,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Up(u8),
    Down(u8),
    Gossip {
        from: u8,
        msg: u8,
        valid: bool,
        repair: bool,
        hops: u8,
    },
    IHave {
        from: u8,
        msgs: Vec<(u8, u8)>,
    },
    Graft {
        from: u8,
        msgs: Vec<u8>,
    },
    IWant {
        from: u8,
        msgs: Vec<u8>,
    },
    Prune(u8),
    Publish(u8),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..5).prop_map(Op::Up),
        (0u8..5).prop_map(Op::Down),
        (0u8..5, 0u8..16, any::<bool>(), any::<bool>(), 1u8..12).prop_map(
            |(from, msg, valid, repair, hops)| Op::Gossip {
                from,
                msg,
                valid,
                repair,
                hops
            }
        ),
        (0u8..5, prop::collection::vec((0u8..24, 1u8..12), 0..8))
            .prop_map(|(from, msgs)| Op::IHave { from, msgs }),
        (0u8..5, prop::collection::vec(0u8..24, 0..4))
            .prop_map(|(from, msgs)| Op::Graft { from, msgs }),
        (0u8..5, prop::collection::vec(0u8..24, 0..4))
            .prop_map(|(from, msgs)| Op::IWant { from, msgs }),
        (0u8..5).prop_map(Op::Prune),
        (100u8..104).prop_map(Op::Publish),
        (1u16..2000).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn delivers_once_never_forwards_invalid_and_stays_bounded(ops in prop::collection::vec(op(), 1..120)) {
        let config = Config { max_missing: 6, max_announcers: 2, cache_messages: 10, ..Config::default() };
        let mut p = Plumtree::new(config.clone(), topic());
        let mut now = T0;
        let mut delivered: BTreeMap<MessageId, u32> = BTreeMap::new();
        let mut valid_received: BTreeSet<MessageId> = BTreeSet::new();
        let mut neighbors: BTreeSet<u8> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Up(n) => { neighbors.insert(n); p.neighbor_up(peer(n)) }
                Op::Down(n) => { neighbors.remove(&n); p.neighbor_down(&peer(n)) }
                Op::Gossip { from, msg, valid, repair, hops } => {
                    let pl = payload(msg, valid, hops);
                    if valid && (neighbors.contains(&from) || repair) {
                        valid_received.insert(pl.message.id());
                    }
                    let m = if repair { Message::Repair(pl) } else { Message::Gossip(pl) };
                    p.handle_message(now, peer(from), m, &FirstByte);
                }
                Op::IHave { from, msgs } => {
                    let entries = msgs.iter().map(|(m, h)| Announcement { id: message(*m, true).id(), hops: *h }).collect();
                    p.handle_message(now, peer(from), Message::IHave(BoundedVec::new(entries).unwrap()), &FirstByte);
                }
                Op::Graft { from, msgs } => {
                    let ids = msgs.iter().map(|m| message(*m, true).id()).collect();
                    p.handle_message(now, peer(from), Message::Graft(BoundedVec::new(ids).unwrap()), &FirstByte);
                }
                Op::IWant { from, msgs } => {
                    let ids = msgs.iter().map(|m| message(*m, true).id()).collect();
                    p.handle_message(now, peer(from), Message::IWant(BoundedVec::new(ids).unwrap()), &FirstByte);
                }
                Op::Prune(n) => p.handle_message(now, peer(n), Message::Prune, &FirstByte),
                Op::Publish(n) => {
                    let pl = payload(n, true, 1);
                    p.publish(now, pl.message, pl.author_key);
                }
                Op::Wait(ms) => {
                    now += TimeDelta::from_millis(u64::from(ms));
                    while let Some(t) = p.poll_timeout() {
                        if t > now { break; }
                        p.handle_timeout(t.max(T0));
                        prop_assert!(p.poll_timeout().is_none_or(|n| n > t), "still due after handle_timeout");
                    }
                }
            }
            while let Some(out) = p.poll() {
                match out {
                    Output::Deliver { message, id, .. } => {
                        prop_assert_eq!(message.signature.as_bytes()[0], 0, "delivered an invalid message");
                        *delivered.entry(id).or_insert(0) += 1;
                    }
                    Output::Send { message: Message::Gossip(pl) | Message::Repair(pl), to } => {
                        prop_assert_eq!(pl.message.signature.as_bytes()[0], 0, "forwarded an invalid message to {:?}", to);
                    }
                    Output::Send { message: Message::IHave(entries), .. } => {
                        for e in entries.iter() {
                            prop_assert!(p.has_seen(&e.id), "announced an id never accepted");
                        }
                    }
                    _ => {}
                }
            }
            let eager: BTreeSet<PeerId> = p.eager_peers().copied().collect();
            prop_assert!(p.lazy_peers().all(|l| !eager.contains(l)), "a peer both eager and lazy");
            prop_assert!(p.missing() <= config.max_missing);
            prop_assert!(p.retained_ids().count() <= config.cache_messages);
        }
        for (id, n) in &delivered {
            prop_assert_eq!(*n, 1, "delivered {:?} {} times", id, n);
        }
        // Every valid copy that reached the node was delivered, forged copies first or not.
        for id in &valid_received {
            prop_assert!(delivered.contains_key(id), "a valid message was never delivered");
        }
    }
}

#[test]
fn ihave_floods_graft_from_strangers_and_unknown_iwants_are_bounded_and_counted() {
    let config = Config::default();
    let mut p = Plumtree::new(config.clone(), topic());
    p.neighbor_up(peer(1));
    let now = T0;
    for round in 0..100u32 {
        let entries: Vec<Announcement> = (0..64u32)
            .map(|i| Announcement {
                id: MessageId::from_bytes(
                    *blake3::hash(&(round * 64 + i).to_be_bytes()).as_bytes(),
                ),
                hops: 1,
            })
            .collect();
        p.handle_message(
            now,
            peer(1),
            Message::IHave(BoundedVec::new(entries).unwrap()),
            &FirstByte,
        );
    }
    assert_eq!(p.missing(), config.max_missing);
    assert_eq!(p.counters().overflow, 6400 - config.max_missing as u64);
    // A stranger's GRAFT changes nothing.
    p.handle_message(
        now,
        peer(3),
        Message::Graft(BoundedVec::default()),
        &FirstByte,
    );
    assert_eq!(p.counters().not_neighbor, 1);
    assert!(p.eager_peers().all(|e| *e != peer(3)));
    // IWANT for unknown ids: counted, nothing sent.
    while p.poll().is_some() {}
    let ids = (0..10u8).map(|i| message(i, true).id()).collect();
    p.handle_message(
        now,
        peer(1),
        Message::IWant(BoundedVec::new(ids).unwrap()),
        &FirstByte,
    );
    assert_eq!(p.counters().unknown_requests, 10);
    assert!(p.poll().is_none());
    // Missing entries are given up after their announcers were tried.
    let mut t = now;
    for _ in 0..100 {
        t += TimeDelta::from_millis(300);
        p.handle_timeout(t);
    }
    assert_eq!(p.missing(), 0);
    assert_eq!(p.counters().missing_abandoned, config.max_missing as u64);
}

#[test]
fn duplicate_from_an_eager_peer_prunes_it_and_missing_messages_are_grafted() {
    let mut p = Plumtree::new(Config::default(), topic());
    for n in 1..=3 {
        p.neighbor_up(peer(n));
    }
    p.handle_message(
        T0,
        peer(1),
        Message::Gossip(payload(1, true, 1)),
        &FirstByte,
    );
    let out: Vec<Output> = std::iter::from_fn(|| p.poll()).collect();
    assert!(matches!(out[0], Output::Deliver { hops: 1, .. }));
    let forwarded: BTreeSet<PeerId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                message: Message::Gossip(pl),
            } => {
                assert_eq!(pl.hops, 2);
                Some(*to)
            }
            _ => None,
        })
        .collect();
    assert_eq!(forwarded, [peer(2), peer(3)].into_iter().collect());
    // Same message from peer 2: PRUNE back, peer 2 becomes lazy.
    p.handle_message(
        T0,
        peer(2),
        Message::Gossip(payload(1, true, 3)),
        &FirstByte,
    );
    assert_eq!(
        p.poll(),
        Some(Output::Send {
            to: peer(2),
            message: Message::Prune
        })
    );
    assert!(p.lazy_peers().any(|l| *l == peer(2)));
    // Message 2 only announced by the lazy peer 2: after ihave_timeout, GRAFT to it.
    let id2 = message(2, true).id();
    let a = Announcement { id: id2, hops: 2 };
    p.handle_message(
        T0,
        peer(2),
        Message::IHave(BoundedVec::new(vec![a]).unwrap()),
        &FirstByte,
    );
    p.handle_timeout(T0 + TimeDelta::from_millis(499));
    assert_eq!(p.poll(), None);
    p.handle_timeout(T0 + TimeDelta::from_millis(500));
    assert_eq!(
        p.poll(),
        Some(Output::Send {
            to: peer(2),
            message: Message::Graft(BoundedVec::new(vec![id2]).unwrap())
        })
    );
    assert!(p.eager_peers().any(|e| *e == peer(2)));
}

#[test]
fn replays_older_than_retention_are_refused_even_after_the_seen_cache_forgot_them() {
    let config = Config {
        retention: TimeDelta::from_secs(60),
        ..Config::default()
    };
    let mut p = Plumtree::new(config, topic());
    p.neighbor_up(peer(1));
    p.handle_message(
        T0,
        peer(1),
        Message::Gossip(payload(1, true, 1)),
        &FirstByte,
    );
    assert!(matches!(p.poll(), Some(Output::Deliver { .. })));
    let later = T0 + TimeDelta::from_secs(61);
    p.handle_timeout(later);
    assert!(
        !p.has_seen(&message(1, true).id()),
        "the id left the seen-cache"
    );
    p.handle_message(
        later,
        peer(1),
        Message::Gossip(payload(1, true, 1)),
        &FirstByte,
    );
    assert!(std::iter::from_fn(|| p.poll()).all(|o| !matches!(o, Output::Deliver { .. })));
    assert_eq!(p.counters().too_old, 1);
}
