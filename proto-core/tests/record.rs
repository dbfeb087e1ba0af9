//! PeerRecord: issuance, verification, and refusal of every kind of tampering.

use hearsay_proto::crypto::{PureRustProvider, SignatureBytes, VerifyingKeyBytes};
use hearsay_proto::identity::record::{Addresses, MAX_CLOCK_SKEW, MAX_RECORD_LIFETIME};
use hearsay_proto::testing::{T0, identity};
use hearsay_proto::{Address, PeerId, PeerRecord, RecordError, TimeDelta};

fn record() -> PeerRecord {
    let addresses = Addresses::new(vec![
        Address::new(&b"192.0.2.1:4433"[..]).unwrap(),
        Address::new(&b"[2001:db8::1]:4433"[..]).unwrap(),
    ])
    .unwrap();
    PeerRecord::issue(&identity(5), addresses, T0, TimeDelta::from_secs(3600)).unwrap()
}

fn flip(bytes: &[u8], i: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[i] ^= 0x01;
    v
}

#[test]
fn a_fresh_record_verifies_and_binds_both_keys_to_the_peer_id() {
    let r = record();
    assert_eq!(r.verify(&PureRustProvider, T0), Ok(()));
    assert_eq!(r.peer_id, identity(5).peer_id());
    assert_eq!(r.peer_id, PeerId::from_verifying_key(&r.verifying_key));
    assert_eq!(&r.encapsulation_key, identity(5).encapsulation_key());
    // It survives its own encoding.
    let back = PeerRecord::from_bytes(&r.to_bytes().unwrap()).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.verify(&PureRustProvider, T0), Ok(()));
    let len = r.to_bytes().unwrap().len();
    assert!(
        (6400..6700).contains(&len),
        "a record with two addresses is ~6.5 KB, got {len}"
    );
}

#[test]
fn every_byte_of_the_signature_and_kem_key_is_covered() {
    let r = record();
    let p = PureRustProvider;
    for i in 0..r.signature.len() {
        let mut t = r.clone();
        t.signature = SignatureBytes::copy_from_slice(&flip(&r.signature, i)).unwrap();
        assert_eq!(
            t.verify(&p, T0),
            Err(RecordError::BadSignature),
            "signature byte {i}"
        );
    }
    for i in 0..r.encapsulation_key.len() {
        let mut t = r.clone();
        t.encapsulation_key = hearsay_proto::crypto::EncapsulationKeyBytes::copy_from_slice(&flip(
            &r.encapsulation_key,
            i,
        ))
        .unwrap();
        assert_eq!(
            t.verify(&p, T0),
            Err(RecordError::BadSignature),
            "kem key byte {i}"
        );
    }
}

#[test]
fn every_byte_of_the_verifying_key_is_covered() {
    let r = record();
    let p = PureRustProvider;
    for i in 0..r.verifying_key.len() {
        // Swapping the key alone breaks the id binding...
        let mut t = r.clone();
        t.verifying_key = VerifyingKeyBytes::copy_from_slice(&flip(&r.verifying_key, i)).unwrap();
        assert_eq!(
            t.verify(&p, T0),
            Err(RecordError::PeerIdMismatch),
            "vk byte {i}"
        );
        // ...and re-deriving the id to match leaves a signature that does not verify.
        if i % 61 == 0 {
            t.peer_id = PeerId::from_verifying_key(&t.verifying_key);
            assert_eq!(
                t.verify(&p, T0),
                Err(RecordError::BadSignature),
                "vk byte {i} with matching id"
            );
        }
    }
}

#[test]
fn every_byte_of_addresses_times_and_id_is_covered() {
    let r = record();
    let p = PureRustProvider;
    for (k, a) in r.addresses.iter().enumerate() {
        for i in 0..a.len() {
            let mut addrs = r.addresses.clone().into_vec();
            addrs[k] = Address::new(flip(a, i)).unwrap();
            let mut t = r.clone();
            t.addresses = Addresses::new(addrs).unwrap();
            assert_eq!(
                t.verify(&p, T0),
                Err(RecordError::BadSignature),
                "address {k} byte {i}"
            );
        }
    }
    let mut dropped = r.clone();
    dropped.addresses = Addresses::new(vec![r.addresses[0].clone()]).unwrap();
    assert_eq!(dropped.verify(&p, T0), Err(RecordError::BadSignature));
    for bit in 0..64 {
        let mut t = r.clone();
        t.issued_at = hearsay_proto::Timestamp::from_micros(r.issued_at.as_micros() ^ (1 << bit));
        assert!(t.verify(&p, T0).is_err(), "issued_at bit {bit}");
        let mut t = r.clone();
        t.expires_at = hearsay_proto::Timestamp::from_micros(r.expires_at.as_micros() ^ (1 << bit));
        assert!(t.verify(&p, T0).is_err(), "expires_at bit {bit}");
    }
    for i in 0..32 {
        let mut t = r.clone();
        t.peer_id = PeerId::from_bytes(flip(r.peer_id.as_bytes(), i).try_into().unwrap());
        assert_eq!(
            t.verify(&p, T0),
            Err(RecordError::PeerIdMismatch),
            "peer id byte {i}"
        );
    }
}

#[test]
fn validity_window_is_enforced() {
    let r = record();
    let p = PureRustProvider;
    assert_eq!(
        r.verify(&p, r.expires_at - TimeDelta::from_micros(1)),
        Ok(())
    );
    assert_eq!(r.verify(&p, r.expires_at), Err(RecordError::Expired));
    assert_eq!(
        r.verify(&p, r.expires_at + TimeDelta::from_secs(1)),
        Err(RecordError::Expired)
    );
    // Slightly early is clock skew; much earlier is a record from the future.
    assert_eq!(r.verify(&p, T0 - MAX_CLOCK_SKEW), Ok(()));
    assert_eq!(
        r.verify(&p, T0 - MAX_CLOCK_SKEW - TimeDelta::from_micros(1)),
        Err(RecordError::NotYetValid)
    );
    // Issuing is refused for lifetimes the receiver would refuse.
    let too_long = MAX_RECORD_LIFETIME + TimeDelta::from_micros(1);
    assert_eq!(
        PeerRecord::issue(&identity(5), Addresses::empty(), T0, too_long),
        Err(RecordError::BadLifetime)
    );
}
