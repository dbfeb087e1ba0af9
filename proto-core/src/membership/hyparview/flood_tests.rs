//! Floods of identities (SPEC.md §13.7): what a stranger may not do, what a newcomer may
//! displace, and how much of the passive view and of the overlay's walks one address group
//! may take.
use super::admission_tests::{hostile, join_in_group, joined_through_two, settle};
use super::tests::info;
use super::tests::{T0, pid};
use super::*;
use alloc::vec;
use rand_core::SeedableRng;

fn s(n: u64) -> TimeDelta {
    TimeDelta::from_secs(n)
}

/// An advertised address in the /48 `group` (the simulator's form).
fn in_group(group: u16, host: u16) -> Addresses {
    let text = alloc::format!("[fd00:0:{group:x}::{host:x}]:7000");
    BoundedVec::new(vec![crate::Address::new(text.into_bytes()).unwrap()]).unwrap()
}

/// A peer id for numbers beyond `pid`'s 256.
fn wide(n: u32) -> PeerId {
    let mut bytes = [0xee; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    PeerId::from_bytes(bytes)
}

fn message(hv: &mut HyParView, rng: &mut machine::Rng, at: Timestamp, from: PeerId, m: Message) {
    let input = Input::Message {
        from,
        addresses: Some(Addresses::default()),
        message: m,
    };
    hv.handle(at, input, rng);
}

fn sends(hv: &mut HyParView) -> Vec<(PeerId, Message)> {
    core::iter::from_fn(|| hv.poll())
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((to, message)),
            _ => None,
        })
        .collect()
}

/// A linked peer outside the active view can neither shuffle into the passive view nor
/// introduce anyone with a FORWARD_JOIN, and nobody can answer a shuffle that was not asked:
/// each is counted and changes nothing.
#[test]
fn strangers_neither_shuffle_nor_forward_joins() {
    let mut rng = machine::Rng::from_seed([1; 32]);
    let mut hv = joined_through_two(&mut rng);
    while hv.poll().is_some() {}
    let stranger = hostile(1);
    hv.handle(T0, Input::LinkUp { peer: stranger }, &mut rng);
    let passive_before: Vec<PeerId> = hv.passive().copied().collect();
    let nodes: Vec<PeerInfo> = (10..18)
        .map(|n| PeerInfo {
            peer: hostile(n),
            addresses: Addresses::default(),
        })
        .collect();
    let nodes = BoundedVec::new(nodes).unwrap();
    let origin = PeerInfo {
        peer: stranger,
        addresses: Addresses::default(),
    };
    let shuffle = Message::Shuffle {
        origin: origin.clone(),
        ttl: 0,
        nodes: nodes.clone(),
    };
    message(&mut hv, &mut rng, T0, stranger, shuffle);
    let fj = Message::ForwardJoin {
        node: PeerInfo {
            peer: hostile(20),
            addresses: Addresses::default(),
        },
        ttl: 0,
    };
    message(&mut hv, &mut rng, T0, stranger, fj);
    let reply = Message::ShuffleReply { nodes };
    message(&mut hv, &mut rng, T0, pid(1), reply);
    assert_eq!(hv.passive().copied().collect::<Vec<_>>(), passive_before);
    assert!(
        !hv.attempts.contains_key(&hostile(20)),
        "dialled the introduced peer"
    );
    assert!(sends(&mut hv).is_empty());
    assert_eq!(hv.counters().not_neighbor, 3);
}

/// With every place taken, invited newcomers displace the newest unprotected neighbour: a
/// stream of them from ever new address groups churns one place, and the neighbours that
/// were there first stay.
#[test]
fn newcomers_displace_the_newest_neighbour_only() {
    let mut rng = machine::Rng::from_seed([2; 32]);
    let mut hv = joined_through_two(&mut rng);
    join_in_group(&mut hv, &mut rng, T0 + s(1), pid(3), 3);
    join_in_group(&mut hv, &mut rng, T0 + s(2), pid(4), 4);
    join_in_group(&mut hv, &mut rng, T0 + s(3), pid(5), 5);
    assert_eq!(hv.active().count(), 5);
    for i in 0..60u8 {
        let at = T0 + s(4) + TimeDelta::from_millis(u64::from(i) * 250);
        join_in_group(&mut hv, &mut rng, at, hostile(i), 100 + u32::from(i));
        while hv.poll().is_some() {}
    }
    for honest in [1, 2, 3, 4] {
        assert!(hv.is_active(&pid(honest)), "{honest} displaced");
    }
    assert!(hv.is_active(&hostile(59)));
    // Displaced after a moment in the view, none of them became a passive entry.
    assert!(!(0..59).any(|i| hv.passive.contains_key(&hostile(i))));
}

