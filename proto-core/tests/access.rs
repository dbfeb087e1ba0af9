//! Access records and delete requests (SPEC.md §17.7): both revocation operations end to end at
//! module level, refusal of forged, tampered and stale records, encoding, and store bounds.

use chacha20::ChaCha8Rng;
use hearsay_proto::crypto::EncapsulationKeyBytes;
use hearsay_proto::privacy::access::{
    AccessError, AccessRecord, AccessStore, DeleteRequest, Offer, Slots, open_with_record,
};
use hearsay_proto::privacy::envelope::{self, EnvelopeError, MAX_SLOTS, Sealed, Slot};
use hearsay_proto::testing::identity;
use hearsay_proto::wire::FixedBytes;
use hearsay_proto::{DecodeError, Identity, MAX_FRAME_LEN, MessageId, TopicId, default_provider};
use rand_core::{Rng, SeedableRng};

fn keys(ids: &[&Identity]) -> Vec<EncapsulationKeyBytes> {
    ids.iter().map(|i| i.encapsulation_key().clone()).collect()
}

/// The id of a message whose payload is the envelope's content (never its slots).
fn message_id(author: &Identity, sequence: u64, sealed: &Sealed) -> MessageId {
    MessageId::new(
        &author.peer_id(),
        &TopicId::from_name("access-test"),
        sequence,
        &sealed.content,
    )
}

struct Cast {
    author: Identity,
    a: Identity,
    b: Identity,
    c: Identity,
    mallory: Identity,
}

fn cast() -> Cast {
    Cast {
        author: identity(10),
        a: identity(11),
        b: identity(12),
        c: identity(13),
        mallory: identity(14),
    }
}

#[test]
fn sync_access_list_revocation() {
    let p = default_provider();
    let Cast {
        author, a, b, c, ..
    } = cast();
    let mut rng = ChaCha8Rng::from_seed([1; 32]);
    let plaintext = b"the minutes of the meeting";
    // The author is a recipient too, so it can recover the content key later.
    let sealed = envelope::seal(&*p, &keys(&[&author, &a, &b, &c]), plaintext, &mut rng).unwrap();
    let id = message_id(&author, 1, &sealed);
    let content = sealed.content.clone();

    let v1 = AccessRecord::issue(&author, id, 1, sealed.slots.clone()).unwrap();
    let mut store = AccessStore::new(16);
    assert_eq!(
        store.offer(v1.clone(), &*p, author.verifying_key(), author.peer_id()),
        Ok(Offer::New)
    );
    let stored = store.get(&id).unwrap();
    for reader in [&a, &b, &c] {
        assert_eq!(
            *open_with_record(&content, stored, reader.decapsulator()).unwrap(),
            plaintext
        );
    }

    // Revoke C: same content key, same content, new slots for the author, A and B only.
    let key = envelope::open_key(&v1.sealed(&content), author.decapsulator()).unwrap();
    let resealed =
        envelope::seal_with_key(&*p, &key, &content, &keys(&[&author, &a, &b]), &mut rng).unwrap();
    assert_eq!(resealed.content_hash(), sealed.content_hash());
    assert_eq!(message_id(&author, 1, &resealed), id, "id is unchanged");
    let v2 = AccessRecord::issue(&author, id, 2, resealed.slots).unwrap();
    assert_eq!(
        store.offer(v2, &*p, author.verifying_key(), author.peer_id()),
        Ok(Offer::Replaced { previous: 1 })
    );
    let stored = store.get(&id).unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        open_with_record(&content, stored, c.decapsulator()),
        Err(AccessError::Envelope(EnvelopeError::NotARecipient))
    );
    for reader in [&a, &b] {
        assert_eq!(
            *open_with_record(&content, stored, reader.decapsulator()).unwrap(),
            plaintext
        );
    }

    // Replaying v1 (or v2) is stale; the store keeps v2.
    assert_eq!(
        store.offer(v1, &*p, author.verifying_key(), author.peer_id()),
        Err(AccessError::Stale {
            stored: 2,
            offered: 1
        })
    );
    let again = store.get(&id).unwrap().clone();
    assert_eq!(
        store.offer(again, &*p, author.verifying_key(), author.peer_id()),
        Err(AccessError::Stale {
            stored: 2,
            offered: 2
        })
    );
    assert_eq!(store.get(&id).unwrap().version, 2);
    let counters = store.counters();
    assert_eq!((counters.new, counters.replaced, counters.stale), (1, 1, 2));
}

