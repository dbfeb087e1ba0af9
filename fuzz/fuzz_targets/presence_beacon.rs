//! Presence (SPEC.md §19): a member (insecure test provider) fed beacons on its topic through
//! `handle_beacon` and its relay validator. Beacons are arbitrary payloads under the epoch
//! author's key, plaintexts of any shape sealed with the epoch's key (built here from §19.1 and
//! §19.3, so the fuzzer reaches the decryption, padding, inner decoding and member-signature
//! checks that only holders of the group secret can reach), structured beacons with chosen
//! defects, mutated and replayed copies, and the passage of time.
//!
//! Checked: nothing panics; tracked members stay within `max_members_tracked`; every call is
//! counted once (accepted or refused by one cause); `poll_timeout` is in the future after
//! `handle_timeout`; a beacon `handle_beacon` accepts with a valid outer signature also passes
//! the relay validator (the validator is never stricter about what members accept); the online
//! set is a subset of the tracked members.
//!
//! Input: `[config, op...]`, op % 8:
//! 0 `[flags, dt, len(2), payload]`: a raw payload, outer-signed by the epoch author;
//! 1 `[member, flags, seq, dt, ...]`: a structured beacon with the defects in `flags`;
//! 2 `[dt, len(2), plaintext]`: a plaintext (zero-padded) sealed correctly;
//! 3 `[secs(2)]`: advance time, `handle_timeout`, drain;
//! 4 start or stop; 5 `[index, off(2), xor, resign]`: mutate a beacon built earlier;
//! 6 `[index]`: replay a beacon built earlier; 7 `[len(2), bytes]`: raw bytes, other topic.
#![no_main]

mod common;

use chacha20::ChaCha8Rng;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use common::Input;
use hearsay_proto::testing::{T0, insecure_identity as identity, record};
use hearsay_proto::crypto::{CryptoProvider, InsecureTestProvider, signing_input};
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::Validator;
use hearsay_proto::discovery::presence::{
    BEACON_AD, CIPHERTEXT_LEN, NONCE_LEN, PLAINTEXT_LEN, PRESENCE_DOMAIN, Presence, PresenceConfig,
    PresenceValidator, TAG_LEN, context, presence_topic,
};
use hearsay_proto::{Identity, IdentitySeeds, PeerId, PeerRecord, TimeDelta, Timestamp, TopicId};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::sync::{Arc, OnceLock};

const SECRET: [u8; 32] = [9; 32];

/// What a member derives for one epoch (SPEC.md §19.1), computed here independently.
struct Epoch {
    tag: [u8; TAG_LEN],
    key: [u8; 32],
    author: Identity,
}

fn derive(ctx: &str, epoch: u64, out: &mut [u8]) {
    let mut h = blake3::Hasher::new_derive_key(ctx);
    h.update(&SECRET);
    h.update(&epoch.to_be_bytes());
    h.finalize_xof().fill(out);
}

fn epoch_material(epoch: u64) -> Epoch {
    let mut tag = [0u8; TAG_LEN];
    derive(context::TAG, epoch, &mut tag);
    let mut key = [0u8; 32];
    derive(context::KEY, epoch, &mut key);
    let mut seeds = [0u8; 96];
    derive(context::AUTHOR, epoch, &mut seeds);
    let author = Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::from_bytes(&seeds));
    Epoch { tag, key, author }
}

struct Fixture {
    members: Vec<(Identity, PeerRecord)>,
    /// A record whose peer id is not its key's.
    mismatched: PeerRecord,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let hour = TimeDelta::from_secs(3600);
        let members: Vec<_> = (1..=5)
            .map(|s| {
                let id = identity(s);
                let r = record(&id, T0, hour);
                (id, r)
            })
            .collect();
        let mut mismatched = members[1].1.clone();
        mismatched.peer_id = PeerId::from_bytes([0xab; 32]);
        Fixture {
            members,
            mismatched,
        }
    })
}

// Minimal CBOR heads (RFC 8949 §3): major type `major`, argument `n`, shortest form.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n < 0x1_0000 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n < 0x1_0000_0000 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

