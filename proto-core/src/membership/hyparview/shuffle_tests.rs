//! Shuffles never open connections, and back off while the active view stays the same.
use super::tests::{T0, info, pid};
use super::*;
use rand_core::SeedableRng;

fn msg(from: u8, message: Message) -> Input {
    Input::Message {
        from: pid(from),
        addresses: Some(Addresses::default()),
        message,
    }
}

/// A node with peers `ns` in its active view (each joined through it).
fn node_with(ns: &[u8], rng: &mut machine::Rng) -> HyParView {
    let mut hv = HyParView::new(Config::default(), pid(0), Addresses::default(), T0, rng);
    for &n in ns {
        hv.handle(T0, Input::LinkUp { peer: pid(n) }, rng);
        hv.handle(T0, msg(n, Message::Join), rng);
    }
    while hv.poll().is_some() {}
    hv
}

fn drain(hv: &mut HyParView) -> Vec<Output> {
    core::iter::from_fn(|| hv.poll()).collect()
}

/// The walk's end has no connection to the origin: the answer goes back to the neighbour the
/// walk came from, as SHUFFLE_BACK, and no connection is asked for. (Before, the end dialled
/// the origin: a connection, two Hellos with records, for one small reply.)
#[test]
fn a_walk_that_ends_away_from_its_origin_is_answered_back_along_it() {
    let mut rng = machine::Rng::from_seed([1; 32]);
    let mut hv = node_with(&[1], &mut rng);
    let shuffle = Message::Shuffle {
        origin: info(9),
        ttl: 0,
        nodes: BoundedVec::new(alloc::vec![info(7)]).unwrap_or_default(),
    };
    hv.handle(T0, msg(1, shuffle), &mut rng);
    let out = drain(&mut hv);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Connect { .. })),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Send { to, message: Message::ShuffleBack { origin, .. } } if *to == pid(1) && *origin == pid(9))),
        "{out:?}"
    );
    assert!(hv.passive.contains_key(&pid(7)));
}

/// A node in the middle of a walk remembers where it came from and passes the answer back
/// there; the origin takes the entries in; an answer with no way back is dropped.
#[test]
fn shuffle_back_retraces_the_walk_and_reaches_the_origin() {
    let mut rng = machine::Rng::from_seed([2; 32]);
    let mut hv = node_with(&[1, 2], &mut rng);
    let shuffle = Message::Shuffle {
        origin: info(9),
        ttl: 3,
        nodes: BoundedVec::default(),
    };
    hv.handle(T0, msg(1, shuffle), &mut rng);
    let out = drain(&mut hv);
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Send { to, message: Message::Shuffle { .. } } if *to == pid(2))
        ),
        "forwarded to the other neighbour: {out:?}"
    );
    let back = Message::ShuffleBack {
        origin: pid(9),
        nodes: BoundedVec::new(alloc::vec![info(5)]).unwrap_or_default(),
    };
    hv.handle(
        T0 + TimeDelta::from_millis(100),
        msg(2, back.clone()),
        &mut rng,
    );
    let out = drain(&mut hv);
    assert!(
        out.iter().any(|o| matches!(o, Output::Send { to, message: Message::ShuffleBack { .. } } if *to == pid(1))),
        "passed back to where the walk came from: {out:?}"
    );
    assert!(
        !hv.passive.contains_key(&pid(5)),
        "a relay does not keep the sample"
    );
    // The way back is used once.
    hv.handle(T0 + TimeDelta::from_millis(200), msg(2, back), &mut rng);
    assert!(drain(&mut hv).is_empty());
    // At the origin, whose walk is out (a reply is taken only then).
    hv.shuffle_awaited = true;
    let mine = Message::ShuffleBack {
        origin: pid(0),
        nodes: BoundedVec::new(alloc::vec![info(6)]).unwrap_or_default(),
    };
    hv.handle(T0, msg(2, mine), &mut rng);
    assert!(hv.passive.contains_key(&pid(6)));
    assert_eq!(hv.counters().shuffles, 1);
}

