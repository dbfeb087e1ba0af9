//! The in-process measurements: crypto per provider (section 1), node throughput (2), the wire
//! codec, envelopes and IBLTs (3), and Plumtree's receive path (6).

use crate::options::*;
use chacha20::ChaCha8Rng;
use hearsay_benches::frames::all_frames;
use hearsay_benches::pair::Receiver;
use hearsay_proto::antientropy::iblt::{Iblt, cells_for};
use hearsay_proto::broadcast::plumtree::{Message as Plum, Plumtree, SignatureValidator};
use hearsay_proto::crypto::{
    CryptoProvider, EncapsulationKeyBytes, InsecureTestProvider, PureRustProvider, SignatureBytes,
};
use hearsay_proto::privacy::envelope::{Sealed, open, seal};
use hearsay_proto::testing::{identity, identity_with};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{Frame, Identity};
use hearsay_tokio::AwsLcProvider;
use rand_core::{Rng, SeedableRng};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ 1. crypto

#[derive(Debug, Clone, Copy)]
pub(crate) struct CryptoFigures {
    pub(crate) sign: Duration,
    pub(crate) verify: Duration,
    pub(crate) encaps: Duration,
    pub(crate) decaps: Duration,
}

pub(crate) fn crypto(provider: &dyn CryptoProvider, opts: &Options) -> CryptoFigures {
    let mut rng = ChaCha8Rng::from_seed([9; 32]);
    let identity = identity_with(provider, 9);
    // A record-sized message whose first eight bytes change per call: deterministic ML-DSA
    // signing of one fixed message always takes the same number of rejection rounds.
    let mut message = vec![0x5au8; 256];
    let n_sign = opts.iters(2_000, 200);
    let sign = time_per_op(n_sign, |i| {
        message[..8].copy_from_slice(&(i as u64).to_le_bytes());
        black_box(identity.signer().sign(black_box(&message)).expect("signs"));
    });
    // Verify distinct (message, signature) pairs, cycling through them.
    let pairs: Vec<(Vec<u8>, SignatureBytes)> = (0..64u64)
        .map(|k| {
            let mut m = vec![0xa5u8; 256];
            m[..8].copy_from_slice(&(k + 1_000_000).to_le_bytes());
            let sig = identity.signer().sign(&m).expect("signs");
            (m, sig)
        })
        .collect();
    let vk = identity.verifying_key().clone();
    let n_verify = opts.iters(5_000, 500);
    let verify = time_per_op(n_verify, |i| {
        let (m, s) = &pairs[i % pairs.len()];
        assert!(provider.verify(&vk, black_box(m), black_box(s)));
    });
    let ek = identity.encapsulation_key().clone();
    let n_kem = opts.iters(5_000, 500);
    let mut entropy = [0u8; 32];
    let encaps = time_per_op(n_kem, |_| {
        rng.fill_bytes(&mut entropy);
        black_box(provider.encapsulate(&ek, &entropy).expect("encapsulates"));
    });
    let cts: Vec<_> = (0..64)
        .map(|_| {
            rng.fill_bytes(&mut entropy);
            provider.encapsulate(&ek, &entropy).expect("encapsulates").0
        })
        .collect();
    let decaps = time_per_op(n_kem, |i| {
        black_box(
            identity
                .decapsulator()
                .decapsulate(&cts[i % cts.len()])
                .expect("decapsulates"),
        );
    });
    CryptoFigures {
        sign,
        verify,
        encaps,
        decaps,
    }
}

// ------------------------------------------------------------------ 2. node throughput

#[derive(Debug, Clone, Copy)]
pub(crate) struct Throughput {
    pub(crate) messages: usize,
    pub(crate) delivered: usize,
    pub(crate) per_message: Duration,
}

/// One receiving node fed `n` distinct pre-signed 1 KiB GOSSIP frames from its topic neighbour.
pub(crate) fn node_throughput(
    provider: Arc<dyn CryptoProvider>,
    n: usize,
) -> Result<Throughput, String> {
    let mut receiver = Receiver::new(provider)?;
    let frames = receiver.gossip_frames(0, n, 1024);
    let mut delivered = 0;
    let start = Instant::now();
    for frame in frames {
        delivered += receiver.feed(frame);
    }
    let elapsed = start.elapsed();
    Ok(Throughput {
        messages: n,
        delivered,
        per_message: elapsed / n.max(1) as u32,
    })
}

