//! Envelope encryption (SPEC.md §17): every recipient opens, nobody else does, tampering and
//! slot transplants fail without panics, limits are typed errors, the encoding round-trips.

use chacha20::ChaCha8Rng;
use hearsay_proto::crypto::EncapsulationKeyBytes;
use hearsay_proto::privacy::envelope::{
    EnvelopeError, MAX_SEALED_LEN, MAX_SLOTS, Sealed, max_recipients, open, seal, sealed_len,
};
use hearsay_proto::testing::identity;
use hearsay_proto::{DecodeError, Identity, MAX_FRAME_LEN, default_provider};
use proptest::prelude::*;
use rand_core::{Rng, SeedableRng};
use std::sync::OnceLock;

const POOL: usize = 8;

/// Identities 0..POOL are potential recipients; identity POOL is never one.
fn pool() -> &'static [Identity] {
    static POOL_IDS: OnceLock<Vec<Identity>> = OnceLock::new();
    POOL_IDS.get_or_init(|| (0..=POOL as u64).map(identity).collect())
}

fn keys(ids: &[&Identity]) -> Vec<EncapsulationKeyBytes> {
    ids.iter().map(|i| i.encapsulation_key().clone()).collect()
}

fn seal_for(ids: &[&Identity], plaintext: &[u8], seed: u8) -> Sealed {
    let mut rng = ChaCha8Rng::from_seed([seed; 32]);
    seal(&*default_provider(), &keys(ids), plaintext, &mut rng).unwrap()
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn every_recipient_opens_and_nobody_else_does() {
    let stranger = &pool()[POOL];
    for count in [1usize, 2, 10] {
        let ids: Vec<Identity> = (0..count).map(|i| identity(100 + i as u64)).collect();
        let refs: Vec<&Identity> = ids.iter().collect();
        let plaintext = format!("for {count} recipients").into_bytes();
        let sealed = seal_for(&refs, &plaintext, count as u8);
        assert_eq!(sealed.slots.len(), count);
        for id in &ids {
            assert_eq!(*open(&sealed, id.decapsulator()).unwrap(), plaintext);
        }
        assert_eq!(
            open(&sealed, stranger.decapsulator()),
            Err(EnvelopeError::NotARecipient)
        );
    }
}

#[test]
fn slots_are_shuffled_and_carry_no_recipient_id() {
    let ids: Vec<&Identity> = pool()[..POOL].iter().collect();
    let sealed = seal_for(&ids, b"order", 3);
    // Which recipient owns each slot?
    let owners: Vec<usize> = sealed
        .slots
        .iter()
        .map(|slot| {
            let single = Sealed {
                content: sealed.content.clone(),
                slots: hearsay_proto::wire::BoundedVec::new(vec![slot.clone()]).unwrap(),
            };
            ids.iter()
                .position(|id| open(&single, id.decapsulator()).is_ok())
                .unwrap()
        })
        .collect();
    let mut sorted = owners.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..POOL).collect::<Vec<_>>());
    assert_ne!(owners, sorted, "slots left in recipient order");
    let encoded = sealed.to_bytes().unwrap();
    for id in &ids {
        assert!(
            !encoded
                .windows(32)
                .any(|w| w == id.peer_id().as_bytes().as_slice())
        );
    }
}

#[test]
fn any_flipped_bit_fails_exactly_where_it_should_and_never_panics() {
    let ids: Vec<&Identity> = pool()[..2].iter().collect();
    let plaintext = [0x5au8; 32];
    let sealed = seal_for(&ids, &plaintext, 7);
    let encoded = sealed.to_bytes().unwrap();
    // Which recipient owns which slot, and where each region lies in the encoding.
    let owner = |slot: usize| {
        let single = Sealed {
            content: sealed.content.clone(),
            slots: hearsay_proto::wire::BoundedVec::new(vec![sealed.slots[slot].clone()]).unwrap(),
        };
        ids.iter()
            .position(|id| open(&single, id.decapsulator()).is_ok())
            .unwrap()
    };
    let content_at = find(&encoded, &sealed.content);
    let content = content_at..content_at + sealed.content.len();
    let mut slot_regions = Vec::new();
    for (k, slot) in sealed.slots.iter().enumerate() {
        let kem = find(&encoded, &slot.kem_ciphertext);
        let wrapped = find(&encoded, &slot.wrapped_key);
        slot_regions.push((kem..kem + 1088, wrapped..wrapped + 48, owner(k)));
    }
    let check = |bit: usize| {
        let mut bytes = encoded.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let Ok(tampered) = Sealed::from_bytes(&bytes) else {
            return; // a typed decode error is a fine outcome
        };
        let byte = bit / 8;
        for (r, id) in ids.iter().enumerate() {
            let result = open(&tampered, id.decapsulator());
            let hit = content.contains(&byte)
                || slot_regions
                    .iter()
                    .any(|(kem, wr, o)| *o == r && (kem.contains(&byte) || wr.contains(&byte)));
            if hit {
                assert_eq!(result, Err(EnvelopeError::NotARecipient), "bit {bit}");
            } else if content.contains(&byte)
                || slot_regions
                    .iter()
                    .any(|(kem, wr, _)| kem.contains(&byte) || wr.contains(&byte))
            {
                // Another recipient's slot: ours still opens.
                assert_eq!(*result.unwrap(), plaintext, "bit {bit}");
            }
            // Header bits: whatever decoded, opening returned without panicking.
        }
    };
    // Every bit of the content ciphertext.
    for bit in content.start * 8..content.end * 8 {
        check(bit);
    }
    // Every bit of the headers (everything outside the three kinds of region).
    for byte in 0..encoded.len() {
        let inside = content.contains(&byte)
            || slot_regions
                .iter()
                .any(|(kem, wr, _)| kem.contains(&byte) || wr.contains(&byte));
        if !inside {
            for b in 0..8 {
                check(byte * 8 + b);
            }
        }
    }
    // A sample of each slot's KEM ciphertext and of its wrapped key.
    for (kem, wrapped, _) in &slot_regions {
        for bit in (kem.start * 8..kem.end * 8).step_by(97) {
            check(bit);
        }
        for bit in (wrapped.start * 8..wrapped.end * 8).step_by(7) {
            check(bit);
        }
    }
}

