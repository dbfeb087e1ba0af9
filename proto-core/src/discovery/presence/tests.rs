use super::*;
use crate::DecodeError;
use crate::broadcast::message::MessageError;
use crate::broadcast::message::Payload;
use crate::broadcast::plumtree::Validator;
use crate::crypto::PureRustProvider;
use crate::crypto::SIGNATURE_LEN;
use crate::crypto::SignatureBytes;
use crate::identity::record::MAX_ADDRESS_LEN;
use crate::identity::record::MAX_ADDRESSES;
use crate::identity::record::{Address, Addresses};
use crate::machine::StateMachine;
use alloc::vec;
use alloc::vec::Vec;
use chacha20::ChaCha8Rng;
use proptest::prelude::*;
use rand_core::{Rng, SeedableRng};

/// An epoch boundary at the default epoch length (1.8e9 s is a multiple of 600 s).
const T0: Timestamp = Timestamp::from_secs(1_800_000_000);
const SECRET: [u8; 32] = [7; 32];
const fn secs(s: u64) -> TimeDelta {
    TimeDelta::from_secs(s)
}

fn provider() -> Arc<dyn CryptoProvider> {
    Arc::new(PureRustProvider)
}

/// A member with `addresses` addresses of `address_len` bytes in its record.
fn member_with(
    seed: u8,
    secret: [u8; 32],
    config: PresenceConfig,
    addresses: usize,
    address_len: usize,
) -> Presence {
    let mut rng = ChaCha8Rng::from_seed([seed; 32]);
    let identity = Identity::generate(&PureRustProvider, &mut rng);
    let addrs = (0..addresses)
        .map(|i| Address::new(vec![i as u8; address_len]).unwrap())
        .collect();
    let record =
        PeerRecord::issue(&identity, Addresses::new(addrs).unwrap(), T0, secs(3600)).unwrap();
    Presence::new(config, secret, &identity, record, provider()).unwrap()
}

fn member(seed: u8) -> Presence {
    member_with(seed, SECRET, PresenceConfig::default(), 1, 16)
}

fn rng(seed: u8) -> ChaCha8Rng {
    ChaCha8Rng::from_seed([seed; 32])
}

/// The tests' way of driving a member: every input goes through [`StateMachine::handle`],
/// every output comes out of [`StateMachine::poll`].
trait Drive {
    fn begin(&mut self, now: Timestamp);
    fn end(&mut self, now: Timestamp, rng: &mut ChaCha8Rng);
    fn receive(&mut self, now: Timestamp, message: &SignedMessage) -> Result<(), PresenceError>;
    fn tick(&mut self, now: Timestamp, rng: &mut ChaCha8Rng);
    fn new_record(&mut self, record: PeerRecord) -> Result<(), PresenceSetupError>;
    /// The next beacon, passing over validators; an event on the way is a test failure.
    fn next_beacon(&mut self) -> Option<OutgoingBeacon>;
    /// The next validator, passing over beacons; an event on the way is a test failure.
    fn next_validator(&mut self) -> Option<PresenceValidator>;
}

impl Drive for Presence {
    fn begin(&mut self, now: Timestamp) {
        self.handle(now, Input::Start, &mut rng(0)).unwrap();
    }

    fn end(&mut self, now: Timestamp, rng: &mut ChaCha8Rng) {
        self.handle(now, Input::Stop, rng).unwrap();
    }