/// However many identities of one address group a neighbour's shuffles name, the passive
/// view keeps `passive_per_group` of them.
#[test]
fn one_address_group_holds_two_passive_entries() {
    let mut rng = machine::Rng::from_seed([4; 32]);
    let mut hv = joined_through_two(&mut rng);
    for round in 0..20u16 {
        let nodes: Vec<PeerInfo> = (0..8u16)
            .map(|h| PeerInfo {
                peer: PeerId::from_bytes([(round * 8 + h) as u8 ^ 0x80; 32]),
                addresses: in_group(7, round * 8 + h),
            })
            .collect();
        let shuffle = Message::Shuffle {
            origin: PeerInfo {
                peer: pid(1),
                addresses: Addresses::default(),
            },
            ttl: 0,
            nodes: BoundedVec::new(nodes).unwrap(),
        };
        message(&mut hv, &mut rng, T0 + s(u64::from(round)), pid(1), shuffle);
        while hv.poll().is_some() {}
    }
    let of_group = hv
        .passive
        .iter()
        .filter(|(p, a)| {
            hv.group_of_entry(p, a) == crate::AddressGroup::of_address(in_group(7, 0)[0].as_bytes())
        })
        .count();
    assert_eq!(of_group, 2);
}

/// A contact announces one joiner of an address group per `announce_interval`: later
/// joiners of that group are admitted, not walked through the overlay.
#[test]
fn one_joiner_per_address_group_is_announced() {
    let mut rng = machine::Rng::from_seed([5; 32]);
    let mut hv = joined_through_two(&mut rng);
    while hv.poll().is_some() {}
    let walks = |hv: &mut HyParView| {
        sends(hv)
            .iter()
            .filter(|(_, m)| matches!(m, Message::ForwardJoin { .. }))
            .count()
    };
    join_in_group(&mut hv, &mut rng, T0 + s(1), hostile(1), 9);
    assert_eq!(
        walks(&mut hv),
        2,
        "the first joiner goes to both other neighbours"
    );
    for i in 2..12u8 {
        join_in_group(
            &mut hv,
            &mut rng,
            T0 + s(2) + s(u64::from(i)),
            hostile(i),
            9,
        );
        assert_eq!(walks(&mut hv), 0);
    }
    assert!(
        hv.is_active(&hostile(11)),
        "later joiners are still admitted"
    );
    assert_eq!(hv.counters().announcements_skipped, 10);
    // Another group is announced at once; this one again after the interval.
    join_in_group(&mut hv, &mut rng, T0 + s(20), hostile(40), 10);
    assert!(walks(&mut hv) > 0);
    join_in_group(&mut hv, &mut rng, T0 + s(62), hostile(41), 9);
    assert!(walks(&mut hv) > 0);
}

