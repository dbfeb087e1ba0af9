//! Admission under attack (SPEC.md §13.7): whatever hostile peers send, the neighbours this node
//! chose itself keep their reserved places.
use super::tests::{T0, info, pid};
use super::*;
use alloc::collections::BTreeSet;
use alloc::vec;
use proptest::prelude::*;
use rand_core::SeedableRng;

/// Honest peers are 1..=4 (the node's contacts); hostile ones 100 and up.
const HONEST: [u8; 4] = [1, 2, 3, 4];

pub(super) fn hostile(n: u8) -> PeerId {
    pid(100 + n % 100)
}

fn hostile_infos(ns: &[u8]) -> BoundedVec<PeerInfo, MAX_SHUFFLE_NODES> {
    BoundedVec::new(
        ns.iter()
            .map(|n| PeerInfo {
                peer: hostile(*n),
                addresses: Addresses::default(),
            })
            .collect(),
    )
    .unwrap_or_default()
}

#[derive(Debug, Clone)]
enum Hostile {
    /// A message from hostile peer `.0`: kind `.1`, naming hostile peers `.2`.
    Message(u8, u8, Vec<u8>),
    LinkUp(u8),
    LinkDown(u8),
    /// Time passes (ms): timers run.
    Wait(u32),
    /// The owner's scores (§13.8): peer `.0` (hostile below 100, else honest `.0 - 100`)
    /// scores `.1`, and newcomers below `.2` are refused a place in a full view.
    Scores(Vec<(u8, i32)>, i32),
}

fn hostile_op(k: u8) -> impl Strategy<Value = Hostile> {
    prop_oneof![
        8 => (0..k, 0u8..8, proptest::collection::vec(0..k, 0..32))
            .prop_map(|(f, kind, names)| Hostile::Message(f, kind, names)),
        3 => (0..k).prop_map(Hostile::LinkUp),
        1 => (0..k).prop_map(Hostile::LinkDown),
        1 => (0u32..3_000).prop_map(Hostile::Wait),
        1 => (proptest::collection::vec((0u8..104, -200i32..40), 0..8), -20i32..10)
            .prop_map(|(s, admit)| Hostile::Scores(s, admit)),
    ]
}

fn hostile_message(kind: u8, names: &[u8]) -> Message {
    let first = names.first().copied().unwrap_or(0);
    match kind {
        0 => Message::Join,
        1 => Message::Neighbor {
            priority: Priority::High,
        },
        2 => Message::Neighbor {
            priority: Priority::Low,
        },
        3 => Message::ForwardJoin {
            node: PeerInfo {
                peer: hostile(first),
                addresses: Addresses::default(),
            },
            ttl: 0,
        },
        4 => Message::Shuffle {
            origin: PeerInfo {
                peer: hostile(first),
                addresses: Addresses::default(),
            },
            ttl: 0,
            nodes: hostile_infos(names),
        },
        5 => Message::ShuffleReply {
            nodes: hostile_infos(names),
        },
        6 => Message::Disconnect,
        _ => Message::NeighborReply { accepted: true },
    }
}

/// Feeds `hv` the answers a connected honest contact gives: every dial to an honest peer
/// connects, and every JOIN or NEIGHBOR to one is accepted. Hostile dials connect too.
pub(super) fn settle(hv: &mut HyParView, rng: &mut machine::Rng, now: Timestamp) {
    for _ in 0..64 {
        let Some(out) = hv.poll() else { return };
        match out {
            Output::Connect { peer, .. } => hv.handle(now, Input::LinkUp { peer }, rng),
            Output::Send {
                to,
                message: Message::Join | Message::Neighbor { .. },
            } if HONEST.iter().any(|h| pid(*h) == to) => hv.handle(
                now,
                Input::Message {
                    from: to,
                    addresses: Some(Addresses::default()),
                    message: Message::NeighborReply { accepted: true },
                },
                rng,
            ),
            _ => false,
        };
    }
}

/// A node joined through honest contacts 1 and 2, both answered: its two chosen neighbours.
pub(super) fn joined_through_two(rng: &mut machine::Rng) -> HyParView {
    joined_through_two_with(Config::default(), rng)
}

