//! Post-quantum primitives per crypto provider: ML-DSA-65 sign and verify, ML-KEM-768
//! encapsulate and decapsulate, with the pure-Rust default provider (`PureRustProvider`) and
//! `hearsay_tokio::AwsLcProvider`.
//!
//! `AwsLcProvider` verifies and decapsulates with aws-lc-rs and signs and encapsulates with the
//! pure-Rust crates (runtime-tokio/src/crypto.rs explains why), so the sign and encapsulate
//! figures of the two should match within noise.
//!
//! Ids: `crypto/<operation>/<provider>`.

use chacha20::ChaCha8Rng;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use hearsay_proto::PureRustProvider;
use hearsay_proto::crypto::{CryptoProvider, SignatureBytes};
use hearsay_proto::testing::identity_with;
use hearsay_tokio::AwsLcProvider;
use rand_core::{Rng, SeedableRng};
use std::hint::black_box;

/// A record-sized message.
const MESSAGE_LEN: usize = 256;

fn providers() -> [(&'static str, Box<dyn CryptoProvider>); 2] {
    [
        ("pure-rust", Box::new(PureRustProvider)),
        ("aws-lc-rs", Box::new(AwsLcProvider)),
    ]
}

fn crypto(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto");
    for (name, provider) in providers() {
        let provider = &*provider;
        let mut rng = ChaCha8Rng::from_seed([21; 32]);
        let identity = identity_with(provider, 21);

        // Deterministic ML-DSA takes the same number of rejection rounds for one message every
        // time: vary the first eight bytes per call to sample the real distribution.
        let mut counter = 0u64;
        let mut message = vec![0x5au8; MESSAGE_LEN];
        group.bench_function(BenchmarkId::new("ml_dsa65_sign", name), |b| {
            b.iter_batched_ref(
                || {
                    counter = counter.wrapping_add(1);
                    message[..8].copy_from_slice(&counter.to_le_bytes());
                    message.clone()
                },
                |m| identity.signer().sign(black_box(m)).expect("signs"),
                BatchSize::SmallInput,
            )
        });

        // Verify cycles through distinct (message, signature) pairs.
        let pairs: Vec<(Vec<u8>, SignatureBytes)> = (0..32u64)
            .map(|k| {
                let mut m = vec![0xa5u8; MESSAGE_LEN];
                m[..8].copy_from_slice(&k.to_le_bytes());
                let s = identity.signer().sign(&m).expect("signs");
                (m, s)
            })
            .collect();
        let key = identity.verifying_key().clone();
        let mut i = 0;
        group.bench_function(BenchmarkId::new("ml_dsa65_verify", name), |b| {
            b.iter(|| {
                i = (i + 1) % pairs.len();
                let (m, s) = &pairs[i];
                assert!(provider.verify(black_box(&key), black_box(m), black_box(s)));
            })
        });

        let ek = identity.encapsulation_key().clone();
        let mut entropy = [0u8; 32];
        group.bench_function(BenchmarkId::new("ml_kem768_encapsulate", name), |b| {
            b.iter(|| {
                rng.fill_bytes(&mut entropy);
                provider
                    .encapsulate(black_box(&ek), &entropy)
                    .expect("encapsulates")
            })
        });

        let ciphertexts: Vec<_> = (0..32)
            .map(|_| {
                rng.fill_bytes(&mut entropy);
                provider.encapsulate(&ek, &entropy).expect("encapsulates").0
            })
            .collect();
        let mut j = 0;
        group.bench_function(BenchmarkId::new("ml_kem768_decapsulate", name), |b| {
            b.iter(|| {
                j = (j + 1) % ciphertexts.len();
                identity
                    .decapsulator()
                    .decapsulate(black_box(&ciphertexts[j]))
                    .expect("decapsulates")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, crypto);
criterion_main!(benches);