#[test]
fn re_encrypt_revocation() {
    let p = default_provider();
    let Cast {
        author,
        a,
        b,
        c,
        mallory,
    } = cast();
    let mut rng = ChaCha8Rng::from_seed([2; 32]);
    let old = envelope::seal(&*p, &keys(&[&a, &b, &c]), b"old", &mut rng).unwrap();
    let old_id = message_id(&author, 1, &old);
    let mut store = AccessStore::new(16);
    let old_v1 = AccessRecord::issue(&author, old_id, 1, old.slots.clone()).unwrap();
    store
        .offer(old_v1, &*p, author.verifying_key(), author.peer_id())
        .unwrap();

    // A new content key and a new message for A and B.
    let new = envelope::seal(&*p, &keys(&[&a, &b]), b"new", &mut rng).unwrap();
    let new_id = message_id(&author, 2, &new);
    assert_ne!(new_id, old_id);
    let new_v1 = AccessRecord::issue(&author, new_id, 1, new.slots.clone()).unwrap();
    assert_eq!(
        store.offer(new_v1, &*p, author.verifying_key(), author.peer_id()),
        Ok(Offer::New)
    );

    // Someone other than the author cannot delete: neither under their own name...
    let forged = DeleteRequest::issue(&mallory, old_id).unwrap();
    assert_eq!(
        store.delete(&forged, &*p, mallory.verifying_key(), author.peer_id()),
        Err(AccessError::NotAuthor)
    );
    // ...nor under the author's, with their key or the author's.
    let mut impersonated = forged.clone();
    impersonated.author = author.peer_id();
    assert_eq!(
        store.delete(
            &impersonated,
            &*p,
            mallory.verifying_key(),
            author.peer_id()
        ),
        Err(AccessError::WrongKey)
    );
    assert_eq!(
        store.delete(&impersonated, &*p, author.verifying_key(), author.peer_id()),
        Err(AccessError::BadSignature)
    );
    assert!(store.get(&old_id).is_some());
    assert!(!store.is_deleted(&old_id));

    // The author's delete request is honoured.
    let delete = DeleteRequest::issue(&author, old_id).unwrap();
    delete.verify(&*p, author.verifying_key()).unwrap();
    assert_eq!(
        store.delete(&delete, &*p, author.verifying_key(), author.peer_id()),
        Ok(true)
    );
    assert!(store.get(&old_id).is_none());
    assert!(store.is_deleted(&old_id));
    let later = AccessRecord::issue(&author, old_id, 9, old.slots.clone()).unwrap();
    assert_eq!(
        store.offer(later, &*p, author.verifying_key(), author.peer_id()),
        Err(AccessError::Deleted)
    );

    // C cannot open the new message; A and B can.
    let stored = store.get(&new_id).unwrap();
    assert_eq!(
        open_with_record(&new.content, stored, c.decapsulator()),
        Err(AccessError::Envelope(EnvelopeError::NotARecipient))
    );
    for reader in [&a, &b] {
        assert_eq!(
            &**open_with_record(&new.content, stored, reader.decapsulator()).unwrap(),
            b"new"
        );
    }
    // Old slots do not open new content (slots are bound to the content hash).
    assert_eq!(
        open_with_record(
            &new.content,
            &AccessRecord::issue(&author, new_id, 5, old.slots).unwrap(),
            a.decapsulator()
        ),
        Err(AccessError::Envelope(EnvelopeError::NotARecipient))
    );
    let counters = store.counters();
    assert_eq!(
        (
            counters.deletes,
            counters.not_author,
            counters.wrong_key,
            counters.bad_signature,
            counters.refused_deleted
        ),
        (1, 1, 1, 1, 1)
    );
}

