//! After `handle_timeout(t)`, `poll_timeout()` is never at or before `t` (SPEC.md §8.8),
//! whatever the inputs and however late the driver wakes.
use super::*;
use crate::machine::check::timers_move_forward;
use alloc::vec;
use proptest::prelude::*;
use rand_core::SeedableRng;

pub(super) const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

/// Peer 0 is the node itself.
pub(super) fn pid(n: u8) -> PeerId {
    PeerId::from_bytes([n; 32])
}

pub(super) fn info(n: u8) -> PeerInfo {
    PeerInfo {
        peer: pid(n),
        addresses: Addresses::default(),
    }
}

fn infos(ns: &[u8]) -> BoundedVec<PeerInfo, MAX_SHUFFLE_NODES> {
    BoundedVec::new(ns.iter().map(|n| info(*n)).collect()).unwrap_or_default()
}

#[derive(Debug, Clone)]
enum Op {
    /// A message from a peer: its kind, a peer it names, a ttl, a flag, a sample.
    Message(u8, u8, u8, u8, bool, Vec<u8>),
    LinkUp(u8),
    LinkDown(u8),
    Failed(u8),
    Left(u8),
    Join(Vec<u8>),
    Introduce(u8),
    Link(u8),
    Remember(Vec<u8>),
    Leave,
    /// The driver wakes late: `handle_timeout` at once, this many ms on.
    LateWake(u32),
}

fn peers() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0u8..10, 0..5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u8..10, 0u8..10, 0u8..10, 0u8..7, any::<bool>(), peers())
            .prop_map(|(f, k, p, t, b, s)| Op::Message(f, k, p, t, b, s)),
        4 => (1u8..10).prop_map(Op::LinkUp),
        2 => (1u8..10).prop_map(Op::LinkDown),
        1 => (1u8..10).prop_map(Op::Failed),
        1 => (1u8..10).prop_map(Op::Left),
        1 => peers().prop_map(Op::Join),
        1 => (0u8..10).prop_map(Op::Introduce),
        1 => (0u8..10).prop_map(Op::Link),
        1 => peers().prop_map(Op::Remember),
        1 => Just(Op::Leave),
        2 => (0u32..40_000).prop_map(Op::LateWake),
    ]
}

fn message(kind: u8, peer: u8, ttl: u8, flag: bool, sample: &[u8]) -> Message {
    let priority = if flag { Priority::High } else { Priority::Low };
    match kind {
        0 => Message::Join,
        1 => Message::ForwardJoin {
            node: info(peer),
            ttl,
        },
        2 => Message::Neighbor { priority },
        3 => Message::NeighborReply { accepted: flag },
        4 => Message::Disconnect,
        5 => Message::Shuffle {
            origin: info(peer),
            ttl,
            nodes: infos(sample),
        },
        6 => Message::ShuffleReply {
            nodes: infos(sample),
        },
        8 => Message::Probe { root: pid(peer) },
        9 => Message::Beacon {
            beacon: crate::membership::tree::RootBeacon {
                root: pid(peer),
                seq: u64::from(ttl),
                dist: ttl,
                parent: flag.then(|| pid(peer)),
                interval_ms: 5_000,
                ask: flag,
            },
        },
        _ => Message::ShuffleBack {
            origin: pid(peer),
            nodes: infos(sample),
        },
    }
}

/// Runs the timers due up to `until` as a driver that wakes on time does.
fn wake_until(hv: &mut HyParView, rng: &mut machine::Rng, now: &mut Timestamp, until: Timestamp) {
    while let Some(at) = hv.poll_timeout().filter(|at| *at <= until) {
        *now = at.max(*now);
        hv.handle_timeout(*now, rng);
        while hv.poll().is_some() {}
        assert!(hv.poll_timeout().is_none_or(|t| t > *now));
    }
    *now = until;
}

