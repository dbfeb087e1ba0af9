//! Fetch filtering (SPEC.md §17.8): recipients pass fresh challenges, strangers, replays,
//! proofs for other messages and expired challenges fail, the guard stays bounded.

use chacha20::ChaCha8Rng;
use hearsay_proto::privacy::envelope::{EnvelopeError, open};
use hearsay_proto::privacy::fetch_guard::{
    FetchGuard, FilterError, fetch_key_for, prove, seal_with_fetch_keys,
};
use hearsay_proto::testing::{at, identity};
use hearsay_proto::{Identity, MessageId, TimeDelta, default_provider};
use rand_core::{Rng, SeedableRng};

const TTL: TimeDelta = TimeDelta::from_secs(30);

#[test]
fn recipients_pass_and_everyone_else_fails() {
    let ids: Vec<Identity> = (0..3).map(identity).collect();
    let stranger = identity(50);
    let keys: Vec<_> = ids.iter().map(|i| i.encapsulation_key().clone()).collect();
    let mut rng = ChaCha8Rng::from_seed([9; 32]);
    let (sealed, fetch_keys) =
        seal_with_fetch_keys(&*default_provider(), &keys, b"secret", &mut rng).unwrap();
    assert_eq!(fetch_keys.len(), 3);
    let message = MessageId::from_bytes([1; 32]);
    let other = MessageId::from_bytes([2; 32]);
    let mut guard = FetchGuard::new(4, 16, TTL);
    guard.register(message, fetch_keys.clone());
    guard.register(other, fetch_keys.clone());

    for id in &ids {
        // The sealed envelope still opens as usual.
        assert_eq!(&**open(&sealed, id.decapsulator()).unwrap(), b"secret");
        let key = fetch_key_for(&sealed, id.decapsulator()).unwrap();
        assert!(fetch_keys.iter().any(|k| **k == *key));
        let nonce = guard.challenge(&mut rng, at(0));
        let proof = prove(&key, &nonce, &message);
        assert_eq!(guard.check(&message, &nonce, &proof, at(1)), Ok(()));
        // Replaying the same (nonce, proof) fails: the challenge is spent.
        assert_eq!(
            guard.check(&message, &nonce, &proof, at(1)),
            Err(FilterError::UnknownChallenge)
        );
        // A proof for another message does not pass for this one.
        let nonce = guard.challenge(&mut rng, at(0));
        let proof = prove(&key, &nonce, &other);
        assert_eq!(
            guard.check(&message, &nonce, &proof, at(1)),
            Err(FilterError::BadProof)
        );
    }

    // A stranger finds no slot; a random key does not pass.
    assert_eq!(
        fetch_key_for(&sealed, stranger.decapsulator()).map(|_| ()),
        Err(EnvelopeError::NotARecipient)
    );
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    let nonce = guard.challenge(&mut rng, at(0));
    assert_eq!(
        guard.check(&message, &nonce, &prove(&random, &nonce, &message), at(1)),
        Err(FilterError::BadProof)
    );
    // A never-issued challenge, an unknown message.
    let key = fetch_key_for(&sealed, ids[0].decapsulator()).unwrap();
    let forged = [3u8; 32];
    assert_eq!(
        guard.check(&message, &forged, &prove(&key, &forged, &message), at(1)),
        Err(FilterError::UnknownChallenge)
    );
    let unknown = MessageId::from_bytes([9; 32]);
    let nonce = guard.challenge(&mut rng, at(0));
    assert_eq!(
        guard.check(&unknown, &nonce, &prove(&key, &nonce, &unknown), at(1)),
        Err(FilterError::UnknownMessage)
    );
    let c = guard.counters();
    assert_eq!(
        (
            c.allowed,
            c.unknown_challenge,
            c.bad_proof,
            c.unknown_message
        ),
        (3, 4, 4, 1)
    );
}

#[test]
fn expired_challenges_fail_and_the_guard_stays_bounded() {
    let id = identity(7);
    let mut rng = ChaCha8Rng::from_seed([4; 32]);
    let (sealed, fetch_keys) = seal_with_fetch_keys(
        &*default_provider(),
        &[id.encapsulation_key().clone()],
        b"x",
        &mut rng,
    )
    .unwrap();
    let key = fetch_key_for(&sealed, id.decapsulator()).unwrap();
    let message = MessageId::from_bytes([1; 32]);
    let mut guard = FetchGuard::new(2, 3, TTL);
    guard.register(message, fetch_keys.clone());

    let nonce = guard.challenge(&mut rng, at(0));
    assert_eq!(
        guard.check(&message, &nonce, &prove(&key, &nonce, &message), at(30)),
        Err(FilterError::ExpiredChallenge)
    );
    assert_eq!(guard.counters().expired_challenge, 1);

    // Outstanding challenges stay bounded; the oldest is evicted.
    let first = guard.challenge(&mut rng, at(100));
    for _ in 0..10 {
        guard.challenge(&mut rng, at(100));
        assert!(guard.challenges_len() <= 3);
    }
    assert_eq!(
        guard.check(&message, &first, &prove(&key, &first, &message), at(101)),
        Err(FilterError::UnknownChallenge)
    );
    // Expired challenges are pruned when new ones are issued.
    guard.challenge(&mut rng, at(200));
    assert_eq!(guard.challenges_len(), 1);

    // Messages stay bounded; the first registered is evicted.
    for n in 2..10u8 {
        guard.register(MessageId::from_bytes([n; 32]), fetch_keys.clone());
        assert!(guard.len() <= 2);
    }
    let nonce = guard.challenge(&mut rng, at(200));
    assert_eq!(
        guard.check(&message, &nonce, &prove(&key, &nonce, &message), at(201)),
        Err(FilterError::UnknownMessage)
    );
    assert_eq!(guard.counters().evicted_messages, 7);
}