#[test]
fn records_from_others_than_the_author_are_refused() {
    let p = default_provider();
    let Cast {
        author, a, mallory, ..
    } = cast();
    let mut rng = ChaCha8Rng::from_seed([3; 32]);
    let sealed = envelope::seal(&*p, &keys(&[&a]), b"x", &mut rng).unwrap();
    let id = message_id(&author, 1, &sealed);
    let mut store = AccessStore::new(4);

    // Mallory's own, valid record for the author's message.
    let own = AccessRecord::issue(&mallory, id, 1, sealed.slots.clone()).unwrap();
    own.verify(&*p, mallory.verifying_key()).unwrap();
    assert_eq!(
        store.offer(own.clone(), &*p, mallory.verifying_key(), author.peer_id()),
        Err(AccessError::NotAuthor)
    );
    // The same, relabelled as the author's.
    let mut relabelled = own;
    relabelled.author = author.peer_id();
    assert_eq!(
        store.offer(
            relabelled.clone(),
            &*p,
            mallory.verifying_key(),
            author.peer_id()
        ),
        Err(AccessError::WrongKey)
    );
    assert_eq!(
        store.offer(relabelled, &*p, author.verifying_key(), author.peer_id()),
        Err(AccessError::BadSignature)
    );
    assert!(store.is_empty());
    let c = store.counters();
    assert_eq!((c.not_author, c.wrong_key, c.bad_signature), (1, 1, 1));
}

#[test]
fn a_flipped_bit_anywhere_fails() {
    let p = default_provider();
    let Cast { author, a, b, .. } = cast();
    let mut rng = ChaCha8Rng::from_seed([4; 32]);
    let sealed = envelope::seal(&*p, &keys(&[&a, &b]), b"x", &mut rng).unwrap();
    let id = message_id(&author, 1, &sealed);
    let record = AccessRecord::issue(&author, id, 3, sealed.slots).unwrap();
    let bytes = record.to_bytes().unwrap();
    let mut positions: Vec<usize> = (0..80).collect(); // headers, ids, version
    positions.extend((80..bytes.len()).step_by(97)); // slots and signature
    positions.push(bytes.len() - 1);
    for &pos in &positions {
        for bit in [0u8, 3, 7] {
            let mut tampered = bytes.clone();
            tampered[pos] ^= 1 << bit;
            match AccessRecord::from_bytes(&tampered) {
                Err(AccessError::Decode(_)) => {}
                Err(other) => panic!("unexpected error {other:?} at {pos}"),
                Ok(decoded) => {
                    assert_ne!(decoded, record, "flip at {pos}.{bit} decoded unchanged");
                    assert!(
                        decoded.verify(&*p, author.verifying_key()).is_err(),
                        "flip at {pos}.{bit} verified"
                    );
                }
            }
        }
    }
    // A delete request likewise.
    let request = DeleteRequest::issue(&author, id).unwrap();
    let bytes = request.to_bytes().unwrap();
    for pos in (0..bytes.len()).step_by(53) {
        let mut tampered = bytes.clone();
        tampered[pos] ^= 0x10;
        if let Ok(decoded) = DeleteRequest::from_bytes(&tampered) {
            assert!(decoded.verify(&*p, author.verifying_key()).is_err());
        }
    }
}