fn apply(hv: &mut HyParView, rng: &mut machine::Rng, now: Timestamp, op: Op) {
    let contacts = |ns: Vec<u8>| ns.into_iter().map(info).collect::<Vec<_>>();
    let input = match op {
        Op::Message(from, kind, peer, ttl, flag, sample) => Input::Message {
            from: pid(from),
            addresses: flag.then(Addresses::default),
            message: message(kind, peer, ttl, flag, &sample),
        },
        Op::LinkUp(p) => Input::LinkUp { peer: pid(p) },
        Op::LinkDown(p) => Input::LinkDown { peer: pid(p) },
        Op::Failed(p) => Input::Failed { peer: pid(p) },
        Op::Left(p) => Input::Left { peer: pid(p) },
        Op::Join(ns) => Input::Join {
            contacts: contacts(ns),
        },
        Op::Introduce(p) => Input::Introduce { origin: info(p) },
        Op::Link(p) => Input::Link { peer: info(p) },
        Op::Remember(ns) => Input::Remember {
            peers: contacts(ns),
        },
        Op::Leave => Input::Leave,
        Op::LateWake(_) => return,
    };
    hv.handle(now, input, rng);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn timers_move_forward_whatever_happens(
        small in any::<bool>(),
        seed in any::<u8>(),
        ops in proptest::collection::vec((0u32..5000, op()), 1..150),
    ) {
        // Small tables and a short horizon reach every limit and every expiry.
        let config = if small {
            Config {
                active_view: 2,
                passive_view: 3,
                max_lost: 2,
                max_pending: 2,
                retry_horizon: TimeDelta::from_secs(20),
                ..Config::default()
            }
        } else {
            Config::default()
        };
        // Half the cases merge islands (component beacons and probes).
        let config = Config {
            merge: (seed % 2 == 0).then(MergeConfig::default),
            ..config
        };
        let mut rng = machine::Rng::from_seed([seed; 32]);
        let mut hv = HyParView::new(config, pid(0), Addresses::default(), T0, &mut rng);
        let mut now = T0;
        for (advance, op) in ops {
            let until = now + TimeDelta::from_millis(u64::from(advance));
            wake_until(&mut hv, &mut rng, &mut now, until);
            if let Op::LateWake(ms) = op {
                now += TimeDelta::from_millis(u64::from(ms));
                hv.handle_timeout(now, &mut rng);
                prop_assert!(hv.poll_timeout().is_none_or(|t| t > now));
            }
            apply(&mut hv, &mut rng, now, op);
            while hv.poll().is_some() {}
        }
        timers_move_forward(&mut hv, &mut rng, now, now + TimeDelta::from_secs(120), 10_000, |_, _, _| {});
    }
}

/// A full active view whose members are all suspected but one: newcomers (JOIN, which always
/// gets in) evict the unsuspected one first, then suspects only when nobody else is left; a
/// suspect keeps its place until its verdict, so the node learns that it failed.
#[test]
fn eviction_spares_suspected_neighbours_while_it_can() {
    let mut rng = machine::Rng::from_seed([9; 32]);
    let config = Config {
        active_view: 3,
        ..Config::default()
    };
    let mut hv = HyParView::new(config, pid(1), Addresses::default(), T0, &mut rng);
    for n in [2, 3, 4] {
        join_from(&mut hv, n, &mut rng);
    }
    assert_eq!(hv.active().count(), 3);
    hv.spare([pid(2), pid(3), pid(9)]);
    join_from(&mut hv, 5, &mut rng);
    let active: alloc::collections::BTreeSet<PeerId> = hv.active().copied().collect();
    assert_eq!(
        active,
        alloc::collections::BTreeSet::from([pid(2), pid(3), pid(5)])
    );
    // Only suspects left besides the newcomers: one of them goes.
    hv.spare([pid(2), pid(3), pid(5)]);
    join_from(&mut hv, 6, &mut rng);
    assert!(hv.is_active(&pid(6)));
    assert_eq!(hv.active().count(), 3);
}

/// Peer `n` connects and sends JOIN.
fn join_from(hv: &mut HyParView, n: u8, rng: &mut machine::Rng) {
    hv.on_link_up(T0, pid(n));
    hv.handle_message(T0, pid(n), Some(Addresses::default()), Message::Join, rng);
}
