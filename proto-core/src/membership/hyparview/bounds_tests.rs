//! Bounds of HyParView's tables that no public API shows (SPEC.md §8.6, issue G).
use super::*;
use rand_core::SeedableRng;

fn join(from: PeerId) -> Input {
    Input::Message {
        from,
        addresses: Some(Addresses::default()),
        message: Message::Join,
    }
}

/// Links and the links a JOIN was honoured on are per connection: they go with it.
#[test]
fn links_go_with_the_connection() {
    let t0 = Timestamp::from_secs(1_800_000_000);
    let mut rng = machine::Rng::from_seed([3; 32]);
    let me = PeerId::from_bytes([0; 32]);
    let mut hv = HyParView::new(Config::default(), me, Addresses::default(), t0, &mut rng);
    for n in 1..=1000u32 {
        let mut b = [0x77; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        let p = PeerId::from_bytes(b);
        let now = t0 + TimeDelta::from_millis(u64::from(n) * 20);
        hv.handle(now, Input::LinkUp { peer: p }, &mut rng);
        hv.handle(now, join(p), &mut rng);
        assert!(hv.active.len() <= hv.config.active_view);
        hv.handle(now, Input::LinkDown { peer: p }, &mut rng);
        while hv.poll().is_some() {}
        assert!(hv.links.is_empty() && hv.joined_links.is_empty());
        assert!(hv.lost.len() <= hv.config.max_lost);
    }
}

/// `max_lost` 0 means no lost peer is remembered (found by fuzzing: one was, and retried).
#[test]
fn max_lost_zero_remembers_none() {
    let t0 = Timestamp::from_secs(1_800_000_000);
    let mut rng = machine::Rng::from_seed([4; 32]);
    let me = PeerId::from_bytes([0; 32]);
    let config = Config {
        max_lost: 0,
        ..Config::default()
    };
    let mut hv = HyParView::new(config, me, Addresses::default(), t0, &mut rng);
    let p = PeerId::from_bytes([9; 32]);
    hv.handle(t0, Input::LinkUp { peer: p }, &mut rng);
    hv.handle(t0, join(p), &mut rng);
    while hv.poll().is_some() {}
    assert!(hv.active.contains_key(&p));
    hv.handle(t0, Input::LinkDown { peer: p }, &mut rng);
    while hv.poll().is_some() {}
    assert!(
        hv.lost.is_empty(),
        "a lost peer was remembered with max_lost 0"
    );
}