// ------------------------------------------------------------------ 3. wire, envelope, iblt

pub(crate) struct WireRow {
    pub(crate) kind: &'static str,
    pub(crate) name: &'static str,
    pub(crate) len: usize,
    pub(crate) encode: Duration,
    pub(crate) decode: Duration,
}

pub(crate) fn wire_rows(opts: &Options) -> Vec<WireRow> {
    all_frames()
        .into_iter()
        .map(|fixture| {
            let bytes = fixture.bytes();
            // About the same total work per frame: fewer iterations for big frames.
            let n = opts.iters(
                (400_000_000 / (bytes.len() + 200)).clamp(5_000, 200_000),
                5_000,
            );
            let frame = &fixture.frame;
            let encode = best_per_op(n, 5, |_| {
                black_box(black_box(frame).encode().expect("encodes"));
            });
            let decode = best_per_op(n, 5, |_| {
                black_box(Frame::decode_shared(black_box(&bytes)).expect("decodes"));
            });
            WireRow {
                kind: fixture.kind,
                name: fixture.name,
                len: bytes.len(),
                encode,
                decode,
            }
        })
        .collect()
}

pub(crate) fn envelope_rows(opts: &Options) -> Vec<(usize, Duration, Duration)> {
    let provider = PureRustProvider;
    let identities: Vec<Identity> = (0..100u64).map(identity).collect();
    let keys: Vec<EncapsulationKeyBytes> = identities
        .iter()
        .map(|i| i.encapsulation_key().clone())
        .collect();
    let plaintext = vec![0xa5u8; 1024];
    let mut rng = ChaCha8Rng::from_seed([42; 32]);
    [1usize, 10, 100]
        .into_iter()
        .map(|count| {
            let n = opts.iters(2_000 / count, 3).max(3);
            let seal_t = time_per_op(n, |_| {
                black_box(seal(&provider, &keys[..count], &plaintext, &mut rng).expect("seals"));
            });
            // Open as the recipient whose slot is tried last: one decapsulation per slot.
            let sealed = seal(&provider, &keys[..count], &plaintext, &mut rng).expect("seals");
            let me = &identities[count - 1];
            let mut slots = sealed.slots.clone().into_vec();
            let mine = slots
                .iter()
                .position(|slot| {
                    let single = Sealed {
                        content: sealed.content.clone(),
                        slots: BoundedVec::new(vec![slot.clone()]).expect("one slot"),
                    };
                    open(&single, me.decapsulator()).is_ok()
                })
                .expect("the recipient has a slot");
            let slot = slots.remove(mine);
            slots.push(slot);
            let worst = Sealed {
                content: sealed.content.clone(),
                slots: BoundedVec::new(slots).expect("same count"),
            };
            let open_t = time_per_op(n, |_| {
                black_box(open(black_box(&worst), me.decapsulator()).expect("opens"));
            });
            (count, seal_t, open_t)
        })
        .collect()
}

