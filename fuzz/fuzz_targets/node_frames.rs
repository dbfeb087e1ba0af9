//! A node subscribed to a topic, with one established neighbour, fed arbitrary frames from that
//! neighbour and arbitrary passages of time: it must never panic, never leave a timer due after
//! `handle_timeout`, and keep its queues within their bounds.
//!
//! Input: a sequence of records `[op, len_hi, len_lo, bytes...]`; op even = a frame of `len`
//! bytes from the neighbour, op odd = advance time by `len` milliseconds.
#![no_main]

use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::node::{Command, Contact, Transmit};
use hearsay_proto::{Config, Identity, IdentitySeeds, Node, TimeDelta, Timestamp, TopicId};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fn node(seed: u8) -> Node {
    let config = Config {
        crypto: Arc::new(InsecureTestProvider),
        ..Config::default()
    };
    let seeds = IdentitySeeds::from_bytes(&[seed; 96]);
    let identity = Identity::from_seeds(&*config.crypto, seeds);
    Node::new(config, identity, u64::from(seed), Timestamp::from_secs(1_800_000_000))
        .expect("node builds")
}

/// Delivers everything `from` wants to send to `to` (and drops what goes elsewhere).
fn pump(now: Timestamp, from: &mut Node, to: &mut Node) {
    while let Some(t) = from.poll_transmit() {
        if let Transmit::Send { to: peer, frame } = t
            && peer == to.peer_id()
        {
            let _ = to.handle_frame(now, from.peer_id(), frame);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut victim = node(1);
    let mut peer = node(2);
    let mut now = Timestamp::from_secs(1_800_000_000);
    let topic = TopicId::from_name("fuzz");
    victim.handle_connected(now, peer.peer_id());
    peer.handle_connected(now, victim.peer_id());
    victim.subscribe(now, topic).expect("subscribes");
    peer.subscribe(now, topic).expect("subscribes");
    let contact = Contact { peer: peer.peer_id(), addresses: vec![] };
    let _ = victim.handle_command(now, Command::Join { contacts: vec![contact] });
    for _ in 0..4 {
        pump(now, &mut victim, &mut peer);
        pump(now, &mut peer, &mut victim);
    }
    let _ = peer.publish(now, topic, b"a real message");
    pump(now, &mut peer, &mut victim);

    let mut rest = data;
    while let [op, hi, lo, tail @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        if op % 2 == 0 {
            let len = len.min(tail.len());
            let (frame, after) = tail.split_at(len);
            let _ = victim.handle_frame(now, peer.peer_id(), bytes::Bytes::copy_from_slice(frame));
            rest = after;
        } else {
            now += TimeDelta::from_millis(len as u64);
            if victim.poll_timeout().is_some_and(|t| t <= now) {
                victim.handle_timeout(now);
                assert!(victim.poll_timeout().is_none_or(|t| t > now), "timer still due");
            }
            rest = tail;
        }
        let mut sent = 0usize;
        while victim.poll_transmit().is_some() {
            sent += 1;
        }
        assert!(sent <= Config::default().max_queued_transmits, "transmit queue over its bound");
        while victim.poll_event().is_some() {}
    }
});
