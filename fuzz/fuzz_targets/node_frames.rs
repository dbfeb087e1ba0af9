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
//!   until both are quiet (kept for 2): publish `rest`, publish `rest` encrypted for the node,
//!   ask FOAF for the node's record, or re-announce its subscriptions.
//!
//! The two nodes, their time and their exchanges come from the core's test harness
//! (`hearsay_proto::testing`).
#![no_main]

use bytes::Bytes;
use hearsay_proto::broadcast::message::{MessageKind, SignedMessage};
use hearsay_proto::broadcast::plumtree::Message as Plum;
use hearsay_proto::discovery::foaf::Target;
use hearsay_proto::testing::{
    Net, T0, broadcast, insecure_config, insecure_identity, node_with, payload,
};
use hearsay_proto::{Config, Node, PeerId, TimeDelta, TopicId};
use libfuzzer_sys::fuzz_target;

/// Most frames kept as templates for op 2.
const TEMPLATES: usize = 64;

/// The frames the neighbour (node 1) delivered to the victim (node 0), at most [`TEMPLATES`].
fn templates(net: &Net) -> Vec<Bytes> {
    net.kept()
        .iter()
        .filter(|(from, to, _)| (*from, *to) == (1, 0))
        .map(|(_, _, frame)| frame.clone())
        .take(TEMPLATES)
        .collect()
}

/// Drains the victim's queues (dropping what they hold) and checks they were within bounds.
fn check_bounds(victim: &mut Node) {
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
}

fuzz_target!(|data: &[u8]| {
    // The victim (harness node 1) and its neighbour (node 2) in the harness's in-memory net:
    // both subscribe, the victim joins through the neighbour, the neighbour publishes once.
    // The frames between them are kept (the neighbour's become op 2's templates).
    let mut net = Net::new(vec![
        node_with(1, insecure_config()),
        node_with(2, insecure_config()),
    ]);
    let signer = insecure_identity(2);
    assert_eq!(signer.peer_id(), net.id(1));
    let peer = net.id(1);
    let topic = TopicId::from_name("fuzz");
    for n in &mut net.nodes {
        n.subscribe(T0, topic).expect("subscribes");
    }
    net.keep_frames(4 * TEMPLATES);
    net.join(0, 1);
    let _ = net.nodes[1].publish(T0, topic, b"a real message");
    net.run();
    let mut now = net.now;
    let mut sequence = 1u64 << 40;

    let mut rest = data;
    while let [op, hi, lo, tail @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        if op % 2 == 1 {
            now += TimeDelta::from_millis(len as u64);
            // The victim's timers only: the neighbour stays as it was.
            let victim = &mut net.nodes[0];
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
                    let _ = net.nodes[0].handle_frame(now, peer, frame);
                }
                1 => {
                    let kind = MessageKind::from_number((op >> 3) & 3).expect("0..=3");
                    sequence += 1;
                    let Ok(message) =
                        SignedMessage::publish_kind(&signer, kind, topic, sequence, now, bytes)
                    else {
                        continue;
                    };
                    let payload = payload(message, signer.verifying_key().clone());
                    let message = if op & 0x20 != 0 {
                        Plum::Repair(payload)
                    } else {
                        Plum::Gossip(payload)
                    };
                    if let Ok(frame) = broadcast(topic, message).encode() {
                        let _ = net.nodes[0].handle_frame(now, peer, frame);
                    }
                }
                2 => {
                    let Some((index, edits)) = bytes.split_first() else {
                        continue;
                    };
                    let templates = templates(&net);
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
                    let _ = net.nodes[0].handle_frame(now, peer, Bytes::from(frame));
                }
                _ => {
                    let (action, rest) = bytes.split_first().map_or((0, &[][..]), |(a, r)| (*a, r));
                    let victim_id = net.id(0);
                    let neighbour = &mut net.nodes[1];
                    match action % 4 {
                        0 => {
                            let _ = neighbour.publish(now, topic, rest);
                        }
                        1 => {
                            let key = net.nodes[0].inspect().record().encapsulation_key.clone();
                            let _ = net.nodes[1].publish_private(now, topic, rest, &[key]);
                        }
                        2 => {
                            let target = Target::Peer(if rest.is_empty() {
                                victim_id
                            } else {
                                PeerId::from_bytes([rest[0]; 32])
                            });
                            let _ = neighbour.find(now, target, None);
                        }
                        _ => {
                            let _ = neighbour.subscribe(now, TopicId::from_name("another"));
                        }
                    }
                    // The two exchange frames until both are quiet.
                    net.now = now;
                    net.run();
                }
            }
        }
        check_bounds(&mut net.nodes[0]);
    }
});
