//! Envelopes and what carries them (SPEC.md §17): `Sealed::from_bytes` and `envelope::open`
//! with a fixed decapsulator; `AccessRecord`, `DeleteRequest` and `Announcement` decoding
//! (what decodes re-encodes to the same value) and verification; an `AccessStore` fed decoded
//! records and requests, as they are or re-signed by the author; envelopes sealed here and
//! mutated before they are opened. Insecure test provider throughout.
//!
//! Checked: nothing panics; an intact envelope opens to its plaintext for a recipient and
//! gives `NotARecipient` to anyone else; the store stays within its capacity, keeps the
//! highest version it accepted and refuses records of deleted messages.
//!
//! Input: the whole input is first decoded as each of the four types (seeds are encodings),
//! then read as a script of ops (op % 5):
//! 0 `[len(2), bytes]` an envelope opened; 1 `[fix, msg, len(2), bytes]` an access record
//! offered (re-addressed to message `msg` and re-signed when `fix` is odd); 2 `[fix, msg,
//! len(2), bytes]` a delete request, likewise; 3 `[len(2), bytes]` an announcement verified;
//! 4 `[n, mine, len(2), plaintext, m, (off(2), xor) * m]` an envelope to `n` recipients (the
//! fixed decapsulator among them if `mine` is odd), mutated, decoded and opened.
#![no_main]

mod common;

use chacha20::ChaCha8Rng;
use common::Input;
use hearsay_proto::testing::{T0, insecure_identity as identity};
use hearsay_proto::privacy::access::{AccessError, AccessRecord, AccessStore, DeleteRequest};
use hearsay_proto::crypto::{CryptoProvider, InsecureTestProvider};
use hearsay_proto::privacy::envelope::{self, EnvelopeError, Sealed};
use hearsay_proto::node::Announcement;
use hearsay_proto::{Identity, MessageId};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const P: &dyn CryptoProvider = &InsecureTestProvider;

/// The recipient (1), the author (2) and others (3..).
fn people() -> &'static [Identity] {
    static PEOPLE: OnceLock<Vec<Identity>> = OnceLock::new();
    PEOPLE.get_or_init(|| (1..=8).map(identity).collect())
}

fn open_all_ways(sealed: &Sealed, me: &Identity) {
    let opened = envelope::open(sealed, me.decapsulator());
    let key = envelope::open_key(sealed, me.decapsulator());
    let with_key = key
        .as_ref()
        .is_ok_and(|k| envelope::open_with_key(sealed, k).is_ok());
    assert_eq!(opened.is_ok(), with_key, "open = open_key + open_with_key");
    let _ = envelope::open_secret(sealed, me.decapsulator());
    let _ = envelope::find_key(&sealed.slots, &sealed.content_hash(), me.decapsulator());
}

fn decode_sealed(bytes: &[u8]) -> Option<Sealed> {
    let s = Sealed::from_bytes(bytes).ok()?;
    let again = s.to_bytes().expect("a decoded envelope re-encodes");
    assert_eq!(Sealed::from_bytes(&again).expect("re-decodes"), s);
    assert_eq!(
        Sealed::from_shared(&bytes::Bytes::copy_from_slice(bytes)).ok(),
        Some(s.clone())
    );
    Some(s)
}

fn decode_record(bytes: &[u8]) -> Option<AccessRecord> {
    let r = AccessRecord::from_bytes(bytes).ok()?;
    let again = r.to_bytes().expect("re-encodes");
    assert!(AccessRecord::from_bytes(&again).expect("re-decodes") == r);
    Some(r)
}

fn decode_delete(bytes: &[u8]) -> Option<DeleteRequest> {
    let d = DeleteRequest::from_bytes(bytes).ok()?;
    let again = d.to_bytes().expect("re-encodes");
    assert!(DeleteRequest::from_bytes(&again).expect("re-decodes") == d);
    Some(d)
}

fn decode_announcement(bytes: &[u8]) -> Option<Announcement> {
    let a = Announcement::from_bytes(bytes).ok()?;
    let again = a.to_bytes().expect("re-encodes");
    assert!(Announcement::from_bytes(&again).expect("re-decodes") == a);
    Some(a)
}

fn message(pick: u8) -> MessageId {
    MessageId::from_bytes([pick % 4; 32])
}

struct Store {
    store: AccessStore,
    /// The highest version accepted per message and the deletions, as far as this harness can
    /// tell (evictions make the store forget; it must never hold more than this says).
    highest: BTreeMap<MessageId, u64>,
}