/// The `n`th id of a deterministic SplitMix64 stream.
pub(crate) fn id(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut z = n
            .wrapping_mul(4)
            .wrapping_add(i as u64)
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

pub(crate) fn iblt_rows(opts: &Options) -> Vec<(String, Duration)> {
    const SEED: [u8; 32] = [0x5e; 32];
    let mut rows = Vec::new();
    let ids: Vec<[u8; 32]> = (0..10_000).map(id).collect();
    let empty = Iblt::new(cells_for(1_000), SEED).expect("a valid size");
    let n = opts.iters(100, 10);
    let t = time_per_op(n, |_| {
        let mut table = empty.clone();
        for x in &ids {
            table.insert(black_box(x));
        }
        black_box(table);
    });
    rows.push(("insert 10 000 ids (table for d = 1 000)".to_string(), t));
    for d in [100u64, 1_000] {
        let mut a = Iblt::new(cells_for(d as usize), SEED).expect("a valid size");
        let mut b = a.clone();
        for k in 0..1_000 {
            a.insert(&id(k));
            b.insert(&id(k));
        }
        for k in 1_000..1_000 + d {
            if k % 2 == 0 {
                a.insert(&id(k));
            } else {
                b.insert(&id(k));
            }
        }
        let n = opts.iters(2_000, 100);
        let mut ok = true;
        let t = time_per_op(n, |_| {
            ok &= a.subtract(&b).and_then(Iblt::decode).is_ok();
        });
        let note = if ok { "" } else { " (decode failed)" };
        rows.push((format!("subtract + decode, d = {d}{note}"), t));
        let bytes = a.to_bytes();
        let t = time_per_op(n, |_| {
            black_box(Iblt::from_bytes(black_box(&bytes)).expect("parses"));
        });
        rows.push((format!("parse a d = {d} table ({} bytes)", bytes.len()), t));
    }
    rows
}

// ------------------------------------------------------------------ 6. plumtree receive path

pub(crate) fn plumtree_rows(opts: &Options) -> Vec<(String, Duration)> {
    use hearsay_benches::receive::{author, fresh, gossip, ids, ihave, replay, sender};
    use hearsay_proto::testing::T0;
    let from = sender();
    let mut rows = Vec::new();
    let real = gossip(&author(&PureRustProvider), opts.iters(1_000, 200), 1024);
    let fake = gossip(
        &author(&InsecureTestProvider),
        opts.iters(4_096, 1_000),
        1024,
    );
    let validators: [(&str, SignatureValidator, &[Plum]); 3] = [
        (
            "pure-rust",
            SignatureValidator(Arc::new(PureRustProvider)),
            &real,
        ),
        (
            "aws-lc-rs",
            SignatureValidator(Arc::new(AwsLcProvider)),
            &real,
        ),
        (
            "insecure test provider",
            SignatureValidator(Arc::new(InsecureTestProvider)),
            &fake,
        ),
    ];
    for (name, validator, pool) in &validators {
        let n = pool.len();
        let total = replay(n as u64, pool, fresh, |p: &mut Plumtree, m| {
            p.handle_message(T0, from, m, validator);
            while p.poll().is_some() {}
        });
        rows.push((
            format!("new 1 KiB GOSSIP, validator {name} ({n} messages)"),
            total / n.max(1) as u32,
        ));
    }
    let insecure = &validators[2].1;
    // What the stand-in check itself costs (BLAKE3 over key and message, a signature-sized
    // output), to subtract from the insecure row.
    if let Plum::Gossip(p) = &fake[0] {
        let n = opts.iters(200_000, 20_000);
        let t = time_per_op(n, |_| {
            black_box(
                p.message
                    .verify(&InsecureTestProvider, black_box(&p.author_key)),
            )
            .ok();
        });
        rows.push((
            "(the insecure stand-in's signature check alone, 1 KiB message)".into(),
            t,
        ));
    }

    let mut seen = fresh();
    seen.handle_message(T0, from, fake[0].clone(), insecure);
    while seen.poll().is_some() {}
    let n = opts.iters(1_000_000, 100_000);
    let t = time_per_op(n, |_| {
        seen.handle_message(T0, from, black_box(fake[0].clone()), insecure);
        while seen.poll().is_some() {}
    });
    rows.push(("duplicate 1 KiB GOSSIP (dropped, PRUNE queued)".into(), t));

    let known = ids(&fake[..64]);
    let batch = ihave(&known);
    let n = opts.iters(20_000, 2_000);
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let mut p = fresh();
        let start = Instant::now();
        p.handle_message(T0, from, black_box(batch.clone()), insecure);
        while p.poll().is_some() {}
        total += start.elapsed();
    }
    rows.push((
        "IHAVE of 64 unknown ids (64 missing entries, timers)".into(),
        total / n as u32,
    ));

    let mut holder = fresh();
    for m in &fake[..64] {
        holder.handle_message(T0, from, m.clone(), insecure);
    }
    while holder.poll().is_some() {}
    let n = opts.iters(200_000, 20_000);
    let t = time_per_op(n, |_| {
        holder.handle_message(T0, from, black_box(batch.clone()), insecure);
        while holder.poll().is_some() {}
    });
    rows.push(("IHAVE of 64 ids already held (ignored)".into(), t));
    let iwant = Plum::IWant(BoundedVec::new(known[..16].to_vec()).expect("16 ids fit"));
    let t = time_per_op(n, |_| {
        holder.handle_message(T0, from, black_box(iwant.clone()), insecure);
        while holder.poll().is_some() {}
    });
    rows.push(("IWANT of 16 held messages (16 repairs queued)".into(), t));
    rows
}
