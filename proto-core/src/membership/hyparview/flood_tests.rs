//! Floods of identities (SPEC.md §13.7): what a stranger may not do, what a newcomer may
//! displace, and how much of the passive view and of the overlay's walks one address group
//! may take.
use super::admission_tests::{hostile, join_in_group, joined_through_two};
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
