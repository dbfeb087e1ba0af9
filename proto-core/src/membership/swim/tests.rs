//! SWIM's unit tests.
use super::*;

#[test]
fn dynamic_suspicion_shrinks_from_max_to_min() {
    let s = Swim::new(Config::default(), PeerId::from_bytes([0; 32]), 0);
    let t: Vec<u64> = (0..5).map(|c| s.suspicion_timeout(c).as_millis()).collect();
    assert_eq!(t[0], 3000);
    assert!(t[1] < t[0] && t[2] < t[1] && t[3] < t[2]);
    assert_eq!(t[3], 1000);
    assert_eq!(t[4], 1000);
    let off = Swim::new(
        Config {
            lifeguard: false,
            ..Config::default()
        },
        PeerId::from_bytes([0; 32]),
        0,
    );
    assert_eq!(off.suspicion_timeout(3).as_millis(), 3000);
}
