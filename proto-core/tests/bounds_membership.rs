//! Bounds (issue G) of membership: HyParView's views, attempts and lost peers, and SWIM's
//! relays, update queue and deduplication, one test per bound (SPEC.md §8.6, the "Bounds"
//! table, lists every bound of the core; bounds_node.rs lists the other `bounds_*` files).
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

use hearsay_proto::identity::record::Addresses;
use hearsay_proto::membership::hyparview::{Message as Hpv, PeerInfo};
use hearsay_proto::membership::swim::{Gossip, Message as Swim, Update};
use hearsay_proto::testing::{
    T0, Victim, fake_peer, insecure_config as config, insecure_identity as identity, rng,
};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{DownReason, Event, Frame, Identity, PeerId, TimeDelta, Transmit};
use std::collections::BTreeSet;

// ------------------------------------------------------------------ HyParView, through the Node

/// Active view: a JOIN beyond `active_view` evicts the newest unprotected neighbour
/// (DISCONNECT, `NeighborDown { Replaced }`), never the longest-standing one (SPEC.md §13.7:
/// nothing a peer sends evicts the protected neighbours).
#[test]
fn hyparview_active_view_evicts_at_active_view() {
    let mut v = Victim::new(config());
    let peers: Vec<Identity> = (1..=8).map(identity).collect();
    for h in &peers {
        v.connect(h);
        v.join(h);
    }
    assert_eq!(v.node.inspect().neighbors().count(), 5);
    let replaced = v
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::NeighborDown {
                    reason: DownReason::Replaced,
                    ..
                }
            )
        })
        .count();
    assert_eq!(replaced, 3);
    // All joined at the same instant: the longest-standing is the first in id order, and it
    // stayed through every eviction.
    let first = peers.iter().map(Identity::peer_id).min().expect("peers");
    assert!(v.node.inspect().neighbors().any(|p| p == first));
    // Evicted before they stood `tried_after`, invited, they are not kept as passive entries
    // (a flood of identities would pour through the active view into the passive one).
    assert_eq!(v.node.inspect().passive().count(), 0);
}

fn info(peer: PeerId) -> PeerInfo {
    PeerInfo {
        peer,
        addresses: Addresses::default(),
    }
}

/// Passive view: one SHUFFLE puts at most `shuffle_active + shuffle_passive + 1` (8) of its
/// entries into the passive view however many it carries (SPEC.md §13.7: one peer cannot
/// replace the view in one go), and SHUFFLEs carrying more peers than `passive_view` leave it
/// at `passive_view` (entries just sent in the reply go first, then random ones).
#[test]
fn hyparview_passive_view_stays_at_passive_view() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.join(&h);
    let mut before = v.node.inspect().passive().count();
    for batch in 0..6u32 {
        let nodes = (0..32).map(|i| info(fake_peer(batch * 32 + i))).collect();
        let shuffle = Hpv::Shuffle {
            origin: info(h.peer_id()),
            ttl: 0,
            nodes: BoundedVec::new(nodes).expect("32 fit"),
        };
        v.send(&h, Frame::Membership(shuffle)).expect("shuffle");
        let batch_ids: BTreeSet<PeerId> = (batch * 32..batch * 32 + 32).map(fake_peer).collect();
        let taken = v
            .node
            .inspect()
            .passive()
            .filter(|p| batch_ids.contains(p))
            .count();
        assert!((1..=8).contains(&taken), "batch {batch}: {taken} taken");
        let now = v.node.inspect().passive().count();
        assert!(
            now <= 30 && now <= before + 8,
            "batch {batch}: {before} -> {now}"
        );
        before = now;
    }
    assert_eq!(before, 30, "six batches of eight fill the view");
}

