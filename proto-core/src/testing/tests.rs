//! The harness's own tests: what the tests built on it rely on.

use super::*;
use crate::membership::hyparview;
use crate::{Config, Event, Frame, TimeDelta, TopicId, Transmit};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Four nodes in one overlay (1, 2 and 3 join through 0), frames kept from now on.
fn square() -> Net {
    let mut net = Net::new((1..=4).map(node).collect());
    for i in 1..4 {
        net.join(i, 0);
    }
    net.advance(TimeDelta::from_secs(2));
    net.keep_frames(usize::MAX);
    net
}

#[test]
fn times_and_ids_are_fixed() {
    assert_eq!(T0.as_micros(), 1_800_000_000_000_000);
    assert_eq!(at(3600), T0 + HOUR);
    assert_ne!(fake_peer(1), fake_peer(2));
    assert_ne!(fake_id(1), fake_id(2));
    assert_eq!(fake_peer(7), fake_peer(7));
}

#[test]
fn identities_are_deterministic_and_follow_the_provider() {
    assert_eq!(identity(1).peer_id(), identity(1).peer_id());
    assert_ne!(identity(1).peer_id(), identity(2).peer_id());
    let pure = identity_with(&crate::PureRustProvider, 1);
    assert_eq!(pure.peer_id(), identity(1).peer_id());
    assert_eq!(node(5).peer_id(), identity(5).peer_id());
    let r = record(&identity(3), T0, HOUR);
    assert_eq!(r.verify(&crate::PureRustProvider, T0), Ok(()));
    assert_eq!(r.expires_at, T0 + HOUR);
}

#[cfg(feature = "insecure-test-crypto")]
#[test]
fn insecure_identities_are_other_keys_from_the_same_numbers() {
    assert_ne!(insecure_identity(1).peer_id(), identity(1).peer_id());
    assert_eq!(
        node_with(1, insecure_config()).peer_id(),
        insecure_identity(1).peer_id()
    );
}

#[test]
fn a_pair_ends_as_neighbours_and_quiet() {
    let mut net = Net::pair(node(1), node(2));
    assert_eq!(net.neighbors(0), [net.id(1)]);
    assert_eq!(net.neighbors(1), [net.id(0)]);
    let up = |i| {
        net.events
            .iter()
            .filter(|(j, e)| *j == i && matches!(e, Event::NeighborUp { .. }))
            .count()
    };
    assert_eq!((up(0), up(1)), (1, 1));
    assert!(net.counters.delivered >= 4, "{:?}", net.counters);
    let delivered = net.counters.delivered;
    net.run();
    assert_eq!(net.counters.delivered, delivered, "quiet");
}

#[test]
fn advance_fires_timers_and_ends_at_the_target() {
    let mut net = Net::pair(node(1), node(2));
    net.advance(TimeDelta::from_secs(90));
    assert_eq!(net.now, at(90));
    // SWIM probes and shuffles ran meanwhile, and the two are still neighbours.
    assert!(net.counters.delivered > 10, "{:?}", net.counters);
    assert_eq!(net.neighbors(0), [net.id(1)]);
}

#[test]
fn a_cut_delivers_nothing_across_it_until_healed() {
    let mut net = square();
    net.partition(&[0, 1]);
    assert!(net.is_cut(0, 2) && net.is_cut(3, 1) && !net.is_cut(0, 1) && !net.is_cut(2, 3));
    net.advance(TimeDelta::from_secs(60));
    let side = |i: usize| i < 2;
    assert!(
        net.counters.cut > 0,
        "frames tried to cross: {:?}",
        net.counters
    );
    assert!(
        net.kept()
            .iter()
            .all(|(from, to, _)| side(*from) == side(*to)),
        "a frame crossed the cut"
    );
    let crossed = |net: &Net| {
        net.kept()
            .iter()
            .filter(|(from, to, _)| side(*from) != side(*to))
            .count()
    };
    net.heal();
    net.advance(TimeDelta::from_secs(60));
    assert!(crossed(&net) > 0, "healed: frames cross again");
}

#[test]
fn a_one_way_cut_drops_one_direction_only() {
    let mut net = Net::new(vec![node(1), node(2)]);
    net.cut_one_way(1, 0);
    net.keep_frames(usize::MAX);
    net.join(0, 1);
    assert!(net.kept().iter().all(|(from, _, _)| *from == 0));
    assert!(!net.kept().is_empty() && net.counters.cut > 0);
    // Node 0 never got node 1's Hello: still waiting for it.
    assert_eq!(net.nodes[0].inspect().pending_handshakes(), 1);
}

/// Four nodes, loss at `rate` with `seed`, a minute of protocol: the trace and the frames
/// delivered and lost over that minute.
fn lossy(rate: f64, seed: u64) -> (String, u64, u64) {
    let mut net = square();
    let before = net.counters;
    net.set_loss(rate, seed);
    net.start_trace();
    net.advance(TimeDelta::from_secs(60));
    let c = net.counters;
    (
        String::from(net.trace()),
        c.delivered - before.delivered,
        c.lost - before.lost,
    )
}