/// The beacon payload `[tag, nonce, ciphertext]` sealing `plaintext` (any length) for `at`.
#[allow(clippy::too_many_arguments)]
fn seal(
    topic: &TopicId,
    epoch: u64,
    keys: &Epoch,
    author: &PeerId,
    sequence: u64,
    at: Timestamp,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut ad = BEACON_AD.to_vec();
    ad.extend_from_slice(topic.as_bytes());
    ad.extend_from_slice(&epoch.to_be_bytes());
    ad.extend_from_slice(&keys.tag);
    ad.extend_from_slice(author.as_bytes());
    ad.extend_from_slice(&sequence.to_be_bytes());
    ad.extend_from_slice(&at.as_micros().to_be_bytes());
    let mut buf = plaintext.to_vec();
    let tag = ChaCha20Poly1305::new(&keys.key.into())
        .encrypt_inout_detached(&Nonce::from(nonce), &ad, buf.as_mut_slice().into())
        .expect("encrypts");
    buf.extend_from_slice(&tag);
    let mut out = Vec::with_capacity(buf.len() + 64);
    head(&mut out, 4, 3);
    cbor_bytes(&mut out, &keys.tag);
    cbor_bytes(&mut out, &nonce);
    cbor_bytes(&mut out, &buf);
    out
}

/// The inner beacon `[status, seq, timestamp, record, signature]`, signed by `signer` (or
/// with a corrupted signature).
fn inner(
    topic: &TopicId,
    epoch: u64,
    status: u8,
    seq: u64,
    at: Timestamp,
    record: &PeerRecord,
    signer: &Identity,
    good_signature: bool,
) -> Vec<u8> {
    let record_bytes = record.to_bytes().expect("encodes");
    let mut body = topic.as_bytes().to_vec();
    body.extend_from_slice(&epoch.to_be_bytes());
    body.push(status);
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(&at.as_micros().to_be_bytes());
    body.extend_from_slice(blake3::hash(&record_bytes).as_bytes());
    let mut sig = signer
        .signer()
        .sign(&signing_input(PRESENCE_DOMAIN, &body))
        .expect("signs")
        .to_vec();
    if !good_signature {
        sig[0] ^= 0x40;
    }
    let mut out = Vec::new();
    head(&mut out, 4, 5);
    head(&mut out, 0, u64::from(status));
    head(&mut out, 0, seq);
    head(&mut out, 0, at.as_micros());
    out.extend_from_slice(&record_bytes);
    cbor_bytes(&mut out, &sig);
    out
}