/// [`joined_through_two`] with `config` (a topic overlay's, for one).
fn joined_through_two_with(config: Config, rng: &mut machine::Rng) -> HyParView {
    let mut hv = HyParView::new(config, pid(0), Addresses::default(), T0, rng);
    hv.join(T0, vec![info(1), info(2)]);
    settle(&mut hv, rng, T0);
    hv
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// A node joined through two honest contacts keeps both as neighbours whatever up to `k`
    /// hostile peers send (JOINs, NEIGHBORs of either priority, FORWARD_JOINs and SHUFFLEs
    /// naming only hostile peers, DISCONNECTs, links coming and going) and however time passes:
    /// the reserved places are held by honest peers.
    ///
    /// The same holds in a topic overlay (its configuration: 7 active, 28 passive), and
    /// whatever scores the owner gives any peer, the honest contacts included (§13.8: scores
    /// order who is displaced among the unprotected, never the protected places).
    #[test]
    fn hostile_peers_never_take_the_reserved_places(
        seed in any::<u8>(),
        k in 1u8..24,
        topic in any::<bool>(),
        ops in proptest::collection::vec(hostile_op(24), 1..200),
    ) {
        let mut rng = machine::Rng::from_seed([seed; 32]);
        let config = if topic {
            crate::broadcast::topic::Config::default().hyparview
        } else {
            Config::default()
        };
        let mut hv = joined_through_two_with(config, &mut rng);
        let mut now = T0;
        let honest_chosen: Vec<PeerId> = hv.chosen().copied().collect();
        prop_assert_eq!(honest_chosen.len(), 2);
        for op in ops {
            match op {
                Hostile::Message(from, kind, names) => {
                    let from = hostile(from % k);
                    let names: Vec<u8> = names.iter().map(|n| n % k).collect();
                    hv.handle(now, Input::LinkUp { peer: from }, &mut rng);
                    let input = Input::Message {
                        from,
                        addresses: Some(Addresses::default()),
                        message: hostile_message(kind, &names),
                    };
                    hv.handle(now, input, &mut rng);
                }
                Hostile::LinkUp(p) => {
                    hv.handle(now, Input::LinkUp { peer: hostile(p % k) }, &mut rng);
                }
                Hostile::LinkDown(p) => {
                    hv.handle(now, Input::LinkDown { peer: hostile(p % k) }, &mut rng);
                }
                Hostile::Wait(ms) => {
                    now += TimeDelta::from_millis(u64::from(ms));
                    hv.handle_timeout(now, &mut rng);
                }
                Hostile::Scores(scores, admit) => {
                    let scores = scores.into_iter().map(|(p, s)| {
                        let peer = if p < 100 { hostile(p % k) } else { pid(p - 99) };
                        (peer, s)
                    });
                    hv.note_scores(admit, scores);
                }
            }
            settle(&mut hv, &mut rng, now);
            for h in &honest_chosen {
                prop_assert!(hv.is_active(h), "honest contact {:?} evicted", h);
            }
            prop_assert!(hv.active.len() <= hv.config.active_view);
            prop_assert!(hv.passive.len() <= hv.config.passive_view);
        }
    }
}

/// A chosen neighbour of long standing that closes the link becomes tried, and an empty
/// reserved place is refilled from the tried peers before the passive view.
#[test]
fn a_lost_reserved_place_is_asked_of_a_tried_peer_first() {
    let mut rng = machine::Rng::from_seed([9; 32]);
    let mut hv = joined_through_two(&mut rng);
    assert_eq!(hv.chosen().count(), 2);
    // Forty seconds on, contact 1 closes the link (it is not declared failed).
    let later = T0 + TimeDelta::from_secs(40);
    hv.handle(later, Input::LinkDown { peer: pid(1) }, &mut rng);
    assert!(hv.tried().any(|p| *p == pid(1)));
    // The passive view is full of hostile entries (a shuffle walk that ended here through
    // contact 2 carried only hostile peers).
    let shuffle = Message::Shuffle {
        origin: PeerInfo {
            peer: hostile(99),
            addresses: Addresses::default(),
        },
        ttl: 0,
        nodes: hostile_infos(&(0..32).collect::<Vec<u8>>()),
    };
    hv.handle(
        later,
        Input::Message {
            from: pid(2),
            addresses: None,
            message: shuffle,
        },
        &mut rng,
    );
    let passive = hv.passive().count();
    assert!(
        passive > 0 && passive <= 9,
        "one walk adds at most eight and its origin"
    );
    // The repair asks the tried peer, not a passive one (contact 1 itself is also retried as
    // a lost peer; either way the dial goes to a tried, honest peer).
    let mut asked = Vec::new();
    let mut now = later;
    for _ in 0..40 {
        while let Some(out) = hv.poll() {
            if let Output::Connect { peer, .. } = out {
                asked.push(peer);
            }
        }
        let Some(at) = hv.poll_timeout() else { break };
        now = at.max(now);
        hv.handle_timeout(now, &mut rng);
        if !asked.is_empty() {
            break;
        }
    }
    assert_eq!(asked.first(), Some(&pid(1)), "asked {asked:?}");
}

/// Peer `p` (in address group `g`) connects and sends JOIN at `at`.
pub(super) fn join_in_group(
    hv: &mut HyParView,
    rng: &mut machine::Rng,
    at: Timestamp,
    p: PeerId,
    g: u32,
) {
    hv.note_group(p, crate::AddressGroup::numbered(g));
    hv.handle(at, Input::LinkUp { peer: p }, rng);
    let input = Input::Message {
        from: p,
        addresses: Some(Addresses::default()),
        message: Message::Join,
    };
    hv.handle(at, input, rng);
}

/// A newcomer from an address group that already holds an invited place takes that place and
/// no other: a hundred identities from one group hold one place (SPEC.md §13.7).
#[test]
fn an_address_group_holds_one_invited_place() {
    for seed in 0..16u8 {
        let mut rng = machine::Rng::from_seed([seed; 32]);
        let mut hv = joined_through_two(&mut rng);
        let s = TimeDelta::from_secs;
        join_in_group(&mut hv, &mut rng, T0 + s(1), pid(3), 8);
        join_in_group(&mut hv, &mut rng, T0 + s(2), pid(4), 9);
        join_in_group(&mut hv, &mut rng, T0 + s(3), hostile(0), 7);
        assert_eq!(hv.active().count(), 5);
        for i in 1..100u8 {
            let at = T0 + s(4) + TimeDelta::from_millis(u64::from(i) * 100);
            join_in_group(&mut hv, &mut rng, at, hostile(i), 7);
            while hv.poll().is_some() {}
        }
        let active: BTreeSet<PeerId> = hv.active().copied().collect();
        let expected = BTreeSet::from([pid(1), pid(2), pid(3), pid(4), hostile(99)]);
        assert_eq!(active, expected, "seed {seed}");
        assert_eq!(
            hv.group_of(&hostile(99)),
            Some(crate::AddressGroup::numbered(7))
        );
    }
}