impl Store {
    fn check(&self) {
        assert!(
            self.store.len() <= self.store.capacity(),
            "records over capacity"
        );
        assert!(
            self.store.deleted_len() <= self.store.capacity(),
            "deletions over capacity"
        );
        for (m, v) in &self.highest {
            if let Some(r) = self.store.get(m) {
                assert!(
                    r.version <= *v,
                    "the store holds a version it never accepted"
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let me = &people()[0];
    let author = &people()[1];
    if let Some(s) = decode_sealed(data) {
        open_all_ways(&s, me);
    }
    let _ = decode_record(data).map(|r| r.verify(P, author.verifying_key()));
    let _ = decode_delete(data).map(|d| d.verify(P, author.verifying_key()));
    if let Some(a) = decode_announcement(data) {
        let _ = a.verify(P, &a.author.peer_id, T0);
    }

    let mut input = Input::new(data);
    let mut store = Store {
        store: AccessStore::new(1 + usize::from(input.u8() % 3)),
        highest: BTreeMap::new(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        match input.u8() % 5 {
            0 => {
                if let Some(s) = decode_sealed(input.chunk()) {
                    open_all_ways(&s, me);
                }
            }
            1 => {
                let fix = input.u8();
                let msg = message(input.u8());
                let Some(mut r) = decode_record(input.chunk()) else {
                    continue;
                };
                if fix & 1 == 1 {
                    let slots = r.slots.clone();
                    r = AccessRecord::issue(author, msg, r.version, slots).expect("signs");
                }
                let (id, version) = (r.message, r.version);
                let result = store
                    .store
                    .offer(r, P, author.verifying_key(), author.peer_id());
                match result {
                    Ok(_) => {
                        let h = store.highest.entry(id).or_insert(version);
                        *h = (*h).max(version);
                        assert_eq!(store.store.get(&id).map(|r| r.version), Some(version));
                        assert!(!store.store.is_deleted(&id));
                    }
                    Err(AccessError::Deleted) => assert!(store.store.is_deleted(&id)),
                    Err(AccessError::Stale { stored, offered }) => assert!(offered <= stored),
                    Err(_) => {}
                }
            }
            2 => {
                let fix = input.u8();
                let msg = message(input.u8());
                let Some(mut d) = decode_delete(input.chunk()) else {
                    continue;
                };
                if fix & 1 == 1 {
                    d = DeleteRequest::issue(author, msg).expect("signs");
                }
                let id = d.message;
                if store
                    .store
                    .delete(&d, P, author.verifying_key(), author.peer_id())
                    .is_ok()
                {
                    assert!(store.store.is_deleted(&id), "a deletion is remembered");
                    assert!(
                        store.store.get(&id).is_none(),
                        "a deleted record is dropped"
                    );
                }
            }
            3 => {
                if let Some(a) = decode_announcement(input.chunk()) {
                    let _ = a.verify(P, &a.author.peer_id, T0);
                    let _ = a.verify(P, &author.peer_id(), T0);
                }
            }
            _ => {
                let n = usize::from(input.u8() % 6);
                let mine = input.bool();
                let plaintext = input.chunk().to_vec();
                let mut recipients: Vec<_> = people()[2..2 + n]
                    .iter()
                    .map(|p| p.encapsulation_key().clone())
                    .collect();
                if mine {
                    recipients.push(me.encapsulation_key().clone());
                }
                let sealed = match envelope::seal(P, &recipients, &plaintext, &mut rng) {
                    Ok(s) => s,
                    Err(EnvelopeError::NoRecipients) => {
                        assert!(recipients.is_empty());
                        continue;
                    }
                    Err(e) => panic!("sealing failed: {e:?}"),
                };
                let mut bytes = sealed.to_bytes().expect("encodes");
                let mutations = usize::from(input.u8() % 4);
                let mut changed = false;
                for _ in 0..mutations {
                    let off = usize::from(input.u16());
                    let xor = input.u8();
                    if let Some(b) = bytes.get_mut(off) {
                        *b ^= xor;
                        changed |= xor != 0;
                    }
                }
                let Some(decoded) = decode_sealed(&bytes) else {
                    assert!(changed, "an intact envelope decodes");
                    continue;
                };
                let opened = envelope::open(&decoded, me.decapsulator());
                if !changed {
                    if mine {
                        assert_eq!(
                            opened.expect("a recipient opens").as_slice(),
                            &plaintext[..]
                        );
                    } else {
                        assert_eq!(opened.err(), Some(EnvelopeError::NotARecipient));
                    }
                }
                open_all_ways(&decoded, me);
            }
        }
        store.check();
    }
});