/// Connection attempts: at most `max_pending` in flight; beyond it an attempt is not started
/// (`attempts_dropped`). Dials the node asks for are therefore bounded too, and forgotten once
/// the attempt times out.
#[test]
fn hyparview_attempts_stop_at_max_pending() {
    let mut v = Victim::new(config());
    let neighbours = [identity(1), identity(2), identity(3)];
    for h in &neighbours {
        v.connect(h);
        v.join(h);
    }
    v.drain();
    // FORWARD_JOINs from three neighbours (each within its share, `join_rate_per_source`),
    // ending here, ask the victim to dial each joiner.
    for n in 0..20 {
        let fj = Hpv::ForwardJoin {
            node: info(fake_peer(n)),
            ttl: 0,
        };
        let h = &neighbours[n as usize % 3];
        v.send(h, Frame::Membership(fj)).expect("forward join");
    }
    let dials = v
        .transmits()
        .into_iter()
        .filter(|t| matches!(t, Transmit::Connect { .. }))
        .count();
    assert_eq!(dials, 8);
    assert_eq!(v.node.inspect().pending_dials(), 8);
    assert_eq!(v.node.inspect().membership_counters().attempts_dropped, 12);
    v.advance(TimeDelta::from_secs(15));
    assert_eq!(v.node.inspect().pending_dials(), 0);
}

/// Lost peers (remembered for re-merge retries): at most `max_lost`; at the bound the peer lost
/// longest ago is forgotten. Driven on the state machine: the Node does not expose the list.
#[test]
fn hyparview_lost_peers_stop_at_max_lost() {
    use hearsay_proto::membership::hyparview::{self, HyParView};
    let mut r = rng(1);
    let mut hv = HyParView::new(
        hyparview::Config::default(),
        fake_peer(u32::MAX),
        Addresses::default(),
        T0,
        &mut r,
    );
    let mut now = T0;
    for n in 0..20 {
        let p = fake_peer(n);
        now += TimeDelta::from_millis(1);
        hv.on_link_up(now, p);
        hv.handle_message(now, p, Some(Addresses::default()), Hpv::Join, &mut r);
        assert!(hv.is_active(&p));
        hv.on_link_down(now, p, &mut r);
        while hv.poll().is_some() {}
    }
    let lost: Vec<PeerId> = hv.lost().copied().collect();
    let expected: BTreeSet<PeerId> = (4..20).map(fake_peer).collect();
    assert_eq!(lost.len(), 16);
    assert_eq!(lost.into_iter().collect::<BTreeSet<_>>(), expected);
}

// ------------------------------------------------------------------ SWIM, through the Node

fn suspect(peer: PeerId, hops: u8) -> Gossip {
    Gossip {
        update: Update::Suspect {
            peer,
            incarnation: 0,
            by: None,
        },
        hops,
    }
}

/// An ACK that matches no probe, carrying `updates`: its updates are absorbed all the same.
fn ack_with(updates: Vec<Gossip>) -> Frame {
    Frame::FailureDetection(Swim::Ack {
        seq: 0,
        view: None,
        updates: BoundedVec::new(updates).expect("≤ 8 updates"),
    })
}

fn ping(seq: u64) -> Frame {
    Frame::FailureDetection(Swim::Ping {
        seq,
        want_view: false,
        updates: BoundedVec::default(),
        rtt_us: None,
    })
}

/// Peers named by the updates piggybacked on the ACKs in `frames`.
fn piggybacked(frames: Vec<Frame>) -> Vec<PeerId> {
    frames
        .into_iter()
        .flat_map(|f| match f {
            Frame::FailureDetection(Swim::Ack { updates, .. }) => updates.into_vec(),
            _ => Vec::new(),
        })
        .map(|g| match g.update {
            Update::Suspect { peer, .. } => peer,
            other => panic!("unexpected update {other:?}"),
        })
        .collect()
}