/// The ways back are bounded.
#[test]
fn the_ways_back_are_bounded() {
    let mut rng = machine::Rng::from_seed([3; 32]);
    let mut hv = node_with(&[1, 2], &mut rng);
    for n in 0..1000u32 {
        let mut b = [0x55; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        let shuffle = Message::Shuffle {
            origin: PeerInfo {
                peer: PeerId::from_bytes(b),
                addresses: Addresses::default(),
            },
            ttl: 3,
            nodes: BoundedVec::default(),
        };
        hv.handle(T0, msg(1, shuffle), &mut rng);
        while hv.poll().is_some() {}
        assert!(hv.shuffle_routes.len() <= shuffle::MAX_SHUFFLE_ROUTES);
    }
}

/// While the active view loses no one, the pause between shuffles grows fourfold up to
/// `shuffle_interval_max`; a neighbour lost brings it back to `shuffle_interval`.
#[test]
fn shuffles_back_off_while_the_view_stays_the_same() {
    let mut rng = machine::Rng::from_seed([4; 32]);
    let mut hv = node_with(&[1, 2, 3], &mut rng);
    let mut now = T0;
    let starts = shuffle_starts(&mut hv, &mut rng, &mut now, T0 + TimeDelta::from_secs(600));
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]).as_micros() / 1_000_000)
        .collect();
    // 10 s, then 40, 60, 60, ... (±25 % jitter).
    assert!(
        starts.len() <= 16,
        "{} shuffles in 10 minutes (60 without back-off): {gaps:?}",
        starts.len()
    );
    assert!(gaps.iter().rev().take(3).all(|g| *g >= 45), "{gaps:?}");
    // A neighbour gained (the view filling up): the pauses stay long.
    hv.handle(now, Input::LinkUp { peer: pid(4) }, &mut rng);
    hv.handle(now, msg(4, Message::Join), &mut rng);
    while hv.poll().is_some() {}
    assert!(hv.is_active(&pid(4)));
    let end = now + TimeDelta::from_secs(200);
    let after = shuffle_starts(&mut hv, &mut rng, &mut now, end);
    let gap = after[1].saturating_since(after[0]).as_micros() / 1_000_000;
    assert!(
        gap >= 45,
        "a neighbour gained keeps the long pause: {gap} s"
    );
    // A neighbour lost: the next pause is the short one again.
    hv.handle(now, Input::LinkDown { peer: pid(1) }, &mut rng);
    while hv.poll().is_some() {}
    let end = now + TimeDelta::from_secs(200);
    let after = shuffle_starts(&mut hv, &mut rng, &mut now, end);
    let gap = after[1].saturating_since(after[0]).as_micros() / 1_000_000;
    assert!(gap <= 13, "after a loss the pause is short again: {gap} s");
}

/// Runs the timers until `until`; when each shuffle went.
fn shuffle_starts(
    hv: &mut HyParView,
    rng: &mut machine::Rng,
    now: &mut Timestamp,
    until: Timestamp,
) -> Vec<Timestamp> {
    let mut starts = Vec::new();
    while *now < until {
        let Some(at) = hv.poll_timeout() else { break };
        *now = at;
        hv.handle_timeout(at, rng);
        for o in drain(hv) {
            if matches!(
                o,
                Output::Send {
                    message: Message::Shuffle { .. },
                    ..
                }
            ) {
                starts.push(at);
            }
        }
    }
    starts
}

/// Repairs ask peers already connected for another overlay first: no new connection.
#[test]
fn repair_prefers_peers_already_connected() {
    let mut rng = machine::Rng::from_seed([5; 32]);
    let mut hv = node_with(&[1], &mut rng);
    for n in 10..30 {
        hv.handle(
            T0,
            Input::Remember {
                peers: alloc::vec![info(n)],
            },
            &mut rng,
        );
    }
    hv.handle(T0, Input::LinkUp { peer: pid(20) }, &mut rng);
    hv.handle(T0, Input::LinkUp { peer: pid(21) }, &mut rng);
    while hv.poll().is_some() {}
    let later = T0 + TimeDelta::from_secs(3);
    hv.handle_timeout(later, &mut rng);
    let out = drain(&mut hv);
    let asked: Vec<PeerId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                message: Message::Neighbor { .. },
            } => Some(*to),
            _ => None,
        })
        .collect();
    assert!(
        asked.contains(&pid(20)) && asked.contains(&pid(21)),
        "{out:?}"
    );
}
