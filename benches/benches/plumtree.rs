//! Plumtree's receive path, alone and inside a node.
//!
//! `plumtree/*` drive one topic's `Plumtree` directly, with five eager neighbours (the default
//! active view: the sender and four more, so a new message is pushed on to four peers):
//!
//! - `gossip_new_1KiB/<validator>`: a new 1 KiB GOSSIP is checked by the validator, recorded,
//!   retained, delivered and forwarded (outputs drained). `pure-rust` and `aws-lc-rs` really
//!   verify the ML-DSA-65 signature (`SignatureValidator`); `insecure` uses the insecure test
//!   provider's stand-in, which leaves the state machine's own cost;
//! - `gossip_duplicate_1KiB`: a copy of a message already seen (dropped, PRUNE queued);
//! - `ihave_64_unknown` / `ihave_64_known`: a full IHAVE batch of 64 ids the node lacks (each
//!   becomes a missing entry with a timer) or already has (all ignored);
//! - `iwant_16`: serving 16 retained messages asked for.
//!
//! `node/handle_gossip_1KiB/<provider>` is the whole node-level path: `Node::handle_frame` of a
//! new 1 KiB GOSSIP frame from a topic neighbour (decode, author-key check, signature check,
//! dedup, retention, delivery event), then the node's transmits and events drained.
//!
//! New-message benchmarks need a fresh message per iteration: they replay a pool of pre-signed
//! messages into a fresh state machine (or node) per pool's worth of iterations, timing only the
//! calls (`hearsay_benches::receive::replay`).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hearsay_benches::pair::Receiver;
use hearsay_benches::receive::{author, fresh, gossip, ids, ihave, replay, sender};
use hearsay_proto::broadcast::plumtree::{Message, SignatureValidator};
use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::testing::T0;
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{CryptoProvider, PureRustProvider};
use hearsay_tokio::AwsLcProvider;
use std::hint::black_box;
use std::sync::Arc;

const LEN: usize = 1024;

fn plumtree(c: &mut Criterion) {
    let mut group = c.benchmark_group("plumtree");
    group.throughput(Throughput::Elements(1));
    let from = sender();

    // Real signatures: pure-Rust signing; both real providers verify them (bit-compatible).
    let real = gossip(&author(&PureRustProvider), 256, LEN);
    let fake = gossip(&author(&InsecureTestProvider), 4096, LEN);
    let validators: [(&str, SignatureValidator, &[Message]); 3] = [
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
            "insecure",
            SignatureValidator(Arc::new(InsecureTestProvider)),
            &fake,
        ),
    ];
    for (name, validator, pool) in &validators {
        group.bench_function(BenchmarkId::new("gossip_new_1KiB", name), |b| {
            b.iter_custom(|iters| {
                replay(iters, pool, fresh, |p, m| {
                    p.handle_message(T0, from, m, validator);
                    while p.poll().is_some() {}
                })
            })
        });
    }
    let insecure = &validators[2].1;

    // A duplicate: the first copy came from the sender, then copies keep coming.
    let mut seen = fresh();
    seen.handle_message(T0, from, fake[0].clone(), insecure);
    while seen.poll().is_some() {}
    group.bench_function("gossip_duplicate_1KiB", |b| {
        b.iter(|| {
            seen.handle_message(T0, from, black_box(fake[0].clone()), insecure);
            while seen.poll().is_some() {}
        })
    });

    // IHAVE batches of 64, and IWANT of 16.
    let known = ids(&fake[..64]);
    let batch = ihave(&known);
    group.throughput(Throughput::Elements(64));
    group.bench_function("ihave_64_unknown", |b| {
        b.iter_batched(
            fresh,
            |mut p| {
                p.handle_message(T0, from, black_box(batch.clone()), insecure);
                while p.poll().is_some() {}
                p
            },
            BatchSize::SmallInput,
        )
    });
    let mut holder = fresh();
    for m in &fake[..64] {
        holder.handle_message(T0, from, m.clone(), insecure);
    }
    while holder.poll().is_some() {}
    group.bench_function("ihave_64_known", |b| {
        b.iter(|| {
            holder.handle_message(T0, from, black_box(batch.clone()), insecure);
            while holder.poll().is_some() {}
        })
    });
    let iwant = Message::IWant(BoundedVec::new(known[..16].to_vec()).expect("16 ids fit"));
    group.throughput(Throughput::Elements(16));
    group.bench_function("iwant_16", |b| {
        b.iter(|| {
            holder.handle_message(T0, from, black_box(iwant.clone()), insecure);
            let mut sent = 0;
            while holder.poll().is_some() {
                sent += 1;
            }
            assert_eq!(sent, 16);
        })
    });
    group.finish();
}

fn node(c: &mut Criterion) {
    let mut group = c.benchmark_group("node");
    group.throughput(Throughput::Elements(1));
    let providers: [(&str, Arc<dyn CryptoProvider>, usize); 3] = [
        ("pure-rust", Arc::new(PureRustProvider), 256),
        ("aws-lc-rs", Arc::new(AwsLcProvider), 256),
        ("insecure", Arc::new(InsecureTestProvider), 4096),
    ];
    for (name, provider, pool) in providers {
        let frames = Receiver::new(provider.clone())
            .expect("the pair forms")
            .gossip_frames(0, pool, LEN);
        group.bench_function(BenchmarkId::new("handle_gossip_1KiB", name), |b| {
            b.iter_custom(|iters| {
                replay(
                    iters,
                    &frames,
                    || Receiver::new(provider.clone()).expect("the pair forms"),
                    |r, frame| {
                        assert_eq!(r.feed(frame), 1, "every frame is a new message");
                    },
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, plumtree, node);
criterion_main!(benches);
