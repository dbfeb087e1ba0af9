//! Benchmarks of envelope encryption (SPEC.md §17): sealing a 1 KiB plaintext for 1, 10 and 100
//! recipients, and opening it as the recipient whose slot is tried last (the worst case: one
//! ML-KEM decapsulation per slot).

use chacha20::ChaCha8Rng;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hearsay_proto::crypto::EncapsulationKeyBytes;
use hearsay_proto::default_provider;
use hearsay_proto::privacy::envelope::{Sealed, open, seal};
use hearsay_proto::testing::identity;
use hearsay_proto::wire::BoundedVec;
use rand_core::SeedableRng;
use std::hint::black_box;

const COUNTS: [usize; 3] = [1, 10, 100];

fn envelope(c: &mut Criterion) {
    let provider = default_provider();
    let identities: Vec<_> = (0..100u64).map(identity).collect();
    let keys: Vec<EncapsulationKeyBytes> = identities
        .iter()
        .map(|i| i.encapsulation_key().clone())
        .collect();
    let plaintext = vec![0xa5u8; 1024];
    let mut rng = ChaCha8Rng::from_seed([42; 32]);

    let mut group = c.benchmark_group("envelope");
    for n in COUNTS {
        group.bench_with_input(BenchmarkId::new("seal_1KiB", n), &n, |b, &n| {
            b.iter(|| seal(&*provider, black_box(&keys[..n]), &plaintext, &mut rng).expect("seals"))
        });
    }
    for n in COUNTS {
        let sealed = seal(&*provider, &keys[..n], &plaintext, &mut rng).expect("seals");
        // Move the slot of the last recipient to the end, so opening tries every slot.
        let me = &identities[n - 1];
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
        group.bench_with_input(BenchmarkId::new("open_1KiB_slot_last", n), &n, |b, _| {
            b.iter(|| open(black_box(&worst), me.decapsulator()).expect("opens"))
        });
    }
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
