//! Peer scores in admission (SPEC.md §13.8): a newcomer scoring below the threshold displaces
//! nobody, the lowest-scoring unprotected neighbour is displaced first, and a walk from a
//! stranger is evidence against it.
use super::admission_tests::{hostile, join_in_group, joined_through_two};
use super::tests::{T0, pid};
use super::*;
use rand_core::SeedableRng;

fn s(n: u64) -> TimeDelta {
    TimeDelta::from_secs(n)
}

/// A full view: chosen 1 and 2, invited 3, 4 and 5 (groups 3, 4, 5) joined at 1, 2, 3 s.
fn full(rng: &mut machine::Rng) -> HyParView {
    let mut hv = joined_through_two(rng);
    for n in 3..=5u8 {
        join_in_group(&mut hv, rng, T0 + s(u64::from(n) - 2), pid(n), u32::from(n));
    }
    while hv.poll().is_some() {}
    assert_eq!(hv.active().count(), 5);
    hv
}

fn replies(hv: &mut HyParView, to: PeerId) -> Vec<bool> {
    core::iter::from_fn(|| hv.poll())
        .filter_map(|o| match o {
            Output::Send {
                to: t,
                message: Message::NeighborReply { accepted },
            } if t == to => Some(accepted),
            _ => None,
        })
        .collect()
}

/// A JOIN or NEIGHBOR(High) from a peer scoring below the admission threshold takes no place
/// in a full view (counted); at the threshold it does; with room, any score does.
#[test]
fn a_newcomer_scoring_below_the_threshold_displaces_nobody() {
    let mut rng = machine::Rng::from_seed([7; 32]);
    let mut hv = full(&mut rng);
    let low = hostile(1);
    hv.note_scores(0, [(low, -1)]);
    join_in_group(&mut hv, &mut rng, T0 + s(10), low, 50);
    assert!(!hv.is_active(&low));
    assert!(replies(&mut hv, low).is_empty(), "no JOIN reply");
    let high = Input::Message {
        from: low,
        addresses: Some(Addresses::default()),
        message: Message::Neighbor {
            priority: Priority::High,
        },
    };
    hv.handle(T0 + s(11), high.clone(), &mut rng);
    assert_eq!(replies(&mut hv, low), [false]);
    assert_eq!(hv.counters().refused_low_score, 2);
    assert_eq!(hv.active().count(), 5);
    // At the threshold it is admitted (displacing the newest invited neighbour).
    hv.note_scores(0, [(low, 0)]);
    hv.handle(T0 + s(12), high, &mut rng);
    assert_eq!(replies(&mut hv, low), [true]);
    assert!(hv.is_active(&low) && !hv.is_active(&pid(5)));
    // With room, a low score does not matter.
    let mut hv = joined_through_two(&mut rng);
    hv.note_scores(0, [(hostile(2), -50)]);
    join_in_group(&mut hv, &mut rng, T0 + s(1), hostile(2), 60);
    assert!(hv.is_active(&hostile(2)));
}

/// Of the neighbours a newcomer may displace, the lowest-scoring goes first, however long
/// it has stood; among equal scores the newest.
#[test]
fn the_lowest_scoring_unprotected_neighbour_is_displaced_first() {
    let mut rng = machine::Rng::from_seed([8; 32]);
    let mut hv = full(&mut rng);
    // 3 has delivered nothing; 4 and 5 have.
    hv.note_scores(0, [(pid(4), 6), (pid(5), 6)]);
    join_in_group(&mut hv, &mut rng, T0 + s(10), hostile(1), 50);
    assert!(!hv.is_active(&pid(3)), "the lowest score goes");
    assert!(hv.is_active(&pid(4)) && hv.is_active(&pid(5)) && hv.is_active(&hostile(1)));
    // Equal scores: the newest (the newcomer just admitted) goes next.
    hv.note_scores(0, [(pid(4), 6), (pid(5), 6), (hostile(1), 6)]);
    join_in_group(&mut hv, &mut rng, T0 + s(11), hostile(2), 51);
    assert!(!hv.is_active(&hostile(1)) && hv.is_active(&hostile(2)));
    // The reserved places stay whatever their score.
    hv.note_scores(0, [(pid(1), -90), (pid(2), -90)]);
    join_in_group(&mut hv, &mut rng, T0 + s(12), hostile(3), 52);
    assert!(hv.is_active(&pid(1)) && hv.is_active(&pid(2)));
}

/// A SHUFFLE or FORWARD_JOIN from a peer outside the active view is evidence against it.
#[test]
fn a_walk_from_a_stranger_is_evidence_against_it() {
    let mut rng = machine::Rng::from_seed([9; 32]);
    let mut hv = joined_through_two(&mut rng);
    while hv.poll().is_some() {}
    let stranger = hostile(1);
    hv.handle(T0, Input::LinkUp { peer: stranger }, &mut rng);
    let fj = Message::ForwardJoin {
        node: PeerInfo {
            peer: hostile(2),
            addresses: Addresses::default(),
        },
        ttl: 0,
    };
    for _ in 0..3 {
        let input = Input::Message {
            from: stranger,
            addresses: Some(Addresses::default()),
            message: fj.clone(),
        };
        hv.handle(T0 + s(1), input, &mut rng);
    }
    let evidence: Vec<Output> = core::iter::from_fn(|| hv.poll()).collect();
    let abuse = Output::Evidence {
        peer: stranger,
        evidence: crate::score::Evidence::StrayWalk,
    };
    assert_eq!(evidence, [abuse.clone(), abuse.clone(), abuse]);
    // From a neighbour, no evidence.
    let input = Input::Message {
        from: pid(1),
        addresses: Some(Addresses::default()),
        message: fj,
    };
    hv.handle(T0 + s(2), input, &mut rng);
    assert!(!core::iter::from_fn(|| hv.poll()).any(|o| matches!(o, Output::Evidence { .. })));
}
