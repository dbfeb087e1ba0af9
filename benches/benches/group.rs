//! Benchmarks of groups (SPEC.md §17.9) at the default shard size of 200 members:
//!
//! - `rekey_200/package`: building the key package of a full shard (a fresh envelope of the
//!   32-byte shard secret with 200 slots, i.e. 200 ML-KEM-768 encapsulations, and one ML-DSA-65
//!   signature);
//! - `rekey_200/remove_and_package`: the whole removal as the admin does it (propose: fresh
//!   secret, key derivation, signature; apply: verification; then the package for the 199
//!   remaining members);
//! - `open_200/slot_last`: opening that package as the member whose slot is tried last (200
//!   decapsulations), without checks (`KeyPackage::open`) and with them (`Group::open_package`:
//!   signer, signature, and that the secret gives the shard's key).

use chacha20::ChaCha8Rng;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hearsay_proto::PeerId;
use hearsay_proto::crypto::{Decapsulator, KEM_SEED_LEN};
use hearsay_proto::default_provider;
use hearsay_proto::privacy::envelope::{self, Sealed};
use hearsay_proto::privacy::group::{DEFAULT_SHARD_SIZE, Group, Role};
use hearsay_proto::testing::identity;
use hearsay_proto::wire::BoundedVec;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::time::Duration;

/// A member that never signs: its KEM key pair from a fixed seed, its id from the same seed.
fn member(n: u32) -> (PeerId, Box<dyn Decapsulator>) {
    let mut seed = [0x42u8; KEM_SEED_LEN];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    let peer = PeerId::from_verifying_key(&seed);
    (peer, default_provider().decapsulator_from_seed(&seed))
}

fn group(c: &mut Criterion) {
    let provider = default_provider();
    let provider = &*provider;
    let founder = identity(1);
    let mut rng = ChaCha8Rng::from_seed([7; 32]);
    let (mut state, _, secret) =
        Group::create(provider, &founder, DEFAULT_SHARD_SIZE, &mut rng).expect("founds");
    let members: Vec<_> = (0..DEFAULT_SHARD_SIZE as u32 - 1).map(member).collect();
    for (peer, decapsulator) in &members {
        let key = decapsulator.encapsulation_key().clone();
        let proposal = state
            .propose_add(
                provider,
                &founder,
                *peer,
                key,
                Role::Viewer,
                false,
                &mut rng,
            )
            .expect("adds");
        state.apply(provider, &proposal.op).expect("applies");
    }
    assert_eq!(state.shards().len(), 1);
    assert_eq!(state.len(), DEFAULT_SHARD_SIZE);

    let mut bench = c.benchmark_group("rekey_200");
    bench.sample_size(10);
    bench.warm_up_time(Duration::from_millis(500));
    bench.measurement_time(Duration::from_secs(3));
    bench.bench_function("package", |b| {
        b.iter(|| {
            state
                .rekey_package(provider, &founder, 0, black_box(&secret), &mut rng)
                .expect("packages")
        })
    });
    let (leaving, _) = &members[0];
    bench.bench_function("remove_and_package", |b| {
        b.iter_batched(
            || state.clone(),
            |mut state| {
                let proposal = state
                    .propose_remove(provider, &founder, *leaving, &mut rng)
                    .expect("proposes");
                state.apply(provider, &proposal.op).expect("applies");
                let rekey = proposal.rekey.expect("a removal rekeys");
                state
                    .rekey_package(provider, &founder, rekey.shard, &rekey.secret, &mut rng)
                    .expect("packages")
            },
            BatchSize::LargeInput,
        )
    });
    bench.finish();

    // The member whose slot comes last in the package tries all 200 slots.
    let package = state
        .rekey_package(provider, &founder, 0, &secret, &mut rng)
        .expect("packages");
    let last = package.slots.last().expect("200 slots").clone();
    let only_last = Sealed {
        content: package.sealed().expect("an envelope").content,
        slots: BoundedVec::new(vec![last]).expect("one slot"),
    };
    let me: &dyn Decapsulator = if envelope::open(&only_last, founder.decapsulator()).is_ok() {
        founder.decapsulator()
    } else {
        &*members
            .iter()
            .find(|(_, d)| envelope::open(&only_last, &**d).is_ok())
            .expect("the last slot is a member's")
            .1
    };
    let mut bench = c.benchmark_group("open_200");
    bench.sample_size(10);
    bench.warm_up_time(Duration::from_millis(500));
    bench.measurement_time(Duration::from_secs(3));
    bench.bench_function("slot_last", |b| {
        b.iter(|| package.open(black_box(me)).expect("opens"))
    });
    bench.bench_function("slot_last_checked", |b| {
        b.iter(|| {
            state
                .open_package(provider, black_box(&package), me)
                .expect("opens")
        })
    });
    bench.finish();
}

criterion_group!(benches, group);
criterion_main!(benches);
