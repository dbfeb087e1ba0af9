//! Benchmarks of set reconciliation (`hearsay_proto::antientropy::iblt`): filling a table, subtracting and
//! decoding a difference, and estimating a difference's size.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hearsay_proto::antientropy::iblt::{Iblt, StrataEstimator, cells_for};
use std::hint::black_box;

const SEED: [u8; 32] = [0x5e; 32];

/// Ids both sides hold in the subtract/decode and estimator benchmarks.
const COMMON: u64 = 1_000;

/// The `n`th of a deterministic stream of ids (SplitMix64 output; the table hashes them anyway).
fn id(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut z = n
            .wrapping_mul(4)
            .wrapping_add(i as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

fn insert(c: &mut Criterion) {
    let ids: Vec<[u8; 32]> = (0..10_000).map(id).collect();
    let empty = Iblt::new(cells_for(1_000), SEED).expect("a valid size");
    let mut group = c.benchmark_group("iblt");
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function("insert_10000", |b| {
        b.iter_batched_ref(
            || empty.clone(),
            |table| {
                for x in &ids {
                    table.insert(black_box(x));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Two tables sized by `cells_for(d)` over `COMMON` shared ids and `d` differing ones, half on
/// each side.
fn table_pair(d: u64) -> (Iblt, Iblt) {
    let cells = cells_for(d as usize);
    let mut a = Iblt::new(cells, SEED).expect("a valid size");
    let mut b = a.clone();
    for n in 0..COMMON {
        a.insert(&id(n));
        b.insert(&id(n));
    }
    for n in COMMON..COMMON + d {
        if n % 2 == 0 {
            a.insert(&id(n));
        } else {
            b.insert(&id(n));
        }
    }
    (a, b)
}

fn subtract_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("iblt");
    for d in [100u64, 1_000] {
        let (a, b) = table_pair(d);
        assert_eq!(
            a.subtract(&b).and_then(Iblt::decode).map(|x| x.len()),
            Ok(d as usize),
            "the fixture decodes"
        );
        group.throughput(Throughput::Elements(d));
        group.bench_function(format!("subtract_decode_d{d}"), |bench| {
            bench.iter(|| {
                black_box(&a)
                    .subtract(black_box(&b))
                    .and_then(Iblt::decode)
                    .expect("decodes")
            })
        });
    }
    group.finish();
}

fn estimator(c: &mut Criterion) {
    let mut group = c.benchmark_group("strata_estimator");
    let ids: Vec<[u8; 32]> = (0..10_000).map(id).collect();
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function("insert_10000", |b| {
        b.iter_batched_ref(
            || StrataEstimator::new(SEED),
            |est| {
                for x in &ids {
                    est.insert(black_box(x));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(1));
    for d in [100u64, 10_000] {
        let mut a = StrataEstimator::new(SEED);
        let mut b = StrataEstimator::new(SEED);
        for n in 0..COMMON {
            a.insert(&id(n));
            b.insert(&id(n));
        }
        for n in COMMON..COMMON + d {
            if n % 2 == 0 {
                a.insert(&id(n));
            } else {
                b.insert(&id(n));
            }
        }
        group.bench_function(format!("estimate_d{d}"), |bench| {
            bench.iter(|| black_box(&a).estimate(black_box(&b)))
        });
    }
    group.finish();
}

criterion_group!(benches, insert, subtract_decode, estimator);
criterion_main!(benches);