#[test]
fn loss_is_deterministic_per_seed() {
    let (trace, delivered, lost) = lossy(0.3, 7);
    assert!(
        lost > 0 && delivered > 0,
        "{delivered} delivered, {lost} lost"
    );
    assert_eq!(
        lossy(0.3, 7),
        (trace.clone(), delivered, lost),
        "same seed, same run"
    );
    let (other, _, _) = lossy(0.3, 8);
    assert_ne!(other, trace, "another seed drops other frames");
    let (_, delivered, lost) = lossy(0.0, 7);
    assert!(lost == 0 && delivered > 0);
    let (_, delivered, lost) = lossy(1.0, 7);
    assert!(
        lost > 0 && delivered == 0,
        "{delivered} delivered, {lost} lost"
    );
}

#[test]
fn peers_outside_the_net_are_injected_counted_and_closed() {
    let mut net = Net::new(vec![node(1)]);
    let stranger = identity(9);
    net.connect_outside(0, &record(&stranger, T0, HOUR))
        .expect("hello accepted");
    net.inject(
        0,
        stranger.peer_id(),
        encode(Frame::Membership(hyparview::Message::Join)),
    )
    .expect("join accepted");
    net.run();
    assert_eq!(net.neighbors(0), [stranger.peer_id()]);
    assert!(net.counters.to_outside > 0, "its answers went nowhere");
    // Garbage is refused.
    let garbage = bytes::Bytes::from_static(&[0xff, 0x00]);
    assert!(net.inject(0, stranger.peer_id(), garbage).is_err());
    // A goodbye-less leave: the node closes, the net reports it.
    net.nodes[0]
        .handle_command(net.now, crate::Command::Leave)
        .expect("leaves");
    net.run();
    assert_eq!(net.closed, [(0, stranger.peer_id())]);
    // A dial to a peer outside the net fails at once.
    let mut net = Net::new(vec![node(1)]);
    let contact = crate::Contact {
        peer: stranger.peer_id(),
        addresses: Vec::new(),
    };
    net.nodes[0]
        .handle_command(
            T0,
            crate::Command::Join {
                contacts: vec![contact],
            },
        )
        .expect("joins");
    net.run();
    assert_eq!(net.nodes[0].inspect().pending_dials(), 0);
}

#[test]
fn the_trace_is_off_unless_started() {
    let mut net = Net::pair(node(1), node(2));
    assert_eq!(net.trace(), "");
    net.start_trace();
    net.advance(TimeDelta::from_secs(5));
    assert!(net.trace().contains("frame 0->1 "), "{}", net.trace());
}

#[test]
fn a_victim_keeps_its_outputs_for_the_test() {
    let topic = TopicId::from_name("victim");
    let h = identity(1);
    let mut v = Victim::subscribed(Config::default(), topic, &h);
    assert_eq!(v.node.inspect().topic_neighbors(&topic), [h.peer_id()]);
    let m = signed(&h, topic, 1, v.now, 8);
    let gossip = broadcast(
        topic,
        crate::broadcast::plumtree::Message::Gossip(payload(m, h.verifying_key().clone())),
    );
    v.send(&h, gossip).expect("gossip");
    assert!(
        v.events()
            .iter()
            .any(|e| matches!(e, Event::Delivered { sequence: 1, .. }))
    );
    v.send_bytes(h.peer_id(), bytes::Bytes::from_static(&[0xff]))
        .expect_err("garbage");
    assert_eq!(v.counters().rejected_decode, 1);
    // A PING is answered, and the answer waits in the queue.
    let ping = Frame::FailureDetection(crate::membership::swim::Message::Ping {
        seq: 3,
        want_view: false,
        updates: Default::default(),
        rtt_us: None,
    });
    v.send(&h, ping).expect("ping");
    let acks = v.frames_to(h.peer_id());
    assert!(matches!(
        acks.as_slice(),
        [Frame::FailureDetection(
            crate::membership::swim::Message::Ack { seq: 3, .. }
        )]
    ));
    v.advance(TimeDelta::from_secs(5));
    assert_eq!(v.now, at(5));
    assert!(
        v.transmits()
            .iter()
            .any(|t| matches!(t, Transmit::Send { .. }))
    );
}

#[test]
fn frames_round_trip() {
    let topic = TopicId::from_name("frames");
    let ids = [fake_id(1), fake_id(2)];
    let f = broadcast(topic, ihave(ids));
    assert_eq!(Frame::decode(&encode(f.clone())), Ok(f));
    let j = topic_join(topic);
    assert_eq!(Frame::decode(&encode(j.clone())), Ok(j));
    let u = unsigned(topic, 4, T0, 10);
    assert_eq!((u.sequence, u.payload.len()), (4, 10));
    assert_eq!(hex(&[0, 255]), "00ff");
}
