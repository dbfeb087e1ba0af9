//! Bounds of SWIM's tables that no public API shows (SPEC.md §8.6, issue G).
use super::*;
use alloc::vec;
use rand_core::SeedableRng;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

fn pid(n: u32) -> PeerId {
    let mut b = [0x3c; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    PeerId::from_bytes(b)
}

fn drain(s: &mut Swim) {
    while s.poll().is_some() {}
}

/// A suspicion's confirmations are one per distinct sender, at most
/// `suspicion_confirmations` (more would not shorten the timeout), and live only as long
/// as the suspicion: at most
/// `suspicion_max` after it started, when the verdict removes the member with them.
#[test]
fn confirmations_go_with_the_suspicion() {
    let (me, target) = (pid(0), pid(1));
    let mut s = Swim::new(Config::default(), me, 0);
    let mut rng = machine::Rng::from_seed([1; 32]);
    s.handle(T0, Input::AddMember { peer: target }, &mut rng);
    let mut now = T0;
    while s.suspects().next().is_none() {
        now += TimeDelta::from_millis(100);
        s.handle_timeout(now, &mut rng);
        drain(&mut s);
    }
    let since = now;
    for n in 0..500 {
        let hint = Gossip {
            update: Update::Suspect {
                peer: target,
                incarnation: 0,
                by: None,
            },
            hops: 0,
        };
        let ack = Message::Ack {
            seq: 0,
            view: None,
            updates: BoundedVec::new(vec![hint]).unwrap(),
        };
        let from = pid(1000 + n);
        s.handle(
            now,
            Input::Message {
                from,
                message: ack,
                active_view: &[],
            },
            &mut rng,
        );
    }
    let held = |s: &Swim| {
        s.members
            .get(&target)
            .and_then(|m| m.suspicion.as_ref())
            .map(|x| x.confirmations.len())
    };
    assert_eq!(
        held(&s),
        Some(s.config.suspicion_confirmations as usize),
        "500 hints, kept up to the confirmations that count"
    );
    let deadline = since + s.config.suspicion_max;
    while now < deadline {
        now += TimeDelta::from_millis(100);
        s.handle_timeout(now, &mut rng);
        drain(&mut s);
    }
    assert_eq!(held(&s), None);
    assert!(!s.members.contains_key(&target));
}

/// Probes in flight: at most one per member, and none once the members are gone.
#[test]
fn probes_are_one_per_member() {
    let mut s = Swim::new(Config::default(), pid(0), 0);
    let mut rng = machine::Rng::from_seed([2; 32]);
    for n in 1..=5 {
        s.handle(T0, Input::AddMember { peer: pid(n) }, &mut rng);
    }
    let mut now = T0;
    for _ in 0..100 {
        now += TimeDelta::from_millis(100);
        s.handle_timeout(now, &mut rng);
        drain(&mut s);
        assert!(s.probes.len() <= s.members.len());
    }
    for n in 1..=5 {
        s.handle(now, Input::RemoveMember { peer: pid(n) }, &mut rng);
    }
    assert!(s.probes.is_empty());
}
