//! A node subscribed to a topic, with one established neighbour, fed arbitrary frames from that
//! neighbour and arbitrary passages of time: it must never panic, never leave a timer due after
//! `handle_timeout`, and keep its queues within their bounds.
//!
//! Input: a sequence of records `[op, len_hi, len_lo, bytes...]`. Odd `op`: advance time by `len`
//! milliseconds. Even `op`, by `(op >> 1) & 3`:
//! - 0: `bytes` are a frame from the neighbour (any kind: session, membership, failure
//!   detection, topic, reconciliation, discovery (5), private fetch (6));
//! - 1: `bytes` are the payload of a message the neighbour signs (insecure test provider, so the
//!   signature is real) of message kind `(op >> 3) & 3` (§15.1: application, announcement,
//!   delete request, sealed content), sent as GOSSIP (REPAIR if `op & 0x20`);
//! - 2: `bytes` = `[index, (off_hi, off_lo, xor)...]`: a frame the neighbour really sent earlier
//!   (its Hello, subscriptions, membership, payloads, answers, challenges, contents...), mutated;
//! - 3: `bytes` = `[action, rest...]`: the neighbour does something and the two exchange frames
//!   for a while (recorded for 2): publish `rest`, publish `rest` encrypted for the node, ask
//!   FOAF for the node's record, or re-announce its subscriptions.
#![no_main]

use bytes::Bytes;
use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::discovery::foaf::Target;
use hearsay_proto::broadcast::message::{MessageKind, SignedMessage};
use hearsay_proto::node::{Command, Contact, Transmit};
use hearsay_proto::broadcast::plumtree::{Message as Plum, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::{
    Config, Frame, Identity, IdentitySeeds, Node, PeerId, TimeDelta, Timestamp, TopicId,
};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fn identity(seed: u8) -> Identity {
    Identity::from_seeds(
        &InsecureTestProvider,
        IdentitySeeds::from_bytes(&[seed; 96]),
    )
}

fn node(seed: u8) -> Node {
    let config = Config {
        crypto: Arc::new(InsecureTestProvider),
        ..Config::default()
    };
    Node::new(
        config,
        identity(seed),
        u64::from(seed),
        Timestamp::from_secs(1_800_000_000),
    )
    .expect("node builds")
}

/// Most frames kept as templates for op 2.
const TEMPLATES: usize = 64;

/// Delivers everything `from` wants to send to `to` (and drops what goes elsewhere); keeps
/// what it delivered in `record`, if given.
fn pump(now: Timestamp, from: &mut Node, to: &mut Node, mut record: Option<&mut Vec<Bytes>>) {
    while let Some(t) = from.poll_transmit() {
        if let Transmit::Send { to: peer, frame } = t
            && peer == to.peer_id()
        {
            if let Some(r) = record.as_deref_mut()
                && r.len() < TEMPLATES
            {
                r.push(frame.clone());
            }
            let _ = to.handle_frame(now, from.peer_id(), frame);
        }
    }
}

fn check_bounds(victim: &mut Node, now: Timestamp) {
    let mut sent = 0usize;
    while victim.poll_transmit().is_some() {
        sent += 1;
    }
    assert!(
        sent <= Config::default().max_queued_transmits,
        "transmit queue over its bound"
    );
    let mut events = 0usize;
    while victim.poll_event().is_some() {
        events += 1;
    }
    assert!(
        events <= Config::default().max_queued_events,
        "event queue over its bound"
    );
    let _ = now;
}

fuzz_target!(|data: &[u8]| {
    let mut victim = node(1);
    let mut peer = node(2);
    let signer = identity(2);
    assert_eq!(signer.peer_id(), peer.peer_id());
    let mut now = Timestamp::from_secs(1_800_000_000);
    let topic = TopicId::from_name("fuzz");
    victim.handle_connected(now, peer.peer_id());
    peer.handle_connected(now, victim.peer_id());
    victim.subscribe(now, topic).expect("subscribes");
    peer.subscribe(now, topic).expect("subscribes");
    let contact = Contact {
        peer: peer.peer_id(),
        addresses: vec![],
    };
    let _ = victim.handle_command(
        now,
        Command::Join {
            contacts: vec![contact],
        },
    );
    let mut templates: Vec<Bytes> = Vec::new();
    for _ in 0..4 {
        pump(now, &mut victim, &mut peer, None);
        pump(now, &mut peer, &mut victim, Some(&mut templates));
    }
    let _ = peer.publish(now, topic, b"a real message");
    pump(now, &mut peer, &mut victim, Some(&mut templates));
    let mut sequence = 1u64 << 40;

    let mut rest = data;
    while let [op, hi, lo, tail @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        if op % 2 == 1 {
            now += TimeDelta::from_millis(len as u64);
            if victim.poll_timeout().is_some_and(|t| t <= now) {
                victim.handle_timeout(now);
                assert!(
                    victim.poll_timeout().is_none_or(|t| t > now),
                    "timer still due"
                );
            }
            rest = tail;
        } else {
            let len = len.min(tail.len());
            let (bytes, after) = tail.split_at(len);
            rest = after;
            match (op >> 1) & 3 {
                0 => {
                    let frame = Bytes::copy_from_slice(bytes);
                    let _ = victim.handle_frame(now, peer.peer_id(), frame);
                }
                1 => {
                    let kind = MessageKind::from_number((op >> 3) & 3).expect("0..=3");
                    sequence += 1;
                    let Ok(message) =
                        SignedMessage::publish_kind(&signer, kind, topic, sequence, now, bytes)
                    else {
                        continue;
                    };
                    let payload = Payload {
                        message,
                        author_key: signer.verifying_key().clone(),
                        hops: 1,
                    };
                    let message = if op & 0x20 != 0 {
                        Plum::Repair(payload)
                    } else {
                        Plum::Gossip(payload)
                    };
                    if let Ok(frame) =
                        Frame::Topic(TopicMessage::Broadcast { topic, message }).encode()
                    {
                        let _ = victim.handle_frame(now, peer.peer_id(), frame);
                    }
                }
                2 => {
                    let Some((index, edits)) = bytes.split_first() else {
                        continue;
                    };
                    let Some(t) = templates.get(usize::from(*index) % templates.len().max(1))
                    else {
                        continue;
                    };
                    let mut frame = t.to_vec();
                    for e in edits.chunks_exact(3) {
                        let off = usize::from(e[0]) << 8 | usize::from(e[1]);
                        if let Some(b) = frame.get_mut(off) {
                            *b ^= e[2];
                        }
                    }
                    let _ = victim.handle_frame(now, peer.peer_id(), Bytes::from(frame));
                }
                _ => {
                    let (action, rest) = bytes.split_first().map_or((0, &[][..]), |(a, r)| (*a, r));
                    match action % 4 {
                        0 => {
                            let _ = peer.publish(now, topic, rest);
                        }
                        1 => {
                            let key = victim.inspect().record().encapsulation_key.clone();
                            let _ = peer.publish_private(now, topic, rest, &[key]);
                        }
                        2 => {
                            let target = Target::Peer(if rest.is_empty() {
                                victim.peer_id()
                            } else {
                                PeerId::from_bytes([rest[0]; 32])
                            });
                            let _ = peer.find(now, target, None);
                        }
                        _ => {
                            let _ = peer.subscribe(now, TopicId::from_name("another"));
                        }
                    }
                    for _ in 0..4 {
                        pump(now, &mut peer, &mut victim, Some(&mut templates));
                        pump(now, &mut victim, &mut peer, None);
                    }
                }
            }
        }
        check_bounds(&mut victim, now);
    }
});