/// A walk a peer sends with a longer ttl than this node's own travels no further than one this
/// node starts.
#[test]
fn walks_are_no_longer_than_this_nodes_own() {
    let mut rng = machine::Rng::from_seed([6; 32]);
    let mut hv = joined_through_two(&mut rng);
    join_in_group(&mut hv, &mut rng, T0 + s(1), pid(3), 3);
    while hv.poll().is_some() {}
    let fj = Message::ForwardJoin {
        node: PeerInfo {
            peer: hostile(1),
            addresses: Addresses::default(),
        },
        ttl: 255,
    };
    message(&mut hv, &mut rng, T0 + s(2), pid(1), fj);
    let shuffle = Message::Shuffle {
        origin: PeerInfo {
            peer: hostile(2),
            addresses: Addresses::default(),
        },
        ttl: 200,
        nodes: BoundedVec::default(),
    };
    message(&mut hv, &mut rng, T0 + s(2), pid(1), shuffle);
    let out = sends(&mut hv);
    assert_eq!(out.len(), 2, "{out:?}");
    for (_, m) in out {
        match m {
            Message::ForwardJoin { ttl, .. } => assert!(ttl < hv.config.arwl),
            Message::Shuffle { ttl, .. } => assert!(ttl < hv.config.shuffle_ttl),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// One address group sending ten times its JOIN budget in one instant, from as many
/// identities, is admitted for its budget (`join_rate_per_source`) and no more: the rest is
/// counted and costs nothing (no answer, no walk). A joiner of another group, in the same
/// instant, is still admitted: one operator cannot spend the node's JOIN budget for others.
#[test]
fn one_group_gets_its_join_budget_and_others_still_join() {
    let mut rng = machine::Rng::from_seed([7; 32]);
    let mut hv = joined_through_two(&mut rng);
    while hv.poll().is_some() {}
    let budget = hv.config.join_rate_per_source;
    let at = T0 + s(5);
    for n in 0..(10 * budget) {
        join_in_group(&mut hv, &mut rng, at, wide(1_000 + n), 9);
    }
    let answered = sends(&mut hv)
        .iter()
        .filter(|(_, m)| matches!(m, Message::NeighborReply { accepted: true }))
        .count();
    assert_eq!(answered, budget as usize, "JOINs admitted from one group");
    assert_eq!(
        hv.counters().joins_over_source_budget,
        u64::from(9 * budget),
        "the JOINs beyond the group's budget are counted"
    );
    assert_eq!(hv.counters().joins_dropped, 0);
    let honest = wide(2_000);
    join_in_group(&mut hv, &mut rng, at, honest, 10);
    assert!(
        sends(&mut hv).contains(&(honest, Message::NeighborReply { accepted: true })),
        "a joiner of another group is admitted"
    );
    // A second later the group has its budget again, and no more.
    let later = at + s(1);
    for n in 0..(10 * budget) {
        join_in_group(&mut hv, &mut rng, later, wide(3_000 + n), 9);
    }
    assert_eq!(
        hv.counters().joins_over_source_budget,
        u64::from(18 * budget)
    );
}

/// A neighbour forwarding ten times its share of walks in one instant has its share handled;
/// the rest is counted and neither remembered nor passed on.
#[test]
fn a_neighbour_gets_its_share_of_forward_joins() {
    let mut rng = machine::Rng::from_seed([8; 32]);
    let mut hv = joined_through_two(&mut rng);
    while hv.poll().is_some() {}
    let budget = hv.config.join_rate_per_source;
    let at = T0 + s(5);
    for n in 0..(10 * budget) {
        let fj = Message::ForwardJoin {
            node: PeerInfo {
                peer: wide(5_000 + n),
                addresses: in_group(u16::try_from(n).unwrap(), 1),
            },
            ttl: 0,
        };
        message(&mut hv, &mut rng, at, pid(1), fj);
    }
    let dialled = (0..10 * budget)
        .filter(|n| hv.attempts.contains_key(&wide(5_000 + *n)))
        .count();
    assert!(
        dialled <= budget as usize,
        "{dialled} walks acted on (share {budget})"
    );
    assert_eq!(
        hv.counters().joins_over_source_budget,
        u64::from(9 * budget)
    );
}

/// A reserved place goes to the passive entry held longest: a flood's identities are the
/// newest entries, the peers met before it the oldest (§13.7).
#[test]
fn a_reserved_place_goes_to_the_longest_held_passive_entry() {
    let mut rng = machine::Rng::from_seed([11; 32]);
    let mut hv = joined_through_two(&mut rng);
    while hv.poll().is_some() {}
    let entries = |base: u16, n: u16| -> BoundedVec<PeerInfo, MAX_SHUFFLE_NODES> {
        let nodes = (0..n)
            .map(|h| PeerInfo {
                peer: wide(u32::from(base + h)),
                addresses: in_group(base + h, 1),
            })
            .collect();
        BoundedVec::new(nodes).unwrap()
    };
    let shuffle = |nodes| Message::Shuffle {
        origin: PeerInfo {
            peer: pid(2),
            addresses: Addresses::default(),
        },
        ttl: 0,
        nodes,
    };
    // First two honest entries, then three shuffles' worth of a flood's identities.
    message(
        &mut hv,
        &mut rng,
        T0 + s(1),
        pid(2),
        shuffle(entries(10, 2)),
    );
    for round in 0..3u16 {
        let at = T0 + s(2 + u64::from(round));
        message(
            &mut hv,
            &mut rng,
            at,
            pid(2),
            shuffle(entries(100 + 8 * round, 8)),
        );
    }
    while hv.poll().is_some() {}
    assert!(hv.passive.contains_key(&wide(10)));
    // Contact 1 gives up the link before it stood `tried_after`: one reserved place is empty.
    message(&mut hv, &mut rng, T0 + s(6), pid(1), Message::Disconnect);
    let asked: Vec<PeerId> = core::iter::from_fn(|| hv.poll())
        .filter_map(|o| match o {
            Output::Connect { peer, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(asked.first(), Some(&wide(10)), "asked {asked:?}");
}

/// A newcomer evicts an invited neighbour before a chosen one, even a chosen one beyond the
/// reserved places that came in last.
#[test]
fn newcomers_evict_invited_neighbours_before_chosen_ones() {
    let mut rng = machine::Rng::from_seed([12; 32]);
    let config = Config {
        reserved: 1,
        ..Config::default()
    };
    let mut hv = HyParView::new(config, pid(0), Addresses::default(), T0, &mut rng);
    hv.join(T0, vec![info(1)]);
    settle(&mut hv, &mut rng, T0);
    join_in_group(&mut hv, &mut rng, T0 + s(1), pid(3), 3);
    join_in_group(&mut hv, &mut rng, T0 + s(2), pid(4), 4);
    join_in_group(&mut hv, &mut rng, T0 + s(3), pid(5), 5);
    // Contact 2, chosen, comes in last: unprotected (one reserved place, held by contact 1).
    hv.join(T0 + s(4), vec![info(2)]);
    settle(&mut hv, &mut rng, T0 + s(4));
    assert_eq!(hv.active().count(), 5);
    assert!(hv.chosen().any(|p| *p == pid(2)));
    for i in 0..10u8 {
        join_in_group(&mut hv, &mut rng, T0 + s(5 + u64::from(i)), hostile(i), 200);
        while hv.poll().is_some() {}
    }
    assert!(hv.is_active(&pid(2)), "the chosen neighbour was evicted");
    assert!(hv.is_active(&pid(1)));
}