    fn receive(&mut self, now: Timestamp, message: &SignedMessage) -> Result<(), PresenceError> {
        match self.handle(now, Input::Beacon(message), &mut rng(0)) {
            Ok(()) => Ok(()),
            Err(Refused::Beacon(e)) => Err(e),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn tick(&mut self, now: Timestamp, rng: &mut ChaCha8Rng) {
        StateMachine::handle_timeout(self, now, rng);
    }

    fn new_record(&mut self, record: PeerRecord) -> Result<(), PresenceSetupError> {
        match self.handle(T0, Input::SetRecord(record), &mut rng(0)) {
            Ok(()) => Ok(()),
            Err(Refused::Record(e)) => Err(e),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn next_beacon(&mut self) -> Option<OutgoingBeacon> {
        loop {
            match self.poll()? {
                Output::Beacon(b) => return Some(b),
                Output::Validator(_) => {}
                Output::Event(e) => panic!("an event before the beacon: {e:?}"),
            }
        }
    }

    fn next_validator(&mut self) -> Option<PresenceValidator> {
        loop {
            match self.poll()? {
                Output::Validator(v) => return Some(v),
                Output::Beacon(_) => {}
                Output::Event(e) => panic!("an event before the validator: {e:?}"),
            }
        }
    }
}

/// Starts `p` (if needed) and returns the beacon it sends at `now`.
fn beacon_at(p: &mut Presence, now: Timestamp, rng: &mut ChaCha8Rng) -> OutgoingBeacon {
    p.begin(now);
    p.tick(now, rng);
    p.next_beacon().expect("a beacon is due")
}

/// Every event queued (validators and beacons are passed over).
fn events(p: &mut Presence) -> Vec<PresenceEvent> {
    core::iter::from_fn(|| p.poll())
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn online(p: &Presence, now: Timestamp) -> Vec<PeerId> {
    p.online(now).collect()
}

fn sealed(m: &SignedMessage) -> SealedBeacon {
    codec::from_slice(&m.payload).unwrap()
}

fn with_payload(m: &SignedMessage, payload: Vec<u8>) -> SignedMessage {
    let mut m = m.clone();
    m.payload = Payload::new(payload).unwrap();
    m
}

/// What a member could do to a beacon: decrypt it with the group's keys, change the inner
/// beacon, encrypt it again (same nonce and outer fields). The outer signature is left
/// stale unless `resign`.
fn tamper(
    group_of: &Presence,
    m: &SignedMessage,
    resign: bool,
    f: impl FnOnce(&mut InnerBeacon),
) -> SignedMessage {
    let g = &group_of.group;
    let epoch = g.epoch_of(m.timestamp);
    let (tag, key) = g.tag_and_key(epoch);
    let s = sealed(m);
    let ad = associated_data(&g.topic, epoch, &tag, &m.author, m.sequence, m.timestamp);
    let plain = aead_open(&key, s.nonce.as_bytes(), &ad, s.ciphertext.as_bytes()).unwrap();
    let mut inner: InnerBeacon = codec::from_slice(unpad(&plain).unwrap()).unwrap();
    f(&mut inner);
    let plain = pad(&codec::to_vec(&inner).unwrap()).unwrap();
    let nonce: [u8; NONCE_LEN] = s.nonce.as_bytes().try_into().unwrap();
    let ct = aead_seal(&key, &nonce, &ad, &plain).unwrap();
    let payload = codec::to_vec(&SealedBeacon {
        tag: s.tag,
        nonce: s.nonce,
        ciphertext: FixedBytes::new(ct).unwrap(),
    })
    .unwrap();
    if resign {
        let author = g.author_identity(epoch);
        SignedMessage::publish(&author, m.topic, m.sequence, m.timestamp, &payload).unwrap()
    } else {
        with_payload(m, payload)
    }
}

#[test]
fn members_see_each_other_come_leave_and_time_out() {
    let mut r = rng(1);
    let (mut a, mut b, mut c) = (member(1), member(2), member(3));
    assert_eq!(a.topic(), presence_topic(&SECRET));
    assert_eq!(a.topic(), b.topic());
    a.begin(T0);
    assert_eq!(
        a.poll_timeout(),
        Some(T0),
        "the first beacon is due at once"
    );
    let ba = beacon_at(&mut a, T0, &mut r);
    let bb = beacon_at(&mut b, T0, &mut r);
    let bc = beacon_at(&mut c, T0, &mut r);
    // The broadcast layer's own check passes: a signed message under the key it carries.
    ba.message
        .verify(&PureRustProvider, &ba.author_key)
        .unwrap();

    let t1 = T0 + secs(1);
    a.receive(t1, &bb.message).unwrap();
    a.receive(t1, &bc.message).unwrap();
    b.receive(t1, &ba.message).unwrap();
    assert_eq!(
        events(&mut b),
        vec![PresenceEvent::Online {
            member: a.me,
            record: a.record.clone()
        }]
    );
    assert_eq!(events(&mut a).len(), 2);
    let mut both = vec![b.me, c.me];
    both.sort();
    assert_eq!(online(&a, t1), both);
    assert_eq!(online(&b, t1), vec![a.me]);

    // Beacons repeat every interval (± half of it); a refresh changes nothing visible but
    // extends the TTL.
    let next = b.poll_timeout().unwrap();
    assert!(next >= T0 + secs(15) && next < T0 + secs(45));
    b.tick(next, &mut r);
    let bb2 = b.next_beacon().unwrap();
    a.receive(next, &bb2.message).unwrap();
    assert!(events(&mut a).is_empty());
    assert_eq!(a.online_until(&b.me), Some(next + secs(600)));

    // b leaves gracefully: gone as soon as its offline beacon arrives.
    let t2 = next + secs(2);
    b.end(t2, &mut r);
    assert!(!b.is_running());
    let off = b.next_beacon().unwrap();
    a.receive(t2, &off.message).unwrap();
    assert_eq!(
        events(&mut a),
        vec![PresenceEvent::Offline {
            member: b.me,
            reason: OfflineReason::Left
        }]
    );
    assert_eq!(online(&a, t2), vec![c.me]);

    // c crashed after its first beacon: it drops out when its TTL runs out, not before.
    let ttl_end = T0 + secs(600);
    assert_eq!(a.online_until(&c.me), Some(ttl_end));
    let mut a_rng = rng(9);
    let mut now = t2;
    while let Some(t) = a.poll_timeout() {
        if t >= ttl_end {
            break;
        }
        now = t;
        a.tick(now, &mut a_rng);
        while a.next_beacon().is_some() {}
    }
    assert!(a.is_online(now, &c.me) && events(&mut a).is_empty());
    a.tick(ttl_end - TimeDelta::from_micros(1), &mut a_rng);
    assert!(events(&mut a).is_empty());
    assert!(a.poll_timeout().unwrap() <= ttl_end);
    a.tick(ttl_end, &mut a_rng);
    assert_eq!(
        events(&mut a),
        vec![PresenceEvent::Offline {
            member: c.me,
            reason: OfflineReason::Expired
        }]
    );
    assert!(online(&a, ttl_end).is_empty());
    assert_eq!(a.counters().members_expired, 1);
    assert_eq!(a.counters().rejected.total(), 0);
}

#[test]
fn outsiders_can_neither_read_nor_tell_members_apart_nor_link_epochs() {
    let mut r = rng(2);
    let mut a = member(1);
    // b's record is as large as a record can be; a's is small.
    let mut b = member_with(2, SECRET, PresenceConfig::default(), MAX_ADDRESSES, 128);
    let t = T0 + secs(5);
    let ba = beacon_at(&mut a, t, &mut r);
    let bb = beacon_at(&mut b, t, &mut r);
    b.end(t + secs(1), &mut r);
    let ob = b.next_beacon().unwrap();

    // Same outer author and key (the epoch's, neither member's), same tag, same length.
    for x in [&bb, &ob] {
        assert_eq!(x.message.author, ba.message.author);
        assert_eq!(x.author_key, ba.author_key);
        assert_eq!(sealed(&x.message).tag, sealed(&ba.message).tag);
        assert_eq!(x.message.payload.len(), BEACON_PAYLOAD_LEN);
        assert_eq!(
            codec::to_vec(&x.message).unwrap().len(),
            codec::to_vec(&ba.message).unwrap().len()
        );
    }
    assert_eq!(ba.message.payload.len(), BEACON_PAYLOAD_LEN);
    assert!(ba.message.author != a.me && ba.message.author != b.me);
    // Neither member's id nor key appears in the clear.
    for x in [&ba, &bb, &ob] {
        let bytes = codec::to_vec(&x.message).unwrap();
        for p in [&a, &b] {
            let vk = &p.signer.verifying_key()[..32];
            assert!(!bytes.windows(32).any(|w| w == p.me.as_bytes() || w == vk));
        }
    }

    // An outsider (another secret) gets a different topic, tag and key: it can decrypt
    // nothing, and its Presence refuses the beacon.
    let mut o = member_with(3, [8; 32], PresenceConfig::default(), 1, 16);
    assert_ne!(o.topic(), a.topic());
    let epoch = a.epoch_of(t);
    let (otag, okey) = o.group.tag_and_key(epoch);
    let s = sealed(&bb.message);
    assert_ne!(s.tag.as_bytes(), otag.as_slice());
    let m = &bb.message;
    for topic in [a.topic(), o.topic()] {
        let ad = associated_data(&topic, epoch, &otag, &m.author, m.sequence, m.timestamp);
        assert!(aead_open(&okey, s.nonce.as_bytes(), &ad, s.ciphertext.as_bytes()).is_none());
    }
    assert_eq!(o.receive(t, &bb.message), Err(PresenceError::WrongTopic));
    let mut moved = bb.message.clone();
    moved.topic = o.topic();
    assert_eq!(o.receive(t, &moved), Err(PresenceError::WrongTag));

    // The same member in the next epoch shares no public field with its earlier beacon.
    let t_next = T0 + secs(600) + secs(5);
    assert_eq!(a.epoch_of(t_next), epoch + 1);
    let mut a_rng = rng(3);
    a.tick(t_next, &mut a_rng);
    let later = a.next_beacon().unwrap();
    assert_ne!(later.message.author, ba.message.author);
    assert_ne!(later.author_key, ba.author_key);
    let (old_tag, new_tag) = (sealed(&ba.message).tag, sealed(&later.message).tag);
    assert_ne!(old_tag, new_tag);
    let later_bytes = codec::to_vec(&later.message).unwrap();
    for field in [
        old_tag.as_bytes(),
        ba.message.author.as_bytes(),
        &ba.author_key[..32],
    ] {
        assert!(!later_bytes.windows(field.len()).any(|w| w == field));
    }
    // Only the topic is common (it is the group's, SPEC.md §19 discusses it).
    assert_eq!(later.message.topic, ba.message.topic);
    assert_eq!(later.message.payload.len(), ba.message.payload.len());
}

/// Checks that `a` refuses `m` at `when` with `e` (any `Malformed` matches a `Malformed`),
/// counts it, and changes nothing.
fn refuse(
    a: &mut Presence,
    expect: &mut [u64; CAUSES],
    when: Timestamp,
    m: &SignedMessage,
    e: PresenceError,
) {
    let tracked = a.tracked();
    let got = a.receive(when, m);
    match (&got, &e) {
        (Err(PresenceError::Malformed(_)), PresenceError::Malformed(_)) => {}
        _ => assert_eq!(got, Err(e.clone())),
    }
    expect[e.index()] += 1;
    assert_eq!(
        a.counters().rejected,
        Rejections::from_array(*expect),
        "{e}"
    );
    assert_eq!(a.tracked(), tracked);
    assert!(events(a).is_empty());
}

#[test]
fn forged_stale_and_malformed_beacons_are_refused_and_counted() {
    let mut r = rng(3);
    let (mut a, mut b, c) = (member(1), member(2), member(3));
    let t = T0 + secs(60);
    let bb = beacon_at(&mut b, t, &mut r).message;
    let now = t + secs(1);
    let x = &mut [0u64; CAUSES];

    // The member's signature: flipped, or another member's record under b's signature.
    let m = tamper(&b, &bb, false, |i| {
        let mut s = i.signature.as_bytes().to_vec();
        s[100] ^= 1;
        i.signature = SignatureBytes::new(s).unwrap();
    });
    refuse(&mut a, x, now, &m, PresenceError::BadSignature);
    let m = tamper(&b, &bb, false, |i| i.record = c.record.clone());
    refuse(&mut a, x, now, &m, PresenceError::BadSignature);
    // A record whose id is not its key's.
    let m = tamper(&b, &bb, false, |i| i.record.peer_id = c.me);
    refuse(&mut a, x, now, &m, PresenceError::PeerIdMismatch);
    let m = tamper(&b, &bb, false, |i| i.timestamp += TimeDelta::from_micros(1));
    refuse(&mut a, x, now, &m, PresenceError::TimestampMismatch);
    // Outer fields are bound into the ciphertext.
    let mut m = bb.clone();
    m.sequence ^= 1;
    refuse(&mut a, x, now, &m, PresenceError::Undecryptable);
    let mut p = bb.payload.to_vec();
    let last = p.len() - 1;
    p[last] ^= 1;
    refuse(
        &mut a,
        x,
        now,
        &with_payload(&bb, p),
        PresenceError::Undecryptable,
    );
    // Tag, author, topic.
    let mut s = sealed(&bb);
    s.tag = FixedBytes::from_array([0; TAG_LEN]);
    let m = with_payload(&bb, codec::to_vec(&s).unwrap());
    refuse(&mut a, x, now, &m, PresenceError::WrongTag);
    let mut m = bb.clone();
    m.author = b.me;
    refuse(&mut a, x, now, &m, PresenceError::WrongAuthor);
    let mut m = bb.clone();
    m.topic = TopicId::from_name("elsewhere");
    refuse(&mut a, x, now, &m, PresenceError::WrongTopic);
    // Truncated, garbage, empty, oversize.
    let full = bb.payload.to_vec();
    let malformed = PresenceError::Malformed(DecodeError::Malformed { position: None });
    for p in [full[..full.len() - 1].to_vec(), vec![0xff; 100], Vec::new()] {
        refuse(&mut a, x, now, &with_payload(&bb, p), malformed.clone());
    }
    let mut long = full.clone();
    long.push(0);
    let e = PresenceError::Oversize {
        len: BEACON_PAYLOAD_LEN + 1,
        max: BEACON_PAYLOAD_LEN,
    };
    refuse(&mut a, x, now, &with_payload(&bb, long), e);
    // Time: from the future, stale epoch (two epochs on), expired (previous epoch, TTL over).
    refuse(&mut a, x, t - secs(31), &bb, PresenceError::FromTheFuture);
    let e = a.epoch_of(t);
    let stale = PresenceError::StaleEpoch {
        epoch: e,
        oldest: e + 1,
    };
    refuse(&mut a, x, T0 + secs(1200), &bb, stale);
    let (mut a, x) = (member(1), &mut [0u64; CAUSES]);
    refuse(&mut a, x, t + secs(600), &bb, PresenceError::Expired);
    // With short epochs a beacon two epochs old is stale although its TTL has not run out.
    let short = PresenceConfig {
        epoch_length: secs(60),
        ..PresenceConfig::default()
    };
    let mut s1 = member_with(4, SECRET, short.clone(), 1, 16);
    let mut s2 = member_with(5, SECRET, short, 1, 16);
    let old = beacon_at(&mut s1, t, &mut r).message;
    let e = s2.epoch_of(t);
    let stale = PresenceError::StaleEpoch {
        epoch: e,
        oldest: e + 1,
    };
    refuse(&mut s2, &mut [0; CAUSES], t + secs(150), &old, stale);
    // The genuine beacon is accepted once; the same beacon again is a replay.
    assert_eq!(a.receive(now, &bb), Ok(()));
    assert_eq!(events(&mut a).len(), 1);
    refuse(&mut a, x, now, &bb, PresenceError::Replayed);
    assert_eq!(online(&a, now), vec![b.me]);
    assert_eq!(a.counters().accepted, 1);
}

#[test]
fn reordered_or_replayed_online_beacons_cannot_undo_a_leave() {
    let mut r = rng(4);
    let (mut a, mut b) = (member(1), member(2));
    let t = T0 + secs(10);
    let on = beacon_at(&mut b, t, &mut r).message;
    b.end(t + secs(1), &mut r);
    let off = b.next_beacon().unwrap().message;
    let now = t + secs(2);
    // The offline beacon overtakes the online one.
    a.receive(now, &off).unwrap();
    assert_eq!(a.receive(now, &on), Err(PresenceError::Replayed));
    assert!(online(&a, now).is_empty() && events(&mut a).is_empty());
    // A leave within the same microsecond as the last beacon is still ordered (by seq).
    b.begin(now);
    b.tick(now, &mut r);
    let on2 = b.next_beacon().unwrap().message;
    b.end(now, &mut r);
    let off2 = b.next_beacon().unwrap().message;
    a.receive(now, &on2).unwrap();
    a.receive(now, &off2).unwrap();
    assert_eq!(a.receive(now, &on2), Err(PresenceError::Replayed));
    assert!(online(&a, now).is_empty());
}

#[test]
fn relay_validator_makes_the_full_check_and_counts() {
    let mut r = rng(5);
    let (mut a, mut b, c) = (member(1), member(2), member(3));
    a.begin(T0);
    let v = a.next_validator().expect("a first validator");
    assert!(a.next_validator().is_none());
    let t = T0 + secs(20);
    let ob = beacon_at(&mut b, t, &mut r);
    let (m, key) = (&ob.message, &ob.author_key);
    assert_eq!(v.validate(m, key), Ok(()));
    // A validator made before any epoch is known derives the author itself.
    let fresh = member(4).validator();
    assert_eq!(fresh.check(m, key), Ok(()));

    // Payload changed without the epoch key: the outer signature fails.
    let mut p = m.payload.to_vec();
    let last = p.len() - 1;
    p[last] ^= 1;
    assert_eq!(
        v.check(&with_payload(m, p), key),
        Err(PresenceError::OuterSignature)
    );
    // The key carried is not the author's.
    assert_eq!(
        v.check(m, c.signer.verifying_key()),
        Err(PresenceError::OuterSignature)
    );
    // Validly signed, but by a key that is not the epoch's.
    let mut id_rng = rng(6);
    let stranger = Identity::generate(&PureRustProvider, &mut id_rng);
    let s = SignedMessage::publish(&stranger, m.topic, 1, m.timestamp, &m.payload).unwrap();
    assert_eq!(
        v.validate(&s, stranger.verifying_key()),
        Err(MessageError::WrongKey)
    );
    // A member re-signs a beacon with a forged inner signature: caught by the relay.
    let forged = tamper(&b, m, true, |i| {
        let mut s = i.signature.as_bytes().to_vec();
        s[7] ^= 0x80;
        i.signature = SignatureBytes::new(s).unwrap();
    });
    assert_eq!(v.check(&forged, key), Err(PresenceError::BadSignature));
    assert_eq!(v.validate(&forged, key), Err(MessageError::BadSignature));
    // Garbage.
    assert!(matches!(
        v.check(&with_payload(m, vec![1, 2, 3]), key),
        Err(PresenceError::Malformed(_))
    ));
    let counters = a.counters();
    assert_eq!(counters.relay_accepted, 1);
    assert_eq!(counters.relay_rejected.wrong_author, 1);
    assert_eq!(counters.relay_rejected.bad_signature, 1);
    assert_eq!(
        counters.rejected.total(),
        0,
        "the member's own check counts apart"
    );

    // Two epochs on, a new validator refuses the old epoch as stale.
    let later = T0 + secs(1200);
    a.tick(later, &mut r);
    let v2 = a.next_validator().expect("a validator per epoch");
    let e = a.epoch_of(t);
    assert_eq!(
        v2.validate(m, key),
        Err(MessageError::TooOld),
        "stale epoch"
    );
    assert_eq!(
        v2.check(m, key),
        Err(PresenceError::StaleEpoch {
            epoch: e,
            oldest: e + 1
        })
    );
    assert_eq!(a.counters().relay_rejected.stale_epoch, 1);
}

#[test]
fn tracked_members_are_bounded_and_the_least_recent_is_evicted() {
    let mut r = rng(6);
    let config = PresenceConfig {
        max_members_tracked: 3,
        ..PresenceConfig::default()
    };
    let mut a = member_with(1, SECRET, config, 1, 16);
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let mut s = member(10 + i);
        let t = T0 + secs(u64::from(i));
        let m = beacon_at(&mut s, t, &mut r).message;
        a.receive(t, &m).unwrap();
        assert!(a.tracked() <= 3);
        ids.push(s.me);
    }
    let now = T0 + secs(5);
    let mut expect: Vec<PeerId> = ids[2..].to_vec();
    expect.sort();
    assert_eq!(online(&a, now), expect);
    let evicted: Vec<_> = events(&mut a)
        .into_iter()
        .filter_map(|e| match e {
            PresenceEvent::Offline {
                member,
                reason: OfflineReason::Evicted,
            } => Some(member),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, ids[..2].to_vec());
    assert_eq!(a.counters().members_evicted, 2);
}

#[test]
fn same_seed_gives_same_beacon_bytes() {
    let bytes = |seed: u8| {
        let mut p = member(1);
        let mut r = rng(seed);
        let b = beacon_at(&mut p, T0 + secs(3), &mut r);
        p.end(T0 + secs(4), &mut r);
        let o = p.next_beacon().unwrap();
        (
            codec::to_vec(&b.message).unwrap(),
            codec::to_vec(&o.message).unwrap(),
            b.author_key,
        )
    };
    assert_eq!(bytes(1), bytes(1));
    assert_ne!(bytes(1).0, bytes(2).0);
}

#[test]
fn mutated_and_random_payloads_never_panic_or_change_state() {
    let mut r = rng(7);
    let (mut a, mut b) = (member(1), member(2));
    let t = T0 + secs(30);
    let ob = beacon_at(&mut b, t, &mut r);
    let v = a.validator();
    let good = ob.message.payload.to_vec();
    for i in 0..400 {
        let mut p = good.clone();
        match i % 4 {
            0 => {
                let at = r.next_u64() as usize % p.len();
                p[at] ^= 1 << (r.next_u32() % 8);
            }
            1 => p.truncate(r.next_u64() as usize % p.len()),
            2 => {
                p = vec![0; r.next_u64() as usize % (BEACON_PAYLOAD_LEN + 64)];
                r.fill_bytes(&mut p);
            }
            _ => {
                // Headers of the payload: the first bytes of each field.
                let at = r.next_u64() as usize % 40;
                p[at] = r.next_u32() as u8;
            }
        }
        if p == good {
            continue;
        }
        let m = with_payload(&ob.message, p);
        assert!(a.receive(t, &m).is_err());
        if i % 8 == 0 {
            assert!(v.check(&m, &ob.author_key).is_err());
        }
    }
    assert_eq!(a.tracked(), 0);
    assert!(events(&mut a).is_empty());
    assert_eq!(a.counters().accepted, 0);
    a.receive(t, &ob.message).unwrap();
    assert_eq!(a.tracked(), 1);
}

#[test]
fn the_largest_inner_beacon_fills_the_fixed_plaintext_exactly() {
    let b = member_with(
        2,
        SECRET,
        PresenceConfig::default(),
        MAX_ADDRESSES,
        MAX_ADDRESS_LEN,
    );
    assert_eq!(codec::to_vec(&b.record).unwrap().len(), MAX_RECORD_LEN);
    assert_eq!(MAX_RECORD_LEN, 7_548);
    let inner = InnerBeacon {
        status: Status::Offline,
        seq: u64::MAX,
        timestamp: Timestamp::MAX,
        record: b.record.clone(),
        signature: SignatureBytes::from_array([0; SIGNATURE_LEN]),
    };
    let encoded = codec::to_vec(&inner).unwrap();
    assert_eq!(encoded.len(), MAX_INNER_LEN);
    assert_eq!(pad(&encoded).unwrap().len(), PLAINTEXT_LEN);
    assert_eq!(BEACON_PAYLOAD_LEN, 10_932);
    // Non-zero padding is refused.
    let mut padded = pad(&encoded[..100]).unwrap();
    padded[PLAINTEXT_LEN - 1] = 1;
    assert!(unpad(&padded).is_err());
    assert!(unpad(&[0xff, 0xff, 0]).is_err());
}

#[test]
fn beacons_travel_through_plumtree_with_the_presence_validator() {
    use crate::broadcast::plumtree::{self, Input, Message, Output, Plumtree};
    use crate::machine::StateMachine;
    let mut r = rng(9);
    let (mut a, mut b, mut c) = (member(1), member(2), member(3));
    a.begin(T0);
    let validator = a.next_validator().unwrap();
    let t = T0 + secs(3);
    let from = b.me;
    let mut relay = Plumtree::new(plumtree::Config::default(), a.topic());
    relay.handle(t, Input::NeighborUp(from), &mut r);
    let gossip = |o: &OutgoingBeacon| {
        Message::Gossip(plumtree::Payload {
            message: o.message.clone(),
            author_key: o.author_key.clone(),
            hops: 1,
        })
    };
    let (ob, oc) = (beacon_at(&mut b, t, &mut r), beacon_at(&mut c, t, &mut r));
    // Same author, distinct ids: the random outer sequence numbers keep them apart.
    assert_ne!(ob.message.id(), oc.message.id());
    let forged = tamper(&b, &ob.message, true, |i| i.seq += 1);
    let forged = OutgoingBeacon {
        message: forged,
        author_key: ob.author_key.clone(),
    };
    for o in [&forged, &ob, &oc] {
        let message = gossip(o);
        let validator = &validator;
        relay.handle(
            t,
            Input::Message {
                from,
                message,
                validator,
            },
            &mut r,
        );
    }
    let mut delivered = 0;
    while let Some(out) = relay.poll() {
        if let Output::Deliver { message, .. } = out {
            a.receive(t, &message).unwrap();
            delivered += 1;
        }
    }
    assert_eq!(delivered, 2);
    assert_eq!(relay.counters().invalid, 1);
    assert_eq!(a.counters().relay_rejected.bad_signature, 1);
    let mut both = vec![b.me, c.me];
    both.sort();
    assert_eq!(online(&a, t), both);
}

#[test]
fn configs_and_records_are_checked() {
    let mut r = rng(8);
    let id = Identity::generate(&PureRustProvider, &mut r);
    let other = Identity::generate(&PureRustProvider, &mut r);
    let rec = |i: &Identity| PeerRecord::issue(i, Addresses::empty(), T0, secs(60)).unwrap();
    assert!(matches!(
        Presence::new(
            PresenceConfig::default(),
            SECRET,
            &id,
            rec(&other),
            provider()
        ),
        Err(PresenceSetupError::RecordMismatch)
    ));
    for bad in [
        PresenceConfig {
            beacon_interval: TimeDelta::ZERO,
            ..PresenceConfig::default()
        },
        PresenceConfig {
            ttl: secs(30),
            ..PresenceConfig::default()
        },
        PresenceConfig {
            max_clock_skew: secs(600),
            ..PresenceConfig::default()
        },
        PresenceConfig {
            max_members_tracked: 0,
            ..PresenceConfig::default()
        },
    ] {
        assert!(matches!(
            Presence::new(bad, SECRET, &id, rec(&id), provider()),
            Err(PresenceSetupError::InvalidConfig(_))
        ));
    }
    let mut p =
        Presence::new(PresenceConfig::default(), SECRET, &id, rec(&id), provider()).unwrap();
    assert_eq!(
        p.new_record(rec(&other)),
        Err(PresenceSetupError::RecordMismatch)
    );
    let newer = PeerRecord::issue(&id, Addresses::empty(), T0 + secs(1), secs(60)).unwrap();
    assert_eq!(p.new_record(newer), Ok(()));
    // Debug never shows the secret.
    let dbg = alloc::format!("{p:?} {:?}", p.validator());
    assert!(!dbg.contains("7, 7, 7"));
}

// ------------------------------------------------------------------ timers

/// A short-lived group for the timer property: beacons every 20 s (± 10 s), a TTL of 60 s,
/// one-minute epochs, two tracked members.
fn quick() -> PresenceConfig {
    PresenceConfig {
        beacon_interval: secs(20),
        ttl: secs(60),
        epoch_length: secs(60),
        max_clock_skew: secs(5),
        max_members_tracked: 2,
        max_queued_events: 3,
    }
}

/// Spacing of the pool's beacons.
const POOL_STEP: u64 = 30;

/// Beacons of three other members of the [`quick`] group: `[member][step]` is `(online,
/// offline)`, sent at `T0 + step · POOL_STEP` and one second later. Made once for all cases.
fn pool() -> &'static [Vec<(SignedMessage, SignedMessage)>] {
    static POOL: std::sync::OnceLock<Vec<Vec<(SignedMessage, SignedMessage)>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        (2..5u8)
            .map(|seed| {
                let mut m = member_with(seed, SECRET, quick(), 1, 16);
                let mut r = rng(seed);
                (0..40u64)
                    .map(|step| {
                        let t = T0 + secs(step * POOL_STEP);
                        let on = beacon_at(&mut m, t, &mut r).message;
                        m.end(t + secs(1), &mut r);
                        let off = m.next_beacon().unwrap().message;
                        (on, off)
                    })
                    .collect()
            })
            .collect()
    })
}

/// One thing that happens to the member in [`timers_move_forward`].
#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    /// A beacon of pool member `member`: the one nearest in time, `shift` steps off.
    Beacon {
        member: usize,
        shift: i8,
        offline: bool,
    },
    /// A beacon with its payload cut short (refused).
    Garbage {
        member: usize,
    },
    /// The member's own record again, or another member's (refused).
    SetRecord {
        own: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Start),
        Just(Op::Stop),
        (0usize..3, -2i8..=1, any::<bool>()).prop_map(|(member, shift, offline)| Op::Beacon {
            member,
            shift,
            offline
        }),
        (0usize..3).prop_map(|member| Op::Garbage { member }),
        any::<bool>().prop_map(|own| Op::SetRecord { own }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After `handle_timeout(t)`, `poll_timeout()` is never at or before `t`, whatever came
    /// before (starts, stops, beacons accepted, refused and evicted, records, waits across
    /// TTLs and epochs, late wake-ups).
    #[test]
    fn timers_move_forward(ops in proptest::collection::vec((0u64..30_000, op()), 1..40)) {
        let pool = pool();
        let mut a = member_with(1, SECRET, quick(), 1, 16);
        let other = pool[0][0].0.clone();
        let mut r = rng(5);
        let mut now = T0;
        for (wait_ms, op) in ops {
            now += TimeDelta::from_millis(wait_ms);
            // A driver wakes at `poll_timeout`, or later.
            if a.poll_timeout().is_some_and(|t| t <= now) {
                StateMachine::handle_timeout(&mut a, now, &mut r);
                prop_assert!(a.poll_timeout().is_none_or(|t| t > now));
            }
            let input_record;
            let garbage;
            let input = match op {
                Op::Start => Input::Start,
                Op::Stop => Input::Stop,
                Op::Beacon { member, shift, offline } => {
                    let step = now.saturating_since(T0).as_micros() / secs(POOL_STEP).as_micros();
                    let step = (step as i64 + i64::from(shift)).clamp(0, 39) as usize;
                    let (on, off) = &pool[member][step];
                    Input::Beacon(if offline { off } else { on })
                }
                Op::Garbage { member } => {
                    let m = &pool[member][0].0;
                    garbage = with_payload(m, m.payload[..100].to_vec());
                    Input::Beacon(&garbage)
                }
                Op::SetRecord { own } => {
                    input_record = if own {
                        a.record.clone()
                    } else {
                        // A record of another member, taken from nothing but its beacon's
                        // outer author: any record that is not `a`'s will do.
                        let mut r = a.record.clone();
                        r.peer_id = other.author;
                        r
                    };
                    Input::SetRecord(input_record)
                }
            };
            let _ = a.handle(now, input, &mut r);
            while a.poll().is_some() {}
        }
        let end = now + secs(180);
        crate::machine::check::timers_move_forward(&mut a, &mut r, now, end, 1_000, |_, _, _| {});
        // Every member's TTL ran out; only the epoch boundary (and the beacon, if running)
        // remain.
        prop_assert_eq!(a.tracked(), 0);
    }
}
