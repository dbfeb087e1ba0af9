//! Benchmarks of the protocol core's hot paths: frame codec, record verification, signing and
//! message ids.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hearsay_benches::{
    FIXTURE_NOW, fixture_frame, fixture_hello_frame, fixture_identity, fixture_record,
};
use hearsay_proto::{Frame, MessageId, TopicId, default_provider};
use std::hint::black_box;

fn frame_codec(c: &mut Criterion) {
    let frame = fixture_frame();
    let bytes = fixture_hello_frame();
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_hello", |b| {
        b.iter(|| black_box(&frame).encode().expect("encodes"))
    });
    group.bench_function("decode_hello", |b| {
        b.iter(|| Frame::decode(black_box(&bytes)).expect("decodes"))
    });
    group.finish();
}

fn record_verify(c: &mut Criterion) {
    let provider = default_provider();
    let record = fixture_record(&fixture_identity(1));
    c.bench_function("peer_record/verify", |b| {
        b.iter(|| {
            black_box(&record)
                .verify(&*provider, black_box(FIXTURE_NOW))
                .expect("verifies")
        })
    });
}

fn sign(c: &mut Criterion) {
    let identity = fixture_identity(2);
    // A record-sized message whose first eight bytes change on every iteration: ML-DSA's
    // deterministic signing of one fixed message always takes the same number of rejection
    // rounds, which would pin the measurement to one arbitrary point of the distribution.
    let mut message = fixture_record(&identity)
        .signed_bytes()
        .expect("the record encodes");
    let mut counter = 0u64;
    c.bench_function("signer/sign_record_message", |b| {
        b.iter_batched_ref(
            || {
                counter = counter.wrapping_add(1);
                message[..8].copy_from_slice(&counter.to_le_bytes());
                message.clone()
            },
            |msg| identity.signer().sign(black_box(msg)).expect("signs"),
            BatchSize::SmallInput,
        )
    });
}

fn message_id(c: &mut Criterion) {
    let author = fixture_identity(1).peer_id();
    let topic = TopicId::from_name("bench");
    let payload = vec![0xa5u8; 1024];
    let mut group = c.benchmark_group("message_id");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("new_1KiB", |b| {
        b.iter(|| {
            MessageId::new(
                black_box(&author),
                &topic,
                black_box(7),
                black_box(&payload),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, frame_codec, record_verify, sign, message_id);
criterion_main!(benches);