/// Relayed PING_REQs: at most `max_relays` at once; beyond it the requester gets a NACK at
/// once (`relays_refused`). Relays end at the probe timeout (a NACK each).
#[test]
fn swim_relays_stop_at_max_relays() {
    let mut v = Victim::new(config());
    let target = identity(1);
    let requester = identity(2);
    v.connect(&target);
    v.join(&target); // a neighbour, hence a SWIM member
    v.connect(&requester);
    v.drain();
    for seq in 0..70 {
        let req = Swim::PingReq {
            seq,
            target: target.peer_id(),
        };
        v.send(&requester, Frame::FailureDetection(req))
            .expect("ping req");
    }
    let nacks = |frames: Vec<Frame>| {
        frames
            .into_iter()
            .filter(|f| matches!(f, Frame::FailureDetection(Swim::Nack { .. })))
            .count()
    };
    let sent = v.transmits();
    let to = |peer: PeerId| -> Vec<Frame> {
        sent.iter()
            .filter_map(|t| match t {
                Transmit::Send { to, frame } if *to == peer => Frame::decode(frame).ok(),
                _ => None,
            })
            .collect()
    };
    assert_eq!(nacks(to(requester.peer_id())), 6);
    let pings = to(target.peer_id())
        .into_iter()
        .filter(|f| matches!(f, Frame::FailureDetection(Swim::Ping { .. })))
        .count();
    assert_eq!(pings, 64);
    assert_eq!(
        v.node.inspect().failure_detector_counters().relays_refused,
        6
    );
    // The target never answers: at the probe timeout every relay ends with a NACK, and the
    // table has room again.
    v.advance(TimeDelta::from_millis(400));
    assert_eq!(nacks(v.frames_to(requester.peer_id())), 64);
    let req = Swim::PingReq {
        seq: 100,
        target: target.peer_id(),
    };
    v.send(&requester, Frame::FailureDetection(req))
        .expect("ping req");
    assert_eq!(
        v.node.inspect().failure_detector_counters().relays_refused,
        6
    );
}

/// Updates waiting to be piggybacked: at most 64; at the bound the oldest is dropped.
#[test]
fn swim_update_queue_drops_the_oldest_at_64() {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.drain();
    // 104 distinct hints with hops left, so each is queued to be passed on.
    for batch in 0..13u32 {
        let updates = (0..8)
            .map(|i| suspect(fake_peer(batch * 8 + i), 1))
            .collect();
        v.send(&h, ack_with(updates)).expect("ack");
    }
    // Drain the queue through the ACKs of PINGs (8 updates per ACK, 4 sends per update).
    let mut seen = BTreeSet::new();
    for seq in 0..64 {
        v.send(&h, ping(seq)).expect("ping");
        seen.extend(piggybacked(v.frames_to(h.peer_id())));
    }
    let newest: BTreeSet<PeerId> = (40..104).map(fake_peer).collect();
    assert_eq!(seen, newest);
}

/// Returns whether a hint `U`, first heard without hops (remembered only), then again with
/// hops after `fillers` other hints, is passed on the second time.
fn swim_seen_scenario(fillers: u32) -> bool {
    let mut v = Victim::new(config());
    let h = identity(1);
    v.connect(&h);
    v.drain();
    let u = fake_peer(1_000_000);
    v.send(&h, ack_with(vec![suspect(u, 0)])).expect("ack");
    let mut n = 0;
    while n < fillers {
        let k = (fillers - n).min(8);
        let updates = (n..n + k).map(|i| suspect(fake_peer(i), 0)).collect();
        v.send(&h, ack_with(updates)).expect("ack");
        n += k;
    }
    v.send(&h, ack_with(vec![suspect(u, 1)])).expect("ack");
    v.drain();
    v.send(&h, ping(1)).expect("ping");
    piggybacked(v.frames_to(h.peer_id())).contains(&u)
}

/// Updates already seen (deduplication): at most 1,024 remembered; at the bound the oldest is
/// forgotten, and the same update heard again is news again.
#[test]
fn swim_seen_updates_forget_the_oldest_at_1024() {
    assert!(!swim_seen_scenario(1023), "still remembered: not passed on");
    assert!(swim_seen_scenario(1024), "forgotten: passed on again");
}