/// `len (u16 BE) ‖ inner ‖ zeros` to the fixed plaintext length.
fn pad(inner: &[u8]) -> Vec<u8> {
    let mut out = (inner.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(inner);
    out.resize(PLAINTEXT_LEN.max(out.len()), 0);
    out
}

struct Run {
    presence: Presence,
    validator: PresenceValidator,
    rng: ChaCha8Rng,
    now: Timestamp,
    topic: TopicId,
    calls: u64,
    /// Beacons built so far (for mutation and replay), with their author keys.
    built: Vec<(SignedMessage, hearsay_proto::crypto::VerifyingKeyBytes)>,
    max_tracked: usize,
}

impl Run {
    /// A time `dt` (signed, in units of 8 s) around now.
    fn time(&self, dt: u8) -> Timestamp {
        let off = TimeDelta::from_secs(u64::from(dt & 0x7f) * 8);
        if dt & 0x80 != 0 {
            self.now - off
        } else {
            self.now + off
        }
    }

    fn offer(&mut self, message: SignedMessage, key: hearsay_proto::crypto::VerifyingKeyBytes) {
        let outer_ok = message.verify(&InsecureTestProvider, &key).is_ok();
        let relay = self.validator.check(&message, &key);
        let _ = self.validator.validate(&message, &key);
        let accepted = self.presence.handle_beacon(self.now, &message);
        self.calls += 1;
        if accepted.is_ok() && outer_ok {
            assert!(
                relay.is_ok(),
                "member accepted what its relay validator refused: {relay:?}"
            );
        }
        let c = self.presence.counters();
        assert_eq!(
            c.accepted + c.rejected.total(),
            self.calls,
            "every beacon is counted once"
        );
        if self.built.len() < 32 {
            self.built.push((message, key));
        }
        self.check();
    }

    fn check(&self) {
        assert!(
            self.presence.tracked() <= self.max_tracked,
            "tracked over bound"
        );
        assert!(self.presence.online(self.now).count() <= self.presence.tracked());
    }

    fn outer(&self, at: Timestamp, keys: &Epoch, sequence: u64, payload: &[u8]) -> SignedMessage {
        SignedMessage::publish(&keys.author, self.topic, sequence, at, payload).expect("signs")
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut input = Input::new(data);
    let pick = input.u8();
    let config = PresenceConfig {
        max_members_tracked: 1 + usize::from(pick % 4),
        max_queued_events: 1 + usize::from(pick >> 2) % 4,
        ..PresenceConfig::default()
    };
    let max_tracked = config.max_members_tracked;
    let provider: Arc<dyn CryptoProvider> = Arc::new(InsecureTestProvider);
    let (me, my_record) = &f.members[0];
    let Ok(mut presence) = Presence::new(config, SECRET, me, my_record.clone(), provider) else {
        return;
    };
    let topic = presence_topic(&SECRET);
    assert_eq!(presence.topic(), topic);
    let now = T0 + TimeDelta::from_secs(u64::from(input.u8()) * 7);
    presence.start(now);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    presence.handle_timeout(now, &mut rng);
    let validator = presence
        .poll_validator()
        .expect("the first validator is due");
    let mut run = Run {
        presence,
        validator,
        rng,
        now,
        topic,
        calls: 0,
        built: Vec::new(),
        max_tracked,
    };
    while let Some(b) = run.presence.poll_beacon() {
        run.built.push((b.message, b.author_key));
    }
    static SELF_TEST: std::sync::Once = std::sync::Once::new();
    SELF_TEST.call_once(|| {
        // The beacons built here must be the real thing, or the fuzzer never gets past the
        // decryption: a clean one from member 2 is accepted by the member and its validator.
        let (signer, rec) = &f.members[1];
        let e = run.presence.epoch_of(run.now);
        let keys = epoch_material(e);
        let body = inner(&run.topic, e, 0, 1, run.now, rec, signer, true);
        let sequence = 1 << 63;
        let author = keys.author.peer_id();
        let payload = seal(
            &run.topic,
            e,
            &keys,
            &author,
            sequence,
            run.now,
            [1; NONCE_LEN],
            &pad(&body),
        );
        let m = run.outer(run.now, &keys, sequence, &payload);
        let key = keys.author.verifying_key().clone();
        assert_eq!(run.validator.check(&m, &key), Ok(()));
        let mut probe = Presence::new(
            PresenceConfig::default(),
            SECRET,
            me,
            my_record.clone(),
            Arc::new(InsecureTestProvider),
        )
        .expect("builds");
        assert_eq!(probe.handle_beacon(run.now, &m), Ok(()));
        assert!(probe.is_online(run.now, &signer.peer_id()));
    });

    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        match input.u8() % 8 {
            0 => {
                let flags = input.u8();
                let at = run.time(input.u8());
                let e = run.presence.epoch_of(at);
                let keys = epoch_material(e);
                let payload = input.chunk();
                let m = run.outer(at, &keys, u64::from(flags) | 1 << 63, payload);
                run.offer(m, keys.author.verifying_key().clone());
            }
            1 => {
                let who = usize::from(input.u8()) % (f.members.len() + 1);
                let flags = input.u8();
                let seq = u64::from(input.u8());
                let at = run.time(input.u8());
                let e = run.presence.epoch_of(at);
                // Bit 0: keys of a neighbouring epoch; bit 1: inner time differs; bit 2: bad
                // member signature; bit 3: offline; bit 4: non-zero padding; bit 5: wrong
                // length field; bit 6: wrong author; bit 7: corrupt outer signature.
                let key_epoch = if flags & 1 != 0 { e.wrapping_add(1) } else { e };
                let keys = epoch_material(key_epoch);
                let inner_at = if flags & 2 != 0 {
                    at + TimeDelta::from_micros(1)
                } else {
                    at
                };
                let (signer, rec) = match f.members.get(who) {
                    Some((i, r)) => (i, r),
                    None => (&f.members[1].0, &f.mismatched),
                };
                let status = (flags >> 3) & 1;
                let body = inner(
                    &run.topic,
                    e,
                    status,
                    seq,
                    inner_at,
                    rec,
                    signer,
                    flags & 4 == 0,
                );
                let mut plaintext = pad(&body);
                if flags & 0x10 != 0 {
                    let i = PLAINTEXT_LEN - 1 - usize::from(input.u8());
                    plaintext[i] ^= 1;
                }
                if flags & 0x20 != 0 {
                    plaintext[1] ^= input.u8() | 1;
                }
                let author = if flags & 0x40 != 0 {
                    identity(99)
                } else {
                    epoch_material(key_epoch).author
                };
                let sequence = input.u64() | 1 << 63;
                let nonce = input.array::<NONCE_LEN>();
                let payload = seal(
                    &run.topic,
                    e,
                    &keys,
                    &author.peer_id(),
                    sequence,
                    at,
                    nonce,
                    &plaintext,
                );
                let mut m = SignedMessage::publish(&author, run.topic, sequence, at, &payload)
                    .expect("signs");
                if flags & 0x80 != 0 {
                    let mut sig = m.signature.to_vec();
                    sig[1] ^= 1;
                    m.signature = hearsay_proto::crypto::SignatureBytes::new(sig).expect("length");
                }
                run.offer(m, author.verifying_key().clone());
            }
            2 => {
                let at = run.time(input.u8());
                let e = run.presence.epoch_of(at);
                let keys = epoch_material(e);
                let mut plaintext = input.chunk().to_vec();
                plaintext.truncate(PLAINTEXT_LEN);
                plaintext.resize(PLAINTEXT_LEN, 0);
                let sequence = input.u64() | 1 << 63;
                let author = keys.author.peer_id();
                let payload = seal(
                    &run.topic,
                    e,
                    &keys,
                    &author,
                    sequence,
                    at,
                    [5; NONCE_LEN],
                    &plaintext,
                );
                assert_eq!(payload.len(), hearsay_proto::discovery::presence::BEACON_PAYLOAD_LEN);
                let _ = CIPHERTEXT_LEN;
                let m = run.outer(at, &keys, sequence, &payload);
                run.offer(m, keys.author.verifying_key().clone());
            }
            3 => {
                run.now += TimeDelta::from_secs(u64::from(input.u16()));
                run.presence.handle_timeout(run.now, &mut run.rng);
                assert!(
                    run.presence.poll_timeout().is_none_or(|t| t > run.now),
                    "timer still due"
                );
                if let Some(v) = run.presence.poll_validator() {
                    run.validator = v;
                }
                while let Some(b) = run.presence.poll_beacon() {
                    if run.built.len() < 32 {
                        run.built.push((b.message, b.author_key));
                    }
                }
                while run.presence.poll_event().is_some() {}
                run.check();
            }
            4 => {
                if run.presence.is_running() {
                    run.presence.stop(run.now, &mut run.rng);
                } else {
                    run.presence.start(run.now);
                }
            }
            5 => {
                if run.built.is_empty() {
                    continue;
                }
                let (mut m, key) = run.built[usize::from(input.u8()) % run.built.len()].clone();
                let mut payload = m.payload.to_vec();
                let off = usize::from(input.u16());
                let xor = input.u8();
                if let Some(b) = payload.get_mut(off) {
                    *b ^= xor;
                }
                m.payload = hearsay_proto::broadcast::message::Payload::new(payload).expect("same length");
                if input.bool() {
                    // Re-sign the outer layer as the epoch author (a member can).
                    let e = run.presence.epoch_of(m.timestamp);
                    let keys = epoch_material(e);
                    m = run.outer(m.timestamp, &keys, m.sequence, &m.payload.to_bytes());
                }
                run.offer(m, key);
            }
            6 => {
                if run.built.is_empty() {
                    continue;
                }
                let (m, key) = run.built[usize::from(input.u8()) % run.built.len()].clone();
                run.offer(m, key);
            }
            _ => {
                let payload = input.chunk();
                let keys = epoch_material(run.presence.epoch_of(run.now));
                let m = SignedMessage::publish(
                    &keys.author,
                    TopicId::from_name("elsewhere"),
                    1,
                    run.now,
                    payload,
                )
                .expect("signs");
                run.offer(m, keys.author.verifying_key().clone());
            }
        }
    }
});