#[test]
fn a_slot_moved_onto_another_envelope_does_not_open() {
    let me = &pool()[0];
    let a = seal_for(&[me], b"first", 1);
    let b = seal_for(&[me], b"second", 2);
    let transplant = Sealed {
        content: b.content.clone(),
        slots: a.slots.clone(),
    };
    assert_eq!(
        open(&transplant, me.decapsulator()),
        Err(EnvelopeError::NotARecipient)
    );
    assert_eq!(&**open(&b, me.decapsulator()).unwrap(), b"second");
}

#[test]
fn recipient_limits_are_typed_and_the_largest_envelope_fits_a_frame() {
    let me = &pool()[1];
    let key = me.encapsulation_key().clone();
    let mut rng = ChaCha8Rng::from_seed([11; 32]);
    let provider = default_provider();
    for plaintext_len in [0usize, 100_000] {
        let plaintext = vec![0xa5u8; plaintext_len];
        let max = max_recipients(plaintext_len);
        assert!((1..=MAX_SLOTS).contains(&max));
        let too_many = vec![key.clone(); max + 1];
        let err = seal(&*provider, &too_many, &plaintext, &mut rng).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::TooManyRecipients {
                recipients: max + 1,
                max
            }
        );
        assert!(err.to_string().contains(&max.to_string()));
        let most = vec![key.clone(); max];
        let sealed = seal(&*provider, &most, &plaintext, &mut rng).unwrap();
        let encoded = sealed.to_bytes().unwrap();
        assert_eq!(encoded.len(), sealed_len(plaintext_len, max));
        assert!(encoded.len() <= MAX_SEALED_LEN && MAX_SEALED_LEN < MAX_FRAME_LEN);
        assert_eq!(Sealed::from_bytes(&encoded).unwrap(), sealed);
        assert_eq!(*open(&sealed, me.decapsulator()).unwrap(), plaintext);
    }
    assert_eq!(max_recipients(0), MAX_SLOTS);
    assert_eq!(
        seal(&*provider, &[], b"x", &mut rng),
        Err(EnvelopeError::NoRecipients)
    );
}

#[test]
fn encoding_round_trips_and_bad_bytes_are_typed_errors() {
    let ids: Vec<&Identity> = pool()[..3].iter().collect();
    let sealed = seal_for(&ids, b"round trip", 5);
    let encoded = sealed.to_bytes().unwrap();
    assert_eq!(Sealed::from_bytes(&encoded).unwrap(), sealed);
    let shared = bytes::Bytes::from(encoded.clone());
    assert_eq!(Sealed::from_shared(&shared).unwrap(), sealed);
    for len in (0..encoded.len()).step_by(13) {
        assert!(Sealed::from_bytes(&encoded[..len]).is_err(), "prefix {len}");
    }
    let mut extra = encoded.clone();
    extra.push(0);
    assert_eq!(
        Sealed::from_bytes(&extra),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    let mut rng = ChaCha8Rng::from_seed([13; 32]);
    for len in [1usize, 10, 100, 5_000] {
        for _ in 0..50 {
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            assert!(Sealed::from_bytes(&bytes).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn exactly_the_chosen_recipients_open(mask in 1u8..=u8::MAX, seed in any::<u8>()) {
        let chosen: Vec<&Identity> = pool()[..POOL]
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, id)| id)
            .collect();
        let sealed = seal_for(&chosen, &[seed; 40], seed);
        for (i, id) in pool().iter().enumerate() {
            let result = open(&sealed, id.decapsulator());
            if i < POOL && mask & (1 << i) != 0 {
                prop_assert_eq!(&**result.unwrap(), &[seed; 40][..]);
            } else {
                prop_assert_eq!(result, Err(EnvelopeError::NotARecipient));
            }
        }
    }
}