#[test]
fn encoding_round_trips_and_garbage_is_a_typed_error() {
    let p = default_provider();
    let Cast { author, a, .. } = cast();
    let mut rng = ChaCha8Rng::from_seed([5; 32]);
    let sealed = envelope::seal(&*p, &keys(&[&a]), b"x", &mut rng).unwrap();
    let id = message_id(&author, 1, &sealed);
    for slots in [Slots::empty(), sealed.slots] {
        let record = AccessRecord::issue(&author, id, u64::MAX, slots).unwrap();
        let bytes = record.to_bytes().unwrap();
        let decoded = AccessRecord::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, record);
        decoded.verify(&*p, author.verifying_key()).unwrap();
        // Every truncation is a decode error.
        for cut in (0..bytes.len()).step_by(211) {
            assert!(matches!(
                AccessRecord::from_bytes(&bytes[..cut]),
                Err(AccessError::Decode(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            AccessRecord::from_bytes(&longer),
            Err(AccessError::Decode(DecodeError::TrailingBytes { extra: 1 }))
        );
    }
    let request = DeleteRequest::issue(&author, id).unwrap();
    let request_bytes = request.to_bytes().unwrap();
    assert_eq!(request_bytes.len(), 1 + 34 + 34 + 3 + 3309);
    let decoded = DeleteRequest::from_bytes(&request_bytes).unwrap();
    assert_eq!(decoded, request);

    // The largest record (SPEC.md §17.7): MAX_SLOTS slots and a 9-byte version.
    let slot = Slot {
        kem_ciphertext: FixedBytes::from_array([0; 1088]),
        wrapped_key: FixedBytes::from_array([0; 48]),
    };
    let full = Slots::new(vec![slot; MAX_SLOTS]).unwrap();
    let largest = AccessRecord::issue(&author, id, u64::MAX, full).unwrap();
    let largest_bytes = largest.to_bytes().unwrap();
    assert_eq!(largest_bytes.len(), 256_916);
    assert!(largest_bytes.len() < MAX_FRAME_LEN);
    assert_eq!(AccessRecord::from_bytes(&largest_bytes).unwrap(), largest);

    let mut noise = ChaCha8Rng::from_seed([6; 32]);
    for len in [0usize, 1, 2, 5, 40, 300, 4000] {
        for _ in 0..20 {
            let mut bytes = vec![0u8; len];
            noise.fill_bytes(&mut bytes);
            assert!(matches!(
                AccessRecord::from_bytes(&bytes),
                Err(AccessError::Decode(_))
            ));
            assert!(matches!(
                DeleteRequest::from_bytes(&bytes),
                Err(AccessError::Decode(_))
            ));
        }
    }
    // A slot list over MAX_SLOTS is refused on its header.
    let mut huge = vec![0x85, 0x58, 0x20];
    huge.extend_from_slice(&[0; 32]);
    huge.extend_from_slice(&[0x58, 0x20]);
    huge.extend_from_slice(&[0; 32]);
    huge.push(0x01);
    huge.extend_from_slice(&[0x9a, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        AccessRecord::from_bytes(&huge),
        Err(AccessError::Decode(DecodeError::ListTooLong { .. }))
    ));
}

#[test]
fn store_stays_within_capacity_when_flooded() {
    let p = default_provider();
    let Cast { author, .. } = cast();
    let capacity = 8;
    let mut store = AccessStore::new(capacity);
    let ids: Vec<MessageId> = (0..40u8).map(|n| MessageId::from_bytes([n; 32])).collect();
    for (n, id) in ids.iter().enumerate() {
        let record = AccessRecord::issue(&author, *id, 1, Slots::empty()).unwrap();
        assert_eq!(
            store.offer(record, &*p, author.verifying_key(), author.peer_id()),
            Ok(Offer::New)
        );
        assert!(store.len() <= capacity, "after {n}");
    }
    assert_eq!(store.len(), capacity);
    // The most recent insertions survive.
    for id in &ids[ids.len() - capacity..] {
        assert!(store.get(id).is_some());
    }
    assert!(store.get(&ids[0]).is_none());
    for (n, id) in ids.iter().enumerate() {
        let request = DeleteRequest::issue(&author, *id).unwrap();
        store
            .delete(&request, &*p, author.verifying_key(), author.peer_id())
            .unwrap();
        assert!(store.deleted_len() <= capacity, "after {n}");
    }
    assert!(store.is_empty());
    let c = store.counters();
    assert_eq!(
        (c.new, c.evicted_records, c.deletes, c.evicted_deletes),
        (40, 32, 40, 32)
    );
}
